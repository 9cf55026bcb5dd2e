//! [`KmemAlloc`]: kmalloc on the process-wide default machine as Rust's `#[global_allocator]`.
//!
//! ```no_run
//! #[global_allocator]
//! static KMEM: kmem::KmemAlloc = kmem::KmemAlloc::new();
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect(); // 8000 bytes from `kmalloc-8k`.
//!     assert_eq!(v.iter().sum::<u64>(), 499_500);
//! }
//! ```
//!
//! # Where each allocation goes
//! - Layouts kmalloc can serve ([`kmalloc_size`]: up to `KMALLOC_MAX_SIZE`, 4 MiB, after
//!   rounding the size up to the alignment) go to `kmalloc` with `GFP_KERNEL` (`GFP_ATOMIC`
//!   inside [`crate::context::atomic_section`]); zeroed ones to `kzalloc`, `realloc` to
//!   `krealloc` (same pointer while it fits).
//! - Larger layouts go to the system allocator: a std program must not abort because one
//!   vector outgrew the largest kmalloc block.
//! - **Bootstrap.** The default machine ([`crate::default_machine_with`], built from the
//!   `KMEM_*` variables with the profile given here) is built on the first allocation. The
//!   build allocates too; those allocations, and those of other threads while it runs, go to
//!   the system allocator. If the build fails, everything goes to the system allocator.
//! - **Re-entry.** While kmem itself runs (inside an allocation of this allocator, or while it
//!   logs, names a task or registers a thread's CPU slot) allocations go to the system
//!   allocator: kmem never re-enters itself, so no kmem lock is ever taken twice by one thread.
//!
//! Frees are routed by address: a pointer inside the default machine's direct map is
//! `kfree`d; anything else came from the system allocator. Inside a re-entry scope kmem only
//! frees what it allocated there (system memory), so its frees do not re-enter it either. The counts of system allocations
//! are in [`KmemAlloc::system_fallbacks`].
//!
//! No method unwinds: a panic inside kmem aborts the process after its message
//! (`kmem_core::abort::in_global_alloc`; a `GlobalAlloc` must not unwind).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize};

use kmem_core::Gfp;
use kmem_core::abort::in_global_alloc;
use kmem_core::gfp::{GFP_ATOMIC, GFP_KERNEL};
/// The kmalloc size that gives a layout its alignment (the core's `kmalloc_layout_size`).
pub use kmem_core::kmalloc::classes::kmalloc_layout_size as kmalloc_size;

use crate::{Machine, Profile};

thread_local! {
    /// How deep the thread is in kmem code that must not re-enter kmem (no destructor, so it
    /// is usable at any point of a thread's life, TLS teardown included).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// While alive, [`KmemAlloc`] serves the thread from the system allocator.
#[must_use = "the scope ends when the guard is dropped"]
pub(crate) struct SystemScope(());

/// Enters a [`SystemScope`] (nests).
pub(crate) fn system_scope() -> SystemScope {
    let _ = DEPTH.try_with(|d| d.set(d.get() + 1));
    SystemScope(())
}

impl Drop for SystemScope {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
    }
}

/// Enters a [`SystemScope`] unless the thread is already in one.
#[inline]
fn enter_kmem() -> Option<SystemScope> {
    let outer = DEPTH.try_with(|d| {
        let depth = d.get();
        d.set(depth + 1);
        depth == 0
    });
    match outer {
        Ok(true) => Some(SystemScope(())),
        Ok(false) => {
            let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
            None
        }
        Err(_) => None,
    }
}

/// `GFP_KERNEL`, or `GFP_ATOMIC` inside an atomic section.
#[inline]
fn global_gfp() -> Gfp {
    if crate::context::in_atomic() { GFP_ATOMIC } else { GFP_KERNEL }
}

const UNINIT: u8 = 0;
const BUILDING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static MACHINE: AtomicPtr<Machine> = AtomicPtr::new(ptr::null_mut());
static SYS_BOOTSTRAP: AtomicUsize = AtomicUsize::new(0);
static SYS_NESTED: AtomicUsize = AtomicUsize::new(0);
static SYS_LARGE: AtomicUsize = AtomicUsize::new(0);

/// Allocations [`KmemAlloc`] sent to the system allocator, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemFallbacks {
    /// Made while the default machine was being built, or with no machine (build failed).
    pub bootstrap: usize,
    /// Made by kmem itself while it ran (logging, task names, CPU slot registration).
    pub nested: usize,
    /// Layouts above `KMALLOC_MAX_SIZE` (4 MiB) after alignment.
    pub large: usize,
}

/// kmalloc as a [`GlobalAlloc`], on the default machine (see the [module docs](self)).
#[derive(Clone, Copy, Debug)]
pub struct KmemAlloc {
    profile: Profile,
}

impl Default for KmemAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl KmemAlloc {
    /// On the default machine with the `x86_64` profile (unless `KMEM_PROFILE` says otherwise).
    pub const fn new() -> Self {
        Self { profile: Profile::X86_64 }
    }

    /// On the default machine with `profile` (unless `KMEM_PROFILE` says otherwise). The first
    /// build of the default machine decides, whoever makes it.
    pub const fn with_profile(profile: Profile) -> Self {
        Self { profile }
    }

    /// The machine allocations go to: the default machine, built now if no one has (its build
    /// allocates from the system allocator). `None` while another thread builds it, or if the
    /// build failed.
    pub fn machine(&self) -> Option<&'static Machine> {
        let m = MACHINE.load(Acquire);
        if m.is_null() {
            return self.build();
        }
        // SAFETY: `MACHINE` only ever holds the `&'static` default machine (stored in `build`).
        Some(unsafe { &*m })
    }

    /// Builds the default machine, once; the caller is in a [`SystemScope`] or is user code.
    #[cold]
    #[inline(never)]
    fn build(&self) -> Option<&'static Machine> {
        if STATE.compare_exchange(UNINIT, BUILDING, AcqRel, Acquire).is_err() {
            return None;
        }
        let _heap = system_scope();
        match crate::default_machine_with(self.profile) {
            Ok(m) => {
                MACHINE.store(ptr::from_ref(m).cast_mut(), Release);
                STATE.store(READY, Release);
                Some(m)
            }
            Err(_) => {
                STATE.store(FAILED, Release);
                None
            }
        }
    }

    /// How many allocations went to the system allocator, by reason (since the process began).
    pub fn system_fallbacks() -> SystemFallbacks {
        SystemFallbacks {
            bootstrap: SYS_BOOTSTRAP.load(Relaxed),
            nested: SYS_NESTED.load(Relaxed),
            large: SYS_LARGE.load(Relaxed),
        }
    }

    /// The default machine, if `ptr` lies in its direct map (so kmem handed it out).
    #[inline]
    fn owner(ptr: *const u8) -> Option<&'static Machine> {
        // SAFETY: As in `machine`.
        let m = unsafe { MACHINE.load(Acquire).as_ref() }?;
        m.virt_to_pfn(ptr).is_some().then_some(m)
    }

    /// `kmalloc`/`kzalloc` of `layout`, or the system allocator (see the module docs).
    #[inline]
    fn alloc_with(&self, layout: Layout, zero: bool) -> *mut u8 {
        let sys = |counter: &AtomicUsize| {
            counter.fetch_add(1, Relaxed);
            // SAFETY: `layout` has a non-zero size (our caller's `GlobalAlloc` contract).
            unsafe { if zero { System.alloc_zeroed(layout) } else { System.alloc(layout) } }
        };
        if kmalloc_size(layout).is_none() {
            return sys(&SYS_LARGE);
        }
        let Some(_kmem) = enter_kmem() else {
            // Nested calls while the machine is not ready are the build's own allocations.
            return sys(if STATE.load(Relaxed) == READY { &SYS_NESTED } else { &SYS_BOOTSTRAP });
        };
        let Some(m) = self.machine() else { return sys(&SYS_BOOTSTRAP) };
        in_global_alloc(|| m.kmalloc_layout(layout, global_gfp(), zero).map_or(ptr::null_mut(), |p| p.as_ptr().cast()))
    }
}

// SAFETY: Every block comes from kmalloc (valid until kfree, aligned per `kmalloc_size` and
// re-checked) or from `System` with the same layout; `dealloc`/`realloc` tell the two apart by
// address, since kmalloc memory is exactly the default machine's direct map. Nothing unwinds.
unsafe impl GlobalAlloc for KmemAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.alloc_with(layout, false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.alloc_with(layout, true)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match Self::owner(ptr) {
            Some(m) => {
                let _kmem = system_scope();
                // SAFETY: `ptr` is a live kmalloc block of `m` (it is in `m`'s direct map, and
                // only `alloc_with` hands out such pointers), owned by the caller.
                in_global_alloc(|| unsafe { m.kfree(ptr) });
            }
            // SAFETY: Not kmem memory, so `System` allocated it with `layout`.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: The caller promises `new_size`, rounded up to `layout.align()`, fits `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let Some(m) = Self::owner(ptr) else {
            // SAFETY: `System` block with `layout` (not kmem memory); contract forwarded.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        if let Some(size) = kmalloc_size(new_layout)
            && let Some(_kmem) = enter_kmem()
        {
            return in_global_alloc(|| {
                // SAFETY: A live kmalloc block of `m`, owned by the caller. `size` is a multiple
                // of the alignment, so a moved block is aligned (KM-6); a kept one already was.
                unsafe { m.krealloc(ptr, size, global_gfp()) }.map_or(ptr::null_mut(), NonNull::as_ptr)
            });
        }
        // Too large for kmalloc, or kmem is running on this thread: move to the system heap.
        let new = self.alloc_with(new_layout, false);
        if !new.is_null() {
            // SAFETY: Both blocks are live and distinct; each holds `min` bytes.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
