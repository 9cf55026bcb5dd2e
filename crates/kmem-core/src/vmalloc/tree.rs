//! An AVL tree of nodes keyed by start address, augmented with the largest range size in each
//! subtree (the kernel's `free_vmap_area_root` is a red-black tree with the same
//! augmentation). Every operation is one iterative descent, O(log n), recording its path;
//! rebalancing and augmentation then go back up only while a subtree's height or largest range
//! changes (the kernel's `augment_tree_propagate_from` stops the same way). The height is at
//! most 1.44 log2 n, about 27 for 400 000 nodes.
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

/// Deepest path an operation records: an AVL tree of height 48 has more than 2^32 nodes.
const MAX_HEIGHT: usize = 48;

/// The nodes from the root down to where an operation changed the tree, with the side taken
/// below each and the height and augmentation each subtree had before the change.
struct Path {
    node: [u32; MAX_HEIGHT],
    went_left: [bool; MAX_HEIGHT],
    old: [(u8, usize); MAX_HEIGHT],
    len: usize,
}

impl Path {
    const fn new() -> Self {
        Self { node: [NIL; MAX_HEIGHT], went_left: [false; MAX_HEIGHT], old: [(0, 0); MAX_HEIGHT], len: 0 }
    }

    fn push(&mut self, p: &Pool, i: u32, left: bool) {
        assert!(self.len < MAX_HEIGHT, "vmalloc: tree deeper than {MAX_HEIGHT}");
        let n = p.get(i);
        self.node[self.len] = i;
        self.went_left[self.len] = left;
        self.old[self.len] = (n.height, n.subtree_max);
        self.len += 1;
    }
}

impl Tree {
    /// Makes `child` the subtree at path position `k` (the root for 0).
    fn attach(&mut self, p: &mut Pool, path: &Path, k: usize, child: u32) {
        if k == 0 {
            self.root = child;
        } else if path.went_left[k - 1] {
            p.get_mut(path.node[k - 1]).left = child;
        } else {
            p.get_mut(path.node[k - 1]).right = child;
        }
    }

    /// Rebalances and re-augments the path bottom-up from position `from`. Above position
    /// `must` (a node that moved into the path and has stale fields), it stops at the first
    /// subtree whose height and largest range did not change: nothing above it can change.
    fn fix_up(&mut self, p: &mut Pool, path: &Path, from: usize, must: usize) {
        for k in (0..=from).rev() {
            let r = balance(p, path.node[k]);
            self.attach(p, path, k, r);
            let n = p.get(r);
            if k <= must && (n.height, n.subtree_max) == path.old[k] {
                return;
            }
        }
    }
}

impl Tree {
    pub(super) const fn new() -> Self {
        Self { root: NIL, len: 0 }
    }

    /// Inserts node `x` (its range must not overlap any node of the tree): one descent, then
    /// fix-ups that stop where the subtree above stops changing.
    pub(super) fn insert(&mut self, p: &mut Pool, x: u32) {
        let key = p.get(x).start;
        let mut path = Path::new();
        let mut i = self.root;
        while i != NIL {
            let n = p.get(i);
            let left = key < n.start;
            let next = if left { n.left } else { n.right };
            path.push(p, i, left);
            i = next;
        }
        let n = p.get_mut(x);
        n.left = NIL;
        n.right = NIL;
        update(p, x);
        self.attach(p, &path, path.len, x);
        if path.len > 0 {
            self.fix_up(p, &path, path.len - 1, path.len - 1);
        }
        self.len += 1;
    }

    /// Removes and returns the node starting at `key`, or `NIL`.
    pub(super) fn remove(&mut self, p: &mut Pool, key: usize) -> u32 {
        let mut path = Path::new();
        let mut i = self.root;
        while i != NIL {
            let n = p.get(i);
            if key == n.start {
                break;
            }
            let left = key < n.start;
            let next = if left { n.left } else { n.right };
            path.push(p, i, left);
            i = next;
        }
        if i == NIL {
            return NIL;
        }
        let kd = path.len;
        let (l, r) = (p.get(i).left, p.get(i).right);
        if l == NIL || r == NIL {
            self.attach(p, &path, kd, if l == NIL { r } else { l });
            if kd > 0 {
                self.fix_up(p, &path, kd - 1, kd - 1);
            }
        } else {
            // The successor (leftmost of the right subtree) takes the removed node's place.
            path.push(p, i, false);
            let mut s = r;
            while p.get(s).left != NIL {
                path.push(p, s, true);
                s = p.get(s).left;
            }
            let ks = path.len;
            let s_right = p.get(s).right;
            self.attach(p, &path, ks, s_right);
            let right = p.get(i).right;
            let m = p.get_mut(s);
            m.left = l;
            m.right = right;
            path.node[kd] = s;
            self.attach(p, &path, kd, s);
            self.fix_up(p, &path, ks - 1, kd);
        }
        self.len -= 1;
        i
    }

    /// Recomputes the augmentation above the node now starting at `key` (its range changed
    /// in place without changing its position in the order), stopping where it stops
    /// changing.
    pub(super) fn refresh(&self, p: &mut Pool, key: usize) {
        let mut path = [NIL; MAX_HEIGHT];
        let mut len = 0;
        let mut i = self.root;
        while i != NIL {
            assert!(len < MAX_HEIGHT, "vmalloc: tree deeper than {MAX_HEIGHT}");
            path[len] = i;
            len += 1;
            let n = p.get(i);
            if key == n.start {
                break;
            }
            i = if key < n.start { n.left } else { n.right };
        }
        for &i in path[..len].iter().rev() {
            let before = p.get(i).subtree_max;
            update(p, i);
            if p.get(i).subtree_max == before {
                return;
            }
        }
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
    #[cfg(test)]
    pub(super) fn lowest_fit(&self, p: &Pool, len: usize) -> u32 {
        self.lowest_match(p, len, |start, end| end - start >= len)
    }

    /// `find_vmap_lowest_match` with a search length: the walk of [`Tree::lowest_fit`] for
    /// `len` (subtrees without a range of `len` are skipped), but every node on the way is
    /// tested with `fits(start, end)`, so a shorter range that happens to fit (an aligned
    /// request whose alignment needs no slack there) is taken when the walk passes it, as
    /// Linux's `is_within_this_va` does. `fits` must hold for any range of `len` or more.
    pub(super) fn lowest_match(&self, p: &Pool, len: usize, fits: impl Fn(usize, usize) -> bool) -> u32 {
        let mut i = self.root;
        while i != NIL {
            let n = p.get(i);
            if max(p, n.left) >= len {
                i = n.left;
            } else if fits(n.start, n.end) {
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

#[cfg(test)]
mod tests {
    use std::alloc::{Layout, alloc_zeroed};
    use std::collections::BTreeMap;
    use std::vec::Vec;

    use super::super::node::{NIL, Pool};
    use super::super::raw::{CHUNK_ORDER, NODES_PER_CHUNK};
    use super::Tree;
    use crate::order::PAGE_SIZE;

    fn pool(chunks: usize) -> Pool {
        let mut pool = Pool::new(0);
        let layout = Layout::from_size_align(PAGE_SIZE << CHUNK_ORDER, PAGE_SIZE).unwrap();
        for _ in 0..chunks {
            // SAFETY: A fresh, page-aligned block of the chunk size, leaked: never freed or
            // used by anything else, as `Pool::grow` requires.
            let block = core::ptr::NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
            // SAFETY: As above.
            unsafe { pool.grow(block) };
        }
        pool
    }

    /// Random inserts, removes and in-place resizes against a sorted map; every invariant
    /// (order, balance, augmentation) is checked after each step, and the lowest fit, floor
    /// and ceil answers are compared with the map's.
    #[test]
    fn iterative_avl_matches_a_sorted_map() {
        let mut p = pool(8);
        let mut t = Tree::new();
        let mut model: BTreeMap<usize, (usize, u32)> = BTreeMap::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..20_000 {
            // Slots of 64 pages; a range fills a prefix of its slot.
            let slot = rnd(400) as usize * 64 * PAGE_SIZE;
            match model.get(&slot).copied() {
                None if model.len() < 8 * NODES_PER_CHUNK - 1 => {
                    let len = (1 + rnd(64) as usize) * PAGE_SIZE;
                    let i = p.take(slot, slot + len).unwrap();
                    t.insert(&mut p, i);
                    model.insert(slot, (len, i));
                }
                Some((_, i)) if rnd(3) == 0 => {
                    let len = (1 + rnd(64) as usize) * PAGE_SIZE;
                    p.get_mut(i).end = slot + len;
                    t.refresh(&mut p, slot);
                    model.insert(slot, (len, i));
                }
                Some((_, i)) => {
                    assert_eq!(t.remove(&mut p, slot), i, "step {step}");
                    p.put(i);
                    model.remove(&slot);
                }
                None => {}
            }
            assert_eq!(t.remove(&mut p, slot + PAGE_SIZE / 2), NIL, "absent key");
            assert_eq!(t.check(&p), model.len(), "step {step}");
            let want = 1 + rnd(64) as usize * PAGE_SIZE;
            let fit = model.iter().find(|(_, (len, _))| *len >= want).map_or(NIL, |(_, &(_, i))| i);
            assert_eq!(t.lowest_fit(&p, want), fit, "step {step}: lowest fit");
            let probe = rnd(400 * 64) as usize * PAGE_SIZE;
            let floor = model.range(..=probe).next_back().map_or(NIL, |(_, &(_, i))| i);
            let ceil = model.range(probe..).next().map_or(NIL, |(_, &(_, i))| i);
            assert_eq!((t.floor(&p, probe), t.ceil(&p, probe)), (floor, ceil), "step {step}");
        }
        let keys: Vec<usize> = model.keys().copied().collect();
        for k in keys {
            t.remove(&mut p, k);
        }
        assert_eq!((t.root, t.len), (NIL, 0));
    }
}
