//! The checks of debug caches and their reports, in the kernel's words (SEMANTICS §3.8,
//! SL-15): `check_object` (red zones, `kmalloc Redzone`, poison, padding, free pointer),
//! `check_slab` and `slab_pad_check`, `on_freelist` (the freelist walk that finds double
//! frees and repairs broken freelists and counters), and `validate_slab_cache`.
//!
//! Every check that finds damage reports it and repairs it: overwritten bytes are restored
//! (`Restoring …`), a broken free pointer is cut, wrong counters are set to what was counted.
//! A second check of the same damage therefore reports nothing.
//!
//! Counting ([`super::Slabs::errors`]) follows `slub_kunit`'s `slab_errors`: each `slab_err`,
//! `object_err` and byte-check report counts one and each `FIX` line counts one (a byte
//! check is therefore two: the report and its `Restoring`). The `Object corrupt` dump that
//! follows the first byte report of an object, and the `Padding overwritten` header of
//! `slab_pad_check`, are part of a report already counted and count nothing more.
//!
//! Every function here runs under the cache's node lock (slab descriptors and freelists are
//! stable); it logs under it, as the kernel prints under `list_lock`.

use core::fmt;
use core::panic::Location;

use super::cache::Cache;
use super::debug::{
    POISON_END, POISON_FREE, POISON_INUSE, SLUB_RED_ACTIVE, SLUB_RED_INACTIVE, get_orig_size, tracks_orig_size,
};
use super::desc::Slab;
use super::flags::{__OBJECT_POISON, SLAB_CONSISTENCY_CHECKS, SLAB_POISON, SLAB_RED_ZONE};
use super::layout::MAX_OBJS_PER_PAGE;
use super::node::{Node, Which};
use crate::kmem::Kmem;
use crate::memmap::pg;
use crate::order::PAGE_SIZE;
use crate::platform::{Level, Platform};

/// One row of `print_hex_dump(…, DUMP_PREFIX_ADDRESS, 16, 1, …, true)`: hex bytes, padded so the
/// ASCII column starts at column 49, then the bytes as ASCII (`.` when not printable).
struct HexRow<'a>(&'a [u8]);

impl fmt::Display for HexRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        let hex_len = (3 * self.0.len()).saturating_sub(1);
        for _ in hex_len..49 {
            f.write_str(" ")?;
        }
        for &b in self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// The page flags `%pGp` prints for a slab's head page.
struct PageFlags(u32);

impl fmt::Display for PageFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}(", self.0)?;
        let mut first = true;
        for (bit, name) in [(pg::SLAB, "slab"), (pg::HEAD, "head")] {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// Where one slab lives: its descriptor and first byte.
#[derive(Clone, Copy)]
pub(crate) struct SlabAt {
    pub(crate) slab: *mut Slab,
    pub(crate) base: *mut u8,
}

impl<P: Platform> Kmem<P> {
    /// `print_section`: a hex dump of `len` bytes at `addr`, one line per 16 bytes.
    pub(crate) fn print_section(&self, level: Level, text: &str, addr: *const u8, len: usize) {
        let mut off = 0;
        while off < len {
            let n = (len - off).min(16);
            // SAFETY: Callers dump bytes inside a live slab's pages.
            let row = unsafe { core::slice::from_raw_parts(addr.add(off), n) };
            self.platform().log(level, format_args!("{text}{:016x}: {}", addr as usize + off, HexRow(row)));
            off += n;
        }
    }

    /// `slab_fix`: a `FIX <cache>: …` line (counts one report).
    pub(crate) fn slab_fix(&self, s: &Cache, msg: fmt::Arguments<'_>) {
        self.count_slab_report();
        self.platform().log(Level::Err, format_args!("FIX {}: {msg}", s.name()));
    }

    /// `print_slab_info`: `Slab 0x… objects=… used=… fp=0x… flags=…`.
    pub(crate) fn print_slab_info(&self, slab: *mut Slab) {
        // SAFETY: The caller holds the node lock of the slab's cache.
        let (objects, inuse, fp, pfn) = unsafe { ((*slab).objects, (*slab).inuse, (*slab).freelist, (*slab).pfn) };
        let flags = self.pfn_to_page(pfn as usize).map_or(0, |p| p.flags());
        self.platform().log(
            Level::Err,
            format_args!(
                "Slab 0x{:x} objects={objects} used={inuse} fp=0x{:x} flags={}",
                slab as usize,
                fp as usize,
                PageFlags(flags)
            ),
        );
    }

    /// The `WARN_ON(1)` of `object_err`/`slab_err`.
    pub(crate) fn slab_warn(&self, func: &str, caller: &Location<'_>) {
        self.platform().log(Level::Warning, format_args!("WARNING: at mm/slub.c {func} (called from {caller})"));
        self.platform().dump_stack(caller);
    }

    /// `slab_err`: a `BUG` header, the slab's summary and a warning (counts one report).
    pub(crate) fn slab_err(&self, s: &Cache, slab: *mut Slab, msg: fmt::Arguments<'_>, caller: &Location<'_>) {
        self.count_slab_report();
        self.slab_bug(s, msg);
        self.print_slab_info(slab);
        self.slab_warn("slab_err", caller);
    }

    /// `object_err`: a `BUG` header with `reason`, then the object's dump (or the slab summary
    /// and `Invalid pointer` for a pointer that is not an object). `count` is false for the
    /// dump that belongs to a byte report already counted.
    pub(crate) fn object_err(
        &self,
        s: &Cache,
        at: SlabAt,
        obj: *mut u8,
        reason: &str,
        count: bool,
        caller: &Location<'_>,
    ) {
        if count {
            self.count_slab_report();
        }
        self.slab_bug(s, format_args!("{reason}"));
        if obj.is_null() || !self.check_valid_pointer(s, at, obj) {
            self.print_slab_info(at.slab);
            self.platform().log(Level::Err, format_args!("Invalid pointer 0x{:x}", obj as usize));
        } else {
            self.print_trailer(s, at, obj);
        }
        self.slab_warn("object_err", caller);
    }

    /// `print_trailer`: tracking, slab summary, the `Object … fp=…` line and the dump of the
    /// object's slot (red zones, object, padding).
    fn print_trailer(&self, s: &Cache, at: SlabAt, p: *mut u8) {
        let l = &s.layout;
        self.print_tracking(s, p);
        self.print_slab_info(at.slab);
        // SAFETY: `p` is an object of the slab (checked by the caller).
        let fp = unsafe { s.get_freepointer(p) };
        self.platform().log(
            Level::Err,
            format_args!(
                "Object 0x{:x} @offset={} fp=0x{:x}\n",
                p as usize,
                p as usize - at.base as usize,
                fp as usize
            ),
        );
        let red_zone = l.flags.intersects(SLAB_RED_ZONE);
        if red_zone {
            self.print_section(Level::Err, "Redzone  ", p.wrapping_sub(l.red_left_pad), l.red_left_pad);
        } else if p as usize > at.base as usize + 16 {
            self.print_section(Level::Err, "Bytes b4 ", p.wrapping_sub(16), 16);
        }
        self.print_section(Level::Err, "Object   ", p, l.object_size.min(PAGE_SIZE));
        if red_zone {
            self.print_section(Level::Err, "Redzone  ", p.wrapping_add(l.object_size), l.inuse - l.object_size);
        }
        let off = l.pad_offset();
        if off != l.size_from_object() {
            self.print_section(Level::Err, "Padding  ", p.wrapping_add(off), l.size_from_object() - off);
        }
    }

    /// `check_valid_pointer`: null, or exactly an object of this slab.
    pub(crate) fn check_valid_pointer(&self, s: &Cache, at: SlabAt, p: *mut u8) -> bool {
        if p.is_null() {
            return true;
        }
        // SAFETY: Node lock held (caller).
        let objects = unsafe { (*at.slab).objects } as usize;
        let Some(off) = (p as usize).checked_sub(at.base as usize + s.layout.red_left_pad) else { return false };
        off.is_multiple_of(s.size) && off / s.size < objects
    }

    /// `check_bytes_and_report`: `len` bytes from `start` must all be `value`. On damage:
    /// `[<what> overwritten] …` (plus the object's dump when `dump` is set), then the damaged
    /// run is restored. Returns whether the bytes were intact.
    #[expect(clippy::too_many_arguments, reason = "the kernel's check_bytes_and_report")]
    fn check_bytes_and_report(
        &self,
        s: &Cache,
        at: SlabAt,
        obj: *mut u8,
        what: &str,
        start: *mut u8,
        value: u8,
        len: usize,
        dump: bool,
        caller: &Location<'_>,
    ) -> bool {
        // SAFETY: The checked range lies inside the object's slot or the slab's tail.
        let bytes = unsafe { core::slice::from_raw_parts(start, len) };
        let Some(first) = bytes.iter().position(|&b| b != value) else { return true };
        let last = bytes.iter().rposition(|&b| b != value).unwrap_or(first);
        let fault = start.wrapping_add(first);
        let end = start.wrapping_add(last + 1);
        self.count_slab_report();
        self.platform().log(
            Level::Err,
            format_args!(
                "[{what} overwritten] 0x{:x}-0x{:x} @offset={}. First byte 0x{:x} instead of 0x{value:x}",
                fault as usize,
                end as usize - 1,
                fault as usize - at.base as usize,
                bytes[first]
            ),
        );
        if dump {
            self.object_err(s, at, obj, "Object corrupt", false, caller);
        }
        self.restore_bytes(s, what, value, fault, end);
        false
    }

    /// `restore_bytes`: `FIX <cache>: Restoring <what> 0x…-0x…=0x..` and the bytes refilled.
    fn restore_bytes(&self, s: &Cache, what: &str, value: u8, from: *mut u8, to: *mut u8) {
        self.slab_fix(s, format_args!("Restoring {what} 0x{:x}-0x{:x}=0x{value:x}", from as usize, to as usize - 1));
        // SAFETY: `[from, to)` was just read inside the slab.
        unsafe { from.write_bytes(value, to as usize - from as usize) };
    }

    /// `check_pad_bytes`: the padding after the metadata must be `0x5a`.
    fn check_pad_bytes(&self, s: &Cache, at: SlabAt, p: *mut u8, dump: bool, caller: &Location<'_>) -> bool {
        let l = &s.layout;
        let off = l.pad_offset();
        if off == l.size_from_object() {
            return true;
        }
        let len = l.size_from_object() - off;
        self.check_bytes_and_report(s, at, p, "Object padding", p.wrapping_add(off), POISON_INUSE, len, dump, caller)
    }

    /// `check_object`: the slot of object `p` against the fills of state `val`
    /// (`SLUB_RED_ACTIVE` allocated, `SLUB_RED_INACTIVE` free), repairing what it finds.
    pub(crate) fn check_object(&self, s: &Cache, at: SlabAt, p: *mut u8, val: u8, caller: &Location<'_>) -> bool {
        let l = &s.layout;
        let mut ok = true;
        let end_obj = p.wrapping_add(l.object_size);
        let check = |what: &str, start: *mut u8, value: u8, len: usize, ok: &mut bool| {
            if !self.check_bytes_and_report(s, at, p, what, start, value, len, *ok, caller) {
                *ok = false;
            }
        };
        if l.flags.intersects(SLAB_RED_ZONE) {
            check("Left Redzone", p.wrapping_sub(l.red_left_pad), val, l.red_left_pad, &mut ok);
            check("Right Redzone", end_obj, val, l.inuse - l.object_size, &mut ok);
            if tracks_orig_size(s) && val == SLUB_RED_ACTIVE {
                let orig = get_orig_size(s, p);
                if l.object_size > orig {
                    check("kmalloc Redzone", p.wrapping_add(orig), val, l.object_size - orig, &mut ok);
                }
            }
        } else if l.flags.intersects(SLAB_POISON) && l.object_size < l.inuse {
            check("Alignment padding", end_obj, POISON_INUSE, l.inuse - l.object_size, &mut ok);
        }
        if l.flags.intersects(SLAB_POISON) {
            if val != SLUB_RED_ACTIVE && l.flags.intersects(__OBJECT_POISON) {
                check("Poison", p, POISON_FREE, l.object_size - 1, &mut ok);
                check("End Poison", p.wrapping_add(l.object_size - 1), POISON_END, 1, &mut ok);
            }
            if !self.check_pad_bytes(s, at, p, ok, caller) {
                ok = false;
            }
        }
        // The free pointer of an allocated object is object data unless it lies outside.
        if l.freeptr_outside_object() || val != SLUB_RED_ACTIVE {
            // SAFETY: `p` is an object of this slab; node lock held.
            let fp = unsafe { s.get_freepointer(p) };
            if !self.check_valid_pointer(s, at, fp) {
                self.object_err(s, at, p, "Freepointer corrupt", true, caller);
                // SAFETY: As above. The rest of the chain is lost, as in the kernel.
                unsafe { s.set_freepointer(p, core::ptr::null_mut()) };
                ok = false;
            }
        }
        ok
    }

    /// `slab_pad_check`: with `SLAB_POISON`, the slab's tail after the last slot must be
    /// `0x5a`.
    fn slab_pad_check(&self, s: &Cache, at: SlabAt, caller: &Location<'_>) {
        if !s.layout.flags.intersects(SLAB_POISON) {
            return;
        }
        let length = self.slab_bytes(at.slab);
        let remainder = length % s.size;
        if remainder == 0 {
            return;
        }
        let pad = at.base.wrapping_add(length - remainder);
        // SAFETY: The tail lies inside the slab's pages.
        let bytes = unsafe { core::slice::from_raw_parts(pad, remainder) };
        let Some(first) = bytes.iter().position(|&b| b != POISON_INUSE) else { return };
        let last = bytes.iter().rposition(|&b| b != POISON_INUSE).unwrap_or(first);
        let (fault, end) = (pad.wrapping_add(first), pad.wrapping_add(last + 1));
        self.slab_bug(
            s,
            format_args!(
                "Padding overwritten. 0x{:x}-0x{:x} @offset={}",
                fault as usize,
                end as usize - 1,
                fault as usize - at.base as usize
            ),
        );
        self.print_section(Level::Err, "Padding ", pad, remainder);
        self.print_slab_info(at.slab);
        self.slab_warn("slab_pad_check", caller);
        self.restore_bytes(s, "slab padding", POISON_INUSE, fault, end);
    }

    /// The slab's size in bytes (`slab_size`).
    fn slab_bytes(&self, slab: *mut Slab) -> usize {
        // SAFETY: Node lock held; the descriptor names the slab's head page.
        let pfn = unsafe { (*slab).pfn } as usize;
        PAGE_SIZE << self.pfn_to_page(pfn).map_or(0, |p| p.order())
    }

    /// `check_slab`: the descriptor's counts are possible, then `slab_pad_check`.
    fn check_slab(&self, s: &Cache, at: SlabAt, caller: &Location<'_>) -> bool {
        let maxobj = self.slab_bytes(at.slab) / s.size;
        // SAFETY: Node lock held.
        let (objects, inuse) = unsafe { ((*at.slab).objects as usize, (*at.slab).inuse as usize) };
        if objects > maxobj {
            self.slab_err(s, at.slab, format_args!("objects {objects} > max {maxobj}"), caller);
            return false;
        }
        if inuse > objects {
            self.slab_err(s, at.slab, format_args!("inuse {inuse} > max {objects}"), caller);
            return false;
        }
        if self.slabs.debug.is_disabled(at.slab) {
            self.slab_err(
                s,
                at.slab,
                format_args!("Slab disabled since SLUB metadata consistency check failed"),
                caller,
            );
            return false;
        }
        self.slab_pad_check(s, at, caller);
        true
    }

    /// Changes a slab's descriptor with `f` and keeps the node's lists and counters right: a
    /// slab whose freelist became empty moves to the full list, and back.
    ///
    /// # Safety
    /// `slab` must be on one of `node`'s lists, `node` being its cache's node, locked.
    unsafe fn refile(&self, node: &mut Node, slab: *mut Slab, f: impl FnOnce(&mut Slab)) {
        // SAFETY: As the caller promises.
        unsafe {
            let d = &mut *slab;
            let was_full = d.freelist.is_null();
            let (old_objects, old_inuse) = (d.objects as usize, d.inuse as usize);
            f(d);
            let (objects, inuse) = (d.objects as usize, d.inuse as usize);
            node.total_objects = node.total_objects + objects - old_objects;
            let full = d.freelist.is_null();
            if !was_full {
                node.partial_free -= old_objects - old_inuse;
            }
            if was_full != full {
                node.unlink(if was_full { Which::Full } else { Which::Partial }, slab);
                node.push(if full { Which::Full } else { Which::Partial }, slab, !full);
            }
            if !full {
                node.partial_free += objects - inuse;
            }
        }
    }

    /// `alloc_debug_processing`'s failure: every object of the slab counts as used, so no
    /// object of it is handed out again. (kmem keeps the slab on its full list; the kernel
    /// also freezes it, which kmem's descriptor has no room for.)
    ///
    /// # Safety
    /// As [`Self::refile`].
    pub(crate) unsafe fn mark_all_used(&self, node: &mut Node, slab: *mut Slab) {
        // SAFETY: As the caller promises.
        unsafe {
            self.refile(node, slab, |d| {
                d.inuse = d.objects;
                d.freelist = core::ptr::null_mut();
            });
        }
    }

    /// `on_freelist`: walks the slab's freelist looking for `search` (null: none). A broken
    /// link is cut (`Freechain corrupt`) or the freelist dropped (`Freepointer corrupt`,
    /// `Freelist cycle detected`); wrong counters are set to what was counted. Returns whether
    /// `search` is free (for null: whether the freelist was usable).
    ///
    /// # Safety
    /// `at.slab` must be a slab of `s` on `node`'s lists; `node` is `s`'s node, locked.
    pub(crate) unsafe fn on_freelist(
        &self,
        s: &Cache,
        node: &mut Node,
        at: SlabAt,
        search: *mut u8,
        caller: &Location<'_>,
    ) -> bool {
        let slab = at.slab;
        // SAFETY: Node lock held (caller); every pointer followed is checked first.
        unsafe {
            let objects = (*slab).objects as usize;
            let mut nr = 0;
            let mut fp = (*slab).freelist;
            let mut object: *mut u8 = core::ptr::null_mut();
            while !fp.is_null() && nr <= objects {
                if fp == search {
                    return true;
                }
                if !self.check_valid_pointer(s, at, fp) {
                    if !object.is_null() {
                        self.object_err(s, at, object, "Freechain corrupt", true, caller);
                        s.set_freepointer(object, core::ptr::null_mut());
                        break;
                    }
                    self.slab_err(s, slab, format_args!("Freepointer corrupt"), caller);
                    self.mark_all_used(node, slab);
                    self.slab_fix(s, format_args!("Freelist cleared"));
                    return false;
                }
                object = fp;
                fp = s.get_freepointer(object);
                nr += 1;
            }
            if nr > objects {
                self.slab_err(s, slab, format_args!("Freelist cycle detected"), caller);
                self.mark_all_used(node, slab);
                self.slab_fix(s, format_args!("Freelist cleared"));
                return false;
            }
            let max_objects = (self.slab_bytes(slab) / s.size).min(MAX_OBJS_PER_PAGE).min(s.objects as usize);
            if objects != max_objects {
                self.slab_err(
                    s,
                    slab,
                    format_args!("Wrong number of objects. Found {objects} but should be {max_objects}"),
                    caller,
                );
                self.refile(node, slab, |d| d.objects = max_objects as u16);
                s.publish_node_free(node);
                self.slab_fix(s, format_args!("Number of objects adjusted"));
            }
            let (objects, inuse) = ((*slab).objects as usize, (*slab).inuse as usize);
            if inuse != objects - nr.min(objects) {
                let counted = objects - nr.min(objects);
                self.slab_err(
                    s,
                    slab,
                    format_args!("Wrong object count. Counter is {inuse} but counted were {counted}"),
                    caller,
                );
                self.refile(node, slab, |d| d.inuse = counted as u16);
                s.publish_node_free(node);
                self.slab_fix(s, format_args!("Object count adjusted"));
            }
        }
        search.is_null()
    }

    /// `alloc_consistency_checks` for `obj`, just taken from its slab (node lock held).
    pub(crate) fn alloc_consistency_checks(
        &self,
        s: &Cache,
        slab: *mut Slab,
        base: usize,
        obj: *mut u8,
        caller: &Location<'_>,
    ) -> bool {
        let at = SlabAt { slab, base: base as *mut u8 };
        if !self.check_slab(s, at, caller) {
            return false;
        }
        if !self.check_valid_pointer(s, at, obj) {
            self.object_err(s, at, obj, "Freelist Pointer check fails", true, caller);
            return false;
        }
        self.check_object(s, at, obj, SLUB_RED_INACTIVE, caller)
    }

    /// The checks of `free_debug_processing` for one object (node lock held): with consistency
    /// checks the slab, then the object's counters, freelist and fills; every debug cache
    /// refuses an object that is already free.
    pub(crate) fn free_debug_checks(
        &self,
        s: &Cache,
        node: &mut Node,
        slab: *mut Slab,
        base: usize,
        obj: *mut u8,
        caller: &Location<'_>,
    ) -> bool {
        let at = SlabAt { slab, base: base as *mut u8 };
        let consistency = s.layout.flags.intersects(SLAB_CONSISTENCY_CHECKS);
        if consistency && !self.check_slab(s, at, caller) {
            return false;
        }
        // SAFETY: Node lock held.
        let inuse = unsafe { (*slab).inuse };
        if inuse < 1 {
            self.slab_err(s, slab, format_args!("Slab has {inuse} allocated objects but 1 are to be freed"), caller);
            return false;
        }
        if !self.check_valid_pointer(s, at, obj) {
            self.slab_err(s, slab, format_args!("Invalid object pointer 0x{:x}", obj as usize), caller);
            return false;
        }
        let already_free = if consistency {
            // SAFETY: The slab is `s`'s, on `node`'s lists (it holds an object that is out).
            unsafe { self.on_freelist(s, node, at, obj, caller) }
        } else {
            // SAFETY: As above; a bounded walk that only compares pointers.
            unsafe { quiet_on_freelist(s, at, obj) }
        };
        if already_free {
            self.object_err(s, at, obj, "Object already free", true, caller);
            return false;
        }
        !consistency || self.check_object(s, at, obj, SLUB_RED_ACTIVE, caller)
    }

    /// Whether `obj`, an object start in slab `found` of `s`, is on the slab's freelist (a
    /// quiet, bounded search under the node lock; nothing reported).
    pub(crate) fn on_slab_freelist(&self, s: &Cache, found: &super::alloc::ObjSlab, obj: *const u8) -> bool {
        let _node = s.node.lock();
        let at = SlabAt { slab: found.slab, base: found.base as *mut u8 };
        // SAFETY: The node lock is held and `found` is the slab holding `obj` (its page says
        // so), a slab of `s`.
        unsafe { quiet_on_freelist(s, at, obj.cast_mut()) }
    }

    /// `validate_slab`: the slab, its freelist, then (debug caches) every object against the
    /// fills of its state, stopping at the first damaged object.
    ///
    /// # Safety
    /// As [`Self::on_freelist`].
    unsafe fn validate_slab(&self, s: &Cache, node: &mut Node, slab: *mut Slab, caller: &Location<'_>) {
        // SAFETY: Node lock held; the descriptor names the slab's head page.
        let pfn = unsafe { (*slab).pfn } as usize;
        let Some(base) = self.pfn_address(pfn) else { return };
        let at = SlabAt { slab, base: base.as_ptr() };
        // SAFETY: As the caller promises.
        if !self.check_slab(s, at, caller) || !unsafe { self.on_freelist(s, node, at, core::ptr::null_mut(), caller) } {
            return;
        }
        if s.fast {
            return;
        }
        let mut free = [0u64; MAX_OBJS_PER_PAGE.div_ceil(64)];
        // SAFETY: `on_freelist` just checked (and repaired) the freelist.
        let objects = unsafe {
            let objects = (*slab).objects as usize;
            let mut fp = (*slab).freelist;
            let mut left = objects;
            while !fp.is_null() && left > 0 {
                let i = (fp as usize - at.base as usize - s.layout.red_left_pad) / s.size;
                free[i / 64] |= 1 << (i % 64);
                fp = s.get_freepointer(fp);
                left -= 1;
            }
            objects
        };
        for i in 0..objects {
            let val = if free[i / 64] & (1 << (i % 64)) != 0 { SLUB_RED_INACTIVE } else { SLUB_RED_ACTIVE };
            if !self.check_object(s, at, s.obj_at(at.base, i), val, caller) {
                break;
            }
        }
    }

    /// `validate_slab_cache`: flushes the per-CPU arrays, checks every slab (and, for debug
    /// caches, every object) reporting and repairing each problem, then the node's lists and
    /// counters. Returns the number of slabs. kmem keeps full slabs on a list for every
    /// cache, so they are checked too (the kernel can only with `SLAB_STORE_USER`).
    pub(crate) fn validate_cache(&self, s: &Cache, caller: &Location<'_>) -> Result<usize, &'static str> {
        self.flush_all(s);
        let mut node = s.node.lock();
        for which in [Which::Partial, Which::Full] {
            let mut cur = node.first(which);
            while let Some(slab) = cur {
                // SAFETY: Slabs on the node's lists, under its lock; the next one is read
                // before the slab may move to the other list.
                unsafe {
                    cur = node.next_of(slab);
                    if !self.slabs.debug.is_disabled(slab) {
                        self.validate_slab(s, &mut node, slab, caller);
                    }
                }
            }
        }
        node.check()?;
        Ok(node.nr_slabs)
    }
}

/// Whether `obj` is on the slab's freelist, without reports or repairs (a walk bounded by the
/// object count that stops at the first pointer outside the slab).
///
/// # Safety
/// Node lock held; `at.slab` is a slab of `s`.
unsafe fn quiet_on_freelist(s: &Cache, at: SlabAt, obj: *mut u8) -> bool {
    // SAFETY: As the caller promises; every pointer is bounds-checked before it is followed.
    unsafe {
        let objects = (*at.slab).objects as usize;
        let mut fp = (*at.slab).freelist;
        let mut left = objects;
        while !fp.is_null() && left > 0 {
            if fp == obj {
                return true;
            }
            let Some(off) = (fp as usize).checked_sub(at.base as usize + s.layout.red_left_pad) else { break };
            if !off.is_multiple_of(s.size) || off / s.size >= objects {
                break;
            }
            fp = s.get_freepointer(fp);
            left -= 1;
        }
    }
    false
}
