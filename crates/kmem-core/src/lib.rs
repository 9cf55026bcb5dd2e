//! # kmem-core
//!
//! The Linux kernel's memory-allocation stack as a `#![no_std]` library: GFP flags
//! ([`gfp`]), the buddy page allocator with zones, watermarks, per-CPU page lists, reclaim
//! and fault injection ([`page_alloc`]), vmalloc over caller-supplied page tables ([`vmalloc`]),
//! memory pools with a guaranteed reserve ([`mempool`]), and kmalloc as a `#[global_allocator]`
//! ([`heap`]) or, with the `allocator-api2` feature, as an `Allocator` with a GFP mask
//! (`alloc_api`). Every algorithm lives here; the `kmem` crate supplies a userspace
//! [`platform::Platform`] (memfd-backed memory, threads as CPUs, real sleeping), and a
//! `no_std` user supplies their own over caller-provided regions.
//!
//! Unsafe code is confined to the places that touch raw memory or per-CPU ownership:
//! [`memmap`] (the page array carved out of managed memory, unchecked lookups for pfns taken
//! from the lists), [`sync`] (the spin lock's `UnsafeCell`), [`pcp`] (lists owned by one CPU
//! slot), [`reclaim`] (callbacks registered by raw pointer), [`page_alloc`] (building the
//! allocator over the caller's memory, zeroing pages, direct-map address arithmetic, and
//! entering a CPU slot's lists), [`mempool`] (the element array, element bytes for debug
//! poisoning, the user's callbacks, and the page-pool helpers' element pointers),
//! `vmalloc::raw` (node chunks and pfn arrays carved from pages, byte access through mapped
//! areas), [`heap`] (the `static` a `Kmem` is installed in, for `#[global_allocator]`) and
//! `alloc_api` (kmalloc blocks as `allocator-api2` allocations).
//! Every block carries a `// SAFETY:` argument; the algorithms themselves ([`buddy`], [`watermark`],
//! [`gfp`], [`proc`]) work on pfns and indices.
#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod abort;
#[cfg(feature = "allocator-api2")]
pub mod alloc_api;
pub mod boost;
pub mod buddy;
mod fallback;
pub mod fault;
mod flagset;
pub mod gfp;
pub mod heap;
pub mod kmalloc;
mod kmem;
pub mod memmap;
pub mod mempool;
pub mod order;
pub mod page_alloc;
pub mod pcp;
pub mod pcp_guard;
pub mod platform;
pub mod proc;
pub mod rcu;
pub mod reclaim;
pub mod report;
pub mod slab;
pub mod sync;
pub mod vmalloc;
pub mod waitq;
pub mod watermark;
pub mod zone;

pub use gfp::Gfp;
pub use heap::KmallocHeap;
pub use kmem::Kmem;
pub use memmap::Page;
pub use order::{MAX_PAGE_ORDER, PAGE_SHIFT, PAGE_SIZE, get_order};
pub use page_alloc::{MAX_WMARK_PAGES, PageAllocator};

/// `NUMA_NO_NODE`: "any node" (kmem machines have one node, 0).
pub const NUMA_NO_NODE: i32 = -1;

/// An allocation could not be satisfied (the kernel's NULL return).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl core::fmt::Display for AllocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("memory allocation failed")
    }
}

impl core::error::Error for AllocError {}
