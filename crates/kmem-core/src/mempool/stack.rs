//! The element array of a pool (`pool->elements`): `capacity` pointer slots in memory from the
//! pool's [`PoolEnv`]. The pool decides which slots hold elements (`curr_nr`); this type only
//! reads and writes slots, in bounds. The first array of a pool is the pool's first metadata
//! block, which the pool frees itself; arrays made by `mempool_resize` are allocations of
//! their own.
//!
//! # Invariants
//! `ptr` is null with `capacity == 0` ([`Stack::EMPTY`]), or points to `capacity` pointer
//! slots, which come from `PoolEnv::alloc_meta(capacity * size_of::<*mut c_void>(), _)` when
//! `owned`, and otherwise lie inside a block the pool frees itself.

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use super::PoolEnv;
use crate::gfp::Gfp;

/// Bytes of one slot.
pub(super) const SLOT: usize = core::mem::size_of::<*mut c_void>();

pub(super) struct Stack {
    ptr: *mut *mut c_void,
    capacity: usize,
    owned: bool,
}

// SAFETY: The array is plain memory owned by the pool; access goes through the pool's lock.
unsafe impl Send for Stack {}

impl Stack {
    /// No array (a zeroed or exited pool).
    pub(super) const EMPTY: Stack = Stack { ptr: ptr::null_mut(), capacity: 0, owned: false };

    /// An array of `capacity` slots from `env`, or `None`.
    pub(super) fn alloc(env: &dyn PoolEnv, capacity: usize, gfp: Gfp) -> Option<Stack> {
        let bytes = capacity.checked_mul(SLOT)?;
        let mem = env.alloc_meta(bytes, gfp)?;
        // INVARIANT: `mem` is `bytes` bytes from `alloc_meta`, aligned to 8 (its contract).
        Some(Stack { ptr: mem.as_ptr().cast(), capacity, owned: true })
    }

    /// An array of `capacity` slots at `mem`, inside a block the pool frees itself.
    ///
    /// # Safety
    /// `mem` is aligned to 8 and valid for `capacity` slots that nothing else uses until the
    /// pool frees the block (after this array is gone).
    pub(super) unsafe fn in_block(mem: *mut u8, capacity: usize) -> Stack {
        // INVARIANT: The caller's promise; not `owned`.
        Stack { ptr: mem.cast(), capacity, owned: false }
    }

    /// Slots in the array.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The element in slot `i`.
    ///
    /// # Panics
    /// If `i >= capacity` (never, by the pool's invariant `curr_nr <= capacity`).
    #[inline]
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
    #[inline]
    pub(super) fn set(&mut self, i: usize, element: NonNull<c_void>) {
        assert!(i < self.capacity, "mempool slot {i} out of {}", self.capacity);
        // SAFETY: In bounds as in `get`; `&mut self` means the pool's lock is held.
        unsafe { self.ptr.add(i).write(element.as_ptr()) }
    }

    /// Whether `element` is in one of the slots `0..n` (debug checks only: linear).
    pub(super) fn holds(&self, n: usize, element: NonNull<c_void>) -> bool {
        (0..n.min(self.capacity)).any(|i| self.get(i) == element)
    }

    /// Gives the array back to `env` if it is an allocation of its own.
    ///
    /// # Safety
    /// `self` came from [`Stack::alloc`] on `env`, or from [`Stack::in_block`], or is
    /// [`Stack::EMPTY`].
    pub(super) unsafe fn free(self, env: &dyn PoolEnv) {
        if self.owned
            && let Some(mem) = NonNull::new(self.ptr)
        {
            // SAFETY: Allocated by `alloc_meta` with exactly this size (caller, type invariant).
            unsafe { env.free_meta(mem.cast(), self.capacity * SLOT) }
        }
    }
}
