//! The kmalloc family through a real machine, one or more tests per rule of SEMANTICS §4.3
//! (KM-1..11), plus `krealloc`, `kfree_sensitive` and the `_node` variants.

use crate::read_obj as read;
use std::ptr::NonNull;

use kmem::gfp::{__GFP_DMA32, __GFP_NOWARN, __GFP_RECLAIMABLE, __GFP_ZERO, GFP_DMA, GFP_KERNEL};
use kmem::kmalloc::classes::{ZERO_SIZE_PTR, kmalloc_size_roundup};
use kmem::slab::CacheArgs;
use kmem::slab::flags::SlabFlags;
use kmem::{Machine, PAGE_SIZE};

use crate::count_log;
use crate::slab::machine;

/// The class size of a kmalloc request, from SEMANTICS §4.1 written out independently of
/// the library: 8, 16, 32, 64, 96, 128, 192, then powers of two up to 8192.
fn class_of(n: usize) -> usize {
    [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192].into_iter().find(|&c| n <= c).expect("n <= 8192")
}

fn kfree(m: &Machine, p: NonNull<u8>) {
    // SAFETY: Every caller passes an allocation it owns and no longer uses.
    unsafe { m.kfree(p.as_ptr()) };
}

#[test]
fn km1_km6_km7_every_size_from_1_to_8192_gets_its_class() {
    let m = machine();
    for n in 1..=8192 {
        let class = class_of(n);
        let p = m.kmalloc(n, GFP_KERNEL).unwrap_or_else(|_| panic!("kmalloc({n})"));
        let addr = p.as_ptr() as usize;
        // SAFETY: The test's own object (or none: reported).
        assert_eq!(unsafe { m.ksize(p.as_ptr()) }, class, "KM-7: ksize of kmalloc({n})");
        let cache = m.kmalloc_cache(n, GFP_KERNEL).expect("class cache");
        assert_eq!(m.cache(cache).unwrap().name(), format!("kmalloc-{}", name_of(class)), "KM-1: class of {n}");
        assert_eq!(addr % 8, 0, "KM-6: 8-aligned");
        let natural = match class {
            96 => 32,
            192 => 64,
            c => c,
        };
        assert_eq!(addr % natural, 0, "KM-6: kmalloc({n}) in kmalloc-{class} aligned to {natural}");
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(p, &vec![0xa5; n]) }.expect("the whole request is usable");
        kfree(&m, p);
    }
}

fn name_of(class: usize) -> String {
    if class >= 1024 { format!("{}k", class / 1024) } else { class.to_string() }
}

#[test]
fn km1_spec_examples() {
    for (n, class) in [(1, 8), (9, 16), (17, 32), (33, 64), (65, 96), (97, 128), (129, 192), (193, 256), (4097, 8192)] {
        assert_eq!(class_of(n), class);
    }
    let m = machine();
    for (n, class) in [(200, 256), (1024, 1024), (1025, 2048), (8192, 8192)] {
        let p = m.kmalloc(n, GFP_KERNEL).expect("kmalloc");
        // SAFETY: The test's own object (or none: reported).
        assert_eq!(unsafe { m.ksize(p.as_ptr()) }, class, "kmalloc({n})");
        kfree(&m, p);
    }
}

#[test]
fn km2_km3_zero_size_and_null() {
    let m = machine();
    let free0 = m.total_free();
    let z = m.kmalloc(0, GFP_KERNEL).expect("kmalloc(0)");
    assert_eq!(z.as_ptr() as usize, ZERO_SIZE_PTR);
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(z.as_ptr()) }, 0);
    let errors = m.slabs().errors();
    kfree(&m, z);
    // SAFETY: NULL is accepted and ignored.
    unsafe { m.kfree(std::ptr::null()) };
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(std::ptr::null()) }, 0);
    assert_eq!(m.slabs().errors(), errors, "no report for NULL or ZERO_SIZE_PTR");
    assert_eq!(m.total_free(), free0, "nothing allocated");
}

#[test]
fn km4_large_requests_are_whole_pages() {
    let m = machine();
    let free0 = m.total_free();
    for (n, bytes) in [(8193, 16384), (3 * PAGE_SIZE, 4 * PAGE_SIZE), (4 << 20, 4 << 20)] {
        let p = m.kmalloc(n, GFP_KERNEL).expect("large kmalloc");
        // SAFETY: The test's own object (or none: reported).
        assert_eq!(unsafe { m.ksize(p.as_ptr()) }, bytes, "kmalloc({n})");
        assert_eq!(p.as_ptr() as usize % PAGE_SIZE, 0);
        assert_eq!(m.total_free(), free0 - bytes / PAGE_SIZE);
        assert_eq!(m.slab_pages().1, bytes / PAGE_SIZE, "counted as unreclaimable slab");
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(p, &vec![1; n]) }.expect("usable");
        kfree(&m, p);
        assert_eq!(m.total_free(), free0, "kfree gave the pages back");
    }
}

#[test]
fn km5_above_kmalloc_max_size_fails_and_nowarn_silences() {
    let m = machine();
    let free0 = m.total_free();
    assert!(m.kmalloc((4 << 20) + 1, GFP_KERNEL).is_err());
    assert_eq!(count_log(&m, "above KMALLOC_MAX_SIZE"), 1);
    assert!(m.kmalloc(64 << 20, GFP_KERNEL | __GFP_NOWARN).is_err());
    assert_eq!(count_log(&m, "above KMALLOC_MAX_SIZE"), 1, "__GFP_NOWARN: no new warning");
    assert_eq!(m.total_free(), free0);
}

#[test]
fn km8_size_roundup_examples() {
    for (n, r) in [(0, 0), (1, 8), (126, 128), (129, 192), (8192, 8192), (8193, 16384), (4 << 20, 4 << 20)] {
        assert_eq!(kmalloc_size_roundup(n), r, "kmalloc_size_roundup({n})");
    }
    assert_eq!(kmalloc_size_roundup((4 << 20) + 1), (4 << 20) + 1);
}

#[test]
fn km9_krealloc_in_place_grow_shrink_and_zero() {
    let m = machine();
    let p = m.kmalloc(10, GFP_KERNEL).expect("kmalloc");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &[7; 10]) }.unwrap();
    // SAFETY: `p` is ours; on success only the returned pointer is used.
    let q = unsafe { m.krealloc(p.as_ptr(), 16, GFP_KERNEL) }.expect("fits");
    assert_eq!(q, p, "same pointer when it fits the class");
    // SAFETY: As above.
    let r = unsafe { m.krealloc(q.as_ptr(), 100, GFP_KERNEL) }.expect("grow");
    assert_ne!(r, q);
    assert_eq!(read(&m, r, 10), vec![7; 10], "contents kept");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(r.as_ptr()) }, 128);
    // SAFETY: As above.
    let s = unsafe { m.krealloc(r.as_ptr(), 50, GFP_KERNEL) }.expect("shrink");
    assert_eq!(s, r, "shrinking keeps the object");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(s, &[9; 128]) }.unwrap();
    // SAFETY: As above.
    let t = unsafe { m.krealloc(s.as_ptr(), 60, GFP_KERNEL | __GFP_ZERO) }.expect("zeroing");
    assert_eq!(t, s);
    let bytes = read(&m, t, 128);
    assert_eq!((&bytes[..60], &bytes[60..]), (&[9; 60][..], &[0; 68][..]), "[new_size, ks) zeroed");
    // SAFETY: As above.
    let large = unsafe { m.krealloc(t.as_ptr(), 3 * PAGE_SIZE, GFP_KERNEL) }.expect("to pages");
    assert_eq!(read(&m, large, 60), vec![9; 60]);
    // SAFETY: As above.
    let z = unsafe { m.krealloc(large.as_ptr(), 0, GFP_KERNEL) }.expect("free");
    assert_eq!(z.as_ptr() as usize, ZERO_SIZE_PTR);
    // SAFETY: NULL behaves like kmalloc.
    let fresh = unsafe { m.krealloc(std::ptr::null_mut(), 24, GFP_KERNEL) }.expect("kmalloc");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(fresh.as_ptr()) }, 32);
    kfree(&m, fresh);
}

#[test]
fn km9_krealloc_failure_leaves_the_old_block_valid() {
    let m = machine();
    let p = m.kmalloc(100, GFP_KERNEL).expect("kmalloc");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &[3; 100]) }.unwrap();
    // SAFETY: `p` is ours; the call fails, so it stays ours.
    assert!(unsafe { m.krealloc(p.as_ptr(), 5 << 20, GFP_KERNEL | __GFP_NOWARN) }.is_err());
    assert_eq!(read(&m, p, 100), vec![3; 100]);
    let held = crate::exhaust(&m);
    // SAFETY: As above; nothing can be allocated.
    assert!(unsafe { m.krealloc(p.as_ptr(), 3 * PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN) }.is_err());
    assert_eq!(read(&m, p, 100), vec![3; 100], "old block untouched");
    crate::free_all(&m, held);
    kfree(&m, p);
}

#[test]
fn km10_kcalloc_overflow_allocates_nothing() {
    let m = machine();
    let free0 = m.total_free();
    assert!(m.kcalloc(usize::MAX / 2, 3, GFP_KERNEL).is_err());
    assert!(m.kmalloc_array(usize::MAX / 2, 3, GFP_KERNEL).is_err());
    assert_eq!(m.total_free(), free0);
    let p = m.kcalloc(10, 30, GFP_KERNEL).expect("300 zeroed bytes");
    assert_eq!(read(&m, p, 300), vec![0; 300]);
    kfree(&m, p);
}

#[test]
fn km11_dma_requests_use_dma_kmalloc_and_dma32_gets_fixed_up() {
    let m = machine();
    let p = m.kmalloc(64, GFP_DMA | GFP_KERNEL).expect("dma kmalloc");
    assert_eq!(m.cache(m.kmalloc_cache(64, GFP_DMA).expect("cache")).unwrap().name(), "dma-kmalloc-64");
    assert!(m.virt_to_phys(p.as_ptr()).expect("phys") < 16 << 20, "ZONE_DMA");
    kfree(&m, p);
    let r = m.kmalloc(64, GFP_KERNEL | __GFP_RECLAIMABLE).expect("rcl");
    assert_eq!(m.cache(m.kmalloc_cache(64, __GFP_RECLAIMABLE).expect("cache")).unwrap().name(), "kmalloc-rcl-64");
    kfree(&m, r);
    assert_eq!(count_log(&m, "Unexpected gfp"), 0);
    let q = m.kmalloc(128, GFP_KERNEL | __GFP_DMA32).expect("dma32 kmalloc");
    assert_eq!(
        m.cache(m.kmalloc_cache(128, __GFP_DMA32).expect("cache")).unwrap().name(),
        "kmalloc-128",
        "no DMA32 cache"
    );
    assert_eq!(count_log(&m, "Unexpected gfp"), 1, "the new slab's page was allocated with the fix-up");
    kfree(&m, q);
}

#[test]
fn kfree_sensitive_zeroes_the_whole_object() {
    let m = machine();
    let p = m.kmalloc(50, GFP_KERNEL).expect("kmalloc");
    let keep = m.kmalloc(50, GFP_KERNEL).expect("keeps the slab allocated");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &[0xee; 64]) }.unwrap();
    // SAFETY: `p` is ours and unused afterwards (its bytes are only read through the
    // checked machine API below).
    unsafe { m.kfree_sensitive(p.as_ptr()) };
    assert_eq!(read(&m, p, 64), vec![0; 64], "ksize bytes cleared");
    // SAFETY: NULL is ignored.
    unsafe { m.kfree_sensitive(std::ptr::null_mut()) };
    let again = m.kmalloc(50, GFP_KERNEL).expect("kmalloc");
    assert_eq!(again, p, "and it was freed");
    kfree(&m, again);
    kfree(&m, keep);
}

#[test]
fn node_variants_accept_numa_no_node_and_node_0_only() {
    let m = machine();
    let c = m.kmem_cache_create("node", 40, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    for node in [kmem_core::NUMA_NO_NODE, 0] {
        let p = m.kmalloc_node(100, GFP_KERNEL, node).expect("kmalloc_node");
        // SAFETY: The test's own object (or none: reported).
        assert_eq!(unsafe { m.ksize(p.as_ptr()) }, 128);
        kfree(&m, p);
        let o = m.kmem_cache_alloc_node(c, GFP_KERNEL, node).expect("kmem_cache_alloc_node");
        // SAFETY: Ours, unused afterwards.
        unsafe { m.kmem_cache_free(c, o.as_ptr()) };
    }
    assert!(m.kmalloc_node(100, GFP_KERNEL, 1).is_err());
    assert!(m.kmem_cache_alloc_node(c, GFP_KERNEL, 1).is_err());
}

#[test]
fn kfree_frees_objects_of_any_cache() {
    let m = machine();
    let c = m.kmem_cache_create("kfree-any", 72, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
    kfree(&m, p);
    assert_eq!(m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc"), p, "back in its own cache");
    kfree(&m, p);
    assert_eq!(m.kmem_cache_shrink(c), 0);
}
