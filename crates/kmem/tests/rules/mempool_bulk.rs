//! The newest kernel's mempool calls (SEMANTICS.md §6.1, §6.2): `mempool_alloc_bulk` (NULL
//! slots only, `alloc_fn` first, the whole remainder from the reserve or nothing,
//! `VM_WARN_ON_ONCE(count > pool->min_nr)`), `mempool_free_bulk` (the count of leading elements
//! taken, LIFO refill, MP-3/MP-4), and the fault injection that skips `alloc_fn`
//! (`fail_mempool_alloc`, `fail_mempool_alloc_bulk`). Sleeping and waking between threads is in
//! the concurrency suite.

use std::ffi::c_void;
use std::ptr::{NonNull, null_mut};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use kmem::gfp::*;
use kmem::mempool::{MemPool, PoolBox, RawMempool};
use kmem::{Machine, Profile};

use crate::mempool::{Call, Recorder, first_pass, free, full_pass, number};
use crate::*;

/// The element numbers of filled slots.
fn numbers(slots: &[Option<NonNull<c_void>>]) -> Vec<usize> {
    slots.iter().map(|s| number(s.expect("a filled slot"))).collect()
}

/// Frees every filled slot to `pool`.
fn free_slots(pool: &RawMempool, slots: &[Option<NonNull<c_void>>]) {
    for e in slots.iter().flatten() {
        free(pool, *e);
    }
}

/// §6.2 `mempool_alloc_bulk`: only NULL slots are filled, each by one `alloc_fn` call with
/// `mempool_alloc`'s first-pass mask for `GFP_KERNEL`; filled slots and the reserve are left
/// alone while `alloc_fn` succeeds.
#[test]
fn bulk_alloc_fills_only_the_null_slots_alloc_fn_first() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(6).unwrap(); // Elements 0..=5.
    let x = pool.alloc(GFP_KERNEL).unwrap(); // 6
    let y = pool.alloc(GFP_KERNEL).unwrap(); // 7
    rec.take();
    let mut slots = [None, Some(x), None, Some(y), None];
    pool.alloc_bulk(&mut slots).unwrap();
    assert_eq!(rec.take(), vec![Call::Alloc(first_pass(GFP_KERNEL), true); 3], "one call per NULL slot");
    assert_eq!(numbers(&slots), [8, 6, 9, 7, 10], "filled slots kept, NULL slots filled in order");
    assert_eq!(pool.curr_nr(), 6, "the reserve is not touched while alloc_fn succeeds");
    pool.alloc_bulk(&mut slots).unwrap();
    assert!(rec.take().is_empty(), "nothing to fill: no call");
    // The kernel-named form: `allocated` given by the caller, 0 returned.
    let mut raw = [slots[0].unwrap().as_ptr(), null_mut()];
    assert_eq!(kmem_core::mempool::mempool_alloc_bulk(&pool, &mut raw, 1), 0);
    assert_eq!(raw[0], slots[0].unwrap().as_ptr());
    assert_eq!(number(NonNull::new(raw[1]).unwrap()), 11);
    free_slots(&pool, &slots[1..]);
    free(&pool, NonNull::new(raw[1]).unwrap());
    free(&pool, NonNull::new(raw[0]).unwrap());
    assert_eq!(pool.stats().reserve_allocs.load(SEQ), 0);
}

/// §6.2: at the first `alloc_fn` failure the bulk takes the whole remainder from the reserve
/// (top of the stack into the first NULL slot, MP-4) if `curr_nr >= count - allocated`, and
/// nothing otherwise. Where it may not sleep (kmem in atomic context) it then fails with the
/// reserve untouched; the all-or-nothing wait itself is in the concurrency suite.
#[test]
fn bulk_alloc_takes_the_whole_remainder_from_the_reserve_or_nothing() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(4).unwrap(); // Elements 0..=3, 3 on top.
    rec.take();
    rec.fail_from.store(6, SEQ); // One more success (element 4), then failures.
    let mut slots = [None; 4];
    pool.alloc_bulk(&mut slots).unwrap();
    assert_eq!(
        rec.take(),
        vec![Call::Alloc(first_pass(GFP_KERNEL), true), Call::Alloc(first_pass(GFP_KERNEL), false)],
        "alloc_fn until the first failure, then the reserve"
    );
    assert_eq!(numbers(&slots), [4, 3, 2, 1], "the remainder from the reserve, top first");
    assert_eq!((pool.curr_nr(), pool.stats().reserve_allocs.load(SEQ)), (1, 3));

    // One element reserved, three missing: nothing is taken.
    m.log().clear();
    let mut short = [None; 3];
    let section = kmem::context::atomic_section();
    let result = pool.alloc_bulk(&mut short);
    drop(section);
    assert!(result.is_err(), "may not sleep, cannot fill");
    assert_eq!(short, [None; 3]);
    assert_eq!(pool.curr_nr(), 1, "all or nothing: the one element stays in the reserve");
    assert_eq!(
        rec.take(),
        vec![
            Call::Alloc(first_pass(GFP_KERNEL), false),
            Call::Alloc(full_pass(GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM)), false)
        ],
        "the first pass, the reserve, the full mask, the reserve: then no sleep in atomic context"
    );
    assert_eq!(pool.stats().sleeps.load(SEQ), 0);
    assert_eq!(count_log(&m, "BUG: sleeping function called from invalid context"), 1);

    // One missing, one reserved: taken.
    let mut one = [None];
    pool.alloc_bulk(&mut one).unwrap();
    assert_eq!(numbers(&one), [0]);
    assert_eq!(pool.curr_nr(), 0);
    free_slots(&pool, &slots);
    free_slots(&pool, &one);
    assert_eq!((pool.curr_nr(), pool.outstanding()), (4, 0));
}

/// §6.2 `mempool_free_bulk` with MP-3/MP-4: the leading elements go into the reserve while it is
/// short, the count of them is returned and the pool frees nothing itself; the last pushed is
/// the first taken; a saturated pool takes none; an empty zero-minimum pool takes one.
#[test]
fn bulk_free_returns_the_leading_count_and_refills_lifo() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(3).unwrap(); // 0, 1, 2
    rec.fail.store(true, SEQ);
    let reserved: Vec<_> = (0..3).map(|_| pool.alloc(GFP_KERNEL).unwrap()).collect(); // 2, 1, 0
    rec.fail.store(false, SEQ);
    let extra: Vec<_> = (0..2).map(|_| pool.alloc(GFP_KERNEL).unwrap()).collect(); // 3, 4
    rec.take();
    let elems = [extra[0], reserved[2], extra[1], reserved[0], reserved[1]];
    assert_eq!(elems.iter().map(|&e| number(e)).collect::<Vec<_>>(), [3, 0, 4, 2, 1]);
    // SAFETY: Elements of this pool, each once; the first `taken` are the pool's afterwards.
    let taken = unsafe { pool.free_bulk(&elems) };
    assert_eq!(taken, 3, "min_nr - curr_nr leading elements");
    assert_eq!(pool.curr_nr(), 3);
    assert!(rec.take().is_empty(), "the pool frees none itself");
    for &e in &elems[taken..] {
        // SAFETY: The rest is still the caller's, freed once with the backing allocator.
        unsafe { pool.free_backing(e.as_ptr()) };
    }
    assert_eq!(Recorder::frees(&rec.take()), 2);
    rec.fail.store(true, SEQ);
    let back: Vec<_> = (0..3).map(|_| pool.alloc(GFP_ATOMIC).unwrap()).collect();
    assert_eq!(back.iter().map(|&e| number(e)).collect::<Vec<_>>(), [4, 0, 3], "LIFO: the last pushed first");
    // SAFETY: As above.
    assert_eq!(unsafe { pool.free_bulk(&back) }, 3);
    rec.fail.store(false, SEQ);
    let e = pool.alloc(GFP_KERNEL).unwrap();
    rec.take();
    // SAFETY: As above.
    assert_eq!(unsafe { pool.free_bulk(&[e]) }, 0, "a saturated pool takes nothing");
    assert!(rec.take().is_empty());
    free(&pool, e);
    assert_eq!((pool.curr_nr(), pool.outstanding()), (3, 0));

    let zero = rec.pool(0).unwrap(); // One element reserved.
    rec.fail.store(true, SEQ);
    let a = zero.alloc(GFP_ATOMIC).unwrap();
    rec.fail.store(false, SEQ);
    let b = zero.alloc(GFP_KERNEL).unwrap();
    // SAFETY: As above.
    assert_eq!(unsafe { zero.free_bulk(&[a, b]) }, 1, "an empty zero-minimum pool takes one");
    assert_eq!(zero.curr_nr(), 1);
    free(&zero, b);
}

/// The bulk calls under mempool debugging: every element counted out and back (the rest of a
/// bulk free included, which the caller gives to the backing allocator), and an element freed
/// twice within one bulk free reported and left alone (TST-16's double free).
#[test]
fn bulk_calls_keep_the_mempool_debug_count_and_checks() {
    let m = builder(Profile::I386, 32).pcp(false).mempool_debug(true).build().unwrap();
    let pool = RawMempool::kmalloc_pool(&m, 2, 64).unwrap();
    let a = NonNull::new(pool.alloc_preallocated()).unwrap();
    let b = NonNull::new(pool.alloc_preallocated()).unwrap();
    m.log().clear();
    // SAFETY: `a` twice on purpose: the check catches it before the element is touched again.
    assert_eq!(unsafe { pool.free_bulk(&[a, a]) }, 2, "the rejected one counts as taken");
    assert_eq!(count_log(&m, "BUG: mempool_free_bulk: double free: the element is already in the reserve"), 1);
    assert_eq!((pool.curr_nr(), pool.outstanding()), (1, 1), "b is still out");
    free(&pool, b);
    let mut slots = [None; 2];
    pool.alloc_bulk(&mut slots).unwrap();
    assert_eq!((pool.curr_nr(), pool.outstanding()), (2, 2), "both from kmalloc, counted");
    let elems = slots.map(Option::unwrap);
    // SAFETY: Elements of this pool, each once.
    let taken = unsafe { pool.free_bulk(&elems) };
    assert_eq!(taken, 0, "saturated");
    for e in elems {
        // SAFETY: Not taken: the caller's, freed once with the backing allocator.
        unsafe { pool.free_backing(e.as_ptr()) };
    }
    assert_eq!(pool.outstanding(), 0, "the bulk free counted them back");
    m.log().clear();
    drop(pool);
    assert_eq!(count_log(&m, "mempool_exit"), 0, "nothing reported at destroy");
}

/// §6.2: `VM_WARN_ON_ONCE(count > pool->min_nr)` in `mempool_alloc_bulk`, once per pool (as
/// `__GFP_ZERO`'s, MP-14), naming the caller.
#[test]
fn bulk_alloc_above_min_nr_warns_once_per_pool() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap();
    m.log().clear();
    let mut a = [None; 2];
    pool.alloc_bulk(&mut a).unwrap();
    assert_eq!(count_log(&m, "WARNING"), 0, "count == min_nr is fine");
    let mut b = [None; 3];
    let (result, line) = (pool.alloc_bulk(&mut b), line!());
    result.unwrap();
    let mut c = [None; 3];
    pool.alloc_bulk(&mut c).unwrap();
    let needle = "mempool_alloc_bulk: count > pool->min_nr (3 > 2)";
    assert_eq!(count_log(&m, needle), 1, "once");
    let lines = log_lines(&m);
    let warning = lines.iter().find(|l| l.contains(needle)).unwrap();
    assert!(warning.starts_with("WARNING: CPU: "), "{warning}");
    assert!(warning.contains(&format!(" at {}:{line}:", file!())), "{warning}");
    let other = rec.pool(1).unwrap();
    let mut d = [None; 2];
    other.alloc_bulk(&mut d).unwrap();
    assert_eq!(count_log(&m, "mempool_alloc_bulk: count > pool->min_nr (2 > 1)"), 1, "per pool");
    for s in [&a[..], &b, &c] {
        free_slots(&pool, s);
    }
    free_slots(&other, &d);
}

/// kmem's check of `allocated` (docs/deviations.md): the kernel trusts it, so a wrong one takes
/// too few or too many reserve elements (`BUG_ON(curr_nr < 0)`); kmem counts the filled slots,
/// warns once per pool, and takes exactly what is missing.
#[test]
fn bulk_alloc_with_a_wrong_allocated_is_warned_and_uses_the_filled_slots() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(3).unwrap(); // 0, 1, 2
    let out: Vec<_> = (0..2).map(|_| NonNull::new(pool.alloc_preallocated()).unwrap()).collect(); // 2, 1
    rec.fail.store(true, SEQ);
    m.log().clear();
    // One filled slot, "two" claimed: the kernel would see one missing and pop two.
    let mut raw = [out[0].as_ptr(), null_mut(), null_mut()];
    let section = kmem::context::atomic_section();
    let result = kmem_core::mempool::mempool_alloc_bulk(&pool, &mut raw, 2);
    drop(section);
    assert_eq!(result, -12, "two missing, one reserved: nothing taken, and no sleep here");
    assert_eq!(pool.curr_nr(), 1);
    assert_eq!(count_log(&m, "mempool_alloc_bulk: allocated (2) is not the number of filled slots (1); using 1"), 1);
    free(&pool, out[1]);
    assert_eq!(kmem_core::mempool::mempool_alloc_bulk(&pool, &mut raw, 1), 0);
    assert_eq!(raw.map(|e| number(NonNull::new(e).unwrap())), [2, 1, 0]);
    assert_eq!(pool.curr_nr(), 0);
    for e in raw {
        free(&pool, NonNull::new(e).unwrap());
    }
}

/// `MemPool<T>::alloc_bulk` fills the `None` slots with fresh values (one `init` call each)
/// and keeps the boxes already there; `free_bulk` drops every value once, refills the reserve
/// with the leading elements and frees the rest.
#[test]
fn typed_pool_bulk_fills_none_slots_and_frees_boxes() {
    struct Counted(Arc<AtomicUsize>, u64);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SEQ);
        }
    }
    let m = i386_nopcp(32);
    let pool: MemPool<Counted> = MemPool::new(&m, 4).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let kept = pool.alloc(GFP_KERNEL, Counted(drops.clone(), 7)).unwrap();
    let mut slots: [Option<PoolBox<'_, Counted>>; 3] = [None, Some(kept), None];
    let mut made = 0;
    pool.alloc_bulk(&mut slots, || {
        made += 1;
        Counted(drops.clone(), made)
    })
    .unwrap();
    assert_eq!(made, 2, "one value per empty slot");
    assert_eq!(slots.iter().map(|s| s.as_ref().unwrap().1).collect::<Vec<_>>(), [1, 7, 2]);
    assert_eq!(pool.raw().curr_nr(), 4, "kmalloc served them");
    let reserved: Vec<_> = (0..4).map(|i| pool.alloc_preallocated(Counted(drops.clone(), 100 + i)).unwrap()).collect();
    assert_eq!(pool.raw().curr_nr(), 0);
    let boxes: Vec<_> = reserved.into_iter().chain(slots.into_iter().flatten()).collect();
    assert_eq!(pool.free_bulk(boxes), 4, "the first four refill the reserve");
    assert_eq!(drops.load(SEQ), 7, "every value dropped once");
    assert_eq!((pool.raw().curr_nr(), pool.raw().outstanding()), (4, 0));
}

/// A value whose `Drop` panics inside `free_bulk` still has its element freed, and so do all
/// the others, before the panic goes on (found in review: the elements gathered so far leaked
/// and showed as reserve elements still out).
#[test]
fn typed_free_bulk_frees_every_element_when_a_drop_panics() {
    struct Bomb(bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            assert!(!self.0, "boom");
        }
    }
    // Mempool debugging counts every element out, so a leaked one shows.
    let m = builder(Profile::I386, 32).pcp(false).mempool_debug(true).build().unwrap();
    let pool: MemPool<Bomb> = MemPool::new(&m, 2).unwrap();
    // Two from the reserve (so the free refills it), two from kmalloc, one of them armed.
    let boxes = vec![
        pool.alloc_preallocated(Bomb(false)).unwrap(),
        pool.alloc(GFP_KERNEL, Bomb(true)).unwrap(),
        pool.alloc_preallocated(Bomb(false)).unwrap(),
        pool.alloc(GFP_KERNEL, Bomb(false)).unwrap(),
    ];
    assert_eq!(pool.raw().curr_nr(), 0);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.free_bulk(boxes)));
    assert!(panicked.is_err(), "the value's panic goes on");
    assert_eq!((pool.raw().curr_nr(), pool.raw().outstanding()), (2, 0), "nothing left out");
}

/// §6.2 fault injection: `fail_mempool_alloc` makes a `mempool_alloc` pass skip `alloc_fn` and
/// take from the reserve, logging `forcing mempool usage for <caller>` (no `FAULT_INJECTION`
/// dump: the mempool passes `FAULT_NOWARN`); `times` counts the passes forced.
#[test]
fn fail_mempool_alloc_takes_the_reserve_without_calling_alloc_fn() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap(); // 0, 1
    rec.take();
    m.fail_mempool_alloc().configure(1, 100, 0, 2).unwrap();
    m.log().clear();
    let (a, line) = (pool.alloc(GFP_KERNEL).unwrap(), line!());
    let b = pool.alloc(GFP_KERNEL).unwrap();
    assert!(rec.take().is_empty(), "alloc_fn is not called");
    assert_eq!((number(a), number(b)), (1, 0), "from the reserve, LIFO");
    let c = pool.alloc(GFP_KERNEL).unwrap();
    assert_eq!(rec.take(), vec![Call::Alloc(first_pass(GFP_KERNEL), true)], "times used up: alloc_fn again");
    assert_eq!(m.fail_mempool_alloc().injected.load(SEQ), 2);
    let lines = log_lines(&m);
    let forced: Vec<_> = lines.iter().filter(|l| l.starts_with("forcing mempool usage for ")).collect();
    assert_eq!(forced.len(), 2, "{lines:?}");
    assert!(forced[0].starts_with(&format!("forcing mempool usage for {}:{line}:", file!())), "{}", forced[0]);
    assert_eq!(count_log(&m, "FAULT_INJECTION"), 0);
    // Reserve empty, no direct reclaim: every pass forced, so NULL without a call.
    m.fail_mempool_alloc().configure(1, 100, 0, -1).unwrap();
    assert!(pool.alloc(GFP_ATOMIC).is_none());
    assert!(rec.take().is_empty());
    // Helper pools (whose first pass is inlined) are forced too, with kmalloc able to serve.
    let kp = RawMempool::kmalloc_pool(&m, 2, 64).unwrap();
    let k1 = kp.alloc(GFP_KERNEL).unwrap();
    let k2 = kp.alloc(GFP_ATOMIC).unwrap();
    assert_eq!(kp.curr_nr(), 0, "both from the reserve");
    assert!(kp.alloc(GFP_ATOMIC).is_none());
    m.fail_mempool_alloc().configure(1, 0, 0, 1).unwrap();
    let k3 = kp.alloc(GFP_ATOMIC).unwrap();
    assert_eq!(kp.curr_nr(), 0, "off again: kmalloc serves");
    for k in [k1, k2, k3] {
        free(&kp, k);
    }
    for e in [a, b, c] {
        free(&pool, e);
    }
}

/// §6.2 fault injection: `fail_mempool_alloc_bulk` sends a `mempool_alloc_bulk` to the reserve
/// before any `alloc_fn` call; if the reserve cannot cover the array, the call goes on as after
/// a failed first pass (no sleep yet, `alloc_fn` with the full mask).
#[test]
fn fail_mempool_alloc_bulk_goes_to_the_reserve_first() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(4).unwrap(); // 0..=3
    rec.take();
    m.fail_mempool_alloc_bulk().configure(1, 100, 0, 2).unwrap();
    m.log().clear();
    let mut a = [None; 3];
    let (result, line) = (pool.alloc_bulk(&mut a), line!());
    result.unwrap();
    assert!(rec.take().is_empty(), "alloc_fn is not called");
    assert_eq!(numbers(&a), [3, 2, 1]);
    let mut b = [None; 4];
    pool.alloc_bulk(&mut b).unwrap();
    assert_eq!(rec.take(), vec![Call::Alloc(full_pass(GFP_KERNEL), true); 4], "the reserve (1) cannot cover 4");
    assert_eq!((pool.curr_nr(), pool.stats().sleeps.load(SEQ)), (1, 0));
    let mut c = [None];
    pool.alloc_bulk(&mut c).unwrap();
    assert_eq!(rec.take(), vec![Call::Alloc(first_pass(GFP_KERNEL), true)], "times used up");
    assert_eq!(m.fail_mempool_alloc_bulk().injected.load(SEQ), 2);
    assert_eq!(m.fail_mempool_alloc().injected.load(SEQ), 0, "a point of its own");
    let lines = log_lines(&m);
    let forced: Vec<_> = lines.iter().filter(|l| l.starts_with("forcing mempool usage for ")).collect();
    assert_eq!(forced.len(), 2, "{lines:?}");
    assert!(forced[0].starts_with(&format!("forcing mempool usage for {}:{line}:", file!())), "{}", forced[0]);
    for s in [&a[..], &b, &c] {
        free_slots(&pool, s);
    }
}

/// The knobs are set like `fail_page_alloc`'s: by API, by the builder and by
/// `KMEM_FAIL_MEMPOOL_ALLOC{,_BULK}`; a bad spec is refused naming the attribute or variable
/// (the GFP filter keys are `fail_page_alloc`'s and `failslab`'s only).
#[test]
fn fail_mempool_alloc_knobs_from_the_builder_and_the_environment() {
    let m = builder(Profile::I386, 32).fail_mempool_alloc("1,100,0,3,verbose=0").build().unwrap();
    assert!(m.fail_mempool_alloc().enabled());
    assert!(!m.fail_mempool_alloc_bulk().enabled(), "off by default");
    let err = builder(Profile::I386, 32).fail_mempool_alloc("1,100,0,1,ignore-gfp-wait=0").build().unwrap_err();
    assert_eq!(err.to_string(), "fail_mempool_alloc: unknown option (verbose is the only one)");
    let err = builder(Profile::I386, 32).fail_mempool_alloc_bulk("1,100,0").build().unwrap_err();
    assert_eq!(err.to_string(), "fail_mempool_alloc_bulk: times (4th field) must be an integer");
    let env = |var: &'static str, value: &'static str| move |k: &str| (k == var).then(|| value.to_owned());
    let e = kmem::env::apply(Machine::builder(), env("KMEM_FAIL_MEMPOOL_ALLOC", "1,100,0,1,min-order=0")).unwrap_err();
    assert_eq!(e.var, "KMEM_FAIL_MEMPOOL_ALLOC");
    assert!(e.to_string().starts_with("invalid KMEM_FAIL_MEMPOOL_ALLOC=\"1,100,0,1,min-order=0\""), "{e}");
    let e = kmem::env::apply(Machine::builder(), env("KMEM_FAIL_MEMPOOL_ALLOC_BULK", "1,200,0,1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid KMEM_FAIL_MEMPOOL_ALLOC_BULK=\"1,200,0,1\": expected <interval>,<probability>,<space>,<times>[,verbose=N] (probability must be 0..=100)"
    );
    let b = kmem::env::apply(builder(Profile::I386, 32), env("KMEM_FAIL_MEMPOOL_ALLOC_BULK", "2,100,0,-1")).unwrap();
    let m = b.build().unwrap();
    assert!(m.fail_mempool_alloc_bulk().enabled() && !m.fail_mempool_alloc().enabled());
}
