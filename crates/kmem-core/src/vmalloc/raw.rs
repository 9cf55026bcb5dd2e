//! The only unsafe code of vmalloc: memory carved from pages of the page allocator (the node
//! chunks of the area trees and the pfn arrays of areas), reached through the direct map, and
//! byte access through a mapped area (`vrealloc`).
//!
//! Invariant: a [`Chunks`] entry below `len` is the direct-map address of a live order
//! [`CHUNK_ORDER`] block whose [`NODES_PER_CHUNK`] slots were all initialised when it was
//! added; chunks are never given back while the [`Chunks`] lives. A [`PfnArray`] points to
//! `1 << order` pages of lowmem owned by one area.

use core::ptr::NonNull;

use super::node::Node;
use crate::order::PAGE_SIZE;

/// Order of the blocks node chunks are carved from (16 KiB).
pub(super) const CHUNK_ORDER: u32 = 2;
/// Nodes per chunk.
pub(super) const NODES_PER_CHUNK: usize = (PAGE_SIZE << CHUNK_ORDER) / size_of::<Node>();
/// Most chunks: bounds the number of areas plus free ranges (about 400 000).
pub(super) const MAX_CHUNKS: usize = 2048;

const _: () = assert!(NODES_PER_CHUNK >= 64);
const _: () = assert!(align_of::<Node>() <= PAGE_SIZE);
const _: () = assert!(MAX_CHUNKS * NODES_PER_CHUNK < u32::MAX as usize);

/// The directory of node chunks.
pub(super) struct Chunks {
    base: [usize; MAX_CHUNKS],
    len: usize,
}

impl Chunks {
    pub(super) const fn new() -> Self {
        Self { base: [0; MAX_CHUNKS], len: 0 }
    }

    /// Number of chunks.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Takes a fresh block as a new chunk and fills it with `fill(i)` for the global node
    /// index `i` of each slot; returns the chunk number.
    ///
    /// # Safety
    /// `block` is the direct-map address of `PAGE_SIZE << CHUNK_ORDER` bytes of allocated lowmem
    /// that nothing else uses, now or later (the chunk is never freed), and `len() < MAX_CHUNKS`.
    pub(super) unsafe fn add(&mut self, block: NonNull<u8>, fill: impl Fn(u32) -> Node) -> usize {
        assert!(self.len < MAX_CHUNKS, "vmalloc: node chunk directory full");
        let chunk = self.len;
        let nodes = block.cast::<Node>();
        for slot in 0..NODES_PER_CHUNK {
            // SAFETY: `slot < NODES_PER_CHUNK`, so the write is inside the block (caller), which is
            // page aligned, hence aligned for `Node` (checked above); nothing else uses it.
            unsafe { nodes.add(slot).write(fill((chunk * NODES_PER_CHUNK + slot) as u32)) };
        }
        self.base[chunk] = block.as_ptr() as usize;
        // INVARIANT: Every slot of the chunk was just initialised.
        self.len += 1;
        chunk
    }

    #[inline]
    fn slot(&self, i: u32) -> *mut Node {
        let (chunk, slot) = (i as usize / NODES_PER_CHUNK, i as usize % NODES_PER_CHUNK);
        assert!(chunk < self.len, "vmalloc: node index {i} out of range");
        (self.base[chunk] as *mut Node).wrapping_add(slot)
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

/// An area's page-frame numbers, in lowmem pages of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PfnArray {
    base: NonNull<u32>,
    /// Order of the block holding the array.
    pub(super) order: u32,
    /// Entries.
    pub(super) len: u32,
}

// SAFETY: A plain address of pages owned by one area; the area's owner decides who uses it.
unsafe impl Send for PfnArray {}

impl PfnArray {
    /// Order of the block an array of `len` entries needs.
    pub(super) fn order_for(len: usize) -> u32 {
        crate::order::get_order((len * size_of::<u32>()).max(1))
    }

    /// Wraps a block.
    ///
    /// # Safety
    /// `block` is the direct-map address of an allocated lowmem block of `order`, of at least
    /// `4 * len` bytes, owned by the caller until it is freed.
    pub(super) unsafe fn new(block: NonNull<u8>, order: u32, len: u32) -> Self {
        Self { base: block.cast(), order, len }
    }

    /// The block's address, to free it.
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
