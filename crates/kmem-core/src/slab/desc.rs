//! Slab descriptors (`struct slab`) and where they live.
//!
//! A slab is one block of `1 << order` pages from the page allocator. Its 16-byte [`Page`](crate::Page) has
//! no room for the slab's state, so each slab gets a 32-byte [`Slab`] descriptor, carved from
//! order-0 pages that the `DescPool` takes from the page allocator and keeps for reuse.
//!
//! The head page of a slab links to its descriptor:
//! - `info` carries `PG_slab` (and `PG_head` and the order for an order > 0 slab);
//! - `next` (the `mapping` field of an allocated page) holds the descriptor's offset from the
//!   direct-map base divided by 32 — one 32-bit word, read with one atomic load, so a racing
//!   reader never sees half of an update; `prev` stays 0.
//!
//! Tail pages of an order > 0 slab carry `PG_tail` (kmem's), with `next` as the head's and
//! `prev` the head pfn: an object in a tail page leads to the descriptor in one step. The
//! slab clears them before its pages go back.
//!
//! # Invariants
//! - A descriptor is either on the pool's free list (linked through `freelist`) or describes
//!   exactly one live slab, whose head page points at it.
//! - `cache` is the only field read without the cache's node lock (by the free paths, to find
//!   the cache of an object); it is atomic. Every other field belongs to the node lock of the
//!   slab's cache, or to the creator before the slab is published.
//! - `freelist` is null exactly when every object of the slab is out (`inuse == objects`):
//!   then the slab is on its cache's full list, otherwise on the partial list.
//! - Descriptor pages are never given back: the pool's size is the high-water mark of slabs.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::Relaxed};

use super::cache::Cache;
use crate::sync::SpinLock;

/// The descriptor of one slab. 32 bytes: 128 per page.
#[repr(C, align(32))]
pub struct Slab {
    /// The cache the slab belongs to (null while free in the pool).
    pub(crate) cache: AtomicPtr<Cache>,
    /// First free object inside the slab (the object pointer, not the slot), linked through
    /// the encoded free pointers; null when none is free.
    pub(crate) freelist: *mut u8,
    /// Next slab on the cache's partial or full list, by head pfn (`NIL_PFN` = none).
    pub(crate) next: u32,
    /// Previous slab on that list, by head pfn.
    pub(crate) prev: u32,
    /// Objects handed out of the slab (to callers or to per-CPU caches).
    pub(crate) inuse: u16,
    /// Objects the slab holds.
    pub(crate) objects: u16,
    /// The head page's pfn.
    pub(crate) pfn: u32,
}

const _: () = assert!(size_of::<Slab>() == 32);

/// The end of a slab list.
pub(crate) const NIL_PFN: u32 = u32::MAX;

/// Descriptor offsets are stored in units of this many bytes.
pub(crate) const DESC_SHIFT: u32 = 5;

/// Free descriptors, refilled a page at a time.
pub(crate) struct DescPool {
    free: SpinLock<FreeDescs>,
    /// Pages the pool has taken from the page allocator (statistics: slab metadata).
    pub(crate) pages: AtomicUsize,
}

struct FreeDescs {
    head: *mut Slab,
}

// SAFETY: The raw list head is only used under the pool's lock, and descriptors are plain data.
unsafe impl Send for FreeDescs {}

impl DescPool {
    pub(crate) fn new() -> Self {
        Self { free: SpinLock::new(FreeDescs { head: ptr::null_mut() }), pages: AtomicUsize::new(0) }
    }

    /// A free descriptor, if the pool has one.
    pub(crate) fn take(&self) -> Option<NonNull<Slab>> {
        let mut free = self.free.lock();
        let head = NonNull::new(free.head)?;
        // SAFETY: Descriptors on the free list are owned by the pool, which we hold locked.
        free.head = unsafe { (*head.as_ptr()).freelist.cast() };
        Some(head)
    }

    /// Returns a descriptor to the pool.
    ///
    /// # Safety
    /// `desc` must come from this pool and describe no live slab.
    pub(crate) unsafe fn put(&self, desc: NonNull<Slab>) {
        let mut free = self.free.lock();
        // SAFETY: The caller gives the descriptor up; we link it under the lock.
        unsafe {
            (*desc.as_ptr()).cache.store(ptr::null_mut(), Relaxed);
            (*desc.as_ptr()).freelist = free.head.cast();
        }
        free.head = desc.as_ptr();
    }

    /// Carves a fresh zeroed page at `page` into descriptors and adds them to the pool.
    ///
    /// # Safety
    /// `page` must be a page-sized, page-aligned region owned by the pool from now on.
    pub(crate) unsafe fn add_page(&self, page: NonNull<u8>) {
        let n = crate::PAGE_SIZE / size_of::<Slab>();
        let base = page.as_ptr().cast::<Slab>();
        let mut free = self.free.lock();
        for i in (0..n).rev() {
            // SAFETY: `i < n` descriptors fit in the page, which the caller gave us.
            unsafe {
                let d = base.add(i);
                d.write(Slab {
                    cache: AtomicPtr::new(ptr::null_mut()),
                    freelist: free.head.cast(),
                    next: NIL_PFN,
                    prev: NIL_PFN,
                    inuse: 0,
                    objects: 0,
                    pfn: 0,
                });
                free.head = d;
            }
        }
        self.pages.fetch_add(1, Relaxed);
    }
}
