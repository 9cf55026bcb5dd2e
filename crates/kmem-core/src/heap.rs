//! [`KmallocHeap`]: kmalloc as Rust's `#[global_allocator]` for a `no_std` kernel or board.
//!
//! The heap is a `static` that starts empty; boot code builds a [`Kmem`] over its memory and
//! [`install`](KmallocHeap::install)s it, once. From then on `Box`, `Vec`, `String` and the rest
//! of `alloc` are kmalloc memory:
//!
//! - a layout goes to `kmalloc` with its size rounded up to its alignment
//!   ([`kmalloc_layout_size`], which KM-6 turns into an aligned block), `alloc_zeroed` to
//!   `kzalloc`, `realloc` to `krealloc` (the same block while it fits, KM-8; the old block
//!   intact when it fails, KM-9), `dealloc` to `kfree`;
//! - the mask is `GFP_KERNEL`, or `GFP_ATOMIC` when the platform says the caller is in atomic
//!   context ([`Platform::in_atomic`]): a `Box::new` under a spin lock must not sleep, as
//!   Rust-for-Linux makes its callers pass `GFP_ATOMIC` there;
//! - layouts above `KMALLOC_MAX_SIZE` (4 MiB) after rounding, and every allocation before
//!   `install`, fail (null): a `no_std` heap has nothing to fall back on, and Rust's
//!   allocation-error handler reports it;
//! - the platform's methods run inside kmalloc, `log` under the slab's locks (debug reports are
//!   printed under `list_lock`, as the kernel's): they must not allocate from this heap, or a
//!   report would deadlock on a lock its own caller holds;
//! - nothing unwinds: a panic inside a method (a platform callback's, or a bug's) aborts after
//!   its message, since a `GlobalAlloc` that unwinds is undefined behaviour.
//!
//! Invariant: `state` only moves `EMPTY → INSTALLING → READY`, and `kmem` is written exactly
//! once, by the one `install` that wins `EMPTY → INSTALLING`, before `READY` is published with
//! `Release`. Readers hand out `&Kmem` only after an `Acquire` load of `READY`, and nothing
//! writes or drops `kmem` afterwards (a `static` is never dropped), so every reference is valid
//! for `'static`. No lock is taken here; the kmalloc calls take the allocator's own.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU8;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::abort::in_global_alloc;
use crate::gfp::{GFP_ATOMIC, GFP_KERNEL, Gfp};
use crate::kmalloc::classes::kmalloc_layout_size;
use crate::kmem::Kmem;
use crate::platform::{Level, Platform};

const EMPTY: u8 = 0;
const INSTALLING: u8 = 1;
const READY: u8 = 2;

/// kmalloc on an installed [`Kmem`], as a [`GlobalAlloc`] (see the [module docs](self)).
///
/// ```no_run
/// # use core::fmt::Arguments;
/// # use kmem_core::platform::{Level, Platform};
/// # use kmem_core::waitq::WaitWord;
/// use kmem_core::{KmallocHeap, Kmem};
///
/// struct Board; // The board's CPUs, clock and log (see `Platform`).
/// # // SAFETY: No CPU slot is ever handed out.
/// # unsafe impl Platform for Board {
/// #     fn nr_cpus(&self) -> usize { 1 }
/// #     fn cpu(&self) -> Option<usize> { None }
/// #     fn log(&self, _: Level, _: Arguments<'_>) {}
/// #     fn now_ns(&self) -> u64 { 0 }
/// #     fn wait(&self, _: &WaitWord, _: u32, _: u64) {}
/// #     fn wake_all(&self, _: &WaitWord) {}
/// # }
///
/// #[global_allocator]
/// static HEAP: KmallocHeap<Board> = KmallocHeap::new();
///
/// /// Boot code, once the page allocator and `Kmem` are built over the board's RAM.
/// fn heap_up(kmem: Kmem<Board>) {
///     let Ok(kmem) = HEAP.install(kmem) else { panic!("installed twice") };
///     let v: Vec<u32> = (0..100).collect(); // kmalloc-512
///     // SAFETY: `v`'s block, live.
///     assert_eq!(unsafe { kmem.ksize(v.as_ptr().cast()) }, 512);
/// }
/// # fn main() {}
/// ```
pub struct KmallocHeap<P: Platform> {
    state: AtomicU8,
    kmem: UnsafeCell<MaybeUninit<Kmem<P>>>,
}

// SAFETY: `kmem` is written once, before `READY` is published (module invariant), and only
// shared references to it exist afterwards; sharing those across threads needs `Kmem<P>: Sync`.
unsafe impl<P: Platform> Sync for KmallocHeap<P> where Kmem<P>: Sync {}

impl<P: Platform> Default for KmallocHeap<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> KmallocHeap<P> {
    /// An empty heap: every allocation fails until [`install`](Self::install).
    pub const fn new() -> Self {
        Self { state: AtomicU8::new(EMPTY), kmem: UnsafeCell::new(MaybeUninit::uninit()) }
    }

    /// Makes `kmem` the heap's allocator for good and registers its slab shrinker with its
    /// page allocator's reclaim (sound here: a `static` never moves or drops). If the shrinker
    /// registry is full, the heap still works and the platform log says the shrinker is missing.
    ///
    /// # Errors
    /// `kmem` back if a `Kmem` was installed (or is being installed) already.
    // `Kmem` is large (tens of KiB: per-CPU lists, cache tables); the boot code's stack holds
    // it already, and handing it back whole is what a refused install owes the caller.
    #[allow(clippy::result_large_err)]
    pub fn install(&'static self, kmem: Kmem<P>) -> Result<&'static Kmem<P>, Kmem<P>>
    where
        P: 'static,
    {
        if self.state.compare_exchange(EMPTY, INSTALLING, Acquire, Relaxed).is_err() {
            return Err(kmem);
        }
        // SAFETY: Winning `EMPTY → INSTALLING` makes this the only writer, and no reader looks
        // before `READY` (module invariant).
        let kmem: &'static Kmem<P> = unsafe { (*self.kmem.get()).write(kmem) };
        self.state.store(READY, Release);
        // SAFETY: `kmem` lives in this `static` for good: it never moves and is never dropped.
        if unsafe { kmem.register_reclaim() }.is_none() {
            kmem.platform()
                .log(Level::Warning, format_args!("kmem: heap's slab shrinker not registered (registry full)\n"));
        }
        Ok(kmem)
    }

    /// The installed `Kmem`, if any.
    #[inline]
    pub fn kmem(&self) -> Option<&Kmem<P>> {
        if self.state.load(Acquire) != READY {
            return None;
        }
        // SAFETY: `READY` was published after the one write, and nothing writes again (module
        // invariant).
        Some(unsafe { (*self.kmem.get()).assume_init_ref() })
    }

    /// `GFP_KERNEL`, or `GFP_ATOMIC` in atomic context.
    #[inline]
    fn gfp(kmem: &Kmem<P>) -> Gfp {
        if kmem.platform().in_atomic() { GFP_ATOMIC } else { GFP_KERNEL }
    }

    #[inline]
    fn alloc_with(&self, layout: Layout, zero: bool) -> *mut u8 {
        let Some(kmem) = self.kmem() else { return ptr::null_mut() };
        in_global_alloc(|| {
            kmem.kmalloc_layout(layout, Self::gfp(kmem), zero).map_or(ptr::null_mut(), |p| p.as_ptr().cast())
        })
    }
}

// SAFETY: Every block comes from kmalloc of at least `layout.size()` bytes, aligned (rounded
// size, KM-6, re-checked), valid until the `kfree` that only `dealloc`/`realloc` make. A block
// can only exist once the heap is installed, and the installed `Kmem` stays for good. Nothing
// unwinds (`in_global_alloc`).
unsafe impl<P: Platform> GlobalAlloc for KmallocHeap<P> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.alloc_with(layout, false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.alloc_with(layout, true)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if let Some(kmem) = self.kmem() {
            // SAFETY: `ptr` came from `alloc*`/`realloc` (the caller's contract), so it is a
            // live kmalloc block of `kmem`, and the caller gives it up.
            in_global_alloc(|| unsafe { kmem.kfree(ptr) });
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(kmem) = self.kmem() else { return ptr::null_mut() };
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else { return ptr::null_mut() };
        let Some(size) = kmalloc_layout_size(new_layout) else { return ptr::null_mut() };
        in_global_alloc(|| {
            // SAFETY: A live kmalloc block of `kmem` owned by the caller. `size` (non-zero: the
            // caller's `new_size` is) is a multiple of the alignment, so a moved block is aligned
            // (KM-6, which holds up to 4 MiB on the direct maps `PageAllocator::new` accepts) and a
            // kept one already was; on failure the block is untouched (KM-9).
            unsafe { kmem.krealloc(ptr, size, Self::gfp(kmem)) }.map_or(ptr::null_mut(), NonNull::as_ptr)
        })
    }
}
