//! SEMANTICS §8.5: the allocator expectations of Linux `mm/kasan/kasan_test_c.c` that double
//! as semantic rules, ported as plain slab tests through `kmem::Machine` (the mempool cases are
//! TST-16, in `mempool_poison.rs`).
//!
//! kmem has no shadow memory, so a KASAN report on an access cannot be ported as such. What
//! is ported is what the allocator itself does with the same calls and sizes:
//! - `krealloc_more_oob`/`krealloc_less_oob`: which object `krealloc` keeps, what it copies,
//!   and — with `slub_debug` on the kmalloc cache — that the bytes past the new request are
//!   kmalloc red zone, so a write there is reported (`kmalloc Redzone overwritten`) while the
//!   bytes below it are the caller's;
//! - `krealloc_uaf`, `kmalloc_double_kzfree`, `kmem_cache_invalid_free`: the misuse is reported
//!   in SLUB's words, nothing is written, and the object's state (free, or allocated) is kept;
//! - `ksize_unpoisons_memory`: `ksize` is the class size, and until `ksize` hands the tail to
//!   the caller, the bytes past the request are red zone;
//! - `kfree_via_page`/`kfree_via_phys`: `kfree` of the object's address rebuilt from its page
//!   or its physical address frees it;
//! - `kmem_cache_bulk`: ten distinct, non-overlapping 200-byte objects, all given back.
//!
//! `kmem_cache_double_destroy` is covered by
//! `cache_handles::a_destroyed_cache_is_refused_and_a_second_destroy_is_reported`, the
//! interior-pointer halves of `krealloc`/`ksize` by `live_objects.rs`.

use crate::{read_obj as read, write_obj as write};
use std::ptr::NonNull;

use kmem::gfp::GFP_KERNEL;
use kmem::kmalloc::classes::KMALLOC_MAX_CACHE_SIZE;
use kmem::slab::debug::{POISON_END, POISON_FREE, SLUB_RED_ACTIVE};
use kmem::slab::flags::{SLAB_TYPESAFE_BY_RCU, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef};
use kmem::{Machine, PAGE_SIZE, Profile};

use crate::{builder, count_log};

/// `KASAN_GRANULE_SIZE` of generic KASAN, which the kernel test's sizes are written with.
const KASAN_GRANULE_SIZE: usize = 8;

/// A 64 MiB x86_64 machine without per-CPU page lists.
fn machine() -> Machine {
    builder(Profile::X86_64, 64).pcp(false).build().expect("build machine")
}

/// As [`machine`], with `slub_debug=ZU` on the kmalloc class `class` (request sizes recorded
/// and the bytes past them red-zoned, as `slub_kunit`'s kmalloc caches).
fn debug_machine(class: usize) -> Machine {
    builder(Profile::X86_64, 64).pcp(false).slub_debug(format!("ZU,kmalloc-{class}")).build().expect("build machine")
}

fn at(p: NonNull<u8>, off: usize) -> NonNull<u8> {
    NonNull::new(p.as_ptr().wrapping_add(off)).expect("not null")
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn kfree(m: &Machine, p: NonNull<u8>) {
    // SAFETY: The test's own object, not used afterwards.
    unsafe { m.kfree(p.as_ptr()) };
}

/// Slab reports that `f` caused (a debug cache's checks count each `FIX` line too).
fn errors<T>(m: &Machine, f: impl FnOnce() -> T) -> (usize, T) {
    let before = m.slabs().errors();
    let out = f();
    (m.slabs().errors() - before, out)
}

/// Reports one `validate_slab_cache` of kmalloc class `class` makes.
fn validate(m: &Machine, class: usize) -> usize {
    let k = m.kmalloc_cache(class, GFP_KERNEL).expect("kmalloc cache");
    errors(m, || m.validate_slab_cache(k).expect("lists and counters consistent")).0
}

/// `krealloc(p, new, GFP_KERNEL)`, which must succeed.
fn krealloc(m: &Machine, p: NonNull<u8>, new: usize) -> NonNull<u8> {
    // SAFETY: `p` is the test's own live object; on success only the result is used.
    unsafe { m.krealloc(p.as_ptr(), new, GFP_KERNEL) }.unwrap_or_else(|_| panic!("krealloc to {new}"))
}

/// `krealloc_more_oob_helper` / `krealloc_less_oob_helper` without debugging: `size1` bytes
/// written, `krealloc` to `size2`; the object is kept in place (both sizes share a kmalloc
/// class, or a page block), its first `min(size1, size2)` bytes with it, and every offset the
/// kernel test writes below `size2` (`size1 - 1`, `size1`, the middle, `size2 - 1`) is the
/// caller's: writing them changes nothing else.
fn krealloc_keeps_object_and_contents(size1: usize, size2: usize, ksize: usize) {
    let m = machine();
    let ptr1 = m.kmalloc(size1, GFP_KERNEL).expect("kmalloc");
    let neighbour = m.kmalloc(size1, GFP_KERNEL).expect("kmalloc");
    write(&m, ptr1, &pattern(size1));
    write(&m, neighbour, &vec![0x5a; size1]);
    let ptr2 = krealloc(&m, ptr1, size2);
    assert_eq!(ptr2, ptr1, "krealloc({size1} -> {size2}) fits the object: kept in place");
    // SAFETY: The test's own live object.
    assert_eq!(unsafe { m.ksize(ptr2.as_ptr()) }, ksize, "krealloc({size1} -> {size2})");
    let keep = size1.min(size2);
    assert_eq!(read(&m, ptr2, keep), pattern(keep), "krealloc({size1} -> {size2}) kept the contents");
    let middle = size1.min(size2) + size1.abs_diff(size2) / 2;
    for off in [size1 - 1, size1, middle, size2 - 1].into_iter().filter(|&o| o < size2) {
        write(&m, at(ptr2, off), b"x");
    }
    assert_eq!(read(&m, neighbour, size1), vec![0x5a; size1], "writes below size2 stay in the object");
    kfree(&m, ptr2);
    kfree(&m, neighbour);
}

/// §8.5 `krealloc_more_oob` (201 → 235) and `krealloc_large_more_oob` (8192 + 201 → 8192 +
/// 235): `[0, 235)` is usable after the grow, in the same object; the first 201 bytes kept.
#[test]
fn kasan_krealloc_more_oob_keeps_the_object_and_its_bytes() {
    krealloc_keeps_object_and_contents(201, 235, 256);
    let big = KMALLOC_MAX_CACHE_SIZE;
    krealloc_keeps_object_and_contents(big + 201, big + 235, 4 * PAGE_SIZE);
}

/// §8.5 `krealloc_less_oob` (235 → 201) and `krealloc_large_less_oob`: the shrink keeps the
/// object and its first 201 bytes.
#[test]
fn kasan_krealloc_less_oob_keeps_the_object_and_its_bytes() {
    krealloc_keeps_object_and_contents(235, 201, 256);
    let big = KMALLOC_MAX_CACHE_SIZE;
    krealloc_keeps_object_and_contents(big + 235, big + 201, 4 * PAGE_SIZE);
}

/// Writes one byte at `off` of `p` and returns the reports the next validation makes (the
/// validation restores the red zone, so each write is counted on its own).
fn redzone_hit(m: &Machine, p: NonNull<u8>, off: usize) -> usize {
    write(m, at(p, off), b"x");
    validate(m, 256)
}

/// §8.5 `krealloc_more_oob` with a kmalloc debug cache (`slub_debug=ZU,kmalloc-256`): after
/// the grow from 201 to 235 the offsets the kernel test writes (`size1 - 1`, `size1`, the
/// middle, `size2 - 1`) are the caller's — no report — and `size2` and the rest of the
/// 256-byte object are red zone: a write there is reported (report + `FIX`).
#[test]
fn kasan_krealloc_more_oob_red_zone_moves_to_the_new_size() {
    let (size1, size2) = (201, 235);
    let m = debug_machine(256);
    let ptr1 = m.kmalloc(size1, GFP_KERNEL).expect("kmalloc");
    assert_eq!(read(&m, at(ptr1, size1), 256 - size1), vec![SLUB_RED_ACTIVE; 256 - size1], "kmalloc red zone");
    let ptr2 = krealloc(&m, ptr1, size2);
    assert_eq!(ptr2, ptr1);
    let middle = size1 + (size2 - size1) / 2;
    for off in [size1 - 1, size1, middle, size2 - 1] {
        assert_eq!(redzone_hit(&m, ptr2, off), 0, "offset {off} is below the new size {size2}");
    }
    for off in [size2, size2.next_multiple_of(KASAN_GRANULE_SIZE), 255] {
        assert_eq!(redzone_hit(&m, ptr2, off), 2, "offset {off} is past the new size {size2}");
    }
    assert!(count_log(&m, "[kmalloc Redzone overwritten]") >= 3);
    assert_eq!(errors(&m, || kfree(&m, ptr2)).0, 0);
}

/// §8.5 `krealloc_less_oob` with a kmalloc debug cache: after the shrink from 235 to 201,
/// `size2 - 1` is the caller's and every offset the kernel test expects to be inaccessible —
/// `size2`, its granule round-up, the middle, `size1 - 1`, `size1` — is red zone now.
#[test]
fn kasan_krealloc_less_oob_red_zone_moves_to_the_new_size() {
    let (size1, size2) = (235, 201);
    let m = debug_machine(256);
    let ptr1 = m.kmalloc(size1, GFP_KERNEL).expect("kmalloc");
    write(&m, ptr1, &vec![0xff; size1]);
    assert_eq!(validate(&m, 256), 0, "all 235 bytes were the caller's");
    let ptr2 = krealloc(&m, ptr1, size2);
    assert_eq!(ptr2, ptr1);
    assert_eq!(read(&m, ptr2, size2), vec![0xff; size2], "contents kept");
    assert_eq!(read(&m, at(ptr2, size2), 256 - size2), vec![SLUB_RED_ACTIVE; 256 - size2], "new tail red-zoned");
    assert_eq!(redzone_hit(&m, ptr2, size2 - 1), 0);
    let middle = size2 + (size1 - size2) / 2;
    for off in [size2, size2.next_multiple_of(KASAN_GRANULE_SIZE), middle, size1 - 1, size1] {
        assert_eq!(redzone_hit(&m, ptr2, off), 2, "offset {off} is past the new size {size2}");
    }
    assert_eq!(errors(&m, || kfree(&m, ptr2)).0, 0);
}

/// §8.5 `krealloc_uaf`: `krealloc` of a freed 201-byte object to 235 is reported
/// (`Object 0x… already free`) and gives NULL; it does not make the object live again (the
/// kernel: "doesn't unpoison the freed object"): it is still free exactly once, so the next
/// `kmalloc(201)` takes it and the one after gets another object.
#[test]
fn kasan_krealloc_uaf_returns_null_and_leaves_the_object_free() {
    let m = machine();
    let keep = m.kmalloc(201, GFP_KERNEL).expect("keeps the slab in use");
    let ptr1 = m.kmalloc(201, GFP_KERNEL).expect("kmalloc");
    kfree(&m, ptr1);
    // SAFETY: Deliberate misuse: `ptr1` was freed just above (detected, nothing written).
    let (n, ptr2) = errors(&m, || unsafe { m.krealloc(ptr1.as_ptr(), 235, GFP_KERNEL) });
    assert!(ptr2.is_err(), "krealloc of a freed object gave {ptr2:?}");
    assert_eq!(n, 1, "one report: {}", m.dmesg());
    assert_eq!(
        count_log(&m, &format!("BUG kmalloc-256 (Not tainted): Object 0x{:x} already free", ptr1.as_ptr() as usize)),
        1
    );
    assert_eq!(count_log(&m, &format!("FIX kmalloc-256: krealloc of 0x{:x} ignored", ptr1.as_ptr() as usize)), 1);
    assert_free_exactly_once(&m, 201, ptr1, keep, "krealloc_uaf");
}

/// The free object `ptr` (of a `size`-byte kmalloc) is on its CPU's free list exactly once:
/// the next allocation of its size takes it (LIFO reuse) and the one after does not; then
/// both and `keep` (the test's object that held the slab) are freed.
fn assert_free_exactly_once(m: &Machine, size: usize, ptr: NonNull<u8>, keep: NonNull<u8>, what: &str) {
    let a = m.kmalloc(size, GFP_KERNEL).expect("kmalloc");
    let b = m.kmalloc(size, GFP_KERNEL).expect("kmalloc");
    assert_eq!(a, ptr, "{what}: the freed object is still on the free list");
    assert_ne!(b, ptr, "{what}: and only once");
    for p in [a, b, keep] {
        kfree(m, p);
    }
}

/// §8.5 `kmalloc_double_kzfree`: the second `kfree_sensitive` of a 16-byte object is reported
/// as a double free, writes nothing, and frees nothing more: the object is handed out once.
/// Without debugging the free object is all zeroes (the first call wiped it; a free object in
/// a CPU array holds no free pointer), so "writes nothing" shows on the poisoned debug cache
/// (`slub_debug=FZPU,kmalloc-16`), whose free object keeps `POISON_FREE`…`POISON_END`.
#[test]
fn kasan_kmalloc_double_kzfree_is_reported_and_writes_nothing() {
    for debug in [false, true] {
        let m = if debug {
            builder(Profile::X86_64, 64).pcp(false).slub_debug("FZPU,kmalloc-16").build().expect("build machine")
        } else {
            machine()
        };
        let keep = m.kmalloc(16, GFP_KERNEL).expect("keeps the slab in use");
        let ptr = m.kmalloc(16, GFP_KERNEL).expect("kmalloc");
        write(&m, ptr, &[0xee; 16]);
        // SAFETY: Ours, given up here.
        let (n, ()) = errors(&m, || unsafe { m.kfree_sensitive(ptr.as_ptr()) });
        assert_eq!(n, 0, "debug {debug}: the first kfree_sensitive is fine: {}", m.dmesg());
        let freed = read(&m, ptr, 16);
        let want: Vec<u8> = if debug { [vec![POISON_FREE; 15], vec![POISON_END]].concat() } else { vec![0; 16] };
        assert_eq!(freed, want, "debug {debug}: the freed object");
        // SAFETY: Deliberate misuse: a second kfree_sensitive of the same object (detected).
        let (n, ()) = errors(&m, || unsafe { m.kfree_sensitive(ptr.as_ptr()) });
        assert!(n >= 1, "debug {debug}: the double free is reported: {}", m.dmesg());
        let report = if debug {
            "BUG kmalloc-16 (Not tainted): Object already free".to_owned()
        } else {
            format!("double free of object 0x{:x}", ptr.as_ptr() as usize)
        };
        assert_eq!(count_log(&m, &report), 1, "debug {debug}: {}", m.dmesg());
        assert_eq!(read(&m, ptr, 16), want, "debug {debug}: nothing written into the free object");
        assert_free_exactly_once(&m, 16, ptr, keep, &format!("double kzfree, debug {debug}"));
    }
}

/// §8.5 `ksize_unpoisons_memory`: `ksize(kmalloc(128 - 8 - 5))` is 128, more than the 115
/// bytes asked for; bytes 0 and 114 are the caller's. With a kmalloc debug cache the bytes
/// past the request (the kernel test's `size` and `size + 5`) are red zone until `ksize`
/// hands the whole object to the caller (`__ksize`'s `skip_orig_size_check`); KASAN's
/// stricter shadow, which keeps them poisoned after `ksize`, has no counterpart here.
#[test]
fn kasan_ksize_is_the_class_size_and_the_tail_is_red_zone_before_it() {
    let size = 128 - KASAN_GRANULE_SIZE - 5;
    let m = debug_machine(128);
    let ptr = m.kmalloc(size, GFP_KERNEL).expect("kmalloc");
    let hit = |off: usize| {
        write(&m, at(ptr, off), b"x");
        validate(&m, 128)
    };
    assert_eq!((hit(0), hit(size - 1)), (0, 0), "the request is the caller's");
    assert_eq!(hit(size), 2, "byte `size` is red zone");
    assert_eq!(hit(size + 5), 2, "byte `size + 5` is red zone");
    // SAFETY: The test's own live object.
    let real_size = unsafe { m.ksize(ptr.as_ptr()) };
    assert_eq!(real_size, 128);
    assert!(real_size > size);
    assert_eq!(errors(&m, || kfree(&m, ptr)).0, 0);
}

/// §8.5 `kfree_via_page`: `kfree(page_address(virt_to_page(ptr)) + offset_in_page(ptr))` of
/// an 8-byte object frees it, without a report.
#[test]
fn kasan_kfree_via_page_frees_the_object() {
    assert_kfree_of_an_alias_frees(|m, ptr| {
        let page = m.virt_to_page(ptr.as_ptr()).expect("a slab page");
        at(m.page_address(page).expect("lowmem"), ptr.as_ptr() as usize % PAGE_SIZE)
    });
}

/// `kfree` of `alias(m, ptr)`, another address of an 8-byte object `ptr`, frees the object
/// without a report: the next 8-byte kmalloc hands it out again.
fn assert_kfree_of_an_alias_frees(alias: impl Fn(&Machine, NonNull<u8>) -> NonNull<u8>) {
    let m = machine();
    let keep = m.kmalloc(8, GFP_KERNEL).expect("keeps the slab in use");
    let ptr = m.kmalloc(8, GFP_KERNEL).expect("kmalloc");
    let alias = alias(&m, ptr);
    assert_eq!(errors(&m, || kfree(&m, alias)).0, 0, "{}", m.dmesg());
    assert_eq!(m.kmalloc(8, GFP_KERNEL).expect("kmalloc"), ptr, "freed: handed out again");
    kfree(&m, ptr);
    kfree(&m, keep);
}

/// §8.5 `kfree_via_phys`: `kfree(phys_to_virt(virt_to_phys(ptr)))` of an 8-byte object frees
/// it, without a report.
#[test]
fn kasan_kfree_via_phys_frees_the_object() {
    assert_kfree_of_an_alias_frees(|m, ptr| {
        m.phys_to_virt(m.virt_to_phys(ptr.as_ptr()).expect("direct map")).expect("lowmem")
    });
}

fn cache(m: &Machine, size: usize, flags: SlabFlags) -> CacheRef {
    m.kmem_cache_create("test_cache", size, &CacheArgs::default(), flags).expect("create test_cache")
}

/// §8.5 `kmem_cache_invalid_free`: on a 200-byte `SLAB_TYPESAFE_BY_RCU` cache,
/// `kmem_cache_free(cache, p + 1)` is reported in SLUB's words (`Invalid object pointer`,
/// `FIX test_cache: Object at … not freed`) and the object stays allocated: the next
/// allocation is another object (the control shows a freed object would come back first), the
/// proper free of `p` reports nothing, and the destroy finds no object remaining.
#[test]
fn kasan_kmem_cache_invalid_free_is_rejected_and_the_object_stays_allocated() {
    let m = machine();
    let c = cache(&m, 200, SLAB_TYPESAFE_BY_RCU);
    let alloc = || m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
    // SAFETY: Objects of `c` the test gives up (or, for `p + 1`, no object: reported).
    let free = |p: *mut u8| unsafe { m.kmem_cache_free(c, p) };
    let r = alloc();
    free(r.as_ptr());
    assert_eq!(alloc(), r, "control: a freed object is the next one handed out");
    let p = r;
    let bad = p.as_ptr().wrapping_add(1);
    let (n, ()) = errors(&m, || free(bad));
    assert_eq!(n, 1, "one report: {}", m.dmesg());
    assert_eq!(count_log(&m, &format!("BUG test_cache (Not tainted): Invalid object pointer 0x{:x}", bad as usize)), 1);
    assert_eq!(count_log(&m, &format!("FIX test_cache: Object at 0x{:x} not freed", bad as usize)), 1);
    let q = alloc();
    assert_ne!(q, p, "p + 1 freed nothing: p is still allocated");
    assert_eq!(errors(&m, || free(p.as_ptr())).0, 0, "the proper free");
    free(q.as_ptr());
    // SAFETY: Not used again.
    let (n, res) = errors(&m, || unsafe { m.kmem_cache_destroy(c) });
    assert_eq!((n, res.is_ok()), (0, true), "no objects remaining in test_cache: {}", m.dmesg());
}

/// §8.5 `kmem_cache_bulk`: ten objects of a 200-byte cache by `kmem_cache_alloc_bulk`, each
/// written at its first and last byte; they are distinct and do not overlap (every write
/// survives the others, starts are at least 200 bytes apart), and after
/// `kmem_cache_free_bulk` the cache holds no slab and is destroyed without a report.
#[test]
fn kasan_kmem_cache_bulk_gives_ten_disjoint_objects_and_takes_them_back() {
    const SIZE: usize = 200;
    let m = machine();
    let c = cache(&m, SIZE, SlabFlags::empty());
    let mut p = [std::ptr::null_mut(); 10];
    assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut p), p.len());
    for (i, &o) in p.iter().enumerate() {
        let o = NonNull::new(o).expect("allocated");
        write(&m, o, &[42 + i as u8]);
        write(&m, at(o, SIZE - 1), &[42 + i as u8]);
    }
    for (i, &o) in p.iter().enumerate() {
        let o = NonNull::new(o).unwrap();
        let ends = (read(&m, o, 1)[0], read(&m, at(o, SIZE - 1), 1)[0]);
        assert_eq!(ends, (42 + i as u8, 42 + i as u8), "object {i} overlaps another");
    }
    let mut starts: Vec<usize> = p.iter().map(|&o| o as usize).collect();
    starts.sort_unstable();
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= SIZE), "objects overlap: {starts:x?}");
    // SAFETY: Ours, not used afterwards.
    let (n, ()) = errors(&m, || unsafe { m.kmem_cache_free_bulk(Some(c), &p) });
    assert_eq!(n, 0);
    assert_eq!(m.kmem_cache_shrink(c), 0, "every object came back");
    // SAFETY: Not used again.
    assert!(unsafe { m.kmem_cache_destroy(c) }.is_ok());
}
