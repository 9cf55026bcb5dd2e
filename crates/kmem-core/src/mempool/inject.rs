//! Fault injection into pools (`mm/mempool.c`, 2025): `fail_mempool_alloc` makes
//! `mempool_alloc` skip `alloc_fn` on a pass and go to the reserve; `fail_mempool_alloc_bulk`
//! makes `mempool_alloc_bulk` skip `alloc_fn` for the whole array once. Both ask
//! `should_fail_ex(attr, 1, FAULT_NOWARN)`, so no `FAULT_INJECTION:` dump is printed, only the
//! mempool's own `forcing mempool usage for <caller>` line (the kernel's `%pS` of its
//! caller's return address; here the caller's location, as kmem's other reports name it).
//!
//! The knobs are the platform's ([`Platform::fault_attr`]): `fail_mempool_alloc` is looked up
//! once at init and kept in the pool (a never-armed static when the platform has none), so the
//! allocation fast path pays two dependent loads and a test while it is off (callgrind, the
//! slab pool pair of kmem-bench's own loop when it was measured: 131 instructions against 130
//! without the check); a caller that holds the platform passes the attribute in
//! ([`Mempool::alloc_inline`]: the `kmem` crate's helper pools), one load. `fail_mempool_alloc_bulk`
//! is looked up on each bulk allocation.
//!
//! [`Platform::fault_attr`]: crate::platform::Platform::fault_attr

use core::panic::Location;

use super::Mempool;
use crate::fault::{FaultAttr, FaultPoint};
use crate::platform::Level;

/// The attribute of a pool whose platform has none (and of a zeroed or exited pool): never
/// armed, so the fast path needs no test for its absence.
pub(super) static NEVER: FaultAttr = FaultAttr::new();

impl Mempool {
    /// The pool's `fail_mempool_alloc` attribute.
    #[inline(always)]
    pub(super) fn fail_alloc_attr(&self) -> &FaultAttr {
        // SAFETY: The platform's attribute, which lives as long as the platform, which outlives
        // the pool (`init_with`), or [`NEVER`], which lives for ever.
        unsafe { self.fail_alloc.as_ref() }
    }

    /// `should_fail_ex(&fail_mempool_alloc, 1, FAULT_NOWARN)` at `repeat_alloc`: true (after the
    /// report line) if this pass must skip `alloc_fn`. `attr` is the pool's
    /// ([`Self::fail_alloc_attr`], or the same reached through the platform).
    #[track_caller]
    #[inline(always)]
    pub(super) fn forced_to_reserve(&self, attr: &FaultAttr) -> bool {
        attr.enabled() && self.inject(attr)
    }

    /// `fail_mempool_alloc_bulk` at the start of `mempool_alloc_bulk`: true (after the report
    /// line) if the whole array must go to the reserve first.
    #[track_caller]
    pub(super) fn forced_bulk_to_reserve(&self) -> bool {
        let Some(attr) = self.platform().and_then(|p| p.fault_attr(FaultPoint::FailMempoolAllocBulk)) else {
            return false;
        };
        attr.enabled() && self.inject(attr)
    }

    /// The decision of an armed attribute, and the `pr_info` when it fires. `verbose` is not
    /// consulted: the mempool passes `FAULT_NOWARN`, and its own line is unconditional.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn inject(&self, attr: &FaultAttr) -> bool {
        if attr.should_fail(1).is_none() {
            return false;
        }
        if let Some(platform) = self.platform() {
            platform.log(Level::Info, format_args!("forcing mempool usage for {}", Location::caller()));
        }
        true
    }
}
