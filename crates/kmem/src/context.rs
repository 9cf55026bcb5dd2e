//! Per-thread context: atomic sections (the `spin_lock`/`local_irq_save` analogue), the
//! `memalloc_noio`/`memalloc_nofs` scopes (GFP-7) and the reclaim flag (`PF_MEMALLOC`).

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static PREEMPT_COUNT: Cell<u32> = const { Cell::new(0) };
    static NOIO: Cell<u32> = const { Cell::new(0) };
    static NOFS: Cell<u32> = const { Cell::new(0) };
    static MEMALLOC: Cell<bool> = const { Cell::new(false) };
}

/// While alive, the thread is in atomic context: allocations that may sleep are reported
/// (`BUG: sleeping function called from invalid context`) and do not sleep. Nests.
#[must_use = "the atomic section ends when the guard is dropped"]
pub struct AtomicSection {
    _not_send: PhantomData<*const ()>,
}

/// Enters atomic context (`preempt_disable`, `spin_lock`, `local_irq_save`).
pub fn atomic_section() -> AtomicSection {
    PREEMPT_COUNT.with(|c| c.set(c.get() + 1));
    AtomicSection { _not_send: PhantomData }
}

impl Drop for AtomicSection {
    fn drop(&mut self) {
        PREEMPT_COUNT.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Whether the calling thread is in atomic context (`in_atomic()`).
pub fn in_atomic() -> bool {
    PREEMPT_COUNT.try_with(Cell::get).unwrap_or(0) > 0
}

/// Enters atomic context without a guard (the C ABI's `spin_lock`, `local_irq_save`).
pub fn preempt_disable() {
    PREEMPT_COUNT.with(|c| c.set(c.get() + 1));
}

/// Leaves atomic context entered by [`preempt_disable`]. An unbalanced call is ignored.
pub fn preempt_enable() {
    PREEMPT_COUNT.with(|c| c.set(c.get().saturating_sub(1)));
}

/// Which scope a [`GfpScope`] restores.
#[derive(Clone, Copy)]
enum ScopeKind {
    NoIo,
    NoFs,
}

/// A `memalloc_noio_save`/`memalloc_nofs_save` scope; restored on drop. Nests.
#[must_use = "the scope ends when the guard is dropped"]
pub struct GfpScope {
    kind: ScopeKind,
    _not_send: PhantomData<*const ()>,
}

/// `memalloc_noio_save`: every allocation in the scope loses `__GFP_IO` and `__GFP_FS`.
pub fn memalloc_noio_save() -> GfpScope {
    NOIO.with(|c| c.set(c.get() + 1));
    GfpScope { kind: ScopeKind::NoIo, _not_send: PhantomData }
}

/// `memalloc_nofs_save`: every allocation in the scope loses `__GFP_FS`.
pub fn memalloc_nofs_save() -> GfpScope {
    NOFS.with(|c| c.set(c.get() + 1));
    GfpScope { kind: ScopeKind::NoFs, _not_send: PhantomData }
}

impl Drop for GfpScope {
    fn drop(&mut self) {
        let cell = match self.kind {
            ScopeKind::NoIo => &NOIO,
            ScopeKind::NoFs => &NOFS,
        };
        cell.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// The calling thread's scope as `(noio, nofs)`.
pub fn gfp_scope() -> (bool, bool) {
    (NOIO.try_with(Cell::get).unwrap_or(0) > 0, NOFS.try_with(Cell::get).unwrap_or(0) > 0)
}

/// Whether the thread is reclaiming (`PF_MEMALLOC`).
pub fn in_reclaim() -> bool {
    MEMALLOC.try_with(Cell::get).unwrap_or(false)
}

/// Sets the reclaim flag; returns the previous value.
pub fn set_in_reclaim(on: bool) -> bool {
    MEMALLOC.try_with(|c| c.replace(on)).unwrap_or(false)
}
