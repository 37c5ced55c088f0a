//! The AMD certificate chain: which built-in intermediate signed the leaf (that decides the
//! product and the signer kind), then the built-in ARK pin → ARK self-signature → ARK→ASK/ASVK
//! (see [`anchors`]), then supplied certificates, then every validity window at `now`.
//!
//! Supplied intermediates and ARKs are never trusted: when present they must be byte-for-byte
//! the built-in ones of the product the signature proved.

use p384::ecdsa::VerifyingKey as P384Key;
use x509_parser::certificate::X509Certificate;

use super::anchors;
use super::error::{CertRole, SnpError};
use super::types::{Product, Signer, SnpPolicy};
use super::x509;

/// A leaf certificate proven to chain to a pinned ARK.
#[derive(Debug)]
pub(crate) struct VerifiedLeaf<'a> {
    /// Product whose ARK anchors the chain.
    pub(crate) product: Product,
    /// VCEK or VLEK.
    pub(crate) signer: Signer,
    /// The leaf itself, for its extensions.
    pub(crate) cert: X509Certificate<'a>,
    /// The leaf's key, which must have signed the report.
    pub(crate) key: P384Key,
}

/// Verifies `certs` (leaf first, then optionally intermediate and ARK) at `now_unix`.
pub(crate) fn verify<'a>(
    certs: &'a [Vec<u8>],
    now_unix: u64,
    policy: &SnpPolicy,
) -> Result<VerifiedLeaf<'a>, SnpError> {
    let (leaf_der, supplied) = certs.split_first().ok_or(SnpError::NoCertificates)?;
    if supplied.len() > 2 {
        return Err(SnpError::TooManyCertificates { count: certs.len() });
    }
    let leaf = x509::parse(leaf_der).ok_or(SnpError::LeafMalformed)?;
    if !x509::is_amd_pss(&leaf) {
        return Err(SnpError::LeafSignatureAlgorithm);
    }
    let key = x509::p384_key(&leaf).ok_or(SnpError::LeafKeyInvalid)?;

    let (product, signer) = select_issuer(policy, issuer_hint(&leaf), |product, signer| {
        Ok(x509::signed_by(&leaf, &anchors::get(product, signer)?.key))
    })?;
    let anchor = anchors::get(product, signer)?;

    if let Some(given) = supplied.first()
        && *given != anchor.intermediate_der
    {
        return Err(SnpError::SuppliedIntermediateMismatch { product, cert: anchor.role });
    }
    if let Some(given) = supplied.get(1)
        && *given != anchor.ark_der
    {
        return Err(SnpError::SuppliedArkNotPinned { product });
    }

    let leaf_role = match signer {
        Signer::Vcek => CertRole::Vcek,
        Signer::Vlek => CertRole::Vlek,
    };
    anchor.ark_window.check(now_unix, CertRole::Ark)?;
    anchor.intermediate_window.check(now_unix, anchor.role)?;
    x509::Window::of(&leaf).check(now_unix, leaf_role)?;

    Ok(VerifiedLeaf { product, signer, cert: leaf, key })
}

/// The (product, signer) the leaf's issuer name claims: only an ordering hint so the likely
/// intermediate is tried first; the signature decides.
fn issuer_hint(leaf: &X509Certificate<'_>) -> Option<(Product, Signer)> {
    let cn = x509::issuer_cn(leaf)?;
    Product::ALL.into_iter().find_map(|product| {
        if cn == format!("SEV-{}", product.amd_name()) {
            Some((product, Signer::Vcek))
        } else if cn == format!("SEV-VLEK-{}", product.amd_name()) {
            Some((product, Signer::Vlek))
        } else {
            None
        }
    })
}

/// Finds which built-in intermediate signed the leaf and applies the policy to the answer.
///
/// Allowed products are tried first (the hint first among them), so a disallowed product is
/// only reported when no allowed one signs; intermediates of every kind are tried so that a
/// refused VLEK is named as such rather than as a bad signature.
pub(crate) fn select_issuer(
    policy: &SnpPolicy,
    hint: Option<(Product, Signer)>,
    mut signs: impl FnMut(Product, Signer) -> Result<bool, SnpError>,
) -> Result<(Product, Signer), SnpError> {
    let mut candidates: Vec<(Product, Signer)> =
        Product::ALL.into_iter().flat_map(|p| [(p, Signer::Vcek), (p, Signer::Vlek)]).collect();
    // Stable sort: allowed before disallowed, then the hinted pair first.
    candidates.sort_by_key(|&(product, signer)| (!policy.allows(product), hint != Some((product, signer))));
    for (product, signer) in candidates {
        if !signs(product, signer)? {
            continue;
        }
        if !policy.allows(product) {
            return Err(SnpError::ProductNotAllowed { product });
        }
        if signer == Signer::Vlek && !policy.allow_vlek {
            return Err(SnpError::VlekNotAllowed { product });
        }
        return Ok((product, signer));
    }
    Err(SnpError::LeafSignatureInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(products: Vec<Product>, allow_vlek: bool) -> SnpPolicy {
        SnpPolicy { products, allow_vlek, ..SnpPolicy::default() }
    }

    /// A signature oracle that accepts exactly one (product, signer) and records the order.
    fn oracle(
        real: (Product, Signer),
        tried: &mut Vec<(Product, Signer)>,
    ) -> impl FnMut(Product, Signer) -> Result<bool, SnpError> + '_ {
        move |p, s| {
            tried.push((p, s));
            Ok((p, s) == real)
        }
    }

    #[test]
    fn vlek_signed_leaf_is_refused_unless_the_policy_allows_vleks() {
        let real = (Product::Genoa, Signer::Vlek);
        let mut tried = Vec::new();
        let refused = select_issuer(&policy(vec![], false), None, oracle(real, &mut tried));
        assert_eq!(refused, Err(SnpError::VlekNotAllowed { product: Product::Genoa }));
        let mut tried = Vec::new();
        assert_eq!(select_issuer(&policy(vec![], true), None, oracle(real, &mut tried)), Ok(real));
    }

    #[test]
    fn hinted_issuer_is_tried_first() {
        let real = (Product::Turin, Signer::Vlek);
        let mut tried = Vec::new();
        assert_eq!(select_issuer(&policy(vec![], true), Some(real), oracle(real, &mut tried)), Ok(real));
        assert_eq!(tried, vec![real]);
    }

    #[test]
    fn a_wrong_hint_does_not_decide() {
        let real = (Product::Milan, Signer::Vcek);
        let mut tried = Vec::new();
        let got = select_issuer(&policy(vec![], false), Some((Product::Genoa, Signer::Vcek)), oracle(real, &mut tried));
        assert_eq!(got, Ok(real));
        assert_eq!(tried.first(), Some(&(Product::Genoa, Signer::Vcek)));
    }

    #[test]
    fn disallowed_products_are_tried_only_after_allowed_ones_and_then_named() {
        let real = (Product::Milan, Signer::Vcek);
        let mut tried = Vec::new();
        let got = select_issuer(&policy(vec![Product::Genoa], true), Some(real), oracle(real, &mut tried));
        assert_eq!(got, Err(SnpError::ProductNotAllowed { product: Product::Milan }));
        assert_eq!(&tried[..2], &[(Product::Genoa, Signer::Vcek), (Product::Genoa, Signer::Vlek)]);
    }

    #[test]
    fn no_intermediate_signing_is_a_leaf_signature_error_after_trying_all_six() {
        let mut tried = 0;
        let got = select_issuer(&policy(vec![], true), None, |_, _| {
            tried += 1;
            Ok(false)
        });
        assert_eq!(got, Err(SnpError::LeafSignatureInvalid));
        assert_eq!(tried, 6);
    }

    #[test]
    fn oracle_errors_propagate() {
        let err = SnpError::BuiltinCertificateInvalid { product: Product::Milan, cert: CertRole::Ask };
        let got = select_issuer(&policy(vec![], true), None, |_, _| Err(err.clone()));
        assert_eq!(got, Err(err));
    }
}
