//! Sealing K3 for restarts: a platform-bound key, injected like the attester, and the
//! versioned, authenticated blob the host stores (SPEC §6).
//!
//! A [`Sealer`] only supplies 32-byte keys bound to this platform and measurement; the core
//! does the rest, the same on every platform:
//!
//! ```text
//! blob = "SGLK" || 1 || u32_be(len) || postcard(BlobHeader{platform, measurement, epochs
//!        [(key_version, K3 fingerprint)], key_handle, nonce}) || AES-256-GCM(key, nonce,
//!        aad = every byte before, K3s in epoch order)
//! ```
//!
//! Opening checks, in order: the format, the platform, the measurement, the key (the
//! sealer's), the AEAD tag, then that each K3 has the fingerprint the header names. Any
//! failure is an [`UnsealError`] — the caller turns it into `reprovision_required` — and
//! nothing is loaded: never garbage, never a silently different K3.
//!
//! Implementations: `sim` (feature `sim`: a per-machine secret file, mixed with the simulated
//! measurement), `snp` (feature `snp`: the AMD Secure Processor's derived key, bound to the
//! launch measurement and guest policy), `kms` (feature `kms`, part of `nitro`: an AWS KMS data
//! key released only to an attested enclave with the pinned PCRs).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sigil_protocol::custody::{BlobError, BlobHeader, MAX_EPOCHS};
use sigil_protocol::{Bytes, Epoch, Platform};
use zeroize::Zeroizing;

use crate::k3::K3;

#[cfg(feature = "kms")]
pub mod kms;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "snp")]
pub mod snp;

/// The platform could not supply its sealing key. The message names the failure, never a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealing key unavailable: {0}")]
pub struct SealError(pub String);

/// A source of platform-bound sealing keys.
pub trait Sealer: Send {
    /// The platform whose key this is.
    fn platform(&self) -> Platform;

    /// What the key is bound to (Nitro/sim: PCR0‖PCR1‖PCR2, SNP: the launch measurement);
    /// written into every blob's authenticated header.
    fn measurement(&self) -> &[u8];

    /// A key for a new blob, and the handle that finds it again (stored in the blob). `salt`
    /// is fresh randomness from the core.
    ///
    /// # Errors
    /// [`SealError`] when the platform refuses.
    fn new_key(&mut self, salt: &[u8; 32]) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError>;

    /// The key a blob with `handle` was sealed under.
    ///
    /// # Errors
    /// [`SealError`] when the platform refuses (for instance another measurement on Nitro KMS).
    fn key(&mut self, handle: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError>;
}

impl fmt::Debug for dyn Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("platform", &self.platform()).finish_non_exhaustive()
    }
}

/// Why a blob did not open. Every variant means "re-provision required"; none loads anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsealError {
    /// Not a blob, an unknown format, truncated or malformed.
    #[error("{0}")]
    Malformed(BlobError),
    /// Sealed on another platform.
    #[error("blob was sealed on {} but this enclave runs on {}", .blob.label(), .ours.label())]
    OtherPlatform {
        /// The blob's platform.
        blob: Platform,
        /// Ours.
        ours: Platform,
    },
    /// Sealed by an enclave with another measurement (another build or configuration).
    #[error("blob was sealed by an enclave with another measurement")]
    OtherMeasurement,
    /// The platform would not give the key back.
    #[error("{0}")]
    KeyUnavailable(SealError),
    /// The AEAD tag does not verify: another machine's or platform's key, or the blob was
    /// altered.
    #[error("blob does not authenticate: wrong sealing key or corrupted blob")]
    WrongKeyOrCorrupt,
    /// The K3 inside does not have the fingerprint the header names.
    #[error("blob's K3 for epoch {0} does not match its fingerprint")]
    FingerprintMismatch(u8),
    /// The blob holds another K3 for an epoch than this enclave is configured to expect.
    #[error("blob holds a different K3 for epoch {0} than this enclave expects")]
    UnexpectedK3(u8),
    /// The blob holds another K3 for an epoch this enclave has already loaded.
    #[error("blob holds a different K3 for epoch {0} than the one loaded")]
    ConflictsWithLoaded(u8),
}

/// Seals `epochs` (ascending, at most [`MAX_EPOCHS`]) into a blob.
///
/// # Errors
/// [`SealError`] when the platform key is unavailable.
pub(crate) fn seal(
    sealer: &mut dyn Sealer,
    epochs: &[(u8, &K3)],
    salt: &[u8; 32],
    nonce: [u8; 12],
) -> Result<Vec<u8>, SealError> {
    if epochs.is_empty() || epochs.len() > MAX_EPOCHS {
        return Err(SealError(alloc::format!("cannot seal {} epochs (1..={MAX_EPOCHS})", epochs.len())));
    }
    let (key, key_handle) = sealer.new_key(salt)?;
    let header = BlobHeader {
        platform: sealer.platform(),
        measurement: sealer.measurement().to_vec(),
        epochs: epochs.iter().map(|(v, k)| Epoch { key_version: *v, k3_fingerprint: Bytes(k.fingerprint()) }).collect(),
        key_handle,
        nonce: Bytes(nonce),
    };
    let mut blob = header.encode_aad();
    let mut plaintext = Zeroizing::new(Vec::with_capacity(32 * epochs.len()));
    for (_, k3) in epochs {
        plaintext.extend_from_slice(k3.dangerous_as_bytes());
    }
    let cipher = Aes256Gcm::new(&(*key).into());
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: &plaintext, aad: &blob })
        .map_err(|_| SealError("encryption failed".into()))?;
    blob.extend_from_slice(&ct);
    Ok(blob)
}

/// Opens a blob sealed by [`seal`] on this platform and measurement.
///
/// # Errors
/// [`UnsealError`]; nothing is returned unless every check passed.
pub(crate) fn open(sealer: &mut dyn Sealer, blob: &[u8]) -> Result<Vec<(u8, K3)>, UnsealError> {
    let (header, parts) = BlobHeader::parse(blob).map_err(UnsealError::Malformed)?;
    if header.platform != sealer.platform() {
        return Err(UnsealError::OtherPlatform { blob: header.platform, ours: sealer.platform() });
    }
    // Public values: a plain comparison is fine.
    if header.measurement != sealer.measurement() {
        return Err(UnsealError::OtherMeasurement);
    }
    if parts.ciphertext.len() != 32 * header.epochs.len() + 16 {
        return Err(UnsealError::Malformed(BlobError::Malformed));
    }
    let key = sealer.key(&header.key_handle).map_err(UnsealError::KeyUnavailable)?;
    let cipher = Aes256Gcm::new(&(*key).into());
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(&Nonce::from(header.nonce.0), Payload { msg: parts.ciphertext, aad: parts.aad })
            .map_err(|_| UnsealError::WrongKeyOrCorrupt)?,
    );
    let mut out = Vec::with_capacity(header.epochs.len());
    for (epoch, chunk) in header.epochs.iter().zip(plaintext.chunks_exact(32)) {
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(chunk);
        let k3 = K3::from_bytes(*bytes);
        if k3.fingerprint() != epoch.k3_fingerprint.0 {
            return Err(UnsealError::FingerprintMismatch(epoch.key_version));
        }
        out.push((epoch.key_version, k3));
    }
    Ok(out)
}

/// HKDF-SHA256 of a platform secret into a blob key: `salt` = the blob's handle,
/// `info = "sigil/seal/v1" || measurement`. Shared by the sealers whose platform gives one
/// long-term secret (sim, SNP).
#[must_use]
pub fn derive_blob_key(platform_secret: &[u8; 32], handle: &[u8], measurement: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes never exceeds HKDF's output limit.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(Some(handle), platform_secret)
        .expand_multi_info(&[b"sigil/seal/v1", measurement], key.as_mut_slice());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A sealer over a fixed secret, as sim and SNP are.
    struct TestSealer {
        secret: [u8; 32],
        measurement: Vec<u8>,
        platform: Platform,
    }

    impl Sealer for TestSealer {
        fn platform(&self) -> Platform {
            self.platform
        }
        fn measurement(&self) -> &[u8] {
            &self.measurement
        }
        fn new_key(&mut self, salt: &[u8; 32]) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
            Ok((derive_blob_key(&self.secret, salt, &self.measurement), salt.to_vec()))
        }
        fn key(&mut self, handle: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
            Ok(derive_blob_key(&self.secret, handle, &self.measurement))
        }
    }

    fn sealer() -> TestSealer {
        TestSealer { secret: [5; 32], measurement: vec![1; 144], platform: Platform::Sim }
    }

    fn blob() -> Vec<u8> {
        let (a, b) = (K3::from_bytes([1; 32]), K3::from_bytes([2; 32]));
        seal(&mut sealer(), &[(1, &a), (7, &b)], &[9; 32], [3; 12]).unwrap()
    }

    #[test]
    fn round_trips() {
        let out = open(&mut sealer(), &blob()).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].0, out[1].0), (1, 7));
        assert_eq!(out[1].1.dangerous_as_bytes(), &[2; 32]);
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let b = blob();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x01;
            assert!(open(&mut sealer(), &c).is_err(), "flip at {i}");
        }
        for cut in 0..b.len() {
            assert!(open(&mut sealer(), &b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn other_key_measurement_and_platform_are_refused() {
        let b = blob();
        let mut other = TestSealer { secret: [6; 32], ..sealer() };
        assert_eq!(open(&mut other, &b).unwrap_err(), UnsealError::WrongKeyOrCorrupt);
        let mut other = TestSealer { measurement: vec![2; 144], ..sealer() };
        assert_eq!(open(&mut other, &b).unwrap_err(), UnsealError::OtherMeasurement);
        let mut other = TestSealer { platform: Platform::Snp, ..sealer() };
        assert!(matches!(open(&mut other, &b).unwrap_err(), UnsealError::OtherPlatform { .. }));
    }

    #[test]
    fn a_blob_whose_k3_is_not_its_fingerprint_is_refused() {
        // Sealed correctly (the tag verifies) but naming another K3's fingerprint, as a buggy
        // or hostile sealer could: refused after decryption.
        let mut s = sealer();
        let (key, handle) = s.new_key(&[4; 32]).unwrap();
        let header = BlobHeader {
            platform: Platform::Sim,
            measurement: vec![1; 144],
            epochs: vec![Epoch { key_version: 1, k3_fingerprint: Bytes(K3::from_bytes([8; 32]).fingerprint()) }],
            key_handle: handle,
            nonce: Bytes([0; 12]),
        };
        let mut b = header.encode_aad();
        let ct =
            Aes256Gcm::new(&(*key).into()).encrypt(&Nonce::from([0; 12]), Payload { msg: &[9; 32], aad: &b }).unwrap();
        b.extend_from_slice(&ct);
        assert_eq!(open(&mut s, &b).unwrap_err(), UnsealError::FingerprintMismatch(1));
    }
}
