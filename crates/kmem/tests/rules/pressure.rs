//! Memory pressure with callbacks that misbehave (SEMANTICS §2.8): shrinkers and OOM notifiers
//! that panic, and what the thread that ran them is left with.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kmem::gfp::{__GFP_NORETRY, __GFP_NOWARN, __GFP_RETRY_MAYFAIL, GFP_KERNEL};
use kmem_core::reclaim::Shrinker;

use crate::*;

/// A shrinker whose `scan_objects` panics (a Rust bug in the callback).
struct PanickingShrinker;

impl Shrinker for PanickingShrinker {
    fn name(&self) -> &str {
        "panicking"
    }
    fn count_objects(&self) -> usize {
        1000
    }
    fn scan_objects(&self, _nr_to_scan: usize, _gfp: kmem::gfp::Gfp) -> usize {
        panic!("shrinker bug");
    }
}

/// A panic that unwinds out of a shrinker (through direct reclaim, which runs it with the
/// thread marked as reclaiming, `PF_MEMALLOC`) must not leave the thread marked: it would
/// then take every reserve (`ALLOC_NO_WATERMARKS`) and never reclaim again.
#[test]
fn a_panicking_shrinker_leaves_the_thread_out_of_reclaim() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let shrinker = Box::new(PanickingShrinker);
    let ptr = std::ptr::NonNull::from(&*shrinker as &dyn Shrinker);
    // SAFETY: `shrinker` outlives the registration, unregistered below before it drops.
    let id = unsafe { m.register_shrinker(ptr) }.expect("a free shrinker slot");
    assert!(!kmem::context::in_reclaim());
    let r = catch_unwind(AssertUnwindSafe(|| m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).map(|_| ())));
    assert!(r.is_err(), "the shrinker's panic unwinds to the caller");
    assert!(m.unregister_shrinker(id));
    drop(shrinker);
    assert!(!kmem::context::in_reclaim(), "the thread is still marked as reclaiming after the panic");
    // A page back: free memory is below every watermark, so a request that cannot use the
    // reserves fails (a thread marked as reclaiming would take it).
    let mut held = held;
    let (page, order) = held.pop().unwrap();
    // SAFETY: The test's own block, unused afterwards.
    unsafe { m.free_pages(page, order) };
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0).is_err(), "reserves stay reserved");
    free_all(&m, held);
}

/// A shrinker that claims a huge number of objects and can free none of them now.
struct HugeCountShrinker;

impl Shrinker for HugeCountShrinker {
    fn name(&self) -> &str {
        "huge-count"
    }
    fn count_objects(&self) -> usize {
        usize::MAX / 2 + 1
    }
    fn scan_objects(&self, _nr_to_scan: usize, _gfp: kmem::gfp::Gfp) -> usize {
        kmem_core::reclaim::SHRINK_STOP
    }
}

/// The slow path adds up what the shrinkers say they could free (`should_reclaim_retry`'s
/// reclaimable part): counts whose sum does not fit a `usize` must not overflow (a panic in
/// the allocator) — the request goes on and, with nothing freed, a `__GFP_RETRY_MAYFAIL` one
/// fails as §2.8 says.
#[test]
fn shrinker_counts_that_add_up_past_usize_do_not_overflow() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let shrinkers = [Box::new(HugeCountShrinker), Box::new(HugeCountShrinker)];
    let ids: Vec<_> = shrinkers
        .iter()
        .map(|s| {
            let ptr = std::ptr::NonNull::from(&**s as &dyn Shrinker);
            // SAFETY: The boxes outlive the registrations, unregistered below.
            unsafe { m.register_shrinker(ptr) }.expect("a free shrinker slot")
        })
        .collect();
    let gfp = GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
    let r = catch_unwind(AssertUnwindSafe(|| m.alloc_pages(gfp, 0).is_err()));
    for id in ids {
        assert!(m.unregister_shrinker(id));
    }
    assert_eq!(r.ok(), Some(true), "the request panicked (or found a page)");
    free_all(&m, held);
}

/// An OOM notifier that frees nothing on its first call and a held block from its second on.
struct FreesOnSecondCall {
    machine: kmem::Machine,
    calls: std::sync::atomic::AtomicUsize,
    held: std::sync::Mutex<Vec<(usize, u32)>>,
}

impl kmem_core::reclaim::OomNotifier for FreesOnSecondCall {
    fn out_of_memory(&self) -> usize {
        if self.calls.fetch_add(1, SEQ) == 0 {
            return 0;
        }
        let blocks = std::mem::take(&mut *self.held.lock().unwrap());
        let mut pages = 0;
        for (pfn, order) in blocks {
            // SAFETY: The test's own block, given to the notifier.
            unsafe { self.machine.free_pages(self.machine.pfn_to_page(pfn).unwrap(), order) };
            pages += 1 << order;
        }
        pages
    }
}

/// DESIGN §3 "OOM": the report's last line says how long the request will wait. A
/// `__GFP_NOFAIL` request is not bounded by the OOM timeout, so it must not claim to be.
#[test]
fn the_oom_report_of_a_nofail_request_does_not_promise_a_timeout() {
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    let block = take_block(&m, &mut held, 0);
    let notifier = Box::new(FreesOnSecondCall {
        machine: m.clone(),
        calls: std::sync::atomic::AtomicUsize::new(0),
        held: std::sync::Mutex::new(vec![block]),
    });
    let ptr = std::ptr::NonNull::from(&*notifier as &dyn kmem_core::reclaim::OomNotifier);
    // SAFETY: `notifier` outlives the registration, unregistered below.
    let id = unsafe { m.register_oom_notifier(ptr) }.expect("a free notifier slot");
    m.log().clear();
    let page = m.alloc_pages(GFP_KERNEL | kmem::gfp::__GFP_NOFAIL, 0).expect("__GFP_NOFAIL");
    assert!(m.unregister_oom_notifier(id));
    let lines = log_lines(&m);
    let last = lines.iter().find(|l| l.starts_with("kmem: no process to kill")).expect("the OOM report");
    assert!(!last.contains("waiting up to"), "{last}");
    assert_eq!(last, "kmem: no process to kill; __GFP_NOFAIL: waiting for memory to be freed, without a time limit");
    // SAFETY: The test's own page.
    unsafe { m.free_pages(page, 0) };
    free_all(&m, held);
}

/// A shrinker that panics when kswapd runs it, counting those calls.
struct PanicsInKswapd(std::sync::atomic::AtomicUsize);

impl Shrinker for PanicsInKswapd {
    fn name(&self) -> &str {
        "panics-in-kswapd"
    }
    fn count_objects(&self) -> usize {
        1000
    }
    fn scan_objects(&self, _nr_to_scan: usize, _gfp: kmem::gfp::Gfp) -> usize {
        if std::thread::current().name() == Some("kswapd0") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("shrinker bug met by kswapd");
        }
        kmem_core::reclaim::SHRINK_STOP
    }
}

/// A panic in a callback kswapd runs (a shrinker's, in its background reclaim) is reported in
/// the log and kswapd goes on: it still completes deferred work afterwards. The thread used to
/// die with it, leaving the machine without its background reclaimer, its deferred `vfree`s
/// and its timed maintenance (grace periods, per-CPU decay, trimming) for good.
#[test]
fn a_shrinker_panic_in_kswapd_is_reported_and_kswapd_goes_on() {
    use std::time::{Duration, Instant};
    let m = builder(Profile::I386, 64).pcp(false).kswapd(true).build().expect("build i386 machine");
    let shrinker = Box::new(PanicsInKswapd(Default::default()));
    let ptr = std::ptr::NonNull::from(&*shrinker as &dyn Shrinker);
    // SAFETY: `shrinker` outlives the registration, unregistered below before it drops.
    let id = unsafe { m.register_shrinker(ptr) }.expect("a free shrinker slot");
    // Below the low watermark: the allocations wake kswapd, whose balance runs the shrinker.
    let held = exhaust(&m);
    let deadline = Instant::now() + Duration::from_secs(20);
    while shrinker.0.load(std::sync::atomic::Ordering::SeqCst) == 0 && Instant::now() < deadline {
        // A failing request that may wake kswapd wakes it again.
        let _ = m.alloc_pages(kmem::gfp::GFP_NOWAIT | __GFP_NOWARN, 0);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(shrinker.0.load(std::sync::atomic::Ordering::SeqCst) > 0, "kswapd ran the shrinker");
    free_all(&m, held);
    assert!(m.unregister_shrinker(id));
    drop(shrinker);
    // Reported once kswapd has unwound (after the shrinker counted the call).
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_log(&m, "kswapd0: a callback panicked (shrinker bug met by kswapd); kswapd goes on") == 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(count_log(&m, "kswapd0: a callback panicked (shrinker bug met by kswapd)") >= 1, "{}", m.dmesg());
    // kswapd still serves a deferred vfree (VM-7), queued with nothing else to complete it.
    let p = m.vmalloc(4 * kmem::PAGE_SIZE).unwrap();
    {
        let _lock = kmem::context::atomic_section();
        // SAFETY: The test's own area, unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.vm().nr_deferred() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(m.vm().nr_deferred(), 0, "kswapd completed the deferred vfree");
}
