//! Areas other than a fresh vmalloc (SEMANTICS §5.4): `vmap` of the caller's pages,
//! `get_vm_area` address space, `vmalloc_to_page`/`vmalloc_to_pfn` (VM-10) and `vrealloc`
//! (VM-12).

use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::api::find_area;
use super::node::NIL;
use super::{
    Mmu, NUMA_NO_NODE, VM_FLUSH_RESET_PERMS, VM_IOREMAP, VM_MAP, VM_MAP_PUT_PAGES, VM_NO_GUARD, VM_PARKED, VM_RAM,
    VM_RAM_BLOCK, VM_UNINITIALIZED, VM_VMALLOC, Vmalloc,
};
use crate::AllocError;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_ZERO, GFP_KERNEL, Gfp};
use crate::kmem::Kmem;
use crate::memmap::Page;
use crate::order::{PAGE_SHIFT, PAGE_SIZE};
use crate::page_alloc::PageAllocator;
use crate::platform::Platform;

impl<M: Mmu> Vmalloc<M> {
    /// `vmap(pages, count, flags, PAGE_KERNEL)`: maps the caller's pages contiguously. The pages
    /// stay the caller's (VM-9) unless `VM_MAP_PUT_PAGES`, which hands them to `vfree`; a
    /// `VM_ALLOC` in `flags` only labels the area. `flags` are sanitised first (see
    /// [`Self::vmalloc_node_range`]).
    ///
    /// # Errors
    /// No pages, more pages than memory, `VM_FLUSH_RESET_PERMS` (warned), a page that is not
    /// in this machine, or no address space.
    #[track_caller]
    pub fn vmap<P: Platform>(&self, k: &Kmem<P>, pages: &[&Page], flags: u32) -> Result<NonNull<u8>, AllocError> {
        self.bind(k);
        self.vmap_at(k, pages, flags, None, Location::caller())
    }

    /// `vmap(array, count, flags | VM_MAP_PUT_PAGES, PAGE_KERNEL)` as the kernel's callers
    /// write it: the area takes both the pages and the `struct page *` array that held them
    /// (`array`, the kernel's `vm->pages`), and `vfree` of the area frees every page and then
    /// gives the array to `kvfree` (a vmalloc address to `vfree`, anything else to `kfree`).
    /// `array` must be what `kmalloc` or `kvmalloc` of this machine returned (the start of a
    /// live kmalloc object, or of a vmalloc area), with room for `pages.len()` pointers;
    /// anything else is reported (`WARN`) and refused, the pages and the array left to the
    /// caller. On failure both stay the caller's, as in the kernel. `vunmap` of the area
    /// leaves both to the caller too (the kernel's `vunmap` frees neither, so they leak there).
    ///
    /// # Errors
    /// As [`Self::vmap`], and an `array` that is no allocation `kvfree` could free.
    ///
    /// # Safety
    /// On success the caller gives `array` up: nothing uses it afterwards (the area frees it
    /// on `vfree`, or hands it back on `vunmap`), and the pages in `pages` are the caller's to
    /// give up as well (as with [`Self::vmap`] and `VM_MAP_PUT_PAGES`).
    /// `array` is checked as [`Kmem::kmalloc_usable_size`] checks a pointer, under its
    /// contract: an allocation the caller holds, or an address nothing frees meanwhile.
    #[track_caller]
    pub unsafe fn vmap_put_pages<P: Platform>(
        &self,
        k: &Kmem<P>,
        pages: &[&Page],
        array: NonNull<u8>,
        flags: u32,
    ) -> Result<NonNull<u8>, AllocError> {
        self.bind(k);
        let caller = Location::caller();
        if !self.is_kvfree_array(k, array.as_ptr(), pages.len()) {
            let msg = format_args!(
                "vmap: VM_MAP_PUT_PAGES page array {:p} is not from kmalloc or kvmalloc (room for {} pointers)",
                array.as_ptr(),
                pages.len()
            );
            self.warn(k, caller, "vmap", msg);
            return Err(AllocError);
        }
        self.vmap_at(k, pages, flags | VM_MAP_PUT_PAGES, Some(array), caller)
    }

    /// Whether `kvfree` can free `array` and it has room for `count` page pointers: the start
    /// of a live kmalloc object, or of a live vmalloc area (`kvmalloc`'s fallback).
    /// `array` as for [`Kmem::kmalloc_usable_size`] (the caller's contract).
    fn is_kvfree_array<P: Platform>(&self, k: &Kmem<P>, array: *const u8, count: usize) -> bool {
        let Some(need) = count.checked_mul(size_of::<usize>()) else { return false };
        if !self.is_vmalloc_addr(array) {
            // SAFETY: `vmap_put_pages`'s caller holds `array` if it is an allocation, and no
            // other thread frees what it lies in otherwise (its contract).
            return unsafe { k.kmalloc_usable_size(array) }.is_some_and(|n| n >= need);
        }
        let space = self.space.lock();
        let i = find_area(&space, array as usize);
        i != NIL && {
            let node = space.pool.get(i);
            node.flags & VM_VMALLOC != 0 && node.requested >= need
        }
    }

    /// The body of [`Self::vmap`]; `put_array` is the array a `VM_MAP_PUT_PAGES` caller hands
    /// over ([`Self::vmap_put_pages`]), recorded on the area once it is mapped.
    fn vmap_at<P: Platform>(
        &self,
        k: &Kmem<P>,
        pages: &[&Page],
        flags: u32,
        put_array: Option<NonNull<u8>>,
        caller: &'static Location<'static>,
    ) -> Result<NonNull<u8>, AllocError> {
        let ctx = k.platform().context();
        if ctx.atomic {
            k.report_might_sleep(caller);
        }
        let mut flags = self.caller_flags(k, caller, "vmap", flags);
        // Both are `WARN_ON_ONCE` in mm/vmalloc.c: one report per machine.
        if flags & VM_FLUSH_RESET_PERMS != 0 {
            if !self.warned_reset_perms.swap(true, Relaxed) {
                self.warn(k, caller, "vmap", format_args!("vmap: VM_FLUSH_RESET_PERMS is not allowed"));
            }
            return Err(AllocError);
        }
        if flags & VM_NO_GUARD != 0 {
            if !self.warned_no_guard.swap(true, Relaxed) {
                self.warn(k, caller, "vmap", format_args!("vmap: VM_NO_GUARD dropped"));
            }
            flags &= !VM_NO_GUARD;
        }
        if pages.is_empty() || pages.len() > k.total_managed() {
            return Err(AllocError);
        }
        let gfp = if ctx.atomic { GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM) } else { GFP_KERNEL };
        let pfn = |i: usize| k.page_to_pfn(pages[i]);
        self.map_lent(k, pages.len(), PAGE_SIZE, gfp, flags | VM_MAP, &pfn, put_array, caller)
    }

    /// The shared body of `vmap`, `vmap_pfn` and the large `vm_map_ram`: reserves an area of
    /// `n` pages aligned to `align` (and a guard page, but for `VM_NO_GUARD` and `VM_RAM`
    /// areas), records frame `pfn(i)` for page `i` (`None`: everything is given back and the
    /// call fails), maps them, records `put_array`, and publishes the area. The frames stay the
    /// caller's (VM-9).
    #[expect(clippy::too_many_arguments, reason = "the callers differ in each")]
    pub(super) fn map_lent<P: Platform>(
        &self,
        k: &Kmem<P>,
        n: usize,
        align: usize,
        gfp: Gfp,
        flags: u32,
        pfn: &dyn Fn(usize) -> Option<usize>,
        put_array: Option<NonNull<u8>>,
        caller: &'static Location<'static>,
    ) -> Result<NonNull<u8>, AllocError> {
        let bytes = n.checked_mul(PAGE_SIZE).ok_or(AllocError)?;
        let guard = if flags & (VM_NO_GUARD | VM_RAM) != 0 { 0 } else { PAGE_SIZE };
        let (area, start) = self.alloc_area(k, bytes + guard, align, gfp, flags | VM_UNINITIALIZED, bytes, caller)?;
        let Ok(mut pfns) = self.alloc_array(k, n, gfp, caller) else {
            self.abandon(area, start);
            return Err(AllocError);
        };
        for i in 0..n {
            let Some(frame) = pfn(i) else {
                self.free_array(k, &pfns);
                self.abandon(area, start);
                return Err(AllocError);
            };
            pfns.set(i, frame as u32);
        }
        if let Err(failed) = self.map_frames(start, &pfns) {
            // A range left mapped is never reused.
            self.unwind_map(k, area, start, &pfns, false, failed);
            return Err(AllocError);
        }
        if let Some(array) = put_array {
            // Before `publish`: the area is not visible yet, so no free can miss the array.
            self.space.lock().pool.get_mut(area).put_array = array.as_ptr() as usize;
        }
        self.publish(area, pfns, false, 0);
        Ok(NonNull::new(start as *mut u8).expect("vmalloc range starts above 0"))
    }

    /// `vmap_pfn(pfns, count, prot)`: maps raw page frames in a `VM_IOREMAP` area (aligned as
    /// `get_vm_area` aligns one, guard page included) that owns nothing: `vunmap` (or `vfree`)
    /// only removes the mapping. The kernel's `vmap_pfn` is for memory that is *not* RAM and
    /// refuses a `pfn_valid` frame (`WARN_ON_ONCE`); kmem's machine has no other memory, so it
    /// maps frames of its memory map and refuses, with a warning, any frame outside it.
    ///
    /// # Errors
    /// No frames, a frame that is not in this machine (warned; nothing reserved), or no address
    /// space.
    #[track_caller]
    pub fn vmap_pfn<P: Platform>(&self, k: &Kmem<P>, pfns: &[usize]) -> Result<NonNull<u8>, AllocError> {
        self.bind(k);
        let caller = Location::caller();
        let atomic = k.platform().in_atomic();
        if atomic {
            k.report_might_sleep(caller);
        }
        if pfns.is_empty() || pfns.len() > k.total_managed() {
            return Err(AllocError);
        }
        if let Some(&bad) = pfns.iter().find(|&&pfn| k.pfn_to_page(pfn).is_none() || u32::try_from(pfn).is_err()) {
            let msg = format_args!("vmap_pfn: pfn {bad:#x} is not a page frame of this machine");
            self.warn(k, caller, "vmap_pfn_apply", msg);
            return Err(AllocError);
        }
        let gfp = if atomic { GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM) } else { GFP_KERNEL };
        let align = ioremap_align(pfns.len() * PAGE_SIZE);
        self.map_lent(k, pfns.len(), align, gfp, VM_IOREMAP, &|i| Some(pfns[i]), None, caller)
    }

    /// `get_vm_area(size, flags)` (`__get_vm_area_node`): reserves address space (plus a guard
    /// page unless `VM_NO_GUARD`) without mapping anything. A `VM_IOREMAP` area is aligned to
    /// its size rounded up to a power of two, between a page and `IOREMAP_MAX_ORDER`. In
    /// atomic context it is a bug (`BUG_ON(in_interrupt())`), reported as a sleeping call and
    /// carried out. `flags` are sanitised first (see [`Self::vmalloc_node_range`]); the area
    /// owns no pages whatever they say (a `VM_ALLOC` only labels it).
    ///
    /// # Errors
    /// Size 0, a size that wraps when rounded up to pages or with its guard page (silently, as
    /// the kernel's `-EINVAL`), or no address space.
    #[track_caller]
    pub fn get_vm_area<P: Platform>(&self, k: &Kmem<P>, size: usize, flags: u32) -> Result<NonNull<u8>, AllocError> {
        self.bind(k);
        let caller = Location::caller();
        let atomic = k.platform().in_atomic();
        if atomic {
            k.report_might_sleep(caller);
        }
        let flags = self.caller_flags(k, caller, "__get_vm_area_node", flags);
        let bytes = size.checked_next_multiple_of(PAGE_SIZE).filter(|&b| b > 0).ok_or(AllocError)?;
        let align = if flags & VM_IOREMAP != 0 { ioremap_align(bytes) } else { PAGE_SIZE };
        let guard = if flags & VM_NO_GUARD != 0 { 0 } else { PAGE_SIZE };
        let va_size = bytes.checked_add(guard).ok_or(AllocError)?;
        let gfp = if atomic { GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM) } else { GFP_KERNEL };
        let (_, start) = self.alloc_area(k, va_size, align, gfp, flags, size, caller)?;
        Ok(NonNull::new(start as *mut u8).expect("vmalloc range starts above 0"))
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
        if node.flags & VM_RAM_BLOCK != 0 {
            // A vmap block: only the pages of live `vm_map_ram` mappings map something.
            return super::ram::block_pfn(&pfns, index);
        }
        (index < pfns.len as usize).then(|| pfns.get(index) as usize)
    }

    /// `vmalloc_to_page`: the page mapped at `addr` (VM-10).
    pub fn vmalloc_to_page<'a, P: Platform>(&self, pa: &'a PageAllocator<P>, addr: *const u8) -> Option<&'a Page> {
        pa.pfn_to_page(self.vmalloc_to_pfn(addr)?)
    }

    /// Zeroes the first `len` bytes of the live area starting at `addr`, at most its mapped
    /// pages (the guard page and `get_vm_area` space are never written), as
    /// `kvfree_sensitive`'s `memzero_explicit` does before the free. Returns the area's mapped
    /// bytes, or `None` (nothing written) when `addr` starts no live area.
    ///
    /// # Safety
    /// If `addr` starts a live area, the caller owns it (it is about to free it): nothing else
    /// uses its bytes.
    pub unsafe fn zero_area(&self, addr: *const u8, len: usize) -> Option<usize> {
        let mapped = {
            let space = self.space.lock();
            let i = find_area(&space, addr as usize);
            if i == NIL {
                return None;
            }
            space.pool.get(i).nr_pages() * PAGE_SIZE
        };
        let n = len.min(mapped);
        if n > 0 {
            // SAFETY: The first `n` bytes of a live area are mapped; the caller owns the area.
            unsafe { self.mmu.zero(addr as usize, n) };
        }
        Some(mapped)
    }

    /// `vrealloc(p, size, gfp)` (VM-12): `size == 0` frees `p` and returns `Ok(None)` (the
    /// kernel's NULL); a NULL `p` allocates; shrinking, and growing within the pages already
    /// allocated, happen in place (zeroing what is given up or taken with `__GFP_ZERO`,
    /// `init_on_alloc` or `init_on_free`, as the kernel does); otherwise a new area gets a copy
    /// of the requested bytes and `p` is freed.
    ///
    /// # Errors
    /// `p` starts no area, or an area that is not vmalloc memory (`get_vm_area`, `vmap`;
    /// warned, nothing touched), or the new area cannot be allocated (`p` is left as it was).
    ///
    /// # Safety
    /// `p` is NULL, starts no live area (reported), or starts an area the caller owns:
    /// no one else — no safe handle such as a `Vec` in vmalloc memory — uses it, and the
    /// caller does not use it afterwards unless the call fails.
    #[track_caller]
    pub unsafe fn vrealloc<P: Platform>(
        &self,
        k: &Kmem<P>,
        p: *const u8,
        size: usize,
        gfp: Gfp,
    ) -> Result<Option<NonNull<u8>>, AllocError> {
        self.bind(k);
        let caller = Location::caller();
        if size == 0 {
            self.vfree_at(k, p, caller);
            return Ok(None);
        }
        if p.is_null() {
            return self.vmalloc_node_range(k, size, PAGE_SIZE, gfp, 0, NUMA_NO_NODE, caller).map(Some);
        }
        let addr = p as usize;
        let (i, old_size, alloced) = {
            let space = self.space.lock();
            let i = find_area(&space, addr);
            if i == NIL {
                drop(space);
                self.warn_nonexistent(k, caller, "vrealloc", p);
                return Err(AllocError);
            }
            let node = space.pool.get(i);
            if node.flags & VM_VMALLOC == 0 || node.pages.is_none() {
                // `get_vm_area` address space (nothing mapped) or a `vmap` of the caller's
                // pages, whatever flags the caller gave them (`VM_ALLOC` included): nothing
                // vrealloc may copy or free. The kernel does not check and faults or frees
                // what it does not own; kmem refuses.
                drop(space);
                let msg = format_args!("Trying to vrealloc() non-vmalloc vm area ({addr:016x})");
                self.warn(k, caller, "vrealloc", msg);
                return Err(AllocError);
            }
            (i, node.requested, node.nr_pages() * PAGE_SIZE)
        };
        if size <= alloced {
            // Shrinking zeroes the "freed" tail with `init_on_free` or `want_init_on_alloc`;
            // growing within the pages zeroes the "allocated" bytes with `want_init_on_alloc`
            // (`init_on_alloc` or `__GFP_ZERO`).
            let config = &k.slabs().config;
            let on_alloc = config.init_on_alloc || gfp.contains(__GFP_ZERO);
            if on_alloc || (size < old_size && config.init_on_free) {
                let (lo, hi) = (size.min(old_size), size.max(old_size));
                // SAFETY: Inside the area's mapped pages (`size <= alloced`), which the caller
                // hands over (`vrealloc`'s contract).
                unsafe { self.mmu.zero(addr + lo, hi - lo) };
            }
            self.space.lock().pool.get_mut(i).requested = size;
            return Ok(NonNull::new(p.cast_mut()));
        }
        let new = self.vmalloc_node_range(k, size, PAGE_SIZE, gfp, 0, NUMA_NO_NODE, caller)?;
        // SAFETY: `new` is a fresh area of at least `size > old_size` mapped bytes, and the old
        // area's first `old_size` bytes are mapped and handed over by the caller.
        unsafe { self.mmu.copy(new.as_ptr() as usize, addr, old_size) };
        self.vfree_at(k, p, caller);
        Ok(Some(new))
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
