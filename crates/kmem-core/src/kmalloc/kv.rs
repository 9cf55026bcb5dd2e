//! The `kvmalloc` decision (SEMANTICS §4.2, KM-12): which flags the kmalloc attempt gets and
//! whether a failed attempt may fall back to vmalloc. Pure; the machine carries it out.

use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_NOFAIL, __GFP_NOWARN, __GFP_RETRY_MAYFAIL, Gfp};
use crate::order::PAGE_SIZE;

/// `kmalloc_gfp_adjust`: for requests above a page, the kmalloc attempt must not warn, must
/// not insist (`__GFP_NOFAIL` cleared) and — unless the caller asked to retry — must not enter
/// direct reclaim, because vmalloc can serve it from scattered pages (6.16+ behaviour).
pub const fn kmalloc_gfp_adjust(gfp: Gfp, size: usize) -> Gfp {
    if size <= PAGE_SIZE {
        return gfp;
    }
    let mut flags = gfp.union(__GFP_NOWARN).difference(__GFP_NOFAIL);
    if !gfp.contains(__GFP_RETRY_MAYFAIL) {
        flags = flags.difference(__GFP_DIRECT_RECLAIM);
    }
    flags
}

/// What `kvmalloc` does after the kmalloc attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvFallback {
    /// Fail: sub-page sizes never fall back.
    SmallFails,
    /// Fail: the caller's flags do not allow blocking, which vmalloc needs.
    NonBlockingFails,
    /// Fail with a warning (unless `__GFP_NOWARN`): above `INT_MAX`.
    TooLarge,
    /// Try vmalloc with the caller's flags.
    Vmalloc,
}

/// `__kvmalloc_node_noprof` steps 2–5.
pub const fn kvmalloc_fallback(gfp: Gfp, size: usize) -> KvFallback {
    if size <= PAGE_SIZE {
        KvFallback::SmallFails
    } else if !gfp.contains(__GFP_DIRECT_RECLAIM) {
        KvFallback::NonBlockingFails
    } else if size > i32::MAX as usize {
        KvFallback::TooLarge
    } else {
        KvFallback::Vmalloc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfp::{GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT};

    #[test]
    fn km12_flags_and_fallback_rules() {
        assert_eq!(kmalloc_gfp_adjust(GFP_KERNEL, PAGE_SIZE), GFP_KERNEL, "a page or less: unchanged");
        let big = kmalloc_gfp_adjust(GFP_KERNEL | __GFP_NOFAIL, PAGE_SIZE + 1);
        assert!(big.contains(__GFP_NOWARN) && !big.contains(__GFP_NOFAIL) && !big.contains(__GFP_DIRECT_RECLAIM));
        let retry = kmalloc_gfp_adjust(GFP_KERNEL | __GFP_RETRY_MAYFAIL, 1 << 20);
        assert!(retry.contains(__GFP_DIRECT_RECLAIM), "RETRY_MAYFAIL keeps direct reclaim");
        assert_eq!(kvmalloc_fallback(GFP_KERNEL, PAGE_SIZE), KvFallback::SmallFails);
        assert_eq!(kvmalloc_fallback(GFP_ATOMIC, 1 << 20), KvFallback::NonBlockingFails);
        assert_eq!(kvmalloc_fallback(GFP_NOWAIT, 1 << 20), KvFallback::NonBlockingFails);
        assert_eq!(kvmalloc_fallback(GFP_KERNEL, 1 << 20), KvFallback::Vmalloc);
        assert_eq!(kvmalloc_fallback(GFP_KERNEL, i32::MAX as usize + 1), KvFallback::TooLarge);
    }
}
