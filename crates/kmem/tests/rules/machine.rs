//! The userspace machine (DESIGN.md §3): profiles and zones, HighMem, the direct map, the
//! environment configuration, and memory given back to the host.

use std::collections::HashMap;
use std::ptr::NonNull;

use kmem::gfp::*;
use kmem::zone::ZoneType;
use kmem::{BuildError, Machine, PAGE_SIZE, Page, Profile};

use crate::*;

fn range(m: &Machine, kind: ZoneType) -> (usize, usize) {
    (m.zone(kind).start_pfn(), m.zone(kind).end_pfn())
}

#[test]
fn machine_i386_profile_zones_and_page_array() {
    let m = i386(1024);
    assert_eq!(m.profile(), Profile::I386);
    let pages = 1024 * MIB_PAGES;
    assert_eq!(range(&m, ZoneType::Dma), (0, DMA_END_PFN));
    assert_eq!(range(&m, ZoneType::Normal), (DMA_END_PFN, HIGHMEM_START_PFN));
    assert_eq!(range(&m, ZoneType::HighMem), (HIGHMEM_START_PFN, pages));
    assert!(!m.zone_configured(ZoneType::Dma32));
    assert_eq!(m.memmap().pageblock_order(), 10);
    let meta = expected_meta_pages(pages, 10);
    assert_eq!(m.reserved_pages(), meta);
    // The page array sits at the top of lowmem, so only Normal loses pages.
    assert_eq!(m.zone(ZoneType::Dma).managed(), DMA_END_PFN);
    assert_eq!(m.zone(ZoneType::Normal).managed(), HIGHMEM_START_PFN - DMA_END_PFN - meta);
    assert_eq!(m.zone(ZoneType::HighMem).managed(), 128 * MIB_PAGES);
    assert_eq!(m.total_managed() + meta, pages);
    assert_eq!(m.total_free(), m.total_managed());
    let names: Vec<&str> = m.zones().iter().map(|z| z.name()).collect();
    assert_eq!(names, ["DMA", "DMA32", "Normal", "HighMem", "Movable"]);
    check(&m);
}

#[test]
fn machine_x86_64_profile_zones() {
    let m = builder(Profile::X86_64, 64).build().unwrap();
    assert_eq!(range(&m, ZoneType::Dma), (0, DMA_END_PFN));
    assert_eq!(range(&m, ZoneType::Dma32), (DMA_END_PFN, 64 * MIB_PAGES));
    assert!(!m.zone(ZoneType::Normal).is_populated());
    assert!(!m.zone_configured(ZoneType::HighMem));
    assert_eq!(m.memmap().pageblock_order(), 9);
    // Above 4 GiB there is a Normal zone, which then holds the page array.
    let big = builder(Profile::X86_64, 4096 + 64).build().unwrap();
    let four_g = 4096 * MIB_PAGES;
    assert_eq!(range(&big, ZoneType::Dma32), (DMA_END_PFN, four_g));
    assert_eq!(range(&big, ZoneType::Normal), (four_g, four_g + 64 * MIB_PAGES));
    let meta = expected_meta_pages(four_g + 64 * MIB_PAGES, 9);
    assert_eq!(big.zone(ZoneType::Normal).managed(), 64 * MIB_PAGES - meta);
    assert_eq!(big.zone(ZoneType::Dma32).managed(), four_g - DMA_END_PFN);
    let page = big.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_eq!(zone_of(&big, pfn(&big, page)), ZoneType::Normal, "highest zone first");
    let page32 = big.alloc_pages(GFP_KERNEL | GFP_DMA32, 0).unwrap();
    assert_eq!(zone_of(&big, pfn(&big, page32)), ZoneType::Dma32);
    assert!(big.page_address(page).is_some(), "x86_64 maps everything");
}

#[test]
fn highmem_never_given_to_requests_that_cannot_take_it() {
    let m = i386(1024);
    let high = m.zone(ZoneType::HighMem);
    let high_free = high.free_pages();
    let held = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    assert!(pages_in(&held) > 200 * MIB_PAGES, "most of lowmem");
    for &(p, _) in &held {
        assert!(pfn(&m, p) < HIGHMEM_START_PFN, "GFP_KERNEL got HighMem pfn {:#x}", pfn(&m, p));
        assert!(m.page_address(p).is_some());
    }
    assert_eq!(high.free_pages(), high_free, "HighMem untouched");
    // __get_free_pages strips __GFP_HIGHMEM: with lowmem at its watermarks it fails although
    // HighMem is all free.
    let gfp = GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN;
    assert!(m.get_free_pages(gfp, 0).is_err());
    assert!(m.get_zeroed_page(gfp).is_err());
    assert!(m.alloc_pages_exact(8192, gfp).is_err());
    // A DMA-only request still has ZONE_DMA's lowmem reserve for Normal to use.
    let dma = m.alloc_pages(GFP_DMA | __GFP_NOWARN, 0).expect("DMA below the Normal reserve");
    assert!(pfn(&m, dma) < DMA_END_PFN);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(dma, 0) };
    // GFP_HIGHUSER itself may use HighMem.
    let page = m.alloc_pages(gfp, 0).expect("HighMem page");
    assert!(pfn(&m, page) >= HIGHMEM_START_PFN);
    assert_eq!(m.page_address(page), None, "HighMem is not in the direct map");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    free_all(&m, held);
    m.drain_local_pages();
    assert_eq!(m.total_free(), m.total_managed());
    check(&m);
}

#[test]
fn highmem_gfp_highuser_prefers_highmem_and_get_free_pages_does_not() {
    let m = i386(1024);
    for order in [0, 3, 10] {
        let page = m.alloc_pages(GFP_HIGHUSER, order).unwrap();
        let p = pfn(&m, page);
        assert!(p >= HIGHMEM_START_PFN, "order {order}");
        assert_eq!(m.page_address(page), None);
        assert_eq!(m.pfn_address(p), None);
        assert!(std::ptr::eq(m.pfn_to_page(p).unwrap(), page));
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, order) };
        let addr = m.get_free_pages(GFP_HIGHUSER, order).unwrap();
        let phys = m.virt_to_phys(addr.as_ptr()).unwrap();
        assert!(phys < (HIGHMEM_START_PFN as u64) << 12, "get_free_pages returned phys {phys:#x}");
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages_addr(addr.as_ptr(), order) };
    }
    let zeroed = m.get_zeroed_page(GFP_HIGHUSER).unwrap();
    assert!(m.virt_to_phys(zeroed.as_ptr()).unwrap() < (HIGHMEM_START_PFN as u64) << 12);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_addr(zeroed.as_ptr(), 0) };
    check(&m);
}

#[test]
fn highmem_gfp_zero_zeroes_pages_outside_the_direct_map() {
    let m = i386(1024);
    let base = m.phys().base();
    let page = m.alloc_pages(GFP_HIGHUSER, 0).unwrap();
    let p = pfn(&m, page);
    assert!(p >= HIGHMEM_START_PFN);
    // SAFETY: `p` is an allocated frame of this machine's memfd mapping, owned by the test.
    unsafe { base.as_ptr().add(p * PAGE_SIZE).write_bytes(0xee, PAGE_SIZE) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    let again = m.alloc_pages(GFP_HIGHUSER | __GFP_ZERO, 0).unwrap();
    assert_eq!(pfn(&m, again), p, "per-CPU LIFO gives the dirty frame back");
    // SAFETY: As above; reading initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts(base.as_ptr().add(p * PAGE_SIZE), PAGE_SIZE) };
    assert!(bytes.iter().all(|&b| b == 0));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(again, 0) };
    check(&m);
}

#[test]
fn gfp_dma_pages_lie_below_16_mib() {
    let m = i386(64);
    let normal_free = m.zone(ZoneType::Normal).free_pages();
    let held = grab_all(&m, GFP_DMA | __GFP_NOWARN);
    assert!(pages_in(&held) > DMA_END_PFN * 9 / 10);
    for &(p, o) in &held {
        assert!(pfn(&m, p) + (1 << o) <= DMA_END_PFN, "GFP_DMA block at {:#x}", pfn(&m, p));
        let phys = m.virt_to_phys(m.page_address(p).unwrap().as_ptr()).unwrap();
        assert!(phys + ((PAGE_SIZE as u64) << o) <= 16 << 20);
    }
    m.drain_local_pages();
    assert_eq!(m.zone(ZoneType::Normal).free_pages(), normal_free, "ZONE_NORMAL never used");
    assert!(m.get_free_pages(GFP_KERNEL | GFP_DMA | __GFP_NORETRY | __GFP_NOWARN, 0).is_err());
    free_all(&m, held);
    let addr = m.get_free_pages(GFP_KERNEL | GFP_DMA, 2).unwrap();
    assert!(m.virt_to_phys(addr.as_ptr()).unwrap() < 16 << 20);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_addr(addr.as_ptr(), 2) };
    check(&m);
}

#[test]
fn direct_map_conversions_round_trip() {
    let m = i386(64);
    let page = m.alloc_pages(GFP_KERNEL, 3).unwrap();
    let p = pfn(&m, page);
    let addr = m.page_address(page).unwrap();
    assert_eq!(addr.as_ptr(), m.phys().base().as_ptr().wrapping_add(p * PAGE_SIZE), "direct map = memfd offset");
    assert_eq!(m.virt_to_phys(addr.as_ptr()), Some((p as u64) << 12));
    let inner = addr.as_ptr().wrapping_add(3 * PAGE_SIZE + 7);
    assert_eq!(m.virt_to_phys(inner), Some(((p as u64 + 3) << 12) + 7));
    assert!(std::ptr::eq(m.virt_to_page(inner).unwrap(), m.pfn_to_page(p + 3).unwrap()));
    assert_eq!(m.phys_to_virt(((p as u64 + 3) << 12) + 7).map(NonNull::as_ptr), Some(inner));
    assert!(std::ptr::eq(m.pfn_to_page(p).unwrap(), page));
    assert_eq!(m.page_to_pfn(&Page::default()), None, "not a page of this machine");
    let local = 0u64;
    assert!(m.virt_to_page(std::ptr::from_ref(&local).cast()).is_none());
    assert!(m.pfn_to_page(64 * MIB_PAGES).is_none(), "beyond memory");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 3) };
}

#[test]
fn direct_map_write_read_only_in_allocated_pages() {
    let m = i386(64);
    let addr = m.get_free_pages(GFP_KERNEL, 1).unwrap();
    let data: Vec<u8> = (0..2 * PAGE_SIZE).map(|i| (i * 7) as u8).collect();
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(addr, &data) }.unwrap();
    let mut back = vec![0; data.len()];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(addr, &mut back) }.unwrap();
    assert_eq!(back, data);
    // The same bytes are visible through the physical memory at pfn << 12.
    let phys = m.virt_to_phys(addr.as_ptr()).unwrap() as usize;
    // SAFETY: The two pages are allocated by this test; reading initialised bytes.
    let raw = unsafe { std::slice::from_raw_parts(m.phys().base().as_ptr().add(phys), data.len()) };
    assert_eq!(raw, &data[..]);
    // One byte past the block is a page that is not allocated.
    let mut one = [0u8];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.read_bytes(addr, &mut vec![0; 2 * PAGE_SIZE + 1]) }.is_err());
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_addr(addr.as_ptr(), 1) };
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.read_bytes(addr, &mut one) }.is_err(), "freed pages are not readable through the machine");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.write_bytes(addr, &[1]) }.is_err());
}

fn env(pairs: &[(&str, &str)]) -> Result<kmem::Builder, kmem::env::EnvError> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    kmem::env::apply(Machine::builder(), |k| map.get(k).cloned())
}

#[test]
fn env_bad_values_name_the_variable() {
    for (var, value) in [
        ("KMEM_MEM", "lots"),
        ("KMEM_MEM", "4M"),
        ("KMEM_PROFILE", "sparc"),
        ("KMEM_CPUS", "0"),
        ("KMEM_CPUS", "65"),
        ("KMEM_PCP", "maybe"),
        ("KMEM_KSWAPD", "2"),
        ("KMEM_MIN_FREE_KBYTES", "-5"),
        ("KMEM_WATERMARK_SCALE_FACTOR", "3001"),
        ("KMEM_OOM_TIMEOUT_MS", "soon"),
        ("KMEM_LOG_ECHO", "loud"),
        ("KMEM_FAIL_PAGE_ALLOC", "1,100"),
    ] {
        let err = env(&[(var, value)]).err().unwrap_or_else(|| panic!("{var}={value} accepted"));
        assert_eq!(err.var, var);
        let text = err.to_string();
        assert!(text.starts_with(&format!("invalid {var}={value:?}: expected ")), "{text}");
    }
    let err = env(&[("KMEM_MEM", "lots")]).unwrap_err();
    assert_eq!(err.to_string(), "invalid KMEM_MEM=\"lots\": expected a size like 64M or 1G");
}

#[test]
fn env_good_values_build_the_machine() {
    let b = env(&[
        ("KMEM_PROFILE", "i386"),
        ("KMEM_MEM", "32M"),
        ("KMEM_CPUS", "3"),
        ("KMEM_PCP", "0"),
        ("KMEM_KSWAPD", "0"),
        ("KMEM_MIN_FREE_KBYTES", "512"),
        ("KMEM_WATERMARK_SCALE_FACTOR", "20"),
        ("KMEM_FAIL_PAGE_ALLOC", "1,0,0,1"),
    ])
    .unwrap();
    let m = b.build().unwrap();
    assert_eq!(m.profile(), Profile::I386);
    assert_eq!(m.memmap().end_pfn(), 32 * MIB_PAGES);
    assert_eq!((m.nr_cpus(), m.pcp_enabled(), m.min_free_kbytes(), m.watermark_scale_factor()), (3, false, 512, 20));
    assert!(m.alloc_pages(GFP_KERNEL, 1).is_ok());
}

#[test]
fn builder_errors_are_clear() {
    let err = builder(Profile::I386, 4).build().unwrap_err();
    assert!(matches!(err, BuildError::Setting(_)));
    assert!(err.to_string().starts_with("memory must be at least 8 MiB"), "{err}");
    for cpus in [0, 65] {
        let err = builder(Profile::I386, 32).cpus(cpus).build().unwrap_err();
        assert_eq!(err.to_string(), format!("cpus must be 1..=64, got {cpus}"));
    }
    let err = builder(Profile::I386, 32).watermark_scale_factor(0).build().unwrap_err();
    assert!(err.to_string().contains("watermark_scale_factor"), "{err}");
}

/// The host refusing the vmalloc range is said as that, not as physical memory it could not
/// create (the machine's memory was created fine).
#[test]
fn a_vmalloc_range_the_host_refuses_is_named() {
    let err = builder(Profile::X86_64, 64).vmalloc_bytes(1 << 62).build().unwrap_err();
    assert!(matches!(err, BuildError::Host(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("vmalloc range") && !text.contains("physical memory"), "{text}");
}

/// A vmalloc range too small for one area (a page and its guard page) is refused, naming the
/// setting; it used to become a one-page range on which every vmalloc failed.
#[test]
fn a_vmalloc_range_too_small_for_one_area_is_refused() {
    for bytes in [0, 1, PAGE_SIZE as u64, 2 * PAGE_SIZE as u64 - 1] {
        let err = builder(Profile::X86_64, 64).vmalloc_bytes(bytes).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the vmalloc range must be at least 8192 bytes (one page and its guard page), got {bytes} bytes")
        );
    }
    // The smallest range that fits one area serves it.
    let m = builder(Profile::X86_64, 64).vmalloc_bytes(2 * PAGE_SIZE as u64).build().unwrap();
    let p = m.vmalloc(PAGE_SIZE).expect("one page fits a two-page range");
    // SAFETY: Ours, freed once.
    unsafe { m.vfree(p.as_ptr()) };
}

/// A scale factor far out of the sysctl's range is refused like 0 is (it used to overflow
/// computing the watermarks, a panic), and so is a boost factor above its `int`.
#[test]
fn builder_refuses_huge_watermark_factors() {
    for f in [3001, usize::MAX / 2, usize::MAX] {
        let err = builder(Profile::I386, 32).watermark_scale_factor(f).build().unwrap_err();
        assert!(err.to_string().ends_with("watermark_scale_factor must be 1..=3000"), "{f}: {err}");
    }
    let err = builder(Profile::I386, 32).watermark_boost_factor(usize::MAX).build().unwrap_err();
    assert!(err.to_string().contains("watermark_boost_factor must be 0..=2147483647"), "{err}");
}

/// The largest `min_free_kbytes` whose §2.3 high watermarks, summed over the lowmem zones,
/// stay below those zones' managed pages (by bisection, independent of the library), and the
/// lowmem managed pages.
fn usable_min_free_kbytes(m: &Machine, scale_factor: usize) -> (usize, usize) {
    let lowmem_zones =
        || m.zones().iter().enumerate().filter(|(_, z)| !matches!(z.kind(), ZoneType::HighMem | ZoneType::Movable));
    let lowmem: usize = lowmem_zones().map(|(_, z)| z.managed()).sum();
    let high = |kb: usize| -> usize {
        let marks = expected_wmarks(m, kb, scale_factor);
        lowmem_zones().map(|(i, _)| marks[i][2]).sum()
    };
    let (mut lo, mut hi) = (0usize, i32::MAX as usize + 1);
    assert!(high(lo) < lowmem);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if high(mid) < lowmem { lo = mid } else { hi = mid }
    }
    (lo, lowmem)
}

/// DESIGN §3 (a bad value gives a clear error naming the variable), PA-10/§2.3: a
/// `min_free_kbytes` whose watermarks leave no lowmem to allocate is refused when the machine is
/// built (naming `KMEM_MIN_FREE_KBYTES` when the environment set it), instead of building a
/// machine whose first allocation is an OOM. The largest value accepted leaves a working
/// machine, whatever `watermark_scale_factor` (1..=3000) it is combined with; that factor alone
/// cannot make a machine unusable.
#[test]
fn min_free_kbytes_that_leaves_no_lowmem_is_refused_at_build() {
    for (profile, name) in [(Profile::I386, "i386"), (Profile::X86_64, "x86_64")] {
        for wsf in [10, 3000] {
            let probe = builder(profile, 32).watermark_scale_factor(wsf).build().unwrap();
            assert!(probe.kmalloc(64, GFP_KERNEL).is_ok(), "{name}: scale factor {wsf} alone");
            let (max, lowmem) = usable_min_free_kbytes(&probe, wsf);
            drop(probe);
            let why = format!("more leaves this machine's {lowmem} lowmem pages no room above the high watermark");
            for kb in [i32::MAX as usize, max + 1] {
                let err = builder(profile, 32).watermark_scale_factor(wsf).min_free_kbytes(kb).build().unwrap_err();
                assert!(matches!(err, BuildError::Setting(_)), "{err}");
                assert_eq!(err.to_string(), format!("min_free_kbytes must be at most {max} ({why}), got {kb}"));
                let vars = [
                    ("KMEM_PROFILE", name.to_string()),
                    ("KMEM_MEM", "32M".into()),
                    ("KMEM_MIN_FREE_KBYTES", kb.to_string()),
                    ("KMEM_WATERMARK_SCALE_FACTOR", wsf.to_string()),
                ];
                let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let err = env(&vars).unwrap().cpus(2).kswapd(false).build().unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "invalid KMEM_MIN_FREE_KBYTES=\"{kb}\": expected a number of kilobytes from 0 to {max} ({why})"
                    )
                );
            }
            // The API's own setter takes over from the environment's value.
            let vars = [("KMEM_MEM", "32M"), ("KMEM_MIN_FREE_KBYTES", "2147483647")];
            let b = env(&vars).unwrap().profile(profile).cpus(2).kswapd(false).watermark_scale_factor(wsf);
            let err = b.min_free_kbytes(max + 1).build().unwrap_err();
            assert_eq!(err.to_string(), format!("min_free_kbytes must be at most {max} ({why}), got {}", max + 1));
            let m = builder(profile, 32).watermark_scale_factor(wsf).min_free_kbytes(max).build().unwrap();
            assert_eq!(m.min_free_kbytes(), max);
            let p = m.kmalloc(64, GFP_KERNEL).expect("the largest accepted value leaves memory");
            // SAFETY: The object just allocated, not used afterwards.
            unsafe { m.kfree(p.as_ptr()) };
            let page = m.alloc_pages(GFP_KERNEL, 0).expect("and pages");
            // SAFETY: The page just allocated, not used afterwards.
            unsafe { m.free_pages(page, 0) };
        }
    }
}

/// Allocates `n` max-order blocks and writes to every page of them.
fn touched_blocks(m: &Machine, n: usize) -> Vec<(&Page, u32)> {
    let held: Vec<_> = (0..n).map(|_| (m.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER).unwrap(), MAX_PAGE_ORDER)).collect();
    for &(p, o) in &held {
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(m.page_address(p).unwrap(), &vec![0x5a; PAGE_SIZE << o]) }.unwrap();
    }
    held
}

use kmem::MAX_PAGE_ORDER;

#[test]
fn trim_gives_freed_memory_back_to_the_host() {
    // No kswapd: nothing is released until `trim` is called.
    let m = builder(Profile::X86_64, 64).build().unwrap();
    let r0 = m.resident_bytes();
    let held = touched_blocks(&m, 8); // 32 MiB
    let r1 = m.resident_bytes();
    assert!(r1 >= r0 + (30 << 20), "touching 32 MiB made it resident: {r0} -> {r1}");
    free_all(&m, held);
    let r2 = m.resident_bytes();
    assert!(r2 + (1 << 20) >= r1, "the free path itself never releases memory: {r1} -> {r2}");
    assert!(m.trim() >= 8 << MAX_PAGE_ORDER, "at least the freed blocks' pages");
    let r3 = m.resident_bytes();
    assert!(r3 + (30 << 20) <= r2, "trim released the blocks: {r2} -> {r3}");
    assert!(m.stats().trimmed_pages.load(SEQ) >= 8 << MAX_PAGE_ORDER);
    // Trimmed memory reads back as zero and is usable again.
    let page = m.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER).unwrap();
    let mut buf = vec![1u8; PAGE_SIZE << MAX_PAGE_ORDER];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(m.page_address(page).unwrap(), &mut buf) }.unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    check(&m);
}

/// Memory goes back at the kernel's free-page-reporting granularity (`page_reporting_order`,
/// a pageblock: order 9 on x86_64), not only in whole max-order blocks: the free half of a
/// max-order block whose other half is in use is released.
#[test]
fn trim_releases_free_pageblocks_of_partly_used_blocks() {
    let m = builder(Profile::X86_64, 64).pcp(false).build().unwrap();
    let half = 1usize << (MAX_PAGE_ORDER - 1);
    let [(block, _)] = touched_blocks(&m, 1)[..] else { unreachable!() };
    // SAFETY: The test's own block (or not an allocated one: refused); nothing else frees it.
    unsafe { m.split_page(block, MAX_PAGE_ORDER) }.unwrap();
    let pfn = m.page_to_pfn(block).unwrap();
    let pages: Vec<&Page> = (pfn..pfn + 2 * half).map(|p| m.pfn_to_page(p).unwrap()).collect();
    // The upper half goes back to the buddy lists and merges into one free pageblock.
    for page in &pages[half..] {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    let r1 = m.resident_bytes();
    let released = m.trim();
    let r2 = m.resident_bytes();
    assert!(released >= half, "the free pageblock is released: {released} pages");
    assert!(r2 + ((half * PAGE_SIZE) as u64) <= r1, "its 2 MiB left the memfd: {r1} -> {r2}");
    // The lower half, still allocated, kept its contents.
    let mut buf = vec![0u8; PAGE_SIZE];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(m.page_address(pages[half - 1]).unwrap(), &mut buf) }.unwrap();
    assert!(buf.iter().all(|&b| b == 0x5a), "allocated pages are never released");
    assert_eq!(m.trim(), 0, "a released block is not released again");
    for page in &pages[..half] {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    check(&m);
}

/// Polls `cond` every few milliseconds; fails the test naming `what` after 20 s.
fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn kswapd_releases_memory_that_stays_free() {
    // kswapd ages free max-order blocks: seen free by one scan, released by the next.
    let m = builder(Profile::X86_64, 64).kswapd(true).trim_after(Some(Duration::from_millis(20))).build().unwrap();
    let held = touched_blocks(&m, 8);
    let r1 = m.resident_bytes();
    // While the blocks are allocated, scans run and must not release them.
    let scans = m.stats().trim_scans.load(SEQ);
    poll("two aging scans while the blocks are allocated", || m.stats().trim_scans.load(SEQ) >= scans + 2);
    assert_eq!(m.stats().trimmed_pages.load(SEQ), 0, "nothing free was old enough");
    assert!(m.resident_bytes() + (1 << 20) >= r1, "allocated memory must stay resident");
    free_all(&m, held);
    // The scan bumps its counter after releasing, so wait for both.
    poll("kswapd releases the freed 32 MiB", || {
        m.resident_bytes() + (24 << 20) <= r1 && m.stats().trimmed_pages.load(SEQ) >= 6 << MAX_PAGE_ORDER
    });
    // The released memory is usable and reads as zero.
    let page = m.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER).unwrap();
    let mut buf = vec![1u8; 4096];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(m.page_address(page).unwrap(), &mut buf) }.unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, MAX_PAGE_ORDER) };
}

#[test]
fn trim_after_none_never_releases_on_its_own() {
    let m = builder(Profile::X86_64, 64).kswapd(true).trim_after(None).build().unwrap();
    let held = touched_blocks(&m, 4);
    let r1 = m.resident_bytes();
    free_all(&m, held);
    // kswapd is alive and runs real rounds (woken below the low watermark), yet without a trim
    // period it never scans and never releases.
    let rounds = m.stats().kswapd_rounds.load(SEQ);
    let dip = crate::grab_all(&m, kmem::gfp::GFP_ATOMIC | kmem::gfp::__GFP_NOWARN);
    poll("a kswapd round after dipping below the low watermark", || m.stats().kswapd_rounds.load(SEQ) > rounds);
    free_all(&m, dip);
    assert_eq!(m.stats().trim_scans.load(SEQ), 0);
    assert_eq!(m.stats().trimmed_pages.load(SEQ), 0);
    assert!(m.resident_bytes() + (1 << 20) >= r1);
    assert!(m.trim() >= 4 << MAX_PAGE_ORDER, "on-demand trim still works");
}

#[test]
fn metadata_is_at_most_half_a_percent() {
    for m in [i386(64), i386(1024), builder(Profile::X86_64, 64).build().unwrap()] {
        let pct = m.metadata_percent();
        assert!(pct > 0.0 && pct <= 0.5, "{m:?}: {pct} %");
    }
}

#[test]
fn release_cpu_drains_this_threads_lists() {
    let m = i386(64);
    let initial = m.buddyinfo();
    let pages: Vec<_> = (0..16).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for p in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    assert!(pcp_pages(&m, ZoneType::Normal) > 0);
    m.release_cpu();
    assert_eq!(pcp_pages(&m, ZoneType::Normal), 0);
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

/// `release_cpu` gives the slot up for good: the frees its own drain makes (slabs flushed
/// from the slot's object arrays) go to the zone lists, not to a fresh slot the thread would
/// then keep with pages parked on it.
#[test]
fn release_cpu_takes_no_new_slot_while_it_drains_the_old_one() {
    let m = i386(64);
    let c = m.kmem_cache_create("release512", 512, &kmem::slab::CacheArgs::default(), Default::default()).unwrap();
    let objs: Vec<_> = (0..4000).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).unwrap()).collect();
    for o in objs {
        // SAFETY: Ours, freed once, unused afterwards.
        unsafe { m.kmem_cache_free(c, o.as_ptr()) };
    }
    m.drain_local_pages();
    m.release_cpu();
    let parked: usize = ZoneType::ALL.iter().map(|&z| pcp_pages(&m, z)).sum();
    assert_eq!(parked, 0, "pages parked on per-CPU lists after the only thread gave its slot up");
    check(&m);
    // SAFETY: The cache is empty and unused.
    unsafe { m.kmem_cache_destroy(c) }.expect("empty");
}

#[test]
fn thread_exit_returns_its_per_cpu_pages() {
    let m = i386(64);
    let initial = m.buddyinfo();
    // A plain (not scoped) thread: `join` returns only after its thread-local destructors ran.
    let mc = m.clone();
    std::thread::spawn(move || {
        let pages: Vec<_> = (0..16).map(|_| mc.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
        for p in pages {
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { mc.free_pages(p, 0) };
        }
        assert!(pcp_pages(&mc, ZoneType::Normal) > 0);
    })
    .join()
    .unwrap();
    assert_eq!(pcp_pages(&m, ZoneType::Normal), 0);
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}
