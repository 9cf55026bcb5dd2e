//! kmem as the `#[global_allocator]` while memory is short: the `/proc` texts are built while
//! kmem holds its locks, so their `String`s must not come from kmem. `vmallocinfo` holds the
//! vmap lock while it writes; a kmalloc there that needs reclaim runs the vmap shrinker, whose
//! count takes the same lock — a self-deadlock unless the text comes from the system heap.
//!
//! Its own binary (`harness = false`, like `global_alloc.rs`): the global allocator is
//! process-wide. The default machine is built from `KMEM_*` on the first allocation (before
//! `main`), so the binary re-runs itself with `KMEM_MEM=64M` and checks the child; the child
//! reads the texts on a worker thread and fails (instead of hanging) if one does not return.

#[path = "common/child.rs"]
mod child;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;
use std::time::{Duration, Instant};

use kmem::gfp::{__GFP_NORETRY, __GFP_NOWARN, GFP_KERNEL};
use kmem::{KmemAlloc, PAGE_SIZE};

#[global_allocator]
static KMEM: KmemAlloc = KmemAlloc::new();

static GO: AtomicBool = AtomicBool::new(false);
static DONE: AtomicUsize = AtomicUsize::new(0);

const CHILD: &str = "KMEM_PRESSURE_CHILD";
/// How long a text may take before the child declares it hung.
const WATCHDOG: Duration = Duration::from_secs(30);

fn child() {
    let m = KMEM.machine().expect("the default machine");
    assert!(m.total_managed() * PAGE_SIZE <= 64 << 20, "KMEM_MEM=64M reached the child");
    let areas: Vec<_> = (0..3000).map(|_| m.vmalloc(PAGE_SIZE).expect("vmalloc")).collect();
    // SAFETY: The test's own area (or none: refused), unused afterwards.
    unsafe { m.vfree(areas[0].as_ptr()) };
    // The reader is made before memory runs out; nothing on the way between the two threads
    // allocates (no channel: its first message allocates a block).
    let reader = thread::spawn(move || {
        while !GO.load(SeqCst) {
            thread::park();
        }
        let info = m.vmallocinfo();
        let proc = m.proc_read("vmallocinfo").expect("vmallocinfo is a /proc text");
        let meminfo = m.meminfo();
        DONE.store(info.len() + proc.len() + meminfo.len(), SeqCst);
    });
    // Take every page a cheap allocation can get (no retries: reclaim runs, the OOM killer not).
    let mut held = Vec::with_capacity(m.total_managed());
    while let Ok(page) = m.alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0) {
        held.push(page);
    }
    assert!(!held.is_empty());
    GO.store(true, SeqCst);
    reader.thread().unpark();
    let deadline = Instant::now() + WATCHDOG;
    while DONE.load(SeqCst) == 0 {
        if Instant::now() > deadline {
            eprintln!("vmallocinfo did not return within 30 s under memory pressure (deadlock)");
            std::process::exit(2);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let len = DONE.load(SeqCst);
    assert!(len > 3000 * 40, "the texts list the areas ({len} bytes)");
    reader.join().expect("reader");
    for page in held {
        // SAFETY: The test's own pages (or not allocated: refused), unused afterwards.
        unsafe { m.free_pages(page, 0) };
    }
    for a in &areas[1..] {
        // SAFETY: The test's own area (or none: refused), unused afterwards.
        unsafe { m.vfree(a.as_ptr()) };
    }
    println!("child ok");
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    child::run_child(CHILD, &[("KMEM_MEM", "64M"), ("KMEM_PROFILE", "x86_64")], "global_alloc_pressure");
}
