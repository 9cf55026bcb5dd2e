//! When a cache may go: slab operations in progress hold it, and the teardown of its last
//! reference waits for the last of them.
//!
//! A cache's constructor and destructor are foreign code that runs inside slab operations: the
//! constructor while an allocation makes a slab, the destructor while a free, a flush, a
//! shrink, reclaim, a thread's exit or a grace period frees one. That code may drop the last
//! reference of the very cache whose operation is running (a `kmem::KmemCache<T>` whose `T`'s
//! `Drop` drops the last handle), and the operation still uses the cache — its structure, its
//! hooks' context, its slabs — once the hook returns. So `kmem_cache_destroy` never frees a
//! cache an operation holds: it drops the reference at once (checked calls refuse the handle,
//! walks over the list skip the cache) and leaves the teardown to the last of those operations,
//! as the kernel leaves the final free of a `SLAB_TYPESAFE_BY_RCU` cache to a work item
//! (`slab_caches_to_rcu_destroy`).
//!
//! # The state word `Cache::ops`
//! - the low bits count operations in progress that hold the cache ("pins");
//! - [`DYING`]: the last reference is gone and the teardown is owed;
//! - [`DEAD`]: someone claimed the teardown. Exactly one does: the destroyer when it finds no
//!   pin, or whoever drops the last pin of a dying cache (one atomic update), or a reaper that
//!   finds an orphan (below) — each by an atomic update that needs `DYING` without `DEAD`.
//!
//! # Who pins
//! - Walks over the cache list (reclaim, a thread's exit, `for_each_cache`, `slabinfo`) pin
//!   each cache while they work on it with the list lock *released*, and tear down on unpin.
//!   So no hook ever runs under the list lock, and a hook may create or destroy caches.
//! - `kmem_cache_shrink` and `validate_slab_cache` pin for their call and tear down on unpin
//!   (the handle they were given is a local, not held by any caller).
//! - Each slab of a `SLAB_TYPESAFE_BY_RCU` cache waiting for a grace period pins its cache; the
//!   grace period that frees the slab unpins it, and tears down. A destroy whose slabs another
//!   thread's grace period holds no longer frees the cache under that thread.
//! - The allocation and free slow paths of a cache with a constructor or destructor (or the
//!   userspace shim's gate, whose callback runs in the allocation slow path) pin it
//!   around the code that runs them, and `kmem_cache_alloc_bulk` around its loop. Their
//!   callers may still use the cache after they return (an allocation's caller may free the
//!   object it just got to it), so they do not tear down: their last
//!   unpin of a dying cache leaves it *orphaned* (dying, no pin, no claim), and the next
//!   maintenance pass — `kmem_cache_create`, `kmem_cache_destroy`, `kmem_cache_shrink`,
//!   reclaim, and in the `kmem` crate kswapd's once-a-second pass and the machine's drop —
//!   tears it down ([`Kmem::reap_orphans`]). Reclaim counts an orphan's pages as
//!   reclaimable, so memory pressure finds it. The fast paths run no hook and pin nothing.
//!
//! The word's transitions are in `lifeword.rs`, checked by loom (`tests/loom.rs`): exactly
//! one party claims a teardown, whatever the interleaving.
//!
//! # Invariants
//! - A pinned cache's memory stays, and the cache stays on the list, until it is unpinned: the
//!   teardown (which unlinks, then frees) needs the claim, and the claim needs no pin left.
//! - `DYING` is set under the list lock, and walks pin only caches without it, under the same
//!   lock: a walk never pins a cache whose teardown may have begun.
//! - The list lock is never held while a constructor, a destructor or a teardown runs.
//! - Whoever may free a cache never has it as a `&Cache` *parameter* of a call still running
//!   (freeing memory under a live reference argument is undefined behaviour even if it is not
//!   read again): unpins and teardowns take `NonNull<Cache>`, and the slow paths that pin are
//!   entered with a pointer (`alloc.rs`; `kmalloc`, `kmalloc_trace` and `kfree` pass theirs
//!   down as pointers too).
//!
//! A teardown frees the cache when no object is left; with objects still out it prints the
//! kernel's two reports and keeps the memory (SL-12), whenever it runs. Only a destroy that
//! finds no pin returns that outcome (`Err`); a deferred one returns `Ok` and reports later.
//!
//! Lock order: the list lock (taken alone, to pin, unlink and find orphans, or by the destroy
//! around its last-reference step), then a cache's `destroy` lock as a leaf.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicPtr;
use core::sync::atomic::Ordering::{Acquire, Relaxed};

use super::CacheList;
use super::cache::{Cache, ObjFn};
use super::flags::{SLAB_RECLAIM_ACCOUNT, SLAB_TYPESAFE_BY_RCU};
use crate::kmem::Kmem;
use crate::platform::{Level, Platform};

/// What the destroy that dropped the last reference asked for, for whoever tears down.
#[derive(Default)]
pub(crate) struct DestroyRequest {
    /// Called (with a null object) once the cache's memory is gone.
    pub(crate) release: Option<ObjFn>,
    /// Where the destroy was called, for the SL-12 reports.
    pub(crate) caller: Option<&'static Location<'static>>,
}

impl Cache {
    /// Whether a constructor, a destructor or the userspace shim's callback (a gated cache,
    /// `shim.rs`) runs foreign code inside this cache's operations.
    #[inline]
    pub(crate) fn has_hooks(&self) -> bool {
        self.ctor.is_some() || self.dtor.is_some() || self.shim.on()
    }

    /// Whether the last reference is gone (checked under the list lock by walks and merging).
    #[inline]
    pub(crate) fn is_dying(&self) -> bool {
        self.ops.is_dying()
    }

    /// Whether the cache is an orphan waiting for [`Kmem::reap_orphans`].
    #[inline]
    pub(crate) fn is_orphan(&self) -> bool {
        self.ops.is_orphan()
    }
}

/// How a teardown ended.
pub(crate) enum Teardown {
    /// The cache's memory went back; its `release` ran.
    Freed,
    /// Objects were still out: reported, memory kept (SL-12).
    Kept(usize),
    /// Operations (slabs waiting for a grace period) still hold the cache: the last finishes.
    Handed,
}

impl<P: Platform> Kmem<P> {
    /// Pins `s` for an operation. The caller must hold the cache: a reference to a live cache,
    /// a pin of its own, or the list lock with the cache not dying.
    #[inline]
    pub(crate) fn pin_cache(&self, s: &Cache) {
        s.ops.pin();
    }

    /// Ends an operation begun with [`Kmem::pin_cache`]; the last one on a dying cache tears
    /// it down. The caller must not use the cache afterwards, and no frame up its stack may
    /// still use it.
    pub(crate) fn unpin_cache(&self, cache: NonNull<Cache>) {
        // SAFETY: Pinned until this update: the cache is there. Only the atomic is borrowed
        // across it (as `Arc`'s count is).
        let ops = unsafe { &cache.as_ref().ops };
        if ops.unpin() {
            let _ = self.teardown(cache, false);
        }
    }

    /// [`Kmem::unpin_cache`] for the allocation and free slow paths, whose callers may still
    /// use the cache after they return (free the object just allocated to it): the last unpin
    /// of a dying cache leaves it to the next maintenance pass ([`Kmem::reap_orphans`]).
    pub(crate) fn unpin_cache_later(&self, cache: NonNull<Cache>) {
        // SAFETY: As in `unpin_cache`.
        let ops = unsafe { &cache.as_ref().ops };
        if ops.unpin_later() {
            self.slabs.orphans.store(true, Relaxed);
        }
    }

    /// Runs `f` on the cache with a pin held if it has a constructor or destructor (whose calls
    /// may destroy it meanwhile); the pin ends with [`Kmem::unpin_cache_later`], as the caller
    /// may still use the cache afterwards. The caller must hold the cache (as for
    /// [`Kmem::pin_cache`]).
    #[inline(always)]
    pub(crate) fn with_hooks_pinned<R>(&self, cache: NonNull<Cache>, f: impl FnOnce(&Cache) -> R) -> R {
        // SAFETY: The caller holds the cache; `s` is a local, not used once the pin ends.
        let s = unsafe { cache.as_ref() };
        let held = s.has_hooks();
        if held {
            self.pin_cache(s);
        }
        let r = f(s);
        if held {
            self.unpin_cache_later(cache);
        }
        r
    }

    /// Under the list lock, once the last reference of `s` is dropped: marks it dying. Returns
    /// true if no operation holds it: the teardown is then claimed for the caller.
    pub(crate) fn mark_dying(&self, s: &Cache, _list: &CacheList) -> bool {
        s.ops.mark_dying()
    }

    /// Tears down a cache whose teardown the caller claimed: unlinks it, flushes and frees its
    /// slabs, then frees it (and calls its `release`), or reports its remaining objects and
    /// keeps it (SL-12), or hands it to the operations that still hold it. `wait_rcu`: the
    /// caller may wait for a grace period (a destroy outside atomic context); otherwise slabs
    /// of an RCU cache wait for the next one, and the last of them finishes the teardown.
    /// Also returns the pages it gave back (empty slabs, and the cache's own block).
    pub(crate) fn teardown(&self, cache: NonNull<Cache>, wait_rcu: bool) -> (Teardown, usize) {
        let (order, release, slab_pages) = {
            // SAFETY: Claimed: nobody else frees the cache, and it was live when claimed. `s`
            // is a local, not used once the memory goes.
            let s = unsafe { cache.as_ref() };
            self.unlink_cache(cache.as_ptr());
            self.shim_retire(s);
            // No user is left (the last reference is gone): arrays of idle CPUs are emptied
            // even without a heavy barrier.
            let slab_pages = self.shrink_unused_cache(s);
            // The destroy's caller, named by the reports below.
            let caller = s.destroy.lock().caller.unwrap_or(Location::caller());
            if wait_rcu && s.layout.flags.intersects(SLAB_TYPESAFE_BY_RCU) {
                self.rcu_barrier_at(caller);
            }
            // Slabs still waiting for a grace period (or an operation in progress elsewhere)
            // hold the cache: give up the claim; the last of them claims it again.
            if s.ops.hand_back() {
                return (Teardown::Handed, slab_pages);
            }
            let live = self.report_remaining(s, caller);
            if live > 0 || s.node.lock().nr_slabs > 0 {
                self.count_slab_report();
                self.platform().log(
                    Level::Warning,
                    format_args!(
                        "WARNING: at {caller} kmem_cache_destroy\nkmem_cache_destroy {}: Slab cache still has objects when called from {caller}",
                        s.name()
                    ),
                );
                self.platform().dump_stack(caller);
                // Its slabs stay allocated: still slab memory, as in the kernel's counters.
                let reclaimable = usize::from(s.layout.flags.intersects(SLAB_RECLAIM_ACCOUNT));
                let kept = s.node_slab_pages(&s.node.lock());
                self.slabs.kept_slab_pages[reclaimable].fetch_add(kept, Relaxed);
                return (Teardown::Kept(live), slab_pages);
            }
            (s.mem_order, s.destroy.lock().release.take(), slab_pages)
        };
        // SAFETY: The cache's own block, claimed for teardown: unlinked, unmarked (its last
        // destroy cleared `PG_CACHE`), empty and pinned by no one, so nothing reaches it.
        unsafe { self.free_cache_block(cache, order) };
        if let Some(release) = release {
            // SAFETY: The cache is gone, which is when its destroyer asked for `release`; the
            // null object is its documented argument.
            unsafe { release.call(ptr::null_mut()) };
        }
        (Teardown::Freed, slab_pages + (1 << order))
    }

    /// Takes `cache` off the cache list, if it is still on it.
    fn unlink_cache(&self, cache: *mut Cache) {
        let mut list = self.slabs.list.lock();
        let mut link: *const AtomicPtr<Cache> = ptr::null();
        let mut cur = list.head;
        while !cur.is_null() && cur != cache {
            // SAFETY: Caches on the list are allocated (pinned, live or claimed), under its lock.
            unsafe {
                link = &(*cur).next;
                cur = (*cur).next.load(Relaxed);
            }
        }
        if cur.is_null() {
            return;
        }
        // SAFETY: `cur` is `cache`, on the list.
        let next = unsafe { (*cur).next.load(Relaxed) };
        if link.is_null() {
            list.head = next;
        } else {
            // SAFETY: `link` is the `next` field of the previous cache on the list.
            unsafe { (*link).store(next, Relaxed) };
        }
        list.len -= 1;
    }

    /// Tears down the orphans: dying caches whose last pin went in an allocation or free slow
    /// path. Called at the start of maintenance passes (create, destroy, shrink, reclaim);
    /// costs one load when there is none. Returns the pages given back. Public for an owner
    /// about to drop the allocator: an orphan's `release` (a typed cache's hooks) runs then.
    pub fn reap_orphans(&self) -> usize {
        if !self.slabs.orphans.load(Relaxed) || !self.slabs.orphans.swap(false, Acquire) {
            return 0;
        }
        let mut pages = 0;
        loop {
            let claimed = {
                let list = self.slabs.list.lock();
                let mut cur = list.head;
                let mut found = None;
                while let Some(c) = NonNull::new(cur) {
                    // SAFETY: Caches on the list are allocated, under its lock.
                    let s = unsafe { c.as_ref() };
                    if s.ops.claim_orphan() {
                        found = Some(c);
                        break;
                    }
                    cur = s.next.load(Relaxed);
                }
                found
            };
            let Some(c) = claimed else { return pages };
            pages += self.teardown(c, false).1;
        }
    }

    /// Runs `f` on every cache that is not dying, newest first, each pinned and with the list
    /// lock released: `f` may allocate, free, create and destroy caches (the cache it was given
    /// included: a destroy is then finished here, after `f`). Caches created meanwhile may be
    /// missed.
    pub(crate) fn walk_caches(&self, mut f: impl FnMut(&Cache)) {
        let mut cur = {
            let list = self.slabs.list.lock();
            Self::pin_live_from(list.head, &list)
        };
        while let Some(c) = cur {
            // SAFETY: Pinned: there, and on the list, until unpinned below.
            f(unsafe { c.as_ref() });
            cur = {
                let list = self.slabs.list.lock();
                // SAFETY: As above; its link is read under the list lock.
                Self::pin_live_from(unsafe { c.as_ref() }.next.load(Relaxed), &list)
            };
            self.unpin_cache(c);
        }
    }

    /// Under the list lock: pins and returns the first cache from `cur` on that is not dying.
    fn pin_live_from(mut cur: *mut Cache, _list: &CacheList) -> Option<NonNull<Cache>> {
        while let Some(c) = NonNull::new(cur) {
            // SAFETY: Caches on the list are allocated, under its lock.
            let s = unsafe { c.as_ref() };
            if !s.is_dying() {
                s.ops.pin();
                return Some(c);
            }
            cur = s.next.load(Relaxed);
        }
        None
    }
}
