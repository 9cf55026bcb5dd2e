//! §2.10 page API calls given pages that are not the caller's plain blocks, and reference
//! games across them: refused and reported, or kept as the kernel keeps them, never a change of
//! someone else's page (PA-16).

use kmem::gfp::GFP_KERNEL;
use kmem::memmap::pg;

use crate::{check, count_log, i386_nopcp, pfn};

/// `split_page` of a page that is no allocated block of the caller's: a reserved page (the
/// page array itself) and an order-0 slab page. The split turned either into a plain page: the
/// reserved page could then be freed into the buddy allocator (kmem's own page array handed
/// out as free memory), and the slab page lost its slab (its objects could no longer be freed).
#[test]
fn split_page_refuses_reserved_and_slab_pages() {
    let m = i386_nopcp(64);
    let reserved = (m.memmap().start_pfn()..)
        .map_while(|p| m.pfn_to_page(p))
        .find(|p| p.flags() & pg::RESERVED != 0)
        .expect("a reserved page (the page array)");
    let obj = m.kmalloc(8, GFP_KERNEL).unwrap();
    let slab = m.virt_to_page(obj.as_ptr()).unwrap();
    assert_eq!((slab.flags() & pg::SLAB, slab.order()), (pg::SLAB, 0), "an order-0 slab page for the test");
    let initial = m.buddyinfo();
    for (page, what) in [(reserved, "reserved"), (slab, "slab")] {
        let flags = page.flags();
        // SAFETY: Neither page is the caller's block: refused, nothing changes.
        assert!(unsafe { m.split_page(page, 0) }.is_err(), "{what} page");
        assert_eq!(page.flags(), flags, "{what} page keeps its flags");
    }
    assert_eq!(count_log(&m, "split_page:"), 2);
    // The reserved page stays unfreeable, the slab's object freeable.
    // SAFETY: Not the caller's page: refused.
    unsafe { m.free_pages(reserved, 0) };
    assert!(reserved.flags() & pg::RESERVED != 0);
    // SAFETY: The test's own object, unused afterwards.
    unsafe { m.kfree(obj.as_ptr()) };
    assert_eq!(count_log(&m, "Not a kmalloc allocation"), 0);
    assert_eq!(m.buddyinfo(), initial, "nothing freed by the refused splits");
    check(&m);
}

/// `split_page` sets up the tail pages only (`set_page_refcounted(page + i)` for `i >= 1`):
/// the head keeps every reference taken on it. kmem reset it to one, so the second holder's
/// `put_page` was reported as a double free.
#[test]
fn split_page_keeps_the_heads_references() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let page = m.alloc_pages(GFP_KERNEL, 1).unwrap();
    assert!(page.get_page());
    // SAFETY: The test's own block; nothing else frees it meanwhile.
    unsafe { m.split_page(page, 1) }.unwrap();
    assert_eq!(page.refcount(), 2, "both references kept");
    let tail = m.pfn_to_page(pfn(&m, page) + 1).unwrap();
    assert_eq!(tail.refcount(), 1);
    // SAFETY: The test's own pages, each reference dropped once.
    unsafe {
        m.free_pages(tail, 0);
        m.free_pages(page, 0);
        assert!(page.is_allocated(), "the other reference still holds the head");
        m.free_pages(page, 0);
    }
    assert_eq!(count_log(&m, "double free"), 0);
    assert_eq!(m.buddyinfo(), initial);
    check(&m);
}

/// §4.2: a large kmalloc is `kfree`'s to free (`free_large_kmalloc`). The page API's frees of
/// its last reference (`free_pages`, `__free_pages`, `put_page`) dropped it and then found the
/// block's `mapping` (the large-kmalloc mark) set: `BUG: Bad page state`, the block leaked for
/// good (neither free list nor `kfree`, which then called it free). They are now refused
/// before the reference is dropped, so the owner's `kfree` still frees it.
#[test]
fn page_frees_of_a_large_kmalloc_leave_it_to_kfree() {
    let m = i386_nopcp(64);
    let initial = m.buddyinfo();
    let p = m.kmalloc(5 * kmem::PAGE_SIZE, GFP_KERNEL).unwrap();
    let head = m.virt_to_page(p.as_ptr()).unwrap();
    let tail = m.pfn_to_page(pfn(&m, head) + 2).unwrap();
    // SAFETY: Misuse the test makes on purpose: refused, the allocation stays kfree's.
    unsafe {
        m.free_pages(head, 3);
        m.free_pages_addr(p.as_ptr(), 3);
        m.put_page(tail);
    }
    assert_eq!(count_log(&m, "the last reference of a large kmalloc allocation"), 3);
    assert_eq!(count_log(&m, "Bad page state"), 0);
    assert_eq!(head.refcount(), 1);
    // SAFETY: The test's own allocation, unused afterwards.
    unsafe { m.kfree(p.as_ptr()) };
    assert_eq!(count_log(&m, "Not a kmalloc allocation"), 0);
    assert_eq!(m.buddyinfo(), initial, "the block is free again");
    check(&m);
}
