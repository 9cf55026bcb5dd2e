//! The fast path: zonelist walk with watermark checks (`get_page_from_freelist`), per-CPU
//! lists (`rmqueue_pcplist`, `free_unref_page`), the buddy path, and freeing with its checks.
//!
//! The common cases stay small: an allocation reads the caller's context once, walks a
//! precomputed zonelist, checks one watermark and pops this CPU's list; a free of a clean page
//! (right order, one reference, no mapping, no stray flags) pushes it back. Everything else —
//! refills, drains, bad frees, reports — is in separate cold functions.

use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::{PageAllocator, ZoneList};
use crate::fallback::RmqueueMode;
use crate::gfp::{__GFP_COLD, __GFP_COMP, Gfp};
use crate::memmap::{FAST_FREE_MASK, Page, pg};
use crate::order::{MAX_PAGE_ORDER, is_aligned};
use crate::pcp::{PCP_MAX_ORDER, PcpSlot, PerCpuPages};
use crate::platform::Platform;
use crate::watermark::{alloc_flags as af, usable_free, zone_watermark_ok};
use crate::zone::{MigrateType, Zone};

impl<P: Platform> PageAllocator<P> {
    /// `get_page_from_freelist`: walks the zonelist from its highest zone down, takes the first
    /// zone that passes the watermark test for `alloc_flags`, and allocates from it (PA-8, PA-11).
    /// The walk is inlined into each caller and the allocation is a call
    /// ([`Self::rmqueue`], out of line): a walk that finds every zone below its watermark, as on an
    /// exhausted machine, costs a few tests per zone and no call.
    #[inline(always)]
    pub(super) fn get_page_from_freelist(
        &self,
        gfp: Gfp,
        order: u32,
        flags: u32,
        zl: &ZoneList,
        cpu: Option<usize>,
    ) -> Option<usize> {
        self.get_page_from_freelist_from(gfp, order, flags, zl, 0, cpu)
    }

    /// [`Self::get_page_from_freelist`] from the zonelist's zone `skip` (`skip <= len`): the
    /// general path skips the first zone when the fast path has just found it below the same
    /// watermark.
    #[inline(always)]
    pub(super) fn get_page_from_freelist_from(
        &self,
        gfp: Gfp,
        order: u32,
        flags: u32,
        zl: &ZoneList,
        skip: usize,
        cpu: Option<usize>,
    ) -> Option<usize> {
        let mut flags = flags;
        loop {
            for zi in zl.iter_from(skip) {
                let zone = &self.zones[zi];
                if flags & af::NO_WATERMARKS == 0 && !zone.watermark_fast(order, zl.highest, flags) {
                    continue;
                }
                if let Some(pfn) = self.rmqueue(zone, gfp, order, flags, zl, cpu) {
                    // A high-order atomic success reserves its pageblock (`highatomic.rs`).
                    if flags & af::HIGHATOMIC != 0 {
                        self.reserve_highatomic_pageblock(zone, pfn, order);
                    }
                    return Some(pfn);
                }
            }
            // `no_fallback`: no zone could serve the request without mixing pageblocks; walk
            // the zonelist again, allowing it (the zones skipped stay below the same mark).
            if flags & af::NOFRAGMENT == 0 {
                return None;
            }
            flags &= !af::NOFRAGMENT;
        }
    }

    /// `rmqueue`: per-CPU list for small orders, else the buddy lists; a block found bad when
    /// taken ([`Self::has_reference`]) is reported and leaked, and another one taken (PA-16).
    /// Out of line, so that a zone walk over zones below their watermarks makes no call.
    #[inline(never)]
    pub(super) fn rmqueue(
        &self,
        zone: &Zone,
        gfp: Gfp,
        order: u32,
        flags: u32,
        zl: &ZoneList,
        cpu: Option<usize>,
    ) -> Option<usize> {
        loop {
            let pfn = self.rmqueue_unchecked(zone, gfp, order, flags, zl, cpu)?;
            if !self.has_reference(pfn) {
                return Some(pfn);
            }
            self.bad_new_page(pfn, order, zone.kind as usize);
        }
    }

    /// `check_new_pages` for the head of a block just taken off a free list, made outside the
    /// zone lock and the CPU slot: a free page holds no reference, so a nonzero count means one
    /// was taken through a stale pointer after the free; the block must then be reported and
    /// leaked ([`Self::bad_new_page`]), not handed out (PA-16). One load of the entry just
    /// unlinked.
    #[inline(always)]
    pub(super) fn has_reference(&self, pfn: usize) -> bool {
        // SAFETY: `pfn` came off a free list of this allocator, so it is in the page array.
        unsafe { self.mm.page_unchecked(pfn) }.refcount() != 0
    }

    /// [`Self::rmqueue`] without the check of the block taken.
    #[inline(always)]
    fn rmqueue_unchecked(
        &self,
        zone: &Zone,
        gfp: Gfp,
        order: u32,
        flags: u32,
        zl: &ZoneList,
        cpu: Option<usize>,
    ) -> Option<usize> {
        let mt = gfp.migratetype();
        if self.pcp_enabled
            && order <= PCP_MAX_ORDER
            && let Some(cpu) = cpu
            && let Some(result) = self.rmqueue_pcplist(cpu, zone, order, mt, gfp, flags)
            // A failed refill goes on to the buddy path only for a request that may use the
            // high-atomic lists there (the refill looked at every other list already).
            && (result.is_some() || flags & (af::OOM | af::NON_BLOCK) == 0)
        {
            return result;
        }
        self.rmqueue_buddy(zone, order, mt, flags, zl)
    }

    /// `rmqueue_buddy`: under the zone lock, with the per-order watermark test for order > 0.
    /// Out of line: the fast path's large orders and the general path share one copy.
    #[inline(never)]
    pub(super) fn rmqueue_buddy(
        &self,
        zone: &Zone,
        order: u32,
        mt: MigrateType,
        flags: u32,
        zl: &ZoneList,
    ) -> Option<usize> {
        let mut area = zone.lock();
        if order > 0 && flags & af::NO_WATERMARKS == 0 {
            let mark = zone.wmark[(flags & af::WMARK_MASK) as usize].load(Relaxed);
            let free = usable_free(area.nr_free_pages, area.nr_free_highatomic, flags);
            let highatomic = flags & (af::HIGHATOMIC | af::OOM) != 0;
            let has_block = |o| {
                MigrateType::ALL[..crate::zone::MIGRATE_PCPTYPES].iter().any(|&t| area.has_free_at(o, t))
                    || (highatomic && area.has_free_at(o, MigrateType::HighAtomic))
            };
            if !zone_watermark_ok(free, order, mark, zone.lowmem_reserve(zl.highest), flags, has_block) {
                // `get_page_from_freelist` probes the zone at its high watermark with the same
                // per-order test, so a zone with no block of the order fails that probe too and
                // is marked `ZONE_BELOW_HIGH`, whatever its free count (the count alone was
                // probed before this call, by `Zone::watermark_fast`).
                if !(order..=MAX_PAGE_ORDER).any(has_block) {
                    zone.below_high.store(true, Relaxed);
                }
                return None;
            }
        }
        let nofragment = flags & af::NOFRAGMENT != 0;
        let mut pfn = None;
        if flags & af::HIGHATOMIC != 0 {
            pfn = area.rmqueue_smallest(&self.mm, order, MigrateType::HighAtomic);
        }
        let bounds = (zone.start_pfn, zone.end_pfn);
        let pfn = pfn
            .or_else(|| area.rmqueue(&self.mm, bounds, order, mt, nofragment, &mut RmqueueMode::Normal))
            // "Failing now is worse than failing a high-order atomic allocation in the future".
            .or_else(|| {
                (flags & (af::OOM | af::NON_BLOCK) != 0)
                    .then(|| area.rmqueue_smallest(&self.mm, order, MigrateType::HighAtomic))
                    .flatten()
            });
        let boosted = area.boost.take_event();
        zone.publish(&area);
        if pfn.is_some() {
            // Written only under this zone's lock: no read-modify-write instruction needed.
            PcpSlot::bump(&self.stats.pgalloc[zone.kind as usize], 1 << order);
        }
        drop(area);
        if boosted && flags & af::KSWAPD != 0 {
            self.wake_kswapd_for_boost(zone.kind);
        }
        pfn
    }

    /// Takes a block from this CPU's list (`rmqueue_pcplist`), refilling it when empty (the
    /// refill's fallback honours `ALLOC_NOFRAGMENT` in `flags`, and wakes kswapd for a boost
    /// if `gfp` may). `None` when a remote drainer holds the slot (use the buddy lists instead).
    #[inline(always)]
    pub(super) fn rmqueue_pcplist(
        &self,
        cpu: usize,
        zone: &Zone,
        order: u32,
        mt: MigrateType,
        gfp: Gfp,
        flags: u32,
    ) -> Option<Option<usize>> {
        let slot = &self.pcp[cpu];
        if !slot.guard.enter() {
            return None;
        }
        if slot.drain_requested.load(Relaxed) {
            self.drain_cpu(cpu);
        }
        let zi = zone.kind as usize;
        // SAFETY: `Platform::context`/`cpu` gave us this slot (the trait's contract) and we are
        // inside its guard section.
        let mut lists = unsafe { slot.lists(zi) };
        // An allocation halves the run of frees that sizes the next flush.
        lists.tuning().free_count >>= 1;
        let cold = gfp.contains(__GFP_COLD);
        let Some(pfn) = lists.pop(&self.mm, order, mt, cold) else {
            // `ALLOC_KSWAPD` from the mask here, on the refill, rather than in the caller's
            // flags: its constant would cost the fast path two instructions.
            let flags = flags | (gfp.bits() & af::KSWAPD);
            return Some(self.refill_pcp_and_exit(slot, lists, zone, order, mt, cold, flags));
        };
        lists.count_alloc(1 << order);
        slot.guard.exit();
        Some(Some(pfn))
    }

    /// The end of [`Self::rmqueue_pcplist`] on an empty list: the refill and the take, then the
    /// slot released, and only then kswapd woken for a boost the refill caused (as `rmqueue`
    /// wakes it after `rmqueue_pcplist` has unlocked the per-CPU lists).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn refill_pcp_and_exit(
        &self,
        slot: &PcpSlot,
        mut lists: PerCpuPages<'_>,
        zone: &Zone,
        order: u32,
        mt: MigrateType,
        cold: bool,
        flags: u32,
    ) -> Option<usize> {
        let (pfn, boosted) = self.refill_pcp(&mut lists, zone, order, mt, cold, flags);
        if pfn.is_some() {
            lists.count_alloc(1 << order);
        }
        slot.guard.exit();
        if boosted {
            self.wake_kswapd_for_boost(zone.kind);
        }
        pfn
    }

    /// `alloc_pages_bulk`'s per-CPU loop: takes up to `max` order-0 blocks from this CPU's
    /// list in one guard section, refilling it in batches as it empties, and hands each pfn to
    /// `put` (which must not allocate or free pages: the slot is held). `None` when a remote
    /// drainer holds the slot. `flags`: the request's, for the refill (`ALLOC_NOFRAGMENT`).
    pub(super) fn rmqueue_pcplist_bulk(
        &self,
        cpu: usize,
        zone: &Zone,
        mt: MigrateType,
        flags: u32,
        max: usize,
        mut put: impl FnMut(usize),
    ) -> Option<usize> {
        let slot = &self.pcp[cpu];
        if !slot.guard.enter() {
            return None;
        }
        if slot.drain_requested.load(Relaxed) {
            self.drain_cpu(cpu);
        }
        // SAFETY: `Platform::context` gave us this slot and we are inside its guard section.
        let mut lists = unsafe { slot.lists(zone.kind as usize) };
        lists.tuning().free_count >>= 1;
        let (mut got, mut bad, mut boosted) = (0, None, false);
        while got < max {
            let Some(pfn) = lists.pop(&self.mm, 0, mt, false).or_else(|| {
                let (pfn, boost) = self.refill_pcp(&mut lists, zone, 0, mt, false, flags);
                boosted |= boost;
                pfn
            }) else {
                break;
            };
            if self.has_reference(pfn) {
                // Reported and leaked once the slot is released; the caller gets fewer pages.
                bad = Some(pfn);
                break;
            }
            put(pfn);
            got += 1;
        }
        lists.count_alloc(got);
        slot.guard.exit();
        if boosted {
            self.wake_kswapd_for_boost(zone.kind);
        }
        if let Some(pfn) = bad {
            self.bad_new_page(pfn, 0, zone.kind as usize);
        }
        Some(got)
    }

    /// `rmqueue_bulk`: refills this CPU's list with `nr_pcp_alloc` blocks under one zone-lock
    /// acquisition, then takes one. The fallback sees the request's `ALLOC_NOFRAGMENT` in
    /// `flags`, as the kernel's `rmqueue_bulk` passes `alloc_flags` to `__rmqueue`. Also
    /// returns whether the refill boosted the zone's watermarks for a request with
    /// `ALLOC_KSWAPD`: the caller wakes kswapd once it has released the slot.
    #[cold]
    #[inline(never)]
    fn refill_pcp(
        &self,
        lists: &mut PerCpuPages<'_>,
        zone: &Zone,
        order: u32,
        mt: MigrateType,
        cold: bool,
        flags: u32,
    ) -> (Option<usize>, bool) {
        let want = super::pcp_tune::nr_pcp_alloc(lists, zone, order);
        let nofragment = flags & af::NOFRAGMENT != 0;
        let bounds = (zone.start_pfn, zone.end_pfn);
        let mut mode = RmqueueMode::Normal;
        let mut area = zone.lock();
        for _ in 0..want {
            let Some(pfn) = area.rmqueue(&self.mm, bounds, order, mt, nofragment, &mut mode) else {
                break;
            };
            // SAFETY: `pfn` came off this zone's free lists, so it is in range, free and ours.
            unsafe { lists.push(&self.mm, pfn, order, mt, true) };
        }
        let boosted = area.boost.take_event();
        zone.publish(&area);
        drop(area);
        self.stats.pcp_refills.fetch_add(1, Relaxed);
        (lists.pop(&self.mm, order, mt, cold), boosted && flags & af::KSWAPD != 0)
    }

    /// `prep_new_page`: reference count, order and zone, compound head, zeroing (`__GFP_ZERO`
    /// or `init_on_alloc`, unless `init_on_free` zeroed the block already: `meminit`). `None`
    /// (the block freed again, the failure logged) only if HighMem pages had to be zeroed and
    /// the platform cannot.
    #[inline]
    pub(super) fn prep_new_page(&self, pfn: usize, order: u32, gfp: Gfp) -> Option<&Page> {
        self.prep_new_page_in(pfn, order, gfp, self.zone_index_of(pfn))
    }

    /// [`Self::prep_new_page`] when the caller knows the zone index.
    #[inline(always)]
    pub(super) fn prep_new_page_in(&self, pfn: usize, order: u32, gfp: Gfp, zi: usize) -> Option<&Page> {
        debug_assert!(self.zones[zi].contains(pfn));
        // SAFETY: `pfn` came off a free list of this allocator, so it is in the page array.
        let page = unsafe { self.mm.page_unchecked(pfn) };
        let head = if order > 0 && gfp.contains(__GFP_COMP) { pg::HEAD } else { 0 };
        page.prep_allocated(head, order, zi);
        if self.zero_on_alloc(gfp) && !self.zero_pages(pfn, 1 << order) {
            return self.undo_unzeroable(page, pfn, order, zi);
        }
        Some(page)
    }

    #[cold]
    fn undo_unzeroable(&self, page: &Page, pfn: usize, order: u32, zi: usize) -> Option<&Page> {
        self.platform.log(
            crate::platform::Level::Err,
            format_args!("kmem: cannot zero HighMem pfn:{pfn:05x} order:{order}: the platform has no HighMem access"),
        );
        page.refcount.store(0, Relaxed);
        self.free_block(pfn, order, &self.zones[zi]);
        None
    }

    /// The index of the zone holding `pfn` (which must be in memory).
    #[inline]
    pub(super) fn zone_index_of(&self, pfn: usize) -> usize {
        self.zones.iter().position(|z| z.contains(pfn)).expect("pfn in a zone")
    }

    /// `__free_pages`: drops a reference; the last one frees the block. With other references
    /// left on a non-compound block, the tail halves are freed now (§2.10).
    ///
    /// # Safety
    /// The block, if allocated, is the caller's to free: no one else — no safe handle such as
    /// a `Vec` in vmalloc memory or a pool element, no structure of kmem's own — uses it, and
    /// the caller does not use it afterwards. (Pages that are not allocated, a wrong order,
    /// a slab's or kmalloc's pages are reported and refused, PA-16.)
    #[track_caller]
    #[inline(always)]
    pub unsafe fn free_pages(&self, page: &Page, order: u32) {
        self.free_pages_at(page, order, Location::caller());
    }

    #[inline(always)]
    pub(crate) fn free_pages_at(&self, page: &Page, order: u32, caller: &Location<'_>) {
        if let Some(pfn) = self.mm.pfn_of(page) {
            let info = page.info();
            // A clean page: allocated with this order, our reference the only one, no mapping,
            // mapcount or checked flag. One reference means no one else can take another, so a
            // plain store releases it.
            if order <= MAX_PAGE_ORDER
                && info & FAST_FREE_MASK == Page::order_bits(order)
                && page.refcount() == 1
                && page.mapping() == 0
                && page.mapcount() == 0
                && is_aligned(pfn, order)
            {
                page.refcount.store(0, Relaxed);
                self.free_block(pfn, order, &self.zones[Page::zone_idx(info)]);
                return;
            }
        }
        self.free_pages_checked(page, order, caller);
    }

    /// The free path for everything that is not a clean page: every check, each failure reported.
    #[cold]
    #[inline(never)]
    fn free_pages_checked(&self, page: &Page, order: u32, caller: &Location<'_>) {
        let Some(pfn) = self.mm.pfn_of(page) else {
            self.report_bad_free(None, order, "page is not in this machine's mem_map", caller);
            return;
        };
        if order > MAX_PAGE_ORDER || !is_aligned(pfn, order) {
            self.report_bad_free(
                Some(pfn),
                order,
                "order does not fit the page (misaligned or above MAX_PAGE_ORDER)",
                caller,
            );
            return;
        }
        let flags = page.flags();
        if flags & (pg::BUDDY | pg::PCP) != 0 || page.refcount() <= 0 {
            self.report_bad_page(pfn, "VM_BUG_ON_PAGE(page_ref_count(page) == 0) (double free)", caller);
            return;
        }
        if flags & pg::RESERVED != 0 || page.info() & pg::CACHE != 0 {
            self.report_bad_page(pfn, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set", caller);
            return;
        }
        if page.order() != order {
            // Whatever the reference count: freeing more than was allocated would free pages
            // that belong to someone else.
            self.report_bad_free(Some(pfn), order, "freed with a different order than it was allocated with", caller);
            return;
        }
        if flags & pg::HEAD != 0 && page.mapping() == crate::kmalloc::LARGE_KMALLOC && page.refcount() == 1 {
            // `kfree` frees a large kmalloc (`free_large_kmalloc`, which clears the mark
            // first); dropped here, the block would be a bad page (its mapping set) and lost.
            self.report_bad_free(
                Some(pfn),
                order,
                "the last reference of a large kmalloc allocation (kfree frees it)",
                caller,
            );
            return;
        }
        let zone = &self.zones[self.zone_index_of(pfn)];
        if !page.put_testzero() {
            if order > 0 && flags & pg::HEAD == 0 {
                for o in (0..order).rev() {
                    self.free_block(pfn + (1 << o), o, zone);
                }
                page.info.store(page.info() & !(0xf << 8), Relaxed); // Keep the zone bits.
            }
            return;
        }
        if !self.free_pages_prepare(pfn, page, caller) {
            return;
        }
        self.free_block(pfn, order, zone);
    }

    /// `free_pages_prepare`: a page freed in a bad state is reported and leaked (PA-16).
    fn free_pages_prepare(&self, pfn: usize, page: &Page, caller: &Location<'_>) -> bool {
        let Some(reason) = super::reports::free_page_bad_reason(page) else { return true };
        self.report_bad_page(pfn, reason, caller);
        false
    }

    /// Frees a block whose checks passed: zeroed first under `init_on_free` (`meminit`),
    /// then onto this CPU's list, or to the buddy lists.
    #[inline(always)]
    pub(super) fn free_block(&self, pfn: usize, order: u32, zone: &Zone) {
        debug_assert!(zone.contains(pfn));
        if self.init.on_free && !self.init_freed_block(pfn, order) {
            return;
        }
        // SAFETY: `pfn` is inside `zone` (every caller checked it), so inside the page array.
        let mt = unsafe { self.mm.pageblock_mt_unchecked(pfn) };
        // A high-atomic block's pages wait on the movable list (`free_unref_page`); the flush
        // sends every page to its pageblock's lists.
        let pcp_mt = if mt == MigrateType::HighAtomic { MigrateType::Movable } else { mt };
        if self.pcp_enabled
            && order <= PCP_MAX_ORDER
            && !self.waitq.has_waiters()
            && let Some(cpu) = self.platform.cpu()
            && self.free_to_pcp(cpu, zone, pfn, order, pcp_mt)
        {
            return;
        }
        self.free_to_buddy(pfn, order, zone);
    }

    #[cold]
    #[inline(never)]
    fn free_to_buddy(&self, pfn: usize, order: u32, zone: &Zone) {
        self.free_one_to_buddy(pfn, order, zone, false);
    }

    /// `__free_pages_ok(page, order, fpi)`: a block whose checks passed goes straight to the
    /// buddy lists, bypassing the per-CPU lists; `to_tail` is `FPI_TO_TAIL` (the cold end of
    /// the free list, so it is not handed out again first). Its only caller frees the unused
    /// tail of `alloc_pages_exact`, which no one has written since it left a free list, so it
    /// is zeroed already when `init_on_free` is on (`meminit`'s invariant).
    #[inline(never)]
    pub(super) fn free_pages_ok(&self, pfn: usize, order: u32, zone: &Zone, to_tail: bool) {
        debug_assert!(zone.contains(pfn));
        self.free_one_to_buddy(pfn, order, zone, to_tail);
    }

    /// `free_one_page`: to the lists of the block's pageblock type, read under the zone lock
    /// (as `split_large_buddy` does), since reserving or giving back a high-atomic pageblock
    /// changes it under that lock and its free blocks must follow (`buddy.rs`'s invariant).
    #[inline(always)]
    fn free_one_to_buddy(&self, pfn: usize, order: u32, zone: &Zone, to_tail: bool) {
        self.mm.page(pfn).info.store(0, Relaxed);
        let mut area = zone.lock();
        let mt = self.mm.pageblock_mt(pfn);
        // Written only under this zone's lock: no read-modify-write instruction needed.
        PcpSlot::bump(&self.stats.pgfree[zone.kind as usize], 1 << order);
        area.free_one_page(&self.mm, (zone.start_pfn, zone.end_pfn), pfn, order, mt, to_tail);
        self.after_buddy_free(zone, &mut area);
    }

    /// Bookkeeping after pages reached the buddy lists, zone lock held: publish the count and
    /// wake sleepers. (Memory goes back to the host from periodic aging scans, `trim_aged`,
    /// never from here.)
    pub(super) fn after_buddy_free(&self, zone: &Zone, area: &mut crate::buddy::FreeArea) {
        zone.publish(area);
        // Still under the zone lock: see `waitq` for why no fence is needed.
        self.waitq.wake_locked(|word| self.platform.wake_all(word));
    }

    /// `free_unref_page_commit`: head of this CPU's list; at the auto-tuned high mark a batch
    /// of the coldest pages goes back to the buddy lists (PA-17, `pcp_tune`). False when a
    /// remote drainer holds the slot.
    #[inline(always)]
    fn free_to_pcp(&self, cpu: usize, zone: &Zone, pfn: usize, order: u32, mt: MigrateType) -> bool {
        let slot = &self.pcp[cpu];
        if !slot.guard.enter() {
            return false;
        }
        if slot.drain_requested.load(Relaxed) {
            self.drain_cpu(cpu);
        }
        let zi = zone.kind as usize;
        // SAFETY: `Platform::context` gave us this slot exclusively.
        let mut lists = unsafe { slot.lists(zi) };
        // SAFETY: Callers of `free_block` pass a validated pfn of a block they own and free.
        unsafe { lists.push(&self.mm, pfn, order, mt, false) };
        lists.count_free(1 << order);
        let batch = zone.pcp_batch() as usize;
        let count = lists.count();
        let tuning = lists.tuning();
        // A free halves the refill multiplier of consecutive allocations.
        tuning.alloc_factor >>= 1;
        // High-order pages freed in a long run without allocations should not linger here.
        let free_high = if order > 0 {
            let run = tuning.free_count >= batch + zone.pcp_high() as usize / 2 && tuning.prev_free_high_order;
            tuning.prev_free_high_order = true;
            run && (!zone.pcp_free_high_batch() || count >= batch)
        } else {
            tuning.prev_free_high_order = false;
            false
        };
        if tuning.free_count < batch << super::pcp_tune::PCP_BATCH_SCALE_MAX {
            tuning.free_count += 1 << order;
        }
        // `nr_pcp_high` changes nothing and flushes nothing while the list is below a mark
        // that is within bounds and the zone is above its high watermark: skip it then.
        let high = lists.high();
        if free_high || lists.count() >= high || high > zone.pcp_high_max() as usize || zone.below_high() {
            self.tune_and_flush(&mut lists, zone, batch, free_high, crate::pcp::pindex(order, mt));
        }
        slot.guard.exit();
        true
    }

    /// The rest of `free_unref_page_commit`: `nr_pcp_high`, then a flush if the list is at it,
    /// starting with list `pindex`, the one the freed block went to.
    #[cold]
    #[inline(never)]
    fn tune_and_flush(&self, lists: &mut PerCpuPages<'_>, zone: &Zone, batch: usize, free_high: bool, pindex: usize) {
        let high = super::pcp_tune::nr_pcp_high(lists, zone, batch, free_high);
        if lists.count() >= high {
            let free_count = lists.tuning().free_count;
            let n = super::pcp_tune::nr_pcp_free(lists.count(), free_count, batch, high, free_high);
            self.flush_pcp_batch(lists, zone, pindex, n);
            self.maybe_clear_below_high(zone);
        }
    }

    /// `free_pcppages_bulk`: at least `nr_pages` of this CPU's coldest pages (or all) back to
    /// the buddy lists, each to its pageblock's type read under the zone lock (whatever list
    /// it waited on: a refill that stole from another type's pageblock, or a pageblock claimed
    /// or reserved since the free, `buddy.rs`'s invariant), from list `start` on. Returns the
    /// pages flushed.
    pub(super) fn flush_pcp_batch(
        &self,
        lists: &mut PerCpuPages<'_>,
        zone: &Zone,
        start: usize,
        nr_pages: usize,
    ) -> usize {
        let mut area = zone.lock();
        let flushed = lists.take_cold(&self.mm, start, nr_pages, |p, o, _| {
            area.free_one_page(&self.mm, (zone.start_pfn, zone.end_pfn), p, o, self.mm.pageblock_mt(p), false);
        });
        self.after_buddy_free(zone, &mut area);
        flushed
    }

    /// Returns every page on `cpu`'s lists to the buddy lists (`drain_pages`). Returns the
    /// number of pages drained. The caller is inside the slot's guard section (owner) or holds
    /// its claim (drainer).
    pub(super) fn drain_cpu(&self, cpu: usize) -> usize {
        let slot = &self.pcp[cpu];
        slot.drain_requested.store(false, Relaxed);
        let mut drained = 0;
        for (zi, zone) in self.zones.iter().enumerate() {
            // SAFETY: Callers hold the slot: inside its guard section, or with its claim.
            let mut lists = unsafe { slot.lists(zi) };
            if lists.count() != 0 {
                drained += self.flush_pcp_batch(&mut lists, zone, 0, usize::MAX);
            }
        }
        drained
    }

    /// `drain_local_pages`: drains the caller's CPU slot. Returns pages drained.
    pub fn drain_local_pages(&self) -> usize {
        self.platform.cpu().map_or(0, |cpu| self.drain_own(cpu))
    }

    /// Drains the caller's own slot inside its guard section (0 if a drainer holds it: then
    /// that drainer is emptying it).
    fn drain_own(&self, cpu: usize) -> usize {
        let slot = &self.pcp[cpu];
        if !slot.guard.enter() {
            return 0;
        }
        let drained = self.drain_cpu(cpu);
        slot.guard.exit();
        drained
    }

    /// `drain_all_pages`: drains the caller's slot, then every other slot whose owner is
    /// outside its fast path right now (one process-wide barrier for all of them); a slot
    /// whose owner is busy gets a drain request it honours on its next operation. Returns
    /// the pages drained now.
    pub fn drain_all_pages(&self) -> usize {
        self.for_each_slot_held(
            |slot| slot.zones.iter().any(|z| z.count.load(Relaxed) > 0),
            |cpu| self.drain_cpu(cpu),
            |slot| slot.drain_requested.store(true, Relaxed),
        )
    }

    /// Runs `f(cpu)` on the caller's own slot inside its guard section, then on every other
    /// slot that `wanted` selects and whose owner is outside its fast path right now (claimed
    /// with one process-wide barrier for all of them); a selected slot whose owner is busy, or
    /// any selected slot on a platform without that barrier, gets `busy(slot)` instead.
    /// Returns the sum of `f`'s results.
    pub(super) fn for_each_slot_held(
        &self,
        wanted: impl Fn(&PcpSlot) -> bool,
        mut f: impl FnMut(usize) -> usize,
        busy: impl Fn(&PcpSlot),
    ) -> usize {
        let me = self.platform.cpu();
        let mut total = 0;
        if let Some(cpu) = me
            && self.pcp[cpu].guard.enter()
        {
            total += f(cpu);
            self.pcp[cpu].guard.exit();
        }
        let mut claimed = [false; crate::pcp::MAX_CPUS];
        let mut any = false;
        for (cpu, slot) in self.pcp[..self.nr_cpus].iter().enumerate() {
            if Some(cpu) != me && wanted(slot) && slot.guard.mark_claimed() {
                claimed[cpu] = true;
                any = true;
            }
        }
        if !any {
            return total;
        }
        let barrier = self.platform.heavy_barrier();
        for (cpu, slot) in self.pcp[..self.nr_cpus].iter().enumerate() {
            if !claimed[cpu] {
                continue;
            }
            // Owner sections never sleep; wait for one in progress (bounded), as the kernel waits
            // for every CPU's drain.
            if barrier && slot.guard.confirm_claim(4096, crate::sync::cpu_relax) {
                total += f(cpu);
                slot.guard.unclaim();
            } else {
                if !barrier {
                    slot.guard.unclaim();
                }
                busy(slot);
            }
        }
        total
    }

    /// Drains the lists of a CPU slot whose owner is leaving (thread exit, `page_alloc_cpu_dead`).
    ///
    /// # Safety
    /// The caller must be the slot's owner (the context `Platform::cpu` gives it to), and must
    /// not use the slot again afterwards.
    pub unsafe fn drain_cpu_slot(&self, cpu: usize) -> usize {
        if cpu >= self.nr_cpus {
            return 0;
        }
        let slot = &self.pcp[cpu];
        // A drainer holding the slot finishes quickly; wait for it, then empty what is left.
        while !slot.guard.enter() {
            crate::sync::cpu_relax();
        }
        let drained = self.drain_cpu(cpu);
        slot.guard.exit();
        drained
    }
}
