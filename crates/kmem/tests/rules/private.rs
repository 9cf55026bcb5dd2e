//! Machines with private memory (`Builder::private_memory`) and `fork`: the child gets a
//! copy-on-write copy of heap bytes and allocator state, and the CPU slots of the threads that
//! did not survive the fork are flushed and given back (`Machine::fork_child`).

use std::sync::mpsc;

use kmem::gfp::{__GFP_NOWARN, GFP_KERNEL};
use kmem::{BuildError, Builder, ForkError, Machine, PAGE_SIZE, Profile};

fn private(mib: u64) -> Machine {
    Builder::new().profile(Profile::X86_64).mem_bytes(mib << 20).private_memory(true).kswapd(false).build().unwrap()
}

#[test]
fn private_memory_serves_kmalloc_with_natural_alignment_and_no_vmalloc() {
    let m = private(64);
    // SAFETY: The fd is only tested for absence.
    assert!(m.phys().is_private() && unsafe { m.phys().fd() }.is_none());
    assert_eq!(m.phys().base().as_ptr() as usize % kmem::sys::DIRECT_MAP_ALIGN, 0, "direct map aligned to 4 MiB");
    for size in [8, 16, 64, 512, 4096, 8192, 16384, 1 << 20, 4 << 20] {
        let p = m.kmalloc(size, GFP_KERNEL).unwrap();
        assert_eq!(p.as_ptr() as usize % size, 0, "kmalloc({size}) is size-aligned");
        // SAFETY: `size` bytes were just allocated for this test.
        unsafe { p.as_ptr().write_bytes(0x5a, size) };
        // SAFETY: Allocated above, not used afterwards.
        unsafe { m.kfree(p.as_ptr()) };
    }
    assert!(m.vmalloc(PAGE_SIZE).is_err(), "frames cannot be mapped twice in private memory");
    assert!(m.kvmalloc(8 << 20, GFP_KERNEL | __GFP_NOWARN).is_err(), "no vmalloc fallback");
    let small = m.kvmalloc(64 << 10, GFP_KERNEL).unwrap();
    // SAFETY: From kvmalloc above.
    unsafe { m.kvfree(small.as_ptr()) };
}

#[test]
fn private_memory_gives_freed_pages_back_with_madvise() {
    let m = private(64);
    let order = 10;
    let blocks: Vec<_> = (0..4).map(|_| m.get_free_pages(GFP_KERNEL, order).unwrap()).collect();
    for b in &blocks {
        // SAFETY: Each block is 4 MiB allocated for this test.
        unsafe { b.as_ptr().write_bytes(0xa5, PAGE_SIZE << order) };
    }
    let touched = m.resident_bytes();
    assert!(touched >= 16 << 20, "16 MiB written, {touched} resident");
    for b in &blocks {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages_addr(b.as_ptr(), order) };
    }
    assert!(m.trim() >= 4, "the four max-order blocks are released");
    let after = m.resident_bytes();
    assert!(after + (16 << 20) <= touched, "resident {touched} -> {after}");
    let again = m.get_free_pages(GFP_KERNEL, order).unwrap();
    // SAFETY: 4 MiB allocated for this test; reading bytes of a discarded (zero) block.
    let bytes = unsafe { std::slice::from_raw_parts(again.as_ptr(), PAGE_SIZE << order) };
    assert!(bytes.iter().all(|&b| b == 0), "discarded memory reads as zero");
    // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
    unsafe { m.free_pages_addr(again.as_ptr(), order) };
}

#[test]
fn private_memory_refuses_i386_highmem() {
    let e = Builder::new().profile(Profile::I386).mem_bytes(1 << 30).private_memory(true).build().unwrap_err();
    assert!(matches!(&e, BuildError::Setting(s) if s.contains("HighMem")), "{e}");
    let low = Builder::new().profile(Profile::I386).mem_bytes(64 << 20).private_memory(true).build().unwrap();
    assert!(low.kmalloc(100, GFP_KERNEL).is_ok());
}

#[test]
fn only_private_machines_without_kswapd_can_be_forked() {
    let shared = Builder::new().mem_bytes(32 << 20).kswapd(false).build().unwrap();
    assert_eq!(shared.fork_prepare(), Err(ForkError::SharedMemory));
    let kswapd = Builder::new().mem_bytes(32 << 20).private_memory(true).build().unwrap();
    assert_eq!(kswapd.fork_prepare(), Err(ForkError::Kswapd));
    let m = private(32);
    assert_eq!(m.fork_prepare(), Ok(()));
    // Another thread cannot end this thread's fork (soundness audit: it released the lock).
    let other = m.clone();
    assert_eq!(std::thread::spawn(move || other.fork_parent()).join().unwrap(), Err(ForkError::NotPrepared));
    assert_eq!(m.fork_parent(), Ok(()));
    assert_eq!(m.fork_parent(), Err(ForkError::NotPrepared), "unbalanced: refused, nothing released");
    // A thread exit after the fork ended hands its slot back as usual.
    let m2 = m.clone();
    std::thread::spawn(move || {
        let p = m2.kmalloc(64, GFP_KERNEL).unwrap();
        // SAFETY: Allocated just above, freed once.
        unsafe { m2.kfree(p.as_ptr()) };
    })
    .join()
    .unwrap();
    assert_eq!(m.nr_cpus_in_use(), 0);
}

/// What the child checks, as an exit code (0: all good), since it must not panic or print.
fn child_checks(m: &Machine, a: *mut u8, helper_cached: usize) -> i32 {
    let cache = m.kmalloc_cache(256, GFP_KERNEL).unwrap();
    let before = m.cache_info(cache).active_objs;
    // SAFETY: Called in the fork child, on its only thread; the parent called `fork_prepare`
    // and its helper thread was parked outside the machine.
    let released = unsafe { m.fork_child() };
    if released != 1 {
        return 10;
    }
    if m.nr_cpus_in_use() != 1 {
        return 11;
    }
    let after = m.cache_info(cache).active_objs;
    if before - after < helper_cached {
        return 12;
    }
    // SAFETY: `a` holds 4096 bytes allocated by the parent before the fork: our copy.
    let bytes = unsafe { std::slice::from_raw_parts_mut(a, 4096) };
    if bytes.iter().any(|&b| b != 0x11) {
        return 13;
    }
    bytes.fill(0x22);
    let objs: Vec<_> = (0..1000).filter_map(|_| m.kmalloc(256, GFP_KERNEL).ok()).collect();
    if objs.len() != 1000 {
        return 14;
    }
    for o in objs {
        // SAFETY: Allocated just above.
        unsafe { m.kfree(o.as_ptr()) };
    }
    // SAFETY: The child's copy of `a`, freed once here.
    unsafe { m.kfree(a) };
    0
}

#[test]
fn fork_child_gets_a_copy_and_flushes_the_cpus_of_threads_that_did_not_survive() {
    let m = private(64);
    let a = m.kmalloc(4096, GFP_KERNEL).unwrap().as_ptr();
    // SAFETY: 4096 bytes allocated above.
    unsafe { a.write_bytes(0x11, 4096) };
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let m2 = m.clone();
    let helper = std::thread::spawn(move || {
        let objs: Vec<_> = (0..32).map(|_| m2.kmalloc(256, GFP_KERNEL).unwrap()).collect();
        for o in &objs {
            // SAFETY: Allocated above, freed once: into this thread's CPU array.
            unsafe { m2.kfree(o.as_ptr()) };
        }
        ready_tx.send(()).unwrap();
        done_rx.recv().unwrap();
    });
    ready_rx.recv().unwrap();
    assert_eq!(m.nr_cpus_in_use(), 2, "the test thread and the helper");
    let cache = m.kmalloc_cache(256, GFP_KERNEL).unwrap();
    let active = m.cache_info(cache).active_objs;
    assert!(active >= 32, "the helper's freed objects wait in its CPU array ({active})");
    m.fork_prepare().unwrap();
    // SAFETY: The child runs only `child_checks` (our machine, no locks of the test harness)
    // and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = child_checks(&m, a, 32);
        // SAFETY: Ends the child without running the harness's exit handlers.
        unsafe { libc::_exit(code) };
    }
    m.fork_parent().expect("prepared on this thread");
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: Waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child check failed (code)");
    // SAFETY: Our 4096 bytes, untouched by the child's writes.
    let bytes = unsafe { std::slice::from_raw_parts(a, 4096) };
    assert!(bytes.iter().all(|&b| b == 0x11), "the child wrote to its own copy");
    assert_eq!(m.nr_cpus_in_use(), 2, "the parent's helper still holds its slot");
    assert_eq!(m.cache_info(cache).active_objs, active, "the parent's state is untouched");
    done_tx.send(()).unwrap();
    helper.join().unwrap();
    // SAFETY: Allocated above, freed once.
    unsafe { m.kfree(a) };
}
