//! Bucket sets and the memory-cgroup slab calls from C (`linux/slab.h`): `kmem_buckets_create`,
//! `kmem_buckets_alloc`, `kmem_buckets_alloc_track_caller`, `kmem_buckets_valloc`, kmem's
//! `kmem_buckets_destroy`, `kmem_cache_alloc_lru` and `kmem_cache_charge`. The semantics are
//! the core's (`kmem_core::kmalloc::buckets`, and the slab layer's `memcg` module): kmem has no memory
//! cgroups, so `lru` is never read and a live object is always "charged".
//!
//! A `kmem_buckets *` is a boxed [`KmemBuckets`], which has the kernel's layout
//! (`struct kmem_cache *[KMALLOC_SHIFT_HIGH + 1]`, NULL where no class is), so C may read
//! `(*b)[i]` as in the kernel. Every set handed to C is recorded in `BUCKETS`; a pointer from
//! C is looked up there before it is read, so one never created (or already destroyed) is
//! reported in the kernel's words (`BUG: unable to handle page fault …`) and the call fails.
//! NULL is the kmalloc caches for the allocation calls (as in the kernel) and a no-op for
//! `kmem_buckets_destroy`.
//!
//! Lock order: `BUCKETS` is a leaf, never held across a call into the core or into C.

use std::collections::HashSet;
use std::ffi::{c_char, c_uint, c_void};
use std::panic::Location;
use std::ptr;
use std::sync::{LazyLock, PoisonError, RwLock};

use kmem::{Gfp, Machine};
use kmem_core::kmalloc::KmemBuckets;
use kmem_core::kmalloc::buckets::bucket_class_name;
use kmem_core::kmalloc::classes::kmalloc_index;
use kmem_core::slab::ObjFn;
use kmem_core::slab::flags::{SLAB_PANIC, SlabFlags};

use crate::boundary::{c_str, ffi_boundary, kernel_panic, report_bad_pointer};
use crate::pages::gfp_t;
use crate::slab::{CtorFn, call_ctor, live_cache, slab_flags_t, with_alloc_gfp};

/// The bucket sets C holds, by address (each a `Box<KmemBuckets>` leaked to C).
static BUCKETS: LazyLock<RwLock<HashSet<usize>>> = LazyLock::new(|| RwLock::new(HashSet::new()));

/// The set C names with `b` (a copy), if it is one this ABI handed out and has not destroyed;
/// a pointer that is not is reported for `export`.
#[track_caller]
fn lookup(m: &Machine, export: &str, b: *const c_void) -> Option<KmemBuckets> {
    let sets = BUCKETS.read().unwrap_or_else(PoisonError::into_inner);
    if sets.contains(&(b as usize)) {
        // SAFETY: A live set: entries are removed (under the write lock) before the box is
        // freed, and the set is never written after creation.
        return Some(unsafe { *b.cast::<KmemBuckets>() });
    }
    drop(sets);
    report_bad_pointer(m, export, "kmem_buckets pointer", b as usize, Location::caller());
    None
}

/// The name of the set `name`'s cache of class `size` (`<name>-<class>`), for reports.
fn bucket_name(name: &str, size: usize) -> String {
    format!("{name}-{}", kmalloc_index(size).map_or("?", bucket_class_name))
}

/// `kmem_buckets *kmem_buckets_create(const char *name, slab_flags_t flags, unsigned int
/// useroffset, unsigned int usersize, void (*ctor)(void *))`: a cache per kmalloc class named
/// `<name>-<class>`, `SLAB_NO_MERGE`, the usercopy window clamped per class. NULL on failure
/// (flags outside the permitted set, no memory), after the kernel's reports; the caches made
/// so far are destroyed. With `SLAB_PANIC` a failure is the kernel's `panic()`: the process
/// aborts. A NULL `name` is printed as `(null)`, as the kernel's `kasprintf` does.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `ctor` is NULL or a function that may be called
/// from any thread with any object of the set's caches until the set is destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_buckets_create(
    name: *const c_char,
    flags: slab_flags_t,
    useroffset: c_uint,
    usersize: c_uint,
    ctor: Option<CtorFn>,
) -> *mut c_void {
    ffi_boundary("kmem_buckets_create", ptr::null_mut(), |m| {
        // SAFETY: The kernel's contract for `name`: NULL or a NUL-terminated string.
        let name = unsafe { c_str(name) }.map_or_else(|| "(null)".to_owned(), |n| n.into_owned());
        // SAFETY: `call_ctor` calls the C constructor `f`, which the kernel too calls from any
        // thread at any allocation.
        let ctor = ctor.map(|f| unsafe { ObjFn::new(call_ctor, f as *const ()) });
        let flags = SlabFlags::from_bits(flags);
        let (off, len) = (useroffset as usize, usersize as usize);
        let made = if flags.intersects(SLAB_PANIC) {
            // C has no unwinding: the kernel's panic() is an abort, naming the cache.
            m.kmem_buckets_create_unreported(&name, flags, off, len, ctor).map_err(|e| {
                let msg = format!(
                    "__kmem_cache_create_args: Failed to create slab '{}'. Error {}",
                    bucket_name(&name, e.size),
                    e.error.errno()
                );
                kernel_panic(m, &msg, Location::caller())
            })
        } else {
            m.kmem_buckets_create(&name, flags, off, len, ctor)
        };
        let Ok(set) = made else { return ptr::null_mut() };
        let b = Box::into_raw(Box::new(set));
        BUCKETS.write().unwrap_or_else(PoisonError::into_inner).insert(b as usize);
        b.cast()
    })
}

/// `void kmem_buckets_destroy(kmem_buckets *b)` (kmem's; proposed upstream, not in mainline):
/// destroys every cache of the set as `kmem_cache_destroy` does (objects still allocated are
/// reported and their cache kept) and frees the set. NULL is a no-op; a pointer that is not a
/// live set is reported and ignored.
///
/// # Safety
/// No other thread uses the set during or after the call; no object of it is freed afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_buckets_destroy(b: *mut c_void) {
    ffi_boundary("kmem_buckets_destroy", (), |m| {
        if b.is_null() {
            return;
        }
        let Some(set) = lookup(m, "kmem_buckets_destroy", b) else { return };
        if !BUCKETS.write().unwrap_or_else(PoisonError::into_inner).remove(&(b as usize)) {
            return; // Another destroy of the same set got there first (C's race).
        }
        // SAFETY: From `Box::into_raw` in `kmem_buckets_create`, unregistered just above, so no
        // later call reads it.
        drop(unsafe { Box::from_raw(b.cast::<KmemBuckets>()) });
        // SAFETY: C gives the set up (this function's contract); the reports of objects still
        // allocated are the core's.
        let _ = unsafe { m.kmem_buckets_destroy(&set) };
    });
}

/// The allocation through a set: NULL `b` is the kmalloc caches.
#[track_caller]
fn buckets_alloc(m: &Machine, export: &str, b: *mut c_void, size: usize, flags: gfp_t, valloc: bool) -> *mut c_void {
    let set = if b.is_null() {
        None
    } else {
        match lookup(m, export, b) {
            Some(set) => Some(set),
            None => return ptr::null_mut(),
        }
    };
    let gfp = Gfp::from_bits(flags);
    let r = with_alloc_gfp(gfp, || {
        if valloc {
            m.kmem_buckets_valloc(set.as_ref(), size, gfp)
        } else {
            m.kmem_buckets_alloc(set.as_ref(), size, gfp)
        }
    });
    let p = r.map_or(ptr::null_mut(), |p| p.as_ptr().cast());
    crate::kmemleak::alloc_kv(m, p, size);
    p
}

/// `void *kmem_buckets_alloc(kmem_buckets *b, size_t size, gfp_t flags)`: kmalloc from the set
/// (`b` NULL: the kmalloc caches); `ZERO_SIZE_PTR` for 0, pages above 8 KiB, NULL on failure.
/// Free with `kfree`.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_buckets_alloc(b: *mut c_void, size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kmem_buckets_alloc", ptr::null_mut(), |m| {
        buckets_alloc(m, "kmem_buckets_alloc", b, size, flags, false)
    })
}

/// `void *kmem_buckets_alloc_track_caller(kmem_buckets *b, size_t size, gfp_t flags)`: as
/// [`kmem_buckets_alloc`] (the kernel records its caller's caller for slab debugging; as for
/// `kmalloc_track_caller`, kmem records this export).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_buckets_alloc_track_caller(b: *mut c_void, size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kmem_buckets_alloc_track_caller", ptr::null_mut(), |m| {
        buckets_alloc(m, "kmem_buckets_alloc_track_caller", b, size, flags, false)
    })
}

/// `void *kmem_buckets_valloc(kmem_buckets *b, size_t size, gfp_t flags)`: `kvmalloc` through
/// the set: its caches first, then vmalloc as `kvmalloc` allows. Free with `kvfree`.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_buckets_valloc(b: *mut c_void, size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kmem_buckets_valloc", ptr::null_mut(), |m| {
        buckets_alloc(m, "kmem_buckets_valloc", b, size, flags, true)
    })
}

/// `void *kmem_cache_alloc_lru(struct kmem_cache *s, struct list_lru *lru, gfp_t gfpflags)`:
/// `kmem_cache_alloc`; `lru` is never read (no memory cgroups).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_alloc_lru(s: *mut c_void, lru: *mut c_void, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kmem_cache_alloc_lru", ptr::null_mut(), |m| {
        let Some(cache) = live_cache(m, "kmem_cache_alloc_lru", s) else { return ptr::null_mut() };
        let gfp = Gfp::from_bits(flags);
        let p = with_alloc_gfp(gfp, || m.kmem_cache_alloc_lru(cache, lru.cast_const(), gfp))
            .map_or(ptr::null_mut(), |p| p.as_ptr().cast());
        crate::kmemleak::alloc_object(m, cache, p);
        p
    })
}

/// `bool kmem_cache_charge(void *objp, gfp_t gfpflags)`: true for a live slab object or large
/// kmalloc (nothing to charge without memory cgroups); anything else is reported as `krealloc`
/// reports it, and gives false.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_cache_charge(objp: *mut c_void, flags: gfp_t) -> bool {
    ffi_boundary("kmem_cache_charge", false, |m| m.kmem_cache_charge(objp.cast_const().cast(), Gfp::from_bits(flags)))
}
