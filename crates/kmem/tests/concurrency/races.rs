//! Races across the stack: more threads than CPU slots (slab, pages, kmap), `/proc` readers
//! during churn, thread exits racing remote shrinks and drains, cache create/destroy while
//! walkers pin caches, RCU barriers and readers against `call_rcu` and `kfree_rcu` on other
//! threads, sleepers of several orders woken by frees (or giving up), mempool users while the
//! pool is resized.
//!
//! After each test every page comes back (free, or still a slab page of a cache that keeps
//! its structure) and the page allocator's `check()` passes where the test ends quiescent.
//! Threads are joined one by one where the test then looks at per-CPU state: the scope's own
//! wait may end before a thread's thread-local destructors (its CPU slot's hand-back) ran.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;
use std::time::Duration;

use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem::mempool::RawMempool;
use kmem::slab::CacheArgs;
use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_RECLAIM_ACCOUNT};
use kmem::{Machine, Profile};
use kmem_core::rcu::RcuHead;

use crate::{Rng, wait_until};

/// Stops the other threads when dropped (also while unwinding), so a panic is reported
/// instead of hanging the scope.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Churn of kmalloc, a cache and pages for `iters` rounds, some frees handed to the other
/// threads through `shared` (cross-thread frees).
fn churn(m: &Machine, seed: u64, iters: usize, cache: kmem::slab::CacheRef, shared: &std::sync::Mutex<Vec<Held>>) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ seed << 20 | 1);
    let mut live: Vec<Held> = Vec::new();
    for _ in 0..iters {
        if live.len() < 64 && rng.index(2) == 0 {
            let h = match rng.index(3) {
                0 => Held::Kmalloc(m.kmalloc(1 + rng.index(3000), GFP_KERNEL).expect("kmalloc").as_ptr() as usize),
                1 => Held::Obj(m.kmem_cache_alloc(cache, GFP_KERNEL).expect("cache alloc").as_ptr() as usize),
                _ => {
                    let order = rng.index(3) as u32;
                    let page = m.alloc_pages(GFP_KERNEL, order).expect("pages");
                    Held::Pages(m.page_to_pfn(page).expect("pfn"), order)
                }
            };
            live.push(h);
        } else if !live.is_empty() {
            let h = live.swap_remove(rng.index(live.len()));
            if rng.index(3) == 0 {
                let mut s = shared.lock().unwrap();
                s.push(h);
                let i = rng.index(s.len());
                let other = s.swap_remove(i);
                drop(s);
                other.free(m, cache);
            } else {
                h.free(m, cache);
            }
        }
    }
    for h in live {
        h.free(m, cache);
    }
}

/// Something a churn thread holds.
#[derive(Clone, Copy)]
enum Held {
    Kmalloc(usize),
    Obj(usize),
    Pages(usize, u32),
}

impl Held {
    fn free(self, m: &Machine, cache: kmem::slab::CacheRef) {
        // SAFETY: Each `Held` has one owner and is freed once.
        unsafe {
            match self {
                Held::Kmalloc(p) => m.kfree(p as *const u8),
                Held::Obj(p) => m.kmem_cache_free(cache, p as *mut u8),
                Held::Pages(pfn, order) => m.free_pages(m.pfn_to_page(pfn).expect("page"), order),
            }
        }
    }
}

/// Free pages (per-CPU lists drained first) plus slab pages.
pub(crate) fn accounted(m: &Machine) -> usize {
    m.drain_all_pages();
    let (rec, unrec) = m.slab_pages();
    m.total_free() + rec + unrec
}

/// Everything comes back: every cache shrinks to nothing, per-CPU lists are drained, and the
/// buddy lists are as they were.
fn assert_all_back(m: &Machine, free0: usize, buddy0: &str) {
    crate::shrink_every_cache(m, &[]);
    m.drain_all_pages();
    assert_eq!(crate::pcp_pages(m), 0, "pages left on per-CPU lists");
    assert_eq!(accounted(m), free0, "every page back");
    if !buddy0.is_empty() {
        assert_eq!(m.buddyinfo(), buddy0, "buddyinfo is not what it was before the threads ran");
    }
}

#[test]
fn more_threads_than_cpu_slots_churn_and_give_everything_back() {
    let m = crate::machine(Profile::X86_64, 64, 2, true);
    let cache = m.kmem_cache_create("few-slots", 200, &CacheArgs::default(), SLAB_NO_MERGE).expect("create");
    // The kmalloc caches are made on first use, and their structures stay: make them first.
    for size in [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 3000] {
        // SAFETY: Ours, unused after.
        unsafe { m.kfree(m.kmalloc(size, GFP_KERNEL).expect("kmalloc").as_ptr()) };
    }
    m.release_cpu();
    m.for_each_cache(|c| {
        m.kmem_cache_shrink(c);
    });
    let free0 = accounted(&m);
    let buddy0 = m.buddyinfo();
    let shared = std::sync::Mutex::new(Vec::new());
    let iters = (crate::stress_iters() / 10).max(200);
    thread::scope(|s| {
        let workers: Vec<_> = (0..6u64)
            .map(|t| {
                let (m, shared) = (&m, &shared);
                s.spawn(move || churn(m, t, iters, cache, shared))
            })
            .collect();
        // Joined one by one: the scope's own wait may end before a thread's thread-local
        // destructors (which give its CPU slot back) have run.
        for w in workers {
            w.join().expect("worker");
        }
    });
    for h in shared.into_inner().unwrap() {
        h.free(&m, cache);
    }
    m.release_cpu();
    assert_all_back(&m, free0, &buddy0);
    // Every page allocated since boot and not freed is still out: the counters lost no event.
    let (allocs, frees) = page_events(&m);
    let out = m.pages().total_managed() - m.total_free();
    assert_eq!(allocs - frees, out, "pgalloc {allocs} - pgfree {frees} is not the {out} pages still allocated");
    // SAFETY: Every other thread is gone.
    unsafe { m.check() };
}

/// (`pgalloc_*` summed, `pgfree`) of `/proc/vmstat`.
fn page_events(m: &Machine) -> (usize, usize) {
    let pa = m.pages();
    (pa.zones().iter().map(|z| pa.nr_pgalloc(z.kind())).sum(), pa.nr_pgfree())
}

/// The numbers of a `/proc/meminfo` text, by label.
fn meminfo_kb(text: &str, label: &str) -> usize {
    let line =
        text.lines().find(|l| l.starts_with(&format!("{label}:"))).unwrap_or_else(|| panic!("no {label} in {text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap_or_else(|_| panic!("bad line {line:?}"))
}

fn check_meminfo(text: &str) {
    let total = meminfo_kb(text, "MemTotal");
    let free = meminfo_kb(text, "MemFree");
    assert!(free <= total, "MemFree > MemTotal:\n{text}");
    assert!(meminfo_kb(text, "MemAvailable") <= total + meminfo_kb(text, "SReclaimable"), "MemAvailable:\n{text}");
    assert_eq!(
        meminfo_kb(text, "Slab"),
        meminfo_kb(text, "SReclaimable") + meminfo_kb(text, "SUnreclaim"),
        "Slab is not the sum:\n{text}"
    );
    assert!(meminfo_kb(text, "Slab") <= total, "Slab > MemTotal:\n{text}");
    assert!(meminfo_kb(text, "Committed_AS") <= total, "Committed_AS:\n{text}");
    assert!(meminfo_kb(text, "VmallocUsed") <= meminfo_kb(text, "VmallocTotal"), "VmallocUsed:\n{text}");
}

fn check_slabinfo(text: &str) {
    for line in text.lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let active: usize = f[1].parse().unwrap_or_else(|_| panic!("{line}"));
        let num: usize = f[2].parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(active <= num, "active_objs > num_objs: {line}");
        assert!(num < 1 << 30, "num_objs absurd: {line}");
    }
}

fn check_numbers(name: &str, text: &str, max: u64) {
    for word in text.split_whitespace() {
        if let Ok(n) = word.parse::<u64>() {
            assert!(n < max, "{name}: absurd number {n}:\n{text}");
        }
        assert!(
            !word.starts_with('-') || word.len() == 1 || word.parse::<i64>().is_err(),
            "{name}: negative {word}:\n{text}"
        );
    }
}

#[test]
fn proc_readers_during_churn_see_consistent_numbers() {
    let m = crate::machine(Profile::X86_64, 64, 4, true);
    let cache = m
        .kmem_cache_create("proc-churn", 96, &CacheArgs::default(), SLAB_NO_MERGE | SLAB_RECLAIM_ACCOUNT)
        .expect("create");
    // vmalloc's node chunks are made on first use and kept for good (`vmalloc/mod.rs`).
    // SAFETY: Ours, unused after.
    unsafe { m.vfree(m.vmalloc(4096).expect("vmalloc").as_ptr()) };
    m.vm_reclaim_and_purge();
    let free0 = accounted(&m);
    let stop = AtomicBool::new(false);
    let shared = std::sync::Mutex::new(Vec::new());
    let iters = (crate::stress_iters() / 20).max(200);
    let reads = AtomicUsize::new(0);
    thread::scope(|s| {
        let reader = s.spawn(|| {
            while !stop.load(SeqCst) {
                check_meminfo(&m.meminfo());
                check_slabinfo(&m.slabinfo());
                check_numbers("buddyinfo", &m.buddyinfo(), 1 << 24);
                check_numbers("vmallocinfo", &m.vmallocinfo(), u64::MAX);
                check_numbers("zoneinfo", &m.zoneinfo(), 1 << 40);
                check_numbers("vmstat", &m.vmstat(), 1 << 40);
                check_numbers("pagetypeinfo", &m.pagetypeinfo(), 1 << 24);
                reads.fetch_add(1, SeqCst);
            }
            m.release_cpu();
        });
        let stopper = StopOnDrop(&stop);
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let (m, shared) = (&m, &shared);
                s.spawn(move || {
                    let mut rng = Rng(t + 7);
                    for i in 0..iters / 50 {
                        churn(m, t * 1000 + i as u64, 50, cache, shared);
                        let v = m.vmalloc(4096 * (1 + rng.index(8))).expect("vmalloc");
                        // SAFETY: Ours, unused after.
                        unsafe {
                            if i.is_multiple_of(2) {
                                m.vfree(v.as_ptr());
                            } else {
                                let _a = kmem::context::atomic_section();
                                m.vfree_atomic(v.as_ptr());
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        drop(stopper);
        reader.join().expect("reader");
    });
    assert!(reads.load(SeqCst) > 0);
    for h in shared.into_inner().unwrap() {
        h.free(&m, cache);
    }
    m.flush_deferred_vfree();
    m.vm_reclaim_and_purge();
    m.release_cpu();
    assert_all_back(&m, free0, "");
}

static RCU_RUN: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn rcu_cb(head: *mut RcuHead) {
    RCU_RUN.fetch_add(1, SeqCst);
    // SAFETY: Each head is a leaked box queued once; this is its callback.
    drop(unsafe { Box::from_raw(head) });
}

#[test]
fn rcu_barrier_waits_for_callbacks_queued_by_another_thread() {
    // kswapd runs callbacks too: once a second, and when a flood of them is queued.
    let m = crate::builder(Profile::X86_64, 32, 4, true).kswapd(true).build().expect("machine");
    let queued = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let n = (crate::stress_iters() / 2).max(1000);
    thread::scope(|s| {
        let stopper = StopOnDrop(&stop);
        let q = s.spawn(|| {
            for _ in 0..n {
                let head = NonNull::from(Box::leak(Box::new(RcuHead { next: std::ptr::null_mut(), func: None })));
                // SAFETY: A fresh head, ours until the callback frees it.
                unsafe { m.call_rcu(head, rcu_cb) };
                queued.fetch_add(1, SeqCst);
            }
        });
        let mut rounds = 0u32;
        while !q.is_finished() || rounds < 3 {
            let before = queued.load(SeqCst);
            if rounds.is_multiple_of(2) {
                m.rcu_barrier();
            } else {
                m.synchronize_rcu();
                m.rcu_barrier();
            }
            let run = RCU_RUN.load(SeqCst);
            assert!(run >= before, "rcu_barrier returned with {run} callbacks run, {before} queued before it");
            rounds += 1;
        }
        q.join().expect("queuer");
        drop(stopper);
    });
    m.rcu_barrier();
    assert_eq!(RCU_RUN.load(SeqCst), n, "every callback ran once");
}

#[test]
fn sleepers_of_several_orders_are_all_woken_by_frees() {
    let m = crate::builder(Profile::X86_64, 32, 8, true).oom_timeout(Duration::from_secs(60)).build().expect("machine");
    let held = crate::exhaust(&m);
    let got = AtomicUsize::new(0);
    let orders = [0u32, 1, 2, 3, 0, 1, 2];
    thread::scope(|s| {
        let waiters: Vec<_> = orders
            .iter()
            .map(|&order| {
                let (m, got) = (&m, &got);
                s.spawn(move || {
                    let page = m.alloc_pages(GFP_KERNEL, order).expect("GFP_KERNEL sleeper");
                    got.fetch_add(1, SeqCst);
                    let pfn = m.page_to_pfn(page).expect("pfn");
                    (pfn, order)
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(50));
        // Free in small steps, each a few pages, so the sleepers wake one batch at a time.
        for chunk in held.chunks(16) {
            crate::free_pfns(&m, chunk.iter().copied());
            thread::sleep(Duration::from_micros(200));
        }
        wait_until("every sleeper got its block", || got.load(SeqCst) == orders.len());
        for w in waiters {
            let (pfn, order) = w.join().expect("sleeper");
            // SAFETY: The sleeper's block, unused after.
            unsafe { m.free_pages(m.pfn_to_page(pfn).expect("page"), order) };
        }
    });
    // SAFETY: Every other thread is gone.
    unsafe { m.check() };
}

#[test]
fn mempool_users_while_the_pool_is_resized() {
    let m = crate::builder(Profile::X86_64, 32, 6, false).build().expect("machine");
    let pool = RawMempool::kmalloc_pool(&m, 8, 256).expect("pool");
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let rounds = 300;
    thread::scope(|s| {
        let stopper = StopOnDrop(&stop);
        let users: Vec<_> = (0..3u64)
            .map(|t| {
                let (pool, done, m) = (&pool, &done, &m);
                s.spawn(move || {
                    let mut rng = Rng(t + 99);
                    let mut mine: Vec<NonNull<c_void>> = Vec::new();
                    for _ in 0..rounds {
                        if mine.len() < 6 && rng.index(3) != 0 {
                            let gfp = if rng.index(2) == 0 { GFP_KERNEL } else { GFP_ATOMIC | __GFP_NOWARN };
                            if let Some(e) = pool.alloc(gfp) {
                                mine.push(e);
                            }
                        } else if let Some(e) = mine.pop() {
                            // SAFETY: An element of this pool, freed once.
                            unsafe { pool.free(e) };
                        }
                    }
                    for e in mine {
                        // SAFETY: As above.
                        unsafe { pool.free(e) };
                    }
                    done.fetch_add(1, SeqCst);
                    m.release_cpu();
                })
            })
            .collect();
        let mut rng = Rng(5);
        while done.load(SeqCst) < 3 {
            let n = 1 + rng.index(16);
            pool.resize(n).expect("resize");
            let (min, curr) = pool.with_counts(|min, curr| (min, curr));
            assert!(curr <= min, "curr_nr {curr} > min_nr {min}");
        }
        for u in users {
            u.join().expect("user");
        }
        drop(stopper);
    });
    let (min, curr) = pool.with_counts(|min, curr| (min, curr));
    assert!(curr <= min);
    drop(pool);
    m.release_cpu();
    // SAFETY: Every other thread is gone.
    unsafe { m.check() };
}

/// Short-lived threads park objects in their CPU arrays and pages on their per-CPU lists and
/// exit while another thread shrinks the cache and drains every CPU's lists in a loop (the
/// exit's flush racing the remote one). Once both are done, nothing may be left parked: no
/// thread owns the slots any more, so nothing else would ever flush them.
#[test]
fn thread_exits_racing_remote_shrink_and_drain_lose_nothing() {
    let m = crate::machine(Profile::X86_64, 64, 4, true);
    let cache = m.kmem_cache_create("exit-vs-shrink", 128, &CacheArgs::default(), SLAB_NO_MERGE).expect("create");
    let free0 = accounted(&m);
    let rounds = (crate::stress_iters() / 500).clamp(20, 200);
    for round in 0..rounds {
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let shrinker = s.spawn(|| {
                while !stop.load(SeqCst) {
                    m.kmem_cache_shrink(cache);
                    m.drain_all_pages();
                }
                m.release_cpu();
            });
            let stopper = StopOnDrop(&stop);
            let workers: Vec<_> = (0..3)
                .map(|t| {
                    let m = &m;
                    s.spawn(move || {
                        let objs: Vec<usize> = (0..60)
                            .map(|_| m.kmem_cache_alloc(cache, GFP_KERNEL).expect("alloc").as_ptr() as usize)
                            .collect();
                        let pages: Vec<usize> = (0..20)
                            .map(|_| m.page_to_pfn(m.alloc_pages(GFP_KERNEL, 0).expect("page")).expect("pfn"))
                            .collect();
                        for p in objs {
                            // SAFETY: Ours, freed once.
                            unsafe { m.kmem_cache_free(cache, p as *mut u8) };
                        }
                        crate::free_pfns(m, pages);
                        if (round + t).is_multiple_of(2) {
                            m.release_cpu();
                        }
                    })
                })
                .collect();
            // Joined one by one: the scope's own wait may end before a thread's thread-local
            // destructors (which give its CPU slot back) have run.
            for w in workers {
                w.join().expect("worker");
            }
            drop(stopper);
            shrinker.join().expect("shrinker");
        });
        let info = m.cache_info(cache);
        assert_eq!(
            info.active_objs, 0,
            "round {round}: objects left in CPU arrays after every thread exited: {info:?}"
        );
        assert_eq!(crate::pcp_pages(&m), 0, "round {round}: pages left on per-CPU lists after every thread exited");
    }
    assert_all_back(&m, free0, "");
}

/// Caches made and destroyed on several threads while others read slabinfo and run reclaim
/// (walks over the cache list pin caches a destroy is tearing down).
#[test]
fn cache_create_destroy_while_walkers_pin_caches() {
    let m = crate::machine(Profile::X86_64, 64, 4, true);
    let free0 = accounted(&m);
    let stop = AtomicBool::new(false);
    let rounds = (crate::stress_iters() / 200).clamp(50, 500);
    thread::scope(|s| {
        let walker = s.spawn(|| {
            while !stop.load(SeqCst) {
                check_slabinfo(&m.slabinfo());
                check_meminfo(&m.meminfo());
                m.shrink_all(GFP_KERNEL);
                m.for_each_cache(|c| {
                    let _ = m.cache_info(c);
                });
            }
            m.release_cpu();
        });
        let stopper = StopOnDrop(&stop);
        let makers: Vec<_> = (0..2)
            .map(|t| {
                let m = &m;
                s.spawn(move || {
                    for i in 0..rounds {
                        let c = m
                            .kmem_cache_create(
                                &format!("cd-{t}-{i}"),
                                32 + 8 * (i % 50),
                                &CacheArgs::default(),
                                SLAB_NO_MERGE,
                            )
                            .expect("create");
                        let objs: Vec<usize> = (0..40)
                            .map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr() as usize)
                            .collect();
                        for p in objs {
                            // SAFETY: Ours, freed once.
                            unsafe { m.kmem_cache_free(c, p as *mut u8) };
                        }
                        // SAFETY: No object out, the handle is not used again.
                        unsafe { m.kmem_cache_destroy(c) }.expect("destroy of an empty cache");
                    }
                    m.release_cpu();
                })
            })
            .collect();
        for mk in makers {
            mk.join().expect("maker");
        }
        drop(stopper);
        walker.join().expect("walker");
    });
    m.release_cpu();
    let mut names = Vec::new();
    m.for_each_cache(|c| names.push(m.cache(c).unwrap().name().to_string()));
    assert!(!names.iter().any(|n| n.starts_with("cd-")), "destroyed caches still listed: {names:?}");
    assert_all_back(&m, free0, "");
    assert!(!m.dmesg().contains("BUG"), "{}", m.dmesg());
}

/// HighMem pages mapped with `kmap_local_page` and `kmap` on more threads than CPU slots (the
/// threads without a slot take persistent slots), written and read back through the mapping,
/// freed on other threads; every mapping is released and every page comes back.
#[test]
fn kmap_on_more_threads_than_cpu_slots() {
    let m = crate::builder(Profile::I386, 1024, 2, true).build().expect("machine");
    let free0 = accounted(&m);
    let shared = std::sync::Mutex::new(Vec::<usize>::new());
    let iters = (crate::stress_iters() / 50).max(200);
    thread::scope(|s| {
        let hs: Vec<_> = (0..6u64)
            .map(|t| {
                let (m, shared) = (&m, &shared);
                s.spawn(move || {
                    let mut rng = Rng(t * 31 + 5);
                    for i in 0..iters {
                        let page = m.alloc_pages(GFP_KERNEL | kmem::gfp::__GFP_HIGHMEM, 0).expect("highmem page");
                        let pfn = m.page_to_pfn(page).expect("pfn");
                        let stamp = (t << 48 | i as u64 | 1).to_le_bytes();
                        let local = rng.index(2) == 0;
                        let p = if local { m.kmap_local_page(page) } else { m.kmap(page) }.expect("mapping");
                        // SAFETY: The page is ours and mapped at `p` until the unmap below.
                        unsafe {
                            std::ptr::copy_nonoverlapping(stamp.as_ptr(), p.as_ptr().add(8), 8);
                            thread::yield_now();
                            let mut back = [0u8; 8];
                            std::ptr::copy_nonoverlapping(p.as_ptr().add(8), back.as_mut_ptr(), 8);
                            assert_eq!(back, stamp, "thread {t}: page {pfn:#x} mapping changed under us");
                            if local {
                                m.kunmap_local(p.as_ptr());
                            } else {
                                m.kunmap(page);
                            }
                        }
                        let mut sh = shared.lock().unwrap();
                        sh.push(pfn);
                        if sh.len() > 8 {
                            let j = rng.index(sh.len());
                            let other = sh.swap_remove(j);
                            drop(sh);
                            crate::free_pfns(m, [other]);
                        }
                    }
                    m.release_cpu();
                })
            })
            .collect();
        for h in hs {
            h.join().expect("worker");
        }
    });
    crate::free_pfns(&m, shared.into_inner().unwrap());
    m.release_cpu();
    assert_all_back(&m, free0, "");
    let log = m.dmesg();
    assert!(!log.contains("BUG"), "{log}");
}

/// An RCU-protected object: the head first, so the callback's pointer is the object's.
#[repr(C)]
struct Published {
    head: RcuHead,
    magic: std::sync::atomic::AtomicU64,
}

const LIVE: u64 = 0x11fe_11fe_11fe_11fe;
const FREED: u64 = 0xdead_dead_dead_dead;

unsafe extern "C" fn retire(head: *mut RcuHead) {
    let p = head.cast::<Published>();
    // SAFETY: `head` is the first field of a leaked `Published`, queued once by the updater.
    unsafe {
        (*p).magic.store(FREED, SeqCst);
        drop(Box::from_raw(p));
    }
}

/// The RCU promise across threads: a reader inside `rcu_read_lock` keeps seeing the object it
/// loaded, live, while an updater replaces it and queues its free with `call_rcu`, kswapd runs
/// callbacks, and another thread runs grace periods and barriers.
#[test]
fn call_rcu_never_frees_under_a_reader() {
    let m = crate::builder(Profile::X86_64, 32, 4, true).kswapd(true).build().expect("machine");
    let new = || {
        Box::into_raw(Box::new(Published {
            head: RcuHead { next: std::ptr::null_mut(), func: None },
            magic: LIVE.into(),
        }))
    };
    let current = std::sync::atomic::AtomicPtr::new(new());
    let stop = AtomicBool::new(false);
    let n = (crate::stress_iters() / 10).max(2000);
    thread::scope(|s| {
        let stopper = StopOnDrop(&stop);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (m, current, stop) = (&m, &current, &stop);
                s.spawn(move || {
                    while !stop.load(SeqCst) {
                        let _g = m.rcu_read_lock();
                        let p = current.load(SeqCst);
                        for _ in 0..20 {
                            // SAFETY: Loaded inside the read-side section: not freed before it ends.
                            let magic = unsafe { (*p).magic.load(SeqCst) };
                            assert_eq!(magic, LIVE, "object {p:p} freed under a reader");
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let syncer = s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(SeqCst) {
                if i.is_multiple_of(2) {
                    m.synchronize_rcu()
                } else {
                    m.rcu_barrier()
                }
                i += 1;
            }
        });
        for _ in 0..n {
            let old = current.swap(new(), SeqCst);
            // SAFETY: `old` is unpublished; its head is ours until `retire` runs.
            unsafe { m.call_rcu(NonNull::new(old).unwrap().cast(), retire) };
            thread::yield_now();
        }
        drop(stopper);
        for r in readers {
            r.join().expect("reader");
        }
        syncer.join().expect("syncer");
    });
    m.rcu_barrier();
    // SAFETY: Nobody else can see it now.
    drop(unsafe { Box::from_raw(current.load(SeqCst)) });
}

/// Many sleepers with nothing ever freed: each gives up once its `oom_timeout` is spent, none
/// hangs behind another at the OOM step, and memory is intact afterwards.
#[test]
fn many_sleepers_give_up_when_nothing_is_freed() {
    let m =
        crate::builder(Profile::X86_64, 32, 4, true).oom_timeout(Duration::from_millis(300)).build().expect("machine");
    let held = crate::exhaust(&m);
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        let sleepers: Vec<_> = (0..6u32)
            .map(|t| {
                let (m, done) = (&m, &done);
                s.spawn(move || {
                    let r = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, t % 4);
                    assert!(r.is_err(), "order {} succeeded with nothing free", t % 4);
                    done.fetch_add(1, SeqCst);
                })
            })
            .collect();
        wait_until("every sleeper gave up", || done.load(SeqCst) == 6);
        for t in sleepers {
            t.join().expect("sleeper");
        }
    });
    crate::free_pfns(&m, held);
    m.release_cpu();
    m.drain_all_pages();
    // SAFETY: Every other thread is gone.
    unsafe { m.check() };
}

/// `kfree_rcu` of every object of a cache, then `kmem_cache_destroy` on another thread while
/// a third runs grace periods (batches in flight on other threads): the destroy waits for the
/// queued objects (`kvfree_rcu_barrier`), so it never finds objects remaining.
#[test]
fn destroy_after_kfree_rcu_on_another_thread_finds_no_object() {
    let m = crate::builder(Profile::X86_64, 32, 4, true).kswapd(true).build().expect("machine");
    let stop = AtomicBool::new(false);
    let rounds = (crate::stress_iters() / 1000).clamp(20, 200);
    thread::scope(|s| {
        let stopper = StopOnDrop(&stop);
        let gp = s.spawn(|| {
            while !stop.load(SeqCst) {
                m.rcu_core();
                m.synchronize_rcu();
                m.shrink_all(GFP_KERNEL);
            }
            m.release_cpu();
        });
        for round in 0..rounds {
            let c = m
                .kmem_cache_create(&format!("rcu-destroy-{round}"), 64, &CacheArgs::default(), SLAB_NO_MERGE)
                .expect("create");
            let objs: Vec<usize> =
                (0..50).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr() as usize).collect();
            thread::scope(|s2| {
                let m = &m;
                s2.spawn(move || {
                    let _g = m.rcu_read_lock();
                    for p in objs {
                        // SAFETY: Ours, given up once.
                        unsafe { m.kfree_rcu(p as *const u8) };
                    }
                });
            });
            // SAFETY: Every object was given to kfree_rcu; the handle is not used again.
            let r = unsafe { m.kmem_cache_destroy(c) };
            assert!(r.is_ok(), "round {round}: destroy failed: {r:?}\n{}", m.dmesg());
        }
        drop(stopper);
        gp.join().expect("grace periods");
    });
    let log = m.dmesg();
    assert!(!log.contains("remaining") && !log.contains("BUG"), "{log}");
}
