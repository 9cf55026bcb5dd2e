//! Prefilled sheaves (SEMANTICS §3.1, Linux 6.18's `kmem_cache_prefill_sheaf` family): the
//! refill to capacity, allocations that cannot fail up to the size asked for and NULL after,
//! oversize sheaves, the barn of returned sheaves (at most `MAX_FULL_SHEAVES`, emptied by
//! shrink and destroy), `kmem_cache_refill_sheaf`'s cases, the `pfmemalloc` rule, the
//! `WARN_ON_ONCE` for a cache without a capacity, exhaustion with nothing leaked, misuse, and
//! two threads at once.

use std::ptr::NonNull;
use std::thread;

use kmem::gfp::{__GFP_MEMALLOC, __GFP_NORETRY, __GFP_NOWARN, __GFP_ZERO, GFP_KERNEL, GFP_NOWAIT};
use kmem::slab::flags::{SLAB_RED_ZONE, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef, MAX_FULL_SHEAVES, SheafError, SlabSheaf};
use kmem::{Gfp, Machine, Profile};

use crate::{builder, count_log, grab_all, read_obj, write_obj};

fn machine() -> Machine {
    builder(Profile::X86_64, 64).pcp(false).build().expect("build machine")
}

fn cache(m: &Machine, name: &str, size: usize, capacity: u32, flags: SlabFlags) -> CacheRef {
    let args = CacheArgs { sheaf_capacity: capacity, ..CacheArgs::default() };
    m.kmem_cache_create(name, size, &args, flags).expect("create cache")
}

/// Objects out with users (a held sheaf counts all it holds).
fn out(m: &Machine, c: CacheRef) -> usize {
    m.cache_info(c).in_use()
}

/// Objects in the barn's kept sheaves.
fn kept(m: &Machine, c: CacheRef) -> usize {
    m.cache_info(c).barn_objects
}

fn size(m: &Machine, sheaf: NonNull<SlabSheaf>) -> u32 {
    // SAFETY: Every sheaf passed here is live and used by this thread alone.
    unsafe { m.kmem_cache_sheaf_size(sheaf) }
}

fn take(m: &Machine, c: CacheRef, gfp: Gfp, sheaf: NonNull<SlabSheaf>) -> *mut u8 {
    // SAFETY: As in `size`.
    unsafe { m.kmem_cache_alloc_from_sheaf(c, gfp, sheaf) }
}

fn give_back(m: &Machine, c: CacheRef, gfp: Gfp, sheaf: NonNull<SlabSheaf>) -> bool {
    // SAFETY: As in `size`; the sheaf is not used afterwards.
    unsafe { m.kmem_cache_return_sheaf(c, gfp, sheaf) }
}

fn refill(
    m: &Machine,
    c: CacheRef,
    gfp: Gfp,
    sheaf: &mut Option<NonNull<SlabSheaf>>,
    n: u32,
) -> Result<(), SheafError> {
    // SAFETY: As in `size`.
    unsafe { m.kmem_cache_refill_sheaf(c, gfp, sheaf, n) }
}

fn free(m: &Machine, c: CacheRef, p: *mut u8) {
    // SAFETY: An object this test took from a sheaf of `c` and no longer uses.
    unsafe { m.kmem_cache_free(c, p) };
}

fn destroy(m: &Machine, c: CacheRef) -> Result<(), kmem::slab::DestroyError> {
    // SAFETY: Nothing uses `c` afterwards.
    unsafe { m.kmem_cache_destroy(c) }
}

#[test]
fn a_prefill_is_refilled_to_capacity_and_serves_exactly_that_many() {
    let m = machine();
    let c = cache(&m, "sheaf16", 128, 16, SlabFlags::empty());
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 5).expect("prefill");
    // `refill_sheaf` fills to the cache's capacity, not just to the 5 asked for.
    assert_eq!(size(&m, sheaf), 16);
    // SAFETY: Live, ours.
    assert_eq!(unsafe { sheaf.as_ref() }.capacity(), 16);
    assert_eq!((out(&m, c), kept(&m, c)), (16, 0), "the sheaf's objects are allocated");
    let mut got: Vec<*mut u8> = (0..16).map(|_| take(&m, c, GFP_NOWAIT, sheaf)).collect();
    assert!(got.iter().all(|p| !p.is_null()));
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 16, "distinct objects");
    // Empty: NULL, with no fallback to the cache.
    let before = m.cache_info(c);
    assert!(take(&m, c, GFP_KERNEL, sheaf).is_null());
    let after = m.cache_info(c);
    assert_eq!(before.alloc_fast + before.alloc_slow, after.alloc_fast + after.alloc_slow);
    assert_eq!(size(&m, sheaf), 0);
    for p in got {
        free(&m, c, p);
    }
    // A regular sheaf comes back refilled and is kept for the next prefill.
    give_back(&m, c, GFP_KERNEL, sheaf);
    assert_eq!((out(&m, c), kept(&m, c)), (0, 16), "kept full in the barn");
    let again = m.kmem_cache_prefill_sheaf(c, GFP_NOWAIT, 16).expect("prefill from the barn");
    assert_eq!(size(&m, again), 16);
    assert_eq!((out(&m, c), kept(&m, c)), (16, 0), "the kept sheaf, no new objects");
    give_back(&m, c, GFP_KERNEL, again);
    assert_eq!(kept(&m, c), 16);
    // Shrinking empties the barn.
    m.kmem_cache_shrink(c);
    assert_eq!((m.cache_info(c).active_objs, kept(&m, c)), (0, 0));
    destroy(&m, c).expect("nothing left");
}

#[test]
fn a_prefill_above_the_capacity_is_an_oversize_sheaf_freed_on_return() {
    let m = machine();
    let c = cache(&m, "sheaf4", 64, 4, SlabFlags::empty());
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 10).expect("oversize prefill");
    // SAFETY: Live, ours.
    let (n, cap) = unsafe { (sheaf.as_ref().size(), sheaf.as_ref().capacity()) };
    assert_eq!((n, cap), (10, 10), "exactly the size asked for");
    let p = take(&m, c, GFP_KERNEL, sheaf);
    assert!(!p.is_null());
    give_back(&m, c, GFP_KERNEL, sheaf);
    assert_eq!((out(&m, c), kept(&m, c)), (1, 0), "an oversize sheaf is never kept: only the taken object is out");
    free(&m, c, p);
    assert_eq!(count_log(&m, "WARNING"), 0, "a cache with a capacity: no warning");
    destroy(&m, c).expect("nothing left");
}

#[test]
fn a_cache_without_a_capacity_warns_once_and_a_debug_cache_ignores_its_capacity() {
    let m = machine();
    let plain = cache(&m, "nosheaf", 64, 0, SlabFlags::empty());
    for _ in 0..2 {
        let sheaf = m.kmem_cache_prefill_sheaf(plain, GFP_KERNEL, 3).expect("prefill");
        assert_eq!(size(&m, sheaf), 3);
        give_back(&m, plain, GFP_KERNEL, sheaf);
    }
    assert_eq!(count_log(&m, "kmem_cache_prefill_sheaf: cache nosheaf has no sheaf_capacity"), 1, "WARN_ON_ONCE");
    assert_eq!((out(&m, plain), kept(&m, plain)), (0, 0), "oversize sheaves are freed with their objects");
    // `slab_debug` ignores the capacity: every prefill is oversize, and that is not warned.
    m.log().clear();
    let debug = cache(&m, "debugsheaf", 64, 8, SLAB_RED_ZONE);
    let sheaf = m.kmem_cache_prefill_sheaf(debug, GFP_KERNEL, 2).expect("prefill");
    assert_eq!(size(&m, sheaf), 2, "oversize: exactly 2, not the ignored capacity");
    give_back(&m, debug, GFP_KERNEL, sheaf);
    assert_eq!((out(&m, debug), kept(&m, debug)), (0, 0), "not kept");
    assert_eq!(count_log(&m, "WARNING"), 0);
    destroy(&m, debug).expect("nothing left");
    destroy(&m, plain).expect("nothing left");
}

#[test]
fn gfp_zero_zeroes_what_the_sheaf_hands_out_and_nothing_else_does() {
    let m = builder(Profile::X86_64, 64).pcp(false).random_freelist(false).build().expect("machine");
    let c = cache(&m, "zerosheaf", 64, 1, SlabFlags::empty());
    for (gfp, expect) in [(GFP_KERNEL, 0xaa_u8), (GFP_KERNEL | __GFP_ZERO, 0)] {
        // A dirty object freed last is the next one the sheaf is filled with (LIFO).
        let dirty = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
        write_obj(&m, dirty, &[0xaa; 64]);
        free(&m, c, dirty.as_ptr());
        let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 1).expect("prefill");
        let p = take(&m, c, gfp, sheaf);
        assert_eq!(p, dirty.as_ptr(), "the object freed last");
        assert!(read_obj(&m, dirty, 64).iter().all(|&b| b == expect), "{gfp:?}");
        free(&m, c, p);
        give_back(&m, c, GFP_NOWAIT, sheaf);
        m.kmem_cache_shrink(c);
    }
    destroy(&m, c).expect("nothing left");
}

#[test]
fn refill_covers_every_case_of_the_kernels() {
    let m = machine();
    let c = cache(&m, "refill8", 64, 8, SlabFlags::empty());
    let mut none = None;
    assert_eq!(refill(&m, c, GFP_KERNEL, &mut none, 1), Err(SheafError::Invalid));
    assert_eq!(SheafError::Invalid.errno(), -22);
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 8).expect("prefill");
    let mut slot = Some(sheaf);
    let taken: Vec<_> = (0..6).map(|_| take(&m, c, GFP_KERNEL, sheaf)).collect();
    // Holding enough: nothing to do.
    assert_eq!(refill(&m, c, GFP_KERNEL, &mut slot, 2), Ok(()));
    assert_eq!(size(&m, sheaf), 2);
    // A regular sheaf is refilled to its capacity.
    assert_eq!(refill(&m, c, GFP_KERNEL, &mut slot, 3), Ok(()));
    assert_eq!((slot, size(&m, sheaf)), (Some(sheaf), 8));
    // Above the capacity: a new oversize sheaf replaces it; the old one is returned.
    assert_eq!(refill(&m, c, GFP_KERNEL, &mut slot, 20), Ok(()));
    let big = slot.expect("a sheaf");
    assert_ne!(big, sheaf);
    assert_eq!(size(&m, big), 20);
    // An oversize sheaf partly used is filled back to its own capacity.
    let more: Vec<_> = (0..15).map(|_| take(&m, c, GFP_KERNEL, big)).collect();
    assert_eq!(refill(&m, c, GFP_KERNEL, &mut slot, 6), Ok(()));
    assert_eq!((slot, size(&m, big)), (Some(big), 20));
    for p in taken.into_iter().chain(more) {
        free(&m, c, p);
    }
    give_back(&m, c, GFP_KERNEL, big);
    // The first sheaf went to the barn when it was replaced; the oversize one was freed.
    assert_eq!((out(&m, c), kept(&m, c)), (0, 8));
    m.kmem_cache_shrink(c);
    assert_eq!(m.cache_info(c).active_objs, 0);
    destroy(&m, c).expect("nothing left");
}

#[test]
fn the_barn_keeps_at_most_max_full_sheaves() {
    let m = machine();
    let c = cache(&m, "barn", 32, 4, SlabFlags::empty());
    let n = MAX_FULL_SHEAVES as usize + 3;
    let sheaves: Vec<_> = (0..n).map(|_| m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 4).expect("prefill")).collect();
    assert_eq!(out(&m, c), n * 4);
    for s in sheaves {
        give_back(&m, c, GFP_KERNEL, s);
    }
    assert_eq!((out(&m, c), kept(&m, c)), (0, MAX_FULL_SHEAVES as usize * 4), "the rest were freed with their objects");
    // Destroy empties the barn first: no objects remain, nothing is reported.
    destroy(&m, c).expect("the barn does not count as a leak");
    assert_eq!(count_log(&m, "Objects remaining"), 0);
}

#[test]
fn a_sheaf_still_held_at_destroy_is_a_leak_report() {
    let m = machine();
    let c = cache(&m, "heldsheaf", 64, 4, SlabFlags::empty());
    let _held = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 4).expect("prefill");
    let err = destroy(&m, c).expect_err("objects remain");
    assert_eq!(err.live_objects, 4);
    assert!(count_log(&m, "Objects remaining on __kmem_cache_shutdown()") > 0);
}

#[test]
fn exhaustion_fails_cleanly_and_leaks_nothing() {
    let m = machine();
    let c = cache(&m, "exhaust", 512, 64, SlabFlags::empty());
    // Warm up: the kmalloc caches the sheaves themselves come from are made on first use.
    for n in [1, 200] {
        let warm = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, n).expect("prefill");
        give_back(&m, c, GFP_NOWAIT, warm);
    }
    m.kmem_cache_shrink(c);
    let held = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    let free_before = m.zones().iter().map(|z| z.free_pages()).sum::<usize>();
    // 64 objects of 512 bytes need new slabs: no page within the watermarks.
    assert!(m.kmem_cache_prefill_sheaf(c, GFP_NOWAIT | __GFP_NOWARN, 64).is_none());
    assert!(m.kmem_cache_prefill_sheaf(c, GFP_NOWAIT | __GFP_NOWARN, 200).is_none(), "oversize too");
    assert_eq!((out(&m, c), kept(&m, c)), (0, 0), "what was allocated before the failure went back");
    m.kmem_cache_shrink(c);
    assert_eq!(m.zones().iter().map(|z| z.free_pages()).sum::<usize>(), free_before, "no page kept");
    crate::free_all(&m, held);
    // A refill that fails leaves the sheaf as it was.
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 64).expect("prefill with memory");
    let mut slot = Some(sheaf);
    let taken: Vec<_> = (0..64).map(|_| take(&m, c, GFP_KERNEL, sheaf)).collect();
    m.kmem_cache_shrink(c);
    let held = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    assert_eq!(refill(&m, c, GFP_NOWAIT | __GFP_NOWARN, &mut slot, 1), Err(SheafError::NoMemory));
    assert_eq!(SheafError::NoMemory.errno(), -12);
    assert_eq!(slot, Some(sheaf));
    assert_eq!(size(&m, sheaf), 0, "as it was");
    crate::free_all(&m, held);
    for p in taken {
        free(&m, c, p);
    }
    give_back(&m, c, GFP_NOWAIT, sheaf);
    m.kmem_cache_shrink(c);
    assert_eq!(m.cache_info(c).active_objs, 0);
    destroy(&m, c).expect("nothing left");
}

#[test]
fn a_sheaf_filled_from_the_reserves_is_marked_and_never_kept() {
    let m = machine();
    let c = cache(&m, "pfmemalloc", 256, 16, SlabFlags::empty());
    let held = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    // Below the min watermark only the reserves are left: without them the refill fails...
    assert!(m.kmem_cache_prefill_sheaf(c, GFP_NOWAIT | __GFP_NOWARN, 16).is_none());
    // ...and a mask that may use them gets a sheaf, flagged pfmemalloc.
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_NOWAIT | __GFP_MEMALLOC, 16).expect("from the reserves");
    assert_eq!(size(&m, sheaf), 16);
    crate::free_all(&m, held);
    // With memory back, a regular sheaf would be refilled and kept; this one is freed.
    give_back(&m, c, GFP_KERNEL, sheaf);
    assert_eq!((out(&m, c), kept(&m, c)), (0, 0), "a pfmemalloc sheaf is flushed on return");
    // The control: the same return of an ordinary sheaf keeps it.
    let ordinary = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 16).expect("prefill");
    give_back(&m, c, GFP_KERNEL, ordinary);
    assert_eq!(kept(&m, c), 16);
    destroy(&m, c).expect("nothing left");
}

#[test]
fn a_sheaf_used_with_another_cache_or_a_bad_handle_is_refused_and_reported() {
    let m = machine();
    let a = cache(&m, "sheafa", 64, 4, SlabFlags::empty());
    let b = cache(&m, "sheafb", 96, 4, SlabFlags::empty());
    let sheaf = m.kmem_cache_prefill_sheaf(a, GFP_KERNEL, 4).expect("prefill");
    assert!(take(&m, b, GFP_KERNEL, sheaf).is_null());
    assert_eq!(count_log(&m, "kmem_cache_alloc_from_sheaf: sheaf of cache sheafa used with cache sheafb"), 1);
    let mut slot = Some(sheaf);
    assert_eq!(refill(&m, b, GFP_KERNEL, &mut slot, 8), Err(SheafError::Invalid));
    assert!(!give_back(&m, b, GFP_KERNEL, sheaf), "refused: still the caller's");
    assert_eq!(count_log(&m, "kmem_cache_return_sheaf: sheaf of cache sheafa used with cache sheafb"), 1);
    assert_eq!(size(&m, sheaf), 4, "refused: the sheaf is untouched");
    assert_eq!(out(&m, a), 4);
    // Another machine's cache is not a live cache of this one.
    let other = machine();
    let foreign = cache(&other, "foreign", 64, 4, SlabFlags::empty());
    assert!(m.kmem_cache_prefill_sheaf(foreign, GFP_KERNEL, 1).is_none());
    assert!(count_log(&m, "kmem_cache_prefill_sheaf") > 0);
    give_back(&m, a, GFP_KERNEL, sheaf);
    m.kmem_cache_shrink(a);
    destroy(&m, a).expect("nothing left");
    destroy(&m, b).expect("nothing left");
    destroy(&other, foreign).expect("nothing left");
}

#[test]
fn caches_with_a_sheaf_capacity_are_never_merged() {
    let m = machine();
    let plain = cache(&m, "mergeplain", 200, 0, SlabFlags::empty());
    let with = cache(&m, "mergesheaf", 200, 8, SlabFlags::empty());
    assert_ne!(plain, with, "a capacity keeps the new cache apart");
    let again = cache(&m, "mergeplain2", 200, 0, SlabFlags::empty());
    assert_eq!(again, plain, "the control: the same request without one merges");
    assert_ne!(again, with, "and never into the cache with a capacity");
    for c in [again, with, plain] {
        destroy(&m, c).expect("destroy");
    }
}

#[test]
fn two_threads_prefill_allocate_and_return_at_once() {
    let m = machine();
    let c = cache(&m, "sheafmt", 128, 8, SlabFlags::empty());
    thread::scope(|s| {
        for t in 0..2u32 {
            let m = &m;
            s.spawn(move || {
                for i in 0..2000u32 {
                    let want = 1 + (i + t) % 12; // sometimes oversize
                    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, want).expect("prefill");
                    assert!(size(m, sheaf) >= want);
                    let objs: Vec<_> = (0..want).map(|_| take(m, c, GFP_KERNEL, sheaf)).collect();
                    assert!(objs.iter().all(|p| !p.is_null()));
                    for p in objs {
                        free(m, c, p);
                    }
                    give_back(m, c, if i % 3 == 0 { GFP_NOWAIT } else { GFP_KERNEL }, sheaf);
                }
                // Flush this thread's CPU arrays now: thread exit would do it after the scope
                // has already seen the thread end, racing with the checks below.
                m.release_cpu();
            });
        }
    });
    m.kmem_cache_shrink(c);
    assert_eq!(m.cache_info(c).active_objs, 0, "every object came back");
    destroy(&m, c).expect("nothing left");
}

#[test]
fn the_safe_handle_allocates_refills_and_returns_on_drop_from_another_thread() {
    let m = machine();
    let c = cache(&m, "safesheaf", 48, 6, SlabFlags::empty());
    let mut sheaf = m.prefill_sheaf(c, GFP_KERNEL, 2).expect("prefill");
    assert_eq!(sheaf.size(), 6);
    let objs: Vec<_> = (0..6).map(|_| sheaf.alloc(GFP_KERNEL).expect("from the sheaf")).collect();
    assert!(sheaf.alloc(GFP_KERNEL).is_none(), "empty");
    sheaf.refill(GFP_KERNEL, 9).expect("replaced by an oversize sheaf");
    assert_eq!(sheaf.size(), 9);
    assert_eq!(kept(&m, c), 6, "the regular one went back refilled");
    // Moved to another thread and dropped there: an oversize sheaf is freed.
    thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            drop(sheaf);
            // As in the test above: flushed before the scope ends, not at thread exit.
            m.release_cpu();
        });
    });
    assert_eq!((out(&m, c), kept(&m, c)), (6, 6), "the six objects taken are still out");
    for p in objs {
        free(&m, c, p.as_ptr());
    }
    let again = m.prefill_sheaf(c, GFP_NOWAIT, 6).expect("from the barn");
    assert_eq!(kept(&m, c), 0);
    again.give_back(GFP_KERNEL);
    assert_eq!(kept(&m, c), 6);
    destroy(&m, c).expect("nothing left");
}

/// The return's refill may reclaim, and reclaim empties barns (this cache's too): the barn lock
/// must not be held across the refill, or this would deadlock.
#[test]
fn a_return_whose_refill_reclaims_empties_the_barn_without_deadlock() {
    let m = machine();
    let c = cache(&m, "reclaimsheaf", 1024, 8, SlabFlags::empty());
    let kept_one = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 8).expect("prefill");
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 8).expect("prefill");
    give_back(&m, c, GFP_KERNEL, kept_one);
    assert_eq!(kept(&m, c), 8);
    let mut taken: Vec<_> = (0..8).map(|_| take(&m, c, GFP_KERNEL, sheaf)).collect();
    // No page left, and no free object of the cache outside the barn.
    let held = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    while let Ok(p) = m.kmem_cache_alloc(c, GFP_NOWAIT | __GFP_NOWARN) {
        taken.push(p.as_ptr());
    }
    // The refill to 8 needs a new slab: direct reclaim runs and shrinks this cache's barn.
    give_back(&m, c, GFP_KERNEL | __GFP_NOWARN, sheaf);
    assert_eq!(kept(&m, c), 0, "reclaim emptied the barn during the return");
    crate::free_all(&m, held);
    for p in taken {
        free(&m, c, p);
    }
    m.kmem_cache_shrink(c);
    assert_eq!(m.cache_info(c).active_objs, 0);
    destroy(&m, c).expect("nothing left");
}

/// `refill_sheaf` fills with `__kmem_cache_alloc_bulk`, which is all or nothing: a regular
/// sheaf whose refill fails part way holds what it held before, and the objects the attempt
/// got went back (review: they stayed in the sheaf, so `-ENOMEM` changed its size).
#[test]
fn a_regular_refill_that_fails_part_way_leaves_the_sheaf_as_it_was() {
    let m = machine();
    let c = cache(&m, "partrefill", 512, 16, SlabFlags::empty());
    let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 16).expect("prefill");
    let mut slot = Some(sheaf);
    let mut taken: Vec<_> = (0..15).map(|_| take(&m, c, GFP_KERNEL, sheaf)).collect();
    assert_eq!(size(&m, sheaf), 1);
    // No page left, and no free object of the cache but the three given back below.
    let held = grab_all(&m, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
    while let Ok(p) = m.kmem_cache_alloc(c, GFP_NOWAIT | __GFP_NOWARN) {
        taken.push(p.as_ptr());
    }
    for p in taken.drain(..3) {
        free(&m, c, p);
    }
    let before = out(&m, c);
    // 15 more are needed: three can be had, then no slab.
    assert_eq!(refill(&m, c, GFP_NOWAIT | __GFP_NOWARN, &mut slot, 4), Err(SheafError::NoMemory));
    assert_eq!(slot, Some(sheaf));
    assert_eq!(size(&m, sheaf), 1, "-ENOMEM: the sheaf holds what it held");
    assert_eq!(out(&m, c), before, "the objects the failed refill got went back");
    crate::free_all(&m, held);
    for p in taken {
        free(&m, c, p);
    }
    give_back(&m, c, GFP_KERNEL, sheaf);
    m.kmem_cache_shrink(c);
    assert_eq!(m.cache_info(c).active_objs, 0);
    destroy(&m, c).expect("nothing left");
}

/// With `init_on_alloc`, what the sheaf hands out is zeroed without `__GFP_ZERO` (the kernel's
/// `slab_want_init_on_alloc` in `kmem_cache_alloc_from_sheaf`), also from a kept sheaf whose
/// object was written while it was out.
#[test]
fn init_on_alloc_zeroes_what_the_sheaf_hands_out() {
    let m = builder(Profile::X86_64, 64).pcp(false).init_on_alloc(true).build().expect("machine");
    let c = cache(&m, "initsheaf", 64, 2, SlabFlags::empty());
    for round in 0..3 {
        let sheaf = m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 2).expect("prefill");
        for _ in 0..2 {
            let p = NonNull::new(take(&m, c, GFP_KERNEL, sheaf)).expect("from the sheaf");
            assert!(read_obj(&m, p, 64).iter().all(|&b| b == 0), "round {round}");
            write_obj(&m, p, &[0xaa; 64]);
            free(&m, c, p.as_ptr());
        }
        give_back(&m, c, GFP_KERNEL, sheaf);
    }
    m.kmem_cache_shrink(c);
    destroy(&m, c).expect("nothing left");
}

/// `CacheInfo::in_use` is read from counters that move while it is computed: it must not
/// underflow (a panic in a debug build) when a CPU array fills between the reads.
#[test]
fn in_use_never_underflows_while_another_thread_allocates() {
    let m = machine();
    let c = cache(&m, "inuserace", 64, 4, SlabFlags::empty());
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        let (m, stop) = (&m, &stop);
        s.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Each alloc refills an empty CPU array (active and parked both grow), each
                // shrink flushes it and empties the barn (both shrink).
                let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
                free(m, c, p.as_ptr());
                give_back(m, c, GFP_KERNEL, m.kmem_cache_prefill_sheaf(c, GFP_KERNEL, 4).expect("prefill"));
                m.kmem_cache_shrink(c);
            }
        });
        // Stops the other thread however this one ends (an underflow panics here).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = Stop(stop);
        for _ in 0..1_000_000 {
            let _ = m.cache_info(c).in_use();
        }
    });
    destroy(&m, c).expect("nothing left");
}
