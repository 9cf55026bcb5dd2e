//! Slab cache flags: the `slab_flags_t` of `include/linux/slab.h`, the masks of `mm/slab.h` and
//! `mm/slab_common.c`, and the seeds' legacy names (SEMANTICS.md §3.2, §3.4, §9).
//!
//! Since Linux 6.9 the values come from `enum _slab_flag_bits`: each flag is `1 << n` where `n`
//! is its position in the enum, and configuration-dependent entries are left out of the enum
//! (which shifts every later bit) and defined as 0. kmem derives the values for this
//! configuration, decided here:
//! * `CONFIG_SLUB_DEBUG` on (the debug flags are real), `CONFIG_SLUB_TINY` off.
//! * `CONFIG_FAILSLAB` on: kmem has `failslab` fault injection (DESIGN.md §4), whose
//!   `cache-filter` knob needs [`SLAB_FAILSLAB`].
//! * Memory cgroups counted as configured for the flag values only: [`SLAB_ACCOUNT`] is a real bit
//!   because SEMANTICS §3.4 (SL-6) makes it a merge-separating flag and §4.1 has `kmalloc-cg-*`
//!   caches. kmem charges nothing to any cgroup.
//! * Off: `CONFIG_DEBUG_OBJECTS`, `CONFIG_KASAN_GENERIC`, `CONFIG_KFENCE`, `CONFIG_SLAB_OBJ_EXT`
//!   (as in [`crate::gfp`]), so [`SLAB_DEBUG_OBJECTS`], [`SLAB_KASAN`], [`SLAB_SKIP_KFENCE`] and
//!   [`SLAB_NO_OBJ_EXT`] are 0 and the enum has bits 0..=18 ([`SLAB_FLAGS_LAST_BIT`] = 19).
//! * The seeds' [`SLAB_NO_REAP`] gets bit 31, far above the enum so that turning a config option
//!   on (which shifts bits) can never collide with it. It is permitted and keeps its meaning.

use core::ffi::c_ulong;
use core::fmt;

use crate::gfp::Gfp;

/// `slab_flags_t`: a set of cache flags; unknown bits are kept, as in C.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct SlabFlags(u32);

/// Debug (bit 0): expensive consistency checks of the slab and the object on every alloc/free.
pub const SLAB_CONSISTENCY_CHECKS: SlabFlags = SlabFlags(1 << 0);
/// Debug (bit 1): red zones before and after every object, checked on alloc/free.
pub const SLAB_RED_ZONE: SlabFlags = SlabFlags(1 << 1);
/// Debug (bit 2): poison free objects with `0x6b`…`0xa5` to catch use after free.
pub const SLAB_POISON: SlabFlags = SlabFlags(1 << 2);
/// Internal (bit 3): the cache is a kmalloc cache (enables original request size tracking).
pub const SLAB_KMALLOC: SlabFlags = SlabFlags(1 << 3);
/// Bit 4: align objects on a cache line, halved while the object fits in half of it.
pub const SLAB_HWCACHE_ALIGN: SlabFlags = SlabFlags(1 << 4);
/// Bit 5: slab pages come from `ZONE_DMA` (`GFP_DMA`).
pub const SLAB_CACHE_DMA: SlabFlags = SlabFlags(1 << 5);
/// Bit 6: slab pages come from `ZONE_DMA32` (`GFP_DMA32`).
pub const SLAB_CACHE_DMA32: SlabFlags = SlabFlags(1 << 6);
/// Debug (bit 7): record the last allocating and freeing call site, CPU, pid and time per object.
pub const SLAB_STORE_USER: SlabFlags = SlabFlags(1 << 7);
/// Bit 8: panic instead of returning NULL when `kmem_cache_create` fails (SL-2).
pub const SLAB_PANIC: SlabFlags = SlabFlags(1 << 8);
/// Bit 9: slab *pages* are freed after an RCU grace period; objects are reused at once, so a
/// reader must revalidate what it finds. The free pointer lives outside the object and object
/// contents are never poisoned or zeroed on free (SL-11).
pub const SLAB_TYPESAFE_BY_RCU: SlabFlags = SlabFlags(1 << 9);
/// Debug (bit 10): print every alloc and free of the cache (`TRACE …`).
pub const SLAB_TRACE: SlabFlags = SlabFlags(1 << 10);
/// Bit 11: the leak detector (kmemleak) does not track this cache's objects.
pub const SLAB_NOLEAKTRACE: SlabFlags = SlabFlags(1 << 11);
/// Bit 12: never merge this cache with another one (§3.4).
pub const SLAB_NO_MERGE: SlabFlags = SlabFlags(1 << 12);
/// Bit 13: `failslab` fault injection may fail this cache's allocations (`cache-filter`); set by
/// `slab_debug=A`, not by callers.
pub const SLAB_FAILSLAB: SlabFlags = SlabFlags(1 << 13);
/// Bit 14: every object is charged to the allocating memory cgroup, as if `__GFP_ACCOUNT`.
pub const SLAB_ACCOUNT: SlabFlags = SlabFlags(1 << 14);
/// Bit 15: ignore `slab_debug=` boot options for this cache (self-tests).
pub const SLAB_NO_USER_FLAGS: SlabFlags = SlabFlags(1 << 15);
/// Bit 16: objects are reclaimable by a shrinker: pages get `__GFP_RECLAIMABLE` and are counted
/// in `SReclaimable`.
pub const SLAB_RECLAIM_ACCOUNT: SlabFlags = SlabFlags(1 << 16);
/// Internal (bit 17): set by `calculate_sizes` when the object itself is poisoned (POISON
/// without RCU and without a constructor).
pub const __OBJECT_POISON: SlabFlags = SlabFlags(1 << 17);
/// Internal (bit 18): the cache uses the double-word cmpxchg fast path.
pub const __CMPXCHG_DOUBLE: SlabFlags = SlabFlags(1 << 18);
/// The number of enum bits in this configuration (`_SLAB_FLAGS_LAST_BIT`).
pub const SLAB_FLAGS_LAST_BIT: u32 = 19;

/// Object debugging hooks; 0 here (needs `CONFIG_DEBUG_OBJECTS`).
pub const SLAB_DEBUG_OBJECTS: SlabFlags = SlabFlags(0);
/// KASAN metadata in the cache; 0 here (needs `CONFIG_KASAN_GENERIC`).
pub const SLAB_KASAN: SlabFlags = SlabFlags(0);
/// KFENCE never samples this cache; 0 here (needs `CONFIG_KFENCE`).
pub const SLAB_SKIP_KFENCE: SlabFlags = SlabFlags(0);
/// No object extension vector for this cache; 0 here (needs `CONFIG_SLAB_OBJ_EXT`).
pub const SLAB_NO_OBJ_EXT: SlabFlags = SlabFlags(0);

// Aliases and the seeds' names (SEMANTICS §3.2, §9).

/// Objects are short-lived: the same flag as [`SLAB_RECLAIM_ACCOUNT`].
pub const SLAB_TEMPORARY: SlabFlags = SLAB_RECLAIM_ACCOUNT;
/// The name [`SLAB_TYPESAFE_BY_RCU`] had until 4.12.
pub const SLAB_DESTROY_BY_RCU: SlabFlags = SLAB_TYPESAFE_BY_RCU;
/// LDD3: "protect the cache from being reduced when the system looks for memory". Gone from the
/// kernel (2.6.19); kmem gives it bit 31 and honours it: reclaim never shrinks such a cache
/// (DESIGN.md §4). `kmem_cache_shrink` called by the owner still works. Caches only merge with
/// caches that agree on it ([`SLAB_MERGE_SAME`]).
pub const SLAB_NO_REAP: SlabFlags = SlabFlags(1 << 31);

/// The flags given to a constructor that is called as a constructor (2.6 `unsigned long flags`
/// argument of `ctor(void *, kmem_cache_t *, unsigned long)`). Without it the call was the
/// destructor, which was passed 0. Not a [`SlabFlags`] value: a separate namespace.
pub const SLAB_CTOR_CONSTRUCTOR: c_ulong = 0x001;
/// Constructor flag: the constructor must not sleep (the slab was grown for an allocation that
/// cannot block).
pub const SLAB_CTOR_ATOMIC: c_ulong = 0x002;

/// The 2.6 ctor `flags` argument for a slab grown by an allocation with `gfp`:
/// [`SLAB_CTOR_CONSTRUCTOR`], plus [`SLAB_CTOR_ATOMIC`] unless `gfp` may sleep (the kernel
/// tested `__GFP_WAIT`, now [`Gfp::allow_blocking`]).
pub const fn legacy_ctor_flags(gfp: Gfp) -> c_ulong {
    if gfp.allow_blocking() { SLAB_CTOR_CONSTRUCTOR } else { SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_ATOMIC }
}

// Masks (mm/slab.h, mm/slab_common.c).

/// Non-debug flags a caller may pass (`SLAB_CORE_FLAGS`).
pub const SLAB_CORE_FLAGS: SlabFlags = SlabFlags(
    SLAB_HWCACHE_ALIGN.0
        | SLAB_CACHE_DMA.0
        | SLAB_CACHE_DMA32.0
        | SLAB_PANIC.0
        | SLAB_TYPESAFE_BY_RCU.0
        | SLAB_DEBUG_OBJECTS.0
        | SLAB_NOLEAKTRACE.0
        | SLAB_RECLAIM_ACCOUNT.0
        | SLAB_TEMPORARY.0
        | SLAB_ACCOUNT.0
        | SLAB_NO_USER_FLAGS.0
        | SLAB_KMALLOC.0
        | SLAB_NO_MERGE.0,
);
/// The debug flags (`SLAB_DEBUG_FLAGS`); a cache with any of them takes the checked slow paths.
pub const SLAB_DEBUG_FLAGS: SlabFlags =
    SlabFlags(SLAB_RED_ZONE.0 | SLAB_POISON.0 | SLAB_STORE_USER.0 | SLAB_TRACE.0 | SLAB_CONSISTENCY_CHECKS.0);
/// Every flag `kmem_cache_create` accepts: the kernel's `SLAB_CORE_FLAGS | SLAB_DEBUG_FLAGS`,
/// plus [`SLAB_NO_REAP`]. Anything else fails with `-EINVAL` (SL-2, [`validate`]).
pub const SLAB_FLAGS_PERMITTED: SlabFlags = SlabFlags(SLAB_CORE_FLAGS.0 | SLAB_DEBUG_FLAGS.0 | SLAB_NO_REAP.0);
/// Flags that forbid merging (`SLAB_NEVER_MERGE`, ≈6.17: without `SLAB_CONSISTENCY_CHECKS`,
/// which the 7.0 series adds).
pub const SLAB_NEVER_MERGE: SlabFlags = SlabFlags(
    SLAB_RED_ZONE.0
        | SLAB_POISON.0
        | SLAB_STORE_USER.0
        | SLAB_TRACE.0
        | SLAB_TYPESAFE_BY_RCU.0
        | SLAB_NOLEAKTRACE.0
        | SLAB_FAILSLAB.0
        | SLAB_NO_MERGE.0,
);
/// Flags two caches must agree on to merge (`SLAB_MERGE_SAME`), plus kmem's [`SLAB_NO_REAP`].
pub const SLAB_MERGE_SAME: SlabFlags =
    SlabFlags(SLAB_RECLAIM_ACCOUNT.0 | SLAB_CACHE_DMA.0 | SLAB_CACHE_DMA32.0 | SLAB_ACCOUNT.0 | SLAB_NO_REAP.0);

/// The names `Display` prints, one per defined bit, in bit order.
#[rustfmt::skip]
pub const SLAB_FLAG_NAMES: &[(SlabFlags, &str)] = &[
    (SLAB_CONSISTENCY_CHECKS, "SLAB_CONSISTENCY_CHECKS"), (SLAB_RED_ZONE, "SLAB_RED_ZONE"),
    (SLAB_POISON, "SLAB_POISON"), (SLAB_KMALLOC, "SLAB_KMALLOC"), (SLAB_HWCACHE_ALIGN, "SLAB_HWCACHE_ALIGN"),
    (SLAB_CACHE_DMA, "SLAB_CACHE_DMA"), (SLAB_CACHE_DMA32, "SLAB_CACHE_DMA32"),
    (SLAB_STORE_USER, "SLAB_STORE_USER"), (SLAB_PANIC, "SLAB_PANIC"),
    (SLAB_TYPESAFE_BY_RCU, "SLAB_TYPESAFE_BY_RCU"), (SLAB_TRACE, "SLAB_TRACE"),
    (SLAB_NOLEAKTRACE, "SLAB_NOLEAKTRACE"), (SLAB_NO_MERGE, "SLAB_NO_MERGE"), (SLAB_FAILSLAB, "SLAB_FAILSLAB"),
    (SLAB_ACCOUNT, "SLAB_ACCOUNT"), (SLAB_NO_USER_FLAGS, "SLAB_NO_USER_FLAGS"),
    (SLAB_RECLAIM_ACCOUNT, "SLAB_RECLAIM_ACCOUNT"), (__OBJECT_POISON, "__OBJECT_POISON"),
    (__CMPXCHG_DOUBLE, "__CMPXCHG_DOUBLE"), (SLAB_NO_REAP, "SLAB_NO_REAP"),
];

// The enum bits are dense from 0 and the name table covers each defined bit once, in order.
const _: () = {
    let mut i = 0;
    while i < SLAB_FLAG_NAMES.len() {
        let bits = SLAB_FLAG_NAMES[i].0.0;
        assert!(bits.is_power_of_two());
        assert!(i + 1 == SLAB_FLAG_NAMES.len() || bits < SLAB_FLAG_NAMES[i + 1].0.0);
        assert!(i as u32 == SLAB_FLAGS_LAST_BIT || bits == 1 << i);
        i += 1;
    }
    assert!(SLAB_FLAG_NAMES.len() as u32 == SLAB_FLAGS_LAST_BIT + 1);
};
const _: () = assert!(SLAB_NO_REAP.0 >= 1 << SLAB_FLAGS_LAST_BIT);
const _: () = assert!(SLAB_FLAGS_PERMITTED.0 & (__OBJECT_POISON.0 | __CMPXCHG_DOUBLE.0 | SLAB_FAILSLAB.0) == 0);
const _: () = assert!(SLAB_NEVER_MERGE.0 & SLAB_MERGE_SAME.0 == 0);

crate::flagset::flag_set!(SlabFlags, "slab_flags_t");

impl SlabFlags {
    /// `kmem_cache_debug()`: any of [`SLAB_DEBUG_FLAGS`] is set.
    pub const fn is_debug(self) -> bool {
        self.intersects(SLAB_DEBUG_FLAGS)
    }

    /// `s->allocflags` of `calculate_sizes`: what every slab page allocation adds to the caller's
    /// GFP flags: `__GFP_COMP`, `GFP_DMA`/`GFP_DMA32` for the DMA caches and
    /// `__GFP_RECLAIMABLE` for [`SLAB_RECLAIM_ACCOUNT`].
    pub const fn allocflags(self) -> Gfp {
        use crate::gfp::{__GFP_COMP, __GFP_RECLAIMABLE, GFP_DMA, GFP_DMA32};
        let mut gfp = __GFP_COMP;
        if self.intersects(SLAB_CACHE_DMA) {
            gfp = gfp.union(GFP_DMA);
        }
        if self.intersects(SLAB_CACHE_DMA32) {
            gfp = gfp.union(GFP_DMA32);
        }
        if self.intersects(SLAB_RECLAIM_ACCOUNT) {
            gfp = gfp.union(__GFP_RECLAIMABLE);
        }
        gfp
    }
}

/// The permitted-flags check of `__kmem_cache_create_args` (SL-2).
///
/// # Errors
/// [`InvalidSlabFlags`] when `flags` has any bit outside [`SLAB_FLAGS_PERMITTED`] (internal
/// flags such as [`__OBJECT_POISON`], [`SLAB_FAILSLAB`], or undefined bits); the cache must
/// then not be created (NULL, or a panic with [`SLAB_PANIC`]).
pub const fn validate(flags: SlabFlags) -> Result<(), InvalidSlabFlags> {
    if flags.difference(SLAB_FLAGS_PERMITTED).0 == 0 { Ok(()) } else { Err(InvalidSlabFlags { flags }) }
}

/// Prints the set bits' names in bit order joined by `|` (aliases print as the flag they alias),
/// then the bits no name covers as one `0x…` number; the empty set prints nothing, like [`Gfp`].
impl fmt::Display for SlabFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::flagset::format_flags(f, self.0, SLAB_FLAG_NAMES.iter().map(|&(flag, name)| (flag.0, name)))
    }
}

/// `kmem_cache_create` was given flags outside [`SLAB_FLAGS_PERMITTED`] (SL-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSlabFlags {
    /// The whole flag set that was passed.
    pub flags: SlabFlags,
}

impl InvalidSlabFlags {
    /// Just the offending bits.
    pub const fn invalid(&self) -> SlabFlags {
        self.flags.difference(SLAB_FLAGS_PERMITTED)
    }

    /// The kernel's error number for this failure: `-EINVAL` (-22), as printed in
    /// `__kmem_cache_create_args(<name>) failed with error -22`.
    pub const fn errno(&self) -> i32 {
        -22
    }
}

/// E.g. `invalid slab flags 0x20000 (__OBJECT_POISON): error -22; flags:0x20010(…)`.
impl fmt::Display for InvalidSlabFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let invalid = self.invalid();
        write!(f, "invalid slab flags {:#x} ({invalid}): error {}; flags:{:?}", invalid.0, self.errno(), self.flags)
    }
}

impl InvalidSlabFlags {
    /// The description without the errno, for a report whose line already gives it.
    pub(crate) fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let invalid = self.invalid();
        write!(f, "invalid slab flags {:#x} ({invalid}); flags:{:?}", invalid.0, self.flags)
    }
}

impl core::error::Error for InvalidSlabFlags {}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::gfp::{__GFP_COMP, __GFP_RECLAIMABLE, GFP_ATOMIC, GFP_DMA, GFP_DMA32, GFP_KERNEL, GFP_NOWAIT};
    use std::format;

    #[test]
    fn enum_derived_bit_values() {
        #[rustfmt::skip]
        let bits = [
            (SLAB_CONSISTENCY_CHECKS, 0x1), (SLAB_RED_ZONE, 0x2), (SLAB_POISON, 0x4), (SLAB_KMALLOC, 0x8),
            (SLAB_HWCACHE_ALIGN, 0x10), (SLAB_CACHE_DMA, 0x20), (SLAB_CACHE_DMA32, 0x40),
            (SLAB_STORE_USER, 0x80), (SLAB_PANIC, 0x100), (SLAB_TYPESAFE_BY_RCU, 0x200), (SLAB_TRACE, 0x400),
            (SLAB_NOLEAKTRACE, 0x800), (SLAB_NO_MERGE, 0x1000), (SLAB_FAILSLAB, 0x2000),
            (SLAB_ACCOUNT, 0x4000), (SLAB_NO_USER_FLAGS, 0x8000), (SLAB_RECLAIM_ACCOUNT, 0x1_0000),
            (__OBJECT_POISON, 0x2_0000), (__CMPXCHG_DOUBLE, 0x4_0000), (SLAB_NO_REAP, 0x8000_0000),
        ];
        for (flag, value) in bits {
            assert_eq!(flag.bits(), value, "{flag}");
        }
        for flag in [SLAB_DEBUG_OBJECTS, SLAB_KASAN, SLAB_SKIP_KFENCE, SLAB_NO_OBJ_EXT] {
            assert_eq!(flag, SlabFlags::empty());
        }
        assert_eq!(SLAB_TEMPORARY, SLAB_RECLAIM_ACCOUNT);
        assert_eq!(SLAB_DESTROY_BY_RCU, SLAB_TYPESAFE_BY_RCU);
        assert_eq!(SLAB_FLAGS_LAST_BIT, 19);
    }

    #[test]
    fn masks() {
        assert_eq!(SLAB_CORE_FLAGS.bits(), 0x1_db78);
        assert_eq!(SLAB_DEBUG_FLAGS.bits(), 0x487);
        assert_eq!(SLAB_FLAGS_PERMITTED.bits(), 0x8001_dfff);
        assert_eq!(SLAB_NEVER_MERGE.bits(), 0x3e86);
        assert_eq!(SLAB_MERGE_SAME.bits(), 0x8001_4060);
        assert!(!SLAB_NEVER_MERGE.intersects(SLAB_CONSISTENCY_CHECKS)); // ≈6.17, not 7.0.
        assert!(SLAB_POISON.is_debug() && SLAB_CONSISTENCY_CHECKS.is_debug());
        assert!(!(SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_NO_REAP).is_debug());
    }

    #[test]
    fn sl2_validate_rejects_unpermitted_bits() {
        assert_eq!(validate(SlabFlags::empty()), Ok(()));
        assert_eq!(validate(SLAB_FLAGS_PERMITTED), Ok(()));
        assert_eq!(validate(SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_NO_REAP | SLAB_RED_ZONE), Ok(()));
        for bad in [__OBJECT_POISON, __CMPXCHG_DOUBLE, SLAB_FAILSLAB, SlabFlags::from_bits(1 << 20)] {
            let flags = SLAB_HWCACHE_ALIGN | bad;
            let err = validate(flags).unwrap_err();
            assert_eq!(err, InvalidSlabFlags { flags });
            assert_eq!(err.invalid(), bad);
            assert_eq!(err.errno(), -22);
        }
        // Every bit outside the permitted mask, one at a time.
        for bit in (0..32).map(|b| SlabFlags::from_bits(1 << b)) {
            assert_eq!(validate(bit).is_ok(), SLAB_FLAGS_PERMITTED.contains(bit), "{bit:?}");
        }
        let err = validate(SLAB_PANIC | __OBJECT_POISON | SlabFlags::from_bits(0x10_0000)).unwrap_err();
        assert_eq!(
            format!("{err}"),
            "invalid slab flags 0x120000 (__OBJECT_POISON|0x100000): error -22; \
             flags:0x120100(SLAB_PANIC|__OBJECT_POISON|0x100000)"
        );
        let _: &dyn core::error::Error = &err;
    }

    #[test]
    fn display_and_debug() {
        assert_eq!(format!("{}", SLAB_HWCACHE_ALIGN | SLAB_PANIC), "SLAB_HWCACHE_ALIGN|SLAB_PANIC");
        assert_eq!(format!("{}", SLAB_TEMPORARY), "SLAB_RECLAIM_ACCOUNT");
        assert_eq!(format!("{}", SLAB_DESTROY_BY_RCU | SLAB_NO_REAP), "SLAB_TYPESAFE_BY_RCU|SLAB_NO_REAP");
        assert_eq!(format!("{}", SlabFlags::from_bits(0x10_0000)), "0x100000");
        assert_eq!(format!("{}", SLAB_POISON | SlabFlags::from_bits(0x30_0000)), "SLAB_POISON|0x300000");
        assert_eq!(format!("{}", SlabFlags::empty()), "");
        assert_eq!(format!("{:?}", SLAB_HWCACHE_ALIGN | SLAB_PANIC), "0x110(SLAB_HWCACHE_ALIGN|SLAB_PANIC)");
        assert_eq!(format!("{:?}", SlabFlags::default()), "0x0()");
        for &(flag, name) in SLAB_FLAG_NAMES {
            assert_eq!(format!("{flag}"), name);
        }
    }

    #[test]
    fn operators_and_helpers() {
        let mut f = SLAB_HWCACHE_ALIGN | SLAB_POISON;
        assert!(f.contains(SLAB_POISON) && !f.contains(SLAB_POISON | SLAB_PANIC));
        assert!(f.intersects(SLAB_POISON | SLAB_PANIC) && !f.intersects(SLAB_PANIC));
        f |= SLAB_PANIC;
        f &= !SLAB_POISON;
        assert_eq!(f, SLAB_HWCACHE_ALIGN.union(SLAB_PANIC));
        assert_eq!(f & SLAB_PANIC, SLAB_PANIC);
        assert_eq!(f.intersection(SLAB_PANIC | SLAB_TRACE), SLAB_PANIC);
        assert_eq!(f.difference(SLAB_PANIC), SLAB_HWCACHE_ALIGN);
        assert_eq!((!SlabFlags::empty()).bits(), u32::MAX);
    }

    #[test]
    fn allocflags() {
        assert_eq!(SlabFlags::empty().allocflags(), __GFP_COMP);
        assert_eq!(SLAB_CACHE_DMA.allocflags(), __GFP_COMP | GFP_DMA);
        assert_eq!(SLAB_CACHE_DMA32.allocflags(), __GFP_COMP | GFP_DMA32);
        assert_eq!((SLAB_RECLAIM_ACCOUNT | SLAB_PANIC).allocflags(), __GFP_COMP | __GFP_RECLAIMABLE);
    }

    #[test]
    fn legacy_ctor_flag_values() {
        assert_eq!((SLAB_CTOR_CONSTRUCTOR, SLAB_CTOR_ATOMIC), (1, 2));
        assert_eq!(legacy_ctor_flags(GFP_KERNEL), SLAB_CTOR_CONSTRUCTOR);
        assert_eq!(legacy_ctor_flags(GFP_ATOMIC), SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_ATOMIC);
        assert_eq!(legacy_ctor_flags(GFP_NOWAIT), SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_ATOMIC);
    }
}
