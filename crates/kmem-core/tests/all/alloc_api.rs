//! `kmem_core::alloc_api` on a board: `allocator_api2` collections in kmalloc memory with the
//! caller's GFP mask, as Rust-for-Linux's `KBox`/`KVec` (feature `allocator-api2`).

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use kmem_core::alloc_api::KmallocIn;
use kmem_core::gfp::{GFP_ATOMIC, GFP_KERNEL};
use kmem_core::kmalloc::classes::KMALLOC_MAX_SIZE;
use kmem_core::slab::SlabConfig;
use kmem_core::{Kmem, PAGE_SIZE};

use super::{IN_ATOMIC, Region, boot};

fn log(k: &Kmem<super::Board>) -> String {
    k.platform().log.lock().unwrap().clone()
}

/// A `KVec` made in atomic context with `GFP_ATOMIC` grows through the classes by `krealloc`
/// (KM-8: same block while it fits) without a sleeping-in-atomic report; the same growth with
/// `&Kmem` (`GFP_KERNEL`) there is reported, which shows the check is live.
#[test]
fn a_kvec_with_gfp_atomic_grows_in_atomic_context() {
    let region = Region::new(32 << 20);
    let k = Kmem::new(boot(&region, true), SlabConfig::default());
    IN_ATOMIC.with(|a| a.set(true));
    let mut v = Vec::with_capacity_in(3, KmallocIn::new(&k, GFP_ATOMIC));
    let first = v.as_ptr();
    v.extend([1u32, 2, 3]);
    // SAFETY: `v`'s live block.
    assert_eq!(unsafe { k.ksize(first.cast()) }, 16, "12 bytes in kmalloc-16");
    v.reserve_exact(1);
    v.push(4);
    assert_eq!(v.as_ptr(), first, "krealloc keeps a block that fits (KM-8): 16 bytes");
    v.extend(5..=1000);
    IN_ATOMIC.with(|a| a.set(false));
    assert!(v.iter().copied().eq(1..=1000u32));
    assert!(!log(&k).contains("sleeping function"), "{}", log(&k));
    IN_ATOMIC.with(|a| a.set(true));
    let w: Vec<u8, &Kmem<super::Board>> = Vec::with_capacity_in(100, &k);
    IN_ATOMIC.with(|a| a.set(false));
    assert!(log(&k).contains("BUG: sleeping function called from invalid context"), "{}", log(&k));
    drop((v, w));
}

/// A `KBox` is kmalloc memory that goes back on drop; over-aligned and zeroed layouts are
/// honoured; zero-size layouts and layouts above 4 MiB touch nothing.
#[test]
fn kboxes_layouts_and_failures() {
    #[repr(align(256))]
    struct Aligned([u8; 300]);
    let region = Region::new(32 << 20);
    let k = Kmem::new(boot(&region, true), SlabConfig::default());
    let a = KmallocIn::new(&k, GFP_KERNEL);
    let boxed = Box::new_in(Aligned([9; 300]), a);
    let addr = core::ptr::from_ref(&*boxed).cast::<u8>();
    assert_eq!(addr.addr() % 256, 0);
    // SAFETY: `boxed`'s live block: 300 bytes rounded to 512 for the alignment.
    assert_eq!(unsafe { k.ksize(addr) }, 512);
    assert!(boxed.0.iter().all(|&b| b == 9));
    drop(boxed);
    let again = Box::new_in(Aligned([0; 300]), a);
    assert_eq!(core::ptr::from_ref(&*again).cast::<u8>(), addr, "the dropped box's object was freed");
    let zeroed = a.allocate_zeroed(Layout::from_size_align(3000, 8).unwrap()).unwrap();
    // SAFETY: A live block of at least 3000 bytes.
    assert!(unsafe { zeroed.as_ref() }[..3000].iter().all(|&b| b == 0));
    // SAFETY: Allocated just above with this layout.
    unsafe { a.deallocate(zeroed.cast(), Layout::from_size_align(3000, 8).unwrap()) };
    let free = k.total_free();
    assert_eq!(a.allocate(Layout::from_size_align(0, 64).unwrap()).unwrap().len(), 0);
    assert!(a.allocate(Layout::from_size_align(KMALLOC_MAX_SIZE + 1, 8).unwrap()).is_err());
    assert_eq!(k.total_free(), free, "neither took a page");
}

/// `shrink_to_fit` of a page-backed `KVec` to a small one moves to a class cache and gives
/// the pages back; `grow_zeroed` zeroes what the block adds.
#[test]
fn shrinking_gives_pages_back() {
    let region = Region::new(32 << 20);
    let k = Kmem::new(boot(&region, true), SlabConfig::default());
    // kmalloc-16 made, with a slab, before the count starts.
    let warm = k.kmalloc(16, GFP_KERNEL).unwrap();
    let mut v: Vec<u8, _> = Vec::with_capacity_in(16 * PAGE_SIZE, KmallocIn::new(&k, GFP_KERNEL));
    v.extend_from_slice(b"kept bytes");
    let before = k.total_free();
    v.shrink_to_fit();
    // SAFETY: `v`'s live block.
    assert_eq!(unsafe { k.ksize(v.as_ptr()) }, 16);
    assert_eq!(&v[..], b"kept bytes");
    assert_eq!(k.total_free(), before + 16, "the 64 KiB block went back");
    // SAFETY: Allocated above, unused.
    unsafe { k.kfree(warm.as_ptr()) };
    let a = KmallocIn::new(&k, GFP_KERNEL);
    let (small, big) = (Layout::from_size_align(24, 8).unwrap(), Layout::from_size_align(5000, 8).unwrap());
    let p = a.allocate(small).unwrap().cast::<u8>();
    // SAFETY: A live 24-byte block.
    unsafe { p.as_ptr().write_bytes(0xee, 24) };
    // SAFETY: `p` was allocated with `small`; `big` is larger.
    let grown = unsafe { a.grow_zeroed(p, small, big) }.unwrap();
    // SAFETY: A live block of at least 5000 bytes.
    let bytes = unsafe { grown.as_ref() };
    assert!(bytes[..24].iter().all(|&b| b == 0xee) && bytes[24..].iter().all(|&b| b == 0));
    // SAFETY: The block of `grown`, with the layout it was grown to.
    unsafe { a.deallocate(grown.cast(), big) };
}

/// Model-based: random allocate / allocate_zeroed / grow / grow_zeroed / shrink / deallocate
/// sequences of layouts from 0 bytes to 40 KiB aligned 1 to 4096, on 2 fixed seeds. After every
/// step each live block is aligned, holds its owner's bytes (zero where a zeroing call added
/// them), and overlaps no other live block. At the end every block is freed and the board's
/// pages all come back once the slab shrinker has run.
#[test]
fn random_allocator_sequences_keep_blocks_apart_and_intact() {
    use kmem_core::reclaim::Shrinker;
    struct Live {
        ptr: core::ptr::NonNull<u8>,
        layout: Layout,
        fill: u8,
        /// Bytes from here up to `layout.size()` must be zero (a zeroing call added them).
        zero_from: usize,
    }
    fn check(live: &[Live]) {
        let mut spans: std::vec::Vec<(usize, usize)> =
            live.iter().map(|b| (b.ptr.as_ptr().addr(), b.layout.size())).collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].1 == 0 || w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {w:?}");
        }
        for b in live {
            assert_eq!(b.ptr.as_ptr().addr() % b.layout.align(), 0, "misaligned {:?}", b.layout);
            // SAFETY: A live block of at least `layout.size()` bytes.
            let bytes = unsafe { core::slice::from_raw_parts(b.ptr.as_ptr(), b.layout.size()) };
            let (kept, zeroed) = bytes.split_at(b.zero_from.min(bytes.len()));
            assert!(kept.iter().all(|&x| x == b.fill), "{:?}: contents changed", b.layout);
            assert!(zeroed.iter().all(|&x| x == 0), "{:?}: added bytes not zero", b.layout);
        }
    }
    for seed in [0x9e37_79b9_7f4a_7c15u64, 0x1234_5678_9abc_def1] {
        let region = Region::new(64 << 20);
        let k = Kmem::new(boot(&region, true), SlabConfig::default());
        let initial = k.total_free();
        let a = KmallocIn::new(&k, GFP_KERNEL);
        let mut rng = seed;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut live: std::vec::Vec<Live> = std::vec::Vec::new();
        for step in 0..4000u32 {
            let size = match next(4) {
                0 => next(65) as usize,
                1 => next(1025) as usize,
                2 => next(9000) as usize,
                _ => next(40_001) as usize,
            };
            let layout = Layout::from_size_align(size, 1 << next(13)).unwrap();
            let fill = (step % 251) as u8 + 1;
            match next(6) {
                0 | 1 if live.len() < 64 => {
                    let zero = next(2) == 0;
                    let block = if zero { a.allocate_zeroed(layout) } else { a.allocate(layout) }.unwrap();
                    let ptr = block.cast::<u8>();
                    assert!(block.len() >= size);
                    if !zero {
                        // SAFETY: A fresh block of `size` bytes.
                        unsafe { ptr.as_ptr().write_bytes(fill, size) };
                    }
                    live.push(Live { ptr, layout, fill: if zero { 0 } else { fill }, zero_from: size });
                }
                2 | 3 if !live.is_empty() => {
                    let i = next(live.len() as u64) as usize;
                    let b = &mut live[i];
                    let new = Layout::from_size_align(size, b.layout.align()).unwrap();
                    let zero = next(2) == 0;
                    // SAFETY: `b` is live with `b.layout`; grow to a size at least as large,
                    // shrink to one no larger (the trait's contracts).
                    let moved = unsafe {
                        if new.size() >= b.layout.size() {
                            if zero { a.grow_zeroed(b.ptr, b.layout, new) } else { a.grow(b.ptr, b.layout, new) }
                        } else {
                            a.shrink(b.ptr, b.layout, new)
                        }
                    }
                    .unwrap();
                    b.ptr = moved.cast();
                    b.zero_from = b.zero_from.min(b.layout.size()).min(new.size());
                    if !(zero && new.size() > b.layout.size()) {
                        // Not zeroed: the new bytes are the owner's to fill.
                        // SAFETY: Bytes of the live block.
                        unsafe { b.ptr.as_ptr().add(b.zero_from).write_bytes(b.fill, new.size() - b.zero_from) };
                        b.zero_from = new.size();
                    }
                    b.layout = new;
                }
                _ if !live.is_empty() => {
                    let b = live.swap_remove(next(live.len() as u64) as usize);
                    // SAFETY: Live with this layout; dropped from the model.
                    unsafe { a.deallocate(b.ptr, b.layout) };
                }
                _ => {}
            }
            check(&live);
        }
        for b in live.drain(..) {
            // SAFETY: Live with this layout.
            unsafe { a.deallocate(b.ptr, b.layout) };
        }
        k.scan_objects(usize::MAX, GFP_KERNEL);
        k.drain_local_pages();
        assert_eq!(k.total_free(), initial - k.slab_pages().0 - k.slab_pages().1, "seed {seed:#x}: pages lost");
    }
}

/// Alignments above a page, up to a 4 MiB kmalloc block, are honoured (KM-6 on a direct map
/// aligned as `PageAllocator::new` requires), including by `grow` from a small block that
/// happens to be 8 KiB-aligned to a layout that must be.
#[test]
fn alignments_above_a_page_are_honoured() {
    let region = Region::new(32 << 20);
    let k = Kmem::new(boot(&region, true), SlabConfig::default());
    let a = KmallocIn::new(&k, GFP_KERNEL);
    for (size, align) in [(8192, 8192), (100, 8192), (40_000, 16_384), (10, 1 << 20), (5 << 20 >> 1, 4 << 20)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let p = a.allocate(layout).unwrap().cast::<u8>();
        assert_eq!(p.as_ptr().addr() % align, 0, "{size} aligned {align}");
        // SAFETY: Allocated just above with `layout`.
        unsafe { a.deallocate(p, layout) };
    }
    assert!(a.allocate(Layout::from_size_align(8, 8 << 20).unwrap()).is_err(), "above 4 MiB: no kmalloc block");
    // A 16-byte object at the start of a slab page at an even pfn: 8 KiB-aligned.
    let small = Layout::from_size_align(16, 8).unwrap();
    let mut held = std::vec::Vec::new();
    let lucky = loop {
        let p = a.allocate(small).unwrap().cast::<u8>();
        if p.as_ptr().addr().is_multiple_of(8192) {
            break p;
        }
        held.push(p);
    };
    // SAFETY: A live 16-byte block.
    unsafe { lucky.as_ptr().write_bytes(0x5a, 16) };
    let big = Layout::from_size_align(16_384, 8192).unwrap();
    // SAFETY: `lucky` was allocated with `small`; `big` is larger.
    let grown = unsafe { a.grow(lucky, small, big) }.unwrap().cast::<u8>();
    assert_eq!(grown.as_ptr().addr() % 8192, 0, "grow handed out a misaligned block");
    // SAFETY: The first 16 bytes were kept.
    assert!(unsafe { core::slice::from_raw_parts(grown.as_ptr(), 16) }.iter().all(|&b| b == 0x5a));
    // SAFETY: Allocated by `grow` with `big`.
    unsafe { a.deallocate(grown, big) };
    for p in held {
        // SAFETY: Allocated above with `small`.
        unsafe { a.deallocate(p, small) };
    }
}
