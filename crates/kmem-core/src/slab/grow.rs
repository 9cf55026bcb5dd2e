//! Slabs in and out: `allocate_slab` (pages, descriptor, constructor, freelist), freeing a
//! slab (destructor, pages back), refilling and flushing per-CPU arrays, shrink, and reclaim.
//!
//! No function here holds a node lock while it allocates or frees pages.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::Relaxed;

use super::alloc::ObjSlab;
use super::cache::{Cache, CacheRef, CpuCache};
use super::desc::{NIL_PFN, Slab};
use super::flags::{SLAB_NO_REAP, SLAB_TYPESAFE_BY_RCU};
use super::node::Node;
use crate::AllocError;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_NOFAIL, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, __GFP_RECLAIM};
use crate::gfp::{
    __GFP_DMA32, __GFP_HIGHMEM, __GFP_ZERO, GFP_CONSTRAINT_MASK, GFP_RECLAIM_MASK, GFP_SLAB_BUG_MASK, Gfp,
};
use crate::kmem::Kmem;
use crate::memmap::{Page, pg};
use crate::platform::{Context, Level, Platform};

/// Objects moved between a per-CPU array and the node at a time, at most.
pub(crate) const MAX_BATCH: usize = 64;

impl<P: Platform> Kmem<P> {
    /// `allocate_slab`: a new slab for `s`, its objects constructed and chained, not yet on
    /// any list. `ctx` is the caller's context as the slab allocator read it; the page
    /// allocator uses it instead of asking the platform again. The pages are taken here;
    /// the rest is [`Kmem::init_slab`], out of line, so a caller whose request finds no
    /// page carries none of it.
    #[inline(always)]
    pub(crate) fn new_slab(
        &self,
        s: &Cache,
        gfp: Gfp,
        ctx: &Context,
        caller: &Location<'_>,
    ) -> Result<NonNull<Slab>, AllocError> {
        let mut flags = gfp;
        // GFP-6: one test of a constant mask, here on the slow path only.
        if flags.intersects(GFP_SLAB_BUG_MASK) {
            flags = self.kmalloc_fix_flags(flags, caller);
        }
        if flags.contains(__GFP_ZERO) && s.ctor.is_some() {
            self.warn_ctor_zero(s, caller);
        }
        // `new_slab`: only the caller's reclaim and constraint bits reach the page allocator;
        // the zone and the mobility are the cache's (`s->allocflags`: `SLAB_CACHE_DMA*`,
        // `SLAB_RECLAIM_ACCOUNT`, `__GFP_COMP`), whatever the caller's mask says.
        flags = flags.intersection(GFP_RECLAIM_MASK.union(GFP_CONSTRAINT_MASK)).union(s.layout.allocflags);
        // First the preferred order without warnings or retries (and without reclaim when a
        // smaller order could do), then the minimum order with the caller's flags — also when
        // that is the same order, as `allocate_slab` does: only the second attempt may retry,
        // warn and honour `__GFP_NOFAIL`. A second attempt identical to the first (same order
        // and flags: a mask that already has `__GFP_NORETRY|__GFP_NOWARN`, such as
        // `mempool_alloc`'s first pass) is not made: it is the request that just failed. The
        // pages come before the descriptor, so a failure (memory exhausted) has nothing to undo.
        let mut first = flags.union(__GFP_NOWARN).union(__GFP_NORETRY).difference(__GFP_NOFAIL);
        if first.contains(__GFP_DIRECT_RECLAIM) && s.order > s.min_order {
            first = first.union(__GFP_NOMEMALLOC).difference(__GFP_RECLAIM);
        }
        let (page, order) = match self.pages().alloc_pages_ctx(first, s.order, ctx) {
            Ok(page) => (page, s.order),
            Err(_) if s.order > s.min_order || flags != first => {
                let page = self.pages().alloc_pages_ctx(flags, s.min_order, ctx)?;
                s.stats.order_fallback.fetch_add(1, Relaxed);
                (page, s.min_order)
            }
            Err(e) => return Err(e),
        };
        self.init_slab(s, page, order, flags)
    }

    /// The rest of `allocate_slab` once the pages are there: the descriptor (pages freed
    /// again if there is none), the objects (constructor, freelist) and the page links.
    #[inline(never)]
    fn init_slab(&self, s: &Cache, page: &Page, order: u32, flags: Gfp) -> Result<NonNull<Slab>, AllocError> {
        let desc = match self.take_desc(flags) {
            Ok(desc) => desc,
            Err(e) => {
                // SAFETY: Allocated for this slab a moment ago; nothing else has it.
                unsafe { self.pages().free_pages(page, order) };
                return Err(e);
            }
        };
        let pfn = self.page_to_pfn(page).expect("allocated page is ours");
        let Some(base) = self.pfn_address(pfn) else {
            // Not reachable: slab flags never ask for HighMem. Give everything back.
            // SAFETY: As above.
            unsafe { self.pages().free_pages(page, order) };
            return Err(self.put_desc_on_failure(desc, AllocError));
        };
        let objects = super::layout::order_objects(order, s.size).min(s.objects as usize);
        let dm = self.direct_map_base();
        // SAFETY: `desc` came from the pool and is ours; `page` was just allocated for us.
        unsafe {
            let d = desc.as_ptr();
            (*d).cache.store(ptr::from_ref(s).cast_mut(), Relaxed);
            (*d).next = NIL_PFN;
            (*d).prev = NIL_PFN;
            (*d).inuse = 0;
            (*d).objects = objects as u16;
            (*d).pfn = pfn as u32;
            super::debug::setup_slab(s, base.as_ptr(), crate::PAGE_SIZE << order, objects);
            (*d).freelist = self.build_freelist(s, base.as_ptr(), objects);
            let off = Node::offset_of(dm, d);
            page.next.store(off, Relaxed);
            page.set_slab_flag(true);
            // Tail pages lead to the descriptor and the head in one step (`object_slab`).
            for tail in pfn + 1..pfn + (1 << order) {
                let t = self.memmap().page(tail);
                t.next.store(off, Relaxed);
                t.prev.store(pfn as u32, Relaxed);
                t.info.store(pg::TAIL, Relaxed);
            }
        }
        s.stats.new_slabs.fetch_add(1, Relaxed);
        Ok(desc)
    }

    /// Runs the constructor on every object and chains them in slot order, or in the cache's
    /// random order from a random start (`shuffle_freelist`). Returns the first object.
    ///
    /// # Safety
    /// `base` must be a new slab of `s` holding `objects` slots, owned by the caller.
    unsafe fn build_freelist(&self, s: &Cache, base: *mut u8, objects: usize) -> *mut u8 {
        for i in 0..objects {
            let obj = s.obj_at(base, i);
            if let Some(ctor) = &s.ctor {
                // SAFETY: `obj` is an object of `s`, not yet visible to anyone else.
                unsafe { ctor.call(obj) };
            }
        }
        let start = if s.random_seq.is_null() { 0 } else { self.slabs.rng.below(objects as u32) as usize };
        let index = |k: usize| -> usize {
            if s.random_seq.is_null() {
                k
            } else {
                // SAFETY: The sequence has `s.objects >= objects` entries, each below `objects`
                // for a full-order slab; a fallback-order slab skips larger indices below.
                unsafe { *s.random_seq.add((start + k) % s.objects as usize) as usize }
            }
        };
        let mut head: *mut u8 = ptr::null_mut();
        let mut k = s.objects as usize;
        while k > 0 {
            k -= 1;
            let i = index(k);
            if i >= objects {
                continue;
            }
            let obj = s.obj_at(base, i);
            // SAFETY: `obj` is a free object of the new slab.
            unsafe { s.set_freepointer(obj, head) };
            head = obj;
        }
        head
    }

    /// A descriptor from the pool, growing the pool by a page if it is empty.
    fn take_desc(&self, gfp: Gfp) -> Result<NonNull<Slab>, AllocError> {
        if let Some(d) = self.slabs.descs.take() {
            return Ok(d);
        }
        let flags = gfp.difference(__GFP_ZERO.union(__GFP_HIGHMEM).union(__GFP_DMA32).union(crate::gfp::__GFP_DMA));
        let page = self.pages().get_free_pages(flags.difference(crate::gfp::__GFP_COMP), 0)?;
        // SAFETY: A fresh lowmem page, handed to the pool for good.
        unsafe { self.slabs.descs.add_page(page) };
        self.slabs.descs.take().ok_or(AllocError)
    }

    fn put_desc_on_failure(&self, desc: NonNull<Slab>, e: AllocError) -> AllocError {
        // SAFETY: The descriptor was taken for a slab that was never made.
        unsafe { self.slabs.descs.put(desc) };
        e
    }

    /// Frees a slab that is on no list and has no object out: destructor on each object, page
    /// flags cleared, pages and descriptor back. RCU caches wait for a grace period first; the
    /// waiting slab holds its cache (`lifetime.rs`) until the grace period frees it.
    pub(crate) fn discard_slab(&self, s: &Cache, slab: *mut Slab) {
        s.stats.freed_slabs.fetch_add(1, Relaxed);
        if s.layout.flags.intersects(SLAB_TYPESAFE_BY_RCU) {
            // Our caller holds the cache (a reference, a pin, or the teardown's claim).
            self.pin_cache(s);
            let mut pending = self.slabs.rcu.pending.lock();
            // SAFETY: The slab is off every list; its `next` link is free for the RCU chain.
            unsafe { (*slab).next = pending.slabs };
            pending.slabs = Node::offset_of(self.direct_map_base(), slab);
            pending.nr_slabs += 1;
            return;
        }
        // SAFETY: As the caller promises: an empty slab on no list.
        unsafe { self.free_slab(s, slab) };
    }

    /// The last step of [`Kmem::discard_slab`].
    ///
    /// # Safety
    /// `slab` must be a slab of `s` on no list, with no object out, that nothing else uses.
    pub(crate) unsafe fn free_slab(&self, s: &Cache, slab: *mut Slab) {
        // SAFETY: The slab is ours alone now.
        let (pfn, objects) = unsafe { ((*slab).pfn as usize, (*slab).objects as usize) };
        let base = self.pfn_address(pfn).expect("slab pages are lowmem").as_ptr();
        if let Some(dtor) = &s.dtor {
            for i in 0..objects {
                // SAFETY: Every object of the slab is free and constructed.
                unsafe { dtor.call(s.obj_at(base, i)) };
            }
        }
        let page = self.pfn_to_page(pfn).expect("slab page in memory");
        let order = page.order();
        for tail in pfn + 1..pfn + (1 << order) {
            // Back to "inside an allocated block" before the block goes back.
            let t = self.memmap().page(tail);
            t.info.store(0, Relaxed);
            t.next.store(0, Relaxed);
            t.prev.store(0, Relaxed);
        }
        page.next.store(0, Relaxed);
        page.prev.store(0, Relaxed);
        page.set_slab_flag(false);
        // SAFETY: The slab is discarded: no object of it is in use or listed anywhere.
        unsafe { self.pages().free_pages(page, order) };
        // SAFETY: The slab is gone; its descriptor goes back to the pool.
        unsafe { self.slabs.descs.put(NonNull::new_unchecked(slab)) };
    }

    /// Gives `objs` (objects of `s` that are out) back to their slabs under the node lock,
    /// then frees the slabs that became empty beyond `min_partial`.
    ///
    /// An object freed twice (the second free went into a CPU array, which only catches a
    /// repeat of its own last free) is reported and skipped when it shows: it already heads its
    /// slab's freelist, as SLUB's `BUG_ON(object == fp)` in `set_freepointer` would stop it,
    /// instead of being linked to itself (a freelist cycle that would hand it out again and
    /// again); its slab has no object out (`inuse == 0`: the count would wrap and the slab
    /// never be freed); or its slab is gone (freed when its last object came back, or now
    /// another cache's). A duplicate deeper in the freelist of a slab with other objects out
    /// is not found here; `slub_debug=F` finds every one.
    #[track_caller]
    pub(crate) fn return_objects(&self, s: &Cache, objs: &[*mut u8]) {
        self.return_objects_checked(s, objs, |_, _, _| true);
    }

    /// [`Kmem::return_objects`] with `accept` asked first for each object, under the same hold
    /// of the node lock as its free (a debug cache's `free_debug_processing`): an object it
    /// refuses (having reported why) stays out.
    #[track_caller]
    pub(crate) fn return_objects_checked(
        &self,
        s: &Cache,
        objs: &[*mut u8],
        mut accept: impl FnMut(&mut Node, &ObjSlab, *mut u8) -> bool,
    ) {
        let mut discard: [*mut Slab; MAX_BATCH] = [ptr::null_mut(); MAX_BATCH];
        let mut nd = 0;
        let mut double_freed: Option<*mut u8> = None;
        {
            let mut node = s.node.lock();
            for &obj in objs {
                let Some(found) = self.object_slab(obj).filter(|o| ptr::eq(o.cache, s)) else {
                    double_freed = Some(obj);
                    continue;
                };
                if !accept(&mut node, &found, obj) {
                    continue;
                }
                let slab = found.slab;
                // SAFETY: `slab` is a live slab of `s`; its freelist and count are read under
                // the lock.
                if unsafe { (*slab).freelist == obj || (*slab).inuse == 0 } {
                    double_freed = Some(obj);
                    continue;
                }
                // SAFETY: `obj` is an out object of `slab`, a slab of `s`; we hold the lock.
                let empty = unsafe { node.put(s, slab, obj) };
                if empty {
                    // SAFETY: Empty and on the partial list, as `put` just said.
                    unsafe { node.remove(slab) };
                    discard[nd] = slab;
                    nd += 1;
                    if nd == MAX_BATCH {
                        s.publish_node_free(&node);
                        drop(node);
                        for &d in &discard[..nd] {
                            self.discard_slab(s, d);
                        }
                        nd = 0;
                        node = s.node.lock();
                    }
                }
            }
            s.publish_node_free(&node);
        }
        for &d in &discard[..nd] {
            self.discard_slab(s, d);
        }
        if let Some(obj) = double_freed {
            self.report_double_free(s, obj, Location::caller());
        }
    }

    /// Empties the caller's own CPU array of `s` (slot `cpu`) back to the slabs, a batch at a
    /// time, outside the slot's guard while the batch goes back: freeing a slab runs the
    /// destructor, which may free objects of `s` into this very array (its own enter and exit
    /// would end a section still open around it, letting a drainer in). Stops if a drainer
    /// holds the slot (it flushes the array).
    fn flush_own_array(&self, s: &Cache, cpu: usize) -> usize {
        let c = s.cpu(cpu);
        let mut moved = 0;
        while c.guard.enter() {
            // SAFETY: Owner inside the guard.
            let (objs, n) = unsafe { take_batch(c) };
            let batch = &objs[..n];
            c.guard.exit();
            if batch.is_empty() {
                break;
            }
            self.return_objects(s, batch);
            moved += batch.len();
        }
        moved
    }

    /// Empties CPU slot `cpu`'s array of `s` back to the slabs. The caller must hold the
    /// slot's claim (objects the destructor frees meanwhile then take the slow path, which
    /// sees the claim and returns them to their slabs directly).
    pub(crate) unsafe fn flush_cpu_array(&self, s: &Cache, cpu: usize) -> usize {
        let c = s.cpu(cpu);
        let mut total = 0;
        loop {
            // SAFETY: The caller owns the array (its claim).
            let (objs, n) = unsafe { take_batch(c) };
            let batch = &objs[..n];
            if batch.is_empty() {
                return total;
            }
            self.return_objects(s, batch);
            total += batch.len();
        }
    }

    /// Flushes every CPU's array of `s` (`flush_all`): the caller's own directly, the others by
    /// claiming their slots with the page allocator's drain handshake. Returns objects moved.
    pub(crate) fn flush_all(&self, s: &Cache) -> usize {
        self.flush_all_cpus(s, false)
    }

    /// [`Self::flush_all`]; `unused`: no owner may be inside a section of `s` (its teardown:
    /// the destroy's contract keeps every user out), so a claimed array is flushed even on a
    /// platform without a heavy barrier, as the kernel's `flush_all_cpus_locked` reaches every
    /// CPU; otherwise the objects idle CPUs parked would be reported as remaining and the
    /// cache kept.
    fn flush_all_cpus(&self, s: &Cache, unused: bool) -> usize {
        if !s.fast {
            return 0;
        }
        let me = self.platform().cpu();
        let mut moved = 0;
        if let Some(cpu) = me {
            moved += self.flush_own_array(s, cpu);
        }
        let mut claimed = [false; crate::pcp::MAX_CPUS];
        let mut any = false;
        for (cpu, flag) in claimed.iter_mut().enumerate().take(s.nr_cpus as usize) {
            if Some(cpu) != me && s.cpu(cpu).guard.mark_claimed() {
                *flag = true;
                any = true;
            }
        }
        if !any {
            return moved;
        }
        let barrier = self.platform().heavy_barrier() || unused;
        for (cpu, &was_claimed) in claimed.iter().enumerate().take(s.nr_cpus as usize) {
            if !was_claimed {
                continue;
            }
            let guard = &s.cpu(cpu).guard;
            if barrier && guard.confirm_claim(4096, crate::sync::cpu_relax) {
                // SAFETY: We hold the slot's claim and its owner is outside (seen after the
                // heavy barrier, or promised by the teardown's caller).
                moved += unsafe { self.flush_cpu_array(s, cpu) };
                guard.unclaim();
            } else if !barrier {
                guard.unclaim();
            }
        }
        if moved > 0 {
            s.stats.remote_drains.fetch_add(1, Relaxed);
        }
        moved
    }

    /// Frees every empty slab of `s` (after flushing the per-CPU arrays); returns pages freed.
    pub(crate) fn shrink_cache(&self, s: &Cache) -> usize {
        self.shrink_cache_cpus(s, false)
    }

    /// [`Self::shrink_cache`] of a cache being torn down: no owner may be inside a section of
    /// it (see [`Self::flush_all_cpus`]).
    pub(crate) fn shrink_unused_cache(&self, s: &Cache) -> usize {
        self.shrink_cache_cpus(s, true)
    }

    fn shrink_cache_cpus(&self, s: &Cache, unused: bool) -> usize {
        self.barn_shrink(s);
        self.flush_all_cpus(s, unused);
        let chain = s.node.lock().take_empty(0);
        let dm = self.direct_map_base();
        let mut pages = 0;
        let mut cur = chain;
        while !cur.is_null() {
            // SAFETY: Chains from `take_empty` hold empty slabs unlinked from the node.
            let next = unsafe { Node::chain_next(dm, cur) };
            // SAFETY: As above: the slab is ours until `discard_slab`.
            pages += s.slab_pages_of(unsafe { (*cur).objects } as usize);
            self.discard_slab(s, cur);
            cur = next;
        }
        pages
    }

    /// `kmem_cache_shrink`: flushes the per-CPU arrays, frees every empty slab (SL-13) and
    /// runs a grace period for RCU caches; returns 0 only if the cache holds no slab at all.
    /// A handle that is not a live cache of this machine is reported and gives `-EINVAL`.
    ///
    /// The cache is held for the call: a destructor that destroys it (drops a typed cache's
    /// last handle) leaves the teardown to the end of the call (`lifetime.rs`).
    #[track_caller]
    pub fn kmem_cache_shrink(&self, cache: CacheRef) -> i32 {
        self.reap_orphans();
        let caller = core::panic::Location::caller();
        let Some(s) = self.checked_cache(cache, "kmem_cache_shrink", caller) else {
            return -22;
        };
        self.pin_cache(s);
        self.shrink_cache(s);
        if s.layout.flags.intersects(SLAB_TYPESAFE_BY_RCU) && !self.platform().in_atomic() {
            self.rcu_barrier_at(caller);
        }
        let left = i32::from(s.node.lock().nr_slabs != 0);
        self.unpin_cache(cache.0);
        left
    }

    /// Runs every cache's per-CPU arrays of slot `cpu` back to the slabs: the slot's thread
    /// is leaving (`slub_cpu_dead`). The list lock is not held while a cache is flushed (its
    /// destructor may destroy caches).
    ///
    /// # Safety
    /// The caller is the slot's owner, outside any per-CPU section of it, or the slot has no
    /// owner (its thread is gone, or did not survive a `fork`). The claim below takes no heavy
    /// barrier, so a live owner elsewhere could run its lock-free fast path on the same array
    /// as the flush (`drain_cpu_slot`, the page lists' twin, has the same contract).
    pub unsafe fn slab_cpu_dead(&self, cpu: usize) {
        self.walk_caches(|s| {
            if !s.fast || cpu as u32 >= s.nr_cpus {
                return;
            }
            let guard = &s.cpu(cpu).guard;
            if !guard.mark_claimed() {
                // A remote flush (`flush_all`) holds the claim. With a heavy barrier it flushes
                // the array itself (we are outside every section); it may run destructors
                // meanwhile, which may wait for a thread that waits for us (the fork lock
                // around slot hand-backs), so we do not wait for it. Without one it gives the
                // claim back unflushed, with no hook run in between: wait for that, as
                // `drain_cpu_slot` does, rather than leave the objects to a slot nobody owns.
                if self.platform().heavy_barrier() {
                    return;
                }
                while !guard.mark_claimed() {
                    crate::sync::cpu_relax();
                }
            }
            if guard.confirm_claim(4096, crate::sync::cpu_relax) {
                // SAFETY: Claimed, and the owner is gone or is us outside any section (the
                // caller's promise).
                unsafe { self.flush_cpu_array(s, cpu) };
                s.cpu(cpu).guard.unclaim();
            }
        });
    }

    /// Pages that shrinking could free now (`count_objects`): empty slabs of reapable caches,
    /// slabs their per-CPU arrays could empty, slabs waiting for a grace period, and the slabs
    /// and structure of orphaned caches (`lifetime.rs`: the scan tears them down).
    pub(crate) fn reclaimable_slab_pages(&self) -> usize {
        let list = self.slabs.list.lock();
        let mut pages = 0;
        let mut cur = list.head;
        while let Some(c) = NonNull::new(cur) {
            // SAFETY: Caches on the list are allocated; we hold the list lock.
            let s = unsafe { c.as_ref() };
            if s.is_dying() {
                if s.is_orphan() {
                    pages += s.node_slab_pages(&s.node.lock()) + (1 << s.mem_order);
                }
            } else if !s.layout.flags.intersects(SLAB_NO_REAP) {
                pages += parked_slab_pages(s);
                let node = s.node.lock();
                let mut slab = node.first(super::node::Which::Partial);
                while let Some(d) = slab {
                    // SAFETY: On the partial list, under its lock.
                    unsafe {
                        if (*d).inuse == 0 {
                            pages += s.slab_pages_of((*d).objects as usize);
                        }
                        slab = node.next_of(d);
                    }
                }
            }
            cur = s.next.load(Relaxed);
        }
        pages + self.slabs.rcu.pending.lock().nr_slabs
    }

    /// The shrinker's scan: tear down orphaned caches, shrink every cache except
    /// `SLAB_NO_REAP` ones, then release what waits for a grace period if no reader holds one
    /// up. Returns pages freed. Each cache is pinned while it is shrunk, with the list lock
    /// released (`walk_caches`): its destructor may create and destroy caches.
    pub(crate) fn shrink_for_reclaim(&self, _nr_to_scan: usize, _gfp: Gfp) -> usize {
        let mut freed = self.reap_orphans();
        self.walk_caches(|s| {
            if !s.layout.flags.intersects(SLAB_NO_REAP) {
                freed += self.shrink_cache(s);
            }
        });
        freed + self.rcu_poll_grace_period()
    }

    /// The direct-map base as an address (descriptor offsets are relative to it).
    #[inline(always)]
    pub(crate) fn direct_map_base(&self) -> usize {
        self.slabs.dm
    }

    /// `WARN_ON_ONCE(s->ctor && (flags & __GFP_ZERO))` in `new_slab`: zeroing an object
    /// undoes what the constructor made of it.
    #[cold]
    #[inline(never)]
    fn warn_ctor_zero(&self, s: &Cache, caller: &Location<'_>) {
        let what = format_args!("__GFP_ZERO for cache {} with a constructor", s.name());
        self.pages().warn_once(crate::page_alloc::warn_sites::SLAB_CTOR_ZERO, "new_slab", what, caller);
    }

    /// `kmalloc_fix_flags` (GFP-6, KM-11): reports the bits of `flags` a slab or large
    /// kmalloc allocation may not carry (`GFP_SLAB_BUG_MASK`: `__GFP_DMA32`, `__GFP_HIGHMEM`
    /// and anything outside `__GFP_BITS_MASK`), with a stack dump, and returns `flags` without
    /// them; the allocation goes on with the fixed mask. Callers test the mask first.
    #[cold]
    #[inline(never)]
    pub(crate) fn kmalloc_fix_flags(&self, flags: Gfp, caller: &Location<'_>) -> Gfp {
        let invalid = flags.intersection(GFP_SLAB_BUG_MASK);
        let fixed = flags.difference(GFP_SLAB_BUG_MASK);
        self.platform().log(
            Level::Warning,
            format_args!(
                "Unexpected gfp: {:#x} ({invalid}). Fixing up to gfp: {:#x} ({fixed}). Fix your code!",
                invalid.bits(),
                fixed.bits(),
            ),
        );
        self.platform().dump_stack(caller);
        fixed
    }
}

/// Takes up to [`MAX_BATCH`] objects off the top of CPU array `c`: the objects and how many.
///
/// # Safety
/// The caller owns the array: its slot's owner inside the guard, or the holder of its claim.
unsafe fn take_batch(c: &CpuCache) -> ([*mut u8; MAX_BATCH], usize) {
    let mut batch = [ptr::null_mut(); MAX_BATCH];
    let count = c.count.load(Relaxed) as usize;
    let n = count.min(MAX_BATCH);
    // SAFETY: `objs[count - n..count]` are initialised entries of the array, which the caller
    // owns.
    unsafe { ptr::copy_nonoverlapping(c.objs.add(count - n), batch.as_mut_ptr(), n) };
    c.count.store((count - n) as u32, Relaxed);
    (batch, n)
}

/// What objects parked in per-CPU arrays of `s` could give back if flushed: the pages of as
/// many slabs as they would fill. Without it, reclaim would see nothing to free while a
/// cache's free objects all wait in CPU arrays (their slabs look in use), and would give up.
fn parked_slab_pages(s: &Cache) -> usize {
    if !s.fast {
        return 0;
    }
    let parked: usize =
        (0..s.nr_cpus as usize).map(|cpu| s.cpu(cpu).count.load(Relaxed) as usize).sum::<usize>() + s.barn_objects();
    parked.div_ceil(s.objects as usize) << s.order
}
