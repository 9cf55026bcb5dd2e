//! The floors (BENCHMARKS.md "Floors"): the least bookkeeping each workload needs, so nothing
//! real can beat them.
//!
//! - [`FreeList`], for pages: a singly linked free list of block indices whose links live outside
//!   the blocks, in a `Vec<u32>` next-array small enough to stay in L1. Pop a head, push it back:
//!   no splitting, merging, zones or counters. Invariant: `head` is [`NIL`] or `< next.len()`,
//!   and every link in the list is as well; an index is either on the list or held by exactly
//!   one caller.
//! - [`ObjFreeList`], for fixed-size objects (`hot64`, `batch64`): the same push/pop with the
//!   link inside each free object, as SLUB keeps it; it stays in L1 for the hot pair.
//! - [`ClassLists`], for kmalloc sizes (`kN`, `churn`): one such list per kmalloc class, the class
//!   found by table, fresh objects cut from a per-class bump area when a list is empty.
//! - [`PtrStack`] (`batch64`) and [`ClassStacks`] (`kN`, `churn`): the same LIFO with the links
//!   outside the objects, in an array of free addresses (one per class for [`ClassStacks`]).
//!   Over working sets far beyond L1 a pop then reads the sequential, prefetchable array instead
//!   of missing on the object it pops; the harness takes the faster floor of each round.
//! - [`handoff_pair`], for two threads (`hot64-2T`, `prodcons`): a list per thread, and a
//!   thread that frees what another allocated hands its list over in batches (one
//!   compare-exchange per batch, one swap to take it). [`stack_handoff_pair`] is the same with
//!   each thread's free objects in an array of addresses, handed over whole: neither thread
//!   touches an object, and no pop waits on a link another core just wrote.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::objects::{ObjAlloc, Ptr};
use crate::pages::PageAlloc;

/// The end of the list.
const NIL: u32 = u32::MAX;

/// A free list of `next.len()` block indices, one list for whatever order it is asked for.
pub struct FreeList {
    next: Vec<u32>,
    head: u32,
}

impl FreeList {
    /// A list holding indices `0..len`, in order.
    pub fn new(len: u32) -> Self {
        assert!(len > 0 && len < NIL);
        // INVARIANT: each index links to the next one, the last to `NIL`.
        let next = (1..len).chain([NIL]).collect();
        Self { next, head: 0 }
    }
}

impl PageAlloc for FreeList {
    type Block = u32;

    #[inline]
    fn alloc(&mut self, _order: u32) -> Option<u32> {
        let i = self.head;
        if i == NIL {
            return None;
        }
        // SAFETY: `i != NIL`, so `i < next.len()` (type invariant).
        self.head = unsafe { *self.next.get_unchecked(i as usize) };
        Some(i)
    }

    #[inline]
    unsafe fn free(&mut self, block: u32, _order: u32) {
        // SAFETY: `block` came from `alloc` (caller), so it is `< next.len()`.
        unsafe { *self.next.get_unchecked_mut(block as usize) = self.head };
        // INVARIANT: `block` is in range and no longer held by the caller.
        self.head = block;
    }
}

/// A zeroed, 4 KiB-aligned arena of `bytes`, freed on drop. Zeroed so that its pages are
/// mapped (touched by the system allocator's `calloc` or by us) before any timing.
struct Arena {
    base: NonNull<u8>,
    layout: Layout,
}

impl Arena {
    fn new(bytes: usize) -> Self {
        let layout = Layout::from_size_align(bytes.max(4096), 4096).expect("arena layout");
        // SAFETY: non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { base, layout }
    }

    /// Like [`Arena::new`], but only reserves: pages are touched as objects are first cut.
    fn lazy(bytes: usize) -> Self {
        let layout = Layout::from_size_align(bytes.max(4096), 4096).expect("arena layout");
        // SAFETY: non-zero size.
        let p = unsafe { alloc::alloc(layout) };
        let base = NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { base, layout }
    }

    fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated with `layout` in `new`/`lazy`, freed once.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

// SAFETY: the arena is plain memory; who may touch which byte is the owner's business.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

/// Reads the link stored in the first word of free object `obj`.
///
/// # Safety
/// `obj` is a free object of an arena, 8-aligned, at least 8 bytes.
#[inline(always)]
unsafe fn next_of(obj: *mut u8) -> *mut u8 {
    // SAFETY: caller.
    unsafe { obj.cast::<*mut u8>().read() }
}

/// Stores `next` as the link of free object `obj`.
///
/// # Safety
/// As [`next_of`].
#[inline(always)]
unsafe fn set_next(obj: *mut u8, next: *mut u8) {
    // SAFETY: caller.
    unsafe { obj.cast::<*mut u8>().write(next) }
}

/// A free list of `count` objects of `size` bytes whose links live in the free objects.
/// Invariant: `head` is null or a free object of `arena`, and so is every link after it.
pub struct ObjFreeList {
    head: Cell<*mut u8>,
    size: usize,
    _arena: Arena,
}

impl ObjFreeList {
    /// `count` objects of `size` bytes (a multiple of 8, at least 8), linked in address order.
    pub fn new(size: usize, count: usize) -> Self {
        assert!(size >= 8 && size.is_multiple_of(8) && count > 0);
        let arena = Arena::new(size * count);
        let base = arena.base();
        for i in 0..count {
            let next = if i + 1 < count { base.wrapping_add((i + 1) * size) } else { ptr::null_mut() };
            // SAFETY: object `i` lies inside the arena and is free.
            unsafe { set_next(base.add(i * size), next) };
        }
        Self { head: Cell::new(base), size, _arena: arena }
    }
}

impl ObjAlloc for ObjFreeList {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<Ptr> {
        debug_assert!(size <= self.size);
        let obj = self.head.get();
        let p = NonNull::new(obj)?;
        // SAFETY: `obj` is the free head (type invariant).
        self.head.set(unsafe { next_of(obj) });
        Some(Ptr(p))
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, _size: usize) {
        // SAFETY: `obj` came from `alloc` (caller), so it is an object of the arena, now free.
        unsafe { set_next(obj.0.as_ptr(), self.head.get()) };
        self.head.set(obj.0.as_ptr());
    }
}

/// A LIFO of free object addresses kept outside the objects: `slots[..len]` are free.
/// Invariant: `len <= slots.len()`, and every address in `slots[..len]` is a distinct free object
/// (so pushing a freed object never overflows when the stack can hold every object).
struct AddrStack {
    slots: Box<[Cell<Option<NonNull<u8>>>]>,
    len: Cell<usize>,
}

impl AddrStack {
    /// An empty stack with room for `capacity` addresses.
    fn with_capacity(capacity: usize) -> Self {
        Self { slots: (0..capacity).map(|_| Cell::new(None)).collect(), len: Cell::new(0) }
    }

    #[inline(always)]
    fn pop(&self) -> Option<NonNull<u8>> {
        let n = self.len.get().checked_sub(1)?;
        self.len.set(n);
        self.slots[n].get()
    }

    #[inline(always)]
    fn push(&self, obj: NonNull<u8>) {
        let n = self.len.get();
        self.slots[n].set(Some(obj));
        self.len.set(n + 1);
    }
}

/// `count` objects of `size` bytes with their free addresses kept in an [`AddrStack`] outside the
/// objects (the `batch64` floor with the links outside the objects). The arena is zeroed
/// (mapped) up front; the first pops return the objects in address order.
pub struct PtrStack {
    stack: AddrStack,
    _arena: Arena,
}

impl PtrStack {
    /// `count` free objects of `size` bytes.
    pub fn new(size: usize, count: usize) -> Self {
        let arena = Arena::new(size * count);
        let stack = AddrStack::with_capacity(count);
        for i in (0..count).rev() {
            stack.push(NonNull::new(arena.base().wrapping_add(i * size)).expect("arena object"));
        }
        Self { stack, _arena: arena }
    }
}

impl ObjAlloc for PtrStack {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<Ptr> {
        self.stack.pop().map(Ptr)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, _size: usize) {
        // INVARIANT: `obj` came from `alloc` (caller) and is freed once, so the stack has room.
        self.stack.push(obj.0);
    }
}

/// The kmalloc size classes (the kernel's and kmem's, up to `KMALLOC_MAX_CACHE_SIZE`).
pub const KMALLOC_CLASSES: [usize; 13] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];

/// Class index of `size` for sizes 1..=192, by table (the kernel's `kmalloc_size_index`).
const SMALL_INDEX: [u8; 24] = {
    let mut t = [0u8; 24];
    let mut i = 0;
    while i < 24 {
        let size = (i + 1) * 8;
        let mut c = 0;
        while KMALLOC_CLASSES[c] < size {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
};

/// The index in [`KMALLOC_CLASSES`] of the class serving `size` (1..=8192).
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    if size <= 192 {
        SMALL_INDEX[(size - 1) / 8] as usize
    } else {
        // 256 → 7, 512 → 8, …, 8192 → 12.
        (usize::BITS - (size - 1).leading_zeros()) as usize - 1
    }
}

/// One bump area per kmalloc class, where the class floors cut objects never handed out.
/// Invariant: `bump[c]` is inside area `c` or at its end.
struct ClassAreas {
    bump: [Cell<usize>; 13],
    ends: [usize; 13],
    _areas: Vec<Arena>,
}

impl ClassAreas {
    /// Room for `per_class` objects of each class (reserved lazily: untouched pages cost nothing).
    fn new(per_class: usize) -> Self {
        let areas: Vec<Arena> = KMALLOC_CLASSES.iter().map(|&c| Arena::lazy(c * per_class)).collect();
        let bump: [Cell<usize>; 13] = std::array::from_fn(|c| Cell::new(areas[c].base() as usize));
        let ends = std::array::from_fn(|c| areas[c].base() as usize + KMALLOC_CLASSES[c] * per_class);
        Self { bump, ends, _areas: areas }
    }

    /// A fresh object of class `c`, or `None` when its area is used up.
    #[inline(always)]
    fn cut(&self, c: usize) -> Option<Ptr> {
        let b = self.bump[c].get();
        if b + KMALLOC_CLASSES[c] > self.ends[c] {
            return None;
        }
        self.bump[c].set(b + KMALLOC_CLASSES[c]);
        NonNull::new(b as *mut u8).map(Ptr)
    }
}

/// One free list per kmalloc class; an empty list takes a fresh object from its class's bump
/// area. Invariant: every list holds only free objects of its class's area.
pub struct ClassLists {
    heads: [Cell<*mut u8>; 13],
    areas: ClassAreas,
}

impl ClassLists {
    /// Room for `per_class` objects of each class (reserved lazily: untouched pages cost nothing).
    pub fn new(per_class: usize) -> Self {
        Self { heads: std::array::from_fn(|_| Cell::new(ptr::null_mut())), areas: ClassAreas::new(per_class) }
    }
}

impl ObjAlloc for ClassLists {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<Ptr> {
        let c = class_of(size);
        let obj = self.heads[c].get();
        if let Some(p) = NonNull::new(obj) {
            // SAFETY: a free object of class `c` (type invariant).
            self.heads[c].set(unsafe { next_of(obj) });
            return Some(Ptr(p));
        }
        self.areas.cut(c)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, size: usize) {
        let c = class_of(size);
        // SAFETY: `obj` came from `alloc(size)` (caller): an object of class `c`, now free.
        unsafe { set_next(obj.0.as_ptr(), self.heads[c].get()) };
        self.heads[c].set(obj.0.as_ptr());
    }
}

/// One [`AddrStack`] of free addresses per kmalloc class (links outside the objects); an empty
/// stack takes a fresh object from its class's bump area. Invariant: every stack holds only
/// free objects of its class's area and has room for all of them.
pub struct ClassStacks {
    stacks: [AddrStack; 13],
    areas: ClassAreas,
}

impl ClassStacks {
    /// Room for `per_class` objects of each class (reserved lazily, as [`ClassLists`]).
    pub fn new(per_class: usize) -> Self {
        let stacks = std::array::from_fn(|_| AddrStack::with_capacity(per_class));
        Self { stacks, areas: ClassAreas::new(per_class) }
    }
}

impl ObjAlloc for ClassStacks {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, size: usize) -> Option<Ptr> {
        let c = class_of(size);
        if let Some(p) = self.stacks[c].pop() {
            return Some(Ptr(p));
        }
        self.areas.cut(c)
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, size: usize) {
        // INVARIANT: `obj` came from `alloc(size)` (caller): an object of class `c`, freed once.
        self.stacks[class_of(size)].push(obj.0);
    }
}

/// Objects a thread's list collects before [`HandoffEnd::free`] hands them to the other thread.
pub const HANDOFF_BATCH: usize = 128;

/// The objects of a two-thread floor's arena that were never handed out: `count` objects of
/// `size` bytes, cut in index order by either end. Invariant: `bump` only grows, and is
/// `count` once every object was cut.
struct Fresh {
    arena: Arena,
    size: usize,
    count: usize,
    /// Objects never handed out yet: `arena + bump * size` onward.
    bump: AtomicUsize,
}

impl Fresh {
    fn new(size: usize, count: usize) -> Self {
        assert!(size >= 8 && size.is_multiple_of(8));
        Self { arena: Arena::new(size * count), size, count, bump: AtomicUsize::new(0) }
    }

    /// The indices of up to `n` objects never handed out, or `None` (after a yield: the other
    /// end holds every object) when none is left.
    fn cut(&self, n: usize) -> Option<std::ops::Range<usize>> {
        let i = self.bump.fetch_add(n, Ordering::Relaxed);
        if i < self.count {
            return Some(i..(i + n).min(self.count));
        }
        self.bump.store(self.count, Ordering::Relaxed);
        std::thread::yield_now();
        None
    }

    /// Object `i` of the arena.
    fn at(&self, i: usize) -> *mut u8 {
        self.arena.base().wrapping_add(i * self.size)
    }
}

/// What the two ends of a hand-off floor share.
struct Shared {
    fresh: Fresh,
    /// A chain of free objects handed over by one end, or null.
    mailbox: AtomicPtr<u8>,
}

/// One thread's end of the two-thread floor ([`handoff_pair`]). Invariant: `head` is null or a
/// free object of the shared arena, linked to `count` objects in all.
pub struct HandoffEnd {
    head: Cell<*mut u8>,
    count: Cell<usize>,
    shared: Arc<Shared>,
}

// SAFETY: an end is used by one thread at a time; its list's objects belong to that end alone
// until it publishes them through the atomic mailbox (release/acquire).
unsafe impl Send for HandoffEnd {}

/// The two-thread floor over `count` objects of `size` bytes: each end pops and pushes its own
/// list; an end that has collected [`HANDOFF_BATCH`] freed objects hands its list to the mailbox
/// if it is empty; an end whose list is empty takes the mailbox, or cuts a fresh object.
pub fn handoff_pair(size: usize, count: usize) -> (HandoffEnd, HandoffEnd) {
    let shared = Arc::new(Shared { fresh: Fresh::new(size, count), mailbox: AtomicPtr::new(ptr::null_mut()) });
    let end = || HandoffEnd { head: Cell::new(ptr::null_mut()), count: Cell::new(0), shared: Arc::clone(&shared) };
    (end(), end())
}

impl ObjAlloc for HandoffEnd {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<Ptr> {
        loop {
            let obj = self.head.get();
            if let Some(p) = NonNull::new(obj) {
                // SAFETY: our free head (type invariant).
                self.head.set(unsafe { next_of(obj) });
                self.count.set(self.count.get().saturating_sub(1));
                return Some(Ptr(p));
            }
            self.refill();
        }
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, _size: usize) {
        // SAFETY: an object of the arena (caller), now free and ours.
        unsafe { set_next(obj.0.as_ptr(), self.head.get()) };
        self.head.set(obj.0.as_ptr());
        let n = self.count.get() + 1;
        self.count.set(n);
        if n >= HANDOFF_BATCH {
            self.publish();
        }
    }
}

impl HandoffEnd {
    /// Takes the mailbox's chain, or cuts a fresh object, waiting for the other end if neither.
    #[cold]
    #[inline(never)]
    fn refill(&self) {
        let s = &*self.shared;
        loop {
            let chain = s.mailbox.swap(ptr::null_mut(), Ordering::Acquire);
            if !chain.is_null() {
                self.head.set(chain);
                // The exact length is not needed: it only delays the next publish.
                self.count.set(0);
                return;
            }
            if let Some(cut) = s.fresh.cut(1) {
                let obj = s.fresh.at(cut.start);
                // SAFETY: a never-used object of the arena.
                unsafe { set_next(obj, ptr::null_mut()) };
                self.head.set(obj);
                return;
            }
        }
    }

    /// Hands the whole list to the other end if the mailbox is empty.
    #[cold]
    #[inline(never)]
    fn publish(&self) {
        let s = &*self.shared;
        let head = self.head.get();
        if s.mailbox.compare_exchange(ptr::null_mut(), head, Ordering::Release, Ordering::Relaxed).is_ok() {
            self.head.set(ptr::null_mut());
            self.count.set(0);
        }
    }
}

/// A batch of free addresses handed between the ends of [`stack_handoff_pair`] (boxed, so one
/// pointer in an atomic carries it).
struct AddrBatch(Vec<NonNull<u8>>);

/// What the two ends of [`stack_handoff_pair`] share. Invariant: `full` and `spare` are null or
/// own a `Box<AddrBatch>` (made by `Box::into_raw`); `full`'s addresses are free objects of the
/// arena, `spare`'s batch is empty.
struct StackShared {
    fresh: Fresh,
    /// A batch of freed objects handed over by one end, or null.
    full: AtomicPtr<AddrBatch>,
    /// An emptied batch on its way back to the end that fills batches, or null.
    spare: AtomicPtr<AddrBatch>,
}

impl Drop for StackShared {
    fn drop(&mut self) {
        for slot in [&mut self.full, &mut self.spare] {
            let p = *slot.get_mut();
            if !p.is_null() {
                // SAFETY: a non-null slot owns a box from `Box::into_raw` (type invariant).
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

/// One thread's end of [`stack_handoff_pair`]. Invariant: `stack` holds distinct free objects of
/// the shared arena, owned by this end.
pub struct StackHandoffEnd {
    stack: std::cell::UnsafeCell<Vec<NonNull<u8>>>,
    shared: Arc<StackShared>,
}

// SAFETY: an end is used by one thread at a time; its stack's objects belong to that end alone
// until it publishes them through the atomic `full` slot (release/acquire).
unsafe impl Send for StackHandoffEnd {}

/// The two-thread floor with the links outside the objects, over `count` objects of `size`
/// bytes: each end pops and pushes its own array of free addresses; an end whose array reaches
/// [`HANDOFF_BATCH`] hands the whole array over (one compare-exchange) if the `full` slot is
/// empty, an end whose array is empty takes it (one swap) and sends its empty array back, or
/// cuts [`HANDOFF_BATCH`] fresh objects. No per-object atomic, and no object is ever touched.
pub fn stack_handoff_pair(size: usize, count: usize) -> (StackHandoffEnd, StackHandoffEnd) {
    let shared = Arc::new(StackShared {
        fresh: Fresh::new(size, count),
        full: AtomicPtr::new(ptr::null_mut()),
        spare: AtomicPtr::new(ptr::null_mut()),
    });
    let end = || StackHandoffEnd {
        stack: std::cell::UnsafeCell::new(Vec::with_capacity(2 * HANDOFF_BATCH)),
        shared: Arc::clone(&shared),
    };
    (end(), end())
}

impl ObjAlloc for StackHandoffEnd {
    type Obj = Ptr;

    #[inline(always)]
    fn alloc(&self, _size: usize) -> Option<Ptr> {
        loop {
            // SAFETY: the end is used by one thread and no reference into the cell outlives this.
            if let Some(p) = unsafe { (*self.stack.get()).pop() } {
                return Some(Ptr(p));
            }
            self.refill();
        }
    }

    #[inline(always)]
    unsafe fn free(&self, obj: Ptr, _size: usize) {
        // SAFETY: as in `alloc`. INVARIANT: `obj` is an object of the arena (caller), now ours.
        let stack = unsafe { &mut *self.stack.get() };
        stack.push(obj.0);
        if stack.len() >= HANDOFF_BATCH && self.shared.full.load(Ordering::Relaxed).is_null() {
            self.publish();
        }
    }
}

impl StackHandoffEnd {
    /// Takes the `full` batch, or cuts fresh objects, waiting for the other end if neither.
    #[cold]
    #[inline(never)]
    fn refill(&self) {
        let s = &*self.shared;
        // SAFETY: the end is used by one thread and no other reference into the cell is live.
        let stack = unsafe { &mut *self.stack.get() };
        loop {
            let full = s.full.swap(ptr::null_mut(), Ordering::Acquire);
            if !full.is_null() {
                // SAFETY: a non-null `full` owns a box (type invariant), now ours.
                let mut batch = unsafe { Box::from_raw(full) };
                // Our empty array goes back in the box.
                std::mem::swap(stack, &mut batch.0);
                s.give_spare(batch);
                return;
            }
            if let Some(cut) = s.fresh.cut(HANDOFF_BATCH) {
                for k in cut.rev() {
                    stack.push(NonNull::new(s.fresh.at(k)).expect("arena object"));
                }
                return;
            }
        }
    }

    /// Hands the whole array to the other end if the `full` slot is empty.
    #[cold]
    #[inline(never)]
    fn publish(&self) {
        let s = &*self.shared;
        // SAFETY: as in `refill`.
        let stack = unsafe { &mut *self.stack.get() };
        let spare = s.spare.swap(ptr::null_mut(), Ordering::Acquire);
        let mut batch = if spare.is_null() {
            Box::new(AddrBatch(Vec::with_capacity(2 * HANDOFF_BATCH)))
        } else {
            // SAFETY: a non-null `spare` owns a box (type invariant), now ours.
            unsafe { Box::from_raw(spare) }
        };
        std::mem::swap(stack, &mut batch.0);
        let out = Box::into_raw(batch);
        if s.full.compare_exchange(ptr::null_mut(), out, Ordering::Release, Ordering::Relaxed).is_err() {
            // SAFETY: `out` came from `Box::into_raw` just above and was not published.
            let mut batch = unsafe { Box::from_raw(out) };
            std::mem::swap(stack, &mut batch.0);
            s.give_spare(batch);
        }
    }
}

impl StackShared {
    /// Offers an emptied batch as the `spare` (dropped if a spare is already there).
    fn give_spare(&self, batch: Box<AddrBatch>) {
        let back = Box::into_raw(batch);
        if self.spare.compare_exchange(ptr::null_mut(), back, Ordering::Release, Ordering::Relaxed).is_err() {
            // SAFETY: `back` came from `Box::into_raw` just above and was not published.
            drop(unsafe { Box::from_raw(back) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_every_index_once_then_reuses_the_last_freed() {
        let mut f = FreeList::new(3);
        let got: Vec<u32> = (0..3).filter_map(|_| f.alloc(0)).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(f.alloc(0), None);
        // SAFETY: 1 came from `alloc` and is freed once.
        unsafe { f.free(1, 0) };
        assert_eq!(f.alloc(0), Some(1));
    }

    /// A three-object arena of 64-byte objects: hands out adjacent objects, runs dry, and after
    /// the frees gives the last freed one back first.
    fn assert_lifo_and_runs_dry(f: &impl ObjAlloc<Obj = Ptr>) {
        let a: Vec<Ptr> = (0..3).map(|_| f.alloc(64).expect("obj")).collect();
        assert!(f.alloc(64).is_none());
        assert_eq!(a[1].0.as_ptr() as usize - a[0].0.as_ptr() as usize, 64);
        let last = a[2];
        for p in a {
            // SAFETY: each came from `alloc` and is freed once.
            unsafe { f.free(p, 64) };
        }
        assert_eq!(f.alloc(64), Some(last));
    }

    /// A per-class floor: objects of one class are adjacent in it, and a freed object comes
    /// back for another size of the same class.
    fn assert_classes_share_by_class(f: &impl ObjAlloc<Obj = Ptr>) {
        let a = f.alloc(100).expect("obj");
        let b = f.alloc(100).expect("obj");
        assert_eq!(b.0.as_ptr() as usize - a.0.as_ptr() as usize, 128);
        // SAFETY: freed once, with the size it was allocated with.
        unsafe { f.free(a, 100) };
        assert_eq!(f.alloc(128).map(|p| p.0), Some(a.0));
    }

    #[test]
    fn obj_free_list_is_lifo_and_runs_dry() {
        assert_lifo_and_runs_dry(&ObjFreeList::new(64, 3));
    }

    #[test]
    fn class_lookup_matches_the_kmalloc_classes() {
        for size in 1..=8192usize {
            let c = class_of(size);
            assert!(KMALLOC_CLASSES[c] >= size, "size {size}");
            assert!(c == 0 || KMALLOC_CLASSES[c - 1] < size, "size {size}");
        }
        assert_classes_share_by_class(&ClassLists::new(4));
    }

    #[test]
    fn pointer_stacks_are_lifo_and_keep_classes_apart() {
        assert_lifo_and_runs_dry(&PtrStack::new(64, 3));

        let stacks = ClassStacks::new(4);
        let a = stacks.alloc(100).expect("obj");
        let b = stacks.alloc(100).expect("obj");
        assert_eq!(b.0.as_ptr() as usize - a.0.as_ptr() as usize, 128);
        let small = stacks.alloc(8).expect("obj");
        // SAFETY: each freed once, with the size it was allocated with.
        unsafe { stacks.free(a, 100) };
        unsafe { stacks.free(small, 8) };
        assert_eq!(stacks.alloc(128).map(|p| p.0), Some(a.0));
        assert_eq!(stacks.alloc(8).map(|p| p.0), Some(small.0));
    }

    #[test]
    fn stack_handoff_moves_objects_between_ends() {
        let (p, c) = stack_handoff_pair(64, 4 * HANDOFF_BATCH);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10 {
            let objs: Vec<Ptr> = (0..HANDOFF_BATCH).map(|_| p.alloc(64).expect("obj")).collect();
            for o in objs {
                seen.insert(o.0.as_ptr() as usize);
                // SAFETY: each object is freed once (by the other end, as in prodcons).
                unsafe { c.free(o, 64) };
            }
        }
        // Ten batches went through an arena of four: the freed arrays came back.
        assert!(p.shared.fresh.bump.load(Ordering::Relaxed) <= 4 * HANDOFF_BATCH);
        assert!(seen.len() <= 4 * HANDOFF_BATCH);
    }

    #[test]
    fn handoff_moves_objects_between_ends() {
        let (p, c) = handoff_pair(64, 4 * HANDOFF_BATCH);
        for _ in 0..10 {
            let objs: Vec<Ptr> = (0..HANDOFF_BATCH).map(|_| p.alloc(64).expect("obj")).collect();
            for o in objs {
                // SAFETY: each object is freed once (by the other end, as in prodcons).
                unsafe { c.free(o, 64) };
            }
        }
        // Ten batches went through an arena of four: the freed lists came back.
        assert!(p.shared.fresh.bump.load(Ordering::Relaxed) <= 4 * HANDOFF_BATCH);
    }
}
