//! The foreign part of a report's call trace: the frames of the code that called into kmem
//! from outside the object kmem is linked into — a C program or a module loaded by
//! `kmem insmod` calling `libkmem.so`, or a program running under `kmem-preload` — named as the
//! kernel's `%pS` names a return address: `symbol+0xoffset/0xsize [object]`.
//!
//! A Rust caller has `#[track_caller]` locations, which the report prints already; a C caller
//! reaches kmem through `extern "C"` functions, whose location is kmem's own. So the report
//! adds these frames, walked with glibc's `backtrace(3)` and named with `dladdr1(3)`, only on
//! report paths (never on an allocation path). Frames inside kmem's own object are left out, so
//! a Rust program with kmem linked in gets none. Symbols come from the dynamic symbol table:
//! a module's exported functions have names; an executable linked without `-rdynamic` gives
//! `object+0xoffset` instead, which `addr2line -e object 0xoffset` resolves.

use std::ffi::{CStr, c_int, c_void};
use std::fmt::Write as _;

/// Frames walked at most (kmem's own included).
const MAX_WALK: usize = 64;
/// Foreign frames printed at most.
const MAX_FOREIGN: usize = 8;
/// `RTLD_DL_SYMENT` from `<dlfcn.h>`: `dladdr1` also returns the symbol's ELF entry.
const RTLD_DL_SYMENT: c_int = 1;

/// One line per foreign frame, innermost first: the first run of frames outside kmem's object,
/// up to and including `main` (the C runtime's entry below it left out); empty when the caller
/// is in kmem's own object (a Rust program) or nothing could be walked.
pub(crate) fn foreign_frames() -> Vec<String> {
    CallChain::record().foreign_frames().into_iter().map(|(_, line)| line).collect()
}

/// The return addresses of a thread's call chain, recorded when something happens and named
/// later ([`CallChain::foreign_frames`]), while the objects they are in are still loaded:
/// kmemleak keeps one per allocation it tracks. Recording walks the stack with glibc's
/// `backtrace(3)` (no symbol lookup), some microseconds.
#[derive(Clone, Debug, Default)]
pub struct CallChain {
    ips: Vec<usize>,
}

impl CallChain {
    /// The calling thread's chain now (kmem's own frames included; naming leaves them out).
    pub fn record() -> Self {
        let mut ips = [std::ptr::null_mut::<c_void>(); MAX_WALK];
        // SAFETY: `backtrace` writes at most `MAX_WALK` return addresses into the array.
        let n = unsafe { libc::backtrace(ips.as_mut_ptr(), MAX_WALK as c_int) };
        Self { ips: ips[..usize::try_from(n).unwrap_or(0)].iter().map(|&ip| ip as usize).collect() }
    }

    /// The foreign frames, innermost first, each as its call's address and the kernel's `%pS`
    /// of it (`symbol+0xoff/0xsize [object]`): the first run of frames outside kmem's object,
    /// up to and including `main` (the C runtime's entry below it left out). Empty for a chain
    /// recorded in a Rust caller, or once the objects are unloaded.
    pub fn foreign_frames(&self) -> Vec<(usize, String)> {
        let Some(own) = object_of(foreign_frames as *const c_void) else { return Vec::new() };
        let mut frames = Vec::new();
        for &ip in &self.ips {
            // A return address points after the call; the call itself is one byte before it.
            let pc = ip.wrapping_sub(1);
            let Some(info) = describe(pc as *const c_void) else { continue };
            if info.object_base == own {
                if frames.is_empty() {
                    continue; // Still inside kmem.
                }
                break; // Back in kmem (a module's init called by `kmem insmod`): the caller's chain ends.
            }
            let symbol = info.symbol.as_deref().unwrap_or_default();
            if info.object.starts_with("libc.so") || symbol == "_start" {
                break; // The C runtime's entry below `main` (`__libc_start_call_main`, `_start`).
            }
            frames.push((pc, info.line(pc)));
            if symbol == "main" || frames.len() == MAX_FOREIGN {
                break;
            }
        }
        frames
    }
}

/// The kernel's `%pS` of a code address `ip` that is not a return address (a C caller's
/// `_THIS_IP_`): `symbol+0xoff/0xsize [object]`, or `0x<ip>` if no loaded object holds it.
pub(crate) fn name_code_address(ip: usize) -> String {
    // `line` takes the byte before a return address; this address is the code itself.
    let pc = ip.wrapping_sub(1);
    describe(ip as *const c_void).map_or_else(|| format!("{ip:#x}"), |d| d.line(pc))
}

/// What `dladdr1` tells about an address.
struct Described {
    object_base: usize,
    object: String,
    symbol: Option<String>,
    symbol_addr: usize,
    symbol_size: u64,
}

impl Described {
    /// `symbol+0xoff/0xsize [object]`, or `0xoff [object]` (from the object's base) without a
    /// symbol.
    fn line(&self, pc: usize) -> String {
        let mut line = String::new();
        match &self.symbol {
            Some(name) => {
                let _ = write!(line, "{name}+{:#x}", (pc + 1).wrapping_sub(self.symbol_addr));
                if self.symbol_size > 0 {
                    let _ = write!(line, "/{:#x}", self.symbol_size);
                }
            }
            None => {
                let _ = write!(line, "{:#x}", (pc + 1).wrapping_sub(self.object_base));
            }
        }
        let _ = write!(line, " [{}]", self.object);
        line
    }
}

/// The load address of the object (executable or shared object) that contains `addr`
/// (`dladdr`'s `dli_fbase`), or `None` if no loaded object does.
pub fn object_of(addr: *const c_void) -> Option<usize> {
    describe(addr).map(|d| d.object_base)
}

fn describe(addr: *const c_void) -> Option<Described> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let mut sym: *mut c_void = std::ptr::null_mut();
    // SAFETY: `info` and `sym` are valid for writes; `dladdr1` only reads the loader's tables
    // for `addr` (any value is allowed) and returns 0 if no object contains it.
    if unsafe { libc::dladdr1(addr, &mut info, &mut sym, RTLD_DL_SYMENT) } == 0 || info.dli_fbase.is_null() {
        return None;
    }
    // SAFETY: On success `dli_fname` is the object's NUL-terminated path (or NULL) and
    // `dli_sname` the symbol's NUL-terminated name (or NULL), both owned by the loader and alive
    // while the object is loaded, which it is (it contains a frame of ours).
    let text = |p: *const std::ffi::c_char| (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy());
    let path = text(info.dli_fname).unwrap_or_default();
    let object = path.rsplit('/').next().unwrap_or_default();
    // Shared objects as modules are named: `basicmem.so` prints as `[basicmem]`.
    let object = object.strip_suffix(".so").unwrap_or(object).to_owned();
    let symbol = text(info.dli_sname).map(|s| s.into_owned());
    let symbol_size = if symbol.is_some() && !sym.is_null() {
        // SAFETY: With `RTLD_DL_SYMENT`, a non-NULL `sym` points at the symbol's `Elf64_Sym` in
        // the loaded object's dynamic symbol table.
        unsafe { (*sym.cast::<libc::Elf64_Sym>()).st_size }
    } else {
        0
    };
    Some(Described {
        object_base: info.dli_fbase as usize,
        object: if object.is_empty() { "?".to_owned() } else { object },
        symbol,
        symbol_addr: info.dli_saddr as usize,
        symbol_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_caller_has_no_foreign_frames() {
        // This test binary has kmem linked in: every frame up to `main` is kmem's own object,
        // and the C runtime's entry below it is left out.
        assert_eq!(foreign_frames(), Vec::<String>::new());
    }

    #[test]
    fn lines_read_as_the_kernels_ps() {
        let d = Described {
            object_base: 0x1000,
            object: "basicmem".into(),
            symbol: Some("init_module".into()),
            symbol_addr: 0x1100,
            symbol_size: 0x6b,
        };
        // `pc` is the return address minus one; the offset is the return address's.
        assert_eq!(d.line(0x114b), "init_module+0x4c/0x6b [basicmem]");
        let d = Described { symbol: None, symbol_size: 0, ..d };
        assert_eq!(d.line(0x20a3), "0x10a4 [basicmem]", "no symbol: the offset in the object");
        let d = Described { symbol: Some("main".into()), symbol_addr: 0x2000, ..d };
        assert_eq!(d.line(0x2023), "main+0x24 [basicmem]", "no size known");
    }

    #[test]
    fn kmem_itself_is_described() {
        let d = describe(foreign_frames as *const c_void).expect("our own code is in a loaded object");
        assert_ne!(d.object_base, 0);
        assert!(!d.object.is_empty());
    }
}
