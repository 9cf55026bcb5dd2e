//! Misuse through the safe API must be reported or refused, never corrupt the free lists
//! (found in review: each of these corrupted memory before the fix).

use kmem::gfp::{GFP_ATOMIC, GFP_KERNEL};
use kmem::memmap::pg;

use crate::{check, count_log, i386_nopcp, pfn};

/// A wrong-order free is refused even when another reference is held; the kernel's tail
/// freeing (`__free_pages` with references left) must not free someone else's pages.
#[test]
fn wrong_order_free_with_extra_reference_leaves_neighbours_alone() {
    let m = i386_nopcp(64);
    // Without per-CPU lists, successive order-0 allocations split one block: consecutive pfns.
    let pages: Vec<_> = (0..8).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let a = pages[0];
    assert_eq!(pfn(&m, pages[1]), pfn(&m, a) + 1, "neighbours for the test");
    assert!(a.get_page());
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(a, 3) };
    assert_eq!(count_log(&m, "freed with a different order than it was allocated with"), 1);
    for p in &pages {
        assert!(p.is_allocated(), "pfn {:#x} was freed by someone else's free", pfn(&m, p));
    }
    check(&m);
    // The extra reference is dropped normally, then the last one frees the page.
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(a, 0) };
    assert!(a.is_allocated());
    for p in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    check(&m);
}

/// `get_page` refuses a count at `i32::MAX` (the kernel's `folio_ref_zero_or_close_to_overflow`
/// check): a wrapped count would free the page under its holders' references.
#[test]
fn get_page_never_wraps_the_reference_count() {
    let m = i386_nopcp(64);
    let a = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    a.page_ref_add(i32::MAX - 2);
    assert!(a.get_page(), "one below the limit");
    assert_eq!(a.refcount(), i32::MAX);
    assert!(!a.get_page(), "at the limit");
    assert_eq!(a.refcount(), i32::MAX);
    a.page_ref_add(-(i32::MAX - 1));
    // SAFETY: The test's own page, unused afterwards.
    unsafe { m.free_pages(a, 0) };
    assert!(!a.is_allocated());
    check(&m);
}

/// A `&Page` kept after its free cannot write list links: the setters refuse free pages.
#[test]
fn stale_page_reference_cannot_touch_a_free_page() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let a = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(a, 0) };
    assert!(!a.get_page());
    // SAFETY: `a` is free (nobody's page), which each setter refuses; `b` is ours, and no slab
    // lookup runs on it.
    unsafe {
        assert!(!a.set_mapping(0x4000_0000));
        assert!(!a.set_mapcount(7));
        assert!(!a.set_flags(pg::SLAB));
        assert!(!a.clear_flags(pg::HEAD));
    }
    // Owner flags only, even on an allocated page.
    let b = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    // SAFETY: As above.
    unsafe {
        assert!(!b.set_flags(pg::BUDDY), "list-state flags are not the owner's");
        assert!(b.set_flags(pg::HEAD) && b.clear_flags(pg::HEAD));
    }
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(b, 0) };
    let again: Vec<_> = (0..32).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for p in again {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

/// `write_bytes`/`read_bytes` reach only allocated memory: never the page array (reserved
/// pages) and never a free page.
#[test]
fn byte_access_refuses_the_page_array_and_free_pages() {
    let m = i386_nopcp(64);
    let reserved = (0..m.memmap().end_pfn())
        .rev()
        .find(|&p| m.pfn_to_page(p).is_some_and(|page| page.flags() & pg::RESERVED != 0))
        .expect("the page array is carved from lowmem");
    let addr = m.pfn_address(reserved).expect("reserved pages are in the direct map");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.write_bytes(addr, &[0x41; 64]) }.is_err());
    let mut buf = [0u8; 16];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.read_bytes(addr, &mut buf) }.is_err());
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let paddr = m.page_address(page).unwrap();
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.write_bytes(paddr, b"mine") }.is_ok());
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.write_bytes(paddr, b"gone") }.is_err(), "a freed page is not writable through the machine");
    check(&m);
}

/// PA-16's rate limit (60 reports, then a quiet minute), shared by bad-page and bad-free
/// reports: a burst of 70 bad frees prints 60 reports and counts all 70.
#[test]
fn bad_free_reports_share_the_bad_page_rate_limit() {
    let m = i386_nopcp(64);
    let bad_pages = m.stats().bad_pages.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..70 {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages_addr(8 as *const u8, 0) };
    }
    assert_eq!(count_log(&m, "address is not in the direct map"), 60);
    assert_eq!(m.stats().bad_pages.load(std::sync::atomic::Ordering::SeqCst), bad_pages + 70);
    check(&m);
}

/// A page count whose byte length wraps must not pass the bounds check of `PhysMem::zero` or
/// `discard` (found in review: `offset + len` wrapped to a small number and the zeroing ran
/// over most of the address space).
#[test]
fn phys_zero_and_discard_refuse_ranges_that_wrap() {
    let m = i386_nopcp(64);
    let free = m.total_free();
    // SAFETY: Both calls must refuse the range before touching anything; no page is in it.
    unsafe {
        assert!(!m.phys().zero(1, usize::MAX >> 12), "wrapping length");
        assert!(!m.phys().zero(usize::MAX >> 12, 1), "pfn past every byte");
        assert!(!m.phys().discard(1, usize::MAX >> 12));
        assert!(!m.phys().zero(m.phys().len() >> 12, 1), "one past the end");
    }
    assert_eq!(m.total_free(), free);
    check(&m);
}

/// Watermarks from the safe setters cannot overflow the watermark arithmetic (soundness
/// audit: `usize::MAX` marks made debug builds panic in trim, kswapd's balance test and
/// meminfo, and release builds wrap so `GFP_NOWAIT` passed an "infinite" mark). Marks above
/// `MAX_WMARK_PAGES` and a `min_free_kbytes` above the sysctl's `int` are refused and change
/// nothing; the largest accepted values close the zones and every reader copes.
#[test]
fn huge_watermarks_are_refused_and_the_largest_accepted_close_the_zones() {
    use kmem::gfp::{__GFP_NOWARN, GFP_NOWAIT};
    use kmem::zone::{Wmark, ZoneType};
    let m = i386_nopcp(64);
    let before = m.zone(ZoneType::Normal).wmark(Wmark::Low);
    assert!(m.set_zone_watermarks(ZoneType::Normal, [usize::MAX; 4]).is_err());
    assert!(m.set_zone_watermarks(ZoneType::Normal, [0, 0, 0, kmem::MAX_WMARK_PAGES + 1]).is_err());
    assert_eq!(m.zone(ZoneType::Normal).wmark(Wmark::Low), before, "a refused call sets nothing");
    assert!(m.set_min_free_kbytes(i32::MAX as usize + 1).is_err());
    assert_eq!(m.zone(ZoneType::Normal).wmark(Wmark::Low), before);

    for kind in [ZoneType::Dma, ZoneType::Normal] {
        m.set_zone_watermarks(kind, [kmem::MAX_WMARK_PAGES; 4]).expect("the largest mark");
    }
    // Every reader of the marks copes (debug builds check the arithmetic).
    let _ = (m.trim(), m.trim_aged(), m.kswapd_balance(), m.meminfo(), m.zoneinfo());
    assert!(m.alloc_pages(GFP_NOWAIT | __GFP_NOWARN, 0).is_err(), "a closed zone gives nothing");
    assert!(m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0).is_err(), "not even to the reserves");

    // The largest min_free_kbytes is taken (as the sysctl takes it) and recomputes the marks.
    m.set_min_free_kbytes(i32::MAX as usize).expect("the sysctl's largest value");
    assert!(m.zone(ZoneType::Normal).wmark(Wmark::Min) > m.zone(ZoneType::Normal).managed());
    let _ = (m.trim(), m.kswapd_balance(), m.meminfo(), m.zoneinfo());
    assert!(m.alloc_pages(GFP_NOWAIT | __GFP_NOWARN, 0).is_err());
    check(&m);
}

/// Run in a child process by [`a_panicking_constructor_aborts_instead_of_unwinding`]: a raw
/// cache whose constructor panics, then an allocation that runs it.
#[test]
#[ignore = "helper run in a child process"]
fn panicking_ctor_child() {
    if std::env::var("KMEM_PANIC_CTOR_CHILD").is_err() {
        return;
    }
    unsafe fn boom(_ctx: *const (), _obj: *mut u8) {
        panic!("constructor failed");
    }
    let m = i386_nopcp(32);
    // SAFETY: Callable from any thread (it only panics, which is what the test is about).
    let ctor = unsafe { kmem::slab::ObjFn::new(boom, std::ptr::null()) };
    let args = kmem::slab::CacheArgs { ctor: Some(ctor), ..Default::default() };
    let cache = m.kmem_cache_create("panicky", 64, &args, Default::default()).expect("cache");
    let _ = m.kmem_cache_alloc(cache, GFP_KERNEL);
    println!("child survived");
}

/// A constructor or destructor that panics may not unwind through the allocator (it would
/// leave a slab half set up, locks' work half done): the process aborts after the panic's
/// message and kmem's own (soundness audit: the raw API let it unwind out of
/// `kmem_cache_alloc`).
#[test]
fn a_panicking_constructor_aborts_instead_of_unwinding() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "misuse::panicking_ctor_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("KMEM_PANIC_CTOR_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("child survived"), "the panic unwound: {out:?}");
    assert_eq!(out.status.signal(), Some(6), "SIGABRT: {out:?}");
    assert!(stderr.contains("constructor failed"), "{stderr}");
    assert!(stderr.contains("kmem: a slab constructor or destructor panicked"), "{stderr}");
}
