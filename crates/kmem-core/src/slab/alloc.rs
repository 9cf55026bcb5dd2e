//! Allocating and freeing objects: the per-CPU fast paths, their slow paths (refill, flush,
//! new slab), finding an object's slab from its address, and the bulk API.
//!
//! Fast path (alloc): one context read, the slot guard's enter, a pop from the CPU's array,
//! the guard's exit, one owner-only counter. Fault injection and the userspace shim's gate
//! (`shim.rs`) are in the slow path, which the fast path diverts to with one load of
//! `failslab`'s word while either is on (`FaultAttr::diverts`). Free adds the page lookup that finds the object's
//! slab and cache — needed anyway to catch a pointer that is not an object (SL-18, misuse) —
//! and the freelist-head double-free check (SL-16).

use core::mem::MaybeUninit;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use super::cache::{Cache, CacheRef};
use super::desc::Slab;
use super::grow::MAX_BATCH;
use super::node::Node;
use crate::AllocError;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_NOFAIL, __GFP_NOWARN, __GFP_ZERO, Gfp};
use crate::kmem::Kmem;
use crate::memmap::pg;
use crate::order::PAGE_SHIFT;
use crate::platform::{Context, Level, Platform};
use crate::report::Verdict;

/// Where an object lives: its slab descriptor, its cache and the slab's first byte.
#[derive(Clone, Copy)]
pub(crate) struct ObjSlab {
    pub(crate) slab: *mut Slab,
    pub(crate) cache: *mut Cache,
    pub(crate) base: usize,
}

impl<P: Platform> Kmem<P> {
    /// `kmem_cache_alloc`: an object of `cache` (constructed, or as last freed: SL-7), or
    /// `Err` (the kernel's NULL) when no slab could be made within what `gfp` allows.
    ///
    /// A handle that is not a live cache of this machine (another machine's, or destroyed) is
    /// reported (`BUG: unable to handle page fault …`) and gives `Err`.
    ///
    /// # Errors
    /// Out of memory for a new slab, `failslab` injected a failure, or a bad handle.
    #[track_caller]
    #[inline(always)]
    pub fn kmem_cache_alloc(&self, cache: CacheRef, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        if self.checked_cache(cache, "kmem_cache_alloc", caller).is_none() {
            return Err(AllocError);
        }
        self.slab_alloc(cache, gfp, caller)
    }

    /// [`Kmem::kmem_cache_alloc`] without checking the handle: for callers that hold the cache
    /// alive themselves (a typed cache, a mempool over it, the C ABI after its own lookup),
    /// which saves the check's ~11 instructions per allocation.
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_alloc`].
    ///
    /// # Safety
    /// `cache` is a live cache of this machine ([`Kmem::is_live_cache`]) for the whole call.
    #[track_caller]
    #[inline(always)]
    pub unsafe fn kmem_cache_alloc_unchecked(&self, cache: CacheRef, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        self.slab_alloc(cache, gfp, Location::caller())
    }

    /// `kmem_cache_zalloc`: [`Kmem::kmem_cache_alloc`] with `__GFP_ZERO`.
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_alloc`].
    #[track_caller]
    pub fn kmem_cache_zalloc(&self, cache: CacheRef, gfp: Gfp) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        if self.checked_cache(cache, "kmem_cache_zalloc", caller).is_none() {
            return Err(AllocError);
        }
        self.slab_alloc(cache, gfp.union(__GFP_ZERO), caller)
    }

    /// `kmem_cache_alloc_node`: NUMA nodes other than `NUMA_NO_NODE` (-1) and 0 do not exist
    /// on a kmem machine; both are served the same way.
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_alloc`]; also for a node that does not exist.
    #[track_caller]
    pub fn kmem_cache_alloc_node(&self, cache: CacheRef, gfp: Gfp, node: i32) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        if self.checked_cache(cache, "kmem_cache_alloc_node", caller).is_none() {
            return Err(AllocError);
        }
        if node != crate::NUMA_NO_NODE && node != 0 {
            return Err(AllocError);
        }
        self.slab_alloc(cache, gfp, caller)
    }

    /// An object of the live cache `cache`. The cache goes down the call chain as a pointer,
    /// not a `&Cache` parameter: a constructor may destroy it (`lifetime.rs`), and then no
    /// frame of ours may still have it as a reference argument when the teardown frees it.
    #[inline(always)]
    pub(crate) fn slab_alloc(
        &self,
        cache: CacheRef,
        gfp: Gfp,
        caller: &Location<'_>,
    ) -> Result<NonNull<u8>, AllocError> {
        self.slab_alloc_orig(cache.0, gfp, caller, 0)
    }

    /// The allocation fast path, for a kmalloc request of `orig_size` bytes (0: the object
    /// size), which debug caches record and red-zone behind (`slab_alloc_node`'s
    /// `orig_size`); `cache` is live and held by the caller.
    #[inline(always)]
    pub(crate) fn slab_alloc_orig(
        &self,
        cache: NonNull<Cache>,
        gfp: Gfp,
        caller: &Location<'_>,
        orig_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        self.slab_alloc_hooked(cache, gfp, caller, orig_size, true)
    }

    /// [`Kmem::slab_alloc_orig`]; `failslab`: whether `should_failslab` decides for this
    /// object (false where the caller's call was decided once already, or is not gated:
    /// the objects of a bulk call or of a sheaf fill, `__kmem_cache_alloc_bulk`).
    #[inline(always)]
    fn slab_alloc_hooked(
        &self,
        cache: NonNull<Cache>,
        gfp: Gfp,
        caller: &Location<'_>,
        orig_size: usize,
        failslab: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: The caller holds the cache. A local, not a parameter (see `slab_alloc`).
        let s = unsafe { cache.as_ref() };
        if let Some(cpu) = self.platform().fast_cpu()
            && s.fast
            && !self.slabs.failslab.diverts()
        {
            let c = s.cpu(cpu);
            if c.guard.enter() {
                // We own the slot and are inside its guard: nobody else writes `count`.
                let count = c.count.load(Relaxed);
                if count > 0 {
                    let count = count - 1;
                    // SAFETY: `objs[..count]` hold free objects of `s` (module invariant).
                    let obj = unsafe { *c.objs.add(count as usize) };
                    c.count.store(count, Relaxed);
                    c.guard.exit();
                    c.alloc_fast.store(c.alloc_fast.load(Relaxed) + 1, Relaxed);
                    if s.want_init(gfp) {
                        // SAFETY: The object is ours now; `object_size` bytes are the object.
                        unsafe { obj.write_bytes(0, s.object_size()) };
                    }
                    // SAFETY: Objects are never null.
                    return Ok(unsafe { NonNull::new_unchecked(obj) });
                }
                c.guard.exit();
                // Seen empty by its owner: only the owner fills it, so it stays empty.
                return self.alloc_slow(cache, gfp, caller, orig_size, true, failslab);
            }
        }
        self.alloc_slow(cache, gfp, caller, orig_size, false, failslab)
    }

    /// Everything the fast path does not do (see [`Kmem::alloc_slow_held`]). A cache with a
    /// constructor or destructor is held meanwhile: the constructor of a new slab, or the
    /// destructor of a slab emptied by giving back surplus objects, may destroy it; its
    /// teardown then waits for the next maintenance pass (`lifetime.rs`).
    #[cold]
    #[inline(never)]
    fn alloc_slow(
        &self,
        cache: NonNull<Cache>,
        gfp: Gfp,
        caller: &Location<'_>,
        orig_size: usize,
        array_empty: bool,
        failslab: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        // The caller holds the cache (see `slab_alloc`).
        self.with_hooks_pinned(cache, |s| {
            // The userspace shim's gate (`shim.rs`), on caches that turned it on.
            if s.shim.on() && !self.shim_admit(s, gfp) {
                return Err(AllocError);
            }
            let r = self.alloc_slow_held(s, gfp, caller, orig_size, array_empty, failslab);
            if r.is_err() {
                // Counted in `alloc_slow` by the attempt: `nr_tallocated` takes it off.
                s.stats.alloc_failed.fetch_add(1, Relaxed);
            }
            r
        })
    }

    /// Context checks, fault injection (if `failslab`), refilling the CPU's array (making a
    /// new slab if the node has no free object), and debug caches. `array_empty`: the fast
    /// path found this CPU's array empty (so it is not looked at again).
    #[inline(always)]
    fn alloc_slow_held(
        &self,
        s: &Cache,
        gfp: Gfp,
        caller: &Location<'_>,
        orig_size: usize,
        array_empty: bool,
        failslab: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        let ctx = self.platform().context();
        match ctx.cpu {
            // The slot's owner: a plain load and store (`this_cpu_inc`), no shared atomic.
            Some(cpu) => {
                let c = s.cpu(cpu);
                c.alloc_slow.store(c.alloc_slow.load(Relaxed) + 1, Relaxed);
            }
            None => {
                s.stats.alloc_slow.fetch_add(1, Relaxed);
            }
        }
        if ctx.atomic && gfp.contains(__GFP_DIRECT_RECLAIM) {
            self.pages().report_might_sleep(caller);
        }
        if failslab && self.should_failslab(s, gfp, caller) {
            return Err(AllocError);
        }
        let gfp = if ctx.noio || ctx.nofs { gfp.with_scope(ctx.noio, ctx.nofs) } else { gfp };
        // The fast path was skipped for the checks above (atomic context, failslab armed), or
        // a drainer held the slot: the CPU's array may still hold an object.
        if !array_empty
            && let Some(cpu) = ctx.cpu
            && s.fast
            && let Some(obj) = self.pop_cpu_array(s, cpu)
        {
            if s.want_init(gfp) {
                // SAFETY: The object is ours now.
                unsafe { obj.as_ptr().write_bytes(0, s.object_size()) };
            }
            return Ok(obj);
        }
        let want = match ctx.cpu {
            Some(_) if s.fast => s.cpu(0).cap as usize / 2,
            _ => 1,
        }
        .max(1);
        // Not zeroed: a refill that fails (an exhausted machine) should cost no more than it
        // must; `take_from_node` initialises what it returns.
        let mut batch = [MaybeUninit::<*mut u8>::uninit(); MAX_BATCH];
        // A debug cache takes one object and checks it; a rejected one is left behind.
        let got = loop {
            let got = self.take_from_node(s, gfp, &ctx, &mut batch[..want], caller)?;
            // SAFETY: `take_from_node` initialised `batch[..got]`, `got >= 1`.
            if super::debug::on_alloc(self, s, unsafe { batch[got - 1].assume_init() }, orig_size, caller) {
                break got;
            }
        };
        // SAFETY: `batch[..got]` are initialised (above); `MaybeUninit<T>` has `T`'s layout.
        let batch: &[*mut u8] = unsafe { &*(ptr::from_ref(&batch[..got]) as *const [*mut u8]) };
        let obj = batch[got - 1];
        if got > 1 {
            let mut rest = &batch[..got - 1];
            // The slot is asked for again: a constructor run while the new slab was made may
            // have given up this thread's slot (`release_cpu`), and another thread may own it
            // now; its array is then not ours to fill. The slot as `ctx` reads it (an atomic
            // caller keeps its slot, and `want` was sized for it), not `fast_cpu`, which
            // answers no for an atomic caller and would send the whole batch back.
            if let Some(cpu) = self.platform().context().cpu
                && let c = s.cpu(cpu)
                && c.guard.enter()
            {
                // Owner inside the guard.
                let count = c.count.load(Relaxed);
                let room = (c.cap - count) as usize;
                let n = room.min(rest.len());
                // SAFETY: `n` entries fit after `count`.
                unsafe { ptr::copy_nonoverlapping(rest.as_ptr(), c.objs.add(count as usize), n) };
                c.count.store(count + n as u32, Relaxed);
                c.guard.exit();
                rest = &rest[n..];
            }
            if !rest.is_empty() {
                self.return_objects(s, rest);
            }
            s.stats.refills.fetch_add(1, Relaxed);
        }
        if s.want_init(gfp) {
            // SAFETY: The object is ours; `zero_size` is at most the object size.
            unsafe { obj.write_bytes(0, super::debug::zero_size(s, orig_size)) };
        }
        // SAFETY: Objects are never null.
        Ok(unsafe { NonNull::new_unchecked(obj) })
    }

    /// Pops an object from CPU `cpu`'s array, if it has one and no drainer holds the slot.
    fn pop_cpu_array(&self, s: &Cache, cpu: usize) -> Option<NonNull<u8>> {
        let c = s.cpu(cpu);
        if !c.guard.enter() {
            return None;
        }
        let n = c.count.load(Relaxed);
        let obj = if n > 0 {
            c.count.store(n - 1, Relaxed);
            // SAFETY: `objs[..n]` hold free objects of `s`; we own the slot inside the guard.
            NonNull::new(unsafe { *c.objs.add(n as usize - 1) })
        } else {
            None
        };
        c.guard.exit();
        obj
    }

    /// Takes `out.len()` objects from the node (at least one), making new slabs as needed.
    #[inline(always)]
    fn take_from_node(
        &self,
        s: &Cache,
        gfp: Gfp,
        ctx: &Context,
        out: &mut [MaybeUninit<*mut u8>],
        caller: &Location<'_>,
    ) -> Result<usize, AllocError> {
        loop {
            if s.node_has_free.load(Relaxed) {
                let mut node = s.node.lock();
                // SAFETY: `s` owns its node.
                let got = unsafe { node.take(s, out) };
                s.publish_node_free(&node);
                drop(node);
                if got > 0 {
                    return Ok(got);
                }
            }
            match self.new_slab(s, gfp, ctx, caller) {
                Ok(slab) => {
                    let mut node = s.node.lock();
                    // SAFETY: A fresh slab of `s`, on no list yet.
                    unsafe { node.add_new(slab.as_ptr()) };
                    s.publish_node_free(&node);
                }
                Err(e) => {
                    self.slab_out_of_memory(s, gfp);
                    return Err(e);
                }
            }
        }
    }

    /// `kmem_cache_free`: gives `obj` back to `cache` (NULL is ignored). A pointer that is not
    /// an object of any cache is reported and ignored; one of another cache is freed to its
    /// real cache with the kernel's warning (SL-18); an immediate double free is reported and
    /// ignored (SL-16).
    ///
    /// # Safety
    /// `obj` must be NULL or an object this API handed out and the caller still owns; it
    /// must not be used afterwards. Pointers that break this are detected and reported where
    /// the allocator can tell (not an object, wrong cache, immediate double free), but a
    /// pointer still in use elsewhere would be written to (free pointers, `init_on_free`).
    #[track_caller]
    #[inline(always)]
    pub unsafe fn kmem_cache_free(&self, cache: CacheRef, obj: *mut u8) {
        if obj.is_null() {
            return;
        }
        let caller = Location::caller();
        let Some(found) = self.object_slab(obj) else {
            self.report_not_slab(obj, "kmem_cache_free", caller);
            return;
        };
        // The common case goes on with the caller's pointer, equal to the slab's: the rest of
        // the free then does not wait for the load of the slab's cache field (an extra link in
        // the chain page -> descriptor -> cache, ~1.5 ns per pair when it was followed).
        let cache = if ptr::eq(found.cache, cache.as_ptr()) {
            cache.0
        } else {
            self.wrong_cache_free(cache, found.cache, found.base, obj, caller)
        };
        self.slab_free(cache, found.base, obj, caller);
    }

    /// `kmem_cache_free(s, p)` with `p` not an object of `s`: reported (SL-18, or a dead
    /// handle), and the object goes to its real cache, which is returned. As `cache_from_obj`
    /// does after its warning, the object's tracking is printed (`print_tracking`: nothing
    /// without `SLAB_STORE_USER`), if `p` starts an object of the slab at `base`.
    #[cold]
    #[inline(never)]
    fn wrong_cache_free(
        &self,
        given: CacheRef,
        real: *mut Cache,
        base: usize,
        obj: *mut u8,
        caller: &Location<'_>,
    ) -> NonNull<Cache> {
        // SAFETY: The slab's cache (`object_slab` never returns a null one), live while the
        // slab is.
        let real = unsafe { NonNull::new_unchecked(real) };
        // SAFETY: As above; a local.
        let real_ref = unsafe { real.as_ref() };
        match self.cache(given) {
            Some(s) => {
                self.report_wrong_cache(s, real_ref, caller);
                if real_ref.obj_index(base, obj as usize).is_some() {
                    self.print_tracking(real_ref, obj);
                }
            }
            None => self.report_not_cache(given, "kmem_cache_free", caller),
        }
        real
    }

    /// The free fast path (`kfree`'s way in too): `cache` is the object's cache, as a pointer
    /// (see `slab_alloc`).
    #[inline(always)]
    pub(crate) fn slab_free(&self, cache: NonNull<Cache>, base: usize, obj: *mut u8, caller: &Location<'_>) {
        // SAFETY: The slab of `obj` names its cache, live while the slab is; a local.
        let s = unsafe { cache.as_ref() };
        if s.obj_index(base, obj as usize).is_none() {
            self.report_invalid_object(s, obj, caller);
            return;
        }
        if let Some(cpu) = self.platform().fast_cpu()
            && s.fast
        {
            let c = s.cpu(cpu);
            if s.init_on_free {
                // SAFETY: The caller gives the object back; its bytes are ours to clear.
                unsafe { obj.write_bytes(0, s.object_size()) };
            }
            if c.guard.enter() {
                // Owner inside the guard.
                let n = c.count.load(Relaxed) as usize;
                // SAFETY: Owner inside the guard; `n` is the count.
                if unsafe { c.top_is(n, obj) } {
                    c.guard.exit();
                    self.report_double_free(s, obj, caller);
                    return;
                }
                if n < c.cap as usize {
                    // SAFETY: `n < cap` slots exist.
                    unsafe { *c.objs.add(n) = obj };
                    c.count.store(n as u32 + 1, Relaxed);
                    c.guard.exit();
                    c.free_fast.store(c.free_fast.load(Relaxed) + 1, Relaxed);
                    return;
                }
                c.guard.exit();
            }
        }
        self.free_slow(cache, obj, self.platform().context(), caller);
    }

    /// Free without a usable CPU array, or with a full one: flush half the array to the node,
    /// then keep the object; debug caches check the object and return it to its slab.
    #[cold]
    #[inline(never)]
    fn free_slow(&self, cache: NonNull<Cache>, obj: *mut u8, ctx: Context, caller: &Location<'_>) {
        // SAFETY: As in `slab_free`.
        let s = unsafe { cache.as_ref() };
        s.stats.free_slow.fetch_add(1, Relaxed);
        if s.fast && s.init_on_free {
            // `init_on_free` for every free of a plain cache: the fast path zeroed the object
            // only if it had a CPU (not in atomic context, nor from a thread without a slot);
            // zeroing again after a fast path that found its array full costs one object's
            // bytes per flush. Debug caches zero in `debug::on_free`.
            // SAFETY: The caller gives the object back; its bytes are ours to clear.
            unsafe { obj.write_bytes(0, s.object_size()) };
        }
        if let Some(cpu) = ctx.cpu
            && s.fast
        {
            let c = s.cpu(cpu);
            if c.guard.enter() {
                let mut batch = [ptr::null_mut(); MAX_BATCH];
                // Owner inside the guard. The array is not necessarily full: a drainer may have
                // emptied it since `slab_free` saw it full or found the slot claimed.
                let mut count = c.count.load(Relaxed) as usize;
                // SAFETY: Owner inside the guard; `count` is the count.
                if unsafe { c.top_is(count, obj) } {
                    c.guard.exit();
                    self.report_double_free(s, obj, caller);
                    return;
                }
                let mut n = 0;
                if count == c.cap as usize {
                    // The oldest half goes back: the hottest objects stay.
                    n = (c.cap as usize / 2).clamp(1, MAX_BATCH);
                    // SAFETY: `n <= count` initialised entries move; `count - n` remain.
                    unsafe {
                        ptr::copy_nonoverlapping(c.objs, batch.as_mut_ptr(), n);
                        ptr::copy(c.objs.add(n), c.objs, count - n);
                    }
                    count -= n;
                }
                // SAFETY: `count < cap`, so the slot exists.
                unsafe { *c.objs.add(count) = obj };
                c.count.store(count as u32 + 1, Relaxed);
                c.guard.exit();
                if n > 0 {
                    s.stats.flushes.fetch_add(1, Relaxed);
                    self.return_objects_held(cache, &batch[..n]);
                }
                return;
            }
        }
        // A debug cache checks the object and frees it under one hold of the node lock.
        self.with_hooks_pinned(cache, |s| {
            self.return_objects_checked(s, &[obj], |node, found, obj| {
                super::debug::on_free_locked(self, s, node, found, obj, caller)
            });
        });
    }

    /// [`Kmem::return_objects`] from a free, holding a cache with a destructor meanwhile: a
    /// slab freed here runs it, and it may destroy the cache (`lifetime.rs`).
    #[track_caller]
    fn return_objects_held(&self, cache: NonNull<Cache>, objs: &[*mut u8]) {
        // The caller holds the cache, as in `slab_free`.
        self.with_hooks_pinned(cache, |s| self.return_objects(s, objs));
    }

    /// Whether `obj` (an object start of `s`, found in slab `found`) is known to be free, as
    /// `kfree` would find it: which a call that treats `obj` as live (`krealloc`,
    /// `kfree_sensitive`'s zeroing) must refuse. For a cache with CPU arrays, the last object
    /// freed to this CPU's array (the immediate double free its fast path refuses; lock-free,
    /// other arrays and the slabs are not searched, as that free does not search them). For a
    /// debug cache, which frees to the slab, its slab's freelist, as its free searches it.
    pub(crate) fn known_free(&self, s: &Cache, found: &ObjSlab, obj: *const u8) -> bool {
        if !s.fast {
            return self.on_slab_freelist(s, found, obj);
        }
        let Some(cpu) = self.platform().fast_cpu() else { return false };
        let c = s.cpu(cpu);
        if !c.guard.enter() {
            return false;
        }
        // SAFETY: Owner inside the guard, with the array's count.
        let top = unsafe { c.top_is(c.count.load(Relaxed) as usize, obj) };
        c.guard.exit();
        top
    }

    /// Finds the slab holding `addr` from the page it lies in: `PG_slab` on a slab's head page,
    /// `PG_tail` on the others (both lead to the descriptor). `None` for anything else.
    #[inline(always)]
    pub(crate) fn object_slab(&self, addr: *const u8) -> Option<ObjSlab> {
        let pfn = self.virt_to_pfn(addr)?;
        // SAFETY: `virt_to_pfn` only returns pfns of the direct map, which are in memory.
        let page = unsafe { self.memmap().page_unchecked(pfn) };
        let info = page.info();
        if info & (pg::SLAB | pg::TAIL) == 0 {
            return None;
        }
        let dm = self.slabs.dm;
        let slab = Node::at(dm, page.next.load(Relaxed));
        // SAFETY: A `PG_slab`/`PG_tail` page names a live descriptor, whose `cache` is atomic.
        let cache = unsafe { (*slab).cache.load(Relaxed) };
        if cache.is_null() {
            return None;
        }
        let head_pfn = if info & pg::SLAB != 0 { pfn } else { page.prev.load(Relaxed) as usize };
        let base = dm + (head_pfn.wrapping_sub(self.memmap().start_pfn()) << PAGE_SHIFT);
        Some(ObjSlab { slab, cache, base })
    }

    /// `should_failslab`: the per-cache and global filters, then the knobs; a failure is
    /// reported as `fail_dump` does (not with `__GFP_NOWARN`: `FAULT_NOWARN`).
    fn should_failslab(&self, s: &Cache, gfp: Gfp, caller: &Location<'_>) -> bool {
        let attr = &self.slabs.failslab;
        if !attr.enabled() || gfp.contains(__GFP_NOFAIL) {
            return false;
        }
        if attr.cache_filter.load(Relaxed) && !s.failslab.load(Relaxed) {
            return false;
        }
        if attr.ignore_gfp_reclaim.load(Relaxed) && gfp.contains(__GFP_DIRECT_RECLAIM) {
            return false;
        }
        match attr.should_fail(s.object_size() as i64) {
            Some(verbose) => {
                if !gfp.contains(__GFP_NOWARN) {
                    attr.dump(self.platform(), "failslab", verbose, caller);
                }
                true
            }
            None => false,
        }
    }

    /// `slab_out_of_memory` (rate-limited, silenced by `__GFP_NOWARN`). The `__GFP_NOWARN`
    /// test is inline: a failing attempt that may not warn (mempool's first pass) costs no call.
    #[inline(always)]
    fn slab_out_of_memory(&self, s: &Cache, gfp: Gfp) {
        if !gfp.contains(__GFP_NOWARN) {
            self.slab_out_of_memory_warn(s, gfp);
        }
    }

    #[cold]
    #[inline(never)]
    fn slab_out_of_memory_warn(&self, s: &Cache, gfp: Gfp) {
        if self.slabs.oom_rs.check(self.platform().now_ns()) == Verdict::Suppress {
            return;
        }
        let (slabs, objs, free) = {
            let node = s.node.lock();
            (node.nr_slabs, node.total_objects, node.partial_free)
        };
        let cpu = self.platform().cpu().unwrap_or(0);
        self.platform().log(
            Level::Warning,
            format_args!(
                "SLUB: Unable to allocate memory on CPU {cpu} (of node 0) on node -1, gfp={:#x}({gfp})\n  cache: {}, object size: {}, buffer size: {}, default order: {}, min order: {}",
                gfp.bits(),
                s.name(),
                s.object_size(),
                s.size,
                s.order,
                s.min_order,
            ),
        );
        if s.min_order > crate::order::get_order(s.object_size()) {
            self.platform().log(
                Level::Warning,
                format_args!("  {} debugging increased min order, use slab_debug=O to disable.", s.name()),
            );
        }
        self.platform().log(Level::Warning, format_args!("  node 0: slabs: {slabs}, objs: {objs}, free: {free}"));
    }

    /// `kmem_cache_alloc_bulk`: fills `out` with objects and returns `out.len()`, or frees
    /// what it got and returns 0 (all or nothing, SL-9).
    #[track_caller]
    pub fn kmem_cache_alloc_bulk(&self, cache: CacheRef, gfp: Gfp, out: &mut [*mut u8]) -> usize {
        let caller = Location::caller();
        if self.checked_cache(cache, "kmem_cache_alloc_bulk", caller).is_none() {
            out.fill(ptr::null_mut());
            return 0;
        }
        self.alloc_bulk_held(cache, gfp, out, true, caller)
    }

    /// [`Kmem::kmem_cache_alloc_bulk`] on a live cache the caller holds, for `caller` (also
    /// the prefilled sheaves' fill, `__kmem_cache_alloc_bulk`). `failslab`: the call is
    /// fault-injected as one allocation (`slab_pre_alloc_hook` in
    /// `kmem_cache_alloc_bulk_noprof`, before any object); a sheaf fill is not (the kernel's
    /// `__kmem_cache_alloc_bulk` has no hook).
    pub(crate) fn alloc_bulk_held(
        &self,
        cache: CacheRef,
        gfp: Gfp,
        out: &mut [*mut u8],
        failslab: bool,
        caller: &Location<'_>,
    ) -> usize {
        // A constructor may destroy the cache in the middle: it stays until the loop is done,
        // and a teardown owed then is left to the next maintenance pass (the objects are the
        // caller's, and may be freed after).
        self.with_hooks_pinned(cache.0, |s| {
            if failslab && !out.is_empty() && self.should_failslab(s, gfp, caller) {
                out.fill(ptr::null_mut());
                return 0;
            }
            for i in 0..out.len() {
                if let Ok(p) = self.slab_alloc_hooked(cache.0, gfp, caller, 0, false) {
                    out[i] = p.as_ptr();
                    continue;
                }
                for &p in &out[..i] {
                    // SAFETY: Objects we just allocated and never handed out.
                    unsafe { self.kmem_cache_free(cache, p) };
                }
                // Counted as allocations, never handed out (`nr_tallocated`, `shim.rs`).
                s.shim.uncount(i as i64);
                out[..i].fill(ptr::null_mut());
                return 0;
            }
            out.len()
        })
    }

    /// `kmem_cache_free_bulk`: frees every object; `cache == None` derives each object's cache
    /// (`kfree_bulk`, which also takes large kmalloc pointers). Objects may come from any slab.
    ///
    /// # Safety
    /// `each object` must be NULL or an object this API handed out and the caller still owns; it
    /// must not be used afterwards. Pointers that break this are detected and reported where
    /// the allocator can tell (not an object, wrong cache, immediate double free), but a
    /// pointer still in use elsewhere would be written to (free pointers, `init_on_free`).
    #[track_caller]
    pub unsafe fn kmem_cache_free_bulk(&self, cache: Option<CacheRef>, objs: &[*mut u8]) {
        for &p in objs {
            // SAFETY: The caller gives every object up.
            unsafe {
                match cache {
                    Some(c) => self.kmem_cache_free(c, p),
                    None => self.kfree(p),
                }
            }
        }
    }
}
