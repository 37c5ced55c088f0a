//! AMD SEV-SNP attestation reports: strict parsing and full verification against AMD's pinned
//! roots, as pure functions of the report, the certificates, an explicit `now` and a policy.
//!
//! [`verify`] checks, in this order, each failure with its own [`SnpError`] variant:
//!
//! 1. **Parse**: exactly 1184 bytes, version 2 or 3, SIGNATURE_ALGO 1 (ECDSA P-384/SHA-384).
//! 2. **Chain**: the leaf (VCEK or VLEK, first in `certs`) is signed with RSASSA-PSS/SHA-384 by
//!    a built-in ASK or ASVK; the one whose signature verifies decides the [`Product`] and the
//!    [`Signer`] (the issuer name is only a hint). Then the product must be allowed, a VLEK must
//!    be allowed, the built-in ARK must hash to its pin and sign itself and the intermediate,
//!    supplied intermediate/ARK (optional) must equal the built-in ones, and ARK,
//!    intermediate and leaf must all be valid at `now` (inclusive).
//! 3. **Leaf vs report**: the VCEK's hwID equals CHIP_ID (skipped for a VLEK, which has none),
//!    then the leaf's SPL extensions equal `reported_tcb` (bootloader, tee, snp, microcode, and
//!    fmc on Turin).
//! 4. **Report signature** over bytes `0x000..0x2A0` with the leaf's P-384 key.
//! 5. **Policy**: debug bit, measurement pin, TCB floor.
//!
//! Not checked here: `report_data` (the caller compares it with the session binding), VMPL,
//! guest SVN, ID/author key digests and family/image IDs (returned for the caller's policy),
//! revocation (AMD's CRLs only revoke intermediates, which are pinned). A guest that masks its
//! chip ID (KEY_INFO bit 1) cannot be verified with a VCEK: that is a [`SnpError::ChipIdMismatch`].

mod anchors;
mod chain;
mod error;
mod extensions;
mod policy;
mod report;
mod roots;
mod signature;
mod types;
mod x509;

pub use error::{CertRole, SnpError};
pub use types::{ParseProductError, Product, Signer, SnpPolicy, SnpReport, Tcb};

use report::RawReport;

/// Strict parse of the 1184-byte report (no crypto).
///
/// Checks length, version (2 or 3) and signature algorithm (1). TCBs are decoded in the layout
/// the report suggests (Turin only for a v3 report from CPU family 1Ah); `product` and `signer`
/// are `None`.
pub fn parse(report: &[u8]) -> Result<SnpReport, SnpError> {
    let raw = RawReport::new(report)?;
    Ok(raw.decode(raw.layout_hint()))
}

/// Full verification (see the module documentation for the order of checks).
///
/// `certs`: DER certificates as the host/guest supplied them, VCEK or VLEK first, optionally
/// followed by the ASK/ASVK and the ARK, which must then equal the built-in ones for the product
/// (they are never trusted on their own). `now_unix` is seconds since the Unix epoch.
///
/// On success the report is returned with `product` and `signer` set and its TCBs decoded in
/// the layout of the proven product.
pub fn verify(report: &[u8], certs: &[Vec<u8>], now_unix: u64, policy: &SnpPolicy) -> Result<SnpReport, SnpError> {
    let raw = RawReport::new(report)?;
    let leaf = chain::verify(certs, now_unix, policy)?;
    let mut decoded = raw.decode(leaf.product.tcb_layout());
    extensions::check(&leaf.cert, leaf.product, leaf.signer, &decoded)?;
    signature::verify(raw.bytes(), &leaf.key)?;
    policy::check(&decoded, policy)?;
    decoded.product = Some(leaf.product);
    decoded.signer = Some(leaf.signer);
    Ok(decoded)
}

/// VCEK of the virtee/sev Milan test report, the fixed leaf [`fuzz_report`] verifies against.
const FUZZ_VCEK: &[u8] = include_bytes!("../tests/data/snp/virtee_vcek_milan.der");
/// A time inside that VCEK's validity (2025-06-15).
const FUZZ_NOW: u64 = 1_750_000_000;

/// Fuzzing entry point: parses `data` and verifies it with the virtee VCEK at a fixed time under
/// a permissive policy; when `data` is longer than a report, the excess is also tried as the
/// leaf certificate. Never panics (that is what it exists to show).
#[doc(hidden)]
pub fn fuzz_report(data: &[u8]) {
    let policy = SnpPolicy { allow_debug: true, allow_vlek: true, ..SnpPolicy::default() };
    let _ = parse(data);
    let _ = verify(data, &[FUZZ_VCEK.to_vec()], FUZZ_NOW, &policy);
    if let Some((report, leaf)) = data.split_at_checked(report::REPORT_LEN)
        && !leaf.is_empty()
    {
        let _ = verify(report, &[leaf.to_vec()], FUZZ_NOW, &policy);
    }
}
