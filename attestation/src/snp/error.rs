//! Every way an SEV-SNP report can fail verification, one variant each.

use core::fmt;

use super::types::{Product, Tcb};

/// A certificate's place in the AMD chain, named in chain errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// AMD Root Key (self-signed, pinned per product).
    Ark,
    /// AMD SEV Key: intermediate that signs VCEKs.
    Ask,
    /// AMD SEV VLEK Key: intermediate that signs VLEKs.
    Asvk,
    /// Versioned Chip Endorsement Key certificate (the leaf).
    Vcek,
    /// Versioned Loaded Endorsement Key certificate (the leaf).
    Vlek,
}

impl CertRole {
    /// Lowercase name used in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            CertRole::Ark => "ark",
            CertRole::Ask => "ask",
            CertRole::Asvk => "asvk",
            CertRole::Vcek => "vcek",
            CertRole::Vlek => "vlek",
        }
    }
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an SEV-SNP report was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnpError {
    /// The report is not exactly 1184 bytes.
    #[error("report is {len} bytes, expected 1184")]
    Length {
        /// Length received.
        len: usize,
    },
    /// The report version is not one this verifier knows the layout of.
    #[error("unsupported report version {version} (expected 2 or 3)")]
    UnsupportedVersion {
        /// Version found.
        version: u32,
    },
    /// The report is not signed with ECDSA P-384/SHA-384.
    #[error("unsupported report signature algorithm {algo} (expected 1, ecdsa p-384 with sha-384)")]
    UnsupportedSignatureAlgo {
        /// SIGNATURE_ALGO found.
        algo: u32,
    },
    /// No certificate at all: the VCEK or VLEK must come first.
    #[error("no vcek or vlek certificate supplied")]
    NoCertificates,
    /// More than leaf, intermediate and ARK were supplied.
    #[error("{count} certificates supplied, expected at most 3 (vcek or vlek, ask or asvk, ark)")]
    TooManyCertificates {
        /// Number supplied.
        count: usize,
    },
    /// The first certificate is not one well-formed DER X.509 certificate.
    #[error("vcek/vlek certificate is not a well-formed der x.509 certificate")]
    LeafMalformed,
    /// The leaf is not signed with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48, trailer 1.
    #[error("vcek/vlek certificate is not signed with rsassa-pss sha-384 (salt 48)")]
    LeafSignatureAlgorithm,
    /// The leaf's public key is not an uncompressed or compressed P-384 point.
    #[error("vcek/vlek public key is not a p-384 ec key")]
    LeafKeyInvalid,
    /// No built-in ASK or ASVK, of any product, produced the leaf's signature.
    #[error("vcek/vlek signature does not verify under any built-in ask or asvk")]
    LeafSignatureInvalid,
    /// The leaf is genuinely signed, but by a product the policy does not allow.
    #[error("vcek/vlek is signed by the {product} intermediate, and the policy does not allow {product}")]
    ProductNotAllowed {
        /// Product whose intermediate signed the leaf.
        product: Product,
    },
    /// The leaf is a VLEK and the policy accepts only VCEKs.
    #[error("report is signed by a {product} vlek and the policy does not allow vleks")]
    VlekNotAllowed {
        /// Product whose ASVK signed the VLEK.
        product: Product,
    },
    /// A built-in root or intermediate failed to decode (a broken build, never input).
    #[error("built-in {product} {cert} certificate is malformed")]
    BuiltinCertificateInvalid {
        /// Product of the broken certificate.
        product: Product,
        /// Which built-in certificate.
        cert: CertRole,
    },
    /// The built-in ARK does not hash to its compiled-in pin (a tampered build, never input).
    #[error("built-in {product} ark does not match its pinned sha-256")]
    ArkPinMismatch {
        /// Product whose ARK is wrong.
        product: Product,
    },
    /// The built-in ARK's self-signature does not verify.
    #[error("{product} ark self-signature is invalid")]
    ArkSelfSignatureInvalid {
        /// Product of the ARK.
        product: Product,
    },
    /// The built-in ASK or ASVK is not signed by the built-in ARK.
    #[error("{product} {cert} is not signed by the {product} ark")]
    IntermediateSignatureInvalid {
        /// Product of the chain.
        product: Product,
        /// ASK or ASVK.
        cert: CertRole,
    },
    /// A supplied intermediate differs from the built-in one of the product that signed the leaf.
    #[error("supplied {cert} is not the built-in {product} {cert}")]
    SuppliedIntermediateMismatch {
        /// Product that signed the leaf.
        product: Product,
        /// ASK or ASVK.
        cert: CertRole,
    },
    /// A supplied ARK differs from the pinned one of the product that signed the leaf.
    #[error("supplied ark is not the pinned {product} ark")]
    SuppliedArkNotPinned {
        /// Product that signed the leaf.
        product: Product,
    },
    /// A chain certificate's validity starts after `now`.
    #[error("{cert} certificate is not valid before {not_before} (unix seconds)")]
    NotYetValid {
        /// Which certificate.
        cert: CertRole,
        /// Its notBefore, unix seconds.
        not_before: i64,
    },
    /// A chain certificate's validity ended before `now`.
    #[error("{cert} certificate expired at {not_after} (unix seconds)")]
    Expired {
        /// Which certificate.
        cert: CertRole,
        /// Its notAfter, unix seconds.
        not_after: i64,
    },
    /// The leaf lacks an AMD extension the check needs.
    #[error("{cert} certificate lacks extension {oid}")]
    MissingExtension {
        /// VCEK or VLEK.
        cert: CertRole,
        /// Dotted OID of the extension.
        oid: &'static str,
    },
    /// An AMD extension of the leaf is duplicated or not the expected DER type and size.
    #[error("{cert} certificate extension {oid} is malformed or duplicated")]
    MalformedExtension {
        /// VCEK or VLEK.
        cert: CertRole,
        /// Dotted OID of the extension.
        oid: &'static str,
    },
    /// The VCEK's hwID is not the report's CHIP_ID: a VCEK of another chip (or a masked chip ID).
    #[error("vcek hwid does not match the report's chip_id")]
    ChipIdMismatch,
    /// A TCB component in the leaf's extensions differs from the report's `reported_tcb`.
    #[error("reported_tcb {component} is {report}, but the {cert} certifies {certificate}")]
    TcbMismatch {
        /// VCEK or VLEK.
        cert: CertRole,
        /// "bootloader", "tee", "snp", "microcode" or "fmc".
        component: &'static str,
        /// Value in the certificate.
        certificate: u8,
        /// Value in the report.
        report: u8,
    },
    /// R or S has nonzero bytes above the 48 that a P-384 scalar occupies.
    #[error("report signature r or s has nonzero bytes above its low 48")]
    ReportSignatureEncoding,
    /// The report signature does not verify under the leaf's key (or R/S are out of range).
    #[error("report signature does not verify under the vcek/vlek key")]
    ReportSignatureInvalid,
    /// The guest policy allows debugging and the verifier's policy does not.
    #[error("guest policy allows debugging (policy bit 19 set)")]
    Debug,
    /// The launch measurement is not the pinned one.
    #[error("measurement {actual} does not match the pinned {expected}")]
    MeasurementMismatch {
        /// Pinned measurement, hex.
        expected: String,
        /// Reported measurement, hex.
        actual: String,
    },
    /// Some component of `reported_tcb` is below the policy's floor.
    #[error("reported_tcb ({reported}) is below the floor ({floor})")]
    TcbBelowFloor {
        /// The report's reported TCB.
        reported: Tcb,
        /// The policy's floor.
        floor: Tcb,
    },
}
