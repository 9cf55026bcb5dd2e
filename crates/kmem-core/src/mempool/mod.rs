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

mod bulk;
mod free_check;
pub mod helpers;
mod inject;
mod lifecycle;
pub mod poison;
pub mod slab_helpers;
mod stack;

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, AtomicUsize, fence};

use crate::fault::FaultAttr;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_IO, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, __GFP_ZERO, Gfp};
use crate::platform::{Level, Platform};
use crate::sync::{SpinGuard, SpinLock};
use stack::Stack;

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

/// What the pool's lock protects besides `curr_nr`/`min_nr`.
struct Reserve {
    /// `pool->elements`.
    stack: Stack,
    /// Sleepers in `wait_for_free` (see the module invariants).
    waiters: u32,
    /// Elements taken from the reserve and not yet replaced by a free: raised by every take,
    /// lowered by every free into the reserve (never below 0: a free that fills a reserve a
    /// grow left short replaces nothing taken), and capped by a shrink at what the smaller
    /// reserve can still take back (the rest goes to `free_fn` when freed). What `mempool_exit`
    /// reports as leaked when the pool does not track its elements.
    out: isize,
    /// The element size a custom pool declared for poisoning ([`Mempool::set_element_size`]).
    custom_size: usize,
}

impl Reserve {
    const EMPTY: Reserve = Reserve { stack: Stack::EMPTY, waiters: 0, out: 0, custom_size: 0 };

    /// A free put an element into the reserve.
    fn replaced(&mut self) {
        self.out = (self.out - 1).max(0);
    }
}

/// `mempool_t`. Build one with [`mempool_create`] (memory from the [`PoolEnv`]) or
/// [`mempool_init`] (caller's storage); it must not move while initialised.
pub struct Mempool {
    reserve: SpinLock<Reserve>,
    curr_nr: AtomicUsize,
    min_nr: AtomicUsize,
    /// [`free_flag`] bits: whether a free must take the lock, and whether the owner's own free
    /// path applies (written under the lock, read without it).
    free_flags: AtomicU8,
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
            curr_nr: AtomicUsize::new(0),
            min_nr: AtomicUsize::new(0),
            free_flags: AtomicU8::new(free_flag::NOT_OWNED),
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

    /// Pops the top of the reserve, if any; `handed_out` counts it as an element out.
    #[track_caller]
    fn pop(&self, handed_out: bool) -> Option<NonNull<c_void>> {
        let mut r = self.reserve.lock();
        let element = self.remove_element(&mut r)?;
        if handed_out {
            r.out += 1;
            self.track(1);
            // Under the lock: no other writer.
            self.stats.reserve_allocs.store(self.stats.reserve_allocs.load(Relaxed) + 1, Relaxed);
        }
        drop(r);
        // Pairs with the `Acquire` fence in `free`: whoever gets this element from us without
        // synchronising sees a `curr_nr` from after this removal (the kernel's `smp_wmb`).
        fence(Release);
        Some(element)
    }

    /// `remove_element`: takes the top element (checking its poison if that is on). Called
    /// with the lock held (`r` is the locked reserve).
    #[track_caller]
    #[inline(always)]
    fn remove_element(&self, r: &mut Reserve) -> Option<NonNull<c_void>> {
        let curr = self.curr_nr.load(Relaxed);
        if curr == 0 {
            return None;
        }
        let element = r.stack.get(curr - 1);
        // INVARIANT: Slot `curr - 1` is no longer counted, so it no longer holds an element.
        self.curr_nr.store(curr - 1, Relaxed);
        self.update_free_locks();
        if self.poison.load(Relaxed) {
            self.check_poison(r, element, curr - 1, Location::caller());
        }
        Some(element)
    }

    /// `add_element`: pushes `element` (poisoning it if that is on); the caller checked room.
    #[inline(always)]
    fn add_element(&self, r: &mut Reserve, element: NonNull<c_void>) {
        let curr = self.curr_nr.load(Relaxed);
        if self.poison.load(Relaxed) {
            self.poison_element(r, element);
        }
        r.stack.set(curr, element);
        // INVARIANT: Slot `curr` now holds an element; the caller checked `curr < max(min_nr, 1)`.
        self.curr_nr.store(curr + 1, Relaxed);
        self.update_free_locks();
    }

    /// Recomputes [`free_flag::LOCK`]; called under the lock after `curr_nr`, `min_nr` or
    /// `poison` changed.
    #[inline(always)]
    fn update_free_locks(&self) {
        let (curr, min) = (self.curr_nr.load(Relaxed), self.min_nr.load(Relaxed));
        let lock = curr < min.max(1) || self.poison.load(Relaxed) || self.tracking;
        let owned = self.free_flags.load(Relaxed) & free_flag::NOT_OWNED;
        self.free_flags.store(owned | if lock { free_flag::LOCK } else { 0 }, Relaxed);
    }

    /// Marks (or unmarks) the owner's own free path: while it is marked and no free needs the
    /// lock, [`Self::owner_may_free`] is true. The owner (the `kmem` crate's slab pools) uses
    /// it to test, with one load, both that the reserve is full and that the pool is of the
    /// kind its inlined free handles.
    ///
    /// # Safety
    /// Only the code that created the pool and keeps it (such as the `kmem` crate's
    /// `RawMempool`) calls this, and marks the pool only while its own free path handles the
    /// pool's elements: that owner relies on the mark (`RawMempool` frees a marked pool's
    /// elements to its cache without another test).
    pub unsafe fn set_owner_free(&self, on: bool) {
        let _r = self.reserve.lock();
        let flags = self.free_flags.load(Relaxed);
        let flags = if on { flags & !free_flag::NOT_OWNED } else { flags | free_flag::NOT_OWNED };
        self.free_flags.store(flags, Relaxed);
    }

    /// `mempool_free`'s lock-free decision for an owner that marked its free path
    /// ([`Self::set_owner_free`]): true when the path is marked and the element goes to the
    /// backing allocator (the reserve is not short, no debugging), with the ordering
    /// [`Self::free_inline`] gives. Then the owner frees the element itself, as `free_fn`
    /// would; otherwise it calls [`Self::free_inline`] or [`Self::free`].
    #[inline(always)]
    pub fn owner_may_free(&self) -> bool {
        self.free_check().owner()
    }

    /// `mempool_free`'s one lock-free read (the flags, after the `Acquire` fence that pairs
    /// with the `Release` fence in `pop`, the kernel's `smp_rmb`), for a caller that decides
    /// its own path from it and then frees with [`Self::free_checked`].
    #[inline(always)]
    pub fn free_check(&self) -> FreeCheck {
        fence(Acquire);
        FreeCheck(self.free_flags.load(Relaxed))
    }

    /// Whether the locked reserve has room for one more element: below `min_nr` (or empty in
    /// a zero-minimum pool) and inside the array.
    fn has_room(&self, r: &Reserve) -> bool {
        let (curr, min) = (self.curr_nr.load(Relaxed), self.min_nr.load(Relaxed));
        curr < min.max(1) && curr < r.stack.capacity()
    }

    /// Pushes a new element while filling the reserve (init, resize); returns whether it did.
    fn push_fill(&self, element: NonNull<c_void>) -> bool {
        let mut r = self.reserve.lock();
        if !self.has_room(&r) {
            return false;
        }
        self.add_element(&mut r, element);
        true
    }

    /// `mempool_alloc(pool, gfp)`: an element, or NULL — which never happens when `gfp` has
    /// `__GFP_DIRECT_RECLAIM` (MP-2, MP-4, MP-5, MP-6).
    #[track_caller]
    #[inline]
    pub fn alloc(&self, gfp: Gfp) -> *mut c_void {
        let first = |gfp| {
            let element = self.backing_alloc(gfp);
            if !element.is_null() {
                self.track(1);
            }
            element
        };
        // SAFETY: The first pass calls `alloc_fn` itself (nothing for a pool without one, so
        // an uninitialised pool is fine too) and counts what it returns, with the platform's
        // own answer and the pool's own attribute.
        unsafe { self.alloc_first(gfp, self.fast_cpu(), self.fail_alloc_attr(), first) }
    }

    /// [`Self::alloc`] for a caller that knows the backing allocator statically (the `kmem`
    /// crate's helper pools): the first pass calls `first` instead of `alloc_fn` through its
    /// pointer, so it can be inlined into the caller. Everything else is [`Self::alloc`]'s.
    ///
    /// # Safety
    /// - `first(gfp)` does what `alloc_fn(gfp, pool_data)` does (the same allocator, call and
    ///   result), so the pool behaves exactly as with the pointer.
    /// - `cpu` is what the pool's platform's `fast_cpu()` returns for the caller now.
    /// - `fail` is the pool's `fail_mempool_alloc` attribute: what its platform's
    ///   `fault_attr(FaultPoint::FailMempoolAlloc)` returns (a caller that holds the platform
    ///   reaches it with one load fewer than the pool, which keeps a pointer to it).
    /// - The pool is initialised (not zeroed, not exited) and does not track its elements
    ///   ([`Self::is_tracking`]; the first pass counts nothing, so a tracking pool goes
    ///   through [`Self::alloc`]).
    #[track_caller]
    #[inline(always)]
    pub unsafe fn alloc_inline(
        &self,
        gfp: Gfp,
        cpu: Option<usize>,
        fail: &FaultAttr,
        first: impl FnOnce(Gfp) -> *mut c_void,
    ) -> *mut c_void {
        debug_assert!(!self.tracking, "alloc_inline on a tracking pool");
        debug_assert!(ptr::eq(fail, self.fail_alloc_attr()), "alloc_inline with another attribute");
        // SAFETY: The caller's promise, and `first` need not count on a pool that does not track.
        unsafe { self.alloc_first(gfp, cpu, fail, first) }
    }

    /// The body of [`Self::alloc`]: the first pass through `first`, which counts its element
    /// when the pool tracks (so the untracked fast path has no test), then the slow path.
    ///
    /// # Safety
    /// As [`Self::alloc_inline`], except that on a tracking pool `first` counts the element it
    /// returns ([`Self::track`]).
    #[track_caller]
    #[inline(always)]
    unsafe fn alloc_first(
        &self,
        gfp: Gfp,
        cpu: Option<usize>,
        fail: &FaultAttr,
        first: impl FnOnce(Gfp) -> *mut c_void,
    ) -> *mut c_void {
        // `might_alloc`: only a caller without a fast CPU slot can be in atomic context. The
        // checked case is a call of its own, so that here `gfp` stays what the caller wrote
        // (usually a constant the backing allocator's fast path folds).
        if gfp.contains(__GFP_ZERO) || (cpu.is_none() && gfp.contains(__GFP_DIRECT_RECLAIM)) {
            // SAFETY: The caller's promise, passed on.
            return unsafe { self.alloc_checked(gfp, first) };
        }
        // SAFETY: The caller's promise, passed on.
        unsafe { self.alloc_passes(gfp, fail, first) }
    }

    /// [`Self::alloc_first`] for a mask that needs [`Self::check_gfp`] first.
    ///
    /// # Safety
    /// As [`Self::alloc_first`].
    #[cold]
    #[inline(never)]
    #[track_caller]
    unsafe fn alloc_checked(&self, gfp: Gfp, first: impl FnOnce(Gfp) -> *mut c_void) -> *mut c_void {
        let gfp = self.check_gfp(gfp, Location::caller());
        // SAFETY: The caller's promise, passed on.
        unsafe { self.alloc_passes(gfp, self.fail_alloc_attr(), first) }
    }

    /// The passes of `mempool_alloc` with a checked mask: the backing allocator through
    /// `first`, then [`Self::alloc_slow`].
    ///
    /// # Safety
    /// As [`Self::alloc_first`].
    #[track_caller]
    #[inline(always)]
    unsafe fn alloc_passes(&self, gfp: Gfp, fail: &FaultAttr, first: impl FnOnce(Gfp) -> *mut c_void) -> *mut c_void {
        let gfp = gfp.union(__GFP_NOMEMALLOC.union(__GFP_NORETRY).union(__GFP_NOWARN));
        // The first pass neither reclaims nor does I/O: the reserve is there for that.
        let gfp_temp = gfp.difference(__GFP_DIRECT_RECLAIM.union(__GFP_IO));
        // `fail_mempool_alloc` skips the backing allocator (one load when it is off).
        if !self.forced_to_reserve(fail) {
            let element = first(gfp_temp);
            if !element.is_null() {
                return element;
            }
        }
        self.alloc_slow(gfp, gfp_temp)
    }

    /// `VM_WARN_ON_ONCE(gfp & __GFP_ZERO)` and `might_alloc`; returns the mask to use.
    #[cold]
    #[inline(never)]
    fn check_gfp(&self, gfp: Gfp, caller: &Location<'_>) -> Gfp {
        let Some(platform) = self.platform() else { return gfp };
        if gfp.contains(__GFP_ZERO) && self.warned.fetch_or(warn::ZERO, Relaxed) & warn::ZERO == 0 {
            // MP-14: reserve elements are not zeroed, so `__GFP_ZERO` cannot be honoured.
            platform.log(
                Level::Warning,
                format_args!(
                    "WARNING: CPU: {} at {caller} mempool_alloc: __GFP_ZERO is not supported (reserved elements are not zeroed)",
                    platform.cpu().unwrap_or(0)
                ),
            );
        }
        if gfp.allow_blocking() && platform.in_atomic() {
            report_might_sleep(platform, caller);
            // As the page allocator does (docs/deviations.md): go on without sleeping.
            return gfp.difference(__GFP_DIRECT_RECLAIM);
        }
        gfp
    }

    /// After a failed first pass: the reserve, the full mask, then sleeping (`repeat_alloc`).
    #[inline(never)]
    #[track_caller]
    fn alloc_slow(&self, gfp: Gfp, mut gfp_temp: Gfp) -> *mut c_void {
        loop {
            if let Some(element) = self.pop(true) {
                return element.as_ptr();
            }
            if gfp_temp != gfp {
                // The first pass failed and the reserve is empty: retry at once with the full mask.
                gfp_temp = gfp;
            } else if !gfp.contains(__GFP_DIRECT_RECLAIM) {
                return ptr::null_mut();
            } else {
                let Some(platform) = self.platform() else { return ptr::null_mut() };
                self.wait_for_free(platform, 1);
            }
            if self.forced_to_reserve(self.fail_alloc_attr()) {
                continue; // `repeat_alloc` asks `fail_mempool_alloc` again.
            }
            let element = self.backing_alloc(gfp_temp);
            if !element.is_null() {
                self.track(1);
                return element;
            }
        }
    }

    /// Sleeps until a free puts an element into the reserve or [`MEMPOOL_WAIT_TIMEOUT_NS`]
    /// passes; returns at once if the reserve holds `need` elements (refilled since the caller
    /// looked).
    fn wait_for_free(&self, platform: &dyn Platform, need: usize) {
        let mut r = self.reserve.lock();
        if self.curr_nr.load(Relaxed) >= need.max(1) {
            return; // Refilled since we looked.
        }
        r.waiters += 1;
        // Read under the lock: a free that pushes after we unlock sees `waiters > 0` and bumps
        // the word first, so the wait below returns at once.
        let ticket = self.wait_seq.load(Relaxed);
        drop(r);
        self.stats.sleeps.fetch_add(1, Relaxed);
        let start = platform.now_ns();
        platform.wait(&self.wait_seq, ticket, MEMPOOL_WAIT_TIMEOUT_NS);
        if platform.now_ns().saturating_sub(start) >= MEMPOOL_WAIT_TIMEOUT_NS {
            self.stats.timeouts.fetch_add(1, Relaxed);
        }
        self.reserve.lock().waiters -= 1;
    }

    /// `mempool_alloc_preallocated`: an element from the reserve only, or NULL; never calls
    /// `alloc_fn` and never sleeps (MP-8).
    #[track_caller]
    pub fn alloc_preallocated(&self) -> *mut c_void {
        self.pop(true).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    /// `mempool_free(element, pool)`: back into the reserve if it is short of `min_nr` (or
    /// empty in a zero-minimum pool), waking sleepers; otherwise to `free_fn`. NULL is ignored
    /// (MP-3, MP-7). With poisoning on, a double free of an element in the reserve and an
    /// element the pool cannot have handed out are reported and ignored (TST-16).
    ///
    /// # Safety
    /// `element` is NULL or an element `free_fn` accepts (normally one this pool handed out)
    /// that nobody uses any more.
    #[track_caller]
    #[inline]
    pub unsafe fn free(&self, element: *mut c_void) {
        // SAFETY: The caller's promise; the last step calls `free_fn` itself (nothing for a pool
        // without one).
        unsafe { self.free_inline(element, |e| self.backing_free(e)) }
    }

    /// [`Self::free`] for a caller that knows the backing allocator statically: `last` is
    /// called instead of `free_fn` through its pointer when the element goes back to it.
    ///
    /// # Safety
    /// As [`Self::free`]; `last(element)` does what `free_fn(element, pool_data)` does.
    #[track_caller]
    #[inline(always)]
    pub unsafe fn free_inline(&self, element: *mut c_void, last: impl FnOnce(*mut c_void)) {
        let Some(element) = NonNull::new(element) else { return };
        // SAFETY: The caller's promise, and the check is this pool's, read now.
        unsafe { self.free_checked(element, self.free_check(), last) }
    }

    /// [`Self::free_inline`] with the flags already read by [`Self::free_check`] (on this
    /// pool, for this free).
    ///
    /// # Safety
    /// As [`Self::free_inline`].
    #[track_caller]
    #[inline(always)]
    pub unsafe fn free_checked(&self, element: NonNull<c_void>, check: FreeCheck, last: impl FnOnce(*mut c_void)) {
        // `curr_nr < min_nr` (or an empty zero-minimum pool), read without the lock.
        if check.locks() && self.free_slow(element) {
            return;
        }
        last(element.as_ptr());
    }

    /// The locked part of `mempool_free`: the debug checks and the count, then the push if the
    /// reserve is still short, and the wake-up. Returns true if the element was dealt with.
    #[inline(never)]
    #[track_caller]
    fn free_slow(&self, element: NonNull<c_void>) -> bool {
        let mut r = self.reserve.lock();
        if self.poison.load(Relaxed) && !self.check_free(&r, element, "mempool_free", Location::caller()) {
            return true; // Reported; the element is left alone.
        }
        self.track(-1);
        if !self.has_room(&r) {
            return false;
        }
        self.add_element(&mut r, element);
        r.replaced();
        self.unlock_and_wake(r);
        true
    }

    /// Unlocks the reserve after a free put elements into it, and wakes its sleepers if it has
    /// any (`wake_up(&pool->wait)`, MP-7).
    fn unlock_and_wake(&self, r: SpinGuard<'_, Reserve>) {
        let wake = r.waiters > 0;
        if wake {
            // Under the lock, so every registered sleeper's ticket is now out of date.
            self.wait_seq.fetch_add(1, Relaxed);
        }
        drop(r);
        if wake && let Some(platform) = self.platform() {
            platform.wake_all(&self.wait_seq);
            self.stats.wakeups.fetch_add(1, Relaxed);
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

/// The `might_sleep` report for a sleeping mempool call in atomic context.
fn report_might_sleep(platform: &dyn Platform, caller: &Location<'_>) {
    platform.with_task(&mut |task| {
        platform.log(
            Level::Err,
            format_args!(
                "BUG: sleeping function called from invalid context at {}:{}\nin_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {}, name: {}\npreempt_count: 1, expected: 0",
                caller.file(),
                caller.line(),
                task.pid,
                task.comm,
            ),
        );
    });
}
