//! Memory pools on a [`Machine`] (SEMANTICS.md §6): a reserve of pre-allocated elements so
//! that `GFP_KERNEL` allocations make progress even when memory is exhausted.
//!
//! - [`MemPool<T>`]: typed; [`MemPool::alloc`] moves a value into an element and returns a
//!   [`PoolBox`], which drops the value and gives the element back to the pool when it goes.
//!   Small `T`s are kmalloc blocks, large ones page blocks.
//! - [`RawMempool`]: the kernel's interface (`mempool_create` with `alloc_fn`/`free_fn`
//!   callbacks and `pool_data`, raw elements; page, slab and kmalloc pools), destroyed on drop.
//!
//! Bulk calls (`mempool_alloc_bulk`/`mempool_free_bulk`, the newest kernel's) keep the
//! kernel's shape, an array of slots: [`RawMempool::alloc_bulk`] fills the `None` slots of a
//! `&mut [Option<NonNull<c_void>>]`, [`MemPool::alloc_bulk`] the `None` slots of a
//! `&mut [Option<PoolBox<T>>]` (so a caller that got some elements elsewhere, or from an
//! earlier call, passes them along); the count of filled slots is taken from the slice, not
//! from the caller. [`RawMempool::free_bulk`] returns how many leading elements the reserve
//! took, leaving the rest to the caller, as the kernel does; [`MemPool::free_bulk`] takes boxes
//! and frees the rest itself.
//!
//! Both are `Send + Sync` and are meant to be shared between threads (`&` or `Arc`).
//!
//! ```
//! use kmem::gfp::GFP_KERNEL;
//! use kmem::mempool::MemPool;
//!
//! let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build()?;
//! let pool: MemPool<[u64; 8]> = MemPool::new(&m, 4)?; // Four elements reserved.
//! let mut a = pool.alloc(GFP_KERNEL, [0; 8])?;
//! a[3] = 7;
//! assert_eq!(a.iter().sum::<u64>(), 7);
//! assert!(pool.is_kmalloc()); // 64 bytes: elements come from `kmalloc-64`.
//! drop(a); // The reserve is full, so the element goes back to kmalloc.
//! assert_eq!(pool.raw().curr_nr(), 4);
//!
//! // Three elements at once: every `None` slot is filled (from kmalloc while it can, then the
//! // reserve, which gives all the missing ones or none).
//! let mut slots: [Option<_>; 3] = [None, None, None];
//! pool.alloc_bulk(&mut slots, || [1; 8])?;
//! assert!(slots.iter().all(|s| s.as_ref().is_some_and(|b| b[0] == 1)));
//! assert_eq!(pool.free_bulk(slots.into_iter().flatten()), 0); // The reserve is full.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::ptr::{self, NonNull};

use kmem_core::kmalloc::classes::KMALLOC_MAX_CACHE_SIZE;
pub use kmem_core::mempool::{
    MEMPOOL_WAIT_TIMEOUT_NS, Mempool, MempoolAllocFn, MempoolFreeFn, MempoolStats, PoolEnv, PoolHelperData,
    ResizeError, mempool_alloc_pages, mempool_alloc_slab, mempool_free_pages, mempool_free_slab, mempool_kfree,
    mempool_kmalloc,
};
use kmem_core::mempool::{
    mempool_create, mempool_create_kmalloc_pool, mempool_create_lowmem_page_pool, mempool_create_page_pool,
    mempool_create_slab_pool, mempool_destroy_at,
};
use kmem_core::platform::Platform as _;
use kmem_core::slab::CacheRef;
use kmem_core::{AllocError, Gfp, MAX_PAGE_ORDER, PAGE_SIZE, Page, get_order};

use crate::Machine;

/// A `mempool_t` on a machine, destroyed (with a report of elements still out) on drop.
pub struct RawMempool {
    machine: Machine,
    pool: NonNull<Mempool>,
    /// The cache of a slab pool that does not track its elements: `alloc` tests it first,
    /// with the null test of a pointer the slab call needs anyway, and dispatches on `backing`
    /// only without it; `free` first asks [`Mempool::owner_may_free`], which tells with one
    /// load that the reserve is full and that the pool is marked as a slab pool (by `helper`,
    /// only when this is `Some`), and frees to this cache if so; other kinds go on with the
    /// same read ([`Mempool::free_checked`]). A slab pool is the
    /// kind the kernel's callers make most (`mempool_create_slab_pool`), and its pair is
    /// BENCHMARKS.md's yardstick: matching `backing` on both halves of the pair made
    /// kmem-bench's loop 136 instructions against the `kmem_cache` pair's 117; the null test
    /// and the mark make it 127 (with the attribute passed in, [`Mempool::alloc_inline`]).
    slab: Option<CacheRef>,
    backing: Backing,
    /// Where the pool was made: the location a destroy report names when the pool is dropped
    /// (drop glue has no caller location of its own).
    created: &'static Location<'static>,
}

/// The backing allocator of a kmalloc or page helper pool, known statically so that
/// `alloc`/`free` call it directly (inlined into the caller) instead of through the pool's
/// `alloc_fn`/`free_fn` pointers. (Slab pools are `RawMempool::slab`, tested before this;
/// with it `None` they are `Custom`, through the pointers.)
///
/// The discriminants are spread on purpose: dense helper kinds and a distant custom one make
/// `alloc` and `free` dispatch with compares, where dense values became a jump table, an
/// indirect branch on both halves of every pair (measured in kmem-bench's mempool rows when
/// slab pools were a kind too: their element-available pair went from 1.19–1.29× to
/// 1.06–1.13× the `kmem_cache` pair).
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Backing {
    /// `mempool_kmalloc`/`mempool_kfree` of this size.
    Kmalloc(usize) = 0,
    /// `mempool_alloc_pages`/`mempool_free_pages` of this order.
    Pages(u32) = 1,
    /// The caller's callbacks: through the pointers.
    Custom = 0x100,
}

// SAFETY: `Mempool` is `Send + Sync` (its callbacks are callable from any thread by its
// creation contract), and the machine it lives in is shared-safe.
unsafe impl Send for RawMempool {}
// SAFETY: As above.
unsafe impl Sync for RawMempool {}

impl RawMempool {
    /// `mempool_create(min_nr, alloc_fn, free_fn, pool_data)` on `machine`: calls `alloc_fn`
    /// `max(min_nr, 1)` times with `GFP_KERNEL`.
    ///
    /// # Errors
    /// The pool's memory or an element could not be allocated (all obtained elements went back
    /// to `free_fn`).
    ///
    /// # Safety
    /// `alloc_fn` and `free_fn` may be called from any thread with `pool_data` (and `free_fn`
    /// with any element `alloc_fn` returned) until this value is dropped.
    #[track_caller]
    pub unsafe fn new(
        machine: &Machine,
        min_nr: usize,
        alloc_fn: MempoolAllocFn,
        free_fn: MempoolFreeFn,
        pool_data: *mut c_void,
    ) -> Result<Self, AllocError> {
        // SAFETY: The page allocator lives as long as `machine`, which we keep; the callbacks'
        // contract is the caller's.
        let pool = unsafe { mempool_create(machine.pages(), min_nr, alloc_fn, free_fn, pool_data) };
        Ok(Self {
            machine: machine.clone(),
            pool: pool.ok_or(AllocError)?,
            slab: None,
            backing: Backing::Custom,
            created: Location::caller(),
        })
    }

    /// `mempool_create_page_pool(min_nr, order)`: elements are `*const Page` of blocks of
    /// `1 << order` pages.
    ///
    /// # Errors
    /// `order > MAX_PAGE_ORDER`, or the reserve could not be filled.
    #[track_caller]
    pub fn page_pool(machine: &Machine, min_nr: usize, order: u32) -> Result<Self, AllocError> {
        // SAFETY: We keep `machine`, so its page allocator outlives the pool.
        let pool = unsafe { mempool_create_page_pool(machine.pages(), min_nr, order) };
        Self::helper(machine, pool, Backing::Pages(order), None)
    }

    /// [`Self::page_pool`] whose elements are always lowmem (every allocation of the pool leaves
    /// `__GFP_HIGHMEM` out, also a resize's or a caller's), for [`MemPool`], which writes its
    /// values through the elements' direct-map addresses. It goes through the pool's pointers,
    /// which know that ([`mempool_create_lowmem_page_pool`]).
    #[track_caller]
    fn lowmem_page_pool(machine: &Machine, min_nr: usize, order: u32) -> Result<Self, AllocError> {
        // SAFETY: We keep `machine`, so its page allocator outlives the pool.
        let pool = unsafe { mempool_create_lowmem_page_pool(machine.pages(), min_nr, order) };
        Self::helper(machine, pool, Backing::Custom, None)
    }

    /// `mempool_create_slab_pool(min_nr, cache)`: elements are objects of `cache`. A cache with
    /// a constructor is refused (MP-11: the kernel's `VM_BUG_ON`, reported in the log).
    ///
    /// The cache must stay alive as long as the pool: destroying it is `unsafe`
    /// ([`kmem_core::Kmem::kmem_cache_destroy`]), and that call's caller promises no one
    /// (this pool included) uses it any more.
    ///
    /// A cache of another machine is refused (reported): its objects are not this machine's
    /// memory, and that machine may go away first.
    ///
    /// # Errors
    /// The cache has a constructor or belongs to another machine, or the reserve could not be
    /// filled.
    #[track_caller]
    pub fn slab_pool(machine: &Machine, min_nr: usize, cache: CacheRef) -> Result<Self, AllocError> {
        if !machine.is_live_cache(cache) {
            machine.printk(
                kmem_core::platform::Level::Err,
                &format!(
                    "mempool_create_slab_pool: cache {:p} is not a cache of this machine; no pool made\n  at {}",
                    cache.as_ptr(),
                    Location::caller()
                ),
            );
            return Err(AllocError);
        }
        // SAFETY: We keep `machine`, so its `Kmem` outlives the pool; `cache` is one of its
        // caches (checked) and stays alive by the contract of its (unsafe) destroy, above.
        let pool = unsafe { mempool_create_slab_pool(machine, min_nr, cache) };
        Self::helper(machine, pool, Backing::Custom, Some(cache))
    }

    /// `mempool_create_kmalloc_pool(min_nr, size)`: elements are kmalloc blocks of `size` bytes.
    ///
    /// # Errors
    /// The reserve could not be filled (also for `size` above `KMALLOC_MAX_SIZE`).
    #[track_caller]
    pub fn kmalloc_pool(machine: &Machine, min_nr: usize, size: usize) -> Result<Self, AllocError> {
        // SAFETY: We keep `machine`, so its `Kmem` outlives the pool.
        let pool = unsafe { mempool_create_kmalloc_pool(machine, min_nr, size) };
        Self::helper(machine, pool, Backing::Kmalloc(size), None)
    }

    /// Wraps a helper pool just created on `machine` (`None`: creation failed). A pool with
    /// mempool debugging goes through its pointers, which count every element (the inlined
    /// first pass counts nothing, [`Mempool::alloc_inline`]).
    #[track_caller]
    fn helper(
        machine: &Machine,
        pool: Option<NonNull<Mempool>>,
        backing: Backing,
        slab: Option<CacheRef>,
    ) -> Result<Self, AllocError> {
        let pool = pool.ok_or(AllocError)?;
        // SAFETY: Just created by `mempool_create*`, not destroyed.
        let tracking = unsafe { pool.as_ref() }.is_tracking();
        let (backing, slab) = if tracking { (Backing::Custom, None) } else { (backing, slab) };
        if slab.is_some() {
            // SAFETY: We own the pool; the mark means `slab` is `Some` (`free` relies on it).
            unsafe { pool.as_ref().set_owner_free(true) };
        }
        Ok(Self { machine: machine.clone(), pool, slab, backing, created: Location::caller() })
    }

    /// The machine the pool lives on.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// `mempool_alloc(pool, gfp)`: `None` (NULL) is only possible without
    /// `__GFP_DIRECT_RECLAIM`.
    #[track_caller]
    #[inline(always)]
    pub fn alloc(&self, gfp: Gfp) -> Option<NonNull<c_void>> {
        let pool = self.pool();
        let m = &self.machine;
        // In each arm the closure makes the call the pool's helper `alloc_fn` makes (`Backing`),
        // `fast_cpu(m)` is the pool's platform's answer and `m.fail_mempool_alloc()` its
        // attribute (the machine's page allocator is the pool's environment); the pool is
        // initialised until `drop`, and a helper kind means it does not track its elements
        // (`helper`). A slab pool's cache is a live cache of `m` (checked by `slab_pool`) for
        // as long as the pool (the contract of its unsafe destroy).
        if let Some(cache) = self.slab {
            // SAFETY: As said above: the helper pair's own call, the platform's own answer, a
            // live cache.
            return NonNull::new(unsafe {
                pool.alloc_inline(
                    gfp,
                    fast_cpu(m),
                    m.fail_mempool_alloc(),
                    #[inline(always)]
                    |g| m.kmem_cache_alloc_unchecked(cache, g).map_or(ptr::null_mut(), |p| p.as_ptr().cast()),
                )
            });
        }
        let element = match self.backing {
            // SAFETY: As said above: the helper pair's own call, the platform's own answer.
            Backing::Kmalloc(size) => unsafe {
                pool.alloc_inline(
                    gfp,
                    fast_cpu(m),
                    m.fail_mempool_alloc(),
                    #[inline(always)]
                    |g| m.kmalloc(size, g).map_or(ptr::null_mut(), |p| p.as_ptr().cast()),
                )
            },
            // SAFETY: As said above: the helper pair's own call, the platform's own answer.
            Backing::Pages(order) => unsafe {
                pool.alloc_inline(
                    gfp,
                    fast_cpu(m),
                    m.fail_mempool_alloc(),
                    #[inline(always)]
                    |g| m.alloc_pages(g, order).map_or(ptr::null_mut(), |p| ptr::from_ref(p).cast_mut().cast()),
                )
            },
            Backing::Custom => self.alloc_custom(gfp),
        };
        NonNull::new(element)
    }

    /// [`Self::alloc`] for custom pools, through the pointers (which also count every
    /// element of a pool with mempool debugging): out of line, as that path calls through a
    /// pointer anyway and would only make every inlined `alloc` larger.
    #[track_caller]
    #[inline(never)]
    fn alloc_custom(&self, gfp: Gfp) -> *mut c_void {
        self.pool().alloc(gfp)
    }

    /// `mempool_alloc_bulk(pool, elems, count, allocated)`: fills every `None` slot of `elems`
    /// (`count` is its length, `allocated` its `Some` slots), by `alloc_fn` first, then from the
    /// reserve, which gives the whole remainder or nothing, sleeping until it can (see
    /// [`Mempool::alloc_bulk`]). Always `GFP_KERNEL`. A length above `min_nr` is warned about
    /// once per pool: such a call may wait for a reserve that never holds enough.
    ///
    /// # Errors
    /// Only in atomic context, where kmem does not sleep (reported); the slots filled so far
    /// stay filled.
    #[track_caller]
    pub fn alloc_bulk(&self, elems: &mut [Option<NonNull<c_void>>]) -> Result<(), AllocError> {
        let allocated = elems.iter().filter(|e| e.is_some()).count();
        // SAFETY: `Option<NonNull<c_void>>` has the layout of `*mut c_void`, `None` being NULL;
        // the core writes only non-NULL elements into the slots.
        let raw = unsafe { &mut *(ptr::from_mut(elems) as *mut [*mut c_void]) };
        self.pool().alloc_bulk(raw, allocated)
    }

    /// `mempool_free_bulk(pool, elems, count)`: puts the leading elements of `elems` into the
    /// reserve while it is short and returns how many it took; the caller frees the rest
    /// (`elems[taken..]`) with the backing allocator, e.g. [`Mempool::free_backing`] (not
    /// [`Self::free`]: under mempool debugging the bulk free already counted them back).
    ///
    /// # Safety
    /// Every element came from this pool (or is acceptable to its `free_fn`), appears once,
    /// and is not used afterwards; the first `taken` belong to the pool after the call.
    #[track_caller]
    pub unsafe fn free_bulk(&self, elems: &[NonNull<c_void>]) -> usize {
        // SAFETY: `NonNull<c_void>` has the layout of `*mut c_void`.
        let raw = unsafe { &*(ptr::from_ref(elems) as *const [*mut c_void]) };
        // SAFETY: The caller's promise.
        unsafe { self.pool().free_bulk(raw) }
    }

    /// `mempool_free(element, pool)`.
    ///
    /// # Safety
    /// `element` came from this pool's [`Self::alloc`] (or is acceptable to its `free_fn`)
    /// and is not used afterwards.
    #[track_caller]
    #[inline(always)]
    pub unsafe fn free(&self, element: NonNull<c_void>) {
        let pool = self.pool();
        let m = &self.machine;
        // In each arm: the caller's promise; the closure makes the call the pool's helper
        // `free_fn` makes, and the pool is initialised until `drop`.
        // One load decides both that the reserve is full (no debugging) and that this is a
        // slab pool: only `helper` marks the owner's free path, and only with `slab` set.
        let check = pool.free_check();
        if check.owner() {
            // SAFETY: The mark is set only with `slab` `Some` (above), and nobody else changes
            // it (`set_owner_free`'s contract); the element goes to the backing cache as
            // `mempool_free_slab` sends it (the caller's promise: it came from this pool).
            unsafe { m.kmem_cache_free(self.slab.unwrap_unchecked(), element.as_ptr().cast()) };
            return;
        }
        // A slab pool's free that may go into the reserve (it needs the lock) goes through the
        // pointers (`mempool_free_slab`), as custom pools do, with the same read.
        match self.backing {
            // SAFETY: The caller's promise; `free_backing` is `free_fn`.
            Backing::Custom => unsafe { pool.free_checked(element, check, |e| pool.free_backing(e)) },
            // SAFETY: As said above: the helper pair's own call.
            Backing::Kmalloc(_) => unsafe {
                pool.free_checked(
                    element,
                    check,
                    #[inline(always)]
                    |e| m.kfree(e.cast()),
                )
            },
            // SAFETY: As said above: the helper pair's own call.
            Backing::Pages(order) => unsafe {
                pool.free_checked(
                    element,
                    check,
                    #[inline(always)]
                    |e| {
                        // SAFETY: Page pool elements are `Page`s of this machine (caller).
                        if let Some(page) = e.cast::<Page>().as_ref() {
                            m.free_pages(page, order);
                        }
                    },
                )
            },
        }
    }
}

/// The machine's answer to the pool's `fast_cpu` question (the pool's platform is the machine's).
#[inline(always)]
fn fast_cpu(m: &Machine) -> Option<usize> {
    m.pages().platform().fast_cpu()
}

impl Deref for RawMempool {
    type Target = Mempool;

    /// The pool itself: `alloc_preallocated`, `resize`, `min_nr`, `curr_nr`, `stats`, …
    fn deref(&self) -> &Mempool {
        self.pool()
    }
}

impl RawMempool {
    #[inline]
    fn pool(&self) -> &Mempool {
        // SAFETY: Created by `mempool_create*` and destroyed only in `drop`.
        unsafe { self.pool.as_ref() }
    }
}

impl Drop for RawMempool {
    /// Destroys the pool; a report of elements still out names where the pool was made.
    fn drop(&mut self) {
        // SAFETY: Created by `mempool_create*`; `&mut self` means no one uses it any more.
        unsafe { mempool_destroy_at(self.pool.as_ptr(), self.created) }
    }
}

impl fmt::Debug for RawMempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMempool")
            .field("min_nr", &self.min_nr())
            .field("curr_nr", &self.curr_nr())
            .field("outstanding", &self.outstanding())
            .finish()
    }
}

/// A typed pool: every element holds one `T`. Small `T`s (up to 8 KiB once rounded up to
/// their alignment) live in a kmalloc pool — slab objects of the `kmalloc-*` class that fits;
/// larger ones in a page pool of order `get_order(size_of::<T>())`.
pub struct MemPool<T> {
    raw: RawMempool,
    /// Elements are kmalloc blocks (else `*const Page` of page blocks).
    kmalloc: bool,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> MemPool<T> {
    const ALIGN_OK: () = assert!(align_of::<T>() <= PAGE_SIZE, "MemPool elements are page-aligned at most");

    /// A pool with `min_nr` elements reserved.
    ///
    /// # Errors
    /// `T` is larger than the largest block (4 MiB), or the reserve could not be filled.
    #[track_caller]
    pub fn new(machine: &Machine, min_nr: usize) -> Result<Self, AllocError> {
        let () = Self::ALIGN_OK;
        let layout =
            std::alloc::Layout::from_size_align(size_of::<T>().max(1), align_of::<T>()).map_err(|_| AllocError)?;
        match crate::alloc_api::kmalloc_size(layout).filter(|&size| size <= KMALLOC_MAX_CACHE_SIZE) {
            // `kmalloc_size` makes the class aligned for `T` (KM-6).
            Some(size) => {
                Ok(Self { raw: RawMempool::kmalloc_pool(machine, min_nr, size)?, kmalloc: true, _t: PhantomData })
            }
            None => {
                let order = get_order(size_of::<T>());
                if order > MAX_PAGE_ORDER {
                    return Err(AllocError);
                }
                let raw = RawMempool::lowmem_page_pool(machine, min_nr, order)?;
                Ok(Self { raw, kmalloc: false, _t: PhantomData })
            }
        }
    }

    /// The underlying pool (counts, `resize`, statistics).
    pub fn raw(&self) -> &RawMempool {
        &self.raw
    }

    /// Whether the elements are kmalloc blocks (small `T`) rather than page blocks.
    pub fn is_kmalloc(&self) -> bool {
        self.kmalloc
    }

    /// `mempool_alloc` and a move of `value` into the element.
    ///
    /// # Errors
    /// Only without `__GFP_DIRECT_RECLAIM`, when both the backing allocator and the reserve are
    /// empty. `__GFP_HIGHMEM` is ignored (elements must be in the direct map).
    #[track_caller]
    pub fn alloc(&self, gfp: Gfp, value: T) -> Result<PoolBox<'_, T>, AllocError> {
        let element = self.raw.alloc(gfp.difference(kmem_core::gfp::__GFP_HIGHMEM)).ok_or(AllocError)?;
        Ok(self.fill(element, value))
    }

    /// `mempool_alloc_preallocated`: from the reserve only; never sleeps.
    ///
    /// # Errors
    /// The reserve is empty.
    pub fn alloc_preallocated(&self, value: T) -> Result<PoolBox<'_, T>, AllocError> {
        let element = NonNull::new(self.raw.alloc_preallocated()).ok_or(AllocError)?;
        Ok(self.fill(element, value))
    }

    /// `mempool_alloc_bulk` for values: fills every `None` slot of `slots` with a box holding
    /// `init()`, by the backing allocator while it can and then from the reserve, which gives
    /// all the missing elements or none (then the call sleeps until a free and retries; see
    /// [`RawMempool::alloc_bulk`]). `init` runs once per empty slot before any element is
    /// taken, so a panic in it costs no element. Boxes already in `slots` are kept.
    ///
    /// # Errors
    /// Only in atomic context (reported): the slots that could be filled are, with values
    /// from `init`; the others stay `None` and their values are dropped.
    #[track_caller]
    pub fn alloc_bulk<'p>(
        &'p self,
        slots: &mut [Option<PoolBox<'p, T>>],
        mut init: impl FnMut() -> T,
    ) -> Result<(), AllocError> {
        let missing = slots.iter().filter(|s| s.is_none()).count();
        let values: Vec<T> = (0..missing).map(|_| init()).collect();
        // Filled slots stand in the array as a dangling (non-NULL) pointer the pool never reads.
        let filled = NonNull::<c_void>::dangling().as_ptr();
        let mut elems: Vec<*mut c_void> =
            slots.iter().map(|s| if s.is_some() { filled } else { ptr::null_mut() }).collect();
        let result = self.raw.pool().alloc_bulk(&mut elems, slots.len() - missing);
        let mut values = values.into_iter();
        for (slot, &e) in slots.iter_mut().zip(&elems) {
            if slot.is_none()
                && let Some(element) = NonNull::new(e)
            {
                let value = values.next().expect("one value per empty slot");
                *slot = Some(self.fill(element, value));
            }
        }
        result
    }

    /// `mempool_free_bulk` for boxes: drops each box's value, puts the leading elements into
    /// the reserve while it is short, and gives the rest to the backing allocator (as the
    /// kernel's caller does). Returns how many the reserve took. A box of another pool is
    /// dropped as usual (into its own pool) and not counted. If a value's `Drop` panics, every
    /// element is still freed first, then the (first) panic goes on.
    #[track_caller]
    pub fn free_bulk<'p>(&'p self, boxes: impl IntoIterator<Item = PoolBox<'p, T>>) -> usize {
        // Boxes first: if the iterator panics, those already taken drop (and free) as usual.
        let boxes: Vec<PoolBox<'p, T>> = boxes.into_iter().filter(|b| ptr::eq(b.pool, self)).collect();
        let mut elems = Vec::with_capacity(boxes.len());
        let mut panicked = None;
        for b in boxes {
            let b = std::mem::ManuallyDrop::new(b);
            elems.push(self.element_of(b.ptr));
            // SAFETY: The box owns a live `T`, dropped once here (the box's own drop does not
            // run). A panicking `Drop` still counts as dropped; the elements are freed below
            // before the panic goes on, so none is lost.
            let dropped =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { b.ptr.as_ptr().drop_in_place() }));
            if let Err(payload) = dropped {
                panicked.get_or_insert(payload);
            }
        }
        // SAFETY: Each element came from this pool's box, once, and its value is gone.
        let taken = unsafe { self.raw.free_bulk(&elems) };
        for &e in &elems[taken..] {
            // SAFETY: As above: the rest are still ours to free, once, to the pool's `free_fn`.
            unsafe { self.raw.free_backing(e.as_ptr()) };
        }
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
        taken
    }

    fn fill(&self, element: NonNull<c_void>, value: T) -> PoolBox<'_, T> {
        let ptr = if self.kmalloc {
            element.cast::<T>()
        } else {
            // SAFETY: Page pool elements are `Page`s of this machine's page array.
            let page = unsafe { element.cast::<Page>().as_ref() };
            let addr = self.raw.machine.page_address(page).expect("page pool elements are lowmem (no __GFP_HIGHMEM)");
            addr.cast::<T>()
        };
        // SAFETY: The element is at least `size_of::<T>()` bytes aligned for `T` (a kmalloc
        // block of `kmalloc_size`, or a page block with `ALIGN_OK`) that only we use now.
        unsafe { ptr.as_ptr().write(value) };
        PoolBox { pool: self, ptr, _t: PhantomData }
    }

    /// The pool element holding `ptr` (what `mempool_free` takes).
    fn element_of(&self, ptr: NonNull<T>) -> NonNull<c_void> {
        if self.kmalloc {
            return ptr.cast();
        }
        let page: &Page = self.raw.machine.virt_to_page(ptr.as_ptr().cast()).expect("element in the direct map");
        NonNull::from(page).cast()
    }
}

impl<T> fmt::Debug for MemPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemPool").field(&self.raw).finish()
    }
}

/// A `T` in a pool element; dropping it drops the `T` and frees the element to its pool
/// (into the reserve if it is short, else to the page allocator).
pub struct PoolBox<'p, T> {
    pool: &'p MemPool<T>,
    ptr: NonNull<T>,
    _t: PhantomData<T>,
}

// SAFETY: A `PoolBox` owns its `T` like a `Box`; the pool is `Sync`.
unsafe impl<T: Send> Send for PoolBox<'_, T> {}
// SAFETY: Shared access only gives `&T`.
unsafe impl<T: Sync> Sync for PoolBox<'_, T> {}

impl<T> PoolBox<'_, T> {
    /// The element's direct-map address.
    pub fn as_ptr(this: &Self) -> NonNull<T> {
        this.ptr
    }
}

impl<T> Deref for PoolBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` holds a live `T` that this box owns.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As in `deref`, and `&mut self` is exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for PoolBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T> Drop for PoolBox<'_, T> {
    fn drop(&mut self) {
        /// Gives the element back when dropped: after the value's `Drop`, also when that
        /// panics, so a reserve element is never lost to a panicking value.
        struct FreeElement<'p, T> {
            pool: &'p MemPool<T>,
            element: NonNull<c_void>,
        }
        impl<T> Drop for FreeElement<'_, T> {
            fn drop(&mut self) {
                // SAFETY: The element came from this pool's `alloc`, and its value is gone (or
                // its `Drop` panicked: it counts as dropped); freed once, here.
                unsafe { self.pool.raw.free(self.element) };
            }
        }
        let _free = FreeElement { pool: self.pool, element: self.pool.element_of(self.ptr) };
        // SAFETY: The box owns a live `T`, dropped once here.
        unsafe { self.ptr.as_ptr().drop_in_place() };
    }
}
