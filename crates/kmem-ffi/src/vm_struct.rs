//! `struct vm_struct` for C: `find_vm_area`, `remove_vm_area`, `get_vm_area`, `free_vm_area`
//! (`get_vm_area_size` is a `static inline` of `linux/vmalloc.h`).
//!
//! The core keeps no `vm_struct`; C gets one the kernel's way: a kmalloc object of the machine
//! (as the kernel's `kzalloc_node` in `__get_vm_area_node`) with the kernel's main fields, one
//! per area, made by `get_vm_area` or the first `find_vm_area` and refreshed by every later
//! one. `remove_vm_area` hands it to the caller, who `kfree`s it as in the kernel;
//! `free_vm_area`, `vfree` and `vunmap` from C free it with the area. A struct whose area went
//! another way (a free from Rust, `kvfree`) is freed at the next `find_vm_area` or
//! `get_vm_area` from C. `pages` is always NULL: kmem hands no page array to C (`nr_pages`
//! still says how many pages the area owns).
//!
//! Invariant: every value of `STRUCTS.by_addr` is a live kmalloc object of
//! `size_of::<vm_struct>()` bytes that C did not free, keyed by its `addr` field; `by_struct`
//! is the same map reversed.
//!
//! Cost: no call walks every struct. Stale structs (areas freed another way) are pruned when
//! the registry has doubled since the last prune (amortised O(1) per call, at most twice the
//! live structs plus `PRUNE_MIN` kept), `free_vm_area` finds its struct by pointer in the
//! reversed map, and a struct is rewritten only when a field changed (C may be reading it on
//! another thread: the kernel's `vm_struct` is not rewritten either).

use std::collections::HashMap;
use std::ffi::{c_uint, c_ulong, c_void};
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, PoisonError};

use kmem::Machine;
use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::vmalloc::VmArea;

use crate::boundary::{ffi_boundary, report_bad_pointer, report_null};

/// `struct vm_struct` (`include/linux/vmalloc.h`, with `CONFIG_HAVE_ARCH_HUGE_VMALLOC`'s
/// `page_order`).
#[repr(C)]
#[derive(Debug, PartialEq)]
pub struct vm_struct {
    /// `next`: always NULL (the boot-time `vmlist` only).
    pub next: *mut vm_struct,
    /// `addr`.
    pub addr: *mut c_void,
    /// `size`: bytes, the guard page included.
    pub size: c_ulong,
    /// `flags`: `VM_*`.
    pub flags: c_ulong,
    /// `pages`: always NULL in kmem.
    pub pages: *mut *mut c_void,
    /// `page_order`: 9 for a huge vmalloc (`vmalloc_huge`), else 0.
    pub page_order: c_uint,
    /// `nr_pages`: pages the area owns.
    pub nr_pages: c_uint,
    /// `phys_addr`: 0.
    pub phys_addr: u64,
    /// `caller`: NULL (kmem records a Rust source location, not a return address).
    pub caller: *const c_void,
    /// `requested_size`.
    pub requested_size: c_ulong,
}

/// The structs C holds (see the module invariant).
#[derive(Default)]
struct Registry {
    /// Struct address by area address.
    by_addr: HashMap<usize, usize>,
    /// Area address by struct address.
    by_struct: HashMap<usize, usize>,
    /// Size of `by_addr` at which the next prune runs.
    prune_at: usize,
}

/// The fewest structs a prune leaves room for before the next one.
const PRUNE_MIN: usize = 64;

static STRUCTS: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// `by_addr.len()`, written under the `STRUCTS` lock after every change: C's `vfree` and
/// `vunmap` look here first and take no lock when C holds no struct (the common case).
static HELD: AtomicUsize = AtomicUsize::new(0);

impl Registry {
    fn insert(&mut self, addr: usize, s: usize) {
        self.by_addr.insert(addr, s);
        self.by_struct.insert(s, addr);
        HELD.store(self.by_addr.len(), Relaxed);
    }

    fn remove(&mut self, addr: usize) -> Option<usize> {
        let s = self.by_addr.remove(&addr)?;
        self.by_struct.remove(&s);
        HELD.store(self.by_addr.len(), Relaxed);
        Some(s)
    }
}

fn fill(s: *mut vm_struct, a: &VmArea) {
    let value = vm_struct {
        next: ptr::null_mut(),
        addr: a.addr.as_ptr().cast(),
        size: a.size as c_ulong,
        flags: c_ulong::from(a.flags),
        pages: ptr::null_mut(),
        page_order: a.page_order,
        nr_pages: a.nr_pages as c_uint,
        phys_addr: 0,
        caller: ptr::null(),
        requested_size: a.requested_size as c_ulong,
    };
    // SAFETY: `s` is a live kmalloc object of `size_of::<vm_struct>()` bytes (module invariant,
    // or fresh from `new_struct`, zeroed: a valid `vm_struct`), aligned as kmalloc aligns (8
    // bytes at least). Reads may race only with C's own reads.
    if unsafe { s.read() } == value {
        return;
    }
    // SAFETY: As above; a field changed (or the struct is fresh), so C holds no copy that
    // could be reading it under the kernel's contract of a stable `vm_struct`.
    unsafe { s.write(value) };
}

/// A fresh zeroed `vm_struct` from the machine's kmalloc.
fn new_struct(m: &Machine) -> Option<*mut vm_struct> {
    m.kmalloc(size_of::<vm_struct>(), GFP_KERNEL | __GFP_ZERO).ok().map(|p| p.as_ptr().cast())
}

/// Frees the structs whose area is gone or moved (module docs), once the registry has doubled
/// since the last prune.
fn prune(m: &Machine, reg: &mut Registry) {
    if reg.by_addr.len() < reg.prune_at {
        return;
    }
    let Registry { by_addr, by_struct, prune_at } = reg;
    by_addr.retain(|&addr, &mut s| {
        let live = m.find_vm_area(addr as *const u8).is_some_and(|a| a.addr.as_ptr() as usize == addr);
        if !live {
            // SAFETY: A kmalloc object of ours that C did not free (module invariant); its area
            // is gone, so no `vm_struct *` C got for it may be used any more.
            unsafe { m.kfree(s as *const u8) };
            by_struct.remove(&s);
        }
        live
    });
    HELD.store(by_addr.len(), Relaxed);
    *prune_at = (2 * by_addr.len()).max(PRUNE_MIN);
}

/// The struct of `a`, made or refreshed; NULL without memory.
fn struct_of(m: &Machine, a: &VmArea) -> *mut vm_struct {
    let mut structs = STRUCTS.lock().unwrap_or_else(PoisonError::into_inner);
    prune(m, &mut structs);
    let key = a.addr.as_ptr() as usize;
    let s = match structs.by_addr.get(&key) {
        Some(&s) => s as *mut vm_struct,
        None => {
            let Some(s) = new_struct(m) else { return ptr::null_mut() };
            structs.insert(key, s as usize);
            s
        }
    };
    fill(s, a);
    s
}

/// Frees the struct of the area at `addr`, if C has one (after `vfree`/`vunmap` from C).
pub(crate) fn forget(m: &Machine, addr: *const c_void) {
    // A struct for this area is made only while the area is live, and C frees it after that
    // (a caller making one during the free races with itself): none held means none to free.
    if HELD.load(Relaxed) == 0 {
        return;
    }
    let s = STRUCTS.lock().unwrap_or_else(PoisonError::into_inner).remove(addr as usize);
    if let Some(s) = s {
        // SAFETY: As in `prune`: the area was just freed.
        unsafe { m.kfree(s as *const u8) };
    }
}

/// `struct vm_struct *find_vm_area(const void *addr)`: the area containing `addr` (guard page
/// included); NULL for none, and for `vm_map_ram` mappings (no `vm_struct`).
#[unsafe(no_mangle)]
pub extern "C" fn find_vm_area(addr: *const c_void) -> *mut vm_struct {
    ffi_boundary("find_vm_area", ptr::null_mut(), |m| {
        m.find_vm_area(addr.cast()).map_or(ptr::null_mut(), |a| struct_of(m, &a))
    })
}

/// `struct vm_struct *get_vm_area(unsigned long size, unsigned long flags)`: address space
/// only (plus a guard page unless `VM_NO_GUARD`); NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn get_vm_area(size: c_ulong, flags: c_ulong) -> *mut vm_struct {
    ffi_boundary("get_vm_area", ptr::null_mut(), |m| {
        let Ok(p) = m.get_vm_area(size as usize, crate::vmalloc::vm_flags_from_c(flags)) else {
            return ptr::null_mut();
        };
        let area = m.find_vm_area(p.as_ptr()).expect("a fresh area");
        let s = struct_of(m, &area);
        if s.is_null() {
            // SAFETY: The area made above, which nobody else knows.
            unsafe { m.free_vm_area(p.as_ptr()) };
        }
        s
    })
}

/// `struct vm_struct *remove_vm_area(const void *addr)`: unmaps the area starting at `addr`
/// and frees its address space; returns its `vm_struct`, which the caller `kfree`s. NULL for
/// no such area, an unaligned address (warned), or an area that owns its pages (warned:
/// free it with `vfree`).
///
/// # Safety
/// C gives the area up: nothing uses it afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn remove_vm_area(addr: *const c_void) -> *mut vm_struct {
    ffi_boundary("remove_vm_area", ptr::null_mut(), |m| {
        // SAFETY: C gives the area up (the kernel's contract); kmem refuses what it can check.
        let Some(area) = (unsafe { m.remove_vm_area(addr.cast()) }) else { return ptr::null_mut() };
        let kept = STRUCTS.lock().unwrap_or_else(PoisonError::into_inner).remove(addr as usize);
        let Some(s) = kept.map(|s| s as *mut vm_struct).or_else(|| new_struct(m)) else {
            return ptr::null_mut();
        };
        fill(s, &area);
        s
    })
}

/// `void free_vm_area(struct vm_struct *area)`: gives back an area from `get_vm_area` (or any
/// `vm_struct` kmem handed out for a live area) and frees the struct. A pointer that is no
/// such struct is reported and ignored.
///
/// # Safety
/// C gives the area and the struct up: nothing uses either afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_vm_area(area: *mut vm_struct) {
    ffi_boundary("free_vm_area", (), |m| {
        let mut structs = STRUCTS.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(&addr) = structs.by_struct.get(&(area as usize)) else {
            drop(structs);
            if area.is_null() {
                report_null(m, "free_vm_area", "struct vm_struct pointer", Location::caller());
            } else {
                report_bad_pointer(m, "free_vm_area", "vm_struct", area as usize, Location::caller());
            }
            return;
        };
        structs.remove(addr);
        drop(structs);
        // SAFETY: C gives the area up (the kernel's contract).
        unsafe { m.free_vm_area(addr as *const u8) };
        // SAFETY: Our kmalloc object (module invariant), just taken out of the map: C gives it up.
        unsafe { m.kfree(area as *const u8) };
    });
}
