//! Workloads for `kmem stat --workload`.
#![allow(unsafe_code)] // kfree of the workload's own kmalloc objects.

use clap::ValueEnum;
use kmem::Machine;
use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL};

/// What to run before printing a `/proc` text.
#[derive(Clone, Copy, ValueEnum)]
pub enum Workload {
    /// Nothing: the fresh machine.
    None,
    /// The demo's examples.
    Demo,
    /// Allocate 4096 order-0 pages and free every other one: fragmented free lists.
    Fragment,
    /// Take every page with GFP_ATOMIC, then free them all: buddyinfo returns to the start.
    Exhaust,
    /// kmalloc 10,000 objects of sizes 1..=8192, log-uniform (fixed seed), and free every other one; fill a
    /// `kmem_demo` cache of 200-byte objects with 1,000 objects: slabinfo has something to show.
    Slab,
    /// vmalloc areas of 1..=8 pages, then vfree every other one: live and unpurged areas.
    Vmalloc,
}

impl Workload {
    /// Runs the workload on `m`.
    pub fn run(self, m: &Machine) -> Result<(), String> {
        match self {
            Workload::None => Ok(()),
            Workload::Demo => crate::demo::run(m, None).error.map_or(Ok(()), Err),
            Workload::Fragment => {
                let pages: Vec<_> = (0..4096).map_while(|_| m.alloc_pages(GFP_KERNEL, 0).ok()).collect();
                for page in pages.iter().step_by(2) {
                    // SAFETY: The demo's own memory, freed once and unused afterwards.
                    unsafe { m.free_pages(page, 0) };
                }
                // The freed pages sit on the per-CPU lists, which buddyinfo does not count:
                // drain them (`drain_all_pages`) so the fragmentation shows.
                m.drain_all_pages();
                eprintln!("workload fragment: allocated {} pages, freed every other one", pages.len());
                Ok(())
            }
            Workload::Slab => slab(m),
            Workload::Exhaust => {
                let mut held = Vec::new();
                for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
                    while let Ok(page) = m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order) {
                        held.push((page, order));
                    }
                }
                let pages: usize = held.iter().map(|&(_, order)| 1usize << order).sum();
                eprintln!("workload exhaust: took {pages} pages in {} blocks, freed them all", held.len());
                for (page, order) in held {
                    // SAFETY: The demo's own memory, freed once and unused afterwards.
                    unsafe { m.free_pages(page, order) };
                }
                m.drain_local_pages();
                Ok(())
            }
            Workload::Vmalloc => {
                let mut areas = Vec::new();
                for pages in 1..=8 {
                    areas.push(m.vmalloc(pages * kmem::PAGE_SIZE).map_err(|e| format!("vmalloc: {e}"))?);
                }
                for p in areas.iter().skip(1).step_by(2) {
                    // SAFETY: The demo's own memory, freed once and unused afterwards.
                    unsafe { m.vfree(p.as_ptr()) };
                }
                eprintln!("workload vmalloc: {} areas, freed every other one (lazily)", areas.len());
                Ok(())
            }
        }
    }
}

/// The `slab` workload. The objects stay allocated when it returns (that is what it shows).
fn slab(m: &Machine) -> Result<(), String> {
    use kmem::slab::{CacheArgs, flags::SlabFlags};
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut held = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Log-uniform: each power-of-two band up to 8 KiB is as likely as the others.
        let size = 1 + (x % (8 << ((x >> 40) % 11))) as usize;
        held.push(m.kmalloc(size, GFP_KERNEL).map_err(|e| format!("kmalloc({size}): {e}"))?);
    }
    for p in held.iter().step_by(2) {
        // SAFETY: Each pointer came from kmalloc above and is freed once.
        unsafe { m.kfree(p.as_ptr()) };
    }
    let cache = m
        .kmem_cache_create("kmem_demo", 200, &CacheArgs::default(), SlabFlags::empty())
        .map_err(|e| format!("kmem_cache_create: {e}"))?;
    for _ in 0..1000 {
        m.kmem_cache_alloc(cache, GFP_KERNEL).map_err(|e| format!("kmem_cache_alloc: {e}"))?;
    }
    eprintln!("workload slab: 10000 kmallocs (5000 freed), 1000 kmem_demo objects");
    Ok(())
}
