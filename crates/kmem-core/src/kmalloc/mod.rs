//! The kmalloc family (SEMANTICS.md §4): general-purpose allocations served by a fixed set of
//! size-class slab caches, and by whole pages above 8 KiB.
//!
//! [`classes`] has the pure arithmetic: the size classes and their names, the size → class
//! lookup, the cache type chosen by the GFP flags, the alignment of each class cache and
//! `kmalloc_size_roundup`. [`buckets`] has dedicated bucket sets (`kmem_buckets_create`).

mod api;
pub mod buckets;
pub mod classes;
pub mod kv;

pub use api::{LARGE_KMALLOC, zero_size_ptr};
pub use buckets::{BucketsError, KmemBuckets};
