//! PA-1..PA-19 (SEMANTICS.md §2.11) and the page API of §2.10, through `kmem::Machine`; PA-12's
//! migratetype fallback is in `pages_fallback.rs`.

use kmem::gfp::*;
use kmem::zone::{Wmark, ZoneType};
use kmem::{Gfp, MAX_PAGE_ORDER, Machine, PAGE_SIZE, Page, get_order};

use crate::*;

/// Takes every page `gfp` (which must select ZONE_DMA) may have from ZONE_DMA, returns DMA's
/// free pages at that point, and frees everything again.
pub fn dma_floor(m: &Machine, gfp: Gfp) -> usize {
    let dma = m.zone(ZoneType::Dma);
    let before = dma.free_pages();
    let held = grab_all(m, gfp);
    assert!(held.iter().all(|&(p, _)| pfn(m, p) < DMA_END_PFN), "{gfp:?} left ZONE_DMA");
    let floor = dma.free_pages();
    free_all(m, held);
    m.drain_local_pages();
    assert_eq!(dma.free_pages(), before, "{gfp:?}: everything came back");
    floor
}

#[test]
fn pa1_orders_0_to_10_succeed_order_11_fails_with_warning() {
    let m = i386(64);
    let initial = m.buddyinfo();
    for order in 0..=MAX_PAGE_ORDER {
        let page = m.alloc_pages(GFP_KERNEL, order).unwrap_or_else(|_| panic!("order {order}"));
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, order) };
    }
    let fails = m.nr_alloc_fail();
    let (result, line) = (m.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER + 1), line!());
    assert!(result.is_err());
    let lines = log_lines(&m);
    let warning = lines.iter().find(|l| l.starts_with("WARNING:")).expect("a WARNING");
    assert!(warning.contains(&format!(" at {}:{line}:", file!())), "{warning}");
    assert!(warning.ends_with("order 11 > MAX_PAGE_ORDER (10)"), "{warning}");
    assert_eq!(m.nr_alloc_fail(), fails + 1);
    // `WARN_ON_ONCE_GFP`: once per machine; the second failure is silent.
    assert!(m.get_free_pages(GFP_ATOMIC, 12).is_err());
    assert_eq!(count_log(&m, "> MAX_PAGE_ORDER (10)"), 1);
    assert_eq!(m.nr_alloc_fail(), fails + 2);
    m.drain_local_pages();
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn pa1_order_11_with_nowarn_fails_silently() {
    let m = i386(64);
    m.log().clear();
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 11).is_err());
    assert!(m.alloc_pages(GFP_NOWAIT, 11).is_err(), "GFP_NOWAIT carries __GFP_NOWARN");
    assert!(m.log().records().is_empty(), "{:?}", log_lines(&m));
    // `WARN_ON_ONCE_GFP`: a silenced failure does not use up the one warning...
    assert!(m.alloc_pages(GFP_KERNEL, 11).is_err());
    assert_eq!(count_log(&m, "order 11 > MAX_PAGE_ORDER (10)"), 1);
    // ...and after it nothing warns again.
    assert!(m.alloc_pages(GFP_KERNEL, 11).is_err());
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_COMP, 12).is_err());
    assert_eq!(count_log(&m, "> MAX_PAGE_ORDER (10)"), 1, "{:?}", log_lines(&m));
}

#[test]
fn pa2_get_order_table() {
    for (size, order) in [(1, 0), (4096, 0), (4097, 1), (8192, 1), (8193, 2), (16384, 2), (81920, 5), (4 << 20, 10)] {
        assert_eq!(get_order(size), order, "get_order({size})");
    }
    assert_eq!(kmem::order::try_get_order(0), None);
}

#[test]
#[should_panic(expected = "get_order(0)")]
fn pa2_get_order_zero_is_rejected() {
    let _ = get_order(std::hint::black_box(0));
}

#[test]
fn pa3_blocks_are_naturally_aligned() {
    let m = i386(64);
    let mut held = Vec::new();
    for order in 0..=MAX_PAGE_ORDER {
        for _ in 0..3 {
            let page = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, order).unwrap();
            assert!(pfn(&m, page).is_multiple_of(1 << order), "order {order} at pfn {:#x}", pfn(&m, page));
            held.push((page, order));
        }
    }
    free_all(&m, held);
    check(&m);
}

/// Leaves exactly one free block (of max order) in ZONE_DMA of a 64 MiB pcp-less i386 machine
/// and returns its pfn, with the three other DMA blocks held.
fn lone_dma_block(m: &Machine) -> (usize, Vec<(&Page, u32)>) {
    m.set_zone_watermarks(ZoneType::Dma, [0; 4]).expect("marks in range");
    let held: Vec<_> = (0..3)
        .map(|_| (m.alloc_pages(GFP_KERNEL | GFP_DMA, MAX_PAGE_ORDER).expect("DMA block"), MAX_PAGE_ORDER))
        .collect();
    assert_eq!(buddyinfo_row(m, "DMA"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let used: Vec<usize> = held.iter().map(|&(p, _)| pfn(m, p)).collect();
    let lone = (0..4).map(|i| i * MAX_BLOCK).find(|b| !used.contains(b)).unwrap();
    (lone, held)
}

/// Pages in a max-order block.
pub const MAX_BLOCK: usize = 1 << MAX_PAGE_ORDER;

/// PA-4: an allocation of order n from a zone whose only free block is of order 10 leaves one
/// free block at each order n..10 (the upper halves), and none of order 10.
#[test]
fn pa4_split_leaves_one_block_per_lower_order() {
    let m = i386_nopcp(64);
    let (lone, held) = lone_dma_block(&m);
    for order in 0..=MAX_PAGE_ORDER {
        let page = m.alloc_pages(GFP_KERNEL | GFP_DMA, order).unwrap();
        assert_eq!(pfn(&m, page), lone, "the caller keeps the lowest sub-block");
        let expected: Vec<usize> =
            (0..=MAX_PAGE_ORDER).map(|o| usize::from(o >= order && o < MAX_PAGE_ORDER)).collect();
        assert_eq!(buddyinfo_row(&m, "DMA"), expected, "order {order} from one order-10 block");
        check(&m);
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, order) };
        assert_eq!(buddyinfo_row(&m, "DMA"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "PA-5: merged back");
    }
    free_all(&m, held);
    assert_eq!(buddyinfo_row(&m, "DMA"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    check(&m);
}

#[test]
fn pa5_order0_pages_freed_in_any_order_merge_back_to_max_order() {
    let m = i386_nopcp(64);
    let (lone, held) = lone_dma_block(&m);
    let mut pages: Vec<&Page> = (0..MAX_BLOCK).map(|_| m.alloc_pages(GFP_KERNEL | GFP_DMA, 0).unwrap()).collect();
    assert_eq!(buddyinfo_row(&m, "DMA"), [0; 11]);
    assert!(pages.iter().all(|&p| (lone..lone + MAX_BLOCK).contains(&pfn(&m, p))));
    // Free in a scrambled but fixed order (multiplication by an odd number mod 1024).
    let order: Vec<usize> = (0..MAX_BLOCK).map(|i| (i * 389 + 17) % MAX_BLOCK).collect();
    for (n, &i) in order.iter().enumerate() {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(pages[i], 0) };
        if n % 97 == 0 {
            check(&m);
        }
    }
    pages.clear();
    assert_eq!(buddyinfo_row(&m, "DMA"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa5_mixed_orders_freed_everything_restores_initial_buddyinfo() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let mut held = Vec::new();
    let mut x = 12345u32;
    for _ in 0..600 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let order = (x >> 16) % 6;
        let gfp = [GFP_KERNEL, GFP_KERNEL | __GFP_MOVABLE, GFP_KERNEL | __GFP_RECLAIMABLE][(x >> 8) as usize % 3];
        held.push((m.alloc_pages(gfp, order).unwrap(), order));
        // Free about a third as we go, from the middle.
        if x.is_multiple_of(3) {
            let (p, o) = held.remove(held.len() / 2);
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(p, o) };
        }
    }
    check(&m);
    while !held.is_empty() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let (p, o) = held.swap_remove((x >> 8) as usize % held.len());
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, o) };
    }
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn pa5_exhaust_with_gfp_atomic_then_full_recovery() {
    let m = i386(64);
    let initial = m.buddyinfo();
    let initial_free = m.total_free();
    let held = grab_all(&m, GFP_ATOMIC | __GFP_NOWARN);
    assert!(pages_in(&held) * 10 > m.total_managed() * 9, "GFP_ATOMIC got {} pages", pages_in(&held));
    assert!(m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0).is_err());
    check(&m);
    free_all(&m, held);
    m.drain_local_pages();
    assert_eq!(m.total_free(), initial_free, "nothing leaked");
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn pa5_free_with_extra_reference_frees_tail_halves_first() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let free0 = m.total_free();
    let page = m.alloc_pages(GFP_KERNEL, 3).unwrap();
    assert!(page.get_page());
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 3) };
    assert_eq!(m.total_free(), free0 - 1, "orders 2, 1, 0 of the tail are free; the head is still held");
    assert_eq!(page.refcount(), 1);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn pa6_no_merge_with_free_buddy_of_different_order() {
    let m = i386_nopcp(64);
    let (b, held) = lone_dma_block(&m);
    let pair = m.alloc_pages(GFP_KERNEL | GFP_DMA, 1).unwrap();
    let x = m.alloc_pages(GFP_KERNEL | GFP_DMA, 0).unwrap();
    let y = m.alloc_pages(GFP_KERNEL | GFP_DMA, 0).unwrap();
    assert_eq!([pfn(&m, pair), pfn(&m, x), pfn(&m, y)], [b, b + 2, b + 3]);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(x, 0) }; // b+2 is free at order 0; its buddy b+3 is held.
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(pair, 1) }; // The order-1 buddy position b+2 holds an order-0 block: no merge.
    assert_eq!(buddyinfo_row(&m, "DMA"), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    assert!(m.pfn_to_page(b).unwrap().is_buddy() && m.pfn_to_page(b + 2).unwrap().is_buddy());
    check(&m);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(y, 0) }; // Now everything merges, one order at a time, up to order 10.
    assert_eq!(buddyinfo_row(&m, "DMA"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    free_all(&m, held);
    check(&m);
}

/// PA-6 on a whole machine. The "across zones" half cannot fail here: a `kmem` machine's zone
/// boundaries are fixed by its profile at 16 MiB, 896 MiB and 4 GiB, all multiples of a
/// max-order block, whatever the memory size (an odd size only moves the end of the last zone,
/// and the page array carved from the top of the direct map is reserved pages inside a zone,
/// not a boundary), so no two buddies ever straddle one. The zone bound of the merge is tested
/// where a layout can put a boundary anywhere: the `kmem-core` unit test
/// `pa6_no_merge_across_a_zone_boundary_not_aligned_to_the_merge_order` and the caller-region
/// test `pa6_buddies_straddling_an_unaligned_zone_boundary_do_not_merge`.
#[test]
fn pa6_no_merge_beyond_max_order_or_across_zones() {
    let m = i386_nopcp(64);
    let (dma, normal) = (m.zone(ZoneType::Dma), m.zone(ZoneType::Normal));
    let (dma0, normal0) = (dma.free_pages(), normal.free_pages());
    // Everything in both zones, as single pages, then freed: adjacent max-order buddies never
    // become order 11, and no page changes zone.
    let mut held = Vec::new();
    while let Ok(p) = m.alloc_pages(GFP_KERNEL | __GFP_MEMALLOC | __GFP_NOWARN | __GFP_NORETRY, 0) {
        held.push((p, 0));
    }
    assert_eq!(m.total_free(), 0);
    assert!(held.iter().any(|&(p, _)| pfn(&m, p) == DMA_END_PFN - 1));
    assert!(held.iter().any(|&(p, _)| pfn(&m, p) == DMA_END_PFN));
    free_all(&m, held);
    assert_eq!((dma.free_pages(), normal.free_pages()), (dma0, normal0));
    assert_eq!(buddyinfo_row(&m, "DMA"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    assert_eq!(m.zone(ZoneType::Normal).free_blocks_per_order()[10], 11);
    check(&m);
}

#[test]
fn pa7_reserve_fractions_at_min_1000() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    m.set_zone_watermarks(ZoneType::Dma, [1000; 4]).expect("marks in range");
    let nowarn = __GFP_NOWARN | GFP_DMA;
    for (gfp, floor) in [
        (GFP_KERNEL | __GFP_NORETRY | nowarn, 1000),
        (GFP_KERNEL | __GFP_HIGH | __GFP_NORETRY | nowarn, 500),
        (GFP_ATOMIC | nowarn, 375),
        (GFP_NOWAIT | GFP_DMA, 1000),
        (__GFP_KSWAPD_RECLAIM | nowarn, 1000), // The historical GFP_NOWAIT.
        (GFP_ATOMIC | __GFP_NOMEMALLOC | nowarn, 500),
        (GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | nowarn, 0),
    ] {
        assert_eq!(dma_floor(&m, gfp), floor, "{gfp:?}: free pages left when it first fails");
    }
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn pa7_order2_boundary_free_minus_3_equal_to_min_fails() {
    let m = i386_nopcp(64);
    let gfp = GFP_KERNEL | GFP_DMA | __GFP_NORETRY | __GFP_NOWARN;
    let free = m.zone(ZoneType::Dma).free_pages();
    m.set_zone_watermarks(ZoneType::Dma, [free - 3; 4]).expect("marks in range");
    assert!(m.alloc_pages(gfp, 2).is_err(), "free - 3 == min fails");
    assert!(m.alloc_pages(gfp, 0).is_ok(), "order 0 passes: free > min");
    let free = m.zone(ZoneType::Dma).free_pages();
    m.set_zone_watermarks(ZoneType::Dma, [free - 4; 4]).expect("marks in range");
    let page = m.alloc_pages(gfp, 2).expect("free - 3 > min passes");
    assert!(pfn(&m, page) < DMA_END_PFN);
    check(&m);
}

#[test]
fn pa8_fast_path_uses_low_slow_path_uses_min() {
    let m = i386_nopcp(64);
    m.set_zone_watermarks(ZoneType::Dma, [1000, 2000, 3000, 4000]).expect("marks in range");
    let dma = m.zone(ZoneType::Dma);
    // Non-blocking, no reserves: 100 % of the mark; the slow path (and only it) wakes kswapd.
    let gfp = GFP_DMA | __GFP_KSWAPD_RECLAIM | __GFP_NOWARN;
    let mut held = Vec::new();
    let mut slow = 0;
    loop {
        let (free, woken) = (dma.free_pages(), m.nr_kswapd_wakeups());
        let Ok(page) = m.alloc_pages(gfp, 0) else { break };
        held.push((page, 0));
        let woke = m.nr_kswapd_wakeups() - woken;
        if free > 2000 {
            assert_eq!(woke, 0, "fast path above the low mark (free {free})");
        } else if free < 2000 {
            assert_eq!(woke, 1, "slow path below the low mark (free {free})");
            slow += 1;
        }
    }
    assert_eq!(dma.free_pages(), 1000, "the slow path stops at the min mark");
    assert_eq!(slow, 999);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa9_lowmem_reserve_values_follow_ratios() {
    for m in [i386(1024), i386(64), builder(kmem::Profile::X86_64, 64).build().unwrap()] {
        let expected = expected_reserve(&m);
        for (i, zone) in m.zones().iter().enumerate() {
            for (j, &kind) in ZoneType::ALL.iter().enumerate() {
                assert_eq!(zone.lowmem_reserve(kind), expected[i][j], "{:?} {} [{}]", m, zone.name(), kind.name());
            }
        }
    }
    let m = i386(1024);
    let managed = |k| m.zone(k).managed();
    assert_eq!(m.zone(ZoneType::Normal).lowmem_reserve(ZoneType::HighMem), managed(ZoneType::HighMem) / 32);
    assert_eq!(
        m.zone(ZoneType::Dma).lowmem_reserve(ZoneType::HighMem),
        (managed(ZoneType::Normal) + managed(ZoneType::HighMem)) / 256
    );
}

#[test]
fn pa9_fallback_into_lower_zones_leaves_min_plus_reserve() {
    let m = builder(kmem::Profile::I386, 1024).pcp(false).build().unwrap();
    let (dma, normal, high) = (m.zone(ZoneType::Dma), m.zone(ZoneType::Normal), m.zone(ZoneType::HighMem));
    let high_free = high.free_pages();
    m.set_zone_watermarks(ZoneType::HighMem, [1 << 40; 4]).expect("marks in range"); // Closed: forces the fallback.
    m.set_zone_watermarks(ZoneType::Normal, [100; 4]).expect("marks in range");
    m.set_zone_watermarks(ZoneType::Dma, [200; 4]).expect("marks in range");
    let res = expected_reserve(&m);
    let (n, h) = (ZoneType::Normal as usize, ZoneType::HighMem as usize);
    // A HighMem request may leave Normal and DMA only down to min + lowmem_reserve[HighMem].
    let a = grab_all(&m, GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN);
    assert_eq!(high.free_pages(), high_free);
    assert_eq!(normal.free_pages(), 100 + res[n][h]);
    assert_eq!(dma.free_pages(), 200 + res[0][h]);
    // A Normal request goes further: lowmem_reserve[Normal].
    let b = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    assert_eq!(normal.free_pages(), 100);
    assert_eq!(dma.free_pages(), 200 + res[0][n]);
    // And a DMA request down to DMA's own min.
    let c = grab_all(&m, GFP_DMA | __GFP_NOWARN);
    assert_eq!(dma.free_pages(), 200);
    assert!(res[0][h] > res[0][n] && res[n][h] > 0);
    for held in [a, b, c] {
        free_all(&m, held);
    }
    check(&m);
}

#[test]
fn pa10_default_watermarks_from_min_free_kbytes() {
    for m in [i386(1024), i386(64), builder(kmem::Profile::X86_64, 64).build().unwrap()] {
        let mfk = expected_min_free_kbytes(&m);
        assert_eq!(m.min_free_kbytes(), mfk, "{m:?}");
        assert_eq!(m.watermark_scale_factor(), 10);
        let expected = expected_wmarks(&m, mfk, 10);
        for (i, zone) in m.zones().iter().enumerate() {
            let got = [Wmark::Min, Wmark::Low, Wmark::High, Wmark::Promo].map(|w| zone.wmark(w));
            assert_eq!(got, expected[i], "{m:?} zone {}", zone.name());
        }
    }
    // HighMem: clamp(managed / 1024, 32, 128) = 32 for 128 MiB.
    assert_eq!(i386(1024).zone(ZoneType::HighMem).wmark(Wmark::Min), 32);
}

#[test]
fn pa10_changing_min_free_kbytes_or_scale_factor_recomputes_all_zones() {
    let m = i386(1024);
    let marks = |m: &Machine| -> Vec<[usize; 4]> {
        m.zones().iter().map(|z| [Wmark::Min, Wmark::Low, Wmark::High, Wmark::Promo].map(|w| z.wmark(w))).collect()
    };
    m.set_min_free_kbytes(16384).expect("min_free_kbytes in range");
    assert_eq!(marks(&m), expected_wmarks(&m, 16384, 10).to_vec());
    m.set_watermark_scale_factor(300).unwrap();
    assert_eq!(marks(&m), expected_wmarks(&m, 16384, 300).to_vec());
    assert!(m.set_watermark_scale_factor(0).is_err());
    assert!(m.set_watermark_scale_factor(3001).is_err());
    assert_eq!(m.watermark_scale_factor(), 300, "a rejected value changes nothing");
    m.set_min_free_kbytes(1024).expect("min_free_kbytes in range");
    assert_eq!(marks(&m), expected_wmarks(&m, 1024, 300).to_vec());
}

#[test]
fn pa11_highest_eligible_zone_first_then_downwards() {
    let m = i386_nopcp(1024);
    let zone_of_next = |gfp: Gfp| m.alloc_pages(gfp, 0).map(|p| zone_of(&m, pfn(&m, p)));
    let gfp = GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN;
    assert_eq!(zone_of_next(gfp), Ok(ZoneType::HighMem));
    assert_eq!(zone_of_next(GFP_KERNEL), Ok(ZoneType::Normal));
    m.set_zone_watermarks(ZoneType::HighMem, [1 << 40; 4]).expect("marks in range");
    assert_eq!(zone_of_next(gfp), Ok(ZoneType::Normal));
    m.set_zone_watermarks(ZoneType::Normal, [1 << 40; 4]).expect("marks in range");
    assert_eq!(zone_of_next(gfp), Ok(ZoneType::Dma));
    assert_eq!(zone_of_next(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN), Ok(ZoneType::Dma));
    m.set_zone_watermarks(ZoneType::Dma, [1 << 40; 4]).expect("marks in range");
    assert!(zone_of_next(gfp).is_err(), "no zone left");
    // __GFP_THISNODE: one node, so it cannot leave it; it behaves as without the flag.
    m.set_zone_watermarks(ZoneType::HighMem, [0; 4]).expect("marks in range");
    assert_eq!(zone_of_next(gfp | __GFP_THISNODE), Ok(ZoneType::HighMem));
    check(&m);
}

#[test]
fn pa11_gfp_dma_never_leaves_the_dma_zone() {
    let m = i386_nopcp(64);
    m.set_zone_watermarks(ZoneType::Dma, [1 << 40; 4]).expect("marks in range");
    let normal_free = m.zone(ZoneType::Normal).free_pages();
    assert!(m.alloc_pages(GFP_DMA | __GFP_NOWARN, 0).is_err());
    assert!(m.alloc_pages(GFP_KERNEL | GFP_DMA | __GFP_NORETRY | __GFP_NOWARN, 0).is_err());
    assert!(m.get_free_pages(GFP_ATOMIC | GFP_DMA | __GFP_NOWARN, 0).is_err());
    assert_eq!(m.zone(ZoneType::Normal).free_pages(), normal_free, "Normal had room but was not used");
    check(&m);
}

#[test]
fn pa18_gfp_zero_pages_are_zeroed_after_reuse() {
    let m = i386(64);
    for order in [0, 3] {
        let len = PAGE_SIZE << order;
        let page = m.alloc_pages(GFP_KERNEL, order).unwrap();
        let addr = m.page_address(page).unwrap();
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(addr, &vec![0xa5; len]) }.unwrap();
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, order) };
        // Without __GFP_ZERO the same (per-CPU, LIFO) block comes back dirty...
        let again = m.alloc_pages(GFP_KERNEL, order).unwrap();
        assert_eq!(m.page_address(again), Some(addr));
        let mut buf = vec![0; len];
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.read_bytes(addr, &mut buf) }.unwrap();
        assert!(buf.iter().all(|&b| b == 0xa5), "no zeroing on free");
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(again, order) };
        // ...and with it, zeroed.
        let zeroed = m.alloc_pages(GFP_KERNEL | __GFP_ZERO, order).unwrap();
        assert_eq!(m.page_address(zeroed), Some(addr));
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.read_bytes(addr, &mut buf) }.unwrap();
        assert!(buf.iter().all(|&b| b == 0), "order {order} not zeroed");
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(zeroed, order) };
    }
    check(&m);
}

#[test]
fn pa18_gfp_zero_on_a_fully_dirtied_zone() {
    let m = i386_nopcp(64);
    // Dirty every page of ZONE_DMA, free it all, then allocate zeroed blocks of every kind.
    let held = grab_all(&m, GFP_DMA | __GFP_MEMALLOC | __GFP_NOWARN);
    assert_eq!(pages_in(&held), DMA_END_PFN);
    for &(p, o) in &held {
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(m.page_address(p).unwrap(), &vec![0xff; PAGE_SIZE << o]) }.unwrap();
    }
    free_all(&m, held);
    let gfp = GFP_KERNEL | GFP_DMA | __GFP_ZERO;
    let mut buf = vec![0u8; PAGE_SIZE << MAX_PAGE_ORDER];
    for order in [5, 0, 10] {
        let page = m.alloc_pages(gfp, order).unwrap();
        let buf = &mut buf[..PAGE_SIZE << order];
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.read_bytes(m.page_address(page).unwrap(), buf) }.unwrap();
        assert!(buf.iter().all(|&b| b == 0), "order {order}");
    }
    let page = m.get_zeroed_page(GFP_KERNEL | GFP_DMA).unwrap();
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(page, &mut buf[..PAGE_SIZE]) }.unwrap();
    assert!(buf[..PAGE_SIZE].iter().all(|&b| b == 0), "get_zeroed_page");
    check(&m);
}

/// Whether `pfn` lies in a free block on the buddy lists (not on a per-CPU list, not allocated).
fn in_buddy_block(m: &Machine, pfn: usize) -> bool {
    (0..=MAX_PAGE_ORDER).any(|order| {
        let head = m.pfn_to_page(pfn & !((1 << order) - 1)).unwrap();
        head.is_buddy() && head.order() == order
    })
}

/// PA-18 and §2.10 (`make_alloc_exact`): the unused tail goes straight back to the buddy lists
/// (`__free_pages_ok(page, 0, FPI_TO_TAIL)`), never to a per-CPU list — with per-CPU lists on
/// as well as off.
#[test]
fn pa18_alloc_pages_exact_uses_ceil_pages_and_frees_the_rest() {
    for m in [i386_nopcp(64), i386(64)] {
        let initial = m.buddyinfo();
        // Free pages, the per-CPU lists' included (a refill only moves pages onto them).
        let free = || m.total_free() + pcp_pages(&m, ZoneType::Normal) + pcp_pages(&m, ZoneType::Dma);
        for size in [1usize, 4096, 4097, 3 * 4096, 3 * 4096 + 1, 5 * 4096 + 100, 100 * 4096, 1000 * 4096 + 1] {
            let pages = size.div_ceil(PAGE_SIZE);
            let before = free();
            let addr = m.alloc_pages_exact(size, GFP_KERNEL).unwrap();
            assert_eq!(free(), before - pages, "size {size}: exactly {pages} pages used");
            // SAFETY: The test's own allocation, used by nothing else meanwhile.
            unsafe { m.write_bytes(addr, &vec![7; pages * PAGE_SIZE]) }.expect("all pages usable");
            let base = m.virt_to_pfn(addr.as_ptr()).unwrap();
            for tail in base + pages..base + (1 << get_order(size)) {
                assert!(in_buddy_block(&m, tail), "size {size}: tail pfn {tail:#x} is on the buddy lists");
            }
            let after = addr.as_ptr().wrapping_add(pages * PAGE_SIZE);
            if pages < 1 << get_order(size) {
                let tail = std::ptr::NonNull::new(after).unwrap();
                // SAFETY: The test's own allocation, used by nothing else meanwhile.
                assert!(unsafe { m.write_bytes(tail, &[1]) }.is_err(), "size {size}: the tail is free again");
            }
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages_exact(addr.as_ptr(), size) };
            assert_eq!(free(), before);
        }
        m.drain_local_pages();
        assert_eq!(m.buddyinfo(), initial, "pcp {}", m.pcp_enabled());
        check(&m);
    }
}

/// `FPI_TO_TAIL`: the tail pages go to the cold end of the buddy lists, so the next order-0
/// allocation from the buddy lists takes a page that was free before, not one of them.
#[test]
fn pa18_alloc_pages_exact_tail_goes_to_the_buddy_list_tail() {
    let m = i386_nopcp(64);
    // A free order-0 page at the head of the order-0 list: the upper half left by a split.
    let first = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert!(buddyinfo_row(&m, "Normal")[0] > 0, "an order-0 block is free");
    // Three pages of an order-2 block: its last page goes back at order 0 (its buddy is in use).
    let addr = m.alloc_pages_exact(3 * PAGE_SIZE, GFP_KERNEL).unwrap();
    let tail = m.virt_to_pfn(addr.as_ptr()).unwrap() + 3;
    assert!(in_buddy_block(&m, tail));
    let next = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_ne!(pfn(&m, next), tail, "the tail was put at the head of the list");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(next, 0) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_exact(addr.as_ptr(), 3 * PAGE_SIZE) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(first, 0) };
    check(&m);
}

#[test]
fn pa18_alloc_pages_exact_strips_comp_and_highmem_with_a_warning() {
    let m = i386(1024);
    assert!(m.alloc_pages_exact(0, GFP_KERNEL).is_err(), "size 0");
    let addr = m.alloc_pages_exact(2 * 4096, GFP_KERNEL | __GFP_COMP).unwrap();
    assert_eq!(count_log(&m, "alloc_pages_exact: __GFP_COMP|__GFP_HIGHMEM not allowed; stripped"), 1);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_exact(addr.as_ptr(), 2 * 4096) };
    let addr = m.alloc_pages_exact(3 * 4096, GFP_HIGHUSER).unwrap();
    let phys = m.virt_to_phys(addr.as_ptr()).expect("a direct-map address");
    assert!(phys < (HIGHMEM_START_PFN as u64) << 12);
    assert_eq!(
        count_log(&m, "alloc_pages_exact: __GFP_COMP|__GFP_HIGHMEM not allowed; stripped"),
        1,
        "WARN_ON_ONCE: the flags are stripped again, silently"
    );
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_exact(addr.as_ptr(), 3 * 4096) };
    check(&m);
}

#[test]
fn api_split_page_makes_each_subpage_independently_freeable() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let page = m.alloc_pages(GFP_KERNEL, 2).unwrap();
    let base = pfn(&m, page);
    // SAFETY: The test's own block (or not an allocated one: refused); nothing else frees it.
    assert!(unsafe { m.split_page(page, 1) }.is_err(), "wrong order");
    // SAFETY: The test's own block (or not an allocated one: refused); nothing else frees it.
    unsafe { m.split_page(page, 2) }.unwrap();
    for sub in [base + 2, base, base + 3, base + 1] {
        let p = m.pfn_to_page(sub).unwrap();
        assert_eq!(p.refcount(), 1);
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    assert_eq!(m.buddyinfo(), initial);
    // Compound pages cannot be split.
    let comp = m.alloc_pages(GFP_KERNEL | __GFP_COMP, 2).unwrap();
    // SAFETY: The test's own block (or not an allocated one: refused); nothing else frees it.
    assert!(unsafe { m.split_page(comp, 2) }.is_err());
    assert_eq!(count_log(&m, "split_page:"), 2);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(comp, 2) };
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

/// `compound_head`: a tail page of a `__GFP_COMP` block leads to its head; a head, a page of a
/// plain (non-compound) block and a free page lead to themselves.
#[test]
fn compound_head_finds_the_head_of_a_compound_block_only() {
    let m = i386_nopcp(64);
    let comp = m.alloc_pages(GFP_KERNEL | __GFP_COMP, 3).unwrap();
    let plain = m.alloc_pages(GFP_KERNEL, 3).unwrap();
    let (c0, p0) = (pfn(&m, comp), pfn(&m, plain));
    for i in 0..8 {
        let tail = m.pfn_to_page(c0 + i).unwrap();
        assert!(std::ptr::eq(m.pages().compound_head(tail), comp), "tail {i} of the compound block");
        let page = m.pfn_to_page(p0 + i).unwrap();
        assert!(std::ptr::eq(m.pages().compound_head(page), page), "page {i} of the plain block");
    }
    // SAFETY: Ours, unused afterwards.
    unsafe {
        m.free_pages(comp, 3);
        m.free_pages(plain, 3);
    }
    for i in 0..8 {
        let page = m.pfn_to_page(c0 + i).unwrap();
        assert!(std::ptr::eq(m.pages().compound_head(page), page), "free page {i}");
    }
}

/// PA-7 (SEMANTICS §2.4): a blocking request of a realtime task (`SCHED_FIFO`, `SCHED_RR`,
/// `SCHED_DEADLINE`) gets `ALLOC_MIN_RESERVE` in the slow path (`gfp_to_alloc_flags`:
/// `rt_or_dl_task(current) && in_task()`), so it may go down to half the min watermark, as
/// `__GFP_HIGH` does; a non-blocking one keeps its own reserves.
#[test]
fn pa7_a_realtime_task_may_use_half_the_min_watermark() {
    let m = i386_nopcp(64);
    m.set_zone_watermarks(ZoneType::Dma, [1000; 4]).expect("marks in range");
    let nowarn = __GFP_NOWARN | GFP_DMA;
    let floors = std::thread::scope(|s| {
        s.spawn(|| {
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: Sets the calling thread's own policy from a valid parameter block.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
                return None; // Not allowed to run realtime threads here.
            }
            Some([
                dma_floor(&m, GFP_KERNEL | __GFP_NORETRY | nowarn),
                dma_floor(&m, GFP_NOWAIT | GFP_DMA),
                dma_floor(&m, GFP_ATOMIC | nowarn),
            ])
        })
        .join()
        .unwrap()
    });
    let Some(floors) = floors else {
        eprintln!("SCHED_FIFO refused (no CAP_SYS_NICE): skipped");
        return;
    };
    assert_eq!(floors, [500, 1000, 375], "blocking, GFP_NOWAIT, GFP_ATOMIC from a SCHED_FIFO thread");
    // The same thread under SCHED_OTHER: the full min mark.
    assert_eq!(dma_floor(&m, GFP_KERNEL | __GFP_NORETRY | nowarn), 1000);
    check(&m);
}
