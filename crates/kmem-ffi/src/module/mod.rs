//! Loading C modules (`kmem insmod`): what the kernel's `load_module` and `do_init_module` do,
//! over `dlopen`.
//!
//! A module is a shared object built from kernel-style C against `include/` (`gcc -shared
//! -fPIC`), not linked against anything: its undefined symbols (`printk`'s backend,
//! `__get_free_pages`, ...) resolve at load time against the exports of the process that loads
//! it — the `kmem` binary, which exports the whole C ABI as the kernel exports its symbol
//! table. `module_init(fn)` defines `init_module` as an alias of `fn` and `module_exit(fn)`
//! defines `cleanup_module`, exactly as the kernel's `linux/module.h` does for modules, so a
//! 2.4-style module that defines them by hand loads too. `MODULE_LICENSE` and friends are
//! `key=value` strings in `.modinfo`; `module_param` places a `struct kernel_param` in
//! `__param`. The loader reads both sections from the file, as the kernel does.
//!
//! Steps and failures, with the kernel's errno and messages:
//! 1. read the file (`could not load module`: its errno; a file that is not a regular one is
//!    `EINVAL`, one above `INT_MAX` bytes `EFBIG`, as `kernel_read_file` says);
//! 2. find `.modinfo` and `__param` (`ENOEXEC`, "Invalid module format"); a license that is not
//!    GPL-compatible taints the kernel (`<mod>: module license '<l>' taints kernel.`);
//! 3. `dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)`: an unresolved symbol is `<mod>: Unknown
//!    symbol <s> (err -2)` and `ENOENT`; a module of that name already loaded is `EEXIST`.
//!    `RTLD_DEEPBIND` makes a module's own definitions win over kmem's exports of the same name
//!    (the book's mempool.c defines its own `mempool_init`), as inside a kernel module, where
//!    only undefined symbols are resolved against the kernel;
//! 4. parameters in order (`<mod>: unknown parameter '<p>' ignored`; a bad value is
//!    `` <mod>: `<v>' invalid for parameter `<p>' `` and fails the load);
//! 5. `init_module()`: a negative return fails the load without calling exit (`-EEXIST`
//!    becomes `EBUSY`, as in `do_init_module`); a positive one is warned about and the module
//!    loads anyway.
//!
//! Invariant: a [`Module`] is live (its init returned >= 0) and its name is in `LOADED` until
//! [`Module::rmmod`] runs its exit and unloads it. Code from a module runs with the same trust
//! the kernel gives a module: it can corrupt the process, and nothing here can prevent that, so
//! [`insmod`] is `unsafe`.

pub mod elf;
pub mod params;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use kmem::{Level, Machine};
use kmem_core::platform::Platform;

use params::{KERNEL_PARAM_OPS_FL_NOARG, KernelParam, parameq};

/// glibc's `RTLD_DL_LINKMAP` for `dladdr1`.
const RTLD_DL_LINKMAP: c_int = 2;

/// The names of the modules currently loaded.
static LOADED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The start of glibc's `struct link_map` (`<link.h>`), which is public ABI.
#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const c_char,
}

/// Why `insmod` failed, as `insmod(8)` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsmodError {
    /// The file could not be read (`could not load module <path>: <strerror>`).
    Load {
        /// The path as given.
        path: String,
        /// The errno.
        errno: i32,
    },
    /// The kernel refused the module (`could not insert module <path>: <mod_strerror>`).
    Insert {
        /// The path as given.
        path: String,
        /// The (positive) errno.
        errno: i32,
    },
}

impl fmt::Display for InsmodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsmodError::Load { path, errno } => write!(f, "could not load module {path}: {}", strerror(*errno)),
            InsmodError::Insert { path, errno } => {
                write!(f, "could not insert module {path}: {}", mod_strerror(*errno))
            }
        }
    }
}

impl std::error::Error for InsmodError {}

/// Why `rmmod` failed (`rmmod: ERROR: could not remove module <name>: <strerror>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmmodError {
    /// The module's name.
    pub name: String,
    /// The errno (`EBUSY`: the module has an init but no exit).
    pub errno: i32,
}

impl fmt::Display for RmmodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not remove module {}: {}", self.name, strerror(self.errno))
    }
}

impl std::error::Error for RmmodError {}

/// `strerror(errno)` from the C library.
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: `buf` is writable for its length; the XSI `strerror_r` NUL-terminates on success.
    let ok = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) } == 0;
    if !ok {
        return format!("Unknown error {errno}");
    }
    // SAFETY: NUL-terminated by `strerror_r` on success.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// kmod's `mod_strerror`: the texts `insmod` prints for the errors modules cause.
pub fn mod_strerror(errno: i32) -> String {
    match errno {
        libc::ENOEXEC => "Invalid module format".to_owned(),
        libc::ENOENT | libc::ESRCH => "Unknown symbol in module".to_owned(),
        libc::EEXIST => "Module already in kernel".to_owned(),
        e => strerror(e),
    }
}

/// `license_is_gpl_compatible` (include/linux/license.h).
pub fn license_is_gpl_compatible(license: &str) -> bool {
    matches!(license, "GPL" | "GPL v2" | "GPL and additional rights" | "Dual BSD/GPL" | "Dual MIT/GPL" | "Dual MPL/GPL")
}

/// The module name of a file: its base name without `.so` or `.ko`, as `kmod` derives it.
pub fn module_name(path: &Path) -> String {
    let base = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stem = base.strip_suffix(".so").or_else(|| base.strip_suffix(".ko")).unwrap_or(&base);
    stem.replace('-', "_")
}

/// A loaded, live module.
pub struct Module {
    name: String,
    handle: *mut c_void,
    /// Where the loader put the module (`l_addr`; its first segment for a `-shared -fPIC`
    /// object, which is what `dladdr`'s `dli_fbase` names for an address in it).
    bias: usize,
    has_init: bool,
    exit: Option<unsafe extern "C" fn()>,
    params: Vec<*const KernelParam>,
    modinfo: Vec<(String, String)>,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").field("name", &self.name).field("params", &self.params.len()).finish()
    }
}

fn log(m: &Machine, level: Level, text: String) {
    crate::printk::flush(m);
    m.printk(level, &(text + "\n"));
}

fn dlerror_text() -> String {
    // SAFETY: `dlerror` returns NULL or a NUL-terminated string valid until the next dl call.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return String::new();
    }
    // SAFETY: Not NULL, NUL-terminated (above).
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}

/// `insmod path [param=value...]`: loads the module, sets its parameters and runs its init.
///
/// Messages go to `m`'s log as the kernel words them; the error is what `insmod(8)` prints
/// after `insmod: ERROR: `. `m` must be [`crate::machine`], the machine the exports use.
///
/// # Errors
/// See the module documentation for each step's error.
///
/// # Safety
/// Loading runs the file's native code (its ELF constructors, `init_module`, and later
/// `cleanup_module` and its parameters' `set`/`free` in [`Module::rmmod`]) and takes its
/// `__param` section for an array of the headers' `struct kernel_param`: `path` must name a
/// module built against `include/` whose code is sound (it corrupts nothing of the process's
/// and keeps every C ABI contract) and whose `__param` entries are what `module_param` made.
/// A file that does not parse as a module is refused before anything of it runs.
pub unsafe fn insmod(m: &Machine, path: &Path, args: &[String]) -> Result<Module, InsmodError> {
    let shown = path.display().to_string();
    let insert_err = |errno: i32| InsmodError::Insert { path: shown.clone(), errno };
    let load_err =
        |e: std::io::Error| InsmodError::Load { path: shown.clone(), errno: e.raw_os_error().unwrap_or(libc::EIO) };
    // The kernel's `kernel_read_file` takes a regular file only (`EINVAL`) of at most INT_MAX
    // bytes (`EFBIG`). Asked before opening: opening a FIFO waits for a writer, and reading a
    // device such as /dev/zero never ends. A directory still fails in the read (`EISDIR`).
    let meta = std::fs::metadata(path).map_err(load_err)?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(insert_err(libc::EINVAL));
    }
    if meta.len() > i32::MAX as u64 {
        return Err(insert_err(libc::EFBIG));
    }
    let bytes = std::fs::read(path).map_err(load_err)?;
    let name = module_name(path);
    let sections = (|| {
        let modinfo = elf::find_section(&bytes, ".modinfo")?;
        let modinfo = match modinfo {
            Some(s) => elf::modinfo(elf::section_bytes(&bytes, &s)?),
            None => Vec::new(),
        };
        Ok::<_, elf::NotAModule>((modinfo, elf::find_section(&bytes, "__param")?))
    })();
    let (modinfo, param_section) = match sections {
        Ok(s) => s,
        Err(elf::NotAModule(why)) => {
            log(m, Level::Err, format!("{name}: {why}"));
            return Err(insert_err(libc::ENOEXEC));
        }
    };
    if LOADED.lock().unwrap_or_else(|e| e.into_inner()).contains(&name) {
        return Err(insert_err(libc::EEXIST));
    }
    let license = modinfo.iter().find(|(k, _)| k == "license").map_or("unspecified", |(_, v)| v.as_str());
    if !license_is_gpl_compatible(license) {
        log(m, Level::Warning, format!("{name}: module license '{license}' taints kernel."));
        static TAINT: std::sync::Once = std::sync::Once::new();
        TAINT.call_once(|| log(m, Level::Warning, "Disabling lock debugging due to kernel taint".to_owned()));
    }

    // dlopen searches the library path for a name without a slash; a module path never does.
    let mut dl_path = path.as_os_str().to_owned();
    if !path.to_string_lossy().contains('/') {
        dl_path = std::ffi::OsString::from("./");
        dl_path.push(path.as_os_str());
    }
    let c_path = CString::new(dl_path.into_encoded_bytes()).map_err(|_| insert_err(libc::EINVAL))?;
    // SAFETY: `c_path` is NUL-terminated. Loading runs the module's constructors: the module is
    // trusted code, as a kernel module is (this function's contract).
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND) };
    if handle.is_null() {
        let why = dlerror_text();
        if let Some(sym) = why.split("undefined symbol: ").nth(1) {
            let sym = sym.split([',', ' ', ')']).next().unwrap_or(sym);
            log(m, Level::Warning, format!("{name}: Unknown symbol {sym} (err -2)"));
            return Err(insert_err(libc::ENOENT));
        }
        log(m, Level::Err, format!("{name}: {why}"));
        return Err(insert_err(libc::ENOEXEC));
    }
    let mut lm: *mut LinkMap = std::ptr::null_mut();
    // SAFETY: `handle` is a live handle; RTLD_DI_LINKMAP stores a `struct link_map *`.
    let got = unsafe { libc::dlinfo(handle, libc::RTLD_DI_LINKMAP, (&raw mut lm).cast()) };
    if got != 0 || lm.is_null() {
        // SAFETY: `handle` is live and closed once.
        unsafe { libc::dlclose(handle) };
        return Err(insert_err(libc::ENOEXEC));
    }
    // SAFETY: `lm` is the module's live link map (dlinfo succeeded).
    let bias = unsafe { (*lm).l_addr };

    let mut module =
        Module { name: name.clone(), handle, bias, has_init: false, exit: None, params: Vec::new(), modinfo };
    if let Some(s) = param_section {
        let size = size_of::<KernelParam>() as u64;
        if !s.alloc || s.size % size != 0 {
            log(m, Level::Err, format!("{name}: malformed __param section"));
            module.unload(m);
            return Err(insert_err(libc::ENOEXEC));
        }
        let first = bias.wrapping_add(s.addr as usize) as *const KernelParam;
        module.params = (0..(s.size / size) as usize).map(|i| first.wrapping_add(i)).collect();
    }
    if let Err(errno) = module.parse_args(m, args) {
        module.free_params();
        module.unload(m);
        return Err(insert_err(errno));
    }
    let init = module.symbol(lm, c"init_module");
    module.exit = module.symbol(lm, c"cleanup_module").map(|f| {
        // SAFETY: `cleanup_module` is `void cleanup_module(void)` (`module_exit`).
        unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(f) }
    });
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).push(name.clone());
    if let Some(init) = init {
        module.has_init = true;
        // SAFETY: `init_module` is `int init_module(void)` (`module_init`).
        let init = unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(init) };
        // SAFETY: Running the module's init is what loading a module means (trusted code).
        let ret = unsafe { init() };
        crate::printk::flush(m);
        if ret < 0 {
            module.kmemleak_report(m);
            module.free_params();
            module.unload(m);
            // -EEXIST is how the kernel says "already loaded"; an init returning it becomes -EBUSY.
            // `wrapping_neg`: INT_MIN is no errno either, and has no positive counterpart.
            return Err(insert_err(if ret == -libc::EEXIST { libc::EBUSY } else { ret.wrapping_neg() }));
        }
        if ret > 0 {
            log(
                m,
                Level::Warning,
                format!(
                    "do_init_module: '{name}'->init suspiciously returned {ret}, it should follow 0/-E convention\ndo_init_module: loading module anyway..."
                ),
            );
            m.platform().dump_stack(std::panic::Location::caller());
        }
    }
    Ok(module)
}

impl Module {
    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `.modinfo` strings (`license`, `author`, `description`, `parm`, ...), in file order.
    pub fn modinfo(&self) -> &[(String, String)] {
        &self.modinfo
    }

    /// Whether [`Self::rmmod`] can remove it: not a module with an init but no exit.
    fn removable(&self) -> bool {
        !(self.has_init && self.exit.is_none())
    }

    /// `rmmod`: runs the exit function, frees the parameters and unloads the module. A module
    /// with an init but no exit cannot be removed (`EBUSY`), as in the kernel; it stays loaded,
    /// and with kmemleak on it is scanned then, from its writable segments (its handle is gone
    /// after this).
    ///
    /// # Errors
    /// `EBUSY` as above.
    pub fn rmmod(self, m: &Machine) -> Result<(), RmmodError> {
        if !self.removable() {
            self.kmemleak_scan(m);
            return Err(RmmodError { name: self.name.clone(), errno: libc::EBUSY });
        }
        if let Some(exit) = self.exit {
            // SAFETY: The module's exit, run once, while it is loaded.
            unsafe { exit() };
            crate::printk::flush(m);
        }
        self.kmemleak_report(m);
        self.free_params();
        self.unload(m);
        Ok(())
    }

    /// With kmemleak on, reports what the module left allocated: after its exit (or its failed
    /// init), before its code is unloaded, so its frames still have names. Nothing of the
    /// module is left to refer to them: no roots.
    fn kmemleak_report(&self, m: &Machine) {
        if crate::kmemleak::is_on() {
            // SAFETY: No roots; the recorded objects are live C ABI objects or blocks C described
            // (`kmemleak_alloc`'s contract).
            unsafe { crate::kmemleak::report(m, &[], &[]) };
        }
    }

    /// With kmemleak on, for a module that stays loaded: reports what its writable segments
    /// (its `.data` and `.bss`) do not refer to, directly or through other objects.
    fn kmemleak_scan(&self, m: &Machine) {
        if !crate::kmemleak::is_on() {
            return;
        }
        let mut lm: *mut LinkMap = std::ptr::null_mut();
        // SAFETY: `handle` is live (the module is loaded); RTLD_DI_LINKMAP stores a pointer.
        let got = unsafe { libc::dlinfo(self.handle, libc::RTLD_DI_LINKMAP, (&raw mut lm).cast()) };
        // SAFETY: `lm` is the module's live link map when `dlinfo` succeeded.
        let bias = (got == 0 && !lm.is_null()).then(|| unsafe { (*lm).l_addr });
        let roots = bias.map_or_else(Vec::new, |b| crate::kmemleak::writable_segments(|base, _| base == b));
        // SAFETY: The roots are the module's writable segments, mapped while it is loaded
        // (it is: `handle` is live); the recorded objects are live C ABI objects or blocks C
        // described (`kmemleak_alloc`'s contract).
        unsafe { crate::kmemleak::report(m, &roots, &[]) };
    }

    /// `dlsym` that only accepts a definition inside this module (not, say, glibc's own
    /// `init_module` syscall wrapper that a module without `module_init` would find).
    fn symbol(&self, lm: *mut LinkMap, name: &CStr) -> Option<*mut c_void> {
        // SAFETY: `handle` is live; `name` is NUL-terminated.
        let sym = unsafe { libc::dlsym(self.handle, name.as_ptr()) };
        if sym.is_null() {
            return None;
        }
        // SAFETY: All-zero is a valid `Dl_info` (pointers NULL).
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let mut owner: *mut c_void = std::ptr::null_mut();
        // SAFETY: `sym` is an address; `info` and `owner` are writable.
        let found = unsafe { libc::dladdr1(sym, &raw mut info, &raw mut owner, RTLD_DL_LINKMAP) };
        (found != 0 && owner == lm.cast()).then_some(sym)
    }

    fn param(&self, i: usize) -> &KernelParam {
        // SAFETY: `params[i]` is inside the module's loaded `__param` section (SHF_ALLOC, a
        // whole number of entries), relocated by `dlopen`, and the module stays loaded while
        // `self` lives.
        unsafe { &*self.params[i] }
    }

    fn param_name(&self, i: usize) -> String {
        let p = self.param(i).name;
        if p.is_null() {
            return String::new();
        }
        // SAFETY: `name` points to the module's NUL-terminated string (`__param_str_*`).
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// `parse_args` with `unknown_module_param_cb`: each `name[=value]` in order, unquoted as
    /// `next_arg` does: a whole argument in quotes loses both, and a value's opening quote goes
    /// (with its closing one, if it ends the argument).
    fn parse_args(&self, m: &Machine, args: &[String]) -> Result<(), i32> {
        for arg in args {
            let arg = match arg.strip_prefix('"') {
                Some(rest) => rest.strip_suffix('"').unwrap_or(rest),
                None => arg.as_str(),
            };
            let (pname, val) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.strip_prefix('"').map_or(v, |v| v.strip_suffix('"').unwrap_or(v)))),
                None => (arg, None),
            };
            let Some(i) = (0..self.params.len()).find(|&i| parameq(&self.param_name(i), pname)) else {
                log(m, Level::Warning, format!("{}: unknown parameter '{pname}' ignored", self.name));
                continue;
            };
            let kp = self.param(i);
            // SAFETY: `ops` is NULL or points to a `kernel_param_ops` (the module's or ours).
            let Some(ops) = (unsafe { kp.ops.as_ref() }) else { return Err(libc::EINVAL) };
            let ret = match (ops.set, val) {
                (None, _) => -libc::EINVAL,
                (Some(_), None) if ops.flags & KERNEL_PARAM_OPS_FL_NOARG == 0 => -libc::EINVAL,
                (Some(set), val) => {
                    let c_val = val.map(|v| CString::new(v).map_err(|_| libc::EINVAL)).transpose()?;
                    // SAFETY: The parameter's own setter with a NUL-terminated value (or NULL
                    // for a NOARG parameter) and its own `kernel_param`.
                    unsafe { set(c_val.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()), kp) }
                }
            };
            crate::printk::flush(m);
            match ret {
                0 => {}
                r if r == -libc::ENOSPC => {
                    log(
                        m,
                        Level::Err,
                        format!("{}: `{}' too large for parameter `{pname}'", self.name, val.unwrap_or("")),
                    );
                    return Err(-r);
                }
                r => {
                    log(
                        m,
                        Level::Err,
                        format!("{}: `{}' invalid for parameter `{pname}'", self.name, val.unwrap_or("")),
                    );
                    return Err(if r < 0 { r.wrapping_neg() } else { libc::EINVAL });
                }
            }
        }
        Ok(())
    }

    /// `destroy_params`: each parameter's `free`.
    fn free_params(&self) {
        for i in 0..self.params.len() {
            let kp = self.param(i);
            // SAFETY: As in `parse_args`.
            if let Some(free) = unsafe { kp.ops.as_ref() }.and_then(|ops| ops.free) {
                // SAFETY: The parameter's own `free` on its own `arg`.
                unsafe { free(kp.arg) };
            }
        }
    }

    /// Unloads the module's code. Callbacks it queued with `call_rcu` must not outlive it (the
    /// kernel's rule: a module's exit calls `rcu_barrier()`; without it, a callback runs
    /// unloaded code and oopses): with any still queued, that is reported; in any case an
    /// `rcu_barrier` runs them, and those another thread (kswapd) is running, before the code
    /// goes.
    fn unload(self, m: &Machine) {
        self.settle_rcu_callbacks(m);
        LOADED.lock().unwrap_or_else(|e| e.into_inner()).retain(|n| n != &self.name);
        // SAFETY: `handle` came from `dlopen` and is closed once (this consumes `self`).
        unsafe { libc::dlclose(self.handle) };
    }
}

impl Module {
    /// The `call_rcu` leftovers check of [`Module::unload`].
    fn settle_rcu_callbacks(&self, m: &Machine) {
        let mut queued = Vec::new();
        m.for_each_queued_rcu_callback(&mut |f| queued.push(f as usize));
        let mine = queued.into_iter().filter(|&f| kmem::object_of(f as *const c_void) == Some(self.bias)).count();
        if mine > 0 {
            log(
                m,
                Level::Warning,
                format!(
                    "{}: unloaded with {mine} call_rcu callback(s) of its own still queued: its exit must call rcu_barrier() (kmem runs them before its code goes)",
                    self.name
                ),
            );
        }
        m.rcu_barrier();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_error_texts() {
        assert_eq!(module_name(Path::new("./basic-mem.so")), "basic_mem");
        assert_eq!(module_name(Path::new("/x/mc.ko")), "mc");
        assert_eq!(mod_strerror(libc::ENOENT), "Unknown symbol in module");
        assert_eq!(mod_strerror(libc::ENOMEM), "Cannot allocate memory");
        assert_eq!(strerror(libc::EBUSY), "Device or resource busy");
        let e = InsmodError::Insert { path: "./m.so".into(), errno: libc::ENOEXEC };
        assert_eq!(e.to_string(), "could not insert module ./m.so: Invalid module format");
        assert!(license_is_gpl_compatible("Dual BSD/GPL"));
        assert!(!license_is_gpl_compatible("Proprietary"));
    }
}
