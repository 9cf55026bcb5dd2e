//! PA-17 (SEMANTICS.md §2.7, §2.11): per-CPU page lists — LIFO reuse, the orders they serve,
//! flushing at the high mark, and the Linux 6.7+ auto-tuning of that mark, through
//! `kmem::Machine`.

use std::time::Duration;

use kmem::gfp::*;
use kmem::zone::{Wmark, ZoneType};
use kmem::{Machine, Page, Profile};

use crate::*;

#[test]
fn pa17_pcp_lifo_reuse_and_pages_on_pcp_are_not_free() {
    let m = i386(64);
    let normal = m.zone(ZoneType::Normal);
    let a = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let b = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let (pa, pb) = (pfn(&m, a), pfn(&m, b));
    let (free, pcp) = (normal.free_pages(), pcp_pages(&m, ZoneType::Normal));
    let row = buddyinfo_row(&m, "Normal");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(a, 0) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(b, 0) };
    assert_eq!(normal.free_pages(), free, "pages on per-CPU lists are not counted as free");
    assert_eq!(buddyinfo_row(&m, "Normal"), row);
    assert_eq!(pcp_pages(&m, ZoneType::Normal), pcp + 2);
    let c = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let d = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_eq!((pfn(&m, c), pfn(&m, d)), (pb, pa), "last freed, first reused");
    // Orders up to 3 go through the lists too.
    let e = m.alloc_pages(GFP_KERNEL, 3).unwrap();
    let pe = pfn(&m, e);
    let free = normal.free_pages();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(e, 3) };
    assert_eq!(normal.free_pages(), free);
    assert_eq!(pfn(&m, m.alloc_pages(GFP_KERNEL, 3).unwrap()), pe);
    check(&m);
}

/// `__GFP_COLD` (the seeds' legacy flag, kept in the free bit 0x200; docs/deviations.md): the
/// page comes from the cold tail of the per-CPU list, the one freed longest ago, while a plain
/// request keeps taking the hot head.
#[test]
fn pa17_gfp_cold_takes_the_tail_of_the_pcp_list() {
    let m = i386(64);
    let pages: Vec<&Page> = (0..3).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let pfns: Vec<usize> = pages.iter().map(|&p| pfn(&m, p)).collect();
    // Only these three on the list: freed in order, the first is the coldest.
    m.drain_local_pages();
    assert_eq!(pcp_pages(&m, ZoneType::Normal), 0);
    for &p in &pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    assert_eq!(pcp_pages(&m, ZoneType::Normal), 3);
    let cold = m.alloc_pages(GFP_KERNEL | __GFP_COLD, 0).unwrap();
    assert_eq!(pfn(&m, cold), pfns[0], "the coldest page");
    let hot = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_eq!(pfn(&m, hot), pfns[2], "the hottest page");
    let cold2 = m.alloc_pages(GFP_KERNEL | __GFP_COLD, 0).unwrap();
    assert_eq!(pfn(&m, cold2), pfns[1]);
    assert_eq!(pcp_pages(&m, ZoneType::Normal), 0, "no refill while the list had pages");
    for p in [cold, hot, cold2] {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    check(&m);
}

#[test]
fn pa17_orders_above_3_bypass_the_pcp() {
    let m = i386(64);
    let normal = m.zone(ZoneType::Normal);
    let page = m.alloc_pages(GFP_KERNEL, 4).unwrap();
    let (free, pcp) = (normal.free_pages(), pcp_pages(&m, ZoneType::Normal));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 4) };
    assert_eq!(normal.free_pages(), free + 16, "straight to the buddy lists");
    assert_eq!(pcp_pages(&m, ZoneType::Normal), pcp);
    check(&m);
}

/// The largest per-CPU high mark of a zone over all slots (one test thread uses one slot).
fn cpu_high(m: &Machine, kind: ZoneType) -> usize {
    (0..m.nr_cpus()).map(|cpu| m.pcp_high(cpu, kind)).max().unwrap_or(0)
}

/// PA-17 with auto-tuning (SEMANTICS §2.7): frees go to the list until the CPU's high mark;
/// at it, pages go back to the buddy lists a batch or more at a time; a long run of frees
/// raises the mark (never above `high_max`) so later runs stay on the list.
#[test]
fn pa17_pcp_list_is_flushed_to_the_buddy_at_high() {
    let m = i386(64);
    let initial = m.buddyinfo();
    let normal = m.zone(ZoneType::Normal);
    let (high_min, high_max, batch) =
        (normal.pcp_high() as usize, normal.pcp_high_max() as usize, normal.pcp_batch() as usize);
    assert!(high_min > 0 && batch > 0 && high_max > high_min, "{high_min} {high_max} {batch}");
    assert_eq!(cpu_high(&m, ZoneType::Normal), high_min, "every CPU starts at high_min");
    let pages: Vec<&Page> = (0..high_max + 4 * batch).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    assert!(pages.iter().all(|&p| zone_of(&m, pfn(&m, p)) == ZoneType::Normal));
    let free_before = normal.free_pages();
    let mut flushes = 0;
    for &p in &pages {
        let before = pcp_pages(&m, ZoneType::Normal);
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
        let (count, high) = (pcp_pages(&m, ZoneType::Normal), cpu_high(&m, ZoneType::Normal));
        assert!(count < high && high <= high_max, "count {count} high {high} high_max {high_max}");
        if count <= before {
            flushes += 1;
            assert!(before + 1 - count >= batch, "a flush returns at least a batch");
        }
    }
    assert!(flushes > 0 && normal.free_pages() > free_before, "flushed pages reached the buddy lists");
    assert!(cpu_high(&m, ZoneType::Normal) > high_min, "a long run of frees raised the mark");
    assert!(m.drain_local_pages() > 0);
    assert_eq!(pcp_pages(&m, ZoneType::Normal), 0);
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

/// PA-17 auto-tuning: consecutive order-0 allocations double the refill (`alloc_factor`), so
/// fewer refills than one per batch serve a long run.
#[test]
fn pa17_consecutive_allocations_refill_in_growing_batches() {
    let m = i386(64);
    let normal = m.zone(ZoneType::Normal);
    let batch = normal.pcp_batch() as usize;
    let n = 16 * batch;
    let refills = m.stats().pcp_refills.load(SEQ);
    let pages: Vec<&Page> = (0..n).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let used = m.stats().pcp_refills.load(SEQ) - refills;
    assert!(used > 0 && used < n / batch, "{used} refills for {n} pages with batch {batch}");
    for p in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    m.drain_local_pages();
    check(&m);
}

/// PA-17 auto-tuning (`ZONE_BELOW_HIGH`): an allocation that finds the zone below its high
/// watermark marks it; frees then shrink the CPU's high mark toward `high_min` and flush down
/// to it, and a flush that brings the zone back above the high watermark clears the mark.
#[test]
fn pa17_below_the_high_watermark_the_mark_shrinks() {
    // Eight CPU slots and a wide watermark gap, so the zone can sit well below its high
    // watermark (by more than the lists hold) while staying above low.
    let m = builder(Profile::I386, 256).cpus(8).build().unwrap();
    m.set_watermark_scale_factor(300).unwrap();
    let normal = m.zone(ZoneType::Normal);
    let (high_min, batch) = (normal.pcp_high() as usize, normal.pcp_batch() as usize);
    let target = normal.wmark(Wmark::High) - 3 * high_min;
    assert!(target > normal.wmark(Wmark::Low) + batch, "watermark gap too small for the test");
    // Raise the mark with a long run of frees while memory is plentiful.
    let run: Vec<&Page> = (0..normal.pcp_high_max() as usize).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for p in run {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    let raised = cpu_high(&m, ZoneType::Normal);
    assert!(raised > high_min && !normal.below_high());
    // Take the zone below its high watermark with order-4 blocks (straight from the buddy lists).
    m.drain_local_pages();
    let mut held = Vec::new();
    while normal.free_pages() > target {
        held.push(m.alloc_pages(GFP_KERNEL, 4).unwrap());
    }
    let probe = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert!(normal.below_high(), "an allocation below the high watermark marks the zone");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(probe, 0) };
    assert!(cpu_high(&m, ZoneType::Normal) < raised, "frees below the high watermark shrink the mark");
    // Order-0 frees keep shrinking it to high_min: above high_min every free flushes, so the
    // lists never grow until they are down to it.
    let small: Vec<&Page> = (0..2 * high_min).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let mut prev = pcp_pages(&m, ZoneType::Normal);
    for p in small {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
        let count = pcp_pages(&m, ZoneType::Normal);
        assert!(count <= prev.max(high_min), "{prev} -> {count} (high_min {high_min})");
        prev = count;
    }
    assert!(prev <= high_min);
    assert_eq!(cpu_high(&m, ZoneType::Normal), high_min);
    assert!(normal.below_high());
    // Give the memory back: a flush that finds the zone above its high watermark clears the mark.
    for p in held {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 4) };
    }
    let more: Vec<&Page> = (0..2 * high_min).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for p in more {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    assert!(!normal.below_high(), "cleared once a flush finds the zone above its high watermark");
    m.drain_local_pages();
    check(&m);
}

/// PA-17 auto-tuning: kswapd decays an idle CPU's raised mark on its own (about once a
/// second, as the kernel's vmstat worker does), flushing the pages above it.
#[test]
fn pa17_kswapd_decays_idle_marks() {
    let m = builder(Profile::I386, 64).kswapd(true).build().unwrap();
    let normal = m.zone(ZoneType::Normal);
    let run: Vec<&Page> = (0..normal.pcp_high_max() as usize).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for p in run {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    let (raised, parked) = (cpu_high(&m, ZoneType::Normal), pcp_pages(&m, ZoneType::Normal));
    assert!(raised > normal.pcp_high() as usize);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cpu_high(&m, ZoneType::Normal) == raised {
        assert!(std::time::Instant::now() < deadline, "kswapd never decayed the mark");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cpu_high(&m, ZoneType::Normal) < raised);
    assert!(pcp_pages(&m, ZoneType::Normal) <= parked);
    m.drain_local_pages();
}

/// PA-17 auto-tuning (`decay_pcp_high`): each decay lowers an idle CPU's raised mark by an
/// eighth toward `high_min` and flushes the pages above it, down to `high_min`.
#[test]
fn pa17_decay_returns_idle_pages_to_high_min() {
    let m = i386(64);
    let initial = m.buddyinfo();
    let normal = m.zone(ZoneType::Normal);
    let high_min = normal.pcp_high() as usize;
    let run: Vec<&Page> = (0..normal.pcp_high_max() as usize).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for p in run {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    let mut high = cpu_high(&m, ZoneType::Normal);
    assert!(high > high_min && pcp_pages(&m, ZoneType::Normal) > high_min);
    let mut flushed = 0;
    while high > high_min {
        flushed += m.decay_pcp_high();
        let next = cpu_high(&m, ZoneType::Normal);
        assert!(next < high && next >= high - high / 8 - 1 || next == high_min, "{high} -> {next}");
        assert!(pcp_pages(&m, ZoneType::Normal) <= next.max(high_min));
        high = next;
    }
    assert!(flushed > 0 && pcp_pages(&m, ZoneType::Normal) <= high_min);
    assert_eq!(m.decay_pcp_high(), 0, "nothing left to decay");
    m.drain_local_pages();
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

/// Frees `n` order-1 blocks in one run and returns, after each free, the pages on the lists.
fn high_order_free_run(m: &Machine, n: usize) -> Vec<usize> {
    let blocks: Vec<&Page> = (0..n).map(|_| m.alloc_pages(GFP_KERNEL, 1).unwrap()).collect();
    m.drain_local_pages();
    blocks
        .into_iter()
        .map(|p| {
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(p, 1) };
            pcp_pages(m, ZoneType::Normal)
        })
        .collect()
}

/// PA-17 auto-tuning (`free_high`): in a long run of high-order frees without allocations the
/// pages do not linger; with a cache slice of more than three batches
/// (`PCPF_FREE_HIGH_BATCH`) up to a batch stays between flushes, without it every free of the
/// run flushes the lists.
#[test]
fn pa17_runs_of_high_order_frees_do_not_linger() {
    // A zone large enough for a batch above 1 (the run is only detected once `free_count`,
    // capped at `batch << 5`, reaches `batch + high_min / 2`).
    let m = i386(512);
    let normal = m.zone(ZoneType::Normal);
    let (high_min, batch) = (normal.pcp_high() as usize, normal.pcp_batch() as usize);
    let n = 2 * (batch + high_min);
    assert!(normal.pcp_free_high_batch(), "the default 2 MiB slice holds more than three batches");
    let counts = high_order_free_run(&m, n);
    let tail = &counts[n / 2..];
    assert!(tail.iter().all(|&c| c < batch + 2), "at most a batch stays: {tail:?}");
    assert!(tail.iter().any(|&c| c >= 2), "pages stay between flushes with PCPF_FREE_HIGH_BATCH");
    m.drain_local_pages();

    m.set_pcp_cache_slice_bytes(0);
    assert!(!normal.pcp_free_high_batch());
    let counts = high_order_free_run(&m, n);
    assert!(counts[n / 2..].iter().all(|&c| c == 0), "every free of the run flushes: {counts:?}");
    // Order-0 frees are not such a run: they stay.
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    assert!(pcp_pages(&m, ZoneType::Normal) > 0);
    m.drain_local_pages();
    check(&m);
}

/// PA-17 auto-tuning: `get_page_from_freelist` probes each zone at its high watermark with
/// `zone_watermark_fast`, whose order > 0 test also needs a free block of the order, and sets
/// `ZONE_BELOW_HIGH` when the probe fails. A zone with plenty of free pages but no free block
/// of order 4 or more is marked by an order-4 request that then goes to the next zone.
#[test]
fn pa17_a_zone_without_a_block_of_the_order_is_marked_below_high() {
    let m = i386(64);
    let normal = m.zone(ZoneType::Normal);
    // Every order-4 block of ZONE_NORMAL (past its watermarks, so ZONE_DMA's go too), then
    // every other page of each given back: half the zone free, but no free block above order 0.
    let (mut blocks, mut dma) = (Vec::new(), Vec::new());
    while buddyinfo_row(&m, "Normal")[4..].iter().any(|&n| n > 0) {
        let b = m.alloc_pages(GFP_KERNEL | __GFP_MEMALLOC, 4).unwrap();
        if pfn(&m, b) < DMA_END_PFN { dma.push(b) } else { blocks.push(b) }
    }
    for b in dma {
        // SAFETY: The test's own blocks, unused afterwards.
        unsafe { m.free_pages(b, 4) };
    }
    let mut kept = Vec::new();
    for b in blocks {
        let p = pfn(&m, b);
        // SAFETY: The test's own block, not shared.
        unsafe { m.split_page(b, 4) }.unwrap();
        for i in 0..16 {
            let page = m.pfn_to_page(p + i).unwrap();
            if i % 2 == 0 {
                kept.push(page);
            } else {
                // SAFETY: The test's own page, unused afterwards.
                unsafe { m.free_pages(page, 0) };
            }
        }
    }
    m.drain_local_pages();
    // A free of a per-CPU list above the zone's high watermark clears the mark.
    let p = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    // SAFETY: The test's own page, unused afterwards.
    unsafe { m.free_pages(p, 0) };
    let flushed: Vec<&Page> =
        (0..2 * normal.pcp_high_max() as usize).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for p in flushed {
        // SAFETY: The test's own pages, unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    assert!(normal.free_pages() > normal.wmark(Wmark::High) + normal.managed() / 4);
    assert!(buddyinfo_row(&m, "Normal")[4..].iter().all(|&n| n == 0), "{}", m.buddyinfo());
    assert!(!normal.below_high(), "above the high watermark, unmarked");
    let b = m.alloc_pages(GFP_KERNEL, 4).unwrap();
    assert!(pfn(&m, b) < DMA_END_PFN, "served by ZONE_DMA");
    assert!(normal.below_high(), "ZONE_NORMAL failed its high-watermark probe: no block of order 4");
    // SAFETY: The test's own pages, unused afterwards.
    unsafe { m.free_pages(b, 4) };
    for p in kept {
        // SAFETY: The test's own pages, unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    m.drain_local_pages();
    check(&m);
}

/// PA-17: a flush at the high mark (`free_pcppages_bulk(zone, count, pcp, pindex)`) starts
/// with the list the freed page went to ("Ensure requested pindex is drained first"), then
/// goes round the other lists; each flush starts afresh. Blocks of one order freed before a
/// run of frees of another order that reaches the mark stay on their list; the run's coldest
/// block goes back first.
#[test]
fn pa17_a_flush_drains_the_freed_pages_list_first() {
    let m = builder(Profile::I386, 64).cpus(1).build().unwrap();
    let normal = m.zone(ZoneType::Normal);
    let on_pcp = |p: &Page| p.flags() & kmem::memmap::pg::PCP != 0;
    for (earlier, run) in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 3)] {
        let alloc = |order: u32, pages: usize| -> Vec<&Page> {
            (0..pages >> order).map(|_| m.alloc_pages(GFP_KERNEL, order).unwrap()).collect()
        };
        // Enough of the run's blocks to reach any high mark (allocations raise it, up to
        // high_max).
        let (kept, blocks) =
            (alloc(earlier, normal.pcp_high() as usize / 4), alloc(run, 2 * normal.pcp_high_max() as usize));
        m.drain_local_pages();
        for &p in &kept {
            // SAFETY: The test's own blocks, unused afterwards.
            unsafe { m.free_pages(p, earlier) };
        }
        // SAFETY: The test's own block, unused afterwards.
        unsafe { m.free_pages(blocks[0], run) };
        assert!(on_pcp(blocks[0]));
        let mut freed = 1;
        while freed < blocks.len() && on_pcp(blocks[0]) && kept.iter().all(|&p| on_pcp(p)) {
            // SAFETY: The test's own blocks, unused afterwards.
            unsafe { m.free_pages(blocks[freed], run) };
            freed += 1;
        }
        assert!(freed < blocks.len(), "order {earlier} then {run}: no flush");
        assert!(kept.iter().all(|&p| on_pcp(p)), "order {earlier} then {run}: the order-{earlier} blocks went first");
        assert!(!on_pcp(blocks[0]), "order {earlier} then {run}: the coldest order-{run} block stayed");
        for &p in &blocks[freed..] {
            // SAFETY: The test's own blocks, unused afterwards.
            unsafe { m.free_pages(p, run) };
        }
        m.drain_local_pages();
    }
    check(&m);
}
