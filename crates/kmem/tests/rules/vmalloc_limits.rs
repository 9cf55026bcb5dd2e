//! vmalloc at the edges of its arithmetic and metadata (VM-2, VM-4, `__get_vm_area_node`):
//! sizes that wrap when rounded up to pages or given their guard page, alignments that are not
//! powers of two, `VM_IOREMAP` alignment, areas beyond any fixed number of tree nodes, flags
//! a caller may not set, and `__GFP_NOFAIL` out of address space.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use kmem::gfp::*;
use kmem::vmalloc::{VM_IOREMAP, VM_NO_GUARD, VM_UNINITIALIZED};
use kmem::{PAGE_SIZE, Page, Profile};

use crate::*;

/// Sizes whose page rounding or guard page wraps fail cleanly: `get_vm_area` silently (the
/// kernel's `-EINVAL`), vmalloc with the VM-2 report, on the size as given. (`warn_alloc` is
/// ratelimited to one report in 10 s: one machine per report.)
#[test]
fn vm2_sizes_that_wrap_fail_with_the_exceeds_report() {
    let m = i386(32);
    for size in [usize::MAX, usize::MAX - 10, usize::MAX - PAGE_SIZE - 10, usize::MAX - PAGE_SIZE + 1] {
        assert!(m.get_vm_area(size, 0).is_err(), "get_vm_area({size:#x})");
        assert!(m.get_vm_area(size, VM_NO_GUARD).is_err(), "get_vm_area({size:#x}, VM_NO_GUARD)");
    }
    assert_eq!(count_log(&m, "vmalloc error"), 0, "get_vm_area has no warn_alloc: {:?}", log_lines(&m));
    for size in [usize::MAX, usize::MAX - 4094, 1 << 63] {
        let m = i386(32);
        assert!(m.vmalloc(size).is_err());
        let msg = format!("vmalloc error: size {size}, exceeds total pages, mode:0xcc0(GFP_KERNEL)");
        assert_eq!(count_log(&m, &msg), 1, "{msg}: {:?}", log_lines(&m));
        assert_eq!(m.vm().nr_vmalloc_pages(), 0);
        m.vm().check();
    }
}

/// VM-4: an alignment that is not a power of two (0 included) fails as the kernel's
/// `alloc_vmap_area` `-EINVAL` does: the vmalloc reports `vm_struct allocation failed`
/// (unless `__GFP_NOWARN`), with no address-range message.
#[test]
fn vm4_align_not_a_power_of_two_is_reported() {
    for align in [0, 3, 3 * PAGE_SIZE] {
        let m = i386(32);
        assert!(m.vmalloc_node_align(PAGE_SIZE, align, GFP_KERNEL | __GFP_NOWARN, -1).is_err(), "align {align}");
        assert_eq!(count_log(&m, "vmalloc"), 0, "__GFP_NOWARN: {:?}", log_lines(&m));
        assert!(m.vmalloc_node_align(PAGE_SIZE, align, GFP_KERNEL, -1).is_err(), "align {align}");
        let lines = log_lines(&m);
        assert_eq!(count_log(&m, "vmalloc error: size 4096, vm_struct allocation failed"), 1, "{lines:?}");
        assert_eq!(count_log(&m, "Address range restricted"), 0);
        let ok = m.vmalloc_node_align(PAGE_SIZE, 4 * PAGE_SIZE, GFP_KERNEL, -1).unwrap();
        assert!((ok.as_ptr() as usize).is_multiple_of(4 * PAGE_SIZE));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(ok.as_ptr()) };
        m.vm().check();
    }
}

/// `__get_vm_area_node` aligns a `VM_IOREMAP` area to its size rounded up to a power of two,
/// from a page up to `IOREMAP_MAX_ORDER` (128 pages).
#[test]
fn get_vm_area_ioremap_is_aligned_to_its_size_order() {
    let m = builder(Profile::X86_64, 64).build().unwrap();
    // Misalign the next free address first.
    let pad = m.get_vm_area(PAGE_SIZE, 0).unwrap();
    for (pages, align) in
        [(1, PAGE_SIZE), (3, 4 * PAGE_SIZE), (5, 8 * PAGE_SIZE), (128, 128 * PAGE_SIZE), (1000, 128 * PAGE_SIZE)]
    {
        let a = m.get_vm_area(pages * PAGE_SIZE, VM_IOREMAP).unwrap();
        assert!((a.as_ptr() as usize).is_multiple_of(align), "{pages} pages at {a:?}: aligned to {align:#x}");
        let b = m.get_vm_area(pages * PAGE_SIZE, VM_IOREMAP).unwrap();
        assert!((b.as_ptr() as usize).is_multiple_of(align));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.free_vm_area(a.as_ptr()) };
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.free_vm_area(b.as_ptr()) };
    }
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.free_vm_area(pad.as_ptr()) };
    assert!(m.vmallocinfo().contains(" ioremap") || m.vm().lazy_pages() > 0);
    m.vm().check();
}

/// The area trees' nodes are limited by memory only, as the kernel's `vmap_area` slab is: far
/// more areas than the 417 790 a fixed node directory once allowed fit in the range of a
/// 512 MiB x86_64 machine (64 GiB of address space).
#[test]
fn areas_are_not_capped_by_a_fixed_node_directory() {
    const AREAS: usize = 450_000;
    let m = builder(Profile::X86_64, 512).build().unwrap();
    let mut areas = Vec::with_capacity(AREAS);
    for i in 0..AREAS {
        match m.get_vm_area(PAGE_SIZE, 0) {
            Ok(a) => areas.push(a),
            Err(_) => panic!("area {i} failed: {:?}", log_lines(&m)),
        }
    }
    assert_eq!(count_log(&m, "Address range restricted"), 0);
    m.vm().check();
    for a in &areas {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.free_vm_area(a.as_ptr()) };
    }
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes(), "the whole range is free again");
    m.vm().check();
}

/// When the nodes themselves cannot be allocated, the failure says so: the page allocator's
/// report for the node block (and vmalloc's `vm_struct allocation failed`), not an address
/// range that is not full.
#[test]
fn node_allocation_failure_is_reported_as_such() {
    let m = i386(32);
    let mut held = Vec::new();
    while let Ok(page) = m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0) {
        held.push(page);
    }
    assert!(m.get_vm_area(PAGE_SIZE, 0).is_err(), "no page for the first node block");
    let lines = log_lines(&m);
    assert!(lines.iter().any(|l| l.contains("page allocation failure")), "{lines:?}");
    assert_eq!(count_log(&m, "Address range restricted"), 0, "{lines:?}");
    for page in held {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    let a = m.get_vm_area(PAGE_SIZE, 0).expect("memory is back");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.free_vm_area(a.as_ptr()) };
    m.vm().check();
}

/// An area's page array is a kmalloc object of `nr_pages * sizeof(struct page *)` bytes up to
/// a page, as the kernel's `area->pages` (`__vmalloc_area_node`): a one-page vmalloc takes one
/// page (its frame) and a kmalloc-8 object, which the slab statistics (and `Slab` in meminfo)
/// count; arrays above a page get pages of their own.
#[test]
fn page_arrays_are_kmalloc_objects() {
    for (profile, ptr_bytes) in [(Profile::X86_64, 8), (Profile::I386, 4)] {
        let m = builder(profile, 64).pcp(false).build().unwrap();
        m.vm().set_cache_max_pages(0);
        let allocs = |size: usize| {
            let info = m.cache_info(m.kmalloc_cache(size, GFP_KERNEL).expect("kmalloc cache"));
            info.alloc_fast + info.alloc_slow
        };
        // Warm up: node chunks, the kmalloc caches and their slabs exist afterwards.
        let largest = PAGE_SIZE / ptr_bytes;
        for pages in [1, largest] {
            let w = m.vmalloc(pages * PAGE_SIZE).unwrap();
            // SAFETY: The test's own area (or none: refused), unused afterwards.
            unsafe { m.vfree(w.as_ptr()) };
        }
        m.vm_reclaim_and_purge();
        let (free0, small0, big0) = (m.total_free(), allocs(8), allocs(PAGE_SIZE));
        let p = m.vmalloc(PAGE_SIZE).unwrap();
        assert_eq!(free0 - m.total_free(), 1, "{profile:?}: one frame, no page for the array");
        assert_eq!(allocs(8), small0 + 1, "{profile:?}: the array is a kmalloc-8 object");
        let q = m.vmalloc(largest * PAGE_SIZE).unwrap();
        assert_eq!(allocs(PAGE_SIZE), big0 + 1, "{profile:?}: {largest} entries fill a kmalloc-4k object");
        assert_eq!(free0 - m.total_free(), 1 + largest, "{profile:?}: frames only");
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(q.as_ptr()) };
        m.vm_reclaim_and_purge();
        assert_eq!(m.total_free(), free0, "{profile:?}: frames and arrays back");
        m.vm().check();
    }
}

/// A page array that cannot be allocated is reported with the kernel's array size
/// (`nr_pages * sizeof(struct page *)`: 8 bytes an entry on x86_64, 4 on i386), and nothing
/// is left behind.
#[test]
fn page_array_failure_reports_the_kernel_array_size() {
    for (profile, array_size) in [(Profile::X86_64, 16), (Profile::I386, 8)] {
        let m = builder(profile, 64).build().unwrap();
        // The next slab allocation fails: the array's kmalloc.
        m.slabs().failslab().parse_and_apply("1,100,0,1,ignore-gfp-wait=0,verbose=0").unwrap();
        assert!(m.vmalloc(2 * PAGE_SIZE).is_err());
        let msg = format!("vmalloc error: size 8192, failed to allocated page array size {array_size}");
        assert_eq!(count_log(&m, &msg), 1, "{profile:?}: {:?}", log_lines(&m));
        assert_eq!(m.vm().nr_vmalloc_pages(), 0);
        assert!(m.vmallocinfo().is_empty(), "the area was given back");
        m.vm().check();
    }
}

/// A machine's vmalloc refuses another machine's `Kmem` (found in review: `drain_cache`,
/// `shrink`, `reclaim_and_purge` and `flush_deferred` skipped the owner check, so one machine's
/// cached frames were freed into the other machine's page allocator while a `Vec` there still
/// used them). The refusal is a panic, before any lock or page is touched.
#[test]
fn vmalloc_refuses_another_machines_kmem() {
    let (a, b) = (i386(32), i386(32));
    let v = a.vmalloc(8 * PAGE_SIZE).unwrap();
    // SAFETY: Ours, unused afterwards: it goes to `a`'s frame cache.
    unsafe { a.vfree(v.as_ptr()) };
    assert!(a.vm().cached_pages() >= 8, "the frames are cached");
    let (free_b, cached_a) = (b.total_free(), a.vm().cached_pages());
    let refused = |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    assert!(refused(&|| {
        a.vm().drain_cache(&b, usize::MAX);
    }));
    assert!(refused(&|| {
        a.vm().shrink(&b, usize::MAX);
    }));
    assert!(refused(&|| {
        a.vm().reclaim_and_purge(&b);
    }));
    assert!(refused(&|| a.vm().flush_deferred(&b)));
    assert!(refused(&|| {
        let _ = a.vm().vmalloc(&b, PAGE_SIZE);
    }));
    assert_eq!(b.total_free(), free_b, "nothing of `a` went into `b`");
    assert_eq!(a.vm().cached_pages(), cached_a, "`a`'s cache is untouched");
    assert!(a.vm().drain_cache(&a, usize::MAX) >= 8, "its own machine drains it");
    check(&a);
    check(&b);
}

/// VM-6, VM-9: flags that are not the caller's to set — kmem's own bookkeeping bits (31, 30,
/// 29, 28), `VM_UNINITIALIZED`, bits the kernel does not define — are dropped with one
/// `WARNING` per machine naming them, so the areas stay visible and free normally: `vunmap`
/// and `free_vm_area` find them (no `nonexistent vm area`), and after a purge the whole range
/// is free again (nothing leaked).
#[test]
fn vm9_flags_a_caller_may_not_set_are_dropped_with_one_warning() {
    let m = x86_64_nopcp(64);
    let pages: Vec<&Page> = (0..2).map(|_| m.alloc_pages(GFP_KERNEL, 0).unwrap()).collect();
    let v = m.vmap(&pages, 1 << 31).unwrap();
    assert_eq!(count_log(&m, "vmap: VM flags 0x80000000 dropped"), 1, "{:?}", log_lines(&m));
    assert_eq!(count_log(&m, "WARNING: CPU:"), 1);
    let areas = [
        m.get_vm_area(PAGE_SIZE, VM_UNINITIALIZED).unwrap(),
        m.get_vm_area(PAGE_SIZE, (1 << 30) | (1 << 29)).unwrap(),
        m.get_vm_area(PAGE_SIZE, (1 << 28) | 0x4000).unwrap(),
    ];
    assert_eq!(count_log(&m, "dropped"), 1, "once per machine: {:?}", log_lines(&m));
    let info = m.vmallocinfo();
    for a in std::iter::once(&v).chain(&areas) {
        assert!(info.contains(&format!("0x{:016x}-", a.as_ptr() as usize)), "{a:?} listed:\n{info}");
    }
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vunmap(v.as_ptr()) };
    assert!(m.vmalloc_to_pfn(v.as_ptr()).is_none(), "unmapped");
    for a in areas {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.free_vm_area(a.as_ptr()) };
    }
    assert_eq!(count_log(&m, "nonexistent vm area"), 0, "{:?}", log_lines(&m));
    assert!(pages.iter().all(|p| p.refcount() == 1), "VM-9: still the caller's");
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes(), "every range came back");
    for page in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    check(&m);
}

/// SEMANTICS §5.4 (VM-8 exhaustion): out of address space, a `__GFP_NOFAIL` vmalloc that may
/// sleep reports `vm_struct allocation failed. Retrying.`, sleeps a tick and tries again until
/// another thread frees an area (200 ms later here); one that may not sleep
/// (`GFP_NOWAIT | __GFP_NOFAIL`, a misuse) fails at once, as does a plain request.
#[test]
fn nofail_vmalloc_retries_until_address_space_is_freed() {
    let m = builder(Profile::X86_64, 64).pcp(false).vmalloc_bytes(16 * PAGE_SIZE as u64).build().unwrap();
    m.vm().set_cache_max_pages(0);
    let a = m.vmalloc(7 * PAGE_SIZE).unwrap();
    let b = m.vmalloc(7 * PAGE_SIZE).unwrap();
    let b_addr = b.as_ptr() as usize;
    let freeing = AtomicBool::new(false);
    let (got, waited) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            // Set before the free: a success seen without it did not wait for the free.
            freeing.store(true, SeqCst);
            // SAFETY: The test's own area (or none: refused), unused afterwards.
            unsafe { m.vfree(b_addr as *const u8) };
        });
        let got = m.vmalloc_gfp(PAGE_SIZE, GFP_KERNEL | __GFP_NOFAIL);
        (got, freeing.load(SeqCst))
    });
    let p = got.expect("__GFP_NOFAIL vmalloc succeeds once space is freed");
    assert!(waited, "it waited for the free");
    // SAFETY: A live area of the test, one mapped page.
    unsafe { p.as_ptr().write_volatile(1) };
    let retrying = "vmalloc error: size 4096, vm_struct allocation failed. Retrying., mode:0x";
    // `warn_alloc` is ratelimited (one report in 10 s): one line for the many tries.
    assert_eq!(count_log(&m, retrying), 1, "{:?}", log_lines(&m));
    // Full again: 8 + 2 + 6 of 16 pages (guard pages included).
    let c = m.vmalloc(5 * PAGE_SIZE).unwrap();
    // Neither waits (a wait here would hang: nothing frees any more).
    assert!(m.vmalloc_gfp(PAGE_SIZE, GFP_NOWAIT | __GFP_NOFAIL).is_err(), "may not sleep: fails");
    assert!(m.vmalloc_gfp(PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN).is_err(), "no __GFP_NOFAIL: fails");
    for q in [p, a, c] {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(q.as_ptr()) };
    }
    check(&m);
}
