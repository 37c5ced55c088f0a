//! Helpers shared by the attestation test files.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, reason = "test helpers; each file uses a subset")]

/// xorshift64*: deterministic and dependency-free, so fuzz-style mutations are the same on
/// every run.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 pseudo-random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}
