//! Aborting where a panic may not unwind: through a `GlobalAlloc` method (undefined behaviour
//! if it unwinds), or through the allocator's half-done work around a caller's constructor or
//! destructor.
//!
//! [`abort_on_unwind`] runs a closure with a guard that is forgotten when the closure returns;
//! if the closure panics instead, the guard is dropped during the unwind and panics with its
//! message, and a panic inside a panic aborts — after both messages, in `no_std` too (the
//! second panic cannot unwind, so the panic handler is called with `can_unwind() == false`).

/// Panics with its message when dropped: forgotten on every normal path, so it is only ever
/// dropped by an unwind.
struct AbortOnUnwind(&'static str);

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// `f()`, or an abort (with `why` after the panic's own message) if it panics.
#[inline(always)]
pub fn abort_on_unwind<R>(why: &'static str, f: impl FnOnce() -> R) -> R {
    let guard = AbortOnUnwind(why);
    let out = f();
    core::mem::forget(guard);
    out
}

/// [`abort_on_unwind`] for the body of a `GlobalAlloc` method (the core's `KmallocHeap`, the
/// `kmem` crate's `KmemAlloc`): the platform's callbacks, a report or a bug could panic there.
#[inline(always)]
pub fn in_global_alloc<R>(f: impl FnOnce() -> R) -> R {
    abort_on_unwind("kmem: a panic inside the global allocator, which must not unwind", f)
}
