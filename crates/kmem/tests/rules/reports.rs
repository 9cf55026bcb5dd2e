//! The allocator's reports: warn_alloc (PA-15), bad page state (PA-16), bad frees that are
//! reported and ignored, `might_sleep` in atomic context, and `fail_page_alloc` injection.

use std::thread;

use kmem::context::atomic_section;
use kmem::gfp::*;
use kmem::zone::ZoneType;
use kmem::{Level, Machine, Page, Profile};
use kmem_core::memmap::pg;

use crate::*;

/// Runs `f` on a thread named `comm` (the task name reports print).
fn as_task<R: Send>(comm: &str, f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| thread::Builder::new().name(comm.into()).spawn_scoped(s, f).unwrap().join().unwrap())
}

#[test]
fn pa15_warn_alloc_line_format_exactly_once_per_window() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    let results = as_task("warner", || {
        [
            m.alloc_pages(GFP_ATOMIC, 2).is_err(),
            m.alloc_pages(GFP_ATOMIC, 2).is_err(),
            m.alloc_pages(GFP_KERNEL | __GFP_NORETRY, 0).is_err(),
        ]
    });
    assert_eq!(results, [true; 3]);
    let lines = log_lines(&m);
    let reports: Vec<&String> = lines.iter().filter(|l| l.contains("page allocation failure")).collect();
    // Since 4.19 `cpuset_print_current_mems_allowed` continues the same line (`pr_cont`).
    assert_eq!(
        reports,
        ["warner: page allocation failure: order:2, mode:0x820(GFP_ATOMIC), nodemask=(null),cpuset=/,mems_allowed=0"],
        "one per window (10 s, burst 1)"
    );
    let at = lines.iter().position(|l| l.contains("page allocation failure")).unwrap();
    // Then exactly one `CPU:` line, dump_stack's, naming the same task (the OS thread name, as
    // `current->comm`).
    assert!(lines[at + 1].starts_with("CPU: ") && lines[at + 1].ends_with(" Comm: warner"), "{}", lines[at + 1]);
    assert_eq!(lines[at + 2], "Call Trace:", "stack dump");
    assert_eq!(lines[at..].iter().filter(|l| l.starts_with("CPU: ")).count(), 1, "{:?}", &lines[at..]);
    assert!(lines[at..].iter().any(|l| l == "Mem-Info:"), "show_mem");
    assert!(m.nr_alloc_fail() >= 3);
    free_all(&m, held);
    check(&m);
}

#[test]
fn pa15_nowarn_suppresses_the_report() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0).is_err());
    assert!(m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 3).is_err());
    assert!(m.get_free_pages(GFP_NOWAIT, 1).is_err());
    assert_eq!(count_log(&m, "page allocation failure"), 0);
    // The window was not used up by the silent failures.
    assert!(m.alloc_pages(GFP_ATOMIC, 1).is_err());
    assert_eq!(
        count_log(
            &m,
            "page allocation failure: order:1, mode:0x820(GFP_ATOMIC), nodemask=(null),cpuset=/,mems_allowed=0"
        ),
        1
    );
    free_all(&m, held);
    check(&m);
}

/// `dump_header` (mm/oom_kill.c) prints the OOM report whatever the mask: `__GFP_NOWARN`
/// silences the allocation-failure report (`warn_alloc`), not the OOM killer's.
#[test]
fn pa15_nowarn_does_not_silence_the_oom_report() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    let ooms = m.stats().oom.load(SEQ);
    assert!(as_task("quiet", || m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).is_err()));
    assert_eq!(m.stats().oom.load(SEQ), ooms + 1);
    let lines = log_lines(&m);
    let header = "quiet invoked oom-killer: gfp_mask=0x2cc0(GFP_KERNEL|__GFP_NOWARN), order=0, oom_score_adj=0";
    assert_eq!(lines.iter().filter(|l| *l == header).count(), 1, "{lines:?}");
    assert!(lines.iter().any(|l| l == "Mem-Info:"), "show_mem");
    assert!(lines.iter().any(|l| l == "Out of memory and no killable processes..."));
    assert_eq!(count_log(&m, "page allocation failure"), 0, "warn_alloc stays silent");
    free_all(&m, held);
    check(&m);
}

/// `out_of_memory` with nothing to kill: `dump_header` ends with `dump_tasks`
/// (`oom_dump_tasks` is 1 by default): its two `pr_info` lines and no task rows, as a kernel
/// with no killable task prints them; then `out_of_memory`'s `pr_warn` line. kmem's own notice
/// (its deviation: it waits for frees instead of panicking) follows as a record of its own.
#[test]
fn pa15_oom_report_ends_with_the_empty_task_dump_and_a_warning() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    m.log().clear();
    assert!(as_task("tasky", || m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).is_err()));
    let records = m.log().records();
    let at = |text: &str| {
        records.iter().position(|r| r.text == text).unwrap_or_else(|| panic!("no {text:?} in {records:#?}"))
    };
    let tasks = at("Tasks state (memory values in pages):");
    let header = "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name";
    assert_eq!(records[tasks + 1].text, header);
    assert_eq!((records[tasks].level, records[tasks + 1].level), (Level::Info, Level::Info));
    let oom = &records[tasks + 2];
    assert_eq!((oom.text.as_str(), oom.level), ("Out of memory and no killable processes...", Level::Warning));
    assert!(records[tasks + 3].text.starts_with("kmem: no process to kill; waiting up to "), "{records:#?}");
    assert!(records[..tasks].iter().rev().any(|r| r.text.ends_with(" pages hwpoisoned")), "after show_mem");
    free_all(&m, held);
    check(&m);
}

/// `dump_header` → `should_dump_unreclaim_slab` → `dump_unreclaimable_slab` (mm/oom_kill.c,
/// mm/slab_common.c): after the Mem-Info block, when unreclaimable slab memory exceeds the LRU
/// pages (kmem has none, so whenever there is any), the OOM report lists every cache without
/// `SLAB_RECLAIM_ACCOUNT` that has objects: `%-17s %10luKB %10luKB` with the active and total
/// objects times the stride, in KiB rounded down. Empty and reclaimable caches are left out.
#[test]
fn pa15_oom_report_lists_unreclaimable_slab_caches() {
    use kmem::slab::CacheArgs;
    use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_RECLAIM_ACCOUNT};
    let m = i386_nopcp(64);
    let unrec = m.kmem_cache_create("oom_unreclaim", 1000, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let rec =
        m.kmem_cache_create("oom_reclaim", 1000, &CacheArgs::default(), SLAB_NO_MERGE | SLAB_RECLAIM_ACCOUNT).unwrap();
    let empty = m.kmem_cache_create("oom_empty", 1000, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let objs: Vec<_> =
        (0..10).flat_map(|_| [unrec, rec]).map(|c| (c, m.kmem_cache_alloc(c, GFP_KERNEL).unwrap())).collect();
    let held = exhaust(&m);
    m.log().clear();
    assert!(as_task("slabby", || m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).is_err()));
    let lines = log_lines(&m);
    let at = |text: &str| lines.iter().position(|l| l == text).unwrap_or_else(|| panic!("no {text:?} in {lines:#?}"));
    let (info, tasks) = (at("Unreclaimable slab info:"), at("Tasks state (memory values in pages):"));
    assert!(lines[info - 1].ends_with(" pages hwpoisoned"), "right after show_mem: {lines:#?}");
    assert_eq!(lines[info + 1], "Name                      Used          Total");
    let rows = &lines[info + 2..tasks];
    let (c, size) = (m.cache_info(unrec), m.cache(unrec).unwrap().size());
    assert_eq!((c.active_objs, size), (10, 1000), "no CPU array holds objects; i386 stride");
    let expect =
        format!("{:<17} {:>10}KB {:>10}KB", "oom_unreclaim", c.active_objs * size / 1024, c.num_objs * size / 1024);
    let total = c.num_objs * 1000 / 1024;
    assert_eq!(expect, format!("oom_unreclaim              9KB {total:>10}KB"), "10 000 bytes: 9 KiB, rounded down");
    assert_eq!(rows.iter().filter(|r| **r == expect).count(), 1, "{rows:#?}");
    assert!(!rows.iter().any(|r| r.starts_with("oom_reclaim ") || r.starts_with("oom_empty ")), "{rows:#?}");
    for row in rows {
        let (name, rest) = row.split_at(17);
        assert!(!name.trim().is_empty() && rest.starts_with(' ') && rest.len() == 26, "{row:?}");
        assert!(rest.ends_with("KB") && rest[..13].ends_with("KB"), "{row:?}");
    }
    free_all(&m, held);
    for (c, p) in objs {
        // SAFETY: Allocated above from `c`, freed once.
        unsafe { m.kmem_cache_free(c, p.as_ptr()) };
    }
    for c in [unrec, rec, empty] {
        // SAFETY: Empty now, not used again.
        unsafe { m.kmem_cache_destroy(c) }.unwrap();
    }
    check(&m);
}

/// The `WARNING:` record of a page allocator `WARN_ON_ONCE` whose text ends with `what`:
/// asserts there is exactly one, that it names the caller at `line` of this file, and that
/// the stack dump follows it.
fn assert_one_warning(m: &Machine, what: &str, line: u32) {
    let lines = log_lines(m);
    let hits: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].ends_with(what)).collect();
    assert_eq!(hits.len(), 1, "{what}: {lines:#?}");
    let warning = &lines[hits[0]];
    assert!(warning.starts_with("WARNING: CPU: "), "{warning}");
    assert!(warning.contains(&format!(" at {}:{line}:", file!())), "{warning}");
    assert!(lines[hits[0] + 1].starts_with("CPU: ") && lines[hits[0] + 2] == "Call Trace:", "{lines:#?}");
}

/// §2.8 step 5 (v6.18 `__alloc_pages_slowpath`): a `__GFP_NOFAIL` request entering the slow
/// path warns once (per machine, like `WARN_ON_ONCE`, and `__GFP_NOWARN` does not silence it)
/// for an order above 1, for a mask without `__GFP_DIRECT_RECLAIM` and for a caller already in
/// reclaim (`PF_MEMALLOC`). Without direct reclaim the request still fails, with the
/// allocation-failure report; the others are served.
#[test]
fn pa14_nofail_sanity_warnings_fire_once_each() {
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    m.log().clear();
    let no_reclaim = "__alloc_pages_slowpath: __GFP_NOFAIL without __GFP_DIRECT_RECLAIM";
    let big = "__alloc_pages_slowpath: __GFP_NOFAIL with order 2 > 1";
    let memalloc = "__alloc_pages_slowpath: __GFP_NOFAIL in a PF_MEMALLOC context";

    let (result, line) = (m.alloc_pages(GFP_ATOMIC | __GFP_NOFAIL, 0), line!());
    assert!(result.is_err(), "no direct reclaim: NULL anyway");
    assert_one_warning(&m, no_reclaim, line);
    assert_eq!(count_log(&m, "page allocation failure: order:0, mode:0x8820(GFP_ATOMIC|__GFP_NOFAIL)"), 1);
    assert_eq!(count_log(&m, "WARNING:"), 1, "{:?}", log_lines(&m));

    // Order 2 and no reclaim again: only the order is new.
    let (result, line) = (m.alloc_pages(GFP_ATOMIC | __GFP_NOFAIL | __GFP_NOWARN, 2), line!());
    assert!(result.is_err());
    assert_one_warning(&m, big, line);
    assert_eq!(count_log(&m, "WARNING:"), 2, "{:?}", log_lines(&m));

    // A costly NOFAIL request that reclaim can serve: served, nothing warned again.
    let block = take_block(&m, &mut held, kmem::MAX_PAGE_ORDER);
    let reg = register(&m, TestShrinker::new(&m, vec![block], 1, false));
    let page = m.alloc_pages(GFP_KERNEL | __GFP_NOFAIL, 3).expect("served after reclaim");
    assert!(reg.shrinker.calls() >= 1);
    drop(reg);
    assert_eq!(count_log(&m, "WARNING:"), 2, "{:?}", log_lines(&m));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 3) };
    held.extend(grab_all(&m, GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN));

    // From inside reclaim, with two pages free, far below the watermarks: warned, then served
    // from the reserves (`PF_MEMALLOC` ignores the watermarks); the second one silently.
    let (pfn1, order1) = take_block(&m, &mut held, 1);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(m.pfn_to_page(pfn1).unwrap(), order1) };
    let was = kmem::context::set_in_reclaim(true);
    let (first, line) = (m.alloc_pages(GFP_KERNEL | __GFP_NOFAIL, 0), line!());
    let second = m.alloc_pages(GFP_KERNEL | __GFP_NOFAIL, 0);
    kmem::context::set_in_reclaim(was);
    held.push((first.expect("served from the reserves"), 0));
    held.push((second.expect("served from the reserves"), 0));
    assert_one_warning(&m, memalloc, line);
    assert_eq!(count_log(&m, "WARNING:"), 3, "{:?}", log_lines(&m));
    free_all(&m, held);
    check(&m);
}

/// Frees a page prepared by `spoil` from a task named "badpage"; checks the report, that the
/// page was not returned, and that it is never handed out again.
fn bad_page_case(spoil: impl Fn(&Page), reason: &str) {
    let m = i386_nopcp(64);
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let bad = pfn(&m, page);
    spoil(page);
    let (free, bad_pages) = (m.total_free(), m.stats().bad_pages.load(SEQ));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    as_task("badpage", || unsafe { m.free_pages(page, 0) });
    let lines = log_lines(&m);
    let at = lines
        .iter()
        .position(|l| *l == format!("BUG: Bad page state in process badpage  pfn:{bad:05x}"))
        .unwrap_or_else(|| panic!("no bad page report in {lines:?}"));
    assert!(lines[at..].iter().any(|l| *l == format!("page dumped because: {reason}")), "{lines:?}");
    assert_eq!(m.total_free(), free, "the page is not returned to the free lists");
    assert_eq!(m.stats().bad_pages.load(SEQ), bad_pages + 1);
    check(&m);
    let all = exhaust(&m);
    assert!(all.iter().all(|&(p, o)| !(pfn(&m, p)..pfn(&m, p) + (1 << o)).contains(&bad)), "leaked page reused");
    assert_eq!(pages_in(&all), free);
    free_all(&m, all);
    check(&m);
}

#[test]
fn pa16_bad_page_nonzero_mapcount_is_reported_and_leaked() {
    // SAFETY: `bad_page_case` hands over a page allocated to this test, which it frees next.
    bad_page_case(|p| assert!(unsafe { p.set_mapcount(1) }), "nonzero mapcount");
}

#[test]
fn pa16_bad_page_non_null_mapping_is_reported_and_leaked() {
    // SAFETY: As above.
    bad_page_case(|p| assert!(unsafe { p.set_mapping(0xdead) }), "non-NULL mapping");
}

#[test]
fn pa16_bad_page_flags_checked_at_free_are_reported_and_leaked() {
    // SAFETY: As above; no slab lookup runs on the page before its free is refused.
    bad_page_case(|p| assert!(unsafe { p.set_flags(pg::SLAB) }), "PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
}

/// Asserts one bad page report for `bad` from the task "badpage" with `reason`, the page
/// dumped as the allocator left it (`refcount`, no list links), and a stack dump after it.
fn assert_bad_page_report(m: &Machine, bad: usize, refcount: i32, reason: &str) {
    let lines = log_lines(m);
    let head = format!("BUG: Bad page state in process badpage  pfn:{bad:05x}");
    assert_eq!(lines.iter().filter(|l| **l == head).count(), 1, "{lines:?}");
    let at = lines.iter().position(|l| *l == head).unwrap();
    let dump = format!("page: refcount:{refcount} mapcount:0 mapping:0000000000000000 index:0x0 pfn:{bad:#x}");
    assert_eq!(lines[at + 1], dump);
    assert_eq!(lines[at + 3], format!("page dumped because: {reason}"));
    assert!(lines[at..].iter().any(|l| l == "Call Trace:"), "stack dump");
}

/// PA-16 on the allocation side (`check_new_page`): a page on a free list that holds a
/// reference (taken through a stale pointer after the free) is reported as `nonzero _refcount`
/// when it comes off this CPU's list, leaked, and the request gets another page. Both the
/// fast path and the general path (an atomic caller's) check it.
#[test]
fn pa16_free_page_with_nonzero_refcount_is_reported_when_taken_from_the_pcp_list() {
    for atomic in [false, true] {
        let m = i386(64);
        let bad_pages = m.stats().bad_pages.load(SEQ);
        // One thread throughout: the free and the allocations use the same CPU's list.
        let bad = as_task("badpage", || {
            let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
            let bad = pfn(&m, page);
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(page, 0) }; // To the head of this CPU's list, where the next request looks first.
            page.page_ref_inc();
            let next = if atomic {
                let _lock = atomic_section();
                m.alloc_pages(GFP_ATOMIC, 0)
            } else {
                m.alloc_pages(GFP_KERNEL, 0)
            };
            let next = next.expect("another page is handed out");
            assert_ne!(pfn(&m, next), bad, "atomic {atomic}: the bad page is not handed out");
            assert_eq!(next.refcount(), 1);
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(next, 0) };
            bad
        });
        assert_bad_page_report(&m, bad, 1, "nonzero _refcount");
        assert_eq!(m.stats().bad_pages.load(SEQ), bad_pages + 1);
        assert!(!m.pfn_to_page(bad).unwrap().is_buddy(), "on no free list");
        m.drain_all_pages();
        check(&m);
        let all = exhaust(&m);
        assert!(all.iter().all(|&(p, o)| !(pfn(&m, p)..pfn(&m, p) + (1 << o)).contains(&bad)), "leaked page reused");
        free_all(&m, all);
        check(&m);
    }
}

/// As above through `alloc_pages_bulk`'s per-CPU loop: the bad page is not put in a slot.
#[test]
fn pa16_free_page_with_nonzero_refcount_is_reported_when_taken_by_alloc_pages_bulk() {
    let m = i386(64);
    let bad = as_task("badpage", || {
        let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
        let bad = pfn(&m, page);
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
        page.page_ref_inc();
        let mut slots = [None; 4];
        assert_eq!(m.alloc_pages_bulk(GFP_KERNEL, &mut slots), 4);
        let got: Vec<&Page> = slots.iter().map(|s| s.expect("filled")).collect();
        assert!(got.iter().all(|&p| pfn(&m, p) != bad), "the bad page is not handed out");
        for p in got {
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(p, 0) };
        }
        bad
    });
    assert_bad_page_report(&m, bad, 1, "nonzero _refcount");
    m.drain_all_pages();
    check(&m);
}

/// As above through the buddy lists (no per-CPU lists): the freed page heads a free block
/// again; order-0 requests split that block down to it, find it bad, leak that one page and
/// go on.
#[test]
fn pa16_free_page_with_nonzero_refcount_is_reported_when_taken_from_the_buddy_lists() {
    let m = i386_nopcp(64);
    as_task("badpage", || {
        let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
        let bad = pfn(&m, page);
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
        assert!(m.pfn_to_page(bad).unwrap().is_buddy(), "heads a free block");
        page.page_ref_inc();
        let free = m.total_free();
        let mut held = Vec::new();
        while let Ok(p) = m.alloc_pages(GFP_KERNEL | __GFP_MEMALLOC | __GFP_NOWARN | __GFP_NORETRY, 0) {
            held.push((p, 0));
        }
        assert!(held.iter().all(|&(p, _)| pfn(&m, p) != bad), "the bad page is not handed out");
        assert_eq!(held.len(), free - 1, "every other free page is");
        assert_bad_page_report(&m, bad, 1, "nonzero _refcount");
        free_all(&m, held);
        check(&m);
    });
}

/// PA-16's rate limit (60 reports a minute) on bad page states: 70 pages freed with a
/// mapcount give 60 reports and leak all 70. (The quiet minute's end and the
/// `messages suppressed` line are tested on a board whose clock the test moves, in
/// `kmem-core`'s `pa16_bad_page_reports_60_per_minute_then_the_suppressed_count`.)
#[test]
fn pa16_bad_page_reports_after_the_60th_are_suppressed_and_still_leak() {
    let m = i386_nopcp(64);
    let pages: Vec<&Page> = (0..70).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let (free, bad_pages) = (m.total_free(), m.stats().bad_pages.load(SEQ));
    for page in &pages {
        // SAFETY: Our page, freed next.
        assert!(unsafe { page.set_mapcount(1) });
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    assert_eq!(count_log(&m, "BUG: Bad page state in process"), 60);
    assert_eq!(count_log(&m, "page dumped because: nonzero mapcount"), 60);
    assert_eq!(m.stats().bad_pages.load(SEQ), bad_pages + 70, "all counted");
    assert_eq!(m.total_free(), free, "all 70 leaked, reported or not");
    check(&m);
}

#[test]
fn bad_free_double_free_is_reported_and_ignored_with_pcp() {
    let m = i386(64);
    let initial = m.buddyinfo();
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    let pcp = pcp_pages(&m, ZoneType::Normal);
    m.log().clear();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    assert_eq!(count_log(&m, "double free"), 1, "{:?}", log_lines(&m));
    assert_eq!(pcp_pages(&m, ZoneType::Normal), pcp, "not queued twice");
    check(&m);
    m.drain_local_pages();
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn bad_free_double_free_of_merged_page_is_reported_and_ignored() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let a = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let b = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let block = m.alloc_pages(GFP_KERNEL, 2).unwrap();
    for (p, o) in [(a, 0), (b, 0), (block, 2)] {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, o) };
    }
    assert_eq!(m.buddyinfo(), initial, "all merged back");
    m.log().clear();
    for (p, o) in [(b, 0), (a, 0), (block, 2)] {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, o) };
        check(&m);
    }
    assert_eq!(count_log(&m, "double free"), 3, "{:?}", log_lines(&m));
    assert_eq!(m.buddyinfo(), initial);
}

#[test]
fn bad_free_wrong_order_is_reported_and_ignored() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let page = m.alloc_pages(GFP_KERNEL, 2).unwrap();
    let free = m.total_free();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 1) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 3) };
    assert_eq!(count_log(&m, "freed with a different order than it was allocated with"), 2);
    assert_eq!(m.total_free(), free, "nothing freed");
    check(&m);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 2) };
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn bad_free_misaligned_or_above_max_order_is_reported_and_ignored() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let pair = m.alloc_pages(GFP_KERNEL, 1).unwrap();
    let odd = m.pfn_to_page(pfn(&m, pair) + 1).unwrap();
    let free = m.total_free();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(odd, 1) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(pair, 11) };
    assert_eq!(count_log(&m, "order does not fit the page (misaligned or above MAX_PAGE_ORDER)"), 2);
    assert_eq!(m.total_free(), free);
    check(&m);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(pair, 1) };
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn bad_free_foreign_and_reserved_pages_are_reported_and_ignored() {
    let m = i386_nopcp(64);
    let other = i386_nopcp(32);
    let initial = (m.buddyinfo(), other.buddyinfo());
    let theirs = other.alloc_pages(GFP_KERNEL, 0).unwrap();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(theirs, 0) };
    let stack_page = Page::default();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(&stack_page, 0) };
    assert_eq!(count_log(&m, "page is not in this machine's mem_map"), 2);
    // The page array's own pages are reserved: freeing one is a bad page, not a free.
    let reserved = m.pfn_to_page(m.zone(ZoneType::Normal).end_pfn() - 1).unwrap();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(reserved, 0) };
    assert_eq!(count_log(&m, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set"), 1);
    assert_eq!(m.buddyinfo(), initial.0);
    check(&m);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { other.free_pages(theirs, 0) };
    assert_eq!(other.buddyinfo(), initial.1);
    check(&other);
}

#[test]
fn bad_free_bad_address_is_reported_and_null_is_a_no_op() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    m.log().clear();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_addr(std::ptr::null(), 3) };
    assert!(m.log().records().is_empty(), "free_pages(0, order) is a no-op");
    let local = [0u8; 16];
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    let (_, line) = (unsafe { m.free_pages_addr(local.as_ptr(), 0) }, line!());
    let lines = log_lines(&m);
    assert!(lines.iter().any(|l| l.ends_with("address is not in the direct map; ignored")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains(&format!("at {}:{line}", file!()))), "{lines:?}");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_exact(local.as_ptr(), 8192) };
    assert_eq!(count_log(&m, "free_pages_exact: address is not in the direct map"), 2, "one per page");
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn might_sleep_in_atomic_context_reports_the_callers_line() {
    let m = i386(64);
    m.log().clear();
    let (atomic_ok, sleeping, line) = {
        let _lock = atomic_section();
        let atomic_ok = m.alloc_pages(GFP_ATOMIC, 0).is_ok();
        assert_eq!(count_log(&m, "BUG: sleeping function"), 0, "GFP_ATOMIC is fine in atomic context");
        let (r, line) = (m.alloc_pages(GFP_KERNEL, 0), line!());
        (atomic_ok, r.is_ok(), line)
    };
    assert!(atomic_ok && sleeping, "both succeed: memory is plentiful");
    assert!(file!().ends_with("tests/rules/reports.rs"));
    let expected = format!("BUG: sleeping function called from invalid context at {}:{line}", file!());
    let lines = log_lines(&m);
    assert_eq!(lines.iter().filter(|l| **l == expected).count(), 1, "{lines:?}");
    // Outside the section GFP_KERNEL is fine again.
    assert!(m.alloc_pages(GFP_KERNEL, 0).is_ok());
    assert_eq!(count_log(&m, "BUG: sleeping function"), 1);
}

#[test]
fn might_sleep_through_every_api_names_the_caller() {
    type Call = fn(&Machine) -> (bool, u32);
    let calls: [Call; 5] = [
        |m| (m.get_free_pages(GFP_KERNEL, 1).is_ok(), line!()),
        |m| (m.get_zeroed_page(GFP_KERNEL).is_ok(), line!()),
        |m| (m.alloc_pages_exact(5000, GFP_KERNEL).is_ok(), line!()),
        |m| (m.alloc_pages_bulk(GFP_KERNEL, &mut [None, None]) == 2, line!()),
        |m| (m.alloc_pages(GFP_NOIO, 0).is_ok(), line!()),
    ];
    for call in calls {
        let m = i386(32); // The report is rate limited per machine.
        let (ok, line) = {
            let _lock = atomic_section();
            call(&m)
        };
        assert!(ok);
        let expected = format!("BUG: sleeping function called from invalid context at {}:{line}", file!());
        assert_eq!(count_log(&m, &expected), 1, "{:?}", log_lines(&m));
    }
}

#[test]
fn might_sleep_request_in_atomic_context_does_not_sleep_or_reclaim() {
    let m = i386_nopcp(64);
    let held = exhaust(&m);
    let (stalls, sleeps) = (m.nr_allocstall(), m.stats().sleeps.load(SEQ));
    {
        let _lock = atomic_section();
        assert!(m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0).is_err());
    }
    assert_eq!(m.nr_allocstall(), stalls);
    assert_eq!(m.stats().sleeps.load(SEQ), sleeps);
    assert_eq!(count_log(&m, "BUG: sleeping function called from invalid context"), 1);
    free_all(&m, held);
    check(&m);
}

#[test]
fn fault_fail_page_alloc_via_api() {
    let m = i386(64);
    let initial = m.total_free();
    let fpa = m.fail_page_alloc();
    fpa.configure(1, 100, 0, 1).unwrap();
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC, 1).is_err(), "injected");
    let lines = log_lines(&m);
    assert_eq!(lines[0], "FAULT_INJECTION: forcing a failure.");
    assert!(lines[1].starts_with("name fail_page_alloc, interval 1, probability 100, space 0, times "), "{}", lines[1]);
    assert!(lines.iter().any(|l| l == "Call Trace:"), "verbose 2 dumps the stack");
    assert_eq!(count_log(&m, "page allocation failure"), 0, "an injected failure is not warn_alloc'ed");
    assert_eq!(fpa.injected.load(SEQ), 1);
    let page = m.alloc_pages(GFP_ATOMIC, 1).expect("times exhausted");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 1) };
    m.drain_local_pages();
    assert_eq!(m.total_free(), initial, "{}", m.buddyinfo());
    check(&m);
}

#[test]
fn fault_fail_page_alloc_filters() {
    let m = i386(64);
    let fpa = m.fail_page_alloc();
    fpa.configure(1, 100, 0, -1).unwrap();
    // Defaults: min-order 1, ignore-gfp-wait, ignore-gfp-highmem, never __GFP_NOFAIL.
    for (gfp, order) in
        [(GFP_ATOMIC, 0), (GFP_KERNEL, 1), (GFP_ATOMIC | __GFP_HIGHMEM, 1), (GFP_ATOMIC | __GFP_NOFAIL, 1)]
    {
        let page = m.alloc_pages(gfp, order).unwrap_or_else(|_| panic!("{gfp:?} order {order} is filtered out"));
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, order) };
    }
    assert_eq!(fpa.injected.load(SEQ), 0);
    m.log().clear();
    assert!(m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 1).is_err());
    assert!(m.log().records().is_empty(), "__GFP_NOWARN: injected silently");
    fpa.set_verbose(1);
    assert!(m.alloc_pages(GFP_ATOMIC, 2).is_err());
    assert_eq!(count_log(&m, "FAULT_INJECTION: forcing a failure."), 1);
    assert_eq!(count_log(&m, "Call Trace:"), 0, "verbose 1: no stack");
    assert_eq!(fpa.injected.load(SEQ), 2);
    fpa.configure(1, 0, 0, -1).unwrap();
    assert!(m.alloc_pages(GFP_ATOMIC, 1).is_ok(), "probability 0: off");
    assert!(fpa.configure(1, 101, 0, 1).is_err());
    assert!(fpa.configure(0, 10, 0, 1).is_err());
}

#[test]
fn fault_fail_page_alloc_via_builder_spec() {
    let m = builder(Profile::I386, 64)
        .fail_page_alloc("1,100,0,-1,ignore-gfp-wait=0,min-order=0,verbose=0")
        .build()
        .unwrap();
    m.log().clear();
    assert!(m.alloc_pages(GFP_KERNEL, 0).is_err());
    assert!(m.get_free_pages(GFP_ATOMIC, 3).is_err());
    assert_eq!(m.fail_page_alloc().injected.load(SEQ), 2);
    assert!(m.log().records().is_empty(), "verbose=0");
    m.fail_page_alloc().configure(1, 0, 0, 0).unwrap();
    assert!(m.alloc_pages(GFP_KERNEL, 0).is_ok());
    // A bad spec is a build error naming the knob.
    let err = builder(Profile::I386, 64).fail_page_alloc("1,200,0,1").build().unwrap_err();
    assert_eq!(err.to_string(), "fail_page_alloc: probability must be 0..=100");
    let err = builder(Profile::I386, 64).fail_page_alloc("1,10,0,1,bogus=1").build().unwrap_err();
    assert!(err.to_string().starts_with("fail_page_alloc: unknown option"), "{err}");
}

/// `fail_page_alloc` with its default `min-order` (1) fails no order-0 request: a first
/// `kmalloc(64)`, whose slab is one page, succeeds, although kmem makes the class's cache on
/// first use (from a block of several pages) where the kernel made it at boot; a request the
/// filters admit still fails.
#[test]
fn fault_fail_page_alloc_does_not_fail_a_kmalloc_for_want_of_its_cache() {
    // Eight CPU slots (as `kmem demo`): a cache structure of several pages.
    let m =
        builder(Profile::I386, 64).cpus(8).fail_page_alloc("1,100,0,-1,ignore-gfp-wait=0,verbose=0").build().unwrap();
    let p = m.kmalloc(64, GFP_KERNEL).expect("kmalloc-64's slab is one page: below min-order");
    // SAFETY: Just allocated, freed once.
    unsafe { m.kfree(p.as_ptr()) };
    assert_eq!(m.fail_page_alloc().injected.load(SEQ), 0);
    assert!(m.kmalloc(8192, GFP_KERNEL).is_err(), "kmalloc-8k's slab has order 3: injected");
    assert_eq!(m.fail_page_alloc().injected.load(SEQ), 2, "both of allocate_slab's attempts");
}
