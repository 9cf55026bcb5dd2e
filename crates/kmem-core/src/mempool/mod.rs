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
//! anything goes back to the backing allocator.
//!
//! kmem-core has no heap, so the pool structure ([`mempool_create`]) and its element array
//! come from a [`PoolEnv`] (the page allocator implements it), or the structure is the
//! caller's ([`mempool_init`]). Page pools are in [`helpers`], slab and kmalloc pools in
//! [`slab_helpers`].
//!
//! # Invariants
//! - `curr_nr <= capacity` of the element array and `curr_nr <= max(min_nr, 1)`; slots
//!   `0..curr_nr` hold elements, the top of the stack is `curr_nr - 1`.
//! - `curr_nr` and `min_nr` change only under `reserve`'s lock; `mempool_free` reads them
//!   without it (a racy hint re-checked under the lock, as the kernel does).
//! - `outstanding` = elements handed out by `alloc`/`alloc_preallocated` minus elements passed
//!   to `free`; `mempool_exit` reports a non-zero value instead of trusting it.
//!
//! Lock order: the pool's `reserve` lock is a leaf. No callback (`alloc_fn`, `free_fn`), no
//! [`PoolEnv`] call and no sleep happens while it is held.

pub mod helpers;
mod lifecycle;
pub mod poison;
pub mod slab_helpers;
mod stack;

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, fence};

use crate::gfp::{
    __GFP_DIRECT_RECLAIM, __GFP_IO, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, __GFP_ZERO, GFP_KERNEL, Gfp,
};
use crate::platform::{Level, Platform};
use crate::sync::SpinLock;
use crate::waitq::WaitQueue;
use stack::Stack;

pub use helpers::{
    PoolHelperData, mempool_alloc_pages, mempool_create_page_pool, mempool_free_pages, mempool_helper_arg,
    mempool_init_page_pool,
};
pub(crate) use lifecycle::{PoolData, create_with, init_with};
pub use lifecycle::{
    mempool_alloc, mempool_alloc_preallocated, mempool_create, mempool_create_node, mempool_destroy, mempool_exit,
    mempool_free, mempool_init, mempool_init_node, mempool_resize,
};
pub use slab_helpers::{
    mempool_alloc_slab, mempool_create_kmalloc_pool, mempool_create_slab_pool, mempool_free_slab,
    mempool_init_kmalloc_pool, mempool_init_slab_pool, mempool_kfree, mempool_kmalloc,
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
/// into a mempool.
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
    /// Elements taken from the reserve by `mempool_alloc`/`mempool_alloc_preallocated`.
    pub reserve_allocs: AtomicUsize,
}

/// `mempool_t`. Build one with [`mempool_create`] (memory from the [`PoolEnv`]) or
/// [`mempool_init`] (caller's storage); it must not move while initialised.
pub struct Mempool {
    reserve: SpinLock<Stack>,
    curr_nr: AtomicUsize,
    min_nr: AtomicUsize,
    outstanding: AtomicIsize,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
    pool_data: *mut c_void,
    wait: WaitQueue,
    env: Option<NonNull<dyn PoolEnv>>,
    /// Data owned by the pool for the helper pairs (`helpers`): `pool_data` points here.
    helper: helpers::PoolHelperData,
    /// Where an element's bytes are (helper pairs only): what poisoning needs.
    span_fn: Option<poison::ElementSpanFn>,
    /// Debug poisoning of reserved elements is on (changed under `reserve`'s lock).
    poison: AtomicBool,
    /// Allocated by `mempool_create` (so `mempool_destroy` frees the structure too).
    owned: bool,
    zero_warned: AtomicBool,
    stats: MempoolStats,
}

// SAFETY: Everything `&Mempool` mutates is atomic or behind `reserve`'s lock. The creator
// promised (unsafe `mempool_init`/`mempool_create`) that the callbacks may be called from any
// thread with `pool_data`, and `PoolEnv: Sync`.
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
            reserve: SpinLock::new(Stack::EMPTY),
            curr_nr: AtomicUsize::new(0),
            min_nr: AtomicUsize::new(0),
            outstanding: AtomicIsize::new(0),
            alloc_fn: None,
            free_fn: None,
            pool_data: ptr::null_mut(),
            wait: WaitQueue::new(),
            env: None,
            helper: helpers::PoolHelperData { allocator: ptr::null(), arg: 0 },
            span_fn: None,
            poison: AtomicBool::new(false),
            owned: false,
            zero_warned: AtomicBool::new(false),
            stats: MempoolStats {
                sleeps: AtomicUsize::new(0),
                wakeups: AtomicUsize::new(0),
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

    /// `pool->pool_data`.
    pub fn pool_data(&self) -> *mut c_void {
        self.pool_data
    }

    /// `mempool_initialized`: the pool has an element array.
    pub fn is_initialized(&self) -> bool {
        self.reserve.lock().capacity() > 0
    }

    /// `mempool_is_saturated`: the reserve is full (`curr_nr >= min_nr`).
    pub fn is_saturated(&self) -> bool {
        self.curr_nr() >= self.min_nr()
    }

    /// Elements handed out and not yet freed (kmem's bookkeeping; the kernel keeps none).
    pub fn outstanding(&self) -> isize {
        self.outstanding.load(Relaxed)
    }

    /// Slow-path counters.
    pub fn stats(&self) -> &MempoolStats {
        &self.stats
    }

    fn env(&self) -> Option<&dyn PoolEnv> {
        // SAFETY: The creator promised the environment outlives the pool (`mempool_init_node`).
        self.env.map(|e| unsafe { e.as_ref() })
    }

    /// Calls the backing allocator.
    fn backing_alloc(&self, gfp: Gfp) -> *mut c_void {
        match self.alloc_fn {
            // SAFETY: The creator promised `alloc_fn` may be called with `pool_data` from any thread.
            Some(f) => unsafe { f(gfp, self.pool_data) },
            None => ptr::null_mut(),
        }
    }

    /// Calls the backing free function.
    fn backing_free(&self, element: *mut c_void) {
        if let Some(f) = self.free_fn {
            // SAFETY: `element` came from `alloc_fn` (the pool's callers promise so), and the
            // creator promised `free_fn` may be called with it and `pool_data` from any thread.
            unsafe { f(element, self.pool_data) }
        }
    }

    /// Pops the top of the reserve, if any.
    #[track_caller]
    fn pop(&self) -> Option<NonNull<c_void>> {
        let mut stack = self.reserve.lock();
        let element = self.remove_element(&mut stack)?;
        drop(stack);
        // Pairs with the `Acquire` fence in `free`: whoever gets this element from us without
        // synchronising sees a `curr_nr` from after this removal (the kernel's `smp_wmb`).
        fence(Release);
        Some(element)
    }

    /// `remove_element`: takes the top element (checking its poison if that is on). Called
    /// with the lock held (`stack` is the locked array).
    #[track_caller]
    fn remove_element(&self, stack: &mut Stack) -> Option<NonNull<c_void>> {
        let curr = self.curr_nr.load(Relaxed);
        if curr == 0 {
            return None;
        }
        let element = stack.get(curr - 1);
        // INVARIANT: Slot `curr - 1` is no longer counted, so it no longer holds an element.
        self.curr_nr.store(curr - 1, Relaxed);
        if self.poison.load(Relaxed)
            && let Some(span) = self.span(element)
            && let Some(env) = self.env()
        {
            // SAFETY: The element just left the reserve: only we use its memory.
            unsafe { poison::check(env.platform(), ptr::from_ref(self).cast(), span, curr - 1, Location::caller()) };
        }
        Some(element)
    }

    /// `add_element`: pushes `element` (poisoning it if that is on); the caller checked room.
    fn add_element(&self, stack: &mut Stack, element: NonNull<c_void>) {
        let curr = self.curr_nr.load(Relaxed);
        if self.poison.load(Relaxed)
            && let Some(span) = self.span(element)
        {
            // SAFETY: The element is entering the reserve: nobody else uses its memory.
            unsafe { poison::poison(span) };
        }
        stack.set(curr, element);
        // INVARIANT: Slot `curr` now holds an element; the caller checked `curr < max(min_nr, 1)`.
        self.curr_nr.store(curr + 1, Relaxed);
    }

    fn span(&self, element: NonNull<c_void>) -> Option<(NonNull<u8>, usize)> {
        // SAFETY: `span_fn` is set only by the helper pairs, for their own elements and data.
        self.span_fn.and_then(|f| unsafe { f(element.as_ptr(), self.pool_data) })
    }

    /// Pushes `element` if the reserve is below its minimum (or empty in a zero-minimum pool);
    /// returns whether it did.
    fn push_if_short(&self, element: NonNull<c_void>) -> bool {
        let mut stack = self.reserve.lock();
        let (curr, min) = (self.curr_nr.load(Relaxed), self.min_nr.load(Relaxed));
        if curr >= min.max(1) || curr >= stack.capacity() {
            return false;
        }
        self.add_element(&mut stack, element);
        true
    }

    /// Turns debug poisoning of reserved elements on or off (MP-13; the kernel has it with
    /// `CONFIG_SLUB_DEBUG_ON`). Elements already in the reserve are poisoned at once. Returns
    /// false, changing nothing, for pools whose element memory the pool cannot find (custom
    /// callbacks; only the helper pairs can be poisoned).
    pub fn set_poisoning(&self, on: bool) -> bool {
        if self.span_fn.is_none() {
            return false;
        }
        let stack = self.reserve.lock();
        if on && !self.poison.load(Relaxed) {
            for i in 0..self.curr_nr.load(Relaxed) {
                if let Some(span) = self.span(stack.get(i)) {
                    // SAFETY: Reserved elements are used by nobody; we hold the lock.
                    unsafe { poison::poison(span) };
                }
            }
        }
        self.poison.store(on, Relaxed);
        true
    }

    /// `mempool_alloc(pool, gfp)`: an element, or NULL — which never happens when `gfp` has
    /// `__GFP_DIRECT_RECLAIM` (MP-2, MP-4, MP-5, MP-6).
    #[track_caller]
    #[inline]
    pub fn alloc(&self, gfp: Gfp) -> *mut c_void {
        let gfp = if gfp.intersects(__GFP_ZERO.union(__GFP_DIRECT_RECLAIM)) {
            self.check_gfp(gfp, Location::caller())
        } else {
            gfp
        };
        let gfp = gfp.union(__GFP_NOMEMALLOC.union(__GFP_NORETRY).union(__GFP_NOWARN));
        // The first pass neither reclaims nor does I/O: the reserve is there for that.
        let gfp_temp = gfp.difference(__GFP_DIRECT_RECLAIM.union(__GFP_IO));
        let element = self.backing_alloc(gfp_temp);
        if !element.is_null() {
            self.outstanding.fetch_add(1, Relaxed);
            return element;
        }
        self.alloc_slow(gfp, gfp_temp)
    }

    /// `VM_WARN_ON_ONCE(gfp & __GFP_ZERO)` and `might_alloc`; returns the mask to use.
    #[cold]
    #[inline(never)]
    fn check_gfp(&self, gfp: Gfp, caller: &Location<'_>) -> Gfp {
        let Some(env) = self.env() else { return gfp };
        let platform = env.platform();
        if gfp.contains(__GFP_ZERO) && !self.zero_warned.swap(true, Relaxed) {
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
            if let Some(element) = self.pop() {
                self.stats.reserve_allocs.fetch_add(1, Relaxed);
                self.outstanding.fetch_add(1, Relaxed);
                return element.as_ptr();
            }
            if gfp_temp != gfp {
                // The first pass failed and the reserve is empty: retry at once with the full mask.
                gfp_temp = gfp;
            } else if !gfp.contains(__GFP_DIRECT_RECLAIM) {
                return ptr::null_mut();
            } else {
                let Some(env) = self.env() else { return ptr::null_mut() };
                self.wait_for_free(env.platform());
            }
            let element = self.backing_alloc(gfp_temp);
            if !element.is_null() {
                self.outstanding.fetch_add(1, Relaxed);
                return element;
            }
        }
    }

    /// Sleeps until a free refills the reserve or [`MEMPOOL_WAIT_TIMEOUT_NS`] passes.
    fn wait_for_free(&self, platform: &dyn Platform) {
        let ticket = self.wait.prepare();
        // After `prepare`'s fence: either we see the refill here, or the freer sees us waiting
        // and changes the word before waking (waitq's handshake).
        if self.curr_nr.load(Relaxed) == 0 {
            self.stats.sleeps.fetch_add(1, Relaxed);
            platform.wait(self.wait.word(), ticket, MEMPOOL_WAIT_TIMEOUT_NS);
        }
        self.wait.finish();
    }

    /// `mempool_alloc_preallocated`: an element from the reserve only, or NULL; never calls
    /// `alloc_fn` and never sleeps (MP-8).
    #[track_caller]
    pub fn alloc_preallocated(&self) -> *mut c_void {
        match self.pop() {
            Some(element) => {
                self.stats.reserve_allocs.fetch_add(1, Relaxed);
                self.outstanding.fetch_add(1, Relaxed);
                element.as_ptr()
            }
            None => ptr::null_mut(),
        }
    }

    /// `mempool_free(element, pool)`: back into the reserve if it is short of `min_nr` (or
    /// empty in a zero-minimum pool), waking sleepers; otherwise to `free_fn`. NULL is ignored
    /// (MP-3, MP-7).
    ///
    /// # Safety
    /// `element` is NULL or an element `free_fn` accepts (normally one this pool handed out)
    /// that nobody uses any more.
    #[inline]
    pub unsafe fn free(&self, element: *mut c_void) {
        let Some(element) = NonNull::new(element) else { return };
        self.outstanding.fetch_sub(1, Relaxed);
        // Pairs with the `Release` fence in `pop` (the kernel's `smp_rmb`).
        fence(Acquire);
        let (curr, min) = (self.curr_nr.load(Relaxed), self.min_nr.load(Relaxed));
        if (curr < min || (min == 0 && curr == 0)) && self.push_if_short(element) {
            if self.wait.wake(|word| self.wake_sleepers(word)) {
                self.stats.wakeups.fetch_add(1, Relaxed);
            }
            return;
        }
        self.backing_free(element.as_ptr());
    }

    fn wake_sleepers(&self, word: &crate::waitq::WaitWord) {
        if let Some(env) = self.env() {
            env.platform().wake_all(word);
        }
    }

    /// `mempool_resize(pool, new_min_nr)`: shrinking frees surplus reserve elements at once;
    /// growing enlarges the array and fills it with `GFP_KERNEL` allocations as far as they
    /// succeed (later frees fill the rest). May sleep (MP-9).
    ///
    /// # Errors
    /// [`ResizeError::Invalid`] for `new_min_nr == 0` (reported as the kernel's BUG), and
    /// [`ResizeError::NoMemory`] if the larger array cannot be allocated.
    #[track_caller]
    pub fn resize(&self, new_min_nr: usize) -> Result<(), ResizeError> {
        self.resize_gfp(new_min_nr, GFP_KERNEL)
    }

    /// The 2.6-era `mempool_resize(pool, new_min_nr, gfp_mask)` the seeds use: as
    /// [`Self::resize`], with `gfp` for the new array and the new elements.
    ///
    /// # Errors
    /// As [`Self::resize`].
    #[track_caller]
    pub fn resize_gfp(&self, new_min_nr: usize, gfp: Gfp) -> Result<(), ResizeError> {
        let caller = Location::caller();
        let Some(env) = self.env() else { return Err(ResizeError::NoMemory) };
        let platform = env.platform();
        if new_min_nr == 0 {
            platform.log(
                Level::Crit,
                format_args!("kernel BUG at mm/mempool.c: mempool_resize: new_min_nr <= 0\n  at {caller}"),
            );
            return Err(ResizeError::Invalid);
        }
        if gfp.allow_blocking() && platform.in_atomic() {
            report_might_sleep(platform, caller);
        }
        let mut stack = self.reserve.lock();
        if new_min_nr <= self.min_nr.load(Relaxed) {
            while new_min_nr < self.curr_nr.load(Relaxed) {
                let element = self.remove_element(&mut stack).expect("curr_nr > new_min_nr >= 1");
                drop(stack);
                self.backing_free(element.as_ptr());
                stack = self.reserve.lock();
            }
            self.min_nr.store(new_min_nr, Relaxed);
            return Ok(());
        }
        drop(stack);
        let new = Stack::alloc(env, new_min_nr, gfp).ok_or(ResizeError::NoMemory)?;
        let mut stack = self.reserve.lock();
        if new_min_nr <= self.min_nr.load(Relaxed) {
            drop(stack);
            // SAFETY: `new` came from `Stack::alloc` on `env` and holds nothing.
            unsafe { new.free(env) };
            return Ok(()); // Raced with another resize, which does our work.
        }
        let curr = self.curr_nr.load(Relaxed);
        let mut new = new;
        for i in 0..curr {
            new.set(i, stack.get(i));
        }
        let old = core::mem::replace(&mut *stack, new);
        self.min_nr.store(new_min_nr, Relaxed);
        drop(stack);
        // SAFETY: `old` was this pool's array, allocated on `env`; its elements were copied.
        unsafe { old.free(env) };
        while self.curr_nr.load(Relaxed) < self.min_nr.load(Relaxed) {
            let Some(element) = NonNull::new(self.backing_alloc(gfp)) else { break };
            if !self.push_if_short(element) {
                self.backing_free(element.as_ptr()); // Raced with frees that filled it.
                break;
            }
        }
        Ok(())
    }
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
