//! K3 in transit: RFC 9180 HPKE base mode (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM) of one or more K3s to an attested X25519 key.
//!
//! Used by provisioning and retirement (operator → the session's attested key, `info =
//! label || session binding`) and by replication (enclave A → B's attested one-time import
//! key, `info = "sigil/replicate/v1" || offer binding`). The plaintext is the K3s back to
//! back; the caller says how many it expects, so a payload of another size never opens.

use alloc::vec::Vec;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::env::SeededRng;
use crate::k3::K3;

/// Why a K3 transfer could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The recipient key is not a usable X25519 public key.
    #[error("invalid recipient public key")]
    BadRecipientKey,
    /// The payload does not open with this key, label, binding and header, or holds another
    /// number of K3s than expected.
    #[error("sealed K3 does not open with this enclave's attested key")]
    Open,
}

/// Seals `k3s` to `recipient`. `ikm` is 32 bytes of fresh randomness (the sender's ephemeral
/// key is drawn from it). Returns `(encapsulated_key, ciphertext)`.
///
/// # Errors
/// [`TransferError::BadRecipientKey`].
pub fn seal(
    recipient: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    k3s: &[&K3],
    ikm: Zeroizing<[u8; 32]>,
) -> Result<([u8; 32], Vec<u8>), TransferError> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(32 * k3s.len()));
    for k3 in k3s {
        plaintext.extend_from_slice(k3.dangerous_as_bytes());
    }
    hpke_seal(recipient, info, aad, &plaintext, &mut SeededRng::from_seed(*ikm))
        .map_err(|()| TransferError::BadRecipientKey)
}

/// Opens what [`seal`] made for `count` K3s with the recipient's X25519 secret.
///
/// # Errors
/// [`TransferError::Open`].
pub fn open(
    secret: &[u8; 32],
    encapsulated_key: &[u8; 32],
    ciphertext: &[u8],
    info: &[u8],
    aad: &[u8],
    count: usize,
) -> Result<Vec<K3>, TransferError> {
    if ciphertext.len() != 32 * count + 16 {
        return Err(TransferError::Open);
    }
    let pt = hpke_open(secret, encapsulated_key, ciphertext, info, aad).map_err(|()| TransferError::Open)?;
    Ok(pt
        .chunks_exact(32)
        .map(|c| {
            let mut b = Zeroizing::new([0u8; 32]);
            b.copy_from_slice(c);
            K3::from_bytes(*b)
        })
        .collect())
}

/// RFC 9180 base-mode seal with this crate's suite (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
/// AES-256-GCM): `(encapsulated_key, ciphertext)`, or `Err` for an unusable recipient key.
pub(crate) fn hpke_seal(
    recipient: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut SeededRng,
) -> Result<([u8; 32], Vec<u8>), ()> {
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(recipient).map_err(|_| ())?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
        rng,
    )
    .map_err(|_| ())?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&enc.to_bytes());
    Ok((out, ct))
}

/// The opening half of [`hpke_seal`]; the plaintext wipes itself when dropped.
pub(crate) fn hpke_open(
    secret: &[u8; 32],
    encapsulated_key: &[u8; 32],
    ciphertext: &[u8],
    info: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ()> {
    let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(secret).map_err(|_| ())?;
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(encapsulated_key).map_err(|_| ())?;
    hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(&OpModeR::Base, &sk, &enc, info, ciphertext, aad)
        .map(Zeroizing::new)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn keypair() -> (Zeroizing<[u8; 32]>, [u8; 32]) {
        crate::kek::recipient_keypair(&[7; 32])
    }

    #[test]
    fn round_trips_and_binds_info_aad_and_count() {
        let (sk, pk) = keypair();
        let (a, b) = (K3::from_bytes([1; 32]), K3::from_bytes([2; 32]));
        let (enc, ct) = seal(&pk, b"info", b"aad", &[&a, &b], Zeroizing::new([3; 32])).unwrap();
        let out = open(&sk, &enc, &ct, b"info", b"aad", 2).unwrap();
        assert_eq!(out[1].dangerous_as_bytes(), &[2; 32]);
        assert_eq!(open(&sk, &enc, &ct, b"other", b"aad", 2).unwrap_err(), TransferError::Open);
        assert_eq!(open(&sk, &enc, &ct, b"info", b"other", 2).unwrap_err(), TransferError::Open);
        assert_eq!(open(&sk, &enc, &ct, b"info", b"aad", 1).unwrap_err(), TransferError::Open);
        let (other_sk, _) = crate::kek::recipient_keypair(&[8; 32]);
        assert_eq!(open(&other_sk, &enc, &ct, b"info", b"aad", 2).unwrap_err(), TransferError::Open);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(open(&sk, &enc, &bad, b"info", b"aad", 2).unwrap_err(), TransferError::Open);
        assert_eq!(
            seal(&[0; 32], b"", b"", &[&a], Zeroizing::new([0; 32])).unwrap_err(),
            TransferError::BadRecipientKey
        );
        let _ = vec![0u8];
    }
}
