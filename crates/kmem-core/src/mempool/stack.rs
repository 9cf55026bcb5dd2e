//! The element array of a pool (`pool->elements`): `capacity` pointer slots in memory from the
//! pool's [`PoolEnv`]. The pool decides which slots hold elements (`curr_nr`); this type only
//! reads and writes slots, in bounds.
//!
//! # Invariants
//! `ptr` is null with `capacity == 0` ([`Stack::EMPTY`]), or points to `capacity` pointer
//! slots from `PoolEnv::alloc_meta(capacity * size_of::<*mut c_void>(), _)`.

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use super::PoolEnv;
use crate::gfp::Gfp;

const SLOT: usize = core::mem::size_of::<*mut c_void>();

pub(super) struct Stack {
    ptr: *mut *mut c_void,
    capacity: usize,
}

// SAFETY: The array is plain memory owned by the pool; access goes through the pool's lock.
unsafe impl Send for Stack {}

impl Stack {
    /// No array (a zeroed or exited pool).
    pub(super) const EMPTY: Stack = Stack { ptr: ptr::null_mut(), capacity: 0 };

    /// An array of `capacity` slots from `env`, or `None`.
    pub(super) fn alloc(env: &dyn PoolEnv, capacity: usize, gfp: Gfp) -> Option<Stack> {
        let bytes = capacity.checked_mul(SLOT)?;
        let mem = env.alloc_meta(bytes, gfp)?;
        // INVARIANT: `mem` is `bytes` bytes from `alloc_meta`, aligned to 8 (its contract).
        Some(Stack { ptr: mem.as_ptr().cast(), capacity })
    }

    /// Slots in the array.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The element in slot `i`.
    ///
    /// # Panics
    /// If `i >= capacity` (never, by the pool's invariant `curr_nr <= capacity`).
    pub(super) fn get(&self, i: usize) -> NonNull<c_void> {
        assert!(i < self.capacity, "mempool slot {i} out of {}", self.capacity);
        // SAFETY: `i < capacity`, so the slot is inside the array (type invariant); the pool
        // reads only slots it wrote, under its lock.
        let element = unsafe { self.ptr.add(i).read() };
        NonNull::new(element).expect("a reserved element is never NULL")
    }

    /// Stores `element` in slot `i`.
    ///
    /// # Panics
    /// If `i >= capacity`.
    pub(super) fn set(&mut self, i: usize, element: NonNull<c_void>) {
        assert!(i < self.capacity, "mempool slot {i} out of {}", self.capacity);
        // SAFETY: In bounds as in `get`; `&mut self` means the pool's lock is held.
        unsafe { self.ptr.add(i).write(element.as_ptr()) }
    }

    /// Gives the array back to `env`.
    ///
    /// # Safety
    /// `self` came from [`Stack::alloc`] on `env` (or is [`Stack::EMPTY`]).
    pub(super) unsafe fn free(self, env: &dyn PoolEnv) {
        if let Some(mem) = NonNull::new(self.ptr) {
            // SAFETY: Allocated by `alloc_meta` with exactly this size (caller, type invariant).
            unsafe { env.free_meta(mem.cast(), self.capacity * SLOT) }
        }
    }
}
