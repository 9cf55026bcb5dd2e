//! PA-19 (SEMANTICS.md §2.10, §2.11): `alloc_pages_bulk` — only empty slots are filled, the
//! populated count is returned, and the first zone is used only above its low watermark plus
//! the array's length (`alloc_pages_bulk_noprof`), through `kmem::Machine`.

use kmem::gfp::*;
use kmem::zone::{Wmark, ZoneType};
use kmem::{PAGE_SIZE, Page};

use crate::*;

#[test]
fn pa19_bulk_fills_only_empty_slots() {
    let m = i386(64);
    let initial = m.buddyinfo();
    let a = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let b = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let mut slots: Vec<Option<&Page>> = vec![Some(a), None, None, Some(b), None, None, None, None];
    assert_eq!(m.alloc_pages_bulk(GFP_KERNEL, &mut slots), 8);
    assert!(std::ptr::eq(slots[0].unwrap(), a) && std::ptr::eq(slots[3].unwrap(), b), "filled slots untouched");
    let mut pfns: Vec<usize> = slots.iter().map(|p| pfn(&m, p.unwrap())).collect();
    pfns.sort_unstable();
    pfns.dedup();
    assert_eq!(pfns.len(), 8, "eight distinct pages");
    // Nothing to fill: nothing allocated.
    let free = (m.total_free(), pcp_pages(&m, ZoneType::Normal));
    assert_eq!(m.alloc_pages_bulk(GFP_KERNEL, &mut slots), 8);
    assert_eq!((m.total_free(), pcp_pages(&m, ZoneType::Normal)), free);
    // A single empty slot goes through the ordinary allocator.
    slots.push(None);
    assert_eq!(m.alloc_pages_bulk(GFP_KERNEL, &mut slots), 9);
    for p in slots.into_iter().flatten() {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    m.drain_local_pages();
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

/// PA-19 with PA-18: a bulk request several per-CPU batches long is served in one pass
/// (refilling as it goes), gives distinct pages from the first eligible zone, zeroes every
/// page it was asked to zero, and everything comes back.
#[test]
fn pa19_bulk_spans_refills_and_zeroes() {
    let m = i386(64);
    let initial = m.buddyinfo();
    // Dirty a good number of pages and free them so the bulk request reuses dirty memory.
    let dirty: Vec<&Page> = (0..600).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    for &p in &dirty {
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.write_bytes(m.page_address(p).unwrap(), &[0x5a; PAGE_SIZE]) }.unwrap();
    }
    for p in dirty {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    let mut slots: Vec<Option<&Page>> = vec![None; 700];
    assert_eq!(m.alloc_pages_bulk(GFP_KERNEL | __GFP_ZERO, &mut slots), 700);
    let mut pfns: Vec<usize> = slots.iter().map(|p| pfn(&m, p.unwrap())).collect();
    pfns.sort_unstable();
    pfns.dedup();
    assert_eq!(pfns.len(), 700, "distinct pages");
    let mut buf = vec![0u8; PAGE_SIZE];
    for p in slots.iter().flatten() {
        assert_eq!(m.pfn_zone(pfn(&m, p)).map(|z| z.kind()), Some(ZoneType::Normal));
        // SAFETY: The test's own allocation, used by nothing else meanwhile.
        unsafe { m.read_bytes(m.page_address(p).unwrap(), &mut buf) }.unwrap();
        assert!(buf.iter().all(|&b| b == 0), "bulk __GFP_ZERO page not zeroed");
    }
    for p in slots.into_iter().flatten() {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    m.drain_local_pages();
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

#[test]
fn pa19_bulk_under_pressure_returns_at_least_the_previous_count() {
    let m = i386_nopcp(64);
    let mut held = exhaust(&m);
    let i0 = held.iter().position(|&(_, o)| o == 0).expect("an order-0 block");
    let (keep, _) = held.swap_remove(i0);
    let mut slots = [Some(keep), None, None, None];
    assert_eq!(m.alloc_pages_bulk(GFP_ATOMIC | __GFP_NOWARN, &mut slots), 1, "nothing free: only the old slot");
    assert!(std::ptr::eq(slots[0].unwrap(), keep) && slots[1..].iter().all(Option::is_none));
    // Two free pages: it may return fewer than asked, never fewer than before.
    let i1 = held.iter().position(|&(_, o)| o == 1).expect("an order-1 block");
    let (pair, _) = held.swap_remove(i1);
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(pair, 1) };
    let n = m.alloc_pages_bulk(GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN, &mut slots);
    assert!((2..=3).contains(&n), "{n}");
    assert_eq!(slots.iter().filter(|s| s.is_some()).count(), n);
    for p in slots.into_iter().flatten() {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
    free_all(&m, held);
    check(&m);
}

/// The bulk path's zone test is `free > low + nr_pages + lowmem_reserve` with `nr_pages` the
/// whole array's length, not the number of its empty slots (v6.18 `alloc_pages_bulk_noprof`:
/// `mark = wmark_pages(zone, ALLOC_WMARK_LOW) + nr_pages`). With exactly that many pages free
/// no zone qualifies and a single page comes from the ordinary allocator; with one more, the
/// empty slots are all filled from ZONE_NORMAL.
#[test]
fn pa19_bulk_watermark_counts_the_whole_array() {
    let m = i386_nopcp(64);
    let (normal, dma) = (m.zone(ZoneType::Normal), m.zone(ZoneType::Dma));
    // ZONE_DMA never qualifies: it may not serve the bulk path here.
    let dma_free = dma.free_pages();
    m.set_zone_watermarks(ZoneType::Dma, [dma.wmark(Wmark::Min), dma_free, dma_free, dma_free])
        .expect("marks in range");
    let reserve = normal.lowmem_reserve(ZoneType::Normal);
    for (above, want) in [(0, 1), (1, 4)] {
        // Four of eight slots populated: counting only the four empty ones, ZONE_NORMAL would
        // qualify both times.
        let mut slots: Vec<Option<&Page>> =
            (0..8).map(|i| (i % 2 == 0).then(|| m.alloc_pages(GFP_KERNEL, 0).unwrap())).collect();
        let free = normal.free_pages();
        let low = free - reserve - slots.len() - above;
        let min = normal.wmark(Wmark::Min).min(low);
        m.set_zone_watermarks(ZoneType::Normal, [min, low, low, low]).expect("marks in range");
        let n = m.alloc_pages_bulk(GFP_KERNEL, &mut slots);
        assert_eq!(n, 4 + want, "free {free} = low {low} + reserve {reserve} + 8 + {above}");
        assert_eq!(normal.free_pages(), free - want);
        for p in slots.into_iter().flatten() {
            // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
            unsafe { m.free_pages(p, 0) };
        }
    }
    check(&m);
}
