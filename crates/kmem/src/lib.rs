//! # kmem
//!
//! The Linux kernel's memory-allocation stack, run for real in userspace. A [`Machine`] is one
//! instance: a memfd of "physical memory" with a direct map, zones by physical address
//! ([`Profile::I386`] with HighMem, or [`Profile::X86_64`]), the buddy page allocator of
//! `kmem-core` with per-CPU lists (threads are CPUs), real sleeping for `GFP_KERNEL`, a
//! background reclaimer, and the kernel log.
//!
//! ```
//! use kmem::{Machine, Profile};
//! use kmem::gfp::GFP_KERNEL;
//!
//! let m = Machine::builder().profile(Profile::I386).mem_bytes(64 << 20).build()?;
//! let order = kmem::get_order(8192 * 10);
//! let buf = m.get_free_pages(GFP_KERNEL, order)?;
//! // Freeing is `unsafe`, as `kfree` is: the caller promises nothing uses the pages afterwards.
//! // SAFETY: Our pages, unused from here on.
//! unsafe { m.free_pages_addr(buf.as_ptr(), order) };
//! assert_eq!(order, 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `unsafe` code lives only in [`sys`] (the memfd mapping), [`mapping`] (frames mapped into
//! the vmalloc range and the HighMem windows) and in `machine`: the `Platform`
//! implementation, the slot hand-back at thread exit, and the byte copies of
//! `write_bytes`/`read_bytes` (after checking every page of the range is allocated), and in
//! [`mempool`] (the pool handle over the core's raw pool, and typed elements in pool pages),
//! `typed_cache` ([`KmemCache`]: slots of `T` and the constructor/destructor hooks),
//! [`global_alloc`] ([`KmemAlloc`], the `#[global_allocator]`), [`alloc_api`] (the
//! `allocator-api2` [`allocator_api2::alloc::Allocator`] over kmalloc) and `callers` (glibc's
//! `backtrace`/`dladdr1`, naming a C caller's frames in a report).
//!
//! ## What safe code cannot do
//!
//! A page, an area or a cache's memory may belong to a safe handle (`Vec<_, Vmalloc>`, a
//! [`CacheBox`], a pool element) or to kmem itself, so the calls that free it, write it or
//! remap it are `unsafe fn`s, as `kfree` is. Each of these does not compile without `unsafe`:
//!
//! ```compile_fail,E0133
//! # let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build().unwrap();
//! let page = m.alloc_pages(kmem::gfp::GFP_KERNEL, 0).unwrap();
//! m.free_pages(page, 0);
//! ```
//! ```compile_fail,E0133
//! # let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build().unwrap();
//! let v = m.vmalloc(4096).unwrap();
//! m.vfree(v.as_ptr());
//! ```
//! ```compile_fail,E0133
//! # let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build().unwrap();
//! let p = m.kmalloc(64, kmem::gfp::GFP_KERNEL).unwrap();
//! m.write_bytes(p, &[0; 8]).unwrap();
//! ```
//! ```compile_fail,E0133
//! # use kmem_core::vmalloc::Mmu;
//! # let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build().unwrap();
//! let v = m.vmalloc(4096).unwrap();
//! m.vm().mmu().zero(v.as_ptr() as usize, 4096);
//! ```
//! ```compile_fail,E0133
//! # let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build().unwrap();
//! let page = m.alloc_pages(kmem::gfp::GFP_KERNEL, 0).unwrap();
//! page.set_mapping(1);
//! ```
//!
//! The same calls inside `unsafe` compile and run (so the blocks above fail for that reason
//! alone):
//!
//! ```
//! # use kmem_core::vmalloc::Mmu;
//! # let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build().unwrap();
//! let page = m.alloc_pages(kmem::gfp::GFP_KERNEL, 0).unwrap();
//! let v = m.vmalloc(4096).unwrap();
//! let p = m.kmalloc(64, kmem::gfp::GFP_KERNEL).unwrap();
//! // SAFETY: All three are ours and unused by anything else; each is freed once.
//! unsafe {
//!     assert!(page.set_mapping(1) && page.set_mapping(0));
//!     m.vm().mmu().zero(v.as_ptr() as usize, 4096);
//!     m.write_bytes(p, &[0; 8]).unwrap();
//!     m.free_pages(page, 0);
//!     m.vfree(v.as_ptr());
//!     m.kfree(p.as_ptr());
//! }
//! ```

pub mod alloc_api;
pub mod alloc_vm;
mod callers;
pub mod context;
mod cpu;
pub mod env;
mod fork;
pub mod global_alloc;
mod highmem;
mod kswapd;
mod kvmalloc;
mod machine;
pub mod mapping;
pub mod mempool;
pub mod panics;
pub mod printk;
mod procfs;
mod profile;
mod user_platform;
pub use kmem_core::{kmalloc, slab};
pub mod sys;
mod typed_cache;
mod vm;

pub use alloc_api::Kmalloc;
pub use alloc_vm::{Kvmalloc, Vmalloc};
pub use callers::{CallChain, object_of};
pub use fork::ForkError;
pub use global_alloc::KmemAlloc;
pub use kmem_core::platform::Level;
pub use kmem_core::{
    AllocError, Gfp, MAX_PAGE_ORDER, MAX_WMARK_PAGES, PAGE_SHIFT, PAGE_SIZE, Page, get_order, gfp, memmap, order, proc,
    vmalloc, zone,
};
pub use machine::{BuildError, Builder, Machine, Profile, Settings};
pub use typed_cache::{CacheBox, KmemCache};
pub use user_platform::UserPlatform;

use std::sync::OnceLock;

/// The default machine used by the C ABI, the CLI and the global allocator: built on first use
/// from the `KMEM_*` environment variables, with `profile` unless `KMEM_PROFILE` says otherwise.
///
/// # Errors
/// A bad environment value (naming the variable) or a machine that cannot be built. The first
/// call decides; later calls return the same result.
pub fn default_machine_with(profile: Profile) -> Result<&'static Machine, &'static str> {
    static DEFAULT: OnceLock<Result<Machine, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            // The build's own allocations must not come back here through `KmemAlloc`.
            let _heap = global_alloc::system_scope();
            let builder = Builder::new().profile(profile).from_env().map_err(|e| e.to_string())?;
            builder.build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(String::as_str)
}
