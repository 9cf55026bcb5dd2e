//! `rcu_barrier` against a grace period that gives up (reclaim's, which only completes one if
//! no old reader is inside): an object queued before the barrier, taken off the pending lists
//! by reclaim just before the barrier took them, and put back when reclaim's grace period could
//! not complete, is still freed before the barrier returns. The interleaving is forced through
//! the host's `rcu_batch_enter` hook; waits have a generous deadline only to turn a deadlock
//! into a failure.

use std::sync::mpsc;
use std::time::Duration;

use kmem_core::Kmem;
use kmem_core::gfp::GFP_KERNEL;
use kmem_core::reclaim::Shrinker;
use kmem_core::slab::{CacheArgs, SlabConfig};

use super::Region;
use super::trim::{Host, boot_host};

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn a_batch_reclaim_put_back_during_a_barrier_is_freed_by_it() {
    let region = Region::new(32 << 20);
    let k: Kmem<Host> = Kmem::new(boot_host(&region, crate::normal_only(&region)), SlabConfig::default());
    let cache = k.kmem_cache_create("rcu_obj", 64, &CacheArgs::default(), Default::default()).unwrap();
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
