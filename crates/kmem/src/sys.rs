//! The host side of "physical memory": a memfd mapped once, `MAP_SHARED` (or, for a machine
//! that must survive `fork`, anonymous `MAP_PRIVATE` memory), giving pages back (hole punching,
//! or `MADV_DONTNEED` for private memory), and futex waits. With `mapping`, the only module of
//! this crate with `unsafe` code that maps memory.
//!
//! Invariant: `base .. base + len` is a live mapping of the whole memory for the life of
//! [`PhysMem`], and `base` is aligned to [`DIRECT_MAP_ALIGN`]; pfn `n` is address
//! `base + (n << 12)` and, for shared memory, memfd offset `n << 12`.

use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::fs::{FallocateFlags, MemfdFlags};
use rustix::mm::{Advice, MapFlags, ProtFlags};

use kmem_core::{MAX_PAGE_ORDER, PAGE_SHIFT, PAGE_SIZE};

/// Alignment of the direct map: the largest buddy block (4 MiB), so a block of any order is
/// aligned to its size in virtual memory as it is physically, and power-of-two kmalloc objects
/// (page-backed ones included) are naturally aligned.
pub const DIRECT_MAP_ALIGN: usize = PAGE_SIZE << MAX_PAGE_ORDER;

/// Host memory behind a machine's "physical memory".
pub struct PhysMem {
    /// The memfd of shared memory; `None` for private memory.
    fd: Option<OwnedFd>,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping is plain memory; who may touch which page is decided by the page
// allocator, which is itself `Sync`.
unsafe impl Send for PhysMem {}
// SAFETY: As above.
unsafe impl Sync for PhysMem {}

/// Maps `len` bytes at an address aligned to [`DIRECT_MAP_ALIGN`]: reserves `len` plus the
/// alignment of inaccessible address space, maps the memory over the aligned part with `map`
/// (which gets the address and must map exactly there, `MAP_FIXED`), and unmaps the slop.
fn map_aligned(len: usize, map: impl FnOnce(*mut std::ffi::c_void) -> io::Result<()>) -> io::Result<NonNull<u8>> {
    let total = len.checked_add(DIRECT_MAP_ALIGN).ok_or_else(|| io::Error::other("memory size overflows"))?;
    // SAFETY: A fresh inaccessible anonymous reservation at an address the kernel picks;
    // nothing else refers to that range.
    let raw = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            total,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )?
    };
    let start = raw as usize;
    let aligned = start.next_multiple_of(DIRECT_MAP_ALIGN);
    let unmap = |from: usize, bytes: usize| {
        if bytes > 0 {
            // SAFETY: `[from, from + bytes)` lies inside the reservation made above, which only
            // this function knows about.
            let _ = unsafe { rustix::mm::munmap(from as *mut std::ffi::c_void, bytes) };
        }
    };
    if let Err(e) = map(aligned as *mut std::ffi::c_void) {
        unmap(start, total);
        return Err(e);
    }
    unmap(start, aligned - start);
    unmap(aligned + len, start + total - (aligned + len));
    NonNull::new(aligned as *mut u8).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

impl PhysMem {
    /// Creates and maps a sparse memfd of `len` bytes (a multiple of the page size), shared:
    /// frames can be mapped again elsewhere (vmalloc, kmap), and a `fork` child shares them.
    ///
    /// The mapping starts on a [`DIRECT_MAP_ALIGN`] boundary, as the kernel's `PAGE_OFFSET`
    /// does, so the direct-map address of a naturally aligned block of any order is aligned to
    /// the block's size (`__get_free_pages(gfp, order)` is `PAGE_SIZE << order` aligned).
    ///
    /// # Errors
    /// The host refused the memfd, its size, or the mapping.
    pub fn new(len: usize) -> io::Result<Self> {
        let fd = rustix::fs::memfd_create("kmem-phys", MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        let base = map_aligned(len, |at| {
            // SAFETY: `at .. at + len` is inside the caller's fresh reservation (see
            // `map_aligned`), so `MAP_FIXED` replaces nothing else; the file has `len` bytes.
            unsafe {
                rustix::mm::mmap(
                    at,
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED | MapFlags::NORESERVE | MapFlags::FIXED,
                    &fd,
                    0,
                )
            }
            .map(drop)
            .map_err(io::Error::from)
        })?;
        Ok(Self { fd: Some(fd), base, len })
    }

    /// Maps `len` bytes (a multiple of the page size) of anonymous private memory without
    /// reserving swap (`MAP_NORESERVE`): sparse like the memfd, but a `fork` child gets a
    /// copy-on-write copy instead of sharing the bytes. Frames cannot be mapped a second time,
    /// so vmalloc and `kmap` are unavailable on such a machine.
    ///
    /// # Errors
    /// The host refused the mapping.
    pub fn new_private(len: usize) -> io::Result<Self> {
        let base = map_aligned(len, |at| {
            // SAFETY: As in `new`: inside the caller's fresh reservation.
            unsafe {
                rustix::mm::mmap_anonymous(
                    at,
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED,
                )
            }
            .map(drop)
            .map_err(io::Error::from)
        })?;
        Ok(Self { fd: None, base, len })
    }

    /// Address of pfn 0.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Bytes of "physical memory".
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the memory is empty (never, for a built machine).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the memory is private (anonymous, copy-on-write across `fork`).
    pub fn is_private(&self) -> bool {
        self.fd.is_none()
    }

    /// The memfd, for mapping frames elsewhere (vmalloc, kmap); `None` for private memory.
    ///
    /// # Safety
    /// The file is the machine's memory, which live references point into (kmem's own
    /// structures, slab objects, typed handles). The caller (and whatever it hands the fd or a
    /// clone of it to) must not write the file, change its size or punch holes in it
    /// (`set_len`, `fallocate`), nor map it other than to give frames a second address as
    /// vmalloc and `kmap` do (`MAP_SHARED`, the bytes written only by their owner), for as long
    /// as the memory is in use: a write changes bytes under `&` references, and a shrunk file
    /// makes every access past its new end fault.
    pub unsafe fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    /// Gives `nr` pages from `pfn` back to the host: they read as zero afterwards. Shared
    /// memory punches a hole in the memfd; private memory uses `madvise(MADV_DONTNEED)`.
    /// False, changing nothing, for a range outside the memory.
    ///
    /// # Safety
    /// The caller owns the pages (the page allocator, for free blocks it has isolated from its
    /// free lists): nothing else uses their bytes.
    pub unsafe fn discard(&self, pfn: usize, nr: usize) -> bool {
        let Some((offset, len)) = self.byte_range(pfn, nr) else { return false };
        let (offset, len) = (offset as u64, len as u64);
        match &self.fd {
            Some(fd) => {
                rustix::fs::fallocate(fd, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, offset, len).is_ok()
            }
            // SAFETY: In bounds of our private anonymous mapping (checked); the caller (the page
            // allocator, for blocks isolated from its free lists) owns these pages, and zero pages
            // are what it expects to find there afterwards.
            None => unsafe {
                rustix::mm::madvise(self.base.as_ptr().add(offset as usize).cast(), len as usize, Advice::LinuxDontNeed)
            }
            .is_ok(),
        }
    }

    /// Zero-fills `nr` pages from `pfn` through the internal mapping (HighMem has no direct map
    /// address, but the machine can still reach its frames). False, changing nothing, for a
    /// range outside the memory.
    ///
    /// # Safety
    /// The caller owns the pages (just allocated, or being freed under `init_on_free`):
    /// nothing else uses their bytes.
    pub unsafe fn zero(&self, pfn: usize, nr: usize) -> bool {
        let Some((offset, len)) = self.byte_range(pfn, nr) else { return false };
        // SAFETY: In bounds of the mapping (checked without overflow); the caller owns the
        // pages (its contract).
        unsafe { self.base.as_ptr().add(offset).write_bytes(0, len) };
        true
    }

    /// Copies `dst.len()` bytes at byte `offset` of frame `pfn` through the internal mapping
    /// (which reaches HighMem frames too). False, copying nothing, for bytes outside the memory
    /// or past the end of the page.
    ///
    /// # Safety
    /// The frame is one the caller may read; its bytes may change meanwhile (the copy is then a
    /// racy snapshot, as `vread_iter`'s is).
    pub unsafe fn read(&self, pfn: usize, offset: usize, dst: &mut [u8]) -> bool {
        let Some((page, _)) = self.byte_range(pfn, 1) else { return false };
        if offset.checked_add(dst.len()).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        // SAFETY: In bounds of the mapping (the page is inside it, checked, and the bytes inside
        // the page, checked); `copy` tolerates a `dst` that is these very bytes.
        unsafe { std::ptr::copy(self.base.as_ptr().add(page + offset), dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// `(offset, len)` in bytes of `nr` pages from `pfn`, if they lie inside the memory (checked
    /// arithmetic: a huge `nr` must not wrap into a "small" range).
    fn byte_range(&self, pfn: usize, nr: usize) -> Option<(usize, usize)> {
        let offset = pfn.checked_mul(1 << PAGE_SHIFT)?;
        let len = nr.checked_mul(1 << PAGE_SHIFT)?;
        (offset.checked_add(len)? <= self.len).then_some((offset, len))
    }

    /// Bytes of the memory the host currently backs (resident): the memfd's `st_blocks`, or
    /// the `Rss:` of the private mapping in `/proc/self/smaps`.
    pub fn resident_bytes(&self) -> u64 {
        match &self.fd {
            Some(fd) => rustix::fs::fstat(fd).map_or(0, |st| st.st_blocks as u64 * 512),
            None => {
                std::fs::read_to_string("/proc/self/smaps").map_or(0, |s| smaps_rss(&s, self.base.as_ptr() as usize))
            }
        }
    }
}

impl Drop for PhysMem {
    fn drop(&mut self) {
        // SAFETY: `base .. base + len` is our mapping (type invariant) and nothing refers to
        // it any more: the machine that owned it is being dropped.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The `Rss:` bytes of the mapping that starts at `start` in an `smaps` text (0 if absent).
fn smaps_rss(smaps: &str, start: usize) -> u64 {
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((from, _)) = first.split_once('-')
            && let Ok(from) = usize::from_str_radix(from, 16)
        {
            inside = from == start;
        } else if inside && let Some(kb) = line.strip_prefix("Rss:") {
            return kb.trim().trim_end_matches("kB").trim().parse::<u64>().map_or(0, |kb| kb * 1024);
        }
    }
    0
}

/// Sleeps while `*word == expected`, at most `timeout`.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
    let _ = rustix::thread::futex::wait(word, rustix::thread::futex::Flags::PRIVATE, expected, Some(&ts));
}

/// Wakes every thread sleeping on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::PRIVATE, i32::MAX as u32);
}

/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: every running thread of this process
/// executes a full memory barrier before this returns. Registers the process on first use.
/// False if the host kernel refuses (then remote per-CPU drains are not attempted).
pub fn heavy_barrier() -> bool {
    use rustix::thread::{MembarrierCommand, membarrier};
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok())
        && membarrier(MembarrierCommand::PrivateExpedited).is_ok()
}

/// The host's RAM in bytes.
pub fn host_ram() -> u64 {
    let info = rustix::system::sysinfo();
    info.totalram as u64 * u64::from(info.mem_unit)
}

/// The calling thread's id.
pub fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// The calling thread's `comm`, as the kernel's reports print `current->comm`: the task name
/// the OS keeps (`PR_GET_NAME`; the executable's name for a main thread, the name given to a
/// spawned thread), at most 15 bytes; "kmem" if the OS does not answer.
pub fn comm() -> String {
    match rustix::thread::name() {
        Ok(name) if !name.is_empty() => name.to_string_lossy().into_owned(),
        _ => "kmem".to_owned(),
    }
}
