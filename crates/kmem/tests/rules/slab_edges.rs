//! Edges of the slab API found by using it as a kernel developer porting code would: frees of
//! things that are not objects of the cache named, a destroy with objects left, and the
//! reports they get in the kernel's words (SL-12, SL-18, §3.7, §3.8); fault injection of bulk
//! and sheaf fills (SL-9).

use std::sync::atomic::Ordering;

use kmem::gfp::{GFP_ATOMIC, GFP_KERNEL};
use kmem::slab::CacheArgs;
use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_STORE_USER};
use kmem::{PAGE_SIZE, Profile};

use crate::{builder, check, count_log, i386_nopcp, log_lines};

/// `kmem_cache_free(s, kmalloc(3 pages))`: the pointer is the start of a large kmalloc, not
/// an object of any slab. The kernel's `cache_from_obj` says `virt_to_cache: Object is not a
/// Slab page!` and frees nothing; the report must not call the allocation's own start
/// "not the start" of itself.
#[test]
fn kmem_cache_free_of_a_large_kmalloc_says_it_is_not_a_slab_page() {
    let m = i386_nopcp(32);
    let c = m.kmem_cache_create("edge-large", 100, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let large = m.kmalloc(3 * PAGE_SIZE, GFP_KERNEL).unwrap();
    // SAFETY: Not an object of `c`: reported and ignored, nothing written.
    unsafe { m.kmem_cache_free(c, large.as_ptr()) };
    assert_eq!(count_log(&m, "kmem_cache_free: object pointer: 0x"), 1);
    assert_eq!(count_log(&m, "Object is not a Slab page!"), 1, "{:#?}", log_lines(&m));
    assert_eq!(count_log(&m, "Not the start of a kmalloc allocation"), 0, "{:#?}", log_lines(&m));
    // Still live: kfree frees it once, silently.
    let errors = m.slabs().errors();
    // SAFETY: The test's own large kmalloc, freed once.
    unsafe { m.kfree(large.as_ptr()) };
    assert_eq!(m.slabs().errors(), errors);
    // SAFETY: Empty, not used afterwards.
    unsafe { m.kmem_cache_destroy(c) }.unwrap();
    check(&m);
}

/// SL-12 / SEMANTICS §3.7: `kmem_cache_destroy` with objects left lists the objects of each
/// *partial* slab (`free_partial` → `list_slab_objects`); a full slab is on no list the
/// shutdown walks, so its objects are not listed, but they still make the destroy fail with
/// the `still has objects` warning and keep the cache's memory.
#[test]
fn destroy_lists_the_objects_of_partial_slabs_only() {
    let m = i386_nopcp(32);
    let c = m.kmem_cache_create("edge-full", 100, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    // One slab's worth plus one: the first slab is full, the second holds one object.
    let first = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let per_slab = m.cache_info(c).num_objs;
    let mut objs = vec![first];
    objs.extend((1..=per_slab).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).unwrap()));
    assert_eq!(m.cache_info(c).slabs, 2, "a full slab and a partial one");
    // SAFETY: Not used afterwards (the objects stay out: the destroy keeps the cache).
    let e = unsafe { m.kmem_cache_destroy(c) }.expect_err("objects remain");
    assert_eq!(e.live_objects, per_slab + 1, "every object out is counted");
    let log = log_lines(&m);
    assert_eq!(
        count_log(&m, "BUG edge-full (Not tainted): Objects remaining on __kmem_cache_shutdown()"),
        1,
        "{log:#?}"
    );
    assert_eq!(count_log(&m, "@offset="), 1, "only the partial slab's object is listed: {log:#?}");
    assert_eq!(count_log(&m, "kmem_cache_destroy edge-full: Slab cache still has objects when called from"), 1);
}

/// All objects left in full slabs: no `list_slab_objects` report at all, only the warning,
/// and the destroy still fails (`__kmem_cache_shutdown` sees the slabs).
#[test]
fn destroy_with_only_full_slabs_left_warns_without_listing() {
    let m = i386_nopcp(32);
    let c = m.kmem_cache_create("edge-allfull", 100, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let first = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let per_slab = m.cache_info(c).num_objs;
    let mut objs = vec![first];
    objs.extend((1..per_slab).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).unwrap()));
    assert_eq!(m.cache_info(c).slabs, 1);
    // SAFETY: Not used afterwards.
    let e = unsafe { m.kmem_cache_destroy(c) }.expect_err("objects remain");
    assert_eq!(e.live_objects, per_slab);
    assert_eq!(count_log(&m, "Objects remaining on __kmem_cache_shutdown()"), 0, "{:#?}", log_lines(&m));
    assert_eq!(count_log(&m, "kmem_cache_destroy edge-allfull: Slab cache still has objects when called from"), 1);
}

/// SL-9 under failslab: `kmem_cache_alloc_bulk` asks `should_failslab` once for the whole
/// call (`slab_pre_alloc_hook` in `kmem_cache_alloc_bulk_noprof`), not once per object. With
/// every second eligible call failing, bulk calls and single allocations take turns: the
/// first bulk gets all its objects, the single allocation after it fails, the next bulk
/// succeeds, the one after fails whole (nothing handed out).
#[test]
fn failslab_decides_once_per_bulk_call() {
    let m = builder(Profile::X86_64, 64).pcp(false).failslab("2,100,0,-1,verbose=0").build().unwrap();
    let c = m.kmem_cache_create("edge-fsbulk", 128, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let mut objs = vec![std::ptr::null_mut(); 50];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut objs), 50, "eligible call 1: no failure");
    assert!(m.kmem_cache_alloc(c, GFP_ATOMIC).is_err(), "eligible call 2 fails");
    let mut more = vec![std::ptr::null_mut(); 50];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut more), 50, "eligible call 3: no failure");
    let mut failed = vec![std::ptr::null_mut(); 50];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut failed), 0, "eligible call 4 fails whole");
    assert!(failed.iter().all(|p| p.is_null()), "nothing handed out");
    assert_eq!(m.slabs().failslab().injected.load(Ordering::SeqCst), 2, "one failure per failing call");
    // SAFETY: Ours, unused from now on.
    unsafe {
        m.kmem_cache_free_bulk(Some(c), &objs);
        m.kmem_cache_free_bulk(Some(c), &more);
    }
    // SAFETY: Empty, not used afterwards.
    unsafe { m.kmem_cache_destroy(c) }.unwrap();
    check(&m);
}

/// The objects of a prefilled sheaf come from `__kmem_cache_alloc_bulk`, which failslab does
/// not gate (only the `kzalloc` of the sheaf itself is a slab allocation that can fail): with
/// every second eligible call failing, the sheaf's own allocation is call 1 and its objects
/// take no turn.
#[test]
fn failslab_does_not_gate_the_objects_of_a_sheaf_fill() {
    let m = builder(Profile::X86_64, 64).pcp(false).failslab("2,100,0,-1,verbose=0").build().unwrap();
    let args = CacheArgs { sheaf_capacity: 8, ..CacheArgs::default() };
    let c = m.kmem_cache_create("edge-fssheaf", 128, &args, SLAB_NO_MERGE).unwrap();
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_ATOMIC, 8).expect("the fill is not fault-injected");
    assert_eq!(m.slabs().failslab().injected.load(Ordering::SeqCst), 0);
    // SAFETY: Our sheaf of `c`, returned once.
    assert!(unsafe { m.kmem_cache_return_sheaf(c, GFP_KERNEL, sheaf) }, "the sheaf is taken back");
    // SAFETY: Not used afterwards.
    unsafe { m.kmem_cache_destroy(c) }.unwrap();
    check(&m);
}

/// SL-18: `kmem_cache_free(s, p)` with `p` from another cache `t`: `cache_from_obj`'s
/// `WARN(..., "Wrong slab cache. %s but object is from %s")` is followed by
/// `print_tracking(t, p)`: with `SLAB_STORE_USER` on `t`, where the object was allocated. The
/// object is then freed to `t`.
#[test]
fn a_free_to_the_wrong_cache_prints_the_objects_tracking() {
    let m = i386_nopcp(32);
    let real = m.kmem_cache_create("edge-tracked", 100, &CacheArgs::default(), SLAB_STORE_USER).unwrap();
    let given = m.kmem_cache_create("edge-given", 200, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let obj = m.kmem_cache_alloc(real, GFP_KERNEL).unwrap();
    let before = log_lines(&m).len();
    // SAFETY: Our object (of `real`), freed once, unused afterwards.
    unsafe { m.kmem_cache_free(given, obj.as_ptr()) };
    let lines = log_lines(&m)[before..].to_vec();
    let warn = lines.iter().position(|l| l.contains("Wrong slab cache. edge-given but object is from edge-tracked"));
    let alloc = lines.iter().position(|l| l.starts_with("Allocated in ") && l.contains("slab_edges.rs"));
    assert!(warn.is_some() && alloc.is_some() && warn < alloc, "{lines:#?}");
    assert_eq!(m.cache_info(real).active_objs, m.cache_info(real).cpu_objects, "freed to its real cache");
    // SAFETY: Both empty, not used afterwards.
    unsafe {
        m.kmem_cache_destroy(real).unwrap();
        m.kmem_cache_destroy(given).unwrap();
    }
}

/// SEMANTICS §3.8, `__slab_bug`: the header is a line of 77 `=`, the `BUG` line, a line of
/// 77 `-` and a blank line (`pr_err("---…---\n\n")`), before the report's own lines.
#[test]
fn a_slab_bug_header_ends_with_a_blank_line() {
    let m = i386_nopcp(32);
    let c = m.kmem_cache_create("edge-hdr", 100, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let before = log_lines(&m).len();
    // SAFETY: Not an object start: reported and ignored, nothing written.
    unsafe { m.kmem_cache_free(c, obj.as_ptr().wrapping_add(8)) };
    let lines = log_lines(&m)[before..].to_vec();
    let bug =
        lines.iter().position(|l| l.starts_with("BUG edge-hdr (Not tainted): Invalid object pointer")).expect("report");
    assert_eq!(lines[bug - 1], "=".repeat(77), "{lines:#?}");
    assert_eq!(lines[bug + 1], "-".repeat(77), "{lines:#?}");
    assert_eq!(lines[bug + 2], "", "a blank line after the dashes: {lines:#?}");
    // SAFETY: Our object, freed once.
    unsafe { m.kmem_cache_free(c, obj.as_ptr()) };
    // SAFETY: Empty, not used afterwards.
    unsafe { m.kmem_cache_destroy(c) }.unwrap();
}

/// `slab_debug=O` (SEMANTICS §3.8; `kmem_cache_open`'s `disable_higher_order_debug`): a cache
/// whose debug metadata raises the order one object needs (`get_order(size)` above
/// `get_order(object_size)`) drops the metadata flags (red zone, poison, store user) and keeps
/// the rest; a cache whose order is not raised keeps them all. Without `O` both keep them.
#[test]
fn slab_debug_o_drops_the_metadata_of_caches_whose_order_it_would_raise() {
    use kmem::slab::flags::{SLAB_CONSISTENCY_CHECKS, SLAB_POISON, SLAB_RED_ZONE};
    let metadata = SLAB_RED_ZONE.union(SLAB_POISON).union(SLAB_STORE_USER);
    for (spec, big_keeps) in [("FZPU", true), ("FZPUO", false), ("O;FZPU", false)] {
        let m = builder(Profile::X86_64, 64).slub_debug(spec).build().unwrap();
        let big = m.kmem_cache_create("edge-o4k", 4096, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
        let small = m.kmem_cache_create("edge-o2k", 2048, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
        let (b, s) = (m.cache(big).unwrap(), m.cache(small).unwrap());
        assert!(s.flags().contains(metadata) && s.size() > 2048, "{spec}: 2048 + metadata stays order 0");
        assert!(b.flags().contains(SLAB_CONSISTENCY_CHECKS), "{spec}: F is no metadata");
        assert_eq!(b.flags().intersects(metadata), big_keeps, "{spec}: {:?}", b.flags());
        assert_eq!(b.size() > 4096, big_keeps, "{spec}: stride {}", b.size());
        let obj = m.kmem_cache_alloc(big, GFP_KERNEL).unwrap();
        // SAFETY: Ours, freed once; then both caches are empty and unused.
        unsafe {
            m.kmem_cache_free(big, obj.as_ptr());
            m.kmem_cache_destroy(big).unwrap();
            m.kmem_cache_destroy(small).unwrap();
        }
        check(&m);
    }
}

/// `slab_out_of_memory` (SEMANTICS §3.5): when the minimum order of a cache is above the order
/// of its object size (debug metadata raised it), the report says so after the cache line:
/// `  <cache> debugging increased min order, use slab_debug=O to disable.`
#[test]
fn slab_out_of_memory_says_when_debugging_increased_the_min_order() {
    let m = builder(Profile::X86_64, 64).pcp(false).slub_debug("FZPU").build().unwrap();
    let big = m.kmem_cache_create("edge-oom4k", 4096, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let held = crate::exhaust(&m);
    assert!(m.kmem_cache_alloc(big, GFP_ATOMIC).is_err());
    crate::free_all(&m, held);
    let lines = log_lines(&m);
    let cache = lines.iter().position(|l| l.starts_with("  cache: edge-oom4k, object size: 4096,")).expect("report");
    assert_eq!(
        lines[cache + 1],
        "  edge-oom4k debugging increased min order, use slab_debug=O to disable.",
        "{lines:#?}"
    );
    assert!(lines[cache + 2].starts_with("  node 0: slabs: "), "{lines:#?}");
    // SAFETY: Empty, not used afterwards.
    unsafe { m.kmem_cache_destroy(big) }.unwrap();
}
