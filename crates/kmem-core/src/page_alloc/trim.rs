//! Free memory back to the host (`trim`, `trim_aged`), in batches as the kernel's free page
//! reporting does (`mm/page_reporting.c`: `page_reporting_cycle`, `page_reporting_drain`).
//!
//! Per zone, under the zone lock, a walk takes at most [`PAGE_REPORTING_CAPACITY`] free
//! blocks of at least a pageblock (`page_reporting_order`) that are not `PG_TRIMMED` off the
//! free lists (`__isolate_free_page`); the lock is dropped while the platform discards them
//! (a hole punch, `madvise`); the lock is taken again and they go back (`__putback_isolated_page`)
//! marked `PG_TRIMMED`, merging with free buddies as a free does, and sleepers waiting for a
//! free are woken. Then the next batch, until the walk has been over every list once. A walk
//! visits at most [`WALK_STEPS`] blocks per hold of the lock, so a zone full of blocks already
//! released (which are passed over) does not hold it long either.
//!
//! Counting, decided from the kernel's: an isolated block is neither free nor allocated. It
//! leaves the free lists and `NR_FREE_PAGES` (the kernel's `__isolate_free_page` removes it
//! with `del_page_from_free_list`, which takes it out of the free count; it does not stay
//! counted), so buddyinfo, the zone's published free count and `check()` agree with each other
//! at every moment, batch out or not; it is not counted in `pgalloc`/`pgfree` either. The
//! pages of a zone are `free + isolated + allocated + per-CPU` throughout.
//!
//! What an allocation sees meanwhile: a block is isolated only while the zone keeps more than
//! its high watermark plus its largest lowmem reserve free after taking it, not counting the
//! free pages of high-atomic pageblocks (the watermark tests add the reserve of the request's
//! class, and leave those pages out unless the request has a right to reserves; the kernel's
//! `__isolate_free_page` requires the min watermark, without reserves, plus the block; kmem
//! asks for more, so a batch never takes a zone below the
//! low watermark that the fast path and kswapd test: no request takes the slow path, wakes
//! kswapd or reclaims because a batch is out, and the reserves of `GFP_ATOMIC`, `__GFP_HIGH`
//! and `__GFP_NOFAIL` are never touched). What remains is the kernel's own window: a request
//! for a large order may find no block that big while a batch is out. It then goes the slow
//! path's usual way; a request that retries or waits (`__GFP_NOFAIL`, orders up to
//! `PAGE_ALLOC_COSTLY_ORDER`) gets the blocks once they are back, since the put-back publishes
//! the free count and wakes the free wait queue as every free does. The kernel's zone-level
//! gate (report a zone only while it has the low watermark plus a full batch of
//! minimum-order blocks free, 64 MiB at pageblock order 9) is not used: kmem's `trim` is also
//! an explicit call on small machines, where that gate would keep whole zones resident; the
//! per-block test above already keeps every watermark.
//!
//! Where blocks go back: at the tail of their list (the kernel puts them back as a free does),
//! so memory the host no longer backs is handed out after resident memory, and the walk,
//! resuming at the head, meets the blocks it has not visited first. A put-back block that
//! merges keeps `PG_TRIMMED` only if every buddy it merged with had it (the kernel marks only a
//! block that did not merge). A platform that cannot discard ends the zone's walk; its blocks
//! go back unmarked.
//!
//! Locks: the zone lock only, never two at once, never across a discard.

use core::sync::atomic::Ordering::Relaxed;

use super::PageAllocator;
use crate::buddy::{Batch, PAGE_REPORTING_CAPACITY, Visit, WalkCursor};
use crate::memmap::pg;
use crate::platform::Platform;
use crate::zone::{Wmark, Zone, ZoneType};

/// The most blocks one hold of the zone lock visits (isolated or passed over).
const WALK_STEPS: usize = 16 * PAGE_REPORTING_CAPACITY;

impl<P: Platform> PageAllocator<P> {
    /// One aging scan of memory given back to the host: free blocks of at least a pageblock
    /// (the kernel's `page_reporting_order`) that were already free at the previous scan are
    /// released (hole punched), the others are marked. Run periodically (kswapd does), it
    /// releases memory that stays free for one period and never touches a free fast path.
    /// Works in batches with the zone lock dropped while memory is discarded (module doc).
    /// Returns the pages released.
    pub fn trim_aged(&self) -> usize {
        let mut released = 0;
        for zone in &self.zones {
            // Blocks marked by the previous scan first, then this scan's marks: a block is
            // never marked and released by the same scan.
            released += self.release_zone(zone, true);
            self.age_zone(zone);
        }
        self.stats.trim_scans.fetch_add(1, Relaxed);
        released
    }

    /// Gives the memory of every free block of at least a pageblock back to the host now, in
    /// batches with the zone lock dropped while memory is discarded (module doc). Returns the
    /// pages released.
    pub fn trim(&self) -> usize {
        self.zones.iter().map(|zone| self.release_zone(zone, false)).sum()
    }

    /// Releases `zone`'s untrimmed free blocks of at least a pageblock (with `aged_only`, those
    /// marked `PG_TRIM_AGED` by an earlier scan) batch by batch. Returns the pages released.
    fn release_zone(&self, zone: &Zone, aged_only: bool) -> usize {
        let mm = &self.mm;
        let zone_range = (zone.start_pfn, zone.end_pfn);
        let mut cursor = WalkCursor::new(mm.pageblock_order());
        let mut released = 0;
        loop {
            let mut batch = Batch::new();
            // The zone is down to its high watermark: nothing more may be taken.
            let mut low = false;
            let done = {
                let mut area = zone.lock();
                // The high watermark plus the largest lowmem reserve the zone keeps against any
                // request class: the watermark tests of every allocation (`zone_watermark_fast`,
                // the slow path's, kswapd's) add the reserve of the request's highest zone.
                let reserve = ZoneType::ALL.iter().map(|&class| zone.lowmem_reserve(class)).max().unwrap_or(0);
                let high = zone.wmark(Wmark::High) + reserve;
                let done = area.walk_chunk(mm, &mut cursor, WALK_STEPS, &mut batch, |page, order, free| {
                    let flags = page.flags();
                    if flags & pg::TRIMMED != 0 || (aged_only && flags & pg::TRIM_AGED == 0) {
                        return Visit::Next;
                    }
                    // `free`: outside the high-atomic reserve, which no watermark test of an
                    // ordinary request counts.
                    if free <= high + (1 << order) {
                        low = true;
                        return Visit::Stop;
                    }
                    Visit::Isolate
                });
                zone.publish(&area);
                done
            };
            let blocks = batch.blocks();
            if !blocks.is_empty() {
                let mut discarded = [false; PAGE_REPORTING_CAPACITY];
                let mut ok = true;
                for (slot, b) in discarded.iter_mut().zip(blocks) {
                    // SAFETY: The block is isolated: off every free list and not allocated, so
                    // this context owns its memory until it puts it back below.
                    ok = ok && unsafe { self.platform.discard(b.pfn as usize, 1 << b.order) };
                    *slot = ok;
                }
                let mut pages = 0;
                let mut area = zone.lock();
                for (&b, &trimmed) in blocks.iter().zip(&discarded) {
                    area.putback(mm, zone_range, b, trimmed);
                    pages += usize::from(trimmed) << b.order;
                }
                self.after_buddy_free(zone, &mut area);
                drop(area);
                released += pages;
                self.stats.trimmed_pages.fetch_add(pages, Relaxed);
                self.stats.trim_batches.fetch_add(1, Relaxed);
                if !ok {
                    break;
                }
            }
            if done || low {
                break;
            }
        }
        released
    }

    /// Marks every free block of at least a pageblock of `zone` that is neither released nor
    /// marked yet `PG_TRIM_AGED`, chunk by chunk (marking twice is harmless).
    fn age_zone(&self, zone: &Zone) {
        let mut cursor = WalkCursor::new(self.mm.pageblock_order());
        let mut batch = Batch::new();
        loop {
            let mut area = zone.lock();
            let done = area.walk_chunk(&self.mm, &mut cursor, WALK_STEPS, &mut batch, |page, order, _| {
                let flags = page.flags();
                if flags & (pg::TRIMMED | pg::TRIM_AGED) == 0 {
                    page.set_info(flags | pg::TRIM_AGED, order, page.list_mt());
                }
                Visit::Next
            });
            if done {
                break;
            }
        }
    }
}
