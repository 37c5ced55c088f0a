//! The AWS Nitro Enclaves root certificate (G1), compiled in and pinned by hash.

use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// SHA-256 of the DER of AWS Nitro Enclaves Root-G1 (`attestation/roots/aws_nitro_root_g1.pem`),
/// as published by AWS.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31, 0x7e, 0xd7, 0xcd,
    0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("../../roots/aws_nitro_root_g1.pem");

/// The DER of AWS Nitro Enclaves Root-G1, the trust anchor to pass to
/// [`verify`](super::verify) in production.
///
/// The embedded PEM is decoded once. If it does not decode to a certificate hashing to
/// [`AWS_NITRO_ROOT_G1_SHA256`] (a tampered file; the unit test below catches that at build time),
/// this returns an empty slice, so every verification against it fails closed with
/// [`NitroError::RootInvalid`](super::NitroError::RootInvalid) instead of trusting another root.
pub fn aws_nitro_root_g1() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| pem_to_pinned_der(AWS_NITRO_ROOT_G1_PEM, &AWS_NITRO_ROOT_G1_SHA256).unwrap_or_default())
}

/// Decodes one PEM `CERTIFICATE` block and returns its DER only if it hashes to `pin`.
fn pem_to_pinned_der(pem: &str, pin: &[u8; 32]) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    if block.label != "CERTIFICATE" || Sha256::digest(&block.contents).as_slice() != pin {
        return None;
    }
    Some(block.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_aws_root_hashes_to_the_pin() {
        let der = aws_nitro_root_g1();
        assert!(!der.is_empty(), "embedded pem did not decode to the pinned certificate");
        assert_eq!(Sha256::digest(der).as_slice(), AWS_NITRO_ROOT_G1_SHA256);
    }

    #[test]
    fn a_pem_that_does_not_hash_to_the_pin_is_refused() {
        let mut wrong_pin = AWS_NITRO_ROOT_G1_SHA256;
        wrong_pin[0] ^= 1;
        assert_eq!(pem_to_pinned_der(AWS_NITRO_ROOT_G1_PEM, &wrong_pin), None);
        assert_eq!(pem_to_pinned_der("not pem", &AWS_NITRO_ROOT_G1_SHA256), None);
    }
}
