//! The task-flag allocation scopes of `linux/sched/mm.h` (GFP-7): `memalloc_noio_save`,
//! `memalloc_nofs_save` and `memalloc_noreclaim_save` with their `_restore`s.
//!
//! The kernel saves and restores one `current->flags` bit; kmem's scopes are per-thread counts
//! (`kmem::context`, shared with the Rust guards), so a save enters the scope once more and
//! returns the bit as it was, and a restore leaves it once. For saves and restores paired as
//! the kernel requires (last saved, first restored) both give the same masks.
//! `memalloc_noreclaim` is the thread's reclaim flag (`PF_MEMALLOC`), saved and restored as
//! the kernel does. `current_gfp_context` shows what the scopes do to a mask.

use std::ffi::c_uint;

use kmem::Gfp;

use crate::boundary::ffi_guard;
use crate::pages::gfp_t;

/// `PF_MEMALLOC`: the task is reclaiming (may use the reserves, never recurses into reclaim).
pub const PF_MEMALLOC: c_uint = 0x0000_0800;
/// `PF_MEMALLOC_NOFS`: allocations lose `__GFP_FS`.
pub const PF_MEMALLOC_NOFS: c_uint = 0x0004_0000;
/// `PF_MEMALLOC_NOIO`: allocations lose `__GFP_IO` and `__GFP_FS`.
pub const PF_MEMALLOC_NOIO: c_uint = 0x0008_0000;

fn save(export: &str, noio: bool, bit: c_uint) -> c_uint {
    ffi_guard(export, 0, || if kmem::context::enter_scope(noio) { bit } else { 0 })
}

/// `unsigned int memalloc_noio_save(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn memalloc_noio_save() -> c_uint {
    save("memalloc_noio_save", true, PF_MEMALLOC_NOIO)
}

/// `void memalloc_noio_restore(unsigned int flags)`.
#[unsafe(no_mangle)]
pub extern "C" fn memalloc_noio_restore(_flags: c_uint) {
    ffi_guard("memalloc_noio_restore", (), || {
        kmem::context::leave_scope(true);
    });
}

/// `unsigned int memalloc_nofs_save(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn memalloc_nofs_save() -> c_uint {
    save("memalloc_nofs_save", false, PF_MEMALLOC_NOFS)
}

/// `void memalloc_nofs_restore(unsigned int flags)`.
#[unsafe(no_mangle)]
pub extern "C" fn memalloc_nofs_restore(_flags: c_uint) {
    ffi_guard("memalloc_nofs_restore", (), || {
        kmem::context::leave_scope(false);
    });
}

/// `unsigned int memalloc_noreclaim_save(void)`: sets `PF_MEMALLOC`, returns it as it was.
#[unsafe(no_mangle)]
pub extern "C" fn memalloc_noreclaim_save() -> c_uint {
    ffi_guard("memalloc_noreclaim_save", 0, || if kmem::context::set_in_reclaim(true) { PF_MEMALLOC } else { 0 })
}

/// `void memalloc_noreclaim_restore(unsigned int flags)`: puts `PF_MEMALLOC` back as saved.
#[unsafe(no_mangle)]
pub extern "C" fn memalloc_noreclaim_restore(flags: c_uint) {
    ffi_guard("memalloc_noreclaim_restore", (), || {
        kmem::context::set_in_reclaim(flags & PF_MEMALLOC != 0);
    });
}

/// `gfp_t current_gfp_context(gfp_t flags)`: `flags` as the calling thread's scopes leave them
/// (NOIO drops `__GFP_IO|__GFP_FS`, NOFS drops `__GFP_FS`), what every allocation of the thread
/// does to its mask.
#[unsafe(no_mangle)]
pub extern "C" fn current_gfp_context(flags: gfp_t) -> gfp_t {
    ffi_guard("current_gfp_context", flags, || {
        let (noio, nofs) = kmem::context::gfp_scope();
        Gfp::from_bits(flags).with_scope(noio, nofs).bits()
    })
}
