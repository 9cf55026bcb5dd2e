//! A userspace machine: memfd "physical memory" with a direct map, the page allocator over
//! it, threads as CPU slots, the printk ring, and a background reclaimer (kswapd). The
//! [`Platform`] the core runs on (slots, clock, waits, the log) is `user_platform.rs`.
//!
//! Profiles (DESIGN §3), by physical address:
//! - `i386`: DMA [0, 16 MiB), Normal [16 MiB, 896 MiB), HighMem [896 MiB, end); HighMem is
//!   not in the direct map. Pageblocks of 4 MiB (order 10). Default size 1 GiB.
//! - `x86_64`: DMA [0, 16 MiB), DMA32 [16 MiB, 4 GiB), Normal above. Pageblocks of 2 MiB.
//!   Default size: the host's RAM (the memfd is sparse; untouched pages cost nothing).
//!
//! Locks: the page allocator's (see `kmem_core::page_alloc`); the printk ring mutex is a leaf
//! taken only to append or read records. kswapd shares only a wake-up word and flags (stop,
//! reclaim asked, deferred work queued) with the machine, and holds the machine only while it
//! works; waking it takes no lock.

use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use std::{fmt, io, thread};

use kmem_core::boost::DEFAULT_WATERMARK_BOOST_FACTOR;
use kmem_core::fault::{FaultAttr, FaultPoint};
use kmem_core::order::PAGE_SIZE;
use kmem_core::page_alloc::{Config, InitError, Layout};
use kmem_core::pcp::MAX_CPUS;
use kmem_core::platform::{Level, Platform};
use kmem_core::slab::{DebugSpec, SlabConfig};
use kmem_core::vmalloc::Vmalloc;
use kmem_core::{AllocError, Kmem, PageAllocator};

use crate::cpu::{self, SlotOwner};
use crate::highmem::Highmem;
use crate::kswapd::{KswapdCtl, spawn_kswapd};
use crate::mapping::{UserMmu, VaRange};
use crate::printk::{Echo, Printk};
use crate::profile::MIB_PAGES;
pub use crate::profile::Profile;
use crate::sys;
use crate::user_platform::UserPlatform;

/// Why a machine could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// The host refused the memory, the address space or the thread (the error says which).
    Host(io::Error),
    /// The page allocator rejected the layout or settings.
    Init(InitError),
    /// A setting is out of range.
    Setting(String),
    /// A value a `KMEM_*` variable set ([`Builder::from_env`]) is out of range for the machine
    /// being built (checks that need the machine's zones).
    Env(crate::env::EnvError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Host(e) => e.fmt(f),
            BuildError::Init(e) => write!(f, "cannot initialise the page allocator: {e}"),
            BuildError::Setting(s) => f.write_str(s),
            BuildError::Env(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuildError {}

/// [`BuildError::Host`] for `e`, saying what the host refused.
fn host(e: io::Error, what: fmt::Arguments<'_>) -> BuildError {
    BuildError::Host(io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// What a [`Builder`] will build.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The profile.
    pub profile: Profile,
    /// Bytes of memory (`None`: the profile's default).
    pub mem_bytes: Option<u64>,
    /// CPU slots (`None`: 4 per host CPU, at most 64).
    pub cpus: Option<usize>,
    /// Per-CPU page lists.
    pub pcp: bool,
    /// Background reclaimer thread.
    pub kswapd: bool,
    /// `vm.min_free_kbytes` (`None`: computed).
    pub min_free_kbytes: Option<usize>,
    /// `vm.watermark_scale_factor`.
    pub watermark_scale_factor: usize,
    /// `vm.watermark_boost_factor` (0: no boosting; `None`: Linux's 15000 with kswapd, 0
    /// without, since only kswapd takes a boost back).
    pub watermark_boost_factor: Option<usize>,
    /// OOM wait before failing.
    pub oom_timeout: Duration,
    /// Log ring size in bytes.
    pub log_capacity: usize,
    /// Log echo to stderr.
    pub echo: Echo,
    /// `fail_page_alloc` spec.
    pub fail_page_alloc: Option<String>,
    /// kswapd's aging period for giving memory back to the host: a free block of at least a
    /// pageblock that stays free for one to two periods is released (`None`: only `trim` releases, see [`PageAllocator::trim`]).
    pub trim_after: Option<Duration>,
    /// Slab settings (`init_on_alloc`, `init_on_free`, freelist randomisation, merging).
    pub slab: SlabConfig,
    /// `slab_debug=` spec.
    pub slub_debug: Option<String>,
    /// `failslab` spec (`fail_page_alloc`'s syntax with failslab's keys).
    pub failslab: Option<String>,
    /// `fail_mempool_alloc` spec: `<interval>,<probability>,<space>,<times>[,verbose=N]`.
    pub fail_mempool_alloc: Option<String>,
    /// `fail_mempool_alloc_bulk` spec (same syntax as `fail_mempool_alloc`).
    pub fail_mempool_alloc_bulk: Option<String>,
    /// Mempool debugging for every pool on the machine: see [`Builder::mempool_debug`].
    pub mempool_debug: bool,
    /// Bytes of the vmalloc range (`None`: 128 MiB on i386, 64 GiB on x86_64).
    pub vmalloc_bytes: Option<u64>,
    /// Private memory (anonymous `MAP_PRIVATE`) instead of a shared memfd: see
    /// [`Builder::private_memory`].
    pub private_memory: bool,
}

/// Builds a [`Machine`].
#[derive(Clone, Debug)]
pub struct Builder {
    s: Settings,
    /// The text of `KMEM_MIN_FREE_KBYTES` while `min_free_kbytes` is the value it set, so
    /// that `build` names the variable if the machine cannot take the value.
    min_free_kbytes_env: Option<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// x86_64, host-sized, per-CPU lists and kswapd on, log not echoed.
    pub fn new() -> Self {
        Self {
            s: Settings {
                profile: Profile::X86_64,
                mem_bytes: None,
                cpus: None,
                pcp: true,
                kswapd: true,
                min_free_kbytes: None,
                watermark_scale_factor: 10,
                watermark_boost_factor: None,
                oom_timeout: Duration::from_secs(5),
                log_capacity: 1 << 20,
                echo: Echo::Off,
                fail_page_alloc: None,
                trim_after: Some(Duration::from_secs(1)),
                slab: SlabConfig::default(),
                slub_debug: None,
                mempool_debug: false,
                failslab: None,
                fail_mempool_alloc: None,
                fail_mempool_alloc_bulk: None,
                vmalloc_bytes: None,
                private_memory: false,
            },
            min_free_kbytes_env: None,
        }
    }

    /// The settings so far.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Sets the profile.
    pub fn profile(mut self, p: Profile) -> Self {
        self.s.profile = p;
        self
    }

    /// Sets the memory size in bytes (rounded down to whole pages).
    pub fn mem_bytes(mut self, bytes: u64) -> Self {
        self.s.mem_bytes = Some(bytes);
        self
    }

    /// Sets the number of CPU slots (1..=64).
    pub fn cpus(mut self, n: usize) -> Self {
        self.s.cpus = Some(n);
        self
    }

    /// Turns per-CPU page lists on or off.
    pub fn pcp(mut self, on: bool) -> Self {
        self.s.pcp = on;
        self
    }

    /// Turns the background reclaimer on or off.
    pub fn kswapd(mut self, on: bool) -> Self {
        self.s.kswapd = on;
        self
    }

    /// Sets `vm.min_free_kbytes`. [`Builder::build`] refuses a value whose watermarks leave
    /// no lowmem to allocate (see [`PageAllocator::max_min_free_kbytes`]).
    pub fn min_free_kbytes(mut self, kb: usize) -> Self {
        self.s.min_free_kbytes = Some(kb);
        self.min_free_kbytes_env = None;
        self
    }

    /// [`Builder::min_free_kbytes`] from `KMEM_MIN_FREE_KBYTES`, whose `text` a build error names.
    pub(crate) fn min_free_kbytes_from_env(self, kb: usize, text: String) -> Self {
        let mut b = self.min_free_kbytes(kb);
        b.min_free_kbytes_env = Some(text);
        b
    }

    /// Sets `vm.watermark_scale_factor`.
    pub fn watermark_scale_factor(mut self, f: usize) -> Self {
        self.s.watermark_scale_factor = f;
        self
    }

    /// Sets `vm.watermark_boost_factor`: how far fragmenting fallbacks may boost a zone's
    /// watermarks, in ten-thousandths of its high mark (0: off; at most `i32::MAX`, as the
    /// sysctl). The default is Linux's 15000 on a machine with kswapd, and 0 on one without:
    /// only kswapd takes a boost back (or [`PageAllocator::kswapd_balance`] called by hand).
    pub fn watermark_boost_factor(mut self, f: usize) -> Self {
        self.s.watermark_boost_factor = Some(f);
        self
    }

    /// Sets how long a request waits after OOM before failing.
    pub fn oom_timeout(mut self, d: Duration) -> Self {
        self.s.oom_timeout = d;
        self
    }

    /// Sets the log ring size.
    pub fn log_capacity(mut self, bytes: usize) -> Self {
        self.s.log_capacity = bytes;
        self
    }

    /// Sets which log records are echoed to stderr.
    pub fn log_echo(mut self, echo: Echo) -> Self {
        self.s.echo = echo;
        self
    }

    /// Sets `fail_page_alloc` as `<interval>,<probability>,<space>,<times>[,key=value…]`.
    pub fn fail_page_alloc(mut self, spec: impl Into<String>) -> Self {
        self.s.fail_page_alloc = Some(spec.into());
        self
    }

    /// Sets kswapd's aging period for releasing free memory to the host (`None`: never on its
    /// own; `trim` ([`PageAllocator::trim`]) still releases on demand). Needs kswapd.
    pub fn trim_after(mut self, period: Option<Duration>) -> Self {
        self.s.trim_after = period;
        self
    }

    /// Sets the size of the vmalloc range (`VMALLOC_TOTAL`), rounded down to whole pages; at
    /// least two pages (one area and its guard page), or [`Self::build`] refuses it.
    pub fn vmalloc_bytes(mut self, bytes: u64) -> Self {
        self.s.vmalloc_bytes = Some(bytes);
        self
    }

    /// Backs physical memory with anonymous `MAP_PRIVATE` memory instead of a `MAP_SHARED`
    /// memfd, so a `fork` child gets a copy-on-write copy of the whole machine (heap bytes and
    /// allocator state) instead of sharing it with the parent. Pages go back to the host with
    /// `madvise(MADV_DONTNEED)` instead of hole punching. A frame cannot then be mapped a
    /// second time, so vmalloc (and `kvmalloc`'s fallback) fails with `AllocError`, and an
    /// i386 machine may not have HighMem (at most 896 MiB). See [`Machine::fork_prepare`].
    pub fn private_memory(mut self, on: bool) -> Self {
        self.s.private_memory = on;
        self
    }

    /// Applies the `KMEM_*` environment variables (see [`crate::env::VARIABLES`]).
    ///
    /// # Errors
    /// A bad value, naming the variable.
    pub fn from_env(self) -> Result<Self, crate::env::EnvError> {
        crate::env::apply_process_env(self)
    }

    /// `init_on_alloc=`: zero every block of pages when it is allocated, as `__GFP_ZERO` does
    /// (§2.10), and slab objects on allocation; vmalloc memory (fresh or from the frame cache)
    /// comes zeroed too. Fixed once the machine is built, like the kernel's boot parameter.
    pub fn init_on_alloc(mut self, on: bool) -> Self {
        self.s.slab.init_on_alloc = on;
        self
    }

    /// `init_on_free=`: zero every block of pages when it is freed (so pages come zeroed,
    /// and the allocation side skips its zeroing, `__GFP_ZERO` included: §2.10), and slab
    /// objects on free; vmalloc memory (fresh or from the frame cache) comes zeroed too. Fixed
    /// once the machine is built, like the kernel's boot parameter.
    pub fn init_on_free(mut self, on: bool) -> Self {
        self.s.slab.init_on_free = on;
        self
    }

    /// `CONFIG_SLAB_FREELIST_RANDOM`: new slabs hand out objects in a random order (default on).
    pub fn random_freelist(mut self, on: bool) -> Self {
        self.s.slab.random_freelist = on;
        self
    }

    /// `slab_merge` (true, default) or `slab_nomerge` (false).
    pub fn slab_merge(mut self, on: bool) -> Self {
        self.s.slab.merge = on;
        self
    }

    /// Mempool debugging (the kernel's `CONFIG_SLUB_DEBUG_ON` for pools), off by default: every
    /// element a pool hands out is counted, so destroying a pool with any element still out
    /// is reported (without it, only reserve elements are, as the 2.6 kernel checked), and
    /// reserves are poisoned wherever the pool knows its elements' size. It costs an atomic
    /// count per `mempool_alloc` and the pool's lock per `mempool_free`.
    pub fn mempool_debug(mut self, on: bool) -> Self {
        self.s.mempool_debug = on;
        self
    }

    /// `slab_debug=`: debug flags for caches, e.g. `FZPU` or `Z,kmalloc-*` (checked at build).
    pub fn slub_debug(mut self, spec: impl Into<String>) -> Self {
        self.s.slub_debug = Some(spec.into());
        self
    }

    /// `failslab` knobs, in `fail_page_alloc` syntax with failslab's keys: `ignore-gfp-wait`,
    /// `cache-filter`, `verbose` (checked at build).
    pub fn failslab(mut self, spec: impl Into<String>) -> Self {
        self.s.failslab = Some(spec.into());
        self
    }

    /// `fail_mempool_alloc` knobs: `<interval>,<probability>,<space>,<times>[,verbose=N]`
    /// (checked at build). When it fires, `mempool_alloc` skips `alloc_fn` on that pass and
    /// takes from the reserve, logging `forcing mempool usage for <caller>`.
    pub fn fail_mempool_alloc(mut self, spec: impl Into<String>) -> Self {
        self.s.fail_mempool_alloc = Some(spec.into());
        self
    }

    /// `fail_mempool_alloc_bulk` knobs, in `fail_mempool_alloc` syntax (checked at build). When
    /// it fires, `mempool_alloc_bulk` goes to the reserve before calling `alloc_fn` at all.
    pub fn fail_mempool_alloc_bulk(mut self, spec: impl Into<String>) -> Self {
        self.s.fail_mempool_alloc_bulk = Some(spec.into());
        self
    }

    /// Builds the machine.
    ///
    /// # Errors
    /// A setting out of range, the host refusing memory, or an impossible layout.
    pub fn build(self) -> Result<Machine, BuildError> {
        let (s, min_free_kbytes_env) = (self.s, self.min_free_kbytes_env);
        let host_cpus = thread::available_parallelism().map_or(1, |n| n.get());
        let cpus = s.cpus.unwrap_or((host_cpus * 4).min(MAX_CPUS));
        if !(1..=MAX_CPUS).contains(&cpus) {
            return Err(BuildError::Setting(format!("cpus must be 1..={MAX_CPUS}, got {cpus}")));
        }
        // One area needs a page and its guard page; a smaller range could never serve a vmalloc.
        if let Some(vb) = s.vmalloc_bytes.filter(|&vb| vb < 2 * PAGE_SIZE as u64) {
            return Err(BuildError::Setting(format!(
                "the vmalloc range must be at least {} bytes (one page and its guard page), got {vb} bytes",
                2 * PAGE_SIZE
            )));
        }
        let bytes = s.mem_bytes.unwrap_or_else(|| match s.profile {
            Profile::I386 => 1 << 30,
            Profile::X86_64 => sys::host_ram(),
        });
        let pages = (bytes / PAGE_SIZE as u64) as usize;
        if pages < 8 * MIB_PAGES {
            return Err(BuildError::Setting(format!("memory must be at least 8 MiB, got {bytes} bytes")));
        }
        if bytes > s.profile.max_mem_bytes() {
            return Err(BuildError::Setting(format!(
                "memory must be at most {} on the {} profile, got {bytes} bytes",
                s.profile.max_mem_text(),
                s.profile.name()
            )));
        }
        let highmem_wanted = s.profile == Profile::I386 && pages > (896 * MIB_PAGES);
        if s.private_memory && highmem_wanted {
            return Err(BuildError::Setting(format!(
                "private memory has no HighMem windows: an i386 machine with private memory may have at most 896 MiB, got {bytes} bytes"
            )));
        }
        let phys = if s.private_memory {
            sys::PhysMem::new_private(pages * PAGE_SIZE)
        } else {
            sys::PhysMem::new(pages * PAGE_SIZE)
        }
        .map_err(|e| host(e, format_args!("cannot create physical memory of {} bytes", pages * PAGE_SIZE)))?;
        let vm_bytes = s.vmalloc_bytes.unwrap_or(match s.profile {
            Profile::I386 => 128 << 20,
            Profile::X86_64 => 64 << 30,
        }) as usize
            & !(PAGE_SIZE - 1);
        let window = |len: usize, what: &str| -> Result<VaRange, BuildError> {
            let refused = |e| host(e, format_args!("cannot reserve {len} bytes of address space for {what}"));
            // SAFETY: The clone goes to a `VaRange`, which only maps frames `MAP_SHARED` at new
            // addresses for vmalloc and `kmap`, never writes, resizes or punches the file.
            let fd = unsafe { phys.fd() }.map(OwnedFd::try_clone).transpose().map_err(refused)?;
            VaRange::reserve(len, fd, phys.len()).map_err(refused)
        };
        // The default range is large; a host that refuses it (an address-space limit, or
        // valgrind, which caps single mappings) gets the largest half that fits, down to 128 MiB.
        let mut vm_bytes = vm_bytes;
        let vm_range = loop {
            match window(vm_bytes, "the vmalloc range") {
                Ok(range) => break range,
                Err(_) if s.vmalloc_bytes.is_none() && vm_bytes > 128 << 20 => vm_bytes /= 2,
                Err(e) => return Err(e),
            }
        };
        let vm_start = vm_range.base();
        let mut vm = Vmalloc::new(UserMmu::new(vm_range), vm_start, vm_bytes, cpus).map_err(BuildError::Init)?;
        // `sizeof(struct page *)`: the size of a vmalloc area's page array entries.
        vm.set_page_pointer_bytes(if s.profile == Profile::I386 { 4 } else { 8 });
        let highmem = if highmem_wanted {
            let (pkmap, fixmap) = Highmem::window_bytes(cpus);
            Some(Highmem::new(window(pkmap, "the kmap window")?, window(fixmap, "the kmap_local window")?, cpus))
        } else {
            None
        };
        let (zones, dm_end, pageblock_order) = s.profile.layout_ranges(pages);
        let layout = Layout {
            start_pfn: 0,
            end_pfn: pages,
            zones,
            direct_map: phys.base(),
            direct_map_end_pfn: dm_end,
            pageblock_order,
            zeroed: true,
        };
        let config = Config {
            min_free_kbytes: s.min_free_kbytes,
            watermark_scale_factor: s.watermark_scale_factor,
            pcp: s.pcp,
            // Saturating: a huge timeout (`KMEM_OOM_TIMEOUT_MS` up to `u64::MAX`) waits for ever
            // rather than wrapping to a short one.
            oom_timeout_ns: u64::try_from(s.oom_timeout.as_nanos()).unwrap_or(u64::MAX),
            // Set (and range-checked) once the allocator is built.
            watermark_boost_factor: 0,
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let platform = UserPlatform {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            nr_cpus: cpus,
            slots: (0..cpus).map(|_| AtomicBool::new(false)).collect(),
            owner: std::sync::OnceLock::new(),
            phys,
            log: Printk::new(s.log_capacity, s.echo),
            start: Instant::now(),
            kswapd: Arc::new(KswapdCtl {
                word: AtomicU32::new(0),
                stopping: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                running: AtomicBool::new(false),
                balance: AtomicBool::new(false),
                work: AtomicBool::new(false),
                work_runs: std::sync::atomic::AtomicUsize::new(0),
                ticks: std::sync::atomic::AtomicUsize::new(0),
            }),
            fork_lock: crate::fork::ForkLock::new(),
            fail_mempool_alloc: FaultAttr::new(),
            fail_mempool_alloc_bulk: FaultAttr::new(),
        };
        for (spec, point) in [
            (&s.fail_mempool_alloc, FaultPoint::FailMempoolAlloc),
            (&s.fail_mempool_alloc_bulk, FaultPoint::FailMempoolAllocBulk),
        ] {
            if let (Some(spec), Some(attr)) = (spec, platform.fault_attr(point)) {
                let name = point.name();
                attr.parse_and_apply_plain(spec).map_err(|e| BuildError::Setting(format!("{name}: {e}")))?;
            }
        }
        // SAFETY: `phys` maps `pages` fresh zero pages at `base`, the direct map covers its first
        // `dm_end` pages, and the mapping lives in the platform, which the allocator owns.
        let pa = unsafe { PageAllocator::new(platform, layout, config) }.map_err(BuildError::Init)?;
        if (1..=3000).contains(&s.watermark_scale_factor) {
            // (An out-of-range scale factor is refused below.)
            crate::env::check_min_free_kbytes(&pa, s.min_free_kbytes, min_free_kbytes_env)?;
        }
        let mut slab = s.slab;
        if let Some(spec) = &s.slub_debug {
            slab.debug = DebugSpec::new(spec).map_err(|e| BuildError::Setting(format!("slab_debug: {e}")))?;
        }
        let mut pa = Kmem::new(pa, slab);
        pa.set_vmalloc_range(vm.start()..vm.end());
        if let Some(spec) = &s.failslab {
            let failslab = pa.slabs().failslab();
            failslab.parse_and_apply_failslab(spec).map_err(|e| BuildError::Setting(format!("failslab: {e}")))?;
        }
        if let Some(spec) = &s.fail_page_alloc {
            pa.fail_page_alloc()
                .parse_and_apply(spec)
                .map_err(|e| BuildError::Setting(format!("fail_page_alloc: {e}")))?;
        }
        pa.set_watermark_scale_factor(s.watermark_scale_factor).map_err(BuildError::Init)?;
        let boost = s.watermark_boost_factor.unwrap_or(if s.kswapd { DEFAULT_WATERMARK_BOOST_FACTOR } else { 0 });
        pa.set_watermark_boost_factor(boost).map_err(BuildError::Init)?;
        pa.set_mempool_debug(s.mempool_debug);
        let forkable = s.private_memory && !s.kswapd;
        let inner = Arc::new(Inner {
            kmem: pa,
            profile: s.profile,
            shrinker: std::sync::OnceLock::new(),
            vm_shrinker: std::sync::OnceLock::new(),
            vm,
            highmem,
            forkable,
        });
        // vmalloc belongs to this machine's allocator from the start (now that it has its final
        // address): a `Kmem` of another machine passed to it is refused, not used.
        inner.vm.bind(&inner.kmem);
        // SAFETY: `kmem` lives inside the `Arc` until `Inner` drops, which unregisters first.
        if let Some(id) = unsafe { inner.kmem.register_reclaim() } {
            let _ = inner.shrinker.set(id);
        }
        let vm_shrinker: &dyn kmem_core::reclaim::Shrinker = &*inner;
        // SAFETY: `inner` lives inside the `Arc` until `Inner` drops, which unregisters first.
        if let Some(id) = unsafe { inner.kmem.pages().register_shrinker(std::ptr::NonNull::from(vm_shrinker)) } {
            let _ = inner.vm_shrinker.set(id);
        }
        let weak: Weak<dyn SlotOwner> = Arc::downgrade(&inner) as Weak<dyn SlotOwner>;
        let _ = inner.kmem.platform().owner.set(weak);
        if s.kswapd {
            spawn_kswapd(&inner, s.trim_after).map_err(|e| host(e, format_args!("cannot start kswapd")))?;
        }
        Ok(Machine { inner })
    }
}

/// One instance of the whole stack. Cheap to clone (shared).
#[derive(Clone)]
pub struct Machine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) kmem: Kmem<UserPlatform>,
    profile: Profile,
    shrinker: std::sync::OnceLock<kmem_core::reclaim::RegistrationId>,
    /// The vmalloc shrinker (`vm.rs`).
    vm_shrinker: std::sync::OnceLock<kmem_core::reclaim::RegistrationId>,
    pub(crate) vm: Vmalloc<UserMmu>,
    pub(crate) highmem: Option<Highmem>,
    /// Private memory and no kswapd: [`Machine::fork_prepare`] may be used.
    pub(crate) forkable: bool,
}

impl Deref for Machine {
    type Target = Kmem<UserPlatform>;
    #[inline(always)]
    fn deref(&self) -> &Self::Target {
        &self.inner.kmem
    }
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("profile", &self.inner.profile)
            .field("pages", &self.memmap().end_pfn())
            .field("cpus", &self.nr_cpus())
            .finish()
    }
}

impl Machine {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// The page allocator (also reachable through `Deref`).
    pub fn pages(&self) -> &PageAllocator<UserPlatform> {
        &self.inner.kmem
    }

    /// The `fail_mempool_alloc` fault-injection knobs of the machine's pools (pools made before
    /// a change see it too: they keep the attribute, not its values).
    pub fn fail_mempool_alloc(&self) -> &FaultAttr {
        &self.platform().fail_mempool_alloc
    }

    /// The `fail_mempool_alloc_bulk` fault-injection knobs of the machine's pools.
    pub fn fail_mempool_alloc_bulk(&self) -> &FaultAttr {
        &self.platform().fail_mempool_alloc_bulk
    }

    /// The kernel log ring.
    pub fn log(&self) -> &Printk {
        &self.platform().log
    }

    /// Logs a message (`printk`) at `level`.
    pub fn printk(&self, level: Level, text: &str) {
        self.platform().log.log(level, text, false);
    }

    /// `dmesg`: the log with timestamps.
    pub fn dmesg(&self) -> String {
        self.platform().log.dmesg()
    }

    /// Bytes of physical memory the host currently backs.
    pub fn resident_bytes(&self) -> u64 {
        self.platform().phys.resident_bytes()
    }

    /// The physical memory (for layers that map frames: vmalloc, kmap).
    pub fn phys(&self) -> &sys::PhysMem {
        &self.platform().phys
    }

    /// Copies `data` to the direct-map address `addr`, which must lie in allocated lowmem pages.
    ///
    /// # Errors
    /// If any byte of the range is outside the direct map or in a page that is not allocated.
    ///
    /// # Safety
    /// The caller owns the range: no one else (no safe handle, no structure of kmem's own)
    /// reads or writes it meanwhile.
    pub unsafe fn write_bytes(&self, addr: NonNull<u8>, data: &[u8]) -> Result<(), AllocError> {
        self.check_allocated(addr, data.len())?;
        // SAFETY: The range is inside allocated direct-map pages (checked), so it is mapped and
        // writable; the caller owns it (its contract), and bytes have no validity requirements.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr.as_ptr(), data.len()) };
        Ok(())
    }

    /// Copies `buf.len()` bytes from the direct-map address `addr` (allocated lowmem pages).
    ///
    /// # Errors
    /// As [`Self::write_bytes`].
    ///
    /// # Safety
    /// No one writes the range meanwhile (the caller owns it, or its owner is not writing).
    pub unsafe fn read_bytes(&self, addr: NonNull<u8>, buf: &mut [u8]) -> Result<(), AllocError> {
        self.check_allocated(addr, buf.len())?;
        // SAFETY: Mapped as in `write_bytes`, not written meanwhile (the caller's contract);
        // reading initialised (memfd) bytes.
        unsafe { std::ptr::copy_nonoverlapping(addr.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn check_allocated(&self, addr: NonNull<u8>, len: usize) -> Result<(), AllocError> {
        let first = self.virt_to_pfn(addr.as_ptr()).ok_or(AllocError)?;
        let last_addr = (addr.as_ptr() as usize).checked_add(len.max(1) - 1).ok_or(AllocError)?;
        let last = self.virt_to_pfn(last_addr as *const u8).ok_or(AllocError)?;
        for pfn in first..=last {
            let page = self.pfn_to_page(pfn).ok_or(AllocError)?;
            // The page itself is allocated, or it is a tail of an allocated block. Free, per-CPU
            // and reserved pages (the page array itself) are never accessible.
            // (A slab's tail pages carry `PG_tail` and lead to their head directly.)
            let flags = page.flags();
            let tail = page.refcount() == 0
                && (flags == kmem_core::memmap::pg::TAIL || flags == 0)
                && self.in_allocated_block(pfn);
            if !page.is_allocated() && !tail {
                return Err(AllocError);
            }
        }
        Ok(())
    }

    /// Whether `pfn` is a tail page of a block allocated with order > 0: such pages hold no
    /// reference of their own; the block's head (the aligned pfn below) holds it with its order.
    fn in_allocated_block(&self, pfn: usize) -> bool {
        (1..=kmem_core::MAX_PAGE_ORDER).any(|order| {
            let head = pfn & !((1 << order) - 1);
            head != pfn && self.pfn_to_page(head).is_some_and(|h| h.is_allocated() && h.order() >= order)
        })
    }

    /// Gives back the calling thread's CPU slot now (as thread exit would), draining it.
    pub fn release_cpu(&self) {
        cpu::release_current(self.platform().id);
    }

    /// Metadata bytes per managed page, as a percentage of managed memory.
    pub fn metadata_percent(&self) -> f64 {
        let meta = self.reserved_pages() * PAGE_SIZE;
        100.0 * meta as f64 / (self.total_managed() * PAGE_SIZE) as f64
    }
}

impl SlotOwner for Inner {
    fn release_slot(&self, slot: usize) {
        // Excluded while a fork is prepared (`fork.rs`): the release runs before or after it.
        let platform = self.kmem.platform();
        platform.fork_lock.lock();
        self.release_slot_locked(slot, true);
        platform.fork_lock.unlock();
    }
}

impl Inner {
    /// Drains `slot`'s per-CPU lists, unmaps the HighMem local mappings its owner left, and
    /// marks it free. The thread that held the slot has stopped using it: it is the caller
    /// (thread exit, `release_cpu`; `by_owner`, so mappings it left are reported as its bug),
    /// or it did not survive a `fork` (`fork_child`).
    pub(crate) fn release_slot_locked(&self, slot: usize, by_owner: bool) {
        // SAFETY (both calls): The slot's owner is the caller or gone (see above), and the
        // slot is marked free only afterwards, so no one else enters its arrays or lists.
        unsafe {
            self.kmem.slab_cpu_dead(slot);
            self.kmem.drain_cpu_slot(slot);
        }
        if let Some(hm) = &self.highmem {
            hm.release_cpu(self.kmem.pages(), slot, by_owner);
        }
        self.kmem.platform().slots[slot].store(false, Ordering::Release);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Caches whose teardown was left to the next maintenance pass (a typed cache dropped
        // inside one of its own allocations) go now, and their hooks with them.
        self.kmem.reap_orphans();
        if let Some(&id) = self.shrinker.get() {
            self.kmem.unregister_reclaim(id);
        }
        if let Some(&id) = self.vm_shrinker.get() {
            self.kmem.pages().unregister_shrinker(id);
        }
        let ctl = &self.kmem.platform().kswapd;
        ctl.stopping.store(true, Ordering::SeqCst);
        ctl.word.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake_all(&ctl.word);
    }
}
