//! TST-14 stress variant (SEMANTICS §8.3): Linux `lib/test_vmalloc.c` with `nr_threads = 3`.
//! Each worker runs the kernel's `test_func` over every ported case (bits 1, 2, 4, 8, 16, 32,
//! 64 and 1024 of `run_test_mask`, in a shuffled order per worker, as with
//! `sequential_test_order = 0`), on one machine at once. The cases are the single-thread
//! tests' (`tests/test_vmalloc/cases.rs`): every area's pages carry patterns checked through
//! the vmalloc address and through the backing frame, so two owners of one frame or one range
//! are caught. Every worker must report each case passed, and `align_shift_alloc_test`
//! xfailed. Afterwards nothing is left: no vmalloc page, an empty vmallocinfo, one free range
//! spanning the whole space again (so the expected failure falls where it does on an idle
//! machine), and every page back but the vmap_area bookkeeping.
//!
//! Loops and the busy list scale with `KMEM_STRESS_ITERS` (`.ci/valgrind` lowers it).

use std::thread;

use kmem::{Machine, Profile};

use crate::vmalloc_cases::{
    CASES, KERNEL_BUSY_AREAS, Params, align_shift_alloc_test, align_shift_failure_bounds, run_mask,
};
use crate::{Rng, stress_iters};

const THREADS: u32 = 3;
/// The purge threshold, and so `full_fit_alloc_test`'s number of junk areas.
const LAZY_MAX: usize = 256;

fn settle(m: &Machine) {
    m.flush_deferred_vfree();
    // Frees the frame cache and the VA pools too, then purges: every freed area is gone.
    m.vm_reclaim_and_purge();
    m.drain_all_pages();
}

#[test]
fn test_vmalloc_cases_on_several_threads() {
    let m = crate::machine(Profile::X86_64, 256, 4, true);
    m.vm().set_lazy_max_pages(LAZY_MAX);
    let iters = stress_iters();
    let p = Params { loops: (iters / 500).max(1), nr_pages: 2, busy: (iters / 100).clamp(1, KERNEL_BUSY_AREAS) };
    let mask = CASES.iter().fold(0, |mask, c| mask | c.mask);
    settle(&m);
    let free_before = m.total_free();
    let tallies: Vec<_> = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (m, p) = (&m, &p);
                s.spawn(move || {
                    let tallies = run_mask(m, mask, p, &mut Rng(0x7e57_0000 + u64::from(t)), true, 1);
                    m.release_cpu();
                    tallies
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    for (i, case) in CASES.iter().enumerate() {
        let sum = |f: fn(&crate::vmalloc_cases::Tally) -> u32| tallies.iter().map(|t| f(&t[i])).sum::<u32>();
        let (passed, failed, xfailed) = (sum(|t| t.passed), sum(|t| t.failed), sum(|t| t.xfailed));
        let want = if case.xfail { (0, 0, THREADS) } else { (THREADS, 0, 0) };
        assert_eq!((passed, failed, xfailed), want, "{}: passed, failed, xfailed over {THREADS} workers", case.name);
    }
    settle(&m);
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
    assert_eq!(m.vm().nr_deferred(), 0);
    assert_eq!(m.vmallocinfo(), "");
    m.vm().check();
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes(), "the free ranges merged back into one");
    let (lo, hi) = align_shift_failure_bounds(m.vm().start(), m.vm().end());
    let fail_at = align_shift_alloc_test(&m).err();
    assert!(fail_at.is_some_and(|i| (lo..=hi).contains(&i)), "xfail at {fail_at:?}, not in {lo}..={hi}");
    settle(&m);
    m.release_cpu();
    m.drain_all_pages();
    // Node chunks (never given back) for the areas live or lazily freed at once, and nothing else.
    let peak = THREADS as usize * (p.busy + 2 * LAZY_MAX + 2 * p.loops);
    let kept = free_before.saturating_sub(m.total_free());
    assert!(kept <= 16 + peak / 8, "{kept} pages not returned");
}
