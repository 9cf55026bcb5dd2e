//! The userspace test shim's hooks on real caches (SEMANTICS §8.6, `tools/testing/shared/linux.c`):
//! the `non_kernel` budget of allocations without `__GFP_DIRECT_RECLAIM` (opt-in per cache),
//! the callback a gated failure arms for the next allocation, the counters `nr_allocated`,
//! `nr_tallocated` (and its zeroing), `get_alloc` and the global `kmem_nr_allocated`, the port
//! of TST-17 (`test_kmem_cache_bulk`), bulk allocations and sheaves under a short budget,
//! handles that are not live caches, and two threads at once.

use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize};
use std::thread;

use kmem::gfp::{__GFP_DIRECT_RECLAIM, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT};
use kmem::slab::flags::{SLAB_NO_MERGE, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef};
use kmem::{Gfp, Machine, Profile};

use crate::{SEQ, builder, count_log};

fn machine() -> Machine {
    builder(Profile::X86_64, 64).build().expect("build machine")
}

/// A cache of its own (never merged, as the shim's caches never are).
fn cache(m: &Machine, name: &str, size: usize) -> CacheRef {
    cache_with(m, name, size, &CacheArgs::default())
}

fn cache_with(m: &Machine, name: &str, size: usize, args: &CacheArgs) -> CacheRef {
    m.kmem_cache_create(name, size, args, SLAB_NO_MERGE).expect("create cache")
}

fn alloc(m: &Machine, c: CacheRef, gfp: Gfp) -> Option<*mut u8> {
    m.kmem_cache_alloc(c, gfp).ok().map(NonNull::as_ptr)
}

fn free(m: &Machine, c: CacheRef, p: *mut u8) {
    // SAFETY: An object this test allocated from `c` and no longer uses.
    unsafe { m.kmem_cache_free(c, p) };
}

fn free_bulk(m: &Machine, c: CacheRef, objs: &[*mut u8]) {
    // SAFETY: As in `free`.
    unsafe { m.kmem_cache_free_bulk(Some(c), objs) };
}

fn destroy(m: &Machine, c: CacheRef) {
    // SAFETY: Nothing uses `c` afterwards.
    let r = unsafe { m.kmem_cache_destroy(c) };
    assert!(r.is_ok(), "destroy reported objects left: {r:?}");
}

/// The callback of these tests: counts its calls in the `AtomicUsize` its private pointer names.
unsafe extern "C" fn count_call(private: *mut c_void) {
    // SAFETY: Every test that installs this callback sets a private pointer to an
    // `AtomicUsize` that outlives the cache's allocations.
    unsafe { &*private.cast::<AtomicUsize>() }.fetch_add(1, SEQ);
}

fn set_counting_callback(m: &Machine, c: CacheRef, calls: &AtomicUsize) {
    m.kmem_cache_set_private(c, ptr::from_ref(calls).cast_mut().cast());
    // SAFETY: `count_call` only touches the counter, which outlives every allocation the test
    // makes from `c` (the test destroys `c` before the counter goes).
    unsafe { m.kmem_cache_set_callback(c, Some(count_call)) };
}

#[test]
fn a_cache_without_the_hooks_is_never_gated_even_while_another_has_them() {
    let m = machine();
    let plain = cache(&m, "shim_plain", 64);
    let gated = cache(&m, "shim_gated", 64);
    assert!(!m.slabs().failslab().diverts(), "no cache has the hooks: the fast path is open");
    let mut held: Vec<_> = (0..50).map(|_| alloc(&m, plain, GFP_ATOMIC).expect("atomic from a plain cache")).collect();
    m.kmem_cache_set_non_kernel(gated, 0);
    assert!(m.slabs().failslab().diverts(), "a cache has the hooks: every allocation takes the slow path");
    assert!(!m.slabs().failslab().enabled(), "failslab itself stays off");
    assert_eq!(alloc(&m, gated, GFP_ATOMIC), None);
    held.extend((0..50).map(|_| alloc(&m, plain, GFP_ATOMIC).expect("atomic from a plain cache")));
    held.extend((0..5).map(|_| alloc(&m, plain, GFP_NOWAIT).expect("nowait from a plain cache")));
    free_bulk(&m, plain, &held);
    destroy(&m, plain);
    destroy(&m, gated);
    assert!(!m.slabs().failslab().diverts(), "the teardown released the hold");
}

#[test]
fn budget_zero_fails_every_request_that_may_not_reclaim_even_with_objects_at_hand() {
    let m = machine();
    let c = cache(&m, "shim_zero", 128);
    // Objects in this CPU's array: the fast path would serve them without the gate.
    let warm: Vec<_> = (0..8).map(|_| alloc(&m, c, GFP_KERNEL).expect("kernel")).collect();
    free_bulk(&m, c, &warm);
    m.kmem_cache_set_non_kernel(c, 0);
    for gfp in [GFP_ATOMIC, GFP_NOWAIT, Gfp::empty()] {
        assert_eq!(alloc(&m, c, gfp), None, "{gfp:?} without __GFP_DIRECT_RECLAIM");
    }
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut [ptr::null_mut(); 2]), 0);
    let k = alloc(&m, c, GFP_KERNEL).expect("GFP_KERNEL passes the gate");
    let r = alloc(&m, c, __GFP_DIRECT_RECLAIM).expect("the reclaim bit alone passes");
    assert_eq!(m.kmem_cache_nr_allocated(c), 2);
    free(&m, c, k);
    free(&m, c, r);
    destroy(&m, c);
}

#[test]
fn a_budget_of_n_admits_n_requests_that_may_not_reclaim_and_kernel_requests_take_none() {
    let m = machine();
    let c = cache(&m, "shim_budget", 96);
    let mut held = Vec::new();
    m.kmem_cache_set_non_kernel(c, 1);
    held.push(alloc(&m, c, GFP_ATOMIC).expect("the one of budget 1"));
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None, "budget 1 spent");
    m.kmem_cache_set_non_kernel(c, 5);
    for i in 0..5 {
        held.push(alloc(&m, c, GFP_KERNEL).expect("kernel"));
        held.push(alloc(&m, c, if i % 2 == 0 { GFP_ATOMIC } else { GFP_NOWAIT }).expect("within budget 5"));
    }
    assert_eq!(alloc(&m, c, GFP_NOWAIT), None, "budget 5 spent; the kernel requests took none of it");
    assert_eq!(m.kmem_cache_nr_allocated(c), 11);
    // Setting the budget again replaces it.
    m.kmem_cache_set_non_kernel(c, 2);
    m.kmem_cache_set_non_kernel(c, 0);
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None);
    free_bulk(&m, c, &held);
    destroy(&m, c);
}

#[test]
fn the_callback_runs_once_with_the_private_pointer_at_the_allocation_after_a_gated_failure() {
    let m = machine();
    let c = cache(&m, "shim_cb", 64);
    let other = cache(&m, "shim_cb_other", 64);
    let calls = AtomicUsize::new(0);
    set_counting_callback(&m, c, &calls);
    // Not armed: neither allocations nor the callback's installation run it.
    let a = alloc(&m, c, GFP_ATOMIC).expect("the hooks are off: not gated");
    m.kmem_cache_set_non_kernel(c, 0);
    let b = alloc(&m, c, GFP_KERNEL).expect("kernel");
    assert_eq!(calls.load(SEQ), 0, "no failure yet");
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None);
    assert_eq!(calls.load(SEQ), 0, "the failure arms it; it runs at the next allocation");
    let o = alloc(&m, other, GFP_ATOMIC).expect("another cache");
    assert_eq!(calls.load(SEQ), 0, "not at another cache's allocation");
    let d = alloc(&m, c, GFP_KERNEL).expect("kernel");
    assert_eq!(calls.load(SEQ), 1, "ran at the next allocation");
    let e = alloc(&m, c, GFP_KERNEL).expect("kernel");
    assert_eq!(calls.load(SEQ), 1, "once");
    // A failing allocation runs the armed callback first, then fails and arms it again.
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None);
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None);
    assert_eq!(calls.load(SEQ), 2);
    // Armed, then removed: the next allocation disarms without a call; a new one later does
    // not run for the old failure.
    // SAFETY: No callback.
    unsafe { m.kmem_cache_set_callback(c, None) };
    let f = alloc(&m, c, GFP_KERNEL).expect("kernel");
    set_counting_callback(&m, c, &calls);
    let g = alloc(&m, c, GFP_KERNEL).expect("kernel");
    assert_eq!(calls.load(SEQ), 2);
    // A bulk allocation runs it too.
    assert_eq!(alloc(&m, c, GFP_NOWAIT), None);
    let mut two = [ptr::null_mut(); 2];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut two), 2);
    assert_eq!(calls.load(SEQ), 3);
    free_bulk(&m, c, &[a, b, d, e, f, g, two[0], two[1]]);
    free(&m, other, o);
    destroy(&m, c);
    destroy(&m, other);
}

/// What the re-entering callback below works with.
struct Refill<'a> {
    m: &'a Machine,
    cache: CacheRef,
    got: AtomicPtr<u8>,
    calls: AtomicUsize,
}

/// A callback that allocates from its own cache, as a suite's callback may: it runs with no
/// kmem lock held.
unsafe extern "C" fn allocate_again(private: *mut c_void) {
    // SAFETY: The test sets a private pointer to a `Refill` that outlives the cache's use.
    let r = unsafe { &*private.cast::<Refill<'_>>() };
    r.calls.fetch_add(1, SEQ);
    let p = r.m.kmem_cache_alloc(r.cache, GFP_KERNEL).expect("kernel from the callback");
    r.got.store(p.as_ptr(), SEQ);
}

#[test]
fn the_callback_may_allocate_from_its_own_cache() {
    let m = machine();
    let c = cache(&m, "shim_reenter", 256);
    let r = Refill { m: &m, cache: c, got: AtomicPtr::new(ptr::null_mut()), calls: AtomicUsize::new(0) };
    m.kmem_cache_set_private(c, ptr::from_ref(&r).cast_mut().cast());
    // SAFETY: `allocate_again` uses `r`, which lives until after the cache is destroyed.
    unsafe { m.kmem_cache_set_callback(c, Some(allocate_again)) };
    m.kmem_cache_set_non_kernel(c, 0);
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None);
    let p = alloc(&m, c, GFP_KERNEL).expect("kernel");
    assert_eq!(r.calls.load(SEQ), 1, "ran once: its own allocation did not run it again");
    let q = r.got.load(SEQ);
    assert!(!q.is_null() && q != p);
    assert_eq!(m.kmem_cache_nr_allocated(c), 2);
    free_bulk(&m, c, &[p, q]);
    destroy(&m, c);
}

#[test]
fn counters_follow_allocations_frees_bulk_and_failures_and_zeroing_restarts_the_total() {
    let m = machine();
    let c = cache(&m, "shim_count", 200);
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c), m.kmem_cache_get_alloc(c)), (0, 0, 0));
    let a: Vec<_> = (0..7).map(|_| alloc(&m, c, GFP_KERNEL).expect("kernel")).collect();
    assert_eq!(m.kmem_cache_nr_allocated(c), 7);
    assert_eq!(m.kmem_cache_nr_tallocated(c), 7);
    assert_eq!(m.kmem_cache_get_alloc(c), 7 * 200, "kmem_cache_size times nr_allocated");
    free_bulk(&m, c, &a[..4]);
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (3, 7));
    let mut bulk = [ptr::null_mut(); 40];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut bulk), 40);
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (43, 47));
    // A failed slow-path attempt (failslab) is no allocation.
    let attr = m.slabs().failslab();
    attr.set_verbose(0);
    attr.configure(1, 100, 0, -1).expect("failslab");
    for _ in 0..3 {
        assert_eq!(alloc(&m, c, GFP_ATOMIC), None, "failslab");
    }
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut [ptr::null_mut(); 3]), 0);
    attr.configure(1, 0, 0, -1).expect("failslab off");
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (43, 47));
    m.kmem_cache_zero_nr_tallocated(c);
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (43, 0));
    let b = alloc(&m, c, GFP_ATOMIC).expect("atomic");
    assert_eq!(m.kmem_cache_nr_tallocated(c), 1);
    free_bulk(&m, c, &bulk);
    free_bulk(&m, c, &a[4..]);
    free(&m, c, b);
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c), m.kmem_cache_get_alloc(c)), (0, 1, 0));
    destroy(&m, c);
}

#[test]
fn a_sheaf_counts_every_object_it_holds_and_a_kept_sheaf_counts_again_when_handed_out() {
    let m = machine();
    let c = cache_with(&m, "shim_sheaf", 64, &CacheArgs { sheaf_capacity: 4, ..CacheArgs::default() });
    let mut sheaf = m.prefill_sheaf(c, GFP_KERNEL, 2).expect("prefill");
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (4, 4), "filled to capacity");
    let p = sheaf.alloc(GFP_KERNEL).expect("from the sheaf");
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (4, 4), "already counted");
    sheaf.give_back(GFP_KERNEL);
    assert_eq!(m.cache_info(c).barn_objects, 4, "refilled and kept");
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (1, 4), "the refill went to no one");
    let sheaf = m.prefill_sheaf(c, GFP_KERNEL, 4).expect("prefill from the barn");
    assert_eq!(m.cache_info(c).barn_objects, 0);
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (5, 8), "handed out again");
    sheaf.give_back(GFP_KERNEL);
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (1, 8));
    free(&m, c, p.as_ptr());
    assert_eq!(m.kmem_cache_nr_allocated(c), 0);
    destroy(&m, c);
}

#[test]
fn a_gated_cache_fills_sheaves_through_the_gate_and_keeps_none() {
    let m = machine();
    let c = cache_with(&m, "shim_sheaf_gate", 64, &CacheArgs { sheaf_capacity: 4, ..CacheArgs::default() });
    // A sheaf kept before the gate went on is not handed out past it.
    m.prefill_sheaf(c, GFP_KERNEL, 4).expect("prefill").give_back(GFP_KERNEL);
    assert_eq!(m.cache_info(c).barn_objects, 4);
    m.kmem_cache_set_non_kernel(c, 3);
    assert!(m.prefill_sheaf(c, GFP_NOWAIT, 1).is_none(), "4 objects, budget for 3");
    assert_eq!(m.kmem_cache_nr_allocated(c), 0, "the failed fill gave back what it took");
    assert_eq!(alloc(&m, c, GFP_NOWAIT), None, "and the budget it took stays spent");
    m.kmem_cache_set_non_kernel(c, 4);
    let sheaf = m.prefill_sheaf(c, GFP_NOWAIT, 1).expect("budget for the 4");
    assert_eq!(sheaf.size(), 4);
    assert_eq!(alloc(&m, c, GFP_NOWAIT), None, "all 4 taken");
    sheaf.give_back(GFP_KERNEL);
    assert_eq!(m.cache_info(c).barn_objects, 4, "the returned sheaf was not kept (the old one is)");
    assert_eq!(m.kmem_cache_nr_allocated(c), 0);
    destroy(&m, c);
    assert_eq!(count_log(&m, "Objects remaining"), 0);
}

#[test]
fn bulk_under_a_short_budget_is_all_or_nothing_spends_what_it_took_and_leaks_nothing() {
    let m = machine();
    let c = cache(&m, "shim_bulk", 512);
    let calls = AtomicUsize::new(0);
    set_counting_callback(&m, c, &calls);
    m.kmem_cache_set_non_kernel(c, 3);
    let mut out = [ptr::null_mut(); 5];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut out), 0);
    assert!(out.iter().all(|p| p.is_null()), "nothing handed out");
    assert_eq!(m.cache_info(c).in_use(), 0);
    assert_eq!(m.kmem_cache_nr_tallocated(c), 0, "the objects given back were never handed out");
    assert_eq!(calls.load(SEQ), 0);
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None, "the 3 objects took the budget");
    assert_eq!(calls.load(SEQ), 1, "the bulk's failure armed the callback");
    m.kmem_cache_set_non_kernel(c, 5);
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_ATOMIC, &mut out), 5, "budget for all 5");
    assert_eq!(calls.load(SEQ), 2, "the last failure armed it again");
    assert_eq!((m.kmem_cache_nr_allocated(c), m.kmem_cache_nr_tallocated(c)), (5, 5));
    free_bulk(&m, c, &out);
    assert_eq!(m.cache_info(c).in_use(), 0);
    destroy(&m, c);
    assert_eq!(count_log(&m, "Objects remaining"), 0);
    assert_eq!(count_log(&m, "still has objects"), 0);
}

/// TST-17, `test_kmem_cache_bulk` of the radix-tree suite, ported. The shim's test asserts
/// `nr_objs`, the length of the shim's own free list (5 after five frees, 11 after twelve
/// because it keeps at most 10 plus the one being freed, 0 for an aligned cache, which it
/// never keeps). That list is the shim's `malloc`-backed stand-in for a slab, not SLUB
/// behaviour: kmem's objects go back to per-CPU arrays and slabs, whose sizes are tuning, not
/// contract. So the same sequence is checked here through what kmem and the shim both
/// promise: the counters (`nr_allocated`, `nr_tallocated`, `get_alloc`), the objects'
/// alignment, and a destroy that finds nothing left. The gate is on, as the shim's always is;
/// every request has `__GFP_DIRECT_RECLAIM`, so none is refused.
#[test]
fn tst17_kmem_cache_bulk() {
    let m = machine();
    let test_cache = cache(&m, "test_cache", 256);
    m.kmem_cache_set_non_kernel(test_cache, 0);
    let gfp = __GFP_DIRECT_RECLAIM;
    let mut list = [ptr::null_mut(); 12];
    for p in &mut list[..5] {
        *p = alloc(&m, test_cache, gfp).expect("alloc");
    }
    assert_eq!((m.kmem_cache_nr_allocated(test_cache), m.kmem_cache_nr_tallocated(test_cache)), (5, 5));
    free_bulk(&m, test_cache, &list[..5]);
    assert_eq!(m.kmem_cache_nr_allocated(test_cache), 0);
    assert_eq!(m.kmem_cache_alloc_bulk(test_cache, gfp, &mut list[..5]), 5);
    assert_eq!((m.kmem_cache_nr_allocated(test_cache), m.kmem_cache_nr_tallocated(test_cache)), (5, 10));
    assert_eq!(m.kmem_cache_get_alloc(test_cache), 5 * 256);
    free_bulk(&m, test_cache, &list[..5]);
    for p in &mut list {
        *p = alloc(&m, test_cache, gfp).expect("alloc");
    }
    assert_eq!((m.kmem_cache_nr_allocated(test_cache), m.kmem_cache_nr_tallocated(test_cache)), (12, 22));
    free_bulk(&m, test_cache, &list);
    assert_eq!((m.kmem_cache_nr_allocated(test_cache), m.kmem_cache_get_alloc(test_cache)), (0, 0));

    let args = CacheArgs { align: 128, ..CacheArgs::default() };
    let test_cache2 = cache_with(&m, "test_cache2", 128, &args);
    m.kmem_cache_set_non_kernel(test_cache2, 0);
    assert_eq!(m.kmem_cache_alloc_bulk(test_cache2, gfp, &mut list[..10]), 10);
    assert!(list[..10].iter().all(|&p| (p as usize).is_multiple_of(128)), "aligned to 128");
    assert_eq!((m.kmem_cache_nr_allocated(test_cache2), m.kmem_cache_nr_tallocated(test_cache2)), (10, 10));
    assert_eq!(m.kmem_cache_get_alloc(test_cache2), 10 * 128);
    free_bulk(&m, test_cache2, &list[..10]);
    assert_eq!(m.kmem_cache_nr_allocated(test_cache2), 0);
    destroy(&m, test_cache);
    destroy(&m, test_cache2);
}

#[test]
fn kmem_nr_allocated_sums_the_live_caches_but_not_kmalloc() {
    let m = machine();
    let before = m.kmem_nr_allocated();
    let a = cache(&m, "shim_sum_a", 48);
    let b = cache(&m, "shim_sum_b", 300);
    let xs: Vec<_> = (0..3).map(|_| alloc(&m, a, GFP_KERNEL).expect("a")).collect();
    let ys: Vec<_> = (0..4).map(|_| alloc(&m, b, GFP_KERNEL).expect("b")).collect();
    let k = m.kmalloc(1000, GFP_KERNEL).expect("kmalloc");
    assert_eq!(m.kmem_nr_allocated(), before + 7, "kmalloc's objects are the shim's kmalloc_nr_allocated");
    free_bulk(&m, a, &xs);
    assert_eq!(m.kmem_nr_allocated(), before + 4);
    free_bulk(&m, b, &ys);
    // SAFETY: Ours, unused afterwards.
    unsafe { m.kfree(k.as_ptr()) };
    assert_eq!(m.kmem_nr_allocated(), before);
    destroy(&m, a);
    destroy(&m, b);
}

#[test]
fn a_handle_that_is_not_a_live_cache_is_reported_and_changes_nothing() {
    let m = machine();
    let c = cache(&m, "shim_dead", 64);
    destroy(&m, c);
    let reported = || count_log(&m, "not a live cache of this machine");
    let n = reported();
    m.kmem_cache_set_non_kernel(c, 1);
    m.kmem_cache_set_private(c, ptr::null_mut());
    // SAFETY: No callback.
    unsafe { m.kmem_cache_set_callback(c, None) };
    assert_eq!(m.kmem_cache_nr_allocated(c), 0);
    assert_eq!(m.kmem_cache_nr_tallocated(c), 0);
    assert_eq!(m.kmem_cache_get_alloc(c), 0);
    m.kmem_cache_zero_nr_tallocated(c);
    assert_eq!(reported(), n + 7, "each call reported");
    assert!(!m.slabs().failslab().diverts(), "no hold taken for a dead cache");
}

#[test]
fn two_threads_one_with_a_budget_one_that_may_reclaim() {
    const BUDGET: u32 = 300;
    const TRIES: usize = 1000;
    let m = machine();
    let c = cache(&m, "shim_threads", 128);
    m.kmem_cache_set_non_kernel(c, BUDGET);
    let (atomic, kernel) = thread::scope(|sc| {
        let atomic = sc.spawn(|| {
            let mut held = Vec::new();
            for _ in 0..TRIES {
                if let Some(p) = alloc(&m, c, GFP_ATOMIC) {
                    held.push(p as usize);
                }
            }
            held
        });
        let kernel = sc.spawn(|| {
            let mut held = Vec::new();
            for i in 0..TRIES {
                held.push(alloc(&m, c, GFP_KERNEL).expect("kernel is never gated") as usize);
                if i.is_multiple_of(3) {
                    free(&m, c, held.pop().expect("just pushed") as *mut u8);
                }
            }
            held
        });
        (atomic.join().expect("atomic thread"), kernel.join().expect("kernel thread"))
    });
    assert_eq!(atomic.len(), BUDGET as usize, "exactly the budget, whatever the interleaving");
    assert_eq!(m.kmem_cache_nr_allocated(c), atomic.len() + kernel.len());
    assert_eq!(m.kmem_cache_nr_tallocated(c), BUDGET as usize + TRIES);
    for p in atomic.into_iter().chain(kernel) {
        free(&m, c, p as *mut u8);
    }
    assert_eq!(m.kmem_cache_nr_allocated(c), 0);
    destroy(&m, c);
}

#[test]
fn gating_a_shared_cache_warns_that_it_covers_every_user() {
    let m = machine();
    let own = cache(&m, "shim_own", 256);
    m.kmem_cache_set_non_kernel(own, 0);
    assert_eq!(count_log(&m, "is shared"), 0, "a cache of its own: no warning");
    let first = m.kmem_cache_create("shim_first", 200, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    let alias = m.kmem_cache_create("shim_alias", 200, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    assert_eq!(first, alias, "merged");
    m.kmem_cache_set_non_kernel(alias, 1);
    m.kmem_cache_set_non_kernel(alias, 1);
    assert_eq!(
        count_log(&m, "kmem_cache_set_non_kernel: cache shim_first is shared"),
        1,
        "once, naming the real cache"
    );
    let p = alloc(&m, first, GFP_ATOMIC).expect("the budget of 1");
    assert_eq!(alloc(&m, first, GFP_ATOMIC), None, "the other user is gated too, as warned");
    free(&m, first, p);
    let kmalloc = m.kmalloc_cache(512, GFP_KERNEL).expect("kmalloc-512");
    m.kmem_cache_set_non_kernel(kmalloc, 1000);
    assert_eq!(count_log(&m, "kmem_cache_set_non_kernel: cache kmalloc-512 is shared"), 1);
    destroy(&m, alias);
    destroy(&m, first);
    destroy(&m, own);
}

/// A cache created after another turned its gate on does not merge into it: its owner never
/// asked for the gate, and no warning would tell it (the warning is for caches already shared
/// when the gate goes on).
#[test]
fn a_new_cache_does_not_merge_into_a_gated_one() {
    let m = machine();
    let gated =
        m.kmem_cache_create("shim_gated_first", 176, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    m.kmem_cache_set_non_kernel(gated, 0);
    assert_eq!(count_log(&m, "is shared"), 0, "its only user: no warning");
    let later = m.kmem_cache_create("shim_later", 176, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    assert_ne!(later, gated, "not merged into the gated cache");
    let p = alloc(&m, later, GFP_ATOMIC).expect("the later cache is not gated");
    free(&m, later, p);
    destroy(&m, later);
    destroy(&m, gated);
}

/// What the destroying callback below works with.
struct Destroyer<'a> {
    m: &'a Machine,
    cache: CacheRef,
}

/// A callback that destroys the cache it runs for: the caller's bug, as in the shim.
unsafe extern "C" fn destroy_own_cache(private: *mut c_void) {
    // SAFETY: The test sets a private pointer to a `Destroyer` that outlives the cache's use.
    let d = unsafe { &*private.cast::<Destroyer<'_>>() };
    // SAFETY: The misuse under test; nothing else uses the handle afterwards.
    let _ = unsafe { d.m.kmem_cache_destroy(d.cache) };
}

/// A callback that destroys its own cache (misuse) does not free the cache under the
/// allocation that runs it: the allocation completes, and the next maintenance pass tears the
/// cache down and reports the object it handed out (SL-12), as for a constructor that does so.
#[test]
fn a_callback_that_destroys_its_cache_is_reported_and_the_allocation_completes() {
    let m = machine();
    let c = cache(&m, "shim_destroyed_by_cb", 64);
    let d = Destroyer { m: &m, cache: c };
    m.kmem_cache_set_private(c, ptr::from_ref(&d).cast_mut().cast());
    // SAFETY: The callback misuses only the cache; `d` outlives every allocation from it.
    unsafe { m.kmem_cache_set_callback(c, Some(destroy_own_cache)) };
    m.kmem_cache_set_non_kernel(c, 0);
    assert_eq!(alloc(&m, c, GFP_ATOMIC), None, "arms the callback");
    let p = alloc(&m, c, GFP_KERNEL).expect("the allocation that runs the callback completes");
    assert!(!p.is_null());
    m.reap_orphans();
    assert_eq!(count_log(&m, "kmem_cache_destroy shim_destroyed_by_cb: Slab cache still has objects"), 1);
    assert!(!m.slabs().failslab().diverts(), "the teardown released the gate's hold");
}
