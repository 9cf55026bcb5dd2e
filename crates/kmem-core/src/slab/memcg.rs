//! The slab calls that exist for memory cgroups (SEMANTICS §3.1): `kmem_cache_alloc_lru` and
//! `kmem_cache_charge`, on a machine that has no memory cgroups.
//!
//! kmem has no memcg (no `kmalloc-cg-*` accounting, no `list_lru`; docs/deviations.md), so
//! these calls behave as the kernel behaves when `memcg_kmem_online()` is false:
//! - `kmem_cache_alloc_lru(s, lru, gfp)` (mm/slub.c since 5.18) is `kmem_cache_alloc(s, gfp)`:
//!   the `struct list_lru *` only tells `memcg_slab_post_alloc_hook` where to make room for
//!   the new object's cgroup, so it is accepted and never dereferenced;
//! - `kmem_cache_charge(objp, gfp)` (6.12, "memcg: add charging of already allocated slab
//!   objects") returns true without looking at `objp` when memcg is off, and otherwise charges
//!   the object's slab (or large kmalloc) to the current cgroup — trusting `objp`, on which
//!   it runs `virt_to_page`. kmem still checks `objp` as `krealloc` and `ksize` do (a live
//!   slab object's start, or a live large kmalloc): anything else is reported in the same
//!   words and gives false, since nothing can have been charged; a live object gives true.
//!
//! Invariant: neither call changes any slab state beyond what `kmem_cache_alloc` does (the
//! charge reads the object's slab descriptor and page only).

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::NonNull;

use super::cache::CacheRef;
use crate::AllocError;
use crate::gfp::Gfp;
use crate::kmem::Kmem;
use crate::platform::Platform;

impl<P: Platform> Kmem<P> {
    /// `kmem_cache_alloc_lru(s, lru, gfp)`: [`Kmem::kmem_cache_alloc`]; `lru` (the caller's
    /// `struct list_lru`, or null) is never dereferenced, as a kmem machine has no memory
    /// cgroups to make room in it for (see the module docs).
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_alloc`].
    #[track_caller]
    pub fn kmem_cache_alloc_lru(
        &self,
        cache: CacheRef,
        lru: *const c_void,
        gfp: Gfp,
    ) -> Result<NonNull<u8>, AllocError> {
        let _ = lru;
        let caller = Location::caller();
        if self.checked_cache(cache, "kmem_cache_alloc_lru", caller).is_none() {
            return Err(AllocError);
        }
        self.slab_alloc(cache, gfp, caller)
    }

    /// `kmem_cache_charge(objp, gfp)`: charges an allocated object to the current memory
    /// cgroup. Without cgroups there is nothing to charge: true for a live slab object (any
    /// cache's, at its start) or a live large kmalloc; anything else (NULL, `ZERO_SIZE_PTR`, a
    /// pointer inside an object, a freed object, memory kmem did not hand out) is reported as
    /// `krealloc` reports it and gives false. `gfp` is not used (it would bound the charge).
    ///
    /// The object's memory is not read or written.
    #[track_caller]
    pub fn kmem_cache_charge(&self, objp: *const u8, gfp: Gfp) -> bool {
        let _ = gfp;
        self.krealloc_capacity(objp, Some(("kmem_cache_charge", Location::caller()))).is_some()
    }
}
