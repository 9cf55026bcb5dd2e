//! Debug poisoning of reserved elements (the kernel's `CONFIG_SLUB_DEBUG_ON` mempool checks,
//! MP-13, TST-16): an element pushed into the reserve is filled with `POISON_FREE` (0x6b) and a
//! final `POISON_END` (0xa5); when it is popped every byte is checked, a mismatch is reported as
//! `BUG: mempool element poison mismatch` (the kernel's `poison_error` lines), and the element
//! is filled with `POISON_INUSE` (0x5a).
//!
//! Which pools can be poisoned: every helper pool — page pools (`PAGE_SIZE << order` bytes at
//! the direct-map address), slab pools (`kmem_cache_size` bytes) and kmalloc pools (the pool's
//! size), as the newest kernel's `check_element`; from C these are the pools made with the
//! ABI's helper pairs ([`super::mempool_create_helper_node`]) — and custom pools whose creator declared the
//! element size ([`Mempool::set_element_size`]: the element pointer addresses that many bytes
//! the pool may overwrite while it holds the element). Not covered: custom pools without a
//! declared size (the pool cannot know what an element is), and HighMem page elements, which
//! have no direct-map address (the kernel maps each page with `kmap_local_page`; kmem-core has
//! no mapping window, so they pass through the reserve unpoisoned).
//!
//! While poisoning is on, `mempool_free` also checks under the lock what KASAN reports for the
//! mempool cases of TST-16: an element that is already in the reserve (double free) and, for
//! helper pools, a pointer that is not an element of the pool's kind (invalid free: not the
//! start of an object of the cache / a kmalloc block / an allocated page block of the order).
//! Both are reported and the free is ignored.
//!
//! Lock order: everything here runs under the pool's `reserve` lock (a leaf); reports go to the
//! platform's log, which takes no pool lock.

use core::ffi::c_void;
use core::fmt;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::{Mempool, Reserve};
use crate::platform::{Level, Platform};

/// `POISON_FREE`.
pub const POISON_FREE: u8 = 0x6b;
/// `POISON_END`.
pub const POISON_END: u8 = 0xa5;
/// `POISON_INUSE`.
pub const POISON_INUSE: u8 = 0x5a;

/// What a pool knows about an element's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementBytes {
    /// The element's bytes: address and size.
    Bytes(NonNull<u8>, usize),
    /// A valid element whose bytes are not mapped (a HighMem page), or that has none (a
    /// size-0 kmalloc pool's `ZERO_SIZE_PTR`).
    Unmapped,
    /// Not an element of this pool's kind.
    NotAnElement,
}

/// Finds an element's bytes.
///
/// # Safety
/// Called with a pointer given to the pool as an element and the pool's `pool_data`; the
/// pointer may be anything (it is checked, never trusted), and returned bytes must be the
/// element's own memory, which the pool owns while the element is in the reserve.
pub type ElementSpanFn = unsafe fn(element: *mut c_void, pool_data: *mut c_void) -> ElementBytes;

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

impl Mempool {
    /// Where `element`'s bytes are, as far as the pool knows.
    fn span(&self, r: &Reserve, element: NonNull<c_void>) -> ElementBytes {
        match self.span_fn {
            // SAFETY: `span_fn` is set only by the helper pairs, for their own `pool_data`.
            Some(f) => unsafe { f(element.as_ptr(), self.pool_data) },
            None if r.custom_size > 0 => ElementBytes::Bytes(element.cast(), r.custom_size),
            None => ElementBytes::Unmapped,
        }
    }

    /// `poison_element`, under the lock, for an element entering the reserve.
    #[cold]
    #[inline(never)]
    pub(super) fn poison_element(&self, r: &Reserve, element: NonNull<c_void>) {
        if let ElementBytes::Bytes(addr, size) = self.span(r, element) {
            // SAFETY: The element is entering the reserve: nobody else uses its memory.
            unsafe { poison((addr, size)) };
        }
    }

    /// `check_element`, under the lock, for the element that just left slot `nr`.
    #[cold]
    #[inline(never)]
    pub(super) fn check_poison(&self, r: &Reserve, element: NonNull<c_void>, nr: usize, caller: &Location<'_>) {
        if let ElementBytes::Bytes(addr, size) = self.span(r, element)
            && let Some(platform) = self.platform()
        {
            // SAFETY: The element just left the reserve: only we use its memory.
            unsafe { check(platform, self.shown_address(), (addr, size), nr, caller) };
        }
    }

    /// The debug checks of `mempool_free` (and `mempool_free_bulk`, `func` names which) while
    /// poisoning is on: false (after a report) for an element already in the reserve or a
    /// pointer that is not an element of the pool.
    pub(super) fn check_free(&self, r: &Reserve, element: NonNull<c_void>, func: &str, caller: &Location<'_>) -> bool {
        let Some(platform) = self.platform() else { return true };
        let pool = self.shown_address();
        // `ZERO_SIZE_PTR` is every element of a size-0 kmalloc pool: copies of it in the
        // reserve are no double free.
        let zero_size = element.as_ptr() as usize == crate::kmalloc::classes::ZERO_SIZE_PTR;
        let what = if !zero_size && r.stack.holds(self.curr_nr.load(Relaxed), element) {
            "double free: the element is already in the reserve"
        } else if self.span(r, element) == ElementBytes::NotAnElement {
            "invalid free: not an element of this pool"
        } else {
            return true;
        };
        platform.log(Level::Err, format_args!("BUG: {func}: {what}\nMempool {pool:p} element {:p}", element.as_ptr()));
        platform.dump_stack(caller);
        false
    }

    /// Turns debug poisoning of reserved elements on or off (MP-13; the kernel has it with
    /// `CONFIG_SLUB_DEBUG_ON`). Elements already in the reserve are poisoned at once. Returns
    /// false, changing nothing, for a custom pool that has not declared its element size.
    pub fn set_poisoning(&self, on: bool) -> bool {
        let r = self.reserve.lock();
        if self.span_fn.is_none() && r.custom_size == 0 {
            return false;
        }
        if on && !self.poison.load(Relaxed) {
            for i in 0..self.curr_nr.load(Relaxed) {
                self.poison_element(&r, r.stack.get(i));
            }
        }
        self.poison.store(on, Relaxed);
        self.update_free_locks();
        true
    }

    /// Declares that every element of this custom pool (`mempool_create` with the caller's
    /// callbacks) addresses `size` bytes of its own, so the pool can poison it. Returns false,
    /// changing nothing, for helper pools (they know their elements), for `size == 0`, and while
    /// poisoning is on.
    ///
    /// # Safety
    /// Every element `alloc_fn` returns, and every pointer given to `mempool_free`, points to
    /// at least `size` writable bytes that belong to the element alone while it is in the
    /// reserve.
    pub unsafe fn set_element_size(&self, size: usize) -> bool {
        let mut r = self.reserve.lock();
        if self.span_fn.is_some() || size == 0 || self.poison.load(Relaxed) {
            return false;
        }
        r.custom_size = size;
        true
    }
}
