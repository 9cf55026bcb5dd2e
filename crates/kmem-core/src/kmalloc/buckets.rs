//! Dedicated kmalloc bucket sets (Linux 6.11+, `CONFIG_SLAB_BUCKETS`; SEMANTICS §3.1):
//! `kmem_buckets_create`, `kmem_buckets_alloc`, and kmem's `kmem_buckets_destroy`.
//! `kmem_buckets_valloc` (kvmalloc through a set) is `kmem::Machine`'s, next to `kvmalloc`.
//!
//! A [`KmemBuckets`] is the kernel's `kmem_buckets`: one slab cache per kmalloc size class,
//! named `<name>-<class>` (`msg-8` … `msg-96` … `msg-1k` … `msg-8k`), so that one subsystem's
//! variable-sized allocations never share slabs with anyone else's (a hardening against heap
//! spraying). `kmem_buckets_alloc(b, size, gfp)` is kmalloc with `b` in place of the kmalloc
//! caches; `kfree` and `ksize` take its objects as any slab object.
//!
//! What mm/slab_common.c does (6.11, with the 6.12-rc7 fix "mm/slab: fix warning caused by
//! duplicate kmem_cache creation in kmem_buckets_create"), and kmem with it:
//! - one cache for each class of the `KMALLOC_NORMAL` caches, in their index order (96, 192,
//!   8, 16, … 8k), with the caller's flags plus `SLAB_NO_MERGE` (never merged, either way),
//!   alignment 0 (no kmalloc natural alignment is asked for), and the caller's constructor;
//! - the usercopy window clamped per class: an offset at or past the class size gives no
//!   window, otherwise `min(size - useroffset, usersize)` bytes from the offset
//!   ([`bucket_usercopy`]);
//! - flags are not checked by the set itself: `kmem_cache_create` refuses what is not
//!   permitted (SL-2), so the first cache fails and the set with it;
//! - any failure (the name's `kasprintf`, a cache) is a `WARN_ON`; the caches made so far are
//!   destroyed and the result is NULL (here `Err`);
//! - there are no DMA, reclaimable or cgroup sets: with a non-NULL set `kmalloc_slab` ignores
//!   `kmalloc_type(gfp)`, so the type bits of `gfp` choose nothing;
//! - a NULL set (`None`) is the ordinary kmalloc caches; size 0 gives `ZERO_SIZE_PTR` and sizes
//!   above `KMALLOC_MAX_CACHE_SIZE` take pages exactly as kmalloc does (KM-2, KM-4, KM-5).
//!
//! kmem's choices where the kernel is silent or differs (docs/deviations.md): the set is a
//! value (an array of cache handles) instead of an object of the kernel's `kmalloc_buckets`
//! cache; and [`Kmem::kmem_buckets_destroy`] exists (mainline has no way to free a set:
//! Kees Cook's "slab: Introduce kmem_buckets_destroy()", 2024, was not merged), destroying each
//! cache as `kmem_cache_destroy` does, with its reports for objects still allocated.
//!
//! # Invariants
//! A `KmemBuckets` is made only here. Its entry `i` is a handle for exactly the created class
//! indices `KMALLOC_CACHE_INDICES`, naming a cache of object size `KMALLOC_INFO[i].size`;
//! the others (index 0) are `None`. So the entry that `kmalloc_index(size)` picks always holds
//! `size` bytes. A handle may outlive its cache (after a destroy, or on another machine), and
//! its memory may then hold another cache: every allocation checks that the handle is a live
//! cache whose objects hold `size` bytes ([`Kmem::bucket_cache_serves`]) before following it.

use core::fmt;
use core::panic::Location;
use core::ptr::NonNull;

use super::classes::{KMALLOC_CACHE_INDICES, KMALLOC_INFO, KmallocType, kmalloc_index};
use crate::AllocError;
use crate::gfp::{GFP_KERNEL, Gfp};
use crate::kmem::Kmem;
use crate::platform::{Level, Platform};
use crate::slab::flags::{SLAB_NO_MERGE, SlabFlags};
use crate::slab::{CacheArgs, CacheRef, CreateError, DestroyError, ObjFn};

/// Entries of a set: `KMALLOC_SHIFT_HIGH + 1`, the kernel's `kmem_buckets` array length.
pub const NR_BUCKETS: usize = super::classes::KMALLOC_SHIFT_HIGH as usize + 1;

const _: () = assert!(KMALLOC_CACHE_INDICES[KMALLOC_CACHE_INDICES.len() - 1] < NR_BUCKETS);

/// `kmem_buckets`: one cache per kmalloc size class (see the module docs). `#[repr(C)]` over
/// `Option<CacheRef>`s, it has the C layout of `struct kmem_cache *[KMALLOC_SHIFT_HIGH + 1]`
/// (NULL where no class is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct KmemBuckets {
    caches: [Option<CacheRef>; NR_BUCKETS],
}

impl KmemBuckets {
    /// The cache of class index `index` (`KMALLOC_INFO` numbering), if the set has one.
    pub fn cache(&self, index: usize) -> Option<CacheRef> {
        self.caches.get(index).copied().flatten()
    }

    /// The cache a `size`-byte request is served from (`kmalloc_slab` with this set); `None`
    /// for 0 and above `KMALLOC_MAX_CACHE_SIZE`.
    pub fn cache_for(&self, size: usize) -> Option<CacheRef> {
        kmalloc_index(size).and_then(|index| self.cache(index))
    }

    /// The set's caches, in class index order (96, 192, 8, … 8k).
    pub fn caches(&self) -> impl Iterator<Item = CacheRef> + '_ {
        self.caches.iter().filter_map(|c| *c)
    }
}

/// The usercopy window of the bucket cache of class `size`, from the set's `useroffset` and
/// `usersize`: none when the offset is at or past the class size, else the window from the
/// offset, cut to the class (`kmem_buckets_create`). A window of size 0 also drops its offset:
/// the kernel's `kmem_cache_create` would `WARN_ON(!usersize && useroffset)` and do the same.
pub const fn bucket_usercopy(size: usize, useroffset: usize, usersize: usize) -> (usize, usize) {
    if useroffset >= size {
        return (0, 0);
    }
    let len = if size - useroffset < usersize { size - useroffset } else { usersize };
    if len == 0 { (0, 0) } else { (useroffset, len) }
}

/// Why `kmem_buckets_create` returned NULL: the cache (of class `size`) that could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketsError {
    /// The class size whose cache (or its name) failed.
    pub size: usize,
    /// What failed; [`CreateError::NoMemory`] also when the name could not be allocated.
    pub error: CreateError,
}

impl fmt::Display for BucketsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bucket cache of size {}: {}", self.size, self.error)
    }
}

impl core::error::Error for BucketsError {}

/// The short size of class `index`, as in its kmalloc cache name and its bucket caches'
/// (`<name>-<class>`): `96`, `1k`, `8k`.
pub fn bucket_class_name(index: usize) -> &'static str {
    let name = KMALLOC_INFO[index].name(KmallocType::Normal);
    name.strip_prefix(KmallocType::Normal.prefix()).unwrap_or(name)
}

impl<P: Platform> Kmem<P> {
    /// `kmem_buckets_create(name, flags, useroffset, usersize, ctor)`: a cache for every
    /// kmalloc class, named `<name>-<class>`, never merged (see the module docs). Each failure
    /// is logged as the kernel logs it (`__kmem_cache_create_args(<name>-<class>) failed …`,
    /// then `kmem_buckets_create`'s `WARN_ON`), and the caches made so far are destroyed.
    ///
    /// # Errors
    /// [`BucketsError`]: flags outside the permitted set (SL-2), or no memory for a cache or
    /// its name.
    ///
    /// # Panics
    /// With `SLAB_PANIC`, when a cache cannot be made (as `kmem_cache_create` panics).
    #[track_caller]
    pub fn kmem_buckets_create(
        &self,
        name: &str,
        flags: SlabFlags,
        useroffset: usize,
        usersize: usize,
        ctor: Option<ObjFn>,
    ) -> Result<KmemBuckets, BucketsError> {
        self.buckets_create(name, flags, useroffset, usersize, ctor, true, Location::caller())
    }

    /// [`Kmem::kmem_buckets_create`] without its reports: nothing is logged and `SLAB_PANIC`
    /// does not panic, for a caller that reports a failure its own way (the C ABI, where
    /// `SLAB_PANIC` is the kernel's `panic()`). The caches made so far are still destroyed.
    ///
    /// # Errors
    /// As [`Kmem::kmem_buckets_create`].
    pub fn kmem_buckets_create_unreported(
        &self,
        name: &str,
        flags: SlabFlags,
        useroffset: usize,
        usersize: usize,
        ctor: Option<ObjFn>,
    ) -> Result<KmemBuckets, BucketsError> {
        self.buckets_create(name, flags, useroffset, usersize, ctor, false, Location::caller())
    }

    #[expect(clippy::too_many_arguments, reason = "the kernel's five arguments, plus how to report")]
    fn buckets_create(
        &self,
        name: &str,
        flags: SlabFlags,
        useroffset: usize,
        usersize: usize,
        ctor: Option<ObjFn>,
        report: bool,
        caller: &Location<'_>,
    ) -> Result<KmemBuckets, BucketsError> {
        let flags = flags.union(SLAB_NO_MERGE);
        let mut b = KmemBuckets { caches: [None; NR_BUCKETS] };
        for index in KMALLOC_CACHE_INDICES {
            let size = KMALLOC_INFO[index].size;
            let (useroffset, usersize) = bucket_usercopy(size, useroffset, usersize);
            let args = CacheArgs { useroffset, usersize, ctor, ..CacheArgs::default() };
            match self.create_bucket(name, index, &args, flags, report) {
                Ok(cache) => b.caches[index] = Some(cache),
                Err(error) => {
                    if report {
                        self.platform().log(
                            Level::Warning,
                            format_args!(
                                "WARNING: CPU: {} at {caller} kmem_buckets_create: WARN_ON(!(*b)[aligned_idx]): {name}-{} not created",
                                self.platform().cpu().unwrap_or(0),
                                bucket_class_name(index)
                            ),
                        );
                        self.platform().dump_stack(caller);
                    }
                    // The caches made so far are empty: each destroy frees it at once.
                    // SAFETY: Ours alone, never handed out, nothing allocated from them.
                    let _ = unsafe { self.kmem_buckets_destroy(&b) };
                    return Err(BucketsError { size, error });
                }
            }
        }
        Ok(b)
    }

    /// The cache of class `index` for the set `name`: its name is built in a kmalloc buffer
    /// (the kernel's `kasprintf(GFP_KERNEL, "%s-%s", …)`), given to `kmem_cache_create`
    /// (which copies it) and freed.
    fn create_bucket(
        &self,
        name: &str,
        index: usize,
        args: &CacheArgs,
        flags: SlabFlags,
        report: bool,
    ) -> Result<CacheRef, CreateError> {
        let short = bucket_class_name(index);
        let len = name.len() + 1 + short.len();
        let buf = self.kmalloc(len, GFP_KERNEL).map_err(|_| CreateError::NoMemory)?;
        // SAFETY: `buf` is a fresh kmalloc object of at least `len` bytes, ours until the
        // `kfree` below; the three parts fill it exactly.
        let cache_name = unsafe {
            let p = buf.as_ptr();
            p.copy_from_nonoverlapping(name.as_ptr(), name.len());
            p.add(name.len()).write(b'-');
            p.add(name.len() + 1).copy_from_nonoverlapping(short.as_ptr(), short.len());
            // Valid UTF-8: a `&str`, an ASCII byte and another `&str`, concatenated.
            core::str::from_utf8_unchecked(core::slice::from_raw_parts(p, len))
        };
        let size = KMALLOC_INFO[index].size;
        let made = if report {
            self.kmem_cache_create(cache_name, size, args, flags)
        } else {
            self.kmem_cache_create_unreported(cache_name, size, args, flags)
        };
        // SAFETY: Our buffer; the cache keeps a copy of the name, and `cache_name` is not used
        // after this.
        unsafe { self.kfree(buf.as_ptr()) };
        made
    }

    /// `kmem_buckets_alloc(b, size, gfp)`: kmalloc from the set `b`, or from the kmalloc
    /// caches when `b` is `None`. Size 0 is `ZERO_SIZE_PTR` (KM-2) and sizes above 8 KiB take
    /// whole pages, as kmalloc (KM-4, KM-5). The GFP type bits (`__GFP_DMA`,
    /// `__GFP_RECLAIMABLE`, `__GFP_ACCOUNT`) do not choose among caches when a set is given.
    ///
    /// A set whose cache is no longer live (destroyed, or another machine's) is reported
    /// (`BUG: unable to handle page fault …`) and gives `Err`.
    ///
    /// # Errors
    /// As [`Kmem::kmalloc`]; also for a set whose cache is not live.
    #[track_caller]
    #[inline]
    pub fn kmem_buckets_alloc(
        &self,
        b: Option<&KmemBuckets>,
        size: usize,
        gfp: Gfp,
    ) -> Result<NonNull<u8>, AllocError> {
        let caller = Location::caller();
        let Some(b) = b else { return self.kmalloc_at(size, gfp, caller) };
        // `__do_kmalloc_node`: large sizes and 0 first, as for kmalloc.
        let Some(cache) = b.cache_for(size) else { return self.kmalloc_at(size, gfp, caller) };
        if !self.bucket_cache_serves(cache, size) {
            self.report_not_cache(cache, "kmem_buckets_alloc", caller);
            return Err(AllocError);
        }
        self.slab_alloc_orig(cache.0, gfp, caller, size)
    }

    /// Whether `cache`, a set's entry for a `size`-byte request, may serve it: a live cache of
    /// this machine whose objects hold `size` bytes. A live set's own cache always does; the
    /// entry of a destroyed set may name nothing, or another (perhaps smaller) cache made
    /// since in its memory, which the liveness check alone would accept.
    #[must_use]
    pub fn bucket_cache_serves(&self, cache: CacheRef, size: usize) -> bool {
        self.cache(cache).is_some_and(|s| s.object_size() >= size)
    }

    /// `kmem_buckets_alloc_track_caller`: [`Kmem::kmem_buckets_alloc`], which already records
    /// its caller's caller when called from a `#[track_caller]` function (the kernel's
    /// `_RET_IP_`).
    ///
    /// # Errors
    /// As [`Kmem::kmem_buckets_alloc`].
    #[track_caller]
    pub fn kmem_buckets_alloc_track_caller(
        &self,
        b: Option<&KmemBuckets>,
        size: usize,
        gfp: Gfp,
    ) -> Result<NonNull<u8>, AllocError> {
        self.kmem_buckets_alloc(b, size, gfp)
    }

    /// `kmem_buckets_destroy(b)` (kmem's; proposed upstream, not in mainline): destroys every
    /// cache of the set as `kmem_cache_destroy` does. Caches with objects still allocated are
    /// reported (SL-12) and kept; the other caches are freed all the same.
    ///
    /// # Errors
    /// [`DestroyError`] with the objects still allocated in the whole set.
    ///
    /// # Safety
    /// As [`Kmem::kmem_cache_destroy`] for each cache of the set: no other thread uses the set
    /// during the call, and no object of it is freed afterwards. The set (and its copies) must
    /// not be used afterwards (an allocation from it would be reported and refused).
    #[track_caller]
    pub unsafe fn kmem_buckets_destroy(&self, b: &KmemBuckets) -> Result<(), DestroyError> {
        let mut live = 0;
        for cache in b.caches() {
            // SAFETY: The caller's promise for each cache of the set.
            if let Err(e) = unsafe { self.kmem_cache_destroy(cache) } {
                live += e.live_objects;
            }
        }
        if live == 0 { Ok(()) } else { Err(DestroyError { live_objects: live }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usercopy_window_is_clamped_per_class() {
        // No window: offset at or past the class.
        assert_eq!(bucket_usercopy(8, 8, 100), (0, 0));
        assert_eq!(bucket_usercopy(8, 16, 4), (0, 0));
        // Cut to the class.
        assert_eq!(bucket_usercopy(64, 16, 100), (16, 48));
        assert_eq!(bucket_usercopy(8192, 16, 100), (16, 100));
        assert_eq!(bucket_usercopy(96, 0, usize::MAX), (0, 96));
        // An empty window drops the offset.
        assert_eq!(bucket_usercopy(64, 16, 0), (0, 0));
        assert_eq!(bucket_usercopy(64, 0, 0), (0, 0));
    }

    #[test]
    fn class_names_are_the_kmalloc_names() {
        let shorts: [&str; 13] = KMALLOC_CACHE_INDICES.map(bucket_class_name);
        assert_eq!(shorts, ["96", "192", "8", "16", "32", "64", "128", "256", "512", "1k", "2k", "4k", "8k"]);
        assert_eq!(NR_BUCKETS, 14);
        assert_eq!(size_of::<KmemBuckets>(), NR_BUCKETS * size_of::<*const ()>());
    }
}
