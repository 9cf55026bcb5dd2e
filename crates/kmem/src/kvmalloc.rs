//! `kvmalloc` and friends (SEMANTICS §4.2, KM-12): kmalloc first, vmalloc when that fails
//! and the rules of [`kmem_core::kmalloc::kv`] allow it; `kvfree` tells the two apart by
//! address. `kmem_buckets_valloc` is the same with a bucket set's caches in kmalloc's place
//! (`__kvmalloc_node` takes the set since Linux 6.11).

use std::panic::Location;
use std::ptr::NonNull;

use kmem_core::gfp::{__GFP_NOWARN, __GFP_ZERO};
use kmem_core::kmalloc::KmemBuckets;
use kmem_core::kmalloc::kv::{KvFallback, kmalloc_gfp_adjust, kvmalloc_fallback};
use kmem_core::{AllocError, Gfp};

use crate::machine::Machine;

impl Machine {
    /// `kvmalloc(size, gfp)`: physically contiguous memory if kmalloc can find it quickly,
    /// else virtually contiguous memory from vmalloc (only above a page, and only for
    /// requests that may sleep). Free with [`Machine::kvfree`].
    ///
    /// # Errors
    /// When both fail, or the fallback is not allowed.
    #[track_caller]
    pub fn kvmalloc(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.kmem_buckets_valloc(None, size, gfp)
    }

    /// `kmem_buckets_valloc(b, size, gfp)`: [`Machine::kvmalloc`] whose kmalloc attempt is
    /// `kmem_buckets_alloc(b, …)` (the kmalloc caches when `b` is `None`); the vmalloc
    /// fallback is the same. Free with [`Machine::kvfree`].
    ///
    /// # Errors
    /// As [`Machine::kvmalloc`]; also when a cache of `b` is no longer live (reported).
    #[track_caller]
    pub fn kmem_buckets_valloc(
        &self,
        b: Option<&KmemBuckets>,
        size: usize,
        gfp: Gfp,
    ) -> Result<NonNull<u8>, AllocError> {
        if let Ok(p) = self.kmem_buckets_alloc(b, size, kmalloc_gfp_adjust(gfp, size)) {
            return Ok(p);
        }
        if b.and_then(|b| b.cache_for(size)).is_some_and(|c| !self.bucket_cache_serves(c, size)) {
            // A set that is no longer live was reported; it gets no vmalloc memory either.
            return Err(AllocError);
        }
        match kvmalloc_fallback(gfp, size) {
            KvFallback::SmallFails | KvFallback::NonBlockingFails => Err(AllocError),
            KvFallback::TooLarge => {
                // `WARN_ON_ONCE(!(flags & __GFP_NOWARN))`: once per machine.
                if !gfp.contains(__GFP_NOWARN) {
                    self.pages().warn_once(
                        kmem_core::page_alloc::warn_sites::KVMALLOC_TOO_LARGE,
                        "__kvmalloc_node_noprof",
                        format_args!("size {size} > INT_MAX"),
                        Location::caller(),
                    );
                }
                Err(AllocError)
            }
            // "kvmalloc() can always use VM_ALLOW_HUGE_VMAP" (`__kvmalloc_node_noprof`, mm/util.c).
            KvFallback::Vmalloc => self.vmalloc_huge(size, gfp),
        }
    }

    /// `kvzalloc`.
    ///
    /// # Errors
    /// As [`Machine::kvmalloc`].
    #[track_caller]
    pub fn kvzalloc(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.kvmalloc(size, gfp | __GFP_ZERO)
    }

    /// `kvfree`: `vfree` for a vmalloc address, `kfree` otherwise (NULL is ignored).
    ///
    /// # Safety
    /// As [`kmem_core::Kmem::kfree`]: `ptr` must be NULL or a live allocation the caller owns.
    #[track_caller]
    pub unsafe fn kvfree(&self, ptr: *const u8) {
        if self.is_vmalloc_addr(ptr) {
            // SAFETY: The caller's promise.
            unsafe { self.vfree(ptr) };
        } else {
            // SAFETY: The caller's promise.
            unsafe { self.kfree(ptr) };
        }
    }

    /// `kvfree_sensitive`: zeroes `len` bytes (`memzero_explicit`), then frees. The bytes
    /// are zeroed only once kmem has recognised the allocation, and never past it: a `len`
    /// beyond the allocation (kmalloc's usable size, or a vmalloc area's pages) zeroes all of
    /// it and is reported (`WARN`; the kernel would write past the end), and the free goes on.
    /// An address that is no allocation is reported by the free, and nothing is written.
    ///
    /// # Safety
    /// As [`Machine::kvfree`]: `ptr` must be NULL or a live allocation the caller owns.
    #[track_caller]
    pub unsafe fn kvfree_sensitive(&self, ptr: *mut u8, len: usize) {
        if kmem_core::kmalloc::classes::zero_or_null_ptr(ptr as usize) {
            return;
        }
        let caller = Location::caller();
        let held = if self.is_vmalloc_addr(ptr) {
            // SAFETY: The caller owns the allocation `ptr` starts, if any.
            unsafe { self.inner.vm.zero_area(ptr, len) }
        } else {
            // SAFETY: NULL or the caller's allocation (its promise), which no one frees meanwhile.
            let usable = unsafe { self.kmalloc_usable_size(ptr) };
            if let Some(n) = usable {
                // SAFETY: `ptr` is a live kmalloc allocation of `n` usable bytes, the caller's.
                unsafe { ptr.write_bytes(0, len.min(n)) };
            }
            usable
        };
        if let Some(n) = held
            && len > n
        {
            let msg = format_args!("kvfree_sensitive: {len} bytes at {ptr:p} exceed the allocation ({n} bytes)");
            self.inner.vm.warn(&self.inner.kmem, caller, "kvfree_sensitive", msg);
        }
        // SAFETY: The caller's allocation (kvfree checks it before freeing).
        unsafe { self.kvfree(ptr) };
    }

    /// `kvrealloc` (`kvrealloc_node_align_noprof`): `vrealloc` for a vmalloc address (size 0
    /// frees it and gives `Ok(None)`, the kernel's NULL); otherwise `krealloc` with kvmalloc's
    /// adjusted flags (size 0 frees and gives `ZERO_SIZE_PTR`), falling back to `kvmalloc` +
    /// copy of `ksize(p)` bytes + `kfree`. On failure `ptr` stays valid.
    ///
    /// # Errors
    /// When no memory could be found, or `ptr` is a vmalloc address that starts no vmalloc
    /// area, or no live kmalloc allocation (reported; `ptr` is left alone).
    ///
    /// # Safety
    /// As [`kmem_core::Kmem::krealloc`].
    #[track_caller]
    pub unsafe fn kvrealloc(&self, ptr: *mut u8, size: usize, gfp: Gfp) -> Result<Option<NonNull<u8>>, AllocError> {
        if self.is_vmalloc_addr(ptr) {
            // SAFETY: The caller's promise.
            return unsafe { self.vrealloc(ptr, size, gfp) };
        }
        // SAFETY: The caller's promise.
        if let Ok(p) = unsafe { self.krealloc(ptr, size, kmalloc_gfp_adjust(gfp, size)) } {
            return Ok(Some(p));
        }
        // SAFETY: `krealloc` failed, so `ptr` is still the caller's allocation (or none), which
        // no one frees meanwhile (the caller's promise).
        let old = match unsafe { self.kmalloc_usable_size(ptr) } {
            Some(n) => n.min(size),
            None if kmem_core::kmalloc::classes::zero_or_null_ptr(ptr as usize) => 0,
            // Not a live allocation: `krealloc` reported it; a fallback would copy nothing
            // and hand back an empty block as if the data had moved.
            None => return Err(AllocError),
        };
        let new = self.kvmalloc(size, gfp)?;
        // SAFETY: `old` bytes are the caller's in `ptr` and fit the new allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, new.as_ptr(), old);
            self.kfree(ptr);
        }
        Ok(Some(new))
    }
}
