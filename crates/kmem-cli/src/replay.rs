//! `kmem replay TRACE`: replays a kernel's `kmem:*` trace events ([`crate::trace`]) on a kmem
//! machine, in trace order, and reports what the traced kernel did (per call
//! site and per cache, `perf kmem stat`'s numbers: requested and allocated bytes, internal
//! fragmentation, allocations freed on another CPU) next to what kmem did with the same
//! requests (its size for each object, the caches and pages it used, the requests it could not
//! serve).
//!
//! Decisions:
//! - A request is made with the traced flags less `__GFP_NOFAIL` and `__GFP_DIRECT_RECLAIM`,
//!   plus `__GFP_NOWARN`: a replay never sleeps, retries or waits for an OOM timeout; what kmem
//!   cannot serve at once is counted as a failure (the traced kernel may have reclaimed); its
//!   address stays live for the trace, so its free is one of the trace's frees.
//! - `kmem_cache_alloc` of a cache not seen before creates it (`name=`, or `replay-<size>` for
//!   traces before 6.19 that print no name) with the traced `bytes_req` as its object size
//!   and no flags; the traced `bytes_alloc` is the kernel's `s->size`, compared with kmem's.
//! - An object is freed as it was allocated (a `kfree` of a cache object is
//!   `kmem_cache_free`, which the kernel's `kfree` also does). A free of an address the trace
//!   did not allocate (before the trace began, or a lost event) is counted and skipped; an
//!   allocation at an address still live (its free was lost) frees kmem's old object first,
//!   counted only as a lost free (not among the trace's frees, bytes freed or cross-CPU frees,
//!   which are the events the trace holds, as `perf kmem stat` counts them).
//! - `kmalloc(0)` gives `ZERO_SIZE_PTR` (traced `bytes_alloc=0`): nothing is allocated, and a
//!   free of that address is a no-op. Kernels return it before the `kmalloc` event, but `kfree`
//!   traces its pointer before its `ZERO_OR_NULL_PTR` test: a free of an address up to
//!   `ZERO_SIZE_PTR` (16, as an unhashed `%p` prints it) is a no-op as well, like `kfree(NULL)`.
//! - Events run in trace order. By default all of them run on the caller's thread (one kmem
//!   CPU); with `--per-cpu` each runs on a worker thread of its own for its trace CPU (CPU `n`
//!   on worker `n` modulo the machine's CPUs), one at a time, so that kmem's per-CPU caches and
//!   its frees from another CPU see the traced kernel's pattern.
//! - Page events (`mm_page_alloc`, `mm_page_free`) are counted but replayed only with
//!   `--pages`: the traced slab's own pages are page events too, so replaying both kinds would
//!   count slab memory twice (kmem's slabs for the objects, and the traced slab's pages).

#![allow(unsafe_code)] // Freeing the replay's own objects and pages, and `ksize` of them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, Read as _};
use std::ptr::NonNull;
use std::sync::{Mutex, mpsc};

use kmem::{Gfp, Machine, Page};
use kmem_core::gfp::{__GFP_DIRECT_RECLAIM, __GFP_NOFAIL, __GFP_NOWARN};
use kmem_core::platform::Platform as _;
use kmem_core::slab::flags::SlabFlags;
use kmem_core::slab::{CacheArgs, CacheRef};

use crate::trace::{self, Kind};

/// What the command line asked for.
pub struct Options {
    /// Replay page events too.
    pub pages: bool,
    /// Call sites to list.
    pub top: usize,
    /// Run each event on a thread of its own for its trace CPU (module docs).
    pub per_cpu: bool,
}

/// A live object of the replay: where kmem put it, and what the trace said of it.
struct Live {
    /// `None` when kmem could not serve the request (its free is still one of the trace's).
    obj: Option<NonNull<u8>>,
    /// `None` for kmalloc, else the index in `Replay::caches`.
    cache: Option<usize>,
    site: usize,
    /// The traced `bytes_alloc`.
    traced: usize,
    cpu: Option<u32>,
}

/// `perf kmem stat`'s numbers for one call site.
#[derive(Default)]
struct Site {
    allocs: u64,
    req: u64,
    alloc: u64,
    kmem: u64,
    cross_cpu: u64,
}

/// One cache the replay made or used (kmalloc requests are under kmem's kmalloc caches).
struct CacheUse {
    cache: CacheRef,
    allocs: u64,
    live: u64,
    peak: u64,
    /// The traced kernel's `s->size`.
    kernel_size: usize,
    /// kmem's size of its objects (`ksize`), once one was made.
    kmem_size: Option<usize>,
}

/// Counts of everything the replay saw.
#[derive(Default)]
struct Counts {
    lines: u64,
    other_events: u64,
    allocs: u64,
    frees: u64,
    traced_failures: u64,
    kmem_failures: u64,
    unknown_frees: u64,
    lost_frees: u64,
    /// ftrace's `[LOST N EVENTS]` lines, and the `N`s they print.
    lost_markers: u64,
    lost_events: u64,
    zero_size: u64,
    page_allocs: u64,
    page_frees: u64,
    page_unknown_frees: u64,
    page_kmem_failures: u64,
    /// `mm_page_alloc` events of failed allocations (not among `traced_failures`, which are
    /// the object allocations').
    page_traced_failures: u64,
    req: u64,
    alloc: u64,
    /// Traced `bytes_alloc` of the objects freed.
    freed: u64,
    /// kmem's sizes of the objects it made, and the requests they served.
    kmem: u64,
    kmem_req: u64,
    cross_cpu: u64,
}

/// The replay's state.
struct Replay<'m> {
    m: &'m Machine,
    opts: Options,
    live: HashMap<u64, Live>,
    /// Traced addresses of `kmalloc(0)`.
    zero: HashSet<u64>,
    /// Traced pfns of live blocks: kmem's block and order, `None` if kmem could not serve it.
    pages: HashMap<u64, Option<(&'m Page, u32)>>,
    sites: Vec<(String, Site)>,
    site_index: HashMap<String, usize>,
    caches: Vec<(String, CacheUse)>,
    cache_index: HashMap<String, usize>,
    /// kmalloc requests whose kmem size differs from the traced one: (req, kernel, kmem) → count.
    class_diff: BTreeMap<(usize, usize, usize), u64>,
    kmalloc_requests: u64,
    unknown_gfp: BTreeMap<String, u64>,
    c: Counts,
}

/// Replays `input` on `m`. Returns the report, or the first unreadable line as
/// `line N: what`.
pub fn run(m: &Machine, input: impl BufRead, opts: Options) -> Result<String, String> {
    let mut r = Replay {
        m,
        opts,
        live: HashMap::new(),
        zero: HashSet::new(),
        pages: HashMap::new(),
        sites: Vec::new(),
        site_index: HashMap::new(),
        caches: Vec::new(),
        cache_index: HashMap::new(),
        class_diff: BTreeMap::new(),
        kmalloc_requests: 0,
        unknown_gfp: BTreeMap::new(),
        c: Counts::default(),
    };
    let lines = if r.opts.per_cpu {
        run_per_cpu(&mut r, input)?
    } else {
        for_each_line(input, |line| {
            if let Some(event) = trace::parse_line(line)? {
                r.apply(event);
            }
            Ok(())
        })?
    };
    r.c.lines = lines;
    Ok(r.report())
}

/// The longest line [`for_each_line`] reads.
const MAX_LINE: usize = 1 << 20;

/// Calls `f` with each line of `input`; returns the number of lines, or the first error as
/// `line N: what`.
fn for_each_line(
    mut input: impl BufRead,
    mut f: impl FnMut(&str) -> Result<(), trace::ParseError>,
) -> Result<u64, String> {
    // Bytes, not `lines()`: a task name is whatever bytes `comm` holds (`PR_SET_NAME`, or UTF-8
    // cut at 15 bytes), which the trace prints as they are; they are read lossily.
    // A line is read up to MAX_LINE bytes: ftrace prints an event in at most a page, so a
    // longer one is not a trace (a file without newlines, /dev/zero) and must not grow without
    // end.
    let mut bytes = Vec::new();
    let mut n = 0;
    loop {
        bytes.clear();
        match input.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', &mut bytes) {
            Ok(0) => return Ok(n),
            Ok(_) => n += 1,
            Err(e) => return Err(format!("line {}: cannot read: {e}", n + 1)),
        }
        if bytes.len() > MAX_LINE {
            return Err(format!("line {n}: longer than {MAX_LINE} bytes: not a trace line"));
        }
        f(&String::from_utf8_lossy(&bytes)).map_err(|e| format!("line {n}: {e}"))?;
    }
}

/// The replay's state, handed to the worker threads of `--per-cpu`.
struct Shared<'r, 'm>(&'r mut Replay<'m>);

// SAFETY: The state's raw pointers are objects and pages of the machine, which any thread may
// use (the machine is shared-safe); the state is only reached under the mutex around it, by
// one thread at a time.
unsafe impl Send for Shared<'_, '_> {}

/// Consecutive events of one trace CPU handed to its worker at once.
const RUN: usize = 256;

/// `--per-cpu`: each event runs on the worker thread of its trace CPU, in trace order: the
/// reader hands a worker a run of consecutive events of its CPU and waits for it before the
/// next run. Returns the number of lines.
fn run_per_cpu(r: &mut Replay<'_>, input: impl BufRead) -> Result<u64, String> {
    let workers = r.m.platform().nr_cpus().max(1);
    let shared = Mutex::new(Shared(r));
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let senders: Vec<mpsc::Sender<Vec<String>>> = (0..workers)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Vec<String>>();
                let (done, shared) = (done_tx.clone(), &shared);
                scope.spawn(move || {
                    for run in rx {
                        let mut state = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        for line in &run {
                            // The reader parsed it already: it is an event.
                            if let Ok(Some(event)) = trace::parse_line(line) {
                                state.0.apply(event);
                            }
                        }
                        drop(state);
                        let _ = done.send(());
                    }
                });
                tx
            })
            .collect();
        let (mut run, mut run_worker) = (Vec::with_capacity(RUN), 0);
        let hand_over = |run: &mut Vec<String>, worker: usize| {
            if !run.is_empty() && senders[worker].send(std::mem::take(run)).is_ok() {
                // A worker that panicked has dropped its end: the scope reports the panic.
                let _ = done_rx.recv();
            }
        };
        let lines = for_each_line(input, |line| {
            let Some(event) = trace::parse_line(line)? else { return Ok(()) };
            let worker = event.cpu.map_or(0, |cpu| cpu as usize % workers);
            if worker != run_worker || run.len() == RUN {
                hand_over(&mut run, run_worker);
                run_worker = worker;
            }
            run.push(line.to_owned());
            Ok(())
        });
        hand_over(&mut run, run_worker);
        drop(senders);
        lines
    })
}

/// The kernel's `ZERO_SIZE_PTR`: `ZERO_OR_NULL_PTR` is true up to it.
const ZERO_SIZE_PTR: u64 = 16;

/// The flags a replayed request carries (module docs).
fn replay_gfp(gfp: Gfp) -> Gfp {
    gfp.difference(__GFP_NOFAIL.union(__GFP_DIRECT_RECLAIM)).union(__GFP_NOWARN)
}

impl<'m> Replay<'m> {
    fn apply(&mut self, e: trace::Event<'_>) {
        match e.kind {
            Kind::Alloc { site, ptr, req, alloc, gfp, unknown_gfp, cache } => {
                self.note_unknown(unknown_gfp);
                self.alloc(e.cpu, site, ptr, req, alloc, gfp, cache);
            }
            Kind::Free { ptr, .. } => self.free(e.cpu, ptr),
            Kind::PageAlloc { pfn, order, gfp, unknown_gfp } => {
                self.note_unknown(unknown_gfp);
                self.page_alloc(pfn, order, gfp);
            }
            Kind::PageFree { pfn, .. } => self.page_free(pfn),
            Kind::Lost { events } => {
                self.c.lost_markers += 1;
                self.c.lost_events = self.c.lost_events.saturating_add(events.unwrap_or(0));
            }
            Kind::Other(_) => self.c.other_events += 1,
        }
    }

    fn note_unknown(&mut self, unknown: Option<&str>) {
        if let Some(name) = unknown {
            *self.unknown_gfp.entry(name.to_owned()).or_default() += 1;
        }
    }

    fn site(&mut self, name: &str) -> usize {
        if let Some(&i) = self.site_index.get(name) {
            return i;
        }
        self.sites.push((name.to_owned(), Site::default()));
        self.site_index.insert(name.to_owned(), self.sites.len() - 1);
        self.sites.len() - 1
    }

    /// The index in `caches` of the cache of a `kmem_cache_alloc` event, made on first sight.
    fn cache_for(&mut self, name: Option<&str>, req: usize, alloc: usize) -> Option<usize> {
        let key = name.map_or_else(|| format!("replay-{req}"), str::to_owned);
        if let Some(&i) = self.cache_index.get(&key) {
            return Some(i);
        }
        let cache = self.m.kmem_cache_create_unreported(&key, req, &CacheArgs::default(), SlabFlags::default()).ok()?;
        let u = CacheUse { cache, allocs: 0, live: 0, peak: 0, kernel_size: alloc, kmem_size: None };
        self.caches.push((key.clone(), u));
        self.cache_index.insert(key, self.caches.len() - 1);
        Some(self.caches.len() - 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn alloc(
        &mut self,
        cpu: Option<u32>,
        site: &str,
        ptr: u64,
        req: usize,
        alloc: usize,
        gfp: Gfp,
        cache: Option<Option<&str>>,
    ) {
        if ptr == 0 {
            self.c.traced_failures += 1;
            return;
        }
        self.c.allocs += 1;
        // The traced sizes are the trace's numbers, any `size_t`: the sums saturate.
        self.c.req = self.c.req.saturating_add(req as u64);
        self.c.alloc = self.c.alloc.saturating_add(alloc as u64);
        let si = self.site(site);
        let s = &mut self.sites[si].1;
        s.allocs += 1;
        s.req = s.req.saturating_add(req as u64);
        s.alloc = s.alloc.saturating_add(alloc as u64);
        if cache.is_none() && alloc == 0 {
            // ZERO_SIZE_PTR: nothing to allocate, and its frees are no-ops.
            self.c.zero_size += 1;
            self.zero.insert(ptr);
            return;
        }
        if let Some(l) = self.live.remove(&ptr) {
            // The free of the object that was here is not in the trace.
            self.c.lost_frees += 1;
            self.release(l);
        }
        let gfp = replay_gfp(gfp);
        let made = match cache {
            None => self.m.kmalloc(req, gfp).ok().map(|p| (p, None)),
            Some(name) => self
                .cache_for(name, req, alloc)
                .and_then(|i| self.m.kmem_cache_alloc(self.caches[i].1.cache, gfp).ok().map(|p| (p, Some(i)))),
        };
        let Some((obj, c)) = made else {
            self.c.kmem_failures += 1;
            self.live.insert(ptr, Live { obj: None, cache: None, site: si, traced: alloc, cpu });
            return;
        };
        // SAFETY: Just allocated by this replay, which alone uses the machine.
        let size = unsafe { self.m.ksize(obj.as_ptr()) };
        self.c.kmem += size as u64;
        self.c.kmem_req += req as u64;
        self.sites[si].1.kmem += size as u64;
        match c {
            None => {
                self.kmalloc_requests += 1;
                if size != alloc {
                    *self.class_diff.entry((req, alloc, size)).or_default() += 1;
                }
            }
            Some(i) => {
                let u = &mut self.caches[i].1;
                u.allocs += 1;
                u.live += 1;
                u.peak = u.peak.max(u.live);
                u.kmem_size = Some(size);
            }
        }
        self.live.insert(ptr, Live { obj: Some(obj), cache: c, site: si, traced: alloc, cpu });
    }

    fn free(&mut self, cpu: Option<u32>, ptr: u64) {
        if ptr <= ZERO_SIZE_PTR || self.zero.contains(&ptr) {
            return;
        }
        let Some(l) = self.live.remove(&ptr) else {
            self.c.unknown_frees += 1;
            return;
        };
        self.c.frees += 1;
        if cpu.is_some() && l.cpu.is_some() && cpu != l.cpu {
            self.c.cross_cpu += 1;
            self.sites[l.site].1.cross_cpu += 1;
        }
        self.c.freed = self.c.freed.saturating_add(l.traced as u64);
        self.release(l);
    }

    /// Frees kmem's object of a live entry just taken off `live`.
    fn release(&mut self, l: Live) {
        let Some(obj) = l.obj else { return };
        match l.cache {
            // SAFETY: An object this replay allocated and has not freed (just taken off `live`).
            None => unsafe { self.m.kfree(obj.as_ptr()) },
            Some(i) => {
                let u = &mut self.caches[i].1;
                u.live -= 1;
                // SAFETY: As above; `u.cache` is the cache it came from.
                unsafe { self.m.kmem_cache_free(u.cache, obj.as_ptr()) }
            }
        }
    }

    fn page_alloc(&mut self, pfn: Option<u64>, order: u32, gfp: Gfp) {
        let Some(pfn) = pfn else {
            self.c.page_traced_failures += 1;
            return;
        };
        self.c.page_allocs += 1;
        if !self.opts.pages {
            return;
        }
        if let Some(block) = self.pages.remove(&pfn) {
            self.c.lost_frees += 1;
            if let Some((page, o)) = block {
                // SAFETY: A block this replay allocated and has not freed (just taken off
                // `pages`).
                unsafe { self.m.free_pages(page, o) };
            }
        }
        let block = match self.m.alloc_pages(replay_gfp(gfp), order) {
            Ok(page) => Some((page, order)),
            Err(_) => {
                self.c.page_kmem_failures += 1;
                None
            }
        };
        // A block kmem could not serve stays live for the trace: its free is the trace's.
        self.pages.insert(pfn, block);
    }

    /// Frees the block allocated at `pfn` with the order it was allocated with (a trace whose
    /// free says another order is inconsistent; the allocation's is the one kmem knows).
    fn page_free(&mut self, pfn: u64) {
        self.c.page_frees += 1;
        if !self.opts.pages {
            return;
        }
        match self.pages.remove(&pfn) {
            // SAFETY: A block this replay allocated and has not freed (just taken off `pages`).
            Some(Some((page, o))) => unsafe { self.m.free_pages(page, o) },
            Some(None) => {}
            None => self.c.page_unknown_frees += 1,
        }
    }

    fn report(&self) -> String {
        let c = &self.c;
        let mut o = String::new();
        let pct = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 };
        let _ = writeln!(
            o,
            "{} lines: {} allocations, {} frees, {} page allocations, {} page frees, {} other events",
            c.lines,
            c.allocs,
            c.frees + c.unknown_frees,
            c.page_allocs,
            c.page_frees,
            c.other_events
        );
        let _ = writeln!(
            o,
            "skipped: {} frees of objects allocated before the trace, {} allocations the traced kernel failed, {} frees lost from the trace",
            c.unknown_frees, c.traced_failures, c.lost_frees
        );
        if c.page_traced_failures > 0 {
            let _ = writeln!(o, "page allocations the traced kernel failed: {}", c.page_traced_failures);
        }
        if c.lost_markers > 0 {
            let _ = writeln!(
                o,
                "the trace lost events: {} [LOST ...] lines, {} events counted in them",
                c.lost_markers, c.lost_events
            );
        }
        if !self.unknown_gfp.is_empty() {
            let names: Vec<String> = self.unknown_gfp.iter().map(|(n, k)| format!("{n} ({k})")).collect();
            let _ = writeln!(o, "GFP flags kmem does not know (ignored): {}", names.join(", "));
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "SUMMARY (the traced kernel, as perf kmem stat)");
        let _ = writeln!(o, "Total bytes requested: {}", c.req);
        let _ = writeln!(o, "Total bytes allocated: {}", c.alloc);
        let _ = writeln!(o, "Total bytes freed:     {}", c.freed);
        let _ = writeln!(o, "Net total bytes allocated: {}", c.alloc.saturating_sub(c.freed));
        let _ = writeln!(o, "Internal fragmentation: {:.6}%", pct(c.alloc - c.req.min(c.alloc), c.alloc));
        let _ = writeln!(o, "Cross CPU frees: {}/{}", c.cross_cpu, c.frees);
        let _ = writeln!(o);
        let _ = writeln!(o, "kmem, the same requests");
        let _ = writeln!(
            o,
            "Total bytes allocated: {} ({:+.2}% against the traced kernel)",
            c.kmem,
            pct(c.kmem, c.alloc.max(1)) - 100.0
        );
        let _ = writeln!(o, "Internal fragmentation: {:.6}%", pct(c.kmem - c.kmem_req.min(c.kmem), c.kmem));
        let _ = writeln!(
            o,
            "Requests kmem could not serve at once: {} (of {} replayed)",
            c.kmem_failures,
            c.allocs - c.zero_size
        );
        let same = self.kmalloc_requests - self.class_diff.values().sum::<u64>();
        let _ = writeln!(
            o,
            "kmalloc size classes: kmem's size equals the traced bytes_alloc for {same} of {} requests",
            self.kmalloc_requests
        );
        for (&(req, kernel, kmem), n) in &self.class_diff {
            let _ = writeln!(o, "  bytes_req {req}: traced {kernel}, kmem {kmem} ({n} requests)");
        }
        let objects: Vec<NonNull<u8>> = self.live.values().filter_map(|l| l.obj).collect();
        let live_bytes: usize = objects
            .iter()
            .map(|obj| {
                // SAFETY: Live objects of this replay.
                unsafe { self.m.ksize(obj.as_ptr()) }
            })
            .sum();
        let _ = writeln!(o, "Live at the end of the trace: {} objects, {} bytes", objects.len(), live_bytes);
        if !self.caches.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "{:<28} {:>9} {:>9} {:>9} {:>11} {:>9} {:>6} {:>6}",
                "cache", "allocs", "peak", "live", "traced size", "kmem size", "slabs", "pages"
            );
            for (name, u) in &self.caches {
                let info = self.m.cache_info(u.cache);
                let _ = writeln!(
                    o,
                    "{:<28} {:>9} {:>9} {:>9} {:>11} {:>9} {:>6} {:>6}",
                    name,
                    u.allocs,
                    u.peak,
                    u.live,
                    u.kernel_size,
                    u.kmem_size.map_or_else(|| "-".to_owned(), |k| k.to_string()),
                    info.slabs,
                    info.pages
                );
            }
        }
        let _ = writeln!(o);
        let mut sites: Vec<&(String, Site)> = self.sites.iter().collect();
        sites.sort_by(|a, b| b.1.alloc.cmp(&a.1.alloc).then_with(|| a.0.cmp(&b.0)));
        let _ = writeln!(
            o,
            "{:<44} {:>16} {:>16} {:>16} {:>8} {:>9} {:>9}",
            "call site", "total_alloc/per", "total_req/per", "kmem/per", "hit", "ping-pong", "frag"
        );
        for (name, s) in sites.into_iter().take(self.opts.top) {
            let per = |t: u64| t / s.allocs.max(1);
            let _ = writeln!(
                o,
                "{:<44} {:>16} {:>16} {:>16} {:>8} {:>9} {:>8.3}%",
                name,
                format!("{}/{}", s.alloc, per(s.alloc)),
                format!("{}/{}", s.req, per(s.req)),
                format!("{}/{}", s.kmem, per(s.kmem)),
                s.allocs,
                s.cross_cpu,
                pct(s.alloc - s.req.min(s.alloc), s.alloc)
            );
        }
        if self.opts.pages {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "pages: {} blocks live at the end, {} frees of blocks allocated before the trace, {} allocations kmem could not serve",
                self.pages.values().filter(|b| b.is_some()).count(),
                c.page_unknown_frees,
                c.page_kmem_failures
            );
        } else if c.page_allocs + c.page_frees > 0 {
            let _ = writeln!(o);
            let _ = writeln!(o, "page events counted, not replayed (--pages replays them)");
        }
        o
    }
}
