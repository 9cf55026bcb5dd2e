//! vmalloc (SEMANTICS §5, VM-1..13) and HighMem `kmap` on whole machines: real mappings of the
//! memfd frames, so aliasing, guard-page faults and `/proc` texts are observed, not modelled.

use std::process::Command;
use std::ptr::NonNull;

use kmem::context::atomic_section;
use kmem::gfp::*;
use kmem::vmalloc::{VM_ALLOC, VM_IOREMAP, VM_MAP_PUT_PAGES, VM_SPARSE, lazy_max_pages_for};
use kmem::zone::ZoneType;
use kmem::{Machine, PAGE_SIZE, Page, Profile};

use crate::*;

/// A 1 GiB (sparse) i386 machine: HighMem above 896 MiB, so vmalloc takes HighMem frames.
fn i386_highmem() -> Machine {
    builder(Profile::I386, 1024).build().expect("build i386 machine")
}

fn read(p: NonNull<u8>, offset: usize) -> u8 {
    // SAFETY: Callers pass addresses inside live, mapped areas or kmap'ed pages of the test.
    unsafe { p.as_ptr().add(offset).read_volatile() }
}

fn write(p: NonNull<u8>, offset: usize, value: u8) {
    // SAFETY: As in `read`.
    unsafe { p.as_ptr().add(offset).write_volatile(value) }
}

#[test]
fn vm1_page_aligned_rounded_up_with_an_unmapped_guard_page() {
    let m = i386_highmem();
    let p = m.vmalloc(3 * PAGE_SIZE + 1).unwrap();
    assert!((p.as_ptr() as usize).is_multiple_of(PAGE_SIZE));
    assert!(m.is_vmalloc_addr(p.as_ptr()));
    for i in 0..4 {
        assert!(m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).is_some(), "page {i} mapped");
    }
    assert!(m.vmalloc_to_page(p.as_ptr().wrapping_add(4 * PAGE_SIZE)).is_none(), "guard page has no page");
    // The next area starts after the guard page.
    let q = m.vmalloc(PAGE_SIZE).unwrap();
    assert_eq!(q.as_ptr() as usize, p.as_ptr() as usize + 5 * PAGE_SIZE);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(q.as_ptr()) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    m.vm().check();
}

/// Run in a child process by [`vm1_access_past_the_end_faults`]: touches the guard page (or,
/// with `inbounds`, the last byte of the area) of a fresh 2-page area.
#[test]
#[ignore = "helper run in a child process"]
fn guard_page_child() {
    let Ok(mode) = std::env::var("KMEM_GUARD_CHILD") else { return };
    let m = i386(32);
    let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
    let offset = if mode == "inbounds" { 2 * PAGE_SIZE - 1 } else { 2 * PAGE_SIZE };
    write(p, offset, 1);
    println!("child survived");
}

#[test]
fn vm1_access_past_the_end_faults() {
    let run = |mode: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "vmalloc::guard_page_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("KMEM_GUARD_CHILD", mode)
            .output()
            .unwrap()
    };
    let ok = run("inbounds");
    assert!(ok.status.success(), "the last byte is accessible: {ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("child survived"));
    let bad = run("guard");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(bad.status.signal(), Some(11), "SIGSEGV on the guard page: {bad:?}");
}

/// Run in a child process by [`freed_mappings_fault_before_the_purge`]: frees a mapping whose
/// frames then belong to someone else, checks (without touching it) that the frame really was
/// handed out again, then reads the stale address, which must fault. `KMEM_STALE_CHILD` says
/// which free: `vfree` (frame cache off, lazy purge far away) or `vunmap` (the caller then
/// frees its page).
#[test]
#[ignore = "helper run in a child process"]
fn stale_mapping_child() {
    let Ok(mode) = std::env::var("KMEM_STALE_CHILD") else { return };
    let m = i386_highmem();
    m.vm().set_cache_max_pages(0);
    let (p, pfn) = if mode == "vunmap" {
        let page = m.alloc_pages(GFP_HIGHUSER, 0).unwrap();
        let p = m.vmap(&[page], 0).unwrap();
        write(p, 0, 0x11);
        let pfn = m.vmalloc_to_pfn(p.as_ptr()).unwrap();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vunmap(p.as_ptr()) };
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
        (p, pfn)
    } else {
        let p = m.vmalloc(PAGE_SIZE).unwrap();
        write(p, 0, 0x11);
        let pfn = m.vmalloc_to_pfn(p.as_ptr()).unwrap();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
        (p, pfn)
    };
    assert!(m.vm().lazy_pages() > 0, "the range is lazily freed, not purged");
    // The frame comes straight back from this CPU's list (LIFO) to its next owner.
    let owner = m.alloc_pages(GFP_HIGHUSER, 0).unwrap();
    assert_eq!(m.page_to_pfn(owner), Some(pfn), "the freed frame has a new owner");
    let k = m.kmap(owner).unwrap();
    write(k, 0, 0x22);
    println!("stale read: {:#x}", read(p, 0));
    write(p, 0, 0x33);
    println!("new owner sees {:#x}", read(k, 0));
}

/// The kernel clears a freed area's PTEs at once and defers only the TLB flush: an access
/// through a `vfree`d or `vunmap`ped address faults even before the purge, instead of reaching
/// the frame's next owner (the frame cache alone keeps areas mapped, with their own frames).
#[test]
fn freed_mappings_fault_before_the_purge() {
    use std::os::unix::process::ExitStatusExt;
    for mode in ["vfree", "vunmap"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "vmalloc::stale_mapping_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("KMEM_STALE_CHILD", mode)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("stale read"), "{mode}: the stale address still maps the frame: {stdout}");
        assert_eq!(out.status.signal(), Some(11), "{mode}: SIGSEGV on the stale address: {out:?}");
    }
}

#[test]
fn vm2_zero_size_and_oversize_fail_with_reports() {
    let m = i386(32);
    assert!(m.vmalloc(0).is_err());
    assert!(m.vmalloc(0).is_err());
    assert_eq!(count_log(&m, "__vmalloc_node_range_noprof"), 1, "WARN_ON_ONCE: {:?}", log_lines(&m));
    assert!(m.vmalloc(64 << 20).is_err());
    assert_eq!(count_log(&m, "vmalloc error: size 67108864, exceeds total pages, mode:0xcc0(GFP_KERNEL)"), 1);
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
    m.vm().check();
}

#[test]
fn vm3_lowest_fit_reuses_the_lowest_hole_after_purge() {
    let m = i386(64);
    // The tree path: no frame cache, no VA pool (both tested in `vmalloc_reuse.rs`).
    m.vm().set_cache_max_pages(0);
    m.vm().set_va_pools(false);
    let areas: Vec<_> = (0..6).map(|_| m.vmalloc(2 * PAGE_SIZE).unwrap()).collect();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(areas[4].as_ptr()) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(areas[1].as_ptr()) };
    m.vm_unmap_aliases();
    // Both holes are 3 pages (2 + guard); the lower one is taken, then the higher.
    assert_eq!(m.vmalloc(2 * PAGE_SIZE).unwrap(), areas[1]);
    assert_eq!(m.vmalloc(PAGE_SIZE).unwrap(), areas[4], "a 1-page area (2 with guard) fits the next hole");
    m.vm().check();
}

#[test]
fn vm4_alignment_power_of_two_and_impossible_aligns() {
    let m = i386(64);
    let _pad = m.vmalloc(PAGE_SIZE).unwrap();
    let p = m.vmalloc_node_align(5 * PAGE_SIZE, 1 << 20, GFP_KERNEL, -1).unwrap();
    assert!((p.as_ptr() as usize).is_multiple_of(1 << 20), "VM-4");
    assert!(m.vmalloc_node_align(PAGE_SIZE, 3 * PAGE_SIZE, GFP_KERNEL, -1).is_err(), "not a power of two");
    // align_shift_alloc_test: an alignment larger than the whole range cannot fit.
    assert!(m.vmalloc_node_align(PAGE_SIZE, 1 << 40, GFP_KERNEL | __GFP_NOWARN, -1).is_err());
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    m.vm().check();
}

#[test]
fn vm5_vzalloc_is_zero_even_over_dirty_frames() {
    let m = i386_highmem();
    let p = m.vmalloc(8 * PAGE_SIZE).unwrap();
    for i in 0..8 * PAGE_SIZE {
        write(p, i, 0xa5);
    }
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    m.vm_unmap_aliases();
    m.drain_local_pages();
    let z = m.vzalloc(8 * PAGE_SIZE).unwrap();
    assert!((0..8 * PAGE_SIZE).all(|i| read(z, i) == 0), "VM-5");
    let u = m.vmalloc_user(PAGE_SIZE).unwrap();
    assert!((0..PAGE_SIZE).all(|i| read(u, i) == 0), "vmalloc_user is zeroed");
    assert!(m.vmallocinfo().contains(" pages=1 vmalloc user N0=1\n"), "{}", m.vmallocinfo());
}

#[test]
fn vm6_null_double_free_and_foreign_addresses_are_reported_and_ignored() {
    let m = i386(32);
    let before = log_lines(&m).len();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(std::ptr::null()) };
    assert_eq!(log_lines(&m).len(), before, "vfree(NULL) is silent");
    let p = m.vmalloc(PAGE_SIZE).unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    let expect = format!("Trying to vfree() nonexistent vm area ({:016x})", p.as_ptr() as usize);
    assert_eq!(count_log(&m, &expect), 1, "{:?}", log_lines(&m));
    let direct = m.get_free_pages(GFP_KERNEL, 0).unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(direct.as_ptr()) };
    assert_eq!(count_log(&m, "Trying to vfree() nonexistent vm area"), 2);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr().wrapping_add(12)) };
    assert_eq!(count_log(&m, "Trying to vfree() bad address"), 1);
    assert!(count_log(&m, &format!("WARNING: CPU: 0 at {}", file!())) >= 3, "{:?}", log_lines(&m));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vunmap(p.as_ptr()) };
    assert_eq!(count_log(&m, "Trying to vunmap() nonexistent vm area"), 1);
    // The direct-map page is untouched and still ours.
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_addr(direct.as_ptr(), 0) };
    m.vm().check();
    check(&m);
}

#[test]
fn vm7_vfree_in_atomic_context_is_deferred_and_completes_later() {
    let m = i386_highmem();
    let p = m.vmalloc(4 * PAGE_SIZE).unwrap();
    let q = m.vmalloc(PAGE_SIZE).unwrap();
    {
        let _lock = atomic_section();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(q.as_ptr()) };
    }
    assert_eq!(count_log(&m, "BUG: sleeping function"), 0, "vfree in atomic context is allowed");
    assert_eq!(m.vm().nr_deferred(), 2);
    assert_eq!(m.vm().nr_vmalloc_pages(), 5, "not freed yet");
    assert!(m.vmalloc_to_page(p.as_ptr()).is_some());
    // The next vmalloc outside atomic context completes them.
    let r = m.vmalloc(PAGE_SIZE).unwrap();
    assert_eq!(m.vm().nr_deferred(), 0);
    assert_eq!(m.vm().nr_vmalloc_pages(), 1);
    assert!(m.vmalloc_to_page(p.as_ptr()).is_none());
    {
        let _lock = atomic_section();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(r.as_ptr()) };
    }
    m.flush_deferred_vfree();
    assert_eq!(m.vm().nr_vmalloc_pages(), 0, "an explicit flush completes them too");
    m.vm().check();
}

#[test]
fn vm7_kswapd_completes_a_deferred_vfree_without_further_vmalloc_calls() {
    // The kernel's `delayed_vfree_work`: queuing a deferred free kicks the machine's worker
    // (kswapd), which frees it from process context. Nothing else touches vmalloc here.
    let m = builder(Profile::I386, 32).kswapd(true).build().expect("build i386 machine");
    let p = m.vmalloc(64 * PAGE_SIZE).unwrap();
    {
        let _lock = atomic_section();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (m.vm().nr_deferred(), m.vm().nr_vmalloc_pages()) != (0, 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(m.vm().nr_deferred(), 0, "VM-7: kswapd drained the deferred free");
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
    // Woken by the queuing itself, not only by its once-a-second safety-net drain.
    assert!(m.kswapd_work_runs() >= 1, "the deferred free kicked kswapd");
    assert!(m.vmalloc_to_page(p.as_ptr()).is_none());
    m.vm().check();
}

#[test]
fn vm7_direct_reclaim_completes_deferred_vfrees_without_kswapd() {
    // The C repro of the review (`spin_lock; vfree; spin_unlock`, then take every page): with
    // no background thread, the reclaim pass of a `GFP_KERNEL | __GFP_NORETRY` allocation
    // must get the deferred area's frames back.
    let m = i386(32);
    let gfp = GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN;
    let held = grab_all(&m, gfp);
    let baseline = pages_in(&held);
    free_all(&m, held);
    let p = m.vmalloc(2048 * PAGE_SIZE).unwrap();
    {
        let _lock = atomic_section();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
    }
    assert_eq!(m.vm().nr_deferred(), 1, "queued: no worker, no vmalloc call since");
    let counted = m.vm().reclaimable_pages();
    let held = grab_all(&m, gfp);
    let after = pages_in(&held);
    assert!(after + 64 >= baseline, "{after} pages after the deferred vfree, {baseline} before");
    assert_eq!(m.vm().nr_deferred(), 0, "VM-7: direct reclaim drained the deferred free");
    assert!(counted >= 2048, "the shrinker counted the queued frames: {counted}");
    free_all(&m, held);
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
    m.vm().check();
    check(&m);
}

#[test]
fn vm7_sleeping_vmalloc_and_vunmap_in_atomic_context_are_reported() {
    let m = i386(64);
    let (p, line) = {
        let _lock = atomic_section();
        (m.vmalloc(PAGE_SIZE), line!())
    };
    assert!(p.is_ok(), "plenty of memory: served without sleeping");
    let expected = format!("BUG: sleeping function called from invalid context at {}:{line}", file!());
    assert_eq!(count_log(&m, &expected), 1, "{:?}", log_lines(&m));
    // A second machine: the report is rate limited to one a second per machine.
    let m = i386(64);
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let v = m.vmap(&[page], 0).unwrap();
    let line = {
        let _lock = atomic_section();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vunmap(v.as_ptr()) };
        line!() - 1
    };
    assert_eq!(count_log(&m, &format!("invalid context at {}:{line}", file!())), 1, "{:?}", log_lines(&m));
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
}

#[test]
fn vm8_freed_space_is_reused_only_after_purge_and_exhaustion_purges() {
    let m = i386(64);
    // Purge only when the space runs out. The frame cache would hand `p` back at once
    // (kmem's deviation, tested in `vmalloc_reuse.rs`); this is the kernel's lazy path.
    m.vm().set_lazy_max_pages(usize::MAX);
    m.vm().set_cache_max_pages(0);
    let p = m.vmalloc(PAGE_SIZE).unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    let q = m.vmalloc(PAGE_SIZE).unwrap();
    assert_ne!(q, p, "VM-8: not reused while unpurged");
    assert!(m.vmallocinfo().contains(&format!("0x{:016x}", p.as_ptr() as usize)));
    assert!(m.vmallocinfo().contains("unpurged vm_area"));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(q.as_ptr()) };
    // 128 MiB of space, 1 MiB + guard per area: about 127 fit; 400 rounds must all succeed.
    for round in 0..400 {
        let a = m.vmalloc(1 << 20).unwrap_or_else(|_| panic!("round {round}: {:?}", log_lines(&m)));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(a.as_ptr()) };
    }
    assert!(m.vm().stats().purges.load(SEQ) >= 2, "exhaustion purged");
    assert_eq!(count_log(&m, "vmalloc_node_range for size"), 0);
    // The kernel's threshold.
    assert_eq!(lazy_max_pages_for(2), 2 * (32 << 20) / PAGE_SIZE);
    m.vm().check();
}

#[test]
fn vm9_vmap_does_not_own_the_pages_unless_put_pages() {
    let m = i386_highmem();
    let pages: Vec<&Page> = (0..3).map(|_| m.alloc_pages(GFP_HIGHUSER, 0).unwrap()).collect();
    assert!(pages.iter().all(|p| zone_of(&m, pfn(&m, p)) == ZoneType::HighMem));
    let v = m.vmap(&pages, 0).unwrap();
    for (i, page) in pages.iter().enumerate() {
        write(v, i * PAGE_SIZE + 7, i as u8 + 1);
        assert_eq!(m.vmalloc_to_page(v.as_ptr().wrapping_add(i * PAGE_SIZE)).map(|p| pfn(&m, p)), Some(pfn(&m, page)));
    }
    assert!(m.vmallocinfo().contains(" vmap\n"), "{}", m.vmallocinfo());
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vunmap(v.as_ptr()) };
    m.vm_unmap_aliases();
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page.refcount(), 1, "VM-9: still the caller's");
        let k = m.kmap(page).unwrap();
        assert_eq!(read(k, 7), i as u8 + 1, "contents survive vunmap");
        // SAFETY: The test's own mapping, not used afterwards.
        unsafe { m.kunmap(page) };
    }
    // With VM_MAP_PUT_PAGES, vfree frees them.
    let v = m.vmap(&pages, VM_MAP_PUT_PAGES).unwrap();
    m.drain_local_pages();
    let free = m.zone(ZoneType::HighMem).free_pages();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(v.as_ptr()) };
    m.drain_local_pages();
    assert_eq!(m.zone(ZoneType::HighMem).free_pages(), free + 3);
    check(&m);
}

/// VM-9 with the array (`vmap(array, n, VM_MAP_PUT_PAGES, ..)` as the kernel's callers write
/// it, the C ABI's path): `vfree` frees the pages and gives the array to `kvfree` (a kmalloc
/// object to `kfree`, a vmalloc area to `vfree`); `vunmap` leaves both to the caller; an array
/// `kvfree` could not free (not an allocation, inside one, too small for the pointers) is
/// reported and refused, and takes nothing.
#[test]
fn vm9_vmap_put_pages_hands_over_the_pages_and_the_array() {
    let m = x86_64_nopcp(64);
    let three = || -> Vec<&Page> { (0..3).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect() };
    let bytes = 3 * size_of::<*const Page>();

    let pages = three();
    let array = m.kmalloc(bytes, GFP_KERNEL).unwrap();
    // SAFETY: The test's own pages and array, given up to the area.
    let v = unsafe { m.vmap_put_pages(&pages, array, 0) }.unwrap();
    write(v, 2 * PAGE_SIZE, 9);
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(v.as_ptr()) };
    assert!(pages.iter().all(|p| p.refcount() == 0), "the pages are freed");
    assert_eq!(m.kmalloc(bytes, GFP_KERNEL).unwrap(), array, "the array was kfree'd: LIFO hands it out again");
    // SAFETY: The object just allocated, unused afterwards.
    unsafe { m.kfree(array.as_ptr()) };

    let pages = three();
    let array = m.vmalloc(PAGE_SIZE).unwrap();
    // SAFETY: As above.
    let v = unsafe { m.vmap_put_pages(&pages, array, 0) }.unwrap();
    // SAFETY: As above.
    unsafe { m.vfree(v.as_ptr()) };
    assert!(pages.iter().all(|p| p.refcount() == 0));
    assert!(m.vmalloc_to_page(array.as_ptr()).is_none(), "the array's area was vfree'd");
    assert_eq!(count_log(&m, "nonexistent vm area"), 0);

    let pages = three();
    let array = m.kmalloc(bytes, GFP_KERNEL).unwrap();
    // SAFETY: As above.
    let v = unsafe { m.vmap_put_pages(&pages, array, 0) }.unwrap();
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vunmap(v.as_ptr()) };
    assert!(pages.iter().all(|p| p.refcount() == 1), "vunmap leaves the pages to the caller");
    // SAFETY: The test's own array, handed back by `vunmap`.
    assert!(unsafe { m.kmalloc_usable_size(array.as_ptr()) }.is_some(), "and the array");
    // SAFETY: The test's own array, unused afterwards.
    unsafe { m.kfree(array.as_ptr()) };
    assert_eq!(count_log(&m, "WARNING"), 0);

    let mut local = [0usize; 3];
    let big = m.kmalloc(64, GFP_KERNEL).unwrap();
    let small = m.kmalloc(8, GFP_KERNEL).unwrap();
    let bad = [NonNull::from(&mut local).cast::<u8>(), NonNull::new(big.as_ptr().wrapping_add(8)).unwrap(), small];
    for (i, &array) in bad.iter().enumerate() {
        // SAFETY: Refused (the test checks it), so nothing is given up.
        assert!(unsafe { m.vmap_put_pages(&pages, array, 0) }.is_err(), "array {i} refused");
        assert_eq!(count_log(&m, "is not from kmalloc or kvmalloc"), i + 1);
    }
    assert!(pages.iter().all(|p| p.refcount() == 1), "a refused vmap takes nothing");
    for page in pages {
        // SAFETY: The test's own pages, unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    // SAFETY: The test's own objects, unused afterwards.
    unsafe {
        m.kfree(big.as_ptr());
        m.kfree(small.as_ptr());
    }
    m.vm().check();
    check(&m);
}

/// VM-9, VM-13: a `VM_ALLOC` among `vmap`'s flags only labels the area (`vmallocinfo` shows
/// `vmalloc vmap` and no `pages=`, as the kernel's `nr_pages` is 0): `vfree` frees none of the
/// caller's pages, leaves `VmallocUsed` alone and parks nothing in the frame cache, so the next
/// vmalloc never gets the caller's pages; `vrealloc` refuses the area (VM-12).
#[test]
fn vm9_vmap_with_vm_alloc_still_leaves_the_pages_to_the_caller() {
    let m = x86_64_nopcp(64);
    let pages: Vec<&Page> = (0..3).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let keep = m.vmalloc(4 * PAGE_SIZE).unwrap();
    let v = m.vmap(&pages, VM_ALLOC).unwrap();
    assert_eq!(m.vm().nr_vmalloc_pages(), 4, "VM-13: a vmap adds no vmalloc pages");
    let info = m.vmallocinfo();
    let start = format!("0x{:016x}-", v.as_ptr() as usize);
    let line = info.lines().find(|l| l.starts_with(&start)).expect("the vmap area is listed");
    assert!(line.ends_with(" vmalloc vmap") && !line.contains("pages="), "{line}");
    write(v, 5, 9);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert!(unsafe { m.vrealloc(v.as_ptr(), 8 * PAGE_SIZE, GFP_KERNEL) }.is_err());
    assert_eq!(count_log(&m, "Trying to vrealloc() non-vmalloc vm area"), 1, "{:?}", log_lines(&m));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(v.as_ptr()) };
    assert_eq!(count_log(&m, "nonexistent vm area"), 0);
    assert_eq!(m.vm().nr_vmalloc_pages(), 4, "VM-13: nothing subtracted");
    assert_eq!(m.vm().cached_areas(), 0, "no frame cache for pages vmalloc does not own");
    assert!(pages.iter().all(|p| p.refcount() == 1), "VM-9: still the caller's");
    let q = m.vmalloc(3 * PAGE_SIZE).unwrap();
    let theirs: Vec<usize> = pages.iter().map(|p| pfn(&m, p)).collect();
    for i in 0..3 {
        let f = m.vmalloc_to_pfn(q.as_ptr().wrapping_add(i * PAGE_SIZE)).unwrap();
        assert!(!theirs.contains(&f), "page {i} of a new vmalloc is one of the caller's");
    }
    let k = m.kmap(pages[0]).unwrap();
    assert_eq!(read(k, 5), 9, "the caller's page kept its contents");
    // SAFETY: The test's own mapping, not used afterwards.
    unsafe { m.kunmap(pages[0]) };
    for a in [q, keep] {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(a.as_ptr()) };
    }
    for page in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
    check(&m);
}

/// VM-9, VM-13: `get_vm_area(size, VM_ALLOC)` is address space only, whatever the label: a
/// `vfree` of it frees no frame, subtracts nothing from `VmallocUsed` and parks nothing in the
/// frame cache (a later vmalloc of the same size gets real frames), and `free_vm_area` of
/// another one returns its range; `vrealloc` refuses it (VM-12).
#[test]
fn vm9_get_vm_area_with_vm_alloc_owns_no_pages() {
    let m = x86_64_nopcp(64);
    let keep = m.vmalloc(PAGE_SIZE).unwrap();
    let a = m.get_vm_area(2 * PAGE_SIZE, VM_ALLOC).unwrap();
    let b = m.get_vm_area(2 * PAGE_SIZE, VM_ALLOC).unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert!(unsafe { m.vrealloc(a.as_ptr(), PAGE_SIZE, GFP_KERNEL) }.is_err());
    assert_eq!(count_log(&m, "Trying to vrealloc() non-vmalloc vm area"), 1, "{:?}", log_lines(&m));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(a.as_ptr()) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.free_vm_area(b.as_ptr()) };
    assert_eq!(count_log(&m, "nonexistent vm area"), 0, "{:?}", log_lines(&m));
    assert_eq!(m.vm().cached_areas(), 0, "an area without frames is never cached");
    assert_eq!(m.vm().nr_vmalloc_pages(), 1);
    let q = m.vmalloc(2 * PAGE_SIZE).unwrap();
    for i in 0..2 {
        assert!(m.vmalloc_to_pfn(q.as_ptr().wrapping_add(i * PAGE_SIZE)).is_some(), "page {i} has a frame");
        write(q, i * PAGE_SIZE, 1);
    }
    assert_eq!(m.vm().nr_vmalloc_pages(), 3);
    for p in [q, keep] {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
    }
    check(&m);
}

#[test]
fn vm10_aliasing_both_ways_through_direct_map_and_kmap() {
    for m in [i386_highmem(), x86_64_nopcp(64)] {
        let n = 16;
        let p = m.vmalloc(n * PAGE_SIZE).unwrap();
        for i in 0..n {
            let page = m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE + 100)).expect("VM-10");
            assert_eq!(m.vmalloc_to_pfn(p.as_ptr().wrapping_add(i * PAGE_SIZE)), Some(pfn(&m, page)));
            // vmalloc address -> frame view.
            write(p, i * PAGE_SIZE + 100, 0x40 + i as u8);
            let view = m.kmap_local_page(page).unwrap();
            assert_eq!(read(view, 100), 0x40 + i as u8);
            // Frame view -> vmalloc address.
            write(view, 200, 0x80 + i as u8);
            assert_eq!(read(p, i * PAGE_SIZE + 200), 0x80 + i as u8);
            // SAFETY: The test's own mapping, not used afterwards.
            unsafe { m.kunmap_local(view.as_ptr()) };
            if let Some(direct) = m.page_address(page) {
                assert_eq!(view, direct, "lowmem: kmap is page_address");
            }
        }
        if m.profile() == Profile::I386 {
            let high = (0..n)
                .filter(|i| {
                    let page = m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).unwrap();
                    m.page_address(page).is_none()
                })
                .count();
            assert_eq!(high, n, "vmalloc prefers HighMem frames on i386");
        }
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
        m.vm().check();
    }
}

#[test]
fn vmalloc_32_stays_below_4gib_and_in_lowmem() {
    let m = i386_highmem();
    let p = m.vmalloc_32(8 * PAGE_SIZE).unwrap();
    for i in 0..8 {
        let page = m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).unwrap();
        assert!(m.page_address(page).is_some(), "i386: vmalloc_32 frames are lowmem");
    }
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    let m = x86_64_nopcp(4096 + 64);
    let p = m.vmalloc(8 * PAGE_SIZE).unwrap();
    let q = m.vmalloc_32(8 * PAGE_SIZE).unwrap();
    for i in 0..8 {
        let at = |a: NonNull<u8>| m.vmalloc_to_pfn(a.as_ptr().wrapping_add(i * PAGE_SIZE)).unwrap();
        assert!(at(p) >= 4096 * MIB_PAGES, "vmalloc takes Normal first");
        assert!(at(q) < 4096 * MIB_PAGES, "vmalloc_32 stays below 4 GiB");
    }
}

/// VM-11, `vmalloc_info_show`: `VM_SPARSE` (0x1000, a caller may pass it) prints ` sparse`,
/// after ` ioremap` and before ` vmalloc`.
#[test]
fn vm11_vmallocinfo_names_sparse_areas_between_ioremap_and_vmalloc() {
    let m = x86_64_nopcp(64);
    let a = m.get_vm_area(PAGE_SIZE, VM_SPARSE).unwrap();
    let b = m.get_vm_area(PAGE_SIZE, VM_IOREMAP | VM_SPARSE | VM_ALLOC).unwrap();
    let info = m.vmallocinfo();
    let line = |p: NonNull<u8>| {
        let head = format!("0x{:016x}-", p.as_ptr() as usize);
        info.lines().find(|l| l.starts_with(&head)).unwrap_or_else(|| panic!("{info}")).to_owned()
    };
    assert!(line(a).ends_with(" sparse"), "{info}");
    assert!(!line(a).contains(" vmalloc"), "{info}");
    assert!(line(b).ends_with(" ioremap sparse vmalloc"), "{info}");
    for p in [a, b] {
        // SAFETY: The test's own area, unused afterwards.
        unsafe { m.free_vm_area(p.as_ptr()) };
    }
    check(&m);
}

/// VM-11 and PROC-5: `/proc/vmallocinfo` as §5.5 prints it.
#[test]
fn vm11_vmallocinfo_format() {
    let m = i386(64);
    // Freed areas go lazy, not to the frame cache (whose areas are not listed: `vmalloc_reuse.rs`).
    m.vm().set_cache_max_pages(0);
    let (p, line) = (m.vmalloc(4 * PAGE_SIZE).unwrap(), line!());
    let start = p.as_ptr() as usize;
    let info = m.vmallocinfo();
    let head = format!("0x{start:016x}-0x{:016x}   20480 {}:{line}:", start + 5 * PAGE_SIZE, file!());
    assert!(info.starts_with(&head), "VM-11: size includes the guard page: {info}");
    let column = &info[head.len()..];
    let digits = column.find(' ').unwrap();
    assert!(column[..digits].parse::<u32>().is_ok(), "{info}");
    assert_eq!(&column[digits..], " pages=4 vmalloc N0=4\n", "{info}");
    assert_eq!(info.lines().count(), 1);
    assert_eq!(m.proc_read("vmallocinfo").unwrap(), info);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    assert_eq!(m.vmallocinfo(), format!("0x{start:016x}-0x{:016x}   20480 unpurged vm_area\n", start + 5 * PAGE_SIZE));
    m.vm_unmap_aliases();
    assert_eq!(m.vmallocinfo(), "");
}

#[test]
fn vm12_vrealloc_in_place_move_and_free() {
    let m = i386_highmem();
    let p = m.vmalloc(5000).unwrap();
    for i in 0..5000 {
        write(p, i, (i % 253) as u8);
    }
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert_eq!(unsafe { m.vrealloc(p.as_ptr(), 8000, GFP_KERNEL) }.unwrap(), Some(p), "grow within the pages");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert_eq!(unsafe { m.vrealloc(p.as_ptr(), 10, GFP_KERNEL | __GFP_ZERO) }.unwrap(), Some(p), "shrink in place");
    assert!((10..5000).all(|i| read(p, i) == 0), "__GFP_ZERO zeroes the tail");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    let q = unsafe { m.vrealloc(p.as_ptr(), 3 * PAGE_SIZE, GFP_KERNEL) }.unwrap().unwrap();
    assert_ne!(q, p);
    assert!((0..10).all(|i| read(q, i) == (i % 253) as u8), "requested bytes copied");
    assert!(m.vmalloc_to_page(p.as_ptr()).is_none(), "old area freed");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert_eq!(unsafe { m.vrealloc(q.as_ptr(), 0, GFP_KERNEL) }, Ok(None), "size 0 frees, returns NULL");
    assert_eq!(m.vm().nr_vmalloc_pages(), 0);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    let fresh = unsafe { m.vrealloc(std::ptr::null(), 100, GFP_KERNEL) }.unwrap().unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert!(unsafe { m.vrealloc(fresh.as_ptr().wrapping_add(PAGE_SIZE), 10, GFP_KERNEL) }.is_err());
    assert_eq!(count_log(&m, "Trying to vrealloc() nonexistent vm area"), 1);
    m.vm().check();
}

/// `vrealloc` of an area that is not vmalloc memory (`get_vm_area` address space, a `vmap` of
/// the caller's pages) is refused with a warning: nothing is copied, zeroed or freed.
#[test]
fn vm12_vrealloc_refuses_areas_that_are_not_vmalloc_memory() {
    let m = i386(64);
    let space = m.get_vm_area(2 * PAGE_SIZE, 0).unwrap();
    for size in [PAGE_SIZE, 3 * PAGE_SIZE] {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        assert!(unsafe { m.vrealloc(space.as_ptr(), size, GFP_KERNEL | __GFP_ZERO) }.is_err(), "{size}: refused");
    }
    assert_eq!(count_log(&m, "Trying to vrealloc() non-vmalloc vm area"), 2, "{:?}", log_lines(&m));
    let page = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    let mapped = m.vmap(&[page], 0).unwrap();
    write(mapped, 0, 7);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert!(unsafe { m.vrealloc(mapped.as_ptr(), 2 * PAGE_SIZE, GFP_KERNEL) }.is_err());
    assert_eq!(count_log(&m, "Trying to vrealloc() non-vmalloc vm area"), 3);
    assert_eq!(read(mapped, 0), 7, "the vmap area is untouched");
    assert_eq!(m.vm().nr_vmalloc_pages(), 0, "nothing was allocated");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vunmap(mapped.as_ptr()) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(page, 0) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.free_vm_area(space.as_ptr()) };
    m.vm().check();
}

#[test]
fn vm13_meminfo_vmalloc_lines_track_pages() {
    let m = i386(64);
    let kb = |label: &str| -> usize {
        let text = m.meminfo();
        let line = text.lines().find(|l| l.starts_with(label)).unwrap().to_owned();
        line[label.len()..].trim().trim_end_matches(" kB").trim().parse().unwrap()
    };
    assert_eq!(kb("VmallocTotal:"), 128 << 10);
    assert_eq!(kb("VmallocUsed:"), 0);
    let p = m.vmalloc(10 * PAGE_SIZE).unwrap();
    let space = m.get_vm_area(100 * PAGE_SIZE, 0).unwrap();
    assert_eq!(kb("VmallocUsed:"), 40, "pages, not address space");
    assert!(m.meminfo().contains("VmallocChunk:          0 kB\n"));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.free_vm_area(space.as_ptr()) };
    assert_eq!(kb("VmallocUsed:"), 0);
}

/// `kmap_local_page` mappings left when a thread gives up its CPU (thread exit, `release_cpu`)
/// are the caller's bug: reported once per release and unmapped, so the CPU's next owner has
/// all 16 local slots (`KM_MAX_IDX`) rather than falling back to `kmap` with a report on each
/// call. Balanced mappings leave nothing to report.
#[test]
fn kmap_local_mappings_left_at_cpu_release_are_reported_and_unmapped() {
    const LEFT: &str = "local mapping(s) of CPU";
    const NESTED: &str = "more than 16 nested mappings";
    let m = i386_highmem();
    let high = m.alloc_pages(GFP_HIGHUSER | __GFP_ZERO, 0).unwrap();
    for _ in 0..16 {
        m.kmap_local_page(high).unwrap();
    }
    m.release_cpu();
    assert_eq!(count_log(&m, "BUG: kmap_local: 16 local mapping(s) of CPU"), 1, "{}", m.log().messages());
    let views: Vec<_> = (0..16).map(|_| m.kmap_local_page(high).unwrap()).collect();
    assert_eq!(count_log(&m, NESTED), 0, "the slot's local mappings were not given back");
    assert_eq!(read(views[15], 0), 0);
    for v in views.iter().rev() {
        // SAFETY: The test's own mappings, released in reverse order, not used afterwards.
        unsafe { m.kunmap_local(v.as_ptr()) };
    }
    m.release_cpu();
    assert_eq!(count_log(&m, LEFT), 1, "balanced mappings reported");
    // A thread that exits with a mapping held.
    let pfn = m.page_to_pfn(high).unwrap();
    let m2 = m.clone();
    std::thread::spawn(move || {
        let page = m2.pfn_to_page(pfn).unwrap();
        m2.kmap_local_page(page).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(count_log(&m, "BUG: kmap_local: 1 local mapping(s) of CPU"), 1, "{}", m.log().messages());
    // SAFETY: The test's own pages, unused afterwards.
    unsafe { m.free_pages(high, 0) };
}

#[test]
fn kmap_maps_highmem_and_is_identity_for_lowmem() {
    let m = i386_highmem();
    let low = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert_eq!(m.kmap(low), m.page_address(low));
    // SAFETY: The test's own mapping, not used afterwards.
    unsafe { m.kunmap(low) };
    let high = m.alloc_pages(GFP_HIGHUSER | __GFP_ZERO, 0).unwrap();
    assert!(m.page_address(high).is_none());
    let k1 = m.kmap(high).unwrap();
    let k2 = m.kmap(high).unwrap();
    assert_eq!(k1, k2, "one persistent slot per page");
    assert!(m.virt_to_page(k1.as_ptr()).is_none(), "not a direct-map address");
    // While kmapped, page_address finds the kmap address (the kernel's page_address_htable).
    assert_eq!(m.page_address(high), Some(k1));
    write(k1, 0, 9);
    // SAFETY: The test's own mapping, not used afterwards.
    unsafe { m.kunmap(high) };
    assert_eq!(m.page_address(high), Some(k1), "one use left");
    // SAFETY: The test's own mapping, not used afterwards.
    unsafe { m.kunmap(high) };
    assert!(m.page_address(high).is_none(), "no use left: no address");
    // SAFETY: Deliberately unbalanced: no mapping of `high` is left for anyone to use.
    unsafe { m.kunmap(high) };
    assert_eq!(count_log(&m, "kunmap: pfn:"), 1, "unbalanced kunmap reported");
    // Nested local mappings of two pages, released in reverse order.
    let other = m.alloc_pages(GFP_HIGHUSER, 0).unwrap();
    let a = m.kmap_local_page(high).unwrap();
    let b = m.kmap_local_page(other).unwrap();
    assert_ne!(a, b);
    assert_eq!(read(a, 0), 9);
    // SAFETY: Deliberately out of order; neither mapping is used afterwards.
    unsafe { m.kunmap_local(a.as_ptr()) };
    // As kunmap_local_indexed: a warning, and the most recent mapping (`b`'s) is released.
    let warning = "kunmap_local_indexed: addr != __fix_to_virt(FIX_KMAP_BEGIN + idx)";
    assert_eq!(count_log(&m, warning), 1, "out of order warned");
    // SAFETY: The test's own mapping, not used afterwards (out of order again: `a`'s slot is
    // the one left, and it is released; the warning is not repeated).
    unsafe { m.kunmap_local(b.as_ptr()) };
    assert_eq!(count_log(&m, warning), 1, "warned once");
    // Both local slots are free again: the next local mapping takes the first.
    let c = m.kmap_local_page(other).unwrap();
    assert_eq!(c, a);
    // SAFETY: The test's own mapping, not used afterwards.
    unsafe { m.kunmap_local(c.as_ptr()) };
    assert_eq!(count_log(&m, "kunmap_local:"), 0, "nothing else reported");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(high, 0) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(other, 0) };
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages(low, 0) };
}
