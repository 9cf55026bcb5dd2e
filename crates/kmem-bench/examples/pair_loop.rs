//! A bare order-K alloc+free pair loop on a kmem machine, for instruction counts:
//!
//! ```sh
//! cargo build --release -p kmem-bench --example pair_loop
//! N=200000 valgrind --tool=callgrind target/release/examples/pair_loop 0 opaque
//! N=0      valgrind --tool=callgrind target/release/examples/pair_loop 0 opaque   # setup only
//! ```
//!
//! `opaque` hides the GFP value from the compiler (as a C caller's runtime flags are);
//! `const` lets it fold the flag decoding (as in kmem-bench's own loops). It prints the time per
//! pair too, but timing belongs to `kmem-bench`; this is for counting.

use std::hint::black_box;
use std::time::Instant;

use kmem_core::gfp::GFP_KERNEL;

#[path = "support/mod.rs"]
mod support;

fn main() {
    let mut args = std::env::args().skip(1);
    let order: u32 = args.next().map_or(0, |s| s.parse().expect("order"));
    let opaque = args.next().is_none_or(|s| s == "opaque");
    let n = support::iterations(2_000_000);
    let m = support::machine(1 << 30);
    // ~61 live blocks, as kmem-bench keeps, so no path is a degenerate empty one.
    let live: Vec<_> = (0..61).map(|_| m.alloc_pages(GFP_KERNEL, order).expect("live block")).collect();
    let start = Instant::now();
    if opaque {
        pairs::<true>(&m, order, n);
    } else {
        pairs::<false>(&m, order, n);
    }
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("order {order} pair ({}): {ns:.1} ns", if opaque { "opaque gfp" } else { "const gfp" });
    for page in live {
        // SAFETY: The bench's own memory, freed once and unused afterwards.
        unsafe { m.free_pages(page, order) };
    }
}

/// The timed loop, compiled once per mode so `const` really lets the compiler see the flags.
#[inline(never)]
fn pairs<const OPAQUE: bool>(m: &kmem::Machine, order: u32, n: u64) {
    for _ in 0..n {
        let gfp = if OPAQUE { black_box(GFP_KERNEL) } else { GFP_KERNEL };
        let page = m.alloc_pages(gfp, order).expect("pair alloc");
        // SAFETY: The bench's own memory, freed once and unused afterwards.
        unsafe { m.free_pages(black_box(page), order) };
    }
}
