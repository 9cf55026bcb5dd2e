//! CPU slots on a two-CPU board without a heavy barrier (the `Platform::heavy_barrier`
//! default: remote arrays are claimed for an instant, never flushed by `kmem_cache_shrink`):
//! - a slot given back (`slab_cpu_dead`) while another thread's shrink holds the claim on its
//!   object array; the board's barrier is the moment that thread gives its slot back, so the
//!   interleaving is deterministic;
//! - `kmem_cache_destroy` while another CPU's idle thread has objects of the cache parked.

use core::fmt::Write as _;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use kmem_core::Kmem;
use kmem_core::gfp::GFP_KERNEL;
use kmem_core::page_alloc::{Config, PageAllocator};
use kmem_core::platform::{Level, Platform};
use kmem_core::slab::flags::SLAB_NO_MERGE;
use kmem_core::slab::{CacheArgs, CacheRef, SlabConfig};
use kmem_core::waitq::WaitWord;

use super::{Region, normal_only};

thread_local! {
    /// This thread's CPU slot on the board (None: no slot).
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Two CPUs, one per thread that asks for one; no heavy barrier. `heavy_barrier` lets the
/// other thread go on first (tells it to, waits until it is about to give its slot back, and
/// gives it a moment to do so), then answers false, as a platform without `membarrier` does.
struct TwoCpus {
    log: Mutex<String>,
    ticks: AtomicU64,
    barrier_hook: Mutex<Option<(SyncSender<()>, Receiver<()>)>>,
}

// SAFETY: `cpu` answers slot N only on the thread that set it, and the test gives each slot to
// one thread at a time.
unsafe impl Platform for TwoCpus {
    fn nr_cpus(&self) -> usize {
        2
    }
    fn cpu(&self) -> Option<usize> {
        SLOT.with(Cell::get)
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        let _ = writeln!(self.log.lock().unwrap(), "<{}>{args}", level as u8);
    }
    fn now_ns(&self) -> u64 {
        self.ticks.fetch_add(1_000_000, Relaxed)
    }
    fn wait(&self, _word: &WaitWord, _expected: u32, _timeout_ns: u64) {}
    fn wake_all(&self, _word: &WaitWord) {}
    fn heavy_barrier(&self) -> bool {
        if let Some((go, done)) = self.barrier_hook.lock().unwrap().take() {
            go.send(()).unwrap();
            done.recv().unwrap();
            // The slot's hand-back must not wait for this barrier: that would be a deadlock
            // (it must wait for the claim, though, and the claim is dropped after this returns).
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }
}

#[test]
fn objects_parked_by_a_cpu_that_goes_away_during_a_remote_shrink_are_flushed() {
    let region = Region::new(32 << 20);
    let board = TwoCpus { log: Mutex::new(String::new()), ticks: AtomicU64::new(0), barrier_hook: Mutex::new(None) };
    SLOT.with(|s| s.set(Some(0)));
    // SAFETY: The region is ours, zeroed, and outlives the allocator.
    let pa = unsafe { PageAllocator::new(board, normal_only(&region), Config::default()) }.expect("boot");
    let k = Kmem::new(pa, SlabConfig::default());
    let c = k.kmem_cache_create("parked", 64, &CacheArgs::default(), SLAB_NO_MERGE).expect("create");
    let (go_tx, go_rx) = sync_channel(1);
    let (done_tx, done_rx) = sync_channel(1);
    *k.platform().barrier_hook.lock().unwrap() = Some((go_tx, done_rx));
    std::thread::scope(|s| {
        let (k, c) = (&k, c);
        let (parked_tx, parked_rx) = sync_channel(1);
        s.spawn(move || {
            park_in_slot_1(k, c);
            parked_tx.send(()).unwrap();
            // The shrink on the other thread has claimed slot 1 and is in its barrier: this
            // thread leaves now, giving its slot back as a thread exit does.
            go_rx.recv().unwrap();
            SLOT.with(|s| s.set(None));
            done_tx.send(()).unwrap();
            // SAFETY: This thread owned slot 1 and is outside every per-CPU section of it.
            unsafe { k.slab_cpu_dead(1) };
        });
        parked_rx.recv().unwrap();
        assert!(k.cache_info(c).cpu_objects > 0, "nothing parked in slot 1");
        k.kmem_cache_shrink(c);
    });
    let info = k.cache_info(c);
    assert_eq!(info.cpu_objects, 0, "objects left in the array of a slot nobody owns: {info:?}");
    assert_eq!(info.active_objs, 0, "{info:?}");
    assert_eq!(k.kmem_cache_shrink(c), 0, "the cache still holds slabs: {:?}", k.cache_info(c));
    SLOT.with(|s| s.set(None));
}

/// `kmem_cache_destroy` on a board without a heavy barrier, after another CPU's thread freed
/// objects of the cache (parked in its array) and went idle: the destroy's contract says no
/// one uses the cache any more, so its teardown empties that array too, as the kernel's
/// `flush_all_cpus_locked` does on every CPU, instead of reporting the parked objects as
/// remaining and keeping the cache.
#[test]
fn destroy_empties_the_arrays_of_idle_cpus_without_a_heavy_barrier() {
    let region = Region::new(32 << 20);
    let board = TwoCpus { log: Mutex::new(String::new()), ticks: AtomicU64::new(0), barrier_hook: Mutex::new(None) };
    SLOT.with(|s| s.set(Some(0)));
    // SAFETY: The region is ours, zeroed, and outlives the allocator.
    let pa = unsafe { PageAllocator::new(board, normal_only(&region), Config::default()) }.expect("boot");
    let k = Kmem::new(pa, SlabConfig::default());
    let accounted = |k: &Kmem<TwoCpus>| {
        k.pages().drain_all_pages();
        let (rec, unrec) = k.slab_pages();
        k.total_free() + rec + unrec
    };
    let free0 = accounted(&k);
    let c = k.kmem_cache_create("parked-idle", 64, &CacheArgs::default(), SLAB_NO_MERGE).expect("create");
    std::thread::scope(|s| {
        let (k, c) = (&k, c);
        let (parked_tx, parked_rx) = sync_channel(1);
        let (go_tx, go_rx) = sync_channel::<()>(1);
        let idle = s.spawn(move || {
            park_in_slot_1(k, c);
            parked_tx.send(()).unwrap();
            // Idle, still owning slot 1, until the destroy is done.
            go_rx.recv().unwrap();
            SLOT.with(|s| s.set(None));
            // SAFETY (both): This thread owned slot 1 and is outside every per-CPU section of it.
            unsafe {
                k.slab_cpu_dead(1);
                k.pages().drain_cpu_slot(1);
            }
        });
        parked_rx.recv().unwrap();
        assert!(k.cache_info(c).cpu_objects > 0, "nothing parked in slot 1");
        // SAFETY: Every object was freed (the channel orders the frees before this call); the
        // handle is not used again.
        let r = unsafe { k.kmem_cache_destroy(c) };
        go_tx.send(()).unwrap();
        idle.join().unwrap();
        let log = k.platform().log.lock().unwrap().clone();
        assert!(r.is_ok(), "destroy failed: {r:?}\n{log}");
        assert!(!log.contains("remaining"), "{log}");
    });
    assert_eq!(accounted(&k), free0, "the cache's pages are back");
    SLOT.with(|s| s.set(None));
}

/// Takes CPU slot 1 for this thread and parks 20 objects of `c` in its array (allocated, then
/// freed).
fn park_in_slot_1(k: &Kmem<TwoCpus>, c: CacheRef) {
    SLOT.with(|s| s.set(Some(1)));
    let objs: Vec<_> = (0..20).map(|_| k.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc")).collect();
    for o in objs {
        // SAFETY: Ours, freed once: parked in slot 1's array.
        unsafe { k.kmem_cache_free(c, o.as_ptr()) };
    }
}
