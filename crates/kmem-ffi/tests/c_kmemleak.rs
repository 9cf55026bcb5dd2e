//! kmemleak for programs on libkmem (`KMEM_KMEMLEAK=1`, `linux/kmemleak.h`, `linux/kmem.h`'s
//! scan calls): C programs from `tests/c/kmemleak*.c`, built and run as the `c_abi` suite runs
//! its programs, judged by the report on stderr and their own checks.

use std::path::{Path, PathBuf};
use std::process::Output;

mod support;

use support::{Link, build_linked, run_with, run_with_args, show};

fn build(name: &str, link: Link) -> PathBuf {
    build_linked(name, link, &[])
}

/// Runs a C program on a fresh default machine (i386, 1 GiB sparse).
fn run(exe: &Path) -> Output {
    run_with(exe, &[])
}

/// `KMEM_KMEMLEAK=1` with threads: at exit the stacks of the other threads that allocated
/// through the C ABI are scanned (a sleeping thread's local keeps its object), those of threads
/// that exited are not (their dropped object is reported).
#[test]
fn kmemleak_scans_other_threads_stacks_at_exit() {
    for link in [Link::Shared, Link::Static] {
        let exe = build("kmemleak_threads", link);
        let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1")]);
        assert!(o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"), "{err}");
        let sizes: Vec<&str> = err
            .lines()
            .filter_map(|l| l.strip_prefix("unreferenced object 0x"))
            .filter_map(|l| l.split("(size ").nth(1))
            .collect();
        assert_eq!(sizes, ["512):", "256):"], "{err}");
    }
}

/// `KMEM_KMEMLEAK=1` with `exit` called from a thread other than main: the exiting thread's
/// live stack is scanned (its lost object is reported) and main's, waiting in `pthread_join`,
/// is read as another thread's (its local keeps its object).
#[test]
fn kmemleak_exit_from_another_thread_scans_mains_stack() {
    for link in [Link::Shared, Link::Static] {
        let exe = build("kmemleak_exit_thread", link);
        let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1")]);
        assert!(o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"), "{err}");
        let sizes: Vec<&str> = err
            .lines()
            .filter_map(|l| l.strip_prefix("unreferenced object 0x"))
            .filter_map(|l| l.split("(size ").nth(1))
            .collect();
        assert_eq!(sizes, ["256):"], "{err}");
    }
}

/// `KMEM_KMEMLEAK=1` with `kmemleak_alloc` as the program's first call into kmem: the block
/// it describes (malloc'd, `min_count` 0) is scanned, so the kmalloc object it holds is not
/// reported, while the one an undescribed malloc'd block holds and a dropped one are. (It
/// was dropped before: kmemleak started with the first call that built the machine, after it.)
/// A block described past the end of the address space is refused with a warning (the exit
/// scan read it before: an overflow, a kmem internal error in a debug build).
#[test]
fn kmemleak_scans_malloc_blocks_the_program_describes() {
    for link in [Link::Shared, Link::Static] {
        let exe = build("kmemleak_malloc", link);
        let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1")]);
        assert!(o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"), "{err}");
        assert_eq!(kmemleak_sizes(&err), ["512):", "256):"], "{err}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("the wrapping block was refused\n"), "{}", show(&o));
        assert!(!err.contains("internal error"), "{err}");
    }
}

/// `KMEM_KMEMLEAK=1` after frees of the wrong family (`kfree` of a vmalloc area, `vfree` of a
/// kmalloc object, `kfree` of a block C described, `kfree_rcu` of a vmalloc area, `vunmap` of
/// a kmalloc object, `kvfree_rcu` of a vmalloc area in atomic context, `krealloc`, `vrealloc`
/// and `kvrealloc` to size 0 of the wrong family): kmem refuses them, and kmemleak keeps the
/// records, so the objects, dropped afterwards, are reported. (They were forgotten before, and
/// the leaks went unreported.)
#[test]
fn kmemleak_keeps_objects_a_wrong_free_left_allocated() {
    for link in [Link::Shared, Link::Static] {
        let exe = build("kmemleak_wrong_free", link);
        let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1")]);
        assert!(o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("kmemleak: 9 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"), "{err}");
        let sizes = ["12288):", "64):", "4096):", "96):", "8192):", "20480):", "128):", "48):", "24):"];
        assert_eq!(kmemleak_sizes(&err), sizes, "{err}");
    }
}

/// The sizes of the objects a kmemleak report lists, in its order.
fn kmemleak_sizes(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("unreferenced object 0x"))
        .filter_map(|l| l.split("(size ").nth(1))
        .collect()
}

/// `kmem_kmemleak_scan`, `kmem_kmemleak_read`, `kmem_kmemleak_clear` (the program checks the
/// scans' counts and the text; it sleeps 5.2 s, past kmemleak's minimum age): cleared objects
/// are not reported at exit either, and what is referenced at exit is not. Without
/// `KMEM_KMEMLEAK` the scan returns `-EPERM`.
#[test]
fn kmemleak_scans_on_demand() {
    let exes = [build("kmemleak_scan", Link::Shared), build("kmemleak_scan", Link::Static)];
    // Both at once: each sleeps 5.2 s.
    let runs: Vec<_> = exes
        .iter()
        .map(|exe| {
            let exe = exe.clone();
            std::thread::spawn(move || run_with(&exe, &[("KMEM_KMEMLEAK", "1")]))
        })
        .collect();
    for (exe, run_) in exes.iter().zip(runs) {
        let o = run_.join().unwrap();
        assert!(o.status.success(), "{}: {}", exe.display(), show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("kmemleak_scan: 0 failed"), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(kmemleak_sizes(&err).is_empty() && !err.contains("suspected memory leaks"), "{err}");
        let o = run(exe);
        assert!(o.status.success(), "{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("kmemleak_scan: off, 0 failed"), "{}", show(&o));
    }
}

/// kmemleak's scan thread (`KMEM_KMEMLEAK_SCAN=1`, `kmem_kmemleak_set_scan`; the program
/// checks it, and takes about 12 s): it counts and logs a lost object once it is 5 s old,
/// and nothing more after `kmem_kmemleak_set_scan(0)`; both objects are in the exit report.
/// A bad `KMEM_KMEMLEAK_SCAN` is said on stderr; with kmemleak off the call is `-EPERM`.
#[test]
fn kmemleak_scan_thread_scans_by_itself() {
    let exe = build("kmemleak_periodic", Link::Shared);
    let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1"), ("KMEM_KMEMLEAK_SCAN", "1")]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("kmemleak_periodic: 0 failed"),
        "{}",
        show(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(kmemleak_sizes(&err), ["256):", "512):"], "{err}");
    let o = run_with_args(&exe, &["off"], &[("KMEM_KMEMLEAK_SCAN", "soon")]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("kmemleak_periodic: off, 0 failed"), "{}", show(&o));
    let o = run_with_args(&exe, &["off"], &[("KMEM_KMEMLEAK", "1"), ("KMEM_KMEMLEAK_SCAN", "soon")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("kmem: invalid KMEM_KMEMLEAK_SCAN=\"soon\": expected seconds between scans, or off; the scan thread keeps its defaults"),
        "{}",
        show(&o)
    );
}

/// `kmem_kmemleak_scan` in a loop while two threads allocate and free (kmalloc, vmalloc and
/// vfree, a cache) and a third loads and unloads a library, for 5.5 s: no crash, and only the
/// one lost object is ever reported (the program counts); at exit nothing is left.
#[test]
fn kmemleak_scans_while_other_threads_allocate_and_free() {
    let exe = build("kmemleak_scan_race", Link::Shared);
    let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("kmemleak_scan_race: ") && out.contains(" loads, 0 failed"), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(kmemleak_sizes(&err).is_empty(), "{err}");
}

/// `KMEM_KMEMLEAK=1`: a program's unreferenced objects are reported at its exit (kmemleak's
/// scan over its data, its live stack and the objects it reaches); a bad value is named.
#[test]
fn kmemleak_reports_a_programs_unreferenced_objects_at_exit() {
    for link in [Link::Shared, Link::Static] {
        let exe = build("kmemleak", link);
        let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1")]);
        assert!(o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("kmemleak: 5 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"), "{err}");
        let sizes: Vec<&str> = err
            .lines()
            .filter_map(|l| l.strip_prefix("unreferenced object 0x"))
            .filter_map(|l| l.split("(size ").nth(1))
            .collect();
        // The lost chain (kmalloc-128, kmalloc-64), the lost area (two pages), the object only
        // malloc'd memory refers to (kmalloc-256), the area `vunmap` refused (a page); in
        // allocation order.
        assert_eq!(sizes, ["128):", "64):", "8192):", "256):", "4096):"], "{err}");
        assert!(err.contains("  backtrace (crc "), "{err}");
        let o = run_with(&exe, &[("KMEM_KMEMLEAK", "maybe")]);
        assert!(o.status.success(), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("invalid KMEM_KMEMLEAK=\"maybe\"") && err.contains("kmemleak is off"), "{err}");
        assert!(!err.contains("unreferenced object"), "{err}");
        let o = run(&exe);
        assert!(o.status.success() && o.stderr.is_empty(), "{}", show(&o));
    }
}

/// A forked child of a program whose thread is scanning (`KMEM_KMEMLEAK=1`) exits even when the
/// fork caught the scan holding kmemleak's registry of thread stacks: the child's thread-exit
/// deregistration leaves the registry alone (kmemleak is off in a child). Before, such a child
/// could hang in `exit()` for ever.
#[test]
fn a_forked_child_exits_while_kmemleak_scans() {
    let exe = build("kmemleak_fork", Link::Shared);
    let o = run_with(&exe, &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(", 0 failed"), "{}", show(&o));
}
