//! Every call into kmem lives here, so the benchmark follows kmem's API in one place.
//!
//! The machine manages the same 1 GiB each peer gets, with the builder's defaults otherwise
//! (per-CPU lists and kswapd on, free blocks of at least a pageblock that stay free given back
//! to the host by kswapd's aging, as a user gets it); the benchmark thread takes CPU slot 0 on first use and allocates through
//! `PageAllocator::alloc_pages`/`free_pages` with `GFP_KERNEL`, and through `alloc_pages_bulk`
//! for the order-0 bulk row (the kernel's bulk API is order-0 only).
//!
//! The slab rows allocate 64-byte objects from a cache made with
//! `kmem_cache_create("bench64", 64, &CacheArgs::default(), SlabFlags::default())` through
//! `kmem_cache_alloc`/`kmem_cache_free`, and every other size through `kmalloc`/`kfree`, all with
//! `GFP_KERNEL`, on the same machine.
//!
//! The mempool rows use pools of four elements: a page pool (order 0) and a slab pool over a
//! 64-byte cache on that machine for the `available` workload, and the same two on second,
//! 16 MiB machines whose every page (and, for the slab pool, every free object) is taken for
//! the `reserve` workload. The comparison rows are the backing allocators' own pairs: the page
//! allocator's order-0 pair, and the `kmem_cache` pair on a 64-byte cache (BENCHMARKS.md's
//! yardstick for the mempool goals).

use std::ffi::c_void;
use std::ptr::NonNull;

use kmem::mempool::RawMempool;
use kmem_core::gfp::{__GFP_MEMALLOC, __GFP_NORETRY, __GFP_NOWARN, GFP_KERNEL};
use kmem_core::memmap::Page;

use kmem_core::slab::CacheArgs;
use kmem_core::slab::CacheRef;
use kmem_core::slab::flags::SlabFlags;

use crate::harness::Role;
use crate::mempool::{ElementAlloc, PoolBench, Workload};
use crate::objects::{self, FIXED, ObjAlloc, Ptr, SIZED, THREADS};
use crate::pages::{Bench, Contender, PageAlloc};
use crate::peers::REGION_BYTES;

/// The kmem machine the page workloads run on.
pub struct Kmem {
    machine: kmem::Machine,
}

impl Kmem {
    /// Boots an x86-64-shaped machine with 1 GiB of memory and 2 CPUs.
    pub fn boot() -> Result<Self, String> {
        let machine = kmem::Machine::builder()
            .profile(kmem::Profile::X86_64)
            .mem_bytes(REGION_BYTES as u64)
            .cpus(2)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { machine })
    }

    /// kmem's rows: one block at a time, and the bulk API for batches.
    pub fn contenders(&self) -> Vec<Box<dyn Contender + '_>> {
        let pages = || KmemPages { machine: &self.machine };
        vec![
            Box::new(Bench::new("kmem alloc_pages", Role::Subject, pages())),
            Box::new(Bench::bulk("kmem alloc_pages_bulk", Role::Subject, pages())),
        ]
    }
}

impl Kmem {
    /// The mempool rows: kmem's pool in both workloads, and the backing allocator's own pair.
    pub fn mempool_contenders(&self) -> Result<Vec<Box<dyn crate::mempool::Contender + '_>>, String> {
        let available = RawMempool::page_pool(&self.machine, 4, 0).map_err(|e| e.to_string())?;
        let exhausted = small_machine()?;
        let reserve = RawMempool::page_pool(&exhausted, 4, 0).map_err(|e| e.to_string())?;
        take_every_page(&exhausted);
        let pool = "kmem mempool page pool o0";
        Ok(vec![
            Box::new(PoolBench::new(pool, Role::Subject, &[Workload::Available], KmemPool { pool: available })),
            Box::new(PoolBench::new(pool, Role::Subject, &[Workload::Reserve], KmemPool { pool: reserve })),
            Box::new(PoolBench::new(
                "kmem alloc_pages/free_pages o0",
                Role::Peer,
                &Workload::ALL,
                KmemPages { machine: &self.machine },
            )),
            Box::new(PoolBench::new(
                "kmem mempool slab pool (64 B)",
                Role::Subject,
                &[Workload::Available],
                KmemPool { pool: slab_pool(&self.machine)? },
            )),
            Box::new(PoolBench::new(
                "kmem mempool slab pool (64 B)",
                Role::Subject,
                &[Workload::Reserve],
                KmemPool { pool: exhausted_slab_pool()? },
            )),
            // The goal's yardstick: kmem's own kmem_cache pair on the same object size.
            Box::new(PoolBench::new(
                "kmem kmem_cache_alloc/free (64 B)",
                Role::Peer,
                &Workload::ALL,
                KmemCacheElem { machine: &self.machine, cache: bench_cache(&self.machine, "pool_peer64")? },
            )),
        ])
    }
}

impl Kmem {
    /// kmem's slab rows: a 64-byte `kmem_cache` (`hot64`, `batch64`, and on two threads
    /// `hot64-2T` and `prodcons`) and `kmalloc` (`kN`, `churn`).
    pub fn slab_contenders(&self) -> Result<Vec<Box<dyn objects::Contender + '_>>, String> {
        let cache = self
            .machine
            .kmem_cache_create("bench64", 64, &CacheArgs::default(), SlabFlags::default())
            .map_err(|e| e.to_string())?;
        Ok(vec![
            Box::new(objects::Bench::shared(
                "kmem kmem_cache_alloc/free",
                Role::Subject,
                FIXED | THREADS,
                KmemCache { machine: &self.machine, cache },
            )),
            Box::new(objects::Bench::new(
                "kmem kmalloc/kfree",
                Role::Subject,
                SIZED,
                KmemKmalloc { machine: &self.machine },
            )),
        ])
    }
}

/// A kmem slab cache as an [`ObjAlloc`] (the size is the cache's).
pub struct KmemCache<'m> {
    machine: &'m kmem::Machine,
    cache: CacheRef,
}

impl ObjAlloc for KmemCache<'_> {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<Ptr> {
        // SAFETY: The bench's own cache of this machine, never destroyed while it runs. The
        // checked `kmem_cache_alloc` costs ~11 instructions more (docs/benchmarks.md).
        unsafe { self.machine.kmem_cache_alloc_unchecked(self.cache, GFP_KERNEL) }.ok().map(Ptr)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, _size: usize) {
        // SAFETY: `obj` came from this cache and is freed once (caller).
        unsafe { self.machine.kmem_cache_free(self.cache, obj.0.as_ptr()) };
    }
}

/// kmem's `kmalloc`/`kfree` as an [`ObjAlloc`].
pub struct KmemKmalloc<'m> {
    machine: &'m kmem::Machine,
}

impl<'m> KmemKmalloc<'m> {
    /// `kmalloc`/`kfree` on `machine` with `GFP_KERNEL` (the memory group's churn).
    pub fn new(machine: &'m kmem::Machine) -> Self {
        Self { machine }
    }
}

impl ObjAlloc for KmemKmalloc<'_> {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<Ptr> {
        self.machine.kmalloc(size, GFP_KERNEL).ok().map(Ptr)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, _size: usize) {
        // SAFETY: `obj` came from `kmalloc` and is freed once (caller).
        unsafe { self.machine.kfree(obj.0.as_ptr()) };
    }
}

/// Takes every page of `m` (reserves included) for good, draining the per-CPU lists.
fn take_every_page(m: &kmem::Machine) {
    let gfp = GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN;
    loop {
        for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
            while m.alloc_pages(gfp, order).is_ok() {}
        }
        if m.drain_local_pages() == 0 {
            return;
        }
    }
}

/// A kmem mempool as an [`ElementAlloc`].
struct KmemPool {
    pool: RawMempool,
}

impl ElementAlloc for KmemPool {
    type Element = NonNull<c_void>;

    #[inline]
    fn alloc(&mut self) -> Option<NonNull<c_void>> {
        self.pool.alloc(GFP_KERNEL)
    }

    #[inline]
    unsafe fn free(&mut self, element: NonNull<c_void>) {
        // SAFETY: The caller frees each element of this pool once.
        unsafe { self.pool.free(element) }
    }
}

impl<'m> ElementAlloc for KmemPages<'m> {
    type Element = &'m Page;

    #[inline]
    fn alloc(&mut self) -> Option<&'m Page> {
        PageAlloc::alloc(self, 0)
    }

    #[inline]
    unsafe fn free(&mut self, element: &'m Page) {
        // SAFETY: Forwarded contract, order 0.
        unsafe { PageAlloc::free(self, element, 0) }
    }
}

/// kmem's page allocator as a [`PageAlloc`].
struct KmemPages<'m> {
    machine: &'m kmem::Machine,
}

impl<'m> PageAlloc for KmemPages<'m> {
    type Block = &'m Page;

    #[inline]
    fn alloc(&mut self, order: u32) -> Option<&'m Page> {
        self.machine.alloc_pages(GFP_KERNEL, order).ok()
    }

    #[inline]
    unsafe fn free(&mut self, block: &'m Page, order: u32) {
        // SAFETY: The bench's own memory, freed once and unused afterwards.
        unsafe { self.machine.free_pages(block, order) };
    }

    fn has_bulk(&self, order: u32) -> bool {
        order == 0
    }

    #[inline]
    fn alloc_bulk(&mut self, _order: u32, out: &mut [Option<&'m Page>]) -> usize {
        // It may stop short (one zone per call, as in Linux); callers loop while it progresses.
        let mut filled = 0;
        while filled < out.len() {
            let now = self.machine.alloc_pages_bulk(GFP_KERNEL, out);
            if now == filled {
                break;
            }
            filled = now;
        }
        filled
    }
}

/// A 16 MiB machine for the reserve rows (every page of it gets taken).
fn small_machine() -> Result<kmem::Machine, String> {
    kmem::Machine::builder()
        .profile(kmem::Profile::X86_64)
        .mem_bytes(16 << 20)
        .cpus(2)
        .kswapd(false)
        .build()
        .map_err(|e| e.to_string())
}

/// A 64-byte cache for the mempool rows.
fn bench_cache(m: &kmem::Machine, name: &str) -> Result<CacheRef, String> {
    m.kmem_cache_create(name, 64, &CacheArgs::default(), SlabFlags::default()).map_err(|e| e.to_string())
}

/// A four-element slab pool over a 64-byte cache of `m`.
fn slab_pool(m: &kmem::Machine) -> Result<RawMempool, String> {
    let cache = bench_cache(m, "pool64")?;
    RawMempool::slab_pool(m, 4, cache).map_err(|e| e.to_string())
}

/// A four-element slab pool whose cache can give nothing more: every page of its machine is
/// taken and every free object of the cache is held, so `mempool_alloc` takes the reserve.
fn exhausted_slab_pool() -> Result<RawMempool, String> {
    let m = small_machine()?;
    let cache = bench_cache(&m, "pool64_exhausted")?;
    let pool = RawMempool::slab_pool(&m, 4, cache).map_err(|e| e.to_string())?;
    take_every_page(&m);
    while m.kmem_cache_alloc(cache, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN).is_ok() {}
    Ok(pool)
}

/// A kmem cache's alloc/free pair as an [`ElementAlloc`].
struct KmemCacheElem<'m> {
    machine: &'m kmem::Machine,
    cache: CacheRef,
}

impl ElementAlloc for KmemCacheElem<'_> {
    type Element = NonNull<u8>;

    #[inline]
    fn alloc(&mut self) -> Option<NonNull<u8>> {
        // SAFETY: As in `KmemCache::alloc`: the bench's own live cache.
        unsafe { self.machine.kmem_cache_alloc_unchecked(self.cache, GFP_KERNEL) }.ok()
    }

    #[inline]
    unsafe fn free(&mut self, element: NonNull<u8>) {
        // SAFETY: The caller frees each object of this cache once.
        unsafe { self.machine.kmem_cache_free(self.cache, element.as_ptr()) };
    }
}
