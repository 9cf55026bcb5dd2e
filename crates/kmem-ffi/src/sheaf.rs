//! Prefilled sheaves from C (`linux/slab.h`, Linux 6.18+): `kmem_cache_prefill_sheaf`,
//! `kmem_cache_alloc_from_sheaf`, `kmem_cache_refill_sheaf`, `kmem_cache_return_sheaf` and
//! `kmem_cache_sheaf_size`, over the core's (`kmem_core::slab::sheaf`).
//!
//! `struct slab_sheaf *` is the core's `SlabSheaf` pointer, opaque to C. Every sheaf handed to
//! C is recorded in `SHEAVES` until it is returned (or replaced by a refill), so a pointer
//! that is not a live sheaf — never prefilled, already returned, or garbage — is reported in
//! the kernel's words and the call does nothing, where the kernel would follow it.
//!
//! Lock order: `SHEAVES` is a leaf: never held across a call into the core.

use std::collections::HashSet;
use std::ffi::{c_int, c_uint, c_void};
use std::panic::Location;
use std::ptr::{self, NonNull};
use std::sync::{LazyLock, PoisonError, RwLock};

use kmem::{Gfp, Machine};
use kmem_core::slab::{CacheRef, SlabSheaf};

use crate::boundary::{ffi_boundary, report_bad_pointer, report_null};
use crate::pages::gfp_t;
use crate::slab::{live_cache, with_alloc_gfp};

/// `EINVAL`.
const EINVAL: c_int = 22;

/// Addresses of the sheaves C holds.
static SHEAVES: LazyLock<RwLock<HashSet<usize>>> = LazyLock::new(|| RwLock::new(HashSet::new()));

fn record(sheaf: NonNull<SlabSheaf>) {
    SHEAVES.write().unwrap_or_else(PoisonError::into_inner).insert(sheaf.as_ptr() as usize);
}

/// Takes `sheaf` off the record; false if it was not on it.
fn forget(sheaf: *mut c_void) -> bool {
    SHEAVES.write().unwrap_or_else(PoisonError::into_inner).remove(&(sheaf as usize))
}

/// The sheaf C names with `sheaf`, if it holds it; NULL and other pointers are reported.
#[track_caller]
fn held_sheaf(m: &Machine, export: &str, sheaf: *mut c_void) -> Option<NonNull<SlabSheaf>> {
    let caller = Location::caller();
    let Some(p) = NonNull::new(sheaf.cast::<SlabSheaf>()) else {
        report_null(m, export, "sheaf", caller);
        return None;
    };
    if !SHEAVES.read().unwrap_or_else(PoisonError::into_inner).contains(&(sheaf as usize)) {
        report_bad_pointer(m, export, "sheaf", sheaf as usize, caller);
        return None;
    }
    Some(p)
}

/// The cache and sheaf arguments of a call on a held sheaf.
#[track_caller]
fn args(m: &Machine, export: &str, s: *mut c_void, sheaf: *mut c_void) -> Option<(CacheRef, NonNull<SlabSheaf>)> {
    let cache = live_cache(m, export, s)?;
    Some((cache, held_sheaf(m, export, sheaf)?))
}

/// `struct slab_sheaf *kmem_cache_prefill_sheaf(struct kmem_cache *s, gfp_t gfp, unsigned int
/// size)`: a sheaf holding at least `size` objects of `s`, or NULL.
///
/// # Safety
/// `s` is NULL or a pointer this ABI may look up (any value: it is checked before use).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_prefill_sheaf(s: *mut c_void, gfp: gfp_t, size: c_uint) -> *mut c_void {
    ffi_boundary("kmem_cache_prefill_sheaf", ptr::null_mut(), |m| {
        let Some(cache) = live_cache(m, "kmem_cache_prefill_sheaf", s) else { return ptr::null_mut() };
        let gfp = Gfp::from_bits(gfp);
        let Some(sheaf) = with_alloc_gfp(gfp, || m.kmem_cache_prefill_sheaf(cache, gfp, size)) else {
            return ptr::null_mut();
        };
        record(sheaf);
        sheaf.as_ptr().cast()
    })
}

/// `void *kmem_cache_alloc_from_sheaf(struct kmem_cache *s, gfp_t gfp, struct slab_sheaf
/// *sheaf)`: the sheaf's last object, or NULL once it is empty.
///
/// # Safety
/// `sheaf` is not used by another thread during the call (the kernel's contract); any pointer
/// value is checked against the sheaves C holds.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc_from_sheaf(s: *mut c_void, gfp: gfp_t, sheaf: *mut c_void) -> *mut c_void {
    ffi_boundary("kmem_cache_alloc_from_sheaf", ptr::null_mut(), |m| {
        let Some((cache, sheaf)) = args(m, "kmem_cache_alloc_from_sheaf", s, sheaf) else { return ptr::null_mut() };
        // SAFETY: A sheaf C holds (recorded), used by this thread alone (caller's contract).
        let p = unsafe { m.kmem_cache_alloc_from_sheaf(cache, Gfp::from_bits(gfp), sheaf) }.cast();
        crate::kmemleak::alloc_object(m, cache, p);
        p
    })
}

/// `int kmem_cache_refill_sheaf(struct kmem_cache *s, gfp_t gfp, struct slab_sheaf **sheafp,
/// unsigned int size)`: 0, `-EINVAL` for a NULL `sheafp` or `*sheafp`, or `-ENOMEM` with the
/// sheaf as it was.
///
/// # Safety
/// `sheafp` is NULL or points to a readable and writable `struct slab_sheaf *`; the sheaf is
/// not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_refill_sheaf(
    s: *mut c_void,
    gfp: gfp_t,
    sheafp: *mut *mut c_void,
    size: c_uint,
) -> c_int {
    ffi_boundary("kmem_cache_refill_sheaf", -EINVAL, |m| {
        // SAFETY: NULL or a readable pointer (caller's contract).
        let Some(&cur) = (unsafe { sheafp.as_ref() }) else { return -EINVAL };
        if cur.is_null() {
            return -EINVAL;
        }
        let Some((cache, sheaf)) = args(m, "kmem_cache_refill_sheaf", s, cur) else { return -EINVAL };
        let gfp = Gfp::from_bits(gfp);
        let mut slot = Some(sheaf);
        // SAFETY: A sheaf C holds (recorded), used by this thread alone (caller's contract).
        let r = with_alloc_gfp(gfp, || unsafe { m.kmem_cache_refill_sheaf(cache, gfp, &mut slot, size) });
        if let Err(e) = r {
            return e.errno();
        }
        let new = slot.expect("a refill keeps a sheaf");
        if new != sheaf {
            forget(cur);
            record(new);
            // SAFETY: Writable (caller's contract).
            unsafe { *sheafp = new.as_ptr().cast() };
        }
        0
    })
}

/// `void kmem_cache_return_sheaf(struct kmem_cache *s, gfp_t gfp, struct slab_sheaf *sheaf)`:
/// gives the sheaf and its remaining objects back.
///
/// # Safety
/// The sheaf is not used by another thread during the call, nor by anyone after it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_return_sheaf(s: *mut c_void, gfp: gfp_t, sheaf: *mut c_void) {
    ffi_boundary("kmem_cache_return_sheaf", (), |m| {
        let Some((cache, held)) = args(m, "kmem_cache_return_sheaf", s, sheaf) else { return };
        // Off the record first, and only once: of two threads returning the same sheaf at once
        // (a caller's bug), the second is refused here instead of freeing it again.
        if !forget(sheaf) {
            report_bad_pointer(m, "kmem_cache_return_sheaf", "sheaf", sheaf as usize, Location::caller());
            return;
        }
        let gfp = Gfp::from_bits(gfp);
        // SAFETY: C gives up a sheaf it held; it is off the record, so no later call uses it.
        if !with_alloc_gfp(gfp, || unsafe { m.kmem_cache_return_sheaf(cache, gfp, held) }) {
            // Refused (another cache's sheaf, reported): it is still C's.
            record(held);
        }
    })
}

/// `unsigned int kmem_cache_sheaf_size(struct slab_sheaf *sheaf)`: objects the sheaf holds
/// (0 for a pointer that is not a sheaf C holds, reported).
///
/// # Safety
/// The sheaf is not changed by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_sheaf_size(sheaf: *mut c_void) -> c_uint {
    ffi_boundary("kmem_cache_sheaf_size", 0, |m| {
        let Some(sheaf) = held_sheaf(m, "kmem_cache_sheaf_size", sheaf) else { return 0 };
        // SAFETY: A live sheaf (recorded).
        unsafe { m.kmem_cache_sheaf_size(sheaf) }
    })
}
