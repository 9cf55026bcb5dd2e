//! `fork` support for a machine with private memory (`Builder::private_memory`): the child
//! gets a copy-on-write copy of the whole machine, and these calls make that copy consistent.
//!
//! What a consistent copy needs: no thread of the parent inside the machine at the instant of
//! the fork (no lock held, no per-CPU list half updated — per-CPU fast paths take no lock, so
//! holding locks alone would not do), and in the child, the CPU slots of the threads that did
//! not survive given back with their per-CPU object arrays and page lists flushed to the
//! slabs and zones, not lost.
//!
//! Who does what: the *caller* keeps its own threads out of the machine around the fork (the
//! preload library closes a gate in front of every allocation call); the machine excludes the
//! one entry it makes on its own behalf, a thread handing its CPU slot back at thread exit,
//! with [`ForkLock`]; a machine with kswapd cannot be forked (its thread would be inside at
//! any moment, and is not copied to the child).
//!
//! Lock order: the caller's gate, then the fork lock, then everything inside the machine.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cpu;
use crate::machine::Machine;

/// Excludes slot hand-backs at thread exit from a fork in progress: held from
/// [`Machine::fork_prepare`] to [`Machine::fork_parent`] or [`Machine::fork_child`], and around
/// each hand-back. A flag with explicit lock and unlock, because the fork holds it across
/// calls; re-entrant for the thread that holds it, because a hand-back flushes the slot's
/// object arrays, which frees slabs and runs destructors, and a destructor may use the machine
/// (taking a slot) and give that slot back (`release_cpu`, a thread it joins) — on the holding
/// thread (that spun for ever: `tests/front_doors/hook_reentry.rs`).
pub(crate) struct ForkLock {
    /// The holding thread's token (`thread_token`), 0 when free: the lock word.
    owner: AtomicUsize,
    /// How many times the holder took it (read and written only by the holder).
    depth: AtomicUsize,
    /// How many of those holds are `fork_prepare`'s (read and written only by the holder):
    /// `fork_parent` gives back only such a hold, never a slot hand-back's.
    prepared: AtomicUsize,
}

/// A token per live thread: the address of a thread-local byte (usable during thread exit:
/// constant initialisation, no destructor).
fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| std::ptr::from_ref(t) as usize)
}

impl ForkLock {
    pub(crate) const fn new() -> Self {
        Self { owner: AtomicUsize::new(0), depth: AtomicUsize::new(0), prepared: AtomicUsize::new(0) }
    }

    /// Takes the lock, waiting until it is free unless this thread holds it already.
    pub(crate) fn lock(&self) {
        let me = thread_token();
        if self.owner.load(Ordering::Relaxed) == me {
            // Only this thread stores its own token, so reading it back means we hold the lock.
            self.depth.fetch_add(1, Ordering::Relaxed);
            return;
        }
        while self.owner.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::thread::yield_now();
        }
        self.depth.store(1, Ordering::Relaxed);
    }

    /// Takes the lock as `fork_prepare` does: a hold `unlock_prepared` can give back.
    pub(crate) fn lock_prepared(&self) {
        self.lock();
        self.prepared.fetch_add(1, Ordering::Relaxed);
    }

    /// Gives back one `fork_prepare` hold of this thread; false (nothing changed) if it has
    /// none (an unbalanced call, another thread's, or a slot hand-back's hold only).
    pub(crate) fn unlock_prepared(&self) -> bool {
        if self.owner.load(Ordering::Relaxed) != thread_token() || self.prepared.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.prepared.fetch_sub(1, Ordering::Relaxed);
        self.unlock();
        true
    }

    /// Gives one hold back; the last one frees the lock (also used in a fork child, where the
    /// holder is the only thread).
    pub(crate) fn unlock(&self) {
        if self.depth.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.owner.store(0, Ordering::Release);
        }
    }
}

/// Why a machine cannot be forked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkError {
    /// Its memory is a shared memfd: parent and child would share heap bytes and state.
    SharedMemory,
    /// It runs kswapd, a thread of its own that may be inside it at the fork.
    Kswapd,
    /// [`Machine::fork_parent`] on a thread that holds no [`Machine::fork_prepare`].
    NotPrepared,
}

impl fmt::Display for ForkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForkError::SharedMemory => "a machine with shared memory cannot be forked (use private memory)",
            ForkError::Kswapd => "a machine with kswapd cannot be forked (build it without kswapd)",
            ForkError::NotPrepared => "fork_parent without a fork_prepare of this thread (nothing released)",
        })
    }
}

impl std::error::Error for ForkError {}

impl Machine {
    /// Prepares a `fork` (a `pthread_atfork` prepare handler): waits for slot hand-backs at
    /// thread exit to finish and holds further ones back until [`Machine::fork_parent`] or
    /// [`Machine::fork_child`]. The caller must already keep all its other threads out of the
    /// machine, and keep them out until then.
    ///
    /// # Errors
    /// The machine has shared memory or kswapd (nothing is held then).
    pub fn fork_prepare(&self) -> Result<(), ForkError> {
        if !self.phys().is_private() {
            return Err(ForkError::SharedMemory);
        }
        if !self.inner.forkable {
            return Err(ForkError::Kswapd);
        }
        self.platform().fork_lock.lock_prepared();
        Ok(())
    }

    /// Ends a fork in the parent: slot hand-backs may run again.
    ///
    /// # Errors
    /// The calling thread holds no [`Machine::fork_prepare`] (an unbalanced call, or one from
    /// another thread): nothing is released, so another thread's fork stays protected.
    pub fn fork_parent(&self) -> Result<(), ForkError> {
        if self.platform().fork_lock.unlock_prepared() { Ok(()) } else { Err(ForkError::NotPrepared) }
    }

    /// Ends a fork in the child: gives back the CPU slots of every thread but the caller —
    /// they did not survive the fork — flushing their per-CPU object arrays to the slabs and
    /// their page lists to the zones. Returns how many slots were given back.
    ///
    /// # Safety
    /// Must be called in a `fork` child, on its only thread, once, after a successful
    /// [`Machine::fork_prepare`] in the parent before the fork; and no thread of the parent may
    /// have been inside the machine at the fork (the caller's duty, see `fork_prepare`).
    /// Otherwise a slot would be drained under a live owner, or a list be half updated.
    pub unsafe fn fork_child(&self) -> usize {
        let platform = self.platform();
        let mine = cpu::held_slot(platform.id);
        // The child's only thread is the one that prepared (its token was copied with it).
        if !platform.fork_lock.unlock_prepared() {
            platform.fork_lock.unlock();
        }
        let mut released = 0;
        for slot in 0..platform.slots.len() {
            if Some(slot) != mine && platform.slots[slot].load(Ordering::Acquire) {
                self.inner.release_slot_locked(slot, false);
                released += 1;
            }
        }
        released
    }

    /// In the child of a `fork` that must not touch this machine (its memory is shared with
    /// the parent: a machine without [`crate::Builder::private_memory`]): the calling thread,
    /// the child's only one, forgets its CPU slot without handing it back, so its exit does
    /// not drain per-CPU lists the parent's thread still uses. Callable from a `pthread_atfork`
    /// child handler (it allocates nothing for a thread that ever used a machine). The child
    /// must not use the machine afterwards.
    pub fn abandon_in_fork_child(&self) {
        cpu::abandon(self.platform().id);
    }

    /// CPU slots held by threads now.
    pub fn nr_cpus_in_use(&self) -> usize {
        self.platform().slots.iter().filter(|s| s.load(Ordering::Relaxed)).count()
    }
}
