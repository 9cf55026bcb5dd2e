//! PA-12 (SEMANTICS §2.4): the migratetype fallback order (`fallbacks[]`), claiming the largest
//! fallback block, freelist hygiene for stolen pages, and `alloc_flags_nofragment` on x86_64.

use kmem::gfp::*;
use kmem::zone::{MigrateType, ZoneType};
use kmem::{Gfp, MAX_PAGE_ORDER, Machine, Page};

use crate::pages::MAX_BLOCK;
use crate::*;

/// Makes block 0 of ZONE_DMA a free pageblock of `first`'s type (an order-10 request claims
/// it, and its free puts it back whole) beside the zone's three Movable ones, and returns where
/// an order-0 request of `second` lands, as (pageblock index, that pageblock's type then).
/// Every fallback candidate is a whole pageblock, so the order `fallbacks[]` lists the types
/// in decides (`find_suitable_fallback` at order 10).
fn second_request_block(first: Gfp, second: Gfp) -> (usize, MigrateType, Machine) {
    let m = i386_nopcp(64);
    let a = m.alloc_pages(first | GFP_DMA, MAX_PAGE_ORDER).unwrap();
    assert_eq!(pfn(&m, a), 0);
    assert_eq!(m.memmap().pageblock_mt(0), first.migratetype(), "first request claims its pageblock");
    // SAFETY: The test's own pages, unused afterwards.
    unsafe { m.free_pages(a, MAX_PAGE_ORDER) };
    let b = m.alloc_pages(second | GFP_DMA, 0).unwrap();
    let p = pfn(&m, b);
    (p / MAX_BLOCK, m.memmap().pageblock_mt(p), m)
}

#[test]
fn pa12_unmovable_falls_back_to_reclaimable_before_movable() {
    let (block, mt, m) = second_request_block(__GFP_RECLAIMABLE, Gfp::empty());
    assert_eq!((block, mt), (0, MigrateType::Unmovable), "the reclaimable block claimed, not a movable one");
    let row = format!("Node 0, zone {:>8} {:>12} {:>12} {:>12} {:>12} \n", "DMA", 1, 3, 0, 0);
    assert!(m.pagetypeinfo().contains(&row), "{}", m.pagetypeinfo());
    check(&m);
}

#[test]
fn pa12_reclaimable_falls_back_to_unmovable_before_movable() {
    let (block, mt, m) = second_request_block(Gfp::empty(), __GFP_RECLAIMABLE);
    assert_eq!((block, mt), (0, MigrateType::Reclaimable));
    check(&m);
}

/// PA-12 (`__rmqueue_claim`): the largest fallback block is taken first, whatever its type's
/// place in `fallbacks[]`: with a reclaimable pageblock split (its largest free block of order
/// 9) and whole movable ones, an unmovable request claims a movable pageblock.
#[test]
fn pa12_the_largest_fallback_block_wins_over_the_fallback_order() {
    let m = i386_nopcp(64);
    let a = m.alloc_pages(__GFP_RECLAIMABLE | GFP_DMA, 0).unwrap();
    assert_eq!((pfn(&m, a), m.memmap().pageblock_mt(0)), (0, MigrateType::Reclaimable));
    let b = m.alloc_pages(GFP_DMA, 0).unwrap();
    let p = pfn(&m, b);
    assert_eq!((p / MAX_BLOCK, m.memmap().pageblock_mt(p)), (1, MigrateType::Unmovable));
    check(&m);
}

#[test]
fn pa12_movable_falls_back_to_reclaimable_before_unmovable() {
    let m = i386_nopcp(64);
    m.set_zone_watermarks(ZoneType::Dma, [0; 4]).expect("marks in range");
    let dma = GFP_KERNEL | GFP_DMA;
    // Block A: unmovable (free unmovable blocks of orders 0..9 remain in it).
    let u = m.alloc_pages(dma, 0).unwrap();
    let a = pfn(&m, u) / MAX_BLOCK;
    // Block B: a whole reclaimable pageblock, freed again onto the reclaimable list.
    let r = m.alloc_pages(dma | __GFP_RECLAIMABLE, MAX_PAGE_ORDER).unwrap();
    let b = pfn(&m, r) / MAX_BLOCK;
    assert_eq!(m.memmap().pageblock_mt(b * MAX_BLOCK), MigrateType::Reclaimable);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(r, MAX_PAGE_ORDER) };
    // The two remaining movable blocks.
    let movable: Vec<_> = (0..2).map(|_| m.alloc_pages(dma | __GFP_MOVABLE, MAX_PAGE_ORDER).unwrap()).collect();
    assert!(movable.iter().all(|&p| m.memmap().pageblock_mt(pfn(&m, p)) == MigrateType::Movable));
    // No movable free pages left: the fallback must try Reclaimable (block B) before Unmovable (A).
    let mv = m.alloc_pages(dma | __GFP_MOVABLE, 0).unwrap();
    assert_eq!(pfn(&m, mv) / MAX_BLOCK, b, "movable request served from block {}, unmovable block is {a}", b);
    assert_ne!(a, b);
    check(&m);
}

/// PA-12 with Linux 6.10's freelist hygiene: a movable request whose per-CPU refill steals
/// from an unmovable pageblock (its free blocks all smaller than half a pageblock, so nothing
/// is claimed) keeps the stolen pages it did not use on the movable per-CPU list; when they go
/// back to the buddy lists, each lands on its pageblock's (unmovable) lists, as
/// `free_pcppages_bulk` frees every page to its pageblock's type, and the zone's free lists
/// read as before the request.
#[test]
fn pa12_stolen_pages_go_back_to_their_pageblocks_lists() {
    let m = i386(128);
    m.set_zone_watermarks(ZoneType::Normal, [0; 4]).expect("marks in range");
    let normal = m.zone(ZoneType::Normal);
    assert!(normal.pcp_batch() > 1, "a refill takes several pages: {}", normal.pcp_batch());
    // Every page of Normal taken (the last requests fall back to DMA), then one pageblock
    // freed: the only free memory of Normal, a movable pageblock.
    let mut held = grab_all(&m, GFP_KERNEL | __GFP_MOVABLE);
    assert_eq!(normal.free_pages(), 0);
    let i = held.iter().position(|&(p, o)| o == MAX_PAGE_ORDER && zone_of(&m, pfn(&m, p)) == ZoneType::Normal);
    let (block, _) = held.swap_remove(i.expect("a whole pageblock of Normal"));
    let a = pfn(&m, block);
    // SAFETY: The test's own pages, unused afterwards.
    unsafe { m.free_pages(block, MAX_PAGE_ORDER) };
    // An unmovable request claims it whole; the refill's pages come back.
    let first = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_eq!((pfn(&m, first) & !(MAX_BLOCK - 1), m.memmap().pageblock_mt(a)), (a, MigrateType::Unmovable));
    m.drain_local_pages();
    // A keeps free unmovable blocks of orders 0..=4 only: smaller than half a pageblock.
    let taken: Vec<_> = (5..MAX_PAGE_ORDER).rev().map(|o| (m.alloc_pages(GFP_KERNEL, o).unwrap(), o)).collect();
    assert!(taken.iter().all(|&(p, _)| pfn(&m, p) & !(MAX_BLOCK - 1) == a));
    let before = normal.free_blocks_per_type();
    let expect: [usize; 11] = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
    assert_eq!(before[MigrateType::Unmovable as usize], expect, "{before:?}");
    assert_eq!(normal.free_pages(), 31);
    let mv = m.alloc_pages(GFP_KERNEL | __GFP_MOVABLE, 0).unwrap();
    assert_eq!(pfn(&m, mv) & !(MAX_BLOCK - 1), a, "stolen from A");
    assert_eq!(m.memmap().pageblock_mt(a), MigrateType::Unmovable, "stolen, not claimed");
    assert!(normal.free_pages() < 30, "the refill took more than the one page");
    // SAFETY: The test's own page, unused afterwards.
    unsafe { m.free_pages(mv, 0) };
    m.drain_local_pages();
    assert_eq!(normal.free_blocks_per_type(), before, "every page back on its pageblock's lists");
    check(&m);
    free_all(&m, taken);
    free_all(&m, held);
    check(&m);
}

/// Fills ZONE_NORMAL of an x86_64 machine with movable pages (the allocation that first lands
/// in a lower zone is kept too), then frees every other Normal page: Normal has many free
/// order-0 pages, all in Movable pageblocks, none of a whole pageblock. Returns the pages kept.
fn fragment_normal(m: &Machine) -> Vec<&Page> {
    assert!(m.zone(ZoneType::Normal).managed() > 0, "Normal populated");
    let mut normal = Vec::new();
    let mut kept = Vec::new();
    loop {
        let p = m.alloc_pages(GFP_KERNEL | __GFP_MOVABLE | __GFP_NOWARN, 0).expect("movable page");
        if zone_of(m, pfn(m, p)) == ZoneType::Normal {
            normal.push(p)
        } else {
            kept.push(p);
            break;
        }
    }
    for (i, p) in normal.into_iter().enumerate() {
        if i % 2 == 0 {
            // SAFETY: allocated above with order 0 and not used otherwise.
            unsafe { m.free_pages(p, 0) }
        } else {
            kept.push(p)
        }
    }
    kept
}

/// Where one order-0 `gfp` page lands on a machine `fragment_normal` prepared: its zone and
/// pageblock type. Frees it and the `kept` pages.
fn where_one_page_lands(m: &Machine, gfp: Gfp, kept: Vec<&Page>) -> (ZoneType, MigrateType) {
    let p = m.alloc_pages(gfp | __GFP_NOWARN, 0).expect("unmovable page");
    let landed = (zone_of(m, pfn(m, p)), m.memmap().pageblock_mt(pfn(m, p)));
    // SAFETY: allocated above, order 0, unused.
    unsafe { m.free_pages(p, 0) };
    for p in kept {
        // SAFETY: allocated by `fragment_normal`, order 0, unused.
        unsafe { m.free_pages(p, 0) }
    }
    landed
}

/// PA-12, `alloc_flags_nofragment` (from the audit): on x86_64 with ZONE_NORMAL preferred and
/// ZONE_DMA32 configured, the first pass carries `ALLOC_NOFRAGMENT`: no page is taken out of a
/// Movable pageblock in Normal for an unmovable request while DMA32 can serve it without mixing
/// pageblocks.
#[test]
fn pa12_nofragment_prefers_dma32_over_stealing_in_normal() {
    let m = x86_64_nopcp(4096 + 256);
    let kept = fragment_normal(&m);
    let (z, mt) = where_one_page_lands(&m, GFP_KERNEL, kept);
    assert_eq!(z, ZoneType::Dma32, "NOFRAGMENT skips the sub-pageblock steal in Normal (got {z:?}, block {mt:?})");
    check(&m);
}

/// PA-12: when no zone can serve the request with `ALLOC_NOFRAGMENT` (here DMA32 and DMA are
/// below their low watermarks), `get_page_from_freelist` walks the zonelist again without it and
/// takes from a Movable pageblock in Normal — claiming it, as `try_to_claim_block` counts every
/// allocated page of a movable pageblock alike an unmovable request when none is on an LRU.
#[test]
fn pa12_nofragment_retries_without_it_when_every_zone_fails() {
    let m = x86_64_nopcp(4096 + 256);
    let kept = fragment_normal(&m);
    for z in [ZoneType::Dma32, ZoneType::Dma] {
        m.set_zone_watermarks(z, [1 << 24; 4]).expect("marks in range");
    }
    let (z, mt) = where_one_page_lands(&m, GFP_NOWAIT, kept);
    assert_eq!((z, mt), (ZoneType::Normal, MigrateType::Unmovable), "a Movable block in Normal, claimed");
    check(&m);
}

/// PA-12 with the per-CPU lists: the refill (`rmqueue_bulk`) passes the request's flags to the
/// fallback, so a refill for an unmovable request takes no page out of a Movable pageblock in
/// Normal while DMA32 can serve it.
#[test]
fn pa12_nofragment_reaches_the_per_cpu_refill() {
    let m = builder(Profile::X86_64, 4096 + 256).build().expect("build x86_64 machine");
    let kept = fragment_normal(&m);
    m.drain_local_pages();
    let (z, _) = where_one_page_lands(&m, GFP_KERNEL, kept);
    assert_eq!(z, ZoneType::Dma32);
    check(&m);
}
