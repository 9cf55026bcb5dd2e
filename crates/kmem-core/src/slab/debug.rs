//! Debug caches (SEMANTICS §3.8): poison and red-zone fills, allocation/free tracking, and
//! the checks every debug-cache operation runs under the slow path.
//!
//! Fill bytes: object poison `0x6b` with the last byte `0xa5`; red zones `0xbb` while the
//! object is free and `0xcc` while it is allocated. A `struct track` records the caller (an
//! interned `#[track_caller]` location), CPU, pid and time.

use core::panic::Location;
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use super::cache::Cache;
use super::flags::{__OBJECT_POISON, SLAB_RED_ZONE, SLAB_STORE_USER};
use super::layout::TrackItem;
use crate::kmem::Kmem;
use crate::platform::{Level, Platform};

/// `POISON_INUSE`/`POISON_FREE`/`POISON_END`.
pub const POISON_FREE: u8 = 0x6b;
/// Last byte of a poisoned object.
pub const POISON_END: u8 = 0xa5;
/// `SLUB_RED_INACTIVE`: red zone of a free object.
pub const SLUB_RED_INACTIVE: u8 = 0xbb;
/// `SLUB_RED_ACTIVE`: red zone of an allocated object.
pub const SLUB_RED_ACTIVE: u8 = 0xcc;
/// `POISON_INUSE`: padding.
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

/// One `struct track` as stored in the object's metadata (32 bytes).
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Track {
    when_ns: u64,
    caller: u32,
    cpu: u32,
    pid: u32,
    _pad: [u32; 3],
}

const _: () = assert!(size_of::<Track>() == super::layout::TRACK_SIZE);

/// `init_object`: poison the object and fill its red zones (free or allocated state).
pub(crate) fn init_object(s: &Cache, obj: *mut u8, active: bool) {
    let l = &s.layout;
    let object_size = s.layout.object_size;
    // SAFETY: `obj` is an object of `s`; the red zones and the object lie inside its slot.
    unsafe {
        if l.flags.intersects(SLAB_RED_ZONE) {
            let red = if active { SLUB_RED_ACTIVE } else { SLUB_RED_INACTIVE };
            obj.sub(l.red_left_pad).write_bytes(red, l.red_left_pad);
            obj.add(object_size).write_bytes(red, l.inuse - object_size);
        }
        if l.flags.intersects(__OBJECT_POISON) && !active {
            obj.write_bytes(POISON_FREE, object_size - 1);
            obj.add(object_size - 1).write(POISON_END);
        }
    }
}

impl<P: Platform> Kmem<P> {
    fn set_track(&self, s: &Cache, obj: *mut u8, item: TrackItem, caller: &'static Location<'static>) {
        let Some(off) = s.layout.track_offset(item) else { return };
        let mut pid = 0;
        self.platform().with_task(&mut |t| pid = t.pid);
        let t = Track {
            when_ns: self.platform().now_ns(),
            caller: self.slabs.callers.intern(caller),
            cpu: self.platform().cpu().unwrap_or(0) as u32,
            pid,
            _pad: [0; 3],
        };
        // SAFETY: The track lies inside the object's slot (layout).
        unsafe { obj.add(off).cast::<Track>().write_unaligned(t) };
    }

    /// `print_tracking`: the `Allocated in`/`Freed in` lines of an object of a
    /// `SLAB_STORE_USER` cache.
    pub(crate) fn print_tracking(&self, s: &Cache, obj: *mut u8) {
        if !s.layout.flags.intersects(SLAB_STORE_USER) {
            return;
        }
        let now = self.platform().now_ns();
        for (item, what) in [(TrackItem::Alloc, "Allocated"), (TrackItem::Free, "Freed")] {
            let off = s.layout.track_offset(item).expect("store-user cache has tracks");
            // SAFETY: Inside the object's slot.
            let t = unsafe { obj.add(off).cast::<Track>().read_unaligned() };
            match self.slabs.callers.get(t.caller) {
                Some(loc) => self.platform().log(
                    Level::Err,
                    format_args!(
                        "{what} in {loc} age={} cpu={} pid={}",
                        now.saturating_sub(t.when_ns) / 1_000_000,
                        t.cpu,
                        t.pid
                    ),
                ),
                None if t.when_ns == 0 => {}
                None => self.platform().log(Level::Err, format_args!("{what} in <not-available>")),
            }
        }
    }
}

/// After a debug-cache object leaves its slab: red zones to "allocated", track the caller.
pub(crate) fn on_alloc<P: Platform>(k: &Kmem<P>, s: &Cache, obj: *mut u8, caller: &Location<'_>) {
    if s.fast {
        return;
    }
    init_object(s, obj, true);
    k.set_track(s, obj, TrackItem::Alloc, static_location(caller));
}

/// Before a debug-cache object goes back to its slab: the double-free check
/// (`on_freelist`: `Object already free`), then poison, red zones to "free", track. Returns
/// false if the free must not happen.
pub(crate) fn on_free<P: Platform>(k: &Kmem<P>, s: &Cache, obj: *mut u8, caller: &Location<'_>) -> bool {
    if s.fast {
        return true;
    }
    if k.on_freelist(s, obj) {
        if k.slab_report_allowed() {
            k.slab_bug(s, format_args!("Object already free"));
            k.platform().log(Level::Err, format_args!("Object 0x{:x} @offset=?", obj as usize));
            k.print_tracking(s, obj);
            k.platform().dump_stack(caller);
        }
        return false;
    }
    k.set_track(s, obj, TrackItem::Free, static_location(caller));
    init_object(s, obj, false);
    true
}

impl<P: Platform> Kmem<P> {
    /// Whether `obj` is on its slab's freelist (a debug cache keeps every free object there).
    fn on_freelist(&self, s: &Cache, obj: *mut u8) -> bool {
        let Some(found) = self.object_slab(obj) else { return false };
        let _node = s.node.lock();
        // SAFETY: The slab is live; its freelist is walked under the node lock, bounded by
        // its object count.
        unsafe {
            let mut fp = (*found.slab).freelist;
            let mut left = (*found.slab).objects;
            while !fp.is_null() && left > 0 {
                if fp == obj {
                    return true;
                }
                fp = s.get_freepointer(fp);
                left -= 1;
            }
        }
        false
    }
}

/// `#[track_caller]` locations are `'static` in practice (they point into the binary); the
/// type says `'_` only because `Location::caller` is generic over it.
fn static_location(loc: &Location<'_>) -> &'static Location<'static> {
    // SAFETY: Every `Location` the compiler makes for `#[track_caller]` lives in the binary's
    // read-only data for the whole program; kmem only passes such locations here.
    unsafe { &*core::ptr::from_ref(loc).cast::<Location<'static>>() }
}
