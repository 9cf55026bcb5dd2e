//! High-order atomic reserves on a platform without CPU slots, with hooks (SEMANTICS §2.4–2.6):
//!
//! - against a free that reaches the buddy lists directly: the block goes to the list of its
//!   pageblock's type as it is when the zone lock is held, as the kernel's `free_one_page`
//!   reads it (`split_large_buddy`) under the lock. A hook in the platform's `cpu` — asked by
//!   the free after it looked at the pageblock and before it takes the lock — lets another
//!   thread reserve that pageblock in between (a deterministic interleaving, no timing);
//! - against giving memory back to the host (`trim`): a batch out keeps the free pages outside
//!   the reserve above the high watermark, as the kernel's `__isolate_free_page` tests a
//!   watermark without reserves; a hook in `discard` looks while the batch is out.

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::Duration;

use kmem_core::PageAllocator;
use kmem_core::gfp::{GFP_ATOMIC, GFP_KERNEL};
use kmem_core::zone::{MigrateType, Wmark, ZoneType};

use super::Region;
use super::trim::{Host, boot_host};

/// How long one thread waits for the other before it calls the allocator stuck (a deadlock
/// detector, not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(20);

/// 32 MiB, one Normal zone, pageblocks of 32 pages: 1 % of the zone is several pageblocks, so
/// the zone may hold high-atomic reserves.
const REGION: usize = 32 << 20;

/// The trim tests' host (no CPU slots: every free goes to the buddy lists) over `region`.
fn boot(region: &Region) -> PageAllocator<Host> {
    boot_host(region, kmem_core::page_alloc::Layout { pageblock_order: 5, ..crate::normal_only(region) })
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
    *pa.platform().on_cpu.lock().unwrap() = Some(Box::new(move || {
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

/// Three pageblocks reserved by slow-path `GFP_ATOMIC` requests of a pageblock each (the
/// watermarks raised so that only the slow path serves them), free again.
fn reserve_three_blocks(pa: &PageAllocator<Host>) {
    let free = pa.zone(ZoneType::Normal).free_pages();
    pa.set_zone_watermarks(ZoneType::Normal, [free, 2 * free, 2 * free, 2 * free]).unwrap();
    let held: Vec<_> = (0..3).map(|_| pa.alloc_pages(GFP_ATOMIC, 5).unwrap()).collect();
    for p in held {
        // SAFETY: The test's own block, unused afterwards.
        unsafe { pa.free_pages(p, 5) };
    }
    let zone = pa.zone(ZoneType::Normal);
    assert_eq!((zone.reserved_highatomic(), zone.free_highatomic()), (96, 96));
}

#[test]
fn a_trim_batch_keeps_the_pages_outside_the_reserve_above_high() {
    let region = Region::new(REGION);
    let pa = boot(&region);
    reserve_three_blocks(&pa);
    let zone = pa.zone(ZoneType::Normal);
    // Less than a pageblock of ordinary free pages above the high watermark; the reserve would
    // make room for several.
    let ordinary = zone.free_pages() - zone.free_highatomic();
    let high = ordinary - 16;
    pa.set_zone_watermarks(ZoneType::Normal, [high / 2, high / 2, high, high]).unwrap();
    let lowest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    {
        let lowest = lowest.clone();
        // The hook must be `'static`: it gets the zone as an address.
        let zone_ptr = zone as *const kmem_core::zone::Zone as usize;
        *pa.platform().hook.lock().unwrap() = Some(Box::new(move |_, _| {
            // SAFETY: The zone lives in the allocator, which outlives the trim that runs this
            // hook (the hook is dropped with it); `Zone` is read through shared references only.
            let zone = unsafe { &*(zone_ptr as *const kmem_core::zone::Zone) };
            lowest.fetch_min(zone.free_pages() - zone.free_highatomic(), Relaxed);
        }));
    }
    pa.trim();
    let lowest = lowest.load(Relaxed);
    assert!(lowest == usize::MAX || lowest > high, "a batch took the ordinary free pages to {lowest} (high {high})");
    // SAFETY: No context uses a CPU slot (the platform has none).
    unsafe { pa.check() };
}
