//! The page floor (BENCHMARKS.md "Floors"): a singly linked free list of block indices whose
//! links live outside the blocks, in a `Vec<u32>` next-array small enough to stay in L1.
//!
//! It is the least any page allocator with metadata outside the pages must do: pop a head and
//! push it back. No splitting, merging, zones or counters, so nothing real can beat it.
//! Invariant: `head` is [`NIL`] or `< next.len()`, and every link in the list is as well; an
//! index is either on the list or held by exactly one caller.

use crate::pages::PageAlloc;

/// The end of the list.
const NIL: u32 = u32::MAX;

/// A free list of `next.len()` block indices, one list for whatever order it is asked for.
pub struct FreeList {
    next: Vec<u32>,
    head: u32,
}

impl FreeList {
    /// A list holding indices `0..len`, in order.
    pub fn new(len: u32) -> Self {
        assert!(len > 0 && len < NIL);
        // INVARIANT: each index links to the next one, the last to `NIL`.
        let next = (1..len).chain([NIL]).collect();
        Self { next, head: 0 }
    }
}

impl PageAlloc for FreeList {
    type Block = u32;

    #[inline]
    fn alloc(&mut self, _order: u32) -> Option<u32> {
        let i = self.head;
        if i == NIL {
            return None;
        }
        // SAFETY: `i != NIL`, so `i < next.len()` (type invariant).
        self.head = unsafe { *self.next.get_unchecked(i as usize) };
        Some(i)
    }

    #[inline]
    unsafe fn free(&mut self, block: u32, _order: u32) {
        // SAFETY: `block` came from `alloc` (caller), so it is `< next.len()`.
        unsafe { *self.next.get_unchecked_mut(block as usize) = self.head };
        // INVARIANT: `block` is in range and no longer held by the caller.
        self.head = block;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_every_index_once_then_reuses_the_last_freed() {
        let mut f = FreeList::new(3);
        let got: Vec<u32> = (0..3).filter_map(|_| f.alloc(0)).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(f.alloc(0), None);
        // SAFETY: 1 came from `alloc` and is freed once.
        unsafe { f.free(1, 0) };
        assert_eq!(f.alloc(0), Some(1));
    }
}
