//! Layouts only a caller-provided region can have: a direct map that is not page aligned
//! (refused), one too small for the page array and a max-order block (refused, saying so), and a memory range that starts inside a pageblock (PA-12's pageblocks stay
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
        // SAFETY: `offset` is below a page and the region has a spare page at its end.
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

/// The smallest board: the page array plus one `MAX_PAGE_ORDER` block (4 MiB). One page less
/// is refused with an error that says what must fit.
#[test]
fn a_direct_map_without_room_for_a_max_order_block_is_refused() {
    let region = Region::new(8 << 20);
    let max_block = 1 << kmem_core::MAX_PAGE_ORDER;
    for pages in [max_block, max_block + 1] {
        // SAFETY: As in `boot`; the layout is rejected before any memory is touched.
        let err = unsafe { PageAllocator::new(board(false), normal_layout(&region, 0, pages, 0), Config::default()) }
            .err()
            .map(|e| e.0);
        let want = "too little directly mapped memory: the page array plus one MAX_PAGE_ORDER block (4 MiB) must fit";
        assert_eq!(err, Some(want), "{pages} pages");
    }
    // SAFETY: As in `boot`.
    let pa =
        unsafe { PageAllocator::new(board(false), normal_layout(&region, 0, 2 * max_block, 0), Config::default()) }
            .expect("8 MiB boots");
    assert!(pa.alloc_pages(GFP_KERNEL, 0).is_ok());
}

/// PA-12 with memory starting at pfn 1: a block stolen for `MIGRATE_UNMOVABLE` claims exactly
/// its own naturally aligned pageblocks; the partial first pageblock and the others keep their
/// type.
#[test]
fn pa12_pageblocks_stay_naturally_aligned_when_memory_starts_inside_one() {
    let region = Region::new(32 << 20);
    let pages = (32 << 20) / PAGE_SIZE - 1;
    let layout = normal_layout(&region, 1, pages, 0);
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
