//! The page array (`mem_map`): one 16-byte [`Page`] per page frame, kept outside the pages.
//!
//! `Page` is 16 bytes per 4 KiB (0.39 % of memory; the kernel's `struct page` is 64 B).
//! Its fields mean different things by state, like the kernel's unions:
//!
//! | state | `next` / `prev` | `info` | `refcount` |
//! |---|---|---|---|
//! | head of a free buddy block | free-list links (pfns) | `PG_BUDDY`, order, list migratetype | 0 |
//! | on a per-CPU list | pcp-list links (pfns) | `PG_PCP`, order, list migratetype | 0 |
//! | allocated | `mapping` token / `mapcount` (owner's) | owner flags (`PG_SLAB`, `PG_HEAD`…), order if compound | ≥ 1 |
//! | first page of a slab cache's structure | as allocated | as allocated, plus `PG_CACHE` | 1 |
//! | inside a free block (tail) | unused | 0 | 0 |
//! | tail of a slab | descriptor offset / head pfn | `PG_tail` | 0 |
//! | reserved (the page array itself) | unused | `PG_RESERVED` | 1 |
//!
//! Every field is an atomic used with `Relaxed` ordering: ownership of a page moves between
//! contexts only through a lock or a per-CPU list, which order the accesses; the atomics only
//! keep shared `&Page` references sound. A zeroed `Page` is a valid "tail, not free" page, so a
//! page array in fresh (zero-filled) memory needs no initialising pass.
//!
//! The zone of a page is not stored: it is found from the pfn by the zone boundaries, which
//! never change. The migratetype of each pageblock lives in a separate byte array.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, Ordering::Relaxed};

use crate::order::PAGE_SIZE;
use crate::zone::MigrateType;

/// "No page": the end of a free list.
pub(crate) const NIL: u32 = u32::MAX;

/// Page flag bits kept in the low byte of `Page::info`.
pub mod pg {
    /// Head of a free block on a buddy free list (`PageBuddy`).
    pub const BUDDY: u32 = 1 << 0;
    /// On a per-CPU page list.
    pub const PCP: u32 = 1 << 1;
    /// Not managed by the allocator (the page array itself, holes). Never freed.
    pub const RESERVED: u32 = 1 << 2;
    /// Owned by a slab cache.
    pub const SLAB: u32 = 1 << 3;
    /// Head of a compound page (`__GFP_COMP`).
    pub const HEAD: u32 = 1 << 4;
    /// Free block (of at least a pageblock) whose memory was given back to the host (hole
    /// punched).
    pub const TRIMMED: u32 = 1 << 5;
    /// Free block (of at least a pageblock) that a trim scan has already seen free (released on
    /// the next scan).
    pub const TRIM_AGED: u32 = 1 << 6;
    /// Tail page of a slab of order > 0 (`next`: the slab's descriptor, `prev`: the head
    /// pfn). The slab clears it before its pages go back.
    pub const TAIL: u32 = 1 << 7;
    /// First page of the block holding a live slab cache's `struct kmem_cache` (set when the
    /// cache is published, cleared by the destroy that drops its last reference, before any
    /// teardown): what makes a `CacheRef` checkable
    /// without reading the cache. Outside the low byte, so [`super::Page::flags`] does not
    /// show it; kept out of the order/migratetype/zone fields (bits 8–14, 16–18).
    pub const CACHE: u32 = 1 << 15;
    /// Flags that must be clear when a page is freed (`PAGE_FLAGS_CHECK_AT_FREE`).
    /// (`PG_CACHE` is kmem's: a live cache's structure is never the caller's to free.)
    pub const CHECK_AT_FREE: u32 = BUDDY | PCP | RESERVED | SLAB | CACHE;
    /// Flags the owner of an allocated page may set or clear ([`super::Page::set_flags`]).
    pub const OWNER: u32 = SLAB | HEAD;
    /// Flags that mark a page as not owned by anyone who could legitimately change it.
    pub const NOT_OWNED: u32 = BUDDY | PCP | RESERVED;
}

const ORDER_SHIFT: u32 = 8;
const ORDER_MASK: u32 = 0xf << ORDER_SHIFT;
const MT_SHIFT: u32 = 12;
const MT_MASK: u32 = 0x7 << MT_SHIFT;
const ZONE_SHIFT: u32 = 16;
const ZONE_MASK: u32 = 0x7 << ZONE_SHIFT;
/// The bits of `info` that must equal `order << 8` (plus zone bits) for a clean fast free.
pub(crate) const FAST_FREE_MASK: u32 = (pg::CHECK_AT_FREE) | ORDER_MASK;

/// One page frame's metadata (`struct page`).
#[repr(C)]
#[derive(Default)]
pub struct Page {
    pub(crate) next: AtomicU32,
    pub(crate) prev: AtomicU32,
    pub(crate) info: AtomicU32,
    pub(crate) refcount: AtomicI32,
}

const _: () = assert!(size_of::<Page>() == 16);

impl Page {
    #[inline]
    pub(crate) fn info(&self) -> u32 {
        self.info.load(Relaxed)
    }

    #[inline]
    pub(crate) fn set_info(&self, flags: u32, order: u32, mt: MigrateType) {
        self.info.store(flags | (order << ORDER_SHIFT) | ((mt as u32) << MT_SHIFT), Relaxed);
    }

    /// The page flag bits ([`pg`]).
    #[inline]
    #[must_use]
    pub fn flags(&self) -> u32 {
        self.info() & 0xff
    }

    /// Whether the page is allocated: it holds a reference and is on no free list.
    #[inline]
    #[must_use]
    pub fn is_allocated(&self) -> bool {
        self.flags() & pg::NOT_OWNED == 0 && self.refcount() > 0
    }

    /// Sets owner flag bits ([`pg::OWNER`]: `PG_slab`, `PG_head`) on an allocated page.
    /// Returns false, changing nothing, for other bits or a page that is not allocated: free
    /// and per-CPU pages keep list state in the same word.
    ///
    /// # Safety
    /// If the page is allocated, it is allocated to the caller (not to a slab, which keeps its
    /// own state in the page, nor to anyone else), and no slab lookup (`kfree`, `ksize`, …) of an address in it
    /// runs while `PG_slab` set here stays set: a slab page's `mapping` word names the slab's
    /// descriptor, which that lookup follows.
    pub unsafe fn set_flags(&self, bits: u32) -> bool {
        if bits & !pg::OWNER != 0 || !self.is_allocated() {
            return false;
        }
        self.info.store(self.info() | bits, Relaxed);
        true
    }

    /// Clears owner flag bits on an allocated page; false (nothing changed) as for `set_flags`.
    ///
    /// # Safety
    /// As for [`Page::set_flags`].
    pub unsafe fn clear_flags(&self, bits: u32) -> bool {
        if bits & !pg::OWNER != 0 || !self.is_allocated() {
            return false;
        }
        self.info.store(self.info() & !bits, Relaxed);
        true
    }

    /// Marks or unmarks the allocated page holding a slab cache's structure
    /// ([`pg::CACHE`]); the slab layer's own call.
    #[inline]
    pub(crate) fn set_cache_mark(&self, on: bool) {
        if on {
            // Release: the cache was written before the mark (`Kmem::cache` loads it with Acquire).
            self.info.fetch_or(pg::CACHE, core::sync::atomic::Ordering::Release);
        } else {
            self.info.fetch_and(!pg::CACHE, Relaxed);
        }
    }

    /// `PG_slab` on or off, for the slab layer (the public setter is `unsafe`).
    #[inline]
    pub(crate) fn set_slab_flag(&self, on: bool) {
        if on {
            self.info.fetch_or(pg::SLAB, Relaxed);
        } else {
            self.info.fetch_and(!pg::SLAB, Relaxed);
        }
    }

    /// The order stored with the page (buddy order, pcp order, or compound order).
    #[inline]
    #[must_use]
    pub fn order(&self) -> u32 {
        (self.info() & ORDER_MASK) >> ORDER_SHIFT
    }

    #[inline]
    pub(crate) fn list_mt(&self) -> MigrateType {
        MigrateType::from_index(((self.info() & MT_MASK) >> MT_SHIFT) as usize)
    }

    /// `PageBuddy`: the head of a free block.
    #[inline]
    #[must_use]
    pub fn is_buddy(&self) -> bool {
        self.flags() & pg::BUDDY != 0
    }

    /// The reference count (`page_ref_count`).
    #[must_use]
    pub fn refcount(&self) -> i32 {
        self.refcount.load(Relaxed)
    }

    /// `get_page`: takes another reference on an allocated page. Returns false, changing
    /// nothing, for a page that is not allocated (free, on a per-CPU list, or reserved), or
    /// whose count is at `i32::MAX`: one more would wrap it to a negative count, which the
    /// kernel's `folio_get` refuses (`VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow)`)
    /// and which would free the page while its references are still held.
    pub fn get_page(&self) -> bool {
        // One read-modify-write for both count tests (`get_page_unless_zero`'s and the
        // overflow's), so no free between a count test and the increment goes unseen.
        self.flags() & pg::NOT_OWNED == 0
            && self.refcount.fetch_update(Relaxed, Relaxed, |c| if c > 0 { c.checked_add(1) } else { None }).is_ok()
    }

    /// `page_ref_inc` without [`Page::get_page`]'s check that the page is allocated: what a
    /// reference taken through a stale pointer does to a page freed meanwhile (a free page
    /// with a nonzero `_refcount`). Test builds only (feature `check`), for PA-16's check of
    /// pages taken off the free lists.
    #[cfg(any(test, feature = "check"))]
    pub fn page_ref_inc(&self) {
        self.page_ref_add(1);
    }

    /// `page_ref_add(page, n)`, unchecked and wrapping: test builds only (feature `check`),
    /// for a count near its limit without 2³¹ calls of [`Page::get_page`].
    #[cfg(any(test, feature = "check"))]
    pub fn page_ref_add(&self, n: i32) {
        self.refcount.fetch_add(n, Relaxed);
    }

    /// Drops one reference; true when it was the last (`put_page_testzero`).
    pub(crate) fn put_testzero(&self) -> bool {
        self.refcount.fetch_sub(1, core::sync::atomic::Ordering::AcqRel) == 1
    }

    /// The `mapcount` of an allocated page (0 when not mapped).
    #[must_use]
    pub fn mapcount(&self) -> i32 {
        self.prev.load(Relaxed) as i32
    }

    /// Sets the `mapcount` of an allocated page (vmalloc-to-user mappings, tests of PA-16).
    /// Returns false, changing nothing, for a page that is not allocated: on free pages the
    /// same field links the free lists.
    ///
    /// # Safety
    /// If the page is allocated, it is allocated to the caller through the page API
    /// (`alloc_pages` and kin), not to a slab or to anyone else: a slab page keeps its
    /// descriptor's location in these words and slab lookups follow it. (A free page is
    /// refused whoever asks.)
    pub unsafe fn set_mapcount(&self, count: i32) -> bool {
        if !self.is_allocated() {
            return false;
        }
        self.prev.store(count as u32, Relaxed);
        true
    }

    /// The `mapping` token of an allocated page (0 is NULL).
    #[must_use]
    pub fn mapping(&self) -> u32 {
        self.next.load(Relaxed)
    }

    /// Sets the `mapping` token of an allocated page; false (nothing changed) for a page that
    /// is not allocated, as for [`Page::set_mapcount`].
    ///
    /// # Safety
    /// As for [`Page::set_mapcount`].
    pub unsafe fn set_mapping(&self, mapping: u32) -> bool {
        if !self.is_allocated() {
            return false;
        }
        self.next.store(mapping, Relaxed);
        true
    }

    /// Resets the page to "allocated, one reference" (`set_page_refcounted` in `prep_new_page`),
    /// remembering its order and zone for the free.
    #[inline]
    pub(crate) fn prep_allocated(&self, flags: u32, order: u32, zone: usize) {
        self.next.store(0, Relaxed);
        self.prev.store(0, Relaxed);
        self.info.store(flags | (order << ORDER_SHIFT) | ((zone as u32) << ZONE_SHIFT), Relaxed);
        self.refcount.store(1, Relaxed);
    }

    /// A block taken off a free list and found bad (PA-16): no list state left in it
    /// (`page_mapcount_reset`), only its order and zone, as for an allocated block, so whoever
    /// holds the stray reference frees it like one. The reference count is left as found.
    pub(crate) fn reset_bad_new(&self, order: u32, zone: usize) {
        self.next.store(0, Relaxed);
        self.prev.store(0, Relaxed);
        self.info.store((order << ORDER_SHIFT) | ((zone as u32) << ZONE_SHIFT), Relaxed);
    }

    /// The zone index remembered by `prep_allocated`.
    #[inline]
    pub(crate) fn zone_idx(info: u32) -> usize {
        ((info & ZONE_MASK) >> ZONE_SHIFT) as usize
    }

    /// The order bits of an `info` word, shifted into place.
    #[inline]
    pub(crate) const fn order_bits(order: u32) -> u32 {
        order << ORDER_SHIFT
    }
}

/// What one page costs in metadata, in bytes (for the `≤ 0.5 %` budget).
pub const META_BYTES_PER_PAGE: usize = size_of::<Page>();

/// The page array and the pageblock migratetype array for `[start_pfn, end_pfn)`.
///
/// # Invariants
/// `pages` points to `end_pfn - start_pfn` `Page`s and `blocks` to one byte per pageblock the
/// range touches (pageblocks are naturally aligned in pfns; entry 0 is `first_block`'s); both
/// stay valid for the life of the `MemMap`.
pub struct MemMap {
    pages: NonNull<Page>,
    blocks: NonNull<AtomicU8>,
    start_pfn: usize,
    end_pfn: usize,
    pageblock_order: u32,
    /// The pageblock `start_pfn` lies in (`start_pfn >> pageblock_order`): entry 0 of the
    /// pageblock array.
    first_block: usize,
}

// SAFETY: The arrays hold only atomics, and the `MemMap` is their sole owner.
unsafe impl Send for MemMap {}
// SAFETY: As above: shared access goes through atomics.
unsafe impl Sync for MemMap {}

impl MemMap {
    /// Bytes of metadata (page array plus pageblock array) for the pfns `[start_pfn,
    /// end_pfn)`. Pageblocks are naturally aligned in pfns, so a range that starts inside one
    /// has one entry for that partial block.
    #[must_use]
    pub const fn bytes_needed(start_pfn: usize, end_pfn: usize, pageblock_order: u32) -> usize {
        let nr_pages = end_pfn - start_pfn;
        nr_pages * size_of::<Page>() + Self::nr_blocks(start_pfn, end_pfn, pageblock_order)
    }

    /// Pageblocks (naturally aligned blocks of `1 << pageblock_order` pfns) that `[start_pfn,
    /// end_pfn)` touches.
    const fn nr_blocks(start_pfn: usize, end_pfn: usize, pageblock_order: u32) -> usize {
        if end_pfn <= start_pfn { 0 } else { ((end_pfn - 1) >> pageblock_order) - (start_pfn >> pageblock_order) + 1 }
    }

    /// The pageblock array's entry for `pfn` (in range): by absolute pageblock number, as the
    /// allocator walks pageblocks at their natural alignment.
    #[inline(always)]
    const fn block_index(&self, pfn: usize) -> usize {
        (pfn >> self.pageblock_order) - self.first_block
    }

    /// Builds the map over `storage`, which must hold [`Self::bytes_needed`] bytes.
    ///
    /// # Safety
    /// `storage` must be valid for reads and writes of `bytes_needed(start, end, ..)` bytes,
    /// aligned to 4 bytes, used by nothing else for the life of the map. If `zeroed` is true it
    /// must already be all zero bytes (fresh memory); otherwise it is zeroed here.
    pub unsafe fn new(
        storage: NonNull<u8>,
        start_pfn: usize,
        end_pfn: usize,
        pageblock_order: u32,
        zeroed: bool,
    ) -> Self {
        let nr = end_pfn - start_pfn;
        let bytes = Self::bytes_needed(start_pfn, end_pfn, pageblock_order);
        assert!(storage.as_ptr().align_offset(align_of::<Page>()) == 0, "memmap storage misaligned");
        if !zeroed {
            // SAFETY: The caller gave us `bytes` writable bytes at `storage`.
            unsafe { storage.as_ptr().write_bytes(0, bytes) };
        }
        // SAFETY: `nr * 16 <= bytes`, so the block array starts inside `storage`.
        let blocks = unsafe { storage.add(nr * size_of::<Page>()) }.cast::<AtomicU8>();
        let first_block = start_pfn >> pageblock_order;
        Self { pages: storage.cast(), blocks, start_pfn, end_pfn, pageblock_order, first_block }
    }

    /// First pfn covered.
    #[must_use]
    pub fn start_pfn(&self) -> usize {
        self.start_pfn
    }

    /// One past the last pfn covered.
    #[must_use]
    pub fn end_pfn(&self) -> usize {
        self.end_pfn
    }

    /// log2 of the pages in a pageblock.
    #[must_use]
    pub fn pageblock_order(&self) -> u32 {
        self.pageblock_order
    }

    /// `pfn_to_page`, or `None` outside the map.
    #[inline]
    #[must_use]
    pub fn get(&self, pfn: usize) -> Option<&Page> {
        if pfn < self.start_pfn || pfn >= self.end_pfn {
            return None;
        }
        // SAFETY: In range by the check above, and the array lives as long as `self`.
        Some(unsafe { self.pages.add(pfn - self.start_pfn).as_ref() })
    }

    /// `pfn_to_page` for a pfn the caller knows to be in range.
    ///
    /// # Panics
    /// If `pfn` is outside the map (an internal bug).
    #[inline]
    #[must_use]
    pub fn page(&self, pfn: usize) -> &Page {
        assert!(pfn >= self.start_pfn && pfn < self.end_pfn, "pfn {pfn:#x} outside mem_map");
        // SAFETY: In range by the assertion above.
        unsafe { self.pages.add(pfn - self.start_pfn).as_ref() }
    }

    /// `pfn_to_page` without a bounds check in release builds: the per-CPU and buddy lists'
    /// hot paths, whose pfns are in range by their invariants.
    ///
    /// # Safety
    /// `start_pfn <= pfn < end_pfn`.
    #[inline]
    #[must_use]
    pub unsafe fn page_unchecked(&self, pfn: usize) -> &Page {
        debug_assert!(pfn >= self.start_pfn && pfn < self.end_pfn, "pfn {pfn:#x} outside mem_map");
        // SAFETY: In range by the caller's contract.
        unsafe { self.pages.add(pfn - self.start_pfn).as_ref() }
    }

    /// `page_to_pfn`, or `None` if `page` is not an element of this map.
    #[inline]
    #[must_use]
    pub fn pfn_of(&self, page: &Page) -> Option<usize> {
        // Division by a power of two and a range check; no pointer is dereferenced.
        let offset = (page as *const Page as usize).wrapping_sub(self.pages.as_ptr() as usize);
        let index = offset / size_of::<Page>();
        (offset.is_multiple_of(size_of::<Page>()) && index < self.end_pfn - self.start_pfn)
            .then_some(self.start_pfn + index)
    }

    /// The migratetype of the pageblock holding `pfn`.
    #[inline]
    #[must_use]
    pub fn pageblock_mt(&self, pfn: usize) -> MigrateType {
        MigrateType::from_index(self.block(pfn).load(Relaxed) as usize)
    }

    /// [`Self::pageblock_mt`] without the bounds check in release builds.
    ///
    /// # Safety
    /// `start_pfn <= pfn < end_pfn`.
    #[inline]
    #[must_use]
    pub unsafe fn pageblock_mt_unchecked(&self, pfn: usize) -> MigrateType {
        debug_assert!(pfn >= self.start_pfn && pfn < self.end_pfn, "pfn {pfn:#x} outside mem_map");
        let index = self.block_index(pfn);
        // SAFETY: `pfn` is in range (caller), so `index` is below the number of pageblocks.
        MigrateType::from_index(unsafe { self.blocks.add(index).as_ref() }.load(Relaxed) as usize)
    }

    /// Sets the migratetype of the pageblock holding `pfn` (allocator-internal: it decides
    /// which free lists pages go to).
    pub(crate) fn set_pageblock_mt(&self, pfn: usize, mt: MigrateType) {
        self.block(pfn).store(mt as u8, Relaxed);
    }

    #[inline]
    fn block(&self, pfn: usize) -> &AtomicU8 {
        assert!(pfn >= self.start_pfn && pfn < self.end_pfn, "pfn {pfn:#x} outside mem_map");
        let index = self.block_index(pfn);
        // SAFETY: `pfn` is in range, so `index` is below the number of pageblocks.
        unsafe { self.blocks.add(index).as_ref() }
    }
}

/// Bytes of a page range, for callers converting between pfns and addresses.
#[must_use]
pub const fn pfn_bytes(nr_pages: usize) -> usize {
    nr_pages * PAGE_SIZE
}

/// A zeroed page array for `nr` pages (pageblock order 9) over heap storage, for unit tests;
/// the storage is returned alongside and must outlive the map.
#[cfg(test)]
pub(crate) fn test_map(nr: usize) -> (std::vec::Vec<u32>, MemMap) {
    let mut storage = std::vec![0u32; MemMap::bytes_needed(0, nr, 9).div_ceil(4)];
    let ptr = NonNull::new(storage.as_mut_ptr().cast()).expect("heap storage");
    // SAFETY: zeroed, aligned, big enough; `storage` is returned alongside and outlives use.
    let mm = unsafe { MemMap::new(ptr, 0, nr, 9, true) };
    (storage, mm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn page_is_sixteen_bytes_and_zero_is_free_tail() {
        let page = Page::default();
        assert!(!page.is_buddy());
        assert_eq!(page.order(), 0);
        assert_eq!(page.refcount(), 0);
    }

    #[test]
    fn pfn_round_trip_and_pageblocks() {
        let bytes = MemMap::bytes_needed(1024, 1024 + 4096, 9);
        let mut storage = vec![0u32; bytes.div_ceil(4)];
        let ptr = NonNull::new(storage.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `storage` is zeroed, 4-aligned, large enough and outlives `map`.
        let map = unsafe { MemMap::new(ptr, 1024, 1024 + 4096, 9, true) };
        let page = map.page(1500);
        assert_eq!(map.pfn_of(page), Some(1500));
        assert!(map.get(1023).is_none() && map.get(5120).is_none());
        let stranger = Page::default();
        assert_eq!(map.pfn_of(&stranger), None);
        map.set_pageblock_mt(1024 + 512, MigrateType::Movable);
        assert_eq!(map.pageblock_mt(1024 + 1000), MigrateType::Movable);
        assert_eq!(map.pageblock_mt(1024), MigrateType::Unmovable);
        page.set_info(pg::BUDDY, 7, MigrateType::Reclaimable);
        assert!(page.is_buddy());
        assert_eq!(page.order(), 7);
        assert_eq!(page.list_mt(), MigrateType::Reclaimable);
    }

    /// PA-12: pageblocks are naturally aligned in pfns even when the map starts inside one:
    /// an entry per pageblock touched, and a pfn's entry is its own pageblock's.
    #[test]
    fn pageblocks_are_naturally_aligned_when_the_map_starts_inside_one() {
        assert_eq!(MemMap::nr_blocks(1, 1 + 1024, 9), 3, "a partial block at each end");
        assert_eq!(MemMap::nr_blocks(512, 1536, 9), 2);
        assert_eq!(MemMap::nr_blocks(5, 5, 9), 0);
        assert_eq!(MemMap::bytes_needed(1, 1025, 9), 1024 * 16 + 3);
        let mut storage = vec![0u32; MemMap::bytes_needed(1, 1025, 9).div_ceil(4)];
        let ptr = NonNull::new(storage.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `storage` is zeroed, 4-aligned, large enough and outlives `map`.
        let map = unsafe { MemMap::new(ptr, 1, 1025, 9, true) };
        map.set_pageblock_mt(512, MigrateType::Movable);
        assert_eq!(map.pageblock_mt(511), MigrateType::Unmovable, "the partial first block");
        assert_eq!(map.pageblock_mt(512), MigrateType::Movable);
        assert_eq!(map.pageblock_mt(1023), MigrateType::Movable, "the whole block [512, 1024)");
        assert_eq!(map.pageblock_mt(1024), MigrateType::Unmovable, "the partial last block");
        map.set_pageblock_mt(1024, MigrateType::Reclaimable);
        assert_eq!(map.pageblock_mt(1023), MigrateType::Movable);
    }
}
