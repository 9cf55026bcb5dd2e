//! One slab cache (`struct kmem_cache`): its layout, its per-CPU object caches and its node.
//!
//! A cache lives in pages of its own, taken from the page allocator when it is created:
//! `[Cache][CpuCache × nr_cpus][object arrays: nr_cpus × cap][random sequence][name]`. Nothing
//! of it comes from a heap, so the `no_std` core needs none.
//!
//! # Per-CPU object caches
//! Each CPU slot has a `CpuCache`: a LIFO array of free objects (Bonwick's magazine; the
//! "sheaf" of Linux 6.18+). Alloc pops, free pushes; both touch only the calling CPU's array,
//! bracketed by the slot's [`SlotGuard`] (plain stores, no atomic read-modify-write). An empty
//! array is refilled with half its capacity from the node; a full one gives half back. A
//! remote drainer (shrink, destroy, reclaim) claims a slot with the same handshake as the page
//! allocator's `drain_all_pages`.
//!
//! # Invariants
//! - `count <= cap`; `objs[..count]` are distinct free objects of this cache, each counted in
//!   its slab's `inuse` (an object in a per-CPU array is "out" of its slab, as in SLUB's cpu
//!   freelists), and none is on a slab freelist.
//! - Only the slot's owner inside `guard.enter()`/`exit()`, or a drainer holding the claim,
//!   touches `count` and `objs`.
//!
//! Lock order: the cache list lock, then a cache's node lock, then the descriptor pool's lock,
//! then the RCU pending lock, then the page allocator's zone locks. Slab pages are allocated and freed with no node lock
//! held (allocation may sleep and run reclaim, which takes the list and node locks).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::flags::SlabFlags;
use super::layout::ObjectLayout;
use super::node::Node;
use crate::pcp_guard::SlotGuard;
use crate::sync::SpinLock;

/// A constructor or destructor: `func(ctx, object)`. The C ABI passes the C function in `ctx`;
/// the typed Rust caches pass their closure. Made only by [`ObjFn::new`], whose caller makes
/// the promises the allocator relies on when it calls it.
#[derive(Clone, Copy, Debug)]
pub struct ObjFn {
    func: unsafe fn(ctx: *const (), obj: *mut u8),
    ctx: *const (),
}

// SAFETY: `ObjFn::new`'s caller promised that `func` may be called from any thread with `ctx`.
unsafe impl Send for ObjFn {}
// SAFETY: As above.
unsafe impl Sync for ObjFn {}

impl ObjFn {
    /// `func(ctx, object)` as a constructor or destructor for `kmem_cache_create`
    /// ([`super::CacheArgs`]).
    ///
    /// # Safety
    /// - `func` may be called with `ctx` from any thread, at any allocation or reclaim, for as
    ///   long as a cache holds this `ObjFn` (with objects of that cache, each the cache's object
    ///   size), also concurrently with itself;
    /// - it does not allocate from the same cache (see [`super::CacheArgs`]).
    ///
    /// A `func` that panics aborts the process (it may not unwind through the allocator).
    pub const unsafe fn new(func: unsafe fn(ctx: *const (), obj: *mut u8), ctx: *const ()) -> Self {
        Self { func, ctx }
    }

    /// Runs the function on `obj`; a panic in it aborts (`crate::abort`): it would otherwise
    /// unwind through the allocator's half-done work (a slab being set up, a cache being torn
    /// down).
    ///
    /// # Safety
    /// `obj` must be an object of the cache this function was registered with.
    #[inline]
    pub(crate) unsafe fn call(&self, obj: *mut u8) {
        const WHY: &str = "kmem: a slab constructor or destructor panicked; it may not unwind through the allocator";
        // SAFETY: `new`'s caller promised `func` is callable with `ctx` and any of the cache's
        // objects, from any thread.
        crate::abort::abort_on_unwind(WHY, || unsafe { (self.func)(self.ctx, obj) });
    }
}

/// The optional arguments of `kmem_cache_create` (`struct kmem_cache_args`, plus the seeds'
/// destructor). `Default` leaves everything unused.
///
/// The constructor and destructor may be called from any thread, at any allocation or
/// reclaim: they must be thread-safe and must not allocate from the same cache. They run with
/// no slab lock held and may create and destroy caches, this one included: its teardown then
/// waits for the operation that called them (`lifetime.rs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheArgs {
    /// Object alignment (0: none beyond the minimum).
    pub align: usize,
    /// Start of the hardened-usercopy region.
    pub useroffset: usize,
    /// Size of the hardened-usercopy region (0: none).
    pub usersize: usize,
    /// Custom free-pointer offset (`use_freeptr_offset`); only for `SLAB_TYPESAFE_BY_RCU`.
    pub freeptr_offset: Option<usize>,
    /// Runs once per object slot when a slab is populated (never on reuse: SL-7).
    pub ctor: Option<ObjFn>,
    /// The seeds' destructor: runs on each object when its slab's pages go back to the page
    /// allocator (never on free).
    pub dtor: Option<ObjFn>,
    /// `sheaf_capacity` (6.18): the capacity of the cache's prefilled sheaves
    /// ([`crate::Kmem::kmem_cache_prefill_sheaf`]); 0: none, every prefilled sheaf is
    /// "oversize". Ignored for a debug cache (as the kernel ignores it with `slab_debug`); a
    /// cache with one is never merged.
    pub sheaf_capacity: u32,
    /// Not handed out by [`crate::Kmem::find_cache`] or [`crate::Kmem::for_each_cache`], and
    /// never merged: for an owner that destroys the cache from safe code (`kmem::KmemCache`),
    /// where a handle from a lookup could be in use on another thread when that destroy runs.
    /// It still shows in `/proc/slabinfo` and [`crate::Kmem::cache_listed`].
    pub unlisted: bool,
}

/// One CPU slot's object array. `count` and `objs` belong to the slot's owner or to a drainer
/// holding its claim (see the module docs).
#[repr(C, align(64))]
pub(crate) struct CpuCache {
    pub(crate) guard: SlotGuard,
    /// Objects in `objs`. Atomic only so reclaim's estimate (`count_objects`) may read it from
    /// another thread; the owner uses plain `Relaxed` loads and stores (no read-modify-write).
    pub(crate) count: AtomicU32,
    pub(crate) cap: u32,
    pub(crate) objs: *mut *mut u8,
    /// Fast-path allocations (owner writes with load+store; anyone reads).
    pub(crate) alloc_fast: AtomicU64,
    /// Fast-path frees.
    pub(crate) free_fast: AtomicU64,
    /// Slow-path allocations by the slot's owner (written like `alloc_fast`; callers with no
    /// slot count in [`CacheStats::alloc_slow`]).
    pub(crate) alloc_slow: AtomicU64,
}

// SAFETY: The unsynchronised array is used only by the slot's owner or by a drainer that
// holds the slot's claim (the `SlotGuard` handshake), never by both.
unsafe impl Sync for CpuCache {}

impl CpuCache {
    /// Whether `obj` is the top of the array (holding `n` objects): the object freed last
    /// here, whose free again is the immediate double free (`BUG_ON(object == fp)`).
    ///
    /// # Safety
    /// The caller owns the array (the slot's owner inside the guard) and `n` is its count.
    #[inline(always)]
    pub(crate) unsafe fn top_is(&self, n: usize, obj: *const u8) -> bool {
        // SAFETY: `objs[..n]` are initialised entries of an array the caller owns.
        n > 0 && unsafe { *self.objs.add(n - 1) }.cast_const() == obj
    }
}

/// Counters of one cache (SLUB's `CONFIG_SLUB_STATS` subset), besides the per-CPU fast-path
/// counts.
#[derive(Default)]
pub(crate) struct CacheStats {
    /// Slow-path allocations by callers with no CPU slot (see [`CpuCache::alloc_slow`]).
    pub(crate) alloc_slow: AtomicU64,
    /// Slow-path attempts (counted in an `alloc_slow`) that failed: out of memory or
    /// `failslab` (the userspace shim's gate fails before the count).
    pub(crate) alloc_failed: AtomicU64,
    pub(crate) free_slow: AtomicU64,
    pub(crate) refills: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) remote_drains: AtomicU64,
    pub(crate) new_slabs: AtomicU64,
    pub(crate) freed_slabs: AtomicU64,
    pub(crate) order_fallback: AtomicU64,
}

/// A slab cache. Handed out as [`CacheRef`].
#[repr(C)]
pub struct Cache {
    // The fast paths read the first fields.
    pub(crate) cpus: NonNull<CpuCache>,
    pub(crate) nr_cpus: u32,
    /// Per-CPU arrays in use (not a debug cache).
    pub(crate) fast: bool,
    /// Zero objects on allocation (`init_on_alloc` where it applies).
    pub(crate) init_on_alloc: bool,
    /// `__GFP_ZERO` zeroes objects: false only for a cache with a constructor while
    /// `init_on_alloc` is on, as `slab_want_init_on_alloc` answers (see [`Cache::want_init`]).
    pub(crate) gfp_zero: bool,
    /// Zero objects on free (`init_on_free` where it applies).
    pub(crate) init_on_free: bool,
    /// Stride (`s->size`).
    pub(crate) size: usize,
    /// `ceil(2^64 / size)`, to find an object's index by multiplication (`obj_to_index`).
    pub(crate) recip: u64,
    /// Objects per slab.
    pub(crate) objects: u32,
    /// Slab order.
    pub(crate) order: u32,
    /// `s->random`.
    pub(crate) random: usize,
    pub(crate) layout: ObjectLayout,
    /// `s->object_size`, raised by merged aliases.
    pub(crate) object_size: AtomicUsize,
    /// `s->inuse`, raised by merged aliases.
    pub(crate) inuse: AtomicUsize,
    /// `s->min` order (one object).
    pub(crate) min_order: u32,
    pub(crate) min_partial: usize,
    pub(crate) ctor: Option<ObjFn>,
    pub(crate) dtor: Option<ObjFn>,
    /// The hardened-usercopy window (`s->useroffset`, `s->usersize`), as created.
    pub(crate) useroffset: usize,
    pub(crate) usersize: usize,
    /// [`CacheArgs::unlisted`].
    pub(crate) unlisted: bool,
    /// `SLAB_FAILSLAB` (per cache, like sysfs `failslab`).
    pub(crate) failslab: AtomicBool,
    /// `s->sheaf_capacity`: [`CacheArgs::sheaf_capacity`], or 0 for a debug cache.
    pub(crate) sheaf_capacity: u32,
    /// Returned full sheaves kept for the next prefill (`sheaf.rs`).
    pub(crate) barn: SpinLock<super::sheaf::Barn>,
    pub(crate) node: SpinLock<Node>,
    /// The node may hold free objects: the kernel's racy `n->nr_partial` look in
    /// `get_partial_node`, so a refill on an empty node skips the lock. A mirror of
    /// `node.partial_free > 0`, written only under the node lock by
    /// [`Cache::publish_node_free`] after a change to the node's free objects (paths that only
    /// remove empty slabs may leave it true: a stale value costs at most one lock or one new
    /// slab).
    pub(crate) node_has_free: AtomicBool,
    /// Creators minus destroyers; under the cache list lock.
    pub(crate) refcount: AtomicIsize,
    /// Slab operations in progress that hold the cache, and the `DYING`/`DEAD` marks of its
    /// teardown (`lifetime.rs`).
    pub(crate) ops: super::lifeword::LifeWord,
    /// What the last destroy asked for, kept for a teardown that runs later (`lifetime.rs`).
    pub(crate) destroy: SpinLock<super::lifetime::DestroyRequest>,
    /// Next cache on the list (newest first); under the cache list lock.
    pub(crate) next: AtomicPtr<Cache>,
    pub(crate) name_ptr: *const u8,
    pub(crate) name_len: usize,
    /// Random permutation of object indices, or null (no randomisation).
    pub(crate) random_seq: *const u16,
    /// Order of the pages holding this structure.
    pub(crate) mem_order: u32,
    pub(crate) stats: CacheStats,
    /// The userspace test shim's hooks and counters (`shim.rs`).
    pub(crate) shim: super::shim::ShimHooks,
}

// SAFETY: Shared fields are atomics or behind the node lock; the raw pointers point into the
// cache's own pages, immutable after creation except through the per-CPU protocol.
unsafe impl Sync for Cache {}
// SAFETY: As above.
unsafe impl Send for Cache {}

/// A handle to a slab cache (`struct kmem_cache *`). Copyable, like the kernel's pointer, and
/// like it with no lifetime: every safe operation that takes one checks first that it names a
/// live cache of the machine it is given to (`Kmem::is_live_cache`), and reports and refuses
/// one that does not (another machine's, or destroyed). Destroying is `unsafe` because that
/// check cannot see a destroy racing with a use.
///
/// `#[repr(transparent)]` over a non-null pointer: `Option<CacheRef>` has the layout of a
/// `struct kmem_cache *` that may be NULL (a bucket set is an array of them, as in C).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct CacheRef(pub(crate) NonNull<Cache>);

// SAFETY: A cache is `Sync`; the handle is a shared reference in disguise.
unsafe impl Send for CacheRef {}
// SAFETY: As above.
unsafe impl Sync for CacheRef {}

impl core::fmt::Debug for CacheRef {
    /// The address only: the handle may name nothing any more (`Kmem::cache_name` reads the
    /// name of a live cache).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CacheRef({:p})", self.0)
    }
}

impl CacheRef {
    /// The cache, for callers inside the slab layer that already know it is live (a cache they
    /// hold, or one [`crate::Kmem::cache`] accepted).
    #[inline(always)]
    pub(crate) fn get(&self) -> &Cache {
        // SAFETY: Only called on caches known live (above); a live cache stays valid until the
        // (unsafe) destroy, whose caller promises no use during or after it.
        unsafe { self.0.as_ref() }
    }

    /// The raw pointer (`struct kmem_cache *` for the C ABI).
    pub fn as_ptr(&self) -> *mut Cache {
        self.0.as_ptr()
    }

    /// A handle from a raw pointer.
    ///
    /// # Safety
    /// `ptr` must be a live cache's pointer (from [`CacheRef::as_ptr`]).
    pub unsafe fn from_ptr(ptr: *mut Cache) -> Option<CacheRef> {
        NonNull::new(ptr).map(CacheRef)
    }
}

impl Cache {
    /// The pages of one slab of this cache holding `objects` objects: the preferred order's,
    /// or the minimum order's for a slab made at the fallback order (fewer objects).
    pub(crate) fn slab_pages_of(&self, objects: usize) -> usize {
        1 << if super::node::made_at_fallback(objects, self.objects as usize) { self.min_order } else { self.order }
    }

    /// The pages of the slabs on `node` (this cache's, locked), each at its own order.
    pub(crate) fn node_slab_pages(&self, node: &super::node::Node) -> usize {
        node.slab_pages(self.order, self.min_order)
    }

    /// Publishes whether `node` (this cache's node, locked by the caller) holds free objects,
    /// for the unlocked look of `take_from_node`.
    #[inline]
    pub(crate) fn publish_node_free(&self, node: &super::node::Node) {
        self.node_has_free.store(node.partial_free > 0, core::sync::atomic::Ordering::Relaxed);
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        // SAFETY: The name was copied from a `&str` into the cache's own pages at creation.
        unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(self.name_ptr, self.name_len)) }
    }

    /// `slab_want_init_on_alloc(gfp, s)` (SL-10): whether an allocation with `gfp` is zeroed.
    /// With `init_on_alloc` off, iff `__GFP_ZERO`. With it on: never for a cache with a
    /// constructor, not even with `__GFP_ZERO` (zeroing would undo the constructor; the kernel
    /// returns false before it looks at the mask); only with `__GFP_ZERO` for
    /// `SLAB_TYPESAFE_BY_RCU` and `SLAB_POISON` caches; always for the others.
    #[inline(always)]
    pub(crate) fn want_init(&self, gfp: crate::gfp::Gfp) -> bool {
        self.init_on_alloc || (self.gfp_zero && gfp.contains(crate::gfp::__GFP_ZERO))
    }

    /// `kmem_cache_size`: the object size (the largest of merged aliases).
    pub fn object_size(&self) -> usize {
        self.object_size.load(Relaxed)
    }

    /// The stride between objects (`slab_size`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The object alignment.
    pub fn align(&self) -> usize {
        self.layout.align
    }

    /// The slab order.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// Objects per slab.
    pub fn objects_per_slab(&self) -> usize {
        self.objects as usize
    }

    /// The cache flags (after layout: `SLAB_KMALLOC`, `__OBJECT_POISON` included).
    pub fn flags(&self) -> SlabFlags {
        self.layout.flags
    }

    /// The object layout.
    pub fn layout(&self) -> &ObjectLayout {
        &self.layout
    }

    /// `min_partial`.
    pub fn min_partial(&self) -> usize {
        self.min_partial
    }

    /// How many creators share the cache (1 + merged aliases).
    pub fn refcount(&self) -> isize {
        self.refcount.load(Relaxed)
    }

    /// Whether a constructor was given.
    pub fn has_ctor(&self) -> bool {
        self.ctor.is_some()
    }

    /// The start of the hardened-usercopy window ([`CacheArgs::useroffset`]).
    pub fn useroffset(&self) -> usize {
        self.useroffset
    }

    /// The size of the hardened-usercopy window (0: none; [`CacheArgs::usersize`]).
    pub fn usersize(&self) -> usize {
        self.usersize
    }

    /// Sets or clears `SLAB_FAILSLAB` (the sysfs `failslab` attribute).
    pub fn set_failslab(&self, on: bool) {
        self.failslab.store(on, Relaxed);
    }

    /// `slab_ksize`: what `ksize` reports for an object of this cache.
    pub fn ksize(&self) -> usize {
        use super::flags::{SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER, SLAB_TYPESAFE_BY_RCU};
        let flags = self.layout.flags;
        if flags.intersects(SLAB_RED_ZONE.union(SLAB_POISON)) {
            self.object_size()
        } else if flags.intersects(SLAB_TYPESAFE_BY_RCU.union(SLAB_STORE_USER)) {
            self.inuse.load(Relaxed)
        } else {
            self.size
        }
    }

    /// The per-CPU array of slot `cpu` (`cpu < nr_cpus`).
    #[inline(always)]
    pub(crate) fn cpu(&self, cpu: usize) -> &CpuCache {
        debug_assert!(cpu < self.nr_cpus as usize);
        // SAFETY: `cpus` points to `nr_cpus` initialised entries in the cache's pages; callers
        // pass a slot below `nr_cpus` (the platform's `cpu()` contract).
        unsafe { &*self.cpus.as_ptr().add(cpu) }
    }

    /// The object index of `obj` in a slab whose first slot is at `base`, if `obj` is exactly an
    /// object start (`obj_to_index`, plus the boundary check the kernel leaves to debug builds).
    #[inline(always)]
    pub(crate) fn obj_index(&self, base: usize, obj: usize) -> Option<usize> {
        let off = obj.checked_sub(base + self.layout.red_left_pad)?;
        let idx = ((off as u128 * self.recip as u128) >> 64) as usize;
        (idx < self.objects as usize && idx * self.size == off).then_some(idx)
    }

    /// The object pointer of slot `idx` of a slab starting at `base`.
    #[inline(always)]
    pub(crate) fn obj_at(&self, base: *mut u8, idx: usize) -> *mut u8 {
        base.wrapping_add(idx * self.size + self.layout.red_left_pad)
    }

    /// Reads the decoded free pointer of free object `obj`.
    ///
    /// # Safety
    /// `obj` must be an object of a live slab of this cache that the caller owns.
    #[inline(always)]
    pub(crate) unsafe fn get_freepointer(&self, obj: *mut u8) -> *mut u8 {
        let at = obj.wrapping_add(self.layout.offset);
        // SAFETY: The free pointer lies inside the object's slot (layout), in the slab's pages.
        let stored = unsafe { at.cast::<usize>().read_unaligned() };
        super::hardening::decode(stored, self.random, at as usize) as *mut u8
    }

    /// Zeroes the free pointer of object `obj`, just taken off a slab's freelist (the
    /// kernel's `maybe_wipe_obj_freeptr`, for `init_on_free` caches).
    ///
    /// # Safety
    /// As [`Cache::get_freepointer`].
    #[inline]
    pub(crate) unsafe fn wipe_freepointer(&self, obj: *mut u8) {
        // SAFETY: As in `get_freepointer`.
        unsafe { obj.wrapping_add(self.layout.offset).cast::<usize>().write_unaligned(0) };
    }

    /// Stores the encoded free pointer `next` in free object `obj`.
    ///
    /// # Safety
    /// As [`Cache::get_freepointer`].
    #[inline(always)]
    pub(crate) unsafe fn set_freepointer(&self, obj: *mut u8, next: *mut u8) {
        let at = obj.wrapping_add(self.layout.offset);
        let stored = super::hardening::encode(next as usize, self.random, at as usize);
        // SAFETY: As in `get_freepointer`.
        unsafe { at.cast::<usize>().write_unaligned(stored) };
    }
}

/// `ceil(2^64 / size)` for `size >= 2`.
pub(crate) const fn reciprocal(size: usize) -> u64 {
    ((1u128 << 64).div_ceil(size as u128)) as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn reciprocal_division_is_exact_for_every_slab_offset() {
        // Every stride a cache can have against offsets up to a 4 MiB slab, sampled densely.
        for size in (8..=4096usize).step_by(8).chain([10_240, 65_528, 1 << 20, (4 << 20) - 8]) {
            let r = super::reciprocal(size);
            let tail = (4usize << 20) - 1;
            for off in (0..(4usize << 20)).step_by(14_009).chain([size - 1, size, size + 1, tail - size, tail]) {
                assert_eq!(((off as u128 * r as u128) >> 64) as usize, off / size, "size {size} off {off}");
            }
        }
    }
}
