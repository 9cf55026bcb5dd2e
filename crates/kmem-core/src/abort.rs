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
pub(crate) fn abort_on_unwind<R>(why: &'static str, f: impl FnOnce() -> R) -> R {
    let guard = AbortOnUnwind(why);
    let out = f();
    core::mem::forget(guard);
    out
}
