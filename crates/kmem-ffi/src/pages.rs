//! The page allocator's C ABI (`linux/gfp.h`, `linux/mm.h`, `asm/io.h`): `alloc_pages`,
//! `__get_free_pages`, `free_pages`, the exact and bulk forms, and the page/address/pfn
//! conversions.
//!
//! `struct page *` is opaque to C: it is the address of the page's `Page` in the machine's
//! memory map. Every `struct page *` that comes back from C is first located in that array by
//! address arithmetic alone (`page_from_c`); one that is not there is reported and ignored,
//! never dereferenced. Addresses (`unsigned long`, `void *`) are looked up in the direct map the
//! same way. Failure values are the kernel's: NULL or 0.

use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::panic::Location;
use std::ptr;

use kmem::{Gfp, Machine, Page};

use crate::boundary::{array_fits, ffi_boundary, report_bad_count, report_bad_pointer, report_null};

/// `gfp_t`.
#[expect(non_camel_case_types, reason = "the kernel's type name")]
pub type gfp_t = c_uint;
/// `phys_addr_t` (64-bit, as with `CONFIG_PHYS_ADDR_T_64BIT`).
#[expect(non_camel_case_types, reason = "the kernel's type name")]
pub type phys_addr_t = u64;

/// The `Page` a C `struct page *` names, found by address arithmetic in this machine's memory
/// map (nothing is read through `p`), or `None` if it is not an element of that array.
pub(crate) fn page_from_c(m: &Machine, p: *const c_void) -> Option<&Page> {
    let mm = m.memmap();
    let first = mm.get(mm.start_pfn())?;
    let offset = (p as usize).checked_sub(first as *const Page as usize)?;
    if !offset.is_multiple_of(size_of::<Page>()) {
        return None;
    }
    mm.get(mm.start_pfn().checked_add(offset / size_of::<Page>())?)
}

pub(crate) fn page_to_c(page: &Page) -> *mut c_void {
    ptr::from_ref(page).cast_mut().cast()
}

/// The page of a C `struct page *` argument, reporting NULL and foreign pointers.
#[track_caller]
pub(crate) fn checked_page<'m>(m: &'m Machine, export: &str, p: *const c_void) -> Option<&'m Page> {
    let caller = Location::caller();
    if p.is_null() {
        report_null(m, export, "struct page pointer", caller);
        return None;
    }
    let page = page_from_c(m, p);
    if page.is_none() {
        report_bad_pointer(m, export, "struct page pointer", p as usize, caller);
    }
    page
}

/// The kernel's `CONFIG_DEBUG_VIRTUAL` warning for an address outside the direct map.
#[track_caller]
fn report_non_linear(m: &Machine, export: &str, addr: usize) {
    m.printk(
        kmem::Level::Warning,
        &format!("WARNING: {export} used for non-linear address: {addr:016x} ({addr:#x})\n"),
    );
    kmem_core::platform::Platform::dump_stack(m.platform(), Location::caller());
}

/// `struct page *alloc_pages(gfp_t gfp, unsigned int order)`: NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn alloc_pages(gfp: gfp_t, order: c_uint) -> *mut c_void {
    ffi_boundary("alloc_pages", ptr::null_mut(), |m| {
        m.alloc_pages(Gfp::from_bits(gfp), order).map_or(ptr::null_mut(), page_to_c)
    })
}

/// `unsigned long __get_free_pages(gfp_t gfp, unsigned int order)`: a direct-map address, or
/// 0 on failure. `__GFP_HIGHMEM` is ignored, as in the kernel.
#[unsafe(no_mangle)]
pub extern "C" fn __get_free_pages(gfp: gfp_t, order: c_uint) -> c_ulong {
    ffi_boundary("__get_free_pages", 0, |m| {
        m.get_free_pages(Gfp::from_bits(gfp), order).map_or(0, |p| p.as_ptr() as c_ulong)
    })
}

/// `unsigned long get_zeroed_page(gfp_t gfp)`: one zeroed lowmem page, or 0.
#[unsafe(no_mangle)]
pub extern "C" fn get_zeroed_page(gfp: gfp_t) -> c_ulong {
    ffi_boundary("get_zeroed_page", 0, |m| m.get_zeroed_page(Gfp::from_bits(gfp)).map_or(0, |p| p.as_ptr() as c_ulong))
}

/// `void free_pages(unsigned long addr, unsigned int order)`: 0 is a no-op; an address kmem did
/// not hand out is reported (`BUG: free_pages: ...`) and ignored.
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_pages(addr: c_ulong, order: c_uint) {
    // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
    ffi_boundary("free_pages", (), |m| unsafe { m.free_pages_addr(addr as usize as *const u8, order) });
}

/// `void __free_pages(struct page *page, unsigned int order)`: drops a reference; the last one
/// frees the block. NULL and foreign pointers are reported and ignored.
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __free_pages(page: *mut c_void, order: c_uint) {
    ffi_boundary("__free_pages", (), |m| {
        if let Some(page) = checked_page(m, "__free_pages", page) {
            // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
            unsafe { m.free_pages(page, order) };
        }
    });
}

/// `void put_page(struct page *page)`: drops a reference; the last one frees the page — a
/// compound block (`__GFP_COMP`) whole, as `folio_put` does (a tail page stands for its head),
/// otherwise one page. A non-compound block of more than one page only loses the reference
/// while others hold it; its last reference is the caller's to drop with
/// `__free_pages(page, order)`: that `put_page` does not match its order, which is reported,
/// and frees nothing.
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn put_page(page: *mut c_void) {
    ffi_boundary("put_page", (), |m| {
        if let Some(page) = checked_page(m, "put_page", page) {
            // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
            unsafe { m.put_page(page) };
        }
    });
}

/// `void *alloc_pages_exact(size_t size, gfp_t gfp)`: `ceil(size / PAGE_SIZE)` contiguous
/// lowmem pages, the rest of the power-of-two block given back at once; NULL on failure. Size 0
/// is the kernel's `get_order(0)`, `BITS_PER_LONG - PAGE_SHIFT` (the order of `SIZE_MAX`): the
/// page allocator refuses it with its order warning (it failed silently).
#[unsafe(no_mangle)]
pub extern "C" fn alloc_pages_exact(size: usize, gfp: gfp_t) -> *mut c_void {
    ffi_boundary("alloc_pages_exact", ptr::null_mut(), |m| {
        let size = if size == 0 { usize::MAX } else { size };
        m.alloc_pages_exact(size, Gfp::from_bits(gfp)).map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    })
}

/// `void free_pages_exact(void *virt, size_t size)`: frees what `alloc_pages_exact` returned.
/// NULL with at most one page is a no-op, as the kernel's `free_page(0)`; NULL with more pages
/// is reported (the kernel would go on to free the page at address 4096).
///
/// # Safety
/// What is freed is C's to give up: nothing (no Rust handle, no other C code) uses it afterwards.
/// What kmem can check — not allocated, a wrong order, no such area — is reported and refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_pages_exact(virt: *mut c_void, size: usize) {
    ffi_boundary("free_pages_exact", (), |m| {
        if virt.is_null() {
            if size > kmem::PAGE_SIZE {
                report_null(m, "free_pages_exact", "address", Location::caller());
            }
            return;
        }
        // SAFETY: C gives it up (the kernel's contract); kmem refuses what it can check.
        unsafe { m.free_pages_exact(virt.cast::<u8>().cast_const(), size) };
    });
}

/// `void *page_address(const struct page *page)`: the direct-map address; for a HighMem page
/// its `kmap()` address while it is kmapped, else NULL (as the kernel's `page_address_htable`).
#[unsafe(no_mangle)]
pub extern "C" fn page_address(page: *const c_void) -> *mut c_void {
    ffi_boundary("page_address", ptr::null_mut(), |m| {
        checked_page(m, "page_address", page)
            .and_then(|page| m.page_address(page))
            .map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    })
}

/// `struct page *virt_to_page(const void *addr)`: the page of a direct-map address; NULL (with
/// the kernel's `CONFIG_DEBUG_VIRTUAL` warning) for any other address.
#[unsafe(no_mangle)]
pub extern "C" fn virt_to_page(addr: *const c_void) -> *mut c_void {
    ffi_boundary("virt_to_page", ptr::null_mut(), |m| match m.virt_to_page(addr.cast()) {
        Some(page) => page_to_c(page),
        None => {
            report_non_linear(m, "virt_to_page", addr as usize);
            ptr::null_mut()
        }
    })
}

/// `struct page *virt_to_head_page(const void *x)`: `compound_head(virt_to_page(x))`, the head
/// page of the compound block (`__GFP_COMP`, a large kmalloc) that `x` lies in, or the page of
/// `x` itself; NULL (with the `CONFIG_DEBUG_VIRTUAL` warning) outside the direct map.
#[unsafe(no_mangle)]
pub extern "C" fn virt_to_head_page(addr: *const c_void) -> *mut c_void {
    ffi_boundary("virt_to_head_page", ptr::null_mut(), |m| match m.virt_to_page(addr.cast()) {
        Some(page) => page_to_c(m.pages().compound_head(page)),
        None => {
            report_non_linear(m, "virt_to_head_page", addr as usize);
            ptr::null_mut()
        }
    })
}

/// `phys_addr_t virt_to_phys(volatile void *address)`: the physical address of a direct-map
/// address; 0 (with the kernel's `CONFIG_DEBUG_VIRTUAL` warning) for any other address.
#[unsafe(no_mangle)]
pub extern "C" fn virt_to_phys(addr: *const c_void) -> phys_addr_t {
    ffi_boundary("virt_to_phys", 0, |m| match m.virt_to_phys(addr.cast()) {
        Some(phys) => phys,
        None => {
            report_non_linear(m, "virt_to_phys", addr as usize);
            0
        }
    })
}

/// `void *phys_to_virt(phys_addr_t address)`: the direct-map address of lowmem; NULL for
/// HighMem or beyond memory.
#[unsafe(no_mangle)]
pub extern "C" fn phys_to_virt(phys: phys_addr_t) -> *mut c_void {
    ffi_boundary("phys_to_virt", ptr::null_mut(), |m| {
        m.phys_to_virt(phys).map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    })
}

/// `int pfn_valid(unsigned long pfn)`: whether `pfn` has a `struct page`.
#[unsafe(no_mangle)]
pub extern "C" fn pfn_valid(pfn: c_ulong) -> c_int {
    ffi_boundary("pfn_valid", 0, |m| c_int::from(m.pfn_to_page(pfn as usize).is_some()))
}

/// `struct page *pfn_to_page(unsigned long pfn)`: NULL (and a warning) if `!pfn_valid(pfn)`.
#[unsafe(no_mangle)]
pub extern "C" fn pfn_to_page(pfn: c_ulong) -> *mut c_void {
    ffi_boundary("pfn_to_page", ptr::null_mut(), |m| match m.pfn_to_page(pfn as usize) {
        Some(page) => page_to_c(page),
        None => {
            m.printk(
                kmem::Level::Warning,
                &format!("WARNING: pfn_to_page: pfn {pfn:#x} is not valid (pfn_valid() is false)\n"),
            );
            ptr::null_mut()
        }
    })
}

/// `unsigned long page_to_pfn(const struct page *page)`: 0 (reported) for a foreign pointer.
#[unsafe(no_mangle)]
pub extern "C" fn page_to_pfn(page: *const c_void) -> c_ulong {
    ffi_boundary("page_to_pfn", 0, |m| {
        checked_page(m, "page_to_pfn", page).and_then(|page| m.page_to_pfn(page)).map_or(0, |pfn| pfn as c_ulong)
    })
}

/// `int virt_addr_valid(const void *kaddr)`: whether `kaddr` is in the direct map.
#[unsafe(no_mangle)]
pub extern "C" fn virt_addr_valid(addr: *const c_void) -> c_int {
    ffi_boundary("virt_addr_valid", 0, |m| c_int::from(m.virt_to_pfn(addr.cast()).is_some()))
}

/// `int PageHighMem(const struct page *page)`: the page has no direct-map address.
#[unsafe(no_mangle)]
pub extern "C" fn PageHighMem(page: *const c_void) -> c_int {
    ffi_boundary("PageHighMem", 0, |m| {
        // The direct map alone decides (a kmapped HighMem page has an address, and is HighMem).
        checked_page(m, "PageHighMem", page).map_or(0, |page| c_int::from(m.pages().page_address(page).is_none()))
    })
}

/// `int page_count(const struct page *page)`: the reference count (a compound block's, for
/// any of its pages: `folio_ref_count(page_folio(page))`).
#[unsafe(no_mangle)]
pub extern "C" fn page_count(page: *const c_void) -> c_int {
    ffi_boundary("page_count", 0, |m| {
        checked_page(m, "page_count", page).map_or(0, |p| m.pages().compound_head(p).refcount())
    })
}

/// `void get_page(struct page *page)`: takes another reference on an allocated page (on its
/// compound block, for a tail page: `folio_get(page_folio(page))`); a free page, or one whose
/// count would overflow, is reported (`VM_BUG_ON_PAGE`, `VM_BUG_ON_FOLIO`) and left alone.
#[unsafe(no_mangle)]
pub extern "C" fn get_page(page: *mut c_void) {
    ffi_boundary("get_page", (), |m| {
        let Some(p) = checked_page(m, "get_page", page) else { return };
        let head = m.pages().compound_head(p);
        if head.get_page() {
            return;
        }
        let why = if head.is_allocated() {
            "VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio)): get_page would overflow the reference count"
        } else {
            "VM_BUG_ON_PAGE(page_ref_count(page) <= 0): get_page on a page that is not allocated"
        };
        let pfn = m.page_to_pfn(p).unwrap_or(0);
        m.printk(
            kmem::Level::Alert,
            &format!("page:{page:p} refcount:{} pfn:{pfn:#x}\n{why}; ignored\n", head.refcount()),
        );
    });
}

/// `void split_page(struct page *page, unsigned int order)`: turns a non-compound block into
/// `1 << order` independent pages; a compound, free or wrongly sized block is reported.
///
/// # Safety
/// The block, if allocated, is C's: no one frees or splits it meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn split_page(page: *mut c_void, order: c_uint) {
    ffi_boundary("split_page", (), |m| {
        if let Some(page) = checked_page(m, "split_page", page) {
            // SAFETY: C owns the block (this function's contract).
            let _ = unsafe { m.split_page(page, order) };
        }
    });
}

/// `unsigned long alloc_pages_bulk(gfp_t gfp, unsigned long nr_pages, struct page **page_array)`:
/// fills the NULL entries of `page_array` with order-0 pages; returns how many entries are
/// populated. Non-NULL entries must be pages kmem handed out (a foreign one stops the call).
///
/// # Safety
/// `page_array` is NULL or points to `nr_pages` writable `struct page *` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn alloc_pages_bulk(gfp: gfp_t, nr_pages: c_ulong, page_array: *mut *mut c_void) -> c_ulong {
    ffi_boundary("alloc_pages_bulk", 0, |m| {
        if page_array.is_null() {
            report_null(m, "alloc_pages_bulk", "page array", Location::caller());
            return 0;
        }
        if !array_fits(m, "alloc_pages_bulk", "page array", nr_pages as usize, Location::caller()) {
            return 0;
        }
        // The core works on a copy of the array: a count too large to copy is refused before
        // the array is read (the allocation failure would abort the process).
        let mut pages: Vec<Option<&Page>> = Vec::new();
        if pages.try_reserve_exact(nr_pages as usize).is_err() {
            report_bad_count(
                m,
                "alloc_pages_bulk",
                "page array",
                nr_pages as usize,
                "kmem can copy",
                Location::caller(),
            );
            return 0;
        }
        // SAFETY: Not NULL (checked), `nr_pages` writable entries (caller's contract).
        let entries = unsafe { std::slice::from_raw_parts_mut(page_array, nr_pages as usize) };
        for &entry in entries.iter() {
            if entry.is_null() {
                pages.push(None);
                continue;
            }
            match page_from_c(m, entry) {
                Some(page) => pages.push(Some(page)),
                None => {
                    report_bad_pointer(m, "alloc_pages_bulk", "page array entry", entry as usize, Location::caller());
                    return 0;
                }
            }
        }
        let populated = m.alloc_pages_bulk(Gfp::from_bits(gfp), &mut pages);
        for (entry, page) in entries.iter_mut().zip(pages) {
            *entry = page.map_or(ptr::null_mut(), page_to_c);
        }
        populated as c_ulong
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_page_pointers_are_not_pages() {
        let m =
            kmem::Machine::builder().profile(kmem::Profile::I386).mem_bytes(32 << 20).kswapd(false).build().unwrap();
        let page = m.alloc_pages(kmem::gfp::GFP_KERNEL, 0).unwrap();
        let p = page_to_c(page);
        assert!(std::ptr::eq(page_from_c(&m, p).unwrap(), page));
        assert!(page_from_c(&m, p.cast::<u8>().wrapping_add(1).cast()).is_none(), "inside a Page, not at its start");
        let local = 0u64;
        assert!(page_from_c(&m, (&raw const local).cast()).is_none());
        assert!(page_from_c(&m, ptr::null()).is_none());
        // SAFETY: The test's own page, unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }

    /// `get_page` from C on a page that is not allocated, or whose count is at `i32::MAX`, is
    /// reported in the kernel's words and changes nothing (no wrap to a negative count).
    #[test]
    fn get_page_refuses_free_pages_and_overflow() {
        let m = crate::boundary::machine().expect("the default machine");
        let reports = |needle: &str| m.log().records().iter().filter(|r| r.text.contains(needle)).count();
        const FREE: &str =
            "VM_BUG_ON_PAGE(page_ref_count(page) <= 0): get_page on a page that is not allocated; ignored";
        const OVERFLOW: &str = "VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio)): get_page would overflow";
        let (free_before, overflow_before) = (reports(FREE), reports(OVERFLOW));
        let page = m.alloc_pages(kmem::gfp::GFP_KERNEL, 0).unwrap();
        let p = page_to_c(page);
        get_page(p);
        assert_eq!(page.refcount(), 2);
        page.page_ref_add(i32::MAX - 2);
        get_page(p);
        assert_eq!(page.refcount(), i32::MAX, "refused at the limit");
        assert_eq!(reports(OVERFLOW), overflow_before + 1);
        page.page_ref_add(-(i32::MAX - 1));
        // SAFETY: The test's own page, unused afterwards.
        unsafe { m.free_pages(page, 0) };
        assert!(!page.is_allocated());
        get_page(p);
        assert_eq!(page.refcount(), 0, "a free page takes no reference");
        assert_eq!(reports(FREE), free_before + 1);
    }
}
