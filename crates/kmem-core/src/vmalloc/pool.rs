//! Size-segregated lists of reserved areas ready for reuse (`struct vmap_pool`, Linux ≥ 6.9).
//!
//! Two instances live behind the vmap lock (`Space`):
//! - the **VA pool** (`vmap_node::pool[]`): purged address space of up to
//!   [`MAX_VA_SIZE_PAGES`] pages, unmapped, handed out again by exact size (`node_alloc` /
//!   `node_pool_del_va`), decayed by ~25 % per lazy purge and fully on exhaustion or memory
//!   pressure (`decay_va_pool_node`);
//! - the **frame cache** (kmem only, a documented deviation): `vfree`d vmalloc areas still
//!   mapped with their frames, handed out again to a vmalloc of the same size whose zone
//!   constraints the frames satisfy, released by lazy purges, address-space exhaustion, page
//!   allocation failure and the shrinker.
//!
//! A listed node stays in the busy tree (flagged `VM_POOLED` or `VM_CACHED`, invisible to every
//! lookup), so taking one is O(1): no tree surgery. Lists are singly linked through
//! `Node::next`, LIFO at the head like `list_add`, with a tail for `list_move_tail`.
//!
//! Invariants (checked by `Space::check`): `len[b]` is the length of list `b`; every node of
//! list `b` has a range of `b + 1` pages; `nr` and `pages` are the sums of the list lengths and
//! of their nodes' backing pages.

use super::node::{NIL, Pool};
use crate::order::PAGE_SIZE;

/// Largest area (guard page included) a list holds, in pages (`MAX_VA_SIZE_PAGES`, 1 MiB).
pub(super) const MAX_VA_SIZE_PAGES: usize = 256;

/// One set of lists, one per area size in pages.
pub(super) struct SizeLists {
    head: [u32; MAX_VA_SIZE_PAGES],
    tail: [u32; MAX_VA_SIZE_PAGES],
    len: [u32; MAX_VA_SIZE_PAGES],
    /// Bit `b` set iff list `b` is non-empty (finding lists without scanning 256 heads).
    busy: [u64; MAX_VA_SIZE_PAGES / 64],
    /// Nodes on all lists.
    pub(super) nr: usize,
    /// Backing pages of the nodes on all lists (frame cache; 0 for the VA pool).
    pub(super) pages: usize,
}

impl SizeLists {
    pub(super) const fn new() -> Self {
        Self {
            head: [NIL; MAX_VA_SIZE_PAGES],
            tail: [NIL; MAX_VA_SIZE_PAGES],
            len: [0; MAX_VA_SIZE_PAGES],
            busy: [0; MAX_VA_SIZE_PAGES / 64],
            nr: 0,
            pages: 0,
        }
    }

    /// The list for areas of `size` bytes (`size_to_va_pool`), if any.
    #[inline]
    pub(super) fn bucket(size: usize) -> Option<usize> {
        let idx = size.checked_sub(1)? / PAGE_SIZE;
        (idx < MAX_VA_SIZE_PAGES).then_some(idx)
    }

    /// Entries of list `b`.
    pub(super) fn len(&self, b: usize) -> usize {
        self.len[b] as usize
    }

    /// Pushes node `i` at the head of list `b` (`list_add`).
    pub(super) fn push(&mut self, p: &mut Pool, b: usize, i: u32) {
        let n = p.get_mut(i);
        n.next = self.head[b];
        let pages = n.nr_pages();
        if self.head[b] == NIL {
            self.tail[b] = i;
            self.busy[b / 64] |= 1 << (b % 64);
        }
        self.head[b] = i;
        self.len[b] += 1;
        self.nr += 1;
        self.pages += pages;
    }

    /// The head of list `b`, or `NIL`.
    #[inline]
    pub(super) fn first(&self, b: usize) -> u32 {
        self.head[b]
    }

    /// Unlinks node `i`, which follows `prev` (`NIL`: `i` is the head) on list `b`.
    pub(super) fn unlink(&mut self, p: &mut Pool, b: usize, prev: u32, i: u32) {
        let next = p.get(i).next;
        if prev == NIL {
            self.head[b] = next;
        } else {
            p.get_mut(prev).next = next;
        }
        if self.tail[b] == i {
            self.tail[b] = prev;
        }
        if self.head[b] == NIL {
            self.busy[b / 64] &= !(1 << (b % 64));
        }
        let n = p.get_mut(i);
        n.next = NIL;
        self.len[b] -= 1;
        self.nr -= 1;
        self.pages -= n.nr_pages();
    }

    /// Pops the head of list `b`, or `NIL`.
    pub(super) fn pop(&mut self, p: &mut Pool, b: usize) -> u32 {
        let i = self.head[b];
        if i != NIL {
            self.unlink(p, b, NIL, i);
        }
        i
    }

    /// Moves the head of list `b` to its tail (`list_move_tail`).
    pub(super) fn rotate(&mut self, p: &mut Pool, b: usize) {
        let i = self.head[b];
        if i == NIL || self.tail[b] == i {
            return;
        }
        self.head[b] = p.get(i).next;
        p.get_mut(i).next = NIL;
        p.get_mut(self.tail[b]).next = i;
        self.tail[b] = i;
    }

    /// The first non-empty list at or after `from`, or `None`.
    pub(super) fn next_nonempty(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        let mut bits = self.busy.get(w)? & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            bits = *self.busy.get(w)?;
        }
    }

    /// The last non-empty list (the largest areas), or `None`.
    pub(super) fn last_nonempty(&self) -> Option<usize> {
        let w = self.busy.iter().rposition(|&bits| bits != 0)?;
        Some(w * 64 + 63 - self.busy[w].leading_zeros() as usize)
    }

    /// Panics unless the lists match their counters and hold nodes flagged `flag` of their
    /// size; returns the number of nodes.
    #[cfg(any(test, feature = "check"))]
    pub(super) fn check(&self, p: &Pool, flag: u32) -> usize {
        let (mut nr, mut pages) = (0, 0);
        for b in 0..MAX_VA_SIZE_PAGES {
            let (mut i, mut len, mut last) = (self.head[b], 0, NIL);
            while i != NIL {
                let n = p.get(i);
                assert_eq!(n.size(), (b + 1) * PAGE_SIZE, "pool list {b}: node of another size");
                assert!(n.flags & flag != 0, "pool list {b}: node not flagged");
                len += 1;
                pages += n.nr_pages();
                last = i;
                i = n.next;
            }
            assert_eq!(len, self.len[b] as usize, "pool list {b}: length");
            assert_eq!(last, self.tail[b], "pool list {b}: tail");
            assert_eq!(self.busy[b / 64] & (1 << (b % 64)) != 0, len > 0, "pool list {b}: bitmap");
            nr += len;
        }
        assert_eq!(nr, self.nr, "pool entries");
        assert_eq!(pages, self.pages, "pool pages");
        nr
    }
}
