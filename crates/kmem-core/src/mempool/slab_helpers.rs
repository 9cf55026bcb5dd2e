//! The slab and kmalloc pairs of `include/linux/mempool.h` (MP-11, MP-12):
//! `mempool_alloc_slab`/`mempool_free_slab` (elements are objects of one cache) and
//! `mempool_kmalloc`/`mempool_kfree` (elements are kmalloc blocks of one size), with their
//! create and init functions, and [`mempool_create_helper_node`]: any of the three pairs
//! (pages too) named as a [`HelperPair`], with the caller's GFP mask and node.
//!
//! As for page pools ([`super::helpers`]), `pool_data` points to a [`PoolHelperData`] kept in
//! the pool: `allocator` is the [`Kmem`], `arg` the cache pointer or the size. The pool's own
//! structure and element array come from the page allocator (`Kmem` derefs to it).
//!
//! MP-11: the kernel's `mempool_alloc_slab` has `VM_BUG_ON(mem->ctor)`, because a reserved
//! element goes back to its cache only through `kmem_cache_free` and a pool hands out objects
//! in whatever state their last user left them, so a constructor's promise would be broken.
//! kmem reports the BUG (`kernel BUG at mm/mempool.c:` … `has a constructor`) and returns NULL
//! instead of crashing, so creating a slab pool over such a cache fails.

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use super::helpers::{PoolHelperData, mempool_alloc_pages, mempool_free_pages, page_span};
use super::poison::ElementBytes;
use super::{Mempool, MempoolAllocFn, MempoolFreeFn, NUMA_NO_NODE, PoolData, create_with, init_with};
use crate::gfp::{GFP_KERNEL, Gfp};
use crate::kmem::Kmem;
use crate::platform::{Level, Platform};
use crate::slab::CacheRef;
use crate::{AllocError, MAX_PAGE_ORDER};

impl PoolHelperData {
    /// The data of a slab pool of `cache` over `kmem`.
    pub fn slab<P: Platform>(kmem: &Kmem<P>, cache: CacheRef) -> Self {
        Self { allocator: ptr::from_ref(kmem).cast(), arg: cache.as_ptr() as usize }
    }

    /// The data of a kmalloc pool of `size`-byte elements over `kmem`.
    pub fn kmalloc<P: Platform>(kmem: &Kmem<P>, size: usize) -> Self {
        Self { allocator: ptr::from_ref(kmem).cast(), arg: size }
    }
}

/// Reads a slab or kmalloc pool's helper data: the `Kmem` and the argument.
///
/// # Safety
/// `pool_data` points to a live [`PoolHelperData`] whose `allocator` is a live `Kmem<P>`.
unsafe fn kmem_helper<'a, P: Platform>(pool_data: *mut c_void) -> (&'a Kmem<P>, usize) {
    // SAFETY: The caller's promise.
    let data = unsafe { &*pool_data.cast::<PoolHelperData>() };
    // SAFETY: As above.
    (unsafe { &*data.allocator.cast::<Kmem<P>>() }, data.arg)
}

/// The cache of a slab pool's helper data.
///
/// # Safety
/// As [`kmem_helper`], made by [`PoolHelperData::slab`] for a cache that is still live.
unsafe fn slab_helper<'a, P: Platform>(pool_data: *mut c_void) -> (&'a Kmem<P>, CacheRef) {
    // SAFETY: The caller's promise.
    let (kmem, arg) = unsafe { kmem_helper::<P>(pool_data) };
    // SAFETY: `arg` is a live cache's pointer (caller); pointers to caches are never null.
    (kmem, unsafe { CacheRef::from_ptr(arg as *mut _) }.expect("a slab pool names its cache"))
}

/// `mempool_alloc_slab`: an object of the pool's cache, or NULL. A cache with a constructor is
/// the kernel's `VM_BUG_ON` (MP-11): reported, and NULL.
///
/// # Safety
/// `pool_data` points to a live [`PoolHelperData`] made by [`PoolHelperData::slab`] for a
/// `Kmem<P>` and a cache that are both still alive.
pub unsafe extern "C" fn mempool_alloc_slab<P: Platform>(gfp: Gfp, pool_data: *mut c_void) -> *mut c_void {
    // SAFETY: The caller's promise.
    let (kmem, cache) = unsafe { slab_helper::<P>(pool_data) };
    if cache.get().has_ctor() {
        kmem.platform().log(
            Level::Crit,
            format_args!(
                "kernel BUG at mm/mempool.c: mempool_alloc_slab: cache {} has a constructor (VM_BUG_ON(mem->ctor))",
                cache.get().name()
            ),
        );
        return ptr::null_mut();
    }
    // SAFETY: The pool's cache outlives the pool (the caller's promise, as for `slab_helper`).
    unsafe { kmem.kmem_cache_alloc_unchecked(cache, gfp) }.map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// `mempool_free_slab`: gives `element` back to the pool's cache (NULL is ignored).
///
/// # Safety
/// As [`mempool_alloc_slab`]; `element` is NULL or an object of that cache no one uses any more.
pub unsafe extern "C" fn mempool_free_slab<P: Platform>(element: *mut c_void, pool_data: *mut c_void) {
    // SAFETY: The caller's promise.
    let (kmem, cache) = unsafe { slab_helper::<P>(pool_data) };
    // SAFETY: An object of `cache` that nobody uses (caller).
    unsafe { kmem.kmem_cache_free(cache, element.cast()) };
}

/// `mempool_kmalloc`: a kmalloc block of the pool's size, or NULL.
///
/// # Safety
/// `pool_data` points to a live [`PoolHelperData`] made by [`PoolHelperData::kmalloc`] for a
/// `Kmem<P>` that is still alive.
pub unsafe extern "C" fn mempool_kmalloc<P: Platform>(gfp: Gfp, pool_data: *mut c_void) -> *mut c_void {
    // SAFETY: The caller's promise.
    let (kmem, size) = unsafe { kmem_helper::<P>(pool_data) };
    kmem.kmalloc(size, gfp).map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// `mempool_kfree`: `kfree(element)`.
///
/// # Safety
/// As [`mempool_kmalloc`]; `element` is NULL or a kmalloc block of that `Kmem` no one uses any
/// more.
pub unsafe extern "C" fn mempool_kfree<P: Platform>(element: *mut c_void, pool_data: *mut c_void) {
    // SAFETY: The caller's promise.
    let (kmem, _) = unsafe { kmem_helper::<P>(pool_data) };
    // SAFETY: A kmalloc block nobody uses (caller).
    unsafe { kmem.kfree(element.cast()) };
}

/// A slab pool element's bytes: the object and the cache's object size (`kmem_cache_size`), or
/// [`ElementBytes::NotAnElement`] for a pointer that is not the start of an object of the cache.
///
/// # Safety
/// `pool_data` is as for [`mempool_alloc_slab`]; `element` may be any pointer.
unsafe fn slab_span<P: Platform>(element: *mut c_void, pool_data: *mut c_void) -> ElementBytes {
    // SAFETY: The caller's promise.
    let (kmem, cache) = unsafe { slab_helper::<P>(pool_data) };
    match (kmem.object_slab(element.cast()), NonNull::new(element.cast::<u8>())) {
        (Some(found), Some(addr))
            if ptr::eq(found.cache, cache.as_ptr())
                && cache.get().obj_index(found.base, addr.as_ptr() as usize).is_some() =>
        {
            ElementBytes::Bytes(addr, cache.get().object_size())
        }
        _ => ElementBytes::NotAnElement,
    }
}

/// A kmalloc pool element's bytes: the block and the pool's size, or
/// [`ElementBytes::NotAnElement`] for a pointer that is not the start of a kmalloc block of at
/// least the pool's size — an object of a kmalloc cache (`SLAB_KMALLOC`) or a large kmalloc
/// block. So a block that `mempool_kmalloc` cannot have returned (another cache's object, a
/// smaller kmalloc block freed into the wrong pool) is never poisoned over its end. A size-0
/// pool's elements are `ZERO_SIZE_PTR` (`kmalloc(0)`): [`ElementBytes::Unmapped`], no bytes.
///
/// # Safety
/// `pool_data` is as for [`mempool_kmalloc`]; `element` may be any pointer.
unsafe fn kmalloc_span<P: Platform>(element: *mut c_void, pool_data: *mut c_void) -> ElementBytes {
    // SAFETY: The caller's promise.
    let (kmem, size) = unsafe { kmem_helper::<P>(pool_data) };
    if size == 0 && element as usize == crate::kmalloc::classes::ZERO_SIZE_PTR {
        // `mempool_kmalloc(gfp, 0)`'s element: a valid one with no bytes.
        return ElementBytes::Unmapped;
    }
    let Some(addr) = NonNull::new(element.cast::<u8>()) else { return ElementBytes::NotAnElement };
    let usable = match kmem.object_slab(addr.as_ptr()) {
        Some(found) => {
            // SAFETY: A live slab's cache is live.
            let cache = unsafe { &*found.cache };
            let kmalloc = cache.flags().contains(crate::slab::flags::SLAB_KMALLOC);
            let start = cache.obj_index(found.base, addr.as_ptr() as usize).is_some();
            if kmalloc && start { cache.ksize() } else { 0 }
        }
        None => kmem.large_kmalloc_order(addr.as_ptr()).map_or(0, |order| crate::PAGE_SIZE << order),
    };
    if usable >= size.max(1) { ElementBytes::Bytes(addr, size) } else { ElementBytes::NotAnElement }
}

/// One of the kernel's helper pairs and its argument: what a pool's `alloc_fn`/`free_fn` and
/// `pool_data` are when it is made by `mempool_create_{slab,kmalloc,page}_pool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperPair {
    /// `mempool_alloc_slab`/`mempool_free_slab` over this cache.
    Slab(CacheRef),
    /// `mempool_kmalloc`/`mempool_kfree` of this size.
    Kmalloc(usize),
    /// `mempool_alloc_pages`/`mempool_free_pages` of this order.
    Pages(u32),
}

/// `mempool_create_node(min_nr, <pair>, <argument>, gfp, node)` over `kmem`: the helper pool
/// of `pair` (its callbacks, its helper data in the pool, and the knowledge of its elements'
/// bytes that poisoning and the debug free checks need), with the reserve filled with `gfp`.
/// This is what a caller that names a helper pair through function pointers (the C ABI) gets.
/// `None` if the reserve cannot be filled — always for a cache with a constructor (MP-11,
/// reported) and for an order above `MAX_PAGE_ORDER`.
///
/// # Safety
/// `kmem` (and the cache of a slab pair) outlive the pool, which is used until
/// [`super::mempool_destroy`].
pub unsafe fn mempool_create_helper_node<P: Platform + 'static>(
    kmem: &Kmem<P>,
    min_nr: usize,
    pair: HelperPair,
    gfp: Gfp,
    node: i32,
) -> Option<NonNull<Mempool>> {
    let (alloc_fn, free_fn, data): (MempoolAllocFn, MempoolFreeFn, _) = match pair {
        HelperPair::Slab(cache) => (
            mempool_alloc_slab::<P>,
            mempool_free_slab::<P>,
            PoolData::Helper(PoolHelperData::slab(kmem, cache), Some(slab_span::<P>)),
        ),
        HelperPair::Kmalloc(size) => (
            mempool_kmalloc::<P>,
            mempool_kfree::<P>,
            PoolData::Helper(PoolHelperData::kmalloc(kmem, size), Some(kmalloc_span::<P>)),
        ),
        HelperPair::Pages(order) if order <= MAX_PAGE_ORDER => (
            mempool_alloc_pages::<P>,
            mempool_free_pages::<P>,
            PoolData::Helper(PoolHelperData::pages(kmem.pages(), order), Some(page_span::<P>)),
        ),
        HelperPair::Pages(_) => return None,
    };
    // SAFETY: The callbacks read the pool's own helper data, which lives as long as the pool;
    // `kmem` and the cache outlive it (caller); the backing allocators work from any thread.
    unsafe { create_with(kmem.pages(), min_nr, alloc_fn, free_fn, data, gfp, node) }
}

/// `mempool_create_slab_pool(min_nr, cache)` over `kmem`. `None` if the reserve cannot be
/// filled — always for a cache with a constructor (MP-11, reported).
///
/// # Safety
/// `kmem` and `cache` outlive the pool, which is used until [`super::mempool_destroy`].
pub unsafe fn mempool_create_slab_pool<P: Platform + 'static>(
    kmem: &Kmem<P>,
    min_nr: usize,
    cache: CacheRef,
) -> Option<NonNull<Mempool>> {
    // SAFETY: The caller's contract.
    unsafe { mempool_create_helper_node(kmem, min_nr, HelperPair::Slab(cache), GFP_KERNEL, NUMA_NO_NODE) }
}

/// `mempool_create_kmalloc_pool(min_nr, size)` over `kmem`. `None` if the reserve cannot be
/// filled (`size` above `KMALLOC_MAX_SIZE` included).
///
/// # Safety
/// `kmem` outlives the pool, which is used until [`super::mempool_destroy`].
pub unsafe fn mempool_create_kmalloc_pool<P: Platform + 'static>(
    kmem: &Kmem<P>,
    min_nr: usize,
    size: usize,
) -> Option<NonNull<Mempool>> {
    // SAFETY: The caller's contract.
    unsafe { mempool_create_helper_node(kmem, min_nr, HelperPair::Kmalloc(size), GFP_KERNEL, NUMA_NO_NODE) }
}

/// `mempool_init_slab_pool(pool, min_nr, cache)` over `kmem`, in the caller's storage.
///
/// # Errors
/// The array or an element could not be allocated (always for a cache with a constructor).
///
/// # Safety
/// As [`super::mempool_init_node`], with `kmem`'s page allocator as the environment; `cache`
/// outlives the pool.
pub unsafe fn mempool_init_slab_pool<P: Platform + 'static>(
    pool: NonNull<Mempool>,
    kmem: &Kmem<P>,
    min_nr: usize,
    cache: CacheRef,
) -> Result<(), AllocError> {
    let data = PoolData::Helper(PoolHelperData::slab(kmem, cache), Some(slab_span::<P>));
    // SAFETY: The caller's contract; the helper data lives in the pool, which stays in place.
    unsafe {
        init_with(
            pool,
            kmem.pages(),
            min_nr,
            mempool_alloc_slab::<P>,
            mempool_free_slab::<P>,
            data,
            GFP_KERNEL,
            NUMA_NO_NODE,
        )
    }
}

/// `mempool_init_kmalloc_pool(pool, min_nr, size)` over `kmem`, in the caller's storage.
///
/// # Errors
/// The array or an element could not be allocated.
///
/// # Safety
/// As [`super::mempool_init_node`], with `kmem`'s page allocator as the environment.
pub unsafe fn mempool_init_kmalloc_pool<P: Platform + 'static>(
    pool: NonNull<Mempool>,
    kmem: &Kmem<P>,
    min_nr: usize,
    size: usize,
) -> Result<(), AllocError> {
    let data = PoolData::Helper(PoolHelperData::kmalloc(kmem, size), Some(kmalloc_span::<P>));
    // SAFETY: As in `mempool_init_slab_pool`.
    unsafe {
        init_with(pool, kmem.pages(), min_nr, mempool_kmalloc::<P>, mempool_kfree::<P>, data, GFP_KERNEL, NUMA_NO_NODE)
    }
}
