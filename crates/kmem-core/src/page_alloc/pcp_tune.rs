//! Per-CPU high-mark auto-tuning, as Linux 6.7+ does it (`nr_pcp_high`, `nr_pcp_free`,
//! `nr_pcp_alloc`, `decay_pcp_high` in `mm/page_alloc.c`; SEMANTICS §2.7).
//!
//! Each CPU's `high` for a zone moves between the zone's `high_min` (from the low watermark)
//! and `high_max` (from `managed / 8`), both split over the CPUs:
//! - a CPU that frees many pages in a row (`free_count`) raises its `high` so that a batch of
//!   them fits, and each flush then returns up to `free_count` pages at once;
//! - consecutive order-0 allocations double the refill size (`alloc_factor`, up to
//!   `2^PCP_BATCH_SCALE_MAX` batches) and raise `high` by a batch per refill;
//! - while the zone is below its high watermark (`ZONE_BELOW_HIGH`), frees shrink `high`
//!   back toward `high_min` so pages return to the buddy lists early;
//! - [`PageAllocator::decay_pcp_high`] (run periodically by kswapd on the userspace machine,
//!   as the kernel's vmstat worker does every second) lowers an idle CPU's `high` by an
//!   eighth toward `high_min` and flushes what lies above it.
//!
//! A run of high-order frees flushes at every free, or, when the per-CPU cache slice holds
//! more than three batches (`PCPF_FREE_HIGH_BATCH`, from
//! [`PageAllocator::set_pcp_cache_slice_bytes`]), once a batch has gathered.
//!
//! Deviations: `ZONE_RECLAIM_ACTIVE` (a cap while kswapd reclaims) is not modelled (reclaim
//! drains every CPU's lists instead, `drain_all_pages`); the cache slice is a setting, not
//! read from the CPU.
//!
//! Everything here runs inside the slot's guard section (owner) or with its claim (drainer).

use core::sync::atomic::Ordering::Relaxed;

use super::PageAllocator;
use crate::pcp::PerCpuPages;
use crate::platform::Platform;
use crate::zone::{Wmark, Zone, ZoneType};

/// `CONFIG_PCP_BATCH_SCALE_MAX`.
pub const PCP_BATCH_SCALE_MAX: u32 = 5;

/// The kernel's `clamp(v, lo, hi)`: `min(max(v, lo), hi)` (`hi` wins if `lo > hi`).
#[inline(always)]
fn clamp(v: usize, lo: usize, hi: usize) -> usize {
    v.max(lo).min(hi)
}

/// `high = pcp->high = clamp(pcp->high, high_min, high_max)`.
#[inline(always)]
fn clamped_high(lists: &PerCpuPages<'_>, zone: &Zone) -> (usize, usize, usize) {
    let (high_min, high_max) = (zone.pcp_high() as usize, zone.pcp_high_max() as usize);
    let high = clamp(lists.high(), high_min, high_max);
    lists.set_high(high);
    (high, high_min, high_max)
}

/// `nr_pcp_high`: the mark the list is flushed at on this free, tuning `pcp->high` on the way.
/// `free_high`: a run of high-order frees, whose pages should not linger.
#[inline(always)]
pub(super) fn nr_pcp_high(lists: &mut PerCpuPages<'_>, zone: &Zone, batch: usize, free_high: bool) -> usize {
    let (high, high_min, high_max) = clamped_high(lists, zone);
    if high == 0 {
        return 0;
    }
    if free_high {
        lists.set_high(high.saturating_sub(batch << PCP_BATCH_SCALE_MAX).max(high_min));
        return 0;
    }
    if high_min == high_max {
        return high;
    }
    let free_count = lists.tuning().free_count;
    if zone.below_high() {
        lists.set_high(high.saturating_sub(free_count.max(batch)).max(high_min));
        lists.count().max(high_min)
    } else {
        if lists.count() >= high {
            // Big enough to hold the next batch of frees.
            let need_high = free_count + batch;
            if high < need_high {
                lists.set_high(clamp(need_high, high_min, high_max));
            }
        }
        high
    }
}

/// `nr_pcp_free`: how many pages a flush at `high` returns to the buddy lists.
#[inline]
#[must_use]
pub(super) fn nr_pcp_free(count: usize, free_count: usize, batch: usize, high: usize, free_high: bool) -> usize {
    if free_high {
        return count.min(batch << PCP_BATCH_SCALE_MAX);
    }
    if high < batch {
        return 1;
    }
    // Leave at least a batch on the list; free as many as were freed in a row.
    free_count.max(batch).min(high - batch)
}

/// `nr_pcp_alloc`: how many blocks of `order` a refill takes from the buddy lists.
#[inline]
pub(super) fn nr_pcp_alloc(lists: &mut PerCpuPages<'_>, zone: &Zone, order: u32) -> usize {
    let base = zone.pcp_batch() as usize;
    let (mut high, high_min, high_max) = clamped_high(lists, zone);
    if high < base {
        return 1;
    }
    let factor = lists.tuning().alloc_factor;
    let mut batch = if order > 0 { base } else { base << factor };
    // A larger high would have let these pages stay here.
    if high_min != high_max && !zone.below_high() {
        high = (high + batch).min(high_max);
        lists.set_high(high);
    }
    if order == 0 {
        let max_nr_alloc = high.saturating_sub(lists.count() + base).max(base);
        if batch <= max_nr_alloc && factor < PCP_BATCH_SCALE_MAX {
            lists.tuning().alloc_factor = factor + 1;
        }
        batch = batch.min(max_nr_alloc);
    }
    if batch > 1 { (batch >> order).max(2) } else { batch }
}

impl<P: Platform> PageAllocator<P> {
    /// After a flush: `ZONE_BELOW_HIGH` is cleared once the zone is back above its high
    /// watermark, counting the free pages a request without reserves may
    /// (`zone_watermark_ok(.., 0)`: not those of high-atomic pageblocks).
    #[inline]
    pub(super) fn maybe_clear_below_high(&self, zone: &Zone) {
        if zone.below_high()
            && zone.usable_free_pages(0) > zone.wmark(Wmark::High) + zone.lowmem_reserve(ZoneType::Movable)
        {
            zone.below_high.store(false, Relaxed);
        }
    }

    /// `decay_pcp_high` for one slot's lists of every zone: `high` drops by an eighth, but not
    /// below `count - (batch << PCP_BATCH_SCALE_MAX)` (so one decay flushes at most that many
    /// pages) nor below `high_min`, and the pages above it go back to the buddy lists. The
    /// caller holds the slot. Returns pages flushed.
    pub(super) fn decay_cpu(&self, cpu: usize) -> usize {
        let mut flushed = 0;
        for (zi, zone) in self.zones.iter().enumerate() {
            // SAFETY: The caller holds the slot (guard section or claim).
            let mut lists = unsafe { self.pcp[cpu].lists(zi) };
            let (high_min, batch) = (zone.pcp_high() as usize, zone.pcp_batch() as usize);
            let high = lists.high();
            if high > high_min {
                let seven_eighths = high - (high >> 3);
                let floor = lists.count().saturating_sub(batch << PCP_BATCH_SCALE_MAX);
                lists.set_high(floor.max(seven_eighths).max(high_min));
            }
            let to_drain = lists.count().saturating_sub(lists.high().max(high_min));
            if to_drain > 0 {
                flushed += self.flush_pcp_batch(&mut lists, zone, 0, to_drain);
            }
        }
        flushed
    }

    /// `decay_pcp_high` on every CPU slot: each zone's `high` drops by an eighth toward
    /// `high_min` (at most `batch << PCP_BATCH_SCALE_MAX` pages flushed per slot and zone) and
    /// the pages above it go back to the buddy lists. It runs on the caller's own slot and on
    /// every other slot whose owner is outside its fast path right now (one process-wide
    /// barrier for all; a busy slot is skipped until the next call). Returns pages flushed.
    /// The userspace machine's kswapd calls this about once a second, as the kernel's vmstat
    /// worker does.
    pub fn decay_pcp_high(&self) -> usize {
        if !self.pcp_enabled {
            return 0;
        }
        self.for_each_slot_held(
            |slot| slot.zones.iter().zip(&self.zones).any(|(z, zone)| z.high.load(Relaxed) > zone.pcp_high() as usize),
            |cpu| self.decay_cpu(cpu),
            |_| {},
        )
    }
}
