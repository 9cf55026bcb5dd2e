//! MP-11 and MP-12 (SEMANTICS.md §6.3): what each helper kind hands out — slab pools (never
//! over a cache with a constructor, nor another machine's cache), kmalloc pools, page pools of
//! the typed API (always lowmem) — through `kmem::mempool`.

use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;

use kmem::Machine;
use kmem::gfp::*;
use kmem::mempool::{MemPool, PoolBox as MemPoolBox, RawMempool};

use crate::mempool::free;
use crate::*;

/// A constructor that only counts its calls (`ctx` is an `AtomicUsize`).
unsafe fn counting_ctor(ctx: *const (), _obj: *mut u8) {
    // SAFETY: Every cache made with this constructor passes a live `AtomicUsize` as `ctx`.
    unsafe { &*ctx.cast::<AtomicUsize>() }.fetch_add(1, SEQ);
}

#[test]
fn mp11_slab_pool_over_a_cache_with_a_constructor_is_refused() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let m = i386_nopcp(32);
    // SAFETY: A static counter, callable from any thread.
    let ctor = unsafe { kmem::slab::ObjFn::new(counting_ctor, std::ptr::from_ref(&CALLS).cast()) };
    let args = kmem::slab::CacheArgs { ctor: Some(ctor), ..Default::default() };
    let cache = m.kmem_cache_create("mp11_ctor", 64, &args, kmem::slab::flags::SlabFlags::empty()).unwrap();
    m.log().clear();
    assert!(RawMempool::slab_pool(&m, 4, cache).is_err(), "MP-11: refused");
    let lines = log_lines(&m);
    assert_eq!(lines.len(), 1, "one BUG report for the one attempted element: {lines:?}");
    assert!(lines[0].starts_with("kernel BUG at mm/mempool.c: mempool_alloc_slab: cache mp11_ctor has a constructor"));
    assert_eq!(m.cache_info(cache).active_objs, 0, "no object was taken from the cache");
    assert_eq!(CALLS.load(SEQ), 0, "no slab was even made");
    // The helper itself, called directly as C would: NULL.
    let mut data = kmem::mempool::PoolHelperData::slab(&m, cache);
    // SAFETY: `data` names this machine and a live cache.
    let e = unsafe { kmem::mempool::mempool_alloc_slab::<kmem::UserPlatform>(GFP_KERNEL, (&raw mut data).cast()) };
    assert!(e.is_null());
    assert_eq!(count_log(&m, "has a constructor"), 2);
    // SAFETY: Nothing uses the cache any more.
    unsafe { m.kmem_cache_destroy(cache) }.unwrap();
}

#[test]
fn mp12_slab_pools_hand_out_objects_of_their_cache() {
    let m = i386_nopcp(32);
    let cache = m.kmem_cache_create("mp12_slab", 200, &Default::default(), kmem::slab::flags::SLAB_NO_MERGE).unwrap();
    let pool = RawMempool::slab_pool(&m, 3, cache).unwrap();
    assert_eq!(pool.curr_nr(), 3);
    // Objects handed out by the cache and not freed (CPU arrays hold more, free).
    let out = |m: &Machine| {
        let i = m.cache_info(cache);
        i.alloc_fast + i.alloc_slow - i.free_fast - i.free_slow
    };
    assert_eq!(out(&m), 3, "the reserve holds three objects of the cache");
    let a = pool.alloc(GFP_KERNEL).unwrap();
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(a.as_ptr().cast()) }, m.cache(cache).unwrap().ksize());
    assert_eq!((out(&m), pool.curr_nr()), (4, 3), "the allocator first, the reserve untouched (MP-2)");
    assert!(pool.set_poisoning(true), "slab pools know their elements' bytes");
    free(&pool, a); // The reserve is full: back to the cache.
    assert_eq!(out(&m), 3);
    drop(pool);
    assert_eq!(out(&m), 0, "destroy gave the reserve back");
    // SAFETY: The pool is gone; nothing uses the cache.
    unsafe { m.kmem_cache_destroy(cache) }.expect("no object left");
}

#[test]
fn mp3_slab_pool_frees_go_straight_to_the_cache_only_while_the_reserve_is_full() {
    let m = i386_nopcp(32);
    let cache = m.kmem_cache_create("mp3_owner", 96, &Default::default(), kmem::slab::flags::SLAB_NO_MERGE).unwrap();
    let out = |m: &Machine| {
        let i = m.cache_info(cache);
        i.alloc_fast + i.alloc_slow - i.free_fast - i.free_slow
    };
    let pool = RawMempool::slab_pool(&m, 2, cache).unwrap();
    assert!(pool.owner_may_free(), "a full slab pool's free needs no lock");
    let a = pool.alloc(GFP_KERNEL).unwrap();
    let r = NonNull::new(pool.alloc_preallocated()).expect("a reserved element");
    assert_eq!((pool.curr_nr(), out(&m)), (1, 3));
    assert!(!pool.owner_may_free(), "the reserve is short: the free must look under the lock");
    free(&pool, a);
    assert_eq!((pool.curr_nr(), out(&m)), (2, 3), "MP-3: the free refilled the reserve");
    assert!(pool.owner_may_free());
    free(&pool, r);
    assert_eq!((pool.curr_nr(), out(&m)), (2, 2), "MP-3: full, so back to the cache");
    assert!(pool.set_poisoning(true));
    assert!(!pool.owner_may_free(), "poisoning checks every free under the lock");
    let b = pool.alloc(GFP_KERNEL).unwrap();
    free(&pool, b);
    assert_eq!((pool.curr_nr(), out(&m)), (2, 2));
    pool.set_poisoning(false);
    assert!(pool.owner_may_free());
    assert_eq!(pool.resize(3), Ok(()));
    assert!(pool.owner_may_free(), "the resize filled the larger reserve");
    drop(pool);
    assert_eq!(out(&m), 0);

    // Pools of other kinds, and slab pools that count their elements, are not marked: their
    // frees go through the pointers (or the kmalloc/page calls), and so reach the checks.
    let kmalloc = RawMempool::kmalloc_pool(&m, 2, 96).unwrap();
    assert!(!kmalloc.owner_may_free());
    drop(kmalloc);
    let debug = kmem::Machine::builder().mem_bytes(32 << 20).kswapd(false).mempool_debug(true).build().unwrap();
    let cache2 =
        debug.kmem_cache_create("mp3_owner_debug", 96, &Default::default(), kmem::slab::flags::SLAB_NO_MERGE).unwrap();
    let tracked = RawMempool::slab_pool(&debug, 2, cache2).unwrap();
    assert!(tracked.is_tracking() && !tracked.owner_may_free());
    let c = tracked.alloc(GFP_KERNEL).unwrap();
    assert_eq!(tracked.outstanding(), 1);
    free(&tracked, c);
    assert_eq!(tracked.outstanding(), 0, "the free was counted");
    drop(tracked);
    // SAFETY: The pools are gone; nothing uses the caches.
    unsafe {
        m.kmem_cache_destroy(cache).expect("no object left");
        debug.kmem_cache_destroy(cache2).expect("no object left");
    }
}

#[test]
fn mp12_kmalloc_pools_hand_out_blocks_of_their_size() {
    let m = i386_nopcp(32);
    let pool = RawMempool::kmalloc_pool(&m, 2, 100).unwrap();
    assert!(pool.set_poisoning(true));
    m.log().clear();
    let a = NonNull::new(pool.alloc_preallocated()).expect("from the reserve");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(a.as_ptr().cast()) }, 128, "a kmalloc-128 block");
    free(&pool, a); // The reserve is short: back into it, poisoned.
    // A write into the reserved block: the poison check on the next pop reports it.
    // SAFETY: The block is mapped (the pool's); this is the bug under test.
    unsafe { a.as_ptr().cast::<u8>().add(99).write(0x11) };
    let again = NonNull::new(pool.alloc_preallocated()).expect("from the reserve");
    assert_eq!(again, a, "LIFO");
    let text = log_lines(&m).join("\n");
    assert!(text.contains("BUG: mempool element poison mismatch") && text.contains("size 100"), "{text}");
    free(&pool, again);
    drop(pool);
    assert!(RawMempool::kmalloc_pool(&m, 1, (4 << 20) + 1).is_err(), "above KMALLOC_MAX_SIZE");
}

#[test]
fn mp12_typed_pools_use_kmalloc_for_small_values_and_pages_for_large_ones() {
    let m = i386_nopcp(32);
    let small: MemPool<[u64; 8]> = MemPool::new(&m, 2).unwrap();
    assert!(small.is_kmalloc());
    let v = small.alloc(GFP_KERNEL, [3; 8]).unwrap();
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(MemPoolBox::as_ptr(&v).as_ptr().cast()) }, 64, "kmalloc-64");
    assert_eq!(v.iter().sum::<u64>(), 24);
    drop(v);
    #[repr(align(256))]
    struct Aligned([u8; 300]);
    let aligned: MemPool<Aligned> = MemPool::new(&m, 1).unwrap();
    let x = aligned.alloc(GFP_KERNEL, Aligned([9; 300])).unwrap();
    assert_eq!(MemPoolBox::as_ptr(&x).as_ptr() as usize % 256, 0, "512-byte class, 512-aligned");
    assert_eq!(x.0[299], 9);
    drop(x);
    let large: MemPool<[u8; 10_000]> = MemPool::new(&m, 1).unwrap();
    assert!(!large.is_kmalloc());
    let y = large.alloc(GFP_KERNEL, [1; 10_000]).unwrap();
    assert_eq!(y[9_999], 1);
}

/// A slab pool over a cache of another machine is refused with a report (its objects are that
/// machine's memory, and that machine may be dropped first), and the pool's own machine is
/// left as it was.
#[test]
fn mp12_slab_pool_over_another_machines_cache_is_refused() {
    let a = i386_nopcp(32);
    let b = i386_nopcp(32);
    let cache = a
        .kmem_cache_create("mp12-foreign", 64, &kmem::slab::CacheArgs::default(), kmem::slab::flags::SlabFlags::empty())
        .unwrap();
    b.log().clear();
    let free = b.total_free();
    assert!(RawMempool::slab_pool(&b, 2, cache).is_err());
    assert_eq!(count_log(&b, "is not a cache of this machine; no pool made"), 1);
    assert_eq!(b.total_free(), free);
    let pool = RawMempool::slab_pool(&a, 2, cache).expect("on its own machine");
    drop(pool);
    // SAFETY: The pool is gone; nothing else uses the cache.
    unsafe { a.kmem_cache_destroy(cache) }.unwrap();
}

/// A typed pool writes its values through the elements' direct-map addresses, so its page
/// pool never takes HighMem, whatever mask reaches the pool: a resize with `GFP_HIGHUSER`
/// through `raw()` fills the reserve with lowmem pages, and every reserved element is usable.
#[test]
fn mp12_typed_page_pool_elements_stay_lowmem_under_a_highmem_mask() {
    let m = i386_nopcp(1024);
    assert!(m.zone(kmem::zone::ZoneType::HighMem).free_pages() > 1000, "HighMem to tempt the pool");
    let pool: MemPool<[u8; 16384]> = MemPool::new(&m, 2).unwrap();
    assert!(!pool.is_kmalloc());
    pool.raw().resize_gfp(64, GFP_HIGHUSER).unwrap();
    assert_eq!(pool.raw().curr_nr(), 64);
    let held: Vec<_> = (0..64).map(|i| pool.alloc_preallocated([i as u8; 16384]).expect("reserved")).collect();
    assert!(held.iter().enumerate().all(|(i, b)| b[16383] == i as u8));
    drop(held);
    assert_eq!(pool.raw().curr_nr(), 64);
}

/// MP-7 for the typed API: a value whose `Drop` panics still gives its element back (to the
/// reserve, here); the panic goes on.
#[test]
fn a_pool_box_whose_value_panics_in_drop_still_returns_its_element() {
    struct Panicky(#[allow(dead_code)] u64);
    impl Drop for Panicky {
        fn drop(&mut self) {
            panic!("value drop panics");
        }
    }
    let m = i386_nopcp(32);
    let pool: MemPool<Panicky> = MemPool::new(&m, 1).unwrap();
    let b = pool.alloc_preallocated(Panicky(1)).ok().unwrap();
    assert_eq!(pool.raw().curr_nr(), 0);
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(b))).is_err(), "the panic goes on");
    assert_eq!(pool.raw().curr_nr(), 1, "the reserve element came back");
}

/// A page pool of an order above `MAX_PAGE_ORDER` is not made, and says why as the kernel
/// does: `mempool_create_page_pool` fills its reserve with `alloc_pages(GFP_KERNEL, order)`,
/// whose `WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER)` fires.
#[test]
fn mp12_page_pool_above_max_order_reports_the_page_allocators_warning() {
    let m = i386(32);
    assert!(RawMempool::page_pool(&m, 1, MAX_PAGE_ORDER + 1).is_err());
    assert_eq!(count_log(&m, "__alloc_frozen_pages_noprof: order 11 > MAX_PAGE_ORDER (10)"), 1, "{:?}", log_lines(&m));
    assert!(RawMempool::page_pool(&m, 1, u32::MAX).is_err(), "any order, refused the same way");
}
