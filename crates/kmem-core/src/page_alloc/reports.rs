//! The allocator's reports, in the kernel's words: `warn_alloc` (PA-15), the `WARN_ON_ONCE`
//! sites, bad page state (PA-16), `might_sleep`, the OOM report, fault-injection dumps.

use core::fmt;
use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::PageAllocator;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_NOWARN, Gfp};
use crate::memmap::{Page, pg};
use crate::platform::{Level, Platform, Task};
use crate::proc;
use crate::report::Verdict;
use crate::zone::ZoneType;

/// `page_bad_reason(page, PAGE_FLAGS_CHECK_AT_FREE)`: why a page whose last reference was
/// just dropped may not be freed, if it may not. As in the kernel, when several things are
/// wrong the last of mapcount, mapping, `_refcount`, flags is named.
pub(super) fn free_page_bad_reason(page: &Page) -> Option<&'static str> {
    let mut reason = None;
    if page.mapcount() != 0 {
        reason = Some("nonzero mapcount");
    }
    if page.mapping() != 0 {
        reason = Some("non-NULL mapping");
    }
    if page.refcount() != 0 {
        reason = Some("nonzero _refcount");
    }
    if page.info() & pg::CHECK_AT_FREE != 0 {
        reason = Some("PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
    }
    reason
}

/// The page allocator's `WARN_ON_ONCE` sites: bits of `PageAllocator::warned`. The kernel
/// keeps one flag per call site for the whole system; kmem keeps one per allocator (machine).
pub mod once {
    /// `WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp)` in `__alloc_frozen_pages_noprof`.
    pub const ORDER: u16 = 1 << 0;
    /// `WARN_ON_ONCE(gfp_mask & (__GFP_COMP | __GFP_HIGHMEM))` in `alloc_pages_exact`.
    pub const EXACT_FLAGS: u16 = 1 << 1;
    /// `WARN_ON_ONCE(order > 1)` for `__GFP_NOFAIL` in `__alloc_pages_slowpath`.
    pub const NOFAIL_ORDER: u16 = 1 << 2;
    /// `WARN_ON_ONCE(!can_direct_reclaim)` for `__GFP_NOFAIL`.
    pub const NOFAIL_NO_RECLAIM: u16 = 1 << 3;
    /// `WARN_ON_ONCE(current->flags & PF_MEMALLOC)` for `__GFP_NOFAIL`.
    pub const NOFAIL_MEMALLOC: u16 = 1 << 4;
    /// `WARN_ON_ONCE(!(flags & __GFP_NOWARN))` for a size above `INT_MAX` in
    /// `__kvmalloc_node_noprof` (the `kmem` crate's kvmalloc shares these bits).
    pub const KVMALLOC_TOO_LARGE: u16 = 1 << 5;
    /// `WARN_ON_ONCE(s->ctor && (flags & __GFP_ZERO))` in `new_slab` (the slab allocator
    /// shares these bits).
    pub const SLAB_CTOR_ZERO: u16 = 1 << 6;
    /// `WARN_ON_ONCE(addr < PAGE_OFFSET)` in `kunmap_local_indexed` (the `kmem` crate's
    /// highmem shares these bits): a `kunmap_local` of no kmap mapping and no kernel address.
    pub const KUNMAP_LOCAL_USER: u16 = 1 << 7;
    /// `WARN_ON_ONCE(s->sheaf_capacity == 0 && !(s->flags & SLAB_DEBUG_FLAGS))` in
    /// `kmem_cache_prefill_sheaf` (6.18; the slab allocator shares these bits).
    pub const SHEAF_NO_CAPACITY: u16 = 1 << 8;
    /// `WARN_ON_ONCE(size > zone->nr_reserved_highatomic)` in `unreserve_highatomic_pageblock`.
    pub const UNRESERVE_SIZE: u16 = 1 << 9;
    /// `WARN_ON_ONCE(addr != __fix_to_virt(FIX_KMAP_BEGIN + idx))` in `kunmap_local_indexed`
    /// (the `kmem` crate's highmem shares these bits): a local mapping released out of order.
    pub const KUNMAP_LOCAL_ORDER: u16 = 1 << 10;
}

/// Formats with a closure (a `Display` without allocating).
pub(crate) struct Show<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(pub F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Show<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

impl<P: Platform> PageAllocator<P> {
    fn with_task<R>(&self, f: impl FnOnce(Task<'_>) -> R) -> R {
        crate::report::with_task(&self.platform, f)
    }

    /// `warn_alloc`: one rate-limited report (10 s, burst 1) unless `__GFP_NOWARN` (PA-15).
    /// `__GFP_NOWARN` is tested before the message is built: the common silent failure
    /// costs one test.
    #[inline(always)]
    pub(super) fn warn_alloc(&self, gfp: Gfp, order: u32, caller: &Location<'_>) {
        if !gfp.contains(__GFP_NOWARN) {
            self.warn_alloc_order(gfp, order, caller);
        }
    }

    #[cold]
    #[inline(never)]
    fn warn_alloc_order(&self, gfp: Gfp, order: u32, caller: &Location<'_>) {
        self.warn_alloc_msg(gfp, format_args!("page allocation failure: order:{order}"), caller);
    }

    /// `warn_alloc(gfp, NULL, fmt, ...)` with the caller's message (vmalloc's reports share the
    /// rate limit and the layout of the page allocator's).
    pub(crate) fn warn_alloc_msg(&self, gfp: Gfp, msg: fmt::Arguments<'_>, caller: &Location<'_>) {
        if gfp.contains(__GFP_NOWARN) {
            return;
        }
        let Verdict::Print { missed } = self.warn_rs.check(self.platform.now_ns()) else { return };
        if let Some(n) = missed {
            self.platform.log(Level::Warning, format_args!("warn_alloc: {n} callbacks suppressed"));
        }
        // `warn_alloc` prints the line and `cpuset_print_current_mems_allowed` continues it
        // (`pr_cont`, since 4.19); the `CPU:` line is `dump_stack`'s.
        self.with_task(|task| {
            self.platform.log(
                Level::Warning,
                format_args!("{}: {msg}, mode:{gfp:?}, nodemask=(null),cpuset=/,mems_allowed=0", task.comm),
            );
        });
        self.platform.dump_stack(caller);
        self.show_mem(self.report_max_zone(gfp));
    }

    /// `WARN_ON_ONCE` at `site` (a [`once`] bit), in `func`: the first time for this allocator
    /// only, `WARNING: CPU: N at <caller> <func>: <what>` and the stack dump. Returns whether it
    /// printed.
    #[cold]
    #[inline(never)]
    pub fn warn_once(&self, site: u16, func: &str, what: fmt::Arguments<'_>, caller: &Location<'_>) -> bool {
        if self.warned.load(Relaxed) & site != 0 || self.warned.fetch_or(site, Relaxed) & site != 0 {
            return false;
        }
        self.platform.log(
            Level::Warning,
            format_args!("WARNING: CPU: {} at {caller} {func}: {what}", self.platform.cpu().unwrap_or(0)),
        );
        self.platform.dump_stack(caller);
        true
    }

    /// The `__GFP_NOFAIL` sanity checks at the entry of `__alloc_pages_slowpath` (§2.8 step 5,
    /// v6.18): plain `WARN_ON_ONCE`s, so `__GFP_NOWARN` does not silence them.
    /// [`Platform::in_reclaim`] stands for `current->flags & PF_MEMALLOC`.
    #[cold]
    #[inline(never)]
    pub(super) fn warn_nofail(&self, gfp: Gfp, order: u32, caller: &Location<'_>) {
        const FUNC: &str = "__alloc_pages_slowpath";
        if order > 1 {
            self.warn_once(once::NOFAIL_ORDER, FUNC, format_args!("__GFP_NOFAIL with order {order} > 1"), caller);
        }
        if !gfp.contains(__GFP_DIRECT_RECLAIM) {
            self.warn_once(
                once::NOFAIL_NO_RECLAIM,
                FUNC,
                format_args!("__GFP_NOFAIL without __GFP_DIRECT_RECLAIM"),
                caller,
            );
        }
        if self.platform.in_reclaim() {
            self.warn_once(once::NOFAIL_MEMALLOC, FUNC, format_args!("__GFP_NOFAIL in a PF_MEMALLOC context"), caller);
        }
    }

    /// `__show_mem(…, max_zone_idx)`: the Mem-Info block of reports, covering the zones up to
    /// `max_zone` (see [`proc::show_mem`]), with the counters of the layers above (the slab
    /// pages) from the registered shrinkers ([`crate::reclaim::Shrinker::fill_meminfo`]), as
    /// `/proc/meminfo` has them.
    pub fn show_mem(&self, max_zone: ZoneType) {
        let mut extra = proc::MeminfoExtra::default();
        self.shrinkers.for_each(|s| s.fill_meminfo(&mut extra));
        self.platform.log(Level::Warning, format_args!("{}", Show(|f| proc::show_mem(self, &extra, max_zone, f))));
    }

    /// `gfp_zone(gfp)` as the reports pass it to `__show_mem`: the highest zone the request may
    /// use on this machine (a zone modifier naming an absent zone means Normal, as the kernel's
    /// `OPT_ZONE_*` do). An invalid modifier combination shows every zone.
    fn report_max_zone(&self, gfp: Gfp) -> ZoneType {
        gfp.zone().map_or(ZoneType::Movable, |kind| self.zonelists[kind as usize].highest)
    }

    /// `bad_page`: the page is reported and leaked, never reused (PA-16). Rate limit: 60
    /// reports, then quiet for a minute; the first report after the quiet minute is preceded
    /// by `BUG: Bad page state: N messages suppressed`.
    pub(super) fn report_bad_page(&self, pfn: usize, reason: &str, caller: &Location<'_>) {
        if !self.count_bad_page() {
            return;
        }
        let page = self.mm.page(pfn);
        self.with_task(|task| {
            self.platform.log(
                Level::Alert,
                format_args!(
                    "BUG: Bad page state in process {}  pfn:{pfn:05x}\npage: refcount:{} mapcount:{} mapping:{:016x} index:0x0 pfn:{pfn:#x}\nflags: {:#x}\npage dumped because: {reason}",
                    task.comm,
                    page.refcount(),
                    page.mapcount(),
                    page.mapping(),
                    page.flags(),
                ),
            );
        });
        self.platform.dump_stack(caller);
    }

    /// `check_new_page` found the block `pfn` of `order`, just taken off a free list of zone
    /// `zone`, holding a reference (`nonzero _refcount`): reported, and leaked rather than
    /// handed out (PA-16). Called after the zone lock or CPU slot is released.
    #[cold]
    #[inline(never)]
    #[track_caller]
    pub(super) fn bad_new_page(&self, pfn: usize, order: u32, zone: usize) {
        self.mm.page(pfn).reset_bad_new(order, zone);
        self.report_bad_page(pfn, "nonzero _refcount", Location::caller());
    }

    /// Counts a bad page or bad free and applies the shared rate limit (60 reports, then a quiet
    /// minute, announcing how many were suppressed). Returns whether to print this one.
    fn count_bad_page(&self) -> bool {
        self.stats.bad_pages.fetch_add(1, Relaxed);
        match self.bad_page_rs.check(self.platform.now_ns()) {
            Verdict::Suppress => false,
            Verdict::Print { missed } => {
                if let Some(n) = missed {
                    self.platform.log(Level::Alert, format_args!("BUG: Bad page state: {n} messages suppressed"));
                }
                true
            }
        }
    }

    /// A free that cannot be carried out at all (unknown page, impossible order).
    pub(crate) fn report_bad_free(&self, pfn: Option<usize>, order: u32, what: &str, caller: &Location<'_>) {
        if !self.count_bad_page() {
            return;
        }
        match pfn {
            Some(pfn) => self.platform.log(
                Level::Err,
                format_args!("BUG: free_pages: pfn:{pfn:05x} order:{order}: {what}; ignored\n  at {caller}"),
            ),
            None => self
                .platform
                .log(Level::Err, format_args!("BUG: free_pages: order:{order}: {what}; ignored\n  at {caller}")),
        }
    }

    /// `might_sleep()` for callers outside the page allocator (`kmap`): reports a call that may
    /// sleep made in atomic context, with the same report and rate limit as a sleeping
    /// allocation. Returns whether the caller is in atomic context.
    #[track_caller]
    pub fn might_sleep(&self) -> bool {
        let atomic = self.platform.in_atomic();
        if atomic {
            self.report_might_sleep(Location::caller());
        }
        atomic
    }

    /// `__might_resched`: at most once a second.
    pub(crate) fn report_might_sleep(&self, caller: &Location<'_>) {
        if self.might_sleep_rs.check(self.platform.now_ns()) == Verdict::Suppress {
            return;
        }
        crate::report::might_sleep(&self.platform, caller);
    }

    /// The OOM report (`dump_header`: whatever the mask, `__GFP_NOWARN` included: header,
    /// stack, Mem-Info, then what the shrinkers add, i.e. the slab allocator's `Unreclaimable
    /// slab info:`, then `dump_tasks` with no task), `out_of_memory`'s `Out of memory and no
    /// killable processes...`, and kmem's deviation notice.
    pub(super) fn report_oom(&self, gfp: Gfp, order: u32, caller: &Location<'_>) {
        self.with_task(|task| {
            self.platform.log(
                Level::Warning,
                format_args!("{} invoked oom-killer: gfp_mask={gfp:?}, order={order}, oom_score_adj=0", task.comm,),
            );
        });
        self.platform.dump_stack(caller);
        self.show_mem(self.report_max_zone(gfp));
        // `should_dump_unreclaim_slab()` / `dump_unreclaimable_slab()`: the slab allocator's
        // part, through its shrinker (it decides whether to print).
        self.shrinkers.for_each(|s| s.report_oom());
        // `dump_tasks` (`oom_dump_tasks` is 1 by default): the header, and no task row, as a
        // kernel with no killable task prints it.
        self.platform.log(Level::Info, format_args!("Tasks state (memory values in pages):"));
        self.platform.log(
            Level::Info,
            format_args!(
                "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"
            ),
        );
        // `out_of_memory` with no victim: `pr_warn`, then (instead of the kernel's panic) kmem's
        // notice.
        self.platform.log(Level::Warning, format_args!("Out of memory and no killable processes..."));
        if gfp.contains(crate::gfp::__GFP_NOFAIL) {
            // Not bounded by the OOM timeout: it waits for as long as it takes.
            let text = "kmem: no process to kill; __GFP_NOFAIL: waiting for memory to be freed, without a time limit";
            self.platform.log(Level::Err, format_args!("{text}"));
            return;
        }
        self.platform.log(
            Level::Err,
            format_args!(
                "kmem: no process to kill; waiting up to {} ms for memory to be freed",
                self.oom_timeout_ns.load(Relaxed) / 1_000_000
            ),
        );
    }

    /// `fail_dump`.
    pub(super) fn report_fault(&self, verbose: u32, caller: &Location<'_>) {
        self.fail_page_alloc.dump(&self.platform, "fail_page_alloc", verbose, caller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::test_map;

    #[test]
    fn pa16_free_side_reasons_name_the_last_bad_field_as_the_kernel_does() {
        let (_s, mm) = test_map(8);
        let page = mm.page(0);
        page.prep_allocated(0, 0, 0);
        assert!(page.put_testzero(), "last reference dropped");
        assert_eq!(free_page_bad_reason(page), None, "a clean page may be freed");
        page.prev.store(1, Relaxed);
        assert_eq!(free_page_bad_reason(page), Some("nonzero mapcount"));
        page.next.store(0xdead, Relaxed);
        assert_eq!(free_page_bad_reason(page), Some("non-NULL mapping"));
        // A reference taken between the last put and the free (a stale `get_page`).
        page.page_ref_inc();
        assert_eq!(free_page_bad_reason(page), Some("nonzero _refcount"));
        page.info.store(pg::SLAB, Relaxed);
        assert_eq!(free_page_bad_reason(page), Some("PAGE_FLAGS_CHECK_AT_FREE flag(s) set"));
        page.prep_allocated(0, 0, 0);
        page.refcount.store(0, Relaxed);
        page.page_ref_inc();
        assert_eq!(free_page_bad_reason(page), Some("nonzero _refcount"), "the reference alone");
    }
}
