//! vmalloc (`mm/vmalloc.c`): virtually contiguous memory from physically scattered pages,
//! mapped through the platform's page tables ([`Mmu`]).
//!
//! Shape: a reserved range `[start, end)` is split into free ranges, busy areas and lazily freed
//! areas, three address-keyed AVL trees over one pool of nodes (`space`, `tree`, `node`); the
//! free tree caches the largest free size of each subtree, so the lowest-address fit is one
//! descent (SEMANTICS §5.2). Every area ends in one unmapped guard page unless `VM_NO_GUARD`.
//! Nodes live in pages of the page allocator (`raw`): kmem-core has no heap; an area's pfn array
//! is a kmalloc object up to a page (the kernel's `area->pages`), else pages of its own. The node chunks' directory is sized at [`Vmalloc::new`] for every node the range can ever
//! need (one per page, plus spares), so the number of areas is limited by memory only; chunks are
//! kept for reuse, never freed. `vfree` unmaps an area (under the vmap lock, before its frames are
//! freed: the kernel's `vunmap_range_noflush` at free time) and moves it to the lazy tree; its
//! address range stays there until a purge — the kernel's deferred TLB flush, [`Mmu::purge`] —
//! which runs when more than [`Vmalloc::lazy_max_pages`] are lazy or the space is exhausted and
//! returns the ranges to the free tree (§5.3). `vunmap` unmaps at once too (the caller may free its
//! pages next). `vfree` in atomic context only queues the area (VM-7), and the first entry of an
//! empty queue kicks the platform's worker ([`Platform::schedule_work`]; kmem's machine runs it on
//! its kswapd thread), which drains the queue from process context with
//! [`Vmalloc::flush_deferred`], as the kernel's `delayed_vfree_work` does. The next
//! `vmalloc`/`vfree` outside atomic context drains it too, and so does the shrinker
//! ([`Vmalloc::shrink`], counted by [`Vmalloc::reclaimable_pages`]), so direct reclaim gets the
//! frames back even on a platform without a worker.
//!
//! `vm_map_ram` (`ram`) carves small mappings from per-CPU vmap blocks, areas flagged
//! `VM_RAM | VM_RAM_BLOCK` in the busy tree whose pfn array is the block's map; larger ones are
//! `VM_RAM` areas without a guard page. Neither has a `vm_struct`: no `vfree`, `vunmap` or
//! `find_vm_area` sees them.
//!
//! `vread_iter` (`vread`) reads any range of the space under the vmap lock through the frames'
//! direct map (or the platform's HighMem read), never through the vmalloc addresses: holes,
//! guard pages, ioremap and sparse areas and unmapped pages read as zeros. It is `unsafe`: the
//! frames of a `vmap` area are read where their owner (a slab object, a kmalloc block) writes.
//!
//! Reuse without the trees (`pool`): with more than one CPU a purge hands small ranges to the
//! VA pool, which serves later requests of the same size in O(1) (Linux ≥ 6.9 `vmap_pool`);
//! and `vfree` of a small vmalloc area parks it, still mapped with its frames, in the frame
//! cache, from which a vmalloc of the same size takes it back without a page allocation or a
//! mapping call (kmem's deviation, bounded by [`Vmalloc::cache_limit_pages`], released by
//! purges, exhaustion, failed page allocations and the shrinker [`Vmalloc::shrink`]). Parked
//! nodes stay in the busy tree, flagged, and are skipped by every lookup; `vmallocinfo` lists
//! cached areas as `unpurged vm_area` and skips pooled ranges.
//!
//! Counting invariant: `nr_vmalloc_pages` is the number of pages backing live vmalloc areas
//! (kmem's private `VM_VMALLOC`, never the caller's `VM_ALLOC`; meminfo `VmallocUsed`, VM-13;
//! cached frames are not counted); every pool node is unused or in exactly one tree.
//!
//! Invariant: an area owns its frames only if vmalloc made it (`VM_VMALLOC`) or `vmap` was
//! given `VM_MAP_PUT_PAGES` (VM-9); such a `vmap` area also owns the caller's page array when
//! one was handed over (`Vmalloc::vmap_put_pages`, checked then to be something `kvfree` can
//! free), which `vfree` gives to `kvfree` after the frames and `vunmap` leaves to the caller;
//! the caller's flags are sanitised at every public entry
//! (`Vmalloc::caller_flags`), so kmem's own bits and `VM_UNINITIALIZED` only come from kmem.
//!
//! Invariant: an area is mapped only while it is live (busy, published) or parked in the
//! frame cache with its frames; lazily freed areas and pooled ranges are unmapped. The one
//! exception is a range the platform would not unmap (an [`Mmu::unmap`] `Err` while a
//! part-way [`Mmu::map`] failure was undone, or when an area was freed or a cached one
//! released): it stays in the busy tree for good, flagged `VM_UNMAP_FAILED` (parked, never
//! purged or handed out again), and vmalloc never frees the frames still mapped there
//! (`Mmu::unmap`'s contract).
//!
//! Lock order, outermost first: the vmap lock (`Vmalloc::space`, a spin lock held for tree
//! surgery, `vmallocinfo`, the unmap calls of frees and cache releases, and purges' flushes),
//! then the page allocator's zone locks — but no page or object is allocated or freed under the
//! vmap lock: node chunks, pfn arrays (kmalloc objects: the slab locks, then the zone locks)
//! and backing pages are allocated before it is taken, and freed after it is dropped. Mapping
//! an area happens outside the lock (the area is reserved and marked `VM_UNINITIALIZED`
//! meanwhile). The worker kick of a deferred free ([`Platform::schedule_work`]) is made after
//! the vmap lock is dropped and takes no kmem lock. The deferred queue is drained from reclaim
//! (the shrinker runs with no vmap lock held: nothing allocates under it), taking the vmap lock
//! for each entry and freeing its frames and array after dropping it, as `vfree` does.

mod api;
mod area;
mod free;
mod huge;
mod info;
mod lookup;
mod mmu;
mod node;
mod pool;
mod ram;
mod raw;
mod reuse;
mod space;
mod tree;
mod vread;

use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

pub use huge::{PMD_ORDER, PMD_SIZE};
pub use lookup::VmArea;
pub use mmu::{MapError, Mmu};
pub use ram::VMAP_BBMAP_BITS_MAX;

use crate::AllocError;
use crate::gfp::{__GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, GFP_RECLAIM_MASK, Gfp};
use crate::kmem::Kmem;
use crate::order::PAGE_SIZE;
use crate::page_alloc::InitError;
use crate::platform::Platform;
use crate::report::Ratelimit;
use crate::sync::{SpinGuard, SpinLock};
use space::Space;

/// `ioremap` area.
pub const VM_IOREMAP: u32 = 0x1;
/// `vmalloc` area. From a caller (`vmap`, `get_vm_area`) it is only a label: which areas own
/// their pages is kmem's own record, so `vfree` never frees pages a `vmap` was given unless
/// `VM_MAP_PUT_PAGES` (VM-9).
pub const VM_ALLOC: u32 = 0x2;
/// `vmap` area.
pub const VM_MAP: u32 = 0x4;
/// May be mapped to user space (`vmalloc_user`).
pub const VM_USERMAP: u32 = 0x8;
/// DMA-coherent mapping.
pub const VM_DMA_COHERENT: u32 = 0x10;
/// Being set up; hidden from `vmallocinfo` and `vmalloc_to_page`.
pub const VM_UNINITIALIZED: u32 = 0x20;
/// No guard page after the area.
pub const VM_NO_GUARD: u32 = 0x40;
/// Reset direct-map permissions on free (refused by `vmap`).
pub const VM_FLUSH_RESET_PERMS: u32 = 0x100;
/// `vmap` takes ownership of the pages: `vfree` frees them.
pub const VM_MAP_PUT_PAGES: u32 = 0x200;
/// May be mapped with PMD-size leaves (`vmalloc_huge`): see [`Vmalloc::vmalloc_huge`].
pub const VM_ALLOW_HUGE_VMAP: u32 = 0x400;
/// Sparse area (`get_vm_area` for `vm_area_map_pages`); a label only in kmem, which
/// `vmallocinfo` prints (` sparse`).
pub const VM_SPARSE: u32 = 0x1000;
/// kmem only: queued for a deferred free (`vfree` in atomic context).
const VM_DEFERRED: u32 = 1 << 31;
/// kmem only: purged address space in the VA pool (a `vmap_pool` entry).
const VM_POOLED: u32 = 1 << 30;
/// kmem only: a freed vmalloc area kept mapped with its frames in the frame cache.
const VM_CACHED: u32 = 1 << 29;
/// kmem only: an area `__vmalloc_node_range` made (it and the frame cache set it; no caller's
/// flags can): its frames are vmalloc's, counted in `VmallocUsed`, freed or cached by `vfree`.
/// The public [`VM_ALLOC`] only labels the area (`vmallocinfo`), as a caller may pass it to
/// `vmap` or `get_vm_area`, whose areas never own their pages (VM-9).
const VM_VMALLOC: u32 = 1 << 28;
/// kmem only: a range the platform would not unmap (see [`Mmu::unmap`]): it may still reach
/// frames, so it stays busy for good, never purged or handed out again, hidden from every
/// lookup; it owns no pfn array and counts in no page counter.
const VM_UNMAP_FAILED: u32 = 1 << 27;
/// kmem only: a `vm_map_ram` area, standalone or a vmap block (the kernel's `VMAP_RAM`
/// `vmap_area` flag): no `vm_struct`, so no `vfree`/`vunmap`/`find_vm_area` finds it, and
/// `vmallocinfo` prints it as `vm_map_ram`. Its pages are the caller's.
const VM_RAM: u32 = 1 << 26;
/// kmem only: with [`VM_RAM`], a per-CPU vmap block (`VMAP_BLOCK`) that `vm_map_ram` carves
/// small mappings from; its pfn array holds the block's map (see `ram`).
const VM_RAM_BLOCK: u32 = 1 << 25;
/// Busy-tree nodes that are not live areas.
const VM_PARKED: u32 = VM_POOLED | VM_CACHED | VM_UNMAP_FAILED;
/// Busy-tree nodes no `vm_struct` lookup finds (`vfree`, `vunmap`, `find_vm_area`): areas
/// being built or waiting for a deferred free, parked ones, and `vm_map_ram` areas.
const VM_NO_VM_STRUCT: u32 = VM_UNINITIALIZED | VM_DEFERRED | VM_PARKED | VM_RAM;
/// The flags a caller may pass (`vmap`, `get_vm_area`, `__vmalloc_node_range`): every bit the
/// kernel defines, `VM_IOREMAP` (0x1) up to `VM_SPARSE` (0x1000), except `VM_UNINITIALIZED`,
/// which only vmalloc itself sets while it builds an area. The rest (kmem's own bits among
/// them) is dropped with a warning (`Vmalloc::caller_flags`).
const VM_CALLER_FLAGS: u32 = 0x1fff & !VM_UNINITIALIZED;
const _: () = assert!(
    VM_CALLER_FLAGS & (VM_DEFERRED | VM_POOLED | VM_CACHED | VM_VMALLOC | VM_UNMAP_FAILED | VM_RAM | VM_RAM_BLOCK) == 0
);

/// Adds `n` to a counter that is only ever changed under the vmap lock: a plain load and
/// store, no atomic read-modify-write on the allocation path (readers may load it any time).
#[inline]
fn locked_add(counter: &AtomicUsize, n: usize) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

/// Subtracts `n` from a counter only changed under the vmap lock (see [`locked_add`]).
#[inline]
fn locked_sub(counter: &AtomicUsize, n: usize) {
    counter.store(counter.load(Relaxed) - n, Relaxed);
}

/// `NUMA_NO_NODE`.
pub const NUMA_NO_NODE: i32 = -1;

/// `fls(n)`: position of the highest set bit, 1-based; 0 for 0.
const fn fls(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()) as usize
}

/// `lazy_max_pages()`: `fls(num_online_cpus()) * 32 MiB / PAGE_SIZE`.
#[must_use]
pub const fn lazy_max_pages_for(nr_cpus: usize) -> usize {
    fls(nr_cpus) * ((32 << 20) / PAGE_SIZE)
}

/// Event counters.
#[derive(Default, Debug)]
pub struct VmStats {
    /// Purges run.
    pub purges: AtomicUsize,
    /// Areas whose free was deferred (atomic context).
    pub deferred_frees: AtomicUsize,
    /// Address ranges served by the VA pool (`node_alloc` hits).
    pub pool_hits: AtomicUsize,
    /// vmalloc calls served by the frame cache (no page allocation, no mapping).
    pub cache_hits: AtomicUsize,
    /// Cached areas released (unmapped, frames freed).
    pub cache_releases: AtomicUsize,
    /// Ranges kept out of use for good because the platform would not unmap them (a part-way
    /// mapping undone, an area freed, a cached area released); vmalloc never frees the frames
    /// they may still reach.
    pub unmap_failures: AtomicUsize,
    /// Dirty vmap block ranges `vm_unmap_aliases` flushed (the kernel's TLB flush of
    /// `vb->dirty_min..dirty_max`; userspace has no TLB, so this count is what is observable).
    pub vb_flushes: AtomicUsize,
    /// vmap blocks given back (fully dirty, or purged as fragmented).
    pub vb_frees: AtomicUsize,
}

/// The vmalloc allocator of one machine, over a reserved virtual range.
///
/// Every method takes the machine's [`Kmem`] (the page allocator the areas' pages come from, and
/// kmalloc for their pfn arrays); it must be the same one on every call (checked).
pub struct Vmalloc<M: Mmu> {
    mmu: M,
    start: usize,
    end: usize,
    space: SpinLock<Space>,
    nr_vmalloc_pages: AtomicUsize,
    nr_deferred: AtomicUsize,
    /// Pages held by the deferred queue (see [`Vmalloc::deferred_pages`]); changed under the
    /// vmap lock.
    deferred_pages: AtomicUsize,
    lazy_max_pages: AtomicUsize,
    /// CPUs of the machine (`NR_CPUS` in the vmap block size).
    nr_cpus: usize,
    /// Whether `vm_unmap_ram`'s `WARN_ON_ONCE(!va)` fired (once per machine).
    warned_unmap_ram: AtomicBool,
    /// Whether purged ranges go to the VA pool (`nr_vmap_nodes > 1`, i.e. more than one CPU).
    va_pools: AtomicBool,
    /// Upper bound of the frame cache in pages (see [`Vmalloc::cache_limit_pages`]).
    cache_max_pages: AtomicUsize,
    /// [`PageAllocator::id`](crate::PageAllocator::id) of the page allocator bound at first
    /// use (0: not bound yet).
    owner: AtomicU64,
    /// `sizeof(struct page *)` (see [`Vmalloc::set_page_pointer_bytes`]).
    page_ptr_bytes: usize,
    warned_zero: AtomicBool,
    /// Whether the dropped-flags warning was printed (once per machine).
    warned_flags: AtomicBool,
    /// `vmap`'s `WARN_ON_ONCE(flags & VM_FLUSH_RESET_PERMS)` fired (once per machine).
    warned_reset_perms: AtomicBool,
    /// `vmap`'s `WARN_ON_ONCE(flags & VM_NO_GUARD)` fired (once per machine).
    warned_no_guard: AtomicBool,
    warn_rs: Ratelimit,
    stats: VmStats,
}

impl<M: Mmu> Vmalloc<M> {
    /// A vmalloc allocator over `[start, start + len)`, lazily purging past
    /// [`lazy_max_pages_for`]`(nr_cpus)` pages.
    ///
    /// # Errors
    /// A range that is empty, not page aligned, starts at 0, or wraps.
    pub fn new(mmu: M, start: usize, len: usize, nr_cpus: usize) -> Result<Self, InitError> {
        if start == 0 || len == 0 || !start.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return Err(InitError("vmalloc range must be non-empty, page aligned and above 0"));
        }
        let end = start.checked_add(len).ok_or(InitError("vmalloc range wraps"))?;
        // Every page its own range, plus the spares an allocation takes: the most nodes the
        // range can ever need; indices are `u32` (`NIL` excluded).
        let max_nodes = len / PAGE_SIZE + 1 + space::NODES_PER_ALLOC;
        let dir_order = raw::Chunks::order_for(max_nodes, crate::order::MAX_PAGE_ORDER)
            .filter(|_| max_nodes < node::NIL as usize)
            .ok_or(InitError("vmalloc range too large (more than 2^32 pages)"))?;
        Ok(Self {
            mmu,
            start,
            end,
            space: SpinLock::new(Space::new(start, end, dir_order)),
            nr_vmalloc_pages: AtomicUsize::new(0),
            nr_deferred: AtomicUsize::new(0),
            deferred_pages: AtomicUsize::new(0),
            lazy_max_pages: AtomicUsize::new(lazy_max_pages_for(nr_cpus)),
            nr_cpus,
            warned_unmap_ram: AtomicBool::new(false),
            va_pools: AtomicBool::new(nr_cpus > 1),
            cache_max_pages: AtomicUsize::new(usize::MAX),
            owner: AtomicU64::new(0),
            page_ptr_bytes: 8,
            warned_zero: AtomicBool::new(false),
            warned_flags: AtomicBool::new(false),
            warned_reset_perms: AtomicBool::new(false),
            warned_no_guard: AtomicBool::new(false),
            warn_rs: Ratelimit::default_kernel(),
            stats: VmStats::default(),
        })
    }

    /// The page tables.
    pub fn mmu(&self) -> &M {
        &self.mmu
    }

    /// `VMALLOC_START`.
    pub fn start(&self) -> usize {
        self.start
    }

    /// `VMALLOC_END`.
    pub fn end(&self) -> usize {
        self.end
    }

    /// `VMALLOC_TOTAL` in bytes.
    pub fn total_bytes(&self) -> usize {
        self.end - self.start
    }

    /// `is_vmalloc_addr`: whether `addr` lies in the vmalloc range.
    pub fn is_vmalloc_addr(&self, addr: *const u8) -> bool {
        (self.start..self.end).contains(&(addr as usize))
    }

    /// Pages backing live vmalloc areas (`nr_vmalloc_pages`, meminfo `VmallocUsed`).
    pub fn nr_vmalloc_pages(&self) -> usize {
        self.nr_vmalloc_pages.load(Relaxed)
    }

    /// Pages of address space freed but not yet purged (`vmap_lazy_nr`).
    pub fn lazy_pages(&self) -> usize {
        self.space.lock().lazy_pages
    }

    /// The largest free range in bytes (what `VmallocChunk` showed before Linux 5.3); lazily
    /// freed ranges are not free until purged.
    pub fn largest_free_bytes(&self) -> usize {
        let space = self.space.lock();
        space.free.max_size(&space.pool)
    }

    /// Areas queued by `vfree` in atomic context and not yet freed.
    pub fn nr_deferred(&self) -> usize {
        self.nr_deferred.load(Relaxed)
    }

    /// Pages held by the areas queued by `vfree` in atomic context: their frames, and at least
    /// one per area (so that the shrinker drains a queue of areas without frames too).
    pub fn deferred_pages(&self) -> usize {
        self.deferred_pages.load(Relaxed)
    }

    /// The purge threshold in pages.
    pub fn lazy_max_pages(&self) -> usize {
        self.lazy_max_pages.load(Relaxed)
    }

    /// Sets the purge threshold (tests; the kernel derives it from the CPU count).
    pub fn set_lazy_max_pages(&self, pages: usize) {
        self.lazy_max_pages.store(pages, Relaxed);
    }

    /// Whether purged address space is pooled for exact-size reuse (on by default with more
    /// than one CPU, as the kernel's per-node pools exist only with more than one vmap node).
    pub fn va_pools(&self) -> bool {
        self.va_pools.load(Relaxed)
    }

    /// Turns the VA pool on or off (tests, and the benchmark's tree-path row). Turning it off
    /// does not empty it; [`Vmalloc::vm_unmap_aliases`] and purges decay what is there.
    pub fn set_va_pools(&self, on: bool) {
        self.va_pools.store(on, Relaxed);
    }

    /// Ranges in the VA pool.
    pub fn pooled_areas(&self) -> usize {
        self.space.lock().va_pool.nr
    }

    /// Frames held by the frame cache (allocated, mapped, backing no live area).
    pub fn cached_pages(&self) -> usize {
        self.space.lock().cache.pages
    }

    /// Freed areas held by the frame cache.
    pub fn cached_areas(&self) -> usize {
        self.space.lock().cache.nr
    }

    /// The frame cache's bound in pages: the smallest of [`Vmalloc::lazy_max_pages`] (so a
    /// purge threshold of 0 disables it), 1/64 of `managed` pages, and the limit set by
    /// [`Vmalloc::set_cache_max_pages`].
    pub fn cache_limit_pages(&self, managed: usize) -> usize {
        self.lazy_max_pages().min(managed / 64).min(self.cache_max_pages.load(Relaxed))
    }

    /// Caps the frame cache (0 disables it; `usize::MAX` leaves the other bounds). Frames
    /// already cached stay until the next purge or shrink.
    pub fn set_cache_max_pages(&self, pages: usize) {
        self.cache_max_pages.store(pages, Relaxed);
    }

    /// Event counters.
    pub fn stats(&self) -> &VmStats {
        &self.stats
    }

    /// Binds the allocator to `k` (on first use, or up front by its owner), and panics if
    /// another one is passed later: every public method that takes a `Kmem` checks it, since
    /// freeing this allocator's frames into another machine's page allocator would hand them to
    /// two owners. Bind up front when the allocator is built with its `Kmem`, so that a foreign
    /// `Kmem` is refused even before the first allocation.
    ///
    /// The machine is recognised by its page allocator's
    /// [`PageAllocator::id`](crate::PageAllocator::id), not by where it lives: a `Kmem` may be
    /// moved after binding (into a `Box`, a static) and is still the same machine, while
    /// another `Kmem` built later at the old address is not.
    ///
    /// # Panics
    /// If the allocator is already bound to another `Kmem`.
    #[inline]
    pub fn bind<P: Platform>(&self, k: &Kmem<P>) {
        let id = k.pages().id();
        if self.owner.load(Relaxed) == id {
            return;
        }
        if let Err(bound) = self.owner.compare_exchange(0, id, Relaxed, Relaxed) {
            assert_eq!(bound, id, "vmalloc used with two page allocators");
        }
    }

    /// Takes the vmap lock with at least `need` unused nodes, growing the pool one block at a
    /// time (a chunk of nodes, or first a block of the chunk directory) with pages allocated
    /// (lock dropped) under `gfp`. The directory has room for every node the range can need, so
    /// only a failed page allocation (reported by the page allocator unless `__GFP_NOWARN`)
    /// makes this fail — the kernel's `-ENOMEM` from `kmem_cache_alloc(vmap_area_cachep)`.
    fn lock_with_nodes<P: Platform>(
        &self,
        k: &Kmem<P>,
        need: usize,
        gfp: Gfp,
        caller: &core::panic::Location<'_>,
    ) -> Result<SpinGuard<'_, Space>, AllocError> {
        self.bind(k);
        loop {
            let mut space = self.space.lock();
            let init = usize::from(space.needs_init());
            if space.pool.nr_free() >= need + init {
                if init == 1 {
                    space.init();
                }
                return Ok(space);
            }
            // A full directory cannot happen (sized for the range at `new`); fail cleanly.
            let dir = space.pool.chunks.needs_dir().ok_or(AllocError)?;
            let order = if dir { space.pool.chunks.dir_order() } else { raw::CHUNK_ORDER };
            drop(space);
            let page = k.alloc_pages_at(gfp.intersection(GFP_RECLAIM_MASK), order, caller)?;
            let block = k.page_address(page).expect("no __GFP_HIGHMEM: lowmem page");
            let mut space = self.space.lock();
            if space.pool.chunks.needs_dir() != Some(dir) {
                // Another thread grew the pool meanwhile: look again.
                drop(space);
                // SAFETY: Allocated above for the chunk that is not needed; never published.
                unsafe { k.free_pages(page, order) };
                continue;
            }
            if dir {
                // SAFETY: A fresh lowmem block of the directory order we own and never free;
                // a directory block is needed (checked under this lock hold).
                unsafe { space.pool.chunks.add_dir(block) };
            } else {
                // SAFETY: A fresh lowmem block of `CHUNK_ORDER` we own and never free; the
                // directory has room (checked under this lock hold).
                unsafe { space.pool.grow(block) };
            }
        }
    }

    /// Whether `init_on_alloc` or `init_on_free` is on: vmalloc memory then always comes back
    /// zeroed, as the kernel's pages do.
    pub(super) fn want_init<P: Platform>(k: &Kmem<P>) -> bool {
        let config = &k.slabs().config;
        config.init_on_alloc || config.init_on_free
    }

    /// The gfp backing pages are allocated with (`__vmalloc_area_node`): HighMem unless a DMA
    /// zone was asked for, never a warning per page, and never `__GFP_COMP`: the pages are
    /// independent order-0 pages, and the blocks kmem takes them from (huge areas, a small area
    /// filled from one block) are `split_page`d, which a compound block refuses.
    fn page_gfp(gfp: Gfp) -> Gfp {
        let gfp = gfp.difference(crate::gfp::__GFP_COMP) | crate::gfp::__GFP_NOWARN;
        if gfp.intersects(__GFP_DMA.union(__GFP_DMA32)) { gfp } else { gfp | __GFP_HIGHMEM }
    }

    /// Bytes of the kernel's page array for `nr_pages` (`nr_pages * sizeof(struct page *)`).
    pub(super) fn array_bytes(&self, nr_pages: usize) -> usize {
        nr_pages.saturating_mul(self.page_ptr_bytes)
    }

    /// `sizeof(struct page *)` of the machine modelled (8 on 64-bit, 4 on i386): the entry
    /// size pfn arrays are sized and reported with. 8 unless set.
    pub fn set_page_pointer_bytes(&mut self, bytes: usize) {
        assert!(bytes == 4 || bytes == 8, "sizeof(struct page *) is 4 or 8");
        self.page_ptr_bytes = bytes;
    }

    /// Node chunks allocated so far (blocks of `PAGE_SIZE << 2` holding the area trees' nodes):
    /// the peak number of nodes in use, rounded up to whole chunks. Test hook.
    #[cfg(any(test, feature = "check"))]
    pub fn node_chunks(&self) -> usize {
        self.space.lock().pool.chunks.len()
    }

    /// Checks every invariant of the address space and of each area; panics on a broken one.
    #[cfg(any(test, feature = "check"))]
    pub fn check(&self) {
        let space = self.space.lock();
        space.check();
        let mut vm_pages = 0;
        space.busy.for_each(&space.pool, &mut |i| {
            let n = space.pool.get(i);
            if n.flags & (VM_UNINITIALIZED | VM_PARKED | VM_RAM_BLOCK) == VM_RAM_BLOCK {
                self.check_block(&space, i);
                return true;
            }
            // Areas with frames (`get_vm_area` ones have none) map all but the guard page
            // (`vm_map_ram` areas have none).
            if n.flags & (VM_UNINITIALIZED | VM_PARKED) == 0 && n.pages.is_some() {
                let guard = if n.flags & (VM_NO_GUARD | VM_RAM) != 0 { 0 } else { PAGE_SIZE };
                assert_eq!(n.nr_pages() * PAGE_SIZE + guard, n.size(), "area {:#x} pages vs size", n.start);
                if n.flags & VM_VMALLOC != 0 {
                    vm_pages += n.nr_pages();
                }
            }
            true
        });
        let (mut deferred, mut deferred_pages) = (0, 0);
        let mut d = space.deferred;
        while d != node::NIL {
            assert!(space.pool.get(d).flags & VM_DEFERRED != 0);
            deferred += 1;
            deferred_pages += space.pool.get(d).nr_pages().max(1);
            d = space.pool.get(d).next;
        }
        assert_eq!(deferred, self.nr_deferred(), "deferred count");
        assert_eq!(deferred_pages, self.deferred_pages(), "deferred pages");
        assert_eq!(vm_pages, self.nr_vmalloc_pages(), "VmallocUsed vs pages of vmalloc areas");
    }
}
