//! kmem as the `#[global_allocator]` on an i386 machine with HighMem, memory exhausted: `kmap`
//! must not allocate while it holds the pkmap lock. It used to grow its `pfn → slot` map there;
//! the growth is a kmalloc on the default machine (`GFP_KERNEL`), which reclaims, which frees
//! empty slabs and runs their destructors, and a destructor that `kunmap`s took the pkmap lock
//! again on the same thread (found by the re-entry audit; the map now has its full capacity
//! from the start).
//!
//! Its own binary (`harness = false`): the child runs with `KMEM_PROFILE=i386 KMEM_MEM=1G`
//! and reports a hang (after 30 s) instead of hanging.

#[path = "common/child.rs"]
mod child;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;
use std::time::{Duration, Instant};

use kmem::gfp::{__GFP_NOWARN, GFP_ATOMIC, GFP_HIGHUSER, GFP_KERNEL};
use kmem::slab::flags::SlabFlags;
use kmem::{KmemAlloc, KmemCache, Machine, Page};

#[global_allocator]
static KMEM: KmemAlloc = KmemAlloc::with_profile(kmem::Profile::I386);

const CHILD: &str = "KMEM_KMAP_CHILD";
const WATCHDOG: Duration = Duration::from_secs(30);

static ARMED: AtomicBool = AtomicBool::new(false);
static GO: AtomicBool = AtomicBool::new(false);
static DONE: AtomicUsize = AtomicUsize::new(0);
static DTOR_KUNMAPS: AtomicUsize = AtomicUsize::new(0);

/// A value holding a kmapped HighMem page; dropping it (armed) kunmaps the page.
struct Mapped {
    m: &'static Machine,
    page: &'static Page,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if ARMED.load(SeqCst) {
            DTOR_KUNMAPS.fetch_add(1, SeqCst);
            // SAFETY: The test's own mapping, not used afterwards.
            unsafe { self.m.kunmap(self.page) };
        }
    }
}

fn child() {
    let m: &'static Machine = KMEM.machine().expect("the default machine");
    // HighMem pages to kmap: 448 fill a map of 512 buckets; the 449th insert grew it to 1024
    // buckets (about 17 KiB: a large kmalloc, GFP_KERNEL).
    let pages: Vec<&'static Page> = (0..460).map(|_| m.alloc_pages(GFP_HIGHUSER, 0).expect("a HighMem page")).collect();
    assert!(m.page_address(pages[0]).is_none(), "the pages are HighMem");
    for &p in &pages[..448] {
        m.kmap(p).expect("kmap");
    }
    let victim = pages[0];
    let cache: KmemCache<Mapped> =
        KmemCache::new(m, "kmap_dtor", SlabFlags::empty(), move || Mapped { m, page: victim }).expect("cache");
    // A slab's worth of objects parked in the CPU array: reclaim flushes them and frees the slab.
    let objs: Vec<_> = (0..cache.objects_per_slab()).map(|_| cache.alloc(GFP_KERNEL).expect("object")).collect();
    drop(objs);
    let next = pages[448];
    let worker = thread::spawn(move || {
        while !GO.load(SeqCst) {
            thread::park();
        }
        let _ = m.kmap(next);
        DONE.store(1, SeqCst);
    });
    // Every lowmem page an atomic request can get, taken for good.
    let mut held = Vec::with_capacity(20_000);
    for order in (0..=kmem::MAX_PAGE_ORDER).rev() {
        while held.len() < held.capacity()
            && let Ok(page) = m.alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order)
        {
            held.push((page, order));
        }
    }
    ARMED.store(true, SeqCst);
    GO.store(true, SeqCst);
    worker.thread().unpark();
    let deadline = Instant::now() + WATCHDOG;
    while DONE.load(SeqCst) == 0 {
        if Instant::now() > deadline {
            eprintln!(
                "kmap did not return within 30 s under memory pressure (deadlock); destructor kunmaps: {}",
                DTOR_KUNMAPS.load(SeqCst)
            );
            std::process::exit(2);
        }
        thread::sleep(Duration::from_millis(10));
    }
    println!("child ok (destructor kunmaps: {})", DTOR_KUNMAPS.load(SeqCst));
    std::process::exit(0);
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    child::run_child(
        CHILD,
        &[("KMEM_MEM", "1G"), ("KMEM_PROFILE", "i386"), ("KMEM_KSWAPD", "0"), ("KMEM_CPUS", "2")],
        "global_alloc_kmap",
    );
}
