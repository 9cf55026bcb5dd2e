//! Building, resizing and tearing down pools (`mempool_init_node`, `mempool_create_node`,
//! `mempool_resize`, `mempool_exit`, `mempool_destroy`) and the kernel-named free functions
//! over [`Mempool`].

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use super::stack::{SLOT, Stack};
use super::{
    Mempool, MempoolAllocFn, MempoolFreeFn, NUMA_NO_NODE, PoolEnv, ResizeError, helpers, inject, poison,
    report_might_sleep,
};
use crate::AllocError;
use crate::fault::FaultPoint;
use crate::gfp::{__GFP_DIRECT_RECLAIM, GFP_KERNEL, Gfp};
use crate::platform::Level;
use crate::platform::Platform;

/// `mempool_init_node`: initialises the pool at `pool` (the caller's storage) and fills its
/// reserve with `max(min_nr, 1)` calls of `alloc_fn(gfp, pool_data)` (MP-1). On any failure
/// everything obtained goes back to `free_fn` and the pool is left exited.
///
/// # Errors
/// The element array or an element could not be allocated (`-ENOMEM`).
///
/// # Safety
/// - `pool` is valid for writes, holds no initialised pool (its old contents are overwritten,
///   not dropped), and stays in place, unused by anyone else, until [`mempool_exit`].
/// - `env` outlives the pool.
/// - `alloc_fn` and `free_fn` may be called from any thread with `pool_data` (and `free_fn`
///   with any element `alloc_fn` returned) for as long as the pool exists.
#[expect(clippy::too_many_arguments, reason = "the kernel signature of mempool_init_node")]
pub unsafe fn mempool_init_node(
    pool: NonNull<Mempool>,
    env: &(dyn PoolEnv + 'static),
    min_nr: usize,
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    pool_data: *mut c_void,
    gfp: Gfp,
    node: i32,
) -> Result<(), AllocError> {
    // SAFETY: Forwarded contract.
    unsafe { init_with(pool, env, min_nr, alloc_fn, free_fn, PoolData::External(pool_data), gfp, node) }
}

/// Where a pool's `pool_data` points.
pub(crate) enum PoolData {
    /// The creator's pointer.
    External(*mut c_void),
    /// The pool's own helper storage, holding this, and where its elements' bytes are.
    Helper(helpers::PoolHelperData, Option<poison::ElementSpanFn>),
}

/// [`mempool_init_node`] with `pool_data` given as [`PoolData`].
///
/// # Safety
/// As [`mempool_init_node`].
#[expect(clippy::too_many_arguments, reason = "the kernel signature of mempool_init_node")]
pub(crate) unsafe fn init_with(
    pool: NonNull<Mempool>,
    env: &(dyn PoolEnv + 'static),
    min_nr: usize,
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    data: PoolData,
    gfp: Gfp,
    _node: i32,
) -> Result<(), AllocError> {
    let mut value = Mempool::zeroed();
    value.min_nr = crate::sync::atomic::AtomicUsize::new(min_nr);
    value.alloc_fn = Some(alloc_fn);
    value.free_fn = Some(free_fn);
    value.env = Some(NonNull::from(env));
    value.tracking = env.debug_pools();
    // SAFETY: Only the lifetime is widened: the platform lives as long as `env` (`PoolEnv`'s
    // contract), which outlives the pool (caller); the pool drops the pointer at exit.
    let platform: &'static dyn Platform = unsafe { core::mem::transmute::<&dyn Platform, _>(env.platform()) };
    value.platform = Some(NonNull::from(platform));
    // The platform's attribute lives as long as the platform (`Platform::fault_attr`).
    value.fail_alloc = NonNull::from(platform.fault_attr(FaultPoint::FailMempoolAlloc).unwrap_or(&inject::NEVER));
    value.pool_data = match data {
        PoolData::External(p) => p,
        PoolData::Helper(helper, span_fn) => {
            value.helper = helper;
            value.span_fn = span_fn;
            // SAFETY: Only the field's address inside the caller's storage is computed.
            unsafe { ptr::addr_of_mut!((*pool.as_ptr()).helper) }.cast()
        }
    };
    // SAFETY: The caller gives us `pool` to write.
    unsafe { pool.as_ptr().write(value) };
    // SAFETY: Just initialised; the caller keeps it in place and nobody else uses it yet.
    let p = unsafe { &mut *pool.as_ptr() };
    let capacity = min_nr.max(1);
    let Some(bytes) = capacity.checked_mul(SLOT) else {
        mempool_exit(p);
        return Err(AllocError);
    };
    let Some(block) = env.alloc_meta(bytes, gfp) else {
        mempool_exit(p);
        return Err(AllocError);
    };
    p.block = Some((block, bytes));
    // SAFETY: `block` is `bytes` bytes aligned to 8, ours until `mempool_exit` frees it.
    unsafe { p.reserve.lock().stack = Stack::in_block(block.as_ptr(), capacity) };
    while p.curr_nr() < capacity {
        let Some(element) = NonNull::new(p.backing_alloc(gfp)) else {
            mempool_exit(p);
            return Err(AllocError);
        };
        let pushed = p.push_fill(element);
        debug_assert!(pushed, "a fresh pool's array has room for max(min_nr, 1) elements");
    }
    if p.tracking {
        // Mempool debugging poisons the reserve too, where the pool knows its elements' size.
        p.set_poisoning(true);
    }
    Ok(())
}

/// `mempool_init`: [`mempool_init_node`] with `GFP_KERNEL` and no node.
///
/// # Errors
/// As [`mempool_init_node`].
///
/// # Safety
/// As [`mempool_init_node`].
pub unsafe fn mempool_init(
    pool: NonNull<Mempool>,
    env: &(dyn PoolEnv + 'static),
    min_nr: usize,
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    pool_data: *mut c_void,
) -> Result<(), AllocError> {
    // SAFETY: Forwarded contract.
    unsafe { mempool_init_node(pool, env, min_nr, alloc_fn, free_fn, pool_data, GFP_KERNEL, NUMA_NO_NODE) }
}

/// `mempool_exit`: frees every reserved element with `free_fn` and the element array, and
/// leaves the pool un-initialised. A no-op on a [`Mempool::zeroed`] pool. Elements still out
/// are reported (they stay valid for whoever holds them; nothing is freed twice): with element
/// tracking every one ([`Mempool::is_tracking`]), otherwise those taken from the reserve and
/// not replaced (the 2.6 kernel's `BUG_ON(curr_nr != min_nr)`; today's kernel checks nothing).
#[track_caller]
pub fn mempool_exit(pool: &mut Mempool) {
    mempool_exit_at(pool, Location::caller());
}

/// [`mempool_exit`] with the location its report names (for an owner whose destroy runs from
/// drop glue, which has no caller location of its own).
pub fn mempool_exit_at(pool: &mut Mempool, caller: &Location<'_>) {
    while let Some(element) = pool.pop(false) {
        pool.backing_free(element.as_ptr());
    }
    let Some(env) = pool.env else { return };
    // SAFETY: The creator promised the environment outlives the pool.
    let env = unsafe { env.as_ref() };
    let out = pool.outstanding();
    if out != 0 {
        let platform = env.platform();
        let what = match (out > 0, pool.tracking) {
            (true, true) => "element(s) still allocated (leaked)",
            (true, false) => "reserve element(s) still allocated (leaked)",
            (false, _) => "element(s) more freed than allocated",
        };
        platform.log(
            Level::Warning,
            format_args!(
                "WARNING: CPU: {} at {caller} mempool_exit: pool {:p} with min_nr={} destroyed with {} {what}",
                platform.cpu().unwrap_or(0),
                pool.shown_address(),
                pool.min_nr(),
                out.unsigned_abs(),
            ),
        );
    }
    let array = core::mem::replace(&mut pool.reserve.lock().stack, Stack::EMPTY);
    // SAFETY: The array was allocated on `env` by `resize`, or lies in the first block; empty.
    unsafe { array.free(env) };
    *pool.reserve.lock() = super::Reserve::EMPTY;
    if let Some((block, bytes)) = pool.block.take() {
        // SAFETY: From `alloc_meta(bytes, _)` on `env` in `init_with`; nothing points into it
        // any more (the array is gone).
        unsafe { env.free_meta(block, bytes) };
    }
    pool.env = None;
    pool.platform = None;
    pool.fail_alloc = NonNull::from(&inject::NEVER);
    pool.alloc_fn = None;
    pool.free_fn = None;
}

/// `mempool_create_node`: a pool whose structure and array come from `env`, with its reserve
/// filled by `max(min_nr, 1)` calls of `alloc_fn(gfp, pool_data)`; `None` if any fails (after
/// everything obtained went back to `free_fn`) (MP-1).
///
/// # Safety
/// As [`mempool_init_node`] for `env` and the callbacks; the pool is used until
/// [`mempool_destroy`].
pub unsafe fn mempool_create_node(
    env: &(dyn PoolEnv + 'static),
    min_nr: usize,
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    pool_data: *mut c_void,
    gfp: Gfp,
    node: i32,
) -> Option<NonNull<Mempool>> {
    // SAFETY: The caller's contract; `pool_data` is taken as given.
    unsafe { create_with(env, min_nr, alloc_fn, free_fn, PoolData::External(pool_data), gfp, node) }
}

/// [`mempool_create_node`] with `pool_data` given as [`PoolData`].
///
/// # Safety
/// As [`mempool_create_node`].
pub(crate) unsafe fn create_with(
    env: &(dyn PoolEnv + 'static),
    min_nr: usize,
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    data: PoolData,
    gfp: Gfp,
    node: i32,
) -> Option<NonNull<Mempool>> {
    const _: () = assert!(core::mem::align_of::<Mempool>() <= 8);
    let pool = env.alloc_meta(core::mem::size_of::<Mempool>(), gfp)?.cast::<Mempool>();
    // SAFETY: `pool` is fresh, aligned memory of the right size from `env`, which stays in
    // place until `mempool_destroy`; the rest is the caller's contract.
    let result = unsafe { init_with(pool, env, min_nr, alloc_fn, free_fn, data, gfp, node) };
    // SAFETY: Initialised by `mempool_init_node` (even on failure), used by nobody else yet.
    let p = unsafe { &mut *pool.as_ptr() };
    p.owned = true;
    if result.is_err() {
        // SAFETY: From `alloc_meta` with this size; exited, so nothing refers to it.
        unsafe { env.free_meta(pool.cast(), core::mem::size_of::<Mempool>()) };
        return None;
    }
    Some(pool)
}

/// `mempool_create`: [`mempool_create_node`] with `GFP_KERNEL` and no node.
///
/// # Safety
/// As [`mempool_create_node`].
pub unsafe fn mempool_create(
    env: &(dyn PoolEnv + 'static),
    min_nr: usize,
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    pool_data: *mut c_void,
) -> Option<NonNull<Mempool>> {
    // SAFETY: Forwarded contract.
    unsafe { mempool_create_node(env, min_nr, alloc_fn, free_fn, pool_data, GFP_KERNEL, NUMA_NO_NODE) }
}

/// `mempool_destroy`: NULL is a no-op; otherwise [`mempool_exit`] and the structure itself
/// goes back to its environment (MP-10). Elements still out are reported, not freed.
///
/// # Safety
/// `pool` is NULL or came from [`mempool_create_node`] (or the helpers' create functions) and
/// is not used by anyone afterwards.
#[track_caller]
pub unsafe fn mempool_destroy(pool: *mut Mempool) {
    // SAFETY: Forwarded contract.
    unsafe { mempool_destroy_at(pool, Location::caller()) }
}

/// [`mempool_destroy`] with the location its report names ([`mempool_exit_at`]).
///
/// # Safety
/// As [`mempool_destroy`].
pub unsafe fn mempool_destroy_at(pool: *mut Mempool, caller: &Location<'_>) {
    let Some(pool) = NonNull::new(pool) else { return };
    // SAFETY: The caller hands the pool over.
    let p = unsafe { &mut *pool.as_ptr() };
    let env = p.env;
    mempool_exit_at(p, caller);
    if p.owned
        && let Some(env) = env
    {
        // SAFETY: The environment outlives the pool (creator's promise); the structure came
        // from its `alloc_meta` with this size (`owned`) and nobody uses it any more.
        unsafe { env.as_ref().free_meta(pool.cast(), core::mem::size_of::<Mempool>()) };
    }
}

/// `mempool_alloc(pool, gfp)`: see [`Mempool::alloc`].
#[track_caller]
#[inline]
pub fn mempool_alloc(pool: &Mempool, gfp: Gfp) -> *mut c_void {
    pool.alloc(gfp)
}

/// `mempool_alloc_bulk(pool, elems, count, allocated)` with `count = elems.len()`: see
/// [`Mempool::alloc_bulk`]. Returns 0, as the kernel's always does; `-ENOMEM` only where kmem
/// cannot sleep (atomic context, [`Mempool::alloc_bulk`]'s errors).
#[track_caller]
pub fn mempool_alloc_bulk(pool: &Mempool, elems: &mut [*mut c_void], allocated: usize) -> i32 {
    /// `ENOMEM`.
    const ENOMEM: i32 = 12;
    match pool.alloc_bulk(elems, allocated) {
        Ok(()) => 0,
        Err(AllocError) => -ENOMEM,
    }
}

/// `mempool_free_bulk(pool, elems, count)` with `count = elems.len()`: see
/// [`Mempool::free_bulk`]; returns how many leading elements the pool took.
///
/// # Safety
/// As [`Mempool::free_bulk`].
#[track_caller]
pub unsafe fn mempool_free_bulk(pool: &Mempool, elems: &[*mut c_void]) -> usize {
    // SAFETY: Forwarded contract.
    unsafe { pool.free_bulk(elems) }
}

/// `mempool_alloc_preallocated(pool)`: see [`Mempool::alloc_preallocated`].
pub fn mempool_alloc_preallocated(pool: &Mempool) -> *mut c_void {
    pool.alloc_preallocated()
}

/// `mempool_free(element, pool)`: see [`Mempool::free`].
///
/// # Safety
/// As [`Mempool::free`].
#[inline]
pub unsafe fn mempool_free(element: *mut c_void, pool: &Mempool) {
    // SAFETY: Forwarded contract.
    unsafe { pool.free(element) }
}

/// `mempool_resize(pool, new_min_nr)`: see [`Mempool::resize`].
///
/// # Errors
/// As [`Mempool::resize`].
#[track_caller]
pub fn mempool_resize(pool: &Mempool, new_min_nr: usize) -> Result<(), ResizeError> {
    pool.resize(new_min_nr)
}

impl Mempool {
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
        let mut gfp = gfp;
        if gfp.allow_blocking() && platform.in_atomic() {
            report_might_sleep(platform, caller);
            // As `mempool_alloc` (docs/deviations.md): go on without sleeping.
            gfp = gfp.difference(__GFP_DIRECT_RECLAIM);
        }
        let mut r = self.reserve.lock();
        if new_min_nr <= self.min_nr.load(Relaxed) {
            while new_min_nr < self.curr_nr.load(Relaxed) {
                let element = self.remove_element(&mut r).expect("curr_nr > new_min_nr >= 1");
                drop(r);
                self.backing_free(element.as_ptr());
                r = self.reserve.lock();
            }
            // Of the elements out, the smaller reserve takes back only what it lacks.
            let room = new_min_nr - self.curr_nr.load(Relaxed);
            r.out = r.out.min(room as isize);
            self.min_nr.store(new_min_nr, Relaxed);
            self.update_free_locks();
            return Ok(());
        }
        drop(r);
        let new = Stack::alloc(env, new_min_nr, gfp).ok_or(ResizeError::NoMemory)?;
        let mut r = self.reserve.lock();
        if new_min_nr <= self.min_nr.load(Relaxed) {
            drop(r);
            // SAFETY: `new` came from `Stack::alloc` on `env` and holds nothing.
            unsafe { new.free(env) };
            return Ok(()); // Raced with another resize, which does our work.
        }
        let curr = self.curr_nr.load(Relaxed);
        let mut new = new;
        for i in 0..curr {
            new.set(i, r.stack.get(i));
        }
        let old = core::mem::replace(&mut r.stack, new);
        self.min_nr.store(new_min_nr, Relaxed);
        self.update_free_locks();
        drop(r);
        // SAFETY: `old` was this pool's array, allocated on `env` (or in its first block, which
        // `free` leaves alone); its elements were copied.
        unsafe { old.free(env) };
        while self.curr_nr.load(Relaxed) < self.min_nr.load(Relaxed) {
            let Some(element) = NonNull::new(self.backing_alloc(gfp)) else { break };
            if !self.push_fill(element) {
                self.backing_free(element.as_ptr()); // Raced with frees that filled it.
                break;
            }
        }
        Ok(())
    }
}
