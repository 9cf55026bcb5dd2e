//! `vread_iter` from C (`linux/vmalloc.h`, SEMANTICS §5.4) and the part of `struct iov_iter`
//! it needs (`linux/uio.h`): a destination that is one buffer (`ITER_UBUF`) or an array of
//! `struct kvec` (`ITER_KVEC`), set up by the header's `iov_iter_ubuf`/`iov_iter_kvec`.
//!
//! The read itself is [`kmem::Machine::vread_iter`], once per destination segment (each under
//! the vmap lock, which is dropped between segments: a read is a snapshot per segment, as a
//! `/proc/kcore` read is per call). What the kernel's `copy_to_iter` adds is kept: at most
//! `iov_iter_count(iter)` bytes are written, so `vread_iter` returns `min(count, room)` after
//! its overflow clamp, and the iterator is advanced by what was written (`count` down,
//! `iov_offset` up, a filled kvec stepped past with `nr_segs` down). A source iterator or one
//! of another kind is refused as `copy_to_iter` refuses it (`WARN_ON_ONCE`, nothing copied: 0).
//!
//! Invariant of an iterator kmem accepts: `iter_type` is `ITER_UBUF` or `ITER_KVEC`, the
//! buffer (or each of the `nr_segs` kvecs) is writable from `iov_offset` for `count` bytes (for
//! a kvec: to its `iov_len`), and `iov_offset` lies within the current kvec. What can be
//! checked is: another type, a NULL buffer, kvec array or `iov_base`, and an `iov_offset` past
//! the current kvec are reported, and the read stops there.
//!
//! Lock order: none of this module's own; [`kmem::Machine::vread_iter`] takes only the vmap
//! lock, per segment.

use std::ffi::{c_char, c_long, c_ulong, c_void};
use std::panic::Location;

use kmem::Machine;

use crate::boundary::{ffi_boundary, report_null};

/// `ITER_UBUF`.
pub const ITER_UBUF: u8 = 0;
/// `ITER_KVEC`.
pub const ITER_KVEC: u8 = 3;

/// `struct kvec`: one segment of a kvec iterator.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kvec {
    /// First byte.
    pub iov_base: *mut c_void,
    /// Bytes.
    pub iov_len: usize,
}

/// `struct iov_iter` as `linux/uio.h` lays it out (see there).
#[repr(C)]
#[derive(Debug)]
pub struct iov_iter {
    /// `ITER_UBUF` or `ITER_KVEC`.
    pub iter_type: u8,
    /// Unused by kmem (every copy here is nofault).
    pub nofault: bool,
    /// `ITER_SOURCE`: the iterator is read from, and `vread_iter` refuses it.
    pub data_source: bool,
    /// Offset in the buffer (`ITER_UBUF`) or in the current kvec (`ITER_KVEC`).
    pub iov_offset: usize,
    /// The current kvec (`ITER_KVEC`).
    pub kvec: *const kvec,
    /// The buffer (`ITER_UBUF`).
    pub ubuf: *mut c_void,
    /// Bytes left.
    pub count: usize,
    /// Kvecs left, the current one included (1 for `ITER_UBUF`).
    pub nr_segs: c_ulong,
}

/// The kernel's `WARN_ON_ONCE` in `copy_to_iter` (and kmem's for what its iterator lacks).
#[track_caller]
fn warn(m: &Machine, what: &str) {
    m.printk(kmem::Level::Warning, &format!("WARNING: vread_iter: {what}; nothing copied\n"));
    kmem_core::platform::Platform::dump_stack(m.platform(), Location::caller());
}

/// `long vread_iter(struct iov_iter *iter, const char *addr, size_t count)`: reads `count`
/// bytes of the vmalloc space from `addr` into `iter` (holes, guard pages, ioremap and freed
/// areas as zeros), clamping a range that wraps the address space to `-addr` bytes; returns
/// the bytes written (zeros included) and advances `iter` by as much. A NULL `iter` is
/// reported and gives 0.
///
/// # Safety
/// `iter` is NULL or an iterator set up by `iov_iter_ubuf`/`iov_iter_kvec` whose buffers are
/// writable for their lengths and used by nothing else during the call; and no byte the call
/// reads is written at its direct-map address meanwhile (the pages of a `vmap` or
/// `vm_map_ram` area are read there: [`kmem::Machine::vread_iter`]'s contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vread_iter(iter: *mut iov_iter, addr: *const c_char, count: usize) -> c_long {
    ffi_boundary("vread_iter", 0, |m| {
        let caller = Location::caller();
        // SAFETY: NULL or an iterator C gives us for the call (the contract above).
        let Some(it) = (unsafe { iter.as_mut() }) else {
            report_null(m, "vread_iter", "struct iov_iter pointer", caller);
            return 0;
        };
        if it.data_source {
            warn(m, "the iterator is a source (ITER_SOURCE), not a destination");
            return 0;
        }
        let addr = addr as usize;
        // The overflow clamp first, as `vread_iter` does before it copies anything.
        let count = if addr.wrapping_add(count) < count { addr.wrapping_neg() } else { count };
        let want = count.min(it.count);
        let done = match it.iter_type {
            // SAFETY: The iterator's buffer is C's, writable and unshared, and the bytes read
            // are not written meanwhile (the contract above).
            ITER_UBUF => unsafe { read_ubuf(m, it, addr, want) },
            // SAFETY: As above, for its kvecs.
            ITER_KVEC => unsafe { read_kvec(m, it, addr, want) },
            other => {
                warn(m, &format!("iterator type {other} is not ITER_UBUF or ITER_KVEC"));
                return 0;
            }
        };
        it.count -= done;
        c_long::try_from(done).unwrap_or(c_long::MAX)
    })
}

/// Reads `want` bytes into the buffer of an `ITER_UBUF` iterator; returns the bytes written.
///
/// # Safety
/// `it.ubuf` is writable for `it.iov_offset + it.count` bytes and unshared for the call; the
/// bytes read are not written meanwhile ([`kmem::Machine::vread_iter`]'s contract).
unsafe fn read_ubuf(m: &Machine, it: &mut iov_iter, addr: usize, want: usize) -> usize {
    if want == 0 {
        return 0;
    }
    if it.ubuf.is_null() {
        report_null(m, "vread_iter", "ITER_UBUF buffer", Location::caller());
        return 0;
    }
    // SAFETY: The bytes from `iov_offset` on, `count >= want` of them, are the caller's buffer.
    let buf = unsafe { std::slice::from_raw_parts_mut(it.ubuf.cast::<u8>().add(it.iov_offset), want) };
    // SAFETY: The caller's promise that nothing writes the bytes read meanwhile.
    let done = unsafe { m.vread_iter(buf, addr) };
    it.iov_offset += done;
    done
}

/// Reads `want` bytes into the kvecs of an `ITER_KVEC` iterator, segment after segment;
/// returns the bytes written. Empty kvecs are stepped over, as the kernel's iteration does.
///
/// # Safety
/// `it.kvec` points to `it.nr_segs` kvecs whose buffers are writable for their lengths and
/// unshared for the call; the bytes read are not written meanwhile
/// ([`kmem::Machine::vread_iter`]'s contract).
unsafe fn read_kvec(m: &Machine, it: &mut iov_iter, addr: usize, want: usize) -> usize {
    let mut done = 0;
    while done < want && it.nr_segs > 0 {
        if it.kvec.is_null() {
            report_null(m, "vread_iter", "ITER_KVEC array", Location::caller());
            break;
        }
        // SAFETY: `nr_segs > 0` kvecs are left at `kvec` (the contract).
        let seg = unsafe { *it.kvec };
        let Some(room) = seg.iov_len.checked_sub(it.iov_offset) else {
            warn(m, "iov_offset is past the end of the current kvec");
            break;
        };
        let n = room.min(want - done);
        if n > 0 {
            if seg.iov_base.is_null() {
                report_null(m, "vread_iter", "kvec iov_base", Location::caller());
                break;
            }
            // SAFETY: `n` bytes from `iov_offset` lie inside the segment (`n <= room`), which is
            // the caller's writable buffer.
            let buf = unsafe { std::slice::from_raw_parts_mut(seg.iov_base.cast::<u8>().add(it.iov_offset), n) };
            // SAFETY: The caller's promise that nothing writes the bytes read meanwhile.
            let got = unsafe { m.vread_iter(buf, addr.wrapping_add(done)) };
            done += got;
            it.iov_offset += got;
            if got < n {
                break;
            }
        }
        if it.iov_offset == seg.iov_len {
            // SAFETY: Still inside the array (`nr_segs > 0` before the step): one past the last
            // kvec at most, never dereferenced once `nr_segs` is 0.
            it.kvec = unsafe { it.kvec.add(1) };
            it.nr_segs -= 1;
            it.iov_offset = 0;
        }
    }
    done
}
