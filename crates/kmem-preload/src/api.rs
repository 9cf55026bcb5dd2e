//! The exported C functions, with glibc's semantics:
//!
//! - `malloc(0)` and the aligned forms with size 0 return a unique, freeable block (16 bytes);
//!   every block is at least 16-aligned.
//! - Sizes above `PTRDIFF_MAX`, `calloc`/`reallocarray` products that overflow, and
//!   exhaustion return NULL with `errno = ENOMEM`.
//! - `free(NULL)` does nothing; `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p`
//!   and returns NULL (glibc's `REALLOC_ZERO_BYTES_FREES`); a failed `realloc` leaves `p` valid.
//! - `posix_memalign` returns `EINVAL` (and leaves `*memptr` alone) unless the alignment is a
//!   power of two multiple of `sizeof(void *)`, `ENOMEM` on exhaustion, and does not change
//!   `errno`. `aligned_alloc` fails with `EINVAL` unless the alignment is a power of two
//!   (glibc 2.38's C17 behaviour). `memalign` rounds an alignment that is not a power of two
//!   up to one, and fails with `EINVAL` above `SIZE_MAX / 2 + 1`. `valloc` is page-aligned;
//!   `pvalloc` also rounds the size up to whole pages.
//! - `malloc_usable_size(NULL)` is 0; otherwise at least the size asked for.

use core::ffi::{c_int, c_void};
use core::ptr;

use crate::heap::{self, MIN_ALIGN};
use crate::sys::{self, PAGE};

fn alloc(size: usize, align: usize, zero: bool) -> *mut c_void {
    heap::call(|h| h.alloc(size, align, zero)).cast()
}

/// `malloc(size)`.
///
/// # Safety
/// None beyond C's: the block must be freed once, with this library's `free` or `realloc`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc(size, MIN_ALIGN, false)
}

/// `calloc(nmemb, size)`: zeroed; NULL and `ENOMEM` if the product overflows.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn calloc(nmemb: usize, size: usize) -> *mut c_void {
    match nmemb.checked_mul(size) {
        Some(total) => alloc(total, MIN_ALIGN, true),
        None => {
            sys::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `free(p)`.
///
/// # Safety
/// `p` is NULL or a block from this library's allocation functions that the caller owns and
/// no longer uses. Other pointers are recognised where possible: blocks of the direct map that
/// kmalloc did not hand out are reported in the machine's log and ignored, foreign pointers
/// (outside every region of the library) are ignored.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: The caller's promise.
    heap::call(|h| unsafe { h.free(p.cast()) });
}

/// `realloc(p, size)`.
///
/// # Safety
/// `p` is NULL or a live block from this library that the caller owns; on success (or when
/// `size` is 0) it must not be used afterwards unless it is the pointer returned.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return alloc(size, MIN_ALIGN, false);
    }
    if size == 0 {
        // SAFETY: The caller's promise.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    if size > isize::MAX as usize {
        sys::set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    // SAFETY: The caller's promise.
    heap::call(|h| unsafe { h.realloc(p.cast(), size) }).cast()
}

/// `reallocarray(p, nmemb, size)`: `realloc` of `nmemb * size` bytes; NULL and `ENOMEM`
/// (with `p` untouched) if the product overflows.
///
/// # Safety
/// As [`realloc`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, nmemb: usize, size: usize) -> *mut c_void {
    match nmemb.checked_mul(size) {
        // SAFETY: The caller's promise.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            sys::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `posix_memalign(memptr, alignment, size)`: 0, `EINVAL` or `ENOMEM`; `errno` unchanged.
///
/// # Safety
/// `memptr` must be valid for a pointer write.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, alignment: usize, size: usize) -> c_int {
    if !alignment.is_power_of_two() || !alignment.is_multiple_of(size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    // SAFETY: `__errno_location` is the calling thread's `errno`.
    let saved = unsafe { *libc::__errno_location() };
    let p = alloc(size, alignment, false);
    sys::set_errno(saved);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: The caller's promise.
    unsafe { memptr.write(p) };
    0
}

/// `aligned_alloc(alignment, size)`: NULL and `EINVAL` unless `alignment` is a power of two.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    if !alignment.is_power_of_two() {
        sys::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    alloc(size, alignment, false)
}

/// The alignment `memalign` uses for `alignment`: at least 16, rounded up to a power of two;
/// `None` above `SIZE_MAX / 2 + 1`.
fn memalign_alignment(alignment: usize) -> Option<usize> {
    if alignment > usize::MAX / 2 + 1 {
        return None;
    }
    Some(alignment.max(MIN_ALIGN).next_power_of_two())
}

/// `memalign(alignment, size)`.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    match memalign_alignment(alignment) {
        Some(a) => alloc(size, a, false),
        None => {
            sys::set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

/// `valloc(size)`: page-aligned.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc(size, PAGE, false)
}

/// `pvalloc(size)`: page-aligned, size rounded up to whole pages; NULL and `ENOMEM` if that
/// overflows.
///
/// # Safety
/// As [`malloc`].
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match size.checked_next_multiple_of(PAGE) {
        Some(rounded) => alloc(rounded, PAGE, false),
        None => {
            sys::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `malloc_usable_size(p)`: the bytes the block may use, at least its requested size.
///
/// # Safety
/// `p` is NULL or a live block from this library.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: A live block the caller owns (this function's contract).
    heap::call(|h| unsafe { h.usable_size(p.cast()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memalign_alignments() {
        assert_eq!(memalign_alignment(0), Some(16));
        assert_eq!(memalign_alignment(8), Some(16));
        assert_eq!(memalign_alignment(24), Some(32), "rounded up to a power of two");
        assert_eq!(memalign_alignment(4096), Some(4096));
        assert_eq!(memalign_alignment(usize::MAX / 2 + 1), Some(usize::MAX / 2 + 1));
        assert_eq!(memalign_alignment(usize::MAX / 2 + 2), None);
    }
}
