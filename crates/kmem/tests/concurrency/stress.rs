//! Stress: threads allocate and free random blocks of orders 0..=5 with `GFP_KERNEL`, hand
//! some blocks to the next thread to free (cross-CPU frees), and stamp every page of every
//! block with an owner pattern that is verified before the free, so two owners of one page
//! are caught. Afterwards everything is free again: `check()` passes and buddyinfo equals the
//! initial one (PA-5, PA-17: thread exit gives per-CPU pages back).
//!
//! `KMEM_STRESS_ITERS` sets the iterations per thread (`.ci/valgrind` lowers it).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use kmem::Machine;
use kmem::gfp::{GFP_KERNEL, Gfp};

use crate::{Rng, pcp_pages, stress_iters, stress_machine};

/// Blocks a thread keeps at most (bounds memory: 64 × 32 pages per thread).
const MAX_LIVE: usize = 64;
const MAX_ORDER: u64 = 5;

/// What thread `owner` writes at the start of page `pfn`.
fn pattern(owner: usize, pfn: usize) -> [u8; 16] {
    let mut p = [0xa0 | owner as u8; 16];
    p[8..].copy_from_slice(&(pfn as u64).to_le_bytes());
    p
}

fn stamp(m: &Machine, owner: usize, pfn: usize, order: u32) {
    for p in pfn..pfn + (1 << order) {
        let addr = m.pfn_address(p).expect("lowmem page");
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(addr, &pattern(owner, p)) }
            .unwrap_or_else(|_| panic!("write_bytes refused page {p:#x} of allocated block {pfn:#x}/{order}"));
    }
}

fn verify(m: &Machine, owner: usize, pfn: usize, order: u32) {
    let mut buf = [0u8; 16];
    for p in pfn..pfn + (1 << order) {
        let addr = m.pfn_address(p).expect("lowmem page");
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.read_bytes(addr, &mut buf) }
            .unwrap_or_else(|_| panic!("read_bytes refused page {p:#x} of allocated block {pfn:#x}/{order}"));
        assert_eq!(buf, pattern(owner, p), "page {p:#x} of thread {owner}'s block {pfn:#x}/{order} was overwritten");
    }
}

/// A block handed to another thread: (pfn, order, owner whose pattern it carries).
type Handoff = (usize, u32, usize);

fn free_block(m: &Machine, (pfn, order, owner): Handoff) {
    verify(m, owner, pfn, order);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(m.pfn_to_page(pfn).expect("page"), order) };
}

fn worker(m: &Machine, t: usize, iters: usize, gfp: Gfp, tx: SyncSender<Handoff>, rx: Receiver<Handoff>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) << 32));
    let mut live: Vec<(usize, u32)> = Vec::with_capacity(MAX_LIVE);
    for _ in 0..iters {
        while let Ok(handoff) = rx.try_recv() {
            free_block(m, handoff);
        }
        let r = rng.below(100);
        if live.is_empty() || (live.len() < MAX_LIVE && r < 50) {
            let order = rng.below(MAX_ORDER + 1) as u32;
            let page = m.alloc_pages(gfp, order).unwrap_or_else(|_| panic!("thread {t}: order {order} failed"));
            let pfn = m.page_to_pfn(page).expect("pfn");
            stamp(m, t, pfn, order);
            live.push((pfn, order));
        } else {
            let (pfn, order) = live.swap_remove(rng.below(live.len() as u64) as usize);
            if r.is_multiple_of(4) {
                match tx.try_send((pfn, order, t)) {
                    Ok(()) => continue,
                    Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => free_block(m, h),
                }
            } else {
                free_block(m, (pfn, order, t));
            }
        }
    }
    for (pfn, order) in live {
        free_block(m, (pfn, order, t));
    }
    drop(tx);
    // Until the previous thread in the ring is done sending.
    for handoff in rx {
        free_block(m, handoff);
    }
}

fn run(threads: usize) {
    let m = stress_machine(8);
    let initial = m.buddyinfo();
    let iters = stress_iters();
    let (mut txs, rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::sync_channel::<Handoff>(64)).unzip();
    // Thread t receives on channel t and sends on channel t + 1 (a ring).
    txs.rotate_left(1);
    let joins: Vec<_> = txs
        .into_iter()
        .zip(rxs)
        .enumerate()
        .map(|(t, (tx, rx))| {
            let m = m.clone();
            thread::Builder::new()
                .name(format!("stress{t}"))
                .spawn(move || worker(&m, t, iters, GFP_KERNEL, tx, rx))
                .expect("spawn")
        })
        .collect();
    for join in joins {
        if let Err(panic) = join.join() {
            std::panic::resume_unwind(panic);
        }
    }
    // Every thread has exited, which handed its CPU slot and per-CPU pages back.
    assert_eq!(pcp_pages(&m), 0, "pages left on per-CPU lists after the threads exited");
    assert_eq!(m.nr_alloc_fail(), 0);
    // SAFETY: All threads that used the machine have been joined; kswapd is off.
    unsafe { m.check() };
    assert_eq!(m.buddyinfo(), initial, "buddyinfo not restored after freeing everything");
}

/// PA-5, PA-17: two threads, each freeing some of the other's blocks.
#[test]
fn stress_two_threads_cross_free() {
    run(2);
}

/// PA-5, PA-17: four threads in a ring (more threads than host CPUs on a 2-core machine).
#[test]
fn stress_four_threads_ring() {
    run(4);
}

/// PA-17 / DESIGN §3 "CPUs are threads": a thread that exits with pages on its per-CPU lists
/// gives them back without any drain call.
#[test]
fn stress_thread_exit_returns_per_cpu_pages() {
    let m = stress_machine(8);
    let initial = m.buddyinfo();
    let n = stress_iters().clamp(4, 1000);
    let (m2, initial2) = (m.clone(), initial.clone());
    thread::Builder::new()
        .name("parker".into())
        .spawn(move || {
            let mut pfns = Vec::new();
            for i in 0..n {
                let order = (i % 4) as u32;
                let page = m2.alloc_pages(GFP_KERNEL, order).expect("plenty of memory");
                pfns.push((m2.page_to_pfn(page).expect("pfn"), order));
            }
            for (pfn, order) in pfns {
                // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
                unsafe { m2.free_pages(m2.pfn_to_page(pfn).expect("page"), order) };
            }
            // A long run of high-order frees empties the lists (auto-tuning's `free_high`); an
            // order-0 allocation refills them with a batch, and its free parks one more.
            let page = m2.alloc_pages(GFP_KERNEL, 0).expect("plenty of memory");
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m2.free_pages(page, 0) };
            assert!(pcp_pages(&m2) > 0, "no page parked on the per-CPU lists; the test proves nothing");
            assert_ne!(m2.buddyinfo(), initial2, "buddyinfo restored while pages are parked");
        })
        .expect("spawn")
        .join()
        .expect("parker panicked");
    assert_eq!(pcp_pages(&m), 0, "the exited thread's per-CPU pages were not given back");
    // SAFETY: The only thread that used the machine has been joined; kswapd is off.
    unsafe { m.check() };
    assert_eq!(m.buddyinfo(), initial, "buddyinfo not restored after the thread exited");
}
