//! The Rust front doors of `kmem` (DESIGN §5): typed caches (`KmemCache<T>`) and the
//! `allocator-api2` `Allocator` over kmalloc. The `#[global_allocator]` program is its own test
//! binary (`tests/global_alloc.rs`).

mod alloc_api;
mod alloc_vm;
mod hook_kmalloc;
mod hook_reentry;
mod typed_cache;
mod typed_reentry;

use kmem::Machine;

/// A 64 MiB machine with four CPU slots, no kswapd, and freelists in slot order.
pub fn machine() -> Machine {
    Machine::builder().mem_bytes(64 << 20).cpus(4).kswapd(false).random_freelist(false).build().expect("machine")
}

/// How many log records contain `needle`.
pub fn count_log(m: &Machine, needle: &str) -> usize {
    m.log().records().iter().filter(|r| r.text.contains(needle)).count()
}
