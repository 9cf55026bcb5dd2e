//! Memory pools from C (`linux/mempool.h`): `mempool_create`/`_node`, `mempool_destroy`,
//! `mempool_init`/`mempool_exit`, `mempool_alloc`, `mempool_alloc_preallocated`,
//! `mempool_free`, the newest kernel's `mempool_alloc_bulk`/`mempool_free_bulk`,
//! `mempool_resize` (and the book's 3-argument form, `mempool_resize_gfp`).
//! The kernel's callback pairs for slab, kmalloc and page pools are in
//! [`crate::mempool_helpers`].
//!
//! # Two structures per pool
//! C sees the kernel's `mempool_t` ([`mempool_t`], field for field, so seed 003 can read
//! `pool->min_nr`); the pool itself is a core `Mempool`, made over the machine's page
//! allocator. `POOLS` maps the C structure's address to the core pool; every call looks the C
//! pointer up there first, so NULL and pointers that are not live pools are reported in the
//! kernel's words and never dereferenced. After each call the C structure's `min_nr` and
//! `curr_nr` are brought up to date; `alloc`, `free` and `pool_data` are what C passed;
//! `elements` is non-NULL while the pool is initialised (so `mempool_initialized` works) but
//! opaque: the reserve lives in the core pool. `mempool_create` takes the C structure from
//! kmalloc, as the kernel does; `mempool_init` uses the caller's.
//!
//! # Helper pools and custom pools
//! A pool whose callbacks are one of the ABI's helper pairs becomes the core's helper pool of
//! that kind, as the Rust API's helper pools are, so mempool debugging poisons its reserve and
//! checks its frees (MP-13, TST-16; see [`crate::mempool_helpers`] for how pairs are
//! recognised). Any other pool is the core's custom pool over the caller's callbacks.
//!
//! # Callbacks
//! The core calls `alloc_fn`/`free_fn` with no lock held (not its reserve lock, not
//! `POOLS`), so a callback may `printk`, `kmalloc` or use another pool; C code does not
//! unwind. Lock order: `POOLS` is a leaf.

use std::collections::HashMap;
use std::ffi::{c_int, c_uint, c_void};
use std::mem::size_of;
use std::panic::Location;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{LazyLock, PoisonError, RwLock};

use kmem::mempool::{Mempool, MempoolAllocFn, MempoolFreeFn, ResizeError};
use kmem::{Gfp, Machine};
use kmem_core::gfp::GFP_KERNEL;
use kmem_core::mempool::{self as core_pool, HelperPair, NUMA_NO_NODE};

use crate::boundary::{ffi_boundary, report_bad_pointer, report_null};
use crate::context::SPINLOCK_MAGIC;
use crate::mempool_helpers::helper_pair;
use crate::pages::gfp_t;

/// `-EINVAL`.
const EINVAL: c_int = 22;
/// `-ENOMEM`.
const ENOMEM: c_int = 12;

/// `spinlock_t` as the headers lay it out (`CONFIG_DEBUG_SPINLOCK` fields).
#[repr(C)]
#[derive(Debug)]
struct CSpinlock {
    raw_lock: u32,
    magic: u32,
    owner_cpu: i32,
    owner: i32,
}

impl CSpinlock {
    const UNLOCKED: Self = Self { raw_lock: 0, magic: SPINLOCK_MAGIC, owner_cpu: -1, owner: -1 };
}

/// `struct list_head`.
#[repr(C)]
#[derive(Debug)]
struct ListHead {
    next: *mut ListHead,
    prev: *mut ListHead,
}

/// `wait_queue_head_t`.
#[repr(C)]
#[derive(Debug)]
struct WaitQueueHead {
    lock: CSpinlock,
    head: ListHead,
}

/// The kernel's `mempool_t`, as `linux/mempool.h` declares it.
#[repr(C)]
#[derive(Debug)]
pub struct mempool_t {
    lock: CSpinlock,
    min_nr: c_int,
    curr_nr: c_int,
    elements: *mut *mut c_void,
    pool_data: *mut c_void,
    alloc: Option<MempoolAllocFn>,
    free: Option<MempoolFreeFn>,
    wait: WaitQueueHead,
}

// The header's layout on LP64 (checked from C too, in tests/c/mempool.c).
const _: () = assert!(size_of::<mempool_t>() == 88);

/// A pool C holds.
struct PoolEntry {
    /// The core pool (from the core's `mempool_create_node`); `None` after `mempool_exit` of a
    /// pool `mempool_create` made, whose structure stays allocated until `mempool_destroy`.
    pool: Option<NonNull<Mempool>>,
    /// The C structure came from `mempool_create` (kmalloc), not the caller (`mempool_init`).
    kmalloced: bool,
    /// The cache of a slab helper pool (its C address), which must outlive the pool; 0 for
    /// other pools.
    slab_cache: usize,
}

// SAFETY: `Mempool` is `Send + Sync`; the entry only carries its address.
unsafe impl Send for PoolEntry {}
// SAFETY: As above.
unsafe impl Sync for PoolEntry {}

/// The live pools C holds, by the address of their `mempool_t`.
static POOLS: LazyLock<RwLock<HashMap<usize, PoolEntry>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// The addresses of the last [`DESTROYED_KEPT`] structures `mempool_destroy` freed (an address
/// leaves when a new pool is built there), so a second destroy is named as one.
static DESTROYED: LazyLock<std::sync::Mutex<std::collections::VecDeque<usize>>> = LazyLock::new(Default::default);
const DESTROYED_KEPT: usize = 64;

/// Whether `c` is a structure `mempool_destroy` freed recently (and nothing was built there
/// since).
fn was_destroyed(c: *mut mempool_t) -> bool {
    DESTROYED.lock().unwrap_or_else(PoisonError::into_inner).contains(&(c as usize))
}

/// Every element in the reserve of a live C pool (kmemleak's scan counts them as referenced:
/// the kernel's pool refers to them from its `elements` array, which kmemleak scans).
pub(crate) fn reserved_elements() -> Vec<usize> {
    let pools = POOLS.read().unwrap_or_else(PoisonError::into_inner);
    let mut out = Vec::new();
    for pool in pools.values().filter_map(|e| e.pool) {
        // SAFETY: A registered pool is live until its entry leaves `POOLS`, which the read lock
        // held here prevents.
        unsafe { pool.as_ref() }.for_each_reserved(|e| out.push(e.as_ptr() as usize));
    }
    out
}

/// A live C pool that is a slab helper pool over the cache at `cache` (a C `struct
/// kmem_cache *`), if any: `kmem_cache_destroy` refuses such a cache.
pub(crate) fn pool_over_cache(cache: *const c_void) -> Option<*mut mempool_t> {
    let pools = POOLS.read().unwrap_or_else(PoisonError::into_inner);
    pools.iter().find(|(_, e)| e.slab_cache == cache as usize).map(|(&c, _)| c as *mut mempool_t)
}

/// The core pool behind a C `mempool_t *`, reporting NULL and pointers that are not live pools.
#[track_caller]
fn checked_pool<'a>(m: &Machine, export: &str, pool: *mut mempool_t) -> Option<&'a Mempool> {
    let caller = Location::caller();
    if pool.is_null() {
        report_null(m, export, "mempool_t pointer", caller);
        return None;
    }
    let found = POOLS.read().unwrap_or_else(PoisonError::into_inner).get(&(pool as usize)).map(|e| e.pool);
    match found {
        // SAFETY: Registered pools are live until `mempool_destroy`/`mempool_exit` unregisters
        // them; using one concurrently with its destruction is the caller's bug, as in C.
        Some(Some(p)) => Some(unsafe { p.as_ref() }),
        Some(None) => {
            report_gone(m, export, pool, "after mempool_exit (no elements array)", caller);
            None
        }
        None if was_destroyed(pool) => {
            report_gone(m, export, pool, "after mempool_destroy freed it", caller);
            None
        }
        None => {
            report_bad_pointer(m, export, "mempool_t pointer", pool as usize, caller);
            None
        }
    }
}

/// A pool used after `mempool_exit` or `mempool_destroy`: in the kernel, a NULL `elements` or
/// freed memory. Reported and ignored.
fn report_gone(m: &Machine, export: &str, pool: *mut mempool_t, when: &str, caller: &Location<'_>) {
    use kmem_core::platform::Platform as _;
    m.printk(kmem::Level::Alert, &format!("BUG: kmem: {export}() called with mempool_t {pool:p} {when}; ignored\n"));
    m.platform().dump_stack(caller);
}

/// Copies the core pool's counts into the C structure (relaxed atomic stores: C readers read
/// them racily, as in the kernel). The copy is made under the pool's lock, so copies by calls
/// racing on two threads end in the order of the changes, and once they are over the mirror
/// holds the last counts; a call that changed nothing (the mirror already agrees, as after
/// every `mempool_alloc` served by `alloc_fn`) takes no lock.
fn sync_counts(c: *mut mempool_t, pool: &Mempool) {
    let as_int = |n: usize| c_int::try_from(n).unwrap_or(c_int::MAX);
    // SAFETY: `c` is a registered, live `mempool_t` (C's storage, aligned for `int`); the
    // fields are only written through these atomics while the pool is registered.
    let (min_nr, curr_nr) =
        unsafe { (AtomicI32::from_ptr(&raw mut (*c).min_nr), AtomicI32::from_ptr(&raw mut (*c).curr_nr)) };
    let agrees = |min: usize, curr: usize| {
        min_nr.load(Ordering::Relaxed) == as_int(min) && curr_nr.load(Ordering::Relaxed) == as_int(curr)
    };
    if agrees(pool.min_nr(), pool.curr_nr()) {
        return;
    }
    pool.with_counts(|min, curr| {
        min_nr.store(as_int(min), Ordering::Relaxed);
        curr_nr.store(as_int(curr), Ordering::Relaxed);
    });
}

/// Builds the core pool and fills and registers the C structure at `c`; false (after giving
/// back every element) when the reserve could not be filled.
///
/// # Safety
/// `c` is valid for writes of a `mempool_t`, not registered, and stays in place until
/// unregistered; the callbacks may be called from any thread with `pool_data`.
#[expect(clippy::too_many_arguments, reason = "mempool_create_node's arguments plus the C structure")]
unsafe fn build(
    m: &'static Machine,
    c: NonNull<mempool_t>,
    kmalloced: bool,
    min_nr: usize,
    alloc_fn: MempoolAllocFn,
    free_fn: MempoolFreeFn,
    pool_data: *mut c_void,
    gfp: Gfp,
    node: i32,
) -> bool {
    let pair = helper_pair(alloc_fn, free_fn, pool_data);
    let pool = match pair {
        // SAFETY: The machine is 'static, so its allocators outlive the pool, and the cache of a
        // slab pair is a live one of this ABI, which `kmem_cache_destroy` keeps while the pool
        // is registered (`pool_over_cache`).
        Some(pair) => unsafe { core_pool::mempool_create_helper_node(&**m, min_nr, pair, gfp, node) },
        // SAFETY: The machine is 'static, so its page allocator outlives the pool; the
        // callbacks' contract is the caller's.
        None => unsafe { core_pool::mempool_create_node(m.pages(), min_nr, alloc_fn, free_fn, pool_data, gfp, node) },
    };
    let Some(pool) = pool else { return false };
    let slab_cache = match pair {
        Some(HelperPair::Slab(cache)) => cache.as_ptr() as usize,
        _ => 0,
    };
    let raw = c.as_ptr();
    // SAFETY: `c` is ours to write (caller); the wait list's head points to itself (empty).
    unsafe {
        raw.write(mempool_t {
            lock: CSpinlock::UNLOCKED,
            min_nr: 0,
            curr_nr: 0,
            elements: pool.as_ptr().cast(),
            pool_data,
            alloc: Some(alloc_fn),
            free: Some(free_fn),
            wait: WaitQueueHead {
                lock: CSpinlock::UNLOCKED,
                head: ListHead { next: ptr::null_mut(), prev: ptr::null_mut() },
            },
        });
        let head = &raw mut (*raw).wait.head;
        (*head).next = head;
        (*head).prev = head;
    }
    DESTROYED.lock().unwrap_or_else(PoisonError::into_inner).retain(|&a| a != raw as usize);
    POOLS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(raw as usize, PoolEntry { pool: Some(pool), kmalloced, slab_cache });
    // SAFETY: Just created and registered.
    let core = unsafe { pool.as_ref() };
    // Reports name the pool by the `mempool_t *` the program holds.
    core.set_shown_address(raw as usize);
    sync_counts(raw, core);
    true
}

/// Destroys the core pool behind `c` (elements still out are reported by the core), as
/// `mempool_exit` does. For `mempool_destroy` (`exit_only` false) the entry goes and the result
/// says whether the C structure came from kmalloc; for `mempool_exit` a structure `mempool_create`
/// made stays registered, exited, until its destroy. `None` if `c` is not a registered pool.
fn teardown(c: *mut mempool_t, exit_only: bool) -> Option<bool> {
    let pool = {
        let mut pools = POOLS.write().unwrap_or_else(PoisonError::into_inner);
        let entry = pools.get_mut(&(c as usize))?;
        let kmalloced = entry.kmalloced;
        let pool = entry.pool.take();
        // An exited pool holds no cache any more.
        entry.slab_cache = 0;
        if !(exit_only && kmalloced) {
            pools.remove(&(c as usize));
        }
        (pool, kmalloced)
    };
    if let Some(core) = pool.0 {
        // SAFETY: Made by the core's `mempool_create_node` and now taken out of the registry:
        // no later C call reaches it.
        unsafe { core_pool::mempool_destroy(core.as_ptr()) };
        // SAFETY: `c` was registered, so it is a live `mempool_t`; nothing refers to the core
        // pool any more.
        unsafe {
            (*c).elements = ptr::null_mut();
            (*c).curr_nr = 0;
        }
    }
    Some(pool.1)
}

/// The callbacks, or a NULL report.
#[track_caller]
fn callbacks(
    m: &Machine,
    export: &str,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
) -> Option<(MempoolAllocFn, MempoolFreeFn)> {
    match (alloc_fn, free_fn) {
        (Some(a), Some(f)) => Some((a, f)),
        (None, _) => {
            report_null(m, export, "alloc_fn", Location::caller());
            None
        }
        (_, None) => {
            report_null(m, export, "free_fn", Location::caller());
            None
        }
    }
}

/// `mempool_t *mempool_create_node(int min_nr, mempool_alloc_t *alloc_fn, mempool_free_t
/// *free_fn, void *pool_data, gfp_t gfp_mask, int nid)`: a pool with `max(min_nr, 1)` elements
/// reserved by `alloc_fn(gfp_mask, pool_data)`; NULL if any fails (those obtained go back to
/// `free_fn`).
///
/// # Safety
/// `alloc_fn` and `free_fn` may be called from any thread with `pool_data` (and `free_fn` with
/// any element `alloc_fn` returned) until the pool is destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_create_node(
    min_nr: c_int,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
    pool_data: *mut c_void,
    gfp_mask: gfp_t,
    nid: c_int,
) -> *mut mempool_t {
    ffi_boundary("mempool_create_node", ptr::null_mut(), |m| {
        let Some((alloc_fn, free_fn)) = callbacks(m, "mempool_create_node", alloc_fn, free_fn) else {
            return ptr::null_mut();
        };
        let Some(min_nr) = checked_min_nr(m, "mempool_create", min_nr) else { return ptr::null_mut() };
        let gfp = Gfp::from_bits(gfp_mask);
        let Ok(c) = m.kzalloc(size_of::<mempool_t>(), gfp) else { return ptr::null_mut() };
        let c = c.cast::<mempool_t>();
        // SAFETY: A fresh kmalloc block of the right size (8-aligned), ours until freed; the
        // callbacks' contract is the caller's.
        if unsafe { build(m, c, true, min_nr, alloc_fn, free_fn, pool_data, gfp, nid) } {
            // The kernel's pool is a `kzalloc`'d object kmemleak tracks (not its reserve's
            // elements, which the pool's own calls of `alloc_fn` make).
            crate::kmemleak::alloc_kmalloc(c.as_ptr().cast(), size_of::<mempool_t>());
            return c.as_ptr();
        }
        // SAFETY: Ours, never registered.
        unsafe { m.kfree(c.as_ptr().cast()) };
        ptr::null_mut()
    })
}

/// `mempool_t *mempool_create(int min_nr, mempool_alloc_t *alloc_fn, mempool_free_t *free_fn,
/// void *pool_data)`: [`mempool_create_node`] with `GFP_KERNEL`.
///
/// # Safety
/// As [`mempool_create_node`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_create(
    min_nr: c_int,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
    pool_data: *mut c_void,
) -> *mut mempool_t {
    // SAFETY: Forwarded contract.
    unsafe { mempool_create_node(min_nr, alloc_fn, free_fn, pool_data, GFP_KERNEL.bits(), NUMA_NO_NODE) }
}

/// `void mempool_destroy(mempool_t *pool)`: NULL is a no-op; otherwise every reserved element
/// goes to `free_fn` and the pool is freed (elements still out are reported, not freed: those
/// taken from the reserve, or every one with `KMEM_MEMPOOL_DEBUG=1`). A pointer that is not a
/// live pool is reported and ignored; a pool `mempool_init` built in the caller's storage is
/// exited and reported (the kernel would `kfree` that storage), the storage left alone.
///
/// # Safety
/// No other thread uses the object during or after the call (the kernel's contract); a pointer
/// kmem did not hand out, or one already destroyed, is reported and ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_destroy(pool: *mut mempool_t) {
    ffi_boundary("mempool_destroy", (), |m| {
        if pool.is_null() {
            return;
        }
        match teardown(pool, false) {
            Some(true) => {
                let mut destroyed = DESTROYED.lock().unwrap_or_else(PoisonError::into_inner);
                if destroyed.len() == DESTROYED_KEPT {
                    destroyed.pop_front();
                }
                destroyed.push_back(pool as usize);
                drop(destroyed);
                crate::kmemleak::free(pool.cast_const().cast(), crate::kmemleak::Freer::Any);
                // SAFETY: The C structure `mempool_create` kmalloc'ed, now unregistered.
                unsafe { m.kfree(pool.cast_const().cast()) }
            }
            Some(false) => {
                use kmem_core::platform::Platform as _;
                // The kernel's `mempool_destroy` is `mempool_exit` plus `kfree(pool)`: the exit
                // is done; the kfree of storage kmalloc never gave warns there (or frees the
                // object the pool is embedded in). Reported; the caller's storage is left alone.
                m.printk(
                    kmem::Level::Warning,
                    &format!(
                        "WARNING: mempool_destroy: pool {pool:p} was built by mempool_init in the caller's storage, \
                         not by mempool_create: exited, not freed (use mempool_exit)\n"
                    ),
                );
                m.platform().dump_stack(Location::caller());
            }
            None if was_destroyed(pool) => {
                report_gone(
                    m,
                    "mempool_destroy",
                    pool,
                    "after mempool_destroy freed it (double destroy)",
                    Location::caller(),
                );
            }
            None => report_bad_pointer(m, "mempool_destroy", "mempool_t pointer", pool as usize, Location::caller()),
        }
    });
}

/// `int mempool_init(mempool_t *pool, int min_nr, mempool_alloc_t *alloc_fn, mempool_free_t
/// *free_fn, void *pool_data)` (4.18+): a pool in the caller's storage; 0 or `-ENOMEM`
/// (`-EINVAL` for NULL arguments or a pool that is already initialised, reported). The header
/// declares it without a prototype so the book's own `int mempool_init(void)` still compiles.
///
/// # Safety
/// `pool` is NULL or valid for writes of a `mempool_t` and stays in place until
/// `mempool_exit`; the callbacks as for [`mempool_create_node`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_init(
    pool: *mut mempool_t,
    min_nr: c_int,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
    pool_data: *mut c_void,
) -> c_int {
    // SAFETY: Forwarded contract.
    unsafe { init_node("mempool_init", pool, min_nr, alloc_fn, free_fn, pool_data, GFP_KERNEL.bits(), NUMA_NO_NODE) }
}

/// `int mempool_init_node(mempool_t *pool, int min_nr, mempool_alloc_t *alloc_fn,
/// mempool_free_t *free_fn, void *pool_data, gfp_t gfp_mask, int node_id)`: [`mempool_init`]
/// with `gfp_mask` for the reserve's elements (kmem has one node: any `node_id` is it).
///
/// # Safety
/// As [`mempool_init`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_init_node(
    pool: *mut mempool_t,
    min_nr: c_int,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
    pool_data: *mut c_void,
    gfp_mask: gfp_t,
    node_id: c_int,
) -> c_int {
    // SAFETY: Forwarded contract.
    unsafe { init_node("mempool_init_node", pool, min_nr, alloc_fn, free_fn, pool_data, gfp_mask, node_id) }
}

/// The body of [`mempool_init`] and [`mempool_init_node`] (`export` names the call in reports).
///
/// # Safety
/// As [`mempool_init`].
#[expect(clippy::too_many_arguments, reason = "mempool_init_node's arguments plus the export's name")]
unsafe fn init_node(
    export: &'static str,
    pool: *mut mempool_t,
    min_nr: c_int,
    alloc_fn: Option<MempoolAllocFn>,
    free_fn: Option<MempoolFreeFn>,
    pool_data: *mut c_void,
    gfp_mask: gfp_t,
    node_id: c_int,
) -> c_int {
    ffi_boundary(export, -ENOMEM, |m| {
        let Some(c) = NonNull::new(pool) else {
            report_null(m, export, "mempool_t pointer", Location::caller());
            return -EINVAL;
        };
        // A structure `mempool_create` made and `mempool_exit` emptied may be initialised
        // again; it stays `mempool_destroy`'s to free.
        let existing = POOLS.read().unwrap_or_else(PoisonError::into_inner).get(&(pool as usize)).map(|e| e.pool);
        let kmalloced = existing == Some(None);
        if matches!(existing, Some(Some(_))) {
            m.printk(
                kmem::Level::Warning,
                &format!("WARNING: {export}: pool {pool:p} is already initialised; call mempool_exit first\n"),
            );
            return -EINVAL;
        }
        let built = callbacks(m, export, alloc_fn, free_fn).zip(checked_min_nr(m, export, min_nr)).map(
            |((alloc_fn, free_fn), n)| {
                // SAFETY: The caller's storage, not registered (checked); callbacks: caller's
                // contract.
                unsafe { build(m, c, kmalloced, n, alloc_fn, free_fn, pool_data, Gfp::from_bits(gfp_mask), node_id) }
            },
        );
        if built == Some(true) {
            return 0;
        }
        // As the kernel's failed `mempool_init` leaves it (`mempool_exit`: `elements = NULL`):
        // not initialised, so `mempool_initialized()` is false and a cleanup that asks it first
        // does not call `mempool_exit` on garbage.
        // SAFETY: The caller's storage (not a registered pool: checked above), ours to write.
        unsafe {
            let raw = c.as_ptr();
            (&raw mut (*raw).elements).write(ptr::null_mut());
            (&raw mut (*raw).curr_nr).write(0);
            (&raw mut (*raw).min_nr).write(min_nr);
        }
        if built.is_none() { -EINVAL } else { -ENOMEM }
    })
}

/// `min_nr` as a count; a negative one is reported (no pool is made: the kernel would make a
/// one-element pool with a negative minimum that its frees compare against) and gives `None`.
fn checked_min_nr(m: &kmem::Machine, func: &str, min_nr: c_int) -> Option<usize> {
    let n = usize::try_from(min_nr).ok();
    if n.is_none() {
        m.printk(
            kmem::Level::Warning,
            &format!("WARNING: {func}: min_nr {min_nr} is negative; no pool made (-EINVAL)\n"),
        );
    }
    n
}

/// `void mempool_exit(mempool_t *pool)`: frees the reserve of a pool made by `mempool_init`
/// (or `mempool_create`, whose structure then stays allocated); a pool that is not initialised
/// is left alone, as the kernel does for a zeroed one. NULL is reported.
///
/// # Safety
/// No other thread uses the object during or after the call (the kernel's contract); a pointer
/// kmem did not hand out, or one already destroyed, is reported and ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_exit(pool: *mut mempool_t) {
    ffi_boundary("mempool_exit", (), |m| {
        if pool.is_null() {
            report_null(m, "mempool_exit", "mempool_t pointer", Location::caller());
            return;
        }
        teardown(pool, true);
    });
}

/// `void *mempool_alloc(mempool_t *pool, gfp_t gfp_mask)`: `alloc_fn` first, then the reserve,
/// then (if `gfp_mask` may sleep) a wait for a free; NULL only when it may not sleep.
#[unsafe(no_mangle)]
pub extern "C" fn mempool_alloc(pool: *mut mempool_t, gfp_mask: gfp_t) -> *mut c_void {
    ffi_boundary("mempool_alloc", ptr::null_mut(), |m| {
        let Some(p) = checked_pool(m, "mempool_alloc", pool) else { return ptr::null_mut() };
        let element = p.alloc(Gfp::from_bits(gfp_mask));
        sync_counts(pool, p);
        element
    })
}

/// `void *mempool_alloc_preallocated(mempool_t *pool)`: an element from the reserve only, or
/// NULL; never calls `alloc_fn`, never sleeps.
#[unsafe(no_mangle)]
pub extern "C" fn mempool_alloc_preallocated(pool: *mut mempool_t) -> *mut c_void {
    ffi_boundary("mempool_alloc_preallocated", ptr::null_mut(), |m| {
        let Some(p) = checked_pool(m, "mempool_alloc_preallocated", pool) else { return ptr::null_mut() };
        let element = p.alloc_preallocated();
        sync_counts(pool, p);
        element
    })
}

/// `void mempool_free(void *element, mempool_t *pool)`: refills the reserve if it is short,
/// else `free_fn`. A NULL element is ignored, as in the kernel; a NULL or foreign pool is
/// reported and the element is left alone.
///
/// # Safety
/// `element` is NULL or an element of this pool the caller no longer uses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_free(element: *mut c_void, pool: *mut mempool_t) {
    ffi_boundary("mempool_free", (), |m| {
        let Some(p) = checked_pool(m, "mempool_free", pool) else { return };
        // SAFETY: The caller gives the element up.
        unsafe { p.free(element) };
        sync_counts(pool, p);
    });
}

/// `int mempool_alloc_bulk(mempool_t *pool, void **elems, unsigned int count, unsigned int
/// allocated)`: fills every NULL slot of `elems[0..count]` (`allocated` of them are filled
/// already), with `alloc_fn` first and then from the reserve, which gives the whole remainder
/// or nothing; sleeps until it can. Returns 0, as the kernel's always does. `-ENOMEM` only in
/// atomic context, where kmem does not sleep (reported; the slots filled so far stay
/// filled); `-EINVAL` for a NULL or foreign pool, or a NULL `elems` with `count > 0`
/// (reported). An `allocated` that is not the number of filled slots is warned about once per
/// pool and the real number used.
///
/// # Safety
/// `elems` is NULL or points to `count` writable pointers, each NULL or the caller's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_alloc_bulk(
    pool: *mut mempool_t,
    elems: *mut *mut c_void,
    count: c_uint,
    allocated: c_uint,
) -> c_int {
    ffi_boundary("mempool_alloc_bulk", -ENOMEM, |m| {
        let Some(p) = checked_pool(m, "mempool_alloc_bulk", pool) else { return -EINVAL };
        let slots: &mut [*mut c_void] = match (elems.is_null(), count) {
            (_, 0) => &mut [],
            (true, _) => {
                report_null(m, "mempool_alloc_bulk", "elems array", Location::caller());
                return -EINVAL;
            }
            // SAFETY: Not NULL; `count` writable pointers (caller's contract).
            (false, n) => unsafe { std::slice::from_raw_parts_mut(elems, n as usize) },
        };
        let result = core_pool::mempool_alloc_bulk(p, slots, allocated as usize);
        sync_counts(pool, p);
        result
    })
}

/// `unsigned int mempool_free_bulk(mempool_t *pool, void **elems, unsigned int count)`: puts
/// the leading elements of `elems[0..count]` into the reserve while it is short (waking
/// sleepers) and returns how many it took; the caller frees `elems[taken..count]`. The slots
/// are left as they were (as the kernel's code leaves them). A NULL or foreign pool, or a NULL
/// `elems` with `count > 0`, is reported and 0 returned (the caller then frees them all).
///
/// # Safety
/// `elems` is NULL or points to `count` pointers, each NULL or a distinct element of this pool
/// the caller no longer uses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mempool_free_bulk(pool: *mut mempool_t, elems: *mut *mut c_void, count: c_uint) -> c_uint {
    ffi_boundary("mempool_free_bulk", 0, |m| {
        let Some(p) = checked_pool(m, "mempool_free_bulk", pool) else { return 0 };
        if count == 0 {
            return 0;
        }
        if elems.is_null() {
            report_null(m, "mempool_free_bulk", "elems array", Location::caller());
            return 0;
        }
        // SAFETY: Not NULL; `count` readable pointers (caller's contract).
        let slots = unsafe { std::slice::from_raw_parts(elems.cast_const(), count as usize) };
        // SAFETY: The caller gives the elements up.
        let taken = unsafe { core_pool::mempool_free_bulk(p, slots) };
        sync_counts(pool, p);
        c_uint::try_from(taken).unwrap_or(c_uint::MAX)
    })
}

/// `mempool_resize`'s result in the kernel's terms.
fn resize_result(pool: *mut mempool_t, p: &Mempool, r: Result<(), ResizeError>) -> c_int {
    sync_counts(pool, p);
    match r {
        Ok(()) => 0,
        Err(ResizeError::Invalid) => -EINVAL,
        Err(ResizeError::NoMemory) => -ENOMEM,
    }
}

/// `int mempool_resize(mempool_t *pool, int new_min_nr)`: 0, or `-ENOMEM`; `new_min_nr <= 0`
/// is the kernel's `BUG_ON`, reported, and `-EINVAL`.
#[unsafe(no_mangle)]
pub extern "C" fn mempool_resize(pool: *mut mempool_t, new_min_nr: c_int) -> c_int {
    mempool_resize_gfp(pool, new_min_nr, GFP_KERNEL.bits())
}

/// `int mempool_resize_gfp(mempool_t *pool, int new_min_nr, gfp_t gfp_mask)`: the book's
/// 3-argument `mempool_resize`, with `gfp_mask` for what the resize allocates.
#[unsafe(no_mangle)]
pub extern "C" fn mempool_resize_gfp(pool: *mut mempool_t, new_min_nr: c_int, gfp_mask: gfp_t) -> c_int {
    ffi_boundary("mempool_resize", -ENOMEM, |m| {
        let Some(p) = checked_pool(m, "mempool_resize", pool) else { return -EINVAL };
        let new_min_nr = usize::try_from(new_min_nr).unwrap_or(0);
        resize_result(pool, p, p.resize_gfp(new_min_nr, Gfp::from_bits(gfp_mask)))
    })
}
