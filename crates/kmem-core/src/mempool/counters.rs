//! The pool's count of elements handed out and not yet freed (`Mempool::outstanding`), split
//! per CPU slot so that the element-available fast path pays no atomic read-modify-write: the
//! owner of CPU slot `c` adds to `slots[c]` with a relaxed load and store (the platform
//! promises that no other context runs with the same slot id, as the slab's per-CPU counters
//! rely on); a caller without a slot (atomic context, no slot) adds to the shared slot
//! `slots[nr]` with `fetch_add`. The total is the sum over all slots; it is exact whenever no
//! alloc or free is in flight (which is when `mempool_exit` reads it).
//!
//! A zeroed or exited pool counts into a shared static block that nobody reads
//! ([`Outstanding::NONE`]), so the hot path needs no null check.
//!
//! # Invariants
//! `ptr` points to `nr + 1` [`Slot`]s: [`NO_SLOTS`] for [`Outstanding::NONE`], or zero-initialised
//! slots inside the pool's first metadata block, which lives until `mempool_exit`.

use core::sync::atomic::AtomicIsize;
use core::sync::atomic::Ordering::Relaxed;

use crate::pcp::MAX_CPUS;

/// One slot, padded to a cache line so that two CPUs' counters never share one.
#[repr(C)]
pub(super) struct Slot {
    n: AtomicIsize,
    _pad: [usize; 7],
}

/// Where pools without slots count (written, never read).
static NO_SLOTS: [Slot; MAX_CPUS + 1] = [const { Slot { n: AtomicIsize::new(0), _pad: [0; 7] } }; MAX_CPUS + 1];

pub(super) struct Outstanding {
    ptr: *const Slot,
    nr: usize,
}

// SAFETY: The slots are atomics; the pointer is only read.
unsafe impl Send for Outstanding {}
// SAFETY: As above.
unsafe impl Sync for Outstanding {}

impl Outstanding {
    /// No slots of its own (a zeroed or exited pool): counts go to [`NO_SLOTS`].
    pub(super) const NONE: Outstanding = Outstanding { ptr: NO_SLOTS.as_ptr(), nr: MAX_CPUS };

    /// Bytes the slots for `nr_cpus` CPU slots take (one more for callers without a slot).
    pub(super) const fn bytes(nr_cpus: usize) -> usize {
        (nr_cpus + 1) * core::mem::size_of::<Slot>()
    }

    /// Slots for `nr_cpus` CPU slots at `mem`, all zero.
    ///
    /// # Safety
    /// `mem` is aligned to 8 and valid for [`Self::bytes`]`(nr_cpus)` bytes that nothing else
    /// uses until the pool is exited.
    pub(super) unsafe fn init(mem: *mut u8, nr_cpus: usize) -> Self {
        let slots = mem.cast::<Slot>();
        for i in 0..=nr_cpus {
            // SAFETY: In bounds of the block the caller gave us; `Slot` needs 8-byte alignment.
            unsafe { slots.add(i).write(Slot { n: AtomicIsize::new(0), _pad: [0; 7] }) };
        }
        // INVARIANT: `nr_cpus + 1` slots were just written.
        Self { ptr: slots, nr: nr_cpus }
    }

    /// Adds `delta` for the caller on CPU slot `cpu` (`None`: no slot, or atomic context).
    #[inline(always)]
    pub(super) fn add(&self, cpu: Option<usize>, delta: isize) {
        match cpu {
            Some(c) => {
                // `c < nr` by the platform's promise; `min` keeps a broken platform in bounds
                // (then updates to the shared slot may be lost, nothing worse).
                // SAFETY: `min(c, nr) <= nr`, so the slot exists (type invariant).
                let slot = unsafe { &(*self.ptr.add(c.min(self.nr))).n };
                // The platform's promise: no other context uses slot `c` now, so a plain
                // load and store cannot lose an update.
                slot.store(slot.load(Relaxed) + delta, Relaxed);
            }
            None => {
                // SAFETY: Slot `nr` is the shared one (type invariant).
                unsafe { &(*self.ptr.add(self.nr)).n }.fetch_add(delta, Relaxed);
            }
        }
    }

    /// The sum over all slots (0 without slots of its own).
    pub(super) fn sum(&self) -> isize {
        if core::ptr::eq(self.ptr, NO_SLOTS.as_ptr()) {
            return 0;
        }
        // SAFETY: Slots `0..=nr` exist (type invariant).
        (0..=self.nr).map(|i| unsafe { &(*self.ptr.add(i)).n }.load(Relaxed)).sum()
    }
}
