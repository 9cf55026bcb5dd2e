//! The slab workloads (BENCHMARKS.md), 64-byte objects unless noted:
//! - `hot64`: with [`LIVE`] objects held, alloc+free one object, again and again (ns per pair);
//! - `hot64-2T`: the same on two threads at once, each with its own live objects (ns per pair
//!   per thread: the slower thread's time over its pairs);
//! - `kN`, N every kmalloc class: the hot pair at size N (the size is opaque to the compiler,
//!   as a runtime size is);
//! - `batch64 alloc` / `batch64 free`: [`BATCH_OBJECTS`] allocs, then as many frees in allocation
//!   order, timed separately (ns per operation);
//! - `churn`: [`CHURN_LIVE`] live objects of random sizes 8..=4096; each operation frees a
//!   random one and allocates a new random size in its place (ns per free+alloc), sizes and
//!   indices from xorshift64 with a fixed seed;
//! - `prodcons`: one thread allocates, the other frees; objects travel in batches of
//!   [`PRODCONS_BATCH`] through a spinning single-producer ring (ns per object, wall time).
//!
//! Every contender is a [`Bench`] over an [`ObjAlloc`], so the timed loops are monomorphised per
//! allocator and identical in shape for kmem, the peers and the floors.

use std::cell::UnsafeCell;
use std::hint::black_box;
use std::io::IsTerminal;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{self, Config, Results, Role};

/// Objects each hot loop keeps allocated, so no allocator runs on an empty structure.
pub const LIVE: usize = 61;
/// Objects per `batch64` batch.
pub const BATCH_OBJECTS: usize = 1_000_000;
/// Live objects in `churn`.
pub const CHURN_LIVE: usize = 10_000;
/// Smallest and largest `churn` size.
pub const CHURN_SIZES: (usize, usize) = (8, 4096);
/// The fixed xorshift64 seed of `churn`.
pub const CHURN_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// Objects per batch sent from producer to consumer in `prodcons`.
pub const PRODCONS_BATCH: usize = 64;
/// Batches in flight at most in `prodcons` (the ring's size).
const RING: usize = 4;

/// A pointer that may cross threads: the workloads send objects, never share their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ptr(pub NonNull<u8>);

// SAFETY: a `Ptr` is an object handle; the thread holding it is the only user of the object.
unsafe impl Send for Ptr {}

/// An object allocator reduced to what these workloads call. `&self` so that thread-safe
/// allocators can be shared by two threads; single-threaded ones keep their state in cells and
/// are not `Sync`.
pub trait ObjAlloc {
    /// What an allocation hands back: a pointer, a key, or a guard that gives the object back
    /// when dropped.
    type Obj;

    /// An object of at least `size` bytes; `None` when out of memory.
    fn alloc(&self, size: usize) -> Option<Self::Obj>;

    /// Frees an object.
    ///
    /// # Safety
    /// `obj` came from `self.alloc(size)` with this same `size` and has not been freed since.
    unsafe fn free(&self, obj: Self::Obj, size: usize);
}

impl<T: ObjAlloc + ?Sized> ObjAlloc for &T {
    type Obj = T::Obj;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<T::Obj> {
        (**self).alloc(size)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: T::Obj, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { (**self).free(obj, size) }
    }
}

/// No one-thread allocator: the state of contenders that make theirs per two-thread run
/// ([`Bench::with_threads`]).
impl ObjAlloc for () {
    type Obj = Ptr;

    fn alloc(&self, _size: usize) -> Option<Ptr> {
        None
    }

    unsafe fn free(&self, _obj: Ptr, _size: usize) {}
}

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// `hot64`.
    Hot64,
    /// `hot64-2T`.
    Hot64x2,
    /// `kN` at this size.
    K(usize),
    /// `batch64 alloc` and `batch64 free`.
    Batch64,
    /// `churn`.
    Churn,
    /// `prodcons`.
    ProdCons,
}

/// Which workloads a contender serves (bit set over [`Work::kind`]).
pub type Serves = u8;
/// `hot64`: fixed 64-byte objects, one thread.
pub const HOT64: Serves = 1;
/// `batch64`: fixed 64-byte objects, one thread.
pub const BATCH64: Serves = 2;
/// `hot64` and `batch64`.
pub const FIXED: Serves = HOT64 | BATCH64;
/// `kN` and `churn`: any size, one thread.
pub const SIZED: Serves = 4;
/// `hot64-2T` and `prodcons`: fixed 64-byte objects, two threads.
pub const THREADS: Serves = 8;

impl Work {
    fn kind(self) -> Serves {
        match self {
            Work::Hot64 => HOT64,
            Work::Batch64 => BATCH64,
            Work::K(_) | Work::Churn => SIZED,
            Work::Hot64x2 | Work::ProdCons => THREADS,
        }
    }

    /// The table rows this workload fills.
    fn rows(self) -> Vec<String> {
        match self {
            Work::Hot64 => vec!["hot64".to_owned()],
            Work::Hot64x2 => vec!["hot64-2T".to_owned()],
            Work::K(n) => vec![format!("k{n}")],
            Work::Batch64 => vec!["batch64 alloc".to_owned(), "batch64 free".to_owned()],
            Work::Churn => vec!["churn".to_owned()],
            Work::ProdCons => vec!["prodcons".to_owned()],
        }
    }

    /// Operations in one unit of calibrated work (a batch is [`BATCH_OBJECTS`] operations of each kind).
    fn ops_per_unit(self) -> u64 {
        match self {
            Work::Batch64 => BATCH_OBJECTS as u64,
            Work::ProdCons => PRODCONS_BATCH as u64,
            _ => 1,
        }
    }
}

/// One contender as the driver sees it.
pub trait Contender {
    /// The row label.
    fn name(&self) -> &str;
    /// kmem, a peer or a floor.
    fn role(&self) -> Role;
    /// Whether this contender has a row in `work`.
    fn applies(&self, work: Work) -> bool;
    /// Runs `warm` untimed units of `work`, then `units` timed ones; returns the time (for
    /// `batch64`, alloc and free time; otherwise the second is zero). `None` on failure.
    fn run(&mut self, work: Work, warm: u64, units: u64) -> Option<(Duration, Duration)>;
}

/// Runs a two-thread workload over a contender: `(alloc, work, warm, units)`.
pub type ThreadRun<A> = fn(&A, Work, u64, u64) -> Option<Duration>;

/// An [`ObjAlloc`] with the buffers its workloads need, kept across samples.
pub struct Bench<A: ObjAlloc> {
    name: String,
    role: Role,
    serves: Serves,
    alloc: A,
    threads: Option<ThreadRun<A>>,
    live: Vec<A::Obj>,
    batch: Vec<A::Obj>,
    churn: Vec<(A::Obj, usize)>,
}

impl<A: ObjAlloc> Bench<A> {
    /// A one-thread contender (`serves` must not include [`THREADS`]).
    pub fn new(name: &str, role: Role, serves: Serves, alloc: A) -> Self {
        Self {
            name: name.to_owned(),
            role,
            serves: serves & !THREADS,
            alloc,
            threads: None,
            live: Vec::with_capacity(LIVE),
            batch: Vec::new(),
            churn: Vec::new(),
        }
    }

    /// A contender that two threads share through `&A`.
    pub fn shared(name: &str, role: Role, serves: Serves, alloc: A) -> Self
    where
        A: Sync,
        A::Obj: Send,
    {
        Self { serves, threads: Some(shared_threads::<A>), ..Self::new(name, role, serves, alloc) }
    }

    /// A contender whose two-thread runs are `threads` (the floor makes one list per thread).
    pub fn with_threads(name: &str, role: Role, serves: Serves, alloc: A, threads: ThreadRun<A>) -> Self {
        Self { serves, threads: Some(threads), ..Self::new(name, role, serves, alloc) }
    }

    fn hot(&mut self, size: usize, warm: u64, iters: u64) -> Option<Duration> {
        while self.live.len() < LIVE {
            let Some(o) = self.alloc.alloc(size) else { break };
            self.live.push(o);
        }
        let mut result = None;
        if self.live.len() == LIVE && hot_pairs(&self.alloc, size, warm) {
            result = harness::time(|| hot_pairs(&self.alloc, size, iters).then_some(()));
        }
        for o in self.live.drain(..) {
            // SAFETY: each live object came from `alloc(size)` and is drained once.
            unsafe { self.alloc.free(o, size) };
        }
        result
    }

    /// One batch: [`BATCH_OBJECTS`] allocs, then the frees; (alloc, free) time.
    fn batch_once(&mut self) -> Option<(Duration, Duration)> {
        if self.batch.capacity() < BATCH_OBJECTS {
            self.batch = Vec::with_capacity(BATCH_OBJECTS);
            // Touch the buffer now so its page faults are not timed.
            for slot in self.batch.spare_capacity_mut() {
                *slot = MaybeUninit::zeroed();
            }
        }
        let t0 = Instant::now();
        let ok = fill(&self.alloc, &mut self.batch);
        let t1 = Instant::now();
        drain(&self.alloc, &mut self.batch);
        let t2 = Instant::now();
        ok.then_some((t1 - t0, t2 - t1))
    }

    fn churn(&mut self, warm: u64, iters: u64) -> Option<Duration> {
        let mut rng = XorShift::churn();
        let mut result = None;
        if churn_fill(&self.alloc, &mut self.churn, &mut rng) && churn_ops(&self.alloc, &mut self.churn, &mut rng, warm)
        {
            result = harness::time(|| churn_ops(&self.alloc, &mut self.churn, &mut rng, iters).then_some(()));
        }
        churn_free(&self.alloc, &mut self.churn);
        result
    }
}

impl<A: ObjAlloc> Contender for Bench<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn role(&self) -> Role {
        self.role
    }

    fn applies(&self, work: Work) -> bool {
        self.serves & work.kind() != 0 && (work.kind() != THREADS || self.threads.is_some())
    }

    fn run(&mut self, work: Work, warm: u64, units: u64) -> Option<(Duration, Duration)> {
        if !self.applies(work) {
            return None;
        }
        let zero = Duration::ZERO;
        match work {
            Work::Hot64 => self.hot(64, warm, units).map(|t| (t, zero)),
            Work::K(n) => self.hot(n, warm, units).map(|t| (t, zero)),
            Work::Churn => self.churn(warm, units).map(|t| (t, zero)),
            Work::Batch64 => {
                for _ in 0..warm {
                    self.batch_once()?;
                }
                let (mut a, mut f) = (zero, zero);
                for _ in 0..units {
                    let (da, df) = self.batch_once()?;
                    a += da;
                    f += df;
                }
                Some((a, f))
            }
            Work::Hot64x2 | Work::ProdCons => {
                let run = self.threads?;
                run(&self.alloc, work, warm, units).map(|t| (t, zero))
            }
        }
    }
}

/// The timed hot loop: `iters` alloc+free pairs; `false` if an alloc failed.
#[inline(never)]
fn hot_pairs<A: ObjAlloc>(a: &A, size: usize, iters: u64) -> bool {
    let size = black_box(size);
    for _ in 0..iters {
        let Some(o) = a.alloc(size) else { return false };
        // SAFETY: `o` was just allocated with `size` and is freed once.
        unsafe { a.free(black_box(o), size) };
    }
    true
}

/// The timed batch-alloc loop: fills `out` up to [`BATCH_OBJECTS`]; `false` if an alloc failed.
#[inline(never)]
fn fill<A: ObjAlloc>(a: &A, out: &mut Vec<A::Obj>) -> bool {
    let size = black_box(64);
    for _ in 0..BATCH_OBJECTS {
        let Some(o) = a.alloc(size) else { return false };
        out.push(o);
    }
    black_box(&out);
    true
}

/// The timed batch-free loop: frees everything in `objs`, in allocation order.
#[inline(never)]
fn drain<A: ObjAlloc>(a: &A, objs: &mut Vec<A::Obj>) {
    let size = black_box(64);
    for o in objs.drain(..) {
        // SAFETY: every object in `objs` came from `alloc(64)` and `drain` yields it once.
        unsafe { a.free(o, size) };
    }
}

/// xorshift64 (Marsaglia), as BENCHMARKS.md asks for `churn`.
pub struct XorShift(u64);

impl XorShift {
    /// The generator of one `churn` run: seeded with [`CHURN_SEED`].
    pub fn churn() -> Self {
        Self(CHURN_SEED)
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A size in [`CHURN_SIZES`], uniform, by multiply-shift (no division in the loop).
    #[inline(always)]
    fn size(&mut self) -> usize {
        let span = (CHURN_SIZES.1 - CHURN_SIZES.0 + 1) as u64;
        CHURN_SIZES.0 + (((self.next() >> 32) * span) >> 32) as usize
    }

    /// An index below `n` (`n < 2^32`).
    #[inline(always)]
    fn index(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}

/// Allocates `churn` objects of sizes from `rng` until `slots` holds [`CHURN_LIVE`] (outside
/// the timing); `false` if an alloc failed (`slots` keeps what was allocated).
pub fn churn_fill<A: ObjAlloc>(a: &A, slots: &mut Vec<(A::Obj, usize)>, rng: &mut XorShift) -> bool {
    while slots.len() < CHURN_LIVE {
        let size = rng.size();
        let Some(o) = a.alloc(size) else { return false };
        slots.push((o, size));
    }
    true
}

/// Frees every object of `slots`, emptying it.
pub fn churn_free<A: ObjAlloc>(a: &A, slots: &mut Vec<(A::Obj, usize)>) {
    for (o, size) in slots.drain(..) {
        // SAFETY: each slot holds an object allocated with its size, drained once.
        unsafe { a.free(o, size) };
    }
}

/// The timed churn loop: `iters` times, frees a random live object and allocates a new random
/// size in its slot; `false` if an alloc failed (the slot then keeps its old object).
#[inline(never)]
pub fn churn_ops<A: ObjAlloc>(a: &A, slots: &mut [(A::Obj, usize)], rng: &mut XorShift, iters: u64) -> bool {
    let n = slots.len();
    for _ in 0..iters {
        let i = rng.index(n);
        let size = rng.size();
        let Some(o) = a.alloc(size) else { return false };
        let (old, old_size) = std::mem::replace(&mut slots[i], (o, size));
        // SAFETY: the slot's object was allocated with `old_size` and leaves the slot here.
        unsafe { a.free(black_box(old), old_size) };
    }
    true
}

/// Two-thread runs of an allocator both threads share.
fn shared_threads<A: ObjAlloc + Sync>(a: &A, work: Work, warm: u64, units: u64) -> Option<Duration>
where
    A::Obj: Send,
{
    two_threads(work, a, a, warm, units)
}

/// Runs `work` (`hot64-2T` or `prodcons`) with `h0` on this thread and `h1` on a new one.
/// `prodcons`: this thread produces, the other consumes. The new thread lives for this call
/// only; kmem gives it the machine's second CPU slot and drains that slot when it exits.
pub fn two_threads<H: ObjAlloc + Send>(work: Work, h0: H, h1: H, warm: u64, units: u64) -> Option<Duration>
where
    H::Obj: Send,
{
    match work {
        Work::Hot64x2 => {
            let barrier = &Barrier::new(2);
            std::thread::scope(|s| {
                let other = s.spawn(move || hot_side(&h1, barrier, warm, units));
                let mine = hot_side(&h0, barrier, warm, units);
                let theirs = other.join().ok()?;
                Some(mine?.max(theirs?))
            })
        }
        Work::ProdCons => prodcons(h0, h1, warm, units),
        _ => None,
    }
}

/// One thread of `hot64-2T`: warm up, meet the other thread, time `iters` pairs.
fn hot_side<H: ObjAlloc>(h: &H, barrier: &Barrier, warm: u64, iters: u64) -> Option<Duration> {
    let mut live = Vec::with_capacity(LIVE);
    while live.len() < LIVE {
        let Some(o) = h.alloc(64) else { break };
        live.push(o);
    }
    let ok = live.len() == LIVE && hot_pairs(h, 64, warm);
    // Both threads reach the barrier whatever happened, so neither waits forever.
    barrier.wait();
    let result = if ok { harness::time(|| hot_pairs(h, 64, iters).then_some(())) } else { None };
    for o in live {
        // SAFETY: each came from `alloc(64)`, freed once.
        unsafe { h.free(o, 64) };
    }
    result
}

/// `prodcons`: `warm` then `units` batches of [`PRODCONS_BATCH`] objects, allocated by `h0` on
/// this thread, freed by `h1` on another. Time: from the first timed alloc until every timed
/// object is freed (all batch buffers are back).
fn prodcons<H: ObjAlloc + Send>(h0: H, h1: H, warm: u64, units: u64) -> Option<Duration>
where
    H::Obj: Send,
{
    let full: Ring<Vec<H::Obj>> = Ring::new();
    let empty: Ring<Vec<H::Obj>> = Ring::new();
    for _ in 0..RING {
        empty.push(Vec::with_capacity(PRODCONS_BATCH));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let h = h1;
            // The producer sends exactly `warm + units` batches, then an empty one if it failed.
            for _ in 0..warm + units {
                let mut v = full.pop();
                if v.is_empty() {
                    empty.push(v);
                    return;
                }
                for o in v.drain(..) {
                    // SAFETY: allocated with size 64 by the producer, sent here once.
                    unsafe { h.free(o, 64) };
                }
                empty.push(v);
            }
        });
        let produce = |batches: u64| -> bool {
            for _ in 0..batches {
                let mut v = empty.pop();
                for _ in 0..PRODCONS_BATCH {
                    match h0.alloc(64) {
                        Some(o) => v.push(black_box(o)),
                        None => {
                            // Free what this batch holds and stop the consumer.
                            for o in v.drain(..) {
                                // SAFETY: allocated just above with size 64.
                                unsafe { h0.free(o, 64) };
                            }
                            full.push(v);
                            return false;
                        }
                    }
                }
                full.push(v);
            }
            // Wait until every buffer is back: all objects sent so far are freed.
            let bufs: Vec<_> = (0..RING).map(|_| empty.pop()).collect();
            for v in bufs {
                empty.push(v);
            }
            true
        };
        if !produce(warm) {
            return None;
        }
        let t = Instant::now();
        produce(units).then(|| t.elapsed())
    })
}

/// A bounded single-producer single-consumer ring of [`RING`] slots that spins (then yields)
/// when full or empty. Invariant: slots `head..tail` (mod [`RING`]) hold values, the others not.
struct Ring<T> {
    slots: [UnsafeCell<MaybeUninit<T>>; RING],
    head: AtomicUsize,
    tail: AtomicUsize,
}

// SAFETY: one thread pushes, one pops; a slot is handed over by the release store of `tail`
// (push) and given back by the release store of `head` (pop).
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Appends `v`, waiting for room. Only one thread pushes.
    fn push(&self, v: T) {
        let t = self.tail.load(Ordering::Relaxed);
        let mut spins = 0u32;
        while t - self.head.load(Ordering::Acquire) == RING {
            backoff(&mut spins);
        }
        // SAFETY: slot `t` is outside `head..tail`: no value, and the consumer does not read it.
        unsafe { (*self.slots[t % RING].get()).write(v) };
        self.tail.store(t + 1, Ordering::Release);
    }

    /// Takes the oldest value, waiting for one. Only one thread pops.
    fn pop(&self) -> T {
        let h = self.head.load(Ordering::Relaxed);
        let mut spins = 0u32;
        while self.tail.load(Ordering::Acquire) == h {
            backoff(&mut spins);
        }
        // SAFETY: slot `h` is inside `head..tail`: it holds a value the producer published.
        let v = unsafe { (*self.slots[h % RING].get()).assume_init_read() };
        self.head.store(h + 1, Ordering::Release);
        v
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let (h, t) = (*self.head.get_mut(), *self.tail.get_mut());
        for i in h..t {
            // SAFETY: slots `head..tail` hold values, each dropped once.
            unsafe { self.slots[i % RING].get_mut().assume_init_drop() };
        }
    }
}

/// Spins a while, then yields the CPU (two cores shared with other work: a spinning thread must
/// not starve the one it waits for).
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 256 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Runs `works` over `contenders` and records them into `results`.
pub fn run(cfg: &Config, works: &[Work], contenders: &mut [Box<dyn Contender + '_>], results: &mut Results) {
    // Rows exist before any sample, so a contender that fails shows up as `failed`.
    for &w in works {
        for row in w.rows() {
            for c in contenders.iter().filter(|c| c.applies(w)) {
                results.declare(&row, c.name(), c.role());
            }
        }
    }
    // Calibration doubles as the first warm-up of every allocator in every workload.
    let progress = std::io::stderr().is_terminal();
    let mut plans = vec![vec![None; works.len()]; contenders.len()];
    for (wi, &w) in works.iter().enumerate() {
        if progress {
            eprint!("\rslab: calibrating {:<12}", w.rows()[0]);
        }
        let start = match w {
            Work::Batch64 => 1,
            Work::ProdCons => 16,
            _ => 1024,
        };
        for (c, plan) in contenders.iter_mut().zip(&mut plans) {
            if c.applies(w) {
                plan[wi] = harness::calibrate(cfg.sample_target, start, |n| {
                    let warm = if w == Work::Batch64 { 1 } else { n / 8 };
                    c.run(w, warm, n).map(|(a, f)| a + f)
                });
            }
        }
    }
    for round in 0..cfg.rounds {
        if progress {
            eprint!("\rslab: round {}/{}{:<20}", round + 1, cfg.rounds, "");
        }
        for (wi, &w) in works.iter().enumerate() {
            let rows = w.rows();
            // A B C … within the round, for each workload, starting one further each round.
            for ci in harness::rotation(contenders.len(), round) {
                let (c, plan) = (&mut contenders[ci], &plans[ci]);
                let Some(units) = plan[wi] else { continue };
                let warm = if w == Work::Batch64 { 1 } else { (units / 8).max(1) };
                if let Some((a, f)) = c.run(w, warm, units) {
                    let ops = (units * w.ops_per_unit()) as f64;
                    results.record(&rows[0], c.name(), c.role(), round, a.as_nanos() as f64 / ops);
                    if let Some(free_row) = rows.get(1) {
                        results.record(free_row, c.name(), c.role(), round, f.as_nanos() as f64 / ops);
                    }
                }
            }
        }
    }
    if progress {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::floor::ClassLists;

    #[test]
    fn churn_sizes_and_indices_stay_in_range() {
        let mut rng = XorShift(CHURN_SEED);
        let (mut lo, mut hi) = (usize::MAX, 0);
        for _ in 0..100_000 {
            let s = rng.size();
            lo = lo.min(s);
            hi = hi.max(s);
            assert!(rng.index(CHURN_LIVE) < CHURN_LIVE);
        }
        assert!(lo >= CHURN_SIZES.0 && lo < CHURN_SIZES.0 + 16, "{lo}");
        assert!(hi <= CHURN_SIZES.1 && hi > CHURN_SIZES.1 - 16, "{hi}");
    }

    #[test]
    fn workloads_run_on_a_floor() {
        let mut b = Bench::new("floor", Role::Floor, SIZED, ClassLists::new(CHURN_LIVE + LIVE + 1));
        assert!(b.applies(Work::K(96)) && b.applies(Work::Churn));
        assert!(!b.applies(Work::Hot64) && !b.applies(Work::ProdCons));
        assert!(b.run(Work::K(96), 10, 100).is_some());
        assert!(b.run(Work::Churn, 10, 1000).is_some());
        assert!(b.run(Work::Hot64, 10, 100).is_none());
    }

    #[test]
    fn two_thread_workloads_finish() {
        let (p, c) = crate::floor::handoff_pair(64, 4096);
        assert!(two_threads(Work::ProdCons, p, c, 3, 50).is_some());
        let (a, b) = crate::floor::handoff_pair(64, 4096);
        assert!(two_threads(Work::Hot64x2, a, b, 10, 1000).is_some());
    }
}
