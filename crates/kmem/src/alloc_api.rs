//! The `allocator-api2` [`Allocator`] trait over kmalloc: `Vec`/`Box` of `allocator_api2` in a
//! machine's kmalloc memory, on stable Rust.
//!
//! - `&Machine` allocates with `GFP_KERNEL`; [`Kmalloc`] owns a machine handle (so boxes can be
//!   `'static`) and takes any GFP mask (`GFP_ATOMIC`, `GFP_DMA`, …). The typed kmalloc handle
//!   (Rust-for-Linux's `KBox`) is `allocator_api2::boxed::Box<T, Kmalloc>`: it drops `T` and
//!   `kfree`s on drop.
//! - Sizes are rounded up to the alignment ([`kmalloc_size`]), which the kmalloc classes and
//!   page-backed blocks honour (KM-6), for any power-of-two alignment; every result is checked.
//! - Layouts above `KMALLOC_MAX_SIZE` (4 MiB) after rounding fail with [`AllocError`]: unlike the
//!   global allocator, an explicit kmalloc allocator has no other heap to fall back on, and a
//!   vmalloc-style mapping is not kmalloc memory. Zero-size layouts get a dangling, aligned
//!   pointer and touch no allocator.
//! - `grow`/`shrink` are `krealloc` (same pointer while the class or block has room) when the
//!   block is aligned for the new layout; otherwise allocate, copy and free. A `shrink` to half
//!   the block's capacity or less also moves, so `Vec::shrink_to_fit` from 64 KiB to 40 bytes
//!   gives the pages back (`krealloc` would keep them); if that move fails it stays in place.
//!
//! ```
//! use allocator_api2::vec::Vec;
//!
//! let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build()?;
//! let mut v = Vec::new_in(&m);
//! v.extend(0..1000u32); // Grows through kmalloc-64 … kmalloc-4k with krealloc.
//! // SAFETY: `v`'s block is ours (through `v`), and nothing else uses it meanwhile.
//! assert_eq!(unsafe { m.ksize(v.as_ptr().cast()) }, 4096);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::alloc::Layout;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};
use kmem_core::Gfp;
use kmem_core::gfp::GFP_KERNEL;

use crate::Machine;
pub use crate::global_alloc::kmalloc_size;

/// kmalloc on a machine with a fixed GFP mask, as an [`Allocator`]. Clones share the machine.
#[derive(Clone, Debug)]
pub struct Kmalloc {
    machine: Machine,
    gfp: Gfp,
}

impl Kmalloc {
    /// kmalloc on `machine` with `gfp` for every allocation.
    pub fn new(machine: &Machine, gfp: Gfp) -> Self {
        Self { machine: machine.clone(), gfp }
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The GFP mask.
    pub fn gfp(&self) -> Gfp {
        self.gfp
    }
}

/// A dangling, aligned block of `len` 0 (zero-size layouts touch no allocator).
pub(crate) fn dangling(layout: Layout) -> NonNull<[u8]> {
    // An address equal to the alignment: non-null and aligned (`Layout::dangling` is unstable).
    let ptr = NonNull::new(std::ptr::without_provenance_mut::<u8>(layout.align())).expect("alignment is non-zero");
    NonNull::slice_from_raw_parts(ptr, 0)
}

/// Whether `ptr` is aligned to `align` (a power of two).
pub(crate) fn aligned(ptr: NonNull<u8>, align: usize) -> bool {
    ptr.as_ptr() as usize & (align - 1) == 0
}

fn allocate(m: &Machine, gfp: Gfp, layout: Layout, zero: bool) -> Result<NonNull<[u8]>, AllocError> {
    if layout.size() == 0 {
        return Ok(dangling(layout));
    }
    let size = kmalloc_size(layout).ok_or(AllocError)?;
    let made = if zero { m.kzalloc(size, gfp) } else { m.kmalloc(size, gfp) };
    let ptr = made.map_err(|_| AllocError)?;
    if !aligned(ptr, layout.align()) {
        // Never expected (KM-6); refuse rather than hand out misaligned memory.
        // SAFETY: Just allocated, unused.
        unsafe { m.kfree(ptr.as_ptr()) };
        return Err(AllocError);
    }
    Ok(NonNull::slice_from_raw_parts(ptr, size))
}

/// # Safety
/// As [`Allocator::deallocate`] for an allocator over `m`.
unsafe fn deallocate(m: &Machine, ptr: NonNull<u8>, layout: Layout) {
    if layout.size() != 0 {
        // SAFETY: A live block of ours (caller), not used afterwards.
        unsafe { m.kfree(ptr.as_ptr()) };
    }
}

/// `grow`, `grow_zeroed` and `shrink`.
///
/// # Safety
/// As [`Allocator::grow`] (or `shrink`) for an allocator over `m`.
unsafe fn reallocate(
    m: &Machine,
    gfp: Gfp,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
    zero: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    if old.size() == 0 {
        return allocate(m, gfp, new, zero);
    }
    if new.size() == 0 {
        // SAFETY: A live block of ours (caller).
        unsafe { m.kfree(ptr.as_ptr()) };
        return Ok(dangling(new));
    }
    let size = kmalloc_size(new).ok_or(AllocError)?;
    let in_place_ok = aligned(ptr, new.align());
    // A shrink into half the capacity or less moves, so the larger class or block goes back.
    // SAFETY: The caller owns the allocation (this function's contract).
    let wasteful = new.size() < old.size() && size <= unsafe { m.ksize(ptr.as_ptr()) } / 2;
    let moved = if in_place_ok && !wasteful {
        // SAFETY: A live block of ours (caller). `size` is a multiple of `new.align()`, so a
        // new block is aligned for `new` (KM-6); a kept one is aligned (checked). On failure
        // the block is untouched (KM-9).
        unsafe { m.krealloc(ptr.as_ptr(), size, gfp) }.map_err(|_| AllocError)?
    } else {
        match allocate(m, gfp, new, false) {
            Ok(fresh) => {
                let fresh = fresh.cast::<u8>();
                // SAFETY: Distinct live blocks, each holding at least `min` bytes; the old one
                // is ours (caller) and goes now.
                unsafe {
                    fresh.as_ptr().copy_from_nonoverlapping(ptr.as_ptr(), old.size().min(new.size()));
                    m.kfree(ptr.as_ptr());
                }
                fresh
            }
            // A shrink that could not move stays where it is (aligned, and it fits).
            Err(AllocError) if in_place_ok => ptr,
            Err(e) => return Err(e),
        }
    };
    // `grow_zeroed`: every byte past the old contents of the block handed back is zero, up to
    // its whole length (`size`, which the alignment may round above `new.size()`).
    if zero && size > old.size() {
        // SAFETY: The block holds at least `size` bytes (`krealloc` or `allocate` of `size`);
        // the first `old.size()` were kept.
        unsafe { moved.as_ptr().add(old.size()).write_bytes(0, size - old.size()) };
    }
    Ok(NonNull::slice_from_raw_parts(moved, size))
}

// SAFETY: Blocks come from kmalloc on the machine: valid until kfree, which only
// `deallocate`/`grow`/`shrink` call; the machine outlives the borrow. Sizes and alignments are
// honoured (`kmalloc_size`, checked). Copies of `&Machine` are the same allocator.
unsafe impl Allocator for &Machine {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        allocate(self, GFP_KERNEL, layout, false)
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        allocate(self, GFP_KERNEL, layout, true)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: Forwarded contract.
        unsafe { deallocate(self, ptr, layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Forwarded contract.
        unsafe { reallocate(self, GFP_KERNEL, ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Forwarded contract.
        unsafe { reallocate(self, GFP_KERNEL, ptr, old, new, true) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Forwarded contract.
        unsafe { reallocate(self, GFP_KERNEL, ptr, old, new, false) }
    }
}

// SAFETY: As for `&Machine`; clones share one machine (an `Arc`), which every clone keeps alive.
unsafe impl Allocator for Kmalloc {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        allocate(&self.machine, self.gfp, layout, false)
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        allocate(&self.machine, self.gfp, layout, true)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: Forwarded contract.
        unsafe { deallocate(&self.machine, ptr, layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Forwarded contract.
        unsafe { reallocate(&self.machine, self.gfp, ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Forwarded contract.
        unsafe { reallocate(&self.machine, self.gfp, ptr, old, new, true) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Forwarded contract.
        unsafe { reallocate(&self.machine, self.gfp, ptr, old, new, false) }
    }
}
