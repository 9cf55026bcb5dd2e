//! A `CacheRef` is the kernel's `struct kmem_cache *`: a copyable pointer with no lifetime.
//! Every safe operation that takes one checks that it names a live cache of the machine it is
//! given to, and reports and refuses one that does not (SL-12's destroyed caches, another
//! machine's caches, a dropped machine's caches). Before the check each of these followed the
//! stray pointer: a segfault, or another machine's slabs taking this machine's pages.

use kmem::gfp::GFP_KERNEL;
use kmem::slab::flags::{SLAB_NO_MERGE, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef};
use kmem::{KmemCache, Machine};

use crate::{check, count_log, i386_nopcp};

const NOT_LIVE: &str = "called with a struct kmem_cache pointer that is not a live cache of this machine";

/// A 64-byte cache of its own (never merged into another, SL-6).
fn cache(m: &Machine, name: &str) -> CacheRef {
    m.kmem_cache_create(name, 64, &CacheArgs::default(), SLAB_NO_MERGE).expect("cache")
}

/// Every safe entry point refuses `c` on `m`, with one report each, and changes nothing.
fn assert_refused(m: &Machine, c: CacheRef) {
    let before = count_log(m, NOT_LIVE);
    let free = m.total_free();
    assert!(!m.is_live_cache(c));
    assert!(m.cache(c).is_none() && m.cache_name(c).is_none());
    assert!(m.kmem_cache_alloc(c, GFP_KERNEL).is_err());
    assert!(m.kmem_cache_zalloc(c, GFP_KERNEL).is_err());
    assert!(m.kmem_cache_alloc_node(c, GFP_KERNEL, -1).is_err());
    assert!(m.kmalloc_trace(c, GFP_KERNEL, 16).is_err());
    let mut out = [std::ptr::dangling_mut::<u8>(); 4];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut out), 0);
    assert!(out.iter().all(|p| p.is_null()), "a refused bulk leaves no stale pointers");
    assert_eq!(m.kmem_cache_shrink(c), -22, "-EINVAL");
    assert_eq!(m.kmem_cache_size(c), 0);
    assert!(m.validate_slab_cache(c).is_err());
    assert_eq!(count_log(m, NOT_LIVE), before + 8, "one report per refused call");
    assert_eq!(m.total_free(), free, "a refused call takes no memory");
    let info = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.cache_info(c)));
    assert!(info.is_err(), "cache_info of a dead handle panics (it has no error value)");
    check(m);
}

#[test]
fn another_machines_cache_is_refused_and_both_machines_stay_whole() {
    let (a, b) = (i386_nopcp(32), i386_nopcp(32));
    let theirs = cache(&a, "handles-a");
    let obj = a.kmem_cache_alloc(theirs, GFP_KERNEL).unwrap();
    assert_refused(&b, theirs);
    assert!(count_log(&b, "BUG: unable to handle page fault for address:") >= 1);
    // `a` still owns and serves its cache.
    assert!(a.is_live_cache(theirs));
    // SAFETY: `obj` came from `theirs` on `a` and is freed once.
    unsafe { a.kmem_cache_free(theirs, obj.as_ptr()) };
    // SAFETY: Destroyed once, nothing uses it afterwards.
    unsafe { a.kmem_cache_destroy(theirs) }.unwrap();
    check(&a);
}

#[test]
fn a_dropped_machines_cache_is_refused_without_touching_its_memory() {
    let gone = {
        let a = i386_nopcp(32);
        cache(&a, "handles-gone")
    };
    // The first machine's memory is unmapped now; following `gone` would fault.
    let b = i386_nopcp(32);
    assert_refused(&b, gone);
    assert!(format!("{gone:?}").starts_with("CacheRef(0x"), "Debug prints the address only");
}

#[test]
fn a_destroyed_cache_is_refused_and_a_second_destroy_is_reported() {
    let m = i386_nopcp(32);
    let c = cache(&m, "handles-destroyed");
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    // SAFETY: `obj` is ours, freed once.
    unsafe { m.kmem_cache_free(c, obj.as_ptr()) };
    // SAFETY: Nothing uses `c` concurrently; the uses below are the safe, checked ones.
    unsafe { m.kmem_cache_destroy(c) }.unwrap();
    assert_refused(&m, c);
    let before = count_log(&m, NOT_LIVE);
    // SAFETY: As above: a destroy of a dead handle is checked and refused.
    assert!(unsafe { m.kmem_cache_destroy(c) }.is_ok());
    assert_eq!(count_log(&m, NOT_LIVE), before + 1, "kmem_cache_destroy of a destroyed cache is reported");
    assert!(count_log(&m, "kmem_cache_destroy() called with a struct kmem_cache pointer") == 1);
}

#[test]
fn sl12_a_cache_kept_for_its_leaked_objects_is_no_longer_live() {
    let m = i386_nopcp(32);
    let c = cache(&m, "handles-leaky");
    let _leaked = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    // SAFETY: Nothing uses `c` concurrently, and the leaked object is never freed to it.
    assert!(unsafe { m.kmem_cache_destroy(c) }.is_err(), "SL-12: objects remain");
    assert!(!m.is_live_cache(c), "unlinked: the kept memory is not a cache to allocate from");
    assert!(m.kmem_cache_alloc(c, GFP_KERNEL).is_err());
}

#[test]
fn a_typed_caches_raw_handle_dies_with_the_last_clone() {
    let m = i386_nopcp(32);
    let typed = KmemCache::<u64>::new_default(&m, "handles-typed", SlabFlags::default()).unwrap();
    // SAFETY: No call through `raw` runs while `typed` goes; afterwards it is only checked.
    let raw = unsafe { typed.cache_ref() };
    assert!(m.is_live_cache(raw) && m.cache_name(raw) == Some("handles-typed"));
    drop(typed);
    assert_refused(&m, raw);
}

#[test]
fn a_wrong_cache_free_naming_a_dead_cache_frees_to_the_real_one() {
    let m = i386_nopcp(32);
    let (real, dead) = (cache(&m, "handles-real"), cache(&m, "handles-dead"));
    // SAFETY: Nothing uses `dead` concurrently.
    unsafe { m.kmem_cache_destroy(dead) }.unwrap();
    let obj = m.kmem_cache_alloc(real, GFP_KERNEL).unwrap();
    let active = m.cache_info(real).active_objs;
    // SAFETY: `obj` is ours and freed once (to its own cache, found from its slab).
    unsafe { m.kmem_cache_free(dead, obj.as_ptr()) };
    assert_eq!(count_log(&m, "kmem_cache_free() called with a struct kmem_cache pointer"), 1);
    assert_eq!(count_log(&m, "Wrong slab cache"), 0, "a dead handle has no name to print");
    // The object went back to `real`: the next allocation gets it (LIFO per-CPU array).
    assert_eq!(m.kmem_cache_alloc(real, GFP_KERNEL).unwrap(), obj);
    assert_eq!(m.cache_info(real).active_objs, active);
    check(&m);
}

#[test]
fn pa16_a_live_caches_own_page_is_refused_by_free_pages() {
    let m = i386_nopcp(32);
    let c = cache(&m, "handles-struct");
    let page = m.virt_to_page(c.as_ptr().cast()).expect("a cache lives in the direct map");
    let free = m.total_free();
    // SAFETY: Deliberate misuse that the allocator must refuse: the page is the cache's, and
    // `PG_CACHE` makes the free a reported no-op (nothing is freed, so nothing is aliased).
    unsafe { m.free_pages(page, page.order()) };
    assert_eq!(count_log(&m, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set"), 1);
    assert_eq!(m.total_free(), free, "nothing was freed");
    assert!(m.is_live_cache(c));
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    // SAFETY: Ours, freed once.
    unsafe { m.kmem_cache_free(c, obj.as_ptr()) };
    check(&m);
}
