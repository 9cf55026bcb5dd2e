//! vmalloc and kmap from C (`linux/vmalloc.h`, `linux/highmem.h`): `vmalloc` and its
//! variants, `vfree`, `vmap`/`vunmap`, `vmalloc_to_page`/`vmalloc_to_pfn`, `is_vmalloc_addr`,
//! `vrealloc`, and `kmap`/`kunmap`, `kmap_local_page`/`kunmap_local`, `kmap_atomic`/
//! `kunmap_atomic`.
//!
//! A vmalloc address is really mapped: the bytes written through it are the bytes of
//! `page_address(vmalloc_to_page(p))` (or of `kmap` of that page for HighMem). Addresses C gives
//! back are checked by the vmalloc layer against its areas (`vfree` of anything else is the
//! kernel's `Trying to vfree() nonexistent vm area` warning, and ignored); `struct page *`
//! arguments are located in the memory map first, as in [`crate::pages`].

use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::panic::Location;
use std::ptr::{self, NonNull};

use kmem::context::ForeignCallerScope;
use kmem::vmalloc::VM_MAP_PUT_PAGES;
use kmem::{Gfp, Machine, Page};
use kmem_core::platform::Platform;

use crate::boundary::{ffi_boundary, report_bad_pointer, report_null};
use crate::pages::{checked_page, gfp_t, page_from_c, page_to_c};

fn out(r: Result<NonNull<u8>, kmem_core::AllocError>) -> *mut c_void {
    r.map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// A vmalloc area of `size` bytes C gets, told to kmemleak.
fn tracked(p: *mut c_void, size: usize) -> *mut c_void {
    crate::kmemleak::alloc_vmalloc(p, size);
    p
}

/// `void __kmem_caller(unsigned long ip)`: the C headers' vmalloc-family macros pass the
/// calling code's address (`_THIS_IP_`) through it right before the call, which names the
/// area's creator in `/proc/vmallocinfo` as the kernel's `vm->caller` does (`func+0x4c/0x90
/// [module]`); the export clears it when it returns.
#[unsafe(no_mangle)]
pub extern "C" fn __kmem_caller(ip: c_ulong) {
    kmem::context::set_foreign_caller(ip as usize);
}

/// `pgprot_t`: `vmap` maps everything `PAGE_KERNEL` whatever it says.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pgprot_t {
    /// The protection bits.
    pub pgprot: c_ulong,
}

/// `void *vmalloc(unsigned long size)`: NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc(size: c_ulong) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    ffi_boundary("vmalloc", ptr::null_mut(), |m| tracked(out(m.vmalloc(size as usize)), size as usize))
}

/// `void *vzalloc(unsigned long size)`: zeroed `vmalloc`.
#[unsafe(no_mangle)]
pub extern "C" fn vzalloc(size: c_ulong) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    ffi_boundary("vzalloc", ptr::null_mut(), |m| tracked(out(m.vzalloc(size as usize)), size as usize))
}

/// `void *vmalloc_user(unsigned long size)`: zeroed, mappable to user space (`VM_USERMAP`).
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc_user(size: c_ulong) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    ffi_boundary("vmalloc_user", ptr::null_mut(), |m| tracked(out(m.vmalloc_user(size as usize)), size as usize))
}

/// `void *vmalloc_32(unsigned long size)`: frames below 4 GiB.
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc_32(size: c_ulong) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    ffi_boundary("vmalloc_32", ptr::null_mut(), |m| tracked(out(m.vmalloc_32(size as usize)), size as usize))
}

/// `void *vmalloc_32_user(unsigned long size)`: `vmalloc_32`, zeroed, `VM_USERMAP`.
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc_32_user(size: c_ulong) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    ffi_boundary("vmalloc_32_user", ptr::null_mut(), |m| {
        tracked(out(m.vm().vmalloc_32_user(m, size as usize)), size as usize)
    })
}

/// `void *__vmalloc(unsigned long size, gfp_t gfp_mask)`.
#[unsafe(no_mangle)]
pub extern "C" fn __vmalloc(size: c_ulong, gfp_mask: gfp_t) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    ffi_boundary("__vmalloc", ptr::null_mut(), |m| {
        tracked(out(m.vmalloc_gfp(size as usize, Gfp::from_bits(gfp_mask))), size as usize)
    })
}

/// `void *__vmalloc_node(unsigned long size, unsigned long align, gfp_t gfp_mask, int node,
/// const void *caller)` (VM-4): the result is aligned to `align`, which must be a power of two;
/// one node, so `node` is ignored. `caller` is the code address `/proc/vmallocinfo` names, as
/// the kernel's `vm->caller` (NULL: kmem's own export, as a call without the macros).
#[unsafe(no_mangle)]
pub extern "C" fn __vmalloc_node(
    size: c_ulong,
    align: c_ulong,
    gfp_mask: gfp_t,
    node: c_int,
    caller: *const c_void,
) -> *mut c_void {
    if !caller.is_null() {
        kmem::context::set_foreign_caller(caller as usize);
    }
    let _c = ForeignCallerScope::enter();
    ffi_boundary("__vmalloc_node", ptr::null_mut(), |m| {
        let p = m.vmalloc_node_align(size as usize, align as usize, Gfp::from_bits(gfp_mask), node);
        tracked(out(p), size as usize)
    })
}

/// `void *vmalloc_huge(unsigned long size, gfp_t gfp_mask)`: `VM_ALLOW_HUGE_VMAP`.
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc_huge(size: c_ulong, gfp_mask: gfp_t) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    ffi_boundary("vmalloc_huge", ptr::null_mut(), |m| {
        tracked(out(m.vmalloc_huge(size as usize, Gfp::from_bits(gfp_mask))), size as usize)
    })
}

/// `void *vmalloc_huge_node(unsigned long size, gfp_t gfp_mask, int node)` (one node).
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc_huge_node(size: c_ulong, gfp_mask: gfp_t, node: c_int) -> *mut c_void {
    ffi_boundary("vmalloc_huge_node", ptr::null_mut(), |m| {
        tracked(out(m.vmalloc_huge_node(size as usize, Gfp::from_bits(gfp_mask), node)), size as usize)
    })
}

/// `void *vrealloc(const void *p, size_t size, gfp_t flags)`: NULL `p` allocates; size 0
/// frees and returns NULL; NULL on failure with `p` untouched.
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vrealloc(p: *const c_void, size: usize, flags: gfp_t) -> *mut c_void {
    // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
    ffi_boundary("vrealloc", ptr::null_mut(), |m| {
        let taken = crate::kmemleak::take(p, crate::kmemleak::Freer::Vfree);
        // SAFETY: As above.
        let q = match unsafe { m.vrealloc(p.cast(), size, Gfp::from_bits(flags)) } {
            Ok(Some(q)) => q.as_ptr().cast(),
            Ok(None) => return ptr::null_mut(), // Size 0: freed, its record dropped.
            Err(_) => ptr::null_mut(),
        };
        crate::kmemleak::realloc(m, p, taken, q, size);
        q
    })
}

/// `void vfree(const void *addr)`: NULL is a no-op; an address that starts no vmalloc area is
/// reported (`Trying to vfree() nonexistent vm area`) and ignored. Deferred in atomic context.
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vfree(addr: *const c_void) {
    crate::kmemleak::free(addr, crate::kmemleak::Freer::Vfree);
    // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
    ffi_boundary("vfree", (), |m| {
        // SAFETY: As above.
        unsafe { m.vfree(addr.cast()) };
        crate::vm_struct::forget(m, addr);
    });
}

/// An `unsigned long` of `VM_*` flags as the core's `u32`. The kernel defines no bit above
/// `VM_SPARSE` (0x1000) for callers, so bits 32 and up are folded into bit 31, itself not the
/// caller's: the core then drops it and names it in its once-per-machine warning, instead of
/// the high bits vanishing silently in a truncation.
pub(crate) fn vm_flags_from_c(flags: c_ulong) -> u32 {
    // `checked_shr(32)` is `None` where `unsigned long` has 32 bits: nothing above them.
    let high = flags.checked_shr(32).is_some_and(|h| h != 0);
    (flags as u32) | (u32::from(high) << 31)
}

/// The pages of a C `struct page *` array of `count` entries; NULL (the array or an entry) and
/// entries that are not pages of the machine are reported for `export` and give `None`.
///
/// # Safety
/// `pages` is NULL or points to `count` readable entries.
#[track_caller]
unsafe fn pages_from_c<'m>(
    m: &'m Machine,
    export: &str,
    pages: *const *const c_void,
    count: c_uint,
) -> Option<Vec<&'m Page>> {
    if pages.is_null() {
        report_null(m, export, "page array", Location::caller());
        return None;
    }
    // SAFETY: Not NULL (checked); `count` readable entries (caller's contract).
    let entries = unsafe { std::slice::from_raw_parts(pages, count as usize) };
    let mut found: Vec<&Page> = Vec::with_capacity(entries.len());
    for &entry in entries {
        match page_from_c(m, entry) {
            Some(page) => found.push(page),
            None if entry.is_null() => {
                report_null(m, export, "page array entry", Location::caller());
                return None;
            }
            None => {
                report_bad_pointer(m, export, "page array entry", entry as usize, Location::caller());
                return None;
            }
        }
    }
    Some(found)
}

/// `void *vmap(struct page **pages, unsigned int count, unsigned long flags, pgprot_t prot)`:
/// maps `count` pages contiguously; NULL on failure or for a page that is not one of kmem's
/// (reported). `flags` the kernel does not define for callers are dropped with a warning;
/// `VM_ALLOC` among them does not make `vfree` free the pages (VM-9). With `VM_MAP_PUT_PAGES`
/// the area takes the pages and the `pages` array itself, which must then come from
/// `kmalloc`/`kvmalloc` (any other array is reported and refused): `vfree` frees every page
/// and `kvfree`s the array; on failure, or after `vunmap`, both stay the caller's.
///
/// # Safety
/// `pages` is NULL or points to `count` readable `struct page *` entries. With
/// `VM_MAP_PUT_PAGES`, a successful call takes the array and the pages from the caller, who
/// uses neither afterwards (the kernel's contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmap(
    pages: *const *const c_void,
    count: c_uint,
    flags: c_ulong,
    prot: pgprot_t,
) -> *mut c_void {
    let _c = ForeignCallerScope::enter();
    let _ = prot;
    ffi_boundary("vmap", ptr::null_mut(), |m| {
        let flags = vm_flags_from_c(flags);
        // The kernel's `count > totalram_pages()` refusal: NULL, silently, after the flag checks
        // and without a look at the array (no caller has one that long, and copying what it
        // claims would exhaust the host). The core gives exactly that for an empty list.
        if count as usize > m.total_managed() {
            return out(m.vmap(&[], flags & !VM_MAP_PUT_PAGES));
        }
        // SAFETY: NULL or `count` readable entries (caller's contract).
        let Some(found) = (unsafe { pages_from_c(m, "vmap", pages, count) }) else { return ptr::null_mut() };
        if flags & VM_MAP_PUT_PAGES == 0 {
            return out(m.vmap(&found, flags));
        }
        let array = NonNull::new(pages.cast_mut().cast::<u8>()).expect("checked not NULL above");
        // SAFETY: C hands the array and the pages over on success (the kernel's contract for
        // `VM_MAP_PUT_PAGES`); `found` was read from the array before, and kmem refuses an array
        // that `kvfree` could not free.
        out(unsafe { m.vmap_put_pages(&found, array, flags) })
    })
}

/// `void vunmap(const void *addr)`: unmaps what `vmap` mapped (the pages stay the caller's).
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vunmap(addr: *const c_void) {
    // A vmalloc area given to `vunmap` by mistake is refused (warned; only `vfree` frees its
    // pages): it stays allocated and keeps its kmemleak record, as whatever else is refused.
    // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
    ffi_boundary("vunmap", (), |m| {
        // SAFETY: As above.
        unsafe { m.vunmap(addr.cast()) };
        crate::vm_struct::forget(m, addr);
    });
}

/// `void *vmap_pfn(unsigned long *pfns, unsigned int count, pgprot_t prot)`: maps `count` page
/// frames of kmem's memory in a `VM_IOREMAP` area (free it with `vunmap`); NULL for no frames,
/// a frame kmem does not have (warned) or no address space.
///
/// # Safety
/// `pfns` is NULL or points to `count` readable entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmap_pfn(pfns: *const c_ulong, count: c_uint, prot: pgprot_t) -> *mut c_void {
    let _ = prot;
    ffi_boundary("vmap_pfn", ptr::null_mut(), |m| {
        if pfns.is_null() {
            report_null(m, "vmap_pfn", "pfn array", Location::caller());
            return ptr::null_mut();
        }
        // The core refuses more frames than the machine has (silently, as `vmap` does, after
        // its `might_sleep` check); the test comes before the array is copied, which for such a
        // count would exhaust the host. The core gives that refusal for an empty list.
        if count as usize > m.total_managed() {
            return out(m.vmap_pfn(&[]));
        }
        // SAFETY: Not NULL (checked); `count` readable entries (caller's contract).
        let entries = unsafe { std::slice::from_raw_parts(pfns, count as usize) };
        let pfns: Vec<usize> = entries.iter().map(|&pfn| usize::try_from(pfn).unwrap_or(usize::MAX)).collect();
        out(m.vmap_pfn(&pfns))
    })
}

/// `void *vm_map_ram(struct page **pages, unsigned int count, int node)`: maps `count` pages
/// contiguously for a short while (from a per-CPU vmap block up to `BITS_PER_LONG` pages);
/// NULL on failure, for no pages (warned) or for a page that is not one of kmem's (reported).
/// The pages stay the caller's.
///
/// # Safety
/// `pages` is NULL or points to `count` readable `struct page *` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vm_map_ram(pages: *const *const c_void, count: c_uint, node: c_int) -> *mut c_void {
    ffi_boundary("vm_map_ram", ptr::null_mut(), |m| {
        // A count of 0 is `vb_alloc`'s `WARN_ON(size == 0)` before the array is looked at.
        if count == 0 {
            return out(m.vm_map_ram(&[], node));
        }
        // More pages than the machine has: refused with a warning before the array is read
        // (documented deviation; the kernel tries to reserve the range and then reads them all).
        if count as usize > m.total_managed() {
            let msg = format!(
                "WARNING: vm_map_ram: count {count} is more pages than the machine has ({}); not mapped\n",
                m.total_managed()
            );
            m.printk(kmem::Level::Warning, &msg);
            m.platform().dump_stack(Location::caller());
            return ptr::null_mut();
        }
        // SAFETY: NULL or `count` readable entries (caller's contract).
        let Some(found) = (unsafe { pages_from_c(m, "vm_map_ram", pages, count) }) else { return ptr::null_mut() };
        out(m.vm_map_ram(&found, node))
    })
}

/// `void vm_unmap_ram(const void *mem, unsigned int count)`: unmaps what `vm_map_ram` mapped,
/// with the same `count`; the pages stay the caller's. An address kmem did not map, a second
/// unmap or another count is reported in the kernel's words and ignored.
///
/// # Safety
/// What is unmapped is C's to give up: nothing uses the mapping afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vm_unmap_ram(mem: *const c_void, count: c_uint) {
    // SAFETY: C gives the mapping up (the kernel's contract); kmem refuses what it can check.
    ffi_boundary("vm_unmap_ram", (), |m| unsafe { m.vm_unmap_ram(mem.cast(), count as usize) });
}

/// `void vm_unmap_aliases(void)`: purges lazily freed areas and fragmented vmap blocks.
#[unsafe(no_mangle)]
pub extern "C" fn vm_unmap_aliases() {
    ffi_boundary("vm_unmap_aliases", (), |m| {
        m.vm_unmap_aliases();
    });
}

/// `void vfree_atomic(const void *addr)`: queues the free of a vmalloc area; it completes
/// later from process context (kswapd, the next `vfree`, or reclaim).
///
/// # Safety
/// As for [`vfree`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vfree_atomic(addr: *const c_void) {
    crate::kmemleak::free(addr, crate::kmemleak::Freer::Vfree);
    // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
    ffi_boundary("vfree_atomic", (), |m| unsafe { m.vfree_atomic(addr.cast()) });
}

/// `struct page *vmalloc_to_page(const void *addr)`: the page mapped at a vmalloc address, or
/// NULL.
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc_to_page(addr: *const c_void) -> *mut c_void {
    ffi_boundary("vmalloc_to_page", ptr::null_mut(), |m| {
        m.vmalloc_to_page(addr.cast()).map_or(ptr::null_mut(), page_to_c)
    })
}

/// `unsigned long vmalloc_to_pfn(const void *addr)`: its frame number, or 0.
#[unsafe(no_mangle)]
pub extern "C" fn vmalloc_to_pfn(addr: *const c_void) -> c_ulong {
    ffi_boundary("vmalloc_to_pfn", 0, |m| m.vmalloc_to_pfn(addr.cast()).map_or(0, |pfn| pfn as c_ulong))
}

/// `bool is_vmalloc_addr(const void *x)`: whether `x` is in the vmalloc range.
#[unsafe(no_mangle)]
pub extern "C" fn is_vmalloc_addr(x: *const c_void) -> bool {
    ffi_boundary("is_vmalloc_addr", false, |m| m.is_vmalloc_addr(x.cast()))
}

/// `void *kmap(struct page *page)`: the page's address, mapping a HighMem page in a persistent
/// slot until `kunmap` (may sleep). NULL for a page that is not one of kmem's (reported).
#[unsafe(no_mangle)]
pub extern "C" fn kmap(page: *mut c_void) -> *mut c_void {
    ffi_boundary("kmap", ptr::null_mut(), |m| {
        checked_page(m, "kmap", page).and_then(|p| m.kmap(p)).map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    })
}

/// `void kunmap(struct page *page)`: releases `kmap`'s slot (nothing for lowmem).
///
/// # Safety
/// As [`kmem::Machine::kunmap`]: the caller's own `kmap` of `page`, unused afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kunmap(page: *mut c_void) {
    ffi_boundary("kunmap", (), |m| {
        if let Some(p) = checked_page(m, "kunmap", page) {
            // SAFETY: The caller's promise.
            unsafe { m.kunmap(p) };
        }
    });
}

/// `void *kmap_local_page(struct page *page)`: a CPU-local mapping, released in reverse order
/// with `kunmap_local`.
#[unsafe(no_mangle)]
pub extern "C" fn kmap_local_page(page: *mut c_void) -> *mut c_void {
    ffi_boundary("kmap_local_page", ptr::null_mut(), |m| {
        checked_page(m, "kmap_local_page", page)
            .and_then(|p| m.kmap_local_page(p))
            .map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    })
}

/// `void kunmap_local(const void *addr)`: releases the most recent local mapping.
///
/// # Safety
/// As [`kmem::Machine::kunmap_local`]: the caller's own most recent local mapping, unused
/// afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kunmap_local(addr: *const c_void) {
    // SAFETY: The caller's promise.
    ffi_boundary("kunmap_local", (), |m| unsafe { m.kunmap_local(addr.cast()) });
}

/// `void *kmap_atomic(struct page *page)`: enters atomic context, then `kmap_local_page`. A
/// page that is none (reported) or cannot be mapped gives NULL and leaves the context as it
/// was: the caller, seeing NULL, will not call `kunmap_atomic`.
#[unsafe(no_mangle)]
pub extern "C" fn kmap_atomic(page: *mut c_void) -> *mut c_void {
    ffi_boundary("kmap_atomic", ptr::null_mut(), |m| {
        let Some(page) = checked_page(m, "kmap_atomic", page) else { return ptr::null_mut() };
        kmem::context::preempt_disable();
        match m.kmap_local_page(page) {
            Some(p) => p.as_ptr().cast(),
            None => {
                kmem::context::preempt_enable();
                ptr::null_mut()
            }
        }
    })
}

/// `void kunmap_atomic(const void *addr)`: `kunmap_local`, then leaves atomic context (each
/// unbalanced use reported once, as `kunmap_local` and `preempt_enable` report them).
///
/// # Safety
/// As [`kunmap_local`], for the caller's own `kmap_atomic` mapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kunmap_atomic(addr: *const c_void) {
    ffi_boundary("kunmap_atomic", (), |m| {
        // SAFETY: The caller's promise.
        unsafe { m.kunmap_local(addr.cast()) };
        crate::context::preempt_enable_checked(Location::caller());
    });
}
