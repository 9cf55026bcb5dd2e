//! `printk` from C into the machine's log.
//!
//! The header's `printk` formats with the C library's `vsnprintf` (so every `printf` conversion
//! the book uses works) and hands the text to [`kmem_printk_text`], which does what the
//! kernel's `vprintk_store` does with it: parses the `KERN_*` prefixes (`"\001" "0"`..`"7"`,
//! `KERN_DEFAULT`, `KERN_CONT`), logs every complete line as a record at that level (default
//! `KERN_WARNING`, `MESSAGE_LOGLEVEL_DEFAULT`), and keeps a line without its newline in a
//! per-thread continuation buffer. Only `KERN_CONT` text joins that buffer; any other printk
//! first ends the pending line as a record of its own, as in the kernel since 4.9.
//!
//! Invariant: the continuation buffer holds no newline; its level is the level of the printk
//! that started it.

use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};

use kmem::{Level, Machine};
use kmem_core::platform::Platform;

use crate::boundary::{ffi_boundary, report_null};

/// `MESSAGE_LOGLEVEL_DEFAULT`: the level of a printk without a level prefix.
pub const MESSAGE_LOGLEVEL_DEFAULT: Level = Level::Warning;

/// The prefixes of one printk: its level (`None`: none given) and whether it is `KERN_CONT`.
fn parse_prefix(mut text: &[u8]) -> (Option<Level>, bool, &[u8]) {
    let (mut level, mut cont) = (None, false);
    while let [0x01, c, rest @ ..] = text {
        match c {
            b'0'..=b'7' => {
                level.get_or_insert(Level::from_u8(c - b'0'));
            }
            b'c' => cont = true,
            b'd' => {}
            _ => break,
        }
        text = rest;
    }
    (level, cont, text)
}

/// The per-thread continuation line (`LOG_CONT`).
struct Cont {
    level: Level,
    text: String,
}

/// The slot of the per-thread continuation line; a thread that exits with a pending line
/// logs it, as the kernel eventually does.
struct ContSlot(RefCell<Option<Cont>>);

impl ContSlot {
    fn take(&self) -> Option<Cont> {
        self.0.borrow_mut().take()
    }

    fn set(&self, cont: Cont) {
        *self.0.borrow_mut() = Some(cont);
    }
}

impl Drop for ContSlot {
    fn drop(&mut self) {
        if let Some(p) = self.0.get_mut().take()
            && let Ok(m) = crate::machine()
        {
            m.log().log(p.level, &p.text, true);
        }
    }
}

thread_local! {
    static CONT: ContSlot = const { ContSlot(RefCell::new(None)) };
}

/// Logs `text` (one printk's output, prefixes included) to `m`'s log; returns the bytes of
/// message text, as `printk` returns: without the prefixes and without one trailing newline
/// (kernel/printk/printk.c's `printk_sprint` strips both), counted before the UTF-8 repair.
pub fn log_printk(m: &Machine, text: &[u8]) -> usize {
    let (level, cont, body) = parse_prefix(text);
    let text_len = body.len() - usize::from(body.ends_with(b"\n"));
    let body = String::from_utf8_lossy(body);
    let mut pending = CONT.try_with(ContSlot::take).ok().flatten();
    if !cont && let Some(p) = pending.take() {
        m.log().log(p.level, &p.text, true);
    }
    let (level, mut line) = match pending {
        Some(p) => (p.level, p.text),
        None => (level.unwrap_or(MESSAGE_LOGLEVEL_DEFAULT), String::new()),
    };
    let mut rest = body.as_ref();
    while let Some(pos) = rest.find('\n') {
        line.push_str(&rest[..pos]);
        // With its newline: an empty line is a record too (`pr_info("\n")`), as the kernel's
        // vprintk_store commits one; flushing an empty text would log nothing.
        line.push('\n');
        m.log().log(level, &line, true);
        line.clear();
        rest = &rest[pos + 1..];
    }
    line.push_str(rest);
    if !line.is_empty() {
        let mut cont = Some(Cont { level, text: line });
        let _ = CONT.try_with(|c| cont.take().map(|cont| c.set(cont)));
        // During thread teardown there is no slot left: the text becomes a record at once.
        if let Some(cont) = cont {
            m.log().log(cont.level, &cont.text, true);
        }
    }
    text_len
}

/// Ends the calling thread's pending continuation line, if any, as a record of its own (what
/// the kernel does when the next record arrives). `insmod` calls it after init and exit.
pub fn flush(m: &Machine) {
    if let Some(p) = CONT.try_with(ContSlot::take).ok().flatten() {
        m.log().log(p.level, &p.text, true);
    }
}

/// `int kmem_printk_text(const char *text, size_t len)`: logs one printk's formatted text (the
/// header's `printk`, `vprintk` and `pr_*` call it). Returns the length of the message without
/// its level prefixes and trailing newline, or `-EINVAL` for NULL.
///
/// # Safety
/// `text` is NULL or points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_printk_text(text: *const c_char, len: usize) -> c_int {
    ffi_boundary("printk", -libc::EINVAL, |m| {
        if text.is_null() {
            report_null(m, "printk", "format", Location::caller());
            return -libc::EINVAL;
        }
        // SAFETY: Not NULL (checked) and `len` readable bytes (caller's contract).
        let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
        log_printk(m, bytes).try_into().unwrap_or(c_int::MAX)
    })
}

/// `void dump_stack(void)`: the call-trace part of a report, into the log.
#[unsafe(no_mangle)]
pub extern "C" fn dump_stack() {
    ffi_boundary("dump_stack", (), |m| {
        flush(m);
        m.platform().dump_stack(Location::caller());
    });
}

/// `void kmem_bug(const char *file, int line)`, what the header's `BUG()` and `BUG_ON()` call:
/// lib/bug.c's `kernel BUG at <file>:<line>!` at `KERN_CRIT` and the stack in the log, the
/// line on stderr as well unless the log echoes it there (a program has no console to show the
/// oops), then the process ends with `abort()` as the oops ends the task. Never returns;
/// without a machine it still reports on stderr and aborts.
///
/// # Safety
/// `file` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_bug(file: *const c_char, line: c_int) -> ! {
    use std::io::Write as _;
    let file = if file.is_null() {
        std::borrow::Cow::Borrowed("(unknown)")
    } else {
        // SAFETY: Not NULL (checked) and NUL-terminated (caller's contract).
        unsafe { std::ffi::CStr::from_ptr(file) }.to_string_lossy()
    };
    let text = format!("kernel BUG at {file}:{line}!\n");
    let echoed = crate::boundary::machine_or_report().is_some_and(|m| {
        catch_unwind(AssertUnwindSafe(|| {
            flush(m);
            m.printk(Level::Crit, &text);
            m.platform().dump_stack(Location::caller());
            m.log().echoes(Level::Crit)
        }))
        .unwrap_or(false)
    });
    if !echoed {
        // Write errors are ignored: nothing may stop the abort.
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(parse_prefix(b"\x013oops"), (Some(Level::Err), false, &b"oops"[..]));
        assert_eq!(parse_prefix(b"plain"), (None, false, &b"plain"[..]));
        assert_eq!(parse_prefix(b"\x01cmore"), (None, true, &b"more"[..]));
        assert_eq!(parse_prefix(b"\x01d\x016x"), (Some(Level::Info), false, &b"x"[..]));
        assert_eq!(parse_prefix(b"\x014\x016x"), (Some(Level::Warning), false, &b"x"[..]), "the first level wins");
        assert_eq!(parse_prefix(b"\x01zx"), (None, false, &b"\x01zx"[..]), "not a level: kept as text");
    }

    #[test]
    fn continuation_lines_join_only_with_kern_cont() {
        let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build().unwrap();
        m.log().clear();
        log_printk(&m, b"\x016one");
        log_printk(&m, b"\x01c two\n");
        log_printk(&m, b"\x013three");
        log_printk(&m, b"four\nfive\n");
        log_printk(&m, b"six");
        flush(&m);
        let recs: Vec<_> = m.log().records().into_iter().map(|r| (r.level, r.text)).collect();
        let want = [
            (Level::Info, "one two"),
            (Level::Err, "three"),
            (Level::Warning, "four"),
            (Level::Warning, "five"),
            (Level::Warning, "six"),
        ];
        assert_eq!(recs, want.map(|(l, t)| (l, t.to_owned())));
    }

    #[test]
    fn a_thread_exiting_with_a_pending_line_logs_it() {
        let m = crate::machine().expect("the default machine");
        let marker = "pending at thread exit 7f3a";
        std::thread::spawn(move || {
            log_printk(m, format!("\x016{marker}").as_bytes());
        })
        .join()
        .unwrap();
        let rec = m.log().records().into_iter().find(|r| r.text == marker);
        assert_eq!(rec.map(|r| r.level), Some(Level::Info));
    }
}
