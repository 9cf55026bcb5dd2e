//! Behaviour tests of the page allocator, one or more per rule of SEMANTICS.md §1 (GFP-n), §2
//! (PA-n), §5 (VM-n), §6 (MP-n) and §7 (PROC-n), run against whole userspace machines (`kmem::Machine`).
//!
//! Every test builds its own small machine (32–64 MiB, or 1 GiB sparse when it needs HighMem),
//! so tests run in parallel without sharing logs or free lists. Tests that compare exact counts
//! build with `.pcp(false)` (every page goes through the buddy lists) or drain the per-CPU
//! lists first.

mod boost;
mod buckets;
mod cache_handles;
mod call_rcu;
mod create_args;
mod faults;
mod gfp;
mod highatomic;
mod kasan_semantics;
mod kfence_semantics;
mod kmalloc;
mod kmap;
mod kvmalloc;
mod live_objects;
mod machine;
mod mempool;
mod mempool_bulk;
mod mempool_kinds;
mod mempool_poison;
mod mempool_resize;
mod misuse;
mod mobility;
mod pages;
mod pages_bulk;
mod pages_fallback;
mod pages_giveup;
mod pages_init;
mod pages_misuse;
mod pcp;
mod pressure;
mod private;
mod proc;
mod rcu;
mod reclaim;
mod reports;
#[path = "../common/rng.rs"]
mod rng;
mod sheaf;
mod shim;
mod show_mem;
mod slab;
mod slab_debug;
mod slab_edges;
mod slab_init;
mod slab_pages;
mod slab_smoke;
mod slab_want_init;
mod vm_area;
mod vm_map_ram;
mod vmalloc;
mod vmalloc_huge;
mod vmalloc_limits;
mod vmalloc_reuse;
mod vread;

use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kmem::zone::ZoneType;
use kmem::{Builder, Gfp, MAX_PAGE_ORDER, Machine, Page, Profile};
use kmem_core::reclaim::{OomNotifier, RegistrationId, Shrinker};

/// Pages per MiB.
pub const MIB_PAGES: usize = 256;
/// First pfn above ZONE_DMA (16 MiB).
pub const DMA_END_PFN: usize = 16 * MIB_PAGES;
/// First pfn of ZONE_HIGHMEM on i386 (896 MiB).
pub const HIGHMEM_START_PFN: usize = 896 * MIB_PAGES;
/// `SeqCst`, for reading counters.
pub const SEQ: Ordering = Ordering::SeqCst;

/// A small machine without kswapd, with two CPU slots and a short OOM wait.
pub fn builder(profile: Profile, mib: u64) -> Builder {
    Machine::builder()
        .profile(profile)
        .mem_bytes(mib << 20)
        .cpus(2)
        .kswapd(false)
        .oom_timeout(Duration::from_millis(20))
}

/// An i386 machine of `mib` MiB with per-CPU lists.
pub fn i386(mib: u64) -> Machine {
    builder(Profile::I386, mib).build().expect("build i386 machine")
}

/// An i386 machine of `mib` MiB without per-CPU lists (exact buddy counts).
pub fn i386_nopcp(mib: u64) -> Machine {
    builder(Profile::I386, mib).pcp(false).build().expect("build i386 machine")
}

/// An x86_64 machine of `mib` MiB without per-CPU lists.
pub fn x86_64_nopcp(mib: u64) -> Machine {
    builder(Profile::X86_64, mib).pcp(false).build().expect("build x86_64 machine")
}

/// Runs the allocator's invariant checks (no other thread uses the machine).
pub fn check(m: &Machine) {
    // SAFETY: Each test owns its machine and uses it from one thread at a time.
    unsafe { m.check() }
}

/// `len` bytes at `p`, read through the machine's byte access.
pub fn read_obj(m: &Machine, p: std::ptr::NonNull<u8>, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    // SAFETY: Tests read bytes of their own allocations (red zones included), in allocated
    // pages of the test's machine, used by nothing else meanwhile.
    unsafe { m.read_bytes(p, &mut buf) }.expect("bytes in allocated pages");
    buf
}

/// Writes `data` at `p` through the machine's byte access.
pub fn write_obj(m: &Machine, p: std::ptr::NonNull<u8>, data: &[u8]) {
    // SAFETY: As in `read_obj`.
    unsafe { m.write_bytes(p, data) }.expect("bytes in allocated pages");
}

/// The pfn of an allocated page.
pub fn pfn(m: &Machine, page: &Page) -> usize {
    m.page_to_pfn(page).expect("page of this machine")
}

/// The zone a pfn belongs to.
pub fn zone_of(m: &Machine, pfn: usize) -> ZoneType {
    m.pfn_zone(pfn).expect("pfn inside memory").kind()
}

/// Pages on every CPU's per-CPU lists for a zone.
pub fn pcp_pages(m: &Machine, kind: ZoneType) -> usize {
    (0..m.nr_cpus()).map(|cpu| m.pcp_count(cpu, kind)).sum()
}

/// The counts of the `/proc/buddyinfo` row of zone `name`, parsed from the text.
pub fn buddyinfo_row(m: &Machine, name: &str) -> Vec<usize> {
    let text = m.buddyinfo();
    let prefix = format!("Node 0, zone {name:>8} ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name} row in\n{text}"));
    line[prefix.len()..].split_whitespace().map(|n| n.parse().expect("count")).collect()
}

/// Allocates blocks of decreasing order with `gfp` until nothing more can be had.
pub fn grab_all(m: &Machine, gfp: Gfp) -> Vec<(&Page, u32)> {
    let mut held = Vec::new();
    for order in (0..=MAX_PAGE_ORDER).rev() {
        while let Ok(page) = m.alloc_pages(gfp, order) {
            held.push((page, order));
        }
    }
    held
}

/// Frees what [`grab_all`] (or any list of blocks) holds.
pub fn free_all(m: &Machine, held: Vec<(&Page, u32)>) {
    for (page, order) in held {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, order) };
    }
}

/// Pages in a list of held blocks.
pub fn pages_in(held: &[(&Page, u32)]) -> usize {
    held.iter().map(|&(_, o)| 1usize << o).sum()
}

/// The log records' texts.
pub fn log_lines(m: &Machine) -> Vec<String> {
    m.log().records().into_iter().map(|r| r.text).collect()
}

/// A `/proc/meminfo` value in kB (`key` without the colon).
pub fn meminfo_kb(m: &Machine, key: &str) -> usize {
    let text = m.meminfo();
    let line =
        text.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap_or_else(|| panic!("no {key} in\n{text}"));
    line.split_whitespace().nth(1).expect("value").parse().expect("number")
}

/// How many log records contain `needle`.
pub fn count_log(m: &Machine, needle: &str) -> usize {
    m.log().records().iter().filter(|r| r.text.contains(needle)).count()
}

/// `int_sqrt` by bisection (independent of the library's).
pub fn isqrt(x: usize) -> usize {
    let (mut lo, mut hi) = (0usize, x.min(1 << 32) + 1);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if mid * mid <= x {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn is_high(kind: ZoneType) -> bool {
    matches!(kind, ZoneType::HighMem | ZoneType::Movable)
}

/// §2.3 default `min_free_kbytes` for the machine's lowmem.
pub fn expected_min_free_kbytes(m: &Machine) -> usize {
    let lowmem_kb: usize = m.zones().iter().filter(|z| !is_high(z.kind())).map(|z| z.managed() * 4).sum();
    isqrt(lowmem_kb * 16).clamp(128, 262_144)
}

/// §2.3 watermarks `[min, low, high, promo]` of every zone, by zone index.
pub fn expected_wmarks(m: &Machine, min_free_kbytes: usize, scale_factor: usize) -> [[usize; 4]; 5] {
    let pages_min = min_free_kbytes >> 2;
    let lowmem: usize = m.zones().iter().filter(|z| !is_high(z.kind())).map(|z| z.managed()).sum();
    let mut out = [[0; 4]; 5];
    for (i, z) in m.zones().iter().enumerate() {
        let managed = z.managed();
        if managed == 0 {
            continue;
        }
        let share = pages_min * managed / lowmem;
        let min = if is_high(z.kind()) { (managed / 1024).clamp(32, 128) } else { share };
        let delta = (share / 4).max(managed * scale_factor / 10_000);
        out[i] = [min, min + delta, min + 2 * delta, min + 3 * delta];
    }
    out
}

/// §2.2 `lowmem_reserve[i][j]` from the zones' managed pages and the default ratios.
pub fn expected_reserve(m: &Machine) -> [[usize; 5]; 5] {
    let ratio = [256, 256, 32, 0, 0];
    let managed: Vec<usize> = m.zones().iter().map(|z| z.managed()).collect();
    let mut out = [[0; 5]; 5];
    for i in 0..5 {
        for j in i + 1..5 {
            if ratio[i] != 0 && managed[i] != 0 {
                out[i][j] = managed[i + 1..=j].iter().sum::<usize>() / ratio[i];
            }
        }
    }
    out
}

/// Free blocks per order of `[start, end)` split into maximal naturally aligned blocks, as
/// memory is handed to the buddy allocator at boot (independent of the library's code).
pub fn expected_blocks(start: usize, end: usize) -> [usize; 11] {
    let mut out = [0; 11];
    let mut pfn = start;
    while pfn < end {
        let mut order = MAX_PAGE_ORDER as usize;
        while !pfn.is_multiple_of(1 << order) || pfn + (1 << order) > end {
            order -= 1;
        }
        out[order] += 1;
        pfn += 1 << order;
    }
    out
}

/// Pages the page array takes (16 bytes per page plus a byte per pageblock, whole pages).
pub fn expected_meta_pages(pages: usize, pageblock_order: u32) -> usize {
    (pages * 16 + pages.div_ceil(1 << pageblock_order)).div_ceil(4096)
}

/// Frees held blocks (by pfn) on `m`; returns the pages freed.
fn release(m: &Machine, held: &Mutex<Vec<(usize, u32)>>) -> usize {
    let blocks: Vec<(usize, u32)> = held.lock().unwrap().drain(..).collect();
    let mut freed = 0;
    for (pfn, order) in blocks {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(m.pfn_to_page(pfn).expect("held pfn"), order) };
        freed += 1 << order;
    }
    freed
}

/// A shrinker that records every call and can hand blocks back to the machine.
pub struct TestShrinker {
    machine: Machine,
    calls: AtomicUsize,
    gfps: Mutex<Vec<Gfp>>,
    held: Mutex<Vec<(usize, u32)>>,
    release_on: usize,
    claim_progress: bool,
}

impl TestShrinker {
    /// A recording shrinker; it frees `held` (pfn, order) from call number `release_on` on
    /// (1-based, 0 = never). With `claim_progress` it reports one object freed on calls that
    /// free nothing (a shrinker that claims progress).
    pub fn new(m: &Machine, held: Vec<(usize, u32)>, release_on: usize, claim_progress: bool) -> Box<Self> {
        Box::new(Self {
            machine: m.clone(),
            calls: AtomicUsize::new(0),
            gfps: Mutex::new(Vec::new()),
            held: Mutex::new(held),
            release_on,
            claim_progress,
        })
    }

    /// `scan_objects` calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(SEQ)
    }

    /// The gfp of each `scan_objects` call.
    pub fn gfps(&self) -> Vec<Gfp> {
        self.gfps.lock().unwrap().clone()
    }
}

impl Shrinker for TestShrinker {
    fn name(&self) -> &str {
        "rules-test"
    }

    fn count_objects(&self) -> usize {
        1
    }

    fn scan_objects(&self, _nr_to_scan: usize, gfp: Gfp) -> usize {
        let n = self.calls.fetch_add(1, SEQ) + 1;
        self.gfps.lock().unwrap().push(gfp);
        if self.release_on != 0 && n >= self.release_on {
            let freed = release(&self.machine, &self.held);
            if freed > 0 {
                return freed;
            }
        }
        usize::from(self.claim_progress)
    }
}

/// A registered [`TestShrinker`]; unregistered on drop, before the shrinker is freed.
pub struct Registered {
    machine: Machine,
    id: RegistrationId,
    /// The shrinker.
    pub shrinker: Box<TestShrinker>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.machine.unregister_shrinker(self.id);
    }
}

/// Registers `shrinker` with `m`.
pub fn register(m: &Machine, shrinker: Box<TestShrinker>) -> Registered {
    let ptr: NonNull<dyn Shrinker> = NonNull::from(&*shrinker);
    // SAFETY: The box lives in `Registered`, which unregisters it before dropping it; the
    // shrinker never registers or unregisters from its callbacks.
    let id = unsafe { m.register_shrinker(ptr) }.expect("a free shrinker slot");
    Registered { machine: m.clone(), id, shrinker }
}

/// An OOM notifier that frees held blocks when called.
pub struct TestOomNotifier {
    machine: Machine,
    calls: AtomicUsize,
    held: Mutex<Vec<(usize, u32)>>,
}

impl TestOomNotifier {
    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(SEQ)
    }
}

impl OomNotifier for TestOomNotifier {
    fn out_of_memory(&self) -> usize {
        self.calls.fetch_add(1, SEQ);
        release(&self.machine, &self.held)
    }
}

/// A registered [`TestOomNotifier`]; unregistered on drop.
pub struct RegisteredOom {
    machine: Machine,
    id: RegistrationId,
    /// The notifier.
    pub notifier: Box<TestOomNotifier>,
}

impl Drop for RegisteredOom {
    fn drop(&mut self) {
        self.machine.unregister_oom_notifier(self.id);
    }
}

/// Registers an OOM notifier that frees `held` when called.
pub fn register_oom(m: &Machine, held: Vec<(usize, u32)>) -> RegisteredOom {
    let notifier = Box::new(TestOomNotifier { machine: m.clone(), calls: AtomicUsize::new(0), held: Mutex::new(held) });
    let ptr: NonNull<dyn OomNotifier> = NonNull::from(&*notifier);
    // SAFETY: As in `register`.
    let id = unsafe { m.register_oom_notifier(ptr) }.expect("a free notifier slot");
    RegisteredOom { machine: m.clone(), id, notifier }
}

/// Takes one held block of `order` out of `held`, as (pfn, order), to give it to a shrinker
/// or notifier.
pub fn take_block(m: &Machine, held: &mut Vec<(&Page, u32)>, order: u32) -> (usize, u32) {
    let i = held.iter().position(|&(_, o)| o == order).expect("a held block of that order");
    let (page, o) = held.swap_remove(i);
    (pfn(m, page), o)
}

/// Exhausts lowmem of `m` (every page, reserves included) and returns the blocks.
pub fn exhaust(m: &Machine) -> Vec<(&Page, u32)> {
    use kmem::gfp::{__GFP_MEMALLOC, __GFP_NORETRY, __GFP_NOWARN, GFP_KERNEL};
    let held = grab_all(m, GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN);
    let lowmem_free: usize = m.zones().iter().filter(|z| !is_high(z.kind())).map(|z| z.free_pages()).sum();
    assert_eq!(lowmem_free, 0, "lowmem exhausted");
    held
}
