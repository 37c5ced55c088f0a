//! The enclave's errors: one variant per failure a caller can act on, and the single mapping
//! to the wire's stable [`ErrorCode`]s. Messages never contain secrets.

use sigil_protocol::{DecodeError, ErrorCode};

use sigil_protocol::session::SessionError;

use crate::attester::AttestError;
use crate::eip712::Eip712Error;
use crate::env::EntropyUnavailable;
use crate::jwt::JwtError;
use crate::peer::PeerError;
use crate::sealer::{SealError, UnsealError};

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid frame or message.
    #[error("{0}")]
    Decode(DecodeError),
    /// The broker JWT does not authorise this request.
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] JwtError),
    /// No K3 is loaded at all.
    #[error("signer not provisioned: no K3 loaded")]
    NotProvisioned,
    /// K3 is loaded, but not for this epoch.
    #[error("no K3 loaded for key version {0}")]
    UnknownKeyVersion(u8),
    /// EIP-712 input rejected.
    #[error("invalid typed data: {0}")]
    TypedData(#[from] Eip712Error),
    /// A field is well-formed on the wire but unacceptable.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The platform could not attest (or no attester is configured).
    #[error("{0}")]
    AttestationUnavailable(AttestError),
    /// A sealed record names a session this enclave does not hold (expired, evicted, or
    /// the enclave restarted).
    #[error("unknown or expired session")]
    UnknownSession,
    /// A sealed record failed its integrity checks; the session is closed.
    #[error("session closed: {0}")]
    Session(SessionError),
    /// A sealed blob did not open; nothing was loaded. Provision K3 again (or replicate it
    /// from a healthy peer).
    #[error("reprovision required: {0}")]
    Unseal(#[from] UnsealError),
    /// The platform's sealing key is unavailable, or this enclave has none.
    #[error("{0}")]
    Sealing(SealError),
    /// The epoch is loaded with another K3, or the enclave is configured to expect another.
    #[error("k3 conflict for epoch {key_version}: {reason}")]
    K3Conflict {
        /// The epoch.
        key_version: u8,
        /// Which rule refused it.
        reason: &'static str,
    },
    /// A replication peer was refused.
    #[error("{0}")]
    PeerRefused(#[from] PeerError),
    /// Nobody's input is at fault.
    #[error("internal error: {0}")]
    Internal(#[from] InternalError),
}

/// Failures inside the enclave that no caller input explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InternalError {
    /// The platform's entropy source failed.
    #[error("entropy source unavailable")]
    Entropy,
    /// 16 HKDF outputs in a row were not valid secp256k1 scalars (probability ~2^-512).
    #[error("wallet key derivation exhausted its retries")]
    DerivationExhausted,
    /// A signature had recovery id 2 or 3 (r overflowed n; probability ~2^-127), which the
    /// `v ∈ {0,1}` wire format cannot express.
    #[error("signature recovery id out of range")]
    RecoveryIdOutOfRange,
    /// A signature did not verify right after signing (debug builds check every one).
    #[error("signature self-check failed")]
    SelfCheck,
    /// A response could not be encoded.
    #[error("response encoding failed")]
    Encode,
}

impl From<EntropyUnavailable> for Error {
    fn from(_: EntropyUnavailable) -> Self {
        Self::Internal(InternalError::Entropy)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl Error {
    /// The stable wire code for this error.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Decode(e) => e.code(),
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::NotProvisioned => ErrorCode::SignerDisabled,
            Self::UnknownKeyVersion(_) => ErrorCode::UnknownKeyVersion,
            Self::TypedData(_) => ErrorCode::InvalidTypedData,
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::AttestationUnavailable(_) => ErrorCode::AttestationUnavailable,
            Self::UnknownSession => ErrorCode::UnknownSession,
            Self::Session(_) => ErrorCode::SessionIntegrity,
            Self::Unseal(_) => ErrorCode::ReprovisionRequired,
            Self::Sealing(_) => ErrorCode::SealingUnavailable,
            Self::K3Conflict { .. } => ErrorCode::K3Conflict,
            Self::PeerRefused(_) => ErrorCode::PeerRefused,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}
