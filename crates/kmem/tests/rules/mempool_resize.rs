//! MP-9/MP-10 around a resize: what `mempool_exit` reports as leaked after the reserve shrank
//! or grew while elements were out (the 2.6 `BUG_ON(curr_nr != min_nr)` check, kmem's
//! default: reserve elements taken and not replaced), and the mask a resize in atomic context
//! hands `alloc_fn`.

use kmem::gfp::*;

use crate::mempool::{Call, Recorder, free};
use crate::*;

/// The lines of `m`'s log that report a leak.
fn leak_reports(m: &Machine) -> Vec<String> {
    log_lines(m).into_iter().filter(|l| l.contains("still allocated")).collect()
}

/// MP-9: a shrink while every element is out, then every element back: the smaller reserve
/// is full again, nothing is out, and destroy reports nothing.
#[test]
fn mp9_shrink_while_elements_are_out_then_all_back_reports_no_leak() {
    let m = i386_nopcp(32);
    let before = m.total_free();
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(4).unwrap();
    rec.fail.store(true, SEQ);
    let out: Vec<_> = (0..4).map(|_| pool.alloc(GFP_ATOMIC).unwrap()).collect();
    assert_eq!((pool.curr_nr(), pool.outstanding()), (0, 4));
    pool.resize(1).unwrap();
    assert_eq!(pool.outstanding(), 1, "the smaller reserve takes back one");
    for e in out {
        free(&pool, e);
    }
    assert_eq!((pool.min_nr(), pool.curr_nr(), pool.outstanding()), (1, 1, 0));
    m.log().clear();
    drop(pool);
    assert_eq!(leak_reports(&m), Vec::<String>::new());
    assert_eq!(m.total_free(), before);
}

/// MP-9: a grow that could not fill its reserve, filled later by frees of elements from the
/// backing allocator, does not hide a leak taken from the reserve after it.
#[test]
fn mp9_a_grow_filled_by_frees_does_not_hide_a_later_leak() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(1).unwrap();
    let extra = pool.alloc(GFP_KERNEL).unwrap(); // From alloc_fn: the reserve stays full.
    rec.fail.store(true, SEQ);
    pool.resize(3).unwrap();
    assert_eq!((pool.min_nr(), pool.curr_nr(), pool.outstanding()), (3, 1, 0), "the grow found no element");
    free(&pool, extra); // Fills the short reserve; replaces nothing taken from it.
    assert_eq!((pool.curr_nr(), pool.outstanding()), (2, 0));
    let leaked = pool.alloc(GFP_ATOMIC).unwrap(); // From the reserve, never freed.
    assert_eq!(pool.outstanding(), 1);
    m.log().clear();
    drop(pool);
    let reports = leak_reports(&m);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("destroyed with 1 reserve element(s) still allocated (leaked)"), "{reports:?}");
    // The leaked element stays valid (the pool never frees it); the test gives it back.
    // SAFETY: A recorder element (a page of `m`), unused afterwards.
    unsafe { m.free_pages_addr(leaked.as_ptr().cast(), 0) };
}

/// MP-9 in atomic context: the sleeping resize is reported, then goes on without
/// `__GFP_DIRECT_RECLAIM`, as `mempool_alloc` does (docs/deviations.md): `alloc_fn` never
/// gets a mask that may sleep.
#[test]
fn mp9_resize_in_atomic_context_hands_alloc_fn_no_sleeping_mask() {
    let m = i386_nopcp(32);
    let rec = Recorder::new(&m, false);
    let pool = rec.pool(1).unwrap();
    rec.take();
    m.log().clear();
    {
        let _section = kmem::context::atomic_section();
        pool.resize(3).unwrap();
    }
    let calls = rec.take();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls.iter().all(|c| matches!(c, Call::Alloc(g, true) if !g.contains(__GFP_DIRECT_RECLAIM))),
        "alloc_fn got a sleeping mask in atomic context: {calls:?}"
    );
    assert_eq!(count_log(&m, "BUG: sleeping function called from invalid context"), 1, "{:#?}", log_lines(&m));
    assert_eq!(pool.curr_nr(), 3);
}
