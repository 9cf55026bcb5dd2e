//! Jiffies and rate limits from C (`linux/jiffies.h`, `linux/ratelimit_types.h`,
//! `linux/ratelimit.h`, and `printk_ratelimit` of `linux/printk.h`).
//!
//! A jiffy is 4 ms of the machine's clock (`HZ` is 250, the core's, see the header). A
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
static mut PRINTK_RATELIMIT_STATE: ratelimit_state = ratelimit_state {
    lock: 0,
    interval: 5 * kmem_core::platform::HZ as c_int,
    burst: 10,
    printed: 0,
    missed: 0,
    flags: 0,
    begin: 0,
};

/// `INITIAL_JIFFIES`: where the kernel's counter starts, `(unsigned int)(-300 * HZ)`, five
/// minutes before a 32-bit counter wraps. Never 0, which `ratelimit_state.begin` and
/// `printk_timed_ratelimit` read as "not started".
pub const INITIAL_JIFFIES: c_ulong = (0u32.wrapping_sub(300 * kmem_core::platform::HZ as u32)) as c_ulong;

fn jiffies_of(m: &Machine) -> c_ulong {
    INITIAL_JIFFIES.wrapping_add(kmem_core::platform::jiffies(m.platform().now_ns()) as c_ulong)
}

/// `jiffies`: [`INITIAL_JIFFIES`] plus the ticks of `HZ` (250, the core's
/// [`kmem_core::platform::HZ`]) of the machine's clock since it started.
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
        // The lock word goes back to 0 however this ends: a panic below (in the log, caught at
        // the boundary) must not leave the state held, suppressing every later call.
        let _unlock = Unlock(lock);
        let now = jiffies_of(m);
        // SAFETY: We hold the state's lock word, so no other `___ratelimit` reads or writes the
        // fields below. They are reached through `rs` by place, never as a `&mut` of the whole
        // state: other threads meanwhile read `interval` and compare-and-swap `lock` (both of
        // which a `&mut ratelimit_state` would claim as ours alone).
        let ok = unsafe {
            if (*rs).begin == 0 {
                (*rs).begin = now;
            }
            // `time_is_before_jiffies(begin + interval)`, wrap-safe.
            if (now.wrapping_sub((*rs).begin.wrapping_add((*rs).interval as c_ulong)) as i64) > 0 {
                if (*rs).missed != 0 && (*rs).flags & RATELIMIT_MSG_ON_RELEASE == 0 {
                    // NULL or a NUL-terminated string (caller's contract).
                    let name =
                        if func.is_null() { "___ratelimit".into() } else { CStr::from_ptr(func).to_string_lossy() };
                    m.printk(Level::Warning, &format!("{name}: {} callbacks suppressed\n", (*rs).missed));
                    (*rs).missed = 0;
                }
                (*rs).begin = now;
                (*rs).printed = 0;
            }
            let ok = (*rs).burst > 0 && (*rs).burst > (*rs).printed;
            if ok {
                (*rs).printed += 1;
            } else {
                (*rs).missed = (*rs).missed.saturating_add(1);
            }
            ok
        };
        c_int::from(ok)
    })
}

/// Releases a state's lock word when dropped.
struct Unlock<'a>(&'a AtomicI32);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A state shared by threads: the lock word keeps `printed` and `missed` whole, and no
    /// more than `burst` callers go ahead in the (hour-long) interval. Counts only, no timing:
    /// a caller that finds the state busy is suppressed without being counted, so the allowed
    /// number may be below `burst` but never above, and equals `printed`.
    #[test]
    fn threads_sharing_a_state_never_exceed_the_burst() {
        struct Shared(*mut ratelimit_state);
        // SAFETY: The state is only touched through `___ratelimit`, which locks it.
        unsafe impl Sync for Shared {}
        let st = Box::into_raw(Box::new(ratelimit_state {
            lock: 0,
            interval: 3_600_000,
            burst: 5,
            printed: 0,
            missed: 0,
            flags: 0,
            begin: 0,
        }));
        let shared = Shared(st);
        let allowed: i32 = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let shared = &shared;
                    s.spawn(move || {
                        // SAFETY: A valid state for the whole scope; `func` a C string.
                        (0..2000).map(|_| unsafe { ___ratelimit(shared.0, c"worker".as_ptr()) }).sum::<i32>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        // SAFETY: From `Box::into_raw` above; the threads are done.
        let st = unsafe { Box::from_raw(st) };
        assert!((1..=5).contains(&allowed), "{allowed}");
        assert_eq!(st.printed, allowed);
        assert!(st.missed <= 4 * 2000 - allowed, "{}", st.missed);
        assert_eq!(st.lock, 0, "released");
    }
}
