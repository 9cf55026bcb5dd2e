//! Layouts only a caller-provided region can have: a direct map that is not page aligned, or
//! aligned less than its largest block (refused), boards smaller than one max-order block (they boot; one the page array fills is
//! refused, saying so), and a memory range that starts inside a pageblock (PA-12's pageblocks stay
//! naturally aligned in pfns).

use kmem_core::gfp::GFP_KERNEL;
use kmem_core::page_alloc::{Config, Layout};
use kmem_core::zone::{MAX_NR_ZONES, MigrateType, ZoneType};
use kmem_core::{PAGE_SIZE, PageAllocator};

use super::{Region, board};

/// A layout of one Normal zone over `[start, start + pages)`, mapped at `region + offset`.
fn normal_layout(region: &Region, start: usize, pages: usize, offset: usize) -> Layout {
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Normal as usize] = Some((start, start + pages));
    Layout {
        start_pfn: start,
        end_pfn: start + pages,
        zones,
        // SAFETY: Callers pass an `offset` that leaves the mapped pages inside the region (at
        // most a page, with a page to spare at its end or `pages` a page short).
        direct_map: unsafe { region.ptr.add(offset) },
        direct_map_end_pfn: start + pages,
        pageblock_order: 9,
        zeroed: true,
    }
}

/// A direct map that is not page aligned would misalign every block (and the page array):
/// refused with an error, never a panic or a misaligned object later.
#[test]
fn a_direct_map_that_is_not_page_aligned_is_refused() {
    let region = Region::new((32 << 20) + PAGE_SIZE);
    let pages = (32 << 20) / PAGE_SIZE;
    for offset in [1, 16, PAGE_SIZE / 2] {
        let layout = normal_layout(&region, 0, pages, offset);
        // SAFETY: As in `boot`; the layout is rejected before any memory is touched.
        let err = unsafe { PageAllocator::new(board(false), layout, Config::default()) }.err();
        assert_eq!(err.map(|e| e.0), Some("direct map must be page aligned"), "offset {offset}");
    }
}

/// Blocks are naturally aligned in pfns, so their addresses are aligned to their sizes (PA-3,
/// KM-6) only if pfn 0's address is aligned to the largest block lowmem holds: 4 MiB from 1024
/// pages on, less for smaller boards. A map aligned less is refused, saying so; the same map
/// is fine for memory that starts a page later.
#[test]
fn a_direct_map_aligned_less_than_its_largest_block_is_refused() {
    use kmem_core::page_alloc::direct_map_alignment;
    let region = Region::new(16 << 20);
    let want = "direct map misaligned: pfn 0's address (direct_map less start_pfn pages) must be aligned to the largest block lowmem can hold (4 MiB, or lowmem rounded down to a power of two)";
    for (pages, offset, ok) in [
        (2048, PAGE_SIZE, false),
        (2048, 8192, false),
        (2048, 0, true),
        (4, PAGE_SIZE, false),
        (4, 16384, true),
        (3, 8192, true),
        (1, PAGE_SIZE, true),
    ] {
        let layout = normal_layout(&region, 0, pages, offset);
        assert_eq!(direct_map_alignment(&layout), PAGE_SIZE << (usize::BITS - 1 - pages.leading_zeros()).min(10));
        // SAFETY: As in `boot`; a refused layout is not touched.
        let got = unsafe { PageAllocator::new(board(false), layout, Config::default()) }.err().map(|e| e.0);
        if ok {
            assert_ne!(got, Some(want), "{pages} pages at +{offset}");
        } else {
            assert_eq!(got, Some(want), "{pages} pages at +{offset}");
        }
    }
    // Memory from pfn 1, mapped a page into the region: pfn 0's address is the region's.
    let pages = (16 << 20) / PAGE_SIZE - 1;
    // SAFETY: As in `boot`.
    let pa =
        unsafe { PageAllocator::new(board(false), normal_layout(&region, 1, pages, PAGE_SIZE), Config::default()) };
    assert!(pa.is_ok());
}

/// Boards far smaller than a `MAX_PAGE_ORDER` block boot (the page array is all they give
/// up), with pageblocks larger than the zone; their watermarks come from a `min_free_kbytes`
/// the board sets (Linux's floor, 128 KiB, would be above all of their memory). Each serves
/// blocks of every order that fits, gets all of it back, and runs kmalloc. A direct map that
/// the page array fills is refused, saying so.
#[test]
fn boards_smaller_than_a_max_order_block_boot() {
    use kmem_core::gfp::{__GFP_NORETRY, __GFP_NOWARN};
    for (bytes, pageblock_order) in [(2 * PAGE_SIZE, 9), (64 << 10, 9), (256 << 10, 4), (3 << 20, 9)] {
        let region = Region::new(bytes);
        let pages = bytes / PAGE_SIZE;
        let layout = Layout { pageblock_order, ..normal_layout(&region, 0, pages, 0) };
        let config = Config { min_free_kbytes: Some(0), oom_timeout_ns: 0, ..Config::default() };
        // SAFETY: As in `boot`.
        let pa = unsafe { PageAllocator::new(board(false), layout, config) }.expect("a small board boots");
        let free = pa.total_free();
        let meta = kmem_core::memmap::MemMap::bytes_needed(0, pages, pageblock_order).div_ceil(PAGE_SIZE);
        assert_eq!(pa.reserved_pages(), meta, "{bytes} bytes");
        assert_eq!(free, pages - meta, "{bytes} bytes: all but the page array's pages are free");
        let mut held = Vec::new();
        for order in (0..=kmem_core::MAX_PAGE_ORDER).rev() {
            while let Ok(p) = pa.alloc_pages(GFP_KERNEL | __GFP_NOWARN | __GFP_NORETRY, order) {
                held.push((p, order));
            }
        }
        assert_eq!(held.iter().map(|&(_, order)| 1 << order).sum::<usize>(), free, "{bytes} bytes: every page served");
        for (p, order) in held {
            // SAFETY: The test's own blocks, unused afterwards.
            unsafe { pa.free_pages(p, order) };
        }
        pa.drain_local_pages();
        assert_eq!(pa.total_free(), free, "{bytes} bytes: every page back");
        // SAFETY: Single-threaded test; no CPU slot in use.
        unsafe { pa.check() };
        if pages >= 16 {
            let kmem = kmem_core::Kmem::new(pa, kmem_core::slab::SlabConfig::default());
            let p = kmem.kmalloc(100, GFP_KERNEL).expect("kmalloc on a small board");
            // SAFETY: Just allocated, unused afterwards.
            unsafe { kmem.kfree(p.as_ptr()) };
        }
    }
    let region = Region::new(PAGE_SIZE);
    // SAFETY: As in `boot`; the layout is rejected before any memory is touched.
    let err = unsafe { PageAllocator::new(board(false), normal_layout(&region, 0, 1, 0), Config::default()) }.err();
    let want = "too little directly mapped memory: nothing is left after the page array";
    assert_eq!(err.map(|e| e.0), Some(want));
}

/// Tiny boards with a DMA and a Normal zone that share one pageblock (larger than both), per-CPU
/// lists on and off: GFP_ATOMIC, DMA and GFP_KERNEL requests of every order drain them and all
/// comes back, twice; a slab cache is created, filled, emptied, shrunk and destroyed; the free
/// lists stay consistent (`check`) and nothing is reported.
#[test]
fn tiny_boards_with_two_zones_in_one_pageblock_exhaust_and_recover() {
    use kmem_core::gfp::{__GFP_DMA, __GFP_NORETRY, __GFP_NOWARN, GFP_ATOMIC, Gfp};
    use kmem_core::slab::{CacheArgs, SlabConfig};
    super::ON_BOARD_CPU.with(|c| c.set(true));
    for pages in [4, 5, 17, 64, 600] {
        for (pageblock_order, pcp) in [(3, true), (9, true), (10, false), (0, true)] {
            let tag = format!("{pages} pages, pageblock order {pageblock_order}, pcp {pcp}");
            let region = Region::new(pages * PAGE_SIZE);
            let mut zones = [None; MAX_NR_ZONES];
            zones[ZoneType::Dma as usize] = Some((0, pages / 3));
            zones[ZoneType::Normal as usize] = Some((pages / 3, pages));
            let layout = Layout { pageblock_order, zones, ..normal_layout(&region, 0, pages, 0) };
            let config = Config { min_free_kbytes: Some(0), oom_timeout_ns: 0, pcp, ..Config::default() };
            // SAFETY: As in `boot`.
            let pa = unsafe { PageAllocator::new(board(true), layout, config) }.expect("a tiny board boots");
            let free = pa.total_free();
            for round in 0..2 {
                let mut held = Vec::new();
                let masks: [Gfp; 3] = [GFP_ATOMIC, GFP_KERNEL | __GFP_DMA | __GFP_NORETRY, GFP_KERNEL | __GFP_NORETRY];
                for gfp in masks {
                    for order in (0..=kmem_core::MAX_PAGE_ORDER).rev() {
                        while let Ok(p) = pa.alloc_pages(gfp | __GFP_NOWARN, order) {
                            held.push((p, order));
                        }
                    }
                }
                let got: usize = held.iter().map(|&(_, order)| 1 << order).sum();
                assert_eq!(got, free, "{tag}, round {round}: every page served");
                for (p, order) in held {
                    // SAFETY: The test's own blocks, unused afterwards.
                    unsafe { pa.free_pages(p, order) };
                }
                pa.drain_local_pages();
                assert_eq!(pa.total_free(), free, "{tag}, round {round}: every page back");
                // SAFETY: Single-threaded test; the CPU slot is this thread's, not in use.
                unsafe { pa.check() };
            }
            let k = kmem_core::Kmem::new(pa, SlabConfig::default());
            let c = k.kmem_cache_create("tiny", 200, &CacheArgs::default(), Default::default()).expect(&tag);
            let mut objs = Vec::new();
            while let Ok(p) = k.kmem_cache_alloc(c, GFP_ATOMIC | __GFP_NOWARN) {
                objs.push(p);
            }
            assert!(objs.len() >= 4, "{tag}: {} objects", objs.len());
            for p in objs {
                // SAFETY: The test's own objects of `c`.
                unsafe { k.kmem_cache_free(c, p.as_ptr()) };
            }
            k.kmem_cache_shrink(c);
            // SAFETY: Every object of `c` was freed.
            unsafe { k.kmem_cache_destroy(c) }.expect(&tag);
            k.drain_local_pages();
            // SAFETY: As above.
            unsafe { k.pages().check() };
            let log = k.platform().log.lock().unwrap().clone();
            assert!(!log.contains("BUG") && !log.contains("WARNING"), "{tag}: {log}");
        }
    }
}

/// PA-12 with memory starting at pfn 1: a block stolen for `MIGRATE_UNMOVABLE` claims exactly
/// its own naturally aligned pageblocks; the partial first pageblock and the others keep their
/// type.
#[test]
fn pa12_pageblocks_stay_naturally_aligned_when_memory_starts_inside_one() {
    let region = Region::new(32 << 20);
    let pages = (32 << 20) / PAGE_SIZE - 1;
    // Pfn 1 is mapped a page into the region, so pfn 0's address is the region's (aligned).
    let layout = normal_layout(&region, 1, pages, PAGE_SIZE);
    let config = Config { oom_timeout_ns: 0, pcp: false, ..Config::default() };
    // SAFETY: As in `boot`: the region is ours, zeroed, and outlives the allocator.
    let pa = unsafe { PageAllocator::new(board(false), layout, config) }.expect("boot");
    let page = pa.alloc_pages(GFP_KERNEL, 0).unwrap();
    // Every pageblock starts Movable; the first unmovable request steals a whole max-order block.
    let block = pa.page_to_pfn(page).unwrap() & !1023;
    let wrong: Vec<(usize, MigrateType)> = (1..1 + pages)
        .filter_map(|pfn| {
            let want = if (block..block + 1024).contains(&pfn) { MigrateType::Unmovable } else { MigrateType::Movable };
            let got = pa.memmap().pageblock_mt(pfn);
            (got != want).then_some((pfn, got))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "stole [{block:#x}, +1024): {} pfns of the wrong type, first {:x?}",
        wrong.len(),
        wrong.first()
    );
    // SAFETY: Ours, unused afterwards.
    unsafe { pa.free_pages(page, 0) };
    // SAFETY: No other thread uses the allocator.
    unsafe { pa.check() };
}
