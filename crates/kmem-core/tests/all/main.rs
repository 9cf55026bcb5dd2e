//! kmem-core embedded the way a `no_std` user would: the caller hands the allocator a memory
//! region it owns (here a heap buffer standing in for RAM given by a bootloader), and writes a
//! small `Platform`: one CPU, a log into a buffer, a tick counter for a clock, no sleeping.
//! Nothing from the `kmem` crate is used.

use core::fmt::Write as _;
use core::ptr::NonNull;
use std::alloc::{Layout as HeapLayout, alloc_zeroed, dealloc};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use kmem_core::gfp::{__GFP_DMA, __GFP_MOVABLE, __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem_core::page_alloc::{Config, Layout};
use kmem_core::platform::{Level, Platform};
use kmem_core::waitq::WaitWord;
use kmem_core::zone::{MAX_NR_ZONES, ZoneType};
use kmem_core::{PAGE_SIZE, PageAllocator, proc};

mod alloc_api;
mod config;
mod cpu_dead;
mod highatomic;
mod layouts;
mod meminit;
mod rcu_barrier;
mod slab_track;
mod sysctl_race;
mod trim;
mod usable_size;
mod vmalloc;

/// Memory the "bootloader" gives us: aligned to 4 MiB, zero-filled, owned by the test.
struct Region {
    ptr: NonNull<u8>,
    layout: HeapLayout,
}

impl Region {
    fn new(bytes: usize) -> Self {
        // Aligned as a direct map must be (`page_alloc::direct_map_alignment`): 4 MiB.
        let layout = HeapLayout::from_size_align(bytes, 4 << 20).unwrap();
        // SAFETY: Non-zero size with a valid alignment.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("region");
        Self { ptr, layout }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: Allocated in `new` with this layout; the allocator using it is dropped first.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A one-CPU board: the only CPU slot is used by one thread at a time (the test thread).
struct Board {
    log: Mutex<String>,
    ticks: AtomicU64,
    /// How far each reading of the clock moves it (1 ms; 0 for a clock a test sets).
    tick_ns: AtomicU64,
    single_cpu: bool,
}

thread_local! {
    static ON_BOARD_CPU: Cell<bool> = const { Cell::new(false) };
    /// The board's "interrupt handler is running" state (for vmalloc's deferred free).
    static IN_ATOMIC: Cell<bool> = const { Cell::new(false) };
    /// Run once by the next `fast_cpu` on this thread: another thread's work at the moment the
    /// caller asks for its CPU slot (a deterministic interleaving).
    static FAST_CPU_HOOK: std::cell::RefCell<Option<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(None) };
}

// SAFETY: `cpu` returns `Some(0)` only on the one thread that set `ON_BOARD_CPU`, so slot 0 is
// never used by two contexts at once.
unsafe impl Platform for Board {
    fn nr_cpus(&self) -> usize {
        1
    }
    fn cpu(&self) -> Option<usize> {
        (self.single_cpu && ON_BOARD_CPU.with(Cell::get)).then_some(0)
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        let _ = writeln!(self.log.lock().unwrap(), "<{}>{args}", level as u8);
    }
    fn now_ns(&self) -> u64 {
        self.ticks.fetch_add(self.tick_ns.load(Relaxed), Relaxed)
    }
    fn wait(&self, _word: &WaitWord, _expected: u32, _timeout_ns: u64) {}
    fn wake_all(&self, _word: &WaitWord) {}
    fn in_atomic(&self) -> bool {
        IN_ATOMIC.with(Cell::get)
    }
    fn fast_cpu(&self) -> Option<usize> {
        if let Some(hook) = FAST_CPU_HOOK.with(|h| h.borrow_mut().take()) {
            hook();
        }
        if self.in_atomic() { None } else { self.cpu() }
    }
}

/// The region as one directly mapped range with the given zones.
fn layout(region: &Region, zones: [Option<(usize, usize)>; MAX_NR_ZONES]) -> Layout {
    let pages = region.layout.size() / PAGE_SIZE;
    Layout {
        start_pfn: 0,
        end_pfn: pages,
        zones,
        direct_map: region.ptr,
        direct_map_end_pfn: pages,
        pageblock_order: 9,
        zeroed: true,
    }
}

/// [`layout`] with one Normal zone over the whole region.
fn normal_only(region: &Region) -> Layout {
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Normal as usize] = Some((0, region.layout.size() / PAGE_SIZE));
    layout(region, zones)
}

/// [`layout`] of a small i386-like board: DMA below pfn 4096, Normal to 6144 (the end of the
/// direct map), HighMem above.
fn highmem_layout(region: &Region) -> Layout {
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Dma as usize] = Some((0, 4096));
    zones[ZoneType::Normal as usize] = Some((4096, 6144));
    zones[ZoneType::HighMem as usize] = Some((6144, region.layout.size() / PAGE_SIZE));
    Layout { direct_map_end_pfn: 6144, ..layout(region, zones) }
}

fn board(single_cpu: bool) -> Board {
    Board { log: Mutex::new(String::new()), ticks: AtomicU64::new(0), tick_ns: AtomicU64::new(1_000_000), single_cpu }
}

/// A 32 MiB board with DMA [0, 16 MiB) and Normal above, all directly mapped.
fn boot(region: &Region, single_cpu: bool) -> PageAllocator<Board> {
    ON_BOARD_CPU.with(|c| c.set(true));
    let pages = region.layout.size() / PAGE_SIZE;
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Dma as usize] = Some((0, 4096));
    zones[ZoneType::Normal as usize] = Some((4096, pages));
    let (layout, board) = (layout(region, zones), board(single_cpu));
    let config = Config { oom_timeout_ns: 0, ..Config::default() };
    // SAFETY: The region is ours, zeroed, `pages` pages long, and outlives the allocator.
    unsafe { PageAllocator::new(board, layout, config) }.expect("boot")
}

fn buddyinfo(pa: &PageAllocator<Board>) -> String {
    let mut s = String::new();
    proc::buddyinfo(pa, &mut s).unwrap();
    s
}

#[test]
fn caller_provided_region_serves_every_zone_and_recovers() {
    let region = Region::new(32 << 20);
    let pa = boot(&region, true);
    let initial = buddyinfo(&pa);
    assert!(initial.starts_with("Node 0, zone      DMA "), "{initial}");
    assert!(initial.contains("zone   Normal "), "{initial}");
    // Addresses are inside the caller's region; DMA requests stay below 16 MiB.
    let base = region.ptr.as_ptr() as usize;
    let page = pa.alloc_pages(GFP_KERNEL, 3).unwrap();
    let addr = pa.page_address(page).unwrap().as_ptr() as usize;
    assert!(addr >= base && addr + (8 << 12) <= base + (32 << 20));
    assert_eq!((addr - base) % (8 << 12), 0, "PA-3: naturally aligned");
    let dma = pa.alloc_pages(GFP_KERNEL | __GFP_DMA, 0).unwrap();
    assert!(pa.page_to_pfn(dma).unwrap() < 4096);
    // __GFP_ZERO zeroes through the caller's mapping.
    let z = pa.get_zeroed_page(GFP_KERNEL).unwrap();
    // SAFETY: `z` is a page we own in the region.
    assert!(unsafe { core::slice::from_raw_parts(z.as_ptr(), PAGE_SIZE) }.iter().all(|&b| b == 0));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { pa.free_pages_addr(z.as_ptr(), 0) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { pa.free_pages(dma, 0) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { pa.free_pages(page, 3) };
    pa.drain_local_pages();
    assert_eq!(buddyinfo(&pa), initial);
    // SAFETY: Single-threaded test; no CPU slot in use.
    unsafe { pa.check() };
}

#[test]
fn exhaustion_without_sleeping_platform_fails_cleanly_and_recovers() {
    let region = Region::new(32 << 20);
    let pa = boot(&region, false);
    let initial = buddyinfo(&pa);
    let mut held = Vec::new();
    while let Ok(p) = pa.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0) {
        held.push(p);
    }
    assert!(held.len() > 7000, "got {} pages of ~8 000", held.len());
    // A sleeping request on a board that cannot sleep: reclaim finds nothing, the OOM report is
    // logged and, with a zero OOM timeout, the request fails instead of hanging.
    assert!(pa.alloc_pages(GFP_KERNEL, 0).is_err());
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(log.contains("invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0"), "{log}");
    assert!(log.contains("page allocation failure: order:0, mode:0xcc0(GFP_KERNEL)"), "{log}");
    for p in held {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { pa.free_pages(p, 0) };
    }
    assert_eq!(buddyinfo(&pa), initial, "nothing leaked");
    // SAFETY: Single-threaded test; no CPU slot in use.
    unsafe { pa.check() };
}

#[test]
fn a_bad_layout_is_rejected() {
    let region = Region::new(32 << 20);
    let pages = region.layout.size() / PAGE_SIZE;
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Normal as usize] = Some((16, pages));
    // SAFETY: As in `boot`; the layout is rejected before any memory is touched.
    let err = unsafe { PageAllocator::new(board(false), layout(&region, zones), Config::default()) }.err().unwrap();
    assert_eq!(err.0, "zones must be ascending, contiguous and cover the memory range");
}

/// PA-6 across zones, with a layout only a caller-provided region can have (the `kmem` machine's
/// zone boundaries, 16 MiB, 896 MiB and 4 GiB, are all multiples of a max-order block): DMA ends
/// at pfn 4092, aligned to order 2 but not to order 3. The last order-2 block of DMA (4088) and
/// the first of Normal (4092) are buddies of the same order; freed, they must stay apart.
#[test]
fn pa6_buddies_straddling_an_unaligned_zone_boundary_do_not_merge() {
    const BOUNDARY: usize = 4092;
    let region = Region::new(32 << 20);
    let pages = region.layout.size() / PAGE_SIZE;
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Dma as usize] = Some((0, BOUNDARY));
    zones[ZoneType::Normal as usize] = Some((BOUNDARY, pages));
    // Without per-CPU lists every free goes straight to `__free_one_page`.
    let config = Config { oom_timeout_ns: 0, pcp: false, ..Config::default() };
    // SAFETY: As in `boot`.
    let pa = unsafe { PageAllocator::new(board(false), layout(&region, zones), config) }.expect("boot");
    let (dma, normal) = (pa.zone(ZoneType::Dma), pa.zone(ZoneType::Normal));
    let initial = (dma.free_blocks_per_order(), normal.free_blocks_per_order());
    // DMA's only order-2 block, and the first on Normal's order-2 list (the boot frees went to
    // the tails in ascending order), are what movable order-2 requests get (every pageblock
    // starts movable, so nothing is stolen).
    assert_eq!(initial.0[2], 1);
    let movable = GFP_KERNEL | __GFP_MOVABLE;
    for dma_first in [true, false] {
        let low = pa.alloc_pages(movable | __GFP_DMA, 2).unwrap();
        let high = pa.alloc_pages(movable, 2).unwrap();
        assert_eq!((pa.page_to_pfn(low), pa.page_to_pfn(high)), (Some(BOUNDARY - 4), Some(BOUNDARY)));
        let [first, second] = if dma_first { [low, high] } else { [high, low] };
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { pa.free_pages(first, 2) };
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { pa.free_pages(second, 2) };
        let now = (dma.free_blocks_per_order(), normal.free_blocks_per_order());
        assert_eq!(now, initial, "dma_first {dma_first}: no order-3 block made of both zones");
        assert_eq!(buddy_order(&pa, BOUNDARY - 4), Some(2));
        assert_eq!(buddy_order(&pa, BOUNDARY), Some(2));
        // SAFETY: Single-threaded test; no CPU slot in use.
        unsafe { pa.check() };
    }
}

/// The order of the free block headed by `pfn`, if it heads one.
fn buddy_order(pa: &PageAllocator<Board>, pfn: usize) -> Option<u32> {
    let page = pa.pfn_to_page(pfn)?;
    page.is_buddy().then(|| page.order())
}

/// PA-16's rate limit on the board's clock, which the test moves: 60 bad-page reports, then
/// quiet until a minute has passed since the first; the first report after that is preceded
/// by the count of those suppressed, and a new burst of 60 begins.
#[test]
fn pa16_bad_page_reports_60_per_minute_then_the_suppressed_count() {
    const REPORT: &str = "BUG: Bad page state in process swapper/0  pfn:";
    let region = Region::new(32 << 20);
    let pa = boot(&region, false);
    let bad_free = || {
        let page = pa.alloc_pages(GFP_KERNEL, 0).unwrap();
        // SAFETY: Our page, freed next.
        assert!(unsafe { page.set_mapcount(1) });
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { pa.free_pages(page, 0) };
    };
    let log = || pa.platform().log.lock().unwrap().clone();
    let reports = |log: &str| log.lines().filter(|l| l.contains(REPORT)).count();
    for _ in 0..70 {
        bad_free();
    }
    let first = log();
    assert_eq!(reports(&first), 60, "the 61st to 70th are suppressed");
    assert!(!first.contains("messages suppressed"), "not announced before the minute is over");
    // The board's clock advances 1 ms per reading; the 70 frees took far less than a minute.
    pa.platform().ticks.fetch_add(60_000_000_000, Relaxed);
    bad_free();
    let second = log();
    let after: Vec<&str> = second[first.len()..].lines().collect();
    assert_eq!(after[0], "<1>BUG: Bad page state: 10 messages suppressed", "{after:?}");
    assert!(after[1].starts_with(&format!("<1>{REPORT}")), "then the report itself: {after:?}");
    // A new window: 59 more are printed, the next one is not.
    for _ in 0..60 {
        bad_free();
    }
    assert_eq!(reports(&log()), 120);
    assert_eq!(pa.stats().bad_pages.load(Relaxed), 131, "every bad page is counted, printed or not");
}

#[test]
fn boosting_is_off_unless_the_board_asks_for_it() {
    // Only `kswapd_balance` takes a boost back, so the core's default factor is 0 (Linux's is
    // 15000): a board whose `wake_kswapd` runs it sets the factor in its `Config`.
    let region = Region::new(32 << 20);
    assert_eq!(boot(&region, true).watermark_boost_factor(), 0);
    let pages = region.layout.size() / PAGE_SIZE;
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Normal as usize] = Some((0, pages));
    let config =
        Config { watermark_boost_factor: kmem_core::boost::DEFAULT_WATERMARK_BOOST_FACTOR, ..Config::default() };
    // SAFETY: As in `boot` (the first allocator is gone).
    let pa = unsafe { PageAllocator::new(board(true), layout(&region, zones), config) }.expect("boot");
    assert_eq!(pa.watermark_boost_factor(), 15_000);
    assert!(pa.set_watermark_boost_factor(1 << 31).is_err(), "above the sysctl's int");
    assert_eq!(pa.watermark_boost_factor(), 15_000, "unchanged");
    let normal = pa.zone(ZoneType::Normal);
    assert_eq!(
        (normal.watermark_boost(), normal.wmark(kmem_core::zone::Wmark::High)),
        (0, normal.wmark_base(kmem_core::zone::Wmark::High))
    );
}
