//! The handshake between a request that sleeps for memory and the frees that wake it.
//!
//! A sleeper announces itself (`prepare`: waiters += 1, read the sequence word as its ticket,
//! then a `SeqCst` fence), checks the free lists once more, and sleeps only while the word still
//! holds its ticket. A freer makes pages visible, then (`wake`: a `SeqCst` fence, then reads
//! `waiters`) bumps the word and wakes if anyone waits. The two fences are Dekker's handshake:
//! either the sleeper's check sees the pages, or the freer's read sees the sleeper — and then
//! its bump comes after the sleeper read its ticket, so the futex wait cannot sleep through it.
//! `tests/loom.rs` checks this file under every interleaving (loom models `SeqCst` fences
//! exactly; it would not for `SeqCst` loads and stores alone).

#[cfg(not(kmem_loom))]
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst, fence};
#[cfg(kmem_loom)]
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst, fence};

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

    /// Announces a sleeper; returns the ticket to sleep on. Check the resource after this.
    pub fn prepare(&self) -> u32 {
        self.waiters.fetch_add(1, Relaxed);
        let ticket = self.seq.load(Relaxed);
        fence(SeqCst);
        ticket
    }

    /// The word a sleeper with `ticket` sleeps on while it still equals `ticket`.
    pub fn word(&self) -> &AtomicU32 {
        &self.seq
    }

    /// Ends a sleeper's wait (woken, timed out, or not needed after all).
    pub fn finish(&self) {
        self.waiters.fetch_sub(1, Relaxed);
    }

    /// Called after making the resource visible: if anyone waits, changes the word and calls
    /// `wake` with it (the futex wake). Returns whether it woke.
    pub fn wake(&self, wake: impl FnOnce(&AtomicU32)) -> bool {
        fence(SeqCst);
        if self.waiters.load(Relaxed) == 0 {
            return false;
        }
        self.seq.fetch_add(1, Relaxed);
        wake(&self.seq);
        true
    }
}
