//! The simulated attester (feature `sim` only): real Nitro-format attestation documents,
//! signed by a test P-384 CA instead of the Nitro hypervisor.
//!
//! The document is byte-for-byte what the NSM produces (see the verifier's test data): an
//! untagged COSE_Sign1 `[protected {1: -35}, {}, payload, r||s]`, ES384 over the COSE
//! `Sig_structure`, whose payload is the CBOR map `module_id, digest, timestamp, pcrs,
//! certificate, cabundle, public_key, user_data, nonce` in that order. So the same verifier
//! code path checks simulated and real evidence; only the pinned root differs, and no
//! production policy pins [`SimCa`]'s. PCR0/1/2 are hashes of fixed labels and the crate
//! version ([`sim_pcrs`]): non-zero (a zero PCR0 means debug mode to a verifier) and stable
//! per build, so a policy can pin them like real measurements.
//!
//! The root CA persists across restarts ([`SimCa::load_or_generate`]) so clients that pinned
//! it keep working; each [`SimAttester`] issues itself a fresh leaf, as each Nitro enclave
//! gets its own.
#![allow(
    clippy::std_instead_of_alloc,
    clippy::std_instead_of_core,
    reason = "std-only module (files, permissions): portability to no_std is not a goal here"
)]

use core::fmt;
use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::string::{String, ToString as _};
use std::vec::Vec;
use std::{format, vec};

use ciborium::Value;
use coset::{CborSerializable as _, CoseSign1Builder, HeaderBuilder, iana};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384, SerialNumber,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use sha2::{Digest as _, Sha384};
use sigil_protocol::{Evidence, Platform};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{AttestError, AttestationInput, Attester};

/// File name of the persisted root certificate (PEM, mode 0644: it is public).
pub const ROOT_CERT_FILE: &str = "sim-root.pem";
/// File name of the persisted root key (PKCS#8 PEM, mode 0600).
pub const ROOT_KEY_FILE: &str = "sim-root.key";

/// The leaf is valid from an hour before it is issued (tolerating clock skew between the
/// enclave and verifiers) ...
const LEAF_BACKDATE_SECS: u64 = 3600;
/// ... for 30 days.
const LEAF_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// A leaf this close to expiry is replaced before it signs another document, so a long-running
/// simulated enclave never hands out evidence a verifier would reject as expired.
const LEAF_RENEW_MARGIN_SECS: u64 = 24 * 3600;
/// A PEM certificate or P-384 key is well under 4 KiB; anything much larger is not ours.
const MAX_PEM_FILE: u64 = 64 * 1024;
/// Nitro documents carry 16 PCRs.
const PCR_COUNT: u64 = 16;

/// The PCR0, PCR1 and PCR2 every simulated document of this build carries: SHA-384 of
/// `"sigil/sim/pcr<i>/" || <crate version>`. Distinct, non-zero (an all-zero PCR0 is Nitro's
/// debug mode) and stable for a build, so tests and dev policies can pin them.
#[must_use]
pub fn sim_pcrs() -> [[u8; 48]; 3] {
    [0u8, 1, 2].map(|i| {
        let label = format!("sigil/sim/pcr{i}/{}", env!("CARGO_PKG_VERSION"));
        Sha384::digest(label.as_bytes()).into()
    })
}

/// File name of a persisted simulated measurement: PCR0, PCR1 and PCR2 as three lines of 96
/// lowercase hex.
pub const MEASUREMENT_FILE: &str = "sim-measurement";

/// Loads the simulated measurement from `dir/sim-measurement`, or writes this build's
/// [`sim_pcrs`] there, so a simulated enclave keeps its identity (and can open its sealed
/// blobs) across rebuilds. Edit the file to rehearse "another build".
pub fn load_or_create_measurement(dir: &Path) -> Result<[[u8; 48]; 3], AttestError> {
    let path = dir.join(MEASUREMENT_FILE);
    if !path.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let pcrs = sim_pcrs();
        let text: String = pcrs.iter().map(|p| format!("{}\n", hex::encode(p))).collect();
        write_atomically(&path, text.as_bytes(), 0o644)?;
        return Ok(pcrs);
    }
    let text = read_pem(&path)?;
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut pcrs = [[0u8; 48]; 3];
    if lines.len() != 3 {
        return Err(err(format!("{}: expected 3 lines of 96 hex digits (PCR0, PCR1, PCR2)", path.display())));
    }
    for (pcr, line) in pcrs.iter_mut().zip(&lines) {
        hex::decode_to_slice(line, pcr)
            .map_err(|_| err(format!("{}: expected 3 lines of 96 hex digits (PCR0, PCR1, PCR2)", path.display())))?;
    }
    if pcrs[0] == [0; 48] {
        return Err(err(format!("{}: an all-zero PCR0 is debug mode", path.display())));
    }
    Ok(pcrs)
}

fn err(msg: impl Into<String>) -> AttestError {
    AttestError(msg.into())
}

/// 16 random bytes as a positive, non-zero DER INTEGER (RFC 5280 serials are at most 20 octets).
fn random_serial(rng: &SystemRandom) -> Result<SerialNumber, AttestError> {
    let mut serial = [0u8; 16];
    rng.fill(&mut serial).map_err(|_| err("no randomness for a certificate serial"))?;
    serial[0] = (serial[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&serial))
}

fn datetime(unix: u64) -> Result<OffsetDateTime, AttestError> {
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or_else(|| err(format!("time {unix} is outside the certificate date range")))
}

/// The test root CA that signs simulated attesters' leaf certificates. A verifier accepts
/// simulated evidence only if it pins this root's DER.
pub struct SimCa {
    cert_der: Vec<u8>,
    cert_pem: String,
    /// rcgen's P-384 key; with rcgen's `zeroize` feature the PKCS#8 bytes it keeps are wiped
    /// on drop (ring's expanded key inside is not: ring offers no way to wipe it).
    key: Zeroizing<KeyPair>,
}

impl fmt::Debug for SimCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The root is public; the key never appears.
        f.debug_struct("SimCa").field("root_sha256", &hex::encode(sha256(&self.cert_der))).finish_non_exhaustive()
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

impl SimCa {
    /// A fresh root: a new P-384 key and a self-signed certificate (basicConstraints CA:true,
    /// keyUsage keyCertSign + cRLSign), valid 2000-01-01 to 2100-01-01 so it never limits
    /// what time a test or a dev deployment runs at.
    pub fn generate() -> Result<Self, AttestError> {
        let rng = SystemRandom::new();
        let key = Zeroizing::new(
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(|e| err(format!("cannot generate CA key: {e}")))?,
        );
        let mut params = CertificateParams::default();
        params.distinguished_name = Self::subject();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
        params.serial_number = Some(random_serial(&rng)?);
        let cert = params.self_signed(&*key).map_err(|e| err(format!("cannot self-sign the CA: {e}")))?;
        Ok(Self { cert_der: cert.der().to_vec(), cert_pem: cert.pem(), key })
    }

    fn subject() -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "sigil-sim root CA");
        dn.push(DnType::OrganizationName, "sigil simulation (not a TEE)");
        dn
    }

    /// Loads a root from its certificate and PKCS#8 key (both PEM). Refuses a certificate that
    /// is not a CA or whose public key is not `key_pem`'s, and any key but P-384.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, AttestError> {
        let key = Zeroizing::new(KeyPair::from_pem(key_pem).map_err(|_| err("sim CA key: not a PKCS#8 PEM key"))?);
        if key.algorithm() != &PKCS_ECDSA_P384_SHA384 {
            return Err(err("sim CA key: not a P-384 key"));
        }
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|_| err("sim CA certificate: not a PEM certificate"))?;
        let cert_der = pem.contents;
        {
            let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
                .map_err(|_| err("sim CA certificate: not an X.509 certificate"))?;
            if !cert.is_ca() {
                return Err(err("sim CA certificate: not a CA (basicConstraints CA:false)"));
            }
            if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
                return Err(err("sim CA: the key does not belong to the certificate"));
            }
        }
        Ok(Self { cert_pem: cert_pem.to_string(), cert_der, key })
    }

    /// Loads the root from `dir` (`sim-root.pem`, `sim-root.key`), or generates one and saves
    /// it there (creating `dir` with mode 0700 if needed), so a restarted simulated enclave
    /// keeps the root its clients pinned. Each file is written to a temporary name, synced
    /// and renamed, so a crash never leaves a truncated key. Only one of the two files present
    /// is an error: silently replacing a key would break every client that pinned its root.
    pub fn load_or_generate(dir: &Path) -> Result<Self, AttestError> {
        let cert_path = dir.join(ROOT_CERT_FILE);
        let key_path = dir.join(ROOT_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert_pem = read_pem(&cert_path)?;
                let key_pem = read_pem(&key_path)?;
                Self::from_pem(&cert_pem, &key_pem).map_err(|e| err(format!("{}: {}", dir.display(), e.0)))
            }
            (false, false) => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
                let ca = Self::generate()?;
                // Key first: a crash in between leaves a key without a certificate, which the
                // next start reports instead of overwriting.
                write_atomically(&key_path, ca.key_pem().as_bytes(), 0o600)?;
                write_atomically(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
                Ok(ca)
            }
            _ => Err(err(format!(
                "{} holds only one of {ROOT_CERT_FILE} and {ROOT_KEY_FILE}; remove it to generate a new sim root",
                dir.display()
            ))),
        }
    }

    /// The root certificate (DER): what a verifier pins to accept this CA's evidence.
    #[must_use]
    pub fn root_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root certificate (PEM).
    #[must_use]
    pub fn root_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The root's private key (PKCS#8 PEM), wiped when dropped.
    #[must_use]
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    /// A second handle on the same root (the attester keeps one to renew its leaf).
    fn try_clone(&self) -> Result<Self, AttestError> {
        Self::from_pem(&self.cert_pem, &self.key_pem())
    }

    /// Issues a leaf for a new attester, valid `[unix_now - 1 h, unix_now + 30 days]`.
    fn issue_leaf(&self, module_id: &str, unix_now: u64, rng: &SystemRandom) -> Result<Leaf, AttestError> {
        let not_before = unix_now.saturating_sub(LEAF_BACKDATE_SECS);
        let not_after =
            unix_now.checked_add(LEAF_LIFETIME_SECS).ok_or_else(|| err(format!("time {unix_now} is out of range")))?;
        let leaf_key = Zeroizing::new(
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)
                .map_err(|e| err(format!("cannot generate leaf key: {e}")))?,
        );
        // rcgen and ring share the PKCS#8 encoding; ring signs the COSE structure (FIXED: the
        // 96-byte r||s that COSE wants, where rcgen's certificates need ASN.1).
        let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, leaf_key.serialized_der(), rng)
            .map_err(|_| err("cannot load the leaf key"))?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, module_id);
        dn.push(DnType::OrganizationName, "sigil simulation (not a TEE)");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = datetime(not_before)?;
        params.not_after = datetime(not_after)?;
        params.serial_number = Some(random_serial(rng)?);
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), &*self.key)
            .map_err(|e| err(format!("cannot use the sim CA: {e}")))?;
        let cert = params
            .signed_by(&*leaf_key, &issuer)
            .map_err(|e| err(format!("cannot issue the leaf certificate: {e}")))?;
        Ok(Leaf { signer, der: cert.der().to_vec(), not_before, not_after })
    }
}

fn read_pem(path: &Path) -> Result<Zeroizing<String>, AttestError> {
    let fail = |e: std::io::Error| err(format!("cannot read {}: {e}", path.display()));
    let len = fs::metadata(path).map_err(fail)?.len();
    if len > MAX_PEM_FILE {
        return Err(err(format!("{} is {len} bytes; expected a PEM file of at most {MAX_PEM_FILE}", path.display())));
    }
    fs::read_to_string(path).map(Zeroizing::new).map_err(fail)
}

fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), AttestError> {
    crate::runtime::files::write_atomically(path, data, mode)
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))
}

/// A leaf certificate and its signing key.
struct Leaf {
    signer: EcdsaKeyPair,
    der: Vec<u8>,
    not_before: u64,
    not_after: u64,
}

/// Produces simulated Nitro documents (see the module docs) signed by its own leaf key,
/// whose certificate [`SimCa`] issued.
pub struct SimAttester {
    /// Kept to renew the leaf before it expires.
    ca: SimCa,
    leaf: Leaf,
    module_id: String,
    pcrs: [[u8; 48]; 3],
    rng: SystemRandom,
}

impl fmt::Debug for SimAttester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimAttester")
            .field("module_id", &self.module_id)
            .field("ca", &self.ca)
            .field("leaf_not_after", &self.leaf.not_after)
            .finish_non_exhaustive()
    }
}

impl SimAttester {
    /// An attester with a fresh module id (`sigil-sim-<16 hex>`) and a fresh leaf issued by
    /// `ca`, valid from `unix_now - 1 h` to `unix_now + 30 days` (renewed automatically when
    /// a document is requested within a day of its expiry, or before its start).
    pub fn new(ca: &SimCa, unix_now: u64) -> Result<Self, AttestError> {
        Self::with_pcrs(ca, unix_now, sim_pcrs())
    }

    /// As [`SimAttester::new`], measured as `pcrs` instead of this build's [`sim_pcrs`]: a
    /// simulated enclave of another build (the sim analogue of another EIF).
    pub fn with_pcrs(ca: &SimCa, unix_now: u64, pcrs: [[u8; 48]; 3]) -> Result<Self, AttestError> {
        let rng = SystemRandom::new();
        let mut id = [0u8; 8];
        rng.fill(&mut id).map_err(|_| err("no randomness for the module id"))?;
        let module_id = format!("sigil-sim-{}", hex::encode(id));
        let leaf = ca.issue_leaf(&module_id, unix_now, &rng)?;
        Ok(Self { ca: ca.try_clone()?, leaf, module_id, pcrs, rng })
    }

    /// The PCR0, PCR1 and PCR2 this attester's documents carry.
    #[must_use]
    pub fn pcrs(&self) -> [[u8; 48]; 3] {
        self.pcrs
    }

    /// The CBOR payload of a document (the field order is the NSM's).
    fn payload(&self, input: &AttestationInput<'_>) -> Result<Vec<u8>, AttestError> {
        let timestamp_ms = input
            .unix_time
            .checked_mul(1000)
            .ok_or_else(|| err(format!("time {} is out of range", input.unix_time)))?;
        let zero = [0u8; 48];
        let pcrs = (0..PCR_COUNT)
            .map(|i| {
                let value = usize::try_from(i).ok().and_then(|i| self.pcrs.get(i)).unwrap_or(&zero);
                (Value::Integer(i.into()), Value::Bytes(value.to_vec()))
            })
            .collect();
        let bytes_or_null = |b: &[u8]| if b.is_empty() { Value::Null } else { Value::Bytes(b.to_vec()) };
        let text = |s: &str| Value::Text(s.to_string());
        let doc = Value::Map(vec![
            (text("module_id"), text(&self.module_id)),
            (text("digest"), text("SHA384")),
            (text("timestamp"), Value::Integer(timestamp_ms.into())),
            (text("pcrs"), Value::Map(pcrs)),
            (text("certificate"), Value::Bytes(self.leaf.der.clone())),
            (text("cabundle"), Value::Array(vec![Value::Bytes(self.ca.root_der().to_vec())])),
            (text("public_key"), bytes_or_null(input.public_key)),
            (text("user_data"), Value::Bytes(input.user_data.to_vec())),
            (text("nonce"), bytes_or_null(input.nonce)),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&doc, &mut out).map_err(|e| err(format!("cannot encode the document: {e}")))?;
        Ok(out)
    }
}

impl Attester for SimAttester {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    fn attest(&mut self, input: &AttestationInput<'_>) -> Result<Evidence, AttestError> {
        let now = input.unix_time;
        if now < self.leaf.not_before || now.saturating_add(LEAF_RENEW_MARGIN_SECS) > self.leaf.not_after {
            self.leaf = self.ca.issue_leaf(&self.module_id, now, &self.rng)?;
        }
        let payload = self.payload(input)?;
        let protected = HeaderBuilder::new().algorithm(iana::Algorithm::ES384).build();
        let (signer, rng) = (&self.leaf.signer, &self.rng);
        let sign1 = CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .try_create_signature(b"", |tbs| {
                signer.sign(rng, tbs).map(|s| s.as_ref().to_vec()).map_err(|_| err("ES384 signing failed"))
            })?
            .build();
        // `to_vec` is the untagged form, as the NSM emits.
        let document = sign1.to_vec().map_err(|e| err(format!("cannot encode COSE_Sign1: {e}")))?;
        Ok(Evidence { platform: Platform::Sim, document, certificates: Vec::new() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use coset::CoseSign1;
    use ring::signature::{ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
    use std::os::unix::fs::PermissionsExt as _;
    use x509_parser::prelude::{FromDer as _, X509Certificate};

    const NOW: u64 = 1_760_000_000;

    fn input<'a>(user_data: &'a [u8; 64], nonce: &'a [u8], public_key: &'a [u8]) -> AttestationInput<'a> {
        AttestationInput { user_data, nonce, public_key, unix_time: NOW }
    }

    fn payload_map(document: &[u8]) -> Vec<(String, Value)> {
        let sign1 = CoseSign1::from_slice(document).unwrap();
        let value: Value = ciborium::from_reader(sign1.payload.as_deref().unwrap()).unwrap();
        value.into_map().unwrap().into_iter().map(|(k, v)| (k.into_text().unwrap(), v)).collect()
    }

    fn field<'a>(map: &'a [(String, Value)], name: &str) -> &'a Value {
        &map.iter().find(|(k, _)| k == name).unwrap().1
    }

    fn cert(der: &[u8]) -> X509Certificate<'_> {
        let (rest, cert) = X509Certificate::from_der(der).unwrap();
        assert!(rest.is_empty());
        cert
    }

    fn assert_issued_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) {
        assert_eq!(child.issuer(), issuer.subject());
        let key = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, issuer.public_key().subject_public_key.data.as_ref());
        key.verify(child.tbs_certificate.as_ref(), child.signature_value.data.as_ref()).unwrap();
    }

    #[test]
    fn document_is_an_untagged_es384_cose_sign1_signed_by_the_leaf() {
        let ca = SimCa::generate().unwrap();
        let mut a = SimAttester::new(&ca, NOW).unwrap();
        assert_eq!(a.platform(), Platform::Sim);
        let ev = a.attest(&input(&[7; 64], b"nonce", b"pk")).unwrap();
        assert_eq!(ev.platform, Platform::Sim);
        assert!(ev.certificates.is_empty());
        // Untagged array of 4; protected header exactly {1: -35}; unprotected header empty.
        assert_eq!(ev.document[0], 0x84);
        let sign1 = CoseSign1::from_slice(&ev.document).unwrap();
        assert_eq!(sign1.protected.original_data.as_deref(), Some(&[0xa1, 0x01, 0x38, 0x22][..]));
        assert_eq!(
            sign1.protected.header.alg,
            Some(coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES384))
        );
        assert!(sign1.unprotected.is_empty());
        assert_eq!(sign1.signature.len(), 96);
        // The signature verifies under the leaf certificate's key over the Sig_structure.
        let map = payload_map(&ev.document);
        let Value::Bytes(leaf_der) = field(&map, "certificate") else { panic!() };
        let leaf = cert(leaf_der);
        let key = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, leaf.public_key().subject_public_key.data.to_vec());
        sign1.verify_signature(b"", |sig, tbs| key.verify(tbs, sig)).unwrap();
        // A flipped payload byte breaks it.
        let mut tampered = sign1.clone();
        tampered.payload.as_mut().unwrap()[10] ^= 1;
        assert!(tampered.verify_signature(b"", |sig, tbs| key.verify(tbs, sig)).is_err());
    }

    #[test]
    fn payload_fields_in_nsm_order() {
        let ca = SimCa::generate().unwrap();
        let mut a = SimAttester::new(&ca, NOW).unwrap();
        let user_data = [0x5a; 64];
        let ev = a.attest(&input(&user_data, b"the nonce", b"the key")).unwrap();
        let map = payload_map(&ev.document);
        let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"]
        );
        let Value::Text(module_id) = field(&map, "module_id") else { panic!() };
        let hex_part = module_id.strip_prefix("sigil-sim-").unwrap();
        assert!(hex_part.len() == 16 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()), "{module_id}");
        assert_eq!(field(&map, "digest"), &Value::Text("SHA384".into()));
        assert_eq!(field(&map, "timestamp"), &Value::Integer((NOW * 1000).into()));
        let Value::Map(pcrs) = field(&map, "pcrs") else { panic!() };
        assert_eq!(pcrs.len(), 16);
        for (i, (k, v)) in pcrs.iter().enumerate() {
            assert_eq!(k, &Value::Integer(i.into()));
            let Value::Bytes(v) = v else { panic!() };
            let expected = if i < 3 { sim_pcrs()[i] } else { [0; 48] };
            assert_eq!(v.as_slice(), expected.as_slice(), "PCR{i}");
        }
        let Value::Array(bundle) = field(&map, "cabundle") else { panic!() };
        assert_eq!(bundle, &[Value::Bytes(ca.root_der().to_vec())]);
        assert_eq!(field(&map, "public_key"), &Value::Bytes(b"the key".to_vec()));
        assert_eq!(field(&map, "user_data"), &Value::Bytes(user_data.to_vec()));
        assert_eq!(field(&map, "nonce"), &Value::Bytes(b"the nonce".to_vec()));

        // Absent optional fields are CBOR null, as the NSM sends them.
        let ev = a.attest(&input(&user_data, b"", b"")).unwrap();
        let map = payload_map(&ev.document);
        assert_eq!(field(&map, "public_key"), &Value::Null);
        assert_eq!(field(&map, "nonce"), &Value::Null);
    }

    /// Kind of a CBOR value, deep enough to compare document shapes.
    fn shape(v: &Value) -> String {
        match v {
            Value::Integer(_) => "int".into(),
            Value::Bytes(b) if b.len() == 48 => "bytes48".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Text(_) => "text".into(),
            Value::Null => "null".into(),
            Value::Array(a) => format!("[{}]", a.iter().map(shape).collect::<Vec<_>>().join(",")),
            Value::Map(m) => {
                format!(
                    "{{{}}}",
                    m.iter().map(|(k, v)| format!("{}:{}", shape(k), shape(v))).collect::<Vec<_>>().join(",")
                )
            }
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn same_shape_as_a_real_nsm_document() {
        let real: &[u8] = include_bytes!("../../../attestation/tests/data/nitro/evervault_2022-10-13.cose");
        let ca = SimCa::generate().unwrap();
        let mut a = SimAttester::new(&ca, NOW).unwrap();
        let ev = a.attest(&input(&[3; 64], &[4; 256], &[5; 32])).unwrap();
        // Same COSE framing up to the payload's length: 84 44 a1 01 38 22 a0 59.
        assert_eq!(ev.document[..8], real[..8]);
        let ours = payload_map(&ev.document);
        let theirs = payload_map(real);
        let keys = |m: &[(String, Value)]| m.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&ours), keys(&theirs));
        for ((name, v), (_, w)) in ours.iter().zip(&theirs) {
            // The real cabundle has the root and intermediates; ours has only the root.
            if name != "cabundle" && shape(w) != "null" {
                assert_eq!(shape(v), shape(w), "{name}");
            }
        }
        // Both leaves are ECDSA P-384 / SHA-384.
        let (Value::Bytes(our_leaf), Value::Bytes(their_leaf)) =
            (field(&ours, "certificate"), field(&theirs, "certificate"))
        else {
            panic!()
        };
        assert_eq!(cert(our_leaf).signature_algorithm.algorithm, cert(their_leaf).signature_algorithm.algorithm);
        assert_eq!(cert(our_leaf).public_key().algorithm, cert(their_leaf).public_key().algorithm);
    }

    #[test]
    fn pcrs_are_distinct_nonzero_and_stable() {
        let p = sim_pcrs();
        assert_eq!(p, sim_pcrs());
        assert!(p.iter().all(|pcr| pcr != &[0; 48]));
        assert!(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
        let ca = SimCa::generate().unwrap();
        assert_eq!(SimAttester::new(&ca, NOW).unwrap().pcrs(), p);
    }

    #[test]
    fn leaf_chains_to_the_root_ca() {
        let ca = SimCa::generate().unwrap();
        let root = cert(ca.root_der());
        assert!(root.is_ca());
        let ku = root.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign());
        assert_issued_by(&root, &root);

        let mut a = SimAttester::new(&ca, NOW).unwrap();
        let ev = a.attest(&input(&[0; 64], b"", b"")).unwrap();
        let map = payload_map(&ev.document);
        let Value::Bytes(leaf_der) = field(&map, "certificate") else { panic!() };
        let leaf = cert(leaf_der);
        assert!(!leaf.is_ca());
        assert_issued_by(&leaf, &root);
        let validity = leaf.validity();
        assert_eq!(validity.not_before.timestamp(), i64::try_from(NOW - 3600).unwrap());
        assert_eq!(validity.not_after.timestamp(), i64::try_from(NOW + 30 * 24 * 3600).unwrap());
        assert!(root.validity().is_valid_at(validity.not_before) && root.validity().is_valid_at(validity.not_after));
    }

    #[test]
    fn leaf_is_renewed_before_it_expires() {
        let ca = SimCa::generate().unwrap();
        let root = cert(ca.root_der());
        let mut a = SimAttester::new(&ca, NOW).unwrap();
        let later = NOW + 30 * 24 * 3600;
        let ev = a.attest(&AttestationInput { unix_time: later, ..input(&[0; 64], b"", b"") }).unwrap();
        let map = payload_map(&ev.document);
        let Value::Bytes(leaf_der) = field(&map, "certificate") else { panic!() };
        let leaf = cert(leaf_der);
        assert_issued_by(&leaf, &root);
        assert_eq!(leaf.validity().not_before.timestamp(), i64::try_from(later - 3600).unwrap());
    }

    #[test]
    fn pem_round_trip_and_mismatched_pairs() {
        let ca = SimCa::generate().unwrap();
        let again = SimCa::from_pem(&ca.root_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.root_der(), ca.root_der());
        // A key that is not the certificate's is refused.
        let other = SimCa::generate().unwrap();
        assert!(SimCa::from_pem(&ca.root_pem(), &other.key_pem()).unwrap_err().0.contains("does not belong"));
        assert!(SimCa::from_pem("junk", &ca.key_pem()).is_err());
        assert!(SimCa::from_pem(&ca.root_pem(), "junk").is_err());
        // A P-256 key is refused.
        let p256 = KeyPair::generate().unwrap();
        assert!(SimCa::from_pem(&ca.root_pem(), &p256.serialize_pem()).unwrap_err().0.contains("P-384"));
    }

    #[test]
    fn load_or_generate_persists_the_root_with_private_key_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sim-ca");
        let ca = SimCa::load_or_generate(&dir).unwrap();
        let mode = |name: &str| fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(ROOT_KEY_FILE), 0o600);
        assert_eq!(mode(ROOT_CERT_FILE), 0o644);
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::read_to_string(dir.join(ROOT_CERT_FILE)).unwrap(), ca.root_pem());
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);

        let reloaded = SimCa::load_or_generate(&dir).unwrap();
        assert_eq!(reloaded.root_der(), ca.root_der());
        // Leaves issued by the reloaded CA chain to the same root.
        let mut a = SimAttester::new(&reloaded, NOW).unwrap();
        let ev = a.attest(&input(&[1; 64], b"", b"")).unwrap();
        let map = payload_map(&ev.document);
        let Value::Bytes(leaf_der) = field(&map, "certificate") else { panic!() };
        assert_issued_by(&cert(leaf_der), &cert(ca.root_der()));

        // Half a pair is refused rather than overwritten.
        fs::remove_file(dir.join(ROOT_CERT_FILE)).unwrap();
        assert!(SimCa::load_or_generate(&dir).unwrap_err().0.contains("only one"));
        assert!(dir.join(ROOT_KEY_FILE).exists());
    }

    #[test]
    fn debug_never_shows_keys() {
        let ca = SimCa::generate().unwrap();
        let a = SimAttester::new(&ca, NOW).unwrap();
        let key_pem = ca.key_pem();
        let body: String = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for shown in [format!("{ca:?}"), format!("{a:?}"), format!("{:?}", &a as &dyn Attester)] {
            assert!(!shown.contains(&body[..40]) && !shown.contains("PRIVATE"), "{shown}");
        }
    }
}
