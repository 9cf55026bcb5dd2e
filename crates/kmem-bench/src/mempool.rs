//! The `mempool` workloads (BENCHMARKS.md): an alloc+free pair, again and again,
//! - `mempool available`: the backing allocator has memory, so `mempool_alloc` gets the element
//!   from it (the pool's usual case) and `mempool_free` returns it there (the reserve is full);
//! - `mempool reserve`: the backing allocator is exhausted, so every `mempool_alloc` pops the
//!   reserve after one failed backing attempt and every `mempool_free` pushes it back.
//!
//! The comparison rows are the backing allocator's own pair without a pool (today the page
//! allocator, the page pool's backing; with the slab, `kmem_cache_alloc`/`kmem_cache_free`, one
//! more [`PoolBench`] in `kmem_adapter`): what a caller pays for the guarantee.

use std::hint::black_box;
use std::io::IsTerminal;
use std::time::Duration;

use crate::harness::{self, Config, Results, Role};

/// An element allocator reduced to what these workloads call.
pub trait ElementAlloc {
    /// What an allocation hands back.
    type Element: Copy;

    /// One element; `None` on failure.
    fn alloc(&mut self) -> Option<Self::Element>;

    /// Frees an element.
    ///
    /// # Safety
    /// `element` came from `self.alloc()` and has not been freed since.
    unsafe fn free(&mut self, element: Self::Element);
}

/// The two mempool workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The backing allocator serves.
    Available,
    /// The reserve serves.
    Reserve,
}

impl Workload {
    /// Both workloads.
    pub const ALL: [Workload; 2] = [Workload::Available, Workload::Reserve];

    fn row(self) -> &'static str {
        match self {
            Workload::Available => "mempool available pair",
            Workload::Reserve => "mempool reserve pair",
        }
    }
}

/// One contender as the driver sees it; implemented by [`PoolBench`].
pub trait Contender {
    /// The row label.
    fn name(&self) -> &str;
    /// Whether this is kmem or a comparison.
    fn role(&self) -> Role;
    /// Whether this contender has a row in `workload`.
    fn applies(&self, workload: Workload) -> bool;
    /// Runs `warm` untimed pairs, then times `iters` pairs; `None` if an allocation failed.
    fn pair(&mut self, warm: u64, iters: u64) -> Option<Duration>;
}

/// An [`ElementAlloc`] measured in some workloads.
pub struct PoolBench<A: ElementAlloc> {
    name: String,
    role: Role,
    workloads: Vec<Workload>,
    alloc: A,
}

impl<A: ElementAlloc> PoolBench<A> {
    /// A contender with rows in `workloads`.
    pub fn new(name: &str, role: Role, workloads: &[Workload], alloc: A) -> Self {
        Self { name: name.to_owned(), role, workloads: workloads.to_vec(), alloc }
    }
}

impl<A: ElementAlloc> Contender for PoolBench<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn role(&self) -> Role {
        self.role
    }

    fn applies(&self, workload: Workload) -> bool {
        self.workloads.contains(&workload)
    }

    fn pair(&mut self, warm: u64, iters: u64) -> Option<Duration> {
        if !hot_pairs(&mut self.alloc, warm) {
            return None;
        }
        harness::time(|| hot_pairs(&mut self.alloc, iters).then_some(()))
    }
}

/// The timed loop: `iters` alloc+free pairs; `false` if an alloc failed.
#[inline(never)]
fn hot_pairs<A: ElementAlloc>(a: &mut A, iters: u64) -> bool {
    for _ in 0..iters {
        let Some(e) = a.alloc() else { return false };
        // SAFETY: `e` was just allocated and is freed once.
        unsafe { a.free(black_box(e)) };
    }
    true
}

/// Runs the mempool workloads over `contenders` and records them into `results`.
pub fn run(cfg: &Config, contenders: &mut [Box<dyn Contender + '_>], results: &mut Results) {
    for workload in Workload::ALL {
        for c in contenders.iter().filter(|c| c.applies(workload)) {
            results.declare(workload.row(), c.name(), c.role());
        }
    }
    let plans: Vec<Option<u64>> =
        contenders.iter_mut().map(|c| harness::calibrate(cfg.sample_target, 1024, |n| c.pair(n / 8, n))).collect();
    let progress = std::io::stderr().is_terminal();
    for round in 0..cfg.rounds {
        if progress {
            eprint!("\rmempool: round {}/{}", round + 1, cfg.rounds);
        }
        for workload in Workload::ALL {
            for ci in harness::rotation(contenders.len(), round) {
                let (c, plan) = (&mut contenders[ci], &plans[ci]);
                let Some(iters) = *plan else { continue };
                if !c.applies(workload) {
                    continue;
                }
                if let Some(t) = c.pair((iters / 8).max(1), iters) {
                    results.record(workload.row(), c.name(), c.role(), round, t.as_nanos() as f64 / iters as f64);
                }
            }
        }
    }
    if progress {
        eprintln!();
    }
}
