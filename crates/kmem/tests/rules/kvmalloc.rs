//! KM-12: `kvmalloc` tries kmalloc first and falls back to vmalloc only above a page and only
//! for requests that may sleep; `kvfree` frees either kind; `kvfree_sensitive` zeroes.

use kmem::Profile;
use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};

use crate::builder;

/// A machine whose slab allocations all fail (failslab at 100 %, also for requests that may
/// sleep), so kvmalloc's kmalloc attempt fails whenever a slab cache would serve it.
fn failing_slabs() -> kmem::Machine {
    builder(Profile::I386, 64).failslab("1,100,0,-1,ignore-gfp-wait=0,verbose=0").build().unwrap()
}

#[test]
fn km12_small_requests_never_fall_back() {
    let m = failing_slabs();
    assert!(m.kmalloc(100, GFP_KERNEL).is_err(), "failslab makes kmalloc fail");
    assert!(m.kvmalloc(100, GFP_KERNEL).is_err(), "≤ PAGE_SIZE: no vmalloc fallback");
    assert!(m.kvmalloc(4096, GFP_KERNEL).is_err(), "exactly a page: no fallback either");
}

/// A machine whose next slab allocation fails (failslab with `times` 1, also for requests
/// that may sleep): kvmalloc's kmalloc attempt fails, and vmalloc, whose page array is a
/// kmalloc object as in the kernel, then gets its array.
fn fail_next_slab_alloc(m: &kmem::Machine) {
    m.slabs().failslab().parse_and_apply("1,100,0,1,ignore-gfp-wait=0,verbose=0").unwrap();
}

#[test]
fn km12_large_blocking_requests_fall_back_to_vmalloc_and_kvfree_frees_them() {
    let m = builder(Profile::I386, 64).build().unwrap();
    // A first cycle creates the kmalloc-8k cache and vmalloc's tree nodes (kept for reuse).
    fail_next_slab_alloc(&m);
    let warm = m.kvmalloc(6000, GFP_KERNEL).expect("vmalloc fallback");
    // SAFETY: Ours, freed once.
    unsafe { m.kvfree(warm.as_ptr()) };
    m.drain_local_pages();
    let free0 = m.total_free();
    fail_next_slab_alloc(&m);
    let p = m.kvmalloc(6000, GFP_KERNEL).expect("vmalloc fallback");
    assert!(m.is_vmalloc_addr(p.as_ptr()), "served by vmalloc");
    // SAFETY: 6000 bytes were just allocated at `p`.
    unsafe { p.as_ptr().write_bytes(0x5a, 6000) };
    // SAFETY: Ours, freed once.
    unsafe { m.kvfree(p.as_ptr()) };
    m.drain_local_pages();
    assert_eq!(m.total_free(), free0, "every page back after kvfree (vfree returns frames at once)");
}

#[test]
fn km12_non_blocking_requests_never_fall_back() {
    let m = failing_slabs();
    // GFP_ATOMIC cannot sleep: vmalloc is not tried.
    assert!(m.kvmalloc(6000, GFP_ATOMIC | __GFP_NOWARN).is_err());
}

#[test]
fn km12_kmalloc_success_is_kept_and_kvfree_frees_it() {
    let m = builder(Profile::I386, 64).build().unwrap();
    for size in [8, 4096, 6000, 64 << 10] {
        let p = m.kvmalloc(size, GFP_KERNEL).unwrap();
        assert!(!m.is_vmalloc_addr(p.as_ptr()), "{size}: kmalloc served it");
        assert!(m.ksize(p.as_ptr()) >= size);
        // SAFETY: Ours, freed once.
        unsafe { m.kvfree(p.as_ptr()) };
    }
}

#[test]
fn km12_kvfree_sensitive_zeroes_before_freeing() {
    let m = builder(Profile::I386, 64).build().unwrap();
    let p = m.kvmalloc(512, GFP_KERNEL).unwrap();
    m.write_bytes(p, &[0xa5; 512]).unwrap();
    // SAFETY: 512 bytes of ours, freed once.
    unsafe { m.kvfree_sensitive(p.as_ptr(), 512) };
    // The object sits in this CPU's array now; its slab page is still allocated, so the bytes
    // can be read back: all zero.
    let mut back = [0xffu8; 512];
    m.read_bytes(p, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0));
}
