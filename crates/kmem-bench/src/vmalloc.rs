//! The `vmalloc` workloads (BENCHMARKS.md):
//! - `vmalloc N reuse`: vmalloc + touch every page + vfree of N = 1..32 pages with the default
//!   lazy purge: a freed area waits, still mapped with its frames, in vmalloc's frame cache
//!   and the next vmalloc of its size takes it back (no page allocation, no syscall);
//! - `vmalloc N fresh`: the same with the purge threshold at 0, which also turns the frame
//!   cache off (emptied before each sample): every vfree unmaps and frees the frames at once,
//!   every vmalloc allocates frames and maps them (one `mmap` when they are contiguous);
//! - the peer for both: `mmap` + touch every page + `munmap` of the same size (anonymous);
//! - `vmalloc VA F free ranges`: [`VA_BATCH`] `get_vm_area` calls (address space only, one page
//!   plus guard) after the free tree was fragmented into F = 1..100 000 ranges (pools and
//!   caches emptied into the tree first). Only the allocations are timed; freeing and
//!   `vm_unmap_aliases` happen between units. That purge puts the freed ranges in the VA pool
//!   (two CPUs, so pools are on, as in the kernel), so after the first unit the timed calls
//!   are served by the pool, in O(1), while the tree keeps F ranges minus the (at most 64)
//!   pooled ones;
//! - `vmalloc VA F free ranges (tree)`: informational, the same with the VA pool off, so every
//!   call descends the free tree (lowest fit) and inserts into the busy tree.
//!
//! The VA rows use one machine per F, fragmented once, and interleave all of them in every
//! round (each sample ends with the pool emptied back into the tree). Each F > 1 row is paired
//! with the F = 1 time of the same variant in the same round (the "reference" row, shown as
//! the peer), so its ratio column is the growth with F, read within rounds rather than across
//! minutes of drift: flat within ±20 % means every such ratio is in 0.8–1.2.

use std::hint::black_box;
use std::io::IsTerminal;
use std::ptr::NonNull;
use std::time::Duration;

use kmem::{Machine, PAGE_SIZE, Profile};
use rustix::mm::{MapFlags, ProtFlags};

use crate::harness::{self, Config, Results, Role};

/// Area sizes in pages.
const SIZES: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// Free-range counts of the VA latency rows.
const FRAGMENTS: [usize; 6] = [1, 10, 100, 1_000, 10_000, 100_000];
/// `get_vm_area` calls per timed unit.
const VA_BATCH: usize = 64;

fn machine() -> Result<Machine, String> {
    Machine::builder()
        .profile(Profile::X86_64)
        .mem_bytes(512 << 20)
        .cpus(2)
        .kswapd(false)
        .build()
        .map_err(|e| e.to_string())
}

/// `n` vmalloc+touch+vfree of `pages` pages.
fn vmalloc_pairs(m: &Machine, pages: usize, n: u64) -> Option<Duration> {
    harness::time(|| {
        for _ in 0..n {
            let p = m.vmalloc(pages * PAGE_SIZE).ok()?;
            touch(p, pages);
            // SAFETY: The bench's own memory, freed once and unused afterwards.
            unsafe { m.vfree(p.as_ptr()) };
        }
        Some(())
    })
}

/// `n` mmap+touch+munmap of `pages` pages.
fn mmap_pairs(pages: usize, n: u64) -> Option<Duration> {
    let len = pages * PAGE_SIZE;
    harness::time(|| {
        for _ in 0..n {
            // SAFETY: A fresh private anonymous mapping at an address the kernel picks.
            let p = unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE,
                )
            }
            .ok()?;
            touch(NonNull::new(p.cast::<u8>())?, pages);
            // SAFETY: The mapping made just above, used by nothing else.
            unsafe { rustix::mm::munmap(p, len) }.ok()?;
        }
        Some(())
    })
}

/// Writes one byte in every page.
fn touch(p: NonNull<u8>, pages: usize) {
    for i in 0..pages {
        // SAFETY: `p` is a live mapping of `pages` writable pages.
        unsafe { p.as_ptr().add(i * PAGE_SIZE).write_volatile(i as u8) };
    }
    black_box(p);
}

/// Fragments the free tree into `ranges` free ranges: `ranges` one-page holes (two with the
/// guard) between live areas, plus the rest of the range. The purge empties the VA pool so
/// every free range is in the tree. Returns the live areas.
fn fragment(m: &Machine, ranges: usize) -> Option<Vec<NonNull<u8>>> {
    let mut areas = Vec::with_capacity(2 * ranges);
    for _ in 0..2 * (ranges - 1) {
        areas.push(m.get_vm_area(PAGE_SIZE, 0).ok()?);
    }
    let mut kept = Vec::with_capacity(ranges);
    for (i, a) in areas.into_iter().enumerate() {
        // SAFETY: The bench's own memory, freed once and unused afterwards.
        if i % 2 == 0 { unsafe { m.free_vm_area(a.as_ptr()) } } else { kept.push(a) }
    }
    m.vm_reclaim_and_purge();
    debug_assert_eq!(m.vm().pooled_areas(), 0);
    Some(kept)
}

/// `n` units of [`VA_BATCH`] timed `get_vm_area` calls, freed and purged untimed.
fn va_batches(m: &Machine, n: u64) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut got = Vec::with_capacity(VA_BATCH);
    for _ in 0..n {
        total += harness::time(|| {
            for _ in 0..VA_BATCH {
                got.push(m.get_vm_area(PAGE_SIZE, 0).ok()?);
            }
            Some(())
        })?;
        for a in got.drain(..) {
            // SAFETY: The bench's own memory, freed once and unused afterwards.
            unsafe { m.free_vm_area(a.as_ptr()) };
        }
        m.vm_unmap_aliases();
    }
    Some(total)
}

/// Runs the vmalloc workloads and records them into `results`.
pub fn run(cfg: &Config, results: &mut Results) {
    let m = match machine() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kmem-bench: vmalloc group skipped: {e}");
            return;
        }
    };
    let default_lazy = m.vm().lazy_max_pages();
    let progress = std::io::stderr().is_terminal();
    // (workload, contender, role, lazy threshold or None for mmap, pages).
    let mut rows = Vec::new();
    for pages in SIZES {
        for (case, lazy) in [("reuse", default_lazy), ("fresh", 0)] {
            let w = format!("vmalloc {pages} {case}");
            rows.push((w.clone(), "kmem vmalloc+vfree", Role::Subject, Some(lazy), pages));
            rows.push((w, "mmap+munmap", Role::Peer, None, pages));
        }
    }
    let run_row = |lazy: Option<usize>, pages: usize, n: u64| match lazy {
        Some(l) => {
            m.vm().set_lazy_max_pages(l);
            if l == 0 {
                // Nothing cached by the reuse rows may serve a fresh row.
                m.vm_reclaim_and_purge();
            }
            vmalloc_pairs(&m, pages, n)
        }
        None => mmap_pairs(pages, n),
    };
    let plans: Vec<Option<u64>> = rows
        .iter()
        .map(|(w, c, role, lazy, pages)| {
            results.declare(w, c, *role);
            harness::calibrate(cfg.sample_target, 16, |n| run_row(*lazy, *pages, n))
        })
        .collect();
    for round in 0..cfg.rounds {
        if progress {
            eprint!("\rvmalloc: round {}/{}", round + 1, cfg.rounds);
        }
        for ri in harness::rotation(rows.len(), round) {
            let ((w, c, role, lazy, pages), plan) = (&rows[ri], &plans[ri]);
            let Some(n) = *plan else { continue };
            if let Some(t) = run_row(*lazy, *pages, n) {
                results.record(w, c, *role, round, t.as_nanos() as f64 / n as f64);
            }
        }
    }
    m.vm().set_lazy_max_pages(default_lazy);
    m.vm_reclaim_and_purge();
    va_rows(cfg, results, progress);
    if progress {
        eprintln!();
    }
}

/// The VA latency rows: one machine per free-range count, each fragmented once, measured in
/// interleaved rounds (every F, with the VA pool on and then off, in each round) so that drift
/// between rounds does not pass for growth with F.
fn va_rows(cfg: &Config, results: &mut Results, progress: bool) {
    let c = format!("kmem get_vm_area ×{VA_BATCH}");
    let mut setups = Vec::new();
    for ranges in FRAGMENTS {
        let rows = [format!("vmalloc VA {ranges} free ranges"), format!("vmalloc VA {ranges} free ranges (tree)")];
        for w in &rows {
            results.declare(w, &c, Role::Subject);
        }
        let Ok(m) = machine() else { continue };
        let Some(kept) = fragment(&m, ranges) else { continue };
        let pools = m.vm().va_pools();
        let mut plans = [None; 2];
        for (plan, pool) in plans.iter_mut().zip([pools, false]) {
            m.vm().set_va_pools(pool);
            *plan = harness::calibrate(cfg.sample_target, 1, |n| va_batches(&m, n));
            m.vm_reclaim_and_purge();
        }
        setups.push((m, kept, rows, pools, plans));
    }
    let reference = format!("same, 1 free range (reference, same round) ×{VA_BATCH}");
    for round in 0..cfg.rounds {
        if progress {
            eprint!("\rvmalloc VA: round {}/{}", round + 1, cfg.rounds);
        }
        // The F = 1 times of this round, per variant: each other F's row is paired with them.
        let mut first: [Option<f64>; 2] = [None; 2];
        for (k, (m, _, rows, pools, plans)) in setups.iter().enumerate() {
            for (v, ((w, pool), plan)) in rows.iter().zip([*pools, false]).zip(plans).enumerate() {
                let Some(n) = *plan else { continue };
                m.vm().set_va_pools(pool);
                if let Some(t) = va_batches(m, n) {
                    let ns = t.as_nanos() as f64 / (n * VA_BATCH as u64) as f64;
                    results.record(w, &c, Role::Subject, round, ns);
                    if k == 0 {
                        first[v] = Some(ns);
                    } else if let Some(one) = first[v] {
                        results.record(w, &reference, Role::Peer, round, one);
                    }
                }
                // Back to exactly F free ranges in the tree, nothing pooled.
                m.vm_reclaim_and_purge();
            }
        }
    }
    for (m, kept, ..) in setups {
        for a in kept {
            // SAFETY: The bench's own memory, freed once and unused afterwards.
            unsafe { m.free_vm_area(a.as_ptr()) };
        }
    }
}
