//! The Mem-Info block of `warn_alloc` and the OOM report (`__show_mem` / `show_free_areas`,
//! mm/show_mem.c, v6.18; PA-15): the slab counts, the per-node line, the zones up to the
//! request's highest zone, and the trailing hugetlb, page cache and hwpoison lines.

use std::collections::HashMap;

use kmem::gfp::*;
use kmem::slab::CacheArgs;
use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_RECLAIM_ACCOUNT};
use kmem::zone::ZoneType;
use kmem::{Machine, Profile};

use crate::*;

/// `/proc/meminfo` as label → kB.
fn meminfo_kb(m: &Machine) -> HashMap<String, usize> {
    m.meminfo()
        .lines()
        .filter_map(|l| {
            let (label, rest) = l.split_once(':')?;
            Some((label.to_owned(), rest.trim().trim_end_matches(" kB").parse().ok()?))
        })
        .collect()
}

/// The lines of the one Mem-Info block in the log: from `Mem-Info:` to `... pages hwpoisoned`
/// (or, before it existed, `... pages reserved`).
fn mem_info(m: &Machine) -> Vec<String> {
    let lines = log_lines(m);
    let at = lines.iter().position(|l| l == "Mem-Info:").unwrap_or_else(|| panic!("no Mem-Info: {lines:#?}"));
    assert_eq!(lines.iter().filter(|l| *l == "Mem-Info:").count(), 1, "one report: {lines:#?}");
    let end = lines[at..].iter().position(|l| l.ends_with(" pages hwpoisoned")).map_or_else(
        || at + lines[at..].iter().position(|l| l.ends_with(" pages reserved")).expect("pages reserved"),
        |e| at + e,
    );
    lines[at..=end].to_vec()
}

/// `show_free_areas`' global line ` slab_reclaimable:%lu slab_unreclaimable:%lu` prints the
/// slab pages `/proc/meminfo` counts as `SReclaimable` and `SUnreclaim` (in pages, not kB):
/// `global_node_page_state_pages(NR_SLAB_RECLAIMABLE_B)` / `..._UNRECLAIMABLE_B`.
#[test]
fn pa15_show_mem_prints_the_slab_pages_meminfo_counts() {
    let m = i386_nopcp(64);
    let rec =
        m.kmem_cache_create("sm_reclaim", 1000, &CacheArgs::default(), SLAB_NO_MERGE | SLAB_RECLAIM_ACCOUNT).unwrap();
    let objs: Vec<_> = (0..20).map(|_| m.kmem_cache_alloc(rec, GFP_KERNEL).unwrap()).collect();
    let held = exhaust(&m);
    let info = meminfo_kb(&m);
    let (r, u) = (info["SReclaimable"] / 4, info["SUnreclaim"] / 4);
    assert!(r > 0 && u > 0, "both kinds present: {info:?}");
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC, 0).is_err());
    let block = mem_info(&m);
    assert_eq!(block[4], format!(" slab_reclaimable:{r} slab_unreclaimable:{u}"), "{block:#?}");
    free_all(&m, held);
    for o in objs {
        // SAFETY: The test's own objects, freed once.
        unsafe { m.kmem_cache_free(rec, o.as_ptr()) };
    }
    // SAFETY: Empty now, not used again.
    unsafe { m.kmem_cache_destroy(rec) }.unwrap();
    check(&m);
}

/// The per-node line between ` free:… free_pcp:… free_cma:…` and the first zone line, with the
/// fields of v6.18 without `CONFIG_TRANSPARENT_HUGEPAGE` (kmem's meminfo has no `AnonHugePages`)
/// or `CONFIG_SHADOW_CALL_STACK`: no LRU, file, stack or page-table pages, kswapd never gives
/// up (`all_unreclaimable? no`), no balloon.
#[test]
fn pa15_show_mem_prints_the_per_node_line() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC, 0).is_err());
    let block = mem_info(&m);
    assert!(block[8].starts_with(" free:") && block[8].ends_with(" free_cma:0"), "{block:#?}");
    assert_eq!(
        block[9],
        "Node 0 active_anon:0kB inactive_anon:0kB active_file:0kB inactive_file:0kB unevictable:0kB \
         isolated(anon):0kB isolated(file):0kB mapped:0kB dirty:0kB writeback:0kB shmem:0kB \
         kernel_stack:0kB pagetables:0kB sec_pagetables:0kB all_unreclaimable? no Balloon:0kB",
        "{block:#?}"
    );
    assert!(block[10].starts_with("Node 0 DMA free:"), "{block:#?}");
    free_all(&m, held);
    check(&m);
}

/// `__show_mem(filter, nodemask, gfp_zone(gfp))`: the zone lines, their `lowmem_reserve[]:`
/// lines, the free-area lines and `free_pcp` cover only the zones up to the request's highest
/// zone; `pages RAM` and the rest still count every zone.
#[test]
fn pa15_show_mem_covers_zones_up_to_the_requests_highest_zone() {
    let m = builder(Profile::I386, 1024).build().expect("i386 with HighMem");
    let held = exhaust(&m);
    // Order-0 HighMem pages on the per-CPU lists (after `exhaust`, whose reclaim drains them).
    let high: Vec<_> = (0..8).map(|_| m.alloc_pages(GFP_HIGHUSER, 0).unwrap()).collect();
    for p in high {
        // SAFETY: The test's own page, freed once.
        unsafe { m.free_pages(p, 0) };
    }
    assert!(pcp_pages(&m, ZoneType::HighMem) > 0, "HighMem pages on per-CPU lists");
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC, 10).is_err());
    let block = mem_info(&m);
    let lowmem_pcp = pcp_pages(&m, ZoneType::Dma) + pcp_pages(&m, ZoneType::Normal);
    let zones: Vec<&String> = block.iter().filter(|l| l.starts_with("Node 0 ") && l.contains(" free:")).collect();
    assert_eq!(zones.len(), 2, "DMA and Normal only: {block:#?}");
    assert!(zones[0].starts_with("Node 0 DMA free:") && zones[1].starts_with("Node 0 Normal free:"), "{block:#?}");
    assert_eq!(block.iter().filter(|l| l.starts_with("lowmem_reserve[]:")).count(), 2, "{block:#?}");
    assert!(!block.iter().any(|l| l.starts_with("Node 0 HighMem")), "{block:#?}");
    assert!(block.iter().any(|l| l.starts_with("Node 0 Normal: ")), "{block:#?}");
    assert!(block[8].contains(&format!(" free_pcp:{lowmem_pcp} ")), "lowmem per-CPU pages only: {block:#?}");
    free_all(&m, held);
    check(&m);
}

/// After the free-area lines: `hugetlb_show_meminfo_node` (one hstate, the `Hugepagesize` of
/// meminfo: 4 MiB on non-PAE i386), `%ld total pagecache pages`, then `__show_mem`'s RAM lines
/// and `%lu pages hwpoisoned` (meminfo prints `HardwareCorrupted`, so `CONFIG_MEMORY_FAILURE`).
#[test]
fn pa15_show_mem_ends_with_hugetlb_pagecache_and_hwpoison_lines() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC, 0).is_err());
    let block = mem_info(&m);
    let n = block.len();
    let ram = block.iter().position(|l| l.ends_with(" pages RAM")).expect("pages RAM");
    assert!(block[ram - 3].starts_with("Node 0 Normal: ") && block[ram - 3].ends_with("kB"), "{block:#?}");
    assert_eq!(
        block[ram - 2],
        "Node 0 hugepages_total=0 hugepages_free=0 hugepages_surp=0 hugepages_size=4096kB",
        "{block:#?}"
    );
    assert_eq!(block[ram - 1], "0 total pagecache pages", "{block:#?}");
    assert!(block[ram + 1].ends_with(" pages HighMem/MovableOnly") && block[ram + 2].ends_with(" pages reserved"));
    assert_eq!(ram + 4, n, "{block:#?}");
    assert_eq!(block[n - 1], "0 pages hwpoisoned", "{block:#?}");
    free_all(&m, held);
    check(&m);
}
