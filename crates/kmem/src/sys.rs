//! The host side of "physical memory": a memfd mapped once, `MAP_SHARED`, hole punching to
//! give pages back, and futex waits. The only module of this crate with `unsafe` code.
//!
//! Invariant: `base .. base + len` is a live mapping of the whole memfd for the life of
//! [`PhysMem`]; pfn `n` is file offset `n << 12` and address `base + (n << 12)`.

use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::fs::{FallocateFlags, MemfdFlags};
use rustix::mm::{MapFlags, ProtFlags};

use kmem_core::PAGE_SHIFT;

/// Alignment of the direct map's start: one max-order block (4 MiB).
pub const DIRECT_MAP_ALIGN: usize = kmem_core::PAGE_SIZE << kmem_core::MAX_PAGE_ORDER;

/// A memfd of `len` bytes, mapped read-write and shared.
pub struct PhysMem {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping is plain shared memory; who may touch which page is decided by the
// page allocator, which is itself `Sync`.
unsafe impl Send for PhysMem {}
// SAFETY: As above.
unsafe impl Sync for PhysMem {}

impl PhysMem {
    /// Creates and maps a sparse memfd of `len` bytes (a multiple of the page size).
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
        let span = len.checked_add(DIRECT_MAP_ALIGN).ok_or_else(|| io::Error::other("memory size overflows"))?;
        // SAFETY: A fresh private reservation at an address the kernel picks; nothing else
        // refers to that range.
        let reserved = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                span,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        let start = reserved as usize;
        let aligned = start.next_multiple_of(DIRECT_MAP_ALIGN);
        // SAFETY: `aligned .. aligned + len` lies inside the reservation made above, which only
        // this function knows about, so replacing it with the memfd mapping clobbers nothing.
        let ptr = unsafe {
            rustix::mm::mmap(
                aligned as *mut _,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::NORESERVE | MapFlags::FIXED,
                &fd,
                0,
            )
        };
        let ptr = match ptr {
            Ok(ptr) => ptr,
            Err(e) => {
                // SAFETY: The whole reservation is ours and unused.
                let _ = unsafe { rustix::mm::munmap(reserved, span) };
                return Err(e.into());
            }
        };
        // SAFETY: The slack before and after the memfd mapping is the rest of our reservation.
        unsafe {
            if aligned > start {
                let _ = rustix::mm::munmap(reserved, aligned - start);
            }
            let tail = aligned + len;
            if start + span > tail {
                let _ = rustix::mm::munmap(tail as *mut _, start + span - tail);
            }
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Self { fd, base, len })
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

    /// The memfd, for mapping frames elsewhere (vmalloc, kmap).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Punches a hole over `nr` pages from `pfn`: the host frees them and they read as zero.
    pub fn discard(&self, pfn: usize, nr: usize) -> bool {
        let (offset, len) = ((pfn as u64) << PAGE_SHIFT, (nr as u64) << PAGE_SHIFT);
        if offset + len > self.len as u64 {
            return false;
        }
        rustix::fs::fallocate(&self.fd, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, offset, len).is_ok()
    }

    /// Zero-fills `nr` pages from `pfn` through the internal mapping (HighMem has no direct map
    /// address, but the machine can still reach its frames).
    pub fn zero(&self, pfn: usize, nr: usize) -> bool {
        let (offset, len) = (pfn << PAGE_SHIFT, nr << PAGE_SHIFT);
        if offset + len > self.len {
            return false;
        }
        // SAFETY: In bounds of the mapping (checked); the pages were just allocated by the
        // caller, so no one else uses them.
        unsafe { self.base.as_ptr().add(offset).write_bytes(0, len) };
        true
    }

    /// Bytes of the memfd the host currently backs (resident), from `st_blocks`.
    pub fn resident_bytes(&self) -> u64 {
        rustix::fs::fstat(&self.fd).map_or(0, |st| st.st_blocks as u64 * 512)
    }
}

impl Drop for PhysMem {
    fn drop(&mut self) {
        // SAFETY: `base .. base + len` is our mapping (type invariant) and nothing refers to
        // it any more: the machine that owned it is being dropped.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
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
