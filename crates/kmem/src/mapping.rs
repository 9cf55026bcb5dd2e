//! Virtual windows over "physical memory": a range reserved `PROT_NONE` at machine build, in
//! which frames of the memfd are mapped `MAP_SHARED | MAP_FIXED | MAP_POPULATE` at chosen
//! addresses (populated at once, as the kernel's `vmap_pages_range` fills every PTE, so first
//! touches do not fault page by page) and unmapped by making them `PROT_NONE` again. The
//! vmalloc range ([`UserMmu`]) and the HighMem `kmap` windows are such ranges. A machine with
//! private memory has no memfd: its range stays reserved and every `map` fails, so vmalloc
//! returns `AllocError` there. With `sys`, the only module of this crate with `unsafe` code.
//!
//! Unmapping a range of at most [`SOFT_UNMAP_MAX`] bytes is one `mprotect(PROT_NONE)`: the
//! file mapping stays as an inaccessible VMA, which is what makes a single-area unmap cheap
//! (no VMA split and re-merge with the reservation). Longer ranges are replaced by a fresh
//! anonymous `PROT_NONE` reservation, which also drops any inaccessible file VMAs left inside
//! them; so are purged runs of lazily freed areas longer than that ([`Mmu::purge`]: vmalloc
//! unmaps each area when it is freed, the purge is only the "TLB flush"). Either way the range
//! faults on access afterwards. The number of VMAs stays bounded by the pages of the range
//! ever mapped.
//!
//! Invariant: `base .. base + len` is a mapping this process made and owns for the life of the
//! [`VaRange`]; every `mmap`/`mprotect` here is strictly inside it, so no other mapping of the
//! process is ever replaced or changed.

use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use kmem_core::PAGE_SIZE;
use kmem_core::vmalloc::{MapError, Mmu};

/// Longest range [`VaRange::unmap`] makes inaccessible with `mprotect` instead of a new
/// reservation (1 MiB: the areas the vmalloc pools and caches hold).
pub const SOFT_UNMAP_MAX: usize = 256 * PAGE_SIZE;

/// A reserved virtual range and the memfd whose frames are mapped into it.
pub struct VaRange {
    base: NonNull<u8>,
    len: usize,
    /// `None` for a machine with private memory (nothing can be mapped).
    fd: Option<OwnedFd>,
    /// Bytes of the memfd (frames beyond it are refused).
    phys_len: usize,
}

// SAFETY: The range is address space owned by the machine; which parts are mapped is decided
// by the allocators above, which are `Sync`.
unsafe impl Send for VaRange {}
// SAFETY: As above.
unsafe impl Sync for VaRange {}

impl VaRange {
    /// Reserves `len` bytes (a multiple of the page size) of inaccessible address space for
    /// frames of `fd` (`phys_len` bytes); with no `fd`, nothing can ever be mapped there.
    ///
    /// # Errors
    /// The host refused the reservation.
    pub fn reserve(len: usize, fd: Option<OwnedFd>, phys_len: usize) -> io::Result<Self> {
        // SAFETY: A fresh anonymous mapping at an address the kernel picks; nothing else
        // refers to that range.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Self { base, len, fd, phys_len })
    }

    /// First address.
    pub fn base(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty (never, once reserved).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `[va, va + len)` is page aligned and inside the range.
    fn inside(&self, va: usize, len: usize) -> bool {
        va.is_multiple_of(PAGE_SIZE)
            && len.is_multiple_of(PAGE_SIZE)
            && va >= self.base()
            && va.checked_add(len).is_some_and(|end| end <= self.base() + self.len)
    }

    /// Maps frames `pfn..pfn + nr` at `va`, read-write and shared with every other view of them.
    ///
    /// # Errors
    /// A range outside the reservation or the memfd, no memfd (private memory), or the host
    /// refusing.
    pub fn map(&self, va: usize, pfn: usize, nr: usize) -> Result<(), MapError> {
        let fd = self.fd.as_ref().ok_or(MapError)?;
        let len = nr.checked_mul(PAGE_SIZE).ok_or(MapError)?;
        let offset = pfn.checked_mul(PAGE_SIZE).ok_or(MapError)?;
        if !self.inside(va, len) || offset.checked_add(len).is_none_or(|end| end > self.phys_len) {
            return Err(MapError);
        }
        // SAFETY: `[va, va + len)` lies inside our reservation (checked), so `MAP_FIXED` only
        // replaces pages of it; the file range exists (checked).
        let mapped = unsafe {
            rustix::mm::mmap(
                va as *mut std::ffi::c_void,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::FIXED | MapFlags::POPULATE,
                fd,
                offset as u64,
            )
        };
        match mapped {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = self.unmap(va, len);
                Err(MapError)
            }
        }
    }

    /// Makes `[va, va + len)` inaccessible again: `PROT_NONE` in place up to
    /// [`SOFT_UNMAP_MAX`] bytes, a fresh anonymous reservation (no backing) beyond. Ignores
    /// ranges outside the reservation.
    ///
    /// # Errors
    /// Both `mprotect(PROT_NONE)` and the fresh anonymous mapping failed (the host's mapping
    /// limit): the range may still be accessible.
    pub fn unmap(&self, va: usize, len: usize) -> Result<(), MapError> {
        if len == 0 || !self.inside(va, len) {
            return Ok(());
        }
        if len <= SOFT_UNMAP_MAX {
            // SAFETY: Inside our reservation (checked); only the protection of our own pages
            // changes, and nothing may access them any more (the caller unmaps them).
            let done = unsafe { rustix::mm::mprotect(va as *mut std::ffi::c_void, len, MprotectFlags::empty()) };
            if done.is_ok() {
                return Ok(());
            }
        }
        // SAFETY: Inside our reservation (checked); the pages become an inaccessible anonymous
        // reservation again, as at `reserve`.
        let done = unsafe {
            rustix::mm::mmap_anonymous(
                va as *mut std::ffi::c_void,
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED,
            )
        };
        done.map(drop).map_err(|_| MapError)
    }
}

impl Drop for VaRange {
    fn drop(&mut self) {
        // SAFETY: `base .. base + len` is our reservation (type invariant), and nothing refers
        // to it any more: the machine that owned it is being dropped.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The vmalloc page tables of a userspace machine: real mappings in a [`VaRange`].
pub struct UserMmu {
    range: VaRange,
}

impl UserMmu {
    /// Wraps a reserved range.
    pub fn new(range: VaRange) -> Self {
        Self { range }
    }
}

// SAFETY: `map` maps exactly the requested memfd frames at the requested addresses with
// `MAP_SHARED`, so reads and writes reach the same bytes as the direct map and `kmap`; `unmap`
// makes the range inaccessible. Neither calls back into vmalloc.
unsafe impl Mmu for UserMmu {
    unsafe fn map(&self, va: usize, pfn: usize, nr: usize) -> Result<(), MapError> {
        self.range.map(va, pfn, nr)
    }

    unsafe fn unmap(&self, va: usize, len: usize) -> Result<(), MapError> {
        self.range.unmap(va, len)
    }

    /// Purged runs longer than [`SOFT_UNMAP_MAX`] become a fresh reservation, which drops the
    /// inaccessible file VMAs their areas' `mprotect` unmaps left; shorter ones need nothing
    /// (their pages are `PROT_NONE` already), so a purge of a lone small area costs no syscall.
    unsafe fn purge(&self, va: usize, len: usize) {
        if len > SOFT_UNMAP_MAX {
            // Already inaccessible (`PROT_NONE`): a failure only keeps the old VMAs.
            let _ = self.range.unmap(va, len);
        }
    }
}
