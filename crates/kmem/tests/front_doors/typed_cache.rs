//! `KmemCache<T>` and `CacheBox<T>`: constructor once per slot (SL-7), state kept across
//! free and alloc, destructor on shrink and destroy, the cache kept alive by its handles,
//! threads, and panics in the constructor and destructor.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, mpsc};

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::slab::CreateError;
use kmem::slab::flags::{SLAB_HWCACHE_ALIGN, SlabFlags};
use kmem::{CacheBox, KmemCache, Machine};

use crate::{count_log, machine};

/// A value that counts its drops.
struct Counted {
    id: usize,
    data: Vec<u8>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

/// Counters shared with a cache's constructor.
#[derive(Default)]
struct Counts {
    made: AtomicUsize,
    drops: Arc<AtomicUsize>,
}

fn counted_cache(m: &Machine, name: &str) -> (KmemCache<Counted>, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    let cache = KmemCache::new(m, name, SlabFlags::empty(), move || {
        c.made.fetch_add(1, SeqCst);
        Counted { id: usize::MAX, data: vec![0; 16], drops: Arc::clone(&c.drops) }
    })
    .expect("create");
    (cache, counts)
}

#[test]
fn constructor_runs_once_per_slot_and_objects_keep_their_state() {
    let m = machine();
    let (cache, counts) = counted_cache(&m, "fd_state");
    let per_slab = cache.objects_per_slab();
    let mut a = cache.alloc(GFP_KERNEL).unwrap();
    assert_eq!(counts.made.load(SeqCst), per_slab, "one slab, every slot constructed");
    assert_eq!(cache.info().num_objs, per_slab);
    assert_eq!((a.id, a.data.len()), (usize::MAX, 16), "a constructed value");
    a.id = 7;
    a.data[3] = 42;
    let at = CacheBox::as_ptr(&a);
    drop(a);
    // __GFP_ZERO is ignored: it would overwrite a live value.
    let b = cache.alloc(GFP_KERNEL | __GFP_ZERO).unwrap();
    assert_eq!(CacheBox::as_ptr(&b), at, "SL-8: LIFO");
    assert_eq!((b.id, b.data[3]), (7, 42), "SL-7: the object kept its state, no new constructor call");
    assert_eq!(counts.made.load(SeqCst), per_slab);
    let held: Vec<_> = (0..3 * per_slab).map(|_| cache.alloc(GFP_KERNEL).unwrap()).collect();
    let info = cache.info();
    assert!(info.num_objs > 3 * per_slab);
    assert_eq!(counts.made.load(SeqCst), info.num_objs, "constructed exactly once per slot of every slab");
    assert!(held.iter().all(|h| h.data.len() == 16));
    drop(held);
    drop(b);
    assert_eq!(counts.drops.load(SeqCst), 0, "freeing never drops a value");
    assert_eq!(cache.shrink(), 0, "every slab was empty");
    assert_eq!(counts.drops.load(SeqCst), info.num_objs, "the destructor dropped every value of the freed slabs");
    assert_eq!(cache.info().num_objs, 0);
}

#[test]
fn handles_keep_the_cache_alive_and_the_last_reference_destroys_it_silently() {
    let m = machine();
    let (cache, counts) = counted_cache(&m, "fd_alive");
    let mut h = cache.alloc(GFP_KERNEL).unwrap();
    h.id = 1;
    let clone = cache.clone();
    drop(cache);
    assert!(m.cache_listed("fd_alive"), "a clone still holds it");
    drop(clone);
    assert!(m.cache_listed("fd_alive"), "the handle still holds it");
    assert_eq!(h.id, 1);
    assert_eq!(CacheBox::cache(&h).name(), "fd_alive");
    drop(h);
    assert!(!m.cache_listed("fd_alive"), "destroyed with the last reference");
    assert_eq!(counts.drops.load(SeqCst), counts.made.load(SeqCst), "every value dropped");
    assert_eq!(count_log(&m, "still has objects"), 0, "{}", m.dmesg());
    assert_eq!(count_log(&m, "Objects remaining"), 0);
}

#[test]
fn a_forgotten_handle_leaks_the_cache_instead_of_destroying_it_under_the_object() {
    let m = machine();
    let (cache, counts) = counted_cache(&m, "fd_forgot");
    std::mem::forget(cache.alloc(GFP_KERNEL).unwrap());
    drop(cache);
    assert!(m.cache_listed("fd_forgot"), "the forgotten handle still holds the cache");
    assert_eq!(count_log(&m, "still has objects"), 0, "never destroyed, so nothing to report");
    assert_eq!(counts.drops.load(SeqCst), 0);
}

#[test]
fn handles_cross_threads() {
    const THREADS: usize = 4;
    const EACH: usize = 3000;
    let m = machine();
    let (cache, counts) = counted_cache(&m, "fd_threads");
    let (tx, rx) = mpsc::sync_channel::<CacheBox<Counted>>(64);
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, tx) = (cache.clone(), tx.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let mut h = cache.alloc(GFP_KERNEL).unwrap();
                    h.id = t * EACH + i;
                    h.data.fill(t as u8);
                    tx.send(h).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut seen = vec![false; THREADS * EACH];
    let mut kept = Vec::new();
    for h in rx {
        assert!(!seen[h.id], "object {} handed out twice", h.id);
        seen[h.id] = true;
        assert!(h.data.iter().all(|&b| b as usize == h.id / EACH), "contents survive the trip");
        if h.id % 10 == 0 {
            kept.push(h); // Freed later, from another thread.
        }
    }
    producers.into_iter().for_each(|p| p.join().unwrap());
    assert!(seen.iter().all(|&s| s));
    std::thread::spawn(move || drop(kept)).join().unwrap();
    let made = counts.made.load(SeqCst);
    // Thread exits flushed CPU arrays, which may free empty slabs (dropping their values).
    assert_eq!(made, cache.info().num_objs + counts.drops.load(SeqCst), "once per slot per slab lifetime");
    drop(cache);
    assert_eq!(counts.drops.load(SeqCst), made);
    assert_eq!(count_log(&m, "still has objects"), 0);
}

#[test]
fn a_constructor_panic_in_a_new_slab_is_caught_and_the_slot_built_on_allocation() {
    let m = machine();
    let attempts = Arc::new(AtomicUsize::new(0));
    let built = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Arc::clone(&attempts), Arc::clone(&built));
    let cache = KmemCache::new(&m, "fd_ctor_once", SlabFlags::empty(), move || {
        assert_ne!(a.fetch_add(1, SeqCst), 1, "second constructor call fails");
        b.fetch_add(1, SeqCst);
        vec![5u8; 8]
    })
    .unwrap();
    let per_slab = cache.objects_per_slab();
    // Every object of the first slab: one of them lost its constructor call.
    let held: Vec<_> = (0..per_slab).map(|_| cache.alloc(GFP_KERNEL).expect("no panic reaches the caller")).collect();
    assert!(held.iter().all(|v| **v == [5; 8]), "every handle holds a constructed value");
    assert_eq!(attempts.load(SeqCst), built.load(SeqCst) + 1, "exactly one call panicked");
    drop(held);
    drop(cache);
    assert_eq!(count_log(&m, "still has objects"), 0);
}

#[test]
fn a_constructor_that_keeps_panicking_reaches_the_caller_and_leaks_nothing() {
    let m = machine();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let counts = Arc::new(Counts::default());
    let (f, c) = (Arc::clone(&fail), Arc::clone(&counts));
    let cache = KmemCache::new(&m, "fd_ctor_panic", SLAB_HWCACHE_ALIGN, move || {
        assert!(!f.load(SeqCst), "constructor refuses");
        c.made.fetch_add(1, SeqCst);
        Counted { id: 0, data: Vec::new(), drops: Arc::clone(&c.drops) }
    })
    .unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| cache.alloc(GFP_KERNEL).map(|_| ())));
    let msg = caught.expect_err("the late constructor call panics in the caller");
    assert_eq!(msg.downcast_ref::<&str>(), Some(&"constructor refuses"));
    fail.store(false, SeqCst);
    let h = cache.alloc(GFP_KERNEL).unwrap();
    assert_eq!(h.id, 0);
    assert_eq!(counts.made.load(SeqCst), 1, "built on allocation");
    drop(h);
    drop(cache);
    assert_eq!(counts.drops.load(SeqCst), 1, "only the constructed value is dropped");
    assert_eq!(count_log(&m, "still has objects"), 0, "the object of the failed allocation went back");
}

#[test]
fn a_panicking_drop_in_the_destructor_is_caught_and_logged() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom");
        }
    }
    let m = machine();
    let cache = KmemCache::new(&m, "fd_bomb", SlabFlags::empty(), || Bomb).unwrap();
    drop(cache.alloc(GFP_KERNEL).unwrap());
    let per_slab = cache.objects_per_slab();
    assert_eq!(cache.shrink(), 0);
    assert_eq!(count_log(&m, "kmem_cache fd_bomb: destructor of"), per_slab, "{}", m.dmesg());
}

#[test]
fn creation_errors_are_returned() {
    let m = machine();
    let huge = KmemCache::<[u8; 8 << 20]>::new(&m, "fd_huge", SlabFlags::empty(), || [0; 8 << 20]);
    assert!(matches!(huge, Err(CreateError::Layout(_))), "{huge:?}");
    let zst = KmemCache::<()>::new_default(&m, "fd_unit", SlabFlags::empty()).unwrap();
    let u = zst.alloc(GFP_KERNEL).unwrap();
    assert_eq!(*u, ());
}

/// A constructor that allocates from its own cache, through a handle it reaches (here a shared
/// slot the test fills after creation): the nested allocation needed a new slab, whose
/// constructor allocated again, until the stack overflowed and the process aborted — from safe
/// code (the core's `ObjFn` contract forbids it; the typed cache let it through). SL-7's
/// constructor runs while a slab is populated, so such an allocation can never be served from
/// that slab. It is now refused (`Err`, reported once per cache) and the outer one succeeds.
#[test]
fn a_constructor_allocating_from_its_own_cache_is_refused() {
    let m = machine();
    let own: Arc<std::sync::Mutex<Option<KmemCache<u64>>>> = Arc::default();
    let nested = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (own2, nested2) = (own.clone(), nested.clone());
    let cache = KmemCache::new(&m, "self_alloc", SlabFlags::empty(), move || {
        let handle = own2.lock().unwrap().clone();
        if let Some(c) = handle {
            let got = c.alloc(GFP_KERNEL).map(|b| *b);
            nested2.lock().unwrap().push(got);
        }
        7u64
    })
    .unwrap();
    *own.lock().unwrap() = Some(cache.clone());
    let b = cache.alloc(GFP_KERNEL).expect("the outer allocation");
    assert_eq!(*b, 7);
    let nested = std::mem::take(&mut *nested.lock().unwrap());
    assert_eq!(nested.len(), cache.objects_per_slab(), "the constructor ran for each slot");
    assert!(nested.iter().all(Result::is_err), "{nested:?}");
    assert_eq!(count_log(&m, "constructor allocates from its own cache"), 1, "{}", m.dmesg());
    // Outside the constructor the cache serves as usual.
    let b2 = cache.alloc(GFP_KERNEL).expect("a second object");
    assert_eq!(*b2, 7);
    drop((b, b2));
    // Break the cycle (the constructor's captures hold a handle), so the cache is destroyed.
    *own.lock().unwrap() = None;
    drop(cache);
    assert!(!m.slabinfo().contains("self_alloc"), "{}", m.slabinfo());
}
