//! What waits for an RCU grace period: slabs of `SLAB_TYPESAFE_BY_RCU` caches (SL-11),
//! `kfree_rcu` objects (TST-7) and `call_rcu` callbacks, and the grace-period entry points
//! (`synchronize_rcu`, `rcu_barrier`). The mechanism is in [`crate::rcu`].
//!
//! A grace period only releases what was queued before it started: the pending lists are
//! taken first (a batch, counted in `Pending::inflight` until it is dealt with), then the
//! grace period runs, then the taken items are freed. Each batch gets a ticket when it is
//! taken, under the pending lock, so tickets follow the order batches were taken in.
//!
//! `rcu_barrier` runs rounds. A round takes a batch of its own and, under the same lock hold,
//! links a `Waiter` whose `bound` is the next ticket: it waits until every batch with a
//! smaller ticket (taken before its own, and its own) is done, and never for one taken later,
//! so reclaim taking batch after batch on other threads cannot hold it up. Invariants, all
//! under the pending lock:
//! - a waiter's `remaining` is the number of batches in flight with a ticket below its
//!   `bound` (it starts at `inflight`, as every batch in flight then has a smaller ticket, and
//!   a batch's drop guard decrements it in every waiter whose bound is above its ticket);
//! - a barrier called inside batches of its own thread (a destructor or cache release run by a
//!   batch) parks them (`Waiter::held`, set once its own batch is done): they wait for it.
//!   Those batches were taken before its own, so they are counted in its `remaining`, and it
//!   waits until `remaining` is down to the parked batches it may skip: its own thread's, and
//!   those of waiters with a smaller bound (theirs were taken before their own batch, hence
//!   before its own, and are counted too). Parked batches of a waiter with a larger bound are
//!   waited for: that waiter skips this one's, so waits only go from smaller to larger
//!   bounds, and no cycle forms. A barrier that parks nothing waits for every older batch.
//!
//! Everything queued before a barrier is then freed (or run) when it returns: it was in the
//! round's own batch, or in an older one. A batch reclaim took and put back during a round
//! (its grace period gave up) makes the barrier run another round (`Pending::requeued`). A
//! batch leaves `inflight` through a drop guard, and a waiter leaves the list through one
//! (`Linked`), so a panic in a destructor cannot leave later barriers waiting, nor the list
//! pointing at a stack frame that is gone.
//!
//! Lock order: the pending lock sits where `slab`'s module docs put it; this module takes
//! nothing else under it. Tickets and waiters are only read and written under it, and
//! waiters spin with it released.
//!
//! `call_rcu` callbacks are taken by `rcu_barrier` (and the cache shrink and destroy that call
//! it) and by [`Kmem::rcu_core`], a platform's own context (the userspace machine's kswapd),
//! never by `synchronize_rcu` or reclaim: those run in the caller's thread, which may hold a
//! lock a callback takes (the kernel runs callbacks elsewhere, so that is legal there), while
//! a callback that needs a lock the `rcu_barrier` caller holds deadlocks in the kernel too.
//! They run after the grace period, oldest first, with no kmem lock held, each in the
//! platform's softirq context (`Platform::softirq_enter`: atomic, so a callback that sleeps is
//! reported) and inside a read-side marker (`Platform::rcu_read_enter`), so that a callback
//! asking for a grace period itself is reported instead of waiting for its own batch. A batch
//! whose grace period gives up (`rcu_core`'s, when an old reader is still inside) puts its
//! callbacks back behind the ones queued meanwhile, so they still run oldest first. Order holds
//! within a batch and from batch to batch taken by one thread; two batches taken by different
//! threads (kswapd's and a barrier's) may run at the same time, so a newer callback can run
//! before an older one of the other batch has finished (the kernel keeps each CPU's callbacks in
//! order; kmem's queue is one for the machine). Waiting for the older batch's callbacks first
//! would need the barrier's parking rules for callbacks too (a batch's own callback may call a
//! barrier); not done.
//!
//! Every [`QHIMARK`] callbacks queued, `call_rcu` asks the platform's worker to run
//! `rcu_core` soon (`Platform::schedule_work`), so a flood of callbacks does not wait for the
//! next periodic pass (the kernel's `qhimark`, past which it forces grace periods along).

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use super::desc::NIL_PFN;
use super::node::Node;
use crate::gfp::{__GFP_NOWARN, GFP_NOWAIT};
use crate::kmem::Kmem;
use crate::platform::Platform;
use crate::rcu::{Linked, QHIMARK, RcuCallback, RcuHead, RcuReadGuard, Waiter};

/// Pointers a pending-object page holds after its two header words.
const PTRS_PER_PAGE: usize = crate::PAGE_SIZE / size_of::<usize>() - 2;

/// A grace period's batch while it is dealt with: counted in `Pending::inflight` under its
/// ticket (by the taker, under the pending lock) and marked on the platform's thread
/// (`Platform::rcu_batch_enter`); both undone on drop, also if a destructor or callback
/// panics, so no barrier waits for it forever.
struct InFlight<'k, P: Platform> {
    k: &'k Kmem<P>,
    ticket: u64,
}

impl<'k, P: Platform> InFlight<'k, P> {
    fn enter(k: &'k Kmem<P>, ticket: u64) -> Self {
        k.platform().rcu_batch_enter();
        Self { k, ticket }
    }
}

impl<P: Platform> Drop for InFlight<'_, P> {
    fn drop(&mut self) {
        self.k.platform().rcu_batch_exit();
        self.k.slabs.rcu.pending.lock().finish(self.ticket);
    }
}

impl<P: Platform> Kmem<P> {
    /// `rcu_read_lock`: objects of `SLAB_TYPESAFE_BY_RCU` caches stay objects of their cache
    /// (their slab is not freed) and `kfree_rcu` objects stay allocated until the guard drops.
    pub fn rcu_read_lock(&self) -> RcuReadGuard<'_> {
        self.slabs.rcu.read_lock_on(self.platform())
    }

    /// `synchronize_rcu`: waits for every read-side section that started before the call,
    /// then frees what was waiting for it. Inside the caller's own read-side section (which
    /// it would wait for forever) it is lockdep's "suspicious RCU usage", reported, and
    /// returns at once, with no grace period and nothing freed. In atomic context it is
    /// `might_sleep`'s report, and returns at once too.
    #[track_caller]
    pub fn synchronize_rcu(&self) {
        if !self.pages().might_sleep() && !self.refuse_in_rcu_read("synchronize_rcu()", Location::caller()) {
            self.rcu_grace_period(true, false);
        }
    }

    /// `rcu_barrier`: after it returns, everything queued before the call has been freed, and
    /// every `call_rcu` callback queued before it has run. Inside the caller's own read-side
    /// section (or a callback) it is reported and returns at once, as
    /// [`Self::synchronize_rcu`] does; so it is in atomic context (`might_sleep`'s report), where
    /// a callback taking a lock the caller holds would spin forever.
    #[track_caller]
    pub fn rcu_barrier(&self) {
        if self.pages().might_sleep() {
            return;
        }
        self.rcu_barrier_at(Location::caller());
    }

    /// [`Self::rcu_barrier`] on behalf of `caller` (a cache shrink or destroy names its own
    /// caller in the report); returns whether the barrier ran.
    pub(crate) fn rcu_barrier_at(&self, caller: &Location<'_>) -> bool {
        self.barrier_at(caller, true)
    }

    /// `kvfree_rcu_barrier`, what the destroy of a cache that is not `SLAB_TYPESAFE_BY_RCU`
    /// waits for: every `kfree_rcu` object queued before it is freed, and no `call_rcu`
    /// callback runs (the kernel's `kmem_cache_destroy` calls `rcu_barrier` only for RCU
    /// caches, and the destroyer may hold a lock a callback takes). Returns whether it ran.
    pub(crate) fn kvfree_rcu_barrier_at(&self, caller: &Location<'_>) -> bool {
        self.barrier_at(caller, false)
    }

    /// Both barriers: with `callbacks`, the `call_rcu` callbacks queued before it run too.
    fn barrier_at(&self, caller: &Location<'_>, callbacks: bool) -> bool {
        if self.refuse_in_rcu_read("rcu_barrier()", caller) {
            return false;
        }
        // A batch another context took before this barrier, and put back because its grace
        // period could not complete (reclaim's), is not freed by the rounds that ran meanwhile:
        // run another round until no batch was put back during one.
        loop {
            let requeued = self.slabs.rcu.pending.lock().requeued;
            self.barrier_round(callbacks);
            if self.slabs.rcu.pending.lock().requeued == requeued {
                return true;
            }
        }
    }

    /// One round of [`Self::barrier_at`]: a grace period of its own, then the wait for the
    /// batches other contexts took before its own (or while it was taken), and for none taken
    /// later (module docs).
    fn barrier_round(&self, callbacks: bool) {
        let pending = &self.slabs.rcu.pending;
        let waiter = Waiter::new();
        let linked = Linked::new(pending, &waiter);
        self.grace_period(true, callbacks, Some(&linked));
        // A caller inside batches of its own (a destructor or release they run) cannot wait
        // for those: they are parked meanwhile (they wait for it, so waiting for them too
        // would be a cycle).
        let held = self.platform().rcu_batches_held();
        pending.lock().park(&linked, held);
        while !pending.lock().waited(&linked) {
            crate::sync::cpu_relax();
        }
    }

    /// Whether the caller is inside its own RCU read-side section ([`Platform::in_rcu_read`]),
    /// where a grace period would wait for the caller itself; if so, reports it in lockdep's
    /// words (`RCU_LOCKDEP_WARN` in `synchronize_rcu`).
    #[cold]
    fn refuse_in_rcu_read(&self, what: &str, caller: &Location<'_>) -> bool {
        let platform = self.platform();
        if !platform.in_rcu_read() {
            return false;
        }
        platform.log(
            crate::platform::Level::Warning,
            format_args!(
                "=============================\nWARNING: suspicious RCU usage\n-----------------------------\n{caller} Illegal {what} in RCU read-side critical section!\nkmem: {what} returns without a grace period (it would wait for the caller itself)"
            ),
        );
        platform.dump_stack(caller);
        true
    }

    /// Runs a grace period (waiting, or only if no old reader is inside) and frees what was
    /// queued before it, and with `callbacks` runs the `call_rcu` callbacks queued before it.
    /// Returns pages freed.
    pub(crate) fn rcu_grace_period(&self, wait: bool, callbacks: bool) -> usize {
        self.grace_period(wait, callbacks, None)
    }

    /// [`Self::rcu_grace_period`], linking `waiter` (a barrier round's) with the batch taken.
    fn grace_period(&self, wait: bool, callbacks: bool, waiter: Option<&Linked<'_>>) -> usize {
        let (slabs, objects, heads, ticket) = {
            let mut p = self.slabs.rcu.pending.lock();
            let heads = if callbacks {
                p.kicked_at = 0;
                let oldest = core::mem::take(&mut p.oldest_callback);
                (core::mem::take(&mut p.callbacks), oldest, core::mem::take(&mut p.nr_callbacks))
            } else {
                (0, 0, 0)
            };
            let taken = (p.slabs, p.objects, heads, p.take(waiter));
            p.slabs = NIL_PFN;
            p.nr_slabs = 0;
            p.objects = 0;
            taken
        };
        let _batch = InFlight::enter(self, ticket);
        let done = if wait {
            self.synchronize_watched();
            true
        } else {
            self.slabs.rcu.try_synchronize()
        };
        // `_batch` leaves `inflight` after this, the put-back included.
        if done {
            self.run_callbacks(heads.0 as *mut RcuHead);
            self.free_pending(slabs, objects)
        } else {
            self.requeue(slabs, objects, heads);
            0
        }
    }

    /// What the kernel's RCU softirq (`rcu_core`) does each time it runs, for a platform's own
    /// context that holds no lock of kmem's callers (the userspace machine's kswapd, once a
    /// second and when [`QHIMARK`] callbacks piled up): a grace period if one can complete
    /// without waiting, then the `kfree_rcu` objects and `SLAB_TYPESAFE_BY_RCU` slabs it
    /// released are freed and the `call_rcu` callbacks queued before it run, oldest first, in
    /// softirq context. With an old reader still inside, everything goes back in order for
    /// the next try. Returns pages freed. Not for a caller's own thread, which may hold a lock
    /// a callback takes: that is what [`Self::rcu_poll_grace_period`] is for.
    pub fn rcu_core(&self) -> usize {
        self.rcu_grace_period(false, true)
    }

    /// `call_rcu(head, func)`: `func(head)` runs after a grace period, at the next
    /// [`Self::rcu_barrier`] or [`Self::rcu_core`] that completes one, in the platform's
    /// softirq context (module docs). `head` is written (`next`, `func`) and must stay
    /// untouched until then.
    ///
    /// # Safety
    /// `head` is valid for writes and reads until `func` is called with it, queued once at a
    /// time; `func` may be called from any thread.
    pub unsafe fn call_rcu(&self, head: NonNull<RcuHead>, func: RcuCallback) {
        let flood = {
            let mut p = self.slabs.rcu.pending.lock();
            // SAFETY: The caller's promise: ours until the callback runs.
            unsafe {
                (*head.as_ptr()).func = Some(func);
                (*head.as_ptr()).next = p.callbacks as *mut RcuHead;
            }
            if p.callbacks == 0 {
                p.oldest_callback = head.as_ptr() as usize;
            }
            p.callbacks = head.as_ptr() as usize;
            p.nr_callbacks += 1;
            let flood = p.nr_callbacks >= p.kicked_at + QHIMARK;
            if flood {
                p.kicked_at = p.nr_callbacks;
            }
            flood
        };
        if flood {
            self.platform().schedule_work();
        }
    }

    /// Calls `f` with the function of every `call_rcu` callback still queued (not yet taken by
    /// a grace period), newest first, under the pending lock: `f` must not call kmem. (A module
    /// loader checks that none of a module's is left before unloading its code.)
    pub fn for_each_queued_rcu_callback(&self, f: &mut dyn FnMut(RcuCallback)) {
        let p = self.slabs.rcu.pending.lock();
        let mut cur = p.callbacks as *const RcuHead;
        while !cur.is_null() {
            // SAFETY: Queued heads stay valid until their callback runs (`call_rcu`'s contract),
            // and none runs while the pending list is locked and the head still on it.
            unsafe {
                if let Some(func) = (*cur).func {
                    f(func);
                }
                cur = (*cur).next;
            }
        }
    }

    /// Runs a taken chain of callbacks (newest first), oldest first.
    fn run_callbacks(&self, mut newest: *mut RcuHead) {
        let mut oldest: *mut RcuHead = ptr::null_mut();
        while !newest.is_null() {
            // SAFETY: Queued heads stay valid until their callback runs (`call_rcu`'s contract);
            // this batch owns them.
            unsafe {
                let next = (*newest).next;
                (*newest).next = oldest;
                oldest = newest;
                newest = next;
            }
        }
        if oldest.is_null() {
            return;
        }
        // The whole batch in one softirq section, as the kernel's `rcu_do_batch` runs it.
        let platform = self.platform();
        platform.softirq_enter();
        platform.rcu_read_enter();
        while !oldest.is_null() {
            // SAFETY: As above; `next` is read before the callback, which may free the head.
            unsafe {
                let next = (*oldest).next;
                if let Some(func) = (*oldest).func {
                    func(oldest);
                }
                oldest = next;
            }
        }
        platform.rcu_read_exit();
        platform.softirq_exit();
    }

    /// A waiting grace period, watched as the kernel's stall detector watches one: once it has
    /// waited `rcu_cpu_stall_timeout` seconds for readers, it reports an RCU stall (once per
    /// grace period) and goes on waiting. A reader that never leaves (a leaked guard) then
    /// shows in the log instead of as a silent hang.
    fn synchronize_watched(&self) {
        let platform = self.platform();
        let rcu = &self.slabs.rcu;
        let start = platform.now_ns();
        let limit = u64::from(rcu.stall_timeout()) * 1_000_000_000;
        let (mut spins, mut reported) = (0u32, false);
        rcu.synchronize(|| {
            crate::sync::cpu_relax();
            spins = spins.wrapping_add(1);
            if reported || spins % 4096 != 0 {
                return;
            }
            let waited = platform.now_ns().saturating_sub(start);
            if waited >= limit {
                reported = true;
                self.report_rcu_stall(waited);
            }
        });
    }

    /// `print_other_cpu_stall`, for a grace period held up by readers in their sections (kmem
    /// cannot name the tasks, so it counts them).
    #[cold]
    #[inline(never)]
    fn report_rcu_stall(&self, waited_ns: u64) {
        let platform = self.platform();
        let rcu = &self.slabs.rcu;
        let n = platform.nr_cpus();
        platform.log(
            crate::platform::Level::Err,
            format_args!(
                "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\nrcu: \tTasks blocked on level-0 rcu_node (CPUs 0-{}): {} reader(s) in a read-side critical section\nrcu: \t(detected by {}, t={} jiffies, g={}, q=0 ncpus={n})",
                n.saturating_sub(1),
                rcu.readers(),
                platform.cpu().unwrap_or(0),
                waited_ns / (1_000_000_000 / crate::platform::HZ),
                rcu.completed() * 4 + 1,
            ),
        );
        platform.dump_stack(Location::caller());
    }

    /// `rcupdate.rcu_cpu_stall_timeout`, in seconds (default [`crate::rcu::RCU_CPU_STALL_TIMEOUT`]).
    pub fn rcu_cpu_stall_timeout(&self) -> u32 {
        self.slabs.rcu.stall_timeout()
    }

    /// Sets `rcupdate.rcu_cpu_stall_timeout` (clamped to 3..=300 seconds, as the kernel
    /// clamps it); returns the value in effect.
    pub fn set_rcu_cpu_stall_timeout(&self, secs: u32) -> u32 {
        self.slabs.rcu.set_stall_timeout(secs)
    }

    /// A grace period only if it can complete without waiting (no reader that was inside
    /// when it started is still inside), freeing the `kfree_rcu` objects and the
    /// `SLAB_TYPESAFE_BY_RCU` slabs queued before it; `call_rcu` callbacks are left for
    /// [`Self::rcu_core`] or `rcu_barrier` (module docs). Returns pages freed. Reclaim calls it,
    /// in the thread that needs memory; a platform's periodic work calls [`Self::rcu_core`].
    pub fn rcu_poll_grace_period(&self) -> usize {
        self.rcu_grace_period(false, false)
    }

    /// Frees what a completed grace period released: the `kfree_rcu` objects first (their
    /// caches may be waiting for them before they can go), then the slabs, each of which holds
    /// its cache until it is freed (`lifetime.rs`): the last one of a destroyed cache finishes
    /// its teardown here.
    fn free_pending(&self, slabs: u32, objects: usize) -> usize {
        let dm = self.direct_map_base();
        let mut page = objects;
        while page != 0 {
            let words = page as *mut usize;
            // SAFETY: Pending-object pages are ours: word 0 links, word 1 counts.
            unsafe {
                let next = *words;
                let n = *words.add(1);
                for i in 0..n {
                    self.kfree_at(*words.add(2 + i) as *const u8, Location::caller());
                }
                self.free_pages_addr(page as *const u8, 0);
                page = next;
            }
        }
        let mut pages = 0;
        let mut cur = if slabs == NIL_PFN { ptr::null_mut() } else { Node::at(dm, slabs) };
        while !cur.is_null() {
            // SAFETY: Slabs on the pending chain are off every list and wait only for us; each
            // pins its cache (`discard_slab`), so the cache is there.
            let (next, cache) = unsafe {
                let next = Node::chain_next(dm, cur);
                let cache = NonNull::new_unchecked((*cur).cache.load(Relaxed));
                let s = cache.as_ref();
                pages += s.slab_pages_of((*cur).objects as usize);
                self.free_slab(s, cur);
                (next, cache)
            };
            self.unpin_cache(cache);
            cur = next;
        }
        pages
    }

    /// Puts taken items back after a grace period that could not complete: the callbacks
    /// (`heads`, newest first, `oldest` its last) behind every one queued since they were
    /// taken, which are newer.
    fn requeue(&self, slabs: u32, objects: usize, (heads, oldest, nr_heads): (usize, usize, usize)) {
        let dm = self.direct_map_base();
        let mut p = self.slabs.rcu.pending.lock();
        // Before the batch leaves `inflight`: a barrier that saw it in flight sees this too.
        p.requeued = p.requeued.wrapping_add(1);
        if heads != 0 {
            p.nr_callbacks += nr_heads;
            if p.callbacks == 0 {
                p.callbacks = heads;
            } else {
                // SAFETY: Queued heads stay valid until their callback runs (`call_rcu`'s
                // contract); the pending list (locked) owns its oldest one.
                unsafe { (*(p.oldest_callback as *mut RcuHead)).next = heads as *mut RcuHead };
            }
            p.oldest_callback = oldest;
        }
        let mut cur = if slabs == NIL_PFN { ptr::null_mut() } else { Node::at(dm, slabs) };
        while !cur.is_null() {
            // SAFETY: As in `free_pending`; each slab moves to the front of the pending chain.
            unsafe {
                let next = Node::chain_next(dm, cur);
                (*cur).next = p.slabs;
                p.slabs = Node::offset_of(dm, cur);
                p.nr_slabs += 1;
                cur = next;
            }
        }
        let mut page = objects;
        while page != 0 {
            // SAFETY: As in `free_pending`.
            unsafe {
                let words = page as *mut usize;
                let next = *words;
                *words = p.objects;
                p.objects = page;
                page = next;
            }
        }
    }

    /// `kfree_rcu` (single-argument form, `kvfree_rcu_mightsleep`): frees `ptr` after a grace
    /// period. Objects are queued in pages of pointers; each time one fills up, the platform's
    /// worker is asked to run [`Self::rcu_core`] soon (`Platform::schedule_work`), as a full
    /// page makes the kernel's monitor run at once. When no page can be had, the caller
    /// waits for a grace period and frees directly (outside atomic context), as the kernel's
    /// fallback does.
    ///
    /// # Safety
    /// `ptr` must be NULL or an object this API handed out and the caller still owns; readers
    /// inside a read-side section may still read it until the grace period ends; nothing
    /// else may use it. Pointers that break this are detected and reported where
    /// the allocator can tell (not an object, wrong cache, immediate double free), but a
    /// pointer still in use elsewhere would be written to (free pointers, `init_on_free`).
    #[track_caller]
    pub unsafe fn kfree_rcu(&self, ptr: *const u8) {
        if crate::kmalloc::classes::zero_or_null_ptr(ptr as usize) {
            return;
        }
        let caller = Location::caller();
        {
            let p = self.slabs.rcu.pending.lock();
            let head = p.objects as *mut usize;
            // SAFETY: Pending-object pages are ours (see `free_pending`).
            if !head.is_null() && unsafe { *head.add(1) } < PTRS_PER_PAGE {
                // SAFETY: As above; the count is below capacity.
                unsafe {
                    let n = *head.add(1);
                    *head.add(2 + n) = ptr as usize;
                    *head.add(1) = n + 1;
                }
                return;
            }
        }
        match self.pages().get_free_pages(GFP_NOWAIT.union(__GFP_NOWARN), 0) {
            Ok(page) => {
                let words = page.as_ptr().cast::<usize>();
                let full = {
                    let mut p = self.slabs.rcu.pending.lock();
                    // SAFETY: A fresh page, ours.
                    unsafe {
                        *words = p.objects;
                        *words.add(1) = 1;
                        *words.add(2) = ptr as usize;
                    }
                    let full = p.objects != 0;
                    p.objects = words as usize;
                    full
                };
                // A page of pointers filled up: the kernel's `kfree_rcu` monitor then runs
                // within a jiffy (`KVFREE_BULK_MAX_ENTR`) instead of its usual delay.
                if full {
                    self.platform().schedule_work();
                }
            }
            // Not inside the caller's own read-side section either: there `synchronize_rcu`
            // returns at once, and the object must not be freed under its readers.
            Err(_) if !self.platform().in_atomic() && !self.platform().in_rcu_read() => {
                self.synchronize_rcu();
                self.kfree_at(ptr, caller);
            }
            Err(_) => {
                self.platform().log(
                    crate::platform::Level::Warning,
                    format_args!(
                        "kfree_rcu: no memory to queue 0x{:x} in atomic context or an RCU read-side section; it stays allocated\n  at {caller}",
                        ptr as usize
                    ),
                );
            }
        }
    }
}
