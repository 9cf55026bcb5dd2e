//! Checking a [`CacheRef`] before it is followed.
//!
//! A `CacheRef` is the kernel's `struct kmem_cache *`: a plain pointer, copyable, with no
//! lifetime. The safe operations that take one (`kmem_cache_alloc` and kin, `kmem_cache_shrink`,
//! `cache_info`) must not trust it: it may name a cache of another machine, a cache whose
//! machine is gone, or a cache already destroyed. Each of them first asks [`Kmem::cache`],
//! which decides from this machine's page array alone, without reading the pointed-to memory:
//!
//! * the address lies in this machine's direct map, at the start of a page (a cache's structure
//!   is the first thing in the block `kmem_cache_create` allocates for it), and
//! * that page carries [`pg::CACHE`], set when the cache is published on the cache list and
//!   cleared, under the list lock, when its last reference is destroyed (before its memory can
//!   go back).
//!
//! Invariant: a direct-map page with `PG_CACHE` holds a live, fully initialised [`Cache`] at
//! its first byte. So a `CacheRef` that passes is safe to follow, whatever its history: a
//! stale one whose page now holds another live cache of this machine simply names that cache.
//! The check is four loads and compares, and reads only atomics of the page array.
//!
//! What the check cannot see is a destroy racing with a use of the same cache: `kmem_cache_destroy`
//! is `unsafe` for that reason, and its caller promises no one uses the cache during or after
//! the call that drops the last reference.

use super::cache::{Cache, CacheRef};
use crate::kmem::Kmem;
use core::panic::Location;
use core::sync::atomic::Ordering::Acquire;

use crate::memmap::{Page, pg};
use crate::order::{PAGE_SHIFT, PAGE_SIZE};

/// `size_of::<Page>()` is `1 << PAGE_ENTRY_SHIFT`.
const PAGE_ENTRY_SHIFT: u32 = 4;
const _: () = assert!(size_of::<Page>() == 1 << PAGE_ENTRY_SHIFT);
use crate::platform::{Level, Platform};

impl<P: Platform> Kmem<P> {
    /// The cache `cache` names, if it is a live cache of this machine (see the module docs):
    /// its name, sizes and counters. The reference is valid until the cache's last destroy.
    #[must_use]
    #[inline(always)]
    pub fn cache(&self, cache: CacheRef) -> Option<&Cache> {
        let off = (cache.as_ptr() as usize).wrapping_sub(self.slabs.dm);
        if off >= self.slabs.dm_bytes || off & (PAGE_SIZE - 1) != 0 {
            return None;
        }
        // Page-aligned: `off >> PAGE_SHIFT` pages of 16-byte entries is `off >> (PAGE_SHIFT - 4)`.
        let entry = self.slabs.dm_pages + (off >> (PAGE_SHIFT - PAGE_ENTRY_SHIFT));
        // SAFETY: `off` is inside the direct map, whose pages all have entries in the page
        // array from `dm_pages` on (set up with `dm` in `Kmem::new`).
        let page = unsafe { &*(entry as *const Page) };
        if page.info.load(Acquire) & pg::CACHE == 0 {
            return None;
        }
        // SAFETY: A direct-map page with `PG_CACHE` holds a live cache at its first byte (module
        // invariant); the `Acquire` pairs with the `Release` that published the mark after the
        // cache was written.
        Some(unsafe { cache.0.as_ref() })
    }

    /// `kmem_cache_size`: the object size of `cache` (the largest of merged aliases); a handle
    /// that is not a live cache of this machine is reported and gives 0.
    #[track_caller]
    pub fn kmem_cache_size(&self, cache: CacheRef) -> usize {
        self.checked_cache(cache, "kmem_cache_size", Location::caller()).map_or(0, Cache::object_size)
    }

    /// Whether `cache` names a live slab cache of this machine: one `kmem_cache_create` made
    /// here and no `kmem_cache_destroy` has dropped the last reference of.
    #[must_use]
    pub fn is_live_cache(&self, cache: CacheRef) -> bool {
        self.cache(cache).is_some()
    }

    /// [`Kmem::cache`], reporting a handle that fails it: `export` was called with a
    /// `struct kmem_cache *` that is not one of this machine's live caches.
    #[inline(always)]
    pub(crate) fn checked_cache(&self, cache: CacheRef, export: &str, caller: &Location<'_>) -> Option<&Cache> {
        let found = self.cache(cache);
        if found.is_none() {
            self.report_not_cache(cache, export, caller);
        }
        found
    }

    /// The report for a `CacheRef` that is not a live cache of this machine. The kernel would
    /// oops on the stray pointer; kmem prints where it would have faulted and does nothing.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_not_cache(&self, cache: CacheRef, export: &str, caller: &Location<'_>) {
        self.count_slab_report();
        self.platform().log(
            Level::Alert,
            format_args!(
                "BUG: unable to handle page fault for address: {:016x}\nkmem: {export}() called with a struct kmem_cache pointer that is not a live cache of this machine (another machine's, or destroyed); ignored",
                cache.as_ptr() as usize
            ),
        );
        self.platform().dump_stack(caller);
    }

    /// Marks the page holding the newly made `cache` (fully written) as a live cache's:
    /// from now on [`Kmem::cache`] accepts it.
    pub(crate) fn publish_cache_mark(&self, cache: *const Cache) {
        if let Some(pfn) = self.virt_to_pfn(cache.cast()) {
            self.memmap().page(pfn).set_cache_mark(true);
        }
    }

    /// Clears the mark of a cache being unlinked: [`Kmem::cache`] refuses it from now on.
    pub(crate) fn retire_cache_mark(&self, cache: *const Cache) {
        if let Some(pfn) = self.virt_to_pfn(cache.cast()) {
            self.memmap().page(pfn).set_cache_mark(false);
        }
    }
}
