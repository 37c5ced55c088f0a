//! The built-in half of each chain (pinned ARK → ASK or ASVK), verified once per process.
//!
//! These certificates are compile-time constants, so their pin, self-signature and hop
//! signature cannot change between calls; verifying them lazily once (and caching the outcome,
//! failures included) leaves per-report work at one RSA check for the leaf. Validity still
//! depends on `now`, so only the windows are cached and checked per call.

use std::sync::OnceLock;

use rsa::RsaPublicKey;

use super::error::{CertRole, SnpError};
use super::roots::{builtin_der, intermediate_role, pinned_ark_der};
use super::types::{Product, Signer};
use super::x509::{self, Window};

/// A built-in intermediate proven to chain to its product's pinned ARK.
#[derive(Debug)]
pub(crate) struct Anchor {
    /// ASK or ASVK.
    pub(crate) role: CertRole,
    /// The intermediate's key, which signs leaves.
    pub(crate) key: RsaPublicKey,
    /// DER of the pinned ARK, to compare a supplied one with.
    pub(crate) ark_der: Vec<u8>,
    /// DER of the intermediate, to compare a supplied one with.
    pub(crate) intermediate_der: Vec<u8>,
    /// Validity of the ARK.
    pub(crate) ark_window: Window,
    /// Validity of the intermediate.
    pub(crate) intermediate_window: Window,
}

/// The verified anchor for `signer` leaves of `product`.
pub(crate) fn get(product: Product, signer: Signer) -> Result<&'static Anchor, SnpError> {
    static CACHE: [OnceLock<Result<Anchor, SnpError>>; 6] = [const { OnceLock::new() }; 6];
    let index = match product {
        Product::Milan => 0,
        Product::Genoa => 2,
        Product::Turin => 4,
    } + match signer {
        Signer::Vcek => 0,
        Signer::Vlek => 1,
    };
    let role = intermediate_role(signer);
    let slot = CACHE.get(index).ok_or(SnpError::BuiltinCertificateInvalid { product, cert: role })?;
    slot.get_or_init(|| build(product, signer)).as_ref().map_err(Clone::clone)
}

/// Pin → ARK self-signature → ARK signs the intermediate.
fn build(product: Product, signer: Signer) -> Result<Anchor, SnpError> {
    let role = intermediate_role(signer);
    let ark_der = pinned_ark_der(product)?;
    let intermediate_der = builtin_der(product, role)?;
    let invalid = |cert| SnpError::BuiltinCertificateInvalid { product, cert };

    let ark = x509::parse(&ark_der).filter(x509::is_amd_pss).ok_or(invalid(CertRole::Ark))?;
    let ark_key = x509::rsa_key(&ark).ok_or(invalid(CertRole::Ark))?;
    if !x509::signed_by(&ark, &ark_key) {
        return Err(SnpError::ArkSelfSignatureInvalid { product });
    }
    let intermediate = x509::parse(&intermediate_der).filter(x509::is_amd_pss).ok_or(invalid(role))?;
    if !x509::signed_by(&intermediate, &ark_key) {
        return Err(SnpError::IntermediateSignatureInvalid { product, cert: role });
    }
    let key = x509::rsa_key(&intermediate).ok_or(invalid(role))?;
    let ark_window = Window::of(&ark);
    let intermediate_window = Window::of(&intermediate);
    Ok(Anchor { role, key, ark_der, intermediate_der, ark_window, intermediate_window })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exercises the ASVK hops too, which no real VLEK in the test data reaches.
    #[test]
    fn every_built_in_ask_and_asvk_chains_to_its_pinned_ark() {
        for product in Product::ALL {
            for signer in [Signer::Vcek, Signer::Vlek] {
                let anchor = get(product, signer).unwrap();
                assert_eq!(anchor.role, intermediate_role(signer));
                assert_eq!(anchor.ark_der, pinned_ark_der(product).unwrap());
                // Cached: the same anchor comes back.
                assert!(std::ptr::eq(anchor, get(product, signer).unwrap()));
            }
        }
    }

    #[test]
    fn a_vcek_intermediate_does_not_sign_another_products_vcek_intermediate() {
        let genoa_ask = builtin_der(Product::Genoa, CertRole::Ask).unwrap();
        let genoa_ask = x509::parse(&genoa_ask).unwrap();
        for signer in [Signer::Vcek, Signer::Vlek] {
            assert!(!x509::signed_by(&genoa_ask, &get(Product::Milan, signer).unwrap().key));
        }
    }
}
