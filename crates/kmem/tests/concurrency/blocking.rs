//! The slow path's give-up table (SEMANTICS §2.8, PA-13, PA-14) with real sleeping: each test
//! exhausts a small machine with `GFP_ATOMIC`, so that nothing a `GFP_KERNEL` request may use
//! is left, then checks what a request of each class does, which counters move, and what the
//! log says. Waiters run on their own threads and are woken by frees from other threads.

use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::Duration;

use kmem::gfp::{
    __GFP_DMA32, __GFP_MEMALLOC, __GFP_NOFAIL, __GFP_NORETRY, __GFP_NOWARN, __GFP_RETRY_MAYFAIL, GFP_ATOMIC,
    GFP_KERNEL, GFP_NOWAIT, Gfp,
};
use kmem::{Machine, Profile};
use kmem_core::reclaim::{OomNotifier, RegistrationId, Shrinker};

use crate::{builder, exhaust, exhaust_with, free_pfns, small_machine, wait_until};

/// `MAX_RECLAIM_RETRIES` (SEMANTICS §2.8).
const MAX_RECLAIM_RETRIES: usize = 16;
const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(200);

const OOM_LINE: &str = "invoked oom-killer";
const NO_KILLABLE: &str = "Out of memory and no killable processes...";
const FAILURE: &str = "page allocation failure: order:";

/// The counters the give-up rules move, at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counters {
    allocstall: usize,
    sleeps: usize,
    oom: usize,
    alloc_fail: usize,
}

fn counters(m: &Machine) -> Counters {
    let s = m.stats();
    Counters {
        allocstall: m.nr_allocstall(),
        sleeps: s.sleeps.load(Relaxed),
        oom: s.oom.load(Relaxed),
        alloc_fail: m.nr_alloc_fail(),
    }
}

/// Allocates on a new thread named `name`; the thread returns the pfn (a `&Page` cannot leave
/// it, it borrows the machine).
fn spawn_alloc(m: &Machine, name: &str, gfp: Gfp, order: u32) -> thread::JoinHandle<Option<usize>> {
    let m = m.clone();
    thread::Builder::new()
        .name(name.into())
        .spawn(move || m.alloc_pages(gfp, order).ok().map(|p| m.page_to_pfn(p).expect("pfn")))
        .expect("spawn")
}

/// Frees `pfns` on a new thread and waits for that thread to end. The thread's exit hands
/// its CPU slot back, so pages that went to its per-CPU lists (no waiter was counted at the
/// moment of the free) reach the buddy lists too.
fn free_on_other_thread(m: &Machine, pfns: Vec<usize>) {
    let m = m.clone();
    thread::Builder::new()
        .name("freer".into())
        .spawn(move || free_pfns(&m, pfns))
        .expect("spawn")
        .join()
        .expect("freer panicked");
}

/// Every other pfn of `held`: pages from both zones, plenty for any watermark.
fn take_half(held: &mut Vec<usize>) -> Vec<usize> {
    let (give, keep): (Vec<_>, Vec<_>) = std::mem::take(held).into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    *held = keep.into_iter().map(|(_, p)| p).collect();
    give.into_iter().map(|(_, p)| p).collect()
}

/// Frees what the test still holds and checks the allocator's invariants. Call with every
/// other thread joined (kswapd off).
fn finish(m: &Machine, held: Vec<usize>) {
    free_pfns(m, held);
    // SAFETY: Every thread that used the machine has been joined and kswapd is off.
    unsafe { m.check() };
}

/// A shrinker that owns order-0 pages and frees them when scanned; records which threads
/// called it.
struct PageHolder {
    m: Machine,
    pfns: Mutex<Vec<usize>>,
    counted_by: Mutex<Vec<String>>,
    scanned_by: Mutex<Vec<String>>,
    freed: AtomicUsize,
}

impl PageHolder {
    fn new(m: &Machine, pfns: Vec<usize>) -> Self {
        Self {
            m: m.clone(),
            pfns: Mutex::new(pfns),
            counted_by: Mutex::default(),
            scanned_by: Mutex::default(),
            freed: AtomicUsize::new(0),
        }
    }
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

impl Shrinker for PageHolder {
    fn name(&self) -> &str {
        "page-holder"
    }

    fn count_objects(&self) -> usize {
        self.counted_by.lock().unwrap().push(thread_name());
        self.pfns.lock().unwrap().len()
    }

    fn scan_objects(&self, nr_to_scan: usize, _gfp: Gfp) -> usize {
        self.scanned_by.lock().unwrap().push(thread_name());
        let mut pfns = self.pfns.lock().unwrap();
        let take = nr_to_scan.min(pfns.len());
        let keep = pfns.len() - take;
        let batch = pfns.split_off(keep);
        drop(pfns);
        free_pfns(&self.m, batch);
        self.freed.fetch_add(take, Relaxed);
        take
    }
}

impl OomNotifier for PageHolder {
    fn out_of_memory(&self) -> usize {
        self.scanned_by.lock().unwrap().push(thread_name());
        let batch = std::mem::take(&mut *self.pfns.lock().unwrap());
        let n = batch.len();
        free_pfns(&self.m, batch);
        self.freed.fetch_add(n, Relaxed);
        n
    }
}

/// Unregisters on drop; borrows the callback so it cannot be dropped while registered.
struct Registered<'a> {
    m: &'a Machine,
    id: RegistrationId,
    oom: bool,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if self.oom {
            self.m.unregister_oom_notifier(self.id);
        } else {
            self.m.unregister_shrinker(self.id);
        }
    }
}

fn register_shrinker<'a>(m: &'a Machine, s: &'a PageHolder) -> Registered<'a> {
    // SAFETY: `Registered` borrows `s` and unregisters before the borrow ends; `PageHolder`
    // never registers or unregisters from its callbacks.
    let id = unsafe { m.register_shrinker(NonNull::from(s as &dyn Shrinker)) }.expect("shrinker slot");
    Registered { m, id, oom: false }
}

fn register_oom_notifier<'a>(m: &'a Machine, n: &'a PageHolder) -> Registered<'a> {
    // SAFETY: As in `register_shrinker`.
    let id = unsafe { m.register_oom_notifier(NonNull::from(n as &dyn OomNotifier)) }.expect("notifier slot");
    Registered { m, id, oom: true }
}

/// PA-14 / DESIGN §3 "Sleeping is real": a `GFP_KERNEL` order-0 request with nothing free
/// sleeps, and a free on another thread wakes it and it succeeds.
#[test]
fn gfp_kernel_sleeps_until_another_thread_frees() {
    let m = small_machine(LONG, false);
    let mut held = exhaust(&m);
    let before = counters(&m);
    let waiter = spawn_alloc(&m, "waiter", GFP_KERNEL, 0);
    wait_until("the GFP_KERNEL request to sleep", || counters(&m).sleeps > before.sleeps);
    assert!(!waiter.is_finished(), "GFP_KERNEL returned while nothing was free");
    free_on_other_thread(&m, take_half(&mut held));
    let pfn = waiter.join().expect("waiter panicked").expect("GFP_KERNEL failed although pages were freed");
    held.push(pfn);
    let after = counters(&m);
    assert!(after.allocstall > before.allocstall, "the waiter never reclaimed: {before:?} -> {after:?}");
    assert_eq!(after.alloc_fail, before.alloc_fail, "a request failed");
    finish(&m, held);
}

/// PA-13, GFP-5: `GFP_ATOMIC` and `GFP_NOWAIT` fail without reclaiming or sleeping; the
/// request without `__GFP_NOWARN` reports (PA-15), `GFP_NOWAIT` (NOWARN included) does not.
#[test]
fn atomic_and_nowait_fail_without_sleeping() {
    let m = small_machine(LONG, false);
    let held = exhaust(&m);
    let before = counters(&m);
    let mut tries = 0;
    for order in [0, 1, 3, 4] {
        for gfp in [GFP_NOWAIT, GFP_ATOMIC | __GFP_NOWARN] {
            assert!(m.alloc_pages(gfp, order).is_err(), "{gfp:?} order {order} succeeded on an exhausted machine");
            tries += 1;
        }
    }
    assert!(!m.log().messages().contains(FAILURE), "a __GFP_NOWARN failure was reported");
    // On another thread, where sleeping would be allowed.
    assert_eq!(spawn_alloc(&m, "atomic", GFP_ATOMIC, 0).join().unwrap(), None, "GFP_ATOMIC succeeded");
    tries += 1;
    let after = counters(&m);
    assert_eq!(after.sleeps, before.sleeps, "a non-blocking request slept");
    assert_eq!(after.allocstall, before.allocstall, "a non-blocking request entered direct reclaim");
    assert_eq!(after.oom, before.oom, "a non-blocking request invoked OOM");
    assert_eq!(after.alloc_fail, before.alloc_fail + tries);
    let log = m.log().messages();
    assert!(log.contains("atomic: page allocation failure: order:0, mode:"), "no warn_alloc report:\n{log}");
    assert!(!log.contains(OOM_LINE), "OOM report for a non-blocking request:\n{log}");
    finish(&m, held);
}

/// PA-14: `__GFP_NORETRY` does exactly one reclaim pass, then fails (with a report, no OOM).
#[test]
fn noretry_fails_after_one_reclaim_pass() {
    let m = small_machine(LONG, false);
    let held = exhaust(&m);
    let before = counters(&m);
    assert_eq!(spawn_alloc(&m, "noretry", GFP_KERNEL | __GFP_NORETRY, 0).join().unwrap(), None);
    let after = counters(&m);
    assert_eq!(after.allocstall, before.allocstall + 1, "reclaim passes");
    assert_eq!(after.sleeps, before.sleeps, "__GFP_NORETRY slept");
    assert_eq!(after.oom, before.oom, "__GFP_NORETRY invoked OOM");
    assert_eq!(after.alloc_fail, before.alloc_fail + 1);
    let log = m.log().messages();
    assert!(log.contains("noretry: page allocation failure: order:0"), "no warn_alloc report:\n{log}");
    assert!(!log.contains(OOM_LINE), "OOM report for __GFP_NORETRY:\n{log}");
    finish(&m, held);
}

/// PA-14: a costly order (> 3) without `__GFP_RETRY_MAYFAIL` never loops: one reclaim pass,
/// no OOM (the OOM killer is not invoked for costly orders), then failure.
#[test]
fn costly_order_fails_after_one_reclaim_pass() {
    let m = small_machine(LONG, false);
    let held = exhaust(&m);
    let before = counters(&m);
    assert_eq!(spawn_alloc(&m, "costly", GFP_KERNEL, 4).join().unwrap(), None);
    let after = counters(&m);
    assert_eq!(after.allocstall, before.allocstall + 1, "reclaim passes");
    assert_eq!(after.sleeps, before.sleeps, "a costly request slept");
    assert_eq!(after.oom, before.oom, "a costly request invoked OOM");
    let log = m.log().messages();
    assert!(log.contains("costly: page allocation failure: order:4"), "no warn_alloc report:\n{log}");
    assert!(!log.contains(OOM_LINE), "OOM report for a costly order:\n{log}");
    finish(&m, held);
}

/// §2.8 give-up table: `__GFP_RETRY_MAYFAIL` fails once reclaim stops making progress, after
/// a bounded number of passes (at most `MAX_RECLAIM_RETRIES + 1`), and never invokes OOM.
#[test]
fn retry_mayfail_fails_without_oom() {
    let m = small_machine(LONG, false);
    let held = exhaust(&m);
    for order in [0, 2, 4] {
        let before = counters(&m);
        let gfp = GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
        assert_eq!(spawn_alloc(&m, "mayfail", gfp, order).join().unwrap(), None, "order {order}");
        let after = counters(&m);
        let passes = after.allocstall - before.allocstall;
        assert!(
            (1..=MAX_RECLAIM_RETRIES + 1).contains(&passes),
            "order {order}: {passes} reclaim passes without progress"
        );
        assert_eq!(after.oom, before.oom, "order {order}: __GFP_RETRY_MAYFAIL invoked OOM");
        assert_eq!(after.sleeps, before.sleeps, "order {order}: __GFP_RETRY_MAYFAIL slept");
    }
    let log = m.log().messages();
    assert!(!log.contains(OOM_LINE), "OOM report for __GFP_RETRY_MAYFAIL:\n{log}");
    finish(&m, held);
}

/// DESIGN §3 "OOM": a default `GFP_KERNEL` order-0 request with nothing freeable logs the OOM
/// report, calls the OOM notifiers, waits, and after `oom_timeout` fails with a warn_alloc
/// report (kmem's documented deviation: there is no process to kill).
#[test]
fn oom_reports_notifies_and_fails_after_timeout() {
    let m = small_machine(SHORT, false);
    let held = exhaust(&m);
    let notifier = PageHolder::new(&m, Vec::new());
    let registered = register_oom_notifier(&m, &notifier);
    let before = counters(&m);
    assert_eq!(spawn_alloc(&m, "oom-victim", GFP_KERNEL, 0).join().unwrap(), None, "GFP_KERNEL succeeded");
    drop(registered);
    let after = counters(&m);
    assert!(after.oom > before.oom, "no OOM event counted");
    assert!(after.sleeps > before.sleeps, "the request failed without waiting for a free");
    assert_eq!(after.alloc_fail, before.alloc_fail + 1);
    let called_by = notifier.scanned_by.lock().unwrap().clone();
    assert!(called_by.iter().any(|t| t == "oom-victim"), "OOM notifier not called by the request: {called_by:?}");
    let log = m.log().messages();
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("log lacks {needle:?}:\n{log}"));
    let oom = at(&format!("oom-victim {OOM_LINE}: gfp_mask=0xcc0(GFP_KERNEL), order=0"));
    let mem_info = at("Mem-Info:");
    let no_kill = at(NO_KILLABLE);
    let failure = at("oom-victim: page allocation failure: order:0, mode:0xcc0(GFP_KERNEL)");
    assert!(oom < mem_info && mem_info < no_kill && no_kill < failure, "reports out of order:\n{log}");
    finish(&m, held);
}

/// DESIGN §3 "OOM": an OOM notifier that frees pages lets the request succeed, without the
/// failure report, and without the OOM report either: `out_of_memory` calls the notifier chain
/// first and returns progress before `dump_header` when it freed anything (PA-15).
#[test]
fn oom_notifier_that_frees_lets_the_request_succeed() {
    let m = small_machine(LONG, false);
    let mut held = exhaust(&m);
    let notifier = PageHolder::new(&m, take_half(&mut held));
    let registered = register_oom_notifier(&m, &notifier);
    let before = counters(&m);
    let pfn = spawn_alloc(&m, "oom-rescued", GFP_KERNEL, 0).join().unwrap();
    drop(registered);
    held.push(pfn.expect("GFP_KERNEL failed although the OOM notifier freed pages"));
    let after = counters(&m);
    assert_eq!(after.oom, before.oom, "OOM events");
    assert_eq!(after.alloc_fail, before.alloc_fail, "a request failed");
    assert!(notifier.freed.load(Relaxed) > 0, "the notifier freed nothing");
    let log = m.log().messages();
    assert!(!log.contains(OOM_LINE), "OOM report although the notifier freed pages:\n{log}");
    assert!(!log.contains(FAILURE), "failure reported although the request succeeded:\n{log}");
    finish(&m, held);
}

/// PA-14: `__GFP_NOFAIL` with direct reclaim never fails. After an OOM step it may take any
/// free page (`__alloc_pages_may_oom` gives it `ALLOC_NO_WATERMARKS`), so it first takes what
/// `GFP_ATOMIC` left below its share of the min watermark, without sleeping; with nothing free
/// at all it outlives the OOM timeout that would fail a plain `GFP_KERNEL` request, and
/// succeeds once another thread frees.
#[test]
fn nofail_takes_the_reserve_after_oom_then_blocks_until_another_thread_frees() {
    let m = small_machine(SHORT, false);
    let mut held = exhaust(&m);
    let before = counters(&m);
    assert!(m.zones().iter().any(|z| z.free_pages() > 0), "GFP_ATOMIC left a reserve");
    let nofail = spawn_alloc(&m, "nofail-reserve", GFP_KERNEL | __GFP_NOFAIL, 0);
    wait_until("the __GFP_NOFAIL request to take a reserve page", || nofail.is_finished());
    let pfn = nofail.join().expect("panicked");
    held.push(pfn.expect("__GFP_NOFAIL failed although reserve pages were free"));
    let after = counters(&m);
    assert_eq!(after.oom, before.oom + 1, "one OOM step before the reserve");
    assert_eq!(after.sleeps, before.sleeps, "slept although the OOM step's reserve access could serve it");
    assert_eq!(after.alloc_fail, before.alloc_fail, "a request failed");

    held.extend(exhaust_with(&m, GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN));
    let before = counters(&m);
    let waiter = spawn_alloc(&m, "nofail", GFP_KERNEL | __GFP_NOFAIL, 0);
    wait_until("the __GFP_NOFAIL request to sleep after OOM", || {
        let c = counters(&m);
        c.sleeps > before.sleeps && c.oom > before.oom
    });
    // Three OOM timeouts: a request that may fail would have failed by now (unless the host
    // starved it, in which case this check passes and proves nothing, but never fails).
    thread::sleep(SHORT * 3);
    assert!(!waiter.is_finished(), "__GFP_NOFAIL returned while nothing was free");
    free_on_other_thread(&m, take_half(&mut held));
    let pfn = waiter.join().expect("waiter panicked").expect("__GFP_NOFAIL failed");
    held.push(pfn);
    let after = counters(&m);
    assert_eq!(after.alloc_fail, before.alloc_fail, "a request failed");
    assert!(!m.log().messages().contains(FAILURE), "failure reported for __GFP_NOFAIL");
    finish(&m, held);
}

/// PA-14, `nopage:`: a `__GFP_NOFAIL` request the OOM step skips (lowmem-only: `__GFP_DMA32`
/// on a machine with no Normal zone above it) may dip into half the min reserve
/// (`ALLOC_MIN_RESERVE`) and no deeper: above that it succeeds without sleeping or an OOM
/// event; below it (what `GFP_ATOMIC` leaves) it sleeps past the OOM timeout until a free.
#[test]
fn nofail_without_oom_dips_into_half_the_min_reserve_only() {
    let m = small_machine(SHORT, false);
    let mut held = exhaust_with(&m, GFP_KERNEL | __GFP_DMA32 | __GFP_NORETRY | __GFP_NOWARN);
    let before = counters(&m);
    let nofail = spawn_alloc(&m, "nofail-min-reserve", GFP_KERNEL | __GFP_DMA32 | __GFP_NOFAIL, 0);
    wait_until("the __GFP_NOFAIL request to take a page of the min reserve", || nofail.is_finished());
    held.push(nofail.join().expect("panicked").expect("__GFP_NOFAIL failed"));
    let after = counters(&m);
    assert_eq!((after.oom, after.sleeps), (before.oom, before.sleeps), "no OOM step and no sleep");

    held.extend(exhaust(&m));
    let before = counters(&m);
    let waiter = spawn_alloc(&m, "nofail-below", GFP_KERNEL | __GFP_DMA32 | __GFP_NOFAIL, 0);
    wait_until("the __GFP_NOFAIL request to sleep", || counters(&m).sleeps > before.sleeps);
    thread::sleep(SHORT * 3);
    assert!(!waiter.is_finished(), "__GFP_NOFAIL went below half the min reserve without an OOM step");
    assert_eq!(counters(&m).oom, before.oom, "a lowmem-only request reached the OOM step");
    free_on_other_thread(&m, take_half(&mut held));
    held.push(waiter.join().expect("waiter panicked").expect("__GFP_NOFAIL failed"));
    finish(&m, held);
}

/// DESIGN §3 "Sleeping is real" (reclaim runs registered shrinkers): a shrinker whose
/// `scan_objects` frees pages it holds is called by the request's own direct reclaim, and the
/// request succeeds without OOM.
#[test]
fn shrinker_frees_pages_for_direct_reclaim() {
    let m = small_machine(LONG, false);
    let mut held = exhaust(&m);
    let shrinker = PageHolder::new(&m, take_half(&mut held));
    let registered = register_shrinker(&m, &shrinker);
    let before = counters(&m);
    let pfn = spawn_alloc(&m, "reclaimer", GFP_KERNEL, 0).join().unwrap();
    drop(registered);
    held.push(pfn.expect("GFP_KERNEL failed although a shrinker could free pages"));
    let after = counters(&m);
    assert!(after.allocstall > before.allocstall, "no direct reclaim");
    assert_eq!(after.oom, before.oom, "OOM although the shrinker freed pages");
    assert!(shrinker.freed.load(Relaxed) > 0, "the shrinker freed nothing");
    let scanned_by = shrinker.scanned_by.lock().unwrap().clone();
    assert!(scanned_by.iter().any(|t| t == "reclaimer"), "not scanned by the request's thread: {scanned_by:?}");
    assert!(!m.log().messages().contains(OOM_LINE), "OOM report");
    held.extend(std::mem::take(&mut *shrinker.pfns.lock().unwrap()));
    finish(&m, held);
}

/// DESIGN §3: with kswapd on, a request that finds a zone below its low watermark wakes the
/// background reclaimer, which runs the shrinkers on its own thread (`kswapd0`).
#[test]
fn kswapd_wakes_below_low_watermark_and_runs_shrinkers() {
    // Boosting off, then on (Linux's factor, the default with kswapd): with it, a fragmenting
    // fallback may wake kswapd earlier, on a balanced node, for a boost it reclaims at
    // priorities too high to scan this shrinker (tests/rules/boost.rs); the wake-up below the
    // low watermark comes all the same.
    for factor in [0, kmem_core::boost::DEFAULT_WATERMARK_BOOST_FACTOR] {
        kswapd_below_low(factor);
    }
}

fn kswapd_below_low(boost_factor: usize) {
    use kmem::zone::{Wmark, ZoneType};
    // No per-CPU lists: kswapd's first pass would drain them back and could leave a zone
    // above its high mark, the node balanced before the shrinker's turn.
    let b = builder(Profile::X86_64, 32, 4, false).kswapd(true).oom_timeout(LONG);
    let m = b.watermark_boost_factor(boost_factor).build().unwrap();
    let mut held = Vec::new();
    for _ in 0..256 {
        let page = m.alloc_pages(GFP_KERNEL, 0).expect("plenty of memory");
        held.push(m.page_to_pfn(page).unwrap());
    }
    assert_eq!(m.nr_kswapd_wakeups(), 0, "kswapd woken with plenty of memory");
    let shrinker = PageHolder::new(&m, std::mem::take(&mut held));
    let registered = register_shrinker(&m, &shrinker);
    // Allocate until an allocation that found every zone below its low mark (with the
    // protection against this request) wakes kswapd, then let kswapd work: a boost's wake-up
    // may come first, on a balanced node, and reclaims at priorities too high to scan this
    // shrinker. Every zone, not just the first: a node with any zone above its high mark is
    // balanced (`pgdat_balanced`) and kswapd has nothing to do.
    let zones = [m.zone(ZoneType::Dma), m.zone(ZoneType::Dma32)];
    let mut woken_below = false;
    while !woken_below {
        let below = zones.iter().all(|z| z.free_pages() <= z.wmark(Wmark::Low) + z.lowmem_reserve(ZoneType::Dma32));
        let woken = m.nr_kswapd_wakeups();
        // Stops before direct reclaim could run the shrinker on this thread: the fast path
        // fails at the low watermark, wakes kswapd, and the min-watermark retry succeeds.
        let Ok(page) = m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0) else { break };
        held.push(m.page_to_pfn(page).unwrap());
        woken_below = below && m.nr_kswapd_wakeups() > woken;
    }
    assert!(woken_below, "factor {boost_factor}: kswapd not woken below the low watermark");
    wait_until(&format!("factor {boost_factor}: kswapd0 to scan the shrinker"), || {
        shrinker.scanned_by.lock().unwrap().iter().any(|t| t == "kswapd0")
    });
    drop(registered);
    let counted_by = shrinker.counted_by.lock().unwrap().clone();
    assert!(counted_by.iter().any(|t| t == "kswapd0"), "count_objects not called by kswapd0: {counted_by:?}");
    assert!(shrinker.freed.load(Relaxed) > 0, "kswapd freed nothing through the shrinker");
    free_pfns(&m, held);
}

/// SEMANTICS §2.8 ("Direct reclaim (then drain PCP lists …)") and PA-14: pages that idle
/// threads left on their per-CPU lists must count for a blocked `GFP_KERNEL` request, as the
/// kernel's `drain_all_pages` drains every CPU. kmem drains a remote slot when its owner is
/// outside its fast path (`pcp_guard`: claim, `membarrier`, check), so the request succeeds.
#[test]
fn gfp_kernel_gets_pages_parked_on_idle_threads() {
    use kmem::zone::{Wmark, ZoneType};
    use std::sync::mpsc;

    let m = small_machine(Duration::from_secs(1), false);
    let mut held = exhaust(&m);
    let zone = m.zone(ZoneType::Dma32);
    let needed = (zone.wmark(Wmark::Min) + zone.lowmem_reserve(ZoneType::Normal) + 1).saturating_sub(zone.free_pages());
    let per_thread = (zone.pcp_high() as usize).saturating_sub(1);
    let parkers = m.nr_cpus() - 1;
    assert!(per_thread * parkers >= needed, "cannot park enough: {parkers} x {per_thread} < {needed}");
    let mut in_zone: Vec<usize> = Vec::new();
    held.retain(|&pfn| {
        if zone.contains(pfn) && in_zone.len() < per_thread * parkers {
            in_zone.push(pfn);
            false
        } else {
            true
        }
    });
    let mut release = Vec::new();
    let mut joins = Vec::new();
    for chunk in in_zone.chunks(per_thread) {
        let (m2, chunk, (parked_tx, parked_rx), (go_tx, go_rx)) =
            (m.clone(), chunk.to_vec(), mpsc::channel(), mpsc::channel::<()>());
        joins.push(thread::spawn(move || {
            free_pfns(&m2, chunk);
            parked_tx.send(()).unwrap();
            // Idle, like a thread waiting for I/O, with its per-CPU pages still parked.
            let _ = go_rx.recv();
        }));
        parked_rx.recv().expect("parker died");
        release.push(go_tx);
    }
    assert!(crate::pcp_pages(&m) >= needed, "pages did not stay on the per-CPU lists");
    let got = spawn_alloc(&m, "parked-victim", GFP_KERNEL | __GFP_NOWARN, 0).join().unwrap();
    drop(release);
    for join in joins {
        join.join().expect("parker panicked");
    }
    held.extend(got);
    let oom = m.stats().oom.load(Relaxed);
    finish(&m, held);
    assert!(got.is_some(), "GFP_KERNEL failed with {oom} OOM event(s) while enough pages sat on idle per-CPU lists");
}

/// §2.8 / `__alloc_pages_may_oom`: the OOM step is skipped for `__GFP_RETRY_MAYFAIL`, also
/// with `__GFP_NOFAIL` (the kernel tests the flag there, whatever else the request says): no
/// OOM notifier, no OOM report; the request retries (`nopage:`'s min-reserve try, then
/// `goto retry`) and a free on another thread wakes it.
#[test]
fn nofail_with_retry_mayfail_skips_the_oom_step_and_waits_for_a_free() {
    nofail_skips_the_oom_step_and_waits_for_a_free(__GFP_RETRY_MAYFAIL);
}

/// §2.8: `__GFP_NORETRY` goes to `nopage:` right after reclaim, before the OOM step; with
/// `__GFP_NOFAIL` it retries from there (`goto retry`), never through the OOM step.
#[test]
fn nofail_with_noretry_skips_the_oom_step_and_waits_for_a_free() {
    nofail_skips_the_oom_step_and_waits_for_a_free(__GFP_NORETRY);
}

fn nofail_skips_the_oom_step_and_waits_for_a_free(flag: Gfp) {
    let m = small_machine(SHORT, false);
    let mut held = exhaust_with(&m, GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN);
    let notifier = PageHolder::new(&m, Vec::new());
    let reg = register_oom_notifier(&m, &notifier);
    let before = counters(&m);
    let waiter = spawn_alloc(&m, "nofail-no-oom", GFP_KERNEL | __GFP_NOFAIL | flag, 0);
    wait_until("the request to sleep twice", || counters(&m).sleeps > before.sleeps + 1);
    assert!(!waiter.is_finished(), "__GFP_NOFAIL returned while nothing was free");
    assert!(notifier.scanned_by.lock().unwrap().is_empty(), "OOM notifiers called for {flag:?}");
    assert_eq!(counters(&m).oom, before.oom, "OOM step for {flag:?}");
    free_on_other_thread(&m, take_half(&mut held));
    held.push(waiter.join().expect("waiter panicked").expect("__GFP_NOFAIL failed"));
    drop(reg);
    let log = m.log().messages();
    assert!(!log.contains(OOM_LINE), "OOM report for {flag:?}:\n{log}");
    finish(&m, held);
}
