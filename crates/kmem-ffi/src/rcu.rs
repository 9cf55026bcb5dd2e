//! RCU for C (`linux/rcupdate.h`): read-side sections, grace periods, `call_rcu`, and
//! `kfree_rcu` / `kvfree_rcu`, over the machine's RCU (`kmem_core::rcu`, the one `SLAB_TYPESAFE_BY_RCU`
//! caches and the Rust `kfree_rcu` use).
//!
//! - `rcu_read_lock`/`rcu_read_unlock` nest, per thread: each lock keeps the core's read guard
//!   on this thread's stack of sections, each unlock drops the innermost. An unlock with no
//!   section open is lockdep's "bad unlock balance", reported and ignored. A thread that exits
//!   inside a section leaves it then (its stack is dropped).
//! - `kmem_kfree_rcu` (behind the `kfree_rcu`, `kfree_rcu_mightsleep` and `kvfree_rcu` macros
//!   of a kmalloc or slab object) queues the object for the next grace period, as the Rust
//!   `Kmem::kfree_rcu` does. `kmem_kvfree_rcu` of a vmalloc address waits for a grace period
//!   and then `vfree`s (outside atomic context and read-side sections; inside them the area
//!   stays allocated and a warning is logged): the core's queue holds slab objects only
//!   (`docs/deviations.md`).
//! - `call_rcu` queues the callback through the caller's `struct rcu_head`; it runs at the next
//!   `rcu_barrier` (also called by the destroy and shrink of `SLAB_TYPESAFE_BY_RCU` caches),
//!   oldest first, after the grace period (`kmem_core::slab::rcu_free`'s module docs say why
//!   not earlier).

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::panic::Location;

use kmem::Level;
use kmem_core::platform::Platform;
use kmem_core::rcu::{RcuCallback, RcuHead, RcuReadGuard};

use crate::boundary::{ffi_boundary, report_null};

thread_local! {
    /// This thread's open read-side sections, innermost last.
    static SECTIONS: RefCell<Vec<RcuReadGuard<'static>>> = const { RefCell::new(Vec::new()) };
}

/// `void rcu_read_lock(void)`: enters a read-side section (they nest).
#[unsafe(no_mangle)]
pub extern "C" fn rcu_read_lock() {
    ffi_boundary("rcu_read_lock", (), |m| {
        let guard = m.rcu_read_lock();
        SECTIONS.with(|s| s.borrow_mut().push(guard));
    });
}

/// `void rcu_read_unlock(void)`: leaves the innermost section; with none open, lockdep's
/// report (`print_unlock_imbalance_bug`) and nothing else.
#[unsafe(no_mangle)]
pub extern "C" fn rcu_read_unlock() {
    ffi_boundary("rcu_read_unlock", (), |m| {
        if SECTIONS.with(|s| s.borrow_mut().pop()).is_some() {
            return;
        }
        let platform = m.platform();
        let mut task = String::new();
        platform.with_task(&mut |t| task = format!("{}/{}", t.comm, t.pid));
        m.printk(
            Level::Warning,
            &format!(
                "=====================================\nWARNING: bad unlock balance detected!\n-------------------------------------\n{task} is trying to release lock (rcu_read_lock) at:\nrcu_read_unlock\nbut there are no more locks to release!\n"
            ),
        );
        platform.dump_stack(Location::caller());
    });
}

/// `int rcu_read_lock_held(void)`: whether this thread is inside a read-side section.
#[unsafe(no_mangle)]
pub extern "C" fn rcu_read_lock_held() -> c_int {
    SECTIONS.with(|s| c_int::from(!s.borrow().is_empty()))
}

/// `void synchronize_rcu(void)`: waits for every read-side section that began before it, then
/// frees what waited for it. Inside the caller's own section: reported, returns at once.
#[unsafe(no_mangle)]
pub extern "C" fn synchronize_rcu() {
    ffi_boundary("synchronize_rcu", (), |m| m.synchronize_rcu());
}

/// `void rcu_barrier(void)`: everything `kfree_rcu`'d before it is freed when it returns.
#[unsafe(no_mangle)]
pub extern "C" fn rcu_barrier() {
    ffi_boundary("rcu_barrier", (), |m| m.rcu_barrier());
}

/// `kfree_rcu(ptr, rhf)`, `kfree_rcu_mightsleep(ptr)`: frees a kmalloc or slab object after a
/// grace period. NULL does nothing; a pointer that is not an object is reported when the
/// grace period frees it (as `kfree` reports it).
///
/// # Safety
/// `ptr` is NULL or an object the caller owns and gives up; readers in sections that began
/// before the call may still read it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_kfree_rcu(ptr: *const c_void) {
    crate::kmemleak::free(ptr, crate::kmemleak::Freer::Kfree); // `kvfree_call_rcu`'s `kmemleak_ignore`.
    // SAFETY: The caller's promise (the core's contract).
    ffi_boundary("kfree_rcu", (), |m| unsafe { m.kfree_rcu(ptr.cast()) });
}

/// `kvfree_rcu(ptr, rhf)`, `kvfree_rcu_mightsleep(ptr)`: as [`kmem_kfree_rcu`], and a vmalloc
/// address is `vfree`d after a grace period the call waits for (see the module docs).
///
/// # Safety
/// As [`kmem_kfree_rcu`], or `ptr` is a vmalloc area the caller gives up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_kvfree_rcu(ptr: *const c_void) {
    // As in `kmem_kfree_rcu`; a vmalloc area's record goes only when it is freed below (in
    // atomic context or a read-side section it stays allocated).
    crate::kmemleak::free(ptr, crate::kmemleak::Freer::Kfree);
    ffi_boundary("kvfree_rcu", (), |m| {
        if !m.is_vmalloc_addr(ptr.cast()) {
            // SAFETY: The caller's promise.
            return unsafe { m.kfree_rcu(ptr.cast()) };
        }
        let platform = m.platform();
        if platform.in_atomic() || platform.in_rcu_read() {
            m.printk(
                Level::Warning,
                &format!(
                    "kvfree_rcu: cannot wait for a grace period to free the vmalloc area {:#x} in atomic context or an RCU read-side section; it stays allocated\n",
                    ptr as usize
                ),
            );
            platform.dump_stack(Location::caller());
            return;
        }
        m.synchronize_rcu();
        crate::kmemleak::free(ptr, crate::kmemleak::Freer::Vfree);
        // SAFETY: The caller gives the area up; every reader that could see it has left.
        unsafe { m.vfree(ptr.cast()) }
    });
}

/// `void call_rcu(struct rcu_head *head, rcu_callback_t func)`: `func(head)` runs after a grace
/// period, in atomic context: in kswapd's thread after its next grace period that can complete
/// (`Kmem::rcu_core`), or at the next `rcu_barrier`. A NULL head or callback is reported and
/// ignored.
///
/// # Safety
/// `head` is NULL or points to a `struct rcu_head` that stays valid and untouched until `func`
/// runs, and is not queued again before then.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn call_rcu(head: *mut RcuHead, func: Option<RcuCallback>) {
    ffi_boundary("call_rcu", (), |m| {
        let (Some(head), Some(func)) = (std::ptr::NonNull::new(head), func) else {
            let what = if head.is_null() { "rcu_head" } else { "callback" };
            return report_null(m, "call_rcu", what, Location::caller());
        };
        // SAFETY: The caller's promise.
        unsafe { m.call_rcu(head, func) }
    });
}
