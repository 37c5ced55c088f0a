//! The one error type of the Nitro verifier: one variant per way a document can fail.

/// Why a Nitro attestation document was rejected.
///
/// Certificate positions (`index` in the chain variants) count from the leaf, like OpenSSL's
/// "depth": 0 is the leaf (`certificate`), 1 is the last `cabundle` entry (the leaf's issuer), and
/// so on up to `cabundle.len()`, the root (`cabundle[0]`, which must be the pinned root). For
/// `1 <= index <= cabundle.len()` the certificate is `cabundle[cabundle.len() - index]`.
///
/// Messages are lowercase and never contain document bytes, so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NitroError {
    // ---- envelope (COSE_Sign1) ----
    /// The document is larger than [`MAX_DOCUMENT_LEN`](super::MAX_DOCUMENT_LEN); refused unparsed.
    #[error("attestation document is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not one CBOR COSE_Sign1 structure (tagged 18 or untagged), e.g. empty or
    /// truncated input, a wrong tag, or a wrong shape.
    #[error("attestation document is not a cose_sign1 structure")]
    CoseMalformed,
    /// Bytes follow the COSE_Sign1 structure.
    #[error("attestation document has {count} trailing bytes after the cose_sign1 structure")]
    TrailingBytes {
        /// How many bytes follow.
        count: usize,
    },
    /// The protected header carries something besides the algorithm (critical parameters,
    /// counter signatures, or any other parameter), so it cannot be read as plain ES384.
    #[error("cose protected header carries a parameter other than the algorithm")]
    ProtectedHeaderInvalid,
    /// The protected header's algorithm is absent or is not ES384 (-35).
    #[error("cose algorithm is not es384")]
    UnsupportedAlgorithm,
    /// The unprotected header carries an algorithm, critical parameters or counter signatures,
    /// which would change how the signature is read without being signed themselves.
    #[error("cose unprotected header carries a parameter that must not be unprotected")]
    UnprotectedHeaderInvalid,
    /// The payload is detached (CBOR null); Nitro documents always carry it.
    #[error("cose payload is detached")]
    PayloadDetached,
    /// The signature is not exactly 96 bytes (`r || s`, 48 bytes each).
    #[error("cose signature is {len} bytes, expected 96")]
    SignatureLength {
        /// Actual length.
        len: usize,
    },

    // ---- payload (attestation document map) ----
    /// The payload is not exactly one CBOR map with distinct text keys.
    #[error("attestation payload is not a well-formed cbor map with distinct text keys")]
    PayloadMalformed,
    /// A mandatory field is absent (or null).
    #[error("attestation payload lacks the mandatory field {field}")]
    MissingField {
        /// Field name.
        field: &'static str,
    },
    /// A field has the wrong CBOR type.
    #[error("attestation payload field {field} has the wrong cbor type")]
    FieldType {
        /// Field name.
        field: &'static str,
    },
    /// A field has the right type but an impossible value (empty `module_id`, zero `timestamp`,
    /// empty `certificate` or `cabundle`, a PCR index over 31, a PCR that is not 48 bytes, no PCR0,
    /// a repeated PCR index, more than 32 PCRs).
    #[error("attestation payload field {field} has an invalid value")]
    FieldInvalid {
        /// Field name.
        field: &'static str,
    },
    /// An optional byte field is longer than the NSM allows.
    #[error("attestation payload field {field} is {len} bytes, over the {max}-byte limit")]
    FieldTooLong {
        /// Field name.
        field: &'static str,
        /// Actual length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `digest` is not `"SHA384"`.
    #[error("attestation digest is not sha384")]
    UnsupportedDigest,

    // ---- certificate chain ----
    /// The caller's trusted root does not parse as a P-384 CA certificate.
    #[error("trusted root is not a p-384 ca certificate")]
    RootInvalid,
    /// `cabundle[0]` is not byte-for-byte the trusted root: the chain ends somewhere untrusted.
    #[error("certificate chain does not end at the trusted root")]
    UntrustedRoot,
    /// A certificate is not exactly one well-formed DER X.509 v3 certificate.
    #[error("certificate at chain depth {index} is malformed")]
    CertificateMalformed {
        /// Chain depth (0 = leaf).
        index: usize,
    },
    /// A certificate is signed with something other than ecdsa-with-SHA384, or holds a key that
    /// is not P-384.
    #[error("certificate at chain depth {index} uses an algorithm other than ecdsa p-384 with sha-384")]
    CertificateAlgorithm {
        /// Chain depth (0 = leaf).
        index: usize,
    },
    /// A certificate marks an extension critical that this verifier does not understand.
    #[error("certificate at chain depth {index} has an unsupported critical extension")]
    UnsupportedCriticalExtension {
        /// Chain depth (0 = leaf).
        index: usize,
    },
    /// A certificate's issuer name is not the subject name of the certificate above it, e.g.
    /// because an intermediate was dropped from `cabundle`.
    #[error("certificate at chain depth {index} was not issued by the certificate above it")]
    ChainBroken {
        /// Chain depth (0 = leaf) of the certificate whose issuer is missing.
        index: usize,
    },
    /// A certificate's signature does not verify with the key of the certificate above it.
    #[error("signature on the certificate at chain depth {index} does not verify")]
    ChainSignatureInvalid {
        /// Chain depth (0 = leaf) of the signed certificate.
        index: usize,
    },
    /// A certificate that signs another one is not a CA (basicConstraints cA) or its key usage
    /// does not allow certificate signing.
    #[error("certificate at chain depth {index} is not a ca allowed to sign certificates")]
    NotCa {
        /// Chain depth of the issuing certificate.
        index: usize,
    },
    /// A CA certificate has more CA certificates below it than its pathLenConstraint allows.
    #[error("certificate at chain depth {index} exceeds its path length constraint")]
    PathLenExceeded {
        /// Chain depth of the constrained CA certificate.
        index: usize,
    },
    /// The leaf's key usage does not allow digital signatures.
    #[error("leaf certificate key usage does not allow signing")]
    LeafKeyUsage,
    /// A certificate's notBefore is after `now`.
    #[error("certificate at chain depth {index} is not yet valid")]
    NotYetValid {
        /// Chain depth (0 = leaf).
        index: usize,
    },
    /// A certificate's notAfter is before `now`.
    #[error("certificate at chain depth {index} has expired")]
    Expired {
        /// Chain depth (0 = leaf).
        index: usize,
    },

    // ---- document signature ----
    /// The COSE signature does not verify with the leaf certificate's key.
    #[error("cose signature does not verify with the leaf certificate key")]
    SignatureInvalid,

    // ---- policy ----
    /// The enclave runs in debug mode (PCR0 all zero) and the policy does not allow it.
    #[error("enclave runs in debug mode")]
    DebugMode,
    /// A PCR the policy pins is not in the document.
    #[error("pcr{index} pinned by the policy is missing")]
    PcrMissing {
        /// PCR index.
        index: u8,
    },
    /// A PCR differs from the policy's value.
    #[error("pcr{index} does not match the policy")]
    PcrMismatch {
        /// PCR index.
        index: u8,
    },
    /// The document is older than the policy's maximum age.
    #[error("attestation document is {age_secs} s old, over the policy maximum")]
    Stale {
        /// Age in whole seconds at `now`.
        age_secs: u64,
    },
    /// The document's timestamp is more than [`MAX_CLOCK_SKEW_SECS`](super::MAX_CLOCK_SKEW_SECS)
    /// after `now`.
    #[error("attestation timestamp is in the future")]
    TimestampInFuture,
}
