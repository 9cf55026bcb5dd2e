//! The kmalloc family from C (`linux/slab.h`, `linux/string.h`): `kmalloc`, `kcalloc`,
//! `kmalloc_array`, `krealloc`, `krealloc_array`, `kfree`, `kfree_sensitive`, `ksize`,
//! `kmalloc_size_roundup`, the kvmalloc forms, and the string duplicators (`kstrdup`,
//! `kstrndup`, `kstrdup_const`, `kmemdup`, `kmemdup_nul`, `kfree_const`). `kzalloc`, `kvzalloc` and `kvcalloc`
//! are the header's inline functions over these.
//!
//! Every pointer C gives back goes through the core, which finds it by address in the memory
//! map before touching it: NULL and `ZERO_SIZE_PTR` are ignored, and a pointer kmem did not hand
//! out is reported (`kfree: ... Not a kmalloc allocation`-style, in the core's words) and
//! ignored; an immediate double free is the kernel's `set_freepointer` BUG, ignored too.
//! Failure values are the kernel's: NULL, or 0 for `ksize`.

use std::ffi::{c_char, c_void};
use std::panic::Location;
use std::ptr::{self, NonNull};

use kmem::{Gfp, Machine};
use kmem_core::kmalloc::classes;

use crate::boundary::{ffi_boundary, report_null};
use crate::kmemleak;
use crate::pages::gfp_t;

fn out(r: Result<NonNull<u8>, kmem_core::AllocError>) -> *mut c_void {
    r.map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// `void *kmalloc(size_t size, gfp_t flags)`: NULL on failure; `ZERO_SIZE_PTR` for size 0.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kmalloc", ptr::null_mut(), |m| {
        let p = out(m.kmalloc(size, Gfp::from_bits(flags)));
        kmemleak::alloc_kmalloc(p, size);
        p
    })
}

/// `void *kmalloc_array(size_t n, size_t size, gfp_t flags)`: NULL on overflow or failure.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc_array(n: usize, size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kmalloc_array", ptr::null_mut(), |m| {
        let p = out(m.kmalloc_array(n, size, Gfp::from_bits(flags)));
        kmemleak::alloc_kmalloc(p, n.saturating_mul(size));
        p
    })
}

/// `void *kcalloc(size_t n, size_t size, gfp_t flags)`: zeroed `kmalloc_array`.
#[unsafe(no_mangle)]
pub extern "C" fn kcalloc(n: usize, size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kcalloc", ptr::null_mut(), |m| {
        let p = out(m.kcalloc(n, size, Gfp::from_bits(flags)));
        kmemleak::alloc_kmalloc(p, n.saturating_mul(size));
        p
    })
}

/// `void *krealloc(const void *objp, size_t new_size, gfp_t flags)`: the same or a new
/// object with the contents; NULL on failure with `objp` untouched; size 0 frees and returns
/// `ZERO_SIZE_PTR`. A pointer kmem did not hand out is reported and NULL returned.
///
/// # Safety
/// `objp` is NULL, `ZERO_SIZE_PTR`, or a kmalloc object the caller owns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn krealloc(objp: *const c_void, new_size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("krealloc", ptr::null_mut(), |m| {
        let taken = kmemleak::take(objp, kmemleak::Freer::Kfree);
        // SAFETY: The caller's object; the core checks it is a kmalloc allocation first.
        let p = out(unsafe { m.krealloc(objp.cast_mut().cast(), new_size, Gfp::from_bits(flags)) });
        kmemleak::realloc(m, objp, taken, p, new_size);
        p
    })
}

/// `void *krealloc_array(void *p, size_t new_n, size_t new_size, gfp_t flags)`: NULL on
/// overflow (with `p` untouched) or failure.
///
/// # Safety
/// As [`krealloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn krealloc_array(p: *mut c_void, new_n: usize, new_size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("krealloc_array", ptr::null_mut(), |m| {
        let Some(bytes) = new_n.checked_mul(new_size) else { return ptr::null_mut() };
        let taken = kmemleak::take(p, kmemleak::Freer::Kfree);
        // SAFETY: As in `krealloc`.
        let q = out(unsafe { m.krealloc(p.cast(), bytes, Gfp::from_bits(flags)) });
        kmemleak::realloc(m, p, taken, q, bytes);
        q
    })
}

/// `void kfree(const void *objp)`: NULL and `ZERO_SIZE_PTR` are ignored; anything kmem did not
/// hand out is reported and ignored.
///
/// # Safety
/// `objp` is NULL or an allocation the caller gives up; kmem detects and reports what it can
/// of the rest.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kfree(objp: *const c_void) {
    kmemleak::free(objp, kmemleak::Freer::Kfree);
    // SAFETY: The caller gives the object up; the core checks it is one before freeing.
    ffi_boundary("kfree", (), |m| unsafe { m.kfree(objp.cast()) });
}

/// `void kfree_sensitive(const void *objp)`: zeroes the whole usable size, then frees.
///
/// # Safety
/// As [`kfree`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kfree_sensitive(objp: *const c_void) {
    kmemleak::free(objp, kmemleak::Freer::Kfree);
    // SAFETY: As in `kfree`; the core zeroes only an allocation it recognised.
    ffi_boundary("kfree_sensitive", (), |m| unsafe { m.kfree_sensitive(objp.cast_mut().cast()) });
}

/// `size_t ksize(const void *objp)`: the usable size (the size class, or the page block of a
/// large allocation); 0 for NULL, `ZERO_SIZE_PTR`, and pointers kmem did not hand out (reported).
/// A pointer inside an allocation (a slab object or a large one) is reported (naming the large
/// allocation it is in) and gives 0, where the kernel gives the whole size: from there, that
/// many bytes would reach past the allocation.
///
/// # Safety
/// `objp` is NULL, not kmem's (reported), or an object the caller owns: the caller may use all
/// of its bytes afterwards, which stops a debug cache's red-zone check past the request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ksize(objp: *const c_void) -> usize {
    // SAFETY: C owns the object (this function's contract).
    ffi_boundary("ksize", 0, |m| unsafe { m.ksize(objp.cast()) })
}

/// `size_t kmalloc_size_roundup(size_t size)`: the size `kmalloc(size)` really allocates.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc_size_roundup(size: usize) -> usize {
    classes::kmalloc_size_roundup(size)
}

/// `void *kvmalloc(size_t size, gfp_t flags)`: kmalloc, else vmalloc for requests above a
/// page that may sleep; NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn kvmalloc(size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kvmalloc", ptr::null_mut(), |m| {
        let p = out(m.kvmalloc(size, Gfp::from_bits(flags)));
        kmemleak::alloc_kv(m, p, size);
        p
    })
}

/// `void *kvmalloc_array(size_t n, size_t size, gfp_t flags)`: NULL on overflow or failure.
#[unsafe(no_mangle)]
pub extern "C" fn kvmalloc_array(n: usize, size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kvmalloc_array", ptr::null_mut(), |m| match n.checked_mul(size) {
        Some(bytes) => {
            let p = out(m.kvmalloc(bytes, Gfp::from_bits(flags)));
            kmemleak::alloc_kv(m, p, bytes);
            p
        }
        None => ptr::null_mut(),
    })
}

/// `void *kvrealloc(const void *p, size_t size, gfp_t flags)` (6.12+): the same or a new
/// allocation with the contents; NULL on failure with `p` untouched. Size 0 frees: a vmalloc
/// `p` gives NULL (`vrealloc`), a kmalloc one `ZERO_SIZE_PTR` (`krealloc`).
///
/// # Safety
/// `p` is NULL or a kvmalloc allocation the caller owns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvrealloc(p: *const c_void, size: usize, flags: gfp_t) -> *mut c_void {
    ffi_boundary("kvrealloc", ptr::null_mut(), |m| {
        let taken = kmemleak::take(p, kmemleak::Freer::Kvfree);
        // SAFETY: The caller's allocation; vmalloc and kmalloc both check it before use.
        let q = match unsafe { m.kvrealloc(p.cast_mut().cast(), size, Gfp::from_bits(flags)) } {
            Ok(Some(n)) => n.as_ptr().cast(),
            Ok(None) if size == 0 => return ptr::null_mut(), // Freed: its record is dropped.
            Ok(None) | Err(_) => ptr::null_mut(),
        };
        kmemleak::realloc(m, p, taken, q, size);
        q
    })
}

/// `void kvfree(const void *addr)`: `vfree` for a vmalloc address, `kfree` otherwise.
///
/// # Safety
/// As [`kfree`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvfree(addr: *const c_void) {
    kmemleak::free(addr, kmemleak::Freer::Kvfree);
    // SAFETY: As in `kfree`; both paths check the address.
    ffi_boundary("kvfree", (), |m| unsafe { m.kvfree(addr.cast()) });
}

/// `void kvfree_sensitive(const void *addr, size_t len)`: zeroes `len` bytes, then frees. The
/// bytes are zeroed only once kmem has recognised the allocation, and never past it: a `len`
/// beyond it zeroes all of it and is reported (`WARN`), then the free goes on; anything that is
/// no allocation is reported by the free and nothing is written ([`Machine::kvfree_sensitive`]).
///
/// # Safety
/// As [`kfree`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvfree_sensitive(addr: *const c_void, len: usize) {
    kmemleak::free(addr, kmemleak::Freer::Kvfree);
    // SAFETY: As in `kfree`; the allocation is recognised before anything is written.
    ffi_boundary("kvfree_sensitive", (), |m| unsafe { m.kvfree_sensitive(addr.cast::<u8>().cast_mut(), len) });
}

/// A kmalloc copy of `len` bytes at `src` followed by `tail` zero bytes, or NULL.
///
/// # Safety
/// `src` is readable for `len` bytes.
unsafe fn dup(m: &Machine, src: *const u8, len: usize, tail: usize, gfp: gfp_t) -> *mut c_void {
    let Some(total) = len.checked_add(tail) else { return ptr::null_mut() };
    let Ok(p) = m.kmalloc(total, Gfp::from_bits(gfp)) else { return ptr::null_mut() };
    // SAFETY: `src` has `len` readable bytes (caller); `p` has `total >= len` fresh bytes,
    // and a fresh allocation does not overlap the caller's memory.
    unsafe {
        ptr::copy_nonoverlapping(src, p.as_ptr(), len);
        p.as_ptr().add(len).write_bytes(0, tail);
    }
    kmemleak::alloc_kmalloc(p.as_ptr().cast(), total);
    p.as_ptr().cast()
}

/// `char *kstrdup(const char *s, gfp_t gfp)`: a kmalloc copy; NULL for NULL or on failure.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kstrdup(s: *const c_char, gfp: gfp_t) -> *mut c_char {
    ffi_boundary("kstrdup", ptr::null_mut(), |m| {
        if s.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: NUL-terminated (caller's contract).
        let len = unsafe { libc::strlen(s) };
        // SAFETY: `len` bytes before the NUL are readable.
        unsafe { dup(m, s.cast(), len, 1, gfp) }.cast()
    })
}

/// `char *kstrndup(const char *s, size_t max, gfp_t gfp)`: at most `max` bytes, always
/// terminated; NULL for NULL or on failure.
///
/// # Safety
/// `s` is NULL or readable up to its NUL or `max` bytes, whichever comes first.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kstrndup(s: *const c_char, max: usize, gfp: gfp_t) -> *mut c_char {
    ffi_boundary("kstrndup", ptr::null_mut(), |m| {
        if s.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: Readable up to the NUL or `max` bytes (caller's contract).
        let len = unsafe { libc::strnlen(s, max) };
        // SAFETY: `len` bytes are readable.
        unsafe { dup(m, s.cast(), len, 1, gfp) }.cast()
    })
}

/// `const char *kstrdup_const(const char *s, gfp_t gfp)`: always a copy here (kmem cannot tell
/// a module's `.rodata` from other memory); free it with [`kfree_const`] or `kfree`.
///
/// # Safety
/// As [`kstrdup`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kstrdup_const(s: *const c_char, gfp: gfp_t) -> *const c_char {
    // SAFETY: Forwarded contract.
    unsafe { kstrdup(s, gfp) }.cast_const()
}

/// `char *kmemdup_nul(const char *s, size_t len, gfp_t gfp)` (mm/util.c): a kmalloc copy of
/// `len` bytes of `s` (NULs included) and a terminating NUL; NULL for a NULL `s` or on failure.
///
/// # Safety
/// `s` is NULL or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmemdup_nul(s: *const c_char, len: usize, gfp: gfp_t) -> *mut c_char {
    ffi_boundary("kmemdup_nul", ptr::null_mut(), |m| {
        if s.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `len` readable bytes (caller's contract).
        unsafe { dup(m, s.cast(), len, 1, gfp) }.cast()
    })
}

/// `void *kmemdup(const void *src, size_t len, gfp_t gfp)`: a kmalloc copy of `len` bytes.
/// A NULL `src` with a non-zero `len` is reported and gives NULL.
///
/// # Safety
/// `src` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmemdup(src: *const c_void, len: usize, gfp: gfp_t) -> *mut c_void {
    ffi_boundary("kmemdup", ptr::null_mut(), |m| {
        if src.is_null() && len > 0 {
            report_null(m, "kmemdup", "source", Location::caller());
            return ptr::null_mut();
        }
        // SAFETY: `len` readable bytes (caller's contract; NULL only with `len == 0`, and
        // copying 0 bytes reads nothing).
        unsafe { dup(m, src.cast(), len, 0, gfp) }
    })
}

/// `void kfree_const(const void *x)`: frees what `kstrdup_const` returned. Memory kmem did
/// not hand out is taken for a constant string and left alone, silently, as the kernel does for
/// `.rodata`.
///
/// # Safety
/// As [`kfree`], for kmem's addresses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kfree_const(x: *const c_void) {
    ffi_boundary("kfree_const", (), |m| {
        if m.virt_to_pfn(x.cast()).is_some() {
            kmemleak::free(x, kmemleak::Freer::Kfree);
            // SAFETY: As in `kfree`: a direct-map address the core checks before freeing.
            unsafe { m.kfree(x.cast()) };
        }
    });
}
