//! HighMem mappings (`mm/highmem.c`): `kmap`/`kunmap` through a window of `LAST_PKMAP`
//! persistent slots, and `kmap_local_page`/`kunmap_local` through per-CPU fixmap slots used as
//! a stack. Lowmem pages are already in the direct map: both return `page_address`.
//!
//! Invariant: a pkmap slot with `count > 0` maps its `pfn` and is in `by_pfn`; a slot with
//! `count == 0` may keep a stale mapping until it is reused (the kernel flushes such slots in
//! `flush_all_zero_pkmaps`). `local <= count` of a slot's uses are `kmap_local_page` fallbacks:
//! only `kunmap_local` releases those and only `kunmap` the others, so one API's release never
//! drops a use the other holds (the kernel's `kunmap_local` of a `kmap` address does nothing,
//! and its `page_address` knows `kmap` mappings only). `local_depth[cpu]` fixmap slots of that
//! CPU are mapped, the lowest first; a CPU slot given back (`release_cpu`, thread exit, fork)
//! starts again at 0, its left mappings unmapped and, if its owner left them, reported. Lock
//! order: the pkmap mutex is a leaf; mapping calls run under it.

use std::collections::HashMap;
use std::panic::Location;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};

use kmem_core::page_alloc::warn_sites;
use kmem_core::platform::{Level, Platform};
use kmem_core::{PAGE_SIZE, Page, PageAllocator};

use crate::mapping::VaRange;
use crate::user_platform::UserPlatform;

/// Persistent kmap slots (`LAST_PKMAP` on i386 without PAE).
pub const LAST_PKMAP: usize = 1024;
/// Local (fixmap) slots per CPU (`KM_MAX_IDX`).
pub const KM_MAX_IDX: usize = 16;

#[derive(Clone, Copy)]
struct Slot {
    pfn: Option<usize>,
    count: usize,
    /// Uses that are `kmap_local_page` fallbacks (at most `count`).
    local: usize,
}

struct Pkmap {
    slots: Vec<Slot>,
    by_pfn: HashMap<usize, usize>,
    /// Where the search for a free slot resumes (`last_pkmap_nr`).
    next: usize,
}

/// The HighMem windows of one machine.
pub(crate) struct Highmem {
    pkmap: VaRange,
    fixmap: VaRange,
    state: Mutex<Pkmap>,
    freed: Condvar,
    local_depth: Box<[AtomicUsize]>,
}

type Pa = PageAllocator<UserPlatform>;

/// Every persistent slot is in use (a `kmap` that may not wait).
struct AllInUse;

impl Highmem {
    pub(crate) fn new(pkmap: VaRange, fixmap: VaRange, nr_cpus: usize) -> Self {
        Self {
            pkmap,
            fixmap,
            state: Mutex::new(Pkmap {
                slots: vec![Slot { pfn: None, count: 0, local: 0 }; LAST_PKMAP],
                // Never more than `LAST_PKMAP` entries (a slot's old pfn is removed when it is
                // reused), so with this capacity `kmap` never allocates under `state`'s lock:
                // an allocation there could reclaim and run a destructor that `kunmap`s,
                // which takes the same lock (as the `#[global_allocator]` it did:
                // `tests/global_alloc_kmap.rs`).
                by_pfn: HashMap::with_capacity(LAST_PKMAP),
                next: 0,
            }),
            freed: Condvar::new(),
            local_depth: (0..nr_cpus).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Bytes the two windows need.
    pub(crate) fn window_bytes(nr_cpus: usize) -> (usize, usize) {
        (LAST_PKMAP * PAGE_SIZE, nr_cpus * KM_MAX_IDX * PAGE_SIZE)
    }

    fn report(pa: &Pa, caller: &Location<'_>, what: std::fmt::Arguments<'_>) {
        pa.platform().log(Level::Err, format_args!("BUG: {what}"));
        pa.platform().dump_stack(caller);
    }

    /// `kmap`: maps a HighMem page in a persistent slot (sleeping while all are in use).
    pub(crate) fn kmap(&self, pa: &Pa, pfn: usize, caller: &Location<'_>) -> Option<NonNull<u8>> {
        self.pkmap_slot(pa, pfn, caller, true, false).ok().flatten()
    }

    /// A persistent slot for `kmap_local_page`'s fallback (no CPU slot, or past `KM_MAX_IDX`
    /// nested mappings). `kmap_local_page` never sleeps in the kernel (its callers may hold spin
    /// locks, or every persistent slot themselves), so with all slots in use this reports and
    /// gives `None` instead of waiting for a `kunmap`.
    fn kmap_local_fallback(&self, pa: &Pa, pfn: usize, caller: &Location<'_>) -> Option<NonNull<u8>> {
        self.pkmap_slot(pa, pfn, caller, false, true).unwrap_or_else(|AllInUse| {
            Self::report(
                pa,
                caller,
                format_args!(
                    "kmap_local: every persistent kmap slot is in use and kmap_local_page does not sleep; \
                     pfn:{pfn:05x} is not mapped"
                ),
            );
            None
        })
    }

    /// A persistent slot mapping `pfn` (its existing one, or a free one), for a `kmap_local`
    /// fallback if `local`; with every slot in use, waits for a `kunmap` if `wait`, else
    /// `Err(AllInUse)`. `Ok(None)`: the mapping failed (reported).
    fn pkmap_slot(
        &self,
        pa: &Pa,
        pfn: usize,
        caller: &Location<'_>,
        wait: bool,
        local: bool,
    ) -> Result<Option<NonNull<u8>>, AllInUse> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(&i) = st.by_pfn.get(&pfn) {
                st.slots[i].count += 1;
                st.slots[i].local += usize::from(local);
                return Ok(NonNull::new((self.pkmap.base() + i * PAGE_SIZE) as *mut u8));
            }
            let start = st.next;
            let free = (0..LAST_PKMAP).map(|k| (start + k) % LAST_PKMAP).find(|&i| st.slots[i].count == 0);
            if let Some(i) = free {
                let va = self.pkmap.base() + i * PAGE_SIZE;
                if self.pkmap.map(va, pfn, 1).is_err() {
                    Self::report(pa, caller, format_args!("kmap: cannot map pfn:{pfn:05x}"));
                    return Ok(None);
                }
                if let Some(old) = st.slots[i].pfn.take() {
                    st.by_pfn.remove(&old);
                }
                st.slots[i] = Slot { pfn: Some(pfn), count: 1, local: usize::from(local) };
                st.by_pfn.insert(pfn, i);
                st.next = (i + 1) % LAST_PKMAP;
                return Ok(NonNull::new(va as *mut u8));
            }
            if !wait {
                return Err(AllInUse);
            }
            // Every slot is in use: wait for a kunmap, as the kernel sleeps on `pkmap_map_wait`.
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The address of HighMem `pfn`'s persistent slot while it is `kmap`ped (a `kmap` use is
    /// outstanding), as the kernel's `page_address_htable` answers `page_address`; `None`
    /// otherwise (a `kmap_local` mapping, fallbacks included, is not found there either).
    pub(crate) fn pkmap_address(&self, pfn: usize) -> Option<NonNull<u8>> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let &i = st.by_pfn.get(&pfn)?;
        if st.slots[i].count == st.slots[i].local {
            return None;
        }
        NonNull::new((self.pkmap.base() + i * PAGE_SIZE) as *mut u8)
    }

    /// `kunmap`: releases one `kmap` use of a persistent slot.
    pub(crate) fn kunmap(&self, pa: &Pa, pfn: usize, caller: &Location<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.by_pfn.get(&pfn).copied() {
            Some(i) if st.slots[i].count > st.slots[i].local => self.release_use(&mut st.slots[i], false),
            _ => {
                drop(st);
                Self::report(pa, caller, format_args!("kunmap: pfn:{pfn:05x} is not kmapped"));
            }
        }
    }

    /// Drops one use of `slot` (a `kmap_local` fallback's if `local`), waking `kmap`s waiting
    /// for a slot when it was the last.
    fn release_use(&self, slot: &mut Slot, local: bool) {
        slot.count -= 1;
        slot.local -= usize::from(local);
        if slot.count == 0 {
            self.freed.notify_all();
        }
    }

    /// The address of CPU `cpu`'s local mapping slot `idx` in the fixmap window.
    fn local_va(&self, cpu: usize, idx: usize) -> usize {
        self.fixmap.base() + (cpu * KM_MAX_IDX + idx) * PAGE_SIZE
    }

    /// `kmap_local_page` for a HighMem page: the next fixmap slot of this CPU, or a persistent
    /// slot for a thread without a CPU slot or past `KM_MAX_IDX` nested mappings.
    pub(crate) fn kmap_local(&self, pa: &Pa, pfn: usize, caller: &Location<'_>) -> Option<NonNull<u8>> {
        let Some(cpu) = pa.platform().cpu().filter(|&c| c < self.local_depth.len()) else {
            return self.kmap_local_fallback(pa, pfn, caller);
        };
        let depth = self.local_depth[cpu].load(Relaxed);
        if depth >= KM_MAX_IDX {
            Self::report(pa, caller, format_args!("kmap_local: more than {KM_MAX_IDX} nested mappings"));
            return self.kmap_local_fallback(pa, pfn, caller);
        }
        let va = self.local_va(cpu, depth);
        if self.fixmap.map(va, pfn, 1).is_err() {
            Self::report(pa, caller, format_args!("kmap_local: cannot map pfn:{pfn:05x}"));
            return None;
        }
        self.local_depth[cpu].store(depth + 1, Relaxed);
        NonNull::new(va as *mut u8)
    }

    /// `kunmap_local(addr)` for an address from [`Self::kmap_local`]; false if `addr` is in
    /// neither window (a lowmem address: nothing to do).
    pub(crate) fn kunmap_local(&self, pa: &Pa, addr: usize, caller: &Location<'_>) -> bool {
        let page_va = addr & !(PAGE_SIZE - 1);
        if (self.pkmap.base()..self.pkmap.base() + self.pkmap.len()).contains(&page_va) {
            let i = (page_va - self.pkmap.base()) / PAGE_SIZE;
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut st.slots[i];
            if slot.local > 0 {
                self.release_use(slot, true);
            } else if slot.count == 0 {
                drop(st);
                Self::report(pa, caller, format_args!("kunmap_local: {addr:#x} is not mapped"));
            }
            // Else a `kmap` mapping: `kunmap_local_indexed` leaves an address outside the
            // fixmap alone (it warns only below PAGE_OFFSET), and its `kunmap` stays valid.
            return true;
        }
        if !(self.fixmap.base()..self.fixmap.base() + self.fixmap.len()).contains(&page_va) {
            return false;
        }
        let index = (page_va - self.fixmap.base()) / PAGE_SIZE;
        let (cpu, idx) = (index / KM_MAX_IDX, index % KM_MAX_IDX);
        let depth = self.local_depth[cpu].load(Relaxed);
        if pa.platform().cpu() != Some(cpu) || depth == 0 {
            Self::report(
                pa,
                caller,
                format_args!("kunmap_local: {addr:#x} is not this CPU's most recent local mapping"),
            );
            return true;
        }
        let top = depth - 1;
        if idx != top {
            // Out of order (or a slot already released): as `kunmap_local_indexed`, warn once
            // and release the most recent mapping anyway (its PTE is cleared and the index
            // popped), so the stack stays balanced with the caller's kmap/kunmap pairs instead
            // of keeping a slot for good.
            pa.warn_once(
                warn_sites::KUNMAP_LOCAL_ORDER,
                "kunmap_local_indexed",
                format_args!("addr != __fix_to_virt(FIX_KMAP_BEGIN + idx)"),
                caller,
            );
        }
        // The slot is reused by the next `kmap_local` (which maps over it) whatever this returns.
        let _ = self.fixmap.unmap(self.local_va(cpu, top), PAGE_SIZE);
        self.local_depth[cpu].store(top, Relaxed);
        true
    }

    /// CPU slot `cpu` is given back (its thread exited, called `release_cpu`, or did not
    /// survive a fork): local mappings it left are unmapped, so the slot's next owner starts
    /// with all `KM_MAX_IDX` of them. With `report` (the thread itself ended without
    /// `kunmap_local`) each left mapping is a bug of the caller's: reported, once per release.
    pub(crate) fn release_cpu(&self, pa: &Pa, cpu: usize, report: bool) {
        let depth = self.local_depth.get(cpu).map_or(0, |d| d.swap(0, Relaxed));
        if depth == 0 {
            return;
        }
        let first = self.local_va(cpu, 0);
        // The slot's owner is gone, so no one uses these addresses any more (`kmap_local_page`'s
        // contract: a mapping is released before its thread gives up the CPU).
        let _ = self.fixmap.unmap(first, depth * PAGE_SIZE);
        if report {
            pa.platform().log(
                Level::Err,
                format_args!(
                    "BUG: kmap_local: {depth} local mapping(s) of CPU {cpu} not released with kunmap_local when the thread gave up the CPU; unmapped"
                ),
            );
        }
    }
}

/// The pfn of a HighMem page, or `None` for a lowmem page (which has an address already).
pub(crate) fn highmem_pfn(pa: &Pa, page: &Page) -> Option<usize> {
    if pa.page_address(page).is_some() {
        return None;
    }
    pa.page_to_pfn(page)
}

impl crate::Machine {
    /// `page_address(page)`: a lowmem page's direct-map address; a HighMem page's `kmap`
    /// address while it is `kmap`ped (the kernel's `page_address_htable`), else `None`. (The
    /// page allocator's own `page_address`, which this shadows, knows only the direct map.)
    #[inline]
    pub fn page_address(&self, page: &Page) -> Option<NonNull<u8>> {
        let pa = self.inner.kmem.pages();
        pa.page_address(page).or_else(|| self.kmapped_address(page))
    }

    /// The `kmap` address of a HighMem page, if it has one now.
    #[cold]
    fn kmapped_address(&self, page: &Page) -> Option<NonNull<u8>> {
        let pa = self.inner.kmem.pages();
        let hm = self.inner.highmem.as_ref()?;
        hm.pkmap_address(pa.page_to_pfn(page)?)
    }
}
