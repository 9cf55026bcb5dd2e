//! `alloc_pages` and the slow path (`__alloc_pages_slowpath`): kswapd wake-up, reserve
//! access, direct reclaim, the retry decisions of §2.8, OOM and sleeping until a free.
//!
//! A `__GFP_NOFAIL` request entering the slow path is checked first, as in v6.18: order above
//! 1, no `__GFP_DIRECT_RECLAIM`, or a caller in reclaim (`PF_MEMALLOC`) each warn once per
//! allocator (§2.8 step 5).
//!
//! Give-up table (PA-13, PA-14), as implemented here:
//! - no `__GFP_DIRECT_RECLAIM`: fail after one slow-path freelist attempt, never sleep (with
//!   `__GFP_NOFAIL` too: the kernel returns NULL for it as well, after its warning);
//! - `__GFP_NORETRY`: fail after one reclaim pass;
//! - costly order (> 3) without `__GFP_RETRY_MAYFAIL`, or without `__GFP_IO` (it could not
//!   compact: `gfp_compaction_allowed`, the kernel's `CONFIG_COMPACTION=y` flow): fail after
//!   one reclaim pass;
//! - `__GFP_RETRY_MAYFAIL`: fail after `MAX_RECLAIM_RETRIES` passes without progress (at once
//!   when no shrinker has anything to free), no OOM;
//! - otherwise (order ≤ 3): the OOM step on every pass that reaches it (`oom.rs`: one request
//!   at a time, the others wait for a free and retry; a last look above the high watermark) — the OOM notifiers;
//!   if they freed anything that is progress (no report, retry at once); without `__GFP_FS`
//!   (`GFP_NOFS`, `GFP_NOIO`) it is progress too, with no report (nothing to kill for IO-less
//!   reclaim), and the request sleeps until a free wakes us and retries; else the OOM report
//!   (once per request) and sleep until a free wakes us;
//! - every request without `__GFP_NOFAIL` gives up once it has spent `oom_timeout` in the slow
//!   path (after at least one full pass) — kmem's deviation, there is no process to kill;
//! - `__GFP_NOFAIL` with direct reclaim: never fails; it keeps sleeping and retrying; after
//!   each OOM step it may take any free page (`ALLOC_NO_WATERMARKS`, as `__alloc_pages_may_oom`
//!   helps it), where the OOM step is skipped it may dip into half the min reserve
//!   (`ALLOC_MIN_RESERVE`, the `nopage:` try), and from inside reclaim it waits for frees.

use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::oom::{MayOom, OomStep};
use super::{PageAllocator, ZoneList};
use crate::AllocError;
use crate::gfp::{
    __GFP_BITS_MASK, __GFP_DIRECT_RECLAIM, __GFP_IO, __GFP_NOFAIL, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN,
    __GFP_RETRY_MAYFAIL, __GFP_THISNODE, Gfp,
};
use crate::memmap::Page;
use crate::order::{MAX_PAGE_ORDER, PAGE_ALLOC_COSTLY_ORDER};
use crate::platform::{Context, Level, Platform};
use crate::reclaim::{DEF_PRIORITY, do_shrink_slab};
use crate::watermark::{alloc_flags as af, gfp_pfmemalloc_flags, gfp_to_alloc_flags, usable_free, zone_watermark_ok};
use crate::zone::{MAX_NR_ZONES, MIGRATE_PCPTYPES, MigrateType, Wmark, Zone, ZoneType};

/// `gfp &= gfp_allowed_mask`, as `__alloc_frozen_pages_noprof` starts: bits above
/// `__GFP_BITS_MASK` (the mask's value after boot; kmem has no boot phase) never reach the
/// allocator's decisions, reclaim, the shrinkers or a report's flags. Applied where the general
/// path starts: the fast path reads no bit above the mask, so it pays nothing for it.
#[inline(always)]
pub(super) const fn gfp_allowed(gfp: Gfp) -> Gfp {
    gfp.intersection(__GFP_BITS_MASK)
}

/// `MAX_RECLAIM_RETRIES`.
pub const MAX_RECLAIM_RETRIES: u32 = 16;
/// `SWAP_CLUSTER_MAX`: the pages one direct-reclaim pass aims for (`nr_to_reclaim`).
const SWAP_CLUSTER_MAX: usize = 32;
/// Longest single sleep while waiting for a free; the waiter then re-checks and re-requests drains.
const WAIT_SLICE_NS: u64 = 50_000_000;

impl<P: Platform> PageAllocator<P> {
    /// `alloc_pages(gfp, order)`: a naturally aligned block of `1 << order` pages with one
    /// reference, or `Err` (the kernel's NULL) after the retry rules of §2.8.
    ///
    /// # Errors
    /// When no memory could be found within what `gfp` allows, for an order above
    /// `MAX_PAGE_ORDER` (PA-1), or for an invalid zone combination in `gfp` (GFP-2).
    #[track_caller]
    #[inline(always)]
    pub fn alloc_pages(&self, gfp: Gfp, order: u32) -> Result<&Page, AllocError> {
        self.alloc_pages_at(gfp, order, Location::caller())
    }

    #[inline(always)]
    pub(crate) fn alloc_pages_at(&self, gfp: Gfp, order: u32, caller: &Location<'_>) -> Result<&Page, AllocError> {
        // The fast path reads nothing above `__GFP_BITS_MASK` (zone, mobility, `__GFP_COLD`,
        // `__GFP_COMP`, zeroing), so the mask is applied where the general path starts.
        if let Some(cpu) = self.platform.plain_cpu()
            && let Some((pfn, zi)) = self.alloc_fast(gfp, order, cpu)
        {
            return self.prep_new_page_in(pfn, order, gfp, zi).ok_or(AllocError);
        }
        self.alloc_pages_general(gfp, order, self.platform.context(), caller)
    }

    /// [`Self::alloc_pages`] for a caller that has read its context already (the slab
    /// allocator's slow path): `ctx` stands for [`Platform::plain_cpu`] and
    /// [`Platform::context`], which it answers the same way, so neither is asked again.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn alloc_pages_ctx(&self, gfp: Gfp, order: u32, ctx: &Context) -> Result<&Page, AllocError> {
        self.alloc_pages_ctx_at(gfp, order, ctx, Location::caller())
    }

    /// [`Self::alloc_pages_ctx`] in one frame: the fast path and the general path with the
    /// first part of the slow path, so a caller that has no page coming (an exhausted
    /// machine) makes one call, and its own code stays free of the page allocator's. The order
    /// and zone checks, the fault-injection switch and the first zone's low-watermark test are
    /// made once for both paths.
    #[inline(never)]
    fn alloc_pages_ctx_at(
        &self,
        gfp: Gfp,
        order: u32,
        ctx: &Context,
        caller: &Location<'_>,
    ) -> Result<&Page, AllocError> {
        let ctx = *ctx;
        let zl = self.check_request(gfp, order, ctx.cpu, caller)?;
        let inject = self.fail_page_alloc.enabled();
        let plain = if ctx.atomic || ctx.noio || ctx.nofs { None } else { ctx.cpu };
        // Zones at the head of the zonelist the fast path found below the low watermark: the
        // general path's first pass starts after them, so each zone is tested once at the low
        // watermark, as `__alloc_pages`' single first pass does.
        let mut tested = 0;
        if !inject
            && let Some(cpu) = plain
            && let Some(first) = zl.first()
        {
            let zone = &self.zones[first];
            if !zone.watermark_fast(order, zl.highest, crate::zone::Wmark::Low as u32) {
                tested = 1;
            } else if let Some((pfn, zi)) = self.alloc_fast_from(zone, gfp, order, zl, cpu) {
                return self.prep_new_page_in(pfn, order, gfp, zi).ok_or(AllocError);
            }
        }
        // The fast part above read nothing above `__GFP_BITS_MASK`; the rest sees no such bit.
        let gfp = self.prepare_checked(gfp_allowed(gfp), order, ctx, inject, caller)?;
        self.alloc_pages_prepared(gfp, order, zl, tested, ctx.cpu, caller)
    }

    /// An allocation `fail_page_alloc` does not see (otherwise `alloc_pages`): memory the
    /// kernel sets aside at boot, which kmem takes on first use instead (a kmalloc cache's
    /// structure). `gfp` must not ask for HighMem (the caller uses the page's address).
    #[cold]
    #[track_caller]
    pub(crate) fn alloc_pages_boot(&self, gfp: Gfp, order: u32) -> Result<&Page, AllocError> {
        let caller = Location::caller();
        let ctx = self.platform.context();
        let gfp = gfp_allowed(gfp);
        let zl = self.check_request(gfp, order, ctx.cpu, caller)?;
        let gfp = self.prepare_checked(gfp, order, ctx, false, caller)?;
        self.alloc_pages_prepared(gfp, order, zl, 0, ctx.cpu, caller)
    }

    /// The common case in as few steps as possible: a caller on CPU slot `cpu` with no context
    /// modifier ([`Platform::plain_cpu`]), fault injection off, and the first zone of the
    /// zonelist above its low watermark; per-CPU orders pop this CPU's list, larger ones take
    /// the zone lock (`rmqueue_buddy`, with its per-order watermark test). Anything else
    /// returns `None` and the general path decides (it repeats no side effect of this one; a
    /// block found bad when taken is reported and leaked here, and the general path takes
    /// another, PA-16).
    #[inline(always)]
    fn alloc_fast(&self, gfp: Gfp, order: u32, cpu: usize) -> Option<(usize, usize)> {
        if order > MAX_PAGE_ORDER || self.fail_page_alloc.enabled() {
            return None;
        }
        let zl = &self.zonelists[gfp.zone().ok()? as usize];
        let zone = &self.zones[zl.first()?];
        if !zone.watermark_fast(order, zl.highest, crate::zone::Wmark::Low as u32) {
            return None;
        }
        self.alloc_fast_from(zone, gfp, order, zl, cpu)
    }

    /// [`Self::alloc_fast`] after its checks: a valid order, fault injection off, `zone` the
    /// first zone of `zl` (the zonelist of `gfp`), above its low watermark.
    #[inline(always)]
    fn alloc_fast_from(
        &self,
        zone: &crate::zone::Zone,
        gfp: Gfp,
        order: u32,
        zl: &ZoneList,
        cpu: usize,
    ) -> Option<(usize, usize)> {
        let pfn = if order <= crate::pcp::PCP_MAX_ORDER && self.pcp_enabled {
            // The per-CPU list (refilled in a batch when empty, as `rmqueue_bulk` does); a
            // slot held by a drainer or a failed refill leaves the decision to the general path.
            // (The refill adds `ALLOC_KSWAPD` from `gfp`.)
            let flags = af::WMARK_LOW | zl.nofragment;
            self.rmqueue_pcplist(cpu, zone, order, gfp.migratetype(), gfp, flags)??
        } else {
            self.rmqueue_buddy(zone, order, gfp.migratetype(), zl.first_pass_flags(gfp), zl)?
        };
        if self.has_reference(pfn) {
            // `check_new_pages` (PA-16): reported and leaked; the general path takes another.
            self.bad_new_page(pfn, order, zone.kind as usize);
            return None;
        }
        Some((pfn, zone.kind as usize))
    }

    #[inline(never)]
    fn alloc_pages_general(
        &self,
        gfp: Gfp,
        order: u32,
        ctx: Context,
        caller: &Location<'_>,
    ) -> Result<&Page, AllocError> {
        let (gfp, zl) = self.prepare_alloc(gfp_allowed(gfp), order, ctx, caller)?;
        self.alloc_pages_prepared(gfp, order, zl, 0, ctx.cpu, caller)
    }

    /// The general path after `prepare_alloc_pages`: the freelist pass at the low watermark
    /// (from the zonelist's zone `skip`: the ones before it were found below it already), then
    /// the slow path, then the new page's preparation.
    #[inline(always)]
    fn alloc_pages_prepared(
        &self,
        gfp: Gfp,
        order: u32,
        zl: &ZoneList,
        skip: usize,
        cpu: Option<usize>,
        caller: &Location<'_>,
    ) -> Result<&Page, AllocError> {
        let pfn = match self.get_page_from_freelist_from(gfp, order, zl.first_pass_flags(gfp), zl, skip, cpu) {
            Some(pfn) => pfn,
            None => self.alloc_slowpath(gfp, order, zl, cpu, caller)?,
        };
        self.prep_new_page(pfn, order, gfp).ok_or(AllocError)
    }

    /// `prepare_alloc_pages`: order check, scope, zonelist, `might_sleep`, fault injection.
    #[inline(always)]
    pub(super) fn prepare_alloc(
        &self,
        gfp: Gfp,
        order: u32,
        ctx: Context,
        caller: &Location<'_>,
    ) -> Result<(Gfp, &ZoneList), AllocError> {
        let zl = self.check_request(gfp, order, ctx.cpu, caller)?;
        let gfp = self.prepare_checked(gfp, order, ctx, self.fail_page_alloc.enabled(), caller)?;
        Ok((gfp, zl))
    }

    /// The first checks of `prepare_alloc_pages`, which the fast path makes too: the order
    /// (PA-1) and the zone combination (GFP-2). Returns the zonelist of `gfp` (the scope
    /// applied later does not change it).
    #[inline(always)]
    fn check_request(
        &self,
        gfp: Gfp,
        order: u32,
        cpu: Option<usize>,
        caller: &Location<'_>,
    ) -> Result<&ZoneList, AllocError> {
        if order > MAX_PAGE_ORDER {
            return Err(self.fail_order(gfp_allowed(gfp), order, cpu, caller));
        }
        match gfp.zone() {
            Ok(zone) => Ok(&self.zonelists[zone as usize]),
            Err(bad) => Err(self.fail_bad_zone(bad, cpu, caller)),
        }
    }

    /// The rest of `prepare_alloc_pages` after [`Self::check_request`]: scope, `might_sleep`,
    /// fault injection (`inject`: [`FaultAttr::enabled`](crate::fault::FaultAttr::enabled), as
    /// the caller read it). Returns the request's flags with the scope and context applied.
    #[inline(always)]
    fn prepare_checked(
        &self,
        gfp: Gfp,
        order: u32,
        ctx: Context,
        inject: bool,
        caller: &Location<'_>,
    ) -> Result<Gfp, AllocError> {
        let mut gfp = if ctx.noio || ctx.nofs { gfp.with_scope(ctx.noio, ctx.nofs) } else { gfp };
        if ctx.atomic && gfp.allow_blocking() {
            self.report_might_sleep(caller);
            // Sleeping here could deadlock the caller's "spin lock": the request goes on
            // without direct reclaim instead (documented deviation).
            gfp = gfp.difference(__GFP_DIRECT_RECLAIM);
        }
        if inject && let Some(verbose) = self.fail_page_alloc.should_fail_alloc_page(gfp, order) {
            self.report_fault(verbose, caller);
            self.count_alloc_fail(ctx.cpu);
            return Err(AllocError);
        }
        Ok(gfp)
    }

    /// `WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp)` and NULL (PA-1): the warning once per
    /// allocator; a request with `__GFP_NOWARN` neither prints it nor uses it up.
    #[cold]
    fn fail_order(&self, gfp: Gfp, order: u32, cpu: Option<usize>, caller: &Location<'_>) -> AllocError {
        self.refuse_order(gfp, order, cpu, caller);
        AllocError
    }

    /// [`Self::fail_order`]'s warning and count, for a caller that refuses the order itself
    /// (`kmalloc` of more than `KMALLOC_MAX_SIZE`, whose pages would come from here); returns
    /// whether the warning printed now.
    #[cold]
    pub(crate) fn refuse_order(&self, gfp: Gfp, order: u32, cpu: Option<usize>, caller: &Location<'_>) -> bool {
        let printed = !gfp.contains(__GFP_NOWARN)
            && self.warn_once(
                super::reports::once::ORDER,
                "__alloc_frozen_pages_noprof",
                format_args!("order {order} > MAX_PAGE_ORDER ({MAX_PAGE_ORDER})"),
                caller,
            );
        self.count_alloc_fail(cpu);
        printed
    }

    #[cold]
    fn fail_bad_zone(&self, bad: crate::gfp::BadGfpZone, cpu: Option<usize>, caller: &Location<'_>) -> AllocError {
        // The report shows the flags as the kernel's `gfp_zone` sees them: after the mask.
        let bad = crate::gfp::BadGfpZone { flags: gfp_allowed(bad.flags) };
        self.platform.log(Level::Err, format_args!("BUG: {bad}\n  at {caller}"));
        self.count_alloc_fail(cpu);
        AllocError
    }

    /// `__alloc_pages_slowpath` up to the first decision that needs direct reclaim: the
    /// slow-path flags, the kswapd wake-up, the freelist retry with them, the reserve retry
    /// (`__gfp_pfmemalloc_flags`) and, without `__GFP_DIRECT_RECLAIM`, the failure. What
    /// follows (reclaim, OOM, waiting) is [`Self::alloc_slowpath_reclaim`], out of line, so
    /// the common failing path of a request that cannot reclaim stays small. `cpu` is the
    /// caller's CPU slot as its context read it.
    #[inline(always)]
    fn alloc_slowpath(
        &self,
        gfp: Gfp,
        order: u32,
        zl: &ZoneList,
        cpu: Option<usize>,
        caller: &Location<'_>,
    ) -> Result<usize, AllocError> {
        if gfp.contains(__GFP_NOFAIL) {
            self.warn_nofail(gfp, order, caller);
        }
        // `ALLOC_MIN_RESERVE` for a realtime task's blocking request (asked only when it counts).
        let rt_task = gfp.contains(__GFP_DIRECT_RECLAIM) && self.platform.rt_task();
        let mut flags = gfp_to_alloc_flags(gfp, order, rt_task);
        if flags & af::KSWAPD != 0 {
            self.wake_kswapd(order, zl.highest, cpu);
        }
        if let Some(pfn) = self.get_page_from_freelist(gfp, order, flags, zl, cpu) {
            return Ok(pfn);
        }
        // The first `retry:` pass. kswapd is awake already, and the request has not spent
        // any time here yet (no `oom_timeout` check).
        let reserve = self.reserve_flags(gfp);
        if reserve != 0 {
            flags = (flags & !af::WMARK_MASK & !af::CPUSET) | reserve;
            if let Some(pfn) = self.get_page_from_freelist(gfp, order, flags, zl, self.platform.cpu()) {
                return Ok(pfn);
            }
        }
        if !gfp.contains(__GFP_DIRECT_RECLAIM) {
            return Err(self.alloc_failed(gfp, order, cpu, caller));
        }
        self.alloc_slowpath_reclaim(gfp, order, flags, zl, caller)
    }

    /// `__gfp_pfmemalloc_flags` for this caller (`__GFP_NOMEMALLOC` answers without asking
    /// the platform whether the caller is in reclaim).
    #[inline(always)]
    fn reserve_flags(&self, gfp: Gfp) -> u32 {
        if gfp.contains(__GFP_NOMEMALLOC) { 0 } else { gfp_pfmemalloc_flags(gfp, self.platform.in_reclaim()) }
    }

    /// The `fail:` label: counted (on the caller's CPU slot `cpu`, if any), then `warn_alloc`.
    #[inline(always)]
    fn alloc_failed(&self, gfp: Gfp, order: u32, cpu: Option<usize>, caller: &Location<'_>) -> AllocError {
        self.count_alloc_fail(cpu);
        self.warn_alloc(gfp, order, caller);
        AllocError
    }

    /// The rest of the slow path for a request that may reclaim, entered after the first
    /// `retry:` pass found no page (`flags` as that pass left them): direct reclaim, the retry
    /// decisions, OOM, waiting, and every later `retry:` pass.
    #[cold]
    #[inline(never)]
    fn alloc_slowpath_reclaim(
        &self,
        gfp: Gfp,
        order: u32,
        mut flags: u32,
        zl: &ZoneList,
        caller: &Location<'_>,
    ) -> Result<usize, AllocError> {
        let highest = zl.highest;
        let costly = order > PAGE_ALLOC_COSTLY_ORDER;
        let mut no_progress_loops = 0;
        // The clock starts here: the first pass got past the no-reclaim exit.
        let start = self.platform.now_ns();
        let mut oom_reported = false;
        // The first pass's `retry:` head ran in `alloc_slowpath`.
        let mut head_done = true;
        loop {
            if !core::mem::take(&mut head_done) {
                // `retry:`. kmem's bound (docs/deviations.md): a request that may fail gives
                // up once it has spent `oom_timeout` here, even while reclaim keeps reporting
                // progress (other threads' frees count as progress) — but only after at least
                // one full pass.
                if !gfp.contains(__GFP_NOFAIL)
                    && self.platform.now_ns().saturating_sub(start) >= self.oom_timeout_ns.load(Relaxed)
                {
                    break;
                }
                if flags & af::KSWAPD != 0 {
                    self.wake_kswapd(order, highest, self.platform.cpu());
                }
                let reserve = self.reserve_flags(gfp);
                if reserve != 0 {
                    flags = (flags & !af::WMARK_MASK & !af::CPUSET) | reserve;
                    if let Some(pfn) = self.get_page_from_freelist(gfp, order, flags, zl, self.platform.cpu()) {
                        return Ok(pfn);
                    }
                }
            }
            if self.platform.in_reclaim() {
                // No reclaim from inside reclaim. `__GFP_NOFAIL` still must not fail: it waits
                // for frees, as the kernel keeps looping.
                if gfp.contains(__GFP_NOFAIL) {
                    if let Some(pfn) = self.wait_for_free(gfp, order, flags, zl) {
                        return Ok(pfn);
                    }
                    continue;
                }
                break;
            }
            let progress = self.direct_reclaim(gfp, highest);
            if let Some(pfn) = self.get_page_from_freelist(gfp, order, flags, zl, self.platform.cpu()) {
                return Ok(pfn);
            }
            // `__alloc_pages_direct_reclaim`: reclaim made progress and still nothing: give
            // back a high-atomic pageblock (a zone's last one is kept) and try once more.
            if progress
                && self.unreserve_highatomic_pageblock(zl, gfp.migratetype(), false)
                && let Some(pfn) = self.get_page_from_freelist(gfp, order, flags, zl, self.platform.cpu())
            {
                return Ok(pfn);
            }
            if gfp.contains(__GFP_NORETRY) && !gfp.contains(__GFP_NOFAIL) {
                break;
            }
            // "Do not retry costly high order allocations unless they are __GFP_RETRY_MAYFAIL
            // and we can compact" (6.8+, CONFIG_COMPACTION=y: `gfp_compaction_allowed` is
            // `__GFP_IO`; kmem has no compaction, but follows the kernel's decision).
            let can_compact = gfp.contains(__GFP_IO);
            if costly && (!can_compact || !gfp.contains(__GFP_RETRY_MAYFAIL)) && !gfp.contains(__GFP_NOFAIL) {
                break;
            }
            // `should_reclaim_retry`: retry while progress is made; with nothing left to
            // reclaim, retrying cannot help.
            if progress && !costly {
                no_progress_loops = 0;
            } else if !progress && self.reclaimable_objects() == 0 {
                no_progress_loops = MAX_RECLAIM_RETRIES + 1;
            } else {
                no_progress_loops += 1;
            }
            if progress && no_progress_loops <= MAX_RECLAIM_RETRIES {
                continue;
            }
            // `should_reclaim_retry`'s "before OOM, exhaust highatomic_reserve": a block given
            // back (even a zone's last) is a reason to retry.
            if self.unreserve_highatomic_pageblock(zl, gfp.migratetype(), true) {
                continue;
            }
            if gfp.contains(__GFP_RETRY_MAYFAIL) && !gfp.contains(__GFP_NOFAIL) {
                if no_progress_loops > MAX_RECLAIM_RETRIES {
                    break;
                }
                continue;
            }
            // Not for costly, RETRY_MAYFAIL, THISNODE, lowmem-only (`__alloc_pages_may_oom`), NORETRY (`nopage:`).
            let no_oom = __GFP_NORETRY | __GFP_RETRY_MAYFAIL | __GFP_THISNODE;
            let oom_allowed = !costly && !gfp.intersects(no_oom) && highest >= ZoneType::Normal;
            if !oom_allowed && !gfp.contains(__GFP_NOFAIL) {
                break;
            }
            if oom_allowed {
                match self.may_oom(gfp, order, zl, caller, &mut oom_reported) {
                    MayOom::Page(pfn) => return Ok(pfn),
                    MayOom::Step(OomStep::Freed) => {
                        // "Retry as long as the OOM killer is making progress".
                        no_progress_loops = 0;
                        if let Some(pfn) = self.get_page_from_freelist(gfp, order, flags, zl, self.platform.cpu()) {
                            return Ok(pfn);
                        }
                        continue;
                    }
                    // Progress too, but nothing was freed: the request waits for frees below
                    // and retries, until `oom_timeout` ends it (docs/deviations.md). Also when
                    // another request holds `oom_lock` ("somebody else is making progress for
                    // us"; the kernel sleeps a jiffy, this sleep ends at a free or a slice).
                    MayOom::Busy | MayOom::Step(OomStep::IoLess) => no_progress_loops = 0,
                    MayOom::Step(OomStep::NoVictim) => {}
                }
            } else if gfp.contains(__GFP_NOFAIL) {
                // `nopage:` for NOFAIL (the OOM step was skipped: a costly order, `__GFP_THISNODE`
                // or a lowmem-only request): one try with half the min reserve and nothing else
                // of the request's flags (`__alloc_pages_cpuset_fallback(…, ALLOC_MIN_RESERVE)`:
                // no `ALLOC_KSWAPD`), then wait and retry.
                if let Some(pfn) = self.get_page_from_freelist(gfp, order, af::MIN_RESERVE, zl, self.platform.cpu()) {
                    return Ok(pfn);
                }
            }
            if let Some(pfn) = self.wait_for_free(gfp, order, flags, zl) {
                return Ok(pfn);
            }
        }
        Err(self.alloc_failed(gfp, order, self.platform.cpu(), caller))
    }

    /// Sleeps until another context frees pages (or a slice passes), then tries again.
    fn wait_for_free(&self, gfp: Gfp, order: u32, flags: u32, zl: &ZoneList) -> Option<usize> {
        let ticket = self.waitq.prepare_locked();
        // The `waitq` handshake: pass through the lock of every zone a free could wake us for.
        for zi in zl.iter() {
            drop(self.zones[zi].lock());
        }
        // Pages parked on other CPUs' lists come back on their owners' next operation.
        self.drain_all_pages();
        let result = self.get_page_from_freelist(gfp, order, flags, zl, self.platform.cpu()).or_else(|| {
            self.stats.sleeps.fetch_add(1, Relaxed);
            self.platform.wait(self.waitq.word(), ticket, WAIT_SLICE_NS);
            self.get_page_from_freelist(gfp, order, flags, zl, self.platform.cpu())
        });
        self.waitq.finish();
        result
    }

    /// One direct-reclaim pass (`try_to_free_pages`): the shrinkers at falling priority,
    /// from [`DEF_PRIORITY`] to 0, until `SWAP_CLUSTER_MAX` pages came back
    /// (`do_try_to_free_pages`), then every CPU's lists. Progress is measured in pages, as the
    /// kernel's `nr_reclaimed`: free pages went up, or pages came off per-CPU lists; it ends a
    /// hopeless node (`kswapd_failures = 0`, as `shrink_node` does for any reclaimer). Counted
    /// in `allocstall` under the request's `highest` zone (the kernel's `sc->reclaim_idx`).
    fn direct_reclaim(&self, gfp: Gfp, highest: ZoneType) -> bool {
        self.stats.allocstall[highest as usize].fetch_add(1, Relaxed);
        let scope = ReclaimScope::enter(&self.platform);
        let before = self.total_free();
        for priority in (0..=DEF_PRIORITY).rev() {
            self.shrink_slab(gfp, priority);
            if self.total_free().saturating_sub(before) >= SWAP_CLUSTER_MAX {
                break;
            }
        }
        let drained = self.drain_all_pages();
        drop(scope);
        self.reclaimed(drained > 0 || self.total_free() > before)
    }

    /// Records a reclaim pass's outcome: progress resets `kswapd_failures`. Returns `progress`.
    fn reclaimed(&self, progress: bool) -> bool {
        if progress {
            self.kswapd_failures.store(0, Relaxed);
        }
        progress
    }

    /// `pgdat->kswapd_failures`: background reclaim runs in a row that started without a boost
    /// and ended without reclaiming anything (reset by any reclaim that makes progress).
    pub fn kswapd_failures(&self) -> u32 {
        self.kswapd_failures.load(Relaxed)
    }

    /// The node is hopeless (`kswapd_failures >= MAX_RECLAIM_RETRIES`): `wakeup_kswapd` leaves
    /// it to direct reclaim, and kswapd goes back to sleep without a run
    /// (`prepare_kswapd_sleep`).
    pub fn kswapd_hopeless(&self) -> bool {
        self.kswapd_failures() >= MAX_RECLAIM_RETRIES
    }

    /// Objects the shrinkers say they could free now (the reclaimable part of
    /// `should_reclaim_retry`), saturating: a shrinker's count is its own to choose.
    fn reclaimable_objects(&self) -> usize {
        let mut n = 0usize;
        self.shrinkers.for_each(|s| n = n.saturating_add(s.count_objects()));
        n
    }

    /// `shrink_slab`: every shrinker's part of a reclaim pass at `priority` ([`do_shrink_slab`]:
    /// `(count >> priority) * 4 / seeks` objects plus the shrinker's deferred work, in batches).
    /// Returns objects freed.
    fn shrink_slab(&self, gfp: Gfp, priority: u32) -> usize {
        let mut freed = 0usize;
        self.shrinkers.for_each_with_counter(|s, deferred| {
            freed = freed.saturating_add(do_shrink_slab(s, deferred, gfp, priority))
        });
        freed
    }

    /// Frees everything the shrinkers can (`drop_slab`, `echo 2 > drop_caches`): passes at
    /// priority 0 (twice each count, in batches) until one frees next to nothing. Returns
    /// objects freed.
    pub fn shrink_all(&self, gfp: Gfp) -> usize {
        self.stats.drop_slab.fetch_add(1, Relaxed);
        let mut total = 0usize;
        let mut shift = 0u32;
        loop {
            let freed = self.shrink_slab(gfp, 0);
            total = total.saturating_add(freed);
            if freed.checked_shr(shift).unwrap_or(0) <= 1 {
                return total;
            }
            shift += 1;
        }
    }

    /// `wakeup_kswapd`: records the request's `order` and `highest` zone for kswapd's next run
    /// (the largest of each since its last one), then wakes kswapd, counted on the caller's CPU
    /// slot `cpu` (if any), unless the node is hopeless ([`Self::kswapd_hopeless`]: "leave it
    /// to direct reclaim") or balanced for this request ([`Self::pgdat_balanced`]: some zone it
    /// may use passes its high watermark at `order`). On the slow path's first pass every zone
    /// has failed its low watermark for the request, so the test matters there for higher
    /// orders (a zone with free pages but no free block of the order wakes kswapd); on the
    /// retries after reclaim, a zone between its low and high watermarks wakes it too.
    #[inline(always)]
    fn wake_kswapd(&self, order: u32, highest: ZoneType, cpu: Option<usize>) {
        let idx = highest as u32;
        let curr = self.kswapd_highest_zoneidx.load(Relaxed);
        if curr == MAX_NR_ZONES as u32 || curr < idx {
            self.kswapd_highest_zoneidx.store(idx, Relaxed);
        }
        if self.kswapd_order.load(Relaxed) < order {
            self.kswapd_order.store(order, Relaxed);
        }
        // A balanced node still needs kswapd while a zone it may use is boosted.
        if !self.kswapd_hopeless() && (!self.pgdat_balanced(order, highest) || self.pgdat_watermark_boosted(highest)) {
            self.count_kswapd_wakeup(cpu);
            self.platform.wake_kswapd();
        }
    }

    /// The end of an allocation whose fallback boosted `zone`'s watermarks, for a request that
    /// may wake kswapd (`ZONE_BOOSTED_WATERMARK` in `rmqueue`): `wakeup_kswapd(zone, 0, 0,
    /// zone_idx(zone))`, "as the node may be balanced overall and kswapd will not wake
    /// naturally".
    #[cold]
    #[inline(never)]
    pub(super) fn wake_kswapd_for_boost(&self, zone: ZoneType) {
        self.wake_kswapd(0, zone, self.platform.cpu());
    }

    /// `pgdat_watermark_boosted`: some populated zone up to `highest` has a boost.
    fn pgdat_watermark_boosted(&self, highest: ZoneType) -> bool {
        self.zones[..=highest as usize].iter().any(|z| z.managed > 0 && z.watermark_boost() != 0)
    }

    /// `pgdat_balanced`: some populated zone up to `highest` passes the high watermark for
    /// `order` (`zone_watermark_ok_safe` with that zone's `lowmem_reserve[highest]`); with no
    /// populated zone there, the node is balanced.
    fn pgdat_balanced(&self, order: u32, highest: ZoneType) -> bool {
        if order == 0 {
            // The common case (every order-0 slow path wakes through here), inlined: no zone
            // lock, no free-list scan, so it needs no saved registers.
            return self.any_zone_passes_high(highest, |zone, mark, reserve| {
                zone_watermark_ok(zone.usable_free_pages(0), 0, mark, reserve, 0, |_| true)
            });
        }
        self.pgdat_balanced_high_order(order, highest)
    }

    /// [`Self::pgdat_balanced`] for `order > 0`: the free lists decide (under the zone lock).
    #[inline(never)]
    fn pgdat_balanced_high_order(&self, order: u32, highest: ZoneType) -> bool {
        self.any_zone_passes_high(highest, |zone, mark, reserve| {
            let area = zone.lock();
            zone_watermark_ok(
                usable_free(area.nr_free_pages, area.nr_free_highatomic, 0),
                order,
                mark,
                reserve,
                0,
                |o| MigrateType::ALL[..MIGRATE_PCPTYPES].iter().any(|&t| area.has_free_at(o, t)),
            )
        })
    }

    /// Whether `passes(zone, high watermark, lowmem_reserve[highest])` holds for some populated
    /// zone up to `highest`, or there is none.
    #[inline(always)]
    fn any_zone_passes_high(&self, highest: ZoneType, passes: impl Fn(&Zone, usize, usize) -> bool) -> bool {
        let mut eligible = false;
        for zone in self.zones[..=highest as usize].iter().filter(|z| z.managed > 0) {
            eligible = true;
            if passes(zone, zone.wmark(Wmark::High), zone.lowmem_reserve(highest)) {
                return true;
            }
        }
        !eligible
    }

    /// What the background reclaimer runs (`balance_pgdat`) for the order and highest zone the
    /// wakers asked for since the last run (taken and reset here, as `kswapd` does; none: order
    /// 0, every zone): reclaim passes at falling priority, from [`DEF_PRIORITY`] down to 1
    /// (kmem has no LRU scan rate to hold the priority up), each the shrinkers at that priority
    /// (the first also every CPU's lists), until the node is balanced (`pgdat_balanced`:
    /// some eligible zone above its high watermark) and no boost is left to reclaim. Returns
    /// whether the node is balanced at the end. A run that gave up with nothing reclaimed
    /// raises `kswapd_failures` (see [`Self::kswapd_hopeless`]) unless it started boosted; one
    /// that reclaimed something resets it.
    ///
    /// Boosts (`boost.rs`): the run first reclaims the pages of boost the eligible zones have
    /// ("boosted reclaim": the priority held at `DEF_PRIORITY - 2` while it makes progress,
    /// stopped by a pass that frees nothing), unless the node is unbalanced, which restarts it
    /// as an ordinary run. At the end each zone's boost loses what the run saw at its start.
    /// Progress against the boost is the pages the pass added to the free lists, less those
    /// drained from per-CPU lists (which the kernel's boosted reclaim does not drain).
    ///
    /// A boosted run that frees nothing is no failure: 6.18 counts it as one, so that on a node
    /// with nothing to reclaim sixteen boosts make kswapd give up and every later boost stays
    /// for good; the follow-up upstream patch ("don't count boosted reclaim as a failure", after
    /// 6.18) does not, and neither does kmem, whose boosted reclaim has only the shrinkers.
    pub fn kswapd_balance(&self) -> bool {
        self.stats.kswapd_rounds.fetch_add(1, Relaxed);
        let order = self.kswapd_order.swap(0, Relaxed);
        let highest = match self.kswapd_highest_zoneidx.swap(MAX_NR_ZONES as u32, Relaxed) {
            idx if (idx as usize) < MAX_NR_ZONES => ZoneType::ALL[idx as usize],
            _ => ZoneType::ALL[MAX_NR_ZONES - 1],
        };
        let seen: [usize; MAX_NR_ZONES] = core::array::from_fn(|i| {
            let zone = &self.zones[i];
            if i <= highest as usize && zone.managed > 0 { zone.watermark_boost() } else { 0 }
        });
        self.balance_passes(order, highest, seen.iter().sum());
        for (zone, &boost) in self.zones.iter().zip(&seen).filter(|&(_, &b)| b > 0) {
            let mut area = zone.lock();
            area.boost.reclaimed(boost);
            zone.publish(&area);
        }
        self.pgdat_balanced(order, highest)
    }

    /// The passes of [`Self::kswapd_balance`], with `boost` pages of boost to reclaim first.
    fn balance_passes(&self, order: u32, highest: ZoneType, mut boost: usize) {
        let boosted = boost > 0;
        let mut reclaimed = false;
        let mut priority = DEF_PRIORITY;
        loop {
            let balanced = self.pgdat_balanced(order, highest);
            if !balanced && boost > 0 {
                // "If the pgdat is imbalanced then ignore boosting ... and restart."
                boost = 0;
                priority = DEF_PRIORITY;
                continue;
            }
            if balanced && boost == 0 {
                return;
            }
            let boosting = boost > 0;
            let scope = ReclaimScope::enter(&self.platform);
            let before = self.total_free();
            self.shrink_slab(crate::gfp::GFP_KERNEL, priority);
            // Pages parked on per-CPU lists come back once per run (and once more on a restart).
            let drained = if priority == DEF_PRIORITY { self.drain_all_pages() } else { 0 };
            drop(scope);
            let freed = self.total_free().saturating_sub(before);
            reclaimed |= self.reclaimed(drained > 0 || freed > 0);
            let freed = freed.saturating_sub(drained);
            boost -= boost.min(freed);
            if boost > 0 && freed == 0 {
                // "If reclaim made no progress for a boost, stop reclaim."
                break;
            }
            // "Limit the priority of boosting to avoid reclaim writeback."
            let hold = boosting && priority == DEF_PRIORITY - 2;
            if !hold {
                if priority == 1 {
                    break;
                }
                priority -= 1;
            }
        }
        if !reclaimed && !boosted {
            self.kswapd_failures.fetch_add(1, Relaxed);
        }
    }
}

/// The caller marked as reclaiming (`PF_MEMALLOC`) while this lives; the drop restores the
/// mark, also when a shrinker's panic unwinds (a thread left marked takes every reserve).
struct ReclaimScope<'a, P: Platform> {
    platform: &'a P,
    was: bool,
}

impl<'a, P: Platform> ReclaimScope<'a, P> {
    fn enter(platform: &'a P) -> Self {
        Self { platform, was: platform.set_in_reclaim(true) }
    }
}

impl<P: Platform> Drop for ReclaimScope<'_, P> {
    fn drop(&mut self) {
        self.platform.set_in_reclaim(self.was);
    }
}
