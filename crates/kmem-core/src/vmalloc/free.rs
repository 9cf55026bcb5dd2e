//! Freeing areas (SEMANTICS §5.3, §5.4): `vfree` (queued in atomic context, VM-7), the
//! deferred queue, `vunmap` and `free_vm_area`.
//!
//! A freed area is unmapped at once, under the vmap lock, unless the frame cache keeps it with
//! its frames: the kernel clears the PTEs at free time (`vunmap_range_noflush` in
//! `free_unmap_vmap_area`) and defers only the TLB flush, so an access through a stale address
//! never reaches a frame someone else owns now (the frames of a `vfree`, the caller's pages
//! after a `vunmap`). Only then does the area enter the lazy tree, and only after the lock is
//! dropped are its frames and pfn array freed. The address range itself stays lazily freed
//! until a purge (VM-8), which only releases what the [`Mmu`] still keeps for it
//! ([`Mmu::purge`]). An area the platform cannot unmap keeps its frames (reported) and its
//! range stays busy for good (`Space::strand`): [`Mmu::unmap`]'s contract forbids reusing
//! either, and a purge only flushes ranges that were unmapped.

use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::api::find_area;
use super::node::NIL;
use super::raw::PfnArray;
use super::space::Space;
use super::{Mmu, VM_DEFERRED, VM_MAP_PUT_PAGES, VM_NO_GUARD, VM_VMALLOC, Vmalloc};
use crate::kmem::Kmem;
use crate::order::PAGE_SIZE;
use crate::platform::Level;
use crate::platform::Platform;
use crate::sync::SpinGuard;

/// What a free of an area does with its pages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Release {
    /// `vfree`: owned pages go back to the page allocator.
    Pages,
    /// `vunmap`/`free_vm_area`: only the mapping goes.
    MappingOnly,
}

/// A flag `retire` adds (outside the `VM_*` bits) when the area could not be unmapped.
const UNMAP_FAILED: u32 = 1 << 31;

impl<M: Mmu> Vmalloc<M> {
    /// `vfree(addr)`: frees a vmalloc area (VM-6: NULL is a no-op, misuse is reported and
    /// ignored). In atomic context the free is queued and completes later (VM-7).
    ///
    /// # Safety
    /// `addr` is NULL, starts no live area (reported), or starts an area the caller owns:
    /// no one else — no safe handle such as a `Vec` in vmalloc memory — uses it, and the
    /// caller does not use it afterwards.
    #[track_caller]
    pub unsafe fn vfree<P: Platform>(&self, k: &Kmem<P>, addr: *const u8) {
        self.bind(k);
        self.vfree_at(k, addr, Location::caller());
    }

    pub(super) fn vfree_at<P: Platform>(&self, k: &Kmem<P>, addr: *const u8, caller: &Location<'_>) {
        if addr.is_null() {
            return;
        }
        if k.platform().context().atomic {
            self.vfree_atomic_at(k, addr, caller);
            return;
        }
        self.drain_deferred(k, true);
        if !(addr as usize).is_multiple_of(PAGE_SIZE) {
            self.warn_bad_address(k, caller, "vfree", addr);
            return;
        }
        self.remove_area(k, addr, caller, Release::Pages, "vfree");
    }

    /// `vfree_atomic(addr)`: queues the area and, when the queue was empty, kicks the
    /// platform's worker ([`Platform::schedule_work`], the kernel's `schedule_work` of
    /// `delayed_vfree_work`), which frees it with [`Self::flush_deferred`]. The next
    /// `vmalloc`/`vfree` outside atomic context and the shrinker ([`Self::shrink`], run by
    /// direct reclaim and kswapd) free it too, whichever comes first.
    ///
    /// # Safety
    /// `addr` is NULL, starts no live area (reported), or starts an area the caller owns:
    /// no one else — no safe handle such as a `Vec` in vmalloc memory — uses it, and the
    /// caller does not use it afterwards.
    #[track_caller]
    pub unsafe fn vfree_atomic<P: Platform>(&self, k: &Kmem<P>, addr: *const u8) {
        self.bind(k);
        if !addr.is_null() {
            self.vfree_atomic_at(k, addr, Location::caller());
        }
    }

    fn vfree_atomic_at<P: Platform>(&self, k: &Kmem<P>, addr: *const u8, caller: &Location<'_>) {
        if !(addr as usize).is_multiple_of(PAGE_SIZE) {
            self.warn_bad_address(k, caller, "vfree", addr);
            return;
        }
        let mut space = self.space.lock();
        let i = find_area(&space, addr as usize);
        if i == NIL {
            drop(space);
            self.warn_nonexistent(k, caller, "vfree", addr);
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
            k.platform().schedule_work();
        }
    }

    /// Completes every deferred `vfree` now (the kernel's `delayed_vfree_work`, run by the
    /// platform's worker after [`Platform::schedule_work`]). Must not be called in atomic
    /// context (it is then a no-op).
    pub fn flush_deferred<P: Platform>(&self, k: &Kmem<P>) {
        self.bind(k);
        if !k.platform().context().atomic {
            self.drain_deferred(k, true);
        }
    }

    /// Frees every queued area, each as `vfree` would (`cache`: small areas may be parked in
    /// the frame cache) or straight back to the page allocator (reclaim). Returns the frames
    /// given back to the page allocator.
    pub(super) fn drain_deferred<P: Platform>(&self, k: &Kmem<P>, cache: bool) -> usize {
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
            let cap = if cache { self.cache_limit_pages(k.total_managed()) } else { 0 };
            let (pages, flags, purge, array) = self.retire(k, &mut space, i, Release::Pages, cap);
            drop(space);
            if let Some(pfns) = pages
                && flags & (VM_VMALLOC | VM_MAP_PUT_PAGES) != 0
            {
                freed += pfns.len as usize;
            }
            self.finish_free(k, pages, flags, Release::Pages, purge, array);
        }
        freed
    }

    /// Unlinks the area at `addr` (a live, published area) or reports it. `func` names the
    /// caller in the report of a vmalloc area given to a `Release::MappingOnly` free: its
    /// frames are kmem's to free and no caller holds them (kmem hands out no page array), so
    /// only `vfree` may take it; it is left as it was (as `remove_vm_area` leaves it).
    pub(super) fn remove_area<P: Platform>(
        &self,
        k: &Kmem<P>,
        addr: *const u8,
        caller: &Location<'_>,
        how: Release,
        func: &str,
    ) {
        let space = self.space.lock();
        let i = find_area(&space, addr as usize);
        if i == NIL {
            drop(space);
            let func = if how == Release::Pages { "vfree" } else { "vunmap" };
            self.warn_nonexistent(k, caller, func, addr);
            return;
        }
        if how == Release::MappingOnly && space.pool.get(i).flags & VM_VMALLOC != 0 {
            drop(space);
            let msg = format_args!(
                "{func}: the area at {:016x} owns its pages (a vmalloc area), which kmem hands to no caller: free \
                 it with vfree(); ignored",
                addr as usize
            );
            self.warn(k, caller, func, msg);
            return;
        }
        let cap = self.cache_limit_pages(k.total_managed());
        self.release(k, space, i, how, cap);
    }

    /// Retires area `i` ([`Self::retire`]) under the vmap lock `space`, drops the lock, and
    /// finishes the free ([`Self::finish_free`]): every removal of a found area.
    pub(super) fn release<P: Platform>(
        &self,
        k: &Kmem<P>,
        mut space: SpinGuard<'_, Space>,
        i: u32,
        how: Release,
        cache_cap: usize,
    ) {
        let (pages, flags, purge, array) = self.retire(k, &mut space, i, how, cache_cap);
        drop(space);
        self.finish_free(k, pages, flags, how, purge, array);
    }

    /// Whether every frame area `i` owns is still allocated with the area's one reference
    /// (one read per frame), so it may be cached.
    fn frames_intact<P: Platform>(k: &Kmem<P>, space: &Space, i: u32) -> bool {
        let Some(pfns) = space.pool.get(i).pages.as_ref() else { return true };
        (0..pfns.len as usize)
            .all(|f| k.pfn_to_page(pfns.get(f) as usize).is_some_and(|p| p.refcount() == 1 && p.is_allocated()))
    }

    /// Parks vmalloc area `i` in the frame cache if it fits under `cache_cap` pages, else moves
    /// it to the lazy tree; returns the frames to free, the flags, whether a purge is due, and
    /// the page array a `VM_MAP_PUT_PAGES` caller handed over (0 for none; taken off the node).
    ///
    /// An area that leaves for the lazy tree is unmapped first, under the lock: its frames go
    /// back to the page allocator (or stay the caller's) as soon as the lock is dropped, and
    /// a purge may hand its range to someone else only after this lock hold.
    fn retire<P: Platform>(
        &self,
        k: &Kmem<P>,
        space: &mut Space,
        i: u32,
        how: Release,
        cache_cap: usize,
    ) -> (Option<PfnArray>, u32, bool, usize) {
        let node = space.pool.get_mut(i);
        let array = core::mem::take(&mut node.put_array);
        let (nr, flags, start) = (node.nr_pages(), node.flags, node.start);
        // Only kmem's own mark says the frames are vmalloc's: a `vmap` or `get_vm_area` area
        // keeps whatever `VM_ALLOC` its caller gave it, and owns no pages (VM-9, VM-13).
        if flags & VM_VMALLOC != 0 {
            super::locked_sub(&self.nr_vmalloc_pages, nr);
        }
        let cacheable = how == Release::Pages && flags & (VM_VMALLOC | VM_MAP_PUT_PAGES | VM_NO_GUARD) == VM_VMALLOC;
        // A frame freed behind the area's back (`__free_page(vmalloc_to_page(p))`, a misuse)
        // keeps the area out: the next vmalloc would map a page the buddy lists also hand
        // out. It goes the usual way, whose free of that frame is reported (the kernel's
        // `vfree` finds it the same way).
        if cacheable && space.cache.pages + nr <= cache_cap && Self::frames_intact(k, space, i) && space.cache_put(i) {
            debug_assert_eq!(array, 0, "only a VM_MAP_PUT_PAGES vmap has an array");
            return (None, flags, false, 0);
        }
        let pages = space.pool.get_mut(i).pages.take();
        // `vunmap_range_noflush`: the PTEs go now, only the "TLB flush" (the purge) waits. If the
        // platform cannot take the mapping away, the frames stay where the old address still
        // reaches them: they are kept, never reused (`finish_free` reports it), and so is the
        // range, which stays busy for good instead of going lazy.
        // Every area with a pfn array was mapped (vmalloc, `vmap`, `vm_map_ram`, `vmap_pfn`);
        // `get_vm_area` space has none.
        // SAFETY: The area is being freed: its owner gave it up (the free's contract).
        if nr > 0 && unsafe { self.mmu.unmap(start, nr * PAGE_SIZE) }.is_err() {
            let gone = space.busy.remove(&mut space.pool, start);
            debug_assert_eq!(gone, i);
            space.strand(i);
            super::locked_add(&self.stats.unmap_failures, 1);
            return (pages, flags | UNMAP_FAILED, false, array);
        }
        space.retire(i);
        (pages, flags, space.lazy_pages > self.lazy_max_pages(), array)
    }

    /// Frees what `retire` took off an area, after the lock: the frames (a `vfree` of an area
    /// that owns them), kmem's pfn array, and then a `VM_MAP_PUT_PAGES` caller's page array
    /// (`array`, 0 for none), which a `vfree` gives to `kvfree` and a `vunmap` leaves to the
    /// caller. An area that could not be unmapped keeps its frames, but not the array: no
    /// mapping reaches it.
    fn finish_free<P: Platform>(
        &self,
        k: &Kmem<P>,
        pages: Option<PfnArray>,
        flags: u32,
        how: Release,
        purge: bool,
        array: usize,
    ) {
        if let Some(pfns) = pages {
            if flags & UNMAP_FAILED != 0 {
                let n = pfns.len;
                k.platform().log(
                    Level::Err,
                    format_args!(
                        "vmalloc: cannot unmap a freed area of {n} pages; its frames are kept (leaked), never \
                         reused, and so is its address range"
                    ),
                );
            } else if how == Release::Pages && flags & (VM_VMALLOC | VM_MAP_PUT_PAGES) != 0 {
                self.free_frames(k, &pfns, 0..pfns.len as usize);
            }
            self.free_array(k, &pfns);
        }
        if how == Release::Pages && array != 0 {
            self.kvfree_put_array(k, array as *const u8);
        }
        if purge {
            self.lazy_purge(k);
        }
    }

    /// `kvfree(vm->pages)` for a `VM_MAP_PUT_PAGES` area: a vmalloc address goes to `vfree`
    /// (deferred in atomic context, as any), anything else to `kfree`.
    fn kvfree_put_array<P: Platform>(&self, k: &Kmem<P>, array: *const u8) {
        if self.is_vmalloc_addr(array) {
            self.vfree_at(k, array, Location::caller());
        } else {
            // SAFETY: `vmap_put_pages` checked that `array` started a live kmalloc object, and
            // its caller gave the object up to the area, which is being freed now: nothing else
            // frees or uses it.
            unsafe { k.kfree(array) };
        }
    }

    /// `vunmap(addr)`: removes a `vmap` mapping; the pages are not freed (VM-9). Calling it in
    /// atomic context is a bug (reported as a sleeping call, VM-7); it is carried out anyway.
    /// A vmalloc area is refused with a warning (only `vfree` frees its pages).
    ///
    /// # Safety
    /// `addr` is NULL, starts no live area (reported), or starts an area the caller owns:
    /// no one else — no safe handle such as a `Vec` in vmalloc memory — uses it, and the
    /// caller does not use it afterwards.
    #[track_caller]
    pub unsafe fn vunmap<P: Platform>(&self, k: &Kmem<P>, addr: *const u8) {
        self.bind(k);
        let caller = Location::caller();
        if k.platform().context().atomic {
            k.report_might_sleep(caller);
        }
        if addr.is_null() {
            return;
        }
        if !(addr as usize).is_multiple_of(PAGE_SIZE) {
            self.warn_bad_address(k, caller, "vunmap", addr);
            return;
        }
        self.remove_area(k, addr, caller, Release::MappingOnly, "vunmap");
    }

    /// `vfree`/`vunmap` of an address that is not page aligned: the kernel's `remove_vm_area`
    /// warns `Trying to vfree() bad address` (its words for both) and finds no area, so `func`
    /// then warns that the area does not exist, as it does for any address no area starts at.
    fn warn_bad_address<P: Platform>(&self, k: &Kmem<P>, caller: &Location<'_>, func: &str, addr: *const u8) {
        self.warn(k, caller, func, format_args!("Trying to vfree() bad address ({:016x})", addr as usize));
        self.warn_nonexistent(k, caller, func, addr);
    }

    /// `free_vm_area`: gives back an area from [`Self::get_vm_area`] (lazily, like any area). A
    /// vmalloc area is refused with a warning, as by [`Self::vunmap`].
    ///
    /// # Safety
    /// `addr` is NULL, starts no live area (reported), or starts an area the caller owns:
    /// no one else — no safe handle such as a `Vec` in vmalloc memory — uses it, and the
    /// caller does not use it afterwards.
    #[track_caller]
    pub unsafe fn free_vm_area<P: Platform>(&self, k: &Kmem<P>, addr: *const u8) {
        self.bind(k);
        self.remove_area(k, addr, Location::caller(), Release::MappingOnly, "free_vm_area");
    }
}
