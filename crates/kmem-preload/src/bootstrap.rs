//! The bootstrap allocator: a small, self-contained heap in one reserved arena of anonymous
//! memory, which never calls `malloc`. It serves every Rust allocation of the library (the
//! `#[global_allocator]`: the machine's own `Vec`s, `Arc`s and strings), C calls made while the
//! library is already inside kmem on the same thread (re-entry, e.g. glibc's `calloc` from
//! `__cxa_thread_atexit_impl` when kmem's thread-local first registers its destructor), and
//! C calls while another thread is still building the machine.
//!
//! Shape: the arena (reserved once, [`ARENA_BYTES`], sparse) is cut into runs of [`RUN`] bytes.
//! A run holds blocks of one small class (16 B .. 32 KiB, powers of two, so each block is
//! aligned to its size), or is the first of a span of `2^k` runs for one large block. Free
//! small blocks and free spans sit on LIFO lists per class and per `k`, linked through their
//! first word; `class_of` (one byte per run) tells `free` and `usable_size` what a pointer is.
//! Runs are taken from a bump pointer and never return to it; spans of 1 MiB and more go back
//! to their list after `MADV_DONTNEED`, so their memory goes back to the host.
//!
//! Invariant: every free block is on exactly one list; `class_of[r]` is the class of every run
//! `r` below the bump pointer that holds small blocks or starts a span.
//! Lock: one lock around all state, a leaf taken by nothing that can call back here. `fork`
//! holds it across the fork (`lock_for_fork`, `unlock_after_fork`).

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

thread_local! {
    /// This thread holds the bootstrap lock for a fork in progress (`lock_for_fork`).
    static FORK_HELD: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether this thread holds the bootstrap lock for a fork in progress.
fn held_for_fork() -> bool {
    FORK_HELD.try_with(core::cell::Cell::get).unwrap_or(false)
}

/// Bytes of address space reserved for the arena (sparse: untouched pages cost nothing).
pub const ARENA_BYTES: usize = 1 << 30;
/// Bytes per run; runs (and so large blocks) are aligned to this.
pub const RUN: usize = 64 << 10;
const NR_RUNS: usize = ARENA_BYTES / RUN;
/// Smallest block (and the guaranteed alignment, as glibc's malloc gives).
const MIN_SHIFT: u32 = 4;
/// Largest small block: half a run.
const MAX_SMALL_SHIFT: u32 = 15;
const NR_SMALL: usize = (MAX_SMALL_SHIFT - MIN_SHIFT + 1) as usize;
/// Spans of up to `2^MAX_SPAN_SHIFT` runs (the whole arena).
const MAX_SPAN_SHIFT: u32 = NR_RUNS.trailing_zeros();
/// Freed spans of `2^k` runs with `k` at least this (1 MiB) give their memory back to the host.
const DISCARD_SPAN_SHIFT: u32 = 4;
/// `class_of` marks: 0 unused; `1 + i` small class `i`; `SPAN | k` first run of a `2^k` span.
const SPAN: u8 = 0x80;

const _: () = assert!(ARENA_BYTES.is_power_of_two() && RUN.is_power_of_two());
const _: () = assert!(1 << MAX_SMALL_SHIFT < RUN);
const _: () = assert!(NR_SMALL < SPAN as usize);

struct State {
    /// Next unused run.
    bump: usize,
    /// Free small blocks per class.
    small: [*mut u8; NR_SMALL],
    /// The run being cut into blocks, per class: next block and end.
    carve: [(usize, usize); NR_SMALL],
    /// Free spans per `k`.
    spans: [*mut u8; MAX_SPAN_SHIFT as usize + 1],
    class_of: [u8; NR_RUNS],
    /// Bytes handed out and not freed (block sizes).
    live: usize,
}

/// The allocator: the arena's address, its state and its lock.
pub struct Bootstrap {
    base: AtomicUsize,
    locked: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `locked` held (see `with`), and the blocks it describes
// are plain memory owned by whoever allocated them.
unsafe impl Sync for Bootstrap {}

/// The one bootstrap heap of the library.
pub static BOOTSTRAP: Bootstrap = Bootstrap {
    base: AtomicUsize::new(0),
    locked: AtomicBool::new(false),
    state: UnsafeCell::new(State {
        bump: 0,
        small: [ptr::null_mut(); NR_SMALL],
        carve: [(0, 0); NR_SMALL],
        spans: [ptr::null_mut(); MAX_SPAN_SHIFT as usize + 1],
        class_of: [0; NR_RUNS],
        live: 0,
    }),
};

/// Where a block goes: small class `i` or a span of `2^k` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Small(usize),
    Span(u32),
}

/// The class serving `size` bytes aligned to `align` (a power of two), if any.
fn class_for(size: usize, align: usize) -> Option<Class> {
    let need = size.max(align).max(1 << MIN_SHIFT).checked_next_power_of_two()?;
    let shift = need.trailing_zeros();
    if shift <= MAX_SMALL_SHIFT {
        return Some(Class::Small((shift - MIN_SHIFT) as usize));
    }
    if align > RUN {
        return None;
    }
    let runs = need.div_ceil(RUN);
    let k = runs.trailing_zeros();
    (k <= MAX_SPAN_SHIFT).then_some(Class::Span(k))
}

impl Bootstrap {
    /// The arena's first address, reserving it on first use (0 if the host refused).
    fn arena(&self) -> usize {
        let base = self.base.load(Ordering::Acquire);
        if base != 0 {
            return base;
        }
        let Some(fresh) = crate::sys::map_arena(ARENA_BYTES, RUN) else { return 0 };
        match self.base.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh,
            Err(won) => {
                crate::sys::unmap(fresh, ARENA_BYTES);
                won
            }
        }
    }

    /// Whether `p` lies in the arena (so [`Bootstrap::free`] and `usable_size` know it).
    #[inline]
    pub fn contains(&self, p: usize) -> bool {
        let base = self.base.load(Ordering::Acquire);
        base != 0 && p.wrapping_sub(base) < ARENA_BYTES
    }

    fn lock(&self) {
        if held_for_fork() {
            return; // This thread holds it for the fork in progress (see `lock_for_fork`).
        }
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            crate::sys::relax();
        }
    }

    fn unlock(&self) {
        if held_for_fork() {
            return;
        }
        self.locked.store(false, Ordering::Release);
    }

    /// Runs `f` on the state under the lock.
    fn with<R>(&self, f: impl FnOnce(&mut State, usize) -> R) -> R {
        let base = self.arena();
        self.lock();
        // SAFETY: We hold the lock, so this is the only reference to the state.
        let r = f(unsafe { &mut *self.state.get() }, base);
        self.unlock();
        r
    }

    /// Takes the lock for a `fork` (prepare handler); the other two calls give it back.
    /// The holder (the forking thread) passes the lock until `unlock_after_fork`: other
    /// libraries' fork handlers may allocate on it meanwhile, and no other thread is in the
    /// library then (the gate is closed).
    pub fn lock_for_fork(&self) {
        self.lock();
        let _ = FORK_HELD.try_with(|h| h.set(true));
    }

    /// Gives the lock back after a `fork`, in the parent or in the child (where the holder is
    /// the only thread).
    pub fn unlock_after_fork(&self) {
        let _ = FORK_HELD.try_with(|h| h.set(false));
        self.unlock();
    }

    /// `size` bytes aligned to `align` (a power of two; at least 16 is always given), or `None`.
    pub fn alloc(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        let class = class_for(size, align)?;
        let p = self.with(|st, base| {
            if base == 0 {
                return None;
            }
            match class {
                Class::Small(i) => st.alloc_small(base, i),
                Class::Span(k) => st.alloc_span(base, k),
            }
        })?;
        NonNull::new(p)
    }

    /// Frees a block of this heap; `p` must be one [`Bootstrap::alloc`] returned, not yet freed.
    /// A pointer that is not the start of a live block is ignored.
    pub fn free(&self, p: *mut u8) {
        if !self.contains(p as usize) {
            return;
        }
        self.with(|st, base| st.free(base, p));
    }

    /// The usable bytes of the block at `p` (0 if `p` is not one of this heap's blocks).
    pub fn usable_size(&self, p: *const u8) -> usize {
        if !self.contains(p as usize) {
            return 0;
        }
        self.with(|st, base| match st.class_at(base, p as usize) {
            Some(Class::Small(i)) => 1 << (i as u32 + MIN_SHIFT),
            Some(Class::Span(k)) => RUN << k,
            None => 0,
        })
    }

    /// Bytes handed out and not freed.
    pub fn live_bytes(&self) -> usize {
        self.with(|st, _| st.live)
    }
}

impl State {
    fn alloc_small(&mut self, base: usize, i: usize) -> Option<*mut u8> {
        let size = 1usize << (i as u32 + MIN_SHIFT);
        let head = self.small[i];
        let p = if !head.is_null() {
            // SAFETY: Free blocks on the list are ours and hold the next pointer in their
            // first word (written by `free` or the carving below).
            self.small[i] = unsafe { head.cast::<*mut u8>().read() };
            head
        } else {
            let (next, end) = self.carve[i];
            if next < end {
                self.carve[i].0 = next + size;
                next as *mut u8
            } else {
                let run = self.take_runs(0)?;
                self.class_of[run] = 1 + i as u8;
                let start = base + run * RUN;
                self.carve[i] = (start + size, start + RUN);
                start as *mut u8
            }
        };
        self.live += size;
        Some(p)
    }

    fn alloc_span(&mut self, base: usize, k: u32) -> Option<*mut u8> {
        let head = self.spans[k as usize];
        let p = if !head.is_null() {
            // SAFETY: As for small blocks: a free span holds the next pointer in its first word.
            self.spans[k as usize] = unsafe { head.cast::<*mut u8>().read() };
            head
        } else {
            let run = self.take_runs(k)?;
            (base + run * RUN) as *mut u8
        };
        self.class_of[(p as usize - base) / RUN] = SPAN | k as u8;
        self.live += RUN << k;
        Some(p)
    }

    /// `2^k` fresh runs from the bump pointer.
    fn take_runs(&mut self, k: u32) -> Option<usize> {
        let run = self.bump;
        let end = run.checked_add(1 << k)?;
        (end <= NR_RUNS).then(|| {
            self.bump = end;
            run
        })
    }

    fn class_at(&self, base: usize, p: usize) -> Option<Class> {
        let offset = p - base;
        let run = offset / RUN;
        if run >= self.bump {
            return None;
        }
        match self.class_of[run] {
            0 => None,
            c if c & SPAN != 0 => offset.is_multiple_of(RUN).then_some(Class::Span(u32::from(c & !SPAN))),
            c => {
                let i = usize::from(c - 1);
                offset.is_multiple_of(1 << (i as u32 + MIN_SHIFT)).then_some(Class::Small(i))
            }
        }
    }

    /// Puts the block back. Spans of [`DISCARD_SPAN_SHIFT`] and more give their memory (all but
    /// the first page, which holds the link) back to the host first, under the lock, so no one
    /// can take the span meanwhile.
    fn free(&mut self, base: usize, p: *mut u8) {
        let Some(class) = self.class_at(base, p as usize) else { return };
        if let Class::Span(k) = class
            && k >= DISCARD_SPAN_SHIFT
        {
            crate::sys::discard(p as usize + crate::sys::PAGE, (RUN << k) - crate::sys::PAGE);
        }
        let (list, size) = match class {
            Class::Small(i) => (&mut self.small[i], 1usize << (i as u32 + MIN_SHIFT)),
            Class::Span(k) => (&mut self.spans[k as usize], RUN << k),
        };
        // SAFETY: `p` starts a block of this heap (checked by `class_at`) that its owner gave
        // back; its first word holds the list link from now on.
        unsafe { p.cast::<*mut u8>().write(*list) };
        *list = p;
        self.live -= size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(class_for(0, 1), Some(Class::Small(0)));
        assert_eq!(class_for(16, 16), Some(Class::Small(0)));
        assert_eq!(class_for(17, 8), Some(Class::Small(1)));
        assert_eq!(class_for(8, 4096), Some(Class::Small(8)));
        assert_eq!(class_for(32 << 10, 1), Some(Class::Small(NR_SMALL - 1)));
        assert_eq!(class_for((32 << 10) + 1, 1), Some(Class::Span(0)));
        assert_eq!(class_for(RUN * 3, 1), Some(Class::Span(2)));
        assert_eq!(class_for(16, RUN * 2), None);
        assert_eq!(class_for(usize::MAX, 1), None);
    }
}
