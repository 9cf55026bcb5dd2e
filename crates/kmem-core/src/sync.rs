//! A small test-and-test-and-set spin lock, the `spinlock_t` of the core.
//!
//! Critical sections in kmem-core are short (list surgery on one zone). With the `std`
//! feature a waiter that has spun for a while yields its host CPU, so a lock holder that the
//! host preempted can finish; without it the waiter only spins.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

#[cfg(not(kmem_loom))]
use core::{
    cell::UnsafeCell,
    sync::atomic::{AtomicBool, Ordering},
};
#[cfg(kmem_loom)]
use loom::{
    cell::UnsafeCell,
    sync::atomic::{AtomicBool, Ordering},
};

/// The atomics and fences of the core's lock-free handoffs that loom checks (the mempool's
/// reserve counts and free hint, the reclaim registry's pins): `core`'s, or loom's under
/// `cfg(kmem_loom)` so that `tests/loom.rs` sees every access. Only the types change; the
/// non-loom build uses `core::sync::atomic` itself.
pub mod atomic {
    #[cfg(not(kmem_loom))]
    pub use core::sync::atomic::{AtomicU8, AtomicUsize, fence};
    #[cfg(kmem_loom)]
    pub use loom::sync::atomic::{AtomicU8, AtomicUsize, fence};
}

/// A mutual-exclusion lock that spins.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: The lock hands out access to `value` to one holder at a time, so sharing the lock
// between threads is as safe as sending `T` between them.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: Owning the lock is owning the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A new unlocked lock around `value`.
    #[cfg(not(kmem_loom))]
    pub const fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// A new unlocked lock around `value`.
    #[cfg(kmem_loom)]
    pub fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Spins until the lock is ours.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        SpinGuard { lock: self, _not_sync: PhantomData }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(128) {
                    relax_hard();
                } else {
                    spin_hint();
                }
            }
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        // `then`, not `then_some`: a guard built for a failed attempt would unlock on drop.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| SpinGuard { lock: self, _not_sync: PhantomData })
    }

    /// Whether someone holds the lock (a racy hint for diagnostics).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

/// Waits a little in a spin loop: yields the host CPU with `std`, else a spin hint.
#[inline]
pub fn cpu_relax() {
    relax_hard();
}

#[cfg(kmem_loom)]
fn relax_hard() {
    loom::thread::yield_now();
}

#[cfg(all(feature = "std", not(kmem_loom)))]
fn relax_hard() {
    std::thread::yield_now();
}

#[cfg(all(not(feature = "std"), not(kmem_loom)))]
fn relax_hard() {
    core::hint::spin_loop();
}

#[cfg(kmem_loom)]
fn spin_hint() {
    loom::thread::yield_now();
}

#[cfg(not(kmem_loom))]
fn spin_hint() {
    core::hint::spin_loop();
}

/// Proof that a [`SpinLock`] is held; unlocks on drop.
///
/// Shared across threads only when `T: Sync` (a `&SpinGuard` derefs to `&T`), as std's
/// `MutexGuard`: the lock itself is `Sync` for any `T: Send`, so without the marker a
/// `&SpinGuard<Cell<_>>` would hand one `&Cell` to two threads. Unlike a `MutexGuard` it may
/// be sent when `T: Send`: a spin lock belongs to no OS thread, so another may unlock it.
///
/// ```compile_fail,E0277
/// fn shared<T: Sync>(_: &T) {}
/// let lock = kmem_core::sync::SpinLock::new(core::cell::Cell::new(0u64));
/// shared(&lock.lock());
/// ```
/// ```
/// fn shared<T: Sync>(_: &T) {}
/// let lock = kmem_core::sync::SpinLock::new(0u64);
/// shared(&lock.lock());
/// ```
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    _not_sync: PhantomData<*mut T>,
}

// SAFETY: Sending the guard moves exclusive access to `T` (and the unlock) to another thread,
// which is what `T: Send` permits.
unsafe impl<T: Send> Send for SpinGuard<'_, T> {}
// SAFETY: A shared guard only gives `&T` to the threads that share it, which `T: Sync` permits.
unsafe impl<T: Sync> Sync for SpinGuard<'_, T> {}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        #[cfg(not(kmem_loom))]
        // SAFETY: The guard exists only while `locked` is true and was set by us, so no other
        // reference to `value` exists.
        return unsafe { &*self.lock.value.get() };
        #[cfg(kmem_loom)]
        // SAFETY: As above; loom records the access while the guard is held.
        return self.lock.value.with(|p| unsafe { &*p });
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        #[cfg(not(kmem_loom))]
        // SAFETY: As in `deref`, and `&mut self` makes this the only access through the guard.
        return unsafe { &mut *self.lock.value.get() };
        #[cfg(kmem_loom)]
        // SAFETY: As above; loom records the access while the guard is held.
        return self.lock.value.with_mut(|p| unsafe { &mut *p });
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(kmem_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_across_threads() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: std::vec::Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 200_000);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let lock = SpinLock::new(());
        let guard = lock.lock();
        assert!(lock.try_lock().is_none());
        assert!(lock.is_locked(), "a failed try_lock must leave the holder's lock alone");
        assert!(lock.try_lock().is_none(), "still held after a failed attempt");
        drop(guard);
        assert!(!lock.is_locked());
        let second = lock.try_lock();
        assert!(second.is_some());
        assert!(lock.try_lock().is_none());
        drop(second);
        assert!(!lock.is_locked());
    }
}
