//! vmalloc's reuse paths (issue 4, `docs/deviations.md`): the frame cache of freed areas
//! (kmem's deviation: an area freed with `vfree` stays mapped with its frames and a vmalloc of
//! the same size takes it back), the VA pool of purged ranges (Linux ≥ 6.9 `vmap_pool`),
//! contiguous frames for fresh areas, and what unmapping does to a purged area. Failure paths:
//! reclaim and page exhaustion take cached frames back, exhaustion of the address space
//! empties the pool, zone constraints are kept for reused frames.

use std::process::Command;
use std::ptr::NonNull;

use kmem::context::atomic_section;
use kmem::gfp::*;
use kmem::{Machine, PAGE_SIZE};

use crate::*;

/// A 1 GiB (sparse) i386 machine: vmalloc takes HighMem frames.
fn i386_highmem() -> Machine {
    builder(kmem::Profile::I386, 1024).build().expect("build i386 machine")
}

fn read(p: NonNull<u8>, offset: usize) -> u8 {
    // SAFETY: Callers pass addresses inside live, mapped areas of the test.
    unsafe { p.as_ptr().add(offset).read_volatile() }
}

fn write(p: NonNull<u8>, offset: usize, value: u8) {
    // SAFETY: As in `read`.
    unsafe { p.as_ptr().add(offset).write_volatile(value) }
}

fn pfns(m: &Machine, p: NonNull<u8>, pages: usize) -> Vec<usize> {
    (0..pages).map(|i| m.vmalloc_to_pfn(p.as_ptr().wrapping_add(i * PAGE_SIZE)).expect("mapped")).collect()
}

#[test]
fn a_freed_area_is_cached_with_its_frames_and_taken_back_by_the_same_size() {
    let m = i386_nopcp(64);
    let p = m.vmalloc(4 * PAGE_SIZE).unwrap();
    let frames = pfns(&m, p, 4);
    write(p, 0, 0x5a);
    let free = m.total_free();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    assert_eq!((m.vm().cached_areas(), m.vm().cached_pages()), (1, 4));
    assert_eq!(m.vm().nr_vmalloc_pages(), 0, "VM-13: cached frames back no live area");
    assert_eq!(m.total_free(), free, "the frames stay allocated while cached");
    assert!(m.vmalloc_to_page(p.as_ptr()).is_none(), "VM-10: not a live area any more");
    let start = p.as_ptr() as usize;
    assert_eq!(m.vmallocinfo(), format!("0x{start:016x}-0x{:016x}   20480 unpurged vm_area\n", start + 5 * PAGE_SIZE));
    let q = m.vmalloc(4 * PAGE_SIZE).unwrap();
    assert_eq!(q, p, "the same size takes the cached area back");
    assert_eq!(pfns(&m, q, 4), frames, "with the same frames, still mapped");
    assert_eq!(read(q, 0), 0x5a, "vmalloc does not zero");
    assert_eq!(m.total_free(), free, "no page allocated");
    assert_eq!(m.vm().stats().cache_hits.load(SEQ), 1);
    assert_eq!(m.vm().nr_vmalloc_pages(), 4);
    assert!(m.vmallocinfo().ends_with(" pages=4 vmalloc N0=4\n"), "{}", m.vmallocinfo());
    let other = m.vmalloc(2 * PAGE_SIZE).unwrap();
    assert_ne!(other, p, "another size misses");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(q.as_ptr()) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(q.as_ptr()) };
    assert_eq!(count_log(&m, &format!("Trying to vfree() nonexistent vm area ({start:016x})")), 1, "VM-6");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(other.as_ptr()) };
    m.vm().check();
    m.vm_reclaim_and_purge();
    assert_eq!((m.vm().cached_areas(), m.vm().cached_pages()), (0, 0));
    assert_eq!(m.vmallocinfo(), "");
    m.vm().check();
}

#[test]
fn reused_frames_are_zeroed_for_vzalloc_and_vmalloc_user() {
    let m = i386_highmem();
    let p = m.vmalloc(8 * PAGE_SIZE).unwrap();
    (0..8 * PAGE_SIZE).for_each(|i| write(p, i, 0xa5));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    let z = m.vzalloc(8 * PAGE_SIZE).unwrap();
    assert_eq!(z, p, "from the cache");
    assert!((0..8 * PAGE_SIZE).all(|i| read(z, i) == 0), "VM-5 over reused frames");
    (0..8 * PAGE_SIZE).for_each(|i| write(z, i, 0x3c));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(z.as_ptr()) };
    let u = m.vmalloc_user(8 * PAGE_SIZE).unwrap();
    assert_eq!(u, p);
    assert!((0..8 * PAGE_SIZE).all(|i| read(u, i) == 0), "vmalloc_user is zeroed");
    assert!(m.vmallocinfo().contains(" pages=8 vmalloc user N0=8\n"), "{}", m.vmallocinfo());
    assert_eq!(m.vm().stats().cache_hits.load(SEQ), 2);
    m.vm().check();
}

#[test]
fn highmem_frames_are_never_handed_to_vmalloc_32() {
    let m = i386_highmem();
    let p = m.vmalloc(4 * PAGE_SIZE).unwrap();
    assert!(pfns(&m, p, 4).iter().all(|&f| f >= HIGHMEM_START_PFN), "vmalloc takes HighMem first");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    let q = m.vmalloc_32(4 * PAGE_SIZE).unwrap();
    assert_ne!(q, p, "the cached HighMem frames do not fit a vmalloc_32");
    assert!(pfns(&m, q, 4).iter().all(|&f| f < HIGHMEM_START_PFN), "vmalloc_32 frames are lowmem");
    assert_eq!(m.vm().cached_areas(), 1);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(q.as_ptr()) };
    // The lowmem area (most recent) may serve anyone; the HighMem one only HighMem users.
    let any = m.vmalloc(4 * PAGE_SIZE).unwrap();
    assert_eq!(any, q);
    let low = m.vmalloc_32(4 * PAGE_SIZE).unwrap();
    assert!(low != p && pfns(&m, low, 4).iter().all(|&f| f < HIGHMEM_START_PFN));
    assert_eq!(m.vm().stats().cache_hits.load(SEQ), 1);
    m.vm().check();
}

#[test]
fn purge_threshold_zero_disables_the_cache_and_unmaps_at_once() {
    let m = i386(64);
    m.vm().set_lazy_max_pages(0);
    assert_eq!(m.vm().cache_limit_pages(m.pages().total_managed()), 0);
    let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    assert_eq!(m.vm().cached_areas(), 0);
    assert_eq!(m.vm().lazy_pages(), 0, "purged at once");
    assert_eq!(m.vmallocinfo(), "");
    m.vm().check();
}

#[test]
fn vfree_from_atomic_context_reaches_the_cache_when_drained() {
    let m = i386(64);
    let p = m.vmalloc(3 * PAGE_SIZE).unwrap();
    {
        let _irq = atomic_section();
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
    }
    assert_eq!((m.vm().nr_deferred(), m.vm().cached_areas()), (1, 0), "VM-7: queued");
    m.flush_deferred_vfree();
    assert_eq!((m.vm().nr_deferred(), m.vm().cached_areas()), (0, 1));
    assert_eq!(m.vmalloc(3 * PAGE_SIZE).unwrap(), p);
    m.vm().check();
}

/// Frees `n` areas of `pages` pages, so the frame cache holds them.
fn fill_cache(m: &Machine, n: usize, pages: usize) {
    let areas: Vec<_> = (0..n).map(|_| m.vmalloc(pages * PAGE_SIZE).unwrap()).collect();
    for a in areas {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(a.as_ptr()) };
    }
}

#[test]
fn reclaim_runs_the_vmalloc_shrinker_and_gets_the_cached_frames_back() {
    let m = i386_nopcp(64);
    let cap = m.vm().cache_limit_pages(m.pages().total_managed());
    fill_cache(&m, cap / 15, 15);
    let cached = m.vm().cached_pages();
    assert!(cached > cap - 15 && cached <= cap, "{cached} of {cap}");
    // Take every page with reclaim allowed: reclaim calls the shrinker, which frees the frames.
    let held = grab_all(&m, GFP_KERNEL | __GFP_NOWARN);
    assert_eq!(m.vm().cached_pages(), 0, "reclaim emptied the frame cache");
    assert!(m.vm().stats().cache_releases.load(SEQ) >= cap / 15);
    free_all(&m, held);
    m.vm().check();
}

#[test]
fn a_vmalloc_that_finds_no_free_pages_takes_the_cached_frames_back() {
    let m = i386_nopcp(64);
    fill_cache(&m, 10, 7);
    // Take every page reachable without reclaim: the shrinker never runs.
    let held = grab_all(&m, GFP_NOWAIT | __GFP_NOWARN);
    assert_eq!(m.vm().cached_pages(), 70);
    // A size the cache cannot serve: its page array and frames come from the released frames.
    let p = m.vmalloc_gfp(20 * PAGE_SIZE, GFP_NOWAIT | __GFP_NOWARN).expect("cached frames released");
    assert_eq!(m.vm().cached_pages(), 0);
    assert_eq!(m.vm().nr_vmalloc_pages(), 20);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
    free_all(&m, held);
    m.vm().check();
}

#[test]
fn the_va_pool_serves_the_same_size_and_decays_by_a_quarter_per_purge() {
    let m = i386(64);
    assert!(m.vm().va_pools(), "two CPUs: two vmap nodes, pools on");
    let areas: Vec<_> = (0..8).map(|_| m.get_vm_area(PAGE_SIZE, 0).unwrap()).collect();
    let barrier = m.get_vm_area(PAGE_SIZE, 0).unwrap();
    for a in &areas {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.free_vm_area(a.as_ptr()) };
    }
    assert_eq!(m.vm().pooled_areas(), 0, "VM-8: lazy until purged");
    m.vm_unmap_aliases();
    assert_eq!(m.vm().pooled_areas(), 8);
    assert_eq!(m.vmallocinfo().lines().count(), 1, "pooled ranges are not listed");
    let a = m.get_vm_area(PAGE_SIZE, 0).unwrap();
    assert_eq!(a, areas[7], "most recently pooled first (list_add)");
    assert_eq!(m.vm().stats().pool_hits.load(SEQ), 1);
    let b = m.get_vm_area(2 * PAGE_SIZE, 0).unwrap();
    assert!(b > barrier, "another size comes from the tree, past the pooled ranges");
    // Each purge decays ~25 % of a list (none of a list shorter than four).
    for want in [6, 5, 4, 3, 3] {
        m.vm_unmap_aliases();
        assert_eq!(m.vm().pooled_areas(), want);
        m.vm().check();
    }
    // The shrinker empties it.
    m.vm_shrink(0);
    assert_eq!(m.vm().pooled_areas(), 0);
    m.vm().check();
    // Off: purged ranges go to the tree (VM-3's lowest fit).
    m.vm().set_va_pools(false);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.free_vm_area(a.as_ptr()) };
    m.vm_unmap_aliases();
    assert_eq!(m.vm().pooled_areas(), 0);
    assert_eq!(m.get_vm_area(PAGE_SIZE, 0).unwrap(), areas[0], "lowest hole");
    m.vm().check();
}

#[test]
fn address_space_exhaustion_empties_the_va_pool_into_the_tree() {
    let m = i386(64);
    // No threshold purge while freeing: one purge below pools everything.
    m.vm().set_lazy_max_pages(usize::MAX);
    let mut areas = Vec::new();
    while let Ok(a) = m.get_vm_area(PAGE_SIZE, 0) {
        areas.push(a);
    }
    assert!(areas.len() > 16_000, "128 MiB of 2-page ranges: {}", areas.len());
    for a in &areas {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.free_vm_area(a.as_ptr()) };
    }
    m.vm_unmap_aliases();
    assert_eq!(m.vm().pooled_areas(), areas.len());
    assert!(m.vm().largest_free_bytes() < 4 * PAGE_SIZE);
    // Only the pooled ranges, merged back in the tree, can serve 64 MiB.
    let big = m.get_vm_area(64 << 20, 0).expect("pool decayed fully on exhaustion");
    assert_eq!(m.vm().pooled_areas(), 0);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.free_vm_area(big.as_ptr()) };
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes());
    m.vm().check();
}

#[test]
fn fresh_areas_get_physically_contiguous_frames_when_free() {
    let m = i386(64);
    for pages in [2, 5, 8, 32] {
        let p = m.vmalloc(pages * PAGE_SIZE).unwrap();
        let f = pfns(&m, p, pages);
        assert!(f.windows(2).all(|w| w[1] == w[0] + 1), "{pages} pages: {f:?}");
    }
}

/// Run in a child process by [`a_purged_area_faults`]: touches a 2-page area after a `vfree`
/// that purged it at once (threshold 0), or with `live`, before.
#[test]
#[ignore = "helper run in a child process"]
fn purged_area_child() {
    let Ok(mode) = std::env::var("KMEM_PURGED_CHILD") else { return };
    let m = i386(32);
    m.vm().set_lazy_max_pages(0);
    let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
    write(p, 0, 1);
    if mode != "live" {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
    }
    write(p, PAGE_SIZE, 2);
    println!("child survived");
}

#[test]
fn a_purged_area_faults() {
    let run = |mode: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "vmalloc_reuse::purged_area_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("KMEM_PURGED_CHILD", mode)
            .output()
            .unwrap()
    };
    let ok = run("live");
    assert!(ok.status.success(), "a live area is accessible: {ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("child survived"));
    let bad = run("purged");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(bad.status.signal(), Some(11), "SIGSEGV once unmapped: {bad:?}");
}

/// With `init_on_alloc` or `init_on_free` the kernel's page allocator hands out zeroed pages,
/// so vmalloc memory comes back zeroed: from the frame cache as from fresh pages; and
/// `vrealloc` zeroes the tail it gives up (either knob) and the bytes it takes back within the
/// pages (`init_on_alloc`).
#[test]
fn init_on_alloc_or_free_zeroes_reused_and_fresh_vmalloc_memory() {
    for (on_alloc, on_free) in [(true, false), (false, true)] {
        let m = builder(kmem::Profile::X86_64, 64).init_on_alloc(on_alloc).init_on_free(on_free).build().unwrap();
        let what = format!("init_on_alloc={on_alloc} init_on_free={on_free}");
        let fill = |p: NonNull<u8>, n: usize| (0..n).for_each(|i| write(p, i, 0xa5));
        let zero = |p: NonNull<u8>, from: usize, to: usize| (from..to).all(|i| read(p, i) == 0);
        // The frame cache.
        let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
        fill(p, 2 * PAGE_SIZE);
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
        let q = m.vmalloc(2 * PAGE_SIZE).unwrap();
        assert_eq!(q, p, "{what}: served by the frame cache");
        assert!(zero(q, 0, 2 * PAGE_SIZE), "{what}: cached frames come back zeroed");
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(q.as_ptr()) };
        // Fresh frames: the frame just freed comes straight back from the per-CPU list.
        m.vm().set_cache_max_pages(0);
        m.vm_reclaim_and_purge();
        let p = m.vmalloc(PAGE_SIZE).unwrap();
        fill(p, PAGE_SIZE);
        let pfn = m.vmalloc_to_pfn(p.as_ptr());
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
        let q = m.vmalloc(PAGE_SIZE).unwrap();
        assert_eq!(m.vmalloc_to_pfn(q.as_ptr()), pfn, "{what}: the same frame again");
        assert!(zero(q, 0, PAGE_SIZE), "{what}: fresh frames come zeroed");
        // vrealloc in place.
        fill(q, PAGE_SIZE);
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        assert_eq!(unsafe { m.vrealloc(q.as_ptr(), 10, GFP_KERNEL) }.unwrap(), Some(q));
        assert!(zero(q, 10, PAGE_SIZE), "{what}: the tail given up is zeroed");
        fill(q, PAGE_SIZE);
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        assert_eq!(unsafe { m.vrealloc(q.as_ptr(), 100, GFP_KERNEL) }.unwrap(), Some(q));
        assert_eq!(zero(q, 10, 100), on_alloc, "{what}: the bytes taken back are zeroed with init_on_alloc");
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(q.as_ptr()) };
        m.vm().check();
    }
}

/// VM-8: vmalloc's node chunks (its metadata besides each area's pfn array) are never freed,
/// but every node goes back to the unused list when its range leaves the trees (merged into a
/// free neighbour, handed out whole) or is reused in place (VA pool, frame cache), and unused
/// nodes are taken before a chunk is added. A long churn of a steady working set keeps the
/// chunk count near its peak instead of growing with the number of calls (50 000 areas after
/// the warm-up would need some 250 more chunks if their nodes were kept), with the VA pool
/// (purged ranges reused by size) and without it (purged ranges merged into the free tree).
#[test]
fn vmalloc_node_chunks_stay_bounded_under_churn() {
    for pools in [true, false] {
        let m = builder(kmem::Profile::I386, 64).build().unwrap();
        m.vm().set_va_pools(pools);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut below = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut round = || {
            let mut live: Vec<NonNull<u8>> =
                (0..2000).map(|_| m.vmalloc((1 + below(4)) * PAGE_SIZE).unwrap()).collect();
            while !live.is_empty() {
                let p = live.swap_remove(below(live.len()));
                // SAFETY: The test's own area, unused afterwards.
                unsafe { m.vfree(p.as_ptr()) };
            }
        };
        for _ in 0..5 {
            round();
        }
        let (warm, purges) = (m.vm().node_chunks(), m.vm().stats().purges.load(SEQ));
        for _ in 0..25 {
            round();
        }
        let after = m.vm().node_chunks();
        assert!(m.vm().stats().purges.load(SEQ) >= purges + 5, "the churn went through lazy purges");
        assert!(after <= warm + warm / 2, "VA pool {pools}: node chunks grew from {warm} to {after}");
        // Every node is unused or in exactly one tree (`nodes lost` otherwise).
        m.vm().check();
    }
}

/// A frame freed behind its area's back (`__free_page(vmalloc_to_page(p))`, a misuse) keeps the
/// area out of the frame cache: its `vfree` goes the usual way and reports the double free of
/// that frame, as the kernel's `vfree` does, and the next vmalloc maps only allocated frames.
/// The same for a `vfree` deferred from atomic context and completed later. (The area was
/// cached before, silently, and the next vmalloc mapped a page the buddy lists also held: two
/// owners for one frame.)
#[test]
fn an_area_whose_frame_was_freed_behind_its_back_is_not_cached() {
    for deferred in [false, true] {
        let m = i386_nopcp(64);
        // Warm up: the first vmalloc makes kmem's own structures (its page array's kmalloc slab).
        let w = m.vmalloc(PAGE_SIZE).unwrap();
        // SAFETY: The test's own area, unused afterwards.
        unsafe { m.vfree(w.as_ptr()) };
        m.vm_reclaim_and_purge();
        let start_free = m.total_free();
        let p = m.vmalloc(PAGE_SIZE).unwrap();
        let page = m.vmalloc_to_page(p.as_ptr()).expect("mapped");
        // SAFETY: The misuse under test: the area's own frame, freed while the area maps it.
        unsafe { m.free_pages(page, 0) };
        if deferred {
            let _irq = atomic_section();
            // SAFETY: The test's own area, unused afterwards.
            unsafe { m.vfree(p.as_ptr()) };
        } else {
            // SAFETY: As above.
            unsafe { m.vfree(p.as_ptr()) };
        }
        m.flush_deferred_vfree();
        assert_eq!(m.vm().cached_areas(), 0, "deferred {deferred}: not cached");
        assert_eq!(count_log(&m, "double free"), 1, "{:?}", log_lines(&m));
        let q = m.vmalloc(PAGE_SIZE).unwrap();
        let qpage = m.vmalloc_to_page(q.as_ptr()).expect("mapped");
        assert_eq!(qpage.refcount(), 1, "a frame of its own, allocated");
        assert!(qpage.is_allocated());
        // SAFETY: As above.
        unsafe { m.vfree(q.as_ptr()) };
        m.vm_reclaim_and_purge();
        m.drain_local_pages();
        assert_eq!(m.total_free(), start_free, "deferred {deferred}: nothing lost");
        check(&m);
    }
}
