//! Host calls of the library: anonymous mappings (the bootstrap arena and allocations above
//! kmalloc's limit), `errno`, yielding, and the `fork`/exit hooks. None of them calls `malloc`.

use core::ffi::c_int;
use core::ptr;

/// The host page size (x86_64 and the machine's `PAGE_SIZE`).
pub const PAGE: usize = kmem::PAGE_SIZE;

/// Maps `len` bytes of sparse read-write anonymous memory aligned to `align` (a power of two,
/// at least a page): `MAP_NORESERVE`, so untouched pages cost nothing. Returns the address.
pub fn map_arena(len: usize, align: usize) -> Option<usize> {
    map_aligned(len, align, libc::MAP_NORESERVE)
}

/// Maps `len` bytes (whole pages) of anonymous memory aligned to `align` (a power of two, at
/// least a page), for one allocation above kmalloc's limit. Returns the address.
pub fn map_block(len: usize, align: usize) -> Option<usize> {
    map_aligned(len, align, 0)
}

fn map_aligned(len: usize, align: usize, extra: c_int) -> Option<usize> {
    let slop = align.max(PAGE) - PAGE;
    let total = len.checked_add(slop)?;
    // SAFETY: A fresh private anonymous mapping at an address the kernel picks; it replaces
    // nothing.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(align.max(PAGE));
    unmap(start, aligned - start);
    unmap(aligned + len, start + total - (aligned + len));
    Some(aligned)
}

/// Unmaps `[addr, addr + len)`, a range of a mapping this library made (no-op for `len == 0`).
pub fn unmap(addr: usize, len: usize) {
    if len > 0 {
        // SAFETY: Callers pass only ranges of mappings this library made and no longer uses.
        unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    }
}

/// Resizes the mapping `[addr, addr + old)` to `new` bytes (whole pages), moving it if needed.
/// Returns the new address; on failure the old mapping is untouched.
pub fn remap(addr: usize, old: usize, new: usize) -> Option<usize> {
    // SAFETY: `[addr, addr + old)` is a whole mapping this library made for one allocation,
    // which its owner is resizing; `MREMAP_MAYMOVE` picks a free place if it must move.
    let p = unsafe { libc::mremap(addr as *mut libc::c_void, old, new, libc::MREMAP_MAYMOVE) };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// Gives `[addr, addr + len)` (whole pages of a private anonymous mapping of this library, free)
/// back to the host: they read as zero afterwards.
pub fn discard(addr: usize, len: usize) {
    // SAFETY: Callers pass only free pages of this library's own anonymous mappings.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Sets the calling thread's `errno`.
pub fn set_errno(code: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's `errno`, valid for the thread's
    // life.
    unsafe { *libc::__errno_location() = code };
}

/// Yields the host CPU (in spin waits).
pub fn relax() {
    // SAFETY: No preconditions.
    unsafe { libc::sched_yield() };
}

/// A copy of standard error made before the program runs, so a report at exit still reaches
/// it after the program closed fd 2 (coreutils' `close_stdout` does).
pub struct SavedStderr(c_int);

impl SavedStderr {
    /// Duplicates fd 2 (close-on-exec, numbered from 100 to stay out of the program's way);
    /// `None` if it is not open.
    pub fn new() -> Option<Self> {
        // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` only creates a new descriptor.
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100) };
        (fd >= 0).then_some(Self(fd))
    }

    /// Writes all of `bytes` to it.
    pub fn write_all(&self, bytes: &[u8]) {
        write_fd(self.0, bytes);
    }
}

/// Writes all of `bytes` to standard error (unbuffered, no allocation).
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes);
}

fn write_fd(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Registers the `fork` handlers (`pthread_atfork`) and the exit handler (`atexit`).
pub fn register_hooks(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
    exit: Option<extern "C" fn()>,
) {
    // SAFETY: The handlers are plain functions of this library, which stays loaded (it is
    // preloaded and never unloaded).
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        if let Some(exit) = exit {
            libc::atexit(exit);
        }
    }
}

/// A process-wide thread-exit hook: a `pthread` key whose destructor gets the value the thread
/// set (a non-null pointer).
pub struct ExitKey(libc::pthread_key_t);

impl ExitKey {
    /// Creates the key; `None` if the host has no keys left.
    pub fn new(destructor: unsafe extern "C" fn(*mut libc::c_void)) -> Option<Self> {
        let mut key = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor is a plain function of this
        // library, which is never unloaded.
        (unsafe { libc::pthread_key_create(&mut key, Some(destructor)) } == 0).then_some(Self(key))
    }

    /// Arms the destructor for the calling thread with `value`.
    pub fn set(&self, value: *const libc::c_void) {
        // SAFETY: The key was created by `new` and is never deleted.
        unsafe { libc::pthread_setspecific(self.0, value) };
    }
}
