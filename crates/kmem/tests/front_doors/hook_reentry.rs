//! Calls that a typed cache's `T::drop` may make while the allocator runs it inside its own
//! maintenance: reclaim's slab shrinker (a pass over the shrinker registry) and the flush of a
//! CPU slot given back (`release_cpu`, under the machine's fork lock). Each used to wait for
//! itself: `unregister_shrinker` waited for every reclaim pass to end, its own included, and
//! a nested `release_cpu` spun on the fork lock its own thread held (found by the re-entry
//! audit). Each test runs the call on a worker under a watchdog, so a hang fails it.

use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, Gfp};
use kmem::slab::flags::SlabFlags;
use kmem::{KmemCache, Machine};
use kmem_core::reclaim::{RegistrationId, Shrinker};

/// A shrinker with nothing to give: only its registration matters.
struct Idle;

impl Shrinker for Idle {
    fn name(&self) -> &str {
        "hook-reentry-idle"
    }

    fn count_objects(&self) -> usize {
        0
    }

    fn scan_objects(&self, _nr_to_scan: usize, _gfp: Gfp) -> usize {
        0
    }
}

/// A value that owns a shrinker registration and gives it up when dropped (once armed).
struct OwnsRegistration {
    machine: Machine,
    id: Arc<Mutex<Option<RegistrationId>>>,
    armed: Arc<AtomicBool>,
    drops: Arc<AtomicUsize>,
}

impl Drop for OwnsRegistration {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed.load(SeqCst)
            && let Some(id) = self.id.lock().unwrap().take()
        {
            assert!(self.machine.unregister_shrinker(id), "registered");
        }
    }
}

#[test]
fn a_destructor_run_by_reclaim_may_unregister_a_shrinker() {
    // Reclaim frees little here, so the allocation may end in the OOM path: keep it short.
    let m = Machine::builder()
        .mem_bytes(16 << 20)
        .cpus(1)
        .kswapd(false)
        .oom_timeout(Duration::from_millis(200))
        .build()
        .expect("machine");
    let idle = Box::new(Idle);
    // SAFETY: `idle` outlives the registration (it is unregistered by the destructor below,
    // or leaked if the test fails); its callbacks never register or unregister.
    let id = unsafe { m.register_shrinker(NonNull::from(&*idle as &dyn Shrinker)) }.expect("slot");
    let slot = Arc::new(Mutex::new(Some(id)));
    let armed = Arc::new(AtomicBool::new(false));
    let drops = Arc::new(AtomicUsize::new(0));
    let cache = {
        let (m2, slot, armed, drops) = (m.clone(), slot.clone(), armed.clone(), drops.clone());
        KmemCache::new(&m, "hook_reentry_shrinker", SlabFlags::empty(), move || OwnsRegistration {
            machine: m2.clone(),
            id: slot.clone(),
            armed: armed.clone(),
            drops: drops.clone(),
        })
        .expect("cache")
    };
    // A slab's worth of objects parked in the CPU array: reclaim flushes them and frees the slab.
    let objs: Vec<_> = (0..cache.objects_per_slab()).map(|_| cache.alloc(GFP_KERNEL).expect("object")).collect();
    drop(objs);
    let mut held = Vec::new();
    for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
        while let Ok(page) = m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order) {
            held.push((page, order));
        }
    }
    armed.store(true, SeqCst);
    let (tx, rx) = mpsc::channel();
    let worker = {
        let m = m.clone();
        thread::spawn(move || {
            let _ = tx.send(m.get_free_pages(GFP_KERNEL, 0).map(|p| p.as_ptr() as usize));
        })
    };
    let Ok(page) = rx.recv_timeout(Duration::from_secs(60)) else {
        std::mem::forget(idle);
        panic!(
            "get_free_pages(GFP_KERNEL) not done after 60 s: the destructor's unregister_shrinker waited for its own reclaim pass"
        );
    };
    worker.join().expect("worker");
    assert!(drops.load(SeqCst) > 0, "reclaim ran the destructors");
    assert!(slot.lock().unwrap().is_none(), "the destructor unregistered the shrinker");
    // SAFETY: The worker's page (if any) and the pages held above, unused.
    unsafe {
        if let Ok(p) = page {
            m.free_pages_addr(p as *const u8, 0);
        }
        for (page, order) in held {
            m.free_pages(page, order);
        }
    }
    drop(cache);
    drop(idle);
}

/// A value whose drop (once armed) uses the machine — taking a new CPU slot, since its
/// thread's slot is being given back — and gives that slot back too.
struct ReleasesCpu {
    machine: Machine,
    armed: Arc<AtomicBool>,
}

impl Drop for ReleasesCpu {
    fn drop(&mut self) {
        if self.armed.swap(false, SeqCst) {
            let p = self.machine.kmalloc(64, GFP_KERNEL).expect("kmalloc");
            // SAFETY: Just allocated, freed once.
            unsafe { self.machine.kfree(p.as_ptr()) };
            self.machine.release_cpu();
        }
    }
}

#[test]
fn a_destructor_run_by_release_cpu_may_release_a_cpu_too() {
    // Everything on a worker: a thread holding a slot of the machine would spin on the fork
    // lock at its own exit if the worker hung holding it.
    let (tx, rx) = mpsc::channel();
    let _worker = thread::spawn(move || {
        let m = Machine::builder().mem_bytes(64 << 20).cpus(4).kswapd(false).build().expect("machine");
        let armed = Arc::new(AtomicBool::new(false));
        let cache = {
            let (m2, armed) = (m.clone(), armed.clone());
            KmemCache::new(&m, "hook_reentry_release", SlabFlags::empty(), move || ReleasesCpu {
                machine: m2.clone(),
                armed: armed.clone(),
            })
            .expect("cache")
        };
        // Many slabs, all freed: the node keeps `min_partial` empty ones, and the CPU array
        // keeps the last objects, whose slabs empty when `release_cpu` flushes it.
        let objs: Vec<_> =
            (0..cache.objects_per_slab() * 40).map(|_| cache.alloc(GFP_KERNEL).expect("object")).collect();
        drop(objs);
        armed.store(true, SeqCst);
        m.release_cpu();
        let ran = !armed.load(SeqCst);
        // The machine works on after both releases, on this thread and another.
        let p = m.kmalloc(128, GFP_KERNEL).expect("kmalloc");
        // SAFETY: Just allocated, freed once.
        unsafe { m.kfree(p.as_ptr()) };
        let m2 = m.clone();
        thread::spawn(move || {
            let p = m2.kmalloc(32, GFP_KERNEL).expect("kmalloc");
            // SAFETY: Just allocated, freed once.
            unsafe { m2.kfree(p.as_ptr()) };
        })
        .join()
        .expect("another thread");
        drop(cache);
        let _ = tx.send(ran);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(ran) => assert!(ran, "release_cpu freed no slab: the destructor never ran (test setup)"),
        Err(_) => panic!("release_cpu not done after 60 s: the destructor's release_cpu spun on the fork lock"),
    }
}
