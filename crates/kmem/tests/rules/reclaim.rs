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
    // The node's state as /proc/zoneinfo and show_mem print it (`kswapd_failures >=
    // MAX_RECLAIM_RETRIES`).
    let node_state = |m: &kmem::Machine| {
        m.log().clear();
        m.pages().show_mem(kmem::zone::ZoneType::Normal);
        let shown = m.dmesg();
        let zoneinfo = m.zoneinfo();
        (shown.contains("all_unreclaimable? yes"), zoneinfo.contains("node_unreclaimable:  1"))
    };
    assert_eq!(node_state(&m), (true, true), "a hopeless node is all_unreclaimable");
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
    assert_eq!(node_state(&m), (false, false), "reclaimable again");
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

/// A shrinker with a large cache that frees nothing: records what each `scan_objects` call is
/// asked for.
struct BigShrinker {
    count: usize,
    batch: usize,
    stop: bool,
    asked: std::sync::Mutex<Vec<usize>>,
}

impl BigShrinker {
    fn new(count: usize, batch: usize, stop: bool) -> Self {
        Self { count, batch, stop, asked: Vec::new().into() }
    }

    fn asked(&self) -> Vec<usize> {
        self.asked.lock().unwrap().clone()
    }
}

impl kmem_core::reclaim::Shrinker for BigShrinker {
    fn name(&self) -> &str {
        "big"
    }
    fn count_objects(&self) -> usize {
        self.count
    }
    fn scan_objects(&self, nr: usize, _gfp: kmem::Gfp) -> usize {
        self.asked.lock().unwrap().push(nr);
        if self.stop { kmem_core::reclaim::SHRINK_STOP } else { 0 }
    }
    fn batch(&self) -> usize {
        self.batch
    }
}

/// Runs one `__GFP_NORETRY` request (one direct-reclaim pass) on an exhausted machine with `s`
/// registered; returns what `s` was asked for.
fn one_reclaim_pass(s: BigShrinker) -> Vec<usize> {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let ptr: std::ptr::NonNull<dyn kmem_core::reclaim::Shrinker> = std::ptr::NonNull::from(&s);
    // SAFETY: unregistered below, before `s` drops.
    let id = unsafe { m.register_shrinker(ptr) }.unwrap();
    assert!(m.alloc_pages(GFP_KERNEL | kmem::gfp::__GFP_NORETRY | __GFP_NOWARN, 0).is_err());
    assert!(m.unregister_shrinker(id));
    free_all(&m, held);
    s.asked()
}

/// Kernel `do_shrink_slab`: `scan_objects` is called with `nr_to_scan = min(batch_size,
/// total_scan)` (`SHRINK_BATCH` = 128 by default), never the whole cache at once.
#[test]
fn reclaim_shrinker_is_scanned_in_batches() {
    let asked = one_reclaim_pass(BigShrinker::new(1_000_000, 0, false));
    let max = asked.iter().copied().max().unwrap_or(0);
    assert!(max <= 128, "kernel: nr_to_scan <= SHRINK_BATCH (128); kmem asked for {max} in one call");
}

/// Kernel `do_try_to_free_pages` + `do_shrink_slab`: a direct-reclaim pass that frees nothing
/// lowers the priority from `DEF_PRIORITY` (12) to 0, and at priority `p` a shrinker with
/// `freeable` objects is scanned `min((nr_deferred >> p) + (freeable >> p) * 4 / DEFAULT_SEEKS,
/// 2 * freeable)` objects in full batches; the rest of a batch is not scanned but deferred
/// (`nr_deferred`, at most `2 * freeable`) to the next priority.
#[test]
fn reclaim_direct_reclaim_scans_by_falling_priority() {
    let count = 1_000_000usize;
    let asked = one_reclaim_pass(BigShrinker::new(count, 0, false));
    let mut expected = Vec::new();
    let mut deferred = 0usize;
    for p in (0..=12).rev() {
        let delta = (count >> p) * 4 / 2;
        let total = ((deferred >> p) + delta).min(2 * count);
        let calls = total / 128;
        expected.extend(std::iter::repeat_n(128, calls));
        deferred = (deferred + delta).saturating_sub(calls * 128).min(2 * count);
    }
    assert_eq!(asked.len(), expected.len(), "scan_objects calls: priorities 12..=0 in batches of 128");
    assert_eq!(asked, expected);
}

/// A shrinker's own batch size is honoured (at priorities 12 and 11 its share, 488 and 976
/// objects, is less than a batch: not scanned), and `SHRINK_STOP` ends its part of the pass:
/// one call per priority level from 10 to 0.
#[test]
fn reclaim_shrinker_batch_and_shrink_stop() {
    let asked = one_reclaim_pass(BigShrinker::new(1_000_000, 1000, true));
    assert_eq!(asked, vec![1000; 11]);
}

/// Kernel `out_of_memory`: the OOM notifier chain runs first; if it freed anything the call
/// returns "progress" before `dump_header`, so no "invoked oom-killer" report is printed.
#[test]
fn pa15_an_oom_notifier_that_frees_prevents_the_oom_report() {
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let reg = register_oom(&m, vec![block]);
    m.log().clear();
    let ooms = m.stats().oom.load(SEQ);
    let page = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).expect("the OOM notifier freed a block");
    assert_eq!(reg.notifier.calls(), 1);
    let reports = count_log(&m, "invoked oom-killer");
    let oom_delta = m.stats().oom.load(SEQ) - ooms;
    // SAFETY: the test's own page.
    unsafe { m.free_pages(page, 0) };
    drop(reg);
    free_all(&m, held);
    assert_eq!(reports, 0, "kernel: notifier freed memory -> no OOM report (kmem printed {reports})");
    assert_eq!(oom_delta, 0, "kernel: no OOM event counted when the notifiers freed memory");
}

struct StolenNotifier {
    m: kmem::Machine,
    calls: std::sync::atomic::AtomicUsize,
    blocks: std::sync::Mutex<Vec<(usize, u32)>>,
    stolen: std::sync::Mutex<Vec<usize>>,
}
impl kmem_core::reclaim::OomNotifier for StolenNotifier {
    fn out_of_memory(&self) -> usize {
        let call = self.calls.fetch_add(1, SEQ);
        let Some((pfn, order)) = self.blocks.lock().unwrap().pop() else { return 0 };
        let page = self.m.pfn_to_page(pfn).unwrap();
        // SAFETY: a block the test allocated and handed over.
        unsafe { self.m.free_pages(page, order) };
        if call == 0 {
            // A concurrent allocator takes what the first call freed before the waiter retries.
            let p =
                self.m.alloc_pages(kmem::gfp::GFP_ATOMIC | kmem::gfp::__GFP_MEMALLOC | __GFP_NOWARN, order).unwrap();
            self.stolen.lock().unwrap().push(self.m.page_to_pfn(p).unwrap());
        }
        1 << order
    }
}

/// Kernel: `__alloc_pages_may_oom` runs on every pass that reaches it, and `out_of_memory`
/// calls the notifier chain every time; a notifier that frees memory is progress
/// (`no_progress_loops = 0`, retry). Here the first call's block is taken by someone else
/// before the request retries; the second pass calls the notifier again, which frees another.
#[test]
fn pa15_oom_notifiers_are_called_again_on_later_passes() {
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    let a = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let b = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let n =
        Box::new(StolenNotifier { m: m.clone(), calls: 0.into(), blocks: vec![a, b].into(), stolen: vec![].into() });
    let ptr: std::ptr::NonNull<dyn kmem_core::reclaim::OomNotifier> = std::ptr::NonNull::from(&*n);
    // SAFETY: unregistered below before `n` drops.
    let id = unsafe { m.register_oom_notifier(ptr) }.unwrap();
    let r = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0);
    m.unregister_oom_notifier(id);
    let calls = n.calls.load(SEQ);
    if let Ok(p) = r {
        // SAFETY: own page.
        unsafe { m.free_pages(p, 0) };
    }
    assert!(
        r.is_ok(),
        "kernel: the second OOM pass calls the notifier again and succeeds; kmem called it {calls}x and failed"
    );
    assert_eq!(calls, 2);
    assert_eq!(m.stats().oom.load(SEQ), 0, "the notifiers made progress each time: no OOM event");
    for pfn in n.stolen.lock().unwrap().drain(..) {
        // SAFETY: the block the notifier's allocation took, unused.
        unsafe { m.free_pages(m.pfn_to_page(pfn).unwrap(), MAX_PAGE_ORDER) };
    }
    free_all(&m, held);
}

/// Kernel `out_of_memory`: "The OOM killer does not compensate for IO-less reclaim": after the
/// notifier chain, a request without `__GFP_FS` returns progress with no report, and the
/// allocator retries. In kmem it keeps retrying (waiting for frees between passes) until the
/// `oom_timeout` deviation ends it: a plain failure, no OOM report, no OOM event.
#[test]
fn pa15_nofs_and_noio_requests_print_no_oom_report() {
    use kmem::gfp::{GFP_NOFS, GFP_NOIO};
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let reg = register_oom(&m, Vec::new());
    for gfp in [GFP_NOFS, GFP_NOIO] {
        m.log().clear();
        let (ooms, sleeps, fails, calls) =
            (m.stats().oom.load(SEQ), m.stats().sleeps.load(SEQ), m.nr_alloc_fail(), reg.notifier.calls());
        assert!(m.alloc_pages(gfp | __GFP_NOWARN, 0).is_err(), "{gfp:?}: the oom_timeout ends it");
        let n = count_log(&m, "invoked oom-killer");
        assert_eq!(n, 0, "kernel: {gfp:?} never reaches dump_header (kmem printed {n} OOM reports)");
        assert_eq!(m.stats().oom.load(SEQ), ooms, "{gfp:?}: no OOM event");
        assert!(reg.notifier.calls() > calls, "{gfp:?}: the notifier chain still runs first");
        assert!(m.stats().sleeps.load(SEQ) > sleeps, "{gfp:?}: counted as progress, it waits and retries");
        assert_eq!(m.nr_alloc_fail(), fails + 1);
    }
    drop(reg);
    free_all(&m, held);
}

/// PA-14, kernel 6.8+ (`gfp_compaction_allowed` needs `__GFP_IO`): "Do not retry costly high
/// order allocations unless they are __GFP_RETRY_MAYFAIL and we can compact" — a costly
/// `GFP_NOIO | __GFP_RETRY_MAYFAIL` request goes to nopage after one reclaim pass, while a
/// costly `GFP_KERNEL | __GFP_RETRY_MAYFAIL` one keeps retrying.
#[test]
fn pa14_costly_noio_retry_mayfail_does_one_pass() {
    use kmem::gfp::{__GFP_RETRY_MAYFAIL, GFP_NOIO};
    let m = crate::builder(Profile::I386, 64).pcp(false).oom_timeout(Duration::from_secs(30)).build().unwrap();
    let held = exhaust(&m);
    // Claims progress every pass, frees nothing.
    let reg = register(&m, TestShrinker::new(&m, Vec::new(), 0, true));
    assert!(m.alloc_pages(GFP_NOIO | __GFP_RETRY_MAYFAIL | __GFP_NOWARN, 4).is_err());
    let calls = reg.shrinker.calls();
    assert_eq!(calls, 1, "kernel: costly NOIO|RETRY_MAYFAIL cannot compact -> one pass; kmem made {calls}");
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN, 4).is_err());
    let calls = reg.shrinker.calls() - calls;
    assert_eq!(calls, MAX_RECLAIM_RETRIES as usize + 1, "GFP_KERNEL can compact: it retries");
    drop(reg);
    free_all(&m, held);
}

/// `Registry::unregister` waits for its own entry's calls only (the kernel waits for the old
/// shrinker's own references, `shrinker_free`): a newer entry registered meanwhile does not
/// take the slot being drained, so when that newer entry's callback needs something the
/// unregistering thread holds, nothing deadlocks. (It used to: the slot was reused at once and
/// `unregister` waited on the slot's pin count.) The 3 s is a watchdog, not a timing claim.
#[test]
fn reclaim_unregister_waits_only_for_its_own_entry() {
    use kmem_core::reclaim::{OomNotifier, Registry};
    use std::sync::{Arc, Barrier, Mutex};
    struct Slow(Arc<Barrier>, Duration);
    impl OomNotifier for Slow {
        fn out_of_memory(&self) -> usize {
            self.0.wait();
            std::thread::sleep(self.1);
            0
        }
    }
    struct NeedsLock(Arc<Mutex<()>>, Arc<Barrier>);
    impl OomNotifier for NeedsLock {
        fn out_of_memory(&self) -> usize {
            self.1.wait();
            drop(self.0.lock().unwrap());
            0
        }
    }
    let reg: &'static Registry<dyn OomNotifier> = Box::leak(Box::new(Registry::new()));
    let b1 = Arc::new(Barrier::new(2));
    let old: &'static Slow = Box::leak(Box::new(Slow(b1.clone(), Duration::from_millis(100))));
    // SAFETY: leaked.
    let old_id = unsafe { reg.register(std::ptr::NonNull::from(old as &dyn OomNotifier)) }.unwrap();
    // Pass 1: runs `old`'s callback (pins slot 0 for 100 ms).
    let p1 = std::thread::spawn(move || {
        reg.for_each(|n| {
            n.out_of_memory();
        })
    });
    b1.wait();
    let lock = Arc::new(Mutex::new(()));
    let b2 = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let (lock2, b2a) = (lock.clone(), b2.clone());
    // Thread A: holds `lock`, unregisters `old`.
    let a = std::thread::spawn(move || {
        let _g = lock2.lock().unwrap();
        b2a.wait(); // (1) lock held
        let r = reg.unregister(old_id);
        tx.send(r).unwrap();
    });
    b2.wait();
    std::thread::sleep(Duration::from_millis(10)); // A is now waiting for slot 0's pins
    let b3 = Arc::new(Barrier::new(2));
    let newer: &'static NeedsLock = Box::leak(Box::new(NeedsLock(lock.clone(), b3.clone())));
    // SAFETY: leaked.
    let _new_id = unsafe { reg.register(std::ptr::NonNull::from(newer as &dyn OomNotifier)) }.unwrap();
    // Pass 2: calls `newer` (same slot), which blocks on `lock` held by A.
    let _p2 = std::thread::spawn(move || {
        reg.for_each(|n| {
            n.out_of_memory();
        })
    });
    b3.wait();
    p1.join().unwrap();
    // `old`'s call is over: the kernel's unregister would return now.
    let done = rx.recv_timeout(Duration::from_secs(3));
    assert!(
        done.is_ok(),
        "unregister(old) still waiting 3 s after old's last call ended: deadlock with the slot's new entry"
    );
    a.join().unwrap();
}

/// Kernel `pgdat_balanced`: kswapd's run is over when *some* populated zone up to the waker's
/// highest zone passes the high watermark (with that zone's `lowmem_reserve`), not when every
/// zone of the node does. With ZONE_DMA exhausted and ZONE_NORMAL free, a run for a
/// `GFP_DMA` waker is unbalanced (and, reclaiming nothing, fails), while a run that may count
/// ZONE_NORMAL is balanced at once (kmem used to require every zone above its high watermark).
#[test]
fn kswapd_balanced_when_one_eligible_zone_passes_the_high_watermark() {
    use kmem::gfp::{__GFP_DMA, __GFP_MEMALLOC, __GFP_NORETRY, GFP_DMA};
    let m = i386_nopcp(64);
    let held = grab_all(&m, GFP_KERNEL | __GFP_DMA | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN);
    let dma = m.zones().iter().find(|z| z.kind() == kmem::zone::ZoneType::Dma).unwrap().free_pages();
    assert_eq!(dma, 0, "ZONE_DMA exhausted");
    // A GFP_DMA waker: only ZONE_DMA is eligible.
    assert!(m.alloc_pages(GFP_DMA | GFP_NOWAIT, 0).is_err());
    let rounds = m.stats().kswapd_rounds.load(SEQ);
    assert!(!m.kswapd_balance(), "ZONE_DMA is the only eligible zone");
    assert_eq!(m.kswapd_failures(), 1);
    // A run nobody asked a zone for considers every zone: ZONE_NORMAL passes.
    assert!(m.kswapd_balance(), "ZONE_NORMAL is above its high watermark");
    assert_eq!(m.kswapd_failures(), 1, "a balanced run neither fails nor resets");
    assert_eq!(m.stats().kswapd_rounds.load(SEQ), rounds + 2);
    free_all(&m, held);
}

/// Kernel `wakeup_kswapd`: the slow path wakes kswapd unless the node is balanced for the
/// request (`pgdat_balanced`: some zone it may use passes its high watermark at the request's
/// order). Half of lowmem free in single pages is far above every watermark in pages, but
/// holds no order-3 block: an order-3 request that fails wakes kswapd (and records its order
/// for kswapd's run), while order-0 requests are served by the fast path without waking it.
#[test]
fn kswapd_is_woken_for_an_order_no_zone_can_serve() {
    let m = i386_nopcp(64);
    let mut held = grab_all(&m, GFP_KERNEL | kmem::gfp::__GFP_MEMALLOC | __GFP_NOWARN);
    // Split everything into single pages and free every other one.
    let mut singles = Vec::new();
    for (page, order) in held.drain(..) {
        // SAFETY: The test's own block, nobody else touches it.
        unsafe { m.split_page(page, order) }.expect("an allocated block");
        let first = pfn(&m, page);
        for i in 0..1usize << order {
            singles.push(m.pages().pfn_to_page(first + i).expect("a page of the machine"));
        }
    }
    singles.sort_by_key(|p| pfn(&m, p));
    let mut kept = Vec::new();
    for (i, page) in singles.into_iter().enumerate() {
        if i % 2 == 0 {
            // SAFETY: The test's own page (split above), unused afterwards.
            unsafe { m.free_pages(page, 0) };
        } else {
            kept.push((page, 0));
        }
    }
    for z in m.zones().iter().filter(|z| z.managed() > 0) {
        assert!(z.free_pages() > z.wmark(kmem::zone::Wmark::High), "{:?} far above high", z.kind());
    }
    let w = m.nr_kswapd_wakeups();
    let page = m.alloc_pages(GFP_NOWAIT | __GFP_NOWARN, 0).expect("order 0 from the fast path");
    assert_eq!(m.nr_kswapd_wakeups(), w, "balanced for order 0: not woken");
    assert!(m.alloc_pages(GFP_NOWAIT | __GFP_NOWARN, 3).is_err(), "no order-3 block anywhere");
    assert_eq!(m.nr_kswapd_wakeups(), w + 1, "not balanced for order 3: woken");
    kept.push((page, 0));
    free_all(&m, kept);
    check(&m);
}
