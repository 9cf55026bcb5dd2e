//! `vread_iter` (SEMANTICS §5.4; `mm/vmalloc.c`, the reader behind `/proc/kcore`): copies a
//! range of the vmalloc space into a buffer without ever touching an unmapped address. Holes,
//! guard pages and ioremap areas read as zeros.
//!
//! The rules, each from the kernel function named:
//!
//! * **Overflow clamp** (`vread_iter`): if `addr + count` wraps, `count` becomes `-addr` (the
//!   bytes up to the end of the address space); the rest of the buffer is not written.
//! * **Walk** (`vread_iter`): the busy areas whose range ends above `addr`
//!   (`find_vmap_area_exceed_addr`), in address order, each under the vmap lock. Bytes before the
//!   first such area, between areas and after the last are holes: zeros. Nothing checks that
//!   `addr` is in the vmalloc range, so bytes below `VMALLOC_START` (or above `VMALLOC_END`)
//!   are holes too and read as zeros.
//! * **Skipped areas** (`vread_iter`'s `!vm && !flags` and `VM_UNINITIALIZED` tests): an area
//!   being set up reads as a hole (a `vzalloc` served from the frame cache too, until it is
//!   zeroed: the last owner's bytes never show through), and so does everything of kmem's
//!   that the kernel no longer has in its busy tree — frame-cache areas (freed), pooled
//!   ranges (purged) and ranges kept out of use after a failed unmap. Lazily freed areas are not busy at all. An area queued
//!   by `vfree` in atomic context is still whole in the kernel until the deferred work runs,
//!   and it is read like a live one here as well.
//! * **Extent** (`vread_iter`): `get_vm_area_size` for an area with a `vm_struct` (its guard
//!   page, if any, is outside: it reads as a hole), the whole range for a `vm_map_ram` area
//!   (`va_size`; it has no guard page).
//! * **Ioremap and sparse** (`vread_iter`): a `VM_IOREMAP` area (`vmap_pfn`,
//!   `get_vm_area(VM_IOREMAP)`) or a `VM_SPARSE` one reads as zeros, mapped or not.
//! * **vmalloc, `vmap`, `get_vm_area` and standalone `vm_map_ram` areas**
//!   (`aligned_vread_iter`): page by page, the bytes of the frame mapped there, zeros for a page
//!   that maps nothing (`vmalloc_to_page` is NULL: a `get_vm_area` area has no frames).
//! * **vmap blocks** (`vmap_ram_vread_iter`): the pages of live `vm_map_ram` mappings are
//!   copied; pages never handed out, freed (dirty) ones and the padding of a mapping rounded
//!   up to a power of two read as zeros (the kernel's used-map walk, then `aligned_vread_iter`,
//!   which zeroes unmapped pages of a used range).
//! * **Return** (`vread_iter`): the bytes "read", zeros included: `count` after the clamp,
//!   so 0 only for a zero `count`. (The kernel's comment promises 0 for a range that meets no
//!   area; its code zero-fills and returns `count` there too, and so does this.) A copy that
//!   cannot be made (`copy_page_to_iter_nofault` short) stops the read there and returns the
//!   bytes written so far: here, a HighMem frame on a platform that cannot read one
//!   ([`Platform::read_highmem`]).
//!
//! Safety of the read: frames are read through the direct map, or for HighMem through the
//! platform's temporary mapping ([`Platform::read_highmem`], the kernel's `kmap_local_page` in
//! `copy_page_to_iter_nofault`); the vmalloc address itself is never dereferenced. Under the
//! vmap lock an area in the busy tree keeps its pfn array and its frames (a free takes both
//! off the area under that lock, and frees them only after dropping it), so every frame read
//! is one the area still maps. The owner may be writing the bytes through the vmalloc address
//! while they are copied (the copy is a racy snapshot, as `/proc/kcore`'s); a write through the
//! direct-map address the copy reads would be a data race, so `vread_iter` is `unsafe` and its
//! caller promises there is none (a `vmap` of a slab or kmalloc page, written by its owner).
//!
//! Lock order: only the vmap lock, taken for one area at a time (the kernel takes its vmap
//! node's lock and drops it after each area, looking the next one up again); nothing is allocated or freed under it, no page allocator, slab or
//! reclaim lock is taken, and the platform's HighMem read takes no kmem lock and does not
//! sleep. So a read cannot deadlock with reclaim, the vmalloc shrinker or a purge, which take
//! the vmap lock themselves with nothing of this path held. The caller's buffer must not be
//! memory whose access needs the vmap lock (none does: a vmalloc buffer is simply mapped).

use super::node::NIL;
use super::space::Space;
use super::{Mmu, VM_IOREMAP, VM_NO_GUARD, VM_PARKED, VM_RAM, VM_RAM_BLOCK, VM_SPARSE, VM_UNINITIALIZED, Vmalloc};
use crate::kmem::Kmem;
use crate::order::PAGE_SIZE;
use crate::platform::Platform;

/// How one area's bytes are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Zeros (`VM_IOREMAP`, `VM_SPARSE`).
    Zeros,
    /// Page by page through the pfn array (`aligned_vread_iter`).
    Pages,
    /// Page by page through a vmap block's map (`vmap_ram_vread_iter`).
    Block,
}

impl<M: Mmu> Vmalloc<M> {
    /// `vread_iter(iter, addr, count)` with the iterator a buffer (`count = buf.len()`): fills
    /// `buf` with the bytes of the vmalloc space from `addr`, holes, guard pages, ioremap areas
    /// and unmapped pages as zeros, and returns the bytes read (see the module docs for every
    /// rule): `buf.len()`, or less when the range wraps the address space (the clamp) or a
    /// HighMem frame cannot be read. Never faults, whatever `addr` is; any context.
    ///
    /// # Safety
    /// The copy is a plain read of each frame at its direct-map address. While it runs, no byte
    /// it reads may be written at that address by another thread, nor lie under a live `&mut`
    /// (or a `&` to interior-mutable data) made from a direct-map address: the frames that
    /// [`Self::vmap`] and [`Self::vm_map_ram`] map are any pages at all, and their owner (a
    /// slab object, a kmalloc block, a page block) uses them through the direct map, so its
    /// accesses would race with this read. Writes through the area's own vmalloc address (a
    /// `Vec` in vmalloc memory) are another mapping of the frame, which the copy only
    /// snapshots racily, as `/proc/kcore` does.
    pub unsafe fn vread_iter<P: Platform>(&self, k: &Kmem<P>, buf: &mut [u8], addr: usize) -> usize {
        self.bind(k);
        let mut count = buf.len();
        // "Don't allow overflow": `addr + count < count` iff it wraps.
        if addr.wrapping_add(count) < count {
            count = addr.wrapping_neg();
        }
        let buf = &mut buf[..count];
        let mut done = 0;
        // Where the next area is looked for: the first busy area ending above it. Each area is
        // read under its own hold of the vmap lock, looked up again from here after the lock
        // was dropped, as the kernel's walk drops its node's lock after each area.
        let mut from = addr;
        while done < count {
            let space = self.space.lock();
            let i = first_ending_above(&space, from);
            if i == NIL {
                break;
            }
            let n = space.pool.get(i);
            from = n.end;
            let cur = addr.wrapping_add(done);
            // `cur` does not wrap before `count` bytes are done (the clamp), so `start - cur` is
            // the distance to the area when it lies ahead.
            if n.start > cur && n.start - cur >= count - done {
                break;
            }
            if n.flags & (VM_UNINITIALIZED | VM_PARKED) != 0 {
                continue;
            }
            let guard = if n.flags & (VM_NO_GUARD | VM_RAM) != 0 { 0 } else { PAGE_SIZE };
            let end = n.end - guard;
            if cur >= end {
                continue;
            }
            if cur < n.start {
                let gap = n.start - cur;
                buf[done..done + gap].fill(0);
                done += gap;
            }
            let cur = addr.wrapping_add(done);
            let len = (end - cur).min(count - done);
            let kind = if n.flags & VM_RAM_BLOCK != 0 {
                Kind::Block
            } else if n.flags & VM_RAM == 0 && n.flags & (VM_IOREMAP | VM_SPARSE) != 0 {
                Kind::Zeros
            } else {
                Kind::Pages
            };
            let copied = read_area(k, n, kind, cur, &mut buf[done..done + len]);
            done += copied;
            if copied != len {
                // `copied != n`: "We couldn't copy/zero everything".
                return done;
            }
        }
        // `finished_zero`: the holes after the last area.
        buf[done..].fill(0);
        count
    }
}

/// The busy node whose range ends above `addr` with the lowest start
/// (`find_vmap_area_exceed_addr`), or `NIL`.
fn first_ending_above(space: &Space, addr: usize) -> u32 {
    match space.busy.containing(&space.pool, addr) {
        NIL => space.busy.ceil(&space.pool, addr),
        i => i,
    }
}

/// Reads `dst.len()` bytes of area `n` from `cur` (inside its extent) the way `kind` says;
/// returns the bytes written (all unless a HighMem frame could not be read).
fn read_area<P: Platform>(k: &Kmem<P>, n: &super::node::Node, kind: Kind, cur: usize, dst: &mut [u8]) -> usize {
    if kind == Kind::Zeros {
        dst.fill(0);
        return dst.len();
    }
    let mut done = 0;
    while done < dst.len() {
        let at = cur + done;
        let (index, offset) = ((at - n.start) / PAGE_SIZE, at % PAGE_SIZE);
        let len = (PAGE_SIZE - offset).min(dst.len() - done);
        let pfn = n.pages.and_then(|map| match kind {
            Kind::Block => super::ram::block_pfn(&map, index),
            _ => (index < map.len as usize).then(|| map.get(index) as usize),
        });
        let out = &mut dst[done..done + len];
        match pfn {
            Some(pfn) if !read_frame(k, pfn, offset, out) => return done,
            Some(_) => {}
            None => out.fill(0),
        }
        done += len;
    }
    done
}

/// Copies `dst.len()` bytes at `offset` of frame `pfn` (a frame an area maps, under the vmap
/// lock): through the direct map, or the platform's HighMem read. False if it cannot.
fn read_frame<P: Platform>(k: &Kmem<P>, pfn: usize, offset: usize, dst: &mut [u8]) -> bool {
    debug_assert!(offset + dst.len() <= PAGE_SIZE);
    match k.pages().pfn_address(pfn) {
        Some(base) => {
            // SAFETY: `pfn` is a lowmem frame of this machine, so its page is in the direct map,
            // always accessible; `offset + dst.len()` stays inside the page (the caller splits
            // at page boundaries). `dst` may be those very bytes (a caller reading a page into
            // its own direct-map address): `copy` allows the overlap. Nothing writes them at
            // this address meanwhile (`vread_iter`'s contract); writes through another mapping
            // make the copy a racy snapshot (the module docs).
            unsafe { core::ptr::copy(base.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) };
            true
        }
        // SAFETY: A frame of this machine (an area maps it), `offset + dst.len() <= PAGE_SIZE`.
        None => unsafe { k.platform().read_highmem(pfn, offset, dst) },
    }
}
