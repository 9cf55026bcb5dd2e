//! Freelist hardening and randomisation (SEMANTICS §3.9, SL-16).
//!
//! - A free object's stored free pointer is `ptr ^ s->random ^ swab(address where it is stored)`
//!   (`CONFIG_SLAB_FREELIST_HARDENED`), so a heap overflow that writes a plain pointer over a
//!   free object does not give an attacker a controlled allocation, and a corrupted pointer is
//!   usually caught because it decodes outside the slab.
//! - Each cache may have a random permutation of its object indices
//!   (`CONFIG_SLAB_FREELIST_RANDOM`); a new slab's freelist follows it from a random start.
//!
//! Randomness comes from a per-machine `Rng` seeded by the platform clock and the caller's
//! seed: it makes addresses unpredictable to code inside the machine, not cryptographically
//! strong (the kernel uses `get_random_long()`).

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `freelist_ptr_encode`: what is stored at `slot_addr` for a free pointer to `ptr`.
#[inline(always)]
pub(crate) fn encode(ptr: usize, random: usize, slot_addr: usize) -> usize {
    ptr ^ random ^ slot_addr.swap_bytes()
}

/// `freelist_ptr_decode`: the inverse of [`encode`] (XOR is its own inverse).
#[inline(always)]
pub(crate) fn decode(stored: usize, random: usize, slot_addr: usize) -> usize {
    stored ^ random ^ slot_addr.swap_bytes()
}

/// A shared pseudo-random source (SplitMix64 over an atomic counter): lock-free and never
/// repeats a state between callers.
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: AtomicU64::new(seed) }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self.state.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`get_random_u32_below`); 0 for `n == 0`.
    pub(crate) fn below(&self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        ((u64::from(self.next_u64() as u32) * u64::from(n)) >> 32) as u32
    }
}

/// Fills `seq` with a random permutation of `0..seq.len()` (Fisher–Yates, as
/// `init_cache_random_seq` does).
pub(crate) fn shuffle(seq: &mut [u16], rng: &Rng) {
    for (i, v) in seq.iter_mut().enumerate() {
        *v = i as u16;
    }
    for i in (1..seq.len()).rev() {
        let j = rng.below(i as u32 + 1) as usize;
        seq.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_the_kernel_formula_and_round_trips() {
        let (ptr, random, at) = (0xffff_8880_1234_5678usize, 0x0123_4567_89ab_cdefusize, 0xffff_8880_1234_0020usize);
        let stored = encode(ptr, random, at);
        assert_eq!(stored, ptr ^ random ^ at.swap_bytes());
        assert_eq!(decode(stored, random, at), ptr);
        // Null encodes to something non-null, so a zeroed word is not a valid end of list.
        assert_ne!(encode(0, random, at), 0);
    }

    #[test]
    fn shuffle_is_a_permutation_and_varies() {
        let rng = Rng::new(42);
        let mut a = [0u16; 100];
        shuffle(&mut a, &rng);
        let mut sorted = a;
        sorted.sort_unstable();
        assert!(sorted.iter().enumerate().all(|(i, &v)| v as usize == i));
        let mut b = [0u16; 100];
        shuffle(&mut b, &rng);
        assert_ne!(a, b, "two shuffles from one source differ");
        assert!(a.iter().enumerate().any(|(i, &v)| v as usize != i));
    }

    #[test]
    fn below_stays_in_range() {
        let rng = Rng::new(7);
        assert_eq!(rng.below(0), 0);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            seen[rng.below(5) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
