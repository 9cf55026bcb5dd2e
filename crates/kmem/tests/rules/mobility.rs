//! PA-12 under random operation sequences (STYLE §7): allocations of every mobility type and
//! order on a nearly full ZONE_NORMAL, so that requests fall back to other types' pageblocks
//! (claiming and stealing, through the per-CPU refills as well as the buddy path), with frees
//! and drains in between. After every step `check()` runs: the free lists, the per-CPU lists,
//! and every free block on the lists of its pageblock's type (Linux 6.10's freelist hygiene,
//! `buddy.rs`). At the end everything is freed and buddyinfo is back to its start.

use kmem::gfp::*;
use kmem::zone::{MigrateType, ZoneType};
use kmem::{Gfp, MAX_PAGE_ORDER, Machine, Page};

use crate::rng::Rng;
use crate::*;

const SEEDS: [u64; 2] = [0x005e_ed0f_ba5e, 0x000d_dba1_1caf];
const STEPS: usize = 800;

/// The request types: unmovable, reclaimable, movable, all preferring ZONE_NORMAL on i386.
const TYPES: [(Gfp, MigrateType); 3] = [
    (GFP_NOWAIT, MigrateType::Unmovable),
    (GFP_NOWAIT.union(__GFP_RECLAIMABLE), MigrateType::Reclaimable),
    (GFP_NOWAIT.union(__GFP_MOVABLE), MigrateType::Movable),
];

fn order(rng: &mut Rng) -> u32 {
    // Mostly per-CPU orders, sometimes up to a whole pageblock.
    if rng.below(5) == 0 { rng.below(u64::from(MAX_PAGE_ORDER) + 1) as u32 } else { rng.below(4) as u32 }
}

/// Allocates one block of a random type and order; returns whether it came out of a
/// pageblock of another type that it did not claim (a steal).
fn alloc<'m>(m: &'m Machine, rng: &mut Rng, live: &mut Vec<(&'m Page, u32)>) -> bool {
    let (gfp, mt) = TYPES[rng.index(TYPES.len())];
    let order = order(rng);
    let Ok(page) = m.alloc_pages(gfp, order) else { return false };
    live.push((page, order));
    m.memmap().pageblock_mt(pfn(m, page)) != mt
}

#[test]
fn pa12_random_mixed_mobility_keeps_every_free_block_on_its_pageblocks_lists() {
    let mut steals = 0;
    for seed in SEEDS {
        let m = i386(128);
        m.set_zone_watermarks(ZoneType::Normal, [0; 4]).expect("marks in range");
        // Nothing falls back to DMA: Normal fills up and its pageblocks mix.
        m.set_zone_watermarks(ZoneType::Dma, [1 << 24; 4]).expect("marks in range");
        let normal = m.zone(ZoneType::Normal);
        assert!(normal.pcp_batch() > 1, "refills of several pages");
        m.drain_local_pages();
        let initial = m.buddyinfo();
        let mut rng = Rng(seed);
        let mut live = Vec::new();
        // Fill: Normal down to a fiftieth of its pages, every type mixed.
        while normal.free_pages() > normal.managed() / 50 {
            alloc(&m, &mut rng, &mut live);
        }
        check(&m);
        for step in 0..STEPS {
            match rng.below(20) {
                0..=10 => steals += usize::from(alloc(&m, &mut rng, &mut live)),
                11..=18 if !live.is_empty() => {
                    let (page, order) = live.swap_remove(rng.index(live.len()));
                    // SAFETY: The test's own block, freed once.
                    unsafe { m.free_pages(page, order) };
                }
                _ => {
                    m.drain_local_pages();
                }
            }
            // SAFETY: Only this thread uses the machine.
            if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { m.check() })) {
                panic!("seed {seed:#x}, step {step}: {}", e.downcast_ref::<String>().map_or("check failed", |s| s));
            }
        }
        free_all(&m, live);
        m.drain_local_pages();
        check(&m);
        assert_eq!(m.buddyinfo(), initial, "seed {seed:#x}: everything came back");
    }
    assert!(steals > 0, "no request was served by a steal: the test missed the path it is for");
}
