//! `vm_map_ram`/`vm_unmap_ram` (SEMANTICS §5.4, Linux 6.6–6.12 `mm/vmalloc.c`): short-lived
//! mappings of the caller's pages, without a `vm_struct` and without a guard page.
//!
//! Shape: a request of up to `VMAP_MAX_ALLOC` (`BITS_PER_LONG`) pages is carved from a *vmap
//! block*, an area of `VMAP_BBMAP_BITS` pages aligned to its own size (`new_vmap_block`), kept
//! on the queue of the CPU that made it while it has pages left. Each request takes
//! `1 << get_order(count)` pages (the next power of two) at the block's free offset
//! `VMAP_BBMAP_BITS - free` (`vb_alloc`): offsets only grow, so a request is aligned to its
//! order only when the ones before it were; freed pages are *dirty* and never handed out again.
//! A block whose pages are all dirty goes to the lazy tree at once (`vb_free` →
//! `free_vmap_block`); a fragmented one (`free + dirty == VMAP_BBMAP_BITS`, some pages never
//! handed out) goes when `vm_unmap_aliases` finds fewer than `VMAP_PURGE_THRESHOLD` left, or
//! whatever is left when the address space runs out (`reclaim_and_purge_vmap_areas`).
//! `vm_unmap_aliases` also flushes and forgets every block's dirty range. Larger requests get
//! a standalone area of exactly `count` pages (`alloc_vmap_area(.., VMAP_RAM)`).
//!
//! A block's map is its node's pfn array of `2 * VMAP_BBMAP_BITS` entries: entry `j <
//! VMAP_BBMAP_BITS` is the frame mapped at page `j` ([`NO_PFN`] if none); entry
//! `VMAP_BBMAP_BITS + j` is the `count` of the live mapping that starts at page `j` (0 if none
//! starts there). That tag is kmem's addition (the kernel's `used_map` bitmap has no sizes): it
//! lets `vm_unmap_ram` refuse an address it did not hand out, a second unmap and a count that is
//! not the mapping's, where the kernel would corrupt the block or crash.
//!
//! Invariants (checked by `Vmalloc::check`): for a live block, `free + dirty + (pages of live
//! mappings, each rounded to its power of two) == VMAP_BBMAP_BITS`, pages at or past
//! `VMAP_BBMAP_BITS - free` map nothing, a block is on the flush list iff it has a dirty range
//! not yet flushed (so `vm_unmap_aliases` walks those blocks, never all areas), and a block is
//! on its queue iff `free > 0` (unless a
//! mapping could not be unmapped: then its pages count in neither `dirty` nor `free` and the
//! block stays busy for good, as [`Mmu::unmap`]'s contract asks). The pages are the caller's
//! (VM-9): nothing here frees them.
//!
//! Locking: the blocks and their queues live under the vmap lock (the kernel's `vb->lock` and
//! `vbq->lock` collapse into it); block maps are allocated before it is taken and freed after
//! it is dropped, and mapping happens outside it (the pages are reserved meanwhile).

use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::free::Release;
use super::node::{NIL, VbState};
use super::raw::PfnArray;
use super::space::Space;
use super::{Mmu, VM_RAM, VM_RAM_BLOCK, VM_UNINITIALIZED, Vmalloc};
use crate::AllocError;
use crate::gfp::{__GFP_DIRECT_RECLAIM, GFP_KERNEL, Gfp};
use crate::kmem::Kmem;
use crate::memmap::Page;
use crate::order::PAGE_SIZE;
use crate::platform::{Level, Platform};

/// Per-CPU block queues (`vmap_block_queue`); CPU `c` uses queue `c % VB_QUEUES`.
pub(super) const VB_QUEUES: usize = 64;
/// `VMAP_BBMAP_BITS_MAX`: the largest vmap block, in pages (4 MiB).
pub const VMAP_BBMAP_BITS_MAX: usize = 1024;
/// The largest `VMAP_MAX_ALLOC` (`BITS_PER_LONG` on 64-bit).
const MAX_ALLOC_MAX: usize = 64;
/// A block page that maps nothing.
const NO_PFN: u32 = u32::MAX;

const _: () = assert!(VMAP_BBMAP_BITS_MAX <= u16::MAX as usize);
const _: () = assert!(VB_QUEUES <= u16::MAX as usize);

/// The frame at page `index` of a vmap block whose map is `map`, if a live mapping covers it.
pub(super) fn block_pfn(map: &PfnArray, index: usize) -> Option<usize> {
    let bits = map.len as usize / 2;
    (index < bits).then(|| map.get(index)).filter(|&pfn| pfn != NO_PFN).map(|pfn| pfn as usize)
}

impl<M: Mmu> Vmalloc<M> {
    /// `VMAP_MAX_ALLOC`: the largest `vm_map_ram` served from a vmap block, `BITS_PER_LONG`
    /// pages of the machine modelled (64, or 32 with 4-byte page pointers as on i386).
    pub fn vmap_max_alloc(&self) -> usize {
        self.page_ptr_bytes * 8
    }

    /// `VMAP_BBMAP_BITS`: pages per vmap block, `VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) /
    /// 16` clamped to `2 * VMAP_MAX_ALLOC ..= 1024`, with the kernel's guess of the space
    /// (`VMALLOC_SPACE`: 128 MiB on 32-bit, 128 GiB on 64-bit) and the machine's CPU count as
    /// `NR_CPUS`.
    pub fn vmap_bbmap_bits(&self) -> usize {
        let space: usize = if self.vmap_max_alloc() == 32 { 128 << 20 } else { 128 << 30 };
        let guess = space / PAGE_SIZE / self.nr_cpus.max(1).next_power_of_two() / 16;
        guess.clamp(2 * self.vmap_max_alloc(), VMAP_BBMAP_BITS_MAX)
    }

    /// Live vmap blocks (busy, not yet given back).
    pub fn nr_vmap_blocks(&self) -> usize {
        let space = self.space.lock();
        let mut n = 0;
        space.busy.for_each(&space.pool, &mut |i| {
            n += usize::from(space.pool.get(i).flags & (VM_RAM_BLOCK | VM_UNINITIALIZED) == VM_RAM_BLOCK);
            true
        });
        n
    }

    /// `vm_map_ram(pages, count, node)`: maps the caller's pages contiguously, from a vmap
    /// block of this CPU up to [`Self::vmap_max_alloc`] pages, else in an area of their own
    /// (no guard page). The pages stay the caller's (VM-9). `node` is ignored (one node). May
    /// sleep: in atomic context it is reported and goes on without direct reclaim.
    ///
    /// # Errors
    /// No pages (warned, as `vb_alloc`'s `WARN_ON(size == 0)`), a page that is not in this
    /// machine, no address space or no memory for the bookkeeping.
    #[track_caller]
    pub fn vm_map_ram<P: Platform>(&self, k: &Kmem<P>, pages: &[&Page], node: i32) -> Result<NonNull<u8>, AllocError> {
        self.bind(k);
        let _ = node; // One node: every node id means node 0.
        let caller = Location::caller();
        let atomic = k.platform().context().atomic;
        if atomic {
            k.report_might_sleep(caller);
        }
        let gfp = if atomic { GFP_KERNEL.difference(__GFP_DIRECT_RECLAIM) } else { GFP_KERNEL };
        let count = pages.len();
        if count == 0 {
            self.warn(k, caller, "vb_alloc", format_args!("vm_map_ram: count 0 (WARN_ON(size == 0) in vb_alloc)"));
            return Err(AllocError);
        }
        if count > self.vmap_max_alloc() {
            // The standalone area (no guard page, no `vm_struct`).
            let pfn = |i: usize| k.page_to_pfn(pages[i]);
            return self.map_lent(k, count, PAGE_SIZE, gfp, VM_RAM, &pfn, None, caller);
        }
        let mut pfns = [0u32; MAX_ALLOC_MAX];
        for (slot, page) in pfns.iter_mut().zip(pages) {
            *slot = k.page_to_pfn(page).ok_or(AllocError)? as u32;
        }
        let pfns = &pfns[..count];
        let (block, addr) = self.vb_alloc(k, pfns, gfp, caller)?;
        if let Err(failed) = self.map_runs(addr, count, &|j| pfns[j] as usize) {
            // `vm_unmap_ram(mem, count)` on the failure path: the pages go dirty, unless some
            // stayed mapped (then they stay out of use for good).
            k.platform().log(Level::Warning, format_args!("vm_map_ram: failed to map {count} pages"));
            self.vb_release(k, block, addr, count, failed.still_mapped == 0);
            return Err(AllocError);
        }
        Ok(NonNull::new(addr as *mut u8).expect("vmalloc range starts above 0"))
    }

    /// `vb_alloc`: reserves `pfns.len().next_power_of_two()` pages in a block of this CPU's
    /// queue, or in a new block, and records `pfns` there; returns the block and the address.
    fn vb_alloc<P: Platform>(
        &self,
        k: &Kmem<P>,
        pfns: &[u32],
        gfp: Gfp,
        caller: &'static Location<'static>,
    ) -> Result<(u32, usize), AllocError> {
        let bits = self.vmap_bbmap_bits();
        let need = pfns.len().next_power_of_two();
        let queue = k.platform().cpu().unwrap_or(0) % VB_QUEUES;
        {
            let mut space = self.space.lock();
            if let Some((i, off)) = space.vb_take(queue, need, bits) {
                let node = space.pool.get(i);
                let mut map = node.pages.expect("a live vmap block has its map");
                record(&mut map, bits, off, pfns);
                return Ok((i, node.start + off * PAGE_SIZE));
            }
        }
        // `new_vmap_block`: the map first (the kernel's `kmalloc` of the `vmap_block`), then
        // the block's address space, aligned to its size.
        let mut map = self.alloc_array(k, 2 * bits, gfp, caller)?;
        for j in 0..bits {
            map.set(j, NO_PFN);
            map.set(bits + j, 0);
        }
        record(&mut map, bits, 0, pfns);
        let size = bits * PAGE_SIZE;
        let flags = VM_RAM | VM_RAM_BLOCK | VM_UNINITIALIZED;
        let Ok((i, start)) = self.alloc_area(k, size, size, gfp, flags, size, caller) else {
            self.free_array(k, &map);
            return Err(AllocError);
        };
        let mut space = self.space.lock();
        let node = space.pool.get_mut(i);
        node.pages = Some(map);
        node.vb = VbState::new((bits - need) as u16, bits as u16, queue as u16);
        node.flags &= !VM_UNINITIALIZED;
        space.vb_push(queue, i);
        Ok((i, start))
    }

    /// `vm_unmap_ram(mem, count)`: removes a `vm_map_ram` mapping; `count` must be the one it
    /// was made with. The pages stay the caller's (VM-9). Misuse is reported in the kernel's
    /// words and ignored: an address outside the vmalloc range, NULL or unaligned (the
    /// `BUG_ON`s), a small `count` whose address is in no vmap block (`vb_free`'s
    /// `BUG_ON(!vb)` of Linux ≤ 5.x; later kernels dereference NULL), a large one that starts
    /// no `vm_map_ram` area (`WARN_ON_ONCE(!va)`), and — kmem's own checks, where the kernel
    /// corrupts its block — an address that starts no live mapping (a second unmap) or a
    /// `count` that is not the mapping's (`cannot unmap partial`).
    ///
    /// # Safety
    /// If `mem` starts a live `vm_map_ram` mapping, the caller gives it up: nothing uses the
    /// mapping afterwards.
    #[track_caller]
    pub unsafe fn vm_unmap_ram<P: Platform>(&self, k: &Kmem<P>, mem: *const u8, count: usize) {
        self.bind(k);
        let caller = Location::caller();
        if k.platform().context().atomic {
            k.report_might_sleep(caller);
        }
        let addr = mem as usize;
        let bug = if addr == 0 {
            Some("!addr")
        } else if addr < self.start {
            Some("addr < VMALLOC_START")
        } else if addr > self.end {
            Some("addr > VMALLOC_END")
        } else if !addr.is_multiple_of(PAGE_SIZE) {
            Some("!PAGE_ALIGNED(addr)")
        } else {
            None
        };
        if let Some(cond) = bug {
            self.bug(k, caller, "vm_unmap_ram", format_args!("BUG_ON({cond}) for {addr:#x}; the call is ignored"));
            return;
        }
        if count <= self.vmap_max_alloc() {
            self.vb_free(k, addr, count, caller);
            return;
        }
        let space = self.space.lock();
        let i = space.busy.floor(&space.pool, addr);
        let found = i != NIL && {
            let n = space.pool.get(i);
            n.start == addr && n.flags & (VM_RAM | VM_RAM_BLOCK | VM_UNINITIALIZED | super::VM_PARKED) == VM_RAM
        };
        if !found {
            drop(space);
            let msg = format_args!("vm_unmap_ram: no vm_map_ram area of {count} pages starts at {addr:#x}");
            k.platform().log(Level::Err, msg);
            if !self.warned_unmap_ram.swap(true, Relaxed) {
                self.warn(k, caller, "vm_unmap_ram", format_args!("WARN_ON_ONCE(!va)"));
            }
            return;
        }
        let mapped = space.pool.get(i).nr_pages();
        if mapped != count {
            drop(space);
            self.warn_count(k, caller, addr, count, mapped);
            return;
        }
        self.release(k, space, i, Release::MappingOnly, 0);
    }

    /// `vb_free`: the small-count half of [`Self::vm_unmap_ram`].
    fn vb_free<P: Platform>(&self, k: &Kmem<P>, addr: usize, count: usize, caller: &Location<'_>) {
        let bits = self.vmap_bbmap_bits();
        let mut space = self.space.lock();
        let i = space.busy.containing(&space.pool, addr);
        if i == NIL || space.pool.get(i).flags & (VM_RAM_BLOCK | VM_UNINITIALIZED) != VM_RAM_BLOCK {
            drop(space);
            let msg = format_args!("BUG_ON(!vb): {addr:#x} is in no vmap block ({count} pages); the call is ignored");
            self.bug(k, caller, "vb_free", msg);
            return;
        }
        let node = space.pool.get(i);
        let off = (addr - node.start) / PAGE_SIZE;
        let mut map = node.pages.expect("a live vmap block has its map");
        let mapped = map.get(bits + off) as usize;
        if mapped != count || count == 0 {
            drop(space);
            self.warn_count(k, caller, addr, count, mapped);
            return;
        }
        map.set(bits + off, 0);
        for j in off..off + count {
            map.set(j, NO_PFN);
        }
        // `vunmap_range_noflush`: the PTEs go now, the TLB flush waits for `vm_unmap_aliases`.
        // SAFETY: The mapping's owner gives it up (`vm_unmap_ram`'s contract); pages
        // `off..off + count` of the block are that mapping alone.
        let unmapped = unsafe { self.mmu.unmap(addr, count * PAGE_SIZE) }.is_ok();
        let gone = self.vb_dirty(&mut space, i, off, count.next_power_of_two(), unmapped);
        drop(space);
        self.vb_finish(k, gone, unmapped, count);
    }

    /// Gives back the pages of a mapping `vm_map_ram` could not map (`unmapped`: nothing of
    /// it stays mapped).
    fn vb_release<P: Platform>(&self, k: &Kmem<P>, block: u32, addr: usize, count: usize, unmapped: bool) {
        let bits = self.vmap_bbmap_bits();
        let mut space = self.space.lock();
        let node = space.pool.get(block);
        let off = (addr - node.start) / PAGE_SIZE;
        let mut map = node.pages.expect("a live vmap block has its map");
        map.set(bits + off, 0);
        for j in off..off + count {
            map.set(j, NO_PFN);
        }
        let gone = self.vb_dirty(&mut space, block, off, count.next_power_of_two(), unmapped);
        drop(space);
        self.vb_finish(k, gone, unmapped, count);
    }

    /// Marks `need` pages at `off` of block `i` dirty (`unmapped`; else they stay out of use
    /// for good); a block now wholly dirty goes to the lazy tree (`free_vmap_block`), and its
    /// map is returned to be freed, with whether a lazy purge is due.
    fn vb_dirty(&self, space: &mut Space, i: u32, off: usize, need: usize, unmapped: bool) -> Option<(PfnArray, bool)> {
        if !unmapped {
            super::locked_add(&self.stats.unmap_failures, 1);
            return None;
        }
        let bits = self.vmap_bbmap_bits();
        let head = space.vb_flush;
        let vb = &mut space.pool.get_mut(i).vb;
        let listed = vb.dirty_max > 0;
        vb.dirty_min = vb.dirty_min.min(off as u16);
        vb.dirty_max = vb.dirty_max.max((off + need) as u16);
        vb.dirty += need as u16;
        let whole = usize::from(vb.dirty) == bits;
        debug_assert!(!whole || vb.free == 0, "a wholly dirty block has no free pages");
        if !listed {
            // Now with a range to flush: on the flush list (`vm_unmap_aliases` walks it, not
            // every area).
            vb.flush_next = head;
            vb.flush_prev = NIL;
            if head != NIL {
                space.pool.get_mut(head).vb.flush_prev = i;
            }
            space.vb_flush = i;
        }
        if !whole {
            return None;
        }
        Some((self.vb_retire(space, i), space.lazy_pages > self.lazy_max_pages()))
    }

    /// Moves block `i` (off its queue) to the lazy tree; returns its map.
    fn vb_retire(&self, space: &mut Space, i: u32) -> PfnArray {
        space.vb_unlink(i);
        space.vb_unlink_flush(i);
        let map = space.pool.get_mut(i).pages.take().expect("a live vmap block has its map");
        space.retire(i);
        super::locked_add(&self.stats.vb_frees, 1);
        map
    }

    /// After the lock: frees a retired block's map, purges if due, reports a mapping that
    /// would not go.
    fn vb_finish<P: Platform>(&self, k: &Kmem<P>, gone: Option<(PfnArray, bool)>, unmapped: bool, count: usize) {
        if !unmapped {
            let msg = format_args!(
                "vmalloc: cannot unmap a vm_map_ram mapping of {count} pages; its vmap block is never reused"
            );
            k.platform().log(Level::Err, msg);
        }
        if let Some((map, purge)) = gone {
            self.free_array(k, &map);
            if purge {
                self.lazy_purge(k);
            }
        }
    }

    /// `purge_fragmented_blocks_allcpus` (`force`) or the purge `_vm_unmap_aliases` makes
    /// (only blocks with fewer than `VMAP_PURGE_THRESHOLD` = `VMAP_BBMAP_BITS / 8` pages
    /// left): every block whose pages were all unmapped again, some never handed out, goes to
    /// the lazy tree. Returns the blocks given back.
    ///
    /// One pass over the queues (as the kernel's walk of each CPU's list): the blocks are
    /// retired under one lock hold and their maps, collected in a chain through the retired
    /// nodes' map slots, are freed after it is dropped. A block made fragmented meanwhile waits
    /// for the next purge, as in the kernel.
    pub(super) fn purge_fragmented_blocks<P: Platform>(&self, k: &Kmem<P>, force: bool) -> usize {
        let bits = self.vmap_bbmap_bits();
        let mut dead: Option<PfnArray> = None;
        let mut n = 0;
        {
            let mut space = self.space.lock();
            for q in 0..VB_QUEUES {
                let mut i = space.vb_queues[q];
                while i != NIL {
                    let next = space.pool.get(i).next;
                    let vb = space.pool.get(i).vb;
                    let (free, dirty) = (usize::from(vb.free), usize::from(vb.dirty));
                    if free + dirty == bits && dirty != bits && (force || free < bits / 8) {
                        let vb = &mut space.pool.get_mut(i).vb;
                        vb.free = 0;
                        vb.dirty = bits as u16;
                        let mut map = self.vb_retire(&mut space, i);
                        chain_push(&mut map, dead);
                        dead = Some(map);
                        n += 1;
                    }
                    i = next;
                }
            }
        }
        while let Some(map) = dead {
            dead = chain_next(&map);
            self.free_array(k, &map);
        }
        n
    }

    /// The dirty-range half of `_vm_unmap_aliases`: every live block with a dirty range not
    /// yet flushed has it flushed (counted) and forgotten. It walks the flush list, which holds
    /// exactly those blocks, so its cost does not grow with the number of areas.
    pub(super) fn flush_dirty_blocks(&self, space: &mut Space) {
        let bits = self.vmap_bbmap_bits() as u16;
        let mut i = core::mem::replace(&mut space.vb_flush, NIL);
        while i != NIL {
            let vb = &mut space.pool.get_mut(i).vb;
            i = core::mem::replace(&mut vb.flush_next, NIL);
            vb.flush_prev = NIL;
            vb.dirty_min = bits;
            vb.dirty_max = 0;
            super::locked_add(&self.stats.vb_flushes, 1);
        }
    }

    /// The kernel's `BUG_ON` as kmem reports it: `kernel BUG at mm/vmalloc.c`, the condition,
    /// the caller and a stack; the call goes no further.
    fn bug<P: Platform>(&self, k: &Kmem<P>, caller: &Location<'_>, func: &str, msg: core::fmt::Arguments<'_>) {
        k.platform().log(Level::Crit, format_args!("kernel BUG at mm/vmalloc.c: {func}: {msg}\n  at {caller}"));
        k.platform().dump_stack(caller);
    }

    /// A `vm_unmap_ram` whose `count` is not the one the mapping at `addr` was made with
    /// (`mapped`, 0 if no mapping starts there).
    fn warn_count<P: Platform>(&self, k: &Kmem<P>, caller: &Location<'_>, addr: usize, count: usize, mapped: usize) {
        let msg = if mapped == 0 {
            format_args!("vm_unmap_ram: no vm_map_ram mapping starts at {addr:#x} (already unmapped?); ignored")
        } else {
            format_args!(
                "vm_unmap_ram: count {count} is not the count passed to that vm_map_ram call ({mapped}) at \
                 {addr:#x} (cannot unmap partial); ignored"
            )
        };
        self.warn(k, caller, "vm_unmap_ram", msg);
    }

    /// Panics unless block `i` keeps the invariants of the module docs.
    #[cfg(any(test, feature = "check"))]
    pub(super) fn check_block(&self, space: &Space, i: u32) {
        let bits = self.vmap_bbmap_bits();
        let n = space.pool.get(i);
        let map = n.pages.expect("a live vmap block has its map");
        assert_eq!(map.len as usize, 2 * bits, "block {:#x} map size", n.start);
        assert_eq!(n.size(), bits * PAGE_SIZE, "block size");
        assert!(n.start.is_multiple_of(bits * PAGE_SIZE), "block {:#x} aligned to its size", n.start);
        let (free, dirty) = (usize::from(n.vb.free), usize::from(n.vb.dirty));
        let mut live = 0;
        for j in 0..bits {
            let count = map.get(bits + j) as usize;
            if count > 0 {
                live += count.next_power_of_two();
                for p in j..j + count {
                    assert_ne!(map.get(p), NO_PFN, "block {:#x} page {p} of a live mapping", n.start);
                }
            }
        }
        for j in bits - free..bits {
            assert_eq!(map.get(j), NO_PFN, "block {:#x}: free page {j} maps something", n.start);
        }
        assert!(free + dirty + live <= bits, "block {:#x}: free {free} dirty {dirty} live {live}", n.start);
        if self.stats.unmap_failures.load(Relaxed) == 0 {
            assert_eq!(free + dirty + live, bits, "block {:#x}: pages lost", n.start);
        }
        let mut on_queue = false;
        let mut q = space.vb_queues[usize::from(n.vb.queue)];
        while q != NIL {
            on_queue |= q == i;
            q = space.pool.get(q).next;
        }
        assert_eq!(on_queue, free > 0, "block {:#x}: on its queue iff it has free pages", n.start);
        let q = usize::from(n.vb.queue);
        if on_queue {
            let prev_ok = if n.vb.prev == NIL { space.vb_queues[q] == i } else { space.pool.get(n.vb.prev).next == i };
            let next_ok = if n.next == NIL { space.vb_tails[q] == i } else { space.pool.get(n.next).vb.prev == i };
            assert!(prev_ok && next_ok, "block {:#x}: queue links", n.start);
        } else {
            assert!(n.vb.prev == NIL && n.next == NIL && space.vb_tails[q] != i, "block {:#x}: off its queue", n.start);
        }
        let mut on_flush = false;
        let mut f = space.vb_flush;
        while f != NIL {
            on_flush |= f == i;
            f = space.pool.get(f).vb.flush_next;
        }
        assert_eq!(on_flush, n.vb.dirty_max > 0, "block {:#x}: on the flush list iff it has a dirty range", n.start);
        let (fp, fnext) = (n.vb.flush_prev, n.vb.flush_next);
        if on_flush {
            let prev_ok = if fp == NIL { space.vb_flush == i } else { space.pool.get(fp).vb.flush_next == i };
            assert!(
                prev_ok && (fnext == NIL || space.pool.get(fnext).vb.flush_prev == i),
                "block {:#x}: flush links",
                n.start
            );
        } else {
            assert!(fp == NIL && fnext == NIL, "block {:#x}: off the flush list", n.start);
        }
    }
}

/// Links the dead block map `map` (retired, owned by nobody else) to the chain `rest`: the
/// first four entries of `map` (a map has at least `4 * VMAP_MAX_ALLOC` of them) record
/// `rest`'s address, order and length, so that maps retired under the vmap lock are freed after
/// it is dropped without a heap (kmem-core has none).
fn chain_push(map: &mut PfnArray, rest: Option<PfnArray>) {
    let (addr, order, len) = rest.map_or((0, 0, 0), |r| (r.block().as_ptr() as usize as u64, r.order, r.len));
    map.set(0, addr as u32);
    map.set(1, (addr >> 32) as u32);
    map.set(2, order);
    map.set(3, len);
}

/// The map linked after `map` by [`chain_push`].
fn chain_next(map: &PfnArray) -> Option<PfnArray> {
    let addr = (u64::from(map.get(1)) << 32 | u64::from(map.get(0))) as usize;
    let (order, len) = (map.get(2), map.get(3));
    let block = NonNull::new(addr as *mut u8)?;
    Some(if order == PfnArray::KMALLOC {
        // SAFETY: Recorded by `chain_push` from a live kmalloc map of `len` entries that was
        // retired (nobody else refers to it) and is freed exactly once, by this chain's walk.
        unsafe { PfnArray::new_kmalloc(block, len) }
    } else {
        // SAFETY: As above, for a map that is a block of `order`.
        unsafe { PfnArray::new(block, order, len) }
    })
}

/// Writes `pfns` into a block map at page `off`, tagged with their count.
fn record(map: &mut PfnArray, bits: usize, off: usize, pfns: &[u32]) {
    for (j, &pfn) in pfns.iter().enumerate() {
        map.set(off + j, pfn);
    }
    map.set(bits + off, pfns.len() as u32);
}

impl Space {
    /// Takes `need` pages from the first block of `queue` that has them (`vb_alloc`'s walk);
    /// a block left without free pages leaves the queue. Returns the block and the page offset.
    fn vb_take(&mut self, queue: usize, need: usize, bits: usize) -> Option<(u32, usize)> {
        let mut i = self.vb_queues[queue];
        while i != NIL {
            let n = self.pool.get_mut(i);
            if usize::from(n.vb.free) >= need {
                let off = bits - usize::from(n.vb.free);
                n.vb.free -= need as u16;
                if n.vb.free == 0 {
                    self.vb_unlink(i);
                }
                return Some((i, off));
            }
            i = n.next;
        }
        None
    }

    /// Appends block `i` to `queue` (`list_add_tail_rcu`), in O(1).
    fn vb_push(&mut self, queue: usize, i: u32) {
        let tail = self.vb_tails[queue];
        let n = self.pool.get_mut(i);
        n.next = NIL;
        n.vb.prev = tail;
        if tail == NIL {
            self.vb_queues[queue] = i;
        } else {
            self.pool.get_mut(tail).next = i;
        }
        self.vb_tails[queue] = i;
    }

    /// Takes block `i` off the flush list, if it is on it (a dirty range not flushed yet), in
    /// O(1).
    fn vb_unlink_flush(&mut self, i: u32) {
        let vb = self.pool.get(i).vb;
        if vb.flush_prev == NIL && self.vb_flush != i {
            return;
        }
        if vb.flush_prev == NIL {
            self.vb_flush = vb.flush_next;
        } else {
            self.pool.get_mut(vb.flush_prev).vb.flush_next = vb.flush_next;
        }
        if vb.flush_next != NIL {
            self.pool.get_mut(vb.flush_next).vb.flush_prev = vb.flush_prev;
        }
        let vb = &mut self.pool.get_mut(i).vb;
        vb.flush_next = NIL;
        vb.flush_prev = NIL;
    }

    /// Takes block `i` off its queue, if it is on it, in O(1) (`list_del_rcu`).
    fn vb_unlink(&mut self, i: u32) {
        let queue = usize::from(self.pool.get(i).vb.queue);
        let (prev, next) = (self.pool.get(i).vb.prev, self.pool.get(i).next);
        if prev == NIL && self.vb_queues[queue] != i {
            return;
        }
        if prev == NIL {
            self.vb_queues[queue] = next;
        } else {
            self.pool.get_mut(prev).next = next;
        }
        if next == NIL {
            self.vb_tails[queue] = prev;
        } else {
            self.pool.get_mut(next).vb.prev = prev;
        }
        let n = self.pool.get_mut(i);
        n.next = NIL;
        n.vb.prev = NIL;
    }
}
