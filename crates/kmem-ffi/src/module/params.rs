//! Module parameters (`linux/moduleparam.h`): `struct kernel_param` as the header lays it out
//! in a module's `__param` section, the standard `param_ops_*` with their `param_set_*` and
//! `param_get_*` functions, and the kernel's `kstrto*` parsing rules they use.
//!
//! Invariant: a `charp` parameter points either to the module's own initial string or to a
//! string allocated here; only the latter are freed (on the next set, and by `param_free_charp`
//! when the module is removed).

use std::collections::HashSet;
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::sync::Mutex;

/// `KERNEL_PARAM_OPS_FL_NOARG`: the parameter may be given without `=value` (bools).
pub const KERNEL_PARAM_OPS_FL_NOARG: c_uint = 1 << 0;

/// `struct kernel_param_ops`.
#[repr(C)]
pub struct KernelParamOps {
    /// `KERNEL_PARAM_OPS_FL_*`.
    pub flags: c_uint,
    /// Parses `val` (NULL for a bare `name` with `FL_NOARG`) into `kp->arg`.
    pub set: Option<unsafe extern "C" fn(val: *const c_char, kp: *const KernelParam) -> c_int>,
    /// Prints the value into a `PAGE_SIZE` buffer; returns the length.
    pub get: Option<unsafe extern "C" fn(buffer: *mut c_char, kp: *const KernelParam) -> c_int>,
    /// Frees what `set` allocated, at module removal.
    pub free: Option<unsafe extern "C" fn(arg: *mut c_void)>,
}

/// `struct kernel_param` (the header's layout; `mod` is always NULL here).
#[repr(C)]
pub struct KernelParam {
    /// The parameter's name.
    pub name: *const c_char,
    /// `THIS_MODULE`.
    pub module: *mut c_void,
    /// How to set and get it.
    pub ops: *const KernelParamOps,
    /// sysfs permissions (unused: there is no sysfs).
    pub perm: u16,
    /// Initcall level for built-in parameters (-1 in modules).
    pub level: i8,
    /// `KERNEL_PARAM_FL_*`.
    pub flags: u8,
    /// The variable (or `struct kparam_string`/`kparam_array`).
    pub arg: *mut c_void,
}

const _: () = assert!(size_of::<KernelParam>() == 40);

/// `kstrtoull(s, 0, ...)` and friends: an optional `+`, a `0x` (hex) or `0` (octal) prefix, the
/// digits, and at most one trailing newline. `Err(-EINVAL)` for anything else, `Err(-ERANGE)`
/// on overflow.
pub fn kstrtoull(s: &[u8]) -> Result<u64, c_int> {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', rest @ ..] if rest.first().is_some_and(u8::is_ascii_hexdigit) => (16, rest),
        [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
        _ => (10, s),
    };
    if digits.is_empty() {
        return Err(-libc::EINVAL);
    }
    let mut value: u64 = 0;
    for &d in digits {
        let digit = (d as char).to_digit(radix).ok_or(-libc::EINVAL)?;
        value =
            value.checked_mul(u64::from(radix)).and_then(|v| v.checked_add(u64::from(digit))).ok_or(-libc::ERANGE)?;
    }
    Ok(value)
}

/// `kstrtoll(s, 0, ...)`: [`kstrtoull`] with an optional leading `-`.
pub fn kstrtoll(s: &[u8]) -> Result<i64, c_int> {
    match s.strip_prefix(b"-") {
        Some(rest) => {
            let v = kstrtoull(rest)?;
            if v > i64::MAX as u64 + 1 { Err(-libc::ERANGE) } else { Ok((v as i64).wrapping_neg()) }
        }
        None => i64::try_from(kstrtoull(s)?).map_err(|_| -libc::ERANGE),
    }
}

/// `kstrtobool`: `y Y t T 1 on` are true, `n N f F 0 off` false (first characters decide).
pub fn kstrtobool(s: &[u8]) -> Result<bool, c_int> {
    match s {
        [b'y' | b'Y' | b't' | b'T' | b'1', ..] => Ok(true),
        [b'n' | b'N' | b'f' | b'F' | b'0', ..] => Ok(false),
        [b'o' | b'O', b'n' | b'N', ..] => Ok(true),
        [b'o' | b'O', b'f' | b'F', ..] => Ok(false),
        _ => Err(-libc::EINVAL),
    }
}

/// The bytes of `val`, or `-EINVAL` for NULL.
///
/// # Safety
/// `val` is NULL or NUL-terminated.
unsafe fn val_bytes<'a>(val: *const c_char) -> Result<&'a [u8], c_int> {
    if val.is_null() {
        return Err(-libc::EINVAL);
    }
    // SAFETY: Not NULL; NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(val) }.to_bytes())
}

/// Writes `text` into a `PAGE_SIZE` sysfs buffer; returns its length.
///
/// # Safety
/// `buffer` has `PAGE_SIZE` writable bytes.
unsafe fn put(buffer: *mut c_char, text: &str) -> c_int {
    let n = text.len().min(kmem::PAGE_SIZE - 1);
    // SAFETY: `n + 1 <= PAGE_SIZE` bytes into a `PAGE_SIZE` buffer (caller's contract).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buffer.cast::<u8>(), n);
        buffer.add(n).write(0);
    }
    n as c_int
}

/// Defines `param_set_<ty>`, `param_get_<ty>` and `param_ops_<ty>` for an integer type.
macro_rules! int_param {
    ($ty:ty, $set:ident, $get:ident, $ops:ident, $parse:ident, $fmt:literal) => {
        #[doc = concat!("`int ", stringify!($set), "(const char *val, const struct kernel_param *kp)`.")]
        ///
        /// # Safety
        /// `val` is NULL or NUL-terminated; `kp` points to a parameter whose `arg` is the variable.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $set(val: *const c_char, kp: *const KernelParam) -> c_int {
            crate::boundary::ffi_guard(stringify!($set), -libc::EINVAL, || {
                // SAFETY: Forwarded contract.
                let parsed = unsafe { val_bytes(val) }.and_then($parse);
                match parsed.and_then(|v| <$ty>::try_from(v).map_err(|_| -libc::ERANGE)) {
                    Ok(v) => {
                        // SAFETY: `kp` is valid and `arg` is a `$ty` variable (`param_check_*`).
                        unsafe { (*kp).arg.cast::<$ty>().write_unaligned(v) };
                        0
                    }
                    Err(e) => e,
                }
            })
        }

        #[doc = concat!("`int ", stringify!($get), "(char *buffer, const struct kernel_param *kp)`.")]
        ///
        /// # Safety
        /// `buffer` has `PAGE_SIZE` writable bytes; `kp` as for the setter.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $get(buffer: *mut c_char, kp: *const KernelParam) -> c_int {
            crate::boundary::ffi_guard(stringify!($get), -libc::EINVAL, || {
                // SAFETY: `kp` is valid and `arg` is a `$ty` variable.
                let v = unsafe { (*kp).arg.cast::<$ty>().read_unaligned() };
                // SAFETY: Forwarded contract.
                unsafe { put(buffer, &format!($fmt, v)) }
            })
        }

        #[doc = concat!("`const struct kernel_param_ops ", stringify!($ops), "`.")]
        #[unsafe(no_mangle)]
        pub static $ops: KernelParamOps = KernelParamOps { flags: 0, set: Some($set), get: Some($get), free: None };
    };
}

int_param!(u8, param_set_byte, param_get_byte, param_ops_byte, kstrtoull, "{}\n");
int_param!(i16, param_set_short, param_get_short, param_ops_short, kstrtoll, "{}\n");
int_param!(u16, param_set_ushort, param_get_ushort, param_ops_ushort, kstrtoull, "{}\n");
int_param!(i32, param_set_int, param_get_int, param_ops_int, kstrtoll, "{}\n");
int_param!(u32, param_set_uint, param_get_uint, param_ops_uint, kstrtoull, "{}\n");
int_param!(i64, param_set_long, param_get_long, param_ops_long, kstrtoll, "{}\n");
int_param!(u64, param_set_ulong, param_get_ulong, param_ops_ulong, kstrtoull, "{}\n");
int_param!(u64, param_set_ullong, param_get_ullong, param_ops_ullong, kstrtoull, "{}\n");
int_param!(u32, param_set_hexint, param_get_hexint, param_ops_hexint, kstrtoull, "{:#010x}\n");

/// `int param_set_bool(const char *val, const struct kernel_param *kp)`: NULL means true.
///
/// # Safety
/// `val` is NULL or NUL-terminated; `kp->arg` is a `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn param_set_bool(val: *const c_char, kp: *const KernelParam) -> c_int {
    crate::boundary::ffi_guard("param_set_bool", -libc::EINVAL, || {
        // SAFETY: Forwarded contract.
        let parsed = if val.is_null() { Ok(true) } else { unsafe { val_bytes(val) }.and_then(kstrtobool) };
        match parsed {
            Ok(v) => {
                // SAFETY: `arg` is a C `bool` (one byte, 0 or 1).
                unsafe { (*kp).arg.cast::<u8>().write(u8::from(v)) };
                0
            }
            Err(e) => e,
        }
    })
}

/// `int param_get_bool(char *buffer, const struct kernel_param *kp)`: `Y` or `N`.
///
/// # Safety
/// `buffer` has `PAGE_SIZE` bytes; `kp->arg` is a `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn param_get_bool(buffer: *mut c_char, kp: *const KernelParam) -> c_int {
    crate::boundary::ffi_guard("param_get_bool", -libc::EINVAL, || {
        // SAFETY: `arg` is a C `bool`.
        let v = unsafe { (*kp).arg.cast::<u8>().read() } != 0;
        // SAFETY: Forwarded contract.
        unsafe { put(buffer, if v { "Y\n" } else { "N\n" }) }
    })
}

/// `const struct kernel_param_ops param_ops_bool`.
#[unsafe(no_mangle)]
pub static param_ops_bool: KernelParamOps = KernelParamOps {
    flags: KERNEL_PARAM_OPS_FL_NOARG,
    set: Some(param_set_bool),
    get: Some(param_get_bool),
    free: None,
};

/// `int param_set_invbool(const char *val, const struct kernel_param *kp)`: stores the inverse.
///
/// # Safety
/// As [`param_set_bool`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn param_set_invbool(val: *const c_char, kp: *const KernelParam) -> c_int {
    crate::boundary::ffi_guard("param_set_invbool", -libc::EINVAL, || {
        // SAFETY: Forwarded contract.
        let parsed = if val.is_null() { Ok(true) } else { unsafe { val_bytes(val) }.and_then(kstrtobool) };
        match parsed {
            Ok(v) => {
                // SAFETY: `arg` is a C `bool`.
                unsafe { (*kp).arg.cast::<u8>().write(u8::from(!v)) };
                0
            }
            Err(e) => e,
        }
    })
}

/// `int param_get_invbool(char *buffer, const struct kernel_param *kp)`.
///
/// # Safety
/// As [`param_get_bool`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn param_get_invbool(buffer: *mut c_char, kp: *const KernelParam) -> c_int {
    crate::boundary::ffi_guard("param_get_invbool", -libc::EINVAL, || {
        // SAFETY: `arg` is a C `bool`.
        let v = unsafe { (*kp).arg.cast::<u8>().read() } != 0;
        // SAFETY: Forwarded contract.
        unsafe { put(buffer, if v { "N\n" } else { "Y\n" }) }
    })
}

/// `const struct kernel_param_ops param_ops_invbool`.
#[unsafe(no_mangle)]
pub static param_ops_invbool: KernelParamOps = KernelParamOps {
    flags: KERNEL_PARAM_OPS_FL_NOARG,
    set: Some(param_set_invbool),
    get: Some(param_get_invbool),
    free: None,
};

/// Strings `param_set_charp` allocated (as addresses), so only those are ever freed.
static CHARP: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn free_if_ours(p: *mut c_char) {
    let mut set = CHARP.lock().unwrap_or_else(|e| e.into_inner());
    if set.get_or_insert_with(HashSet::new).remove(&(p as usize)) {
        // SAFETY: `p` came from `CString::into_raw` in `param_set_charp` and was removed from
        // the set, so it is freed exactly once.
        drop(unsafe { CString::from_raw(p) });
    }
}

/// `int param_set_charp(const char *val, const struct kernel_param *kp)`: stores a copy of
/// `val`; more than 1024 bytes is `<name>: string parameter too long` and `-ENOSPC`, as in the
/// kernel.
///
/// # Safety
/// `val` is NULL or NUL-terminated; `kp->arg` is a `char *` variable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn param_set_charp(val: *const c_char, kp: *const KernelParam) -> c_int {
    crate::boundary::ffi_guard("param_set_charp", -libc::EINVAL, || {
        // SAFETY: Forwarded contract.
        let bytes = match unsafe { val_bytes(val) } {
            Ok(b) => b,
            Err(e) => return e,
        };
        if bytes.len() > 1024 {
            if let Some(m) = crate::boundary::machine_or_report() {
                // SAFETY: `kp` is a valid parameter whose `name` is NUL-terminated (contract).
                let name = unsafe { crate::boundary::c_str((*kp).name) }.unwrap_or_default();
                m.printk(kmem::Level::Err, &format!("{name}: string parameter too long\n"));
            }
            return -libc::ENOSPC;
        }
        let copy = CString::new(bytes).expect("no NUL inside a C string").into_raw();
        CHARP.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new).insert(copy as usize);
        // SAFETY: `arg` is a `char *` variable of the module (`param_check_charp`).
        let slot = unsafe { (*kp).arg.cast::<*mut c_char>() };
        // SAFETY: As above.
        let old = unsafe { slot.read_unaligned() };
        free_if_ours(old);
        // SAFETY: As above.
        unsafe { slot.write_unaligned(copy) };
        0
    })
}

/// `int param_get_charp(char *buffer, const struct kernel_param *kp)`.
///
/// # Safety
/// `buffer` has `PAGE_SIZE` bytes; `kp->arg` is a `char *` that is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn param_get_charp(buffer: *mut c_char, kp: *const KernelParam) -> c_int {
    crate::boundary::ffi_guard("param_get_charp", -libc::EINVAL, || {
        // SAFETY: `arg` is a `char *` variable.
        let s = unsafe { (*kp).arg.cast::<*const c_char>().read_unaligned() };
        // SAFETY: NULL or NUL-terminated (contract).
        let text = if s.is_null() { "(null)".into() } else { unsafe { CStr::from_ptr(s) }.to_string_lossy() };
        // SAFETY: Forwarded contract.
        unsafe { put(buffer, &format!("{text}\n")) }
    })
}

/// `void param_free_charp(void *arg)`: frees a string `param_set_charp` stored.
///
/// # Safety
/// `arg` is a `char *` variable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn param_free_charp(arg: *mut c_void) {
    crate::boundary::ffi_guard("param_free_charp", (), || {
        // SAFETY: `arg` is a `char *` variable (contract).
        let slot = arg.cast::<*mut c_char>();
        // SAFETY: As above.
        let p = unsafe { slot.read_unaligned() };
        free_if_ours(p);
        // SAFETY: As above.
        unsafe { slot.write_unaligned(std::ptr::null_mut()) };
    })
}

/// `const struct kernel_param_ops param_ops_charp`.
#[unsafe(no_mangle)]
pub static param_ops_charp: KernelParamOps =
    KernelParamOps { flags: 0, set: Some(param_set_charp), get: Some(param_get_charp), free: Some(param_free_charp) };

/// `parameq`: parameter names compare with `-` and `_` equal.
pub fn parameq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| x == y || (x == b'-' || x == b'_') && (y == b'-' || y == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstrto_follows_the_kernel() {
        assert_eq!(kstrtoull(b"42"), Ok(42));
        assert_eq!(kstrtoull(b"+42\n"), Ok(42));
        assert_eq!(kstrtoull(b"0x1F"), Ok(31));
        assert_eq!(kstrtoull(b"017"), Ok(15));
        assert_eq!(kstrtoull(b"0"), Ok(0));
        assert_eq!(kstrtoull(b"08"), Err(-libc::EINVAL));
        assert_eq!(kstrtoull(b""), Err(-libc::EINVAL));
        assert_eq!(kstrtoull(b"12a"), Err(-libc::EINVAL));
        assert_eq!(kstrtoull(b"-1"), Err(-libc::EINVAL));
        assert_eq!(kstrtoull(b"18446744073709551616"), Err(-libc::ERANGE));
        assert_eq!(kstrtoll(b"-5"), Ok(-5));
        assert_eq!(kstrtoll(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(kstrtoll(b"9223372036854775808"), Err(-libc::ERANGE));
        assert_eq!(kstrtobool(b"on"), Ok(true));
        assert_eq!(kstrtobool(b"off"), Ok(false));
        assert_eq!(kstrtobool(b"Yes"), Ok(true));
        assert_eq!(kstrtobool(b"x"), Err(-libc::EINVAL));
        assert!(parameq("max-items", "max_items"));
        assert!(!parameq("max_item", "max_items"));
    }
}
