//! KM-12: `kvmalloc` tries kmalloc first and falls back to vmalloc only above a page and only
//! for requests that may sleep; `kvfree` frees either kind; `kvfree_sensitive` zeroes.

use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem::{PAGE_SIZE, Profile};

use crate::{builder, count_log, log_lines};

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
        // SAFETY: The test's own object (or none: reported).
        assert!(unsafe { m.ksize(p.as_ptr()) } >= size);
        // SAFETY: Ours, freed once.
        unsafe { m.kvfree(p.as_ptr()) };
    }
}

#[test]
fn km12_kvfree_sensitive_zeroes_before_freeing() {
    let m = builder(Profile::I386, 64).build().unwrap();
    let p = m.kvmalloc(512, GFP_KERNEL).unwrap();
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &[0xa5; 512]) }.unwrap();
    // SAFETY: 512 bytes of ours, freed once.
    unsafe { m.kvfree_sensitive(p.as_ptr(), 512) };
    // The object sits in this CPU's array now; its slab page is still allocated, so the bytes
    // can be read back: all zero.
    let mut back = [0xffu8; 512];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(p, &mut back) }.unwrap();
    assert!(back.iter().all(|&b| b == 0));
}

/// `kvfree_sensitive` zeroes a vmalloc area's frames before freeing them (read back through
/// the direct map after the free), and a length past the allocation zeroes all of it, is
/// reported, and writes nothing beyond (the guard page is not touched: no fault).
#[test]
fn km12_kvfree_sensitive_zeroes_vmalloc_frames_and_reports_an_overrun() {
    let m = builder(Profile::X86_64, 64).build().unwrap();
    let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
    // SAFETY: Two mapped pages of ours.
    unsafe { p.as_ptr().write_bytes(0xa5, 2 * PAGE_SIZE) };
    let frames: Vec<_> = (0..2).map(|i| m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).unwrap()).collect();
    // SAFETY: Ours, freed once; the length is checked against the area.
    unsafe { m.kvfree_sensitive(p.as_ptr(), 2 * PAGE_SIZE + 1) };
    assert!(m.vmalloc_to_page(p.as_ptr()).is_none(), "freed");
    assert_eq!(
        count_log(&m, &format!("kvfree_sensitive: 8193 bytes at {:p} exceed the allocation (8192 bytes)", p.as_ptr())),
        1
    );
    assert_eq!(count_log(&m, " kvfree_sensitive"), 1, "{:?}", log_lines(&m));
    for page in frames {
        // The frames wait in vmalloc's frame cache: still allocated, readable.
        let mut back = vec![0xffu8; PAGE_SIZE];
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.read_bytes(m.page_address(page).unwrap(), &mut back) }.unwrap();
        assert!(back.iter().all(|&b| b == 0), "the secret is gone from the frame");
    }
    // A kmalloc allocation: zeroed up to its usable size, the overrun reported.
    let q = m.kvmalloc(512, GFP_KERNEL).unwrap();
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(q, &[0xa5; 512]) }.unwrap();
    // SAFETY: Ours, freed once.
    unsafe { m.kvfree_sensitive(q.as_ptr(), 600) };
    assert_eq!(count_log(&m, "kvfree_sensitive: 600 bytes at"), 1);
    let mut back = [0xffu8; 512];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(q, &mut back) }.unwrap();
    assert!(back.iter().all(|&b| b == 0));
}

/// `kvrealloc(p, 0)` follows the allocator of `p` (`kvrealloc_node_align_noprof`): a vmalloc
/// address is freed by `vrealloc` and NULL returned; a kmalloc one by `krealloc`, which returns
/// `ZERO_SIZE_PTR`.
#[test]
fn km12_kvrealloc_to_zero_follows_the_allocator_of_the_pointer() {
    let m = builder(Profile::I386, 64).build().unwrap();
    let v = m.vmalloc(3 * PAGE_SIZE).unwrap();
    // SAFETY: Ours; freed by the call.
    assert_eq!(unsafe { m.kvrealloc(v.as_ptr(), 0, GFP_KERNEL) }, Ok(None), "vmalloc: NULL");
    assert!(m.vmalloc_to_page(v.as_ptr()).is_none(), "freed");
    let k = m.kmalloc(100, GFP_KERNEL).unwrap();
    // SAFETY: Ours; freed by the call.
    let z = unsafe { m.kvrealloc(k.as_ptr(), 0, GFP_KERNEL) };
    assert_eq!(z, Ok(Some(kmem_core::kmalloc::zero_size_ptr())), "kmalloc: ZERO_SIZE_PTR");
}

/// Above `INT_MAX` kvmalloc fails with `WARN_ON_ONCE(!(flags & __GFP_NOWARN))`: no report
/// with `__GFP_NOWARN`, then one report on the machine however often it happens.
#[test]
fn km12_kvmalloc_above_int_max_warns_once() {
    let m = builder(Profile::X86_64, 64).build().unwrap();
    let huge = i32::MAX as usize + 1;
    assert!(m.kvmalloc(huge, GFP_KERNEL | __GFP_NOWARN).is_err());
    assert_eq!(count_log(&m, "__kvmalloc_node_noprof"), 0);
    for _ in 0..3 {
        assert!(m.kvmalloc(huge, GFP_KERNEL).is_err());
    }
    assert_eq!(count_log(&m, " __kvmalloc_node_noprof"), 1, "{:?}", log_lines(&m));
    assert!(count_log(&m, "WARNING: CPU: ") >= 1);
    assert_eq!(m.vm().nr_vmalloc_pages(), 0, "vmalloc was not tried");
}

/// The vmalloc fallback of `kvmalloc` passes `VM_ALLOW_HUGE_VMAP` (`__kvmalloc_node_noprof`,
/// SEMANTICS §4.2 step 5): on x86_64 a fallback of at least `PMD_SIZE` is a huge mapping,
/// `PMD_SIZE` aligned and rounded, as `vmalloc_huge` makes it.
#[test]
fn km12_kvmalloc_fallback_may_use_huge_mappings() {
    let m = builder(Profile::X86_64, 64).build().unwrap();
    let pmd = kmem_core::vmalloc::PMD_SIZE;
    // Above KMALLOC_MAX_SIZE (4 MiB): kmalloc cannot serve it, vmalloc does.
    let size = (4 << 20) + 1;
    let p = m.kvmalloc(size, GFP_KERNEL).expect("vmalloc fallback");
    assert!(m.is_vmalloc_addr(p.as_ptr()));
    let area = m.find_vm_area(p.as_ptr()).expect("a vmalloc area");
    assert_eq!(area.page_order, 9, "a huge mapping: {area:?}");
    assert_eq!(area.get_vm_area_size(), 6 << 20, "rounded to PMD_SIZE");
    assert!((p.as_ptr() as usize).is_multiple_of(pmd), "PMD_SIZE aligned");
    assert_eq!(m.vm().nr_vmalloc_pages(), (6 << 20) / PAGE_SIZE);
    // SAFETY: Ours, freed once.
    unsafe { m.kvfree(p.as_ptr()) };
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
}
