//! The reserve of a pool (`pool->elements` with `curr_nr`): what the pool's lock protects and
//! the stack operations on it — `remove_element`/`add_element` (the kernel's names), `pop` for
//! the allocation paths, `push_fill` for filling at init and resize, `has_room`, and
//! `update_free_locks`, which keeps the free path's lock-free hint in step with the counts.
//!
//! # Invariants
//! - Every function here that takes `&Reserve`/`&mut Reserve` is called with the pool's lock
//!   held (the argument is the locked guard's contents); `curr_nr`, `min_nr` and `poison` are
//!   changed only there, and each change is followed by `update_free_locks` before the lock
//!   is dropped.
//! - Slots `0..curr_nr` of `Reserve::stack` hold elements; `add_element` writes slot `curr_nr`
//!   only after its caller checked `has_room` (`curr_nr < max(min_nr, 1)` and inside the
//!   array); `remove_element` takes slot `curr_nr - 1`.
//! - `pop` issues a `Release` fence after unlocking: whoever gets the element from the caller
//!   without synchronising sees a `curr_nr` from after the removal (the kernel's `smp_wmb`,
//!   paired with the `Acquire` fence of `Mempool::free_check`).
//!
//! Lock order: the reserve lock is a leaf. Nothing here calls `alloc_fn`, `free_fn`, the
//! [`PoolEnv`](super::PoolEnv) or sleeps; poison reports are logged under the lock.

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};

use super::Mempool;
use super::free_check::free_flag;
use super::stack::Stack;
use crate::sync::atomic::fence;

/// What the pool's lock protects besides `curr_nr`/`min_nr`.
pub(super) struct Reserve {
    /// `pool->elements`.
    pub(super) stack: Stack,
    /// Sleepers in `wait_for_free` (see the pool's invariants, `mempool`).
    pub(super) waiters: u32,
    /// Elements taken from the reserve and not yet replaced by a free: raised by every take,
    /// lowered by every free into the reserve (never below 0: a free that fills a reserve a
    /// grow left short replaces nothing taken), and capped by a shrink at what the smaller
    /// reserve can still take back (the rest goes to `free_fn` when freed). What `mempool_exit`
    /// reports as leaked when the pool does not track its elements.
    pub(super) out: isize,
    /// The element size a custom pool declared for poisoning ([`Mempool::set_element_size`]).
    pub(super) custom_size: usize,
}

impl Reserve {
    pub(super) const EMPTY: Reserve = Reserve { stack: Stack::EMPTY, waiters: 0, out: 0, custom_size: 0 };

    /// A free put an element into the reserve.
    pub(super) fn replaced(&mut self) {
        self.out = (self.out - 1).max(0);
    }
}

impl Mempool {
    /// Calls `f` with every element in the reserve, bottom to top, under the reserve lock (so
    /// `f` must not call into the pool): what a leak scan counts as referenced by the pool.
    pub fn for_each_reserved(&self, mut f: impl FnMut(NonNull<c_void>)) {
        let r = self.reserve.lock();
        for i in 0..self.curr_nr.load(Relaxed) {
            f(r.stack.get(i));
        }
    }

    /// Pops the top of the reserve, if any; `handed_out` counts it as an element out.
    #[track_caller]
    pub(super) fn pop(&self, handed_out: bool) -> Option<NonNull<c_void>> {
        let mut r = self.reserve.lock();
        let element = self.remove_element(&mut r)?;
        if handed_out {
            r.out += 1;
            self.track(1);
            // Under the lock: no other writer.
            self.stats.reserve_allocs.store(self.stats.reserve_allocs.load(Relaxed) + 1, Relaxed);
        }
        drop(r);
        // Pairs with the `Acquire` fence in `free`: whoever gets this element from us without
        // synchronising sees a `curr_nr` from after this removal (the kernel's `smp_wmb`).
        fence(Release);
        Some(element)
    }

    /// `remove_element`: takes the top element (checking its poison if that is on). Called
    /// with the lock held (`r` is the locked reserve).
    #[track_caller]
    #[inline(always)]
    pub(super) fn remove_element(&self, r: &mut Reserve) -> Option<NonNull<c_void>> {
        let curr = self.curr_nr.load(Relaxed);
        if curr == 0 {
            return None;
        }
        let element = r.stack.get(curr - 1);
        // INVARIANT: Slot `curr - 1` is no longer counted, so it no longer holds an element.
        self.curr_nr.store(curr - 1, Relaxed);
        self.update_free_locks();
        if self.poison.load(Relaxed) {
            self.check_poison(r, element, curr - 1, Location::caller());
        }
        Some(element)
    }

    /// `add_element`: pushes `element` (poisoning it if that is on); the caller checked room.
    #[inline(always)]
    pub(super) fn add_element(&self, r: &mut Reserve, element: NonNull<c_void>) {
        let curr = self.curr_nr.load(Relaxed);
        if self.poison.load(Relaxed) {
            self.poison_element(r, element);
        }
        r.stack.set(curr, element);
        // INVARIANT: Slot `curr` now holds an element; the caller checked `curr < max(min_nr, 1)`.
        self.curr_nr.store(curr + 1, Relaxed);
        self.update_free_locks();
    }

    /// Recomputes [`free_flag::LOCK`]; called under the lock after `curr_nr`, `min_nr` or
    /// `poison` changed.
    #[inline(always)]
    pub(super) fn update_free_locks(&self) {
        let (curr, min) = (self.curr_nr.load(Relaxed), self.min_nr.load(Relaxed));
        let lock = curr < min.max(1) || self.poison.load(Relaxed) || self.tracking;
        let owned = self.free_flags.load(Relaxed) & free_flag::NOT_OWNED;
        self.free_flags.store(owned | if lock { free_flag::LOCK } else { 0 }, Relaxed);
    }

    /// Whether the locked reserve has room for one more element: below `min_nr` (or empty in
    /// a zero-minimum pool) and inside the array.
    pub(super) fn has_room(&self, r: &Reserve) -> bool {
        let (curr, min) = (self.curr_nr.load(Relaxed), self.min_nr.load(Relaxed));
        curr < min.max(1) && curr < r.stack.capacity()
    }

    /// Pushes a new element while filling the reserve (init, resize); returns whether it did.
    pub(super) fn push_fill(&self, element: NonNull<c_void>) -> bool {
        let mut r = self.reserve.lock();
        if !self.has_room(&r) {
            return false;
        }
        self.add_element(&mut r, element);
        true
    }
}
