//! §2.10 `init_on_alloc`/`init_on_free` for pages on a caller-provided region, where the test
//! can look at memory the allocator holds free: `init_on_free` zeroes a block when it is freed
//! (`free_pages_prepare`), not when it is handed out again; turning it on clears free memory
//! that is not known to be zero (the kernel clears all memory at boot); `init_on_alloc` zeroes
//! when a block is handed out (`post_alloc_hook`); and a platform that cannot zero HighMem gets
//! zeroing at allocation instead of at free.

use std::sync::atomic::Ordering::Relaxed;

use kmem_core::gfp::{__GFP_MEMALLOC, __GFP_NOWARN, GFP_HIGHUSER, GFP_KERNEL};
use kmem_core::page_alloc::Config;
use kmem_core::slab::SlabConfig;
use kmem_core::zone::{MAX_NR_ZONES, ZoneType};
use kmem_core::{Kmem, MAX_PAGE_ORDER, PAGE_SIZE, PageAllocator};

use super::{Board, Region, board, boot, layout};

const DIRTY: u8 = 0xa5;

fn settings(on_alloc: bool, on_free: bool) -> SlabConfig {
    SlabConfig { init_on_alloc: on_alloc, init_on_free: on_free, ..SlabConfig::default() }
}

/// The bytes of `pages` pages at `addr` in the region.
fn bytes(addr: *mut u8, pages: usize) -> &'static mut [u8] {
    // SAFETY: Callers pass addresses of the test's region, which outlives every use here, and
    // no allocator call runs while the slice is alive (single-threaded tests).
    unsafe { std::slice::from_raw_parts_mut(addr, pages * PAGE_SIZE) }
}

/// `init_on_free`: the block is zero as soon as it is freed — through the per-CPU lists (orders
/// 0 and 3) and the buddy lists (5 and 10) — while with both settings off the old bytes stay.
#[test]
fn s2_10_init_on_free_zeroes_a_block_when_it_is_freed() {
    for on_free in [false, true] {
        let region = Region::new(32 << 20);
        let k = Kmem::new(boot(&region, true), settings(false, on_free));
        assert_eq!(k.want_init_on_free(), on_free);
        for order in [0, 3, 5, MAX_PAGE_ORDER] {
            let page = k.alloc_pages(GFP_KERNEL, order).unwrap();
            let addr = k.page_address(page).unwrap().as_ptr();
            bytes(addr, 1 << order).fill(DIRTY);
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { k.free_pages(page, order) };
            let freed = bytes(addr, 1 << order);
            if on_free {
                assert!(freed.iter().all(|&b| b == 0), "order {order}: zeroed when freed");
            } else {
                assert!(freed.iter().all(|&b| b == DIRTY), "order {order}: left alone when freed");
            }
        }
        // SAFETY: Single-threaded test; no CPU slot in use.
        unsafe { k.check() };
    }
}

/// Memory that was not zero when the allocator was built (`Layout::zeroed` false, the region
/// full of old bytes): `init_on_free` clears every free block when it is turned on, so nothing
/// old is ever handed out; `init_on_alloc` zeroes each block as it is handed out; with both off
/// the old bytes are handed out.
#[test]
fn s2_10_old_memory_is_never_handed_out_under_either_setting() {
    for (on_alloc, on_free) in [(false, false), (true, false), (false, true)] {
        let region = Region::new(32 << 20);
        bytes(region.ptr.as_ptr(), (32 << 20) / PAGE_SIZE).fill(DIRTY);
        let pages = (32 << 20) / PAGE_SIZE;
        let mut zones = [None; MAX_NR_ZONES];
        zones[ZoneType::Dma as usize] = Some((0, 4096));
        zones[ZoneType::Normal as usize] = Some((4096, pages));
        let layout = kmem_core::page_alloc::Layout { zeroed: false, ..layout(&region, zones) };
        let config = Config { oom_timeout_ns: 0, ..Config::default() };
        // SAFETY: The region is ours, `pages` long, outlives the allocator; `zeroed` is false.
        let pa = unsafe { PageAllocator::new(board(true), layout, config) }.expect("boot");
        let k = Kmem::new(pa, settings(on_alloc, on_free));
        let mut held = Vec::new();
        for order in (0..=MAX_PAGE_ORDER).rev() {
            while let Ok(page) = k.alloc_pages(GFP_KERNEL | __GFP_MEMALLOC | __GFP_NOWARN, order) {
                held.push((page, order));
            }
        }
        assert!(held.iter().map(|&(_, o)| 1usize << o).sum::<usize>() > pages - 100, "all memory handed out");
        let what = format!("init_on_alloc={on_alloc} init_on_free={on_free}");
        for &(page, order) in &held {
            let block = bytes(k.page_address(page).unwrap().as_ptr(), 1 << order);
            if on_alloc || on_free {
                assert!(block.iter().all(|&b| b == 0), "{what}: pfn {:#x}", k.page_to_pfn(page).unwrap());
            } else {
                assert!(block.iter().all(|&b| b == DIRTY), "{what}: pfn {:#x}", k.page_to_pfn(page).unwrap());
            }
        }
        for (page, order) in held {
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { k.free_pages(page, order) };
        }
        // SAFETY: Single-threaded test; no CPU slot in use.
        unsafe { k.check() };
    }
}

/// A board that cannot zero HighMem (`Platform::zero_highmem` returns false) cannot keep free
/// HighMem zero: `init_on_free` becomes zeroing at allocation (with a warning at boot), so a
/// HighMem allocation fails as `__GFP_ZERO`'s does on such a board, and lowmem still comes back
/// zeroed.
#[test]
fn s2_10_init_on_free_without_highmem_access_zeroes_at_allocation() {
    let region = Region::new(32 << 20);
    let layout = crate::highmem_layout(&region);
    let config = Config { oom_timeout_ns: 0, ..Config::default() };
    super::ON_BOARD_CPU.with(|c| c.set(true));
    // SAFETY: As in `boot`; pages above 6144 are simply never touched through the direct map.
    let pa = unsafe { PageAllocator::new(board(true), layout, config) }.expect("boot");
    let k: Kmem<Board> = Kmem::new(pa, settings(false, true));
    let log = || k.platform().log.lock().unwrap().clone();
    assert!(log().contains("init_on_free: the platform cannot zero HighMem; pages are zeroed when allocated instead"));
    assert!(!k.want_init_on_free() && k.want_init_on_alloc(GFP_KERNEL));
    assert!(k.alloc_pages(GFP_HIGHUSER | __GFP_NOWARN, 0).is_err(), "HighMem cannot be zeroed");
    assert!(log().contains("cannot zero HighMem pfn:"), "{}", log());
    let page = k.alloc_pages(GFP_KERNEL, 0).unwrap();
    let addr = k.page_address(page).unwrap().as_ptr();
    bytes(addr, 1).fill(DIRTY);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { k.free_pages(page, 0) };
    let again = k.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_eq!(k.page_address(again).unwrap().as_ptr(), addr);
    assert!(bytes(addr, 1).iter().all(|&b| b == 0), "zeroed when handed out");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { k.free_pages(again, 0) };
    assert_eq!(k.stats().bad_pages.load(Relaxed), 0);
}
