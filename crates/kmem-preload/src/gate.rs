//! The fork gate: every outermost call into the library passes it, and a `fork` closes it and
//! waits until no thread is inside, so the child's copy of the heap is quiescent — no lock
//! held, no per-CPU list half updated (kmem's per-CPU fast paths take no lock, so holding its
//! locks would not be enough).
//!
//! An asymmetric Dekker handshake keeps atomic read-modify-writes off the call path, as
//! kmem's `pcp_guard` does for CPU slots: a thread entering stores `inside = true` in its own
//! [`Record`] (plain store), runs a light barrier (a compiler fence), then reads `CLOSED`; if a
//! fork is under way it steps back out and waits. The forking thread sets `CLOSED`, runs a heavy
//! barrier (`membarrier`, a full barrier on every running thread), then waits for each record's
//! `inside` to drop. One side always sees the other's flag. Without `membarrier` both sides
//! use full fences.
//!
//! Records live in bootstrap memory on a push-only list (never freed); a thread takes one on
//! its first call and a `pthread` key destructor hands it back at thread exit for reuse.
//! Lock order: the gate, then the machine's fork lock, then the bootstrap heap's lock. The
//! thread that closed the gate passes it while a fork is under way (other libraries' fork
//! handlers run on it then, and may allocate): it holds both locks, which let it through.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering, compiler_fence, fence};
use std::sync::OnceLock;

use crate::sys::{self, ExitKey};

/// One thread's flag.
pub struct Record {
    inside: AtomicBool,
    /// A live thread owns this record.
    taken: AtomicBool,
    next: *mut Record,
}

static RECORDS: AtomicPtr<Record> = AtomicPtr::new(ptr::null_mut());
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The record of the thread that closed the gate (null while it is open). That thread passes
/// the closed gate: between `fork`'s prepare handlers and its parent/child handlers it runs
/// other libraries' fork handlers, registered before ours, which may allocate; every other
/// thread is outside, so it is alone in the library, and the locks the fork holds (the
/// machine's fork lock, the bootstrap heap's lock) let their holder through.
static CLOSER: AtomicPtr<Record> = AtomicPtr::new(ptr::null_mut());
/// 0: not yet known; 1: `membarrier` works (light side is a compiler fence); 2: full fences.
static MEMBARRIER: AtomicU8 = AtomicU8::new(0);
static EXIT_KEY: OnceLock<Option<ExitKey>> = OnceLock::new();

thread_local! {
    /// The calling thread's record (null before its first call and after its exit hook).
    static MINE: Cell<*const Record> = const { Cell::new(ptr::null()) };
}

/// Every record ever made, oldest last.
fn records() -> impl Iterator<Item = &'static Record> {
    let mut cur = RECORDS.load(Ordering::Acquire);
    core::iter::from_fn(move || {
        // SAFETY: Records are leaked boxes, never freed; `next` is set before publication.
        let r = unsafe { cur.as_ref() }?;
        cur = r.next;
        Some(r)
    })
}

/// Thread exit: gives the thread's record back.
unsafe extern "C" fn release_record(value: *mut libc::c_void) {
    // SAFETY: The key's value is the thread's record (set in `register`), live forever.
    let r = unsafe { &*value.cast::<Record>() };
    let _ = MINE.try_with(|m| m.set(ptr::null()));
    r.inside.store(false, Ordering::Relaxed);
    r.taken.store(false, Ordering::Release);
}

/// Takes a free record or makes one, for the calling thread.
#[cold]
fn register() -> Option<&'static Record> {
    if MEMBARRIER.load(Ordering::Acquire) == 0 {
        let works = kmem::sys::heavy_barrier();
        MEMBARRIER.store(if works { 1 } else { 2 }, Ordering::Release);
    }
    let r =
        match records().find(|r| r.taken.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()) {
            Some(r) => r,
            None => {
                let fresh = new_record()?;
                let mut head = RECORDS.load(Ordering::Relaxed);
                loop {
                    fresh.next = head;
                    match RECORDS.compare_exchange_weak(head, fresh, Ordering::Release, Ordering::Relaxed) {
                        Ok(_) => break,
                        Err(now) => head = now,
                    }
                }
                &*fresh
            }
        };
    if let Some(key) = EXIT_KEY.get_or_init(|| ExitKey::new(release_record)) {
        key.set(ptr::from_ref(r).cast());
    }
    let _ = MINE.try_with(|m| m.set(r));
    Some(r)
}

/// A new record, taken by the caller, allocated through the global (bootstrap) allocator
/// without panicking and kept forever.
fn new_record() -> Option<&'static mut Record> {
    let layout = std::alloc::Layout::new::<Record>();
    // SAFETY: `Record` has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) }.cast::<Record>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a fresh allocation for one `Record`, never freed.
    unsafe {
        p.write(Record { inside: AtomicBool::new(false), taken: AtomicBool::new(true), next: ptr::null_mut() });
        Some(&mut *p)
    }
}

#[inline(always)]
fn light_barrier() {
    if MEMBARRIER.load(Ordering::Relaxed) == 1 {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// Proof that the calling thread is inside the gate; leaves on drop.
pub struct Inside {
    record: &'static Record,
}

impl Drop for Inside {
    #[inline(always)]
    fn drop(&mut self) {
        self.record.inside.store(false, Ordering::Release);
    }
}

/// Enters the gate, waiting while a fork is under way. `None` if no record could be made
/// (the bootstrap heap is exhausted).
#[inline]
pub fn enter() -> Option<Inside> {
    let mine = MINE.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: A non-null `MINE` is this thread's record (records are never freed).
    let record = match unsafe { mine.as_ref() } {
        Some(r) => r,
        None => register()?,
    };
    loop {
        record.inside.store(true, Ordering::Relaxed);
        light_barrier();
        if !CLOSED.load(Ordering::Relaxed) || ptr::eq(record, CLOSER.load(Ordering::Relaxed)) {
            return Some(Inside { record });
        }
        record.inside.store(false, Ordering::Release);
        while CLOSED.load(Ordering::Acquire) {
            sys::relax();
        }
    }
}

/// Closes the gate (fork prepare): waits for another fork to finish, then until no thread is
/// inside. The caller must not be inside itself; it passes the gate until [`open`].
pub fn close() {
    // The closer's own record first (made now if it has none: nothing is closed yet).
    let mine = MINE.try_with(Cell::get).unwrap_or(ptr::null());
    let mine = if mine.is_null() { register().map_or(ptr::null(), ptr::from_ref) } else { mine };
    while CLOSED.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        sys::relax();
    }
    CLOSER.store(mine.cast_mut(), Ordering::Relaxed);
    if MEMBARRIER.load(Ordering::Acquire) == 1 {
        kmem::sys::heavy_barrier();
    } else {
        fence(Ordering::SeqCst);
    }
    for r in records() {
        while r.inside.load(Ordering::Acquire) {
            sys::relax();
        }
    }
}

/// Opens the gate again (fork parent; and the child, after [`forget_other_threads`]).
pub fn open() {
    CLOSER.store(ptr::null_mut(), Ordering::Relaxed);
    CLOSED.store(false, Ordering::Release);
}

/// In a fork child: every record but the caller's belonged to a thread that did not survive.
pub fn forget_other_threads() {
    let mine = MINE.try_with(Cell::get).unwrap_or(ptr::null());
    for r in records().filter(|r| !ptr::eq(*r, mine)) {
        r.inside.store(false, Ordering::Relaxed);
        r.taken.store(false, Ordering::Relaxed);
    }
}
