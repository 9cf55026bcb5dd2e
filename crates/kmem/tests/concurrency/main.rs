//! Concurrency tests of the page and slab allocators through the public `kmem::Machine` API.
//!
//! - `blocking`: the give-up table of SEMANTICS §2.8 (PA-13, PA-14) with real sleeping and
//!   waking between threads, OOM reports and notifiers, shrinkers and kswapd.
//! - `mempool`: sleepers woken by `mempool_free` and the 5 s retry (MP-6, MP-7), and forward
//!   progress of `GFP_KERNEL` pool allocations on a machine with every page taken.
//! - `model`: two threads replay random operations in lock step against a plain model of the
//!   live blocks (STYLE §7), with `check()` after every step (PA-3, PA-5, PA-11, PA-17).
//! - `races`: more threads than CPU slots, `/proc` readers during churn, thread exits racing
//!   remote shrinks, cache create/destroy against walkers, RCU against `call_rcu`/`kfree_rcu`,
//!   sleepers of several orders, mempool resize.
//! - `slab_debug_race`: two threads free one object of a debug cache at once (SL-15).
//! - `slab_model`: the slab allocator against a model, two threads in lock step with cross-thread
//!   frees (issue 3); `slab_stress`: slab and kmalloc churn, producer/consumer, thread exit and
//!   concurrent shrink/reclaim on several threads (also under `.ci/valgrind`).
//! - `stress`: many random allocations and cross-thread frees with ownership patterns written
//!   into the pages; everything must come back (PA-5, PA-17). `.ci/valgrind` runs these,
//!   `slab_stress` and `vmalloc_stress` only (paths containing `stress::`), with
//!   `KMEM_STRESS_ITERS` scaled down.
//! - `typesafe_rcu`: `SLAB_TYPESAFE_BY_RCU` objects stay objects of their cache under a
//!   reader while others free, shrink and reuse memory; constructor and destructor counts
//!   balance while another thread shrinks.
//! - `vmalloc`: vmalloc/vfree (some deferred from atomic context) on three threads, with
//!   owner stamps checked through the vmalloc address and through the backing frame.
//! - `vmalloc_races`: `__GFP_NOFAIL` vmalloc waiting for address space other threads free,
//!   `vm_map_ram` on more threads than CPU slots.
//! - `vmalloc_stress`: the ported `lib/test_vmalloc.c` cases (TST-14) on three workers at once,
//!   sharing `tests/test_vmalloc/cases.rs` with the single-thread tests (also under
//!   `.ci/valgrind`).
//!
//! No test asserts a duration: waits poll a condition against a generous deadline and fail
//! with a message naming what did not happen.

mod blocking;
mod highatomic_stress;
mod mempool;
mod model;
mod oom_step;
mod races;
mod review;
#[path = "../common/rng.rs"]
mod rng;
mod slab_debug_race;
mod slab_model;
mod slab_stress;
mod stress;
mod typesafe_rcu;
mod vmalloc;
#[path = "../test_vmalloc/cases.rs"]
mod vmalloc_cases;
mod vmalloc_races;
mod vmalloc_stress;

use std::thread;
use std::time::{Duration, Instant};

pub use rng::Rng;

use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC};
use kmem::{Machine, Profile};

/// The per-thread iterations of the stress tests: `KMEM_STRESS_ITERS` (`.ci/valgrind` lowers
/// it), default 100,000.
pub fn stress_iters() -> usize {
    match std::env::var("KMEM_STRESS_ITERS") {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("KMEM_STRESS_ITERS must be a number, got {v:?}")),
        Err(_) => 100_000,
    }
}

/// These tests' machine settings: `profile`, `mib` MiB, `cpus` CPU slots, per-CPU lists as
/// `pcp` says, no kswapd (a test that wants more adds it).
pub fn builder(profile: Profile, mib: u64, cpus: usize, pcp: bool) -> kmem::Builder {
    Machine::builder().profile(profile).mem_bytes(mib << 20).cpus(cpus).pcp(pcp).kswapd(false)
}

/// [`builder`]'s machine.
pub fn machine(profile: Profile, mib: u64, cpus: usize, pcp: bool) -> Machine {
    builder(profile, mib, cpus, pcp).build().expect("build machine")
}

/// The stress tests' machine: x86_64, 64 MiB, `cpus` CPU slots, per-CPU lists on, no kswapd.
pub fn stress_machine(cpus: usize) -> Machine {
    machine(Profile::X86_64, 64, cpus, true)
}

/// How long a poll waits for something that should happen promptly before it fails the test.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` every millisecond until it holds; panics naming `what` after [`DEADLINE`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// A small x86_64 machine (DMA + DMA32) for the blocking tests.
pub fn small_machine(oom_timeout: Duration, kswapd: bool) -> Machine {
    builder(Profile::X86_64, 32, 4, true).kswapd(kswapd).oom_timeout(oom_timeout).build().expect("build machine")
}

/// Takes every page that `GFP_ATOMIC` may take (down to its 37.5 % share of the min
/// watermark), draining this thread's per-CPU lists and retaking until they stay empty, so no
/// page is parked where a later request could not see it. Returns the pfns taken (order 0).
pub fn exhaust(m: &Machine) -> Vec<usize> {
    exhaust_with(m, GFP_ATOMIC | __GFP_NOWARN)
}

/// [`exhaust`] with the mask `gfp` (with `__GFP_MEMALLOC`: every free page).
pub fn exhaust_with(m: &Machine, gfp: kmem::gfp::Gfp) -> Vec<usize> {
    let mut held = Vec::new();
    for _ in 0..1000 {
        while let Ok(page) = m.alloc_pages(gfp, 0) {
            held.push(m.page_to_pfn(page).expect("pfn"));
        }
        if m.drain_local_pages() == 0 {
            assert_eq!(pcp_pages(m), 0, "pages left on per-CPU lists after exhausting");
            assert!(!held.is_empty(), "exhausting took no page");
            return held;
        }
    }
    panic!("per-CPU lists never stayed empty while exhausting");
}

/// Frees order-0 pages by pfn.
pub fn free_pfns(m: &Machine, pfns: impl IntoIterator<Item = usize>) {
    for pfn in pfns {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(m.pfn_to_page(pfn).expect("page"), 0) };
    }
}

/// Shrinks every live cache of `m` and each of `also` to nothing, checking each (every thread
/// that used them is gone): no slab may stay, and every slab must validate.
pub fn shrink_every_cache(m: &Machine, also: &[kmem::slab::CacheRef]) {
    let mut all = also.to_vec();
    m.for_each_cache(|c| {
        if !all.contains(&c) {
            all.push(c);
        }
    });
    for c in all {
        assert_eq!(
            m.kmem_cache_shrink(c),
            0,
            "{} still holds slabs: {:?}",
            m.cache(c).unwrap().name(),
            m.cache_info(c)
        );
        assert_eq!(m.validate_slab_cache(c), Ok(0));
    }
}

/// Pages parked on any CPU's per-CPU lists, all zones.
pub fn pcp_pages(m: &Machine) -> usize {
    (0..m.nr_cpus()).map(|cpu| m.zones().iter().map(|z| m.pcp_count(cpu, z.kind())).sum::<usize>()).sum()
}
