//! AWS Nitro Enclaves attestation documents (SPEC §5).
//!
//! A document is a COSE_Sign1 (ES384) whose payload is a CBOR map from the Nitro Security Module:
//! module id, timestamp, PCRs, the signing certificate and the CA bundle up to the AWS root, and
//! the enclave's optional `public_key`, `user_data` and `nonce`. [`verify`] accepts it only if
//!
//! 1. the envelope and payload are strictly well formed ([`parse`] does just this step);
//! 2. the chain leaf → `cabundle` → **the caller's pinned root** verifies hop by hop, every
//!    certificate is valid at `now`, and every issuer is a CA (`cabundle[0]` is never trusted on
//!    its own: it must equal the pinned root);
//! 3. the COSE signature verifies with the leaf key;
//! 4. the [`NitroPolicy`] holds: no debug mode, pinned PCRs equal, timestamp fresh.
//!
//! The chain comes before the COSE signature on purpose: a tampered `cabundle` also breaks the
//! signature, and reporting the chain defect is the more useful diagnosis.
//!
//! Everything is a pure function of its inputs: no clock, no I/O, no global trust store.

mod cbor;
mod chain;
mod cose;
mod error;
mod payload;
mod policy;
mod root;

use std::collections::BTreeMap;

pub use error::NitroError;
pub use root::{AWS_NITRO_ROOT_G1_SHA256, aws_nitro_root_g1};

/// Documents larger than this are refused before any parsing. Real ones are about 4.5 KiB; the
/// bound keeps hostile input from costing more than a small, fixed amount of work.
pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;

/// How far in the future (seconds) a document's timestamp may be, to absorb clock differences
/// between the enclave host and the verifier.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// What the caller pins. Empty `pcrs` = nothing pinned (used by `sigil policy --from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NitroPolicy {
    /// PCR index → expected 48-byte value (0, 1, 2 and optionally 3, 4, 8, ...). Each must be
    /// present in the document and equal.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// Maximum age of the document's `timestamp` at `now`, in seconds; `None` = age not checked.
    /// A timestamp more than [`MAX_CLOCK_SKEW_SECS`] in the future is rejected either way.
    pub max_age_secs: Option<u64>,
    /// `false` = reject debug mode (PCR0 all zero).
    pub allow_debug: bool,
}

/// The decoded fields of an attestation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroDocument {
    /// The enclave's id, e.g. `i-020b6af9246d90e92-enc0183d09086c24190`.
    pub module_id: String,
    /// PCR digest algorithm; always `"SHA384"` (anything else is rejected).
    pub digest: String,
    /// When the NSM produced the document, in milliseconds since the Unix epoch (never 0).
    pub timestamp_ms: u64,
    /// PCR index (0..=31) → 48-byte value; always holds PCR0.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// DER of the leaf certificate, whose key signs the document.
    pub certificate: Vec<u8>,
    /// DER certificates, root first: `cabundle[0]` is the root, the last one issued the leaf.
    pub cabundle: Vec<Vec<u8>>,
    /// The enclave-supplied public key (at most 1024 bytes), if any.
    pub public_key: Option<Vec<u8>>,
    /// The enclave-supplied user data (at most 512 bytes), if any.
    pub user_data: Option<Vec<u8>>,
    /// The enclave-supplied nonce (at most 512 bytes), if any.
    pub nonce: Option<Vec<u8>>,
    /// Debug mode: PCR0 is all zero (the NSM zeroes PCRs 0-2 for debug enclaves, whose memory
    /// the host can read).
    pub debug: bool,
}

/// Parses the COSE_Sign1 + payload strictly, checks nothing cryptographic.
///
/// Use it to inspect a document (e.g. to derive a policy from it); never trust its fields
/// without [`verify`].
pub fn parse(document: &[u8]) -> Result<NitroDocument, NitroError> {
    let envelope = decode_envelope(document)?;
    payload::decode(&envelope.payload)
}

/// Full verification. `root_der` is the trusted root (pass [`aws_nitro_root_g1()`] in
/// production, a sim CA root in simulation). `now_unix` in seconds.
///
/// Checks, in order: structure → chain and validity at `now_unix` → COSE signature → debug mode
/// → pinned PCRs → timestamp. The first failure is returned.
pub fn verify(
    document: &[u8],
    root_der: &[u8],
    now_unix: u64,
    policy: &NitroPolicy,
) -> Result<NitroDocument, NitroError> {
    let envelope = decode_envelope(document)?;
    let decoded = payload::decode(&envelope.payload)?;
    let leaf_key = chain::verify(&decoded.certificate, &decoded.cabundle, root_der, now_unix)?;
    cose::verify_signature(&envelope, &leaf_key)?;
    policy::check(&decoded, policy, now_unix)?;
    Ok(decoded)
}

/// The size gate, then the envelope.
fn decode_envelope(document: &[u8]) -> Result<cose::Envelope, NitroError> {
    if document.len() > MAX_DOCUMENT_LEN {
        return Err(NitroError::TooLarge { len: document.len(), max: MAX_DOCUMENT_LEN });
    }
    cose::decode(document)
}

/// A time inside the validity window of every certificate of `evervault_2022-10-13.cose` (the
/// real document the fuzz corpus is seeded with), so mutations of it reach every check.
const FUZZ_NOW: u64 = 1_665_651_500;

/// Fuzz entry point: [`parse`] and [`verify`] `data` at a fixed time inside the seed document's
/// window, against the AWS root, then apply a policy that pins PCR0 and the age. Must never panic.
#[doc(hidden)]
pub fn fuzz_document(data: &[u8]) {
    let parsed = parse(data);
    if let Ok(document) = verify(data, aws_nitro_root_g1(), FUZZ_NOW, &NitroPolicy::default()) {
        // Whatever verifies must parse to the same fields.
        debug_assert_eq!(parsed.as_ref().ok(), Some(&document));
        let strict =
            NitroPolicy { pcrs: BTreeMap::from([(0, vec![0; 48])]), max_age_secs: Some(300), allow_debug: false };
        let _ = policy::check(&document, &strict, FUZZ_NOW);
    }
}
