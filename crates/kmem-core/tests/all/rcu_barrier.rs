//! `rcu_barrier` against other contexts' grace periods. One that gives up (reclaim's, which
//! only completes one if no old reader is inside): an object queued before the barrier, taken
//! off the pending lists by reclaim just before the barrier took them, and put back when
//! reclaim's grace period could not complete, is still freed before the barrier returns. One
//! taken after the barrier's own does not hold the barrier up, while one taken before it
//! does, also for a barrier inside a batch of its own thread (a destructor run by it), which
//! must not wait for that batch. The interleavings are forced through the host's `rcu_batch_enter` hook; waits have a
//! generous deadline only to turn a deadlock into a failure.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::Duration;

use kmem_core::Kmem;
use kmem_core::gfp::GFP_KERNEL;
use kmem_core::reclaim::Shrinker;
use kmem_core::slab::flags::SLAB_TYPESAFE_BY_RCU;
use kmem_core::slab::{CacheArgs, CacheRef, ObjFn, SlabConfig};

use super::Region;
use super::trim::{Host, boot_host};

const DEADLINE: Duration = Duration::from_secs(20);

/// A machine over `region`'s memory, its hooks on the test host.
fn machine(region: &Region) -> Kmem<Host> {
    Kmem::new(boot_host(region, crate::normal_only(region)), SlabConfig::default())
}

/// The 64-byte cache whose objects the tests queue for grace periods.
fn rcu_obj_cache(k: &Kmem<Host>) -> CacheRef {
    k.kmem_cache_create("rcu_obj", 64, &CacheArgs::default(), Default::default()).unwrap()
}

#[test]
fn a_batch_reclaim_put_back_during_a_barrier_is_freed_by_it() {
    let region = Region::new(32 << 20);
    let k = machine(&region);
    let cache = rcu_obj_cache(&k);
    let obj = k.kmem_cache_alloc(cache, GFP_KERNEL).unwrap();
    // SAFETY: Ours, given up.
    unsafe { k.kfree_rcu(obj.as_ptr()) };
    assert_eq!(k.cache_info(cache).in_use(), 1);

    let (taken_tx, taken) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let (barrier_took_tx, barrier_took) = mpsc::channel();
    {
        let mut hooks = k.platform().on_batch.lock().unwrap();
        // Reclaim's grace period, the lists taken: wait until the barrier has taken its own.
        hooks.push_back(Box::new(move || {
            taken_tx.send(()).unwrap();
            go_rx.recv_timeout(DEADLINE).expect("the test lets reclaim go on");
        }));
        hooks.push_back(Box::new(move || barrier_took_tx.send(()).unwrap()));
    }
    std::thread::scope(|s| {
        // An old reader: reclaim's grace period cannot complete while it is inside, and the
        // barrier's waits for it.
        let (inside_tx, inside) = mpsc::channel();
        let (leave, leave_rx) = mpsc::channel::<()>();
        let k = &k;
        s.spawn(move || {
            let guard = k.rcu_read_lock();
            inside_tx.send(()).unwrap();
            leave_rx.recv_timeout(DEADLINE).expect("the test lets the reader leave");
            drop(guard);
        });
        inside.recv_timeout(DEADLINE).expect("the reader entered");
        // The slab shrinker's scan, as reclaim calls it.
        let reclaim = s.spawn(|| Shrinker::scan_objects(k, 128, GFP_KERNEL));
        taken.recv_timeout(DEADLINE).expect("reclaim took the pending lists");
        let barrier = s.spawn(|| k.rcu_barrier());
        barrier_took.recv_timeout(DEADLINE).expect("the barrier took its (empty) lists");
        // Reclaim's grace period gives up (the barrier's holds the grace-period lock, waiting
        // for the reader) and puts the object back.
        go.send(()).unwrap();
        reclaim.join().unwrap();
        assert_eq!(k.cache_info(cache).in_use(), 1, "put back, not freed");
        leave.send(()).unwrap();
        barrier.join().unwrap();
    });
    assert_eq!(k.cache_info(cache).in_use(), 0, "queued before the barrier, freed when it returned");
}

#[test]
fn a_barrier_waits_for_an_older_batch_but_not_for_one_taken_after_its_own() {
    let region = Region::new(32 << 20);
    let k = machine(&region);
    let cache = rcu_obj_cache(&k);
    let old = k.kmem_cache_alloc(cache, GFP_KERNEL).unwrap();
    let young = k.kmem_cache_alloc(cache, GFP_KERNEL).unwrap();
    // SAFETY: Ours, given up.
    unsafe { k.kfree_rcu(old.as_ptr()) };
    // The barrier's own batch is the first after A's.
    let in_use = between_two_batches(&k, cache, young, 0, || k.rcu_barrier())
        .expect("the barrier waited for batch B, taken after its own");
    assert_eq!(in_use, 1, "`old` (batch A) freed when the barrier returned, `young` (batch B) not yet");
    assert_eq!(k.cache_info(cache).in_use(), 0, "batch B freed `young` once let go on");
}

/// Runs `action`, which calls `rcu_barrier`, between two other threads' grace periods: batch A,
/// taken before it and holding what was queued then, in flight until the barrier has taken its
/// own batch; and batch B, taken after that and holding `young` (queued then), in flight until
/// `action` returned or the test gave up waiting for it. The hooks of the action's first
/// `skip` batches do nothing; the next one is the barrier's own. Fails if `action` returns
/// while A is in flight. Returns the objects of `cache` in use when it returned, or `None` if
/// it did not return while B was in flight. Neither blocking hook has a deadline of its own (a
/// panic before a batch's guard exists would leave it in flight for good): the senders are
/// dropped if the test fails, which lets both go on.
fn between_two_batches(
    k: &Kmem<Host>,
    cache: CacheRef,
    young: NonNull<u8>,
    skip: usize,
    action: impl FnOnce() + Send,
) -> Option<usize> {
    let (a_taken_tx, a_taken) = mpsc::channel();
    let (finish_a, finish_a_rx) = mpsc::channel::<()>();
    let (took_tx, took) = mpsc::channel();
    let (b_taken_tx, b_taken) = mpsc::channel();
    let (finish_b, finish_b_rx) = mpsc::channel::<()>();
    {
        let mut hooks = k.platform().on_batch.lock().unwrap();
        hooks.push_back(Box::new(move || {
            a_taken_tx.send(()).unwrap();
            let _ = finish_a_rx.recv();
        }));
        for _ in 0..skip {
            hooks.push_back(Box::new(|| {}));
        }
        hooks.push_back(Box::new(move || took_tx.send(()).unwrap()));
        hooks.push_back(Box::new(move || {
            b_taken_tx.send(()).unwrap();
            let _ = finish_b_rx.recv();
        }));
    }
    std::thread::scope(|s| {
        let a = s.spawn(|| k.synchronize_rcu());
        a_taken.recv_timeout(DEADLINE).expect("batch A took the pending lists");
        let (done_tx, done) = mpsc::channel();
        let barrier = s.spawn(move || {
            action();
            done_tx.send(()).unwrap();
        });
        took.recv_timeout(DEADLINE).expect("the barrier took its (empty) lists");
        // SAFETY: Ours, given up.
        unsafe { k.kfree_rcu(young.as_ptr()) };
        let b = s.spawn(|| k.synchronize_rcu());
        b_taken.recv_timeout(DEADLINE).expect("batch B took the pending lists");
        assert!(done.try_recv().is_err(), "the barrier returned while batch A, older, was in flight");
        finish_a.send(()).unwrap();
        a.join().unwrap();
        // B stays in flight until the barrier has returned: the barrier must not wait for it.
        let returned = done.recv_timeout(DEADLINE).is_ok();
        let in_use = k.cache_info(cache).in_use();
        finish_b.send(()).unwrap();
        b.join().unwrap();
        barrier.join().unwrap();
        returned.then_some(in_use)
    })
}

/// What [`barrier_dtor`] calls `rcu_barrier` on, once.
struct BarrierOnce<'k> {
    k: &'k Kmem<Host>,
    done: AtomicBool,
}

/// A destructor that calls `rcu_barrier` the first time it runs.
unsafe fn barrier_dtor(ctx: *const (), _obj: *mut u8) {
    // SAFETY: `ctx` is the test's `BarrierOnce`, which outlives its cache.
    let b = unsafe { &*ctx.cast::<BarrierOnce<'_>>() };
    if !b.done.swap(true, SeqCst) {
        b.k.rcu_barrier();
    }
}

/// An RCU cache named `name` whose destructor is [`barrier_dtor`] on `once`, with one empty
/// slab (an object allocated and freed), which the next shrink discards, running the destructor.
///
/// # Safety
/// `once` outlives the cache.
unsafe fn barrier_dtor_cache(k: &Kmem<Host>, name: &'static str, once: &BarrierOnce<'_>) -> CacheRef {
    // SAFETY: `barrier_dtor` may run on any thread; `once` outlives the cache (caller).
    let dtor = unsafe { ObjFn::new(barrier_dtor, std::ptr::from_ref(once).cast()) };
    let args = CacheArgs { dtor: Some(dtor), ..CacheArgs::default() };
    let cache = k.kmem_cache_create(name, 128, &args, SLAB_TYPESAFE_BY_RCU).unwrap();
    let p = k.kmem_cache_alloc(cache, GFP_KERNEL).unwrap();
    // SAFETY: The object just allocated; its slab is empty afterwards and shrink discards it.
    unsafe { k.kmem_cache_free(cache, p.as_ptr()) };
    cache
}

/// A barrier inside a batch of its own thread (a destructor of an RCU cache's slab, run by the
/// grace period of `kmem_cache_shrink`'s barrier) skips that batch (parked: it waits for the
/// barrier), waits for a batch another thread took before it, and not for one taken after.
#[test]
fn a_barrier_inside_its_own_batch_skips_it_and_waits_only_for_older_batches() {
    let region = Region::new(32 << 20);
    let k = machine(&region);
    let cache = rcu_obj_cache(&k);
    let once = BarrierOnce { k: &k, done: AtomicBool::new(false) };
    // SAFETY: `once` outlives the cache (destroyed below).
    let rcu_cache = unsafe { barrier_dtor_cache(&k, "rcu_dtor", &once) };
    let old = k.kmem_cache_alloc(cache, GFP_KERNEL).unwrap();
    let young = k.kmem_cache_alloc(cache, GFP_KERNEL).unwrap();
    // SAFETY: Ours, given up.
    unsafe { k.kfree_rcu(old.as_ptr()) };

    // The shrink's barrier's own batch (holding the slab whose destructor runs the nested
    // barrier) comes first, then the nested barrier's own.
    let returned = between_two_batches(&k, cache, young, 1, || {
        k.kmem_cache_shrink(rcu_cache);
    });
    let in_use = returned.expect("a barrier waited for batch B, taken after its own, or for its own thread's batch");
    assert!(once.done.load(SeqCst), "the destructor ran its barrier");
    assert_eq!(in_use, 1, "`old` (batch A) freed when the barriers returned, `young` (batch B) not yet");
    assert_eq!(k.cache_info(cache).in_use(), 0);
    // SAFETY: The test's cache, empty, unused afterwards.
    unsafe { k.kmem_cache_destroy(rcu_cache) }.unwrap();
}

/// Two barriers, each inside a batch of its own thread, waiting at once: each waits for the
/// batches older than its own but the parked ones it may skip, and the two must not wait for
/// each other's. Thread 2's batch P2 is taken first and held back; thread 1's barrier X1
/// (inside P1) then counts P2 among its older batches and waits for it; P2 then goes on, and
/// its destructor's barrier X2 (linked after X1) skips P1, parked by X1, while X1 waits for P2
/// until X2 returns. Waiting for each other's batch would deadlock, so the machine is leaked
/// and its threads are not joined before the deadline: a hang fails the test.
#[test]
fn two_barriers_inside_batches_of_their_own_do_not_wait_for_each_other() {
    let region: &'static Region = Box::leak(Box::new(Region::new(32 << 20)));
    let k: &'static Kmem<Host> = Box::leak(Box::new(machine(region)));
    let rcu_cache = |name| {
        let once: &'static BarrierOnce<'static> = Box::leak(Box::new(BarrierOnce { k, done: AtomicBool::new(false) }));
        // SAFETY: `once` is never freed.
        (unsafe { barrier_dtor_cache(k, name, once) }, once)
    };
    let (c1, once1) = rcu_cache("rcu_dtor1");
    let (c2, once2) = rcu_cache("rcu_dtor2");
    let cache = rcu_obj_cache(k);
    let old = k.kmem_cache_alloc(cache, GFP_KERNEL).unwrap();
    // SAFETY: Ours, given up.
    unsafe { k.kfree_rcu(old.as_ptr()) };

    let (a_taken_tx, a_taken) = mpsc::channel();
    let (finish_a, finish_a_rx) = mpsc::channel::<()>();
    let (p2_taken_tx, p2_taken) = mpsc::channel();
    let (finish_p2, finish_p2_rx) = mpsc::channel::<()>();
    let (x1_took_tx, x1_took) = mpsc::channel();
    let (x2_took_tx, x2_took) = mpsc::channel();
    {
        let mut hooks = k.platform().on_batch.lock().unwrap();
        // Batch A (a `synchronize_rcu`), holding `old`, older than every other.
        hooks.push_back(Box::new(move || {
            a_taken_tx.send(()).unwrap();
            let _ = finish_a_rx.recv();
        }));
        // P2: thread 2's shrink barrier's own batch, held back before its grace period.
        hooks.push_back(Box::new(move || {
            p2_taken_tx.send(()).unwrap();
            let _ = finish_p2_rx.recv();
        }));
        // P1: thread 1's shrink barrier's own batch.
        hooks.push_back(Box::new(|| {}));
        // X1 and X2: the barriers of the destructors P1 and P2 run.
        hooks.push_back(Box::new(move || x1_took_tx.send(()).unwrap()));
        hooks.push_back(Box::new(move || x2_took_tx.send(()).unwrap()));
    }
    let (done_tx, done) = mpsc::channel();
    let a = std::thread::spawn(move || k.synchronize_rcu());
    a_taken.recv_timeout(DEADLINE).expect("batch A took the pending lists");
    let shrink = |c| {
        let done_tx = done_tx.clone();
        std::thread::spawn(move || {
            k.kmem_cache_shrink(c);
            done_tx.send(()).unwrap();
        })
    };
    let t2 = shrink(c2);
    p2_taken.recv_timeout(DEADLINE).expect("thread 2's barrier took its batch");
    let t1 = shrink(c1);
    x1_took.recv_timeout(DEADLINE).expect("the barrier inside P1 took its own batch");
    finish_p2.send(()).unwrap();
    x2_took.recv_timeout(DEADLINE).expect("the barrier inside P2 took its own batch");
    assert!(done.try_recv().is_err(), "a barrier returned while batch A, older, was in flight");
    finish_a.send(()).unwrap();
    a.join().unwrap();
    for _ in 0..2 {
        done.recv_timeout(DEADLINE).expect("the two barriers waited for each other's parked batch");
    }
    t1.join().unwrap();
    t2.join().unwrap();
    assert!(once1.done.load(SeqCst) && once2.done.load(SeqCst), "both destructors ran their barrier");
    assert_eq!(k.cache_info(cache).in_use(), 0, "`old` (batch A) freed");
}
