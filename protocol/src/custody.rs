//! K3 custody on the wire (SPEC §6): provisioning, the sealed blob a host keeps for restarts,
//! replication between attested peers, and the state an operator reads back.
//!
//! ```text
//!  operator ──session──▶ Provision{HPKE(K3) to the session's attested X25519 key}
//!  host     ──────────▶ SealK3 ─▶ blob ─▶ disk (atomic) ─▶ UnsealK3(blob) confirms it
//!  host     ─ at boot ─▶ UnsealK3(blob from disk)
//!  B ─PeerOffer(evidence over import key)─▶ A ─PeerExport(HPKE(K3s) + A's evidence)─▶ B
//! ```
//!
//! Everything here is public or sealed: K3 itself only ever appears inside HPKE or AES-GCM
//! ciphertext.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::attest::{Evidence, Platform};
use crate::bytes::Bytes;
use crate::message::Epoch;

/// HPKE `info` label of a provisioning request (followed by the session's 64-byte binding).
pub const PROVISION_INFO_LABEL: &[u8] = b"sigil/provision/v1";
/// HPKE `info` label of a retirement's proof of possession (followed by the binding).
pub const RETIRE_INFO_LABEL: &[u8] = b"sigil/retire/v1";
/// Binding label of a [`PeerOffer`]'s evidence.
pub const PEER_OFFER_LABEL: &[u8] = b"sigil/peer-offer/v1";
/// Binding label of a [`PeerExport`]'s evidence.
pub const PEER_EXPORT_LABEL: &[u8] = b"sigil/peer-export/v1";
/// HPKE `info` label of a replication payload (followed by the offer's binding).
pub const REPLICATE_INFO_LABEL: &[u8] = b"sigil/replicate/v1";
/// Most K3 epochs one enclave holds (and one blob or export carries).
pub const MAX_EPOCHS: usize = 64;
/// Largest sealed blob accepted: a header of [`MAX_EPOCHS`] epochs, their K3s and a platform
/// key handle (a Nitro KMS ciphertext is a few hundred bytes) fit well below it.
pub const MAX_BLOB: usize = 16 * 1024;
/// A K3 is 32 bytes; an HPKE-sealed one (AES-256-GCM) 48.
pub const SEALED_K3_LEN: usize = 32 + 16;

/// Inside an attested session: load (or, as [`crate::Request::Retire`], retire) the K3 of
/// one epoch. The K3 is sealed with RFC 9180 HPKE base mode (DHKEM(X25519, HKDF-SHA256),
/// HKDF-SHA256, AES-256-GCM) to the session's attested enclave key, with
/// `info = label || binding hash` and `aad = [key_version, proof_key_version]`, so it opens
/// only in the enclave that attested to this very session.
///
/// Custody belongs to whoever holds K3: once an enclave holds any epoch, a new one is loaded
/// only with proof of possession of a loaded one. The plaintext is then the new K3 followed
/// by the K3 of `proof_key_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionK3 {
    /// The epoch (`1..=255`).
    pub key_version: u8,
    /// HPKE encapsulated key.
    pub encapsulated_key: Bytes<32>,
    /// The sealed K3 ([`SEALED_K3_LEN`] bytes), or K3 and proof K3 (32 more).
    pub ciphertext: Vec<u8>,
    /// The loaded epoch whose K3 follows as proof of possession; 0 = none (the enclave holds
    /// no K3 yet, a retirement, or re-provisioning an epoch with the K3 it already has).
    pub proof_key_version: u8,
}

impl ProvisionK3 {
    /// The HPKE `aad`: `[key_version, proof_key_version]`.
    #[must_use]
    pub const fn aad(key_version: u8, proof_key_version: u8) -> [u8; 2] {
        [key_version, proof_key_version]
    }
}

/// Host → enclave: load K3 from a sealed blob (at boot), or confirm that a blob the host has
/// just stored opens (after which the epochs it holds are durable and served).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealK3 {
    /// The blob as [`crate::Response::SealedK3`] returned it.
    pub blob: Vec<u8>,
}

/// Enclave → host: every loaded epoch sealed under the platform-bound key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedK3 {
    /// See [`BlobHeader`] for the layout.
    pub blob: Vec<u8>,
}

/// Where the enclave's custody stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyStatus {
    /// Random per enclave start: a host notices a restarted enclave by its change.
    pub boot_id: Bytes<16>,
    /// The epoch used when a request names epoch 0 ("current"): the newest durable one.
    pub current_key_version: Option<u8>,
    /// Every loaded epoch, ascending.
    pub epochs: Vec<EpochState>,
    /// The platform whose key seals blobs; `None`: this enclave cannot seal (K3 lives only in
    /// memory and a restart needs re-provisioning or replication).
    pub sealer: Option<Platform>,
    /// What is loaded differs from the last blob that opened here (an epoch was provisioned,
    /// imported or retired): the host should seal, store and confirm a new blob.
    pub needs_seal: bool,
    /// Why the last unseal failed, while no provisioning has replaced it: the host reports
    /// `reprovision_required` with this text.
    pub reprovision: Option<alloc::string::String>,
}

/// One loaded epoch and whether it is served yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochState {
    /// The epoch and its K3 fingerprint.
    pub epoch: Epoch,
    /// `true` once a sealed blob holding it has been confirmed (or it came from the
    /// enclave's own configuration). Only durable epochs are served, so nothing is ever
    /// signed under a K3 a restart could lose.
    pub durable: bool,
}

/// B → A: "send your K3 epochs to this key": an ephemeral X25519 key of B's and B's evidence
/// over it (user data = [`PeerOffer::binding`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerOffer {
    /// B's protocol version (bound into the evidence).
    pub protocol_version: u8,
    /// B's one-time import key.
    pub import_pub: Bytes<32>,
    /// B's evidence.
    pub evidence: Evidence,
    /// B's configuration fingerprint (its pinned broker key): peers of one deployment share
    /// it, and an enclave of the same image configured for another broker is refused.
    pub config: Bytes<32>,
}

impl PeerOffer {
    /// `SHA-512("sigil/peer-offer/v1" || platform label || lp(import_pub) || lp([version]) ||
    /// lp(config))`.
    #[must_use]
    pub fn binding(&self) -> [u8; 64] {
        offer_binding(self.evidence.platform, &self.import_pub.0, self.protocol_version, &self.config.0)
    }
}

/// The binding of an offer of `import_pub` made on `platform` at `protocol_version` by an
/// enclave with configuration fingerprint `config`.
#[must_use]
pub fn offer_binding(platform: Platform, import_pub: &[u8; 32], protocol_version: u8, config: &[u8; 32]) -> [u8; 64] {
    lp_hash(PEER_OFFER_LABEL, platform, &[import_pub, &[protocol_version], config])
}

/// A → B: A's epochs, HPKE-sealed to B's import key (`info = "sigil/replicate/v1" ||
/// offer binding`, `aad = postcard(epochs)`, plaintext = the K3s in `epochs` order), and
/// A's evidence over all of it (user data = [`PeerExport::binding`]), so B knows the K3s come
/// from an enclave like itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerExport {
    /// The offer this answers (B finds its import key by it).
    pub import_pub: Bytes<32>,
    /// The epochs carried, ascending, with their fingerprints.
    pub epochs: Vec<Epoch>,
    /// HPKE encapsulated key.
    pub encapsulated_key: Bytes<32>,
    /// `32 × epochs.len() + 16` bytes.
    pub ciphertext: Vec<u8>,
    /// A's evidence.
    pub evidence: Evidence,
    /// A's configuration fingerprint (see [`PeerOffer::config`]).
    pub config: Bytes<32>,
}

impl PeerExport {
    /// `SHA-512("sigil/peer-export/v1" || platform || lp(offer binding) || lp(enc) ||
    /// lp(SHA-256(ciphertext)) || lp(postcard(epochs)) || lp(config))`, with the offer binding
    /// computed for the exporter's platform, `protocol_version` and `config` (an offer is only
    /// answered by a peer with the same configuration).
    #[must_use]
    pub fn binding(&self, protocol_version: u8) -> [u8; 64] {
        let offer = offer_binding(self.evidence.platform, &self.import_pub.0, protocol_version, &self.config.0);
        let ct_hash: [u8; 32] = Sha256::digest(&self.ciphertext).into();
        let epochs = epochs_aad(&self.epochs);
        lp_hash(
            PEER_EXPORT_LABEL,
            self.evidence.platform,
            &[&offer, &self.encapsulated_key.0, &ct_hash, &epochs, &self.config.0],
        )
    }
}

/// `postcard(epochs)`: the HPKE `aad` of a replication payload.
#[must_use]
pub fn epochs_aad(epochs: &[Epoch]) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail.
    postcard::to_allocvec(epochs).unwrap_or_default()
}

/// `info = label || binding` for the HPKE of provisioning, retirement and replication.
#[must_use]
pub fn hpke_info(label: &[u8], binding: &[u8; 64]) -> Vec<u8> {
    let mut info = Vec::with_capacity(label.len() + 64);
    info.extend_from_slice(label);
    info.extend_from_slice(binding);
    info
}

fn lp_hash(label: &[u8], platform: Platform, fields: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(label);
    h.update(platform.label().as_bytes());
    for field in fields {
        h.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(field);
    }
    h.finalize().into()
}

// ---- the sealed blob -----------------------------------------------------------------------

/// First bytes of every sealed blob.
pub const BLOB_MAGIC: &[u8; 4] = b"SGLK";
/// The blob format this build writes and reads.
pub const BLOB_FORMAT: u8 = 1;

/// The cleartext, authenticated part of a sealed blob.
///
/// Layout: `"SGLK" || format (1) || u32_be(len(header)) || postcard(header) || ciphertext`,
/// where `ciphertext` is AES-256-GCM over the K3s in `epochs` order under the platform-bound
/// key named by `key_handle`, with nonce `nonce` and AAD = every byte before it. The AAD thus
/// covers the platform, the measurement, every `key_version` and K3 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobHeader {
    /// The platform whose key sealed it.
    pub platform: Platform,
    /// What the sealing key is bound to (Nitro/sim: PCR0‖PCR1‖PCR2; SNP: the launch
    /// measurement).
    pub measurement: Vec<u8>,
    /// The epochs inside, ascending.
    pub epochs: Vec<Epoch>,
    /// How the platform finds the key again (sim/SNP: a per-blob salt; Nitro: the KMS
    /// ciphertext of the data key).
    pub key_handle: Vec<u8>,
    /// AES-GCM nonce.
    pub nonce: Bytes<12>,
}

/// Why bytes are not a sealed blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobError {
    /// Larger than [`MAX_BLOB`].
    TooLarge,
    /// Not starting with [`BLOB_MAGIC`].
    NotABlob,
    /// A format this build does not know.
    UnknownFormat(u8),
    /// Truncated, or a malformed header.
    Malformed,
}

impl core::fmt::Display for BlobError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "sealed blob larger than {MAX_BLOB} bytes"),
            Self::NotABlob => f.write_str("not a sigil sealed blob (bad magic)"),
            Self::UnknownFormat(v) => write!(f, "sealed blob format {v} is not supported"),
            Self::Malformed => f.write_str("sealed blob is truncated or malformed"),
        }
    }
}

impl core::error::Error for BlobError {}

/// A parsed blob: header, the authenticated bytes, the ciphertext.
#[derive(Debug, Clone, Copy)]
pub struct BlobParts<'a> {
    /// Everything before the ciphertext: the AES-GCM AAD.
    pub aad: &'a [u8],
    /// The sealed K3s and the tag.
    pub ciphertext: &'a [u8],
}

impl BlobHeader {
    /// `"SGLK" || format || u32_be(len) || postcard(self)`: the blob's AAD.
    #[must_use]
    pub fn encode_aad(&self) -> Vec<u8> {
        let header = postcard::to_allocvec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(9 + header.len());
        out.extend_from_slice(BLOB_MAGIC);
        out.push(BLOB_FORMAT);
        out.extend_from_slice(&u32::try_from(header.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&header);
        out
    }

    /// Parses a blob's header (without opening it): sizes are checked before anything is
    /// allocated, and the header must be canonical postcard with at most [`MAX_EPOCHS`]
    /// ascending, distinct epochs.
    ///
    /// # Errors
    /// [`BlobError`].
    pub fn parse(blob: &[u8]) -> Result<(Self, BlobParts<'_>), BlobError> {
        if blob.len() > MAX_BLOB {
            return Err(BlobError::TooLarge);
        }
        let (magic, rest) = blob.split_at_checked(4).ok_or(BlobError::NotABlob)?;
        if magic != BLOB_MAGIC {
            return Err(BlobError::NotABlob);
        }
        let (&format, rest) = rest.split_first().ok_or(BlobError::Malformed)?;
        if format != BLOB_FORMAT {
            return Err(BlobError::UnknownFormat(format));
        }
        let (len, rest) = rest.split_at_checked(4).ok_or(BlobError::Malformed)?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| BlobError::Malformed)?);
        let len = usize::try_from(len).map_err(|_| BlobError::Malformed)?;
        let (header_bytes, ciphertext) = rest.split_at_checked(len).ok_or(BlobError::Malformed)?;
        let header: Self = crate::decode_payload(header_bytes).map_err(|_| BlobError::Malformed)?;
        let ascending = header.epochs.windows(2).all(|w| matches!(w, [a, b] if a.key_version < b.key_version));
        if header.epochs.is_empty() || header.epochs.len() > MAX_EPOCHS || !ascending {
            return Err(BlobError::Malformed);
        }
        let aad = blob.get(..9 + len).ok_or(BlobError::Malformed)?;
        Ok((header, BlobParts { aad, ciphertext }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn header() -> BlobHeader {
        BlobHeader {
            platform: Platform::Sim,
            measurement: vec![7; 144],
            epochs: vec![
                Epoch { key_version: 1, k3_fingerprint: Bytes([1; 32]) },
                Epoch { key_version: 2, k3_fingerprint: Bytes([2; 32]) },
            ],
            key_handle: vec![9; 32],
            nonce: Bytes([3; 12]),
        }
    }

    #[test]
    fn blob_header_round_trips_and_rejects_damage() {
        let h = header();
        let mut blob = h.encode_aad();
        let aad_len = blob.len();
        blob.extend_from_slice(&[0xcc; 80]);
        let (back, parts) = BlobHeader::parse(&blob).unwrap();
        assert_eq!(back, h);
        assert_eq!(parts.aad.len(), aad_len);
        assert_eq!(parts.ciphertext, &[0xcc; 80][..]);

        assert_eq!(BlobHeader::parse(b"SGL").unwrap_err(), BlobError::NotABlob);
        assert_eq!(BlobHeader::parse(b"XGLK\x01").unwrap_err(), BlobError::NotABlob);
        let mut v2 = blob.clone();
        v2[4] = 2;
        assert_eq!(BlobHeader::parse(&v2).unwrap_err(), BlobError::UnknownFormat(2));
        // Every truncation inside the header is refused.
        for cut in 0..aad_len {
            assert!(BlobHeader::parse(&blob[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(BlobHeader::parse(&vec![0; MAX_BLOB + 1]).unwrap_err(), BlobError::TooLarge);
        // A length field pointing past the end.
        let mut long = blob.clone();
        long[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(BlobHeader::parse(&long).unwrap_err(), BlobError::Malformed);
    }

    #[test]
    fn blob_epochs_must_be_ascending_distinct_and_present() {
        for epochs in [
            vec![],
            vec![
                Epoch { key_version: 2, k3_fingerprint: Bytes([2; 32]) },
                Epoch { key_version: 1, k3_fingerprint: Bytes([1; 32]) },
            ],
            vec![Epoch { key_version: 1, k3_fingerprint: Bytes([1; 32]) }; 2],
        ] {
            let h = BlobHeader { epochs, ..header() };
            assert_eq!(BlobHeader::parse(&h.encode_aad()).unwrap_err(), BlobError::Malformed);
        }
    }

    #[test]
    fn bindings_separate_their_inputs() {
        let a = offer_binding(Platform::Sim, &[1; 32], 1, &[0; 32]);
        assert_ne!(a, offer_binding(Platform::Nitro, &[1; 32], 1, &[0; 32]));
        assert_ne!(a, offer_binding(Platform::Sim, &[2; 32], 1, &[0; 32]));
        assert_ne!(a, offer_binding(Platform::Sim, &[1; 32], 2, &[0; 32]));
        assert_ne!(a, offer_binding(Platform::Sim, &[1; 32], 1, &[1; 32]));
        let ev = Evidence { platform: Platform::Sim, document: vec![1], certificates: vec![] };
        let export = PeerExport {
            import_pub: Bytes([1; 32]),
            epochs: vec![Epoch { key_version: 1, k3_fingerprint: Bytes([5; 32]) }],
            encapsulated_key: Bytes([2; 32]),
            ciphertext: vec![3; 48],
            evidence: ev,
            config: Bytes([4; 32]),
        };
        let base = export.binding(1);
        assert_ne!(base, export.binding(2));
        let mut other = export.clone();
        other.ciphertext[0] ^= 1;
        assert_ne!(base, other.binding(1));
        let mut other = export.clone();
        other.epochs[0].k3_fingerprint = Bytes([6; 32]);
        assert_ne!(base, other.binding(1));
        let mut other = export.clone();
        other.import_pub = Bytes([9; 32]);
        assert_ne!(base, other.binding(1));
        let mut other = export;
        other.config = Bytes([5; 32]);
        assert_ne!(base, other.binding(1));
    }
}
