//! The COSE_Sign1 envelope (RFC 9052 §4.2): strict decoding, and the ES384 signature check over
//! the Sig_structure.

use ciborium::Value;
use coset::{AsCborValue, CoseSign1, Header, HeaderBuilder, iana};
use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};

use super::{NitroError, cbor};

/// ES384 signatures in COSE are the fixed-width `r || s`, 48 bytes each (RFC 9053 §2.1).
const SIGNATURE_LEN: usize = 96;
/// CBOR tag for COSE_Sign1 (RFC 9052 §2).
const COSE_SIGN1_TAG: u64 = 18;
/// Sig_structure context string for COSE_Sign1.
const SIGNATURE1_CONTEXT: &[u8] = b"Signature1";

/// The parts of a COSE_Sign1 that the signature covers, exactly as they were received.
#[derive(Debug)]
pub(super) struct Envelope {
    /// The protected header's serialized bytes (signed as-is, never re-encoded).
    protected: Vec<u8>,
    /// The attestation document payload (a CBOR map, decoded by `payload`).
    pub(super) payload: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
}

/// Decodes one COSE_Sign1 (tagged 18 or untagged) that fills `document` exactly, with a
/// protected header of exactly `{alg: ES384}`, an attached payload and a 96-byte signature.
pub(super) fn decode(document: &[u8]) -> Result<Envelope, NitroError> {
    let (value, trailing) = cbor::decode_prefix(document).ok_or(NitroError::CoseMalformed)?;
    if trailing != 0 {
        return Err(NitroError::TrailingBytes { count: trailing });
    }
    let value = match value {
        Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
        // Any other tag (COSE_Sign, COSE_Mac0, a nested tag 18...) is not a Nitro document.
        Value::Tag(..) => return Err(NitroError::CoseMalformed),
        untagged => untagged,
    };
    // coset decodes the protected header's bytes with ciborium's default depth limit of 256;
    // make sure they are shallow before handing them over.
    if let Value::Array(items) = &value
        && let Some(Value::Bytes(protected)) = items.first()
        && !protected.is_empty()
        && cbor::decode_exact(protected).is_none()
    {
        return Err(NitroError::CoseMalformed);
    }
    let sign1 = CoseSign1::from_cbor_value(value).map_err(|_| NitroError::CoseMalformed)?;

    check_protected(&sign1.protected.header)?;
    check_unprotected(&sign1.unprotected)?;
    // coset always keeps the received protected bytes when parsing; their absence would mean we
    // are about to verify over a re-encoding, so treat it as malformed rather than guess.
    let protected = sign1.protected.original_data.ok_or(NitroError::CoseMalformed)?;
    let payload = sign1.payload.ok_or(NitroError::PayloadDetached)?;
    let signature = <[u8; SIGNATURE_LEN]>::try_from(sign1.signature.as_slice())
        .map_err(|_| NitroError::SignatureLength { len: sign1.signature.len() })?;
    Ok(Envelope { protected, payload, signature })
}

/// The protected header must say ES384 and nothing else: any other parameter (crit, a counter
/// signature, an unknown label) could change how a verifier reads the signature, and the NSM
/// never sends one.
fn check_protected(header: &Header) -> Result<(), NitroError> {
    if header.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::ES384)) {
        return Err(NitroError::UnsupportedAlgorithm);
    }
    if *header != HeaderBuilder::new().algorithm(iana::Algorithm::ES384).build() {
        return Err(NitroError::ProtectedHeaderInvalid);
    }
    Ok(())
}

/// The unprotected header is not signed, so it may carry nothing that bears on verification.
/// Other parameters (e.g. a key id) are informational and ignored.
fn check_unprotected(header: &Header) -> Result<(), NitroError> {
    if header.alg.is_some() || !header.crit.is_empty() || !header.counter_signatures.is_empty() {
        return Err(NitroError::UnprotectedHeaderInvalid);
    }
    Ok(())
}

/// Verifies the ES384 signature (SHA-384, fixed-width `r || s`) over
/// `Sig_structure = ["Signature1", protected, external_aad = h'', payload]` with `key`.
pub(super) fn verify_signature(envelope: &Envelope, key: &VerifyingKey) -> Result<(), NitroError> {
    // A scalar out of range (zero, or not below the group order) cannot be a valid signature:
    // same outcome as a signature that does not verify.
    let signature = Signature::from_slice(&envelope.signature).map_err(|_| NitroError::SignatureInvalid)?;
    let tbs = sig_structure(&envelope.protected, &envelope.payload);
    key.verify(&tbs, &signature).map_err(|_| NitroError::SignatureInvalid)
}

/// Encodes the Sig_structure by hand (deterministic CBOR, RFC 9052 §4.4): it is four fixed
/// items, and writing them directly avoids copying the payload into a `Value` first.
fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE1_CONTEXT.len() + protected.len() + payload.len() + 32);
    out.push(0x84); // array(4)
    push_head(&mut out, 3, SIGNATURE1_CONTEXT.len()); // text string
    out.extend_from_slice(SIGNATURE1_CONTEXT);
    push_head(&mut out, 2, protected.len()); // byte string
    out.extend_from_slice(protected);
    push_head(&mut out, 2, 0); // external_aad: empty byte string
    push_head(&mut out, 2, payload.len());
    out.extend_from_slice(payload);
    out
}

/// Writes a CBOR item head (major type + length) in its shortest form.
fn push_head(out: &mut Vec<u8>, major: u8, len: usize) {
    let major = major << 5;
    let len = len as u64;
    // Each arm's range guarantees the value fits the width it is written in.
    if let Ok(small) = u8::try_from(len) {
        if small < 24 {
            out.push(major | small);
        } else {
            out.extend_from_slice(&[major | 24, small]);
        }
    } else if let Ok(short) = u16::try_from(len) {
        out.push(major | 25);
        out.extend_from_slice(&short.to_be_bytes());
    } else if let Ok(word) = u32::try_from(len) {
        out.push(major | 26);
        out.extend_from_slice(&word.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_structure_matches_ciborium_encoding() {
        for len in [0usize, 1, 23, 24, 255, 256, 65_535, 65_536] {
            let payload = vec![0xa5; len];
            let expected = Value::Array(vec![
                Value::Text("Signature1".into()),
                Value::Bytes(vec![0xa1, 0x01, 0x38, 0x22]),
                Value::Bytes(Vec::new()),
                Value::Bytes(payload.clone()),
            ]);
            let mut encoded = Vec::new();
            ciborium::into_writer(&expected, &mut encoded).unwrap();
            assert_eq!(sig_structure(&[0xa1, 0x01, 0x38, 0x22], &payload), encoded, "payload length {len}");
        }
    }
}
