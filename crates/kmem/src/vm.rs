//! The machine's vmalloc and HighMem API: thin `#[track_caller]` wrappers that pass the
//! machine's page allocator to `kmem_core::vmalloc`, and `kmap` over the HighMem windows.
//!
//! The vmalloc range is reserved `PROT_NONE` at build; an area's frames are mapped from the
//! memfd with `MAP_SHARED | MAP_FIXED`, so the bytes written through a vmalloc address are the
//! bytes of `page_address(vmalloc_to_page(p))` (or of `kmap` for a HighMem frame).

use std::panic::Location;
use std::ptr::NonNull;

use kmem_core::page_alloc::warn_sites;
use kmem_core::reclaim::Shrinker;
use kmem_core::vmalloc::{VmArea, Vmalloc};
use kmem_core::{AllocError, Gfp, Page};

use crate::highmem::highmem_pfn;
use crate::machine::{Inner, Machine};
use crate::mapping::UserMmu;

/// The vmalloc shrinker (`vmap_node_shrinker`): reclaim completes the `vfree`s deferred from
/// atomic context (VM-7), empties the VA pool and takes frames back from the frame cache.
/// Registered by the machine for its whole life.
impl Shrinker for Inner {
    fn name(&self) -> &str {
        "vmap_node"
    }

    fn count_objects(&self) -> usize {
        self.vm.reclaimable_pages()
    }

    fn scan_objects(&self, nr_to_scan: usize, _gfp: Gfp) -> usize {
        self.vm.shrink(&self.kmem, nr_to_scan)
    }
}

impl Inner {
    /// The machine's deferred work (`schedule_work`), run by kswapd: completes the `vfree`s
    /// queued in atomic context.
    pub(crate) fn deferred_work(&self) {
        if self.vm.nr_deferred() > 0 {
            self.vm.flush_deferred(&self.kmem);
        }
    }
}

impl Machine {
    /// The vmalloc allocator (statistics, purging, `/proc/vmallocinfo`); its allocating methods
    /// take the page allocator, so use the wrappers below.
    pub fn vm(&self) -> &Vmalloc<UserMmu> {
        &self.inner.vm
    }

    /// `vmalloc(size)` (see [`Vmalloc::vmalloc`]).
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[track_caller]
    pub fn vmalloc(&self, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc(&self.inner.kmem, size)
    }

    /// `vzalloc(size)`.
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[track_caller]
    pub fn vzalloc(&self, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vzalloc(&self.inner.kmem, size)
    }

    /// `vmalloc_user(size)`.
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[track_caller]
    pub fn vmalloc_user(&self, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc_user(&self.inner.kmem, size)
    }

    /// `vmalloc_32(size)`: frames below 4 GiB (lowmem on i386).
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[track_caller]
    pub fn vmalloc_32(&self, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc_32(&self.inner.kmem, size)
    }

    /// `vmalloc_huge(size, gfp)` (see [`Vmalloc::vmalloc_huge`]).
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[track_caller]
    pub fn vmalloc_huge(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc_huge(&self.inner.kmem, size, gfp)
    }

    /// `vmalloc_huge_node(size, gfp, node)` (one node).
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[track_caller]
    pub fn vmalloc_huge_node(&self, size: usize, gfp: Gfp, node: i32) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc_huge_node(&self.inner.kmem, size, gfp, node)
    }

    /// `__vmalloc(size, gfp)`.
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[doc(alias = "__vmalloc")]
    #[track_caller]
    pub fn vmalloc_gfp(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc_gfp(&self.inner.kmem, size, gfp)
    }

    /// `vmalloc_node(size, node)` (one node; `NUMA_NO_NODE` accepted).
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc`].
    #[track_caller]
    pub fn vmalloc_node(&self, size: usize, node: i32) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc_node(&self.inner.kmem, size, node)
    }

    /// `__vmalloc_node(size, align, gfp, node)`.
    ///
    /// # Errors
    /// As [`Vmalloc::vmalloc_node_align`].
    #[doc(alias = "__vmalloc_node")]
    #[track_caller]
    pub fn vmalloc_node_align(
        &self,
        size: usize,
        align: usize,
        gfp: Gfp,
        node: i32,
    ) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmalloc_node_align(&self.inner.kmem, size, align, gfp, node)
    }

    /// `vfree(addr)`: deferred in atomic context (VM-7); misuse is reported (VM-6).
    ///
    /// # Safety
    /// As [`Vmalloc::vfree`].
    #[track_caller]
    pub unsafe fn vfree(&self, addr: *const u8) {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.vfree(&self.inner.kmem, addr) };
    }

    /// `vfree_atomic(addr)`.
    ///
    /// # Safety
    /// As [`Vmalloc::vfree_atomic`].
    #[track_caller]
    pub unsafe fn vfree_atomic(&self, addr: *const u8) {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.vfree_atomic(&self.inner.kmem, addr) };
    }

    /// Completes the `vfree`s deferred from atomic context now (kswapd, the next
    /// `vmalloc`/`vfree` and reclaim also complete them).
    pub fn flush_deferred_vfree(&self) {
        self.inner.vm.flush_deferred(&self.inner.kmem);
    }

    /// Releases the vmalloc frame cache, purges every lazily freed area and empties the VA
    /// pool into the free tree (`reclaim_and_purge_vmap_areas`, plus the cache). Returns the
    /// pages of address space purged.
    pub fn vm_reclaim_and_purge(&self) -> usize {
        self.inner.vm.reclaim_and_purge(&self.inner.kmem)
    }

    /// Runs the vmalloc shrinker as reclaim would: returns the frames freed.
    pub fn vm_shrink(&self, nr_to_scan: usize) -> usize {
        self.inner.vm.shrink(&self.inner.kmem, nr_to_scan)
    }

    /// `vmap(pages, count, flags, PAGE_KERNEL)`.
    ///
    /// # Errors
    /// As [`Vmalloc::vmap`].
    #[track_caller]
    pub fn vmap(&self, pages: &[&Page], flags: u32) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmap(&self.inner.kmem, pages, flags)
    }

    /// `vmap(array, count, flags | VM_MAP_PUT_PAGES, PAGE_KERNEL)`: the area takes the pages
    /// and `array`, the `kmalloc`/[`Machine::kvmalloc`] allocation that held them;
    /// [`Machine::vfree`] frees both.
    ///
    /// # Errors
    /// As [`Vmalloc::vmap_put_pages`].
    ///
    /// # Safety
    /// As [`Vmalloc::vmap_put_pages`].
    #[track_caller]
    pub unsafe fn vmap_put_pages(
        &self,
        pages: &[&Page],
        array: NonNull<u8>,
        flags: u32,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.vmap_put_pages(&self.inner.kmem, pages, array, flags) }
    }

    /// `vunmap(addr)`.
    ///
    /// # Safety
    /// As [`Vmalloc::vunmap`].
    #[track_caller]
    pub unsafe fn vunmap(&self, addr: *const u8) {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.vunmap(&self.inner.kmem, addr) };
    }

    /// `vmap_pfn(pfns, count, PAGE_KERNEL)`: maps page frames of this machine in a
    /// `VM_IOREMAP` area that owns nothing (see [`Vmalloc::vmap_pfn`]).
    ///
    /// # Errors
    /// As [`Vmalloc::vmap_pfn`].
    #[track_caller]
    pub fn vmap_pfn(&self, pfns: &[usize]) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vmap_pfn(&self.inner.kmem, pfns)
    }

    /// `vm_map_ram(pages, count, node)`: a short-lived mapping of the caller's pages, from a
    /// per-CPU vmap block up to [`Vmalloc::vmap_max_alloc`] pages.
    ///
    /// # Errors
    /// As [`Vmalloc::vm_map_ram`].
    #[track_caller]
    pub fn vm_map_ram(&self, pages: &[&Page], node: i32) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.vm_map_ram(&self.inner.kmem, pages, node)
    }

    /// `vm_unmap_ram(mem, count)`: `count` must be the one passed to `vm_map_ram`.
    ///
    /// # Safety
    /// As [`Vmalloc::vm_unmap_ram`].
    #[track_caller]
    pub unsafe fn vm_unmap_ram(&self, mem: *const u8, count: usize) {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.vm_unmap_ram(&self.inner.kmem, mem, count) };
    }

    /// `vm_unmap_aliases()`: purges the lazily freed areas and fragmented vmap blocks and
    /// flushes the blocks' dirty ranges (see [`Vmalloc::vm_unmap_aliases`]); returns the pages of
    /// address space purged.
    pub fn vm_unmap_aliases(&self) -> usize {
        self.inner.vm.vm_unmap_aliases(&self.inner.kmem)
    }

    /// `find_vm_area(addr)`: the `vm_struct` fields of the area containing `addr`.
    pub fn find_vm_area(&self, addr: *const u8) -> Option<VmArea> {
        self.inner.vm.find_vm_area(addr)
    }

    /// `remove_vm_area(addr)` (see [`Vmalloc::remove_vm_area`]).
    ///
    /// # Safety
    /// As [`Vmalloc::remove_vm_area`].
    #[track_caller]
    pub unsafe fn remove_vm_area(&self, addr: *const u8) -> Option<VmArea> {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.remove_vm_area(&self.inner.kmem, addr) }
    }

    /// `get_vm_area(size, flags)`: address space only, nothing mapped.
    ///
    /// # Errors
    /// As [`Vmalloc::get_vm_area`].
    #[track_caller]
    pub fn get_vm_area(&self, size: usize, flags: u32) -> Result<NonNull<u8>, AllocError> {
        self.inner.vm.get_vm_area(&self.inner.kmem, size, flags)
    }

    /// `free_vm_area`.
    ///
    /// # Safety
    /// As [`Vmalloc::free_vm_area`].
    #[track_caller]
    pub unsafe fn free_vm_area(&self, addr: *const u8) {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.free_vm_area(&self.inner.kmem, addr) };
    }

    /// `vmalloc_to_page(addr)`.
    pub fn vmalloc_to_page(&self, addr: *const u8) -> Option<&Page> {
        self.inner.vm.vmalloc_to_page(self.inner.kmem.pages(), addr)
    }

    /// `vread_iter(iter, addr, count)` into `buf` (`count = buf.len()`): the bytes of the
    /// vmalloc space from `addr`, with holes, guard pages, ioremap areas and unmapped pages
    /// read as zeros; returns the bytes read (see [`Vmalloc::vread_iter`]). Never faults.
    ///
    /// # Safety
    /// As [`Vmalloc::vread_iter`]: no byte it reads is written at its direct-map address by
    /// another thread, or under a live `&mut` made from one, during the call (the frames of a
    /// [`Self::vmap`] of a slab, kmalloc or page block are read where their owner writes them).
    pub unsafe fn vread_iter(&self, buf: &mut [u8], addr: usize) -> usize {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.vread_iter(&self.inner.kmem, buf, addr) }
    }

    /// `vmalloc_to_pfn(addr)`.
    pub fn vmalloc_to_pfn(&self, addr: *const u8) -> Option<usize> {
        self.inner.vm.vmalloc_to_pfn(addr)
    }

    /// `is_vmalloc_addr(addr)`.
    pub fn is_vmalloc_addr(&self, addr: *const u8) -> bool {
        self.inner.vm.is_vmalloc_addr(addr)
    }

    /// `vrealloc(p, size, gfp)`: `Ok(None)` when `size == 0` freed `p`.
    ///
    /// # Errors
    /// As [`Vmalloc::vrealloc`].
    ///
    /// # Safety
    /// As [`Vmalloc::vrealloc`].
    #[track_caller]
    pub unsafe fn vrealloc(&self, p: *const u8, size: usize, gfp: Gfp) -> Result<Option<NonNull<u8>>, AllocError> {
        // SAFETY: The caller's promise.
        unsafe { self.inner.vm.vrealloc(&self.inner.kmem, p, size, gfp) }
    }

    /// `/proc/vmallocinfo`. The text is written under the vmap lock, so its `String` comes from
    /// the system heap even when [`crate::KmemAlloc`] is the global allocator: a kmalloc there
    /// could enter reclaim, whose vmalloc shrinker takes the vmap lock (as the other `/proc`
    /// texts do, `procfs.rs`).
    pub fn vmallocinfo(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // Written under the vmap lock.
        let mut s = String::new();
        let _ = self.inner.vm.vmallocinfo_naming(&mut s, &|w, ip| w.write_str(&crate::callers::name_code_address(ip)));
        s
    }

    /// `kmap(page)`: the direct-map address of a lowmem page; a HighMem page is mapped in a
    /// persistent slot until [`Self::kunmap`] (may sleep while all slots are in use). `None`
    /// for a page of another machine.
    #[track_caller]
    pub fn kmap(&self, page: &Page) -> Option<NonNull<u8>> {
        let pa = self.inner.kmem.pages();
        pa.might_sleep();
        match (highmem_pfn(pa, page), &self.inner.highmem) {
            (Some(pfn), Some(hm)) => hm.kmap(pa, pfn, Location::caller()),
            _ => pa.page_address(page),
        }
    }

    /// `kunmap(page)`: releases one [`Self::kmap`] of `page` (an unbalanced call, on a page
    /// with no persistent mapping, is reported and ignored).
    ///
    /// # Safety
    /// The caller made the `kmap` of `page` this releases and does not use its address
    /// afterwards: releasing a mapping someone else still uses lets the slot be reused for
    /// another page under them.
    #[track_caller]
    pub unsafe fn kunmap(&self, page: &Page) {
        let pa = self.inner.kmem.pages();
        if let (Some(pfn), Some(hm)) = (highmem_pfn(pa, page), &self.inner.highmem) {
            hm.kunmap(pa, pfn, Location::caller());
        }
    }

    /// `kmap_local_page(page)`: a HighMem page is mapped in the next local slot of this CPU;
    /// local mappings are released in reverse order with [`Self::kunmap_local`]. Never sleeps:
    /// a thread without a CPU slot, or past 16 nested mappings, gets a persistent slot instead,
    /// and `None` (reported) if every persistent slot is in use.
    #[track_caller]
    pub fn kmap_local_page(&self, page: &Page) -> Option<NonNull<u8>> {
        let pa = self.inner.kmem.pages();
        match (highmem_pfn(pa, page), &self.inner.highmem) {
            (Some(pfn), Some(hm)) => hm.kmap_local(pa, pfn, Location::caller()),
            _ => pa.page_address(page),
        }
    }

    /// `kunmap_local(addr)`: releases the most recent local mapping (no-op for lowmem). An
    /// `addr` of this CPU's that is not its most recent mapping (released out of order) is
    /// mm/highmem.c's `WARN_ON_ONCE(addr != __fix_to_virt(FIX_KMAP_BEGIN + idx))`, and the most
    /// recent mapping is released all the same, as there. An address in no kmap window that is no kernel address either (not in the direct map or
    /// the vmalloc area: NULL, the stack, the C heap) is mm/highmem.c's
    /// `WARN_ON_ONCE(addr < PAGE_OFFSET)`, once per machine, and ignored.
    ///
    /// # Safety
    /// `addr` is in the caller's own most recent [`Self::kmap_local_page`] mapping, and the
    /// caller does not use that mapping afterwards (the slot is reused by the next local map).
    #[track_caller]
    pub unsafe fn kunmap_local(&self, addr: *const u8) {
        let pa = self.inner.kmem.pages();
        let caller = Location::caller();
        let mapped = self.inner.highmem.as_ref().is_some_and(|hm| hm.kunmap_local(pa, addr as usize, caller));
        if !mapped && pa.virt_to_pfn(addr).is_none() && !self.is_vmalloc_addr(addr) {
            pa.warn_once(
                warn_sites::KUNMAP_LOCAL_USER,
                "kunmap_local_indexed",
                format_args!(
                    "WARN_ON_ONCE(addr < PAGE_OFFSET): {addr:p} is no kmap mapping and no kernel address; ignored"
                ),
                caller,
            );
        }
    }
}
