//! What the enclave core needs from the world: the time and entropy. Injected, never
//! fetched, so the same core runs inside Nitro, SEV-SNP, simulation and deterministic tests.

use core::convert::Infallible;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// The platform services the sans-IO core is given on every call.
pub trait Env {
    /// Seconds since the Unix epoch, as the platform knows it. Used for JWT `exp`/`nbf`.
    fn unix_time(&self) -> u64;

    /// Fills `dest` with cryptographically secure random bytes.
    ///
    /// # Errors
    /// [`EntropyUnavailable`] when the platform's source fails; the request then fails with
    /// `internal` rather than proceeding with weak randomness.
    fn fill_random(&mut self, dest: &mut [u8]) -> Result<(), EntropyUnavailable>;
}

/// The platform could not supply randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("entropy source unavailable")]
pub struct EntropyUnavailable;

/// A hash-based DRBG seeded once from [`Env::fill_random`]: `SHA-256(seed || counter)` blocks.
///
/// Crypto libraries (HPKE here) want an infallible RNG; the platform source can fail. So the
/// fallible draw happens once, up front, where its error can be returned, and the library
/// gets this deterministic expansion of 256 bits of fresh entropy.
pub(crate) struct SeededRng {
    seed: [u8; 32],
    counter: u64,
}

impl SeededRng {
    /// Draws a fresh 32-byte seed from `env`.
    pub(crate) fn from_env(env: &mut impl Env) -> Result<Self, EntropyUnavailable> {
        let mut seed = [0u8; 32];
        env.fill_random(&mut seed)?;
        Ok(Self { seed, counter: 0 })
    }

    /// Expands a seed the caller drew itself.
    pub(crate) const fn from_seed(seed: [u8; 32]) -> Self {
        Self { seed, counter: 0 }
    }

    fn block(&mut self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"sigil/drbg/v1");
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        h.finalize().into()
    }
}

impl Drop for SeededRng {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let [a, b, c, d, ..] = self.block();
        Ok(u32::from_le_bytes([a, b, c, d]))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let [a, b, c, d, e, f, g, h, ..] = self.block();
        Ok(u64::from_le_bytes([a, b, c, d, e, f, g, h]))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(32) {
            let mut b = self.block();
            for (d, s) in chunk.iter_mut().zip(b.iter()) {
                *d = *s;
            }
            b.zeroize();
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeededRng {}

/// An [`Env`] with a fixed clock and a seeded, reproducible "random" stream.
///
/// # Security Warning
/// Deterministic: for tests, benchmarks and fuzzing only. Never give it to a production
/// enclave.
#[derive(Debug, Clone)]
pub struct FixedEnv {
    /// What [`Env::unix_time`] returns.
    pub now: u64,
    /// Stream position; each draw advances it.
    pub counter: u64,
}

impl FixedEnv {
    /// A fixed clock at `now`.
    #[must_use]
    pub const fn new(now: u64) -> Self {
        Self { now, counter: 0 }
    }
}

impl Env for FixedEnv {
    fn unix_time(&self) -> u64 {
        self.now
    }

    fn fill_random(&mut self, dest: &mut [u8]) -> Result<(), EntropyUnavailable> {
        for chunk in dest.chunks_mut(32) {
            let block: [u8; 32] = Sha256::new()
                .chain_update(b"sigil/fixed-env")
                .chain_update(self.counter.to_be_bytes())
                .finalize()
                .into();
            self.counter = self.counter.wrapping_add(1);
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::TryRng;

    #[test]
    fn seeded_rng_differs_per_seed_and_per_block() {
        let mut env = FixedEnv::new(0);
        let mut a = SeededRng::from_env(&mut env).unwrap();
        let mut b = SeededRng::from_env(&mut env).unwrap();
        let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
        a.try_fill_bytes(&mut x).unwrap();
        b.try_fill_bytes(&mut y).unwrap();
        assert_ne!(x, y);
        assert_ne!(x[..32], x[8..40]);
    }
}
