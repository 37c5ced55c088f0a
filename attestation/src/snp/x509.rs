//! The few X.509 operations the AMD chain needs, done directly on parsed certificates.
//!
//! AMD's VCEKs have serial 0, no AKI/SKI and an explicit PSS trailerField, which strict TLS path
//! builders reject; so each hop is checked by hand: exact RSASSA-PSS parameters, then the
//! issuer's RSA key over the raw `tbsCertificate` bytes.

use p384::ecdsa::VerifyingKey as P384Key;
use rsa::signature::Verifier as _;
use rsa::{BigUint, RsaPublicKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::SignatureAlgorithm;

use super::error::{CertRole, SnpError};

const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_SECP384R1: &str = "1.3.132.0.34";
/// AMD signs with a salt as long as the SHA-384 digest.
const PSS_SALT_LEN: usize = 48;

/// Parses exactly one DER certificate (trailing bytes are refused: they would be unsigned).
pub(crate) fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

/// True when the certificate is signed with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48,
/// trailer 1, and its inner `signature` field says the same as the outer one.
pub(crate) fn is_amd_pss(cert: &X509Certificate<'_>) -> bool {
    let outer = &cert.signature_algorithm;
    // The two copies must agree (RFC 5280 4.1.1.2), or the signed one could say something else.
    if *outer != cert.tbs_certificate.signature || outer.algorithm.to_id_string() != OID_RSASSA_PSS {
        return false;
    }
    // Only reached for the PSS OID, so x509-parser never logs about unknown algorithms.
    let Ok(SignatureAlgorithm::RSASSA_PSS(params)) = SignatureAlgorithm::try_from(outer) else {
        return false;
    };
    let mgf_ok = params
        .mask_gen_algorithm()
        .is_ok_and(|mgf| mgf.mgf.to_id_string() == OID_MGF1 && mgf.hash.to_id_string() == OID_SHA384);
    params.hash_algorithm_oid().to_id_string() == OID_SHA384
        && mgf_ok
        && usize::try_from(params.salt_length()).is_ok_and(|s| s == PSS_SALT_LEN)
        && params.trailer_field() == 1
}

/// The certificate's RSA public key (AMD's ARK, ASK and ASVK are RSA-4096).
pub(crate) fn rsa_key(cert: &X509Certificate<'_>) -> Option<RsaPublicKey> {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(key)) => {
            RsaPublicKey::new(BigUint::from_bytes_be(key.modulus), BigUint::from_bytes_be(key.exponent)).ok()
        }
        _ => None,
    }
}

/// The certificate's P-384 public key (VCEKs and VLEKs are P-384 ECDSA keys).
pub(crate) fn p384_key(cert: &X509Certificate<'_>) -> Option<P384Key> {
    let spki = cert.public_key();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    if spki.algorithm.algorithm.to_id_string() != OID_EC_PUBLIC_KEY
        || curve.is_none_or(|c| c.to_id_string() != OID_SECP384R1)
    {
        return None;
    }
    P384Key::from_sec1_bytes(&spki.subject_public_key.data).ok()
}

/// True when `issuer` produced `cert`'s signature (RSASSA-PSS/SHA-384, salt 48) over its raw
/// `tbsCertificate`. Callers check [`is_amd_pss`] first.
pub(crate) fn signed_by(cert: &X509Certificate<'_>, issuer: &RsaPublicKey) -> bool {
    let sig = &cert.signature_value;
    if sig.unused_bits != 0 {
        return false;
    }
    let Ok(sig) = rsa::pss::Signature::try_from(sig.data.as_ref()) else {
        return false;
    };
    let key = rsa::pss::VerifyingKey::<sha2_010::Sha384>::new_with_salt_len(issuer.clone(), PSS_SALT_LEN);
    key.verify(cert.tbs_certificate.as_ref(), &sig).is_ok()
}

/// A certificate's validity period, unix seconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    not_before: i64,
    not_after: i64,
}

impl Window {
    /// The validity of `cert`.
    pub(crate) fn of(cert: &X509Certificate<'_>) -> Self {
        let validity = cert.validity();
        Window { not_before: validity.not_before.timestamp(), not_after: validity.not_after.timestamp() }
    }

    /// Checks `not_before <= now <= not_after`, naming `role` on failure.
    pub(crate) fn check(&self, now_unix: u64, role: CertRole) -> Result<(), SnpError> {
        // i128 holds every u64 and i64, so no clock value wraps into the window.
        let now = i128::from(now_unix);
        if now < i128::from(self.not_before) {
            return Err(SnpError::NotYetValid { cert: role, not_before: self.not_before });
        }
        if now > i128::from(self.not_after) {
            return Err(SnpError::Expired { cert: role, not_after: self.not_after });
        }
        Ok(())
    }
}

/// The issuer common name, e.g. "SEV-Milan" or "SEV-VLEK-Genoa".
pub(crate) fn issuer_cn<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a str> {
    cert.issuer().iter_common_name().next().and_then(|cn| cn.as_str().ok())
}
