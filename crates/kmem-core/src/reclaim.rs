//! Shrinkers and OOM notifiers: the callbacks reclaim runs (`register_shrinker`,
//! `register_oom_notifier`).
//!
//! A registry is a fixed table of raw trait-object pointers under a spin lock. Reclaim holds
//! the lock for the whole pass, so `unregister` returns only when no callback of the entry is
//! running; a callback must therefore never register or unregister. Reclaimers that find the
//! lock taken skip the pass (another context is already reclaiming).

use core::ptr::NonNull;

use crate::sync::SpinLock;

/// Something that can give memory back under pressure (`struct shrinker`).
pub trait Shrinker: Sync {
    /// The name shown in reports.
    fn name(&self) -> &str;
    /// How many objects could be freed now (`count_objects`).
    fn count_objects(&self) -> usize;
    /// Tries to free up to `nr_to_scan` objects for a request with flags `gfp` (a shrinker
    /// that needs I/O or the filesystem must check `__GFP_IO`/`__GFP_FS`); returns how many
    /// were freed (`scan_objects`).
    fn scan_objects(&self, nr_to_scan: usize, gfp: crate::gfp::Gfp) -> usize;
}

/// Called when reclaim has failed and the machine is out of memory (`register_oom_notifier`).
pub trait OomNotifier: Sync {
    /// Frees what it can; returns the number of pages freed.
    fn out_of_memory(&self) -> usize;
}

/// Maximum registered entries per registry.
pub const MAX_ENTRIES: usize = 64;

/// Handle of a registered entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationId(usize);

/// A table of callbacks.
pub struct Registry<T: ?Sized + 'static> {
    slots: SpinLock<[Option<NonNull<T>>; MAX_ENTRIES]>,
}

// SAFETY: The pointees are `Sync` (trait bounds of the callers) and the table itself is behind
// a lock.
unsafe impl<T: ?Sized + Sync> Sync for Registry<T> {}
// SAFETY: As above.
unsafe impl<T: ?Sized + Sync> Send for Registry<T> {}

impl<T: ?Sized + 'static> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized + 'static> Registry<T> {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self { slots: SpinLock::new([None; MAX_ENTRIES]) }
    }

    /// Adds `entry`; `None` when the table is full.
    ///
    /// # Safety
    /// `entry` must stay valid until [`Registry::unregister`] returns for the returned id.
    pub unsafe fn register(&self, entry: NonNull<T>) -> Option<RegistrationId> {
        let mut slots = self.slots.lock();
        let free = slots.iter().position(Option::is_none)?;
        slots[free] = Some(entry);
        Some(RegistrationId(free))
    }

    /// Removes an entry; waits for a running pass to finish first.
    pub fn unregister(&self, id: RegistrationId) {
        self.slots.lock()[id.0] = None;
    }

    /// Runs `f` on every entry, holding the table lock; `None` if another pass is running.
    pub fn try_for_each(&self, mut f: impl FnMut(&T)) -> Option<()> {
        let slots = self.slots.try_lock()?;
        for entry in slots.iter().flatten() {
            // SAFETY: Registered entries stay valid until unregistered, and unregistering needs
            // the lock we hold.
            f(unsafe { entry.as_ref() });
        }
        Some(())
    }
}
