//! Reclaim, kswapd and OOM (SEMANTICS §2.8, PA-14, PA-15): kswapd's hopeless node, shrinker
//! batches and priorities, the OOM notifier chain, IO-less requests, costly requests that
//! cannot compact, and the callback registry.
use std::time::Duration;

use kmem::gfp::{__GFP_NOWARN, GFP_KERNEL, GFP_NOWAIT};
use kmem::{MAX_PAGE_ORDER, Profile};

use crate::*;

/// `MAX_RECLAIM_RETRIES`.
const MAX_RECLAIM_RETRIES: u32 = 16;

/// Kernel `balance_pgdat`/`wakeup_kswapd`: each kswapd run that reclaims nothing raises
/// `kswapd_failures`; at `MAX_RECLAIM_RETRIES` the node is hopeless ("leave it to direct
/// reclaim") and allocations stop waking kswapd, until some reclaim makes progress
/// (`shrink_node` resets the count, direct reclaim included).
#[test]
fn kswapd_hopeless_node_is_not_woken_until_reclaim_progresses() {
    // No kswapd thread: the test runs the rounds itself, so it counts them exactly.
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    assert_eq!(m.kswapd_failures(), 0);
    for run in 1..=MAX_RECLAIM_RETRIES {
        let w = m.nr_kswapd_wakeups();
        assert!(m.alloc_pages(GFP_NOWAIT, 0).is_err());
        assert_eq!(m.nr_kswapd_wakeups(), w + 1, "run {run}: not hopeless yet, kswapd is woken");
        assert!(!m.kswapd_balance(), "nothing to reclaim");
        assert_eq!(m.kswapd_failures(), run);
    }
    assert!(m.kswapd_hopeless());
    let w = m.nr_kswapd_wakeups();
    for _ in 0..60 {
        assert!(m.alloc_pages(GFP_NOWAIT, 0).is_err());
    }
    assert_eq!(m.nr_kswapd_wakeups(), w, "a hopeless node is left to direct reclaim");
    // Direct reclaim that frees a block ends it.
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let reg = register(&m, TestShrinker::new(&m, vec![block], 1, false));
    let page = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).expect("the shrinker freed a page");
    drop(reg);
    assert_eq!(m.kswapd_failures(), 0, "reclaim progress resets kswapd_failures");
    let again = exhaust(&m);
    let w = m.nr_kswapd_wakeups();
    assert!(m.alloc_pages(GFP_NOWAIT, 0).is_err());
    assert_eq!(m.nr_kswapd_wakeups(), w + 1, "woken again");
    // SAFETY: the test's own page.
    unsafe { m.free_pages(page, 0) };
    free_all(&m, again);
    free_all(&m, held);
}

/// The same with the kswapd thread: once the node is hopeless it runs no more rounds however
/// often allocations fail (kernel: it sleeps, `prepare_kswapd_sleep`; nobody wakes it).
#[test]
fn kswapd_gives_up_after_max_reclaim_retries() {
    let m = builder(Profile::I386, 64).pcp(false).kswapd(true).trim_after(None).build().unwrap();
    let held = exhaust(&m);
    // Wake it until it has failed MAX_RECLAIM_RETRIES times (a watchdog, not a timing claim).
    let watchdog = std::time::Instant::now();
    while !m.kswapd_hopeless() {
        assert!(m.alloc_pages(GFP_NOWAIT, 0).is_err());
        std::thread::sleep(Duration::from_millis(1));
        assert!(watchdog.elapsed() < Duration::from_secs(60), "kswapd never became hopeless");
    }
    let r0 = m.stats().kswapd_rounds.load(SEQ);
    assert!(r0 >= MAX_RECLAIM_RETRIES as usize);
    for _ in 0..60 {
        assert!(m.alloc_pages(GFP_NOWAIT, 0).is_err());
        std::thread::sleep(Duration::from_millis(1));
    }
    let rounds = m.stats().kswapd_rounds.load(SEQ) - r0;
    assert_eq!(m.kswapd_failures(), MAX_RECLAIM_RETRIES, "no run after the node became hopeless");
    free_all(&m, held);
    assert_eq!(rounds, 0, "kernel: a hopeless node's kswapd is not woken; kmem ran {rounds} more rounds");
}
