//! Buddy free lists of one zone (`struct free_area`): split (`FreeArea::expand`) and merge
//! (`FreeArea::free_one_page`) exactly as `mm/page_alloc.c` does.
//!
//! Free blocks are linked through their head page's `next`/`prev` fields by pfn, one doubly
//! linked list per (order, migratetype); no pointer into the free memory itself is ever made.
//! Invariants (checked by `FreeArea::check`, a test-only method):
//! - every listed pfn is the head of a naturally aligned block inside the zone, marked
//!   `PG_BUDDY` with the list's order and migratetype;
//! - `count[o][mt]` is the length of each list and `nr_free_pages` is `Σ count << o`;
//! - no page inside a free block (other than its head) is a buddy head: blocks never overlap;
//! - two free buddies of the same order that could merge are never both on the lists.
//!
//! All methods run under the zone lock (`Zone::area`).

use crate::memmap::{MemMap, NIL, pg};
use crate::order::{MAX_PAGE_ORDER, NR_PAGE_ORDERS, buddy_pfn, is_aligned};
use crate::zone::{MIGRATE_TYPES, MigrateType};

/// The free lists of one zone.
pub struct FreeArea {
    head: [[u32; MIGRATE_TYPES]; NR_PAGE_ORDERS],
    tail: [[u32; MIGRATE_TYPES]; NR_PAGE_ORDERS],
    count: [[usize; MIGRATE_TYPES]; NR_PAGE_ORDERS],
    /// Pages on the free lists (`NR_FREE_PAGES`).
    pub(crate) nr_free_pages: usize,
}

impl Default for FreeArea {
    fn default() -> Self {
        Self::new()
    }
}

impl FreeArea {
    /// Empty free lists.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            head: [[NIL; MIGRATE_TYPES]; NR_PAGE_ORDERS],
            tail: [[NIL; MIGRATE_TYPES]; NR_PAGE_ORDERS],
            count: [[0; MIGRATE_TYPES]; NR_PAGE_ORDERS],
            nr_free_pages: 0,
        }
    }

    /// Free blocks per order (`free_area[o].nr_free`).
    #[must_use]
    pub fn nr_free_per_order(&self) -> [usize; NR_PAGE_ORDERS] {
        core::array::from_fn(|o| self.count[o].iter().sum())
    }

    /// Free blocks per migratetype and order.
    #[must_use]
    pub fn nr_free_per_type(&self) -> [[usize; NR_PAGE_ORDERS]; MIGRATE_TYPES] {
        core::array::from_fn(|mt| core::array::from_fn(|o| self.count[o][mt]))
    }

    /// Whether the (`order`, `mt`) list is non-empty (`!free_area_empty(area, mt)`).
    #[inline]
    #[must_use]
    pub fn has_free_at(&self, order: u32, mt: MigrateType) -> bool {
        self.count[order as usize][mt as usize] != 0
    }

    /// Whether any list of `order` or above for `mt` is non-empty.
    #[must_use]
    pub fn has_block(&self, order: u32, mt: MigrateType) -> bool {
        (order as usize..NR_PAGE_ORDERS).any(|o| self.count[o][mt as usize] != 0)
    }

    /// Puts the free block `pfn` of `order` on the `mt` list (`__add_to_free_list`), marking
    /// its head `PG_BUDDY` plus `extra` flags.
    pub(crate) fn add(&mut self, mm: &MemMap, pfn: usize, order: u32, mt: MigrateType, to_tail: bool, extra: u32) {
        let (o, m) = (order as usize, mt as usize);
        let page = mm.page(pfn);
        page.set_info(pg::BUDDY | extra, order, mt);
        page.refcount.store(0, core::sync::atomic::Ordering::Relaxed);
        let pfn32 = pfn as u32;
        if to_tail {
            let old_tail = self.tail[o][m];
            page.prev.store(old_tail, core::sync::atomic::Ordering::Relaxed);
            page.next.store(NIL, core::sync::atomic::Ordering::Relaxed);
            if old_tail == NIL {
                self.head[o][m] = pfn32;
            } else {
                // SAFETY: A listed pfn, in the page array by the module invariant.
                unsafe { mm.page_unchecked(old_tail as usize) }
                    .next
                    .store(pfn32, core::sync::atomic::Ordering::Relaxed);
            }
            self.tail[o][m] = pfn32;
        } else {
            let old_head = self.head[o][m];
            page.next.store(old_head, core::sync::atomic::Ordering::Relaxed);
            page.prev.store(NIL, core::sync::atomic::Ordering::Relaxed);
            if old_head == NIL {
                self.tail[o][m] = pfn32;
            } else {
                // SAFETY: A listed pfn, in the page array by the module invariant.
                unsafe { mm.page_unchecked(old_head as usize) }
                    .prev
                    .store(pfn32, core::sync::atomic::Ordering::Relaxed);
            }
            self.head[o][m] = pfn32;
        }
        self.count[o][m] += 1;
        self.nr_free_pages += 1 << order;
    }

    /// Takes the free block headed by `pfn` off its list (`__del_page_from_free_list`).
    /// Returns the flags it carried besides `PG_BUDDY` (for example `PG_TRIMMED`).
    pub(crate) fn del(&mut self, mm: &MemMap, pfn: usize) -> u32 {
        use core::sync::atomic::Ordering::Relaxed;
        let page = mm.page(pfn);
        debug_assert!(page.is_buddy(), "pfn {pfn:#x} is not a free block");
        let (order, mt) = (page.order(), page.list_mt());
        let (o, m) = (order as usize, mt as usize);
        let (next, prev) = (page.next.load(Relaxed), page.prev.load(Relaxed));
        if prev == NIL {
            self.head[o][m] = next;
        } else {
            // SAFETY: A listed pfn's neighbours are listed pfns, in range (module invariant).
            unsafe { mm.page_unchecked(prev as usize) }.next.store(next, Relaxed);
        }
        if next == NIL {
            self.tail[o][m] = prev;
        } else {
            // SAFETY: As above.
            unsafe { mm.page_unchecked(next as usize) }.prev.store(prev, Relaxed);
        }
        let extra = page.flags() & !pg::BUDDY;
        page.set_info(0, 0, MigrateType::Unmovable);
        self.count[o][m] -= 1;
        self.nr_free_pages -= 1 << order;
        extra
    }

    /// Gives the memory of every untrimmed free block of order `min_order` or more back
    /// through `discard`, and marks those blocks `PG_TRIMMED`. Returns the pages released.
    pub(crate) fn trim(&mut self, mm: &MemMap, min_order: u32, mut discard: impl FnMut(usize, usize) -> bool) -> usize {
        self.walk_reportable(mm, min_order, |page, pfn, order| {
            let flags = page.flags();
            flags & pg::TRIMMED == 0 && discard(pfn, 1 << order)
        })
    }

    /// Calls `release(page, pfn, order)` for every free block of order `min_order` or more;
    /// a block it returns true for is marked `PG_TRIMMED` (its other marks dropped). Returns
    /// the pages of those blocks.
    fn walk_reportable(
        &mut self,
        mm: &MemMap,
        min_order: u32,
        mut release: impl FnMut(&crate::memmap::Page, usize, u32) -> bool,
    ) -> usize {
        let mut released = 0;
        for order in min_order..=MAX_PAGE_ORDER {
            for mt in MigrateType::ALL {
                let mut pfn = self.head[order as usize][mt as usize];
                while pfn != NIL {
                    let page = mm.page(pfn as usize);
                    if release(page, pfn as usize, order) {
                        page.set_info(pg::BUDDY | pg::TRIMMED, order, mt);
                        released += 1 << order;
                    }
                    pfn = page.next.load(core::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        released
    }

    /// The first block of the (`order`, `mt`) list, if any.
    #[must_use]
    pub fn first(&self, order: u32, mt: MigrateType) -> Option<usize> {
        let pfn = self.head[order as usize][mt as usize];
        (pfn != NIL).then_some(pfn as usize)
    }

    /// `expand`: the block `pfn` of order `high` was taken for a request of order `low`; put the
    /// upper halves back on the heads of the lists, largest first. The caller keeps `pfn`.
    pub(crate) fn expand(&mut self, mm: &MemMap, pfn: usize, low: u32, mut high: u32, mt: MigrateType) {
        while high > low {
            high -= 1;
            self.add(mm, pfn + (1 << high), high, mt, false, 0);
        }
    }

    /// `__rmqueue_smallest`: the first block of the smallest order ≥ `order` on the `mt` lists,
    /// split down to `order`.
    pub(crate) fn rmqueue_smallest(&mut self, mm: &MemMap, order: u32, mt: MigrateType) -> Option<usize> {
        for current in order..=MAX_PAGE_ORDER {
            if let Some(pfn) = self.first(current, mt) {
                self.del(mm, pfn);
                self.expand(mm, pfn, order, current, mt);
                return Some(pfn);
            }
        }
        None
    }

    /// `__rmqueue_fallback`: steals the largest free block of a fallback type (PA-12). A block of
    /// at least a pageblock claims its pageblocks for `mt`; the split remainder goes to the
    /// lists of the pageblock's (possibly new) type.
    pub(crate) fn rmqueue_fallback(&mut self, mm: &MemMap, order: u32, mt: MigrateType) -> Option<usize> {
        for &fallback in mt.fallbacks() {
            for current in (order..=MAX_PAGE_ORDER).rev() {
                let Some(pfn) = self.first(current, fallback) else { continue };
                self.del(mm, pfn);
                let pb_order = mm.pageblock_order();
                if current >= pb_order {
                    let mut block = pfn;
                    while block < pfn + (1 << current) {
                        mm.set_pageblock_mt(block, mt);
                        block += 1 << pb_order;
                    }
                }
                let rest_mt = mm.pageblock_mt(pfn);
                self.expand(mm, pfn, order, current, rest_mt);
                return Some(pfn);
            }
        }
        None
    }

    /// `__free_one_page`: frees the block `pfn` of `order` into a zone spanning
    /// `[zone_start, zone_end)`, merging with free buddies as far as possible (PA-5, PA-6).
    /// Returns the pfn and order of the resulting free block.
    pub(crate) fn free_one_page(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        mut pfn: usize,
        mut order: u32,
        mut mt: MigrateType,
        to_tail: bool,
    ) -> (usize, u32) {
        assert!(is_aligned(pfn, order), "free of misaligned block pfn {pfn:#x} order {order}");
        assert!(pfn >= zone.0 && pfn + (1 << order) <= zone.1, "free of pfn {pfn:#x} outside its zone");
        let pb_order = mm.pageblock_order();
        while order < MAX_PAGE_ORDER {
            let buddy = buddy_pfn(pfn, order);
            if buddy < zone.0 || buddy + (1 << order) > zone.1 {
                break;
            }
            // SAFETY: `buddy` lies inside the zone (checked just above), so in the page array.
            let bpage = unsafe { mm.page_unchecked(buddy) };
            if !bpage.is_buddy() || bpage.order() != order {
                break;
            }
            if order >= pb_order {
                let buddy_mt = mm.pageblock_mt(buddy);
                if buddy_mt != mt && !(buddy_mt.is_mergeable() && mt.is_mergeable()) {
                    break;
                }
                if buddy_mt != mt {
                    // `change_pageblock_range`: the merged block takes our type.
                    let mut block = buddy;
                    while block < buddy + (1 << order) {
                        mm.set_pageblock_mt(block, mt);
                        block += 1 << pb_order;
                    }
                }
            } else {
                mt = bpage.list_mt();
            }
            self.del(mm, buddy);
            pfn &= buddy;
            order += 1;
        }
        let tail = to_tail || self.buddy_merge_likely(mm, zone, pfn, order);
        self.add(mm, pfn, order, mt, tail, 0);
        (pfn, order)
    }

    /// `buddy_merge_likely`: the buddy of the next-larger block is free, so this block will
    /// probably merge soon; put it at the tail so it is not split again first.
    fn buddy_merge_likely(&self, mm: &MemMap, zone: (usize, usize), pfn: usize, order: u32) -> bool {
        if order >= MAX_PAGE_ORDER - 1 {
            return false;
        }
        let higher = pfn & buddy_pfn(pfn, order);
        let higher_buddy = buddy_pfn(higher, order + 1);
        if higher_buddy < zone.0 || higher_buddy + (2 << order) > zone.1 {
            return false;
        }
        // SAFETY: Inside the zone (checked just above), so in the page array.
        let page = unsafe { mm.page_unchecked(higher_buddy) };
        page.is_buddy() && page.order() == order + 1
    }

    /// One aging scan over the free blocks of order `min_order` or more: an untrimmed block
    /// seen free by the previous scan too is released through `discard` and marked
    /// `PG_TRIMMED`; the others are marked `PG_TRIM_AGED` for the next scan. A block that is
    /// allocated, or merged into a larger one, in between loses its marks. Returns the pages
    /// released.
    pub(crate) fn trim_aged(
        &mut self,
        mm: &MemMap,
        min_order: u32,
        mut discard: impl FnMut(usize, usize) -> bool,
    ) -> usize {
        self.walk_reportable(mm, min_order, |page, pfn, order| {
            let flags = page.flags();
            if flags & pg::TRIMMED != 0 {
                return false;
            }
            if flags & pg::TRIM_AGED == 0 {
                page.set_info(flags | pg::TRIM_AGED, order, page.list_mt());
                return false;
            }
            discard(pfn, 1 << order)
        })
    }

    /// Every pfn on every list, with its order and migratetype (diagnostics and checks).
    pub fn for_each_block(&self, mm: &MemMap, mut f: impl FnMut(usize, u32, MigrateType)) {
        for order in 0..NR_PAGE_ORDERS {
            for mt in MigrateType::ALL {
                let mut pfn = self.head[order][mt as usize];
                while pfn != NIL {
                    f(pfn as usize, order as u32, mt);
                    pfn = mm.page(pfn as usize).next.load(core::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// Panics on any broken invariant of the module doc. Walks every free page.
    #[cfg(any(test, feature = "check"))]
    pub fn check(&self, mm: &MemMap, zone: (usize, usize)) {
        let mut counts = [[0usize; MIGRATE_TYPES]; NR_PAGE_ORDERS];
        let mut pages = 0;
        self.for_each_block(mm, |pfn, order, mt| {
            let page = mm.page(pfn);
            assert!(page.is_buddy(), "listed pfn {pfn:#x} not PG_BUDDY");
            assert_eq!(page.order(), order, "pfn {pfn:#x} order");
            assert_eq!(page.list_mt(), mt, "pfn {pfn:#x} migratetype");
            assert!(is_aligned(pfn, order), "pfn {pfn:#x} misaligned for order {order}");
            assert!(pfn >= zone.0 && pfn + (1 << order) <= zone.1, "pfn {pfn:#x} outside zone");
            for inner in pfn + 1..pfn + (1 << order) {
                let p = mm.page(inner);
                assert!(!p.is_buddy(), "pfn {inner:#x} inside free block {pfn:#x}/{order} is a buddy head");
                assert_eq!(p.flags() & pg::PCP, 0, "pfn {inner:#x} inside a free block is on a pcp list");
            }
            if order < MAX_PAGE_ORDER {
                let buddy = buddy_pfn(pfn, order);
                if buddy >= zone.0 && buddy + (1 << order) <= zone.1 && order < mm.pageblock_order() {
                    let b = mm.page(buddy);
                    assert!(
                        !(b.is_buddy() && b.order() == order),
                        "unmerged buddies {pfn:#x}/{buddy:#x} order {order}"
                    );
                }
            }
            counts[order as usize][mt as usize] += 1;
            pages += 1 << order;
        });
        assert_eq!(counts, self.count, "free list counts");
        assert_eq!(pages, self.nr_free_pages, "nr_free_pages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::memmap::test_map as map;

    #[test]
    fn pa4_split_leaves_one_block_per_lower_order() {
        let (_s, mm) = map(1024);
        let mut area = FreeArea::new();
        area.add(&mm, 0, 10, MigrateType::Unmovable, false, 0);
        let pfn = area.rmqueue_smallest(&mm, 0, MigrateType::Unmovable).unwrap();
        assert_eq!(pfn, 0, "the caller keeps the lowest sub-block");
        assert_eq!(area.nr_free_per_order(), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        // The upper halves: order o block at pfn 1 << o.
        for o in 0..10 {
            assert_eq!(area.first(o, MigrateType::Unmovable), Some(1 << o));
        }
        area.check(&mm, (0, 1024));
        let (merged, order) = area.free_one_page(&mm, (0, 1024), pfn, 0, MigrateType::Unmovable, false);
        assert_eq!((merged, order), (0, 10), "PA-5: merges all the way back");
        assert_eq!(area.nr_free_per_order(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        area.check(&mm, (0, 1024));
    }

    #[test]
    fn pa6_no_merge_with_buddy_of_other_order() {
        let (_s, mm) = map(1024);
        let mut area = FreeArea::new();
        // pfn 0 is free at order 0 (its buddy 1 is not free).
        area.add(&mm, 0, 0, MigrateType::Unmovable, false, 0);
        // Freeing order 1 at pfn 2: its buddy position 0 is a free block, but of order 0, not 1.
        let freed = area.free_one_page(&mm, (0, 1024), 2, 1, MigrateType::Unmovable, false);
        assert_eq!(freed, (2, 1));
        assert_eq!(area.nr_free_per_order()[..3], [1, 1, 0]);
        area.check(&mm, (0, 1024));
    }

    /// PA-6 across zones: two zones meet at pfn 12, which is aligned to order 2 but not to
    /// order 3, so the order-2 blocks at 8 (zone A) and 12 (zone B) are buddies of the same
    /// order, both free, and only the zone bound in `free_one_page` keeps them apart. Both
    /// freeing orders are tried: the second free looks across the zone's end (A) or its start (B).
    /// Each zone also holds a free order-2 block that is nobody's buddy, so a wrong merge shows
    /// as counts rather than as an underflow.
    #[test]
    fn pa6_no_merge_across_a_zone_boundary_not_aligned_to_the_merge_order() {
        const MT: MigrateType = MigrateType::Unmovable;
        let (za, zb) = ((0, 12), (12, 64));
        for b_first in [false, true] {
            let (_s, mm) = map(64);
            let (mut a, mut b) = (FreeArea::new(), FreeArea::new());
            a.add(&mm, 0, 2, MT, false, 0); // Its buddy 4 is not free.
            b.add(&mm, 20, 2, MT, false, 0); // Its buddy 16 is not free.
            let (in_a, in_b) = if b_first {
                let in_b = b.free_one_page(&mm, zb, 12, 2, MT, false);
                (a.free_one_page(&mm, za, 8, 2, MT, false), in_b)
            } else {
                let in_a = a.free_one_page(&mm, za, 8, 2, MT, false);
                (in_a, b.free_one_page(&mm, zb, 12, 2, MT, false))
            };
            assert_eq!((in_a, in_b), ((8, 2), (12, 2)), "b_first {b_first}: each stays in its own zone");
            assert_eq!(a.nr_free_per_order()[2..4], [2, 0], "b_first {b_first}: zone A");
            assert_eq!(b.nr_free_per_order()[2..4], [2, 0], "b_first {b_first}: zone B");
            assert_eq!((a.nr_free_pages, b.nr_free_pages), (8, 8));
            a.check(&mm, za);
            b.check(&mm, zb);
        }
    }

    #[test]
    fn fallback_steals_largest_and_claims_pageblocks() {
        let (_s, mm) = map(1024);
        let mut area = FreeArea::new();
        area.add(&mm, 0, 10, MigrateType::Movable, false, 0);
        let pfn = area.rmqueue_fallback(&mm, 0, MigrateType::Unmovable).unwrap();
        assert_eq!(pfn, 0);
        assert_eq!(mm.pageblock_mt(0), MigrateType::Unmovable);
        assert_eq!(mm.pageblock_mt(600), MigrateType::Unmovable);
        assert!(area.has_block(0, MigrateType::Unmovable));
        area.check(&mm, (0, 1024));
    }
}
