//! High-order atomic reserves against a free that reaches the buddy lists directly (SEMANTICS
//! §2.5, §2.6): the block goes to the list of its pageblock's type as it is when the zone lock
//! is held, as the kernel's `free_one_page` reads it (`split_large_buddy`) under the lock. A
//! hook in the platform's `cpu` — asked by the free after it looked at the pageblock and
//! before it takes the lock — lets another thread reserve that pageblock in between (a
//! deterministic interleaving, no timing).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::Duration;

use kmem_core::gfp::{GFP_ATOMIC, GFP_KERNEL};
use kmem_core::page_alloc::Config;
use kmem_core::platform::{Level, Platform};
use kmem_core::waitq::WaitWord;
use kmem_core::zone::{MAX_NR_ZONES, MigrateType, Wmark, ZoneType};
use kmem_core::{PAGE_SIZE, PageAllocator};

use super::Region;

/// How long one thread waits for the other before it calls the allocator stuck (a deadlock
/// detector, not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(20);

type Hook = Box<dyn FnOnce() + Send>;

/// No CPU slots (every free goes to the buddy lists); `cpu` runs a hook the test arms once.
struct Racer {
    hook: Mutex<Option<Hook>>,
    ticks: AtomicU64,
}

// SAFETY: `cpu` is always `None`, so no CPU slot is ever used.
unsafe impl Platform for Racer {
    fn nr_cpus(&self) -> usize {
        1
    }
    fn cpu(&self) -> Option<usize> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(f) = hook {
            f();
        }
        None
    }
    fn log(&self, _level: Level, _args: core::fmt::Arguments<'_>) {}
    fn now_ns(&self) -> u64 {
        self.ticks.fetch_add(1_000_000, Relaxed)
    }
    fn wait(&self, _word: &WaitWord, _expected: u32, _timeout_ns: u64) {
        std::thread::yield_now();
    }
    fn wake_all(&self, _word: &WaitWord) {}
}

/// 32 MiB, one Normal zone, pageblocks of 32 pages: 1 % of the zone is several pageblocks, so
/// the zone may hold high-atomic reserves.
const REGION: usize = 32 << 20;

fn boot(region: &Region) -> PageAllocator<Racer> {
    let pages = REGION / PAGE_SIZE;
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Normal as usize] = Some((0, pages));
    let mut layout = crate::layout(region, zones);
    layout.pageblock_order = 5;
    let racer = Racer { hook: Mutex::new(None), ticks: AtomicU64::new(0) };
    let config = Config { oom_timeout_ns: 0, ..Config::default() };
    // SAFETY: The region is ours, zeroed, `pages` pages long, and outlives the allocator.
    unsafe { PageAllocator::new(racer, layout, config) }.expect("boot")
}

#[test]
fn a_free_racing_a_reservation_goes_to_the_reserved_blocks_lists() {
    let region = Region::new(REGION);
    let pa = boot(&region);
    // Two neighbours: the first, freed, finds no free buddy to merge with (a merge would take
    // the buddy's list and hide a stale type).
    let a = pa.alloc_pages(GFP_KERNEL, 0).unwrap();
    let b = pa.alloc_pages(GFP_KERNEL, 0).unwrap();
    let pfn = pa.memmap().pfn_of(a).unwrap();
    assert_eq!(pfn ^ 1, pa.memmap().pfn_of(b).unwrap(), "buddies");
    let block = pfn & !31;
    assert_ne!(pa.memmap().pageblock_mt(pfn), MigrateType::HighAtomic);
    // The fast path fails and a `GFP_ATOMIC` request passes in the slow path (where it gets
    // `ALLOC_HIGHATOMIC`).
    let free = pa.zone(ZoneType::Normal).free_pages();
    pa.set_zone_watermarks(ZoneType::Normal, [free, 2 * free, 2 * free, 2 * free]).unwrap();
    assert!(pa.zone(ZoneType::Normal).wmark(Wmark::Low) > free);

    let (to_main, freeing) = mpsc::channel::<()>();
    let (to_free, reserved) = mpsc::channel::<()>();
    let reserved = Mutex::new(reserved);
    *pa.platform().hook.lock().unwrap() = Some(Box::new(move || {
        to_main.send(()).unwrap();
        reserved.lock().unwrap().recv_timeout(DEADLINE).expect("the reserving thread answers");
    }));
    std::thread::scope(|s| {
        let freer = s.spawn(|| {
            // SAFETY: The test's own page, unused afterwards.
            unsafe { pa.free_pages(a, 0) };
        });
        freeing.recv_timeout(DEADLINE).expect("the free asks for its CPU");
        // The free has looked at the pageblock and not taken the zone lock yet: an atomic
        // order-1 request is served from the same pageblock (its smallest free block) and
        // reserves it.
        let c = pa.alloc_pages(GFP_ATOMIC, 1).unwrap();
        assert_eq!(pa.memmap().pfn_of(c).unwrap() & !31, block, "served from the same pageblock");
        assert_eq!(pa.memmap().pageblock_mt(block), MigrateType::HighAtomic, "reserved");
        to_free.send(()).unwrap();
        freer.join().unwrap();
        // SAFETY: No context uses a CPU slot (the platform has none).
        unsafe { pa.check() };
        // SAFETY: The test's own pages, unused afterwards.
        unsafe {
            pa.free_pages(c, 1);
            pa.free_pages(b, 0);
        }
    });
    // SAFETY: As above.
    unsafe { pa.check() };
}
