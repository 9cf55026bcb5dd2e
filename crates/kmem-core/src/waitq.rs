//! The handshake between a request that sleeps for memory and the frees that wake it.
//!
//! The resource (the free lists) is changed only under a lock (the zone lock). A sleeper
//! announces itself (`prepare`: waiters += 1, then reads the sequence word as its ticket),
//! then passes through the lock of every resource it could be woken for (takes and drops it),
//! checks the resource once more, and sleeps only while the word still holds its ticket. A
//! freer changes the resource and, still holding the lock, reads `waiters`
//! ([`WaitQueue::wake_locked`]); if anyone waits it bumps the word and wakes.
//!
//! The lock orders the two: if the freer's critical section came first, the sleeper's pass
//! through the lock makes the change visible to its check; if it came second, the freer's lock
//! acquisition makes the sleeper's `waiters += 1` (and its ticket read, before it) visible, so
//! the bump comes after the ticket and the futex wait cannot sleep through it. No fence is
//! needed on the free path. `tests/loom.rs` checks this under every interleaving.

#[cfg(not(kmem_loom))]
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
#[cfg(kmem_loom)]
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};

/// The word sleepers wait on (a futex word on the userspace machine).
pub type WaitWord = AtomicU32;

/// Sleepers waiting for frees.
pub struct WaitQueue {
    seq: AtomicU32,
    waiters: AtomicUsize,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty queue.
    #[cfg(not(kmem_loom))]
    pub const fn new() -> Self {
        Self { seq: AtomicU32::new(0), waiters: AtomicUsize::new(0) }
    }

    /// An empty queue.
    #[cfg(kmem_loom)]
    pub fn new() -> Self {
        Self { seq: AtomicU32::new(0), waiters: AtomicUsize::new(0) }
    }

    /// A cheap hint for fast paths: is anyone waiting right now?
    #[inline]
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Relaxed) != 0
    }

    /// Announces a sleeper; returns the ticket to sleep on. Then pass through the lock of every
    /// resource to wait for, and check the resource.
    pub fn prepare_locked(&self) -> u32 {
        self.waiters.fetch_add(1, Relaxed);
        self.seq.load(Relaxed)
    }

    /// The word a sleeper with `ticket` sleeps on while it still equals `ticket`.
    pub fn word(&self) -> &AtomicU32 {
        &self.seq
    }

    /// Ends a sleeper's wait (woken, timed out, or not needed after all).
    pub fn finish(&self) {
        self.waiters.fetch_sub(1, Relaxed);
    }

    /// Called by a freer that changed the resource and still holds its lock: if anyone waits,
    /// changes the word and calls `wake` with it (the futex wake). Returns whether it woke.
    pub fn wake_locked(&self, wake: impl FnOnce(&AtomicU32)) -> bool {
        if self.waiters.load(Relaxed) == 0 {
            return false;
        }
        self.seq.fetch_add(1, Relaxed);
        wake(&self.seq);
        true
    }
}
