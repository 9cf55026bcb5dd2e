//! The free path of a pool (`mempool_free`; MP-3, MP-7, TST-16): an element goes back into
//! the reserve while it is short of `max(min_nr, 1)`, waking sleepers, and otherwise to the
//! backing allocator.
//!
//! The decision is lock-free: [`Mempool::free_check`] reads the one byte of `free_flags` (after
//! an `Acquire` fence pairing with the `Release` fence of [`Mempool::pop`], the kernel's
//! `smp_rmb`/`smp_wmb`), and only when it says the reserve is short (or debugging is on) does
//! the free take the lock (`free_slow`, out of line) and decide again under it. The fast path
//! ([`Mempool::free`], [`Mempool::free_inline`], [`Mempool::free_checked`], all inline) is that
//! load, a test, and the backing allocator's free (`free_fn`, or the caller's statically known
//! one). An owner that marked its own free path ([`Mempool::set_owner_free`]) asks
//! [`Mempool::owner_may_free`] instead and frees the element itself.
//!
//! # Invariants
//! - `free_flags` is written only under the reserve lock (by `update_free_locks` whenever
//!   `curr_nr`, `min_nr`, poisoning or tracking change, and by `set_owner_free`); a racy read
//!   that says "no lock" while the reserve has just become short only sends one element to the
//!   backing allocator, as the kernel's racy `curr_nr` read does.
//! - Under the lock, a free that pushes an element lowers `Reserve::out` (never below 0) and,
//!   with sleepers registered, bumps `wait_seq` before unlocking and wakes them after
//!   (`unlock_and_wake`), so a registered sleeper's ticket is stale by the time the lock drops.
//! - With poisoning on, an element already in the reserve or not of the pool's kind is reported
//!   and left alone (neither counted nor pushed nor freed).
//!
//! Lock order: the reserve lock is a leaf; `free_fn` and the platform's `wake_all` run after it
//! is dropped.

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Acquire, Relaxed};

use super::free_check::free_flag;
use super::reserve::Reserve;
use super::{FreeCheck, Mempool};
use crate::sync::SpinGuard;
use crate::sync::atomic::fence;

impl Mempool {
    /// `mempool_free(element, pool)`: back into the reserve if it is short of `min_nr` (or
    /// empty in a zero-minimum pool), waking sleepers; otherwise to `free_fn`. NULL is ignored
    /// (MP-3, MP-7). With poisoning on, a double free of an element in the reserve and an
    /// element the pool cannot have handed out are reported and ignored (TST-16).
    ///
    /// # Safety
    /// `element` is NULL or an element `free_fn` accepts (normally one this pool handed out)
    /// that nobody uses any more.
    #[track_caller]
    #[inline]
    pub unsafe fn free(&self, element: *mut c_void) {
        // SAFETY: The caller's promise; the last step calls `free_fn` itself (nothing for a pool
        // without one).
        unsafe { self.free_inline(element, |e| self.backing_free(e)) }
    }

    /// [`Self::free`] for a caller that knows the backing allocator statically: `last` is
    /// called instead of `free_fn` through its pointer when the element goes back to it.
    ///
    /// # Safety
    /// As [`Self::free`]; `last(element)` does what `free_fn(element, pool_data)` does.
    #[track_caller]
    #[inline(always)]
    pub unsafe fn free_inline(&self, element: *mut c_void, last: impl FnOnce(*mut c_void)) {
        let Some(element) = NonNull::new(element) else { return };
        // SAFETY: The caller's promise, and the check is this pool's, read now.
        unsafe { self.free_checked(element, self.free_check(), last) }
    }

    /// [`Self::free_inline`] with the flags already read by [`Self::free_check`] (on this
    /// pool, for this free).
    ///
    /// # Safety
    /// As [`Self::free_inline`].
    #[track_caller]
    #[inline(always)]
    pub unsafe fn free_checked(&self, element: NonNull<c_void>, check: FreeCheck, last: impl FnOnce(*mut c_void)) {
        // `curr_nr < min_nr` (or an empty zero-minimum pool), read without the lock.
        if check.locks() && self.free_slow(element) {
            return;
        }
        last(element.as_ptr());
    }

    /// The locked part of `mempool_free`: the debug checks and the count, then the push if the
    /// reserve is still short, and the wake-up. Returns true if the element was dealt with.
    #[inline(never)]
    #[track_caller]
    fn free_slow(&self, element: NonNull<c_void>) -> bool {
        let mut r = self.reserve.lock();
        if self.poison.load(Relaxed) && !self.check_free(&r, element, "mempool_free", Location::caller()) {
            return true; // Reported; the element is left alone.
        }
        self.track(-1);
        if !self.has_room(&r) {
            return false;
        }
        self.add_element(&mut r, element);
        r.replaced();
        self.unlock_and_wake(r);
        true
    }

    /// Unlocks the reserve after a free put elements into it, and wakes its sleepers if it has
    /// any (`wake_up(&pool->wait)`, MP-7).
    pub(super) fn unlock_and_wake(&self, r: SpinGuard<'_, Reserve>) {
        let wake = r.waiters > 0;
        if wake {
            // Under the lock, so every registered sleeper's ticket is now out of date.
            self.wait_seq.fetch_add(1, Relaxed);
        }
        drop(r);
        if wake && let Some(platform) = self.platform() {
            platform.wake_all(&self.wait_seq);
            self.stats.wakeups.fetch_add(1, Relaxed);
        }
    }

    /// Marks (or unmarks) the owner's own free path: while it is marked and no free needs the
    /// lock, [`Self::owner_may_free`] is true. The owner (the `kmem` crate's slab pools) uses
    /// it to test, with one load, both that the reserve is full and that the pool is of the
    /// kind its inlined free handles.
    ///
    /// # Safety
    /// Only the code that created the pool and keeps it (such as the `kmem` crate's
    /// `RawMempool`) calls this, and marks the pool only while its own free path handles the
    /// pool's elements: that owner relies on the mark (`RawMempool` frees a marked pool's
    /// elements to its cache without another test).
    pub unsafe fn set_owner_free(&self, on: bool) {
        let _r = self.reserve.lock();
        let flags = self.free_flags.load(Relaxed);
        let flags = if on { flags & !free_flag::NOT_OWNED } else { flags | free_flag::NOT_OWNED };
        self.free_flags.store(flags, Relaxed);
    }

    /// `mempool_free`'s lock-free decision for an owner that marked its free path
    /// ([`Self::set_owner_free`]): true when the path is marked and the element goes to the
    /// backing allocator (the reserve is not short, no debugging), with the ordering
    /// [`Self::free_inline`] gives. Then the owner frees the element itself, as `free_fn`
    /// would; otherwise it calls [`Self::free_inline`] or [`Self::free`].
    #[inline(always)]
    pub fn owner_may_free(&self) -> bool {
        self.free_check().owner()
    }

    /// `mempool_free`'s one lock-free read (the flags, after the `Acquire` fence that pairs
    /// with the `Release` fence in `pop`, the kernel's `smp_rmb`), for a caller that decides
    /// its own path from it and then frees with [`Self::free_checked`].
    #[inline(always)]
    pub fn free_check(&self) -> FreeCheck {
        fence(Acquire);
        FreeCheck(self.free_flags.load(Relaxed))
    }
}
