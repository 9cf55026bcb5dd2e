//! The `allocator-api2` [`Allocator`] trait over vmalloc and kvmalloc (DESIGN §5): large
//! `Vec`s and boxes in virtually contiguous kmem memory.
//!
//! - [`Vmalloc`]: every block is a vmalloc area (whole pages, one guard page after it); the
//!   alignment is honoured with `__vmalloc_node(size, align, …)`.
//! - [`Kvmalloc`]: kmalloc when it can (sizes rounded to the alignment as for
//!   [`crate::alloc_api::Kmalloc`]), vmalloc otherwise, with the kernel's fallback rules
//!   (KM-12: only above a page and only for masks that may sleep); `kvfree` tells them apart.
//!
//! Growing and shrinking use the trait's default (allocate, copy, free). Zero-size layouts get
//! a dangling aligned pointer.

use std::alloc::Layout;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};
use kmem_core::gfp::__GFP_ZERO;
use kmem_core::{Gfp, NUMA_NO_NODE, PAGE_SIZE};

use crate::Machine;
use crate::alloc_api::{aligned, dangling};
use crate::global_alloc::kmalloc_size;

/// vmalloc on a machine with a fixed GFP mask, as an [`Allocator`].
#[derive(Clone, Debug)]
pub struct Vmalloc {
    machine: Machine,
    gfp: Gfp,
}

impl Vmalloc {
    /// vmalloc on `machine` with `gfp` (`GFP_KERNEL` for plain `vmalloc`).
    pub fn new(machine: &Machine, gfp: Gfp) -> Self {
        Self { machine: machine.clone(), gfp }
    }

    fn alloc(&self, layout: Layout, zero: bool) -> Result<NonNull<[u8]>, AllocError> {
        with_gfp(layout, self.gfp, zero, |gfp| {
            let p = self
                .machine
                .vmalloc_node_align(layout.size(), layout.align(), gfp, NUMA_NO_NODE)
                .map_err(|_| AllocError)?;
            Ok(NonNull::slice_from_raw_parts(p, layout.size().next_multiple_of(PAGE_SIZE)))
        })
    }
}

// SAFETY: Blocks are vmalloc areas of at least the layout's size at its alignment, valid until
// `vfree`, which only `deallocate` (and the trait's default grow/shrink through it) calls;
// clones share one machine, which each keeps alive.
unsafe impl Allocator for Vmalloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.alloc(layout, false)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.alloc(layout, true)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: `ptr` is a live area this allocator made (the `Allocator` contract), given
            // up by its owner.
            unsafe { self.machine.vfree(ptr.as_ptr()) };
        }
    }
}

/// kvmalloc on a machine with a fixed GFP mask, as an [`Allocator`].
#[derive(Clone, Debug)]
pub struct Kvmalloc {
    machine: Machine,
    gfp: Gfp,
}

impl Kvmalloc {
    /// kvmalloc on `machine` with `gfp`.
    pub fn new(machine: &Machine, gfp: Gfp) -> Self {
        Self { machine: machine.clone(), gfp }
    }

    fn alloc(&self, layout: Layout, zero: bool) -> Result<NonNull<[u8]>, AllocError> {
        with_gfp(layout, self.gfp, zero, |gfp| {
            let m = &self.machine;
            let (p, len) = if layout.align() <= PAGE_SIZE {
                // Page-aligned vmalloc areas satisfy every alignment up to a page; kmalloc blocks
                // of `kmalloc_size` are aligned to it (KM-6).
                let size = kmalloc_size(layout).unwrap_or(layout.size());
                (m.kvmalloc(size, gfp).map_err(|_| AllocError)?, size)
            } else if let Some(size) = kmalloc_size(layout) {
                (m.kmalloc(size, gfp).map_err(|_| AllocError)?, size)
            } else {
                let p =
                    m.vmalloc_node_align(layout.size(), layout.align(), gfp, NUMA_NO_NODE).map_err(|_| AllocError)?;
                (p, layout.size())
            };
            if !aligned(p, layout.align()) {
                // SAFETY: Just allocated, unused. Never expected; refuse misaligned memory.
                unsafe { m.kvfree(p.as_ptr()) };
                return Err(AllocError);
            }
            Ok(NonNull::slice_from_raw_parts(p, len))
        })
    }
}

/// What both allocators share: a zero-size layout touches no allocator, and `zero` asks for
/// `__GFP_ZERO`.
fn with_gfp(
    layout: Layout,
    gfp: Gfp,
    zero: bool,
    alloc: impl FnOnce(Gfp) -> Result<NonNull<[u8]>, AllocError>,
) -> Result<NonNull<[u8]>, AllocError> {
    if layout.size() == 0 {
        return Ok(dangling(layout));
    }
    alloc(if zero { gfp | __GFP_ZERO } else { gfp })
}

// SAFETY: Blocks come from kmalloc or vmalloc on the machine, at least the layout's size at
// its alignment (checked), valid until `kvfree`, which only `deallocate` calls.
unsafe impl Allocator for Kvmalloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.alloc(layout, false)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.alloc(layout, true)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: A live block of ours (the trait's contract), not used afterwards.
            unsafe { self.machine.kvfree(ptr.as_ptr()) };
        }
    }
}
