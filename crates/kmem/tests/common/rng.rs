//! The tests' pseudo-random source (xorshift64*), shared by the test crates that include this
//! file with `#[path]`: fixed seeds, so a failure replays (the kernel's tests use
//! `get_random_*`). The seed must not be 0.
#![allow(dead_code)] // Each test crate uses its own part of it.

pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A value in `lo..=hi` (`get_random_u32_inclusive`).
    pub fn inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}
