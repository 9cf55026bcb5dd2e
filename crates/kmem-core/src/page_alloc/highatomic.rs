//! High-order atomic reserves (SEMANTICS §2.4, §2.5, §2.8; `mm/page_alloc.c` of 6.18):
//! pageblocks set aside for high-order requests that cannot sleep, so that a burst of them
//! (network receive buffers, say) still finds contiguous memory after the zone fragmented.
//!
//! - **Reserving** (`reserve_highatomic_pageblock`): a request that got `ALLOC_HIGHATOMIC`
//!   (order > 0, no `__GFP_DIRECT_RECLAIM`, `__GFP_HIGH`, not `__GFP_NOMEMALLOC`: only in
//!   the slow path) and succeeded turns the pageblock it was served from into a
//!   `MIGRATE_HIGHATOMIC` block, moving the block's free pages to the high-atomic lists; a
//!   block of at least a pageblock has its pageblocks retyped instead. Only mergeable types
//!   are taken, and at most `ALIGN(managed / 100, pageblock_nr_pages)` pages per zone, none
//!   at all when 1 % of the zone is less than a pageblock.
//! - **Using**: `rmqueue_buddy` serves an `ALLOC_HIGHATOMIC` request from the high-atomic
//!   lists first; a request with `ALLOC_OOM` or `ALLOC_NON_BLOCK` (any atomic request, order
//!   0 too) takes them as the last resort when every other list failed. Everyone else's
//!   watermark test leaves the free high-atomic pages out (`usable_free`), and only
//!   `ALLOC_HIGHATOMIC | ALLOC_OOM` requests count the high-atomic lists as blocks of the
//!   order they need.
//! - **Giving back** (`unreserve_highatomic_pageblock`): a request that reclaimed and still
//!   found nothing converts one reserved block (keeping the last one of each zone) to its own
//!   migratetype before it retries; before giving up (`should_reclaim_retry` says no) it
//!   converts one even if it is the last.
//!
//! Freed pages of a high-atomic block go to the per-CPU `MIGRATE_MOVABLE` list, as in the
//! kernel, and back to the high-atomic lists when the per-CPU lists are flushed (a flush
//! frees every page to its pageblock's lists); freed to the buddy lists directly, they go to
//! them at once.
//!
//! Moving a pageblock's free pages is `FreeArea::move_freepages_block` (`fallback.rs`).
//!
//! Invariant (checked by [`PageAllocator::check`]): under each zone lock,
//! `nr_reserved_highatomic` is `pageblock_nr_pages` times the zone's `MIGRATE_HIGHATOMIC`
//! pageblocks (a reservation starts only below the cap, and a block of several pageblocks may
//! pass it, as in the kernel). Lock order: the zone lock only, taken once;
//! no per-CPU slot is held.

use super::{PageAllocator, ZoneList};
use crate::fallback::change_pageblock_range;
use crate::order::MAX_PAGE_ORDER;
use crate::platform::Platform;
use crate::zone::{MigrateType, Zone};

impl<P: Platform> PageAllocator<P> {
    /// The most pages a zone may hold in high-atomic pageblocks: `ALIGN(managed / 100,
    /// pageblock_nr_pages)`, or 0 when 1 % of the zone is less than a pageblock.
    pub(super) fn highatomic_cap(&self, zone: &Zone) -> usize {
        let pageblock = 1usize << self.mm.pageblock_order();
        let one_percent = zone.managed / 100;
        if one_percent < pageblock { 0 } else { one_percent.next_multiple_of(pageblock) }
    }

    /// `reserve_highatomic_pageblock`: after an `ALLOC_HIGHATOMIC` request was served the block
    /// `pfn` of `order` from `zone`, reserves its pageblock (or its pageblocks) for high-order
    /// atomic requests, within the zone's cap (see the module doc).
    #[cold]
    #[inline(never)]
    pub(super) fn reserve_highatomic_pageblock(&self, zone: &Zone, pfn: usize, order: u32) {
        let cap = self.highatomic_cap(zone);
        // The lock-free look first, as the kernel's ("race-prone but harmless").
        if zone.reserved_highatomic() >= cap {
            return;
        }
        let mut area = zone.lock();
        if area.nr_reserved_highatomic >= cap {
            return;
        }
        if !self.mm.pageblock_mt(pfn).is_mergeable() {
            return;
        }
        let pb_order = self.mm.pageblock_order();
        if order < pb_order {
            if area
                .move_freepages_block(&self.mm, (zone.start_pfn, zone.end_pfn), pfn, MigrateType::HighAtomic)
                .is_none()
            {
                return;
            }
            area.nr_reserved_highatomic += 1 << pb_order;
        } else {
            change_pageblock_range(&self.mm, pfn, order, MigrateType::HighAtomic);
            area.nr_reserved_highatomic += 1 << order;
        }
        zone.publish(&area);
    }

    /// `unreserve_highatomic_pageblock`: converts one reserved block of the zones of `zl` to
    /// `mt` (the caller's migratetype) and returns true, or returns false with nothing to
    /// convert. Without `force`, a zone's last reserved pageblock is kept.
    pub(super) fn unreserve_highatomic_pageblock(&self, zl: &ZoneList, mt: MigrateType, force: bool) -> bool {
        let pb_order = self.mm.pageblock_order();
        let pageblock = 1usize << pb_order;
        for zi in zl.iter() {
            let zone = &self.zones[zi];
            if !force && zone.reserved_highatomic() <= pageblock {
                continue;
            }
            let mut area = zone.lock();
            for order in 0..=MAX_PAGE_ORDER {
                let Some(pfn) = area.first(order, MigrateType::HighAtomic) else { continue };
                let mut size = pageblock.max(1 << order);
                if size > area.nr_reserved_highatomic {
                    // The count and the lists disagree (never, while the module's invariant holds).
                    self.warn_once(
                        super::reports::once::UNRESERVE_SIZE,
                        "unreserve_highatomic_pageblock",
                        format_args!(
                            "size > zone->nr_reserved_highatomic (zone {}: {} pages reserved, a block of {size})",
                            zone.name(),
                            area.nr_reserved_highatomic
                        ),
                        core::panic::Location::caller(),
                    );
                    size = area.nr_reserved_highatomic;
                }
                let bounds = (zone.start_pfn, zone.end_pfn);
                let converted = if order < pb_order {
                    area.move_freepages_block(&self.mm, bounds, pfn, mt).is_some()
                } else {
                    let extra = area.del(&self.mm, pfn);
                    area.add(&self.mm, pfn, order, mt, true, extra);
                    change_pageblock_range(&self.mm, pfn, order, mt);
                    true
                };
                if converted {
                    area.nr_reserved_highatomic -= size;
                    zone.publish(&area);
                    return true;
                }
            }
        }
        false
    }

    /// The invariant of the module doc for `zone`, whose lock the caller holds (`area`).
    #[cfg(any(test, feature = "check"))]
    pub(super) fn check_highatomic(&self, zone: &Zone, area: &crate::buddy::FreeArea) {
        let pb_order = self.mm.pageblock_order();
        let first = zone.start_pfn.next_multiple_of(1 << pb_order);
        let blocks = (first..zone.end_pfn)
            .step_by(1 << pb_order)
            .filter(|&b| b + (1 << pb_order) <= zone.end_pfn && self.mm.pageblock_mt(b) == MigrateType::HighAtomic)
            .count();
        assert_eq!(area.nr_reserved_highatomic, blocks << pb_order, "zone {} nr_reserved_highatomic", zone.name());
        assert_eq!(area.nr_free_highatomic, zone.free_highatomic(), "zone {} nr_free_highatomic mirror", zone.name());
        assert_eq!(
            area.nr_free_pages - area.nr_free_highatomic,
            zone.usable_free_pages(0),
            "zone {} ordinary",
            zone.name()
        );
        assert_eq!(
            area.nr_reserved_highatomic,
            zone.reserved_highatomic(),
            "zone {} nr_reserved_highatomic mirror",
            zone.name()
        );
    }
}
