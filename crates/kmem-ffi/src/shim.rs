//! The userspace test shim's hooks from C (SEMANTICS §8.6, `tools/testing/shared/linux.c`):
//! `kmem_cache_set_non_kernel`, `kmem_cache_set_callback`, `kmem_cache_set_private`,
//! `kmem_cache_nr_allocated`, `kmem_cache_nr_tallocated`, `kmem_cache_zero_nr_tallocated`,
//! `kmem_cache_get_alloc`, and `kmem_nr_allocated`, the function that stands for the shim's
//! global `int nr_allocated`. Over the core's (`kmem_core::slab::shim`, which says what each
//! does); every cache pointer is looked up first, so NULL and pointers that are not live caches
//! are reported and the call does nothing (0 for the counters).

use std::ffi::{c_uint, c_ulong, c_void};

use kmem_core::slab::ShimCallback;

use crate::boundary::ffi_boundary;
use crate::slab::live_cache;

/// `void kmem_cache_set_non_kernel(struct kmem_cache *cachep, unsigned int val)`: the budget
/// of allocations without `__GFP_DIRECT_RECLAIM`; the first call turns the cache's gate on.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_set_non_kernel(cachep: *mut c_void, val: c_uint) {
    ffi_boundary("kmem_cache_set_non_kernel", (), |m| {
        if let Some(cache) = live_cache(m, "kmem_cache_set_non_kernel", cachep) {
            m.kmem_cache_set_non_kernel(cache, val);
        }
    });
}

/// `void kmem_cache_set_callback(struct kmem_cache *cachep, void (*callback)(void *))`: what
/// runs, with the private pointer, at the allocation after a gated failure (NULL: nothing).
///
/// # Safety
/// `callback` is NULL or a function that may be called from any thread, at the start of any
/// allocation from the cache, with the cache's private pointer, until it is replaced or the
/// cache destroyed. (Destroying the cache from it is misuse, reported when the cache is torn
/// down with the allocation's object still out.)
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_set_callback(cachep: *mut c_void, callback: Option<ShimCallback>) {
    ffi_boundary("kmem_cache_set_callback", (), |m| {
        if let Some(cache) = live_cache(m, "kmem_cache_set_callback", cachep) {
            // SAFETY: The caller's promise, which is the core's contract.
            unsafe { m.kmem_cache_set_callback(cache, callback) };
        }
    });
}

/// `void kmem_cache_set_private(struct kmem_cache *cachep, void *private)`: the callback's
/// argument.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_set_private(cachep: *mut c_void, private: *mut c_void) {
    ffi_boundary("kmem_cache_set_private", (), |m| {
        if let Some(cache) = live_cache(m, "kmem_cache_set_private", cachep) {
            m.kmem_cache_set_private(cache, private);
        }
    });
}

/// `unsigned long kmem_cache_nr_allocated(struct kmem_cache *cachep)`: objects out with users.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_nr_allocated(cachep: *mut c_void) -> c_ulong {
    ffi_boundary("kmem_cache_nr_allocated", 0, |m| {
        live_cache(m, "kmem_cache_nr_allocated", cachep).map_or(0, |c| m.kmem_cache_nr_allocated(c) as c_ulong)
    })
}

/// `unsigned long kmem_cache_nr_tallocated(struct kmem_cache *cachep)`: objects handed out
/// since the cache was made or last zeroed.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_nr_tallocated(cachep: *mut c_void) -> c_ulong {
    ffi_boundary("kmem_cache_nr_tallocated", 0, |m| {
        live_cache(m, "kmem_cache_nr_tallocated", cachep).map_or(0, |c| m.kmem_cache_nr_tallocated(c) as c_ulong)
    })
}

/// `void kmem_cache_zero_nr_tallocated(struct kmem_cache *cachep)`.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_zero_nr_tallocated(cachep: *mut c_void) {
    ffi_boundary("kmem_cache_zero_nr_tallocated", (), |m| {
        if let Some(cache) = live_cache(m, "kmem_cache_zero_nr_tallocated", cachep) {
            m.kmem_cache_zero_nr_tallocated(cache);
        }
    });
}

/// `unsigned long kmem_cache_get_alloc(struct kmem_cache *cachep)`: the object size times
/// `nr_allocated`.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_get_alloc(cachep: *mut c_void) -> c_ulong {
    ffi_boundary("kmem_cache_get_alloc", 0, |m| {
        live_cache(m, "kmem_cache_get_alloc", cachep).map_or(0, |c| m.kmem_cache_get_alloc(c) as c_ulong)
    })
}

/// `unsigned long kmem_nr_allocated(void)`: the shim's global `nr_allocated` (a variable
/// there, a function here): `nr_allocated` summed over the live caches, kmalloc's included.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_nr_allocated() -> c_ulong {
    ffi_boundary("kmem_nr_allocated", 0, |m| m.kmem_nr_allocated() as c_ulong)
}
