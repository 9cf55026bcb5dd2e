//! Zones (`include/linux/mmzone.h`): ranges of page frames with their own free lists,
//! watermarks and lowmem reserves.
//!
//! A [`Zone`] is a contiguous pfn range. Its free lists ([`crate::buddy::FreeArea`]) live under
//! `Zone::area`, the zone lock. `nr_free` mirrors the free-list page count so watermark checks
//! read it without the lock; it is written only while the lock is held, and so are its
//! siblings `nr_free_ordinary` and `nr_reserved_highatomic`.
//! Invariant: whenever the lock is free, `nr_free == area.nr_free_pages`, `nr_free_ordinary ==
//! area.nr_free_pages - area.nr_free_highatomic` and `nr_reserved_highatomic` is the area's.
//! (The free pages of the high-atomic reserve are the difference of the first two.)
//! Likewise `watermark_boost == area.boost.pages` and `wmark[i] == wmark_base[i] +
//! watermark_boost` (`boost.rs`): the marks are written only under the lock too.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};

use crate::buddy::FreeArea;
use crate::sync::{SpinGuard, SpinLock};

/// Zone kinds, in the kernel's index order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
#[repr(u8)]
pub enum ZoneType {
    /// `ZONE_DMA`: the lowest 16 MiB (ISA DMA).
    Dma = 0,
    /// `ZONE_DMA32`: below 4 GiB (x86_64 only).
    Dma32 = 1,
    /// `ZONE_NORMAL`: directly mapped memory.
    Normal = 2,
    /// `ZONE_HIGHMEM`: above 896 MiB on i386, not in the direct map.
    HighMem = 3,
    /// `ZONE_MOVABLE`: only movable allocations.
    Movable = 4,
}

/// Number of zone kinds.
pub const MAX_NR_ZONES: usize = 5;

impl ZoneType {
    /// Every zone kind in index order.
    pub const ALL: [ZoneType; MAX_NR_ZONES] =
        [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::HighMem, ZoneType::Movable];

    /// The kernel's zone name (`zone_names[]`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ZoneType::Dma => "DMA",
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
            ZoneType::HighMem => "HighMem",
            ZoneType::Movable => "Movable",
        }
    }

    /// The zone of index `i`.
    ///
    /// # Panics
    /// If `i >= MAX_NR_ZONES`.
    #[must_use]
    pub const fn from_index(i: usize) -> ZoneType {
        Self::ALL[i]
    }

    /// `is_highmem_idx`: zones outside the direct map (HighMem, and Movable in this model).
    #[must_use]
    pub const fn is_highmem(self) -> bool {
        matches!(self, ZoneType::HighMem | ZoneType::Movable)
    }

    /// `sysctl_lowmem_reserve_ratio` for this zone (PA-9).
    #[must_use]
    pub const fn lowmem_reserve_ratio(self) -> usize {
        match self {
            ZoneType::Dma | ZoneType::Dma32 => 256,
            ZoneType::Normal => 32,
            ZoneType::HighMem | ZoneType::Movable => 0,
        }
    }
}

/// Page mobility types (`enum migratetype`). CMA and ISOLATE are not configured.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
#[repr(u8)]
pub enum MigrateType {
    /// `MIGRATE_UNMOVABLE`.
    Unmovable = 0,
    /// `MIGRATE_MOVABLE`.
    Movable = 1,
    /// `MIGRATE_RECLAIMABLE`.
    Reclaimable = 2,
    /// `MIGRATE_HIGHATOMIC` (= `MIGRATE_PCPTYPES`).
    HighAtomic = 3,
}

/// Number of migratetypes with free lists.
pub const MIGRATE_TYPES: usize = 4;
/// Migratetypes that have per-CPU lists.
pub const MIGRATE_PCPTYPES: usize = 3;

impl MigrateType {
    /// Every migratetype in index order.
    pub const ALL: [MigrateType; MIGRATE_TYPES] =
        [MigrateType::Unmovable, MigrateType::Movable, MigrateType::Reclaimable, MigrateType::HighAtomic];

    /// The kernel's name (`migratetype_names[]`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            MigrateType::Unmovable => "Unmovable",
            MigrateType::Movable => "Movable",
            MigrateType::Reclaimable => "Reclaimable",
            MigrateType::HighAtomic => "HighAtomic",
        }
    }

    /// The migratetype of index `i` (indices above 3 map to HighAtomic).
    #[must_use]
    #[inline]
    pub const fn from_index(i: usize) -> MigrateType {
        // A table lookup: the hot free path calls this for every page's pageblock.
        const BY_INDEX: [MigrateType; 4] =
            [MigrateType::Unmovable, MigrateType::Movable, MigrateType::Reclaimable, MigrateType::HighAtomic];
        BY_INDEX[if i < 3 { i } else { 3 }]
    }

    /// `fallbacks[]`: where to steal from when this type's lists are empty (PA-12).
    #[must_use]
    pub const fn fallbacks(self) -> &'static [MigrateType] {
        match self {
            MigrateType::Unmovable => &[MigrateType::Reclaimable, MigrateType::Movable],
            MigrateType::Movable => &[MigrateType::Reclaimable, MigrateType::Unmovable],
            MigrateType::Reclaimable => &[MigrateType::Unmovable, MigrateType::Movable],
            MigrateType::HighAtomic => &[],
        }
    }

    /// `migratetype_is_mergeable`: may merge across pageblocks of other mergeable types.
    #[must_use]
    pub const fn is_mergeable(self) -> bool {
        (self as usize) < MIGRATE_PCPTYPES
    }
}

/// Watermark indices (`enum zone_watermarks`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Wmark {
    /// `WMARK_MIN`: the emergency reserve.
    Min = 0,
    /// `WMARK_LOW`: kswapd wakes below this; the fast path's mark.
    Low = 1,
    /// `WMARK_HIGH`: kswapd stops above this.
    High = 2,
    /// `WMARK_PROMO`.
    Promo = 3,
}

/// One zone of the machine.
pub struct Zone {
    pub(crate) kind: ZoneType,
    pub(crate) start_pfn: usize,
    pub(crate) end_pfn: usize,
    pub(crate) present: usize,
    pub(crate) managed: usize,
    pub(crate) area: SpinLock<FreeArea>,
    pub(crate) nr_free: AtomicUsize,
    /// `nr_free` less the free pages of the high-atomic reserve (which only high-atomic
    /// requests and requests with reserves may count, `__zone_watermark_unusable_free`),
    /// published with it: what a request without a right to reserves counts, in one load on
    /// the fast path ([`Zone::usable_free_pages`]).
    pub(crate) nr_free_ordinary: AtomicUsize,
    /// Mirrors `FreeArea::nr_reserved_highatomic` (show_mem's `reserved_highatomic:`).
    pub(crate) nr_reserved_highatomic: AtomicUsize,
    /// The watermarks every test uses (`wmark_pages`): [`Self::wmark_base`] plus the boost.
    pub(crate) wmark: [AtomicUsize; 4],
    /// `_watermark[]`: the marks as set up, without the boost.
    pub(crate) wmark_base: [AtomicUsize; 4],
    /// `watermark_boost`, as last published from the zone's `FreeArea` (`boost.rs`).
    pub(crate) watermark_boost: AtomicUsize,
    pub(crate) lowmem_reserve: [AtomicUsize; MAX_NR_ZONES],
    pub(crate) pcp_batch: AtomicU32,
    /// `pcp->high_min`: where every CPU's high mark starts and decays back to.
    pub(crate) pcp_high: AtomicU32,
    /// `pcp->high_max`: how far auto-tuning may raise a CPU's high mark.
    pub(crate) pcp_high_max: AtomicU32,
    /// `ZONE_BELOW_HIGH`: free pages fell below the high watermark, so per-CPU high marks
    /// shrink on frees (set by allocations, cleared by a flush that restores the watermark).
    pub(crate) below_high: AtomicBool,
    /// `PCPF_FREE_HIGH_BATCH`: a CPU's cache slice holds more than three batches, so a run of
    /// high-order frees may keep up to a batch of pages on the lists.
    pub(crate) pcp_free_high_batch: AtomicBool,
}

impl Zone {
    pub(crate) fn new(kind: ZoneType, start_pfn: usize, end_pfn: usize) -> Self {
        Zone {
            kind,
            start_pfn,
            end_pfn,
            present: end_pfn - start_pfn,
            managed: 0,
            area: SpinLock::new(FreeArea::new()),
            nr_free: AtomicUsize::new(0),
            nr_free_ordinary: AtomicUsize::new(0),
            nr_reserved_highatomic: AtomicUsize::new(0),
            wmark: Default::default(),
            wmark_base: Default::default(),
            watermark_boost: AtomicUsize::new(0),
            lowmem_reserve: Default::default(),
            pcp_batch: AtomicU32::new(1),
            pcp_high: AtomicU32::new(0),
            pcp_high_max: AtomicU32::new(0),
            below_high: AtomicBool::new(false),
            pcp_free_high_batch: AtomicBool::new(false),
        }
    }

    /// The zone kind.
    #[must_use]
    pub fn kind(&self) -> ZoneType {
        self.kind
    }

    /// `zone->name`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// First pfn of the zone.
    #[must_use]
    pub fn start_pfn(&self) -> usize {
        self.start_pfn
    }

    /// One past the last pfn (`zone_end_pfn`).
    #[must_use]
    pub fn end_pfn(&self) -> usize {
        self.end_pfn
    }

    /// `spanned_pages`.
    #[must_use]
    pub fn spanned(&self) -> usize {
        self.end_pfn - self.start_pfn
    }

    /// `present_pages`.
    #[must_use]
    pub fn present(&self) -> usize {
        self.present
    }

    /// `managed_pages`: present pages the buddy allocator owns.
    #[must_use]
    pub fn managed(&self) -> usize {
        self.managed
    }

    /// `populated_zone`.
    #[must_use]
    pub fn is_populated(&self) -> bool {
        self.managed > 0
    }

    /// Whether `pfn` lies in this zone.
    #[inline]
    #[must_use]
    pub fn contains(&self, pfn: usize) -> bool {
        pfn >= self.start_pfn && pfn < self.end_pfn
    }

    /// `NR_FREE_PAGES`: pages on the buddy free lists (per-CPU lists not counted).
    #[inline]
    #[must_use]
    pub fn free_pages(&self) -> usize {
        self.nr_free.load(Relaxed)
    }

    /// Free pages in `MIGRATE_HIGHATOMIC` pageblocks' free lists (`zone->nr_free_highatomic`):
    /// the difference of the two published counts (read without the lock, so it saturates).
    #[inline]
    #[must_use]
    pub fn free_highatomic(&self) -> usize {
        self.nr_free.load(Relaxed).saturating_sub(self.nr_free_ordinary.load(Relaxed))
    }

    /// The free pages a request with `alloc_flags` may count in its watermark test: all of
    /// them with a right to reserves (an `ALLOC_RESERVES` bit), else those outside high-atomic
    /// pageblocks (`__zone_watermark_unusable_free`; [`crate::watermark::usable_free`] of the
    /// two counts, kept as one word so the fast path reads one).
    #[inline(always)]
    #[must_use]
    pub fn usable_free_pages(&self, alloc_flags: u32) -> usize {
        if alloc_flags & crate::watermark::alloc_flags::RESERVES == 0 {
            self.nr_free_ordinary.load(Relaxed)
        } else {
            self.nr_free.load(Relaxed)
        }
    }

    /// Pages in pageblocks reserved for high-order atomic allocations
    /// (`zone->nr_reserved_highatomic`).
    #[must_use]
    pub fn reserved_highatomic(&self) -> usize {
        self.nr_reserved_highatomic.load(Relaxed)
    }

    /// A watermark in pages, boost included (`wmark_pages`, `min_wmark_pages` …): what every
    /// watermark test and `/proc/zoneinfo` use.
    #[inline]
    #[must_use]
    pub fn wmark(&self, which: Wmark) -> usize {
        self.wmark[which as usize].load(Relaxed)
    }

    /// A watermark without the boost (`zone->_watermark[which]`).
    #[must_use]
    pub fn wmark_base(&self, which: Wmark) -> usize {
        self.wmark_base[which as usize].load(Relaxed)
    }

    /// `zone->watermark_boost` in pages (`boost.rs`).
    #[must_use]
    pub fn watermark_boost(&self) -> usize {
        self.watermark_boost.load(Relaxed)
    }

    /// Stores new base marks and the boost, and the boosted marks from them. Under the zone
    /// lock, with `boost` the `FreeArea`'s.
    pub(crate) fn store_wmarks(&self, base: [usize; 4], boost: usize) {
        for (w, &b) in base.iter().enumerate() {
            self.wmark_base[w].store(b, Relaxed);
        }
        self.store_boost(boost);
    }

    /// Publishes `boost` and the marks with it added.
    fn store_boost(&self, boost: usize) {
        self.watermark_boost.store(boost, Relaxed);
        for (mark, base) in self.wmark.iter().zip(&self.wmark_base) {
            mark.store(base.load(Relaxed).saturating_add(boost), Relaxed);
        }
    }

    /// `lowmem_reserve[highest_zoneidx]` in pages.
    #[inline]
    #[must_use]
    pub fn lowmem_reserve(&self, highest: ZoneType) -> usize {
        self.lowmem_reserve[highest as usize].load(Relaxed)
    }

    /// The per-CPU list batch for this zone.
    #[must_use]
    pub fn pcp_batch(&self) -> u32 {
        self.pcp_batch.load(Relaxed)
    }

    /// The per-CPU list high mark every CPU starts from (`high_min`); auto-tuning moves each
    /// CPU's own mark between this and [`Zone::pcp_high_max`] (see
    /// [`crate::page_alloc::PageAllocator::pcp_high`]).
    #[inline]
    #[must_use]
    pub fn pcp_high(&self) -> u32 {
        self.pcp_high.load(Relaxed)
    }

    /// `high_max`: the most pages auto-tuning lets one CPU keep on this zone's lists.
    #[inline]
    #[must_use]
    pub fn pcp_high_max(&self) -> u32 {
        self.pcp_high_max.load(Relaxed)
    }

    /// `PCPF_FREE_HIGH_BATCH` for this zone's per-CPU lists.
    #[inline]
    #[must_use]
    pub fn pcp_free_high_batch(&self) -> bool {
        self.pcp_free_high_batch.load(Relaxed)
    }

    /// `ZONE_BELOW_HIGH`.
    #[inline]
    #[must_use]
    pub fn below_high(&self) -> bool {
        self.below_high.load(Relaxed)
    }

    /// `zone_watermark_fast` for the mark in `alloc_flags`, after the `ZONE_BELOW_HIGH`
    /// detection that `get_page_from_freelist` does first: the count part of
    /// `zone_watermark_ok` (the per-order part is checked under the zone lock when the buddy
    /// lists are used). A zone that passes the same test at its high watermark passes at once;
    /// one that fails it is marked, so frees shrink the per-CPU high marks (`pcp_tune`). As in
    /// the kernel, both tests take the request's `alloc_flags`: its reserve fractions lower the
    /// high mark too, and the `__GFP_HIGH` exception applies to both.
    #[inline(always)]
    pub(crate) fn watermark_fast(&self, order: u32, highest: ZoneType, alloc_flags: u32) -> bool {
        use crate::watermark::{alloc_flags as af, effective_min};
        let free = self.usable_free_pages(alloc_flags) as isize - ((1isize << order) - 1);
        let reserve = self.lowmem_reserve(highest);
        // The count test at a mark: `free` (usable, less the request's own pages beyond the
        // first) above the mark as the request's reserve rights lower it, plus the lowmem
        // reserve.
        let passes = |mark: usize| free > (effective_min(mark, alloc_flags) + reserve) as isize;
        // "Ignore watermark boosting for __GFP_HIGH order-0 allocations when checking the min
        // watermark" (folded away for a constant mask without `__GFP_HIGH` at the min mark).
        // The kernel tests the request's `alloc_flags`, not the mark being tested, so the high
        // probe of a slow-path `__GFP_HIGH` request falls back to the unboosted min too; the
        // answer does not depend on the mark, so it is asked at most once.
        let unboosted = || {
            order == 0
                && alloc_flags & (af::MIN_RESERVE | af::WMARK_MASK) == af::MIN_RESERVE
                && self.passes_unboosted_min(free, reserve, alloc_flags)
        };
        let which = alloc_flags & af::WMARK_MASK;
        // Read only when tested: a zone that passes the high probe needs no other mark.
        let mark = || self.wmark[which as usize].load(Relaxed);
        if which <= Wmark::High as u32 && !self.below_high() {
            if passes(self.wmark(Wmark::High)) || unboosted() {
                return true;
            }
            self.below_high.store(true, Relaxed);
            return passes(mark());
        }
        passes(mark()) || unboosted()
    }

    /// `zone_watermark_fast`'s last test: a boosted zone tested again at its min mark without
    /// the boost.
    #[cold]
    #[inline(never)]
    fn passes_unboosted_min(&self, free: isize, reserve: usize, alloc_flags: u32) -> bool {
        self.watermark_boost() != 0
            && free > (crate::watermark::effective_min(self.wmark_base(Wmark::Min), alloc_flags) + reserve) as isize
    }

    /// Takes the zone lock.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, FreeArea> {
        self.area.lock()
    }

    /// Publishes the free counts after changes made under the lock, and the boost (with the
    /// boosted marks) if it changed.
    #[inline]
    pub(crate) fn publish(&self, area: &FreeArea) {
        self.nr_free.store(area.nr_free_pages, Relaxed);
        self.nr_free_ordinary.store(area.nr_free_pages - area.nr_free_highatomic, Relaxed);
        self.nr_reserved_highatomic.store(area.nr_reserved_highatomic, Relaxed);
        if area.boost.pages != self.watermark_boost.load(Relaxed) {
            self.store_boost(area.boost.pages);
        }
    }

    /// Free blocks per order (the buddyinfo row), taken under the lock.
    #[must_use]
    pub fn free_blocks_per_order(&self) -> [usize; crate::order::NR_PAGE_ORDERS] {
        self.lock().nr_free_per_order()
    }

    /// Free blocks per migratetype and order (the pagetypeinfo rows), taken under the lock.
    #[must_use]
    pub fn free_blocks_per_type(&self) -> [[usize; crate::order::NR_PAGE_ORDERS]; MIGRATE_TYPES] {
        self.lock().nr_free_per_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::alloc_flags as af;

    #[test]
    fn pa12_fallback_order() {
        use MigrateType::*;
        assert_eq!(Unmovable.fallbacks(), &[Reclaimable, Movable]);
        assert_eq!(Movable.fallbacks(), &[Reclaimable, Unmovable]);
        assert_eq!(Reclaimable.fallbacks(), &[Unmovable, Movable]);
    }

    #[test]
    fn names_and_ratios() {
        let names: [&str; 5] = ZoneType::ALL.map(ZoneType::name);
        assert_eq!(names, ["DMA", "DMA32", "Normal", "HighMem", "Movable"]);
        assert_eq!(ZoneType::Dma.lowmem_reserve_ratio(), 256);
        assert_eq!(ZoneType::Normal.lowmem_reserve_ratio(), 32);
        assert_eq!(ZoneType::HighMem.lowmem_reserve_ratio(), 0);
        assert_eq!(MigrateType::ALL.map(MigrateType::name), ["Unmovable", "Movable", "Reclaimable", "HighAtomic"]);
    }

    /// A Normal zone with `free` free pages, marks min/low/high 100/125/150 raised by `boost`,
    /// and a lowmem reserve of `reserve` for Normal requests.
    fn zone(free: usize, boost: usize, reserve: usize) -> Zone {
        let z = Zone::new(ZoneType::Normal, 0, 4096);
        z.nr_free.store(free, Relaxed);
        z.nr_free_ordinary.store(free, Relaxed);
        z.store_wmarks([100, 125, 150, 175], boost);
        z.lowmem_reserve[ZoneType::Normal as usize].store(reserve, Relaxed);
        z
    }

    /// The slow path's `GFP_ATOMIC` flags (`gfp_to_alloc_flags`).
    const ATOMIC: u32 = af::WMARK_MIN | af::MIN_RESERVE | af::NON_BLOCK | af::KSWAPD;

    /// PA-7 / PA-17: the `ZONE_BELOW_HIGH` probe is the request's own watermark test at the
    /// high mark: a fast-path request (`ALLOC_WMARK_LOW`) between low and high passes but marks
    /// the zone; a slow-path `GFP_ATOMIC` request at the same count passes the probe (its
    /// reserve rights lower the high mark to 150 - 75 - 18 = 57) and leaves it unmarked.
    #[test]
    fn below_high_probe_uses_the_requests_reserve_rights() {
        let z = zone(140, 0, 0);
        assert!(z.watermark_fast(0, ZoneType::Normal, af::WMARK_LOW));
        assert!(z.below_high(), "140 free pages are below the high mark 150");

        let z = zone(140, 0, 0);
        assert!(z.watermark_fast(0, ZoneType::Normal, ATOMIC));
        assert!(!z.below_high(), "GFP_ATOMIC's high mark is 57");
        let z = zone(57, 0, 0);
        assert!(z.watermark_fast(0, ZoneType::Normal, ATOMIC), "57 > GFP_ATOMIC's min mark 38");
        assert!(z.below_high(), "57 is not above GFP_ATOMIC's high mark 57");
        // The lowmem reserve counts in the probe as in the mark's test.
        let z = zone(140, 0, 100);
        assert!(z.watermark_fast(0, ZoneType::Normal, ATOMIC), "140 > 38 + 100");
        assert!(z.below_high(), "140 is not above 57 + 100");
        // A set mark is not probed again; the request's own mark decides.
        assert!(!z.watermark_fast(0, ZoneType::Normal, af::WMARK_MIN), "140 is not above 100 + 100");
    }

    /// PA-7 boost exception: an order-0 `__GFP_HIGH` request at the min mark is tested again
    /// without the boost, in the high probe too (the kernel checks the request's flags, not the
    /// mark): with marks boosted to 300/325/350, 120 free pages pass the probe through the
    /// unboosted min (100 / 2 = 50) and leave the zone unmarked; order 1 has no exception.
    #[test]
    fn below_high_probe_applies_the_gfp_high_boost_exception() {
        let z = zone(120, 200, 0);
        assert!(z.watermark_fast(0, ZoneType::Normal, af::WMARK_MIN | af::MIN_RESERVE));
        assert!(!z.below_high(), "passed the probe through the unboosted min");
        assert!(!z.watermark_fast(1, ZoneType::Normal, af::WMARK_MIN | af::MIN_RESERVE));
        assert!(z.below_high(), "order 1 has no exception");
        let z = zone(120, 200, 0);
        assert!(!z.watermark_fast(0, ZoneType::Normal, af::WMARK_LOW | af::MIN_RESERVE), "only at the min mark");
        assert!(z.below_high());
        let z = zone(70, 0, 0);
        assert!(z.watermark_fast(0, ZoneType::Normal, af::WMARK_MIN | af::MIN_RESERVE), "70 > 50");
        assert!(z.below_high(), "without a boost there is no exception: 70 is not above 75");
    }
}
