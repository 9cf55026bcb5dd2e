//! Memory pressure with callbacks that misbehave (SEMANTICS §2.8): shrinkers and OOM notifiers
//! that panic, and what the thread that ran them is left with.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kmem::gfp::{__GFP_NORETRY, __GFP_NOWARN, GFP_KERNEL};
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
