//! The `vmalloc VA F free ranges (tree)` workload of kmem-bench as a bare loop, for callgrind:
//! the free tree fragmented into `F` one-page holes, the VA pool off, then units of 64
//! `get_vm_area(PAGE_SIZE)` calls, each unit freed and purged back into the tree.
//!
//! ```sh
//! cargo build --release -p kmem-bench --example va_loop
//! N=2000 valgrind --tool=callgrind target/release/examples/va_loop 100000
//! ```
//!
//! Arguments: `F` (default 1), then `pool` to leave the VA pool on. `N` counts units.

use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use kmem::PAGE_SIZE;

#[path = "support/mod.rs"]
mod support;

fn main() {
    let mut args = std::env::args().skip(1);
    let ranges: usize = args.next().map_or(1, |s| s.parse().expect("F"));
    let pool = args.next().is_some_and(|s| s == "pool");
    let n = support::iterations(2000);
    let m = support::machine(64 << 20);
    let mut areas = Vec::with_capacity(2 * ranges);
    for _ in 0..2 * (ranges - 1) {
        areas.push(m.get_vm_area(PAGE_SIZE, 0).expect("area"));
    }
    let mut kept = Vec::with_capacity(ranges);
    for (i, a) in areas.into_iter().enumerate() {
        // SAFETY: The loop's own area, freed once and unused afterwards.
        if i % 2 == 0 { unsafe { m.free_vm_area(a.as_ptr()) } } else { kept.push(a) }
    }
    m.vm_reclaim_and_purge();
    m.vm().set_va_pools(pool);
    let mut got: Vec<NonNull<u8>> = Vec::with_capacity(64);
    let mut timed = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        timed_unit(&m, &mut got);
        timed += t.elapsed();
        for a in got.drain(..) {
            // SAFETY: As above.
            unsafe { m.free_vm_area(a.as_ptr()) };
        }
        m.vm_unmap_aliases();
    }
    let ns = timed.as_nanos() as f64 / (n.max(1) * 64) as f64;
    println!("{ranges} free ranges{}: {ns:.0} ns per get_vm_area", if pool { ", pool" } else { "" });
    black_box(kept);
}

#[inline(never)]
fn timed_unit(m: &kmem::Machine, got: &mut Vec<NonNull<u8>>) {
    for _ in 0..64 {
        got.push(m.get_vm_area(PAGE_SIZE, 0).expect("area"));
    }
}
