//! kmemleak's scan (`kmemleak_scan`): which recorded objects nothing refers to. Every aligned
//! word of the roots is read; a value inside a recorded object (its start up to its end, as
//! the kernel accepts pointers into an object) makes that object referenced, and its own
//! words are scanned in turn (the gray list). What is never reached is unreferenced.
//!
//! Roots: the writable segments (`PT_LOAD` with `PF_W`: `.data`, `.bss`, the GOT) of the
//! loaded objects that can hold C's pointers (a module's own, or every object of a program),
//! and the live part of the scanning thread's stack; copies of other threads' stacks
//! (`threads`, at a program's exit); and the elements in the reserves of the
//! live pools C holds (the kernel's pool refers to them from its `elements` array, which
//! kmemleak scans; kmem's reserve is not C's memory). Memory from `malloc` is not scanned, as
//! the kernel has none: an object only a `malloc`'d block refers to is reported.
//!
//! Two ways to read: the exit scan's direct reads ([`unreferenced`]), volatile and of memory
//! its caller promises stays mapped (a segment the loader mapped, a live stack, an object still
//! allocated); and the on-demand scan's copies ([`Copier`]), `process_vm_readv` on this
//! process, which fail on memory that is gone instead of faulting, so another thread may free
//! an object (a `vfree` unmaps it) or `dlclose` a library meanwhile. Either way the values are
//! only compared, never followed without a lookup in the scan's own set of objects.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CStr, c_int, c_void};

/// A recorded object as a scan sees it.
#[derive(Clone, Copy)]
pub(super) struct Span {
    pub(super) size: usize,
    /// Never reported, always scanned (`kmemleak_not_leak`): gray from the start.
    pub(super) not_leak: bool,
}

/// `[start, start + len)` ranges of memory to scan.
pub type Roots = Vec<(usize, usize)>;

/// A scan in progress over a fixed set of objects: which are referenced (gray or scanned), and
/// the gray list of those whose words are still to be read.
pub(super) struct Graph<'a> {
    objects: &'a BTreeMap<usize, Span>,
    referenced: HashSet<usize>,
    gray: Vec<usize>,
}

impl<'a> Graph<'a> {
    /// Every object white but those marked not a leak, which are gray (scanned whatever refers
    /// to them).
    pub(super) fn new(objects: &'a BTreeMap<usize, Span>) -> Self {
        let mut g = Graph { objects, referenced: HashSet::new(), gray: Vec::new() };
        for (&start, _) in objects.iter().filter(|(_, o)| o.not_leak) {
            g.visit(start);
        }
        g
    }

    /// A word found in scanned memory: a value anywhere inside an object references it.
    pub(super) fn visit(&mut self, value: usize) {
        if let Some((&start, o)) = self.objects.range(..=value).next_back()
            && value < start + o.size.max(1)
            && self.referenced.insert(start)
        {
            self.gray.push(start);
        }
    }

    /// Whether the scan has found a reference to the object at `start` (so far).
    pub(super) fn is_referenced(&self, start: usize) -> bool {
        self.referenced.contains(&start)
    }

    /// Scans `[start, start + len)` through `copier`, then every object it reaches; memory
    /// that cannot be read holds no references. `Err(errno)` if the reads are refused.
    pub(super) fn scan_copied(&mut self, copier: &mut Copier, start: usize, len: usize) -> Result<(), i32> {
        self.visit_copied(copier, start, len)?;
        self.drain_copied(copier)
    }

    /// Scans the gray list through `copier` until it is empty.
    pub(super) fn drain_copied(&mut self, copier: &mut Copier) -> Result<(), i32> {
        while let Some(start) = self.gray.pop() {
            self.visit_copied(copier, start, self.objects[&start].size)?;
        }
        Ok(())
    }

    /// Visits every word of `[start, start + len)`, copied.
    fn visit_copied(&mut self, copier: &mut Copier, start: usize, len: usize) -> Result<(), i32> {
        copier.copy(start, len, &mut |at, bytes| words_of(at, bytes, &mut |v| self.visit(v)))
    }

    /// Scans the gray list with direct reads until it is empty.
    ///
    /// # Safety
    /// Every object in the graph's set is allocated (readable) for the whole call.
    unsafe fn drain_direct(&mut self) {
        while let Some(start) = self.gray.pop() {
            let size = self.objects[&start].size;
            // SAFETY: A recorded object is still allocated, so its bytes are mapped (the
            // caller's promise).
            unsafe { scan_words(start, size, &mut |v| self.visit(v)) };
        }
    }

    /// The objects nothing referenced.
    pub(super) fn unreferenced(&self) -> HashSet<usize> {
        self.objects.keys().copied().filter(|a| !self.referenced.contains(a)).collect()
    }
}

/// The recorded objects nothing in `roots` (ranges), `values` (words held elsewhere, such as
/// a pool's reserve) or an object marked not a leak refers to, directly or through other
/// objects; every read is a direct one (the exit scan's).
///
/// # Safety
/// Every root range is mapped and readable, and every object in `objects` is still allocated
/// (readable) for the whole call.
pub(super) unsafe fn unreferenced(
    objects: &BTreeMap<usize, Span>,
    roots: &[(usize, usize)],
    values: &[usize],
) -> HashSet<usize> {
    let mut g = Graph::new(objects);
    for &value in values {
        g.visit(value);
    }
    for &(start, len) in roots {
        // SAFETY: Roots are mapped, readable memory (the caller's promise).
        unsafe { scan_words(start, len, &mut |v| g.visit(v)) };
    }
    // SAFETY: The objects are allocated (the caller's promise).
    unsafe { g.drain_direct() };
    g.unreferenced()
}

/// Calls `f` with every aligned word in `[start, start + len)`.
///
/// # Safety
/// The range is mapped and readable.
unsafe fn scan_words(start: usize, len: usize, f: &mut impl FnMut(usize)) {
    const WORD: usize = size_of::<usize>();
    let end = start.saturating_add(len);
    let mut at = start.next_multiple_of(WORD);
    while at.checked_add(WORD).is_some_and(|e| e <= end) {
        // SAFETY: Aligned, inside the range, which is readable (caller).
        f(unsafe { std::ptr::read_volatile(at as *const usize) });
        at += WORD;
    }
}

/// Calls `f` with every word of `bytes` (a copy of the memory at `at`) that is aligned in that
/// memory and whole in the copy. Values below the first page, which no object's address can
/// be, are left out.
pub(super) fn words_of(at: usize, bytes: &[u8], f: &mut impl FnMut(usize)) {
    const WORD: usize = size_of::<usize>();
    let skip = at.next_multiple_of(WORD) - at;
    for w in bytes.get(skip..).unwrap_or_default().chunks_exact(WORD) {
        let v = usize::from_ne_bytes(w.try_into().unwrap_or_default());
        if v >= PAGE {
            f(v);
        }
    }
}

/// The host's page: what `process_vm_readv` and `/proc/self/pagemap` count in.
pub(super) const PAGE: usize = 4096;

/// Reads this process's memory with `process_vm_readv`, which fails with `EFAULT` on a page
/// that is not mapped instead of faulting: what the on-demand scan reads while other threads
/// run, and may free an object (even `vfree` it, unmapping it) or `dlclose` a library under it.
/// A page freed and reused meanwhile is read as it is then: stale values can only make an
/// object look referenced (a false negative), never a fault. The copy is the kernel's, so no
/// Rust reference to memory C writes meanwhile is ever made.
pub(super) struct Copier {
    buf: Vec<u8>,
}

/// Pages read by one system call.
const CHUNK_PAGES: usize = 16;

impl Copier {
    pub(super) fn new() -> Self {
        Copier { buf: vec![0; CHUNK_PAGES * PAGE] }
    }

    /// Copies `[start, start + len)` chunk by chunk and calls `f(address, bytes)` with each
    /// piece copied, in order; a page that cannot be read is skipped. `Err(errno)` if the
    /// system call is refused (anything but `EFAULT`: a seccomp filter, or no such call).
    pub(super) fn copy(&mut self, start: usize, len: usize, f: &mut dyn FnMut(usize, &[u8])) -> Result<(), i32> {
        let next_page = |p: usize| (p | (PAGE - 1)).saturating_add(1);
        let end = start.saturating_add(len);
        let mut at = start;
        while at < end {
            // Up to CHUNK_PAGES pages, one remote iovec per page (piece of one), so a copy stops
            // exactly at the first page that is not mapped.
            let mut remote = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; CHUNK_PAGES];
            let (mut n, mut p) = (0, at);
            while n < CHUNK_PAGES && p < end {
                let e = next_page(p).min(end);
                remote[n] = libc::iovec { iov_base: p as *mut c_void, iov_len: e - p };
                (n, p) = (n + 1, e);
            }
            let want = p - at;
            let local = libc::iovec { iov_base: self.buf.as_mut_ptr().cast(), iov_len: want };
            // SAFETY: Reads from this process's memory into `buf`, which has room for `want`
            // bytes (at most CHUNK_PAGES pages); the kernel checks the remote addresses and
            // fails with EFAULT on one that is not mapped.
            let got = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, remote.as_ptr(), n as _, 0) };
            let got = match usize::try_from(got) {
                Ok(got) => got.min(want),
                Err(_) => match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EFAULT) => 0,
                    e => return Err(e.unwrap_or(libc::EIO)),
                },
            };
            if got > 0 {
                f(at, &self.buf[..got]);
            }
            // The page after the copied bytes is not readable: go on past it.
            at = if got == want { p } else { next_page(at + got) };
        }
        Ok(())
    }
}

/// The writable segments of the loaded objects `keep` accepts (called with each object's
/// load bias and path; the main program's path is empty).
pub fn writable_segments<F: FnMut(usize, &str) -> bool>(keep: F) -> Roots {
    struct Walk<F> {
        keep: F,
        roots: Roots,
    }
    unsafe extern "C" fn each<F: FnMut(usize, &str) -> bool>(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `Walk` passed to `dl_iterate_phdr` below, alive and not
        // otherwise borrowed during the call; `info` is the loader's description of one object.
        let (walk, info) = unsafe { (&mut *data.cast::<Walk<F>>(), &*info) };
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: The loader's NUL-terminated path of the object.
            unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy().into_owned()
        };
        let bias = info.dlpi_addr as usize;
        if !(walk.keep)(bias, &name) {
            return 0;
        }
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of the loaded object.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W != 0 {
                walk.roots.push((bias.wrapping_add(ph.p_vaddr as usize), ph.p_memsz as usize));
            }
        }
        0
    }
    let mut walk = Walk { keep, roots: Vec::new() };
    // SAFETY: `each` matches the callback type and only uses `data` as the `Walk` it is.
    unsafe { libc::dl_iterate_phdr(Some(each::<F>), (&raw mut walk).cast()) };
    walk.roots
}

/// The calling thread's stack from `sp` (an address in the caller's frame) to its top: the
/// frames still live, the caller's and its callers'.
pub fn live_stack(sp: usize) -> Option<(usize, usize)> {
    let (base, size) = super::threads::stack_bounds()?;
    let top = base.checked_add(size)?;
    (base..top).contains(&sp).then(|| (sp, top - sp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page that is not readable is skipped, the pages around it are copied, and memory
    /// that is not mapped at all yields nothing: no fault either way.
    #[test]
    fn a_copy_skips_what_cannot_be_read() {
        const LEN: usize = 3 * PAGE;
        // SAFETY: A fresh private anonymous mapping of our own, unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let at = base as usize;
        // SAFETY: The mapping is ours and writable; then its middle page is made unreadable.
        unsafe {
            std::ptr::write_bytes(base.cast::<u8>(), 0x5a, LEN);
            assert_eq!(libc::mprotect((at + PAGE) as *mut c_void, PAGE, libc::PROT_NONE), 0);
        }
        let mut copier = Copier::new();
        let mut pieces = Vec::new();
        // From 8 bytes into the first page to 8 bytes before the end.
        copier
            .copy(at + 8, LEN - 16, &mut |a, b| {
                assert!(b.iter().all(|&x| x == 0x5a));
                pieces.push((a - at, b.len()));
            })
            .unwrap();
        assert_eq!(pieces, [(8, PAGE - 8), (2 * PAGE, PAGE - 8)]);
        // The whole range made unreadable: its pages replaced in place by an inaccessible
        // mapping, which reads as unmapped memory does (EFAULT). Unmapping it instead would let
        // another test thread's mmap take the address before the copy.
        // SAFETY: Our mapping, no longer used; MAP_FIXED replaces only it.
        let gone = unsafe {
            libc::mmap(base, LEN, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED, -1, 0)
        };
        assert_eq!(gone, base);
        let mut any = false;
        copier.copy(at, LEN, &mut |_, _| any = true).unwrap();
        assert!(!any, "an unreadable range is read as nothing");
        // SAFETY: Our mapping, no longer used.
        assert_eq!(unsafe { libc::munmap(base, LEN) }, 0);
    }

    /// Words are taken where they are aligned in memory, whole, and only from the first page up.
    #[test]
    fn words_are_aligned_in_memory() {
        let mut bytes = vec![0u8; 4];
        bytes.extend_from_slice(&0x7000_1234usize.to_ne_bytes());
        bytes.extend_from_slice(&17usize.to_ne_bytes());
        bytes.extend_from_slice(&[0xff; 3]);
        let mut seen = Vec::new();
        words_of(0x1004, &bytes, &mut |v| seen.push(v));
        assert_eq!(seen, [0x7000_1234]);
    }
}
