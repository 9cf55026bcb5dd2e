//! The stacks of other threads, for a program's exit scan and its on-demand scans: the
//! kernel's kmemleak scans every task's stack, so an object only a sleeping thread's local
//! variable refers to is not a leak.
//!
//! A thread is registered (its stack's bounds, from `pthread_getattr_np`) the first time it
//! allocates through the C ABI while kmemleak is on, and unregistered by its thread-local
//! destructor when it exits. Threads that never allocated through the C ABI are not known, so
//! a pointer only their stacks hold is not seen (documented in `docs/deviations.md`).
//!
//! Reading: another thread's stack is copied with the scan's `Copier` (`process_vm_readv` on
//! this process, one page per `iovec`), so a page that is not mapped (the unused end of a main
//! thread's stack, which `pthread_getattr_np` sizes by the stack limit) is skipped instead of
//! faulting, and a thread running meanwhile changes only the bytes copied. Pages never touched
//! (not present nor swapped out in `/proc/self/pagemap`) are not read at all. If
//! the system call is refused (a seccomp filter), other threads' stacks are not scanned.
//!
//! Races with a scan: a thread registers before its first record is made (`record`), so a
//! stack holding a recorded object was registered before the scan's snapshot saw that object
//! unless the object is younger than the scan (never reported: younger than 5 s). A thread
//! exiting waits in its destructor for the registry's lock, held while its stack is copied;
//! and since the copy is `process_vm_readv`'s, even a stack gone meanwhile would read as
//! nothing, not fault.
//!
//! Invariant: the registry holds one entry per live registered thread; lock order: the
//! registry's lock is taken before the object table's (`record` registers first) and is a
//! leaf otherwise.

use std::cell::Cell;
use std::sync::Mutex;

use super::scan::{Copier, PAGE, words_of};

/// A registered thread: its `pthread_t` and its stack `[base, base + size)`.
#[derive(Clone, Copy)]
struct Stack {
    thread: libc::pthread_t,
    base: usize,
    size: usize,
}

static STACKS: Mutex<Vec<Stack>> = Mutex::new(Vec::new());

/// A thread's registration: whether it was attempted, and (its destructor, which runs when the
/// thread exits) the removal of the thread's entry.
struct Registration {
    attempted: Cell<bool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // In a forked child the registry's lock may have been held by a parent thread the child
        // does not have (a scan copying the stacks): leave it alone (kmemleak is off there).
        if !self.attempted.get() || crate::boundary::forked() {
            return;
        }
        // SAFETY: `pthread_self` has no preconditions.
        let me = unsafe { libc::pthread_self() };
        // SAFETY: `pthread_equal` compares two thread ids.
        lock().retain(|s| unsafe { libc::pthread_equal(s.thread, me) } == 0);
    }
}

thread_local! {
    static REGISTRATION: Registration = const { Registration { attempted: Cell::new(false) } };
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Stack>> {
    STACKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Registers the calling thread's stack, once per thread. The first call also installs the
/// thread's destructor (the thread-local's), before any entry exists: an exit cannot leave a
/// stale one. A thread past its thread-locals' teardown is not registered.
#[inline]
pub(super) fn register_current() {
    if REGISTRATION.try_with(|r| r.attempted.replace(true)).unwrap_or(true) {
        return;
    }
    register_slow();
}

#[cold]
#[inline(never)]
fn register_slow() {
    let Some((base, size)) = stack_bounds() else { return };
    // SAFETY: `pthread_self` has no preconditions.
    let thread = unsafe { libc::pthread_self() };
    lock().push(Stack { thread, base, size });
}

/// The calling thread's stack bounds.
pub(super) fn stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: All-zero is a valid `pthread_attr_t` to be filled in by `pthread_getattr_np`.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: The calling thread's own attributes into `attr`, destroyed below.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) } != 0 {
        return None;
    }
    let (mut base, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: `attr` was initialised above; the outputs are writable.
    let got = unsafe { libc::pthread_attr_getstack(&attr, &mut base, &mut size) };
    // SAFETY: Initialised by `pthread_getattr_np`, destroyed once.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    (got == 0 && !base.is_null()).then_some((base as usize, size))
}

/// The words of every registered thread's stack but the caller's, as far down from each top
/// as pages are mapped, less those below the first page (0 and small integers, which no
/// object's address can be): a thread's stack is mapped whole at its creation (8 MiB by
/// default) and mostly never touched, so its zero words would cost a megaword per thread.
/// Pages never touched (neither present nor swapped out, by `/proc/self/pagemap`) are not
/// read at all: they hold only zeros, and copying 8 MiB per thread made each on-demand scan
/// cost tens of milliseconds per thread. Without a readable pagemap every page is read.
/// Threads cannot exit past their destructor while this runs (the registry's lock is held),
/// though a copy of a running thread's stack is only a snapshot.
pub(super) fn other_stacks_words() -> Vec<usize> {
    // Before the registry's lock: opening allocates.
    let pagemap = std::fs::File::open("/proc/self/pagemap").ok();
    // SAFETY: `pthread_self` has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let stacks = lock();
    let mut words = Vec::new();
    let mut copier = Copier::new();
    // SAFETY: `pthread_equal` compares two thread ids.
    for s in stacks.iter().filter(|s| unsafe { libc::pthread_equal(s.thread, me) } == 0) {
        let (bottom, top) = (s.base.next_multiple_of(PAGE), (s.base + s.size) / PAGE * PAGE);
        if top <= bottom {
            continue;
        }
        for (lo, hi) in touched_runs(pagemap.as_ref(), bottom, top) {
            // Pages that cannot be read hold no references; a refused system call (a
            // seccomp filter) leaves the stacks unread, as an exit scan cannot report it.
            if copier.copy(lo, hi - lo, &mut |at, bytes| words_of(at, bytes, &mut |w| words.push(w))).is_err() {
                return words;
            }
        }
    }
    words
}

/// The runs `[lo, hi)` of pages in `[bottom, top)` that were ever touched (present or swapped
/// out), lowest first; the whole range if the pagemap cannot be read or shows none.
fn touched_runs(pagemap: Option<&std::fs::File>, bottom: usize, top: usize) -> Vec<(usize, usize)> {
    use std::os::unix::fs::FileExt as _;
    const PRESENT_OR_SWAPPED: u64 = 3 << 62;
    let pages = (top - bottom) / PAGE;
    let mut raw = vec![0u8; pages * 8];
    let Some(Ok(())) = pagemap.map(|f| f.read_exact_at(&mut raw, (bottom / PAGE * 8) as u64)) else {
        return vec![(bottom, top)];
    };
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, e) in raw.chunks_exact(8).enumerate() {
        if u64::from_ne_bytes(e.try_into().unwrap_or_default()) & PRESENT_OR_SWAPPED == 0 {
            continue;
        }
        let at = bottom + i * PAGE;
        match runs.last_mut() {
            Some(run) if run.1 == at => run.1 = at + PAGE,
            _ => runs.push((at, at + PAGE)),
        }
    }
    // A live thread has touched the top of its stack at least: a pagemap that says otherwise
    // does not tell (an emulated `/proc`), so everything is read.
    if runs.is_empty() { vec![(bottom, top)] } else { runs }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleeping thread's stack is copied whole, and a pointer in a local of its is found;
    /// once the thread exits it is gone from the registry.
    #[test]
    fn another_threads_stack_is_read_until_it_exits() {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let marker = 0x5eed_f00d_cafe_d00d_usize;
        let t = std::thread::spawn(move || {
            let local = std::hint::black_box([marker; 4]);
            register_current();
            ready_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            std::hint::black_box(&local);
        });
        ready_rx.recv().unwrap();
        assert!(other_stacks_words().contains(&marker), "the sleeping thread's local is seen");
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(!other_stacks_words().contains(&marker), "an exited thread is no longer read");
    }

    /// A registered thread with an 8 MiB stack it barely touched yields its few words that
    /// could be addresses, not a megaword of zeros (the exit scan keeps them all in memory).
    #[test]
    fn an_untouched_stack_costs_no_words() {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let marker = 0x5eed_f00d_cafe_beef_usize;
        let t = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || {
                let local = std::hint::black_box([marker; 4]);
                register_current();
                ready_tx.send(()).unwrap();
                done_rx.recv().unwrap();
                std::hint::black_box(&local);
            })
            .unwrap();
        ready_rx.recv().unwrap();
        let words = other_stacks_words();
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(words.contains(&marker), "the thread's local is still seen");
        assert!(words.iter().all(|&w| w >= 4096), "no word that cannot be an address");
        // Other tests' threads may be registered too; each touched only a few pages.
        assert!(words.len() < (1 << 20) / 4, "{} words kept from mostly untouched stacks", words.len());
    }
}
