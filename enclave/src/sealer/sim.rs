//! The simulated sealing key (feature `sim`): what a TEE's fused per-chip secret is to a
//! real enclave, a 32-byte secret file is to a simulated one, and the key of each blob is
//! derived from it *and the simulated measurement*, so a blob opens only on the same
//! "machine" (state directory) running the same "build" (sim PCRs).
//!
//! It protects nothing against whoever can read the directory: simulation only, rejected by
//! every production policy like the rest of `sim`.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use core::fmt;
use std::format;
use std::path::Path;
use std::vec::Vec;

use sigil_protocol::Platform;
use zeroize::Zeroizing;

use super::{SealError, Sealer, derive_blob_key};
use crate::runtime::files;

/// File name of the simulated machine secret (32 raw bytes, mode 0600).
pub const SEAL_KEY_FILE: &str = "sim-seal.key";

/// Seals under `HKDF(machine secret, salt, "sigil/seal/v1" || PCR0‖PCR1‖PCR2)`.
pub struct SimSealer {
    secret: Zeroizing<[u8; 32]>,
    measurement: Vec<u8>,
}

impl fmt::Debug for SimSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimSealer").finish_non_exhaustive()
    }
}

/// The measurement a sim blob is bound to: PCR0‖PCR1‖PCR2.
#[must_use]
pub fn measurement_of(pcrs: &[[u8; 48]; 3]) -> Vec<u8> {
    pcrs.concat()
}

impl SimSealer {
    /// A sealer over `secret` for an enclave measured as `pcrs`.
    #[must_use]
    pub fn new(secret: Zeroizing<[u8; 32]>, pcrs: &[[u8; 48]; 3]) -> Self {
        Self { secret, measurement: measurement_of(pcrs) }
    }

    /// Loads the machine secret from `dir/sim-seal.key`, or creates it (atomically, mode
    /// 0600, `dir` created 0700), so a restarted simulated enclave opens its old blobs.
    ///
    /// # Errors
    /// [`SealError`] naming the file.
    pub fn load_or_generate(dir: &Path, pcrs: &[[u8; 48]; 3]) -> Result<Self, SealError> {
        let path = dir.join(SEAL_KEY_FILE);
        let fail = |e: std::io::Error| SealError(format!("{}: {e}", path.display()));
        let mut secret = Zeroizing::new([0u8; 32]);
        if path.exists() {
            let bytes = Zeroizing::new(files::read_limited(&path, 32).map_err(fail)?);
            if bytes.len() != 32 {
                return Err(SealError(format!("{} is not a 32-byte key", path.display())));
            }
            secret.copy_from_slice(&bytes);
        } else {
            files::create_private_dir(dir).map_err(fail)?;
            getrandom::fill(secret.as_mut_slice()).map_err(|e| SealError(format!("no randomness: {e}")))?;
            files::write_atomically(&path, secret.as_slice(), 0o600).map_err(fail)?;
        }
        Ok(Self::new(secret, pcrs))
    }
}

impl Sealer for SimSealer {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    fn measurement(&self) -> &[u8] {
        &self.measurement
    }

    fn new_key(&mut self, salt: &[u8; 32]) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        Ok((derive_blob_key(&self.secret, salt, &self.measurement), salt.to_vec()))
    }

    fn key(&mut self, handle: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        if handle.len() != 32 {
            return Err(SealError("a sim blob's key handle is 32 bytes".into()));
        }
        Ok(derive_blob_key(&self.secret, handle, &self.measurement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_persists_and_binds_to_the_measurement() {
        let dir = tempfile::tempdir().unwrap();
        let pcrs = crate::attester::sim::sim_pcrs();
        let mut a = SimSealer::load_or_generate(dir.path(), &pcrs).unwrap();
        let mut b = SimSealer::load_or_generate(dir.path(), &pcrs).unwrap();
        assert_eq!(*a.key(&[1; 32]).unwrap(), *b.key(&[1; 32]).unwrap());
        let mut other = pcrs;
        other[0][0] ^= 1;
        let mut c = SimSealer::load_or_generate(dir.path(), &other).unwrap();
        assert_ne!(*a.key(&[1; 32]).unwrap(), *c.key(&[1; 32]).unwrap());
        let other_dir = tempfile::tempdir().unwrap();
        let mut d = SimSealer::load_or_generate(other_dir.path(), &pcrs).unwrap();
        assert_ne!(*a.key(&[1; 32]).unwrap(), *d.key(&[1; 32]).unwrap());
        assert!(a.key(&[1; 31]).is_err());
        std::fs::write(dir.path().join(SEAL_KEY_FILE), [0u8; 31]).unwrap();
        assert!(SimSealer::load_or_generate(dir.path(), &pcrs).is_err());
    }
}
