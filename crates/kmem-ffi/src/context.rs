//! Atomic context from C (`linux/irqflags.h`, `linux/preempt.h`, `linux/spinlock.h`) and
//! `might_sleep`.
//!
//! Interrupts are a per-thread boolean, as the CPU's `IF` flag is: `local_irq_save` returns the
//! previous state (`X86_EFLAGS_IF` when interrupts were on) and `local_irq_restore` puts it
//! back. Turning interrupts off enters atomic context (`kmem::context::preempt_disable`),
//! turning them on leaves it, so a `GFP_KERNEL` allocation with interrupts off or a spin lock
//! held is reported as `BUG: sleeping function called from invalid context` and does not sleep.
//!
//! `spinlock_t` is a real lock with the kernel's `CONFIG_DEBUG_SPINLOCK` fields: a lock word,
//! `magic` (`SPINLOCK_MAGIC` once initialised), the owner's CPU and pid. Misuse is reported as
//! the kernel reports it (`BUG: spinlock bad magic|recursion|already unlocked|wrong owner`).
//! Invariant: `raw_lock` is 1 exactly while some thread holds the lock; only the holder stores
//! 0 into it.

use std::ffi::{c_char, c_int, c_uint, c_ulong};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use kmem::Machine;
use kmem_core::platform::{Level, Platform};
use kmem_core::report::{MightSleep, Ratelimit, Verdict};

use crate::boundary::{c_str, ffi_boundary, ffi_guard, machine_or_report, report_null};

/// `X86_EFLAGS_IF`: the flags value `local_irq_save` returns when interrupts were on.
pub const X86_EFLAGS_IF: c_ulong = 0x200;
/// `SPINLOCK_MAGIC`: the `magic` of an initialised lock.
pub const SPINLOCK_MAGIC: u32 = 0xdead_4ead;

fn irqs_off() -> bool {
    kmem::context::irqs_disabled()
}

/// Disables "interrupts" on this thread; returns whether they were on.
fn irq_disable() -> bool {
    let was_on = !irqs_off();
    if was_on {
        kmem::context::set_irqs_disabled(true);
        kmem::context::preempt_disable();
    }
    was_on
}

fn irq_enable() {
    if irqs_off() {
        kmem::context::set_irqs_disabled(false);
        kmem::context::preempt_enable();
    }
}

/// `unsigned long arch_local_irq_save(void)` (behind `local_irq_save(flags)`).
#[unsafe(no_mangle)]
pub extern "C" fn arch_local_irq_save() -> c_ulong {
    ffi_guard("local_irq_save", 0, || if irq_disable() { X86_EFLAGS_IF } else { 0 })
}

/// `void arch_local_irq_restore(unsigned long flags)` (behind `local_irq_restore(flags)`).
#[unsafe(no_mangle)]
pub extern "C" fn arch_local_irq_restore(flags: c_ulong) {
    ffi_guard("local_irq_restore", (), || {
        if flags & X86_EFLAGS_IF != 0 {
            irq_enable();
        } else {
            irq_disable();
        }
    });
}

/// `void arch_local_irq_disable(void)` (behind `local_irq_disable()`).
#[unsafe(no_mangle)]
pub extern "C" fn arch_local_irq_disable() {
    ffi_guard("local_irq_disable", (), || {
        irq_disable();
    });
}

/// `void arch_local_irq_enable(void)` (behind `local_irq_enable()`).
#[unsafe(no_mangle)]
pub extern "C" fn arch_local_irq_enable() {
    ffi_guard("local_irq_enable", (), irq_enable);
}

/// `int arch_irqs_disabled(void)` (behind `irqs_disabled()`). Panic-free without a guard: it
/// reads a thread-local with `try_with` and converts a `bool`.
#[unsafe(no_mangle)]
pub extern "C" fn arch_irqs_disabled() -> c_int {
    c_int::from(irqs_off())
}

/// `void preempt_disable(void)`: enters atomic context; nests.
#[unsafe(no_mangle)]
pub extern "C" fn preempt_disable() {
    ffi_guard("preempt_disable", (), kmem::context::preempt_disable);
}

/// `void preempt_enable(void)`: leaves one level of atomic context; below zero it is
/// reported (once) and the count stays 0 (`preempt_enable_checked`).
#[unsafe(no_mangle)]
pub extern "C" fn preempt_enable() {
    ffi_guard("preempt_enable", (), || preempt_enable_checked(Location::caller()));
}

/// `preempt_count_sub` with CONFIG_DEBUG_PREEMPT: leaves one level of atomic context, or, with
/// none to leave, `DEBUG_LOCKS_WARN_ON(val > preempt_count())` the first time (the warning
/// turns lock debugging off, so it is printed once per process: the C ABI's one machine) and
/// the count stays 0.
pub(crate) fn preempt_enable_checked(caller: &Location<'_>) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if kmem::context::preempt_count() > 0 {
        kmem::context::preempt_enable();
        return;
    }
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    if let Some(m) = machine_or_report() {
        m.printk(
            Level::Warning,
            &format!(
                "WARNING: CPU: {} at {caller} preempt_count_sub: DEBUG_LOCKS_WARN_ON(val > preempt_count())\n",
                m.platform().cpu().unwrap_or(0)
            ),
        );
        m.platform().dump_stack(caller);
    }
}

/// `int in_atomic(void)`: whether the thread is in atomic context. Panic-free without a
/// guard, as [`arch_irqs_disabled`].
#[unsafe(no_mangle)]
pub extern "C" fn in_atomic() -> c_int {
    c_int::from(kmem::context::in_atomic())
}

/// `int kmem_in_softirq(void)`, behind `in_softirq()`: whether the thread runs an RCU callback
/// (the only softirq work kmem has; `call_rcu`).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_in_softirq() -> c_int {
    c_int::from(kmem::context::in_softirq())
}

/// `__might_resched` prints at most once a second (`prev_jiffy + HZ`).
fn might_sleep_limit() -> &'static Ratelimit {
    static LIMIT: std::sync::OnceLock<Ratelimit> = std::sync::OnceLock::new();
    LIMIT.get_or_init(|| Ratelimit::new(1_000_000_000, 1))
}

fn report_might_sleep(m: &Machine, file: &str, line: c_int) {
    if might_sleep_limit().check(m.platform().now_ns()) == Verdict::Suppress {
        return;
    }
    crate::printk::flush(m);
    let text = format!("{}\n", MightSleep::of(m.platform(), file, line.try_into().unwrap_or(0)));
    m.printk(Level::Err, &text);
    m.platform().dump_stack(Location::caller());
}

/// `void __might_sleep(const char *file, int line)` (behind `might_sleep()`, which passes the
/// C caller's `__FILE__` and `__LINE__`): in atomic context, the kernel's report naming that line.
///
/// # Safety
/// `file` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __might_sleep(file: *const c_char, line: c_int) {
    ffi_boundary("__might_sleep", (), |m| {
        if kmem::context::in_atomic() {
            // SAFETY: NULL or NUL-terminated (caller's contract).
            let file = unsafe { c_str(file) }.unwrap_or_else(|| "(null)".into());
            report_might_sleep(m, &file, line);
        }
    });
}

/// `void msleep(unsigned int msecs)`: sleeps (a `might_sleep` point).
#[unsafe(no_mangle)]
pub extern "C" fn msleep(msecs: c_uint) {
    ffi_boundary("msleep", (), |m| {
        if kmem::context::in_atomic() {
            report_might_sleep(m, "msleep", 0);
        }
        std::thread::sleep(Duration::from_millis(msecs.into()));
    });
}

/// An `unsigned long` as `u64` (the same type on 64-bit targets, narrower on 32-bit ones).
#[allow(clippy::useless_conversion, reason = "c_ulong is u64 on 64-bit targets only")]
fn ulong_to_u64(v: c_ulong) -> u64 {
    u64::from(v)
}

/// `void __udelay(unsigned long usecs)` (behind `udelay()` and `mdelay()`): the kernel busy-waits
/// and may be called in atomic context; here the thread sleeps that long, with no
/// `might_sleep` check.
#[unsafe(no_mangle)]
pub extern "C" fn __udelay(usecs: c_ulong) {
    ffi_guard("__udelay", (), || std::thread::sleep(Duration::from_micros(ulong_to_u64(usecs))));
}

/// `void __ndelay(unsigned long nsecs)` (behind `ndelay()`): as [`__udelay`], in nanoseconds.
#[unsafe(no_mangle)]
pub extern "C" fn __ndelay(nsecs: c_ulong) {
    ffi_guard("__ndelay", (), || std::thread::sleep(Duration::from_nanos(ulong_to_u64(nsecs))));
}

/// `int _cond_resched(void)` (behind `cond_resched()`): yields the CPU; always 0 here.
#[unsafe(no_mangle)]
pub extern "C" fn _cond_resched() -> c_int {
    ffi_guard("cond_resched", 0, || {
        if !kmem::context::in_atomic() {
            std::thread::yield_now();
        }
        0
    })
}

/// `raw_spinlock_t` as the header lays it out (`CONFIG_DEBUG_SPINLOCK` fields, pid for owner).
#[repr(C)]
pub struct RawSpinlock {
    raw_lock: AtomicU32,
    magic: AtomicU32,
    owner_cpu: AtomicI32,
    owner_pid: AtomicI32,
}

/// `SPINLOCK_OWNER_INIT`: no owner.
const NO_OWNER: i32 = -1;

fn current(m: &Machine) -> (i32, i32, String) {
    let cpu = m.platform().cpu().map_or(0, |c| c as i32);
    let (mut pid, mut comm) = (0, String::new());
    m.platform().with_task(&mut |t| {
        pid = t.pid as i32;
        comm = t.comm.to_owned();
    });
    (cpu, pid, comm)
}

/// `spin_dump` and `spin_bug`: the kernel's report of a misused lock.
fn spin_bug(m: &Machine, lock: &RawSpinlock, msg: &str) {
    let (cpu, pid, comm) = current(m);
    let owner = lock.owner_pid.load(Ordering::Relaxed);
    // The lock records the owner's pid only: its name is known when it is the caller.
    let owner_text = match owner {
        NO_OWNER => "<none>/-1".to_owned(),
        o if o == pid => format!("{comm}/{o}"),
        o => format!("?/{o}"),
    };
    m.printk(
        Level::Emerg,
        &format!(
            "BUG: spinlock {msg} on CPU#{cpu}, {comm}/{pid}\n lock: {:p}, .magic: {:08x}, .owner: {owner_text}, .owner_cpu: {}\n",
            std::ptr::from_ref(lock),
            lock.magic.load(Ordering::Relaxed),
            lock.owner_cpu.load(Ordering::Relaxed),
        ),
    );
    m.platform().dump_stack(Location::caller());
}

/// The lock behind a C `raw_spinlock_t *`, reporting NULL and misaligned pointers.
///
/// # Safety
/// `lock` is NULL or points to a `spinlock_t` that stays valid while the returned reference lives.
unsafe fn lock_ref<'a>(m: &Machine, export: &str, lock: *mut RawSpinlock) -> Option<&'a RawSpinlock> {
    if lock.is_null() {
        report_null(m, export, "spinlock_t pointer", Location::caller());
        return None;
    }
    if !lock.is_aligned() {
        crate::boundary::report_bad_pointer(
            m,
            export,
            "misaligned spinlock_t pointer",
            lock as usize,
            Location::caller(),
        );
        return None;
    }
    // SAFETY: Not NULL, aligned, and valid for `'a` (caller's contract); the fields are atomics.
    Some(unsafe { &*lock })
}

fn do_lock(m: &Machine, lock: &RawSpinlock) {
    let (cpu, pid, _) = current(m);
    if lock.magic.load(Ordering::Relaxed) != SPINLOCK_MAGIC {
        spin_bug(m, lock, "bad magic");
    } else if lock.owner_pid.load(Ordering::Relaxed) == pid && lock.raw_lock.load(Ordering::Relaxed) != 0 {
        // The kernel reports and then spins forever; kmem reports and does not take the lock.
        spin_bug(m, lock, "recursion");
        return;
    }
    let mut spins = 0u32;
    while lock.raw_lock.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    lock.owner_cpu.store(cpu, Ordering::Relaxed);
    lock.owner_pid.store(pid, Ordering::Relaxed);
}

fn do_unlock(m: &Machine, lock: &RawSpinlock) {
    let (_, pid, _) = current(m);
    if lock.magic.load(Ordering::Relaxed) != SPINLOCK_MAGIC {
        spin_bug(m, lock, "bad magic");
    }
    if lock.raw_lock.load(Ordering::Relaxed) == 0 {
        spin_bug(m, lock, "already unlocked");
        return;
    }
    if lock.owner_pid.load(Ordering::Relaxed) != pid {
        spin_bug(m, lock, "wrong owner");
    }
    lock.owner_pid.store(NO_OWNER, Ordering::Relaxed);
    lock.owner_cpu.store(-1, Ordering::Relaxed);
    lock.raw_lock.store(0, Ordering::Release);
}

/// `void _raw_spin_lock(raw_spinlock_t *lock)` (behind `spin_lock`): enters atomic context,
/// then takes the lock.
///
/// # Safety
/// `lock` is NULL or points to a valid `spinlock_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _raw_spin_lock(lock: *mut RawSpinlock) {
    ffi_boundary("spin_lock", (), |m| {
        // SAFETY: Valid or NULL (caller's contract).
        if let Some(lock) = unsafe { lock_ref(m, "spin_lock", lock) } {
            kmem::context::preempt_disable();
            do_lock(m, lock);
        }
    });
}

/// `int _raw_spin_trylock(raw_spinlock_t *lock)` (behind `spin_trylock`): 1 if taken.
///
/// # Safety
/// As [`_raw_spin_lock`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _raw_spin_trylock(lock: *mut RawSpinlock) -> c_int {
    ffi_boundary("spin_trylock", 0, |m| {
        // SAFETY: Valid or NULL (caller's contract).
        let Some(lock) = (unsafe { lock_ref(m, "spin_trylock", lock) }) else { return 0 };
        if lock.magic.load(Ordering::Relaxed) != SPINLOCK_MAGIC {
            spin_bug(m, lock, "bad magic");
        }
        kmem::context::preempt_disable();
        if lock.raw_lock.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            let (cpu, pid, _) = current(m);
            lock.owner_cpu.store(cpu, Ordering::Relaxed);
            lock.owner_pid.store(pid, Ordering::Relaxed);
            1
        } else {
            kmem::context::preempt_enable();
            0
        }
    })
}

/// `void _raw_spin_unlock(raw_spinlock_t *lock)` (behind `spin_unlock`): releases the lock,
/// then leaves atomic context.
///
/// # Safety
/// As [`_raw_spin_lock`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _raw_spin_unlock(lock: *mut RawSpinlock) {
    ffi_boundary("spin_unlock", (), |m| {
        // SAFETY: Valid or NULL (caller's contract).
        if let Some(lock) = unsafe { lock_ref(m, "spin_unlock", lock) } {
            do_unlock(m, lock);
            kmem::context::preempt_enable();
        }
    });
}

/// `unsigned long _raw_spin_lock_irqsave(raw_spinlock_t *lock)` (behind `spin_lock_irqsave`):
/// saves and disables interrupts, then takes the lock; returns the saved flags.
///
/// # Safety
/// As [`_raw_spin_lock`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _raw_spin_lock_irqsave(lock: *mut RawSpinlock) -> c_ulong {
    let flags = arch_local_irq_save();
    // SAFETY: Forwarded contract.
    unsafe { _raw_spin_lock(lock) };
    flags
}

/// `void _raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags)`.
///
/// # Safety
/// As [`_raw_spin_lock`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _raw_spin_unlock_irqrestore(lock: *mut RawSpinlock, flags: c_ulong) {
    // SAFETY: Forwarded contract.
    unsafe { _raw_spin_unlock(lock) };
    arch_local_irq_restore(flags);
}

/// `void _raw_spin_lock_irq(raw_spinlock_t *lock)` (behind `spin_lock_irq` and `spin_lock_bh`).
///
/// # Safety
/// As [`_raw_spin_lock`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _raw_spin_lock_irq(lock: *mut RawSpinlock) {
    arch_local_irq_disable();
    // SAFETY: Forwarded contract.
    unsafe { _raw_spin_lock(lock) };
}

/// `void _raw_spin_unlock_irq(raw_spinlock_t *lock)` (behind `spin_unlock_irq`, `spin_unlock_bh`).
///
/// # Safety
/// As [`_raw_spin_lock`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _raw_spin_unlock_irq(lock: *mut RawSpinlock) {
    // SAFETY: Forwarded contract.
    unsafe { _raw_spin_unlock(lock) };
    arch_local_irq_enable();
}

/// `int spin_is_locked(spinlock_t *lock)`.
///
/// # Safety
/// As [`_raw_spin_lock`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spin_is_locked(lock: *mut RawSpinlock) -> c_int {
    ffi_boundary("spin_is_locked", 0, |m| {
        // SAFETY: Valid or NULL (caller's contract).
        unsafe { lock_ref(m, "spin_is_locked", lock) }
            .map_or(0, |l| c_int::from(l.raw_lock.load(Ordering::Relaxed) != 0))
    })
}
