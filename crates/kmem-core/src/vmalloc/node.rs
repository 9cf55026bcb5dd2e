//! `struct vmap_area` (+ the `vm_struct` fields kmem needs) and the pool they come from.
//!
//! A node is a range `[start, end)` of the vmalloc space that is either free (in the free
//! tree), busy (an area, in the busy tree) or lazily freed (in the lazy tree). Nodes move
//! between the trees without being copied. Unused nodes form a list threaded through `left`;
//! deferred frees, VA pool and frame cache lists are threaded through `next`.
//!
//! Invariant: `nr_free` equals the length of the unused list; every index the pool hands out
//! is below `chunks.len() * NODES_PER_CHUNK`.
//!
//! Lifetime: chunks are never freed (a node's index is its name in the trees and lists, so a
//! chunk could only go once all its nodes were unused, and kmem-core has no heap to move them
//! to), but they are not a leak: a node whose range leaves the trees (merged into a free
//! neighbour, handed out whole) goes back to the unused list with [`Pool::put`], a node reused
//! in place (VA pool, frame cache) never leaves, and [`Pool::take`] hands out unused nodes
//! before the pool grows (`Vmalloc::lock_with_nodes` grows it only when fewer than an
//! allocation needs are unused). So the chunk count is the peak number of nodes in use at once,
//! rounded up to whole chunks, not a function of how many areas were ever made: nodes in use are
//! the live areas, the lazily freed ones (purged past `lazy_max_pages`), the VA pool (decayed at
//! every purge), the frame cache (bounded) and the free ranges between them (no two touch), and
//! since they cover disjoint pages of the range, never more than its pages. A churn of a steady
//! working set stays at its peak (tests/rules/vmalloc_reuse.rs, counted with
//! `Vmalloc::node_chunks`).

use core::panic::Location;

use super::raw::{Chunks, NODES_PER_CHUNK, PfnArray};

/// "No node".
pub(super) const NIL: u32 = u32::MAX;

/// One range of the vmalloc space.
#[derive(Debug)]
pub(super) struct Node {
    /// First address.
    pub(super) start: usize,
    /// One past the last address (guard page included).
    pub(super) end: usize,
    /// Largest `end - start` in this node's subtree (the free tree's augmentation).
    pub(super) subtree_max: usize,
    pub(super) left: u32,
    pub(super) right: u32,
    pub(super) height: u8,
    /// Highest zone (index) the backing frames may come from (the allocation's `gfp_zone`).
    pub(super) zone: u8,
    /// `vm->page_order`: the order of the mapping leaves (`PMD_SHIFT - PAGE_SHIFT` for a
    /// huge vmalloc, else 0).
    pub(super) page_order: u8,
    /// `VM_*` flags of the area.
    pub(super) flags: u32,
    /// Bytes asked for (`requested_size`).
    pub(super) requested: usize,
    /// Backing frames (vmalloc) or the caller's frames (vmap).
    pub(super) pages: Option<PfnArray>,
    /// The caller's `struct page *` array a `VM_MAP_PUT_PAGES` `vmap` handed over with its
    /// pages (the kernel's `vm->pages`), which `vfree` gives to `kvfree`; 0 for none. Set only
    /// by [`Vmalloc::vmap_put_pages`](super::Vmalloc::vmap_put_pages) on a live area, taken
    /// back (zeroed) when the area is retired.
    pub(super) put_array: usize,
    /// Who created the area.
    pub(super) caller: Option<&'static Location<'static>>,
    /// The foreign (C) code address that made the area ([`crate::platform::Platform::foreign_caller`]),
    /// or 0: named instead of `caller` in `/proc/vmallocinfo`.
    pub(super) caller_ip: usize,
    /// Link of the deferred-free list (and of a vmap block queue, `ram`).
    pub(super) next: u32,
    /// A vmap block's counters (`VM_RAM_BLOCK` nodes only; see `ram`).
    pub(super) vb: VbState,
}

/// The counters of a vmap block (`struct vmap_block` less its lock, bitmap and lists), in
/// pages of the block: all at most `VMAP_BBMAP_BITS_MAX` (1024).
#[derive(Clone, Copy, Debug)]
pub(super) struct VbState {
    /// Pages never handed out (from the end of the block).
    pub(super) free: u16,
    /// Pages handed out and unmapped again (not reused before the block goes).
    pub(super) dirty: u16,
    /// The dirty range not yet flushed by `vm_unmap_aliases`: `[dirty_min, dirty_max)`,
    /// empty as `dirty_min = bits`, `dirty_max = 0`.
    pub(super) dirty_min: u16,
    /// See `dirty_min`.
    pub(super) dirty_max: u16,
    /// The per-CPU queue the block is on while it has free pages.
    pub(super) queue: u16,
    /// Link of the list of blocks with a dirty range to flush (`Space::vb_flush`), which a
    /// block is on iff `dirty_max > 0`.
    pub(super) flush_next: u32,
    /// Back link of the flush list (`NIL` at its head or off it): unlinking is O(1).
    pub(super) flush_prev: u32,
    /// Back link of the block's queue (`NIL` at its head or off it; `Node::next` is the
    /// forward link): unlinking is O(1), as the kernel's `list_del_rcu`.
    pub(super) prev: u32,
}

impl VbState {
    /// A block's state with nothing linked.
    pub(super) const fn new(free: u16, dirty_min: u16, queue: u16) -> Self {
        VbState { free, dirty: 0, dirty_min, dirty_max: 0, queue, flush_next: NIL, flush_prev: NIL, prev: NIL }
    }
}

impl Node {
    pub(super) const fn empty(next_free: u32) -> Self {
        Node {
            start: 0,
            end: 0,
            subtree_max: 0,
            left: next_free,
            right: NIL,
            height: 0,
            zone: 0,
            page_order: 0,
            flags: 0,
            requested: 0,
            pages: None,
            put_array: 0,
            caller: None,
            caller_ip: 0,
            next: NIL,
            vb: VbState::new(0, 0, 0),
        }
    }

    /// Bytes of address space, guard included.
    #[inline]
    pub(super) fn size(&self) -> usize {
        self.end - self.start
    }

    /// Pages backing the area.
    #[inline]
    pub(super) fn nr_pages(&self) -> usize {
        self.pages.map_or(0, |p| p.len as usize)
    }
}

/// Nodes, and the unused ones.
pub(super) struct Pool {
    pub(super) chunks: Chunks,
    free_head: u32,
    nr_free: usize,
}

impl Pool {
    /// An empty pool whose chunk directory blocks are of `dir_order` ([`Chunks::order_for`]).
    pub(super) const fn new(dir_order: u32) -> Self {
        Self { chunks: Chunks::new(dir_order), free_head: NIL, nr_free: 0 }
    }

    /// Unused nodes.
    pub(super) fn nr_free(&self) -> usize {
        self.nr_free
    }

    /// Nodes in all chunks.
    #[cfg(any(test, feature = "check"))]
    pub(super) fn capacity(&self) -> usize {
        self.chunks.len() * NODES_PER_CHUNK
    }

    /// Adds a chunk's nodes to the unused list.
    ///
    /// # Safety
    /// As [`Chunks::add`].
    pub(super) unsafe fn grow(&mut self, block: core::ptr::NonNull<u8>) {
        let head = self.free_head;
        // SAFETY: Forwarded contract.
        let chunk = unsafe {
            self.chunks.add(block, |i| {
                let last = (i as usize + 1).is_multiple_of(NODES_PER_CHUNK);
                Node::empty(if last { head } else { i + 1 })
            })
        };
        // INVARIANT: The chunk's nodes are chained in order and end at the old head.
        self.free_head = (chunk * NODES_PER_CHUNK) as u32;
        self.nr_free += NODES_PER_CHUNK;
    }

    /// Takes an unused node for `[start, end)`, or `None` if the pool is empty.
    pub(super) fn take(&mut self, start: usize, end: usize) -> Option<u32> {
        let i = self.free_head;
        if i == NIL {
            return None;
        }
        let node = self.chunks.get_mut(i);
        self.free_head = node.left;
        *node = Node::empty(NIL);
        node.start = start;
        node.end = end;
        self.nr_free -= 1;
        Some(i)
    }

    /// Returns a node to the unused list.
    pub(super) fn put(&mut self, i: u32) {
        let head = self.free_head;
        *self.chunks.get_mut(i) = Node::empty(head);
        self.free_head = i;
        self.nr_free += 1;
    }

    #[inline]
    pub(super) fn get(&self, i: u32) -> &Node {
        self.chunks.get(i)
    }

    #[inline]
    pub(super) fn get_mut(&mut self, i: u32) -> &mut Node {
        self.chunks.get_mut(i)
    }
}
