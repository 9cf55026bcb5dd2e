//! Page-size and order arithmetic (`include/asm-generic/getorder.h`, `mmzone.h`).
//!
//! An order-`n` block is `1 << n` contiguous pages whose first pfn is a multiple of `1 << n`.
//! Valid orders are `0..=MAX_PAGE_ORDER` (inclusive, as since Linux 6.4).

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Bytes in a page.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// The largest order the buddy allocator hands out (inclusive): 4 MiB blocks.
pub const MAX_PAGE_ORDER: u32 = 10;
/// Number of free lists per zone (`MAX_PAGE_ORDER + 1`).
pub const NR_PAGE_ORDERS: usize = MAX_PAGE_ORDER as usize + 1;
/// Pages in a max-order block.
pub const MAX_ORDER_NR_PAGES: usize = 1 << MAX_PAGE_ORDER;
/// Orders above this are "costly": they back off instead of looping (PA-14).
pub const PAGE_ALLOC_COSTLY_ORDER: u32 = 3;
/// The seeds' `MAX_ORDER` (LDD3 era: exclusive bound 11). Kept for source compatibility.
pub const MAX_ORDER: u32 = MAX_PAGE_ORDER + 1;

/// `get_order(size)`: the smallest order whose block holds `size` bytes (PA-2).
///
/// `fls((size - 1) >> PAGE_SHIFT)`: 1..=4096 → 0, 4097..=8192 → 1, 4 MiB → 10.
///
/// # Panics
/// `get_order(0)` is undefined in the kernel; here it panics with a clear message. Use
/// [`try_get_order`] to get `None` instead.
#[must_use]
pub const fn get_order(size: usize) -> u32 {
    match try_get_order(size) {
        Some(order) => order,
        None => panic!("get_order(0) is undefined"),
    }
}

/// [`get_order`] that returns `None` for 0 instead of panicking.
#[must_use]
pub const fn try_get_order(size: usize) -> Option<u32> {
    if size == 0 {
        return None;
    }
    let pages_minus_one = (size - 1) >> PAGE_SHIFT;
    Some(usize::BITS - pages_minus_one.leading_zeros())
}

/// Pages needed to hold `size` bytes (`DIV_ROUND_UP(size, PAGE_SIZE)`).
#[must_use]
pub const fn size_to_pages(size: usize) -> usize {
    size.div_ceil(PAGE_SIZE)
}

/// Whether `pfn` is the first pfn of a naturally aligned order-`order` block (PA-3).
#[must_use]
pub const fn is_aligned(pfn: usize, order: u32) -> bool {
    pfn & ((1 << order) - 1) == 0
}

/// The pfn of the buddy of the order-`order` block at `pfn` (`__find_buddy_pfn`).
#[must_use]
pub const fn buddy_pfn(pfn: usize, order: u32) -> usize {
    pfn ^ (1 << order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pa2_get_order_table() {
        for (size, order) in [
            (1, 0),
            (4096, 0),
            (4097, 1),
            (8192, 1),
            (8193, 2),
            (16384, 2),
            (16385, 3),
            (8192 * 10, 5),
            (4 << 20, 10),
            ((4 << 20) + 1, 11),
        ] {
            assert_eq!(get_order(size), order, "get_order({size})");
        }
        assert_eq!(try_get_order(0), None);
    }

    #[test]
    fn pa2_get_order_matches_loop_definition() {
        for size in 1..(1usize << 16) {
            let mut order = 0;
            while (PAGE_SIZE << order) < size {
                order += 1;
            }
            assert_eq!(get_order(size), order, "size {size}");
        }
    }

    #[test]
    #[should_panic(expected = "get_order(0) is undefined")]
    fn pa2_get_order_zero_panics() {
        let _ = get_order(core::hint::black_box(0));
    }

    #[test]
    fn buddy_and_alignment() {
        assert_eq!(buddy_pfn(0, 0), 1);
        assert_eq!(buddy_pfn(4, 2), 0);
        assert_eq!(buddy_pfn(1024, 10), 0);
        assert!(is_aligned(64, 6));
        assert!(!is_aligned(96, 6));
        assert_eq!(size_to_pages(1), 1);
        assert_eq!(size_to_pages(4097), 2);
    }
}
