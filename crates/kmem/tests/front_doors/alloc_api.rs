//! The `allocator-api2` `Allocator` over kmalloc: collections in kmalloc memory, alignment up
//! to 1 MiB, the 4 MiB limit, zero sizes, zeroing, and `grow`/`shrink` as `krealloc`.

use std::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box as ABox;
use allocator_api2::vec::Vec as AVec;
use kmem::alloc_api::kmalloc_size;
use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT};
use kmem::{Kmalloc, Machine};

use crate::{count_log, machine};

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// Whether `ptr` is kmalloc memory of `m` (in its direct map, with a kmalloc size).
fn is_kmalloc(m: &Machine, ptr: *const u8) -> bool {
    // SAFETY: The test's own object (or none: reported).
    m.virt_to_pfn(ptr).is_some() && unsafe { m.ksize(ptr) } > 0
}

#[test]
fn vec_and_box_live_in_kmalloc_memory() {
    let m = machine();
    let mut v = AVec::new_in(&m);
    for i in 0..10_000u32 {
        v.push(i);
    }
    assert!(is_kmalloc(&m, v.as_ptr().cast()));
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(v.as_ptr().cast()) }, 16384.max(v.capacity() * 4), "page-backed above 8 KiB");
    assert!(v.iter().copied().eq(0..10_000));
    v.truncate(10);
    v.shrink_to_fit();
    assert!(v.iter().copied().eq(0..10));
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(v.as_ptr().cast()) }, 64, "shrunk into kmalloc-64, the 64 KiB block given back");
    let b = ABox::new_in([7u64; 12], Kmalloc::new(&m, GFP_KERNEL));
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize((&raw const *b).cast()) }, 96, "96 bytes from kmalloc-96");
    assert_eq!(b.iter().sum::<u64>(), 84);
}

#[test]
fn every_alignment_is_honoured_from_the_classes_and_blocks() {
    let m = machine();
    let a = &m;
    let sizes = [1, 8, 24, 33, 80, 96, 100, 150, 192, 200, 1000, 4000, 5000, 8192, 9000, 70_000];
    for shift in 3..=20 {
        let align = 1usize << shift;
        for &size in &sizes {
            let l = layout(size, align);
            let Some(want) = kmalloc_size(l) else { continue };
            let block = a.allocate(l).unwrap_or_else(|_| panic!("size {size} align {align}"));
            let p = block.cast::<u8>();
            assert_eq!(p.as_ptr() as usize % align, 0, "size {size} align {align}");
            assert_eq!(block.len(), want);
            // SAFETY: The test's own object (or none: reported).
            assert!(unsafe { m.ksize(p.as_ptr()) } >= size);
            // SAFETY: The block holds `size` bytes and is ours.
            unsafe {
                p.as_ptr().write_bytes(0xa5, size);
                a.deallocate(p, l);
            }
        }
    }
    assert_eq!(kmalloc_size(layout(80, 16)), Some(80), "kmalloc-96 is 32-aligned (KM-6)");
    assert_eq!(kmalloc_size(layout(100, 64)), Some(128));
    assert_eq!(kmalloc_size(layout(1, 1 << 20)), Some(1 << 20), "a 1 MiB block is 1 MiB-aligned");
    assert_eq!(m.slabs().errors(), 0, "{}", m.dmesg());
}

#[test]
fn above_four_mib_fails_and_zero_sizes_touch_nothing() {
    let m = machine();
    let a = &m;
    let max = layout(4 << 20, 8);
    let block = a.allocate(max).expect("4 MiB is KMALLOC_MAX_SIZE");
    // SAFETY: Ours.
    unsafe { a.deallocate(block.cast(), max) };
    assert!(a.allocate(layout((4 << 20) + 1, 8)).is_err());
    assert!(a.allocate(layout(1, 8 << 20)).is_err(), "8 MiB alignment needs an 8 MiB block");
    assert_eq!(count_log(&m, "KMALLOC_MAX_SIZE"), 0, "refused before kmalloc, without its warning");
    let slabs_before = m.slab_pages();
    let zero = a.allocate(layout(0, 256)).unwrap();
    assert_eq!(zero.len(), 0);
    assert_eq!(zero.cast::<u8>().as_ptr() as usize % 256, 0);
    // SAFETY: A zero-size block of ours.
    unsafe { a.deallocate(zero.cast(), layout(0, 256)) };
    assert_eq!(m.slab_pages(), slabs_before);
}

#[test]
fn zeroed_allocations_and_grow_zeroed_clear_reused_memory() {
    let m = machine();
    let a = &m;
    let l = layout(500, 8);
    let dirty = a.allocate(l).unwrap().cast::<u8>();
    // SAFETY: Ours, 500 bytes.
    unsafe {
        dirty.as_ptr().write_bytes(0xff, 500);
        a.deallocate(dirty, l);
    }
    let clean = a.allocate_zeroed(l).unwrap().cast::<u8>();
    assert_eq!(clean, dirty, "LIFO gives the dirty object back");
    // SAFETY: Ours.
    let bytes = unsafe { std::slice::from_raw_parts(clean.as_ptr(), 500) };
    assert!(bytes.iter().all(|&b| b == 0));
    // Grow within the class (512): same pointer, the tail beyond the old size zeroed.
    // SAFETY: Ours; the slack of kmalloc-512 past 500 bytes is dirtied first.
    let grown = unsafe {
        clean.as_ptr().write_bytes(0x11, 500);
        clean.as_ptr().add(500).write_bytes(0xee, 12);
        a.grow_zeroed(clean, l, layout(512, 8)).unwrap().cast::<u8>()
    };
    assert_eq!(grown, clean);
    // SAFETY: Ours, 512 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(grown.as_ptr(), 512) };
    assert!(bytes[..500].iter().all(|&b| b == 0x11) && bytes[500..].iter().all(|&b| b == 0));
    // Grow past the class: moved, contents kept, new tail zeroed.
    // SAFETY: Ours.
    let moved = unsafe { a.grow_zeroed(grown, layout(512, 8), layout(3000, 8)).unwrap().cast::<u8>() };
    assert_ne!(moved, grown);
    // SAFETY: Ours, 3000 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(moved.as_ptr(), 3000) };
    assert!(bytes[..500].iter().all(|&b| b == 0x11) && bytes[512..].iter().all(|&b| b == 0));
    // SAFETY: Ours.
    unsafe { a.deallocate(moved, layout(3000, 8)) };
}

#[test]
fn grow_and_shrink_are_krealloc_and_fix_alignment_when_asked() {
    let m = machine();
    let a = &m;
    let l = layout(10, 8);
    let p = a.allocate(l).unwrap().cast::<u8>();
    // SAFETY: Ours.
    let same = unsafe {
        p.as_ptr().copy_from_nonoverlapping(b"kmem-front".as_ptr(), 10);
        a.grow(p, l, layout(16, 8)).unwrap().cast::<u8>()
    };
    assert_eq!(same, p, "fits kmalloc-16: krealloc keeps the pointer");
    // SAFETY: Ours.
    let kept = unsafe { a.shrink(same, layout(16, 8), layout(12, 8)).unwrap().cast::<u8>() };
    assert_eq!(kept, p, "a small shrink keeps the pointer");
    // SAFETY: Ours.
    let shrunk = unsafe { a.shrink(kept, layout(12, 8), layout(4, 8)).unwrap().cast::<u8>() };
    assert_ne!(shrunk, p, "half the capacity or less: moved to kmalloc-8");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(shrunk.as_ptr()) }, 8);
    // SAFETY: Ours, 4 bytes.
    assert_eq!(unsafe { std::slice::from_raw_parts(shrunk.as_ptr(), 4) }, b"kmem");
    // SAFETY: Ours; shrinking to nothing frees.
    let gone = unsafe { a.shrink(shrunk, layout(4, 8), layout(0, 8)).unwrap() };
    assert_eq!(gone.len(), 0);

    // An 8-byte object that is not 64-aligned, grown with a 64-byte alignment: moved and aligned.
    let small = layout(8, 8);
    let mut held = Vec::new();
    let odd = loop {
        let q = a.allocate(small).unwrap().cast::<u8>();
        if !(q.as_ptr() as usize).is_multiple_of(64) {
            break q;
        }
        held.push(q);
    };
    // SAFETY: Ours.
    let realigned = unsafe {
        odd.as_ptr().cast::<u64>().write(0x0123_4567_89ab_cdef);
        a.grow(odd, small, layout(16, 64)).unwrap().cast::<u8>()
    };
    assert_eq!(realigned.as_ptr() as usize % 64, 0);
    // SAFETY: Ours.
    assert_eq!(unsafe { realigned.as_ptr().cast::<u64>().read() }, 0x0123_4567_89ab_cdef);
    // SAFETY: All ours.
    unsafe {
        a.deallocate(realigned, layout(16, 64));
        held.into_iter().for_each(|q| a.deallocate(q, small));
    }
}

#[test]
fn gfp_masks_pass_through_and_failures_are_alloc_errors() {
    let m = machine();
    {
        let _atomic = kmem::context::atomic_section();
        let b = ABox::new_in(5u32, Kmalloc::new(&m, GFP_ATOMIC));
        assert_eq!(*b, 5);
    }
    assert_eq!(count_log(&m, "sleeping function called from invalid context"), 0);
    // Take every page, then a class never used yet cannot get a slab without reclaim.
    let mut pages = Vec::new();
    for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
        while let Ok(p) = m.alloc_pages(GFP_NOWAIT | __GFP_NOWARN, order) {
            pages.push((p, order));
        }
    }
    let nowait = Kmalloc::new(&m, GFP_NOWAIT | __GFP_NOWARN);
    assert!(nowait.allocate(layout(2048, 8)).is_err());
    let mut v: AVec<u8, _> = AVec::new_in(nowait.clone());
    assert!(v.try_reserve(2048).is_err(), "try_reserve reports the failure");
    for (p, order) in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, order) };
    }
    assert!(v.try_reserve(2048).is_ok());
}

/// Leaves `n` freed kmalloc objects of `size` full of 0xaa (the next ones handed out).
fn dirty_class(m: &Machine, size: usize, n: usize) {
    let objs: Vec<_> = (0..n).map(|_| m.kmalloc(size, GFP_KERNEL).unwrap()).collect();
    for p in objs.into_iter().rev() {
        // SAFETY: Ours: dirtied whole, freed once, unused afterwards.
        unsafe {
            p.as_ptr().write_bytes(0xaa, size);
            m.kfree(p.as_ptr());
        }
    }
}

/// `grow_zeroed` zeroes the whole block it hands back past the old contents, also where the
/// alignment rounds its length above the size asked for: moved (16 → 48 bytes) and in place
/// (48 → 64 bytes of one kmalloc-64 object).
#[test]
fn grow_zeroed_zeroes_every_byte_of_the_block_it_returns() {
    let m = machine();
    let a = Kmalloc::new(&m, GFP_KERNEL);
    for (old, new, in_place) in [(layout(16, 16), layout(33, 16), false), (layout(40, 16), layout(50, 16), true)] {
        dirty_class(&m, 64, 64);
        let p = a.allocate(old).unwrap().cast::<u8>();
        // SAFETY: Ours, `old.size()` bytes.
        unsafe { p.as_ptr().write_bytes(0x11, old.size()) };
        // SAFETY: Ours, allocated with `old`.
        let g = unsafe { a.grow_zeroed(p, old, new) }.unwrap();
        assert_eq!(g.cast::<u8>() == p, in_place, "{old:?} -> {new:?}");
        assert!(g.len() > new.size(), "the alignment rounds the length up: {}", g.len());
        // SAFETY: Ours, `g.len()` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(g.cast::<u8>().as_ptr(), g.len()) };
        assert!(bytes[..old.size()].iter().all(|&b| b == 0x11), "contents kept");
        assert!(bytes[old.size()..].iter().all(|&b| b == 0), "{old:?} -> {new:?}: {bytes:x?}");
        // SAFETY: Ours, now of layout `new`.
        unsafe { a.deallocate(g.cast(), new) };
    }
}
