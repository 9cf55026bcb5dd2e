//! `find_vm_area`, `remove_vm_area` and `get_vm_area_size` (SEMANTICS §5.4): the `vm_struct`
//! of an area, as a copy ([`VmArea`]); kmem keeps no `vm_struct` the caller could hold on to.
//!
//! Only areas with a `vm_struct` in the kernel are found: vmalloc, `vmap` and `get_vm_area`
//! areas, live and published; not `vm_map_ram` areas and blocks, areas being set up, queued
//! for a deferred free, lazily freed or parked (frame cache, VA pool).

use core::panic::Location;
use core::ptr::NonNull;

use super::free::Release;
use super::node::{NIL, Node};
use super::{Mmu, VM_CALLER_FLAGS, VM_MAP_PUT_PAGES, VM_NO_GUARD, VM_NO_VM_STRUCT, VM_VMALLOC, Vmalloc};
use crate::kmem::Kmem;
use crate::order::PAGE_SIZE;
use crate::platform::Platform;

/// The `vm_struct` fields of an area, copied under the vmap lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmArea {
    /// `vm->addr`: the first address.
    pub addr: NonNull<u8>,
    /// `vm->size`: bytes of address space, the guard page included (VM-11's size column).
    pub size: usize,
    /// `vm->flags`: the `VM_*` flags as the kernel defines them (`VM_ALLOC` for a vmalloc
    /// area, the caller's flags otherwise); none of kmem's own bits.
    pub flags: u32,
    /// `vm->nr_pages`: pages the area owns (a vmalloc area's, or a `VM_MAP_PUT_PAGES` `vmap`'s);
    /// 0 for a `vmap` or `get_vm_area` area, as in the kernel.
    pub nr_pages: usize,
    /// `vm->requested_size`: the bytes asked for.
    pub requested_size: usize,
    /// `vm->caller`: where the area was made.
    pub caller: Option<&'static Location<'static>>,
    /// `vm->page_order`: [`PMD_ORDER`](super::PMD_ORDER) for a huge vmalloc, else 0.
    pub page_order: u32,
}

impl VmArea {
    /// `get_vm_area_size(vm)`: the size without the guard page (all of it with `VM_NO_GUARD`).
    pub fn get_vm_area_size(&self) -> usize {
        if self.flags & VM_NO_GUARD != 0 { self.size } else { self.size - PAGE_SIZE }
    }

    fn of(n: &Node) -> Self {
        let owns = n.flags & (VM_VMALLOC | VM_MAP_PUT_PAGES) != 0;
        VmArea {
            addr: NonNull::new(n.start as *mut u8).expect("vmalloc range starts above 0"),
            size: n.size(),
            flags: n.flags & VM_CALLER_FLAGS,
            nr_pages: if owns { n.nr_pages() } else { 0 },
            requested_size: n.requested,
            caller: n.caller,
            page_order: u32::from(n.page_order),
        }
    }
}

impl<M: Mmu> Vmalloc<M> {
    /// `find_vm_area(addr)`: the area whose address space (guard page included) contains
    /// `addr`, as the kernel's `__find_vmap_area` finds it.
    pub fn find_vm_area(&self, addr: *const u8) -> Option<VmArea> {
        if !self.is_vmalloc_addr(addr) {
            return None;
        }
        let space = self.space.lock();
        let i = space.busy.containing(&space.pool, addr as usize);
        (i != NIL && space.pool.get(i).flags & VM_NO_VM_STRUCT == 0).then(|| VmArea::of(space.pool.get(i)))
    }

    /// `remove_vm_area(addr)`: unmaps the area that starts at `addr` and frees its address
    /// space (lazily), returning what it was. An unaligned `addr` is the kernel's `WARN`
    /// `Trying to vfree() bad address`; no such area gives `None` silently, as in the kernel.
    /// The kernel then leaves the area's pages to the caller, who frees them through
    /// `vm->pages`; kmem hands out no page array, so an area that owns its pages (vmalloc, or
    /// `vmap` with `VM_MAP_PUT_PAGES`) is refused with a `WARNING` (free it with `vfree`) and
    /// stays as it was.
    ///
    /// # Safety
    /// If `addr` starts a live area, the caller gives it up: nothing uses it afterwards.
    #[track_caller]
    pub unsafe fn remove_vm_area<P: Platform>(&self, k: &Kmem<P>, addr: *const u8) -> Option<VmArea> {
        self.bind(k);
        let caller = Location::caller();
        if k.platform().context().atomic {
            k.report_might_sleep(caller);
        }
        if !(addr as usize).is_multiple_of(PAGE_SIZE) {
            let msg = format_args!("Trying to vfree() bad address ({:016x})", addr as usize);
            self.warn(k, caller, "remove_vm_area", msg);
            return None;
        }
        let space = self.space.lock();
        let i = super::api::find_area(&space, addr as usize);
        if i == NIL {
            return None;
        }
        let area = VmArea::of(space.pool.get(i));
        if space.pool.get(i).flags & (VM_VMALLOC | VM_MAP_PUT_PAGES) != 0 {
            drop(space);
            let msg = format_args!(
                "remove_vm_area: the area at {:016x} owns its pages, which kmem hands to no caller: free it with \
                 vfree(); ignored",
                addr as usize
            );
            self.warn(k, caller, "remove_vm_area", msg);
            return None;
        }
        self.release(k, space, i, Release::MappingOnly, 0);
        Some(area)
    }
}
