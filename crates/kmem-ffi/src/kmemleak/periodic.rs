//! kmemleak's scan thread (`kmemleak_scan_thread`) for a program run with `KMEM_KMEMLEAK=1`:
//! the on-demand scan (`ondemand.rs`, with its rules and its log line), run by a thread of its
//! own, named `kmemleak`, as the kernel's kthread runs it: the first time 60 s after kmemleak
//! started (`SECS_FIRST_SCAN`), then every 600 s (`SECS_SCAN_WAIT`).
//!
//! `kmem_kmemleak_set_scan(secs)` is the kernel's `echo scan=<secs>` (and `echo scan=off` for
//! 0): it stops the thread and, for `secs` > 0, starts it again with that period, scanning at
//! once (the kernel's restarted thread skips the first-scan wait). `KMEM_KMEMLEAK_SCAN=<secs>`
//! (or `off`) does the same at start; a bad value is said on stderr and leaves the defaults.
//!
//! The thread holds no lock while it waits; each scan takes the scan lock as any other (so the
//! exit report waits for a scan in progress). A scan that fails (kmemleak turned off, as after
//! the exit report; a refused `process_vm_readv`) ends the thread. The `kmem insmod` modules do
//! not get one: their scan is the one after their exit.
//!
//! Invariant: `Control::generation` changes on every `set_scan`; a thread runs only while it
//! was started for the current generation, so at most one thread scans periodically.

use std::ffi::{c_int, c_ulong};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::boundary::ffi_boundary;

/// The kernel's `SECS_FIRST_SCAN`: the wait before the first automatic scan.
const SECS_FIRST_SCAN: u64 = 60;
/// The kernel's `SECS_SCAN_WAIT`: the default period.
const SECS_SCAN_WAIT: u64 = 600;

struct Control {
    /// Seconds between scans (0: no thread).
    period: u64,
    /// Bumped by every start and stop: a thread started for an older one returns.
    generation: u64,
}

static CONTROL: Mutex<Control> = Mutex::new(Control { period: 0, generation: 0 });
static CHANGED: Condvar = Condvar::new();

fn control() -> std::sync::MutexGuard<'static, Control> {
    CONTROL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the scan thread as kmemleak starts (`KMEM_KMEMLEAK=1`): with the period and first
/// wait `KMEM_KMEMLEAK_SCAN` asks for, else the kernel's.
pub(super) fn start_from_env() {
    match scan_from_env() {
        Ok(Some(secs)) => set(secs, Duration::ZERO),
        Ok(None) => set(SECS_SCAN_WAIT, Duration::from_secs(SECS_FIRST_SCAN)),
        Err(e) => {
            eprintln!("kmem: {e}; the scan thread keeps its defaults");
            set(SECS_SCAN_WAIT, Duration::from_secs(SECS_FIRST_SCAN));
        }
    }
}

/// The period `KMEM_KMEMLEAK_SCAN` asks for (0: off), `None` if it is unset.
pub(super) fn scan_from_env() -> Result<Option<u64>, kmem::env::EnvError> {
    const VAR: &str = "KMEM_KMEMLEAK_SCAN";
    kmem::env::var(VAR).and_then(|v| {
        v.map(|v| {
            parse(&v).ok_or_else(|| kmem::env::EnvError {
                var: VAR,
                value: v,
                expected: "seconds between scans, or off".into(),
            })
        })
        .transpose()
    })
}

/// `<secs>` or `off` (0 is off too), as `echo scan=` takes them.
fn parse(v: &str) -> Option<u64> {
    match v.trim() {
        "off" => Some(0),
        s => s.parse().ok(),
    }
}

/// Stops the running thread, if any, and with `period` > 0 starts one that first waits
/// `first` and then scans every `period` seconds.
fn set(period: u64, first: Duration) {
    let generation = {
        let mut c = control();
        c.generation += 1;
        c.period = period;
        c.generation
    };
    CHANGED.notify_all();
    if period == 0 {
        return;
    }
    let spawned = std::thread::Builder::new().name("kmemleak".into()).spawn(move || run(generation, first));
    if let Err(e) = spawned {
        eprintln!("kmem: kmemleak: cannot start the scan thread: {e}");
    }
}

/// Waits `wait` (for ever if that is past the clock's range) or until `generation` is no
/// longer the current one; returns whether it is still current (the thread goes on).
fn wait_for(generation: u64, wait: Duration) -> bool {
    let deadline = Instant::now().checked_add(wait);
    let mut c = control();
    loop {
        if c.generation != generation {
            return false;
        }
        c = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return true;
                }
                CHANGED.wait_timeout(c, d - now).unwrap_or_else(PoisonError::into_inner).0
            }
            None => CHANGED.wait(c).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// The thread: the first wait, then a scan every period, until stopped or a scan fails.
fn run(generation: u64, first: Duration) {
    if !wait_for(generation, first) {
        return;
    }
    loop {
        let Some(m) = crate::boundary::machine_or_report() else { return };
        let here = 0u8;
        if super::ondemand::scan(m, std::ptr::addr_of!(here) as usize).is_err() {
            return;
        }
        let period = control().period;
        if !wait_for(generation, Duration::from_secs(period)) {
            return;
        }
    }
}

/// `int kmem_kmemleak_set_scan(unsigned long secs)`: `echo scan=<secs>` on
/// `/sys/kernel/debug/kmemleak` (0: `echo scan=off`): the scan thread is stopped and, for
/// `secs` > 0, started again, scanning now and then every `secs` seconds. Returns 0, or
/// `-EPERM` if kmemleak is off (the kernel's answer to a write then).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_kmemleak_set_scan(secs: c_ulong) -> c_int {
    ffi_boundary("kmem_kmemleak_set_scan", -libc::EIO, |_| {
        if !super::is_on() {
            return -libc::EPERM;
        }
        #[allow(clippy::useless_conversion)] // `c_ulong` is `u32` on 32-bit targets.
        set(u64::from(secs), Duration::ZERO);
        0
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn scan_values_parse_as_echo_scan_takes_them() {
        assert_eq!([parse("5"), parse(" 600 "), parse("off"), parse("0")], [Some(5), Some(600), Some(0), Some(0)]);
        assert_eq!([parse("soon"), parse("-1"), parse(""), parse("1.5")], [None; 4]);
    }
}
