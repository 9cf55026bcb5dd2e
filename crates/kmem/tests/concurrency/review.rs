//! Regression tests for findings of the code review (each failed before its fix).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use kmem::Machine;
use kmem::gfp::{__GFP_MEMALLOC, __GFP_NOFAIL, __GFP_NORETRY, __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, Gfp};
use kmem_core::reclaim::Shrinker;

use crate::{exhaust, free_pfns, small_machine, wait_until};

/// Holds pages; every scan waits until `release` is set, then frees what it still holds.
struct GatedHolder {
    m: Machine,
    pfns: Mutex<Vec<usize>>,
    inside: AtomicUsize,
    release: AtomicBool,
}

impl Shrinker for GatedHolder {
    fn name(&self) -> &str {
        "gated-holder"
    }
    fn count_objects(&self) -> usize {
        self.pfns.lock().unwrap().len().max(1)
    }
    fn scan_objects(&self, _nr: usize, _gfp: Gfp) -> usize {
        self.inside.fetch_add(1, SeqCst);
        wait_until("the test releases the shrinker", || self.release.load(SeqCst));
        let batch = std::mem::take(&mut *self.pfns.lock().unwrap());
        let n = batch.len();
        free_pfns(&self.m, batch);
        n
    }
}

/// Reclaim passes run concurrently (as the kernel's shrinkers do): while one request is inside
/// a slow shrinker, a second request does not skip reclaim because "the registry is busy" — it
/// runs the shrinker too (before the fix the second count never reached 2), and both succeed.
/// The second request is a plain `GFP_KERNEL` one: the pages the first shrinker frees may sit
/// on the first thread's per-CPU list for a moment, and a `__GFP_RETRY_MAYFAIL` request may
/// legitimately give up in that window.
#[test]
fn concurrent_reclaim_passes_share_the_shrinkers() {
    let m = small_machine(Duration::from_secs(30), false);
    let mut held = exhaust(&m);
    let give = held.split_off(held.len() / 2);
    let holder = Arc::new(GatedHolder {
        m: m.clone(),
        pfns: Mutex::new(give),
        inside: AtomicUsize::new(0),
        release: AtomicBool::new(false),
    });
    // SAFETY: `holder` outlives the registration (unregistered below, after both threads).
    let id = unsafe { m.register_shrinker(NonNull::from(&*holder as &dyn Shrinker)) }.unwrap();
    let spawn = |gfp: Gfp| {
        let m = m.clone();
        thread::spawn(move || m.alloc_pages(gfp, 0).ok().map(|p| m.page_to_pfn(p).unwrap()))
    };
    let a = spawn(GFP_KERNEL);
    wait_until("the first request is inside the shrinker", || holder.inside.load(SeqCst) == 1);
    let b = spawn(GFP_KERNEL | __GFP_NOWARN);
    wait_until("the second request runs the shrinker concurrently", || holder.inside.load(SeqCst) == 2);
    holder.release.store(true, SeqCst);
    let (pa, pb) = (a.join().unwrap(), b.join().unwrap());
    assert!(pa.is_some() && pb.is_some(), "both requests succeed: {pa:?} {pb:?}");
    assert!(m.unregister_shrinker(id));
    free_pfns(&m, held.into_iter().chain(pa).chain(pb));
}

/// A shrinker that itself allocates with `__GFP_NOFAIL`.
struct NofailInside {
    m: Machine,
    result: Mutex<Option<Option<usize>>>,
    entered: AtomicBool,
}

impl Shrinker for NofailInside {
    fn name(&self) -> &str {
        "nofail-inside"
    }
    fn count_objects(&self) -> usize {
        usize::from(!self.entered.load(SeqCst))
    }
    fn scan_objects(&self, _nr: usize, _gfp: Gfp) -> usize {
        if self.entered.swap(true, SeqCst) {
            return 0;
        }
        let got = self.m.alloc_pages(GFP_KERNEL | __GFP_NOFAIL, 0).ok().map(|p| self.m.page_to_pfn(p).unwrap());
        *self.result.lock().unwrap() = Some(got);
        0
    }
}

/// PA-14: `__GFP_NOFAIL` never fails, even when asked from inside reclaim (where no further
/// reclaim may run): it waits for a free instead.
#[test]
fn nofail_from_inside_reclaim_waits_for_a_free() {
    let m = small_machine(Duration::from_secs(30), false);
    let mut held = exhaust(&m);
    // Inside reclaim a request may use every reserve (`PF_MEMALLOC`): take those too.
    held.extend(
        std::iter::from_fn(|| m.alloc_pages(GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN, 0).ok())
            .map(|p| m.page_to_pfn(p).unwrap()),
    );
    m.drain_local_pages();
    let shrinker = Arc::new(NofailInside { m: m.clone(), result: Mutex::new(None), entered: AtomicBool::new(false) });
    // SAFETY: `shrinker` outlives the registration.
    let id = unsafe { m.register_shrinker(NonNull::from(&*shrinker as &dyn Shrinker)) }.unwrap();
    let sleeps = m.stats().sleeps.load(SeqCst);
    let requester = {
        let m = m.clone();
        thread::spawn(move || {
            m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0).ok().map(|p| m.page_to_pfn(p).unwrap())
        })
    };
    wait_until("the NOFAIL allocation inside the shrinker sleeps", || m.stats().sleeps.load(SeqCst) > sleeps);
    assert!(shrinker.result.lock().unwrap().is_none(), "it must wait, not fail");
    let give = held.split_off(held.len() - 64);
    let freer = {
        let m = m.clone();
        thread::spawn(move || free_pfns(&m, give))
    };
    freer.join().unwrap();
    let other = requester.join().unwrap();
    let got = shrinker.result.lock().unwrap().expect("the shrinker finished");
    assert!(got.is_some(), "__GFP_NOFAIL returned NULL inside reclaim");
    assert!(m.unregister_shrinker(id));
    free_pfns(&m, held.into_iter().chain(got).chain(other));
}

/// kswapd gives its CPU slot back after each round, so it never keeps one from a worker: with
/// two slots, the main thread on one, a worker after a kswapd round still gets the other.
#[test]
fn kswapd_does_not_keep_a_cpu_slot() {
    let m = Machine::builder()
        .profile(kmem::Profile::X86_64)
        .mem_bytes(32 << 20)
        .cpus(2)
        .kswapd(true)
        .oom_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let wakeups = m.nr_kswapd_wakeups();
    let held: Vec<usize> = std::iter::from_fn(|| m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0).ok())
        .map(|p| m.page_to_pfn(p).unwrap())
        .collect();
    wait_until("kswapd was woken below the low watermark", || m.nr_kswapd_wakeups() > wakeups);
    free_pfns(&m, held);
    m.drain_local_pages();
    // A worker that got a slot leaves its freed page on that slot's list (checked before it exits).
    let worker_got_a_slot = || {
        let m = m.clone();
        thread::spawn(move || {
            let p = m.alloc_pages(GFP_KERNEL, 0).unwrap();
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(p, 0) };
            (0..m.nr_cpus()).any(|cpu| m.zones().iter().any(|z| m.pcp_count(cpu, z.kind()) > 0))
        })
        .join()
        .unwrap()
    };
    wait_until("a worker gets the second CPU slot after kswapd's round", worker_got_a_slot);
}
