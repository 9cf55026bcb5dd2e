//! The `allocator-api2` [`Allocator`] trait over kmalloc: `Vec`/`Box` of `allocator_api2` in a
//! machine's kmalloc memory, on stable Rust. Every method is the core's (`kmem_core::alloc_api`,
//! `KmallocIn` over the machine's `Kmem`); this module gives it handles to a machine.
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
use kmem_core::alloc_api::KmallocIn;
pub(crate) use kmem_core::alloc_api::{aligned, dangling};
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

/// Forwards every `Allocator` method of `$ty` to the core's allocator `$core` (built from
/// `$this`, the `&self` of the method).
macro_rules! forward_allocator {
    ($ty:ty, $this:ident => $core:expr) => {
        // SAFETY: Every method is the core's allocator over the machine's `Kmem`
        // (`kmem_core::alloc_api`), which the handle keeps alive; copies and clones reach the
        // same machine, so they are the same allocator.
        unsafe impl Allocator for $ty {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                $core.allocate(layout)
            }

            #[inline]
            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                $core.allocate_zeroed(layout)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { $core.deallocate(ptr, layout) }
            }

            unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { $core.grow(ptr, old, new) }
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { $core.grow_zeroed(ptr, old, new) }
            }

            unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
                let $this = self;
                // SAFETY: Forwarded contract.
                unsafe { $core.shrink(ptr, old, new) }
            }
        }
    };
}

forward_allocator!(&Machine, this => KmallocIn::new(this, GFP_KERNEL));
forward_allocator!(Kmalloc, this => KmallocIn::new(&this.machine, this.gfp));
