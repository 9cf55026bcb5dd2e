//! Debug caches (SEMANTICS §3.8): poison and red-zone fills, allocation/free tracking, the
//! original request size of kmalloc objects, and the hooks the slow paths call on every
//! alloc and free of a debug cache. The checks and reports themselves are in `debug_check`.
//!
//! Object slot, offsets from the object (see [`super::layout`]):
//! `[left red zone][object][right red zone to inuse][free ptr?][track alloc][track free]
//! [orig_size][padding]`.
//!
//! Fill bytes: object poison `0x6b` with the last byte `0xa5` (on free, and again on alloc as
//! `init_object` does); red zones `0xbb` while the object is free and `0xcc` while it is
//! allocated; with `SLAB_POISON` the whole slab starts as `0x5a`, so padding and the slab's
//! tail stay `0x5a`. A kmalloc debug object (`SLAB_KMALLOC` + `SLAB_STORE_USER`) records the
//! requested size, and with `SLAB_RED_ZONE` the bytes from the request to the end of the
//! object are red zone too (`kmalloc Redzone`). A `struct track` records the caller (an
//! interned `#[track_caller]` location), CPU, pid and time (the platform clock in ns); its
//! `age=` is printed in jiffies, `jiffies(now) - jiffies(when)` at `HZ` = 250, as the
//! kernel's `jiffies - t->when`.
//!
//! Checks follow `free_debug_processing`/`alloc_debug_processing`: only
//! `SLAB_CONSISTENCY_CHECKS` checks the slab and the object on alloc and free; the other debug
//! flags fill and track, and `validate_slab_cache` checks everything. One kmem deviation: a
//! free of an object that is already free is refused (`Object already free`) on every debug
//! cache, not only with consistency checks, because the kernel's alternative is a corrupted
//! freelist.
//!
//! Lock order: `on_alloc` takes the cache's node lock itself (never held by the caller);
//! `on_free_locked` runs under the node lock its caller holds across the free, so a check and
//! the free it allows are one critical section.

use core::panic::Location;
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use super::alloc::ObjSlab;
use super::cache::Cache;
use super::flags::{__OBJECT_POISON, SLAB_CONSISTENCY_CHECKS, SLAB_KMALLOC, SLAB_POISON, SLAB_RED_ZONE};
use super::flags::{SLAB_STORE_USER, SLAB_TRACE};
use super::layout::{TRACK_SIZE, TrackItem};
use super::node::Node;
use crate::kmem::Kmem;
use crate::platform::{Level, Platform, jiffies};

/// `POISON_FREE`: the bytes of a poisoned object.
pub const POISON_FREE: u8 = 0x6b;
/// `POISON_END`: the last byte of a poisoned object.
pub const POISON_END: u8 = 0xa5;
/// `SLUB_RED_INACTIVE`: red zone of a free object.
pub const SLUB_RED_INACTIVE: u8 = 0xbb;
/// `SLUB_RED_ACTIVE`: red zone of an allocated object.
pub const SLUB_RED_ACTIVE: u8 = 0xcc;
/// `POISON_INUSE`: padding, and the whole slab before objects are set up (`SLAB_POISON`).
pub const POISON_INUSE: u8 = 0x5a;

/// Interned caller locations, so a track stores a small index instead of a pointer that a
/// buggy program could overwrite.
pub(crate) struct Callers {
    slots: [AtomicPtr<Location<'static>>; 1024],
}

impl Callers {
    pub(crate) const fn new() -> Self {
        Self { slots: [const { AtomicPtr::new(core::ptr::null_mut()) }; 1024] }
    }

    /// The index of `loc` (1-based; 0 when the table is full).
    pub(crate) fn intern(&self, loc: &'static Location<'static>) -> u32 {
        let p = core::ptr::from_ref(loc).cast_mut();
        let start = (p as usize >> 3) % self.slots.len();
        for k in 0..self.slots.len() {
            let i = (start + k) % self.slots.len();
            match self.slots[i].compare_exchange(core::ptr::null_mut(), p, Relaxed, Relaxed) {
                Ok(_) => return i as u32 + 1,
                Err(cur) if cur == p => return i as u32 + 1,
                Err(_) => {}
            }
        }
        0
    }

    /// The location of index `i`, if valid.
    pub(crate) fn get(&self, i: u32) -> Option<&'static Location<'static>> {
        let slot = self.slots.get((i as usize).checked_sub(1)?)?;
        // SAFETY: Only `&'static Location` pointers are stored.
        unsafe { slot.load(Relaxed).as_ref() }
    }
}

/// The machine-wide state of slab debugging.
pub(crate) struct DebugState {
    /// Interned caller locations of tracks.
    pub(crate) callers: Callers,
    /// Slabs whose consistency checks failed on allocation (`slab->frozen = 1` in the kernel,
    /// which takes them off every list): kmem keeps them on the full list, records them here,
    /// refuses frees into them and leaves them out of validation. Null entries are unused; a
    /// full table records no more (those slabs are then validated like any other).
    disabled: [AtomicPtr<super::desc::Slab>; 64],
}

impl DebugState {
    pub(crate) const fn new() -> Self {
        Self { callers: Callers::new(), disabled: [const { AtomicPtr::new(core::ptr::null_mut()) }; 64] }
    }

    /// Records `slab` as taken out of use.
    pub(crate) fn disable(&self, slab: *mut super::desc::Slab) {
        let null = core::ptr::null_mut();
        let _ = self
            .disabled
            .iter()
            .any(|e| e.load(Relaxed) == slab || e.compare_exchange(null, slab, Relaxed, Relaxed).is_ok());
    }

    /// Whether `slab` was taken out of use.
    pub(crate) fn is_disabled(&self, slab: *mut super::desc::Slab) -> bool {
        self.disabled.iter().any(|e| e.load(Relaxed) == slab)
    }
}

/// One `struct track` as stored in the object's metadata (32 bytes). `when_ns` is the clock
/// reading in ns (the kernel stores `jiffies`; [`jiffies`] converts). `when_ns == 0` with
/// `caller == 0` is an empty track (`init_tracking`).
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Track {
    when_ns: u64,
    caller: u32,
    cpu: u32,
    pid: u32,
    _pad: [u32; 3],
}

const _: () = assert!(size_of::<Track>() == TRACK_SIZE);

/// `slub_debug_orig_size()`: the cache records kmalloc request sizes.
pub(crate) fn tracks_orig_size(s: &Cache) -> bool {
    s.layout.orig_size_offset().is_some()
}

/// `get_orig_size`: the recorded request size, or the object size where none is kept.
pub(crate) fn get_orig_size(s: &Cache, obj: *const u8) -> usize {
    match s.layout.orig_size_offset() {
        // SAFETY: The field lies inside the object's slot (layout).
        Some(off) => unsafe { obj.add(off).cast::<u32>().read_unaligned() as usize },
        None => s.layout.object_size,
    }
}

/// `set_orig_size`: records the request size (kmalloc debug caches only).
pub(crate) fn set_orig_size(s: &Cache, obj: *mut u8, orig_size: usize) {
    if let Some(off) = s.layout.orig_size_offset() {
        // SAFETY: As in `get_orig_size`.
        unsafe { obj.add(off).cast::<u32>().write_unaligned(orig_size as u32) };
    }
}

/// `skip_orig_size_check`: after `ksize`, the caller may use the whole object, so the kmalloc
/// red zone is no longer checked.
pub(crate) fn skip_orig_size_check(s: &Cache, obj: *mut u8) {
    set_orig_size(s, obj, s.layout.object_size);
}

/// How many bytes `__GFP_ZERO`/`init_on_alloc` clear: the request for kmalloc debug caches
/// (whose tail is red zone), else the object size (SL-10). `orig_size == 0` means the object
/// size.
#[inline]
pub(crate) fn zero_size(s: &Cache, orig_size: usize) -> usize {
    let l = &s.layout;
    if !s.fast
        && orig_size != 0
        && l.flags.contains(SLAB_KMALLOC)
        && l.flags.intersects(SLAB_STORE_USER.union(SLAB_RED_ZONE))
    {
        orig_size.min(s.object_size())
    } else {
        s.object_size()
    }
}

/// `init_object`: fills the red zones with `val` and poisons the object (both states, as the
/// kernel does). Allocated kmalloc debug objects poison only the request and red-zone the rest.
pub(crate) fn init_object(s: &Cache, obj: *mut u8, val: u8) {
    let l = &s.layout;
    let mut poison_size = l.object_size;
    // SAFETY: `obj` is an object of `s`; the red zones and the object lie inside its slot.
    unsafe {
        if l.flags.intersects(SLAB_RED_ZONE) {
            obj.sub(l.red_left_pad).write_bytes(val, l.red_left_pad);
            if val == SLUB_RED_ACTIVE && tracks_orig_size(s) {
                poison_size = get_orig_size(s, obj).min(l.object_size);
            }
        }
        if l.flags.intersects(__OBJECT_POISON) && poison_size > 0 {
            obj.write_bytes(POISON_FREE, poison_size - 1);
            obj.add(poison_size - 1).write(POISON_END);
        }
        if l.flags.intersects(SLAB_RED_ZONE) {
            obj.add(poison_size).write_bytes(val, l.inuse - poison_size);
        }
    }
}

/// `setup_slab_debug` + `setup_object_debug` for every object of a new slab of `bytes` bytes
/// at `base`, before constructors run: `0x5a` over the slab with `SLAB_POISON`, then free-state
/// fills and empty tracks.
pub(crate) fn setup_slab(s: &Cache, base: *mut u8, bytes: usize, objects: usize) {
    let flags = s.layout.flags;
    if flags.intersects(SLAB_POISON) {
        // SAFETY: The new slab's pages are ours alone.
        unsafe { base.write_bytes(POISON_INUSE, bytes) };
    }
    if !flags.intersects(SLAB_STORE_USER.union(SLAB_RED_ZONE).union(__OBJECT_POISON)) {
        return;
    }
    for i in 0..objects {
        let obj = s.obj_at(base, i);
        init_object(s, obj, SLUB_RED_INACTIVE);
        if let Some(off) = s.layout.track_offset(TrackItem::Alloc) {
            // SAFETY: Both tracks lie inside the object's slot.
            unsafe { obj.add(off).write_bytes(0, 2 * TRACK_SIZE) };
        }
    }
}

impl<P: Platform> Kmem<P> {
    fn set_track(&self, s: &Cache, obj: *mut u8, item: TrackItem, caller: &'static Location<'static>) {
        let Some(off) = s.layout.track_offset(item) else { return };
        let mut pid = 0;
        self.platform().with_task(&mut |t| pid = t.pid);
        let t = Track {
            when_ns: self.platform().now_ns().max(1),
            caller: self.slabs.debug.callers.intern(caller),
            cpu: self.platform().cpu().unwrap_or(0) as u32,
            pid,
            _pad: [0; 3],
        };
        // SAFETY: The track lies inside the object's slot (layout).
        unsafe { obj.add(off).cast::<Track>().write_unaligned(t) };
    }

    /// `print_tracking`: the `Allocated in`/`Freed in` lines of an object of a
    /// `SLAB_STORE_USER` cache (nothing for an empty track).
    pub(crate) fn print_tracking(&self, s: &Cache, obj: *mut u8) {
        if !s.layout.flags.intersects(SLAB_STORE_USER) {
            return;
        }
        let now = self.platform().now_ns();
        for (item, what) in [(TrackItem::Alloc, "Allocated"), (TrackItem::Free, "Freed")] {
            let off = s.layout.track_offset(item).expect("store-user cache has tracks");
            // SAFETY: Inside the object's slot.
            let t = unsafe { obj.add(off).cast::<Track>().read_unaligned() };
            // `jiffies - t->when`: in jiffies (HZ = 250), as the kernel prints it.
            let age = jiffies(now).saturating_sub(jiffies(t.when_ns));
            match self.slabs.debug.callers.get(t.caller) {
                Some(loc) => self
                    .platform()
                    .log(Level::Err, format_args!("{what} in {loc} age={age} cpu={} pid={}", t.cpu, t.pid)),
                None if t.when_ns == 0 => {}
                None => self
                    .platform()
                    .log(Level::Err, format_args!("{what} in <not-available> age={age} cpu={} pid={}", t.cpu, t.pid)),
            }
        }
    }

    /// `trace`: the `SLAB_TRACE` line of an alloc or free (with the object's bytes on free).
    fn trace(&self, s: &Cache, slab: *mut super::desc::Slab, obj: *mut u8, alloc: bool, caller: &Location<'_>) {
        if !s.layout.flags.intersects(SLAB_TRACE) {
            return;
        }
        // SAFETY: The caller holds the node lock; the descriptor is live.
        let (inuse, fp) = unsafe { ((*slab).inuse, (*slab).freelist) };
        self.platform().log(
            Level::Info,
            format_args!(
                "TRACE {} {} 0x{:x} inuse={inuse} fp=0x{:x}",
                s.name(),
                if alloc { "alloc" } else { "free" },
                obj as usize,
                fp as usize
            ),
        );
        if !alloc {
            self.print_section(Level::Info, "Object ", obj, s.layout.object_size);
        }
        self.platform().dump_stack(caller);
    }
}

/// `alloc_debug_processing` for an object just taken from its slab: with consistency checks
/// the slab and object are checked (a failure marks the slab's objects all used and returns
/// false: the caller must take another object); then `TRACE`, the request size, fills and the
/// allocation track. `orig_size == 0` means the object size.
pub(crate) fn on_alloc<P: Platform>(
    k: &Kmem<P>,
    s: &Cache,
    obj: *mut u8,
    orig_size: usize,
    caller: &Location<'_>,
) -> bool {
    if s.fast {
        return true;
    }
    let Some(found) = k.object_slab(obj) else { return true };
    let orig_size = if orig_size == 0 { s.layout.object_size } else { orig_size.min(s.layout.object_size) };
    {
        let mut node = s.node.lock();
        if s.layout.flags.intersects(SLAB_CONSISTENCY_CHECKS)
            && !k.alloc_consistency_checks(s, found.slab, found.base, obj, caller)
        {
            k.slab_fix(s, format_args!("Marking all objects used"));
            // SAFETY: The slab is live and on one of this node's lists; we hold its lock.
            unsafe { k.mark_all_used(&mut node, found.slab) };
            k.slabs.debug.disable(found.slab);
            return false;
        }
        k.trace(s, found.slab, obj, true, caller);
        set_orig_size(s, obj, orig_size);
        init_object(s, obj, SLUB_RED_ACTIVE);
    }
    k.set_track(s, obj, TrackItem::Alloc, static_location(caller));
    true
}

/// `free_debug_processing` before a debug-cache object goes back to its slab, under the node
/// lock the caller holds and keeps until the object is on the freelist (the kernel's
/// `free_to_partial_list` runs the checks and the free under one hold of `list_lock`: were
/// the lock dropped in between, two racing frees of one object could both pass the checks).
/// With consistency checks the slab and object are checked; every debug cache refuses an
/// object that is already free. A refused free reports `Object at 0x… not freed` and returns
/// false (the object stays where it is). Otherwise `init_on_free`, the free track, `TRACE`,
/// and the free-state fills.
pub(crate) fn on_free_locked<P: Platform>(
    k: &Kmem<P>,
    s: &Cache,
    node: &mut Node,
    found: &ObjSlab,
    obj: *mut u8,
    caller: &Location<'_>,
) -> bool {
    if s.fast {
        return true;
    }
    if !k.free_debug_checks(s, node, found.slab, found.base, obj, caller) {
        k.slab_fix(s, format_args!("Object at 0x{:x} not freed", obj as usize));
        return false;
    }
    if s.init_on_free {
        wipe_on_free(s, obj);
    }
    k.set_track(s, obj, TrackItem::Free, static_location(caller));
    k.trace(s, found.slab, obj, false, caller);
    init_object(s, obj, SLUB_RED_INACTIVE);
    true
}

/// `init_on_free` for a debug cache (`slab_free_hook`): zero the requested bytes and the
/// metadata after the free pointer up to the next object's left red zone, keeping the request
/// size.
fn wipe_on_free(s: &Cache, obj: *mut u8) {
    let l = &s.layout;
    let orig = get_orig_size(s, obj);
    let start = l.info_end();
    // SAFETY: `[0, orig)` is the object and `[info_end, size - red_left_pad)` its metadata and
    // padding, all inside the slot.
    unsafe {
        obj.write_bytes(0, orig.min(l.object_size));
        obj.add(start).write_bytes(0, l.size_from_object() - start);
    }
    set_orig_size(s, obj, orig);
}

/// `#[track_caller]` locations are `'static` in practice (they point into the binary); the
/// type says `'_` only because `Location::caller` is generic over it.
fn static_location(loc: &Location<'_>) -> &'static Location<'static> {
    // SAFETY: Every `Location` the compiler makes for `#[track_caller]` lives in the binary's
    // read-only data for the whole program; kmem only passes such locations here.
    unsafe { &*core::ptr::from_ref(loc).cast::<Location<'static>>() }
}
