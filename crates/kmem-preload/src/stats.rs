//! `KMEM_STATS_ON_EXIT=1`: at exit, the machine's `/proc/slabinfo` and `/proc/meminfo` on
//! standard error (a copy of fd 2 made when the machine is built, since programs may close
//! it before exit handlers run), then the allocations each kmalloc cache served over the whole run and the
//! counters of the paths that bypass kmalloc.

use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;

use kmem::Machine;

use crate::bootstrap::BOOTSTRAP;
use crate::config;
use crate::heap::{self, COUNTERS};
use crate::sys::SavedStderr;

static STDERR: OnceLock<SavedStderr> = OnceLock::new();

/// The exit hook to register, if statistics were asked for (and standard error is open).
pub fn exit_hook() -> Option<extern "C" fn()> {
    if !config::stats_on_exit() {
        return None;
    }
    let saved = SavedStderr::new()?;
    let _ = STDERR.set(saved);
    Some(at_exit as extern "C" fn())
}

extern "C" fn at_exit() {
    heap::call(|_| {
        if let (Some(m), Some(err)) = (heap::ready_machine(), STDERR.get()) {
            err.write_all(report(m).as_bytes());
        }
    });
}

/// The whole report.
pub fn report(m: &Machine) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "kmem_preload: /proc/slabinfo");
    s.push_str(&m.slabinfo());
    let _ = writeln!(s, "kmem_preload: /proc/meminfo");
    s.push_str(&m.meminfo());
    let _ = writeln!(s, "kmem_preload: allocations served per cache (name allocs frees)");
    let mut total = 0;
    m.for_each_cache(|c| {
        let info = m.cache_info(c);
        let allocs = info.alloc_fast + info.alloc_slow;
        if allocs > 0 {
            total += allocs;
            let _ =
                writeln!(s, "{} {} {}", m.cache_name(c).unwrap_or_default(), allocs, info.free_fast + info.free_slow);
        }
    });
    let _ = writeln!(s, "kmem_preload: slab allocations total {total}");
    let _ = writeln!(
        s,
        "kmem_preload: mmap allocations {} (after kmalloc failed: {}), mmap live bytes {}, bootstrap C allocations {}, bootstrap live bytes {}, foreign frees ignored {}, re-entrant kmalloc frees leaked {}",
        COUNTERS.mmap_allocs.load(Relaxed),
        COUNTERS.mmap_after_kmalloc_failed.load(Relaxed),
        COUNTERS.mmap_live_bytes.load(Relaxed),
        COUNTERS.bootstrap_allocs.load(Relaxed),
        BOOTSTRAP.live_bytes(),
        COUNTERS.foreign_frees.load(Relaxed),
        COUNTERS.reentrant_leaks.load(Relaxed),
    );
    s
}
