//! A bare vmalloc + touch + vfree loop on a kmem machine, for profiles (`perf record -e
//! cpu-clock`, `strace -c`, callgrind):
//!
//! ```sh
//! cargo build --release -p kmem-bench --example vmalloc_loop
//! N=100000 perf record -e cpu-clock -g target/release/examples/vmalloc_loop 4 fresh
//! ```
//!
//! Arguments: pages per area (default 1), `reuse` (default lazy purge) or `fresh` (purge
//! threshold 0). It prints the time per iteration too, but timing belongs to `kmem-bench`.

use std::time::Instant;

#[path = "support/mod.rs"]
mod support;

fn main() {
    let mut args = std::env::args().skip(1);
    let pages: usize = args.next().map_or(1, |s| s.parse().expect("pages"));
    let fresh = args.next().is_some_and(|s| s == "fresh");
    let n = support::iterations(100_000);
    let m = support::machine(512 << 20);
    if fresh {
        m.vm().set_lazy_max_pages(0);
    }
    let t = Instant::now();
    for _ in 0..n {
        let p = m.vmalloc(pages * kmem::PAGE_SIZE).expect("vmalloc");
        for i in 0..pages {
            // SAFETY: `p` is a live area of `pages` writable pages.
            unsafe { p.as_ptr().add(i * kmem::PAGE_SIZE).write_volatile(i as u8) };
        }
        // SAFETY: The bench's own memory, freed once and unused afterwards.
        unsafe { m.vfree(p.as_ptr()) };
    }
    let ns = t.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("{pages} pages {}: {ns:.0} ns per vmalloc+touch+vfree", if fresh { "fresh" } else { "reuse" });
}
