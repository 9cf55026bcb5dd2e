//! `find_vm_area`, `remove_vm_area`, `get_vm_area_size` (SEMANTICS §5.1, §5.4): the kernel's
//! `vm_struct` fields of an area (size with the guard page, VM-1, VM-11), found from any address
//! of its range; `vm_map_ram` areas have none; `remove_vm_area` unmaps and frees the address
//! space of an area whose pages are not its own (VM-9); `vmap_pfn` maps frames in a
//! `VM_IOREMAP` area.

use kmem::gfp::*;
use kmem::vmalloc::{VM_ALLOC, VM_IOREMAP, VM_MAP, VM_NO_GUARD};
use kmem::{PAGE_SIZE, Page};

use crate::*;

#[test]
fn find_vm_area_reports_the_vm_struct_fields() {
    let m = x86_64_nopcp(64);
    let p = m.vmalloc(3 * PAGE_SIZE + 1).unwrap();
    let line = line!() - 1;
    let a = m.find_vm_area(p.as_ptr()).expect("a vmalloc area");
    assert_eq!(
        (a.addr, a.size, a.flags, a.nr_pages, a.requested_size),
        (p, 5 * PAGE_SIZE, VM_ALLOC, 4, 3 * PAGE_SIZE + 1)
    );
    assert_eq!(a.get_vm_area_size(), 4 * PAGE_SIZE, "vm->size minus the guard page");
    assert_eq!(a.caller.map(|c| (c.file(), c.line())), Some((file!(), line)));
    // Any address of the range, the guard page included, finds it; the next page does not.
    assert_eq!(m.find_vm_area(p.as_ptr().wrapping_add(4 * PAGE_SIZE + 9)), Some(a));
    assert_eq!(m.find_vm_area(p.as_ptr().wrapping_add(5 * PAGE_SIZE)), None);
    let pages: Vec<&Page> = (0..2).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let v = m.vmap(&pages, 0).unwrap();
    let va = m.find_vm_area(v.as_ptr()).unwrap();
    assert_eq!((va.size, va.flags, va.nr_pages), (3 * PAGE_SIZE, VM_MAP, 0), "a vmap owns no pages");
    let io = m.get_vm_area(5 * PAGE_SIZE, VM_IOREMAP | VM_NO_GUARD).unwrap();
    let ia = m.find_vm_area(io.as_ptr()).unwrap();
    assert_eq!((ia.flags, ia.size, ia.get_vm_area_size()), (VM_IOREMAP | VM_NO_GUARD, 5 * PAGE_SIZE, 5 * PAGE_SIZE));
    // No vm_struct: vm_map_ram, addresses outside the range, freed areas.
    let r = m.vm_map_ram(&pages, -1).unwrap();
    assert_eq!(m.find_vm_area(r.as_ptr()), None);
    assert_eq!(m.find_vm_area(std::ptr::null()), None);
    assert_eq!(m.find_vm_area(m.page_address(pages[0]).unwrap().as_ptr()), None);
    // SAFETY: The test's own mappings and areas, unused afterwards.
    unsafe {
        m.vm_unmap_ram(r.as_ptr(), 2);
        m.vfree(p.as_ptr());
        m.vunmap(v.as_ptr());
        m.free_vm_area(io.as_ptr());
    }
    assert_eq!(m.find_vm_area(p.as_ptr()), None, "lazily freed: no vm_struct");
    for page in pages {
        // SAFETY: The test's own pages, unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    check(&m);
}

#[test]
fn remove_vm_area_frees_what_is_not_its_pages_and_refuses_the_rest() {
    let m = x86_64_nopcp(64);
    let pages: Vec<&Page> = (0..2).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let v = m.vmap(&pages, 0).unwrap();
    let g = m.get_vm_area(3 * PAGE_SIZE, 0).unwrap();
    let p = m.vzalloc(PAGE_SIZE).unwrap();
    // SAFETY: The test's own areas (or misuse kmem refuses), unused afterwards unless refused.
    unsafe {
        let removed = m.remove_vm_area(v.as_ptr()).expect("the vmap area");
        assert_eq!((removed.addr, removed.flags, removed.size), (v, VM_MAP, 3 * PAGE_SIZE));
        assert!(m.vmalloc_to_page(v.as_ptr()).is_none(), "unmapped");
        assert_eq!(m.remove_vm_area(g.as_ptr()).map(|a| a.get_vm_area_size()), Some(3 * PAGE_SIZE));
        assert_eq!(m.remove_vm_area(g.as_ptr()), None, "gone: NULL without a warning");
        assert_eq!(count_log(&m, "WARNING"), 0, "{:?}", log_lines(&m));
        assert_eq!(m.remove_vm_area(p.as_ptr().wrapping_add(1)), None);
        assert_eq!(count_log(&m, "Trying to vfree() bad address"), 1);
        assert_eq!(m.remove_vm_area(p.as_ptr()), None, "a vmalloc area owns its pages");
        assert_eq!(count_log(&m, "owns its pages"), 1, "{:?}", log_lines(&m));
    }
    assert!(m.find_vm_area(p.as_ptr()).is_some(), "left as it was");
    let info = m.vmallocinfo();
    assert_eq!(info.matches("unpurged vm_area").count(), 2, "{info}");
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    assert_eq!(count_log(&m, "nonexistent"), 0);
    assert!(pages.iter().all(|p| p.refcount() == 1), "VM-9");
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes());
    for page in pages {
        // SAFETY: The test's own pages, unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    check(&m);
}

/// `vmap_pfn`: frames of the machine mapped in a `VM_IOREMAP` area (aligned to its size order,
/// guard page included, listed ` ioremap` without `pages=`) that owns nothing; frames outside
/// the memory map are refused with a warning and nothing reserved.
#[test]
fn vmap_pfn_maps_machine_frames_and_refuses_others() {
    let m = x86_64_nopcp(64);
    let pages: Vec<&Page> = (0..3).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let pfns: Vec<usize> = pages.iter().map(|p| pfn(&m, p)).collect();
    let v = m.vmap_pfn(&pfns).unwrap();
    assert_eq!(v.as_ptr() as usize % (4 * PAGE_SIZE), 0, "VM_IOREMAP: aligned to 2^order(size)");
    let a = m.find_vm_area(v.as_ptr()).unwrap();
    assert_eq!((a.flags, a.size, a.nr_pages), (VM_IOREMAP, 4 * PAGE_SIZE, 0));
    let info = m.vmallocinfo();
    let line = info.lines().find(|l| l.starts_with(&format!("0x{:016x}-", v.as_ptr() as usize))).unwrap();
    assert!(line.ends_with(" ioremap") && !line.contains("pages="), "{line}");
    for (i, page) in pages.iter().enumerate() {
        // SAFETY: Inside the test's live mapping.
        unsafe { v.as_ptr().add(i * PAGE_SIZE + 1).write_volatile(0x60 + i as u8) };
        // SAFETY: The direct map of the test's page.
        assert_eq!(unsafe { m.page_address(page).unwrap().as_ptr().add(1).read_volatile() }, 0x60 + i as u8);
        assert_eq!(m.vmalloc_to_pfn(v.as_ptr().wrapping_add(i * PAGE_SIZE)), Some(pfns[i]));
    }
    // SAFETY: The test's own mapping, unused afterwards.
    unsafe { m.vunmap(v.as_ptr()) };
    assert!(m.vmalloc_to_pfn(v.as_ptr()).is_none(), "unmapped");
    assert!(pages.iter().all(|p| p.refcount() == 1), "the frames stay the caller's");
    m.vm_unmap_aliases();
    assert!(m.vmallocinfo().is_empty());
    let beyond = m.zones().iter().map(|z| z.end_pfn()).max().unwrap() + 5;
    assert!(m.vmap_pfn(&[pfns[0], beyond]).is_err());
    assert!(m.vmap_pfn(&[]).is_err());
    assert_eq!(count_log(&m, "is not a page frame of this machine"), 1, "{:?}", log_lines(&m));
    assert!(m.vmallocinfo().is_empty(), "nothing reserved");
    for page in pages {
        // SAFETY: The test's own pages, unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    check(&m);
}

/// `vunmap` and `free_vm_area` give back a mapping and its address space, never pages (VM-9).
/// Given a vmalloc area, whose frames no caller holds (kmem hands out no page array), they
/// unmapped it and dropped its frames from `VmallocUsed` while keeping them allocated: pages
/// lost for good, silently (the kernel leaks them too, still counted). As `remove_vm_area`
/// does, they now refuse such an area with a warning and leave it for `vfree`.
#[test]
fn vunmap_and_free_vm_area_refuse_a_vmalloc_area() {
    let m = x86_64_nopcp(64);
    let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
    // SAFETY: The test's own area, written through its own address.
    unsafe { p.as_ptr().write_bytes(0x5a, 2 * PAGE_SIZE) };
    let warm = m.vmalloc(2 * PAGE_SIZE).unwrap();
    // SAFETY: The test's own area (warms the frame cache path, unused afterwards).
    unsafe { m.vfree(warm.as_ptr()) };
    m.vm_reclaim_and_purge();
    let free0 = m.total_free();
    let used = |m: &Machine| m.meminfo().lines().find(|l| l.starts_with("VmallocUsed:")).unwrap().to_owned();
    let used0 = used(&m);
    // SAFETY: Misuse kmem refuses: the area stays the test's, used below.
    unsafe {
        m.vunmap(p.as_ptr());
        m.free_vm_area(p.as_ptr());
    }
    assert_eq!(count_log(&m, "owns its pages"), 2, "{:?}", log_lines(&m));
    assert_eq!(used(&m), used0, "VmallocUsed still counts the area's pages");
    assert_eq!(read_obj(&m, m.vmalloc_to_page(p.as_ptr()).and_then(|pg| m.page_address(pg)).unwrap(), 1), [0x5a]);
    // SAFETY: The area is still mapped and the test's own.
    assert_eq!(unsafe { p.as_ptr().add(PAGE_SIZE).read() }, 0x5a, "still mapped");
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    assert_eq!(count_log(&m, "nonexistent"), 0, "{:?}", log_lines(&m));
    m.vm_reclaim_and_purge();
    assert_eq!(m.total_free(), free0 + 2, "vfree gave the frames back");
    check(&m);
}

/// `vmap` warns about `VM_FLUSH_RESET_PERMS` (refused) and `VM_NO_GUARD` (dropped) with
/// `WARN_ON_ONCE` (mm/vmalloc.c): one report each, however often a caller passes them.
#[test]
fn vmap_flag_warnings_are_once_only() {
    use kmem::vmalloc::VM_FLUSH_RESET_PERMS;
    let m = x86_64_nopcp(64);
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    for _ in 0..3 {
        assert!(m.vmap(&[page], VM_FLUSH_RESET_PERMS).is_err());
        let v = m.vmap(&[page], VM_NO_GUARD).expect("mapped, the flag dropped");
        assert_eq!(m.find_vm_area(v.as_ptr()).unwrap().size, 2 * PAGE_SIZE, "a guard page");
        // SAFETY: Our own mapping, unused afterwards.
        unsafe { m.vunmap(v.as_ptr()) };
    }
    assert_eq!(count_log(&m, "vmap: VM_FLUSH_RESET_PERMS is not allowed"), 1, "{:?}", log_lines(&m));
    assert_eq!(count_log(&m, "vmap: VM_NO_GUARD dropped"), 1, "{:?}", log_lines(&m));
    // SAFETY: Our page, no longer mapped.
    unsafe { m.free_pages(page, 0) };
}

/// `vfree` and `vunmap` of an address that is not page aligned: the kernel's
/// `remove_vm_area` warns `Trying to vfree() bad address` and finds nothing, so the caller then
/// warns that the area does not exist (two `WARN`s, mm/vmalloc.c); the area is left alone.
#[test]
fn vfree_and_vunmap_of_an_unaligned_address_warn_twice_as_the_kernel() {
    let m = x86_64_nopcp(64);
    let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
    let bad = p.as_ptr().wrapping_add(12);
    // SAFETY: No area starts there: refused, nothing freed.
    unsafe { m.vfree(bad) };
    let addr = bad as usize;
    assert_eq!(count_log(&m, &format!("Trying to vfree() bad address ({addr:016x})")), 1, "{:?}", log_lines(&m));
    assert_eq!(
        count_log(&m, &format!("Trying to vfree() nonexistent vm area ({addr:016x})")),
        1,
        "{:?}",
        log_lines(&m)
    );
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let v = m.vmap(&[page], 0).unwrap();
    let bad = v.as_ptr().wrapping_add(100);
    m.log().clear();
    // SAFETY: As above.
    unsafe { m.vunmap(bad) };
    let addr = bad as usize;
    assert_eq!(count_log(&m, &format!("Trying to vfree() bad address ({addr:016x})")), 1, "{:?}", log_lines(&m));
    assert_eq!(
        count_log(&m, &format!("Trying to vunmap() nonexistent vm area ({addr:016x})")),
        1,
        "{:?}",
        log_lines(&m)
    );
    // Both areas are intact.
    assert!(m.find_vm_area(p.as_ptr()).is_some() && m.find_vm_area(v.as_ptr()).is_some());
    // SAFETY: Our own areas and page, unused afterwards.
    unsafe {
        m.vunmap(v.as_ptr());
        m.vfree(p.as_ptr());
        m.free_pages(page, 0);
    }
}
