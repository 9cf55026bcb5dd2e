//! Creating, merging and destroying caches (SEMANTICS §3.1–3.4, §3.7; SL-1, SL-2, SL-6, SL-12),
//! and the kmalloc caches made at boot (`create_kmalloc_caches`).

use core::fmt;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

use super::cache::{Cache, CacheArgs, CacheRef, CacheStats, CpuCache, ObjFn, reciprocal};
use super::flags::{self, InvalidSlabFlags, SLAB_NO_USER_FLAGS, SLAB_PANIC, SLAB_POISON, SLAB_TYPESAFE_BY_RCU};
use super::flags::{SLAB_KMALLOC, SLAB_RED_ZONE, SLAB_STORE_USER, SlabFlags};
use super::layout::{self, CACHE_LINE_SIZE, LayoutError, MergeRequest, MergeTarget};
use super::lifetime::{DestroyRequest, Teardown};
use super::node::{Node, Which};
use crate::gfp::{__GFP_NOFAIL, __GFP_NOWARN, __GFP_ZERO, GFP_ATOMIC, GFP_KERNEL, Gfp};
use crate::kmalloc::classes::{KMALLOC_INFO, KmallocType, kmalloc_cache_align};
use crate::kmem::Kmem;
use crate::order::{PAGE_SIZE, get_order};
use crate::pcp_guard::SlotGuard;
use crate::platform::{Level, Platform};
use crate::sync::SpinLock;
use crate::zone::ZoneType;

/// Why `kmem_cache_create` returned NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// Flags outside the permitted set (SL-2).
    InvalidFlags(InvalidSlabFlags),
    /// The size, alignment or free-pointer offset cannot make a cache.
    Layout(LayoutError),
    /// No memory for the cache structure.
    NoMemory,
}

impl CreateError {
    /// The kernel's error number (`-EINVAL`, `-ENOSYS` or `-ENOMEM`).
    pub const fn errno(&self) -> i32 {
        match self {
            CreateError::InvalidFlags(e) => e.errno(),
            CreateError::Layout(e) => e.errno(),
            CreateError::NoMemory => -12,
        }
    }
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::InvalidFlags(e) => write!(f, "{e}"),
            CreateError::Layout(e) => write!(f, "{e}"),
            CreateError::NoMemory => f.write_str("no memory for the cache (error -12)"),
        }
    }
}

impl core::error::Error for CreateError {}

/// `kmem_cache_destroy` found objects still allocated (SL-12): the reports were printed and
/// the cache's memory is kept, unlinked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestroyError {
    /// Objects still allocated.
    pub live_objects: usize,
}

impl fmt::Display for DestroyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slab cache still has {} objects", self.live_objects)
    }
}

impl core::error::Error for DestroyError {}

/// Objects a CPU's array holds for a cache of this stride (refills and flushes move half).
const fn cpu_array_cap(size: usize) -> u32 {
    if size <= 256 {
        128
    } else if size <= 1024 {
        64
    } else if size <= PAGE_SIZE {
        32
    } else {
        16
    }
}

impl<P: Platform> Kmem<P> {
    /// `kmem_cache_create(name, size, args, flags)`: a new cache, or an existing compatible
    /// one with one more reference (merging, SL-6). On failure the kernel's warning is logged
    /// (`SLAB_PANIC` panics instead).
    ///
    /// # Errors
    /// [`CreateError`] for invalid flags, an impossible layout, or no memory.
    ///
    /// # Panics
    /// With `SLAB_PANIC`, when creation fails.
    #[track_caller]
    pub fn kmem_cache_create(
        &self,
        name: &str,
        size: usize,
        args: &CacheArgs,
        flags: SlabFlags,
    ) -> Result<CacheRef, CreateError> {
        let caller = Location::caller();
        match self.kmem_cache_create_unreported(name, size, args, flags) {
            Ok(c) => Ok(c),
            Err(e) => {
                if flags.intersects(SLAB_PANIC) {
                    panic!("kmem_cache_create: Failed to create slab '{name}'. Error {}", e.errno());
                }
                self.platform().log(
                    Level::Warning,
                    format_args!(
                        "__kmem_cache_create_args({name}) failed with error {}: {}",
                        e.errno(),
                        // The reason without the errno, which the line gives already.
                        crate::page_alloc::Show(|f| match &e {
                            CreateError::InvalidFlags(e) => e.describe(f),
                            CreateError::Layout(e) => e.describe(f),
                            CreateError::NoMemory => f.write_str("no memory for the cache"),
                        })
                    ),
                );
                self.platform().dump_stack(caller);
                Err(e)
            }
        }
    }

    /// [`Kmem::kmem_cache_create`] without its report: a failure is returned with no warning
    /// logged and no panic, even with `SLAB_PANIC`, for a caller that reports it in its own way
    /// (the C ABI, where `SLAB_PANIC` is the kernel's `panic()`: the process aborts).
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_create`].
    pub fn kmem_cache_create_unreported(
        &self,
        name: &str,
        size: usize,
        args: &CacheArgs,
        flags: SlabFlags,
    ) -> Result<CacheRef, CreateError> {
        self.reap_orphans();
        flags::validate(flags).map_err(CreateError::InvalidFlags).and_then(|()| {
            // `slab_debug=` flags come after the check, as `kmem_cache_flags()` adds them.
            let flags = if flags.intersects(SLAB_NO_USER_FLAGS) { flags } else { self.slab_debug_flags(name, flags) };
            self.create_cache(name, size, args, flags, true, GFP_KERNEL)
        })
    }

    /// The legacy five-argument `kmem_cache_create(name, size, align, flags, ctor)`: the
    /// kernel's `_Generic` macro turns it into the args form with only `align` and `ctor` set
    /// (SL-1).
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_create`].
    ///
    /// # Panics
    /// With `SLAB_PANIC`, when creation fails.
    #[track_caller]
    pub fn kmem_cache_create_legacy(
        &self,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<super::cache::ObjFn>,
    ) -> Result<CacheRef, CreateError> {
        self.kmem_cache_create(name, size, &CacheArgs { align, ctor, ..CacheArgs::default() }, flags)
    }

    /// The flags `slab_debug=` adds for a cache of this name (none by default).
    fn slab_debug_flags(&self, name: &str, flags: SlabFlags) -> SlabFlags {
        flags.union(self.slabs.config.debug.flags_for(name))
    }

    /// A cache for `name`: an alias of a mergeable one if `may_merge`, else a new one, built
    /// and put on the cache list.
    pub(crate) fn create_cache(
        &self,
        name: &str,
        size: usize,
        args: &CacheArgs,
        flags: SlabFlags,
        may_merge: bool,
        mem_gfp: Gfp,
    ) -> Result<CacheRef, CreateError> {
        // Before the merge check, which computes with them (audit: a huge alignment or size
        // overflowed `merge_size`).
        layout::check_args(size, args.align).map_err(CreateError::Layout)?;
        if may_merge && let Some(c) = self.find_mergeable(size, args, flags) {
            return Ok(c);
        }
        let cache = self.build_cache(name, size, args, flags, mem_gfp, false)?;
        self.list_cache(cache);
        Ok(CacheRef(cache))
    }

    /// A new cache, fully written and marked (safe operations accept its handle) but on no
    /// list and in no table: only the caller knows it. [`Self::list_cache`] publishes it;
    /// [`Self::discard_unlisted_cache`] gives it back.
    ///
    /// `boot`: a kmalloc cache, which the kernel makes at boot and kmem on first use: its
    /// memory is not the request's, so `fail_page_alloc` does not see it (a kmalloc that would
    /// pass fault injection's filters does not fail for want of its cache).
    fn build_cache(
        &self,
        name: &str,
        size: usize,
        args: &CacheArgs,
        flags: SlabFlags,
        mem_gfp: Gfp,
        boot: bool,
    ) -> Result<NonNull<Cache>, CreateError> {
        let align = layout::calculate_alignment(flags, args.align, size, CACHE_LINE_SIZE);
        let is_kmalloc = flags.intersects(SLAB_KMALLOC);
        let mut lay = layout::calculate_sizes(size, align, flags, args.ctor.is_some(), args.freeptr_offset, is_kmalloc)
            .map_err(CreateError::Layout)?;
        // `kmem_cache_open` with `slab_debug=O`: debug metadata that raises the order one object
        // needs is dropped (`DEBUG_METADATA_FLAGS`), the other debug flags stay.
        let metadata = SLAB_RED_ZONE.union(SLAB_POISON).union(SLAB_STORE_USER);
        let flags = if self.slabs.config.debug.disables_higher_order_debug()
            && flags.intersects(metadata)
            && get_order(lay.size) > get_order(size)
        {
            let flags = flags.difference(metadata);
            lay = layout::calculate_sizes(size, align, flags, args.ctor.is_some(), args.freeptr_offset, is_kmalloc)
                .map_err(CreateError::Layout)?;
            flags
        } else {
            flags
        };
        let (order, objects) = layout::calculate_order(lay.size, self.nr_cpus() as u32, self.slabs.config.min_objects)
            .map_err(CreateError::Layout)?;
        let nr_cpus = self.nr_cpus();
        let cap = cpu_array_cap(lay.size);
        let random_seq = self.slabs.config.random_freelist && objects >= 2;
        let header = size_of::<Cache>().next_multiple_of(64);
        let cpus_at = header;
        let objs_at = cpus_at + nr_cpus * size_of::<CpuCache>();
        let seq_at = objs_at + nr_cpus * cap as usize * size_of::<usize>();
        let name_at = seq_at + if random_seq { objects * 2 } else { 0 };
        let total = name_at + name.len();
        let mem_order = get_order(total);
        let mem_gfp = mem_gfp.union(__GFP_ZERO);
        let mem = if boot {
            self.pages().alloc_pages_boot(mem_gfp, mem_order).map(|p| self.page_address(p).expect("lowmem"))
        } else {
            self.pages().get_free_pages(mem_gfp, mem_order)
        }
        .map_err(|_| CreateError::NoMemory)?;
        self.slabs.cache_pages.fetch_add(1 << mem_order, Relaxed);
        let base = mem.as_ptr();
        let rcu_or_poison = flags.intersects(SLAB_TYPESAFE_BY_RCU.union(SLAB_POISON));
        let plain = args.ctor.is_none() && !rcu_or_poison;
        // SAFETY: `mem` is a fresh zeroed block of `total` bytes or more, ours alone; every
        // part is written before the cache is published on the list.
        unsafe {
            let cpus = base.add(cpus_at).cast::<CpuCache>();
            for cpu in 0..nr_cpus {
                cpus.add(cpu).write(CpuCache {
                    guard: SlotGuard::new(),
                    count: AtomicU32::new(0),
                    cap,
                    objs: base.add(objs_at + cpu * cap as usize * size_of::<usize>()).cast(),
                    alloc_fast: AtomicU64::new(0),
                    free_fast: AtomicU64::new(0),
                    alloc_slow: AtomicU64::new(0),
                });
            }
            let seq = base.add(seq_at).cast::<u16>();
            if random_seq {
                super::hardening::shuffle(core::slice::from_raw_parts_mut(seq, objects), &self.slabs.rng);
            }
            ptr::copy_nonoverlapping(name.as_ptr(), base.add(name_at), name.len());
            base.cast::<Cache>().write(Cache {
                cpus: NonNull::new_unchecked(cpus),
                nr_cpus: nr_cpus as u32,
                fast: !lay.flags.is_debug(),
                init_on_alloc: self.slabs.config.init_on_alloc && plain,
                gfp_zero: !(self.slabs.config.init_on_alloc && args.ctor.is_some()),
                init_on_free: self.slabs.config.init_on_free && plain,
                size: lay.size,
                recip: reciprocal(lay.size),
                objects: objects as u32,
                order,
                random: self.slabs.rng.next_u64() as usize,
                layout: lay,
                object_size: AtomicUsize::new(size),
                inuse: AtomicUsize::new(lay.inuse),
                min_order: get_order(lay.size),
                min_partial: layout::min_partial(lay.size),
                ctor: args.ctor,
                dtor: args.dtor,
                useroffset: args.useroffset,
                usersize: args.usersize,
                unlisted: args.unlisted,
                failslab: AtomicBool::new(lay.flags.intersects(super::flags::SLAB_FAILSLAB)),
                sheaf_capacity: if lay.flags.is_debug() { 0 } else { args.sheaf_capacity },
                barn: SpinLock::new(super::sheaf::Barn::new()),
                node: SpinLock::new(Node::new(self.direct_map_base(), objects)),
                node_has_free: AtomicBool::new(true),
                refcount: AtomicIsize::new(1),
                ops: super::lifeword::LifeWord::new(),
                destroy: SpinLock::new(DestroyRequest::default()),
                next: AtomicPtr::new(ptr::null_mut()),
                name_ptr: base.add(name_at),
                name_len: name.len(),
                random_seq: if random_seq { seq } else { ptr::null() },
                mem_order,
                stats: CacheStats::default(),
                shim: super::shim::ShimHooks::new(),
            });
        }
        let cache = base.cast::<Cache>();
        // Fully written: safe operations may accept handles to it from now on.
        self.publish_cache_mark(cache);
        // SAFETY: Non-null: made from a page address.
        Ok(unsafe { NonNull::new_unchecked(cache) })
    }

    /// Puts a cache from [`Self::build_cache`] on the cache list (`slabinfo`, walks, merging).
    fn list_cache(&self, cache: NonNull<Cache>) {
        let mut list = self.slabs.list.lock();
        // SAFETY: Fully initialised by `build_cache`, on no list yet; linked under the list lock.
        unsafe { cache.as_ref() }.next.store(list.head, Relaxed);
        list.head = cache.as_ptr();
        list.len += 1;
    }

    /// Gives back a cache from [`Self::build_cache`] that was never listed nor published, so
    /// nothing can hold it, nothing was allocated from it, and it has no slab: its mark goes,
    /// then its block. No grace period, no orphan reaping, no hook: it is a plain free, safe
    /// in any context the creation itself was.
    ///
    /// # Safety
    /// `cache` came from `build_cache` and was never listed nor handed out.
    unsafe fn discard_unlisted_cache(&self, cache: NonNull<Cache>) {
        // SAFETY: The caller's promise: nobody else knows the cache.
        let order = unsafe { cache.as_ref() }.mem_order;
        self.retire_cache_mark(cache.as_ptr());
        // SAFETY: The cache's own block (`build_cache`), unknown to anyone else.
        unsafe { self.free_cache_block(cache, order) };
    }

    /// Gives back a cache's own block (`build_cache`'s, of `order`), uncounting it.
    ///
    /// # Safety
    /// Nothing reaches the cache any more: unmarked, on no list, in no table, pinned by no one.
    pub(crate) unsafe fn free_cache_block(&self, cache: NonNull<Cache>, order: u32) {
        self.slabs.cache_pages.fetch_sub(1 << order, Relaxed);
        // SAFETY: The caller's promise.
        unsafe { self.pages().free_pages_addr(cache.as_ptr().cast(), order) };
    }

    /// `find_mergeable` + `__kmem_cache_alias`: the oldest compatible cache, with one more
    /// reference and its sizes raised to fit the new user.
    fn find_mergeable(&self, size: usize, args: &CacheArgs, flags: SlabFlags) -> Option<CacheRef> {
        let req = MergeRequest {
            object_size: size,
            align: args.align,
            flags,
            has_ctor: args.ctor.is_some(),
            usersize: args.usersize,
        };
        let nomerge = !self.slabs.config.merge;
        // A destructor, like a constructor, makes a cache its owner's alone; so does being
        // unlisted.
        // A cache with sheaves of its own capacity is special enough not to merge (6.18's
        // `find_mergeable`, later `SLAB_NO_MERGE`).
        if nomerge || args.dtor.is_some() || args.unlisted || args.sheaf_capacity != 0 {
            return None;
        }
        let list = self.slabs.list.lock();
        let mut found = None;
        let mut cur = list.head;
        while let Some(c) = NonNull::new(cur) {
            // SAFETY: Caches on the list are allocated; we hold the list lock.
            let s = unsafe { c.as_ref() };
            // A cache with the userspace shim's gate on (`shim.rs`) takes no new users: they
            // would be gated without having asked, and unwarned.
            if s.is_dying() || s.unlisted || s.sheaf_capacity != 0 || s.shim.on() {
                cur = s.next.load(Relaxed);
                continue;
            }
            let target = MergeTarget {
                size: s.size,
                flags: s.layout.flags,
                has_ctor: s.ctor.is_some() || s.dtor.is_some(),
                usersize: s.usersize,
                refcount: s.refcount.load(Relaxed) as i32,
            };
            if layout::mergeable(nomerge, &req, &target, CACHE_LINE_SIZE) {
                found = Some(c); // Newest first: the last match is the oldest.
            }
            cur = s.next.load(Relaxed);
        }
        let c = found?;
        // SAFETY: As above.
        let s = unsafe { c.as_ref() };
        s.refcount.fetch_add(1, Relaxed);
        let (object_size, inuse) = layout::alias_sizes(s.object_size(), s.inuse.load(Relaxed), size);
        s.object_size.store(object_size, Relaxed);
        s.inuse.store(inuse, Relaxed);
        Some(CacheRef(c))
    }

    /// `kmem_cache_destroy`: drops one reference; the last one flushes every per-CPU array,
    /// frees every slab and the cache itself. With objects still allocated it prints the
    /// kernel's two reports, keeps the cache's memory (unlinked) and returns `Err` (SL-12).
    ///
    /// If a slab operation still holds the cache when the last reference goes — this call
    /// comes from a constructor or destructor of the cache (a `Drop` dropping a typed cache's
    /// last handle), reclaim or a thread's exit is flushing it on another thread, or slabs of an
    /// RCU cache wait for a grace period — the handle dies now (checked calls refuse it,
    /// `slabinfo` and `for_each_cache` no longer show it) and the teardown, reports included,
    /// is left to the last of those operations; the call returns `Ok` (see `lifetime.rs`).
    ///
    /// # Errors
    /// [`DestroyError`] when objects were still allocated.
    ///
    /// A handle that is not a live cache of this machine (another machine's, or one already
    /// destroyed) is reported and ignored (`Ok`).
    ///
    /// # Safety
    /// No other thread may use `cache` during a call that drops the last reference; objects
    /// still allocated must not be freed to it afterwards, no slab mempool made over it
    /// (`kmem::mempool::RawMempool::slab_pool`, `mempool_create_slab_pool`: they allocate
    /// without checking the handle) may be used afterwards, and no `&Cache` from
    /// [`Kmem::cache`] (or name from [`Kmem::cache_name`]) may be used afterwards (safe
    /// operations on the handle afterwards are refused and reported).
    #[track_caller]
    pub unsafe fn kmem_cache_destroy(&self, cache: CacheRef) -> Result<(), DestroyError> {
        // SAFETY: The caller's promise, passed on.
        unsafe { self.destroy_cache(cache, None, Location::caller()) }
    }

    /// [`Kmem::kmem_cache_destroy`], and once the cache's memory has gone back — in this call
    /// or in the operation the teardown was left to — `release.func(release.ctx, null)` runs:
    /// the destroyer frees what its constructor and destructor use (`kmem::KmemCache` frees
    /// its closure this way). `release` never runs if this call does not drop the last
    /// reference, nor if the teardown keeps the cache for objects still allocated (their later
    /// frees may still run the destructor).
    ///
    /// # Errors
    /// As [`Kmem::kmem_cache_destroy`].
    ///
    /// # Safety
    /// As [`Kmem::kmem_cache_destroy`]; and `release.func` may be called with `release.ctx`
    /// and a null object from whichever thread ends the teardown, with no slab lock held.
    #[track_caller]
    pub unsafe fn kmem_cache_destroy_notify(&self, cache: CacheRef, release: ObjFn) -> Result<(), DestroyError> {
        // SAFETY: The caller's promise, passed on.
        unsafe { self.destroy_cache(cache, Some(release), Location::caller()) }
    }

    /// Both destroys.
    ///
    /// # Safety
    /// As [`Kmem::kmem_cache_destroy_notify`].
    unsafe fn destroy_cache(
        &self,
        cache: CacheRef,
        release: Option<ObjFn>,
        caller: &'static Location<'static>,
    ) -> Result<(), DestroyError> {
        self.reap_orphans();
        let Some(s) = self.checked_cache(cache, "kmem_cache_destroy", caller) else { return Ok(()) };
        // Pending `kfree_rcu` objects of this cache are freed first (`kvfree_rcu_barrier`).
        // Inside the caller's own read-side section the barrier is refused (reported once,
        // naming the caller) and the destroy goes on as in atomic context: no waiting, so
        // objects still queued for `kfree_rcu` count as remaining (docs/deviations.md).
        // Only an RCU cache's destroy is an `rcu_barrier` that runs `call_rcu` callbacks.
        let may_wait = !self.platform().in_atomic()
            && if s.layout.flags.intersects(SLAB_TYPESAFE_BY_RCU) {
                self.rcu_barrier_at(caller)
            } else {
                self.kvfree_rcu_barrier_at(caller)
            };
        // Those frees may have emptied slabs of an RCU cache into the grace-period list, each
        // pinning the cache (which would keep it after a successful destroy): empty the CPU
        // arrays into the slabs and wait once more, so they are gone before the teardown.
        if may_wait && s.layout.flags.intersects(SLAB_TYPESAFE_BY_RCU) {
            self.shrink_cache(s);
            self.rcu_barrier_at(caller);
        }
        let ours = {
            let list = self.slabs.list.lock();
            if s.refcount.fetch_sub(1, Relaxed) > 1 {
                return Ok(());
            }
            // The last reference: safe operations refuse the handle from now on (kept off even
            // when objects remain and the memory is kept, SL-12).
            self.retire_cache_mark(cache.as_ptr());
            for row in &self.slabs.kmalloc {
                for slot in row {
                    let _ = slot.compare_exchange(cache.as_ptr(), ptr::null_mut(), Relaxed, Relaxed);
                }
            }
            *s.destroy.lock() = DestroyRequest { release, caller: Some(caller) };
            // Dying: walks and merging skip it from now on. The teardown is ours unless an
            // operation holds the cache; then the last of them does it.
            self.mark_dying(s, &list)
        };
        if !ours {
            return Ok(());
        }
        match self.teardown(cache.0, may_wait).0 {
            Teardown::Kept(live) => Err(DestroyError { live_objects: live }),
            Teardown::Freed | Teardown::Handed => Ok(()),
        }
    }

    /// `list_slab_objects` for every partial slab still holding objects; returns how many
    /// objects are live in all slabs. As `free_partial` in `__kmem_cache_shutdown` walks only
    /// the node's partial list, the objects of full slabs are counted but not listed
    /// (SEMANTICS §3.7, SL-12).
    pub(crate) fn report_remaining(&self, s: &Cache, caller: &Location<'_>) -> usize {
        let node = s.node.lock();
        let mut live = 0;
        for which in [Which::Partial, Which::Full] {
            let mut cur = node.first(which);
            while let Some(slab) = cur {
                // SAFETY: Slabs on the node's lists, under its lock.
                let (inuse, objects, pfn, mut fp) = unsafe {
                    ((*slab).inuse as usize, (*slab).objects as usize, (*slab).pfn as usize, (*slab).freelist)
                };
                live += inuse;
                if inuse > 0 && matches!(which, Which::Partial) {
                    let base = self.pfn_address(pfn).expect("slab in lowmem").as_ptr();
                    let mut free = [0u64; layout::MAX_OBJS_PER_PAGE.div_ceil(64)];
                    let mut guard = objects;
                    while !fp.is_null() && guard > 0 {
                        if let Some(i) = s.obj_index(base as usize, fp as usize) {
                            free[i / 64] |= 1 << (i % 64);
                        }
                        // SAFETY: `fp` is a free object of this slab (node lock held).
                        fp = unsafe { s.get_freepointer(fp) };
                        guard -= 1;
                    }
                    // `list_slab_objects`: the header, each object still out with its
                    // tracking, then `__slab_err`: the slab's summary and the warning.
                    self.count_slab_report();
                    self.slab_bug(s, format_args!("Objects remaining on __kmem_cache_shutdown()"));
                    for i in (0..objects).filter(|i| free[i / 64] & (1 << (i % 64)) == 0) {
                        let obj = s.obj_at(base, i);
                        self.platform().log(
                            Level::Err,
                            format_args!("Object 0x{:x} @offset={}", obj as usize, obj as usize - base as usize),
                        );
                        self.print_tracking(s, obj);
                    }
                    self.print_slab_info(slab);
                    self.slab_warn("__slab_err", caller);
                }
                // SAFETY: As above.
                cur = unsafe { node.next_of(slab) };
            }
        }
        live
    }

    /// The kmalloc cache of class `index` and type `ty`, created on first use (kmem's
    /// deviation from `create_kmalloc_caches`, which makes them all at boot: a machine that
    /// never calls kmalloc keeps its pages). Creation uses `gfp`'s ability to sleep.
    ///
    /// No lock is held while the cache is made: its memory may come from reclaim, which runs
    /// other caches' destructors, which may `kmalloc` a class not made yet on this very thread
    /// (a lock held across the creation deadlocked there:
    /// `tests/front_doors/hook_kmalloc.rs`). The cache is built off the list, published in the
    /// table with a compare-and-swap, and only then listed; a creator that finds the slot
    /// filled meanwhile (a racing thread, or a nested creation of the same class) discards its
    /// own — which nobody else can have seen — with a plain free and returns the published one.
    /// (Discarding through `kmem_cache_destroy` waited for a grace period, so a first kmalloc
    /// inside `rcu_read_lock` that lost the race waited for itself.)
    #[cold]
    pub(crate) fn kmalloc_cache_create(&self, index: usize, ty: KmallocType, gfp: Gfp) -> Option<CacheRef> {
        if ty == KmallocType::Dma && !self.zone_configured(ZoneType::Dma) {
            return None;
        }
        let slot = &self.slabs.kmalloc[ty as usize][index];
        if let Some(c) = NonNull::new(slot.load(Acquire)) {
            return Some(CacheRef(c));
        }
        let info = KMALLOC_INFO[index];
        let args = CacheArgs { align: kmalloc_cache_align(info.size), ..CacheArgs::default() };
        let name = info.name(ty);
        let flags = self.slab_debug_flags(name, ty.slab_flags());
        let blocking = gfp.allow_blocking() && !self.platform().in_atomic();
        // The kernel makes these caches at boot, so a kmalloc never fails for want of one: a
        // `__GFP_NOFAIL` caller's first use of a class does not fail here either.
        let mem_gfp =
            if blocking { GFP_KERNEL.union(gfp.intersection(__GFP_NOFAIL)) } else { GFP_ATOMIC }.union(__GFP_NOWARN);
        let c = self.build_cache(name, info.size, &args, flags, mem_gfp, true).ok()?;
        match slot.compare_exchange(ptr::null_mut(), c.as_ptr(), Release, Acquire) {
            Ok(_) => {
                self.list_cache(c);
                Some(CacheRef(c))
            }
            Err(published) => {
                // SAFETY: `c` was built just above and never listed nor published.
                unsafe { self.discard_unlisted_cache(c) };
                NonNull::new(published).map(CacheRef)
            }
        }
    }

    /// Every live cache, newest first (`slab_caches`), as handles. Each cache is held while
    /// `f` runs on it, and the cache list lock is not held: `f` may allocate, free, create and
    /// destroy caches (a destroy of the cache `f` was given finishes after `f` returns).
    /// Caches created during the walk may be missed; a cache whose last reference goes while
    /// `f` runs (on any thread) is from then on a dead handle to the checked calls.
    ///
    /// Unlisted caches ([`CacheArgs::unlisted`]) are skipped.
    pub fn for_each_cache(&self, mut f: impl FnMut(CacheRef)) {
        self.walk_caches(|s| {
            if !s.unlisted {
                f(CacheRef(NonNull::from(s)));
            }
        });
    }

    /// Whether a live cache named `name` is on the cache list, unlisted ones included (no
    /// handle is handed out).
    pub fn cache_listed(&self, name: &str) -> bool {
        let mut found = false;
        self.walk_caches(|s| found |= s.name() == name);
        found
    }
}
