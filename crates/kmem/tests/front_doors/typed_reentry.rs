//! A typed cache destroyed from inside its own hooks: a `T` whose `Drop` drops the last handle
//! while the core frees one of the cache's slabs (raw-handle shrink, reclaim, a thread's exit),
//! and a constructor that drops the last handle while its slab is being filled. The destroy is
//! left to the operation running the hook (or the next maintenance pass), which then frees
//! everything — or, with an object leaked through the raw handle, reports it (SL-12).
//!
//! Before the fix these crashed (use after free of the cache under the slab loop that ran the
//! destructor) or deadlocked (the nested destroy took the cache list lock that reclaim and
//! thread exit held); the deadlocking ones run under a watchdog.

use std::collections::BTreeMap;
use std::panic;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::slab::flags::{SLAB_TYPESAFE_BY_RCU, SlabFlags};
use kmem::{CacheBox, KmemCache, Machine};

use crate::{count_log, machine};

/// A list node whose `Drop` drops the rest of the list: handles of its own cache.
struct Node {
    next: Option<CacheBox<Node>>,
    keep: Vec<CacheBox<Node>>,
    drops: Arc<AtomicUsize>,
    /// After dropping `next`, take a zeroed block of this order and give it back: the cache's
    /// own pages, had the drop just freed them under the slab loop running this destructor
    /// (the audit's reproduction).
    reuse: Option<(Machine, u32)>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if let Some((m, order)) = self.reuse.take() {
            drop(self.next.take());
            let block = m.get_free_pages(GFP_KERNEL | __GFP_ZERO, order).expect("memory");
            #[allow(unused_unsafe)]
            // SAFETY: Ours, just allocated with this order, not used again.
            unsafe {
                m.free_pages_addr(block.as_ptr(), order)
            };
        }
    }
}

/// Sets its flag when dropped: captured by a constructor closure, it tells when the core
/// released the cache's hooks.
struct Released(Arc<AtomicBool>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// What a test watches: values made and dropped, and whether the hooks were released.
#[derive(Clone, Default)]
struct Watch {
    made: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
}

fn node_cache(m: &Machine, name: &str, w: &Watch) -> KmemCache<Node> {
    node_cache_flags(m, name, w, SlabFlags::empty())
}

fn node_cache_flags(m: &Machine, name: &str, w: &Watch, flags: SlabFlags) -> KmemCache<Node> {
    let (made, drops, released) = (Arc::clone(&w.made), Arc::clone(&w.drops), Released(Arc::clone(&w.released)));
    KmemCache::new(m, name, flags, move || {
        let _ = &released;
        made.fetch_add(1, SeqCst);
        Node { next: None, keep: Vec::new(), drops: Arc::clone(&drops), reuse: None }
    })
    .expect("create")
}

/// The slab an object lives in (slabs are naturally aligned blocks of `1 << order` pages).
fn slab_of(m: &Machine, cache: &KmemCache<Node>, obj: &CacheBox<Node>) -> usize {
    let info = cache.info();
    let order = (info.pages / info.slabs).trailing_zeros();
    m.virt_to_pfn(CacheBox::as_ptr(obj).as_ptr().cast()).expect("direct map") >> order
}

/// Makes `b` — the last handle once everything else is dropped — hang off a node in another
/// slab (not slab `avoid` either), then drops everything else. Afterwards the holder's slab is
/// empty (its objects wait in this CPU's array), and freeing it runs the destructor that drops
/// the last handle (and then reuses pages of order `reuse`, if given). The holder is the
/// lowest object of its slab, so the destructor loop has more objects to visit after it.
fn chain(m: &Machine, cache: KmemCache<Node>, avoid: Option<usize>, reuse: Option<u32>) {
    let addr = |x: &CacheBox<Node>| CacheBox::as_ptr(x).as_ptr() as usize;
    let mut objs: Vec<_> = (0..2 * cache.objects_per_slab() + 1).map(|_| cache.alloc(GFP_KERNEL).unwrap()).collect();
    let (i, _) = objs
        .iter()
        .enumerate()
        .filter(|(_, x)| Some(slab_of(m, &cache, x)) != avoid)
        .min_by_key(|(_, x)| addr(x))
        .expect("an object outside slab `avoid`");
    let mut holder = objs.swap_remove(i);
    let j = objs.iter().position(|x| slab_of(m, &cache, x) != slab_of(m, &cache, &holder)).expect("two slabs");
    holder.next = Some(objs.swap_remove(j));
    holder.reuse = reuse.map(|order| (m.clone(), order));
    drop(objs);
    drop(cache);
    drop(holder);
}

/// Free pages once per-CPU page lists are drained.
fn settled(m: &Machine) -> usize {
    m.drain_all_pages();
    m.total_free()
}

/// A baseline taken after a first typed cache has come and gone (the slab descriptor pool
/// keeps the page it grew by).
fn baseline(m: &Machine) -> usize {
    let w = Watch::default();
    let warm = node_cache(m, "fd_reent_warmup", &w);
    let objs: Vec<_> = (0..4 * warm.objects_per_slab()).map(|_| warm.alloc(GFP_KERNEL).unwrap()).collect();
    drop(objs);
    drop(warm);
    assert!(w.released.load(SeqCst));
    settled(m)
}

/// Runs `f` on a new thread and waits for the thread to have exited (its thread-local
/// destructors — the slot release, `slab_cpu_dead` — included): a deadlock fails the test.
fn on_thread<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(f);
    thread::spawn(move || {
        let _ = tx.send(worker.join());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("{what}: not done after 60 s (deadlock)"),
    }
}

/// The cache is gone: not found, not listed, every value dropped, hooks released, no report.
fn assert_gone(m: &Machine, name: &str, w: &Watch) {
    assert!(!m.cache_listed(name), "{name} still on the cache list");
    assert!(!m.slabinfo().contains(name), "{name} still in /proc/slabinfo");
    assert!(w.released.load(SeqCst), "the hooks were released once the cache was gone");
    assert_eq!(w.drops.load(SeqCst), w.made.load(SeqCst), "every constructed value dropped");
    assert_eq!(count_log(m, "still has objects"), 0, "{}", m.dmesg());
}

/// One CPU slot: a cache structure fits one page, which a free hands straight to the next
/// one-page allocation (per-CPU page lists are LIFO) — the way a freed cache gets overwritten.
fn one_cpu() -> Machine {
    Machine::builder().mem_bytes(64 << 20).cpus(1).kswapd(false).random_freelist(false).build().expect("machine")
}

#[test]
fn a_destructor_dropping_the_last_handle_in_a_raw_shrink_leaves_the_destroy_to_the_shrink() {
    let m = one_cpu();
    let base = baseline(&m);
    let w = Watch::default();
    let cache = node_cache(&m, "fd_reent_shrink", &w);
    // SAFETY: Used on this thread only; the last handle goes inside the shrink (allowed), and
    // the handle is not used afterwards.
    let raw = unsafe { cache.cache_ref() };
    let order = m.virt_to_page(raw.as_ptr().cast()).expect("the cache's pages").order();
    chain(&m, cache, None, Some(order));
    assert!(m.cache_listed("fd_reent_shrink"), "the chained handle keeps the cache");
    // Frees the holder's slab: its destructor drops the last handle, inside the shrink.
    m.kmem_cache_shrink(raw);
    assert_gone(&m, "fd_reent_shrink", &w);
    assert!(!m.is_live_cache(raw));
    assert_eq!(settled(&m), base, "every page back");
}

#[test]
fn a_destructor_dropping_the_last_handle_in_reclaim_leaves_the_destroy_to_reclaim() {
    let m = machine();
    let base = baseline(&m);
    let w = Watch::default();
    let (m2, w2) = (m.clone(), w.clone());
    // Reclaim holds no cache list lock while it shrinks a cache (it did: the nested destroy
    // deadlocked).
    on_thread("reclaim", move || {
        chain(&m2, node_cache(&m2, "fd_reent_reclaim", &w2), None, None);
        m2.shrink_all(GFP_KERNEL);
    });
    assert_gone(&m, "fd_reent_reclaim", &w);
    assert_eq!(settled(&m), base, "every page back");
}

#[test]
fn a_destructor_dropping_the_last_handle_at_a_threads_exit_leaves_the_destroy_to_the_exit() {
    let m = machine();
    let base = baseline(&m);
    let w = Watch::default();
    let (m2, w2) = (m.clone(), w.clone());
    on_thread("thread exit", move || {
        let m = m2;
        let cache = node_cache(&m, "fd_reent_exit", &w2);
        let n = cache.objects_per_slab();
        // SAFETY: Read now, on this thread, while `cache` is alive.
        let min_partial = unsafe { m.cache(cache.cache_ref()) }.unwrap().min_partial();
        // A flush frees an emptied slab only while the node keeps `min_partial` partial
        // slabs: make that many, each holding one object the holder node keeps.
        let mut slabs: BTreeMap<usize, Vec<CacheBox<Node>>> = BTreeMap::new();
        for _ in 0..(min_partial + 4) * n {
            let x = cache.alloc(GFP_KERNEL).unwrap();
            slabs.entry(slab_of(&m, &cache, &x)).or_default().push(x);
        }
        let (mut full, rest): (Vec<_>, Vec<_>) = slabs.into_values().partition(|g| g.len() == n);
        drop(rest);
        assert!(full.len() >= min_partial + 2, "{} full slabs", full.len());
        let mut holder_slab = full.pop().unwrap();
        let b = full.pop().unwrap().pop().unwrap();
        let keep: Vec<_> = full.drain(..min_partial).map(|mut g| g.pop().unwrap()).collect();
        drop(full);
        // This CPU's array empty, the partial slabs on the node.
        cache.shrink();
        let mut holder = holder_slab.pop().unwrap();
        holder.next = Some(b);
        holder.keep = keep;
        drop(cache);
        // The holder's slab, all of it, waits in this thread's CPU array (fewer than its
        // capacity: nothing is flushed yet) until the thread exits.
        drop(holder_slab);
        drop(holder);
        assert!(m.cache_listed("fd_reent_exit"), "held by the holder's handles");
    });
    assert_gone(&m, "fd_reent_exit", &w);
    assert_eq!(settled(&m), base, "every page back");
}

#[test]
fn a_constructor_dropping_the_last_handle_in_a_raw_allocation_leaves_the_destroy_to_the_next_pass() {
    struct Built;
    let m = machine();
    let stash: Arc<Mutex<Option<KmemCache<Built>>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(AtomicBool::new(false));
    let (s2, c2, r2) = (Arc::clone(&stash), Arc::clone(&calls), Released(Arc::clone(&released)));
    let cache = KmemCache::new(&m, "fd_reent_ctor", SlabFlags::empty(), move || {
        let _ = &r2;
        c2.fetch_add(1, SeqCst);
        // The first construction drops the only handle.
        let taken = s2.lock().unwrap().take();
        drop(taken);
        Built
    })
    .unwrap();
    let per_slab = cache.objects_per_slab();
    // A typed cache is unlisted: safe lookups do not hand out its raw handle.
    assert!(m.find_cache("fd_reent_ctor").is_none() && m.cache_listed("fd_reent_ctor"));
    // SAFETY: This thread alone uses `raw`, in the allocation below, whose own constructor
    // drops the last handle: a re-entrant destroy, which the slab layer defers.
    let raw = unsafe { cache.cache_ref() };
    *stash.lock().unwrap() = Some(cache);
    // The allocation makes the first slab, whose first constructor call drops the last handle
    // while the slab is being filled.
    let obj = m.kmem_cache_alloc(raw, GFP_KERNEL).expect("the allocation completes");
    assert_eq!(calls.load(SeqCst), per_slab, "the slab was filled to the end");
    assert!(!released.load(SeqCst), "the hooks outlive the allocation that ran them");
    assert!(!m.cache_listed("fd_reent_ctor"), "destroyed: no longer listed");
    assert!(!m.is_live_cache(raw), "the handle is dead");
    // The next maintenance pass (here reclaim) tears it down; the object the allocation
    // returned is still out (freeing it to a dead cache is not allowed): SL-12.
    m.shrink_all(GFP_KERNEL);
    assert_eq!(count_log(&m, "Objects remaining on __kmem_cache_shutdown()"), 1, "{}", m.dmesg());
    assert_eq!(count_log(&m, "kmem_cache_destroy fd_reent_ctor: Slab cache still has objects"), 1);
    assert!(count_log(&m, &format!("Object 0x{:x}", obj.as_ptr() as usize)) >= 1, "the object is named");
    assert!(!released.load(SeqCst), "a kept cache keeps its hooks (a later free may run them)");
    // Reported once: later passes find nothing more to do.
    m.shrink_all(GFP_KERNEL);
    assert_eq!(count_log(&m, "still has objects"), 1);
}

#[test]
fn kswapd_tears_down_a_cache_destroyed_inside_its_own_allocation_without_memory_pressure() {
    struct Built;
    let m = Machine::builder().mem_bytes(64 << 20).cpus(2).kswapd(true).build().expect("machine");
    let stash: Arc<Mutex<Option<KmemCache<Built>>>> = Arc::default();
    let s2 = Arc::clone(&stash);
    let cache = KmemCache::new(&m, "fd_reent_kswapd", SlabFlags::empty(), move || {
        drop(s2.lock().unwrap().take());
        Built
    })
    .unwrap();
    // SAFETY: As in the test above: this thread alone uses `raw`, in one allocation whose
    // constructor drops the last handle.
    let raw = unsafe { cache.cache_ref() };
    *stash.lock().unwrap() = Some(cache);
    let obj = m.kmem_cache_alloc(raw, GFP_KERNEL).expect("the allocation completes");
    assert!(!m.cache_listed("fd_reent_kswapd"), "destroyed");
    // That the teardown waits for a maintenance pass is the test above's (with reclaim as the
    // pass); here kswapd's pass may come at any moment, even before this line, so only its
    // coming is asserted.
    // No allocation, no reclaim: kswapd's once-a-second pass tears the orphan down, which
    // reports the object the allocation returned (SL-12).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count_log(&m, "kmem_cache_destroy fd_reent_kswapd: Slab cache still has objects") == 0 {
        assert!(std::time::Instant::now() < deadline, "kswapd did not reap the orphan\n{}", m.dmesg());
        thread::sleep(Duration::from_millis(20));
    }
    assert!(count_log(&m, &format!("Object 0x{:x}", obj.as_ptr() as usize)) >= 1, "the object is named");
}

#[test]
fn a_deferred_destroy_still_reports_an_object_leaked_through_the_raw_handle() {
    let m = machine();
    let w = Watch::default();
    let (m2, w2) = (m.clone(), w.clone());
    let leaked = on_thread("reclaim", move || {
        let cache = node_cache(&m2, "fd_reent_leak", &w2);
        // SAFETY: Used here, before any handle goes, and never freed to.
        let leaked = m2.kmem_cache_alloc(unsafe { cache.cache_ref() }, GFP_KERNEL).unwrap();
        let info = cache.info();
        let order = (info.pages / info.slabs).trailing_zeros();
        let leaked_slab = m2.virt_to_pfn(leaked.as_ptr()).unwrap() >> order;
        chain(&m2, cache, Some(leaked_slab), None);
        m2.shrink_all(GFP_KERNEL);
        leaked.as_ptr() as usize
    });
    assert!(!m.cache_listed("fd_reent_leak"), "unlinked all the same");
    assert_eq!(count_log(&m, "Objects remaining on __kmem_cache_shutdown()"), 1, "{}", m.dmesg());
    assert!(count_log(&m, &format!("Object 0x{leaked:x}")) >= 1, "the leaked object is named");
    assert_eq!(count_log(&m, "kmem_cache_destroy fd_reent_leak: Slab cache still has objects"), 1);
    assert!(!w.released.load(SeqCst), "the kept cache keeps its hooks");
}

#[test]
fn an_rcu_cache_dropped_in_atomic_context_keeps_its_hooks_until_a_grace_period_frees_its_slabs() {
    let m = one_cpu();
    let base = baseline(&m);
    let w = Watch::default();
    let cache = node_cache_flags(&m, "fd_reent_rcu", &w, SLAB_TYPESAFE_BY_RCU);
    // SAFETY: Only read here, while `cache` is alive.
    let order = m.virt_to_page(unsafe { cache.cache_ref() }.as_ptr().cast()).expect("the cache's pages").order();
    drop((0..cache.objects_per_slab()).map(|_| cache.alloc(GFP_KERNEL).unwrap()).collect::<Vec<_>>());
    {
        // No grace period can be waited for: the emptied slab waits on the RCU list, and
        // holds the cache (it used to be freed under it).
        let _atomic = kmem::context::atomic_section();
        drop(cache);
    }
    assert!(!m.cache_listed("fd_reent_rcu"), "destroyed");
    assert!(!w.released.load(SeqCst), "the hooks wait for the slab's destructor calls");
    // Whatever takes the pages a free would have just given back.
    let block = m.get_free_pages(GFP_KERNEL | __GFP_ZERO, order).expect("memory");
    m.synchronize_rcu();
    #[allow(unused_unsafe)]
    // SAFETY: Ours, allocated above with this order.
    unsafe {
        m.free_pages_addr(block.as_ptr(), order)
    };
    assert_gone(&m, "fd_reent_rcu", &w);
    assert_eq!(settled(&m), base, "every page back");
}
