//! Watermark boosting (SEMANTICS §2.3; `boost_watermark` in `mm/page_alloc.c`, the boost
//! accounting of `balance_pgdat` in `mm/vmscan.c`, Linux 5.0 on).
//!
//! A fallback that may mix a pageblock — `try_to_claim_block` with a block smaller than a
//! pageblock, whether or not the claim then succeeds — raises its zone's boost by one
//! pageblock's pages, up to `max_boost`. Every watermark of the zone counts the boost
//! (`wmark_pages(z, i) = _watermark[i] + watermark_boost`), so allocations near the marks go to
//! the slow path sooner and kswapd, woken for it when the request may wake kswapd, reclaims to
//! the raised high mark. When kswapd's run ends it takes back the boost it saw when it started;
//! a boost added during the run stays for the next one.
//!
//! `max_boost` is `mult_frac(_watermark[WMARK_HIGH], watermark_boost_factor, 10000)`, at least
//! a pageblock; no boost at all with the factor at 0 (`vm.watermark_boost_factor`), in a zone
//! smaller than four pageblocks ("boosting the watermark can cause an out of memory situation
//! immediately"), or while the high mark is 0.
//!
//! Invariant: `Boost::pages` grows only through `Boost::boost`, to at most `Boost::max` at
//! that moment, and shrinks only through `Boost::reclaimed` and `Boost::configure` (which
//! zeroes it, as `__setup_per_zone_wmarks` does). All of it runs under the zone lock (it lives in
//! the zone's `FreeArea`); the zone publishes the boost and the boosted marks for readers
//! without the lock (`Zone::publish`).

/// `vm.watermark_boost_factor`'s default: the boost may reach 150 % of the high watermark.
pub const DEFAULT_WATERMARK_BOOST_FACTOR: usize = 15_000;

/// The largest boost any zone reaches, whatever the factor (the sysctl takes any `int`): far
/// above any zone, and low enough that a boosted mark stays within what the watermark tests
/// add without overflowing (`page_alloc::MAX_WMARK_PAGES`).
pub const MAX_BOOST_PAGES: usize = 1 << 48;

/// `mult_frac(x, numer, denom)`: `x * numer / denom` without overflowing the product first.
#[must_use]
pub const fn mult_frac(x: usize, numer: usize, denom: usize) -> usize {
    let (quot, rem) = (x / denom, x % denom);
    quot.saturating_mul(numer).saturating_add(rem.saturating_mul(numer) / denom)
}

/// The largest boost a zone may reach (`boost_watermark`'s `max_boost`), or 0 if it never
/// boosts: `factor` 0, a zone of fewer than four pageblocks of managed pages, or a high
/// watermark that gives 0.
#[must_use]
pub const fn max_boost(high: usize, managed: usize, pageblock_pages: usize, factor: usize) -> usize {
    if factor == 0 || pageblock_pages.saturating_mul(4) > managed {
        return 0;
    }
    let max = mult_frac(high, factor, 10_000);
    if max == 0 {
        return 0;
    }
    let max = if max > pageblock_pages { max } else { pageblock_pages };
    if max < MAX_BOOST_PAGES { max } else { MAX_BOOST_PAGES }
}

/// One zone's boost state (`zone->watermark_boost` and what bounds it), kept under the zone lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Boost {
    /// `zone->watermark_boost`, in pages.
    pub(crate) pages: usize,
    /// The most [`Self::boost`] raises it to (0: boosting off for the zone).
    pub(crate) max: usize,
    /// A boost happened since the last [`Self::take_event`].
    event: bool,
}

impl Boost {
    /// No boost, and none allowed until [`Self::configure`].
    #[must_use]
    pub(crate) const fn new() -> Self {
        Self { pages: 0, max: 0, event: false }
    }

    /// New watermarks (`__setup_per_zone_wmarks`): the boost starts again from 0, bounded by
    /// `max` ([`max_boost`] of the new high mark).
    pub(crate) fn configure(&mut self, max: usize) {
        self.pages = 0;
        self.max = max;
    }

    /// `boost_watermark`: one fragmentation event. Returns whether the zone boosts (the
    /// kernel's return value; the boost may already be at its bound).
    pub(crate) fn boost(&mut self, pageblock_pages: usize) -> bool {
        if self.max == 0 {
            return false;
        }
        self.pages = self.pages.saturating_add(pageblock_pages).min(self.max);
        self.event = true;
        true
    }

    /// Whether a boost happened since the last call (`ZONE_BOOSTED_WATERMARK`, tested and
    /// cleared by the allocation that set it).
    pub(crate) fn take_event(&mut self) -> bool {
        core::mem::take(&mut self.event)
    }

    /// The end of a kswapd run that started with `seen` pages of boost: they are taken back
    /// (`watermark_boost -= min(watermark_boost, zone_boosts[i])`).
    pub(crate) fn reclaimed(&mut self, seen: usize) {
        self.pages -= self.pages.min(seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mult_frac_is_exact_and_does_not_overflow() {
        assert_eq!(mult_frac(1000, 15_000, 10_000), 1500);
        assert_eq!(mult_frac(7, 3, 2), 10, "7 * 3 / 2 rounded down");
        assert_eq!(mult_frac(usize::MAX / 2, 2, 4), usize::MAX / 4, "no overflow of x * numer");
    }

    #[test]
    fn max_boost_follows_boost_watermark() {
        // 150 % of the high mark by default.
        assert_eq!(max_boost(1000, 100_000, 512, DEFAULT_WATERMARK_BOOST_FACTOR), 1500);
        // At least a pageblock.
        assert_eq!(max_boost(100, 100_000, 512, DEFAULT_WATERMARK_BOOST_FACTOR), 512);
        // Off: factor 0, a zone under four pageblocks, a high mark of 0.
        assert_eq!(max_boost(1000, 100_000, 512, 0), 0);
        assert_eq!(max_boost(1000, 2047, 512, DEFAULT_WATERMARK_BOOST_FACTOR), 0);
        assert_eq!(max_boost(1000, 2048, 512, DEFAULT_WATERMARK_BOOST_FACTOR), 1500);
        assert_eq!(max_boost(0, 100_000, 512, DEFAULT_WATERMARK_BOOST_FACTOR), 0);
        // A factor so small the product rounds to 0.
        assert_eq!(max_boost(5, 100_000, 512, 1), 0);
        // The largest factor on the largest mark stays bounded.
        assert_eq!(max_boost(1 << 48, usize::MAX, 512, i32::MAX as usize), MAX_BOOST_PAGES);
    }

    #[test]
    fn boost_steps_by_a_pageblock_to_its_bound_and_kswapd_takes_back_what_it_saw() {
        let mut b = Boost::new();
        assert!(!b.boost(512), "an unconfigured zone never boosts");
        assert!(!b.take_event());
        b.configure(max_boost(1000, 100_000, 512, DEFAULT_WATERMARK_BOOST_FACTOR));
        assert!(b.boost(512));
        assert_eq!(b.pages, 512);
        assert!(b.take_event());
        assert!(!b.take_event(), "taken once");
        let seen = b.pages;
        assert!(b.boost(512) && b.boost(512));
        assert_eq!(b.pages, 1500, "capped at max_boost");
        b.reclaimed(seen);
        assert_eq!(b.pages, 988, "what kswapd saw is gone; the rest waits");
        b.reclaimed(seen * 4);
        assert_eq!(b.pages, 0);
        b.boost(512);
        b.max = max_boost(1000, 100_000, 512, 0);
        assert_eq!((b.pages, b.max), (512, 0), "a factor of 0 stops new boosts only");
        assert!(!b.boost(512));
        b.configure(max_boost(1000, 100_000, 512, DEFAULT_WATERMARK_BOOST_FACTOR));
        assert_eq!(b.pages, 0, "new watermarks start unboosted");
    }
}
