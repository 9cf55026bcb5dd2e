//! loom checks of the core's lock-free handoffs, under every interleaving:
//! `RUSTFLAGS="--cfg kmem_loom" cargo test -p kmem-core --test loom --release`.
//! Under that cfg the crate's `sync` and `waitq` modules are built on loom's atomics.
#![cfg(kmem_loom)]

use kmem_core::{sync, waitq};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering::Relaxed};
use loom::thread;

/// The spin lock excludes: two threads' read-modify-write of a plain value never race (loom
/// reports any concurrent access to the cell) and no increment is lost.
#[test]
fn spinlock_mutual_exclusion() {
    loom::model(|| {
        let lock = Arc::new(sync::SpinLock::new(0u32));
        let other = {
            let lock = lock.clone();
            thread::spawn(move || *lock.lock() += 1)
        };
        *lock.lock() += 1;
        other.join().unwrap();
        assert_eq!(*lock.lock(), 2);
    });
}

/// No lost wake-up: if the sleeper decided to sleep (it did not see the freed pages), the freer
/// saw it waiting and moved the word away from the sleeper's ticket, so the futex wait returns.
/// The "pages" flag is `Relaxed` on purpose: the lock the freer holds and the sleeper passes
/// through must carry the handshake alone.
#[test]
fn waitqueue_no_lost_wakeup() {
    loom::model(|| {
        let q = Arc::new(waitq::WaitQueue::new());
        let lock = Arc::new(sync::SpinLock::new(()));
        let freed = Arc::new(AtomicBool::new(false));
        let freer = {
            let (q, lock, freed) = (q.clone(), lock.clone(), freed.clone());
            thread::spawn(move || {
                let guard = lock.lock();
                freed.store(true, Relaxed);
                q.wake_locked(|_| {});
                drop(guard);
            })
        };
        let ticket = q.prepare_locked();
        drop(lock.lock());
        let saw_pages = freed.load(Relaxed);
        freer.join().unwrap();
        if !saw_pages {
            assert_ne!(q.word().load(Relaxed), ticket, "sleeper would sleep forever");
        }
        q.finish();
    });
}

/// The per-CPU slot handshake: the owner and a remote drainer never both touch the lists.
/// The heavy barrier (membarrier) is modelled as a `SeqCst` fence, as is the owner's light one.
#[test]
fn pcp_guard_excludes_owner_and_drainer() {
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{Ordering::SeqCst, fence};

    struct Slot {
        guard: kmem_core::pcp_guard::SlotGuard,
        lists: UnsafeCell<u32>,
    }
    // SAFETY: `lists` is only touched inside the guard's exclusive sections (what is tested).
    unsafe impl Sync for Slot {}

    loom::model(|| {
        let slot = Arc::new(Slot { guard: kmem_core::pcp_guard::SlotGuard::new(), lists: UnsafeCell::new(0) });
        let drainer = {
            let slot = slot.clone();
            thread::spawn(move || {
                if slot.guard.claim(|| fence(SeqCst), 2, loom::thread::yield_now) {
                    slot.lists.with_mut(|p| unsafe { *p += 10 });
                    slot.guard.unclaim();
                }
            })
        };
        for _ in 0..2 {
            if slot.guard.enter() {
                slot.lists.with_mut(|p| unsafe { *p += 1 });
                slot.guard.exit();
            }
        }
        drainer.join().unwrap();
    });
}

/// RCU: a reader that saw the object published finishes reading it before the writer, after
/// unpublishing and a grace period, frees (writes) it. loom reports any read that is not
/// ordered before the write; a reader that starts after the grace period began sees the object
/// unpublished.
#[test]
fn rcu_grace_period_orders_readers_before_the_free() {
    use kmem_core::rcu::Rcu;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::Ordering::{Acquire, Release};

    loom::model(|| {
        let rcu = Arc::new(Rcu::new());
        let object = Arc::new(UnsafeCell::new(7u32));
        let published = Arc::new(AtomicBool::new(true));
        let reader = {
            let (rcu, object, published) = (rcu.clone(), object.clone(), published.clone());
            thread::spawn(move || {
                let _guard = rcu.read_lock();
                if published.load(Acquire) {
                    // SAFETY: Published objects stay valid until a grace period after unpublish.
                    let v = object.with(|p| unsafe { *p });
                    assert_eq!(v, 7, "read a freed object");
                }
            })
        };
        published.store(false, Release);
        rcu.synchronize(thread::yield_now);
        // "Free": overwrite the object.
        // SAFETY: Unpublished, and every reader that could see it has left.
        object.with_mut(|p| unsafe { *p = 0 });
        reader.join().unwrap();
    });
}

/// The slab lifetime word (`slab/lifeword.rs`): the last destroy and the last unpin race, and
/// exactly one of them claims the cache's teardown (never both: a double free; never neither:
/// a leak).
#[test]
fn cache_teardown_is_claimed_once_by_the_destroy_or_the_last_unpin() {
    use kmem_core::slab::lifeword::LifeWord;
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    loom::model(|| {
        let word = Arc::new(LifeWord::new());
        let claims = Arc::new(AtomicUsize::new(0));
        word.pin(); // An operation holds the cache.
        let op = {
            let (word, claims) = (word.clone(), claims.clone());
            thread::spawn(move || {
                if word.unpin() {
                    claims.fetch_add(1, SeqCst);
                }
            })
        };
        if word.mark_dying() {
            claims.fetch_add(1, SeqCst);
        }
        op.join().unwrap();
        assert_eq!(claims.load(SeqCst), 1);
        assert!(word.is_dying() && !word.is_orphan());
    });
}

/// A slow path's unpin leaves the teardown to a later pass (an orphan) instead of claiming it:
/// then either the destroy claimed it or the reaper does, exactly once.
#[test]
fn an_orphaned_cache_is_claimed_once_by_the_destroy_or_the_reaper() {
    use kmem_core::slab::lifeword::LifeWord;

    loom::model(|| {
        let word = Arc::new(LifeWord::new());
        word.pin();
        let op = {
            let word = word.clone();
            thread::spawn(move || word.unpin_later())
        };
        let destroy_claimed = word.mark_dying();
        let orphaned = op.join().unwrap();
        assert!(!(destroy_claimed && orphaned), "an orphan was left although the destroy claimed it");
        let reaped = word.claim_orphan();
        assert_eq!(u8::from(destroy_claimed) + u8::from(reaped), 1);
        assert_eq!(orphaned, reaped);
    });
}

/// A teardown that finds pins again (slabs waiting for a grace period, pinned during it) hands
/// the claim back; whichever order it and the last unpin run in, one of them goes on.
#[test]
fn a_handed_back_teardown_is_finished_once() {
    use kmem_core::slab::lifeword::LifeWord;

    loom::model(|| {
        let word = Arc::new(LifeWord::new());
        assert!(word.mark_dying(), "no pin: the destroy claims");
        word.pin(); // The teardown pins a slab that waits for a grace period.
        let grace = {
            let word = word.clone();
            thread::spawn(move || word.unpin())
        };
        let handed = word.hand_back();
        let unpin_claimed = grace.join().unwrap();
        assert_eq!(unpin_claimed, handed, "exactly one party finishes the teardown");
    });
}
