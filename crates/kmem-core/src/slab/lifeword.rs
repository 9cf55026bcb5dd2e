//! The lock-free word behind a cache's lifetime (`lifetime.rs`): a count of operations that
//! pin the cache, `DYING` once its last reference is gone, `DEAD` once one party has claimed
//! its teardown. Kept apart from the cache so loom can check the handoff on its own
//! (`tests/loom.rs`): whatever the interleaving of pins, unpins and the last destroy, exactly
//! one party claims the teardown, and only when no pin is left.
//!
//! Transitions (all by one atomic read-modify-write):
//! - `pin`: `n -> n + 1`, only by a holder (a live reference, a pin, or the cache list's lock
//!   with the cache not dying).
//! - `mark_dying` (the last destroy): sets `DYING`; also `DEAD` (claimed) when no pin is left.
//! - `unpin`: `DYING | 1 -> DYING | DEAD` (claimed by the last unpinner), else `n -> n - 1`.
//! - `unpin_later`: `n -> n - 1`; reaching plain `DYING` leaves an orphan for `claim_orphan`.
//! - `claim_orphan`: `DYING -> DYING | DEAD`.
//! - `hand_back`: a claimant that finds pins again (slabs waiting for a grace period, pinned
//!   during its own teardown) clears `DEAD`: the last of those unpins claims again.

#[cfg(not(kmem_loom))]
use core::sync::atomic::{
    AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed},
};
#[cfg(kmem_loom)]
use loom::sync::atomic::{
    AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed},
};

/// The last reference is gone; the teardown is owed.
const DYING: usize = 1 << (usize::BITS - 1);
/// The teardown is claimed.
const DEAD: usize = 1 << (usize::BITS - 2);
/// The pin count.
const PINS: usize = DEAD - 1;

/// A cache's lifetime word (see the module docs).
#[derive(Debug)]
pub struct LifeWord(AtomicUsize);

impl Default for LifeWord {
    fn default() -> Self {
        Self::new()
    }
}

impl LifeWord {
    /// A live cache with no pin.
    #[must_use]
    pub fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// One more operation holds the cache. The caller must already hold it.
    #[inline]
    pub fn pin(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Ends a pin; true if this was the last pin of a dying cache: the caller has claimed its
    /// teardown.
    #[inline]
    pub fn unpin(&self) -> bool {
        let prev = self.0.fetch_update(AcqRel, Acquire, |v| Some(if v == DYING | 1 { DYING | DEAD } else { v - 1 }));
        prev == Ok(DYING | 1)
    }

    /// Ends a pin without claiming; true if the cache is now an orphan (dying, unpinned,
    /// unclaimed), for [`LifeWord::claim_orphan`].
    #[inline]
    pub fn unpin_later(&self) -> bool {
        self.0.fetch_sub(1, AcqRel) == DYING | 1
    }

    /// The last reference is gone: marks the cache dying. True if no pin was left: the caller
    /// has claimed the teardown.
    #[inline]
    pub fn mark_dying(&self) -> bool {
        let prev =
            self.0.fetch_update(AcqRel, Acquire, |v| Some(if v & PINS == 0 { v | DYING | DEAD } else { v | DYING }));
        prev.is_ok_and(|v| v & PINS == 0)
    }

    /// Claims the teardown of an orphan; false if it is not one (any more).
    #[inline]
    pub fn claim_orphan(&self) -> bool {
        self.0.compare_exchange(DYING, DYING | DEAD, AcqRel, Relaxed).is_ok()
    }

    /// A claimant that finds pins gives the claim back (true): the last unpin claims again.
    /// False (claim kept) when no pin is left.
    #[inline]
    pub fn hand_back(&self) -> bool {
        self.0.fetch_update(AcqRel, Acquire, |v| (v & PINS != 0).then_some(v & !DEAD)).is_ok()
    }

    /// Whether the last reference is gone.
    #[inline]
    pub fn is_dying(&self) -> bool {
        self.0.load(Acquire) & DYING != 0
    }

    /// Whether the cache is an orphan (dying, unpinned, unclaimed).
    #[inline]
    pub fn is_orphan(&self) -> bool {
        self.0.load(Acquire) == DYING
    }
}
