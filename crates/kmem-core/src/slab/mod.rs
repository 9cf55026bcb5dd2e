//! Slab caches (SLUB, SEMANTICS.md §3) on the page allocator.
//!
//! - [`flags`], [`layout`]: the pure arithmetic (flag bits, alignment, object layout, slab
//!   order, merging).
//! - [`cache`]: one cache — its layout, per-CPU object arrays and node; [`node`]: the partial
//!   and full slab lists; [`desc`]: slab descriptors and how a page finds its slab;
//!   [`hardening`]: encoded free pointers and randomised freelists.
//! - `create` (create, merge, destroy), `alloc` (the per-CPU fast paths and their slow
//!   paths), `grow` (new slabs, freeing slabs, flushing per-CPU arrays, shrink and reclaim),
//!   `slabinfo` (`/proc/slabinfo`), `handle` (checking a [`CacheRef`] before following it),
//!   `memcg` (`kmem_cache_alloc_lru`, `kmem_cache_charge` without memory cgroups), [`sheaf`]
//!   (prefilled sheaves and the barn of returned ones), [`shim`] (the userspace test shim's
//!   budget, callback and counters, SEMANTICS §8.6): operations of [`crate::Kmem`].
//!
//! # Design (see `docs/slab-design.md`)
//! Objects live in slabs: blocks of `1 << order` pages whose free objects are chained through
//! encoded free pointers. Each CPU slot keeps a LIFO array of free objects per cache; alloc and
//! free use only that array (no lock, no atomic read-modify-write) and go to the node, under
//! its spin lock, only to refill or flush half an array at a time. Frees from any CPU land in
//! the freeing CPU's array, so objects freed far from where they were allocated reach their
//! slab in batches. Debug caches skip the arrays and check every operation under the node lock,
//! as SLUB's debug caches do.
//!
//! Lock order: the cache list lock ([`Slabs`]), a cache's node lock, the descriptor pool's lock,
//! the RCU pending lock, then the page allocator's own locks. A cache's barn lock (`sheaf`) is a
//! leaf. A page allocation is never made under a node lock, and no constructor, destructor or
//! cache teardown runs under the list lock: walks over the list pin each cache and release the
//! lock while they work on it (`lifetime`, which also says when a destroyed cache's memory
//! goes).

pub mod cache;
pub mod desc;
pub mod flags;
pub mod hardening;
pub mod layout;
pub mod node;

pub mod debug;
mod debug_check;
pub mod debug_spec;

mod alloc;
mod create;
mod grow;
mod handle;
mod lifetime;
#[doc(hidden)]
pub mod lifeword;
mod memcg;
mod rcu_free;
mod report;
pub mod sheaf;
pub mod shim;
mod slabinfo;

pub use cache::{Cache, CacheArgs, CacheRef, ObjFn};
pub use create::{CreateError, DestroyError};
pub use debug_spec::{BadDebugSpec, DebugSpec};
pub use sheaf::{MAX_FULL_SHEAVES, PrefilledSheaf, SheafError, SlabSheaf};
pub use shim::ShimCallback;
pub use slabinfo::CacheInfo;

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};

use crate::fault::FaultAttr;
use crate::kmalloc::classes::{NR_KMALLOC_INFO, NR_KMALLOC_TYPES};
use crate::report::Ratelimit;
use crate::sync::SpinLock;
use desc::DescPool;
use hardening::Rng;

/// Slab settings of a machine (boot parameters in the kernel).
///
/// `init_on_alloc` and `init_on_free` are the machine's only copy of those boot parameters:
/// [`crate::Kmem::new`] also installs them in the page allocator (every block of pages zeroed
/// when allocated, resp. freed, §2.10), and vmalloc reads them here; none of them changes once
/// the `Kmem` is built.
#[derive(Clone, Copy, Debug)]
pub struct SlabConfig {
    /// `init_on_alloc=1`: zero every object on allocation (not for caches with a constructor,
    /// `SLAB_TYPESAFE_BY_RCU` or poisoning), and every block of pages.
    pub init_on_alloc: bool,
    /// `init_on_free=1`: zero every object on free (same exceptions), and every block of pages.
    pub init_on_free: bool,
    /// `CONFIG_SLAB_FREELIST_RANDOM`: new slabs hand out objects in a random order.
    pub random_freelist: bool,
    /// `slab_merge` (true) or `slab_nomerge` (false).
    pub merge: bool,
    /// `slab_min_objects=`.
    pub min_objects: Option<u32>,
    /// Seed mixed into `s->random` and the freelist permutations.
    pub seed: u64,
    /// `slab_debug=`.
    pub debug: DebugSpec,
}

impl Default for SlabConfig {
    fn default() -> Self {
        Self {
            init_on_alloc: false,
            init_on_free: false,
            random_freelist: true,
            merge: true,
            min_objects: None,
            seed: 0,
            debug: DebugSpec::none(),
        }
    }
}

/// The list of caches, newest first (`slab_caches`), guarded by the cache list lock
/// (`slab_mutex`).
pub(crate) struct CacheList {
    pub(crate) head: *mut Cache,
    pub(crate) len: usize,
}

// SAFETY: The list holds pointers to caches, which are `Sync`; it is only used under its lock.
unsafe impl Send for CacheList {}

/// The slab allocator's machine-wide state.
pub struct Slabs {
    pub(crate) list: SpinLock<CacheList>,
    pub(crate) descs: DescPool,
    pub(crate) rng: Rng,
    pub(crate) config: SlabConfig,
    /// `failslab`.
    pub(crate) failslab: FaultAttr,
    /// `kmalloc_caches[type][index]` (null where no cache exists).
    pub(crate) kmalloc: [[AtomicPtr<Cache>; NR_KMALLOC_INFO]; NR_KMALLOC_TYPES],
    /// Pages held by large (page-backed) kmalloc allocations.
    pub(crate) large_kmalloc_pages: AtomicUsize,
    /// Pages holding cache structures.
    pub(crate) cache_pages: AtomicUsize,
    /// Slab pages of caches destroyed with objects still out (kept for good, off the cache
    /// list): `[unreclaimable, reclaimable]`, still counted in `/proc/meminfo`'s `Slab`.
    pub(crate) kept_slab_pages: [AtomicUsize; 2],
    /// Rate limit of `slab_out_of_memory`.
    pub(crate) oom_rs: Ratelimit,
    /// Slabs of `SLAB_TYPESAFE_BY_RCU` caches waiting for a grace period.
    pub(crate) rcu: crate::rcu::Rcu,
    /// Interned caller locations of allocation/free tracks, and slabs taken out of use by
    /// failed consistency checks.
    pub(crate) debug: debug::DebugState,
    /// Slab error reports so far (the `slab_errors` counter of `slub_kunit`).
    pub(crate) errors: AtomicUsize,
    /// The direct-map base address (slab descriptors and pages are found from it).
    pub(crate) dm: usize,
    /// Bytes of the direct map from `dm` (0: none), and the address of the page-array entry of
    /// its first page: what `Kmem::cache` checks a `CacheRef` against without other loads.
    pub(crate) dm_bytes: usize,
    pub(crate) dm_pages: usize,
    /// The machine's vmalloc range, for reports (empty unless [`crate::Kmem::set_vmalloc_range`]).
    pub(crate) vmalloc: core::ops::Range<usize>,
    /// A dying cache may be waiting for `reap_orphans` (`lifetime.rs`).
    pub(crate) orphans: AtomicBool,
}

impl Slabs {
    pub(crate) fn new(config: SlabConfig, clock: u64, dm: usize, dm_bytes: usize, dm_pages: usize) -> Self {
        Self {
            dm,
            dm_bytes,
            dm_pages,
            vmalloc: 0..0,
            list: SpinLock::new(CacheList { head: ptr::null_mut(), len: 0 }),
            descs: DescPool::new(),
            rng: Rng::new(config.seed ^ clock.rotate_left(17) ^ 0x5bd1_e995),
            config,
            failslab: FaultAttr::failslab_defaults(),
            kmalloc: core::array::from_fn(|_| core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut()))),
            large_kmalloc_pages: AtomicUsize::new(0),
            cache_pages: AtomicUsize::new(0),
            kept_slab_pages: [AtomicUsize::new(0), AtomicUsize::new(0)],
            oom_rs: Ratelimit::default_kernel(),
            rcu: crate::rcu::Rcu::new(),
            debug: debug::DebugState::new(),
            errors: AtomicUsize::new(0),
            orphans: AtomicBool::new(false),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SlabConfig {
        &self.config
    }

    /// Slab error reports printed or suppressed so far, counted as `slub_kunit`'s
    /// `slab_errors`: each `BUG`/`WARN` report of the slab allocator counts one and so does each
    /// `FIX` line (an overwritten red zone found by a check is two: the report and its
    /// `Restoring`).
    pub fn errors(&self) -> usize {
        self.errors.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// The `failslab` fault-injection knobs.
    pub fn failslab(&self) -> &FaultAttr {
        &self.failslab
    }
}
