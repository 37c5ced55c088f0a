//! Stable error codes: the one place where a failure becomes a wire code and an HTTP status.
//!
//! Codes travel as a `u16` so that a host older than its enclave still decodes a code it does
//! not know (as [`ErrorCode::Other`]) instead of failing to parse the whole response.

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A stable, machine-matchable error code. Clients match on [`ErrorCode::as_str`], never on
/// the human-readable message. Numbers are frozen: new codes are appended, never renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed request: bad JSON, a missing or mistyped field, an undecodable message.
    InvalidRequest,
    /// `omni_account` is not 64 hex characters.
    InvalidOmniAccount,
    /// `message_hex` is not even-length hex.
    InvalidMessageHex,
    /// EIP-712 typed data is malformed or ambiguous.
    InvalidTypedData,
    /// Missing, malformed, expired or otherwise invalid broker JWT.
    Unauthorized,
    /// Authenticated but not allowed.
    Forbidden,
    /// Unknown route.
    NotFound,
    /// Known route, wrong method.
    MethodNotAllowed,
    /// Body larger than the limit.
    PayloadTooLarge,
    /// Wrong content type.
    UnsupportedMediaType,
    /// Per-account rate limit hit.
    RateLimited,
    /// No K3 is provisioned.
    SignerDisabled,
    /// The enclave cannot be reached or is saturated.
    EnclaveUnavailable,
    /// A failure that is nobody's input's fault.
    Internal,
    /// The peer speaks no protocol version we support.
    UnsupportedVersion,
    /// The frame could not be parsed (magic, length, flags or checksum).
    MalformedFrame,
    /// A K3 epoch was requested that this enclave does not hold.
    UnknownKeyVersion,
    /// This enclave has no attester (or the platform refused to attest).
    AttestationUnavailable,
    /// The sealed record names a session the enclave does not have (expired, evicted, or the
    /// enclave restarted): open a new session.
    UnknownSession,
    /// A sealed record was altered, replayed, reordered or dropped; the session is closed.
    SessionIntegrity,
    /// A sealed blob could not be opened (wrong key, another measurement, corrupted,
    /// truncated, or another K3 than expected): provision K3 again. Nothing was loaded.
    ReprovisionRequired,
    /// The epoch is already loaded with a different K3; an epoch's K3 never changes.
    K3Conflict,
    /// A replication peer's evidence was refused (another measurement, debug mode, bad chain,
    /// wrong binding, or no offer of ours).
    PeerRefused,
    /// This enclave cannot seal K3 (no platform sealing key configured).
    SealingUnavailable,
    /// A code this build does not know (sent by a newer peer).
    Other(UnknownCode),
}

/// A wire number no [`ErrorCode`] variant has. Only [`ErrorCode::from_u16`] makes one, so
/// every code has exactly one representation and round-trips unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownCode(u16);

impl UnknownCode {
    /// The wire number.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl ErrorCode {
    /// The wire number of this code.
    #[must_use]
    pub const fn to_u16(self) -> u16 {
        match self {
            Self::InvalidRequest => 1,
            Self::InvalidOmniAccount => 2,
            Self::InvalidMessageHex => 3,
            Self::InvalidTypedData => 4,
            Self::Unauthorized => 5,
            Self::Forbidden => 6,
            Self::NotFound => 7,
            Self::MethodNotAllowed => 8,
            Self::PayloadTooLarge => 9,
            Self::UnsupportedMediaType => 10,
            Self::RateLimited => 11,
            Self::SignerDisabled => 12,
            Self::EnclaveUnavailable => 13,
            Self::Internal => 14,
            Self::UnsupportedVersion => 15,
            Self::MalformedFrame => 16,
            Self::UnknownKeyVersion => 17,
            Self::AttestationUnavailable => 18,
            Self::UnknownSession => 19,
            Self::SessionIntegrity => 20,
            Self::ReprovisionRequired => 21,
            Self::K3Conflict => 22,
            Self::PeerRefused => 23,
            Self::SealingUnavailable => 24,
            Self::Other(n) => n.0,
        }
    }

    /// The code for a wire number; unknown numbers become [`ErrorCode::Other`].
    #[must_use]
    pub const fn from_u16(n: u16) -> Self {
        match n {
            1 => Self::InvalidRequest,
            2 => Self::InvalidOmniAccount,
            3 => Self::InvalidMessageHex,
            4 => Self::InvalidTypedData,
            5 => Self::Unauthorized,
            6 => Self::Forbidden,
            7 => Self::NotFound,
            8 => Self::MethodNotAllowed,
            9 => Self::PayloadTooLarge,
            10 => Self::UnsupportedMediaType,
            11 => Self::RateLimited,
            12 => Self::SignerDisabled,
            13 => Self::EnclaveUnavailable,
            14 => Self::Internal,
            15 => Self::UnsupportedVersion,
            16 => Self::MalformedFrame,
            17 => Self::UnknownKeyVersion,
            18 => Self::AttestationUnavailable,
            19 => Self::UnknownSession,
            20 => Self::SessionIntegrity,
            21 => Self::ReprovisionRequired,
            22 => Self::K3Conflict,
            23 => Self::PeerRefused,
            24 => Self::SealingUnavailable,
            n => Self::Other(UnknownCode(n)),
        }
    }

    /// The code's own stable name (`"invalid_request"`, …, `"unknown_key_version"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidOmniAccount => "invalid_omni_account",
            Self::InvalidMessageHex => "invalid_message_hex",
            Self::InvalidTypedData => "invalid_typed_data",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::SignerDisabled => "signer_disabled",
            Self::EnclaveUnavailable => "enclave_unavailable",
            // A peer's unknown code is not something our client can act on specifically.
            Self::Internal | Self::Other(_) => "internal",
            Self::UnsupportedVersion => "unsupported_version",
            Self::MalformedFrame => "malformed_frame",
            Self::UnknownKeyVersion => "unknown_key_version",
            Self::AttestationUnavailable => "attestation_unavailable",
            Self::UnknownSession => "unknown_session",
            Self::SessionIntegrity => "session_integrity",
            Self::ReprovisionRequired => "reprovision_required",
            Self::K3Conflict => "k3_conflict",
            Self::PeerRefused => "peer_refused",
            Self::SealingUnavailable => "sealing_unavailable",
        }
    }

    /// The SPEC §2 code an HTTP client sees. Protocol-only codes fold into the SPEC set: the
    /// compat routes always ask for a fixed epoch, so a missing epoch means that epoch is not
    /// provisioned; a version or framing failure between host and enclave is never the HTTP
    /// client's fault.
    #[must_use]
    pub const fn http_code(self) -> &'static str {
        match self {
            Self::UnknownKeyVersion => Self::SignerDisabled.as_str(),
            Self::UnsupportedVersion | Self::MalformedFrame => Self::Internal.as_str(),
            other => other.as_str(),
        }
    }

    /// The HTTP status the host answers with for this code.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::InvalidOmniAccount | Self::InvalidMessageHex | Self::InvalidTypedData => 400,
            Self::Unauthorized => 401,
            Self::Forbidden | Self::PeerRefused => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::SignerDisabled
            | Self::EnclaveUnavailable
            | Self::UnknownKeyVersion
            | Self::AttestationUnavailable
            | Self::ReprovisionRequired
            | Self::SealingUnavailable => 503,
            Self::K3Conflict => 409,
            Self::UnknownSession => 410,
            Self::SessionIntegrity => 400,
            Self::Internal | Self::UnsupportedVersion | Self::MalformedFrame | Self::Other(_) => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.to_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(Self::from_u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_is_other() {
        for n in 0..=40u16 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        assert_eq!(ErrorCode::from_u16(999).to_u16(), 999);
        assert!(matches!(ErrorCode::from_u16(999), ErrorCode::Other(c) if c.get() == 999));
        assert_eq!(ErrorCode::from_u16(999).as_str(), "internal");
    }

    #[test]
    fn spec_codes_have_spec_statuses() {
        let table = [
            (ErrorCode::InvalidRequest, "invalid_request", 400),
            (ErrorCode::InvalidOmniAccount, "invalid_omni_account", 400),
            (ErrorCode::InvalidMessageHex, "invalid_message_hex", 400),
            (ErrorCode::InvalidTypedData, "invalid_typed_data", 400),
            (ErrorCode::Unauthorized, "unauthorized", 401),
            (ErrorCode::Forbidden, "forbidden", 403),
            (ErrorCode::NotFound, "not_found", 404),
            (ErrorCode::MethodNotAllowed, "method_not_allowed", 405),
            (ErrorCode::PayloadTooLarge, "payload_too_large", 413),
            (ErrorCode::UnsupportedMediaType, "unsupported_media_type", 415),
            (ErrorCode::RateLimited, "rate_limited", 429),
            (ErrorCode::SignerDisabled, "signer_disabled", 503),
            (ErrorCode::EnclaveUnavailable, "enclave_unavailable", 503),
            (ErrorCode::Internal, "internal", 500),
        ];
        for (i, (code, s, status)) in table.iter().enumerate() {
            assert_eq!(code.as_str(), *s, "row {i}");
            assert_eq!(code.http_code(), *s, "row {i}");
            assert_eq!(code.http_status(), *status, "row {i}");
        }
        assert_eq!(ErrorCode::UnknownKeyVersion.http_code(), "signer_disabled");
        assert_eq!(ErrorCode::MalformedFrame.http_code(), "internal");
    }
}
