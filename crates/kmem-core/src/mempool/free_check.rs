//! `mempool_free`'s lock-free decision: the one byte of pool state it reads
//! (`Mempool::free_flags`, kept by the pool under its lock whenever `curr_nr`, `min_nr`,
//! poisoning, tracking or the owner's mark change) and what that byte says.

/// What [`Mempool::free_check`] read: whether a free must take the lock, and whether the
/// owner's marked free path applies.
///
/// [`Mempool::free_check`]: super::Mempool::free_check
#[derive(Clone, Copy, Debug)]
pub struct FreeCheck(pub(super) u8);

impl FreeCheck {
    /// The owner's marked path applies and no free needs the lock
    /// ([`Mempool::set_owner_free`], [`Mempool::owner_may_free`]).
    ///
    /// [`Mempool::set_owner_free`]: super::Mempool::set_owner_free
    /// [`Mempool::owner_may_free`]: super::Mempool::owner_may_free
    #[inline(always)]
    pub fn owner(self) -> bool {
        self.0 == 0
    }

    /// A free must take the lock: the reserve is short (`curr_nr < max(min_nr, 1)`), or
    /// poisoning or tracking is on.
    #[inline(always)]
    pub fn locks(self) -> bool {
        self.0 & free_flag::LOCK != 0
    }
}

/// The bits of `Mempool::free_flags`.
pub(super) mod free_flag {
    /// `curr_nr < max(min_nr, 1)`, poisoning or tracking on: a free must take the lock.
    pub(in crate::mempool) const LOCK: u8 = 1 << 0;
    /// The owner's free path is not marked ([`Mempool::set_owner_free`]).
    ///
    /// [`Mempool::set_owner_free`]: crate::mempool::Mempool::set_owner_free
    pub(in crate::mempool) const NOT_OWNED: u8 = 1 << 1;
}
