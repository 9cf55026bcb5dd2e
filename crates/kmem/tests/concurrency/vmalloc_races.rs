//! vmalloc races: `__GFP_NOFAIL` requests waiting for address space other threads free (some
//! of it deferred from atomic context), and `vm_map_ram` on more threads than CPU slots.

use std::ptr::NonNull;
use std::thread;

use kmem::Profile;
use kmem::gfp::GFP_KERNEL;

use crate::Rng;
use crate::races::accounted;

/// A vmalloc range too small for every thread at once: `__GFP_NOFAIL` requests retry until
/// other threads' frees (some deferred from atomic context) give address space back.
#[test]
fn nofail_vmalloc_waits_for_address_space_freed_by_other_threads() {
    let m = crate::builder(Profile::X86_64, 64, 4, true).vmalloc_bytes(1 << 20).build().expect("machine");
    let rounds = 200u32;
    thread::scope(|s| {
        for t in 0..3usize {
            let m = &m;
            s.spawn(move || {
                let mut rng = Rng(t as u64 + 3);
                for i in 0..rounds {
                    let size = (256 + rng.index(200)) << 10;
                    let p = m.vmalloc_gfp(size, GFP_KERNEL | kmem::gfp::__GFP_NOFAIL).expect("NOFAIL vmalloc");
                    // SAFETY: Ours, inside the area; unused after the free.
                    unsafe {
                        p.as_ptr().write_volatile(t as u8);
                        thread::yield_now();
                        assert_eq!(p.as_ptr().read_volatile(), t as u8);
                        if i.is_multiple_of(3) {
                            let _a = kmem::context::atomic_section();
                            m.vfree_atomic(p.as_ptr());
                        } else {
                            m.vfree(p.as_ptr());
                        }
                    }
                }
                m.release_cpu();
            });
        }
    });
    m.flush_deferred_vfree();
    m.vm_reclaim_and_purge();
    assert_eq!(m.vmallocinfo().lines().filter(|l| !l.contains("unpurged")).count(), 0, "{}", m.vmallocinfo());
}

/// `vm_map_ram` on more threads than CPU slots (slot-less threads share queue 0), each mapping
/// its own pages, writing through the mapping and reading back through the direct map, then
/// unmapping; afterwards the blocks are purged and every page is back.
#[test]
fn vm_map_ram_on_more_threads_than_cpu_slots() {
    let m = crate::machine(Profile::X86_64, 64, 2, true);
    // vmalloc's node chunks are made on first use and kept for good (`vmalloc/mod.rs`).
    // SAFETY: Ours, unused after.
    unsafe { m.vfree(m.vmalloc(4096).expect("vmalloc").as_ptr()) };
    m.vm_reclaim_and_purge();
    let free0 = accounted(&m);
    thread::scope(|s| {
        let hs: Vec<_> = (0..5u8)
            .map(|t| {
                let m = &m;
                s.spawn(move || {
                    let mut rng = Rng(u64::from(t) + 17);
                    for i in 0..300u32 {
                        let n = 1 + rng.index(8);
                        let pages: Vec<&kmem::Page> =
                            (0..n).map(|_| m.alloc_pages(GFP_KERNEL, 0).expect("page")).collect();
                        let va = m.vm_map_ram(&pages, -1).expect("vm_map_ram");
                        let stamp = [t, (i & 0xff) as u8, 0x5a, t];
                        for k in 0..n {
                            // SAFETY: Our mapping of `n` pages.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    stamp.as_ptr(),
                                    va.as_ptr().add(k * kmem::PAGE_SIZE + 100),
                                    4,
                                )
                            };
                        }
                        thread::yield_now();
                        for (k, &p) in pages.iter().enumerate() {
                            let mut back = [0u8; 4];
                            let addr = m.page_address(p).expect("lowmem");
                            // SAFETY: Our page.
                            unsafe { m.read_bytes(NonNull::new(addr.as_ptr().wrapping_add(100)).unwrap(), &mut back) }
                                .expect("read");
                            assert_eq!(back, stamp, "thread {t}: page {k} of mapping {va:p} holds another's data");
                        }
                        // SAFETY: Our mapping, unused after.
                        unsafe { m.vm_unmap_ram(va.as_ptr(), n) };
                        for p in pages {
                            // SAFETY: Our page, unmapped, unused after.
                            unsafe { m.free_pages(p, 0) };
                        }
                    }
                    m.release_cpu();
                })
            })
            .collect();
        for h in hs {
            h.join().expect("worker");
        }
    });
    m.vm_unmap_aliases();
    m.vm_reclaim_and_purge();
    m.release_cpu();
    let info = m.vmallocinfo();
    assert!(info.lines().all(|l| l.contains("unpurged")), "areas left:\n{info}");
    assert_eq!(accounted(&m), free0, "every page back");
    assert!(!m.dmesg().contains("BUG"), "{}", m.dmesg());
}
