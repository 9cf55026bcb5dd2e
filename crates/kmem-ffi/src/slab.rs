//! Slab caches from C (`linux/slab.h`): `kmem_cache_create` in all its forms (the kernel's
//! `__kmem_cache_create`, `__kmem_cache_create_args`, and kmem's `kmem_cache_create_dtor` behind
//! the book's 6-argument form), `kmem_cache_destroy` (returns `int`), alloc, free, bulk, shrink,
//! size and name.
//!
//! `struct kmem_cache *` is the core's `Cache` pointer. Every one handed to C is recorded in
//! `CACHES` with the number of `kmem_cache_create` calls that returned it (merging returns a
//! cache more than once), a NUL-terminated copy of its name for `kmem_cache_name`, and the C
//! constructor and destructor of a legacy cache. A pointer from C is looked up there before it
//! is used: NULL and pointers that are not live caches created through this ABI (never created,
//! or already destroyed) are reported in the kernel's words and the call does nothing.
//!
//! C constructors and destructors are called through trampolines (`ObjFn`): the modern
//! `void (*)(void *)` gets the object; the 2.6 forms `void (*)(void *, kmem_cache_t *, unsigned
//! long)` get the object, the cache and `SLAB_CTOR_CONSTRUCTOR` (plus `SLAB_CTOR_ATOMIC` when the
//! allocation that populates the slab may not sleep) or 0 for the destructor. A C function
//! cannot unwind into Rust, and no lock of this module is held while one runs (the registry lock
//! is released before the core is called), so a constructor may call `printk` or allocate from
//! other caches.
//!
//! Lock order: `CACHES` is a leaf: it is never held across a call into the core or into C (or
//! while the mempool registry is looked up).

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_uint, c_ulong, c_void};
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{LazyLock, PoisonError, RwLock};

use kmem::{Gfp, Level, Machine};
use kmem_core::platform::Platform as _;
use kmem_core::slab::flags::{SLAB_CTOR_ATOMIC, SLAB_CTOR_CONSTRUCTOR, SLAB_PANIC, SlabFlags};
use kmem_core::slab::{Cache, CacheArgs, CacheRef, ObjFn};

use crate::boundary::{array_fits, c_str, ffi_boundary, kernel_panic, report_bad_pointer, report_null};
use crate::pages::gfp_t;

/// `slab_flags_t`.
#[expect(non_camel_case_types, reason = "the kernel's type name")]
pub type slab_flags_t = c_uint;
/// `void (*ctor)(void *)`.
pub type CtorFn = unsafe extern "C" fn(obj: *mut c_void);
/// The 2.6 constructor and destructor: `void (*)(void *, kmem_cache_t *, unsigned long)`.
pub type LegacyCtorFn = unsafe extern "C" fn(obj: *mut c_void, cache: *mut c_void, flags: c_ulong);

/// `-EBUSY`, `kmem_cache_destroy`'s result when objects are still allocated.
pub const EBUSY: c_int = 16;

/// `struct kmem_cache_args` (Linux 6.12+), field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kmem_cache_args {
    /// Object alignment.
    pub align: c_uint,
    /// Start of the hardened-usercopy region.
    pub useroffset: c_uint,
    /// Size of the hardened-usercopy region.
    pub usersize: c_uint,
    /// Custom free-pointer offset, if `use_freeptr_offset`.
    pub freeptr_offset: c_uint,
    /// Whether `freeptr_offset` is used.
    pub use_freeptr_offset: bool,
    /// Constructor, or NULL.
    pub ctor: Option<CtorFn>,
    /// Capacity of the cache's prefilled sheaves (6.18), 0 for none.
    pub sheaf_capacity: c_uint,
}

/// The C side of a legacy cache's constructor and destructor; lives until the cache is freed.
struct LegacyFns {
    ctor: Option<LegacyCtorFn>,
    dtor: Option<LegacyCtorFn>,
    /// The cache, passed as the functions' second argument; set right after creation, before
    /// the first allocation can populate a slab (a cache with a constructor or destructor is
    /// never merged, so no one else allocates from it earlier).
    cache: AtomicPtr<c_void>,
}

/// What the C ABI knows about a cache it handed out.
struct CacheEntry {
    /// `kmem_cache_create` calls that returned this cache, minus destroys.
    refs: usize,
    /// The name, NUL-terminated, for `kmem_cache_name`.
    name: CString,
    /// A legacy cache's functions (from `Box::into_raw`); freed with the cache.
    legacy: *mut LegacyFns,
}

// SAFETY: `legacy` is only dereferenced by the trampolines (shared, read-only after the
// `cache` store) and freed once, under the registry's write lock, after the cache is gone.
unsafe impl Send for CacheEntry {}
// SAFETY: As above.
unsafe impl Sync for CacheEntry {}

/// The caches C holds, by address.
static CACHES: LazyLock<RwLock<HashMap<usize, CacheEntry>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

thread_local! {
    /// The GFP mask of the C allocation this thread is making, for `SLAB_CTOR_ATOMIC`.
    static ALLOC_GFP: Cell<Option<Gfp>> = const { Cell::new(None) };
}

/// Runs `f` with `gfp` recorded as this thread's allocation mask (for legacy constructors).
pub(crate) fn with_alloc_gfp<R>(gfp: Gfp, f: impl FnOnce() -> R) -> R {
    let prev = ALLOC_GFP.with(|g| g.replace(Some(gfp)));
    let r = f();
    ALLOC_GFP.with(|g| g.set(prev));
    r
}

/// The cache C names with `s`, if it is one this ABI handed out and has not destroyed.
pub(crate) fn lookup(s: *const c_void) -> Option<CacheRef> {
    let caches = CACHES.read().unwrap_or_else(PoisonError::into_inner);
    if !caches.contains_key(&(s as usize)) {
        return None;
    }
    // SAFETY: A live cache's pointer: entries are removed before the cache is freed.
    unsafe { CacheRef::from_ptr(s.cast_mut().cast::<Cache>()) }
}

/// The cache of a C `struct kmem_cache *` argument, reporting NULL and foreign pointers.
#[track_caller]
pub(crate) fn checked_cache(m: &Machine, export: &str, s: *const c_void) -> Option<CacheRef> {
    cache_arg(m, export, s, Location::caller(), lookup)
}

/// The cache of a C `struct kmem_cache *` argument for the object calls (alloc, free, bulk,
/// shrink, size): any live cache of the machine, checked by the core from the page array
/// (`Kmem::is_live_cache`: no lock, no map lookup, so C callers on many threads do not meet on
/// a shared lock word). NULL and pointers that are not a live cache are reported.
#[track_caller]
pub(crate) fn live_cache(m: &Machine, export: &str, s: *const c_void) -> Option<CacheRef> {
    cache_arg(m, export, s, Location::caller(), |s| {
        // SAFETY: Only a handle: it is checked before anything follows it.
        unsafe { CacheRef::from_ptr(s.cast_mut().cast::<Cache>()) }.filter(|&c| m.is_live_cache(c))
    })
}

/// A `struct kmem_cache *` argument through `find`, with NULL and what `find` does not know
/// reported for `export` at `caller`.
fn cache_arg(
    m: &Machine,
    export: &str,
    s: *const c_void,
    caller: &Location<'_>,
    find: impl FnOnce(*const c_void) -> Option<CacheRef>,
) -> Option<CacheRef> {
    if s.is_null() {
        report_null(m, export, "struct kmem_cache pointer", caller);
        return None;
    }
    let cache = find(s);
    if cache.is_none() {
        report_bad_pointer(m, export, "struct kmem_cache pointer", s as usize, caller);
    }
    cache
}

/// Calls a modern C constructor.
///
/// # Safety
/// `ctx` is a [`CtorFn`] (stored by [`create`], or by the bucket sets' creation) and `obj` an
/// object of its cache.
pub(crate) unsafe fn call_ctor(ctx: *const (), obj: *mut u8) {
    // SAFETY: `ctx` was made from a `CtorFn` (the caller's contract); function and
    // data pointers have the same size on every target kmem supports.
    let f = unsafe { std::mem::transmute::<*const (), CtorFn>(ctx) };
    // SAFETY: The C constructor takes any object of its cache; C code does not unwind.
    unsafe { f(obj.cast()) }
}

/// `SLAB_CTOR_CONSTRUCTOR`, plus `SLAB_CTOR_ATOMIC` when the allocation may not sleep.
fn legacy_ctor_flags() -> c_ulong {
    let atomic = match ALLOC_GFP.try_with(Cell::get).ok().flatten() {
        Some(gfp) => !gfp.allow_blocking(),
        None => kmem::context::in_atomic(),
    };
    if atomic { SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_ATOMIC } else { SLAB_CTOR_CONSTRUCTOR }
}

/// Calls a legacy C constructor with the cache and the `SLAB_CTOR_*` flags.
///
/// # Safety
/// `ctx` is a live [`LegacyFns`] with a constructor and `obj` an object of its cache.
unsafe fn call_legacy_ctor(ctx: *const (), obj: *mut u8) {
    // SAFETY: The caller's contract: it lives as long as the cache.
    let fns = unsafe { &*ctx.cast::<LegacyFns>() };
    if let Some(f) = fns.ctor {
        // SAFETY: The 2.6 constructor takes an object, its cache and flags; C does not unwind.
        unsafe { f(obj.cast(), fns.cache.load(Ordering::Acquire), legacy_ctor_flags()) }
    }
}

/// Calls a legacy C destructor (flags 0, as 2.6 did outside debugging).
///
/// # Safety
/// `ctx` is a live [`LegacyFns`] with a destructor and `obj` an object of its cache.
unsafe fn call_legacy_dtor(ctx: *const (), obj: *mut u8) {
    // SAFETY: The caller's contract: it lives as long as the cache.
    let fns = unsafe { &*ctx.cast::<LegacyFns>() };
    if let Some(f) = fns.dtor {
        // SAFETY: As in `call_legacy_ctor`.
        unsafe { f(obj.cast(), fns.cache.load(Ordering::Acquire), 0) }
    }
}

/// Creates a cache for C and records it; NULL (after the kernel's report) on failure.
/// `legacy` is freed here if the cache is not created.
#[track_caller]
fn create(
    m: &Machine,
    name: *const c_char,
    size: usize,
    args: CacheArgs,
    flags: c_ulong,
    legacy: Option<Box<LegacyFns>>,
) -> *mut c_void {
    let caller = Location::caller();
    // SL-2: with `SLAB_PANIC` every failure is `__kmem_cache_create_args`' panic() instead of
    // its warning; C has no unwinding, so the process aborts as the kernel stops.
    let panics = flags & c_ulong::from(SLAB_PANIC.bits()) != 0;
    let panic = |name: &str, errno: i32| -> ! {
        kernel_panic(m, &format!("__kmem_cache_create_args: Failed to create slab '{name}'. Error {errno}"), caller)
    };
    // SAFETY: The kernel's contract for `name`: NULL or a NUL-terminated string.
    let Some(name) = (unsafe { c_str(name) }) else {
        // `kmem_cache_sanity_check`, then `__kmem_cache_create_args`' warning.
        m.printk(Level::Err, "kmem_cache_create((null)) integrity check failed\n");
        if panics {
            panic("(null)", -22);
        }
        m.printk(Level::Warning, "__kmem_cache_create_args((null)) failed with error -22\n");
        return ptr::null_mut();
    };
    let Ok(bits) = u32::try_from(flags) else {
        if panics {
            panic(&name, -22);
        }
        m.printk(
            Level::Warning,
            &format!("__kmem_cache_create_args({name}) failed with error -22: flags {flags:#x} beyond slab_flags_t\n"),
        );
        return ptr::null_mut();
    };
    let mut args = args;
    let legacy = legacy.map(Box::into_raw);
    if let Some(fns) = legacy {
        let ctx = fns.cast_const().cast::<()>();
        // SAFETY: Just made from a `Box`; nobody else has it yet.
        let (has_ctor, has_dtor) = unsafe { ((*fns).ctor.is_some(), (*fns).dtor.is_some()) };
        // SAFETY: The trampolines call the C functions in `fns` (kept until the cache is
        // destroyed), which C callers may call from any thread, as the kernel does.
        args.ctor = has_ctor.then_some(unsafe { ObjFn::new(call_legacy_ctor, ctx) });
        // SAFETY: As above.
        args.dtor = has_dtor.then_some(unsafe { ObjFn::new(call_legacy_dtor, ctx) });
    }
    let flags = SlabFlags::from_bits(bits);
    let made = if panics {
        m.kmem_cache_create_unreported(&name, size, &args, flags).map_err(|e| panic(&name, e.errno()))
    } else {
        m.kmem_cache_create(&name, size, &args, flags)
    };
    let Ok(cache) = made else {
        if let Some(fns) = legacy {
            // SAFETY: From `Box::into_raw` above; the failed create kept no reference.
            drop(unsafe { Box::from_raw(fns) });
        }
        return ptr::null_mut();
    };
    let addr = cache.as_ptr() as usize;
    if let Some(fns) = legacy {
        // SAFETY: Alive (ours until the cache is freed); the store happens before any
        // allocation from this unmerged cache can run a constructor.
        unsafe { (*fns).cache.store(addr as *mut c_void, Ordering::Release) };
    }
    let mut caches = CACHES.write().unwrap_or_else(PoisonError::into_inner);
    let entry = caches.entry(addr).or_insert_with(|| CacheEntry {
        refs: 0,
        name: CString::new(m.cache_name(cache).unwrap_or_default().replace('\0', "")).unwrap_or_default(),
        legacy: ptr::null_mut(),
    });
    entry.refs += 1;
    if let Some(fns) = legacy {
        entry.legacy = fns;
    }
    addr as *mut c_void
}

/// `struct kmem_cache *__kmem_cache_create(const char *name, unsigned int size, unsigned int
/// align, slab_flags_t flags, void (*ctor)(void *))`: the 5-argument `kmem_cache_create`.
/// NULL on failure, with the kernel's warning in the log.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `ctor` is NULL or a function that may be called
/// from any thread with any object of the cache until it is destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __kmem_cache_create(
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: slab_flags_t,
    ctor: Option<CtorFn>,
) -> *mut c_void {
    ffi_boundary("__kmem_cache_create", ptr::null_mut(), |m| {
        // SAFETY: `call_ctor` calls the C constructor `f`, which the kernel too calls from any
        // thread at any allocation.
        let ctor = ctor.map(|f| unsafe { ObjFn::new(call_ctor, f as *const ()) });
        let args = CacheArgs { align: align as usize, ctor, ..CacheArgs::default() };
        create(m, name, size as usize, args, flags.into(), None)
    })
}

/// `struct kmem_cache *__kmem_cache_create_args(const char *name, unsigned int object_size,
/// struct kmem_cache_args *args, slab_flags_t flags)`: the 6.12+ form (`args` may be NULL).
///
/// # Safety
/// As [`__kmem_cache_create`]; `args` is NULL or points to a `struct kmem_cache_args`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __kmem_cache_create_args(
    name: *const c_char,
    object_size: c_uint,
    args: *const kmem_cache_args,
    flags: slab_flags_t,
) -> *mut c_void {
    ffi_boundary("__kmem_cache_create_args", ptr::null_mut(), |m| {
        // SAFETY: NULL or a readable `struct kmem_cache_args` (caller's contract).
        let c = unsafe { args.as_ref() }.copied();
        let args = c.map_or_else(CacheArgs::default, |a| CacheArgs {
            align: a.align as usize,
            useroffset: a.useroffset as usize,
            usersize: a.usersize as usize,
            freeptr_offset: a.use_freeptr_offset.then_some(a.freeptr_offset as usize),
            // SAFETY: As in `kmem_cache_create`: the C constructor, callable from any thread.
            ctor: a.ctor.map(|f| unsafe { ObjFn::new(call_ctor, f as *const ()) }),
            dtor: None,
            sheaf_capacity: a.sheaf_capacity,
            unlisted: false,
        });
        let args = usercopy_checked(m, object_size as usize, args, Location::caller());
        create(m, name, object_size as usize, args, flags.into(), None)
    })
}

/// CONFIG_HARDENED_USERCOPY's check in `__kmem_cache_create_args`: an offset without a size,
/// or a region that does not fit in the object, is a `WARN_ON` and no region at all.
fn usercopy_checked(m: &Machine, size: usize, args: CacheArgs, caller: &Location<'_>) -> CacheArgs {
    let (offset, len) = (args.useroffset, args.usersize);
    let bad = if len == 0 && offset != 0 {
        Some("!args->usersize && args->useroffset")
    } else if size < len || size - len < offset {
        Some("object_size < args->usersize || object_size - args->usersize < args->useroffset")
    } else {
        None
    };
    let Some(cond) = bad else { return args };
    m.printk(
        Level::Warning,
        &format!(
            "WARNING: CPU: {} at {caller} __kmem_cache_create_args: WARN_ON({cond}): useroffset {offset}, usersize {len}, object size {size}; no usercopy region\n",
            m.platform().cpu().unwrap_or(0)
        ),
    );
    m.platform().dump_stack(caller);
    CacheArgs { useroffset: 0, usersize: 0, ..args }
}

/// `struct kmem_cache *kmem_cache_create_dtor(const char *name, size_t size, size_t offset,
/// unsigned long flags, ctor, dtor)`: kmem's function behind the book's 6-argument
/// `kmem_cache_create` (and the 5-argument form with a 2.6-style constructor). `offset` is the
/// alignment, as 2.6 used it; the constructor gets `SLAB_CTOR_CONSTRUCTOR` (and
/// `SLAB_CTOR_ATOMIC` for allocations that may not sleep), the destructor runs when a slab's
/// pages go back to the page allocator.
///
/// # Safety
/// As [`__kmem_cache_create`], for both functions.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_create_dtor(
    name: *const c_char,
    size: usize,
    offset: usize,
    flags: c_ulong,
    ctor: Option<LegacyCtorFn>,
    dtor: Option<LegacyCtorFn>,
) -> *mut c_void {
    ffi_boundary("kmem_cache_create_dtor", ptr::null_mut(), |m| {
        let args = CacheArgs { align: offset, ..CacheArgs::default() };
        let legacy = (ctor.is_some() || dtor.is_some())
            .then(|| Box::new(LegacyFns { ctor, dtor, cache: AtomicPtr::new(ptr::null_mut()) }));
        create(m, name, size, args, flags, legacy)
    })
}

/// `int kmem_cache_destroy(struct kmem_cache *s)`: NULL is a no-op (0). Drops one reference;
/// the last one frees the cache. With objects still allocated the kernel's reports
/// (`BUG <cache> (...): Objects remaining on __kmem_cache_shutdown()` and `kmem_cache_destroy
/// <cache>: Slab cache still has objects`) are logged, the cache's memory is kept but the
/// handle is dead, and the result is `-EBUSY`. A pointer that is not a live cache is reported.
/// The last reference of a cache that a live slab mempool uses (`mempool_create_slab_pool`)
/// is refused: reported, `-EBUSY`, and the cache and its handle stay as they were (the kernel
/// would leave the pool with a dangling cache).
///
/// # Safety
/// No other thread uses the object during or after the call (the kernel's contract); a pointer
/// kmem did not hand out, or one already destroyed, is reported and ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_destroy(s: *mut c_void) -> c_int {
    ffi_boundary("kmem_cache_destroy", -EBUSY, |m| {
        if s.is_null() {
            return 0;
        }
        let Some(cache) = checked_cache(m, "kmem_cache_destroy", s) else { return 0 };
        // Looked up before `CACHES` is taken (both are leaves); a pool made over the cache
        // while it is being destroyed is the caller's race, as any use during a destroy.
        let pool = crate::mempool::pool_over_cache(s);
        let legacy = {
            let mut caches = CACHES.write().unwrap_or_else(PoisonError::into_inner);
            let Some(entry) = caches.get_mut(&(s as usize)) else { return 0 };
            if let Some(pool) = pool.filter(|_| entry.refs == 1) {
                drop(caches);
                report_used_by_pool(m, cache, pool.cast(), Location::caller());
                return -EBUSY;
            }
            entry.refs -= 1;
            if entry.refs > 0 { None } else { caches.remove(&(s as usize)).map(|e| e.legacy) }
        };
        // SAFETY: A live cache (checked); C gives up this reference, and when it was C's last
        // one the handle was unregistered above, so no later C call reaches it.
        let result = unsafe { m.kmem_cache_destroy(cache) };
        match result {
            Ok(()) => {
                if let Some(fns) = legacy.filter(|p| !p.is_null()) {
                    // SAFETY: From `Box::into_raw` in `create`; the cache, the only user of the
                    // trampolines' context, is gone (an unmerged cache has one reference).
                    drop(unsafe { Box::from_raw(fns) });
                }
                0
            }
            // The cache's memory is kept, so its constructor context is kept too.
            Err(_) => -EBUSY,
        }
    })
}

/// `kmem_cache_destroy` of a cache a live mempool still uses, in the words of the kernel's
/// warning for a cache that still has objects.
fn report_used_by_pool(m: &Machine, cache: CacheRef, pool: *const c_void, caller: &Location<'_>) {
    let name = m.cache_name(cache).unwrap_or_default();
    m.printk(
        Level::Warning,
        &format!(
            "WARNING: at {caller} kmem_cache_destroy\nkmem_cache_destroy {name}: Slab cache still used by mempool {pool:p}; not destroyed (mempool_destroy() the pool first)\n"
        ),
    );
    m.platform().dump_stack(caller);
}

/// `int kmem_cache_shrink(struct kmem_cache *s)`: frees the cache's empty slabs; 0.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_shrink(s: *mut c_void) -> c_int {
    ffi_boundary("kmem_cache_shrink", 0, |m| {
        live_cache(m, "kmem_cache_shrink", s).map_or(0, |cache| m.kmem_cache_shrink(cache))
    })
}

/// `unsigned int kmem_cache_size(struct kmem_cache *s)`: the object size the cache was
/// created with (0 for a bad pointer, reported).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_size(s: *mut c_void) -> c_uint {
    ffi_boundary("kmem_cache_size", 0, |m| {
        live_cache(m, "kmem_cache_size", s).map_or(0, |cache| m.cache(cache).map_or(0, |c| c.object_size() as c_uint))
    })
}

/// `const char *kmem_cache_name(struct kmem_cache *s)`: the cache's name, valid until the
/// cache is destroyed (NULL for a bad pointer, reported).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_name(s: *mut c_void) -> *const c_char {
    ffi_boundary("kmem_cache_name", ptr::null(), |m| {
        checked_cache(m, "kmem_cache_name", s);
        let caches = CACHES.read().unwrap_or_else(PoisonError::into_inner);
        // The `CString`'s buffer stays where it is while the entry lives.
        caches.get(&(s as usize)).map_or(ptr::null(), |e| e.name.as_ptr())
    })
}

/// `void *kmem_cache_alloc(struct kmem_cache *s, gfp_t flags)`: an object, or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_alloc(s: *mut c_void, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kmem_cache_alloc", ptr::null_mut(), |m| {
        let Some(cache) = live_cache(m, "kmem_cache_alloc", s) else { return ptr::null_mut() };
        let gfp = Gfp::from_bits(flags);
        // SAFETY: `live_cache` found a live cache of this (the only) machine; a destroy racing
        // with this call is C's bug, as in the kernel.
        let p = with_alloc_gfp(gfp, || unsafe { m.kmem_cache_alloc_unchecked(cache, gfp) })
            .map_or(ptr::null_mut(), |p| p.as_ptr().cast());
        crate::kmemleak::alloc_object(m, cache, p);
        p
    })
}

/// `void kmem_cache_free(struct kmem_cache *s, void *objp)`: NULL `objp` is ignored; an
/// object of another cache is freed to its own with the kernel's `Wrong slab cache` warning;
/// a pointer that is no object, or a double free, is reported and ignored.
///
/// # Safety
/// `objp` is NULL or an object the caller owns and no longer uses. kmem detects and reports
/// what it can of the rest (see the core's `kmem_cache_free`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free(s: *mut c_void, objp: *mut c_void) {
    crate::kmemleak::free(objp, crate::kmemleak::Freer::Kfree);
    ffi_boundary("kmem_cache_free", (), |m| {
        if let Some(cache) = live_cache(m, "kmem_cache_free", s) {
            // SAFETY: The caller gives the object up; the core checks it is one.
            unsafe { m.kmem_cache_free(cache, objp.cast()) };
        }
    });
}

/// `int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t flags, size_t size, void **p)`:
/// `size` objects into `p`, or 0 with none allocated; size 0 returns 0 at once, whatever `s`
/// and `p` are.
///
/// # Safety
/// `p` is NULL or points to `size` writable pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc_bulk(
    s: *mut c_void,
    flags: gfp_t,
    size: usize,
    p: *mut *mut c_void,
) -> c_int {
    ffi_boundary("kmem_cache_alloc_bulk", 0, |m| {
        // mm/slub.c returns before looking at the cache or the array (SL-9).
        if size == 0 {
            return 0;
        }
        let Some(cache) = live_cache(m, "kmem_cache_alloc_bulk", s) else { return 0 };
        if p.is_null() {
            report_null(m, "kmem_cache_alloc_bulk", "object array", Location::caller());
            return 0;
        }
        if !array_fits(m, "kmem_cache_alloc_bulk", "object array", size, Location::caller()) {
            return 0;
        }
        // SAFETY: Not NULL (checked); `size` writable pointers (caller's contract).
        let out = unsafe { std::slice::from_raw_parts_mut(p.cast::<*mut u8>(), size) };
        let gfp = Gfp::from_bits(flags);
        let n = with_alloc_gfp(gfp, || m.kmem_cache_alloc_bulk(cache, gfp, out));
        for &obj in &out[..n] {
            crate::kmemleak::alloc_object(m, cache, obj.cast());
        }
        c_int::try_from(n).unwrap_or(c_int::MAX)
    })
}

/// `void kmem_cache_free_bulk(struct kmem_cache *s, size_t size, void **p)`: frees every
/// object; a NULL `s` frees each to its own cache (`kfree_bulk`). Size 0 does nothing,
/// whatever `s` and `p` are.
///
/// # Safety
/// `p` is NULL or points to `size` pointers, each NULL or an object the caller gives up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free_bulk(s: *mut c_void, size: usize, p: *mut *mut c_void) {
    ffi_boundary("kmem_cache_free_bulk", (), |m| {
        // mm/slub.c returns before looking at the cache or the array (SL-9).
        if size == 0 {
            return;
        }
        let cache = if s.is_null() {
            None
        } else {
            match live_cache(m, "kmem_cache_free_bulk", s) {
                Some(c) => Some(c),
                None => return,
            }
        };
        if p.is_null() {
            report_null(m, "kmem_cache_free_bulk", "object array", Location::caller());
            return;
        }
        if !array_fits(m, "kmem_cache_free_bulk", "object array", size, Location::caller()) {
            return;
        }
        // SAFETY: Not NULL (checked); `size` readable pointers (caller's contract).
        let objs = unsafe { std::slice::from_raw_parts(p.cast::<*mut u8>().cast_const(), size) };
        for &obj in objs {
            crate::kmemleak::free(obj.cast(), crate::kmemleak::Freer::Kfree);
        }
        // SAFETY: The caller gives every object up; the core checks each.
        unsafe { m.kmem_cache_free_bulk(cache, objs) };
    });
}
