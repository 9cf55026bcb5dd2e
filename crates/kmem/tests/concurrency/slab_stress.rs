//! Slab and kmalloc stress on several threads (`.ci/valgrind` runs every test whose path
//! contains `stress::`, these included). Every object carries an owner pattern at both ends,
//! written at allocation and verified before its free, so an object handed to two owners or
//! overwritten by a neighbour is caught. Afterwards every object is freed, every thread has
//! exited (thread exit flushes its per-CPU arrays), and each cache shrinks to no slab at all
//! (SL-13) with every page back.
//!
//! `KMEM_STRESS_ITERS` scales the iterations, as in `stress.rs` (`.ci/valgrind` lowers it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use kmem::Machine;
use kmem::gfp::{GFP_ATOMIC, GFP_KERNEL, Gfp};
use kmem::slab::flags::{SLAB_NO_MERGE, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef};

use crate::{Rng, stress_iters, stress_machine};

/// Objects a thread keeps at most.
const MAX_LIVE: usize = 256;

/// Iterations per thread: an eighth of `KMEM_STRESS_ITERS` (objects are cheaper than pages,
/// and it keeps these tests to about a tenth of the `.ci/valgrind` run).
fn iters() -> usize {
    (stress_iters() / 8).max(100)
}

/// A live object: address, length, the owner byte written into it, and its cache (None:
/// kmalloc).
#[derive(Clone, Copy)]
struct Obj {
    addr: usize,
    len: usize,
    owner: u8,
    cache: Option<CacheRef>,
}

/// The pattern: the address (8 bytes) and the owner byte at the start, the owner byte at the
/// end; objects shorter than 16 bytes are filled with the owner byte.
fn pattern(o: Obj) -> (Vec<u8>, usize) {
    if o.len < 16 {
        return (vec![o.owner; o.len], 0);
    }
    let mut head = vec![o.owner; 9];
    head[..8].copy_from_slice(&(o.addr as u64).to_le_bytes());
    (head, o.len - 1)
}

fn at(addr: usize) -> std::ptr::NonNull<u8> {
    std::ptr::NonNull::new(addr as *mut u8).expect("object")
}

fn stamp(m: &Machine, o: Obj) {
    let (head, last) = pattern(o);
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.write_bytes(at(o.addr), &head) }.expect("object in allocated pages");
    if last != 0 {
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(at(o.addr + last), &[o.owner]) }.expect("object in allocated pages");
    }
}

fn verify(m: &Machine, o: Obj) {
    let (want, last) = pattern(o);
    let mut got = vec![0; want.len()];
    // SAFETY: The test's own allocation, used by nothing else meanwhile.
    unsafe { m.read_bytes(at(o.addr), &mut got) }.expect("live object readable");
    assert_eq!(got, want, "object {:#x} (owner {}) was overwritten", o.addr, o.owner);
    if last != 0 {
        let mut b = [0u8];
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.read_bytes(at(o.addr + last), &mut b) }.expect("live object readable");
        assert_eq!(b[0], o.owner, "last byte of object {:#x} was overwritten", o.addr);
    }
}

fn alloc(m: &Machine, cache: Option<CacheRef>, len: usize, owner: u8, gfp: Gfp) -> Obj {
    let p = match cache {
        Some(c) => m.kmem_cache_alloc(c, gfp),
        None => m.kmalloc(len, gfp),
    }
    .expect("allocation");
    let o = Obj { addr: p.as_ptr() as usize, len, owner, cache };
    stamp(m, o);
    o
}

fn free(m: &Machine, o: Obj) {
    verify(m, o);
    // SAFETY: Each `Obj` is owned by exactly one thread and freed once; nobody uses it after.
    unsafe {
        match o.cache {
            Some(c) => m.kmem_cache_free(c, o.addr as *mut u8),
            None => m.kfree(o.addr as *const u8),
        }
    }
}

/// A random kmalloc size: mostly small, sometimes up to a page, rarely large (page-backed).
fn kmalloc_len(rng: &mut Rng) -> usize {
    match rng.index(100) {
        0..=69 => 1 + rng.index(256),
        70..=97 => 1 + rng.index(4096),
        _ => 4097 + rng.index(12_000),
    }
}

/// After every thread is gone: every cache in `caches` (and every kmalloc cache) shrinks to
/// nothing and the machine has every page back.
fn assert_all_back(m: &Machine, free0: usize, caches: &[CacheRef]) {
    crate::shrink_every_cache(m, caches);
    m.drain_all_pages();
    assert_eq!(m.total_free() + m.slab_pages().1, free0, "every slab page back");
}

type Handoff = SyncSender<Obj>;

/// Counts a finished thread when dropped (also while unwinding).
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Churn: alloc with `next` random objects, free random ones, hand some to the next thread.
fn churn(m: &Machine, me: u8, iters: usize, caches: &[CacheRef], next: &Handoff, inbox: &Receiver<Obj>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(me) << 32 | 1);
    let mut live: Vec<Obj> = Vec::new();
    for _ in 0..iters {
        while let Ok(o) = inbox.try_recv() {
            free(m, o);
        }
        if live.len() < MAX_LIVE && rng.index(2) == 0 {
            let o = match rng.index(caches.len() + 1) {
                0 => alloc(m, None, kmalloc_len(&mut rng), me, GFP_KERNEL),
                i => {
                    let c = caches[i - 1];
                    alloc(
                        m,
                        Some(c),
                        m.cache(c).unwrap().object_size(),
                        me,
                        if rng.index(4) == 0 { GFP_ATOMIC } else { GFP_KERNEL },
                    )
                }
            };
            live.push(o);
        } else if !live.is_empty() {
            let o = live.swap_remove(rng.index(live.len()));
            if rng.index(3) == 0 {
                match next.try_send(o) {
                    Ok(()) => continue,
                    Err(TrySendError::Full(o) | TrySendError::Disconnected(o)) => free(m, o),
                }
            } else {
                free(m, o);
            }
        }
    }
    for o in live {
        free(m, o);
    }
}

/// Runs `churn` on `threads` threads in a ring (thread i hands objects to thread i + 1); each
/// thread frees what is left in its inbox after everyone is done, then gives its CPU slot
/// back (as its exit would; explicit, so it has happened when `ring` returns).
fn ring(m: &Machine, threads: usize, caches: &[CacheRef]) {
    let iters = iters();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::sync_channel::<Obj>(64)).unzip();
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        for (i, rx) in rxs.into_iter().enumerate() {
            let next = txs[(i + 1) % threads].clone();
            let done = &done;
            s.spawn(move || {
                {
                    // Counted even if `churn` panics, so the others stop waiting and the
                    // test reports the panic instead of hanging.
                    let _finished = Finished(done);
                    churn(m, i as u8 + 1, iters, caches, &next, &rx);
                }
                drop(next);
                crate::wait_until("every ring thread finished", || done.load(Ordering::SeqCst) == threads);
                for o in rx.try_iter() {
                    free(m, o);
                }
                m.release_cpu();
            });
        }
        drop(txs);
    });
}

#[test]
fn kmalloc_and_cache_churn_with_cross_thread_frees() {
    let m = stress_machine(8);
    let free0 = m.total_free();
    let caches: Vec<CacheRef> = [40, 192, 1000]
        .iter()
        .map(|&size| {
            m.kmem_cache_create(&format!("churn-{size}"), size, &CacheArgs::default(), SLAB_NO_MERGE).expect("create")
        })
        .collect();
    ring(&m, 4, &caches);
    assert_all_back(&m, free0, &caches);
}

#[test]
fn producer_consumer_cross_thread_frees() {
    let m = stress_machine(8);
    let free0 = m.total_free();
    let c = m.kmem_cache_create("prodcons", 96, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    let n = iters();
    thread::scope(|s| {
        for pair in 0..2u8 {
            let (tx, rx) = mpsc::sync_channel::<Obj>(256);
            let m = &m;
            s.spawn(move || {
                for i in 0..n {
                    let o = if i % 4 == 0 {
                        alloc(m, None, 1 + i % 500, pair + 1, GFP_KERNEL)
                    } else {
                        alloc(m, Some(c), 96, pair + 1, GFP_KERNEL)
                    };
                    tx.send(o).expect("consumer alive");
                }
                m.release_cpu();
            });
            s.spawn(move || {
                for o in rx {
                    free(m, o);
                }
                m.release_cpu();
            });
        }
    });
    assert_all_back(&m, free0, &[c]);
}

#[test]
fn thread_exit_flushes_parked_objects_then_shrink_returns_zero() {
    let m = stress_machine(8);
    let free0 = m.total_free();
    let c = m.kmem_cache_create("parked", 128, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    let rounds = (iters() / 500).clamp(2, 40);
    for round in 0..rounds {
        let kept: Vec<Obj> = thread::scope(|s| {
            let handles: Vec<_> = (0..4u8)
                .map(|t| {
                    let m = &m;
                    s.spawn(move || {
                        let objs: Vec<Obj> = (0..100).map(|_| alloc(m, Some(c), 128, t + 1, GFP_KERNEL)).collect();
                        let (keep, park) = objs.split_at(10 + round % 7);
                        for &o in park {
                            free(m, o); // Parked in this thread's CPU array.
                        }
                        keep.to_vec() // The thread exits with `park` in its array.
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("worker")).collect()
        });
        // Every worker exited: their arrays are flushed, only the kept objects are active.
        assert_eq!(m.cache_info(c).active_objs, kept.len(), "round {round}");
        for o in kept {
            free(&m, o);
        }
        m.release_cpu();
        assert_eq!(m.cache_info(c).active_objs, 0);
        assert_eq!(m.kmem_cache_shrink(c), 0, "round {round}");
    }
    assert_all_back(&m, free0, &[c]);
}

#[test]
fn concurrent_shrink_and_reclaim_while_allocating() {
    let m = stress_machine(8);
    let free0 = m.total_free();
    let caches: Vec<CacheRef> = [24, 300]
        .iter()
        .map(|&size| m.kmem_cache_create(&format!("shrinking-{size}"), size, &CacheArgs::default(), SLAB_NO_MERGE))
        .map(|c| c.expect("create"))
        .collect();
    let stop = AtomicBool::new(false);
    let passes = AtomicUsize::new(0);
    thread::scope(|s| {
        let shrinker = s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                for &c in &caches {
                    m.kmem_cache_shrink(c);
                }
                m.shrink_all(GFP_KERNEL);
                passes.fetch_add(1, Ordering::SeqCst);
                thread::yield_now();
            }
            m.release_cpu();
        });
        // Stop the shrinker even if a worker panics (else the scope would wait for it forever).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let stopper = StopOnDrop(&stop);
        ring(&m, 2, &caches);
        drop(stopper);
        shrinker.join().expect("shrinker");
    });
    assert!(passes.load(Ordering::SeqCst) > 0);
    assert_all_back(&m, free0, &caches);
}

/// Threads racing to make the same kmalloc class on first use: one cache is published and
/// every thread's block comes from it; the losers destroy their own, still empty, cache
/// (`kmalloc_cache_create`'s compare-and-swap). Repeated on fresh machines, every class.
#[test]
fn stress_first_kmallocs_racing_on_one_class_publish_one_cache() {
    const THREADS: usize = 4;
    let sizes = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
    for round in 0..(iters() / 100).clamp(2, 20) {
        let m = crate::machine(kmem::Profile::X86_64, 64, THREADS, true);
        let barrier = std::sync::Barrier::new(THREADS);
        let blocks: Vec<Vec<usize>> = thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        sizes
                            .iter()
                            .map(|&size| {
                                barrier.wait();
                                m.kmalloc(size, GFP_KERNEL).expect("kmalloc").as_ptr() as usize
                            })
                            .collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("worker")).collect()
        });
        let info = m.slabinfo();
        for (i, &size) in sizes.iter().enumerate() {
            let name = if size >= 1024 { format!("kmalloc-{}k ", size / 1024) } else { format!("kmalloc-{size} ") };
            assert_eq!(info.lines().filter(|l| l.starts_with(&name)).count(), 1, "round {round}: one {name}\n{info}");
            let cache = m.kmalloc_cache(size, GFP_KERNEL).expect("published");
            let c = m.cache_info(cache);
            assert_eq!(
                c.alloc_fast + c.alloc_slow,
                THREADS as u64,
                "round {round}: every kmalloc({size}) from the published cache"
            );
            for thread in &blocks {
                // SAFETY: Blocks the test holds until after this check.
                assert_eq!(unsafe { m.kmalloc_usable_size(thread[i] as *const u8) }, Some(size), "round {round}");
            }
        }
        assert!(!m.dmesg().contains("still has objects"), "round {round}: a loser's cache was empty\n{}", m.dmesg());
        for thread in blocks {
            for addr in thread {
                // SAFETY: Each block once, unused.
                unsafe { m.kfree(addr as *const u8) };
            }
        }
    }
}

/// The same race, each first kmalloc `GFP_ATOMIC` inside `rcu_read_lock` (allowed in the
/// kernel): a creator that loses the race must not wait for a grace period — its own read
/// section would hold it up for ever. (The loser's cache went through `kmem_cache_destroy`,
/// whose `rcu_barrier` hung here on every run; it is now discarded with a plain free.)
#[test]
fn stress_first_kmallocs_racing_inside_rcu_read_sections_do_not_wait_for_a_grace_period() {
    const THREADS: usize = 4;
    let sizes = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
    let rounds = (iters() / 100).clamp(2, 20);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..rounds {
            let m = crate::machine(kmem::Profile::X86_64, 64, THREADS, true);
            let barrier = std::sync::Barrier::new(THREADS);
            thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        for &size in &sizes {
                            barrier.wait();
                            let guard = m.rcu_read_lock();
                            let p = m.kmalloc(size, GFP_ATOMIC).expect("kmalloc");
                            drop(guard);
                            // SAFETY: Just allocated, unused, freed once.
                            unsafe { m.kfree(p.as_ptr()) };
                        }
                    });
                }
            });
        }
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("first kmallocs under rcu_read_lock hung: a losing creator waited for a grace period");
}

/// Prefilled sheaves (6.18's API) under load: two threads prefill sheaves of random sizes
/// (oversize ones too), take objects from them, stamp them and hand some to the other thread
/// to free, and return the sheaves with masks that may or may not refill; a third thread
/// shrinks the cache (emptying its barn) and runs reclaim meanwhile. Every object is verified
/// before its free, and at the end everything is back.
#[test]
fn stress_sheaves_prefill_and_return_while_the_barn_is_shrunk() {
    let m = stress_machine(4);
    let free0 = m.total_free();
    let args = CacheArgs { sheaf_capacity: 12, ..CacheArgs::default() };
    let c = m.kmem_cache_create("sheaf-stress", 72, &args, SlabFlags::empty()).expect("create");
    let stop = AtomicBool::new(false);
    let rounds = (iters() / 8).max(50);
    thread::scope(|s| {
        let shrinker = s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                m.kmem_cache_shrink(c);
                m.shrink_all(GFP_KERNEL);
                thread::yield_now();
            }
            m.release_cpu();
        });
        let (tx0, rx0) = mpsc::sync_channel::<Obj>(64);
        let (tx1, rx1) = mpsc::sync_channel::<Obj>(64);
        let workers: Vec<_> = [(1u8, tx1, rx0), (2u8, tx0, rx1)]
            .into_iter()
            .map(|(me, to_other, inbox)| {
                let m = &m;
                s.spawn(move || {
                    let mut rng = Rng(u64::from(me) * 7919);
                    let mut live: Vec<Obj> = Vec::new();
                    for _ in 0..rounds {
                        let want = 1 + rng.index(20) as u32;
                        let mut sheaf = m.prefill_sheaf(c, GFP_KERNEL, want).expect("prefill never fails here");
                        assert!(sheaf.size() >= want);
                        for _ in 0..rng.index(want as usize + 1) {
                            let p = sheaf.alloc(GFP_ATOMIC).expect("a prefilled object");
                            let o = Obj { addr: p.as_ptr() as usize, len: 72, owner: me, cache: Some(c) };
                            stamp(m, o);
                            live.push(o);
                        }
                        if rng.index(4) == 0 {
                            sheaf.give_back(GFP_KERNEL);
                        } else {
                            drop(sheaf); // GFP_NOWAIT
                        }
                        while live.len() > 32 {
                            let o = live.swap_remove(rng.index(live.len()));
                            if let Err(TrySendError::Full(o)) = to_other.try_send(o) {
                                free(m, o);
                            }
                        }
                        while let Ok(o) = inbox.try_recv() {
                            free(m, o);
                        }
                    }
                    drop(to_other);
                    for o in live.drain(..).chain(inbox.iter()) {
                        free(m, o);
                    }
                    m.release_cpu();
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        stop.store(true, Ordering::SeqCst);
        shrinker.join().expect("shrinker");
    });
    // `assert_all_back`'s shrink empties the barn too.
    assert_all_back(&m, free0, &[c]);
}
