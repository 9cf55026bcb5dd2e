//! The only unsafe code of vmalloc: memory carved from pages of the page allocator (the node
//! chunks of the area trees, their directory, large pfn arrays) or from kmalloc (pfn arrays of
//! up to a page), reached through the direct map, and byte access through a mapped area
//! (`vrealloc`, zeroing).
//!
//! Invariant: the first `min(len, FIRST)` entries of `first`, then the first `len - FIRST`
//! entries of the directory blocks (counted across blocks; `dirs[d]` for `d < dirs_used` is the
//! direct-map address of a live order-`dir_order` block holding [`Chunks::per_dir`] entries)
//! are the direct-map addresses of live order-[`CHUNK_ORDER`] blocks whose [`NODES_PER_CHUNK`]
//! slots were all initialised when they were added. Blocks are never given back while the [`Chunks`] lives. A [`PfnArray`]
//! points to a kmalloc object or to `1 << order` pages of lowmem, owned by one area.

use core::ptr::NonNull;

use super::node::Node;
use crate::AllocError;
use crate::gfp::Gfp;
use crate::kmem::Kmem;
use crate::order::PAGE_SIZE;
use crate::platform::Platform;

/// Order of the blocks node chunks are carved from (16 KiB).
pub(super) const CHUNK_ORDER: u32 = 2;
/// Nodes per chunk.
pub(super) const NODES_PER_CHUNK: usize = (PAGE_SIZE << CHUNK_ORDER) / size_of::<Node>();
/// Chunks whose addresses sit inline (the first ~400 000 nodes): one load per node access,
/// as with a flat array.
pub(super) const FIRST: usize = 2048;
/// Directory blocks for the chunks past [`FIRST`]: they cover `DIRS * per_dir` more chunks,
/// with `per_dir` chosen from the range so that every node the range could ever need has a
/// place (no fixed cap).
pub(super) const DIRS: usize = 256;

const _: () = assert!(NODES_PER_CHUNK >= 64);
const _: () = assert!((PAGE_SIZE / size_of::<usize>()).is_power_of_two());
const _: () = assert!(align_of::<Node>() <= PAGE_SIZE);

/// The directory of node chunks.
pub(super) struct Chunks {
    /// Addresses of the first [`FIRST`] chunks.
    first: [usize; FIRST],
    /// Directory blocks of the later chunks.
    dirs: [usize; DIRS],
    /// Directory blocks in use.
    dirs_used: usize,
    /// Order of each directory block.
    dir_order: u32,
    /// Chunks.
    len: usize,
    /// `min(len, FIRST)`: node accesses below it need one compare and one load.
    first_len: usize,
}

impl Chunks {
    /// An empty directory whose blocks are of `dir_order` (see [`Chunks::order_for`]).
    pub(super) const fn new(dir_order: u32) -> Self {
        Self { first: [0; FIRST], dirs: [0; DIRS], dirs_used: 0, dir_order, len: 0, first_len: 0 }
    }

    /// The directory block order with room for `nodes` nodes, if one exists up to `max_order`.
    pub(super) fn order_for(nodes: usize, max_order: u32) -> Option<u32> {
        (0..=max_order).find(|&o| (FIRST + DIRS * Self::per_dir_of(o)) * NODES_PER_CHUNK >= nodes)
    }

    const fn per_dir_of(order: u32) -> usize {
        (PAGE_SIZE << order) / size_of::<usize>()
    }

    /// Chunk addresses per directory block.
    pub(super) const fn per_dir(&self) -> usize {
        Self::per_dir_of(self.dir_order)
    }

    /// Order of the directory blocks.
    pub(super) const fn dir_order(&self) -> u32 {
        self.dir_order
    }

    /// Number of chunks.
    #[cfg(any(test, feature = "check"))]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether the next chunk needs a new directory block first: `Some(true)`; `None` when the
    /// directory is full (every node the range can use already exists).
    pub(super) fn needs_dir(&self) -> Option<bool> {
        let Some(later) = self.len.checked_sub(FIRST) else { return Some(false) };
        if later < self.dirs_used * self.per_dir() {
            Some(false)
        } else if self.dirs_used < DIRS {
            Some(true)
        } else {
            None
        }
    }

    /// Takes a fresh block of `dir_order` as the next directory block.
    ///
    /// # Safety
    /// `block` is the direct-map address of `PAGE_SIZE << dir_order` bytes of allocated lowmem
    /// that nothing else uses, now or later (it is never freed), and `needs_dir()` is
    /// `Some(true)`.
    pub(super) unsafe fn add_dir(&mut self, block: NonNull<u8>) {
        assert_eq!(self.needs_dir(), Some(true), "vmalloc: chunk directory block not needed");
        self.dirs[self.dirs_used] = block.as_ptr() as usize;
        // INVARIANT: The block is live; its entries are written before `len` covers them.
        self.dirs_used += 1;
    }

    /// Takes a fresh block as a new chunk and fills it with `fill(i)` for the global node
    /// index `i` of each slot; returns the chunk number.
    ///
    /// # Safety
    /// `block` is the direct-map address of `PAGE_SIZE << CHUNK_ORDER` bytes of allocated lowmem
    /// that nothing else uses, now or later (the chunk is never freed), and `needs_dir()` is
    /// `Some(false)`.
    pub(super) unsafe fn add(&mut self, block: NonNull<u8>, fill: impl Fn(u32) -> Node) -> usize {
        assert_eq!(self.needs_dir(), Some(false), "vmalloc: node chunk directory full");
        let chunk = self.len;
        let nodes = block.cast::<Node>();
        for slot in 0..NODES_PER_CHUNK {
            // SAFETY: `slot < NODES_PER_CHUNK`, so the write is inside the block (caller), which is
            // page aligned, hence aligned for `Node` (checked above); nothing else uses it.
            unsafe { nodes.add(slot).write(fill((chunk * NODES_PER_CHUNK + slot) as u32)) };
        }
        if chunk < FIRST {
            self.first[chunk] = block.as_ptr() as usize;
        } else {
            let entry = self.entry(chunk - FIRST);
            // SAFETY: `chunk - FIRST < dirs_used * per_dir` (checked by `needs_dir`), so the
            // entry lies in a live directory block (type invariant), aligned for `usize`
            // (blocks are page aligned).
            unsafe { entry.write(block.as_ptr() as usize) };
        }
        // INVARIANT: Every slot of the chunk was just initialised and its entry written.
        self.len += 1;
        self.first_len = self.len.min(FIRST);
        chunk
    }

    /// The directory entry of chunk `FIRST + later` (which must lie in a used directory block).
    #[inline]
    fn entry(&self, later: usize) -> *mut usize {
        // `per_dir` is a power of two: a shift and a mask, no division.
        let shift = self.per_dir().trailing_zeros();
        let (dir, idx) = (later >> shift, later & (self.per_dir() - 1));
        (self.dirs[dir] as *mut usize).wrapping_add(idx)
    }

    #[inline]
    fn slot(&self, i: u32) -> *mut Node {
        let (chunk, slot) = (i as usize / NODES_PER_CHUNK, i as usize % NODES_PER_CHUNK);
        let base = if chunk < self.first_len { self.first[chunk] } else { self.later_base(i) };
        (base as *mut Node).wrapping_add(slot)
    }

    /// The chunk address of node `i` past the inline part (out of line: the node accesses of
    /// tree walks stay small).
    #[cold]
    #[inline(never)]
    fn later_base(&self, i: u32) -> usize {
        let chunk = i as usize / NODES_PER_CHUNK;
        assert!(chunk >= FIRST && chunk < self.len, "vmalloc: node index {i} out of range");
        // SAFETY: `FIRST <= chunk < len`: its entry was written in a live directory block (type
        // invariant).
        unsafe { self.entry(chunk - FIRST).read() }
    }

    /// The node of index `i`.
    #[inline]
    pub(super) fn get(&self, i: u32) -> &Node {
        // SAFETY: `slot` checked the chunk exists; its slots are initialised nodes (type
        // invariant) and shared access follows `&self`, exclusive access `&mut self`.
        unsafe { &*self.slot(i) }
    }

    /// The node of index `i`, mutably.
    #[inline]
    pub(super) fn get_mut(&mut self, i: u32) -> &mut Node {
        // SAFETY: As in `get`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.slot(i) }
    }
}

/// An area's page-frame numbers: a kmalloc object (arrays of up to a page, as the kernel's
/// `area->pages`), or lowmem pages of its own (larger arrays, where the kernel nests a vmalloc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PfnArray {
    base: NonNull<u32>,
    /// Order of the block holding the array, or [`PfnArray::KMALLOC`].
    pub(super) order: u32,
    /// Entries.
    pub(super) len: u32,
}

// SAFETY: A plain address of memory owned by one area; the area's owner decides who uses it.
unsafe impl Send for PfnArray {}

impl PfnArray {
    /// `order` of an array that is a kmalloc object.
    pub(super) const KMALLOC: u32 = u32::MAX;

    /// Wraps a block of pages.
    ///
    /// # Safety
    /// `block` is the direct-map address of an allocated lowmem block of `order`, of at least
    /// `4 * len` bytes, owned by the caller until it is freed.
    pub(super) unsafe fn new(block: NonNull<u8>, order: u32, len: u32) -> Self {
        debug_assert_ne!(order, Self::KMALLOC);
        Self { base: block.cast(), order, len }
    }

    /// Wraps a kmalloc object.
    ///
    /// # Safety
    /// `obj` is a live kmalloc object of at least `4 * len` bytes, owned by the caller until it
    /// is `kfree`d.
    pub(super) unsafe fn new_kmalloc(obj: NonNull<u8>, len: u32) -> Self {
        Self { base: obj.cast(), order: Self::KMALLOC, len }
    }

    /// Whether the array is a kmalloc object (else a block of `order`).
    pub(super) fn is_kmalloc(&self) -> bool {
        self.order == Self::KMALLOC
    }

    /// The block's or object's address, to free it.
    pub(super) fn block(&self) -> NonNull<u8> {
        self.base.cast()
    }

    /// Entry `i`.
    #[inline]
    pub(super) fn get(&self, i: usize) -> u32 {
        assert!(i < self.len as usize);
        // SAFETY: In bounds (checked); the block is owned by the area (type contract) and
        // entries are written before the area becomes visible.
        unsafe { self.base.add(i).read() }
    }

    /// Sets entry `i`.
    #[inline]
    pub(super) fn set(&mut self, i: usize, pfn: u32) {
        assert!(i < self.len as usize);
        // SAFETY: As in `get`; only the thread building the area writes.
        unsafe { self.base.add(i).write(pfn) }
    }
}

impl<M: super::Mmu> super::Vmalloc<M> {
    /// Allocates the pfn array of an area of `nr_pages` (`__vmalloc_area_node`): `nr_pages *
    /// sizeof(struct page *)` bytes from kmalloc up to a page (the kernel's `kmalloc_node`, so
    /// it shows in `Slab` and `/proc/slabinfo`), else a lowmem block of its own (where the
    /// kernel nests a vmalloc), with the reclaim bits of `gfp` and no warning. One retry after
    /// releasing the frame cache.
    pub(super) fn alloc_array<P: Platform>(
        &self,
        k: &Kmem<P>,
        nr_pages: usize,
        gfp: Gfp,
        caller: &core::panic::Location<'_>,
    ) -> Result<PfnArray, AllocError> {
        let gfp = gfp.intersection(crate::gfp::GFP_RECLAIM_MASK).difference(crate::gfp::__GFP_ZERO)
            | crate::gfp::__GFP_NOWARN;
        let len = u32::try_from(nr_pages).map_err(|_| AllocError)?;
        let bytes = self.array_bytes(nr_pages);
        let try_once = || -> Result<PfnArray, AllocError> {
            if bytes <= PAGE_SIZE {
                let obj = k.kmalloc_at(bytes, gfp, caller)?;
                // SAFETY: A fresh kmalloc object of `bytes >= 4 * len` bytes (entries of at
                // least 4 bytes), ours until `free_array`.
                Ok(unsafe { PfnArray::new_kmalloc(obj, len) })
            } else {
                let order = crate::order::get_order(bytes);
                let page = k.alloc_pages_at(gfp, order, caller)?;
                let block = k.page_address(page).expect("no __GFP_HIGHMEM: lowmem page");
                // SAFETY: A fresh lowmem block of `order` (at least `bytes >= 4 * len` bytes),
                // ours until `free_array`.
                Ok(unsafe { PfnArray::new(block, order, len) })
            }
        };
        let mut array = try_once();
        if array.is_err() && self.drain_cache(k, usize::MAX) > 0 {
            array = try_once();
        }
        array
    }

    /// Frees a pfn array from [`Self::alloc_array`].
    pub(super) fn free_array<P: Platform>(&self, k: &Kmem<P>, pfns: &PfnArray) {
        if pfns.is_kmalloc() {
            // SAFETY: A kmalloc object from `alloc_array`, owned by the area being freed and no
            // longer referenced (its node dropped it).
            unsafe { k.kfree(pfns.block().as_ptr()) };
        } else {
            // SAFETY: The array's own block, as for the kmalloc case above.
            unsafe { k.free_pages_addr(pfns.block().as_ptr(), pfns.order) };
        }
    }
}

/// Copies `len` bytes between two mapped areas.
///
/// # Safety
/// `src..src+len` and `dst..dst+len` are mapped ([`super::Mmu`] contract), inside areas the
/// caller owns, and do not overlap.
pub(super) unsafe fn copy_mapped(dst: usize, src: usize, len: usize) {
    // SAFETY: Forwarded contract.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) }
}

/// Zeroes `len` bytes of a mapped area.
///
/// # Safety
/// `dst..dst+len` is mapped and inside an area the caller owns.
pub(super) unsafe fn zero_mapped(dst: usize, len: usize) {
    // SAFETY: Forwarded contract.
    unsafe { core::ptr::write_bytes(dst as *mut u8, 0, len) }
}
