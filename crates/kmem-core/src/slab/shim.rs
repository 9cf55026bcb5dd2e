//! The hooks of the kernel's userspace test shim (`tools/testing/shared/linux.c`, SEMANTICS
//! §8.6) on kmem's real caches, so that ports of the radix-tree, xarray and maple-tree
//! userspace suites run on kmem: a budget of allocations that may not reclaim
//! (`kmem_cache_set_non_kernel`), a callback run after a failure the budget caused
//! (`kmem_cache_set_callback`, `kmem_cache_set_private`), and allocation counters
//! (`kmem_cache_nr_allocated`, `kmem_cache_nr_tallocated`, `kmem_cache_zero_nr_tallocated`,
//! `kmem_cache_get_alloc`, and the shim's global `nr_allocated` as [`Kmem::kmem_nr_allocated`]).
//!
//! # The gate
//! Opt-in per cache (`docs/deviations.md`: the shim gates every cache): a cache behaves as any
//! other until `kmem_cache_set_non_kernel` is first called on it, with any value, 0 included.
//! From then on, as in the shim, each allocation from it first runs the callback if a failure
//! armed it (once, with the private pointer; then disarmed, whether or not a callback is
//! set), then, if its mask lacks `__GFP_DIRECT_RECLAIM`, fails (NULL) when the budget is 0 —
//! arming the callback — or takes one from the budget and goes on. `__GFP_NOFAIL` is not
//! exempt (the shim does not know it). Bulk allocations and sheaf fills are loops of single
//! allocations, so each object passes the gate: a bulk with budget for fewer objects than it
//! asks for gives back what it took and returns 0, the budget those objects took stays spent
//! (as in the shim). Unlike the shim's bulk call, which neither runs nor arms the callback,
//! kmem's runs an armed callback at its start and arms it when it fails, as a single
//! allocation does (the gate is the same for every object). A cache
//! with the hooks on keeps no returned sheaves in its barn (the shim has none), so every
//! prefill passes its objects through the gate.
//!
//! The gate costs the fast path nothing: while any cache of the machine has the hooks on, the
//! cache holds `failslab`'s fault attribute, whose one-word check the fast path already makes
//! (`FaultAttr::diverts`), so every allocation of the machine takes the slow path, where the
//! gate is (the slow path still serves the CPU's array first). The hold goes with the cache's
//! teardown. The free paths need nothing.
//!
//! The callback runs with no kmem lock held, at the start of the allocation's slow path; it
//! may allocate and free (from this cache too). A callback that destroys the cache it runs for
//! is the caller's bug, as in the shim: a gated cache counts as one with hooks, pinned by the
//! slow paths as one with a constructor is (`lifetime.rs`), so the allocation completes and the
//! next maintenance pass tears the cache down, reporting the object it handed out (SL-12).
//!
//! # The counters
//! Derived from what the cache counts anyway, so they cost no allocation anything:
//! - `nr_allocated` is [`super::CacheInfo::in_use`]: objects out with users (a held sheaf
//!   counts every object it holds). Exact when no allocation or free is in progress.
//! - `nr_tallocated` is every object handed out since the cache was made, or since the last
//!   zeroing: the per-CPU fast- and slow-path counts, less the slow-path attempts that failed
//!   (`CacheStats::alloc_failed`) and the objects a failed bulk gave back, and less the refills
//!   that went into a sheaf kept in the barn (not handed to anyone), plus the objects of a kept
//!   sheaf when a prefill hands it out again. Those corrections and the zeroing's baseline are
//!   one signed word per cache (`ShimHooks::uncounted`), written on cold paths only.
//! - `get_alloc` is the object size (`kmem_cache_size`, the shim's `cachep->size`) times
//!   `nr_allocated`.
//!
//! The counters and hooks are the real cache's: a merged alias shares them with the cache it
//! merged into, kmalloc's included (the shim's caches never merge; a suite creates its caches
//! with `SLAB_NO_MERGE`, a constructor, or anything else that keeps them apart, or builds its
//! machine with `slab_nomerge`). Turning the gate on for a shared cache warns; a cache created
//! after the gate went on never merges into it.
//!
//! # Invariants
//! - `on` goes from false to true once, in `kmem_cache_set_non_kernel`, which then takes one
//!   hold of `failslab`'s attribute; the teardown clears it and releases that hold. So the
//!   attribute's holds count the live caches with the hooks on.
//! - `pending` is set only by a failure of the gate and cleared only by the allocation that
//!   runs the callback.

use core::ffi::c_void;
use core::panic::Location;
use core::ptr;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU32, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use super::cache::{Cache, CacheRef};
use crate::gfp::{__GFP_DIRECT_RECLAIM, Gfp};
use crate::kmem::Kmem;
use crate::platform::Platform;

/// The shim's failure callback, `void (*callback)(void *private)`.
pub type ShimCallback = unsafe extern "C" fn(private: *mut c_void);

/// The shim's per-cache state (see the module docs).
pub(crate) struct ShimHooks {
    /// The gate is on (`kmem_cache_set_non_kernel` was called).
    on: AtomicBool,
    /// `non_kernel`: allocations without `__GFP_DIRECT_RECLAIM` left.
    budget: AtomicU32,
    /// The callback as a pointer (null: none).
    callback: AtomicPtr<()>,
    /// `private`.
    private: AtomicPtr<c_void>,
    /// `exec_callback`: a failure armed the callback.
    pending: AtomicBool,
    /// Subtracted from the raw allocation counts to give `nr_tallocated`.
    uncounted: AtomicI64,
}

impl ShimHooks {
    pub(crate) const fn new() -> Self {
        Self {
            on: AtomicBool::new(false),
            budget: AtomicU32::new(0),
            callback: AtomicPtr::new(ptr::null_mut()),
            private: AtomicPtr::new(ptr::null_mut()),
            pending: AtomicBool::new(false),
            uncounted: AtomicI64::new(0),
        }
    }

    /// Whether the gate is on.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Objects that went out of the cache's slabs without reaching a user (`n` > 0), or came
    /// back to a user without a new allocation (`n` < 0): see `nr_tallocated`.
    pub(crate) fn uncount(&self, n: i64) {
        self.uncounted.fetch_add(n, Relaxed);
    }
}

impl Cache {
    /// Every successful allocation the cache counted: fast path, and slow-path attempts less
    /// the failed ones (the per-CPU sums are `/proc/slabinfo`'s, [`super::CacheInfo`]).
    fn allocations(&self) -> u64 {
        let info = super::slabinfo::info_of(self);
        info.alloc_fast.wrapping_add(info.alloc_slow).wrapping_sub(self.stats.alloc_failed.load(Relaxed))
    }

    /// `nr_tallocated` (see the module docs); read while other threads allocate, the parts may
    /// disagree for a moment, so it saturates at 0.
    fn nr_tallocated(&self) -> usize {
        let n = (self.allocations() as i64).wrapping_sub(self.shim.uncounted.load(Relaxed));
        usize::try_from(n).unwrap_or(0)
    }
}

impl<P: Platform> Kmem<P> {
    /// The shim's gate, at the start of an allocation's slow path on a cache with the hooks on
    /// (no lock held): runs an armed callback, then admits the request (true) or fails it
    /// (false, arming the callback).
    #[cold]
    pub(crate) fn shim_admit(&self, s: &Cache, gfp: Gfp) -> bool {
        let h = &s.shim;
        if h.pending.load(Relaxed) && h.pending.swap(false, Relaxed) {
            // Acquire: pairs with the setters' Release, so the callback and its argument are
            // seen as stored, with what they point to.
            let cb = h.callback.load(Acquire);
            if !cb.is_null() {
                // SAFETY: Stored by `kmem_cache_set_callback` from a `ShimCallback` (same size
                // and representation as a data pointer on every platform kmem supports).
                let cb: ShimCallback = unsafe { core::mem::transmute::<*mut (), ShimCallback>(cb) };
                // SAFETY: `kmem_cache_set_callback`'s caller promised `cb` may be called with
                // the cache's private pointer at any allocation from it, from any thread. The
                // cache is pinned (`Cache::has_hooks`): a callback that destroys it does not
                // free it under this allocation.
                unsafe { cb(h.private.load(Acquire)) };
            }
        }
        if gfp.contains(__GFP_DIRECT_RECLAIM) {
            return true;
        }
        if h.budget.fetch_update(Relaxed, Relaxed, |b| b.checked_sub(1)).is_ok() {
            return true;
        }
        h.pending.store(true, Relaxed);
        false
    }

    /// The teardown's part: a cache with the hooks on gives back its hold of `failslab`.
    pub(crate) fn shim_retire(&self, s: &Cache) {
        if s.shim.on.swap(false, Relaxed) {
            self.slabs.failslab.release();
        }
    }

    /// `kmem_cache_set_non_kernel(cachep, val)`: the cache's budget of allocations without
    /// `__GFP_DIRECT_RECLAIM` becomes `val`; the first call turns the gate on for good (see the
    /// module docs). A handle that is not a live cache is reported and ignored.
    ///
    /// A cache others share — a kmalloc cache, or one with merged aliases — gets the gate all
    /// the same, with a warning the first time: its gate and counters cover every user of it.
    #[track_caller]
    pub fn kmem_cache_set_non_kernel(&self, cache: CacheRef, val: u32) {
        let caller = Location::caller();
        let Some(s) = self.checked_cache(cache, "kmem_cache_set_non_kernel", caller) else { return };
        s.shim.budget.store(val, Relaxed);
        if !s.shim.on.swap(true, Relaxed) {
            self.slabs.failslab.hold();
            if s.refcount() > 1 || s.flags().intersects(super::flags::SLAB_KMALLOC) {
                self.warn_shared_gate(s, caller);
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn warn_shared_gate(&self, s: &Cache, caller: &Location<'_>) {
        self.platform().log(
            crate::platform::Level::Warning,
            format_args!(
                "WARNING: CPU: {} at {caller} kmem_cache_set_non_kernel: cache {} is shared (kmalloc, or merged aliases: {}); its gate and counters cover all its users (create the cache with SLAB_NO_MERGE)",
                self.platform().cpu().unwrap_or(0),
                s.name(),
                s.refcount() - 1,
            ),
        );
        self.platform().dump_stack(caller);
    }

    /// `kmem_cache_set_callback(cachep, callback)`: what runs, with the private pointer, at
    /// the start of the next allocation after a failure of the gate (`None`: nothing). A
    /// handle that is not a live cache is reported and ignored.
    ///
    /// # Safety
    /// Until it is replaced, or the cache destroyed, `callback` may be called from any thread
    /// at the start of any allocation from this cache (also a bulk one or a sheaf's fill),
    /// with whatever pointer [`Kmem::kmem_cache_set_private`] last stored (null until then),
    /// and must be sound to call so. (Destroying the cache from it is misuse, reported when
    /// the cache is torn down with the allocation's object still out.)
    #[track_caller]
    pub unsafe fn kmem_cache_set_callback(&self, cache: CacheRef, callback: Option<ShimCallback>) {
        let Some(s) = self.checked_cache(cache, "kmem_cache_set_callback", Location::caller()) else { return };
        let cb = callback.map_or(ptr::null_mut(), |f| f as *mut ());
        s.shim.callback.store(cb, Release);
    }

    /// `kmem_cache_set_private(cachep, private)`: the callback's argument. A handle that is
    /// not a live cache is reported and ignored.
    #[track_caller]
    pub fn kmem_cache_set_private(&self, cache: CacheRef, private: *mut c_void) {
        let Some(s) = self.checked_cache(cache, "kmem_cache_set_private", Location::caller()) else { return };
        s.shim.private.store(private, Release);
    }

    /// `kmem_cache_nr_allocated(cachep)`: objects of the cache out with users (see the module
    /// docs). 0, reported, for a handle that is not a live cache.
    #[track_caller]
    pub fn kmem_cache_nr_allocated(&self, cache: CacheRef) -> usize {
        self.checked_cache(cache, "kmem_cache_nr_allocated", Location::caller())
            .map_or(0, |s| super::slabinfo::info_of(s).in_use())
    }

    /// `kmem_cache_nr_tallocated(cachep)`: objects handed out since the cache was made or
    /// since the last [`Kmem::kmem_cache_zero_nr_tallocated`]. 0, reported, for a handle that
    /// is not a live cache.
    #[track_caller]
    pub fn kmem_cache_nr_tallocated(&self, cache: CacheRef) -> usize {
        self.checked_cache(cache, "kmem_cache_nr_tallocated", Location::caller()).map_or(0, Cache::nr_tallocated)
    }

    /// `kmem_cache_zero_nr_tallocated(cachep)`: `nr_tallocated` starts again from 0. A handle
    /// that is not a live cache is reported and ignored.
    #[track_caller]
    pub fn kmem_cache_zero_nr_tallocated(&self, cache: CacheRef) {
        let Some(s) = self.checked_cache(cache, "kmem_cache_zero_nr_tallocated", Location::caller()) else { return };
        // Added, not stored: a correction made meanwhile by another thread is kept.
        s.shim.uncount(s.nr_tallocated() as i64);
    }

    /// `kmem_cache_get_alloc(cachep)`: the object size times `nr_allocated`. 0, reported,
    /// for a handle that is not a live cache.
    #[track_caller]
    pub fn kmem_cache_get_alloc(&self, cache: CacheRef) -> usize {
        self.checked_cache(cache, "kmem_cache_get_alloc", Location::caller())
            .map_or(0, |s| s.object_size() * super::slabinfo::info_of(s).in_use())
    }

    /// The shim's global `int nr_allocated`, a function here: `nr_allocated` summed over the
    /// machine's live caches other than kmalloc's (the shim counts `kmem_cache_alloc`'s objects
    /// there, and `kmalloc`'s in a counter of their own, `tools/lib/slab.c`'s
    /// `kmalloc_nr_allocated`, which kmem does not offer).
    pub fn kmem_nr_allocated(&self) -> usize {
        let mut n = 0;
        self.walk_caches(|s| {
            if !s.flags().intersects(super::flags::SLAB_KMALLOC) {
                n += super::slabinfo::info_of(s).in_use();
            }
        });
        n
    }
}
