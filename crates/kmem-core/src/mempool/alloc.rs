//! The allocation path of a pool (`mempool_alloc`, `mempool_alloc_preallocated`; MP-2, MP-4,
//! MP-5, MP-6, MP-8, MP-14): the backing allocator first, then the reserve, then the full mask,
//! then sleeping until a free refills the reserve.
//!
//! The fast path ([`Mempool::alloc`], [`Mempool::alloc_inline`]) is `alloc_first` then
//! `alloc_passes`, both `#[inline(always)]`: one platform call (`fast_cpu`, which answers
//! `might_sleep`'s question), one load of the `fail_mempool_alloc` attribute, and the backing
//! allocator through `first` (`alloc_fn`, or the caller's statically known allocator). No lock,
//! no atomic read-modify-write and no count unless the pool tracks its elements. Everything
//! else — a checked mask (`__GFP_ZERO`, a sleeping mask in atomic context), the reserve, the
//! retry and the sleep — is out of line (`alloc_checked`, `check_gfp`, `alloc_slow`), so the
//! fast path inlined into a caller stays small.
//!
//! # Invariants
//! - An element is returned only after it left the backing allocator or the reserve
//!   ([`Mempool::pop`], under the reserve lock, followed by the `Release` fence that pairs with
//!   the free path's `Acquire` fence); with tracking on, every element returned is counted in
//!   `tracked` once (by `first`, `alloc_slow` or `pop`).
//! - With `__GFP_DIRECT_RECLAIM` (and not in atomic context) `alloc` never returns NULL: it
//!   loops, sleeping at most [`MEMPOOL_WAIT_TIMEOUT_NS`] per round.
//! - A sleeper registers in `Reserve::waiters` and reads its ticket (`wait_seq`) under the lock
//!   after seeing `curr_nr` below what it needs (see the pool's invariants in the parent
//!   module): it cannot miss the wake-up of a free that refills the reserve.
//!
//! Lock order: the reserve lock is taken only inside `pop` and `wait_for_free`, never across a
//! call of `alloc_fn`, the platform's `wait`, or a report other than the poison checks'.
//!
//! [`MEMPOOL_WAIT_TIMEOUT_NS`]: super::MEMPOOL_WAIT_TIMEOUT_NS

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use super::{MEMPOOL_WAIT_TIMEOUT_NS, Mempool, warn};
use crate::fault::FaultAttr;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_IO, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, __GFP_ZERO, Gfp};
use crate::platform::{Level, Platform};

impl Mempool {
    /// `mempool_alloc(pool, gfp)`: an element, or NULL — which never happens when `gfp` has
    /// `__GFP_DIRECT_RECLAIM` (MP-2, MP-4, MP-5, MP-6).
    #[track_caller]
    #[inline]
    pub fn alloc(&self, gfp: Gfp) -> *mut c_void {
        let first = |gfp| {
            let element = self.backing_alloc(gfp);
            if !element.is_null() {
                self.track(1);
            }
            element
        };
        // SAFETY: The first pass calls `alloc_fn` itself (nothing for a pool without one, so
        // an uninitialised pool is fine too) and counts what it returns, with the platform's
        // own answer and the pool's own attribute.
        unsafe { self.alloc_first(gfp, self.fast_cpu(), self.fail_alloc_attr(), first) }
    }

    /// [`Self::alloc`] for a caller that knows the backing allocator statically (the `kmem`
    /// crate's helper pools): the first pass calls `first` instead of `alloc_fn` through its
    /// pointer, so it can be inlined into the caller. Everything else is [`Self::alloc`]'s.
    ///
    /// # Safety
    /// - `first(gfp)` does what `alloc_fn(gfp, pool_data)` does (the same allocator, call and
    ///   result), so the pool behaves exactly as with the pointer.
    /// - `cpu` is what the pool's platform's `fast_cpu()` returns for the caller now.
    /// - `fail` is the pool's `fail_mempool_alloc` attribute: what its platform's
    ///   `fault_attr(FaultPoint::FailMempoolAlloc)` returns (a caller that holds the platform
    ///   reaches it with one load fewer than the pool, which keeps a pointer to it).
    /// - The pool is initialised (not zeroed, not exited) and does not track its elements
    ///   ([`Self::is_tracking`]; the first pass counts nothing, so a tracking pool goes
    ///   through [`Self::alloc`]).
    #[track_caller]
    #[inline(always)]
    pub unsafe fn alloc_inline(
        &self,
        gfp: Gfp,
        cpu: Option<usize>,
        fail: &FaultAttr,
        first: impl FnOnce(Gfp) -> *mut c_void,
    ) -> *mut c_void {
        debug_assert!(!self.tracking, "alloc_inline on a tracking pool");
        debug_assert!(ptr::eq(fail, self.fail_alloc_attr()), "alloc_inline with another attribute");
        // SAFETY: The caller's promise, and `first` need not count on a pool that does not track.
        unsafe { self.alloc_first(gfp, cpu, fail, first) }
    }

    /// The body of [`Self::alloc`]: the first pass through `first`, which counts its element
    /// when the pool tracks (so the untracked fast path has no test), then the slow path.
    ///
    /// # Safety
    /// As [`Self::alloc_inline`], except that on a tracking pool `first` counts the element it
    /// returns ([`Self::track`]).
    #[track_caller]
    #[inline(always)]
    unsafe fn alloc_first(
        &self,
        gfp: Gfp,
        cpu: Option<usize>,
        fail: &FaultAttr,
        first: impl FnOnce(Gfp) -> *mut c_void,
    ) -> *mut c_void {
        // `might_alloc`: only a caller without a fast CPU slot can be in atomic context. The
        // checked case is a call of its own, so that here `gfp` stays what the caller wrote
        // (usually a constant the backing allocator's fast path folds).
        if gfp.contains(__GFP_ZERO) || (cpu.is_none() && gfp.contains(__GFP_DIRECT_RECLAIM)) {
            // SAFETY: The caller's promise, passed on.
            return unsafe { self.alloc_checked(gfp, first) };
        }
        // SAFETY: The caller's promise, passed on.
        unsafe { self.alloc_passes(gfp, fail, first) }
    }

    /// [`Self::alloc_first`] for a mask that needs [`Self::check_gfp`] first.
    ///
    /// # Safety
    /// As [`Self::alloc_first`].
    #[cold]
    #[inline(never)]
    #[track_caller]
    unsafe fn alloc_checked(&self, gfp: Gfp, first: impl FnOnce(Gfp) -> *mut c_void) -> *mut c_void {
        let gfp = self.check_gfp(gfp, Location::caller());
        // SAFETY: The caller's promise, passed on.
        unsafe { self.alloc_passes(gfp, self.fail_alloc_attr(), first) }
    }

    /// The passes of `mempool_alloc` with a checked mask: the backing allocator through
    /// `first`, then [`Self::alloc_slow`].
    ///
    /// # Safety
    /// As [`Self::alloc_first`].
    #[track_caller]
    #[inline(always)]
    unsafe fn alloc_passes(&self, gfp: Gfp, fail: &FaultAttr, first: impl FnOnce(Gfp) -> *mut c_void) -> *mut c_void {
        let gfp = gfp.union(__GFP_NOMEMALLOC.union(__GFP_NORETRY).union(__GFP_NOWARN));
        // The first pass neither reclaims nor does I/O: the reserve is there for that.
        let gfp_temp = gfp.difference(__GFP_DIRECT_RECLAIM.union(__GFP_IO));
        // `fail_mempool_alloc` skips the backing allocator (one load when it is off).
        if !self.forced_to_reserve(fail) {
            let element = first(gfp_temp);
            if !element.is_null() {
                return element;
            }
        }
        self.alloc_slow(gfp, gfp_temp)
    }

    /// `VM_WARN_ON_ONCE(gfp & __GFP_ZERO)` and `might_alloc`; returns the mask to use.
    #[cold]
    #[inline(never)]
    fn check_gfp(&self, gfp: Gfp, caller: &Location<'_>) -> Gfp {
        let Some(platform) = self.platform() else { return gfp };
        if gfp.contains(__GFP_ZERO) && self.warned.fetch_or(warn::ZERO, Relaxed) & warn::ZERO == 0 {
            // MP-14: reserve elements are not zeroed, so `__GFP_ZERO` cannot be honoured.
            platform.log(
                Level::Warning,
                format_args!(
                    "WARNING: CPU: {} at {caller} mempool_alloc: __GFP_ZERO is not supported (reserved elements are not zeroed)",
                    platform.cpu().unwrap_or(0)
                ),
            );
        }
        if gfp.allow_blocking() && platform.in_atomic() {
            crate::report::might_sleep(platform, caller);
            // As the page allocator does (docs/deviations.md): go on without sleeping.
            return gfp.difference(__GFP_DIRECT_RECLAIM);
        }
        gfp
    }

    /// After a failed first pass: the reserve, the full mask, then sleeping (`repeat_alloc`).
    #[inline(never)]
    #[track_caller]
    fn alloc_slow(&self, gfp: Gfp, mut gfp_temp: Gfp) -> *mut c_void {
        loop {
            if let Some(element) = self.pop(true) {
                return element.as_ptr();
            }
            if gfp_temp != gfp {
                // The first pass failed and the reserve is empty: retry at once with the full mask.
                gfp_temp = gfp;
            } else if !gfp.contains(__GFP_DIRECT_RECLAIM) {
                return ptr::null_mut();
            } else {
                let Some(platform) = self.platform() else { return ptr::null_mut() };
                self.wait_for_free(platform, 1);
            }
            if self.forced_to_reserve(self.fail_alloc_attr()) {
                continue; // `repeat_alloc` asks `fail_mempool_alloc` again.
            }
            let element = self.backing_alloc(gfp_temp);
            if !element.is_null() {
                self.track(1);
                return element;
            }
        }
    }

    /// Sleeps until a free puts an element into the reserve or [`MEMPOOL_WAIT_TIMEOUT_NS`]
    /// passes; returns at once if the reserve holds `need` elements (refilled since the caller
    /// looked).
    pub(super) fn wait_for_free(&self, platform: &dyn Platform, need: usize) {
        let mut r = self.reserve.lock();
        if self.curr_nr.load(Relaxed) >= need.max(1) {
            return; // Refilled since we looked.
        }
        r.waiters += 1;
        // Read under the lock: a free that pushes after we unlock sees `waiters > 0` and bumps
        // the word first, so the wait below returns at once.
        let ticket = self.wait_seq.load(Relaxed);
        drop(r);
        self.stats.sleeps.fetch_add(1, Relaxed);
        let start = platform.now_ns();
        platform.wait(&self.wait_seq, ticket, MEMPOOL_WAIT_TIMEOUT_NS);
        if platform.now_ns().saturating_sub(start) >= MEMPOOL_WAIT_TIMEOUT_NS {
            self.stats.timeouts.fetch_add(1, Relaxed);
        }
        self.reserve.lock().waiters -= 1;
    }

    /// `mempool_alloc_preallocated`: an element from the reserve only, or NULL; never calls
    /// `alloc_fn` and never sleeps (MP-8).
    #[track_caller]
    pub fn alloc_preallocated(&self) -> *mut c_void {
        self.pop(true).map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}
