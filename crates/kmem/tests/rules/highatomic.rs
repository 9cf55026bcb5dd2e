//! High-order atomic reserves (SEMANTICS §2.4 step 2, §2.5 `rmqueue_buddy`, §2.8 direct
//! reclaim and `should_reclaim_retry`), through `kmem::Machine` on a 512 MiB x86_64 machine
//! (pageblock order 9; ZONE_DMA32 holds almost everything, so its cap is
//! `ALIGN(managed / 100, 512)` = three pageblocks).
//!
//! The slow path, where `ALLOC_HIGHATOMIC` is given, is reached by raising
//! `min_free_kbytes` until the DMA32 zone is below its low watermark while a `GFP_ATOMIC`
//! request (37.5 % of min) still passes.

use kmem::gfp::*;
use kmem::zone::{MigrateType, Wmark, ZoneType};
use kmem::{Machine, Page, Profile};

use crate::*;

const PAGEBLOCK: usize = 512;

fn machine(pcp: bool) -> Machine {
    builder(Profile::X86_64, 512).pcp(pcp).build().expect("build x86_64 machine")
}

/// The cap of the module doc, computed from the zone's managed pages.
fn cap(m: &Machine) -> usize {
    let one_percent = m.zone(ZoneType::Dma32).managed() / 100;
    if one_percent < PAGEBLOCK { 0 } else { one_percent.div_ceil(PAGEBLOCK) * PAGEBLOCK }
}

/// Raises the watermarks so that DMA32's free pages lie between 37.5 % of its min
/// watermark and its low watermark: the fast path fails, `GFP_ATOMIC` passes in the slow
/// path. Returns the old `min_free_kbytes`.
fn below_low(m: &Machine) -> usize {
    let old = m.min_free_kbytes();
    let lowmem_kb: usize = m.zones().iter().filter(|z| z.kind() <= ZoneType::Normal).map(|z| z.managed() * 4).sum();
    m.set_min_free_kbytes(lowmem_kb * 9 / 10).unwrap();
    let z = m.zone(ZoneType::Dma32);
    assert!(z.free_pages() <= z.wmark(Wmark::Low), "below low");
    assert!(z.free_pages() > z.wmark(Wmark::Min) / 2, "GFP_ATOMIC passes");
    old
}

fn block_mt(m: &Machine, page: &Page) -> MigrateType {
    m.memmap().pageblock_mt(pfn(m, page))
}

/// The HighAtomic count of DMA32's "Number of blocks type" row of /proc/pagetypeinfo.
fn highatomic_blocks(m: &Machine) -> usize {
    let text = m.pagetypeinfo();
    let blocks = text.split("Number of blocks type").nth(1).expect("blocks table");
    let row = blocks.lines().find(|l| l.contains("zone    DMA32")).expect("DMA32 row");
    row.split_whitespace().nth(7).expect("HighAtomic column").parse().expect("count")
}

#[test]
fn highatomic_no_reserve_on_the_fast_path_or_without_every_condition() {
    let m = machine(false);
    let fast = m.alloc_pages(GFP_ATOMIC, 2).unwrap();
    assert_eq!(m.zone(ZoneType::Dma32).reserved_highatomic(), 0, "the fast path never reserves");
    let old = below_low(&m);
    let mut held = vec![(fast, 2)];
    for (gfp, order, why) in [
        (GFP_ATOMIC, 0, "order 0"),
        (GFP_NOWAIT, 2, "no __GFP_HIGH"),
        (GFP_ATOMIC | __GFP_NOMEMALLOC, 2, "__GFP_NOMEMALLOC"),
        (GFP_KERNEL, 2, "may reclaim"),
        (GFP_ATOMIC | GFP_DMA, 2, "ZONE_DMA: 1 % of it is less than a pageblock"),
    ] {
        held.push((m.alloc_pages(gfp, order).unwrap_or_else(|_| panic!("{why}: allocates")), order));
        assert_eq!(m.zone(ZoneType::Dma32).reserved_highatomic(), 0, "{why}: no reserve");
        assert_eq!(m.zone(ZoneType::Dma).reserved_highatomic(), 0, "{why}: no reserve");
    }
    assert_eq!(highatomic_blocks(&m), 0);
    m.set_min_free_kbytes(old).unwrap();
    free_all(&m, held);
    check(&m);
}

#[test]
fn highatomic_a_slow_path_atomic_success_reserves_its_pageblock() {
    let m = machine(false);
    let old = below_low(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    let page = m.alloc_pages(GFP_ATOMIC, 2).unwrap();
    assert_eq!(block_mt(&m, page), MigrateType::HighAtomic);
    assert_eq!(dma32.reserved_highatomic(), PAGEBLOCK);
    // The page was split off a larger block: the rest of its pageblock is free, and now on
    // the high-atomic lists.
    assert_eq!(dma32.free_highatomic(), PAGEBLOCK - 4);
    assert_eq!(highatomic_blocks(&m), 1);
    m.log().clear();
    m.show_mem(ZoneType::Normal);
    let line = log_lines(&m).into_iter().find(|l| l.contains(" DMA32 free:")).expect("zone line");
    assert!(
        line.contains(&format!("reserved_highatomic:{}KB free_highatomic:{}KB", PAGEBLOCK * 4, (PAGEBLOCK - 4) * 4)),
        "{line}"
    );
    check(&m);

    // A high-atomic request takes from the reserve first; no other request ever does.
    let again = m.alloc_pages(GFP_ATOMIC, 1).unwrap();
    assert_eq!(block_mt(&m, again), MigrateType::HighAtomic, "served from the reserve");
    assert_eq!(dma32.free_highatomic(), PAGEBLOCK - 6);
    let reserved = pfn(&m, page) & !(PAGEBLOCK - 1);
    let mut others = Vec::new();
    for order in 0..=3 {
        for _ in 0..32 {
            let p = m.alloc_pages(GFP_ATOMIC | __GFP_NOMEMALLOC, order).unwrap();
            assert_ne!(pfn(&m, p) & !(PAGEBLOCK - 1), reserved, "order {order} from the reserve");
            others.push((p, order));
        }
    }
    assert_eq!(dma32.free_highatomic(), PAGEBLOCK - 6);
    m.set_min_free_kbytes(old).unwrap();
    free_all(&m, others);
    free_all(&m, vec![(page, 2), (again, 1)]);
    assert_eq!(dma32.free_highatomic(), PAGEBLOCK, "frees of a reserved block go back to it");
    assert_eq!(dma32.reserved_highatomic(), PAGEBLOCK, "the reserve outlives its pages");
    check(&m);
}

#[test]
fn highatomic_the_reserve_stops_at_one_percent_of_the_zone() {
    let m = machine(false);
    let old = below_low(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    let cap = cap(&m);
    assert_eq!(cap, 3 * PAGEBLOCK, "this machine's cap");
    let mut held = Vec::new();
    for i in 1..=5 {
        // A pageblock-sized request retypes its own pageblock (`change_pageblock_range`).
        let p = m.alloc_pages(GFP_ATOMIC, 9).unwrap();
        held.push((p, 9));
        assert_eq!(dma32.reserved_highatomic(), (i * PAGEBLOCK).min(cap), "after {i}");
        assert_eq!(highatomic_blocks(&m), (i * PAGEBLOCK).min(cap) / PAGEBLOCK);
        check(&m);
    }
    m.set_min_free_kbytes(old).unwrap();
    free_all(&m, held);
    assert_eq!(dma32.free_highatomic(), cap, "the reserved blocks came back to the reserve");
    check(&m);
}

/// Three reserved pageblocks, free on the high-atomic lists, on a machine back at its
/// default watermarks.
fn with_three_free_reserved_blocks(m: &Machine) {
    let old = below_low(m);
    let held: Vec<_> = (0..3).map(|_| (m.alloc_pages(GFP_ATOMIC, 9).unwrap(), 9)).collect();
    m.set_min_free_kbytes(old).unwrap();
    free_all(m, held);
    assert_eq!(m.zone(ZoneType::Dma32).free_highatomic(), 3 * PAGEBLOCK);
}

#[test]
fn highatomic_reserve_is_hidden_from_ordinary_requests_and_the_last_resort_of_atomic_ones() {
    let m = machine(false);
    with_three_free_reserved_blocks(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    // Every page outside the reserve, even below the min watermark.
    let held = grab_all(&m, GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN);
    assert_eq!(dma32.free_pages(), dma32.free_highatomic(), "only the reserve is left");
    assert!(m.alloc_pages(GFP_NOWAIT | __GFP_NOMEMALLOC, 0).is_err(), "no right to reserves");
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0).is_err(), "reclaim found nothing");
    assert_eq!(dma32.reserved_highatomic(), 3 * PAGEBLOCK, "a request without progress gives none back");
    // "Failing now is worse than failing a high-order atomic allocation in the future".
    let last = m.alloc_pages(GFP_ATOMIC, 0).unwrap();
    assert_eq!(block_mt(&m, last), MigrateType::HighAtomic);
    assert_eq!(dma32.free_highatomic(), 3 * PAGEBLOCK - 1);
    free_all(&m, vec![(last, 0)]);
    free_all(&m, held);
    check(&m);
}

#[test]
fn highatomic_reclaim_gives_blocks_back_keeping_the_last_until_failure_is_near() {
    let m = machine(false);
    with_three_free_reserved_blocks(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    let mut held = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    // The reserve does not count toward an ordinary request's watermark: the pages below
    // the min watermark are still free, outside the reserve.
    let usable = dma32.free_pages() - dma32.free_highatomic();
    assert!(usable > 0 && usable <= dma32.wmark(Wmark::Min) + dma32.lowmem_reserve(ZoneType::Normal), "{usable}");
    // A page freed by a shrinker: progress, but no order-3 block above the min watermark.
    let single = held.iter().position(|&(_, o)| o == 0).expect("an order-0 page");
    let (page, _) = held.swap_remove(single);
    let reg = register(&m, TestShrinker::new(&m, vec![(pfn(&m, page), 0)], 1, false));
    m.log().clear();
    let a = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 3).expect("served from a converted block");
    assert_eq!(reg.shrinker.calls(), 1);
    assert_eq!(dma32.reserved_highatomic(), 2 * PAGEBLOCK, "one block given back after reclaim progressed");
    assert_eq!(block_mt(&m, a), MigrateType::Unmovable, "converted to the caller's migratetype");
    // No progress any more: the retry decision gives back the rest, the last one included,
    // rather than fail.
    let mut b = Vec::new();
    while dma32.reserved_highatomic() > 0 {
        b.push((m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).expect("served from a converted block"), 0));
        assert!(b.len() <= 3 * PAGEBLOCK, "the reserve is given back");
    }
    assert_eq!(dma32.free_highatomic(), 0);
    assert_eq!(count_log(&m, "invoked oom-killer"), 0, "no OOM while reserves were left");
    drop(reg);
    free_all(&m, b);
    free_all(&m, vec![(a, 3)]);
    free_all(&m, held);
    check(&m);
}

#[test]
fn highatomic_pages_freed_through_the_per_cpu_lists_return_to_the_reserve() {
    let m = machine(true);
    with_three_free_reserved_blocks(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    let held = grab_all(&m, GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN);
    m.drain_all_pages();
    let reserve = dma32.free_highatomic();
    // The per-CPU refill finds nothing; an atomic request goes on to the buddy path's last
    // resort. Two neighbours, so that the first, freed, has no free buddy to merge with.
    let a = m.alloc_pages(GFP_ATOMIC, 0).expect("the last resort with per-CPU lists on");
    let b = m.alloc_pages(GFP_ATOMIC, 0).expect("the last resort with per-CPU lists on");
    assert_eq!((block_mt(&m, a), block_mt(&m, b)), (MigrateType::HighAtomic, MigrateType::HighAtomic));
    assert_eq!(pfn(&m, a) ^ 1, pfn(&m, b), "buddies");
    assert_eq!(dma32.free_highatomic(), reserve - 2);
    free_all(&m, vec![(a, 0)]);
    assert_eq!(pcp_pages(&m, ZoneType::Dma32), 1, "waits on the movable per-CPU list");
    assert_eq!(dma32.free_highatomic(), reserve - 2);
    m.drain_all_pages();
    assert_eq!(dma32.free_highatomic(), reserve - 1, "the flush put it on the high-atomic lists");
    check(&m);
    free_all(&m, vec![(b, 0)]);
    free_all(&m, held);
    m.drain_all_pages();
    assert_eq!(dma32.free_highatomic(), reserve);
    check(&m);
}

/// Order-0 `GFP_KERNEL` pages from DMA32 until the free pages outside its reserve are at most
/// `above` over its low watermark (and still over it).
fn dma32_ordinary_down_to_low_plus(m: &Machine, above: usize) -> Vec<(&Page, u32)> {
    let dma32 = m.zone(ZoneType::Dma32);
    let mut held = Vec::new();
    while dma32.free_pages() - dma32.free_highatomic() > dma32.wmark(Wmark::Low) + above {
        let p = m.alloc_pages(GFP_KERNEL, 0).unwrap();
        assert!(dma32.contains(pfn(m, p)), "from DMA32 while it is above its low watermark");
        held.push((p, 0));
    }
    held
}

/// §2.4 (`zone_watermark_fast` with `ALLOC_WMARK_LOW`, which `alloc_pages_bulk_noprof` uses to
/// pick its zone): the free pages of the reserve do not count toward the low watermark plus
/// the array's length, so a DMA32 zone whose ordinary free pages are below that is passed
/// over for DMA, though its reserve would lift it above.
#[test]
fn highatomic_reserve_does_not_qualify_a_zone_for_a_bulk_allocation() {
    let m = machine(false);
    with_three_free_reserved_blocks(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    const N: usize = 16;
    let held = dma32_ordinary_down_to_low_plus(&m, N);
    assert!(dma32.free_pages() > dma32.wmark(Wmark::Low) + N, "the reserve would lift DMA32 above");
    let mut slots = [None; N];
    assert_eq!(m.alloc_pages_bulk(GFP_KERNEL, &mut slots), N);
    for page in slots.iter().map(|s| s.expect("filled")) {
        assert!(m.zone(ZoneType::Dma).contains(pfn(&m, page)), "served by DMA, not the reserve-propped DMA32");
    }
    free_all(&m, slots.iter().map(|s| (s.unwrap(), 0)).collect());
    free_all(&m, held);
    check(&m);
}

/// §2.4, §2.7 (`free_frozen_page_commit` clears `ZONE_BELOW_HIGH` after a flush only if
/// `zone_watermark_ok(zone, 0, high_wmark_pages(zone), ZONE_MOVABLE, 0)`, without reserves):
/// the free pages of the reserve do not take a zone back above its high watermark.
#[test]
fn highatomic_reserve_does_not_clear_the_below_high_mark() {
    let m = builder(Profile::X86_64, 512).cpus(8).build().unwrap();
    with_three_free_reserved_blocks(&m);
    // A wide watermark gap, so the ordinary free pages can sit below high by less than the
    // reserve and well above low.
    m.set_watermark_scale_factor(300).unwrap();
    let dma32 = m.zone(ZoneType::Dma32);
    let (high, high_min) = (dma32.wmark(Wmark::High), dma32.pcp_high() as usize);
    assert!(high - dma32.wmark(Wmark::Low) > 3 * PAGEBLOCK, "watermark gap too small for the test");
    m.drain_all_pages();
    // Order-4 blocks come straight from the buddy lists.
    let mut held = Vec::new();
    while dma32.free_pages() - dma32.free_highatomic() > high - PAGEBLOCK {
        held.push((m.alloc_pages(GFP_KERNEL, 4).unwrap(), 4));
    }
    assert!(dma32.below_high(), "an allocation below the high watermark marks the zone");
    // Frees shrink this CPU's mark and flush; the zone's ordinary free pages stay below high.
    let small: Vec<_> = (0..2 * high_min).map(|_| (m.alloc_pages(GFP_KERNEL, 0).unwrap(), 0)).collect();
    free_all(&m, small);
    assert!(pcp_pages(&m, ZoneType::Dma32) <= high_min, "flushed");
    assert!(dma32.free_pages() - dma32.free_highatomic() < high);
    assert!(dma32.free_pages() > high, "the reserve would lift it above");
    assert!(dma32.below_high(), "still below the high watermark without the reserve");
    free_all(&m, held);
    m.drain_all_pages();
    check(&m);
}

/// The i386 profile, whose pageblock is a max-order block (pageblock_order == MAX_PAGE_ORDER):
/// a small request reserves its whole 4 MiB pageblock (`move_freepages_block`), frees come
/// back to it, and a failing `GFP_KERNEL` request gives even the zone's only reserved block
/// back before it would fail (`should_reclaim_retry`).
#[test]
fn highatomic_i386_reserves_and_gives_back_max_order_pageblocks() {
    let m = builder(Profile::I386, 512).pcp(false).build().unwrap();
    const BLOCK: usize = 1 << 10;
    let normal = m.zone(ZoneType::Normal);
    let one_percent = normal.managed() / 100;
    assert!((BLOCK..2 * BLOCK).contains(&one_percent), "this machine's cap: two pageblocks");
    let old = m.min_free_kbytes();
    let lowmem_kb: usize = m.zones().iter().filter(|z| z.kind() <= ZoneType::Normal).map(|z| z.managed() * 4).sum();
    m.set_min_free_kbytes(lowmem_kb * 9 / 10).unwrap();
    assert!(normal.free_pages() <= normal.wmark(Wmark::Low), "below low");
    let a = m.alloc_pages(GFP_ATOMIC, 2).unwrap();
    assert_eq!(block_mt(&m, a), MigrateType::HighAtomic);
    assert_eq!((normal.reserved_highatomic(), normal.free_highatomic()), (BLOCK, BLOCK - 4));
    let b = m.alloc_pages(GFP_ATOMIC, 1).unwrap();
    assert_eq!(pfn(&m, b) & !(BLOCK - 1), pfn(&m, a) & !(BLOCK - 1), "served from the reserve");
    m.set_min_free_kbytes(old).unwrap();
    free_all(&m, vec![(a, 2), (b, 1)]);
    assert_eq!((normal.reserved_highatomic(), normal.free_highatomic()), (BLOCK, BLOCK));
    check(&m);
    // Everything else taken (HighMem too: GFP_HIGHUSER's zonelist starts there).
    let mut held = grab_all(&m, GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN);
    held.extend(grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN));
    assert_eq!(normal.free_highatomic(), BLOCK, "the reserve is untouched");
    let c = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).expect("served from the block given back");
    assert_eq!(normal.reserved_highatomic(), 0, "the last block given back rather than fail");
    assert_eq!(block_mt(&m, c), MigrateType::Unmovable);
    assert_eq!(count_log(&m, "invoked oom-killer"), 0);
    held.push((c, 0));
    free_all(&m, held);
    check(&m);
}
