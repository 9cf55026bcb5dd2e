//! Jiffies and rate limits from C (`linux/jiffies.h`, `linux/ratelimit_types.h`,
//! `linux/ratelimit.h`, and `printk_ratelimit` of `linux/printk.h`).
//!
//! A jiffy is a millisecond of the machine's clock (`HZ` is 1000, see the header). A
//! `struct ratelimit_state` lives in C (usually a `static` of a `printk_ratelimited` or
//! `DEFINE_RATELIMIT_STATE`); [`___ratelimit`] is lib/ratelimit.c's classic algorithm over it.
//! Its `lock` word is taken with a compare-and-swap and never waited for: a caller that finds
//! the state busy is suppressed, as the kernel's `raw_spin_trylock` caller is.
//!
//! Invariant: the other fields of a state are read and written only by a thread holding its
//! `lock` word (or by C initialising it before any use).

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulong};
use std::sync::atomic::{AtomicI32, Ordering};

use kmem::{Level, Machine};
use kmem_core::platform::Platform as _;

use crate::boundary::{ffi_boundary, report_null};

/// `struct ratelimit_state`, field for field with the header.
#[repr(C)]
pub struct ratelimit_state {
    /// 0: free; 1: a thread is inside [`___ratelimit`].
    pub lock: c_int,
    /// Jiffies per interval (0: no limit).
    pub interval: c_int,
    /// Callbacks allowed per interval.
    pub burst: c_int,
    /// Allowed in this interval so far.
    pub printed: c_int,
    /// Suppressed since the last report.
    pub missed: c_int,
    /// `RATELIMIT_MSG_ON_RELEASE`.
    pub flags: c_uint,
    /// Jiffies at the start of the interval (0: not started).
    pub begin: c_ulong,
}

/// `RATELIMIT_MSG_ON_RELEASE`.
pub const RATELIMIT_MSG_ON_RELEASE: c_uint = 1;

/// `printk_ratelimit_state`: `printk_ratelimit()`'s, 5 s and 10 (the kernel's sysctl defaults).
static mut PRINTK_RATELIMIT_STATE: ratelimit_state =
    ratelimit_state { lock: 0, interval: 5 * 1000, burst: 10, printed: 0, missed: 0, flags: 0, begin: 0 };

fn jiffies_of(m: &Machine) -> c_ulong {
    (m.platform().now_ns() / 1_000_000) as c_ulong
}

/// `jiffies`: milliseconds of the machine's clock since it started.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_jiffies() -> c_ulong {
    ffi_boundary("jiffies", 0, jiffies_of)
}

/// `int ___ratelimit(struct ratelimit_state *rs, const char *func)`: 1 if the callback may go
/// ahead, 0 if it is suppressed (see the module docs). A NULL state is reported and suppresses.
///
/// # Safety
/// `rs` is NULL or a `struct ratelimit_state` that stays valid for the call and whose `lock`
/// word C does not write while it is in use; `func` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ___ratelimit(rs: *mut ratelimit_state, func: *const c_char) -> c_int {
    ffi_boundary("___ratelimit", 0, |m| {
        if rs.is_null() {
            report_null(m, "___ratelimit", "ratelimit state", std::panic::Location::caller());
            return 0;
        }
        // SAFETY: Not NULL, valid for the call (caller's contract); read before the lock only as
        // the kernel's `READ_ONCE(rs->interval)` does.
        if unsafe { (*rs).interval } == 0 {
            return 1;
        }
        // SAFETY: The `lock` field of a valid state: an aligned `int` that every user touches
        // through this atomic view only (caller's contract).
        let lock = unsafe { AtomicI32::from_ptr(&raw mut (*rs).lock) };
        if lock.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return 0;
        }
        // SAFETY: We hold the state's lock word: nobody else reads or writes the other fields.
        let st = unsafe { &mut *rs };
        let now = jiffies_of(m);
        if st.begin == 0 {
            st.begin = now;
        }
        // `time_is_before_jiffies(begin + interval)`, wrap-safe.
        if (now.wrapping_sub(st.begin.wrapping_add(st.interval as c_ulong)) as i64) > 0 {
            if st.missed != 0 && st.flags & RATELIMIT_MSG_ON_RELEASE == 0 {
                // SAFETY: NULL or a NUL-terminated string (caller's contract).
                let name = if func.is_null() {
                    "___ratelimit".into()
                } else {
                    unsafe { CStr::from_ptr(func) }.to_string_lossy()
                };
                m.printk(Level::Warning, &format!("{name}: {} callbacks suppressed\n", st.missed));
                st.missed = 0;
            }
            st.begin = now;
            st.printed = 0;
        }
        let ok = st.burst > 0 && st.burst > st.printed;
        if ok {
            st.printed += 1;
        } else {
            st.missed = st.missed.saturating_add(1);
        }
        lock.store(0, Ordering::Release);
        c_int::from(ok)
    })
}

/// `int __printk_ratelimit(const char *func)`: [`___ratelimit`] on `printk_ratelimit_state`
/// (behind `printk_ratelimit()`).
///
/// # Safety
/// `func` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __printk_ratelimit(func: *const c_char) -> c_int {
    // SAFETY: The process-wide state, valid for ever; all its users go through `___ratelimit`.
    unsafe { ___ratelimit(&raw mut PRINTK_RATELIMIT_STATE, func) }
}

/// `void ratelimit_state_exit(struct ratelimit_state *rs)`: with `RATELIMIT_MSG_ON_RELEASE`,
/// reports the callbacks suppressed since the last report as "`<comm>`: N output lines
/// suppressed due to ratelimiting" and clears the count.
///
/// # Safety
/// `rs` is NULL or a valid state that no other thread uses during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ratelimit_state_exit(rs: *mut ratelimit_state) {
    ffi_boundary("ratelimit_state_exit", (), |m| {
        // SAFETY: NULL or valid and ours for the call (caller's contract).
        let Some(st) = (unsafe { rs.as_mut() }) else {
            report_null(m, "ratelimit_state_exit", "ratelimit state", std::panic::Location::caller());
            return;
        };
        if st.flags & RATELIMIT_MSG_ON_RELEASE == 0 || st.missed == 0 {
            return;
        }
        let comm = kmem::sys::comm();
        m.printk(Level::Warning, &format!("{comm}: {} output lines suppressed due to ratelimiting\n", st.missed));
        st.missed = 0;
    })
}
