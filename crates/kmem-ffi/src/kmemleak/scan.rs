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
//! Every read is volatile and of mapped memory (a segment the loader mapped, a live stack, an
//! object still allocated); the values are only compared, never followed without a lookup.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CStr, c_int, c_void};

use super::Object;

/// `[start, start + len)` ranges of memory to scan.
pub type Roots = Vec<(usize, usize)>;

/// The recorded objects nothing in `roots` (ranges), `values` (words held elsewhere, such as
/// a pool's reserve) or an object marked not a leak refers to, directly or through other
/// objects.
///
/// # Safety
/// Every root range is mapped and readable, and every object in `objects` is still allocated
/// (readable) for the whole call.
pub(super) unsafe fn unreferenced(
    objects: &BTreeMap<usize, Object>,
    roots: &[(usize, usize)],
    values: &[usize],
) -> HashSet<usize> {
    let mut referenced = HashSet::new();
    let mut gray = Vec::new();
    let mut visit = |value: usize, gray: &mut Vec<usize>| {
        if let Some((&start, o)) = objects.range(..=value).next_back()
            && value < start + o.size.max(1)
            && referenced.insert(start)
        {
            gray.push(start);
        }
    };
    // Objects that are no leak are scanned whatever refers to them (kmemleak's gray objects).
    for (&start, _) in objects.iter().filter(|(_, o)| o.not_leak) {
        visit(start, &mut gray);
    }
    for &value in values {
        visit(value, &mut gray);
    }
    for &(start, len) in roots {
        // SAFETY: Roots are mapped, readable memory (the caller's promise).
        unsafe { scan_words(start, len, &mut |v| visit(v, &mut gray)) };
    }
    while let Some(start) = gray.pop() {
        // SAFETY: A recorded object is still allocated, so its bytes are mapped (the caller's
        // promise; `report` holds the table's lock, for which a free through the C ABI waits).
        unsafe { scan_words(start, objects[&start].size, &mut |v| visit(v, &mut gray)) };
    }
    objects.keys().copied().filter(|a| !referenced.contains(a)).collect()
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
