//! An AVL tree of nodes keyed by start address, augmented with the largest range size in each
//! subtree (the kernel's `free_vmap_area_root` is a red-black tree with the same
//! augmentation). Every operation is O(log n); recursion depth is at most the height
//! (≤ 1.44 log2 n, about 27 for 400 000 nodes).
//!
//! Invariants (checked by [`Tree::check`]): in-order starts strictly increase and ranges do
//! not overlap; each node's `height` is 1 + the larger child height and the child heights
//! differ by at most 1; each node's `subtree_max` is the largest `end - start` below it.

use super::node::{NIL, Pool};

/// A tree's root and size.
#[derive(Debug)]
pub(super) struct Tree {
    pub(super) root: u32,
    pub(super) len: usize,
}

fn height(p: &Pool, i: u32) -> u8 {
    if i == NIL { 0 } else { p.get(i).height }
}

fn max(p: &Pool, i: u32) -> usize {
    if i == NIL { 0 } else { p.get(i).subtree_max }
}

/// Recomputes `i`'s height and augmentation from its children.
fn update(p: &mut Pool, i: u32) {
    let (l, r) = (p.get(i).left, p.get(i).right);
    let h = 1 + height(p, l).max(height(p, r));
    let m = p.get(i).size().max(max(p, l)).max(max(p, r));
    let n = p.get_mut(i);
    n.height = h;
    n.subtree_max = m;
}

fn rotate_right(p: &mut Pool, i: u32) -> u32 {
    let l = p.get(i).left;
    p.get_mut(i).left = p.get(l).right;
    p.get_mut(l).right = i;
    update(p, i);
    update(p, l);
    l
}

fn rotate_left(p: &mut Pool, i: u32) -> u32 {
    let r = p.get(i).right;
    p.get_mut(i).right = p.get(r).left;
    p.get_mut(r).left = i;
    update(p, i);
    update(p, r);
    r
}

/// Restores balance at `i` (children balanced, heights differing by at most 2).
fn balance(p: &mut Pool, i: u32) -> u32 {
    update(p, i);
    let (l, r) = (p.get(i).left, p.get(i).right);
    let (hl, hr) = (height(p, l) as i32, height(p, r) as i32);
    if hl > hr + 1 {
        if height(p, p.get(l).left) < height(p, p.get(l).right) {
            let nl = rotate_left(p, l);
            p.get_mut(i).left = nl;
        }
        return rotate_right(p, i);
    }
    if hr > hl + 1 {
        if height(p, p.get(r).right) < height(p, p.get(r).left) {
            let nr = rotate_right(p, r);
            p.get_mut(i).right = nr;
        }
        return rotate_left(p, i);
    }
    i
}

fn insert_at(p: &mut Pool, root: u32, x: u32) -> u32 {
    if root == NIL {
        let n = p.get_mut(x);
        n.left = NIL;
        n.right = NIL;
        update(p, x);
        return x;
    }
    if p.get(x).start < p.get(root).start {
        let l = insert_at(p, p.get(root).left, x);
        p.get_mut(root).left = l;
    } else {
        let r = insert_at(p, p.get(root).right, x);
        p.get_mut(root).right = r;
    }
    balance(p, root)
}

/// Removes the leftmost node of `root`; returns (new root, removed).
fn remove_min(p: &mut Pool, root: u32) -> (u32, u32) {
    let l = p.get(root).left;
    if l == NIL {
        return (p.get(root).right, root);
    }
    let (nl, min) = remove_min(p, l);
    p.get_mut(root).left = nl;
    (balance(p, root), min)
}

fn remove_at(p: &mut Pool, root: u32, key: usize) -> (u32, u32) {
    if root == NIL {
        return (NIL, NIL);
    }
    let start = p.get(root).start;
    if key < start {
        let (nl, gone) = remove_at(p, p.get(root).left, key);
        p.get_mut(root).left = nl;
        return (balance(p, root), gone);
    }
    if key > start {
        let (nr, gone) = remove_at(p, p.get(root).right, key);
        p.get_mut(root).right = nr;
        return (balance(p, root), gone);
    }
    let (l, r) = (p.get(root).left, p.get(root).right);
    if l == NIL || r == NIL {
        return (if l == NIL { r } else { l }, root);
    }
    let (nr, min) = remove_min(p, r);
    let m = p.get_mut(min);
    m.left = l;
    m.right = nr;
    (balance(p, min), root)
}

/// Recomputes the augmentation on the path to `key` (after a node's range changed in place
/// without changing its position in the order).
fn refresh_at(p: &mut Pool, root: u32, key: usize) {
    if root == NIL {
        return;
    }
    let start = p.get(root).start;
    if key < start {
        refresh_at(p, p.get(root).left, key);
    } else if key > start {
        refresh_at(p, p.get(root).right, key);
    }
    update(p, root);
}

impl Tree {
    pub(super) const fn new() -> Self {
        Self { root: NIL, len: 0 }
    }

    /// Inserts node `x` (its range must not overlap any node of the tree).
    pub(super) fn insert(&mut self, p: &mut Pool, x: u32) {
        self.root = insert_at(p, self.root, x);
        self.len += 1;
    }

    /// Removes and returns the node starting at `key`, or `NIL`.
    pub(super) fn remove(&mut self, p: &mut Pool, key: usize) -> u32 {
        let (root, gone) = remove_at(p, self.root, key);
        self.root = root;
        if gone != NIL {
            self.len -= 1;
        }
        gone
    }

    /// Recomputes the augmentation above the node now starting at `key`.
    pub(super) fn refresh(&self, p: &mut Pool, key: usize) {
        refresh_at(p, self.root, key);
    }

    /// The node with the largest start `<= addr`, or `NIL`.
    pub(super) fn floor(&self, p: &Pool, addr: usize) -> u32 {
        let (mut i, mut best) = (self.root, NIL);
        while i != NIL {
            let n = p.get(i);
            if n.start <= addr {
                best = i;
                i = n.right;
            } else {
                i = n.left;
            }
        }
        best
    }

    /// The node with the smallest start `>= addr`, or `NIL`.
    pub(super) fn ceil(&self, p: &Pool, addr: usize) -> u32 {
        let (mut i, mut best) = (self.root, NIL);
        while i != NIL {
            let n = p.get(i);
            if n.start >= addr {
                best = i;
                i = n.left;
            } else {
                i = n.right;
            }
        }
        best
    }

    /// The node whose range contains `addr`, or `NIL`.
    pub(super) fn containing(&self, p: &Pool, addr: usize) -> u32 {
        let i = self.floor(p, addr);
        if i != NIL && addr < p.get(i).end { i } else { NIL }
    }

    /// The lowest-addressed node of size `>= len` (`find_vmap_lowest_match`): descends left
    /// whenever the left subtree holds one, so one root-to-leaf walk.
    pub(super) fn lowest_fit(&self, p: &Pool, len: usize) -> u32 {
        let mut i = self.root;
        while i != NIL {
            let n = p.get(i);
            if max(p, n.left) >= len {
                i = n.left;
            } else if n.size() >= len {
                return i;
            } else if max(p, n.right) >= len {
                i = n.right;
            } else {
                return NIL;
            }
        }
        NIL
    }

    /// Largest range size in the tree.
    pub(super) fn max_size(&self, p: &Pool) -> usize {
        max(p, self.root)
    }

    /// Calls `f` on each node in address order; stops early when `f` returns false.
    pub(super) fn for_each(&self, p: &Pool, f: &mut dyn FnMut(u32) -> bool) {
        fn walk(p: &Pool, i: u32, f: &mut dyn FnMut(u32) -> bool) -> bool {
            if i == NIL {
                return true;
            }
            let n = p.get(i);
            let (l, r) = (n.left, n.right);
            walk(p, l, f) && f(i) && walk(p, r, f)
        }
        walk(p, self.root, f);
    }

    /// Panics on a broken invariant (see the module docs); returns the number of nodes.
    #[cfg(any(test, feature = "check"))]
    pub(super) fn check(&self, p: &Pool) -> usize {
        fn walk(p: &Pool, i: u32, lo: usize, hi: usize, count: &mut usize) -> (u8, usize) {
            if i == NIL {
                return (0, 0);
            }
            let n = p.get(i);
            assert!(n.start < n.end, "empty range {:#x}", n.start);
            assert!(n.start >= lo && n.end <= hi, "range {:#x}-{:#x} out of order", n.start, n.end);
            *count += 1;
            let (hl, ml) = walk(p, n.left, lo, n.start, count);
            let (hr, mr) = walk(p, n.right, n.end, hi, count);
            assert!(hl.abs_diff(hr) <= 1, "unbalanced at {:#x}", n.start);
            assert_eq!(n.height, 1 + hl.max(hr), "height at {:#x}", n.start);
            let m = n.size().max(ml).max(mr);
            assert_eq!(n.subtree_max, m, "augmentation at {:#x}", n.start);
            (n.height, m)
        }
        let mut count = 0;
        walk(p, self.root, 0, usize::MAX, &mut count);
        assert_eq!(count, self.len, "tree length");
        count
    }
}
