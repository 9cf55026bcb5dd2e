//! The vmalloc address space: free ranges, busy areas and lazily freed areas, as three trees
//! over one node pool (`alloc_vmap_area`, `free_vmap_area`, `__purge_vmap_area_lazy`), plus
//! the VA pool and the frame cache (`pool`), whose nodes stay in the busy tree, flagged.
//!
//! Invariants (checked by [`Space::check`]): the free, busy and lazy ranges are disjoint and
//! together cover `[start, end)` exactly; no two free ranges touch (freeing coalesces);
//! `lazy_pages` is the sum of the lazy ranges' sizes in pages; a node taken from the pool is
//! in exactly one tree or on its way between two under the same lock hold; a busy node is
//! flagged `VM_POOLED` (resp. `VM_CACHED`) iff it is on the VA pool (resp. frame cache) lists;
//! a busy node flagged `VM_UNMAP_FAILED` (`strand`) is on no list and stays busy for good.

use super::node::{NIL, Node, Pool};
use super::pool::SizeLists;
use super::tree::Tree;
use super::{VM_CACHED, VM_IOREMAP, VM_MAP, VM_POOLED, VM_RAM, VM_UNMAP_FAILED, VM_VMALLOC};
use crate::order::PAGE_SIZE;

/// Frame-cache entries of one size looked at for one request (constant time).
const CACHE_SCAN: usize = 4;

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
    /// Purged address space ready for exact-size reuse (`vmap_node::pool`).
    pub(super) va_pool: SizeLists,
    /// Freed vmalloc areas still mapped with their frames (kmem's deviation).
    pub(super) cache: SizeLists,
    /// Per-CPU queues of vmap blocks with free pages (`vmap_block_queue::free`), linked by
    /// `next` (see `ram`).
    pub(super) vb_queues: [u32; super::ram::VB_QUEUES],
    /// The last block of each queue (`NIL` for an empty one): appending is O(1).
    pub(super) vb_tails: [u32; super::ram::VB_QUEUES],
    /// Head of the list of vmap blocks with a dirty range to flush, linked by
    /// `vb.flush_next` (`ram`).
    pub(super) vb_flush: u32,
    start: usize,
    end: usize,
}

impl Space {
    /// The space `[start, end)`, whose node directory blocks are of `dir_order`.
    pub(super) const fn new(start: usize, end: usize, dir_order: u32) -> Self {
        Self {
            pool: Pool::new(dir_order),
            free: Tree::new(),
            busy: Tree::new(),
            lazy: Tree::new(),
            lazy_pages: 0,
            deferred: NIL,
            va_pool: SizeLists::new(),
            cache: SizeLists::new(),
            vb_queues: [NIL; super::ram::VB_QUEUES],
            vb_tails: [NIL; super::ram::VB_QUEUES],
            vb_flush: NIL,
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
        // alignment, so the descent never has to back up; each range it passes is also tested
        // exactly (`is_within_this_va`), so an aligned place in a shorter range is found too.
        let len = if align > PAGE_SIZE { size.checked_add(align - 1)? } else { size };
        let within = |fs: usize, fe: usize| {
            fs.checked_next_multiple_of(align).and_then(|s| s.checked_add(size)).is_some_and(|e| e <= fe)
        };
        let f = self.free.lowest_match(&self.pool, len, within);
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

    /// Keeps node `i` (in no tree) busy for good, flagged `VM_UNMAP_FAILED`: the platform would
    /// not unmap its range, which may still reach frames ([`super::Mmu::unmap`]'s contract), so
    /// it is never handed out, purged or looked up again. Its frames (the caller's to deal with)
    /// and pfn array must already be taken. Needs no unused node.
    pub(super) fn strand(&mut self, i: u32) {
        let n = self.pool.get_mut(i);
        *n = Node { start: n.start, end: n.end, flags: VM_UNMAP_FAILED, ..Node::empty(NIL) };
        self.busy.insert(&mut self.pool, i);
    }

    /// Moves busy area `i` to the lazy tree (`free_vmap_area_noflush`).
    pub(super) fn retire(&mut self, i: u32) {
        let start = self.pool.get(i).start;
        let gone = self.busy.remove(&mut self.pool, start);
        debug_assert_eq!(gone, i);
        self.lazy_pages += self.pool.get(i).size() / PAGE_SIZE;
        self.lazy.insert(&mut self.pool, i);
    }

    /// Flushes every lazily freed range (`flush`: adjacent ranges in one call; they were
    /// unmapped when freed) and hands each to the VA pool when `populate` and it is small
    /// enough (`purge_vmap_node`), else to the free tree. Returns the pages of address space
    /// purged.
    pub(super) fn purge(&mut self, flush: &mut dyn FnMut(usize, usize), populate: bool) -> usize {
        // Only vmalloc, `vmap`, `vm_map_ram` and `vmap_pfn` (`VM_IOREMAP`) areas were ever
        // mapped; a `get_vm_area` range never was, so it never opens a run of its own (unless
        // its caller passed `VM_MAP` or `VM_IOREMAP`: a flush of nothing), but it may join a
        // run it touches.
        let mut run: Option<(usize, usize)> = None;
        self.lazy.for_each(&self.pool, &mut |i| {
            let n = self.pool.get(i);
            let mapped = n.flags & (VM_VMALLOC | VM_MAP | VM_RAM | VM_IOREMAP) != 0;
            run = match run {
                Some((s, e)) if e == n.start => Some((s, n.end)),
                Some((s, e)) => {
                    flush(s, e - s);
                    mapped.then_some((n.start, n.end))
                }
                None => mapped.then_some((n.start, n.end)),
            };
            true
        });
        if let Some((s, e)) = run {
            flush(s, e - s);
        }
        // In address order, as the kernel's purge list: the highest range ends up at the head
        // of its pool list.
        loop {
            let first = self.lazy.ceil(&self.pool, 0);
            if first == NIL {
                break;
            }
            let start = self.pool.get(first).start;
            let i = self.lazy.remove(&mut self.pool, start);
            match SizeLists::bucket(self.pool.get(i).size()).filter(|_| populate) {
                Some(b) => {
                    let n = self.pool.get_mut(i);
                    *n = Node { start: n.start, end: n.end, flags: VM_POOLED, ..Node::empty(NIL) };
                    self.busy.insert(&mut self.pool, i);
                    self.va_pool.push(&mut self.pool, b, i);
                }
                None => self.release(i),
            }
        }
        core::mem::take(&mut self.lazy_pages)
    }

    /// `decay_va_pool_node`: returns about a quarter of each VA pool list (lists of fewer than
    /// four entries keep them), or all of it when `full`, to the free tree. Returns the number
    /// of ranges released.
    pub(super) fn decay_pool(&mut self, full: bool) -> usize {
        let mut released = 0;
        let mut b = 0;
        while let Some(list) = self.va_pool.next_nonempty(b) {
            let len = self.va_pool.len(list);
            let n = if full { len } else { len >> 2 };
            for _ in 0..n {
                let i = self.va_pool.pop(&mut self.pool, list);
                let start = self.pool.get(i).start;
                let gone = self.busy.remove(&mut self.pool, start);
                debug_assert_eq!(gone, i);
                self.release(i);
            }
            released += n;
            b = list + 1;
        }
        released
    }

    /// `node_pool_del_va`: the head of the VA pool list of exactly `size` bytes if it is
    /// aligned to `align` (else the head moves to the tail and `None`). The node stays in the
    /// busy tree with no flags; the caller fills it in.
    pub(super) fn pool_take(&mut self, size: usize, align: usize) -> Option<u32> {
        let b = SizeLists::bucket(size)?;
        let i = self.va_pool.first(b);
        if i == NIL {
            return None;
        }
        if !self.pool.get(i).start.is_multiple_of(align) {
            self.va_pool.rotate(&mut self.pool, b);
            return None;
        }
        self.va_pool.unlink(&mut self.pool, b, NIL, i);
        self.pool.get_mut(i).flags = 0;
        Some(i)
    }

    /// Parks busy area `i` (mapped, with its frames) in the frame cache; false (nothing done)
    /// if it is too large.
    pub(super) fn cache_put(&mut self, i: u32) -> bool {
        let Some(b) = SizeLists::bucket(self.pool.get(i).size()) else { return false };
        let n = self.pool.get_mut(i);
        n.flags = VM_CACHED;
        n.caller = None;
        n.caller_ip = 0;
        n.requested = 0;
        self.cache.push(&mut self.pool, b, i);
        true
    }

    /// A cached area of `size` bytes with `nr_pages` frames, aligned to `align`, whose frames
    /// come from zones up to `zone_max`; looks at the first [`CACHE_SCAN`] entries of its
    /// list. The node stays in the busy tree, with its frames and no flags.
    pub(super) fn cache_take(&mut self, size: usize, nr_pages: usize, align: usize, zone_max: u8) -> Option<u32> {
        let b = SizeLists::bucket(size)?;
        let (mut prev, mut i) = (NIL, self.cache.first(b));
        for _ in 0..CACHE_SCAN {
            if i == NIL {
                return None;
            }
            let n = self.pool.get(i);
            if n.zone <= zone_max && n.nr_pages() == nr_pages && n.start.is_multiple_of(align) {
                self.cache.unlink(&mut self.pool, b, prev, i);
                self.pool.get_mut(i).flags = 0;
                return Some(i);
            }
            (prev, i) = (i, n.next);
        }
        None
    }

    /// Takes the most recently cached area of the largest size, out of the cache and the busy
    /// tree (still mapped, frames attached); `None` when the cache is empty.
    pub(super) fn cache_evict(&mut self) -> Option<u32> {
        let b = self.cache.last_nonempty()?;
        let i = self.cache.pop(&mut self.pool, b);
        let start = self.pool.get(i).start;
        let gone = self.busy.remove(&mut self.pool, start);
        debug_assert_eq!(gone, i);
        Some(i)
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
        let (mut pooled, mut cached) = (0, 0);
        self.busy.for_each(&self.pool, &mut |i| {
            let f = self.pool.get(i).flags;
            pooled += usize::from(f & VM_POOLED != 0);
            cached += usize::from(f & VM_CACHED != 0);
            true
        });
        assert_eq!(self.va_pool.check(&self.pool, VM_POOLED), pooled, "VA pool vs flagged nodes");
        assert_eq!(self.cache.check(&self.pool, VM_CACHED), cached, "frame cache vs flagged nodes");
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
