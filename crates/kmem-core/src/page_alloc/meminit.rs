//! `init_on_alloc` and `init_on_free` for pages (§2.10): the kernel's `want_init_on_alloc`,
//! `want_init_on_free`, the zeroing in `post_alloc_hook` and the `kernel_init_pages` call in
//! `free_pages_prepare`.
//!
//! The settings are the machine's boot parameters. They live in the [`SlabConfig`] handed to
//! [`Kmem::new`] (one source for slab, kmalloc, vmalloc and pages); `Kmem::new` installs them
//! here through `&mut`, before the allocator can be shared, and nothing changes them afterwards
//! (the kernel's are static keys set once in `mm_core_init`). A page allocator used without a
//! [`Kmem`] has both off.
//!
//! What each step does:
//! - Free (`free_pages_prepare`): with `init_on_free`, every block is zeroed before it goes on
//!   a per-CPU list or the buddy lists ([`PageAllocator::free_block`] is the one door for every
//!   checked free: `__free_pages`, `free_pages_exact`, split pages, the tail halves freed
//!   early, the pages of `alloc_pages_bulk` freed one by one). Moving pages between per-CPU
//!   and buddy lists (refill, flush, drain) writes no page, so it zeroes nothing.
//! - Allocation (`post_alloc_hook`): zero when `!want_init_on_free() &&
//!   want_init_on_alloc(gfp)`, where `want_init_on_alloc` is `init_on_alloc || __GFP_ZERO`.
//!   With `init_on_free` on the block is zero already, so even `__GFP_ZERO` writes nothing, as
//!   in the kernel; PA-18 holds by the invariant below. (`should_skip_init` is always false:
//!   there is no hardware tag-based KASAN here.)
//! - HighMem blocks are zeroed through the platform ([`Platform::zero_highmem`], a temporary
//!   mapping), as `__GFP_ZERO` always did. A platform that cannot reach HighMem cannot keep the
//!   invariant, so `init_on_free` then becomes zeroing at allocation (logged once at boot): a
//!   HighMem allocation then fails as a `__GFP_ZERO` one does on such a platform.
//!
//! Invariant: while `init_on_free` is on, every block on a buddy free list or a per-CPU list
//! reads as zero — zeroed when it was freed, never handed out since it was (the unused tail of
//! `alloc_pages_exact`), given back to the host (`PG_TRIMMED`), or zeroed when the setting was
//! turned on (free memory not known to be fresh).
//!
//! Cost on the hot order-0 pair: the allocation side replaces its `__GFP_ZERO` test by one
//! test of `(gfp | ZERO_ALWAYS) & alloc_mask` (one load more); the free side tests one flag
//! (a load and a well-predicted branch). The zeroing itself is out of line.

use super::PageAllocator;
use crate::gfp::{__GFP_ZERO, Gfp};
use crate::memmap::pg;
use crate::order::PAGE_SIZE;
use crate::platform::{Level, Platform};
#[cfg(doc)]
use crate::{Kmem, slab::SlabConfig};

/// A bit no GFP flag uses: or-ed into every request's flags by the allocation-side test, so a
/// mask holding it zeroes every block (`init_on_alloc`).
const ZERO_ALWAYS: u32 = 1 << 31;
const _: () = assert!(ZERO_ALWAYS > crate::gfp::__GFP_ZEROTAGS.bits() && ZERO_ALWAYS & __GFP_ZERO.bits() == 0);

/// The page allocator's copy of `init_on_alloc`/`init_on_free`, in the form its fast paths
/// test.
///
/// # Invariants
/// `alloc_mask` is 0 if `on_free`; else `__GFP_ZERO`, plus [`ZERO_ALWAYS`] if `on_alloc`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemInit {
    /// A block is zeroed when allocated iff `(gfp | ZERO_ALWAYS) & alloc_mask != 0`.
    alloc_mask: u32,
    /// Blocks are zeroed when freed.
    pub(super) on_free: bool,
    on_alloc: bool,
}

impl MemInit {
    /// Both off: only `__GFP_ZERO` zeroes.
    pub(crate) const OFF: Self = Self::new(false, false);

    const fn new(on_alloc: bool, on_free: bool) -> Self {
        // INVARIANT: The mask is built from the two settings exactly as documented.
        let alloc_mask = match (on_alloc, on_free) {
            (_, true) => 0,
            (true, false) => ZERO_ALWAYS | __GFP_ZERO.bits(),
            (false, false) => __GFP_ZERO.bits(),
        };
        Self { alloc_mask, on_free, on_alloc }
    }
}

impl<P: Platform> PageAllocator<P> {
    /// `want_init_on_alloc(gfp)`: `init_on_alloc` is on or `gfp` has `__GFP_ZERO`.
    pub fn want_init_on_alloc(&self, gfp: Gfp) -> bool {
        self.init.on_alloc || gfp.contains(__GFP_ZERO)
    }

    /// `want_init_on_free()`: blocks are zeroed when freed (so they come zeroed when
    /// allocated, `__GFP_ZERO` or not).
    pub fn want_init_on_free(&self) -> bool {
        self.init.on_free
    }

    /// Whether `post_alloc_hook` zeroes a block allocated with `gfp`:
    /// `!want_init_on_free() && want_init_on_alloc(gfp)`, in one test.
    #[inline(always)]
    pub(super) fn zero_on_alloc(&self, gfp: Gfp) -> bool {
        (gfp.bits() | ZERO_ALWAYS) & self.init.alloc_mask != 0
    }

    /// Sets `init_on_alloc` and `init_on_free` (the boot parameters; [`Kmem::new`] calls this
    /// with its [`SlabConfig`]'s). Turning `init_on_free` on zeroes every free block not known
    /// to be zero (the kernel zeroes all memory it frees into the buddy allocator at boot:
    /// "mem auto-init: clearing system memory may take some time..."), so that the invariant
    /// holds from here on.
    pub(crate) fn set_mem_init(&mut self, on_alloc: bool, on_free: bool) {
        let (mut on_alloc, mut on_free) = (on_alloc, on_free);
        if on_free && !self.can_zero_highmem() {
            self.platform.log(
                Level::Warning,
                format_args!(
                    "kmem: init_on_free: the platform cannot zero HighMem; pages are zeroed when allocated instead"
                ),
            );
            (on_alloc, on_free) = (true, false);
        }
        let was_on = self.init.on_free;
        self.init = MemInit::new(on_alloc, on_free);
        if on_free && !was_on && !self.untouched_since_boot() {
            self.zero_free_memory();
        }
    }

    /// Whether the platform can zero every page outside the direct map there is (asked with
    /// `nr == 0`), or there is none.
    fn can_zero_highmem(&self) -> bool {
        let end = self.mm.end_pfn();
        // SAFETY: `nr == 0` touches no page.
        self.direct_map_end_pfn >= end || unsafe { self.platform.zero_highmem(self.direct_map_end_pfn, 0) }
    }

    /// Whether every free page still holds what it held at boot, and that was zero: the
    /// memory came zero-filled and no block was ever handed out.
    fn untouched_since_boot(&self) -> bool {
        self.zeroed_at_boot && self.zones.iter().all(|z| self.nr_pgalloc(z.kind) == 0)
    }

    /// Zeroes every free block that is not known to be zero: the per-CPU lists are emptied
    /// into the buddy lists first, then each zone's blocks not marked `PG_TRIMMED` are zeroed
    /// under its lock. `&mut self`: no CPU slot is in use.
    #[cold]
    fn zero_free_memory(&mut self) {
        for cpu in 0..self.nr_cpus {
            // `&mut self`: no context holds the slot, so this caller may empty it.
            self.drain_cpu(cpu);
        }
        for zone in &self.zones {
            let area = zone.lock();
            area.for_each_block(&self.mm, |pfn, order, _| {
                if self.mm.page(pfn).flags() & pg::TRIMMED == 0 {
                    // Fails only for HighMem on a platform without access, which
                    // `set_mem_init` ruled out.
                    let zeroed = self.zero_pages(pfn, 1 << order);
                    debug_assert!(zeroed, "pfn {pfn:#x} order {order}");
                }
            });
        }
    }

    /// `free_pages_prepare`'s `kernel_init_pages` under `init_on_free`: zeroes a block being
    /// freed. False (the block is then leaked, and the failure logged) only if it is HighMem
    /// and the platform cannot zero it — which `set_mem_init` ruled out.
    #[cold]
    #[inline(never)]
    pub(super) fn init_freed_block(&self, pfn: usize, order: u32) -> bool {
        if self.zero_pages(pfn, 1 << order) {
            return true;
        }
        self.platform.log(
            Level::Err,
            format_args!("kmem: init_on_free: cannot zero HighMem pfn:{pfn:05x} order:{order}; the block is leaked"),
        );
        false
    }

    /// Zero-fills `nr` pages from `pfn` that the caller owns (just allocated, or being freed):
    /// lowmem through the direct map, HighMem through the platform's temporary mapping; false
    /// if they are HighMem and the platform cannot.
    #[cold]
    pub(super) fn zero_pages(&self, pfn: usize, nr: usize) -> bool {
        if pfn + nr <= self.direct_map_end_pfn {
            let offset = (pfn - self.mm.start_pfn()) * PAGE_SIZE;
            // SAFETY: The pages are inside the direct map (checked above), and the caller owns
            // them (allocated and not yet handed out, being freed, or free under `&mut self`),
            // so no one else uses them.
            unsafe { self.direct_map.add(offset).write_bytes(0, nr * PAGE_SIZE) };
            true
        } else {
            // SAFETY: The caller owns the pages, as above.
            unsafe { self.platform.zero_highmem(pfn, nr) }
        }
    }

    /// For a caller that must know beforehand whether preparing a block allocated with `gfp`
    /// can fail: only zeroing a HighMem block (`highmem`) can.
    #[inline]
    pub(super) fn prep_may_fail(&self, gfp: Gfp, highmem: bool) -> bool {
        highmem && self.zero_on_alloc(gfp)
    }
}
