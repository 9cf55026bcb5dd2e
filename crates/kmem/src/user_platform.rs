//! The [`Platform`] of a userspace machine: CPU slots for threads (`cpu.rs` caches a thread's
//! slot), the printk ring, the clock, futex waits and wake-ups, kswapd's wake-up word, the
//! mempool's fault-injection points, and the kernel-style stack dump.
//!
//! Invariants: a slot is handed out only to the thread that won its `slots` flag, and cleared
//! only after that thread released it (thread exit or `release_cpu`). Locks: none of its own;
//! `log` takes the printk ring's leaf mutex.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use kmem_core::fault::{FaultAttr, FaultPoint};
use kmem_core::platform::{Level, Platform, Task};

use crate::cpu::{self, SlotOwner};
use crate::kswapd::KswapdCtl;
use crate::printk::Printk;
use crate::{context, sys};

/// The [`Platform`] of a userspace machine.
pub struct UserPlatform {
    pub(crate) id: u64,
    pub(crate) nr_cpus: usize,
    pub(crate) slots: Box<[AtomicBool]>,
    pub(crate) owner: std::sync::OnceLock<Weak<dyn SlotOwner>>,
    pub(crate) phys: sys::PhysMem,
    pub(crate) log: Printk,
    pub(crate) start: Instant,
    pub(crate) kswapd: Arc<KswapdCtl>,
    pub(crate) fork_lock: crate::fork::ForkLock,
    /// The mempool's fault-injection points (the kernel's static `DECLARE_FAULT_ATTR`s in
    /// `mm/mempool.c`; here per machine, handed to pools by `Platform::fault_attr`).
    pub(crate) fail_mempool_alloc: FaultAttr,
    pub(crate) fail_mempool_alloc_bulk: FaultAttr,
}

impl UserPlatform {
    pub(crate) fn acquire_slot(&self) -> Option<(usize, Weak<dyn SlotOwner>)> {
        let owner = self.owner.get()?.clone();
        let slot = self
            .slots
            .iter()
            .position(|s| s.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok())?;
        Some((slot, owner))
    }
}

// SAFETY: `cpu` hands out a slot only to the thread that won its `slots` flag, and the flag is
// cleared only after that thread released it (thread exit or `release_cpu`); slots are below
// `nr_cpus` because `slots` has `nr_cpus` entries.
unsafe impl Platform for UserPlatform {
    fn nr_cpus(&self) -> usize {
        self.nr_cpus
    }

    #[inline]
    fn cpu(&self) -> Option<usize> {
        cpu::current(self.id, || self.acquire_slot())
    }

    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        let _heap = crate::global_alloc::system_scope(); // Reports run inside kmem (printk docs).
        match args.as_str() {
            Some(s) => self.log.log(level, s, true),
            None => self.log.log(level, &args.to_string(), true),
        }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn with_task(&self, f: &mut dyn FnMut(Task<'_>)) {
        let _heap = crate::global_alloc::system_scope(); // As in `log`.
        let comm = sys::comm();
        f(Task { comm: &comm, pid: sys::gettid() });
    }

    #[inline]
    fn context(&self) -> kmem_core::platform::Context {
        match context::snapshot(self.id) {
            Some((slot, atomic, noio, nofs)) => {
                let cpu = slot.or_else(|| cpu::current_slow(self.id, || self.acquire_slot()));
                kmem_core::platform::Context { cpu, atomic, noio, nofs }
            }
            None => kmem_core::platform::Context::default(),
        }
    }

    #[inline(always)]
    fn fast_cpu(&self) -> Option<usize> {
        context::fast_slot(self.id)
    }

    #[inline(always)]
    fn plain_cpu(&self) -> Option<usize> {
        context::plain_slot(self.id)
    }

    fn rcu_read_enter(&self) {
        context::rcu_read_enter(self.id);
    }

    fn rcu_read_exit(&self) {
        context::rcu_read_exit(self.id);
    }

    fn in_rcu_read(&self) -> bool {
        context::in_rcu_read(self.id)
    }

    fn softirq_enter(&self) {
        context::softirq_enter();
    }

    fn softirq_exit(&self) {
        context::softirq_exit();
    }

    fn rcu_batch_enter(&self) {
        context::rcu_batch_enter(self.id);
    }

    fn rcu_batch_exit(&self) {
        context::rcu_batch_exit(self.id);
    }

    fn rcu_batches_held(&self) -> usize {
        context::rcu_batches_held(self.id)
    }

    fn in_atomic(&self) -> bool {
        context::in_atomic()
    }

    fn irqs_disabled(&self) -> bool {
        context::irqs_disabled()
    }

    fn preempt_count(&self) -> u32 {
        context::kernel_preempt_count()
    }

    fn foreign_caller(&self) -> usize {
        context::foreign_caller()
    }

    fn gfp_scope(&self) -> (bool, bool) {
        context::gfp_scope()
    }

    fn rt_task(&self) -> bool {
        context::in_task() && rt_policy()
    }

    fn in_reclaim(&self) -> bool {
        context::in_reclaim()
    }

    fn set_in_reclaim(&self, on: bool) -> bool {
        context::set_in_reclaim(on)
    }

    fn wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) {
        sys::futex_wait(word, expected, Duration::from_nanos(timeout_ns));
    }

    fn wake_all(&self, word: &AtomicU32) {
        sys::futex_wake_all(word);
    }

    fn wake_kswapd(&self) {
        self.kswapd.kick(&self.kswapd.balance);
    }

    fn schedule_work(&self) {
        // kswapd is the machine's worker; without it, the deferred frees wait for the next
        // vmalloc/vfree or for reclaim (the vmalloc shrinker, `vm.rs`).
        self.kswapd.kick(&self.kswapd.work);
    }

    fn heavy_barrier(&self) -> bool {
        sys::heavy_barrier()
    }

    unsafe fn discard(&self, pfn: usize, nr: usize) -> bool {
        // SAFETY: The caller owns the pages (this method's contract).
        unsafe { self.phys.discard(pfn, nr) }
    }

    unsafe fn zero_highmem(&self, pfn: usize, nr: usize) -> bool {
        // SAFETY: As above.
        unsafe { self.phys.zero(pfn, nr) }
    }

    unsafe fn read_highmem(&self, pfn: usize, offset: usize, dst: &mut [u8]) -> bool {
        // SAFETY: A frame of this machine inside the page (this method's contract).
        unsafe { self.phys.read(pfn, offset, dst) }
    }

    fn fault_attr(&self, point: FaultPoint) -> Option<&FaultAttr> {
        match point {
            FaultPoint::FailMempoolAlloc => Some(&self.fail_mempool_alloc),
            FaultPoint::FailMempoolAllocBulk => Some(&self.fail_mempool_alloc_bulk),
            _ => None,
        }
    }

    fn dump_stack(&self, caller: &Location<'_>) {
        let _heap = crate::global_alloc::system_scope(); // As in `log`.
        let cpu = self.cpu().unwrap_or(0);
        let mut trace = format!("  {caller}\n");
        for frame in crate::callers::foreign_frames() {
            trace.push_str(&format!("  {frame}\n"));
        }
        self.log.log(
            Level::Warning,
            &format!(
                "CPU: {cpu} UID: 0 PID: {} Comm: {}\nCall Trace:\n <TASK>\n{trace} </TASK>",
                sys::gettid(),
                sys::comm()
            ),
            true,
        );
    }
}

/// Whether the calling thread's scheduling policy is realtime (`SCHED_FIFO`, `SCHED_RR`) or
/// deadline (`SCHED_DEADLINE`): the host's answer to the kernel's `rt_or_dl_task(current)`.
fn rt_policy() -> bool {
    /// `SCHED_DEADLINE` (not in every libc's constants).
    const SCHED_DEADLINE: libc::c_int = 6;
    // SAFETY: `sched_getscheduler(0)` only reads the calling thread's policy; no memory is
    // passed. (rustix has no wrapper for it.)
    let policy = unsafe { libc::sched_getscheduler(0) };
    matches!(policy & !libc::SCHED_RESET_ON_FORK, libc::SCHED_FIFO | libc::SCHED_RR | SCHED_DEADLINE)
}
