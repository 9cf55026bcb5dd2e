//! Edges of the slab API found by using it as a kernel developer porting code would: frees of
//! things that are not objects of the cache named, and the reports they get (SL-18, §3.8).

use kmem::PAGE_SIZE;
use kmem::gfp::GFP_KERNEL;
use kmem::slab::CacheArgs;
use kmem::slab::flags::SLAB_NO_MERGE;

use crate::{check, count_log, i386_nopcp, log_lines};

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
