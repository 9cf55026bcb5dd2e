//! [`Kmem`]: one machine's whole allocation stack — the page allocator plus the slab
//! allocator and kmalloc built on it.
//!
//! `Kmem` dereferences to its [`PageAllocator`], so every page operation is available on it
//! directly. The slab allocator keeps no pointer to `Kmem`: caches live in pages of their own
//! and every slab operation is a method here, so a `Kmem` may move until
//! [`Kmem::register_reclaim`] hands its address to the page allocator's reclaim.

use core::ops::Deref;
use core::ptr::NonNull;

use crate::page_alloc::PageAllocator;
use crate::platform::Platform;
use crate::reclaim::{RegistrationId, Shrinker};
use crate::slab::{SlabConfig, Slabs};

/// The page allocator, slab caches and kmalloc of one machine.
pub struct Kmem<P: Platform> {
    pa: PageAllocator<P>,
    pub(crate) slabs: Slabs,
}

impl<P: Platform> Deref for Kmem<P> {
    type Target = PageAllocator<P>;
    #[inline(always)]
    fn deref(&self) -> &PageAllocator<P> {
        &self.pa
    }
}

impl<P: Platform> Kmem<P> {
    /// Builds the slab allocator on `pa`. The kmalloc caches are made on first use.
    /// `config`'s `init_on_alloc` and `init_on_free` are the machine's boot parameters: they
    /// apply to pages too, so they are installed in `pa` here, before it is shared, and never
    /// change afterwards (§2.10, `page_alloc`'s `meminit`).
    pub fn new(mut pa: PageAllocator<P>, config: SlabConfig) -> Self {
        pa.set_mem_init(config.init_on_alloc, config.init_on_free);
        let start = pa.memmap().start_pfn();
        let dm = pa.pfn_address(start).map_or(0, |p| p.as_ptr() as usize);
        let dm_bytes = if dm == 0 { 0 } else { (pa.direct_map_end_pfn() - start) << crate::order::PAGE_SHIFT };
        let dm_pages = if dm == 0 { 0 } else { core::ptr::from_ref(pa.memmap().page(start)) as usize };
        let slabs = Slabs::new(config, pa.platform().now_ns(), dm, dm_bytes, dm_pages);
        Self { pa, slabs }
    }

    /// The page allocator.
    #[inline(always)]
    pub fn pages(&self) -> &PageAllocator<P> {
        &self.pa
    }

    /// The slab allocator's settings and machine-wide state.
    pub fn slabs(&self) -> &Slabs {
        &self.slabs
    }

    /// Tells the slab allocator where the machine's vmalloc range is (`VMALLOC_START..
    /// VMALLOC_END`), so that `kfree` and its relatives report a vmalloc address as one (to be
    /// freed with `vfree()`/`kvfree()`) instead of as an address kmem knows nothing of.
    pub fn set_vmalloc_range(&mut self, range: core::ops::Range<usize>) {
        self.slabs.vmalloc = range;
    }

    /// Registers the slab shrinker with the page allocator's reclaim: reclaim then flushes
    /// per-CPU object arrays and frees empty slabs of every cache except `SLAB_NO_REAP` ones.
    ///
    /// # Safety
    /// `self` must not move or be dropped until [`Kmem::unregister_reclaim`] is called with the
    /// returned id.
    pub unsafe fn register_reclaim(&self) -> Option<RegistrationId>
    where
        P: 'static,
    {
        let me: &dyn Shrinker = self;
        // SAFETY: The caller keeps `self` in place and alive while registered.
        unsafe { self.pa.register_shrinker(NonNull::from(me)) }
    }

    /// Undoes [`Kmem::register_reclaim`]; waits for a reclaim pass using it to finish.
    pub fn unregister_reclaim(&self, id: RegistrationId) -> bool {
        self.pa.unregister_shrinker(id)
    }
}

impl<P: Platform> Shrinker for Kmem<P> {
    fn name(&self) -> &str {
        "slab"
    }

    fn count_objects(&self) -> usize {
        self.reclaimable_slab_pages()
    }

    fn scan_objects(&self, nr_to_scan: usize, gfp: crate::gfp::Gfp) -> usize {
        self.shrink_for_reclaim(nr_to_scan, gfp)
    }

    fn report_oom(&self) {
        if self.should_dump_unreclaim_slab() {
            self.dump_unreclaimable_slab();
        }
    }

    fn fill_meminfo(&self, extra: &mut crate::proc::MeminfoExtra) {
        let (reclaimable, unreclaimable) = self.slab_pages();
        extra.slab_reclaimable += reclaimable;
        extra.slab_unreclaimable += unreclaimable;
    }
}
