//! The `pages oK` workloads (BENCHMARKS.md), order k = 0..=[`MAX_ORDER`]:
//! - `pair`: with [`LIVE`] blocks of that order held, alloc+free one block, again and again;
//! - `batch`: [`BATCH`] allocs, then [`BATCH`] frees in allocation order, timed separately
//!   (`batch alloc` and `batch free` rows).
//!
//! Every contender is a [`Bench`] over a [`PageAlloc`], so the timed loops are monomorphised per
//! allocator and identical in shape for kmem, the peers and the floor.

use std::hint::black_box;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::harness::{self, Config, Results, Role};

/// Highest order measured.
pub const MAX_ORDER: u32 = 5;
/// Blocks each hot loop keeps allocated, so no allocator runs on a degenerate empty structure.
pub const LIVE: usize = 61;
/// Blocks per batch.
pub const BATCH: usize = 1024;

/// A page allocator reduced to what these workloads call.
pub trait PageAlloc {
    /// What an allocation hands back: a pointer, a frame number or a `&Page`.
    type Block: Copy;

    /// Allocates `1 << order` contiguous, naturally aligned pages; `None` when out of memory.
    fn alloc(&mut self, order: u32) -> Option<Self::Block>;

    /// Frees a block.
    ///
    /// # Safety
    /// `block` came from `self.alloc(order)` (or [`Self::alloc_bulk`]) with this same `order`
    /// and has not been freed since.
    unsafe fn free(&mut self, block: Self::Block, order: u32);

    /// Whether [`Self::alloc_bulk`] serves blocks of `order`.
    fn has_bulk(&self, order: u32) -> bool {
        let _ = order;
        false
    }

    /// Fills the `None` slots of `out` with blocks of `order` in one call and returns how many
    /// slots are filled. Only called when [`Self::has_bulk`] says so.
    fn alloc_bulk(&mut self, order: u32, out: &mut [Option<Self::Block>]) -> usize {
        let _ = (order, out);
        0
    }
}

/// The two shapes of page workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Hot alloc+free pair.
    Pair,
    /// [`BATCH`] allocs then [`BATCH`] frees.
    Batch,
}

/// One contender as the driver sees it; implemented by [`Bench`].
pub trait Contender {
    /// The row label.
    fn name(&self) -> &str;
    /// Whether this is kmem, a peer or the floor.
    fn role(&self) -> Role;
    /// Whether this contender has a row in workload `kind` at `order`.
    fn applies(&self, kind: Kind, order: u32) -> bool;
    /// Holds [`LIVE`] blocks, runs `warm` untimed pairs, then times `iters` pairs. `None` if
    /// the contender failed or does not run this workload.
    fn pair(&mut self, order: u32, warm: u64, iters: u64) -> Option<Duration>;
    /// Runs `warm` untimed batches, then `reps` timed ones; returns (alloc, free) time.
    fn batch(&mut self, order: u32, warm: u64, reps: u64) -> Option<(Duration, Duration)>;
}

/// A [`PageAlloc`] with the buffers its workloads need, allocated once, outside timing.
pub struct Bench<A: PageAlloc> {
    name: String,
    role: Role,
    alloc: A,
    /// Use [`PageAlloc::alloc_bulk`] for batch allocs and skip the pair workload.
    bulk: bool,
    live: Vec<A::Block>,
    slots: Vec<Option<A::Block>>,
}

impl<A: PageAlloc> Bench<A> {
    /// A contender that calls `alloc` one block at a time.
    pub fn new(name: &str, role: Role, alloc: A) -> Self {
        Self {
            name: name.to_owned(),
            role,
            alloc,
            bulk: false,
            live: Vec::with_capacity(LIVE),
            slots: vec![None; BATCH],
        }
    }

    /// A contender that allocates batches through [`PageAlloc::alloc_bulk`].
    pub fn bulk(name: &str, role: Role, alloc: A) -> Self {
        Self { bulk: true, ..Self::new(name, role, alloc) }
    }

    /// Frees every block in `slots`, leaving all slots `None`.
    fn free_slots(&mut self, order: u32) {
        for slot in &mut self.slots {
            if let Some(b) = slot.take() {
                // SAFETY: every block in `slots` came from `alloc`/`alloc_bulk(order)` and
                // `take` leaves it nowhere else.
                unsafe { self.alloc.free(b, order) };
            }
        }
    }

    /// One batch: fills every slot, then frees them all; returns (alloc, free) time.
    fn batch_once(&mut self, order: u32) -> Option<(Duration, Duration)> {
        let t0 = Instant::now();
        let ok = if self.bulk {
            self.alloc.alloc_bulk(order, &mut self.slots) == BATCH
        } else {
            fill(&mut self.alloc, order, &mut self.slots)
        };
        let t1 = Instant::now();
        self.free_slots(order);
        let t2 = Instant::now();
        ok.then_some((t1 - t0, t2 - t1))
    }
}

impl<A: PageAlloc> Contender for Bench<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn role(&self) -> Role {
        self.role
    }

    fn applies(&self, kind: Kind, order: u32) -> bool {
        !self.bulk || (kind == Kind::Batch && self.alloc.has_bulk(order))
    }

    fn pair(&mut self, order: u32, warm: u64, iters: u64) -> Option<Duration> {
        if !self.applies(Kind::Pair, order) {
            return None;
        }
        let mut result = None;
        while self.live.len() < LIVE {
            let Some(b) = self.alloc.alloc(order) else { break };
            self.live.push(b);
        }
        if self.live.len() == LIVE && hot_pairs(&mut self.alloc, order, warm) {
            result = harness::time(|| hot_pairs(&mut self.alloc, order, iters).then_some(()));
        }
        for b in self.live.drain(..) {
            // SAFETY: `live` holds blocks from `alloc(order)`, each drained exactly once.
            unsafe { self.alloc.free(b, order) };
        }
        result
    }

    fn batch(&mut self, order: u32, warm: u64, reps: u64) -> Option<(Duration, Duration)> {
        if !self.applies(Kind::Batch, order) {
            return None;
        }
        for _ in 0..warm {
            self.batch_once(order)?;
        }
        let (mut a, mut f) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..reps {
            let (da, df) = self.batch_once(order)?;
            a += da;
            f += df;
        }
        Some((a, f))
    }
}

/// The timed hot loop: `iters` alloc+free pairs; `false` if an alloc failed.
#[inline(never)]
fn hot_pairs<A: PageAlloc>(a: &mut A, order: u32, iters: u64) -> bool {
    let order = black_box(order);
    for _ in 0..iters {
        let Some(b) = a.alloc(order) else { return false };
        // SAFETY: `b` was just allocated with `order` and is freed once.
        unsafe { a.free(black_box(b), order) };
    }
    true
}

/// The timed batch-alloc loop: fills every slot; `false` if an alloc failed.
#[inline(never)]
fn fill<A: PageAlloc>(a: &mut A, order: u32, slots: &mut [Option<A::Block>]) -> bool {
    let order = black_box(order);
    for slot in slots.iter_mut() {
        *slot = a.alloc(order);
        if slot.is_none() {
            return false;
        }
    }
    black_box(slots);
    true
}

/// Units of work per sample, found during the calibration pass: pair iterations and batches.
/// `None` where the contender does not apply or failed to calibrate.
#[derive(Clone, Copy, Default)]
struct Plan {
    pair: Option<u64>,
    batch: Option<u64>,
}

/// The three row names of order `order`.
fn names(order: u32) -> [String; 3] {
    [format!("pages o{order} pair"), format!("pages o{order} batch alloc"), format!("pages o{order} batch free")]
}

/// Runs the page workloads over `contenders` and records them into `results`.
pub fn run(cfg: &Config, contenders: &mut [Box<dyn Contender + '_>], results: &mut Results) {
    // Rows exist before any sample, so a contender that fails shows up as `failed`.
    for order in 0..=MAX_ORDER {
        let [pair, alloc, free] = names(order);
        for c in contenders.iter() {
            if c.applies(Kind::Pair, order) {
                results.declare(&pair, c.name(), c.role());
            }
            if c.applies(Kind::Batch, order) {
                results.declare(&alloc, c.name(), c.role());
                results.declare(&free, c.name(), c.role());
            }
        }
    }
    // Calibration doubles as the first warm-up of every allocator at every order.
    let mut plans = vec![[Plan::default(); MAX_ORDER as usize + 1]; contenders.len()];
    for order in 0..=MAX_ORDER {
        for (c, plan) in contenders.iter_mut().zip(&mut plans) {
            let p = &mut plan[order as usize];
            if c.applies(Kind::Pair, order) {
                p.pair = harness::calibrate(cfg.sample_target, 1024, |n| c.pair(order, n / 8, n));
            }
            if c.applies(Kind::Batch, order) {
                p.batch = harness::calibrate(cfg.sample_target, 1, |n| c.batch(order, 1, n).map(|(a, f)| a + f));
            }
        }
    }
    let progress = std::io::stderr().is_terminal();
    for round in 0..cfg.rounds {
        if progress {
            eprint!("\rpages: round {}/{}", round + 1, cfg.rounds);
        }
        for order in 0..=MAX_ORDER {
            let [pair, alloc, free] = names(order);
            // A B C … within the round, for each workload, starting one further each round.
            for ci in harness::rotation(contenders.len(), round) {
                let (c, plan) = (&mut contenders[ci], &plans[ci]);
                let Some(iters) = plan[order as usize].pair else { continue };
                if let Some(t) = c.pair(order, (iters / 8).max(1), iters) {
                    let ns = t.as_nanos() as f64 / iters as f64;
                    results.record(&pair, c.name(), c.role(), round, ns);
                }
            }
            for ci in harness::rotation(contenders.len(), round) {
                let (c, plan) = (&mut contenders[ci], &plans[ci]);
                let Some(reps) = plan[order as usize].batch else { continue };
                if let Some((a, f)) = c.batch(order, (reps / 8).max(1), reps) {
                    let ops = (reps * BATCH as u64) as f64;
                    results.record(&alloc, c.name(), c.role(), round, a.as_nanos() as f64 / ops);
                    results.record(&free, c.name(), c.role(), round, f.as_nanos() as f64 / ops);
                }
            }
        }
    }
    if progress {
        eprintln!();
    }
}
