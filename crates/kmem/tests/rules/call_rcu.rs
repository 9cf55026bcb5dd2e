//! `call_rcu` (the RCU kernel-style slab users free through, SEMANTICS §3.2): a callback runs
//! after a grace period, at the next `rcu_barrier` or on its own (kswapd's pass, a flood of
//! `QHIMARK` callbacks), oldest first, in softirq (atomic) context; `rcu_barrier` returns only
//! once every callback queued before it has run, also one another thread's grace period is
//! running; a callback may queue another (it runs at the next barrier) and may not ask for a
//! grace period itself (reported, no hang).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kmem::Machine;
use kmem_core::gfp::GFP_KERNEL;
use kmem_core::rcu::RcuHead;

use crate::{count_log, slab::machine};

/// A queued callback's object: the head first, so the head's address is the object's.
#[repr(C)]
struct Item {
    head: RcuHead,
    id: usize,
    log: Arc<Mutex<Vec<usize>>>,
    /// What the callback does besides logging its id.
    then: Then,
}

enum Then {
    Nothing,
    /// Queue item `id` on this machine.
    Queue(Machine, usize),
    /// Ask for a grace period inside the callback.
    Barrier(Machine),
    /// Tell `started`, then wait for `release`, then tell `finished`.
    Block(Arc<[AtomicBool; 3]>),
    /// Allocate with `GFP_KERNEL` (may sleep) and free it again.
    Sleep(Machine),
    /// Record whether the callback runs in atomic context.
    Atomic(Arc<AtomicBool>),
}

unsafe extern "C" fn callback(head: *mut RcuHead) {
    // SAFETY: Every head queued here is the first field of a boxed `Item` given up to it.
    let item = unsafe { Box::from_raw(head.cast::<Item>()) };
    item.log.lock().unwrap().push(item.id);
    match &item.then {
        Then::Nothing => {}
        Then::Queue(m, id) => queue(m, *id, &item.log, Then::Nothing),
        Then::Barrier(m) => m.rcu_barrier(),
        Then::Block(flags) => {
            flags[0].store(true, SeqCst);
            while !flags[1].load(SeqCst) {
                std::thread::yield_now();
            }
            flags[2].store(true, SeqCst);
        }
        Then::Sleep(m) => {
            let p = m.kmalloc(64, GFP_KERNEL).expect("kmalloc in a callback");
            // SAFETY: Just allocated, freed once.
            unsafe { m.kfree(p.as_ptr()) };
        }
        Then::Atomic(flag) => flag.store(kmem::context::in_atomic(), SeqCst),
    }
}

fn queue(m: &Machine, id: usize, log: &Arc<Mutex<Vec<usize>>>, then: Then) {
    let item = Box::new(Item { head: RcuHead::new(), id, log: log.clone(), then });
    let head = NonNull::from(Box::leak(item)).cast::<RcuHead>();
    // SAFETY: The item is given up to the callback, which frees it; nothing else touches it.
    unsafe { m.call_rcu(head, callback) };
}

fn wait_for(flag: &AtomicBool) {
    while !flag.load(SeqCst) {
        std::thread::yield_now();
    }
}

#[test]
fn callbacks_run_at_rcu_barrier_oldest_first() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    for id in 1..=5 {
        queue(&m, id, &log, Then::Nothing);
    }
    assert!(log.lock().unwrap().is_empty(), "nothing runs at call_rcu");
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1, 2, 3, 4, 5]);
    m.rcu_barrier();
    assert_eq!(log.lock().unwrap().len(), 5, "each runs once");
}

#[test]
fn a_reader_holds_the_callbacks_back_until_it_leaves() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    let flags = Arc::new([AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)]);
    let reader = {
        let (m, flags) = (m.clone(), flags.clone());
        std::thread::spawn(move || {
            let guard = m.rcu_read_lock();
            flags[0].store(true, SeqCst);
            wait_for(&flags[1]);
            drop(guard);
        })
    };
    wait_for(&flags[0]);
    queue(&m, 1, &log, Then::Nothing);
    let barrier = {
        let m = m.clone();
        std::thread::spawn(move || m.rcu_barrier())
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(log.lock().unwrap().is_empty() && !barrier.is_finished(), "the grace period waits for the reader");
    flags[1].store(true, SeqCst);
    reader.join().unwrap();
    barrier.join().unwrap();
    assert_eq!(*log.lock().unwrap(), [1]);
}

/// The barrier of thread B finds nothing queued (thread A's barrier took the callback and is
/// running it): B must still wait until that callback has returned.
#[test]
fn rcu_barrier_waits_for_callbacks_another_thread_is_running() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    let flags = Arc::new([AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)]);
    queue(&m, 1, &log, Then::Block(flags.clone()));
    let a = {
        let m = m.clone();
        std::thread::spawn(move || m.rcu_barrier())
    };
    wait_for(&flags[0]);
    let b = {
        let (m, flags) = (m.clone(), flags.clone());
        std::thread::spawn(move || {
            m.rcu_barrier();
            flags[2].load(SeqCst)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(!b.is_finished(), "B's barrier returned while A's callback was still running");
    flags[1].store(true, SeqCst);
    a.join().unwrap();
    assert!(b.join().unwrap(), "the callback had finished when B's barrier returned");
}

#[test]
fn a_callback_may_queue_another_but_not_wait_for_a_grace_period() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    queue(&m, 1, &log, Then::Queue(m.clone(), 2));
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1], "queued during the barrier: left for the next one");
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1, 2]);
    queue(&m, 3, &log, Then::Barrier(m.clone()));
    crate::rcu::must_finish(20, "rcu_barrier inside a callback", {
        let m = m.clone();
        move || m.rcu_barrier()
    });
    assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
    // The kernel's `rcu_barrier` takes a mutex: `might_sleep` in the softirq a callback runs in.
    assert_eq!(count_log(&m, "BUG: sleeping function called from invalid context"), 1);
}

/// Callbacks run in softirq context, as the kernel's `rcu_do_batch` runs them with bottom
/// halves off, whether a barrier or `Kmem::rcu_core` runs them: one that may sleep gets
/// `might_sleep`'s report (rate-limited to one a second, as the kernel's; `preempt_count: 100`),
/// and the caller's context is back to normal after them.
#[test]
fn callbacks_run_in_atomic_context() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    queue(&m, 1, &log, Then::Sleep(m.clone()));
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1]);
    assert_eq!(count_log(&m, "BUG: sleeping function called from invalid context"), 1);
    // Serving a softirq is `SOFTIRQ_OFFSET` in the kernel's count, printed in hex.
    assert_eq!(count_log(&m, "preempt_count: 100, expected: 0"), 1);
    for run in [|m: &Machine| m.rcu_barrier(), |m: &Machine| _ = m.rcu_core()] {
        let atomic = Arc::new(AtomicBool::new(false));
        queue(&m, 2, &log, Then::Atomic(atomic.clone()));
        run(&m);
        assert!(atomic.load(SeqCst), "a callback ran outside atomic context");
        assert!(!kmem::context::in_atomic(), "the caller was left in atomic context");
    }
    assert_eq!(*log.lock().unwrap(), [1, 2, 2]);
}

/// `Kmem::rcu_core` (the RCU softirq's work) runs the callbacks queued before a grace period
/// that can complete now; with an old reader still inside it gives up and puts them back
/// behind the ones queued meanwhile, so they still run oldest first.
#[test]
fn a_grace_period_that_gives_up_puts_callbacks_back_in_order() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    let reader = m.rcu_read_lock();
    queue(&m, 1, &log, Then::Nothing);
    queue(&m, 2, &log, Then::Nothing);
    assert_eq!(m.rcu_core(), 0);
    assert!(log.lock().unwrap().is_empty(), "a callback ran under a reader that was inside when it was queued");
    queue(&m, 3, &log, Then::Nothing);
    assert_eq!(m.rcu_core(), 0);
    queue(&m, 4, &log, Then::Nothing);
    drop(reader);
    m.rcu_core();
    assert_eq!(*log.lock().unwrap(), [1, 2, 3, 4]);
}

/// The same while another thread keeps queueing: callbacks queued while a grace period that
/// gives up holds the older ones stay ahead of them when those are put back.
#[test]
fn callbacks_put_back_stay_behind_older_ones_queued_meanwhile() {
    const N: usize = 20_000;
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let queuer = std::thread::spawn({
        let (m, log, done) = (m.clone(), log.clone(), done.clone());
        move || {
            for id in 0..N {
                queue(&m, id, &log, Then::Nothing);
            }
            done.store(true, SeqCst);
        }
    });
    let reader = m.rcu_read_lock();
    loop {
        assert_eq!(m.rcu_core(), 0);
        if done.load(SeqCst) {
            break;
        }
    }
    queuer.join().unwrap();
    assert!(log.lock().unwrap().is_empty(), "a callback ran under a reader that was inside when it was queued");
    drop(reader);
    m.rcu_barrier();
    assert!(log.lock().unwrap().iter().copied().eq(0..N), "not oldest first");
}

/// With kswapd, callbacks run without any barrier, as the kernel's run soon after their grace
/// period: kswapd's once-a-second pass runs them once no reader that was inside when they
/// were queued is still inside.
#[test]
fn kswapd_runs_callbacks_once_no_old_reader_is_inside() {
    let m = crate::builder(kmem::Profile::X86_64, 64).kswapd(true).build().expect("machine");
    let log = Arc::new(Mutex::new(Vec::new()));
    let passes = |n: usize| {
        let from = m.kswapd_ticks();
        let start = Instant::now();
        while m.kswapd_ticks() < from + n {
            assert!(start.elapsed() < Duration::from_secs(30), "kswapd made no pass in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let reader = m.rcu_read_lock();
    queue(&m, 1, &log, Then::Nothing);
    passes(2);
    assert!(log.lock().unwrap().is_empty(), "a callback ran under a reader that was inside when it was queued");
    drop(reader);
    passes(2);
    assert_eq!(*log.lock().unwrap(), [1], "two kswapd passes after its reader left");
}

/// A flood of callbacks does not wait for the next periodic pass: each `QHIMARK` queued kicks
/// kswapd's work (counted by `kswapd_work_runs`), which runs them, oldest first. (Queueing goes
/// on until a kick is seen: a periodic pass that takes the list meanwhile restarts the count.)
#[test]
fn a_flood_of_callbacks_kicks_kswapd() {
    use kmem_core::rcu::QHIMARK;
    let m = crate::builder(kmem::Profile::X86_64, 64).kswapd(true).build().expect("machine");
    let log = Arc::new(Mutex::new(Vec::new()));
    let runs = m.kswapd_work_runs();
    // `QHIMARK` callbacks per round.
    let mut n = 0;
    crate::rcu::until_kswapd_work(&m, runs, || {
        for _ in 0..QHIMARK {
            queue(&m, n, &log, Then::Nothing);
            n += 1;
        }
    });
    let start = Instant::now();
    while log.lock().unwrap().len() < n {
        assert!(start.elapsed() < Duration::from_secs(30), "the flood was not served in 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(log.lock().unwrap().iter().copied().eq(0..n), "oldest first");
}

/// Destroying a cache that is not `SLAB_TYPESAFE_BY_RCU` waits for `kfree_rcu` objects
/// (`kvfree_rcu_barrier`) but runs no `call_rcu` callback: the kernel calls `rcu_barrier` in
/// `kmem_cache_destroy` only for RCU caches, and a destroyer may hold a lock a callback takes.
/// An RCU cache's destroy does run them.
#[test]
fn only_an_rcu_cache_destroy_runs_the_callbacks() {
    use kmem::slab::CacheArgs;
    use kmem::slab::flags::SlabFlags;
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    queue(&m, 1, &log, Then::Nothing);
    let plain = m.kmem_cache_create("plain", 64, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    // SAFETY: A cache of this test's, with no object out and no other user.
    unsafe { m.kmem_cache_destroy(plain) }.expect("empty");
    assert!(log.lock().unwrap().is_empty(), "a plain cache's destroy ran a call_rcu callback");
    let rcu =
        m.kmem_cache_create("rcu", 64, &CacheArgs::default(), kmem::slab::flags::SLAB_TYPESAFE_BY_RCU).expect("create");
    // SAFETY: As above.
    unsafe { m.kmem_cache_destroy(rcu) }.expect("empty");
    assert_eq!(*log.lock().unwrap(), [1], "an RCU cache's destroy is an rcu_barrier");
}

/// What [`destroying_dtor`] destroys, once.
struct DestroyOnce {
    m: Machine,
    victim: kmem::slab::CacheRef,
    done: AtomicBool,
}

/// A destructor that destroys another cache the first time it runs (destructors may destroy
/// caches, `kmem_cache_create`'s docs).
unsafe fn destroying_dtor(ctx: *const (), _obj: *mut u8) {
    // SAFETY: `ctx` is the leaked `DestroyOnce` of the test below.
    let d = unsafe { &*ctx.cast::<DestroyOnce>() };
    if !d.done.swap(true, SeqCst) {
        // SAFETY: The victim is the test's own empty cache, used by nothing else.
        unsafe { d.m.kmem_cache_destroy(d.victim) }.expect("empty");
    }
}

/// A slab of an RCU cache goes back after a grace period, inside the batch that grace period
/// took (counted in flight); its destructor destroying a cache (whose destroy is a barrier)
/// must not wait for that very batch.
#[test]
fn a_destructor_run_by_a_grace_period_may_destroy_a_cache() {
    use kmem::gfp::GFP_KERNEL;
    use kmem::slab::flags::{SLAB_TYPESAFE_BY_RCU, SlabFlags};
    use kmem::slab::{CacheArgs, ObjFn};
    let m = machine();
    let victim = m.kmem_cache_create("victim", 64, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    let d: &'static DestroyOnce =
        Box::leak(Box::new(DestroyOnce { m: m.clone(), victim, done: AtomicBool::new(false) }));
    // SAFETY: A leaked context, callable from any thread (the machine is shared, the flag atomic).
    let dtor = unsafe { ObjFn::new(destroying_dtor, std::ptr::from_ref(d).cast()) };
    let args = CacheArgs { dtor: Some(dtor), ..CacheArgs::default() };
    let c = m.kmem_cache_create("rcu-dtor", 128, &args, SLAB_TYPESAFE_BY_RCU).expect("create");
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
    // SAFETY: The object just allocated, unused afterwards.
    unsafe { m.kmem_cache_free(c, p.as_ptr()) };
    /// The cache handle, moved to the watched thread (used there alone).
    struct Handle(kmem::slab::CacheRef);
    // SAFETY: A cache handle names a cache of a shared machine; only the worker uses it.
    unsafe impl Send for Handle {}
    let h = Handle(c);
    crate::rcu::must_finish(30, "kmem_cache_shrink whose grace period runs a destructor that destroys a cache", {
        let m = m.clone();
        move || {
            let h = h;
            assert_eq!(m.kmem_cache_shrink(h.0), 0);
        }
    });
    assert!(d.done.load(SeqCst), "the destructor ran");
    assert!(m.cache(victim).is_none(), "the victim is gone");
    // SAFETY: The test's cache, empty, unused afterwards.
    unsafe { m.kmem_cache_destroy(c) }.expect("empty");
}

/// `rcu_barrier` and `synchronize_rcu` may sleep: in atomic context (a spin lock held) they
/// are `might_sleep`'s report and return without waiting, and no callback runs inside the
/// caller's atomic section (one taking the caller's lock would spin on it forever).
#[test]
fn rcu_barrier_in_atomic_context_is_reported_and_runs_nothing() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    queue(&m, 1, &log, Then::Nothing);
    let section = kmem::context::atomic_section();
    m.rcu_barrier();
    assert!(log.lock().unwrap().is_empty(), "a callback ran in the caller's atomic context");
    assert_eq!(count_log(&m, "BUG: sleeping function called from invalid context"), 1);
    drop(section);
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1]);
}
