//! `Allocator` over vmalloc and kvmalloc: large vectors in virtually contiguous memory, the
//! kvmalloc choice between kmalloc and vmalloc, alignment, zeroing, and every page back.

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::vec::Vec;
use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem::{Kvmalloc, PAGE_SIZE, Vmalloc};

use crate::machine;

#[test]
fn vmalloc_vec_spans_many_pages_and_gives_them_back() {
    let m = machine();
    let a = Vmalloc::new(&m, GFP_KERNEL);
    let warm: Vec<u8, _> = Vec::with_capacity_in(PAGE_SIZE, a.clone());
    drop(warm); // vmalloc's first node block stays for reuse.
    m.drain_local_pages();
    let free0 = m.total_free();
    let mut v: Vec<u64, _> = Vec::new_in(a);
    v.extend(0..(3 << 20) / 8u64); // 3 MiB, grown through several areas
    assert!(m.is_vmalloc_addr(v.as_ptr().cast()));
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
    // The bytes are the frames' bytes: check one element through the direct map or kmap.
    let page = m.vmalloc_to_page(v.as_ptr().cast()).expect("backed");
    let via = m.kmap(page).expect("mapped");
    // SAFETY: The page backs the vector's first 512 elements, mapped at `via`.
    assert_eq!(unsafe { via.as_ptr().cast::<u64>().add(7).read() }, 7);
    // SAFETY: The test's own mapping, not used afterwards.
    unsafe { m.kunmap(page) };
    drop(v);
    m.drain_local_pages();
    assert_eq!(m.total_free(), free0, "every frame back after the vectors are dropped");
}

#[test]
fn vmalloc_honours_alignment_and_zeroing() {
    let m = machine();
    let a = Vmalloc::new(&m, GFP_KERNEL);
    for align in [8, PAGE_SIZE, 4 * PAGE_SIZE, 64 * PAGE_SIZE] {
        let layout = Layout::from_size_align(3 * PAGE_SIZE + 5, align).unwrap();
        let p = a.allocate_zeroed(layout).unwrap();
        assert_eq!(p.cast::<u8>().as_ptr() as usize % align, 0, "align {align}");
        assert!(p.len() >= layout.size());
        // SAFETY: `layout.size()` zeroed bytes of ours.
        assert!(unsafe { std::slice::from_raw_parts(p.cast::<u8>().as_ptr(), layout.size()) }.iter().all(|&b| b == 0));
        // SAFETY: Allocated above with this layout.
        unsafe { a.deallocate(p.cast(), layout) };
    }
}

#[test]
fn kvmalloc_uses_kmalloc_when_it_can_and_vmalloc_beyond_it() {
    let m = machine();
    let a = Kvmalloc::new(&m, GFP_KERNEL);
    let small = a.allocate(Layout::from_size_align(100, 8).unwrap()).unwrap();
    assert!(!m.is_vmalloc_addr(small.cast::<u8>().as_ptr()), "kmalloc serves 100 bytes");
    let huge_layout = Layout::from_size_align(6 << 20, 8).unwrap();
    let huge = a.allocate_zeroed(huge_layout).unwrap();
    assert!(m.is_vmalloc_addr(huge.cast::<u8>().as_ptr()), "above KMALLOC_MAX_SIZE: vmalloc");
    let aligned_layout = Layout::from_size_align(64 << 10, 64 << 10).unwrap();
    let aligned = a.allocate(aligned_layout).unwrap();
    assert_eq!(aligned.cast::<u8>().as_ptr() as usize % (64 << 10), 0);
    // SAFETY: Each block was allocated above with its layout.
    unsafe {
        a.deallocate(small.cast(), Layout::from_size_align(100, 8).unwrap());
        a.deallocate(huge.cast(), huge_layout);
        a.deallocate(aligned.cast(), aligned_layout);
    }
    // KM-12: a mask that cannot sleep never falls back; above 4 MiB kmalloc cannot serve it.
    let atomic = Kvmalloc::new(&m, GFP_ATOMIC | __GFP_NOWARN);
    assert!(atomic.allocate(huge_layout).is_err());
    let mut v: Vec<u32, _> = Vec::new_in(Kvmalloc::new(&m, GFP_KERNEL));
    v.extend(0..2_000_000u32); // 8 MB: starts in kmalloc, ends in vmalloc
    assert!(m.is_vmalloc_addr(v.as_ptr().cast()));
    assert_eq!(v[1_999_999], 1_999_999);
}
