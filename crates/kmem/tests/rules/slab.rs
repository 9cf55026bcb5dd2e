//! Slab caches through a real machine, one or more tests per rule of SEMANTICS §3.12 (SL-1..18
//! except the debug formats of SL-15), plus the seeds' extras (destructor, `SLAB_NO_REAP`,
//! DMA caches, meminfo accounting, `failslab`) and misuse (`kfree` of foreign pointers).
//!
//! Machines are built without per-CPU page lists so page counts are exact. Objects are read
//! and written with `Machine::read_bytes`/`write_bytes`, which refuse pages that are not
//! allocated: a read that succeeds proves the slab page is still held.

use crate::meminfo_kb;
use crate::read_obj as read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use kmem::gfp::{GFP_ATOMIC, GFP_KERNEL};
use kmem::slab::flags::{
    __OBJECT_POISON, SLAB_CACHE_DMA, SLAB_HWCACHE_ALIGN, SLAB_NO_MERGE, SLAB_NO_REAP, SLAB_PANIC, SLAB_RECLAIM_ACCOUNT,
    SLAB_RED_ZONE, SLAB_TYPESAFE_BY_RCU, SlabFlags,
};
use kmem::slab::{CacheArgs, CacheRef, CreateError, DestroyError, ObjFn};
use kmem::{Machine, PAGE_SIZE, Profile};

use crate::{builder, count_log};

/// A 64 MiB x86_64 machine, two CPUs, no per-CPU page lists.
pub fn machine() -> Machine {
    builder(Profile::X86_64, 64).pcp(false).build().expect("build machine")
}

/// As [`machine`], with freelists in slot order (no `CONFIG_SLAB_FREELIST_RANDOM`).
pub fn ordered_machine() -> Machine {
    builder(Profile::X86_64, 64).pcp(false).random_freelist(false).build().expect("build machine")
}

fn create(m: &Machine, name: &str, size: usize, flags: SlabFlags) -> CacheRef {
    m.kmem_cache_create(name, size, &CacheArgs::default(), flags).unwrap_or_else(|e| panic!("create {name}: {e}"))
}

fn alloc(m: &Machine, c: CacheRef) -> NonNull<u8> {
    m.kmem_cache_alloc(c, GFP_KERNEL).expect("kmem_cache_alloc")
}

fn free(m: &Machine, c: CacheRef, p: NonNull<u8>) {
    // SAFETY: Every caller passes an object it allocated from `c` and no longer uses.
    unsafe { m.kmem_cache_free(c, p.as_ptr()) };
}

fn destroy(m: &Machine, c: CacheRef) -> Result<(), DestroyError> {
    // SAFETY: Callers never use `c` (or its objects) after destroying it.
    unsafe { m.kmem_cache_destroy(c) }
}

fn fill(m: &Machine, p: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(p, &vec![byte; len]) }.expect("object bytes are in allocated pages");
}

/// A constructor/destructor that counts its calls in a leaked counter.
fn counting() -> (ObjFn, &'static AtomicUsize) {
    unsafe fn bump(ctx: *const (), _obj: *mut u8) {
        // SAFETY: `ctx` is the leaked `AtomicUsize` below, alive for the whole program.
        unsafe { &*ctx.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
    }
    let counter: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    // SAFETY: A leaked atomic counter, callable from any thread.
    (unsafe { ObjFn::new(bump, std::ptr::from_ref(counter).cast()) }, counter)
}

#[test]
fn sl1_args_form_with_default_args_round_trips_and_gives_every_page_back() {
    let m = machine();
    let free0 = m.total_free();
    let c = create(&m, "sl1-args", 100, SlabFlags::empty());
    let s = m.cache(c).unwrap();
    assert_eq!((s.name(), s.object_size(), s.align(), s.size(), s.has_ctor()), ("sl1-args", 100, 8, 104, false));
    let objs: Vec<_> = (0..50).map(|_| alloc(&m, c)).collect();
    for &p in &objs {
        free(&m, c, p);
    }
    destroy(&m, c).expect("no object left");
    assert_eq!(m.total_free() + m.slab_pages().1, free0, "only the descriptor pool keeps pages");
}

#[test]
fn sl1_legacy_five_argument_form_sets_align_and_ctor() {
    let m = machine();
    let (ctor, calls) = counting();
    let c = m.kmem_cache_create_legacy("sl1-legacy", 100, 128, SlabFlags::empty(), Some(ctor)).expect("create");
    assert_eq!((m.cache(c).unwrap().align(), m.cache(c).unwrap().has_ctor()), (128, true));
    let p = alloc(&m, c);
    assert_eq!(p.as_ptr() as usize % 128, 0);
    assert_eq!(calls.load(Ordering::SeqCst), m.cache(c).unwrap().objects_per_slab(), "ctor ran on the new slab");
    free(&m, c, p);
    destroy(&m, c).expect("empty");
}

#[test]
fn sl2_invalid_flags_fail_with_einval_and_the_kernel_line() {
    let m = machine();
    for (name, flags) in [("sl2-internal", __OBJECT_POISON), ("sl2-undefined", SlabFlags::from_bits(1 << 27))] {
        let e = m.kmem_cache_create(name, 64, &CacheArgs::default(), flags).expect_err("invalid flags");
        assert!(matches!(e, CreateError::InvalidFlags(_)), "{e:?}");
        assert_eq!(e.errno(), -22);
        assert_eq!(count_log(&m, &format!("__kmem_cache_create_args({name}) failed with error -22")), 1);
        // The reason follows, without the errno a second time.
        let line = m.dmesg().lines().find(|l| l.contains(&format!("({name}) failed"))).unwrap().to_owned();
        assert_eq!(line.matches("-22").count(), 1, "{line}");
        assert!(line.contains(": invalid slab flags 0x"), "{line}");
        assert!(m.find_cache(name).is_none());
    }
}

#[test]
fn sl2_slab_panic_panics_instead_of_returning() {
    let m = machine();
    let bad = __OBJECT_POISON.union(SLAB_PANIC);
    let r = catch_unwind(AssertUnwindSafe(|| m.kmem_cache_create("sl2-panic", 64, &CacheArgs::default(), bad)));
    let msg = r.expect_err("SLAB_PANIC must panic");
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("sl2-panic"), "{text}");
    // A layout that cannot be made (size above what an order-10 slab holds) panics too.
    let r =
        catch_unwind(AssertUnwindSafe(|| m.kmem_cache_create("sl2-huge", 8 << 20, &CacheArgs::default(), SLAB_PANIC)));
    assert!(r.is_err(), "SLAB_PANIC with an impossible layout");
    // Without SLAB_PANIC the same layout fails quietly.
    assert!(m.kmem_cache_create("sl2-huge", 8 << 20, &CacheArgs::default(), SlabFlags::empty()).is_err());
}

#[test]
fn sl3_alignment_of_real_caches() {
    let m = machine();
    let cases = [
        (20, 0, SLAB_HWCACHE_ALIGN, 32),
        (100, 0, SLAB_HWCACHE_ALIGN, 64),
        (8, 0, SLAB_HWCACHE_ALIGN, 8),
        (20, 128, SLAB_HWCACHE_ALIGN, 128),
        (20, 0, SlabFlags::empty(), 8),
        (20, 4, SlabFlags::empty(), 8),
        (24, 16, SlabFlags::empty(), 16),
    ];
    for (i, (size, align, flags, want)) in cases.into_iter().enumerate() {
        let args = CacheArgs { align, ..CacheArgs::default() };
        let c = m.kmem_cache_create(&format!("sl3-{i}"), size, &args, flags.union(SLAB_NO_MERGE)).expect("create");
        assert_eq!(m.cache(c).unwrap().align(), want, "size {size} align {align} flags {flags}");
        let objs: Vec<_> = (0..20).map(|_| alloc(&m, c)).collect();
        assert!(objs.iter().all(|p| (p.as_ptr() as usize).is_multiple_of(want)), "objects aligned to {want}");
        for p in objs {
            free(&m, c, p);
        }
    }
}

#[test]
fn sl4_stride_and_free_pointer_placement() {
    let m = ordered_machine();
    let plain = create(&m, "sl4-plain", 64, SlabFlags::empty());
    assert_eq!((m.cache(plain).unwrap().size(), m.cache(plain).unwrap().layout().offset), (64, 32));
    let (ctor, _) = counting();
    let args = CacheArgs { ctor: Some(ctor), ..CacheArgs::default() };
    let with_ctor = m.kmem_cache_create("sl4-ctor", 64, &args, SlabFlags::empty()).expect("create");
    assert_eq!((m.cache(with_ctor).unwrap().size(), m.cache(with_ctor).unwrap().layout().offset), (72, 64));
    let rcu = create(&m, "sl4-rcu", 64, SLAB_TYPESAFE_BY_RCU);
    assert_eq!((m.cache(rcu).unwrap().size(), m.cache(rcu).unwrap().layout().offset), (72, 64));
    for c in [plain, with_ctor, rcu] {
        let stride = m.cache(c).unwrap().size();
        let slab_bytes = PAGE_SIZE << m.cache(c).unwrap().order();
        let mut objs: Vec<usize> =
            (0..m.cache(c).unwrap().objects_per_slab()).map(|_| alloc(&m, c).as_ptr() as usize).collect();
        objs.sort_unstable();
        let base = objs[0] & !(slab_bytes - 1);
        for (i, &p) in objs.iter().enumerate() {
            assert_eq!(p, base + i * stride, "{}: slot {i} at the stride", m.cache(c).unwrap().name());
        }
        for p in objs {
            free(&m, c, NonNull::new(p as *mut u8).unwrap());
        }
    }
}

#[test]
fn sl5_order_and_objects_per_slab_for_8_cpus() {
    let m = builder(Profile::X86_64, 64).cpus(8).pcp(false).build().expect("machine");
    for (size, order, objects) in [(64, 0, 64), (704, 2, 23), (1024, 3, 32), (8, 0, 512), (4096, 3, 8)] {
        let c = create(&m, &format!("sl5-{size}"), size, SLAB_NO_MERGE);
        assert_eq!(
            (m.cache(c).unwrap().order(), m.cache(c).unwrap().objects_per_slab()),
            (order, objects),
            "size {size}"
        );
        let p = alloc(&m, c);
        assert_eq!(m.cache_info(c).pages, 1 << order, "one slab of order {order}");
        free(&m, c, p);
    }
}

#[test]
fn sl6_merging_follows_find_mergeable() {
    let m = machine();
    let a = create(&m, "sl6-64", 64, SlabFlags::empty());
    let b = create(&m, "sl6-60", 60, SlabFlags::empty());
    assert_eq!(a, b, "60 merges into 64 (waste 4 < 8)");
    assert_eq!(m.cache(a).unwrap().refcount(), 2);
    let c56 = create(&m, "sl6-56", 56, SlabFlags::empty());
    assert_ne!(c56, a, "56 does not merge (waste 8 is not < 8)");
    let (ctor, _) = counting();
    let with_ctor = m.kmem_cache_create(
        "sl6-ctor",
        64,
        &CacheArgs { ctor: Some(ctor), ..CacheArgs::default() },
        SlabFlags::empty(),
    );
    for (name, other) in [
        ("ctor", with_ctor.expect("create")),
        ("no-merge", create(&m, "sl6-nomerge", 64, SLAB_NO_MERGE)),
        ("red-zone", create(&m, "sl6-redzone", 64, SLAB_RED_ZONE)),
        ("rcu", create(&m, "sl6-rcu", 64, SLAB_TYPESAFE_BY_RCU)),
        ("reclaim", create(&m, "sl6-reclaim", 64, SLAB_RECLAIM_ACCOUNT)),
    ] {
        assert_ne!(other, a, "{name} prevents merging");
    }
    // Same RECLAIM_ACCOUNT on both sides merges (the oldest candidate wins).
    let rec2 = create(&m, "sl6-reclaim2", 60, SLAB_RECLAIM_ACCOUNT);
    assert_eq!(m.cache(rec2).unwrap().name(), "sl6-reclaim");
    // Destroying one alias leaves the other usable.
    destroy(&m, a).expect("alias drop");
    assert_eq!(m.cache(b).unwrap().refcount(), 1);
    assert!(m.slabinfo().lines().any(|l| l.starts_with("sl6-64 ")));
    let p = alloc(&m, b);
    fill(&m, p, 60, 0x42);
    free(&m, b, p);
    destroy(&m, b).expect("last reference");
    assert!(m.find_cache("sl6-64").is_none());
}

#[test]
fn sl7_ctor_runs_once_per_slot_not_on_reuse() {
    let m = machine();
    let (ctor, calls) = counting();
    let args = CacheArgs { ctor: Some(ctor), ..CacheArgs::default() };
    let c = m.kmem_cache_create("sl7", 48, &args, SlabFlags::empty()).expect("create");
    let p = alloc(&m, c);
    let per_slab = m.cache(c).unwrap().objects_per_slab();
    assert_eq!(calls.load(Ordering::SeqCst), per_slab);
    fill(&m, p, 48, 0x77);
    free(&m, c, p);
    let q = alloc(&m, c);
    assert_eq!(q, p, "same object back");
    assert_eq!(calls.load(Ordering::SeqCst), per_slab, "no ctor call on reuse");
    assert_eq!(read(&m, q, 48), vec![0x77; 48], "state kept between free and alloc");
    free(&m, c, q);
}

#[test]
fn sl8_lifo_reuse() {
    let m = machine();
    let c = create(&m, "sl8", 32, SlabFlags::empty());
    let (a, b) = (alloc(&m, c), alloc(&m, c));
    free(&m, c, a);
    assert_eq!(alloc(&m, c), a);
    free(&m, c, b);
    free(&m, c, a);
    assert_eq!((alloc(&m, c), alloc(&m, c)), (a, b));
    free(&m, c, a);
    free(&m, c, b);
}

#[test]
fn sl9_bulk_alloc_and_free_of_mixed_slabs() {
    let m = machine();
    let c = create(&m, "sl9", 256, SlabFlags::empty());
    let mut objs = vec![std::ptr::null_mut(); 300];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut objs), 300);
    let mut sorted = objs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 300, "distinct objects");
    assert!(m.cache_info(c).slabs > 1);
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut []), 0, "n = 0 gives 0");
    // Interleave objects of different slabs.
    objs.sort_unstable_by_key(|&p| (p as usize).rotate_left(20));
    // SAFETY: All 300 are ours and unused from now on.
    unsafe { m.kmem_cache_free_bulk(Some(c), &objs) };
    assert_eq!(m.kmem_cache_shrink(c), 0, "every object came back");
}

#[test]
fn sl9_bulk_is_all_or_nothing_when_a_slab_cannot_be_made() {
    // 128-byte objects, 32 to a one-page slab: a bulk of 100 needs four new slabs. The page
    // allocator's fault injection lets the first three slab pages through (`space`) and fails
    // the fourth, and the retry at the minimum order (`times` 2): the bulk fails midway.
    // (failslab decides once per bulk call, before any object: `failslab_decides_once_per_bulk_call`.)
    let m = builder(Profile::X86_64, 64).pcp(false).build().expect("machine");
    let c = create(&m, "sl9-fail", 128, SlabFlags::empty());
    assert_eq!(m.cache(c).unwrap().objects_per_slab(), 32);
    let fpa = m.fail_page_alloc();
    // `space` counts pages (`mm/fail_page_alloc.c`): 4 lets three order-0 requests through.
    fpa.parse_and_apply("1,100,4,2,ignore-gfp-wait=0,min-order=0,verbose=0").unwrap();
    let mut objs = vec![std::ptr::null_mut(); 100];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC | kmem::gfp::__GFP_NOWARN, &mut objs), 0);
    fpa.configure(1, 0, 0, 0).unwrap();
    assert!(objs.iter().all(|p| p.is_null()), "nothing handed out");
    assert_eq!(fpa.injected.load(Ordering::SeqCst), 2, "the fourth slab and its retry");
    assert_eq!(m.kmem_cache_shrink(c), 0, "the objects it got came back");
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut objs), 100, "no more failures");
    // SAFETY: Ours, unused from now on.
    unsafe { m.kmem_cache_free_bulk(Some(c), &objs) };
}

#[test]
fn sl9_bulk_is_all_or_nothing_when_memory_runs_out() {
    let m = machine();
    let c = create(&m, "sl9-oom", 2048, SlabFlags::empty());
    let held = crate::exhaust(&m);
    let mut objs = vec![std::ptr::null_mut(); 64];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC | kmem::gfp::__GFP_NOWARN, &mut objs), 0);
    assert!(objs.iter().all(|p| p.is_null()));
    crate::free_all(&m, held);
    assert_eq!(m.kmem_cache_shrink(c), 0);
}

#[test]
fn failslab_cache_filter_fails_only_marked_caches() {
    let m = machine();
    let attr = m.slabs().failslab();
    let marked = create(&m, "fs-marked", 64, SLAB_NO_MERGE);
    let other = create(&m, "fs-other", 64, SLAB_NO_MERGE);
    m.cache(marked).unwrap().set_failslab(true);
    attr.cache_filter.store(true, Ordering::SeqCst);
    attr.configure(1, 100, 0, -1).expect("knobs");
    attr.set_verbose(0);
    assert!(m.kmem_cache_alloc(marked, GFP_ATOMIC).is_err(), "marked cache fails");
    let p = m.kmem_cache_alloc(other, GFP_ATOMIC).expect("unmarked cache is not filtered in");
    assert!(m.kmem_cache_alloc(marked, GFP_KERNEL).is_ok(), "ignore-gfp-wait: sleeping requests never fail");
    attr.ignore_gfp_reclaim.store(false, Ordering::SeqCst);
    assert!(m.kmem_cache_alloc(marked, GFP_KERNEL).is_err());
    attr.configure(1, 0, 0, -1).expect("off");
    free(&m, other, p);
}

#[test]
fn sl10_gfp_zero_clears_exactly_object_size() {
    let m = machine();
    let c = create(&m, "sl10", 60, SLAB_NO_MERGE);
    assert_eq!(m.cache(c).unwrap().size(), 64);
    let p = alloc(&m, c);
    fill(&m, p, 64, 0xff);
    free(&m, c, p);
    let q = m.kmem_cache_zalloc(c, GFP_KERNEL).expect("zalloc");
    assert_eq!(q, p);
    let bytes = read(&m, q, 64);
    assert_eq!(&bytes[..60], &[0; 60][..], "object zeroed");
    assert_eq!(&bytes[60..], &[0xff; 4][..], "nothing past object_size");
    free(&m, c, q);
}

#[test]
fn sl11_typesafe_by_rcu_keeps_contents_and_pages_until_a_grace_period() {
    let m = builder(Profile::X86_64, 64).pcp(false).init_on_free(true).build().expect("machine");
    let c = create(&m, "sl11", 128, SLAB_TYPESAFE_BY_RCU);
    assert!(m.cache(c).unwrap().layout().offset >= 128, "free pointer outside the object");
    let p = alloc(&m, c);
    fill(&m, p, 128, 0x5c);
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reader = thread::spawn({
        let m = m.clone();
        move || {
            let guard = m.rcu_read_lock();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            drop(guard);
        }
    });
    locked_rx.recv().unwrap();
    free(&m, c, p);
    let free_before = m.total_free();
    m.shrink_all(GFP_KERNEL);
    assert_eq!(m.cache_info(c).slabs, 0, "the empty slab left the cache");
    assert_eq!(m.total_free(), free_before, "but its pages wait for the reader");
    assert_eq!(read(&m, p, 128), vec![0x5c; 128], "contents survive free (no zeroing, no free pointer)");
    release_tx.send(()).unwrap();
    reader.join().unwrap();
    m.synchronize_rcu();
    assert_eq!(m.total_free(), free_before + (1 << m.cache(c).unwrap().order()), "freed after the grace period");
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    assert!(unsafe { m.read_bytes(p, &mut [0; 1]) }.is_err(), "the page went back");
    destroy(&m, c).expect("empty");
}

/// SL-11/SL-12: destroying an RCU cache whose objects all went through `kfree_rcu` frees it
/// whole: the barrier's frees leave slabs for a grace period, which the destroy waits for
/// (it used to report success and keep the cache and those slabs until two more grace
/// periods, run by somebody else).
#[test]
fn sl11_destroy_of_an_rcu_cache_after_kfree_rcu_gives_every_page_back() {
    let m = builder(Profile::X86_64, 64).cpus(2).build().expect("machine");
    let pages = |m: &Machine| m.total_free() + m.slab_pages().0 + m.slab_pages().1;
    let before = pages(&m);
    let c = create(&m, "sl11-kfree-rcu", 100, SLAB_TYPESAFE_BY_RCU);
    let objs: Vec<_> = (0..2000).map(|_| alloc(&m, c)).collect();
    for o in objs {
        // SAFETY: Ours, freed once, unused afterwards.
        unsafe { m.kfree_rcu(o.as_ptr()) };
    }
    destroy(&m, c).expect("every object was freed");
    assert!(!m.cache_listed("sl11-kfree-rcu"));
    m.drain_all_pages();
    assert_eq!(pages(&m), before, "MemFree + Slab back where they were, with no grace period run since");
}

#[test]
fn sl12_destroy_with_live_objects_reports_and_keeps_memory() {
    let m = machine();
    let c = create(&m, "sl12", 200, SlabFlags::empty());
    let objs: Vec<_> = (0..5).map(|_| alloc(&m, c)).collect();
    for &p in &objs[2..] {
        free(&m, c, p);
    }
    fill(&m, objs[0], 200, 0x12);
    let free_before = m.total_free();
    assert_eq!(destroy(&m, c), Err(DestroyError { live_objects: 2 }));
    assert_eq!(count_log(&m, "BUG sl12 (Not tainted): Objects remaining on __kmem_cache_shutdown()"), 1);
    for &p in &objs[..2] {
        assert_eq!(count_log(&m, &format!("Object 0x{:x} @offset=", p.as_ptr() as usize)), 1, "live object listed");
    }
    assert_eq!(count_log(&m, "kmem_cache_destroy sl12: Slab cache still has objects when called from"), 1);
    assert_eq!(read(&m, objs[0], 200), vec![0x12; 200], "the cache's memory is kept");
    assert!(m.total_free() <= free_before, "nothing of the cache was freed");
    assert!(m.find_cache("sl12").is_none() && !m.slabinfo().contains("sl12 "), "unlinked");
}

#[test]
fn sl13_shrink_returns_zero_iff_no_slabs() {
    let m = machine();
    let free0 = m.total_free();
    let c = create(&m, "sl13", 512, SlabFlags::empty());
    let cache_pages = free0 - m.total_free();
    assert_eq!(m.kmem_cache_shrink(c), 0, "a new cache has no slab");
    let objs: Vec<_> = (0..40).map(|_| alloc(&m, c)).collect();
    assert_eq!(m.kmem_cache_shrink(c), 1);
    for &p in &objs[1..] {
        free(&m, c, p);
    }
    assert_eq!(m.kmem_cache_shrink(c), 1, "one object keeps a slab");
    assert_eq!(m.cache_info(c).slabs, 1, "every empty slab was freed");
    free(&m, c, objs[0]);
    assert_eq!(m.kmem_cache_shrink(c), 0);
    assert_eq!(m.total_free() + m.slab_pages().1, free0, "all slab pages back");
    let _ = cache_pages;
}

#[test]
fn sl14_empty_slabs_beyond_min_partial_go_back_on_free() {
    let m = machine();
    let c = create(&m, "sl14", 1024, SlabFlags::empty());
    let min_partial = m.cache(c).unwrap().min_partial();
    assert_eq!(min_partial, 5, "clamp(ilog2(1024) / 2, 5, 10)");
    let per_slab = m.cache(c).unwrap().objects_per_slab();
    let objs: Vec<_> = (0..per_slab * 12).map(|_| alloc(&m, c)).collect();
    assert_eq!(m.cache_info(c).slabs, 12);
    for p in objs {
        free(&m, c, p);
    }
    // Thread exit runs the per-CPU array back to the slabs (plain frees, not a shrink).
    m.release_cpu();
    let info = m.cache_info(c);
    assert!((1..=min_partial).contains(&info.slabs), "kept {} empty slabs, min_partial {min_partial}", info.slabs);
    assert_eq!(info.freed_slabs as usize, 12 - info.slabs);
    assert_eq!(info.active_objs, 0);
}

/// The words stored at the free-pointer offset of `objs` (free objects on a slab freelist).
fn stored_free_pointers(m: &Machine, c: CacheRef, objs: &[usize]) -> Vec<usize> {
    let off = m.cache(c).unwrap().layout().offset;
    objs.iter()
        .map(|&o| {
            let mut w = [0u8; 8];
            // SAFETY: The test's own allocation, used by nothing else meanwhile.
            unsafe { m.read_bytes(NonNull::new((o + off) as *mut u8).unwrap(), &mut w) }.expect("slab page");
            usize::from_le_bytes(w)
        })
        .collect()
}

#[test]
fn sl16_stored_free_pointer_is_ptr_xor_random_xor_swab_slot() {
    let m = ordered_machine();
    let mut randoms = Vec::new();
    for name in ["sl16-a", "sl16-b"] {
        let c = create(&m, name, 16, SLAB_NO_MERGE);
        let (size, off, n) =
            (m.cache(c).unwrap().size(), m.cache(c).unwrap().layout().offset, m.cache(c).unwrap().objects_per_slab());
        assert_eq!((size, off, n), (16, 8, 256));
        // The first allocation moves half a CPU array (64 objects) out of the new slab; the
        // rest stays chained in slot order.
        let first = alloc(&m, c).as_ptr() as usize;
        let base = first & !(PAGE_SIZE - 1);
        let chained: Vec<usize> = (64..n).map(|i| base + i * size).collect();
        let stored = stored_free_pointers(&m, c, &chained);
        let random = stored[0] ^ chained[1] ^ (chained[0] + off).swap_bytes();
        for (k, (&obj, &word)) in chained.iter().zip(&stored).enumerate() {
            let next = chained.get(k + 1).copied().unwrap_or(0);
            assert_eq!(word, next ^ random ^ (obj + off).swap_bytes(), "{name}: object {obj:#x}");
        }
        assert_ne!(random, 0);
        randoms.push(random);
        free(&m, c, NonNull::new(first as *mut u8).unwrap());
    }
    assert_ne!(randoms[0], randoms[1], "s->random is per cache");
}

#[test]
fn sl16_immediate_double_free_is_reported_and_ignored() {
    let m = machine();
    let c = create(&m, "sl16-df", 64, SlabFlags::empty());
    let (a, b) = (alloc(&m, c), alloc(&m, c));
    free(&m, c, a);
    let errors = m.slabs().errors();
    free(&m, c, a);
    assert_eq!(m.slabs().errors(), errors + 1);
    assert_eq!(count_log(&m, "double free of object"), 1);
    let (x, y) = (alloc(&m, c), alloc(&m, c));
    assert_eq!(x, a);
    assert_ne!(y, a, "not handed out twice");
    for p in [x, y, b] {
        free(&m, c, p);
    }
    assert_eq!(m.kmem_cache_shrink(c), 0);
    assert_eq!(m.validate_slab_cache(c), Ok(0));
}

#[test]
fn sl16_double_free_of_the_slab_freelist_head_is_reported_and_ignored() {
    let m = machine();
    let c = create(&m, "sl16-head", 64, SlabFlags::empty());
    let (a, b) = (alloc(&m, c), alloc(&m, c));
    free(&m, c, a);
    // Thread exit flushes the array: `a` goes back last and heads its slab's freelist.
    m.release_cpu();
    let errors = m.slabs().errors();
    free(&m, c, a);
    m.release_cpu();
    assert_eq!(m.slabs().errors(), errors + 1, "the second free of the freelist head is caught");
    assert_eq!(m.validate_slab_cache(c), Ok(1));
    let objs: Vec<_> = (0..m.cache(c).unwrap().objects_per_slab() - 1).map(|_| alloc(&m, c)).collect();
    let mut sorted: Vec<_> = objs.iter().chain([&b]).copied().collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), objs.len() + 1, "no object handed out twice");
    for p in objs.into_iter().chain([b]) {
        free(&m, c, p);
    }
    assert_eq!(m.kmem_cache_shrink(c), 0);
}

/// A double free that neither the CPU array (a repeat of its last free) nor the freelist head
/// catches on the way in is caught when the objects go back to their slab: a slab with no
/// object out cannot take one more (its count would wrap, the slab would never be freed and the
/// thread's exit flush would trip an overflow). Reported, skipped, the cache stays consistent.
#[test]
fn sl16_double_free_found_when_the_objects_go_back_to_an_empty_slab() {
    let m = machine();
    let c = create(&m, "sl16-late", 64, SLAB_NO_MERGE);
    let (a, b) = (alloc(&m, c), alloc(&m, c));
    let errors = m.slabs().errors();
    free(&m, c, a);
    free(&m, c, b);
    free(&m, c, a); // Not the array's last free: accepted into the array.
    // Every object of the slab comes back, `a` twice: the second find an empty slab (or one
    // already freed) and is reported.
    m.release_cpu();
    assert_eq!(m.slabs().errors(), errors + 1, "the extra free is reported once");
    assert_eq!(count_log(&m, "double free of object"), 1);
    assert_eq!(m.kmem_cache_shrink(c), 0);
    assert_eq!(m.validate_slab_cache(c), Ok(0));
    // The cache works on, and a full slab's worth of objects are all distinct.
    let objs: Vec<_> = (0..m.cache(c).unwrap().objects_per_slab()).map(|_| alloc(&m, c)).collect();
    let mut sorted = objs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), objs.len());
    for p in objs {
        free(&m, c, p);
    }
    m.release_cpu();
    assert_eq!(m.kmem_cache_shrink(c), 0);
    assert_eq!(destroy(&m, c), Ok(()));
}

/// SL-17 and PROC-5: `/proc/slabinfo` as §3.10 prints it.
#[test]
fn sl17_slabinfo_is_byte_exact_and_newest_first() {
    let m = machine();
    let old = create(&m, "sl17-old", 64, SLAB_NO_MERGE);
    let new = create(&m, "sl17-a-much-longer-name", 64, SLAB_NO_MERGE);
    let text = m.slabinfo();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "slabinfo - version: 2.1");
    assert_eq!(
        lines[1],
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[2],
        "sl17-a-much-longer-name      0      0     64   64    1 : tunables    0    0    0 : slabdata      0      0      0"
    );
    assert_eq!(
        lines[3],
        "sl17-old               0      0     64   64    1 : tunables    0    0    0 : slabdata      0      0      0"
    );
    // One object out: the rest of the slab sits in this CPU's array and counts as active.
    let p = alloc(&m, new);
    assert_eq!(
        m.slabinfo().lines().nth(2).unwrap(),
        "sl17-a-much-longer-name     64     64     64   64    1 : tunables    0    0    0 : slabdata      1      1      0"
    );
    // After a shrink the free objects are on the node's partial list: not active.
    assert_eq!(m.kmem_cache_shrink(new), 1);
    assert_eq!(
        m.slabinfo().lines().nth(2).unwrap(),
        "sl17-a-much-longer-name      1     64     64   64    1 : tunables    0    0    0 : slabdata      1      1      0"
    );
    free(&m, new, p);
    let _ = old;
}

#[test]
fn sl18_free_to_the_wrong_cache_warns_and_frees_to_the_real_one() {
    let m = machine();
    let a = create(&m, "sl18-a", 100, SlabFlags::empty());
    let b = create(&m, "sl18-b", 300, SlabFlags::empty());
    let p = alloc(&m, a);
    let q = alloc(&m, b);
    let b_before = m.cache_info(b);
    free(&m, b, p);
    assert_eq!(count_log(&m, "cache_from_obj: Wrong slab cache. sl18-b but object is from sl18-a"), 1);
    assert_eq!(m.cache_info(b).free_fast, b_before.free_fast, "not freed into sl18-b");
    assert_eq!(alloc(&m, a), p, "it went back to sl18-a (LIFO)");
    free(&m, a, p);
    free(&m, b, q);
    assert_eq!((m.kmem_cache_shrink(a), m.kmem_cache_shrink(b)), (0, 0));
}

#[test]
fn kfree_of_pointers_kmem_did_not_hand_out_is_reported_and_ignored() {
    let m = crate::i386(1024);
    let c = create(&m, "foreign", 64, SlabFlags::empty());
    let obj = alloc(&m, c);
    let local = 0u64;
    let page = m.alloc_pages(GFP_KERNEL, 0).expect("page");
    let page_addr = m.page_address(page).expect("lowmem");
    let highmem = m.phys().base().as_ptr().wrapping_add(crate::HIGHMEM_START_PFN * PAGE_SIZE + 64);
    let inside = obj.as_ptr().wrapping_add(8);
    let free0 = m.total_free();
    for (what, ptr) in [
        ("stack", std::ptr::from_ref(&local).cast::<u8>()),
        ("page", page_addr.as_ptr().cast_const()),
        ("highmem", highmem.cast_const()),
        ("inside an object", inside.cast_const()),
    ] {
        let errors = m.slabs().errors();
        // SAFETY: kfree must recognise these are not objects and touch nothing.
        unsafe { m.kfree(ptr) };
        assert_eq!(m.slabs().errors(), errors + 1, "{what} reported");
    }
    assert_eq!(m.total_free(), free0, "nothing was freed");
    assert!(page.is_allocated());
    let next = alloc(&m, c);
    assert_ne!(next, obj, "the object an interior pointer points into stays allocated");
    free(&m, c, next);
    free(&m, c, obj);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
}

/// A vmalloc address is kmem's, not a kmalloc object: `kfree` says so and names the functions
/// that free it, and leaves the area mapped.
#[test]
fn kfree_of_a_vmalloc_address_points_to_vfree() {
    let m = crate::i386(64);
    let v = m.vmalloc(2 * PAGE_SIZE).expect("vmalloc");
    m.log().clear();
    let errors = m.slabs().errors();
    // SAFETY: kfree must recognise a vmalloc address and touch nothing.
    unsafe { m.kfree(v.as_ptr()) };
    assert_eq!(m.slabs().errors(), errors + 1);
    let want = format!(
        "kfree: object pointer: {:#x}: Not a kmalloc allocation (a vmalloc address: free it with vfree() or kvfree()); ignored",
        v.as_ptr() as usize
    );
    assert_eq!(count_log(&m, &want), 1, "{:#?}", crate::log_lines(&m));
    assert_eq!(count_log(&m, "outside the direct map"), 0);
    assert!(m.vmalloc_to_page(v.as_ptr()).is_some(), "still mapped");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(v.as_ptr()) };
}

#[test]
fn destructor_runs_when_slab_pages_go_back_never_on_free() {
    let m = machine();
    let (ctor, ctors) = counting();
    let (dtor, dtors) = counting();
    let args = CacheArgs { ctor: Some(ctor), dtor: Some(dtor), ..CacheArgs::default() };
    let c = m.kmem_cache_create("dtor", 200, &args, SlabFlags::empty()).expect("create");
    let objs: Vec<_> = (0..m.cache(c).unwrap().objects_per_slab() * 3).map(|_| alloc(&m, c)).collect();
    for p in objs {
        free(&m, c, p);
    }
    assert_eq!(dtors.load(Ordering::SeqCst), 0, "never on free");
    assert_eq!(m.kmem_cache_shrink(c), 0);
    assert_eq!(dtors.load(Ordering::SeqCst), ctors.load(Ordering::SeqCst), "once per constructed slot");
    assert_eq!(dtors.load(Ordering::SeqCst), m.cache(c).unwrap().objects_per_slab() * 3);
    destroy(&m, c).expect("empty");
}

#[test]
fn reclaim_shrinks_every_cache_except_no_reap_ones() {
    let m = machine();
    let reap = create(&m, "reapable", 256, SLAB_NO_MERGE);
    let keep = create(&m, "no-reap", 256, SLAB_NO_REAP.union(SLAB_NO_MERGE));
    for c in [reap, keep] {
        // Few objects: they all wait in this CPU's array, so their slab only looks in use.
        let objs: Vec<_> = (0..10).map(|_| alloc(&m, c)).collect();
        for p in objs {
            free(&m, c, p);
        }
    }
    let free0 = m.total_free();
    assert!(m.shrink_all(GFP_KERNEL) > 0, "reclaim found the parked objects");
    assert_eq!(m.cache_info(reap).slabs, 0, "reapable cache shrunk");
    assert_eq!(m.cache_info(keep).slabs, 1, "SLAB_NO_REAP untouched");
    assert_eq!(m.total_free(), free0 + (1 << m.cache(reap).unwrap().order()));
    assert_eq!(m.kmem_cache_shrink(keep), 0, "an explicit shrink still works");
}

#[test]
fn slab_cache_dma_objects_live_below_16_mib() {
    let m = machine();
    let c = create(&m, "dma-objs", 512, SLAB_CACHE_DMA);
    let objs: Vec<_> = (0..100).map(|_| alloc(&m, c)).collect();
    for &p in &objs {
        let phys = m.virt_to_phys(p.as_ptr()).expect("direct map");
        assert!(phys + 512 <= 16 << 20, "object at {phys:#x}");
    }
    for p in objs {
        free(&m, c, p);
    }
}

#[test]
fn meminfo_counts_reclaim_account_slabs_as_sreclaimable() {
    let m = machine();
    let rec = create(&m, "rec", 512, SLAB_RECLAIM_ACCOUNT);
    let unrec = create(&m, "unrec", 512, SlabFlags::empty());
    let (r0, u0) = (meminfo_kb(&m, "SReclaimable"), meminfo_kb(&m, "SUnreclaim"));
    let a: Vec<_> = (0..100).map(|_| alloc(&m, rec)).collect();
    let b: Vec<_> = (0..30).map(|_| alloc(&m, unrec)).collect();
    let (r1, u1) = (meminfo_kb(&m, "SReclaimable"), meminfo_kb(&m, "SUnreclaim"));
    assert_eq!(r1 - r0, m.cache_info(rec).pages * 4);
    assert!(u1 - u0 >= m.cache_info(unrec).pages * 4);
    assert_eq!(meminfo_kb(&m, "Slab"), r1 + u1, "Slab = SReclaimable + SUnreclaim");
    for p in a {
        free(&m, rec, p);
    }
    for p in b {
        free(&m, unrec, p);
    }
    m.kmem_cache_shrink(rec);
    assert_eq!(meminfo_kb(&m, "SReclaimable"), r0);
}
