//! What vmalloc needs from the platform's page tables: map frames at a virtual address, unmap a
//! range, flush purged ranges, and (for `vrealloc`) copy and zero bytes through mapped
//! addresses.

/// The page-table side of a mapping could not be set up (`-ENOMEM` from `vmap_pages_range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapError;

/// Kernel page tables for the vmalloc range.
///
/// # Safety
/// After `map(va, pfn, nr)` returns `Ok`, reads and writes of `[va, va + nr * PAGE_SIZE)`
/// reach frames `pfn..pfn + nr` (the same bytes the direct map or `kmap` of those frames
/// shows) until an `unmap` covers them; `unmap` makes the range inaccessible. vmalloc only
/// calls `map` on unmapped, page-aligned ranges inside the range it was given. The default
/// [`Mmu::copy`] and [`Mmu::zero`] access the virtual addresses directly: an implementation
/// whose mappings are not real (a simulation) must override them. No method may call back
/// into vmalloc.
///
/// Every method is `unsafe` to call: each changes what addresses reach, or writes through
/// them, and the addresses may belong to live areas that safe handles (a `Vec` in vmalloc
/// memory) use. Only the owner of a range — vmalloc, for the range it was given — may call
/// them on it.
pub unsafe trait Mmu: Send + Sync {
    /// Maps `nr` physically contiguous frames from `pfn` at `va` (page aligned).
    ///
    /// # Errors
    /// The page tables could not be extended; nothing of the range stays mapped.
    ///
    /// # Safety
    /// The caller owns `[va, va + nr * PAGE_SIZE)` (nothing else uses it) and the frames.
    unsafe fn map(&self, va: usize, pfn: usize, nr: usize) -> Result<(), MapError>;

    /// Unmaps `[va, va + len)` (page aligned; parts may already be unmapped). `Err` if the
    /// range may still be accessible: the frames it mapped must then not be reused.
    ///
    /// # Errors
    /// The platform could not take the mapping away.
    ///
    /// # Safety
    /// The caller owns `[va, va + len)`: nothing uses it any more.
    unsafe fn unmap(&self, va: usize, len: usize) -> Result<(), MapError>;

    /// A purge of `[va, va + len)` (page aligned), lazily freed ranges whose mappings were all
    /// unmapped when they were freed: the kernel's deferred TLB flush. An implementation may
    /// release what it still keeps for the range; the range must stay inaccessible. The
    /// default does nothing.
    ///
    /// # Safety
    /// As for [`Mmu::unmap`].
    unsafe fn purge(&self, va: usize, len: usize) {
        let _ = (va, len);
    }

    /// Copies `len` bytes from mapped `src` to mapped `dst` (disjoint ranges).
    ///
    /// # Safety
    /// Both ranges are mapped; the caller owns `dst` and may read `src`.
    unsafe fn copy(&self, dst: usize, src: usize, len: usize) {
        // SAFETY: Mapped ranges the caller may use (its contract); the trait contract makes
        // mapped ranges accessible.
        unsafe { super::raw::copy_mapped(dst, src, len) }
    }

    /// Zeroes `len` mapped bytes at `dst`.
    ///
    /// # Safety
    /// The range is mapped and the caller owns it.
    unsafe fn zero(&self, dst: usize, len: usize) {
        // SAFETY: As in `copy`.
        unsafe { super::raw::zero_mapped(dst, len) }
    }
}
