//! Memory pools (`mm/mempool.c`, SEMANTICS.md §6): a reserve of pre-allocated elements that
//! guarantees forward progress when the backing allocator runs dry.
//!
//! A pool wraps a backing allocator given as two callbacks with a `pool_data` pointer, exactly
//! as the kernel's `mempool_alloc_t`/`mempool_free_t` (and ABI-compatible with C functions of
//! those types: [`Gfp`] is a transparent `u32`). It keeps up to `min_nr` elements in a stack.
//! [`Mempool::alloc`] tries the backing allocator first (with `__GFP_NOMEMALLOC|__GFP_NORETRY|
//! __GFP_NOWARN`, and without direct reclaim or I/O on the first pass), then pops the reserve
//! (LIFO), then retries once with the caller's full mask, and then — only if the mask allows
//! direct reclaim — sleeps until a [`Mempool::free`] refills the reserve (at most 5 s, the
//! kernel's `io_schedule_timeout(5*HZ)`) and starts over. A free refills the reserve before
//! anything goes back to the backing allocator. The newest kernel's bulk calls
//! ([`Mempool::alloc_bulk`], [`Mempool::free_bulk`], in `bulk`) fill an array's NULL slots
//! the same way, taking the whole remainder from the reserve or nothing, and give a run of
//! leading elements back. `fail_mempool_alloc` and `fail_mempool_alloc_bulk` (the platform's
//! [`FaultAttr`]s, in `inject`) make the allocations skip `alloc_fn` and use the reserve.
//!
//! kmem-core has no heap, so the pool structure ([`mempool_create`]) and its element array
//! come from a [`PoolEnv`] (the page allocator implements it), or the structure is the
//! caller's ([`mempool_init`]). Page pools are in [`helpers`], slab and kmalloc pools in
//! [`slab_helpers`].
//!
//! This file is the type: [`Mempool`], its environment and counters, and the accessors the
//! other files share (the platform, the backing allocator's calls, tracking, `WARN_ON_ONCE`).
//! The operations are one file each: the reserve under the lock (`reserve`: the element stack,
//! `pop`, `add_element`/`remove_element`, the free path's hint), the allocation path (`alloc`),
//! the free path (`free`), the bulk calls (`bulk`), building and tearing down (`lifecycle`),
//! poisoning (`poison`), fault injection (`inject`). The invariants below hold across all of
//! them; each file states what its own code keeps.
//!
//! # Invariants
//! - `curr_nr <= capacity` of the element array and `curr_nr <= max(min_nr, 1)`; slots
//!   `0..curr_nr` hold elements, the top of the stack is `curr_nr - 1`.
//! - `curr_nr`, `min_nr` and `poison` change only under `reserve`'s lock, and `free_flags`'
//!   `free_flag::LOCK` (`curr_nr < max(min_nr, 1)`, poisoning on, or tracking) is recomputed
//!   there with them; `mempool_free` reads it without the lock (a racy hint re-checked under
//!   the lock, as the kernel reads `curr_nr`). `free_flag::NOT_OWNED` is the owner's
//!   ([`Mempool::set_owner_free`]), written under the lock too.
//! - `Reserve::out` (under the lock) = elements `alloc` took from the reserve minus elements
//!   `free` put into it: the reserve elements still out, which `mempool_exit` reports when
//!   positive (the 2.6 kernel's `BUG_ON(curr_nr != min_nr)`). It can be negative when frees
//!   filled slots a resize could not fill.
//! - With element tracking (`tracking`, fixed at init: mempool debugging of the
//!   [`PoolEnv`]), `tracked` = elements handed out by `alloc`/`alloc_preallocated` minus
//!   elements `free` accepted, exactly, and `mempool_exit` reports a non-zero value. Without
//!   it the fast paths count nothing, as the kernel's (SEMANTICS: outstanding elements are not
//!   checked), so a leak of an element that came from the backing allocator is the backing
//!   allocator's to report (`kmem_cache_destroy`, meminfo).
//! - A sleeper registers in `Reserve::waiters` and reads its ticket (`wait_seq`) under the lock
//!   after seeing `curr_nr` below what it needs (1, or a bulk allocation's remainder); a free
//!   (single or bulk) that pushes an element bumps `wait_seq` under the same
//!   lock when `waiters > 0`, then wakes after unlocking. So a sleeper either sees the element
//!   or sleeps on a ticket the free has already outdated: no fence is needed on the free path.
//!   `tests/loom.rs` checks this handshake and the pop/free fences under every interleaving
//!   (`curr_nr`, `min_nr`, `free_flags` and the fences come from [`crate::sync::atomic`],
//!   loom's under `cfg(kmem_loom)`).
//!
//! # Fast paths
//! With an element available, `mempool_alloc` is one call to the platform (`fast_cpu`, which
//! answers `might_sleep`'s question) and the backing allocator through `alloc_fn`;
//! `mempool_free` reads `free_flags` without the lock and calls `free_fn`. No atomic
//! read-modify-write, no count and no lock on either, unless mempool debugging (tracking,
//! poisoning) is on. [`Mempool::alloc_inline`]/[`Mempool::free_inline`] let a caller that
//! knows the backing allocator (the `kmem` crate's helper pools) call it directly instead of
//! through the pointers, so it can be inlined.
//!
//! Lock order: the pool's `reserve` lock is a leaf. No callback (`alloc_fn`, `free_fn`), no
//! [`PoolEnv`] call and no sleep happens while it is held; reports (poisoning, debug checks) are
//! logged under it, as the kernel prints under `pool->lock`.

mod alloc;
mod bulk;
mod free;
mod free_check;
pub mod helpers;
mod inject;
mod lifecycle;
pub mod poison;
mod reserve;
pub mod slab_helpers;
mod stack;

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, AtomicUsize};

use self::reserve::Reserve;
use crate::fault::FaultAttr;
use crate::gfp::Gfp;
use crate::platform::{Level, Platform};
use crate::report::might_sleep as report_might_sleep;
use crate::sync::SpinLock;
use crate::sync::atomic as handoff;

pub use free_check::FreeCheck;
use free_check::free_flag;
pub use helpers::{
    PoolHelperData, mempool_alloc_pages, mempool_create_lowmem_page_pool, mempool_create_page_pool, mempool_free_pages,
    mempool_helper_arg, mempool_init_page_pool,
};
pub(crate) use lifecycle::{PoolData, create_with, init_with};
pub use lifecycle::{
    mempool_alloc, mempool_alloc_bulk, mempool_alloc_preallocated, mempool_create, mempool_create_node,
    mempool_destroy, mempool_destroy_at, mempool_exit, mempool_exit_at, mempool_free, mempool_free_bulk, mempool_init,
    mempool_init_node, mempool_resize,
};
pub use slab_helpers::{
    HelperPair, mempool_alloc_slab, mempool_create_helper_node, mempool_create_kmalloc_pool, mempool_create_slab_pool,
    mempool_free_slab, mempool_init_kmalloc_pool, mempool_init_slab_pool, mempool_kfree, mempool_kmalloc,
};

/// `mempool_alloc_t`: returns a new element or NULL. Called with the pool's `pool_data`.
pub type MempoolAllocFn = unsafe extern "C" fn(gfp: Gfp, pool_data: *mut c_void) -> *mut c_void;
/// `mempool_free_t`: gives an element back to the backing allocator.
pub type MempoolFreeFn = unsafe extern "C" fn(element: *mut c_void, pool_data: *mut c_void);

/// `NUMA_NO_NODE`: kmem has one node, so every node id means it.
pub const NUMA_NO_NODE: i32 = -1;
/// How long `mempool_alloc` sleeps at most before it retries the backing allocator
/// (`io_schedule_timeout(5*HZ)`).
pub const MEMPOOL_WAIT_TIMEOUT_NS: u64 = 5_000_000_000;

/// What a pool needs besides its callbacks: the platform (sleeping, waking, the log) and
/// memory for its own structure and element array.
///
/// # Safety
/// `alloc_meta` returns memory aligned to at least 8 bytes, valid for `bytes` bytes and unused
/// by anyone else until it is passed to `free_meta` with the same `bytes`. Neither may call
/// into a mempool. `platform` returns the same platform for as long as the environment lives.
pub unsafe trait PoolEnv: Sync {
    /// The platform sleepers sleep on and reports go to.
    fn platform(&self) -> &dyn Platform;
    /// Memory for pool metadata (`kmalloc` in the kernel); `None` when there is none.
    fn alloc_meta(&self, bytes: usize, gfp: Gfp) -> Option<NonNull<u8>>;
    /// Gives back what [`Self::alloc_meta`] returned.
    ///
    /// # Safety
    /// `ptr` came from `alloc_meta(bytes, _)` on this environment and is not used afterwards.
    unsafe fn free_meta(&self, ptr: NonNull<u8>, bytes: usize);
    /// Whether pools initialised now get mempool debugging (the kernel's
    /// `CONFIG_SLUB_DEBUG_ON` for pools): every element handed out is counted, so destroying
    /// a pool with any element out is reported, and the reserve is poisoned where the pool
    /// knows its elements' size. Costs an atomic operation per alloc and the pool's lock per
    /// free. Off by default.
    fn debug_pools(&self) -> bool {
        false
    }
}

/// Why [`Mempool::resize`] did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeError {
    /// `new_min_nr == 0`: the kernel's `BUG_ON(new_min_nr <= 0)` (reported, pool untouched).
    Invalid,
    /// The larger element array could not be allocated (`-ENOMEM`).
    NoMemory,
}

/// Slow-path event counters of one pool.
#[derive(Debug, Default)]
pub struct MempoolStats {
    /// Times `mempool_alloc` went to sleep waiting for a free.
    pub sleeps: AtomicUsize,
    /// Frees that refilled the reserve and found sleepers to wake.
    pub wakeups: AtomicUsize,
    /// Sleeps that lasted the whole timeout (no free woke them; by the platform's clock).
    pub timeouts: AtomicUsize,
    /// Elements taken from the reserve by `mempool_alloc`/`mempool_alloc_preallocated`/
    /// `mempool_alloc_bulk` (written under the pool's lock).
    pub reserve_allocs: AtomicUsize,
}

/// `mempool_t`. Build one with [`mempool_create`] (memory from the [`PoolEnv`]) or
/// [`mempool_init`] (caller's storage); it must not move while initialised.
pub struct Mempool {
    reserve: SpinLock<Reserve>,
    /// `curr_nr`, `min_nr` and `free_flags` are the handoff's atomics: loom's under
    /// `cfg(kmem_loom)` ([`crate::sync::atomic`]), `core`'s otherwise.
    curr_nr: handoff::AtomicUsize,
    min_nr: handoff::AtomicUsize,
    /// [`free_flag`] bits: whether a free must take the lock, and whether the owner's own free
    /// path applies (written under the lock, read without it).
    free_flags: handoff::AtomicU8,
    /// Every element is counted in `tracked` (mempool debugging; set at init, then fixed).
    tracking: bool,
    /// Elements handed out minus elements freed, kept only while `tracking`.
    tracked: AtomicIsize,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
    pool_data: *mut c_void,
    /// The futex word sleepers wait on (`pool->wait`; the platform's word type, which is
    /// loom's under `cfg(kmem_loom)`).
    wait_seq: crate::waitq::WaitWord,
    env: Option<NonNull<dyn PoolEnv>>,
    /// `env`'s platform, kept so the fast path asks it in one call.
    platform: Option<NonNull<dyn Platform>>,
    /// The first element array's block and its size.
    block: Option<(NonNull<u8>, usize)>,
    /// Data owned by the pool for the helper pairs (`helpers`): `pool_data` points here.
    helper: helpers::PoolHelperData,
    /// Where an element's bytes are (helper pairs only): what poisoning needs.
    span_fn: Option<poison::ElementSpanFn>,
    /// Debug poisoning of reserved elements is on (changed under `reserve`'s lock).
    poison: AtomicBool,
    /// Allocated by `mempool_create` (so `mempool_destroy` frees the structure too).
    owned: bool,
    /// The pool's `WARN_ON_ONCE` sites that have fired ([`warn`] bits): once per pool.
    warned: AtomicU8,
    /// The platform's `fail_mempool_alloc` knobs, read at init (`Platform::fault_attr`); they
    /// live as long as the platform, which outlives the pool. `inject::NEVER` without them.
    fail_alloc: NonNull<FaultAttr>,
    /// The address reports name the pool by: its own, or the structure its owner hands out
    /// ([`Mempool::set_shown_address`]: the C ABI's `mempool_t`).
    shown: core::sync::atomic::AtomicUsize,
    stats: MempoolStats,
}

// SAFETY: Everything `&Mempool` mutates is atomic or behind `reserve`'s lock. The creator
// promised (unsafe `mempool_init`/`mempool_create`) that the callbacks may be called from any
// thread with `pool_data`, and `PoolEnv: Sync` (its platform is `Sync` too).
unsafe impl Sync for Mempool {}
// SAFETY: As above: nothing in the pool is tied to the thread that built it.
unsafe impl Send for Mempool {}

impl Default for Mempool {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl Mempool {
    /// A never-initialised pool (the kernel's zeroed `mempool_t`): [`mempool_exit`] on it is a
    /// no-op and [`Mempool::is_initialized`] is false.
    #[must_use]
    pub fn zeroed() -> Self {
        Self {
            reserve: SpinLock::new(Reserve::EMPTY),
            curr_nr: handoff::AtomicUsize::new(0),
            min_nr: handoff::AtomicUsize::new(0),
            free_flags: handoff::AtomicU8::new(free_flag::NOT_OWNED),
            tracking: false,
            tracked: AtomicIsize::new(0),
            alloc_fn: None,
            free_fn: None,
            pool_data: ptr::null_mut(),
            wait_seq: crate::waitq::WaitWord::new(0),
            env: None,
            platform: None,
            block: None,
            helper: helpers::PoolHelperData { allocator: ptr::null(), arg: 0 },
            span_fn: None,
            poison: AtomicBool::new(false),
            owned: false,
            warned: AtomicU8::new(0),
            fail_alloc: NonNull::from(&inject::NEVER),
            shown: core::sync::atomic::AtomicUsize::new(0),
            stats: MempoolStats {
                sleeps: AtomicUsize::new(0),
                wakeups: AtomicUsize::new(0),
                timeouts: AtomicUsize::new(0),
                reserve_allocs: AtomicUsize::new(0),
            },
        }
    }

    /// `pool->min_nr`.
    pub fn min_nr(&self) -> usize {
        self.min_nr.load(Relaxed)
    }

    /// `pool->curr_nr`: elements in the reserve now.
    pub fn curr_nr(&self) -> usize {
        self.curr_nr.load(Relaxed)
    }

    /// Calls `f(min_nr, curr_nr)` under the pool's lock, for an owner that mirrors the counts
    /// elsewhere (the C ABI's `mempool_t`): mirrors written by racing calls end in lock order,
    /// so the last one holds the last counts. `f` must not call into the pool.
    pub fn with_counts<R>(&self, f: impl FnOnce(usize, usize) -> R) -> R {
        let _r = self.reserve.lock();
        f(self.min_nr.load(Relaxed), self.curr_nr.load(Relaxed))
    }

    /// `pool->pool_data`.
    pub fn pool_data(&self) -> *mut c_void {
        self.pool_data
    }

    /// `mempool_initialized`: the pool has an element array.
    pub fn is_initialized(&self) -> bool {
        self.reserve.lock().stack.capacity() > 0
    }

    /// `mempool_is_saturated`: the reserve is full (`curr_nr >= min_nr`).
    pub fn is_saturated(&self) -> bool {
        self.curr_nr() >= self.min_nr()
    }

    /// Elements out. With element tracking ([`Self::is_tracking`]): every element handed out
    /// and not yet freed, exact when no alloc or free runs at the same time. Without it (the
    /// default, as the kernel keeps no count): only elements taken from the reserve and not
    /// replaced by a free.
    pub fn outstanding(&self) -> isize {
        if self.tracking { self.tracked.load(Relaxed) } else { self.reserve.lock().out }
    }

    /// Whether every element handed out is counted (mempool debugging, [`PoolEnv::debug_pools`]
    /// at init).
    pub fn is_tracking(&self) -> bool {
        self.tracking
    }

    /// Counts `delta` elements out when tracking.
    #[inline(always)]
    fn track(&self, delta: isize) {
        if self.tracking {
            self.tracked.fetch_add(delta, Relaxed);
        }
    }

    /// Makes reports name the pool as `addr` (the structure its owner hands out, such as the
    /// C ABI's `mempool_t`), so a report points at what the program holds.
    pub fn set_shown_address(&self, addr: usize) {
        self.shown.store(addr, Relaxed);
    }

    /// The address reports name the pool by.
    pub(crate) fn shown_address(&self) -> *const c_void {
        match self.shown.load(Relaxed) {
            0 => ptr::from_ref(self).cast(),
            addr => addr as *const c_void,
        }
    }

    /// Slow-path counters.
    pub fn stats(&self) -> &MempoolStats {
        &self.stats
    }

    fn env(&self) -> Option<&dyn PoolEnv> {
        // SAFETY: The creator promised the environment outlives the pool (`mempool_init_node`).
        self.env.map(|e| unsafe { e.as_ref() })
    }

    #[inline(always)]
    fn platform(&self) -> Option<&dyn Platform> {
        // SAFETY: The environment's platform, which lives as long as the environment, which
        // outlives the pool (creator's promise, `PoolEnv`'s contract).
        self.platform.map(|p| unsafe { p.as_ref() })
    }

    /// The caller's CPU slot when it is not in atomic context.
    #[inline(always)]
    fn fast_cpu(&self) -> Option<usize> {
        self.platform().and_then(|p| p.fast_cpu())
    }

    /// Calls the backing allocator.
    #[inline(always)]
    fn backing_alloc(&self, gfp: Gfp) -> *mut c_void {
        match self.alloc_fn {
            // SAFETY: The creator promised `alloc_fn` may be called with `pool_data` from any thread.
            Some(f) => unsafe { f(gfp, self.pool_data) },
            None => ptr::null_mut(),
        }
    }

    /// Calls the backing free function.
    #[inline(always)]
    fn backing_free(&self, element: *mut c_void) {
        if let Some(f) = self.free_fn {
            // SAFETY: `element` came from `alloc_fn` (the pool's callers promise so), and the
            // creator promised `free_fn` may be called with it and `pool_data` from any thread.
            unsafe { f(element, self.pool_data) }
        }
    }

    /// `WARN_ON_ONCE` at `site` (a [`warn`] bit) in `func`: the first time for this pool only,
    /// `WARNING: CPU: N at <caller> <func>: <what>` and the stack dump.
    #[cold]
    #[inline(never)]
    fn warn_once(&self, site: u8, func: &str, what: core::fmt::Arguments<'_>, caller: &Location<'_>) {
        let Some(platform) = self.platform() else { return };
        if self.warned.fetch_or(site, Relaxed) & site != 0 {
            return;
        }
        platform.log(
            Level::Warning,
            format_args!("WARNING: CPU: {} at {caller} {func}: {what}", platform.cpu().unwrap_or(0)),
        );
        platform.dump_stack(caller);
    }
}

/// The pool's `WARN_ON_ONCE` sites: bits of `Mempool::warned`. The kernel keeps one flag per
/// call site for the whole system; kmem keeps one per pool (as for `__GFP_ZERO` since the
/// first pools: a pool has no machine-wide object to keep them in).
mod warn {
    /// `VM_WARN_ON_ONCE(gfp_mask & __GFP_ZERO)` in `mempool_alloc` (MP-14).
    pub(super) const ZERO: u8 = 1 << 0;
    /// `VM_WARN_ON_ONCE(count > pool->min_nr)` in `mempool_alloc_bulk`.
    pub(super) const BULK_COUNT: u8 = 1 << 1;
    /// kmem's check of `mempool_alloc_bulk`'s `allocated` against the filled slots.
    pub(super) const BULK_ALLOCATED: u8 = 1 << 2;
}
