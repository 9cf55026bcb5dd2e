//! Where each request goes, and the machine behind it.
//!
//! - **kmalloc** (the machine's direct map): every request up to `KMALLOC_MAX_SIZE` (4 MiB).
//!   Sizes are at least 16 so every block is 16-aligned as glibc's are; an alignment above 16
//!   asks for the next power of two at least as large as size and alignment, which kmalloc
//!   aligns naturally (slab classes up to 8 KiB, page blocks up to 4 MiB: the direct map is
//!   4 MiB aligned). Every result is checked, and a misaligned one (possible only with slab
//!   debugging layouts) is retried once as a power of two, then served by `mmap`.
//! - **mmap** ([`Big`]): requests above 4 MiB, alignments above 4 MiB, and page-backed sizes
//!   that kmalloc could not serve (no free block of that order): one private anonymous mapping
//!   each, recorded by address, resized with `mremap`. vmalloc is not used: the machine's
//!   memory is private so that `fork` works, and private frames cannot be mapped twice.
//! - **bootstrap** ([`crate::bootstrap`]): calls made on a thread that is already inside the
//!   library (re-entry from libc while kmem runs), calls while another thread builds the
//!   machine, and every call if the machine could not be built.
//!
//! `free`, `realloc` and `malloc_usable_size` find the owner from the address: the direct map,
//! the bootstrap arena, the mmap records — anything else is *foreign* (handed out before the
//! library took over, e.g. by the dynamic loader's own early heap): freeing it is ignored and
//! counted, `realloc` of it fails with `ENOMEM` (its size is unknown), its usable size is 0.

use core::cell::{Cell, UnsafeCell};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::collections::BTreeMap;

use kmem::gfp::{__GFP_NORETRY, __GFP_NOWARN, __GFP_ZERO, GFP_KERNEL};
use kmem::kmalloc::classes::{KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE};
use kmem::{Gfp, Machine};

use crate::bootstrap::BOOTSTRAP;
use crate::gate::{self, Inside};
use crate::sys::{self, PAGE};

/// The smallest block and the alignment every block has (glibc's `MALLOC_ALIGNMENT`).
pub const MIN_ALIGN: usize = 16;
/// The flags of every kmalloc: may reclaim, but fails instead of waiting out an OOM, quietly.
const GFP: Gfp = GFP_KERNEL.union(__GFP_NOWARN).union(__GFP_NORETRY);

const UNINIT: u8 = 0;
const INITING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static MACHINE: AtomicPtr<Machine> = AtomicPtr::new(ptr::null_mut());
/// The machine's direct map, `[DM_START, DM_END)` (empty until the machine is ready).
static DM_START: AtomicUsize = AtomicUsize::new(0);
static DM_END: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Nonzero while the thread is inside the library (so a call that comes back is re-entry).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Counters of the paths that bypass kmalloc (all rare, so shared atomics are fine).
pub struct Counters {
    /// Allocations served by `mmap`.
    pub mmap_allocs: AtomicU64,
    /// Of those, page-backed sizes that kmalloc failed to serve.
    pub mmap_after_kmalloc_failed: AtomicU64,
    /// Bytes of `mmap` allocations now live.
    pub mmap_live_bytes: AtomicUsize,
    /// C-level allocations served by the bootstrap heap.
    pub bootstrap_allocs: AtomicU64,
    /// Frees of pointers this library did not hand out (ignored).
    pub foreign_frees: AtomicU64,
    /// kmalloc'ed blocks freed by re-entry while inside kmem (leaked; never seen in practice).
    pub reentrant_leaks: AtomicU64,
}

/// The counters.
pub static COUNTERS: Counters = Counters {
    mmap_allocs: AtomicU64::new(0),
    mmap_after_kmalloc_failed: AtomicU64::new(0),
    mmap_live_bytes: AtomicUsize::new(0),
    bootstrap_allocs: AtomicU64::new(0),
    foreign_frees: AtomicU64::new(0),
    reentrant_leaks: AtomicU64::new(0),
};

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The records of `mmap` allocations: address to length (whole pages). Used only inside the
/// gate, so a fork never finds its lock held.
struct Big {
    locked: AtomicBool,
    map: UnsafeCell<BTreeMap<usize, usize>>,
}

// SAFETY: `map` is only touched with `locked` held (`with`).
unsafe impl Sync for Big {}

static BIG: Big = Big { locked: AtomicBool::new(false), map: UnsafeCell::new(BTreeMap::new()) };

impl Big {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<usize, usize>) -> R) -> R {
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            sys::relax();
        }
        // SAFETY: We hold the lock: the only reference to the map.
        let r = f(unsafe { &mut *self.map.get() });
        self.locked.store(false, Ordering::Release);
        r
    }
}

/// Who handed out an address.
enum Owner {
    Kmem,
    Bootstrap,
    Mmap(usize),
    Foreign,
}

/// One call's view of the library: the machine, if this call may use it, and whether it
/// passed the fork gate (needed for the machine and the mmap records).
pub struct Heap {
    machine: Option<&'static Machine>,
    gated: bool,
}

/// Runs one exported call: enters the gate (outermost calls only), builds the machine on
/// first use, and hands `f` the view it may use.
#[inline]
pub fn call<R>(f: impl FnOnce(&Heap) -> R) -> R {
    let depth = DEPTH.with(Cell::get);
    if depth > 0 {
        return f(&Heap { machine: None, gated: false });
    }
    DEPTH.with(|d| d.set(1));
    let inside: Option<Inside> = gate::enter();
    let machine = if inside.is_some() { machine() } else { None };
    let r = f(&Heap { machine, gated: inside.is_some() });
    drop(inside);
    DEPTH.with(|d| d.set(0));
    r
}

/// The machine, building it if no one has (`None` while another thread builds it, or if it
/// could not be built). Called inside the gate, with `DEPTH` set.
#[inline]
fn machine() -> Option<&'static Machine> {
    match STATE.load(Ordering::Acquire) {
        // SAFETY: Set once before `READY` is published, then never changed or freed.
        READY => Some(unsafe { &*MACHINE.load(Ordering::Acquire) }),
        UNINIT => init_machine(),
        _ => None,
    }
}

#[cold]
fn init_machine() -> Option<&'static Machine> {
    if STATE.compare_exchange(UNINIT, INITING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return None;
    }
    crate::fork::register();
    match crate::config::build() {
        Ok(m) => {
            let m: &'static Machine = Box::leak(Box::new(m));
            let base = m.phys().base().as_ptr() as usize;
            DM_START.store(base, Ordering::Relaxed);
            DM_END.store(base + m.phys().len(), Ordering::Release);
            MACHINE.store(ptr::from_ref(m).cast_mut(), Ordering::Release);
            STATE.store(READY, Ordering::Release);
            Some(m)
        }
        Err(e) => {
            sys::write_stderr(format!("kmem_preload: {e}; serving allocations from the bootstrap heap\n").as_bytes());
            STATE.store(FAILED, Ordering::Release);
            None
        }
    }
}

/// The machine once it is ready (for statistics and fork handlers; no gate, no building).
pub fn ready_machine() -> Option<&'static Machine> {
    // SAFETY: As in `machine`.
    (STATE.load(Ordering::Acquire) == READY).then(|| unsafe { &*MACHINE.load(Ordering::Acquire) })
}

/// The kmalloc size for `size` bytes aligned to `align` (a power of two), if kmalloc can.
fn kmalloc_request(size: usize, align: usize) -> Option<usize> {
    let n = if align <= MIN_ALIGN { size.max(MIN_ALIGN) } else { size.max(align).checked_next_power_of_two()? };
    (n <= KMALLOC_MAX_SIZE).then_some(n)
}

fn owner(p: usize, heap: &Heap) -> Owner {
    // `END` first: once it is set, so is `START` (stored before it, published with `Release`).
    let end = DM_END.load(Ordering::Acquire);
    let start = DM_START.load(Ordering::Relaxed);
    if p.wrapping_sub(start) < end.saturating_sub(start) {
        Owner::Kmem
    } else if BOOTSTRAP.contains(p) {
        Owner::Bootstrap
    } else if let Some(len) = heap.gated.then(|| BIG.with(|m| m.get(&p).copied())).flatten() {
        Owner::Mmap(len)
    } else {
        Owner::Foreign
    }
}

impl Heap {
    /// `size` bytes aligned to `align` (a power of two), zeroed if `zero`; null with `errno`
    /// `ENOMEM` on failure.
    pub fn alloc(&self, size: usize, align: usize, zero: bool) -> *mut u8 {
        let p = self.try_alloc(size, align, zero);
        if p.is_null() {
            sys::set_errno(libc::ENOMEM);
        }
        p
    }

    fn try_alloc(&self, size: usize, align: usize, zero: bool) -> *mut u8 {
        if size > isize::MAX as usize {
            return ptr::null_mut();
        }
        let Some(m) = self.machine else { return self.alloc_without_machine(size, align, zero) };
        let align = align.max(MIN_ALIGN);
        if let Some(n) = kmalloc_request(size, align) {
            let gfp = if zero { GFP.union(__GFP_ZERO) } else { GFP };
            match m.kmalloc(n, gfp) {
                Ok(p) if (p.as_ptr() as usize).is_multiple_of(align) => return p.as_ptr(),
                Ok(p) => {
                    // SAFETY: Just allocated, never handed out.
                    unsafe { m.kfree(p.as_ptr()) };
                    if let Ok(q) = m.kmalloc(n.next_power_of_two(), gfp) {
                        if (q.as_ptr() as usize).is_multiple_of(align) {
                            return q.as_ptr();
                        }
                        // SAFETY: As above.
                        unsafe { m.kfree(q.as_ptr()) };
                    }
                }
                Err(_) if n <= KMALLOC_MAX_CACHE_SIZE => return ptr::null_mut(),
                Err(_) => bump(&COUNTERS.mmap_after_kmalloc_failed),
            }
        }
        self.alloc_mmap(size, align)
    }

    #[cold]
    fn alloc_without_machine(&self, size: usize, align: usize, zero: bool) -> *mut u8 {
        if let Some(p) = BOOTSTRAP.alloc(size, align.max(MIN_ALIGN)) {
            bump(&COUNTERS.bootstrap_allocs);
            if zero {
                // SAFETY: At least `size` bytes were just allocated for the caller.
                unsafe { p.as_ptr().write_bytes(0, size) };
            }
            return p.as_ptr();
        }
        if self.gated { self.alloc_mmap(size, align) } else { ptr::null_mut() }
    }

    /// One private mapping for the allocation (fresh, so zeroed).
    #[cold]
    fn alloc_mmap(&self, size: usize, align: usize) -> *mut u8 {
        if !self.gated {
            return ptr::null_mut();
        }
        let Some(len) = size.max(1).checked_next_multiple_of(PAGE) else { return ptr::null_mut() };
        let Some(p) = sys::map_block(len, align) else { return ptr::null_mut() };
        BIG.with(|m| m.insert(p, len));
        bump(&COUNTERS.mmap_allocs);
        COUNTERS.mmap_live_bytes.fetch_add(len, Ordering::Relaxed);
        p as *mut u8
    }

    /// `free`.
    ///
    /// # Safety
    /// `p` is null or a block handed out by this library that the caller owns and gives up.
    pub unsafe fn free(&self, p: *mut u8) {
        if p.is_null() {
            return;
        }
        match owner(p as usize, self) {
            Owner::Kmem => match self.machine {
                // SAFETY: The caller gives up a block of the direct map that kmalloc handed
                // out; kmem reports and ignores anything else.
                Some(m) => unsafe { m.kfree(p) },
                None => bump(&COUNTERS.reentrant_leaks),
            },
            Owner::Bootstrap => BOOTSTRAP.free(p),
            Owner::Mmap(len) => {
                BIG.with(|m| m.remove(&(p as usize)));
                COUNTERS.mmap_live_bytes.fetch_sub(len, Ordering::Relaxed);
                sys::unmap(p as usize, len);
            }
            Owner::Foreign => bump(&COUNTERS.foreign_frees),
        }
    }

    /// `malloc_usable_size`: bytes the block at `p` may use (0 for null or foreign). The caller
    /// may then use all of them (kmalloc's `ksize` stops the red-zone check past the request).
    ///
    /// # Safety
    /// `p` is null, foreign, or a live block the caller owns.
    pub unsafe fn usable_size(&self, p: *const u8) -> usize {
        if p.is_null() {
            return 0;
        }
        match owner(p as usize, self) {
            // SAFETY: A live block the caller owns (this function's contract).
            Owner::Kmem => self.machine.map_or(0, |m| unsafe { m.ksize(p) }),
            Owner::Bootstrap => BOOTSTRAP.usable_size(p),
            Owner::Mmap(len) => len,
            Owner::Foreign => 0,
        }
    }

    /// `realloc` for a non-null `p` and a nonzero `size`: the same block when it still fits
    /// (and is not more than twice too large), else a new block with the contents moved; null
    /// with `ENOMEM` on failure, `p` untouched.
    ///
    /// # Safety
    /// `p` is a block handed out by this library that the caller owns.
    pub unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        let owner = owner(p as usize, self);
        let cap = match owner {
            Owner::Kmem => match self.machine {
                // SAFETY: The caller owns the block (this function's contract).
                Some(m) => unsafe { m.ksize(p) },
                None => 0,
            },
            Owner::Bootstrap => BOOTSTRAP.usable_size(p),
            Owner::Mmap(len) => {
                if size > KMALLOC_MAX_SIZE || size > len / 2 {
                    // SAFETY: The caller owns the mapping at `p`.
                    return unsafe { self.remap(p, len, size) };
                }
                len
            }
            Owner::Foreign => 0,
        };
        if cap == 0 {
            sys::set_errno(libc::ENOMEM);
            return ptr::null_mut();
        }
        if size <= cap && (size > cap / 2 || cap <= 2 * MIN_ALIGN) {
            return p;
        }
        let new = self.alloc(size, MIN_ALIGN, false);
        if !new.is_null() {
            // SAFETY: `p` holds `cap` usable bytes of the caller's, `new` at least `size`; they
            // are different blocks. Then `p` is given up, as `realloc` does.
            unsafe {
                ptr::copy_nonoverlapping(p, new, cap.min(size));
                self.free(p);
            }
        }
        new
    }

    /// Resizes the mapping of an `mmap` allocation in place or elsewhere (`mremap`).
    ///
    /// # Safety
    /// `p` starts a recorded mapping of `len` bytes that the caller owns.
    unsafe fn remap(&self, p: *mut u8, len: usize, size: usize) -> *mut u8 {
        let Some(new_len) = size.checked_next_multiple_of(PAGE) else {
            sys::set_errno(libc::ENOMEM);
            return ptr::null_mut();
        };
        if new_len == len {
            return p;
        }
        let Some(q) = sys::remap(p as usize, len, new_len) else {
            sys::set_errno(libc::ENOMEM);
            return ptr::null_mut();
        };
        BIG.with(|m| {
            m.remove(&(p as usize));
            m.insert(q, new_len);
        });
        COUNTERS.mmap_live_bytes.fetch_add(new_len, Ordering::Relaxed);
        COUNTERS.mmap_live_bytes.fetch_sub(len, Ordering::Relaxed);
        q as *mut u8
    }
}

/// The global allocator of the library's own Rust code: the bootstrap heap, never `malloc`.
pub struct RustAlloc;

// SAFETY: `BOOTSTRAP.alloc` returns blocks of at least `size` bytes aligned as asked (or null),
// distinct while live; `dealloc` gives back only blocks it handed out.
unsafe impl core::alloc::GlobalAlloc for RustAlloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        BOOTSTRAP.alloc(layout.size(), layout.align()).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, p: *mut u8, _layout: core::alloc::Layout) {
        BOOTSTRAP.free(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmalloc_requests() {
        assert_eq!(kmalloc_request(0, 1), Some(16));
        assert_eq!(kmalloc_request(1, 16), Some(16));
        assert_eq!(kmalloc_request(100, 16), Some(100));
        assert_eq!(kmalloc_request(80, 64), Some(128), "a power of two is naturally aligned");
        assert_eq!(kmalloc_request(8, 4096), Some(4096));
        assert_eq!(kmalloc_request(5000, 4096), Some(8192));
        assert_eq!(kmalloc_request(4 << 20, 16), Some(4 << 20));
        assert_eq!(kmalloc_request((4 << 20) + 1, 16), None);
        assert_eq!(kmalloc_request(16, 8 << 20), None);
        assert_eq!(kmalloc_request(usize::MAX, 32), None);
    }
}
