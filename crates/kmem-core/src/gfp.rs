//! GFP ("get free pages") flags: the `gfp_t` of `include/linux/gfp_types.h` and the helpers of
//! `include/linux/gfp.h`, with the kernel's bit values, composites and `%pGg` printing.
//!
//! A [`Gfp`] is a plain `u32` bit set. Every allocating call takes one; the zone modifiers pick
//! the highest zone ([`Gfp::zone`]), the mobility bits pick the free list
//! ([`Gfp::migratetype`]), and the rest say how hard the allocator may try (reclaim, retry,
//! reserves) and what it must do with the memory (zero it, build a compound page).
//!
//! Decisions for this port (SEMANTICS.md §1 and §9):
//! * Configuration: 64-bit, no `CONFIG_KASAN_HW_TAGS`, no `CONFIG_LOCKDEP`, no
//!   `CONFIG_SLAB_OBJ_EXT`. So `__GFP_SKIP_ZERO`, `__GFP_SKIP_KASAN`, `__GFP_NOLOCKDEP` and
//!   `__GFP_NO_OBJ_EXT` are 0, the last defined bit is `__GFP_ZEROTAGS` (bit 23),
//!   [`__GFP_BITS_SHIFT`] is 24 and [`__GFP_BITS_MASK`] is `0xff_ffff`.
//! * [`GFP_NOWAIT`] is the newest kernels' `__GFP_KSWAPD_RECLAIM | __GFP_NOWARN` (0x2800), not
//!   the historical `__GFP_KSWAPD_RECLAIM` (0x800) (rule GFP-1).
//! * The seeds' removed flags still compile: [`__GFP_WAIT`] and [`__GFP_REPEAT`] map to their
//!   successors, and [`__GFP_COLD`] takes the unused bit 0x200 (`__GFP_ATOMIC` until 6.2); kmem
//!   honours it in the per-CPU page lists and prints it by name.
//! * `Display` prints exactly what the kernel's `%pGg` prints (greedy over [`GFPFLAG_NAMES`],
//!   unknown bits as one trailing hex number, nothing for 0); `Debug` prints `mode:%#x(%pGg)`
//!   without the `mode:`.

use core::fmt;

use crate::zone::{MigrateType, ZoneType};

/// `gfp_t`: a set of allocation flags; unknown bits are kept, as in C.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Gfp(u32);

// Zone modifiers: the highest zone the allocation may come from (`gfp_zone()`). At most one of
// DMA, HIGHMEM and DMA32 may be set; MOVABLE is also a mobility hint.

/// Lowest zone only (`ZONE_DMA`, 16 MiB on x86-64); exists for historical reasons, avoid.
pub const __GFP_DMA: Gfp = Gfp(0x01);
/// The allocation may come from high memory (with `__GFP_MOVABLE`: from `ZONE_MOVABLE`).
pub const __GFP_HIGHMEM: Gfp = Gfp(0x02);
/// 32-bit addressable memory (`ZONE_DMA32`); `kmalloc` does not honour it.
pub const __GFP_DMA32: Gfp = Gfp(0x04);
/// The page can be migrated by compaction, or reclaimed; with `__GFP_HIGHMEM` selects `ZONE_MOVABLE`.
pub const __GFP_MOVABLE: Gfp = Gfp(0x08);

// Mobility: which pageblock type (migrate type) the page is grouped with.

/// Slab pages whose objects a shrinker can free (`SLAB_RECLAIM_ACCOUNT`).
pub const __GFP_RECLAIMABLE: Gfp = Gfp(0x10);

// Watermark modifiers: access to the emergency reserves.

/// High priority: the caller may use part of the min-watermark reserve.
pub const __GFP_HIGH: Gfp = Gfp(0x20);
/// Access to all memory, ignoring watermarks; for callers that free memory (GFP-3).
pub const __GFP_MEMALLOC: Gfp = Gfp(0x20000);
/// Never use the emergency reserves; takes precedence over `__GFP_MEMALLOC` (GFP-3).
pub const __GFP_NOMEMALLOC: Gfp = Gfp(0x80000);

// Reclaim modifiers: how hard the allocator may try. They only matter for allocations that may
// sleep (`__GFP_DIRECT_RECLAIM`); GFP_ATOMIC and GFP_NOWAIT ignore them.

/// Reclaim may start physical I/O.
pub const __GFP_IO: Gfp = Gfp(0x40);
/// Reclaim may call into the filesystem layer.
pub const __GFP_FS: Gfp = Gfp(0x80);
/// The caller may enter direct reclaim, so it may sleep.
pub const __GFP_DIRECT_RECLAIM: Gfp = Gfp(0x400);
/// Wake kswapd (background reclaim) when the allocation enters the slow path and the node is
/// not balanced for it (`wakeup_kswapd`: no usable zone above its high watermark at the
/// request's order).
pub const __GFP_KSWAPD_RECLAIM: Gfp = Gfp(0x800);
/// Retry while reclaim makes progress, never invoke the OOM killer, and fail in the end.
pub const __GFP_RETRY_MAYFAIL: Gfp = Gfp(0x4000);
/// Retry forever: the caller cannot handle failure; discouraged for costly orders.
pub const __GFP_NOFAIL: Gfp = Gfp(0x8000);
/// One lightweight reclaim/compaction attempt, never the OOM killer; failure is likely.
pub const __GFP_NORETRY: Gfp = Gfp(0x10000);
/// Both reclaim bits: direct reclaim allowed and kswapd woken.
pub const __GFP_RECLAIM: Gfp = Gfp(__GFP_DIRECT_RECLAIM.0 | __GFP_KSWAPD_RECLAIM.0);

// Placement modifiers: which node or cgroup the memory belongs to.

/// The caller will dirty the page: spread such pages over nodes for dirty balancing.
pub const __GFP_WRITE: Gfp = Gfp(0x1000);
/// Enforce the cpuset memory policy of the caller.
pub const __GFP_HARDWALL: Gfp = Gfp(0x100000);
/// Only the requested node, no fallback (the NOFALLBACK zonelist).
pub const __GFP_THISNODE: Gfp = Gfp(0x200000);
/// Charge the allocation to the caller's memory cgroup.
pub const __GFP_ACCOUNT: Gfp = Gfp(0x400000);

// Action modifiers: what to do with the memory, or with a failure.

/// Return zeroed memory.
pub const __GFP_ZERO: Gfp = Gfp(0x100);
/// Do not report an allocation failure.
pub const __GFP_NOWARN: Gfp = Gfp(0x2000);
/// Build compound-page metadata for an order > 0 block.
pub const __GFP_COMP: Gfp = Gfp(0x40000);
/// When zeroing, also zero the memory tags (arm64 MTE).
pub const __GFP_ZEROTAGS: Gfp = Gfp(0x800000);
/// Skip zeroing on allocation; 0 here (needs `CONFIG_KASAN_HW_TAGS`).
pub const __GFP_SKIP_ZERO: Gfp = Gfp(0);
/// Skip KASAN tag poisoning; 0 here (needs `CONFIG_KASAN_HW_TAGS`).
pub const __GFP_SKIP_KASAN: Gfp = Gfp(0);
/// Do not track this allocation with lockdep; 0 here (needs `CONFIG_LOCKDEP`).
pub const __GFP_NOLOCKDEP: Gfp = Gfp(0);
/// No slab object extension vector; 0 here (needs `CONFIG_SLAB_OBJ_EXT`).
pub const __GFP_NO_OBJ_EXT: Gfp = Gfp(0);

/// Number of defined flag bits in this configuration (`___GFP_LAST_BIT`).
pub const __GFP_BITS_SHIFT: u32 = 24;
/// Every defined flag bit.
pub const __GFP_BITS_MASK: Gfp = Gfp((1 << __GFP_BITS_SHIFT) - 1);
/// The four zone-modifier bits that index the `gfp_zone()` table.
pub const GFP_ZONEMASK: Gfp = Gfp(0xf);
/// The mobility bits that `gfp_migratetype()` shifts down by 3.
pub const GFP_MOVABLE_MASK: Gfp = Gfp(__GFP_RECLAIMABLE.0 | __GFP_MOVABLE.0);

// Composites (gfp_types.h), the names callers normally use.

/// Cannot sleep (interrupt handlers, spin locks); may use part of the reserves.
pub const GFP_ATOMIC: Gfp = Gfp(__GFP_HIGH.0 | __GFP_KSWAPD_RECLAIM.0);
/// May sleep, reclaim, do I/O and enter the filesystem: the usual choice in process context.
pub const GFP_KERNEL: Gfp = Gfp(__GFP_RECLAIM.0 | __GFP_IO.0 | __GFP_FS.0);
/// `GFP_KERNEL`, charged to the caller's memory cgroup.
pub const GFP_KERNEL_ACCOUNT: Gfp = Gfp(GFP_KERNEL.0 | __GFP_ACCOUNT.0);
/// Cannot sleep and gets no reserves; failures are not reported.
///
/// Target value 0x2800 (`__GFP_KSWAPD_RECLAIM | __GFP_NOWARN`, Linux ≈6.17/6.18 and later).
/// History: 0x800 (`__GFP_KSWAPD_RECLAIM` alone) from 4.4 on; LDD3 described it as
/// `GFP_ATOMIC & ~__GFP_HIGH`. The value shows in `%pGg` output and tracepoints.
pub const GFP_NOWAIT: Gfp = Gfp(__GFP_KSWAPD_RECLAIM.0 | __GFP_NOWARN.0);
/// May sleep and reclaim but start no I/O; prefer a `memalloc_noio` scope.
pub const GFP_NOIO: Gfp = __GFP_RECLAIM;
/// May sleep, reclaim and do I/O but not enter the filesystem; prefer a `memalloc_nofs` scope.
pub const GFP_NOFS: Gfp = Gfp(__GFP_RECLAIM.0 | __GFP_IO.0);
/// Memory for user space, directly accessible by the kernel; obeys the cpuset.
pub const GFP_USER: Gfp = Gfp(GFP_KERNEL.0 | __GFP_HARDWALL.0);
/// `__GFP_DMA`: the lowest zone only.
pub const GFP_DMA: Gfp = __GFP_DMA;
/// `__GFP_DMA32`: 32-bit addressable memory.
pub const GFP_DMA32: Gfp = __GFP_DMA32;
/// User memory that may come from high memory (not mapped into the kernel).
pub const GFP_HIGHUSER: Gfp = Gfp(GFP_USER.0 | __GFP_HIGHMEM.0);
/// Movable user memory (page cache, anonymous pages): may come from `ZONE_MOVABLE`.
pub const GFP_HIGHUSER_MOVABLE: Gfp = Gfp(GFP_HIGHUSER.0 | __GFP_MOVABLE.0 | __GFP_SKIP_KASAN.0);
/// Transparent huge page without reclaim: fail fast and quietly.
pub const GFP_TRANSHUGE_LIGHT: Gfp =
    Gfp((GFP_HIGHUSER_MOVABLE.0 | __GFP_COMP.0 | __GFP_NOMEMALLOC.0 | __GFP_NOWARN.0) & !__GFP_RECLAIM.0);
/// Transparent huge page that may enter direct reclaim.
pub const GFP_TRANSHUGE: Gfp = Gfp(GFP_TRANSHUGE_LIGHT.0 | __GFP_DIRECT_RECLAIM.0);

// Internal masks (mm/internal.h, mm/slab.h).

/// The flags that control reclaim behaviour, passed down to nested allocations by reclaim.
pub const GFP_RECLAIM_MASK: Gfp = Gfp(__GFP_RECLAIM.0
    | __GFP_HIGH.0
    | __GFP_IO.0
    | __GFP_FS.0
    | __GFP_NOWARN.0
    | __GFP_RETRY_MAYFAIL.0
    | __GFP_NOFAIL.0
    | __GFP_NORETRY.0
    | __GFP_MEMALLOC.0
    | __GFP_NOMEMALLOC.0);
/// `gfp_allowed_mask` during early boot: no reclaim, no I/O, no filesystem.
pub const GFP_BOOT_MASK: Gfp = Gfp(__GFP_BITS_MASK.0 & !(__GFP_RECLAIM.0 | __GFP_IO.0 | __GFP_FS.0));
/// The flags that constrain which nodes may be used (cpuset, this node only).
pub const GFP_CONSTRAINT_MASK: Gfp = Gfp(__GFP_HARDWALL.0 | __GFP_THISNODE.0);
/// Flags a slab allocation must not carry; `kmalloc_fix_flags` strips them (GFP-6).
pub const GFP_SLAB_BUG_MASK: Gfp = Gfp(__GFP_DMA32.0 | __GFP_HIGHMEM.0 | !__GFP_BITS_MASK.0);

// Legacy names used by the seeds (LDD3, Linux 2.6). See SEMANTICS.md §9.

/// `__GFP_WAIT` ("may sleep") was split in 4.4 into `__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM`;
/// it maps to [`__GFP_RECLAIM`], so `__GFP_WAIT | __GFP_IO | __GFP_FS == GFP_KERNEL` still holds.
pub const __GFP_WAIT: Gfp = __GFP_RECLAIM;
/// `__GFP_REPEAT` ("try hard") became [`__GFP_RETRY_MAYFAIL`] in 4.13: retry while progress
/// is made, never OOM-kill, may fail.
pub const __GFP_REPEAT: Gfp = __GFP_RETRY_MAYFAIL;
/// `__GFP_COLD` (removed in 4.15) asked for a cache-cold page. kmem gives it the now unused bit
/// 0x200 (`__GFP_ATOMIC` until 6.2) and honours it: the page is taken from, and freed to, the
/// cold tail of the per-CPU list. Printed as `__GFP_COLD`.
pub const __GFP_COLD: Gfp = Gfp(0x200);
/// `__GFP_NOTRACK` (kmemcheck, removed in 4.15) has no meaning now; it is 0 so old code compiles.
pub const __GFP_NOTRACK: Gfp = Gfp(0);

/// The names `%pGg` prints, in the kernel's `__def_gfpflag_names` order (mmflags.h): composites
/// first, most bits first, then single bits in bit order. Only the order matters: the printer is
/// greedy. kmem adds `__GFP_COLD` in its bit's slot.
#[rustfmt::skip]
pub const GFPFLAG_NAMES: &[(Gfp, &str)] = &[
    (GFP_TRANSHUGE, "GFP_TRANSHUGE"),
    (GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"),
    (GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
    (GFP_HIGHUSER, "GFP_HIGHUSER"),
    (GFP_USER, "GFP_USER"),
    (GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"),
    (GFP_KERNEL, "GFP_KERNEL"),
    (GFP_NOFS, "GFP_NOFS"),
    (GFP_ATOMIC, "GFP_ATOMIC"),
    (GFP_NOIO, "GFP_NOIO"),
    (GFP_NOWAIT, "GFP_NOWAIT"),
    (GFP_DMA, "GFP_DMA"),
    (GFP_DMA32, "GFP_DMA32"),
    (__GFP_RECLAIM, "__GFP_RECLAIM"),
    // Single bits, in bit order (TRACE_GFP_FLAGS).
    (__GFP_DMA, "__GFP_DMA"), (__GFP_HIGHMEM, "__GFP_HIGHMEM"), (__GFP_DMA32, "__GFP_DMA32"),
    (__GFP_MOVABLE, "__GFP_MOVABLE"), (__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"), (__GFP_HIGH, "__GFP_HIGH"),
    (__GFP_IO, "__GFP_IO"), (__GFP_FS, "__GFP_FS"), (__GFP_ZERO, "__GFP_ZERO"), (__GFP_COLD, "__GFP_COLD"),
    (__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"), (__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
    (__GFP_WRITE, "__GFP_WRITE"), (__GFP_NOWARN, "__GFP_NOWARN"), (__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"),
    (__GFP_NOFAIL, "__GFP_NOFAIL"), (__GFP_NORETRY, "__GFP_NORETRY"), (__GFP_MEMALLOC, "__GFP_MEMALLOC"),
    (__GFP_COMP, "__GFP_COMP"), (__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC"), (__GFP_HARDWALL, "__GFP_HARDWALL"),
    (__GFP_THISNODE, "__GFP_THISNODE"), (__GFP_ACCOUNT, "__GFP_ACCOUNT"), (__GFP_ZEROTAGS, "__GFP_ZEROTAGS"),
];

// GFP-1 at compile time: the §1.2 values.
const _: () = assert!(__GFP_RECLAIM.0 == 0xc00);
const _: () = assert!(GFP_ATOMIC.0 == 0x820);
const _: () = assert!(GFP_KERNEL.0 == 0xcc0);
const _: () = assert!(GFP_KERNEL_ACCOUNT.0 == 0x40_0cc0);
const _: () = assert!(GFP_NOWAIT.0 == 0x2800);
const _: () = assert!(GFP_NOIO.0 == 0xc00);
const _: () = assert!(GFP_NOFS.0 == 0xc40);
const _: () = assert!(GFP_USER.0 == 0x10_0cc0);
const _: () = assert!(GFP_HIGHUSER.0 == 0x10_0cc2);
const _: () = assert!(GFP_HIGHUSER_MOVABLE.0 == 0x10_0cca);
const _: () = assert!(GFP_TRANSHUGE_LIGHT.0 == 0x1c_20ca);
const _: () = assert!(GFP_TRANSHUGE.0 == 0x1c_24ca);
const _: () = assert!(__GFP_BITS_MASK.0 == 0xff_ffff);
const _: () = assert!(__GFP_ZEROTAGS.0 == 1 << (__GFP_BITS_SHIFT - 1)); // The last defined bit.
const _: () = assert!(GFP_MOVABLE_MASK.0 >> 3 == MigrateType::HighAtomic as u32);
// The greedy printer would print a name for an empty mask: the table has none.
const _: () = {
    let mut i = 0;
    while i < GFPFLAG_NAMES.len() {
        assert!(GFPFLAG_NAMES[i].0.0 != 0);
        i += 1;
    }
};

crate::flagset::flag_set!(Gfp, "gfp_t");

impl Gfp {
    /// `gfpflags_allow_blocking()`: `__GFP_DIRECT_RECLAIM` is set, so the caller may sleep (GFP-5).
    pub const fn allow_blocking(self) -> bool {
        self.intersects(__GFP_DIRECT_RECLAIM)
    }

    /// `gfpflags_allow_spinning()`: any `__GFP_RECLAIM` bit is set, so spinning on locks is allowed.
    pub const fn allow_spinning(self) -> bool {
        self.intersects(__GFP_RECLAIM)
    }

    /// `gfp_compaction_allowed()`: `__GFP_IO` is set (migration may need I/O).
    pub const fn compaction_allowed(self) -> bool {
        self.intersects(__GFP_IO)
    }

    /// `gfp_has_io_fs()`: both `__GFP_IO` and `__GFP_FS` are set.
    pub const fn has_io_fs(self) -> bool {
        self.contains(__GFP_IO.union(__GFP_FS))
    }

    /// `gfp_zone()`: the highest zone the zone modifiers allow (§1.4, GFP-2).
    ///
    /// The table assumes every zone is configured; the page allocator maps absent zones (no
    /// HighMem on x86-64, for one) to `Normal` itself. Bits other than [`GFP_ZONEMASK`] are
    /// ignored.
    ///
    /// # Errors
    /// [`BadGfpZone`] for the 8 combinations the kernel's `GFP_ZONE_BAD` marks (0x3, 0x5, 0x6,
    /// 0x7, 0xb, 0xd, 0xe, 0xf): more than one of `__GFP_DMA`, `__GFP_HIGHMEM`, `__GFP_DMA32`.
    /// The kernel only catches them with `VM_BUG_ON`; kmem always does, and never panics here.
    #[inline]
    pub const fn zone(self) -> Result<ZoneType, BadGfpZone> {
        // `GFP_ZONE_TABLE` as a lookup: one load instead of a chain of compares.
        const TABLE: [Option<ZoneType>; 16] = {
            let mut t = [None; 16];
            t[0x0] = Some(ZoneType::Normal);
            t[0x8] = Some(ZoneType::Normal);
            t[0x1] = Some(ZoneType::Dma);
            t[0x9] = Some(ZoneType::Dma);
            t[0x2] = Some(ZoneType::HighMem);
            t[0x4] = Some(ZoneType::Dma32);
            t[0xc] = Some(ZoneType::Dma32);
            t[0xa] = Some(ZoneType::Movable);
            t
        };
        match TABLE[(self.0 & GFP_ZONEMASK.0) as usize] {
            Some(zone) => Ok(zone),
            None => Err(BadGfpZone { flags: self }),
        }
    }

    /// `gfp_migratetype()`: `Movable` for `__GFP_MOVABLE`, `Reclaimable` for
    /// `__GFP_RECLAIMABLE`, `Unmovable` for neither (GFP-4).
    ///
    /// Both bits set is a caller bug: the kernel `VM_WARN`s and returns 3 (`MIGRATE_HIGHATOMIC`),
    /// which would take from the high-atomic reserve and, as a per-CPU list index, alias the next
    /// order's unmovable list. kmem returns `Reclaimable` instead, the weaker of the two promises:
    /// a movable page in a reclaimable pageblock costs nothing, while a page that cannot migrate
    /// in a movable pageblock defeats compaction. Callers that want the warning check
    /// [`Gfp::has_mobility_conflict`]. Never panics. Disabled mobility grouping (everything
    /// `Unmovable`) is the page allocator's business.
    #[inline]
    pub const fn migratetype(self) -> MigrateType {
        const TABLE: [MigrateType; 4] =
            [MigrateType::Unmovable, MigrateType::Movable, MigrateType::Reclaimable, MigrateType::Reclaimable];
        TABLE[((self.0 & GFP_MOVABLE_MASK.0) >> 3) as usize & 3]
    }

    /// Both `__GFP_MOVABLE` and `__GFP_RECLAIMABLE` are set (the kernel's `VM_WARN` case).
    pub const fn has_mobility_conflict(self) -> bool {
        self.contains(GFP_MOVABLE_MASK)
    }

    /// `gfp_nested_mask()`: flags for internal metadata allocations made on behalf of `self`.
    ///
    /// Keeps only the context bits (`GFP_KERNEL | GFP_ATOMIC | __GFP_NOLOCKDEP`), drops zone
    /// and action bits, and makes the nested allocation fail fast and quietly without
    /// reserves (`__GFP_NORETRY | __GFP_NOMEMALLOC | __GFP_NOWARN`).
    pub const fn nested(self) -> Gfp {
        self.intersection(GFP_KERNEL.union(GFP_ATOMIC).union(__GFP_NOLOCKDEP))
            .union(__GFP_NORETRY)
            .union(__GFP_NOMEMALLOC)
            .union(__GFP_NOWARN)
    }

    /// Applies the memalloc_noio / memalloc_nofs scope: `noio` clears IO and FS, `nofs` clears FS.
    ///
    /// The kernel's `current_gfp_context()`, which the page allocator applies to every request
    /// made inside a scope (GFP-7). NOIO is the weaker context and wins when both are active.
    pub const fn with_scope(self, noio: bool, nofs: bool) -> Gfp {
        if noio {
            self.difference(__GFP_IO.union(__GFP_FS))
        } else if nofs {
            self.difference(__GFP_FS)
        } else {
            self
        }
    }
}

/// Prints like the kernel's `%pGg` (`format_flags()` in lib/vsprintf.c).
///
/// Walks [`GFPFLAG_NAMES`] in order; each entry whose bits are all still set is printed and its
/// bits cleared, names joined by `|`. Bits no entry covers follow as one `0x…` number. An
/// empty set prints nothing (tracepoints print `none` instead; that is the caller's choice).
impl fmt::Display for Gfp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::flagset::format_flags(f, self.0, GFPFLAG_NAMES.iter().map(|&(flag, name)| (flag.0, name)))
    }
}

/// `gfp_zone()` was given an invalid combination of zone modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadGfpZone {
    /// The whole flag set that was passed.
    pub flags: Gfp,
}

impl BadGfpZone {
    /// Just the zone-modifier bits of the offending flags.
    pub const fn modifiers(&self) -> Gfp {
        self.flags.intersection(GFP_ZONEMASK)
    }
}

/// E.g. `invalid zone modifiers 0x3 (__GFP_DMA|__GFP_HIGHMEM) in gfp_zone(): at most one of
/// __GFP_DMA, __GFP_HIGHMEM, __GFP_DMA32 may be set; mode:0xcc3(GFP_KERNEL|GFP_DMA|__GFP_HIGHMEM)`.
impl fmt::Display for BadGfpZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let modifiers = self.modifiers();
        write!(f, "invalid zone modifiers {:#x} (", modifiers.0)?;
        let mut sep = "";
        // The single-bit names (`__GFP_DMA`, not `GFP_DMA`), in bit order.
        for &(flag, name) in GFPFLAG_NAMES.iter().filter(|(_, name)| name.starts_with("__")) {
            if GFP_ZONEMASK.contains(flag) && modifiers.contains(flag) {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        write!(
            f,
            ") in gfp_zone(): at most one of __GFP_DMA, __GFP_HIGHMEM, __GFP_DMA32 may be set; mode:{:?}",
            self.flags
        )
    }
}

impl core::error::Error for BadGfpZone {}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::format;
    use std::string::String;

    fn show(gfp: Gfp) -> String {
        format!("{gfp}")
    }

    #[test]
    fn gfp1_bit_values() {
        #[rustfmt::skip]
        let bits = [
            (__GFP_DMA, 0x01), (__GFP_HIGHMEM, 0x02), (__GFP_DMA32, 0x04), (__GFP_MOVABLE, 0x08),
            (__GFP_RECLAIMABLE, 0x10), (__GFP_HIGH, 0x20), (__GFP_IO, 0x40), (__GFP_FS, 0x80),
            (__GFP_ZERO, 0x100), (__GFP_DIRECT_RECLAIM, 0x400), (__GFP_KSWAPD_RECLAIM, 0x800),
            (__GFP_WRITE, 0x1000), (__GFP_NOWARN, 0x2000), (__GFP_RETRY_MAYFAIL, 0x4000),
            (__GFP_NOFAIL, 0x8000), (__GFP_NORETRY, 0x10000), (__GFP_MEMALLOC, 0x20000),
            (__GFP_COMP, 0x40000), (__GFP_NOMEMALLOC, 0x80000), (__GFP_HARDWALL, 0x100000),
            (__GFP_THISNODE, 0x200000), (__GFP_ACCOUNT, 0x400000), (__GFP_ZEROTAGS, 0x800000),
        ];
        for (flag, value) in bits {
            assert_eq!(flag.bits(), value, "{flag}");
            assert!(__GFP_BITS_MASK.contains(flag));
        }
        // Config-dependent bits are absent in this configuration.
        for flag in [__GFP_SKIP_ZERO, __GFP_SKIP_KASAN, __GFP_NOLOCKDEP, __GFP_NO_OBJ_EXT] {
            assert_eq!(flag.bits(), 0);
        }
        assert_eq!(__GFP_RECLAIM.bits(), 0xc00);
        assert_eq!(GFP_ZONEMASK.bits(), 0xf);
        assert_eq!(__GFP_BITS_SHIFT, 24);
        assert_eq!(__GFP_BITS_MASK.bits(), 0xff_ffff);
    }

    #[test]
    fn gfp1_composite_values() {
        #[rustfmt::skip]
        let composites = [
            (GFP_ATOMIC, 0x820), (GFP_KERNEL, 0xcc0), (GFP_KERNEL_ACCOUNT, 0x40_0cc0),
            (GFP_NOWAIT, 0x2800), // Target value; history 0x800.
            (GFP_NOIO, 0xc00), (GFP_NOFS, 0xc40), (GFP_USER, 0x10_0cc0), (GFP_DMA, 0x1),
            (GFP_DMA32, 0x4), (GFP_HIGHUSER, 0x10_0cc2), (GFP_HIGHUSER_MOVABLE, 0x10_0cca),
            (GFP_TRANSHUGE_LIGHT, 0x1c_20ca), (GFP_TRANSHUGE, 0x1c_24ca),
        ];
        for (flag, value) in composites {
            assert_eq!(flag.bits(), value, "{flag}");
        }
        assert!(GFP_NOWAIT.contains(__GFP_NOWARN));
        assert_eq!(GFP_RECLAIM_MASK.bits(), 0xb_ece0);
        assert_eq!(GFP_BOOT_MASK.bits(), 0xff_f33f);
        assert_eq!(GFP_CONSTRAINT_MASK.bits(), 0x30_0000);
        assert_eq!(GFP_SLAB_BUG_MASK.bits(), 0xff00_0006);
        assert_eq!(GFP_MOVABLE_MASK.bits(), 0x18);
    }

    #[test]
    fn gfp2_zone_table() {
        use ZoneType::*;
        #[rustfmt::skip]
        let valid = [
            (0x0, Normal), (0x1, Dma), (0x2, HighMem), (0x4, Dma32),
            (0x8, Normal), (0x9, Dma), (0xa, Movable), (0xc, Dma32),
        ];
        for (bits, zone) in valid {
            assert_eq!(Gfp::from_bits(bits).zone(), Ok(zone), "{bits:#x}");
            // Non-zone bits do not change the answer.
            assert_eq!((GFP_KERNEL | Gfp::from_bits(bits)).zone(), Ok(zone), "{bits:#x}");
        }
        for bits in [0x3, 0x5, 0x6, 0x7, 0xb, 0xd, 0xe, 0xf] {
            let gfp = GFP_KERNEL | Gfp::from_bits(bits);
            assert_eq!(gfp.zone(), Err(BadGfpZone { flags: gfp }), "{bits:#x}");
            assert_eq!(gfp.zone().unwrap_err().modifiers().bits(), bits, "{bits:#x}");
        }
        assert_eq!(GFP_HIGHUSER_MOVABLE.zone(), Ok(Movable));
        assert_eq!(GFP_HIGHUSER.zone(), Ok(HighMem));
        assert_eq!(GFP_KERNEL.zone(), Ok(Normal));
    }

    #[test]
    fn gfp4_migratetype() {
        assert_eq!(GFP_KERNEL.migratetype(), MigrateType::Unmovable);
        assert_eq!((GFP_KERNEL | __GFP_MOVABLE).migratetype(), MigrateType::Movable);
        assert_eq!(GFP_HIGHUSER_MOVABLE.migratetype(), MigrateType::Movable);
        assert_eq!((GFP_KERNEL | __GFP_RECLAIMABLE).migratetype(), MigrateType::Reclaimable);
        // Both bits: the kernel's VM_WARN case; kmem's documented choice, no panic.
        let both = GFP_KERNEL | GFP_MOVABLE_MASK;
        assert!(both.has_mobility_conflict());
        assert_eq!(both.migratetype(), MigrateType::Reclaimable);
        assert!(!GFP_HIGHUSER_MOVABLE.has_mobility_conflict());
    }

    #[test]
    fn gfp5_atomic_and_nowait_never_block() {
        for gfp in [GFP_ATOMIC, GFP_NOWAIT, __GFP_KSWAPD_RECLAIM, GFP_TRANSHUGE_LIGHT] {
            assert!(!gfp.allow_blocking(), "{gfp}");
        }
        for gfp in [GFP_KERNEL, GFP_NOIO, GFP_NOFS, GFP_USER, GFP_TRANSHUGE, __GFP_WAIT] {
            assert!(gfp.allow_blocking(), "{gfp}");
        }
        assert!(GFP_ATOMIC.allow_spinning() && GFP_NOWAIT.allow_spinning());
        assert!(!Gfp::empty().allow_spinning()); // What alloc_pages_nolock() passes.
        assert!(!(__GFP_ZERO | __GFP_NOWARN).allow_spinning());
    }

    #[test]
    fn gfp7_scope() {
        assert_eq!(GFP_KERNEL.with_scope(false, false), GFP_KERNEL);
        assert_eq!(GFP_KERNEL.with_scope(true, false), GFP_NOIO);
        assert_eq!(GFP_KERNEL.with_scope(false, true), GFP_NOFS);
        assert_eq!(GFP_KERNEL.with_scope(true, true), GFP_NOIO); // NOIO wins.
        let user = GFP_HIGHUSER_MOVABLE | __GFP_ZERO;
        assert_eq!(user.with_scope(true, false), user.difference(__GFP_IO | __GFP_FS));
        assert_eq!(GFP_ATOMIC.with_scope(true, true), GFP_ATOMIC);
    }

    #[test]
    fn helpers() {
        assert!(GFP_KERNEL.has_io_fs() && !GFP_NOFS.has_io_fs());
        assert!(GFP_NOFS.compaction_allowed() && !GFP_NOIO.compaction_allowed());
        let nested = (GFP_HIGHUSER_MOVABLE | __GFP_ZERO | __GFP_COMP).nested();
        assert_eq!(nested, GFP_KERNEL | __GFP_NORETRY | __GFP_NOMEMALLOC | __GFP_NOWARN);
        assert_eq!(GFP_ATOMIC.nested().bits(), 0x9_2820);
        let nested = (GFP_KERNEL | __GFP_ZERO | __GFP_HIGHMEM).nested();
        assert_eq!(nested, GFP_KERNEL | __GFP_NORETRY | __GFP_NOMEMALLOC | __GFP_NOWARN);
    }

    #[test]
    fn operators_keep_unknown_bits() {
        let odd = Gfp::from_bits(0x8000_0000);
        assert_eq!((GFP_KERNEL | odd).bits(), 0x8000_0cc0);
        assert_eq!((GFP_KERNEL & __GFP_IO), __GFP_IO);
        assert_eq!((!GFP_KERNEL).bits(), !0xcc0);
        let mut gfp = GFP_NOIO;
        gfp |= __GFP_IO | __GFP_FS;
        assert_eq!(gfp, GFP_KERNEL);
        gfp &= !__GFP_FS;
        assert_eq!(gfp, GFP_NOFS);
        assert!(GFP_KERNEL.contains(__GFP_RECLAIM) && !GFP_KERNEL.contains(GFP_USER));
        assert!(GFP_KERNEL.intersects(GFP_ATOMIC) && !GFP_KERNEL.intersects(GFP_DMA));
        assert!(Gfp::default() == Gfp::empty() && Gfp::empty().bits() == 0);
    }

    #[test]
    fn legacy_aliases() {
        assert_eq!(__GFP_WAIT | __GFP_IO | __GFP_FS, GFP_KERNEL);
        assert_eq!(__GFP_REPEAT, __GFP_RETRY_MAYFAIL);
        assert_eq!(__GFP_COLD.bits(), 0x200);
        assert!(__GFP_BITS_MASK.contains(__GFP_COLD) && !GFP_RECLAIM_MASK.contains(__GFP_COLD));
        assert_eq!(__GFP_NOTRACK, Gfp::empty());
        assert_eq!(show(GFP_KERNEL | __GFP_COLD), "GFP_KERNEL|__GFP_COLD");
        assert_eq!(show(__GFP_REPEAT), "__GFP_RETRY_MAYFAIL");
    }

    #[test]
    fn display_like_pgg() {
        #[rustfmt::skip]
        let cases = [
            (GFP_KERNEL, "GFP_KERNEL"), (GFP_KERNEL | __GFP_NOWARN, "GFP_KERNEL|__GFP_NOWARN"),
            (GFP_ATOMIC, "GFP_ATOMIC"), (GFP_ATOMIC | __GFP_NOWARN, "GFP_ATOMIC|__GFP_NOWARN"),
            (GFP_NOWAIT, "GFP_NOWAIT"), (__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"), // Old NOWAIT.
            (GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"), (GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"),
            (GFP_KERNEL | __GFP_ZERO, "GFP_KERNEL|__GFP_ZERO"),
            (GFP_USER | __GFP_ACCOUNT, "GFP_USER|__GFP_ACCOUNT"),
            (__GFP_RECLAIM, "GFP_NOIO"), // GFP_NOIO comes first in the table.
            (GFP_KERNEL | __GFP_DMA | __GFP_HIGHMEM, "GFP_KERNEL|GFP_DMA|__GFP_HIGHMEM"),
            (Gfp::from_bits(0x400_0000), "0x4000000"),
            (GFP_KERNEL | Gfp::from_bits(0x400_0000), "GFP_KERNEL|0x4000000"),
            (Gfp::empty(), ""),
            // lib/tests/printf_kunit.c, flags():
            (GFP_TRANSHUGE, "GFP_TRANSHUGE"), (GFP_ATOMIC | __GFP_DMA, "GFP_ATOMIC|GFP_DMA"),
            (__GFP_HIGH, "__GFP_HIGH"), (!__GFP_BITS_MASK, "0xff000000"),
            (!__GFP_BITS_MASK | __GFP_HIGH, "__GFP_HIGH|0xff000000"),
        ];
        for (gfp, text) in cases {
            assert_eq!(show(gfp), text, "{:#x}", gfp.bits());
        }
        // The single bits come last, in ascending order, and name every defined bit.
        let singles = &GFPFLAG_NAMES[14..];
        assert!(singles.windows(2).all(|w| w[0].0.bits() < w[1].0.bits()));
        assert_eq!(singles.iter().fold(Gfp::empty(), |acc, &(f, _)| acc | f), __GFP_BITS_MASK);
        // Every single bit prints as its own name (DMA and DMA32 as their GFP_ twins).
        for &(flag, name) in GFPFLAG_NAMES.iter().filter(|(f, _)| f.bits().is_power_of_two()) {
            let shown = show(flag);
            assert!(shown == name || shown == name.trim_start_matches("__"), "{shown} vs {name}");
        }
    }

    #[test]
    fn debug_like_mode_pgg() {
        assert_eq!(format!("{GFP_KERNEL:?}"), "0xcc0(GFP_KERNEL)");
        assert_eq!(format!("{:?}", GFP_NOWAIT | __GFP_ZERO), "0x2900(GFP_NOWAIT|__GFP_ZERO)");
        assert_eq!(format!("{:?}", Gfp::empty()), "0x0()");
        #[rustfmt::skip]
        let cases = [
            (GFP_KERNEL | __GFP_NOWARN, "0x2cc0(GFP_KERNEL|__GFP_NOWARN)"), (GFP_ATOMIC, "0x820(GFP_ATOMIC)"),
            (GFP_NOWAIT, "0x2800(GFP_NOWAIT)"), (GFP_HIGHUSER_MOVABLE, "0x100cca(GFP_HIGHUSER_MOVABLE)"),
            (GFP_NOFS | __GFP_NORETRY, "0x10c40(GFP_NOFS|__GFP_NORETRY)"),
            (GFP_KERNEL | __GFP_DMA | __GFP_HIGHMEM, "0xcc3(GFP_KERNEL|GFP_DMA|__GFP_HIGHMEM)"),
            (Gfp::from_bits(0x400_0000), "0x4000000(0x4000000)"),
        ];
        for (gfp, text) in cases {
            assert_eq!(format!("{gfp:?}"), text);
        }
    }

    #[test]
    fn bad_gfp_zone_message() {
        let err = (GFP_KERNEL | __GFP_DMA | __GFP_HIGHMEM).zone().unwrap_err();
        assert_eq!(err.modifiers().bits(), 0x3);
        assert_eq!(
            format!("{err}"),
            "invalid zone modifiers 0x3 (__GFP_DMA|__GFP_HIGHMEM) in gfp_zone(): at most one of \
             __GFP_DMA, __GFP_HIGHMEM, __GFP_DMA32 may be set; \
             mode:0xcc3(GFP_KERNEL|GFP_DMA|__GFP_HIGHMEM)"
        );
        let err = Gfp::from_bits(0xf).zone().unwrap_err();
        let all = "(__GFP_DMA|__GFP_HIGHMEM|__GFP_DMA32|__GFP_MOVABLE) in gfp_zone()";
        assert!(format!("{err}").starts_with(&format!("invalid zone modifiers 0xf {all}")));
        let _: &dyn core::error::Error = &err;
    }
}
