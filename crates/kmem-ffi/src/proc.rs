//! `/proc` texts and the kernel log for C: `kmem_proc_read`, `kmem_dmesg_read`,
//! `kmem_dmesg_clear` (kmem's own names; the kernel offers these as files, not functions).
//!
//! Both readers copy like `snprintf`: at most `len - 1` bytes and a terminating NUL, and return
//! the length of the whole text, so a caller can size its buffer with `(NULL, 0)` first.

use std::ffi::{c_char, c_uint};
use std::fmt::Write as _;
use std::panic::Location;

use crate::boundary::{c_str, ffi_boundary, report_null};

/// `kmem_dmesg_read` flag: prefix each record with `<level>` (as `dmesg -r`).
pub const KMEM_DMESG_LEVEL: c_uint = 1;
/// `kmem_dmesg_read` flag: leave out the `[seconds.micros] ` timestamps (as `dmesg -t`).
pub const KMEM_DMESG_NOTIME: c_uint = 2;

/// Copies `text` into `buf` like `snprintf`; returns the text's length or `-EFAULT`.
pub(crate) fn copy_out(text: &str, buf: *mut c_char, len: usize) -> isize {
    if len > 0 {
        if buf.is_null() {
            return -(libc::EFAULT as isize);
        }
        let n = text.len().min(len - 1);
        // SAFETY: `buf` is not NULL and has room for `len > n` bytes (the callers' contract).
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            buf.add(n).write(0);
        }
    }
    text.len() as isize
}

/// `ssize_t kmem_proc_read(const char *name, char *buf, size_t len)`: the text of
/// `/proc/<name>` (`buddyinfo`, `zoneinfo`, `meminfo`, `pagetypeinfo`; more as the layers
/// land). Returns its length, `-ENOENT` for an unknown name, `-EINVAL` for a NULL name,
/// `-EFAULT` for a NULL `buf` with `len > 0`.
///
/// # Safety
/// `name` is NULL or NUL-terminated; `buf` is NULL or has `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_proc_read(name: *const c_char, buf: *mut c_char, len: usize) -> isize {
    ffi_boundary("kmem_proc_read", -(libc::EIO as isize), |m| {
        // SAFETY: NULL or NUL-terminated (caller's contract).
        let Some(name) = (unsafe { c_str(name) }) else {
            report_null(m, "kmem_proc_read", "name", Location::caller());
            return -(libc::EINVAL as isize);
        };
        let name = name.strip_prefix("/proc/").unwrap_or(&name);
        match m.proc_read(name) {
            Some(text) => copy_out(&text, buf, len),
            None => -(libc::ENOENT as isize),
        }
    })
}

/// `ssize_t kmem_dmesg_read(char *buf, size_t len, unsigned int flags)`: the kernel log, one
/// record per line, as `dmesg` prints it ([`KMEM_DMESG_LEVEL`], [`KMEM_DMESG_NOTIME`]).
/// Pending continuation text of the calling thread is ended first.
///
/// # Safety
/// `buf` is NULL or has `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_dmesg_read(buf: *mut c_char, len: usize, flags: c_uint) -> isize {
    ffi_boundary("kmem_dmesg_read", -(libc::EIO as isize), |m| {
        crate::printk::flush(m);
        copy_out(&format_log(m, flags), buf, len)
    })
}

/// The log as `kmem_dmesg_read` formats it.
pub fn format_log(m: &kmem::Machine, flags: c_uint) -> String {
    let mut out = String::new();
    for r in m.log().records() {
        format_record(&mut out, &r, flags);
    }
    out
}

/// One record of [`format_log`], with its newline, appended to `out`.
pub fn format_record(out: &mut String, r: &kmem::printk::Record, flags: c_uint) {
    if flags & KMEM_DMESG_LEVEL != 0 {
        let _ = write!(out, "<{}>", r.level as u8);
    }
    if flags & KMEM_DMESG_NOTIME == 0 {
        let _ = write!(out, "[{:>5}.{:06}] ", r.ts_ns / 1_000_000_000, (r.ts_ns / 1000) % 1_000_000);
    }
    out.push_str(&r.text);
    out.push('\n');
}

/// `void kmem_dmesg_clear(void)`: empties the log (`dmesg -C`).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_dmesg_clear() {
    ffi_boundary("kmem_dmesg_clear", (), |m| {
        crate::printk::flush(m);
        m.log().clear();
    });
}
