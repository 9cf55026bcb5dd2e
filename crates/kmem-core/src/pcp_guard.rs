//! Who may touch a CPU slot's per-CPU lists right now: the owner on its fast path, or a remote
//! drainer (`drain_all_pages`, reclaim) — never both.
//!
//! An asymmetric Dekker handshake keeps atomic read-modify-writes off the owner's path:
//! - owner `enter`: `in_use = true` (plain store), a *light* barrier (a compiler fence), then
//!   `claimed` is read; if a drainer holds the slot, the owner backs off and uses the zone lists
//!   for this operation. `exit` is a release store of `in_use = false`.
//! - drainer `claim`: `claimed = true` (swap; one drainer at a time), then a *heavy* barrier —
//!   `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` on the userspace machine, which makes every
//!   running thread of the process execute a full barrier — then reads `in_use`; if the owner
//!   is inside, the drainer backs off (and leaves a drain request).
//!
//! The heavy barrier pairs with every light one as two `SeqCst` fences would, so at least one
//! side sees the other's flag: they never both proceed. A drainer that finds the owner inside
//! keeps its claim and waits (boundedly) for the owner to leave: owner sections never sleep, and
//! every entry after the barrier sees the claim and backs off, so once `in_use` reads false the
//! lists are the drainer's — the kernel's `drain_all_pages` also waits for every CPU.
//! `tests/loom.rs` checks this file with both barriers modelled as `SeqCst` fences. Without a
//! heavy barrier (a platform that has none), remote claims are never attempted and drains stay
//! requests.

#[cfg(not(kmem_loom))]
use core::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release, compiler_fence};
#[cfg(kmem_loom)]
use loom::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release};

/// The two flags of the handshake.
pub struct SlotGuard {
    in_use: AtomicBool,
    claimed: AtomicBool,
}

impl Default for SlotGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotGuard {
    /// Free: no owner inside, no drainer.
    #[cfg(not(kmem_loom))]
    pub const fn new() -> Self {
        Self { in_use: AtomicBool::new(false), claimed: AtomicBool::new(false) }
    }

    /// Free: no owner inside, no drainer.
    #[cfg(kmem_loom)]
    pub fn new() -> Self {
        Self { in_use: AtomicBool::new(false), claimed: AtomicBool::new(false) }
    }

    /// The owner enters; false if a drainer holds the slot (then the owner must not touch the
    /// lists, and must not call [`SlotGuard::exit`]).
    #[inline(always)]
    pub fn enter(&self) -> bool {
        self.in_use.store(true, core::sync::atomic::Ordering::Relaxed);
        light_barrier();
        if self.claimed.load(Acquire) {
            self.in_use.store(false, Release);
            return false;
        }
        true
    }

    /// The owner leaves.
    #[inline(always)]
    pub fn exit(&self) {
        self.in_use.store(false, Release);
    }

    /// A drainer takes the slot; `heavy_barrier` is the platform's process-wide barrier; an
    /// owner inside is waited for up to `patience` rounds of `relax`. Returns true if the
    /// drainer now owns the lists (release with [`SlotGuard::unclaim`]).
    pub fn claim(&self, heavy_barrier: impl FnOnce(), patience: usize, relax: impl FnMut()) -> bool {
        if !self.mark_claimed() {
            return false;
        }
        heavy_barrier();
        self.confirm_claim(patience, relax)
    }

    /// First half of [`SlotGuard::claim`], so one heavy barrier can serve many slots: marks the
    /// slot claimed; false if another drainer has it.
    pub fn mark_claimed(&self) -> bool {
        !self.claimed.swap(true, Acquire)
    }

    /// Second half of [`SlotGuard::claim`], after the heavy barrier: waits up to `patience`
    /// rounds of `relax` for an owner inside to leave. True if the drainer now owns the lists;
    /// otherwise the claim is dropped.
    pub fn confirm_claim(&self, patience: usize, mut relax: impl FnMut()) -> bool {
        for _ in 0..=patience {
            if !self.in_use.load(Acquire) {
                return true;
            }
            relax();
        }
        self.claimed.store(false, Release);
        false
    }

    /// The drainer gives the slot back.
    pub fn unclaim(&self) {
        self.claimed.store(false, Release);
    }
}

#[cfg(not(kmem_loom))]
#[inline(always)]
fn light_barrier() {
    compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

#[cfg(kmem_loom)]
fn light_barrier() {
    loom::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
}
