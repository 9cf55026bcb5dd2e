//! The `memory` group (BENCHMARKS.md, "Memory"): what kmem costs in memory rather than in time.
//! Nothing here is timed: the group runs once, after the timed groups, and returns a markdown
//! section that is appended to the report.
//!
//! - **Metadata per managed page.** At boot a machine carves its page array (the 16-byte `Page`
//!   of every frame, plus the pageblock migrate-type bits) from the top of the direct map; those
//!   pages are reserved, not managed (`PageAllocator::reserved_pages`, `total_managed`). Reported
//!   as bytes of metadata per managed page and as `Machine::metadata_percent` (metadata bytes ÷
//!   managed bytes), for several machine sizes, against the kernel's 64-byte `struct page`
//!   (1.6 %) and the 0.5 % goal. Each machine is built (kswapd off, 2 CPUs) and dropped; the
//!   memfd is sparse, so only the page array is ever touched.
//! - **Slab waste per kmalloc class.** For each class size N the cache `kmalloc(N, GFP_KERNEL)`
//!   uses (`Kmem::kmalloc_cache`), with the geometry the allocator itself chose: object size
//!   (`kmem_cache_size`), stride, objects per slab and slab order, read from the cache and
//!   checked against its `/proc/slabinfo` line. Waste is `(slab bytes − objects × object size)
//!   ÷ slab bytes`. The slab descriptor (`kmem::slab::desc::Slab`, carved from separate pages)
//!   is a column of its own, as a share of the slab's bytes.
//! - **Resident memory after churn.** The `churn` workload of `objects.rs` (its fill, loop and
//!   free, same seed: [`CHURN_LIVE`] live objects of 8..=4096 bytes) through `kmalloc`/`kfree`
//!   for [`CHURN_OPS`] operations on a fresh 1 GiB, 2-CPU machine; then every object is freed,
//!   every cache shrunk (`kmem_cache_shrink`, which first flushes the per-CPU object arrays),
//!   the per-CPU page lists drained (`drain_all_pages`), and the free blocks of at least a pageblock given back
//!   (`Machine::trim`, hole punching). "Resident" is the memfd's allocated blocks
//!   (`Machine::resident_bytes`: `st_blocks × 512`), the physical memory the host backs for the
//!   machine. That machine has no aging trim (`trim_after(None)`), so each step's effect is its
//!   own; a second machine with the builder's default aging (`trim_after` 1 s) does the same
//!   without `trim` and waits for kswapd. The process's `VmRSS`, `RssShmem` (the memfd pages
//!   mapped, every machine's) and `RssAnon` from `/proc/self/status` are given for context.
//! - **For scale: the system allocator.** glibc malloc runs the same churn through its
//!   `GlobalAlloc`; its only resident measure is the process's `RssAnon`, read before, at the
//!   peak and after the frees (`malloc_trim` not called; glibc's `free` trims the top of its heap
//!   on its own). Process-wide figures are only clean when the group runs alone.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kmem::gfp::GFP_KERNEL;
use kmem::{Machine, PAGE_SIZE, Profile};

use crate::floor::KMALLOC_CLASSES;
use crate::kmem_adapter::KmemKmalloc;
use crate::obj_peers::Global;
use crate::objects::{self, CHURN_LIVE, CHURN_SIZES, ObjAlloc, XorShift};

/// Free+alloc operations of the churn loop after the fill.
pub const CHURN_OPS: u64 = 1_000_000;
/// Memory of the churn machines: the 1 GiB of the timed groups.
const CHURN_MACHINE_BYTES: u64 = 1 << 30;
/// The kernel's metadata: a 64-byte `struct page` per 4 KiB page, in percent.
const KERNEL_PERCENT: f64 = 100.0 * 64.0 / 4096.0;
/// BENCHMARKS.md's goal for metadata, in percent.
const GOAL_PERCENT: f64 = 0.5;
/// How long the resident size must stay unchanged before the aging machine is done (more than
/// two aging periods of 1 s: a block is released at the second scan that sees it free).
const AGING_SETTLE: Duration = Duration::from_millis(2500);
/// The longest wait for aging.
const AGING_MAX: Duration = Duration::from_secs(8);
const MIB: f64 = (1u64 << 20) as f64;

/// Runs the group; returns its markdown section.
pub fn run() -> String {
    let mut out = String::from(
        "## Memory\n\nNot timed; run once. See `crates/kmem-bench/src/memory.rs` for what each figure is.\n",
    );
    metadata(&mut out);
    match churn_machine(None) {
        Ok(m) => {
            slab_waste(&mut out, &m);
            resident_with_trim(&mut out, &m);
        }
        Err(e) => {
            let _ = writeln!(out, "\nkmem machine failed to boot: {e}");
        }
    }
    resident_with_aging(&mut out);
    system_churn(&mut out);
    out
}

/// The metadata table: one row per machine shape.
fn metadata(out: &mut String) {
    let host = kmem::sys::host_ram();
    let shapes: [(String, Profile, Option<u64>); 4] = [
        ("x86-64, 1 GiB (the benchmark machine)".to_owned(), Profile::X86_64, Some(1 << 30)),
        ("x86-64, 24 GiB".to_owned(), Profile::X86_64, Some(24 << 30)),
        (format!("x86-64, host-sized: the builder's default ({})", fmt_gib(host)), Profile::X86_64, None),
        ("i386, 1 GiB (HighMem above 896 MiB)".to_owned(), Profile::I386, Some(1 << 30)),
    ];
    let _ = write!(
        out,
        "\n### Metadata per managed page\n\n\
         The page array (a {page}-byte `Page` per frame, plus the pageblock bits), reserved at \
         boot from the top of the direct map; the kernel's `struct page` is 64 B per 4 KiB page \
         ({KERNEL_PERCENT:.2} %), the goal ≤ {GOAL_PERCENT} %. Slab descriptors are counted with the \
         slabs below.\n\n\
         | machine | managed pages | metadata pages | metadata B per managed page | % of managed memory | \
         ÷ kernel's 1.6 % | ≤ 0.5 %? |\n|---|---:|---:|---:|---:|---:|---|\n",
        page = size_of::<kmem::Page>(),
    );
    for (label, profile, bytes) in shapes {
        let mut b = Machine::builder().profile(profile).cpus(2).kswapd(false);
        if let Some(bytes) = bytes {
            b = b.mem_bytes(bytes);
        }
        match b.build() {
            Ok(m) => {
                let (meta, managed) = (m.reserved_pages(), m.total_managed());
                let per_page = bytes_per_page(meta, managed);
                let pct = m.metadata_percent();
                let _ = writeln!(
                    out,
                    "| {label} | {managed} | {meta} | {per_page:.2} | {pct:.3} % | {:.2}× | {} |",
                    pct / KERNEL_PERCENT,
                    if pct <= GOAL_PERCENT { "yes" } else { "no" },
                );
            }
            Err(e) => {
                let _ = writeln!(out, "| {label} | failed to build: {e} | | | | | |");
            }
        }
    }
}

/// The slab waste table: the geometry of each kmalloc class's cache on `m`.
fn slab_waste(out: &mut String, m: &Machine) {
    let desc = size_of::<kmem::slab::desc::Slab>();
    let _ = write!(
        out,
        "\n### Slab waste per kmalloc class\n\n\
         Each class's cache as `kmalloc(N, GFP_KERNEL)` finds it (`kmalloc_cache`), its geometry \
         read from the cache; waste = (slab bytes − objects × object size) ÷ slab bytes. The \
         descriptor (`struct slab`, {desc} B per slab, in separate pages) is not in the waste \
         column.\n\n\
         | class | cache | object size | stride | objects/slab | pages/slab | slab bytes | waste B/slab | \
         waste % | descriptor % of slab |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let slabinfo = m.slabinfo();
    let mut mismatches = Vec::new();
    let mut worst: Option<(usize, f64)> = None;
    for n in KMALLOC_CLASSES {
        let Some(cache) = m.kmalloc_cache(n, GFP_KERNEL) else {
            let _ = writeln!(out, "| k{n} | no cache | | | | | | | | |");
            continue;
        };
        let Some(c) = m.cache(cache) else { continue };
        let (objsize, stride, objs, pages) = (c.object_size(), c.size(), c.objects_per_slab(), 1usize << c.order());
        let slab_bytes = pages * PAGE_SIZE;
        let waste = waste_fraction(slab_bytes, objs, objsize);
        if worst.is_none_or(|(_, w)| waste > w) {
            worst = Some((n, waste));
        }
        let _ = writeln!(
            out,
            "| k{n} | `{name}` | {objsize} | {stride} | {objs} | {pages} | {slab_bytes} | {} | {:.2} % | {:.2} % |",
            slab_bytes - objs * objsize,
            100.0 * waste,
            100.0 * desc as f64 / slab_bytes as f64,
            name = c.name(),
        );
        // `/proc/slabinfo` prints the stride as `objsize`.
        let listed = slabinfo_geometry(&slabinfo, c.name());
        if listed != Some(SlabGeometry { objsize: stride, objperslab: objs, pagesperslab: pages }) {
            mismatches.push(format!("`{}` ({listed:?})", c.name()));
        }
    }
    out.push('\n');
    if mismatches.is_empty() {
        out.push_str("Every row agrees with its cache's `/proc/slabinfo` line (objsize, objperslab, pagesperslab).");
    } else {
        let _ = write!(out, "**Disagrees with `/proc/slabinfo`:** {}.", mismatches.join(", "));
    }
    if let Some((n, w)) = worst {
        let _ = write!(out, " Highest waste: k{n}, {:.2} %.", 100.0 * w);
    }
    out.push('\n');
}

/// The churn on `m` (no aging trim), then free, shrink, drain and `trim`, with a snapshot at
/// each step.
fn resident_with_trim(out: &mut String, m: &Machine) {
    let _ = write!(
        out,
        "\n### Resident memory after churn, freed, shrunk and trimmed\n\n\
         `churn` ({CHURN_LIVE} live objects of {lo}..={hi} bytes, fixed xorshift seed) through \
         `kmalloc`/`kfree`: the fill, then {CHURN_OPS} free+alloc operations, on a fresh 1 GiB, \
         2-CPU x86-64 machine without aging trim (`trim_after(None)`), every kmalloc class's \
         cache already made. **memfd resident** = the memfd's allocated blocks (`st_blocks` × 512, \
         `Machine::resident_bytes`): what the host backs for the machine, page array included. \
         Slab = meminfo's `Slab` (slabs, large kmalloc pages, cache and descriptor pages); free = \
         pages on the buddy lists. VmRSS, RssShmem (memfd pages mapped, of every machine in the \
         process) and RssAnon are the whole process's.\n\n",
        lo = CHURN_SIZES.0,
        hi = CHURN_SIZES.1,
    );
    let kmalloc = KmemKmalloc::new(m);
    let mut slots = Vec::with_capacity(CHURN_LIVE);
    let mut points = vec![Point::take("before the workload", m)];
    let ok = churn(&kmalloc, &mut slots);
    points.push(Point::take("peak: after the operations, objects live", m));
    let requested: usize = slots.iter().map(|&(_, size)| size).sum();
    objects::churn_free(&kmalloc, &mut slots);
    points.push(Point::take("after freeing every object", m));
    let (caches, drained) = shrink_everything(m);
    points.push(Point::take(&format!("after kmem_cache_shrink ({caches} caches) + drain_all_pages"), m));
    let released = m.trim();
    points.push(Point::take(&format!("after Machine::trim ({released} pages released)"), m));
    let pb_order = m.memmap().pageblock_order();
    let stranded = free_below(&m.buddyinfo(), pb_order);
    if !ok {
        out.push_str("**An allocation failed during the churn.**\n\n");
    }
    table(out, &points);
    let (before, peak, trimmed) = (points[0].memfd, points[1].memfd, points[4].memfd);
    let _ = writeln!(
        out,
        "\nAt the peak the live objects asked for {} (the sizes, summed); their slabs took {}. \
         {} of {} resident at the peak went back to the host ({:.1} %); {} more than before the \
         workload stays resident after trim. After shrinking, {} slab pages remain (cache \
         structures and slab descriptor pages); `drain_all_pages` moved {drained} pages. After \
         trim, {stranded} free pages ({}) lie in pageblocks that are partly in use \
         (buddyinfo, orders below {pb_order}): `trim` punches free blocks of at least a pageblock \
         (the kernel's `page_reporting_order`), so those of these pages that the workload \
         touched stay resident.",
        fmt_mib(requested as u64),
        fmt_mib((points[1].slab_pages * PAGE_SIZE) as u64),
        fmt_mib(peak.saturating_sub(trimmed)),
        fmt_mib(peak),
        100.0 * peak.saturating_sub(trimmed) as f64 / peak.max(1) as f64,
        fmt_mib(trimmed.saturating_sub(before)),
        points[3].slab_pages,
        fmt_mib((stranded * PAGE_SIZE) as u64),
    );
}

/// The same churn on a machine with the default aging (`trim_after` 1 s): free, shrink, drain,
/// then wait for kswapd to give the blocks back, without calling `trim`.
fn resident_with_aging(out: &mut String) {
    let m = match churn_machine(Some(Duration::from_secs(1))) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(out, "\nkmem machine with aging failed to boot: {e}");
            return;
        }
    };
    let _ = write!(
        out,
        "\n### The same, given back by kswapd's aging instead of `trim`\n\n\
         A second such machine with the builder's default `trim_after` of 1 s (kswapd punches a \
         free block of at least a pageblock at the second scan that finds it free); after the frees, shrink and \
         drain, no `trim`: the resident size is polled until it has not changed for {} s \
         (at most {} s).\n\n",
        AGING_SETTLE.as_secs_f64(),
        AGING_MAX.as_secs(),
    );
    let kmalloc = KmemKmalloc::new(&m);
    let mut slots = Vec::with_capacity(CHURN_LIVE);
    let mut points = vec![Point::take("before the workload", &m)];
    let ok = churn(&kmalloc, &mut slots);
    points.push(Point::take("peak: after the operations, objects live", &m));
    objects::churn_free(&kmalloc, &mut slots);
    shrink_everything(&m);
    points.push(Point::take("after free + kmem_cache_shrink + drain_all_pages", &m));
    let waited = wait_for_aging(&m);
    points.push(Point::take(&format!("after kswapd's aging: last change {:.1} s after the shrink", waited), &m));
    if !ok {
        out.push_str("**An allocation failed during the churn.**\n\n");
    }
    table(out, &points);
}

/// glibc malloc running the same churn: the process's `RssAnon` before, at the peak, after.
fn system_churn(out: &mut String) {
    let glibc = Global(std::alloc::System);
    let mut slots = Vec::with_capacity(CHURN_LIVE);
    let before = Status::read();
    let ok = churn(&glibc, &mut slots);
    let peak = Status::read();
    let requested: usize = slots.iter().map(|&(_, size)| size).sum();
    objects::churn_free(&glibc, &mut slots);
    let after = Status::read();
    let _ = write!(
        out,
        "\n### For scale: the system allocator (glibc malloc) on the same churn\n\n\
         Its memory is the process's anonymous memory, so the process's `RssAnon` is all there is \
         to read (anything else the process holds is in it; clean when the group runs alone). \
         `malloc_trim` is not called. The live objects at the peak are the same as above ({}).\n\n\
         | point | RssAnon | change from before |\n|---|---:|---:|\n",
        fmt_mib(requested as u64),
    );
    for (label, s) in [("before the workload", before), ("peak", peak), ("after freeing every object", after)] {
        let _ = writeln!(
            out,
            "| {label} | {} | {} |",
            opt_mib(s.anon),
            match (s.anon, before.anon) {
                (Some(a), Some(b)) => format!("{:+.1} MiB", (a as f64 - b as f64) / MIB),
                _ => "—".to_owned(),
            }
        );
    }
    if !ok {
        out.push_str("\n**An allocation failed during the churn.**\n");
    }
}

/// A fresh 1 GiB, 2-CPU x86-64 machine with the given aging period, every kmalloc class's cache
/// made (so the geometry table and the churn see the same caches).
fn churn_machine(trim_after: Option<Duration>) -> Result<Machine, String> {
    let m = Machine::builder()
        .profile(Profile::X86_64)
        .mem_bytes(CHURN_MACHINE_BYTES)
        .cpus(2)
        .trim_after(trim_after)
        .build()
        .map_err(|e| e.to_string())?;
    for n in KMALLOC_CLASSES {
        let _ = m.kmalloc_cache(n, GFP_KERNEL);
    }
    Ok(m)
}

/// The churn workload: the fill, then [`CHURN_OPS`] operations; the objects stay in `slots`.
/// `false` if an allocation failed.
fn churn<A: ObjAlloc>(a: &A, slots: &mut Vec<(A::Obj, usize)>) -> bool {
    let mut rng = XorShift::churn();
    objects::churn_fill(a, slots, &mut rng) && objects::churn_ops(a, slots, &mut rng, CHURN_OPS)
}

/// Shrinks every cache of `m` (flushing the per-CPU object arrays and freeing every empty slab),
/// then drains every per-CPU page list. Returns (caches shrunk, pages drained).
fn shrink_everything(m: &Machine) -> (usize, usize) {
    let mut caches = Vec::new();
    m.for_each_cache(|c| caches.push(c));
    for &c in &caches {
        m.kmem_cache_shrink(c);
    }
    (caches.len(), m.drain_all_pages())
}

/// Polls `m`'s resident size until it has not changed for [`AGING_SETTLE`] (or [`AGING_MAX`]
/// passed); returns when it last changed, from the start of the wait.
fn wait_for_aging(m: &Machine) -> f64 {
    let start = Instant::now();
    let (mut last, mut changed) = (m.resident_bytes(), start);
    while changed.elapsed() < AGING_SETTLE && start.elapsed() < AGING_MAX {
        std::thread::sleep(Duration::from_millis(50));
        let now = m.resident_bytes();
        if now != last {
            (last, changed) = (now, Instant::now());
        }
    }
    (changed - start).as_secs_f64()
}

/// One step of a churn run.
struct Point {
    label: String,
    memfd: u64,
    slab_pages: usize,
    free_pages: usize,
    status: Status,
}

impl Point {
    fn take(label: &str, m: &Machine) -> Self {
        let (reclaimable, unreclaimable) = m.slab_pages();
        Self {
            label: label.to_owned(),
            memfd: m.resident_bytes(),
            slab_pages: reclaimable + unreclaimable,
            free_pages: m.total_free(),
            status: Status::read(),
        }
    }
}

/// Renders the steps of a churn run.
fn table(out: &mut String, points: &[Point]) {
    out.push_str(
        "| point | memfd resident | slab | buddy free | VmRSS | RssShmem | RssAnon |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in points {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.label,
            fmt_mib(p.memfd),
            fmt_mib((p.slab_pages * PAGE_SIZE) as u64),
            fmt_mib((p.free_pages * PAGE_SIZE) as u64),
            opt_mib(p.status.rss),
            opt_mib(p.status.shmem),
            opt_mib(p.status.anon),
        );
    }
}

/// The process's resident set from `/proc/self/status`, in bytes.
#[derive(Clone, Copy, Debug)]
struct Status {
    rss: Option<u64>,
    shmem: Option<u64>,
    anon: Option<u64>,
}

impl Status {
    fn read() -> Self {
        let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self {
            rss: status_bytes(&text, "VmRSS"),
            shmem: status_bytes(&text, "RssShmem"),
            anon: status_bytes(&text, "RssAnon"),
        }
    }
}

/// A `/proc/<pid>/status` field given in kB (`VmRSS:\t  1234 kB`), in bytes.
fn status_bytes(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name != field {
            return None;
        }
        let kb = value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
        Some(kb * 1024)
    })
}

/// The geometry columns of one `/proc/slabinfo` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SlabGeometry {
    objsize: usize,
    objperslab: usize,
    pagesperslab: usize,
}

/// The geometry of the cache `name` in a `/proc/slabinfo` text (`name active num objsize
/// objperslab pagesperslab : …`).
fn slabinfo_geometry(text: &str, name: &str) -> Option<SlabGeometry> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.next()? != name {
            return None;
        }
        let nums: Vec<usize> = fields.take(5).map(str::parse).collect::<Result<_, _>>().ok()?;
        match nums.as_slice() {
            &[_active, _num, objsize, objperslab, pagesperslab] => {
                Some(SlabGeometry { objsize, objperslab, pagesperslab })
            }
            _ => None,
        }
    })
}

/// Free pages in blocks of order below `below`, summed over the zones of a `/proc/buddyinfo`
/// text (`Node 0, zone   DMA32   c0 c1 … c10`: free blocks of each order).
fn free_below(buddyinfo: &str, below: u32) -> usize {
    buddyinfo
        .lines()
        .filter_map(|line| line.split_once("zone"))
        .flat_map(|(_, rest)| {
            let counts = rest.split_whitespace().skip(1).map(|c| c.parse::<usize>().unwrap_or(0));
            counts.enumerate().filter(|&(order, _)| order < below as usize).map(|(o, n)| n << o)
        })
        .sum()
}

/// `(slab bytes − objects × object size) / slab bytes`, as a fraction. Panics if the objects do
/// not fit the slab (a geometry no allocator may report).
fn waste_fraction(slab_bytes: usize, objects: usize, object_size: usize) -> f64 {
    let used = objects.checked_mul(object_size).filter(|&u| u <= slab_bytes);
    let used = used.unwrap_or_else(|| panic!("{objects} objects of {object_size} B exceed a {slab_bytes}-byte slab"));
    (slab_bytes - used) as f64 / slab_bytes as f64
}

/// Metadata bytes per managed page: `metadata_pages` whole pages spread over `managed_pages`.
fn bytes_per_page(metadata_pages: usize, managed_pages: usize) -> f64 {
    (metadata_pages * PAGE_SIZE) as f64 / managed_pages.max(1) as f64
}

fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

fn opt_mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "—".to_owned(), fmt_mib)
}

fn fmt_gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (MIB * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waste_of_known_geometries() {
        // 42 objects of 96 B in one page leave 64 B.
        assert_eq!(waste_fraction(4096, 42, 96), 64.0 / 4096.0);
        assert_eq!(waste_fraction(4096, 512, 8), 0.0);
        // 21 objects of 192 B leave 64 B.
        assert!((waste_fraction(4096, 21, 192) - 0.015625).abs() < 1e-12);
        assert_eq!(waste_fraction(8192, 0, 8192), 1.0);
    }

    #[test]
    #[should_panic(expected = "exceed")]
    fn waste_refuses_objects_that_do_not_fit() {
        waste_fraction(4096, 43, 96);
    }

    #[test]
    fn metadata_bytes_per_page() {
        // 16 B per page: one metadata page per 256 managed pages.
        assert_eq!(bytes_per_page(1, 256), 16.0);
        assert_eq!(bytes_per_page(1024, 262_144 - 1024), 4096.0 * 1024.0 / 261_120.0);
    }

    #[test]
    fn slabinfo_lines_parse() {
        let text = "slabinfo - version: 2.1\n\
             # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables\n\
             kmalloc-96            42     84     96   42    1 : tunables    0    0    0 : slabdata      2      2      0\n\
             kmalloc-8192           0      0   8192    4    8 : tunables    0    0    0 : slabdata      0      0      0\n";
        assert_eq!(
            slabinfo_geometry(text, "kmalloc-96"),
            Some(SlabGeometry { objsize: 96, objperslab: 42, pagesperslab: 1 })
        );
        assert_eq!(
            slabinfo_geometry(text, "kmalloc-8192"),
            Some(SlabGeometry { objsize: 8192, objperslab: 4, pagesperslab: 8 })
        );
        assert_eq!(slabinfo_geometry(text, "kmalloc-9"), None);
        assert_eq!(slabinfo_geometry(text, "kmalloc"), None);
    }

    #[test]
    fn buddyinfo_free_pages_below_max_order() {
        let text = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      0      0      4 \n\
                    Node 0, zone    DMA32      8      9      4      2      1      1      2      2      2      2    249 \n";
        assert_eq!(kmem::MAX_PAGE_ORDER, 10);
        assert_eq!(free_below(text, 10), 8 + 18 + 16 + 16 + 16 + 32 + 128 + 256 + 512 + 1024);
        assert_eq!(free_below(text, 9), 8 + 18 + 16 + 16 + 16 + 32 + 128 + 256 + 512);
        assert_eq!(free_below("Node 0, zone Normal 1 0 0 0 0 0 0 0 0 0 7\n", 10), 1);
        assert_eq!(free_below("", 10), 0);
    }

    #[test]
    fn status_fields_in_bytes() {
        let text = "Name:\tkmem-bench\nVmRSS:\t   10240 kB\nRssAnon:\t    2048 kB\nRssShmem:\t       0 kB\n";
        assert_eq!(status_bytes(text, "VmRSS"), Some(10_240 * 1024));
        assert_eq!(status_bytes(text, "RssAnon"), Some(2048 * 1024));
        assert_eq!(status_bytes(text, "RssShmem"), Some(0));
        assert_eq!(status_bytes(text, "RssFile"), None);
        assert_eq!(status_bytes(text, "Vm"), None);
    }
}
