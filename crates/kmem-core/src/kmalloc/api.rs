//! The kmalloc family on [`Kmem`] (SEMANTICS §4.2, KM-1..11): class caches up to 8 KiB,
//! whole pages up to 4 MiB, `ZERO_SIZE_PTR`, and the helpers around them.
//!
//! A large (page-backed) allocation is a compound block whose head page carries
//! [`LARGE_KMALLOC`] in its `mapping` word, so `kfree`/`ksize` recognise it from the address;
//! the word is cleared before the pages go back.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::{Acquire, Relaxed};

use super::classes::{
    KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE, KMALLOC_SIZE_INDEX, ZERO_SIZE_PTR, kmalloc_type, zero_or_null_ptr,
};
use crate::AllocError;
use crate::gfp::{__GFP_COMP, __GFP_ZERO, GFP_SLAB_BUG_MASK, Gfp};
use crate::kmem::Kmem;
use crate::memmap::pg;
use crate::order::{MAX_PAGE_ORDER, PAGE_SIZE, get_order};
use crate::platform::{Level, Platform};
use crate::slab::Cache;

/// The `mapping` token of a large kmalloc head page ("kmlg").
pub const LARGE_KMALLOC: u32 = 0x6b6d_6c67;

/// `ZERO_SIZE_PTR` as a pointer.
#[inline(always)]
pub fn zero_size_ptr() -> NonNull<u8> {
    // SAFETY: 16 is not null. It is never dereferenced by kmem and faults if a caller does.
    unsafe { NonNull::new_unchecked(ZERO_SIZE_PTR as *mut u8) }
}

/// `kmalloc_index` for the hot path: the class of `size` (1..=8192).
#[inline(always)]
fn class_index(size: usize) -> usize {
    if size <= 192 {
        KMALLOC_SIZE_INDEX[(size - 1) / 8] as usize
    } else {
        (usize::BITS - (size - 1).leading_zeros()) as usize
    }
}

impl<P: Platform> Kmem<P> {
    /// The cache `kmalloc(size, gfp)` would use, if `size` is served by a slab cache.
    pub fn kmalloc_cache(&self, size: usize, gfp: Gfp) -> Option<crate::slab::CacheRef> {
        if size == 0 || size > KMALLOC_MAX_CACHE_SIZE {
            return None;
        }
        let (ty, index) = (kmalloc_type(gfp), class_index(size));
        // Acquire: pairs with the creator's publishing `Release` (the cache's fields).
        match NonNull::new(self.slabs.kmalloc[ty as usize][index].load(Acquire)) {
            Some(c) => Some(crate::slab::CacheRef(c)),
            None => self.kmalloc_cache_create(index, ty, gfp),
        }
    }

    /// `kmalloc`: `size` bytes, at least 8-aligned and size-aligned for powers of two (KM-6).
    /// Size 0 gives `ZERO_SIZE_PTR` (KM-2).
    ///
    /// # Errors
    /// Out of memory, above `KMALLOC_MAX_SIZE` (KM-5, with a warning unless `__GFP_NOWARN`),
    /// or no cache for the GFP type (a DMA request on a machine without a DMA zone).
    #[track_caller]
    #[inline(always)]
    pub fn kmalloc(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.kmalloc_at(size, gfp, Location::caller())
    }

    #[inline(always)]
    pub(crate) fn kmalloc_at(&self, size: usize, gfp: Gfp, caller: &Location<'_>) -> Result<NonNull<u8>, AllocError> {
        if size.wrapping_sub(1) < KMALLOC_MAX_CACHE_SIZE {
            // Acquire: pairs with the creator's publishing `Release` (the cache's fields).
            let c = self.slabs.kmalloc[kmalloc_type(gfp) as usize][class_index(size)].load(Acquire);
            // kmalloc caches live as long as the machine (they are never destroyed through the
            // table: destroy clears the entry first).
            return match NonNull::new(c) {
                Some(s) => self.slab_alloc_orig(s, gfp, caller, size),
                None => self.kmalloc_first_use(size, gfp, caller),
            };
        }
        if size == 0 {
            return Ok(zero_size_ptr());
        }
        self.kmalloc_large(size, gfp, caller)
    }

    /// The first kmalloc of a class and type: make its cache.
    #[cold]
    fn kmalloc_first_use(&self, size: usize, gfp: Gfp, caller: &Location<'_>) -> Result<NonNull<u8>, AllocError> {
        let c = self.kmalloc_cache_create(class_index(size), kmalloc_type(gfp), gfp).ok_or(AllocError)?;
        self.slab_alloc_orig(c.0, gfp, caller, size)
    }

    /// `kmalloc_trace` (`__kmalloc_cache_noprof` since 6.10): a kmalloc-style allocation of
    /// `size` bytes from `cache`, recording the request size where the cache tracks it (a
    /// `SLAB_KMALLOC` cache with `SLAB_STORE_USER`, whose bytes past the request are then
    /// red zone). `size` above the object size is served as the object size.
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_alloc`].
    #[track_caller]
    pub fn kmalloc_trace(
        &self,
        cache: crate::slab::CacheRef,
        gfp: Gfp,
        size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        let Some(s) = self.checked_cache(cache, "kmalloc_trace", caller) else { return Err(AllocError) };
        let orig_size = size.clamp(1, s.object_size());
        self.slab_alloc_orig(cache.0, gfp, caller, orig_size)
    }

    /// `__kmalloc_large_node`: whole pages, marked so `kfree` knows them. Flags a slab
    /// allocation may not carry are reported and stripped first, as for a new slab (GFP-6).
    #[cold]
    fn kmalloc_large(&self, size: usize, mut gfp: Gfp, caller: &Location<'_>) -> Result<NonNull<u8>, AllocError> {
        if gfp.intersects(GFP_SLAB_BUG_MASK) {
            gfp = self.kmalloc_fix_flags(gfp, caller);
        }
        let order = get_order(size);
        if order > MAX_PAGE_ORDER {
            // The page allocator's `WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER)`, once per machine
            // (shared with `alloc_pages`), with kmem's note on what asked for it.
            if self.pages().refuse_order(gfp, order, self.platform().cpu(), caller) {
                self.platform().log(
                    Level::Warning,
                    format_args!(
                        "kmalloc: {size} bytes is above KMALLOC_MAX_SIZE ({KMALLOC_MAX_SIZE}); returning NULL"
                    ),
                );
            }
            return Err(AllocError);
        }
        let page = self.pages().alloc_pages(gfp.union(__GFP_COMP), order)?;
        page.next.store(LARGE_KMALLOC, Relaxed);
        self.slabs.large_kmalloc_pages.fetch_add(1 << order, Relaxed);
        Ok(self.page_address(page).expect("kmalloc pages are lowmem"))
    }

    /// `kzalloc`.
    ///
    /// # Errors
    /// As [`Kmem::kmalloc`].
    #[track_caller]
    pub fn kzalloc(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.kmalloc_at(size, gfp.union(__GFP_ZERO), Location::caller())
    }

    /// kmalloc (or, with `zero`, kzalloc) of a Rust [`core::alloc::Layout`]: the size rounded
    /// up to the alignment ([`kmalloc_layout_size`](super::classes::kmalloc_layout_size)), so the
    /// block is aligned (KM-6, re-checked: a misaligned block is freed and refused). Returns the
    /// block with its length, the rounded size. The kmalloc-backed Rust allocators (`KmallocHeap`,
    /// `alloc_api`, the `kmem` crate's global allocator) all allocate through here.
    ///
    /// # Errors
    /// A zero-size layout (the caller's to handle: `kmalloc(0)`'s `ZERO_SIZE_PTR` is aligned
    /// to 16 at most), a rounded size above `KMALLOC_MAX_SIZE`, or as [`Kmem::kmalloc`].
    #[track_caller]
    #[inline]
    pub fn kmalloc_layout(
        &self,
        layout: core::alloc::Layout,
        gfp: Gfp,
        zero: bool,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let size = match super::classes::kmalloc_layout_size(layout) {
            Some(size) if size != 0 => size,
            _ => return Err(AllocError),
        };
        let ptr = if zero { self.kzalloc(size, gfp) } else { self.kmalloc(size, gfp) }?;
        if ptr.as_ptr().addr() & (layout.align() - 1) != 0 {
            // Never expected (KM-6); refuse rather than hand out misaligned memory.
            // SAFETY: Just allocated, unused.
            unsafe { self.kfree(ptr.as_ptr()) };
            return Err(AllocError);
        }
        Ok(NonNull::slice_from_raw_parts(ptr, size))
    }

    /// `kmalloc_node`: node 0 and `NUMA_NO_NODE` are the machine's only node.
    ///
    /// # Errors
    /// As [`Kmem::kmalloc`]; also for a node that does not exist.
    #[track_caller]
    pub fn kmalloc_node(&self, size: usize, gfp: Gfp, node: i32) -> Result<NonNull<u8>, AllocError> {
        if node != crate::NUMA_NO_NODE && node != 0 {
            return Err(AllocError);
        }
        self.kmalloc_at(size, gfp, Location::caller())
    }

    /// `kmalloc_array`: `n * size` bytes, or `Err` without allocating on overflow.
    ///
    /// # Errors
    /// Overflow, or as [`Kmem::kmalloc`].
    #[track_caller]
    pub fn kmalloc_array(&self, n: usize, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        let bytes = n.checked_mul(size).ok_or(AllocError)?;
        self.kmalloc_at(bytes, gfp, Location::caller())
    }

    /// `kcalloc`: zeroed `kmalloc_array` (KM-10).
    ///
    /// # Errors
    /// As [`Kmem::kmalloc_array`].
    #[track_caller]
    pub fn kcalloc(&self, n: usize, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        let bytes = n.checked_mul(size).ok_or(AllocError)?;
        self.kmalloc_at(bytes, gfp.union(__GFP_ZERO), Location::caller())
    }

    /// `kfree`: NULL and `ZERO_SIZE_PTR` are ignored (KM-3); slab objects go to their cache
    /// whatever cache they came from; large allocations free their pages; anything else is
    /// reported (`Not a kmalloc allocation`) and ignored.
    ///
    /// # Safety
    /// `ptr` must be NULL or an object this API handed out and the caller still owns; it
    /// must not be used afterwards. Pointers that break this are detected and reported where
    /// the allocator can tell (not an object, wrong cache, immediate double free), but a
    /// pointer still in use elsewhere would be written to (free pointers, `init_on_free`).
    #[track_caller]
    #[inline(always)]
    pub unsafe fn kfree(&self, ptr: *const u8) {
        self.kfree_at(ptr, Location::caller());
    }

    #[inline(always)]
    pub(crate) fn kfree_at(&self, ptr: *const u8, caller: &Location<'_>) {
        if zero_or_null_ptr(ptr as usize) {
            return;
        }
        if let Some(found) = self.object_slab(ptr) {
            // SAFETY: A slab names its cache (never null while the slab is live).
            let cache = unsafe { NonNull::new_unchecked(found.cache) };
            self.slab_free(cache, found.base, ptr.cast_mut(), caller);
            return;
        }
        self.kfree_large(ptr, caller);
    }

    #[cold]
    fn kfree_large(&self, ptr: *const u8, caller: &Location<'_>) {
        match self.large_kmalloc_order(ptr) {
            Some(order) => {
                let page = self.virt_to_page(ptr).expect("checked above");
                page.next.store(0, Relaxed);
                self.slabs.large_kmalloc_pages.fetch_sub(1 << order, Relaxed);
                // SAFETY: A large kmalloc block the caller gives up (`kfree`'s contract).
                unsafe { self.pages().free_pages(page, order) };
            }
            None => self.report_not_slab(ptr, "kfree", caller),
        }
    }

    /// The order of the large kmalloc starting at `ptr`, if it is one.
    pub(crate) fn large_kmalloc_order(&self, ptr: *const u8) -> Option<u32> {
        let page = self.virt_to_page(ptr)?;
        let start = self.page_address(page)?.as_ptr().cast_const();
        (ptr == start
            && page.is_allocated()
            && page.flags() & (pg::HEAD | pg::SLAB) == pg::HEAD
            && page.mapping() == LARGE_KMALLOC)
            .then(|| page.order())
    }

    /// The live large kmalloc that `ptr` points inside of (not at its start), as its start
    /// address and order: for the report of a `kfree`/`ksize` of such a pointer, which names
    /// the allocation rather than the page under `ptr`.
    pub(crate) fn large_kmalloc_containing(&self, ptr: *const u8) -> Option<(usize, u32)> {
        let head = self.pages().compound_head(self.virt_to_page(ptr)?);
        let start = self.page_address(head)?.as_ptr() as usize;
        let order = head.order();
        let inside = (start..start + (PAGE_SIZE << order)).contains(&(ptr as usize));
        (inside
            && head.is_allocated()
            && head.flags() & (pg::HEAD | pg::SLAB) == pg::HEAD
            && head.mapping() == LARGE_KMALLOC)
            .then_some((start, order))
    }

    /// `ksize`: the usable size of a kmalloc object (KM-4, KM-7): 0 for NULL and
    /// `ZERO_SIZE_PTR`; the cache's `slab_ksize` for slab objects; the block size for large
    /// ones. A pointer that is neither is reported and gives 0, a pointer inside a large one
    /// too (the report names the allocation), as one inside a slab object: the kernel gives
    /// the whole size for either, which from such a pointer reaches past the allocation.
    ///
    /// As in the kernel, the caller may use all of those bytes afterwards, so a kmalloc debug
    /// cache stops checking the red zone past the request (`skip_orig_size_check`): that is a
    /// write to the object's metadata.
    ///
    /// # Safety
    /// `ptr` is NULL, no object (reported), or an object the caller owns: no one else
    /// allocates, frees or checks it meanwhile.
    #[track_caller]
    pub unsafe fn ksize(&self, ptr: *const u8) -> usize {
        let caller = Location::caller();
        if zero_or_null_ptr(ptr as usize) {
            return 0;
        }
        if let Some(found) = self.object_slab(ptr) {
            // SAFETY: As in `kfree_at`.
            let s = unsafe { &*found.cache };
            if s.obj_index(found.base, ptr as usize).is_none() {
                // Inside an object: its size from here would reach into the next one.
                self.report_not_live(s, ptr, false, "ksize", caller);
                return 0;
            }
            // The caller takes all of it: no more kmalloc red-zone checks past the request.
            crate::slab::debug::skip_orig_size_check(s, ptr.cast_mut());
            return s.ksize();
        }
        match self.large_kmalloc_order(ptr) {
            Some(order) => PAGE_SIZE << order,
            None => {
                self.report_not_slab(ptr, "ksize", caller);
                0
            }
        }
    }

    /// The capacity `krealloc` may grow into in place (the class size for slab objects, the
    /// block for large ones) and the cache — for a live kmalloc allocation only. The object
    /// itself is not read (its recorded request size is the caller's to read, as an owner).
    /// A pointer inside a slab object, or an object known to be free ([`Kmem::known_free`]:
    /// `kfree`'s double-free checks), is `None`: writing `capacity` bytes there would reach
    /// into a neighbour or an object handed out again. `report`: who to name in the report of a pointer that is no live allocation (a
    /// query passes `None`).
    pub(crate) fn krealloc_capacity(
        &self,
        ptr: *const u8,
        report: Option<(&str, &Location<'_>)>,
    ) -> Option<(usize, Option<&Cache>)> {
        if let Some(found) = self.object_slab(ptr) {
            // SAFETY: As in `kfree_at`.
            let s: &Cache = unsafe { &*found.cache };
            let interior = s.obj_index(found.base, ptr as usize).is_none();
            if interior || self.known_free(s, &found, ptr) {
                if let Some((what, caller)) = report {
                    self.report_not_live(s, ptr, !interior, what, caller);
                }
                return None;
            }
            return Some((s.object_size(), Some(s)));
        }
        let order = self.large_kmalloc_order(ptr);
        if order.is_none()
            && let Some((what, caller)) = report
        {
            self.report_not_slab(ptr, what, caller);
        }
        order.map(|order| (PAGE_SIZE << order, None))
    }

    /// `krealloc` (KM-9): the same pointer when `new_size` fits the object's capacity (with
    /// `__GFP_ZERO` the bytes past `new_size` are zeroed); otherwise a new object with the
    /// contents copied and the old one freed. `new_size == 0` frees and returns
    /// `ZERO_SIZE_PTR`. On failure `ptr` stays valid and untouched.
    ///
    /// # Errors
    /// As [`Kmem::kmalloc`]; also for a `ptr` that is not a kmalloc allocation (reported).
    ///
    /// # Safety
    /// `ptr` must be NULL or an object this API handed out and the caller still owns; on success it
    /// must not be used afterwards (unless the same pointer is returned). Pointers that break this are detected and reported where
    /// the allocator can tell (not an object, wrong cache, immediate double free), but a
    /// pointer still in use elsewhere would be written to (free pointers, `init_on_free`).
    #[track_caller]
    pub unsafe fn krealloc(&self, ptr: *mut u8, new_size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        if new_size == 0 {
            self.kfree_at(ptr, caller);
            return Ok(zero_size_ptr());
        }
        if zero_or_null_ptr(ptr as usize) {
            return self.kmalloc_at(new_size, gfp, caller);
        }
        let Some((ks, cache)) = self.krealloc_capacity(ptr, Some(("krealloc", caller))) else {
            return Err(AllocError);
        };
        // The object is the caller's (the contract): no one else allocates or resizes it.
        let orig_size = cache.map_or(0, |s| crate::slab::debug::get_orig_size(s, ptr));
        if new_size <= ks {
            if gfp.contains(__GFP_ZERO) || self.slabs.config.init_on_alloc {
                // SAFETY: Both ranges lie inside the caller's object of `ks` bytes.
                unsafe {
                    if orig_size != 0 && orig_size < new_size {
                        ptr.add(orig_size).write_bytes(0, new_size - orig_size);
                    } else {
                        ptr.add(new_size).write_bytes(0, ks - new_size);
                    }
                }
            }
            if let Some(s) = cache
                && crate::slab::debug::tracks_orig_size(s)
            {
                // The new request size, and the new tail red-zoned (TST-9).
                crate::slab::debug::set_orig_size(s, ptr, new_size);
                if s.flags().intersects(crate::slab::flags::SLAB_RED_ZONE) && new_size < ks {
                    // SAFETY: `[new_size, ks)` lies inside the object.
                    unsafe { ptr.add(new_size).write_bytes(crate::slab::debug::SLUB_RED_ACTIVE, ks - new_size) };
                }
            }
            // SAFETY: Not null (checked above).
            return Ok(unsafe { NonNull::new_unchecked(ptr) });
        }
        let new = self.kmalloc_at(new_size, gfp, caller)?;
        let copy = if orig_size != 0 { orig_size } else { ks };
        // SAFETY: Both objects are the caller's; the old one holds `copy <= ks` bytes, the new
        // one more.
        unsafe { ptr::copy_nonoverlapping(ptr, new.as_ptr(), copy) };
        self.kfree_at(ptr, caller);
        Ok(new)
    }

    /// The usable size of `ptr` ([`Kmem::ksize`]) if it is a kmalloc allocation, `None` (and
    /// no report) otherwise: what `kvfree_sensitive` may zero before the free reports a bad
    /// pointer. A query: nothing in the object is read or written.
    ///
    /// # Safety
    /// The lookup follows `ptr`'s page to its slab descriptor and cache without holding
    /// either (as `ksize` and `kfree` do), so nothing may free what `ptr` lies in while the
    /// call runs: `ptr` is NULL, an allocation the caller holds, or an address that lies in no
    /// slab or large kmalloc block another thread may free meanwhile (a pointer the caller
    /// freed itself is answered `None` when no other thread frees objects of that slab or
    /// destroys its cache during the call). A slab freed under the query could send it to a
    /// descriptor the page no longer names, and a cache torn down under it (a destroyed
    /// cache's memory goes back to the page allocator) to memory reused for anything.
    pub unsafe fn kmalloc_usable_size(&self, ptr: *const u8) -> Option<usize> {
        if zero_or_null_ptr(ptr as usize) {
            return None;
        }
        self.krealloc_capacity(ptr, None).map(|(block, cache)| cache.map_or(block, Cache::ksize))
    }

    /// `kfree_sensitive`: zeroes the whole usable size, then frees.
    ///
    /// # Safety
    /// `ptr` must be NULL or an object this API handed out and the caller still owns; it
    /// must not be used afterwards. Pointers that break this are detected and reported where
    /// the allocator can tell (not an object, wrong cache, immediate double free), but a
    /// pointer still in use elsewhere would be written to (free pointers, `init_on_free`).
    #[track_caller]
    pub unsafe fn kfree_sensitive(&self, ptr: *mut u8) {
        if zero_or_null_ptr(ptr as usize) {
            return;
        }
        let caller = Location::caller();
        // Zeroed only if it is a live allocation; the free then reports what it is not.
        if let Some((block, cache)) = self.krealloc_capacity(ptr, None) {
            // All of it, as `ksize` claims it (no red-zone check past the request).
            let n = cache.map_or(block, |s| {
                crate::slab::debug::skip_orig_size_check(s, ptr);
                s.ksize()
            });
            // SAFETY: `n` bytes belong to the object being freed.
            unsafe { ptr.write_bytes(0, n) };
        }
        self.kfree_at(ptr, caller);
    }
}
