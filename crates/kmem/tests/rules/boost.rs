//! Watermark boosting (SEMANTICS §2.3 "Boost", with PA-7's watermark test and PA-12's
//! fallback): a claim of a fallback block smaller than a pageblock boosts its zone's
//! watermarks by a pageblock, up to `max_boost`; the request wakes kswapd for it even on a
//! balanced node; kswapd takes back the boost it saw; `__GFP_HIGH` order-0 requests ignore the
//! boost at the min mark; `vm.watermark_boost_factor` 0 turns it off.
//!
//! The scene: an x86_64 machine of 64 MiB whose DMA zone is closed (marks above its size), so
//! everything comes from DMA32; DMA32 filled with movable order-8 blocks, every other one freed
//! again, so its free memory is half its pages in movable blocks smaller than a pageblock
//! (order 9) that cannot merge. An unmovable request then has to claim one of them.

use kmem::gfp::*;
use kmem::zone::{MigrateType, Wmark, ZoneType};
use kmem::{Builder, Machine, Page, Profile};

use crate::*;

/// DMA32's base marks in these tests: `max_boost` = 1.5 × high = 1650 pages.
const MARKS: [usize; 4] = [100, 200, 1100, 1200];
/// Pages per pageblock on x86_64 (order 9).
const PAGEBLOCK: usize = 512;

/// An x86_64 builder of `mib` MiB with Linux's boost factor, which a machine without kswapd
/// does not have by default.
fn linux(mib: u64) -> Builder {
    builder(Profile::X86_64, mib).watermark_boost_factor(kmem_core::boost::DEFAULT_WATERMARK_BOOST_FACTOR)
}

/// `b`'s machine with DMA closed.
fn machine(b: Builder) -> Machine {
    let m = b.build().expect("build x86_64 machine");
    m.set_zone_watermarks(ZoneType::Dma, [1 << 24; 4]).expect("marks in range");
    m
}

/// Fragments DMA32 as the module docs say; returns the blocks held. The marks are set last,
/// so whatever the filling boosted starts again from 0.
fn fragment(m: &Machine) -> Vec<(&Page, u32)> {
    let mut filled = Vec::new();
    while let Ok(page) = m.alloc_pages(GFP_NOWAIT | __GFP_MOVABLE, 8) {
        filled.push(page);
    }
    let held_pfns: std::collections::HashSet<usize> = filled.iter().map(|p| pfn(m, p)).collect();
    let mut held = Vec::new();
    for page in filled {
        let at = pfn(m, page);
        if at & (1 << 8) == 0 && held_pfns.contains(&(at | 1 << 8)) {
            // SAFETY: The test's own block, freed once; its buddy stays allocated.
            unsafe { m.free_pages(page, 8) };
        } else {
            held.push((page, 8));
        }
    }
    let dma32 = m.zone(ZoneType::Dma32);
    let blocks = dma32.free_blocks_per_order();
    assert_eq!(blocks[9..], [0, 0], "no free block of a pageblock or more: {blocks:?}");
    assert!(dma32.free_pages() > 4 * PAGEBLOCK, "DMA32 is half free: {}", dma32.free_pages());
    m.set_zone_watermarks(ZoneType::Dma32, MARKS).expect("marks in range");
    assert_eq!(dma32.watermark_boost(), 0, "new marks start unboosted");
    held
}

/// Allocates `GFP_KERNEL` order-0 pages until DMA32's boost moves off `from` (at most `limit`
/// pages); returns the new boost, the kswapd wake-ups counted by the allocation that boosted,
/// and the pages.
fn alloc_until_boost_moves(m: &Machine, from: usize, limit: usize) -> (usize, usize, Vec<(&Page, u32)>) {
    let dma32 = m.zone(ZoneType::Dma32);
    let mut held = Vec::new();
    for _ in 0..limit {
        let woken = m.nr_kswapd_wakeups();
        let page = m.alloc_pages(GFP_KERNEL, 0).expect("DMA32 has half its pages free");
        assert_eq!(zone_of(m, pfn(m, page)), ZoneType::Dma32);
        held.push((page, 0));
        if dma32.watermark_boost() != from {
            return (dma32.watermark_boost(), m.nr_kswapd_wakeups() - woken, held);
        }
    }
    panic!("no boost after {limit} unmovable pages");
}

/// DMA32's pageblocks of type Unmovable (each one a claim, after `fragment`).
fn unmovable_pageblocks(m: &Machine) -> usize {
    let dma32 = m.zone(ZoneType::Dma32);
    (dma32.start_pfn()..dma32.end_pfn())
        .step_by(PAGEBLOCK)
        .filter(|&pfn| m.memmap().pageblock_mt(pfn) == MigrateType::Unmovable)
        .count()
}

/// [`fragment`], then allocations up to DMA32's first boost (one pageblock); the blocks held.
fn boosted_once(m: &Machine) -> Vec<(&Page, u32)> {
    let mut held = fragment(m);
    let (boost, _, pages) = alloc_until_boost_moves(m, 0, 4096);
    held.extend(pages);
    assert_eq!(boost, PAGEBLOCK);
    held
}

fn assert_marks(m: &Machine, boost: usize) {
    let dma32 = m.zone(ZoneType::Dma32);
    assert_eq!(dma32.watermark_boost(), boost);
    for (w, base) in [Wmark::Min, Wmark::Low, Wmark::High, Wmark::Promo].into_iter().zip(MARKS) {
        assert_eq!(dma32.wmark_base(w), base, "{w:?} without the boost");
        assert_eq!(dma32.wmark(w), base + boost, "{w:?} with the boost");
    }
    let zoneinfo = m.zoneinfo();
    let block = zoneinfo.split("zone    DMA32").nth(1).expect("DMA32 in zoneinfo");
    let want = format!("\n        boost    {boost}\n        min      {}\n", MARKS[0] + boost);
    assert!(block.contains(&want), "zoneinfo shows the boost:\n{block}");
}

#[test]
fn a_fragmenting_claim_boosts_by_a_pageblock_up_to_max_boost_and_kswapd_takes_it_back() {
    for pcp in [false, true] {
        let m = machine(linux(64).pcp(pcp));
        let mut held = fragment(&m);
        let mut steps = Vec::new();
        let mut boost = 0;
        while boost < 1650 {
            let (next, woken, pages) = alloc_until_boost_moves(&m, boost, 4096);
            held.extend(pages);
            // The node is balanced (thousands of pages above the boosted high mark): only the
            // boost wakes kswapd (`pgdat_watermark_boosted`).
            assert_eq!(woken, 1, "pcp {pcp}: the boosting allocation wakes kswapd once");
            boost = next;
            steps.push(boost);
            assert_marks(&m, boost);
        }
        assert_eq!(steps, [PAGEBLOCK, 2 * PAGEBLOCK, 3 * PAGEBLOCK, 1650], "pcp {pcp}: a pageblock per event, capped");
        assert!(m.zone(ZoneType::Dma32).free_pages() > 1650 + MARKS[2], "still balanced");
        // The claims moved pageblocks to Unmovable (PA-12), and every free block is on its
        // pageblock's lists.
        assert!(unmovable_pageblocks(&m) >= 4, "pcp {pcp}: four claims");
        check(&m);

        // kswapd: the boost it saw is taken back, whatever its passes reclaimed.
        assert!(m.kswapd_balance(), "balanced");
        assert_marks(&m, 0);
        free_all(&m, held);
    }
}

/// A shrinker with 2^20 objects (so every priority scans some: 4, 8, 16, 32 … batches of 128
/// at priorities 12, 11, 10, 9 …) whose `scan(n)` runs for its call number `n` (from 0) and
/// returns the objects freed.
struct Scanner<F> {
    scan: F,
    calls: std::sync::atomic::AtomicUsize,
}

impl<F: Fn(usize) -> usize + Sync + 'static> kmem_core::reclaim::Shrinker for Scanner<F> {
    fn name(&self) -> &str {
        "boost-test"
    }

    fn count_objects(&self) -> usize {
        1 << 20
    }

    fn scan_objects(&self, _nr_to_scan: usize, _gfp: Gfp) -> usize {
        (self.scan)(self.calls.fetch_add(1, SEQ))
    }
}

impl<F: Fn(usize) -> usize + Sync + 'static> Scanner<F> {
    fn new(scan: F) -> Self {
        Self { scan, calls: Default::default() }
    }

    /// `scan_objects` calls so far.
    fn calls(&self) -> usize {
        self.calls.load(SEQ)
    }

    /// One `kswapd_balance` of `m` with this shrinker registered; its result.
    fn kswapd_balance(&self, m: &Machine) -> bool {
        let shrinker: &dyn kmem_core::reclaim::Shrinker = self;
        // SAFETY: `self` outlives the registration, removed before this returns.
        let id = unsafe { m.register_shrinker(std::ptr::NonNull::from(shrinker)) }.expect("a shrinker slot");
        let balanced = m.kswapd_balance();
        m.unregister_shrinker(id);
        balanced
    }
}

#[test]
fn boosted_kswapd_reclaims_through_the_shrinkers_and_takes_back_what_it_saw() {
    let m = machine(linux(64).pcp(false));
    let held = boosted_once(&m);
    let gift: Vec<usize> =
        (0..8).map(|_| pfn(&m, m.alloc_pages(GFP_NOWAIT | __GFP_MOVABLE, 0).expect("room"))).collect();
    // A shrinker that gives back eight pages on its first call.
    let owner = m.clone();
    let giver = Scanner::new(move |call| {
        if call > 0 {
            return 0;
        }
        let m = &owner;
        for &at in &gift {
            // SAFETY: Pages the test allocated and handed over, freed once.
            unsafe { m.free_pages(m.pfn_to_page(at).expect("held pfn"), 0) };
        }
        gift.len()
    });
    let failures = m.kswapd_failures();
    let free = m.zone(ZoneType::Dma32).free_pages();
    // The node is balanced: without the boost kswapd would have nothing to do.
    assert!(giver.kswapd_balance(&m));
    assert!(giver.calls() >= 1, "boosted reclaim ran the shrinkers");
    assert!(m.zone(ZoneType::Dma32).free_pages() >= free + 8, "the shrinker's pages came back");
    assert_eq!(m.kswapd_failures(), failures, "progress: no failure");
    assert_marks(&m, 0);
    // Balanced and unboosted: a run does no pass at all.
    let calls = giver.calls();
    assert!(giver.kswapd_balance(&m));
    assert_eq!(giver.calls(), calls, "no reclaim on a balanced, unboosted node");
    free_all(&m, held);
}

#[test]
fn boosted_reclaim_holds_priority_10_while_it_makes_progress_and_stops_at_a_pass_that_frees_none() {
    // Boost 512, a balanced node, and a shrinker that frees one of 60 pages per call: passes at
    // priority 12 (4 calls, 4 pages), 11 (8), then 10 held while pages come back (16, 16, 16:
    // the 60th page ends the fifth pass), and one more at 10 that frees nothing ends the run:
    // 76 calls. Lowering the priority on would scan 4 + 8 + 16 + 32 + 64 = 124.
    let m = machine(linux(64).pcp(false));
    let held = boosted_once(&m);
    let gift: Vec<usize> =
        (0..60).map(|_| pfn(&m, m.alloc_pages(GFP_NOWAIT | __GFP_MOVABLE, 0).expect("room"))).collect();
    let owner = m.clone();
    let giver = Scanner::new(move |call| {
        let Some(&at) = gift.get(call) else { return 0 };
        // SAFETY: A page the test allocated and handed over, freed once.
        unsafe { owner.free_pages(owner.pfn_to_page(at).expect("held pfn"), 0) };
        1
    });
    assert!(giver.kswapd_balance(&m));
    assert_eq!(giver.calls(), 76, "priority held at DEF_PRIORITY - 2");
    assert_marks(&m, 0);
    free_all(&m, held);
}

#[test]
fn a_boosted_run_on_an_unbalanced_node_restarts_as_an_ordinary_run() {
    // Below the boosted high mark, kswapd drops boosted reclaim and runs every priority from
    // 12 down to 1 with a shrinker that frees nothing: (2^21 >> p) / 128 calls at each, 16380
    // in all (boosted reclaim alone would stop after the 4 calls at priority 12). The boost it
    // saw is taken back all the same, and the run, which started boosted, is no failure.
    let m = machine(linux(64).pcp(false));
    let mut held = boosted_once(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    while dma32.free_pages() > dma32.wmark(Wmark::High) - 100 {
        held.push((m.alloc_pages(GFP_NOWAIT | __GFP_MEMALLOC | __GFP_MOVABLE, 0).expect("no watermarks"), 0));
    }
    let idle = Scanner::new(|_| 0);
    // (Between the base and the boosted high marks: balanced once the boost is gone.)
    assert!(idle.kswapd_balance(&m));
    assert_eq!(idle.calls(), 16_380, "every priority, 12 down to 1");
    assert_marks(&m, 0);
    assert_eq!(m.kswapd_failures(), 0);
    free_all(&m, held);
}

#[test]
fn gfp_high_order_0_requests_ignore_the_boost_at_the_min_mark() {
    // DMA32 boosted by a pageblock: min 100 + 512 = 612. At 200 free pages (PA-7's fractions),
    // - GFP_NOWAIT (the whole min) fails: 612 boosted; it passes unboosted (100);
    // - GFP_ATOMIC (`__GFP_HIGH` without blocking: min less 50 %, then less 25 %) fails the
    //   boosted test (230), is tested again at the base min (38), and passes.
    let m = machine(linux(64).pcp(false));
    let mut held = boosted_once(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    let target = 200;
    while dma32.free_pages() > target {
        let page = m.alloc_pages(GFP_NOWAIT | __GFP_MEMALLOC | __GFP_MOVABLE, 0).expect("no watermarks");
        held.push((page, 0));
    }
    assert_eq!(dma32.free_pages(), target);
    assert!(m.alloc_pages(GFP_NOWAIT, 0).is_err(), "below the boosted min");
    // The exception is for order 0 only: an order-1 GFP_ATOMIC (199 usable, boosted 230) fails,
    // where the base min (38) would have let it through.
    assert!(m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 1).is_err(), "order 1 keeps the boost");
    assert_eq!(dma32.free_pages(), target, "nothing taken");
    let page = m.alloc_pages(GFP_ATOMIC, 0).expect("__GFP_HIGH ignores the boost at the min mark");
    held.push((page, 0));
    assert_eq!(zone_of(&m, pfn(&m, page)), ZoneType::Dma32);
    // Without the boost, GFP_NOWAIT passes at (about) the same level.
    m.kswapd_balance();
    assert_eq!(dma32.watermark_boost(), 0);
    let page = m.alloc_pages(GFP_NOWAIT, 0).expect("unboosted, GFP_NOWAIT passes");
    held.push((page, 0));
    free_all(&m, held);
}

#[test]
fn a_boost_factor_of_0_turns_boosting_off_and_the_sysctl_range_is_kept() {
    let m = machine(linux(64).pcp(false).watermark_boost_factor(0));
    assert_eq!(m.watermark_boost_factor(), 0);
    let mut held = fragment(&m);
    let woken = m.nr_kswapd_wakeups();
    for _ in 0..2000 {
        held.push((m.alloc_pages(GFP_KERNEL, 0).expect("DMA32 has room"), 0));
    }
    assert_marks(&m, 0);
    assert_eq!(m.nr_kswapd_wakeups(), woken, "no boost, no wake-up: the node stays balanced");
    assert!(unmovable_pageblocks(&m) > 0, "claims happened all the same");

    // The defaults: Linux's factor where kswapd runs to take boosts back, none where it does not.
    let with = builder(Profile::X86_64, 32).kswapd(true).trim_after(None).build().unwrap();
    assert_eq!(with.watermark_boost_factor(), kmem_core::boost::DEFAULT_WATERMARK_BOOST_FACTOR);
    assert_eq!(builder(Profile::X86_64, 32).build().unwrap().watermark_boost_factor(), 0);

    // The sysctl takes any int from 0; a new factor applies to later events.
    assert!(m.set_watermark_boost_factor(i32::MAX as usize + 1).is_err());
    assert_eq!(m.watermark_boost_factor(), 0, "a refused value changes nothing");
    m.set_watermark_boost_factor(10_000).expect("in range");
    let (boost, woken, pages) = alloc_until_boost_moves(&m, 0, 4096);
    held.extend(pages);
    assert_eq!((boost, woken), (PAGEBLOCK, 1), "boosting back on");
    free_all(&m, held);
    check(&m);
}

#[test]
fn recomputed_watermarks_drop_the_boost() {
    let m = machine(linux(64).pcp(false));
    let held = boosted_once(&m);
    // `__setup_per_zone_wmarks` (a new min_free_kbytes): new marks, no boost.
    m.set_min_free_kbytes(m.min_free_kbytes()).expect("same value");
    let dma32 = m.zone(ZoneType::Dma32);
    assert_eq!(dma32.watermark_boost(), 0);
    assert_eq!(dma32.wmark(Wmark::Min), dma32.wmark_base(Wmark::Min));
    free_all(&m, held);
}

#[test]
fn the_kswapd_thread_takes_back_a_boost() {
    let m = machine(builder(Profile::X86_64, 64).pcp(false).kswapd(true).trim_after(None));
    let mut held = fragment(&m);
    // The real kswapd thread runs concurrently (the fragmenting woke it too): it may take the
    // boost back before this thread sees it, so count claims, not boosts seen.
    let claims = unmovable_pageblocks(&m);
    let dma32 = m.zone(ZoneType::Dma32);
    while unmovable_pageblocks(&m) == claims {
        assert!(held.len() < 100_000, "no claim");
        held.push((m.alloc_pages(GFP_KERNEL, 0).expect("DMA32 has half its pages free"), 0));
    }
    // The claim boosted DMA32 and woke kswapd, whose run ends by taking the boost back.
    let start = std::time::Instant::now();
    while dma32.watermark_boost() != 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "kswapd never took the boost back");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(m.stats().kswapd_rounds.load(SEQ) >= 1);
    free_all(&m, held);
}

#[test]
fn a_request_that_may_not_wake_kswapd_boosts_without_waking_it() {
    // `ALLOC_KSWAPD` comes from `__GFP_KSWAPD_RECLAIM`: without it, the boost happens and
    // nothing is woken for it (`try_to_claim_block` sets `ZONE_BOOSTED_WATERMARK` only with it).
    let gfp = GFP_KERNEL.difference(__GFP_KSWAPD_RECLAIM);
    for pcp in [false, true] {
        let m = machine(linux(64).pcp(pcp));
        let mut held = fragment(&m);
        let dma32 = m.zone(ZoneType::Dma32);
        let woken = m.nr_kswapd_wakeups();
        while dma32.watermark_boost() == 0 {
            assert!(held.len() < 100_000, "no boost");
            held.push((m.alloc_pages(gfp, 0).expect("room"), 0));
        }
        assert_eq!(dma32.watermark_boost(), PAGEBLOCK);
        assert_eq!(m.nr_kswapd_wakeups(), woken, "pcp {pcp}: no wake-up");
        // The next request that may wake kswapd and boosts does (the node is balanced).
        let (boost, woken, pages) = alloc_until_boost_moves(&m, PAGEBLOCK, 4096);
        held.extend(pages);
        assert_eq!((boost, woken), (2 * PAGEBLOCK, 1), "pcp {pcp}");
        free_all(&m, held);
    }
}

#[test]
fn a_boost_added_during_a_kswapd_run_outlives_it_and_boosted_runs_are_no_failures() {
    let m = machine(linux(64).pcp(false));
    let mut held = boosted_once(&m);
    // A shrinker that, on its first call, allocates unmovable pages until DMA32's boost moves:
    // a boost added while kswapd runs.
    let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (owner, into) = (m.clone(), taken.clone());
    let booster = Scanner::new(move |call| {
        if call > 0 {
            return 0;
        }
        let (m, taken) = (&owner, &into);
        let dma32 = m.zone(ZoneType::Dma32);
        let before = dma32.watermark_boost();
        let mut taken = taken.lock().unwrap();
        while dma32.watermark_boost() == before && taken.len() < 4096 {
            let Ok(page) = m.alloc_pages(GFP_KERNEL, 0) else { break };
            taken.push(m.page_to_pfn(page).expect("pfn"));
        }
        0
    });
    booster.kswapd_balance(&m);
    assert!(booster.calls() >= 1, "boosted reclaim ran the shrinkers");
    // The run saw 512 pages of boost and took those back; the 512 its shrinker added stay.
    assert_marks(&m, PAGEBLOCK);
    assert_eq!(m.kswapd_failures(), 0, "a boosted run is no failure");
    for pfn in taken.lock().unwrap().drain(..) {
        held.push((m.pfn_to_page(pfn).expect("held pfn"), 0));
    }

    // More boosted runs that reclaim nothing (17) than make kswapd give up (16,
    // MAX_RECLAIM_RETRIES): none counts, so kswapd keeps taking boosts back (6.18 counts them;
    // the follow-up upstream fix does not).
    m.kswapd_balance();
    assert_marks(&m, 0);
    for run in 0..=16 {
        let (boost, woken, pages) = alloc_until_boost_moves(&m, 0, 4096);
        held.extend(pages);
        assert_eq!((boost, woken), (PAGEBLOCK, 1), "run {run}: boosted, kswapd woken");
        m.kswapd_balance();
        assert_marks(&m, 0);
    }
    assert_eq!(m.kswapd_failures(), 0);
    assert!(!m.kswapd_hopeless());
    free_all(&m, held);
}
