//! What the core needs from its environment: CPU identity, a log, a clock, sleeping and
//! waking, the task's context, a way to give memory back, and the fault-injection attributes
//! of the subsystems without a machine-wide object of their own (the mempool's).
//!
//! The `kmem` crate implements this for the userspace machine (threads as CPUs, futex waits,
//! memfd hole punching); a `no_std` user implements it for their kernel or board.

use crate::fault::{FaultAttr, FaultPoint};
use crate::waitq::WaitWord;
use core::fmt;
use core::panic::Location;

/// kmem's `HZ` (`CONFIG_HZ_250`, the x86 default): the rate of the jiffy counter that reports
/// print (`age=` of slab tracks) and that the kernel's `n*HZ` timeouts are written in.
pub const HZ: u64 = 250;

/// Nanoseconds per jiffy (4 ms at [`HZ`] = 250).
pub const NSEC_PER_JIFFY: u64 = 1_000_000_000 / HZ;

/// `jiffies` at the clock reading `now_ns` ([`Platform::now_ns`]): whole ticks of `1/HZ` s
/// since the clock's zero. Ages are differences of these counters (`jiffies - t->when`), as
/// in the kernel, not the time between the readings rounded.
#[must_use]
pub const fn jiffies(now_ns: u64) -> u64 {
    now_ns / NSEC_PER_JIFFY
}

/// Kernel log levels (`KERN_EMERG` .. `KERN_DEBUG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// `KERN_EMERG`: system is unusable.
    Emerg = 0,
    /// `KERN_ALERT`: action must be taken immediately.
    Alert = 1,
    /// `KERN_CRIT`: critical conditions.
    Crit = 2,
    /// `KERN_ERR`: error conditions.
    Err = 3,
    /// `KERN_WARNING`: warning conditions.
    Warning = 4,
    /// `KERN_NOTICE`: normal but significant.
    Notice = 5,
    /// `KERN_INFO`: informational.
    Info = 6,
    /// `KERN_DEBUG`: debug-level messages.
    Debug = 7,
}

impl Level {
    /// The level of index `n` (values above 7 are `Debug`).
    #[must_use]
    pub const fn from_u8(n: u8) -> Level {
        match n {
            0 => Level::Emerg,
            1 => Level::Alert,
            2 => Level::Crit,
            3 => Level::Err,
            4 => Level::Warning,
            5 => Level::Notice,
            6 => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// The calling task, as reports name it.
#[derive(Clone, Copy, Debug)]
pub struct Task<'a> {
    /// `current->comm`.
    pub comm: &'a str,
    /// `current->pid`.
    pub pid: u32,
}

/// The calling context, read once per allocation: its CPU slot and the modifiers that change
/// what an allocation may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The CPU slot (see [`Platform::cpu`]).
    pub cpu: Option<usize>,
    /// In atomic context (see [`Platform::in_atomic`]).
    pub atomic: bool,
    /// Inside `memalloc_noio_save`.
    pub noio: bool,
    /// Inside `memalloc_nofs_save`.
    pub nofs: bool,
}

/// The environment of a [`crate::PageAllocator`].
///
/// # Safety
/// [`Platform::cpu`] must return `Some(id)` only with `id < nr_cpus()` and only while no other
/// context can be running with the same id (the kernel's "preemption disabled"): per-CPU
/// lists are used without locks on that promise.
pub unsafe trait Platform: Send + Sync {
    /// Number of CPU slots (at most [`crate::pcp::MAX_CPUS`]).
    fn nr_cpus(&self) -> usize;
    /// The calling context's CPU slot, or `None` to bypass per-CPU lists.
    fn cpu(&self) -> Option<usize>;
    /// Appends a line (or several) to the kernel log.
    fn log(&self, level: Level, args: fmt::Arguments<'_>);
    /// A monotonic clock in nanoseconds. It must advance, at least across [`Self::wait`]s:
    /// a request that may sleep gives up after `Config::oom_timeout_ns` of it in the slow path
    /// (a platform without a clock can let each wait's timeout pass on a counter).
    fn now_ns(&self) -> u64;
    /// The calling task.
    fn with_task(&self, f: &mut dyn FnMut(Task<'_>)) {
        f(Task { comm: "swapper/0", pid: 0 });
    }
    /// Everything the allocation fast path needs to know about the caller, in one call.
    /// The default asks the individual methods; a platform with thread-local state should
    /// answer from one read.
    #[inline]
    fn context(&self) -> Context {
        let (noio, nofs) = self.gfp_scope();
        Context { cpu: self.cpu(), atomic: self.in_atomic(), noio, nofs }
    }
    /// The caller's CPU slot if it is not in atomic context: the one question a per-CPU object
    /// fast path asks (the slab allocator's). `None` sends the caller to its slow path, which
    /// asks [`Platform::context`]. A platform with thread-local state should answer from one
    /// read.
    #[inline]
    fn fast_cpu(&self) -> Option<usize> {
        let c = self.context();
        if c.atomic { None } else { c.cpu }
    }
    /// The caller's CPU slot if it is in no atomic context and no `memalloc_noio`/`nofs`
    /// scope: the one question the page allocator's fast path asks. `None` sends the caller to
    /// the general path, which asks [`Platform::context`].
    #[inline]
    fn plain_cpu(&self) -> Option<usize> {
        let c = self.context();
        if c.atomic || c.noio || c.nofs { None } else { c.cpu }
    }
    /// Whether the caller is in atomic context (spin lock held, interrupts off).
    fn in_atomic(&self) -> bool {
        false
    }
    /// Whether the caller has interrupts off (`irqs_disabled()`), for reports.
    fn irqs_disabled(&self) -> bool {
        false
    }
    /// The address in foreign (C) code the current call into the allocator was made from, if
    /// that code said (the kernel's vmalloc family records `__builtin_return_address(0)` as
    /// `vm->caller`; kmem's C headers pass `_THIS_IP_`), else 0: `/proc/vmallocinfo` then
    /// names the area's creator by it instead of a Rust location.
    fn foreign_caller(&self) -> usize {
        0
    }
    /// The caller's `preempt_count()` as the kernel encodes it, for reports: atomic sections
    /// in the low byte, plus `SOFTIRQ_OFFSET` (0x100) per softirq being served. The default
    /// says 1 in atomic context, else 0.
    fn preempt_count(&self) -> u32 {
        u32::from(self.in_atomic())
    }
    /// The caller's `memalloc_noio`/`memalloc_nofs` scope as `(noio, nofs)` (GFP-7).
    fn gfp_scope(&self) -> (bool, bool) {
        (false, false)
    }
    /// The caller enters an RCU read-side section of this platform's allocator
    /// (`rcu_read_lock`; nests). A platform that tracks it answers [`Self::in_rcu_read`].
    fn rcu_read_enter(&self) {}
    /// The caller leaves the section [`Self::rcu_read_enter`] entered.
    fn rcu_read_exit(&self) {}
    /// Whether the caller is inside an RCU read-side section of this platform's allocator:
    /// `synchronize_rcu` and `rcu_barrier` then refuse to wait for themselves (reported).
    /// The default, for a platform without per-thread state, is false.
    fn in_rcu_read(&self) -> bool {
        false
    }
    /// The caller starts running a `call_rcu` callback, which the kernel runs from its RCU
    /// softirq with bottom halves off: a platform that tracks atomic context enters it (so a
    /// callback that sleeps is reported, [`Self::in_atomic`]); nests. The default does nothing.
    fn softirq_enter(&self) {}
    /// The caller is done with the callback [`Self::softirq_enter`] announced.
    fn softirq_exit(&self) {}
    /// The caller starts freeing (or running the callbacks of) a batch a grace period of this
    /// platform's allocator released (nests: a destructor or callback may run another grace
    /// period). A platform that tracks it answers [`Self::rcu_batches_held`].
    fn rcu_batch_enter(&self) {}
    /// The caller is done with the batch [`Self::rcu_batch_enter`] announced.
    fn rcu_batch_exit(&self) {}
    /// How many such batches the caller is inside: an `rcu_barrier` it calls (a destructor
    /// destroying a cache) does not wait for them, which would be waiting for itself. The
    /// default, for a platform without per-thread state, is 0 (such a barrier then hangs).
    fn rcu_batches_held(&self) -> usize {
        0
    }
    /// Whether the caller is a realtime or deadline task in task context
    /// (`rt_or_dl_task(current) && in_task()`): its blocking requests may go down to half the
    /// min watermark (`ALLOC_MIN_RESERVE`, SEMANTICS §2.4). Asked only by the slow path of
    /// requests with `__GFP_DIRECT_RECLAIM`. The default, for a platform without scheduling
    /// policies, is false.
    fn rt_task(&self) -> bool {
        false
    }
    /// Whether the caller is itself reclaiming (`PF_MEMALLOC`).
    fn in_reclaim(&self) -> bool {
        false
    }
    /// Enters or leaves reclaim (`PF_MEMALLOC`); returns the previous state.
    fn set_in_reclaim(&self, on: bool) -> bool {
        let _ = on;
        false
    }
    /// Sleeps while `*word == expected`, for at most `timeout_ns`. May return early.
    fn wait(&self, word: &WaitWord, expected: u32, timeout_ns: u64);
    /// Wakes every context sleeping on `word`.
    fn wake_all(&self, word: &WaitWord);
    /// Executes a process-wide barrier: every context that may own a CPU slot executes a full
    /// memory barrier before this returns (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`).
    /// Returns false if the platform has none; then per-CPU lists are never drained remotely,
    /// only by request. A single-CPU platform may return true after a `SeqCst` fence.
    fn heavy_barrier(&self) -> bool {
        false
    }
    /// Asks the background reclaimer to run (`wakeup_kswapd`): the platform's kswapd then calls
    /// [`crate::PageAllocator::kswapd_balance`] from a context of its own. Called in any
    /// context, atomic included, with no kmem lock and no CPU slot held; it must only signal,
    /// not reclaim or allocate itself. The default does nothing (then nothing takes a
    /// watermark boost back: see `page_alloc::Config::watermark_boost_factor`).
    fn wake_kswapd(&self) {}
    /// Asks the platform's worker to run kmem's deferred work soon, from process context
    /// (`schedule_work`): the `vfree`s queued in atomic context (VM-7), which the worker
    /// completes with [`crate::vmalloc::Vmalloc::flush_deferred`], and a flood of `call_rcu`
    /// callbacks ([`crate::rcu::QHIMARK`]) or a full page of `kfree_rcu` objects, which it
    /// runs or frees with [`crate::Kmem::rcu_core`]. Called in any context,
    /// atomic included, with no kmem lock held; must not sleep. The default does nothing: the
    /// queued frees then complete on the next `vmalloc`/`vfree` outside atomic context, or
    /// when reclaim runs the vmalloc shrinker ([`crate::vmalloc::Vmalloc::shrink`]).
    fn schedule_work(&self) {}
    /// Gives the memory of `nr` pages from `pfn` back to the host; their contents become zero.
    /// Returns false if the platform cannot.
    ///
    /// Called with no kmem lock held (it may be slow: a hole punch), one block at a time, for
    /// at most [`crate::buddy::PAGE_REPORTING_CAPACITY`] blocks in a row.
    ///
    /// # Safety
    /// The caller owns the pages (the page allocator, for free blocks it has isolated: taken
    /// off the free lists, so no one can allocate or merge them): nothing else uses their bytes.
    unsafe fn discard(&self, pfn: usize, nr: usize) -> bool {
        let _ = (pfn, nr);
        false
    }
    /// Zero-fills pages that are not in the direct map (HighMem), through a temporary mapping
    /// of the platform's: pages just allocated, or being freed under `init_on_free`. Returns
    /// false if it cannot. With `nr == 0` it only answers whether it can (the page allocator
    /// asks once, when `init_on_free` is turned on).
    ///
    /// # Safety
    /// The caller owns the pages (just allocated, or being freed): nothing else uses them.
    unsafe fn zero_highmem(&self, pfn: usize, nr: usize) -> bool {
        let _ = (pfn, nr);
        false
    }
    /// Copies `dst.len()` bytes at `offset` of a frame that is not in the direct map (HighMem)
    /// into `dst`, through a temporary mapping of the platform's (the kernel's `kmap_local_page`
    /// in `copy_page_to_iter_nofault`), for [`crate::vmalloc::Vmalloc::vread_iter`]. Returns
    /// false if it cannot; the read then stops short there, as a failed nofault copy does. The
    /// default cannot.
    ///
    /// Called under the vmap lock: it must not sleep, allocate from kmem or take a kmem lock.
    ///
    /// # Safety
    /// `pfn` is a frame of this machine that a live mapping reaches (its owner may be writing
    /// it: the copy is a racy snapshot), and `offset + dst.len() <= PAGE_SIZE`.
    unsafe fn read_highmem(&self, pfn: usize, offset: usize, dst: &mut [u8]) -> bool {
        let _ = (pfn, offset, dst);
        false
    }
    /// The knobs of fault-injection point `point` (its debugfs directory), or `None` if the
    /// platform has none: the point then never fires. Pools read
    /// [`FaultPoint::FailMempoolAlloc`] once when they are initialised (so the attribute must
    /// live as long as the platform) and [`FaultPoint::FailMempoolAllocBulk`] on each bulk
    /// allocation. The default has none.
    fn fault_attr(&self, point: FaultPoint) -> Option<&FaultAttr> {
        let _ = point;
        None
    }
    /// Prints the call trace part of a report (`dump_stack`): the `CPU:` line naming the task,
    /// then the trace. Reports print no `CPU:` line of their own (`warn_alloc` since 4.19).
    fn dump_stack(&self, caller: &Location<'_>) {
        let cpu = self.cpu().unwrap_or(0);
        let mut printed = false;
        self.with_task(&mut |task| {
            if !core::mem::replace(&mut printed, true) {
                self.log(
                    Level::Warning,
                    format_args!(
                        "CPU: {cpu} UID: 0 PID: {} Comm: {}\nCall Trace:\n <TASK>\n  {caller}\n </TASK>",
                        task.pid, task.comm
                    ),
                );
            }
        });
        if !printed {
            self.log(Level::Warning, format_args!("Call Trace:\n <TASK>\n  {caller}\n </TASK>"));
        }
    }
}
