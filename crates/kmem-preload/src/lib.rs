#![doc = include_str!("../README.md")]
//!
//! # Modules
//! `api` (the exported functions and their glibc semantics), `heap` (routing to kmalloc, mmap
//! or the bootstrap heap; the machine), `bootstrap` (the heap that never calls `malloc`, also
//! the Rust global allocator), `gate` and `fork` (fork safety), `config` (the machine's
//! settings), `stats` (`KMEM_STATS_ON_EXIT`), `sys` (host calls). Unsafe code is where raw
//! memory is handed out or touched: `api` (C pointers), `bootstrap` (its free lists), `heap`
//! (copies and the global allocator), `gate` (its records) and `sys` (libc calls).

// Unit tests build the library without its exports and global allocator (the test binary must
// not replace its own `malloc`), which leaves most of it unused there.
#![cfg_attr(test, expect(dead_code, reason = "the exports are compiled out of unit tests"))]

mod api;
mod bootstrap;
mod config;
mod fork;
mod gate;
mod heap;
mod stats;
mod sys;

/// Every Rust allocation of the library (the machine's own objects included) comes from the
/// bootstrap heap, never from `malloc`, which is this library itself.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: heap::RustAlloc = heap::RustAlloc;
