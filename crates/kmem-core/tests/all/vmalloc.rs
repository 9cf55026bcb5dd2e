//! vmalloc embedded over a simulated MMU: the page table is a map from virtual page to frame
//! (no real mapping), byte access goes through the board's direct map of the mapped frame.
//! Random operation sequences are replayed against a plain model of the address space, and
//! every step checks the allocator's invariants, the lowest-fit choice and the page table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use kmem_core::gfp::{__GFP_MEMALLOC, __GFP_NOWARN, __GFP_ZERO, GFP_ATOMIC, GFP_KERNEL};
use kmem_core::slab::SlabConfig;
use kmem_core::vmalloc::{MapError, Mmu, NUMA_NO_NODE, VM_UNINITIALIZED, VM_USERMAP, Vmalloc};
use kmem_core::{Kmem, PAGE_SIZE};

use super::{Board, IN_ATOMIC, Region, boot};

/// The simulated vmalloc range: not a real address range, never dereferenced.
const VSTART: usize = 0x7f00_0000_0000;
const VPAGES: usize = 512;

/// A page table: virtual page -> pfn.
struct SimMmu {
    table: Mutex<BTreeMap<usize, usize>>,
    direct_map: usize,
    /// `unmap` fails (and leaves the mappings) while set: a platform out of mappings.
    fail_unmap: std::sync::atomic::AtomicBool,
    /// `map` calls made so far.
    map_calls: AtomicUsize,
    /// The `map` call (1-based, as counted by `map_calls`) that fails, mapping nothing; 0: none.
    fail_map_at: AtomicUsize,
}

impl SimMmu {
    fn new(region: &Region) -> Self {
        Self {
            table: Mutex::new(BTreeMap::new()),
            direct_map: region.ptr.as_ptr() as usize,
            fail_unmap: std::sync::atomic::AtomicBool::new(false),
            map_calls: AtomicUsize::new(0),
            fail_map_at: AtomicUsize::new(0),
        }
    }

    fn lookup(&self, va: usize) -> Option<usize> {
        self.table.lock().unwrap().get(&(va & !(PAGE_SIZE - 1))).copied()
    }

    /// The direct-map address of the byte mapped at `va`.
    fn byte(&self, va: usize) -> *mut u8 {
        let pfn = self.lookup(va).unwrap_or_else(|| panic!("access to unmapped {va:#x}"));
        (self.direct_map + pfn * PAGE_SIZE + va % PAGE_SIZE) as *mut u8
    }

    fn write(&self, va: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: `byte` found a frame mapped at that address, which lies in the region.
            unsafe { self.byte(va + i).write(b) };
        }
    }

    fn read(&self, va: usize, len: usize) -> Vec<u8> {
        // SAFETY: As in `write`.
        (0..len).map(|i| unsafe { self.byte(va + i).read() }).collect()
    }
}

// SAFETY: Mappings are not real, so `copy` and `zero` are overridden to reach the mapped
// frames through the direct map; `map` and `unmap` keep the table exact.
unsafe impl Mmu for SimMmu {
    unsafe fn map(&self, va: usize, pfn: usize, nr: usize) -> Result<(), MapError> {
        assert!(va.is_multiple_of(PAGE_SIZE));
        assert!(va >= VSTART && va + nr * PAGE_SIZE <= VSTART + VPAGES * PAGE_SIZE, "map outside the range");
        if self.map_calls.fetch_add(1, Relaxed) + 1 == self.fail_map_at.load(Relaxed) {
            return Err(MapError); // Nothing of this call's range is mapped (the contract).
        }
        let mut t = self.table.lock().unwrap();
        for i in 0..nr {
            assert!(t.insert(va + i * PAGE_SIZE, pfn + i).is_none(), "mapped twice at {:#x}", va + i * PAGE_SIZE);
        }
        Ok(())
    }

    unsafe fn unmap(&self, va: usize, len: usize) -> Result<(), MapError> {
        if self.fail_unmap.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(MapError);
        }
        let mut t = self.table.lock().unwrap();
        for page in (va..va + len).step_by(PAGE_SIZE) {
            t.remove(&page);
        }
        Ok(())
    }

    unsafe fn copy(&self, dst: usize, src: usize, len: usize) {
        let data = self.read(src, len);
        self.write(dst, &data);
    }

    unsafe fn zero(&self, dst: usize, len: usize) {
        if let Some(hook) = ZERO_HOOK.with(|h| h.borrow_mut().take()) {
            hook();
        }
        self.write(dst, &vec![0; len]);
    }
}

thread_local! {
    /// Run once by the next [`SimMmu::zero`] on this thread, before it zeroes: what another
    /// thread does at that moment (a deterministic interleaving).
    static ZERO_HOOK: std::cell::RefCell<Option<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(None) };
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The model: live areas (start -> (pages, size with guard)) and lazily freed ranges.
#[derive(Default)]
struct Model {
    live: BTreeMap<usize, (usize, usize)>,
    lazy: BTreeSet<(usize, usize)>,
}

impl Model {
    /// Free ranges: the complement of live and lazy ranges.
    fn free(&self) -> Vec<(usize, usize)> {
        let mut used: Vec<(usize, usize)> = self.live.iter().map(|(&s, &(_, size))| (s, s + size)).collect();
        used.extend(self.lazy.iter().copied());
        used.sort();
        let (mut out, mut cursor) = (Vec::new(), VSTART);
        for (s, e) in used {
            assert!(s >= cursor, "model overlap at {s:#x}");
            if s > cursor {
                out.push((cursor, s));
            }
            cursor = e;
        }
        if cursor < VSTART + VPAGES * PAGE_SIZE {
            out.push((cursor, VSTART + VPAGES * PAGE_SIZE));
        }
        out
    }

    /// Where lowest-fit must put `size` bytes aligned to `align` (SEMANTICS §5.2).
    /// Where the lowest free range of the search length (`size + align - 1` for large
    /// alignments) puts the area: the highest address VM-3 allows. `None`: no such range, so
    /// the request may fail.
    fn expected(&self, size: usize, align: usize) -> Option<usize> {
        let len = if align > PAGE_SIZE { size + align - 1 } else { size };
        self.free().into_iter().find(|&(s, e)| e - s >= len).map(|(s, _)| s.next_multiple_of(align))
    }

    /// The lowest address any free range can hold the area at: the lowest VM-3 allows (the
    /// walk also takes a shorter range it passes when the alignment fits there, as Linux's
    /// `is_within_this_va`).
    fn lowest_exact(&self, size: usize, align: usize) -> Option<usize> {
        self.free()
            .into_iter()
            .map(|(s, e)| (s.next_multiple_of(align), e))
            .find(|&(a, e)| a + size <= e)
            .map(|(a, _)| a)
    }

    /// Whether `[start, start + size)` lies inside one free range.
    fn is_free(&self, start: usize, size: usize) -> bool {
        self.free().into_iter().any(|(s, e)| s <= start && start + size <= e)
    }
}

/// One vmalloc and vfree, released and purged: the node chunk, its directory block and the
/// kmalloc cache of the pfn array exist afterwards (they stay), so page counts taken next
/// see only what later areas take.
fn warm_up(pa: &Kmem<Board>, vm: &Vmalloc<SimMmu>) {
    let p = vm.vmalloc(pa, 3 * PAGE_SIZE).unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(pa, p.as_ptr()) };
    vm.reclaim_and_purge(pa);
    pa.drain_local_pages();
}

/// A page allocator with kmalloc on top (vmalloc's pfn arrays are kmalloc objects), and
/// vmalloc.
fn setup(region: &Region) -> (Kmem<Board>, Vmalloc<SimMmu>) {
    let pa = Kmem::new(boot(region, true), SlabConfig::default());
    let vm = Vmalloc::new(SimMmu::new(region), VSTART, VPAGES * PAGE_SIZE, 1).unwrap();
    vm.set_lazy_max_pages(96);
    (pa, vm)
}

/// Every live area is mapped page for page as `vmalloc_to_pfn` says; guard pages are not; and
/// nothing else is mapped: a freed area is unmapped at once, not at the purge (the kernel
/// clears the PTEs in `vfree` and defers only the TLB flush).
fn check_mappings(vm: &Vmalloc<SimMmu>, model: &Model) {
    let live_pages: usize = model.live.values().map(|&(pages, _)| pages).sum();
    assert_eq!(vm.mmu().table.lock().unwrap().len(), live_pages, "only live areas are mapped");
    for (&start, &(pages, size)) in &model.live {
        for p in 0..pages {
            let va = start + p * PAGE_SIZE;
            let pfn = vm.vmalloc_to_pfn(va as *const u8).expect("mapped page has a pfn");
            assert_eq!(vm.mmu().lookup(va), Some(pfn), "page table vs vmalloc_to_pfn at {va:#x}");
        }
        let guard = start + pages * PAGE_SIZE;
        assert_eq!(size, pages * PAGE_SIZE + PAGE_SIZE, "VM-1: one guard page");
        assert_eq!(vm.vmalloc_to_pfn(guard as *const u8), None, "VM-1: guard page has no page");
        assert_eq!(vm.mmu().lookup(guard), None, "VM-1: guard page unmapped");
    }
}

#[test]
fn random_operations_keep_the_address_space_exact() {
    for seed in [1u64, 7, 42, 2024] {
        let region = Region::new(32 << 20);
        let (pa, vm) = setup(&region);
        // The model is the kernel's lazy path: no frame cache (tested on machines in
        // kmem's `vmalloc_reuse` tests).
        vm.set_cache_max_pages(0);
        let mut rng = Rng(seed);
        let mut model = Model::default();
        let mut fails = 0;
        for step in 0..1500 {
            let purges = vm.stats().purges.load(std::sync::atomic::Ordering::Relaxed);
            match rng.below(10) {
                0..=4 => {
                    let pages = 1 + rng.below(24);
                    let align = if rng.below(4) == 0 { PAGE_SIZE << (1 + rng.below(3)) } else { PAGE_SIZE };
                    let mut expect_model = Model { live: model.live.clone(), lazy: model.lazy.clone() };
                    let first = expect_model.expected(pages * PAGE_SIZE + PAGE_SIZE, align);
                    let got =
                        vm.vmalloc_node_align(&pa, pages * PAGE_SIZE - rng.below(PAGE_SIZE), align, GFP_KERNEL, -1);
                    let purged = vm.stats().purges.load(std::sync::atomic::Ordering::Relaxed) != purges;
                    if purged {
                        assert!(first.is_none(), "step {step}: purged although the request fitted");
                        model.lazy.clear();
                        expect_model.lazy.clear();
                    }
                    let size = pages * PAGE_SIZE + PAGE_SIZE;
                    let want = expect_model.expected(size, align);
                    match got {
                        Ok(p) => {
                            let s = p.as_ptr() as usize;
                            assert!(expect_model.is_free(s, size), "step {step}: not inside a free range");
                            let lowest = expect_model.lowest_exact(size, align).expect("some range fits");
                            assert!(
                                lowest <= s && want.is_none_or(|w| s <= w),
                                "step {step}: VM-3 lowest fit: {s:#x} outside [{lowest:#x}, {want:x?}]"
                            );
                            if align == PAGE_SIZE {
                                assert_eq!(Some(s), want, "step {step}: VM-3 lowest fit");
                            }
                            assert!(s.is_multiple_of(align), "VM-4 alignment");
                            model.live.insert(s, (pages, pages * PAGE_SIZE + PAGE_SIZE));
                        }
                        Err(_) => {
                            assert_eq!(want, None, "step {step}: failed although a range fitted");
                            fails += 1;
                        }
                    }
                }
                5..=8 if !model.live.is_empty() => {
                    let k = rng.below(model.live.len());
                    let (&s, &(_, size)) = model.live.iter().nth(k).unwrap();
                    // SAFETY: The test's own area (or none: refused), unused afterwards.
                    unsafe { vm.vfree(&pa, s as *const u8) };
                    model.live.remove(&s);
                    model.lazy.insert((s, s + size));
                    if vm.stats().purges.load(std::sync::atomic::Ordering::Relaxed) != purges {
                        model.lazy.clear();
                    }
                }
                _ => {
                    vm.vm_unmap_aliases(&pa);
                    model.lazy.clear();
                }
            }
            vm.check();
            assert_eq!(vm.lazy_pages(), model.lazy.iter().map(|(s, e)| (e - s) / PAGE_SIZE).sum::<usize>());
            let used: usize = model.live.values().map(|&(p, _)| p).sum();
            assert_eq!(vm.nr_vmalloc_pages(), used, "VM-13");
            // Lazily freed ranges keep their (stale) mappings until purged; nothing else is mapped.
            let mapped = vm.mmu().table.lock().unwrap().len();
            assert!(mapped >= used, "step {step}");
            if model.lazy.is_empty() {
                assert_eq!(mapped, used, "step {step}: purge unmapped everything lazy");
            }
            check_mappings(&vm, &model);
        }
        assert!(fails > 0, "seed {seed}: the run never filled the space");
        for &s in model.live.keys() {
            // SAFETY: The test's own area (or none: refused), unused afterwards.
            unsafe { vm.vfree(&pa, s as *const u8) };
        }
        vm.vm_unmap_aliases(&pa);
        vm.check();
        assert_eq!(vm.largest_free_bytes(), VPAGES * PAGE_SIZE, "everything coalesced back");
        assert!(vm.mmu().table.lock().unwrap().is_empty());
        // SAFETY: Single-threaded test; no CPU slot in use.
        unsafe { pa.check() };
    }
}

#[test]
fn vfree_in_atomic_context_completes_later_and_misuse_is_reported() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    warm_up(&pa, &vm);
    let free_before = pa.total_free();
    let p = vm.vmalloc(&pa, 3 * PAGE_SIZE).unwrap();
    IN_ATOMIC.with(|c| c.set(true));
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    IN_ATOMIC.with(|c| c.set(false));
    assert_eq!(vm.nr_deferred(), 1, "VM-7: queued, not freed");
    assert_eq!(vm.nr_vmalloc_pages(), 3);
    assert!(vm.vmalloc_to_pfn(p.as_ptr()).is_some(), "still mapped until the deferred free runs");
    vm.check();
    // A second vfree of the queued area is a double free.
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    assert_eq!(vm.nr_deferred(), 0, "the next vfree outside atomic context drained the queue");
    assert_eq!(vm.nr_vmalloc_pages(), 0);
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(log.contains(&format!("Trying to vfree() nonexistent vm area ({:016x})", p.as_ptr() as usize)), "{log}");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, (VSTART + 5) as *const u8) };
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, std::ptr::null()) };
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(log.contains(&format!("Trying to vfree() bad address ({:016x})", VSTART + 5)), "{log}");
    assert!(log.contains("WARNING: CPU: 0 at "), "{log}");
    // Purge, and release the frame cache, which took the area.
    vm.reclaim_and_purge(&pa);
    vm.check();
    pa.drain_local_pages();
    assert_eq!(pa.total_free(), free_before, "frames and page array freed");
}

#[test]
fn vrealloc_and_zeroing_through_the_mapping() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    let p = vm.vzalloc(&pa, 5000).unwrap();
    let va = p.as_ptr() as usize;
    assert!(vm.mmu().read(va, 2 * PAGE_SIZE).iter().all(|&b| b == 0), "VM-5");
    let data: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    vm.mmu().write(va, &data);
    // Growing within the two allocated pages happens in place.
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    let q = unsafe { vm.vrealloc(&pa, p.as_ptr(), 8000, GFP_KERNEL | __GFP_ZERO) }.unwrap().unwrap();
    assert_eq!(q, p, "VM-12: in place");
    assert_eq!(vm.mmu().read(va, 5000), data);
    assert!(vm.mmu().read(va + 5000, 3000).iter().all(|&b| b == 0));
    // Shrinking is in place and zeroes the tail with __GFP_ZERO.
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    let q = unsafe { vm.vrealloc(&pa, p.as_ptr(), 100, GFP_KERNEL | __GFP_ZERO) }.unwrap().unwrap();
    assert_eq!(q, p);
    assert!(vm.mmu().read(va + 100, 4900).iter().all(|&b| b == 0));
    // Growing past the pages moves and copies the requested bytes.
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    let r = unsafe { vm.vrealloc(&pa, p.as_ptr(), 3 * PAGE_SIZE, GFP_KERNEL) }.unwrap().unwrap();
    assert_ne!(r, p);
    assert_eq!(vm.mmu().read(r.as_ptr() as usize, 100), data[..100]);
    assert_eq!(vm.vmalloc_to_pfn(p.as_ptr()), None, "old area freed");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert_eq!(unsafe { vm.vrealloc(&pa, r.as_ptr(), 0, GFP_KERNEL) }, Ok(None), "n == 0 frees and returns NULL");
    assert_eq!(vm.nr_vmalloc_pages(), 0);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    assert!(unsafe { vm.vrealloc(&pa, (VSTART + 100 * PAGE_SIZE) as *const u8, 10, GFP_KERNEL) }.is_err());
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(log.contains("Trying to vrealloc() nonexistent vm area"), "{log}");
    vm.check();
}

/// VM-6, VM-10, VM-13: `__vmalloc_node_range` drops the flags a caller may not set
/// (`VM_UNINITIALIZED`, kmem's own bits 31 and 29, undefined bits) with one warning and keeps
/// the rest: the area is visible to `vmalloc_to_pfn`, counted, and freed by `vfree`.
#[test]
fn vmalloc_node_range_drops_flags_the_caller_may_not_set() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    let caller = std::panic::Location::caller();
    let bad = VM_UNINITIALIZED | (1 << 31) | (1 << 29) | 0x8000;
    let p = vm.vmalloc_node_range(&pa, 2 * PAGE_SIZE, PAGE_SIZE, GFP_KERNEL, bad | VM_USERMAP, NUMA_NO_NODE, caller);
    let p = p.unwrap();
    assert!(vm.vmalloc_to_pfn(p.as_ptr()).is_some(), "VM-10: not hidden as being set up");
    assert_eq!(vm.nr_vmalloc_pages(), 2);
    let mut info = String::new();
    vm.vmallocinfo(&mut info).unwrap();
    assert!(info.contains(" pages=2 vmalloc user N0=2"), "{info}");
    let log = pa.platform().log.lock().unwrap().clone();
    let warning = format!("__vmalloc_node_range_noprof: VM flags {:#x} dropped", bad);
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(!log.contains("nonexistent vm area"), "{log}");
    assert_eq!(vm.nr_vmalloc_pages(), 0);
    vm.check();
}

/// The frame cache seen from the page table: a freed area stays mapped, taking it back maps
/// nothing (no `Mmu::map` call: the table is unchanged), `__GFP_ZERO` zeroes it through the
/// mapping, and only a release (shrinker or `reclaim_and_purge`) unmaps it and frees its frames.
#[test]
fn frame_cache_reuses_the_mapping_and_releases_on_shrink() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    warm_up(&pa, &vm);
    let free_before = pa.total_free();
    let p = vm.vmalloc(&pa, 3 * PAGE_SIZE).unwrap();
    let va = p.as_ptr() as usize;
    vm.mmu().write(va, &[0xee; 3 * PAGE_SIZE]);
    let mapped = vm.mmu().table.lock().unwrap().clone();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    assert_eq!(*vm.mmu().table.lock().unwrap(), mapped, "still mapped while cached");
    assert_eq!((vm.cached_areas(), vm.cached_pages(), vm.nr_vmalloc_pages()), (1, 3, 0));
    assert_eq!(vm.lazy_pages(), 0, "cached, not lazy");
    let q = vm.vzalloc(&pa, 3 * PAGE_SIZE).unwrap();
    assert_eq!(q, p);
    assert_eq!(*vm.mmu().table.lock().unwrap(), mapped, "nothing mapped again");
    assert!(vm.mmu().read(va, 3 * PAGE_SIZE).iter().all(|&b| b == 0), "VM-5");
    vm.check();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, q.as_ptr()) };
    assert_eq!(vm.reclaimable_pages(), 3);
    assert_eq!(vm.shrink(&pa, 1), 3, "a whole area is released");
    assert!(vm.mmu().table.lock().unwrap().is_empty(), "unmapped on release");
    // The warm-up released one cached area too.
    assert_eq!((vm.cached_areas(), vm.stats().cache_releases.load(std::sync::atomic::Ordering::Relaxed)), (0, 2));
    vm.check();
    pa.drain_local_pages();
    assert_eq!(pa.total_free(), free_before, "frames and page array back");
    // A purge threshold of 0 turns the cache off.
    vm.set_lazy_max_pages(0);
    let r = vm.vmalloc(&pa, PAGE_SIZE).unwrap();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, r.as_ptr()) };
    assert_eq!(vm.cached_areas(), 0);
    assert!(vm.mmu().table.lock().unwrap().is_empty(), "purged at once");
    vm.check();
}

/// VM-8: a freed area whose mapping the platform cannot take away keeps its frames (reported):
/// they are never handed to a new owner the stale address still reaches. Its range is kept too:
/// it never goes lazy, so no purge hands it out to be mapped over (VM-3 goes past it).
#[test]
fn frames_stay_out_of_reuse_when_an_area_cannot_be_unmapped() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    warm_up(&pa, &vm);
    vm.set_lazy_max_pages(0); // No frame cache: the frames would go straight back.
    let free_before = pa.total_free();
    let p = vm.vmalloc(&pa, 3 * PAGE_SIZE).unwrap();
    let va = p.as_ptr() as usize;
    let frames: Vec<usize> = (0..3).map(|i| vm.mmu().lookup(va + i * PAGE_SIZE).unwrap()).collect();
    vm.mmu().fail_unmap.store(true, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    vm.mmu().fail_unmap.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(pa.platform().log.lock().unwrap().contains("cannot unmap a freed area of 3 pages; its frames are kept"));
    assert_eq!(vm.lazy_pages(), 0, "VM-8: not lazily freed, so never purged");
    assert_eq!(vm.vmalloc_to_pfn(p.as_ptr()), None, "VM-10: no live area there");
    assert_kept_for_good(&pa, &vm, va, &frames, free_before);
}

/// After the platform refused to unmap the area of `frames` at `va`: its frames stay allocated
/// and mapped (everything else came back: `free_before` less the frames), one failure is
/// counted, and the range is never handed out again (VM-3: the next area of the same size lies
/// past it; the SimMmu panics on a map over a mapped page).
fn assert_kept_for_good(pa: &Kmem<Board>, vm: &Vmalloc<SimMmu>, va: usize, frames: &[usize], free_before: usize) {
    pa.drain_local_pages();
    assert_eq!(pa.total_free(), free_before - frames.len(), "the frames are kept, the page array freed");
    for (i, &pfn) in frames.iter().enumerate() {
        assert_eq!(vm.mmu().lookup(va + i * PAGE_SIZE), Some(pfn), "still mapped: the platform refused");
        assert!(pa.pfn_to_page(pfn).unwrap().is_allocated(), "pfn {pfn:#x} is not free for reuse");
    }
    assert_eq!(vm.stats().unmap_failures.load(Relaxed), 1);
    vm.check();
    vm.reclaim_and_purge(pa);
    let q = vm.vmalloc(pa, frames.len() * PAGE_SIZE).unwrap();
    assert!(q.as_ptr() as usize >= va + (frames.len() + 1) * PAGE_SIZE, "VM-3 lowest fit past the kept range");
    vm.check();
}

/// The frame cache's release (shrinker, purge) of an area the platform cannot unmap keeps its
/// frames (leaked, reported) and its range for good; the pfn array goes back. `VmallocUsed`
/// never counted the cached frames (VM-13).
#[test]
fn a_cached_area_that_cannot_be_unmapped_keeps_its_frames_and_range() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    warm_up(&pa, &vm);
    let free_before = pa.total_free();
    let p = vm.vmalloc(&pa, 3 * PAGE_SIZE).unwrap();
    let va = p.as_ptr() as usize;
    let frames: Vec<usize> = (0..3).map(|i| vm.mmu().lookup(va + i * PAGE_SIZE).unwrap()).collect();
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    assert_eq!((vm.cached_areas(), vm.nr_vmalloc_pages()), (1, 0), "VM-13: cached frames are not counted");
    vm.mmu().fail_unmap.store(true, Relaxed);
    assert_eq!(vm.shrink(&pa, usize::MAX), 0, "nothing freed: the unmap was refused");
    vm.mmu().fail_unmap.store(false, Relaxed);
    assert_eq!(vm.cached_areas(), 0);
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(log.contains("cannot unmap a cached area of 3 pages; its frames are kept (leaked)"), "{log}");
    assert_kept_for_good(&pa, &vm, va, &frames, free_before);
}

/// `bind` follows the machine, not its address: a `Kmem` moved after binding (here into a
/// `Box`, as an owner does once boot is over) is still the machine vmalloc serves, and its
/// areas keep their frames (VM-10) and go back when freed (VM-13).
#[test]
fn a_bound_kmem_may_move() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    vm.bind(&pa);
    let before = &pa as *const Kmem<Board> as usize;
    let pa = Box::new(pa);
    assert_ne!(&*pa as *const Kmem<Board> as usize, before, "the machine moved");
    let p = vm.vmalloc(&pa, 2 * PAGE_SIZE).expect("the moved machine is the bound one");
    let pfn = vm.vmalloc_to_pfn(p.as_ptr()).expect("VM-10: mapped");
    assert!(pa.pfn_to_page(pfn).unwrap().is_allocated(), "VM-10: a frame of this machine, allocated");
    assert_eq!(vm.nr_vmalloc_pages(), 2, "VM-13");
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    assert_eq!(vm.nr_vmalloc_pages(), 0, "VM-13");
    vm.check();
}

/// A different `Kmem` built where the bound one lived is another machine: vmalloc refuses it
/// instead of handing it a frame of the first machine from the frame cache (a pfn the second
/// machine holds free: two owners).
#[test]
#[should_panic(expected = "vmalloc used with two page allocators")]
fn another_kmem_at_the_bound_ones_address_is_refused() {
    let (first, second) = (Region::new(32 << 20), Region::new(32 << 20));
    let (mut pa, vm) = setup(&first);
    let p = vm.vmalloc(&pa, 2 * PAGE_SIZE).unwrap();
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    assert_eq!(vm.cached_areas(), 1, "machine 1's frames wait in the frame cache");
    let at = &pa as *const Kmem<Board> as usize;
    pa = Kmem::new(boot(&second, true), SlabConfig::default());
    assert_eq!(&pa as *const Kmem<Board> as usize, at, "machine 2 lives where machine 1 did");
    let q = vm.vmalloc(&pa, 2 * PAGE_SIZE);
    // Not reached when the machine is refused; otherwise say what went wrong.
    let pfn = q.ok().and_then(|q| vm.vmalloc_to_pfn(q.as_ptr()));
    panic!("machine 2 accepted; it got pfn {pfn:x?}");
}

/// Holds every free page, then gives back those with an odd pfn: no two free frames are
/// adjacent, so each page of a vmalloc is a run of its own (one `Mmu::map` call per page).
/// Returns the pages held.
fn fragment(pa: &Kmem<Board>) -> Vec<&kmem_core::memmap::Page> {
    let mut held = Vec::new();
    while let Ok(p) = pa.alloc_pages(GFP_ATOMIC | __GFP_MEMALLOC | __GFP_NOWARN, 0) {
        held.push(p);
    }
    held.retain(|&p| {
        let odd = pa.page_to_pfn(p).unwrap() % 2 == 1;
        if odd {
            // SAFETY: The test's own page, unused afterwards.
            unsafe { pa.free_pages(p, 0) };
        }
        !odd
    });
    pa.drain_local_pages();
    held
}

/// A vmalloc whose second `Mmu::map` fails: the page mapped first is unmapped again, and
/// everything comes back (frames, page array, the range: VM-3 gives the same address next).
/// When the platform refuses that unmap too, `Mmu::unmap`'s contract forbids reusing what it
/// mapped: that frame is kept (leaked, reported), the two never mapped are freed, and the
/// range stays busy for good, hidden from lookups (VM-10) and never mapped over again;
/// `VmallocUsed` counts none of it (VM-13).
#[test]
fn a_vmalloc_that_cannot_undo_its_partial_mapping_keeps_the_frame_and_the_range() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    warm_up(&pa, &vm);
    vm.set_lazy_max_pages(0); // No frame cache, no lazy ranges: what is freed is free at once.
    let _held = fragment(&pa);
    let free = pa.total_free();
    let fail_second_map = || {
        let calls = vm.mmu().map_calls.load(Relaxed);
        vm.mmu().fail_map_at.store(calls + 2, Relaxed);
        assert!(vm.vmalloc(&pa, 3 * PAGE_SIZE).is_err());
        assert_eq!(vm.mmu().map_calls.load(Relaxed), calls + 2, "one call per page, the second failed");
        vm.mmu().fail_map_at.store(0, Relaxed);
        pa.drain_local_pages();
    };
    fail_second_map();
    assert!(vm.mmu().table.lock().unwrap().is_empty(), "the first page was unmapped again");
    assert_eq!(pa.total_free(), free, "frames and page array back");
    let p = vm.vmalloc(&pa, 3 * PAGE_SIZE).unwrap();
    assert_eq!(p.as_ptr() as usize, VSTART, "VM-3: the range came back");
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    vm.reclaim_and_purge(&pa);
    pa.drain_local_pages();
    assert_eq!(pa.total_free(), free);

    vm.mmu().fail_unmap.store(true, Relaxed);
    fail_second_map();
    vm.mmu().fail_unmap.store(false, Relaxed);
    let mapped: Vec<(usize, usize)> = vm.mmu().table.lock().unwrap().iter().map(|(&v, &f)| (v, f)).collect();
    assert_eq!(mapped.len(), 1, "the platform refused to unmap the first page");
    let (va, pfn) = mapped[0];
    assert_eq!(va, VSTART);
    assert!(pa.pfn_to_page(pfn).unwrap().is_allocated(), "pfn {pfn:#x} is still mapped: never reused");
    assert_eq!(pa.total_free(), free - 1, "only the mapped frame is kept; the others and the array are back");
    assert_eq!(vm.stats().unmap_failures.load(Relaxed), 1);
    assert_eq!(vm.nr_vmalloc_pages(), 0, "VM-13: backs no area");
    assert_eq!(vm.vmalloc_to_pfn(va as *const u8), None, "VM-10: no live area there");
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(
        log.contains(&format!(
            "cannot unmap a partly mapped area at {va:#x} (1 of 3 pages mapped); its frames are kept (leaked)"
        )),
        "{log}"
    );
    let mut info = String::new();
    vm.vmallocinfo(&mut info).unwrap();
    assert!(!info.contains(&format!("{va:016x}-")), "not an area: {info}");
    vm.check();
    // Purges and reclaim do not give the range back: the next area goes past it (the SimMmu
    // panics on a map over a mapped page).
    vm.reclaim_and_purge(&pa);
    let q = vm.vmalloc(&pa, 3 * PAGE_SIZE).unwrap();
    assert!(q.as_ptr() as usize >= VSTART + 4 * PAGE_SIZE, "VM-3 lowest fit past the kept range");
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&pa, q.as_ptr()) };
    vm.check();
}

/// `vmap` of two pages that are not adjacent: the second `Mmu::map` fails and so does the
/// unmap of the first. The pages stay the caller's (VM-9) but the range that may still reach
/// one of them is kept busy, reported, and never mapped over by a later `vmap`.
#[test]
fn a_vmap_that_cannot_undo_its_partial_mapping_never_reuses_the_range() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    warm_up(&pa, &vm);
    let block = pa.alloc_pages(GFP_KERNEL, 2).unwrap();
    // SAFETY: The test's own block, just allocated.
    unsafe { pa.split_page(block, 2) }.unwrap();
    let first = pa.page_to_pfn(block).unwrap();
    let pages = [pa.pfn_to_page(first).unwrap(), pa.pfn_to_page(first + 2).unwrap()];
    let calls = vm.mmu().map_calls.load(Relaxed);
    vm.mmu().fail_map_at.store(calls + 2, Relaxed);
    vm.mmu().fail_unmap.store(true, Relaxed);
    assert!(vm.vmap(&pa, &pages, 0).is_err());
    vm.mmu().fail_map_at.store(0, Relaxed);
    vm.mmu().fail_unmap.store(false, Relaxed);
    assert_eq!(*vm.mmu().table.lock().unwrap(), BTreeMap::from([(VSTART, first)]), "the unmap was refused");
    assert_eq!(vm.stats().unmap_failures.load(Relaxed), 1);
    let log = pa.platform().log.lock().unwrap().clone();
    assert!(
        log.contains(&format!(
            "cannot unmap a partly mapped area at {VSTART:#x} (1 of 2 pages mapped); its address range is never reused"
        )),
        "{log}"
    );
    vm.check();
    vm.reclaim_and_purge(&pa);
    let p = vm.vmap(&pa, &pages, 0).expect("another range");
    assert!(p.as_ptr() as usize >= VSTART + 3 * PAGE_SIZE, "VM-3 lowest fit past the kept range");
    assert_eq!(vm.mmu().lookup(p.as_ptr() as usize + PAGE_SIZE), Some(first + 2));
    // SAFETY: The test's own mapping, unused afterwards.
    unsafe { vm.vunmap(&pa, p.as_ptr()) };
    for page in pages {
        assert!(page.is_allocated(), "VM-9: the caller's pages survive");
    }
    assert_eq!(vm.nr_vmalloc_pages(), 0, "VM-13: vmap pages are not vmalloc's");
    vm.check();
}

/// `vread_iter` on a board that cannot read HighMem (`Platform::read_highmem`'s default): the
/// read stops at the first HighMem frame and returns the bytes written before it (a short
/// `copy_page_to_iter_nofault`); the rest of the buffer is left as it was.
#[test]
fn vread_stops_short_at_a_highmem_frame_the_platform_cannot_read() {
    use kmem_core::page_alloc::Config;
    const JUNK: u8 = 0x5c;
    let region = Region::new(32 << 20);
    let layout = crate::highmem_layout(&region);
    let config = Config { oom_timeout_ns: 0, ..Config::default() };
    super::ON_BOARD_CPU.with(|c| c.set(true));
    // SAFETY: The region is ours, zeroed and outlives the allocator; pages above 6144 are never
    // touched through the direct map.
    let pa = unsafe { kmem_core::PageAllocator::new(super::board(true), layout, config) }.expect("boot");
    let k = Kmem::new(pa, SlabConfig::default());
    let vm = Vmalloc::new(SimMmu::new(&region), VSTART, VPAGES * PAGE_SIZE, 1).unwrap();
    let p = vm.vmalloc(&k, 2 * PAGE_SIZE).unwrap();
    let va = p.as_ptr() as usize;
    assert_eq!(va, VSTART);
    assert!(vm.vmalloc_to_pfn(p.as_ptr()).is_some_and(|pfn| pfn >= 6144), "a HighMem frame");
    // The page below the area is a hole (zeros, counted); the area's first frame cannot be read.
    let mut buf = vec![JUNK; 3 * PAGE_SIZE];
    // SAFETY: Single-threaded; nothing refers into the area.
    assert_eq!(unsafe { vm.vread_iter(&k, &mut buf, va - PAGE_SIZE) }, PAGE_SIZE, "short: the hole only");
    assert!(buf[..PAGE_SIZE].iter().all(|&b| b == 0), "the hole reads as zeros");
    assert!(buf[PAGE_SIZE..].iter().all(|&b| b == JUNK), "nothing written past the short copy");
    // SAFETY: As above.
    assert_eq!(unsafe { vm.vread_iter(&k, &mut buf[..10], va + 5) }, 0, "nothing at all from inside the area");
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&k, p.as_ptr()) };
    vm.check();
}

/// `vread_iter` while a `vzalloc` served from the frame cache is zeroing its area (SEMANTICS
/// §5.4): the area is not readable yet (a hole, as the kernel's `VM_UNINITIALIZED` area whose
/// pages come zeroed), so the last owner's bytes never show through the new owner's area.
#[test]
fn vread_does_not_see_a_cached_area_before_its_zeroing() {
    let region = Region::new(32 << 20);
    let (pa, vm) = setup(&region);
    let p = vm.vmalloc(&pa, 2 * PAGE_SIZE).unwrap();
    let va = p.as_ptr() as usize;
    vm.mmu().write(va, &[0xee; 2 * PAGE_SIZE]);
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&pa, p.as_ptr()) };
    assert_eq!(vm.cached_areas(), 1);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (vmp, pap, out) = (&raw const vm, &raw const pa, seen.clone());
    ZERO_HOOK.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || {
            let mut buf = vec![0x5c; 2 * PAGE_SIZE];
            // SAFETY: `vm` and `pa` are the test's, alive for the whole `vzalloc` that runs this;
            // single-threaded, and nothing refers into the area.
            let n = unsafe { (*vmp).vread_iter(&*pap, &mut buf, va) };
            assert_eq!(n, buf.len());
            *out.borrow_mut() = buf;
        }));
    });
    let q = vm.vzalloc(&pa, 2 * PAGE_SIZE).unwrap();
    assert_eq!(q, p, "the cached area again");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2 * PAGE_SIZE, "the hook ran");
    assert!(seen.iter().all(|&b| b == 0), "the last owner's bytes showed through a vzalloc area");
    let mut buf = vec![0x5c; 2 * PAGE_SIZE];
    // SAFETY: Single-threaded; nothing refers into the area.
    assert_eq!(unsafe { vm.vread_iter(&pa, &mut buf, va) }, buf.len());
    assert!(buf.iter().all(|&b| b == 0), "readable (zeros) once handed out");
    vm.mmu().write(va, &[0x77; 2 * PAGE_SIZE]);
    // SAFETY: As above.
    assert_eq!(unsafe { vm.vread_iter(&pa, &mut buf, va) }, buf.len());
    assert!(buf.iter().all(|&b| b == 0x77), "the new owner's bytes");
    vm.check();
    // SAFETY: The test's own area, unused afterwards.
    unsafe { vm.vfree(&pa, q.as_ptr()) };
    vm.check();
}
