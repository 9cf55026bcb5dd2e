//! `vm_map_ram`/`vm_unmap_ram` (SEMANTICS §5.4; Linux 6.6–6.12 `mm/vmalloc.c`): small counts
//! from per-CPU vmap blocks (each request rounded up to a power of two of pages, at the block's
//! free offset; freed pages are dirty until the block goes), larger ones in an area of their
//! own without a guard page; the pages stay the caller's (VM-9); `vmallocinfo` shows
//! `vm_map_ram` lines (VM-11); misuse is reported and ignored.
//!
//! Block sizes: `VMAP_BBMAP_BITS` = `VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) / 16` clamped
//! to `2 * VMAP_MAX_ALLOC ..= 1024`; an i386 machine with 64 CPUs has 64-page blocks
//! (`VMAP_MAX_ALLOC` = 32), an x86_64 one 1024-page blocks (`VMAP_MAX_ALLOC` = 64).

use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;

use kmem::context::atomic_section;
use kmem::gfp::*;
use kmem::{Machine, PAGE_SIZE, Page, Profile};

use crate::*;

/// i386 with 64 CPUs: 64-page vmap blocks, `VMAP_MAX_ALLOC` 32.
fn i386_small_blocks(vmalloc_mib: u64) -> Machine {
    builder(Profile::I386, 64).cpus(64).pcp(false).vmalloc_bytes(vmalloc_mib << 20).build().expect("build i386 machine")
}

fn read(p: NonNull<u8>, offset: usize) -> u8 {
    // SAFETY: Callers pass addresses inside live mappings or direct-map pages of the test.
    unsafe { p.as_ptr().add(offset).read_volatile() }
}

fn write(p: NonNull<u8>, offset: usize, value: u8) {
    // SAFETY: As in `read`.
    unsafe { p.as_ptr().add(offset).write_volatile(value) }
}

fn alloc(m: &Machine, n: usize) -> Vec<&Page> {
    (0..n).map(|_| m.alloc_pages(GFP_KERNEL, 0).expect("page")).collect()
}

fn free(m: &Machine, pages: Vec<&Page>) {
    for page in pages {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
}

/// `vm_unmap_ram` of the test's own mapping (or of a bad one: refused).
#[track_caller]
fn unmap(m: &Machine, p: NonNull<u8>, count: usize) {
    // SAFETY: The test's own mapping (or misuse, which kmem refuses), unused afterwards.
    unsafe { m.vm_unmap_ram(p.as_ptr(), count) };
}

/// Bytes written through the mapping are the pages' bytes (`page_address` of each), and each
/// mapped page is `vmalloc_to_page` of its address (VM-10).
fn check_aliasing(m: &Machine, v: NonNull<u8>, pages: &[&Page], tag: u8) {
    for (i, page) in pages.iter().enumerate() {
        write(v, i * PAGE_SIZE + 11, tag ^ i as u8);
        write(v, i * PAGE_SIZE + PAGE_SIZE - 1, tag.wrapping_add(i as u8));
        let direct = m.page_address(page).expect("lowmem page");
        assert_eq!(read(direct, 11), tag ^ i as u8, "page {i}: the mapping writes the page");
        assert_eq!(read(direct, PAGE_SIZE - 1), tag.wrapping_add(i as u8));
        let at = v.as_ptr().wrapping_add(i * PAGE_SIZE);
        assert_eq!(m.vmalloc_to_page(at).map(|p| pfn(m, p)), Some(pfn(m, page)), "VM-10 page {i}");
    }
}

/// meminfo `VmallocUsed` in kB.
fn vmalloc_used_kb(m: &Machine) -> usize {
    let text = m.meminfo();
    let line = text.lines().find(|l| l.starts_with("VmallocUsed:")).expect("VmallocUsed line");
    line["VmallocUsed:".len()..].trim().trim_end_matches(" kB").trim().parse().expect("a number")
}

fn ram_lines(m: &Machine) -> Vec<String> {
    m.vmallocinfo().lines().filter(|l| l.ends_with(" vm_map_ram")).map(str::to_owned).collect()
}

#[test]
fn block_constants_follow_the_kernel() {
    let m = i386_small_blocks(32);
    assert_eq!((m.vm().vmap_max_alloc(), m.vm().vmap_bbmap_bits()), (32, 64));
    let m = builder(Profile::I386, 64).build().unwrap();
    // 128 MiB / 4 KiB / 2 CPUs / 16.
    assert_eq!((m.vm().vmap_max_alloc(), m.vm().vmap_bbmap_bits()), (32, 1024));
    let m = x86_64_nopcp(64);
    assert_eq!((m.vm().vmap_max_alloc(), m.vm().vmap_bbmap_bits()), (64, 1024));
}

/// Small requests come from one block aligned to its size, each taking the next power of two
/// of pages at the block's free offset; the rounding pages map nothing; the pages are the
/// caller's and keep their bytes after the unmap (VM-9); the block shows as one `vm_map_ram`
/// line of the block's size (VM-11) and is not `VmallocUsed` (VM-13).
#[test]
fn small_requests_are_carved_from_a_per_cpu_block() {
    let m = x86_64_nopcp(64);
    let pages = alloc(&m, 8);
    let a = m.vm_map_ram(&pages[..3], -1).unwrap();
    let b = m.vm_map_ram(&pages[3..4], 0).unwrap();
    let c = m.vm_map_ram(&pages[4..8], -1).unwrap();
    let block = 1024 * PAGE_SIZE;
    let base = a.as_ptr() as usize;
    assert_eq!(base % block, 0, "the block is aligned to its size");
    assert_eq!(b.as_ptr() as usize, base + 4 * PAGE_SIZE, "3 pages take 4");
    assert_eq!(c.as_ptr() as usize, base + 5 * PAGE_SIZE, "free offset: not aligned to the order");
    assert!(m.vmalloc_to_page(a.as_ptr().wrapping_add(3 * PAGE_SIZE)).is_none(), "rounding page");
    check_aliasing(&m, a, &pages[..3], 0x10);
    check_aliasing(&m, b, &pages[3..4], 0x20);
    check_aliasing(&m, c, &pages[4..8], 0x30);
    assert_eq!(m.vm().nr_vmap_blocks(), 1);
    assert_eq!(ram_lines(&m), [format!("0x{base:016x}-0x{:016x} {:>7} vm_map_ram", base + block, block)]);
    assert_eq!(vmalloc_used_kb(&m), 0, "VM-13: not vmalloc pages");
    check(&m);
    unmap(&m, b, 1);
    assert!(m.vmalloc_to_page(b.as_ptr()).is_none(), "unmapped");
    // Freed pages are dirty: the next request goes after `c`, not into `b`'s page.
    let d = m.vm_map_ram(&pages[3..4], -1).unwrap();
    assert_eq!(d.as_ptr() as usize, base + 9 * PAGE_SIZE);
    for (p, n) in [(a, 3), (c, 4), (d, 1)] {
        unmap(&m, p, n);
    }
    assert_eq!(count_log(&m, "WARNING"), 0, "{:?}", log_lines(&m));
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page.refcount(), 1, "VM-9: page {i} still the caller's");
    }
    assert_eq!(read(m.page_address(pages[0]).unwrap(), 11), 0x10, "contents survive the unmap");
    check(&m);
    free(&m, pages);
}

/// More than `VMAP_MAX_ALLOC` pages: an area of exactly `count` pages (no guard page), page
/// aligned, listed as `vm_map_ram`; after the unmap it is lazily freed (`unpurged vm_area`)
/// until a purge.
#[test]
fn large_requests_get_an_area_of_their_own_without_a_guard_page() {
    let m = i386_small_blocks(32);
    let pages = alloc(&m, 33);
    let v = m.vm_map_ram(&pages, -1).unwrap();
    let start = v.as_ptr() as usize;
    assert_eq!(start % PAGE_SIZE, 0);
    assert_eq!(m.vm().nr_vmap_blocks(), 0, "no block for 33 > VMAP_MAX_ALLOC pages");
    let size = 33 * PAGE_SIZE;
    assert_eq!(ram_lines(&m), [format!("0x{start:016x}-0x{:016x} {size:>7} vm_map_ram", start + size)]);
    check_aliasing(&m, v, &pages, 0x40);
    // No guard: the next area starts right after the last page.
    let next = m.vmalloc(PAGE_SIZE).unwrap();
    assert_eq!(next.as_ptr() as usize, start + size, "no guard page after a vm_map_ram area");
    // `vfree`/`vunmap` do not know it (no vm_struct).
    // SAFETY: Misuse kmem refuses: the mapping stays.
    unsafe { m.vfree(v.as_ptr()) };
    // SAFETY: As above.
    unsafe { m.vunmap(v.as_ptr()) };
    assert_eq!(count_log(&m, "nonexistent vm area"), 2, "{:?}", log_lines(&m));
    assert_eq!(read(v, 11), 0x40, "still mapped");
    unmap(&m, v, 33);
    assert!(m.vmalloc_to_pfn(v.as_ptr()).is_none());
    assert!(m.vmallocinfo().contains(&format!("0x{start:016x}-0x{:016x} {size:>7} unpurged vm_area", start + size)));
    m.vm_unmap_aliases();
    assert!(ram_lines(&m).is_empty() && !m.vmallocinfo().contains("unpurged"), "{}", m.vmallocinfo());
    assert!(pages.iter().all(|p| p.refcount() == 1), "VM-9");
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(next.as_ptr()) };
    check(&m);
    free(&m, pages);
}

/// A block whose every page was handed out and unmapped again goes at once (`vb_free` →
/// `free_vmap_block`): it is lazily freed, its map freed.
#[test]
fn a_wholly_dirty_block_is_given_back() {
    let m = i386_small_blocks(32);
    let pages = alloc(&m, 32);
    let sizes = [32, 16, 8, 5, 1, 1, 1];
    let maps: Vec<(NonNull<u8>, usize)> = sizes.iter().map(|&n| (m.vm_map_ram(&pages[..n], -1).unwrap(), n)).collect();
    let base = maps[0].0.as_ptr() as usize;
    let offsets: Vec<usize> = maps.iter().map(|(p, _)| (p.as_ptr() as usize - base) / PAGE_SIZE).collect();
    // 5 pages take 8: 32+16+8+8 = 64; the three single pages need a second block.
    assert_eq!(offsets[..4], [0, 32, 48, 56]);
    assert_eq!(m.vm().nr_vmap_blocks(), 2);
    assert_eq!(offsets[4..], [offsets[4], offsets[4] + 1, offsets[4] + 2]);
    check(&m);
    for &(p, n) in &maps[..4] {
        unmap(&m, p, n);
    }
    assert_eq!(m.vm().nr_vmap_blocks(), 1, "the full block is gone");
    assert_eq!(m.vm().stats().vb_frees.load(Relaxed), 1);
    let size = 64 * PAGE_SIZE;
    let lazy = format!("0x{base:016x}-0x{:016x} {size:>7} unpurged vm_area", base + size);
    assert!(m.vmallocinfo().contains(&lazy), "{}", m.vmallocinfo());
    for &(p, n) in &maps[4..] {
        unmap(&m, p, n);
    }
    assert_eq!(m.vm().nr_vmap_blocks(), 1, "3 dirty pages of 64: the block stays");
    check(&m);
    free(&m, pages);
}

/// `vm_unmap_aliases` (Linux ≥ 6.5): a fragmented block (all handed-out pages unmapped) with
/// fewer than `VMAP_PURGE_THRESHOLD` (bits / 8) free pages is given back; other blocks have
/// their dirty range flushed once; reclaim purges fragmented blocks whatever they have left.
#[test]
fn vm_unmap_aliases_purges_fragmented_blocks_and_flushes_dirty_ranges() {
    let m = i386_small_blocks(32);
    let pages = alloc(&m, 32);
    let flushes = || m.vm().stats().vb_flushes.load(Relaxed);
    // Block A: 32 + 16 + 8 + 4 = 60 pages handed out, 4 free (< 64 / 8), then all unmapped.
    let a: Vec<(NonNull<u8>, usize)> =
        [32, 16, 8, 4].iter().map(|&n| (m.vm_map_ram(&pages[..n], -1).unwrap(), n)).collect();
    // Block B: the next request does not fit A's 4 pages; 8 live + 16 dirty, 40 free.
    let b_live = m.vm_map_ram(&pages[..8], -1).unwrap();
    let b_dirty = m.vm_map_ram(&pages[..16], -1).unwrap();
    assert_eq!(m.vm().nr_vmap_blocks(), 2);
    for &(p, n) in &a {
        unmap(&m, p, n);
    }
    unmap(&m, b_dirty, 16);
    assert_eq!(m.vm().nr_vmap_blocks(), 2, "a fragmented block waits for a purge");
    m.vm_unmap_aliases();
    assert_eq!(m.vm().nr_vmap_blocks(), 1, "block A purged");
    assert_eq!(flushes(), 1, "block B's dirty range flushed");
    m.vm_unmap_aliases();
    assert_eq!(flushes(), 1, "nothing new to flush");
    assert_eq!(read(m.page_address(pages[0]).unwrap(), 0), read(b_live, 0), "B's live mapping untouched");
    // B: 40 free pages are not few enough for `vm_unmap_aliases`, but reclaim takes it.
    unmap(&m, b_live, 8);
    m.vm_unmap_aliases();
    assert_eq!(m.vm().nr_vmap_blocks(), 1, "40 free pages: kept for reuse");
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().nr_vmap_blocks(), 0, "forced purge of fragmented blocks");
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes(), "every range came back");
    check(&m);
    free(&m, pages);
}

/// Many blocks, their mappings unmapped in a scrambled order: blocks leave the flush list and
/// their queue from anywhere in them (head, middle, tail: the lists are doubly linked, O(1)),
/// `vm_unmap_aliases` in between empties the flush list, and one forced purge gives back every
/// fragmented block, many of them in one pass over the queues. The invariants (list links
/// included) hold throughout.
#[test]
fn blocks_leave_their_lists_in_any_order() {
    let m = i386_small_blocks(64);
    let pages = alloc(&m, 32);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut maps: Vec<(NonNull<u8>, usize)> = (0..400)
        .map(|_| {
            let n = 1 + (next() % 32) as usize;
            let v = m.vm_map_ram(&pages[..n], -1).expect("room for 400 mappings");
            write(v, (n - 1) * PAGE_SIZE, n as u8);
            (v, n)
        })
        .collect();
    let blocks = m.vm().nr_vmap_blocks();
    assert!(blocks >= 100, "{blocks} blocks");
    check(&m);
    // Scramble: unmap in a random order, keeping a quarter mapped for the forced purge.
    for i in (1..maps.len()).rev() {
        maps.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let keep = maps.split_off(300);
    for (j, &(v, n)) in maps.iter().enumerate() {
        unmap(&m, v, n);
        if j % 97 == 0 {
            m.vm_unmap_aliases();
            check(&m);
        }
    }
    check(&m);
    for &(v, n) in &keep {
        assert_eq!(read(v, 0), read(m.page_address(pages[0]).unwrap(), 0), "a kept mapping still shows its pages");
        unmap(&m, v, n);
    }
    check(&m);
    assert!(m.vm().nr_vmap_blocks() > 1, "fragmented blocks wait for a purge");
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().nr_vmap_blocks(), 0, "forced purge of every fragmented block");
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes(), "every range came back");
    assert_eq!(count_log(&m, "WARNING"), 0, "{:?}", log_lines(&m));
    check(&m);
    free(&m, pages);
}

/// Misuse of `vm_unmap_ram` is reported in the kernel's words and ignored: the mappings stay
/// intact and can still be unmapped properly afterwards.
#[test]
fn vm_unmap_ram_misuse_is_reported_and_ignored() {
    let m = i386_small_blocks(32);
    let pages = alloc(&m, 43);
    let small = m.vm_map_ram(&pages[..3], -1).unwrap();
    let large = m.vm_map_ram(&pages[3..], -1).unwrap();
    let area = m.vmalloc(2 * PAGE_SIZE).unwrap();
    write(small, 0, 0x5a);
    write(large, 0, 0xa5);
    write(area, 0, 0x77);
    let bugs = |m: &Machine| count_log(m, "kernel BUG at mm/vmalloc.c");
    // The `BUG_ON`s of `vm_unmap_ram`.
    // SAFETY: Misuse kmem refuses.
    unsafe { m.vm_unmap_ram(std::ptr::null(), 1) };
    assert_eq!(count_log(&m, "vm_unmap_ram: BUG_ON(!addr)"), 1, "{:?}", log_lines(&m));
    // SAFETY: As above.
    unsafe { m.vm_unmap_ram(0x1000 as *const u8, 1) };
    assert_eq!(count_log(&m, "BUG_ON(addr < VMALLOC_START)"), 1);
    // SAFETY: As above.
    unsafe { m.vm_unmap_ram(small.as_ptr().wrapping_add(1), 3) };
    assert_eq!(count_log(&m, "BUG_ON(!PAGE_ALIGNED(addr))"), 1);
    // A small count at an address in no block: `vb_free`'s `BUG_ON(!vb)`.
    unmap(&m, area, 1);
    assert_eq!(count_log(&m, "vb_free: BUG_ON(!vb)"), 1, "{:?}", log_lines(&m));
    assert_eq!(bugs(&m), 4);
    // A count that is not the mapping's, small and large.
    unmap(&m, small, 2);
    unmap(&m, small, 4);
    unmap(&m, large, 39);
    unmap(&m, large, 41);
    assert_eq!(count_log(&m, "cannot unmap partial"), 4, "{:?}", log_lines(&m));
    // A large count where no vm_map_ram area starts: a vmalloc area, an interior address.
    unmap(&m, area, 40);
    unmap(&m, large.map_addr(|a| a.checked_add(PAGE_SIZE).unwrap()), 39);
    assert_eq!(count_log(&m, "no vm_map_ram area of"), 2, "{:?}", log_lines(&m));
    assert_eq!(count_log(&m, "WARN_ON_ONCE(!va)"), 1, "once per machine");
    // An interior page of a small mapping starts none.
    unmap(&m, small.map_addr(|a| a.checked_add(PAGE_SIZE).unwrap()), 2);
    assert_eq!(count_log(&m, "no vm_map_ram mapping starts at"), 1);
    // Nothing was touched.
    assert_eq!((read(small, 0), read(large, 0), read(area, 0)), (0x5a, 0xa5, 0x77));
    assert!(m.vmalloc_to_page(small.as_ptr().wrapping_add(2 * PAGE_SIZE)).is_some());
    check(&m);
    // The real unmaps work, and a second one is refused.
    unmap(&m, small, 3);
    unmap(&m, large, 40);
    unmap(&m, small, 3);
    unmap(&m, large, 40);
    assert_eq!(count_log(&m, "already unmapped"), 2, "the interior page, then the second unmap");
    assert_eq!(count_log(&m, "no vm_map_ram area of"), 3);
    assert_eq!(bugs(&m), 4);
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(area.as_ptr()) };
    check(&m);
    free(&m, pages);
}

/// `vm_map_ram` failures: no pages (`vb_alloc`'s `WARN_ON(size == 0)`), a page of another
/// machine (nothing reserved); in atomic context it is reported as a sleeping call.
#[test]
fn vm_map_ram_refuses_bad_input() {
    let m = x86_64_nopcp(64);
    let other = x86_64_nopcp(32);
    assert!(m.vm_map_ram(&[], -1).is_err());
    assert_eq!(count_log(&m, "WARN_ON(size == 0)"), 1, "{:?}", log_lines(&m));
    let foreign = other.alloc_pages(GFP_KERNEL, 0).unwrap();
    let mine = m.alloc_pages(GFP_KERNEL, 0).unwrap();
    assert!(m.vm_map_ram(&[mine, foreign], -1).is_err());
    assert!(m.vm_map_ram(&vec![foreign; 70], -1).is_err());
    assert!(m.vmallocinfo().is_empty(), "nothing reserved: {}", m.vmallocinfo());
    let v = {
        let _atomic = atomic_section();
        m.vm_map_ram(&[mine], -1).unwrap()
    };
    assert!(count_log(&m, "sleeping function called from invalid context") >= 1, "{:?}", log_lines(&m));
    assert_eq!(m.vmalloc_to_page(v.as_ptr()).map(|p| pfn(&m, p)), Some(pfn(&m, mine)));
    unmap(&m, v, 1);
    check(&m);
    // SAFETY: The tests' own pages, unused afterwards.
    unsafe {
        m.free_pages(mine, 0);
        other.free_pages(foreign, 0);
    }
}

/// Fills the vmalloc range with 32-page `vm_map_ram`s until one fails; returns them.
fn fill(m: &Machine, pages: &[&Page]) -> Vec<NonNull<u8>> {
    let mut maps = Vec::new();
    while let Ok(p) = m.vm_map_ram(&pages[..32], -1) {
        maps.push(p);
        assert!(maps.len() < 100_000, "the range must run out");
    }
    maps
}

/// VM-8, VM-13: filling the address space with `vm_map_ram` (blocks, then a standalone area
/// that no longer fits) fails with the kernel's `Address range restricted` report; after
/// unmapping everything and a purge nothing is left: no `vmallocinfo` lines, every block map
/// (a kmalloc object) freed, the same free pages as after the first round (the area trees'
/// node chunks stay at their peak by design), `VmallocUsed` 0 throughout, the whole range free.
#[test]
fn exhaustion_leaks_nothing() {
    let m = i386_small_blocks(4);
    let pages = alloc(&m, 48);
    let maps_cache = m.kmalloc_cache(512, GFP_KERNEL).expect("kmalloc-512");
    let in_use = m.cache_info(maps_cache).in_use();
    let mut free_after_first = None;
    for round in 0..2 {
        let maps = fill(&m, &pages);
        assert!(maps.len() >= 20, "4 MiB of 256 KiB blocks: {}", maps.len());
        assert!(count_log(&m, "Address range restricted") > round, "{:?}", log_lines(&m));
        assert!(m.vm_map_ram(&pages, -1).is_err(), "no room for a standalone area either");
        assert_eq!(m.cache_info(maps_cache).in_use(), in_use + maps.len() / 2, "one map per block");
        assert_eq!(vmalloc_used_kb(&m), 0, "VM-13: not vmalloc pages");
        check(&m);
        for p in maps {
            unmap(&m, p, 32);
        }
        m.vm_reclaim_and_purge();
        assert_eq!(m.vm().nr_vmap_blocks(), 0);
        assert!(m.vmallocinfo().is_empty(), "{}", m.vmallocinfo());
        assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes());
        assert_eq!(m.cache_info(maps_cache).in_use(), in_use, "every block map freed");
        m.kmem_cache_shrink(maps_cache);
        m.drain_local_pages();
        let free = m.total_free();
        assert_eq!(*free_after_first.get_or_insert(free), free, "round {round}: every page came back");
    }
    assert_eq!(count_log(&m, "WARNING"), 0, "{:?}", log_lines(&m));
    check(&m);
    free(&m, pages);
}

/// Two threads map and unmap concurrently (blocks of each CPU's queue, standalone areas, frees
/// that dirty another thread's block); every mapping shows its own pages, and afterwards the
/// invariants hold and a purge gives every range back.
#[test]
fn two_threads_map_and_unmap_concurrently() {
    let m = i386_small_blocks(32);
    let pages = alloc(&m, 80);
    std::thread::scope(|s| {
        for t in 0..2usize {
            let (m, pages) = (&m, &pages);
            s.spawn(move || {
                let mut held: Vec<(NonNull<u8>, usize, usize)> = Vec::new();
                for i in 0..3000usize {
                    let count = 1 + (i * 7 + t * 13) % 40;
                    let first = (t * 40 + i) % 40 + t * 40;
                    let set: Vec<&Page> = (0..count).map(|j| pages[t * 40 + (first + j) % 40]).collect();
                    let v = m.vm_map_ram(&set, -1).expect("room for a few mappings");
                    for (j, page) in set.iter().enumerate() {
                        let at = v.as_ptr().wrapping_add(j * PAGE_SIZE);
                        assert_eq!(m.vmalloc_to_page(at).map(|p| pfn(m, p)), Some(pfn(m, page)));
                    }
                    held.push((v, count, first));
                    if held.len() > 3 {
                        let (v, count, _) = held.remove(i % 3);
                        unmap(m, v, count);
                    }
                }
                for (v, count, _) in held {
                    unmap(m, v, count);
                }
            });
        }
    });
    assert_eq!(count_log(&m, "WARNING"), 0, "{:?}", log_lines(&m));
    check(&m);
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().nr_vmap_blocks(), 0);
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes());
    free(&m, pages);
}

/// Two threads map, write through and unmap while a third runs `vm_unmap_aliases` and the
/// forced purge of reclaim in a loop: a block being carved, or holding a live mapping, is never
/// given back under a mapper (every write lands in the thread's own pages, `vmalloc_to_page`
/// answers for every page), and afterwards the invariants hold and every range comes back.
#[test]
fn mapping_races_with_vm_unmap_aliases_and_reclaim() {
    use std::sync::atomic::AtomicBool;
    let m = i386_small_blocks(32);
    let pages = alloc(&m, 64);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let purger = s.spawn(|| {
            let mut rounds = 0usize;
            while !done.load(Relaxed) || rounds < 10 {
                m.vm_unmap_aliases();
                if rounds.is_multiple_of(4) {
                    m.vm_reclaim_and_purge();
                }
                rounds += 1;
            }
            rounds
        });
        let mappers: Vec<_> = (0..2usize)
            .map(|t| {
                let (m, pages) = (&m, &pages);
                s.spawn(move || {
                    let own = &pages[t * 32..t * 32 + 32];
                    let mut held: Vec<(NonNull<u8>, usize)> = Vec::new();
                    for i in 0..2000usize {
                        let count = 1 + (i * 11 + t * 5) % 32;
                        let tag = (i as u8) ^ (t as u8 * 0x80);
                        let v = m.vm_map_ram(&own[..count], -1).expect("room for a few mappings");
                        for (j, &page) in own[..count].iter().enumerate() {
                            write(v, j * PAGE_SIZE + 7 + t, tag);
                            let direct = m.page_address(page).expect("lowmem page");
                            assert_eq!(read(direct, 7 + t), tag, "thread {t}: page {j} is the thread's own");
                            let at = v.as_ptr().wrapping_add(j * PAGE_SIZE);
                            assert_eq!(m.vmalloc_to_page(at).map(|p| pfn(m, p)), Some(pfn(m, page)));
                        }
                        held.push((v, count));
                        if held.len() > 4 {
                            let (v, count) = held.remove(i % 4);
                            let last = (count - 1) * PAGE_SIZE + 7 + t;
                            let direct = m.page_address(own[count - 1]).expect("lowmem page");
                            assert_eq!(read(v, last), read(direct, 7 + t), "thread {t}: still its own page");
                            unmap(m, v, count);
                        }
                    }
                    for (v, count) in held {
                        unmap(m, v, count);
                    }
                })
            })
            .collect();
        for h in mappers {
            h.join().expect("mapper");
        }
        done.store(true, Relaxed);
        assert!(purger.join().expect("purger") >= 10);
    });
    assert_eq!(count_log(&m, "WARNING"), 0, "{:?}", log_lines(&m));
    assert_eq!(count_log(&m, "kernel BUG"), 0, "{:?}", log_lines(&m));
    check(&m);
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().nr_vmap_blocks(), 0);
    assert_eq!(m.vm().largest_free_bytes(), m.vm().total_bytes());
    free(&m, pages);
}
