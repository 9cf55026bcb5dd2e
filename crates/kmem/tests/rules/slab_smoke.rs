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
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(p.as_ptr()) }, 1024);
    unsafe { m.kfree(p.as_ptr()) };
    let big = m.kmalloc(32 * 4096, GFP_KERNEL).unwrap();
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(big.as_ptr()) }, 32 * 4096);
    unsafe { m.kfree(big.as_ptr()) };
}

/// SL-8 also when the fast path is skipped (failslab armed for another cache): the slow path
/// takes the object from the CPU's array first instead of refilling past it.
#[test]
fn lifo_reuse_survives_the_slow_path() {
    let m = crate::builder(kmem::Profile::I386, 64).failslab("1,100,0,-1,verbose=0").build().unwrap();
    m.slabs().failslab().cache_filter.store(true, std::sync::atomic::Ordering::Relaxed);
    let c = m.kmem_cache_create("lifo_slow", 64, &CacheArgs::default(), SlabFlags::empty()).unwrap();
    let a = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    // SAFETY: Ours, freed once.
    unsafe { m.kmem_cache_free(c, a.as_ptr()) };
    let before = m.cache_info(c);
    assert_eq!(m.kmem_cache_alloc(c, GFP_KERNEL).unwrap(), a, "LIFO through the slow path");
    let after = m.cache_info(c);
    assert_eq!(after.alloc_slow, before.alloc_slow + 1, "the armed failslab forced the slow path");
    assert_eq!(after.refills, before.refills, "no refill: the object came from the array");
}
