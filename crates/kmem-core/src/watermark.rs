//! Watermarks, lowmem reserves, per-CPU list sizing and the watermark test: the pure
//! arithmetic of `mm/page_alloc.c` (§2.3, §2.4, §2.7 of SEMANTICS.md).

use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_HIGH, __GFP_KSWAPD_RECLAIM, __GFP_MEMALLOC, __GFP_NOMEMALLOC, Gfp};
use crate::order::PAGE_SHIFT;
use crate::zone::{MAX_NR_ZONES, ZoneType};

/// `ALLOC_*` flags (`mm/internal.h`). The low two bits select the watermark.
pub mod alloc_flags {
    /// Use the min watermark.
    pub const WMARK_MIN: u32 = 0;
    /// Use the low watermark.
    pub const WMARK_LOW: u32 = 1;
    /// Use the high watermark.
    pub const WMARK_HIGH: u32 = 2;
    /// Mask of the watermark index.
    pub const WMARK_MASK: u32 = 3;
    /// Skip the watermark check entirely (`__GFP_MEMALLOC`, reclaimers).
    pub const NO_WATERMARKS: u32 = 0x04;
    /// An OOM victim: half the min reserve.
    pub const OOM: u32 = 0x08;
    /// The caller cannot block (was `ALLOC_HARDER`).
    pub const NON_BLOCK: u32 = 0x10;
    /// `__GFP_HIGH`: half the min reserve (was `ALLOC_HIGH`).
    pub const MIN_RESERVE: u32 = 0x20;
    /// Respect cpuset limits.
    pub const CPUSET: u32 = 0x40;
    /// May use CMA areas.
    pub const CMA: u32 = 0x80;
    /// Avoid mixing pageblocks.
    pub const NOFRAGMENT: u32 = 0x100;
    /// May use HIGHATOMIC reserves.
    pub const HIGHATOMIC: u32 = 0x200;
    /// Only trylock the zone.
    pub const TRYLOCK: u32 = 0x400;
    /// Wake kswapd (equals `__GFP_KSWAPD_RECLAIM`).
    pub const KSWAPD: u32 = 0x800;
    /// Any flag that grants access to reserves.
    pub const RESERVES: u32 = NON_BLOCK | MIN_RESERVE | HIGHATOMIC | OOM;
}
use alloc_flags as af;

const _: () = assert!(af::MIN_RESERVE == __GFP_HIGH.bits());
const _: () = assert!(af::KSWAPD == __GFP_KSWAPD_RECLAIM.bits());

/// `gfp_to_alloc_flags` for the slow path (target ≥ 6.3). `rt_task` adds `MIN_RESERVE` for a
/// blocking request of a realtime task. A non-blocking request of order > 0 gets `HIGHATOMIC`
/// only with `MIN_RESERVE` (`__GFP_HIGH`), as since 6a204d4b14c9 (6.17; SEMANTICS §2.4 step 2
/// describes the older rule, every non-blocking order > 0 request).
#[must_use]
pub fn gfp_to_alloc_flags(gfp: Gfp, order: u32, rt_task: bool) -> u32 {
    let mut flags = af::WMARK_MIN | af::CPUSET;
    flags |= gfp.bits() & (__GFP_HIGH.bits() | __GFP_KSWAPD_RECLAIM.bits());
    if !gfp.contains(__GFP_DIRECT_RECLAIM) {
        if !gfp.contains(__GFP_NOMEMALLOC) {
            flags |= af::NON_BLOCK;
            if order > 0 && flags & af::MIN_RESERVE != 0 {
                flags |= af::HIGHATOMIC;
            }
        }
        if flags & af::MIN_RESERVE != 0 {
            flags &= !af::CPUSET;
        }
    } else if rt_task {
        flags |= af::MIN_RESERVE;
    }
    flags
}

/// `__gfp_pfmemalloc_flags`: `NO_WATERMARKS` for `__GFP_MEMALLOC` or a task in reclaim
/// (`PF_MEMALLOC`), unless `__GFP_NOMEMALLOC`, which always wins (GFP-3).
#[must_use]
pub fn gfp_pfmemalloc_flags(gfp: Gfp, task_memalloc: bool) -> u32 {
    if gfp.contains(__GFP_NOMEMALLOC) {
        0
    } else if gfp.contains(__GFP_MEMALLOC) || task_memalloc {
        af::NO_WATERMARKS
    } else {
        0
    }
}

/// The watermark actually required after the reserve discounts of `alloc_flags` (PA-7):
/// `MIN_RESERVE` halves it, `NON_BLOCK` on top removes a further quarter, `OOM` halves.
#[must_use]
pub const fn effective_min(mark: usize, alloc_flags: u32) -> usize {
    let mut min = mark;
    if alloc_flags & af::RESERVES != 0 {
        if alloc_flags & af::MIN_RESERVE != 0 {
            min -= min / 2;
            if alloc_flags & af::NON_BLOCK != 0 {
                min -= min / 4;
            }
        }
        if alloc_flags & af::OOM != 0 {
            min -= min / 2;
        }
    }
    min
}

/// `__zone_watermark_unusable_free`'s high-atomic part: a request with no right to reserves
/// (no `ALLOC_RESERVES` bit) may not count the free pages of high-atomic pageblocks, so
/// they are taken from `free` first (saturating: the two counts are read without the lock).
#[inline(always)]
#[must_use]
pub const fn usable_free(free: usize, free_highatomic: usize, alloc_flags: u32) -> usize {
    if alloc_flags & af::RESERVES == 0 { free.saturating_sub(free_highatomic) } else { free }
}

/// `__zone_watermark_ok`: may an order-`order` request take pages from a zone with `free`
/// free pages, given `mark`, the zone's `reserve` (`lowmem_reserve[highest_zoneidx]`) and
/// `alloc_flags`? `has_block(o)` says whether a usable free list of order `o` is non-empty.
#[must_use]
pub fn zone_watermark_ok(
    free: usize,
    order: u32,
    mark: usize,
    reserve: usize,
    alloc_flags: u32,
    has_block: impl Fn(u32) -> bool,
) -> bool {
    let free = free as isize - ((1isize << order) - 1);
    let min = effective_min(mark, alloc_flags);
    if free <= (min + reserve) as isize {
        return false;
    }
    order == 0 || (order..=crate::order::MAX_PAGE_ORDER).any(has_block)
}

/// `calculate_min_free_kbytes`: `clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144)`.
#[must_use]
pub fn min_free_kbytes_for(lowmem_kbytes: usize) -> usize {
    int_sqrt(lowmem_kbytes * 16).clamp(128, 262_144)
}

/// Integer square root (floor).
#[must_use]
pub fn int_sqrt(x: usize) -> usize {
    if x < 2 {
        return x;
    }
    // Newton's method from above: strictly decreasing until it reaches the floor root.
    let mut r = x;
    let mut next = (r + x / r) / 2;
    while next < r {
        r = next;
        next = (r + x / r) / 2;
    }
    r
}

/// `__setup_per_zone_wmarks`: `[min, low, high, promo]` per zone, from each zone's kind and
/// managed pages (PA-10). Zones with no managed pages get zeros.
#[must_use]
pub fn setup_wmarks(
    zones: &[(ZoneType, usize)],
    min_free_kbytes: usize,
    watermark_scale_factor: usize,
) -> [[usize; 4]; MAX_NR_ZONES] {
    let pages_min = (min_free_kbytes >> (PAGE_SHIFT - 10)) as u128;
    let lowmem: u128 = zones.iter().filter(|(k, _)| !k.is_highmem()).map(|&(_, m)| m as u128).sum();
    let mut out = [[0; 4]; MAX_NR_ZONES];
    for (i, &(kind, managed)) in zones.iter().enumerate() {
        if managed == 0 {
            continue;
        }
        let share = (pages_min * managed as u128).checked_div(lowmem).unwrap_or(0) as usize;
        let min = if kind.is_highmem() { (managed / 1024).clamp(32, 128) } else { share };
        let delta = (share >> 2).max(managed * watermark_scale_factor / 10_000);
        out[i] = [min, min + delta, min + 2 * delta, min + 3 * delta];
    }
    out
}

/// The largest `min_free_kbytes` (at most `i32::MAX`, the sysctl's type) whose high
/// watermarks from [`setup_wmarks`], summed over the lowmem zones, stay below those zones'
/// managed pages: above it, kswapd's balance target (the high watermark, which the fast path's
/// low and the slow path's min watermark scale with) leaves no lowmem to allocate. `None` if
/// not even 0 does, which only a scale factor above the sysctl's 3000 can cause. The kernel's
/// sysctl has no upper bound; its computed default stays in 128..=262144 (§2.3).
#[must_use]
pub fn max_min_free_kbytes(zones: &[(ZoneType, usize)], watermark_scale_factor: usize) -> Option<usize> {
    let lowmem = || zones.iter().enumerate().filter(|(_, (kind, _))| !kind.is_highmem());
    let managed: usize = lowmem().map(|(_, &(_, m))| m).sum();
    let fits = |kbytes: usize| {
        let marks = setup_wmarks(zones, kbytes, watermark_scale_factor);
        lowmem().map(|(i, _)| marks[i][2]).sum::<usize>() < managed
    };
    if !fits(0) {
        return None;
    }
    // The high watermark grows with `min_free_kbytes`: bisect. `lo` fits; `hi` does not or lies
    // past the sysctl's range.
    let (mut lo, mut hi) = (0usize, i32::MAX as usize + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// `setup_per_zone_lowmem_reserve`: `reserve[i][j]` = managed pages of zones `i+1..=j` divided
/// by zone `i`'s ratio; 0 for `j <= i`, a zero ratio, or an empty zone `i` (PA-9). `zones` is
/// indexed by zone index.
#[must_use]
pub fn setup_lowmem_reserve(zones: &[(ZoneType, usize); MAX_NR_ZONES]) -> [[usize; MAX_NR_ZONES]; MAX_NR_ZONES] {
    let mut out = [[0; MAX_NR_ZONES]; MAX_NR_ZONES];
    for i in 0..MAX_NR_ZONES - 1 {
        let (kind, managed) = zones[i];
        let ratio = kind.lowmem_reserve_ratio();
        let clear = ratio == 0 || managed == 0;
        let mut upper = 0;
        for j in i + 1..MAX_NR_ZONES {
            upper += zones[j].1;
            out[i][j] = if clear { 0 } else { upper / ratio };
        }
    }
    out
}

/// `zone_batchsize`: per-CPU list batch for a zone of `managed` pages (at least 1).
#[must_use]
pub fn zone_batchsize(managed: usize) -> u32 {
    let mut batch = (managed >> 10).min((1 << 20) >> PAGE_SHIFT) / 4;
    if batch < 1 {
        batch = 1;
    }
    let sum = batch + batch / 2;
    let rounded = 1usize << (usize::BITS - 1 - sum.leading_zeros());
    ((rounded - 1).max(1)) as u32
}

/// `zone_highsize`: per-CPU high mark, `max(total / nr_cpus, 4 * batch)` where `total` is the
/// low watermark (`high_min`) or `managed / fraction` (`high_max`, fraction 8).
#[must_use]
pub fn zone_highsize(total: usize, batch: u32, nr_cpus: usize) -> u32 {
    let high = total / nr_cpus.max(1);
    (high.max((batch as usize) << 2)).min(u32::MAX as usize) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::*;

    fn min_for(gfp: Gfp, order: u32) -> usize {
        effective_min(1000, gfp_to_alloc_flags(gfp, order, false))
    }

    #[test]
    fn pa7_reserve_fractions() {
        assert_eq!(min_for(GFP_KERNEL, 0), 1000);
        assert_eq!(min_for(GFP_KERNEL | __GFP_HIGH, 0), 500);
        assert_eq!(min_for(GFP_ATOMIC, 0), 375);
        assert_eq!(min_for(GFP_NOWAIT, 0), 1000);
        assert_eq!(effective_min(1000, af::OOM), 500);
        // GFP-3: NOMEMALLOC takes the reserve discount of a non-blocking request away too.
        assert_eq!(min_for(GFP_ATOMIC | __GFP_NOMEMALLOC, 0), 500);
        assert_eq!(gfp_pfmemalloc_flags(__GFP_MEMALLOC, false), af::NO_WATERMARKS);
        assert_eq!(gfp_pfmemalloc_flags(__GFP_MEMALLOC | __GFP_NOMEMALLOC, false), 0);
        assert_eq!(gfp_pfmemalloc_flags(GFP_KERNEL | __GFP_NOMEMALLOC, true), 0);
        assert_eq!(gfp_pfmemalloc_flags(GFP_KERNEL, true), af::NO_WATERMARKS);
    }

    #[test]
    fn pa7_boundary_free_equal_min_plus_reserve_fails() {
        let flags = gfp_to_alloc_flags(GFP_KERNEL, 0, false);
        assert!(!zone_watermark_ok(1100, 0, 1000, 100, flags, |_| true));
        assert!(zone_watermark_ok(1101, 0, 1000, 100, flags, |_| true));
        let atomic = gfp_to_alloc_flags(GFP_ATOMIC, 0, false);
        assert!(!zone_watermark_ok(375, 0, 1000, 0, atomic, |_| true));
        assert!(zone_watermark_ok(376, 0, 1000, 0, atomic, |_| true));
        // Order 2 subtracts 3 pages and needs a free block of order >= 2.
        assert!(!zone_watermark_ok(1003, 2, 1000, 0, flags, |_| true));
        assert!(zone_watermark_ok(1004, 2, 1000, 0, flags, |o| o == 3));
        assert!(!zone_watermark_ok(5000, 2, 1000, 0, flags, |o| o < 2));
    }

    #[test]
    fn alloc_flags_of_common_requests() {
        assert_eq!(gfp_to_alloc_flags(GFP_KERNEL, 0, false), af::WMARK_MIN | af::CPUSET | af::KSWAPD);
        assert_eq!(gfp_to_alloc_flags(GFP_ATOMIC, 0, false), af::MIN_RESERVE | af::KSWAPD | af::NON_BLOCK);
        assert_eq!(gfp_to_alloc_flags(GFP_NOWAIT, 1, false), af::CPUSET | af::KSWAPD | af::NON_BLOCK);
        assert_eq!(
            gfp_to_alloc_flags(GFP_ATOMIC, 1, false),
            af::MIN_RESERVE | af::KSWAPD | af::NON_BLOCK | af::HIGHATOMIC
        );
        assert_eq!(gfp_to_alloc_flags(GFP_KERNEL, 0, true) & af::MIN_RESERVE, af::MIN_RESERVE);
    }

    #[test]
    fn pa10_largest_min_free_kbytes_leaves_lowmem_above_the_high_watermarks() {
        let high_sum = |zones: &[(ZoneType, usize)], kb, f| -> usize {
            let marks = setup_wmarks(zones, kb, f);
            zones.iter().enumerate().filter(|(_, (k, _))| !k.is_highmem()).map(|(i, _)| marks[i][2]).sum()
        };
        let layouts: [&[(ZoneType, usize)]; 3] = [
            &[(ZoneType::Dma, 4096), (ZoneType::Normal, 4000)],
            &[(ZoneType::Dma, 4096), (ZoneType::Normal, 225_000), (ZoneType::HighMem, 30_000)],
            &[(ZoneType::Dma, 2048)],
        ];
        for zones in layouts {
            let lowmem: usize = zones.iter().filter(|(k, _)| !k.is_highmem()).map(|&(_, m)| m).sum();
            for f in [1, 10, 3000] {
                let max = max_min_free_kbytes(zones, f).unwrap();
                assert!(high_sum(zones, max, f) < lowmem && high_sum(zones, max + 1, f) >= lowmem, "{zones:?} {f}");
            }
        }
        // By hand: 21 599 kB is 5399 pages of min, shares 2731 + 2667, deltas 682 + 666, high
        // watermarks 4095 + 3999 = 8094 < 8096; 21 600 kB gives 2732 (delta 683) + 2667: 8097.
        assert_eq!(max_min_free_kbytes(layouts[0], 10), Some(21_599));
        // A range the sysctl's `int` cannot exceed, and a scale factor past the sysctl's.
        assert_eq!(max_min_free_kbytes(&[(ZoneType::Normal, 1 << 32)], 10), Some(i32::MAX as usize));
        assert_eq!(max_min_free_kbytes(layouts[0], 5000), None);
    }

    #[test]
    fn pa10_min_free_kbytes_and_watermarks() {
        assert_eq!(min_free_kbytes_for(4 << 20), 8192);
        assert_eq!(min_free_kbytes_for(16 << 20), 16384);
        assert_eq!(min_free_kbytes_for(1024), 128);
        assert_eq!(min_free_kbytes_for(usize::MAX >> 8), 262_144);
        // One 1 GiB Normal zone, min_free_kbytes 4096 → pages_min 1024.
        let w = setup_wmarks(&[(ZoneType::Normal, 262_144)], 4096, 10);
        // delta = max(1024 >> 2 = 256, 262144 * 10 / 10000 = 262) = 262.
        assert_eq!(w[0], [1024, 1286, 1548, 1810]);
        // Two lowmem zones share pages_min by size; highmem gets its own clamp.
        let w =
            setup_wmarks(&[(ZoneType::Dma, 4096), (ZoneType::Normal, 12_288), (ZoneType::HighMem, 65_536)], 1024, 10);
        assert_eq!(w[0][0], 64);
        assert_eq!(w[1][0], 192);
        assert_eq!(w[2][0], 64, "highmem min = clamp(65536 / 1024, 32, 128)");
        // The scale factor drives delta once it exceeds share / 4.
        let w = setup_wmarks(&[(ZoneType::Normal, 262_144)], 4096, 100);
        assert_eq!(w[0][1] - w[0][0], 2621);
    }

    #[test]
    fn pa9_lowmem_reserve() {
        let zones = [
            (ZoneType::Dma, 4096),
            (ZoneType::Dma32, 0),
            (ZoneType::Normal, 225_280),
            (ZoneType::HighMem, 32_768),
            (ZoneType::Movable, 0),
        ];
        let r = setup_lowmem_reserve(&zones);
        assert_eq!(r[0], [0, 0, 225_280 / 256, (225_280 + 32_768) / 256, (225_280 + 32_768) / 256]);
        assert_eq!(r[1], [0; 5], "empty zone: cleared");
        assert_eq!(r[2], [0, 0, 0, 32_768 / 32, 32_768 / 32]);
        assert_eq!(r[3], [0; 5], "HighMem ratio 0");
    }

    #[test]
    fn pcp_sizes() {
        assert_eq!(zone_batchsize(262_144), 63);
        assert_eq!(zone_batchsize(4096), 1);
        assert_eq!(zone_batchsize(16_384), 3, "16384 >> 10 = 16, /4 = 4, 4 + 2 = 6 → 4 - 1");
        assert_eq!(zone_highsize(1286, 63, 2), 643);
        assert_eq!(zone_highsize(100, 63, 2), 252);
        assert_eq!(int_sqrt(65_536 * 16), 1024);
        assert_eq!(int_sqrt(99), 9);
    }

    /// PA-7 / §2.4 step 2 as since 6a204d4b14c9 (from the GFP audit): `HIGHATOMIC` only for a
    /// non-blocking order > 0 request that also has `MIN_RESERVE`.
    #[test]
    fn unusable_free_leaves_out_the_highatomic_pages_without_a_right_to_reserves() {
        assert_eq!(usable_free(1000, 300, af::WMARK_LOW), 700);
        assert_eq!(usable_free(1000, 300, af::WMARK_MIN | af::CPUSET | af::KSWAPD), 700);
        for reserve in [af::NON_BLOCK, af::MIN_RESERVE, af::HIGHATOMIC, af::OOM] {
            assert_eq!(usable_free(1000, 300, af::WMARK_MIN | reserve), 1000, "{reserve:#x}");
        }
        assert_eq!(usable_free(200, 300, 0), 0, "counts read without the lock never wrap");
    }

    #[test]
    fn pa7_highatomic_needs_min_reserve() {
        assert_eq!(gfp_to_alloc_flags(GFP_NOWAIT, 1, false) & af::HIGHATOMIC, 0, "GFP_NOWAIT order 1");
        assert_eq!(gfp_to_alloc_flags(GFP_KERNEL & !__GFP_DIRECT_RECLAIM, 3, false) & af::HIGHATOMIC, 0);
        assert_ne!(gfp_to_alloc_flags(GFP_ATOMIC, 1, false) & af::HIGHATOMIC, 0);
    }

    /// Every combination of HIGH / KSWAPD / DIRECT / NOMEMALLOC at orders 0 and 1 against a
    /// transcription of the kernel's (6.17+) rule (from the GFP audit).
    #[test]
    fn pa7_alloc_flags_table() {
        for bits in 0u32..16 {
            let mut g = Gfp::empty();
            for (bit, flag) in
                [(1, __GFP_HIGH), (2, __GFP_KSWAPD_RECLAIM), (4, __GFP_DIRECT_RECLAIM), (8, __GFP_NOMEMALLOC)]
            {
                if bits & bit != 0 {
                    g |= flag;
                }
            }
            for order in [0, 1] {
                let mut k = af::WMARK_MIN | af::CPUSET;
                k |= g.bits() & (af::MIN_RESERVE | af::KSWAPD);
                if !g.contains(__GFP_DIRECT_RECLAIM) {
                    if !g.contains(__GFP_NOMEMALLOC) {
                        k |= af::NON_BLOCK;
                        if order > 0 && k & af::MIN_RESERVE != 0 {
                            k |= af::HIGHATOMIC;
                        }
                    }
                    if k & af::MIN_RESERVE != 0 {
                        k &= !af::CPUSET;
                    }
                }
                assert_eq!(gfp_to_alloc_flags(g, order, false), k, "{g:?} order {order}");
            }
        }
    }
}
