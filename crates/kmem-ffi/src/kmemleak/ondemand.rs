//! The on-demand scan, while the program runs: `kmem_kmemleak_scan` is the kernel's
//! `echo scan > /sys/kernel/debug/kmemleak` (`kmemleak_scan`), `kmem_kmemleak_read` its
//! `cat /sys/kernel/debug/kmemleak` (`kmemleak_seq_show`), `kmem_kmemleak_clear` its
//! `echo clear` (`kmemleak_clear`).
//!
//! The scan, as the kernel's:
//! - `jiffies` is read when it starts (`jiffies_last_scan`); an object is reported only if it
//!   was recorded at least `MSECS_MIN_AGE` (5000 ms, 1250 jiffies at `HZ` 250) before, by the
//!   clock the records' `jiffies` come from: a young object's only pointer may still be in a
//!   register.
//! - Roots are those of the exit scan (every loaded object's writable segments, the calling
//!   thread's live frames, the stacks of the other threads that allocated through the C ABI,
//!   live pools' reserves) and the objects marked not a leak; what they reach is scanned in
//!   turn.
//! - An object left unreferenced whose contents changed since the last scan (its `crc32`
//!   differs from the one kept, 0 at first) is gray for this scan, and what it refers to is
//!   referenced: it is being written, so probably in use. A lost object is therefore counted
//!   by the first scan that finds its contents unchanged (so a lost object whose crc is not 0
//!   needs two scans, as in the kernel).
//! - Each unreferenced object old enough and not counted before is marked reported
//!   (`OBJECT_REPORTED`) and counted; the log gets `kmemleak: N new suspected memory leaks
//!   (see /sys/kernel/debug/kmemleak)` at `KERN_INFO` when N > 0. The mark is never taken off
//!   (the kernel's neither): an object referenced again drops out of the report text, and is
//!   shown again without being counted if it is lost again.
//!
//! `kmem_kmemleak_read` shows every object marked reported that the last scan found
//! unreferenced and that is still recorded, in allocation order, in the exit report's format;
//! `kmem_kmemleak_clear` makes each of them gray (`kmemleak_not_leak`: never reported again,
//! still scanned), or forgets every record once kmemleak is off. The exit scan is not
//! changed: it reports every object still unreferenced at exit, whether an on-demand scan
//! counted it before or not (the kernel has no scan at the end of a run; the exit report is
//! the program's final state), but not the objects `kmem_kmemleak_clear` made gray.
//!
//! Safety while other threads run: they may free any object (a `vfree` unmaps it) or
//! `dlclose` a library during the scan. So no memory is read directly: roots, objects and the
//! bytes of the report are copied with `process_vm_readv` on this process (`Copier`, in
//! `kmemleak/scan.rs`), which fails on a page that is not mapped instead of faulting; such a
//! page holds no references. Nothing relies on the order in which the free paths forget an
//! object and free it. The table's lock is held only to take a snapshot of the records
//! (address, size, colour, allocation number, checksum) and to apply the result to the records
//! that are still the same allocations (same allocation number); the scan runs on the
//! snapshot, with no lock of the table held. An address freed and reused during the scan is
//! read as whatever it then holds: stale values can only make an object look referenced (a
//! false negative). As in the kernel, whose scan stops no one either, a pointer another thread
//! moves during the scan from memory not yet read to memory already read can make its object
//! look unreferenced for that scan, and be reported if it is old enough and its contents did
//! not change (a false positive; the kernel's scan can make it too). If `process_vm_readv` is
//! refused (a seccomp filter), the scan fails with its errno.
//!
//! Lock order: `SCAN` first, then (one at a time, none held across the others) the loader's
//! lock (`dl_iterate_phdr`), the thread registry's, the pools' and the table's, which stays a
//! leaf; the log's locks are taken after the table's is released. So `kmem_kmemleak_scan` must
//! not be called from a library constructor (which runs under the loader's lock).

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int};

use kmem::{Level, Machine};

use super::scan::{Copier, Graph, Span};
use super::{Contents, HEX_DUMP_BYTES, Object, crc32_byte, describe, is_on, live_stack, lock, scan_lock, threads};
use crate::boundary::ffi_boundary;

/// The kernel's `MSECS_MIN_AGE` in jiffies: objects younger than 5 s are never reported.
const MIN_AGE_JIFFIES: u64 = 5000 * kmem_core::platform::HZ / 1000;

/// What the scan keeps of a record besides its [`Span`].
struct Seen {
    seq: u64,
    checksum: u32,
}

/// Runs a scan now (the module docs); `sp` is an address in the caller's frame, from which up
/// its stack is scanned. Returns the number of objects newly reported, or `Err(errno)`:
/// `EPERM` if kmemleak is off (the kernel's answer to `echo scan` then), or that of a refused
/// `process_vm_readv`.
pub(super) fn scan(m: &Machine, sp: usize) -> Result<usize, i32> {
    let _scan = scan_lock();
    if !is_on() {
        return Err(libc::EPERM);
    }
    let now = super::jiffies_now();
    // Roots first: each of these takes its own lock, before the table's (a leaf).
    let mut roots = super::writable_segments(|_, _| true);
    roots.extend(live_stack(sp));
    let mut values = threads::other_stacks_words();
    values.extend(crate::mempool::reserved_elements());
    let (spans, seen): (BTreeMap<usize, Span>, BTreeMap<usize, Seen>) = {
        let mut s = lock();
        s.last_scan = now;
        s.objects.iter().map(|(&a, o)| ((a, o.span()), (a, Seen { seq: o.seq, checksum: o.checksum }))).unzip()
    };
    let mut copier = Copier::new();
    let mut g = Graph::new(&spans);
    for v in values {
        g.visit(v);
    }
    for (start, len) in roots {
        g.scan_copied(&mut copier, start, len)?;
    }
    // Unreferenced objects modified since the last scan are gray until the next one.
    let mut sums = Vec::new();
    let white: Vec<(usize, usize)> =
        spans.iter().filter(|&(&a, _)| !g.is_referenced(a)).map(|(&a, o)| (a, o.size)).collect();
    for (addr, size) in white {
        let mut crc = 0u32;
        copier.copy(addr, size, &mut |_, bytes| crc = bytes.iter().fold(crc, |c, &b| crc32_byte(c, b)))?;
        if crc != seen[&addr].checksum {
            g.visit(addr);
        }
        sums.push((addr, crc));
    }
    g.drain_copied(&mut copier)?;
    let mut new = 0;
    {
        let mut s = lock();
        for (addr, crc) in sums {
            if let Some(o) = s.objects.get_mut(&addr)
                && o.seq == seen[&addr].seq
            {
                o.checksum = crc;
            }
        }
        for (addr, o) in s.objects.iter_mut() {
            // Objects recorded during the scan were not part of it (and are young).
            if seen.get(addr).is_none_or(|w| w.seq != o.seq) {
                continue;
            }
            o.white = !o.not_leak && !g.is_referenced(*addr);
            if o.white && o.jiffies.saturating_add(MIN_AGE_JIFFIES) <= now && !o.reported {
                o.reported = true;
                new += 1;
            }
        }
    }
    if new > 0 {
        crate::printk::flush(m);
        m.printk(
            Level::Info,
            &format!("kmemleak: {new} new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"),
        );
    }
    Ok(new)
}

/// Whether `cat /sys/kernel/debug/kmemleak` shows the object: reported, and unreferenced at
/// the last scan (`kmemleak_seq_show`'s `OBJECT_REPORTED && unreferenced_object`).
fn shown(o: &Object) -> bool {
    o.reported && o.white && !o.not_leak
}

/// The text `cat /sys/kernel/debug/kmemleak` shows (the module docs).
pub(super) fn read() -> String {
    let _scan = scan_lock();
    let mut picked: Vec<(usize, Object)> =
        lock().objects.iter().filter(|(_, o)| shown(o)).map(|(&a, o)| (a, o.clone())).collect();
    picked.sort_by_key(|(_, o)| o.seq);
    let mut copier = Copier::new();
    let mut text = String::new();
    for (addr, o) in &picked {
        // The first bytes as they are now (the object may be freed meanwhile: a page that is
        // gone shows fewer), and the checksum the scan kept, as the kernel prints it.
        let mut head = Vec::new();
        let _ = copier.copy(*addr, o.size.min(HEX_DUMP_BYTES), &mut |_, b| head.extend_from_slice(b));
        describe(&mut text, *addr, o, &Contents { head, crc: o.checksum });
    }
    text
}

/// `echo clear` (the module docs).
pub(super) fn clear() {
    let _scan = scan_lock();
    let mut s = lock();
    if !is_on() {
        s.objects.clear();
        return;
    }
    for o in s.objects.values_mut().filter(|o| shown(o)) {
        o.not_leak = true;
    }
}

/// `int kmem_kmemleak_scan(void)`: kmemleak's scan now, from the calling thread, while other
/// threads may go on allocating and freeing (the module docs). Returns the number of objects
/// newly reported, `-EPERM` if kmemleak is off (`KMEM_KMEMLEAK` unset, or after the exit
/// report), or `-errno` if `process_vm_readv` is refused.
#[unsafe(no_mangle)]
pub extern "C" fn kmem_kmemleak_scan() -> c_int {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    ffi_boundary("kmem_kmemleak_scan", -libc::EIO, |m| match scan(m, sp) {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(e) => -e,
    })
}

/// `ssize_t kmem_kmemleak_read(char *buf, size_t len)`: what `cat /sys/kernel/debug/kmemleak`
/// shows (the module docs), copied like `snprintf`; returns the text's full length (0 when
/// nothing is reported, or kmemleak is off), or `-EFAULT` for a NULL `buf` with `len > 0`.
///
/// # Safety
/// `buf` is NULL or has `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_kmemleak_read(buf: *mut c_char, len: usize) -> isize {
    ffi_boundary("kmem_kmemleak_read", -(libc::EIO as isize), |_| crate::proc::copy_out(&read(), buf, len))
}

/// `void kmem_kmemleak_clear(void)`: `echo clear > /sys/kernel/debug/kmemleak` (the module
/// docs).
#[unsafe(no_mangle)]
pub extern "C" fn kmem_kmemleak_clear() {
    ffi_boundary("kmem_kmemleak_clear", (), |_| clear());
}
