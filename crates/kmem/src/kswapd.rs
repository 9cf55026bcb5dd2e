//! kmem's kswapd: the background reclaimer thread of a machine, and what it shares with the
//! machine (the wake-up word, the stop flag, whether it sleeps, what it was woken for). It is
//! also the machine's worker for deferred work (`schedule_work`): the `vfree`s queued in atomic
//! context (VM-7), which it completes from process context as the kernel's
//! `delayed_vfree_work` does.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use std::{io, thread};

use crate::cpu;
use crate::machine::Inner;
use crate::sys;

/// What the machine and its kswapd thread share: the wake-up word and the stop flag. Kept
/// apart from the machine so the thread can sleep without keeping the machine alive.
pub(crate) struct KswapdCtl {
    pub(crate) word: AtomicU32,
    pub(crate) stopping: AtomicBool,
    /// The thread is (about to be) asleep on `word`: only then does a wake-up need a futex
    /// call (the kernel's `wakeup_kswapd` also skips a kswapd that is not waiting).
    pub(crate) sleeping: AtomicBool,
    /// A kswapd thread was started (set once, before the machine is handed out).
    pub(crate) running: AtomicBool,
    /// A reclaim round was asked for (`wake_kswapd`); set before `word` is bumped.
    pub(crate) balance: AtomicBool,
    /// Deferred work was queued (`schedule_work`); set before `word` is bumped.
    pub(crate) work: AtomicBool,
    /// Kicks of `work` the thread has served (its periodic safety-net drain not counted).
    pub(crate) work_runs: AtomicUsize,
    /// Once-a-second maintenance passes made.
    pub(crate) ticks: AtomicUsize,
}

impl KswapdCtl {
    /// Sets `flag` and wakes the thread (no-op without one).
    pub(crate) fn kick(&self, flag: &AtomicBool) {
        // No thread (kswapd off): nothing to wake, and no shared counter to bump.
        if !self.running.load(Ordering::Relaxed) {
            return;
        }
        flag.store(true, Ordering::SeqCst);
        self.word.fetch_add(1, Ordering::SeqCst);
        // A thread that is awake: the new `word` is enough.
        if self.sleeping.load(Ordering::SeqCst) {
            sys::futex_wake_all(&self.word);
        }
    }
}

/// How often kswapd decays the per-CPU high marks (`decay_pcp_high`), as the kernel's vmstat
/// worker does once a second.
const PCP_DECAY_PERIOD: Duration = Duration::from_secs(1);

/// The background reclaimer: runs `kswapd_balance` each time an allocation wakes it (not once
/// the node is hopeless: `PageAllocator::kswapd_hopeless`, which reclaim's progress ends), and
/// completes the deferred `vfree`s each time one is queued (then gives its CPU slot back, so
/// it never keeps one from a worker thread), decays the per-CPU high marks every
/// [`PCP_DECAY_PERIOD`] (completing any deferred `vfree` left over, a safety net, tearing
/// down orphaned caches, and running a grace period, with the `call_rcu` callbacks it
/// releases, if one can complete without waiting), and runs an aging trim scan (`trim_aged`) every `trim_after`. It
/// holds the machine only while working; dropping the machine stops the thread at once.
pub(crate) fn spawn_kswapd(inner: &Arc<Inner>, trim_after: Option<Duration>) -> io::Result<()> {
    let weak = Arc::downgrade(inner);
    let ctl = inner.kmem.platform().kswapd.clone();
    let id = inner.kmem.platform().id;
    let now = Instant::now();
    let mut state = State { seen: ctl.word.load(Ordering::SeqCst), last_scan: now, last_decay: now };
    ctl.running.store(true, Ordering::SeqCst);
    thread::Builder::new().name("kswapd0".into()).spawn(move || {
        // A panic in a callback kswapd runs (a shrinker's, a cache's destructor, an RCU
        // callback: a bug in the caller's code) is reported and kswapd goes on, from a clean
        // slate (its CPU slot given back); each pass it makes leaves the machine consistent
        // when it unwinds, as direct reclaim does for the caller it unwinds to.
        while let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| run(&ctl, &weak, id, trim_after, &mut state)))
        {
            let what = crate::panics::panic_message(&*payload).unwrap_or("a non-string payload").to_owned();
            crate::panics::discard(payload);
            cpu::release_current(id);
            if let Some(inner) = weak.upgrade() {
                crate::Machine { inner }
                    .printk(crate::Level::Err, &format!("kswapd0: a callback panicked ({what}); kswapd goes on\n"));
            }
        }
    })?;
    Ok(())
}

/// What one kswapd thread keeps between its passes.
struct State {
    /// The wake-up word last served.
    seen: u32,
    last_scan: Instant,
    last_decay: Instant,
}

/// kswapd's loop ([`spawn_kswapd`]); returns when the machine is gone or stopping.
fn run(ctl: &KswapdCtl, weak: &Weak<Inner>, id: u64, trim_after: Option<Duration>, state: &mut State) {
    let State { seen, last_scan, last_decay } = state;
    loop {
        if ctl.stopping.load(Ordering::SeqCst) {
            return;
        }
        let now = ctl.word.load(Ordering::SeqCst);
        if now != *seen {
            *seen = now;
            let Some(inner) = weak.upgrade() else { return };
            if ctl.work.swap(false, Ordering::SeqCst) {
                inner.deferred_work();
                // A flood of `call_rcu` callbacks (`QHIMARK`) or a full page of `kfree_rcu`
                // objects kicks the worker too.
                inner.kmem.rcu_core();
                ctl.work_runs.fetch_add(1, Ordering::Relaxed);
            }
            // A hopeless node (`kswapd_failures >= MAX_RECLAIM_RETRIES`): back to sleep
            // without a run, as `prepare_kswapd_sleep` lets kswapd sleep; a wake-up sent
            // before the last failing run ended is dropped with it.
            if ctl.balance.swap(false, Ordering::SeqCst) && !inner.kmem.kswapd_hopeless() {
                inner.kmem.kswapd_balance();
            }
            cpu::release_current(id);
            continue;
        }
        let mut sleep = Duration::from_millis(200);
        let since_decay = last_decay.elapsed();
        if since_decay >= PCP_DECAY_PERIOD {
            let Some(inner) = weak.upgrade() else { return };
            inner.kmem.decay_pcp_high();
            inner.deferred_work();
            // What waits for a grace period without memory pressure (`kfree_rcu` objects,
            // `SLAB_TYPESAFE_BY_RCU` slabs, `call_rcu` callbacks) is freed or run after
            // one that can complete now, as the kernel's grace periods, RCU softirq and
            // `kfree_rcu` monitor run on their own. kswapd holds no lock of a caller's.
            inner.kmem.rcu_core();
            ctl.ticks.fetch_add(1, Ordering::Relaxed);
            // Caches destroyed inside one of their own allocations or frees, left to the
            // next maintenance pass (`lifetime.rs`): one load when there is none, as the
            // kernel's `slab_caches_to_rcu_destroy` work runs without memory pressure.
            inner.kmem.reap_orphans();
            cpu::release_current(id);
            *last_decay = Instant::now();
        } else {
            sleep = sleep.min(PCP_DECAY_PERIOD - since_decay);
        }
        if let Some(period) = trim_after {
            let since = last_scan.elapsed();
            if since >= period {
                let Some(inner) = weak.upgrade() else { return };
                inner.kmem.trim_aged();
                *last_scan = Instant::now();
            } else {
                sleep = sleep.min(period - since);
            }
        }
        // Dekker with `wake_kswapd`: either the waker sees `sleeping` and calls the futex,
        // or the futex sees the waker's new `word` and returns at once.
        ctl.sleeping.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        sys::futex_wait(&ctl.word, *seen, sleep);
        ctl.sleeping.store(false, Ordering::SeqCst);
    }
}

impl crate::Machine {
    /// How many `schedule_work` kicks (deferred `vfree`s, VM-7) kswapd has served, apart from
    /// its once-a-second safety-net drain: shows that queuing deferred work wakes the worker.
    pub fn kswapd_work_runs(&self) -> usize {
        self.inner.kmem.platform().kswapd.work_runs.load(Ordering::Relaxed)
    }

    /// How many once-a-second maintenance passes kswapd has made (per-CPU high-mark decay,
    /// the deferred-work safety net, orphaned caches, a grace period if one can complete).
    pub fn kswapd_ticks(&self) -> usize {
        self.inner.kmem.platform().kswapd.ticks.load(Ordering::Relaxed)
    }
}
