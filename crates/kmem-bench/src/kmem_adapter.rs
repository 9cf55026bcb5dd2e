//! Every call into kmem lives here, so the benchmark follows kmem's API in one place.
//!
//! The machine manages the same 1 GiB each peer gets, with the builder's defaults otherwise
//! (per-CPU lists and kswapd on, free max-order blocks beyond 16 trimmed back to the host, as a
//! user gets it); the benchmark thread takes CPU slot 0 on first use and allocates through
//! `PageAllocator::alloc_pages`/`free_pages` with `GFP_KERNEL`, and through `alloc_pages_bulk`
//! for the order-0 bulk row (the kernel's bulk API is order-0 only).

use kmem_core::gfp::GFP_KERNEL;
use kmem_core::memmap::Page;

use crate::harness::Role;
use crate::pages::{Bench, Contender, PageAlloc};
use crate::peers::REGION_BYTES;

/// The kmem machine the page workloads run on.
pub struct Kmem {
    machine: kmem::Machine,
}

impl Kmem {
    /// Boots an x86-64-shaped machine with 1 GiB of memory and 2 CPUs.
    pub fn boot() -> Result<Self, String> {
        let machine = kmem::Machine::builder()
            .profile(kmem::Profile::X86_64)
            .mem_bytes(REGION_BYTES as u64)
            .cpus(2)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { machine })
    }

    /// kmem's rows: one block at a time, and the bulk API for batches.
    pub fn contenders(&self) -> Vec<Box<dyn Contender + '_>> {
        let pages = || KmemPages { machine: &self.machine };
        vec![
            Box::new(Bench::new("kmem alloc_pages", Role::Subject, pages())),
            Box::new(Bench::bulk("kmem alloc_pages_bulk", Role::Subject, pages())),
        ]
    }
}

/// kmem's page allocator as a [`PageAlloc`].
struct KmemPages<'m> {
    machine: &'m kmem::Machine,
}

impl<'m> PageAlloc for KmemPages<'m> {
    type Block = &'m Page;

    #[inline]
    fn alloc(&mut self, order: u32) -> Option<&'m Page> {
        self.machine.alloc_pages(GFP_KERNEL, order).ok()
    }

    #[inline]
    unsafe fn free(&mut self, block: &'m Page, order: u32) {
        self.machine.free_pages(block, order);
    }

    fn has_bulk(&self, order: u32) -> bool {
        order == 0
    }

    #[inline]
    fn alloc_bulk(&mut self, _order: u32, out: &mut [Option<&'m Page>]) -> usize {
        // It may stop short (one zone per call, as in Linux); callers loop while it progresses.
        let mut filled = 0;
        while filled < out.len() {
            let now = self.machine.alloc_pages_bulk(GFP_KERNEL, out);
            if now == filled {
                break;
            }
            filled = now;
        }
        filled
    }
}
