//! kmem's kswapd: the background reclaimer thread of a machine, and what it shares with the
//! machine (the wake-up word, the stop flag, whether it sleeps).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
}

/// How often kswapd decays the per-CPU high marks (`decay_pcp_high`), as the kernel's vmstat
/// worker does once a second.
const PCP_DECAY_PERIOD: Duration = Duration::from_secs(1);

/// The background reclaimer: runs `kswapd_balance` each time an allocation wakes it (then
/// gives its CPU slot back, so it never keeps one from a worker thread), decays the per-CPU
/// high marks every [`PCP_DECAY_PERIOD`], and runs an aging trim scan (`trim_aged`) every
/// `trim_after`. It holds the machine only while working; dropping the machine stops the
/// thread at once.
pub(crate) fn spawn_kswapd(inner: &Arc<Inner>, trim_after: Option<Duration>) -> io::Result<()> {
    let weak = Arc::downgrade(inner);
    let ctl = inner.kmem.platform().kswapd.clone();
    let id = inner.kmem.platform().id;
    let mut seen = ctl.word.load(Ordering::SeqCst);
    let mut last_scan = Instant::now();
    let mut last_decay = Instant::now();
    ctl.running.store(true, Ordering::SeqCst);
    thread::Builder::new().name("kswapd0".into()).spawn(move || {
        loop {
            if ctl.stopping.load(Ordering::SeqCst) {
                return;
            }
            let now = ctl.word.load(Ordering::SeqCst);
            if now != seen {
                seen = now;
                let Some(inner) = weak.upgrade() else { return };
                inner.kmem.kswapd_balance();
                cpu::release_current(id);
                continue;
            }
            let mut sleep = Duration::from_millis(200);
            let since_decay = last_decay.elapsed();
            if since_decay >= PCP_DECAY_PERIOD {
                let Some(inner) = weak.upgrade() else { return };
                inner.kmem.decay_pcp_high();
                cpu::release_current(id);
                last_decay = Instant::now();
            } else {
                sleep = sleep.min(PCP_DECAY_PERIOD - since_decay);
            }
            if let Some(period) = trim_after {
                let since = last_scan.elapsed();
                if since >= period {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.kmem.trim_aged();
                    last_scan = Instant::now();
                } else {
                    sleep = sleep.min(period - since);
                }
            }
            // Dekker with `wake_kswapd`: either the waker sees `sleeping` and calls the futex,
            // or the futex sees the waker's new `word` and returns at once.
            ctl.sleeping.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            sys::futex_wait(&ctl.word, seen, sleep);
            ctl.sleeping.store(false, Ordering::SeqCst);
        }
    })?;
    Ok(())
}
