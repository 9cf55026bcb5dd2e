//! A bare slab alloc+free pair loop on a kmem machine, for instruction counts:
//!
//! ```sh
//! cargo build --release -p kmem-bench --example slab_pair_loop
//! N=200000 valgrind --tool=callgrind target/release/examples/slab_pair_loop cache
//! N=0      valgrind --tool=callgrind target/release/examples/slab_pair_loop cache   # setup only
//! N=200000 valgrind --tool=callgrind target/release/examples/slab_pair_loop kmalloc 64
//! ```
//!
//! `cache`: `kmem_cache_alloc_unchecked`+`kmem_cache_free` on a 64-byte cache (kmem-bench's
//! kmem_cache rows); `checked`: the same with the safe `kmem_cache_alloc`, which checks the
//! handle first; `kmalloc SIZE`:
//! `kmalloc(SIZE)`+`kfree`, the size hidden from the compiler (as in kmem-bench's `kN` loops);
//! `jemalloc SIZE`, `mimalloc SIZE`: the same pair through that peer, for scale (jemalloc through
//! its `GlobalAlloc`, mimalloc through `mi_malloc`/`mi_free`, as kmem-bench calls them).
//! (Instructions per pair) = (total − setup-only total) / N. ~61 objects stay live, as in
//! kmem-bench. It prints the time per pair too, but timing belongs to `kmem-bench`.

use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Instant;

use kmem_core::gfp::GFP_KERNEL;
use kmem_core::slab::{CacheArgs, CacheRef, flags::SlabFlags};

#[path = "support/mod.rs"]
mod support;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "cache".to_owned());
    let size: usize = args.next().map_or(64, |s| s.parse().expect("size"));
    let n = support::iterations(2_000_000);
    let m = support::machine(1 << 30);
    let cache = m.kmem_cache_create("bench64", 64, &CacheArgs::default(), SlabFlags::default()).expect("cache");
    match mode.as_str() {
        "jemalloc" => return peer_pairs(&tikv_jemallocator::Jemalloc, size, n),
        "mimalloc" => return peer_pairs(&MiDirect, size, n),
        _ => {}
    }
    let kmalloc = mode == "kmalloc";
    let live: Vec<NonNull<u8>> = (0..61)
        .map(|_| if kmalloc { m.kmalloc(size, GFP_KERNEL) } else { m.kmem_cache_alloc(cache, GFP_KERNEL) })
        .collect::<Result<_, _>>()
        .expect("live objects");
    let start = Instant::now();
    if kmalloc {
        kmalloc_pairs(&m, size, n);
    } else if mode == "checked" {
        checked_pairs(&m, cache, n);
    } else {
        cache_pairs(&m, cache, n);
    }
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("{mode} {size} pair: {ns:.1} ns");
    for p in live {
        // SAFETY: each live object is freed once, to where it came from.
        unsafe {
            if kmalloc {
                m.kfree(p.as_ptr());
            } else {
                m.kmem_cache_free(cache, p.as_ptr());
            }
        }
    }
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

#[inline(never)]
fn checked_pairs(m: &kmem::Machine, cache: CacheRef, n: u64) {
    for _ in 0..n {
        let p = m.kmem_cache_alloc(cache, GFP_KERNEL).expect("alloc");
        // SAFETY: just allocated from `cache`, freed once.
        unsafe { m.kmem_cache_free(cache, black_box(p).as_ptr()) };
    }
}

#[inline(never)]
fn kmalloc_pairs(m: &kmem::Machine, size: usize, n: u64) {
    let size = black_box(size);
    for _ in 0..n {
        let p = m.kmalloc(size, GFP_KERNEL).expect("kmalloc");
        // SAFETY: just allocated by kmalloc, freed once.
        unsafe { m.kfree(black_box(p).as_ptr()) };
    }
}

/// `n` pairs through a peer, with 61 live objects of `size` held around them.
fn peer_pairs<G: std::alloc::GlobalAlloc>(g: &G, size: usize, n: u64) {
    let layout = std::alloc::Layout::from_size_align(size, 8).expect("layout");
    // SAFETY: non-zero sizes; every pointer is freed once with its layout.
    unsafe {
        let live: Vec<*mut u8> = (0..61).map(|_| g.alloc(layout)).collect();
        let start = Instant::now();
        global_pairs(g, black_box(layout), n);
        println!("peer {size} pair: {:.1} ns", start.elapsed().as_nanos() as f64 / n.max(1) as f64);
        for p in live {
            g.dealloc(p, layout);
        }
    }
}

#[inline(never)]
fn global_pairs<G: std::alloc::GlobalAlloc>(g: &G, layout: std::alloc::Layout, n: u64) {
    for _ in 0..n {
        // SAFETY: non-zero size; freed once with its layout.
        unsafe {
            let p = g.alloc(layout);
            assert!(!p.is_null());
            g.dealloc(black_box(p), layout);
        }
    }
}

/// mimalloc through its C API, as kmem-bench's peer: the `mimalloc` crate's `GlobalAlloc` calls
/// `mi_malloc_aligned`, slower above 1 KiB. `mi_malloc` aligns to 16 bytes, which covers the
/// 8 this loop asks for.
struct MiDirect;

// SAFETY: `mi_malloc`/`mi_free` are a thread-safe malloc/free pair; alignments up to 16 only.
unsafe impl std::alloc::GlobalAlloc for MiDirect {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        assert!(layout.align() <= 16);
        // SAFETY: any size; the result is NULL or a block of at least `layout.size()` bytes.
        unsafe { libmimalloc_sys::mi_malloc(layout.size()) }.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `mi_malloc` above and is freed once (the caller's contract).
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }
}
