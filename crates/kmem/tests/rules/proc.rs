//! PROC-1..PROC-4 (SEMANTICS.md §7): `/proc/buddyinfo`, `/proc/zoneinfo`, `/proc/meminfo` and
//! `/proc/pagetypeinfo`, byte-exact to the kernel's format strings.

use std::collections::HashMap;

use kmem::gfp::*;
use kmem::proc::MeminfoExtra;
use kmem::zone::{MigrateType, ZoneType};
use kmem::{Machine, Profile};

use crate::*;

/// The kernel's `"Node %d, zone %8s "` + `"%6lu "` per order + `"\n"`.
fn buddyinfo_line(name: &str, counts: &[usize]) -> String {
    let mut line = format!("Node 0, zone {name:>8} ");
    for c in counts {
        line += &format!("{c:>6} ");
    }
    line + "\n"
}

#[test]
fn proc1_buddyinfo_byte_exact_on_a_fresh_i386_machine() {
    let m = i386_nopcp(64);
    let pages = 64 * MIB_PAGES;
    let meta = expected_meta_pages(pages, 10);
    assert_eq!(m.reserved_pages(), meta);
    let normal_end = pages - meta; // The page array is carved from the top of lowmem.
    let expected = buddyinfo_line("DMA", &expected_blocks(0, DMA_END_PFN))
        + &buddyinfo_line("Normal", &expected_blocks(DMA_END_PFN, normal_end));
    assert_eq!(m.buddyinfo(), expected);
    assert!(expected.starts_with(
        "Node 0, zone      DMA      0      0      0      0      0      0      0      0      0      0      4 \n"
    ));
}

#[test]
fn proc1_buddyinfo_byte_exact_on_x86_64_and_tracks_free_blocks() {
    let m = x86_64_nopcp(32);
    let pages = 32 * MIB_PAGES;
    let dma32_end = pages - expected_meta_pages(pages, 9);
    let initial = buddyinfo_line("DMA", &expected_blocks(0, DMA_END_PFN))
        + &buddyinfo_line("DMA32", &expected_blocks(DMA_END_PFN, dma32_end));
    assert_eq!(m.buddyinfo(), initial, "populated zones only (Normal is empty)");
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let dma32 = m.zone(ZoneType::Dma32).free_blocks_per_order();
    assert_eq!(
        m.buddyinfo(),
        buddyinfo_line("DMA", &expected_blocks(0, DMA_END_PFN)) + &buddyinfo_line("DMA32", &dma32)
    );
    assert_ne!(m.buddyinfo(), initial);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    assert_eq!(m.buddyinfo(), initial);
}

#[test]
fn proc1_pages_on_per_cpu_lists_are_not_counted() {
    let m = i386(64);
    let pages: Vec<_> = (0..8).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let before = m.buddyinfo();
    for p in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    assert_eq!(m.buddyinfo(), before);
    m.drain_local_pages();
    assert_ne!(m.buddyinfo(), before);
}

/// The zoneinfo text from a zone's header to its `protection:` line, as the kernel prints it.
fn zoneinfo_wmark_block(m: &Machine, kind: ZoneType) -> String {
    let z = m.zone(kind);
    let marks = expected_wmarks(m, expected_min_free_kbytes(m), 10)[kind as usize];
    let reserve = expected_reserve(m)[kind as usize];
    let protection: Vec<String> =
        ZoneType::ALL.iter().filter(|&&k| m.zone_configured(k)).map(|&k| reserve[k as usize].to_string()).collect();
    format!(
        "\n  pages free     {}\n        boost    0\n        min      {}\n        low      {}\n        high     {}\n        promo    {}\n        spanned  {}\n        present  {}\n        managed  {}\n        cma      0\n        protection: ({})",
        z.free_pages(),
        marks[0],
        marks[1],
        marks[2],
        marks[3],
        z.spanned(),
        z.present(),
        z.managed(),
        protection.join(", ")
    )
}

/// Splits zoneinfo into (zone name, block text).
fn zoneinfo_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in text.split("Node 0, zone ").skip(1) {
        let name = part[..8].trim().to_string();
        out.push((name, part[8..].to_string()));
    }
    out
}

#[test]
fn proc2_zoneinfo_watermarks_and_protection_i386() {
    let m = i386_nopcp(1024);
    let text = m.zoneinfo();
    assert!(text.starts_with("Node 0, zone      DMA\n  per-node stats"), "{text}");
    assert_eq!(text.matches("per-node stats").count(), 1, "only in the first populated zone");
    let blocks = zoneinfo_blocks(&text);
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["DMA", "Normal", "HighMem", "Movable"], "every configured zone");
    for (name, block) in &blocks {
        let kind = ZoneType::ALL.into_iter().find(|k| k.name() == name).unwrap();
        let expected = zoneinfo_wmark_block(&m, kind);
        assert!(block.contains(&expected), "zone {name}: expected\n{expected}\nin\n{block}");
        assert!(
            block.ends_with(&format!("\n  start_pfn:           {}\n", m.zone(kind).start_pfn()))
                || kind == ZoneType::Movable
        );
    }
    // The example numbers: Normal's protection for HighMem is HighMem/32, DMA's is (Normal+HighMem)/256.
    let (n, h) = (m.zone(ZoneType::Normal).managed(), m.zone(ZoneType::HighMem).managed());
    assert!(blocks[1].1.contains(&format!("protection: (0, 0, {}, {})", h / 32, h / 32)));
    assert!(blocks[0].1.contains(&format!("protection: (0, {}, {}, {})", n / 256, (n + h) / 256, (n + h) / 256)));
}

#[test]
fn proc2_zoneinfo_unpopulated_zone_ends_after_protection() {
    let m = i386_nopcp(64);
    let text = m.zoneinfo();
    let blocks = zoneinfo_blocks(&text);
    let (name, block) = &blocks[2];
    assert_eq!(name, "HighMem");
    assert_eq!(*block, zoneinfo_wmark_block(&m, ZoneType::HighMem) + "\n", "nothing after protection");
    assert!(text.contains("Node 0, zone  HighMem\n  pages free     0\n"));
    // The populated ones go on with stats and pagesets.
    assert!(blocks[1].1.contains("\n      nr_free_pages "));
    assert!(blocks[1].1.contains("\n  pagesets\n    cpu: 0\n              count:    "));
}

#[test]
fn proc2_zoneinfo_follows_min_free_kbytes_changes() {
    let m = x86_64_nopcp(64);
    m.set_min_free_kbytes(2048).expect("min_free_kbytes in range");
    let marks = expected_wmarks(&m, 2048, 10)[ZoneType::Dma32 as usize];
    let text = m.zoneinfo();
    let expected = format!(
        "\n        min      {}\n        low      {}\n        high     {}\n        promo    {}\n",
        marks[0], marks[1], marks[2], marks[3]
    );
    assert!(text.contains(&expected), "{text}");
}

/// Parses meminfo, checking every line's layout; returns label → value (kB or count).
fn parse_meminfo(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let (label, value) = if let Some(rest) = line.strip_prefix("HardwareCorrupted: ") {
            assert_eq!(rest.len(), 5 + 3, "HardwareCorrupted uses %5lu: {line:?}");
            ("HardwareCorrupted".to_string(), rest.strip_suffix(" kB").unwrap())
        } else if line.starts_with("HugePages_") {
            assert_eq!(line.len(), 24, "{line:?}");
            (line[..16].trim_end().trim_end_matches(':').to_string(), &line[16..])
        } else {
            assert_eq!(line.len(), 16 + 8 + 3, "label 16 + value 8 + \" kB\": {line:?}");
            assert!(line.ends_with(" kB"), "{line:?}");
            let label = &line[..16];
            assert!(label.trim_end().ends_with(':'), "{line:?}");
            (label.trim_end().trim_end_matches(':').to_string(), &line[16..24])
        };
        assert!(value.starts_with(' ') || value.len() == 8 || value.len() == 5, "right-aligned: {line:?}");
        out.push((label, value.trim().parse().unwrap_or_else(|_| panic!("{line:?}"))));
    }
    out
}

/// `Balloon:` (v6.16+, `NR_BALLOON_PAGES`): after `HardwareCorrupted` (and the THP, CMA and
/// unaccepted-memory lines kmem's configuration has none of), before `HugePages_Total:`; kmem
/// has no balloon driver, so 0.
#[test]
fn proc3_meminfo_balloon_line_before_the_hugetlb_lines() {
    let m = i386_nopcp(64);
    let text = m.meminfo();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("Balloon:")).unwrap_or_else(|| panic!("no Balloon: {text}"));
    assert_eq!(lines[at], "Balloon:               0 kB");
    assert!(
        lines[at - 1].starts_with("HardwareCorrupted: ") && lines[at + 1].starts_with("HugePages_Total:"),
        "{text}"
    );
}

#[test]
fn proc3_meminfo_label_and_value_widths() {
    let m = i386_nopcp(64);
    let text = m.meminfo();
    let fields = parse_meminfo(&text);
    let labels: Vec<&str> = fields.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels[..3], ["MemTotal", "MemFree", "MemAvailable"]);
    let map: HashMap<&str, usize> = fields.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    assert_eq!(map["MemTotal"], m.total_managed() * 4);
    assert_eq!(map["MemFree"], m.total_free() * 4);
    assert_eq!(map["Slab"], map["SReclaimable"] + map["SUnreclaim"]);
    assert_eq!(map["HighTotal"] + map["LowTotal"], map["MemTotal"]);
    assert_eq!(map["HighFree"] + map["LowFree"], map["MemFree"]);
    let pos = |l: &str| labels.iter().position(|x| *x == l).unwrap_or_else(|| panic!("{l} missing"));
    assert!(pos("Mlocked") < pos("HighTotal") && pos("LowFree") < pos("SwapTotal"));
    assert!(pos("SUnreclaim") < pos("KernelStack") && pos("VmallocTotal") < pos("VmallocUsed"));
    assert!(text.starts_with(&format!("MemTotal:       {:>8} kB\n", m.total_managed() * 4)));
    // MemFree follows allocations exactly (no per-CPU lists here).
    let page = m.alloc_pages(GFP_KERNEL, 4).unwrap();
    let after: HashMap<String, usize> = parse_meminfo(&m.meminfo()).into_iter().collect();
    assert_eq!(after["MemFree"], map["MemFree"] - 64);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 4) };
}

#[test]
fn proc3_meminfo_highmem_lines_only_with_highmem_configured() {
    let x = x86_64_nopcp(64);
    let text = x.meminfo();
    assert!(!text.contains("HighTotal") && !text.contains("LowFree"), "{text}");
    parse_meminfo(&text);
    let i = i386_nopcp(1024);
    let map: HashMap<String, usize> = parse_meminfo(&i.meminfo()).into_iter().collect();
    assert_eq!(map["HighTotal"], i.zone(ZoneType::HighMem).managed() * 4);
    assert_eq!(map["HighTotal"], 128 << 10);
    // The huge page size follows the profile: 4 MiB on (non-PAE) i386, 2 MiB on x86_64.
    assert_eq!(map["Hugepagesize"], 4096);
    let x: HashMap<String, usize> = parse_meminfo(&x.meminfo()).into_iter().collect();
    assert_eq!(x["Hugepagesize"], 2048);
}

#[test]
fn proc3_meminfo_slab_sum_and_vmalloc_used() {
    let m = i386_nopcp(64);
    let extra = MeminfoExtra {
        slab_reclaimable: 10,
        slab_unreclaimable: 5,
        vmalloc_total_kb: 1 << 20,
        vmalloc_used: 7,
        percpu_kb: 96,
    };
    let mut text = String::new();
    kmem::proc::meminfo(m.pages(), &extra, &mut text).unwrap();
    let map: HashMap<String, usize> = parse_meminfo(&text).into_iter().collect();
    assert_eq!((map["SReclaimable"], map["SUnreclaim"], map["Slab"]), (40, 20, 60));
    assert_eq!(map["KReclaimable"], 40);
    assert_eq!(map["VmallocUsed"], 28);
    assert_eq!(map["VmallocTotal"], 1 << 20);
    assert_eq!(map["Percpu"], 96);
}

/// The pagetypeinfo header of the kernel for a pageblock order.
fn pagetypeinfo_header(pb: u32) -> String {
    let mut s = format!("Page block order: {pb}\nPages per block:  {}\n\n", 1 << pb);
    s += &format!("{:<43} ", "Free pages count per migrate type at order");
    for o in 0..11 {
        s += &format!("{o:>6} ");
    }
    s + "\n"
}

/// Free-count rows of pagetypeinfo: (zone, type) → counts per order.
fn pagetypeinfo_rows(text: &str) -> HashMap<(String, String), Vec<usize>> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| l.contains(", type ")) {
        assert!(line.starts_with("Node    0, zone "), "{line:?}");
        let zone = line[16..24].trim().to_string();
        assert_eq!(&line[24..31], ", type ", "{line:?}");
        let mt = line[31..43].trim().to_string();
        assert_eq!(&line[43..44], " ");
        let rest = &line[44..];
        assert_eq!(rest.len(), 11 * 7, "eleven \"%6lu \" columns: {line:?}");
        let counts = rest.split_whitespace().map(|n| n.parse().unwrap()).collect();
        out.insert((zone, mt), counts);
    }
    out
}

#[test]
fn proc4_pagetypeinfo_header_and_row_layout() {
    let m = i386_nopcp(64);
    let text = m.pagetypeinfo();
    assert!(text.starts_with(&pagetypeinfo_header(10)), "{text}");
    assert!(text.starts_with(
        "Page block order: 10\nPages per block:  1024\n\nFree pages count per migrate type at order       0      1"
    ));
    let row = format!("Node {:>4}, zone {:>8}, type {:>12} ", 0, "DMA", "Movable");
    assert!(text.contains(&format!("{row}{}\n", "     0 ".repeat(10) + "     4 ")), "{text}");
    let mut blocks_header = format!("\n{:<23}", "Number of blocks type ");
    for mt in MigrateType::ALL {
        blocks_header += &format!("{:>12} ", mt.name());
    }
    assert!(text.contains(&(blocks_header + "\n")), "{text}");
    // Every pageblock of a zone is counted once.
    let dma_blocks = format!("Node 0, zone {:>8} {:>12} {:>12} {:>12} {:>12} \n", "DMA", 0, 4, 0, 0);
    assert!(text.contains(&dma_blocks), "{text}");
    let x = x86_64_nopcp(32);
    assert!(x.pagetypeinfo().starts_with(&pagetypeinfo_header(9)));
}

#[test]
fn proc4_pagetypeinfo_counts_sum_to_buddyinfo() {
    let m = builder(Profile::I386, 64).build().unwrap();
    let mut held = Vec::new();
    for (i, gfp) in [GFP_KERNEL, GFP_KERNEL | __GFP_MOVABLE, GFP_KERNEL | __GFP_RECLAIMABLE, GFP_DMA].iter().enumerate()
    {
        for order in [0, 1, 3, 5, 9] {
            for _ in 0..=i {
                held.push((m.alloc_pages(*gfp, order).unwrap(), order));
            }
        }
    }
    for (p, o) in held.drain(..).step_by(2) {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, o) };
    }
    m.drain_local_pages();
    let rows = pagetypeinfo_rows(&m.pagetypeinfo());
    let types: Vec<&str> = MigrateType::ALL.iter().map(|t| t.name()).collect();
    let mut nonzero_types = 0;
    for zone in ["DMA", "Normal"] {
        let per_type: Vec<&Vec<usize>> = types.iter().map(|t| &rows[&(zone.to_string(), t.to_string())]).collect();
        nonzero_types += per_type.iter().filter(|c| c.iter().any(|&n| n > 0)).count();
        let sums: Vec<usize> = (0..11).map(|o| per_type.iter().map(|c| c[o]).sum()).collect();
        assert_eq!(sums, buddyinfo_row(&m, zone), "zone {zone}");
    }
    assert!(nonzero_types >= 3, "the mix spread free pages over several types");
    check(&m);
}

/// `si_mem_available` in a signed long: free − totalreserve + reclaimable slab (less
/// `min(half, low watermarks)`), clamped at zero as a whole — not `free − reserve` first.
#[test]
fn proc3_meminfo_mem_available_follows_si_mem_available() {
    let m = i386_nopcp(64);
    let extra = MeminfoExtra { slab_reclaimable: 200, ..MeminfoExtra::default() };
    let available = |m: &Machine| {
        let mut text = String::new();
        kmem::proc::meminfo(m.pages(), &extra, &mut text).unwrap();
        parse_meminfo(&text).into_iter().find(|(l, _)| l == "MemAvailable").unwrap().1
    };
    let totalreserve: usize = m
        .zones()
        .iter()
        .map(|z| {
            let reserve = ZoneType::ALL.iter().map(|&k| z.lowmem_reserve(k)).max().unwrap_or(0);
            (reserve + z.wmark(kmem::zone::Wmark::High)).min(z.managed())
        })
        .sum();
    let low: usize = m.zones().iter().map(|z| z.wmark(kmem::zone::Wmark::Low)).sum();
    let reclaimable = 200 - (200 / 2).min(low);
    assert_eq!(available(&m), (m.total_free() - totalreserve + reclaimable) * 4);
    // Below the reserve: the reclaimable slab does not lift the sum above zero.
    let held = exhaust(&m);
    assert!(m.total_free() + reclaimable < totalreserve, "the test needs free + reclaimable < reserve");
    assert_eq!(available(&m), 0);
    free_all(&m, held);
}

#[test]
fn proc3_meminfo_direct_map_lines_by_profile() {
    // x86's arch_report_meminfo: 4 KiB pages, then the large-page line (2 MiB on x86_64, 4 MiB
    // on non-PAE i386); the machine maps its direct map with 4 KiB pages only.
    for (m, large) in [(x86_64_nopcp(64), "DirectMap2M"), (i386_nopcp(64), "DirectMap4M")] {
        let fields = parse_meminfo(&m.meminfo());
        let n = fields.len();
        assert_eq!(fields[n - 2].0, "DirectMap4k");
        let lowmem: usize = m.zones().iter().filter(|z| z.kind() != ZoneType::HighMem).map(|z| z.present()).sum();
        assert_eq!(fields[n - 2].1, lowmem * 4);
        assert_eq!(fields[n - 1], (large.to_string(), 0));
    }
}

/// `calculate_normal_threshold`: 2 · fls(CPUs) · (1 + fls(managed pages in 128 MiB units)),
/// at most 125, on the zoneinfo's `vm stats threshold:` line of every zone.
#[test]
fn proc2_zoneinfo_vm_stats_threshold() {
    let fls = |x: usize| (usize::BITS - x.leading_zeros()) as usize;
    for cpus in [1, 2, 8] {
        let m = builder(Profile::I386, 1024).cpus(cpus).build().unwrap();
        let text = m.zoneinfo();
        for z in m.zones().iter().filter(|z| z.managed() > 0) {
            let want = (2 * fls(cpus) * (1 + fls(z.managed() >> 15))).min(125);
            let block = text.split("Node 0, zone").find(|b| b.trim_start().starts_with(z.name())).unwrap();
            let lines: Vec<&str> = block.lines().filter(|l| l.starts_with("  vm stats threshold: ")).collect();
            assert_eq!(lines.len(), cpus, "one per CPU: {block}");
            assert!(lines.iter().all(|l| *l == format!("  vm stats threshold: {want}")), "{}: {lines:?}", z.name());
        }
    }
    // The kernel's own sample rows: 8 CPUs, about 1 GiB of Normal: 2·4·(1+3) = 32.
    let m = builder(Profile::I386, 1024).cpus(8).build().unwrap();
    assert!(m.zoneinfo().contains("  vm stats threshold: 32\n"));
}

/// `/proc/vmstat` as `(name, value)` pairs; every line is `name value`.
fn parse_vmstat(text: &str) -> Vec<(String, usize)> {
    assert!(text.ends_with("nr_unstable 0\n"), "the legacy line comes last:\n{text}");
    text.lines()
        .map(|l| {
            let (name, value) = l.split_once(' ').unwrap_or_else(|| panic!("not `name value`: {l:?}"));
            (name.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        })
        .collect()
}

fn vmstat_value(m: &Machine, name: &str) -> usize {
    parse_vmstat(&m.vmstat()).into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

/// The zone and node counters kmem shows, as `/proc/zoneinfo` shows them.
const VMSTAT_HEAD: [&str; 20] = [
    "nr_free_pages",
    "nr_free_pages_blocks",
    "nr_zone_inactive_anon",
    "nr_zone_active_anon",
    "nr_zone_inactive_file",
    "nr_zone_active_file",
    "nr_zone_unevictable",
    "nr_zone_write_pending",
    "nr_mlock",
    "nr_free_cma",
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_inactive_file",
    "nr_active_file",
    "nr_unevictable",
    "nr_slab_reclaimable",
    "nr_slab_unreclaimable",
    "nr_kernel_stack",
    "nr_memmap_pages",
    "nr_memmap_boot_pages",
];

/// `/proc/vmstat` (SEMANTICS §7): `name value` lines in the kernel's order — zone counters
/// summed over the zones, node counters, memmap — then the events, `pgalloc_*` and
/// `allocstall_*` for the profile's zones (`TEXTS_FOR_ZONES`: `_high` for HighMem, `_movable`
/// always), ending with `nr_unstable 0`. The values follow the machine: free pages as
/// buddyinfo counts them, the page array as boot memmap, allocations per zone, frees.
#[test]
fn vmstat_lines_in_the_kernels_order_with_live_counts() {
    // On a 64 MiB x86_64 machine everything above 16 MiB is DMA32: GFP_KERNEL's pages.
    for (profile, zones, kernel) in [
        (Profile::I386, ["dma", "normal", "high", "movable"], "pgalloc_normal"),
        (Profile::X86_64, ["dma", "dma32", "normal", "movable"], "pgalloc_dma32"),
    ] {
        let m = builder(profile, 64).pcp(false).build().unwrap();
        let v = parse_vmstat(&m.vmstat());
        let mut want: Vec<String> = VMSTAT_HEAD.iter().map(|s| (*s).to_owned()).collect();
        want.extend(zones.iter().map(|z| format!("pgalloc_{z}")));
        want.extend(zones.iter().map(|z| format!("allocstall_{z}")));
        want.extend(["pgfree", "pageoutrun", "drop_slab", "oom_kill", "nr_unstable"].map(String::from));
        assert_eq!(v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), want);
        let free_in_buddyinfo: usize = m
            .buddyinfo()
            .lines()
            .flat_map(|l| l.split_whitespace().skip(4).enumerate().map(|(o, n)| n.parse::<usize>().unwrap() << o))
            .sum();
        assert_eq!(vmstat_value(&m, "nr_free_pages"), free_in_buddyinfo);
        assert_eq!(vmstat_value(&m, "nr_memmap_boot_pages"), m.reserved_pages());
        let (normal, dma, freed) =
            (vmstat_value(&m, kernel), vmstat_value(&m, "pgalloc_dma"), vmstat_value(&m, "pgfree"));
        let mut held: Vec<(&Page, u32)> = (0..10).map(|_| (m.alloc_pages(GFP_KERNEL, 0).unwrap(), 0)).collect();
        held.extend((0..3).map(|_| (m.alloc_pages(GFP_KERNEL | __GFP_DMA, 1).unwrap(), 1)));
        assert_eq!(vmstat_value(&m, kernel), normal + 10, "{profile:?}");
        assert_eq!(vmstat_value(&m, "pgalloc_dma"), dma + 6, "{profile:?}: pages, not blocks");
        assert_eq!(vmstat_value(&m, "nr_free_pages"), free_in_buddyinfo - 16);
        free_all(&m, held);
        assert_eq!(vmstat_value(&m, "pgfree"), freed + 16, "{profile:?}");
    }
}

/// `allocstall_<zone>` counts direct-reclaim passes by the request's highest zone
/// (`gfp_zone`); `drop_slab` counts `shrink_all`; `pageoutrun` is kswapd's runs; `oom_kill`
/// stays 0 (kmem kills nothing) after an OOM report.
#[test]
fn vmstat_counts_direct_reclaim_by_zone_and_drop_slab() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let stall = |zone| vmstat_value(&m, &format!("allocstall_{zone}"));
    let (normal, high) = (stall("normal"), stall("high"));
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0).is_err());
    assert_eq!((stall("normal"), stall("high")), (normal + 1, high), "GFP_KERNEL reclaims for Normal");
    assert!(m.alloc_pages(GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN, 0).is_err());
    assert_eq!((stall("normal"), stall("high")), (normal + 1, high + 1), "GFP_HIGHUSER reclaims for HighMem");
    assert_eq!(stall("dma"), 0);
    free_all(&m, held);
    // x86_64 has no HighMem: GFP_HIGHUSER's zone is Normal, and its stall is counted there.
    let x = x86_64_nopcp(64);
    let held64 = exhaust(&x);
    let normal64 = vmstat_value(&x, "allocstall_normal");
    assert!(x.alloc_pages(GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN, 0).is_err());
    assert_eq!(vmstat_value(&x, "allocstall_normal"), normal64 + 1, "x86_64: GFP_HIGHUSER reclaims for Normal");
    free_all(&x, held64);
    let drops = vmstat_value(&m, "drop_slab");
    m.shrink_all(GFP_KERNEL);
    assert_eq!(vmstat_value(&m, "drop_slab"), drops + 1);
    assert_eq!(vmstat_value(&m, "pageoutrun"), m.stats().kswapd_rounds.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(vmstat_value(&m, "oom_kill"), 0);
}

/// PROC-3: `LowFree` is `MemFree - HighFree` of one reading of the zones' free counts. With
/// lowmem used up, another thread freeing a HighMem block between two separate reads of the
/// HighMem count made the subtraction underflow (a panic in a debug build, a wrapped number
/// in a release one).
#[test]
fn proc3_meminfo_low_free_is_consistent_while_highmem_is_freed() {
    let m = i386_nopcp(1024);
    // Every lowmem page, past the watermarks.
    let low = grab_all(&m, GFP_ATOMIC | __GFP_NOWARN | __GFP_MEMALLOC);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(SEQ) {
                let block = m.alloc_pages(GFP_HIGHUSER | __GFP_NOWARN, MAX_PAGE_ORDER).unwrap();
                // SAFETY: The block just allocated, unused afterwards.
                unsafe { m.free_pages(block, MAX_PAGE_ORDER) };
            }
        });
        // Stops the freeing thread however the reads end (a failed assertion too).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, SEQ);
            }
        }
        let _stop = Stop(&stop);
        for _ in 0..20_000 {
            let map: HashMap<String, usize> = parse_meminfo(&m.meminfo()).into_iter().collect();
            assert!(map["LowFree"] <= map["LowTotal"], "{map:?}");
            assert_eq!(map["MemFree"], map["LowFree"] + map["HighFree"], "{map:?}");
        }
    });
    free_all(&m, low);
}
