//! Prefilled sheaves (Linux 6.18+, SEMANTICS §3.1): `kmem_cache_prefill_sheaf`,
//! `kmem_cache_alloc_from_sheaf`, `kmem_cache_refill_sheaf`, `kmem_cache_return_sheaf` and
//! `kmem_cache_sheaf_size`.
//!
//! A sheaf is an array of objects taken from a cache ahead of time, so that a caller can later
//! allocate as many as it asked for where it cannot fail or sleep (the maple tree reserves its
//! nodes this way). The kernel's rules, as kmem keeps them:
//! - A cache's sheaves have its `sheaf_capacity` ([`super::CacheArgs::sheaf_capacity`], 0 for
//!   a debug cache). A prefill of more than that makes an "oversize" sheaf of exactly the size
//!   asked for, filled all or nothing; asking one of a cache without a capacity (and without
//!   debugging) is a `WARN_ON_ONCE`.
//! - A regular prefill is refilled to the full capacity (`refill_sheaf`) when it holds fewer
//!   objects than asked for, and fails (NULL, nothing kept) if it cannot be: first with
//!   `__GFP_NOMEMALLOC`, then, where the mask may use the memory reserves, with them, which
//!   marks the sheaf `pfmemalloc`.
//! - `alloc_from_sheaf` pops the last object (NULL once empty: no fallback to the cache) and
//!   zeroes it when `__GFP_ZERO` (or `init_on_alloc`) asks.
//! - `return_sheaf` frees an oversize or `pfmemalloc` sheaf with its objects; a regular one is
//!   refilled and kept for the next prefill while fewer than [`MAX_FULL_SHEAVES`] are kept,
//!   and otherwise (or if the refill fails) freed with its objects.
//! - `refill_sheaf`: `-EINVAL` for no sheaf, nothing to do when it holds enough, a regular
//!   sheaf refilled to capacity, an oversize one filled to its capacity, and a request above
//!   the capacity answered by a new oversize sheaf that replaces the old one (returned) only
//!   if it could be made: on `-ENOMEM` the caller's sheaf is left as it was.
//!
//! kmem's deviation (`docs/deviations.md`): the kernel keeps returned sheaves as a CPU's spare
//! and in a per-node "barn", where ordinary allocations also draw from them; kmem's per-CPU
//! object arrays are its own (`cache.rs`), so a returned full sheaf goes to a per-cache barn
//! used only by prefills, which `kmem_cache_shrink`, reclaim and destroy empty. A cache with
//! the userspace shim's gate on (`shim.rs`) neither keeps returned sheaves nor takes kept ones.
//!
//! The sheaf itself is a `kzalloc`ed block, as in the kernel (`struct_size(sheaf, objects,
//! capacity)`), so the no_std core needs no heap of its own.
//!
//! # Invariants
//! - `objects[..size]` are distinct allocated objects of `cache`, counted in their slabs'
//!   `inuse`; `size <= capacity`.
//! - A sheaf in a barn is full (`size == capacity == cache.sheaf_capacity`) and not
//!   `pfmemalloc`. The barn takes one only while it holds fewer than [`MAX_FULL_SHEAVES`]
//!   (checked before the refill, so returns racing each other may go a little past it, as in
//!   the kernel).
//!
//! Lock order: the barn lock is a leaf; no allocation or free happens under it.

use core::mem::size_of;
use core::panic::Location;
use core::ptr::{self, NonNull};

use super::cache::{Cache, CacheRef};
use crate::gfp::{
    __GFP_ACCOUNT, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, __GFP_NOFAIL, __GFP_NOMEMALLOC, __GFP_RECLAIMABLE, Gfp,
};
use crate::kmem::Kmem;
use crate::page_alloc::warn_sites;
use crate::platform::Platform;

/// `MAX_FULL_SHEAVES`: full sheaves a barn keeps.
pub const MAX_FULL_SHEAVES: u32 = 10;

/// `struct slab_sheaf`: a header followed by `capacity` object pointers.
#[repr(C)]
pub struct SlabSheaf {
    cache: *mut Cache,
    size: u32,
    capacity: u32,
    /// Filled with the memory reserves' help: never kept in a barn.
    pfmemalloc: bool,
    /// Next sheaf in the barn.
    next: *mut SlabSheaf,
    /// `objects`, as a pointer made from the block's own (`alloc_sheaf`): the slots lie past
    /// the header, so they are reached through it, never through a reference to the header
    /// (whose borrow covers the header's bytes only).
    slots: *mut *mut u8,
    objects: [*mut u8; 0],
}

impl SlabSheaf {
    /// `kmem_cache_sheaf_size`: objects the sheaf holds.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Objects the sheaf can hold.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The cache the sheaf was prefilled from.
    pub fn cache(&self) -> CacheRef {
        // SAFETY: Made by `alloc_sheaf` from a cache's address, never null.
        CacheRef(unsafe { NonNull::new_unchecked(self.cache) })
    }

    /// The object slots.
    fn slots(&mut self) -> *mut *mut u8 {
        self.slots
    }

    /// The objects held (`objects[..size]`).
    fn held(&mut self) -> &mut [*mut u8] {
        let n = self.size as usize;
        // SAFETY: The block has room for `capacity >= size` slots after the header
        // (`alloc_sheaf`), and the first `size` are initialised (invariant).
        unsafe { core::slice::from_raw_parts_mut(self.slots(), n) }
    }

    /// The empty slots `objects[size..upto]`, to be filled (`upto <= capacity`).
    fn empty_slots(&mut self, upto: u32) -> &mut [*mut u8] {
        assert!(self.size <= upto && upto <= self.capacity);
        let (from, n) = (self.size as usize, (upto - self.size) as usize);
        // SAFETY: Slots `size..upto` lie inside the block (`upto <= capacity`, `alloc_sheaf`)
        // and hold no object (invariant); a pointer array needs no initialisation to be written.
        unsafe { core::slice::from_raw_parts_mut(self.slots().add(from), n) }
    }
}

/// `struct node_barn`'s full list, one per cache (see the module docs).
pub(crate) struct Barn {
    head: *mut SlabSheaf,
    nr_full: u32,
}

// SAFETY: The sheaves on the list belong to the barn, reached only under its lock.
unsafe impl Send for Barn {}

impl Barn {
    pub(crate) const fn new() -> Self {
        Self { head: ptr::null_mut(), nr_full: 0 }
    }

    fn pop(&mut self) -> Option<NonNull<SlabSheaf>> {
        let sheaf = NonNull::new(self.head)?;
        // SAFETY: Sheaves on the list are live blocks owned by the barn.
        self.head = unsafe { sheaf.as_ref().next };
        self.nr_full -= 1;
        Some(sheaf)
    }

    fn push(&mut self, mut sheaf: NonNull<SlabSheaf>) {
        // SAFETY: The caller gives the sheaf to the barn.
        unsafe { sheaf.as_mut().next = self.head };
        self.head = sheaf.as_ptr();
        self.nr_full += 1;
    }
}

impl Cache {
    /// Objects kept in the barn (for reclaim's estimate: shrinking frees them).
    pub(crate) fn barn_objects(&self) -> usize {
        self.barn.lock().nr_full as usize * self.sheaf_capacity as usize
    }
}

/// A prefilled sheaf as a safe handle ([`Kmem::prefill_sheaf`]): allocations from it need no
/// promise about the sheaf, and dropping it returns it with `GFP_NOWAIT` (so a regular sheaf
/// is kept only if no refill is needed or one succeeds without sleeping); [`Self::give_back`]
/// returns it with a mask of the caller's.
pub struct PrefilledSheaf<'k, P: Platform> {
    kmem: &'k Kmem<P>,
    cache: CacheRef,
    sheaf: NonNull<SlabSheaf>,
}

// SAFETY: The sheaf belongs to the handle alone; moving it to another thread moves that
// ownership (the kernel's sheaves are not tied to a CPU), and the machine is shared (`Sync`).
unsafe impl<P: Platform> Send for PrefilledSheaf<'_, P> where Kmem<P>: Sync {}

impl<P: Platform> PrefilledSheaf<'_, P> {
    /// Objects the sheaf holds: this many [`Self::alloc`]s succeed.
    pub fn size(&self) -> u32 {
        // SAFETY: The handle owns a live sheaf.
        unsafe { self.sheaf.as_ref() }.size
    }

    /// `kmem_cache_alloc_from_sheaf`: an object (zeroed for `__GFP_ZERO`), or `None` once the
    /// sheaf is empty. The object is the caller's, to free with `kmem_cache_free`.
    #[track_caller]
    pub fn alloc(&mut self, gfp: Gfp) -> Option<NonNull<u8>> {
        // SAFETY: The handle owns a live sheaf of `cache`, used through `&mut self` only.
        NonNull::new(unsafe { self.kmem.kmem_cache_alloc_from_sheaf(self.cache, gfp, self.sheaf) })
    }

    /// `kmem_cache_refill_sheaf` to at least `size` objects.
    ///
    /// # Errors
    /// [`SheafError::NoMemory`], with the sheaf as it was.
    #[track_caller]
    pub fn refill(&mut self, gfp: Gfp, size: u32) -> Result<(), SheafError> {
        let mut slot = Some(self.sheaf);
        // SAFETY: As in `alloc`; a replacement becomes the handle's.
        let r = unsafe { self.kmem.kmem_cache_refill_sheaf(self.cache, gfp, &mut slot, size) };
        if let Some(sheaf) = slot {
            self.sheaf = sheaf;
        }
        r
    }

    /// `kmem_cache_return_sheaf` with `gfp` (the refill that lets the barn keep it).
    #[track_caller]
    pub fn give_back(self, gfp: Gfp) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: As in `alloc`; the handle is gone, so nothing uses the sheaf afterwards. The
        // handle's cache is the sheaf's, so the return takes it.
        unsafe { this.kmem.kmem_cache_return_sheaf(this.cache, gfp, this.sheaf) };
    }
}

impl<P: Platform> Drop for PrefilledSheaf<'_, P> {
    fn drop(&mut self) {
        // SAFETY: As in `give_back`.
        unsafe { self.kmem.kmem_cache_return_sheaf(self.cache, crate::gfp::GFP_NOWAIT, self.sheaf) };
    }
}

/// Why [`Kmem::kmem_cache_refill_sheaf`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SheafError {
    /// No sheaf (`-EINVAL`).
    Invalid,
    /// The objects or a larger sheaf could not be allocated (`-ENOMEM`); the sheaf is as it was.
    NoMemory,
}

impl SheafError {
    /// The kernel's return value.
    pub fn errno(self) -> i32 {
        match self {
            Self::Invalid => -22,
            Self::NoMemory => -12,
        }
    }
}

impl<P: Platform> Kmem<P> {
    /// `kmem_cache_prefill_sheaf(s, gfp, size)`: a sheaf holding at least `size` objects of
    /// `cache`, or `None` if it (or its objects) could not be allocated within `gfp`, with
    /// nothing kept. A handle that is not a live cache is reported and gives `None`.
    #[track_caller]
    pub fn kmem_cache_prefill_sheaf(&self, cache: CacheRef, gfp: Gfp, size: u32) -> Option<NonNull<SlabSheaf>> {
        let caller = Location::caller();
        self.checked_cache(cache, "kmem_cache_prefill_sheaf", caller)?;
        // A constructor run by the fills may destroy the cache: it stays until we are done.
        self.with_hooks_pinned(cache.0, |s| self.prefill_held(s, cache, gfp, size, caller))
    }

    /// [`Kmem::kmem_cache_prefill_sheaf`] on a live cache the caller holds.
    fn prefill_held(
        &self,
        s: &Cache,
        cache: CacheRef,
        gfp: Gfp,
        size: u32,
        caller: &Location<'_>,
    ) -> Option<NonNull<SlabSheaf>> {
        if size > s.sheaf_capacity {
            if s.sheaf_capacity == 0 && !s.layout.flags.is_debug() {
                self.pages().warn_once(
                    warn_sites::SHEAF_NO_CAPACITY,
                    "kmem_cache_prefill_sheaf",
                    format_args!("cache {} has no sheaf_capacity", s.name()),
                    caller,
                );
            }
            let mut sheaf = self.alloc_sheaf(s, gfp, size)?;
            // SAFETY: A fresh sheaf, ours alone.
            let sh = unsafe { sheaf.as_mut() };
            if !self.fill_sheaf(cache, sh, gfp, size, caller) {
                // SAFETY: Ours, with objects of `cache` only.
                unsafe { self.free_sheaf(cache, sheaf) };
                return None;
            }
            return Some(sheaf);
        }
        // A cache with the userspace shim's gate takes no kept sheaf: its objects would pass
        // no gate (`shim.rs`).
        let kept = if s.shim.on() { None } else { s.barn.lock().pop() };
        let mut sheaf = match kept {
            Some(sheaf) => {
                // Handed out again without an allocation: counted for `nr_tallocated`.
                // SAFETY: Out of the barn: ours alone.
                s.shim.uncount(-i64::from(unsafe { sheaf.as_ref() }.size));
                sheaf
            }
            None => self.alloc_sheaf(s, gfp, s.sheaf_capacity)?,
        };
        // SAFETY: Out of the barn or fresh: ours alone.
        let sh = unsafe { sheaf.as_mut() };
        sh.pfmemalloc = false;
        if sh.size < size && !self.refill_regular(cache, sh, gfp, caller) {
            // SAFETY: Ours, with objects of `cache` only.
            unsafe { self.free_sheaf(cache, sheaf) };
            return None;
        }
        Some(sheaf)
    }

    /// [`Kmem::kmem_cache_prefill_sheaf`] as a safe handle.
    #[track_caller]
    pub fn prefill_sheaf(&self, cache: CacheRef, gfp: Gfp, size: u32) -> Option<PrefilledSheaf<'_, P>> {
        let sheaf = self.kmem_cache_prefill_sheaf(cache, gfp, size)?;
        Some(PrefilledSheaf { kmem: self, cache, sheaf })
    }

    /// `kmem_cache_alloc_from_sheaf(s, gfp, sheaf)`: the sheaf's last object, zeroed if `gfp`
    /// has `__GFP_ZERO` (or `init_on_alloc` applies), or NULL once the sheaf is empty (it never
    /// falls back to the cache). `gfp` is looked at for nothing else: it never sleeps.
    ///
    /// # Safety
    /// `sheaf` came from [`Kmem::kmem_cache_prefill_sheaf`] of this machine (or a refill of
    /// such a sheaf), was not returned yet, and no other thread uses it during the call.
    #[track_caller]
    pub unsafe fn kmem_cache_alloc_from_sheaf(
        &self,
        cache: CacheRef,
        gfp: Gfp,
        mut sheaf: NonNull<SlabSheaf>,
    ) -> *mut u8 {
        // SAFETY: The caller's promise: a live sheaf, ours for the call.
        let sh = unsafe { sheaf.as_mut() };
        if !self.sheaf_matches(cache, sh, "kmem_cache_alloc_from_sheaf", Location::caller()) || sh.size == 0 {
            return ptr::null_mut();
        }
        sh.size -= 1;
        // SAFETY: Slot `size` held an object (invariant); it is the caller's now.
        let obj = unsafe { *sh.slots().add(sh.size as usize) };
        let s = cache.get();
        if s.want_init(gfp) {
            // SAFETY: The object is ours; `object_size` bytes are the object.
            unsafe { obj.write_bytes(0, s.object_size()) };
        }
        obj
    }

    /// `kmem_cache_refill_sheaf(s, gfp, &sheaf, size)`: makes `*sheaf` hold at least `size`
    /// objects, replacing it with a larger sheaf if it cannot hold them (the old one is
    /// returned). On failure the sheaf is as it was.
    ///
    /// # Errors
    /// [`SheafError::Invalid`] for no sheaf, [`SheafError::NoMemory`] if the objects or the
    /// larger sheaf could not be allocated within `gfp`.
    ///
    /// # Safety
    /// As [`Kmem::kmem_cache_alloc_from_sheaf`], for `*sheaf` when it is `Some`.
    #[track_caller]
    pub unsafe fn kmem_cache_refill_sheaf(
        &self,
        cache: CacheRef,
        gfp: Gfp,
        sheaf: &mut Option<NonNull<SlabSheaf>>,
        size: u32,
    ) -> Result<(), SheafError> {
        let caller = Location::caller();
        let Some(mut cur) = *sheaf else { return Err(SheafError::Invalid) };
        // SAFETY: The caller's promise: a live sheaf, ours for the call.
        let sh = unsafe { cur.as_mut() };
        if !self.sheaf_matches(cache, sh, "kmem_cache_refill_sheaf", caller) {
            return Err(SheafError::Invalid);
        }
        if sh.size >= size {
            return Ok(());
        }
        if sh.capacity >= size {
            let s = cache.get();
            if sh.capacity == s.sheaf_capacity {
                return if self.refill_regular(cache, sh, gfp, caller) { Ok(()) } else { Err(SheafError::NoMemory) };
            }
            // An oversize sheaf: to its capacity, all or nothing.
            let capacity = sh.capacity;
            return if self.fill_sheaf(cache, sh, gfp, capacity, caller) { Ok(()) } else { Err(SheafError::NoMemory) };
        }
        let Some(larger) = self.kmem_cache_prefill_sheaf(cache, gfp, size) else {
            return Err(SheafError::NoMemory);
        };
        // SAFETY: The caller's sheaf, which it gives up for `larger`.
        unsafe { self.kmem_cache_return_sheaf(cache, gfp, cur) };
        *sheaf = Some(larger);
        Ok(())
    }

    /// `kmem_cache_return_sheaf(s, gfp, sheaf)`: gives the sheaf and the objects it still holds
    /// back. A regular sheaf is refilled with `gfp` and kept for the next prefill while the
    /// barn has room; otherwise its objects are freed, then the sheaf. Returns whether it took
    /// the sheaf: false (reported) for a handle that is not a live cache or not the sheaf's,
    /// and then the sheaf is untouched and still the caller's.
    ///
    /// # Safety
    /// As [`Kmem::kmem_cache_alloc_from_sheaf`]; the sheaf is not used afterwards if taken.
    #[track_caller]
    pub unsafe fn kmem_cache_return_sheaf(&self, cache: CacheRef, gfp: Gfp, mut sheaf: NonNull<SlabSheaf>) -> bool {
        let caller = Location::caller();
        // SAFETY: The caller's promise: a live sheaf, ours for the call.
        let sh = unsafe { sheaf.as_mut() };
        if !self.sheaf_matches(cache, sh, "kmem_cache_return_sheaf", caller) {
            return false;
        }
        // A constructor run by the refill may destroy the cache: it stays until we are done.
        self.with_hooks_pinned(cache.0, |s| {
            // The barn's count is read racily, as the kernel's `data_race(barn->nr_full)` (so
            // racing returns may leave it a little above the limit, as in the kernel); its lock
            // is not held across the refill (a leaf: reclaim from the refill empties barns).
            let room = {
                let barn = s.barn.lock();
                barn.nr_full < MAX_FULL_SHEAVES
            };
            let held = sh.size;
            let keep = sh.capacity == s.sheaf_capacity
                && !sh.pfmemalloc
                && room
                && !s.shim.on()
                && self.refill_regular_once(cache, sh, gfp, caller);
            if keep {
                // The refill's objects went to the barn, not to a user (`nr_tallocated`).
                s.shim.uncount(i64::from(sh.size - held));
                s.barn.lock().push(sheaf);
            } else {
                // SAFETY: Ours (the caller gave it up), with objects of `cache` only.
                unsafe { self.free_sheaf(cache, sheaf) };
            }
        });
        true
    }

    /// `kmem_cache_sheaf_size(sheaf)`.
    ///
    /// # Safety
    /// `sheaf` is a live sheaf (as for [`Kmem::kmem_cache_alloc_from_sheaf`]).
    pub unsafe fn kmem_cache_sheaf_size(&self, sheaf: NonNull<SlabSheaf>) -> u32 {
        // SAFETY: The caller's promise.
        unsafe { sheaf.as_ref() }.size
    }

    /// Frees the sheaves kept in `s`'s barn with their objects (`barn_shrink`); returns how
    /// many objects went back to their slabs.
    pub(crate) fn barn_shrink(&self, s: &Cache) -> usize {
        let mut freed = 0;
        loop {
            let Some(sheaf) = s.barn.lock().pop() else { return freed };
            // SAFETY: Out of the barn: ours, full, and its cache is `s`.
            freed += unsafe { sheaf.as_ref() }.size as usize;
            // SAFETY: As above; `s` is held by our caller, so the handle stays good.
            unsafe { self.free_sheaf(CacheRef(NonNull::from(s)), sheaf) };
        }
    }

    /// An empty sheaf of `capacity` for `s` (`__alloc_empty_sheaf`): a `kzalloc` with the
    /// mask's zone, reclaimable, accounting and `__GFP_NOFAIL` bits cleared.
    fn alloc_sheaf(&self, s: &Cache, gfp: Gfp, capacity: u32) -> Option<NonNull<SlabSheaf>> {
        let bytes = (capacity as usize).checked_mul(size_of::<*mut u8>())?.checked_add(size_of::<SlabSheaf>())?;
        let clear = __GFP_DMA.union(__GFP_DMA32).union(__GFP_HIGHMEM).union(__GFP_RECLAIMABLE);
        let gfp = gfp.difference(clear.union(__GFP_ACCOUNT).union(__GFP_NOFAIL));
        let mem = self.kzalloc(bytes, gfp).ok()?.cast::<SlabSheaf>();
        // SAFETY: A fresh zeroed block of `bytes`, ours alone, aligned as kmalloc aligns
        // (at least 8 bytes: pointers); `objects` is inside it, computed from the block's own
        // pointer so that the slots keep the whole block's provenance.
        unsafe {
            let slots = ptr::addr_of_mut!((*mem.as_ptr()).objects).cast::<*mut u8>();
            mem.as_ptr().write(SlabSheaf {
                cache: NonNull::from(s).as_ptr(),
                size: 0,
                capacity,
                pfmemalloc: false,
                next: ptr::null_mut(),
                slots,
                objects: [],
            });
        }
        Some(mem)
    }

    /// Frees the sheaf's objects (`sheaf_flush_unused`), then the sheaf (`free_empty_sheaf`).
    ///
    /// # Safety
    /// The sheaf is ours, with objects of `cache` only, and is not used afterwards.
    unsafe fn free_sheaf(&self, cache: CacheRef, mut sheaf: NonNull<SlabSheaf>) {
        // SAFETY: The caller's promise.
        let sh = unsafe { sheaf.as_mut() };
        // SAFETY: Objects of `cache` the sheaf held (invariant); no one else has them.
        unsafe { self.kmem_cache_free_bulk(Some(cache), sh.held()) };
        sh.size = 0;
        // SAFETY: A `kzalloc`ed block (`alloc_sheaf`) no one uses any more.
        unsafe { self.kfree(sheaf.as_ptr().cast()) };
    }

    /// Fills the sheaf to `upto` objects (at most its capacity), all or nothing, as the
    /// kernel's `__kmem_cache_alloc_bulk` does: true if it holds them now; on failure it is
    /// as it was (the bulk call gave back what it got).
    fn fill_sheaf(&self, cache: CacheRef, sh: &mut SlabSheaf, gfp: Gfp, upto: u32, caller: &Location<'_>) -> bool {
        let upto = upto.min(sh.capacity);
        if sh.size >= upto {
            return true;
        }
        if self.alloc_bulk_held(cache, gfp, sh.empty_slots(upto), false, caller) == 0 {
            return false;
        }
        sh.size = upto;
        true
    }

    /// `refill_sheaf` of a regular sheaf: to the cache's capacity, or false with the sheaf as
    /// it was.
    fn refill_regular_once(&self, cache: CacheRef, sh: &mut SlabSheaf, gfp: Gfp, caller: &Location<'_>) -> bool {
        self.fill_sheaf(cache, sh, gfp, cache.get().sheaf_capacity, caller)
    }

    /// `__prefill_sheaf_pfmemalloc`: [`Self::refill_regular_once`] without the reserves, then,
    /// if that fails and `gfp` may use them, with them (marking the sheaf).
    /// The cache is held across both attempts (a constructor of the first may destroy it).
    fn refill_regular(&self, cache: CacheRef, sh: &mut SlabSheaf, gfp: Gfp, caller: &Location<'_>) -> bool {
        self.with_hooks_pinned(cache.0, |_| {
            if self.refill_regular_once(cache, sh, gfp.union(__GFP_NOMEMALLOC), caller) {
                return true;
            }
            if crate::watermark::gfp_pfmemalloc_flags(gfp, self.platform().in_reclaim()) == 0 {
                return false;
            }
            sh.pfmemalloc = true;
            self.refill_regular_once(cache, sh, gfp, caller)
        })
    }

    /// Whether `cache` is a live cache of this machine and `sh` belongs to it; reports what is
    /// wrong if not. The kernel trusts the caller; kmem checks the handle and the sheaf's one
    /// field, so a sheaf of another cache is refused, not mixed in.
    fn sheaf_matches(&self, cache: CacheRef, sh: &SlabSheaf, func: &str, caller: &Location<'_>) -> bool {
        if self.checked_cache(cache, func, caller).is_none() {
            return false;
        }
        if sh.cache == cache.as_ptr() {
            return true;
        }
        self.report_foreign_sheaf(cache, sh, func, caller);
        false
    }

    #[cold]
    #[inline(never)]
    fn report_foreign_sheaf(&self, cache: CacheRef, sh: &SlabSheaf, func: &str, caller: &Location<'_>) {
        let name = |c: CacheRef| self.cache_name(c).unwrap_or("(not a live cache)");
        self.platform().log(
            crate::platform::Level::Warning,
            format_args!(
                "WARNING: CPU: {} at {caller} {func}: sheaf of cache {} used with cache {}",
                self.platform().cpu().unwrap_or(0),
                name(sh.cache()),
                name(cache),
            ),
        );
        self.platform().dump_stack(caller);
    }
}
