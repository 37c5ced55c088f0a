//! # sigil-attestation
//!
//! Verification of TEE evidence — AWS Nitro attestation documents, AMD SEV-SNP reports and
//! sigil's simulated evidence — against pinned roots and a [`Policy`], as pure functions
//! taking an explicit `now`. Clients (`sigil::Client`, `sigil verify`, `sigil attest`) and
//! peer enclaves use it before trusting an enclave with anything.
//!
//! ```text
//!  Attestation (from the enclave) ──▶ verify_attestation(att, request, now, policy)
//!    evidence ─▶ nitro::verify / snp::verify   chain to a pinned root, signature, validity at `now`
//!             ─▶ policy                         platform, debug, PCRs / measurement, TCB, age
//!             ─▶ binding                        user data == SHA-512(handshake), K3 fingerprint
//!                                               ──▶ Verified { platform, measurement, … }
//! ```
//!
//! What it does *not* do: I/O, clocks, or trusting anything the evidence says about its own
//! roots (`cabundle[0]`, a host-supplied ARK): roots are compiled in and pinned by hash.
//!
//! Features: `sim` accepts simulated evidence, and only under a policy that lists `sim` and
//! pins the simulated root. Without it, simulated evidence is refused whatever the policy says.
#![forbid(unsafe_code)]

pub mod nitro;
pub mod policy;
pub mod snp;

#[doc(hidden)]
pub mod fuzzing;

use std::collections::BTreeMap;

use sigil_protocol::{AttestRequest, Attestation, Evidence, Platform};

pub use policy::{Policy, PolicyError};

/// Why evidence was refused. One variant per failure; the platform-specific ones carry the
/// platform verifier's own typed error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy does not allow evidence from this platform.
    #[error("policy does not allow {} evidence", .0.label())]
    PlatformNotAllowed(Platform),
    /// Simulated evidence reached a build without the `sim` feature.
    #[error("simulated evidence is never accepted by this build")]
    SimulationNotSupported,
    /// The Nitro (or sim) document failed verification.
    #[error("nitro: {0}")]
    Nitro(#[from] nitro::NitroError),
    /// The SEV-SNP report failed verification.
    #[error("sev-snp: {0}")]
    Snp(#[from] snp::SnpError),
    /// Nitro evidence carried certificates outside the document (it never does).
    #[error("unexpected certificates next to a nitro document")]
    UnexpectedCertificates,
    /// The evidence's user data is not the binding of this handshake: it was made for
    /// another nonce, key or enclave (a replay or a relay's substitution).
    #[error("evidence is not bound to this handshake")]
    BindingMismatch,
    /// The Nitro `nonce` field is not the client's nonce.
    #[error("evidence nonce is not the client's nonce")]
    NonceMismatch,
    /// The Nitro `public_key` field is not the attested response-signing key.
    #[error("evidence public key is not the enclave's signing key")]
    SigningKeyMismatch,
    /// The enclave holds another K3 than the policy pins (or none).
    #[error("enclave k3 fingerprint does not match the policy")]
    K3FingerprintMismatch,
    /// A session was requested but the enclave sent no ephemeral key (or the reverse).
    #[error("enclave session key missing or unexpected")]
    SessionKeyMismatch,
    /// The enclave speaks a protocol version this client does not.
    #[error("unsupported protocol version {0}")]
    UnsupportedProtocolVersion(u8),
}

/// What the evidence measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measurement {
    /// Nitro / sim: PCR index → value.
    Pcrs(BTreeMap<u8, Vec<u8>>),
    /// SEV-SNP: the launch measurement.
    Snp([u8; 48]),
}

/// Evidence that passed verification, reduced to what a caller decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Which TEE.
    pub platform: Platform,
    /// What code it runs.
    pub measurement: Measurement,
    /// The 64 bytes of user data (the binding hash, for sigil's enclaves).
    pub user_data: [u8; 64],
    /// Nitro/sim: the document's timestamp (ms since the epoch).
    pub timestamp_ms: Option<u64>,
    /// SHA-256 of the root the chain ended at (AWS Nitro G1, an AMD ARK, or the sim root).
    pub root_sha256: [u8; 32],
    /// Debug mode (only possible under a policy that allows it).
    pub debug: bool,
    /// The K3 fingerprint (filled by [`verify_attestation`]).
    pub k3_fingerprint: Option<[u8; 32]>,
    /// Nitro/sim: the whole document.
    pub nitro: Option<nitro::NitroDocument>,
    /// SEV-SNP: the whole report.
    pub snp: Option<snp::SnpReport>,
}

/// Verifies evidence's chain, signature and policy (not its binding) at `now_unix`.
pub fn verify_evidence(evidence: &Evidence, now_unix: u64, policy: &Policy) -> Result<Verified, Error> {
    if !policy.allows(evidence.platform) {
        return Err(Error::PlatformNotAllowed(evidence.platform));
    }
    match evidence.platform {
        Platform::Nitro => {
            let pins = policy.nitro.as_ref().ok_or(Error::PlatformNotAllowed(Platform::Nitro))?;
            if !evidence.certificates.is_empty() {
                return Err(Error::UnexpectedCertificates);
            }
            let root = nitro::aws_nitro_root_g1();
            let doc = nitro::verify(&evidence.document, root, now_unix, pins)?;
            Ok(from_nitro(Platform::Nitro, doc, policy::der_sha256(root)))
        }
        Platform::Snp => {
            let pins = policy.snp.as_ref().ok_or(Error::PlatformNotAllowed(Platform::Snp))?;
            let report = snp::verify(&evidence.document, &evidence.certificates, now_unix, pins)?;
            let root_sha256 = report.product.map_or([0; 32], |p| p.ark_sha256());
            Ok(Verified {
                platform: Platform::Snp,
                measurement: Measurement::Snp(report.measurement),
                user_data: report.report_data,
                timestamp_ms: None,
                root_sha256,
                debug: report.debug,
                k3_fingerprint: None,
                nitro: None,
                snp: Some(report),
            })
        }
        Platform::Sim => verify_sim(evidence, now_unix, policy),
        _ => Err(Error::PlatformNotAllowed(evidence.platform)),
    }
}

#[cfg(feature = "sim")]
fn verify_sim(evidence: &Evidence, now_unix: u64, policy: &Policy) -> Result<Verified, Error> {
    let pins = policy.sim.as_ref().ok_or(Error::PlatformNotAllowed(Platform::Sim))?;
    if !evidence.certificates.is_empty() {
        return Err(Error::UnexpectedCertificates);
    }
    let doc = nitro::verify(&evidence.document, &pins.root_der, now_unix, &pins.nitro)?;
    Ok(from_nitro(Platform::Sim, doc, policy::der_sha256(&pins.root_der)))
}

#[cfg(not(feature = "sim"))]
fn verify_sim(_: &Evidence, _: u64, _: &Policy) -> Result<Verified, Error> {
    Err(Error::SimulationNotSupported)
}

fn from_nitro(platform: Platform, doc: nitro::NitroDocument, root_sha256: [u8; 32]) -> Verified {
    let mut user_data = [0u8; 64];
    // A document without 64 bytes of user data keeps all-zero here and can never match a
    // binding (SHA-512 outputs are not all zero).
    if let Some(u) = doc.user_data.as_deref().filter(|u| u.len() == 64) {
        user_data.copy_from_slice(u);
    }
    Verified {
        platform,
        measurement: Measurement::Pcrs(doc.pcrs.clone()),
        user_data,
        timestamp_ms: Some(doc.timestamp_ms),
        root_sha256,
        debug: doc.debug,
        k3_fingerprint: None,
        nitro: Some(doc),
        snp: None,
    }
}

/// Verifies an enclave's answer to `request`: the evidence (as [`verify_evidence`]), then
/// that its user data is the binding of exactly this handshake, that Nitro's `nonce` and
/// `public_key` fields agree, and that the K3 fingerprint is the pinned one.
pub fn verify_attestation(
    attestation: &Attestation,
    request: &AttestRequest,
    now_unix: u64,
    policy: &Policy,
) -> Result<Verified, Error> {
    if attestation.protocol_version != sigil_protocol::PROTOCOL_VERSION {
        return Err(Error::UnsupportedProtocolVersion(attestation.protocol_version));
    }
    if request.client_pub.is_some() != attestation.enclave_pub.is_some() {
        return Err(Error::SessionKeyMismatch);
    }
    let mut verified = verify_evidence(&attestation.evidence, now_unix, policy)?;
    let binding = attestation.binding(request).hash();
    // Public values: a plain comparison is fine.
    if verified.user_data != binding {
        return Err(Error::BindingMismatch);
    }
    if let Some(doc) = &verified.nitro {
        if doc.nonce.as_deref() != Some(&request.client_nonce.0[..]) {
            return Err(Error::NonceMismatch);
        }
        if doc.public_key.as_deref() != Some(&attestation.signing_pub.0[..]) {
            return Err(Error::SigningKeyMismatch);
        }
    }
    if policy.k3_fingerprint.is_some_and(|expected| expected != attestation.k3_fingerprint.0) {
        return Err(Error::K3FingerprintMismatch);
    }
    verified.k3_fingerprint = Some(attestation.k3_fingerprint.0);
    Ok(verified)
}
