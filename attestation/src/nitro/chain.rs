//! The certificate chain: leaf `certificate` ← `cabundle[n-1]` ← … ← `cabundle[1]` ← pinned root.
//!
//! Every hop is ECDSA P-384 / SHA-384 (the whole AWS chain is), checked directly with `p384`
//! rather than through a general path builder: the path is fixed by the document, so the only
//! questions are whether each signature verifies, each issuer may issue, and each certificate is
//! valid at `now`. `cabundle[0]` is never used as a key: it must be byte-equal to the caller's
//! root, and the caller's root is what verifies `cabundle[1]`.

use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{DerSignature, VerifyingKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ECDSA_WITH_SHA384};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

use super::NitroError;

/// Verifies the chain from `leaf_der` through `cabundle` (root first) to `root_der` at
/// `now_unix`, and returns the leaf's public key. See [`NitroError`] for how `index` counts.
pub(super) fn verify(
    leaf_der: &[u8],
    cabundle: &[Vec<u8>],
    root_der: &[u8],
    now_unix: u64,
) -> Result<VerifyingKey, NitroError> {
    let root_depth = cabundle.len();
    // The root is the caller's configuration, not document data: any defect in it is RootInvalid.
    let root = parse(root_der, root_depth).map_err(|_| NitroError::RootInvalid)?;
    let root_key = p384_key(&root, root_depth).map_err(|_| NitroError::RootInvalid)?;
    if !root.is_ca() {
        return Err(NitroError::RootInvalid);
    }
    if cabundle.first().map(Vec::as_slice) != Some(root_der) {
        return Err(NitroError::UntrustedRoot);
    }
    check_validity(&root, root_depth, now_unix)?;

    // Walk down from the root: each certificate is checked against the one above it, whose key
    // was itself already verified (or is the pinned root's).
    let mut issuer = Issuer { depth: root_depth, key: root_key, cert: root };
    let below_root = cabundle.iter().skip(1).map(Vec::as_slice).chain(core::iter::once(leaf_der));
    for (der, depth) in below_root.zip((0..root_depth).rev()) {
        let cert = parse(der, depth)?;
        issuer.check_issued(&cert, depth)?;
        check_validity(&cert, depth, now_unix)?;
        let key = p384_key(&cert, depth)?;
        issuer = Issuer { depth, key, cert };
    }
    // After the loop `issuer` is the leaf (depth 0).
    check_leaf_usage(&issuer.cert)?;
    Ok(issuer.key)
}

/// A certificate already verified up to the root, about to verify the one below it.
struct Issuer<'a> {
    depth: usize,
    key: VerifyingKey,
    cert: X509Certificate<'a>,
}

impl Issuer<'_> {
    /// Checks that `cert` (at `depth`) is signed by this issuer and that this issuer may sign it.
    fn check_issued(&self, cert: &X509Certificate<'_>, depth: usize) -> Result<(), NitroError> {
        // Names first: a dropped or reordered intermediate shows up here as a clear chain error.
        if cert.issuer().as_raw() != self.cert.subject().as_raw() {
            return Err(NitroError::ChainBroken { index: depth });
        }
        let algorithm = &cert.signature_algorithm;
        if algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA384
            || algorithm.parameters.is_some()
            || cert.tbs_certificate.signature != *algorithm
        {
            return Err(NitroError::CertificateAlgorithm { index: depth });
        }
        let signature = DerSignature::from_bytes(&cert.signature_value.data)
            .map_err(|_| NitroError::ChainSignatureInvalid { index: depth })?;
        self.key
            .verify(cert.tbs_certificate.as_ref(), &signature)
            .map_err(|_| NitroError::ChainSignatureInvalid { index: depth })?;
        self.check_may_issue()
    }

    /// The issuer must be a CA allowed to sign certificates, with a path length constraint (if
    /// any) that admits the CA certificates between it and the leaf (`depth - 1` of them).
    fn check_may_issue(&self) -> Result<(), NitroError> {
        let not_ca = NitroError::NotCa { index: self.depth };
        let constraints = match self.cert.basic_constraints() {
            Ok(Some(ext)) if ext.value.ca => ext.value,
            _ => return Err(not_ca),
        };
        match self.cert.key_usage() {
            Ok(None) => {}
            Ok(Some(ext)) if ext.value.key_cert_sign() => {}
            _ => return Err(not_ca),
        }
        if let Some(path_len) = constraints.path_len_constraint {
            let cas_below = self.depth.saturating_sub(1);
            if usize::try_from(path_len).is_ok_and(|max| cas_below > max) {
                return Err(NitroError::PathLenExceeded { index: self.depth });
            }
        }
        Ok(())
    }
}

/// Parses exactly one DER X.509 v3 certificate, with every extension well formed and no critical
/// extension this verifier would ignore.
fn parse(der: &[u8], depth: usize) -> Result<X509Certificate<'_>, NitroError> {
    let malformed = NitroError::CertificateMalformed { index: depth };
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| malformed.clone())?;
    if !rest.is_empty() || cert.version() != X509Version::V3 || cert.signature_value.unused_bits != 0 {
        return Err(malformed);
    }
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::ParseError { .. } => return Err(malformed),
            ParsedExtension::UnsupportedExtension { .. } if ext.critical => {
                return Err(NitroError::UnsupportedCriticalExtension { index: depth });
            }
            _ => {}
        }
    }
    Ok(cert)
}

/// The certificate's subject key, which must be an EC key on P-384.
fn p384_key(cert: &X509Certificate<'_>, depth: usize) -> Result<VerifyingKey, NitroError> {
    let unsupported = NitroError::CertificateAlgorithm { index: depth };
    let spki = cert.public_key();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve != Some(OID_NIST_EC_P384) {
        return Err(unsupported);
    }
    // An off-curve or malformed point is a broken certificate, not an algorithm choice.
    VerifyingKey::from_sec1_bytes(&spki.subject_public_key.data)
        .map_err(|_| NitroError::CertificateMalformed { index: depth })
}

/// Inclusive validity window: valid at exactly notBefore and at exactly notAfter.
fn check_validity(cert: &X509Certificate<'_>, depth: usize, now_unix: u64) -> Result<(), NitroError> {
    let validity = cert.validity();
    let now = i128::from(now_unix);
    if now < i128::from(validity.not_before.timestamp()) {
        return Err(NitroError::NotYetValid { index: depth });
    }
    if now > i128::from(validity.not_after.timestamp()) {
        return Err(NitroError::Expired { index: depth });
    }
    Ok(())
}

/// The leaf signs the document, so if it restricts its key usage, signing must be allowed.
fn check_leaf_usage(leaf: &X509Certificate<'_>) -> Result<(), NitroError> {
    match leaf.key_usage() {
        Ok(None) => Ok(()),
        Ok(Some(ext)) if ext.value.digital_signature() => Ok(()),
        _ => Err(NitroError::LeafKeyUsage),
    }
}
