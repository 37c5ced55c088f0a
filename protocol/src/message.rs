//! The messages carried inside frames: a `{request_id, body}` envelope around a [`Request`] or
//! [`Response`], encoded with postcard.
//!
//! **Compatibility rule:** enum variants and struct fields are append-only. A variant's index is
//! its wire tag (postcard writes it as a varint), so reordering or removing one would make an
//! old peer misread a new one. The golden vectors in `tests/golden.rs` freeze every message.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ErrorCode;
use crate::attest::{AttestRequest, Attestation};
use crate::bytes::Bytes;
use crate::custody::{CustodyStatus, PeerExport, PeerOffer, ProvisionK3, SealedK3, UnsealK3};
use crate::session::SealedRecord;

/// A request or response with the id that pairs them. One connection carries many requests
/// at once; responses may come back in any order and are matched by `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// Chosen by the requester; echoed in the response.
    pub request_id: u64,
    /// The message.
    pub body: B,
}

/// The 32 raw bytes of an agentKeys account: `SHA256("agentkeys" || identity_type || identity_value)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OmniAccount(pub Bytes<32>);

impl OmniAccount {
    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0.0
    }
}

impl From<[u8; 32]> for OmniAccount {
    fn from(b: [u8; 32]) -> Self {
        Self(Bytes(b))
    }
}

impl fmt::Debug for OmniAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OmniAccount({:?})", self.0)
    }
}

/// A broker JWT in compact form (`header.payload.signature`).
///
/// It is a bearer credential: `Debug` never shows it and the string is zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct BrokerToken(String);

impl BrokerToken {
    /// Wraps a compact JWT.
    #[must_use]
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The compact JWT.
    ///
    /// # Security Warning
    /// This is a bearer credential; do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BrokerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerToken").finish_non_exhaustive()
    }
}

/// Host → enclave requests. Append-only: the variant index is the wire tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Version negotiation; answered with [`Response::Hello`].
    Hello(Hello),
    /// Provisioning state and K3 fingerprints; answered with [`Response::Status`].
    Status,
    /// The wallet address of an account; answered with [`Response::Address`].
    DeriveAddress(DeriveAddress),
    /// An EIP-191 `personal_sign`; answered with [`Response::Eip191Signature`].
    SignEip191(SignEip191),
    /// An EIP-712 v4 typed-data signature; answered with [`Response::Eip712Signature`].
    SignEip712(SignEip712),
    /// A native v2 KEK, sealed to the caller; answered with [`Response::SealedKek`].
    DeriveKek(DeriveKek),
    /// Evidence bound to a nonce, optionally opening a session; answered with
    /// [`Response::Attestation`].
    Attest(AttestRequest),
    /// A request sealed inside an attested session (its plaintext is a postcard [`Request`]);
    /// answered with [`Response::Sealed`] (plaintext: a postcard [`Response`]).
    Sealed(SealedRecord),
    /// A plain `/dev/*` HTTP call passed through whole, so the enclave parses the body the
    /// client sent and signs the body the client will get; answered with
    /// [`Response::DevResponse`].
    DevCall(DevCall),
    /// Load the K3 of an epoch, HPKE-sealed to the session's attested key. Only accepted
    /// inside an attested session; answered with [`Response::CustodyStatus`].
    Provision(ProvisionK3),
    /// Custody state; answered with [`Response::CustodyStatus`].
    CustodyStatus,
    /// Seal every loaded epoch under the platform-bound key; answered with
    /// [`Response::SealedK3`].
    SealK3,
    /// Load or confirm a sealed blob; answered with [`Response::CustodyStatus`], or
    /// `reprovision_required`.
    UnsealK3(UnsealK3),
    /// Make a one-time import key and attest to it; answered with [`Response::PeerOffer`].
    PeerOffer,
    /// Seal every durable epoch to a peer whose evidence shows the same measurement;
    /// answered with [`Response::PeerExport`].
    ExportForPeer(PeerOffer),
    /// Load epochs exported by a peer with the same measurement; answered with
    /// [`Response::CustodyStatus`].
    ImportFromPeer(PeerExport),
    /// Unload an epoch, proving possession of its K3 (sealed as for `Provision`, with the
    /// retire label). Only inside an attested session; answered with
    /// [`Response::CustodyStatus`].
    Retire(ProvisionK3),
}

/// The version range the sender speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Oldest version the sender accepts.
    pub min_version: u8,
    /// Newest version the sender accepts.
    pub max_version: u8,
}

/// Which account, which K3 epoch, and the broker's authorisation for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The broker JWT; the enclave verifies it itself.
    pub token: BrokerToken,
    /// The K3 epoch (`0x01` today).
    pub key_version: u8,
    /// The account; must equal the token's `agentkeys.omni_account` claim.
    pub omni: OmniAccount,
}

/// Derive the wallet address of [`Subject::omni`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeriveAddress {
    /// Account and authorisation.
    pub subject: Subject,
}

/// Sign `keccak256("\x19Ethereum Signed Message:\n" || len || message)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignEip191 {
    /// Account and authorisation.
    pub subject: Subject,
    /// The raw message (may be empty).
    pub message: Vec<u8>,
}

/// Sign EIP-712 typed data. The enclave parses and hashes the JSON itself: it never signs a
/// digest it did not compute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignEip712 {
    /// Account and authorisation.
    pub subject: Subject,
    /// The `{domain, types, primaryType, message}` object as JSON text.
    pub typed_data: String,
}

/// Derive the native v2 KEK for `(omni, context)` and seal it with HPKE to `recipient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeriveKek {
    /// Account and authorisation.
    pub subject: Subject,
    /// Caller's label, e.g. the service name; at most [`MAX_KEK_CONTEXT`] bytes.
    pub context: Vec<u8>,
    /// The caller's X25519 public key the KEK is sealed to.
    pub recipient: Bytes<32>,
}

/// Longest accepted KEK context label.
pub const MAX_KEK_CONTEXT: usize = 256;

/// Domain-separation label of [`DeriveKek::aad`].
pub const KEK_AAD_LABEL: &[u8] = b"sigil/kek/aad/v1";

impl DeriveKek {
    /// The request's canonical bytes, used as HPKE `aad` so a sealed KEK opens only for the
    /// request it answers: `KEK_AAD_LABEL || postcard(key_version, omni, context, recipient)`.
    /// The token is left out: it authorises the request but does not define what is derived.
    #[must_use]
    pub fn aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEK_AAD_LABEL.len() + 72 + self.context.len());
        out.extend_from_slice(KEK_AAD_LABEL);
        let fields = (self.subject.key_version, &self.subject.omni, &self.context, &self.recipient);
        // Serializing plain bytes into a Vec cannot fail.
        if let Ok(v) = postcard::to_extend(&fields, out) {
            return v;
        }
        Vec::new()
    }
}

/// Enclave → host responses. Append-only: the variant index is the wire tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// The request failed; nothing was signed or derived.
    Error(WireError),
    /// Answer to [`Request::Hello`].
    Hello(HelloAck),
    /// Answer to [`Request::Status`].
    Status(Status),
    /// Answer to [`Request::DeriveAddress`].
    Address(AddressInfo),
    /// Answer to [`Request::SignEip191`].
    Eip191Signature(Eip191Signature),
    /// Answer to [`Request::SignEip712`].
    Eip712Signature(Eip712Signature),
    /// Answer to [`Request::DeriveKek`].
    SealedKek(SealedKek),
    /// Answer to [`Request::Attest`].
    Attestation(Attestation),
    /// Answer to [`Request::Sealed`].
    Sealed(SealedRecord),
    /// Answer to [`Request::DevCall`].
    DevResponse(DevResponse),
    /// Answer to [`Request::CustodyStatus`], [`Request::Provision`], [`Request::UnsealK3`],
    /// [`Request::ImportFromPeer`] and [`Request::Retire`].
    CustodyStatus(CustodyStatus),
    /// Answer to [`Request::SealK3`].
    SealedK3(SealedK3),
    /// Answer to [`Request::PeerOffer`].
    PeerOffer(PeerOffer),
    /// Answer to [`Request::ExportForPeer`].
    PeerExport(PeerExport),
}

/// The plain agentKeys routes the enclave answers itself. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DevRoute {
    /// `POST /dev/derive-address`.
    DeriveAddress,
    /// `POST /dev/sign-message`.
    SignMessage,
    /// `POST /dev/sign-typed-data`.
    SignTypedData,
}

impl DevRoute {
    /// The HTTP path.
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Self::DeriveAddress => "/dev/derive-address",
            Self::SignMessage => "/dev/sign-message",
            Self::SignTypedData => "/dev/sign-typed-data",
        }
    }
}

/// A `/dev/*` request as the HTTP client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevCall {
    /// Which route.
    pub route: DevRoute,
    /// The bearer token from `Authorization` (verified again by the enclave).
    pub token: BrokerToken,
    /// The raw JSON request body.
    pub body: Vec<u8>,
}

/// The HTTP answer to a [`DevCall`], signed by the enclave's attested response-signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevResponse {
    /// HTTP status.
    pub status: u16,
    /// The exact JSON response body.
    pub body: Vec<u8>,
    /// Ed25519 signature over [`dev_response_signed_bytes`].
    pub signature: Bytes<64>,
}

/// Domain-separation label of a `/dev/*` response signature.
pub const DEV_RESPONSE_LABEL: &[u8] = b"sigil/dev-response/v1";

/// What the enclave signs for a `/dev/*` answer: `"sigil/dev-response/v1" || u16_be(len(path))
/// || path || SHA-256(request body) || u16_be(status) || SHA-256(response body)`. A client
/// recomputes it from what it sent and what it received, so a host that alters the request,
/// the response, the route or the status is caught.
#[must_use]
pub fn dev_response_signed_bytes(path: &str, request_body: &[u8], status: u16, response_body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(DEV_RESPONSE_LABEL.len() + 2 + path.len() + 66);
    out.extend_from_slice(DEV_RESPONSE_LABEL);
    out.extend_from_slice(&u16::try_from(path.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(&Sha256::digest(request_body));
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&Sha256::digest(response_body));
    out
}

/// A failure with its stable code. The message is for humans and never contains secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What clients match on.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// The negotiated version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    /// The version both sides will use: the highest they share.
    pub version: u8,
    /// Oldest version the enclave accepts.
    pub min_version: u8,
    /// Newest version the enclave accepts.
    pub max_version: u8,
}

/// What the enclave holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Protocol version of the enclave build.
    pub protocol_version: u8,
    /// The epoch used when a caller does not choose one; `None` when unprovisioned.
    pub current_key_version: Option<u8>,
    /// Every loaded K3 epoch, ascending.
    pub epochs: Vec<Epoch>,
}

/// One loaded K3 generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Epoch {
    /// Its `key_version` byte.
    pub key_version: u8,
    /// Public commitment to this K3 (see the enclave's `k3` module).
    pub k3_fingerprint: Bytes<32>,
}

/// An account's wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressInfo {
    /// Ethereum address: last 20 bytes of `keccak256(X || Y)`.
    pub address: Bytes<20>,
    /// The epoch it was derived under.
    pub key_version: u8,
}

/// An EIP-191 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eip191Signature {
    /// `r || s || v`, low-s, `v ∈ {0, 1}`.
    pub signature: Bytes<65>,
    /// The signer's address.
    pub address: Bytes<20>,
    /// The epoch signed under.
    pub key_version: u8,
}

/// An EIP-712 signature and the hashes it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eip712Signature {
    /// `r || s || v`, low-s, `v ∈ {0, 1}`.
    pub signature: Bytes<65>,
    /// The signer's address.
    pub address: Bytes<20>,
    /// `hashStruct(primaryType, message)`.
    pub primary_type_hash: Bytes<32>,
    /// `hashStruct("EIP712Domain", domain)`.
    pub domain_separator: Bytes<32>,
    /// `keccak256(0x19 0x01 || domain_separator || primary_type_hash)`: what was signed.
    pub digest: Bytes<32>,
    /// The epoch signed under.
    pub key_version: u8,
}

/// A KEK sealed with RFC 9180 HPKE base mode (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
/// AES-256-GCM), `info = "sigil/kek/v1" || key_version`, `aad = DeriveKek::aad()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKek {
    /// The epoch the KEK belongs to.
    pub key_version: u8,
    /// HPKE encapsulated key (the sender's ephemeral X25519 public key).
    pub encapsulated_key: Bytes<32>,
    /// The 32-byte KEK sealed: 48 bytes with the tag.
    pub ciphertext: Vec<u8>,
}
