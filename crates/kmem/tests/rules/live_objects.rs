//! Calls that treat a pointer as a live kmalloc object — `krealloc`, `ksize`,
//! `kfree_sensitive`, `kvfree_sensitive`, `kvrealloc` — given one that is not: a pointer inside
//! an object, the object just freed, memory kmalloc never handed out. Each is reported and
//! nothing is written: zeroing or growing "the object" from there used to clear the next
//! object's bytes, hand a freed object back as live (two owners), or return an empty block as
//! if the data had moved (the input audit's findings; each test fails on the old code).

use std::time::Duration;

use kmem::Machine;
use kmem::gfp::*;

use crate::*;

/// `n` live `kmalloc(64)` objects, each filled with 0xAA.
fn fill64(m: &Machine, n: usize) -> Vec<*mut u8> {
    (0..n)
        .map(|_| {
            let p = m.kmalloc(64, GFP_KERNEL).expect("kmalloc").as_ptr();
            // SAFETY: A fresh 64-byte object.
            unsafe { p.write_bytes(0xAA, 64) };
            p
        })
        .collect()
}

/// The objects (other than `skip`) whose bytes are no longer all 0xAA.
fn damaged(objs: &[*mut u8], skip: usize) -> Vec<usize> {
    objs.iter()
        .enumerate()
        // SAFETY: Live objects of 64 bytes.
        .filter(|&(i, &p)| i != skip && unsafe { std::slice::from_raw_parts(p, 64) }.iter().any(|&b| b != 0xAA))
        .map(|(i, _)| i)
        .collect()
}

fn free_objs(m: &Machine, objs: Vec<*mut u8>) {
    for p in objs {
        // SAFETY: The test's own live objects, freed once.
        unsafe { m.kfree(p) };
    }
}

#[test]
fn kfree_sensitive_and_kvfree_sensitive_of_an_interior_pointer_zero_nothing() {
    let m = i386_nopcp(32);
    let objs = fill64(&m, 64);
    // SAFETY: Not an object (reported), so nothing may be written.
    unsafe { m.kfree_sensitive(objs[10].add(32)) };
    assert_eq!(damaged(&objs, usize::MAX), Vec::<usize>::new(), "{}", m.dmesg());
    assert_eq!(count_log(&m, &format!("Invalid object pointer 0x{:x}", objs[10] as usize + 32)), 1, "{}", m.dmesg());
    // SAFETY: As above.
    unsafe { m.kvfree_sensitive(objs[20].add(32), 64) };
    assert_eq!(damaged(&objs, usize::MAX), Vec::<usize>::new(), "{}", m.dmesg());
    assert_eq!(count_log(&m, &format!("Invalid object pointer 0x{:x}", objs[20] as usize + 32)), 1, "{}", m.dmesg());
    free_objs(&m, objs);
}

#[test]
fn krealloc_and_ksize_of_an_interior_pointer_are_refused() {
    let m = i386_nopcp(32);
    let objs = fill64(&m, 64);
    let inner = objs[10].wrapping_add(32);
    // SAFETY: Not an object (reported), so nothing may be written.
    let r = unsafe { m.krealloc(inner, 16, GFP_KERNEL | __GFP_ZERO) };
    assert_eq!(r, Err(kmem::AllocError));
    assert_eq!(damaged(&objs, usize::MAX), Vec::<usize>::new(), "{}", m.dmesg());
    assert_eq!(count_log(&m, "FIX kmalloc-64: krealloc of "), 1, "{}", m.dmesg());
    // SAFETY: As above.
    assert_eq!(unsafe { m.ksize(inner) }, 0, "ksize from inside an object would reach the next one");
    assert_eq!(count_log(&m, "FIX kmalloc-64: ksize of "), 1, "{}", m.dmesg());
    // SAFETY: Inside the test's own object, which no one frees meanwhile.
    assert_eq!(unsafe { m.kmalloc_usable_size(inner) }, None);
    // SAFETY: Growing past the object: refused the same way, nothing copied or freed.
    assert_eq!(unsafe { m.krealloc(inner, 200, GFP_KERNEL) }, Err(kmem::AllocError));
    assert_eq!(damaged(&objs, usize::MAX), Vec::<usize>::new());
    free_objs(&m, objs);
}

#[test]
fn krealloc_of_the_object_just_freed_is_refused_as_already_free() {
    let m = i386_nopcp(32);
    let p = m.kmalloc(64, GFP_KERNEL).expect("kmalloc").as_ptr();
    // SAFETY: Ours, freed once.
    unsafe { m.kfree(p) };
    // SAFETY: A freed object: detected (the last one this CPU freed) and refused.
    let r = unsafe { m.krealloc(p, 32, GFP_KERNEL) };
    assert_eq!(r, Err(kmem::AllocError), "{}", m.dmesg());
    assert_eq!(count_log(&m, &format!("Object 0x{:x} already free", p as usize)), 1, "{}", m.dmesg());
    // SAFETY: Freed by this thread; no other thread frees or allocates meanwhile.
    assert_eq!(unsafe { m.kmalloc_usable_size(p) }, None, "a free object has no usable size");
    // SAFETY: As above: kfree_sensitive zeroes nothing, and its free reports the double free.
    unsafe { m.kfree_sensitive(p) };
    assert_eq!(count_log(&m, "double free of object"), 1, "{}", m.dmesg());
    // One owner: the next kmalloc gets it, and the one after another object.
    let q = m.kmalloc(64, GFP_KERNEL).expect("kmalloc").as_ptr();
    let r = m.kmalloc(64, GFP_KERNEL).expect("kmalloc").as_ptr();
    assert_ne!(q, r);
    // SAFETY: Ours, freed once each.
    unsafe {
        m.kfree(q);
        m.kfree(r);
    }
}

#[test]
fn kvrealloc_of_memory_kmalloc_never_handed_out_leaves_it_alone() {
    let m = i386_nopcp(32);
    let page = m.alloc_pages(GFP_KERNEL, 0).expect("page");
    let p = m.page_address(page).expect("lowmem").as_ptr();
    // SAFETY: The test's page.
    unsafe { p.write_bytes(0xAA, 64) };
    let free0 = m.total_free();
    // SAFETY: Not a kmalloc allocation: reported, refused, nothing moved.
    let r = unsafe { m.kvrealloc(p, 64 << 10, GFP_KERNEL) };
    assert!(r.is_err(), "kvrealloc gave {r:?}: an empty block as if the data had moved");
    assert_eq!(m.total_free(), free0, "nothing allocated");
    // SAFETY: The test's page, untouched.
    assert!(unsafe { std::slice::from_raw_parts(p, 64) }.iter().all(|&b| b == 0xAA));
    assert!(count_log(&m, "krealloc: object pointer") >= 1, "{}", m.dmesg());
    // SAFETY: The test's page, freed once.
    unsafe { m.free_pages(page, 0) };
}

#[test]
fn a_huge_oom_timeout_saturates_instead_of_wrapping_to_nothing() {
    // 2^58 ms is 15625 × 2^64 ns: wrapped to u64, exactly 0, so the OOM path gave up at once.
    let ms = (1u64 << 58).to_string();
    let b = Machine::builder().profile(Profile::I386).mem_bytes(32 << 20).cpus(2).kswapd(false).pcp(false);
    let m =
        kmem::env::apply(b, |k| (k == "KMEM_OOM_TIMEOUT_MS").then(|| ms.clone())).expect("accepted").build().unwrap();
    // Taken without waiting (a `GFP_KERNEL` grab would itself wait here, for ever).
    let held = grab_all(&m, GFP_ATOMIC | __GFP_NOWARN);
    let worker = {
        let m = m.clone();
        std::thread::spawn(move || m.alloc_pages(GFP_KERNEL, 0).map(|p| m.page_to_pfn(p)))
    };
    // The request waits in the OOM path (for ever, with this timeout) until memory comes back.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count_log(&m, "no process to kill") == 0 {
        assert!(std::time::Instant::now() < deadline, "the request never reached the OOM path\n{}", m.dmesg());
        std::thread::sleep(Duration::from_millis(10));
    }
    // Several 50 ms wait slices: a wrapped timeout gives up after the first.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!worker.is_finished(), "gave up: the timeout wrapped\n{}", m.dmesg());
    assert_eq!(count_log(&m, "waiting up to 0 ms"), 0, "{}", m.dmesg());
    free_all(&m, held);
    let pfn = worker.join().expect("worker").expect("woken by the frees, not failed").expect("a pfn");
    // SAFETY: The worker's page, freed once.
    unsafe { m.free_pages(m.pfn_to_page(pfn).expect("page"), 0) };
}
