//! kmemleak (`mm/kmemleak.c`) for code that allocates through the C ABI: while it is on, every
//! object the C ABI hands out is recorded with its size, task, time and call chain, and
//! forgotten when the C ABI frees it; [`report`] lists what is left as kmemleak lists
//! unreferenced objects in `/sys/kernel/debug/kmemleak`, and logs kmemleak's
//! `kmemleak: N new suspected memory leaks (see /sys/kernel/debug/kmemleak)`.
//!
//! Decisions:
//! - What is tracked is what the kernel's kmemleak tracks: slab objects (the kmalloc family,
//!   the string duplicators, `kmem_cache_alloc` and its bulk, sheaf and bucket forms), large
//!   kmallocs, vmalloc areas (the vmalloc family, kvmalloc), and the pools `mempool_create`
//!   makes (`kzalloc`'d in the kernel); not pages (`alloc_pages`, `__get_free_pages`), `vmap`
//!   areas of the caller's pages, or a pool's elements from its helper allocators, which kmem
//!   allocates for the pool from Rust. A slab object's size is its cache's object size (as
//!   the kernel records `s->object_size`), a large kmalloc's the size asked for, a vmalloc
//!   area's the size rounded up to pages.
//! - When: `kmem insmod --kmemleak` turns it on before the module loads and reports after the
//!   module's exit ran (or its init failed), before its code is unloaded (so its frames still
//!   have names). Once a module is gone nothing can refer to what it left allocated, so the
//!   scan has no roots and every object still recorded is reported. A module that cannot be
//!   removed (an init without an exit) is scanned when `rmmod` refuses it, with its writable
//!   segments as roots (the scan: `kmemleak/scan.rs`). A program using the C ABI (libkmem)
//!   with `KMEM_KMEMLEAK=1` is tracked from its first call and scanned at its exit, with every
//!   loaded object's writable segments, the exiting thread's live stack and the stacks of the
//!   other threads that allocated through the C ABI (`kmemleak/threads.rs`) as roots; the
//!   report goes to stderr.
//! - On demand, while the program runs (`kmemleak/ondemand.rs`): `kmem_kmemleak_scan`,
//!   `kmem_kmemleak_read` and `kmem_kmemleak_clear` (`linux/kmem.h`) are the kernel's `echo
//!   scan`, `cat` and `echo clear` on `/sys/kernel/debug/kmemleak`, with its rules: objects
//!   younger than 5 s are never reported, an object is counted by one scan only (the mark is
//!   never taken off), an unreferenced object whose contents changed since the last scan is
//!   spared once, `echo clear` makes the reported objects gray. The same scan also runs by
//!   itself, in a thread of kmemleak's (`kmemleak/periodic.rs`), as the kernel's kthread runs it:
//!   60 s after kmemleak started, then every 10 minutes; `kmem_kmemleak_set_scan` and
//!   `KMEM_KMEMLEAK_SCAN` are `echo scan=<secs>`.
//! - The exit report is unchanged by on-demand scans: it lists every object still unreferenced
//!   at exit, young or old, whether a scan counted it before or not (the kernel has no scan at
//!   the end of a run, so this is the program's final state, not "new" leaks), but not those
//!   `kmem_kmemleak_clear` made gray.
//! - `kfree_rcu`/`kvfree_rcu` forget the object when it is queued (the kernel's
//!   `kvfree_call_rcu` calls `kmemleak_ignore` on it); `kmemleak_ignore` (`linux/kmemleak.h`)
//!   forgets one too. `kmemleak_not_leak` marks one as never reported but still scanned (the
//!   kernel's gray object: what it refers to is referenced), and `kmemleak_alloc`/
//!   `kmemleak_free` let C code describe memory of its own (`min_count` 0: such an object).
//!   libc's heap is not scanned (kmemleak scans what it tracks, and `malloc` is not kmem's), so
//!   a `malloc`'d block that holds kmem pointers must be described so; `kmemleak_alloc` may be
//!   a program's first call into kmem (it starts the machine, and with it `KMEM_KMEMLEAK`).
//! - Each record walks the caller's stack (glibc's `backtrace`, some microseconds), as the
//!   kernel saves a stack trace per object: it is a debugging mode. Off, each export pays one
//!   relaxed load.
//!
//! Invariant: while on, the table holds exactly the objects handed out through the C ABI
//! since it was turned on and not freed through it, keyed by address (an address handed out
//! again replaces its stale record: that object was freed by a path kmem does not see); each
//! record's allocation number (`seq`) is unique, so a scan that let the lock go can tell a
//! record it saw from a new one at the same address.
//!
//! Reading C's memory: the exit scan ([`report`]) reads the roots and the objects directly,
//! under the table's lock: at exit nothing is unloaded, and a free through the C ABI forgets
//! the object before freeing it, so it waits for that lock. The on-demand scan cannot assume
//! that of the roots (a concurrent `dlclose`) and does not rely on the free paths' order: it
//! copies every byte it reads with `process_vm_readv`, which fails instead of faulting on
//! memory that is gone (`kmemleak/ondemand.rs`), and holds the table's lock only to take a
//! snapshot and to apply the result.
//!
//! Lock order: `SCAN` (one scan, report, read or clear at a time) first; then, one at a
//! time, the loader's lock (`dl_iterate_phdr`), the thread registry's (`threads`), the pools'
//! (`reserved_elements`) and the table's. The table's lock is a leaf: no kmem lock is held
//! while it is taken (the log's locks are taken after it is released), and no kmem call is
//! made under it.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ffi::c_void;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use kmem::{CallChain, Level, Machine};
use kmem_core::platform::Platform as _;

mod ondemand;
mod periodic;
mod scan;
mod threads;
pub use ondemand::{kmem_kmemleak_clear, kmem_kmemleak_read, kmem_kmemleak_scan};
pub use scan::{Roots, live_stack, writable_segments};

/// Whether allocations are recorded.
static ON: AtomicBool = AtomicBool::new(false);

/// The recorded objects, and the text of the last report.
static STATE: Mutex<State> =
    Mutex::new(State { objects: BTreeMap::new(), next_seq: 0, last_report: String::new(), last_scan: 0 });

/// One scan at a time (the kernel's `scan_mutex`): the on-demand scan, the report, the exit
/// scan, `kmem_kmemleak_read` and `kmem_kmemleak_clear` take it first, before any other lock.
static SCAN: Mutex<()> = Mutex::new(());

struct State {
    objects: BTreeMap<usize, Object>,
    next_seq: u64,
    last_report: String,
    /// `jiffies` when the last on-demand scan started (the kernel's `jiffies_last_scan`).
    last_scan: u64,
}

/// What a recorded object is, so a free of the wrong family (which kmem reports and refuses,
/// leaving the object allocated) does not forget it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A slab object, a large kmalloc or a `mempool_t`: freed by the `kfree` family.
    Object,
    /// A vmalloc area: freed by the `vfree` family.
    Area,
    /// A block C described (`kmemleak_alloc`): forgotten by `kmemleak_free`/`_ignore` only.
    Block,
}

/// Which records a free through the C ABI forgets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Freer {
    /// `kfree`, `kmem_cache_free` and their forms: slab objects and large kmallocs.
    Kfree,
    /// `vfree`, `vfree_atomic`: vmalloc areas.
    Vfree,
    /// `kvfree` and its forms: either.
    Kvfree,
    /// Whatever is recorded at the address (`kmemleak_free`, `kmemleak_ignore`, a pool's own
    /// teardown).
    Any,
}

impl Freer {
    fn forgets(self, kind: Kind) -> bool {
        match self {
            Freer::Kfree => kind == Kind::Object,
            Freer::Vfree => kind == Kind::Area,
            Freer::Kvfree => kind != Kind::Block,
            Freer::Any => true,
        }
    }
}

/// One recorded object.
#[derive(Clone)]
struct Object {
    /// Allocation order (the kernel's `object_list` is in allocation order).
    seq: u64,
    size: usize,
    kind: Kind,
    comm: String,
    pid: u32,
    jiffies: u64,
    chain: CallChain,
    /// Never reported, always scanned (`kmemleak_not_leak`, `kmemleak_alloc` with `min_count`
    /// 0, `kmem_kmemleak_clear`): a root of the scan.
    not_leak: bool,
    /// Counted by an on-demand scan already (the kernel's `OBJECT_REPORTED`, never cleared).
    reported: bool,
    /// Unreferenced at the last on-demand scan that saw it (the kernel's white colour).
    white: bool,
    /// `crc32` of the contents at the last on-demand scan that found the object unreferenced
    /// (the kernel's `checksum`, 0 at first).
    checksum: u32,
}

impl Object {
    fn span(&self) -> scan::Span {
        scan::Span { size: self.size, not_leak: self.not_leak }
    }
}

/// Bytes of an object shown in a report (`HEX_MAX_LINES` rows of `HEX_ROW_SIZE`).
const HEX_DUMP_BYTES: usize = 32;

/// Starts recording (forgetting anything recorded before).
pub fn start() {
    let mut s = lock();
    s.objects.clear();
    s.last_report.clear();
    ON.store(true, Relaxed);
}

/// Turns recording off in a forked child (`boundary`'s `pthread_atfork` handler): the child
/// does not use the machine, and the table's lock may have been held by a thread of the parent
/// that the child does not have. Async-signal-safe: one store.
pub(crate) fn stop_in_fork_child() {
    ON.store(false, Relaxed);
}

/// Whether recording is on.
pub fn is_on() -> bool {
    ON.load(Relaxed)
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn scan_lock() -> std::sync::MutexGuard<'static, ()> {
    SCAN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `jiffies` as the records take them.
fn jiffies_now() -> u64 {
    crate::machine().map_or(0, |m| kmem_core::platform::jiffies(m.platform().now_ns()))
}

/// Records an object the C ABI hands out (nothing for NULL or `ZERO_SIZE_PTR`).
#[inline]
pub(crate) fn alloc(ptr: *const c_void, size: usize) {
    if ON.load(Relaxed) && ptr as usize > kmem_core::kmalloc::classes::ZERO_SIZE_PTR {
        record(ptr as usize, size, Kind::Object, false);
    }
}

/// A kmalloc object the C ABI hands out for `asked` bytes, recorded at its kmalloc cache's
/// object size (or, for a large kmalloc, `asked`). The size class is computed, not asked of
/// the object: `ksize` would also lift a debug cache's red zone past the request.
#[inline]
pub(crate) fn alloc_kmalloc(ptr: *const c_void, asked: usize) {
    use kmem_core::kmalloc::classes::{KMALLOC_MAX_CACHE_SIZE, kmalloc_size_roundup};
    if ON.load(Relaxed) {
        alloc(ptr, if asked > KMALLOC_MAX_CACHE_SIZE { asked } else { kmalloc_size_roundup(asked) });
    }
}

/// An object of `cache` the C ABI hands out, recorded at the cache's object size.
#[inline]
pub(crate) fn alloc_object(m: &Machine, cache: kmem::slab::CacheRef, ptr: *const c_void) {
    if ON.load(Relaxed) {
        alloc(ptr, m.cache(cache).map_or(0, |c| c.object_size()));
    }
}

/// A vmalloc area the C ABI hands out (recorded at whole pages). The size is rounded only for
/// an area kmemleak records: a failed request (NULL) may have asked for any `size_t`, and
/// rounding `SIZE_MAX` up to a page would overflow.
#[inline]
pub(crate) fn alloc_vmalloc(ptr: *const c_void, asked: usize) {
    if ON.load(Relaxed) && !ptr.is_null() {
        record(ptr as usize, asked.div_ceil(kmem::PAGE_SIZE).saturating_mul(kmem::PAGE_SIZE), Kind::Area, false);
    }
}

/// A kvmalloc allocation the C ABI hands out: a vmalloc area or a slab object.
#[inline]
pub(crate) fn alloc_kv(m: &Machine, ptr: *const c_void, asked: usize) {
    if ON.load(Relaxed) {
        if m.is_vmalloc_addr(ptr.cast()) {
            alloc_vmalloc(ptr, asked);
        } else {
            alloc_kmalloc(ptr, asked);
        }
    }
}

/// A record taken out before a `krealloc`-style call ([`take`]), for [`realloc`] to put back.
pub(crate) struct Taken(Option<Object>);

/// Before a `krealloc`-style call on `old` whose frees are `by`'s: takes its record out of the
/// table if it is of a kind `by` frees. The call may free `old`, and once it is freed another
/// thread may be handed the same address and record it before this one could forget `old`
/// afterwards (which would forget the new object). A record of another kind stays: kmem
/// reports and refuses the call, also when it asks to free (size 0), so the object stays
/// allocated (as in [`free`]).
#[inline]
pub(crate) fn take(old: *const c_void, by: Freer) -> Taken {
    if ON.load(Relaxed) && old as usize > kmem_core::kmalloc::classes::ZERO_SIZE_PTR {
        Taken(remove(&mut lock(), old as usize, by))
    } else {
        Taken(None)
    }
}

/// After a `krealloc`-style call returned `new` for `old` (whose record [`take`] took out): an
/// object that moved is recorded at its new address (the kernel's kmemleak sees a free and an
/// allocation); one resized in place, or left alone by a failure (NULL), gets its record back.
/// A call that freed `old` (size 0) must not come here: its record is dropped with `taken`.
#[inline]
pub(crate) fn realloc(m: &Machine, old: *const c_void, taken: Taken, new: *const c_void, asked: usize) {
    if new.is_null() || new == old {
        if let Some(o) = taken.0
            && ON.load(Relaxed)
        {
            // `old` is still allocated, so no other thread can have recorded its address.
            lock().objects.entry(old as usize).or_insert(o);
        }
    } else {
        alloc_kv(m, new, asked);
    }
}

#[cold]
#[inline(never)]
fn record(addr: usize, size: usize, kind: Kind, not_leak: bool) {
    // Before the table's lock (`threads`' lock order).
    threads::register_current();
    let chain = CallChain::record();
    let (pid, comm) = (kmem::sys::gettid(), kmem::sys::comm());
    let jiffies = jiffies_now();
    let mut s = lock();
    let seq = s.next_seq;
    s.next_seq += 1;
    let o = Object { seq, size, kind, comm, pid, jiffies, chain, not_leak, reported: false, white: false, checksum: 0 };
    s.objects.insert(addr, o);
}

/// Forgets an object the C ABI frees (or that is not a leak), before it is freed, if it is of
/// a kind `by` frees: a free of the wrong family is reported and refused by kmem, which leaves
/// the object allocated, so its record stays (a leak of it is still found).
#[inline]
pub(crate) fn free(ptr: *const c_void, by: Freer) {
    if ON.load(Relaxed) && !ptr.is_null() {
        forget(ptr as usize, by);
    }
}

#[cold]
#[inline(never)]
fn forget(addr: usize, by: Freer) {
    remove(&mut lock(), addr, by);
}

/// Takes the record at `addr` out of the table if it is of a kind `by` frees.
fn remove(s: &mut State, addr: usize, by: Freer) -> Option<Object> {
    match s.objects.entry(addr) {
        Entry::Occupied(e) if by.forgets(e.get().kind) => Some(e.remove()),
        _ => None,
    }
}

/// Stops recording, scans from `roots`, the words in `values` (copies of memory such as other
/// threads' stacks) and the elements in live pools' reserves (`kmemleak/scan.rs`) and reports
/// every recorded object they do not reach, whether an on-demand scan counted it before or
/// not, and whatever its age: logs kmemleak's line on `m` if there is any, and returns the
/// `/sys/kernel/debug/kmemleak` text (also kept for [`last_report`]). Call it while the code
/// that allocated them is still loaded, so its frames have names, and not under the loader's
/// lock (it takes the scan lock first, which an on-demand scan holds while it walks the loaded
/// objects; the module docs' lock order).
///
/// The table's lock is held, and recording left on, while the objects are read (the scan, and
/// each reported object's first bytes and checksum): another thread's free through the C ABI
/// forgets the object before freeing it, so it waits until then, and no object is freed (nor
/// a vmalloc area unmapped) while it is read.
///
/// # Safety
/// Every `(start, len)` in `roots` is memory that stays mapped and readable for the whole call
/// (what [`writable_segments`] and [`live_stack`] give), since each of its words is read. Every
/// recorded object is still readable: blocks described with [`kmemleak_alloc`] were not
/// unmapped before their `kmemleak_free` (that export's contract), and no object the C ABI
/// handed out was freed by a path other than the C ABI's (the Rust API's `kfree` or `vfree`
/// of it would leave a record of memory that may be gone).
pub unsafe fn report(m: &Machine, roots: &[(usize, usize)], values: &[usize]) -> String {
    let _scan = scan_lock();
    // Before the table's lock, which is a leaf (the module docs).
    let mut pools = crate::mempool::reserved_elements();
    pools.extend_from_slice(values);
    let mut left: Vec<(usize, Object, Contents)> = {
        let mut s = lock();
        let spans = s.objects.iter().map(|(&a, o)| (a, o.span())).collect();
        // SAFETY: The roots are readable and the recorded objects still allocated (the
        // caller's promise), and the table's lock is held.
        let lost = unsafe { scan::unreferenced(&spans, roots, &pools) };
        let objects = std::mem::take(&mut s.objects);
        let left = objects
            .into_iter()
            .filter(|(a, _)| lost.contains(a))
            .map(|(a, o)| {
                let c = contents(a, o.size);
                (a, o, c)
            })
            .collect();
        ON.store(false, Relaxed);
        left
    };
    left.sort_by_key(|(_, o, _)| o.seq);
    let mut text = String::new();
    for (addr, o, c) in &left {
        describe(&mut text, *addr, o, c);
    }
    if !left.is_empty() {
        crate::printk::flush(m);
        m.printk(
            Level::Info,
            &format!("kmemleak: {} new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n", left.len()),
        );
    }
    lock().last_report.clone_from(&text);
    text
}

/// The text of the last [`report`] (what `/sys/kernel/debug/kmemleak` shows).
pub fn last_report() -> String {
    lock().last_report.clone()
}

/// Checks `KMEM_KMEMLEAK` and `KMEM_KMEMLEAK_SCAN` without acting on them, for a tool that
/// refuses a bad environment up front (`kmem insmod` exits with code 3) where a program using
/// the C ABI can only say so on stderr and go on.
///
/// # Errors
/// The first variable set to a value it does not take.
pub fn check_env() -> Result<(), kmem::env::EnvError> {
    kmem::env::flag("KMEM_KMEMLEAK")?;
    periodic::scan_from_env().map(drop)
}

/// `KMEM_KMEMLEAK=1` for a program using the C ABI: starts recording and has the report
/// printed at exit (a bad value is said on stderr and leaves it off). Called once, when the
/// C ABI first gets its machine.
pub(crate) fn start_from_env() {
    match kmem::env::flag("KMEM_KMEMLEAK") {
        Ok(false) => {}
        Ok(true) => {
            start();
            // SAFETY: `at_exit` is an `extern "C" fn()` that stays valid for the process.
            if unsafe { libc::atexit(at_exit) } != 0 {
                ON.store(false, Relaxed);
                eprintln!("kmem: KMEM_KMEMLEAK: cannot register the report at exit; kmemleak is off");
            } else {
                periodic::start_from_env();
            }
        }
        Err(e) => eprintln!("kmem: {e}; kmemleak is off"),
    }
}

/// The program's exit: scans from every loaded object's writable segments, this thread's live
/// frames (those of `exit`'s callers) and the stacks of the other threads that allocated
/// through the C ABI (`threads`), and prints what nothing refers to on stderr.
extern "C" fn at_exit() {
    let here = 0u8;
    if !is_on() {
        return;
    }
    let Some(m) = crate::boundary::machine_or_report() else { return };
    let mut roots = writable_segments(|_, _| true);
    roots.extend(live_stack(std::ptr::addr_of!(here) as usize));
    let others = threads::other_stacks_words();
    // SAFETY: The roots are the loaded objects' writable segments (mapped while their objects
    // are loaded, and nothing is unloaded during `exit`) and this thread's live frames, under
    // this call; recorded objects are live C ABI objects or blocks C described.
    let text = unsafe { report(m, &roots, &others) };
    if !text.is_empty() {
        let n = text.matches("unreferenced object ").count();
        eprint!("kmemleak: {n} new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n{text}");
    }
}

/// What a report shows of an object's memory: its first bytes and the checksum of all of them.
struct Contents {
    head: Vec<u8>,
    crc: u32,
}

/// Reads the object's bytes, with volatile reads: the memory is C's, which may still be
/// writing it. Called under the table's lock, with the object still recorded.
fn contents(addr: usize, size: usize) -> Contents {
    let mut head = Vec::with_capacity(size.min(HEX_DUMP_BYTES));
    let mut crc = 0u32;
    for i in 0..size {
        // SAFETY: The object is still allocated: it was recorded and not freed through the C
        // ABI, and a free through it waits for the table's lock, held by the caller (a vmalloc
        // area stays mapped until `vfree` or `vunmap`, which forget it first); so its `size`
        // bytes are mapped and readable.
        let b = unsafe { std::ptr::read_volatile((addr + i) as *const u8) };
        if i < HEX_DUMP_BYTES {
            head.push(b);
        }
        crc = crc32_byte(crc, b);
    }
    Contents { head, crc }
}

/// `print_unreferenced`: the object, its task, its first bytes, and its allocation's call chain
/// (the checksum is `crc32` of its contents, as kmemleak keeps it).
fn describe(text: &mut String, addr: usize, o: &Object, c: &Contents) {
    let _ = writeln!(text, "unreferenced object 0x{addr:08x} (size {}):", o.size);
    let _ = writeln!(text, "  comm \"{}\", pid {}, jiffies {}", o.comm, o.pid, o.jiffies);
    let _ = writeln!(text, "  hex dump (first {} bytes):", c.head.len());
    for row in c.head.chunks(16) {
        let _ = writeln!(text, "    {}", hex_row(row));
    }
    let _ = writeln!(text, "  backtrace (crc {:x}):", c.crc);
    for (pc, name) in o.chain.foreign_frames() {
        // The kernel prints the saved return address (`%pK`), one byte past the call `pc` is;
        // the name's offset is the return address's already.
        let _ = writeln!(text, "    [<{:016x}>] {name}", pc + 1);
    }
}

/// One row of `print_hex_dump(..., 16, 1, buf, len, true)`: bytes as `xx` separated by
/// spaces, then the ASCII column at 49 (printable ASCII as itself, the rest as `.`).
fn hex_row(row: &[u8]) -> String {
    let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
    let ascii: String =
        row.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' }).collect();
    format!("{:<49}{ascii}", hex.join(" "))
}

/// The kernel's `crc32(0, buf, len)`: `crc32_le`, reflected polynomial 0xedb88320, seed 0 and
/// no final inversion.
#[cfg(test)]
fn crc32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |crc, &b| crc32_byte(crc, b))
}

/// One byte into the kernel's `crc32_le` (reflected polynomial 0xedb88320).
fn crc32_byte(mut crc: u32, b: u8) -> u32 {
    crc ^= u32::from(b);
    for _ in 0..8 {
        crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
    }
    crc
}

/// `void kmemleak_alloc(const void *ptr, size_t size, int min_count, gfp_t gfp)`: C code
/// describes a block of its own; recorded like an allocation (`min_count` 0 means never a
/// leak: never reported, but scanned, so what it refers to is referenced).
///
/// # Safety
/// While kmemleak is on, `size` bytes at `ptr` stay mapped and readable until
/// `kmemleak_free(ptr)` or `kmemleak_ignore(ptr)` (the kernel's contract): [`report`] reads
/// every byte of a recorded block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmemleak_alloc(ptr: *const c_void, size: usize, min_count: i32, _gfp: crate::pages::gfp_t) {
    // The first call into kmem starts kmemleak (`KMEM_KMEMLEAK`, read with the machine), and
    // a program may describe its own block before it allocates anything.
    if !ON.load(Relaxed) {
        let _ = crate::boundary::machine_or_report();
    }
    if ON.load(Relaxed) && ptr as usize > kmem_core::kmalloc::classes::ZERO_SIZE_PTR {
        if (ptr as usize).checked_add(size).is_none() {
            return refuse_wrapping(ptr as usize, size);
        }
        record(ptr as usize, size, Kind::Block, min_count == 0);
    }
}

/// A block described past the end of the address space (no such memory: the caller's
/// mistake) is not recorded, as the kernel's `__link_object` refuses a range it cannot insert
/// (its `kmemleak_stop` also turns kmemleak off; here only the block is left out).
#[cold]
#[inline(never)]
#[track_caller]
fn refuse_wrapping(addr: usize, size: usize) {
    if let Some(m) = crate::boundary::machine_or_report() {
        crate::printk::flush(m);
        m.printk(
            Level::Warning,
            &format!(
                "kmemleak: Cannot insert 0x{addr:x} into the object search tree (size {size} wraps the address space); not recorded\n"
            ),
        );
        m.platform().dump_stack(std::panic::Location::caller());
    }
}

/// `void kmemleak_free(const void *ptr)`: the block C described is gone.
#[unsafe(no_mangle)]
pub extern "C" fn kmemleak_free(ptr: *const c_void) {
    free(ptr, Freer::Any);
}

/// `void kmemleak_not_leak(const void *ptr)`: the object is not a leak: never reported, but
/// still scanned, so the objects it refers to are not reported either (the kernel's
/// `make_gray_object`).
#[unsafe(no_mangle)]
pub extern "C" fn kmemleak_not_leak(ptr: *const c_void) {
    if ON.load(Relaxed)
        && !ptr.is_null()
        && let Some(o) = lock().objects.get_mut(&(ptr as usize))
    {
        o.not_leak = true;
    }
}

/// `void kmemleak_ignore(const void *ptr)`: the object is neither a leak nor scanned.
#[unsafe(no_mangle)]
pub extern "C" fn kmemleak_ignore(ptr: *const c_void) {
    free(ptr, Freer::Any);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_checksums_read_as_the_kernels() {
        assert_eq!(hex_row(b"hello, kmemleak!"), "68 65 6c 6c 6f 2c 20 6b 6d 65 6d 6c 65 61 6b 21  hello, kmemleak!");
        assert_eq!(hex_row(&[0, 0x7f, b'A']), format!("{:<49}..A", "00 7f 41"));
        // crc32_le with seed 0 and no inversion: the kernel's crc32(0, "123456789", 9).
        assert_eq!(crc32(b"123456789"), 0x2dfd_2d88);
        assert_eq!(crc32(&[0; 32]), 0);
    }

    /// `print_unreferenced` prints the address with `0x%08lx`: zero-padded to 8 digits, not 16.
    #[test]
    fn an_object_reads_as_print_unreferenced() {
        let o = Object {
            seq: 0,
            size: 8,
            kind: Kind::Object,
            comm: "t".into(),
            pid: 7,
            jiffies: 5,
            chain: CallChain::default(),
            not_leak: false,
            reported: false,
            white: false,
            checksum: 0,
        };
        let mut text = String::new();
        describe(&mut text, 0x7f12_3456_7000, &o, &Contents { head: b"leak\0\0\0\0".to_vec(), crc: 0xabc });
        let row = format!("    {:<49}leak....", "6c 65 61 6b 00 00 00 00");
        let want = format!(
            "unreferenced object 0x7f1234567000 (size 8):\n  comm \"t\", pid 7, jiffies 5\n  hex dump (first 8 bytes):\n{row}\n  backtrace (crc abc):\n"
        );
        assert_eq!(text, want);
        text.clear();
        describe(&mut text, 0x1000, &o, &Contents { head: vec![], crc: 0 });
        assert!(text.starts_with("unreferenced object 0x00001000 (size 8):\n"), "{text}");
    }

    /// `krealloc` takes the old record out before the call: once the call has freed the old
    /// object, another thread handed the same address records it, and that record stays (the
    /// hook used to forget the old address after the call, losing the other thread's object).
    #[test]
    fn a_moving_realloc_keeps_a_record_of_its_old_address_made_meanwhile() {
        let m = crate::machine().unwrap();
        start();
        // Addresses nothing maps: only recorded, never read (no report).
        let (old, new) = (0x7000_0000_1000usize, 0x7000_0000_2000usize);
        let seq_at = |a: usize| lock().objects.get(&a).map(|o| o.seq);
        alloc(old as *const c_void, 64);
        let taken = take(old as *const c_void, Freer::Kfree);
        assert_eq!(seq_at(old), None);
        alloc(old as *const c_void, 64); // Another thread's object at the freed address.
        let reused = seq_at(old);
        realloc(m, old as *const c_void, taken, new as *const c_void, 100);
        assert!(reused.is_some() && seq_at(old) == reused);
        assert_eq!(lock().objects.get(&new).map(|o| o.size), Some(128));
        // A failure (NULL) or a resize in place gives the record back.
        let first = seq_at(new);
        let taken = take(new as *const c_void, Freer::Kfree);
        realloc(m, new as *const c_void, taken, std::ptr::null(), 1 << 30);
        assert_eq!(seq_at(new), first);
        let taken = take(new as *const c_void, Freer::Kfree);
        realloc(m, new as *const c_void, taken, new as *const c_void, 120);
        assert_eq!(seq_at(new), first);
        ON.store(false, Relaxed);
        lock().objects.clear();
    }
}
