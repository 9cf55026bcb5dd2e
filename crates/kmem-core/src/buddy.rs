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
//! - two free buddies of the same order that could merge are never both on the lists;
//! - a free block is on the lists of its pageblock's migratetype, and a block of a pageblock
//!   or more lies in pageblocks of one type (the "freelist hygiene" of Linux 6.10 on): every
//!   free takes the type from the pageblock, `expand` keeps the type of the block it splits,
//!   and a pageblock is retyped only together with its free blocks
//!   (`fallback::move_freepages_block`) or when it is wholly inside a block being taken or
//!   merged (`fallback::change_pageblock_range`).
//!
//! A block taken off the lists to give its memory back to the host (`FreeArea::walk_chunk`,
//! the kernel's `__isolate_free_page`) is *isolated*: on no list, not counted in
//! `nr_free_pages` (as the kernel's `del_page_from_free_list` takes it out of `NR_FREE_PAGES`),
//! its head not `PG_BUDDY` (so no free merges with it and no allocation finds it), not
//! allocated either (refcount 0). The context that isolated it owns it until
//! `FreeArea::putback` returns it, merged as a free would be; the invariants above hold
//! throughout, with isolated blocks simply absent.
//!
//! All methods run under the zone lock (`Zone::area`).

use crate::boost::Boost;
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
    /// Pages on the `MIGRATE_HIGHATOMIC` lists (`zone->nr_free_highatomic`, kept as
    /// `account_freepages` does).
    pub(crate) nr_free_highatomic: usize,
    /// Pages in pageblocks reserved for high-order atomic allocations
    /// (`zone->nr_reserved_highatomic`; `page_alloc/highatomic.rs`).
    pub(crate) nr_reserved_highatomic: usize,
    /// `zone->watermark_boost` and its bound (`boost.rs`), changed under the zone lock.
    pub(crate) boost: Boost,
}

/// `PAGE_REPORTING_CAPACITY`: the most free blocks one hold of the zone lock takes off the
/// free lists to give back to the host.
pub const PAGE_REPORTING_CAPACITY: usize = 32;

/// A free block taken off the free lists ([`FreeArea::walk_chunk`]) until
/// [`FreeArea::putback`] returns it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Isolated {
    pub(crate) pfn: u32,
    pub(crate) order: u8,
}

/// Up to [`PAGE_REPORTING_CAPACITY`] isolated blocks (the kernel's scatterlist).
pub(crate) struct Batch {
    blocks: [Isolated; PAGE_REPORTING_CAPACITY],
    len: usize,
}

impl Batch {
    pub(crate) const fn new() -> Self {
        Self { blocks: [Isolated { pfn: 0, order: 0 }; PAGE_REPORTING_CAPACITY], len: 0 }
    }

    /// The blocks isolated so far.
    pub(crate) fn blocks(&self) -> &[Isolated] {
        &self.blocks[..self.len]
    }
}

/// Where a chunked walk ([`FreeArea::walk_chunk`]) stands between two holds of the zone lock:
/// a list, and how many of its blocks are still to visit. Only indices: no pfn is kept across
/// an unlocked stretch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalkCursor {
    order: u32,
    mt: usize,
    /// `None`: the list is not reached yet (its length is read when it is).
    left: Option<usize>,
}

impl WalkCursor {
    /// A walk over the lists of orders `min_order..=MAX_PAGE_ORDER`, lowest first.
    pub(crate) const fn new(min_order: u32) -> Self {
        Self { order: min_order, mt: 0, left: None }
    }
}

/// What [`FreeArea::walk_chunk`] does with a block it visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Leave it on its list (the visitor may have changed its marks) and go on.
    Next,
    /// Take it off its list into the batch.
    Isolate,
    /// End the chunk here, leaving the block at the head of its list.
    Stop,
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
            nr_free_highatomic: 0,
            nr_reserved_highatomic: 0,
            boost: Boost::new(),
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
        if mt == MigrateType::HighAtomic {
            self.nr_free_highatomic += 1 << order;
        }
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
        if mt == MigrateType::HighAtomic {
            self.nr_free_highatomic -= 1 << order;
        }
        extra
    }

    /// One chunk of a walk over the lists of the cursor's orders and every migratetype, from
    /// where `cur` stands: visits at most `steps` blocks, calling `visit(page, order, free)` for
    /// each, `free` being the free pages outside the high-atomic lists (what a watermark test
    /// without reserves counts, as `__isolate_free_page`'s does). A block answered [`Visit::Isolate`] is taken off its list
    /// into `batch` (`__isolate_free_page`: no longer free, not allocated either; it must come
    /// back through [`Self::putback`]). The chunk ends when `steps` are used, `batch` is full
    /// or `visit` answers [`Visit::Stop`]; the list is then rotated so that the next block to
    /// visit is its head (`list_rotate_to_front`, as `page_reporting_cycle` does before it drops
    /// the zone lock), and the next chunk resumes there. Each list is walked for as many blocks
    /// as it held when the walk reached it, so a block is visited once per walk unless other
    /// contexts change the list in between. Returns true when every list has been walked.
    pub(crate) fn walk_chunk(
        &mut self,
        mm: &MemMap,
        cur: &mut WalkCursor,
        mut steps: usize,
        batch: &mut Batch,
        mut visit: impl FnMut(&crate::memmap::Page, u32, usize) -> Visit,
    ) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        while cur.order <= MAX_PAGE_ORDER {
            let (o, m) = (cur.order as usize, cur.mt);
            let mut left = cur.left.unwrap_or(self.count[o][m]);
            let mut pfn = self.head[o][m];
            while pfn != NIL && left > 0 {
                if steps == 0 || batch.len == PAGE_REPORTING_CAPACITY {
                    cur.left = Some(left);
                    self.rotate_to_front(mm, o, m, pfn);
                    return false;
                }
                let page = mm.page(pfn as usize);
                let next = page.next.load(Relaxed);
                match visit(page, cur.order, self.nr_free_pages - self.nr_free_highatomic) {
                    Visit::Next => {}
                    Visit::Isolate => {
                        self.del(mm, pfn as usize);
                        batch.blocks[batch.len] = Isolated { pfn, order: o as u8 };
                        batch.len += 1;
                    }
                    Visit::Stop => {
                        cur.left = Some(left);
                        self.rotate_to_front(mm, o, m, pfn);
                        return false;
                    }
                }
                steps -= 1;
                left -= 1;
                pfn = next;
            }
            cur.left = None;
            cur.mt += 1;
            if cur.mt == MIGRATE_TYPES {
                cur.mt = 0;
                cur.order += 1;
            }
        }
        true
    }

    /// `list_rotate_to_front`: makes the listed block `pfn` the head of the (`o`, `m`) list,
    /// the blocks before it moving, in order, behind the tail.
    fn rotate_to_front(&mut self, mm: &MemMap, o: usize, m: usize, pfn: u32) {
        use core::sync::atomic::Ordering::Relaxed;
        let (head, tail) = (self.head[o][m], self.tail[o][m]);
        if head == pfn {
            return;
        }
        let page = mm.page(pfn as usize);
        let prev = page.prev.load(Relaxed);
        // A listed block other than the head has a listed predecessor; the list is non-empty,
        // so its head and tail are listed blocks too.
        mm.page(tail as usize).next.store(head, Relaxed);
        mm.page(head as usize).prev.store(tail, Relaxed);
        mm.page(prev as usize).next.store(NIL, Relaxed);
        page.prev.store(NIL, Relaxed);
        self.head[o][m] = pfn;
        self.tail[o][m] = prev;
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

    /// `__free_one_page`: frees the block `pfn` of `order` into a zone spanning
    /// `[zone_start, zone_end)`, merging with free buddies as far as possible (PA-5, PA-6).
    /// `mt` is the block's pageblock type, read under the zone lock (`free_one_page` and
    /// `free_pcppages_bulk` read it there). Returns the pfn and order of the resulting free
    /// block.
    pub(crate) fn free_one_page(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        pfn: usize,
        order: u32,
        mt: MigrateType,
        to_tail: bool,
    ) -> (usize, u32) {
        self.merge_free(mm, zone, pfn, order, mt, to_tail, 0)
    }

    /// `__putback_isolated_page`: returns a block taken off the lists by [`Self::walk_chunk`]
    /// to the lists of its pageblock's type, read now (a claim may have retyped the pageblock
    /// while the block was away), merging with free buddies as a free does, at the tail (kmem's
    /// choice: memory given back to the host is handed out after resident memory, and a
    /// chunked walk resuming at the head meets the blocks it has not visited first).
    /// `trimmed`: its memory was given back; the resulting block is marked `PG_TRIMMED` only if
    /// every free buddy it merged with was too (the kernel instead marks only a block that did
    /// not merge). Returns the pfn and order of the resulting free block.
    pub(crate) fn putback(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        block: Isolated,
        trimmed: bool,
    ) -> (usize, u32) {
        let keep = if trimmed { pg::TRIMMED } else { 0 };
        let pfn = block.pfn as usize;
        self.merge_free(mm, zone, pfn, block.order as u32, mm.pageblock_mt(pfn), true, keep)
    }

    /// [`Self::free_one_page`] with marks: the merged block carries the flags of `keep` that
    /// every buddy it absorbed carried too (0 for a plain free: merging drops every mark).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn merge_free(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        mut pfn: usize,
        mut order: u32,
        mt: MigrateType,
        to_tail: bool,
        mut keep: u32,
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
                    // The merged block takes our type ("match buddy type", so that a later
                    // `expand` puts its parts on the lists of their pageblocks).
                    crate::fallback::change_pageblock_range(mm, buddy, order, mt);
                }
            } else {
                debug_assert_eq!(bpage.list_mt(), mt, "buddy {buddy:#x} of one pageblock on another type's list");
            }
            keep &= self.del(mm, buddy);
            pfn &= buddy;
            order += 1;
        }
        let tail = to_tail || self.buddy_merge_likely(mm, zone, pfn, order);
        self.add(mm, pfn, order, mt, tail, keep);
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
            let pb = 1usize << mm.pageblock_order();
            // From the zone's first page when memory starts inside a pageblock.
            let first = (pfn & !(pb - 1)).max(zone.0);
            for block in (first..pfn + (1 << order)).step_by(pb) {
                let block_mt = mm.pageblock_mt(block);
                assert_eq!(
                    block_mt, mt,
                    "free block {pfn:#x}/{order} on the {mt:?} lists, its pageblock {block:#x} is {block_mt:?}"
                );
            }
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
        let highatomic: usize = (0..NR_PAGE_ORDERS).map(|o| counts[o][MigrateType::HighAtomic as usize] << o).sum();
        assert_eq!(highatomic, self.nr_free_highatomic, "nr_free_highatomic");
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

    /// A chunked walk isolates at most a batch, resumes where it stopped (the list rotated so
    /// the next block is its head), and the put-back merges, keeping `PG_TRIMMED` only when
    /// both halves had it.
    #[test]
    fn walk_chunk_isolates_in_batches_and_putback_merges() {
        const MT: MigrateType = MigrateType::Movable;
        let (_s, mm) = map(1 << 16);
        let zone = (0, 1 << 16);
        crate::fallback::change_pageblock_range(&mm, 0, 16, MT);
        let mut area = FreeArea::new();
        // 64 order-9 blocks at every other order-9 slot: no two are buddies.
        for i in 0..64 {
            area.add(&mm, i * 1024, 9, MT, true, 0);
        }
        let mut cur = WalkCursor::new(9);
        let mut batch = Batch::new();
        let done = area.walk_chunk(&mm, &mut cur, usize::MAX, &mut batch, |_, _, _| Visit::Isolate);
        assert!(!done);
        assert_eq!(batch.blocks().len(), PAGE_REPORTING_CAPACITY);
        assert_eq!(area.nr_free_pages, 32 << 9, "isolated blocks leave the free count");
        assert_eq!(area.first(9, MT), Some(32 * 1024), "the next block to visit is the head");
        area.check(&mm, zone);
        for &b in batch.blocks() {
            area.putback(&mm, zone, b, true);
        }
        area.check(&mm, zone);
        assert_eq!(area.nr_free_pages, 64 << 9);
        assert_eq!(area.first(9, MT), Some(32 * 1024), "put back at the tail");
        let mut batch = Batch::new();
        let done = area.walk_chunk(&mm, &mut cur, usize::MAX, &mut batch, |p, _, _| {
            if p.flags() & pg::TRIMMED == 0 { Visit::Isolate } else { Visit::Next }
        });
        assert!(done, "every list walked once");
        assert_eq!(batch.blocks()[0].pfn, 32 * 1024);
        assert_eq!(batch.blocks().len(), 32);
        for &b in batch.blocks() {
            area.putback(&mm, zone, b, false);
        }
        // Merging: the buddy of a trimmed block comes back trimmed, then an untrimmed one.
        let (_s, mm) = map(4096);
        crate::fallback::change_pageblock_range(&mm, 0, 12, MT);
        let mut area = FreeArea::new();
        area.add(&mm, 0, 9, MT, false, pg::TRIMMED);
        let (pfn, order) = area.putback(&mm, (0, 4096), Isolated { pfn: 512, order: 9 }, true);
        assert_eq!((pfn, order), (0, 10));
        assert_eq!(mm.page(0).flags() & pg::TRIMMED, pg::TRIMMED, "both halves released");
        area.add(&mm, 1024, 9, MT, false, 0);
        let (pfn, order) = area.putback(&mm, (0, 4096), Isolated { pfn: 1536, order: 9 }, true);
        assert_eq!((pfn, order), (1024, 10));
        assert_eq!(mm.page(1024).flags() & pg::TRIMMED, 0, "half of it is still resident");
        area.check(&mm, (0, 4096));
    }

    /// §2.6: at pageblock order a high-atomic pageblock merges only with another one (the
    /// merged block stays high-atomic), never with a mergeable type.
    #[test]
    fn a_highatomic_pageblock_merges_only_with_another() {
        let (_s, mm) = map(2048);
        let pb = mm.pageblock_order();
        let block = 1usize << pb;
        let zone = (0, 2048);
        let mut area = FreeArea::new();
        mm.set_pageblock_mt(0, MigrateType::HighAtomic);
        mm.set_pageblock_mt(block, MigrateType::Movable);
        area.free_one_page(&mm, zone, block, pb, MigrateType::Movable, false);
        assert_eq!(area.free_one_page(&mm, zone, 0, pb, MigrateType::HighAtomic, false), (0, pb), "kept apart");
        assert_eq!(mm.pageblock_mt(block), MigrateType::Movable, "no retyping either");
        assert_eq!(area.nr_free_highatomic, block);
        area.check(&mm, zone);
        mm.set_pageblock_mt(2 * block, MigrateType::HighAtomic);
        mm.set_pageblock_mt(3 * block, MigrateType::HighAtomic);
        area.free_one_page(&mm, zone, 3 * block, pb, MigrateType::HighAtomic, false);
        let merged = area.free_one_page(&mm, zone, 2 * block, pb, MigrateType::HighAtomic, false);
        assert_eq!(merged, (2 * block, pb + 1), "two high-atomic pageblocks merge");
        assert!(area.has_free_at(pb + 1, MigrateType::HighAtomic));
        assert_eq!(area.nr_free_highatomic, 3 * block);
        area.check(&mm, zone);
    }
}
