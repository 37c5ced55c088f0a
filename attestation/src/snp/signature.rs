//! The report's own signature: ECDSA P-384/SHA-384 by the VCEK/VLEK over bytes `0x000..0x2A0`,
//! with R and S stored as 72-byte little-endian integers.

use p384::ecdsa::signature::Verifier as _;
use p384::ecdsa::{Signature, VerifyingKey};

use super::error::SnpError;
use super::report::{REPORT_LEN, SIG_COMPONENT_LEN, SIG_R, SIG_S, SIGNED_LEN};

/// Bytes of a P-384 scalar.
const SCALAR_LEN: usize = 48;

/// Verifies the report signature with the leaf key.
pub(crate) fn verify(report: &[u8; REPORT_LEN], key: &VerifyingKey) -> Result<(), SnpError> {
    let r = scalar(&report[SIG_R..SIG_R + SIG_COMPONENT_LEN])?;
    let s = scalar(&report[SIG_S..SIG_S + SIG_COMPONENT_LEN])?;
    // Zero or out-of-range scalars cannot be a valid signature; same error as a wrong one.
    let sig = Signature::from_scalars(r, s).map_err(|_| SnpError::ReportSignatureInvalid)?;
    key.verify(&report[..SIGNED_LEN], &sig).map_err(|_| SnpError::ReportSignatureInvalid)
}

/// Converts one 72-byte little-endian component to a 48-byte big-endian scalar, refusing
/// nonzero padding (it would make the signature malleable without changing its value).
fn scalar(le: &[u8]) -> Result<[u8; SCALAR_LEN], SnpError> {
    let (low, high) = le.split_at(SCALAR_LEN.min(le.len()));
    if low.len() != SCALAR_LEN || high.iter().any(|&b| b != 0) {
        return Err(SnpError::ReportSignatureEncoding);
    }
    let mut be = [0u8; SCALAR_LEN];
    for (dst, src) in be.iter_mut().zip(low.iter().rev()) {
        *dst = *src;
    }
    Ok(be)
}
