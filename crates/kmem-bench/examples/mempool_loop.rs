//! A bare mempool alloc+free pair loop on a kmem machine, for instruction counts:
//!
//! ```sh
//! cargo build --release -p kmem-bench --example mempool_loop
//! N=200000 valgrind --tool=callgrind target/release/examples/mempool_loop slab
//! N=0      valgrind --tool=callgrind target/release/examples/mempool_loop slab   # setup only
//! ```
//!
//! Modes, all on 64-byte objects with `GFP_KERNEL` as kmem-bench's `mempool` rows:
//! - `cache`: `kmem_cache_alloc_unchecked`+`kmem_cache_free` (the yardstick of the mempool
//!   goals, as in kmem-bench);
//! - `slab`: `mempool_alloc`+`mempool_free` on a four-element slab pool whose cache has objects
//!   (the element-available pair);
//! - `slab-reserve`: the same pool on a 16 MiB machine whose every page and every free object
//!   of the cache is taken, so each alloc pops the reserve after one failed backing attempt
//!   (the reserve pair);
//! - `page`, `page-reserve`: the same with an order-0 page pool;
//! - `kmalloc`: the element-available pair of a 64-byte kmalloc pool;
//! - `fail-reserve`: only the failing backing attempt of `slab-reserve` (`kmem_cache_alloc`
//!   with `mempool_alloc`'s first-pass mask on the exhausted machine);
//! - `prealloc-reserve`: only the reserve half of `slab-reserve` (`mempool_alloc_preallocated`
//!   and `mempool_free` back into the reserve).
//!
//! (Instructions per pair) = (total − setup-only total) / N. It prints the time per pair too,
//! but timing belongs to `kmem-bench`.

use std::hint::black_box;
use std::time::Instant;

use kmem::mempool::RawMempool;
use kmem_core::gfp::{
    __GFP_DIRECT_RECLAIM, __GFP_IO, __GFP_MEMALLOC, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, GFP_KERNEL,
};
use kmem_core::slab::{CacheArgs, CacheRef, flags::SlabFlags};

#[path = "support/mod.rs"]
mod support;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "slab".to_owned());
    let n = support::iterations(2_000_000);
    let reserve = mode.ends_with("-reserve");
    let m = support::machine(if reserve { 16 << 20 } else { 1 << 30 });
    let cache = m.kmem_cache_create("bench64", 64, &CacheArgs::default(), SlabFlags::default()).expect("cache");
    let start = Instant::now();
    match mode.as_str() {
        "cache" => cache_pairs(&m, cache, n),
        "fail-reserve" => {
            exhaust(&m, cache);
            fail_loop(&m, cache, n);
        }
        "prealloc-reserve" => {
            let pool = RawMempool::slab_pool(&m, 4, cache).expect("pool");
            exhaust(&m, cache);
            prealloc_pairs(&pool, n);
        }
        "slab" | "slab-reserve" | "page" | "page-reserve" | "kmalloc" => {
            let pool = if mode.starts_with("slab") {
                RawMempool::slab_pool(&m, 4, cache)
            } else if mode == "kmalloc" {
                RawMempool::kmalloc_pool(&m, 4, 64)
            } else {
                RawMempool::page_pool(&m, 4, 0)
            }
            .expect("pool");
            if reserve {
                exhaust(&m, cache);
            }
            let start = Instant::now();
            pool_pairs(&pool, n);
            let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
            println!("{mode} pair: {ns:.1} ns (pool only)");
        }
        other => panic!("unknown mode {other}"),
    }
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("{mode} pair: {ns:.1} ns");
}

/// Takes every page of `m` and every free object of `cache`, for good.
fn exhaust(m: &kmem::Machine, cache: CacheRef) {
    let gfp = GFP_KERNEL | __GFP_MEMALLOC | __GFP_NORETRY | __GFP_NOWARN;
    loop {
        for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
            while m.alloc_pages(gfp, order).is_ok() {}
        }
        if m.drain_local_pages() == 0 {
            break;
        }
    }
    while m.kmem_cache_alloc(cache, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN).is_ok() {}
}

#[inline(never)]
fn cache_pairs(m: &kmem::Machine, cache: CacheRef, n: u64) {
    for _ in 0..n {
        // SAFETY: `cache` is this machine's, never destroyed.
        let p = unsafe { m.kmem_cache_alloc_unchecked(cache, GFP_KERNEL) }.expect("alloc");
        // SAFETY: just allocated from `cache`, freed once.
        unsafe { m.kmem_cache_free(cache, black_box(p).as_ptr()) };
    }
}

/// `mempool_alloc(GFP_KERNEL)`'s first-pass mask.
const FIRST_PASS: kmem_core::Gfp = GFP_KERNEL
    .union(__GFP_NOMEMALLOC)
    .union(__GFP_NORETRY)
    .union(__GFP_NOWARN)
    .difference(__GFP_DIRECT_RECLAIM.union(__GFP_IO));

#[inline(never)]
fn fail_loop(m: &kmem::Machine, cache: CacheRef, n: u64) {
    for _ in 0..n {
        assert!(m.kmem_cache_alloc(cache, black_box(FIRST_PASS)).is_err(), "the machine is exhausted");
    }
}

#[inline(never)]
fn prealloc_pairs(pool: &RawMempool, n: u64) {
    for _ in 0..n {
        let e = std::ptr::NonNull::new(pool.alloc_preallocated()).expect("a reserved element");
        // SAFETY: just taken from `pool`, freed once.
        unsafe { pool.free(black_box(e)) };
    }
}

#[inline(never)]
fn pool_pairs(pool: &RawMempool, n: u64) {
    for _ in 0..n {
        let e = pool.alloc(GFP_KERNEL).expect("mempool_alloc with GFP_KERNEL never fails");
        // SAFETY: just allocated from `pool`, freed once.
        unsafe { pool.free(black_box(e)) };
    }
}
