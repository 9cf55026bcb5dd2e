//! `kmem insmod MODULE.so [param=value...]`: loads a C module into the default machine (the
//! one the C ABI uses), runs its init, then its exit (right away with `--rmmod`, otherwise when
//! kmem exits), and prints the kernel log as `dmesg` does. Errors are worded as `insmod(8)`
//! words them, with its exit code 1.
#![allow(unsafe_code)] // Loading the user's module runs its code: `module::insmod` is unsafe.

use std::path::Path;
use std::process::ExitCode;
use std::sync::OnceLock;

use kmem_ffi::module;
use kmem_ffi::proc::{KMEM_DMESG_LEVEL, KMEM_DMESG_NOTIME};

/// What `kmem insmod` was asked to do.
pub struct Options<'a> {
    /// The module file.
    pub path: &'a Path,
    /// `name[=value]` parameters, in order.
    pub params: &'a [String],
    /// Remove the module right after its init.
    pub rmmod: bool,
    /// `/proc` texts to print, taken after init (after exit with `rmmod`).
    pub stats: &'a [&'static str],
    /// Leave out timestamps (`dmesg -t`).
    pub notime: bool,
    /// Prefix records with their level (`dmesg -r`).
    pub raw: bool,
    /// Track the module's allocations and report what it leaves allocated (kmemleak).
    pub kmemleak: bool,
}

/// Runs `kmem insmod`; returns the exit code.
pub fn run(o: &Options<'_>) -> ExitCode {
    // The C ABI's machine only warns about these (a library cannot exit its program); a bad
    // value is a bad environment here, as for the machine's own variables.
    if let Err(e) = kmem_ffi::kmemleak::check_env() {
        eprintln!("kmem: {e}");
        return ExitCode::from(3);
    }
    let m = match kmem_ffi::machine() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kmem: {e}");
            return ExitCode::from(3);
        }
    };
    let flags = if o.notime { KMEM_DMESG_NOTIME } else { 0 } | if o.raw { KMEM_DMESG_LEVEL } else { 0 };
    // The log goes out as it is made (`dmesg --follow`): a module that kills the process (a
    // bad pointer, `BUG()`, a `SLAB_PANIC` cache) has shown all it logged up to there, as the
    // kernel's log outlives the task an oops kills.
    m.log().follow(move |r| {
        let mut line = String::new();
        kmem_ffi::proc::format_record(&mut line, r, flags);
        emit(&line);
    });
    if o.kmemleak {
        kmem_ffi::kmemleak::start();
    }
    // SAFETY: Loading the module the user named is what `kmem insmod` is for: its code is
    // trusted as a kernel module's is (`insmod(8)` runs it in the kernel), and `m` is the
    // machine the C ABI uses.
    let loaded = match unsafe { module::insmod(m, o.path, o.params) } {
        Ok(loaded) => loaded,
        Err(e) => {
            emit(&kmemleak_text());
            if let Some(&code) = WRITE_FAILED.get() {
                return code;
            }
            eprintln!("insmod: ERROR: {e}");
            return ExitCode::from(1);
        }
    };
    let mut code = ExitCode::SUCCESS;
    let mut loaded = Some(loaded);
    if o.rmmod
        && let Some(module) = loaded.take()
        && let Err(e) = module.rmmod(m)
    {
        eprintln!("rmmod: ERROR: {e}");
        code = ExitCode::from(1);
    }
    let stats: Vec<(&str, String)> =
        o.stats.iter().map(|&name| (name, m.proc_read(name).unwrap_or_default())).collect();
    // kmem exits: a module still loaded is removed, as at shutdown. One that cannot be removed
    // (an init without an exit) simply stays until the process ends (with kmemleak on, `rmmod`
    // scans it from its data).
    if let Some(module) = loaded {
        let _ = module.rmmod(m);
    }
    let mut text = String::new();
    for (name, proc_text) in stats {
        text.push_str(&format!("# /proc/{name}\n{proc_text}"));
    }
    text.push_str(&kmemleak_text());
    emit(&text);
    WRITE_FAILED.get().copied().unwrap_or(code)
}

/// How `kmem insmod` ends once writing its output failed (`crate::emit`'s code: success for a
/// reader that went away); nothing more is written after that.
static WRITE_FAILED: OnceLock<ExitCode> = OnceLock::new();

/// Writes `text` to standard output unless a write failed before.
fn emit(text: &str) {
    if text.is_empty() || WRITE_FAILED.get().is_some() {
        return;
    }
    if let Err(code) = crate::emit(text) {
        let _ = WRITE_FAILED.set(code);
    }
}

/// What `/sys/kernel/debug/kmemleak` shows after the module's removal (nothing without leaks).
fn kmemleak_text() -> String {
    let report = kmem_ffi::kmemleak::last_report();
    if report.is_empty() { report } else { format!("# /sys/kernel/debug/kmemleak\n{report}") }
}
