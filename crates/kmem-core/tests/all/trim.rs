//! Giving free memory back to the host (`trim`, `trim_aged`) the way the kernel's free page
//! reporting does: a small batch of free blocks is taken off the free lists under the zone
//! lock, the lock is dropped while the platform discards them, and they come back marked
//! `PG_TRIMMED`. The platform here is the observable: its `discard` runs while a batch is out,
//! and a hook in it lets another thread allocate from the same zone, check the free lists and
//! read buddyinfo before the punch returns. No test asserts a duration; the handshake waits
//! against a generous deadline only to turn a deadlock into a failure.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmem_core::gfp::{__GFP_MEMALLOC, __GFP_NOFAIL, __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem_core::page_alloc::Config;
use kmem_core::platform::{Level, Platform};
use kmem_core::waitq::WaitWord;
use kmem_core::zone::{MAX_NR_ZONES, Wmark, ZoneType};
use kmem_core::{MAX_PAGE_ORDER, PAGE_SIZE, PageAllocator, proc};

use super::Region;

/// How long the punching thread waits for the other thread's answer before it calls the
/// allocator stuck (a deadlock detector, not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) type Hook = Box<dyn FnMut(usize, usize) + Send>;

/// A host: one zone over a heap region, no CPU slots (every request takes the zone lock), and
/// a `discard` that zero-fills what is not zero yet (untouched heap pages read as zero without
/// becoming resident) and then runs the test's hook. `cpu` runs a hook a test arms once (the
/// high-atomic tests' deterministic interleaving: a free asks for its CPU between reading its
/// pageblock's type and taking the zone lock), and `rcu_batch_enter` the RCU barrier tests',
/// and counts the thread's batches as the `kmem` crate's platform does.
pub(crate) struct Host {
    base: usize,
    len: usize,
    pub(crate) hook: Mutex<Option<Hook>>,
    pub(crate) on_cpu: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Hooks run one per `rcu_batch_enter`, in order (the RCU barrier test's interleaving: a
    /// grace period has taken the pending lists and not yet dealt with them).
    pub(crate) on_batch: Mutex<std::collections::VecDeque<Box<dyn FnOnce() + Send>>>,
    /// `discard` answers false (a host that cannot take memory back).
    refuse: AtomicBool,
    discards: AtomicUsize,
    ticks: AtomicU64,
}

thread_local! {
    /// Grace-period batches the thread is inside ([`Platform::rcu_batches_held`]); one machine
    /// per thread in these tests, so no machine id is needed.
    static BATCHES_HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: `cpu` is always `None`, so no CPU slot is ever used.
unsafe impl Platform for Host {
    fn nr_cpus(&self) -> usize {
        1
    }
    fn cpu(&self) -> Option<usize> {
        let hook = self.on_cpu.lock().unwrap().take();
        if let Some(f) = hook {
            f();
        }
        None
    }
    fn log(&self, _level: Level, _args: core::fmt::Arguments<'_>) {}
    fn rcu_batch_enter(&self) {
        BATCHES_HELD.with(|n| n.set(n.get() + 1));
        let hook = self.on_batch.lock().unwrap().pop_front();
        if let Some(f) = hook {
            f();
        }
    }
    fn rcu_batch_exit(&self) {
        BATCHES_HELD.with(|n| n.set(n.get() - 1));
    }
    fn rcu_batches_held(&self) -> usize {
        BATCHES_HELD.with(std::cell::Cell::get)
    }
    fn now_ns(&self) -> u64 {
        self.ticks.fetch_add(1_000_000, Relaxed)
    }
    fn wait(&self, _word: &WaitWord, _expected: u32, _timeout_ns: u64) {
        std::thread::yield_now();
    }
    fn wake_all(&self, _word: &WaitWord) {}
    unsafe fn discard(&self, pfn: usize, nr: usize) -> bool {
        if self.refuse.load(Relaxed) {
            return false;
        }
        assert!((pfn + nr) * PAGE_SIZE <= self.len, "discard outside the region");
        // SAFETY: Inside the region (checked); the caller owns these free pages.
        let bytes = unsafe { std::slice::from_raw_parts_mut((self.base + pfn * PAGE_SIZE) as *mut u8, nr * PAGE_SIZE) };
        if bytes.iter().any(|&b| b != 0) {
            bytes.fill(0);
        }
        self.discards.fetch_add(1, Relaxed);
        let mut hook = self.hook.lock().unwrap();
        if let Some(f) = hook.as_mut() {
            f(pfn, nr);
        }
        true
    }
}

/// 136 MiB: one Normal zone of 34 max-order blocks (the page array takes part of the last).
const REGION: usize = 136 << 20;

fn host_boot(region: &Region) -> PageAllocator<Host> {
    boot_host(region, crate::normal_only(region))
}

/// A [`Host`] over `region` with `layout`.
pub(crate) fn boot_host(region: &Region, layout: kmem_core::page_alloc::Layout) -> PageAllocator<Host> {
    let host = Host {
        base: region.ptr.as_ptr() as usize,
        len: region.layout.size(),
        hook: Mutex::new(None),
        on_cpu: Mutex::new(None),
        on_batch: Mutex::new(std::collections::VecDeque::new()),
        refuse: AtomicBool::new(false),
        discards: AtomicUsize::new(0),
        ticks: AtomicU64::new(0),
    };
    let config = Config { oom_timeout_ns: 0, ..Config::default() };
    // SAFETY: The region is ours, zeroed, as long as the layout says, and outlives the allocator;
    // pages above the layout's direct-map end (HighMem) are never touched through it.
    unsafe { PageAllocator::new(host, layout, config) }.expect("boot")
}

fn buddyinfo(pa: &PageAllocator<Host>) -> String {
    let mut s = String::new();
    proc::buddyinfo(pa, &mut s).unwrap();
    s
}

/// Every max-order block allocated and freed again: fresh memory counts as released already,
/// a block handed out and freed does not. Returns how many there were.
fn dirty_all(pa: &PageAllocator<Host>) -> usize {
    let mut held = Vec::new();
    while let Ok(p) = pa.alloc_pages(GFP_KERNEL | __GFP_NOWARN, MAX_PAGE_ORDER) {
        // A byte in each block, so the discard has something to clear.
        // SAFETY: The test's own block, in the direct map.
        unsafe { pa.page_address(p).unwrap().as_ptr().write(0x5a) };
        held.push(p);
    }
    let n = held.len();
    for p in held {
        // SAFETY: The test's own block, unused afterwards.
        unsafe { pa.free_pages(p, MAX_PAGE_ORDER) };
    }
    n
}

/// The free pages buddyinfo shows.
fn buddyinfo_pages(text: &str) -> usize {
    text.lines()
        .flat_map(|l| l.split_whitespace().skip(4).enumerate())
        .map(|(order, n)| n.parse::<usize>().unwrap() << order)
        .sum()
}

/// While `trim` punches a batch, another thread allocates from the same zone, checks the free
/// lists and reads buddyinfo — all need the zone lock, so all would wait for the whole trim if
/// it were held across the punch. The punching thread waits for them before it goes on.
fn lock_is_dropped_while_punching(aged: bool) {
    let region = Region::new(REGION);
    let pa = host_boot(&region);
    let blocks = dirty_all(&pa);
    assert!(blocks > 32, "{blocks} max-order blocks");
    let initial = buddyinfo(&pa);
    if aged {
        assert_eq!(pa.trim_aged(), 0, "the first aging scan only marks");
    }
    let (to_main, punching) = mpsc::channel::<usize>();
    let (to_punch, answered) = mpsc::channel::<()>();
    let answered = Mutex::new(answered);
    let stuck = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    {
        let (stuck, calls) = (stuck.clone(), calls.clone());
        *pa.platform().hook.lock().unwrap() = Some(Box::new(move |_pfn, _nr| {
            // Only the first punch of the first two batches asks (32 blocks per batch).
            let n = calls.fetch_add(1, Relaxed);
            if n == 0 || n == 32 {
                to_main.send(n).unwrap();
                if answered.lock().unwrap().recv_timeout(DEADLINE).is_err() {
                    stuck.store(true, Relaxed);
                }
            }
        }));
    }
    let released = std::thread::scope(|s| {
        let trimmer = s.spawn(|| {
            let released = if aged { pa.trim_aged() } else { pa.trim() };
            // Drops the hook's sender: the loop below ends if there was no second batch.
            *pa.platform().hook.lock().unwrap() = None;
            released
        });
        for _ in 0..2 {
            let Ok(n) = punching.recv() else { break };
            let zone = pa.zone(ZoneType::Normal);
            assert!(
                zone.free_pages() > zone.wmark(Wmark::High),
                "punch {n}: a batch keeps the zone above its high mark"
            );
            // The same zone, while the punch is in progress.
            let p = pa.alloc_pages(GFP_KERNEL, 4).expect("order-4 GFP_KERNEL while a batch is out");
            assert!(!stuck.load(Relaxed), "the order-4 allocation waited for the whole trim: the zone lock was held");
            let q = pa.alloc_pages(GFP_ATOMIC, 0).expect("order-0 GFP_ATOMIC while a batch is out");
            // SAFETY: No context uses a CPU slot (the host has none).
            unsafe { pa.check() };
            let shown = buddyinfo_pages(&buddyinfo(&pa));
            assert_eq!(shown, pa.total_free(), "punch {n}: buddyinfo and NR_FREE_PAGES agree");
            let out = if n == 0 { 32 } else { 1 };
            assert!(
                shown + (out << MAX_PAGE_ORDER) <= buddyinfo_pages(&initial),
                "punch {n}: the isolated batch is not counted free ({shown} pages shown)"
            );
            // SAFETY: The test's own pages, unused afterwards.
            unsafe { pa.free_pages(q, 0) };
            // SAFETY: As above.
            unsafe { pa.free_pages(p, 4) };
            to_punch.send(()).unwrap();
        }
        trimmer.join().unwrap()
    });
    assert!(!stuck.load(Relaxed), "an allocation on the zone waited for the whole trim: the zone lock was held");
    assert!(calls.load(Relaxed) >= 32, "a full batch punched ({} blocks)", calls.load(Relaxed));
    // The aging scan does not release the block the allocations above split (merged again, it
    // is a new free block to age); `trim` releases every block but the last, which would take
    // the zone to its high watermark.
    let expect = if aged { 32 } else { blocks - 1 };
    assert!(released >= expect << MAX_PAGE_ORDER, "released {released} pages of {blocks} blocks");
    let batches = pa.stats().trim_batches.load(Relaxed);
    assert!(batches >= released.div_ceil(32 << MAX_PAGE_ORDER), "{batches} batches for {released} pages");
    // SAFETY: Single-threaded again; no CPU slot in use.
    unsafe { pa.check() };
    assert_eq!(buddyinfo(&pa), initial, "every block came back, merged as before");
}

#[test]
fn trim_drops_the_zone_lock_while_it_punches() {
    lock_is_dropped_while_punching(false);
}

#[test]
fn trim_aged_drops_the_zone_lock_while_it_punches() {
    lock_is_dropped_while_punching(true);
}

/// A released block reads as zero afterwards, and `trim` does not release it again.
#[test]
fn a_released_block_reads_as_zero_and_is_not_released_twice() {
    let region = Region::new(REGION);
    let pa = host_boot(&region);
    let blocks = dirty_all(&pa);
    let released = pa.trim();
    assert!(released >= (blocks - 1) << MAX_PAGE_ORDER);
    assert_eq!(pa.trim(), 0, "nothing left to release");
    let mut held = Vec::new();
    while let Ok(p) = pa.alloc_pages(GFP_KERNEL | __GFP_NOWARN, MAX_PAGE_ORDER) {
        held.push(p);
    }
    let zeroed = held
        .iter()
        .filter(|&&p| {
            // SAFETY: The test's own block, in the direct map.
            let bytes = unsafe {
                std::slice::from_raw_parts(pa.page_address(p).unwrap().as_ptr(), PAGE_SIZE << MAX_PAGE_ORDER)
            };
            bytes.iter().all(|&b| b == 0)
        })
        .count();
    assert!(zeroed + 1 >= blocks, "{zeroed} of {blocks} blocks read as zero");
    for p in held {
        // SAFETY: The test's own block, unused afterwards.
        unsafe { pa.free_pages(p, MAX_PAGE_ORDER) };
    }
    // SAFETY: Single-threaded; no CPU slot in use.
    unsafe { pa.check() };
}

/// A host that cannot take memory back: the first batch comes back unmarked, the walk ends,
/// nothing is lost.
#[test]
fn a_refused_discard_puts_the_batch_back_unmarked() {
    let region = Region::new(REGION);
    let pa = host_boot(&region);
    dirty_all(&pa);
    let initial = buddyinfo(&pa);
    pa.platform().refuse.store(true, Relaxed);
    assert_eq!(pa.trim(), 0);
    assert_eq!(pa.stats().trim_batches.load(Relaxed), 1, "the walk ends at the first refusal");
    assert_eq!(buddyinfo(&pa), initial);
    // SAFETY: Single-threaded; no CPU slot in use.
    unsafe { pa.check() };
    pa.platform().refuse.store(false, Relaxed);
    assert!(pa.trim() > 0, "the blocks were put back untrimmed");
}

/// A `__GFP_NOFAIL` request that finds nothing while a batch is out (everything else taken)
/// gets memory once the batch is back: the put-back is a free for the slow path.
#[test]
fn a_nofail_request_succeeds_once_the_batch_is_back() {
    let region = Region::new(REGION);
    let pa = host_boot(&region);
    dirty_all(&pa);
    let initial = buddyinfo(&pa);
    let (to_main, punching) = mpsc::channel::<()>();
    let (to_punch, answered) = mpsc::channel::<()>();
    let answered = Mutex::new(answered);
    let first = AtomicBool::new(true);
    *pa.platform().hook.lock().unwrap() = Some(Box::new(move |_pfn, _nr| {
        if first.swap(false, Relaxed) {
            to_main.send(()).unwrap();
            answered.lock().unwrap().recv_timeout(DEADLINE).expect("the main thread answers");
        }
    }));
    std::thread::scope(|s| {
        s.spawn(|| pa.trim());
        punching.recv().unwrap();
        // Everything the batch left, reserves included (`__GFP_NOFAIL` may take any free page
        // after its OOM step, PA-14).
        let mut held = Vec::new();
        while let Ok(p) = pa.alloc_pages(GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN, 0) {
            held.push(p);
        }
        assert!(pa.alloc_pages(GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN, 0).is_err());
        let sleeps = pa.stats().sleeps.load(Relaxed);
        let waiter = s.spawn(|| pa.alloc_pages(GFP_KERNEL | __GFP_NOFAIL | __GFP_NOWARN, 0));
        // The request is waiting for a free before the batch may come back.
        let start = std::time::Instant::now();
        while pa.stats().sleeps.load(Relaxed) == sleeps {
            assert!(!waiter.is_finished(), "__GFP_NOFAIL found a page while the batch was out");
            assert!(start.elapsed() < DEADLINE, "__GFP_NOFAIL never slept");
            std::thread::yield_now();
        }
        to_punch.send(()).unwrap();
        let page = waiter.join().unwrap().expect("__GFP_NOFAIL succeeds");
        for p in held {
            // SAFETY: The test's own pages, unused afterwards.
            unsafe { pa.free_pages(p, 0) };
        }
        // SAFETY: The waiter's page, unused afterwards.
        unsafe { pa.free_pages(page, 0) };
    });
    // SAFETY: Single-threaded again; no CPU slot in use.
    unsafe { pa.check() };
    assert_eq!(buddyinfo(&pa), initial, "nothing lost");
}

/// A batch keeps the zone above its high watermark plus the largest lowmem reserve it holds
/// against any request class (PA-9): the watermark tests of allocations, the slow path and
/// kswapd add the reserve of the request's highest zone, so taking a zone below it would send
/// requests that never needed it into the slow path. Normal (64 MiB) under 192 MiB of HighMem:
/// Normal keeps 1536 pages against HighMem requests, more than a max-order block.
#[test]
fn a_batch_keeps_the_zone_above_high_plus_its_lowmem_reserve() {
    const BYTES: usize = 256 << 20;
    const NORMAL: usize = 16384;
    let region = Region::new(BYTES);
    let pages = BYTES / PAGE_SIZE;
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Normal as usize] = Some((0, NORMAL));
    zones[ZoneType::HighMem as usize] = Some((NORMAL, pages));
    let layout = kmem_core::page_alloc::Layout { direct_map_end_pfn: NORMAL, ..crate::layout(&region, zones) };
    let pa = boot_host(&region, layout);
    let normal = pa.zone(ZoneType::Normal);
    let reserve = normal.lowmem_reserve(ZoneType::HighMem);
    assert!(reserve > 1 << MAX_PAGE_ORDER, "a reserve larger than a block ({reserve} pages)");
    let blocks = dirty_all(&pa);
    assert!(blocks > 4, "{blocks} lowmem blocks");
    let initial = buddyinfo(&pa);
    let lowest = Arc::new(AtomicUsize::new(usize::MAX));
    {
        let (lowest, zone_addr) = (lowest.clone(), normal as *const _ as usize);
        *pa.platform().hook.lock().unwrap() = Some(Box::new(move |_pfn, _nr| {
            // SAFETY: The zone lives in the allocator, which outlives the trim that calls this.
            let zone = unsafe { &*(zone_addr as *const kmem_core::zone::Zone) };
            lowest.fetch_min(zone.free_pages(), Relaxed);
        }));
    }
    let released = pa.trim();
    *pa.platform().hook.lock().unwrap() = None;
    assert!(released > 0, "something was released");
    let floor = normal.wmark(Wmark::High) + reserve;
    let lowest = lowest.load(Relaxed);
    assert!(lowest > floor, "a batch took Normal to {lowest} free pages, at or below high + reserve = {floor}");
    // SAFETY: Single-threaded; no CPU slot in use.
    unsafe { pa.check() };
    assert_eq!(buddyinfo(&pa), initial, "every block came back");
}
