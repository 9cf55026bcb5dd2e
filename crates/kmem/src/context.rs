//! Per-thread context: atomic sections (the `spin_lock`/`local_irq_save` analogue), the
//! `memalloc_noio`/`memalloc_nofs` scopes (GFP-7) and the reclaim flag (`PF_MEMALLOC`).

use std::cell::Cell;
use std::marker::PhantomData;

/// Everything kmem keeps per thread, in one thread-local so the allocation fast path reads it
/// with one TLS access: the last (machine, CPU slot) pair used and the context counters.
pub(crate) struct ThreadState {
    /// Machine id of the cached slot (0: none).
    pub(crate) machine: Cell<u64>,
    /// The cached CPU slot on that machine.
    pub(crate) slot: Cell<usize>,
    preempt: Cell<u32>,
    /// RCU callbacks the thread is running (softirq context; each also counts in `preempt`).
    softirq: Cell<u32>,
    noio: Cell<u32>,
    nofs: Cell<u32>,
    memalloc: Cell<bool>,
    /// RCU read-side sections the thread is inside, per machine.
    rcu: Cell<Depths>,
    /// Sections of machines beyond the [`RCU_MACHINES`] entries: while any is open the thread
    /// counts as inside a section of every machine (refusing a grace period it could wait for
    /// is safe; waiting for itself is not).
    rcu_overflow: Cell<u32>,
    /// Grace-period batches the thread is freeing or running callbacks of, per machine;
    /// beyond [`RCU_MACHINES`] machines they are not counted (a barrier inside one then waits
    /// as any other).
    rcu_batches: Cell<Depths>,
    /// Whether the C ABI's `local_irq_save` & co. turned the thread's "interrupts" off.
    irqs_off: Cell<bool>,
    /// The C code address the thread's current vmalloc-family call was made from (the C
    /// headers pass `_THIS_IP_`), or 0.
    foreign_caller: Cell<usize>,
}

/// Machines whose RCU sections one thread can be inside at once and still be told apart.
const RCU_MACHINES: usize = 4;

/// A nesting depth per machine for up to [`RCU_MACHINES`] machines: `(machine id, depth)`
/// entries, depth 0 meaning a free entry.
#[derive(Clone, Copy)]
struct Depths([(u64, u32); RCU_MACHINES]);

impl Depths {
    const EMPTY: Self = Self([(0, 0); RCU_MACHINES]);

    /// One level deeper for `id`; false (nothing changed) when every entry is another
    /// machine's.
    fn enter(&mut self, id: u64) -> bool {
        let e = &mut self.0;
        let Some(i) = e.iter().position(|&(m, d)| m == id && d > 0).or_else(|| e.iter().position(|&(_, d)| d == 0))
        else {
            return false;
        };
        e[i] = (id, e[i].1.saturating_add(1));
        true
    }

    /// One level out for `id`; false (nothing changed) when `id` has no entry.
    fn exit(&mut self, id: u64) -> bool {
        let Some(i) = self.0.iter().position(|&(m, d)| m == id && d > 0) else { return false };
        self.0[i].1 -= 1;
        true
    }

    /// `id`'s depth.
    fn depth(&self, id: u64) -> u32 {
        self.0.iter().find(|&&(m, d)| m == id && d > 0).map_or(0, |&(_, d)| d)
    }
}

thread_local! {
    pub(crate) static THREAD: ThreadState = const {
        ThreadState {
            machine: Cell::new(0),
            slot: Cell::new(0),
            preempt: Cell::new(0),
            softirq: Cell::new(0),
            noio: Cell::new(0),
            nofs: Cell::new(0),
            memalloc: Cell::new(false),
            rcu: Cell::new(Depths::EMPTY),
            rcu_overflow: Cell::new(0),
            rcu_batches: Cell::new(Depths::EMPTY),
            irqs_off: Cell::new(false),
            foreign_caller: Cell::new(0),
        }
    };
}

/// The calling thread's context on machine `id`, with the cached slot if it belongs to `id`:
/// `(slot if cached, atomic, noio, nofs)`. `None` while the thread is being torn down.
#[inline]
pub(crate) fn snapshot(id: u64) -> Option<(Option<usize>, bool, bool, bool)> {
    THREAD
        .try_with(|t| {
            let slot = (t.machine.get() == id).then(|| t.slot.get());
            (slot, t.preempt.get() > 0, t.noio.get() > 0, t.nofs.get() > 0)
        })
        .ok()
}

/// The cached slot on machine `id` if the thread is not in atomic context (the slab fast
/// path's question, `Platform::fast_cpu`): two loads from one thread-local.
/// The slot for the page allocator's fast path: this machine's slot, outside atomic context
/// and outside any `memalloc_noio`/`nofs` scope.
#[inline(always)]
pub(crate) fn plain_slot(id: u64) -> Option<usize> {
    THREAD
        .try_with(|t| {
            (t.machine.get() == id && (t.preempt.get() | t.noio.get() | t.nofs.get()) == 0).then(|| t.slot.get())
        })
        .ok()
        .flatten()
}

#[inline(always)]
pub(crate) fn fast_slot(id: u64) -> Option<usize> {
    THREAD.try_with(|t| (t.machine.get() == id && t.preempt.get() == 0).then(|| t.slot.get())).ok().flatten()
}

/// While alive, the thread is in atomic context: allocations that may sleep are reported
/// (`BUG: sleeping function called from invalid context`) and do not sleep. Nests.
#[must_use = "the atomic section ends when the guard is dropped"]
pub struct AtomicSection {
    _not_send: PhantomData<*const ()>,
}

/// Enters atomic context (`preempt_disable`, `spin_lock`, `local_irq_save`).
pub fn atomic_section() -> AtomicSection {
    THREAD.with(|t| t.preempt.set(t.preempt.get() + 1));
    AtomicSection { _not_send: PhantomData }
}

impl Drop for AtomicSection {
    fn drop(&mut self) {
        let _ = THREAD.try_with(|t| t.preempt.set(t.preempt.get().saturating_sub(1)));
    }
}

/// Whether the calling thread is in atomic context (`in_atomic()`).
pub fn in_atomic() -> bool {
    THREAD.try_with(|t| t.preempt.get()).unwrap_or(0) > 0
}

/// Enters atomic context without a guard (the C ABI's `spin_lock`, `local_irq_save`).
pub fn preempt_disable() {
    THREAD.with(|t| t.preempt.set(t.preempt.get() + 1));
}

/// The calling thread's atomic-context depth (`preempt_count()`): spin locks held, interrupts
/// off and `preempt_disable` levels together.
pub fn preempt_count() -> u32 {
    THREAD.try_with(|t| t.preempt.get()).unwrap_or(0)
}

/// [`preempt_count`] as the kernel encodes it, for reports: the atomic sections in the low
/// byte, and `SOFTIRQ_OFFSET` (0x100) for each RCU callback the thread is running (the
/// kernel's softirq serving count). Here each callback, and "interrupts" off, also count as an
/// atomic section; both are taken out of the low byte, as the kernel's count does not hold
/// interrupts off (`local_irq_save` alone: 0; `spin_lock_irqsave`: 1).
pub fn kernel_preempt_count() -> u32 {
    THREAD
        .try_with(|t| {
            let softirq = t.softirq.get();
            t.preempt.get().saturating_sub(softirq + u32::from(t.irqs_off.get())) + (softirq << 8)
        })
        .unwrap_or(0)
}

/// `in_task()`: the thread is serving no softirq (kmem has no hard interrupts).
pub fn in_task() -> bool {
    THREAD.try_with(|t| t.softirq.get() == 0).unwrap_or(true)
}

/// Records the C code address the thread's next vmalloc-family call is made from (the C ABI's
/// `__kmem_caller`, which the headers' macros call right before the export); the export clears
/// it when it returns ([`ForeignCallerScope`]).
pub fn set_foreign_caller(ip: usize) {
    let _ = THREAD.try_with(|t| t.foreign_caller.set(ip));
}

/// The C code address of the thread's current call (see [`set_foreign_caller`]), or 0.
pub fn foreign_caller() -> usize {
    THREAD.try_with(|t| t.foreign_caller.get()).unwrap_or(0)
}

/// Clears the thread's foreign caller when dropped (at the end of the export that used it,
/// also on unwind), so no later call is named after it.
#[derive(Debug)]
pub struct ForeignCallerScope(());

impl ForeignCallerScope {
    /// The scope of one export call.
    pub fn enter() -> Self {
        ForeignCallerScope(())
    }
}

impl Drop for ForeignCallerScope {
    fn drop(&mut self) {
        set_foreign_caller(0);
    }
}

/// Whether the calling thread has "interrupts" off (`irqs_disabled()`): set by the C ABI's
/// `local_irq_save` & co. through [`set_irqs_disabled`], which also enter atomic context.
pub fn irqs_disabled() -> bool {
    THREAD.try_with(|t| t.irqs_off.get()).unwrap_or(false)
}

/// Records whether the calling thread has "interrupts" off (see [`irqs_disabled`]); the caller
/// enters or leaves atomic context itself.
pub fn set_irqs_disabled(off: bool) {
    let _ = THREAD.try_with(|t| t.irqs_off.set(off));
}

/// Leaves atomic context entered by [`preempt_disable`]. An unbalanced call is ignored (the
/// C ABI reports it first, as CONFIG_DEBUG_PREEMPT does, seeing [`preempt_count`] at 0).
pub fn preempt_enable() {
    THREAD.with(|t| t.preempt.set(t.preempt.get().saturating_sub(1)));
}

/// The thread starts running an RCU callback (softirq context: atomic; nests). Also during
/// the thread's teardown, where it is a no-op, as is the matching [`softirq_exit`].
pub(crate) fn softirq_enter() {
    let _ = THREAD.try_with(|t| {
        t.preempt.set(t.preempt.get() + 1);
        t.softirq.set(t.softirq.get() + 1);
    });
}

/// The thread is done with the callback [`softirq_enter`] announced.
pub(crate) fn softirq_exit() {
    let _ = THREAD.try_with(|t| {
        t.preempt.set(t.preempt.get().saturating_sub(1));
        t.softirq.set(t.softirq.get().saturating_sub(1));
    });
}

/// Whether the calling thread runs an RCU callback (`in_softirq()`): the only softirq work
/// kmem has.
pub fn in_softirq() -> bool {
    THREAD.try_with(|t| t.softirq.get()).unwrap_or(0) > 0
}

/// The thread enters an RCU read-side section of machine `id` (nests).
pub(crate) fn rcu_read_enter(id: u64) {
    let _ = THREAD.try_with(|t| {
        let mut sections = t.rcu.get();
        if sections.enter(id) {
            t.rcu.set(sections);
        } else {
            t.rcu_overflow.set(t.rcu_overflow.get().saturating_add(1));
        }
    });
}

/// The thread leaves an RCU read-side section of machine `id` ([`rcu_read_enter`]; the guards
/// are not `Send`, so the section ends on the thread that entered it).
pub(crate) fn rcu_read_exit(id: u64) {
    let _ = THREAD.try_with(|t| {
        let mut sections = t.rcu.get();
        if sections.exit(id) {
            t.rcu.set(sections);
        } else {
            t.rcu_overflow.set(t.rcu_overflow.get().saturating_sub(1));
        }
    });
}

/// Whether the thread is inside an RCU read-side section of machine `id`.
pub(crate) fn in_rcu_read(id: u64) -> bool {
    THREAD.try_with(|t| t.rcu_overflow.get() > 0 || t.rcu.get().depth(id) > 0).unwrap_or(false)
}

/// The thread starts on a grace-period batch of machine `id` (nests).
pub(crate) fn rcu_batch_enter(id: u64) {
    let _ = THREAD.try_with(|t| {
        let mut batches = t.rcu_batches.get();
        if batches.enter(id) {
            t.rcu_batches.set(batches);
        }
    });
}

/// The thread is done with a batch of machine `id` ([`rcu_batch_enter`]).
pub(crate) fn rcu_batch_exit(id: u64) {
    let _ = THREAD.try_with(|t| {
        let mut batches = t.rcu_batches.get();
        if batches.exit(id) {
            t.rcu_batches.set(batches);
        }
    });
}

/// Grace-period batches of machine `id` the thread is inside.
pub(crate) fn rcu_batches_held(id: u64) -> usize {
    THREAD.try_with(|t| t.rcu_batches.get().depth(id) as usize).unwrap_or(0)
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
    enter_scope(true);
    GfpScope { kind: ScopeKind::NoIo, _not_send: PhantomData }
}

/// `memalloc_nofs_save`: every allocation in the scope loses `__GFP_FS`.
pub fn memalloc_nofs_save() -> GfpScope {
    enter_scope(false);
    GfpScope { kind: ScopeKind::NoFs, _not_send: PhantomData }
}

/// Enters a NOIO (`noio`) or NOFS scope without a guard, as C's `memalloc_noio_save` does;
/// returns whether that scope was already on (the kernel's saved `PF_MEMALLOC_NOIO`/`NOFS`
/// bit). Each call needs one [`leave_scope`] of the same kind.
pub fn enter_scope(noio: bool) -> bool {
    THREAD.with(|t| {
        let cell = if noio { &t.noio } else { &t.nofs };
        let was = cell.get() > 0;
        cell.set(cell.get() + 1);
        was
    })
}

/// Leaves a scope [`enter_scope`] entered (C's `memalloc_noio_restore`); returns false if
/// none was open (the count stays 0).
pub fn leave_scope(noio: bool) -> bool {
    THREAD
        .try_with(|t| {
            let cell = if noio { &t.noio } else { &t.nofs };
            let open = cell.get() > 0;
            cell.set(cell.get().saturating_sub(1));
            open
        })
        .unwrap_or(false)
}

impl Drop for GfpScope {
    fn drop(&mut self) {
        leave_scope(matches!(self.kind, ScopeKind::NoIo));
    }
}

/// The calling thread's scope as `(noio, nofs)`.
pub fn gfp_scope() -> (bool, bool) {
    THREAD.try_with(|t| (t.noio.get() > 0, t.nofs.get() > 0)).unwrap_or((false, false))
}

/// Whether the thread is reclaiming (`PF_MEMALLOC`).
pub fn in_reclaim() -> bool {
    THREAD.try_with(|t| t.memalloc.get()).unwrap_or(false)
}

/// Sets the reclaim flag; returns the previous value.
pub fn set_in_reclaim(on: bool) -> bool {
    THREAD.try_with(|t| t.memalloc.replace(on)).unwrap_or(false)
}
