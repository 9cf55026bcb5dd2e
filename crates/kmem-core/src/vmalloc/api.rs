//! The vmalloc family (SEMANTICS §5.4): `__vmalloc_node_range` and its wrappers, reserving an
//! area (`alloc_vmap_area`), filling it with frames and mapping them; the warnings shared by
//! the API (`free` frees, `area` has the other kinds of areas).

use core::fmt;
use core::ops::Range;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::node::NIL;
use super::raw::PfnArray;
use super::space::{NODES_PER_ALLOC, Space};
use super::{
    Mmu, NUMA_NO_NODE, VM_ALLOC, VM_CALLER_FLAGS, VM_NO_GUARD, VM_NO_VM_STRUCT, VM_UNINITIALIZED, VM_USERMAP,
    VM_VMALLOC, Vmalloc,
};
use crate::AllocError;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_NOFAIL, __GFP_NOWARN, __GFP_ZERO, GFP_DMA32, GFP_KERNEL, Gfp};
use crate::kmem::Kmem;
use crate::memmap::Page;
use crate::order::{PAGE_SHIFT, PAGE_SIZE};
use crate::platform::{Level, Platform};
use crate::report::Verdict;

/// A failed [`Vmalloc::map_frames`].
#[derive(Clone, Copy, Debug)]
#[must_use]
pub(super) struct MapFailed {
    /// Pages from the area's start that may still be mapped: the unwinding [`Mmu::unmap`]
    /// failed (0: nothing of the area is mapped).
    pub(super) still_mapped: usize,
}

/// Pages asked from the bulk allocator at a time.
const BULK: usize = 32;

/// How long a `__GFP_NOFAIL` vmalloc sleeps before it asks for address space again: the
/// kernel's `schedule_timeout_uninterruptible(1)`, one jiffy at `HZ=250`.
const NOFAIL_RETRY_NS: u64 = crate::platform::NSEC_PER_JIFFY;

impl<M: Mmu> Vmalloc<M> {
    /// `vmalloc(size)`: `GFP_KERNEL` pages, HighMem allowed, page aligned.
    ///
    /// # Errors
    /// Size 0 (with a warning), larger than memory, no address space, or no pages.
    #[track_caller]
    pub fn vmalloc<P: Platform>(&self, k: &Kmem<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, GFP_KERNEL, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vzalloc(size)`: [`Self::vmalloc`], zeroed (VM-5).
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vzalloc<P: Platform>(&self, k: &Kmem<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, GFP_KERNEL | __GFP_ZERO, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_user(size)`: zeroed, `SHMLBA` (one page) aligned, `VM_USERMAP`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_user<P: Platform>(&self, k: &Kmem<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        let gfp = GFP_KERNEL | __GFP_ZERO;
        self.vmalloc_node_range(k, size, PAGE_SIZE, gfp, VM_USERMAP, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_32(size)`: pages addressable with 32 bits (`GFP_VMALLOC32` = `GFP_DMA32 |
    /// GFP_KERNEL`; without a DMA32 zone, as on i386, that is lowmem).
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_32<P: Platform>(&self, k: &Kmem<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, GFP_DMA32 | GFP_KERNEL, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_32_user(size)`: [`Self::vmalloc_32`], zeroed, `VM_USERMAP`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_32_user<P: Platform>(&self, k: &Kmem<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        let gfp = GFP_DMA32 | GFP_KERNEL | __GFP_ZERO;
        self.vmalloc_node_range(k, size, PAGE_SIZE, gfp, VM_USERMAP, NUMA_NO_NODE, Location::caller())
    }

    /// `__vmalloc(size, gfp)`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[doc(alias = "__vmalloc")]
    #[track_caller]
    pub fn vmalloc_gfp<P: Platform>(&self, k: &Kmem<P>, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, gfp, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_node(size, node)`: kmem has one node; any node (or [`NUMA_NO_NODE`]) is node 0.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_node<P: Platform>(&self, k: &Kmem<P>, size: usize, node: i32) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, GFP_KERNEL, 0, node, Location::caller())
    }

    /// `vzalloc_node(size, node)`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vzalloc_node<P: Platform>(&self, k: &Kmem<P>, size: usize, node: i32) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, GFP_KERNEL | __GFP_ZERO, 0, node, Location::caller())
    }

    /// `__vmalloc_node(size, align, gfp, node, caller)`: the result is aligned to `align` (VM-4).
    ///
    /// # Errors
    /// As [`Self::vmalloc`], and an `align` that is not a power of two or cannot fit.
    #[doc(alias = "__vmalloc_node")]
    #[track_caller]
    pub fn vmalloc_node_align<P: Platform>(
        &self,
        k: &Kmem<P>,
        size: usize,
        align: usize,
        gfp: Gfp,
        node: i32,
    ) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, align, gfp, 0, node, Location::caller())
    }

    /// `__vmalloc_node_range` over the whole range: reserve the area (guard page included),
    /// allocate the pfn array and the pages, map them, publish the area. `vm_flags` are
    /// sanitised first (`VM_UNINITIALIZED` and bits the kernel does not define are dropped,
    /// with a warning). Without address space (or memory for its bookkeeping) a
    /// `__GFP_NOFAIL` request that may sleep reports `vm_struct allocation failed. Retrying.`,
    /// sleeps about a tick and tries again until it gets an area, as the kernel does; one that
    /// may not sleep fails.
    ///
    /// # Errors
    /// As [`Self::vmalloc_node_align`].
    #[expect(clippy::too_many_arguments, reason = "the kernel's __vmalloc_node_range signature")]
    pub fn vmalloc_node_range<P: Platform>(
        &self,
        k: &Kmem<P>,
        size: usize,
        align: usize,
        gfp: Gfp,
        vm_flags: u32,
        node: i32,
        caller: &'static Location<'static>,
    ) -> Result<NonNull<u8>, AllocError> {
        self.bind(k);
        let _ = node; // One node: every node id means node 0.
        let vm_flags = self.caller_flags(k, caller, "__vmalloc_node_range_noprof", vm_flags);
        let ctx = k.platform().context();
        if !ctx.atomic {
            self.drain_deferred(k, true);
        }
        if size == 0 {
            if !self.warned_zero.swap(true, Relaxed) {
                self.warn(k, caller, "__vmalloc_node_range_noprof", format_args!("vmalloc: size 0"));
            }
            return Err(AllocError);
        }
        // `(size >> PAGE_SHIFT) > totalram_pages()`, on the size as given (before rounding, so
        // sizes that would wrap when rounded up are reported here too).
        let pages_floor = size >> PAGE_SHIFT;
        let rounded = size.checked_next_multiple_of(PAGE_SIZE).filter(|_| pages_floor <= k.total_managed());
        let Some(bytes) = rounded.filter(|&b| b / PAGE_SIZE <= u32::MAX as usize) else {
            k.warn_alloc_msg(gfp, format_args!("vmalloc error: size {size}, exceeds total pages"), caller);
            return Err(AllocError);
        };
        let nr_pages = bytes / PAGE_SIZE;
        let guard = if vm_flags & VM_NO_GUARD != 0 { 0 } else { PAGE_SIZE };
        // `alloc_vmap_area` refuses an align that is not a power of two (`-EINVAL`, silently);
        // the vmalloc then reports its `__get_vm_area_node` failure.
        let va_size = bytes.checked_add(guard).filter(|_| align.is_power_of_two());
        let Some(va_size) = va_size else {
            k.warn_alloc_msg(gfp, format_args!("vmalloc error: size {size}, vm_struct allocation failed"), caller);
            return Err(AllocError);
        };
        let mut gfp = gfp;
        if ctx.atomic && gfp.allow_blocking() {
            // `might_sleep()` in `alloc_vmap_area`; the request goes on without sleeping, as
            // the page allocator's does (documented deviation).
            k.report_might_sleep(caller);
            gfp = gfp.difference(__GFP_DIRECT_RECLAIM);
        }
        let mut page_gfp = Self::page_gfp(gfp);
        let zone = page_gfp.zone().map_or(0, |z| z as u8);
        // `init_on_alloc`/`init_on_free`: the kernel's page allocator hands out zeroed pages
        // (zeroed when allocated, resp. when last freed); so must vmalloc, from the frame cache
        // as from fresh pages.
        let zero = gfp.contains(__GFP_ZERO) || Self::want_init(k);
        if guard != 0
            && let Some(p) = self.cache_alloc(
                va_size,
                nr_pages,
                align,
                zero,
                zone,
                vm_flags,
                size,
                (caller, k.platform().foreign_caller()),
            )
        {
            return Ok(p);
        }
        if zero {
            page_gfp |= __GFP_ZERO;
        }
        if vm_flags & super::VM_ALLOW_HUGE_VMAP != 0
            && let Some(p) = self.vmalloc_huge_try(k, bytes, align, gfp, page_gfp, vm_flags, size, caller)
        {
            return Ok(p);
        }
        let flags = vm_flags | VM_ALLOC | VM_VMALLOC | VM_UNINITIALIZED;
        let (area, start) = loop {
            if let Ok(reserved) = self.alloc_area(k, va_size, align, gfp, flags, size, caller) {
                break reserved;
            }
            // `__GFP_NOFAIL` without direct reclaim is a misuse (the page allocator reports
            // it); it cannot sleep here, so it fails like any other request.
            let retry = gfp.contains(__GFP_NOFAIL) && gfp.allow_blocking();
            let suffix = if retry { ". Retrying." } else { "" };
            let msg = format_args!("vmalloc error: size {size}, vm_struct allocation failed{suffix}");
            k.warn_alloc_msg(gfp, msg, caller);
            if !retry {
                return Err(AllocError);
            }
            self.nofail_sleep(k);
        };
        let Ok(mut pfns) = self.alloc_array(k, nr_pages, gfp, caller) else {
            let array_size = self.array_bytes(nr_pages);
            let msg = format_args!("vmalloc error: size {bytes}, failed to allocated page array size {array_size}");
            k.warn_alloc_msg(gfp, msg, caller);
            self.abandon(area, start);
            return Err(AllocError);
        };
        let mut got = self.fill_contiguous(k, &mut pfns, page_gfp);
        got = self.fill_pages(k, &mut pfns, page_gfp, got);
        if got < nr_pages && self.drain_cache(k, usize::MAX) > 0 {
            got = self.fill_pages(k, &mut pfns, page_gfp, got);
        }
        if got < nr_pages {
            k.warn_alloc_msg(
                gfp,
                format_args!("vmalloc error: size {}, failed to allocate pages", got * PAGE_SIZE),
                caller,
            );
            self.free_frames(k, &pfns, 0..got);
            self.free_array(k, &pfns);
            self.abandon(area, start);
            return Err(AllocError);
        }
        if let Err(failed) = self.map_frames(start, &pfns) {
            k.warn_alloc_msg(gfp, format_args!("vmalloc error: size {bytes}, failed to map pages"), caller);
            self.unwind_map(k, area, start, &pfns, true, failed);
            return Err(AllocError);
        }
        self.publish(area, pfns, true, zone);
        Ok(NonNull::new(start as *mut u8).expect("vmalloc range starts above 0"))
    }

    /// `schedule_timeout_uninterruptible(1)` between two tries of a `__GFP_NOFAIL` vmalloc
    /// (process context: the mask allows blocking, which atomic context has taken away):
    /// sleeps about a tick through the platform, then completes the deferred frees, whose
    /// address space the next try may need.
    fn nofail_sleep<P: Platform>(&self, k: &Kmem<P>) {
        // Nobody wakes this word: the wait lasts its timeout (or less; the caller loops).
        let word = crate::waitq::WaitWord::new(0);
        k.platform().wait(&word, 0, NOFAIL_RETRY_NS);
        self.drain_deferred(k, false);
    }

    /// The caller's `VM_*` flags as kmem keeps them (`vmap`, `get_vm_area`,
    /// `__vmalloc_node_range`): bits the kernel does not define for callers (kmem's own
    /// bookkeeping bits among them, which would hide the area from every free) and
    /// `VM_UNINITIALIZED` (which would too) are dropped, and the first time on this machine a
    /// `WARNING` names them. The kernel has no such check: it stores whatever it is given.
    pub(super) fn caller_flags<P: Platform>(&self, k: &Kmem<P>, caller: &Location<'_>, func: &str, flags: u32) -> u32 {
        let dropped = flags & !VM_CALLER_FLAGS;
        if dropped != 0 && !self.warned_flags.swap(true, Relaxed) {
            let msg = format_args!(
                "{func}: VM flags {dropped:#x} dropped: not defined for callers (VM_UNINITIALIZED, undefined bits)"
            );
            self.warn(k, caller, func, msg);
        }
        flags & VM_CALLER_FLAGS
    }

    /// Reserves an area of `va_size` bytes (`alloc_vmap_area`), purging the lazy areas once if
    /// the space is full. The area is busy and `VM_UNINITIALIZED` until [`Self::publish`]. Out
    /// of space, it reports `Address range restricted` (unless `__GFP_NOWARN`, ratelimited);
    /// the vmalloc family adds its own `vm_struct allocation failed` report.
    #[expect(clippy::too_many_arguments, reason = "the area's vm_struct fields")]
    pub(super) fn alloc_area<P: Platform>(
        &self,
        k: &Kmem<P>,
        va_size: usize,
        align: usize,
        gfp: Gfp,
        flags: u32,
        requested: usize,
        caller: &'static Location<'static>,
    ) -> Result<(u32, usize), AllocError> {
        let mut space = self.lock_with_nodes(k, NODES_PER_ALLOC, gfp, caller)?;
        let align = align.max(PAGE_SIZE);
        // `node_alloc` first: an exact-size pooled range, O(1).
        let mut area = if self.va_pools() { space.pool_take(va_size, align) } else { None };
        if area.is_some() {
            super::locked_add(&self.stats.pool_hits, 1);
        } else {
            area = space.alloc(va_size, align);
        }
        if area.is_none() && space.cache.nr > 0 {
            // The frame cache holds address space too: give it back (pages are freed with
            // the lock dropped), then purge as below.
            drop(space);
            self.drain_cache(k, usize::MAX);
            space = self.lock_with_nodes(k, NODES_PER_ALLOC, gfp, caller)?;
            area = space.alloc(va_size, align);
        }
        if area.is_none() && space.vb_queues.iter().any(|&q| q != super::node::NIL) {
            // `reclaim_and_purge_vmap_areas`: fragmented vmap blocks go first (forced), then
            // the purge below makes their ranges free.
            drop(space);
            self.purge_fragmented_blocks(k, true);
            space = self.lock_with_nodes(k, NODES_PER_ALLOC, gfp, caller)?;
            area = space.alloc(va_size, align);
        }
        if area.is_none() && (space.lazy.len > 0 || space.va_pool.nr > 0) {
            // `reclaim_and_purge_vmap_areas`: purge, with the pools fully decayed.
            self.purge_locked(&mut space, true);
            area = space.alloc(va_size, align);
        }
        let Some(i) = area else {
            drop(space);
            if !gfp.contains(__GFP_NOWARN) && self.warn_rs.check(k.platform().now_ns()) != Verdict::Suppress {
                k.platform().log(
                    Level::Warning,
                    format_args!(
                        "vmalloc_node_range for size {va_size} failed: Address range restricted to {:#x} - {:#x}",
                        self.start, self.end
                    ),
                );
            }
            return Err(AllocError);
        };
        let node = space.pool.get_mut(i);
        node.flags = flags;
        node.requested = requested;
        node.caller = Some(caller);
        node.caller_ip = k.platform().foreign_caller();
        node.put_array = 0;
        Ok((i, node.start))
    }

    /// Gives back the range of an area that never became visible (nothing is mapped).
    pub(super) fn abandon(&self, area: u32, start: usize) {
        let mut guard = self.space.lock();
        let space = &mut *guard;
        let gone = space.busy.remove(&mut space.pool, start);
        debug_assert_eq!(gone, area);
        space.release(area);
    }

    /// Makes an area visible with its frames (from zones up to `zone`).
    pub(super) fn publish(&self, area: u32, pfns: PfnArray, vmalloc_pages: bool, zone: u8) {
        let mut space = self.space.lock();
        let node = space.pool.get_mut(area);
        node.pages = Some(pfns);
        node.zone = zone;
        node.flags &= !VM_UNINITIALIZED;
        if vmalloc_pages {
            super::locked_add(&self.nr_vmalloc_pages, pfns.len as usize);
        }
    }

    /// Fills `pfns` from entry `got` on with order-0 pages, in bulk batches; returns how many
    /// entries are filled.
    fn fill_pages<P: Platform>(&self, k: &Kmem<P>, pfns: &mut PfnArray, gfp: Gfp, got: usize) -> usize {
        let want = pfns.len as usize;
        let mut got = got;
        while got < want {
            let mut slots: [Option<&Page>; BULK] = [None; BULK];
            let n = k.alloc_pages_bulk(gfp, &mut slots[..(want - got).min(BULK)]);
            if n == 0 {
                break;
            }
            for page in slots.iter().flatten() {
                let pfn = k.page_to_pfn(page).expect("allocated page is in mem_map");
                pfns.set(got, pfn as u32);
                got += 1;
            }
        }
        got
    }

    /// Frees the frames of `pfns` at indices `frames`, last first, so that per-CPU lists
    /// (LIFO) hand them out again in ascending order, physically contiguous runs included.
    pub(super) fn free_frames<P: Platform>(&self, k: &Kmem<P>, pfns: &PfnArray, frames: Range<usize>) {
        for i in frames.rev() {
            let page = k.pfn_to_page(pfns.get(i) as usize).expect("frame is in mem_map");
            // SAFETY: The area's frames, which the caller frees with it (unmapped, or never
            // mapped): nothing reaches them any more.
            unsafe { k.free_pages(page, 0) };
        }
    }

    /// Maps `pfns` from `start`, one [`Mmu::map`] per physically contiguous run. On failure it
    /// unmaps the runs already mapped; the error says how many pages from `start` may still be
    /// mapped because that [`Mmu::unmap`] failed (0: nothing of the area is mapped).
    pub(super) fn map_frames(&self, start: usize, pfns: &PfnArray) -> Result<(), MapFailed> {
        self.map_runs(start, pfns.len as usize, &|i| pfns.get(i) as usize)
    }

    /// Maps `n` frames, frame `pfn_at(i)` at `start + i * PAGE_SIZE`, as [`Self::map_frames`].
    pub(super) fn map_runs(&self, start: usize, n: usize, pfn_at: &dyn Fn(usize) -> usize) -> Result<(), MapFailed> {
        let mut i = 0;
        while i < n {
            let first = pfn_at(i);
            let mut run = 1;
            while i + run < n && pfn_at(i + run) == first + run {
                run += 1;
            }
            // SAFETY: `start` begins an area (or a vmap block's range) being set up: nobody else
            // has its address yet; the frames were just allocated for it (or lent by the caller
            // of `vmap` or `vm_map_ram`).
            if unsafe { self.mmu.map(start + i * PAGE_SIZE, first, run) }.is_err() {
                // The failed call mapped nothing (`Mmu::map`'s contract); the runs before it
                // are undone here. If the platform refuses, they may still be reached: the
                // caller must then keep their frames and the range out of use for good.
                // SAFETY: As above: the area is not handed out.
                let unmapped = i == 0 || unsafe { self.mmu.unmap(start, i * PAGE_SIZE) }.is_ok();
                return Err(MapFailed { still_mapped: if unmapped { 0 } else { i } });
            }
            i += run;
        }
        Ok(())
    }

    /// Undoes reserved area `area` at `start` after `map_frames` failed: frees its pfn array
    /// and, when the frames are vmalloc's (`owned`), the frames nothing maps; gives the range
    /// back. If the unwind left pages mapped ([`MapFailed::still_mapped`]), the `Mmu::unmap`
    /// contract forbids reusing their frames and the range: those frames are never freed
    /// (leaked; a `vmap`'s pages stay its caller's, VM-9), the range stays busy for good
    /// (`VM_UNMAP_FAILED`), and an error is logged, as `vfree` does for an area it cannot unmap.
    pub(super) fn unwind_map<P: Platform>(
        &self,
        k: &Kmem<P>,
        area: u32,
        start: usize,
        pfns: &PfnArray,
        owned: bool,
        failed: MapFailed,
    ) {
        let (kept, n) = (failed.still_mapped, pfns.len as usize);
        if owned {
            self.free_frames(k, pfns, kept..n);
        }
        self.free_array(k, pfns);
        if kept == 0 {
            self.abandon(area, start);
            return;
        }
        {
            let mut guard = self.space.lock();
            let space = &mut *guard;
            let gone = space.busy.remove(&mut space.pool, start);
            debug_assert_eq!(gone, area);
            // Never published: no page counter counted it.
            space.strand(area);
            super::locked_add(&self.stats.unmap_failures, 1);
        }
        let what = if owned { "its frames are kept (leaked) and its" } else { "its" };
        k.platform().log(
            Level::Err,
            format_args!(
                "vmalloc: cannot unmap a partly mapped area at {start:#x} ({kept} of {n} pages mapped); {what} \
                 address range is never reused"
            ),
        );
    }

    pub(super) fn warn_nonexistent<P: Platform>(
        &self,
        k: &Kmem<P>,
        caller: &Location<'_>,
        func: &str,
        addr: *const u8,
    ) {
        self.warn(k, caller, func, format_args!("Trying to {func}() nonexistent vm area ({:016x})", addr as usize));
    }

    /// `WARN(1, fmt, ...)`: the message, the `WARNING:` line, and the call trace.
    pub fn warn<P: Platform>(&self, k: &Kmem<P>, caller: &Location<'_>, func: &str, msg: fmt::Arguments<'_>) {
        let platform = k.platform();
        platform.log(Level::Err, msg);
        platform.log(Level::Warning, format_args!("WARNING: CPU: {} at {caller} {func}", platform.cpu().unwrap_or(0)));
        platform.dump_stack(caller);
    }
}

/// The live, published area starting exactly at `addr`, or `NIL` (`find_unlink_vmap_area`
/// finds by start; an area being set up or already queued for a deferred free does not count).
pub(super) fn find_area(space: &Space, addr: usize) -> u32 {
    let i = space.busy.floor(&space.pool, addr);
    if i == NIL {
        return NIL;
    }
    let node = space.pool.get(i);
    if node.start != addr || node.flags & VM_NO_VM_STRUCT != 0 {
        return NIL;
    }
    i
}
