//! TST-15 (SEMANTICS §8.4): the cases of Linux `mm/kfence/kfence_test.c` that assert
//! allocator semantics rather than KFENCE internals — `test_krealloc`, `test_memcache_ctor`,
//! `test_gfpzero`, `test_free_bulk` — ported as plain slab tests through `kmem::Machine`.
//!
//! KFENCE only changes *where* a sampled object lives (a guarded page of its own); the
//! kernel's test checks that the slab API behaves the same for such objects. Here every object
//! is an ordinary slab object, and each expectation of the kernel's case is turned into what a
//! plain slab makes observable:
//! - "no report" is "no slab report counted and no `BUG`/`WARNING` in the log";
//! - "the old object was freed" (KFENCE: a use-after-free report on the next read) is "the
//!   next allocation of that size takes the same object back" (SL-8, LIFO reuse);
//! - "`ksize` is exact for a guarded object" is the kmalloc class size (KM-7).
//!
//! As in `KFENCE_KUNIT_CASE`, the cases that run on kmalloc and on a custom cache in the
//! kernel (`test_free_bulk`) run on both here; the kernel's custom caches are made with
//! `SLAB_NOLEAKTRACE | SLAB_ACCOUNT` and align 1, so they are never merged.

use crate::{read_obj as read, write_obj as write};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::kmalloc::classes::ZERO_SIZE_PTR;
use kmem::slab::flags::{SLAB_ACCOUNT, SLAB_NOLEAKTRACE, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef, ObjFn};
use kmem::{Machine, PAGE_SIZE, Profile};

use crate::builder;

/// A 64 MiB x86_64 machine without per-CPU page lists, with no `init_on_alloc`/`init_on_free`
/// (so only `__GFP_ZERO` zeroes, and a control can see garbage come back).
fn machine() -> Machine {
    builder(Profile::X86_64, 64).pcp(false).init_on_alloc(false).init_on_free(false).build().expect("build machine")
}

/// `setup_test_cache`: a cache named `test` of `size` bytes, align 1, with the kernel test's
/// `SLAB_NOLEAKTRACE | SLAB_ACCOUNT` and an optional constructor.
fn test_cache(m: &Machine, size: usize, ctor: Option<ObjFn>) -> CacheRef {
    let args = CacheArgs { align: 1, ctor, ..CacheArgs::default() };
    let flags: SlabFlags = SLAB_NOLEAKTRACE | SLAB_ACCOUNT;
    m.kmem_cache_create("test", size, &args, flags).unwrap_or_else(|e| panic!("create test ({size} B): {e}"))
}

/// `ctor_set_x`: every object has at least 8 bytes; they become `'x'`. `ctx` counts the calls.
///
/// # Safety
/// `ctx` is a live `AtomicUsize` and `obj` an object of at least 8 bytes.
unsafe fn ctor_set_x(ctx: *const (), obj: *mut u8) {
    // SAFETY: The caller's promise: a live counter.
    unsafe { &*ctx.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
    // SAFETY: The caller's promise: 8 bytes of the object being constructed.
    unsafe { obj.write_bytes(b'x', 8) };
}

/// `ctor_set_x` with a counter of its own (leaked: a cache may call it until the test ends).
fn ctor_x() -> (ObjFn, &'static AtomicUsize) {
    let calls: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    // SAFETY: A leaked atomic counter and the object's first 8 bytes, from any thread.
    (unsafe { ObjFn::new(ctor_set_x, std::ptr::from_ref(calls).cast()) }, calls)
}

/// The kernel test's fill: byte `i` is `(char)(i + 1)`.
fn pattern(range: std::ops::Range<usize>) -> Vec<u8> {
    range.map(|i| (i + 1) as u8).collect()
}

fn ksize(m: &Machine, p: NonNull<u8>) -> usize {
    // SAFETY: The test's own live object.
    unsafe { m.ksize(p.as_ptr()) }
}

fn kfree(m: &Machine, p: NonNull<u8>) {
    // SAFETY: The test's own object, not used afterwards.
    unsafe { m.kfree(p.as_ptr()) };
}

/// `report_available()` is false: nothing the allocator reports was logged while `f` ran.
fn no_report<T>(m: &Machine, what: &str, f: impl FnOnce() -> T) -> T {
    let (errors, lines) = (m.slabs().errors(), m.log().records().len());
    let out = f();
    let new: Vec<String> = m.log().records().into_iter().skip(lines).map(|r| r.text).collect();
    assert_eq!(m.slabs().errors(), errors, "{what}: slab reports counted: {new:#?}");
    let bad: Vec<&String> = new.iter().filter(|l| l.contains("BUG") || l.contains("WARNING")).collect();
    assert!(bad.is_empty(), "{what}: reported {bad:#?}");
    out
}

/// TST-15, `test_krealloc`: a 32-byte kmalloc object (`ksize` exactly 32) filled with
/// `i + 1`; `krealloc` to 96 keeps the 32 bytes and gives `ksize >= 96`; after filling to 96,
/// `krealloc` to 64 keeps all 64 and gives `ksize >= 64`; `krealloc(p, 0)` is
/// `ZERO_SIZE_PTR` and frees. No report throughout. The kernel then reads the first object
/// and expects a use-after-free report: here the frees show as LIFO reuse — the next
/// `kmalloc(32)` is the first object (freed by the grow), the next `kmalloc(96)` the second
/// (freed by `krealloc(p, 0)`).
#[test]
fn tst15_test_krealloc() {
    let m = machine();
    const SIZE: usize = 32;
    let first = m.kmalloc(SIZE, GFP_KERNEL).expect("kmalloc(32)");
    let buf = no_report(&m, "krealloc grow, shrink and free", || {
        assert_eq!(ksize(&m, first), SIZE, "ksize of kmalloc(32): precise size match");
        write(&m, first, &pattern(0..SIZE));

        // SAFETY: `first` is ours; on success only the returned pointer is used.
        let grown = unsafe { m.krealloc(first.as_ptr(), SIZE * 3, GFP_KERNEL) }.expect("grow to 96");
        assert!(ksize(&m, grown) >= SIZE * 3, "ksize {} after the grow to 96", ksize(&m, grown));
        assert_eq!(read(&m, grown, SIZE), pattern(0..SIZE), "the 32 bytes moved with the grow");
        write(&m, NonNull::new(grown.as_ptr().wrapping_add(SIZE)).unwrap(), &pattern(SIZE..SIZE * 3));

        // SAFETY: As above.
        let shrunk = unsafe { m.krealloc(grown.as_ptr(), SIZE * 2, GFP_KERNEL) }.expect("shrink to 64");
        assert!(ksize(&m, shrunk) >= SIZE * 2, "ksize {} after the shrink to 64", ksize(&m, shrunk));
        assert_eq!(read(&m, shrunk, SIZE * 2), pattern(0..SIZE * 2), "the first 64 bytes kept by the shrink");

        // SAFETY: As above: `krealloc(p, 0)` frees `shrunk`.
        let gone = unsafe { m.krealloc(shrunk.as_ptr(), 0, GFP_KERNEL) }.expect("krealloc(p, 0)");
        assert_eq!(gone.as_ptr() as usize, ZERO_SIZE_PTR, "krealloc(p, 0) is ZERO_SIZE_PTR");
        shrunk
    });
    assert_ne!(buf, first, "96 bytes do not fit the 32-byte object");
    // Both objects were freed: each is the next one of its class handed out (LIFO, SL-8).
    let again32 = m.kmalloc(SIZE, GFP_KERNEL).expect("kmalloc(32)");
    assert_eq!(again32, first, "the grow freed the 32-byte object");
    let again96 = m.kmalloc(SIZE * 3, GFP_KERNEL).expect("kmalloc(96)");
    assert_eq!(again96, buf, "krealloc(p, 0) freed the 96-byte object");
    kfree(&m, again32);
    kfree(&m, again96);
}

/// TST-15, `test_memcache_ctor`: a 32-byte cache whose constructor sets the first 8 bytes to
/// `'x'`; an allocated object starts with eight `'x'`, and freeing it reports nothing. The
/// port also checks where the constructor runs (SL-7): once for every slot when a slab is
/// populated, so every object of that slab — by `kmem_cache_alloc` or the bulk API — starts
/// with the constructor's bytes, and a second slab constructs all of its slots again.
#[test]
fn tst15_test_memcache_ctor() {
    let m = machine();
    let (ctor, calls) = ctor_x();
    let c = test_cache(&m, 32, Some(ctor));
    let per_slab = m.cache(c).expect("live cache").objects_per_slab();
    assert!(per_slab > 2, "{per_slab} objects per slab");

    let buf = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
    assert_eq!(read(&m, buf, 8), b"xxxxxxxx", "constructed object");
    assert_eq!(calls.load(Ordering::SeqCst), per_slab, "the constructor ran for every slot of the new slab");
    no_report(&m, "free of a constructed object", || {
        // SAFETY: Ours, not used afterwards.
        unsafe { m.kmem_cache_free(c, buf.as_ptr()) }
    });

    // The rest of the first slab and one object of a second one, half of them through the
    // bulk API: all constructed.
    let mut objs: Vec<*mut u8> =
        (0..per_slab / 2).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).unwrap().as_ptr()).collect();
    let mut bulk = vec![std::ptr::null_mut(); per_slab + 1 - objs.len()];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut bulk), bulk.len());
    objs.extend(bulk);
    for &p in &objs {
        let p = NonNull::new(p).expect("allocated");
        assert_eq!(read(&m, p, 8), b"xxxxxxxx", "object {p:p} not constructed");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2 * per_slab, "a second slab, constructed whole");
    no_report(&m, "bulk free of constructed objects", || {
        // SAFETY: Ours, not used afterwards.
        unsafe { m.kmem_cache_free_bulk(Some(c), &objs) }
    });
    // SAFETY: Every object went back; the cache is not used again.
    unsafe { m.kmem_cache_destroy(c) }.expect("no objects remaining");
}

/// TST-15, `test_gfpzero`: a `PAGE_SIZE` object filled with `i + 1` and freed, then allocated
/// again with `__GFP_ZERO` until the same address comes back (at once here: LIFO) — all zero.
/// The control allocates it back without `__GFP_ZERO` (no `init_on_*` on this machine): the
/// old bytes are still there, so the zeroes come from the flag. The kernel runs this on
/// kmalloc; the port runs it on a `PAGE_SIZE` cache of its own too.
#[test]
fn tst15_test_gfpzero() {
    const SIZE: usize = PAGE_SIZE;
    let m = machine();
    let c = test_cache(&m, SIZE, None);
    let alloc = |cache: Option<CacheRef>, zero: bool| {
        let gfp = if zero { GFP_KERNEL | __GFP_ZERO } else { GFP_KERNEL };
        match cache {
            Some(c) => m.kmem_cache_alloc(c, gfp),
            None => m.kmalloc(SIZE, gfp),
        }
        .expect("allocation")
    };
    let free = |cache: Option<CacheRef>, p: NonNull<u8>| match cache {
        // SAFETY: Ours, not used afterwards (until allocated again).
        Some(c) => unsafe { m.kmem_cache_free(c, p.as_ptr()) },
        None => kfree(&m, p),
    };
    for cache in [None, Some(c)] {
        let what = if cache.is_some() { "cache test" } else { "kmalloc" };
        no_report(&m, what, || {
            let buf1 = alloc(cache, false);
            write(&m, buf1, &pattern(0..SIZE));
            free(cache, buf1);
            // Control: the same object without `__GFP_ZERO` still holds the pattern.
            let again = alloc(cache, false);
            assert_eq!(again, buf1, "{what}: the object just freed comes back first");
            assert_eq!(read(&m, again, SIZE), pattern(0..SIZE), "{what}: nothing zeroes it without the flag");
            free(cache, again);

            // "Try to get same address again".
            let mut held = Vec::new();
            let buf2 = loop {
                let p = alloc(cache, true);
                if p == buf1 {
                    break p;
                }
                assert!(held.len() < 64, "{what}: cannot get the same object back");
                held.push(p);
            };
            let bytes = read(&m, buf2, SIZE);
            let nonzero = bytes.iter().position(|&b| b != 0);
            assert_eq!(nonzero, None, "{what}: __GFP_ZERO left byte {nonzero:?} set");
            free(cache, buf2);
            for p in held {
                free(cache, p);
            }
        });
    }
    // SAFETY: Every object went back; the cache is not used again.
    unsafe { m.kmem_cache_destroy(c) }.expect("no objects remaining");
}

/// TST-15, `test_free_bulk`: five rounds, each on a fresh cache `test` of 8 + random(300)
/// bytes (here five fixed sizes over that range), with `ctor_set_x` on odd rounds; five
/// objects allocated one by one and given back with one `kmem_cache_free_bulk` — no report,
/// and the cache destroyed (the kernel test's teardown, which reports objects remaining).
/// The port also checks that the bulk free gave back each object once: the next five
/// allocations are the same five objects, and with a constructor each still starts with its
/// `'x'` bytes (the free pointer of a constructor cache lies outside the object, SL-4, so a
/// free never overwrites constructed state); after they are freed again the cache shrinks to
/// no slab.
#[test]
fn tst15_test_free_bulk_memcache() {
    let m = machine();
    for (iter, size) in [8usize, 77, 150, 231, 307].into_iter().enumerate() {
        let (ctor, _) = ctor_x();
        let with_ctor = iter & 1 == 1;
        let c = test_cache(&m, size, with_ctor.then_some(ctor));
        let objects: Vec<*mut u8> = (0..5).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).unwrap().as_ptr()).collect();
        no_report(&m, &format!("round {iter} ({size} B)"), || {
            // SAFETY: Ours, not used afterwards.
            unsafe { m.kmem_cache_free_bulk(Some(c), &objects) }
        });
        let mut again: Vec<*mut u8> = (0..5).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).unwrap().as_ptr()).collect();
        if with_ctor {
            for &p in &again {
                assert_eq!(read(&m, NonNull::new(p).unwrap(), 8), b"xxxxxxxx", "round {iter}: constructed state lost");
            }
        }
        let mut want = objects.clone();
        want.sort_unstable();
        again.sort_unstable();
        assert_eq!(again, want, "round {iter} ({size} B): the bulk free gave back each object once");
        // SAFETY: Ours, not used afterwards.
        unsafe { m.kmem_cache_free_bulk(Some(c), &again) };
        assert_eq!(m.kmem_cache_shrink(c), 0, "round {iter}: every object came back, no slab left");
        no_report(&m, &format!("round {iter}: destroy"), || {
            // SAFETY: Not used again.
            unsafe { m.kmem_cache_destroy(c) }.expect("no objects remaining")
        });
    }
}

/// TST-15, `test_free_bulk` without a custom cache (the kernel's `test_cache == NULL`, so
/// `kmem_cache_free_bulk(NULL, …)`, which takes each object's own cache): five kmalloc
/// objects of each size freed in one call — no report, and the next five kmallocs of the size
/// are the same five objects.
#[test]
fn tst15_test_free_bulk_kmalloc() {
    let m = machine();
    for size in [8usize, 77, 150, 231, 307] {
        let objects: Vec<*mut u8> = (0..5).map(|_| m.kmalloc(size, GFP_KERNEL).unwrap().as_ptr()).collect();
        no_report(&m, &format!("kmalloc({size})"), || {
            // SAFETY: Ours, not used afterwards.
            unsafe { m.kmem_cache_free_bulk(None, &objects) }
        });
        let mut again: Vec<*mut u8> = (0..5).map(|_| m.kmalloc(size, GFP_KERNEL).unwrap().as_ptr()).collect();
        let mut want = objects.clone();
        want.sort_unstable();
        again.sort_unstable();
        assert_eq!(again, want, "kmalloc({size}): the bulk free gave back each object once");
        for p in again {
            // SAFETY: Ours, freed once.
            unsafe { m.kfree(p) };
        }
    }
}
