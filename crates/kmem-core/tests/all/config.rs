//! `Config` values out of the sysctls' ranges are refused by `PageAllocator::new` with an
//! error, as the setters refuse them, before anything is computed from them.

use kmem_core::PageAllocator;
use kmem_core::page_alloc::Config;

use super::{Region, board, normal_only};

#[test]
fn config_out_of_the_sysctl_ranges_is_refused() {
    let region = Region::new(16 << 20);
    let scale = "watermark_scale_factor must be 1..=3000";
    let kb = "min_free_kbytes must be 0..=2147483647 (the sysctl's int)";
    let boost = "watermark_boost_factor must be 0..=2147483647 (the sysctl's int)";
    for (config, want) in [
        (Config { watermark_scale_factor: 0, ..Config::default() }, scale),
        (Config { watermark_scale_factor: 3001, ..Config::default() }, scale),
        (Config { watermark_scale_factor: usize::MAX, ..Config::default() }, scale),
        (Config { min_free_kbytes: Some(i32::MAX as usize + 1), ..Config::default() }, kb),
        (Config { min_free_kbytes: Some(usize::MAX), ..Config::default() }, kb),
        (Config { watermark_boost_factor: usize::MAX, ..Config::default() }, boost),
    ] {
        // SAFETY: The region is ours, zeroed, and outlives the allocator (none is built).
        let got = unsafe { PageAllocator::new(board(false), normal_only(&region), config) }.err();
        assert_eq!(got.map(|e| e.0), Some(want));
    }
    // The largest values in range build.
    let config =
        Config { watermark_scale_factor: 3000, watermark_boost_factor: i32::MAX as usize, ..Config::default() };
    // SAFETY: As above; the allocator is dropped before the region.
    let pa = unsafe { PageAllocator::new(board(false), normal_only(&region), config) };
    assert!(pa.is_ok());
}
