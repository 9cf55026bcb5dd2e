//! The sysctls of the page allocator (`vm.min_free_kbytes`, `vm.watermark_scale_factor`,
//! `vm.watermark_boost_factor`) and what follows from them (PA-10): every zone's watermarks,
//! lowmem reserves and per-CPU list sizes, recomputed as `setup_per_zone_wmarks` does.
//!
//! Invariant: a setter stores its value, then recomputes under `wmark_lock` from the values it
//! reads there, so the last recompute to run has read every value stored before it; the
//! marks of a zone are written under its zone lock (lock order: `wmark_lock`, then one zone
//! lock at a time).

use core::sync::atomic::Ordering::Relaxed;

use super::{Config, InitError, MAX_WMARK_PAGES, PageAllocator, Platform, Wmark, Zone, ZoneType};
use crate::order::PAGE_SIZE;
use crate::watermark;
use crate::zone::MAX_NR_ZONES;

impl<P: Platform> PageAllocator<P> {
    /// `vm.min_free_kbytes`.
    pub fn min_free_kbytes(&self) -> usize {
        self.min_free_kbytes.load(Relaxed)
    }

    /// `vm.watermark_scale_factor`.
    pub fn watermark_scale_factor(&self) -> usize {
        self.watermark_scale_factor.load(Relaxed)
    }

    /// Sets `vm.min_free_kbytes` and recomputes every zone's watermarks (PA-10).
    ///
    /// # Errors
    /// A value above `i32::MAX`, which the sysctl (an `int`, at least 0) cannot hold.
    pub fn set_min_free_kbytes(&self, kbytes: usize) -> Result<(), InitError> {
        Config { min_free_kbytes: Some(kbytes), ..Config::default() }.check()?;
        self.min_free_kbytes.store(kbytes, Relaxed);
        self.recompute_watermarks();
        Ok(())
    }

    /// The largest `vm.min_free_kbytes` that leaves this allocator's lowmem zones pages above
    /// their high watermarks with the current `watermark_scale_factor`
    /// ([`watermark::max_min_free_kbytes`]); `None` if none does. [`Self::set_min_free_kbytes`]
    /// takes any value, as the sysctl does; a machine builder refuses more than this.
    pub fn max_min_free_kbytes(&self) -> Option<usize> {
        let kinds: [(ZoneType, usize); MAX_NR_ZONES] =
            core::array::from_fn(|i| (self.zones[i].kind, self.zones[i].managed));
        watermark::max_min_free_kbytes(&kinds, self.watermark_scale_factor.load(Relaxed))
    }

    /// Sets `vm.watermark_scale_factor` (1..=3000, as the sysctl) and recomputes (PA-10).
    ///
    /// # Errors
    /// A value outside 1..=3000.
    pub fn set_watermark_scale_factor(&self, factor: usize) -> Result<(), InitError> {
        Config { watermark_scale_factor: factor, ..Config::default() }.check()?;
        self.watermark_scale_factor.store(factor, Relaxed);
        self.recompute_watermarks();
        Ok(())
    }

    /// `vm.watermark_boost_factor`: how far a zone's watermarks may be boosted after
    /// fragmenting fallbacks, in ten-thousandths of its high watermark (default 15000; 0: no
    /// boosting; `boost.rs`).
    pub fn watermark_boost_factor(&self) -> usize {
        self.watermark_boost_factor.load(Relaxed)
    }

    /// Sets `vm.watermark_boost_factor` (any `int` from 0, as the sysctl). Later boosts use it
    /// (`boost_watermark` reads it at each event); a boost already in place stays until kswapd
    /// takes it back.
    ///
    /// # Errors
    /// A value above `i32::MAX` (nothing is set).
    pub fn set_watermark_boost_factor(&self, factor: usize) -> Result<(), InitError> {
        Config { watermark_boost_factor: factor, ..Config::default() }.check()?;
        self.watermark_boost_factor.store(factor, Relaxed);
        for zone in &self.zones {
            let mut area = zone.lock();
            area.boost.max = self.max_boost(zone, zone.wmark_base(Wmark::High));
        }
        Ok(())
    }

    /// `boost_watermark`'s bound for `zone` with base high mark `high` and the current factor
    /// (read under the zone lock the caller holds, so a concurrent
    /// [`Self::set_watermark_boost_factor`] is not undone with the old one).
    fn max_boost(&self, zone: &Zone, high: usize) -> usize {
        let factor = self.watermark_boost_factor.load(Relaxed);
        crate::boost::max_boost(high, zone.managed, 1 << self.mm.pageblock_order(), factor)
    }

    /// New base marks for `zone` (`__setup_per_zone_wmarks`, under the zone lock): the boost
    /// starts again from 0, bounded from the new high mark.
    fn set_base_wmarks(&self, zone: &Zone, marks: [usize; 4]) {
        let mut area = zone.lock();
        area.boost.configure(self.max_boost(zone, marks[Wmark::High as usize]));
        zone.store_wmarks(marks, 0);
    }

    /// The per-CPU data-cache slice (`per_cpu_data_slice_size`) the per-CPU lists are tuned
    /// for: with more than three batches of pages in it, a run of high-order frees keeps up to
    /// a batch on the lists (`PCPF_FREE_HIGH_BATCH`) instead of flushing at every free.
    /// Default [`DEFAULT_CACHE_SLICE_BYTES`](super::DEFAULT_CACHE_SLICE_BYTES).
    pub fn set_pcp_cache_slice_bytes(&self, bytes: usize) {
        self.cache_slice_bytes.store(bytes, Relaxed);
        self.recompute_watermarks();
    }

    /// Mempool debugging for pools initialised from now on over this allocator (their
    /// [`crate::mempool::PoolEnv`]): every element counted, so a destroy with any element
    /// out is reported, and poisoned reserves. Off by default.
    pub fn set_mempool_debug(&self, on: bool) {
        self.mempool_debug.store(on, Relaxed);
    }

    /// Whether [`Self::set_mempool_debug`] is on.
    pub fn mempool_debug(&self) -> bool {
        self.mempool_debug.load(Relaxed)
    }

    /// The OOM wait timeout in nanoseconds.
    pub fn set_oom_timeout_ns(&self, ns: u64) {
        self.oom_timeout_ns.store(ns, Relaxed);
    }

    /// Sets a zone's watermarks `[min, low, high, promo]` directly (tests of exact boundaries;
    /// a mark above every zone's size closes the zone to all but `ALLOC_NO_WATERMARKS`). These
    /// are the base marks (`_watermark[]`); as `__setup_per_zone_wmarks` does, the zone's boost
    /// starts again from 0, its `max_boost` from the new high mark.
    ///
    /// # Errors
    /// A mark above [`MAX_WMARK_PAGES`] (nothing is set): the watermark tests add marks,
    /// reserves and block sizes, which must not overflow.
    pub fn set_zone_watermarks(&self, kind: ZoneType, marks: [usize; 4]) -> Result<(), InitError> {
        if marks.iter().any(|&m| m > MAX_WMARK_PAGES) {
            return Err(InitError("a watermark must be at most 2^48 pages"));
        }
        self.set_base_wmarks(&self.zones[kind as usize], marks);
        Ok(())
    }

    pub(super) fn recompute_watermarks(&self) {
        // Concurrent sysctl writes: each setter stores its value, then recomputes under this
        // lock from the values it reads here, so the last recompute sees them all (PA-10).
        let _serial = self.wmark_lock.lock();
        let kinds: [(ZoneType, usize); MAX_NR_ZONES] =
            core::array::from_fn(|i| (self.zones[i].kind, self.zones[i].managed));
        let marks = watermark::setup_wmarks(
            &kinds,
            self.min_free_kbytes.load(Relaxed),
            self.watermark_scale_factor.load(Relaxed),
        );
        let reserve = watermark::setup_lowmem_reserve(&kinds);
        for (i, zone) in self.zones.iter().enumerate() {
            self.set_base_wmarks(zone, marks[i]);
            for (j, slot) in zone.lowmem_reserve.iter().enumerate() {
                slot.store(reserve[i][j], Relaxed);
            }
            if self.pcp_enabled && zone.managed > 0 {
                // `zone_set_pageset_high_and_batch` without `percpu_pagelist_high_fraction`:
                // high_min from the low watermark, high_max from managed / 8.
                let batch = watermark::zone_batchsize(zone.managed);
                zone.pcp_batch.store(batch, Relaxed);
                zone.pcp_high.store(watermark::zone_highsize(zone.wmark(Wmark::Low), batch, self.nr_cpus), Relaxed);
                zone.pcp_high_max.store(watermark::zone_highsize(zone.managed / 8, batch, self.nr_cpus), Relaxed);
                // `zone_pcp_update_cacheinfo`.
                let slice_pages = self.cache_slice_bytes.load(Relaxed) / PAGE_SIZE;
                zone.pcp_free_high_batch.store(slice_pages > 3 * batch as usize, Relaxed);
            } else {
                zone.pcp_batch.store(1, Relaxed);
                zone.pcp_high.store(0, Relaxed);
                zone.pcp_high_max.store(0, Relaxed);
            }
        }
    }
}
