//! `/proc` texts of the page allocator (`mm/vmstat.c`, `fs/proc/meminfo.c`), byte-exact to the
//! kernel's formats (PROC-1..4), `/proc/vmstat` (the subset kmem counts), and `show_mem` for
//! reports.
//!
//! kmem has one node (node 0), no CMA, no swap, no page cache. Zone lists print every
//! configured zone (`zoneinfo`) or every populated one (`buddyinfo`, `pagetypeinfo`).

use core::fmt::{self, Write};
use core::sync::atomic::Ordering::Relaxed;

use crate::order::{NR_PAGE_ORDERS, PAGE_SHIFT};
use crate::page_alloc::PageAllocator;
use crate::platform::Platform;
use crate::zone::{MIGRATE_TYPES, MigrateType, Wmark, Zone, ZoneType};

/// Counters from layers above the page allocator that `/proc/meminfo` shows, in pages
/// unless named otherwise.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeminfoExtra {
    /// `SReclaimable`: slab pages of `SLAB_RECLAIM_ACCOUNT` caches.
    pub slab_reclaimable: usize,
    /// `SUnreclaim`: other slab pages (and large kmalloc pages).
    pub slab_unreclaimable: usize,
    /// `VmallocTotal` in kB.
    pub vmalloc_total_kb: usize,
    /// `VmallocUsed`: pages mapped by vmalloc.
    pub vmalloc_used: usize,
    /// `Percpu` in kB.
    pub percpu_kb: usize,
}

fn kb(pages: usize) -> usize {
    pages << (PAGE_SHIFT - 10)
}

fn populated<P: Platform>(pa: &PageAllocator<P>) -> impl Iterator<Item = &Zone> {
    pa.zones().iter().filter(|z| z.is_populated())
}

/// `/proc/buddyinfo` (PROC-1): free blocks per order for each populated zone.
pub fn buddyinfo<P: Platform>(pa: &PageAllocator<P>, w: &mut dyn Write) -> fmt::Result {
    for zone in populated(pa) {
        write!(w, "Node 0, zone {:>8} ", zone.name())?;
        for n in zone.free_blocks_per_order() {
            write!(w, "{n:>6} ")?;
        }
        w.write_char('\n')?;
    }
    Ok(())
}

/// `/proc/pagetypeinfo` (PROC-4).
pub fn pagetypeinfo<P: Platform>(pa: &PageAllocator<P>, w: &mut dyn Write) -> fmt::Result {
    let pb = pa.memmap().pageblock_order();
    writeln!(w, "Page block order: {pb}")?;
    writeln!(w, "Pages per block:  {}", 1usize << pb)?;
    w.write_char('\n')?;
    write!(w, "{:<43} ", "Free pages count per migrate type at order")?;
    for order in 0..NR_PAGE_ORDERS {
        write!(w, "{order:>6} ")?;
    }
    w.write_char('\n')?;
    for zone in populated(pa) {
        let per_type = zone.free_blocks_per_type();
        for mt in MigrateType::ALL {
            write!(w, "Node {:>4}, zone {:>8}, type {:>12} ", 0, zone.name(), mt.name())?;
            for &count in &per_type[mt as usize] {
                let prefix = if count >= 100_000 { ">" } else { "" };
                write!(w, "{prefix}{:>6} ", count.min(100_000))?;
            }
            w.write_char('\n')?;
        }
    }
    write!(w, "\n{:<23}", "Number of blocks type ")?;
    for mt in MigrateType::ALL {
        write!(w, "{:>12} ", mt.name())?;
    }
    w.write_char('\n')?;
    for zone in populated(pa) {
        let mut counts = [0usize; MIGRATE_TYPES];
        let mut pfn = zone.start_pfn();
        while pfn < zone.end_pfn() {
            counts[pa.memmap().pageblock_mt(pfn) as usize] += 1;
            pfn += 1 << pb;
        }
        write!(w, "Node 0, zone {:>8} ", zone.name())?;
        for c in counts {
            write!(w, "{c:>12} ")?;
        }
        w.write_char('\n')?;
    }
    Ok(())
}

const NODE_STATS: [&str; 8] = [
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_inactive_file",
    "nr_active_file",
    "nr_unevictable",
    "nr_slab_reclaimable",
    "nr_slab_unreclaimable",
    "nr_kernel_stack",
];

/// The kB counters of `show_free_areas`' node line before `all_unreclaimable?`, in order.
const NODE_LINE_KB: [&str; 14] = [
    "active_anon",
    "inactive_anon",
    "active_file",
    "inactive_file",
    "unevictable",
    "isolated(anon)",
    "isolated(file)",
    "mapped",
    "dirty",
    "writeback",
    "shmem",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
];

/// `/proc/zoneinfo` (PROC-2): watermarks, spans, `protection:` (the lowmem reserves of every
/// configured zone), zone counters and per-CPU list state.
pub fn zoneinfo<P: Platform>(pa: &PageAllocator<P>, extra: &MeminfoExtra, w: &mut dyn Write) -> fmt::Result {
    let configured: heapless_zones::Zones = heapless_zones::configured(pa);
    let first_populated = populated(pa).next().map(Zone::kind);
    for &kind in configured.as_slice() {
        let zone = pa.zone(kind);
        write!(w, "Node 0, zone {:>8}", zone.name())?;
        if Some(kind) == first_populated {
            w.write_str("\n  per-node stats")?;
            for name in NODE_STATS {
                write!(w, "\n      {name:<12} {}", node_stat(name, extra))?;
            }
        }
        write!(
            w,
            "\n  pages free     {}\n        boost    {}\n        min      {}\n        low      {}\n        high     {}\n        promo    {}\n        spanned  {}\n        present  {}\n        managed  {}\n        cma      0",
            zone.free_pages(),
            zone.watermark_boost(),
            zone.wmark(Wmark::Min),
            zone.wmark(Wmark::Low),
            zone.wmark(Wmark::High),
            zone.wmark(Wmark::Promo),
            zone.spanned(),
            zone.present(),
            zone.managed(),
        )?;
        w.write_str("\n        protection: (")?;
        for (i, &other) in configured.as_slice().iter().enumerate() {
            if i > 0 {
                w.write_str(", ")?;
            }
            write!(w, "{}", zone.lowmem_reserve(other))?;
        }
        w.write_char(')')?;
        if !zone.is_populated() {
            w.write_char('\n')?;
            continue;
        }
        for (name, value) in ZONE_COUNTERS.iter().zip(zone_counters(pa, zone)) {
            write!(w, "\n      {name:<12} {value}")?;
        }
        w.write_str("\n  pagesets")?;
        let (high_min, high_max, batch) = (zone.pcp_high(), zone.pcp_high_max(), zone.pcp_batch());
        for cpu in 0..pa.nr_cpus() {
            write!(
                w,
                "\n    cpu: {cpu}\n              count:    {}\n              high:     {}\n              batch:    {batch}\n              high_min: {high_min}\n              high_max: {high_max}\n  vm stats threshold: {}",
                pa.pcp_count(cpu, kind),
                pa.pcp_high(cpu, kind),
                stat_threshold(zone.managed(), pa.nr_cpus()),
            )?;
        }
        // `pgdat->kswapd_failures >= MAX_RECLAIM_RETRIES`.
        let hopeless = u8::from(pa.kswapd_hopeless());
        write!(w, "\n  node_unreclaimable:  {hopeless}\n  start_pfn:           {}\n", zone.start_pfn())?;
    }
    Ok(())
}

/// The zone counters kmem shows (`enum zone_stat_item`, in order).
const ZONE_COUNTERS: [&str; 10] = [
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
];

/// A zone's [`ZONE_COUNTERS`] as kmem keeps them: free pages and free pages in blocks of at
/// least a pageblock; no LRU, no mlock, no CMA.
fn zone_counters<P: Platform>(pa: &PageAllocator<P>, zone: &Zone) -> [usize; 10] {
    let pb = pa.memmap().pageblock_order();
    let blocks_free: usize =
        zone.free_blocks_per_order().iter().enumerate().skip(pb as usize).map(|(o, n)| n << o).sum();
    [zone.free_pages(), blocks_free, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// A node counter of [`NODE_STATS`]: the slab pages from `extra`, 0 for the rest (no LRU, no
/// kernel stacks).
fn node_stat(name: &str, extra: &MeminfoExtra) -> usize {
    match name {
        "nr_slab_reclaimable" => extra.slab_reclaimable,
        "nr_slab_unreclaimable" => extra.slab_unreclaimable,
        _ => 0,
    }
}

/// The suffix `TEXTS_FOR_ZONES` gives a zone kind's events (`pgalloc_high` for HighMem).
fn zone_suffix(kind: ZoneType) -> &'static str {
    match kind {
        ZoneType::Dma => "dma",
        ZoneType::Dma32 => "dma32",
        ZoneType::Normal => "normal",
        ZoneType::HighMem => "high",
        ZoneType::Movable => "movable",
    }
}

/// `/proc/vmstat`: `name value` lines in the kernel's order — the zone counters summed over
/// the zones, the node counters, the memmap counters, then the events kmem counts — ending
/// with the legacy `nr_unstable 0`. The same subset as [`zoneinfo`] (no LRU, page cache, swap,
/// NUMA, compaction or THP lines); of the events: `pgalloc_<zone>` and `allocstall_<zone>`
/// for every configured zone, `pgfree`, `pageoutrun` (kswapd runs), `drop_slab` and
/// `oom_kill` (0: kmem has nothing to kill). `docs/deviations.md` lists what is left out.
pub fn vmstat<P: Platform>(pa: &PageAllocator<P>, extra: &MeminfoExtra, w: &mut dyn Write) -> fmt::Result {
    let mut zone_totals = [0usize; 10];
    for zone in populated(pa) {
        for (total, value) in zone_totals.iter_mut().zip(zone_counters(pa, zone)) {
            *total += value;
        }
    }
    for (name, value) in ZONE_COUNTERS.iter().zip(zone_totals) {
        writeln!(w, "{name} {value}")?;
    }
    for name in NODE_STATS {
        writeln!(w, "{name} {}", node_stat(name, extra))?;
    }
    // The page array is carved at boot (`memblock`'s, in the kernel): boot pages.
    writeln!(w, "nr_memmap_pages 0\nnr_memmap_boot_pages {}", pa.reserved_pages())?;
    let configured = heapless_zones::configured(pa);
    let stats = pa.stats();
    for &kind in configured.as_slice() {
        writeln!(w, "pgalloc_{} {}", zone_suffix(kind), pa.nr_pgalloc(kind))?;
    }
    for &kind in configured.as_slice() {
        writeln!(w, "allocstall_{} {}", zone_suffix(kind), stats.allocstall[kind as usize].load(Relaxed))?;
    }
    writeln!(w, "pgfree {}", pa.nr_pgfree())?;
    writeln!(w, "pageoutrun {}", stats.kswapd_rounds.load(Relaxed))?;
    writeln!(w, "drop_slab {}", stats.drop_slab.load(Relaxed))?;
    writeln!(w, "oom_kill 0")?;
    writeln!(w, "nr_unstable 0")
}

/// `calculate_normal_threshold`: `2 * fls(cpus) * (1 + fls(managed in 128 MiB units))`, at
/// most 125.
fn stat_threshold(managed: usize, cpus: usize) -> usize {
    let fls = |x: usize| (usize::BITS - x.leading_zeros()) as usize;
    let mem = managed >> (27 - PAGE_SHIFT);
    (2 * fls(cpus.max(1)) * (1 + fls(mem))).min(125)
}

/// `/proc/meminfo` (PROC-3), with the counters of the upper layers in `extra`.
pub fn meminfo<P: Platform>(pa: &PageAllocator<P>, extra: &MeminfoExtra, w: &mut dyn Write) -> fmt::Result {
    let line = |w: &mut dyn Write, label: &str, kbytes: usize| writeln!(w, "{:<16}{kbytes:>8} kB", alloc_label(label));
    let total = pa.total_managed();
    // One reading of each zone's free count, so that `MemFree`, `HighFree` and `LowFree` agree
    // while other threads allocate and free (a second read of the HighMem count could exceed
    // the first, and `LowFree` underflow).
    let (mut free, mut high_free) = (0, 0);
    for z in pa.zones() {
        let zone_free = z.free_pages();
        free += zone_free;
        if z.kind() == ZoneType::HighMem {
            high_free = zone_free;
        }
    }
    let reserve: usize = pa
        .zones()
        .iter()
        .map(|z| {
            let max_reserve = ZoneType::ALL.iter().map(|&k| z.lowmem_reserve(k)).max().unwrap_or(0);
            // `totalreserve_pages`, computed when the marks are set up: without a boost.
            (max_reserve + z.wmark_base(Wmark::High)).min(z.managed())
        })
        .sum();
    let wmark_low: usize = pa.zones().iter().map(|z| z.wmark(Wmark::Low)).sum();
    let reclaimable = extra.slab_reclaimable - (extra.slab_reclaimable / 2).min(wmark_low);
    // `si_mem_available` works in a signed long and clamps the sum, not the first difference.
    let available = (free as isize - reserve as isize + reclaimable as isize).max(0) as usize;
    line(w, "MemTotal", kb(total))?;
    line(w, "MemFree", kb(free))?;
    line(w, "MemAvailable", kb(available))?;
    for label in [
        "Buffers",
        "Cached",
        "SwapCached",
        "Active",
        "Inactive",
        "Active(anon)",
        "Inactive(anon)",
        "Active(file)",
        "Inactive(file)",
        "Unevictable",
        "Mlocked",
    ] {
        line(w, label, 0)?;
    }
    if pa.zone_configured(ZoneType::HighMem) {
        let high = pa.zone(ZoneType::HighMem);
        line(w, "HighTotal", kb(high.managed()))?;
        line(w, "HighFree", kb(high_free))?;
        line(w, "LowTotal", kb(total - high.managed()))?;
        line(w, "LowFree", kb(free - high_free))?;
    }
    for label in ["SwapTotal", "SwapFree", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem"] {
        line(w, label, 0)?;
    }
    line(w, "KReclaimable", kb(extra.slab_reclaimable))?;
    line(w, "Slab", kb(extra.slab_reclaimable + extra.slab_unreclaimable))?;
    line(w, "SReclaimable", kb(extra.slab_reclaimable))?;
    line(w, "SUnreclaim", kb(extra.slab_unreclaimable))?;
    for label in ["KernelStack", "PageTables", "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp"] {
        line(w, label, 0)?;
    }
    line(w, "CommitLimit", kb(total / 2))?;
    line(w, "Committed_AS", kb(total - free))?;
    line(w, "VmallocTotal", extra.vmalloc_total_kb)?;
    line(w, "VmallocUsed", kb(extra.vmalloc_used))?;
    line(w, "VmallocChunk", 0)?;
    line(w, "Percpu", extra.percpu_kb)?;
    writeln!(w, "HardwareCorrupted: {:>5} kB", 0)?;
    // v6.16+: no balloon driver. (No THP, CMA or unaccepted-memory lines before it.)
    line(w, "Balloon", 0)?;
    for label in ["HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"] {
        writeln!(w, "{:<16}{:>8}", alloc_label(label), 0)?;
    }
    line(w, "Hugepagesize", hugepage_kb(pa))?;
    line(w, "Hugetlb", 0)?;
    // x86's `arch_report_meminfo`: the direct map by page size. The machine's direct map is a
    // host mapping of 4 KiB pages, so all of it is `DirectMap4k`; the large-page line is there
    // and zero (2 MiB pages on x86_64, 4 MiB on non-PAE i386, the book's machine).
    let lowmem: usize = pa.zones().iter().filter(|z| !z.kind().is_highmem()).map(Zone::present).sum();
    line(w, "DirectMap4k", kb(lowmem))?;
    let large = if pa.zone_configured(ZoneType::HighMem) { "DirectMap4M" } else { "DirectMap2M" };
    line(w, large, 0)?;
    Ok(())
}

/// A label with its colon, as `show_val_kb` receives it.
fn alloc_label(label: &str) -> LabelColon<'_> {
    LabelColon(label)
}

struct LabelColon<'a>(&'a str);

impl fmt::Display for LabelColon<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Pad label + ':' together to the requested width.
        let width = f.width().unwrap_or(0);
        f.write_str(self.0)?;
        f.write_char(':')?;
        for _ in self.0.len() + 1..width {
            f.write_char(' ')?;
        }
        Ok(())
    }
}

/// `__show_mem(filter, nodemask, max_zone_idx)` / `show_free_areas`: the Mem-Info block of
/// allocation-failure and OOM reports, with the slab pages of `extra` (the counts
/// `/proc/meminfo` shows, in pages). The zone lines, their `lowmem_reserve[]:` lines, the
/// free-area lines and `free_pcp` cover the populated zones up to `max_zone` only (callers pass
/// `gfp_zone` of the request); the page totals count every zone.
pub fn show_mem<P: Platform>(
    pa: &PageAllocator<P>,
    extra: &MeminfoExtra,
    max_zone: ZoneType,
    w: &mut dyn Write,
) -> fmt::Result {
    let shown = || populated(pa).filter(move |z| z.kind() <= max_zone);
    let zone_pcp = |kind: ZoneType| -> usize { (0..pa.nr_cpus()).map(|cpu| pa.pcp_count(cpu, kind)).sum() };
    let free_pcp: usize = shown().map(|z| zone_pcp(z.kind())).sum();
    writeln!(w, "Mem-Info:")?;
    writeln!(w, "active_anon:0 inactive_anon:0 isolated_anon:0\n active_file:0 inactive_file:0 isolated_file:0")?;
    writeln!(w, " unevictable:0 dirty:0 writeback:0")?;
    writeln!(w, " slab_reclaimable:{} slab_unreclaimable:{}", extra.slab_reclaimable, extra.slab_unreclaimable)?;
    writeln!(w, " mapped:0 shmem:0 pagetables:0\n sec_pagetables:0 bounce:0\n kernel_misc_reclaimable:0")?;
    writeln!(w, " free:{} free_pcp:{free_pcp} free_cma:0", pa.total_free())?;
    // The node line (v6.18, without `CONFIG_TRANSPARENT_HUGEPAGE` and
    // `CONFIG_SHADOW_CALL_STACK`), when a zone up to `max_zone` has managed pages: kmem has no
    // LRU, file, stack or page-table pages and no balloon; `all_unreclaimable?` is whether
    // kswapd gave up on the node (`kswapd_failures >= MAX_RECLAIM_RETRIES`).
    if pa.zones().iter().any(|z| z.kind() <= max_zone && z.managed() > 0) {
        w.write_str("Node 0")?;
        for name in NODE_LINE_KB {
            write!(w, " {name}:0kB")?;
        }
        let hopeless = if pa.kswapd_hopeless() { "yes" } else { "no" };
        writeln!(w, " all_unreclaimable? {hopeless} Balloon:0kB")?;
    }
    for zone in shown() {
        let pcp = zone_pcp(zone.kind());
        writeln!(
            w,
            "Node 0 {} free:{}kB boost:{}kB min:{}kB low:{}kB high:{}kB reserved_highatomic:{}KB free_highatomic:{}KB active_anon:0kB inactive_anon:0kB active_file:0kB inactive_file:0kB unevictable:0kB writepending:0kB present:{}kB managed:{}kB mlocked:0kB bounce:0kB free_pcp:{}kB local_pcp:0kB free_cma:0kB",
            zone.name(),
            kb(zone.free_pages()),
            kb(zone.watermark_boost()),
            kb(zone.wmark(Wmark::Min)),
            kb(zone.wmark(Wmark::Low)),
            kb(zone.wmark(Wmark::High)),
            kb(zone.reserved_highatomic()),
            kb(zone.free_highatomic()),
            kb(zone.present()),
            kb(zone.managed()),
            kb(pcp),
        )?;
        w.write_str("lowmem_reserve[]:")?;
        for &k in heapless_zones::configured(pa).as_slice() {
            write!(w, " {}", zone.lowmem_reserve(k))?;
        }
        w.write_char('\n')?;
    }
    for zone in shown() {
        write!(w, "Node 0 {}: ", zone.name())?;
        let per_type = zone.free_blocks_per_type();
        let mut total = 0;
        for order in 0..NR_PAGE_ORDERS {
            let nr: usize = per_type.iter().map(|t| t[order]).sum();
            total += nr << order;
            write!(w, "{nr}*{}kB ", 4usize << order)?;
            if nr > 0 {
                w.write_char('(')?;
                for mt in MigrateType::ALL {
                    if per_type[mt as usize][order] > 0 {
                        w.write_char(['U', 'M', 'E', 'H'][mt as usize])?;
                    }
                }
                w.write_str(") ")?;
            }
        }
        writeln!(w, "= {}kB", kb(total))?;
    }
    // `hugetlb_show_meminfo_node`: one hstate, the `Hugepagesize` of meminfo, with no pages;
    // then the page cache (none). No swap lines: kmem has no swap (`CONFIG_SWAP` off).
    writeln!(w, "Node 0 hugepages_total=0 hugepages_free=0 hugepages_surp=0 hugepages_size={}kB", hugepage_kb(pa))?;
    writeln!(w, "0 total pagecache pages")?;
    let total_present: usize = pa.zones().iter().map(Zone::present).sum();
    let high: usize = pa.zones().iter().filter(|z| z.kind().is_highmem()).map(Zone::present).sum();
    writeln!(w, "{total_present} pages RAM")?;
    writeln!(w, "{high} pages HighMem/MovableOnly")?;
    writeln!(w, "{} pages reserved", pa.reserved_pages())?;
    // `CONFIG_MEMORY_FAILURE`, as meminfo's `HardwareCorrupted:` line; nothing is poisoned.
    write!(w, "0 pages hwpoisoned")
}

/// The huge page size in kB (`HPAGE_SHIFT`): the pageblock, 2 MiB on x86_64, 4 MiB on
/// non-PAE i386.
fn hugepage_kb<P: Platform>(pa: &PageAllocator<P>) -> usize {
    kb(1 << pa.memmap().pageblock_order())
}

/// The configured zone kinds in index order, without allocating.
mod heapless_zones {
    use super::*;
    use crate::zone::MAX_NR_ZONES;

    pub struct Zones {
        kinds: [ZoneType; MAX_NR_ZONES],
        len: usize,
    }

    impl Zones {
        pub fn as_slice(&self) -> &[ZoneType] {
            &self.kinds[..self.len]
        }
    }

    pub fn configured<P: Platform>(pa: &PageAllocator<P>) -> Zones {
        let mut z = Zones { kinds: [ZoneType::Dma; MAX_NR_ZONES], len: 0 };
        for kind in ZoneType::ALL {
            if pa.zone_configured(kind) {
                z.kinds[z.len] = kind;
                z.len += 1;
            }
        }
        z
    }
}
