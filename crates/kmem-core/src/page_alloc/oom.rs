//! The slow path's OOM step (`__alloc_pages_may_oom`, `out_of_memory`): one request at a time
//! (`oom_lock`), a last look for a page above the high watermark, the OOM notifier chain, and,
//! with no process to kill (kmem's deviation, `docs/deviations.md`), the OOM report once per
//! request; `__GFP_NOFAIL` then gets every reserve (`ALLOC_NO_WATERMARKS`).
//!
//! Lock order: `oom_lock` is taken only with a try-lock, with nothing else held, and held
//! across the notifiers, the report and the allocations of the step; a request that finds it
//! taken counts that as progress, as the kernel's "somebody else is making progress for us",
//! and waits for a free (the slow path's `wait_for_free`) before it tries again.

use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::{PageAllocator, ZoneList};
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_FS, __GFP_NOFAIL, Gfp};
use crate::platform::Platform;
use crate::watermark::alloc_flags as af;

/// What the OOM step (`out_of_memory`) achieved.
pub(super) enum OomStep {
    /// The OOM notifiers freed something: progress.
    Freed,
    /// A request without `__GFP_FS`: progress, though nothing was freed.
    IoLess,
    /// No progress: the OOM report (once per request), then wait for frees.
    NoVictim,
}

/// What `__alloc_pages_may_oom` came back with.
pub(super) enum MayOom {
    /// A page: above the high watermark before the OOM step, or from every reserve after it
    /// (`__GFP_NOFAIL`).
    Page(usize),
    /// Another request holds `oom_lock`: "somebody else is making progress for us". The
    /// caller counts it as progress and waits for a free.
    Busy,
    /// The OOM step ran.
    Step(OomStep),
}

impl<P: Platform> PageAllocator<P> {
    /// `__alloc_pages_may_oom` for a request the OOM step is allowed for (the caller checked
    /// the order, `__GFP_THISNODE` and the zone).
    pub(super) fn may_oom(
        &self,
        gfp: Gfp,
        order: u32,
        zl: &ZoneList,
        caller: &Location<'_>,
        reported: &mut bool,
    ) -> MayOom {
        let Some(_oom_lock) = self.oom_lock.try_lock() else {
            return MayOom::Busy;
        };
        // "Go through the zonelist yet one more time, keep very high watermark here, this is
        // only to catch a parallel oom killing" (or a free made since the request's last try).
        let cpu = self.platform.cpu();
        let last_look = gfp.difference(__GFP_DIRECT_RECLAIM);
        if let Some(pfn) = self.get_page_from_freelist(last_look, order, af::WMARK_HIGH | af::CPUSET, zl, cpu) {
            return MayOom::Page(pfn);
        }
        let step = self.out_of_memory(gfp, order, caller, reported);
        // "Help non-failing allocations by giving them access to memory reserves": the step
        // counts as progress for `__GFP_NOFAIL` whatever it achieved, and one more try takes
        // `ALLOC_NO_WATERMARKS` alone (`__alloc_pages_cpuset_fallback`: no `ALLOC_KSWAPD`, so
        // a boost taken here wakes no kswapd).
        if gfp.contains(__GFP_NOFAIL)
            && let Some(pfn) = self.get_page_from_freelist(gfp, order, af::NO_WATERMARKS, zl, cpu)
        {
            return MayOom::Page(pfn);
        }
        MayOom::Step(step)
    }

    /// `out_of_memory`, on every pass that reaches the OOM step: the OOM notifier chain first;
    /// if it freed anything that is progress, with no report. A request without `__GFP_FS`
    /// (`GFP_NOFS`, `GFP_NOIO`) then also counts as progress with no report: "The OOM killer
    /// does not compensate for IO-less reclaim". Otherwise there is no process to kill: the
    /// report (`dump_header`, which does not look at `__GFP_NOWARN`), once per request
    /// (`reported`), counted in `stats.oom`.
    fn out_of_memory(&self, gfp: Gfp, order: u32, caller: &Location<'_>, reported: &mut bool) -> OomStep {
        let mut freed = 0usize;
        self.oom_notifiers.for_each(|n| freed = freed.saturating_add(n.out_of_memory()));
        if freed > 0 {
            return OomStep::Freed;
        }
        if !gfp.contains(__GFP_FS) {
            return OomStep::IoLess;
        }
        if !core::mem::replace(reported, true) {
            self.stats.oom.fetch_add(1, Relaxed);
            self.report_oom(gfp, order, caller);
        }
        OomStep::NoVictim
    }
}
