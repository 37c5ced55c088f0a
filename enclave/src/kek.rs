//! Native v2 KEKs: the keys that encrypt users' stored credentials.
//!
//! ```text
//! KEK = HKDF-SHA256(salt = "agentkeys.kek-salt.v2", ikm = K3[key_version],
//!                   info = "agentkeys.user.v1" || omni (32 bytes) || u16_be(len(context)) || context,
//!                   L = 32)
//! ```
//!
//! `context` is the caller's label (a service name), at most 256 bytes; its 2-byte big-endian
//! length prefix keeps `(omni, context)` pairs from colliding. A KEK never leaves the enclave
//! in clear: `seal` encrypts it with RFC 9180 HPKE base mode (DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, AES-256-GCM) to the caller's X25519 key, with
//! `info = "sigil/kek/v1" || key_version` and `aad` = the request's canonical bytes.

use alloc::vec::Vec;
use core::fmt;
use hkdf::Hkdf;
use hpke::kem::X25519HkdfSha256;
use hpke::{Kem as _, Serializable};
use sha2::Sha256;
use sigil_protocol::MAX_KEK_CONTEXT;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::env::SeededRng;
use crate::k3::K3;

/// HKDF salt of KEK derivation.
pub const KEK_SALT: &[u8] = b"agentkeys.kek-salt.v2";
/// Label at the start of HKDF `info`.
pub const KEK_LABEL: &[u8] = b"agentkeys.user.v1";
/// Label at the start of the HPKE `info`.
pub const HPKE_INFO_LABEL: &[u8] = b"sigil/kek/v1";

/// A derived key-encryption key. No `Clone`, redacted `Debug`, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Kek([u8; 32]);

impl Kek {
    /// The key bytes.
    ///
    /// # Security Warning
    /// This is the key protecting a user's stored credentials. Use it, never log or store it.
    #[must_use]
    pub const fn dangerous_as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek").finish_non_exhaustive()
    }
}

/// Why a KEK could not be derived, sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// The context label exceeds [`MAX_KEK_CONTEXT`] bytes.
    #[error("kek context longer than 256 bytes")]
    ContextTooLong,
    /// The recipient key is not a usable X25519 public key (e.g. a low-order point).
    #[error("invalid recipient public key")]
    BadRecipientKey,
    /// The sealed KEK does not open with this key, request and epoch.
    #[error("sealed kek does not open")]
    Open,
}

/// Derives the v2 KEK of `(omni, context)` from one epoch's K3.
///
/// # Errors
/// [`KekError::ContextTooLong`].
pub fn derive(k3: &K3, omni: &[u8; 32], context: &[u8]) -> Result<Kek, KekError> {
    if context.len() > MAX_KEK_CONTEXT {
        return Err(KekError::ContextTooLong);
    }
    let len = u16::try_from(context.len()).map_err(|_| KekError::ContextTooLong)?;
    let mut kek = Kek([0; 32]);
    let info: [&[u8]; 4] = [KEK_LABEL, omni, &len.to_be_bytes(), context];
    // 32 bytes never exceeds HKDF's output limit.
    let _ = Hkdf::<Sha256>::new(Some(KEK_SALT), k3.dangerous_as_bytes()).expand_multi_info(&info, &mut kek.0);
    Ok(kek)
}

fn hpke_info(key_version: u8) -> [u8; 13] {
    let mut info = [0u8; 13];
    let (label, v) = info.split_at_mut(HPKE_INFO_LABEL.len());
    label.copy_from_slice(HPKE_INFO_LABEL);
    v.copy_from_slice(&[key_version]);
    info
}

/// Seals `kek` to `recipient` (X25519 public key). Returns `(encapsulated_key, ciphertext)`.
///
/// # Errors
/// [`KekError::BadRecipientKey`] when the key is rejected by HPKE's validation.
pub(crate) fn seal(
    kek: &Kek,
    key_version: u8,
    recipient: &[u8; 32],
    aad: &[u8],
    rng: &mut SeededRng,
) -> Result<([u8; 32], Vec<u8>), KekError> {
    crate::transfer::hpke_seal(recipient, &hpke_info(key_version), aad, &kek.0, rng)
        .map_err(|()| KekError::BadRecipientKey)
}

/// Opens a sealed KEK with the recipient's X25519 secret key (client side).
///
/// # Errors
/// [`KekError::Open`] when the key, epoch, request (`aad`) or ciphertext do not match.
pub fn open(
    recipient_secret: &[u8; 32],
    key_version: u8,
    encapsulated_key: &[u8; 32],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Kek, KekError> {
    let pt = crate::transfer::hpke_open(recipient_secret, encapsulated_key, ciphertext, &hpke_info(key_version), aad)
        .map_err(|()| KekError::Open)?;
    if pt.len() != 32 {
        return Err(KekError::Open);
    }
    let mut kek = Kek([0; 32]);
    kek.0.copy_from_slice(&pt);
    Ok(kek)
}

/// An X25519 key pair for receiving sealed KEKs: `(secret, public)`, derived from 32 bytes of
/// fresh randomness (RFC 9180 `DeriveKeyPair`).
#[must_use]
pub fn recipient_keypair(ikm: &[u8; 32]) -> (zeroize::Zeroizing<[u8; 32]>, [u8; 32]) {
    let (sk, pk) = X25519HkdfSha256::derive_keypair(ikm);
    let mut s = zeroize::Zeroizing::new([0u8; 32]);
    s.copy_from_slice(&sk.to_bytes());
    let mut p = [0u8; 32];
    p.copy_from_slice(&pk.to_bytes());
    (s, p)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, reason = "small test constants")]
mod tests {
    use super::*;
    use crate::env::FixedEnv;
    use alloc::format;

    fn k3() -> K3 {
        crate::k3::test_k3_seq()
    }

    /// The formula, computed independently with ring's HKDF.
    fn ring_kek(k3: &[u8; 32], omni: &[u8; 32], ctx: &[u8]) -> [u8; 32] {
        struct L;
        impl ring::hkdf::KeyType for L {
            fn len(&self) -> usize {
                32
            }
        }
        let len = (ctx.len() as u16).to_be_bytes();
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, KEK_SALT).extract(k3);
        let info: [&[u8]; 4] = [KEK_LABEL, omni, &len, ctx];
        let mut out = [0u8; 32];
        prk.expand(&info, L).unwrap().fill(&mut out).unwrap();
        out
    }

    #[test]
    fn derive_matches_independent_hkdf() {
        let k = k3();
        for ctx in [&b""[..], b"openai", &[7u8; 256]] {
            let kek = derive(&k, &[0xab; 32], ctx).unwrap();
            assert_eq!(kek.dangerous_as_bytes(), &ring_kek(k.dangerous_as_bytes(), &[0xab; 32], ctx));
        }
    }

    #[test]
    fn length_prefix_separates_contexts() {
        let k = k3();
        let a = derive(&k, &[1; 32], b"ab").unwrap();
        let b = derive(&k, &[1; 32], b"a").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_context_over_256_bytes() {
        assert_eq!(derive(&k3(), &[0; 32], &[0; 257]).unwrap_err(), KekError::ContextTooLong);
    }

    #[test]
    fn seal_opens_only_with_same_key_epoch_and_aad() {
        let mut env = FixedEnv::new(0);
        let (sk, pk) = recipient_keypair(&[9; 32]);
        let kek = derive(&k3(), &[0xab; 32], b"svc").unwrap();
        let mut rng = SeededRng::from_env(&mut env).unwrap();
        let (enc, ct) = seal(&kek, 1, &pk, b"aad", &mut rng).unwrap();
        assert_eq!(ct.len(), 48);
        assert_eq!(open(&sk, 1, &enc, &ct, b"aad").unwrap(), kek);
        assert_eq!(open(&sk, 2, &enc, &ct, b"aad").unwrap_err(), KekError::Open);
        assert_eq!(open(&sk, 1, &enc, &ct, b"aae").unwrap_err(), KekError::Open);
        let (other, _) = recipient_keypair(&[8; 32]);
        assert_eq!(open(&other, 1, &enc, &ct, b"aad").unwrap_err(), KekError::Open);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(open(&sk, 1, &enc, &bad, b"aad").unwrap_err(), KekError::Open);
    }

    #[test]
    fn rejects_low_order_recipient() {
        let mut env = FixedEnv::new(0);
        let mut rng = SeededRng::from_env(&mut env).unwrap();
        let kek = derive(&k3(), &[0xab; 32], b"svc").unwrap();
        assert_eq!(seal(&kek, 1, &[0; 32], b"", &mut rng).unwrap_err(), KekError::BadRecipientKey);
    }

    #[test]
    fn debug_never_shows_kek() {
        let kek = derive(&k3(), &[0xab; 32], b"svc").unwrap();
        let hexed = hex::encode(kek.dangerous_as_bytes());
        let s = format!("{kek:?}");
        assert!(!s.contains(&hexed[..8]) && s.len() < 20, "{s}");
    }
}
