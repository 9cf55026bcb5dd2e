//! `/proc/slabinfo` (SEMANTICS §3.10, SL-17), the Slab lines of `/proc/meminfo`, the OOM
//! report's `Unreclaimable slab info:` (`dump_unreclaimable_slab`), and per-cache statistics.

use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::cache::{Cache, CacheRef};
use super::flags::SLAB_RECLAIM_ACCOUNT;
use crate::kmem::Kmem;
use crate::platform::Platform;

/// A snapshot of one cache's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheInfo {
    /// Objects handed out of slabs: allocated, or free in a CPU's array (`active_objs`).
    pub active_objs: usize,
    /// Objects in all slabs (`num_objs`).
    pub num_objs: usize,
    /// Slabs (`num_slabs`).
    pub slabs: usize,
    /// Slabs on the partial list.
    pub partial_slabs: usize,
    /// Pages of all slabs.
    pub pages: usize,
    /// Allocations served by a CPU's array.
    pub alloc_fast: u64,
    /// Allocations that took the slow path.
    pub alloc_slow: u64,
    /// Frees into a CPU's array.
    pub free_fast: u64,
    /// Frees that took the slow path.
    pub free_slow: u64,
    /// Batches moved from the node into a CPU's array.
    pub refills: u64,
    /// Batches moved from a full CPU's array back to the slabs.
    pub flushes: u64,
    /// Times another context emptied CPU arrays (shrink, destroy, reclaim).
    pub remote_drains: u64,
    /// Slabs made.
    pub new_slabs: u64,
    /// Slabs given back.
    pub freed_slabs: u64,
    /// Slabs made at the minimum order after the preferred order failed.
    pub order_fallback: u64,
    /// Free objects waiting in the CPUs' arrays (counted in `active_objs`).
    pub cpu_objects: usize,
    /// Objects in full sheaves kept for the next prefill (the barn; counted in `active_objs`).
    pub barn_objects: usize,
}

impl CacheInfo {
    /// Objects out with their users: `active_objs` less those parked in the CPUs' arrays and
    /// the barn. (A sheaf a caller holds counts all its objects, taken or not.) The three are
    /// read one after the other while other threads move objects, so the difference saturates
    /// at 0 rather than underflowing.
    pub fn in_use(&self) -> usize {
        self.active_objs.saturating_sub(self.cpu_objects).saturating_sub(self.barn_objects)
    }
}

impl<P: Platform> Kmem<P> {
    /// The numbers of `cache`.
    ///
    /// # Panics
    /// If `cache` is not a live cache of this machine (another machine's, or destroyed).
    #[track_caller]
    pub fn cache_info(&self, cache: CacheRef) -> CacheInfo {
        let Some(s) = self.cache(cache) else {
            panic!("cache_info: {cache:?} is not a live slab cache of this machine (another machine's, or destroyed)")
        };
        info_of(s)
    }

    /// Writes `/proc/slabinfo`: the version and header lines, then one line per cache,
    /// newest first, in the kernel's exact format (SL-17). A destroyed cache is not listed,
    /// even while its teardown waits for an operation in progress (`lifetime.rs`). `w` runs
    /// without the cache list lock.
    ///
    /// # Errors
    /// Only what `w` returns.
    pub fn slabinfo(&self, w: &mut dyn Write) -> fmt::Result {
        w.write_str("slabinfo - version: 2.1\n")?;
        w.write_str("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n")?;
        let mut result = Ok(());
        self.walk_caches(|s| {
            if result.is_ok() {
                let info = info_of(s);
                result = slabinfo_line(w, s, &info);
            }
        });
        result
    }

    /// Slab pages as `/proc/meminfo` counts them: `(SReclaimable, SUnreclaim)`. Large kmalloc
    /// pages count as unreclaimable, as in the kernel; so do the pages holding cache
    /// structures and slab descriptors (kmem's `struct kmem_cache` and `struct slab`).
    /// Caches whose teardown is still pending count too: their slabs are still there; so do
    /// the slabs of caches destroyed with objects still out (kept for good).
    pub fn slab_pages(&self) -> (usize, usize) {
        let (mut rec, mut unrec) = (0, 0);
        {
            let list = self.slabs.list.lock();
            let mut cur = list.head;
            while let Some(c) = NonNull::new(cur) {
                // SAFETY: Caches on the list are allocated; we hold the list lock.
                let s = unsafe { c.as_ref() };
                let pages = s.node_slab_pages(&s.node.lock());
                if s.layout.flags.intersects(SLAB_RECLAIM_ACCOUNT) {
                    rec += pages;
                } else {
                    unrec += pages;
                }
                cur = s.next.load(Relaxed);
            }
        }
        rec += self.slabs.kept_slab_pages[1].load(Relaxed);
        unrec += self.slabs.kept_slab_pages[0].load(Relaxed)
            + self.slabs.large_kmalloc_pages.load(Relaxed)
            + self.slabs.cache_pages.load(Relaxed)
            + self.slabs.descs.pages.load(Relaxed);
        (rec, unrec)
    }

    /// `should_dump_unreclaim_slab` (mm/oom_kill.c): unreclaimable slab memory exceeds the
    /// pages on the LRU lists. A kmem machine has no LRU pages (no anonymous or file memory:
    /// `show_mem` prints every LRU count as 0), so this is "any unreclaimable slab page", as
    /// `SUnreclaim` counts them ([`Kmem::slab_pages`]: large kmalloc pages and kmem's cache
    /// structures and slab descriptors included, as the kernel's `NR_SLAB_UNRECLAIMABLE_B`
    /// includes large kmalloc and `struct kmem_cache` objects).
    pub fn should_dump_unreclaim_slab(&self) -> bool {
        const NR_LRU: usize = 0;
        self.slab_pages().1 > NR_LRU
    }

    /// `dump_unreclaimable_slab` (mm/slab_common.c), part of the OOM report: a header, a column
    /// line, then one line per cache without `SLAB_RECLAIM_ACCOUNT` that has objects (newest
    /// first, as the cache list is kept), `%-17s %10luKB %10luKB`: active and total objects
    /// times the stride, in KiB rounded down (the numbers of `/proc/slabinfo`, SL-17). The
    /// kernel only try-locks `slab_mutex` here (a sleeping lock held across allocations) and
    /// prints `excessive unreclaimable slab but cannot dump stats` when it is busy; kmem's
    /// cache list lock is a spin lock never held while allocating, so it is simply taken.
    pub fn dump_unreclaimable_slab(&self) {
        let log = |args: fmt::Arguments<'_>| self.platform().log(crate::platform::Level::Info, args);
        log(format_args!("Unreclaimable slab info:"));
        log(format_args!("Name                      Used          Total"));
        self.walk_caches(|s| {
            if s.layout.flags.intersects(SLAB_RECLAIM_ACCOUNT) {
                return;
            }
            let info = info_of(s);
            if info.num_objs > 0 {
                log(format_args!(
                    "{:<17} {:>10}KB {:>10}KB",
                    s.name(),
                    info.active_objs * s.size / 1024,
                    info.num_objs * s.size / 1024
                ));
            }
        });
    }

    /// `validate_slab_cache` (sysfs `validate`): flushes the per-CPU arrays, checks every slab
    /// and its freelist and, for debug caches, every object against the fills of its state,
    /// reporting and repairing each problem in the kernel's words (SEMANTICS §3.8); then the
    /// node's lists and counters. Returns the number of slabs, or the first broken invariant.
    ///
    /// # Errors
    /// A description of what is inconsistent.
    #[track_caller]
    pub fn validate_slab_cache(&self, cache: CacheRef) -> Result<usize, &'static str> {
        let caller = core::panic::Location::caller();
        let s = self.checked_cache(cache, "validate_slab_cache", caller).ok_or("not a live cache of this machine")?;
        // Held for the call: flushing may run the destructor, which may destroy the cache.
        self.pin_cache(s);
        let result = self.validate_cache(s, caller);
        self.unpin_cache(cache.0);
        result
    }

    /// The name of `cache`, if it is a live cache of this machine.
    pub fn cache_name(&self, cache: CacheRef) -> Option<&str> {
        self.cache(cache).map(Cache::name)
    }

    /// The cache named `name`, newest first (aliases have no name of their own); unlisted
    /// caches ([`crate::slab::CacheArgs::unlisted`]) are not handed out.
    pub fn find_cache(&self, name: &str) -> Option<CacheRef> {
        let mut found = None;
        self.for_each_cache(|c| {
            if found.is_none() && c.get().name() == name {
                found = Some(c);
            }
        });
        found
    }
}

/// The numbers of `s`.
pub(crate) fn info_of(s: &Cache) -> CacheInfo {
    let (num_objs, slabs, partial_slabs, partial_free, pages) = {
        let node = s.node.lock();
        (node.total_objects, node.nr_slabs, node.partial.len, node.partial_free, s.node_slab_pages(&node))
    };
    let mut info = CacheInfo {
        active_objs: num_objs - partial_free,
        num_objs,
        slabs,
        partial_slabs,
        pages,
        alloc_slow: s.stats.alloc_slow.load(Relaxed),
        free_slow: s.stats.free_slow.load(Relaxed),
        refills: s.stats.refills.load(Relaxed),
        flushes: s.stats.flushes.load(Relaxed),
        remote_drains: s.stats.remote_drains.load(Relaxed),
        new_slabs: s.stats.new_slabs.load(Relaxed),
        freed_slabs: s.stats.freed_slabs.load(Relaxed),
        order_fallback: s.stats.order_fallback.load(Relaxed),
        barn_objects: s.barn_objects(),
        ..CacheInfo::default()
    };
    for cpu in 0..s.nr_cpus as usize {
        if s.fast {
            info.cpu_objects += s.cpu(cpu).count.load(Relaxed) as usize;
        }
        info.alloc_fast += s.cpu(cpu).alloc_fast.load(Relaxed);
        info.free_fast += s.cpu(cpu).free_fast.load(Relaxed);
        info.alloc_slow += s.cpu(cpu).alloc_slow.load(Relaxed);
    }
    info
}

fn slabinfo_line(w: &mut dyn Write, s: &Cache, info: &CacheInfo) -> fmt::Result {
    writeln!(
        w,
        "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
        s.name(),
        info.active_objs,
        info.num_objs,
        s.size,
        s.objects,
        1u32 << s.order,
        0,
        0,
        0,
        info.slabs,
        info.slabs,
        0
    )
}
