//! `init_on_alloc`/`init_on_free` for objects: `lib/test_meminit.c`'s kmalloc, vmalloc and
//! cache halves (TST-11, TST-12, TST-13) and SEMANTICS §3 "Zeroing", through `kmem::Machine`.
//!
//! Each test writes garbage into an object, frees it, takes the same object back (the per-CPU
//! array is LIFO) and reads it, under every combination of the two settings:
//! - caches without a constructor and without `SLAB_TYPESAFE_BY_RCU` (and kmalloc, and
//!   vmalloc) hand it back zeroed when either setting is on, with the garbage when both are off
//!   (the control that shows the tests see the difference), and through the bulk API too;
//! - a constructor cache is never wiped: its constructor's word and the caller's bytes survive;
//! - an RCU cache's object is not wiped by free, nor by `init_on_alloc` when handed out again
//!   (only an explicit `__GFP_ZERO` zeroes it);
//! - `__GFP_ZERO` zeroes whatever the settings.
//!
//! The page-level half (TST-10) is `pages_init.rs`.

use std::ptr::NonNull;

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_TYPESAFE_BY_RCU, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef, ObjFn};
use kmem::{Machine, Profile};

use crate::builder;

/// Every combination of `(init_on_alloc, init_on_free)`.
const SETTINGS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// `test_meminit.c`'s garbage, whose bytes repeat as `9e ba a7 09`.
const GARBAGE: u32 = 0x09A7_BA9E;

/// `test_meminit.c`'s constructor pattern, written into an object's first word.
const CTOR_PATTERN: u32 = 0x4141_4141;

fn machine((on_alloc, on_free): (bool, bool)) -> Machine {
    builder(Profile::X86_64, 64).init_on_alloc(on_alloc).init_on_free(on_free).build().expect("build machine")
}

fn zeroed_by((on_alloc, on_free): (bool, bool)) -> bool {
    on_alloc || on_free
}

/// The byte `GARBAGE` puts at offset `i`.
fn garbage_at(i: usize) -> u8 {
    GARBAGE.to_le_bytes()[i % 4]
}

/// Fills `len` bytes at `p` with `GARBAGE`, from byte `skip` on.
fn scribble(p: NonNull<u8>, len: usize, skip: usize) {
    for i in skip..len {
        // SAFETY: `p` is a live allocation of the test of at least `len` bytes, used by nothing
        // else meanwhile.
        unsafe { p.as_ptr().add(i).write(garbage_at(i)) };
    }
}

fn bytes(p: NonNull<u8>, len: usize) -> Vec<u8> {
    // SAFETY: As in `scribble`: the test's own live allocation of at least `len` bytes.
    unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }.to_vec()
}

fn is_zero(p: NonNull<u8>, len: usize) -> bool {
    bytes(p, len).iter().all(|&b| b == 0)
}

fn is_garbage(p: NonNull<u8>, len: usize, skip: usize) -> bool {
    bytes(p, len).iter().enumerate().skip(skip).all(|(i, &b)| b == garbage_at(i))
}

/// The object sizes of `test_kmemcache`: 8·2^i up to 4096.
fn cache_sizes() -> impl Iterator<Item = usize> {
    (0..=9).map(|i| 8 << i)
}

fn create(m: &Machine, name: &str, size: usize, args: &CacheArgs, flags: SlabFlags) -> CacheRef {
    m.kmem_cache_create(name, size, args, flags | SLAB_NO_MERGE).unwrap_or_else(|e| panic!("create {name}: {e}"))
}

fn free(m: &Machine, c: CacheRef, p: NonNull<u8>) {
    // SAFETY: Every caller passes an object it allocated from `c` and no longer uses.
    unsafe { m.kmem_cache_free(c, p.as_ptr()) };
}

fn destroy(m: &Machine, c: CacheRef) {
    // SAFETY: Callers use neither `c` nor its objects afterwards.
    unsafe { m.kmem_cache_destroy(c) }.expect("every object was freed");
}

/// Allocates from `c` until the allocation returns `p` again (at most 1024 tries, as
/// `test_rcu_persistent`), freeing the others afterwards.
fn alloc_until(m: &Machine, c: CacheRef, gfp: kmem::gfp::Gfp, p: NonNull<u8>) -> NonNull<u8> {
    alloc_within(m, c, gfp, p, 1024)
}

/// [`alloc_until`] with at most `tries` allocations.
fn alloc_within(m: &Machine, c: CacheRef, gfp: kmem::gfp::Gfp, p: NonNull<u8>, tries: usize) -> NonNull<u8> {
    let mut others = Vec::new();
    let mut found = None;
    for _ in 0..tries {
        let q = m.kmem_cache_alloc(c, gfp).expect("kmem_cache_alloc");
        if q == p {
            found = Some(q);
            break;
        }
        others.push(q);
    }
    for q in others {
        free(m, c, q);
    }
    found.unwrap_or_else(|| panic!("the freed object comes back within {tries} allocations"))
}

/// TST-12, caches without constructor or RCU: the object handed out again is zeroed iff either
/// setting is on, at every size, one by one and through the bulk API.
#[test]
fn tst12_plain_cache_objects_come_back_zeroed_under_init_on_alloc_or_free() {
    for settings in SETTINGS {
        let m = machine(settings);
        for size in cache_sizes() {
            let c = create(&m, &format!("tst12-{size}"), size, &CacheArgs::default(), SlabFlags::empty());
            let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
            scribble(p, size, 0);
            free(&m, c, p);
            let q = alloc_until(&m, c, GFP_KERNEL, p);
            if zeroed_by(settings) {
                assert!(is_zero(q, size), "{settings:?} size {size}: {:x?}", bytes(q, size.min(32)));
            } else {
                assert!(is_garbage(q, size, 8), "{settings:?} size {size}: the control keeps the garbage");
            }
            // The bulk API: 100 objects written and freed come back zeroed too.
            let mut objs = [std::ptr::null_mut(); 100];
            assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut objs), 100);
            for &o in &objs {
                scribble(NonNull::new(o).unwrap(), size, 0);
            }
            // SAFETY: The 100 objects just allocated from `c`, unused afterwards.
            unsafe { m.kmem_cache_free_bulk(Some(c), &objs) };
            let mut again = [std::ptr::null_mut(); 100];
            assert_eq!(m.kmem_cache_alloc_bulk(c, GFP_KERNEL, &mut again), 100);
            let dirty = again.iter().filter(|&&o| !is_zero(NonNull::new(o).unwrap(), size)).count();
            if zeroed_by(settings) {
                assert_eq!(dirty, 0, "{settings:?} size {size}: bulk objects zeroed");
            } else {
                assert!(dirty > 0, "{settings:?} size {size}: the control sees old bytes");
            }
            // SAFETY: As above.
            unsafe { m.kmem_cache_free_bulk(Some(c), &again) };
            free(&m, c, q);
            destroy(&m, c);
        }
    }
}

/// TST-12 with `__GFP_ZERO`: zeroed under every setting, the defaults included (SL-10).
#[test]
fn tst12_gfp_zero_objects_are_zeroed_under_every_setting() {
    for settings in SETTINGS {
        let m = machine(settings);
        for size in cache_sizes() {
            let c = create(&m, &format!("tst12z-{size}"), size, &CacheArgs::default(), SlabFlags::empty());
            let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
            scribble(p, size, 0);
            free(&m, c, p);
            let q = alloc_until(&m, c, GFP_KERNEL | __GFP_ZERO, p);
            assert!(is_zero(q, size), "{settings:?} size {size}");
            free(&m, c, q);
            destroy(&m, c);
        }
    }
}

unsafe fn ctor(_ctx: *const (), obj: *mut u8) {
    // SAFETY: The slab layer passes a whole object of at least 8 bytes (the smallest size here).
    unsafe { obj.cast::<u32>().write_unaligned(CTOR_PATTERN) };
}

/// TST-12, constructor caches: never zeroed by either setting (§3 "caches with ctor never get
/// init_on_alloc"; `init_on_free` skips them), so the constructor's word and every byte the
/// caller wrote after it come back.
#[test]
fn tst12_constructor_cache_objects_are_never_wiped() {
    for settings in SETTINGS {
        let m = machine(settings);
        for size in cache_sizes() {
            // SAFETY: `ctor` writes only the object it is given, from any thread.
            let args = CacheArgs { ctor: Some(unsafe { ObjFn::new(ctor, std::ptr::null()) }), ..CacheArgs::default() };
            let c = create(&m, &format!("tst12c-{size}"), size, &args, SlabFlags::empty());
            let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
            assert_eq!(bytes(p, 4), CTOR_PATTERN.to_le_bytes(), "{settings:?} size {size}: constructed");
            scribble(p, size, 4);
            free(&m, c, p);
            let q = alloc_until(&m, c, GFP_KERNEL, p);
            assert_eq!(bytes(q, 4), CTOR_PATTERN.to_le_bytes(), "{settings:?} size {size}: the ctor's word");
            assert!(is_garbage(q, size, 4), "{settings:?} size {size}: not wiped");
            free(&m, c, q);
            destroy(&m, c);
        }
    }
}

/// TST-12/TST-13, `SLAB_TYPESAFE_BY_RCU` caches: free does not wipe the object (a reader
/// inside `rcu_read_lock` may still look at it), and neither does `init_on_alloc` when the
/// same object is handed out again; `__GFP_ZERO` still zeroes it.
#[test]
fn tst13_rcu_cache_objects_persist_across_free_and_reallocation() {
    for settings in SETTINGS {
        let m = machine(settings);
        for size in cache_sizes() {
            let args = CacheArgs { align: size, ..CacheArgs::default() };
            let c = create(&m, &format!("tst13-{size}"), size, &args, SLAB_TYPESAFE_BY_RCU);
            let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
            scribble(p, size, 0);
            {
                let _reader = m.rcu_read_lock();
                free(&m, c, p);
                assert!(is_garbage(p, size, 0), "{settings:?} size {size}: not wiped by free");
            }
            let q = alloc_until(&m, c, GFP_KERNEL, p);
            assert!(is_garbage(q, size, 0), "{settings:?} size {size}: not wiped on reallocation");
            free(&m, c, q);
            let z = alloc_until(&m, c, GFP_KERNEL | __GFP_ZERO, p);
            assert!(is_zero(z, size), "{settings:?} size {size}: __GFP_ZERO zeroes");
            free(&m, c, z);
            m.rcu_barrier();
            destroy(&m, c);
        }
    }
}

/// TST-11, the kmalloc half: sizes 2^0..2^19 (slab classes and whole pages).
#[test]
fn tst11_kmalloc_comes_back_zeroed_under_init_on_alloc_or_free() {
    for settings in SETTINGS {
        let m = machine(settings);
        for shift in 0..=19 {
            let size = 1usize << shift;
            let p = m.kmalloc(size, GFP_KERNEL).expect("kmalloc");
            scribble(p, size, 0);
            // SAFETY: The test's own allocation, unused afterwards.
            unsafe { m.kfree(p.as_ptr()) };
            let q = m.kmalloc(size, GFP_KERNEL).expect("kmalloc again");
            if zeroed_by(settings) {
                assert!(is_zero(q, size), "{settings:?} kmalloc({size})");
            } else if q == p && size >= 16 {
                // The control, where the same memory came back (the first 8 bytes may hold a
                // free pointer).
                assert!(is_garbage(q, size, 8), "{settings:?} kmalloc({size}): the control keeps the garbage");
            }
            // SAFETY: As above.
            unsafe { m.kfree(q.as_ptr()) };
        }
    }
}

/// TST-11, the vmalloc half: sizes 2^0..2^19, including areas vmalloc reuses with their pages
/// still mapped (the lazily purged ones it keeps for speed).
#[test]
fn tst11_vmalloc_comes_back_zeroed_under_init_on_alloc_or_free() {
    for settings in SETTINGS {
        let m = machine(settings);
        let mut saw_old_bytes = false;
        for shift in 0..=19 {
            let size = 1usize << shift;
            for _ in 0..2 {
                let p = m.vmalloc(size).expect("vmalloc");
                scribble(p, size, 0);
                // SAFETY: The test's own area, unused afterwards.
                unsafe { m.vfree(p.as_ptr()) };
                let q = m.vmalloc(size).expect("vmalloc again");
                if zeroed_by(settings) {
                    assert!(is_zero(q, size), "{settings:?} vmalloc({size})");
                } else {
                    saw_old_bytes |= is_garbage(q, size, 0);
                }
                // SAFETY: As above.
                unsafe { m.vfree(q.as_ptr()) };
            }
        }
        if !zeroed_by(settings) {
            assert!(saw_old_bytes, "the control: some area came back with its old bytes");
        }
    }
}

/// `init_on_free` applies to every free, not only the fast path's: objects freed in atomic
/// context (the slot kept, the fast path skipped) and objects taken back through the node's
/// freelist (where they carried a free pointer, which the
/// kernel's `maybe_wipe_obj_freeptr` clears) all come back zeroed.
#[test]
fn tst12_init_on_free_zeroes_objects_freed_in_atomic_context_and_through_the_node() {
    let m = machine((false, true));
    for size in cache_sizes() {
        let c = create(&m, &format!("tst12a-{size}"), size, &CacheArgs::default(), SlabFlags::empty());
        let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
        scribble(p, size, 0);
        {
            let _atomic = kmem::context::atomic_section();
            free(&m, c, p);
        }
        let q = alloc_until(&m, c, GFP_KERNEL, p);
        assert!(is_zero(q, size), "size {size}: freed in atomic context: {:x?}", bytes(q, size.min(32)));
        // Back on the node's freelist, where it carries a free pointer, and taken again.
        free(&m, c, q);
        m.kmem_cache_shrink(c);
        let r = alloc_until(&m, c, GFP_KERNEL, q);
        assert!(is_zero(r, size), "size {size}: through the node's freelist: {:x?}", bytes(r, size.min(32)));
        free(&m, c, r);
        destroy(&m, c);
    }
}
