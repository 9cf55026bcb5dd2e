//! Grace periods asked for inside the caller's own RCU read-side section (SL-11, TST-7; the
//! soundness audit): the kernel's lockdep says "Illegal synchronize_rcu() in RCU read-side
//! critical section!" (`RCU_LOCKDEP_WARN` in `synchronize_rcu`); kmem used to spin forever,
//! silently, waiting for the caller itself. Now `synchronize_rcu` and `rcu_barrier` report it
//! and return at once with no grace period, so nothing queued for one is freed under readers.
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use kmem::Machine;
use kmem::gfp::GFP_KERNEL;
use kmem::slab::flags::SLAB_TYPESAFE_BY_RCU;

use crate::{count_log, slab::machine};

const ILLEGAL_SYNC: &str = "Illegal synchronize_rcu() in RCU read-side critical section!";
const ILLEGAL_BARRIER: &str = "Illegal rcu_barrier() in RCU read-side critical section!";

/// Runs `f` on a thread of its own and fails the test if it is not done within `secs` (a
/// watchdog for the old self-deadlock, not a timing claim; the stuck thread is left behind).
pub fn must_finish(secs: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let worker = std::thread::spawn(move || {
        f();
        flag.store(true, SeqCst);
    });
    let start = Instant::now();
    while !worker.is_finished() && start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(worker.is_finished(), "{what}: still waiting after {secs} s (it waits for its own reader)");
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
    assert!(done.load(SeqCst));
}

/// A kmalloc object queued by `kfree_rcu` (its address).
fn queued(m: &Machine) -> usize {
    let p = m.kmalloc(64, GFP_KERNEL).expect("kmalloc");
    // SAFETY: Ours, freed once, unused afterwards.
    unsafe { m.kfree_rcu(p.as_ptr()) };
    p.as_ptr() as usize
}

/// Whether the kmalloc-64 object at `addr` is still allocated: once freed it is the first
/// object this CPU's kmalloc-64 hands out again (SL-8, LIFO reuse).
fn live(m: &Machine, addr: usize) -> bool {
    let p = m.kmalloc(64, GFP_KERNEL).expect("kmalloc");
    // SAFETY: Ours, freed once, unused afterwards.
    unsafe { m.kfree(p.as_ptr()) };
    p.as_ptr() as usize != addr
}

#[test]
fn synchronize_rcu_inside_the_callers_read_section_is_reported_and_does_not_wait() {
    let m = machine();
    let m2 = m.clone();
    must_finish(30, "synchronize_rcu inside rcu_read_lock", move || {
        let guard = m2.rcu_read_lock();
        let obj = queued(&m2);
        m2.synchronize_rcu();
        assert_eq!(count_log(&m2, ILLEGAL_SYNC), 1, "reported");
        assert_eq!(count_log(&m2, "WARNING: suspicious RCU usage"), 1);
        assert!(live(&m2, obj), "no grace period: the kfree_rcu object is not freed under its reader");
        drop(guard);
        m2.synchronize_rcu();
        assert_eq!(count_log(&m2, ILLEGAL_SYNC), 1, "outside the section: a grace period, no report");
        assert!(!live(&m2, obj), "freed by the grace period");
    });
    assert_eq!(m.slabs().errors(), 0);
}

#[test]
fn rcu_barrier_inside_nested_sections_is_refused_until_the_outermost_ends() {
    let m = machine();
    must_finish(30, "rcu_barrier inside rcu_read_lock", move || {
        let outer = m.rcu_read_lock();
        let inner = m.rcu_read_lock();
        let obj = queued(&m);
        m.rcu_barrier();
        drop(inner);
        m.rcu_barrier();
        assert_eq!(count_log(&m, ILLEGAL_BARRIER), 2, "still inside the outer section");
        assert!(live(&m, obj));
        drop(outer);
        m.rcu_barrier();
        assert_eq!(count_log(&m, ILLEGAL_BARRIER), 2);
        assert!(!live(&m, obj), "everything queued before the barrier is freed");
    });
}

/// A section of one machine does not stop another machine's grace periods (each machine has
/// an RCU of its own).
#[test]
fn a_read_section_of_another_machine_does_not_refuse_a_grace_period() {
    let (a, b) = (machine(), machine());
    must_finish(30, "synchronize_rcu of another machine", move || {
        let guard = a.rcu_read_lock();
        let obj = queued(&b);
        b.synchronize_rcu();
        assert_eq!(count_log(&b, ILLEGAL_SYNC), 0);
        assert!(!live(&b, obj), "b's grace period ran");
        a.synchronize_rcu();
        assert_eq!(count_log(&a, ILLEGAL_SYNC), 1, "a's own section still refuses a's");
        drop(guard);
    });
}

/// Shrinking a `SLAB_TYPESAFE_BY_RCU` cache runs `rcu_barrier`; inside the caller's own
/// section that is reported and the slabs keep waiting for a later grace period.
#[test]
fn shrinking_an_rcu_cache_inside_a_read_section_does_not_hang() {
    let m = machine();
    must_finish(30, "kmem_cache_shrink of an RCU cache inside rcu_read_lock", move || {
        let cache = kmem::KmemCache::<u64>::new(&m, "rcu_shrink", SLAB_TYPESAFE_BY_RCU, || 7).expect("cache");
        let guard = m.rcu_read_lock();
        let obj = cache.alloc(GFP_KERNEL).expect("alloc");
        let addr = NonNull::from(&*obj).cast::<u8>();
        drop(obj);
        cache.shrink();
        assert_eq!(count_log(&m, ILLEGAL_BARRIER), 1);
        // SAFETY: Reads one byte of an object of a TYPESAFE_BY_RCU cache inside a read-side
        // section: its slab cannot have gone back.
        assert!(unsafe { m.read_bytes(addr, &mut [0; 1]) }.is_ok(), "the slab waits for the reader");
        drop(guard);
        cache.shrink();
        assert_eq!(count_log(&m, ILLEGAL_BARRIER), 1);
    });
}

/// Sections are counted per machine: leaving B's section (in either order against A's) lets
/// B's grace periods run again while the thread stays inside A's (review finding: once a
/// thread had been inside two machines' sections it counted as inside both until it left
/// every section).
#[test]
fn leaving_one_machines_section_lets_its_grace_periods_run() {
    let (a, b) = (machine(), machine());
    must_finish(30, "synchronize_rcu after leaving the machine's section", move || {
        for inner_first in [true, false] {
            let ga = a.rcu_read_lock();
            let gb = b.rcu_read_lock();
            let obj = queued(&b);
            if inner_first {
                drop(gb);
                b.synchronize_rcu();
                assert!(!live(&b, obj), "b's grace period ran while a's section is open");
                drop(ga);
            } else {
                drop(ga);
                a.synchronize_rcu();
                assert_eq!(count_log(&a, ILLEGAL_SYNC), 0, "a's section is over");
                drop(gb);
                b.synchronize_rcu();
                assert!(!live(&b, obj));
            }
        }
        assert_eq!(count_log(&b, ILLEGAL_SYNC), 0);
    });
}

/// Destroying a cache inside the caller's own section: the `kvfree_rcu_barrier` is refused
/// once (naming the destroy's caller, not kmem's source), so an object still queued for
/// `kfree_rcu` counts as remaining and the cache is kept, as a destroy with a live object is
/// (SL-12, docs/deviations.md). Outside the section the same destroy succeeds.
#[test]
fn destroy_inside_a_read_section_reports_once_and_keeps_queued_objects() {
    let m = machine();
    must_finish(30, "kmem_cache_destroy inside rcu_read_lock", move || {
        let cache = m.kmem_cache_create("rcu_destroy", 96, &Default::default(), Default::default()).expect("cache");
        let p = m.kmem_cache_alloc(cache, GFP_KERNEL).expect("object");
        let guard = m.rcu_read_lock();
        // SAFETY: Ours, freed once, unused afterwards.
        unsafe { m.kfree_rcu(p.as_ptr()) };
        // SAFETY: The test's own cache, not used by anything else.
        let res = unsafe { m.kmem_cache_destroy(cache) };
        assert!(res.is_err(), "the queued object is still allocated: {res:?}");
        assert_eq!(count_log(&m, ILLEGAL_BARRIER), 1, "one report per destroy");
        let line = m.dmesg().lines().find(|l| l.contains(ILLEGAL_BARRIER)).expect("report").to_owned();
        assert!(line.contains("rules/rcu.rs"), "names the destroy's caller: {line}");
        drop(guard);
        m.rcu_barrier();
        assert_eq!(count_log(&m, ILLEGAL_BARRIER), 1);
    });
}

/// The kernel's RCU stall detector: a grace period that waits `rcu_cpu_stall_timeout` seconds
/// (clamped to 3..=300, default 21) for a reader is reported (`rcu: INFO: rcu_preempt detected
/// stalls on CPUs/tasks:`), once, and goes on waiting; the reader here leaves only once the
/// report is in the log, so the test asserts no timing, only the report and the wait's end.
#[test]
fn a_grace_period_held_up_by_a_reader_is_reported_as_a_stall() {
    let m = machine();
    assert_eq!(m.rcu_cpu_stall_timeout(), 21);
    assert_eq!(m.set_rcu_cpu_stall_timeout(0), 3, "clamped as the kernel clamps it");
    assert_eq!(m.set_rcu_cpu_stall_timeout(1000), 300);
    assert_eq!(m.set_rcu_cpu_stall_timeout(3), 3);
    const STALL: &str = "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:";
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn({
        let m = m.clone();
        move || {
            let guard = m.rcu_read_lock();
            entered_tx.send(()).unwrap();
            // Watchdog only: the waiter reports after 3 s.
            let start = Instant::now();
            while count_log(&m, STALL) == 0 && start.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(guard);
        }
    });
    entered_rx.recv().unwrap();
    let obj = queued(&m);
    m.synchronize_rcu();
    reader.join().unwrap();
    assert_eq!(count_log(&m, STALL), 1, "reported once");
    let log = m.dmesg();
    assert!(log.contains("1 reader(s) in a read-side critical section"), "{log}");
    assert!(!live(&m, obj), "the grace period completed once the reader left");
}

/// Grace periods also run without being asked for (the kernel's run on their own, and its
/// `kfree_rcu` monitor drains within seconds): kswapd's once-a-second pass runs one when it can
/// complete without waiting, so a `kfree_rcu` object comes back with no memory pressure and no
/// `synchronize_rcu`; a reader that was inside when it was queued holds it up until it leaves.
#[test]
fn kswapd_frees_kfree_rcu_objects_once_no_old_reader_is_inside() {
    let m = crate::builder(kmem::Profile::X86_64, 64).kswapd(true).build().expect("machine");
    let cache = m.kmem_cache_create("rcu_unasked", 96, &Default::default(), Default::default()).expect("cache");
    let active = |m: &Machine| m.cache_info(cache).active_objs;
    let two_passes = |m: &Machine| {
        let from = m.kswapd_ticks();
        let start = Instant::now();
        while m.kswapd_ticks() < from + 2 {
            assert!(start.elapsed() < Duration::from_secs(30), "kswapd made no pass in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let reader = m.rcu_read_lock();
    let p = m.kmem_cache_alloc(cache, GFP_KERNEL).expect("object");
    // SAFETY: Ours, freed once, unused afterwards.
    unsafe { m.kfree_rcu(p.as_ptr()) };
    // The object and the rest of this CPU's array (`active_objs` counts both); kswapd frees it
    // on its own CPU slot, which it gives back, so its array goes back to the slabs.
    let queued = active(&m);
    two_passes(&m);
    assert_eq!(active(&m), queued, "freed under a reader that was inside when it was queued");
    drop(reader);
    two_passes(&m);
    assert_eq!(active(&m), queued - 1, "kfree_rcu object still allocated two kswapd passes after its reader left");
    // SAFETY: No object of the cache is left and the handle is not used afterwards.
    unsafe { m.kmem_cache_destroy(cache) }.expect("destroy");
}

/// Runs `queue_more` until kswapd has served a kick of its work (`kswapd_work_runs` above
/// `runs`), waiting up to 2 s after each round, at most 10 rounds: a periodic pass that takes
/// what was queued before it was enough for a kick restarts the count.
pub fn until_kswapd_work(m: &Machine, runs: usize, mut queue_more: impl FnMut()) {
    for round in 0..10 {
        queue_more();
        let start = Instant::now();
        while m.kswapd_work_runs() == runs && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if m.kswapd_work_runs() != runs {
            return;
        }
        eprintln!("no kick served after round {round}");
    }
    panic!("no kick served after 10 rounds");
}

/// A full page of `kfree_rcu` pointers does not wait for kswapd's next pass either: as a full
/// page makes the kernel's `kfree_rcu` monitor run at once (`KVFREE_BULK_MAX_ENTR`), the object
/// that starts the next page kicks kswapd's work (counted by `kswapd_work_runs`), which frees
/// them all.
#[test]
fn a_full_page_of_kfree_rcu_objects_kicks_kswapd() {
    let m = crate::builder(kmem::Profile::X86_64, 64).kswapd(true).build().expect("machine");
    let cache = m.kmem_cache_create("rcu_full_page", 64, &Default::default(), Default::default()).expect("cache");
    let per_page = kmem::PAGE_SIZE / size_of::<usize>() - 2;
    // Frees counted by the cache (only kswapd frees its objects here): the objects' own
    // count would also move with the refills of this thread's CPU array.
    let frees = |m: &Machine| {
        let i = m.cache_info(cache);
        i.free_fast + i.free_slow
    };
    let (runs, freed) = (m.kswapd_work_runs(), frees(&m));
    // A page and one more object per round.
    until_kswapd_work(&m, runs, || {
        for _ in 0..=per_page {
            let p = m.kmem_cache_alloc(cache, GFP_KERNEL).expect("object");
            // SAFETY: Ours, freed once, unused afterwards.
            unsafe { m.kfree_rcu(p.as_ptr()) };
        }
    });
    let start = Instant::now();
    while frees(&m) < freed + per_page as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the full page was not freed in 30 s: frees {freed} -> {}",
            frees(&m)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    m.rcu_barrier();
    // SAFETY: No object of the cache is left and the handle is not used afterwards.
    unsafe { m.kmem_cache_destroy(cache) }.expect("destroy");
}
