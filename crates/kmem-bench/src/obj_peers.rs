//! The slab workloads' peers from crates.io, each through its own API (no `#[global_allocator]`,
//! so all of them live in one binary):
//! - general allocators by `GlobalAlloc` on a value: the system allocator (glibc), jemalloc,
//!   snmalloc ([`Global`]); a `Layout` of the size with 8-byte alignment; mimalloc by its C API,
//!   `mi_malloc`/`mi_free` ([`MiMalloc`]), as its `GlobalAlloc` takes the aligned path;
//! - `no_std` heaps by `&mut`, each over its own lazily mapped [`Region`]: talc, rlsf,
//!   linked_list_allocator, buddy_system_allocator's `Heap` ([`Heap`]); they are not
//!   thread-safe without a lock, so they run the one-thread workloads only;
//! - fixed-size stores of 64-byte objects: tokio's `slab` (one thread, keys) and `sharded-slab`
//!   (concurrent, keys) of [`Uninit64`], so `insert` writes no payload and `remove` moves none out
//!   (every other contender hands out uninitialised memory: storing a `[0; 64]` per alloc would
//!   be work nobody else does), `lockfree-object-pool`'s `LinearObjectPool` and `object-pool`'s
//!   `Pool` of `[u8; 64]` (guards that give the object back on drop; they initialise an object
//!   only when they first create it). They serve `hot64`, `batch64` and, when
//!   thread-safe, `hot64-2T` and `prodcons`; a store of one type has no kmalloc sizes.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use buddy_system_allocator::Heap as BuddyHeap;
use linked_list_allocator::Heap as LinkedListHeap;
use talc::DefaultBinning;
use talc::base::Talc;
use talc::source::Manual;

use crate::objects::{ObjAlloc, Ptr};
use crate::peers::Region;

/// The memory each heap peer manages (lazily mapped: only what a workload touches is resident).
pub const HEAP_BYTES: usize = 1 << 30;

/// A 64-byte object for the object pools (initialised once, when the pool creates it).
pub type Obj64 = [u8; 64];

/// A 64-byte object for the key-based slabs: stored uninitialised, as every other contender
/// hands out its memory.
pub type Uninit64 = MaybeUninit<[u8; 64]>;

/// The layout every peer is asked for: `size` bytes, 8-aligned (kmalloc's minimum alignment).
#[inline(always)]
fn layout(size: usize) -> Layout {
    // SAFETY: 8 is a power of two and sizes here are at most 8 KiB.
    unsafe { Layout::from_size_align_unchecked(size, 8) }
}

/// A `GlobalAlloc` called directly on a value.
pub struct Global<G>(pub G);

impl<G: GlobalAlloc> ObjAlloc for Global<G> {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<Ptr> {
        // SAFETY: non-zero size.
        NonNull::new(unsafe { self.0.alloc(layout(size)) }).map(Ptr)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, size: usize) {
        // SAFETY: `obj` came from `alloc(layout(size))` on this allocator (caller).
        unsafe { self.0.dealloc(obj.0.as_ptr(), layout(size)) };
    }
}

/// mimalloc through its own C API, `mi_malloc`/`mi_free`, as a C user calls it. (The `mimalloc`
/// crate's `GlobalAlloc` calls `mi_malloc_aligned` for every layout, which takes a slower
/// generic path above 1024 B.) `mi_malloc` aligns to 16 bytes (`MI_MAX_ALIGN_SIZE`), more than
/// the 8 the harness asks for, so `mi_malloc_aligned` is never needed here.
pub struct MiMalloc;

impl ObjAlloc for MiMalloc {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<Ptr> {
        // SAFETY: `mi_malloc` takes any size; null means out of memory.
        NonNull::new(unsafe { libmimalloc_sys::mi_malloc(size) }.cast::<u8>()).map(Ptr)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, _size: usize) {
        // SAFETY: `obj` came from `mi_malloc` (caller) and is freed once.
        unsafe { libmimalloc_sys::mi_free(obj.0.as_ptr().cast()) };
    }
}

/// The `no_std` heaps, reduced to alloc and free by `&mut`.
pub trait RawHeap {
    /// A block of `layout`.
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` came from `allocate(layout)` and is live.
    unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout);
}

/// A `no_std` heap over its own region, used by one thread (its state sits in a cell; the type
/// is not `Sync`). Invariant: `heap` manages memory inside `_region` only.
pub struct Heap<H> {
    // Field order: the heap drops before the region it points into.
    heap: UnsafeCell<H>,
    _region: Region,
}

impl<H: RawHeap> ObjAlloc for Heap<H> {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<Ptr> {
        // SAFETY: `Heap` is not `Sync` and no reference into the cell outlives this call.
        unsafe { (*self.heap.get()).allocate(layout(size)) }.map(Ptr)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, size: usize) {
        // SAFETY: as in `alloc`; `obj` came from `alloc(size)` (caller).
        unsafe { (*self.heap.get()).deallocate(obj.0, layout(size)) };
    }
}

impl RawHeap for Talc<Manual, DefaultBinning> {
    #[inline(always)]
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: non-zero size.
        unsafe { Talc::allocate(self, layout) }
    }

    #[inline(always)]
    unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { Talc::deallocate(self, ptr.as_ptr(), layout) };
    }
}

/// rlsf's TLSF with 28 first-level classes (blocks up to 8 GiB) of 32 second-level ones.
pub type Tlsf = rlsf::Tlsf<'static, u32, u32, 28, 32>;

impl RawHeap for Tlsf {
    #[inline(always)]
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        rlsf::Tlsf::allocate(self, layout)
    }

    #[inline(always)]
    unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { rlsf::Tlsf::deallocate(self, ptr, layout.align()) };
    }
}

impl RawHeap for LinkedListHeap {
    #[inline(always)]
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.allocate_first_fit(layout).ok()
    }

    #[inline(always)]
    unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { LinkedListHeap::deallocate(self, ptr, layout) };
    }
}

impl RawHeap for BuddyHeap<32> {
    #[inline(always)]
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.alloc(layout).ok()
    }

    #[inline(always)]
    unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { self.dealloc(ptr, layout) };
    }
}

/// `talc::base::Talc` (`Manual` source) over a fresh region.
pub fn talc() -> Heap<Talc<Manual, DefaultBinning>> {
    let region = Region::new(HEAP_BYTES);
    let mut talc = Talc::new(Manual);
    // SAFETY: the region is ours alone, writable, and outlives the heap (field order).
    let claimed = unsafe { talc.claim(region.base(), region.len()) };
    assert!(claimed.is_some(), "talc claims its region");
    Heap { heap: UnsafeCell::new(talc), _region: region }
}

/// `rlsf::Tlsf` over a fresh region.
pub fn rlsf() -> Heap<Tlsf> {
    let region = Region::new(HEAP_BYTES);
    let mut tlsf = Tlsf::new();
    let block = NonNull::slice_from_raw_parts(NonNull::new(region.base()).expect("region base"), region.len());
    // SAFETY: the region is ours alone, writable, and outlives the heap (field order).
    let added = unsafe { tlsf.insert_free_block_ptr(block) };
    assert!(added.is_some(), "rlsf takes its region");
    Heap { heap: UnsafeCell::new(tlsf), _region: region }
}

/// `linked_list_allocator::Heap` over a fresh region.
pub fn linked_list() -> Heap<LinkedListHeap> {
    let region = Region::new(HEAP_BYTES);
    let mut heap = LinkedListHeap::empty();
    // SAFETY: the region is ours alone, writable, and outlives the heap (field order).
    unsafe { heap.init(region.base(), region.len()) };
    Heap { heap: UnsafeCell::new(heap), _region: region }
}

/// `buddy_system_allocator::Heap<32>` over a fresh region.
pub fn buddy() -> Heap<BuddyHeap<32>> {
    let region = Region::new(HEAP_BYTES);
    let mut heap = BuddyHeap::<32>::new();
    // SAFETY: the region is ours alone, writable, and outlives the heap (field order).
    unsafe { heap.init(region.base() as usize, region.len()) };
    Heap { heap: UnsafeCell::new(heap), _region: region }
}

/// tokio's `slab::Slab<MaybeUninit<[u8; 64]>>`: a `Vec` of entries with a free list of keys;
/// one thread.
pub struct TokioSlab(UnsafeCell<slab::Slab<Uninit64>>);

impl TokioSlab {
    /// An empty slab (it grows its `Vec` as it needs, as a user's would).
    pub fn new() -> Self {
        Self(UnsafeCell::new(slab::Slab::new()))
    }
}

impl ObjAlloc for TokioSlab {
    type Obj = usize;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<usize> {
        // SAFETY: not `Sync`; no reference into the cell outlives this call.
        Some(unsafe { (*self.0.get()).insert(MaybeUninit::uninit()) })
    }

    #[inline(always)]
    unsafe fn free(&self, key: usize, _size: usize) {
        // SAFETY: as in `alloc`; `key` is occupied (caller). The removed value is uninitialised
        // and dropped unread (a `black_box` would store its 64 bytes).
        let _: Uninit64 = unsafe { (*self.0.get()).remove(key) };
    }
}

/// `sharded_slab::Slab<MaybeUninit<[u8; 64]>>`: a concurrent slab with per-thread shards.
pub struct ShardedSlab(sharded_slab::Slab<Uninit64>);

impl ShardedSlab {
    /// An empty slab with the default configuration.
    pub fn new() -> Self {
        Self(sharded_slab::Slab::new())
    }
}

impl ObjAlloc for ShardedSlab {
    type Obj = usize;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<usize> {
        self.0.insert(MaybeUninit::uninit())
    }

    #[inline(always)]
    unsafe fn free(&self, key: usize, _size: usize) {
        std::hint::black_box(self.0.remove(key));
    }
}

/// `lockfree_object_pool::LinearObjectPool<[u8; 64]>` (its fastest pool), leaked so its guards
/// are `'static` and can be kept between samples and sent between threads. No reset on reuse.
pub struct LockfreePool(&'static lockfree_object_pool::LinearObjectPool<Obj64>);

impl LockfreePool {
    /// A new pool (one per process run: it is leaked).
    pub fn new() -> Self {
        Self(Box::leak(Box::new(lockfree_object_pool::LinearObjectPool::new(|| [0; 64], |_| {}))))
    }
}

impl ObjAlloc for LockfreePool {
    type Obj = lockfree_object_pool::LinearReusable<'static, Obj64>;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<Self::Obj> {
        Some(self.0.pull())
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Self::Obj, _size: usize) {
        drop(obj);
    }
}

/// `object_pool::Pool<[u8; 64]>`: a `Vec` of objects behind a mutex; a pull from an empty pool
/// makes a new object. Leaked like [`LockfreePool`].
pub struct ObjectPool(&'static object_pool::Pool<Obj64>);

impl ObjectPool {
    /// An empty pool (one per process run: it is leaked).
    pub fn new() -> Self {
        Self(Box::leak(Box::new(object_pool::Pool::new(0, || [0; 64]))))
    }
}

impl ObjAlloc for ObjectPool {
    type Obj = object_pool::Reusable<'static, Obj64>;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<Self::Obj> {
        Some(self.0.pull(|| [0; 64]))
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Self::Obj, _size: usize) {
        drop(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every peer hands out distinct, 8-aligned, writable objects and takes them back.
    fn exercise<A: ObjAlloc>(a: &A, sizes: &[usize], addr: impl Fn(&A::Obj) -> usize) {
        for &size in sizes {
            let objs: Vec<A::Obj> = (0..16).map(|_| a.alloc(size).expect("alloc")).collect();
            let mut addrs: Vec<usize> = objs.iter().map(&addr).collect();
            addrs.sort_unstable();
            addrs.dedup();
            assert_eq!(addrs.len(), 16, "size {size}");
            for o in objs {
                // SAFETY: each came from `alloc(size)` and is freed once.
                unsafe { a.free(o, size) };
            }
        }
    }

    #[test]
    fn peers_serve_objects() {
        let sizes = crate::floor::KMALLOC_CLASSES;
        let ptr = |p: &Ptr| {
            let a = p.0.as_ptr() as usize;
            assert_eq!(a % 8, 0);
            // SAFETY: the object has at least 8 writable bytes.
            unsafe { p.0.as_ptr().cast::<u64>().write(a as u64) };
            a
        };
        exercise(&Global(std::alloc::System), &sizes, ptr);
        exercise(&MiMalloc, &sizes, ptr);
        exercise(&Global(tikv_jemallocator::Jemalloc), &sizes, ptr);
        exercise(&Global(snmalloc_rs::SnMalloc), &sizes, ptr);
        exercise(&talc(), &sizes, ptr);
        exercise(&rlsf(), &sizes, ptr);
        exercise(&linked_list(), &sizes, ptr);
        exercise(&buddy(), &sizes, ptr);
        exercise(&TokioSlab::new(), &[64], |&k| k);
        exercise(&ShardedSlab::new(), &[64], |&k| k);
        exercise(&LockfreePool::new(), &[64], |g| &**g as *const Obj64 as usize);
        exercise(&ObjectPool::new(), &[64], |g| &**g as *const Obj64 as usize);
    }
}
