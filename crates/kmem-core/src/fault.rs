//! Fault injection: `fail_page_alloc`, `failslab`, `fail_mempool_alloc` and
//! `fail_mempool_alloc_bulk` with the kernel's knobs (`lib/fault-inject.c`,
//! `Documentation/fault-injection/fault-injection.rst`).
//!
//! The decision follows `should_fail_ex`: probability 0 never fails; `times` (−1 unlimited)
//! counts the failures left; `space` is a budget consumed before failures start (in the units
//! the caller passes: pages for `fail_page_alloc`, `1 << order` per request, and bytes for
//! `failslab`, the object size, as the kernel's callers pass them);
//! `interval` fails only every n-th eligible call; then `probability` percent fail.
//! `fail_page_alloc` adds its filters first: orders below `min_order`, `__GFP_NOFAIL`, and
//! (when set) requests with `__GFP_HIGHMEM` or `__GFP_DIRECT_RECLAIM` never fail. The mempool
//! points have no filters (`DECLARE_FAULT_ATTR`, [`FaultAttr::new`]) and consume `space` by 1
//! per decision, as `mm/mempool.c` passes `should_fail_ex(attr, 1, FAULT_NOWARN)`.
//!
//! The page allocator and the slab allocator keep their attributes themselves; the mempool
//! points, whose pools have no machine-wide object in the core, are the [`Platform`]'s
//! ([`FaultPoint`], `Platform::fault_attr`).
//!
//! [`Platform`]: crate::platform::Platform

use core::fmt;
use core::panic::Location;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_HIGHMEM, __GFP_NOFAIL, __GFP_NOWARN, Gfp};
use crate::platform::{Level, Platform};

/// The knobs of one fault-injection point (`struct fault_attr`), shared between threads.
pub struct FaultAttr {
    /// The probability (percent) in the bits of `PROBABILITY`, and above them a count of
    /// holds (`FaultAttr::hold`): one word, so that a fast path asks both with one load
    /// ([`FaultAttr::diverts`]).
    probability: AtomicU32,
    interval: AtomicU64,
    times: AtomicI64,
    /// `times` as the last failure found it, for its report.
    dump_times: AtomicI64,
    space: AtomicI64,
    verbose: AtomicU32,
    count: AtomicU64,
    rng: AtomicU64,
    /// `ignore-gfp-wait` (`ignore_gfp_reclaim`): requests that may sleep never fail.
    pub ignore_gfp_reclaim: core::sync::atomic::AtomicBool,
    /// `ignore-gfp-highmem`: requests with `__GFP_HIGHMEM` never fail.
    pub ignore_gfp_highmem: core::sync::atomic::AtomicBool,
    /// `min-order`: smaller orders never fail.
    pub min_order: AtomicU32,
    /// Failures injected so far (for tests and statistics).
    pub injected: AtomicUsize,
    /// failslab's `cache-filter`: only caches with `SLAB_FAILSLAB` fail.
    pub cache_filter: core::sync::atomic::AtomicBool,
}

/// The bits of `FaultAttr::probability` that hold the probability (0..=100); the bits above
/// count holds, one `HOLD` each.
const PROBABILITY: u32 = 0xff;
/// One hold in `FaultAttr::probability`.
const HOLD: u32 = 0x100;

/// A fault-injection point whose attribute the platform keeps (`Platform::fault_attr`): the
/// debugfs directories of subsystems that have no machine-wide object of their own in the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultPoint {
    /// `fail_mempool_alloc`: `mempool_alloc` skips `alloc_fn` and goes to the reserve.
    FailMempoolAlloc,
    /// `fail_mempool_alloc_bulk`: `mempool_alloc_bulk` skips `alloc_fn` for the whole array
    /// once and goes to the reserve.
    FailMempoolAllocBulk,
}

impl FaultPoint {
    /// The debugfs directory's name (`/sys/kernel/debug/<name>`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            FaultPoint::FailMempoolAlloc => "fail_mempool_alloc",
            FaultPoint::FailMempoolAllocBulk => "fail_mempool_alloc_bulk",
        }
    }
}

/// Which options a point's spec takes besides `verbose` ([`FaultAttr::parse_with`]).
#[derive(Clone, Copy)]
enum Keys {
    /// None (the mempool points).
    Plain,
    /// `fail_page_alloc`'s GFP and order filters.
    PageAlloc,
    /// `failslab`'s `ignore-gfp-wait` and `cache-filter`.
    Failslab,
}

/// A bad fault-injection setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFaultSpec(pub &'static str);

impl fmt::Display for BadFaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl core::error::Error for BadFaultSpec {}

impl Default for FaultAttr {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultAttr {
    /// `DECLARE_FAULT_ATTR` (`FAULT_ATTR_INITIALIZER`): off, interval 1, times 1, verbose 2,
    /// no filters. The mempool points start so.
    #[must_use]
    pub const fn new() -> Self {
        let mut attr = Self::fail_page_alloc_defaults();
        attr.ignore_gfp_reclaim = core::sync::atomic::AtomicBool::new(false);
        attr.ignore_gfp_highmem = core::sync::atomic::AtomicBool::new(false);
        attr.min_order = AtomicU32::new(0);
        attr
    }

    /// The `fail_page_alloc` defaults: off, interval 1, times 1, ignore-gfp-wait and
    /// ignore-gfp-highmem on, min-order 1.
    #[must_use]
    pub const fn fail_page_alloc_defaults() -> Self {
        Self {
            probability: AtomicU32::new(0),
            interval: AtomicU64::new(1),
            times: AtomicI64::new(1),
            dump_times: AtomicI64::new(1),
            space: AtomicI64::new(0),
            verbose: AtomicU32::new(2),
            count: AtomicU64::new(0),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            ignore_gfp_reclaim: core::sync::atomic::AtomicBool::new(true),
            ignore_gfp_highmem: core::sync::atomic::AtomicBool::new(true),
            min_order: AtomicU32::new(1),
            injected: AtomicUsize::new(0),
            cache_filter: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The `failslab` defaults: off, interval 1, times 1, ignore-gfp-wait on, cache-filter off
    /// (`mm/failslab.c`).
    #[must_use]
    pub const fn failslab_defaults() -> Self {
        let mut attr = Self::fail_page_alloc_defaults();
        attr.ignore_gfp_highmem = core::sync::atomic::AtomicBool::new(false);
        attr.min_order = AtomicU32::new(0);
        attr
    }

    /// Sets `probability` (percent, 0..=100), `interval` (≥ 1), `times` (−1 = unlimited) and
    /// `space` (pages for `fail_page_alloc`, bytes for `failslab`) at once, like the boot parameter `fail_page_alloc=<interval>,<probability>,<space>,<times>`.
    ///
    /// # Errors
    /// A probability above 100 or an interval of 0.
    pub fn configure(&self, interval: u64, probability: u32, space: i64, times: i64) -> Result<(), BadFaultSpec> {
        if probability > 100 {
            return Err(BadFaultSpec("probability must be 0..=100"));
        }
        if interval == 0 {
            return Err(BadFaultSpec("interval must be at least 1"));
        }
        self.interval.store(interval, Relaxed);
        // The holds stay as they are.
        let _ = self.probability.fetch_update(Relaxed, Relaxed, |w| Some((w & !PROBABILITY) | probability));
        self.space.store(space, Relaxed);
        self.times.store(times, Relaxed);
        self.count.store(0, Relaxed);
        Ok(())
    }

    /// Sets `verbose` (0: silent, 1: one line, 2: line and stack).
    pub fn set_verbose(&self, verbose: u32) {
        self.verbose.store(verbose, Relaxed);
    }

    /// Parses `<interval>,<probability>,<space>,<times>[,key=value…]` where the keys are
    /// `fail_page_alloc`'s: `ignore-gfp-wait`, `ignore-gfp-highmem`, `min-order`, `verbose`.
    ///
    /// # Errors
    /// Names the field that is missing or not a number, or the unknown key.
    pub fn parse_and_apply(&self, spec: &str) -> Result<(), BadFaultSpec> {
        self.parse_with(spec, Keys::PageAlloc)
    }

    /// [`Self::parse_and_apply`] with `failslab`'s keys (`mm/failslab.c`): `ignore-gfp-wait`,
    /// `cache-filter`, `verbose`.
    ///
    /// # Errors
    /// As [`Self::parse_and_apply`]; `min-order` and `ignore-gfp-highmem` are unknown here.
    pub fn parse_and_apply_failslab(&self, spec: &str) -> Result<(), BadFaultSpec> {
        self.parse_with(spec, Keys::Failslab)
    }

    /// [`Self::parse_and_apply`] for an attribute without GFP filters (`fail_mempool_alloc`,
    /// `fail_mempool_alloc_bulk`): `<interval>,<probability>,<space>,<times>[,verbose=N]`.
    /// (The mempool passes `FAULT_NOWARN`, so `verbose` is kept but prints nothing.)
    ///
    /// # Errors
    /// As [`Self::parse_and_apply`]; the filter keys are unknown here.
    pub fn parse_and_apply_plain(&self, spec: &str) -> Result<(), BadFaultSpec> {
        self.parse_with(spec, Keys::Plain)
    }

    /// The parser of every form; `keys` says which options the point has.
    fn parse_with(&self, spec: &str, keys: Keys) -> Result<(), BadFaultSpec> {
        let mut parts = spec.split(',').map(str::trim);
        let mut num = |what: &'static str| -> Result<i64, BadFaultSpec> {
            parts.next().ok_or(BadFaultSpec(what))?.parse::<i64>().map_err(|_| BadFaultSpec(what))
        };
        let interval = num("interval (1st field) must be an integer")?;
        let probability = num("probability (2nd field) must be an integer")?;
        let space = num("space (3rd field) must be an integer")?;
        let times = num("times (4th field) must be an integer")?;
        if interval < 1 {
            return Err(BadFaultSpec("interval must be at least 1"));
        }
        if !(0..=100).contains(&probability) {
            return Err(BadFaultSpec("probability must be 0..=100"));
        }
        let mut opts = [None; 5];
        for opt in parts {
            let (key, value) = opt.split_once('=').ok_or(BadFaultSpec("options must be key=value"))?;
            let value: u32 = value.parse().map_err(|_| BadFaultSpec("option value must be an integer"))?;
            let slot = match (keys, key) {
                (_, "verbose") => 3,
                (Keys::PageAlloc | Keys::Failslab, "ignore-gfp-wait") => 0,
                (Keys::PageAlloc, "ignore-gfp-highmem") => 1,
                (Keys::PageAlloc, "min-order") => 2,
                (Keys::Failslab, "cache-filter") => 4,
                (Keys::Plain, _) => return Err(BadFaultSpec("unknown option (verbose is the only one)")),
                (Keys::Failslab, _) => {
                    return Err(BadFaultSpec("unknown option (ignore-gfp-wait, cache-filter, verbose)"));
                }
                (Keys::PageAlloc, _) => {
                    return Err(BadFaultSpec(
                        "unknown option (ignore-gfp-wait, ignore-gfp-highmem, min-order, verbose)",
                    ));
                }
            };
            opts[slot] = Some(value);
        }
        self.configure(interval as u64, probability as u32, space, times)?;
        if let Some(v) = opts[0] {
            self.ignore_gfp_reclaim.store(v != 0, Relaxed);
        }
        if let Some(v) = opts[1] {
            self.ignore_gfp_highmem.store(v != 0, Relaxed);
        }
        if let Some(v) = opts[2] {
            self.min_order.store(v, Relaxed);
        }
        if let Some(v) = opts[3] {
            self.verbose.store(v, Relaxed);
        }
        if let Some(v) = opts[4] {
            self.cache_filter.store(v != 0, Relaxed);
        }
        Ok(())
    }

    /// Whether this point can fail at all (probability above 0).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.probability.load(Relaxed) & PROBABILITY != 0
    }

    /// Whether a fast path must leave its requests to the slow path: this point can fail
    /// ([`FaultAttr::enabled`]) or something in the crate holds it (the slab's userspace-shim
    /// hooks, while a cache has them on). One load, as `enabled` cost before holds existed.
    #[inline(always)]
    pub fn diverts(&self) -> bool {
        self.probability.load(Relaxed) != 0
    }

    /// Takes a hold: [`FaultAttr::diverts`] answers true until it is released, whatever the
    /// probability. For another check that only the slow path makes (the slab's userspace-shim
    /// hooks hold `failslab`'s attribute while a cache has them on). At most one hold per
    /// cache, so the 2^24 the word counts are never reached.
    pub(crate) fn hold(&self) {
        let before = self.probability.fetch_add(HOLD, Relaxed);
        debug_assert!(before < u32::MAX - HOLD, "FaultAttr: too many holds");
    }

    /// Releases a hold taken with [`FaultAttr::hold`].
    pub(crate) fn release(&self) {
        let before = self.probability.fetch_sub(HOLD, Relaxed);
        debug_assert!(before >= HOLD, "FaultAttr: release without a hold");
    }

    /// `should_fail_alloc_page`: the filters, then [`FaultAttr::should_fail`]. Returns
    /// `Some(verbose)` when this request must fail (and how loudly), `None` otherwise.
    #[inline]
    pub fn should_fail_alloc_page(&self, gfp: Gfp, order: u32) -> Option<u32> {
        if !self.enabled() {
            return None;
        }
        if order < self.min_order.load(Relaxed) || gfp.contains(__GFP_NOFAIL) {
            return None;
        }
        if self.ignore_gfp_highmem.load(Relaxed) && gfp.contains(__GFP_HIGHMEM) {
            return None;
        }
        if self.ignore_gfp_reclaim.load(Relaxed) && gfp.contains(__GFP_DIRECT_RECLAIM) {
            return None;
        }
        // `mm/fail_page_alloc.c` passes the request's size in pages.
        let fail = self.should_fail(1i64 << order)?;
        Some(if gfp.contains(__GFP_NOWARN) { 0 } else { fail })
    }

    /// `should_fail_ex` for a request of `size` bytes: `Some(verbose)` if it must fail.
    pub fn should_fail(&self, size: i64) -> Option<u32> {
        let probability = self.probability.load(Relaxed) & PROBABILITY;
        if probability == 0 || self.times.load(Relaxed) == 0 {
            return None;
        }
        let space = self.space.load(Relaxed);
        if space > size {
            self.space.fetch_sub(size, Relaxed);
            return None;
        }
        let interval = self.interval.load(Relaxed);
        if interval > 1 {
            let count = self.count.fetch_add(1, Relaxed) + 1;
            if !count.is_multiple_of(interval) {
                return None;
            }
        }
        if probability <= self.random_below_100() {
            return None;
        }
        // `fail_dump` runs before `times` is decremented: the report shows the value that let
        // this failure through.
        let times = self.times.load(Relaxed);
        self.dump_times.store(times, Relaxed);
        if times > 0 {
            self.times.fetch_sub(1, Relaxed);
        }
        self.injected.fetch_add(1, Relaxed);
        Some(self.verbose.load(Relaxed))
    }

    /// The report line `fail_dump` prints for the failure just decided (with `times` as it was
    /// before that failure used one up).
    pub fn describe(&self, f: &mut dyn fmt::Write, name: &str) -> fmt::Result {
        write!(
            f,
            "FAULT_INJECTION: forcing a failure.\nname {name}, interval {}, probability {}, space {}, times {}",
            self.interval.load(Relaxed),
            self.probability.load(Relaxed) & PROBABILITY,
            self.space.load(Relaxed),
            self.dump_times.load(Relaxed)
        )
    }

    /// `fail_dump` for the failure just decided, `verbose` as [`FaultAttr::should_fail`]
    /// returned it: with 1 or more the two lines of [`FaultAttr::describe`] at `KERN_NOTICE`,
    /// above 1 the stack too (`dump_stack`, naming `caller`).
    pub(crate) fn dump<P: Platform>(&self, platform: &P, name: &str, verbose: u32, caller: &Location<'_>) {
        if verbose == 0 {
            return;
        }
        platform.log(Level::Notice, format_args!("{}", crate::page_alloc::Show(|f| self.describe(f, name))));
        if verbose > 1 {
            platform.dump_stack(caller);
        }
    }

    fn random_below_100(&self) -> u32 {
        // xorshift64*: a fixed seed keeps runs reproducible; the update races benignly.
        let mut x = self.rng.load(Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Relaxed);
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::*;

    #[test]
    fn defaults_never_fail() {
        let attr = FaultAttr::fail_page_alloc_defaults();
        for order in 0..10 {
            assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC, order), None);
        }
    }

    #[test]
    fn probability_100_with_times_and_filters() {
        let attr = FaultAttr::fail_page_alloc_defaults();
        attr.configure(1, 100, 0, 2).unwrap();
        assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC, 0), None, "min-order 1 by default");
        assert_eq!(attr.should_fail_alloc_page(GFP_KERNEL, 1), None, "ignore-gfp-wait by default");
        assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC | __GFP_HIGHMEM, 1), None, "ignore-gfp-highmem");
        assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC | __GFP_NOFAIL, 1), None, "never NOFAIL");
        assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC, 1), Some(2));
        assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC | __GFP_NOWARN, 1), Some(0), "NOWARN: silent");
        assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC, 1), None, "times exhausted");
        assert_eq!(attr.injected.load(Relaxed), 2);
    }

    #[test]
    fn interval_and_space() {
        let attr = FaultAttr::fail_page_alloc_defaults();
        attr.configure(3, 100, 8192, -1).unwrap();
        // `space` passes requests while it exceeds their size: 8192 > 4096 once (space drops
        // to 4096, which is not > 4096). From then on every third call fails.
        let results: std::vec::Vec<bool> = (0..8).map(|_| attr.should_fail(4096).is_some()).collect();
        assert_eq!(results, [false, false, false, true, false, false, true, false]);
    }

    #[test]
    fn fail_page_alloc_space_counts_pages() {
        // `mm/fail_page_alloc.c` passes `1 << order`: a space of 8 lets three order-1 requests
        // through (8 → 6 → 4 → 2) and the fourth fails (2 is not > 2).
        let attr = FaultAttr::fail_page_alloc_defaults();
        attr.configure(1, 100, 8, 1).unwrap();
        let results: std::vec::Vec<bool> =
            (0..4).map(|_| attr.should_fail_alloc_page(GFP_ATOMIC, 1).is_some()).collect();
        assert_eq!(results, [false, false, false, true]);
    }

    #[test]
    fn the_dump_shows_times_before_the_failure_used_one() {
        let attr = FaultAttr::fail_page_alloc_defaults();
        attr.configure(1, 100, 0, 2).unwrap();
        assert!(attr.should_fail_alloc_page(GFP_ATOMIC, 1).is_some());
        let mut text = std::string::String::new();
        attr.describe(&mut text, "fail_page_alloc").unwrap();
        assert!(text.ends_with("interval 1, probability 100, space 0, times 2"), "{text}");
        assert!(attr.should_fail_alloc_page(GFP_ATOMIC, 1).is_some());
        text.clear();
        attr.describe(&mut text, "fail_page_alloc").unwrap();
        assert!(text.ends_with("times 1"), "{text}");
        assert_eq!(attr.should_fail_alloc_page(GFP_ATOMIC, 1), None, "times used up");
    }

    #[test]
    fn parse_spec_and_errors() {
        let attr = FaultAttr::fail_page_alloc_defaults();
        attr.parse_and_apply("1,100,0,-1,ignore-gfp-wait=0,min-order=0,verbose=0").unwrap();
        assert_eq!(attr.should_fail_alloc_page(GFP_KERNEL, 0), Some(0));
        assert_eq!(attr.parse_and_apply("x,1,0,1").unwrap_err().0, "interval (1st field) must be an integer");
        assert!(attr.parse_and_apply("1,101,0,1").is_err());
        assert!(attr.parse_and_apply("1,10,0").is_err());
        assert!(attr.parse_and_apply("1,10,0,1,bogus=1").is_err());
        assert!(attr.parse_and_apply("0,10,0,1").is_err());
    }

    #[test]
    fn plain_attribute_has_no_filters_and_refuses_their_keys() {
        let attr = FaultAttr::new();
        assert!(!attr.enabled(), "off by default");
        attr.parse_and_apply_plain("1,100,0,2,verbose=0").unwrap();
        // No GFP filter: a request that may sleep fails too (`should_fail_ex` of the mempool).
        assert_eq!(attr.should_fail_alloc_page(GFP_KERNEL, 0), Some(0));
        assert!(attr.should_fail(1).is_some());
        assert_eq!(attr.should_fail(1), None, "times used up");
        for spec in ["1,100,0,1,ignore-gfp-wait=0", "1,100,0,1,min-order=1", "1,100,0,1,ignore-gfp-highmem=1"] {
            assert_eq!(attr.parse_and_apply_plain(spec).unwrap_err().0, "unknown option (verbose is the only one)");
        }
        assert!(attr.parse_and_apply_plain("1,101,0,1").is_err());
        assert_eq!(FaultPoint::FailMempoolAlloc.name(), "fail_mempool_alloc");
    }

    #[test]
    fn holds_divert_without_failing_and_survive_a_configure() {
        let attr = FaultAttr::failslab_defaults();
        assert!(!attr.diverts());
        attr.hold();
        attr.hold();
        assert!(attr.diverts() && !attr.enabled(), "held, not failing");
        assert_eq!(attr.should_fail(1), None);
        attr.configure(1, 100, 0, -1).unwrap();
        assert!(attr.enabled() && attr.should_fail(1).is_some());
        let mut text = std::string::String::new();
        attr.describe(&mut text, "failslab").unwrap();
        assert!(text.contains("probability 100,"), "{text}");
        attr.configure(1, 0, 0, -1).unwrap();
        assert!(attr.diverts() && !attr.enabled(), "the holds outlive the probability");
        attr.release();
        assert!(attr.diverts());
        attr.release();
        assert!(!attr.diverts());
    }

    #[test]
    fn probability_is_roughly_honoured() {
        let attr = FaultAttr::fail_page_alloc_defaults();
        attr.configure(1, 30, 0, -1).unwrap();
        let fails = (0..10_000).filter(|_| attr.should_fail(4096).is_some()).count();
        assert!((2_000..4_000).contains(&fails), "{fails} of 10000 at 30 %");
    }
}
