//! §2.10 `init_on_alloc`/`init_on_free` for pages (`post_alloc_hook`, `free_pages_prepare` →
//! `kernel_init_pages`), with PA-18 and PA-19, through `kmem::Machine`: a block written with a
//! pattern and freed comes back zeroed, without `__GFP_ZERO`, whichever setting is on — through
//! the per-CPU lists (order 0), the buddy lists (a higher order, or per-CPU lists off), HighMem
//! (read through `kmap_local_page`), `alloc_pages_exact`, `alloc_pages_bulk`, `split_page` and
//! the tail halves `__free_pages` frees early. Every test also runs with both settings off (the
//! default), where the old bytes survive: that shows the tests see the difference.

use std::ptr::NonNull;

use kmem::gfp::*;
use kmem::{MAX_PAGE_ORDER, Machine, PAGE_SIZE, Page, Profile};

use crate::*;

/// Every combination of `(init_on_alloc, init_on_free)`.
const SETTINGS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// The byte tests write before freeing.
const DIRTY: u8 = 0xa5;

/// A machine with the given `(init_on_alloc, init_on_free)` and per-CPU lists on or off.
fn machine(profile: Profile, mib: u64, pcp: bool, (on_alloc, on_free): (bool, bool)) -> Machine {
    builder(profile, mib).pcp(pcp).init_on_alloc(on_alloc).init_on_free(on_free).build().expect("build machine")
}

/// What the settings promise for a freed block handed out again without `__GFP_ZERO`.
fn zeroed_by((on_alloc, on_free): (bool, bool)) -> bool {
    on_alloc || on_free
}

/// `f` over the bytes of a block of `1 << order` pages, lowmem through the direct map and
/// HighMem page by page through `kmap_local_page` (the page array's entries are contiguous).
fn with_bytes(m: &Machine, page: &Page, order: u32, mut f: impl FnMut(&mut [u8])) {
    let base = pfn(m, page);
    for i in 0..1usize << order {
        let sub = m.pfn_to_page(base + i).expect("page of the block");
        let view: NonNull<u8> = m.kmap_local_page(sub).expect("a mapping of the page");
        // SAFETY: The block is allocated to this test and `view` maps one of its pages for
        // `PAGE_SIZE` bytes until `kunmap_local`; nothing else touches it meanwhile.
        f(unsafe { std::slice::from_raw_parts_mut(view.as_ptr(), PAGE_SIZE) });
        // SAFETY: The test's own mapping, not used afterwards.
        unsafe { m.kunmap_local(view.as_ptr()) };
    }
}

fn fill(m: &Machine, page: &Page, order: u32, byte: u8) {
    with_bytes(m, page, order, |b| b.fill(byte));
}

fn is_zero(m: &Machine, page: &Page, order: u32) -> bool {
    let mut zero = true;
    with_bytes(m, page, order, |b| zero &= b.iter().all(|&x| x == 0));
    zero
}

fn is_dirty(m: &Machine, page: &Page, order: u32) -> bool {
    let mut dirty = true;
    with_bytes(m, page, order, |b| dirty &= b.iter().all(|&x| x == DIRTY));
    dirty
}

/// Writes `DIRTY` over a freshly allocated block of `order` with `gfp`, frees it, allocates
/// the same order again and checks the block that comes back is the same one (LIFO per-CPU
/// lists, or the buddy split that gave it) and zeroed exactly when the settings say so.
fn reuse_one(m: &Machine, gfp: Gfp, order: u32, settings: (bool, bool), what: &str) {
    let page = m.alloc_pages(gfp, order).unwrap();
    let before = pfn(m, page);
    fill(m, page, order, DIRTY);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, order) };
    let again = m.alloc_pages(gfp, order).unwrap();
    assert_eq!(pfn(m, again), before, "{what}: the dirty block is handed out again");
    if zeroed_by(settings) {
        assert!(is_zero(m, again, order), "{what} {settings:?}: freed block comes back zeroed");
    } else {
        assert!(is_dirty(m, again, order), "{what} {settings:?}: no zeroing with both settings off");
    }
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(again, order) };
}

/// §2.10, order 0 through this CPU's per-CPU list and orders 1–3 through the per-CPU lists of
/// their order, then order 5 through the buddy lists (no per-CPU list above order 3, PA-17).
#[test]
fn s2_10_init_on_free_or_alloc_zeroes_pcp_and_buddy_blocks() {
    // The default is unchanged: both off, as in the kernel without `CONFIG_INIT_ON_*_DEFAULT_ON`.
    let defaults = builder(Profile::I386, 64).settings().slab;
    assert_eq!((defaults.init_on_alloc, defaults.init_on_free), (false, false));
    let m = builder(Profile::I386, 64).build().unwrap();
    reuse_one(&m, GFP_KERNEL, 0, (false, false), "default settings");
    for settings in SETTINGS {
        let m = machine(Profile::I386, 64, true, settings);
        for order in [0, 1, 3, 5] {
            reuse_one(&m, GFP_KERNEL, order, settings, &format!("order {order}"));
        }
        check(&m);
    }
}

/// §2.10 with per-CPU lists off: every free of every order goes straight to `__free_one_page`.
#[test]
fn s2_10_init_on_free_or_alloc_zeroes_blocks_freed_to_the_buddy_lists() {
    for settings in SETTINGS {
        let m = machine(Profile::X86_64, 64, false, settings);
        for order in [0, 2, 10] {
            reuse_one(&m, GFP_KERNEL, order, settings, &format!("order {order} (no pcp)"));
        }
        check(&m);
    }
}

/// §2.10 on HighMem (i386, 1 GiB: pages above 896 MiB are outside the direct map): zeroing at
/// free or at allocation goes through a temporary mapping; read back through `kmap_local_page`.
#[test]
fn s2_10_init_on_free_or_alloc_zeroes_highmem_pages() {
    for settings in SETTINGS {
        let m = machine(Profile::I386, 1024, true, settings);
        for order in [0, 3, 4] {
            let page = m.alloc_pages(GFP_HIGHUSER, order).unwrap();
            assert!(m.page_address(page).is_none(), "a HighMem block");
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(page, order) };
            reuse_one(&m, GFP_HIGHUSER, order, settings, &format!("HighMem order {order}"));
        }
        check(&m);
    }
}

/// PA-18 under `init_on_free`: the allocation side skips its zeroing there (the page is
/// zeroed already, as the kernel's `post_alloc_hook` assumes), so `__GFP_ZERO` must still
/// find every page of a zone that was dirtied completely and freed zero; without `__GFP_ZERO`
/// the same holds under either setting, and not with both off.
#[test]
fn pa18_s2_10_a_fully_dirtied_zone_comes_back_zeroed() {
    for settings in SETTINGS {
        for gfp in [GFP_DMA | __GFP_MEMALLOC | __GFP_NOWARN, GFP_DMA | __GFP_MEMALLOC | __GFP_NOWARN | __GFP_ZERO] {
            let m = machine(Profile::I386, 64, true, settings);
            let held = grab_all(&m, GFP_DMA | __GFP_MEMALLOC | __GFP_NOWARN);
            assert_eq!(pages_in(&held), DMA_END_PFN);
            for &(p, o) in &held {
                fill(&m, p, o, DIRTY);
            }
            free_all(&m, held);
            let again = grab_all(&m, gfp);
            assert_eq!(pages_in(&again), DMA_END_PFN);
            let zeroed = again.iter().filter(|&&(p, o)| is_zero(&m, p, o)).count();
            if zeroed_by(settings) || gfp.contains(__GFP_ZERO) {
                assert_eq!(zeroed, again.len(), "{settings:?} {gfp:?}: every block zeroed");
            } else {
                assert_eq!(zeroed, 0, "{settings:?}: every block still dirty");
            }
            free_all(&m, again);
            check(&m);
        }
    }
}

/// PA-18's `alloc_pages_exact` and `free_pages_exact` (page by page, `free_pages_exact`'s
/// frees and the unused tail `make_alloc_exact` frees at once).
#[test]
fn pa18_s2_10_alloc_pages_exact_comes_back_zeroed() {
    for settings in SETTINGS {
        for pcp in [true, false] {
            let m = machine(Profile::I386, 64, pcp, settings);
            let size = 5 * PAGE_SIZE + 100;
            let addr = m.alloc_pages_exact(size, GFP_KERNEL).unwrap();
            // SAFETY: The test's own allocation, used by nothing else meanwhile.
            unsafe { m.write_bytes(addr, &vec![DIRTY; 6 * PAGE_SIZE]) }.unwrap();
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages_exact(addr.as_ptr(), size) };
            // The pages merge back into their block, which the next request splits again.
            m.drain_local_pages();
            let again = m.alloc_pages_exact(size, GFP_KERNEL).unwrap();
            assert_eq!(again, addr, "{settings:?} pcp {pcp}: the same pages");
            let mut buf = vec![0u8; 6 * PAGE_SIZE];
            // SAFETY: The test's own allocation, used by nothing else meanwhile.
            unsafe { m.read_bytes(again, &mut buf) }.unwrap();
            let zero = buf.iter().all(|&b| b == 0);
            let dirty = buf.iter().all(|&b| b == DIRTY);
            assert!(if zeroed_by(settings) { zero } else { dirty }, "{settings:?} pcp {pcp}");
            // SAFETY: The test's own allocation, used by nothing else meanwhile.
            unsafe { m.write_bytes(again, &vec![DIRTY; 6 * PAGE_SIZE]) }.unwrap();
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages_exact(again.as_ptr(), size) };
            let base = m.virt_to_pfn(again.as_ptr()).unwrap();
            check_freed_pages(&m, base..base + 6, settings, &format!("free_pages_exact, pcp {pcp}"));
            check(&m);
        }
    }
}

/// PA-19 under §2.10: `alloc_pages_bulk` without `__GFP_ZERO`, from a zone whose every page
/// was dirtied and freed, hands out zeroed pages under either setting (its per-CPU batch loop,
/// and its buddy loop with per-CPU lists off).
#[test]
fn pa19_s2_10_alloc_pages_bulk_comes_back_zeroed() {
    for settings in SETTINGS {
        for pcp in [true, false] {
            let m = machine(Profile::I386, 64, pcp, settings);
            let held = grab_all(&m, GFP_DMA | __GFP_MEMALLOC | __GFP_NOWARN);
            assert_eq!(pages_in(&held), DMA_END_PFN);
            for &(p, o) in &held {
                fill(&m, p, o, DIRTY);
            }
            free_all(&m, held);
            let mut slots: Vec<Option<&Page>> = vec![None; 300];
            assert_eq!(m.alloc_pages_bulk(GFP_DMA, &mut slots), 300);
            for p in slots.into_iter().flatten() {
                assert_eq!(zone_of(&m, pfn(&m, p)), kmem::zone::ZoneType::Dma);
                assert!(as_promised(&m, pfn(&m, p), settings), "{settings:?} pcp {pcp}: pfn {:#x}", pfn(&m, p));
                // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
                unsafe { m.free_pages(p, 0) };
            }
            check(&m);
        }
    }
}

/// Whether page `n` (allocated, or a page of an allocated block) reads as the settings say a
/// freed page must: zero under either setting, still `DIRTY` with both off.
fn as_promised(m: &Machine, n: usize, settings: (bool, bool)) -> bool {
    let page = m.pfn_to_page(n).expect("a page of memory");
    if zeroed_by(settings) { is_zero(m, page, 0) } else { is_dirty(m, page, 0) }
}

/// Allocates every free page of lowmem and checks that pages `pfns` (freed dirty before) are
/// among them and read as promised; frees everything again.
fn check_freed_pages(m: &Machine, pfns: std::ops::Range<usize>, settings: (bool, bool), what: &str) {
    let held = grab_all(m, GFP_KERNEL | __GFP_MEMALLOC | __GFP_NOWARN);
    for n in pfns {
        let in_held = held.iter().any(|&(p, o)| (pfn(m, p)..pfn(m, p) + (1 << o)).contains(&n));
        assert!(in_held, "{what}: pfn {n:#x} was free");
        assert!(as_promised(m, n, settings), "{what} {settings:?}: pfn {n:#x}");
    }
    free_all(m, held);
}

/// §2.10 `split_page` and `__free_pages` with a reference left: each sub-page of a split
/// block, and each tail half freed at once while the head is still held, is zeroed when freed.
#[test]
fn s2_10_split_pages_and_early_tail_halves_come_back_zeroed() {
    for settings in SETTINGS {
        for pcp in [true, false] {
            let m = machine(Profile::I386, 64, pcp, settings);
            // split_page: four independent pages, freed one by one.
            let block = m.alloc_pages(GFP_KERNEL, 2).unwrap();
            fill(&m, block, 2, DIRTY);
            // SAFETY: The test's own block (or not an allocated one: refused); nothing else frees it.
            unsafe { m.split_page(block, 2) }.unwrap();
            let base = pfn(&m, block);
            for i in 0..4 {
                // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
                unsafe { m.free_pages(m.pfn_to_page(base + i).unwrap(), 0) };
            }
            check_freed_pages(&m, base..base + 4, settings, &format!("split_page, pcp {pcp}"));
            // An extra reference: the tail halves (pages 2-3, then 1) are freed now, the head later.
            let block = m.alloc_pages(GFP_KERNEL, 2).unwrap();
            fill(&m, block, 2, DIRTY);
            assert!(block.get_page());
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(block, 2) };
            let base = pfn(&m, block);
            check_freed_pages(&m, base + 1..base + 4, settings, &format!("tail halves, pcp {pcp}"));
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(block, 0) };
            check(&m);
        }
    }
}

/// `fill_with_garbage` of `lib/test_meminit.c`: the word 0x09A7BA9E repeated, tail bytes 0x9E.
fn fill_with_garbage(buf: &mut [u8]) {
    let words = buf.len() / 4 * 4;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = if i < words { 0x09A7_BA9E_u32.to_ne_bytes()[i % 4] } else { 0x9e };
    }
}

/// TST-10 (`lib/test_meminit.c`, `test_pages`, run with `init_on_alloc=1` and/or
/// `init_on_free=1`): for every order 0..=10, allocate, fill with garbage, free, allocate
/// again: no byte may be nonzero. With both settings off (the control) some order must come
/// back with its garbage, here the LIFO per-CPU orders.
#[test]
fn tst10_test_meminit_pages_every_order_comes_back_zeroed() {
    for settings in SETTINGS {
        let m = machine(Profile::I386, 64, true, settings);
        let mut nonzero_orders = 0;
        for order in 0..=MAX_PAGE_ORDER {
            let page = m.alloc_pages(GFP_KERNEL, order).unwrap();
            with_bytes(&m, page, order, fill_with_garbage);
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(page, order) };
            let page = m.alloc_pages(GFP_KERNEL, order).unwrap();
            if !is_zero(&m, page, order) {
                nonzero_orders += 1;
            }
            with_bytes(&m, page, order, fill_with_garbage);
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(page, order) };
        }
        if zeroed_by(settings) {
            assert_eq!(nonzero_orders, 0, "{settings:?}: count_nonzero_bytes failures");
        } else {
            assert!(nonzero_orders >= 4, "{settings:?}: orders 0-3 (per-CPU, LIFO) keep their garbage");
        }
        check(&m);
    }
}
