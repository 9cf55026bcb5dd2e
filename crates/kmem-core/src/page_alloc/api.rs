//! The rest of the public page API (§2.10): addresses, `__get_free_pages`, exact and bulk
//! allocation, `split_page`, and the pfn/page/address conversions.

use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{AcqRel, Relaxed};

use super::PageAllocator;
use crate::AllocError;
use crate::gfp::{__GFP_COMP, __GFP_HIGHMEM, __GFP_ZERO, Gfp};
use crate::memmap::{Page, pg};
use crate::order::{PAGE_SHIFT, PAGE_SIZE, size_to_pages, try_get_order};
use crate::platform::{Level, Platform};
use crate::watermark::alloc_flags as af;
use crate::zone::Wmark;

impl<P: Platform> PageAllocator<P> {
    /// `page_to_pfn`, or `None` for a `Page` that is not in this machine's page array.
    #[inline]
    pub fn page_to_pfn(&self, page: &Page) -> Option<usize> {
        self.mm.pfn_of(page)
    }

    /// `pfn_to_page`, or `None` outside memory.
    #[inline]
    pub fn pfn_to_page(&self, pfn: usize) -> Option<&Page> {
        self.mm.get(pfn)
    }

    /// `compound_head(page)`: the head of the compound block (`__GFP_COMP`) that `page` is a
    /// tail of, or `page` itself (a head, a page of no compound block, a free page). Tails are
    /// not marked (a compound allocation costs nothing more): the head is the allocated
    /// `PG_head` page among the naturally aligned pages below whose block covers `page`.
    pub fn compound_head<'a>(&'a self, page: &'a Page) -> &'a Page {
        if page.flags() & pg::HEAD != 0 || page.is_allocated() {
            return page;
        }
        let Some(pfn) = self.mm.pfn_of(page) else { return page };
        (1..=crate::order::MAX_PAGE_ORDER)
            .map(|order| (order, pfn & !((1 << order) - 1)))
            .filter(|&(_, head)| head != pfn)
            .find_map(|(order, head)| {
                let h = self.mm.get(head)?;
                (h.flags() & pg::HEAD != 0 && h.order() >= order && h.is_allocated()).then_some(h)
            })
            .unwrap_or(page)
    }

    /// `page_address`: the direct-map address, or `None` for HighMem pages (not mapped).
    #[inline]
    pub fn page_address(&self, page: &Page) -> Option<NonNull<u8>> {
        let pfn = self.mm.pfn_of(page)?;
        self.pfn_address(pfn)
    }

    /// The direct-map address of `pfn`, if it is lowmem.
    #[inline]
    pub fn pfn_address(&self, pfn: usize) -> Option<NonNull<u8>> {
        if pfn < self.mm.start_pfn() || pfn >= self.direct_map_end_pfn {
            return None;
        }
        // SAFETY: `pfn` is inside the direct map, which covers `[start_pfn, direct_map_end_pfn)`.
        Some(unsafe { self.direct_map.add((pfn - self.mm.start_pfn()) << PAGE_SHIFT) })
    }

    /// `virt_to_page` for a direct-map address, or `None` if `addr` is not in the direct map.
    #[inline]
    pub fn virt_to_page(&self, addr: *const u8) -> Option<&Page> {
        self.mm.get(self.virt_to_pfn(addr)?)
    }

    /// The pfn of a direct-map address.
    #[inline]
    pub fn virt_to_pfn(&self, addr: *const u8) -> Option<usize> {
        let offset = (addr as usize).checked_sub(self.direct_map.as_ptr() as usize)?;
        let pfn = self.mm.start_pfn() + (offset >> PAGE_SHIFT);
        (pfn < self.direct_map_end_pfn).then_some(pfn)
    }

    /// `virt_to_phys`: the physical address (`pfn << PAGE_SHIFT | offset`) of a direct-map address.
    pub fn virt_to_phys(&self, addr: *const u8) -> Option<u64> {
        let pfn = self.virt_to_pfn(addr)?;
        Some(((pfn as u64) << PAGE_SHIFT) | (addr as u64 & (PAGE_SIZE as u64 - 1)))
    }

    /// `phys_to_virt` for lowmem physical addresses.
    pub fn phys_to_virt(&self, phys: u64) -> Option<NonNull<u8>> {
        let base = self.pfn_address((phys >> PAGE_SHIFT) as usize)?;
        // SAFETY: The offset is below a page, inside the page `base` maps.
        Some(unsafe { base.add((phys as usize) & (PAGE_SIZE - 1)) })
    }

    /// `__get_free_pages`: like [`Self::alloc_pages`] without `__GFP_HIGHMEM`, returning the
    /// direct-map address.
    ///
    /// # Errors
    /// As `alloc_pages`.
    #[track_caller]
    pub fn get_free_pages(&self, gfp: Gfp, order: u32) -> Result<NonNull<u8>, AllocError> {
        let page = self.alloc_pages_at(gfp.difference(__GFP_HIGHMEM), order, Location::caller())?;
        Ok(self.page_address(page).expect("lowmem page has an address"))
    }

    /// `get_zeroed_page`: one zeroed lowmem page.
    ///
    /// # Errors
    /// As `alloc_pages`.
    #[track_caller]
    pub fn get_zeroed_page(&self, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        let page = self.alloc_pages_at((gfp | __GFP_ZERO).difference(__GFP_HIGHMEM), 0, Location::caller())?;
        Ok(self.page_address(page).expect("lowmem page has an address"))
    }

    /// `free_pages(addr, order)`: a null address is a no-op; an address outside the direct
    /// map is reported and ignored.
    ///
    /// # Safety
    /// The block, if allocated, is the caller's to free: no one else — no safe handle such as
    /// a `Vec` in vmalloc memory or a pool element, no structure of kmem's own — uses it, and
    /// the caller does not use it afterwards. (Pages that are not allocated, a wrong order,
    /// a slab's or kmalloc's pages are reported and refused, PA-16.)
    #[track_caller]
    pub unsafe fn free_pages_addr(&self, addr: *const u8, order: u32) {
        if addr.is_null() {
            return;
        }
        let caller = Location::caller();
        match self.virt_to_page(addr) {
            Some(page) => self.free_pages_at(page, order, caller),
            None => self.report_bad_free(None, order, "address is not in the direct map", caller),
        }
    }

    /// `put_page`: drops one reference on the page's folio. A compound block's (`__GFP_COMP`;
    /// a tail page stands for its head) last reference frees the whole block. A page of no
    /// compound block is an order-0 folio: a plain block of more than one page only loses the
    /// reference while others still hold it; its last reference is the owner's to drop with
    /// `__free_pages(page, order)`, so a `put_page` of that one is reported as a free with the
    /// wrong order and refused (the kernel would free the head page alone and leak the rest).
    ///
    /// # Safety
    /// As for [`Self::free_pages`]: the reference dropped is the caller's.
    #[track_caller]
    pub unsafe fn put_page(&self, page: &Page) {
        let caller = Location::caller();
        let head = self.compound_head(page);
        if head.flags() & pg::HEAD != 0 {
            return self.free_pages_at(head, head.order(), caller);
        }
        if head.order() > 0
            && head.is_allocated()
            && head.refcount.fetch_update(AcqRel, Relaxed, |c| (c > 1).then(|| c - 1)).is_ok()
        {
            return;
        }
        self.free_pages_at(head, 0, caller);
    }

    /// `alloc_pages_exact`: `ceil(size / PAGE_SIZE)` contiguous lowmem pages; the rest of the
    /// `get_order(size)` block is freed at once, to the tail of the buddy lists (PA-18).
    /// `__GFP_COMP` and `__GFP_HIGHMEM` are stripped, with a warning the first time
    /// (`WARN_ON_ONCE`), as in the kernel.
    ///
    /// # Errors
    /// As `alloc_pages`, and for `size == 0`.
    #[track_caller]
    pub fn alloc_pages_exact(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        let order = try_get_order(size).ok_or(AllocError)?;
        let mut gfp = gfp;
        if gfp.intersects(__GFP_COMP.union(__GFP_HIGHMEM)) {
            // `WARN_ON_ONCE`: `__GFP_NOWARN` does not silence it.
            self.warn_once(
                super::reports::once::EXACT_FLAGS,
                "alloc_pages_exact",
                format_args!("__GFP_COMP|__GFP_HIGHMEM not allowed; stripped"),
                caller,
            );
            gfp = gfp.difference(__GFP_COMP.union(__GFP_HIGHMEM));
        }
        let page = self.alloc_pages_at(gfp, order, caller)?;
        let pfn = self.mm.pfn_of(page).expect("allocated page is in mem_map");
        self.split_block(pfn, order);
        // `make_alloc_exact`: each unused page goes back on its own with
        // `__free_pages_ok(page, 0, FPI_TO_TAIL)` — to the cold end of the buddy lists, never
        // through a per-CPU list (PA-18). Never handed out, so nothing to zero for
        // `init_on_free` (the kernel zeroes them again).
        let zone = &self.zones[self.zone_index_of(pfn)];
        for tail in pfn + size_to_pages(size)..pfn + (1 << order) {
            self.mm.page(tail).refcount.store(0, Relaxed);
            self.free_pages_ok(tail, 0, zone, true);
        }
        Ok(self.pfn_address(pfn).expect("lowmem page has an address"))
    }

    /// `free_pages_exact`: frees what [`Self::alloc_pages_exact`] returned, page by page.
    ///
    /// # Safety
    /// Every page of the range, if allocated, is the caller's to free: no one else — no safe handle such as
    /// a `Vec` in vmalloc memory or a pool element, no structure of kmem's own — uses it, and
    /// the caller does not use it afterwards. (Pages that are not allocated, a wrong order,
    /// a slab's or kmalloc's pages are reported and refused, PA-16.)
    #[track_caller]
    pub unsafe fn free_pages_exact(&self, addr: *const u8, size: usize) {
        let caller = Location::caller();
        let pages = size_to_pages(size);
        let end = pages.checked_mul(PAGE_SIZE).and_then(|bytes| (addr as usize).checked_add(bytes));
        if pages > 1 << crate::order::MAX_PAGE_ORDER || end.is_none() {
            self.report_bad_free(None, 0, "free_pages_exact: size larger than any allocation", caller);
            return;
        }
        for i in 0..pages {
            let page_addr = (addr as usize + i * PAGE_SIZE) as *const u8;
            match self.virt_to_page(page_addr) {
                Some(page) => self.free_pages_at(page, 0, caller),
                None => self.report_bad_free(None, 0, "free_pages_exact: address is not in the direct map", caller),
            }
        }
    }

    /// `split_page`: turns an allocated non-compound order-`order` block into independent
    /// order-0 pages, each with one reference.
    ///
    /// # Errors
    /// A compound page, or a page that is not an allocated block of that order (reported).
    ///
    /// # Safety
    /// The block, if allocated, is the caller's: no one frees or splits it meanwhile (the
    /// checks above and the rewrite of every page's state are not one atomic step).
    #[track_caller]
    pub unsafe fn split_page(&self, page: &Page, order: u32) -> Result<(), AllocError> {
        let caller = Location::caller();
        let Some(pfn) = self.mm.pfn_of(page) else {
            self.report_bad_free(None, order, "split_page: page is not in mem_map", caller);
            return Err(AllocError);
        };
        // `VM_BUG_ON_PAGE(PageCompound(page))`, `VM_BUG_ON_PAGE(!page_count(page))`; and no
        // page the caller does not own as a plain block: a reserved page (not allocated), a
        // slab's page or a cache structure's (their owners keep state in them).
        if page.flags() & pg::HEAD != 0
            || !page.is_allocated()
            || page.info() & (pg::SLAB | pg::CACHE) != 0
            || page.order() != order
        {
            self.platform.log(
                Level::Warning,
                format_args!(
                    "WARNING: at {caller} split_page: pfn:{pfn:05x} is compound, free, reserved, a slab's, or not of order {order}"
                ),
            );
            return Err(AllocError);
        }
        self.split_block(pfn, order);
        Ok(())
    }

    /// Makes an allocated order-`order` block at `pfn` independent order-0 pages: the head
    /// keeps its references, flags and owner words (only its order goes), each tail gets one
    /// reference (`set_page_refcounted(page + i)`, `i >= 1`).
    fn split_block(&self, pfn: usize, order: u32) {
        let zone = self.zone_index_of(pfn);
        let head = self.mm.page(pfn);
        head.info.store(head.info() & !Page::order_bits(0xf), Relaxed);
        for sub in pfn + 1..pfn + (1 << order) {
            self.mm.page(sub).prep_allocated(0, 0, zone);
        }
    }

    /// `alloc_pages_bulk`: fills the `None` slots of `pages` with order-0 pages and returns how
    /// many slots are populated (PA-19). It may return fewer than `pages.len()`; it takes what
    /// the first zone with more than its low watermark plus `pages.len()` free pages (outside
    /// its high-atomic reserve) can give, and falls back to one ordinary allocation if no zone
    /// qualifies or that gives nothing.
    #[track_caller]
    pub fn alloc_pages_bulk<'a>(&'a self, gfp: Gfp, pages: &mut [Option<&'a Page>]) -> usize {
        let caller = Location::caller();
        let gfp = super::slowpath::gfp_allowed(gfp);
        let mut populated = pages.iter().filter(|p| p.is_some()).count();
        let wanted = pages.len() - populated;
        if wanted == 0 {
            return populated;
        }
        if wanted > 1 {
            let ctx = self.platform.context();
            let Ok((gfp, zl)) = self.prepare_alloc(gfp, 0, ctx, caller) else { return populated };
            // `alloc_pages_bulk_noprof`: the first zone above its low watermark plus the
            // array's length (`nr_pages`, populated slots included) and its lowmem reserve,
            // counting only the free pages a request without reserves may (`zone_watermark_fast`).
            let nr_pages = pages.len();
            // `alloc_flags_nofragment` of the preferred zone, for every zone the bulk takes from.
            let flags = zl.first_pass_flags(gfp);
            let zone = zl
                .iter()
                .map(|zi| &self.zones[zi])
                .find(|z| z.usable_free_pages(flags) > z.wmark(Wmark::Low) + z.lowmem_reserve(zl.highest) + nr_pages);
            if let Some(zone) = zone {
                let zi = zone.kind as usize;
                // Preparing a page fails only when HighMem must be zeroed and cannot be; only
                // pages whose preparation cannot fail are prepared inside the slot's section.
                let prep_cannot_fail = !self.prep_may_fail(gfp, zone.kind.is_highmem());
                if self.pcp_enabled
                    && prep_cannot_fail
                    && let Some(cpu) = ctx.cpu
                {
                    let mut free_slots = pages.iter_mut().filter(|p| p.is_none());
                    let got = self.rmqueue_pcplist_bulk(cpu, zone, gfp.migratetype(), flags, wanted, |pfn| {
                        let page = self.prep_new_page_in(pfn, 0, gfp, zi);
                        if let Some(slot) = free_slots.next() {
                            *slot = page;
                        }
                    });
                    if let Some(got) = got
                        && got > 0
                    {
                        return populated + got;
                    }
                }
                let mut got = 0;
                for slot in pages.iter_mut().filter(|p| p.is_none()) {
                    let Some(pfn) = self.rmqueue(zone, gfp, 0, flags | af::NO_WATERMARKS, zl, ctx.cpu) else {
                        break;
                    };
                    let Some(page) = self.prep_new_page(pfn, 0, gfp) else { break };
                    *slot = Some(page);
                    got += 1;
                }
                if got > 0 {
                    return populated + got;
                }
            }
        }
        if let Some(slot) = pages.iter_mut().find(|p| p.is_none())
            && let Ok(page) = self.alloc_pages_at(gfp, 0, caller)
        {
            *slot = Some(page);
            populated += 1;
        }
        populated
    }
}
