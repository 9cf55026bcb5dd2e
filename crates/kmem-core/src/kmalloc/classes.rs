//! kmalloc size classes (`include/linux/slab.h`, `mm/slab_common.c`; SEMANTICS.md §4.1, §4.2).
//!
//! Requests of 1..=[`KMALLOC_MAX_CACHE_SIZE`] bytes go to the smallest of the 13 class caches
//! 8, 16, 32, 64, 96, 128, 192, 256, 512, 1k, 2k, 4k, 8k; larger ones, up to
//! [`KMALLOC_MAX_SIZE`], to the page allocator. The class *index* is the kernel's: index `n >= 3`
//! is the `1 << n` class, 1 is 96 and 2 is 192 ([`KMALLOC_INFO`]). Each index exists once per
//! [`KmallocType`]. The lookup is two table loads at most (BENCHMARKS.md: size-class lookup by
//! table): [`KMALLOC_SIZE_INDEX`] up to 192 bytes, `fls(size - 1)` above.

use crate::gfp::{__GFP_ACCOUNT, __GFP_DMA, __GFP_RECLAIMABLE, Gfp};
use crate::order::{MAX_PAGE_ORDER, PAGE_SHIFT, PAGE_SIZE, get_order};
use crate::slab::flags::{SLAB_ACCOUNT, SLAB_CACHE_DMA, SLAB_KMALLOC, SLAB_NO_MERGE, SLAB_RECLAIM_ACCOUNT, SlabFlags};
use crate::slab::layout::calculate_alignment;

/// `ARCH_KMALLOC_MINALIGN`: every kmalloc result is at least this aligned (8 on x86-64).
pub const ARCH_KMALLOC_MINALIGN: usize = 8;
/// log2 of the smallest class.
pub const KMALLOC_SHIFT_LOW: u32 = 3;
/// log2 of the largest class: an order-1 slab (`PAGE_SHIFT + 1`).
pub const KMALLOC_SHIFT_HIGH: u32 = PAGE_SHIFT + 1;
/// log2 of the largest kmalloc: a `MAX_PAGE_ORDER` block.
pub const KMALLOC_SHIFT_MAX: u32 = MAX_PAGE_ORDER + PAGE_SHIFT;
/// The smallest class (8 bytes).
pub const KMALLOC_MIN_SIZE: usize = 1 << KMALLOC_SHIFT_LOW;
/// The largest request served by a slab cache (8 KiB); above it kmalloc takes whole pages.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 1 << KMALLOC_SHIFT_HIGH;
/// The largest request kmalloc can serve (4 MiB); anything larger fails (KM-5).
pub const KMALLOC_MAX_SIZE: usize = 1 << KMALLOC_SHIFT_MAX;
/// The order of the largest kmalloc page block.
pub const KMALLOC_MAX_ORDER: u32 = KMALLOC_SHIFT_MAX - PAGE_SHIFT;
/// The address `kmalloc(0)` returns: non-NULL, distinct, faults on access (KM-2).
pub const ZERO_SIZE_PTR: usize = 16;

/// `ZERO_OR_NULL_PTR(addr)`: NULL or [`ZERO_SIZE_PTR`] (anything up to 16), which `kfree` and
/// `ksize` accept and ignore (KM-3).
pub const fn zero_or_null_ptr(addr: usize) -> bool {
    addr <= ZERO_SIZE_PTR
}

/// The size to ask kmalloc for so that the block has `layout`'s alignment, or `None` above
/// [`KMALLOC_MAX_SIZE`] (Rust-for-Linux's `aligned_size` rounds the same way before
/// `krealloc`).
///
/// KM-6 makes every kmalloc result 8-aligned, power-of-two sizes up to 8 KiB size-aligned,
/// 96 → 32- and 192 → 64-aligned; page-backed sizes come from a block naturally aligned in
/// pfns. A size that is a multiple of a power-of-two alignment `a > 8` lands in a power-of-two
/// class (aligned to itself, at least `a`), in 96 only if `a <= 32`, in 192 only if `a <= 64`
/// (no multiple of 64 lies in (64, 96], none of 128 in (128, 192]), or in a block of at least
/// its size, aligned to its size because the page allocator requires the direct map to be
/// aligned to the largest block (`page_alloc::direct_map_alignment`). So rounding the size up
/// to the alignment is enough, for any alignment up to 4 MiB; callers check the result.
pub const fn kmalloc_layout_size(layout: core::alloc::Layout) -> Option<usize> {
    let size = if layout.align() <= ARCH_KMALLOC_MINALIGN {
        layout.size()
    } else {
        match layout.size().checked_next_multiple_of(layout.align()) {
            Some(size) => size,
            None => return None,
        }
    };
    if size <= KMALLOC_MAX_SIZE { Some(size) } else { None }
}

const _: () = assert!(KMALLOC_MIN_SIZE.is_power_of_two() && KMALLOC_MIN_SIZE >= size_of::<usize>());
const _: () = assert!(KMALLOC_MAX_CACHE_SIZE == 8192 && KMALLOC_MAX_SIZE == 4 << 20 && KMALLOC_MAX_ORDER == 10);
const _: () = assert!(ZERO_SIZE_PTR < PAGE_SIZE && ZERO_SIZE_PTR < KMALLOC_MIN_SIZE * 4);

/// `enum kmalloc_cache_type` with `CONFIG_ZONE_DMA` and memory cgroups configured, without
/// `CONFIG_SLUB_TINY` or random kmalloc caches; the discriminant is the kernel's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KmallocType {
    /// Plain kernel memory: `kmalloc-*`.
    Normal = 0,
    /// `__GFP_RECLAIMABLE`: `kmalloc-rcl-*`, pages counted as reclaimable.
    Reclaim = 1,
    /// `__GFP_DMA`: `dma-kmalloc-*`, pages from `ZONE_DMA`.
    Dma = 2,
    /// `__GFP_ACCOUNT`: `kmalloc-cg-*`, objects charged to a memory cgroup.
    Cgroup = 3,
}

/// `NR_KMALLOC_TYPES`.
pub const NR_KMALLOC_TYPES: usize = 4;

impl KmallocType {
    /// Every type, in index order (the order `create_kmalloc_caches` creates them).
    pub const ALL: [KmallocType; NR_KMALLOC_TYPES] =
        [KmallocType::Normal, KmallocType::Reclaim, KmallocType::Dma, KmallocType::Cgroup];

    /// The cache-name prefix: `kmalloc-`, `kmalloc-rcl-`, `dma-kmalloc-`, `kmalloc-cg-`.
    pub const fn prefix(self) -> &'static str {
        match self {
            KmallocType::Normal => "kmalloc-",
            KmallocType::Reclaim => "kmalloc-rcl-",
            KmallocType::Dma => "dma-kmalloc-",
            KmallocType::Cgroup => "kmalloc-cg-",
        }
    }

    /// The flags `new_kmalloc_cache` creates this type's caches with: [`SLAB_KMALLOC`] plus
    /// [`SLAB_RECLAIM_ACCOUNT`], [`SLAB_CACHE_DMA`] or [`SLAB_ACCOUNT`]; NORMAL caches are
    /// [`SLAB_NO_MERGE`], as in kernels with memory cgroups.
    pub const fn slab_flags(self) -> SlabFlags {
        SLAB_KMALLOC.union(match self {
            KmallocType::Normal => SLAB_NO_MERGE,
            KmallocType::Reclaim => SLAB_RECLAIM_ACCOUNT,
            KmallocType::Dma => SLAB_CACHE_DMA,
            KmallocType::Cgroup => SLAB_ACCOUNT,
        })
    }
}

/// `kmalloc_type()`: the cache type for a request's GFP flags; priority `__GFP_DMA` >
/// `__GFP_RECLAIMABLE` > `__GFP_ACCOUNT`, NORMAL when none is set. `__GFP_DMA32` has no cache
/// of its own (KM-11).
pub const fn kmalloc_type(gfp: Gfp) -> KmallocType {
    if !gfp.intersects(__GFP_DMA.union(__GFP_RECLAIMABLE).union(__GFP_ACCOUNT)) {
        KmallocType::Normal
    } else if gfp.intersects(__GFP_DMA) {
        KmallocType::Dma
    } else if gfp.intersects(__GFP_RECLAIMABLE) {
        KmallocType::Reclaim
    } else {
        KmallocType::Cgroup
    }
}

/// One `kmalloc_info[]` entry: a class size and its cache name for every type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KmallocInfo {
    /// Object size of the class (0 for the unused index 0).
    pub size: usize,
    /// Cache names, indexed by [`KmallocType`].
    pub names: [&'static str; NR_KMALLOC_TYPES],
}

impl KmallocInfo {
    /// The cache name for `ty`, e.g. `dma-kmalloc-1k`.
    pub const fn name(&self, ty: KmallocType) -> &'static str {
        self.names[ty as usize]
    }
}

macro_rules! info {
    ($size:expr, $short:literal) => {
        KmallocInfo {
            size: $size,
            names: [
                concat!("kmalloc-", $short),
                concat!("kmalloc-rcl-", $short),
                concat!("dma-kmalloc-", $short),
                concat!("kmalloc-cg-", $short),
            ],
        }
    };
}

/// Number of [`KMALLOC_INFO`] entries: indices 0..=21, up to 2 MiB (`kmalloc-2M`).
pub const NR_KMALLOC_INFO: usize = 22;

/// `kmalloc_info[]`: index → class size and names. Only [`KMALLOC_CACHE_INDICES`] are created;
/// the rest name sizes for `slab_debug=,kmalloc-xx` and bucket APIs.
#[rustfmt::skip]
pub const KMALLOC_INFO: [KmallocInfo; NR_KMALLOC_INFO] = [
    info!(0, "0"), info!(96, "96"), info!(192, "192"), info!(8, "8"), info!(16, "16"), info!(32, "32"),
    info!(64, "64"), info!(128, "128"), info!(256, "256"), info!(512, "512"), info!(1024, "1k"),
    info!(2048, "2k"), info!(4096, "4k"), info!(8192, "8k"), info!(16384, "16k"), info!(32768, "32k"),
    info!(65536, "64k"), info!(131072, "128k"), info!(262144, "256k"), info!(524288, "512k"),
    info!(1048576, "1M"), info!(2097152, "2M"),
];

/// The indices `create_kmalloc_caches` creates for each type, in creation order: 96 and 192
/// first, then 8 through 8k.
pub const KMALLOC_CACHE_INDICES: [usize; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];

/// `kmalloc_size_index[]`: the class index for sizes 1..=192, by `(size - 1) / 8`.
#[rustfmt::skip]
pub const KMALLOC_SIZE_INDEX: [u8; 24] = [
    3, 4, 5, 5, 6, 6, 6, 6, // 8, 16, 24, 32, 40, 48, 56, 64
    1, 1, 1, 1, 7, 7, 7, 7, // 72, 80, 88, 96, 104, 112, 120, 128
    2, 2, 2, 2, 2, 2, 2, 2, // 136 … 192
];

// Every class index is a created cache of the right size, and the smallest one that fits: no
// created class lies between the bucket's sizes and the chosen one.
const _: () = {
    let mut i = 0;
    while i < KMALLOC_SIZE_INDEX.len() {
        let class = KMALLOC_INFO[KMALLOC_SIZE_INDEX[i] as usize].size;
        assert!(class >= (i + 1) * 8);
        let mut c = 0;
        while c < KMALLOC_CACHE_INDICES.len() {
            let other = KMALLOC_INFO[KMALLOC_CACHE_INDICES[c]].size;
            assert!(!(other >= (i + 1) * 8 && other < class));
            c += 1;
        }
        i += 1;
    }
    let mut i = KMALLOC_SHIFT_LOW as usize;
    while i < NR_KMALLOC_INFO {
        assert!(KMALLOC_INFO[i].size == 1 << i);
        i += 1;
    }
    assert!(KMALLOC_CACHE_INDICES[KMALLOC_CACHE_INDICES.len() - 1] == KMALLOC_SHIFT_HIGH as usize);
};

/// `kmalloc_slab()`'s index: the class index for a request of `size` bytes (KM-1); `None` for 0
/// (`ZERO_SIZE_PTR`) and above [`KMALLOC_MAX_CACHE_SIZE`] (served by pages).
#[inline]
pub const fn kmalloc_index(size: usize) -> Option<usize> {
    if size == 0 || size > KMALLOC_MAX_CACHE_SIZE {
        None
    } else if size <= 192 {
        Some(KMALLOC_SIZE_INDEX[(size - 1) / 8] as usize)
    } else {
        Some((usize::BITS - (size - 1).leading_zeros()) as usize) // fls(size - 1)
    }
}

/// The object size of class `index` (`kmalloc_info[index].size`); `None` past the table.
pub const fn kmalloc_size(index: usize) -> Option<usize> {
    if index < NR_KMALLOC_INFO { Some(KMALLOC_INFO[index].size) } else { None }
}

/// The name of the cache serving `size` bytes for `ty`, e.g. `kmalloc-cg-96`; `None` when no
/// slab cache serves it.
pub const fn kmalloc_cache_name(size: usize, ty: KmallocType) -> Option<&'static str> {
    match kmalloc_index(size) {
        Some(index) => Some(KMALLOC_INFO[index].name(ty)),
        None => None,
    }
}

/// `kmalloc_size_roundup()`: the usable size kmalloc would give a `size`-byte request (KM-8):
/// 0 → 0, up to 8 KiB the class size, up to 4 MiB whole pages (`PAGE_SIZE << get_order`),
/// above that `size` itself (kmalloc will fail).
pub const fn kmalloc_size_roundup(size: usize) -> usize {
    match kmalloc_index(size) {
        Some(index) => KMALLOC_INFO[index].size,
        None if size != 0 && size <= KMALLOC_MAX_SIZE => PAGE_SIZE << get_order(size),
        None => size,
    }
}

/// The alignment of the kmalloc cache of class size `size` (KM-6, `create_boot_cache` with
/// [`SLAB_KMALLOC`]): at least [`ARCH_KMALLOC_MINALIGN`] and the largest power of two dividing
/// the size: power-of-two classes are size-aligned, 96 → 32, 192 → 64. 0 gives the minimum.
pub const fn kmalloc_cache_align(size: usize) -> usize {
    let divisor = if size == 0 { 1 } else { 1 << size.trailing_zeros() };
    let align = if divisor > ARCH_KMALLOC_MINALIGN { divisor } else { ARCH_KMALLOC_MINALIGN };
    calculate_alignment(SLAB_KMALLOC, align, size, 1)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::gfp::{GFP_ATOMIC, GFP_DMA, GFP_DMA32, GFP_KERNEL, GFP_KERNEL_ACCOUNT};
    use std::vec::Vec;

    /// The classes, written out independently of the tables.
    const CLASSES: [usize; 13] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];

    #[test]
    fn km1_every_size_maps_to_the_smallest_fitting_class() {
        for n in 1..=KMALLOC_MAX_CACHE_SIZE {
            let want = *CLASSES.iter().find(|&&c| c >= n).unwrap();
            let index = kmalloc_index(n).unwrap();
            assert_eq!(kmalloc_size(index), Some(want), "{n}");
            assert_eq!(kmalloc_size_roundup(n), want, "{n}");
            assert!(KMALLOC_CACHE_INDICES.contains(&index), "{n}");
        }
        #[rustfmt::skip]
        let examples = [(1, 8), (8, 8), (9, 16), (17, 32), (33, 64), (65, 96), (96, 96), (97, 128),
            (129, 192), (193, 256), (200, 256), (1024, 1024), (1025, 2048), (4097, 8192), (8192, 8192)];
        for (n, class) in examples {
            assert_eq!(kmalloc_size_roundup(n), class, "{n}");
        }
        #[rustfmt::skip]
        let indices = [(1, 3), (65, 1), (96, 1), (129, 2), (192, 2), (193, 8), (200, 8), (1024, 10),
            (1025, 11), (8192, 13)];
        for (n, index) in indices {
            assert_eq!(kmalloc_index(n), Some(index), "{n}");
        }
    }

    #[test]
    fn km4_km5_beyond_the_caches() {
        assert_eq!(kmalloc_index(0), None);
        for n in [KMALLOC_MAX_CACHE_SIZE + 1, 1 << 20, KMALLOC_MAX_SIZE, usize::MAX] {
            assert_eq!(kmalloc_index(n), None, "{n}");
            assert_eq!(kmalloc_cache_name(n, KmallocType::Normal), None);
        }
        assert_eq!(kmalloc_cache_name(0, KmallocType::Normal), None);
    }

    #[test]
    fn km8_roundup() {
        assert_eq!(kmalloc_size_roundup(0), 0);
        assert_eq!(kmalloc_size_roundup(126), 128);
        assert_eq!(kmalloc_size_roundup(8193), 16384); // KM-4.
        assert_eq!(kmalloc_size_roundup(3 * 4096 + 1), 16384);
        assert_eq!(kmalloc_size_roundup(16385), 32768);
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE), KMALLOC_MAX_SIZE);
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE + 1), KMALLOC_MAX_SIZE + 1); // KM-5: fails.
        assert_eq!(kmalloc_size_roundup(usize::MAX), usize::MAX);
        for n in (KMALLOC_MAX_CACHE_SIZE + 1..=KMALLOC_MAX_SIZE).step_by(4093) {
            let r = kmalloc_size_roundup(n);
            assert!(r.is_power_of_two() && r >= n && r / 2 < n.max(PAGE_SIZE + 1), "{n}");
        }
    }

    #[test]
    fn constants() {
        assert_eq!((KMALLOC_SHIFT_LOW, KMALLOC_SHIFT_HIGH, KMALLOC_SHIFT_MAX), (3, 13, 22));
        assert_eq!((KMALLOC_MIN_SIZE, KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE), (8, 8192, 4 << 20));
        assert_eq!((KMALLOC_MAX_ORDER, ZERO_SIZE_PTR), (10, 16));
        // KM-2, KM-3: NULL and ZERO_SIZE_PTR are ignored; real pointers are not.
        assert!(zero_or_null_ptr(0) && zero_or_null_ptr(ZERO_SIZE_PTR) && !zero_or_null_ptr(17));
        assert_eq!(kmalloc_size(NR_KMALLOC_INFO), None);
        assert_eq!(kmalloc_size(0), Some(0));
    }

    #[test]
    fn kmalloc_info_names() {
        assert_eq!(KMALLOC_INFO[1].name(KmallocType::Normal), "kmalloc-96");
        assert_eq!(KMALLOC_INFO[10].name(KmallocType::Normal), "kmalloc-1k");
        assert_eq!(KMALLOC_INFO[13].name(KmallocType::Dma), "dma-kmalloc-8k");
        assert_eq!(KMALLOC_INFO[2].name(KmallocType::Reclaim), "kmalloc-rcl-192");
        assert_eq!(KMALLOC_INFO[11].name(KmallocType::Cgroup), "kmalloc-cg-2k");
        assert_eq!(KMALLOC_INFO[0].name(KmallocType::Normal), "kmalloc-0");
        assert_eq!(KMALLOC_INFO[21].name(KmallocType::Normal), "kmalloc-2M");
        assert_eq!(KMALLOC_INFO[20].size, 1 << 20);
        assert_eq!(kmalloc_cache_name(100, KmallocType::Normal), Some("kmalloc-128"));
        assert_eq!(kmalloc_cache_name(70, KmallocType::Cgroup), Some("kmalloc-cg-96"));
        // Every created cache of every type: name = prefix + short size; 13 × 4 distinct names.
        let mut names = Vec::new();
        for ty in KmallocType::ALL {
            for index in KMALLOC_CACHE_INDICES {
                let name = KMALLOC_INFO[index].name(ty);
                let short = name.strip_prefix(ty.prefix()).unwrap();
                let size = KMALLOC_INFO[index].size;
                let expect = if size >= 1024 { std::format!("{}k", size / 1024) } else { std::format!("{size}") };
                assert_eq!(short, expect);
                names.push(name);
            }
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 13 * NR_KMALLOC_TYPES);
    }

    #[test]
    fn km11_kmalloc_type_priority() {
        assert_eq!(kmalloc_type(GFP_KERNEL), KmallocType::Normal);
        assert_eq!(kmalloc_type(GFP_ATOMIC), KmallocType::Normal);
        assert_eq!(kmalloc_type(GFP_KERNEL | GFP_DMA32), KmallocType::Normal); // No DMA32 caches.
        assert_eq!(kmalloc_type(GFP_KERNEL | GFP_DMA), KmallocType::Dma);
        assert_eq!(kmalloc_type(GFP_KERNEL_ACCOUNT), KmallocType::Cgroup);
        // Every combination of the three bits: DMA > RECLAIMABLE > ACCOUNT.
        for bits in 0..8u32 {
            let dma = bits & 1 != 0;
            let rcl = bits & 2 != 0;
            let acct = bits & 4 != 0;
            let mut gfp = GFP_KERNEL;
            for (on, flag) in [(dma, __GFP_DMA), (rcl, __GFP_RECLAIMABLE), (acct, __GFP_ACCOUNT)] {
                if on {
                    gfp |= flag;
                }
            }
            let want = match (dma, rcl, acct) {
                (true, _, _) => KmallocType::Dma,
                (false, true, _) => KmallocType::Reclaim,
                (false, false, true) => KmallocType::Cgroup,
                _ => KmallocType::Normal,
            };
            assert_eq!(kmalloc_type(gfp), want, "{gfp}");
        }
        assert_eq!(KmallocType::ALL.map(|t| t as usize), [0, 1, 2, 3]);
        assert_eq!(KmallocType::Normal.slab_flags(), SLAB_KMALLOC | SLAB_NO_MERGE);
        assert_eq!(KmallocType::Reclaim.slab_flags(), SLAB_KMALLOC | SLAB_RECLAIM_ACCOUNT);
        assert_eq!(KmallocType::Dma.slab_flags(), SLAB_KMALLOC | SLAB_CACHE_DMA);
        assert_eq!(KmallocType::Cgroup.slab_flags(), SLAB_KMALLOC | SLAB_ACCOUNT);
        for ty in KmallocType::ALL {
            assert_eq!(crate::slab::flags::validate(ty.slab_flags()), Ok(()));
        }
    }

    #[test]
    fn km6_class_cache_alignment() {
        #[rustfmt::skip]
        let cases = [(8, 8), (16, 16), (32, 32), (64, 64), (96, 32), (128, 128), (192, 64), (256, 256),
            (1024, 1024), (8192, 8192), (24, 8), (0, 8)];
        for (size, align) in cases {
            assert_eq!(kmalloc_cache_align(size), align, "{size}");
        }
        for index in KMALLOC_CACHE_INDICES {
            let size = KMALLOC_INFO[index].size;
            let align = kmalloc_cache_align(size);
            assert!(align.is_power_of_two() && align >= ARCH_KMALLOC_MINALIGN && size.is_multiple_of(align), "{size}");
            // The class caches' layout keeps that alignment and the class size as the stride.
            let layout = crate::slab::layout::calculate_sizes(size, align, SlabFlags::empty(), false, None, true);
            assert_eq!(layout.unwrap().size, size);
        }
    }

    #[test]
    fn km6_layout_sizes_round_up_to_the_alignment() {
        use core::alloc::Layout;
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        #[rustfmt::skip]
        let cases = [
            (l(1, 1), Some(1)), (l(24, 8), Some(24)), (l(80, 16), Some(80)), (l(80, 32), Some(96)),
            (l(65, 64), Some(128)), (l(100, 128), Some(128)), (l(1, 4096), Some(4096)),
            (l(5000, 4096), Some(8192)), (l(KMALLOC_MAX_SIZE, 8), Some(KMALLOC_MAX_SIZE)),
            (l(KMALLOC_MAX_SIZE + 1, 1), None), (l(KMALLOC_MAX_SIZE - 1, KMALLOC_MAX_SIZE), Some(KMALLOC_MAX_SIZE)),
            (l(1, KMALLOC_MAX_SIZE * 2), None), (l(isize::MAX as usize - 63, 64), None),
        ];
        for (layout, want) in cases {
            assert_eq!(kmalloc_layout_size(layout), want, "{layout:?}");
        }
        // Every rounded size lands in a class or block aligned to the layout's alignment (KM-6).
        for align in [16, 32, 64, 128, 256, 512, 1024, 2048, 4096] {
            for size in 1..=3 * align {
                let n = kmalloc_layout_size(l(size, align)).unwrap();
                let class_align = if n <= KMALLOC_MAX_CACHE_SIZE {
                    kmalloc_cache_align(kmalloc_size_roundup(n))
                } else {
                    PAGE_SIZE << get_order(n)
                };
                assert!(class_align >= align, "size {size} align {align}: {n} bytes, class aligned to {class_align}");
            }
        }
    }
}
