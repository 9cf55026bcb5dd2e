//! The `allocator-api2` [`Allocator`] trait over kmalloc (feature `allocator-api2`): Rust
//! collections in a `Kmem`'s memory with a GFP mask of the caller's choosing, as
//! Rust-for-Linux's `KBox::new(x, GFP_ATOMIC)` and `KVec` give a kernel.
//!
//! - `&Kmem<P>` allocates with `GFP_KERNEL`; [`KmallocIn`] takes any mask (`GFP_ATOMIC`,
//!   `GFP_DMA`, …). `allocator_api2::boxed::Box<T, KmallocIn<'_, P>>` is a `KBox`: it drops `T`
//!   and `kfree`s on drop.
//! - Sizes are rounded up to the alignment ([`kmalloc_layout_size`]), which the kmalloc classes
//!   and page-backed blocks honour (KM-6) for any power-of-two alignment up to 4 MiB; every
//!   result is checked.
//! - Layouts above `KMALLOC_MAX_SIZE` (4 MiB) after rounding fail with [`AllocError`]: an
//!   explicit kmalloc allocator has no other heap to fall back on. Zero-size layouts get a
//!   dangling, aligned pointer and touch no allocator.
//! - `grow`/`shrink` are `krealloc` (same pointer while the class or block has room, KM-8) when
//!   the block is aligned for the new layout and, for an alignment above a page, has room;
//!   otherwise allocate (checked), copy and free. A `shrink` to half the block's capacity or
//!   less also moves, so `shrink_to_fit` from 64 KiB to 40 bytes gives the pages back
//!   (`krealloc` would keep them); if that move fails it stays in place.
//!
//! The `kmem` crate's allocators over a userspace machine are these, on the machine's `Kmem`.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};

use crate::gfp::{GFP_KERNEL, Gfp};
use crate::kmalloc::classes::kmalloc_layout_size;
use crate::kmem::Kmem;
use crate::platform::Platform;

/// kmalloc on a borrowed [`Kmem`] with a fixed GFP mask, as an [`Allocator`].
pub struct KmallocIn<'a, P: Platform> {
    kmem: &'a Kmem<P>,
    gfp: Gfp,
}

impl<'a, P: Platform> KmallocIn<'a, P> {
    /// kmalloc on `kmem` with `gfp` for every allocation.
    pub const fn new(kmem: &'a Kmem<P>, gfp: Gfp) -> Self {
        Self { kmem, gfp }
    }

    /// The GFP mask.
    pub const fn gfp(&self) -> Gfp {
        self.gfp
    }
}

impl<P: Platform> Clone for KmallocIn<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Platform> Copy for KmallocIn<'_, P> {}

impl<P: Platform> core::fmt::Debug for KmallocIn<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KmallocIn").field("gfp", &self.gfp).finish_non_exhaustive()
    }
}

/// A dangling, aligned block of length 0 (zero-size layouts touch no allocator).
pub fn dangling(layout: Layout) -> NonNull<[u8]> {
    // An address equal to the alignment: non-null and aligned (`Layout::dangling` is unstable).
    let ptr = NonNull::new(ptr::without_provenance_mut::<u8>(layout.align())).expect("alignment is non-zero");
    NonNull::slice_from_raw_parts(ptr, 0)
}

/// Whether `ptr` is aligned to `align` (a power of two).
pub fn aligned(ptr: NonNull<u8>, align: usize) -> bool {
    ptr.as_ptr().addr() & (align - 1) == 0
}

fn allocate<P: Platform>(k: &Kmem<P>, gfp: Gfp, layout: Layout, zero: bool) -> Result<NonNull<[u8]>, AllocError> {
    if layout.size() == 0 {
        return Ok(dangling(layout));
    }
    k.kmalloc_layout(layout, gfp, zero).map_err(|_| AllocError)
}

/// # Safety
/// As [`Allocator::deallocate`] for an allocator over `k`.
unsafe fn deallocate<P: Platform>(k: &Kmem<P>, ptr: NonNull<u8>, layout: Layout) {
    if layout.size() != 0 {
        // SAFETY: A live block of ours (caller), not used afterwards.
        unsafe { k.kfree(ptr.as_ptr()) };
    }
}

/// `grow`, `grow_zeroed` and `shrink`.
///
/// # Safety
/// As [`Allocator::grow`] (or `shrink`) for an allocator over `k`.
unsafe fn reallocate<P: Platform>(
    k: &Kmem<P>,
    gfp: Gfp,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
    zero: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    if old.size() == 0 {
        return allocate(k, gfp, new, zero);
    }
    if new.size() == 0 {
        // SAFETY: A live block of ours (caller).
        unsafe { k.kfree(ptr.as_ptr()) };
        return Ok(dangling(new));
    }
    let size = kmalloc_layout_size(new).ok_or(AllocError)?;
    let in_place_ok = aligned(ptr, new.align());
    // SAFETY: The caller owns the allocation (this function's contract).
    let capacity = || unsafe { k.ksize(ptr.as_ptr()) };
    // A shrink into half the capacity or less moves, so the larger class or block goes back.
    let wasteful = new.size() < old.size() && size <= capacity() / 2;
    let moved = if in_place_ok && !wasteful {
        // SAFETY: A live block of ours (caller). A kept block is aligned (checked); a moved
        // one has `size`, a multiple of `new.align()`, so it is aligned (KM-6, which holds up
        // to 4 MiB on the direct maps `PageAllocator::new` accepts). On failure the block is
        // untouched (KM-9).
        unsafe { k.krealloc(ptr.as_ptr(), size, gfp) }.map_err(|_| AllocError)?
    } else {
        match allocate(k, gfp, new, false) {
            Ok(fresh) => {
                let fresh = fresh.cast::<u8>();
                // SAFETY: Distinct live blocks, each holding at least `min` bytes; the old one
                // is ours (caller) and goes now.
                unsafe {
                    fresh.as_ptr().copy_from_nonoverlapping(ptr.as_ptr(), old.size().min(new.size()));
                    k.kfree(ptr.as_ptr());
                }
                fresh
            }
            // A shrink that could not move stays where it is (aligned, and it fits).
            Err(AllocError) if in_place_ok && size <= capacity() => ptr,
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

/// One `Allocator` impl for a type that reaches a `Kmem` and a mask.
macro_rules! kmalloc_allocator {
    ($ty:ty, $this:ident => $kmem:expr, $gfp:expr) => {
        // SAFETY: Blocks come from kmalloc on the `Kmem`: valid until kfree, which only
        // `deallocate`/`grow`/`shrink` call; the `Kmem` outlives the borrow. Sizes and
        // alignments are honoured (`kmalloc_layout_size`, checked). Copies reach the same
        // `Kmem`, so they are the same allocator.
        unsafe impl<P: Platform> Allocator for $ty {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                allocate($kmem, $gfp, layout, false)
            }

            #[inline]
            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                allocate($kmem, $gfp, layout, true)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { deallocate($kmem, ptr, layout) }
            }

            unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { reallocate($kmem, $gfp, ptr, old, new, false) }
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { reallocate($kmem, $gfp, ptr, old, new, true) }
            }

            unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { reallocate($kmem, $gfp, ptr, old, new, false) }
            }
        }
    };
}

kmalloc_allocator!(&Kmem<P>, this => this, GFP_KERNEL);
kmalloc_allocator!(KmallocIn<'_, P>, this => this.kmem, this.gfp);
