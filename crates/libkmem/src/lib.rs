//! Packages kmem's C ABI as `libkmem.so` and `libkmem.a`: every `#[no_mangle]` export of
//! [`kmem_ffi`] (pages, printk, context, module parameters, and the later layers as they land).
//!
//! Why a crate of its own: the libraries must be named `libkmem`, so the library target is
//! named `kmem`, like the machine crate's. An rlib of that name next to the machine's would
//! collide in `target/` (cargo#6313), so this crate builds only the C libraries, and the Rust
//! code lives in `kmem-ffi` (an rlib the `kmem` binary links too).

pub use kmem_ffi::*;
