//! A small RCU: read-side sections and grace periods, for `SLAB_TYPESAFE_BY_RCU` caches and
//! `kfree_rcu` (SEMANTICS §3.2, SL-11, TST-7).
//!
//! Readers enter with [`Rcu::read_lock`] (the kernel's `rcu_read_lock`), which counts them in
//! one of two counters; a grace period ([`Rcu::synchronize`], `synchronize_rcu`) flips the
//! current counter and waits until every reader counted in the old one has left. A reader
//! re-checks the index after counting itself, so one that raced with the flip counts itself in
//! the new counter instead: a `SeqCst` fence between the store and the load on both sides (the
//! reader's count then its re-check, the writer's flip then its wait) means either the writer
//! sees the reader's count, or the reader sees the flip. This is SRCU's scheme; read-side sections cost two atomic
//! read-modify-writes, which is the price of having no scheduler to piggy-back on.
//!
//! What waits for a grace period (slabs of RCU caches, `kfree_rcu` objects) is queued by the
//! slab allocator and released after the next one. Grace periods run when someone asks:
//! `synchronize_rcu`/`rcu_barrier`, cache shrink and destroy, and reclaim — documented in
//! `docs/deviations.md` (the kernel runs them continuously in the background). `Pending`
//! also numbers the batches taken off it (tickets) and lists the `rcu_barrier` rounds waiting
//! for older batches (`Waiter`); the invariants and how a barrier uses them are in
//! `slab::rcu_free`'s module docs. All of it is read and written under the pending lock.
//!
//! `tests/loom.rs` checks that a grace period orders a reader's accesses before the writer's
//! free, under every interleaving (the counters are loom's atomics under `cfg(kmem_loom)`).

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::Ordering::SeqCst;
#[cfg(not(kmem_loom))]
use core::sync::atomic::{AtomicU64, AtomicUsize, fence};
#[cfg(kmem_loom)]
use loom::sync::atomic::{AtomicU64, AtomicUsize, fence};

use crate::platform::Platform;
use crate::sync::SpinLock;

/// `CONFIG_RCU_CPU_STALL_TIMEOUT`: the default stall timeout, in seconds.
pub const RCU_CPU_STALL_TIMEOUT: u32 = 21;

/// `rcutree.qhimark`: each time this many more `call_rcu` callbacks are queued than when it
/// last asked (or since a batch last took them), `call_rcu` asks the platform's worker to run
/// them soon (`Platform::schedule_work`,
/// `Kmem::rcu_core`).
pub const QHIMARK: usize = 10_000;

/// The grace-period state.
pub struct Rcu {
    idx: AtomicUsize,
    readers: [AtomicUsize; 2],
    gp: SpinLock<()>,
    completed: AtomicU64,
    /// `rcupdate.rcu_cpu_stall_timeout` in seconds: a grace period waited for this long is
    /// reported as an RCU stall. Not part of the grace-period handoff: a plain core atomic.
    stall_timeout_s: core::sync::atomic::AtomicU32,
    /// Deferred work, owned by the slab allocator: `(slab chain head, object pages head)`.
    pub(crate) pending: SpinLock<Pending>,
}

/// `struct rcu_head` (`struct callback_head`): what `call_rcu` chains a callback through,
/// embedded in the caller's object, with the kernel's layout.
#[repr(C)]
#[derive(Debug)]
pub struct RcuHead {
    /// The next callback queued (written by `call_rcu`).
    pub next: *mut RcuHead,
    /// The callback (written by `call_rcu`).
    pub func: Option<RcuCallback>,
}

impl RcuHead {
    /// A head not queued anywhere.
    pub const fn new() -> Self {
        Self { next: core::ptr::null_mut(), func: None }
    }
}

impl Default for RcuHead {
    fn default() -> Self {
        Self::new()
    }
}

/// `rcu_callback_t`: called with the head it was queued with, after a grace period.
pub type RcuCallback = unsafe extern "C" fn(*mut RcuHead);

/// Work waiting for a grace period.
pub(crate) struct Pending {
    /// Slab descriptors of RCU caches waiting to be freed, chained through `next` (descriptor
    /// offsets); `desc::NIL_PFN` ends it.
    pub(crate) slabs: u32,
    /// Number of slabs on the chain.
    pub(crate) nr_slabs: usize,
    /// Pages of pointers to `kfree_rcu` objects; each page's word 0 links to the next page and
    /// word 1 counts the pointers that follow.
    pub(crate) objects: usize,
    /// `call_rcu` heads, newest first, chained through `RcuHead::next` (0: none).
    pub(crate) callbacks: usize,
    /// The oldest head of `callbacks` (its last; 0 when empty): a batch put back is spliced
    /// behind it in O(1).
    pub(crate) oldest_callback: usize,
    /// Length of `callbacks`.
    pub(crate) nr_callbacks: usize,
    /// `nr_callbacks` when `call_rcu` last asked for them to run (0 after a batch takes them):
    /// it asks again [`QHIMARK`] callbacks later (the kernel's `qlen_last_fqs_check`).
    pub(crate) kicked_at: usize,
    /// Batches taken off these lists whose grace period or freeing has not finished.
    pub(crate) inflight: usize,
    /// The ticket the next batch taken gets: batches are numbered in the order they are taken.
    next_ticket: u64,
    /// Barriers waiting for older batches ([`Waiter`]s, linked through `Waiter::next`; 0 ends
    /// the list).
    waiters: usize,
    /// Batches put back because their grace period could not complete (counts, wrapping): a
    /// barrier during which one was runs another round.
    pub(crate) requeued: u64,
}

/// An `rcu_barrier` round waiting for the batches taken before its own: linked into
/// [`Pending`]'s list with its own batch (under the same lock hold), unlinked when it is done.
///
/// # Invariants
/// While linked: `bound` is the ticket after the round's own batch (so every batch in flight
/// when it was linked has a smaller ticket, and every batch taken later a larger or equal
/// one), and `remaining` counts the batches with a ticket below `bound` still in flight.
/// `held` is 0 until the round's own batch is done; then it is how many batches its thread is
/// inside (parked: they wait for this barrier, which must not wait for them). Every field is
/// read and written only under the pending lock.
pub(crate) struct Waiter {
    bound: Cell<u64>,
    remaining: Cell<usize>,
    held: Cell<usize>,
    next: Cell<usize>,
}

impl Waiter {
    /// Not linked yet.
    pub(crate) const fn new() -> Self {
        Self { bound: Cell::new(0), remaining: Cell::new(0), held: Cell::new(0), next: Cell::new(0) }
    }
}

/// Keeps a [`Waiter`] where it is while it may be linked, and unlinks it on drop (also on
/// unwinding), so the list never points at a waiter that is gone. It is dropped, never
/// forgotten (`barrier_round` holds it in a local until it returns).
pub(crate) struct Linked<'a> {
    pending: &'a SpinLock<Pending>,
    waiter: &'a Waiter,
}

impl<'a> Linked<'a> {
    /// `waiter`, to be linked by [`Pending::take`].
    pub(crate) fn new(pending: &'a SpinLock<Pending>, waiter: &'a Waiter) -> Self {
        Self { pending, waiter }
    }
}

impl Drop for Linked<'_> {
    fn drop(&mut self) {
        self.pending.lock().unlink(self.waiter);
    }
}

impl Pending {
    /// Counts a batch just taken off the lists in flight; returns its ticket. With `waiter`
    /// (a barrier round's own batch), links the waiter: it waits for this batch and every
    /// batch in flight now, none taken later.
    pub(crate) fn take(&mut self, waiter: Option<&Linked<'_>>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.inflight += 1;
        if let Some(l) = waiter {
            let w = l.waiter;
            // INVARIANT: Every batch in flight has a ticket below `next_ticket`.
            w.bound.set(self.next_ticket);
            w.remaining.set(self.inflight);
            w.held.set(0);
            w.next.set(self.waiters);
            self.waiters = ptr::from_ref(w) as usize;
        }
        ticket
    }

    /// The batch `ticket` is done: no longer in flight, nor waited for by any barrier.
    pub(crate) fn finish(&mut self, ticket: u64) {
        self.inflight -= 1;
        for w in self.waiters() {
            if ticket < w.bound.get() {
                // INVARIANT: It was in flight when `w` was linked, and is counted there.
                w.remaining.set(w.remaining.get() - 1);
            }
        }
    }

    /// The round's own batch is done and its thread is inside `held` batches: parks them.
    pub(crate) fn park(&mut self, l: &Linked<'_>, held: usize) {
        l.waiter.held.set(held);
    }

    /// Whether the barrier round `l` is done waiting: every batch taken before its own, and
    /// its own, is done, but for the parked ones it must not wait for. Those are its own
    /// thread's (`held`: taken before it, so counted in `remaining`), and if it parks any,
    /// those of every other waiter linked before it (`bound` below its own: their held batches
    /// were taken before theirs, so before its own, and are counted too). It waits for parked
    /// batches of barriers linked after it, which do not wait for its own (so no cycle).
    /// A barrier that parks nothing waits for every batch older than its own.
    pub(crate) fn waited(&self, l: &Linked<'_>) -> bool {
        let me = l.waiter;
        let mut parked = me.held.get();
        if parked != 0 {
            for w in self.waiters() {
                if w.bound.get() < me.bound.get() {
                    parked += w.held.get();
                }
            }
        }
        me.remaining.get() <= parked
    }

    /// Unlinks `w` if linked.
    fn unlink(&mut self, w: &Waiter) {
        let target = ptr::from_ref(w) as usize;
        if self.waiters == target {
            self.waiters = w.next.get();
            return;
        }
        for v in self.waiters() {
            if v.next.get() == target {
                v.next.set(w.next.get());
                return;
            }
        }
    }

    /// The linked waiters.
    fn waiters(&self) -> impl Iterator<Item = &Waiter> {
        let mut cur = self.waiters;
        core::iter::from_fn(move || {
            // SAFETY: A linked waiter stays where it is and alive until its `Linked` guard
            // unlinks it, which takes the pending lock this borrow of `Pending` comes from;
            // its cells are only used under that lock, so sharing it across threads races
            // with nothing.
            let w = unsafe { (cur as *const Waiter).as_ref()? };
            cur = w.next.get();
            Some(w)
        })
    }
}

/// A read-side critical section; ends on drop, on the thread that entered it (not `Send`, as
/// `rcu_read_unlock` must run on the task that called `rcu_read_lock`: the platform tracks
/// sections per thread).
#[must_use = "the read-side section ends when the guard is dropped"]
pub struct RcuReadGuard<'a> {
    rcu: &'a Rcu,
    idx: usize,
    /// The platform told of the section ([`Rcu::read_lock_on`]), told again when it ends.
    platform: Option<&'a dyn Platform>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for RcuReadGuard<'_> {
    fn drop(&mut self) {
        self.rcu.readers[self.idx].fetch_sub(1, SeqCst);
        if let Some(platform) = self.platform {
            platform.rcu_read_exit();
        }
    }
}

impl Default for Rcu {
    fn default() -> Self {
        Self::new()
    }
}

impl Rcu {
    /// No readers, nothing pending.
    pub fn new() -> Self {
        Self {
            idx: AtomicUsize::new(0),
            readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            gp: SpinLock::new(()),
            completed: AtomicU64::new(0),
            stall_timeout_s: core::sync::atomic::AtomicU32::new(RCU_CPU_STALL_TIMEOUT),
            pending: SpinLock::new(Pending {
                slabs: crate::slab::desc::NIL_PFN,
                nr_slabs: 0,
                objects: 0,
                callbacks: 0,
                inflight: 0,
                next_ticket: 0,
                waiters: 0,
                requeued: 0,
                nr_callbacks: 0,
                oldest_callback: 0,
                kicked_at: 0,
            }),
        }
    }

    /// `rcu_read_lock`: until the guard drops, nothing freed after this point through RCU is
    /// given back.
    pub fn read_lock(&self) -> RcuReadGuard<'_> {
        RcuReadGuard { rcu: self, idx: self.enter(), platform: None, _not_send: PhantomData }
    }

    /// [`Self::read_lock`] that tells `platform` the caller is inside until the guard drops
    /// ([`Platform::rcu_read_enter`]), so a grace period the caller asks for meanwhile can be
    /// refused instead of waiting for the caller itself.
    pub fn read_lock_on<'a>(&'a self, platform: &'a dyn Platform) -> RcuReadGuard<'a> {
        let idx = self.enter();
        platform.rcu_read_enter();
        RcuReadGuard { rcu: self, idx, platform: Some(platform), _not_send: PhantomData }
    }

    /// Counts the caller in the current counter; returns its index.
    fn enter(&self) -> usize {
        loop {
            let idx = self.idx.load(SeqCst);
            self.readers[idx].fetch_add(1, SeqCst);
            // Store-load ordering against the writer's flip (its fence pairs with this one).
            fence(SeqCst);
            if self.idx.load(SeqCst) == idx {
                return idx;
            }
            self.readers[idx].fetch_sub(1, SeqCst);
        }
    }

    /// Readers inside a section now.
    pub fn readers(&self) -> usize {
        self.readers[0].load(SeqCst) + self.readers[1].load(SeqCst)
    }

    /// Grace periods completed.
    pub fn completed(&self) -> u64 {
        self.completed.load(SeqCst)
    }

    /// The stall timeout in seconds ([`Self::set_stall_timeout`]).
    pub fn stall_timeout(&self) -> u32 {
        self.stall_timeout_s.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Sets `rcupdate.rcu_cpu_stall_timeout`: clamped to 3..=300 seconds, as
    /// `rcu_jiffies_till_stall_check` clamps it. Returns the value in effect.
    pub fn set_stall_timeout(&self, secs: u32) -> u32 {
        let secs = secs.clamp(3, 300);
        self.stall_timeout_s.store(secs, core::sync::atomic::Ordering::Relaxed);
        secs
    }

    /// Waits until every reader that entered before the call has left (`synchronize_rcu`),
    /// calling `relax` while it waits. Must not be called inside a read-side section of the
    /// same thread (it would wait for itself, as in the kernel).
    pub fn synchronize(&self, mut relax: impl FnMut()) {
        let _gp = self.gp.lock();
        let old = self.idx.load(SeqCst);
        // Readers left in the inactive counter by a `try_synchronize` that gave up started
        // before us too: drain them, then flip and drain the active one.
        while self.readers[old ^ 1].load(SeqCst) != 0 {
            relax();
        }
        self.idx.store(old ^ 1, SeqCst);
        fence(SeqCst);
        while self.readers[old].load(SeqCst) != 0 {
            relax();
        }
        self.completed.fetch_add(1, SeqCst);
    }

    /// Like [`Rcu::synchronize`] but gives up (false) instead of waiting when a reader of the
    /// old period is still inside; for callers that may not wait (atomic context).
    pub fn try_synchronize(&self) -> bool {
        let Some(_gp) = self.gp.try_lock() else { return false };
        let old = self.idx.load(SeqCst);
        if self.readers[old ^ 1].load(SeqCst) != 0 {
            return false;
        }
        self.idx.store(old ^ 1, SeqCst);
        fence(SeqCst);
        if self.readers[old].load(SeqCst) != 0 {
            return false;
        }
        self.completed.fetch_add(1, SeqCst);
        true
    }
}

#[cfg(all(test, not(kmem_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn synchronize_waits_for_a_reader_that_entered_before() {
        let rcu = Arc::new(Rcu::new());
        let entered = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let reader = {
            let (rcu, entered, release) = (rcu.clone(), entered.clone(), release.clone());
            std::thread::spawn(move || {
                let _g = rcu.read_lock();
                entered.store(true, SeqCst);
                while !release.load(SeqCst) {
                    std::thread::yield_now();
                }
            })
        };
        while !entered.load(SeqCst) {
            std::thread::yield_now();
        }
        assert!(!rcu.try_synchronize(), "a grace period cannot end while an old reader is inside");
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (rcu, done) = (rcu.clone(), done.clone());
            std::thread::spawn(move || {
                rcu.synchronize(std::thread::yield_now);
                done.store(true, SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!done.load(SeqCst));
        release.store(true, SeqCst);
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(done.load(SeqCst));
        assert_eq!(rcu.readers(), 0);
    }

    #[test]
    fn a_reader_after_the_flip_does_not_block() {
        let rcu = Rcu::new();
        assert!(rcu.try_synchronize());
        let _g = rcu.read_lock();
        // A reader inside blocks every grace period, whichever counter it is in: a failed
        // attempt leaves it in the inactive counter, and the next attempt drains that first.
        assert!(!rcu.try_synchronize());
        assert!(!rcu.try_synchronize());
        drop(_g);
        assert!(rcu.try_synchronize());
        assert_eq!(rcu.completed(), 2);
    }
}
