//! SL-15 tracking lines (SEMANTICS §3.8): `print_track` prints `age=` as `jiffies - t->when`,
//! a difference of jiffy counters, not of milliseconds. kmem's jiffies are the platform clock
//! at `HZ` = 250 (`kmem_core::platform::HZ`, `jiffies()`), so the board's clock is set by hand
//! here and the age is exact.

use std::sync::atomic::Ordering::Relaxed;

use kmem_core::Kmem;
use kmem_core::gfp::GFP_KERNEL;
use kmem_core::platform::{HZ, jiffies};
use kmem_core::slab::flags::{SLAB_NO_USER_FLAGS, SLAB_RED_ZONE, SLAB_STORE_USER};
use kmem_core::slab::{CacheArgs, SlabConfig};

use super::{Region, boot};

const MS: u64 = 1_000_000;

#[test]
fn sl15_track_age_is_in_jiffies() {
    assert_eq!(HZ, 250);
    assert_eq!((jiffies(3_999_999), jiffies(4 * MS), jiffies(1_000 * MS)), (0, 1, 250));
    let region = Region::new(32 << 20);
    let k = Kmem::new(boot(&region, true), SlabConfig::default());
    let board = k.platform();
    board.tick_ns.store(0, Relaxed);
    let flags = SLAB_STORE_USER | SLAB_RED_ZONE | SLAB_NO_USER_FLAGS;
    let c = k.kmem_cache_create("aged", 64, &CacheArgs::default(), flags).unwrap();
    // Allocated at 10.003 s (jiffy 2500), looked at 2.002 s later, at 12.005 s (jiffy 3001).
    board.ticks.store(10_003 * MS, Relaxed);
    let p = k.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    board.ticks.store(12_005 * MS, Relaxed);
    // SAFETY: The first byte of the right red zone of the test's own object.
    unsafe { p.as_ptr().add(64).write(0) };
    board.log.lock().unwrap().clear();
    assert_eq!(k.validate_slab_cache(c), Ok(1));
    let log = board.log.lock().unwrap().clone();
    let alloc = log.lines().find(|l| l.contains("Allocated in ")).unwrap_or_else(|| panic!("{log}"));
    assert!(alloc.ends_with(" age=501 cpu=0 pid=0"), "jiffies(12.005 s) - jiffies(10.003 s): {alloc}");
    assert!(!log.contains("Freed in "), "an empty free track prints nothing: {log}");
    // SAFETY: The test's own object, freed once.
    unsafe { k.kmem_cache_free(c, p.as_ptr()) };
    // SAFETY: Empty, not used again.
    unsafe { k.kmem_cache_destroy(c) }.unwrap();
}
