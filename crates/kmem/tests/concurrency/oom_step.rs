//! The slow path's OOM step (`__alloc_pages_may_oom`, SEMANTICS §2.8, PA-14): one request at a
//! time holds `oom_lock`; the others count "somebody else is making progress for us", sleep a
//! jiffy and retry; and the step first looks once more for a page above the high watermark, so
//! memory that came back since the request's last try is taken without the OOM notifiers.

use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use kmem::Machine;
use kmem::gfp::{__GFP_MEMALLOC, __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};
use kmem_core::reclaim::{OomNotifier, Shrinker};

use crate::{exhaust_with, free_pfns, small_machine};

/// An OOM notifier that frees nothing and takes a while, recording how many requests are
/// inside it at once.
#[derive(Default)]
struct Slow {
    inside: AtomicUsize,
    most_inside: AtomicUsize,
    calls: AtomicUsize,
}

impl OomNotifier for Slow {
    fn out_of_memory(&self) -> usize {
        let now = self.inside.fetch_add(1, SeqCst) + 1;
        self.most_inside.fetch_max(now, SeqCst);
        self.calls.fetch_add(1, SeqCst);
        thread::sleep(Duration::from_millis(20));
        self.inside.fetch_sub(1, SeqCst);
        0
    }
}

/// PA-14 `__alloc_pages_may_oom`: requests that reach the OOM step together take it one at a
/// time (`oom_lock`): the notifier chain never runs twice at once, and every request still
/// fails at its OOM timeout with nothing freed.
#[test]
fn the_oom_step_takes_one_request_at_a_time() {
    let m = small_machine(Duration::from_millis(300), false);
    let held = exhaust_with(&m, GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN);
    let notifier = Slow::default();
    // SAFETY: Unregistered below, before `notifier` goes out of scope; it never registers or
    // unregisters anything itself.
    let id = unsafe { m.register_oom_notifier(NonNull::from(&notifier as &dyn OomNotifier)) }.expect("slot");
    thread::scope(|s| {
        let waiters: Vec<_> =
            (0..3).map(|_| s.spawn(|| m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).is_err())).collect();
        for w in waiters {
            assert!(w.join().expect("waiter panicked"), "a request succeeded with nothing free");
        }
    });
    m.unregister_oom_notifier(id);
    // A request that only ever found the lock taken can reach its timeout without a step of
    // its own, so only one step is certain.
    assert!(notifier.calls.load(SeqCst) >= 1, "the OOM step never ran");
    assert_eq!(notifier.most_inside.load(SeqCst), 1, "two requests were in the OOM step at once");
    free_pfns(&m, held);
    // SAFETY: Every thread that used the machine has been joined and kswapd is off.
    unsafe { m.check() };
}

/// A shrinker that holds pages and gives them all back the first time it is counted outside
/// reclaim once armed: what `should_reclaim_retry` asks just before the OOM step, so the pages
/// come back after the request's last ordinary try and before the step.
struct LateFreer {
    m: Machine,
    pfns: Mutex<Vec<usize>>,
    armed: AtomicBool,
}

impl Shrinker for LateFreer {
    fn name(&self) -> &str {
        "late-freer"
    }

    fn count_objects(&self) -> usize {
        if !kmem::context::in_reclaim() && self.armed.swap(false, SeqCst) {
            free_pfns(&self.m, std::mem::take(&mut *self.pfns.lock().unwrap()));
        }
        0
    }

    fn scan_objects(&self, _nr: usize, _gfp: kmem::gfp::Gfp) -> usize {
        0
    }
}

/// PA-14 `__alloc_pages_may_oom`'s last look ("Go through the zonelist yet one more time, keep
/// very high watermark here"): pages back above the high watermark between the request's last
/// try and the OOM step are taken there, and the OOM notifiers are not called.
#[test]
fn the_oom_step_first_takes_a_page_above_the_high_watermark() {
    let m = small_machine(Duration::from_secs(5), false);
    let mut held = exhaust_with(&m, GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN);
    let high: usize = m.zones().iter().map(|z| z.wmark(kmem::zone::Wmark::High)).sum();
    assert!(held.len() > 2 * high, "the machine has pages above its high marks");
    let shrinker =
        LateFreer { m: m.clone(), pfns: Mutex::new(held.split_off(held.len() / 2)), armed: AtomicBool::new(true) };
    let notifier = Slow::default();
    // SAFETY: Both unregistered below, before they go out of scope; neither registers or
    // unregisters anything itself.
    let (sid, nid) = unsafe {
        (
            m.register_shrinker(NonNull::from(&shrinker as &dyn Shrinker)).expect("slot"),
            m.register_oom_notifier(NonNull::from(&notifier as &dyn OomNotifier)).expect("slot"),
        )
    };
    let ooms = m.stats().oom.load(SeqCst);
    let page = m.alloc_pages(GFP_KERNEL, 0).expect("a page above the high watermark");
    m.unregister_oom_notifier(nid);
    m.unregister_shrinker(sid);
    assert!(!shrinker.armed.load(SeqCst), "the pages came back");
    assert_eq!(notifier.calls.load(SeqCst), 0, "the OOM notifiers ran although a page was above the high mark");
    assert_eq!(m.stats().oom.load(SeqCst), ooms, "an OOM report");
    held.push(m.page_to_pfn(page).expect("pfn"));
    free_pfns(&m, held);
    // SAFETY: Single-threaded, kswapd off.
    unsafe { m.check() };
}
