//! [`KmallocHeap`] as this program's `#[global_allocator]`, the way a `no_std` kernel uses it:
//! RAM is a static array (the board's memory), the platform allocates nothing, and from
//! `install` on every `Box`, `Vec` and `String` here — the test's own included — is kmalloc
//! memory. A harness-less test: libtest allocates before any test runs, which must fail before
//! `install`. The std runtime itself makes a few allocations before `main`; [`Program`] serves
//! those from a small boot arena (a kernel has no such runtime) and everything else from the
//! heap.

use std::alloc::{GlobalAlloc, Layout as HeapLayout};
use std::cell::Cell;
use std::fmt::Write as _;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use kmem_core::gfp::{GFP_ATOMIC, GFP_KERNEL};
use kmem_core::kmalloc::classes::KMALLOC_MAX_SIZE;
use kmem_core::page_alloc::{Config, Layout};
use kmem_core::platform::{Level, Platform};
use kmem_core::slab::SlabConfig;
use kmem_core::waitq::WaitWord;
use kmem_core::zone::{MAX_NR_ZONES, ZoneType};
use kmem_core::{KmallocHeap, Kmem, PAGE_SIZE, PageAllocator};

const RAM_BYTES: usize = 64 << 20;

/// How a direct map must be aligned (`page_alloc::direct_map_alignment` for 4 MiB or more).
const MAP_ALIGN: usize = 4 << 20;

/// The board's RAM: zero-filled (`.bss`), with room to start it at a 4 MiB boundary ([`ram`]).
/// The slack is taken at run time rather than with `align(4 MiB)`: a loader need not honour a
/// segment alignment that large (valgrind's does not).
#[repr(C, align(4096))]
struct Ram([u8; RAM_BYTES + MAP_ALIGN]);
static mut RAM: Ram = Ram([0; RAM_BYTES + MAP_ALIGN]);

/// Another board's RAM, for the `Kmem` a second `install` must refuse.
#[repr(C, align(4096))]
struct SpareRam([u8; SPARE_BYTES + MAP_ALIGN]);
const SPARE_BYTES: usize = 16 << 20;
static mut SPARE: SpareRam = SpareRam([0; SPARE_BYTES + MAP_ALIGN]);

/// The first 4 MiB boundary in `region`, which has `MAP_ALIGN` bytes of slack.
fn aligned_start(region: *mut u8) -> *mut u8 {
    region.wrapping_add(region.align_offset(MAP_ALIGN))
}

/// The board's RAM as its direct map: `RAM_BYTES` from a 4 MiB boundary.
fn ram() -> *mut u8 {
    aligned_start((&raw mut RAM).cast())
}

/// A log that never allocates: kernel messages go into a fixed buffer.
struct LogBuf {
    bytes: [u8; 16384],
    len: usize,
}

impl core::fmt::Write for LogBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

static LOG: Mutex<LogBuf> = Mutex::new(LogBuf { bytes: [0; 16384], len: 0 });

fn log_text() -> String {
    let log = LOG.lock().unwrap();
    String::from_utf8_lossy(&log.bytes[..log.len]).into_owned()
}

/// Two CPU slots, one per thread that claims it; a clock that ticks 1 ms per reading.
struct Board {
    ticks: AtomicU64,
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    static IN_ATOMIC: Cell<bool> = const { Cell::new(false) };
}

/// Gives the calling thread its own CPU slot (at most two threads ever claim one).
fn claim_slot() {
    let slot = NEXT_SLOT.fetch_add(1, Relaxed);
    assert!(slot < 2, "two CPU slots");
    SLOT.with(|s| s.set(Some(slot)));
}

// SAFETY: Each slot is claimed by one thread only (`claim_slot`), so no per-CPU list is shared.
unsafe impl Platform for Board {
    fn nr_cpus(&self) -> usize {
        2
    }
    fn cpu(&self) -> Option<usize> {
        SLOT.with(Cell::get)
    }
    fn log(&self, level: Level, args: core::fmt::Arguments<'_>) {
        let mut log = LOG.lock().unwrap();
        let _ = write!(log, "<{}>{args}", level as u8);
    }
    fn now_ns(&self) -> u64 {
        self.ticks.fetch_add(1_000_000, Relaxed)
    }
    fn wait(&self, _word: &WaitWord, _expected: u32, _timeout_ns: u64) {}
    fn wake_all(&self, _word: &WaitWord) {}
    fn in_atomic(&self) -> bool {
        // A platform callback that panics, once (`panic_aborts_child`).
        assert!(!PANIC_ONCE.swap(false, Relaxed), "the platform's in_atomic panicked");
        IN_ATOMIC.with(Cell::get)
    }
}

/// Makes the next `in_atomic` call panic.
static PANIC_ONCE: AtomicBool = AtomicBool::new(false);

/// The variable that makes this program the child of [`a_panic_inside_the_heap_aborts`].
const PANIC_CHILD: &str = "KMEM_GLOBAL_HEAP_PANIC_CHILD";

static HEAP: KmallocHeap<Board> = KmallocHeap::new();

/// The boot arena: bytes handed out before `main` runs, never reused.
#[repr(C, align(4096))]
struct Arena([u8; 65536]);
static mut ARENA: Arena = Arena([0; 65536]);
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

fn in_arena(p: *const u8) -> bool {
    let base = (&raw const ARENA).addr();
    (base..base + size_of::<Arena>()).contains(&p.addr())
}

/// The program's allocator: the boot arena until `HEAP` is installed, `HEAP` afterwards.
struct Program;

// SAFETY: Arena blocks are disjoint, aligned and never reused (a bump pointer); heap blocks
// are `HEAP`'s. `dealloc` and `realloc` tell them apart by address.
unsafe impl GlobalAlloc for Program {
    unsafe fn alloc(&self, layout: HeapLayout) -> *mut u8 {
        if HEAP.kmem().is_some() {
            // SAFETY: Forwarded contract.
            return unsafe { HEAP.alloc(layout) };
        }
        let base = (&raw mut ARENA).cast::<u8>();
        let mut used = ARENA_USED.load(Relaxed);
        loop {
            let start = (base.addr() + used).next_multiple_of(layout.align()) - base.addr();
            let end = start + layout.size();
            if end > size_of::<Arena>() {
                return std::ptr::null_mut();
            }
            match ARENA_USED.compare_exchange(used, end, Relaxed, Relaxed) {
                // SAFETY: `start..end` lies inside the arena.
                Ok(_) => return unsafe { base.add(start) },
                Err(now) => used = now,
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: HeapLayout) -> *mut u8 {
        if HEAP.kmem().is_some() {
            // SAFETY: Forwarded contract.
            return unsafe { HEAP.alloc_zeroed(layout) };
        }
        // SAFETY: Forwarded contract; the arena is zero-filled and never reused.
        unsafe { self.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: HeapLayout) {
        if !in_arena(ptr) {
            // SAFETY: Not an arena block, so `HEAP` made it (forwarded contract).
            unsafe { HEAP.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: HeapLayout, new_size: usize) -> *mut u8 {
        if !in_arena(ptr) {
            // SAFETY: A `HEAP` block (forwarded contract).
            return unsafe { HEAP.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` with `layout`'s alignment is a valid layout (caller).
        let new = unsafe { self.alloc(HeapLayout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: Distinct live blocks, each at least the smaller size.
            unsafe { new.copy_from_nonoverlapping(ptr, layout.size().min(new_size)) };
        }
        new
    }
}

#[global_allocator]
static PROGRAM: Program = Program;

/// Builds a `Kmem` over `bytes` of zero-filled RAM at `ram`, without allocating.
///
/// # Safety
/// `ram` is 4 MiB-aligned, zero-filled, `bytes` long, and used by nothing else, for good.
unsafe fn boot(ram: *mut u8, bytes: usize) -> Kmem<Board> {
    let pages = bytes / PAGE_SIZE;
    let mut zones = [None; MAX_NR_ZONES];
    zones[ZoneType::Normal as usize] = Some((0, pages));
    let layout = Layout {
        start_pfn: 0,
        end_pfn: pages,
        zones,
        direct_map: NonNull::new(ram).unwrap(),
        direct_map_end_pfn: pages,
        pageblock_order: 9,
        zeroed: true,
    };
    let config = Config { oom_timeout_ns: 0, ..Config::default() };
    // SAFETY: As the caller promises.
    let pa = unsafe { PageAllocator::new(Board { ticks: AtomicU64::new(0) }, layout, config) }.expect("boot");
    Kmem::new(pa, SlabConfig::default())
}

fn in_ram(p: *const u8) -> bool {
    let base = ram().addr();
    (base..base + RAM_BYTES).contains(&p.addr())
}

fn main() {
    let child = std::env::var_os(PANIC_CHILD).is_some();
    // A failed check prints its message and exits: the default hook's backtrace would load the
    // debug info into buffers larger than kmalloc's 4 MiB, fail, and wait on its own lock (the
    // default hook prints one for every double panic). The child only prints: its panics must
    // go on to the abort under test.
    if child {
        std::panic::set_hook(Box::new(|info| eprintln!("global_heap child: {info}")));
    } else {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("global_heap: {info}");
            std::process::exit(101);
        }));
    }
    claim_slot();
    // Before `install`: nothing to allocate from.
    let probe = HeapLayout::new::<u64>();
    // SAFETY: A non-zero-size layout; a null result is checked.
    assert!(unsafe { HEAP.alloc(probe) }.is_null(), "an empty heap fails");
    assert!(HEAP.kmem().is_none());

    let arena_used = ARENA_USED.load(Relaxed);
    // SAFETY: `ram()` starts `RAM_BYTES` of `RAM` (the slack keeps them inside it): this
    // program's, zero-filled, 4 MiB-aligned; only this `Kmem` uses them.
    let kmem = HEAP.install(unsafe { boot(ram(), RAM_BYTES) }).ok().expect("the first install");
    // SAFETY: As for `RAM`, with `SPARE`.
    let spare = unsafe { boot(aligned_start((&raw mut SPARE).cast()), SPARE_BYTES) };
    let Err(spare) = HEAP.install(spare) else { panic!("a second install is refused") };
    assert!(spare.pages().total_free() > 0, "and hands its `Kmem` back");
    if child {
        panic_aborts_child();
    }

    vec_growth_is_krealloc(kmem);
    alignment_and_zeroing(kmem);
    too_large_fails();
    atomic_context_takes_gfp_atomic(kmem);
    two_threads_churn();
    a_panic_inside_the_heap_aborts();
    assert!(!log_text().contains("BUG"), "{}", log_text());
    assert_eq!(ARENA_USED.load(Relaxed), arena_used, "after install, nothing comes from the arena");
    println!("global_heap: every check passed");
}

/// `Vec` growth walks the kmalloc classes in `RAM`; a regrowth within a class keeps the block
/// (KM-8), and the block's capacity is the class (`ksize`).
fn vec_growth_is_krealloc(kmem: &Kmem<Board>) {
    let mut v: Vec<u8> = Vec::with_capacity(10);
    let first = v.as_ptr();
    assert!(in_ram(first));
    // SAFETY: `v`'s live block.
    assert_eq!(unsafe { kmem.ksize(first) }, 16, "kmalloc-16");
    v.reserve_exact(16);
    assert_eq!(v.as_ptr(), first, "krealloc keeps a block that fits (KM-8)");
    v.extend(0..=255u8);
    v.extend(0..=255u8);
    assert!(in_ram(v.as_ptr()));
    // SAFETY: `v`'s live block.
    assert!(unsafe { kmem.ksize(v.as_ptr()) } >= 512);
    assert!(v.iter().take(256).copied().eq(0..=255u8), "contents survive the moves");
    let s: String = (0..2000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    assert!(in_ram(s.as_ptr()));
    // SAFETY: `s`'s live block.
    assert_eq!(unsafe { kmem.ksize(s.as_ptr()) }, 2048, "kmalloc-2k");
    let big = vec![7u64; 100_000]; // 800 000 bytes: a page-backed kmalloc block.
    assert!(in_ram(big.as_ptr().cast()));
    // SAFETY: `big`'s live block.
    assert_eq!(unsafe { kmem.ksize(big.as_ptr().cast()) }, 1 << 20, "an order-8 block");
}

/// Over-aligned layouts get aligned blocks (KM-6 with the rounded size); `alloc_zeroed` is
/// `kzalloc`, zero even where a freed block left bytes.
fn alignment_and_zeroing(kmem: &Kmem<Board>) {
    #[repr(align(4096))]
    struct Page(#[allow(dead_code)] [u8; 100]);
    #[repr(align(64))]
    struct Line(#[allow(dead_code)] [u8; 72]);
    let page = Box::new(Page([1; 100]));
    let line = Box::new(Line([2; 72]));
    assert_eq!(std::ptr::from_ref(&*page).addr() % 4096, 0);
    assert_eq!(std::ptr::from_ref(&*line).addr() % 64, 0);
    // SAFETY: `line`'s live block: 72 bytes rounded to 128 for the alignment.
    assert_eq!(unsafe { kmem.ksize(std::ptr::from_ref(&*line).cast()) }, 128);
    drop((page, line));
    let dirty = vec![0xa5u8; 3000];
    let addr = dirty.as_ptr();
    drop(dirty);
    let clean = vec![0u8; 3000];
    assert_eq!(clean.as_ptr(), addr, "the freed object comes back first");
    assert!(clean.iter().all(|&b| b == 0), "alloc_zeroed is kzalloc");
}

/// Above `KMALLOC_MAX_SIZE` a layout fails; the heap stays usable.
fn too_large_fails() {
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve_exact(KMALLOC_MAX_SIZE + 1).is_err());
    assert!(v.try_reserve_exact(KMALLOC_MAX_SIZE).is_ok(), "4 MiB is kmalloc's largest block");
    assert!(in_ram(v.as_ptr()));
    let mut w = vec![1u8; 4096];
    assert!(w.try_reserve_exact(KMALLOC_MAX_SIZE).is_err(), "a failed realloc…");
    assert!(w.iter().all(|&b| b == 1), "…keeps the old block (KM-9)");
}

/// In atomic context the heap asks with `GFP_ATOMIC`: no sleeping-in-atomic report. The same
/// request made with `GFP_KERNEL` is reported, which shows the check is live.
fn atomic_context_takes_gfp_atomic(kmem: &Kmem<Board>) {
    let before = log_text().len();
    IN_ATOMIC.with(|a| a.set(true));
    let b = Box::new([3u32; 40]);
    IN_ATOMIC.with(|a| a.set(false));
    assert!(in_ram(b.as_ptr().cast()));
    assert!(!log_text()[before..].contains("sleeping function"), "{}", log_text());
    drop(b);
    IN_ATOMIC.with(|a| a.set(true));
    let p = kmem.kmalloc(160, GFP_KERNEL).expect("kmalloc");
    IN_ATOMIC.with(|a| a.set(false));
    let text = log_text();
    assert!(text[before..].contains("BUG: sleeping function called from invalid context"), "{text}");
    // SAFETY: Just allocated, unused.
    unsafe { kmem.kfree(p.as_ptr()) };
    // The report is this check's own; clear it so `main`'s final check sees only the rest.
    LOG.lock().unwrap().len = before;
    let p = kmem.kmalloc(160, GFP_ATOMIC).expect("kmalloc");
    // SAFETY: Just allocated, unused.
    unsafe { kmem.kfree(p.as_ptr()) };
}

/// Two threads (one CPU slot each) allocate, fill, check and free vectors of many size
/// classes: no block is handed to both, none changes under its owner.
fn two_threads_churn() {
    let other = std::thread::spawn(|| {
        claim_slot();
        churn(2);
    });
    churn(1);
    other.join().expect("the other thread");
}

fn churn(tag: u64) {
    let mut held: Vec<Vec<u64>> = Vec::new();
    for i in 0..100_000u64 {
        let len = 1 + (i * 7919 % 600) as usize;
        held.push(vec![tag << 32 | i; len]);
        if held.len() > 50 {
            let v = held.swap_remove((i % 50) as usize);
            let want = v[0];
            assert!(want >> 32 == tag && v.iter().all(|&x| x == want), "a block changed under its owner");
        }
    }
}

/// The child: an allocation whose platform callback panics. Unwinding out of `GlobalAlloc` is
/// undefined behaviour, so the heap must abort instead (the panic's own payload is allocated
/// from the heap too, on the way, which the one-shot panic lets succeed).
fn panic_aborts_child() -> ! {
    PANIC_ONCE.store(true, Relaxed);
    let b = std::hint::black_box(Box::new(7u64));
    println!("child survived: {b}");
    std::process::exit(0);
}

/// Runs this program as [`panic_aborts_child`] and expects SIGABRT after both messages.
fn a_panic_inside_the_heap_aborts() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(PANIC_CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("child survived"), "the panic unwound: {out:?}");
    assert_eq!(out.status.signal(), Some(6), "SIGABRT: {out:?}");
    assert!(stderr.contains("the platform's in_atomic panicked"), "{stderr}");
    assert!(stderr.contains("kmem: a panic inside the global allocator, which must not unwind"), "{stderr}");
}
