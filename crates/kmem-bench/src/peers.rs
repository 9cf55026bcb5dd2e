//! The page-allocator peers from crates.io, each driven through its own API by `&mut` (no lock,
//! no `GlobalAlloc` wrapper), each over its own [`Region`] of [`REGION_BYTES`].
//!
//! A block of order k is a `Layout` of `PAGE_SIZE << k` bytes aligned to `PAGE_SIZE << k`, the
//! same natural alignment the buddy allocator gives. `FrameAllocator` manages frame numbers only,
//! its metadata outside the memory, like kmem's `MemMap`; it needs no region.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use buddy_system_allocator::{FrameAllocator, Heap as BuddyHeap};
use linked_list_allocator::Heap as LinkedListHeap;
use talc::DefaultBinning;
use talc::base::Talc;
use talc::source::Manual;

use crate::pages::PageAlloc;

/// Bytes per page.
pub const PAGE_SIZE: usize = 4096;
/// Memory handed to each peer: the same 1 GiB the kmem machine manages.
pub const REGION_BYTES: usize = 1 << 30;
/// Alignment of each region: a huge page, so every order up to 9 starts aligned.
const REGION_ALIGN: usize = 2 << 20;

/// The layout of one block of `order` (`order <= 10`).
#[inline]
fn block_layout(order: u32) -> Layout {
    const LAYOUTS: [Layout; 11] = {
        let mut l = [Layout::new::<u8>(); 11];
        let mut k = 0;
        while k < 11 {
            l[k] = match Layout::from_size_align(PAGE_SIZE << k, PAGE_SIZE << k) {
                Ok(layout) => layout,
                Err(_) => panic!("page layouts are valid"),
            };
            k += 1;
        }
        l
    };
    LAYOUTS[order as usize]
}

/// A lazily backed anonymous mapping (the system allocator maps a request this large with
/// `mmap`), so only the pages an allocator touches become resident.
pub struct Region {
    base: NonNull<u8>,
    layout: Layout,
}

impl Region {
    /// Maps `bytes`, aligned to 2 MiB.
    pub fn new(bytes: usize) -> Self {
        let layout = Layout::from_size_align(bytes, REGION_ALIGN).expect("region layout");
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        let base = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { base, layout }
    }

    /// The first byte.
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base` was allocated with `layout` in `new` and is freed once.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

/// `buddy_system_allocator::Heap<32>`: a buddy allocator whose free lists run through the free
/// blocks. Timed as the plain `Heap`; its `LockedHeap` would add a spin lock per call.
pub struct BuddyHeapPeer {
    // Field order: the heap drops before the region it points into.
    heap: BuddyHeap<32>,
    _region: Region,
}

impl BuddyHeapPeer {
    /// A heap over a fresh region.
    pub fn new() -> Self {
        let region = Region::new(REGION_BYTES);
        let mut heap = BuddyHeap::<32>::new();
        // SAFETY: the region is ours alone, writable, and lives as long as `heap` (field order).
        unsafe { heap.init(region.base() as usize, region.len()) };
        Self { heap, _region: region }
    }
}

impl PageAlloc for BuddyHeapPeer {
    type Block = NonNull<u8>;

    #[inline]
    fn alloc(&mut self, order: u32) -> Option<NonNull<u8>> {
        self.heap.alloc(block_layout(order)).ok()
    }

    #[inline]
    unsafe fn free(&mut self, block: NonNull<u8>, order: u32) {
        // SAFETY: `block` came from `alloc(order)`, i.e. this layout, and is live (caller).
        unsafe { self.heap.dealloc(block, block_layout(order)) };
    }
}

/// `buddy_system_allocator::FrameAllocator<32>`: a buddy allocator of frame numbers whose free
/// lists are `BTreeSet`s outside the memory.
pub struct BuddyFramePeer {
    frames: FrameAllocator<32>,
}

impl BuddyFramePeer {
    /// Frames `0..REGION_BYTES / PAGE_SIZE`.
    pub fn new() -> Self {
        let mut frames = FrameAllocator::<32>::new();
        frames.add_frame(0, REGION_BYTES / PAGE_SIZE);
        Self { frames }
    }
}

impl PageAlloc for BuddyFramePeer {
    type Block = usize;

    #[inline]
    fn alloc(&mut self, order: u32) -> Option<usize> {
        self.frames.alloc(1 << order)
    }

    #[inline]
    unsafe fn free(&mut self, block: usize, order: u32) {
        self.frames.dealloc(block, 1 << order);
    }
}

/// `linked_list_allocator::Heap`: first fit over an address-ordered list of holes.
pub struct LinkedListPeer {
    heap: LinkedListHeap,
    _region: Region,
}

impl LinkedListPeer {
    /// A heap over a fresh region.
    pub fn new() -> Self {
        let region = Region::new(REGION_BYTES);
        let mut heap = LinkedListHeap::empty();
        // SAFETY: the region is ours alone, writable, and lives as long as `heap` (field order).
        unsafe { heap.init(region.base(), region.len()) };
        Self { heap, _region: region }
    }
}

impl PageAlloc for LinkedListPeer {
    type Block = NonNull<u8>;

    #[inline]
    fn alloc(&mut self, order: u32) -> Option<NonNull<u8>> {
        self.heap.allocate_first_fit(block_layout(order)).ok()
    }

    #[inline]
    unsafe fn free(&mut self, block: NonNull<u8>, order: u32) {
        // SAFETY: `block` came from `alloc(order)`, i.e. this layout, and is live (caller).
        unsafe { self.heap.deallocate(block, block_layout(order)) };
    }
}

/// `talc::base::Talc` with the `Manual` source: binned free lists with boundary tags, over one
/// claimed span. Used directly by `&mut`, without `TalcLock`/`TalcCell`.
pub struct TalcPeer {
    talc: Talc<Manual, DefaultBinning>,
    _region: Region,
}

impl TalcPeer {
    /// A heap claimed over a fresh region.
    pub fn new() -> Self {
        let region = Region::new(REGION_BYTES);
        let mut talc = Talc::new(Manual);
        // SAFETY: the region is ours alone, writable, and lives as long as `talc` (field order).
        let claimed = unsafe { talc.claim(region.base(), region.len()) };
        assert!(claimed.is_some(), "talc claims a 1 GiB region");
        Self { talc, _region: region }
    }
}

impl PageAlloc for TalcPeer {
    type Block = NonNull<u8>;

    #[inline]
    fn alloc(&mut self, order: u32) -> Option<NonNull<u8>> {
        // SAFETY: block layouts have a non-zero size.
        unsafe { self.talc.allocate(block_layout(order)) }
    }

    #[inline]
    unsafe fn free(&mut self, block: NonNull<u8>, order: u32) {
        // SAFETY: `block` came from `alloc(order)`, i.e. this layout, and is live (caller).
        unsafe { self.talc.deallocate(block.as_ptr(), block_layout(order)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every peer hands out naturally aligned, distinct blocks and takes them back.
    fn exercise<A: PageAlloc>(mut a: A, addr: impl Fn(A::Block) -> usize, unit: usize) {
        for order in 0..=5u32 {
            let blocks: Vec<A::Block> = (0..8).map(|_| a.alloc(order).expect("alloc")).collect();
            let mut addrs: Vec<usize> = blocks.iter().map(|&b| addr(b)).collect();
            assert!(addrs.iter().all(|x| x % (unit << order) == 0), "order {order}");
            addrs.sort_unstable();
            addrs.dedup();
            assert_eq!(addrs.len(), 8);
            for b in blocks {
                // SAFETY: each block came from `alloc(order)` and is freed once.
                unsafe { a.free(b, order) };
            }
        }
    }

    #[test]
    fn peers_give_aligned_blocks() {
        exercise(BuddyHeapPeer::new(), |b| b.as_ptr() as usize, PAGE_SIZE);
        exercise(BuddyFramePeer::new(), |b| b, 1);
        exercise(LinkedListPeer::new(), |b| b.as_ptr() as usize, PAGE_SIZE);
        exercise(TalcPeer::new(), |b| b.as_ptr() as usize, PAGE_SIZE);
    }
}
