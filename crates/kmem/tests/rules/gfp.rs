//! GFP-1..GFP-7 (SEMANTICS.md §1.6) through a machine: zone selection, reserves, mobility,
//! non-blocking requests, and the scoped NOIO/NOFS API. The pure tables (GFP-1 bit and
//! composite values, `%pGg` printing, the 16-entry `gfp_zone` table of GFP-2) are the unit tests
//! at the end of `kmem-core/src/gfp.rs`; they are not repeated here.

use kmem::context::{memalloc_nofs_save, memalloc_noio_save};
use kmem::gfp::*;
use kmem::zone::{MigrateType, ZoneType};
use kmem::{Gfp, MAX_PAGE_ORDER, Machine, Profile};

use crate::*;

/// The zone the first page of a request with zone modifiers `bits` comes from.
fn zone_of_first_page(m: &Machine, bits: u32) -> ZoneType {
    let gfp = GFP_KERNEL | __GFP_NOWARN | Gfp::from_bits(bits);
    let page = m.alloc_pages(gfp, 0).unwrap_or_else(|_| panic!("{gfp:?}"));
    let zone = zone_of(m, pfn(m, page));
    m.free_pages(page, 0);
    zone
}

#[test]
fn gfp2_valid_modifiers_allocate_from_expected_zone_i386() {
    use ZoneType::*;
    let m = i386(1024);
    // DMA32 is not configured on i386 (OPT_ZONE_DMA32 → Normal); Movable is empty, so
    // MOVABLE|HIGHMEM falls to HighMem just below it.
    #[rustfmt::skip]
    let cases = [
        (0x0, Normal), (0x1, Dma), (0x2, HighMem), (0x4, Normal),
        (0x8, Normal), (0x9, Dma), (0xa, HighMem), (0xc, Normal),
    ];
    for (bits, zone) in cases {
        assert_eq!(zone_of_first_page(&m, bits), zone, "{bits:#x}");
    }
    check(&m);
}

#[test]
fn gfp2_valid_modifiers_allocate_from_expected_zone_x86_64() {
    use ZoneType::*;
    let m = builder(Profile::X86_64, 64).build().unwrap();
    // 64 MiB: ZONE_NORMAL is empty and HighMem is not configured, so everything that is not
    // DMA-only lands in DMA32.
    #[rustfmt::skip]
    let cases = [
        (0x0, Dma32), (0x1, Dma), (0x2, Dma32), (0x4, Dma32),
        (0x8, Dma32), (0x9, Dma), (0xa, Dma32), (0xc, Dma32),
    ];
    for (bits, zone) in cases {
        assert_eq!(zone_of_first_page(&m, bits), zone, "{bits:#x}");
    }
    check(&m);
}

#[test]
fn gfp2_bad_zone_combinations_fail_with_report() {
    let m = i386_nopcp(64);
    let before = m.buddyinfo();
    for bits in [0x3u32, 0x5, 0x6, 0x7, 0xb, 0xd, 0xe, 0xf] {
        let gfp = GFP_KERNEL | Gfp::from_bits(bits);
        m.log().clear();
        let (result, line) = (m.alloc_pages(gfp, 0), line!());
        assert!(result.is_err(), "{gfp:?} must be rejected");
        let lines = log_lines(&m);
        let report = lines.iter().find(|l| l.starts_with("BUG: invalid zone modifiers")).expect("a report");
        assert!(report.starts_with(&format!("BUG: invalid zone modifiers {bits:#x} (")), "{report}");
        assert!(report.ends_with(&format!("may be set; mode:{gfp:?}")), "{report}");
        assert!(lines.iter().any(|l| l.contains(&format!("at {}:{line}", file!()))), "{lines:?}");
    }
    // The exact text for __GFP_DMA|__GFP_HIGHMEM.
    m.log().clear();
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_DMA | __GFP_HIGHMEM, 0).is_err());
    assert_eq!(
        log_lines(&m)[0],
        "BUG: invalid zone modifiers 0x3 (__GFP_DMA|__GFP_HIGHMEM) in gfp_zone(): at most one of __GFP_DMA, \
         __GFP_HIGHMEM, __GFP_DMA32 may be set; mode:0xcc3(GFP_KERNEL|GFP_DMA|__GFP_HIGHMEM)"
    );
    assert!(m.get_free_pages(GFP_KERNEL | __GFP_DMA | __GFP_DMA32, 0).is_err());
    assert_eq!(m.buddyinfo(), before, "a rejected request takes nothing");
    check(&m);
}

#[test]
fn gfp3_nomemalloc_overrides_memalloc() {
    let m = i386_nopcp(64);
    m.set_zone_watermarks(ZoneType::Dma, [1000; 4]);
    let kernel = GFP_KERNEL | GFP_DMA | __GFP_NORETRY | __GFP_NOWARN;
    let atomic = GFP_ATOMIC | GFP_DMA | __GFP_NOWARN;
    assert_eq!(crate::pages::dma_floor(&m, kernel | __GFP_MEMALLOC), 0, "MEMALLOC ignores watermarks");
    assert_eq!(crate::pages::dma_floor(&m, kernel | __GFP_MEMALLOC | __GFP_NOMEMALLOC), 1000);
    assert_eq!(crate::pages::dma_floor(&m, atomic | __GFP_MEMALLOC), 0);
    // NOMEMALLOC also takes the non-blocking discount away: only __GFP_HIGH's half remains.
    assert_eq!(crate::pages::dma_floor(&m, atomic | __GFP_MEMALLOC | __GFP_NOMEMALLOC), 500);
    check(&m);
}

#[test]
fn gfp4_migratetype_mapping_and_claimed_pageblocks() {
    assert_eq!(GFP_KERNEL.migratetype(), MigrateType::Unmovable);
    assert_eq!((GFP_KERNEL | __GFP_MOVABLE).migratetype(), MigrateType::Movable);
    assert_eq!(GFP_HIGHUSER_MOVABLE.migratetype(), MigrateType::Movable);
    assert_eq!((GFP_KERNEL | __GFP_RECLAIMABLE).migratetype(), MigrateType::Reclaimable);
    // Every pageblock starts Movable; a max-order request of each type ends up in a pageblock
    // of its own type.
    let m = i386_nopcp(64);
    for (gfp, mt) in [
        (GFP_KERNEL, MigrateType::Unmovable),
        (GFP_KERNEL | __GFP_RECLAIMABLE, MigrateType::Reclaimable),
        (GFP_KERNEL | __GFP_MOVABLE, MigrateType::Movable),
    ] {
        let page = m.alloc_pages(gfp, MAX_PAGE_ORDER).unwrap();
        assert_eq!(m.memmap().pageblock_mt(pfn(&m, page)), mt, "{gfp:?}");
    }
    check(&m);
}

#[test]
fn gfp5_atomic_and_nowait_never_reclaim_even_when_reclaim_would_help() {
    assert!(!GFP_ATOMIC.allow_blocking() && !GFP_NOWAIT.allow_blocking());
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    // A shrinker that frees a whole max-order block as soon as it is asked.
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let reg = register(&m, TestShrinker::new(&m, vec![block], 1, false));
    let (stalls, sleeps) = (m.stats().allocstall.load(SEQ), m.stats().sleeps.load(SEQ));
    for gfp in [GFP_ATOMIC | __GFP_NOWARN, GFP_NOWAIT, __GFP_KSWAPD_RECLAIM | __GFP_NOWARN] {
        assert!(m.alloc_pages(gfp, 0).is_err(), "{gfp:?}");
        assert!(m.alloc_pages(gfp, 2).is_err(), "{gfp:?}");
    }
    assert_eq!(reg.shrinker.calls(), 0, "non-blocking requests never run reclaim");
    assert_eq!(m.stats().allocstall.load(SEQ), stalls);
    assert_eq!(m.stats().sleeps.load(SEQ), sleeps);
    // The same request with direct reclaim allowed gets the block the shrinker frees.
    let page = m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0).expect("reclaim frees a block");
    assert_eq!(reg.shrinker.calls(), 1);
    m.free_pages(page, 0);
    drop(reg);
    free_all(&m, held);
    check(&m);
}

#[test]
fn gfp6_slab_bug_mask_value() {
    // The stripping itself (`kmalloc_fix_flags`) belongs to the slab layer, which this
    // workspace does not have yet; the mask it uses is pinned here.
    assert_eq!(GFP_SLAB_BUG_MASK.bits(), 0xff00_0006);
    assert!(GFP_SLAB_BUG_MASK.contains(__GFP_DMA32 | __GFP_HIGHMEM));
    assert!(!GFP_SLAB_BUG_MASK.intersects(GFP_KERNEL | __GFP_DMA | __GFP_ZERO));
}

/// Makes one failing request through each allocating API on an exhausted machine and returns
/// the gfp reclaim saw for each.
fn gfps_seen_by_reclaim(m: &Machine, reg: &Registered) -> Vec<Gfp> {
    let start = reg.shrinker.gfps().len();
    let gfp = GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN;
    assert!(m.alloc_pages(gfp, 0).is_err());
    assert!(m.get_free_pages(gfp, 1).is_err());
    assert!(m.get_zeroed_page(gfp).is_err());
    assert!(m.alloc_pages_exact(3 * 4096, gfp).is_err());
    let mut slots = [None, None, None];
    assert_eq!(m.alloc_pages_bulk(gfp, &mut slots), 0);
    reg.shrinker.gfps()[start..].to_vec()
}

#[test]
fn gfp7_noio_scope_applies_to_every_allocation() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let reg = register(&m, TestShrinker::new(&m, Vec::new(), 0, false));
    let outside = gfps_seen_by_reclaim(&m, &reg);
    assert_eq!(outside.len(), 5, "every API reaches reclaim");
    assert!(outside.iter().all(|g| g.contains(__GFP_IO | __GFP_FS)), "{outside:?}");
    {
        let _noio = memalloc_noio_save();
        let inside = gfps_seen_by_reclaim(&m, &reg);
        assert_eq!(inside.len(), 5);
        assert!(inside.iter().all(|g| !g.intersects(__GFP_IO | __GFP_FS)), "{inside:?}");
        assert_eq!(inside[0], GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
        // A nested NOFS scope does not give IO back: NOIO wins.
        let _nofs = memalloc_nofs_save();
        let nested = gfps_seen_by_reclaim(&m, &reg);
        assert!(nested.iter().all(|g| !g.intersects(__GFP_IO | __GFP_FS)), "{nested:?}");
    }
    let after = gfps_seen_by_reclaim(&m, &reg);
    assert!(after.iter().all(|g| g.contains(__GFP_IO | __GFP_FS)), "scope restored: {after:?}");
    drop(reg);
    free_all(&m, held);
    check(&m);
}

#[test]
fn gfp7_nofs_scope_clears_fs_only() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let reg = register(&m, TestShrinker::new(&m, Vec::new(), 0, false));
    {
        let _nofs = memalloc_nofs_save();
        let inside = gfps_seen_by_reclaim(&m, &reg);
        assert_eq!(inside.len(), 5);
        assert!(inside.iter().all(|g| g.contains(__GFP_IO) && !g.contains(__GFP_FS)), "{inside:?}");
        assert_eq!(inside[0], GFP_NOFS | __GFP_NORETRY | __GFP_NOWARN);
    }
    drop(reg);
    free_all(&m, held);
    check(&m);
}

#[test]
fn gfp7_scope_shows_in_warn_alloc_mode() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    {
        let _nofs = memalloc_nofs_save();
        assert!(m.alloc_pages(GFP_KERNEL | __GFP_NORETRY, 0).is_err());
    }
    let lines = log_lines(&m);
    let report = lines.iter().find(|l| l.contains("page allocation failure")).expect("warn_alloc");
    assert!(
        report.ends_with(": page allocation failure: order:0, mode:0x10c40(GFP_NOFS|__GFP_NORETRY), nodemask=(null)"),
        "{report}"
    );
    free_all(&m, held);
    check(&m);
}
