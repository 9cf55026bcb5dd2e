//! Workloads for `kmem stat --workload` and `kmem top --workload`.
#![allow(unsafe_code)] // kfree of the workload's own kmalloc objects.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use clap::ValueEnum;
use kmem::Machine;
use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem::slab::CacheRef;

/// What to run before printing a `/proc` text.
#[derive(Clone, Copy, ValueEnum)]
pub enum Workload {
    /// Nothing: the fresh machine.
    None,
    /// The demo's examples.
    Demo,
    /// Allocate 4096 order-0 pages and free every other one: fragmented free lists.
    Fragment,
    /// Take every page with GFP_ATOMIC, then free them all: buddyinfo returns to the start.
    Exhaust,
    /// kmalloc 10,000 objects of sizes 1..=8192, log-uniform (fixed seed), and free every other one; fill a
    /// `kmem_demo` cache of 200-byte objects with 1,000 objects: slabinfo has something to show.
    Slab,
    /// vmalloc areas of 1..=8 pages, then vfree every other one: live and unpurged areas.
    Vmalloc,
    /// Two threads allocate and free kmalloc objects of 5..=4096 bytes and `kmem_churn` cache
    /// objects, their working sets rising and falling; `stat` shows the state after each
    /// thread's first 10,000 operations, `top` keeps them running.
    Churn,
}

/// A workload started for `kmem top`: the threads that go on until the stop flag is set.
pub struct Started<'scope> {
    threads: Vec<ScopedJoinHandle<'scope, Result<(), String>>>,
}

impl Started<'_> {
    /// Whether a thread has ended (before the stop flag was set, one that failed).
    pub fn any_ended(&self) -> bool {
        self.threads.iter().any(ScopedJoinHandle::is_finished)
    }

    /// Waits for the threads (after the stop flag was set); the first failure, if any.
    pub fn join(self) -> Result<(), String> {
        let mut result = Ok(());
        for t in self.threads {
            let r = t.join().unwrap_or_else(|_| Err("a workload thread panicked".to_owned()));
            result = result.and(r);
        }
        result
    }
}

impl Workload {
    /// Runs the workload on `m`.
    pub fn run(self, m: &Machine) -> Result<(), String> {
        match self {
            Workload::None => Ok(()),
            Workload::Demo => crate::demo::run(m, None).error.map_or(Ok(()), Err),
            Workload::Fragment => {
                let pages: Vec<_> = (0..4096).map_while(|_| m.alloc_pages(GFP_KERNEL, 0).ok()).collect();
                for page in pages.iter().step_by(2) {
                    // SAFETY: The demo's own memory, freed once and unused afterwards.
                    unsafe { m.free_pages(page, 0) };
                }
                // The freed pages sit on the per-CPU lists, which buddyinfo does not count:
                // drain them (`drain_all_pages`) so the fragmentation shows.
                m.drain_all_pages();
                eprintln!("workload fragment: allocated {} pages, freed every other one", pages.len());
                Ok(())
            }
            Workload::Slab => slab(m),
            Workload::Churn => {
                let stop = AtomicBool::new(true); // Only the first round.
                std::thread::scope(|scope| start_churn(m, scope, &stop, true)?.join())?;
                eprintln!("workload churn: {CHURN_THREADS} threads, {CHURN_ROUND} operations each");
                Ok(())
            }
            Workload::Exhaust => {
                let mut held = Vec::new();
                for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
                    while let Ok(page) = m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order) {
                        held.push((page, order));
                    }
                }
                let pages: usize = held.iter().map(|&(_, order)| 1usize << order).sum();
                eprintln!("workload exhaust: took {pages} pages in {} blocks, freed them all", held.len());
                for (page, order) in held {
                    // SAFETY: The demo's own memory, freed once and unused afterwards.
                    unsafe { m.free_pages(page, order) };
                }
                m.drain_local_pages();
                Ok(())
            }
            Workload::Vmalloc => {
                let mut areas = Vec::new();
                for pages in 1..=8 {
                    areas.push(m.vmalloc(pages * kmem::PAGE_SIZE).map_err(|e| format!("vmalloc: {e}"))?);
                }
                for p in areas.iter().skip(1).step_by(2) {
                    // SAFETY: The demo's own memory, freed once and unused afterwards.
                    unsafe { m.vfree(p.as_ptr()) };
                }
                eprintln!("workload vmalloc: {} areas, freed every other one (lazily)", areas.len());
                Ok(())
            }
        }
    }

    /// Starts the workload for `kmem top`: runs it to its end, or (`churn`) until each thread
    /// made its first round, leaving its threads running in `scope` until `stop` is set.
    pub fn start<'scope, 'env>(
        self,
        m: &'env Machine,
        scope: &'scope Scope<'scope, 'env>,
        stop: &'env AtomicBool,
    ) -> Result<Started<'scope>, String> {
        if !matches!(self, Workload::Churn) {
            self.run(m)?;
            return Ok(Started { threads: Vec::new() });
        }
        start_churn(m, scope, stop, false)
    }
}

/// Starts `churn`'s threads in `scope` and returns when each made its first round; they
/// stop once `stop` is set (not before their first round), and free what they hold unless
/// `keep` (for `stat`, which shows it).
fn start_churn<'scope, 'env>(
    m: &'env Machine,
    scope: &'scope Scope<'scope, 'env>,
    stop: &'env AtomicBool,
    keep: bool,
) -> Result<Started<'scope>, String> {
    use kmem::slab::{CacheArgs, flags::SlabFlags};
    let cache = m
        .kmem_cache_create("kmem_churn", 312, &CacheArgs::default(), SlabFlags::empty())
        .map_err(|e| format!("kmem_cache_create: {e}"))?;
    let (first_round, rounds) = mpsc::channel();
    let threads = (0..CHURN_THREADS)
        .map(|i| {
            let first_round = first_round.clone();
            let seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1);
            scope.spawn(move || churn(m, cache, seed, stop, keep, first_round))
        })
        .collect();
    // Only the threads hold a sender now, each until its first round is reported: one that
    // panics before then closes the channel rather than leaving `recv` waiting for ever.
    drop(first_round);
    let started = Started { threads };
    for _ in 0..CHURN_THREADS {
        // A thread that failed in its first round says so here (and ends).
        if let Ok(Err(e)) | Err(e) = rounds.recv().map_err(|e| e.to_string()) {
            stop.store(true, Relaxed);
            // A panic closed the channel: the join says so.
            return Err(started.join().err().unwrap_or(e));
        }
    }
    Ok(started)
}

/// `churn`'s threads, and the operations each makes before the first frame.
const CHURN_THREADS: usize = 2;
const CHURN_ROUND: u64 = 10_000;

/// One `churn` thread: allocates while its working set is below a target that rises and falls
/// (from 0 to 4096 objects and back over 200,000 operations), frees a random object while it
/// is above; a quarter of the objects are `kmem_churn` objects, the rest kmalloc objects of
/// 5..=4096 bytes (a power of two from 8 to 4096 drawn uniformly, less up to half of it).
/// Says on `first_round` when its first round is done (or failed), stops once `stop` is set
/// (not before its first round), and frees what it holds unless `keep`.
fn churn(
    m: &Machine,
    cache: CacheRef,
    seed: u64,
    stop: &AtomicBool,
    keep: bool,
    first_round: mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut held: Vec<Object> = Vec::new();
    let mut result = Ok(());
    let mut first_round = Some(first_round);
    for op in 0u64.. {
        if op % CHURN_ROUND == 0 && op > 0 {
            if let Some(first_round) = first_round.take() {
                let _ = first_round.send(Ok(()));
            }
            if stop.load(Relaxed) {
                break;
            }
        }
        if op % 16 == 0 && op > CHURN_ROUND {
            // Checked here too, not only after a round (625 ms at this pace): `top` ends at once.
            if stop.load(Relaxed) {
                break;
            }
            // A live view needs no full speed: at most 16,000 operations a second, so a
            // working set takes 12 s or more to rise and fall.
            std::thread::sleep(Duration::from_millis(1));
        }
        let phase = op % 200_000;
        let target = (phase.min(200_000 - phase) * 4096 / 100_000) as usize;
        if held.len() < target {
            let r = next();
            let object = if r % 4 == 0 {
                m.kmem_cache_alloc(cache, GFP_KERNEL).map(Object::Cache).map_err(|e| format!("kmem_cache_alloc: {e}"))
            } else {
                let size = 8usize << ((r >> 8) % 10);
                let size = size - (r >> 20) as usize % (size / 2);
                m.kmalloc(size, GFP_KERNEL).map(Object::Kmalloc).map_err(|e| format!("kmalloc({size}): {e}"))
            };
            match object {
                Ok(o) => held.push(o),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        } else if !held.is_empty() {
            let object = held.swap_remove((next() % held.len() as u64) as usize);
            free_object(m, cache, object);
        }
    }
    if let Some(first_round) = first_round {
        let _ = first_round.send(result.clone());
    }
    if !keep {
        for object in held {
            free_object(m, cache, object);
        }
    }
    result
}

/// An object a `churn` thread holds.
enum Object {
    Kmalloc(std::ptr::NonNull<u8>),
    Cache(std::ptr::NonNull<u8>),
}

fn free_object(m: &Machine, cache: CacheRef, object: Object) {
    match object {
        // SAFETY: The thread's own kmalloc object, freed once.
        Object::Kmalloc(p) => unsafe { m.kfree(p.as_ptr()) },
        // SAFETY: The thread's own object of `cache`, which outlives the workload, freed once.
        Object::Cache(p) => unsafe { m.kmem_cache_free(cache, p.as_ptr()) },
    }
}

/// The `slab` workload. The objects stay allocated when it returns (that is what it shows).
fn slab(m: &Machine) -> Result<(), String> {
    use kmem::slab::{CacheArgs, flags::SlabFlags};
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut held = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Log-uniform: each power-of-two band up to 8 KiB is as likely as the others.
        let size = 1 + (x % (8 << ((x >> 40) % 11))) as usize;
        held.push(m.kmalloc(size, GFP_KERNEL).map_err(|e| format!("kmalloc({size}): {e}"))?);
    }
    for p in held.iter().step_by(2) {
        // SAFETY: Each pointer came from kmalloc above and is freed once.
        unsafe { m.kfree(p.as_ptr()) };
    }
    let cache = m
        .kmem_cache_create("kmem_demo", 200, &CacheArgs::default(), SlabFlags::empty())
        .map_err(|e| format!("kmem_cache_create: {e}"))?;
    for _ in 0..1000 {
        m.kmem_cache_alloc(cache, GFP_KERNEL).map_err(|e| format!("kmem_cache_alloc: {e}"))?;
    }
    eprintln!("workload slab: 10000 kmallocs (5000 freed), 1000 kmem_demo objects");
    Ok(())
}
