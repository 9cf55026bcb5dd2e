//! The zonelist (`struct zonelist`): the zones a request may use, highest first, from the zone
//! `gfp_zone` chose down to `ZONE_DMA` (SEMANTICS §2.2, PA-11; kmem has one node). Built once per highest zone
//! when the allocator is made; immutable afterwards.

use crate::zone::{MAX_NR_ZONES, Zone, ZoneType};

/// The zones an allocation may use, highest first (`struct zonelist` from `gfp_zone`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ZoneList {
    /// `highest_zoneidx`: the zone `gfp_zone` chose, mapped to a configured zone.
    pub(crate) highest: ZoneType,
    zones: [u8; MAX_NR_ZONES],
    len: u8,
    /// `alloc_flags_nofragment`, computed once: `ALLOC_NOFRAGMENT` when the list's first zone
    /// is `ZONE_NORMAL` and the machine configures `ZONE_DMA32` (x86_64; kmem has one node, so
    /// as in the kernel whether DMA32 is populated does not matter), else 0. The first pass of
    /// an allocation ORs it into its flags.
    pub(crate) nofragment: u32,
}

impl ZoneList {
    pub(super) fn build(highest: ZoneType, zones: &[Zone; MAX_NR_ZONES], has_dma32: bool) -> Self {
        let mut list = ZoneList { highest, zones: [0; MAX_NR_ZONES], len: 0, nofragment: 0 };
        for zi in (0..=highest as usize).rev() {
            if zones[zi].managed > 0 {
                list.zones[list.len as usize] = zi as u8;
                list.len += 1;
            }
        }
        if has_dma32 && list.first() == Some(ZoneType::Normal as usize) {
            list.nofragment = crate::watermark::alloc_flags::NOFRAGMENT;
        }
        list
    }

    /// The flags of an allocation's first pass (`__alloc_pages`): the low watermark, and
    /// `alloc_flags_nofragment` — this list's `ALLOC_NOFRAGMENT` and `ALLOC_KSWAPD` if `gfp`
    /// may wake kswapd (for a boost, `boost.rs`).
    #[inline(always)]
    pub(crate) fn first_pass_flags(&self, gfp: crate::gfp::Gfp) -> u32 {
        use crate::watermark::alloc_flags as af;
        af::WMARK_LOW | self.nofragment | (gfp.bits() & af::KSWAPD)
    }

    /// The highest populated zone of the list.
    #[inline]
    pub(crate) fn first(&self) -> Option<usize> {
        (self.len > 0).then_some(self.zones[0] as usize)
    }

    /// Zone indices, highest first.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.iter_from(0)
    }

    /// Zone indices from the `skip`-th on (`skip <= len`), highest first.
    #[inline]
    pub(crate) fn iter_from(&self, skip: usize) -> impl Iterator<Item = usize> + '_ {
        self.zones[skip..self.len as usize].iter().map(|&z| z as usize)
    }
}
