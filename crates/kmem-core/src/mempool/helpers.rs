//! The backing-allocator pairs of `include/linux/mempool.h` that need no slab: page pools
//! (`mempool_alloc_pages`/`mempool_free_pages`, element = `struct page *` of a fixed order,
//! MP-12), and the page allocator as a [`PoolEnv`].
//!
//! In the kernel `pool_data` of a page pool is just the order, because `alloc_pages` is global.
//! Here every allocator is an object, so `pool_data` points to a [`PoolHelperData`]: the
//! backing allocator and one argument (the order here; the size for kmalloc pools, the cache
//! for slab pools). Pools made by [`mempool_create_page_pool`] keep it inside themselves, so a
//! helper pair costs no extra memory. The slab and kmalloc pairs are in
//! [`super::slab_helpers`].

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::{self, NonNull};

use super::poison::ElementBytes;
use super::{Mempool, NUMA_NO_NODE, PoolData, PoolEnv, create_with, init_with};
use crate::AllocError;
use crate::gfp::{__GFP_HIGHMEM, GFP_KERNEL, Gfp};
use crate::memmap::Page;
use crate::order::get_order;
use crate::page_alloc::PageAllocator;
use crate::platform::Platform;

/// What a helper pair's `pool_data` points to: the backing allocator and one argument.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct PoolHelperData {
    /// The backing allocator (a `PageAllocator<P>` for page pools).
    pub allocator: *const c_void,
    /// The order of a page pool's elements.
    pub arg: usize,
}

/// `arg` bit of a page pool whose elements must stay in the direct map: every allocation the
/// pool makes (first passes, refills, resizes) leaves `__GFP_HIGHMEM` out, whatever mask its
/// caller gave. For owners that address the elements' bytes (the `kmem` crate's typed pools).
const LOWMEM_ONLY: usize = 1 << (usize::BITS - 1);

impl PoolHelperData {
    /// The data of a page pool of `order` over `pa`.
    pub fn pages<P: Platform>(pa: &PageAllocator<P>, order: u32) -> Self {
        Self { allocator: ptr::from_ref(pa).cast(), arg: order as usize }
    }

    /// [`Self::pages`] for a pool whose elements are always lowmem ([`LOWMEM_ONLY`]).
    fn lowmem_pages<P: Platform>(pa: &PageAllocator<P>, order: u32) -> Self {
        Self { allocator: ptr::from_ref(pa).cast(), arg: order as usize | LOWMEM_ONLY }
    }
}

// SAFETY: `alloc_meta` returns whole pages (aligned to 4096, at least `bytes` long) that the
// page allocator gives to no one else until `free_meta` frees them with the same order; the
// page allocator never calls into a mempool.
unsafe impl<P: Platform> PoolEnv for PageAllocator<P> {
    fn platform(&self) -> &dyn Platform {
        PageAllocator::<P>::platform(self)
    }

    fn alloc_meta(&self, bytes: usize, gfp: Gfp) -> Option<NonNull<u8>> {
        self.get_free_pages(gfp, get_order(bytes.max(1))).ok()
    }

    unsafe fn free_meta(&self, ptr: NonNull<u8>, bytes: usize) {
        // SAFETY: The pool's metadata block, given up by the caller (this method's contract).
        unsafe { self.free_pages_addr(ptr.as_ptr(), get_order(bytes.max(1))) };
    }

    fn debug_pools(&self) -> bool {
        self.mempool_debug()
    }
}

/// `mempool_alloc_pages`: a block of `1 << order` pages as a `*const Page` (the kernel's
/// `struct page *`), or NULL.
///
/// # Safety
/// `pool_data` points to a live [`PoolHelperData`] made by [`PoolHelperData::pages`] for a
/// `PageAllocator<P>` that is still alive.
pub unsafe extern "C" fn mempool_alloc_pages<P: Platform>(gfp: Gfp, pool_data: *mut c_void) -> *mut c_void {
    // SAFETY: The caller's promise.
    let (pa, order, strip) = unsafe { page_helper::<P>(pool_data) };
    match pa.alloc_pages(gfp.difference(strip), order) {
        Ok(page) => ptr::from_ref(page).cast_mut().cast(),
        Err(AllocError) => ptr::null_mut(),
    }
}

/// `mempool_free_pages`: frees a block [`mempool_alloc_pages`] returned. NULL is ignored; a
/// pointer that is not a `Page` of this allocator's page array (found by address arithmetic,
/// never read) is reported as the page allocator reports it and ignored, so a C caller's
/// foreign pointer cannot reach the free path.
///
/// # Safety
/// As [`mempool_alloc_pages`]; `element` is NULL, any pointer that is not a `Page` of that
/// allocator, or a `Page` of it that no one uses any more.
pub unsafe extern "C" fn mempool_free_pages<P: Platform>(element: *mut c_void, pool_data: *mut c_void) {
    // SAFETY: The caller's promise.
    let (pa, order, _) = unsafe { page_helper::<P>(pool_data) };
    if element.is_null() {
        return;
    }
    match page_at(pa, element) {
        // SAFETY: An element the caller gives back to its allocator (this helper's contract).
        Some((page, _)) => unsafe { pa.free_pages(page, order) },
        None => pa.report_bad_free(None, order, "page is not in this machine's mem_map", Location::caller()),
    }
}

/// Where a page pool element's bytes are: its direct-map address and `PAGE_SIZE << order`;
/// [`ElementBytes::Unmapped`] for HighMem pages, and [`ElementBytes::NotAnElement`] for a
/// pointer that is not the first `Page` of an allocated block of the pool's order.
///
/// # Safety
/// `pool_data` is as for [`mempool_alloc_pages`]; `element` may be any pointer.
pub(super) unsafe fn page_span<P: Platform>(element: *mut c_void, pool_data: *mut c_void) -> ElementBytes {
    // SAFETY: The caller's promise.
    let (pa, order, _) = unsafe { page_helper::<P>(pool_data) };
    let Some((page, pfn)) = page_at(pa, element) else { return ElementBytes::NotAnElement };
    if !page.is_allocated() || !pfn.is_multiple_of(1 << order) {
        return ElementBytes::NotAnElement;
    }
    match pa.page_address(page) {
        Some(addr) => ElementBytes::Bytes(addr, crate::PAGE_SIZE << order),
        None => ElementBytes::Unmapped,
    }
}

/// The `Page` of `pa`'s page array at `element` and its pfn, found by address arithmetic
/// (nothing is read through `element` unless it is such a `Page`).
fn page_at<P: Platform>(pa: &PageAllocator<P>, element: *mut c_void) -> Option<(&Page, usize)> {
    let start = pa.memmap().start_pfn();
    let first = pa.pfn_to_page(start)?;
    let offset = (element as usize).wrapping_sub(ptr::from_ref(first) as usize);
    if !offset.is_multiple_of(size_of::<Page>()) {
        return None;
    }
    let pfn = start.checked_add(offset / size_of::<Page>())?;
    let page = pa.pfn_to_page(pfn)?;
    ptr::eq(page, element.cast::<Page>()).then_some((page, pfn))
}

/// Reads a page pool's helper data.
///
/// # Safety
/// As [`mempool_alloc_pages`].
/// Returns the allocator, the order and the flags every allocation leaves out.
unsafe fn page_helper<'a, P: Platform>(pool_data: *mut c_void) -> (&'a PageAllocator<P>, u32, Gfp) {
    // SAFETY: `pool_data` points to a live `PoolHelperData` (caller).
    let data = unsafe { &*pool_data.cast::<PoolHelperData>() };
    let strip = if data.arg & LOWMEM_ONLY != 0 { __GFP_HIGHMEM } else { Gfp::empty() };
    // SAFETY: It names a live `PageAllocator<P>` (caller).
    (unsafe { &*data.allocator.cast::<PageAllocator<P>>() }, (data.arg & !LOWMEM_ONLY) as u32, strip)
}

/// `mempool_create_page_pool(min_nr, order)` over `pa`: a pool of order-`order` page blocks
/// whose structure and array are pages of `pa`. `None` if the reserve cannot be filled (also
/// for `order > MAX_PAGE_ORDER`, which the page allocator reports).
///
/// # Safety
/// `pa` outlives the pool, which is used until [`super::mempool_destroy`].
pub unsafe fn mempool_create_page_pool<P: Platform + 'static>(
    pa: &PageAllocator<P>,
    min_nr: usize,
    order: u32,
) -> Option<NonNull<Mempool>> {
    // SAFETY: The caller's contract.
    unsafe { create_page_pool(pa, min_nr, PoolHelperData::pages(pa, order)) }
}

/// [`mempool_create_page_pool`] whose elements are always lowmem: every allocation of the pool
/// (also a caller's `mempool_alloc` or `mempool_resize` with `__GFP_HIGHMEM`) leaves
/// `__GFP_HIGHMEM` out, so each element has a direct-map address. For owners that use the
/// elements' bytes.
///
/// # Safety
/// As [`mempool_create_page_pool`].
pub unsafe fn mempool_create_lowmem_page_pool<P: Platform + 'static>(
    pa: &PageAllocator<P>,
    min_nr: usize,
    order: u32,
) -> Option<NonNull<Mempool>> {
    // SAFETY: The caller's contract.
    unsafe { create_page_pool(pa, min_nr, PoolHelperData::lowmem_pages(pa, order)) }
}

/// The body of the page pool constructors, with the pool's helper data.
///
/// # Safety
/// As [`mempool_create_page_pool`].
unsafe fn create_page_pool<P: Platform + 'static>(
    pa: &PageAllocator<P>,
    min_nr: usize,
    helper: PoolHelperData,
) -> Option<NonNull<Mempool>> {
    // An order above `MAX_PAGE_ORDER` is refused by the reserve's first `alloc_pages`, with the
    // page allocator's `WARN_ON_ONCE_GFP`, as the kernel's `mempool_create_page_pool` is.
    let data = PoolData::Helper(helper, Some(page_span::<P>));
    // SAFETY: The callbacks read the pool's own helper data, which lives as long as the pool,
    // and `pa` outlives the pool (caller); page allocation works from any thread.
    unsafe {
        create_with(pa, min_nr, mempool_alloc_pages::<P>, mempool_free_pages::<P>, data, GFP_KERNEL, NUMA_NO_NODE)
    }
}

/// `mempool_init_page_pool(pool, min_nr, order)` over `pa`, in the caller's storage.
///
/// # Errors
/// `order > MAX_PAGE_ORDER`, or the array or an element could not be allocated.
///
/// # Safety
/// As [`super::mempool_init_node`], with `pa` as the environment.
pub unsafe fn mempool_init_page_pool<P: Platform + 'static>(
    pool: NonNull<Mempool>,
    pa: &PageAllocator<P>,
    min_nr: usize,
    order: u32,
) -> Result<(), AllocError> {
    // An order above `MAX_PAGE_ORDER` fails as in `create_page_pool`.
    let data = PoolData::Helper(PoolHelperData::pages(pa, order), Some(page_span::<P>));
    // SAFETY: The caller's contract; the helper data lives in the pool, which stays in place.
    unsafe {
        init_with(pool, pa, min_nr, mempool_alloc_pages::<P>, mempool_free_pages::<P>, data, GFP_KERNEL, NUMA_NO_NODE)
    }
}

/// The helper argument of a pool made by a helper create/init function (a page pool's order).
pub fn mempool_helper_arg(pool: &Mempool) -> usize {
    pool.helper.arg
}
