//! AMD's roots and intermediates, compiled in, with each ARK pinned by the SHA-256 of its DER.
//!
//! The PEM files under `attestation/roots/` are the source; the pins below are the authority,
//! so a replaced file fails verification (and the unit test) instead of widening trust.

use sha2::{Digest, Sha256};

use super::error::{CertRole, SnpError};
use super::types::{Product, Signer};

const ARK_MILAN: &str = include_str!("../../roots/ark_milan.pem");
const ARK_GENOA: &str = include_str!("../../roots/ark_genoa.pem");
const ARK_TURIN: &str = include_str!("../../roots/ark_turin.pem");
const ASK_MILAN: &str = include_str!("../../roots/ask_milan.pem");
const ASK_GENOA: &str = include_str!("../../roots/ask_genoa.pem");
const ASK_TURIN: &str = include_str!("../../roots/ask_turin.pem");
const ASVK_MILAN: &str = include_str!("../../roots/asvk_milan.pem");
const ASVK_GENOA: &str = include_str!("../../roots/asvk_genoa.pem");
const ASVK_TURIN: &str = include_str!("../../roots/asvk_turin.pem");

// Kept as the same hex strings the README and AMD's documentation show, so they stay greppable;
// decoded in `const` items, i.e. at compile time.
const ARK_PIN_MILAN: [u8; 32] = hex_32(b"69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd");
const ARK_PIN_GENOA: [u8; 32] = hex_32(b"4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1");
const ARK_PIN_TURIN: [u8; 32] = hex_32(b"1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a");

impl Product {
    /// SHA-256 of the DER of this product's AMD Root Key certificate: the trust anchor.
    pub const fn ark_sha256(&self) -> [u8; 32] {
        match self {
            Product::Milan => ARK_PIN_MILAN,
            Product::Genoa => ARK_PIN_GENOA,
            Product::Turin => ARK_PIN_TURIN,
        }
    }
}

/// Decodes 64 lowercase hex digits; only ever evaluated in `const` items.
const fn hex_32(hex: &[u8; 64]) -> [u8; 32] {
    #[expect(clippy::panic, reason = "const-evaluated: a typo in a pin fails the build, never a run")]
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("pin is not lowercase hex"),
        }
    }
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
}

/// The intermediate that certifies leaves of this kind.
pub(crate) fn intermediate_role(signer: Signer) -> CertRole {
    match signer {
        Signer::Vcek => CertRole::Ask,
        Signer::Vlek => CertRole::Asvk,
    }
}

fn pem_of(product: Product, cert: CertRole) -> Option<&'static str> {
    Some(match (product, cert) {
        (Product::Milan, CertRole::Ark) => ARK_MILAN,
        (Product::Genoa, CertRole::Ark) => ARK_GENOA,
        (Product::Turin, CertRole::Ark) => ARK_TURIN,
        (Product::Milan, CertRole::Ask) => ASK_MILAN,
        (Product::Genoa, CertRole::Ask) => ASK_GENOA,
        (Product::Turin, CertRole::Ask) => ASK_TURIN,
        (Product::Milan, CertRole::Asvk) => ASVK_MILAN,
        (Product::Genoa, CertRole::Asvk) => ASVK_GENOA,
        (Product::Turin, CertRole::Asvk) => ASVK_TURIN,
        (_, CertRole::Vcek | CertRole::Vlek) => return None,
    })
}

/// DER of a built-in ARK, ASK or ASVK.
pub(crate) fn builtin_der(product: Product, cert: CertRole) -> Result<Vec<u8>, SnpError> {
    let invalid = SnpError::BuiltinCertificateInvalid { product, cert };
    let pem = pem_of(product, cert).ok_or_else(|| invalid.clone())?;
    let (rest, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| invalid.clone())?;
    // Text around the block is tolerated (the ASVK files carry openssl's "subject=" lines after
    // it), but a second certificate is not: each file must hold exactly one.
    if pem.label != "CERTIFICATE" || rest.windows(10).any(|w| w == b"-----BEGIN") {
        return Err(invalid);
    }
    Ok(pem.contents)
}

/// DER of the built-in ARK, after checking it against its pin.
pub(crate) fn pinned_ark_der(product: Product) -> Result<Vec<u8>, SnpError> {
    let der = builtin_der(product, CertRole::Ark)?;
    let digest: [u8; 32] = Sha256::digest(&der).into();
    if digest != product.ark_sha256() {
        return Err(SnpError::ArkPinMismatch { product });
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_arks_hash_to_their_pins() {
        for product in Product::ALL {
            let der = builtin_der(product, CertRole::Ark).unwrap();
            let digest: [u8; 32] = Sha256::digest(&der).into();
            assert_eq!(hex::encode(digest), hex::encode(product.ark_sha256()), "{product}");
            assert_eq!(pinned_ark_der(product).unwrap(), der, "{product}");
        }
    }

    #[test]
    fn pins_are_the_published_strings() {
        assert_eq!(
            hex::encode(Product::Milan.ark_sha256()),
            "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"
        );
        assert_eq!(
            hex::encode(Product::Genoa.ark_sha256()),
            "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1"
        );
        assert_eq!(
            hex::encode(Product::Turin.ark_sha256()),
            "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a"
        );
    }

    #[test]
    fn every_builtin_intermediate_decodes_and_names_its_product() {
        for product in Product::ALL {
            for (role, cn) in [
                (CertRole::Ask, format!("SEV-{}", product.amd_name())),
                (CertRole::Asvk, format!("SEV-VLEK-{}", product.amd_name())),
                (CertRole::Ark, format!("ARK-{}", product.amd_name())),
            ] {
                let der = builtin_der(product, role).unwrap();
                let (rest, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
                assert!(rest.is_empty());
                let subject_cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap();
                assert_eq!(subject_cn, cn, "{product} {role}");
            }
        }
    }

    #[test]
    fn leaves_have_no_builtin() {
        assert!(builtin_der(Product::Milan, CertRole::Vcek).is_err());
    }
}
