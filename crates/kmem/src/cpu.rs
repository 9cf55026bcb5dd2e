//! Threads as CPUs: each thread that uses a machine gets one of its CPU slots for as long as
//! the thread lives, so per-CPU lists need no lock (the `Platform::cpu` contract).
//!
//! A thread caches its last (machine, slot) pair in a thread-local cell: the hot path is one
//! TLS load and a compare. Other pairs live in a small per-thread list. When the thread exits,
//! the list's destructor hands each slot back to its machine, which drains the slot's lists
//! and frees the slot; it clears the cache first, so code running later in the thread's
//! teardown gets no slot and uses the zone lists directly. A thread that gives its slot up
//! early (`Machine::release_cpu`) gets no new one while the release drains the old one. A
//! thread that finds every slot taken also runs without one.

use std::cell::{Cell, RefCell};
use std::sync::Weak;

use crate::context::THREAD;

/// Who takes a slot back when its thread exits.
pub(crate) trait SlotOwner: Send + Sync {
    /// Drains the slot's per-CPU lists and marks the slot free.
    fn release_slot(&self, slot: usize);
}

struct Held {
    entries: Vec<(u64, usize, Weak<dyn SlotOwner>)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = THREAD.try_with(|t| t.machine.set(0));
        for (_, slot, owner) in self.entries.drain(..) {
            if let Some(owner) = owner.upgrade() {
                owner.release_slot(slot);
            }
        }
    }
}

thread_local! {
    static HELD: RefCell<Held> = const { RefCell::new(Held { entries: Vec::new() }) };
    /// The machine whose slot this thread is giving up in [`release_current`] (0: none). While
    /// it is set, [`current_slow`] acquires no slot on that machine: the release's own frees
    /// (slabs flushed from the slot's arrays) go to the shared lists instead of to a fresh
    /// slot the thread would then keep.
    static RELEASING: Cell<u64> = const { Cell::new(0) };
}

/// Restores [`RELEASING`] when dropped (also on unwind): a release nested in another (a
/// destructor run by the outer one gives up another machine's slot) ends with the outer mark.
struct ReleasingMark(u64);

impl Drop for ReleasingMark {
    fn drop(&mut self) {
        let _ = RELEASING.try_with(|r| r.set(self.0));
    }
}

/// The calling thread's slot on machine `id`, acquiring one with `acquire` on first use.
#[inline]
pub(crate) fn current(id: u64, acquire: impl FnOnce() -> Option<(usize, Weak<dyn SlotOwner>)>) -> Option<usize> {
    match THREAD.try_with(|t| (t.machine.get(), t.slot.get())) {
        Ok((cached, slot)) if cached == id => Some(slot),
        Ok(_) => current_slow(id, acquire),
        Err(_) => None,
    }
}

/// Slow part of [`current`]: looks the machine up in the thread's list or acquires a slot.
#[cold]
pub(crate) fn current_slow(id: u64, acquire: impl FnOnce() -> Option<(usize, Weak<dyn SlotOwner>)>) -> Option<usize> {
    if RELEASING.try_with(|r| r.get() == id).unwrap_or(false) {
        return None;
    }
    // The list grows on the system heap: this runs inside kmem's own allocations.
    let _heap = crate::global_alloc::system_scope();
    HELD.try_with(|held| {
        let mut held = held.try_borrow_mut().ok()?;
        let slot = match held.entries.iter().find(|e| e.0 == id) {
            Some(&(_, slot, _)) => slot,
            None => {
                let (slot, owner) = acquire()?;
                held.entries.push((id, slot, owner));
                slot
            }
        };
        let _ = THREAD.try_with(|t| {
            t.machine.set(id);
            t.slot.set(slot);
        });
        Some(slot)
    })
    .ok()
    .flatten()
}

/// Forgets the calling thread's slot on machine `id` without handing it back, its lists left
/// as they are: for a `fork` child whose machine's memory it shares with its parent, where the
/// hand-back at thread exit would drain lists the parent's thread still uses. Allocates nothing
/// for a thread that ever held a slot; for one that never did, the first touch of its slot list
/// registers the list's destructor, which may allocate (glibc's `__cxa_thread_atexit_impl`; a
/// fork child may, as glibc's malloc is reinitialised there).
pub(crate) fn abandon(id: u64) {
    let _ = HELD.try_with(|held| {
        if let Ok(mut held) = held.try_borrow_mut() {
            held.entries.retain(|e| e.0 != id);
        }
    });
    let _ = THREAD.try_with(|t| {
        if t.machine.get() == id {
            t.machine.set(0);
        }
    });
}

/// Gives up the calling thread's slot on machine `id` now (its lists are drained by `owner`).
pub(crate) fn release_current(id: u64) {
    let entry = HELD.try_with(|held| {
        let mut held = held.try_borrow_mut().ok()?;
        let pos = held.entries.iter().position(|e| e.0 == id)?;
        Some(held.entries.swap_remove(pos))
    });
    let _ = THREAD.try_with(|t| {
        if t.machine.get() == id {
            t.machine.set(0);
        }
    });
    if let Ok(Some((_, slot, owner))) = entry
        && let Some(owner) = owner.upgrade()
    {
        let _mark = ReleasingMark(RELEASING.try_with(|r| r.replace(id)).unwrap_or(0));
        owner.release_slot(slot);
    }
}

/// The calling thread's slot on machine `id`, if it holds one (without acquiring one).
pub(crate) fn held_slot(id: u64) -> Option<usize> {
    HELD.try_with(|held| held.try_borrow().ok()?.entries.iter().find(|e| e.0 == id).map(|e| e.1)).ok().flatten()
}
