//! # sigil-protocol
//!
//! The wire format between sigil's untrusted host shim and its enclave: frames, the
//! versioned postcard messages inside them, and the stable error codes both sides (and the
//! HTTP layer) agree on. It has no I/O and no dependencies on the rest of sigil, and builds
//! as `#![no_std]` + `alloc`.
//!
//! ```text
//!   host                                   enclave
//!   Envelope<Request> --postcard--> payload --frame--> bytes ==vsock==> Deframer
//!                                                                        |
//!   Envelope<Response> <--postcard-- payload <--frame-- bytes <== Enclave::handle(frame)
//! ```
//!
//! What it does *not* do: authenticate or encrypt (the attested session does that, inside
//! the payload), or decide what a request means (the enclave does).
//!
//! ```
//! use sigil_protocol::{Envelope, Request, Hello, encode_message, decode_message};
//! let msg = Envelope { request_id: 7, body: Request::Hello(Hello { min_version: 1, max_version: 1 }) };
//! let frame = encode_message(&msg).unwrap();
//! let back: Envelope<Request> = decode_message(&frame).unwrap();
//! assert_eq!(back, msg);
//! ```
//!
//! Features: `std` (default; implies `alloc`), `alloc`. Without `std` the crate is `no_std`.
#![no_std]
#![warn(clippy::indexing_slicing)]
// no_std hygiene (std-only modules opt out explicitly).
#![warn(clippy::std_instead_of_core, clippy::std_instead_of_alloc, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod attest;
mod bytes;
pub mod custody;
mod error;
pub mod frame;
mod message;
pub mod session;

#[doc(hidden)]
pub mod fuzzing;

pub use attest::{AttestRequest, Attestation, Binding, Evidence, Platform};
pub use bytes::Bytes;
pub use custody::{CustodyStatus, EpochState, PeerExport, PeerOffer, ProvisionK3, SealedK3, UnsealK3};
pub use error::{ErrorCode, UnknownCode};
pub use frame::{Deframer, Frame, FrameError, MAX_PAYLOAD, PROTOCOL_VERSION};
pub use message::{
    AddressInfo, BrokerToken, DEV_RESPONSE_LABEL, DeriveAddress, DeriveKek, DevCall, DevResponse, DevRoute,
    Eip191Signature, Eip712Signature, Envelope, Epoch, Hello, HelloAck, KEK_AAD_LABEL, MAX_KEK_CONTEXT, OmniAccount,
    Request, Response, SealedKek, SignEip191, SignEip712, Status, Subject, WireError, dev_response_signed_bytes,
};
pub use session::SealedRecord;

use alloc::vec::Vec;
use core::fmt;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a frame could not be turned into a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame itself is invalid.
    Frame(FrameError),
    /// The payload is not a valid postcard message of the expected type (unknown variant,
    /// truncated field, trailing bytes…).
    Message,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => e.fmt(f),
            Self::Message => f.write_str("malformed message"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<FrameError> for DecodeError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

impl DecodeError {
    /// The wire code a peer should be told.
    #[must_use]
    pub const fn code(self) -> ErrorCode {
        match self {
            Self::Frame(FrameError::UnsupportedVersion(_)) => ErrorCode::UnsupportedVersion,
            Self::Frame(_) => ErrorCode::MalformedFrame,
            Self::Message => ErrorCode::InvalidRequest,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message exceeds [`MAX_PAYLOAD`].
    TooLarge,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message exceeds the frame payload limit")
    }
}

impl core::error::Error for EncodeError {}

/// Encodes `msg` with postcard and wraps it in a frame of the current version.
///
/// # Errors
/// [`EncodeError::TooLarge`] when the message does not fit in one frame.
pub fn encode_message<T: Serialize>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    // The payload may hold a broker token: wipe this intermediate copy when done.
    let payload = zeroize::Zeroizing::new(postcard::to_allocvec(msg).map_err(|_| EncodeError::TooLarge)?);
    let mut out = Vec::new();
    frame::encode(PROTOCOL_VERSION, 0, &payload, &mut out).map_err(|_| EncodeError::TooLarge)?;
    Ok(out)
}

/// Validates one whole frame and decodes its payload as a `T`.
///
/// # Errors
/// A [`DecodeError`]; see [`decode_payload`].
pub fn decode_message<T: Serialize + DeserializeOwned>(frame_bytes: &[u8]) -> Result<T, DecodeError> {
    let f = frame::decode(frame_bytes)?;
    decode_payload(f.payload)
}

/// Decodes a frame payload as a `T`. Only the canonical encoding is accepted: trailing bytes
/// and non-minimal varints (which postcard would otherwise tolerate) are refused, so every
/// message has exactly one byte representation.
///
/// # Errors
/// [`DecodeError::Message`].
pub fn decode_payload<T: Serialize + DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let Ok((v, [])) = postcard::take_from_bytes::<T>(payload) else {
        return Err(DecodeError::Message);
    };
    // The re-encoding may hold a broker token: wipe it before freeing.
    let canonical = zeroize::Zeroizing::new(postcard::to_allocvec(&v).map_err(|_| DecodeError::Message)?);
    if canonical.as_slice() == payload { Ok(v) } else { Err(DecodeError::Message) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_canonical_varints() {
        // request_id 0 written as the two-byte varint 80 00, then Request::Status (tag 1).
        assert_eq!(decode_payload::<Envelope<Request>>(&[0x80, 0x00, 0x01]), Err(DecodeError::Message));
        // The canonical form decodes.
        let ok = decode_payload::<Envelope<Request>>(&[0x00, 0x01]).unwrap();
        assert_eq!(ok, Envelope { request_id: 0, body: Request::Status });
        // An over-long variant tag.
        assert_eq!(decode_payload::<Envelope<Request>>(&[0x01, 0x81, 0x00]), Err(DecodeError::Message));
    }
}
