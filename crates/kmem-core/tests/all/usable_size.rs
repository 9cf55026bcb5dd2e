//! `kmalloc_usable_size` follows an address to its slab and cache without holding either, so
//! it is `unsafe`: nothing may free what the address lies in during the call. Before it was
//! (a safe fn, "any caller may ask"), a query paused where a preempted thread would be (the
//! board's `fast_cpu` hook, asked by `known_free` after the cache was found) while the other
//! thread freed its object, destroyed the cache and reused the cache's page read the reused
//! page as the cache and followed its per-CPU pointer: `misaligned pointer dereference ...
//! 0xa5a5a5a5a5a5a5a5` (cache.rs, `Cache::cpu`), then the per-CPU guard's write.
//!
//! Under the contract the same interleaving is harmless: with the object still held, the
//! destroy keeps the cache (SL-12), and the query answers from live memory.

use kmem_core::Kmem;
use kmem_core::gfp::GFP_KERNEL;
use kmem_core::slab::{CacheArgs, SlabConfig};

use super::{FAST_CPU_HOOK, Region, boot};

#[test]
fn usable_size_of_a_held_object_whose_cache_is_destroyed_meanwhile() {
    let region = Region::new(32 << 20);
    let k = Kmem::new(boot(&region, true), SlabConfig::default());
    let c = k.kmem_cache_create("victim", 64, &CacheArgs::default(), Default::default()).unwrap();
    let p = k.kmem_cache_alloc(c, GFP_KERNEL).unwrap().as_ptr();
    let kp: *const Kmem<_> = &k;
    FAST_CPU_HOOK.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || {
            // SAFETY: `k` outlives the hook, which runs inside the query below.
            let k = unsafe { &*kp };
            // The other thread drops the cache while the object is still out: reported and
            // kept (SL-12), so the query paused in it still reads live memory.
            // SAFETY: No one uses the handle afterwards; the cache's memory stays (object out).
            assert!(unsafe { k.kmem_cache_destroy(c) }.is_err());
            let page = k.pages().get_free_pages(GFP_KERNEL, 0).unwrap();
            assert_ne!(page.as_ptr(), c.as_ptr().cast(), "the kept cache's page is not reused");
            // SAFETY: Our page, given back unused.
            unsafe {
                page.as_ptr().write_bytes(0xa5, kmem_core::PAGE_SIZE);
                k.pages().free_pages_addr(page.as_ptr(), 0);
            }
        }))
    });
    // SAFETY: `p` is the test's object, held until after the call.
    assert_eq!(unsafe { k.kmalloc_usable_size(p) }, Some(64));
    assert!(FAST_CPU_HOOK.with(|h| h.borrow().is_none()), "the hook ran inside the query");
    // SAFETY: The test's object, freed once, to its (kept) cache.
    unsafe { k.kfree(p) };
    assert!(k.platform().log.lock().unwrap().contains("Slab cache still has objects"));
}
