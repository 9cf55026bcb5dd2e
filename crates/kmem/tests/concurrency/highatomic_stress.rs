//! High-order atomic reserves and the migratetype fallback under contention (SEMANTICS §2.4,
//! §2.5, §2.8): two threads allocate (`GFP_ATOMIC` and `GFP_KERNEL | __GFP_NORETRY`, orders
//! 0..=3) and free at random on a zone kept below its low watermark, so reservations, the
//! reserve's use, its last resort and the giving back after reclaim race with each other and
//! with a third thread draining every CPU's lists. The invariants (`Machine::check`: the
//! high-atomic lists hold exactly the free blocks of high-atomic pageblocks, the counts and
//! their mirrors agree) must hold at the end, with every page back. Also under `.ci/valgrind`
//! (its name matches `stress::`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::Duration;

use kmem::Profile;
use kmem::gfp::{__GFP_NORETRY, __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem::zone::{Wmark, ZoneType};

use crate::rng::Rng;
use crate::{pcp_pages, stress_iters};

#[test]
fn highatomic_reserves_keep_their_invariants_under_two_threads() {
    let m = crate::machine(Profile::X86_64, 512, 3, true);
    let free_at_start = m.total_free();
    let old = m.min_free_kbytes();
    // DMA32 below its low watermark, GFP_ATOMIC's 37.5 % of min still above it: every
    // allocation takes the slow path, where the reserves live.
    let lowmem_kb: usize = m.zones().iter().filter(|z| z.kind() <= ZoneType::Normal).map(|z| z.managed() * 4).sum();
    m.set_min_free_kbytes(lowmem_kb * 9 / 10).expect("min_free_kbytes");
    let dma32 = m.zone(ZoneType::Dma32);
    assert!(dma32.free_pages() <= dma32.wmark(Wmark::Low));
    let iters = stress_iters().min(20_000);
    let most_reserved = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let (m, most_reserved) = (&m, &most_reserved);
                s.spawn(move || {
                    let mut rng = Rng(0x5eed_0000 + t * 7919 + 1);
                    let mut held: Vec<(usize, u32)> = Vec::new();
                    for _ in 0..iters {
                        if rng.below(5) < 3 {
                            let order = rng.below(4) as u32;
                            let gfp = if rng.below(2) == 0 {
                                GFP_ATOMIC | __GFP_NOWARN
                            } else {
                                GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN
                            };
                            if let Ok(page) = m.alloc_pages(gfp, order) {
                                held.push((m.page_to_pfn(page).expect("pfn"), order));
                            }
                        } else if !held.is_empty() {
                            let (pfn, order) = held.swap_remove(rng.index(held.len()));
                            // SAFETY: The thread's own block, freed once.
                            unsafe { m.free_pages(m.pfn_to_page(pfn).expect("page"), order) };
                        }
                        most_reserved.fetch_max(m.zone(ZoneType::Dma32).reserved_highatomic(), Relaxed);
                    }
                    for (pfn, order) in held {
                        // SAFETY: As above.
                        unsafe { m.free_pages(m.pfn_to_page(pfn).expect("page"), order) };
                    }
                    m.release_cpu();
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Relaxed) {
                m.drain_all_pages();
                thread::sleep(Duration::from_millis(1));
            }
            m.release_cpu();
        });
        for w in workers {
            w.join().expect("worker panicked");
        }
        done.store(true, Relaxed);
    });
    m.set_min_free_kbytes(old).expect("min_free_kbytes");
    assert!(most_reserved.load(Relaxed) > 0, "no pageblock was ever reserved: the test proves nothing");
    assert_eq!(pcp_pages(&m), 0, "pages left on per-CPU lists after release_cpu");
    // SAFETY: Every thread that used the machine has been joined; kswapd is off.
    unsafe { m.check() };
    assert_eq!(m.total_free(), free_at_start, "every page came back");
}
