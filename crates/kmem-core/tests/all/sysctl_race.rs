//! Concurrent sysctl writes (PA-10): `vm.min_free_kbytes` and `vm.watermark_scale_factor`
//! written from two threads at once leave every zone's watermarks as the final pair of
//! settings gives them, never from a stale mix (`setup_per_zone_wmarks` runs under one lock in
//! the kernel, so the last recompute reads both settings).

use kmem_core::zone::{Wmark, ZoneType};

use super::{Region, boot};

#[test]
fn pa10_concurrent_sysctl_writes_leave_the_final_settings_marks() {
    let region = Region::new(32 << 20);
    let pa = boot(&region, false);
    let marks = |pa: &kmem_core::PageAllocator<super::Board>| {
        [ZoneType::Dma, ZoneType::Normal]
            .map(|z| [Wmark::Min, Wmark::Low, Wmark::High].map(|w| pa.zone(z).wmark_base(w)))
    };
    // The marks of the final settings, on an allocator that saw no race.
    let (kb_final, factor_final) = (1024, 10);
    let reference = {
        let other = Region::new(32 << 20);
        let pa2 = boot(&other, false);
        pa2.set_min_free_kbytes(kb_final).unwrap();
        pa2.set_watermark_scale_factor(factor_final).unwrap();
        marks(&pa2)
    };
    for round in 0..20000 {
        // Both final writes start together, so each recompute can overlap the other's.
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                pa.set_min_free_kbytes(64 + round * 7).unwrap();
                start.wait();
                pa.set_min_free_kbytes(kb_final).unwrap();
            });
            s.spawn(|| {
                pa.set_watermark_scale_factor(100 + round % 2000).unwrap();
                start.wait();
                pa.set_watermark_scale_factor(factor_final).unwrap();
            });
        });
        assert_eq!(marks(&pa), reference, "round {round}: the marks of a stale mix of settings");
    }
}
