//! HighMem mappings at their limits: `kmap_local_page` never sleeps (mm/highmem.c: a CPU-local
//! fixmap slot, usable in atomic context), also where kmem falls back to a persistent slot
//! (docs/deviations.md, "kmap": a thread without a CPU slot, or past `KM_MAX_IDX` nested local
//! mappings).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use kmem::gfp::GFP_HIGHUSER;
use kmem::{Page, Profile};

use crate::{builder, count_log, i386_nopcp};

/// `LAST_PKMAP`: persistent kmap slots of the i386 profile.
const LAST_PKMAP: usize = 1024;
/// `KM_MAX_IDX`: local mapping slots per CPU.
const KM_MAX_IDX: usize = 16;

/// The fallback of `kmap_local_page` to a persistent slot must not wait for a `kunmap` when all
/// `LAST_PKMAP` slots are in use: the kernel's `kmap_local_page` never sleeps, so its callers
/// may hold spin locks or be the holders themselves (here the caller's own process holds every
/// slot and unmaps only once the call returns: the wait was for ever). It reports and gives
/// `None` instead. Before the fix both calls below blocked in `kmap`'s wait; the 60 s receive
/// is a watchdog for that hang, not a timing claim (the slots are released after it either way,
/// so the threads end).
#[test]
fn kmap_local_fallback_never_waits_for_a_persistent_slot() {
    let m = builder(Profile::I386, 1024).build().expect("build i386 machine");
    let pages: Vec<&Page> = (0..LAST_PKMAP + 1).map(|_| m.alloc_pages(GFP_HIGHUSER, 0).unwrap()).collect();
    assert!(m.page_address(pages[0]).is_none(), "HighMem pages");
    // This thread holds CPU slot 0 (its allocations took it) and every persistent slot.
    for p in &pages[..LAST_PKMAP] {
        m.kmap(p).expect("a free persistent slot");
    }
    let extra = pages[LAST_PKMAP];
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        let (m, tx) = (&m, tx.clone());
        s.spawn(move || {
            // CPU slot 1: 16 nested local mappings, then one more, which falls back.
            let local: Vec<_> = (0..KM_MAX_IDX).map(|_| m.kmap_local_page(extra).unwrap()).collect();
            let nested = m.kmap_local_page(extra);
            let _ = tx.send(("nested", nested.is_some()));
            // No CPU slot is left for this one (the machine has two, both held).
            let (m2, tx2) = (m, tx.clone());
            thread::scope(|s2| {
                s2.spawn(move || {
                    let _ = tx2.send(("no CPU slot", m2.kmap_local_page(extra).is_some()));
                });
            });
            for v in local.iter().rev() {
                // SAFETY: This thread's own local mappings, released in reverse order, unused after.
                unsafe { m.kunmap_local(v.as_ptr()) };
            }
        });
        let got: Vec<_> = (0..2).map(|_| rx.recv_timeout(Duration::from_secs(60))).collect();
        for p in &pages[..LAST_PKMAP] {
            // SAFETY: This thread's own mappings, not used afterwards.
            unsafe { m.kunmap(p) };
        }
        assert_eq!(
            got,
            [Ok(("nested", false)), Ok(("no CPU slot", false))],
            "a kmap_local_page fallback waited for a persistent slot"
        );
    });
    assert_eq!(count_log(&m, "every persistent kmap slot is in use"), 2, "{}", m.dmesg());
    // With slots free again the fallback maps, as before.
    let view = thread::scope(|s| {
        s.spawn(|| {
            let local: Vec<_> = (0..KM_MAX_IDX).map(|_| m.kmap_local_page(extra).unwrap()).collect();
            let nested = m.kmap_local_page(extra);
            if let Some(v) = nested {
                // SAFETY: This thread's own most recent mapping, unused afterwards.
                unsafe { m.kunmap_local(v.as_ptr()) };
            }
            for v in local.iter().rev() {
                // SAFETY: As above.
                unsafe { m.kunmap_local(v.as_ptr()) };
            }
            nested.is_some()
        })
        .join()
        .unwrap()
    });
    assert!(view, "a free persistent slot serves the fallback");
    for p in pages {
        // SAFETY: The test's own pages, no longer mapped, unused afterwards.
        unsafe { m.free_pages(p, 0) };
    }
}

/// `kunmap_local` out of order (the first of two nested mappings released first) is
/// `kunmap_local_indexed`'s `WARN_ON_ONCE(addr != __fix_to_virt(FIX_KMAP_BEGIN + idx))`; the
/// kernel then releases the most recent mapping anyway, so a caller's balanced pairs keep the
/// stack balanced. kmem reported and ignored the call, keeping a local slot for good: after 8
/// such pairs every later `kmap_local_page` on the CPU was past `KM_MAX_IDX`.
#[test]
fn kunmap_local_out_of_order_warns_once_and_releases_a_slot() {
    let m = i386_nopcp(1024);
    let a = m.alloc_pages(GFP_HIGHUSER, 0).unwrap();
    let b = m.alloc_pages(GFP_HIGHUSER, 0).unwrap();
    for _ in 0..2 * KM_MAX_IDX {
        let va = m.kmap_local_page(a).unwrap();
        let vb = m.kmap_local_page(b).unwrap();
        // SAFETY: This thread's own local mappings (released in the wrong order on purpose),
        // not used afterwards.
        unsafe {
            m.kunmap_local(va.as_ptr());
            m.kunmap_local(vb.as_ptr());
        }
    }
    let log = m.dmesg();
    assert_eq!(count_log(&m, "more than 16 nested mappings"), 0, "local slots leaked:\n{log}");
    assert_eq!(count_log(&m, "WARNING: CPU: 0 at"), 1, "{log}");
    assert_eq!(count_log(&m, "kunmap_local_indexed: addr != __fix_to_virt(FIX_KMAP_BEGIN + idx)"), 1, "{log}");
    // All KM_MAX_IDX local slots are free again: nested mappings need no fallback.
    let local: Vec<_> = (0..KM_MAX_IDX).map(|_| m.kmap_local_page(a).unwrap()).collect();
    for v in local.iter().rev() {
        // SAFETY: This thread's own mappings, released in reverse order, unused afterwards.
        unsafe { m.kunmap_local(v.as_ptr()) };
    }
    assert_eq!(count_log(&m, "BUG:"), 0, "{}", m.dmesg());
    for p in [a, b] {
        // SAFETY: The test's own pages, no longer mapped.
        unsafe { m.free_pages(p, 0) };
    }
}

/// `kunmap_local` of a `kmap` address does nothing in the kernel (`kunmap_local_indexed` leaves
/// an address outside the fixmap alone), so the page's `kmap` uses stay as they were. kmem's
/// released one: with the caller's own `kunmap` after it (kmap/kunmap code half converted to
/// kmap_local), another holder's mapping lost its slot, `page_address` went NULL under it and
/// the slot could be handed to another page, and that holder's own `kunmap` was reported.
#[test]
fn kunmap_local_of_a_kmap_address_leaves_the_kmap_uses() {
    let m = i386_nopcp(1024);
    let page = m.alloc_pages(GFP_HIGHUSER, 0).unwrap();
    let theirs = m.kmap(page).unwrap();
    let mine = m.kmap(page).unwrap();
    assert_eq!(theirs, mine, "one persistent slot per page");
    // SAFETY: `mine` is this test's own mapping, unused afterwards; `theirs` stays mapped.
    unsafe {
        m.kunmap_local(mine.as_ptr());
        m.kunmap(page);
    }
    assert_eq!(m.page_address(page), Some(theirs), "the other kmap lost its slot:\n{}", m.dmesg());
    // SAFETY: The other holder's mapping, released by it and unused afterwards.
    unsafe { m.kunmap(page) };
    assert_eq!(m.page_address(page), None);
    assert_eq!(count_log(&m, "BUG"), 0, "{}", m.dmesg());
    // SAFETY: The test's own page, no longer mapped.
    unsafe { m.free_pages(page, 0) };
}
