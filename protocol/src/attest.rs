//! The attestation handshake's messages and the binding hash that ties a piece of TEE
//! evidence to one handshake (SPEC §5).
//!
//! The client sends a fresh nonce and (to open a session) an X25519 key; the enclave answers
//! with its ephemeral X25519 key, its long-term response-signing key, its K3 fingerprint and
//! evidence whose 64-byte user data is [`Binding::hash`] over all of them. A verifier that
//! recomputes the hash from what it sent and what it received knows the evidence was made
//! for this handshake, by the platform that holds those keys.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::bytes::Bytes;

/// Domain-separation label of [`Binding::hash`].
pub const BINDING_LABEL: &[u8] = b"sigil/attest/v1";

/// Most certificates carried next to a document (SNP: VCEK/VLEK, ASK/ASVK, ARK).
pub const MAX_EVIDENCE_CERTIFICATES: usize = 8;

/// The TEE that produced a piece of evidence. Append-only: the variant index is the wire tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Platform {
    /// AWS Nitro Enclaves: a COSE_Sign1 attestation document from the NSM.
    Nitro,
    /// AMD SEV-SNP: an `ATTESTATION_REPORT` plus the VCEK/VLEK chain.
    Snp,
    /// sigil's simulation: a Nitro-format document signed by a test CA. Never production.
    Sim,
}

impl Platform {
    /// The label hashed into the binding and used in policies and JSON.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Nitro => "nitro",
            Self::Snp => "snp",
            Self::Sim => "sim",
        }
    }

    /// The platform with this [`Platform::label`].
    #[must_use]
    pub fn from_label(s: &str) -> Option<Self> {
        [Self::Nitro, Self::Snp, Self::Sim].into_iter().find(|p| p.label() == s)
    }
}

/// Evidence as the platform produced it, untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Who produced it, which decides how `document` is verified.
    pub platform: Platform,
    /// Nitro/sim: the COSE_Sign1 bytes. SNP: the 1184-byte report.
    pub document: Vec<u8>,
    /// SNP: DER certificates, VCEK/VLEK first, then whatever of ASK/ASVK and ARK the host
    /// supplied (never trusted on their own). Nitro/sim: empty (the chain is inside).
    pub certificates: Vec<Vec<u8>>,
}

/// Client → enclave: "attest to this nonce" (and, with a key, "open a session").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestRequest {
    /// Fresh randomness from the client: the evidence's freshness comes from it.
    pub client_nonce: Bytes<32>,
    /// The client's ephemeral X25519 public key; `None` asks for evidence only (the plain
    /// `/dev/attestation` route), without a session.
    pub client_pub: Option<Bytes<32>>,
}

/// Enclave → client: evidence bound to the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// Protocol version the enclave speaks (bound into the evidence).
    pub protocol_version: u8,
    /// The enclave's ephemeral X25519 key for this session; present iff `client_pub` was.
    pub enclave_pub: Option<Bytes<32>>,
    /// The enclave's long-term Ed25519 key that signs `/dev/*` responses.
    pub signing_pub: Bytes<32>,
    /// Fingerprint of the current K3 epoch; all zero when unprovisioned.
    pub k3_fingerprint: Bytes<32>,
    /// The platform's evidence; its user data is [`Attestation::binding`]'s hash.
    pub evidence: Evidence,
}

impl Attestation {
    /// The binding this attestation claims for `request`.
    #[must_use]
    pub fn binding<'a>(&'a self, request: &'a AttestRequest) -> Binding<'a> {
        Binding {
            platform: self.evidence.platform,
            client_nonce: &request.client_nonce.0,
            client_pub: request.client_pub.as_ref().map_or(&[], |k| &k.0),
            enclave_pub: self.enclave_pub.as_ref().map_or(&[], |k| &k.0),
            signing_pub: &self.signing_pub.0,
            k3_fingerprint: &self.k3_fingerprint.0,
            protocol_version: self.protocol_version,
        }
    }
}

/// Everything one handshake binds into the evidence's 64-byte user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The evidence's platform.
    pub platform: Platform,
    /// The client's nonce.
    pub client_nonce: &'a [u8],
    /// The client's X25519 key, or empty.
    pub client_pub: &'a [u8],
    /// The enclave's ephemeral X25519 key, or empty.
    pub enclave_pub: &'a [u8],
    /// The enclave's Ed25519 response-signing key.
    pub signing_pub: &'a [u8],
    /// The K3 fingerprint.
    pub k3_fingerprint: &'a [u8],
    /// The protocol version.
    pub protocol_version: u8,
}

impl Binding<'_> {
    /// `SHA-512("sigil/attest/v1" || platform label || lp(client_nonce) || lp(client_pub) ||
    /// lp(enclave_pub) || lp(signing_pub) || lp(k3_fingerprint) || lp([protocol_version]))`,
    /// where `lp(x) = u32_be(len(x)) || x`. The length prefixes make the encoding injective.
    #[must_use]
    pub fn hash(&self) -> [u8; 64] {
        let mut h = Sha512::new();
        h.update(BINDING_LABEL);
        h.update(self.platform.label().as_bytes());
        for field in [
            self.client_nonce,
            self.client_pub,
            self.enclave_pub,
            self.signing_pub,
            self.k3_fingerprint,
            &[self.protocol_version][..],
        ] {
            // Every field is far below 4 GiB; saturating keeps the arithmetic total.
            h.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
            h.update(field);
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding<'static> {
        Binding {
            platform: Platform::Nitro,
            client_nonce: &[1; 32],
            client_pub: &[2; 32],
            enclave_pub: &[3; 32],
            signing_pub: &[4; 32],
            k3_fingerprint: &[5; 32],
            protocol_version: 1,
        }
    }

    #[test]
    fn binding_hash_is_frozen() {
        // Computed independently: python3 -c 'import hashlib,struct; lp=lambda b: struct.pack(">I",len(b))+b;
        // print(hashlib.sha512(b"sigil/attest/v1"+b"nitro"+b"".join(lp(bytes([i])*32) for i in range(1,6))+lp(b"\x01")).hexdigest())'
        let expected = hex_literal::hex!(
            "dd566761593681f2e80c9e4e6de803d0974a7b823eea6a0f87695f00fea106fa"
            "6e2ae7a04c3f064c9c35fc4a3335588313c8ba0d94408d05d9540b9349bce7fb"
        );
        assert_eq!(binding().hash(), expected);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = binding().hash();
        let variants = [
            Binding { platform: Platform::Sim, ..binding() },
            Binding { client_nonce: &[9; 32], ..binding() },
            Binding { client_pub: &[], ..binding() },
            Binding { enclave_pub: &[9; 32], ..binding() },
            Binding { signing_pub: &[9; 32], ..binding() },
            Binding { k3_fingerprint: &[9; 32], ..binding() },
            Binding { protocol_version: 2, ..binding() },
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v.hash(), base, "field {i}");
        }
        // Moving a byte from one field to the next must not collide (length prefixes).
        let a = Binding { client_nonce: &[1; 33], client_pub: &[2; 31], ..binding() };
        let b = Binding { client_nonce: &[1; 32], client_pub: &[1, 2, 2, 2], ..binding() };
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn platform_labels_round_trip() {
        for p in [Platform::Nitro, Platform::Snp, Platform::Sim] {
            assert_eq!(Platform::from_label(p.label()), Some(p));
        }
        assert_eq!(Platform::from_label("tdx"), None);
    }
}
