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

/// A pool over a platform whose `wait` is a futex and a backing allocator that hands out one
/// element (the one `mempool_init` puts in the reserve) and then always fails.
mod pool_model {
    use core::ffi::c_void;
    use core::fmt;
    use core::mem::MaybeUninit;
    use core::ptr::{self, NonNull};
    use std::alloc::Layout;
    use std::cell::UnsafeCell;

    use kmem_core::gfp::Gfp;
    use kmem_core::mempool::{Mempool, PoolEnv, mempool_exit, mempool_init};
    use kmem_core::platform::{Level, Platform};
    use kmem_core::waitq::WaitWord;
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    use loom::sync::{Arc, Condvar, Mutex};

    /// The futex: `wait` compares the word under the futex lock and sleeps on the condition
    /// variable while it holds `expected`; `wake_all` takes the same lock, then wakes. There is
    /// no timeout, so a lost wake-up is a sleeper blocked for ever: a deadlock loom reports.
    struct Futex {
        lock: Mutex<()>,
        woken: Condvar,
    }

    // SAFETY: `cpu` never names a CPU slot, so no per-CPU list is used on its promise.
    unsafe impl Platform for Futex {
        fn nr_cpus(&self) -> usize {
            1
        }
        fn cpu(&self) -> Option<usize> {
            None
        }
        fn log(&self, _level: Level, args: fmt::Arguments<'_>) {
            panic!("unexpected report: {args}");
        }
        fn now_ns(&self) -> u64 {
            0
        }
        fn wait(&self, word: &WaitWord, expected: u32, _timeout_ns: u64) {
            let mut guard = self.lock.lock().unwrap();
            while word.load(Relaxed) == expected {
                guard = self.woken.wait(guard).unwrap();
            }
        }
        fn wake_all(&self, _word: &WaitWord) {
            drop(self.lock.lock().unwrap());
            self.woken.notify_all();
        }
    }

    /// The backing allocator: `ELEMENT` once, then NULL; counts what is freed back to it.
    struct Backing {
        given: AtomicBool,
        freed: AtomicUsize,
    }

    /// The one element (never dereferenced: poisoning is off).
    pub const ELEMENT: *mut c_void = ptr::without_provenance_mut(0x1000);

    unsafe extern "C" fn backing_alloc(_gfp: Gfp, data: *mut c_void) -> *mut c_void {
        // SAFETY: `data` is the `Backing` of the `Shared` that holds the pool.
        let backing = unsafe { &*data.cast::<Backing>() };
        if backing.given.swap(true, Relaxed) { ptr::null_mut() } else { ELEMENT }
    }

    unsafe extern "C" fn backing_free(element: *mut c_void, data: *mut c_void) {
        assert_eq!(element, ELEMENT);
        // SAFETY: As in `backing_alloc`.
        let backing = unsafe { &*data.cast::<Backing>() };
        backing.freed.fetch_add(1, Relaxed);
    }

    pub struct Shared {
        futex: Futex,
        backing: Backing,
        pool: UnsafeCell<MaybeUninit<Mempool>>,
    }

    // SAFETY: `pool` is written only by `new` and `exit` (no other thread holds the `Shared`
    // then); in between it is used through `&Mempool`, which is `Sync`.
    unsafe impl Sync for Shared {}
    // SAFETY: As above.
    unsafe impl Send for Shared {}

    // SAFETY: `alloc_meta` returns fresh 8-aligned memory of the std allocator, which
    // `free_meta` gives back with the same layout; neither calls into a pool; the platform is
    // the environment's own field.
    unsafe impl PoolEnv for Shared {
        fn platform(&self) -> &dyn Platform {
            &self.futex
        }
        fn alloc_meta(&self, bytes: usize, _gfp: Gfp) -> Option<NonNull<u8>> {
            // SAFETY: `bytes` is not zero (at least one slot).
            NonNull::new(unsafe { std::alloc::alloc(Layout::from_size_align(bytes, 8).unwrap()) })
        }
        unsafe fn free_meta(&self, ptr: NonNull<u8>, bytes: usize) {
            // SAFETY: Allocated by `alloc_meta` with this layout (the caller's promise).
            unsafe { std::alloc::dealloc(ptr.as_ptr(), Layout::from_size_align(bytes, 8).unwrap()) }
        }
    }

    impl Shared {
        /// A pool of `min_nr` 1 whose reserve holds the backing allocator's only element.
        pub fn new() -> Arc<Self> {
            let shared = Arc::new(Shared {
                futex: Futex { lock: Mutex::new(()), woken: Condvar::new() },
                backing: Backing { given: AtomicBool::new(false), freed: AtomicUsize::new(0) },
                pool: UnsafeCell::new(MaybeUninit::uninit()),
            });
            let data = ptr::from_ref(&shared.backing).cast_mut().cast();
            // SAFETY: The storage is ours and stays in place inside the `Arc`, as does the
            // environment (`shared` itself); the callbacks are thread-safe over `data`.
            unsafe {
                mempool_init(
                    NonNull::new(shared.pool.get().cast()).unwrap(),
                    &*shared,
                    1,
                    backing_alloc,
                    backing_free,
                    data,
                )
            }
            .unwrap();
            shared
        }

        pub fn pool(&self) -> &Mempool {
            // SAFETY: Initialised by `new`, and only `exit` (with the `Arc` unshared) ends it.
            unsafe { (*self.pool.get()).assume_init_ref() }
        }

        /// Elements the pool gave back to the backing allocator.
        pub fn freed(&self) -> usize {
            self.backing.freed.load(Relaxed)
        }

        /// `mempool_exit`, with every other thread joined (`this` is the last `Arc`).
        pub fn exit(this: Arc<Self>) -> usize {
            assert_eq!(Arc::strong_count(&this), 1);
            // SAFETY: Nobody else holds the `Shared`, so nobody uses the pool.
            mempool_exit(unsafe { (*this.pool.get()).assume_init_mut() });
            this.freed()
        }
    }
}

/// The mempool's free/sleep handshake (`mempool/alloc.rs`, `wait_for_free`, and
/// `mempool/free.rs`, `unlock_and_wake`): the reserve of a one-element pool is empty and the
/// backing allocator fails, so a `GFP_KERNEL` allocation sleeps until the element is freed.
/// Whatever the interleaving, the sleeper cannot miss the free's wake-up (a missed one
/// deadlocks the futex model) and gets the element, which went into the reserve and out again
/// exactly once (never to the backing allocator).
#[test]
fn mempool_sleeper_is_woken_by_the_free_that_refills_the_reserve() {
    use kmem_core::gfp::{GFP_KERNEL, GFP_NOWAIT};
    use pool_model::{ELEMENT, Shared};

    loom::model(|| {
        let shared = Shared::new();
        let element = shared.pool().alloc(GFP_NOWAIT);
        assert_eq!(element, ELEMENT, "the reserve's element");
        assert_eq!(shared.pool().curr_nr(), 0);
        let element = element as usize;
        let freer = {
            let shared = shared.clone();
            // SAFETY: The pool's element, no longer used.
            thread::spawn(move || unsafe { shared.pool().free(element as *mut core::ffi::c_void) })
        };
        let got = shared.pool().alloc(GFP_KERNEL);
        freer.join().unwrap();
        assert_eq!(got, ELEMENT, "the sleeper gets the freed element");
        assert_eq!(shared.pool().curr_nr(), 0, "taken once");
        assert_eq!(shared.freed(), 0, "the free refilled the reserve instead of the backing allocator");
        // SAFETY: As above.
        unsafe { shared.pool().free(got) };
        assert_eq!(shared.pool().curr_nr(), 1);
        assert_eq!(Shared::exit(shared), 1, "the element is freed once, at exit");
    });
}

/// The reserve's `Release` fence after a pop and the free path's `Acquire` fence before its
/// lock-free read of the free hint (`mempool/reserve.rs`, `mempool/free.rs`): an element taken
/// from a full reserve and handed to another thread through a `Relaxed` word (no
/// synchronisation of its own) is freed into the reserve, because the freeing thread sees the
/// hint from after the pop that made the reserve short. Without the fences the free could read
/// the old hint and send the element to the backing allocator, leaving the reserve empty.
#[test]
fn mempool_element_handed_over_relaxed_refills_the_reserve() {
    use kmem_core::gfp::GFP_NOWAIT;
    use loom::sync::atomic::AtomicUsize;
    use pool_model::{ELEMENT, Shared};

    loom::model(|| {
        let shared = Shared::new();
        let handoff = Arc::new(AtomicUsize::new(0));
        let taker = {
            let (shared, handoff) = (shared.clone(), handoff.clone());
            thread::spawn(move || {
                let element = shared.pool().alloc(GFP_NOWAIT);
                assert_eq!(element, ELEMENT);
                handoff.store(element as usize, Relaxed);
            })
        };
        let element = loop {
            match handoff.load(Relaxed) {
                0 => thread::yield_now(),
                e => break e,
            }
        };
        // SAFETY: The pool's element, handed over by its only user.
        unsafe { shared.pool().free(element as *mut core::ffi::c_void) };
        taker.join().unwrap();
        assert_eq!(shared.pool().curr_nr(), 1, "the element went back into the short reserve");
        assert_eq!(shared.freed(), 0, "not to the backing allocator");
        assert_eq!(Shared::exit(shared), 1);
    });
}

/// The reclaim registry's tombstones and per-slot pins (`reclaim.rs`): a pass calls an entry
/// while its owner unregisters it (and then frees it), and the entry's callback registers a
/// second entry while its own slot is pinned — so the registration races with the slot turning
/// into a tombstone. No callback runs after its `unregister` returned (loom reports the call's
/// read racing with the owner's free), and the registration never takes the tombstone: if it
/// did, the `unregister` finishing would free the new entry's slot, and the new entry would be
/// neither called by a later pass nor found by its own `unregister`.
#[test]
fn registry_unregister_outwaits_its_calls_and_tombstones_are_not_reused() {
    use core::ptr::NonNull;
    use kmem_core::reclaim::{OomNotifier, RegistrationId, Registry};
    use loom::cell::UnsafeCell;
    use loom::sync::Mutex;
    use loom::sync::atomic::AtomicUsize;

    struct Notifier {
        /// Cleared by the owner once `unregister` returned (the "free").
        alive: UnsafeCell<bool>,
        calls: AtomicUsize,
        /// The entry's callback registers this one (with this registry) once.
        registers: Option<(Arc<Shared>, Mutex<Option<RegistrationId>>)>,
    }
    // SAFETY: `alive` is written once, by the owner after `unregister` returned, when by the
    // registry's promise no call reads it any more (what is tested).
    unsafe impl Sync for Notifier {}
    // SAFETY: As above.
    unsafe impl Send for Notifier {}
    impl OomNotifier for Notifier {
        fn out_of_memory(&self) -> usize {
            if let Some((shared, id)) = &self.registers {
                let mut id = id.lock().unwrap();
                if id.is_none() {
                    // SAFETY: `shared.new` lives as long as `shared`, which outlives the
                    // registration (unregistered at the end of the model).
                    *id = unsafe { shared.registry.register(NonNull::from(&shared.new as &dyn OomNotifier)) };
                    assert!(id.is_some());
                }
            }
            self.calls.fetch_add(1, Relaxed);
            // Last, after every lock the call takes: only the slot's unpin (`Release`) and
            // `unregister`'s wait for it (`Acquire`) order this read before the owner's free.
            // SAFETY: See the `Sync` impl.
            assert!(self.alive.with(|p| unsafe { *p }), "called after its unregister returned");
            0
        }
    }
    struct Shared {
        registry: Registry<dyn OomNotifier>,
        new: Notifier,
    }
    let notifier = |registers| Notifier { alive: UnsafeCell::new(true), calls: AtomicUsize::new(0), registers };

    loom::model(move || {
        let shared = Arc::new(Shared { registry: Registry::new(), new: notifier(None) });
        let old = Arc::new(notifier(Some((shared.clone(), Mutex::new(None)))));
        // SAFETY: `old` outlives its registration (unregistered below, before it is dropped).
        let old_id = unsafe { shared.registry.register(NonNull::from(&*old as &dyn OomNotifier)) }.unwrap();
        let pass = {
            let shared = shared.clone();
            thread::spawn(move || shared.registry.for_each(|n| assert_eq!(n.out_of_memory(), 0)))
        };
        assert!(shared.registry.unregister(old_id));
        // SAFETY: Unregistered: no call of it runs or will run.
        old.alive.with_mut(|p| unsafe { *p = false });
        pass.join().unwrap();
        let Some((_, new_id)) = &old.registers else { unreachable!() };
        let new_id = new_id.lock().unwrap().take();
        if let Some(new_id) = new_id {
            shared.registry.for_each(|n| assert_eq!(n.out_of_memory(), 0));
            assert_eq!(shared.new.calls.load(Relaxed), 1, "the new entry is still registered");
            assert!(shared.registry.unregister(new_id), "the new entry's slot was not freed under it");
        } else {
            assert_eq!(old.calls.load(Relaxed), 0, "the pass called the old entry, which registers");
        }
        assert!(!shared.registry.unregister(old_id), "the old id matches nothing");
    });
}
