//! Bulk allocation and freeing (`mempool_alloc_bulk`, `mempool_free_bulk`; the newest kernel's,
//! SEMANTICS.md §6.1, §6.2): an array of element slots filled and emptied at once.
//!
//! `alloc_bulk` fills every NULL slot. It always allocates with `GFP_KERNEL`: it tries
//! `alloc_fn` for each NULL slot in order (first pass without direct reclaim or I/O); at the
//! first failure it takes the **whole** remainder from the reserve if `curr_nr` covers it, and
//! nothing otherwise (so two bulk callers cannot split a reserve between them and both wait).
//! Short of that it retries with the full mask, and then sleeps on the pool's wait word (at most
//! [`MEMPOOL_WAIT_TIMEOUT_NS`], woken by any free into the reserve) and starts over. So it
//! returns only with every slot filled — except in atomic context, where kmem does not sleep
//! (`docs/deviations.md`) and fails instead, the slots filled so far kept. A `count` above
//! `min_nr` can wait for a reserve that never holds enough: `VM_WARN_ON_ONCE(count >
//! pool->min_nr)`, once per pool here.
//!
//! `free_bulk` puts a leading run of the array into the reserve while it is short (as
//! `mempool_free` does one element) and returns its length; the caller frees the rest with the
//! backing allocator (as the kernel's caller does, `release_pages`), for which
//! [`Mempool::free_backing`] calls the pool's `free_fn`. NULL slots in the run are skipped
//! (taken, as `mempool_free` ignores NULL).
//!
//! Invariants (besides the pool's): `alloc_bulk` counts the filled slots itself, so the
//! number of NULL slots is exactly what the reserve is asked for; an element is written into a
//! slot only after it left the reserve or came from `alloc_fn`, and the slot array is the
//! caller's (`&mut`), so no other thread sees a half-filled array.
//!
//! Lock order: as the pool's: the reserve lock is taken once per reserve visit, with no
//! callback, [`PoolEnv`](super::PoolEnv) call or sleep under it.
//!
//! [`MEMPOOL_WAIT_TIMEOUT_NS`]: super::MEMPOOL_WAIT_TIMEOUT_NS

use core::ffi::c_void;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};

use super::{Mempool, report_might_sleep, warn};
use crate::AllocError;
use crate::gfp::{__GFP_DIRECT_RECLAIM, __GFP_IO, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, GFP_KERNEL};
use crate::sync::atomic::fence;

impl Mempool {
    /// `mempool_alloc_bulk(pool, elems, count, allocated)`: fills every NULL slot of `elems`
    /// (`count` is `elems.len()`): `alloc_fn` slot by slot (`GFP_KERNEL`'s first-pass mask)
    /// until one fails, then the whole remainder from the reserve if `curr_nr` covers it and
    /// nothing otherwise, then `alloc_fn` with the full mask, then a sleep (at most
    /// [`MEMPOOL_WAIT_TIMEOUT_NS`](super::MEMPOOL_WAIT_TIMEOUT_NS), woken by any free into the
    /// reserve) and over again. `allocated` is the caller's count of filled slots, as in the
    /// kernel; kmem counts them itself and warns once per pool when they differ (the kernel
    /// would take too few or too many reserve elements).
    ///
    /// `fail_mempool_alloc_bulk` sends the first round straight to the reserve.
    ///
    /// # Errors
    /// Only in atomic context (reported as `might_sleep` does): kmem does not sleep there, so
    /// when neither `alloc_fn` nor the reserve can fill the array it fails. The slots filled so
    /// far stay filled: they are the caller's, to free or to pass to a later call.
    #[track_caller]
    pub fn alloc_bulk(&self, elems: &mut [*mut c_void], allocated: usize) -> Result<(), AllocError> {
        let caller = Location::caller();
        let count = elems.len();
        let min_nr = self.min_nr();
        if count > min_nr {
            let what = format_args!("count > pool->min_nr ({count} > {min_nr})");
            self.warn_once(warn::BULK_COUNT, "mempool_alloc_bulk", what, caller);
        }
        let mut filled = elems.iter().filter(|e| !e.is_null()).count();
        if filled != allocated {
            let what =
                format_args!("allocated ({allocated}) is not the number of filled slots ({filled}); using {filled}");
            self.warn_once(warn::BULK_ALLOCATED, "mempool_alloc_bulk", what, caller);
        }
        // `might_alloc(GFP_KERNEL)`: in atomic context, reported, then no sleeping (as
        // `mempool_alloc` does, docs/deviations.md).
        let mut gfp = GFP_KERNEL;
        if let Some(platform) = self.platform()
            && platform.in_atomic()
        {
            report_might_sleep(platform, caller);
            gfp = gfp.difference(__GFP_DIRECT_RECLAIM);
        }
        let gfp = gfp.union(__GFP_NOMEMALLOC.union(__GFP_NORETRY).union(__GFP_NOWARN));
        let mut gfp_temp = gfp.difference(__GFP_DIRECT_RECLAIM.union(__GFP_IO));
        let mut try_backing = !self.forced_bulk_to_reserve();
        loop {
            if try_backing {
                for slot in elems.iter_mut().filter(|e| e.is_null()) {
                    let element = self.backing_alloc(gfp_temp);
                    if element.is_null() {
                        break;
                    }
                    self.track(1);
                    *slot = element;
                    filled += 1;
                }
                if filled == count {
                    return Ok(());
                }
            }
            try_backing = true;
            if self.take_from_reserve(elems, count - filled) {
                return Ok(());
            }
            if gfp_temp.contains(__GFP_DIRECT_RECLAIM) {
                let Some(platform) = self.platform() else { return Err(AllocError) };
                self.wait_for_free(platform, count - filled);
            } else if gfp_temp == gfp {
                return Err(AllocError); // May not sleep (atomic context): the last pass failed.
            }
            gfp_temp = gfp;
        }
    }

    /// `mempool_alloc_from_pool` for `need` NULL slots: under one lock, all of them from the
    /// reserve (top of the stack into the first NULL slot) if it holds `need`, else none.
    #[track_caller]
    fn take_from_reserve(&self, elems: &mut [*mut c_void], need: usize) -> bool {
        let mut r = self.reserve.lock();
        if self.curr_nr.load(Relaxed) < need {
            return false;
        }
        for slot in elems.iter_mut().filter(|e| e.is_null()) {
            let element = self.remove_element(&mut r).expect("the reserve holds `need` elements");
            *slot = element.as_ptr();
        }
        r.out += need as isize;
        self.track(need as isize);
        // Under the lock: no other writer.
        self.stats.reserve_allocs.store(self.stats.reserve_allocs.load(Relaxed) + need, Relaxed);
        drop(r);
        // As in `pop`: whoever gets these elements from us sees a `curr_nr` from after this.
        fence(Release);
        true
    }

    /// `mempool_free_bulk(pool, elems, count)`: puts the leading elements of `elems` into the
    /// reserve while it is short of `min_nr` (or empty in a zero-minimum pool), waking
    /// sleepers, and returns how many it took; the caller frees `elems[taken..]` with the
    /// backing allocator ([`Mempool::free_backing`]). NULL slots within the run are skipped and
    /// counted. The slots themselves are left as they were (the kernel's kernel-doc says the
    /// taken ones are set to NULL; its code does not).
    ///
    /// Every non-NULL element passed counts as returned for element tracking, as the caller's
    /// own free of the rest does not come back through the pool (so the rest must not go to
    /// [`Mempool::free`], which would count them again). With poisoning on, an element
    /// already in the reserve or not of this pool is reported, left alone and counted as taken
    /// (so the caller does not free it either).
    ///
    /// # Safety
    /// Every non-NULL entry of `elems` is an element `free_fn` accepts (normally one this pool
    /// handed out), distinct, that nobody uses any more; after the call the first `taken`
    /// belong to the pool.
    #[track_caller]
    pub unsafe fn free_bulk(&self, elems: &[*mut c_void]) -> usize {
        // `curr_nr < min_nr` (or an empty zero-minimum pool, poisoning, tracking), read without
        // the lock as the kernel reads `curr_nr`.
        if elems.is_empty() || !self.free_check().locks() {
            return 0;
        }
        let caller = Location::caller();
        let mut r = self.reserve.lock();
        let (mut taken, mut added, mut rejected) = (0, false, 0);
        while taken < elems.len() && self.has_room(&r) {
            let Some(element) = NonNull::new(elems[taken]) else {
                taken += 1;
                continue;
            };
            taken += 1;
            if self.poison.load(Relaxed) && !self.check_free(&r, element, "mempool_free_bulk", caller) {
                rejected += 1;
                continue; // Reported; the element is left alone.
            }
            self.add_element(&mut r, element);
            r.replaced();
            added = true;
        }
        if self.tracking {
            let returned = elems.iter().filter(|e| !e.is_null()).count() - rejected;
            self.track(-(returned as isize));
        }
        if added {
            self.unlock_and_wake(r);
        }
        taken
    }

    /// `free_fn(element, pool_data)`: gives `element` straight to the backing allocator,
    /// bypassing the reserve and counting nothing: how the caller of [`Mempool::free_bulk`]
    /// frees the elements the pool did not take. NULL is ignored.
    ///
    /// # Safety
    /// `element` is NULL or an element `free_fn` accepts that nobody uses any more.
    pub unsafe fn free_backing(&self, element: *mut c_void) {
        if !element.is_null() {
            self.backing_free(element);
        }
    }
}
