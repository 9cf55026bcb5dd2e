//! The vmalloc API (SEMANTICS §5.4): the `vmalloc` family, `vfree` (deferred in atomic
//! context), `vmap`/`vunmap`, `vmalloc_to_page`, `vrealloc`, `get_vm_area`, and purging.

use core::fmt;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::node::NIL;
use super::raw::PfnArray;
use super::space::{NODES_PER_ALLOC, Space};
use super::{
    Mmu, NUMA_NO_NODE, VM_ALLOC, VM_DEFERRED, VM_FLUSH_RESET_PERMS, VM_IOREMAP, VM_MAP, VM_MAP_PUT_PAGES, VM_NO_GUARD,
    VM_PARKED, VM_UNINITIALIZED, VM_USERMAP, Vmalloc,
};
use crate::AllocError;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_NOWARN, __GFP_ZERO, GFP_DMA32, GFP_KERNEL, Gfp};
use crate::memmap::Page;
use crate::order::{PAGE_SHIFT, PAGE_SIZE};
use crate::page_alloc::PageAllocator;
use crate::platform::{Level, Platform};
use crate::report::Verdict;

/// Pages asked from the bulk allocator at a time.
const BULK: usize = 32;

/// What a free of an area does with its pages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Release {
    /// `vfree`: owned pages go back to the page allocator.
    Pages,
    /// `vunmap`/`free_vm_area`: only the mapping goes.
    MappingOnly,
}

impl<M: Mmu> Vmalloc<M> {
    /// `vmalloc(size)`: `GFP_KERNEL` pages, HighMem allowed, page aligned.
    ///
    /// # Errors
    /// Size 0 (with a warning), larger than memory, no address space, or no pages.
    #[track_caller]
    pub fn vmalloc<P: Platform>(&self, pa: &PageAllocator<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(pa, size, PAGE_SIZE, GFP_KERNEL, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vzalloc(size)`: [`Self::vmalloc`], zeroed (VM-5).
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vzalloc<P: Platform>(&self, pa: &PageAllocator<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(pa, size, PAGE_SIZE, GFP_KERNEL | __GFP_ZERO, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_user(size)`: zeroed, `SHMLBA` (one page) aligned, `VM_USERMAP`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_user<P: Platform>(&self, pa: &PageAllocator<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        let gfp = GFP_KERNEL | __GFP_ZERO;
        self.vmalloc_node_range(pa, size, PAGE_SIZE, gfp, VM_USERMAP, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_32(size)`: pages addressable with 32 bits (`GFP_VMALLOC32` = `GFP_DMA32 |
    /// GFP_KERNEL`; without a DMA32 zone, as on i386, that is lowmem).
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_32<P: Platform>(&self, pa: &PageAllocator<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(pa, size, PAGE_SIZE, GFP_DMA32 | GFP_KERNEL, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_32_user(size)`: [`Self::vmalloc_32`], zeroed, `VM_USERMAP`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_32_user<P: Platform>(&self, pa: &PageAllocator<P>, size: usize) -> Result<NonNull<u8>, AllocError> {
        let gfp = GFP_DMA32 | GFP_KERNEL | __GFP_ZERO;
        self.vmalloc_node_range(pa, size, PAGE_SIZE, gfp, VM_USERMAP, NUMA_NO_NODE, Location::caller())
    }

    /// `__vmalloc(size, gfp)`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[doc(alias = "__vmalloc")]
    #[track_caller]
    pub fn vmalloc_gfp<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        size: usize,
        gfp: Gfp,
    ) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(pa, size, PAGE_SIZE, gfp, 0, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_node(size, node)`: kmem has one node; any node (or [`NUMA_NO_NODE`]) is node 0.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_node<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        size: usize,
        node: i32,
    ) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(pa, size, PAGE_SIZE, GFP_KERNEL, 0, node, Location::caller())
    }

    /// `vzalloc_node(size, node)`.
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vzalloc_node<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        size: usize,
        node: i32,
    ) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(pa, size, PAGE_SIZE, GFP_KERNEL | __GFP_ZERO, 0, node, Location::caller())
    }

    /// `__vmalloc_node(size, align, gfp, node, caller)`: the result is aligned to `align` (VM-4).
    ///
    /// # Errors
    /// As [`Self::vmalloc`], and an `align` that is not a power of two or cannot fit.
    #[doc(alias = "__vmalloc_node")]
    #[track_caller]
    pub fn vmalloc_node_align<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        size: usize,
        align: usize,
        gfp: Gfp,
        node: i32,
    ) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(pa, size, align, gfp, 0, node, Location::caller())
    }

    /// `__vmalloc_node_range` over the whole range: reserve the area (guard page included),
    /// allocate the pfn array and the pages, map them, publish the area.
    ///
    /// # Errors
    /// As [`Self::vmalloc_node_align`].
    #[expect(clippy::too_many_arguments, reason = "the kernel's __vmalloc_node_range signature")]
    pub fn vmalloc_node_range<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        size: usize,
        align: usize,
        gfp: Gfp,
        vm_flags: u32,
        node: i32,
        caller: &'static Location<'static>,
    ) -> Result<NonNull<u8>, AllocError> {
        let _ = node; // One node: every node id means node 0.
        let ctx = pa.platform().context();
        if !ctx.atomic {
            self.drain_deferred(pa, true);
        }
        if size == 0 {
            if !self.warned_zero.swap(true, Relaxed) {
                self.warn(pa, caller, "__vmalloc_node_range_noprof", format_args!("vmalloc: size 0"));
            }
            return Err(AllocError);
        }
        // `(size >> PAGE_SHIFT) > totalram_pages()`, on the size as given (before rounding, so
        // sizes that would wrap when rounded up are reported here too).
        let pages_floor = size >> PAGE_SHIFT;
        let rounded = size.checked_next_multiple_of(PAGE_SIZE).filter(|_| pages_floor <= pa.total_managed());
        let Some(bytes) = rounded.filter(|&b| b / PAGE_SIZE <= u32::MAX as usize) else {
            pa.warn_alloc_msg(gfp, format_args!("vmalloc error: size {size}, exceeds total pages"), caller);
            return Err(AllocError);
        };
        let nr_pages = bytes / PAGE_SIZE;
        let guard = if vm_flags & VM_NO_GUARD != 0 { 0 } else { PAGE_SIZE };
        // `alloc_vmap_area` refuses an align that is not a power of two (`-EINVAL`, silently);
        // the vmalloc then reports its `__get_vm_area_node` failure.
        let va_size = bytes.checked_add(guard).filter(|_| align.is_power_of_two());
        let Some(va_size) = va_size else {
            pa.warn_alloc_msg(gfp, format_args!("vmalloc error: size {size}, vm_struct allocation failed"), caller);
            return Err(AllocError);
        };
        let mut gfp = gfp;
        if ctx.atomic && gfp.allow_blocking() {
            // `might_sleep()` in `alloc_vmap_area`; the request goes on without sleeping, as
            // the page allocator's does (documented deviation).
            pa.report_might_sleep(caller);
            gfp = gfp.difference(__GFP_DIRECT_RECLAIM);
        }
        let page_gfp = Self::page_gfp(gfp);
        let zone = page_gfp.zone().map_or(0, |z| z as u8);
        if guard != 0
            && let Some(p) = self.cache_alloc(va_size, nr_pages, align, gfp, zone, vm_flags, size, caller)
        {
            return Ok(p);
        }
        let flags = vm_flags | VM_ALLOC | VM_UNINITIALIZED;
        let Ok((area, start)) = self.alloc_area(pa, va_size, align, gfp, flags, size, caller) else {
            pa.warn_alloc_msg(gfp, format_args!("vmalloc error: size {size}, vm_struct allocation failed"), caller);
            return Err(AllocError);
        };
        let order = PfnArray::order_for(nr_pages);
        let array_gfp = Self::array_gfp(gfp) | __GFP_NOWARN;
        let mut array = pa.alloc_pages_at(array_gfp, order, caller);
        if array.is_err() && self.drain_cache(pa, usize::MAX) > 0 {
            array = pa.alloc_pages_at(array_gfp, order, caller);
        }
        let Ok(array) = array else {
            pa.warn_alloc_msg(
                gfp,
                format_args!(
                    "vmalloc error: size {bytes}, failed to allocated page array size {}",
                    nr_pages * size_of::<u32>()
                ),
                caller,
            );
            self.abandon(area, start);
            return Err(AllocError);
        };
        let block = pa.page_address(array).expect("array gfp has no __GFP_HIGHMEM");
        // SAFETY: A lowmem block of `order` we own, sized for `nr_pages` entries by `order_for`.
        let mut pfns = unsafe { PfnArray::new(block, order, nr_pages as u32) };
        let mut got = self.fill_contiguous(pa, &mut pfns, page_gfp);
        got = self.fill_pages(pa, &mut pfns, page_gfp, got);
        if got < nr_pages && self.drain_cache(pa, usize::MAX) > 0 {
            got = self.fill_pages(pa, &mut pfns, page_gfp, got);
        }
        if got < nr_pages {
            pa.warn_alloc_msg(
                gfp,
                format_args!("vmalloc error: size {}, failed to allocate pages", got * PAGE_SIZE),
                caller,
            );
            self.free_frames(pa, &pfns, got);
            pa.free_pages(array, order);
            self.abandon(area, start);
            return Err(AllocError);
        }
        if self.map_frames(start, &pfns).is_err() {
            pa.warn_alloc_msg(gfp, format_args!("vmalloc error: size {bytes}, failed to map pages"), caller);
            self.free_frames(pa, &pfns, nr_pages);
            pa.free_pages(array, order);
            self.abandon(area, start);
            return Err(AllocError);
        }
        self.publish(area, pfns, true, zone);
        Ok(NonNull::new(start as *mut u8).expect("vmalloc range starts above 0"))
    }

    /// Reserves an area of `va_size` bytes (`alloc_vmap_area`), purging the lazy areas once if
    /// the space is full. The area is busy and `VM_UNINITIALIZED` until [`Self::publish`]. Out
    /// of space, it reports `Address range restricted` (unless `__GFP_NOWARN`, ratelimited);
    /// the vmalloc family adds its own `vm_struct allocation failed` report.
    #[expect(clippy::too_many_arguments, reason = "the area's vm_struct fields")]
    fn alloc_area<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        va_size: usize,
        align: usize,
        gfp: Gfp,
        flags: u32,
        requested: usize,
        caller: &'static Location<'static>,
    ) -> Result<(u32, usize), AllocError> {
        let mut space = self.lock_with_nodes(pa, NODES_PER_ALLOC, gfp, caller)?;
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
            self.drain_cache(pa, usize::MAX);
            space = self.lock_with_nodes(pa, NODES_PER_ALLOC, gfp, caller)?;
            area = space.alloc(va_size, align);
        }
        if area.is_none() && (space.lazy.len > 0 || space.va_pool.nr > 0) {
            // `reclaim_and_purge_vmap_areas`: purge, with the pools fully decayed.
            self.purge_locked(&mut space, true);
            area = space.alloc(va_size, align);
        }
        let Some(i) = area else {
            drop(space);
            if !gfp.contains(__GFP_NOWARN) && self.warn_rs.check(pa.platform().now_ns()) != Verdict::Suppress {
                pa.platform().log(
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
        Ok((i, node.start))
    }

    /// Gives back the range of an area that never became visible (nothing is mapped).
    fn abandon(&self, area: u32, start: usize) {
        let mut guard = self.space.lock();
        let space = &mut *guard;
        let gone = space.busy.remove(&mut space.pool, start);
        debug_assert_eq!(gone, area);
        space.release(area);
    }

    /// Makes an area visible with its frames (from zones up to `zone`).
    fn publish(&self, area: u32, pfns: PfnArray, vmalloc_pages: bool, zone: u8) {
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
    fn fill_pages<P: Platform>(&self, pa: &PageAllocator<P>, pfns: &mut PfnArray, gfp: Gfp, got: usize) -> usize {
        let want = pfns.len as usize;
        let mut got = got;
        while got < want {
            let mut slots: [Option<&Page>; BULK] = [None; BULK];
            let n = pa.alloc_pages_bulk(gfp, &mut slots[..(want - got).min(BULK)]);
            if n == 0 {
                break;
            }
            for page in slots.iter().flatten() {
                let pfn = pa.page_to_pfn(page).expect("allocated page is in mem_map");
                pfns.set(got, pfn as u32);
                got += 1;
            }
        }
        got
    }

    /// Frees the first `n` frames of `pfns`, last first, so that per-CPU lists (LIFO) hand
    /// them out again in ascending order, physically contiguous runs included.
    pub(super) fn free_frames<P: Platform>(&self, pa: &PageAllocator<P>, pfns: &PfnArray, n: usize) {
        for i in (0..n).rev() {
            let page = pa.pfn_to_page(pfns.get(i) as usize).expect("frame is in mem_map");
            pa.free_pages(page, 0);
        }
    }

    /// Maps `pfns` from `start`, one [`Mmu::map`] per physically contiguous run; on failure
    /// nothing stays mapped.
    fn map_frames(&self, start: usize, pfns: &PfnArray) -> Result<(), super::MapError> {
        let n = pfns.len as usize;
        let mut i = 0;
        while i < n {
            let first = pfns.get(i) as usize;
            let mut run = 1;
            while i + run < n && pfns.get(i + run) as usize == first + run {
                run += 1;
            }
            if let Err(e) = self.mmu.map(start + i * PAGE_SIZE, first, run) {
                self.mmu.unmap(start, i * PAGE_SIZE);
                return Err(e);
            }
            i += run;
        }
        Ok(())
    }

    /// `vfree(addr)`: frees a vmalloc area (VM-6: NULL is a no-op, misuse is reported and
    /// ignored). In atomic context the free is queued and completes later (VM-7).
    #[track_caller]
    pub fn vfree<P: Platform>(&self, pa: &PageAllocator<P>, addr: *const u8) {
        self.vfree_at(pa, addr, Location::caller());
    }

    fn vfree_at<P: Platform>(&self, pa: &PageAllocator<P>, addr: *const u8, caller: &Location<'_>) {
        if addr.is_null() {
            return;
        }
        if pa.platform().context().atomic {
            self.vfree_atomic_at(pa, addr, caller);
            return;
        }
        self.drain_deferred(pa, true);
        if !(addr as usize).is_multiple_of(PAGE_SIZE) {
            self.warn(pa, caller, "vfree", format_args!("Trying to vfree() bad address ({:016x})", addr as usize));
            return;
        }
        self.remove_area(pa, addr, caller, Release::Pages);
    }

    /// `vfree_atomic(addr)`: queues the area and, when the queue was empty, kicks the
    /// platform's worker ([`Platform::schedule_work`], the kernel's `schedule_work` of
    /// `delayed_vfree_work`), which frees it with [`Self::flush_deferred`]. The next
    /// `vmalloc`/`vfree` outside atomic context and the shrinker ([`Self::shrink`], run by
    /// direct reclaim and kswapd) free it too, whichever comes first.
    #[track_caller]
    pub fn vfree_atomic<P: Platform>(&self, pa: &PageAllocator<P>, addr: *const u8) {
        if !addr.is_null() {
            self.vfree_atomic_at(pa, addr, Location::caller());
        }
    }

    fn vfree_atomic_at<P: Platform>(&self, pa: &PageAllocator<P>, addr: *const u8, caller: &Location<'_>) {
        if !(addr as usize).is_multiple_of(PAGE_SIZE) {
            self.warn(pa, caller, "vfree", format_args!("Trying to vfree() bad address ({:016x})", addr as usize));
            return;
        }
        let mut space = self.space.lock();
        let i = find_area(&space, addr as usize);
        if i == NIL {
            drop(space);
            self.warn_nonexistent(pa, caller, "vfree", addr);
            return;
        }
        let head = space.deferred;
        let node = space.pool.get_mut(i);
        node.flags |= VM_DEFERRED;
        node.next = head;
        let pages = node.nr_pages().max(1);
        space.deferred = i;
        super::locked_add(&self.deferred_pages, pages);
        self.nr_deferred.fetch_add(1, Relaxed);
        self.stats.deferred_frees.fetch_add(1, Relaxed);
        drop(space);
        // `llist_add` returned true: the first entry of an empty queue schedules the work; a
        // worker already draining takes later entries in the same run (it pops until empty).
        if head == NIL {
            pa.platform().schedule_work();
        }
    }

    /// Completes every deferred `vfree` now (the kernel's `delayed_vfree_work`, run by the
    /// platform's worker after [`Platform::schedule_work`]). Must not be called in atomic
    /// context (it is then a no-op).
    pub fn flush_deferred<P: Platform>(&self, pa: &PageAllocator<P>) {
        if !pa.platform().context().atomic {
            self.drain_deferred(pa, true);
        }
    }

    /// Frees every queued area, each as `vfree` would (`cache`: small areas may be parked in
    /// the frame cache) or straight back to the page allocator (reclaim). Returns the frames
    /// given back to the page allocator.
    pub(super) fn drain_deferred<P: Platform>(&self, pa: &PageAllocator<P>, cache: bool) -> usize {
        let mut freed = 0;
        while self.nr_deferred.load(Relaxed) > 0 {
            let mut space = self.space.lock();
            let i = space.deferred;
            if i == NIL {
                break;
            }
            space.deferred = space.pool.get(i).next;
            let node = space.pool.get_mut(i);
            node.flags &= !VM_DEFERRED;
            node.next = NIL;
            super::locked_sub(&self.deferred_pages, node.nr_pages().max(1));
            self.nr_deferred.fetch_sub(1, Relaxed);
            let cap = if cache { self.cache_limit_pages(pa.total_managed()) } else { 0 };
            let (pages, flags, purge) = self.retire(&mut space, i, Release::Pages, cap);
            drop(space);
            if let Some(pfns) = pages
                && flags & (VM_ALLOC | VM_MAP_PUT_PAGES) != 0
            {
                freed += pfns.len as usize;
            }
            self.finish_free(pa, pages, flags, Release::Pages, purge);
        }
        freed
    }

    /// Unlinks the area at `addr` (a live, published area) or reports it.
    fn remove_area<P: Platform>(&self, pa: &PageAllocator<P>, addr: *const u8, caller: &Location<'_>, how: Release) {
        let mut space = self.space.lock();
        let i = find_area(&space, addr as usize);
        if i == NIL {
            drop(space);
            let func = if how == Release::Pages { "vfree" } else { "vunmap" };
            self.warn_nonexistent(pa, caller, func, addr);
            return;
        }
        let cap = self.cache_limit_pages(pa.total_managed());
        let (pages, flags, purge) = self.retire(&mut space, i, how, cap);
        drop(space);
        self.finish_free(pa, pages, flags, how, purge);
    }

    /// Parks vmalloc area `i` in the frame cache if it fits under `cache_cap` pages, else moves
    /// it to the lazy tree; returns the frames to free, the flags, and whether a purge is due.
    fn retire(&self, space: &mut Space, i: u32, how: Release, cache_cap: usize) -> (Option<PfnArray>, u32, bool) {
        let node = space.pool.get(i);
        let (nr, flags) = (node.nr_pages(), node.flags);
        if flags & VM_ALLOC != 0 {
            super::locked_sub(&self.nr_vmalloc_pages, nr);
        }
        let cacheable = how == Release::Pages && flags & (VM_ALLOC | VM_MAP_PUT_PAGES | VM_NO_GUARD) == VM_ALLOC;
        if cacheable && space.cache.pages + nr <= cache_cap && space.cache_put(i) {
            return (None, flags, false);
        }
        let pages = space.pool.get_mut(i).pages.take();
        space.retire(i);
        (pages, flags, space.lazy_pages > self.lazy_max_pages())
    }

    fn finish_free<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        pages: Option<PfnArray>,
        flags: u32,
        how: Release,
        purge: bool,
    ) {
        if let Some(pfns) = pages {
            if how == Release::Pages && flags & (VM_ALLOC | VM_MAP_PUT_PAGES) != 0 {
                self.free_frames(pa, &pfns, pfns.len as usize);
            }
            pa.free_pages_addr(pfns.block().as_ptr(), pfns.order);
        }
        if purge {
            self.lazy_purge(pa);
        }
    }

    /// `vmap(pages, count, flags, PAGE_KERNEL)`: maps the caller's pages contiguously. The pages
    /// stay the caller's (VM-9) unless `VM_MAP_PUT_PAGES`, which hands them to `vfree`.
    ///
    /// # Errors
    /// No pages, more pages than memory, `VM_FLUSH_RESET_PERMS` (warned), a page that is not
    /// in this machine, or no address space.
    #[track_caller]
    pub fn vmap<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        pages: &[&Page],
        flags: u32,
    ) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        let ctx = pa.platform().context();
        if ctx.atomic {
            pa.report_might_sleep(caller);
        }
        if flags & VM_FLUSH_RESET_PERMS != 0 {
            self.warn(pa, caller, "vmap", format_args!("vmap: VM_FLUSH_RESET_PERMS is not allowed"));
            return Err(AllocError);
        }
        let mut flags = flags;
        if flags & VM_NO_GUARD != 0 {
            self.warn(pa, caller, "vmap", format_args!("vmap: VM_NO_GUARD dropped"));
            flags &= !VM_NO_GUARD;
        }
        if pages.is_empty() || pages.len() > pa.total_managed() {
            return Err(AllocError);
        }
        let gfp = if ctx.atomic { GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM) } else { GFP_KERNEL };
        let bytes = pages.len() * PAGE_SIZE;
        let (area, start) =
            self.alloc_area(pa, bytes + PAGE_SIZE, PAGE_SIZE, gfp, flags | VM_MAP | VM_UNINITIALIZED, bytes, caller)?;
        let order = PfnArray::order_for(pages.len());
        let Ok(array) = pa.alloc_pages_at(Self::array_gfp(gfp) | __GFP_NOWARN, order, caller) else {
            self.abandon(area, start);
            return Err(AllocError);
        };
        let block = pa.page_address(array).expect("array gfp has no __GFP_HIGHMEM");
        // SAFETY: As in `vmalloc_node_range`.
        let mut pfns = unsafe { PfnArray::new(block, order, pages.len() as u32) };
        for (i, page) in pages.iter().enumerate() {
            let Some(pfn) = pa.page_to_pfn(page) else {
                pa.free_pages(array, order);
                self.abandon(area, start);
                return Err(AllocError);
            };
            pfns.set(i, pfn as u32);
        }
        if self.map_frames(start, &pfns).is_err() {
            pa.free_pages(array, order);
            self.abandon(area, start);
            return Err(AllocError);
        }
        self.publish(area, pfns, false, 0);
        Ok(NonNull::new(start as *mut u8).expect("vmalloc range starts above 0"))
    }

    /// `vunmap(addr)`: removes a `vmap` mapping; the pages are not freed (VM-9). Calling it in
    /// atomic context is a bug (reported as a sleeping call, VM-7); it is carried out anyway.
    #[track_caller]
    pub fn vunmap<P: Platform>(&self, pa: &PageAllocator<P>, addr: *const u8) {
        let caller = Location::caller();
        if pa.platform().context().atomic {
            pa.report_might_sleep(caller);
        }
        if !addr.is_null() {
            self.remove_area(pa, addr, caller, Release::MappingOnly);
        }
    }

    /// `get_vm_area(size, flags)` (`__get_vm_area_node`): reserves address space (plus a guard
    /// page unless `VM_NO_GUARD`) without mapping anything. A `VM_IOREMAP` area is aligned to
    /// its size rounded up to a power of two, between a page and `IOREMAP_MAX_ORDER`. In
    /// atomic context it is a bug (`BUG_ON(in_interrupt())`), reported as a sleeping call and
    /// carried out.
    ///
    /// # Errors
    /// Size 0, a size that wraps when rounded up to pages or with its guard page (silently, as
    /// the kernel's `-EINVAL`), or no address space.
    #[track_caller]
    pub fn get_vm_area<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        size: usize,
        flags: u32,
    ) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        let ctx = pa.platform().context();
        if ctx.atomic {
            pa.report_might_sleep(caller);
        }
        let bytes = size.checked_next_multiple_of(PAGE_SIZE).filter(|&b| b > 0).ok_or(AllocError)?;
        let align = if flags & VM_IOREMAP != 0 { ioremap_align(bytes) } else { PAGE_SIZE };
        let guard = if flags & VM_NO_GUARD != 0 { 0 } else { PAGE_SIZE };
        let va_size = bytes.checked_add(guard).ok_or(AllocError)?;
        let gfp = if ctx.atomic { GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM) } else { GFP_KERNEL };
        let (_, start) = self.alloc_area(pa, va_size, align, gfp, flags, size, caller)?;
        Ok(NonNull::new(start as *mut u8).expect("vmalloc range starts above 0"))
    }

    /// `free_vm_area`: gives back an area from [`Self::get_vm_area`] (lazily, like any area).
    #[track_caller]
    pub fn free_vm_area<P: Platform>(&self, pa: &PageAllocator<P>, addr: *const u8) {
        self.remove_area(pa, addr, Location::caller(), Release::MappingOnly);
    }

    /// `vmalloc_to_pfn`: the frame mapped at `addr`, `None` outside a live area or in a guard
    /// page (VM-10).
    pub fn vmalloc_to_pfn(&self, addr: *const u8) -> Option<usize> {
        if !self.is_vmalloc_addr(addr) {
            return None;
        }
        let addr = addr as usize;
        let space = self.space.lock();
        let i = space.busy.containing(&space.pool, addr);
        if i == NIL || space.pool.get(i).flags & VM_PARKED != 0 {
            return None;
        }
        let node = space.pool.get(i);
        let index = (addr - node.start) / PAGE_SIZE;
        let pfns = node.pages?;
        (index < pfns.len as usize).then(|| pfns.get(index) as usize)
    }

    /// `vmalloc_to_page`: the page mapped at `addr` (VM-10).
    pub fn vmalloc_to_page<'a, P: Platform>(&self, pa: &'a PageAllocator<P>, addr: *const u8) -> Option<&'a Page> {
        pa.pfn_to_page(self.vmalloc_to_pfn(addr)?)
    }

    /// `vrealloc(p, size, gfp)` (VM-12): `size == 0` frees `p` and returns `Ok(None)` (the
    /// kernel's NULL); a NULL `p` allocates; shrinking, and growing within the pages already
    /// allocated, happen in place (zeroing with `__GFP_ZERO`); otherwise a new area gets a copy
    /// of the requested bytes and `p` is freed.
    ///
    /// # Errors
    /// `p` starts no area, or an area that is not vmalloc memory (`get_vm_area`, `vmap`;
    /// warned, nothing touched), or the new area cannot be allocated (`p` is left as it was).
    #[track_caller]
    pub fn vrealloc<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        p: *const u8,
        size: usize,
        gfp: Gfp,
    ) -> Result<Option<NonNull<u8>>, AllocError> {
        let caller = Location::caller();
        if size == 0 {
            self.vfree_at(pa, p, caller);
            return Ok(None);
        }
        if p.is_null() {
            return self.vmalloc_node_range(pa, size, PAGE_SIZE, gfp, 0, NUMA_NO_NODE, caller).map(Some);
        }
        let addr = p as usize;
        let (i, old_size, alloced) = {
            let space = self.space.lock();
            let i = find_area(&space, addr);
            if i == NIL {
                drop(space);
                self.warn_nonexistent(pa, caller, "vrealloc", p);
                return Err(AllocError);
            }
            let node = space.pool.get(i);
            if node.flags & VM_ALLOC == 0 || node.pages.is_none() {
                // `get_vm_area` address space (nothing mapped) or a `vmap` of the caller's
                // pages: nothing vrealloc may copy or free. The kernel does not check and
                // faults or frees what it does not own; kmem refuses.
                drop(space);
                let msg = format_args!("Trying to vrealloc() non-vmalloc vm area ({addr:016x})");
                self.warn(pa, caller, "vrealloc", msg);
                return Err(AllocError);
            }
            (i, node.requested, node.nr_pages() * PAGE_SIZE)
        };
        if size <= alloced {
            if gfp.contains(__GFP_ZERO) {
                let (lo, hi) = (size.min(old_size), size.max(old_size));
                self.mmu.zero(addr + lo, hi - lo);
            }
            self.space.lock().pool.get_mut(i).requested = size;
            return Ok(NonNull::new(p.cast_mut()));
        }
        let new = self.vmalloc_node_range(pa, size, PAGE_SIZE, gfp, 0, NUMA_NO_NODE, caller)?;
        self.mmu.copy(new.as_ptr() as usize, addr, old_size);
        self.vfree_at(pa, p, caller);
        Ok(Some(new))
    }

    fn warn_nonexistent<P: Platform>(&self, pa: &PageAllocator<P>, caller: &Location<'_>, func: &str, addr: *const u8) {
        self.warn(pa, caller, func, format_args!("Trying to {func}() nonexistent vm area ({:016x})", addr as usize));
    }

    /// `WARN(1, fmt, ...)`: the message, the `WARNING:` line, and the call trace.
    pub(super) fn warn<P: Platform>(
        &self,
        pa: &PageAllocator<P>,
        caller: &Location<'_>,
        func: &str,
        msg: fmt::Arguments<'_>,
    ) {
        let platform = pa.platform();
        platform.log(Level::Err, msg);
        platform.log(Level::Warning, format_args!("WARNING: CPU: {} at {caller} {func}", platform.cpu().unwrap_or(0)));
        platform.dump_stack(caller);
    }
}

/// `IOREMAP_MAX_ORDER` (generic `linux/vmalloc.h`: 128 pages).
const IOREMAP_MAX_ORDER: u32 = 7 + PAGE_SHIFT;

/// The alignment of a `VM_IOREMAP` area of `bytes` (page rounded, guard excluded):
/// `1 << clamp(get_count_order_long(bytes), PAGE_SHIFT, IOREMAP_MAX_ORDER)`.
fn ioremap_align(bytes: usize) -> usize {
    // `get_count_order_long`: the order of `bytes` rounded up to a power of two.
    let order = usize::BITS - (bytes - 1).leading_zeros();
    1 << order.clamp(PAGE_SHIFT, IOREMAP_MAX_ORDER)
}

/// The live, published area starting exactly at `addr`, or `NIL` (`find_unlink_vmap_area`
/// finds by start; an area being set up or already queued for a deferred free does not count).
fn find_area(space: &Space, addr: usize) -> u32 {
    let i = space.busy.floor(&space.pool, addr);
    if i == NIL {
        return NIL;
    }
    let node = space.pool.get(i);
    if node.start != addr || node.flags & (VM_UNINITIALIZED | VM_DEFERRED | VM_PARKED) != 0 {
        return NIL;
    }
    i
}
