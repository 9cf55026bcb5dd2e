//! How a slab gets its pages (SEMANTICS §3.5, `new_slab`/`allocate_slab`): the first attempt
//! at the preferred order without retries or warnings, then the minimum order with the
//! caller's own flags (PA-13/PA-14 apply to it); only the caller's reclaim and constraint bits
//! reach the page allocator; fallback slabs are counted with the pages they have (PROC-3).

use std::time::Duration;

use kmem::MAX_PAGE_ORDER;
use kmem::gfp::*;
use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_RECLAIM_ACCOUNT};
use kmem::slab::{CacheArgs, ObjFn};
use kmem::zone::ZoneType;

use crate::*;

/// §3.5/PA-14: an order-0 cache's `GFP_KERNEL` allocation gets the page allocator's full
/// semantics through the second attempt (here: the OOM step, whose notifier frees a block),
/// not only the first `__GFP_NORETRY` attempt.
#[test]
fn gfp_kernel_slab_retries_with_the_callers_flags_up_to_the_oom_step() {
    let m = i386_nopcp(64);
    let c = m.kmem_cache_create("retry64", 64, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let mut held = exhaust(&m);
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let reg = register_oom(&m, vec![block]);
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL);
    assert!(obj.is_ok(), "kmem_cache_alloc(GFP_KERNEL) failed; OOM notifier calls: {}", reg.notifier.calls());
    assert!(reg.notifier.calls() >= 1, "the OOM step ran");
    // SAFETY: Just allocated from `c`, freed once.
    unsafe { m.kmem_cache_free(c, obj.unwrap().as_ptr()) };
    drop(reg);
    free_all(&m, held);
    check(&m);
}

/// §3.5/PA-14: `__GFP_NOFAIL` reaches the page allocator on the second attempt, so the slab
/// allocation waits for reclaim to make progress instead of failing.
#[test]
fn nofail_slab_allocation_waits_for_reclaim() {
    let m = i386_nopcp(64);
    m.set_oom_timeout_ns(Duration::from_millis(1).as_nanos() as u64);
    let c = m.kmem_cache_create("nofail64", 64, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let mut held = exhaust(&m);
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    // Frees its block only on the third call: the first passes make no progress.
    let reg = register(&m, TestShrinker::new(&m, vec![block], 3, false));
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL | __GFP_NOFAIL | __GFP_NOWARN);
    assert!(obj.is_ok(), "kmem_cache_alloc(__GFP_NOFAIL) failed; shrinker calls: {}", reg.shrinker.calls());
    // SAFETY: As above.
    unsafe { m.kmem_cache_free(c, obj.unwrap().as_ptr()) };
    drop(reg);
    free_all(&m, held);
}

/// The same for kmalloc, whose first use of a class also makes the class's cache: neither
/// that nor the slab may fail a `__GFP_NOFAIL` request.
#[test]
fn nofail_kmalloc_of_a_new_class_waits_for_reclaim() {
    let m = i386_nopcp(64);
    m.set_oom_timeout_ns(Duration::from_millis(1).as_nanos() as u64);
    let mut held = exhaust(&m);
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let reg = register(&m, TestShrinker::new(&m, vec![block], 3, false));
    let p = m.kmalloc(3000, GFP_KERNEL | __GFP_NOFAIL | __GFP_NOWARN);
    assert!(p.is_ok(), "kmalloc(3000, __GFP_NOFAIL) failed; shrinker calls: {}", reg.shrinker.calls());
    // SAFETY: Just allocated, freed once.
    unsafe { m.kfree(p.unwrap().as_ptr()) };
    drop(reg);
    free_all(&m, held);
}

/// A mask that already has `__GFP_NORETRY|__GFP_NOWARN` and no `__GFP_NOFAIL` (as
/// `mempool_alloc`'s first pass) makes one attempt: the second would be the same request. It
/// fails quietly on an exhausted machine (only the SLUB report, which `__GFP_NOWARN` silences).
#[test]
fn a_noretry_nowarn_slab_request_fails_once_and_quietly() {
    let m = i386_nopcp(64);
    let c = m.kmem_cache_create("quiet64", 64, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let held = exhaust(&m);
    m.log().clear();
    let fails0 = m.pages().nr_alloc_fail();
    assert!(m.kmem_cache_alloc(c, GFP_ATOMIC | __GFP_NORETRY | __GFP_NOWARN).is_err());
    assert_eq!(m.pages().nr_alloc_fail() - fails0, 1, "one page allocation attempt; {:#?}", log_lines(&m));
    assert!(log_lines(&m).is_empty(), "{:#?}", log_lines(&m));
    // Without __GFP_NOWARN the second attempt warns (warn_alloc) and so does SLUB.
    assert!(m.kmem_cache_alloc(c, GFP_ATOMIC).is_err());
    assert_eq!(m.pages().nr_alloc_fail() - fails0, 3, "two more attempts");
    assert_eq!(count_log(&m, "page allocation failure"), 1, "{:#?}", log_lines(&m));
    assert_eq!(count_log(&m, "SLUB: Unable to allocate memory"), 1);
    free_all(&m, held);
}

/// PROC-3: a slab made at the fallback order counts the pages it has, in `cache_info` and in
/// meminfo's `SUnreclaim`; `check` agrees.
#[test]
fn a_fallback_order_slab_counts_its_own_pages() {
    let m = i386_nopcp(64);
    let c = m.kmem_cache_create("fallback1k", 1024, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    assert!(m.slabinfo().lines().any(|l| l.starts_with("fallback1k ") && l.contains(" 16    4 :")), "{}", m.slabinfo());
    // Lowmem fragmented: every page taken, then every other one given back.
    let mut pages = Vec::new();
    while let Ok(p) = m.alloc_pages(GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN, 0) {
        pages.push(p);
    }
    let mut keep = Vec::new();
    for (i, p) in pages.into_iter().enumerate() {
        if i % 2 == 0 {
            // SAFETY: Our page, not used.
            unsafe { m.free_pages(p, 0) }
        } else {
            keep.push(p);
        }
    }
    let before = m.slab_pages().1;
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL).expect("an order-0 fallback slab");
    let page = m.virt_to_page(obj.as_ptr()).unwrap();
    assert_eq!(page.order(), 0, "made at the minimum order");
    let info = m.cache_info(c);
    assert_eq!((info.slabs, info.pages), (1, 1));
    let after = m.slab_pages().1;
    let grown = after - before;
    assert!((1..=2).contains(&grown), "SUnreclaim grew by {grown} pages (the slab, maybe a descriptor page)");
    check(&m); // The node's counters agree with its lists (fallback slabs included).
    // SAFETY: As above.
    unsafe { m.kmem_cache_free(c, obj.as_ptr()) };
    m.kmem_cache_shrink(c);
    assert_eq!(m.slab_pages().1, after - 1, "the slab's one page given back");
    for p in keep {
        // SAFETY: Our page, not used.
        unsafe { m.free_pages(p, 0) }
    }
    check(&m);
}

/// §3.5: the caller's zone and mobility bits do not choose where a slab lives; a plain
/// cache's slab is not taken from ZONE_DMA because a caller passed `GFP_DMA`.
#[test]
fn callers_zone_bits_do_not_move_a_plain_caches_slabs() {
    let m = i386_nopcp(64);
    let c = m.kmem_cache_create("plain256", 256, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let dma0 = m.zone(ZoneType::Dma).free_pages();
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL | GFP_DMA).unwrap();
    let pfn = m.virt_to_pfn(obj.as_ptr()).unwrap();
    assert!(pfn >= DMA_END_PFN, "slab taken from ZONE_DMA (pfn {pfn:#x})");
    assert_eq!(m.zone(ZoneType::Dma).free_pages(), dma0);
    // SAFETY: As above.
    unsafe { m.kmem_cache_free(c, obj.as_ptr()) };
    // kmalloc with GFP_DMA still gets DMA memory: from the DMA kmalloc cache (its own flags).
    let p = m.kmalloc(256, GFP_KERNEL | GFP_DMA).unwrap();
    assert!(m.virt_to_pfn(p.as_ptr()).unwrap() < DMA_END_PFN, "kmalloc-dma-256 lives in ZONE_DMA");
    // SAFETY: Just allocated, freed once.
    unsafe { m.kfree(p.as_ptr()) };
}

/// SAFETY: a constructor for 64-byte objects.
unsafe fn fill(_ctx: *const (), obj: *mut u8) {
    // SAFETY: `obj` is an object of at least 4 bytes (the cache's contract).
    unsafe { obj.cast::<u32>().write_unaligned(0x4141_4141) };
}

/// §3.5: `__GFP_ZERO` on a cache with a constructor: `WARN_ON_ONCE` when a slab is made.
#[test]
fn gfp_zero_on_a_cache_with_a_constructor_warns_once() {
    let m = i386_nopcp(64);
    // SAFETY: `fill` writes only the object it is given, from any thread.
    let args = CacheArgs { ctor: Some(unsafe { ObjFn::new(fill, std::ptr::null()) }), ..CacheArgs::default() };
    let c = m.kmem_cache_create("ctor64", 64, &args, SLAB_NO_MERGE).unwrap();
    let d = m.kmem_cache_create("ctor64b", 64, &args, SLAB_NO_MERGE).unwrap();
    m.log().clear();
    let a = m.kmem_cache_zalloc(c, GFP_KERNEL).unwrap();
    let b = m.kmem_cache_zalloc(d, GFP_KERNEL).unwrap();
    assert_eq!(count_log(&m, "new_slab: __GFP_ZERO for cache ctor64 with a constructor"), 1, "{:#?}", log_lines(&m));
    assert_eq!(count_log(&m, "WARNING: CPU"), 1, "once per machine");
    // SAFETY: Just allocated from their caches, freed once.
    unsafe {
        m.kmem_cache_free(c, a.as_ptr());
        m.kmem_cache_free(d, b.as_ptr());
    }
}

/// PA-1/KM-5: `kmalloc` above `KMALLOC_MAX_SIZE` fails with the page allocator's
/// `WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER)`: once per machine, shared with `alloc_pages`.
#[test]
fn kmalloc_above_the_largest_order_warns_once_with_alloc_pages() {
    let m = i386_nopcp(64);
    m.log().clear();
    assert!(m.kmalloc(8 << 20, GFP_KERNEL).is_err());
    assert!(m.kmalloc(8 << 20, GFP_KERNEL).is_err());
    assert!(m.alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER + 1).is_err());
    assert_eq!(count_log(&m, "order 11 > MAX_PAGE_ORDER"), 1, "{:#?}", log_lines(&m));
    assert_eq!(count_log(&m, "above KMALLOC_MAX_SIZE"), 1, "kmem's note goes with the warning");
}

/// PROC-3 with SL-12: a cache destroyed with objects still out keeps its slabs for good (the
/// destroy reports them), and they stay slab memory in `/proc/meminfo` (`SReclaimable` for a
/// `SLAB_RECLAIM_ACCOUNT` cache, else `SUnreclaim`), as the kernel's counters keep them: the
/// pages are allocated, so `Slab` must not lose them (it did: they counted nowhere).
#[test]
fn slabs_of_a_cache_destroyed_with_objects_out_stay_in_meminfo() {
    let m = i386_nopcp(64);
    for (name, flags, key) in
        [("kept", SLAB_NO_MERGE, "SUnreclaim"), ("kept-rcl", SLAB_NO_MERGE | SLAB_RECLAIM_ACCOUNT, "SReclaimable")]
    {
        let c = m.kmem_cache_create(name, 200, &CacheArgs::default(), flags).unwrap();
        let _leaked = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
        assert!(m.cache_info(c).pages > 0);
        let before = meminfo_kb(&m, key);
        // SAFETY: `c` is not used again; its object is left allocated on purpose.
        assert!(unsafe { m.kmem_cache_destroy(c) }.is_err(), "an object is still out");
        assert_eq!(meminfo_kb(&m, key), before, "{name}: the kept slab is still slab memory");
        let used_kb = meminfo_kb(&m, "MemTotal") - meminfo_kb(&m, "MemFree");
        assert_eq!(meminfo_kb(&m, "Slab"), used_kb, "{name}: every page in use is the slab allocator's");
    }
}
