//! MP-13 for every pool kind, and TST-16: the mempool cases of KASAN's `kasan_test_c.c` ported
//! as functional tests over the poisoned reserve.
//!
//! Every pool kind (page pools of any order, slab pools, kmalloc pools below and above
//! `KMALLOC_MAX_CACHE_SIZE`, and custom pools that declared their element size) poisons an
//! element when it enters the reserve and checks it when it leaves, with the kernel's
//! `poison_error` report. The KASAN cases, each on a pool of four with one element taken by
//! `mempool_alloc_preallocated` so that frees go *into* the reserve, as the kernel test does:
//! - `*_uaf` (kmalloc, kmalloc_large, slab, page_alloc): KASAN faults on a read of a reserved
//!   element; poisoning cannot see reads, so the port writes, and the write is reported when
//!   the element leaves the reserve.
//! - `*_double_free` (kmalloc, kmalloc_large, page_alloc) and `*_invalid_free` (kmalloc,
//!   kmalloc_large): with poisoning on, `mempool_free` reports an element already in the reserve
//!   and a pointer that is not an element, and ignores the call.
//! - `*_oob_right` (kmalloc, slab): the byte past the element is the slab's red zone on a
//!   `slub_debug=FZU` machine; the overwrite is reported when the element goes back to its cache.
//!   Not ported: `mempool_kmalloc_large_oob_right` — a large kmalloc is a page block with
//!   nothing behind the request to check (KASAN's shadow memory has no counterpart here).

use std::ffi::c_void;
use std::ptr::NonNull;

use kmem::mempool::RawMempool;
use kmem::slab::CacheRef;
use kmem::{Machine, Page, Profile};
use kmem_core::kmalloc::classes::KMALLOC_MAX_CACHE_SIZE;

use crate::mempool::Recorder;
use crate::*;

/// The pool kinds.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A page pool of this order.
    Pages(u32),
    /// A slab pool over a 123-byte cache (`kasan_test_c.c`'s `test_cache`).
    Slab,
    /// A kmalloc pool of this size.
    Kmalloc(usize),
    /// A custom pool (page-sized elements of a [`Recorder`]) that declared its element size.
    Custom,
}

/// A pool of `kind` with `min_nr` elements, and what it needs kept alive.
struct Pool {
    pool: RawMempool,
    cache: Option<CacheRef>,
    _rec: Option<Box<Recorder>>,
}

impl Pool {
    fn new(m: &Machine, kind: Kind, min_nr: usize) -> Pool {
        let (pool, cache, rec) = match kind {
            Kind::Pages(order) => (RawMempool::page_pool(m, min_nr, order).unwrap(), None, None),
            Kind::Kmalloc(size) => (RawMempool::kmalloc_pool(m, min_nr, size).unwrap(), None, None),
            Kind::Slab => {
                let cache = m.kmem_cache_create("test_cache", 123, &Default::default(), Default::default()).unwrap();
                (RawMempool::slab_pool(m, min_nr, cache).unwrap(), Some(cache), None)
            }
            Kind::Custom => {
                let rec = Recorder::new(m, false);
                let pool = rec.pool(min_nr).unwrap();
                assert!(!pool.set_poisoning(true), "no declared size yet: the pool cannot find the bytes");
                // SAFETY: Recorder elements are whole lowmem pages, used by nobody else while
                // they are the pool's.
                assert!(unsafe { pool.set_element_size(kmem::PAGE_SIZE) });
                (pool, None, Some(rec))
            }
        };
        if !matches!(kind, Kind::Custom) {
            // SAFETY: Any size; a helper pool refuses it.
            assert!(!unsafe { pool.set_element_size(8) }, "helper pools know their elements");
        }
        assert!(pool.set_poisoning(true));
        Pool { pool, cache, _rec: rec }
    }

    /// `mempool_alloc_preallocated`.
    #[track_caller]
    fn take(&self) -> NonNull<c_void> {
        NonNull::new(self.pool.alloc_preallocated()).expect("from the reserve")
    }

    /// `mempool_free`.
    #[track_caller]
    fn give(&self, e: NonNull<c_void>) {
        // SAFETY: The tests free only this pool's elements (or pointers under test, which the
        // poisoned pool checks and rejects before anything touches them).
        unsafe { self.pool.free(e) }
    }

    fn mempool(&self) -> *const kmem::mempool::Mempool {
        std::ptr::from_ref(&*self.pool)
    }

    /// Destroys the pool (and the slab pool's cache).
    fn destroy(self, m: &Machine) {
        drop(self.pool);
        if let Some(cache) = self.cache {
            // SAFETY: The pool is gone; nothing else uses the cache.
            unsafe { m.kmem_cache_destroy(cache) }.expect("every object back");
        }
    }
}

/// The element's bytes (page pools: the block's direct-map address) and their number.
fn bytes_of(m: &Machine, kind: Kind, e: NonNull<c_void>) -> (NonNull<u8>, usize) {
    match kind {
        Kind::Pages(order) => {
            // SAFETY: Page pool elements are `Page`s of the machine.
            let page: &Page = unsafe { e.cast::<Page>().as_ref() };
            (m.page_address(page).expect("lowmem"), kmem::PAGE_SIZE << order)
        }
        Kind::Slab => (e.cast(), 123),
        Kind::Kmalloc(size) => (e.cast(), size),
        Kind::Custom => (e.cast(), kmem::PAGE_SIZE),
    }
}

fn read(m: &Machine, (addr, size): (NonNull<u8>, usize)) -> Vec<u8> {
    let mut buf = vec![0; size];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(addr, &mut buf) }.unwrap();
    buf
}

fn poke(addr: NonNull<u8>, at: usize, value: u8) {
    // SAFETY: `addr + at` is inside memory the test's pool owns; writing it is the bug under test.
    unsafe { addr.as_ptr().add(at).write(value) }
}

/// The kernel's `poison_error` report for a write of `value` at byte `bad` of a reserved
/// element at `addr` of `size` bytes that left slot `nr` of `pool`.
fn poison_report(
    pool: *const kmem::mempool::Mempool,
    addr: NonNull<u8>,
    size: usize,
    nr: usize,
    bad: usize,
    value: u8,
) -> String {
    let (start, end) = (bad.saturating_sub(8), (bad + 8).min(size));
    let byte = |i: usize| {
        if i == bad {
            value
        } else if i + 1 == size {
            0xa5
        } else {
            0x6b
        }
    };
    let hex: String = (start..end).map(|i| format!("{:x} ", byte(i))).collect();
    format!(
        "BUG: mempool element poison mismatch\nMempool {pool:p} size {size}\n nr={nr} @ {:p}: {}0x{hex}{}",
        addr.as_ptr(),
        if start > 0 { "... " } else { "" },
        if end < size { "..." } else { "" },
    )
}

/// Asserts that the log holds `report` (one line per record) exactly once.
fn assert_reported(m: &Machine, report: &str) {
    let text = log_lines(m).join("\n");
    assert_eq!(text.matches(report).count(), 1, "wanted once:\n{report}\nlog:\n{text}");
}

const EVERY_KIND: [Kind; 6] = [
    Kind::Pages(0),
    Kind::Pages(2),
    Kind::Slab,
    Kind::Kmalloc(100),
    Kind::Kmalloc(KMALLOC_MAX_CACHE_SIZE + 1),
    Kind::Custom,
];

#[test]
fn mp13_every_pool_kind_poisons_on_entry_and_checks_on_exit() {
    for kind in EVERY_KIND {
        let m = x86_64_nopcp(64);
        let p = Pool::new(&m, kind, 2);
        m.log().clear();
        let e = p.take();
        let span = bytes_of(&m, kind, e);
        assert!(read(&m, span).iter().all(|&b| b == 0x5a), "{kind:?}: checked, then POISON_INUSE on exit");
        p.give(e); // One short: into the reserve.
        let mut poisoned = vec![0x6b; span.1];
        poisoned[span.1 - 1] = 0xa5;
        assert_eq!(read(&m, span), poisoned, "{kind:?}: POISON_FREE and POISON_END on entry");
        assert_eq!(p.take(), e, "LIFO");
        assert!(log_lines(&m).is_empty(), "{kind:?}: an untouched element passes: {:#?}", log_lines(&m));
        p.give(e);
        // A write while the element is reserved, half-way in: reported when it leaves slot 1.
        let bad = span.1 / 2;
        poke(span.0, bad, 0x11);
        let (again, line) = (p.take(), line!());
        assert_eq!(again, e);
        assert_reported(&m, &poison_report(p.mempool(), span.0, span.1, 1, bad, 0x11));
        assert_eq!(count_log(&m, &format!("{}:{line}:", file!())), 1, "{kind:?}: the trace names the caller");
        assert!(read(&m, span).iter().all(|&b| b == 0x5a), "{kind:?}: refilled with POISON_INUSE after the report");
        p.give(again);
        p.destroy(&m);
        check(&m);
    }
}

#[test]
fn mp13_poisoning_turned_on_poisons_what_is_already_reserved() {
    let m = x86_64_nopcp(64);
    let pool = RawMempool::kmalloc_pool(&m, 2, 64).unwrap();
    let a = NonNull::new(pool.alloc_preallocated()).unwrap();
    // SAFETY: `a` is this pool's; it goes back into the reserve unpoisoned.
    unsafe { pool.free(a) };
    assert!(pool.set_poisoning(true));
    let mut poisoned = vec![0x6b; 64];
    poisoned[63] = 0xa5;
    assert_eq!(read(&m, (a.cast(), 64)), poisoned);
    assert!(pool.set_poisoning(false));
    let b = NonNull::new(pool.alloc_preallocated()).unwrap();
    assert_eq!(read(&m, (b.cast(), 64)), poisoned, "off: no check, no POISON_INUSE");
    // SAFETY: `b` is this pool's.
    unsafe { pool.free(b) };
    drop(pool);
    check(&m);
}

/// Mempool debugging (`Builder::mempool_debug`, `KMEM_MEMPOOL_DEBUG=1`) is the kernel's
/// `CONFIG_SLUB_DEBUG_ON` for pools: every pool that knows its elements' size starts poisoned,
/// and every pool counts its elements.
#[test]
fn mp13_mempool_debug_poisons_every_sized_pool_from_creation() {
    let m = builder(Profile::X86_64, 64).pcp(false).mempool_debug(true).build().unwrap();
    let pool = RawMempool::kmalloc_pool(&m, 2, 64).unwrap();
    assert!(pool.is_tracking());
    let a = NonNull::new(pool.alloc_preallocated()).unwrap();
    assert!(read(&m, (a.cast(), 64)).iter().all(|&b| b == 0x5a), "checked, then POISON_INUSE");
    poke(a.cast(), 0, 0x42);
    // SAFETY: `a` is this pool's; it goes back into the reserve, poisoned.
    unsafe { pool.free(a) };
    let mut poisoned = vec![0x6b; 64];
    poisoned[63] = 0xa5;
    assert_eq!(read(&m, (a.cast(), 64)), poisoned);
    assert_eq!(pool.outstanding(), 0);
    drop(pool);
    // Elements from the backing allocator count too, for every helper kind (their inlined
    // first pass counts nothing, so a debugging pool goes through its pointers).
    let cache = m.kmem_cache_create("debug_pool", 48, &Default::default(), Default::default()).unwrap();
    for pool in [
        RawMempool::kmalloc_pool(&m, 1, 64).unwrap(),
        RawMempool::slab_pool(&m, 1, cache).unwrap(),
        RawMempool::page_pool(&m, 1, 0).unwrap(),
    ] {
        let e = pool.alloc(kmem::gfp::GFP_KERNEL).unwrap();
        assert_eq!((pool.curr_nr(), pool.outstanding()), (1, 1), "from the backing allocator");
        // SAFETY: `e` is this pool's.
        unsafe { pool.free(e) };
        assert_eq!(pool.outstanding(), 0);
    }
    // SAFETY: The pools are gone.
    unsafe { m.kmem_cache_destroy(cache) }.unwrap();
    // A custom pool without a declared size is counted, not poisoned.
    let rec = Recorder::new(&m, false);
    let custom = rec.pool(1).unwrap();
    assert!(custom.is_tracking());
    let e = custom.alloc(kmem::gfp::GFP_KERNEL).unwrap();
    assert_eq!(custom.outstanding(), 1);
    // SAFETY: `e` is this pool's.
    unsafe { custom.free(e) };
    drop(custom);
    assert!(log_lines(&m).is_empty(), "{:#?}", log_lines(&m));
    check(&m);
}

/// `mempool_uaf_helper`: an element freed into the reserve is written; the next allocation of
/// it reports the write at byte 0.
fn uaf(kind: Kind) {
    let m = x86_64_nopcp(64);
    let p = Pool::new(&m, kind, 4);
    m.log().clear();
    let elem = p.take();
    p.give(elem);
    let span = bytes_of(&m, kind, elem);
    poke(span.0, 0, 0x42);
    assert_eq!(p.take(), elem);
    assert_reported(&m, &poison_report(p.mempool(), span.0, span.1, 3, 0, 0x42));
    p.give(elem);
    p.destroy(&m);
    check(&m);
}

#[test]
fn tst16_mempool_kmalloc_uaf() {
    uaf(Kind::Kmalloc(128));
}

#[test]
fn tst16_mempool_kmalloc_large_uaf() {
    uaf(Kind::Kmalloc(KMALLOC_MAX_CACHE_SIZE + 1));
}

#[test]
fn tst16_mempool_slab_uaf() {
    uaf(Kind::Slab);
}

#[test]
fn tst16_mempool_page_alloc_uaf() {
    uaf(Kind::Pages(2));
}

/// `mempool_double_free_helper`: the second free of an element that is already in the reserve
/// is reported and ignored.
fn double_free(kind: Kind) {
    let m = x86_64_nopcp(64);
    let p = Pool::new(&m, kind, 4);
    m.log().clear();
    let elem = p.take();
    p.give(elem);
    let line = line!() + 1;
    p.give(elem);
    assert_reported(
        &m,
        &format!(
            "BUG: mempool_free: double free: the element is already in the reserve\nMempool {:p} element {:p}",
            p.mempool(),
            elem.as_ptr()
        ),
    );
    assert_eq!(count_log(&m, &format!("{}:{line}:", file!())), 1, "the trace names the caller");
    assert_eq!((p.pool.curr_nr(), p.pool.outstanding()), (4, 0), "nothing changed");
    assert_eq!(count_log(&m, "double free"), 1, "the backing allocator never saw it");
    p.destroy(&m);
    check(&m);
}

#[test]
fn tst16_mempool_kmalloc_double_free() {
    double_free(Kind::Kmalloc(128));
}

#[test]
fn tst16_mempool_kmalloc_large_double_free() {
    double_free(Kind::Kmalloc(KMALLOC_MAX_CACHE_SIZE + 1));
}

#[test]
fn tst16_mempool_page_alloc_double_free() {
    double_free(Kind::Pages(2));
}

/// `mempool_kmalloc_invalid_free_helper`: `mempool_free(elem + 1)` is reported and ignored;
/// the real element then goes back.
fn invalid_free(size: usize) {
    let m = x86_64_nopcp(64);
    let p = Pool::new(&m, Kind::Kmalloc(size), 4);
    m.log().clear();
    let elem = p.take();
    // SAFETY: One byte into a non-NULL element: not NULL; only the address is computed.
    let inner = unsafe { NonNull::new_unchecked(elem.as_ptr().cast::<u8>().add(1)) }.cast();
    p.give(inner);
    assert_reported(
        &m,
        &format!(
            "BUG: mempool_free: invalid free: not an element of this pool\nMempool {:p} element {:p}",
            p.mempool(),
            inner.as_ptr()
        ),
    );
    assert_eq!(p.pool.curr_nr(), 3, "not taken into the reserve");
    p.give(elem);
    assert_eq!((p.pool.curr_nr(), p.pool.outstanding()), (4, 0));
    assert_eq!(log_lines(&m).iter().filter(|l| l.starts_with("BUG:")).count(), 1, "{:#?}", log_lines(&m));
    p.destroy(&m);
    check(&m);
}

/// A smaller kmalloc block freed into a kmalloc pool's short reserve (the wrong pool) is not an
/// element: reported and left alone, never poisoned over its end (poisoning the pool's 256
/// bytes would overwrite its neighbours).
#[test]
fn tst16_mempool_kmalloc_smaller_block_from_elsewhere_is_rejected() {
    let m = x86_64_nopcp(64);
    let p = Pool::new(&m, Kind::Kmalloc(256), 4);
    let small = m.kmalloc(16, kmem::gfp::GFP_KERNEL).unwrap();
    let neighbour = m.kmalloc(16, kmem::gfp::GFP_KERNEL).unwrap();
    // SAFETY: 16 bytes of our own kmalloc block.
    unsafe { neighbour.as_ptr().write_bytes(0x11, 16) };
    m.log().clear();
    let elem = p.take();
    p.give(small.cast());
    assert_reported(
        &m,
        &format!(
            "BUG: mempool_free: invalid free: not an element of this pool\nMempool {:p} element {:p}",
            p.mempool(),
            small.as_ptr()
        ),
    );
    assert_eq!(p.pool.curr_nr(), 3, "not taken into the reserve");
    // SAFETY: As above.
    assert!((0..16).all(|i| unsafe { neighbour.as_ptr().add(i).read() } == 0x11), "the neighbour is intact");
    p.give(elem);
    // SAFETY: Both are ours, freed once.
    unsafe {
        m.kfree(small.as_ptr());
        m.kfree(neighbour.as_ptr());
    }
    p.destroy(&m);
    check(&m);
}

#[test]
fn tst16_mempool_kmalloc_invalid_free() {
    invalid_free(128);
}

#[test]
fn tst16_mempool_kmalloc_large_invalid_free() {
    invalid_free(KMALLOC_MAX_CACHE_SIZE + 1);
}

/// `mempool_oob_right_helper` on a `slub_debug=FZU` machine (red zones, checked on free; `U` records kmalloc request sizes): the byte just past the element is
/// the slab's red zone; the overwrite survives the reserve (only the element is poisoned) and
/// is reported when the pool gives the element back to its cache.
fn oob_right(kind: Kind, size: usize, expect: &str) {
    let m = builder(Profile::X86_64, 64).pcp(false).slub_debug("FZU,test_cache,kmalloc-128").build().unwrap();
    let p = Pool::new(&m, kind, 4);
    m.log().clear();
    let elem = p.take();
    poke(elem.cast(), size, 0x99);
    p.give(elem);
    assert_eq!(p.take(), elem, "the element itself is intact: no poison report");
    assert!(log_lines(&m).is_empty(), "{:#?}", log_lines(&m));
    p.give(elem);
    drop(p.pool);
    assert_eq!(count_log(&m, expect), 1, "{:#?}", log_lines(&m));
    if let Some(cache) = p.cache {
        // As the kernel: an object that failed its free checks is not freed ("not freed"), so
        // the cache still has it.
        assert_eq!(count_log(&m, "not freed"), 1);
        // SAFETY: The pool is gone; nothing else uses the cache.
        let err = unsafe { m.kmem_cache_destroy(cache) }.expect_err("the object stays allocated");
        assert_eq!(err.live_objects, 1);
    }
    check(&m);
}

#[test]
fn tst16_mempool_kmalloc_oob_right() {
    // `128 - KASAN_GRANULE_SIZE - 5` bytes in kmalloc-128: the request's end is red-zoned.
    oob_right(Kind::Kmalloc(115), 115, "[kmalloc Redzone overwritten]");
}

#[test]
fn tst16_mempool_slab_oob_right() {
    oob_right(Kind::Slab, 123, "[Right Redzone overwritten]");
}

/// A kmalloc pool of size 0 (`mempool_create_kmalloc_pool(n, 0)`): every element is
/// `ZERO_SIZE_PTR` (KM-2), one address for all of them, with no bytes to poison. Under mempool
/// debugging the reserve's copies of it made every free look like a double free (reported and
/// ignored, so the destroy then reported a leak) and the pointer "not an element"; it now
/// passes like any element, as in the kernel, which checks neither.
#[test]
fn a_size_zero_kmalloc_pool_frees_its_zero_size_elements_under_debugging() {
    let m = builder(Profile::X86_64, 64).mempool_debug(true).build().unwrap();
    let pool = RawMempool::kmalloc_pool(&m, 2, 0).unwrap();
    let a = pool.alloc(kmem::gfp::GFP_KERNEL).unwrap();
    let b = pool.alloc_preallocated();
    assert_eq!((a.as_ptr() as usize, b as usize), (16, 16), "ZERO_SIZE_PTR");
    // SAFETY: The pool's own elements, freed once each, unused afterwards.
    unsafe {
        pool.free(a);
        pool.free(NonNull::new(b).unwrap());
    }
    assert_eq!(pool.curr_nr(), 2, "the reserve took its element back");
    drop(pool);
    assert_eq!(count_log(&m, "BUG"), 0, "{:?}", log_lines(&m));
    assert_eq!(count_log(&m, "WARNING"), 0, "{:?}", log_lines(&m));
}
