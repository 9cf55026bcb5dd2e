//! `vread_iter` (SEMANTICS §5.4: "holes, guard pages and ioremap areas read as zeros"; the
//! kernel's `vread_iter`, `aligned_vread_iter`, `vmap_ram_vread_iter`): the bytes of vmalloc,
//! `vmap` and `vm_map_ram` mappings are read through their frames; everything else in the range
//! reads as zeros; the return value is the bytes read, zeros included, after the overflow
//! clamp. Every buffer is pre-filled with [`JUNK`] so that a byte left unwritten is seen.

use std::ptr::NonNull;

use kmem::context::atomic_section;
use kmem::gfp::*;
use kmem::vmalloc::{VM_IOREMAP, VM_SPARSE};
use kmem::zone::ZoneType;
use kmem::{Machine, PAGE_SIZE, Page, Profile};

use crate::*;

/// What a buffer holds before a read: never a byte any test writes to memory.
const JUNK: u8 = 0x5c;

/// A 64 MiB x86_64 machine whose freed areas go straight to the lazy tree (no frame cache) and
/// stay there until a purge is asked for.
fn machine() -> Machine {
    let m = x86_64_nopcp(64);
    m.vm().set_cache_max_pages(0);
    m.vm().set_lazy_max_pages(usize::MAX);
    m
}

/// `vread_iter` of `len` bytes at `addr` into a [`JUNK`]-filled buffer: (return value, buffer).
fn vread(m: &Machine, addr: usize, len: usize) -> (usize, Vec<u8>) {
    let mut buf = vec![JUNK; len];
    // SAFETY: The tests write their areas through the vmalloc address or raw pointers, never
    // during a read on another thread, and hold no reference into them.
    let n = unsafe { m.vread_iter(&mut buf, addr) };
    (n, buf)
}

/// The byte a test writes at `offset` of an area tagged `tag`: never 0 or [`JUNK`].
fn pattern(tag: u8, offset: usize) -> u8 {
    let b = tag.wrapping_add((offset % 251) as u8);
    if b == 0 || b == JUNK { 1 } else { b }
}

/// Writes [`pattern`] over `len` bytes at `p`.
fn fill(p: NonNull<u8>, len: usize, tag: u8) {
    for i in 0..len {
        // SAFETY: Callers pass their own live, mapped areas (or direct-map pages) of `len` bytes.
        unsafe { p.as_ptr().add(i).write_volatile(pattern(tag, i)) };
    }
}

fn expect_pattern(buf: &[u8], tag: u8, from: usize, what: &str) {
    for (i, &b) in buf.iter().enumerate() {
        assert_eq!(b, pattern(tag, from + i), "{what}: byte {i}");
    }
}

fn expect_zeros(buf: &[u8], what: &str) {
    if let Some(i) = buf.iter().position(|&b| b != 0) {
        panic!("{what}: byte {i} is {:#x}, not zero", buf[i]);
    }
}

fn addr(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize
}

/// `vfree` of the test's own area.
fn vfree(m: &Machine, p: NonNull<u8>) {
    // SAFETY: The test's own area, unused afterwards.
    unsafe { m.vfree(p.as_ptr()) };
}

/// `n` lowmem pages, page `i` filled with [`pattern`] `tag(i)`.
fn filled_pages(m: &Machine, n: usize, tag: impl Fn(usize) -> u8) -> Vec<&Page> {
    (0..n)
        .map(|i| {
            let page = m.alloc_pages(GFP_KERNEL, 0).expect("page");
            fill(m.page_address(page).expect("lowmem"), PAGE_SIZE, tag(i));
            page
        })
        .collect()
}

fn free_pages(m: &Machine, held: Vec<&Page>) {
    for page in held {
        // SAFETY: The test's own pages, unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
}

#[test]
fn a_vmalloc_area_reads_its_bytes() {
    let m = machine();
    let p = m.vmalloc(3 * PAGE_SIZE).unwrap();
    fill(p, 3 * PAGE_SIZE, 7);
    let (n, buf) = vread(&m, addr(p), 3 * PAGE_SIZE);
    assert_eq!(n, 3 * PAGE_SIZE);
    expect_pattern(&buf, 7, 0, "whole area");
    // From the middle of a page, across a page boundary, ending inside the last page.
    let (n, buf) = vread(&m, addr(p) + 100, 2 * PAGE_SIZE);
    assert_eq!(n, 2 * PAGE_SIZE);
    expect_pattern(&buf, 7, 100, "unaligned");
    vfree(&m, p);
    m.vm().check();
}

#[test]
fn a_vmap_of_the_callers_pages_reads_the_pages() {
    let m = machine();
    let held = filled_pages(&m, 3, |i| 20 + i as u8);
    let v = m.vmap(&held, 0).unwrap();
    let (n, buf) = vread(&m, addr(v), 3 * PAGE_SIZE);
    assert_eq!(n, 3 * PAGE_SIZE);
    for (i, chunk) in buf.chunks(PAGE_SIZE).enumerate() {
        expect_pattern(chunk, 20 + i as u8, 0, "vmap page");
    }
    // SAFETY: The test's own mapping, unused afterwards.
    unsafe { m.vunmap(v.as_ptr()) };
    // The pages keep their bytes (VM-9), but the address maps nothing now.
    let (n, buf) = vread(&m, addr(v), 3 * PAGE_SIZE);
    assert_eq!(n, 3 * PAGE_SIZE);
    expect_zeros(&buf, "after vunmap");
    free_pages(&m, held);
    m.vm().check();
}

/// Area, its guard page, a hole (an area freed, then purged: no area at all), the next area:
/// one read; the guard page and the hole are zeros, the areas their bytes.
#[test]
fn guard_pages_and_holes_read_as_zeros() {
    let m = machine();
    let a = m.vmalloc(2 * PAGE_SIZE).unwrap();
    let gone = m.vmalloc(PAGE_SIZE).unwrap();
    let d = m.vmalloc(PAGE_SIZE).unwrap();
    assert_eq!(addr(gone), addr(a) + 3 * PAGE_SIZE, "one guard page between areas");
    assert_eq!(addr(d), addr(gone) + 2 * PAGE_SIZE);
    fill(a, 2 * PAGE_SIZE, 1);
    fill(gone, PAGE_SIZE, 2);
    fill(d, PAGE_SIZE, 3);
    vfree(&m, gone);
    assert!(m.vm_reclaim_and_purge() > 0, "the freed area is purged: a hole");
    let (n, buf) = vread(&m, addr(a), 6 * PAGE_SIZE);
    assert_eq!(n, 6 * PAGE_SIZE, "zeros count as read");
    expect_pattern(&buf[..2 * PAGE_SIZE], 1, 0, "first area");
    expect_zeros(&buf[2 * PAGE_SIZE..3 * PAGE_SIZE], "guard page");
    expect_zeros(&buf[3 * PAGE_SIZE..5 * PAGE_SIZE], "hole");
    expect_pattern(&buf[5 * PAGE_SIZE..], 3, 0, "next area");
    // Starting inside the guard page.
    let (n, buf) = vread(&m, addr(a) + 2 * PAGE_SIZE + 9, 4 * PAGE_SIZE - 9);
    assert_eq!(n, 4 * PAGE_SIZE - 9);
    expect_zeros(&buf[..3 * PAGE_SIZE - 9], "guard page and hole");
    expect_pattern(&buf[3 * PAGE_SIZE - 9..], 3, 0, "next area");
    // After the last area: zeros up to the end of the range, and past it.
    let last = m.vm().end() - PAGE_SIZE;
    let (n, buf) = vread(&m, last, 3 * PAGE_SIZE);
    assert_eq!(n, 3 * PAGE_SIZE);
    expect_zeros(&buf, "past the last area");
    vfree(&m, a);
    vfree(&m, d);
    m.vm().check();
}

/// Below `VMALLOC_START` nothing is checked (the kernel's `vread_iter` walks areas only): the
/// bytes there are a hole up to the first area, which is read as usual.
#[test]
fn a_range_starting_below_vmalloc_start_reads_zeros_up_to_the_first_area() {
    let m = machine();
    let p = m.vmalloc(PAGE_SIZE).unwrap();
    let start = m.vm().start();
    assert_eq!(addr(p), start, "a fresh machine's first area is at VMALLOC_START");
    fill(p, PAGE_SIZE, 40);
    let (n, buf) = vread(&m, start - 2 * PAGE_SIZE - 1, 3 * PAGE_SIZE + 1);
    assert_eq!(n, 3 * PAGE_SIZE + 1);
    expect_zeros(&buf[..2 * PAGE_SIZE + 1], "below VMALLOC_START");
    expect_pattern(&buf[2 * PAGE_SIZE + 1..], 40, 0, "first area");
    // Entirely outside: all zeros, all counted.
    let (n, buf) = vread(&m, 0x1000, 2 * PAGE_SIZE);
    assert_eq!(n, 2 * PAGE_SIZE);
    expect_zeros(&buf, "low addresses");
    vfree(&m, p);
}

/// A vmap block (`vmap_ram_vread_iter`): the pages of live `vm_map_ram` mappings are copied;
/// a freed (dirty) mapping, the padding of a mapping rounded up to a power of two and the pages
/// never handed out are zeros. A standalone `vm_map_ram` area reads like a `vmap`.
#[test]
fn a_vmap_block_copies_only_its_live_mappings() {
    let m = machine();
    let held = filled_pages(&m, 4, |i| 60 + i as u8);
    let one = m.vm_map_ram(&held[..1], -1).unwrap();
    let three = m.vm_map_ram(&held[1..], -1).unwrap();
    assert_eq!(addr(three), addr(one) + PAGE_SIZE, "at the block's free offset");
    // SAFETY: The test's own mapping, unused afterwards.
    unsafe { m.vm_unmap_ram(one.as_ptr(), 1) };
    let (n, buf) = vread(&m, addr(one), 8 * PAGE_SIZE);
    assert_eq!(n, 8 * PAGE_SIZE);
    expect_zeros(&buf[..PAGE_SIZE], "freed (dirty) mapping, its page still holding data");
    for i in 0..3 {
        expect_pattern(&buf[(1 + i) * PAGE_SIZE..(2 + i) * PAGE_SIZE], 61 + i as u8, 0, "live mapping");
    }
    expect_zeros(&buf[4 * PAGE_SIZE..5 * PAGE_SIZE], "padding of the 3-page mapping");
    expect_zeros(&buf[5 * PAGE_SIZE..], "never handed out");
    // From inside the live mapping.
    let (n, buf) = vread(&m, addr(three) + PAGE_SIZE + 3, PAGE_SIZE);
    assert_eq!(n, PAGE_SIZE);
    expect_pattern(&buf[..PAGE_SIZE - 3], 62, 3, "middle of the mapping");
    expect_pattern(&buf[PAGE_SIZE - 3..], 63, 0, "next page");
    // SAFETY: As above.
    unsafe { m.vm_unmap_ram(three.as_ptr(), 3) };

    let big_pages = filled_pages(&m, m.vm().vmap_max_alloc() + 1, |i| i as u8);
    let big = m.vm_map_ram(&big_pages, -1).unwrap();
    let len = big_pages.len() * PAGE_SIZE;
    let (n, buf) = vread(&m, addr(big), len);
    assert_eq!(n, len);
    for (i, chunk) in buf.chunks(PAGE_SIZE).enumerate() {
        expect_pattern(chunk, i as u8, 0, "standalone vm_map_ram area");
    }
    // SAFETY: As above.
    unsafe { m.vm_unmap_ram(big.as_ptr(), big_pages.len()) };
    free_pages(&m, big_pages);
    free_pages(&m, held);
    m.vm().check();
}

/// `VM_IOREMAP` areas read as zeros: `vmap_pfn` of pages full of data, and address space from
/// `get_vm_area(VM_IOREMAP)`; plain `get_vm_area` space maps nothing and reads as zeros too.
#[test]
fn ioremap_areas_read_as_zeros() {
    let m = machine();
    let held = filled_pages(&m, 2, |_| 90);
    let pfns: Vec<usize> = held.iter().map(|p| pfn(&m, p)).collect();
    let io = m.vmap_pfn(&pfns).unwrap();
    assert!(m.find_vm_area(io.as_ptr()).is_some_and(|a| a.flags & VM_IOREMAP != 0));
    assert_eq!(m.vmalloc_to_pfn(io.as_ptr()), Some(pfns[0]), "mapped, yet read as a hole");
    let (n, buf) = vread(&m, addr(io), 2 * PAGE_SIZE);
    assert_eq!(n, 2 * PAGE_SIZE);
    expect_zeros(&buf, "vmap_pfn area");
    for flags in [VM_IOREMAP, 0] {
        let space = m.get_vm_area(2 * PAGE_SIZE, flags).unwrap();
        let (n, buf) = vread(&m, addr(space), 2 * PAGE_SIZE);
        assert_eq!(n, 2 * PAGE_SIZE);
        expect_zeros(&buf, "get_vm_area space");
        // SAFETY: The test's own area, unused afterwards.
        unsafe { m.free_vm_area(space.as_ptr()) };
    }
    // SAFETY: As above.
    unsafe { m.vunmap(io.as_ptr()) };
    free_pages(&m, held);
    m.vm().check();
}

/// `VM_SPARSE` areas are holes too (`vread_iter`: "IOREMAP | SPARSE area is treated as memory
/// hole"), whatever they map: a `vmap` of pages full of data with that flag reads as zeros.
#[test]
fn sparse_areas_read_as_zeros() {
    let m = machine();
    let held = filled_pages(&m, 2, |_| 100);
    let v = m.vmap(&held, VM_SPARSE).unwrap();
    assert!(m.find_vm_area(v.as_ptr()).is_some_and(|a| a.flags & VM_SPARSE != 0));
    let (n, buf) = vread(&m, addr(v), 2 * PAGE_SIZE);
    assert_eq!(n, 2 * PAGE_SIZE);
    expect_zeros(&buf, "VM_SPARSE vmap");
    // SAFETY: The test's own mapping, unused afterwards.
    unsafe { m.vunmap(v.as_ptr()) };
    free_pages(&m, held);
    m.vm().check();
}

/// `addr + count` wrapping: `count` becomes `-addr`; the rest of the buffer is not written.
/// `count == 0` reads nothing and returns 0, wherever it points.
#[test]
fn the_overflow_clamp_and_an_empty_read() {
    let m = machine();
    let p = m.vmalloc(PAGE_SIZE).unwrap();
    fill(p, PAGE_SIZE, 110);
    let at = usize::MAX - 99;
    let (n, buf) = vread(&m, at, PAGE_SIZE);
    assert_eq!(n, 100, "count clamped to -addr");
    expect_zeros(&buf[..100], "up to the end of the address space");
    assert!(buf[100..].iter().all(|&b| b == JUNK), "nothing written past the clamp");
    // The last byte of the address space alone: no clamp (`addr + 1` does not wrap).
    let (n, buf) = vread(&m, usize::MAX, 1);
    assert_eq!((n, buf[0]), (1, 0));
    for at in [addr(p), usize::MAX, 0] {
        let mut empty = [0u8; 0];
        // SAFETY: Nothing is read (count 0).
        assert_eq!(unsafe { m.vread_iter(&mut empty, at) }, 0, "count 0 at {at:#x}");
    }
    vfree(&m, p);
}

/// A freed area is no area: zeros while it waits for the purge (lazy), after the purge, and
/// while the frame cache keeps it mapped with its frames. A `vfree` from atomic context only
/// queues the area, which the kernel still reads until the deferred work frees it.
#[test]
fn a_freed_area_reads_as_zeros() {
    let m = machine();
    let p = m.vmalloc(2 * PAGE_SIZE).unwrap();
    fill(p, 2 * PAGE_SIZE, 120);
    vfree(&m, p);
    assert!(m.vm().lazy_pages() > 0, "lazily freed, not purged");
    let (n, buf) = vread(&m, addr(p), 2 * PAGE_SIZE);
    assert_eq!(n, 2 * PAGE_SIZE);
    expect_zeros(&buf, "lazily freed");
    m.vm_reclaim_and_purge();
    assert_eq!(m.vm().lazy_pages(), 0);
    expect_zeros(&vread(&m, addr(p), 2 * PAGE_SIZE).1, "purged");

    // The frame cache: the freed area stays mapped, its frames keep the bytes.
    m.vm().set_cache_max_pages(usize::MAX);
    let c = m.vmalloc(PAGE_SIZE).unwrap();
    fill(c, PAGE_SIZE, 130);
    vfree(&m, c);
    assert_eq!(m.vm().cached_areas(), 1, "parked in the frame cache");
    expect_zeros(&vread(&m, addr(c), PAGE_SIZE).1, "cached (freed) area");

    // Deferred: still whole until the queue is drained.
    let q = m.vmalloc(PAGE_SIZE).unwrap();
    fill(q, PAGE_SIZE, 140);
    {
        let _atomic = atomic_section();
        // SAFETY: The test's own area, unused afterwards.
        unsafe { m.vfree_atomic(q.as_ptr()) };
    }
    assert_eq!(m.vm().nr_deferred(), 1);
    expect_pattern(&vread(&m, addr(q), PAGE_SIZE).1, 140, 0, "queued by vfree_atomic");
    m.flush_deferred_vfree();
    assert_eq!(m.vm().nr_deferred(), 0);
    expect_zeros(&vread(&m, addr(q), PAGE_SIZE).1, "after the deferred free");
    m.vm().check();
}

/// HighMem frames (i386, 1 GiB) have no direct-map address: they are read through the
/// platform's temporary mapping.
#[test]
fn highmem_backed_vmalloc_reads_its_bytes_on_i386() {
    let m = builder(Profile::I386, 1024).build().expect("build i386 machine");
    let len = 4 * PAGE_SIZE;
    let p = m.vmalloc(len).unwrap();
    for i in 0..4 {
        let page = m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).expect("mapped");
        assert_eq!(zone_of(&m, pfn(&m, page)), ZoneType::HighMem, "page {i} is HighMem");
        assert!(m.page_address(page).is_none(), "no direct-map address");
    }
    fill(p, len, 150);
    let (n, buf) = vread(&m, addr(p) + 17, len - 17 + PAGE_SIZE);
    assert_eq!(n, len - 17 + PAGE_SIZE);
    expect_pattern(&buf[..len - 17], 150, 17, "HighMem area");
    expect_zeros(&buf[len - 17..], "guard page");
    vfree(&m, p);
    m.vm().check();
}

/// One thread frees and reallocates areas (and hands their frames to page allocations that
/// fill them with another byte) while another reads the range: no fault, and every byte read
/// is an area's byte or zero, never a freed frame's next contents.
#[test]
fn reading_while_another_thread_frees() {
    const AREA: u8 = 0xa5;
    const OTHER: u8 = 0x3c;
    let m = x86_64_nopcp(64);
    m.vm().set_cache_max_pages(0);
    m.vm().set_lazy_max_pages(16);
    let first = m.vmalloc(4 * PAGE_SIZE).unwrap();
    let base = addr(first);
    vfree(&m, first);
    let rounds = 300;
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for _ in 0..rounds {
                // Zeroed: a frame's old bytes (`OTHER`) never show through a live area.
                let p = m.vzalloc(4 * PAGE_SIZE).unwrap();
                // SAFETY: The writer's own fresh area of 4 pages.
                unsafe { p.as_ptr().write_bytes(AREA, 4 * PAGE_SIZE) };
                vfree(&m, p);
                let page = m.alloc_pages(GFP_KERNEL, 2).unwrap();
                // SAFETY: The writer's own fresh order-2 lowmem block.
                unsafe { m.page_address(page).unwrap().as_ptr().write_bytes(OTHER, 4 * PAGE_SIZE) };
                // SAFETY: The writer's own block, unused afterwards.
                unsafe { m.free_pages(page, 2) };
            }
        });
        let mut buf = vec![0u8; 16 * PAGE_SIZE];
        while !writer.is_finished() {
            // SAFETY: The writer writes areas through their vmalloc address, and direct-map
            // bytes only of page blocks no live area maps (the read skips freed areas).
            assert_eq!(unsafe { m.vread_iter(&mut buf, base) }, buf.len());
            if let Some(&bad) = buf.iter().find(|&&b| b != 0 && b != AREA) {
                panic!("read {bad:#x}: neither an area's byte nor zero");
            }
        }
        writer.join().unwrap();
    });
    m.vm_reclaim_and_purge();
    m.vm().check();
}
