//! Where evidence comes from: one [`Attester`] per TEE platform, injected into the sans-IO
//! core like time and entropy are.
//!
//! The core decides *what* is attested (the binding hash of SPEC §5, the response-signing
//! key, the nonce); an attester only asks its platform to sign that. Implementations:
//! Nitro (`/dev/nsm`, feature `nitro`), SEV-SNP (`/dev/sev-guest`, feature `snp`) and the
//! simulated attester (feature `sim` only: a build without it can neither produce nor accept
//! simulated evidence).

use alloc::boxed::Box;
use core::fmt;
use sigil_protocol::{Evidence, Platform};

#[cfg(feature = "nitro")]
pub mod nitro;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "snp")]
pub mod snp;

/// What the enclave asks its platform to attest to.
#[derive(Debug, Clone, Copy)]
pub struct AttestationInput<'a> {
    /// 64 bytes of user data: the binding hash (Nitro `user_data`, SNP `report_data`).
    pub user_data: &'a [u8; 64],
    /// The client's nonce (Nitro `nonce`; SNP has no such field, the binding covers it).
    pub nonce: &'a [u8],
    /// The enclave's response-signing public key (Nitro `public_key`).
    pub public_key: &'a [u8],
    /// Seconds since the Unix epoch (the simulated attester stamps documents with it).
    pub unix_time: u64,
}

/// The platform could not produce evidence. The message names the failure, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attestation unavailable: {0}")]
pub struct AttestError(pub alloc::string::String);

/// A source of TEE evidence.
pub trait Attester: Send {
    /// The platform whose evidence this produces (hashed into the binding).
    fn platform(&self) -> Platform;

    /// Produces evidence over `input`.
    fn attest(&mut self, input: &AttestationInput<'_>) -> Result<Evidence, AttestError>;
}

impl fmt::Debug for dyn Attester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attester").field("platform", &self.platform()).finish_non_exhaustive()
    }
}

impl<A: Attester + ?Sized> Attester for Box<A> {
    fn platform(&self) -> Platform {
        (**self).platform()
    }

    fn attest(&mut self, input: &AttestationInput<'_>) -> Result<Evidence, AttestError> {
        (**self).attest(input)
    }
}
