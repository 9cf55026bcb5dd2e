//! vmalloc stress (test_vmalloc's `random_size_alloc_test` on several threads at once): each
//! thread allocates areas of 1..=32 pages, stamps every page with an owner pattern through the
//! vmalloc address, checks the stamps (through the area and through `kmap_local` of the backing
//! page) before freeing, and frees some areas from atomic context (deferred, VM-7). Two owners
//! of one frame or of one address range would break a stamp. Afterwards nothing is left: no
//! vmalloc pages, no deferred frees, the trees' invariants hold, and every frame is back once
//! the frame cache is reclaimed.

use std::ptr::NonNull;
use std::thread;

use kmem::context::atomic_section;
use kmem::{Machine, PAGE_SIZE, Profile};

use crate::Rng;

const ITERS: usize = 3000;
const MAX_LIVE: usize = 24;
/// Operations per thread of the reuse-under-reclaim test (cheap: mostly cache hits).
const REUSE_ITERS: usize = 30_000;

fn stamp(thread: usize, serial: usize, page: usize) -> u64 {
    ((thread as u64) << 48) | ((serial as u64) << 16) | page as u64
}

fn check_area(m: &Machine, p: NonNull<u8>, pages: usize, thread: usize, serial: usize) {
    for i in 0..pages {
        let want = stamp(thread, serial, i);
        // SAFETY: The area is live and owned by this thread; 8 bytes at each page start.
        let got = unsafe { p.as_ptr().add(i * PAGE_SIZE).cast::<u64>().read_volatile() };
        assert_eq!(got, want, "thread {thread} area {serial} page {i} overwritten");
        let page = m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).expect("mapped");
        let view = m.kmap_local_page(page).expect("kmap");
        // SAFETY: `view` maps the same frame for the duration of this local mapping.
        let seen = unsafe { view.as_ptr().cast::<u64>().read_volatile() };
        // SAFETY: The test's own mapping, not used afterwards.
        unsafe { m.kunmap_local(view.as_ptr()) };
        assert_eq!(seen, want, "frame view differs from the vmalloc view");
    }
}

#[test]
fn vmalloc_vfree_on_several_threads() {
    let m = crate::machine(Profile::I386, 1 << 10, 8, true);
    m.vm().set_lazy_max_pages(2048);
    let free_before = m.total_free();
    thread::scope(|s| {
        for t in 0..3 {
            let m = &m;
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + t as u64);
                let mut live: Vec<(NonNull<u8>, usize, usize)> = Vec::new();
                for serial in 0..ITERS {
                    if live.len() < MAX_LIVE && rng.below(3) != 0 {
                        let pages = 1 + rng.below(32) as usize;
                        let p = m.vmalloc(pages * PAGE_SIZE).expect("vmalloc");
                        for i in 0..pages {
                            // SAFETY: A fresh area of `pages` pages owned by this thread.
                            unsafe { p.as_ptr().add(i * PAGE_SIZE).cast::<u64>().write_volatile(stamp(t, serial, i)) };
                        }
                        live.push((p, pages, serial));
                    } else if !live.is_empty() {
                        let (p, pages, owner) = live.swap_remove(rng.below(live.len() as u64) as usize);
                        check_area(m, p, pages, t, owner);
                        if rng.below(4) == 0 {
                            let _irq = atomic_section();
                            // SAFETY: The test's own area (or none: refused), unused afterwards.
                            unsafe { m.vfree(p.as_ptr()) };
                        } else {
                            // SAFETY: The test's own area (or none: refused), unused afterwards.
                            unsafe { m.vfree(p.as_ptr()) };
                        }
                    }
                }
                for (p, pages, owner) in live {
                    check_area(m, p, pages, t, owner);
                    // SAFETY: The test's own area (or none: refused), unused afterwards.
                    unsafe { m.vfree(p.as_ptr()) };
                }
                m.release_cpu();
            });
        }
    });
    m.flush_deferred_vfree();
    // Purge, and give back the frames the frame cache still holds.
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().nr_deferred(), 0);
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
    assert!(m.vm().stats().deferred_frees.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(m.vm().stats().purges.load(std::sync::atomic::Ordering::Relaxed) > 0, "threshold purges ran");
    m.vm().check();
    m.release_cpu();
    m.drain_all_pages();
    // Node chunks and nothing else stay allocated (a few order-2 blocks).
    let kept = free_before - m.total_free();
    assert!(kept <= 64, "{kept} pages not returned");
    assert_eq!(m.vmallocinfo(), "");
}

/// The frame cache and the VA pool under concurrent reclaim: two threads allocate, stamp,
/// check and free areas of a few sizes (so most come from the cache or the pool) while a third
/// runs the shrinker and `vm_unmap_aliases` in a loop. A cached area released while another
/// thread takes it, or a range handed out twice, would break a stamp or an invariant.
#[test]
fn vmalloc_reuse_while_the_shrinker_runs() {
    let m = crate::machine(Profile::I386, 256, 4, true);
    let free_before = m.total_free();
    let done = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let m = &m;
                s.spawn(move || {
                    let mut rng = Rng(0x51_7cc1_b727_220a + t as u64);
                    let mut live: Vec<(NonNull<u8>, usize, usize)> = Vec::new();
                    for serial in 0..REUSE_ITERS {
                        if live.len() < 8 && rng.below(2) == 0 {
                            let pages = [1, 2, 4, 8][rng.below(4) as usize];
                            let p = m.vmalloc(pages * PAGE_SIZE).expect("vmalloc");
                            for i in 0..pages {
                                // SAFETY: A fresh area of `pages` pages owned by this thread.
                                let at = unsafe { p.as_ptr().add(i * PAGE_SIZE).cast::<u64>() };
                                // SAFETY: As above.
                                unsafe { at.write_volatile(stamp(t, serial, i)) };
                            }
                            live.push((p, pages, serial));
                        } else if let Some((p, pages, owner)) = live.pop() {
                            check_area(m, p, pages, t, owner);
                            // SAFETY: The test's own area (or none: refused), unused afterwards.
                            unsafe { m.vfree(p.as_ptr()) };
                        }
                    }
                    for (p, pages, owner) in live {
                        check_area(m, p, pages, t, owner);
                        // SAFETY: The test's own area (or none: refused), unused afterwards.
                        unsafe { m.vfree(p.as_ptr()) };
                    }
                    m.release_cpu();
                })
            })
            .collect();
        let (m, done) = (&m, &done);
        s.spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                m.vm_shrink(usize::MAX);
                m.vm_unmap_aliases();
                thread::yield_now();
            }
            m.release_cpu();
        });
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let stats = m.vm().stats();
    assert!(stats.cache_hits.load(std::sync::atomic::Ordering::Relaxed) > 0, "the cache served some");
    m.vm().check();
    m.vm_reclaim_and_purge();
    assert_eq!((m.vm().nr_vmalloc_pages(), m.vm().cached_pages(), m.vm().pooled_areas()), (0, 0, 0));
    m.vm().check();
    m.release_cpu();
    m.drain_all_pages();
    let kept = free_before - m.total_free();
    assert!(kept <= 64, "{kept} pages not returned");
}
