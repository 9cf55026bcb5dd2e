//! Racing double frees on debug caches (SEMANTICS §3.8, SL-15/SL-16): two threads free the
//! same object of a debug cache at once, many times over. As in the kernel, where
//! `free_debug_processing` and the free itself run under one hold of the slab's lock
//! (`free_to_partial_list`), exactly one free goes through and the other gets the debug
//! report (`Object already free`, then `FIX <cache>: Object at 0x… not freed`); the freelist
//! stays intact (`validate_slab_cache` reports nothing, and the object comes back exactly once).
//!
//! Only counts are asserted, no durations: the barrier lines the two frees up, and the
//! iterations give the interleavings a chance.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use kmem::Machine;
use kmem::gfp::GFP_KERNEL;
use kmem::slab::flags::{
    SLAB_CONSISTENCY_CHECKS, SLAB_NO_USER_FLAGS, SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER, SlabFlags,
};
use kmem::slab::{CacheArgs, CacheRef};

use crate::stress_machine;

const ITERS: usize = 3000;

fn count_log(m: &Machine, needle: &str) -> usize {
    m.log().records().iter().filter(|r| r.text.contains(needle)).count()
}

fn free(m: &Machine, c: CacheRef, p: usize) {
    // SAFETY: The object came from `c`; the test frees it twice on purpose, which a debug
    // cache detects and refuses, and nothing uses it afterwards until it is allocated again.
    unsafe { m.kmem_cache_free(c, p as *mut u8) }
}

/// One round: a fresh object, both workers free it at once, then the checks.
fn round(
    m: &Machine,
    c: CacheRef,
    name: &str,
    obj: &AtomicUsize,
    start: &Barrier,
    done: &Barrier,
) -> Result<(), String> {
    m.log().clear();
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr() as usize;
    obj.store(p, Ordering::Release);
    let before = m.slabs().errors();
    start.wait();
    done.wait();
    let errors = m.slabs().errors() - before;
    let already = count_log(m, &format!("BUG {name} (Not tainted): Object already free"));
    let fix = count_log(m, &format!("FIX {name}: Object at 0x{p:x} not freed"));
    let trap = count_log(m, "set_freepointer: object == fp");
    let lines = || m.log().records().into_iter().map(|r| r.text).collect::<Vec<_>>().join("\n");
    if !(errors == 2 && already == 1 && fix == 1 && trap == 0) {
        return Err(format!("errors={errors} already={already} fix={fix} trap={trap}\n{}", lines()));
    }
    m.validate_slab_cache(c).map_err(|e| format!("lists and counters: {e}"))?;
    if m.slabs().errors() - before != 2 {
        return Err(format!("validation found damage:\n{}", lines()));
    }
    // The object is free exactly once: it comes back, and then not again.
    let a = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr() as usize;
    let b = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr() as usize;
    free(m, c, b);
    free(m, c, a);
    if a != p || b == p {
        return Err(format!("the object came back {} times", usize::from(a == p) + usize::from(b == p)));
    }
    Ok(())
}

/// Two threads free one object `ITERS` times; each round must give one free, one report.
fn race(flags: SlabFlags, name: &str) {
    let m = stress_machine(2);
    let c = m.kmem_cache_create(name, 64, &CacheArgs::default(), flags | SLAB_NO_USER_FLAGS).expect("create cache");
    // Keeps the slab in use, so the losing free is `Object already free`, not `Slab has 0
    // allocated objects but 1 are to be freed` (both are refusals).
    let keep = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
    let start = Barrier::new(3);
    let done = Barrier::new(3);
    let obj = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut failure = None;
    thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| {
                loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    free(&m, c, obj.load(Ordering::Acquire));
                    done.wait();
                }
            });
        }
        for i in 0..ITERS {
            if let Err(e) = round(&m, c, name, &obj, &start, &done) {
                failure = Some(format!("round {i}: {e}"));
                break;
            }
        }
        stop.store(true, Ordering::Release);
        start.wait();
    });
    if let Some(e) = failure {
        panic!("{e}");
    }
    free(&m, c, keep.as_ptr() as usize);
    assert_eq!(m.validate_slab_cache(c).map(|_| ()), Ok(()));
    // SAFETY: The cache is not used again.
    unsafe { m.kmem_cache_destroy(c) }.expect("cache empty");
}

/// SL-15: with consistency checks (`free_debug_processing` walks the freelist: `on_freelist`).
#[test]
fn racing_double_free_with_consistency_checks_frees_once() {
    race(SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER, "race_fzpu");
}

/// SL-15: kmem refuses an already-free object on every debug cache (debug.rs module docs), so
/// the race must be closed without consistency checks too.
#[test]
fn racing_double_free_without_consistency_checks_frees_once() {
    race(SLAB_POISON, "race_p");
}
