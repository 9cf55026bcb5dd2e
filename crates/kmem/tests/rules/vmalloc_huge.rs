//! `vmalloc_huge` (`VM_ALLOW_HUGE_VMAP`, SEMANTICS §5.4): on x86_64 a size of at least
//! `PMD_SIZE` is rounded up to and aligned on `PMD_SIZE` (plus the guard page, VM-1, VM-11) and
//! backed by split `PMD_SIZE` blocks (`page_order` 9; each sub-page its own page for
//! `vmalloc_to_page`, VM-10), falling back to small pages; smaller sizes, and i386, are plain
//! vmalloc. `VmallocUsed` counts the rounded pages (VM-13).

use kmem::gfp::*;
use kmem::vmalloc::{PMD_ORDER, PMD_SIZE, VM_ALLOC, VM_ALLOW_HUGE_VMAP};
use kmem::{Machine, PAGE_SIZE, Page};

use crate::*;

fn used_kb(m: &Machine) -> usize {
    let text = m.meminfo();
    let line = text.lines().find(|l| l.starts_with("VmallocUsed:")).expect("VmallocUsed");
    line["VmallocUsed:".len()..].trim().trim_end_matches(" kB").trim().parse().expect("a number")
}

fn settle(m: &Machine) -> usize {
    m.vm_reclaim_and_purge();
    m.drain_local_pages();
    m.total_free()
}

#[test]
fn huge_sizes_are_pmd_aligned_and_backed_by_pmd_blocks() {
    let m = x86_64_nopcp(64);
    let mut baseline = None;
    for round in 0..2 {
        let p = m.vmalloc_huge(3 << 20, GFP_KERNEL).unwrap();
        let start = p.as_ptr() as usize;
        assert_eq!(start % PMD_SIZE, 0, "aligned on PMD_SIZE");
        let a = m.find_vm_area(p.as_ptr()).unwrap();
        assert_eq!(
            (a.size, a.nr_pages, a.page_order, a.requested_size),
            (2 * PMD_SIZE + PAGE_SIZE, 1024, PMD_ORDER, 3 << 20)
        );
        assert_eq!(a.flags, VM_ALLOC | VM_ALLOW_HUGE_VMAP);
        assert_eq!(used_kb(&m), 4096, "VM-13: the rounded pages");
        let line = format!("0x{start:016x}-0x{:016x} {:>7} ", start + a.size, a.size);
        assert!(
            m.vmallocinfo().lines().any(|l| l.starts_with(&line) && l.contains(" pages=1024 vmalloc")),
            "{}",
            m.vmallocinfo()
        );
        let pfns: Vec<usize> =
            (0..1024).map(|i| m.vmalloc_to_pfn(p.as_ptr().wrapping_add(i * PAGE_SIZE)).unwrap()).collect();
        for chunk in pfns.chunks(512) {
            assert_eq!(chunk[0] % 512, 0, "a PMD-size block");
            assert!(chunk.windows(2).all(|w| w[1] == w[0] + 1), "contiguous within the block");
        }
        for i in [0, 511, 512, 1023] {
            let page: &Page = m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).unwrap();
            assert_eq!(page.refcount(), 1, "split: sub-page {i} is a page of its own");
            // SAFETY: Inside the test's live area.
            unsafe { p.as_ptr().add(i * PAGE_SIZE + 3).write_volatile(i as u8) };
            // SAFETY: The direct map of a page of that area.
            assert_eq!(unsafe { m.page_address(page).unwrap().as_ptr().add(3).read_volatile() }, i as u8);
        }
        assert!(m.vmalloc_to_pfn(p.as_ptr().wrapping_add(1024 * PAGE_SIZE)).is_none(), "guard page");
        // SAFETY: The test's own area, unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
        assert_eq!(used_kb(&m), 0);
        let free = settle(&m);
        if round == 1 {
            assert_eq!(baseline, Some(free), "every page came back");
        }
        baseline = Some(free);
    }
    check(&m);
}

#[test]
fn small_sizes_and_i386_are_plain_vmalloc() {
    let m = x86_64_nopcp(64);
    let p = m.vmalloc_huge(PMD_SIZE - PAGE_SIZE, GFP_KERNEL | __GFP_ZERO).unwrap();
    let a = m.find_vm_area(p.as_ptr()).unwrap();
    assert_eq!((a.size, a.page_order), (PMD_SIZE, 0));
    // `size_per_node >= PMD_SIZE` is on the size as asked: one byte short of `PMD_SIZE` is small
    // pages, though it rounds up to `PMD_SIZE`.
    let q = m.vmalloc_huge(PMD_SIZE - 1, GFP_KERNEL).unwrap();
    let a = m.find_vm_area(q.as_ptr()).unwrap();
    assert_eq!((a.size, a.page_order, a.nr_pages), (PMD_SIZE + PAGE_SIZE, 0, 512));
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(q.as_ptr()) };
    let n = m.vmalloc_huge_node(PMD_SIZE, GFP_KERNEL, 0).unwrap();
    assert_eq!(m.find_vm_area(n.as_ptr()).unwrap().page_order, PMD_ORDER, "exactly PMD_SIZE is huge");
    // SAFETY: The test's own areas, unused afterwards.
    unsafe {
        m.vfree(p.as_ptr());
        m.vfree(n.as_ptr());
    }
    let m = i386_nopcp(64);
    assert!(!m.vm().huge_vmap_supported());
    let p = m.vmalloc_huge(4 << 20, GFP_KERNEL).unwrap();
    let a = m.find_vm_area(p.as_ptr()).unwrap();
    assert_eq!((a.size, a.page_order, a.nr_pages), ((4 << 20) + PAGE_SIZE, 0, 1024));
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    check(&m);
}

/// Without a free `PMD_SIZE` block, the huge attempt gives everything back and the request is
/// served with small pages at the size asked for, without a warning.
#[test]
fn without_pmd_blocks_it_falls_back_to_small_pages() {
    let m = x86_64_nopcp(64);
    // The area trees' first node chunk (kept for good) before the count below.
    let warm = m.vmalloc(PAGE_SIZE).unwrap();
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(warm.as_ptr()) };
    m.vm_reclaim_and_purge();
    let mut held = Vec::new();
    for order in [10, 9] {
        while let Ok(page) = m.alloc_pages(GFP_KERNEL | __GFP_NOWARN, order) {
            held.push((page, order));
        }
    }
    assert!(!held.is_empty());
    let free = m.total_free();
    let p = m.vmalloc_huge(PMD_SIZE + 5, GFP_KERNEL).expect("small pages");
    let a = m.find_vm_area(p.as_ptr()).unwrap();
    assert_eq!((a.size, a.page_order, a.nr_pages), (PMD_SIZE + 2 * PAGE_SIZE, 0, 513));
    assert_eq!(count_log(&m, "vmalloc error"), 0, "{:?}", log_lines(&m));
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    m.vm_reclaim_and_purge();
    assert_eq!(m.total_free(), free, "the failed attempt kept nothing");
    free_all(&m, held);
    check(&m);
}

/// vmalloc's pages are independent order-0 pages (VM-10), even where kmem takes them from one
/// block (a huge area's PMD blocks, or a small area filled from one free block): such a block
/// is `split_page`d, which refuses a compound block. A caller's `__GFP_COMP` (meaningless for
/// order-0 pages) made the block compound, so each split failed with a `split_page` WARNING
/// naming kmem's own source, and the huge attempt fell back to small pages. It is dropped from
/// the pages' mask now: the same areas, with no report.
#[test]
fn gfp_comp_from_the_caller_does_not_reach_the_split_blocks() {
    let m = x86_64_nopcp(64);
    let p = m.vmalloc_gfp(8 * PAGE_SIZE, GFP_KERNEL | __GFP_COMP).unwrap();
    let h = m.vmalloc_huge(PMD_SIZE, GFP_KERNEL | __GFP_COMP).unwrap();
    assert_eq!(m.find_vm_area(h.as_ptr()).map(|a| a.page_order), Some(PMD_ORDER), "PMD blocks");
    for (area, pages) in [(p, 8), (h, PMD_SIZE / PAGE_SIZE)] {
        for i in 0..pages {
            // SAFETY: An address inside the test's own area.
            let page: &Page = m.vmalloc_to_page(unsafe { area.as_ptr().add(i * PAGE_SIZE) }).unwrap();
            assert_eq!((page.refcount(), page.order()), (1, 0), "page {i}: an independent order-0 page");
        }
    }
    assert_eq!(count_log(&m, "split_page"), 0, "{:?}", log_lines(&m));
    // SAFETY: The test's own areas, unused afterwards.
    unsafe {
        m.vfree(p.as_ptr());
        m.vfree(h.as_ptr());
    }
    check(&m);
}
