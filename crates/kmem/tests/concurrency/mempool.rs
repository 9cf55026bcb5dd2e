//! Mempools between threads (SEMANTICS.md §6): sleepers woken by `mempool_free` (MP-6, MP-7),
//! the 5-second retry when nobody frees (MP-6), and forward progress under exhaustion — with
//! every page of the machine taken, `GFP_KERNEL` pool allocations never fail while plain
//! `GFP_ATOMIC` page allocations do.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;

use kmem::gfp::{__GFP_MEMALLOC, __GFP_NORETRY, __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem::mempool::RawMempool;
use kmem::{MAX_PAGE_ORDER, Machine, PAGE_SIZE, Page, Profile};

use crate::wait_until;

/// A machine without per-CPU lists (every free page is visible in the buddy lists) or kswapd.
fn machine(mib: u64, cpus: usize) -> Machine {
    builder(mib, cpus).build().expect("build machine")
}

/// [`machine`]'s settings, for a test that adds its own.
fn builder(mib: u64, cpus: usize) -> kmem::Builder {
    crate::builder(Profile::X86_64, mib, cpus, false)
}

/// Takes every page of `m`, reserves included; returns the blocks as (pfn, order).
fn take_every_page(m: &Machine) -> Vec<(usize, u32)> {
    let gfp = GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN;
    let mut held = Vec::new();
    for order in (0..=MAX_PAGE_ORDER).rev() {
        while let Ok(page) = m.alloc_pages(gfp, order) {
            held.push((m.page_to_pfn(page).expect("pfn"), order));
        }
    }
    assert_eq!(m.total_free(), 0, "every page taken");
    held
}

fn give_back(m: &Machine, held: Vec<(usize, u32)>) {
    for (pfn, order) in held {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(m.pfn_to_page(pfn).expect("page"), order) };
    }
}

/// An element's address, to send between threads.
fn addr(e: NonNull<c_void>) -> usize {
    e.as_ptr() as usize
}

#[test]
fn mp6_mp7_sleeper_is_woken_by_a_free_into_the_reserve() {
    let m = machine(32, 2);
    let pool = RawMempool::page_pool(&m, 1, 0).expect("pool");
    let held = take_every_page(&m);
    let mine = pool.alloc(GFP_KERNEL).expect("the reserve's element");
    assert_eq!(pool.curr_nr(), 0);
    let got = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            let e = pool.alloc(GFP_KERNEL).expect("GFP_KERNEL never fails");
            got.store(addr(e), SeqCst);
        });
        wait_until("the waiter to sleep on the pool", || pool.stats().sleeps.load(SeqCst) >= 1);
        assert_eq!(got.load(SeqCst), 0, "nothing to allocate yet");
        // SAFETY: `mine` came from the pool and is not used afterwards.
        unsafe { pool.free(mine) };
        wait_until("the waiter to get the freed element", || got.load(SeqCst) != 0);
    });
    assert_eq!(got.load(SeqCst), addr(mine), "the element freed into the reserve went to the sleeper");
    assert!(pool.stats().wakeups.load(SeqCst) >= 1, "the free woke the sleeper");
    let e = NonNull::new(got.load(SeqCst) as *mut c_void).unwrap();
    // SAFETY: From the pool, freed once.
    unsafe { pool.free(e) };
    assert_eq!((pool.curr_nr(), pool.outstanding()), (1, 0));
    drop(pool);
    give_back(&m, held);
}

/// MP-7: `wake_up` on `pool->wait` wakes every sleeper (non-exclusive waits): one free into the
/// reserve sends both sleepers back through their allocation loop, where one takes the element
/// and the other goes back to sleep at once, not after its 5-second timeout.
#[test]
fn mp7_a_free_into_the_reserve_wakes_every_sleeper() {
    let m = machine(32, 3);
    let pool = RawMempool::page_pool(&m, 1, 0).expect("pool");
    let held = take_every_page(&m);
    let mine = pool.alloc(GFP_KERNEL).expect("the reserve's element");
    let got = [AtomicUsize::new(0), AtomicUsize::new(0)];
    thread::scope(|s| {
        for slot in &got {
            let pool = &pool;
            s.spawn(move || {
                let e = pool.alloc(GFP_KERNEL).expect("GFP_KERNEL never fails");
                slot.store(addr(e), SeqCst);
            });
        }
        wait_until("both waiters to sleep on the pool", || pool.stats().sleeps.load(SeqCst) >= 2);
        // SAFETY: `mine` came from the pool and is not used afterwards.
        unsafe { pool.free(mine) };
        // Both woke: one got the element, the other re-ran its loop and slept again.
        wait_until("one waiter to get the element", || got.iter().any(|g| g.load(SeqCst) != 0));
        wait_until("the other waiter to sleep again", || pool.stats().sleeps.load(SeqCst) >= 3);
        assert_eq!(pool.stats().timeouts.load(SeqCst), 0, "the second sleep began on the wake-up, not a timeout");
        let winner = got.iter().find(|g| g.load(SeqCst) != 0).expect("a winner").load(SeqCst);
        assert_eq!(winner, addr(mine));
        // SAFETY: From the pool, freed once; the second sleeper gets it.
        unsafe { pool.free(NonNull::new(winner as *mut c_void).unwrap()) };
        wait_until("the second waiter to get the element", || got.iter().all(|g| g.load(SeqCst) != 0));
    });
    assert_eq!(pool.stats().wakeups.load(SeqCst), 2, "each free into the reserve found sleepers");
    assert_eq!(pool.stats().timeouts.load(SeqCst), 0);
    assert_eq!(got[0].load(SeqCst), got[1].load(SeqCst), "the same element, in turn");
    // SAFETY: From the pool, freed once.
    unsafe { pool.free(NonNull::new(got[0].load(SeqCst) as *mut c_void).unwrap()) };
    // A free that goes to `free_fn` (the reserve is full) wakes nobody.
    let extra = {
        give_back(&m, held);
        pool.alloc(GFP_KERNEL).expect("from the page allocator")
    };
    assert_eq!(pool.curr_nr(), 1, "the reserve stayed full");
    // SAFETY: From the pool, freed once.
    unsafe { pool.free(extra) };
    assert_eq!(pool.stats().wakeups.load(SeqCst), 2, "a free to free_fn wakes no one");
    assert_eq!((pool.curr_nr(), pool.outstanding()), (1, 0));
}

#[test]
fn mp6_sleeper_retries_the_allocator_after_the_timeout() {
    let m = machine(32, 2);
    let pool = RawMempool::page_pool(&m, 1, 0).expect("pool");
    let held = take_every_page(&m);
    let mine = pool.alloc(GFP_KERNEL).expect("the reserve's element");
    let got = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            let e = pool.alloc(GFP_KERNEL).expect("GFP_KERNEL never fails");
            got.store(addr(e), SeqCst);
        });
        wait_until("the waiter to sleep on the pool", || pool.stats().sleeps.load(SeqCst) >= 1);
        // Memory comes back to the page allocator, not to the pool: no one wakes the sleeper,
        // so only its timeout sends it back to `alloc_fn`.
        give_back(&m, held);
        wait_until("the waiter to allocate after its timeout", || got.load(SeqCst) != 0);
    });
    assert_eq!(pool.stats().wakeups.load(SeqCst), 0, "no free went into the reserve");
    assert!(pool.stats().timeouts.load(SeqCst) >= 1, "the sleep ended by its timeout");
    assert_ne!(got.load(SeqCst), addr(mine));
    assert_eq!(pool.curr_nr(), 0, "the element came from the page allocator");
    // SAFETY: Both came from the pool and are freed once.
    unsafe {
        pool.free(mine);
        pool.free(NonNull::new(got.load(SeqCst) as *mut c_void).unwrap());
    }
    assert_eq!((pool.curr_nr(), pool.outstanding()), (1, 0));
}

/// §6.2 `mempool_alloc_bulk` between threads: with the page allocator exhausted, a bulk call
/// missing two elements sleeps on the pool; a free that brings the reserve to one wakes it
/// (MP-7), but it takes nothing (all or nothing) and sleeps again; a `mempool_free_bulk` that
/// brings it to two wakes it again and it takes both, last freed first (MP-4). No timing: the
/// counters say what happened.
#[test]
fn bulk_sleeper_takes_the_whole_remainder_after_the_frees_that_cover_it() {
    let m = machine(32, 2);
    let pool = RawMempool::page_pool(&m, 2, 0).expect("pool");
    let held = take_every_page(&m);
    let mine = [pool.alloc(GFP_KERNEL).expect("reserved"), pool.alloc(GFP_KERNEL).expect("reserved")];
    assert_eq!(pool.curr_nr(), 0);
    let got = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut slots = [None; 2];
            pool.alloc_bulk(&mut slots).expect("mempool_alloc_bulk never fails outside atomic context");
            for (g, e) in got.iter().zip(slots) {
                g.store(addr(e.expect("filled")), SeqCst);
            }
            done.store(true, SeqCst);
        });
        wait_until("the bulk caller to sleep on the pool", || pool.stats().sleeps.load(SeqCst) >= 1);
        // SAFETY: `mine[0]` came from the pool and is not used afterwards.
        unsafe { pool.free(mine[0]) };
        wait_until("the woken bulk caller to sleep again", || pool.stats().sleeps.load(SeqCst) >= 2);
        assert_eq!(pool.stats().wakeups.load(SeqCst), 1, "the free into the reserve woke it");
        assert!(!done.load(SeqCst), "one element cannot fill two slots");
        assert_eq!(pool.curr_nr(), 1, "and it took none of the reserve");
        // SAFETY: `mine[1]` came from the pool and is not used afterwards; the pool takes it.
        assert_eq!(unsafe { pool.free_bulk(&mine[1..]) }, 1);
        wait_until("the bulk caller to fill both slots", || done.load(SeqCst));
    });
    assert_eq!(pool.stats().wakeups.load(SeqCst), 2, "the bulk free woke it too");
    assert_eq!(pool.stats().timeouts.load(SeqCst), 0, "woken by the frees, not by the timeout");
    assert_eq!(got.each_ref().map(|g| g.load(SeqCst)), [addr(mine[1]), addr(mine[0])], "top of the reserve first");
    assert_eq!(pool.curr_nr(), 0);
    give_back(&m, held);
    for g in &got {
        // SAFETY: From the pool, freed once.
        unsafe { pool.free(NonNull::new(g.load(SeqCst) as *mut c_void).unwrap()) };
    }
    assert_eq!((pool.curr_nr(), pool.outstanding()), (2, 0));
}

/// Cycles per thread in the forward-progress test.
const CYCLES: usize = 100_000;
/// Threads in the forward-progress test (more than the pool's reserve, so some must wait).
const THREADS: usize = 3;

#[test]
fn forward_progress_under_exhaustion_gfp_kernel_never_fails() {
    let m = machine(16, THREADS + 1);
    let before = m.total_free();
    let pool = RawMempool::page_pool(&m, 2, 0).expect("pool");
    let held = take_every_page(&m);
    let in_use = AtomicUsize::new(0);
    let overlap = AtomicBool::new(false);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, m, in_use, overlap) = (&pool, &m, &in_use, &overlap);
            s.spawn(move || {
                for i in 0..CYCLES {
                    let e = pool.alloc(GFP_KERNEL).expect("mempool_alloc(GFP_KERNEL) never fails");
                    // SAFETY: Page pool elements are `Page`s of this machine.
                    let page: &Page = unsafe { e.cast::<Page>().as_ref() };
                    let p = m.page_address(page).expect("lowmem").cast::<u64>();
                    let stamp = ((t as u64) << 32) | i as u64;
                    // SAFETY: The element's page is ours until we free it.
                    unsafe { p.write_volatile(stamp) };
                    if in_use.fetch_add(1, SeqCst) >= 2 {
                        overlap.store(true, SeqCst); // More elements out than the reserve holds.
                    }
                    thread::yield_now();
                    // SAFETY: As above.
                    assert_eq!(unsafe { p.read_volatile() }, stamp, "element handed to two threads at once");
                    in_use.fetch_sub(1, SeqCst);
                    // SAFETY: From the pool, freed once.
                    unsafe { pool.free(e) };
                }
            });
        }
    });
    assert!(!overlap.load(SeqCst), "the backing allocator had nothing, so at most min_nr elements were out");
    assert_eq!((pool.curr_nr(), pool.outstanding()), (2, 0), "nothing lost");
    assert_eq!(m.total_free(), 0, "no element leaked into the page allocator or out of it");
    assert!(
        pool.stats().reserve_allocs.load(SeqCst) >= THREADS * CYCLES,
        "every allocation was served from the reserve"
    );

    // The same workload on the plain page allocator with GFP_ATOMIC fails.
    let failures = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..CYCLES {
                    match m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0) {
                        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
                        Ok(page) => unsafe { m.free_pages(page, 0) },
                        Err(_) => {
                            failures.fetch_add(1, SeqCst);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(failures.load(SeqCst), THREADS * CYCLES, "with every page taken, GFP_ATOMIC always fails");

    // And on plain kmalloc with GFP_ATOMIC (the comparison): once the objects its cache
    // still had are taken, every attempt fails.
    let spare: Vec<_> = std::iter::from_fn(|| m.kmalloc(PAGE_SIZE, GFP_ATOMIC | __GFP_NOWARN).ok()).collect();
    let failures = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..CYCLES {
                    match m.kmalloc(PAGE_SIZE, GFP_ATOMIC | __GFP_NOWARN) {
                        // SAFETY: Just allocated, freed once.
                        Ok(p) => unsafe { m.kfree(p.as_ptr()) },
                        Err(_) => {
                            failures.fetch_add(1, SeqCst);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(failures.load(SeqCst), THREADS * CYCLES, "kmalloc(GFP_ATOMIC) fails every time");
    for p in spare {
        // SAFETY: From kmalloc above, freed once.
        unsafe { m.kfree(p.as_ptr()) };
    }

    drop(pool);
    give_back(&m, held);
    assert_eq!(m.total_free(), before);
}

/// Mempool debugging (`Builder::mempool_debug`) counts every element exactly while two threads
/// allocate and free, each also freeing elements the other allocated: nothing is counted twice
/// or lost, and a destroy with elements still out names how many.
#[test]
fn mempool_debug_counts_every_element_across_threads() {
    let m = builder(64, 3).mempool_debug(true).build().expect("build machine");
    let cache = m.kmem_cache_create("debug_elems", 96, &Default::default(), Default::default()).expect("cache");
    let pool = RawMempool::slab_pool(&m, 2, cache).expect("pool");
    assert!(pool.is_tracking());
    let iters = crate::stress_iters();
    let (to_b, from_a) = std::sync::mpsc::channel::<usize>();
    thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            for i in 0..iters {
                let e = pool.alloc(GFP_KERNEL).expect("GFP_KERNEL");
                if i % 2 == 0 {
                    to_b.send(addr(e)).expect("peer alive");
                } else {
                    // SAFETY: From the pool, freed once.
                    unsafe { pool.free(e) };
                }
            }
        });
        s.spawn(move || {
            for i in 0..iters {
                let e = pool.alloc(GFP_KERNEL).expect("GFP_KERNEL");
                // SAFETY: From the pool, freed once.
                unsafe { pool.free(e) };
                if i % 2 == 0
                    && let Ok(theirs) = from_a.recv()
                {
                    // SAFETY: The other thread's element, handed over, freed once here.
                    unsafe { pool.free(NonNull::new(theirs as *mut c_void).expect("element")) };
                }
            }
        });
    });
    assert_eq!((pool.curr_nr(), pool.outstanding()), (2, 0), "every element counted once");
    let kept: Vec<_> = (0..3).map(|_| pool.alloc(GFP_KERNEL).expect("GFP_KERNEL")).collect();
    assert_eq!(pool.outstanding(), 3);
    m.log().clear();
    drop(pool);
    let log = m.log().messages();
    assert!(log.contains("destroyed with 3 element(s) still allocated (leaked)"), "{log}");
    for e in kept {
        // SAFETY: Objects of `cache`, still valid after the pool is gone, freed once.
        unsafe { m.kmem_cache_free(cache, e.as_ptr().cast()) };
    }
    // SAFETY: The pool is gone and every object is back.
    unsafe { m.kmem_cache_destroy(cache) }.expect("every object back");
}
