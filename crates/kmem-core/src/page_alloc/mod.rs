//! The page allocator (`mm/page_alloc.c`): zones with buddy free lists, per-CPU lists,
//! watermarks, the slow path with reclaim, OOM handling and waiting, and the public page API.
//!
//! Locks: one zone lock at a time (`Zone::area`), under the sysctl lock when the watermarks are
//! recomputed (`wmark_lock`, outermost, held only by `recompute_watermarks`); the shrinker and
//! OOM-notifier registries' table locks are leaves held only to copy or edit the table (reclaim
//! passes run unlocked and concurrently). Per-CPU lists are owned by their CPU slot, entered
//! through its [`crate::pcp_guard::SlotGuard`] (no lock). Nothing is allocated while a zone lock is held, and
//! no callback runs under any lock; hole punching (`trim`, `trim_aged`) runs with no lock held, on
//! blocks taken off the free lists first (isolated), so no one can allocate them meanwhile.
//!
//! Where the pieces are: `freelist` (fast path, per-CPU lists, freeing, drains), `slowpath`
//! (`alloc_pages`, reclaim, OOM, sleeping), `api` (exact/bulk/split and address conversions),
//! `meminit` (`init_on_alloc`/`init_on_free` and page zeroing, §2.10), `sysctl` (the sysctls and
//! the watermarks, reserves and per-CPU list sizes they give), `zonelist` (the zones a request may
//! use, from `gfp_zone`), `reports` (`warn_alloc`, the `WARN_ON_ONCE` sites, bad page,
//! `might_sleep`, OOM, fault-injection dumps), `trim` (memory back to the host in batches, as free
//! page reporting).

mod api;
mod freelist;
mod highatomic;
mod meminit;
mod oom;
mod pcp_tune;
mod reports;
pub(crate) use reports::Show;
pub use reports::once as warn_sites;
mod slowpath;
mod sysctl;
mod trim;
mod zonelist;
pub(crate) use zonelist::ZoneList;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::fault::FaultAttr;
use crate::memmap::{MemMap, pg};
use crate::order::{MAX_PAGE_ORDER, PAGE_SIZE};
use crate::pcp::{MAX_CPUS, PcpSlot};
use crate::platform::Platform;
use crate::reclaim::{OomNotifier, RegistrationId, Registry, Shrinker};
use crate::report::Ratelimit;
use crate::waitq::WaitQueue;
use crate::watermark;
use crate::zone::{MAX_NR_ZONES, MigrateType, Wmark, Zone, ZoneType};

/// The per-CPU data-cache slice assumed until [`PageAllocator::set_pcp_cache_slice_bytes`]
/// says otherwise: 2 MiB, a core's share of a typical server L3 (Linux reads it from the
/// CPU's cache information).
pub const DEFAULT_CACHE_SLICE_BYTES: usize = 2 << 20;

/// The physical memory a [`PageAllocator`] manages.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// First managed pfn.
    pub start_pfn: usize,
    /// One past the last pfn.
    pub end_pfn: usize,
    /// Each configured zone's `[start, end)` pfn range by zone index (`None`: not configured).
    /// Ranges are ascending, contiguous and cover `[start_pfn, end_pfn)`; a range may be empty.
    pub zones: [Option<(usize, usize)>; MAX_NR_ZONES],
    /// Where pfn `start_pfn` is mapped (the direct map). Blocks are naturally aligned in pfns,
    /// so for their addresses to be aligned to their sizes (PA-3, KM-6: `kmalloc(8192)` is
    /// 8 KiB aligned, a 4 MiB kmalloc 4 MiB aligned) pfn 0's address (`direct_map` less
    /// `start_pfn` pages) must be aligned to the largest block lowmem can hold:
    /// [`direct_map_alignment`], 4 MiB for 4 MiB of lowmem or more. A map aligned less is
    /// refused (the kmem crate's machine, like the kernel's direct map, is aligned further).
    pub direct_map: NonNull<u8>,
    /// One past the last directly mapped pfn (lowmem end); pages above are HighMem.
    pub direct_map_end_pfn: usize,
    /// log2 of pages per pageblock (≤ `MAX_PAGE_ORDER`).
    pub pageblock_order: u32,
    /// The memory is known to be zero-filled (fresh), so the page array needs no clearing.
    pub zeroed: bool,
}

/// Tunables of a [`PageAllocator`].
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// `vm.min_free_kbytes`; `None` computes it from lowmem (`calculate_min_free_kbytes`).
    pub min_free_kbytes: Option<usize>,
    /// `vm.watermark_scale_factor` (default 10 = 0.1 %).
    pub watermark_scale_factor: usize,
    /// Per-CPU page lists on (off: boot pagesets, batch 1 and high 0, every page via the buddy).
    pub pcp: bool,
    /// How long a request that may not fail waits for memory after reclaim and the OOM
    /// notifiers made no progress before it fails (kmem's deviation: there is no process to kill).
    pub oom_timeout_ns: u64,
    /// `vm.watermark_boost_factor` (`boost.rs`). Linux's default is
    /// [`crate::boost::DEFAULT_WATERMARK_BOOST_FACTOR`]; this one is 0 (off), because only
    /// [`PageAllocator::kswapd_balance`] takes a boost back: set Linux's value on a platform
    /// whose `wake_kswapd` gets `kswapd_balance` run (as the `kmem` crate's kswapd thread does).
    pub watermark_boost_factor: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_free_kbytes: None,
            watermark_scale_factor: 10,
            pcp: true,
            oom_timeout_ns: 5_000_000_000,
            watermark_boost_factor: 0,
        }
    }
}

impl Config {
    /// The sysctls' ranges, which `new` (before it computes watermarks from them: a huge
    /// scale factor overflowed) and the setters (`set_min_free_kbytes`…) check.
    fn check(&self) -> Result<(), InitError> {
        if self.min_free_kbytes.is_some_and(|kb| kb > i32::MAX as usize) {
            return Err(InitError("min_free_kbytes must be 0..=2147483647 (the sysctl's int)"));
        }
        if !(1..=3000).contains(&self.watermark_scale_factor) {
            return Err(InitError("watermark_scale_factor must be 1..=3000"));
        }
        if self.watermark_boost_factor > i32::MAX as usize {
            return Err(InitError("watermark_boost_factor must be 0..=2147483647 (the sysctl's int)"));
        }
        Ok(())
    }
}

/// Why a [`PageAllocator`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitError(pub &'static str);

/// The largest watermark [`PageAllocator::set_zone_watermarks`] takes, in pages: far above
/// any zone (2^48 pages of 4 KiB is 1 EiB), and low enough that a mark plus a lowmem reserve
/// plus a block can never overflow (the reserves and blocks are bounded by the machine).
pub const MAX_WMARK_PAGES: usize = 1 << 48;

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

impl core::error::Error for InitError {}

/// Event counters (`/proc/vmstat` style).
#[derive(Default)]
pub struct Stats {
    /// Pages allocated from the buddy lists directly, per zone (see [`PageAllocator::nr_pgalloc`]
    /// for the total including per-CPU allocations). This and `pgfree` are written only under
    /// the zone's lock.
    pub pgalloc: [AtomicUsize; MAX_NR_ZONES],
    /// Pages freed to the buddy lists directly, per zone (see [`PageAllocator::nr_pgfree`]).
    pub pgfree: [AtomicUsize; MAX_NR_ZONES],
    /// Direct reclaim passes, by the highest zone of the request that entered them
    /// (`allocstall_<zone>`: the kernel counts `sc->reclaim_idx`, `gfp_zone`'s zone, which is
    /// always a configured one: `__GFP_HIGHMEM` without HighMem means Normal).
    pub allocstall: [AtomicUsize; MAX_NR_ZONES],
    /// Requests to free everything the shrinkers can ([`PageAllocator::shrink_all`]:
    /// `drop_slab`, as `echo 2 > /proc/sys/vm/drop_caches` counts).
    pub drop_slab: AtomicUsize,
    /// Requests that failed with no CPU slot (per-slot counts are in [`PcpSlot::alloc_fail`];
    /// [`PageAllocator::nr_alloc_fail`] is the total).
    alloc_fail: AtomicUsize,
    /// OOM events (`oom_kill` counts kills; here: OOM reports).
    pub oom: AtomicUsize,
    /// Times the background reclaimer was woken by a request with no CPU slot (see
    /// [`PageAllocator::nr_kswapd_wakeups`] for the total).
    kswapd_wakeups: AtomicUsize,
    /// Bad pages (PA-16: freed in a bad state, or found holding a reference when taken off a
    /// free list; each is leaked) and bad frees, counted whether reported or rate-limited.
    pub bad_pages: AtomicUsize,
    /// Per-CPU list refills from the buddy lists.
    pub pcp_refills: AtomicUsize,
    /// Pages whose memory went back to the host (in free blocks of at least a pageblock).
    pub trimmed_pages: AtomicUsize,
    /// Aging scans run (`trim_aged`).
    pub trim_scans: AtomicUsize,
    /// Batches of free blocks given back to the host (`trim`, `trim_aged`): each took at most
    /// [`crate::buddy::PAGE_REPORTING_CAPACITY`] blocks off the free lists under one hold of
    /// the zone lock, which was dropped while their memory was discarded.
    pub trim_batches: AtomicUsize,
    /// Background reclaim rounds run (`kswapd_balance`).
    pub kswapd_rounds: AtomicUsize,
    /// Times a request slept waiting for a free.
    pub sleeps: AtomicUsize,
}

/// The id the next [`PageAllocator`] gets (ids start at 1; 0 means "none" to whoever keeps
/// one, such as `Vmalloc`'s binding).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The page allocator of one machine.
///
/// # Invariants
/// `id` is unique among every allocator built in this process (never 0, never reused), and it
/// moves with the allocator: it names the machine, not the place it lives.
pub struct PageAllocator<P: Platform> {
    platform: P,
    /// Identity of this allocator (see [`PageAllocator::id`]).
    id: u64,
    mm: MemMap,
    zones: [Zone; MAX_NR_ZONES],
    configured: [bool; MAX_NR_ZONES],
    /// The zonelist for each result of `gfp_zone`.
    zonelists: [ZoneList; MAX_NR_ZONES],
    pcp: [PcpSlot; MAX_CPUS],
    nr_cpus: usize,
    pcp_enabled: bool,
    /// `init_on_alloc`/`init_on_free` (`meminit`): set before the allocator is shared, then fixed.
    init: meminit::MemInit,
    /// The memory was zero-filled when the allocator was built (`Layout::zeroed`).
    zeroed_at_boot: bool,
    direct_map: NonNull<u8>,
    direct_map_end_pfn: usize,
    reserved_pages: usize,
    min_free_kbytes: AtomicUsize,
    watermark_scale_factor: AtomicUsize,
    /// `vm.watermark_boost_factor` (`boost.rs`).
    watermark_boost_factor: AtomicUsize,
    /// The data-cache slice per CPU that `PCPF_FREE_HIGH_BATCH` is derived from.
    cache_slice_bytes: AtomicUsize,
    /// Pools initialised over this allocator get mempool debugging (`PoolEnv::debug_pools`).
    mempool_debug: AtomicBool,
    oom_timeout_ns: AtomicU64,
    /// `pgdat->kswapd_failures`: background reclaim runs in a row that reclaimed nothing.
    /// Raised by a `kswapd_balance` run that found the zones unbalanced and made no
    /// progress, reset to 0 by any reclaim pass (direct or kswapd) that made progress; at
    /// `MAX_RECLAIM_RETRIES` the node is hopeless and kswapd is not woken.
    kswapd_failures: AtomicU32,
    /// `pgdat->kswapd_order`: the largest order a waker asked kswapd for since its last run.
    kswapd_order: AtomicU32,
    /// `pgdat->kswapd_highest_zoneidx`: the highest zone index a waker asked for since
    /// kswapd's last run (`MAX_NR_ZONES`: none, the run considers every zone).
    kswapd_highest_zoneidx: AtomicU32,
    /// Requests sleeping until a free.
    waitq: WaitQueue,
    /// `oom_lock`: one request at a time in the OOM step (`oom.rs`).
    oom_lock: crate::sync::SpinLock<()>,
    /// `setup_per_zone_wmarks`'s lock: one recompute of the watermarks at a time, so the last
    /// one reads every setting written before it and no stale recompute overwrites it.
    wmark_lock: crate::sync::SpinLock<()>,
    shrinkers: Registry<dyn Shrinker>,
    oom_notifiers: Registry<dyn OomNotifier>,
    fail_page_alloc: FaultAttr,
    /// The `WARN_ON_ONCE` sites that have fired (`reports::once` bits): once per allocator.
    warned: AtomicU16,
    warn_rs: Ratelimit,
    bad_page_rs: Ratelimit,
    might_sleep_rs: Ratelimit,
    stats: Stats,
}

// SAFETY: `direct_map` is a plain address into memory the allocator manages; everything the
// allocator shares between threads is atomic, behind a lock, or per-CPU by `Platform::cpu`.
unsafe impl<P: Platform> Send for PageAllocator<P> {}
// SAFETY: As above.
unsafe impl<P: Platform> Sync for PageAllocator<P> {}

impl<P: Platform> PageAllocator<P> {
    /// The first pfn past the direct map.
    #[inline]
    pub(crate) fn direct_map_end_pfn(&self) -> usize {
        self.direct_map_end_pfn
    }

    /// Builds the allocator over `layout`: carves the page array from the top of the direct
    /// map (those pages become reserved), frees every other page into the buddy lists, and
    /// computes watermarks, lowmem reserves and per-CPU list sizes.
    ///
    /// # Errors
    /// An inconsistent layout, a direct map aligned less than [`direct_map_alignment`], more
    /// CPUs than [`MAX_CPUS`], a sysctl of `config` out of range (as its setter would refuse
    /// it), or a direct map that the page array fills. (A board far smaller
    /// than a `MAX_PAGE_ORDER` block boots; it should set [`Config::min_free_kbytes`], since
    /// Linux's floor of 128 KiB would be above its memory.)
    ///
    /// # Safety
    /// `layout.direct_map` must point to `direct_map_end_pfn - start_pfn` pages of memory, valid
    /// for reads and writes and used by nothing else while the allocator lives; if
    /// `layout.zeroed`, that memory must be zero-filled.
    pub unsafe fn new(platform: P, layout: Layout, config: Config) -> Result<Self, InitError> {
        let nr_cpus = platform.nr_cpus();
        if nr_cpus == 0 || nr_cpus > MAX_CPUS {
            return Err(InitError("number of CPUs must be 1..=64"));
        }
        validate(&layout)?;
        config.check()?;
        let meta_pages =
            MemMap::bytes_needed(layout.start_pfn, layout.end_pfn, layout.pageblock_order).div_ceil(PAGE_SIZE);
        let lowmem = layout.direct_map_end_pfn - layout.start_pfn;
        if meta_pages >= lowmem {
            return Err(InitError("too little directly mapped memory: nothing is left after the page array"));
        }
        let meta_start = layout.direct_map_end_pfn - meta_pages;
        // SAFETY: `meta_start - start_pfn < lowmem`, so the offset stays inside the direct map.
        let storage = unsafe { layout.direct_map.add((meta_start - layout.start_pfn) * PAGE_SIZE) };
        // SAFETY: The caller owns the direct map; these pages are taken out of management
        // before anything else can use them, and are zeroed if `layout.zeroed` says so.
        let mm =
            unsafe { MemMap::new(storage, layout.start_pfn, layout.end_pfn, layout.pageblock_order, layout.zeroed) };
        for pfn in meta_start..layout.direct_map_end_pfn {
            let page = mm.page(pfn);
            page.info.store(pg::RESERVED, Relaxed);
            page.refcount.store(1, Relaxed);
        }
        let mut block = layout.start_pfn;
        while block < layout.end_pfn {
            mm.set_pageblock_mt(block, MigrateType::Movable);
            block = (block | ((1 << layout.pageblock_order) - 1)) + 1;
        }
        let mut zones = ZoneType::ALL.map(|kind| {
            let (s, e) = layout.zones[kind as usize].unwrap_or((layout.end_pfn, layout.end_pfn));
            Zone::new(kind, s, e)
        });
        for zone in &mut zones {
            let reserved = overlap((zone.start_pfn, zone.end_pfn), (meta_start, layout.direct_map_end_pfn));
            zone.managed = zone.present - reserved;
            let mut area = zone.lock();
            let (s, e) = (zone.start_pfn, zone.end_pfn);
            for (a, b) in [(s, e.min(meta_start).max(s)), (s.max(layout.direct_map_end_pfn).min(e), e)] {
                add_range(&mm, &mut area, a, b, layout.zeroed);
            }
            zone.publish(&area);
        }
        let configured: [bool; MAX_NR_ZONES] =
            core::array::from_fn(|i| layout.zones[i].is_some() || i == ZoneType::Movable as usize);
        let zonelists = ZoneType::ALL.map(|kind| {
            let highest = if configured[kind as usize] { kind } else { ZoneType::Normal };
            ZoneList::build(highest, &zones, configured[ZoneType::Dma32 as usize])
        });
        let allocator = Self {
            platform,
            // INVARIANT: A fresh value of a counter that only grows (a `u64` does not wrap
            // within a process lifetime, even at one allocator per nanosecond).
            id: NEXT_ID.fetch_add(1, Relaxed),
            mm,
            zones,
            configured,
            zonelists,
            pcp: core::array::from_fn(|_| PcpSlot::new()),
            nr_cpus,
            pcp_enabled: config.pcp,
            init: meminit::MemInit::OFF,
            zeroed_at_boot: layout.zeroed,
            direct_map: layout.direct_map,
            direct_map_end_pfn: layout.direct_map_end_pfn,
            reserved_pages: meta_pages,
            min_free_kbytes: AtomicUsize::new(0),
            watermark_scale_factor: AtomicUsize::new(config.watermark_scale_factor),
            watermark_boost_factor: AtomicUsize::new(config.watermark_boost_factor),
            cache_slice_bytes: AtomicUsize::new(DEFAULT_CACHE_SLICE_BYTES),
            mempool_debug: AtomicBool::new(false),
            oom_timeout_ns: AtomicU64::new(config.oom_timeout_ns),
            kswapd_failures: AtomicU32::new(0),
            kswapd_order: AtomicU32::new(0),
            kswapd_highest_zoneidx: AtomicU32::new(MAX_NR_ZONES as u32),
            waitq: WaitQueue::new(),
            oom_lock: crate::sync::SpinLock::new(()),
            wmark_lock: crate::sync::SpinLock::new(()),
            shrinkers: Registry::new(),
            oom_notifiers: Registry::new(),
            fail_page_alloc: FaultAttr::fail_page_alloc_defaults(),
            warned: AtomicU16::new(0),
            warn_rs: Ratelimit::new(10_000_000_000, 1),
            bad_page_rs: Ratelimit::new(60_000_000_000, 60),
            might_sleep_rs: Ratelimit::new(1_000_000_000, 1),
            stats: Stats::default(),
        };
        let min_free = config.min_free_kbytes.unwrap_or_else(|| {
            let lowmem_kb: usize =
                allocator.zones.iter().filter(|z| !z.kind.is_highmem()).map(|z| z.managed * (PAGE_SIZE / 1024)).sum();
            watermark::min_free_kbytes_for(lowmem_kb)
        });
        allocator.min_free_kbytes.store(min_free, Relaxed);
        allocator.recompute_watermarks();
        Ok(allocator)
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// This allocator's identity: unique among every allocator built in this process, never 0,
    /// and the same wherever the allocator is moved. Structures that hand this allocator's
    /// frames around (vmalloc) use it to refuse another machine's allocator, which an address
    /// cannot do (an allocator may move, and another may later be built at the same place).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The page array.
    pub fn memmap(&self) -> &MemMap {
        &self.mm
    }

    /// Every zone, populated or not, in index order.
    pub fn zones(&self) -> &[Zone; MAX_NR_ZONES] {
        &self.zones
    }

    /// The zone of a kind.
    pub fn zone(&self, kind: ZoneType) -> &Zone {
        &self.zones[kind as usize]
    }

    /// Whether a zone kind exists in this machine's configuration.
    pub fn zone_configured(&self, kind: ZoneType) -> bool {
        self.configured[kind as usize]
    }

    /// Number of CPU slots.
    pub fn nr_cpus(&self) -> usize {
        self.nr_cpus
    }

    /// Whether per-CPU lists are on.
    pub fn pcp_enabled(&self) -> bool {
        self.pcp_enabled
    }

    /// A CPU slot's current high mark for a zone's lists (`pcp->high`, auto-tuned between
    /// [`Zone::pcp_high`] and [`Zone::pcp_high_max`]), as last published.
    pub fn pcp_high(&self, cpu: usize, zone: ZoneType) -> usize {
        let z = &self.zones[zone as usize];
        let published = self.pcp[cpu].zones[zone as usize].high.load(Relaxed);
        published.clamp(z.pcp_high() as usize, (z.pcp_high_max() as usize).max(z.pcp_high() as usize))
    }

    /// Pages per CPU slot per zone on per-CPU lists, as last published.
    pub fn pcp_count(&self, cpu: usize, zone: ZoneType) -> usize {
        self.pcp[cpu].zones[zone as usize].count.load(Relaxed)
    }

    /// Pages taken by the page array (reserved, not managed).
    pub fn reserved_pages(&self) -> usize {
        self.reserved_pages
    }

    /// Pages managed by the buddy allocator over all zones (`totalram_pages`).
    pub fn total_managed(&self) -> usize {
        self.zones.iter().map(Zone::managed).sum()
    }

    /// Free pages over all zones (buddy lists only).
    pub fn total_free(&self) -> usize {
        self.zones.iter().map(Zone::free_pages).sum()
    }

    /// Event counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// `pgalloc_<zone>`: pages allocated from a zone, per-CPU allocations included.
    pub fn nr_pgalloc(&self, kind: ZoneType) -> usize {
        let z = kind as usize;
        self.sum_event(&self.stats.pgalloc[z], |s| &s.zones[z].pgalloc)
    }

    /// Direct-reclaim passes, all zones together (`Stats::allocstall` is per zone).
    pub fn nr_allocstall(&self) -> usize {
        self.stats.allocstall.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Requests that failed (`Stats::alloc_fail` plus every CPU slot's count).
    pub fn nr_alloc_fail(&self) -> usize {
        self.sum_event(&self.stats.alloc_fail, |s| &s.alloc_fail)
    }

    /// Times the background reclaimer was woken (`Stats::kswapd_wakeups` plus every CPU
    /// slot's count).
    pub fn nr_kswapd_wakeups(&self) -> usize {
        self.sum_event(&self.stats.kswapd_wakeups, |s| &s.kswapd_wakeups)
    }

    /// An event's total: the `shared` counter plus every CPU slot's (`slot` picks the field).
    fn sum_event(&self, shared: &AtomicUsize, slot: impl Fn(&PcpSlot) -> &AtomicUsize) -> usize {
        shared.load(Relaxed) + self.pcp[..self.nr_cpus].iter().map(|s| slot(s).load(Relaxed)).sum::<usize>()
    }

    /// Counts one event (`count_vm_event`: no shared read-modify-write) on the caller's CPU
    /// slot `cpu` (as [`Platform::cpu`] answered) if it has one, else on the `shared` counter.
    #[inline(always)]
    fn count_event(&self, cpu: Option<usize>, shared: &AtomicUsize, slot: impl Fn(&PcpSlot) -> &AtomicUsize) {
        match cpu {
            Some(cpu) => PcpSlot::bump(slot(&self.pcp[cpu]), 1),
            None => {
                shared.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts a failed request ([`Self::count_event`]).
    #[inline(always)]
    fn count_alloc_fail(&self, cpu: Option<usize>) {
        self.count_event(cpu, &self.stats.alloc_fail, |s| &s.alloc_fail);
    }

    /// Counts a kswapd wake-up ([`Self::count_event`]).
    #[inline(always)]
    fn count_kswapd_wakeup(&self, cpu: Option<usize>) {
        self.count_event(cpu, &self.stats.kswapd_wakeups, |s| &s.kswapd_wakeups);
    }

    /// `pgfree`: pages freed, per-CPU frees included.
    pub fn nr_pgfree(&self) -> usize {
        self.stats.pgfree.iter().map(|c| c.load(Relaxed)).sum::<usize>()
            + self.pcp[..self.nr_cpus].iter().flat_map(|s| &s.zones).map(|z| z.pgfree.load(Relaxed)).sum::<usize>()
    }

    /// The `fail_page_alloc` fault-injection knobs.
    pub fn fail_page_alloc(&self) -> &FaultAttr {
        &self.fail_page_alloc
    }

    /// Registers a shrinker that reclaim calls.
    ///
    /// # Safety
    /// `shrinker` must stay valid until [`Self::unregister_shrinker`] returns for the id, and
    /// its callbacks must not unregister the shrinker itself (that would wait for their own
    /// call to end).
    pub unsafe fn register_shrinker(&self, shrinker: NonNull<dyn Shrinker>) -> Option<RegistrationId> {
        // SAFETY: Forwarded contract.
        unsafe { self.shrinkers.register(shrinker) }
    }

    /// Removes a shrinker; returns once no reclaim pass can still call it (it waits only for
    /// calls of this shrinker in progress). False (nothing removed) for a stale id or an id of
    /// another registry. Code that reclaim runs — other shrinkers, OOM notifiers, the
    /// destructors the slab shrinker runs — may call it; the shrinker's own callbacks must not
    /// (they would wait for themselves).
    pub fn unregister_shrinker(&self, id: RegistrationId) -> bool {
        self.shrinkers.unregister(id)
    }

    /// Registers an OOM notifier.
    ///
    /// # Safety
    /// As [`Self::register_shrinker`].
    pub unsafe fn register_oom_notifier(&self, notifier: NonNull<dyn OomNotifier>) -> Option<RegistrationId> {
        // SAFETY: Forwarded contract.
        unsafe { self.oom_notifiers.register(notifier) }
    }

    /// Removes an OOM notifier, as [`Self::unregister_shrinker`].
    pub fn unregister_oom_notifier(&self, id: RegistrationId) -> bool {
        self.oom_notifiers.unregister(id)
    }

    /// The zone holding `pfn`.
    #[inline]
    pub fn pfn_zone(&self, pfn: usize) -> Option<&Zone> {
        self.zones.iter().find(|z| z.contains(pfn))
    }

    /// Checks every invariant of the free lists and per-CPU lists; panics on a broken one.
    /// Takes every zone lock in turn and walks all free pages: tests only.
    ///
    /// # Safety
    /// No context may be using a per-CPU slot meanwhile (the per-CPU lists are read).
    #[cfg(any(test, feature = "check"))]
    pub unsafe fn check(&self) {
        for zone in &self.zones {
            let area = zone.lock();
            area.check(&self.mm, (zone.start_pfn, zone.end_pfn));
            assert_eq!(area.nr_free_pages, zone.free_pages(), "zone {} nr_free mirror", zone.name());
            self.check_highatomic(zone, &area);
        }
        for cpu in 0..self.nr_cpus {
            for (zi, zone) in self.zones.iter().enumerate() {
                // SAFETY: The caller promises no slot is in use.
                let lists = unsafe { self.pcp[cpu].lists(zi) };
                let mut pages = 0;
                lists.for_each(&self.mm, |pfn, order, _| {
                    assert!(zone.contains(pfn), "pcp page {pfn:#x} outside zone {}", zone.name());
                    assert_eq!(self.mm.page(pfn).flags() & pg::PCP, pg::PCP);
                    assert_eq!(self.mm.page(pfn).order(), order);
                    pages += 1 << order;
                });
                assert_eq!(pages, lists.count(), "cpu {cpu} zone {} pcp count", zone.name());
            }
        }
    }
}

/// Where pfn 0 would be mapped: `direct_map` less `start_pfn` pages (wrapping: only its
/// alignment matters).
fn pfn0_address(layout: &Layout) -> usize {
    (layout.direct_map.as_ptr() as usize).wrapping_sub(layout.start_pfn.wrapping_mul(PAGE_SIZE))
}

/// The alignment [`Layout::direct_map`] needs: blocks are naturally aligned in pfns, so a
/// block's address is aligned to its size (PA-3, and through it kmalloc's size alignment,
/// KM-6) exactly when pfn 0's address is aligned to the largest block lowmem can hold — a
/// `MAX_PAGE_ORDER` block, or for a smaller lowmem the largest power of two of pages in it.
/// The kernel's direct map is aligned that way (physical addresses are, and `PAGE_OFFSET` is
/// aligned further).
pub fn direct_map_alignment(layout: &Layout) -> usize {
    let lowmem = layout.direct_map_end_pfn.saturating_sub(layout.start_pfn).max(1);
    let order = (usize::BITS - 1 - lowmem.leading_zeros()).min(MAX_PAGE_ORDER);
    PAGE_SIZE << order
}

fn validate(layout: &Layout) -> Result<(), InitError> {
    if layout.start_pfn >= layout.end_pfn {
        return Err(InitError("empty memory range"));
    }
    if layout.end_pfn > u32::MAX as usize {
        return Err(InitError("memory above 16 TiB is not supported"));
    }
    if layout.pageblock_order > MAX_PAGE_ORDER {
        return Err(InitError("pageblock_order must be <= MAX_PAGE_ORDER"));
    }
    if layout.direct_map_end_pfn <= layout.start_pfn || layout.direct_map_end_pfn > layout.end_pfn {
        return Err(InitError("direct map end outside the memory range"));
    }
    if !(layout.direct_map.as_ptr() as usize).is_multiple_of(PAGE_SIZE) {
        return Err(InitError("direct map must be page aligned"));
    }
    if !pfn0_address(layout).is_multiple_of(direct_map_alignment(layout)) {
        return Err(InitError(
            "direct map misaligned: pfn 0's address (direct_map less start_pfn pages) must be aligned to the largest block lowmem can hold (4 MiB, or lowmem rounded down to a power of two)",
        ));
    }
    let mut expect = layout.start_pfn;
    for (kind, range) in ZoneType::ALL.iter().zip(layout.zones.iter()) {
        let Some(range) = range else { continue };
        if range.0 != expect || range.1 < range.0 {
            return Err(InitError("zones must be ascending, contiguous and cover the memory range"));
        }
        if !kind.is_highmem() && range.1 > layout.direct_map_end_pfn {
            return Err(InitError("DMA, DMA32 and Normal zones must lie inside the direct map"));
        }
        expect = range.1;
    }
    if expect != layout.end_pfn {
        return Err(InitError("zones must cover the memory range"));
    }
    Ok(())
}

fn overlap(a: (usize, usize), b: (usize, usize)) -> usize {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

/// Frees `[a, b)` into `area` as maximal naturally aligned blocks.
fn add_range(mm: &MemMap, area: &mut crate::buddy::FreeArea, mut a: usize, b: usize, zeroed: bool) {
    while a < b {
        let align = if a == 0 { MAX_PAGE_ORDER } else { a.trailing_zeros().min(MAX_PAGE_ORDER) };
        let fit = usize::BITS - 1 - (b - a).leading_zeros();
        let order = align.min(fit);
        // Fresh memory the host has not backed yet counts as released already.
        let extra = if zeroed && order >= mm.pageblock_order() { pg::TRIMMED } else { 0 };
        area.add(mm, a, order, mm.pageblock_mt(a), true, extra);
        a += 1 << order;
    }
}
