//! GFP-1..GFP-7 (SEMANTICS.md §1.6) through a machine: zone selection, reserves, mobility,
//! non-blocking requests, and the scoped NOIO/NOFS API. The pure tables (GFP-1 bit and
//! composite values, `%pGg` printing, the 16-entry `gfp_zone` table of GFP-2) are the unit tests
//! at the end of `kmem-core/src/gfp.rs`; they are not repeated here.

use kmem::context::{memalloc_nofs_save, memalloc_noio_save};
use kmem::gfp::*;
use kmem::slab::CacheArgs;
use kmem::slab::flags::SlabFlags;
use kmem::zone::{MigrateType, ZoneType};
use kmem::{Gfp, MAX_PAGE_ORDER, Machine, PAGE_SIZE, Profile};

use crate::*;

/// The zone the first page of a request with zone modifiers `bits` comes from.
fn zone_of_first_page(m: &Machine, bits: u32) -> ZoneType {
    let gfp = GFP_KERNEL | __GFP_NOWARN | Gfp::from_bits(bits);
    let page = m.alloc_pages(gfp, 0).unwrap_or_else(|_| panic!("{gfp:?}"));
    let zone = zone_of(m, pfn(m, page));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
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
    m.set_zone_watermarks(ZoneType::Dma, [1000; 4]).expect("marks in range");
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
    let (stalls, sleeps) = (m.nr_allocstall(), m.stats().sleeps.load(SEQ));
    for gfp in [GFP_ATOMIC | __GFP_NOWARN, GFP_NOWAIT, __GFP_KSWAPD_RECLAIM | __GFP_NOWARN] {
        assert!(m.alloc_pages(gfp, 0).is_err(), "{gfp:?}");
        assert!(m.alloc_pages(gfp, 2).is_err(), "{gfp:?}");
    }
    assert_eq!(reg.shrinker.calls(), 0, "non-blocking requests never run reclaim");
    assert_eq!(m.nr_allocstall(), stalls);
    assert_eq!(m.stats().sleeps.load(SEQ), sleeps);
    // The same request with direct reclaim allowed gets the block the shrinker frees.
    let page = m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0).expect("reclaim frees a block");
    assert_eq!(reg.shrinker.calls(), 1);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    drop(reg);
    free_all(&m, held);
    check(&m);
}

/// The `kmalloc_fix_flags` reports in `m`'s log (GFP-6), each with the lines that follow it
/// up to the end of its stack dump.
fn fix_flags_reports(m: &Machine) -> Vec<(String, Vec<String>)> {
    let lines = log_lines(m);
    let dump = |i: usize| {
        let rest = &lines[i + 1..];
        let end = rest.iter().position(|l| l == " </TASK>").map_or(rest.len(), |e| e + 1);
        rest[..end].to_vec()
    };
    lines.iter().enumerate().filter(|(_, l)| l.contains("Unexpected gfp")).map(|(i, l)| (l.clone(), dump(i))).collect()
}

/// Asserts that `m` logged exactly one GFP-6 report, stripping `invalid` and leaving `fixed`
/// (hex and `%pGg` names), followed by the stack dump naming the caller in this file.
fn assert_one_fix_report(m: &Machine, invalid: &str, fixed: &str) {
    let reports = fix_flags_reports(m);
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let (report, trace) = &reports[0];
    assert_eq!(report, &format!("Unexpected gfp: {invalid}. Fixing up to gfp: {fixed}. Fix your code!"));
    assert!(trace[0].starts_with("CPU: ") && trace[1] == "Call Trace:", "stack dump after the report: {trace:?}");
    assert!(trace[2..].iter().any(|l| l.trim_start().starts_with(file!())), "the caller is named: {trace:?}");
}

/// A bit above `__GFP_BITS_MASK` (bit 27; the defined bits end at bit 23).
const UNKNOWN_BIT: Gfp = Gfp::from_bits(0x800_0000);
/// Another one (bit 30).
const UNKNOWN_BIT_30: Gfp = Gfp::from_bits(0x4000_0000);

#[test]
fn gfp6_slab_bug_mask_is_dma32_highmem_and_unknown_bits() {
    assert_eq!(GFP_SLAB_BUG_MASK.bits(), 0xff00_0006);
    assert!(GFP_SLAB_BUG_MASK.contains(__GFP_DMA32 | __GFP_HIGHMEM | UNKNOWN_BIT | UNKNOWN_BIT_30));
    assert!(!GFP_SLAB_BUG_MASK.intersects(GFP_KERNEL | __GFP_DMA | __GFP_ZERO));
}

#[test]
fn gfp6_kmalloc_with_unknown_bit_is_reported_fixed_and_served() {
    let m = x86_64_nopcp(64);
    // kmalloc-64 has no slab yet: the request makes one, where the kernel checks the mask.
    let p = m.kmalloc(64, GFP_KERNEL | UNKNOWN_BIT).expect("allocation proceeds with the fixed mask");
    assert_one_fix_report(&m, "0x8000000 (0x8000000)", "0xcc0 (GFP_KERNEL)");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(p.as_ptr()) }, 64);
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &[0x5a; 64]) }.expect("usable");
    let mut back = [0; 64];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(p, &mut back) }.expect("readable");
    assert_eq!(back, [0x5a; 64]);
    // The check sits on the slow path only: an object from the slab already there is handed
    // out without looking at the mask again, as in the kernel.
    let q = m.kmalloc(64, GFP_KERNEL | UNKNOWN_BIT).expect("from the same slab");
    assert_eq!(fix_flags_reports(&m).len(), 1);
    // SAFETY: Both are ours and unused afterwards.
    unsafe {
        m.kfree(p.as_ptr());
        m.kfree(q.as_ptr());
    }
    check(&m);
}

#[test]
fn gfp6_kmem_cache_alloc_with_unknown_bit_is_reported_fixed_and_served() {
    let m = x86_64_nopcp(64);
    let c = m.kmem_cache_create("gfp6", 100, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    let o = m.kmem_cache_alloc(c, GFP_KERNEL | __GFP_ZERO | UNKNOWN_BIT_30).expect("allocation proceeds");
    // `new_slab` fixes the caller's whole mask, `__GFP_ZERO` included (it is dropped only
    // after, with the other bits a slab page does not take).
    assert_one_fix_report(&m, "0x40000000 (0x40000000)", "0xdc0 (GFP_KERNEL|__GFP_ZERO)");
    let mut bytes = [0xff; 100];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(o, &mut bytes) }.expect("readable");
    assert_eq!(bytes, [0; 100], "__GFP_ZERO still applies to the object");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(o, &[0xa5; 100]) }.expect("usable");
    // SAFETY: Ours, unused afterwards; the cache is empty and unused when destroyed.
    unsafe {
        m.kmem_cache_free(c, o.as_ptr());
        m.kmem_cache_destroy(c).expect("destroy");
    }
    check(&m);
}

#[test]
fn gfp6_large_kmalloc_with_highmem_is_reported_and_served_from_lowmem() {
    // i386 with 1 GiB: HighMem exists, so a request that kept __GFP_HIGHMEM would get pages
    // without a kernel address.
    let m = i386(1024);
    let p = m.kmalloc(4 * PAGE_SIZE, GFP_KERNEL | __GFP_HIGHMEM).expect("large kmalloc proceeds");
    assert_one_fix_report(&m, "0x2 (__GFP_HIGHMEM)", "0xcc0 (GFP_KERNEL)");
    assert!(m.virt_to_phys(p.as_ptr()).expect("direct map") < (HIGHMEM_START_PFN * PAGE_SIZE) as u64, "lowmem");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(p.as_ptr()) }, 4 * PAGE_SIZE);
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &vec![0x3c; 4 * PAGE_SIZE]) }.expect("usable");
    // SAFETY: Ours, unused afterwards.
    unsafe { m.kfree(p.as_ptr()) };
    check(&m);
}

#[test]
fn gfp6_large_kmalloc_with_unknown_bit_is_reported_and_keeps_the_rest() {
    let m = x86_64_nopcp(64);
    let size = 3 * PAGE_SIZE + 1;
    let p = m.kmalloc(size, GFP_KERNEL | __GFP_ZERO | UNKNOWN_BIT).expect("large kmalloc proceeds");
    assert_one_fix_report(&m, "0x8000000 (0x8000000)", "0xdc0 (GFP_KERNEL|__GFP_ZERO)");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(p.as_ptr()) }, 4 * PAGE_SIZE);
    let mut bytes = vec![0xff; 4 * PAGE_SIZE];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(p, &mut bytes) }.expect("readable");
    assert!(bytes.iter().all(|&b| b == 0), "the fixed mask still has __GFP_ZERO");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &vec![0x77; size]) }.expect("usable");
    // SAFETY: Ours, unused afterwards.
    unsafe { m.kfree(p.as_ptr()) };
    check(&m);
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
        report.ends_with(
            ": page allocation failure: order:0, mode:0x10c40(GFP_NOFS|__GFP_NORETRY), nodemask=(null),cpuset=/,mems_allowed=0"
        ),
        "{report}"
    );
    free_all(&m, held);
    check(&m);
}

/// §2.8 step 2, PA-15 (from the GFP audit): `__alloc_frozen_pages_noprof` starts with
/// `gfp &= gfp_allowed_mask` (`__GFP_BITS_MASK` after boot), so bits above it reach neither
/// reclaim nor `warn_alloc`'s `mode:` line, whichever page API the request comes through.
#[test]
fn pa15_page_alloc_masks_unknown_bits_before_reclaim_and_the_report() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let reg = register(&m, TestShrinker::new(&m, Vec::new(), 0, false));
    m.log().clear();
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | UNKNOWN_BIT, 0).is_err());
    let lines = log_lines(&m);
    let report = lines.iter().find(|l| l.contains("page allocation failure")).expect("warn_alloc");
    assert!(report.contains("mode:0x10cc0(GFP_KERNEL|__GFP_NORETRY),"), "{report}");
    let start = reg.shrinker.gfps().len();
    let gfp = GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN | UNKNOWN_BIT | UNKNOWN_BIT_30;
    assert!(m.alloc_pages(gfp, 0).is_err());
    assert!(m.get_free_pages(gfp, 1).is_err());
    assert!(m.alloc_pages_exact(3 * 4096, gfp).is_err());
    let mut slots = [None, None, None];
    assert_eq!(m.alloc_pages_bulk(gfp, &mut slots), 0);
    let seen = reg.shrinker.gfps()[start..].to_vec();
    assert_eq!(seen.len(), 4, "every API reaches reclaim");
    assert!(seen.iter().all(|&g| g == GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN), "{seen:?}");
    drop(reg);
    free_all(&m, held);
    check(&m);
}
