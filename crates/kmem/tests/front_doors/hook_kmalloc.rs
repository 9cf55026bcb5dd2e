//! A cache's destructor that calls `kmalloc` while reclaim runs inside the creation of a
//! kmalloc cache: the first `kmalloc` of a size class makes its cache, which takes pages with
//! the caller's mask, which on an exhausted machine reclaims, which frees the empty slabs of
//! other caches and runs their destructors — and a destructor's own `kmalloc` of another class
//! not made yet creates that class's cache in turn, on the same thread.
//!
//! kmem serialised the creations under one lock held across the whole creation, so the nested
//! one deadlocked on it; the creation now publishes its cache with a compare-and-swap and
//! holds no lock while it allocates.

use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use kmem::Machine;
use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, Gfp};
use kmem::slab::flags::SLAB_NO_MERGE;
use kmem::slab::{CacheArgs, ObjFn};
use kmem_core::reclaim::Shrinker;

/// What the destructor needs: the machine, and counters of its calls and its kmallocs.
struct Hook {
    machine: Machine,
    calls: AtomicUsize,
    kmallocs: AtomicUsize,
}

/// The destructor: a `kmalloc(700)` (class `kmalloc-1k`, unused until then) and its `kfree`.
unsafe fn dtor_kmallocs(ctx: *const (), _obj: *mut u8) {
    // SAFETY: `ctx` is the test's `Arc<Hook>`, kept alive until the machine is gone.
    let hook = unsafe { &*ctx.cast::<Hook>() };
    hook.calls.fetch_add(1, SeqCst);
    if let Ok(p) = hook.machine.kmalloc(700, GFP_ATOMIC | __GFP_NOWARN) {
        hook.kmallocs.fetch_add(1, SeqCst);
        // SAFETY: Just allocated, freed once.
        unsafe { hook.machine.kfree(p.as_ptr()) };
    }
}

/// A shrinker holding 2 MiB, all given back at its first scan: more than the min watermark,
/// so the reclaim that runs the destructor also lets the allocation through.
struct Giver {
    machine: Machine,
    held: Mutex<Vec<usize>>,
}

/// The order of the giver's blocks (2 MiB).
const GIVER_ORDER: u32 = 9;

impl Shrinker for Giver {
    fn name(&self) -> &str {
        "hook-kmalloc-giver"
    }

    fn count_objects(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    fn scan_objects(&self, _nr_to_scan: usize, _gfp: Gfp) -> usize {
        let mut freed = 0;
        for addr in self.held.lock().unwrap().drain(..) {
            // SAFETY: A block this shrinker took with `get_free_pages(_, GIVER_ORDER)`, freed once.
            unsafe { self.machine.free_pages_addr(addr as *const u8, GIVER_ORDER) };
            freed += 1 << GIVER_ORDER;
        }
        freed
    }
}

#[test]
fn a_destructor_may_kmalloc_while_reclaim_runs_inside_a_kmalloc_caches_creation() {
    let m = Machine::builder().mem_bytes(16 << 20).cpus(1).kswapd(false).build().expect("machine");
    let hook = Arc::new(Hook { machine: m.clone(), calls: AtomicUsize::new(0), kmallocs: AtomicUsize::new(0) });
    let args =
        // SAFETY: `hook` outlives the cache (dropped after it), and the destructor only uses
        // its atomics and machine, from any thread.
        CacheArgs { dtor: Some(unsafe { ObjFn::new(dtor_kmallocs, Arc::as_ptr(&hook).cast()) }), ..CacheArgs::default() };
    let cache = m.kmem_cache_create("hook_kmalloc", 512, &args, SLAB_NO_MERGE).expect("cache");
    // A slab's worth of objects parked in the CPU array: reclaim flushes them and frees the slab.
    let objs: Vec<_> = (0..8).map(|_| m.kmem_cache_alloc(cache, GFP_KERNEL).expect("object")).collect();
    for p in objs {
        // SAFETY: Allocated just above from `cache`, freed once.
        unsafe { m.kmem_cache_free(cache, p.as_ptr()) };
    }
    let giver = Box::new(Giver { machine: m.clone(), held: Mutex::new(Vec::new()) });
    giver.held.lock().unwrap().push(m.get_free_pages(GFP_KERNEL, GIVER_ORDER).expect("2 MiB").as_ptr() as usize);
    // SAFETY: The box outlives the registration (unregistered below, before it is dropped),
    // and the shrinker never registers or unregisters from its callbacks.
    let id = unsafe { m.register_shrinker(NonNull::from(&*giver as &dyn Shrinker)) }.expect("a shrinker slot");
    // Every other page taken, for good.
    let mut held = Vec::new();
    for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
        while let Ok(page) = m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order) {
            held.push((page, order));
        }
    }
    assert_eq!(hook.calls.load(SeqCst), 0, "no slab freed yet");

    // The first `kmalloc(3000)`: `kmalloc-4k` is made now, on a machine with no free page.
    let (tx, rx) = mpsc::channel();
    let worker = {
        let m = m.clone();
        thread::spawn(move || {
            let p = m.kmalloc(3000, GFP_KERNEL);
            let _ = tx.send(p.map(|p| p.as_ptr() as usize));
        })
    };
    let p = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(p) => p.expect("reclaim freed the hooked cache's slabs, so the kmalloc succeeds"),
        Err(_) => panic!("kmalloc(3000) not done after 60 s (deadlock)\n{}", m.dmesg()),
    };
    worker.join().expect("worker");
    assert!(hook.calls.load(SeqCst) > 0, "reclaim freed slabs of the hooked cache: its destructor ran");
    assert!(giver.held.lock().unwrap().is_empty(), "reclaim ran the shrinker too");
    assert!(m.unregister_shrinker(id));
    // SAFETY: The worker's block, unused; then the pages held above.
    unsafe {
        m.kfree(p as *const u8);
        for (page, order) in held {
            m.free_pages(page, order);
        }
    }
    assert!(m.cache_listed("kmalloc-4k"));
    assert_eq!(m.slabinfo().matches("kmalloc-4k ").count(), 1, "one kmalloc-4k cache\n{}", m.slabinfo());
    // With memory back, the destructor's own kmalloc works too.
    let before = hook.kmallocs.load(SeqCst);
    let more: Vec<_> = (0..8).map(|_| m.kmem_cache_alloc(cache, GFP_KERNEL).expect("object")).collect();
    for p in more {
        // SAFETY: As above.
        unsafe { m.kmem_cache_free(cache, p.as_ptr()) };
    }
    m.kmem_cache_shrink(cache);
    assert!(hook.kmallocs.load(SeqCst) > before, "the destructor's kmalloc made kmalloc-1k");
    assert_eq!(m.slabinfo().matches("kmalloc-1k ").count(), 1, "{}", m.slabinfo());
    // SAFETY: Nothing uses the cache any more.
    unsafe { m.kmem_cache_destroy(cache) }.expect("empty");
}
