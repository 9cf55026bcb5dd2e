//! PA-13 and PA-14 (SEMANTICS.md §2.8, the retry table): when an allocation gives up, sleeps,
//! reclaims, reports an OOM or waits for a free, through `kmem::Machine` with every page taken.

use std::time::Duration;

use kmem::MAX_PAGE_ORDER;
use kmem::gfp::*;

use crate::*;

#[test]
fn pa13_nonblocking_requests_fail_after_one_attempt_without_sleeping() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let stats = m.stats();
    let (stalls, sleeps, fails) = (m.nr_allocstall(), stats.sleeps.load(SEQ), m.nr_alloc_fail());
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC, 0).is_err());
    assert!(m.alloc_pages(GFP_NOWAIT, 0).is_err());
    assert!(m.alloc_pages(GFP_ATOMIC | __GFP_NOFAIL | __GFP_NOWARN, 0).is_err(), "NOFAIL without reclaim fails too");
    assert_eq!(m.nr_allocstall(), stalls, "no direct reclaim");
    assert_eq!(stats.sleeps.load(SEQ), sleeps, "never slept");
    assert_eq!(m.nr_alloc_fail(), fails + 3);
    assert_eq!(count_log(&m, "page allocation failure"), 1, "GFP_ATOMIC warns, GFP_NOWAIT is silent");
    assert_eq!(count_log(&m, "invoked oom-killer"), 0);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa14_noretry_does_exactly_one_reclaim_pass() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    // A shrinker that claims progress every time but frees nothing.
    let reg = register(&m, TestShrinker::new(&m, Vec::new(), 0, true));
    let (stalls, ooms) = (m.nr_allocstall(), m.stats().oom.load(SEQ));
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0).is_err());
    assert_eq!(reg.shrinker.calls(), 1);
    assert_eq!(m.nr_allocstall(), stalls + 1);
    assert_eq!(m.stats().oom.load(SEQ), ooms, "__GFP_NORETRY never OOMs");
    drop(reg);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa14_costly_order_without_retry_mayfail_does_one_pass_and_no_oom() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let reg = register(&m, TestShrinker::new(&m, Vec::new(), 0, true));
    let ooms = m.stats().oom.load(SEQ);
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 4).is_err());
    assert_eq!(reg.shrinker.calls(), 1, "costly orders never loop");
    assert_eq!(m.stats().oom.load(SEQ), ooms);
    drop(reg);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa14_retry_mayfail_retries_then_fails_without_oom() {
    // A long OOM timeout: the retries must end by the no-progress rule, not because a
    // descheduled thread ran past the suite's short timeout.
    let m =
        crate::builder(Profile::I386, 64).pcp(false).oom_timeout(std::time::Duration::from_secs(30)).build().unwrap();
    let held = exhaust(&m);
    let reg = register(&m, TestShrinker::new(&m, Vec::new(), 0, false));
    m.log().clear();
    let ooms = m.stats().oom.load(SEQ);
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_RETRY_MAYFAIL, 0).is_err());
    assert!(reg.shrinker.calls() > 1, "retried reclaim ({} passes)", reg.shrinker.calls());
    assert_eq!(m.stats().oom.load(SEQ), ooms, "__GFP_RETRY_MAYFAIL never OOMs");
    assert_eq!(count_log(&m, "invoked oom-killer"), 0);
    assert_eq!(count_log(&m, "page allocation failure: order:0, mode:0x4cc0(GFP_KERNEL|__GFP_RETRY_MAYFAIL)"), 1);
    drop(reg);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa14_default_request_reports_oom_then_fails_after_timeout() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    let ooms = m.stats().oom.load(SEQ);
    assert!(m.alloc_pages(GFP_KERNEL, 0).is_err(), "kmem's deviation: fails after oom_timeout");
    assert_eq!(m.stats().oom.load(SEQ), ooms + 1);
    let lines = log_lines(&m);
    assert!(
        lines.iter().any(|l| l.ends_with("invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"))
    );
    assert!(lines.iter().any(|l| l == "Out of memory and no killable processes..."));
    assert_eq!(count_log(&m, "page allocation failure: order:0, mode:0xcc0(GFP_KERNEL), nodemask=(null)"), 1);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa14_default_request_succeeds_when_oom_notifier_frees() {
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    let reg = register_oom(&m, vec![block]);
    let page = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).expect("the OOM notifier freed a block");
    assert_eq!(reg.notifier.calls(), 1);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    drop(reg);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa14_nofail_waits_past_oom_timeout_until_reclaim_makes_progress() {
    let m = i386_nopcp(64);
    m.set_oom_timeout_ns(Duration::from_millis(1).as_nanos() as u64);
    let mut held = exhaust(&m);
    let block = take_block(&m, &mut held, MAX_PAGE_ORDER);
    // Reclaim makes progress only on its third pass, well after the OOM timeout.
    let reg = register(&m, TestShrinker::new(&m, vec![block], 3, false));
    let page = m.alloc_pages(GFP_KERNEL | __GFP_NOFAIL | __GFP_NOWARN, 0).expect("__GFP_NOFAIL never fails");
    assert!(reg.shrinker.calls() >= 3);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    drop(reg);
    free_all(&m, held);
    check(&m);
}
