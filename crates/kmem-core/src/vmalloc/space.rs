//! The vmalloc address space: free ranges, busy areas and lazily freed areas, as three trees
//! over one node pool (`alloc_vmap_area`, `free_vmap_area`, `__purge_vmap_area_lazy`).
//!
//! Invariants (checked by [`Space::check`]): the free, busy and lazy ranges are disjoint and
//! together cover `[start, end)` exactly; no two free ranges touch (freeing coalesces);
//! `lazy_pages` is the sum of the lazy ranges' sizes in pages; a node taken from the pool is
//! in exactly one tree or on its way between two under the same lock hold.

use super::node::{NIL, Node, Pool};
use super::tree::Tree;
use crate::order::PAGE_SIZE;

/// Nodes an allocation may need: the area itself and the split-off right part of a free range.
pub(super) const NODES_PER_ALLOC: usize = 2;

/// Everything behind the vmap lock.
pub(super) struct Space {
    pub(super) pool: Pool,
    pub(super) free: Tree,
    pub(super) busy: Tree,
    pub(super) lazy: Tree,
    /// Pages of address space in the lazy tree (`vmap_lazy_nr`).
    pub(super) lazy_pages: usize,
    /// Head of the deferred-free list (areas `vfree`d in atomic context), linked by `next`.
    pub(super) deferred: u32,
    start: usize,
    end: usize,
}

impl Space {
    pub(super) const fn new(start: usize, end: usize) -> Self {
        Self {
            pool: Pool::new(),
            free: Tree::new(),
            busy: Tree::new(),
            lazy: Tree::new(),
            lazy_pages: 0,
            deferred: NIL,
            start,
            end,
        }
    }

    /// Whether the whole range still has to be put into the free tree (first use).
    pub(super) fn needs_init(&self) -> bool {
        self.free.len == 0 && self.busy.len == 0 && self.lazy.len == 0 && self.start < self.end
    }

    /// Puts the whole range in the free tree. Needs one node.
    pub(super) fn init(&mut self) {
        let i = self.pool.take(self.start, self.end).expect("caller reserved a node");
        self.free.insert(&mut self.pool, i);
    }

    /// Takes `size` bytes aligned to `align` at the lowest address that fits and records them as
    /// a busy area; returns its node. Needs [`NODES_PER_ALLOC`] unused nodes.
    pub(super) fn alloc(&mut self, size: usize, align: usize) -> Option<u32> {
        debug_assert!(size > 0 && size.is_multiple_of(PAGE_SIZE) && align.is_power_of_two());
        // `find_vmap_lowest_match` with `adjust_search_size`: a block that long fits any
        // alignment, so the descent never has to back up.
        let len = if align > PAGE_SIZE { size.checked_add(align - 1)? } else { size };
        let f = self.free.lowest_fit(&self.pool, len);
        if f == NIL {
            return None;
        }
        let (fs, fe) = (self.pool.get(f).start, self.pool.get(f).end);
        let start = fs.checked_next_multiple_of(align)?;
        let end = start + size;
        debug_assert!(end <= fe);
        match (start == fs, end == fe) {
            // Exact fit: the whole free range goes.
            (true, true) => {
                self.free.remove(&mut self.pool, fs);
                self.pool.put(f);
            }
            // Left-edge fit: the range keeps its place in the order with a later start.
            (true, false) => {
                self.pool.get_mut(f).start = end;
                self.free.refresh(&mut self.pool, end);
            }
            // Right-edge fit.
            (false, true) => {
                self.pool.get_mut(f).end = start;
                self.free.refresh(&mut self.pool, fs);
            }
            // No-edge fit: split in two.
            (false, false) => {
                self.pool.get_mut(f).end = start;
                self.free.refresh(&mut self.pool, fs);
                let right = self.pool.take(end, fe).expect("caller reserved nodes");
                self.free.insert(&mut self.pool, right);
            }
        }
        let area = self.pool.take(start, end).expect("caller reserved nodes");
        self.busy.insert(&mut self.pool, area);
        Some(area)
    }

    /// Returns node `i`'s range (no longer in any tree) to the free tree, merging it with the
    /// free neighbours it touches (`merge_or_add_vmap_area`). Needs no unused node.
    pub(super) fn release(&mut self, i: u32) {
        let (s, e) = (self.pool.get(i).start, self.pool.get(i).end);
        let prev = self.free.floor(&self.pool, s);
        let next = self.free.ceil(&self.pool, e);
        let merge_prev = prev != NIL && self.pool.get(prev).end == s;
        let merge_next = next != NIL && self.pool.get(next).start == e;
        match (merge_prev, merge_next) {
            (true, true) => {
                let next_end = self.pool.get(next).end;
                self.free.remove(&mut self.pool, e);
                self.pool.put(next);
                let p = self.pool.get(prev).start;
                self.pool.get_mut(prev).end = next_end;
                self.free.refresh(&mut self.pool, p);
                self.pool.put(i);
            }
            (true, false) => {
                let p = self.pool.get(prev).start;
                self.pool.get_mut(prev).end = e;
                self.free.refresh(&mut self.pool, p);
                self.pool.put(i);
            }
            (false, true) => {
                self.pool.get_mut(next).start = s;
                self.free.refresh(&mut self.pool, s);
                self.pool.put(i);
            }
            (false, false) => {
                let n = self.pool.get_mut(i);
                *n = Node { start: s, end: e, ..Node::empty(NIL) };
                self.free.insert(&mut self.pool, i);
            }
        }
    }

    /// Moves busy area `i` to the lazy tree (`free_vmap_area_noflush`).
    pub(super) fn retire(&mut self, i: u32) {
        let start = self.pool.get(i).start;
        let gone = self.busy.remove(&mut self.pool, start);
        debug_assert_eq!(gone, i);
        self.lazy_pages += self.pool.get(i).size() / PAGE_SIZE;
        self.lazy.insert(&mut self.pool, i);
    }

    /// Unmaps every lazily freed range (adjacent ranges in one call) and returns them all to
    /// the free tree. Returns the pages of address space purged.
    pub(super) fn purge(&mut self, unmap: &mut dyn FnMut(usize, usize)) -> usize {
        let mut run: Option<(usize, usize)> = None;
        self.lazy.for_each(&self.pool, &mut |i| {
            let n = self.pool.get(i);
            run = match run {
                Some((s, e)) if e == n.start => Some((s, n.end)),
                Some((s, e)) => {
                    unmap(s, e - s);
                    Some((n.start, n.end))
                }
                None => Some((n.start, n.end)),
            };
            true
        });
        if let Some((s, e)) = run {
            unmap(s, e - s);
        }
        while self.lazy.root != NIL {
            let start = self.pool.get(self.lazy.root).start;
            let i = self.lazy.remove(&mut self.pool, start);
            self.release(i);
        }
        core::mem::take(&mut self.lazy_pages)
    }

    /// Panics on a broken invariant (module docs).
    #[cfg(any(test, feature = "check"))]
    pub(super) fn check(&self) {
        let (nf, nb, nl) = (self.free.check(&self.pool), self.busy.check(&self.pool), self.lazy.check(&self.pool));
        // Merge the three address-ordered sequences and walk them as one.
        let mut cursor = self.start;
        let mut last_free_end = None;
        let (mut fi, mut bi, mut li) = (self.first(&self.free), self.first(&self.busy), self.first(&self.lazy));
        while fi != NIL || bi != NIL || li != NIL {
            let key = |i: u32| if i == NIL { usize::MAX } else { self.pool.get(i).start };
            let (kind, i) = [(0u8, fi), (1, bi), (2, li)].into_iter().min_by_key(|&(_, i)| key(i)).unwrap();
            let n = self.pool.get(i);
            assert_eq!(n.start, cursor, "gap or overlap at {cursor:#x} (tree {kind})");
            if kind == 0 {
                assert_ne!(last_free_end, Some(n.start), "free ranges not coalesced at {:#x}", n.start);
                last_free_end = Some(n.end);
            }
            cursor = n.end;
            match kind {
                0 => fi = self.next(&self.free, n.start),
                1 => bi = self.next(&self.busy, n.start),
                _ => li = self.next(&self.lazy, n.start),
            }
        }
        if !self.needs_init() {
            assert_eq!(cursor, self.end, "ranges do not reach the end");
        }
        let mut lazy = 0;
        self.lazy.for_each(&self.pool, &mut |i| {
            lazy += self.pool.get(i).size() / PAGE_SIZE;
            true
        });
        assert_eq!(lazy, self.lazy_pages, "lazy page count");
        assert_eq!(nf + nb + nl + self.pool.nr_free(), self.pool.capacity(), "nodes lost");
    }

    #[cfg(any(test, feature = "check"))]
    fn first(&self, t: &Tree) -> u32 {
        t.ceil(&self.pool, 0)
    }

    #[cfg(any(test, feature = "check"))]
    fn next(&self, t: &Tree, start: usize) -> u32 {
        t.ceil(&self.pool, start + 1)
    }
}
