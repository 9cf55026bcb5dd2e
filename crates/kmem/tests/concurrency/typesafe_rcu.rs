//! `SLAB_TYPESAFE_BY_RCU` across threads: a reader inside `rcu_read_lock` that loaded an
//! object keeps finding an object of the same cache there (the constructor's mark intact),
//! however often other threads free it, shrink the cache, reclaim, and reuse memory.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;

use kmem::gfp::GFP_KERNEL;
use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_TYPESAFE_BY_RCU};
use kmem::slab::{CacheArgs, ObjFn};
use kmem::{Profile, slab};

const MARK: u64 = 0x7e5a_fe00_7e5a_fe00;

/// The constructor: the mark in the object's first word (the free pointer lives elsewhere
/// in an RCU cache's objects).
unsafe fn ctor(_ctx: *const (), obj: *mut u8) {
    // SAFETY: A fresh object of the 64-byte cache.
    unsafe { obj.cast::<u64>().write(MARK) };
}

#[test]
fn typesafe_by_rcu_objects_stay_objects_under_a_reader() {
    let m = crate::builder(Profile::X86_64, 32, 4, true).kswapd(true).build().expect("machine");
    // SAFETY: `ctor` may run on any thread and does not allocate.
    let args = CacheArgs { ctor: Some(unsafe { ObjFn::new(ctor, std::ptr::null()) }), ..CacheArgs::default() };
    let c: slab::CacheRef =
        m.kmem_cache_create("typesafe", 64, &args, SLAB_TYPESAFE_BY_RCU | SLAB_NO_MERGE).expect("create");
    let current = AtomicUsize::new(m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr() as usize);
    let stop = AtomicBool::new(false);
    let n = (crate::stress_iters() / 20).max(1000);
    thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (m, current, stop) = (&m, &current, &stop);
                s.spawn(move || {
                    while !stop.load(SeqCst) {
                        let _g = m.rcu_read_lock();
                        let p = current.load(SeqCst) as *const std::sync::atomic::AtomicU64;
                        for _ in 0..10 {
                            // SAFETY: Loaded inside the read-side section: the memory stays an
                            // object of the cache (maybe another one) until the section ends.
                            let mark = unsafe { (*p).load(SeqCst) };
                            assert_eq!(mark, MARK, "object {p:p} is no longer an object of its cache");
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let churn = s.spawn(|| {
            while !stop.load(SeqCst) {
                // Other memory reused as soon as it is free: pages and kmalloc, written over.
                if let Ok(p) = m.get_free_pages(GFP_KERNEL, 0) {
                    // SAFETY: A page of ours.
                    unsafe {
                        p.as_ptr().write_bytes(0xa5, kmem::PAGE_SIZE);
                        m.free_pages_addr(p.as_ptr(), 0);
                    }
                }
                m.kmem_cache_shrink(c);
                m.shrink_all(GFP_KERNEL);
            }
            m.release_cpu();
        });
        let mut old = Vec::new();
        for i in 0..n {
            let new = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr() as usize;
            old.push(current.swap(new, SeqCst));
            thread::yield_now();
            if old.len() > 32 || i % 7 == 0 {
                for p in old.drain(..) {
                    // SAFETY: Unpublished; readers may still look at it, as the cache allows.
                    unsafe { m.kmem_cache_free(c, p as *mut u8) };
                }
            }
        }
        stop.store(true, SeqCst);
        for r in readers {
            r.join().expect("reader");
        }
        churn.join().expect("churn");
        for p in old {
            // SAFETY: As above.
            unsafe { m.kmem_cache_free(c, p as *mut u8) };
        }
    });
    // SAFETY: Ours, freed once.
    unsafe { m.kmem_cache_free(c, current.load(SeqCst) as *mut u8) };
    m.release_cpu();
    // SAFETY: Every object is back; the handle is not used again.
    unsafe { m.kmem_cache_destroy(c) }.expect("destroy");
}

static CONSTRUCTED: AtomicUsize = AtomicUsize::new(0);
static DESTROYED: AtomicUsize = AtomicUsize::new(0);
const CTOR_MARK: u64 = 0xc7c7_c7c7_0000_0001;

unsafe fn counting_ctor(_ctx: *const (), obj: *mut u8) {
    CONSTRUCTED.fetch_add(1, SeqCst);
    // SAFETY: A fresh object of the 96-byte cache.
    unsafe { obj.cast::<u64>().write(CTOR_MARK) };
}

unsafe fn counting_dtor(_ctx: *const (), obj: *mut u8) {
    // SAFETY: An object of the 96-byte cache whose slab is going.
    let mark = unsafe { obj.cast::<u64>().read() };
    assert_eq!(mark, CTOR_MARK, "destructor found an object not in its constructed state");
    // SAFETY: As above.
    unsafe { obj.cast::<u64>().write(0) };
    DESTROYED.fetch_add(1, SeqCst);
}

/// Constructor and destructor under churn on three threads with a fourth shrinking the cache
/// and reclaiming: every allocation gets a constructed object, the destructor runs once per
/// constructed object when its slab goes, and in the end the two counts meet.
#[test]
fn ctor_and_dtor_balance_while_another_thread_shrinks() {
    let m = crate::machine(Profile::X86_64, 64, 4, true);
    // SAFETY: Both may run on any thread and do not allocate.
    let args = CacheArgs {
        ctor: Some(unsafe { ObjFn::new(counting_ctor, std::ptr::null()) }),
        dtor: Some(unsafe { ObjFn::new(counting_dtor, std::ptr::null()) }),
        ..CacheArgs::default()
    };
    let c = m.kmem_cache_create("ctor-dtor", 96, &args, SLAB_NO_MERGE).expect("create");
    let stop = AtomicBool::new(false);
    let iters = (crate::stress_iters() / 20).max(1000);
    thread::scope(|s| {
        let shrinker = s.spawn(|| {
            while !stop.load(SeqCst) {
                m.kmem_cache_shrink(c);
                m.shrink_all(GFP_KERNEL);
            }
            m.release_cpu();
        });
        let workers: Vec<_> = (0..3u64)
            .map(|t| {
                let m = &m;
                s.spawn(move || {
                    let mut rng = crate::Rng(t + 11);
                    let mut live = Vec::new();
                    for _ in 0..iters {
                        if live.len() < 100 && rng.index(2) == 0 {
                            let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc").as_ptr();
                            // SAFETY: A live object of ours.
                            let mark = unsafe { p.cast::<u64>().read() };
                            assert_eq!(mark, CTOR_MARK, "allocation returned an unconstructed object");
                            // SAFETY: Ours; the word after the mark is free to use.
                            unsafe { p.add(8).cast::<u64>().write(t) };
                            live.push(p as usize);
                        } else if let Some(p) = live.pop() {
                            // SAFETY: Ours, in its constructed state, freed once.
                            unsafe { m.kmem_cache_free(c, p as *mut u8) };
                        }
                    }
                    for p in live {
                        // SAFETY: As above.
                        unsafe { m.kmem_cache_free(c, p as *mut u8) };
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        stop.store(true, SeqCst);
        shrinker.join().expect("shrinker");
    });
    m.release_cpu();
    let info = m.cache_info(c);
    assert_eq!(CONSTRUCTED.load(SeqCst) - DESTROYED.load(SeqCst), info.num_objs, "{info:?}");
    assert_eq!(m.kmem_cache_shrink(c), 0, "{:?}", m.cache_info(c));
    assert_eq!(CONSTRUCTED.load(SeqCst), DESTROYED.load(SeqCst), "constructed and destroyed objects differ");
    // SAFETY: Every object is back; the handle is not used again.
    unsafe { m.kmem_cache_destroy(c) }.expect("destroy");
}
