//! `kmem_cache_create` arguments that would overflow the layout arithmetic (size-arithmetic
//! audit): a clear error, never a panic (debug overflow check, division by zero) or a wrapped size.

use kmem::Profile;
use kmem::slab::CacheArgs;
use kmem::slab::flags::{SLAB_RED_ZONE, SlabFlags};

use crate::builder;

/// `kmem_cache_create` with an alignment near `usize::MAX`: `calculate_alignment` rounds it up
/// to a word (`next_multiple_of(8)`), which overflows; in `find_mergeable` the wrapped 0 is then
/// a divisor (`merge_size`). Must be `Err(BadAlign)`, not a panic.
#[test]
fn kmem_cache_create_with_a_huge_alignment_is_an_error_not_a_panic() {
    let m = builder(Profile::X86_64, 64).pcp(false).build().unwrap();
    // A mergeable cache on the list, so the new request is compared with it.
    let _a = m.kmem_cache_create("ovf_a", 64, &CacheArgs::default(), SlabFlags::empty()).unwrap();
    for align in [usize::MAX, usize::MAX - 6] {
        let args = CacheArgs { align, ..CacheArgs::default() };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.kmem_cache_create("ovf_b", 64, &args, SlabFlags::empty()).is_err()
        }));
        assert_eq!(r.ok(), Some(true), "align {align:#x}: an error, not a panic");
    }
}

/// A power-of-two alignment of 2^63 with `SLAB_RED_ZONE`: `calculate_sizes` adds the left red
/// zone (`red_left_pad` = align) and rounds the stride up to the alignment, which wraps to 0;
/// `calculate_order` then divides by it. Must be `Err`, not a panic.
#[test]
fn kmem_cache_create_red_zone_with_alignment_2_pow_63_is_an_error_not_a_panic() {
    let m = builder(Profile::X86_64, 64).pcp(false).build().unwrap();
    let args = CacheArgs { align: 1 << 63, ..CacheArgs::default() };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.kmem_cache_create("ovf_rz", 64, &args, SLAB_RED_ZONE).is_err()
    }));
    assert_eq!(r.ok(), Some(true), "an error, not a panic");
}

/// `kmem_cache_create` with a size near `usize::MAX`: `merge_size` rounds it up to a word
/// (`object_size.next_multiple_of(8)`) before `calculate_sizes` can refuse it as too large, which
/// overflows in a debug build. Must be `Err(TooLarge)`, not a panic.
#[test]
fn kmem_cache_create_with_a_size_near_usize_max_is_an_error_not_a_panic() {
    let m = builder(Profile::X86_64, 64).pcp(false).build().unwrap();
    let _a = m.kmem_cache_create("ovf_a", 64, &CacheArgs::default(), SlabFlags::empty()).unwrap();
    for size in [usize::MAX, usize::MAX - 6] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.kmem_cache_create("ovf_big", size, &CacheArgs::default(), SlabFlags::empty()).is_err()
        }));
        assert_eq!(r.ok(), Some(true), "size {size:#x}: an error, not a panic");
    }
}
