//! Dedicated bucket sets (`kmem_buckets_create`, `kmem_buckets_alloc`, `kmem_buckets_valloc`,
//! kmem's `kmem_buckets_destroy`; Linux 6.11+, SEMANTICS §3.1) and the memory-cgroup slab
//! calls without memory cgroups (`kmem_cache_alloc_lru`, `kmem_cache_charge`).
//!
//! Membership of an object in a cache is proven by freeing it with `kmem_cache_free` to that
//! cache: an object of another cache would be reported (`Wrong slab cache`, SL-18), which the
//! tests count.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use kmem::gfp::{__GFP_ACCOUNT, __GFP_NOWARN, __GFP_RECLAIMABLE, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT};
use kmem::kmalloc::buckets::{KmemBuckets, NR_BUCKETS, bucket_usercopy};
use kmem::kmalloc::classes::{KMALLOC_CACHE_INDICES, KMALLOC_INFO, KMALLOC_MAX_SIZE, KmallocType};
use kmem::slab::flags::{__OBJECT_POISON, SLAB_NO_MERGE, SLAB_PANIC, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef, CreateError, ObjFn};
use kmem::{Machine, PAGE_SIZE};

use crate::slab::machine;
use crate::{SEQ, count_log, free_all, grab_all};

/// `<name>-<class>` for class index `index`: `msg-96`, `msg-1k`.
fn bucket_name(name: &str, index: usize) -> String {
    let full = KMALLOC_INFO[index].name(KmallocType::Normal);
    format!("{name}-{}", full.strip_prefix("kmalloc-").expect("kmalloc- prefix"))
}

fn create(m: &Machine, name: &str) -> KmemBuckets {
    m.kmem_buckets_create(name, SlabFlags::empty(), 0, 0, None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn destroy(m: &Machine, b: &KmemBuckets) {
    // SAFETY: Callers never use `b` or its objects afterwards.
    unsafe { m.kmem_buckets_destroy(b) }.expect("no object left");
}

/// Frees `p` to `cache`, and asserts it was an object of that cache (no new slab report).
fn free_to(m: &Machine, cache: CacheRef, p: NonNull<u8>) {
    let errors = m.slabs().errors();
    // SAFETY: The test's own object, unused afterwards.
    unsafe { m.kmem_cache_free(cache, p.as_ptr()) };
    assert_eq!(m.slabs().errors(), errors, "{p:p} is not an object of {:?}", m.cache_name(cache));
}

/// Free pages, and each `/proc/slabinfo` line's name and `<num_objs>` (not `<active_objs>`,
/// which counts the free objects a CPU's array holds, moved there by any kmalloc).
fn footprint(m: &Machine) -> (usize, Vec<(String, String)>) {
    let text = m.slabinfo();
    let lines = text.lines().skip(2).map(|l| {
        let mut cols = l.split_whitespace();
        let name = cols.next().expect("name").to_owned();
        (name, cols.nth(1).expect("num_objs").to_owned())
    });
    (m.total_free(), lines.collect())
}

/// A constructor that counts its calls.
fn counting() -> (ObjFn, &'static AtomicUsize) {
    unsafe fn bump(ctx: *const (), _obj: *mut u8) {
        // SAFETY: `ctx` is the leaked counter below, alive for the whole program.
        unsafe { &*ctx.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
    }
    let counter: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    // SAFETY: A leaked atomic counter, callable from any thread.
    (unsafe { ObjFn::new(bump, std::ptr::from_ref(counter).cast()) }, counter)
}

#[test]
fn create_makes_one_unmergeable_cache_per_kmalloc_class_named_after_it() {
    let m = machine();
    let b = create(&m, "bkt");
    assert_eq!(b.caches().count(), KMALLOC_CACHE_INDICES.len());
    assert_eq!(b.cache(0), None, "index 0 (kmalloc-0) has no cache");
    let slabinfo = m.slabinfo();
    for index in KMALLOC_CACHE_INDICES {
        let name = bucket_name("bkt", index);
        let c = b.cache(index).expect("every class");
        let s = m.cache(c).expect("live");
        assert_eq!(s.name(), name);
        assert_eq!(m.find_cache(&name), Some(c), "listed under its name");
        assert_eq!(s.object_size(), KMALLOC_INFO[index].size, "{name}");
        assert!(s.flags().contains(SLAB_NO_MERGE), "{name}: {}", s.flags());
        assert_eq!((s.refcount(), s.has_ctor(), s.usersize()), (1, false, 0), "{name}");
        // SL-17: a /proc/slabinfo line of its own.
        assert!(slabinfo.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} in\n{slabinfo}");
    }
    assert!(b.cache(NR_BUCKETS).is_none());
    // KM-1 through the set: every size 1..=8192 is served by the smallest class that fits.
    for n in 1..=8192 {
        let c = b.cache_for(n).expect("a class");
        assert_eq!(m.cache(c).unwrap().object_size(), kmem::kmalloc::classes::kmalloc_size_roundup(n), "{n}");
    }
    assert_eq!((b.cache_for(0), b.cache_for(8193)), (None, None));
    // SL-6: a compatible cache made afterwards is not merged into a bucket cache (SLAB_NO_MERGE).
    let other = m.kmem_cache_create("bkt-other", 64, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    assert_ne!(Some(other), b.cache(6));
    assert_eq!(m.cache(b.cache(6).unwrap()).unwrap().refcount(), 1);
    // SAFETY: Unused afterwards.
    unsafe { m.kmem_cache_destroy(other) }.expect("empty");
    // A second set of the same name is a second set of caches.
    let again = create(&m, "bkt");
    assert!(b.caches().zip(again.caches()).all(|(x, y)| x != y));
    destroy(&m, &again);
    destroy(&m, &b);
    assert!(!m.slabinfo().contains("bkt-"), "{}", m.slabinfo());
    assert_eq!(m.find_cache("bkt-64"), None);
}

#[test]
fn alloc_serves_each_size_from_the_sets_own_cache_and_large_sizes_from_pages() {
    let m = machine();
    let b = create(&m, "own");
    let kmalloc64 = m.kmalloc_cache(64, GFP_KERNEL).expect("kmalloc-64");
    for n in [1, 8, 9, 33, 64, 65, 96, 97, 129, 192, 193, 1000, 1025, 4097, 8192] {
        let p = m.kmem_buckets_alloc(Some(&b), n, GFP_KERNEL).expect("alloc");
        let c = b.cache_for(n).unwrap();
        assert_ne!(Some(c), m.kmalloc_cache(n, GFP_KERNEL), "{n}: not a kmalloc cache");
        // SAFETY: The object is the test's, used by nothing else.
        assert_eq!(unsafe { m.ksize(p.as_ptr()) }, m.cache(c).unwrap().object_size(), "{n}");
        free_to(&m, c, p);
    }
    // kfree frees them as any slab object.
    let p = m.kmem_buckets_alloc(Some(&b), 50, GFP_KERNEL).unwrap();
    let errors = m.slabs().errors();
    // SAFETY: The test's object, unused afterwards.
    unsafe { m.kfree(p.as_ptr()) };
    assert_eq!(m.slabs().errors(), errors);
    // The GFP type bits choose nothing with a set: no rcl/cg bucket caches.
    for gfp in [GFP_KERNEL | __GFP_RECLAIMABLE, GFP_KERNEL | __GFP_ACCOUNT] {
        let p = m.kmem_buckets_alloc(Some(&b), 64, gfp).expect("alloc");
        free_to(&m, b.cache_for(64).unwrap(), p);
    }
    // KM-2, KM-4, KM-5: 0 is ZERO_SIZE_PTR; above 8 KiB whole pages; above 4 MiB nothing.
    assert_eq!(m.kmem_buckets_alloc(Some(&b), 0, GFP_KERNEL).unwrap().as_ptr() as usize, 16);
    let big = m.kmem_buckets_alloc(Some(&b), 8193, GFP_KERNEL).expect("large");
    // SAFETY: The test's allocation.
    assert_eq!(unsafe { m.ksize(big.as_ptr()) }, 4 * PAGE_SIZE);
    // SAFETY: The test's allocation, unused afterwards.
    unsafe { m.kfree(big.as_ptr()) };
    assert!(m.kmem_buckets_alloc(Some(&b), KMALLOC_MAX_SIZE + 1, GFP_KERNEL | __GFP_NOWARN).is_err());
    // A NULL set is kmalloc.
    let p = m.kmem_buckets_alloc(None, 64, GFP_KERNEL).expect("kmalloc");
    free_to(&m, kmalloc64, p);
    let p = m.kmem_buckets_alloc_track_caller(Some(&b), 64, GFP_KERNEL).expect("alloc");
    free_to(&m, b.cache_for(64).unwrap(), p);
    destroy(&m, &b);
}

#[test]
fn usercopy_window_is_clamped_per_class_and_the_constructor_reaches_every_cache() {
    let m = machine();
    let (ctor, calls) = counting();
    let b = m.kmem_buckets_create("ucopy", SlabFlags::empty(), 16, 100, Some(ctor)).expect("create");
    assert_eq!(calls.load(SEQ), 0, "no slab yet");
    for index in KMALLOC_CACHE_INDICES {
        let size = KMALLOC_INFO[index].size;
        let s = m.cache(b.cache(index).unwrap()).unwrap();
        let want = match size {
            8 | 16 => (0, 0),
            32 => (16, 16),
            64 => (16, 48),
            96 => (16, 80),
            _ => (16, 100),
        };
        assert_eq!((s.useroffset(), s.usersize()), want, "{}", s.name());
        assert_eq!(bucket_usercopy(size, 16, 100), want);
        assert!(s.has_ctor(), "{}", s.name());
    }
    let p = m.kmem_buckets_alloc(Some(&b), 64, GFP_KERNEL).unwrap();
    let per_slab = m.cache(b.cache_for(64).unwrap()).unwrap().objects_per_slab();
    assert_eq!(calls.load(SEQ), per_slab, "the constructor ran on the new slab of ucopy-64 (SL-7)");
    free_to(&m, b.cache_for(64).unwrap(), p);
    destroy(&m, &b);
}

#[test]
fn bad_flags_fail_at_the_first_cache_and_leave_nothing_behind() {
    let m = machine();
    destroy(&m, &create(&m, "warm")); // kmalloc's caches for the names exist from here on.
    let before = footprint(&m);
    m.log().clear();
    let e = m.kmem_buckets_create("bad", __OBJECT_POISON, 0, 0, None).expect_err("SL-2");
    assert_eq!(e.size, 96, "the first class the kernel creates");
    assert!(matches!(e.error, CreateError::InvalidFlags(_)) && e.error.errno() == -22, "{e}");
    assert_eq!(count_log(&m, "__kmem_cache_create_args(bad-96) failed with error -22"), 1);
    assert_eq!(count_log(&m, "kmem_buckets_create: WARN_ON(!(*b)[aligned_idx]): bad-96 not created"), 1);
    assert_eq!(footprint(&m), before, "no cache, no page kept");
    // The unreported form logs nothing.
    m.log().clear();
    assert!(m.kmem_buckets_create_unreported("bad", __OBJECT_POISON, 0, 0, None).is_err());
    assert!(m.log().records().is_empty(), "{:?}", crate::log_lines(&m));
    // With SLAB_PANIC the failing cache panics, as kmem_cache_create does (the kernel's panic()).
    let r =
        catch_unwind(AssertUnwindSafe(|| m.kmem_buckets_create("bad", __OBJECT_POISON.union(SLAB_PANIC), 0, 0, None)));
    let msg = r.expect_err("SLAB_PANIC");
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("'bad-96'"), "{text}");
    assert_eq!(footprint(&m), before);
}

#[test]
fn creation_that_runs_out_of_memory_midway_destroys_what_it_made() {
    let m = machine();
    destroy(&m, &create(&m, "warm"));
    let before = footprint(&m);
    let fpa = m.fail_page_alloc();
    let (mut midway, mut succeeded) = (0, 0);
    // Fail the k-th page allocation: each cache's structure is one, so k walks the classes.
    for k in 1..=16 {
        fpa.parse_and_apply(&format!("{k},100,0,1,ignore-gfp-wait=0,min-order=0,verbose=0")).unwrap();
        let r = m.kmem_buckets_create("mid", SlabFlags::empty(), 0, 0, None);
        fpa.configure(1, 0, 0, 0).unwrap();
        match r {
            Ok(b) => {
                succeeded += 1;
                destroy(&m, &b);
            }
            Err(e) => {
                assert_eq!(e.error, CreateError::NoMemory, "{k}: {e}");
                midway += usize::from(e.size != 96);
            }
        }
        assert_eq!(footprint(&m), before, "k = {k}");
        assert!(m.find_cache("mid-96").is_none() && m.find_cache("mid-8").is_none(), "k = {k}");
    }
    assert!(midway >= 10, "failures after some caches were made: {midway}");
    assert!(succeeded >= 1, "the later k leave all 13 caches made");
    assert!(fpa.injected.load(SEQ) >= 13);
}

#[test]
fn exhausted_memory_fails_creation_and_allocation_cleanly() {
    let m = machine();
    let b = create(&m, "exh");
    destroy(&m, &create(&m, "warm"));
    let before = footprint(&m);
    let held = grab_all(&m, GFP_ATOMIC | __GFP_NOWARN);
    assert!(m.kmem_buckets_alloc(Some(&b), 128, GFP_NOWAIT | __GFP_NOWARN).is_err(), "no slab can be made");
    assert!(m.kmem_buckets_valloc(Some(&b), 128, GFP_NOWAIT | __GFP_NOWARN).is_err());
    let e = m.kmem_buckets_create_unreported("exh2", SlabFlags::empty(), 0, 0, None).expect_err("no memory");
    assert_eq!(e.error, CreateError::NoMemory);
    assert!(m.find_cache("exh2-96").is_none());
    free_all(&m, held);
    assert_eq!(footprint(&m), before, "nothing leaked while memory was out");
    let p = m.kmem_buckets_alloc(Some(&b), 128, GFP_KERNEL).expect("memory is back");
    free_to(&m, b.cache_for(128).unwrap(), p);
    destroy(&m, &b);
}

#[test]
fn valloc_goes_through_the_set_then_vmalloc() {
    let m = machine();
    let b = create(&m, "vbkt");
    let p = m.kmem_buckets_valloc(Some(&b), 100, GFP_KERNEL).expect("valloc");
    assert!(!m.is_vmalloc_addr(p.as_ptr()));
    free_to(&m, b.cache_for(100).unwrap(), p);
    // Above KMALLOC_MAX_SIZE kmalloc cannot serve it: vmalloc does (KM-12).
    let v = m.kmem_buckets_valloc(Some(&b), KMALLOC_MAX_SIZE + 1, GFP_KERNEL).expect("vmalloc");
    assert!(m.is_vmalloc_addr(v.as_ptr()));
    // Non-blocking flags never fall back (KM-12).
    assert!(m.kmem_buckets_valloc(Some(&b), KMALLOC_MAX_SIZE + 1, GFP_ATOMIC | __GFP_NOWARN).is_err());
    // SAFETY: The test's allocation, unused afterwards.
    unsafe { m.kvfree(v.as_ptr()) };
    let k = m.kmem_buckets_valloc(None, 100, GFP_KERNEL).expect("kvmalloc");
    free_to(&m, m.kmalloc_cache(100, GFP_KERNEL).unwrap(), k);
    destroy(&m, &b);
}

#[test]
fn destroy_reports_objects_left_and_a_stale_set_is_refused() {
    let m = machine();
    let b = create(&m, "gone");
    let kept = m.kmem_buckets_alloc(Some(&b), 200, GFP_KERNEL).unwrap();
    // SAFETY: `b` is not used for allocation afterwards except to check the refusal; `kept`
    // is never freed.
    let e = unsafe { m.kmem_buckets_destroy(&b) }.expect_err("one object left");
    assert_eq!(e.live_objects, 1);
    assert_eq!(count_log(&m, "Objects remaining on __kmem_cache_shutdown()"), 1);
    assert!(!m.slabinfo().contains("gone-"), "every cache unlinked:\n{}", m.slabinfo());
    let errors = m.slabs().errors();
    assert!(m.kmem_buckets_alloc(Some(&b), 64, GFP_KERNEL).is_err(), "a destroyed set");
    assert!(m.kmem_buckets_valloc(Some(&b), 2 * PAGE_SIZE, GFP_KERNEL).is_err(), "and no vmalloc for it");
    assert_eq!(m.slabs().errors(), errors + 2);
    assert_eq!(
        count_log(&m, "kmem_buckets_alloc() called with a struct kmem_cache pointer that is not a live cache"),
        2
    );
    let _ = kept;
}

/// A stale set whose cache's memory now holds another, smaller cache (the handle check alone
/// passes: it is a live cache of this machine) must not hand out that cache's objects for a
/// request larger than they are, nor fall back to vmalloc as if the set were fine.
#[test]
fn a_stale_set_whose_cache_address_was_reused_by_a_smaller_cache_is_refused() {
    let m = machine();
    let b = create(&m, "reuse");
    let old: Vec<(usize, CacheRef)> = KMALLOC_CACHE_INDICES.iter().map(|&i| (i, b.cache(i).unwrap())).collect();
    // SAFETY: `b` is used afterwards only to check the refusal; nothing was allocated from it.
    unsafe { m.kmem_buckets_destroy(&b) }.expect("empty");
    // Caches of 8-byte objects until one takes the memory of a bigger class's cache.
    let mut made = Vec::new();
    let hit = (0..64).find_map(|k| {
        let args = CacheArgs::default();
        let c = m.kmem_cache_create(&format!("tiny{k}"), 8, &args, SLAB_NO_MERGE).expect("cache");
        made.push(c);
        old.iter().find(|&&(i, o)| o == c && KMALLOC_INFO[i].size > 8).map(|&(i, _)| i)
    });
    let index = hit.expect("a freed cache's memory is reused by a new cache");
    let size = KMALLOC_INFO[index].size;
    let errors = m.slabs().errors();
    let got = m.kmem_buckets_alloc(Some(&b), size, GFP_KERNEL);
    if let Ok(p) = got {
        let c = *made.last().unwrap();
        // SAFETY: The object just allocated, never used.
        unsafe { m.kmem_cache_free(c, p.as_ptr()) };
    }
    assert!(got.is_err(), "{size} bytes asked of a stale set: an object of an 8-byte cache");
    assert!(m.kmem_buckets_valloc(Some(&b), size, GFP_KERNEL).is_err(), "and no vmalloc for it");
    assert_eq!(m.slabs().errors(), errors + 2, "both reported");
    for c in made {
        // SAFETY: Empty caches of this test, unused afterwards.
        unsafe { m.kmem_cache_destroy(c) }.expect("empty");
    }
}

#[test]
fn alloc_lru_is_kmem_cache_alloc_and_never_reads_the_lru() {
    let m = machine();
    let (ctor, calls) = counting();
    let c = m.kmem_cache_create("lru", 72, &CacheArgs { ctor: Some(ctor), ..CacheArgs::default() }, SlabFlags::empty());
    let c = c.expect("create");
    // An lru pointer that would fault if read.
    let lru = 0x10 as *const c_void;
    let p = m.kmem_cache_alloc_lru(c, lru, GFP_KERNEL).expect("alloc");
    assert_eq!(calls.load(SEQ), m.cache(c).unwrap().objects_per_slab());
    free_to(&m, c, p);
    let q = m.kmem_cache_alloc_lru(c, std::ptr::null(), GFP_KERNEL).expect("NULL lru");
    assert_eq!(q, p, "SL-8: LIFO reuse, as kmem_cache_alloc");
    free_to(&m, c, q);
    // SAFETY: Unused afterwards except for the refused allocation below.
    unsafe { m.kmem_cache_destroy(c) }.expect("empty");
    let errors = m.slabs().errors();
    assert!(m.kmem_cache_alloc_lru(c, lru, GFP_KERNEL).is_err(), "a destroyed cache");
    assert_eq!(m.slabs().errors(), errors + 1);
    assert_eq!(count_log(&m, "kmem_cache_alloc_lru() called with a struct kmem_cache pointer"), 1);
}

#[test]
fn charge_is_true_for_live_objects_and_reports_anything_else() {
    let m = machine();
    let b = create(&m, "chg");
    let c = m.kmem_cache_create("chg-cache", 100, &CacheArgs::default(), SlabFlags::empty()).unwrap();
    let obj = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let km = m.kmalloc(64, GFP_KERNEL).unwrap();
    let bk = m.kmem_buckets_alloc(Some(&b), 64, GFP_KERNEL).unwrap();
    let large = m.kmalloc(3 * PAGE_SIZE, GFP_KERNEL).unwrap();
    crate::write_obj(&m, km, &[0x5a; 64]);
    let errors = m.slabs().errors();
    for p in [obj, km, bk, large] {
        assert!(m.kmem_cache_charge(p.as_ptr(), GFP_KERNEL), "{p:p}");
    }
    assert_eq!(m.slabs().errors(), errors, "no report for live objects");
    assert_eq!(crate::read_obj(&m, km, 64), vec![0x5a; 64], "the object is not touched");
    // Not live objects: reported as krealloc reports them, and false.
    // SAFETY: Pointers inside the test's own objects; nothing is written through them.
    let inside = unsafe { km.as_ptr().add(8) };
    let large_inside = large.as_ptr().wrapping_add(PAGE_SIZE);
    let stack = 0u64;
    for (p, words) in [
        (std::ptr::null::<u8>(), "kmem_cache_charge: object pointer: 0x0"),
        (16 as *const u8, "kmem_cache_charge: object pointer: 0x10"),
        (inside.cast_const(), "Invalid object pointer"),
        (large_inside.cast_const(), "Not the start of a kmalloc allocation"),
        (std::ptr::from_ref(&stack).cast::<u8>(), "not a kmem address"),
    ] {
        m.log().clear();
        assert!(!m.kmem_cache_charge(p, GFP_KERNEL), "{p:p}");
        assert_eq!(count_log(&m, words), 1, "{p:p}: {:?}", crate::log_lines(&m));
    }
    // A just-freed object (the one kfree's double-free check knows).
    // SAFETY: The test's object, not used afterwards except by the charge below.
    unsafe { m.kfree(km.as_ptr()) };
    m.log().clear();
    assert!(!m.kmem_cache_charge(km.as_ptr(), GFP_KERNEL));
    assert_eq!(count_log(&m, "already free"), 1, "{:?}", crate::log_lines(&m));
    assert_eq!(m.slabs().errors(), errors + 6);
    // SAFETY: The test's objects and caches, unused afterwards.
    unsafe {
        m.kfree(large.as_ptr());
        m.kfree(bk.as_ptr());
        m.kmem_cache_free(c, obj.as_ptr());
        m.kmem_cache_destroy(c).expect("empty");
    }
    destroy(&m, &b);
}
