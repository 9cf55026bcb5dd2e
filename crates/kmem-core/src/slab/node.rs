//! A cache's node (`struct kmem_cache_node`): the partial and full slab lists and the counts
//! `/proc/slabinfo` reports, all under the cache's node lock.
//!
//! Lists are doubly linked through the descriptors' `next`/`prev`, which hold descriptor
//! offsets (in 32-byte units from the direct-map base) so a descriptor stays 32 bytes.
//!
//! # Invariants (checked by `Node::check`)
//! - Every slab of the cache is on exactly one list: `partial` if its freelist is non-empty
//!   (`inuse < objects`), `full` otherwise.
//! - `nr_slabs` = both lists' lengths; `total_objects` = the sum of `objects`; `partial_free`
//!   = the sum of `objects - inuse` over partial slabs = the objects on slab freelists.
//! - Empty slabs (`inuse == 0`) are on `partial`; frees keep at most `min_partial` partial
//!   slabs when one becomes empty (SL-14); shrink frees them all (SL-13).

use core::ptr;

use super::cache::Cache;
use super::desc::{DESC_SHIFT, NIL_PFN, Slab};

/// One list of slabs.
#[derive(Clone, Copy)]
pub(crate) struct SlabList {
    head: u32,
    tail: u32,
    pub(crate) len: usize,
}

impl SlabList {
    const fn new() -> Self {
        Self { head: NIL_PFN, tail: NIL_PFN, len: 0 }
    }
}

/// Which list a slab is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Which {
    Partial,
    Full,
}

/// Whether a slab holding `objects` objects, of a cache whose preferred-order slabs hold
/// `per_slab`, was made at the minimum order (`allocate_slab`'s fallback): it holds fewer.
pub(crate) const fn made_at_fallback(objects: usize, per_slab: usize) -> bool {
    objects < per_slab
}

/// The node state of one cache.
pub(crate) struct Node {
    /// Direct-map base address (descriptor offsets are relative to it).
    dm: usize,
    pub(crate) partial: SlabList,
    pub(crate) full: SlabList,
    pub(crate) nr_slabs: usize,
    /// Slabs made at the cache's minimum order (`allocate_slab`'s fallback): they hold fewer
    /// than `per_slab` objects, which is how they are told apart.
    pub(crate) fallback_slabs: usize,
    /// Objects of a slab of the cache's preferred order (`s->oo`).
    per_slab: usize,
    pub(crate) total_objects: usize,
    pub(crate) partial_free: usize,
}

// SAFETY: The node is only reached through its cache's lock; its links name descriptors that
// belong to the cache while they are on a list.
unsafe impl Send for Node {}

impl Node {
    /// The node of a cache whose preferred-order slabs hold `per_slab` objects.
    pub(crate) const fn new(dm: usize, per_slab: usize) -> Self {
        Self {
            dm,
            partial: SlabList::new(),
            full: SlabList::new(),
            nr_slabs: 0,
            fallback_slabs: 0,
            per_slab,
            total_objects: 0,
            partial_free: 0,
        }
    }

    /// Whether a slab of `objects` objects was made at the minimum order.
    fn is_fallback(&self, objects: usize) -> bool {
        made_at_fallback(objects, self.per_slab)
    }

    /// The pages of the node's slabs, each at the order it was made at (`order` preferred,
    /// `min_order` for fallback slabs), as the kernel accounts them (`account_slab`).
    pub(crate) fn slab_pages(&self, order: u32, min_order: u32) -> usize {
        ((self.nr_slabs - self.fallback_slabs) << order) + (self.fallback_slabs << min_order)
    }

    /// The descriptor offset stored in links and in the head page.
    pub(crate) fn offset_of(dm: usize, slab: *mut Slab) -> u32 {
        ((slab as usize - dm) >> DESC_SHIFT) as u32
    }

    /// The descriptor at link value `off`.
    pub(crate) fn at(dm: usize, off: u32) -> *mut Slab {
        (dm + ((off as usize) << DESC_SHIFT)) as *mut Slab
    }

    fn list(&mut self, which: Which) -> &mut SlabList {
        match which {
            Which::Partial => &mut self.partial,
            Which::Full => &mut self.full,
        }
    }

    /// The first slab of a list.
    pub(crate) fn first(&self, which: Which) -> Option<*mut Slab> {
        let head = match which {
            Which::Partial => self.partial.head,
            Which::Full => self.full.head,
        };
        (head != NIL_PFN).then(|| Self::at(self.dm, head))
    }

    /// The slab after `slab` on its list.
    ///
    /// # Safety
    /// `slab` must be on one of this node's lists.
    pub(crate) unsafe fn next_of(&self, slab: *mut Slab) -> Option<*mut Slab> {
        // SAFETY: The caller says the descriptor is on our list, which we hold.
        let next = unsafe { (*slab).next };
        (next != NIL_PFN).then(|| Self::at(self.dm, next))
    }

    /// Links `slab` at the head or tail of a list.
    ///
    /// # Safety
    /// `slab` must be a live descriptor of this cache on no list.
    pub(crate) unsafe fn push(&mut self, which: Which, slab: *mut Slab, at_tail: bool) {
        let dm = self.dm;
        let me = Self::offset_of(dm, slab);
        let list = self.list(which);
        // SAFETY: The caller owns `slab`; the neighbours are on our list.
        unsafe {
            if at_tail {
                (*slab).next = NIL_PFN;
                (*slab).prev = list.tail;
                if list.tail == NIL_PFN {
                    list.head = me;
                } else {
                    (*Self::at(dm, list.tail)).next = me;
                }
                list.tail = me;
            } else {
                (*slab).prev = NIL_PFN;
                (*slab).next = list.head;
                if list.head == NIL_PFN {
                    list.tail = me;
                } else {
                    (*Self::at(dm, list.head)).prev = me;
                }
                list.head = me;
            }
        }
        list.len += 1;
    }

    /// Unlinks `slab` from a list.
    ///
    /// # Safety
    /// `slab` must be on that list of this node.
    pub(crate) unsafe fn unlink(&mut self, which: Which, slab: *mut Slab) {
        let dm = self.dm;
        let list = self.list(which);
        // SAFETY: The slab and its neighbours are on our list.
        unsafe {
            let (next, prev) = ((*slab).next, (*slab).prev);
            if prev == NIL_PFN {
                list.head = next;
            } else {
                (*Self::at(dm, prev)).next = next;
            }
            if next == NIL_PFN {
                list.tail = prev;
            } else {
                (*Self::at(dm, next)).prev = prev;
            }
            (*slab).next = NIL_PFN;
            (*slab).prev = NIL_PFN;
        }
        list.len -= 1;
    }

    /// Adds a new slab (all objects on its freelist) to the head of the partial list.
    ///
    /// # Safety
    /// `slab` must be a fresh descriptor of this cache, on no list.
    pub(crate) unsafe fn add_new(&mut self, slab: *mut Slab) {
        // SAFETY: Fresh slab, ours.
        let objects = unsafe { (*slab).objects as usize };
        // SAFETY: As above.
        unsafe { self.push(Which::Partial, slab, false) };
        self.nr_slabs += 1;
        self.fallback_slabs += usize::from(self.is_fallback(objects));
        self.total_objects += objects;
        self.partial_free += objects;
    }

    /// Takes up to `out.len()` free objects from partial slabs (head first), returning how
    /// many (`out[..n]` are then initialised); slabs that run out move to the full list.
    ///
    /// # Safety
    /// `cache` must own this node.
    pub(crate) unsafe fn take(&mut self, cache: &Cache, out: &mut [core::mem::MaybeUninit<*mut u8>]) -> usize {
        let mut n = 0;
        // Read once: the writes through slab pointers below could alias it for the compiler.
        let wipe = cache.init_on_free;
        while n < out.len() {
            let Some(slab) = self.first(Which::Partial) else { break };
            // SAFETY: Partial slabs have a non-empty freelist of objects we own under the lock.
            unsafe {
                while n < out.len() && !(*slab).freelist.is_null() {
                    let obj = (*slab).freelist;
                    (*slab).freelist = cache.get_freepointer(obj);
                    if wipe {
                        // `maybe_wipe_obj_freeptr`: the object was zeroed when freed, but then
                        // carried the free pointer on the slab's freelist.
                        cache.wipe_freepointer(obj);
                    }
                    (*slab).inuse += 1;
                    out[n].write(obj);
                    n += 1;
                }
                if (*slab).freelist.is_null() {
                    self.unlink(Which::Partial, slab);
                    self.push(Which::Full, slab, false);
                }
            }
        }
        self.partial_free -= n;
        n
    }

    /// Puts `obj` back on `slab`'s freelist. Returns true if the slab became empty and the
    /// node already keeps `min_partial` partial slabs: the caller must then [`Node::remove`] it
    /// and free it (`discard_slab`).
    ///
    /// # Safety
    /// `slab` must be a slab of this node holding `obj` as an object that is out.
    pub(crate) unsafe fn put(&mut self, cache: &Cache, slab: *mut Slab, obj: *mut u8) -> bool {
        // SAFETY: The caller vouches for `slab` and `obj`; the lock is ours.
        unsafe {
            let was_full = (*slab).freelist.is_null();
            cache.set_freepointer(obj, (*slab).freelist);
            (*slab).freelist = obj;
            (*slab).inuse -= 1;
            self.partial_free += 1;
            if was_full {
                self.unlink(Which::Full, slab);
                // Kernel: a slab that was full goes to the tail of the partial list.
                self.push(Which::Partial, slab, true);
            }
            (*slab).inuse == 0 && self.partial.len >= cache.min_partial
        }
    }

    /// Unlinks an empty partial slab that the caller will free.
    ///
    /// # Safety
    /// `slab` must be an empty slab on this node's partial list.
    pub(crate) unsafe fn remove(&mut self, slab: *mut Slab) {
        // SAFETY: As promised by the caller.
        let objects = unsafe {
            debug_assert_eq!((*slab).inuse, 0);
            self.unlink(Which::Partial, slab);
            (*slab).objects as usize
        };
        self.nr_slabs -= 1;
        self.fallback_slabs -= usize::from(self.is_fallback(objects));
        self.total_objects -= objects;
        self.partial_free -= objects;
    }

    /// Unlinks every empty partial slab into a chain (through `next`) for the caller to free;
    /// keeps `keep` of them. Returns the chain's head (null: none).
    pub(crate) fn take_empty(&mut self, keep: usize) -> *mut Slab {
        let mut chain: *mut Slab = ptr::null_mut();
        let mut kept = 0;
        let mut cur = self.first(Which::Partial);
        while let Some(slab) = cur {
            // SAFETY: `slab` is on our partial list; we read its successor before unlinking it.
            unsafe {
                cur = self.next_of(slab);
                if (*slab).inuse == 0 {
                    if kept < keep {
                        kept += 1;
                        continue;
                    }
                    self.remove(slab);
                    (*slab).next = if chain.is_null() { NIL_PFN } else { Self::offset_of(self.dm, chain) };
                    chain = slab;
                }
            }
        }
        chain
    }

    /// The next slab of a chain made by [`Node::take_empty`].
    ///
    /// # Safety
    /// `slab` must be on such a chain.
    pub(crate) unsafe fn chain_next(dm: usize, slab: *mut Slab) -> *mut Slab {
        // SAFETY: As promised.
        let next = unsafe { (*slab).next };
        if next == NIL_PFN { ptr::null_mut() } else { Self::at(dm, next) }
    }

    /// Checks the invariants of the module docs; returns a description of the first broken one.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let mut slabs = 0;
        let mut fallback = 0;
        let mut objects = 0;
        let mut free = 0;
        for which in [Which::Partial, Which::Full] {
            let mut len = 0;
            let mut cur = self.first(which);
            while let Some(slab) = cur {
                // SAFETY: Every descriptor on our lists is live while the lock is held.
                let (inuse, objs, fl) = unsafe { ((*slab).inuse as usize, (*slab).objects as usize, (*slab).freelist) };
                if inuse > objs {
                    return Err("slab inuse above objects");
                }
                if (which == Which::Full) != fl.is_null() || (inuse == objs) != fl.is_null() {
                    return Err("slab on the wrong list for its freelist");
                }
                if which == Which::Partial {
                    free += objs - inuse;
                }
                slabs += 1;
                fallback += usize::from(self.is_fallback(objs));
                objects += objs;
                len += 1;
                // SAFETY: As above.
                cur = unsafe { self.next_of(slab) };
            }
            let expect = match which {
                Which::Partial => self.partial.len,
                Which::Full => self.full.len,
            };
            if len != expect {
                return Err("list length does not match its count");
            }
        }
        if slabs != self.nr_slabs
            || fallback != self.fallback_slabs
            || objects != self.total_objects
            || free != self.partial_free
        {
            return Err("node counters do not match the lists");
        }
        Ok(())
    }
}
