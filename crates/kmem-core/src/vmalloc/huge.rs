//! `vmalloc_huge` (`VM_ALLOW_HUGE_VMAP`, SEMANTICS §5.4; Linux 6.6–6.13
//! `__vmalloc_node_range_noprof`): with `size >= PMD_SIZE` (the size as asked, not rounded to
//! pages) the area's size and alignment are
//! raised to `PMD_SIZE` (its guard page still added) and it is filled with `PMD_SIZE` blocks
//! (order `PMD_SHIFT - PAGE_SHIFT`), each `split_page`d so that every small page is its own;
//! `vm->page_order` records the order. If that fails (no aligned address space, no block),
//! everything is given back and the request is retried with small pages at the size and
//! alignment asked for.
//!
//! What userspace can and cannot show: the host maps 4 KiB pages whatever kmem asks, so the
//! mapping granularity does not change; what is observable is the kernel's arithmetic — the
//! `PMD_SIZE` alignment, the rounded size (`vmallocinfo`'s size and `pages=`, `VmallocUsed`),
//! physically contiguous, `PMD_SIZE`-aligned frames (`vmalloc_to_pfn` of consecutive sub-pages
//! are consecutive, each sub-page its own page for `vmalloc_to_page`), and `page_order` in
//! [`VmArea`](super::VmArea). Only the x86_64 profile has huge vmalloc (the kernel selects
//! `HAVE_ARCH_HUGE_VMALLOC` only on `X86_64`); elsewhere `vmalloc_huge` is `vmalloc`.
//!
//! Locking as in `api`: the area is reserved under the vmap lock and filled and mapped outside
//! it.

use core::panic::Location;
use core::ptr::NonNull;

use super::{Mmu, NUMA_NO_NODE, VM_ALLOC, VM_ALLOW_HUGE_VMAP, VM_UNINITIALIZED, VM_VMALLOC, Vmalloc};
use crate::AllocError;
use crate::gfp::{__GFP_NOFAIL, __GFP_NOWARN, Gfp};
use crate::kmem::Kmem;
use crate::order::PAGE_SIZE;
use crate::platform::Platform;

/// `PMD_SHIFT - PAGE_SHIFT` on x86_64 (2 MiB leaves).
pub const PMD_ORDER: u32 = 9;
/// `PMD_SIZE` on x86_64.
pub const PMD_SIZE: usize = PAGE_SIZE << PMD_ORDER;

impl<M: Mmu> Vmalloc<M> {
    /// `vmalloc_huge(size, gfp)`: [`Self::vmalloc_gfp`] with `VM_ALLOW_HUGE_VMAP` (see the
    /// module docs of `huge` in the source: `PMD_SIZE` alignment and rounding for sizes of at
    /// least `PMD_SIZE` on the x86_64 profile, small pages as the fallback).
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_huge<P: Platform>(&self, k: &Kmem<P>, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, gfp, VM_ALLOW_HUGE_VMAP, NUMA_NO_NODE, Location::caller())
    }

    /// `vmalloc_huge_node(size, gfp, node)` (one node: `node` is ignored).
    ///
    /// # Errors
    /// As [`Self::vmalloc`].
    #[track_caller]
    pub fn vmalloc_huge_node<P: Platform>(
        &self,
        k: &Kmem<P>,
        size: usize,
        gfp: Gfp,
        node: i32,
    ) -> Result<NonNull<u8>, AllocError> {
        self.vmalloc_node_range(k, size, PAGE_SIZE, gfp, VM_ALLOW_HUGE_VMAP, node, Location::caller())
    }

    /// Whether huge vmalloc mappings exist on the machine modelled (`HAVE_ARCH_HUGE_VMALLOC`,
    /// x86_64: 8-byte page pointers).
    pub fn huge_vmap_supported(&self) -> bool {
        self.page_ptr_bytes == 8
    }

    /// The huge attempt of `__vmalloc_node_range` for `bytes` (page rounded) aligned to
    /// `align`: `None` when it does not apply or failed (everything given back, nothing
    /// reported: the caller goes on with small pages, as the kernel's `goto again`).
    #[expect(clippy::too_many_arguments, reason = "the arguments of __vmalloc_node_range")]
    pub(super) fn vmalloc_huge_try<P: Platform>(
        &self,
        k: &Kmem<P>,
        bytes: usize,
        align: usize,
        gfp: Gfp,
        page_gfp: Gfp,
        vm_flags: u32,
        requested: usize,
        caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        // The kernel compares the size as asked (`size_per_node = size`, before any rounding):
        // `PMD_SIZE - 1` bytes are small pages even though they round up to `PMD_SIZE`.
        if !self.huge_vmap_supported() || requested < PMD_SIZE {
            return None;
        }
        let size = bytes.checked_next_multiple_of(PMD_SIZE)?;
        let va_size = size.checked_add(PAGE_SIZE)?;
        let nr_pages = size / PAGE_SIZE;
        let flags = vm_flags | VM_ALLOC | VM_VMALLOC | VM_UNINITIALIZED;
        // Quietly: a failure here is only the end of the huge attempt.
        let quiet = gfp | __GFP_NOWARN;
        let (area, start) = self.alloc_area(k, va_size, align.max(PMD_SIZE), quiet, flags, requested, caller).ok()?;
        let Ok(mut pfns) = self.alloc_array(k, nr_pages, quiet, caller) else {
            self.abandon(area, start);
            return None;
        };
        // `vm_area_alloc_pages` with an order: blocks without `__GFP_NOFAIL`, each split.
        let block_gfp = page_gfp.difference(__GFP_NOFAIL) | __GFP_NOWARN;
        let mut got = 0;
        while got < nr_pages {
            let Ok(block) = k.alloc_pages_at(block_gfp, PMD_ORDER, caller) else { break };
            // SAFETY: Allocated just above for this area, never handed out.
            if unsafe { k.split_page(block, PMD_ORDER) }.is_err() {
                // SAFETY: Allocated just above, never handed out.
                unsafe { k.free_pages(block, PMD_ORDER) };
                break;
            }
            let first = k.page_to_pfn(block).expect("allocated page is in mem_map");
            for i in 0..1 << PMD_ORDER {
                pfns.set(got + i, (first + i) as u32);
            }
            got += 1 << PMD_ORDER;
        }
        if got < nr_pages {
            self.free_frames(k, &pfns, 0..got);
            self.free_array(k, &pfns);
            self.abandon(area, start);
            return None;
        }
        if let Err(failed) = self.map_frames(start, &pfns) {
            self.unwind_map(k, area, start, &pfns, true, failed);
            return None;
        }
        self.space.lock().pool.get_mut(area).page_order = PMD_ORDER as u8;
        let zone = page_gfp.zone().map_or(0, |z| z as u8);
        self.publish(area, pfns, true, zone);
        NonNull::new(start as *mut u8)
    }
}

const _: () = assert!(PMD_ORDER <= crate::order::MAX_PAGE_ORDER);
