//! Shrinkers and OOM notifiers: the callbacks reclaim runs (`register_shrinker`,
//! `register_oom_notifier`).
//!
//! A registry is a fixed table of raw trait-object pointers. Reclaim passes run concurrently,
//! as in the kernel. A pass visits the entries registered when it starts; before calling one
//! it checks, under the table lock, that the entry is still registered and pins its slot
//! (`pins`), and unpins it after the call. `unregister` turns the entry into a tombstone under
//! the lock, waits until its slot is unpinned, then frees the slot, so when it returns no
//! callback of the entry is running or will run; a second `unregister` of the same id meanwhile
//! waits for the first (it returns false, but only once the entry's calls are over).
//!
//! Invariants: a slot's pins are only raised while the slot holds a live entry (under the
//! lock), so once it is a tombstone they only fall; a tombstone is never reused by `register`
//! and only the `unregister` that made it frees it. Hence `unregister` waits for its own
//! entry's calls only, never for a newer registration's.
//!
//! Only the entry's own calls are waited for, not whole passes: code that runs inside some
//! other callback — the slab shrinker frees slabs, which runs destructors, which may drop a
//! typed value that unregisters its shrinker — may unregister without waiting for the pass
//! it runs in (it used to wait for every pass to end, its own included: a hang). A callback
//! must still not unregister *its own* entry (it would wait for itself).
//! Lock order: the table lock is a leaf; no callback runs under it.
//!
//! `tests/loom.rs` checks the tombstones and pins under every interleaving (the pins are
//! loom's atomics under `cfg(kmem_loom)`, through [`crate::sync::atomic`]).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

// The pins are the handoff's atomics: loom's under `cfg(kmem_loom)`, so `tests/loom.rs` sees them.
use crate::sync::atomic::AtomicUsize;
use crate::sync::{SpinLock, cpu_relax};

/// `SHRINK_BATCH`: objects per [`Shrinker::scan_objects`] call when the shrinker sets no batch.
pub const SHRINK_BATCH: usize = 128;
/// `SHRINK_STOP`: what [`Shrinker::scan_objects`] returns to end the shrinker's part of the
/// pass (it cannot make progress now, e.g. it needs `__GFP_FS` and the request lacks it).
pub const SHRINK_STOP: usize = usize::MAX;
/// `DEFAULT_SEEKS`: the cost of recreating an object, for [`Shrinker::seeks`].
pub const DEFAULT_SEEKS: usize = 2;
/// `DEF_PRIORITY`: reclaim starts at this priority and lowers it (scanning `1/2^priority` of
/// each cache) as passes fail; direct reclaim goes down to 0, kswapd to 1.
pub const DEF_PRIORITY: u32 = 12;

/// Something that can give memory back under pressure (`struct shrinker`).
pub trait Shrinker: Sync {
    /// The name shown in reports.
    fn name(&self) -> &str;
    /// How many objects could be freed now (`count_objects`).
    fn count_objects(&self) -> usize;
    /// Tries to free up to `nr_to_scan` objects (at most [`Self::batch`] per call) for a
    /// request with flags `gfp` (a shrinker that needs I/O or the filesystem must check
    /// `__GFP_IO`/`__GFP_FS`); returns how many were freed, or [`SHRINK_STOP`] to be asked
    /// no more in this pass (`scan_objects`).
    fn scan_objects(&self, nr_to_scan: usize, gfp: crate::gfp::Gfp) -> usize;
    /// [`Self::scan_objects`] with the kernel's `struct shrink_control`: a shrinker that
    /// scanned a different number of objects than `sc.nr_to_scan` (fewer, because it could
    /// not get at some; or more, because it frees in larger units) says so in `sc.nr_scanned`,
    /// which reclaim counts against the pass and `nr_deferred` instead. By default it calls
    /// [`Self::scan_objects`] and leaves `nr_scanned` at `nr_to_scan`.
    fn scan_objects_ctl(&self, sc: &mut ShrinkControl) -> usize {
        self.scan_objects(sc.nr_to_scan, sc.gfp)
    }
    /// `shrinker->batch`: the most objects one [`Self::scan_objects`] call is asked for;
    /// 0 (the default) means [`SHRINK_BATCH`].
    fn batch(&self) -> usize {
        0
    }
    /// `shrinker->seeks`: how costly an object is to recreate ([`DEFAULT_SEEKS`] by default);
    /// a pass at priority `p` asks for `(count >> p) * 4 / seeks` objects, and with 0 for half
    /// the count whatever the priority.
    fn seeks(&self) -> usize {
        DEFAULT_SEEKS
    }
    /// Adds to the OOM report (`dump_header`), right after its Mem-Info block. Nothing by
    /// default; the slab allocator (the page allocator's only link to it is its shrinker)
    /// prints `Unreclaimable slab info:` there, as the kernel's `dump_header` does.
    fn report_oom(&self) {}
    /// Adds this layer's counters to those the page allocator's Mem-Info block (`show_mem`)
    /// prints: the slab allocator its slab pages (`slab_reclaimable:`, `slab_unreclaimable:`),
    /// the same counts `/proc/meminfo` shows. Nothing by default.
    fn fill_meminfo(&self, _extra: &mut crate::proc::MeminfoExtra) {}
}

/// `struct shrink_control`: what one [`Shrinker::scan_objects_ctl`] call is asked, and what it
/// reports back besides the objects it freed.
#[derive(Clone, Copy, Debug)]
pub struct ShrinkControl {
    /// The request's flags (`gfp_mask`).
    pub gfp: crate::gfp::Gfp,
    /// Objects to scan (`nr_to_scan`), at most the shrinker's batch.
    pub nr_to_scan: usize,
    /// Objects the call scanned (`nr_scanned`); set to `nr_to_scan` before the call.
    pub nr_scanned: usize,
}

/// Called when reclaim has failed and the machine is out of memory (`register_oom_notifier`).
pub trait OomNotifier: Sync {
    /// Frees what it can; returns the number of pages freed.
    fn out_of_memory(&self) -> usize;
}

/// Maximum registered entries per registry.
pub const MAX_ENTRIES: usize = 64;

/// Handle of a registered entry. It names one registration: after `unregister`, or in another
/// registry, it matches nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationId {
    index: usize,
    generation: u64,
}

/// Generations are unique across every registry of the process.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// One slot of a registry's table.
enum Entry<T: ?Sized> {
    /// Unused: [`Registry::register`] may take it.
    Free,
    /// A registered entry and its generation.
    Live(NonNull<T>, u64),
    /// A tombstone, with the removed entry's generation: the entry was unregistered and
    /// [`Registry::unregister`] is waiting for its calls to end. No pass pins it and
    /// `register` does not reuse it, so the slot's pins are the old entry's calls only.
    Dying(u64),
}

impl<T: ?Sized> Clone for Entry<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Entry<T> {}

/// A table of callbacks.
pub struct Registry<T: ?Sized + 'static> {
    slots: SpinLock<[Entry<T>; MAX_ENTRIES]>,
    /// Calls in progress per slot: raised under the lock while the slot's entry is live,
    /// lowered after the call.
    pins: [AtomicUsize; MAX_ENTRIES],
    /// Per slot, the entry's own counter for the callers' use (a shrinker's `nr_deferred`),
    /// zeroed when an entry takes the slot. Not part of the pin handoff: a plain core atomic.
    counters: [core::sync::atomic::AtomicUsize; MAX_ENTRIES],
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
        #[cfg(not(kmem_loom))]
        let pins = [const { AtomicUsize::new(0) }; MAX_ENTRIES];
        // loom's atomics are not `const`.
        #[cfg(kmem_loom)]
        let pins = core::array::from_fn(|_| AtomicUsize::new(0));
        let counters = [const { core::sync::atomic::AtomicUsize::new(0) }; MAX_ENTRIES];
        Self { slots: SpinLock::new([Entry::Free; MAX_ENTRIES]), pins, counters }
    }

    /// Adds `entry` in a free slot (never a tombstone, `Entry::Dying`); `None` when the
    /// table has no free slot.
    ///
    /// # Safety
    /// `entry` must stay valid until [`Registry::unregister`] returns for the returned id.
    pub unsafe fn register(&self, entry: NonNull<T>) -> Option<RegistrationId> {
        let mut slots = self.slots.lock();
        let index = slots.iter().position(|e| matches!(e, Entry::Free))?;
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        self.counters[index].store(0, Ordering::Relaxed);
        slots[index] = Entry::Live(entry, generation);
        Some(RegistrationId { index, generation })
    }

    /// Removes an entry, then waits until no call of it is running (none can start once it is
    /// removed), then frees its slot. Returns false (and removes nothing) for an id that is
    /// stale or from another registry. Whatever it returns, no call of the id's entry is
    /// running when it returns: an `unregister` of an id that another `unregister` is still
    /// draining (the id is `Copy`) waits for that one to end, then returns false — otherwise
    /// its caller could free the entry under a call still in progress.
    ///
    /// While it waits the slot is a tombstone (`Entry::Dying`): no pass pins it and
    /// `register` skips it, so the pins waited for are the removed entry's own calls — never
    /// those of a newer entry (which, if it needed something the caller holds, would wait for
    /// the caller while the caller waited for it).
    pub fn unregister(&self, id: RegistrationId) -> bool {
        {
            let mut slots = self.slots.lock();
            match slots.get(id.index) {
                Some(Entry::Live(_, generation)) if *generation == id.generation => {
                    slots[id.index] = Entry::Dying(id.generation);
                }
                Some(Entry::Dying(generation)) if *generation == id.generation => {
                    drop(slots);
                    // Another `unregister` of this id is draining it: its tombstone goes when no
                    // call is left (and no other id's entry can be in that slot before then).
                    while matches!(self.slots.lock()[id.index], Entry::Dying(g) if g == id.generation) {
                        cpu_relax();
                    }
                    return false;
                }
                _ => return false,
            }
        }
        // Only this call turns this tombstone back into a free slot, and nothing pins it
        // meanwhile: the count only falls.
        while self.pins[id.index].load(Ordering::Acquire) != 0 {
            cpu_relax();
        }
        self.slots.lock()[id.index] = Entry::Free;
        true
    }

    /// Runs `f` on every entry registered when the pass starts and still registered when its
    /// turn comes. Passes may run concurrently.
    pub fn for_each(&self, mut f: impl FnMut(&T)) {
        self.for_each_with_counter(|entry, _| f(entry));
    }

    /// [`Self::for_each`], also passing each entry's own counter (zeroed at registration;
    /// shared by the passes that run concurrently, so updated atomically).
    pub fn for_each_with_counter(&self, mut f: impl FnMut(&T, &core::sync::atomic::AtomicUsize)) {
        let snapshot = *self.slots.lock();
        let live = snapshot.iter().enumerate().filter_map(|(i, e)| match *e {
            Entry::Live(_, generation) => Some((i, generation)),
            Entry::Free | Entry::Dying(_) => None,
        });
        for (index, generation) in live {
            let entry = {
                let slots = self.slots.lock();
                match slots[index] {
                    Entry::Live(entry, g) if g == generation => {
                        self.pins[index].fetch_add(1, Ordering::Relaxed);
                        entry
                    }
                    _ => continue, // Unregistered since the pass started.
                }
            };
            // Unpinned when the call returns or unwinds (a panicking callback must not leave
            // `unregister` waiting for ever).
            let _pin = Unpin(&self.pins[index]);
            // SAFETY: The entry is registered (checked under the lock, which `unregister` takes
            // to remove it), and its slot is pinned until the call returns, which `unregister`
            // waits for before its caller may invalidate it.
            f(unsafe { entry.as_ref() }, &self.counters[index]);
        }
    }
}

/// `do_shrink_slab`: one shrinker's part of a reclaim pass at `priority` (0..=[`DEF_PRIORITY`]).
/// Scans `(freeable >> priority) * 4 / seeks` objects (`delta`) plus `nr_deferred >> priority`
/// (at most twice the count in all) in calls of at most the shrinker's batch, stopping early on
/// [`SHRINK_STOP`]; a cache smaller than its share of a batch is left alone until the priority
/// falls. Work not done — the new `delta` not scanned, less the deferred work that was — is
/// added back to `nr_deferred` (at most twice the count), so a pass that could not scan (a
/// `GFP_NOFS` request and a shrinker that needs the filesystem) leaves its work to the next.
/// Returns the objects freed.
pub fn do_shrink_slab(
    shrinker: &(impl Shrinker + ?Sized),
    nr_deferred: &core::sync::atomic::AtomicUsize,
    gfp: crate::gfp::Gfp,
    priority: u32,
) -> usize {
    let freeable = shrinker.count_objects();
    if freeable == 0 {
        return 0;
    }
    // `xchg_nr_deferred`: this pass takes the deferred work; concurrent passes add theirs.
    let nr = nr_deferred.swap(0, Ordering::Relaxed);
    let shift = priority.min(usize::BITS - 1);
    let batch = match shrinker.batch() {
        0 => SHRINK_BATCH,
        b => b,
    };
    let delta = match shrinker.seeks() {
        0 => freeable / 2,
        seeks => (freeable >> shift).saturating_mul(4) / seeks,
    };
    let mut total_scan = (nr >> shift).saturating_add(delta).min(freeable.saturating_mul(2));
    let (mut freed, mut scanned) = (0usize, 0usize);
    while total_scan >= batch || total_scan >= freeable {
        let nr_to_scan = batch.min(total_scan);
        let mut sc = ShrinkControl { gfp, nr_to_scan, nr_scanned: nr_to_scan };
        let ret = shrinker.scan_objects_ctl(&mut sc);
        if ret == SHRINK_STOP {
            break;
        }
        freed = freed.saturating_add(ret);
        // The kernel subtracts `nr_scanned` as reported. A report of more than is left ends the
        // pass (the kernel's unsigned count would wrap), and one of none ends it too: the
        // kernel would ask again for ever.
        total_scan = total_scan.saturating_sub(sc.nr_scanned);
        scanned = scanned.saturating_add(sc.nr_scanned);
        if sc.nr_scanned == 0 {
            break;
        }
    }
    // "The deferred work is increased by any new work (delta) that wasn't done, decreased by
    // old deferred work that was done now", capped at twice the count (`add_nr_deferred`).
    let next = nr.saturating_add(delta).saturating_sub(scanned).min(freeable.saturating_mul(2));
    if next > 0 {
        nr_deferred.fetch_add(next, Ordering::Relaxed);
    }
    freed
}

/// Lowers a slot's pin count when dropped.
struct Unpin<'a>(&'a AtomicUsize);

impl Drop for Unpin<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(all(test, not(kmem_loom)))]
mod tests {
    use super::*;

    struct Counter(AtomicUsize);

    impl OomNotifier for Counter {
        fn out_of_memory(&self) -> usize {
            self.0.fetch_add(1, Ordering::Relaxed);
            0
        }
    }

    #[test]
    fn ids_are_single_use_and_registry_specific() {
        let a: Registry<dyn OomNotifier> = Registry::new();
        let b: Registry<dyn OomNotifier> = Registry::new();
        let counter = Counter(AtomicUsize::new(0));
        // SAFETY: `counter` outlives both registrations (unregistered below).
        let id_a = unsafe { a.register(NonNull::from(&counter as &dyn OomNotifier)) }.unwrap();
        // SAFETY: As above.
        let id_b = unsafe { b.register(NonNull::from(&counter as &dyn OomNotifier)) }.unwrap();
        assert_ne!(id_a, id_b);
        assert!(!b.unregister(id_a), "an id from registry a matches nothing in b");
        a.for_each(|n| {
            n.out_of_memory();
        });
        b.for_each(|n| {
            n.out_of_memory();
        });
        assert_eq!(counter.0.load(Ordering::Relaxed), 2, "b's entry survived a's id");
        assert!(a.unregister(id_a));
        assert!(!a.unregister(id_a), "stale id");
        assert!(b.unregister(id_b));
        a.for_each(|_| panic!("nothing registered"));
    }

    /// An entry whose callback unregisters another entry (as a destructor run by the slab
    /// shrinker may): the other entry is not called afterwards, and nothing waits for the pass
    /// the callback runs in.
    #[test]
    fn a_callback_may_unregister_another_entry() {
        struct Unregisters {
            registry: &'static Registry<dyn OomNotifier>,
            victim: std::sync::Mutex<Option<RegistrationId>>,
        }
        impl OomNotifier for Unregisters {
            fn out_of_memory(&self) -> usize {
                if let Some(id) = self.victim.lock().unwrap().take() {
                    assert!(self.registry.unregister(id), "the victim was registered");
                }
                0
            }
        }
        let r: &'static Registry<dyn OomNotifier> = std::boxed::Box::leak(std::boxed::Box::new(Registry::new()));
        let victim: &'static Counter = std::boxed::Box::leak(std::boxed::Box::new(Counter(AtomicUsize::new(0))));
        let first: &'static Unregisters = std::boxed::Box::leak(std::boxed::Box::new(Unregisters {
            registry: r,
            victim: std::sync::Mutex::new(None),
        }));
        // SAFETY: Leaked: they outlive every registration.
        let first_id = unsafe { r.register(NonNull::from(first as &dyn OomNotifier)) }.unwrap();
        // SAFETY: As above.
        let victim_id = unsafe { r.register(NonNull::from(victim as &dyn OomNotifier)) }.unwrap();
        *first.victim.lock().unwrap() = Some(victim_id);
        r.for_each(|n| {
            n.out_of_memory();
        });
        assert_eq!(victim.0.load(Ordering::Relaxed), 0, "unregistered before its turn: not called");
        assert!(!r.unregister(victim_id), "already gone");
        r.for_each(|n| {
            n.out_of_memory();
        });
        assert_eq!(victim.0.load(Ordering::Relaxed), 0);
        assert!(r.unregister(first_id));
    }

    /// A slot whose entry is being unregistered (its call still running) is a tombstone: a
    /// registration made meanwhile takes another slot, and the slot is free again once
    /// `unregister` returns.
    #[test]
    fn a_draining_slot_is_not_reused() {
        use std::sync::mpsc;
        struct Blocks(std::sync::Mutex<mpsc::Receiver<()>>, mpsc::Sender<()>);
        impl OomNotifier for Blocks {
            fn out_of_memory(&self) -> usize {
                self.1.send(()).unwrap();
                self.0.lock().unwrap().recv().unwrap();
                0
            }
        }
        let r: &'static Registry<dyn OomNotifier> = std::boxed::Box::leak(std::boxed::Box::new(Registry::new()));
        let (release, wait) = mpsc::channel();
        let (entered_tx, entered) = mpsc::channel();
        let old: &'static Blocks = std::boxed::Box::leak(std::boxed::Box::new(Blocks(wait.into(), entered_tx)));
        // SAFETY: Leaked: it outlives every registration.
        let old_id = unsafe { r.register(NonNull::from(old as &dyn OomNotifier)) }.unwrap();
        let pass = std::thread::spawn(move || r.for_each(|n| assert_eq!(n.out_of_memory(), 0)));
        entered.recv().unwrap();
        let unregistering = std::thread::spawn(move || r.unregister(old_id));
        while !matches!(r.slots.lock()[old_id.index], Entry::Dying(_)) {
            std::thread::yield_now();
        }
        let counter = Counter(AtomicUsize::new(0));
        // SAFETY: `counter` outlives the registration (unregistered below).
        let new_id = unsafe { r.register(NonNull::from(&counter as &dyn OomNotifier)) }.unwrap();
        assert_ne!(new_id.index, old_id.index, "the tombstone was reused");
        release.send(()).unwrap();
        pass.join().unwrap();
        assert!(unregistering.join().unwrap());
        assert!(matches!(r.slots.lock()[old_id.index], Entry::Free), "freed once drained");
        assert!(r.unregister(new_id));
    }

    /// Two `unregister`s of one id (it is `Copy`) while the entry's call runs: the one that
    /// finds the tombstone returns false, but not before the call is over, so its caller may
    /// free the entry then (it used to return at once, with the call still running).
    #[test]
    fn a_second_unregister_of_an_id_waits_for_its_calls() {
        use std::sync::atomic::AtomicBool;
        use std::time::Duration;
        let r: Registry<dyn OomNotifier> = Registry::new();
        let counter = Counter(AtomicUsize::new(0));
        // SAFETY: `counter` outlives the registration (both unregisters return in the scope).
        let id = unsafe { r.register(NonNull::from(&counter as &dyn OomNotifier)) }.unwrap();
        let (entered, release, finished) = (AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false));
        std::thread::scope(|s| {
            s.spawn(|| {
                r.for_each(|n| {
                    entered.store(true, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    n.out_of_memory();
                    finished.store(true, Ordering::SeqCst);
                });
            });
            while !entered.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let first = s.spawn(|| r.unregister(id));
            while !matches!(r.slots.lock()[id.index], Entry::Dying(_)) {
                std::thread::yield_now();
            }
            let second = s.spawn(|| {
                let removed = r.unregister(id);
                (removed, finished.load(Ordering::SeqCst))
            });
            std::thread::sleep(Duration::from_millis(50));
            let early = second.is_finished();
            release.store(true, Ordering::SeqCst); // Before any assertion: the pass must end.
            assert!(!early, "the second unregister returned while the call still ran");
            assert_eq!(second.join().unwrap(), (false, true), "false, and only after the call ended");
            assert!(first.join().unwrap());
        });
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        assert!(matches!(r.slots.lock()[id.index], Entry::Free));
        assert!(!r.unregister(id), "stale now: returns at once");
    }

    #[test]
    fn passes_run_concurrently() {
        let r: Registry<dyn OomNotifier> = Registry::new();
        let counter = Counter(AtomicUsize::new(0));
        // SAFETY: `counter` outlives the registration.
        let id = unsafe { r.register(NonNull::from(&counter as &dyn OomNotifier)) }.unwrap();
        r.for_each(|_| r.for_each(|n| assert_eq!(n.out_of_memory(), 0)));
        assert_eq!(counter.0.load(Ordering::Relaxed), 1, "a nested pass is not skipped");
        assert!(r.unregister(id));
    }

    /// A shrinker of `count` objects that frees nothing; with `stop` it cannot scan at all.
    struct Fake {
        count: usize,
        stop: core::sync::atomic::AtomicBool,
        scanned: core::sync::atomic::AtomicUsize,
    }

    impl Shrinker for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn count_objects(&self) -> usize {
            self.count
        }
        fn scan_objects(&self, nr_to_scan: usize, _gfp: crate::gfp::Gfp) -> usize {
            if self.stop.load(Ordering::Relaxed) {
                return SHRINK_STOP;
            }
            self.scanned.fetch_add(nr_to_scan, Ordering::Relaxed);
            0
        }
    }

    /// `nr_deferred` (mm/shrinker.c `do_shrink_slab`): work a pass could not do is carried to
    /// the next, scaled by its priority, and capped at twice the count.
    #[test]
    fn deferred_work_is_carried_to_the_next_pass_and_capped() {
        let s = Fake { count: 10_000, stop: true.into(), scanned: 0.into() };
        let gfp = crate::gfp::GFP_KERNEL;
        let deferred = core::sync::atomic::AtomicUsize::new(0);
        // Priority 0 wants 2 * 10000 (capped); `SHRINK_STOP` at once: all of it deferred.
        assert_eq!(do_shrink_slab(&s, &deferred, gfp, 0), 0);
        assert_eq!(deferred.load(Ordering::Relaxed), 20_000);
        do_shrink_slab(&s, &deferred, gfp, 0);
        assert_eq!(deferred.load(Ordering::Relaxed), 20_000, "capped at twice the count");
        // Priority 6: delta = (10000 >> 6) * 4 / 2 = 312, plus 20000 >> 6 = 312 deferred: 624,
        // scanned in 4 full batches (512); 20000 + 312 - 512 stays deferred.
        s.stop.store(false, Ordering::Relaxed);
        do_shrink_slab(&s, &deferred, gfp, 6);
        assert_eq!(s.scanned.load(Ordering::Relaxed), 512);
        assert_eq!(deferred.load(Ordering::Relaxed), 19_800);
        // Without deferred work the same pass scans its delta only: 2 batches, 56 deferred.
        let fresh = core::sync::atomic::AtomicUsize::new(0);
        do_shrink_slab(&s, &fresh, gfp, 6);
        assert_eq!(s.scanned.load(Ordering::Relaxed), 512 + 256);
        assert_eq!(fresh.load(Ordering::Relaxed), 312 - 256);
    }

    /// A shrinker that scans only part of each batch (`shrink_control.nr_scanned`).
    struct Partial {
        count: usize,
        per_call: usize,
        calls: core::sync::atomic::AtomicUsize,
    }

    impl Shrinker for Partial {
        fn name(&self) -> &str {
            "partial"
        }
        fn count_objects(&self) -> usize {
            self.count
        }
        fn scan_objects(&self, _nr_to_scan: usize, _gfp: crate::gfp::Gfp) -> usize {
            unreachable!("scan_objects_ctl is overridden")
        }
        fn scan_objects_ctl(&self, sc: &mut ShrinkControl) -> usize {
            assert_eq!(sc.nr_scanned, sc.nr_to_scan, "preset to nr_to_scan");
            self.calls.fetch_add(1, Ordering::Relaxed);
            sc.nr_scanned = self.per_call.min(sc.nr_to_scan);
            0
        }
    }

    /// `nr_scanned` written back counts against the pass and `nr_deferred`: a shrinker that
    /// scans 32 of each batch of 128 is called until the pass's total is scanned, and what it
    /// did not scan is deferred as scanned work is; one that scans nothing ends the pass.
    #[test]
    fn nr_scanned_written_back_is_what_the_pass_counts() {
        let gfp = crate::gfp::GFP_KERNEL;
        // Priority 6: delta = (10000 >> 6) * 4 / 2 = 312; 32 per call: ceil(312 / 32) calls
        // while at least a batch (128) or the count is left: 312 -> 280 -> ... -> 120 < 128.
        let s = Partial { count: 10_000, per_call: 32, calls: 0.into() };
        let deferred = core::sync::atomic::AtomicUsize::new(0);
        do_shrink_slab(&s, &deferred, gfp, 6);
        assert_eq!(s.calls.load(Ordering::Relaxed), 6, "312 - 6 * 32 = 120 left, below a batch");
        assert_eq!(deferred.load(Ordering::Relaxed), 312 - 6 * 32);
        // The same pass with the full batch scanned (the default) takes two calls.
        let full = Fake { count: 10_000, stop: false.into(), scanned: 0.into() };
        let d2 = core::sync::atomic::AtomicUsize::new(0);
        do_shrink_slab(&full, &d2, gfp, 6);
        assert_eq!((full.scanned.load(Ordering::Relaxed), d2.load(Ordering::Relaxed)), (256, 56));
        // Scanning nothing ends the pass instead of asking for ever.
        let none = Partial { count: 10_000, per_call: 0, calls: 0.into() };
        let d3 = core::sync::atomic::AtomicUsize::new(0);
        do_shrink_slab(&none, &d3, gfp, 0);
        assert_eq!(none.calls.load(Ordering::Relaxed), 1);
        assert_eq!(d3.load(Ordering::Relaxed), 20_000, "all of it deferred (capped)");
    }

    /// An entry's counter starts at zero: a new registration in a slot does not inherit the
    /// deferred work of the slot's previous entry.
    #[test]
    fn a_new_registration_starts_with_a_zero_counter() {
        let r: Registry<dyn OomNotifier> = Registry::new();
        let a = Counter(AtomicUsize::new(0));
        // SAFETY: unregistered before `a` drops.
        let id = unsafe { r.register(NonNull::from(&a as &dyn OomNotifier)) }.unwrap();
        r.for_each_with_counter(|_, c| c.store(77, Ordering::Relaxed));
        assert!(r.unregister(id));
        // SAFETY: As above.
        let id = unsafe { r.register(NonNull::from(&a as &dyn OomNotifier)) }.unwrap();
        let mut seen = usize::MAX;
        r.for_each_with_counter(|_, c| seen = c.load(Ordering::Relaxed));
        assert_eq!(seen, 0);
        assert!(r.unregister(id));
    }
}
