//! Reuse paths of vmalloc (see `pool` for the lists): the frame cache (taking an area back,
//! releasing cached areas), purging with VA pool decay (`__purge_vmap_area_lazy`,
//! `vm_unmap_aliases`, `reclaim_and_purge_vmap_areas`), the shrinker entry (which also
//! completes deferred `vfree`s, VM-7), and contiguous frame allocation for fresh areas.
//!
//! Lock order as in the module root: the vmap lock is taken for list and tree surgery and for
//! the unmap calls of released areas; frames and pfn arrays are freed after it is dropped.

use core::panic::Location;
use core::ptr::NonNull;

use super::raw::PfnArray;
use super::space::Space;
use super::{Mmu, VM_ALLOC, VM_UNINITIALIZED, VM_VMALLOC, Vmalloc};
use crate::gfp::{__GFP_NOFAIL, __GFP_NORETRY, __GFP_NOWARN, __GFP_RECLAIM, Gfp};
use crate::kmem::Kmem;
use crate::order::{MAX_PAGE_ORDER, PAGE_SIZE, get_order};
use crate::platform::{Level, Platform};

/// Cached areas released per hold of the vmap lock.
const RELEASE_BATCH: usize = 16;

impl<M: Mmu> Vmalloc<M> {
    /// Takes a cached area of `va_size` bytes with `nr_pages` frames (from zones up to `zone`),
    /// aligned to `align`, for a vmalloc with flags `vm_flags`; zeroes it when `zero`
    /// (`__GFP_ZERO`, or `init_on_alloc`/`init_on_free` on: the caller decides).
    /// `None` on a miss: the caller allocates as usual.
    #[expect(clippy::too_many_arguments, reason = "the area's vm_struct fields")]
    pub(super) fn cache_alloc(
        &self,
        va_size: usize,
        nr_pages: usize,
        align: usize,
        zero: bool,
        zone: u8,
        vm_flags: u32,
        requested: usize,
        (caller, caller_ip): (&'static Location<'static>, usize),
    ) -> Option<NonNull<u8>> {
        let mut space = self.space.lock();
        if space.cache.nr == 0 {
            return None;
        }
        let i = space.cache_take(va_size, nr_pages, align.max(PAGE_SIZE), zone)?;
        let node = space.pool.get_mut(i);
        // Until it is zeroed the area is `VM_UNINITIALIZED`, as a fresh one is until mapped:
        // `vread_iter` must not show the last owner's bytes through it.
        let uninit = if zero { VM_UNINITIALIZED } else { 0 };
        node.flags = vm_flags | VM_ALLOC | VM_VMALLOC | uninit;
        node.requested = requested;
        node.caller = Some(caller);
        node.caller_ip = caller_ip;
        let start = node.start;
        super::locked_add(&self.nr_vmalloc_pages, nr_pages);
        super::locked_add(&self.stats.cache_hits, 1);
        drop(space);
        if zero {
            // VM-5: the frames hold what their last user wrote.
            // SAFETY: A cached area stays mapped; it was just taken for this caller alone.
            unsafe { self.mmu.zero(start, nr_pages * PAGE_SIZE) };
            self.space.lock().pool.get_mut(i).flags &= !VM_UNINITIALIZED;
        }
        NonNull::new(start as *mut u8)
    }

    /// Releases cached areas (largest first) until at least `max_pages` frames are freed or
    /// the cache is empty: each is unmapped, its range returned to the free tree, its frames
    /// and pfn array freed. An area the platform cannot unmap keeps its frames (leaked,
    /// reported) and its range stays busy for good ([`Mmu::unmap`]'s contract); only its pfn
    /// array is freed. Returns the frames freed.
    pub fn drain_cache<P: Platform>(&self, k: &Kmem<P>, max_pages: usize) -> usize {
        self.bind(k);
        let mut freed = 0;
        while freed < max_pages {
            // Each released area's pfn array, and whether its frames may be freed (unmapped).
            let mut batch: [Option<(PfnArray, bool)>; RELEASE_BATCH] = [None; RELEASE_BATCH];
            let mut taken = 0;
            {
                let mut guard = self.space.lock();
                let space = &mut *guard;
                while taken < RELEASE_BATCH && freed < max_pages {
                    let Some(i) = space.cache_evict() else { break };
                    let node = space.pool.get_mut(i);
                    let pfns = node.pages.take();
                    node.flags = 0;
                    let (start, end) = (node.start, node.end);
                    // SAFETY: A cached area belongs to the cache alone (its last owner freed it).
                    let unmapped = unsafe { self.mmu.unmap(start, end - start) }.is_ok();
                    if unmapped {
                        space.release(i);
                        freed += pfns.map_or(0, |p| p.len as usize);
                    } else {
                        // Frames still reachable through a mapping that would not go are
                        // kept, and so is the range.
                        space.strand(i);
                        super::locked_add(&self.stats.unmap_failures, 1);
                    }
                    batch[taken] = pfns.map(|p| (p, unmapped));
                    taken += 1;
                    super::locked_add(&self.stats.cache_releases, 1);
                }
            }
            if taken == 0 {
                break;
            }
            for (pfns, unmapped) in batch.iter().flatten() {
                let n = pfns.len as usize;
                if *unmapped {
                    self.free_frames(k, pfns, 0..n);
                } else {
                    let msg = format_args!(
                        "vmalloc: cannot unmap a cached area of {n} pages; its frames are kept (leaked), never \
                         reused, and so is its address range"
                    );
                    k.platform().log(Level::Err, msg);
                }
                self.free_array(k, pfns);
            }
        }
        freed
    }

    /// The lazy purge `vfree` triggers past [`Vmalloc::lazy_max_pages`]
    /// (`drain_vmap_area_work`): the VA pool decays by ~25 % and takes the purged ranges, and
    /// the frame cache gives back ~25 % of its frames.
    pub(super) fn lazy_purge<P: Platform>(&self, k: &Kmem<P>) {
        let cached = {
            let mut space = self.space.lock();
            self.purge_locked(&mut space, false);
            space.cache.pages
        };
        if cached >= 4 {
            self.drain_cache(k, cached >> 2);
        }
    }

    /// `vm_unmap_aliases`/`purge_vmap_area_lazy`: makes the address space of every lazily
    /// freed area reusable now (in the VA pool when it is on, after a ~25 % decay of the pool);
    /// their mappings went when they were freed, so this is the kernel's TLB flush
    /// ([`Mmu::purge`]). Returns the pages of address space purged. The frame cache is left
    /// alone: its frames were never freed, so its mappings alias no page anyone else owns.
    ///
    /// First the vmap blocks (`_vm_unmap_aliases`, Linux ≥ 6.5): a fragmented block (every page
    /// handed out was unmapped again, and fewer than `VMAP_PURGE_THRESHOLD` pages are left) is
    /// given back, and the dirty range of every other block is flushed (counted in
    /// [`VmStats::vb_flushes`](super::VmStats::vb_flushes)) and forgotten.
    pub fn vm_unmap_aliases<P: Platform>(&self, k: &Kmem<P>) -> usize {
        self.bind(k);
        self.purge_fragmented_blocks(k, false);
        let mut space = self.space.lock();
        self.flush_dirty_blocks(&mut space);
        self.purge_locked(&mut space, false)
    }

    /// `reclaim_and_purge_vmap_areas` and more: releases the whole frame cache, purges every
    /// lazy area and empties the VA pool into the free tree, so the free tree holds every free
    /// range. Returns the pages of address space purged.
    pub fn reclaim_and_purge<P: Platform>(&self, k: &Kmem<P>) -> usize {
        self.bind(k);
        self.drain_cache(k, usize::MAX);
        self.purge_fragmented_blocks(k, true);
        let mut space = self.space.lock();
        self.purge_locked(&mut space, true)
    }

    /// `__purge_vmap_area_lazy(.., full_pool_decay)`: decays the VA pool (fully when `full`),
    /// then purges the lazy areas into it (unless `full` or pools are off) or the free tree.
    pub(super) fn purge_locked(&self, space: &mut Space, full: bool) -> usize {
        super::locked_add(&self.stats.purges, 1);
        space.decay_pool(full);
        let populate = self.va_pools() && !full;
        // SAFETY: Purged ranges are lazily freed areas: unmapped when freed, owned by no one.
        space.purge(&mut |start, len| unsafe { self.mmu.purge(start, len) }, populate)
    }

    /// Pages the shrinker could free now (`count_objects`): the frame cache's frames and the
    /// pages of deferred frees ([`Vmalloc::deferred_pages`]).
    pub fn reclaimable_pages(&self) -> usize {
        self.cached_pages() + self.deferred_pages()
    }

    /// The shrinker (`vmap_node_shrink_scan`): completes the deferred `vfree`s (outside atomic
    /// context; their frames go straight back, not to the frame cache), so reclaim gets them
    /// back even when no worker ran (VM-7); empties the VA pool into the free tree; and
    /// releases cached areas until `nr_to_scan` frames in all are freed. Returns the frames
    /// freed.
    pub fn shrink<P: Platform>(&self, k: &Kmem<P>, nr_to_scan: usize) -> usize {
        self.bind(k);
        let freed = if k.platform().context().atomic { 0 } else { self.drain_deferred(k, false) };
        self.space.lock().decay_pool(true);
        freed + self.drain_cache(k, nr_to_scan.saturating_sub(freed))
    }

    /// Fills all of `pfns` from one physically contiguous block when one is free right away
    /// (no reclaim, no warning): the block is split into order-0 pages (`split_page`), as the
    /// kernel's huge-vmap path does, and the pages past the area are freed. One block maps
    /// with one [`Mmu::map`] call. Returns the entries filled: all or none.
    pub(super) fn fill_contiguous<P: Platform>(&self, k: &Kmem<P>, pfns: &mut PfnArray, gfp: Gfp) -> usize {
        let n = pfns.len as usize;
        let order = get_order(n * PAGE_SIZE);
        if n < 2 || order > MAX_PAGE_ORDER {
            return 0;
        }
        let try_gfp = gfp.difference(__GFP_RECLAIM.union(__GFP_NOFAIL)) | __GFP_NOWARN | __GFP_NORETRY;
        let Ok(block) = k.alloc_pages_at(try_gfp, order, Location::caller()) else { return 0 };
        // SAFETY: Allocated just above for this area, never handed out.
        if unsafe { k.split_page(block, order) }.is_err() {
            // SAFETY: Allocated just above, never handed out.
            unsafe { k.free_pages(block, order) };
            return 0;
        }
        let first = k.page_to_pfn(block).expect("allocated page is in mem_map");
        for i in 0..n {
            pfns.set(i, (first + i) as u32);
        }
        for pfn in (first + n..first + (1 << order)).rev() {
            // SAFETY: A split page of the block allocated above that the area does not take.
            unsafe { k.free_pages(k.pfn_to_page(pfn).expect("frame is in mem_map"), 0) };
        }
        n
    }
}
