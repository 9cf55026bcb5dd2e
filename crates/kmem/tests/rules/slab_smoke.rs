//! First behaviour checks of the slab allocator and kmalloc through the machine.

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::slab::{CacheArgs, flags::SlabFlags};

use crate::i386_nopcp;

#[test]
fn kmem_cache_round_trip_lifo_and_slabinfo() {
    let m = i386_nopcp(64);
    let free0 = m.total_free();
    let c = m.kmem_cache_create("smoke", 100, &CacheArgs::default(), SlabFlags::empty()).unwrap();
    let a = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let b = m.kmem_cache_alloc(c, GFP_KERNEL | __GFP_ZERO).unwrap();
    assert_ne!(a, b);
    unsafe { m.kmem_cache_free(c, a.as_ptr()) };
    let again = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    assert_eq!(again, a, "SL-8: LIFO");
    let info = m.slabinfo();
    assert!(info.lines().any(|l| l.starts_with("smoke ")), "{info}");
    unsafe { m.kmem_cache_free(c, again.as_ptr()) };
    unsafe { m.kmem_cache_free(c, b.as_ptr()) };
    // SAFETY: No object is used after this.
    unsafe { m.kmem_cache_destroy(c) }.unwrap();
    assert_eq!(m.total_free() + m.slab_pages().1, free0, "only the descriptor page stays");
    let p = m.kmalloc(1024, GFP_KERNEL).unwrap();
    assert_eq!(m.ksize(p.as_ptr()), 1024);
    unsafe { m.kfree(p.as_ptr()) };
    let big = m.kmalloc(32 * 4096, GFP_KERNEL).unwrap();
    assert_eq!(m.ksize(big.as_ptr()), 32 * 4096);
    unsafe { m.kfree(big.as_ptr()) };
}
