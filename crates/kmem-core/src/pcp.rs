//! Per-CPU page lists (`struct per_cpu_pages`): the page allocator's fast path.
//!
//! Each CPU slot has, per zone, one list per (order ≤ 3, migratetype < `MIGRATE_PCPTYPES`),
//! linked through the pages' `next`/`prev` like the buddy lists. Pages on them are marked
//! `PG_PCP` with their order and are not counted as free (`NR_FREE_PAGES`), as in the kernel.
//!
//! Ownership: a slot's lists are touched by the context that [`crate::platform::Platform::cpu`]
//! says runs on that slot, inside a [`crate::pcp_guard::SlotGuard`] section (two plain stores,
//! no lock, no atomic read-modify-write), or by a remote drainer (reclaim, `drain_all_pages`)
//! that claimed the slot while the owner was outside its section. A drainer that finds the
//! owner inside leaves `drain_requested`, which the owner honours on its next operation. A
//! slot whose thread exits is drained by that thread first.
//!
//! Counters are atomics written by one context with a plain load and store ([`PcpSlot::bump`],
//! no read-modify-write) and read by anyone: a slot's per-zone counters (`count`, `pgalloc`,
//! `pgfree`, `high`) by the slot's holder (owner or drainer), its event counters
//! ([`PcpSlot::alloc_fail`], [`PcpSlot::kswapd_wakeups`]: the kernel's `count_vm_event`) only
//! by its owner, inside or outside a section (a drainer never writes them). A sum over the
//! slots is exact while no allocation runs.
//!
//! Invariant: `zones[z].count == Σ over zone z's lists of (list length << order)`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::memmap::{MemMap, NIL, pg};
use crate::zone::{MAX_NR_ZONES, MIGRATE_PCPTYPES, MigrateType};

/// Most CPU slots a machine can have.
pub const MAX_CPUS: usize = 64;
/// Orders served by per-CPU lists: `0..=PCP_MAX_ORDER` (`pcp_allowed_order`).
pub const PCP_MAX_ORDER: u32 = crate::order::PAGE_ALLOC_COSTLY_ORDER;
/// Lists per zone per CPU (`NR_LOWORDER_PCP_LISTS`).
pub const NR_PCP_LISTS: usize = MIGRATE_PCPTYPES * (PCP_MAX_ORDER as usize + 1);

/// `order_to_pindex`.
#[inline]
#[must_use]
pub const fn pindex(order: u32, mt: MigrateType) -> usize {
    MIGRATE_PCPTYPES * order as usize + mt as usize
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// The auto-tuning state of one zone's lists on one CPU (`pcp->free_count`, `alloc_factor`,
/// `PCPF_PREV_FREE_HIGH_ORDER`); only the slot's holder touches it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tuning {
    /// Pages freed recently without allocations in between (halved by each allocation).
    pub free_count: usize,
    /// log2 of the refill multiplier for consecutive order-0 allocations (halved by each free).
    pub alloc_factor: u32,
    /// The previous free was of order 1..=3.
    pub prev_free_high_order: bool,
}

/// One zone's lists on one CPU: the part only the slot's holder may touch.
struct Lists {
    lists: [List; NR_PCP_LISTS],
    tuning: Tuning,
}

impl Lists {
    const fn new() -> Self {
        Self {
            lists: [List { head: NIL, tail: NIL }; NR_PCP_LISTS],
            tuning: Tuning { free_count: 0, alloc_factor: 0, prev_free_high_order: false },
        }
    }
}

/// One zone's lists on one CPU, as the slot's holder sees them: the lists, and the counters
/// that live outside them (atomics in [`ZonePcp`], written only by the holder) so other CPUs
/// can read them.
pub struct PerCpuPages<'a> {
    inner: &'a mut Lists,
    zone: &'a ZonePcp,
}

impl PerCpuPages<'_> {
    /// Pages on all lists.
    #[inline]
    #[must_use]
    pub fn count(&self) -> usize {
        self.zone.count.load(Relaxed)
    }

    #[inline]
    fn add_count(&self, delta: isize) {
        PcpSlot::bump(&self.zone.count, delta as usize);
    }

    /// This CPU's high mark for the zone (`pcp->high`; 0 until first tuned).
    #[inline(always)]
    #[must_use]
    pub fn high(&self) -> usize {
        self.zone.high.load(Relaxed)
    }

    /// Sets this CPU's high mark (published for `/proc/zoneinfo`).
    #[inline(always)]
    pub fn set_high(&self, high: usize) {
        self.zone.high.store(high, Relaxed);
    }

    /// The auto-tuning state.
    #[inline(always)]
    pub fn tuning(&mut self) -> &mut Tuning {
        &mut self.inner.tuning
    }

    /// Counts `nr` pages allocated through this slot from this zone.
    #[inline(always)]
    pub fn count_alloc(&self, nr: usize) {
        PcpSlot::bump(&self.zone.pgalloc, nr);
    }

    /// Counts `nr` pages freed through this slot to this zone.
    #[inline(always)]
    pub fn count_free(&self, nr: usize) {
        PcpSlot::bump(&self.zone.pgfree, nr);
    }

    /// Adds a block at the head (hot) or the tail (cold).
    ///
    /// # Safety
    /// `pfn` must be inside `mm` and the block must be free and owned by the caller.
    #[inline(always)]
    pub unsafe fn push(&mut self, mm: &MemMap, pfn: usize, order: u32, mt: MigrateType, cold: bool) {
        let list = &mut self.inner.lists[pindex(order, mt)];
        // SAFETY: In range by the caller's contract.
        let page = unsafe { mm.page_unchecked(pfn) };
        page.set_info(pg::PCP, order, mt);
        let p = pfn as u32;
        if cold {
            page.next.store(NIL, Relaxed);
            page.prev.store(list.tail, Relaxed);
            if list.tail == NIL {
                list.head = p;
            } else {
                // SAFETY: The tail is a pfn on this list, in range by the module invariant.
                unsafe { mm.page_unchecked(list.tail as usize) }.next.store(p, Relaxed);
            }
            list.tail = p;
        } else {
            page.prev.store(NIL, Relaxed);
            page.next.store(list.head, Relaxed);
            if list.head == NIL {
                list.tail = p;
            } else {
                // SAFETY: The head is a pfn on this list, in range by the module invariant.
                unsafe { mm.page_unchecked(list.head as usize) }.prev.store(p, Relaxed);
            }
            list.head = p;
        }
        self.add_count(1 << order);
    }

    /// Takes a block from the head (hot) or the tail (cold).
    #[inline(always)]
    pub fn pop(&mut self, mm: &MemMap, order: u32, mt: MigrateType, cold: bool) -> Option<usize> {
        let list = &mut self.inner.lists[pindex(order, mt)];
        let pfn = if cold { list.tail } else { list.head };
        if pfn == NIL {
            return None;
        }
        // SAFETY: `pfn` and its neighbours are on this list, so in range (module invariant;
        // every link is range-checked below before it becomes a list end).
        let page = unsafe { mm.page_unchecked(pfn as usize) };
        let (mut next, mut prev) = (page.next.load(Relaxed), page.prev.load(Relaxed));
        // Defence in depth: a link outside memory can only come from a corrupted page; end the
        // list there (its pages leak) rather than follow it.
        if next != NIL && mm.get(next as usize).is_none() {
            next = NIL;
        }
        if prev != NIL && mm.get(prev as usize).is_none() {
            prev = NIL;
        }
        if prev == NIL {
            list.head = next;
        } else {
            // SAFETY: As above.
            unsafe { mm.page_unchecked(prev as usize) }.next.store(next, Relaxed);
        }
        if next == NIL {
            list.tail = prev;
        } else {
            // SAFETY: As above.
            unsafe { mm.page_unchecked(next as usize) }.prev.store(prev, Relaxed);
        }
        // The caller rewrites the page's `info` (allocation) or re-lists it (drain).
        self.add_count(-(1isize << order));
        Some(pfn as usize)
    }

    /// Takes the coldest blocks until at least `nr_pages` pages (or everything) are taken
    /// (`free_pcppages_bulk(zone, count, pcp, pindex)`): the lists are visited round-robin from
    /// list `start` ("Ensure requested pindex is drained first": the list a free just added
    /// to, or 0 for a drain), and a non-empty list is emptied from its cold end until enough
    /// is taken before the next one is visited, as the kernel does; each call starts afresh.
    /// Calls `f(pfn, order, mt)` for each block.
    pub fn take_cold(
        &mut self,
        mm: &MemMap,
        start: usize,
        nr_pages: usize,
        mut f: impl FnMut(usize, u32, MigrateType),
    ) -> usize {
        let mut taken = 0;
        let mut visited = 0;
        let mut index = start % NR_PCP_LISTS;
        while taken < nr_pages && self.count() > 0 && visited < NR_PCP_LISTS {
            visited += 1;
            let order = (index / MIGRATE_PCPTYPES) as u32;
            let mt = MigrateType::from_index(index % MIGRATE_PCPTYPES);
            while taken < nr_pages
                && let Some(pfn) = self.pop(mm, order, mt, true)
            {
                // SAFETY: `pop` returned a pfn of this list, in range by the module invariant.
                unsafe { mm.page_unchecked(pfn) }.set_info(0, 0, MigrateType::Unmovable);
                visited = 0;
                taken += 1 << order;
                f(pfn, order, mt);
            }
            index = (index + 1) % NR_PCP_LISTS;
        }
        taken
    }

    /// Every block on the lists (checks and diagnostics).
    pub fn for_each(&self, mm: &MemMap, mut f: impl FnMut(usize, u32, MigrateType)) {
        for (index, list) in self.inner.lists.iter().enumerate() {
            let mut pfn = list.head;
            while pfn != NIL {
                f(pfn as usize, (index / MIGRATE_PCPTYPES) as u32, MigrateType::from_index(index % MIGRATE_PCPTYPES));
                pfn = mm.page(pfn as usize).next.load(Relaxed);
            }
        }
    }
}

/// One zone's part of a CPU slot: the lists and their counters, side by side so the fast path
/// finds all of them from one index.
pub struct ZonePcp {
    lists: UnsafeCell<Lists>,
    /// Pages on the lists; written only by the slot's holder, read by anyone
    /// (`/proc/zoneinfo`, drain decisions).
    pub count: AtomicUsize,
    /// Pages allocated through this slot from this zone; written only by the holder.
    pub pgalloc: AtomicUsize,
    /// Pages freed through this slot to this zone; written only by the holder.
    pub pgfree: AtomicUsize,
    /// `pcp->high`, auto-tuned; written only by the holder.
    pub high: AtomicUsize,
}

/// One CPU slot: its per-zone lists, its event counters and the drain request flag.
pub struct PcpSlot {
    /// Per zone, by zone index.
    pub zones: [ZonePcp; MAX_NR_ZONES],
    /// Page allocations that failed on this slot; written only by the slot's owner.
    pub alloc_fail: AtomicUsize,
    /// Times an allocation on this slot woke the background reclaimer; written only by the
    /// slot's owner.
    pub kswapd_wakeups: AtomicUsize,
    /// Set by another context that wants this slot's pages back on the buddy lists.
    pub drain_requested: AtomicBool,
    /// Owner-or-drainer exclusion (see [`crate::pcp_guard`]).
    pub guard: crate::pcp_guard::SlotGuard,
}

// SAFETY: The `UnsafeCell`s are accessed only through `PcpSlot::lists`, whose contract gives
// one context exclusive use of the slot; everything else is atomic.
unsafe impl Sync for PcpSlot {}

impl Default for PcpSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl PcpSlot {
    /// An empty slot. (Not `const`: under `cfg(kmem_loom)` its guard is built on loom's atomics.)
    #[must_use]
    pub fn new() -> Self {
        Self {
            zones: [const {
                ZonePcp {
                    lists: UnsafeCell::new(Lists::new()),
                    count: AtomicUsize::new(0),
                    pgalloc: AtomicUsize::new(0),
                    pgfree: AtomicUsize::new(0),
                    high: AtomicUsize::new(0),
                }
            }; MAX_NR_ZONES],
            alloc_fail: AtomicUsize::new(0),
            kswapd_wakeups: AtomicUsize::new(0),
            drain_requested: AtomicBool::new(false),
            guard: crate::pcp_guard::SlotGuard::new(),
        }
    }

    /// Adds to an owner-only counter without a read-modify-write instruction.
    #[inline]
    pub fn bump(counter: &AtomicUsize, n: usize) {
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The lists of zone `zone` on this slot.
    ///
    /// # Safety
    /// The caller must be the only context using this slot (it was returned by
    /// `Platform::cpu` for the caller, or the slot's owner is gone), and must not hold another
    /// reference obtained from this function for the same zone.
    #[inline]
    pub unsafe fn lists(&self, zone: usize) -> PerCpuPages<'_> {
        let zone = &self.zones[zone];
        // SAFETY: Exclusive use of the slot is the caller's contract.
        PerCpuPages { inner: unsafe { &mut *zone.lists.get() }, zone }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    use crate::memmap::test_map as map;

    /// PA-17 / `free_pcppages_bulk`: a drain of `n` pages empties one list from its cold end
    /// before it visits the next, and the count stays the sum of the lists.
    #[test]
    fn take_cold_drains_a_list_before_moving_on() {
        let (_s, mm) = map(64);
        let slot = PcpSlot::new();
        // SAFETY: This test is the slot's only user.
        let mut lists = unsafe { slot.lists(0) };
        for pfn in 0..8 {
            // SAFETY: In range, and owned by this test.
            unsafe { lists.push(&mm, pfn, 0, MigrateType::Movable, false) };
        }
        for pfn in [8, 10, 12] {
            // SAFETY: As above (order-1 blocks at even pfns).
            unsafe { lists.push(&mm, pfn, 1, MigrateType::Unmovable, false) };
        }
        assert_eq!(lists.count(), 14);
        let mut got = Vec::new();
        let taken = lists.take_cold(&mm, 0, 5, |pfn, order, mt| got.push((pfn, order, mt)));
        assert_eq!(taken, 5);
        // From pindex 0 (order 0, Unmovable: empty), then order 0 Movable, coldest
        // (first pushed) first, until five pages are taken.
        let movable: Vec<_> = (0..5).map(|pfn| (pfn, 0, MigrateType::Movable)).collect();
        assert_eq!(got, movable);
        assert_eq!(lists.count(), 9);
        got.clear();
        assert_eq!(lists.take_cold(&mm, 0, usize::MAX, |pfn, order, mt| got.push((pfn, order, mt))), 9);
        assert_eq!(lists.count(), 0);
        assert_eq!(got.len(), 6, "three order-0 and three order-1 blocks left");
        assert!(got.iter().all(|&(pfn, _, _)| mm.page(pfn).flags() & pg::PCP == 0));
    }
}
