//! The boundary every export goes through: the default machine, panics caught before they
//! reach C, and the kernel-worded reports for pointers C passes in.
//!
//! Invariants:
//! - No export unwinds: each runs its body inside `ffi_boundary`, which turns a panic into
//!   the export's failure value (NULL, 0 or an errno) after logging it.
//! - No pointer from C is dereferenced before it is checked: NULL first, then, for pointers
//!   kmem handed out (pages, addresses), membership in this machine's memory map or direct map.
//!   Pointers to objects the caller owns (a `spinlock_t`, a string) are checked for NULL and
//!   alignment and then trusted, as the kernel trusts them.
//! - A process forked from the one that built the machine never touches it: the machine's
//!   memory is a shared mapping of its memfd, so a child's allocation or free would change the
//!   parent's allocator under it (a `kfree` in the child would hand the parent's object out
//!   again). A `pthread_atfork` child handler marks the child; from then on [`machine`] fails
//!   with a message that says so (printed once, by the first export that asks), every export
//!   returns its failure value, and kmemleak is off in the child.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use kmem::{Level, Machine, Profile};
use kmem_core::platform::Platform;

/// The profile of the machine behind the C ABI unless `KMEM_PROFILE` says otherwise: the book's
/// i386 PC (DESIGN §3, §7), so `GFP_DMA` means the first 16 MiB, HighMem exists above 896 MiB
/// and `page_address()` of a HighMem page is NULL until it is `kmap()`ed, as the seeds'
/// examples expect. The memfd is
/// sparse, so the default 1 GiB costs only what is touched.
pub const DEFAULT_PROFILE: Profile = Profile::I386;

/// The machine behind the C ABI: [`kmem::default_machine_with`]`(`[`DEFAULT_PROFILE`]`)`, built
/// on first use from the `KMEM_*` variables. The CLI (`kmem insmod`) uses the same one, so a
/// module's allocations show in the texts the CLI prints.
///
/// # Errors
/// A bad `KMEM_*` value or a machine that cannot be built (the message names the variable).
pub fn machine() -> Result<&'static Machine, &'static str> {
    if FORKED.load(Ordering::Relaxed) {
        return Err(FORKED_MESSAGE);
    }
    kmem::default_machine_with(DEFAULT_PROFILE)
}

/// Set in a child of a `fork` after the machine was built (module docs).
static FORKED: AtomicBool = AtomicBool::new(false);

/// Whether this process is such a child: code that would take a lock a parent thread may have
/// held at the fork (kmemleak's registries) leaves it alone.
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

const FORKED_MESSAGE: &str = "this process is a fork of the one that built the machine, whose memory it shares with it; \
     every kmem call in it fails (an allocation returns NULL, a free does nothing), so that the parent's allocations are not corrupted";

/// The `pthread_atfork` child handler (module docs): marks the child and takes [`READY`]
/// back, so every export goes to [`machine`], which refuses; turns kmemleak off and lets the
/// forking thread forget its CPU slot without handing it back at its exit (which would drain
/// the per-CPU lists of the parent's thread). Allocates nothing for a forking thread that used
/// kmem (see `Machine::abandon_in_fork_child`).
extern "C" fn forked_child() {
    FORKED.store(true, Ordering::Relaxed);
    let m = READY.swap(std::ptr::null_mut(), Ordering::Relaxed);
    crate::kmemleak::stop_in_fork_child();
    // SAFETY: `READY` only ever holds null or the `&'static Machine` `machine()` returned.
    if let Some(m) = unsafe { m.as_ref() } {
        m.abandon_in_fork_child();
    }
}

/// The machine once an export got it and the fork watch and kmemleak were set up (`SETUP`);
/// null before, and in a forked child. The exports' fast path is this one load.
static READY: AtomicPtr<Machine> = AtomicPtr::new(std::ptr::null_mut());

/// Registers [`forked_child`] once the machine exists.
fn watch_forks() {
    // SAFETY: `forked_child` is an `extern "C" fn()` that stays valid for the process.
    if unsafe { libc::pthread_atfork(None, None, Some(forked_child)) } != 0 {
        eprintln!("kmem: cannot watch for fork (pthread_atfork); a forked child must not call kmem");
    }
}

/// The machine, or `None` after telling stderr once why there is none (C callers have no
/// other channel: there is no log without a machine). The first call that gets it also reads
/// `KMEM_KMEMLEAK` (kmemleak for a program); later calls are one load.
pub(crate) fn machine_or_report() -> Option<&'static Machine> {
    // SAFETY: `READY` only ever holds null or the `&'static Machine` `machine()` returned.
    match unsafe { READY.load(Ordering::Acquire).as_ref() } {
        Some(m) => Some(m),
        None => machine_first(),
    }
}

/// [`machine_or_report`] before the machine is set up, or in a forked child.
#[cold]
#[inline(never)]
fn machine_first() -> Option<&'static Machine> {
    static SETUP: Once = Once::new();
    static REPORTED: Once = Once::new();
    match machine() {
        Ok(m) => {
            // Concurrent first calls wait here until the setup is done.
            SETUP.call_once(|| {
                watch_forks();
                crate::kmemleak::start_from_env();
                READY.store(std::ptr::from_ref(m).cast_mut(), Ordering::Release);
            });
            Some(m)
        }
        Err(e) => {
            REPORTED.call_once(|| {
                if FORKED.load(Ordering::Relaxed) {
                    eprintln!("kmem: pid {}: {e}", std::process::id());
                } else {
                    eprintln!("kmem: cannot start the machine behind the C ABI: {e}");
                }
            });
            None
        }
    }
}

/// Runs an export's body with the machine; a missing machine or a panic returns `fallback`.
/// A panic is logged as a kernel `BUG` naming the export, never propagated into C.
#[track_caller]
pub(crate) fn ffi_boundary<R>(export: &str, fallback: R, body: impl FnOnce(&'static Machine) -> R) -> R {
    let Some(m) = machine_or_report() else { return fallback };
    let caller = Location::caller();
    match catch_unwind(AssertUnwindSafe(|| body(m))) {
        Ok(r) => r,
        Err(payload) => {
            let msg = kmem::panics::panic_message(&*payload).unwrap_or("(no message)");
            m.printk(Level::Crit, &format!("BUG: kmem internal error in {export}(): {msg}; the call failed\n"));
            m.platform().dump_stack(caller);
            fallback
        }
    }
}

/// The kernel's `panic()` (kernel/panic.c) reached from C, e.g. `SLAB_PANIC`: the panic line
/// and its end marker at `KERN_EMERG` in the log and on stderr (as a panic forces them to the
/// console), the stack in the log, then `abort()`. Nothing unwinds and no Rust panic message
/// is printed: the process dies by `SIGABRT`, as the kernel would stop.
pub(crate) fn kernel_panic(m: &Machine, msg: &str, caller: &Location<'_>) -> ! {
    use std::io::Write as _;
    let msg = msg.strip_suffix('\n').unwrap_or(msg);
    let line = format!("Kernel panic - not syncing: {msg}\n");
    let end = format!("---[ end Kernel panic - not syncing: {msg} ]---\n");
    m.printk(Level::Emerg, &line);
    m.platform().dump_stack(caller);
    m.printk(Level::Emerg, &end);
    if !m.log().echoes(Level::Emerg) {
        // Write errors are ignored: nothing may stop the abort.
        let _ = std::io::stderr().write_all(format!("{line}{end}").as_bytes());
    }
    std::process::abort()
}

/// Like [`ffi_boundary`] for exports that need no machine (parsers, context counters).
pub(crate) fn ffi_guard<R>(export: &str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("kmem: BUG: internal error in {export}(); the call failed");
            fallback
        }
    }
}

/// What kind of pointer a report is about, for its second line.
pub(crate) fn report_null(m: &Machine, export: &str, what: &str, caller: &Location<'_>) {
    m.printk(
        Level::Alert,
        &format!(
            "BUG: kernel NULL pointer dereference, address: 0000000000000000\nkmem: {export}() called with a NULL {what}; ignored\n"
        ),
    );
    m.platform().dump_stack(caller);
}

/// Whether an array of `count` pointers can exist at all (its bytes fit in `isize`, as a Rust
/// slice requires). A count no array can hold is the caller's bug, which the kernel would turn
/// into writes far past the array; kmem reports it (the kernel's fault line, then what was
/// wrong) and the call does nothing.
pub(crate) fn array_fits(m: &Machine, export: &str, what: &str, count: usize, caller: &Location<'_>) -> bool {
    if count <= isize::MAX as usize / size_of::<*mut core::ffi::c_void>() {
        return true;
    }
    report_bad_count(m, export, what, count, "any array can hold", caller);
    false
}

/// The report of an array count kmem cannot take (`more than <limit>`): the kernel's fault line,
/// then what was wrong; the call does nothing.
pub(crate) fn report_bad_count(
    m: &Machine,
    export: &str,
    what: &str,
    count: usize,
    limit: &str,
    caller: &Location<'_>,
) {
    m.printk(
        Level::Alert,
        &format!(
            "BUG: unable to handle page fault\nkmem: {export}() called with {count} entries for its {what}, more than {limit}; ignored\n"
        ),
    );
    m.platform().dump_stack(caller);
}

/// A pointer that is not NULL but is not something kmem handed out: the kernel would fault.
pub(crate) fn report_bad_pointer(m: &Machine, export: &str, what: &str, addr: usize, caller: &Location<'_>) {
    m.printk(
        Level::Alert,
        &format!(
            "BUG: unable to handle page fault for address: {addr:016x}\nkmem: {export}() called with a {what} that kmem did not hand out; ignored\n"
        ),
    );
    m.platform().dump_stack(caller);
}

/// A NUL-terminated string from C, or `None` for NULL. Invalid UTF-8 is replaced, never trusted.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn c_str<'a>(s: *const c_char) -> Option<std::borrow::Cow<'a, str>> {
    if s.is_null() {
        return None;
    }
    // SAFETY: Not NULL (checked); NUL-terminated and valid for `'a` by the caller's contract.
    Some(unsafe { CStr::from_ptr(s) }.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_fallback_and_a_logged_bug() {
        let m = machine().expect("the default machine");
        let got = ffi_boundary("kmem_test_export", -5, |_| -> i32 { panic!("deliberate panic 51c2") });
        assert_eq!(got, -5);
        let rec = m.log().records().into_iter().find(|r| r.text.contains("deliberate panic 51c2")).expect("logged");
        assert_eq!(rec.text, "BUG: kmem internal error in kmem_test_export(): deliberate panic 51c2; the call failed");
        assert_eq!(rec.level, Level::Crit);
        assert_eq!(ffi_guard("kmem_test_guard", 7u8, || -> u8 { panic!("another") }), 7);
        assert_eq!(ffi_boundary("kmem_test_ok", 0, |_| 3), 3);
    }
}
