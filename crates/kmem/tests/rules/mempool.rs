//! MP-1..MP-14 (SEMANTICS.md §6.3) through `kmem::mempool`, with a backing allocator that
//! records every call and fails on demand. Waiting and waking between threads (MP-6, MP-7) and
//! forward progress under exhaustion are in the concurrency suite.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use kmem::gfp::*;
use kmem::mempool::{MemPool, RawMempool, ResizeError};
use kmem::{Gfp, Machine, Page};

use crate::*;

/// One call the pool made into the backing allocator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `alloc_fn(gfp)`, and whether it returned an element.
    Alloc(Gfp, bool),
    /// `free_fn(element)` (the element's address).
    Free(usize),
}

/// A backing allocator over a machine's pages that records calls, numbers its elements (as
/// the seed's `mempool_alloc_test` does) and fails while `fail` is set.
pub struct Recorder {
    machine: Machine,
    /// Every call, in order.
    pub calls: Mutex<Vec<Call>>,
    /// Fail every `alloc_fn` call while set.
    pub fail: AtomicBool,
    /// Fail `alloc_fn` call number `n` (1-based) and every later one; 0 = off.
    pub fail_from: AtomicUsize,
    /// Print the seed's lines into the machine log.
    pub seed_log: bool,
    count: AtomicUsize,
}

impl Recorder {
    /// A recorder on `m`.
    pub fn new(m: &Machine, seed_log: bool) -> Box<Self> {
        Box::new(Self {
            machine: m.clone(),
            calls: Mutex::new(Vec::new()),
            fail: AtomicBool::new(false),
            fail_from: AtomicUsize::new(0),
            seed_log,
            count: AtomicUsize::new(0),
        })
    }

    /// The calls so far, and forgets them.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    /// How many `free_fn` calls are in `calls`.
    pub fn frees(calls: &[Call]) -> usize {
        calls.iter().filter(|c| matches!(c, Call::Free(_))).count()
    }

    /// A pool over this recorder.
    pub fn pool(&self, min_nr: usize) -> Result<RawMempool, kmem::AllocError> {
        let data = std::ptr::from_ref::<Recorder>(self).cast_mut().cast();
        // SAFETY: The callbacks only read the recorder (shared-safe), which the caller keeps
        // alive until the pool is dropped (every test drops the pool first).
        unsafe { RawMempool::new(&self.machine, min_nr, rec_alloc, rec_free, data) }
    }
}

/// The element number the recorder wrote into an element.
pub fn number(element: NonNull<c_void>) -> usize {
    // SAFETY: Recorder elements are pages whose first word holds their number.
    unsafe { element.cast::<usize>().read() }
}

/// `alloc_fn` of a [`Recorder`]: one lowmem page holding its element number.
///
/// # Safety
/// `data` points to a live [`Recorder`].
pub unsafe extern "C" fn rec_alloc(gfp: Gfp, data: *mut c_void) -> *mut c_void {
    // SAFETY: The caller's promise.
    let r = unsafe { &*data.cast::<Recorder>() };
    if r.seed_log {
        r.machine.printk(kmem::Level::Warning, "----> mempool_alloc_test\n");
    }
    let n = r.count.fetch_add(1, SEQ);
    let from = r.fail_from.load(SEQ);
    let fail = r.fail.load(SEQ) || (from != 0 && n + 1 >= from);
    let element = if fail { None } else { r.machine.get_free_pages(gfp.difference(__GFP_HIGHMEM), 0).ok() };
    r.calls.lock().unwrap().push(Call::Alloc(gfp, element.is_some()));
    match element {
        Some(p) => {
            // SAFETY: A fresh page of ours.
            unsafe { p.cast::<usize>().write(n) };
            p.as_ptr().cast()
        }
        None => {
            r.count.fetch_sub(1, SEQ);
            std::ptr::null_mut()
        }
    }
}

/// `free_fn` of a [`Recorder`].
///
/// # Safety
/// As [`rec_alloc`]; `element` came from it.
pub unsafe extern "C" fn rec_free(element: *mut c_void, data: *mut c_void) {
    // SAFETY: The caller's promise.
    let r = unsafe { &*data.cast::<Recorder>() };
    if r.seed_log {
        r.machine.printk(kmem::Level::Warning, "----> call mempool_free_test\n");
    }
    r.calls.lock().unwrap().push(Call::Free(element as usize));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { r.machine.free_pages_addr(element.cast(), 0) };
}

/// The mask of the first `alloc_fn` attempt of `mempool_alloc(gfp)` (§6.2).
pub fn first_pass(gfp: Gfp) -> Gfp {
    full_pass(gfp).difference(__GFP_DIRECT_RECLAIM | __GFP_IO)
}

/// The mask of later attempts.
pub fn full_pass(gfp: Gfp) -> Gfp {
    gfp | __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN
}

/// Frees an element the test got from `pool`.
pub fn free(pool: &RawMempool, e: NonNull<c_void>) {
    // SAFETY: Every test frees only elements it got from `pool`, once.
    unsafe { pool.free(e) }
}

#[test]
fn mp1_seed_mempool_example_logs_what_the_book_prints() {
    // Seed 000, example 5-3, with MIN_ELEMENT = TEST_ELEMENT = 4 (DESIGN §8).
    let m = i386_nopcp(32);
    m.log().clear();
    let before = m.total_free();
    let rec = Recorder::new(&m, true);
    m.printk(kmem::Level::Warning, "Module MEMPOOL Test\n");
    m.printk(kmem::Level::Warning, "call mempool_create\n");
    let pool = rec.pool(4).expect("mempool_create");
    m.printk(kmem::Level::Warning, "mempool allocate\n");
    let mut elements = Vec::new();
    for _ in 0..4 {
        let e = pool.alloc(GFP_KERNEL).expect("allocate");
        m.printk(kmem::Level::Warning, &format!("alloc data {}\n", number(e)));
        elements.push(e);
    }
    m.printk(kmem::Level::Warning, "mempool free\n");
    for e in elements {
        free(&pool, e);
    }
    m.printk(kmem::Level::Warning, "call mempool_destroy\n");
    drop(pool);
    m.printk(kmem::Level::Warning, "Module MEMPOOL Test End\n");
    let mut expected = vec!["Module MEMPOOL Test", "call mempool_create"];
    expected.extend(["----> mempool_alloc_test"; 4]);
    expected.push("mempool allocate");
    let data: Vec<String> = (4..8).map(|n| format!("alloc data {n}")).collect();
    for d in &data {
        expected.push("----> mempool_alloc_test");
        expected.push(d);
    }
    expected.push("mempool free");
    expected.extend(["----> call mempool_free_test"; 4]);
    expected.push("call mempool_destroy");
    expected.extend(["----> call mempool_free_test"; 4]);
    expected.push("Module MEMPOOL Test End");
    assert_eq!(log_lines(&m), expected);
    let calls = rec.take();
    assert_eq!(calls.iter().filter(|c| matches!(c, Call::Alloc(_, true))).count(), 8);
    assert_eq!(Recorder::frees(&calls), 8);
    assert_eq!(m.total_free(), before, "every page, the pool's own included, came back");
    check(&m);
}

#[test]
fn mp1_create_calls_alloc_fn_min_times_with_gfp_kernel() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(6).expect("create");
    assert_eq!(rec.take(), vec![Call::Alloc(GFP_KERNEL, true); 6]);
    assert_eq!((pool.min_nr(), pool.curr_nr()), (6, 6));
    assert!(pool.is_saturated() && pool.is_initialized());
}

#[test]
fn mp1_create_failure_frees_what_it_got_and_returns_null() {
    let m = i386_nopcp(32);
    let before = m.total_free();
    let rec = Recorder::new(&m, false);
    rec.fail_from.store(3, SEQ);
    assert!(rec.pool(5).is_err());
    let calls = rec.take();
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert_eq!(
        &calls[..3],
        &[Call::Alloc(GFP_KERNEL, true), Call::Alloc(GFP_KERNEL, true), Call::Alloc(GFP_KERNEL, false)]
    );
    assert_eq!(Recorder::frees(&calls[3..]), 2, "both obtained elements went to free_fn");
    assert_eq!(m.total_free(), before, "the pool's structure and array were freed too");
    check(&m);
}

#[test]
fn mp2_allocator_first_with_the_adjusted_mask_reserve_untouched() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap();
    rec.take();
    for gfp in [GFP_KERNEL, GFP_ATOMIC, GFP_NOIO, GFP_NOWAIT] {
        let e = pool.alloc(gfp).unwrap();
        assert_eq!(rec.take(), vec![Call::Alloc(first_pass(gfp), true)], "{gfp:?}");
        assert_eq!(pool.curr_nr(), 2, "{gfp:?}: the reserve is not used while the allocator succeeds");
        free(&pool, e);
        assert_eq!(Recorder::frees(&rec.take()), 1, "saturated pool: the free goes to free_fn");
    }
    assert_eq!(
        first_pass(GFP_KERNEL),
        __GFP_KSWAPD_RECLAIM | __GFP_FS | __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN
    );
}

#[test]
fn mp2_mp4_reserve_used_only_when_the_allocator_fails_lifo() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(3).unwrap(); // Elements 0, 1, 2; 2 is on top.
    rec.fail.store(true, SEQ);
    rec.take();
    let got: Vec<_> = (0..3).map(|_| pool.alloc(GFP_KERNEL).unwrap()).collect();
    assert_eq!(got.iter().map(|&e| number(e)).collect::<Vec<_>>(), [2, 1, 0], "LIFO");
    assert_eq!(rec.take(), vec![Call::Alloc(first_pass(GFP_KERNEL), false); 3], "one attempt each, then the reserve");
    assert_eq!(pool.curr_nr(), 0);
    assert_eq!(pool.stats().reserve_allocs.load(SEQ), 3);
    // Freed 0 then 2: the next allocation takes 2, the last one freed (MP-4).
    free(&pool, got[2]);
    free(&pool, got[0]);
    let x = pool.alloc(GFP_ATOMIC).unwrap();
    let y = pool.alloc(GFP_ATOMIC).unwrap();
    assert_eq!((number(x), number(y)), (2, 0));
    free(&pool, x);
    free(&pool, y);
    free(&pool, got[1]);
    assert_eq!(pool.curr_nr(), 3);
    assert_eq!(Recorder::frees(&rec.take()), 0, "every free refilled the reserve");
}

#[test]
fn mp3_free_refills_the_reserve_first_and_never_beyond_min() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap();
    let extra: Vec<_> = (0..3).map(|_| pool.alloc(GFP_KERNEL).unwrap()).collect();
    rec.fail.store(true, SEQ);
    let reserved: Vec<_> = (0..2).map(|_| pool.alloc(GFP_ATOMIC).unwrap()).collect();
    assert_eq!(pool.curr_nr(), 0);
    rec.take();
    for (i, &e) in reserved.iter().chain(&extra).enumerate() {
        free(&pool, e);
        assert!(pool.curr_nr() <= pool.min_nr());
        let to_free_fn = Recorder::frees(&rec.take());
        assert_eq!(to_free_fn, usize::from(i >= 2), "free {i}: reserve first, then free_fn");
    }
    assert_eq!(pool.curr_nr(), 2);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn mp3_zero_minimum_pool_keeps_one_element() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(0).unwrap();
    assert_eq!(rec.take(), vec![Call::Alloc(GFP_KERNEL, true)], "max(1, min_nr) pre-allocations");
    assert_eq!((pool.min_nr(), pool.curr_nr()), (0, 1));
    rec.fail.store(true, SEQ);
    let a = pool.alloc(GFP_ATOMIC).unwrap();
    assert!(pool.alloc(GFP_ATOMIC).is_none());
    rec.fail.store(false, SEQ);
    let b = pool.alloc(GFP_ATOMIC).unwrap();
    rec.take();
    free(&pool, a);
    assert_eq!((pool.curr_nr(), Recorder::frees(&rec.take())), (1, 0), "empty zero-min pool takes one");
    free(&pool, b);
    assert_eq!((pool.curr_nr(), Recorder::frees(&rec.take())), (1, 1), "and never more");
}

#[test]
fn mp5_without_direct_reclaim_null_after_one_or_two_attempts() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(1).unwrap();
    rec.fail.store(true, SEQ);
    let held = pool.alloc(GFP_ATOMIC).unwrap();
    rec.take();
    // No DIRECT_RECLAIM and no IO: the first-pass mask is the full mask, one attempt.
    for gfp in [GFP_ATOMIC, GFP_NOWAIT, __GFP_HIGH] {
        assert!(pool.alloc(gfp).is_none(), "{gfp:?}");
        assert_eq!(rec.take(), vec![Call::Alloc(full_pass(gfp), false)], "{gfp:?}");
    }
    // With IO: a second attempt at once with the full mask, then NULL.
    let gfp = GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM);
    assert!(pool.alloc(gfp).is_none());
    assert_eq!(rec.take(), vec![Call::Alloc(first_pass(gfp), false), Call::Alloc(full_pass(gfp), false)]);
    assert_eq!(pool.stats().sleeps.load(SEQ), 0, "never slept");
    free(&pool, held);
}

#[test]
fn mp8_alloc_preallocated_never_calls_alloc_fn() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap();
    rec.take();
    let a = NonNull::new(pool.alloc_preallocated()).unwrap();
    let b = NonNull::new(pool.alloc_preallocated()).unwrap();
    assert!(pool.alloc_preallocated().is_null(), "empty reserve: NULL");
    assert_eq!((number(a), number(b)), (1, 0));
    assert!(rec.take().is_empty(), "alloc_fn never called");
    free(&pool, a);
    free(&pool, b);
}

#[test]
fn mp9_resize_shrinks_at_once_and_grows_with_gfp_kernel() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(4).unwrap();
    rec.take();
    pool.resize(1).unwrap();
    assert_eq!((pool.min_nr(), pool.curr_nr()), (1, 1));
    assert_eq!(Recorder::frees(&rec.take()), 3, "surplus freed immediately");
    pool.resize(600).unwrap(); // The array grows beyond one page.
    assert_eq!((pool.min_nr(), pool.curr_nr()), (600, 600));
    assert_eq!(rec.take(), vec![Call::Alloc(GFP_KERNEL, true); 599]);
    // The 2.6-era form with its gfp, and a grow the allocator cannot fill: still Ok.
    rec.fail_from.store(rec.count.load(SEQ) + 3, SEQ);
    assert_eq!(pool.resize_gfp(610, GFP_NOIO), Ok(()));
    let calls = rec.take();
    assert_eq!(calls, vec![Call::Alloc(GFP_NOIO, true), Call::Alloc(GFP_NOIO, true), Call::Alloc(GFP_NOIO, false)]);
    assert_eq!((pool.min_nr(), pool.curr_nr()), (610, 602));
    // Later frees fill it.
    rec.fail_from.store(0, SEQ);
    let e = pool.alloc(GFP_KERNEL).unwrap();
    free(&pool, e);
    assert_eq!(pool.curr_nr(), 603);
    m.log().clear();
    assert_eq!(pool.resize(0), Err(ResizeError::Invalid));
    assert_eq!(count_log(&m, "kernel BUG at mm/mempool.c"), 1);
    assert_eq!(pool.min_nr(), 610, "untouched");
    rec.take();
    drop(pool);
    assert_eq!(Recorder::frees(&rec.take()), 603);
}

#[test]
fn mp10_destroy_null_is_a_noop_and_destroy_frees_the_reserve() {
    let m = i386_nopcp(32);
    // SAFETY: NULL is allowed.
    unsafe { kmem_core::mempool::mempool_destroy(std::ptr::null_mut()) };
    let before = m.total_free();
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(3).unwrap();
    rec.take();
    m.log().clear();
    drop(pool);
    assert_eq!(Recorder::frees(&rec.take()), 3);
    assert!(log_lines(&m).is_empty(), "no report when everything came back");
    assert_eq!(m.total_free(), before);
}

#[test]
fn mp10_destroy_with_elements_out_is_reported_not_freed_under_mempool_debug() {
    let m = builder(Profile::I386, 32).pcp(false).mempool_debug(true).build().unwrap();
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap();
    assert!(pool.is_tracking());
    let out = [pool.alloc(GFP_KERNEL).unwrap(), pool.alloc(GFP_KERNEL).unwrap()];
    assert_eq!(pool.outstanding(), 2, "elements from alloc_fn count too");
    rec.take();
    m.log().clear();
    drop(pool);
    assert_eq!(Recorder::frees(&rec.take()), 2, "only the reserve");
    let lines = log_lines(&m);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("WARNING:") && lines[0].contains("with 2 element(s) still allocated"), "{}", lines[0]);
    // Dropped, so the report names where the pool was made (drop glue has no location).
    assert!(lines[0].contains(&format!(" at {}:", file!())), "{}", lines[0]);
    // The elements stay valid for their holder, who frees them to the backing allocator.
    for e in out {
        assert!((2..4).contains(&number(e)), "element {} came from alloc_fn, not the reserve", number(e));
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages_addr(e.as_ptr().cast(), 0) };
    }
    check(&m);
}

/// Without mempool debugging the pool counts nothing on its fast paths (SEMANTICS: today's
/// kernel checks no outstanding elements); destroy reports the reserve elements still out, as
/// the 2.6 kernel's `BUG_ON(curr_nr != min_nr)` did, and leaves the rest to their allocator.
#[test]
fn mp10_destroy_reports_reserve_elements_still_out_without_debug() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap();
    assert!(!pool.is_tracking());
    let from_backing = pool.alloc(GFP_KERNEL).unwrap();
    rec.fail.store(true, SEQ);
    let from_reserve = [pool.alloc(GFP_ATOMIC).unwrap(), pool.alloc(GFP_ATOMIC).unwrap()];
    assert_eq!(pool.outstanding(), 2, "only the reserve's elements are counted");
    // A free refills the reserve: one reserve element is out now, replaced by the other.
    free(&pool, from_backing);
    assert_eq!((pool.curr_nr(), pool.outstanding()), (1, 1));
    rec.take();
    m.log().clear();
    drop(pool);
    assert_eq!(Recorder::frees(&rec.take()), 1, "only the reserve");
    let lines = log_lines(&m);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("WARNING:") && lines[0].contains("with 1 reserve element(s) still allocated"),
        "{}",
        lines[0]
    );
    for e in from_reserve {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages_addr(e.as_ptr().cast(), 0) };
    }
    check(&m);

    // Elements out that came from the backing allocator, with a full reserve: nothing to report.
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(2).unwrap();
    let e = pool.alloc(GFP_KERNEL).unwrap();
    m.log().clear();
    drop(pool);
    assert!(log_lines(&m).is_empty(), "{:?}", log_lines(&m));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_addr(e.as_ptr().cast(), 0) };
    check(&m);
}

#[test]
fn mp12_page_pools_hand_out_pages_of_their_order() {
    let m = i386_nopcp(32);
    let before = m.total_free();
    for order in [0, 2, 5] {
        let pool = RawMempool::page_pool(&m, 3, order).unwrap();
        assert_eq!(kmem_core::mempool::mempool_helper_arg(&pool), order as usize);
        let elements: Vec<_> = (0..5).map(|_| pool.alloc(GFP_KERNEL).unwrap()).collect();
        for &e in &elements {
            // SAFETY: Page pool elements are `Page`s of the machine.
            let page: &Page = unsafe { e.cast::<Page>().as_ref() };
            assert!(page.is_allocated(), "order {order}");
            assert_eq!(page.order(), order);
            assert!(pfn(&m, page).is_multiple_of(1 << order));
        }
        for e in elements {
            free(&pool, e);
        }
        assert_eq!(pool.curr_nr(), 3);
    }
    assert_eq!(m.total_free(), before);
    assert!(RawMempool::page_pool(&m, 1, 11).is_err(), "order above MAX_PAGE_ORDER");
    check(&m);
}

#[test]
fn mp12_typed_pool_moves_values_in_and_drops_them_on_free() {
    struct Counted<'a>(u64, &'a AtomicUsize);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.1.fetch_add(1, SEQ);
        }
    }
    let m = i386_nopcp(32);
    let drops = AtomicUsize::new(0);
    let pool: MemPool<Counted<'_>> = MemPool::new(&m, 2).unwrap();
    let a = pool.alloc(GFP_KERNEL, Counted(1, &drops)).unwrap();
    let mut b = pool.alloc_preallocated(Counted(2, &drops)).unwrap();
    b.0 += 40;
    assert_eq!((a.0, b.0), (1, 42));
    assert_eq!(pool.raw().curr_nr(), 1);
    drop(b);
    assert_eq!(drops.load(SEQ), 1);
    assert_eq!(pool.raw().curr_nr(), 2, "back into the reserve");
    drop(a);
    assert_eq!((drops.load(SEQ), pool.raw().outstanding()), (2, 0));
}

#[test]
fn mp14_gfp_zero_warns_once() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(1).unwrap();
    m.log().clear();
    let (a, line) = (pool.alloc(GFP_KERNEL | __GFP_ZERO).unwrap(), line!());
    let b = pool.alloc(GFP_KERNEL | __GFP_ZERO).unwrap();
    let lines = log_lines(&m);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&format!("{}:{line}:", file!())) && lines[0].contains("__GFP_ZERO"), "{}", lines[0]);
    free(&pool, a);
    free(&pool, b);
}

/// MP-14's other half: `__GFP_ZERO` is passed on to `alloc_fn` (whose allocator zeroes), while
/// an element from the reserve comes back exactly as it was freed.
#[test]
fn mp14_reserve_elements_are_not_zeroed_the_mask_reaches_alloc_fn() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let recorded = rec.pool(1).unwrap();
    rec.take();
    let e = recorded.alloc(GFP_KERNEL | __GFP_ZERO).unwrap();
    assert_eq!(rec.take(), vec![Call::Alloc(first_pass(GFP_KERNEL | __GFP_ZERO), true)]);
    free(&recorded, e);

    let pool = RawMempool::page_pool(&m, 1, 0).unwrap();
    let bytes = |e: NonNull<c_void>| {
        // SAFETY: Page pool elements are `Page`s of this machine.
        let page: &Page = unsafe { e.cast::<Page>().as_ref() };
        m.page_address(page).expect("lowmem").as_ptr()
    };
    // Dirty the reserve's element and put it back.
    let r = NonNull::new(pool.alloc_preallocated()).expect("the reserve's element");
    // SAFETY: The element's page is ours until it is freed.
    unsafe { bytes(r).write_bytes(0xab, kmem::PAGE_SIZE) };
    free(&pool, r);
    let held = exhaust(&m);
    let reserved = pool.alloc(GFP_KERNEL | __GFP_ZERO).expect("the reserve's element");
    assert_eq!(reserved, r);
    let p = bytes(reserved);
    // SAFETY: As above: the page is ours, every byte was written.
    assert!((0..kmem::PAGE_SIZE).all(|i| unsafe { p.add(i).read() } == 0xab), "reserve elements are not zeroed");
    free(&pool, reserved);
    free_all(&m, held);
}

#[test]
fn misuse_free_null_is_ignored() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(1).unwrap();
    rec.take();
    // SAFETY: NULL is allowed.
    unsafe { kmem_core::mempool::mempool_free(std::ptr::null_mut(), &pool) };
    assert!(rec.take().is_empty());
    assert_eq!((pool.curr_nr(), pool.outstanding()), (1, 0));
}

#[test]
fn sleeping_alloc_in_atomic_context_is_reported_and_does_not_sleep() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(1).unwrap();
    rec.fail.store(true, SEQ);
    let held = pool.alloc(GFP_KERNEL).unwrap();
    m.log().clear();
    let section = kmem::context::atomic_section();
    let (result, line) = (pool.alloc(GFP_KERNEL), line!());
    drop(section);
    assert!(result.is_none(), "no sleep, so NULL");
    assert_eq!(pool.stats().sleeps.load(SEQ), 0);
    let text = log_lines(&m).join("\n");
    assert!(
        text.contains(&format!("BUG: sleeping function called from invalid context at {}:{line}", file!())),
        "{text}"
    );
    // `__might_resched` dumps the stack after the report, as the page allocator's does.
    let after = &text[text.find("BUG: sleeping function").unwrap()..];
    assert!(after.contains("Call Trace:") && after.contains(&format!("{}:{line}", file!())), "{text}");
    free(&pool, held);
}

#[test]
fn mp13_poisoned_reserve_reports_an_element_written_while_reserved() {
    let m = i386_nopcp(32);
    let pool = RawMempool::page_pool(&m, 2, 0).unwrap();
    let rec = Recorder::new(&m, false);
    let custom = rec.pool(1).unwrap();
    assert!(!custom.set_poisoning(true), "custom callbacks: the pool cannot find element bytes");
    assert!(pool.set_poisoning(true));
    let held = exhaust(&m);
    let bytes = |e: NonNull<c_void>| {
        // SAFETY: Page pool elements are `Page`s of the machine.
        let page: &Page = unsafe { e.cast::<Page>().as_ref() };
        m.page_address(page).expect("lowmem")
    };
    m.log().clear();
    let a = pool.alloc(GFP_ATOMIC).expect("from the reserve");
    let b = pool.alloc(GFP_ATOMIC).expect("from the reserve");
    assert!(log_lines(&m).is_empty(), "untouched reserve elements pass the check");
    let mut page = vec![0u8; kmem::PAGE_SIZE];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(bytes(a), &mut page) }.unwrap();
    assert!(page.iter().all(|&x| x == 0x5a), "filled with POISON_INUSE when handed out");
    free(&pool, b);
    free(&pool, a); // On top.
    // A use after free while `a` sits in the reserve: byte 100 of the element.
    // SAFETY: The page is mapped (it is the pool's); this is the bug under test.
    unsafe { bytes(a).as_ptr().add(100).write(0x11) };
    let (again, line) = (pool.alloc(GFP_ATOMIC).expect("from the reserve"), line!());
    assert_eq!(again, a);
    let text = log_lines(&m).join("\n");
    assert!(text.contains("BUG: mempool element poison mismatch"), "{text}");
    assert!(text.contains(&format!("size {}", kmem::PAGE_SIZE)), "{text}");
    let at = format!(" nr=1 @ {:p}: ... 0x6b 6b 6b 6b 6b 6b 6b 6b 11 6b 6b 6b 6b 6b 6b 6b ...", bytes(a).as_ptr());
    assert!(text.contains(&at), "{text}\nwanted: {at}");
    assert!(text.contains(&format!("{}:{line}:", file!())), "the call trace names the caller: {text}");
    free(&pool, again);
    drop(pool);
    drop(custom);
    free_all(&m, held);
    check(&m);
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    /// `mempool_alloc(GFP_ATOMIC)`, with the backing allocator failing or not.
    Alloc { fail: bool },
    /// `mempool_alloc_preallocated`.
    Prealloc,
    /// Free the live element at `index % live.len()`.
    Free { index: usize },
    /// `mempool_resize(new_min)`.
    Resize { new_min: usize },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => any::<bool>().prop_map(|fail| Op::Alloc { fail }),
        1 => Just(Op::Prealloc),
        4 => any::<usize>().prop_map(|index| Op::Free { index }),
        1 => (1usize..6).prop_map(|new_min| Op::Resize { new_min }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, failure_persistence: None, ..Default::default() })]

    /// Random operations against a plain model of the reserve (a stack of element numbers),
    /// MP-2, MP-3, MP-4, MP-8, MP-9 (STYLE §7).
    #[test]
    fn model_reserve_follows_a_plain_stack(
        min in 0usize..4,
        debug in proptest::prelude::any::<bool>(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        // With mempool debugging every element is counted; without, only reserve elements.
        let m = builder(Profile::I386, 32).pcp(false).mempool_debug(debug).build().unwrap();
        let rec = Recorder::new(&m, false);
        let pool = rec.pool(min).unwrap();
        let mut reserve: Vec<usize> = (0..min.max(1)).collect();
        let mut next = reserve.len();
        let (mut min_nr, mut frees) = (min, 0usize);
        let mut live: Vec<NonNull<c_void>> = Vec::new();
        // Elements taken from the reserve and not replaced: a free into the reserve replaces
        // one (if any is out), a shrink caps them at what the smaller reserve takes back.
        let mut reserve_out = 0isize;
        for op in ops {
            match op {
                Op::Alloc { fail } => {
                    rec.fail.store(fail, SEQ);
                    let got = pool.alloc(GFP_ATOMIC);
                    let expected = if fail { reserve.pop() } else { next += 1; Some(next - 1) };
                    proptest::prop_assert_eq!(got.map(number), expected);
                    reserve_out += isize::from(fail && got.is_some());
                    live.extend(got);
                }
                Op::Prealloc => {
                    let got = NonNull::new(pool.alloc_preallocated());
                    proptest::prop_assert_eq!(got.map(number), reserve.pop());
                    reserve_out += isize::from(got.is_some());
                    live.extend(got);
                }
                Op::Free { index } => {
                    if live.is_empty() {
                        continue;
                    }
                    let e = live.swap_remove(index % live.len());
                    let n = number(e);
                    free(&pool, e);
                    if reserve.len() < min_nr || (min_nr == 0 && reserve.is_empty()) {
                        reserve.push(n);
                        reserve_out = (reserve_out - 1).max(0);
                    } else {
                        frees += 1;
                    }
                }
                Op::Resize { new_min } => {
                    rec.fail.store(false, SEQ);
                    pool.resize(new_min).unwrap();
                    if new_min <= min_nr {
                        while reserve.len() > new_min {
                            reserve.pop();
                            frees += 1;
                        }
                        reserve_out = reserve_out.min((new_min - reserve.len()) as isize);
                    } else {
                        while reserve.len() < new_min {
                            reserve.push(next);
                            next += 1;
                        }
                    }
                    min_nr = new_min;
                }
            }
            proptest::prop_assert_eq!((pool.curr_nr(), pool.min_nr()), (reserve.len(), min_nr));
            let out = if debug { live.len() as isize } else { reserve_out };
            proptest::prop_assert_eq!((pool.is_tracking(), pool.outstanding()), (debug, out));
            proptest::prop_assert_eq!(Recorder::frees(&rec.calls.lock().unwrap()), frees);
        }
        rec.take();
        for e in live {
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages_addr(e.as_ptr().cast(), 0) };
        }
        let in_reserve = reserve.len();
        drop(pool);
        // Elements still out were freed behind the pool's back above, so destroy reports them.
        proptest::prop_assert_eq!(Recorder::frees(&rec.take()), in_reserve);
        check(&m);
    }
}
