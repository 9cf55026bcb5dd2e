//! The arithmetic of a SLUB cache (SEMANTICS.md §3.3, §3.4): object alignment, the per-object
//! layout of `calculate_sizes()`, the slab order of `calculate_order()`, the partial-list
//! budgets, and the merge predicate of `find_mergeable()`. Pure functions over plain values.
//!
//! One object slot of `size` bytes (the stride), offsets from the object pointer:
//! `[red_left_pad][object_size][right red zone/pad to inuse][free ptr?][track alloc][track free]
//! [orig_size][padding]`. Slot `i` of a slab starts at `i * size`, its object at
//! `i * size + red_left_pad`.
//!
//! Decisions (the spec is silent): `sizeof(void *)` is the host pointer size (8 in every
//! example); `struct track` has the stack-depot handle (32 bytes on 64-bit); a custom free-pointer
//! offset is only valid for `SLAB_TYPESAFE_BY_RCU` caches (≈6.17; a constructor still forces the
//! pointer outside); a usercopy region prevents merging (hardened usercopy on); sizes that cannot
//! work (0, above `KMALLOC_MAX_SIZE`, an alignment that is not a power of two) are errors where
//! the kernel would misbehave.

use core::fmt;

use super::flags::{
    __OBJECT_POISON, SLAB_HWCACHE_ALIGN, SLAB_KMALLOC, SLAB_MERGE_SAME, SLAB_NEVER_MERGE, SLAB_POISON, SLAB_RED_ZONE,
    SLAB_STORE_USER, SLAB_TYPESAFE_BY_RCU, SlabFlags,
};
use crate::gfp::Gfp;
use crate::kmalloc::classes::KMALLOC_MAX_SIZE;
use crate::order::{MAX_PAGE_ORDER, PAGE_ALLOC_COSTLY_ORDER, PAGE_SIZE, get_order};

/// `sizeof(void *)`: the free pointer's size and the granule of every object size.
const WORD: usize = size_of::<usize>();
/// `ARCH_SLAB_MINALIGN`: the minimum alignment of every slab object (8 on x86-64).
pub const ARCH_SLAB_MINALIGN: usize = 8;
/// The default `cache_line_size()` of SEMANTICS.md (64 bytes); an input of the port.
pub const CACHE_LINE_SIZE: usize = 64;
/// `sizeof(struct track)`: address, stack-depot handle, cpu, pid, jiffies (32 bytes on 64-bit).
pub const TRACK_SIZE: usize = (2 * WORD + 3 * 4).next_multiple_of(WORD);
/// Size of the original-request-size field of kmalloc debug caches (`unsigned int`).
pub const ORIG_SIZE_SIZE: usize = 4;
/// `slub_min_order` default.
pub const SLUB_MIN_ORDER: u32 = 0;
/// `slub_max_order` default: `PAGE_ALLOC_COSTLY_ORDER`.
pub const SLUB_MAX_ORDER: u32 = PAGE_ALLOC_COSTLY_ORDER;
/// `MAX_OBJS_PER_PAGE`: the most objects a slab may hold (a 15-bit counter).
pub const MAX_OBJS_PER_PAGE: usize = 32767;
/// `MIN_PARTIAL`: the fewest empty slabs a node keeps on its partial list.
pub const MIN_PARTIAL: usize = 5;
/// `MAX_PARTIAL`: the most slabs `min_partial` asks a node to keep.
pub const MAX_PARTIAL: usize = 10;

const _: () = assert!(TRACK_SIZE == 32 || WORD != 8);
const _: () = assert!(ARCH_SLAB_MINALIGN.is_power_of_two() && ARCH_SLAB_MINALIGN >= WORD);

/// The checks `kmem_cache_create` makes of its arguments before anything is computed from
/// them (`kmem_cache_sanity_check`: size 0 or above `KMALLOC_MAX_SIZE` is `-EINVAL`), plus
/// an alignment bound: no object can be aligned beyond the largest slab, and the layout
/// arithmetic (merge sizes, red-zone padding) must not overflow.
///
/// # Errors
/// [`LayoutError::ZeroSize`], [`LayoutError::TooLarge`], or [`LayoutError::BadAlign`] for an
/// alignment above `KMALLOC_MAX_SIZE`.
pub const fn check_args(object_size: usize, align: usize) -> Result<(), LayoutError> {
    if object_size == 0 {
        return Err(LayoutError::ZeroSize);
    }
    if object_size > KMALLOC_MAX_SIZE {
        return Err(LayoutError::TooLarge(object_size));
    }
    if align > KMALLOC_MAX_SIZE {
        return Err(LayoutError::BadAlign(align));
    }
    Ok(())
}

/// `calculate_alignment()`: the object alignment for a cache (SL-3).
///
/// With [`SLAB_HWCACHE_ALIGN`] the cache line, halved while `size` fits in half of it, unless the
/// caller's `align` is larger; then at least [`ARCH_SLAB_MINALIGN`], rounded up to a word. Size 0
/// stops halving at 1 (the kernel would loop forever).
pub const fn calculate_alignment(flags: SlabFlags, align: usize, size: usize, cache_line: usize) -> usize {
    let mut align = align;
    if flags.intersects(SLAB_HWCACHE_ALIGN) {
        let mut ralign = cache_line;
        while ralign > 1 && size <= ralign / 2 {
            ralign /= 2;
        }
        if ralign > align {
            align = ralign;
        }
    }
    if align < ARCH_SLAB_MINALIGN {
        align = ARCH_SLAB_MINALIGN;
    }
    align.next_multiple_of(WORD)
}

/// Which `struct track` record (`enum track_item`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackItem {
    /// The last allocation of the object.
    Alloc = 0,
    /// The last free of the object.
    Free = 1,
}

/// One cache's object layout, as `calculate_sizes()` leaves it in `struct kmem_cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectLayout {
    /// The caller's object size (`s->object_size`).
    pub object_size: usize,
    /// The stride between slots, metadata and red zones included (`s->size`).
    pub size: usize,
    /// Object alignment (`s->align`).
    pub align: usize,
    /// Bytes of the object plus its right red zone (`s->inuse`): where metadata starts.
    pub inuse: usize,
    /// Free-pointer offset from the object (`s->offset`); outside when `>= inuse`.
    pub offset: usize,
    /// Left red zone in front of each object (`s->red_left_pad`), 0 without [`SLAB_RED_ZONE`].
    pub red_left_pad: usize,
    /// The cache flags after layout: the caller's, plus [`SLAB_KMALLOC`] for kmalloc caches and
    /// [`__OBJECT_POISON`] when the object itself is poisoned.
    pub flags: SlabFlags,
    /// GFP flags added to every slab page allocation (`s->allocflags`).
    pub allocflags: Gfp,
}

impl ObjectLayout {
    /// `freeptr_outside_object()`: the free pointer does not overlap the object.
    pub const fn freeptr_outside_object(&self) -> bool {
        self.offset >= self.inuse
    }

    /// `get_info_end()`: where the debug metadata starts (after an outside free pointer).
    pub const fn info_end(&self) -> usize {
        if self.freeptr_outside_object() { self.inuse + WORD } else { self.inuse }
    }

    /// Offset of a `struct track` record; `None` without [`SLAB_STORE_USER`].
    pub const fn track_offset(&self, item: TrackItem) -> Option<usize> {
        if self.flags.intersects(SLAB_STORE_USER) { Some(self.info_end() + item as usize * TRACK_SIZE) } else { None }
    }

    /// Offset of the original kmalloc request size (`slub_debug_orig_size()`: kmalloc caches
    /// with [`SLAB_STORE_USER`]); `None` otherwise.
    pub const fn orig_size_offset(&self) -> Option<usize> {
        if self.flags.contains(SLAB_STORE_USER.union(SLAB_KMALLOC)) {
            Some(self.info_end() + 2 * TRACK_SIZE)
        } else {
            None
        }
    }

    /// Where the padding after all metadata starts (`check_pad_bytes()`'s `off`).
    pub const fn pad_offset(&self) -> usize {
        match self.orig_size_offset() {
            Some(off) => off + ORIG_SIZE_SIZE,
            None => match self.track_offset(TrackItem::Alloc) {
                Some(off) => off + 2 * TRACK_SIZE,
                None => self.info_end(),
            },
        }
    }

    /// `size_from_object()`: the slot size measured from the object (the stride minus the left
    /// red zone); padding runs from [`Self::pad_offset`] to here.
    pub const fn size_from_object(&self) -> usize {
        self.size - self.red_left_pad
    }

    /// `slab_ksize()`: what `ksize()` reports for an object of this cache (§4.2): `object_size`
    /// with red zones or poison, `inuse` with RCU or stored users, else the whole stride.
    pub const fn ksize(&self) -> usize {
        if self.flags.intersects(SLAB_RED_ZONE.union(SLAB_POISON)) {
            self.object_size
        } else if self.flags.intersects(SLAB_TYPESAFE_BY_RCU.union(SLAB_STORE_USER)) {
            self.inuse
        } else {
            self.size
        }
    }

    /// The object itself is poisoned on free ([`__OBJECT_POISON`]).
    pub const fn object_poison(&self) -> bool {
        self.flags.intersects(__OBJECT_POISON)
    }

    /// Offset of object `index` from the start of its slab (`fixup_red_left` + stride).
    pub const fn object_offset_in_slab(&self, index: usize) -> usize {
        index * self.size + self.red_left_pad
    }
}

/// Why a cache's layout or order cannot be computed; creation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Object size 0.
    ZeroSize,
    /// This object size is above `KMALLOC_MAX_SIZE` (the kernel's sanity check).
    TooLarge(usize),
    /// This alignment is not a power of two.
    BadAlign(usize),
    /// This custom free-pointer offset is invalid (`create_cache()`): the cache lacks
    /// [`SLAB_TYPESAFE_BY_RCU`], or the offset is not below the object size or not word aligned.
    BadFreeptrOffset(usize),
    /// No slab order up to `MAX_PAGE_ORDER` holds one object of this stride (`-ENOSYS`).
    NoOrder(usize),
}

impl LayoutError {
    /// The kernel's error number: `-ENOSYS` (-38) for [`LayoutError::NoOrder`], else `-EINVAL`.
    pub const fn errno(&self) -> i32 {
        if let LayoutError::NoOrder(_) = self { -38 } else { -22 }
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(f)?;
        write!(f, " (error {})", self.errno())
    }
}

impl LayoutError {
    /// The description without the errno, for a report whose line already gives it.
    pub(crate) fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::ZeroSize => f.write_str("object size 0"),
            LayoutError::TooLarge(n) => write!(f, "object size {n} above KMALLOC_MAX_SIZE {KMALLOC_MAX_SIZE}"),
            LayoutError::BadAlign(align) => {
                write!(f, "alignment {align} is not a power of two of at most KMALLOC_MAX_SIZE {KMALLOC_MAX_SIZE}")
            }
            LayoutError::BadFreeptrOffset(offset) => write!(f, "invalid free pointer offset {offset}"),
            LayoutError::NoOrder(n) => write!(f, "no slab order up to {MAX_PAGE_ORDER} holds a {n}-byte object"),
        }
    }
}

impl core::error::Error for LayoutError {}

/// `calculate_sizes()`: the object layout of a cache (SL-4).
///
/// `align` is the cache alignment ([`calculate_alignment`]'s result); `freeptr_offset` is
/// `kmem_cache_args.freeptr_offset` when `use_freeptr_offset` is set; `is_kmalloc` adds
/// [`SLAB_KMALLOC`] (the same as passing it in `flags`).
///
/// # Errors
/// [`LayoutError`] for object size 0 or above `KMALLOC_MAX_SIZE`, an alignment that is not a
/// power of two, or an invalid `freeptr_offset`.
pub const fn calculate_sizes(
    object_size: usize,
    align: usize,
    flags: SlabFlags,
    has_ctor: bool,
    freeptr_offset: Option<usize>,
    is_kmalloc: bool,
) -> Result<ObjectLayout, LayoutError> {
    if object_size == 0 {
        return Err(LayoutError::ZeroSize);
    }
    if object_size > KMALLOC_MAX_SIZE {
        return Err(LayoutError::TooLarge(object_size));
    }
    if !align.is_power_of_two() {
        return Err(LayoutError::BadAlign(align));
    }
    let rcu = flags.intersects(SLAB_TYPESAFE_BY_RCU);
    if let Some(offset) = freeptr_offset
        && (offset >= object_size || !rcu || !offset.is_multiple_of(WORD))
    {
        return Err(LayoutError::BadFreeptrOffset(offset));
    }
    let mut flags = if is_kmalloc { flags.union(SLAB_KMALLOC) } else { flags };
    let poison = flags.intersects(SLAB_POISON);
    let red_zone = flags.intersects(SLAB_RED_ZONE);
    let store_user = flags.intersects(SLAB_STORE_USER);
    let kmalloc = flags.intersects(SLAB_KMALLOC);

    let mut size = object_size.next_multiple_of(WORD);
    flags = if poison && !rcu && !has_ctor { flags.union(__OBJECT_POISON) } else { flags.difference(__OBJECT_POISON) };
    // A red-zoned object with no slack after it gets one word of right red zone.
    if red_zone && size == object_size {
        size += WORD;
    }
    let inuse = size;

    let orig_size = store_user && kmalloc;
    let offset =
        if (rcu && freeptr_offset.is_none()) || poison || has_ctor || (red_zone && (object_size < WORD || orig_size)) {
            size += WORD;
            inuse
        } else if let Some(offset) = freeptr_offset {
            offset
        } else {
            // The middle, away from both edges that neighbours' small overflows would hit.
            object_size / 2 / WORD * WORD
        };

    if store_user {
        size += 2 * TRACK_SIZE;
        if kmalloc {
            size += ORIG_SIZE_SIZE;
        }
    }
    let mut red_left_pad = 0;
    if red_zone {
        size += WORD; // Padding between metadata and the next object's left red zone.
        red_left_pad = WORD.next_multiple_of(align);
        size += red_left_pad;
    }
    size = size.next_multiple_of(align);
    Ok(ObjectLayout { object_size, size, align, inuse, offset, red_left_pad, flags, allocflags: flags.allocflags() })
}

/// `order_objects()`: how many `size`-byte objects an order-`order` slab holds.
pub const fn order_objects(order: u32, size: usize) -> usize {
    (PAGE_SIZE << order) / size
}

/// `calc_slab_order()`: the smallest order in `min_order..=max_order` whose leftover is at most
/// `1/fract_leftover` of the slab; `max_order + 1` (or `min_order` when above `max_order`) if none.
pub const fn calc_slab_order(size: usize, min_order: u32, max_order: u32, fract_leftover: usize) -> u32 {
    let mut order = min_order;
    while order <= max_order {
        let slab_size = PAGE_SIZE << order;
        if slab_size % size <= slab_size / fract_leftover {
            break;
        }
        order += 1;
    }
    order
}

/// `calculate_order()` with the default `slub_min_order`/`slub_max_order` (SL-5): the slab order
/// and objects per slab for stride `size` on a machine with `nr_cpus` CPUs.
///
/// `min_objects` is `slab_min_objects=` when given (and not 0), else `4 * (fls(nr_cpus) + 1)`;
/// pass the present CPU count (the kernel uses `nr_cpu_ids` when that is 1).
///
/// # Errors
/// [`LayoutError::ZeroSize`] for size 0, [`LayoutError::NoOrder`] above `KMALLOC_MAX_SIZE`.
pub const fn calculate_order(
    size: usize,
    nr_cpus: u32,
    min_objects_override: Option<u32>,
) -> Result<(u32, usize), LayoutError> {
    let min_objects = match min_objects_override {
        Some(n) if n > 0 => n,
        _ => 4 * (u32::BITS - nr_cpus.leading_zeros() + 1),
    };
    calculate_order_bounded(size, min_objects as usize, SLUB_MIN_ORDER, SLUB_MAX_ORDER)
}

/// `calculate_order()` with explicit `min_objects` and `slab_min_order=`/`slab_max_order=` values
/// (both clamped to `MAX_PAGE_ORDER`; a larger minimum raises the maximum, as the boot options do).
///
/// Tries leftover fractions 1/16, 1/8, 1/4 and 1/2 from the order that holds `min_objects`
/// (capped by what fits in `max_order`); else the order of one object. An order whose slab
/// would hold more than [`MAX_OBJS_PER_PAGE`] objects is lowered below that bound.
///
/// # Errors
/// As [`calculate_order`].
pub const fn calculate_order_bounded(
    size: usize,
    min_objects: usize,
    min_order: u32,
    max_order: u32,
) -> Result<(u32, usize), LayoutError> {
    const fn oo(order: u32, size: usize) -> Result<(u32, usize), LayoutError> {
        Ok((order, order_objects(order, size)))
    }
    if size == 0 {
        return Err(LayoutError::ZeroSize);
    }
    let min_order = if min_order > MAX_PAGE_ORDER { MAX_PAGE_ORDER } else { min_order };
    let max_order = if max_order > MAX_PAGE_ORDER { MAX_PAGE_ORDER } else { max_order };
    let max_order = if min_order > max_order { min_order } else { max_order };

    let max_objects = order_objects(max_order, size);
    let max_objects = if max_objects == 0 { 1 } else { max_objects };
    let min_objects = if min_objects == 0 { 1 } else { min_objects };
    let min_objects = if min_objects > max_objects { max_objects } else { min_objects };
    let wanted = get_order(min_objects * size);
    let min_order = if wanted > min_order { wanted } else { min_order };
    if min_order <= MAX_PAGE_ORDER && order_objects(min_order, size) > MAX_OBJS_PER_PAGE {
        return oo(get_order(size * MAX_OBJS_PER_PAGE) - 1, size);
    }
    let mut fraction = 16;
    while fraction > 1 {
        let order = calc_slab_order(size, min_order, max_order, fraction);
        if order <= max_order {
            return oo(order, size);
        }
        fraction /= 2;
    }
    let order = get_order(size);
    if order <= MAX_PAGE_ORDER { oo(order, size) } else { Err(LayoutError::NoOrder(size)) }
}

/// `s->min_partial`: `clamp(ilog2(size) / 2, MIN_PARTIAL, MAX_PARTIAL)`; [`MIN_PARTIAL`] for 0.
pub const fn min_partial(size: usize) -> usize {
    let half_log = if size == 0 { 0 } else { size.ilog2() as usize / 2 };
    if half_log < MIN_PARTIAL {
        MIN_PARTIAL
    } else if half_log > MAX_PARTIAL {
        MAX_PARTIAL
    } else {
        half_log
    }
}

/// `set_cpu_partial()`: the per-CPU partial budget in objects (`s->cpu_partial`) for stride
/// `size`: 6 from a page up, 24 from 1 KiB, 52 from 256 bytes, else 120; 0 for debug caches.
pub const fn cpu_partial_objects(size: usize, debug: bool) -> usize {
    if debug {
        0
    } else if size >= PAGE_SIZE {
        6
    } else if size >= 1024 {
        24
    } else if size >= 256 {
        52
    } else {
        120
    }
}

/// `slub_set_cpu_partial()`: the budget in slabs, assuming half-full slabs:
/// `DIV_ROUND_UP(2 * nr_objects, objs_per_slab)`; 0 when `objs_per_slab` is 0.
pub const fn cpu_partial_slabs(nr_objects: usize, objs_per_slab: usize) -> usize {
    if objs_per_slab == 0 { 0 } else { (2 * nr_objects).div_ceil(objs_per_slab) }
}

/// The cache being created, as `find_mergeable()` sees it (flags after `slab_debug=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeRequest {
    /// Requested object size.
    pub object_size: usize,
    /// Requested alignment (0 = none).
    pub align: usize,
    /// Requested flags.
    pub flags: SlabFlags,
    /// A constructor was given.
    pub has_ctor: bool,
    /// Size of the hardened-usercopy region (0 = none).
    pub usersize: usize,
}

/// An existing cache, as `find_mergeable()` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeTarget {
    /// Its stride (`s->size`).
    pub size: usize,
    /// Its flags.
    pub flags: SlabFlags,
    /// It has a constructor.
    pub has_ctor: bool,
    /// Its usercopy region size.
    pub usersize: usize,
    /// Its reference count; negative while a boot cache is exempt from merging.
    pub refcount: i32,
}

/// `slab_unmergeable()`: `target` may never be an alias target.
pub const fn slab_unmergeable(slab_nomerge: bool, target: &MergeTarget) -> bool {
    slab_nomerge
        || target.flags.intersects(SLAB_NEVER_MERGE)
        || target.has_ctor
        || target.usersize != 0
        || target.refcount < 0
}

/// The `(size, align)` a merge compares: `align' = calculate_alignment(flags, align,
/// ALIGN(size, 8))` and `size' = ALIGN(ALIGN(size, 8), align')`.
pub const fn merge_size(object_size: usize, align: usize, flags: SlabFlags, cache_line: usize) -> (usize, usize) {
    let size = object_size.next_multiple_of(WORD);
    let align = calculate_alignment(flags, align, size, cache_line);
    (size.next_multiple_of(align), align)
}

/// `find_mergeable()` for one candidate (SL-6): whether `new` becomes an alias of `existing`.
///
/// Merging must be enabled (`!slab_nomerge`); `new` has no constructor, no usercopy region and
/// none of [`SLAB_NEVER_MERGE`]; `existing` is mergeable; `new`'s merge size fits in
/// `existing.size`, which is a multiple of `new`'s alignment and wastes less than a word; the
/// [`SLAB_MERGE_SAME`] bits agree. The caller tries candidates oldest first.
pub const fn mergeable(slab_nomerge: bool, new: &MergeRequest, existing: &MergeTarget, cache_line: usize) -> bool {
    if slab_nomerge || new.has_ctor || new.usersize != 0 || new.flags.intersects(SLAB_NEVER_MERGE) {
        return false;
    }
    let (size, align) = merge_size(new.object_size, new.align, new.flags, cache_line);
    !slab_unmergeable(false, existing)
        && size <= existing.size
        && new.flags.intersection(SLAB_MERGE_SAME).bits() == existing.flags.intersection(SLAB_MERGE_SAME).bits()
        && existing.size.is_multiple_of(align)
        && existing.size - size < WORD
}

/// `__kmem_cache_alias()`'s update of the target: `(object_size, inuse)` become
/// `(max(object_size, new_size), max(inuse, ALIGN(new_size, 8)))`.
pub const fn alias_sizes(object_size: usize, inuse: usize, new_size: usize) -> (usize, usize) {
    let aligned = new_size.next_multiple_of(WORD);
    (if new_size > object_size { new_size } else { object_size }, if aligned > inuse { aligned } else { inuse })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::gfp::{__GFP_COMP, GFP_DMA};
    use crate::slab::flags::*;
    use std::format;

    const NONE: SlabFlags = SlabFlags::empty();

    fn layout(size: usize, align: usize, flags: SlabFlags, ctor: bool) -> ObjectLayout {
        calculate_sizes(size, align, flags, ctor, None, false).unwrap()
    }

    #[test]
    fn sl3_alignment_examples() {
        // (flags, align, size, cache line) → alignment; 20/100/8 are SEMANTICS §3.3's examples.
        #[rustfmt::skip]
        let cases = [(SLAB_HWCACHE_ALIGN, 0, 20, 64, 32), (SLAB_HWCACHE_ALIGN, 0, 100, 64, 64),
            (SLAB_HWCACHE_ALIGN, 0, 8, 64, 8), (NONE, 0, 8, 64, 8), (SLAB_HWCACHE_ALIGN, 128, 20, 64, 128),
            (SLAB_HWCACHE_ALIGN, 16, 100, 64, 64), (NONE, 2, 100, 64, 8), (NONE, 24, 100, 64, 24),
            (SLAB_HWCACHE_ALIGN, 0, 0, 64, 8), (SLAB_HWCACHE_ALIGN, 0, 100, 128, 128)];
        for (flags, align, size, line, want) in cases {
            assert_eq!(calculate_alignment(flags, align, size, line), want, "{flags} {align} {size} {line}");
        }
        // Halving: the smallest power of two holding the object, within [8, line].
        for size in 1..=300usize {
            let want = size.next_power_of_two().clamp(8, 64);
            assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 0, size, CACHE_LINE_SIZE), want, "{size}");
            assert_eq!(calculate_alignment(NONE, 0, size, CACHE_LINE_SIZE), 8, "{size}");
        }
    }

    const RCU: SlabFlags = SLAB_TYPESAFE_BY_RCU;
    const RZ: SlabFlags = SLAB_RED_ZONE;
    const SU: SlabFlags = SLAB_STORE_USER;
    const FZPU: SlabFlags = SlabFlags::from_bits(0x87); // CONSISTENCY_CHECKS|RED_ZONE|POISON|STORE_USER

    /// `(object_size, align, flags, ctor, kmalloc)` → `[size, inuse, offset, red_left_pad,
    /// info_end, pad_offset, ksize]`, each worked out by hand from the kernel's rules.
    type Case = (usize, usize, SlabFlags, bool, bool, [usize; 7]);
    #[rustfmt::skip]
    const LAYOUTS: &[Case] = &[
        // SL-4: pointer in the middle; outside (and stride + 8) with a ctor, RCU or poison.
        (64, 8, NONE, false, false, [64, 64, 32, 0, 64, 64, 64]),
        (64, 8, NONE, true, false, [72, 64, 64, 0, 72, 72, 72]),
        (64, 8, RCU, false, false, [72, 64, 64, 0, 72, 72, 64]),
        (64, 8, SLAB_POISON, false, false, [72, 64, 64, 0, 72, 72, 64]),
        (20, 32, SLAB_HWCACHE_ALIGN, false, false, [32, 24, 8, 0, 24, 24, 32]),
        // Red zone: one word of right red zone when there is no slack, a word of padding, and
        // a left red zone of one alignment unit. Outside for objects below a word.
        (64, 8, RZ, false, false, [88, 72, 32, 8, 72, 72, 64]),
        (64, 64, RZ, false, false, [192, 72, 32, 64, 72, 72, 64]),
        (8, 8, RZ, false, false, [32, 16, 0, 8, 16, 16, 8]),
        (4, 8, RZ, false, false, [32, 8, 8, 8, 16, 16, 4]),
        (16, 16, RZ, false, true, [48, 24, 8, 16, 24, 24, 16]),
        // Store user: two 32-byte tracks, plus a 4-byte orig_size for kmalloc caches; with a
        // red zone that moves the pointer outside.
        (64, 8, SU, false, false, [128, 64, 32, 0, 64, 128, 64]),
        (64, 64, SU, false, true, [192, 64, 32, 0, 64, 132, 64]),
        (16, 8, RZ.union(SU), false, false, [104, 24, 8, 8, 24, 88, 16]),
        (16, 16, RZ.union(SU), false, true, [128, 24, 24, 16, 32, 100, 16]),
        (64, 8, FZPU, false, false, [160, 72, 72, 8, 80, 144, 64]),
        (64, 64, FZPU, false, true, [256, 72, 72, 64, 80, 148, 64]),
    ];

    #[test]
    fn sl4_sl15_layouts_by_hand() {
        assert_eq!(TRACK_SIZE, 32);
        for &(n, align, flags, ctor, kmalloc, want) in LAYOUTS {
            let l = calculate_sizes(n, align, flags, ctor, None, kmalloc).unwrap();
            let got = [l.size, l.inuse, l.offset, l.red_left_pad, l.info_end(), l.pad_offset(), l.ksize()];
            assert_eq!(got, want, "{n} {align} {flags} ctor:{ctor} kmalloc:{kmalloc}");
            assert_eq!(l.freeptr_outside_object(), l.offset >= l.inuse);
            assert_eq!(l.size_from_object(), l.size - l.red_left_pad);
            assert_eq!(l.object_offset_in_slab(3), 3 * l.size + l.red_left_pad);
            let tracks = l.track_offset(TrackItem::Alloc).zip(l.track_offset(TrackItem::Free));
            assert_eq!(tracks, flags.contains(SU).then(|| (l.info_end(), l.info_end() + 32)));
            assert_eq!(l.orig_size_offset(), (flags.contains(SU) && kmalloc).then(|| l.info_end() + 64));
            assert_eq!(l.flags.contains(SLAB_KMALLOC), kmalloc);
        }
        // Middle placement for every small size; the pointer always fits.
        for n in 1..=1024 {
            let l = layout(n, 8, NONE, false);
            assert_eq!((l.size, l.inuse, l.offset), (n.next_multiple_of(8), n.next_multiple_of(8), n / 2 / 8 * 8));
            assert!(l.offset + 8 <= l.size, "{n}");
        }
    }

    #[test]
    fn sl4_free_pointer_placement_conditions() {
        // Object poisoning only when the contents need not survive; recomputed, never kept.
        assert!(layout(64, 8, SLAB_POISON, false).object_poison());
        assert!(!layout(64, 8, SLAB_POISON | RCU, false).object_poison());
        assert!(!layout(64, 8, SLAB_POISON, true).object_poison());
        assert!(!layout(64, 8, __OBJECT_POISON, false).object_poison());
        // Red zone moves the pointer outside below a word, or with kmalloc orig_size tracking.
        let outside =
            |n, flags, kmalloc| calculate_sizes(n, 16, flags, false, None, kmalloc).unwrap().freeptr_outside_object();
        assert!(outside(7, RZ, false) && !outside(8, RZ, false) && !outside(7, NONE, false));
        assert!(outside(16, RZ | SU, true) && !outside(16, RZ, true) && !outside(16, RZ | SU, false));
        assert!(!outside(16, SU, true));
        // A custom offset is kept for RCU caches; a ctor or poison still moves it outside.
        let custom = |flags, ctor, off| calculate_sizes(64, 8, flags, ctor, Some(off), false);
        let l = custom(RCU, false, 16).unwrap();
        assert_eq!((l.size, l.inuse, l.offset, l.freeptr_outside_object()), (64, 64, 16, false));
        assert_eq!(custom(RCU, true, 16).unwrap().offset, 64);
        assert_eq!(custom(RCU | SLAB_POISON, false, 16).unwrap().offset, 64);
        for (flags, off) in [(NONE, 16), (RCU, 64), (RCU, 12)] {
            assert_eq!(custom(flags, false, off), Err(LayoutError::BadFreeptrOffset(off)));
        }
        // Invariants over many sizes and flag mixes.
        for n in (1..=600).step_by(7) {
            for flags in [NONE, RZ, SU, FZPU, RCU | SU] {
                for (align, kmalloc) in [(8, false), (64, true)] {
                    let l = calculate_sizes(n, align, flags, false, None, kmalloc).unwrap();
                    assert!(l.inuse >= n && l.pad_offset() <= l.size_from_object() && l.size.is_multiple_of(align));
                    assert!(l.offset + 8 <= l.info_end().max(l.inuse) && l.ksize() >= n, "{n} {flags}");
                }
            }
        }
    }

    #[test]
    fn layout_errors_and_allocflags() {
        assert_eq!(calculate_sizes(0, 8, NONE, false, None, false), Err(LayoutError::ZeroSize));
        assert_eq!(calculate_sizes(64, 24, NONE, false, None, false), Err(LayoutError::BadAlign(24)));
        let too_large = LayoutError::TooLarge(KMALLOC_MAX_SIZE + 1);
        assert_eq!(calculate_sizes(KMALLOC_MAX_SIZE + 1, 8, NONE, false, None, false), Err(too_large));
        assert!(calculate_sizes(KMALLOC_MAX_SIZE, 8, NONE, false, None, false).is_ok());
        assert_eq!(layout(64, 8, SLAB_CACHE_DMA, false).allocflags, __GFP_COMP | GFP_DMA);
        assert_eq!(
            format!("{}", LayoutError::BadAlign(24)),
            "alignment 24 is not a power of two of at most KMALLOC_MAX_SIZE 4194304 (error -22)"
        );
        assert_eq!(check_args(64, KMALLOC_MAX_SIZE), Ok(()));
        assert_eq!(check_args(64, KMALLOC_MAX_SIZE + 1), Err(LayoutError::BadAlign(KMALLOC_MAX_SIZE + 1)));
        assert_eq!(check_args(usize::MAX, 0), Err(LayoutError::TooLarge(usize::MAX)));
        assert_eq!(check_args(0, 0), Err(LayoutError::ZeroSize));
        let no_order = LayoutError::NoOrder(1 << 23);
        assert_eq!(format!("{no_order}"), "no slab order up to 10 holds a 8388608-byte object (error -38)");
        assert_eq!((too_large.errno(), LayoutError::ZeroSize.errno()), (-22, -22));
    }

    #[test]
    fn sl5_orders_with_8_cpus() {
        assert_eq!(calculate_order(64, 8, None), Ok((0, 64)));
        assert_eq!(calculate_order(704, 8, None), Ok((2, 23)));
        assert_eq!(calculate_order(1024, 8, None), Ok((3, 32)));
        // The kmalloc caches as /proc/slabinfo shows them (objperslab, pagesperslab).
        #[rustfmt::skip]
        let classes = [(8, 0, 512), (96, 0, 42), (192, 0, 21), (256, 1, 32), (512, 2, 32),
            (2048, 3, 16), (4096, 3, 8), (8192, 3, 4)];
        for (size, order, objects) in classes {
            assert_eq!(calculate_order(size, 8, None), Ok((order, objects)), "{size}");
        }
    }

    #[test]
    fn sl5_order_inputs_and_limits() {
        assert_eq!(calculate_order(1024, 1, None), Ok((1, 8))); // min_objects 8.
        assert_eq!(calculate_order(1024, 8, Some(4)), Ok((0, 4)));
        assert_eq!(calculate_order(1024, 8, Some(0)), Ok((3, 32))); // 0 = not given.
        assert_eq!(calculate_order(12288, 8, None), Ok((3, 2))); // Leftover ≤ 1/4.
        assert_eq!(calculate_order(65536, 8, None), Ok((4, 1))); // Above slub_max_order.
        assert_eq!(calculate_order(KMALLOC_MAX_SIZE, 8, None), Ok((10, 1)));
        let err = LayoutError::NoOrder(KMALLOC_MAX_SIZE + 1);
        assert_eq!(calculate_order(KMALLOC_MAX_SIZE + 1, 8, None), Err(err));
        assert_eq!(calculate_order(0, 8, None), Err(LayoutError::ZeroSize));
        // slab_min_order=10 would exceed MAX_OBJS_PER_PAGE for tiny objects.
        assert_eq!(calculate_order_bounded(24, 20, 10, 3), Ok((7, 21845)));
        assert_eq!(calculate_order_bounded(8, 20, 10, 10), Ok((5, 16384)));
        assert_eq!(calculate_order_bounded(64, 20, 0, 99), calculate_order(64, 8, None));
        assert_eq!(calc_slab_order(12288, 3, 3, 16), 4); // None fits: max + 1.
        assert_eq!(calc_slab_order(64, 5, 3, 16), 5);
        assert_eq!(order_objects(2, 704), 23);
        for cpus in [1, 2, 4, 8, 64, 1024] {
            for size in 1..=8192 {
                let (order, objects) = calculate_order(size, cpus, None).unwrap();
                let min_objects = (4 * (u32::BITS - cpus.leading_zeros() + 1)) as usize;
                assert!(order <= SLUB_MAX_ORDER && objects == order_objects(order, size), "{size}");
                assert!(objects >= min_objects.min(order_objects(SLUB_MAX_ORDER, size)), "{size}");
            }
        }
    }

    #[test]
    fn partial_budgets() {
        #[rustfmt::skip]
        let partial = [(0, 5), (8, 5), (64, 5), (1024, 5), (4096, 6), (8192, 6), (1 << 20, 10), (1 << 22, 10)];
        for (size, want) in partial {
            assert_eq!(min_partial(size), want, "{size}");
        }
        #[rustfmt::skip]
        let cpu = [(8, 120), (255, 120), (256, 52), (1023, 52), (1024, 24), (4095, 24), (4096, 6), (8192, 6)];
        for (size, want) in cpu {
            assert_eq!(cpu_partial_objects(size, false), want, "{size}");
            assert_eq!(cpu_partial_objects(size, true), 0);
        }
        assert_eq!(cpu_partial_slabs(52, 32), 4); // 256-byte objects, order 1.
        assert_eq!(cpu_partial_slabs(120, 64), 4);
        assert_eq!(cpu_partial_slabs(6, 4), 3);
        assert_eq!((cpu_partial_slabs(0, 64), cpu_partial_slabs(6, 0)), (0, 0));
    }

    fn req(object_size: usize, align: usize, flags: SlabFlags) -> MergeRequest {
        MergeRequest { object_size, align, flags, has_ctor: false, usersize: 0 }
    }

    fn target(size: usize, flags: SlabFlags) -> MergeTarget {
        MergeTarget { size, flags, has_ctor: false, usersize: 0, refcount: 1 }
    }

    fn merges(new: MergeRequest, existing: MergeTarget) -> bool {
        mergeable(false, &new, &existing, CACHE_LINE_SIZE)
    }

    #[test]
    fn sl6_merge_sizes() {
        // (new size, new align, new flags, existing stride, merges): 60 → 64 and not 56 → 64
        // (waste 8 is not < 8) are SL-6's examples; ALIGN(24, 16) = 32 > 24; 72 % 64 != 0.
        #[rustfmt::skip]
        let cases = [(60, 0, NONE, 64, true), (56, 0, NONE, 64, false), (64, 0, NONE, 64, true),
            (65, 0, NONE, 64, false), (68, 0, NONE, 72, true), (60, 64, NONE, 64, true),
            (24, 16, NONE, 24, false), (40, 16, NONE, 48, true), (64, 0, SLAB_HWCACHE_ALIGN, 72, false),
            (100, 0, SLAB_HWCACHE_ALIGN, 128, true)];
        for (size, align, flags, existing, want) in cases {
            assert_eq!(merges(req(size, align, flags), target(existing, NONE)), want, "{size} {align} {existing}");
        }
        assert_eq!(merge_size(60, 0, NONE, 64), (64, 8));
        assert_eq!(merge_size(20, 0, SLAB_HWCACHE_ALIGN, 64), (32, 32));
        assert_eq!(alias_sizes(64, 64, 60), (64, 64));
        assert_eq!(alias_sizes(56, 56, 60), (60, 64));
    }

    #[test]
    fn sl6_merge_flags_and_ctors() {
        assert!(!mergeable(true, &req(64, 0, NONE), &target(64, NONE), 64)); // slab_nomerge.
        let ctor = MergeRequest { has_ctor: true, ..req(64, 0, NONE) };
        assert!(!merges(ctor, target(64, NONE)));
        assert!(!merges(MergeRequest { usersize: 16, ..req(64, 0, NONE) }, target(64, NONE)));
        assert!(!merges(req(64, 0, NONE), MergeTarget { has_ctor: true, ..target(64, NONE) }));
        assert!(!merges(req(64, 0, NONE), MergeTarget { usersize: 8, ..target(64, NONE) }));
        assert!(!merges(req(64, 0, NONE), MergeTarget { refcount: -1, ..target(64, NONE) }));
        for never in (0..32).map(|b| SlabFlags::from_bits(1 << b)).filter(|&b| SLAB_NEVER_MERGE.contains(b)) {
            assert!(!merges(req(64, 0, never), target(64, never)), "{never}");
            assert!(!merges(req(64, 0, NONE), target(64, never)), "{never}");
            assert!(slab_unmergeable(false, &target(64, never)));
        }
        for same in [SLAB_RECLAIM_ACCOUNT, SLAB_CACHE_DMA, SLAB_CACHE_DMA32, SLAB_ACCOUNT, SLAB_NO_REAP] {
            assert!(!merges(req(64, 0, same), target(64, NONE)), "{same}");
            assert!(!merges(req(64, 0, NONE), target(64, same)), "{same}");
            assert!(merges(req(64, 0, same | SLAB_PANIC), target(64, same)), "{same}");
        }
        assert!(merges(req(64, 0, SLAB_CONSISTENCY_CHECKS), target(64, NONE))); // ≈6.17.
        assert!(!slab_unmergeable(false, &target(64, NONE)) && slab_unmergeable(true, &target(64, NONE)));
    }
}
