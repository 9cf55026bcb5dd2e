//! The `pthread_atfork` handlers: a fork happens with the gate closed (no thread inside the
//! library), the machine's fork lock held (no CPU slot being handed back at thread exit) and
//! the bootstrap heap's lock held, in that order (the lock order of [`crate::gate`]). The child
//! gets a copy-on-write copy of everything — the machine's memory is private — and then gives
//! back the CPU slots of the threads that did not survive, flushing their per-CPU arrays and
//! page lists (`Machine::fork_child`).

use core::sync::atomic::{AtomicBool, Ordering};

use crate::bootstrap::BOOTSTRAP;
use crate::heap::ready_machine;
use crate::{gate, stats, sys};

static REGISTERED: AtomicBool = AtomicBool::new(false);
/// The machine's fork lock is held by the fork in progress.
static MACHINE_PREPARED: AtomicBool = AtomicBool::new(false);

/// Registers the fork handlers (and the statistics exit hook) once, when the machine is built.
pub fn register() {
    if !REGISTERED.swap(true, Ordering::AcqRel) {
        sys::register_hooks(prepare, parent, child, stats::exit_hook());
    }
}

extern "C" fn prepare() {
    gate::close();
    let prepared = ready_machine().is_some_and(|m| m.fork_prepare().is_ok());
    MACHINE_PREPARED.store(prepared, Ordering::Relaxed);
    BOOTSTRAP.lock_for_fork();
}

extern "C" fn parent() {
    BOOTSTRAP.unlock_after_fork();
    if MACHINE_PREPARED.load(Ordering::Relaxed)
        && let Some(m) = ready_machine()
    {
        // `prepare` ran on this thread (`pthread_atfork` runs both handlers on the forking one).
        let _ = m.fork_parent();
    }
    gate::open();
}

extern "C" fn child() {
    BOOTSTRAP.unlock_after_fork();
    gate::forget_other_threads();
    if MACHINE_PREPARED.load(Ordering::Relaxed)
        && let Some(m) = ready_machine()
    {
        // SAFETY: We are the fork child's only thread, once; `prepare` ran `fork_prepare` in the
        // parent with the gate closed, so no thread was inside the machine at the fork.
        unsafe { m.fork_child() };
    }
    gate::open();
}
