//! The cases of Linux `lib/test_vmalloc.c` (TST-14, SEMANTICS §8.3), shared by the
//! single-thread tests (`tests/test_vmalloc/main.rs`) and the multi-thread stress variant
//! (`tests/concurrency/vmalloc_stress.rs`, which includes this file with `#[path]`).
//!
//! Each case does what the kernel's function does and returns its verdict the same way: `Ok`
//! for the kernel's `0`, `Err(i)` for `-1`, `i` naming the loop (or, for
//! `align_shift_alloc_test`, the shift) that failed. On top of the kernel's single byte
//! touch, every area is checked for integrity: a pattern is written at both ends of each page
//! through the vmalloc address and read back through the address and through the backing frame
//! (`vmalloc_to_page` + `kmap_local_page`, VM-10); the guard page after the area is unmapped
//! (VM-1); zeroed requests read all zeros over frames earlier areas dirtied (VM-5); aligned
//! requests honour the alignment (VM-4). A broken check panics: it is not a kernel "failure".
//!
//! Case 1024 (`vm_map_ram_test`) maps its bulk-allocated pages with `vm_map_ram` and unmaps
//! them with `vm_unmap_ram`, as the kernel's does: up to `VMAP_MAX_ALLOC` pages from a per-CPU
//! vmap block, more in an area of their own; the pages stay the caller's (VM-9).

use std::collections::HashSet;
use std::ptr::NonNull;

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::{Machine, PAGE_SHIFT, PAGE_SIZE, Page, Profile};

use crate::Rng;

/// `NUMA_NO_NODE`.
const NO_NODE: i32 = -1;
/// Live areas of `long_busy_list_alloc_test` in the kernel.
pub const KERNEL_BUSY_AREAS: usize = 15000;
/// The pointer size, for the arrays the kernel cases keep in vmalloc memory.
const PTR: usize = size_of::<u64>();

/// How far a case runs (the module parameters `test_loop_count` and `nr_pages`, and the size
/// of `long_busy_list_alloc_test`'s busy list).
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// `test_loop_count`.
    pub loops: usize,
    /// `nr_pages` (`fix_size_alloc_test`, `vm_map_ram_test`); the kernel's default is 1.
    pub nr_pages: usize,
    /// Live 1-page areas of `long_busy_list_alloc_test` (15000 in the kernel).
    pub busy: usize,
}

/// One case of the kernel's table: its `run_test_mask` bit, name and whether it is expected
/// to fail (`xfail`, since Linux 6.17).
pub struct Case {
    pub mask: u32,
    pub name: &'static str,
    pub xfail: bool,
    pub run: fn(&Machine, &Params, &mut Rng) -> Result<(), usize>,
}

/// The ported cases, in the kernel's table order.
pub const CASES: [Case; 8] = [
    Case { mask: 1, name: "fix_size_alloc_test", xfail: false, run: fix_size_alloc_test },
    Case { mask: 2, name: "full_fit_alloc_test", xfail: false, run: |m, p, _| full_fit_alloc_test(m, p).map(drop) },
    Case { mask: 4, name: "long_busy_list_alloc_test", xfail: false, run: |m, p, _| long_busy_list_alloc_test(m, p) },
    Case { mask: 8, name: "random_size_alloc_test", xfail: false, run: random_size_alloc_test },
    Case { mask: 16, name: "fix_align_alloc_test", xfail: false, run: |m, p, _| fix_align_alloc_test(m, p) },
    Case { mask: 32, name: "random_size_align_alloc_test", xfail: false, run: random_size_align_alloc_test },
    Case { mask: 64, name: "align_shift_alloc_test", xfail: true, run: |m, _, _| align_shift_alloc_test(m).map(drop) },
    Case { mask: 1024, name: "vm_map_ram_test", xfail: false, run: |m, p, _| vm_map_ram_test(m, p) },
];

/// How often each case passed, failed or failed as expected: the kernel's `Summary:` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
    pub xfailed: u32,
}

/// The kernel's `test_func` on one worker: the cases whose bit is in `mask`, in table order or
/// shuffled (`sequential_test_order = false`), each run `repeat` times and classified as the
/// kernel does: `0` from a normal case passes, `-1` from an xfail case is xfailed, anything
/// else (an xfail case that passes included) fails. A `Summary:` line per case goes to the
/// machine's log, without the timing the kernel adds.
pub fn run_mask(m: &Machine, mask: u32, p: &Params, rng: &mut Rng, shuffle: bool, repeat: u32) -> Vec<Tally> {
    let mut order: Vec<usize> = (0..CASES.len()).collect();
    if shuffle {
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % i as u64) as usize;
            order.swap(i, j);
        }
    }
    let mut tallies = vec![Tally::default(); CASES.len()];
    for &index in order.iter().filter(|&&i| mask & CASES[i].mask != 0) {
        let case = &CASES[index];
        let t = &mut tallies[index];
        for _ in 0..repeat {
            match ((case.run)(m, p, rng).is_ok(), case.xfail) {
                (true, false) => t.passed += 1,
                (false, true) => t.xfailed += 1,
                _ => t.failed += 1,
            }
        }
    }
    for (case, t) in CASES.iter().zip(&tallies).filter(|(c, _)| mask & c.mask != 0) {
        let line = format!(
            "Summary: {} passed: {} failed: {} xfailed: {} repeat: {repeat} loops: {}",
            case.name, t.passed, t.failed, t.xfailed, p.loops
        );
        m.printk(kmem::Level::Info, &line);
    }
    tallies
}

/// `THREAD_ALIGN` (= `THREAD_SIZE` without KASAN): 16 KiB on x86_64, 8 KiB on i386.
pub fn thread_align(m: &Machine) -> usize {
    match m.profile() {
        Profile::X86_64 => PAGE_SIZE << 2,
        Profile::I386 => PAGE_SIZE << 1,
    }
}

/// The pattern of page `i` of an area tagged `tag`, at its start (`end == false`) or end.
fn pattern(tag: u64, i: usize, end: bool) -> u64 {
    (tag << 20 | (i as u64) << 1 | u64::from(end)) ^ 0x5a5a_0000_0000_a5a5
}

fn word(p: NonNull<u8>, offset: usize) -> *mut u64 {
    p.as_ptr().wrapping_add(offset).cast()
}

/// Writes the patterns of `tag` at both ends of every page of the area.
pub fn stamp(p: NonNull<u8>, pages: usize, tag: u64) {
    for i in 0..pages {
        for (end, off) in [(false, i * PAGE_SIZE), (true, (i + 1) * PAGE_SIZE - PTR)] {
            // SAFETY: `p` is a live mapped area of `pages` pages owned by the caller; `off` is
            // an aligned word inside it.
            unsafe { word(p, off).write_volatile(pattern(tag, i, end)) };
        }
    }
}

/// Checks the patterns of `tag` through the area and through each backing frame, and that
/// the guard page after the area is not mapped.
pub fn verify(m: &Machine, p: NonNull<u8>, pages: usize, tag: u64) {
    for i in 0..pages {
        let page = m.vmalloc_to_page(p.as_ptr().wrapping_add(i * PAGE_SIZE)).expect("VM-10: page mapped");
        let view = m.kmap_local_page(page).expect("kmap_local_page");
        for (end, off) in [(false, 0), (true, PAGE_SIZE - PTR)] {
            let want = pattern(tag, i, end);
            // SAFETY: As in `stamp`.
            let got = unsafe { word(p, i * PAGE_SIZE + off).read_volatile() };
            assert_eq!(got, want, "area {p:?} tag {tag:#x}: page {i} word {off:#x} overwritten");
            // SAFETY: `view` maps the frame for the duration of this local mapping.
            let seen = unsafe { word(view, off).read_volatile() };
            assert_eq!(seen, want, "area {p:?} page {i}: the frame differs from the vmalloc view");
        }
        // SAFETY: The test's own mapping, not used afterwards.
        unsafe { m.kunmap_local(view.as_ptr()) };
    }
    let guard = p.as_ptr().wrapping_add(pages * PAGE_SIZE);
    assert!(m.vmalloc_to_page(guard).is_none(), "VM-1: guard page of {p:?} is mapped");
}

/// Asserts the area reads as zeros (VM-5).
pub fn assert_zero(p: NonNull<u8>, pages: usize) {
    // SAFETY: A live mapped area of `pages` pages, page aligned, owned by the caller.
    let words = unsafe { std::slice::from_raw_parts(p.as_ptr().cast::<u64>(), pages * PAGE_SIZE / PTR) };
    if let Some(i) = words.iter().position(|&w| w != 0) {
        panic!("VM-5: zeroed area {p:?} has {:#x} at byte {:#x}", words[i], i * PTR);
    }
}

/// The address of `p` as the kernel's `void *`, for the pointer arrays.
fn addr(p: NonNull<u8>) -> u64 {
    p.as_ptr() as u64
}

/// A `void *` array of `len` entries kept in vmalloc memory, as the kernel cases keep theirs.
struct PtrArray(NonNull<u8>, usize);

impl PtrArray {
    fn new(m: &Machine, len: usize) -> Option<Self> {
        m.vmalloc(len * PTR).ok().map(|p| Self(p, len))
    }

    fn set(&self, i: usize, v: u64) {
        assert!(i < self.1);
        // SAFETY: Entry `i` lies in the live array area.
        unsafe { word(self.0, i * PTR).write_volatile(v) }
    }

    fn get(&self, i: usize) -> NonNull<u8> {
        assert!(i < self.1);
        // SAFETY: As in `set`.
        let v = unsafe { word(self.0, i * PTR).read_volatile() };
        NonNull::new(v as *mut u8).expect("the array holds the areas stored in it")
    }

    fn free(self, m: &Machine) {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(self.0.as_ptr()) };
    }
}

/// The tag of area `i` of a case run (`salt` separates the cases).
fn tag(salt: u64, i: usize) -> u64 {
    salt << 32 | i as u64
}

/// A salt per run, so two threads or two loops never carry the same patterns.
fn salt(rng: &mut Rng) -> u64 {
    rng.next_u64() & 0xfff
}

/// Case 1: `vmalloc(nr_pages * PAGE_SIZE)`, touch, `vfree`, `loops` times.
pub fn fix_size_alloc_test(m: &Machine, p: &Params, rng: &mut Rng) -> Result<(), usize> {
    let s = salt(rng);
    for i in 0..p.loops {
        let a = m.vmalloc(p.nr_pages * PAGE_SIZE).map_err(|_| i)?;
        stamp(a, p.nr_pages, tag(s, i));
        verify(m, a, p.nr_pages, tag(s, i));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(a.as_ptr()) };
    }
    Ok(())
}

/// Case 2: as many 1-page areas as `lazy_max_pages()` (the kernel's `junk_length`,
/// `fls(num_online_cpus()) * 32 MiB / PAGE_SIZE`) interleaved with as many junk areas; the
/// junk is freed, leaving 2-page holes (1 page + guard), and `loops` 1-page allocations must
/// succeed. Returns how many of them landed exactly in a junk hole (the "full fit").
pub fn full_fit_alloc_test(m: &Machine, p: &Params) -> Result<usize, usize> {
    let junk_length = m.vm().lazy_max_pages();
    let ptr = PtrArray::new(m, junk_length).ok_or(0usize)?;
    let Some(junk) = PtrArray::new(m, junk_length) else {
        ptr.free(m);
        return Err(0);
    };
    for i in 0..junk_length {
        let a = m.vmalloc(PAGE_SIZE).expect("full_fit: keeper area");
        let j = m.vmalloc(PAGE_SIZE).expect("full_fit: junk area");
        stamp(a, 1, tag(0x2, i));
        ptr.set(i, addr(a));
        junk.set(i, addr(j));
    }
    let holes: HashSet<usize> = (0..junk_length).map(|i| junk.get(i).as_ptr() as usize).collect();
    for i in 0..junk_length {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(junk.get(i).as_ptr()) };
    }
    let mut fits = 0;
    let mut rv = Ok(());
    for i in 0..p.loops {
        let Ok(tmp) = m.vmalloc(PAGE_SIZE) else {
            rv = Err(i);
            break;
        };
        fits += usize::from(holes.contains(&(tmp.as_ptr() as usize)));
        stamp(tmp, 1, tag(0x2f, i));
        verify(m, tmp, 1, tag(0x2f, i));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(tmp.as_ptr()) };
    }
    for i in 0..junk_length {
        verify(m, ptr.get(i), 1, tag(0x2, i));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(ptr.get(i).as_ptr()) };
    }
    ptr.free(m);
    junk.free(m);
    rv.map(|()| fits)
}

/// Case 4: `busy` live 1-page areas, then `loops` rounds of a 100-page and a 1-page area,
/// touched and freed; the busy areas must be intact at the end.
pub fn long_busy_list_alloc_test(m: &Machine, p: &Params) -> Result<(), usize> {
    let ptr = PtrArray::new(m, p.busy).ok_or(0usize)?;
    for i in 0..p.busy {
        let a = m.vmalloc(PAGE_SIZE).expect("long_busy_list: busy area");
        stamp(a, 1, tag(0x4, i));
        ptr.set(i, addr(a));
    }
    let mut rv = Ok(());
    for i in 0..p.loops {
        let Ok(p1) = m.vmalloc(100 * PAGE_SIZE) else {
            rv = Err(i);
            break;
        };
        let Ok(p2) = m.vmalloc(PAGE_SIZE) else {
            // SAFETY: The test's own area (or none: refused), unused afterwards.
            unsafe { m.vfree(p1.as_ptr()) };
            rv = Err(i);
            break;
        };
        stamp(p1, 100, tag(0x41, i));
        stamp(p2, 1, tag(0x42, i));
        verify(m, p1, 100, tag(0x41, i));
        verify(m, p2, 1, tag(0x42, i));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p1.as_ptr()) };
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(p2.as_ptr()) };
    }
    for i in 0..p.busy {
        verify(m, ptr.get(i), 1, tag(0x4, i));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(ptr.get(i).as_ptr()) };
    }
    ptr.free(m);
    rv
}

/// Case 8: `loops` areas of 1..=100 pages, touched and freed.
pub fn random_size_alloc_test(m: &Machine, p: &Params, rng: &mut Rng) -> Result<(), usize> {
    let s = salt(rng);
    for i in 0..p.loops {
        let n = rng.inclusive(1, 100) as usize;
        let a = m.vmalloc(n * PAGE_SIZE).map_err(|_| i)?;
        stamp(a, n, tag(s, i));
        verify(m, a, n, tag(s, i));
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(a.as_ptr()) };
    }
    Ok(())
}

/// `__vmalloc_node(pages * PAGE_SIZE, align, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE)`, checked
/// (aligned, zeroed, patterns) and freed; `None` when the allocation fails.
fn zeroed_aligned_round(m: &Machine, pages: usize, align: usize, tag: u64) -> Option<()> {
    let a = m.vmalloc_node_align(pages * PAGE_SIZE, align, GFP_KERNEL | __GFP_ZERO, NO_NODE).ok()?;
    let want = align.max(PAGE_SIZE);
    assert!((a.as_ptr() as usize).is_multiple_of(want), "VM-4: {a:?} is not aligned to {want:#x}");
    assert_zero(a, pages);
    stamp(a, pages, tag);
    verify(m, a, pages, tag);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(a.as_ptr()) };
    Some(())
}

/// Case 16: `loops` zeroed 5-page areas aligned to `THREAD_ALIGN << 1`.
pub fn fix_align_alloc_test(m: &Machine, p: &Params) -> Result<(), usize> {
    let align = thread_align(m) << 1;
    (0..p.loops).try_for_each(|i| zeroed_aligned_round(m, 5, align, tag(0x16, i)).ok_or(i))
}

/// Case 32: `loops` zeroed areas; one random byte picks the alignment `1 << (rnd % 23)` (up
/// to 4 MiB) and the size `(rnd % 10) + 1` pages.
pub fn random_size_align_alloc_test(m: &Machine, p: &Params, rng: &mut Rng) -> Result<(), usize> {
    let s = salt(rng);
    for i in 0..p.loops {
        let rnd = rng.next_u64() as u8 as usize;
        let align = 1 << (rnd % 23);
        zeroed_aligned_round(m, rnd % 10 + 1, align, tag(s, i)).ok_or(i)?;
    }
    Ok(())
}

/// Case 64 (expected to fail): one zeroed page aligned to `1 << i` for `i` in
/// `0..BITS_PER_LONG`, stopping at the first failure, whose shift is returned as the error.
/// Returns the aligned addresses it got before.
pub fn align_shift_alloc_test(m: &Machine) -> Result<Vec<usize>, usize> {
    let mut got = Vec::new();
    for i in 0..usize::BITS as usize {
        let align = 1usize << i;
        let a = m.vmalloc_node_align(PAGE_SIZE, align, GFP_KERNEL | __GFP_ZERO, NO_NODE).map_err(|_| i)?;
        assert!((a.as_ptr() as usize).is_multiple_of(align.max(PAGE_SIZE)), "VM-4: shift {i}: {a:?}");
        assert_zero(a, 1);
        stamp(a, 1, tag(0x64, i));
        verify(m, a, 1, tag(0x64, i));
        got.push(a.as_ptr() as usize);
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(a.as_ptr()) };
    }
    Ok(got)
}

/// Where `align_shift_alloc_test` fails on an idle machine, whose free space is one range
/// `[start, end)`: `(lo, hi)`. `hi` is the first shift with no aligned place for a page plus
/// its guard (`ALIGN(start, align) + 2 pages > end`): Linux's `find_vmap_lowest_match` checks
/// the range it visits with `is_within_this_va`, exactly, so it fails there and not before.
/// `lo` is the first shift whose search length `2 pages + align - 1` (`adjust_search_size`,
/// SEMANTICS §5.2) exceeds the range: below it every reading of the rule places the page.
pub fn align_shift_failure_bounds(start: usize, end: usize) -> (usize, usize) {
    let shifts = PAGE_SHIFT as usize..usize::BITS as usize;
    let first =
        |no_room: &dyn Fn(usize) -> bool| shifts.clone().find(|&i| no_room(1 << i)).unwrap_or(usize::BITS as usize);
    let lo = first(&|align| (2 * PAGE_SIZE).checked_add(align - 1).is_none_or(|need| need > end - start));
    let hi = first(&|align| {
        start.checked_next_multiple_of(align).and_then(|a| a.checked_add(2 * PAGE_SIZE)).is_none_or(|e| e > end)
    });
    (lo, hi)
}

/// Case 1024: `nr_pages` pages from the bulk allocator, mapped with `vm_map_ram` and unmapped
/// with `vm_unmap_ram` `loops` times, with a write through each mapping. The pages stay the
/// caller's and keep the last write (VM-9).
pub fn vm_map_ram_test(m: &Machine, p: &Params) -> Result<(), usize> {
    let mut slots: Vec<Option<&Page>> = vec![None; p.nr_pages];
    let nr_allocated = m.alloc_pages_bulk(GFP_KERNEL, &mut slots);
    let pages: Vec<&Page> = slots.iter().flatten().copied().collect();
    let mut rv = if nr_allocated == p.nr_pages { Ok(()) } else { Err(0) };
    let mut last = None;
    for i in 0..if rv.is_ok() { p.loops } else { 0 } {
        let Ok(v) = m.vm_map_ram(&pages, NO_NODE) else {
            rv = Err(i);
            break;
        };
        // SAFETY: `v` maps `nr_pages` pages of ours.
        unsafe { v.as_ptr().write_volatile(b'a') };
        // SAFETY: As above.
        assert_eq!(unsafe { v.as_ptr().read_volatile() }, b'a');
        stamp(v, p.nr_pages, tag(0x1024, i));
        verify(m, v, p.nr_pages, tag(0x1024, i));
        // SAFETY: The test's own mapping, with the count it was made with, unused afterwards.
        unsafe { m.vm_unmap_ram(v.as_ptr(), p.nr_pages) };
        last = Some(i);
    }
    for (j, page) in pages.iter().enumerate() {
        assert_eq!(page.refcount(), 1, "VM-9: vm_unmap_ram left page {j} to its caller");
        if let Some(i) = last {
            let view = m.kmap_local_page(page).expect("kmap_local_page");
            // SAFETY: `view` maps the page for the duration of this local mapping.
            let got = unsafe { word(view, 0).read_volatile() };
            // SAFETY: The test's own mapping, not used afterwards.
            unsafe { m.kunmap_local(view.as_ptr()) };
            assert_eq!(got, pattern(tag(0x1024, i), j, false), "page {j} lost the last write");
        }
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    rv
}
