//! Machine profiles: which zones a machine has and where they start, and how much memory a
//! machine of each may have.

use kmem_core::PAGE_SIZE;
use kmem_core::zone::MAX_NR_ZONES;

/// A machine profile: where the zones are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The book's 32-bit PC: DMA, Normal, HighMem.
    I386,
    /// A 64-bit PC: DMA, DMA32, Normal.
    X86_64,
}

impl Profile {
    /// The profile's name as `KMEM_PROFILE` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::I386 => "i386",
            Profile::X86_64 => "x86_64",
        }
    }

    /// The most memory a machine of the profile may have: 64 GiB on i386 (what PAE addresses;
    /// the page array must also fit below 896 MiB), just under 16 TiB on x86_64 (pfns are 32
    /// bits wide in the page allocator's lists).
    pub fn max_mem_bytes(self) -> u64 {
        match self {
            Profile::I386 => 64 << 30,
            Profile::X86_64 => (u32::MAX as u64) * PAGE_SIZE as u64,
        }
    }

    /// [`Self::max_mem_bytes`] as a size to print.
    pub fn max_mem_text(self) -> &'static str {
        match self {
            Profile::I386 => "64G",
            Profile::X86_64 => "16T minus one page",
        }
    }
}

pub(crate) const MIB_PAGES: usize = (1 << 20) / PAGE_SIZE;

impl Profile {
    pub(crate) fn layout_ranges(self, end: usize) -> ([Option<(usize, usize)>; MAX_NR_ZONES], usize, u32) {
        let dma_end = (16 * MIB_PAGES).min(end);
        let mut zones = [None; MAX_NR_ZONES];
        zones[0] = Some((0, dma_end));
        match self {
            Profile::I386 => {
                let low_end = (896 * MIB_PAGES).min(end);
                zones[2] = Some((dma_end, low_end));
                zones[3] = Some((low_end, end));
                (zones, low_end, 10)
            }
            Profile::X86_64 => {
                let dma32_end = (4096 * MIB_PAGES).min(end);
                zones[1] = Some((dma_end, dma32_end));
                zones[2] = Some((dma32_end, end));
                (zones, end, 9)
            }
        }
    }
}
