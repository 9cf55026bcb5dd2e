//! Debug poisoning of reserved elements (the kernel's `CONFIG_SLUB_DEBUG_ON` mempool checks,
//! MP-13): an element pushed into the reserve is filled with `POISON_FREE` (0x6b) and a final
//! `POISON_END` (0xa5); when it is popped every byte is checked, a mismatch is reported as
//! `BUG: mempool element poison mismatch`, and the element is filled with `POISON_INUSE` (0x5a).
//! Only pools whose element bytes the pool can find (the helper pairs give an
//! [`ElementSpanFn`]) can be poisoned.

use core::ffi::c_void;
use core::fmt;
use core::panic::Location;
use core::ptr::NonNull;

use crate::platform::{Level, Platform};

/// `POISON_FREE`.
pub const POISON_FREE: u8 = 0x6b;
/// `POISON_END`.
pub const POISON_END: u8 = 0xa5;
/// `POISON_INUSE`.
pub const POISON_INUSE: u8 = 0x5a;

/// Finds an element's bytes: `(address, size)`, or `None` if they are not mapped.
///
/// # Safety
/// Called with an element of the pool and the pool's `pool_data`; the returned bytes must be
/// the element's own memory, which the pool owns while the element is in the reserve.
pub type ElementSpanFn = unsafe fn(element: *mut c_void, pool_data: *mut c_void) -> Option<(NonNull<u8>, usize)>;

/// `__poison_element`.
///
/// # Safety
/// `(addr, size)` is an element's memory that nobody else uses (it is entering the reserve).
pub(super) unsafe fn poison((addr, size): (NonNull<u8>, usize)) {
    if size == 0 {
        return;
    }
    // SAFETY: The caller's promise: `size` bytes at `addr` are ours to write.
    unsafe {
        addr.as_ptr().write_bytes(POISON_FREE, size - 1);
        addr.as_ptr().add(size - 1).write(POISON_END);
    }
}

/// `__check_element`: reports the first byte that is not the poison pattern, then fills the
/// element with `POISON_INUSE`.
///
/// # Safety
/// `(addr, size)` is an element's memory that nobody else uses (it is leaving the reserve).
pub(super) unsafe fn check(
    platform: &dyn Platform,
    pool: *const c_void,
    (addr, size): (NonNull<u8>, usize),
    nr: usize,
    caller: &Location<'_>,
) {
    // SAFETY: The caller's promise: `size` bytes at `addr` are ours to read and write.
    let bytes = unsafe { core::slice::from_raw_parts_mut(addr.as_ptr(), size) };
    let expected = |i: usize| if i + 1 < size { POISON_FREE } else { POISON_END };
    if let Some(bad) = (0..size).find(|&i| bytes[i] != expected(i)) {
        let start = bad.saturating_sub(8);
        let end = (bad + 8).min(size);
        let dump = Hex { bytes: &bytes[start..end], lead: start > 0, trail: end < size };
        platform.log(
            Level::Err,
            format_args!(
                "BUG: mempool element poison mismatch\nMempool {pool:p} size {size}\n nr={nr} @ {:p}: {dump}",
                addr.as_ptr()
            ),
        );
        platform.dump_stack(caller);
    }
    bytes.fill(POISON_INUSE);
}

/// `%s0x` followed by `%x ` per byte and `...` where the element goes on.
struct Hex<'a> {
    bytes: &'a [u8],
    lead: bool,
    trail: bool,
}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.lead { "... 0x" } else { "0x" })?;
        for b in self.bytes {
            write!(f, "{b:x} ")?;
        }
        if self.trail {
            f.write_str("...")?;
        }
        Ok(())
    }
}
