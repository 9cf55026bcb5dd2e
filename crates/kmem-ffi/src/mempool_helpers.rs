//! The kernel's helper pairs from C (`linux/mempool.h`): `mempool_alloc_slab`/
//! `mempool_free_slab`, `mempool_kmalloc`/`mempool_kfree` and `mempool_alloc_pages`/
//! `mempool_free_pages`, whose `pool_data` is the cache, the size and the order, as in the
//! kernel; and how a pool made with one of them is recognised. `mempool_kvmalloc`/
//! `mempool_kvfree` (size in `pool_data`) are here too; their pools stay custom, as the
//! kernel's poisoning does not know that pair either.
//!
//! # Recognition
//! A C pool whose `alloc_fn` and `free_fn` are the two halves of one of these pairs (the
//! header's `mempool_create_{slab,kmalloc,page}_pool` pass them, and so does C that names them
//! in `mempool_create`, `mempool_create_node` or `mempool_init`) is made as the core's helper
//! pool of that kind ([`kmem_core::mempool::mempool_create_helper_node`]): exactly the pool
//! the Rust API's `RawMempool::{slab,kmalloc,page}_pool` makes. It knows its elements' bytes,
//! so mempool debugging (`KMEM_MEMPOOL_DEBUG=1`) poisons its reserve and checks every element
//! that leaves it (MP-13), and its frees are checked for double and invalid frees (TST-16).
//!
//! The pointers C passes are compared (`ptr::fn_addr_eq`) with the `extern "C"` items below,
//! the exports themselves: one `#[no_mangle]` definition each, so one address in the process.
//! C gets that address through its GOT; in `libkmem.so` the table below is relocated against
//! the same dynamic symbols, so where a position-dependent executable makes its PLT entry the
//! function's canonical address, the table holds that address too (the C suite checks PIE,
//! non-PIE and static executables, and `kmem insmod` modules resolve against the binary's own
//! exports). A mixed pair (one
//! helper and one function of the caller's, or halves of two different pairs) is a custom
//! pool, as are helper pairs whose `pool_data` the helper would refuse: a slab pair over a
//! pointer that is not a live cache of this ABI (its first `mempool_alloc_slab` reports it,
//! as before), a kmalloc pair of size 0 (`ZERO_SIZE_PTR` elements, all the same pointer) and a
//! page pair whose order does not fit (`mempool_alloc_pages` fails). A custom pool calls the
//! caller's functions through the pointers and never looks into its elements.
//!
//! A recognised slab pool keeps its cache: `kmem_cache_destroy` of it is refused while the
//! pool lives ([`crate::slab`]), where the kernel would go on with a dangling cache.

use std::ffi::c_void;
use std::panic::Location;
use std::ptr;

use kmem::mempool::{MempoolAllocFn, MempoolFreeFn, PoolHelperData};
use kmem::{Gfp, UserPlatform};
use kmem_core::MAX_PAGE_ORDER;
use kmem_core::mempool::HelperPair;

use crate::boundary::{ffi_boundary, report_bad_pointer};
use crate::pages::page_from_c;
use crate::slab::{live_cache, lookup, with_alloc_gfp};

/// Which helper pair a callback pair is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Slab,
    Kmalloc,
    Pages,
}

/// The exported pairs, as the callback types a pool stores (a safe `extern "C" fn` coerces to
/// the `unsafe` pointer type without changing its address).
const PAIRS: [(MempoolAllocFn, MempoolFreeFn, Kind); 3] = [
    (mempool_alloc_slab, mempool_free_slab, Kind::Slab),
    (mempool_kmalloc, mempool_kfree, Kind::Kmalloc),
    (mempool_alloc_pages, mempool_free_pages, Kind::Pages),
];

/// The helper pool `alloc_fn`, `free_fn` and `pool_data` describe, or `None` for a custom
/// pool (see the module documentation).
pub(crate) fn helper_pair(
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    pool_data: *mut c_void,
) -> Option<HelperPair> {
    let (_, _, kind) = PAIRS.iter().find(|(a, f, _)| ptr::fn_addr_eq(alloc_fn, *a) && ptr::fn_addr_eq(free_fn, *f))?;
    let arg = pool_data as usize;
    match kind {
        Kind::Slab => lookup(pool_data).map(HelperPair::Slab),
        Kind::Kmalloc => (arg > 0).then_some(HelperPair::Kmalloc(arg)),
        Kind::Pages => u32::try_from(arg).ok().filter(|&order| order <= MAX_PAGE_ORDER).map(HelperPair::Pages),
    }
}

/// `void *mempool_alloc_slab(gfp_t gfp_mask, void *pool_data)`: an object of the cache
/// `pool_data`. A cache with a constructor is the kernel's `VM_BUG_ON(mem->ctor)`: reported,
/// NULL. A `pool_data` that is not a live cache is reported.
#[unsafe(no_mangle)]
pub extern "C" fn mempool_alloc_slab(gfp_mask: Gfp, pool_data: *mut c_void) -> *mut c_void {
    ffi_boundary("mempool_alloc_slab", ptr::null_mut(), |m| {
        let Some(cache) = live_cache(m, "mempool_alloc_slab", pool_data) else { return ptr::null_mut() };
        let mut data = PoolHelperData::slab(&**m, cache);
        // SAFETY: `data` describes this machine's `Kmem` and a live cache, and outlives the call.
        with_alloc_gfp(gfp_mask, || unsafe {
            kmem::mempool::mempool_alloc_slab::<UserPlatform>(gfp_mask, (&raw mut data).cast())
        })
    })
}

/// `void mempool_free_slab(void *element, void *pool_data)`: `kmem_cache_free(pool_data,
/// element)`, with that function's checks.
///
/// # Safety
/// `element` is NULL or an object of the cache the caller gives up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_free_slab(element: *mut c_void, pool_data: *mut c_void) {
    crate::kmemleak::free(element, crate::kmemleak::Freer::Kfree); // C's `alloc_fn` may have recorded it (a custom pool).
    ffi_boundary("mempool_free_slab", (), |m| {
        if let Some(cache) = live_cache(m, "mempool_free_slab", pool_data) {
            // SAFETY: The caller gives the object up; the core checks it is one of the cache's.
            unsafe { m.kmem_cache_free(cache, element.cast()) };
        }
    });
}

/// `void *mempool_kmalloc(gfp_t gfp_mask, void *pool_data)`: `kmalloc((size_t)pool_data)`.
#[unsafe(no_mangle)]
pub extern "C" fn mempool_kmalloc(gfp_mask: Gfp, pool_data: *mut c_void) -> *mut c_void {
    ffi_boundary("mempool_kmalloc", ptr::null_mut(), |m| {
        m.kmalloc(pool_data as usize, gfp_mask).map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    })
}

/// `void mempool_kfree(void *element, void *pool_data)`: `kfree(element)`.
///
/// # Safety
/// As `kfree`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_kfree(element: *mut c_void, pool_data: *mut c_void) {
    let _ = pool_data;
    crate::kmemleak::free(element, crate::kmemleak::Freer::Kfree); // As in `mempool_free_slab`.
    // SAFETY: The caller gives the block up; the core checks it.
    ffi_boundary("mempool_kfree", (), |m| unsafe { m.kfree(element.cast()) });
}

/// `void *mempool_kvmalloc(gfp_t gfp_mask, void *pool_data)` (6.x): `kvmalloc((size_t)pool_data)`.
/// A pool of this pair is a custom pool: as in the kernel, mempool debugging does not poison
/// kvmalloc elements (`poison_element` knows the kmalloc, slab and page pairs only).
#[unsafe(no_mangle)]
pub extern "C" fn mempool_kvmalloc(gfp_mask: Gfp, pool_data: *mut c_void) -> *mut c_void {
    ffi_boundary("mempool_kvmalloc", ptr::null_mut(), |m| {
        m.kvmalloc(pool_data as usize, gfp_mask).map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    })
}

/// `void mempool_kvfree(void *element, void *pool_data)`: `kvfree(element)`.
///
/// # Safety
/// As `kvfree`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_kvfree(element: *mut c_void, pool_data: *mut c_void) {
    let _ = pool_data;
    crate::kmemleak::free(element, crate::kmemleak::Freer::Kvfree); // As in `mempool_free_slab`.
    // SAFETY: The caller gives the allocation up; vfree and kfree both check it.
    ffi_boundary("mempool_kvfree", (), |m| unsafe { m.kvfree(element.cast()) });
}

/// The order a page pool's `pool_data` carries: the kernel's helpers take `(int)(long)pool_data`
/// and hand it to `alloc_pages`/`__free_pages` as an `unsigned int`, so a negative order (or a
/// value no `int` holds) is an order far above `MAX_PAGE_ORDER`, which the page allocator
/// refuses with its warning instead of the pool failing silently.
fn page_pool_order(pool_data: *mut c_void) -> u32 {
    i32::try_from(pool_data as isize).map_or(u32::MAX, |order| order as u32)
}

/// `void *mempool_alloc_pages(gfp_t gfp_mask, void *pool_data)`: a `struct page *` of order
/// `(long)pool_data`, or NULL (an order above `MAX_PAGE_ORDER`, a negative one included, gets
/// the page allocator's warning).
#[unsafe(no_mangle)]
pub extern "C" fn mempool_alloc_pages(gfp_mask: Gfp, pool_data: *mut c_void) -> *mut c_void {
    ffi_boundary("mempool_alloc_pages", ptr::null_mut(), |m| {
        let order = page_pool_order(pool_data);
        m.alloc_pages(gfp_mask, order).map_or(ptr::null_mut(), |p| ptr::from_ref(p).cast_mut().cast())
    })
}

/// `void mempool_free_pages(void *element, void *pool_data)`: `__free_pages(element, order)`;
/// an element that is not one of kmem's pages is reported and ignored.
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_free_pages(element: *mut c_void, pool_data: *mut c_void) {
    ffi_boundary("mempool_free_pages", (), |m| {
        if element.is_null() {
            return;
        }
        let order = page_pool_order(pool_data);
        match page_from_c(m, element) {
            // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
            Some(page) => unsafe { m.free_pages(page, order) },
            None => {
                report_bad_pointer(m, "mempool_free_pages", "struct page pointer", element as usize, Location::caller())
            }
        }
    });
}
