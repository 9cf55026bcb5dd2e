//! `call_rcu` (the RCU kernel-style slab users free through, SEMANTICS §3.2): a callback runs
//! after a grace period, at the next `rcu_barrier`, oldest first; `rcu_barrier` returns only
//! once every callback queued before it has run, also one another thread's grace period is
//! running; a callback may queue another (it runs at the next barrier) and may not ask for a
//! grace period itself (reported, no hang).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmem::Machine;
use kmem_core::rcu::RcuHead;

use crate::{count_log, slab::machine};

/// A queued callback's object: the head first, so the head's address is the object's.
#[repr(C)]
struct Item {
    head: RcuHead,
    id: usize,
    log: Arc<Mutex<Vec<usize>>>,
    /// What the callback does besides logging its id.
    then: Then,
}

enum Then {
    Nothing,
    /// Queue item `id` on this machine.
    Queue(Machine, usize),
    /// Ask for a grace period inside the callback.
    Barrier(Machine),
    /// Tell `started`, then wait for `release`, then tell `finished`.
    Block(Arc<[AtomicBool; 3]>),
}

unsafe extern "C" fn callback(head: *mut RcuHead) {
    // SAFETY: Every head queued here is the first field of a boxed `Item` given up to it.
    let item = unsafe { Box::from_raw(head.cast::<Item>()) };
    item.log.lock().unwrap().push(item.id);
    match &item.then {
        Then::Nothing => {}
        Then::Queue(m, id) => queue(m, *id, &item.log, Then::Nothing),
        Then::Barrier(m) => m.rcu_barrier(),
        Then::Block(flags) => {
            flags[0].store(true, SeqCst);
            while !flags[1].load(SeqCst) {
                std::thread::yield_now();
            }
            flags[2].store(true, SeqCst);
        }
    }
}

fn queue(m: &Machine, id: usize, log: &Arc<Mutex<Vec<usize>>>, then: Then) {
    let item = Box::new(Item { head: RcuHead::new(), id, log: log.clone(), then });
    let head = NonNull::from(Box::leak(item)).cast::<RcuHead>();
    // SAFETY: The item is given up to the callback, which frees it; nothing else touches it.
    unsafe { m.call_rcu(head, callback) };
}

fn wait_for(flag: &AtomicBool) {
    while !flag.load(SeqCst) {
        std::thread::yield_now();
    }
}

#[test]
fn callbacks_run_at_rcu_barrier_oldest_first() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    for id in 1..=5 {
        queue(&m, id, &log, Then::Nothing);
    }
    assert!(log.lock().unwrap().is_empty(), "nothing runs at call_rcu");
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1, 2, 3, 4, 5]);
    m.rcu_barrier();
    assert_eq!(log.lock().unwrap().len(), 5, "each runs once");
}

#[test]
fn a_reader_holds_the_callbacks_back_until_it_leaves() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    let flags = Arc::new([AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)]);
    let reader = {
        let (m, flags) = (m.clone(), flags.clone());
        std::thread::spawn(move || {
            let guard = m.rcu_read_lock();
            flags[0].store(true, SeqCst);
            wait_for(&flags[1]);
            drop(guard);
        })
    };
    wait_for(&flags[0]);
    queue(&m, 1, &log, Then::Nothing);
    let barrier = {
        let m = m.clone();
        std::thread::spawn(move || m.rcu_barrier())
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(log.lock().unwrap().is_empty() && !barrier.is_finished(), "the grace period waits for the reader");
    flags[1].store(true, SeqCst);
    reader.join().unwrap();
    barrier.join().unwrap();
    assert_eq!(*log.lock().unwrap(), [1]);
}

/// The barrier of thread B finds nothing queued (thread A's barrier took the callback and is
/// running it): B must still wait until that callback has returned.
#[test]
fn rcu_barrier_waits_for_callbacks_another_thread_is_running() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    let flags = Arc::new([AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)]);
    queue(&m, 1, &log, Then::Block(flags.clone()));
    let a = {
        let m = m.clone();
        std::thread::spawn(move || m.rcu_barrier())
    };
    wait_for(&flags[0]);
    let b = {
        let (m, flags) = (m.clone(), flags.clone());
        std::thread::spawn(move || {
            m.rcu_barrier();
            flags[2].load(SeqCst)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(!b.is_finished(), "B's barrier returned while A's callback was still running");
    flags[1].store(true, SeqCst);
    a.join().unwrap();
    assert!(b.join().unwrap(), "the callback had finished when B's barrier returned");
}

#[test]
fn a_callback_may_queue_another_but_not_wait_for_a_grace_period() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    queue(&m, 1, &log, Then::Queue(m.clone(), 2));
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1], "queued during the barrier: left for the next one");
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1, 2]);
    queue(&m, 3, &log, Then::Barrier(m.clone()));
    crate::rcu::must_finish(20, "rcu_barrier inside a callback", {
        let m = m.clone();
        move || m.rcu_barrier()
    });
    assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
    assert_eq!(count_log(&m, "Illegal rcu_barrier() in RCU read-side critical section!"), 1);
}

/// Destroying a cache that is not `SLAB_TYPESAFE_BY_RCU` waits for `kfree_rcu` objects
/// (`kvfree_rcu_barrier`) but runs no `call_rcu` callback: the kernel calls `rcu_barrier` in
/// `kmem_cache_destroy` only for RCU caches, and a destroyer may hold a lock a callback takes.
/// An RCU cache's destroy does run them.
#[test]
fn only_an_rcu_cache_destroy_runs_the_callbacks() {
    use kmem::slab::CacheArgs;
    use kmem::slab::flags::SlabFlags;
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    queue(&m, 1, &log, Then::Nothing);
    let plain = m.kmem_cache_create("plain", 64, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    // SAFETY: A cache of this test's, with no object out and no other user.
    unsafe { m.kmem_cache_destroy(plain) }.expect("empty");
    assert!(log.lock().unwrap().is_empty(), "a plain cache's destroy ran a call_rcu callback");
    let rcu =
        m.kmem_cache_create("rcu", 64, &CacheArgs::default(), kmem::slab::flags::SLAB_TYPESAFE_BY_RCU).expect("create");
    // SAFETY: As above.
    unsafe { m.kmem_cache_destroy(rcu) }.expect("empty");
    assert_eq!(*log.lock().unwrap(), [1], "an RCU cache's destroy is an rcu_barrier");
}

/// What [`destroying_dtor`] destroys, once.
struct DestroyOnce {
    m: Machine,
    victim: kmem::slab::CacheRef,
    done: AtomicBool,
}

/// A destructor that destroys another cache the first time it runs (destructors may destroy
/// caches, `kmem_cache_create`'s docs).
unsafe fn destroying_dtor(ctx: *const (), _obj: *mut u8) {
    // SAFETY: `ctx` is the leaked `DestroyOnce` of the test below.
    let d = unsafe { &*ctx.cast::<DestroyOnce>() };
    if !d.done.swap(true, SeqCst) {
        // SAFETY: The victim is the test's own empty cache, used by nothing else.
        unsafe { d.m.kmem_cache_destroy(d.victim) }.expect("empty");
    }
}

/// A slab of an RCU cache goes back after a grace period, inside the batch that grace period
/// took (counted in flight); its destructor destroying a cache (whose destroy is a barrier)
/// must not wait for that very batch.
#[test]
fn a_destructor_run_by_a_grace_period_may_destroy_a_cache() {
    use kmem::gfp::GFP_KERNEL;
    use kmem::slab::flags::{SLAB_TYPESAFE_BY_RCU, SlabFlags};
    use kmem::slab::{CacheArgs, ObjFn};
    let m = machine();
    let victim = m.kmem_cache_create("victim", 64, &CacheArgs::default(), SlabFlags::empty()).expect("create");
    let d: &'static DestroyOnce =
        Box::leak(Box::new(DestroyOnce { m: m.clone(), victim, done: AtomicBool::new(false) }));
    // SAFETY: A leaked context, callable from any thread (the machine is shared, the flag atomic).
    let dtor = unsafe { ObjFn::new(destroying_dtor, std::ptr::from_ref(d).cast()) };
    let args = CacheArgs { dtor: Some(dtor), ..CacheArgs::default() };
    let c = m.kmem_cache_create("rcu-dtor", 128, &args, SLAB_TYPESAFE_BY_RCU).expect("create");
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
    // SAFETY: The object just allocated, unused afterwards.
    unsafe { m.kmem_cache_free(c, p.as_ptr()) };
    /// The cache handle, moved to the watched thread (used there alone).
    struct Handle(kmem::slab::CacheRef);
    // SAFETY: A cache handle names a cache of a shared machine; only the worker uses it.
    unsafe impl Send for Handle {}
    let h = Handle(c);
    crate::rcu::must_finish(30, "kmem_cache_shrink whose grace period runs a destructor that destroys a cache", {
        let m = m.clone();
        move || {
            let h = h;
            assert_eq!(m.kmem_cache_shrink(h.0), 0);
        }
    });
    assert!(d.done.load(SeqCst), "the destructor ran");
    assert!(m.cache(victim).is_none(), "the victim is gone");
    // SAFETY: The test's cache, empty, unused afterwards.
    unsafe { m.kmem_cache_destroy(c) }.expect("empty");
}

/// `rcu_barrier` and `synchronize_rcu` may sleep: in atomic context (a spin lock held) they
/// are `might_sleep`'s report and return without waiting, and no callback runs inside the
/// caller's atomic section (one taking the caller's lock would spin on it forever).
#[test]
fn rcu_barrier_in_atomic_context_is_reported_and_runs_nothing() {
    let m = machine();
    let log = Arc::new(Mutex::new(Vec::new()));
    queue(&m, 1, &log, Then::Nothing);
    let section = kmem::context::atomic_section();
    m.rcu_barrier();
    assert!(log.lock().unwrap().is_empty(), "a callback ran in the caller's atomic context");
    assert_eq!(count_log(&m, "BUG: sleeping function called from invalid context"), 1);
    drop(section);
    m.rcu_barrier();
    assert_eq!(*log.lock().unwrap(), [1]);
}
