//! Taking a block off a zone's free lists when the request's own migratetype has none
//! (SEMANTICS §2.5, PA-12), as `mm/page_alloc.c` of 6.18 does: `__rmqueue` with its modes,
//! `__rmqueue_claim`, `__rmqueue_steal`, `try_to_claim_block`, `should_try_claim_block`,
//! `find_suitable_fallback`, and the pageblock moves (`move_freepages_block`,
//! `change_pageblock_range`) that high-atomic reserves use too.
//!
//! 1. **Normal**: the first block of the smallest sufficient order on the request's lists
//!    (`__rmqueue_smallest`).
//! 2. **Claim** (`__rmqueue_claim`): from the largest order down to the request's (to a
//!    pageblock with `ALLOC_NOFRAGMENT`), while `should_try_claim_block` allows that order (a
//!    pageblock or more, half a pageblock or more, or any order for an unmovable or
//!    reclaimable request), the first fallback type (`fallbacks[]`, in order) with a block of
//!    that order offers its first block to `try_to_claim_block`: a block of a pageblock or
//!    more is taken whole, its pageblocks retyped, and split for the request; a smaller one's
//!    pageblock is claimed — its free blocks moved to the request's lists and its type changed
//!    — when its free pages and the pages "alike" the request are at least half a pageblock,
//!    and the request is then served from its own lists again. Alike pages: for a movable
//!    request, the block's movable pages, which kmem has none of (no LRU); for another request
//!    from a movable pageblock, every page neither free nor movable; otherwise none.
//! 3. **Steal** (`__rmqueue_steal`, never with `ALLOC_NOFRAGMENT`): the smallest block of a
//!    fallback type, split for the request with the rest left on the fallback type's lists;
//!    nothing is claimed.
//!
//! A refill of the per-CPU lists (`rmqueue_bulk`) keeps the mode across its blocks
//! ([`RmqueueMode`]): after a steal it steals again rather than search its own lists and
//! claim first; a claim resets it to normal.
//!
//! A claim attempt on a block smaller than a pageblock boosts the zone's watermarks first
//! (`boost.rs`); the caller wakes kswapd for it.
//!
//! Not modelled (`docs/deviations.md`): `page_group_by_mobility_disabled` on machines too
//! small for grouping.
//!
//! The free lists keep the kernel's "freelist hygiene" (6.10 on, `buddy.rs`): a free block is
//! on its pageblock's lists, so a steal leaves the rest of its block on the fallback type's
//! lists, and a pageblock is retyped only with every free block inside it moved along
//! ([`FreeArea::move_freepages_block`]) or when a block being taken or merged covers it whole
//! ([`change_pageblock_range`]).
//!
//! All of it runs under the zone lock (`Zone::area`); the invariants are `buddy.rs`'s.

use crate::buddy::FreeArea;
use crate::memmap::MemMap;
use crate::order::MAX_PAGE_ORDER;
use crate::zone::MigrateType;

/// `enum rmqueue_mode` (without CMA): where the next `__rmqueue` of a bulk refill starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum RmqueueMode {
    /// The request's own lists first.
    #[default]
    Normal,
    /// A steal served the last block: steal again.
    Steal,
}

/// `should_try_claim_block`: whether a fallback block of `order` may claim its pageblock for a
/// request of type `mt` (`pb_order`: the pageblock order).
const fn should_try_claim_block(order: u32, mt: MigrateType, pb_order: u32) -> bool {
    order >= pb_order || order >= pb_order / 2 || matches!(mt, MigrateType::Reclaimable | MigrateType::Unmovable)
}

/// `change_pageblock_range`: every pageblock of the block `pfn` of `order` (at least a
/// pageblock) becomes `mt`.
pub(crate) fn change_pageblock_range(mm: &MemMap, pfn: usize, order: u32, mt: MigrateType) {
    let pb_order = mm.pageblock_order();
    for block in (pfn..pfn + (1 << order)).step_by(1 << pb_order) {
        mm.set_pageblock_mt(block, mt);
    }
}

/// The pageblock of `pfn` as `[start, end)`, if it lies wholly inside the zone `[zone.0,
/// zone.1)` (`prep_move_freepages_block`'s test).
fn pageblock_in_zone(mm: &MemMap, zone: (usize, usize), pfn: usize) -> Option<(usize, usize)> {
    let start = pfn & !((1 << mm.pageblock_order()) - 1);
    let end = start + (1 << mm.pageblock_order());
    (start >= zone.0 && end <= zone.1).then_some((start, end))
}

impl FreeArea {
    /// `__rmqueue`: a block of `order` for a request of type `mt` (see the module docs), or
    /// `None`. `zone` bounds the zone's pfns; `nofragment` is `ALLOC_NOFRAGMENT`; `mode` is
    /// the refill's mode, [`RmqueueMode::Normal`] for a single request. The request's own
    /// lists are looked at inline; the fallback is out of line.
    #[inline(always)]
    pub(crate) fn rmqueue(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        order: u32,
        mt: MigrateType,
        nofragment: bool,
        mode: &mut RmqueueMode,
    ) -> Option<usize> {
        if *mode == RmqueueMode::Normal
            && let Some(pfn) = self.rmqueue_smallest(mm, order, mt)
        {
            return Some(pfn);
        }
        self.rmqueue_fallback(mm, zone, order, mt, nofragment, mode)
    }

    /// [`Self::rmqueue`] past the request's own lists: claim (in normal mode), then steal.
    #[cold]
    #[inline(never)]
    fn rmqueue_fallback(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        order: u32,
        mt: MigrateType,
        nofragment: bool,
        mode: &mut RmqueueMode,
    ) -> Option<usize> {
        if *mode == RmqueueMode::Normal
            && let Some(pfn) = self.rmqueue_claim(mm, zone, order, mt, nofragment)
        {
            return Some(pfn);
        }
        if !nofragment && let Some(pfn) = self.rmqueue_steal(mm, order, mt) {
            *mode = RmqueueMode::Steal;
            return Some(pfn);
        }
        // A steal mode that found nothing to steal: the refill stops at this first failure, as
        // the kernel's does.
        None
    }

    /// `find_suitable_fallback` (for a non-empty order): the first fallback type of `mt` with
    /// a free block of `order`.
    fn suitable_fallback(&self, order: u32, mt: MigrateType) -> Option<MigrateType> {
        mt.fallbacks().iter().copied().find(|&fallback| self.has_free_at(order, fallback))
    }

    /// `__rmqueue_claim` (see the module docs).
    fn rmqueue_claim(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        order: u32,
        mt: MigrateType,
        nofragment: bool,
    ) -> Option<usize> {
        let pb_order = mm.pageblock_order();
        let min_order = if nofragment && order < pb_order { pb_order } else { order };
        for current in (min_order..=MAX_PAGE_ORDER).rev() {
            if !should_try_claim_block(current, mt, pb_order) {
                // "Advanced into orders too low to claim, abort".
                break;
            }
            let Some(fallback) = self.suitable_fallback(current, mt) else { continue };
            let pfn = self.first(current, fallback).expect("suitable_fallback found a block");
            if let Some(pfn) = self.try_to_claim_block(mm, zone, pfn, current, order, mt, fallback) {
                return Some(pfn);
            }
        }
        None
    }

    /// `try_to_claim_block`: the free block `pfn` of `current` order, on the `block_type`
    /// lists, serves a request of `order` and type `mt` by claiming (see the module docs), or
    /// `None` when its pageblock is not worth claiming or crosses the zone's edge.
    #[allow(clippy::too_many_arguments)]
    fn try_to_claim_block(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        pfn: usize,
        current: u32,
        order: u32,
        mt: MigrateType,
        block_type: MigrateType,
    ) -> Option<usize> {
        let pb_order = mm.pageblock_order();
        if current >= pb_order {
            self.del(mm, pfn);
            change_pageblock_range(mm, pfn, current, mt);
            self.expand(mm, pfn, order, current, mt);
            return Some(pfn);
        }
        // "Boost watermarks to increase reclaim pressure to reduce the likelihood of future
        // fallbacks" (`boost.rs`): before the claim's outcome is known.
        self.boost.boost(1 << pb_order);
        let (start, end) = pageblock_in_zone(mm, zone, pfn)?;
        let free = self.free_pages_in(mm, start, end);
        // No page of kmem's is on an LRU or `__PageMovable`: the movable count is 0.
        let alike = if mt != MigrateType::Movable && block_type == MigrateType::Movable {
            (1usize << pb_order) - free
        } else {
            0
        };
        if free + alike >= 1 << (pb_order - 1) {
            self.move_freepages_block(mm, zone, start, mt);
            return self.rmqueue_smallest(mm, order, mt);
        }
        None
    }

    /// `__rmqueue_steal`: the smallest block of a fallback type, split with the rest left on
    /// that type's lists.
    fn rmqueue_steal(&mut self, mm: &MemMap, order: u32, mt: MigrateType) -> Option<usize> {
        for current in order..=MAX_PAGE_ORDER {
            let Some(fallback) = self.suitable_fallback(current, mt) else { continue };
            let pfn = self.first(current, fallback).expect("suitable_fallback found a block");
            self.del(mm, pfn);
            self.expand(mm, pfn, order, current, fallback);
            return Some(pfn);
        }
        None
    }

    /// The free pages of the free blocks inside `[start, end)` (a pageblock).
    fn free_pages_in(&self, mm: &MemMap, start: usize, end: usize) -> usize {
        let (mut at, mut free) = (start, 0);
        while at < end {
            let page = mm.page(at);
            if page.is_buddy() {
                free += 1 << page.order();
                at += 1 << page.order();
            } else {
                at += 1;
            }
        }
        free
    }

    /// `move_freepages_block`: moves every free block inside the pageblock of `pfn` to the `to`
    /// lists (at their tails, as `move_to_free_list` does) and retypes the pageblock. `None`
    /// (nothing changed) when the pageblock is not wholly inside the zone
    /// (`prep_move_freepages_block`); otherwise the pages moved.
    pub(crate) fn move_freepages_block(
        &mut self,
        mm: &MemMap,
        zone: (usize, usize),
        pfn: usize,
        to: MigrateType,
    ) -> Option<usize> {
        let (start, end) = pageblock_in_zone(mm, zone, pfn)?;
        let (mut at, mut moved) = (start, 0);
        while at < end {
            let page = mm.page(at);
            if !page.is_buddy() {
                at += 1;
                continue;
            }
            let order = page.order();
            if page.list_mt() != to {
                let extra = self.del(mm, at);
                self.add(mm, at, order, to, true, extra);
            }
            moved += 1 << order;
            at += 1 << order;
        }
        mm.set_pageblock_mt(start, to);
        Some(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::memmap::test_map as map;

    #[test]
    fn claim_thresholds_follow_should_try_claim_block() {
        for mt in [MigrateType::Unmovable, MigrateType::Reclaimable] {
            assert!((0..=10).all(|o| should_try_claim_block(o, mt, 9)), "{mt:?} claims at every order");
        }
        let movable: std::vec::Vec<u32> =
            (0..=10).filter(|&o| should_try_claim_block(o, MigrateType::Movable, 9)).collect();
        assert_eq!(movable, (4..=10).collect::<std::vec::Vec<_>>(), "movable: from half a pageblock (9 / 2 = 4) up");
    }

    #[test]
    fn a_block_of_a_pageblock_or_more_is_taken_whole_and_retyped() {
        let (_s, mm) = map(1024);
        let mut area = FreeArea::new();
        area.add(&mm, 0, 10, MigrateType::Movable, false, 0);
        let mut mode = RmqueueMode::Normal;
        let pfn = area.rmqueue(&mm, (0, 1024), 0, MigrateType::Unmovable, false, &mut mode).unwrap();
        assert_eq!((pfn, mode), (0, RmqueueMode::Normal));
        assert_eq!(mm.pageblock_mt(0), MigrateType::Unmovable);
        assert_eq!(mm.pageblock_mt(600), MigrateType::Unmovable);
        assert!(area.has_block(0, MigrateType::Unmovable));
        area.check(&mm, (0, 1024));
    }

    #[test]
    fn pa12_nofragment_claims_whole_pageblocks_only_and_never_steals() {
        let (_s, mm) = map(1024);
        let pb = mm.pageblock_order();
        mm.set_pageblock_mt(0, MigrateType::Movable);
        mm.set_pageblock_mt(1 << pb, MigrateType::Movable);
        let mut area = FreeArea::new();
        let zone = (0, 1024);
        let mut mode = RmqueueMode::Normal;
        // A Movable block smaller than a pageblock: no claim allowed, and no steal either.
        area.add(&mm, 0, pb - 1, MigrateType::Movable, false, 0);
        assert_eq!(area.rmqueue(&mm, zone, 0, MigrateType::Unmovable, true, &mut mode), None);
        assert_eq!(mm.pageblock_mt(0), MigrateType::Movable, "nothing taken");
        // A whole free pageblock is claimed for the request's type.
        area.add(&mm, 1 << pb, pb, MigrateType::Movable, false, 0);
        assert_eq!(area.rmqueue(&mm, zone, 0, MigrateType::Unmovable, true, &mut mode), Some(1 << pb));
        assert_eq!(mm.pageblock_mt(1 << pb), MigrateType::Unmovable);
        area.check(&mm, zone);
    }

    #[test]
    fn a_pageblock_half_free_or_alike_is_claimed_else_a_block_is_stolen() {
        let (_s, mm) = map(1024);
        let pb = mm.pageblock_order();
        let half = 1usize << (pb - 1);
        let zone = (0, 1024);
        // Pageblock 0 Unmovable with a free Unmovable quarter; pageblock 1 Reclaimable with a
        // free Reclaimable quarter. Everything else allocated.
        mm.set_pageblock_mt(0, MigrateType::Unmovable);
        mm.set_pageblock_mt(1 << pb, MigrateType::Reclaimable);
        let mut area = FreeArea::new();
        area.add(&mm, 0, pb - 2, MigrateType::Unmovable, false, 0);
        area.add(&mm, 1 << pb, pb - 2, MigrateType::Reclaimable, false, 0);
        // A movable request may try to claim at order pb - 2 (above half the pageblock
        // order), but its first fallback's pageblock is not half free and has nothing alike:
        // it steals the smallest block instead, from Reclaimable first.
        let mut mode = RmqueueMode::Normal;
        let pfn = area.rmqueue(&mm, zone, 0, MigrateType::Movable, false, &mut mode).unwrap();
        assert_eq!((pfn, mode), (1 << pb, RmqueueMode::Steal), "stolen from the reclaimable block");
        assert_eq!(mm.pageblock_mt(1 << pb), MigrateType::Reclaimable, "a steal claims nothing");
        assert!(area.has_free_at(0, MigrateType::Reclaimable), "the rest stays on the fallback lists");
        // In steal mode the next block is stolen again, without looking for a claim.
        let next = area.rmqueue(&mm, zone, 0, MigrateType::Movable, false, &mut mode).unwrap();
        assert_eq!(next, (1 << pb) + 1);
        area.check(&mm, zone);

        // An unmovable request from a movable pageblock counts every allocated page as alike:
        // a pageblock with any free block is claimed whole.
        let (_s2, mm) = map(1024);
        mm.set_pageblock_mt(0, MigrateType::Movable);
        let mut area = FreeArea::new();
        area.add(&mm, 8, 3, MigrateType::Movable, false, 0);
        area.add(&mm, 64, 6, MigrateType::Movable, false, 0);
        let mut mode = RmqueueMode::Normal;
        let pfn = area.rmqueue(&mm, zone, 0, MigrateType::Unmovable, false, &mut mode).unwrap();
        assert_eq!(mode, RmqueueMode::Normal, "claimed, not stolen");
        assert_eq!(mm.pageblock_mt(0), MigrateType::Unmovable);
        assert!(pfn == 8 || (64..128).contains(&pfn), "served from the claimed pageblock: {pfn}");
        assert!(!area.has_block(0, MigrateType::Movable), "every free block moved with the claim");
        area.check(&mm, zone);

        // A reclaimable request from an unmovable pageblock: nothing alike, so it needs half
        // the pageblock free.
        let (_s3, mm) = map(1024);
        mm.set_pageblock_mt(0, MigrateType::Unmovable);
        let mut area = FreeArea::new();
        area.add(&mm, 0, pb - 1, MigrateType::Unmovable, false, 0);
        assert_eq!(1usize << (pb - 1), half);
        let mut mode = RmqueueMode::Normal;
        let pfn = area.rmqueue(&mm, zone, 0, MigrateType::Reclaimable, false, &mut mode).unwrap();
        assert_eq!((pfn, mode), (0, RmqueueMode::Normal), "half free: claimed");
        assert_eq!(mm.pageblock_mt(0), MigrateType::Reclaimable);
        area.check(&mm, zone);
    }
}
