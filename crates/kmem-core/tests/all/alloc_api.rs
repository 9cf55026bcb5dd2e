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
