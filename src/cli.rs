//! The `sigil verify`, `sigil attest` and `sigil policy` commands: how an operator checks
//! evidence, checks a live signer, and turns a known-good build into a policy file.
//!
//! Evidence files come in three shapes, recognised by content:
//! - the JSON of `GET /dev/attestation`: evidence plus the
//!   handshake values it is bound to, so the binding is checked too;
//! - a raw Nitro attestation document (COSE_Sign1, first byte `0x84` or tag `0xd2`);
//! - a raw 1184-byte SEV-SNP report, with `--cert` for its VCEK/VLEK (and optionally ASK, ARK).

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding};
use sigil_attestation::nitro::{self, NitroPolicy};
use sigil_attestation::snp::{self, SnpPolicy};
use sigil_attestation::{Measurement, Policy, Verified, policy::SimPolicy};
use sigil_protocol::{AttestRequest, Attestation, Bytes, Evidence, Platform};

use crate::client::Client;

pub mod custody;

/// Largest evidence file read (a Nitro document is ~5 KiB; JSON with base64 a bit more).
const MAX_EVIDENCE_FILE: u64 = 256 * 1024;
/// Largest certificate or policy file read.
const MAX_SMALL_FILE: u64 = 64 * 1024;
/// An SEV-SNP `ATTESTATION_REPORT` is exactly this long.
const SNP_REPORT_LEN: usize = 0x4A0;

/// `sigil verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The policy file the evidence must satisfy.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Verify as of this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX")]
    pub at: Option<u64>,
    /// SNP only: the VCEK/VLEK (then optionally ASK and ARK), DER or PEM, in order.
    #[arg(long = "cert", value_name = "FILE")]
    pub certs: Vec<PathBuf>,
    /// The evidence file.
    pub evidence: PathBuf,
}

/// `sigil attest`: where the signer is, the policy it must satisfy, the TLS roots.
pub type AttestArgs = custody::Target;

/// `sigil policy`.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// The evidence of a known-good build.
    #[arg(long, value_name = "EVIDENCE")]
    pub from: PathBuf,
    /// Verify the chain as of this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX")]
    pub at: Option<u64>,
    /// SNP only: the VCEK/VLEK (then optionally ASK and ARK), DER or PEM, in order.
    #[arg(long = "cert", value_name = "FILE")]
    pub certs: Vec<PathBuf>,
    /// Accept debug-mode evidence (its measurement proves nothing about the code running).
    #[arg(long)]
    pub allow_debug: bool,
}

pub(crate) fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {what} {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    if len > limit {
        return Err(format!("{what} {} is {len} bytes; expected at most {limit}", path.display()));
    }
    // The size is only a hint: a pipe, a device or `/proc` file says 0, and a file may grow.
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(format!("{what} {} is more than {limit} bytes; expected at most {limit}", path.display()));
    }
    Ok(bytes)
}

/// Reads and validates a policy file.
pub fn load_policy(path: &Path) -> Result<Policy, String> {
    let bytes = read_limited(path, MAX_SMALL_FILE, "policy")?;
    let text = String::from_utf8(bytes).map_err(|_| format!("policy {} is not UTF-8", path.display()))?;
    Policy::from_toml(&text).map_err(|e| format!("policy {}: {e}", path.display()))
}

fn now_or(at: Option<u64>) -> u64 {
    at.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// Evidence read from a file, with the handshake it claims when the file says.
#[derive(Debug)]
pub struct EvidenceFile {
    /// The evidence.
    pub evidence: Evidence,
    /// From JSON: the attestation answer and the request it answered (nonce only).
    pub bound: Option<(Attestation, AttestRequest)>,
}

fn cert_der(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.starts_with(b"-----BEGIN") {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(&bytes).map_err(|_| "certificate is not valid PEM".to_owned())?;
        return Ok(pem.contents);
    }
    Ok(bytes)
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> Result<&'a str, String> {
    v.get(name).and_then(serde_json::Value::as_str).ok_or_else(|| format!("evidence JSON: missing string {name:?}"))
}

fn hex_field<const N: usize>(v: &serde_json::Value, name: &str) -> Result<[u8; N], String> {
    let s = field(v, name)?;
    let bytes = hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|_| format!("evidence JSON: {name} not hex"))?;
    bytes.try_into().map_err(|_| format!("evidence JSON: {name} must be {N} bytes"))
}

fn b64(s: &str, name: &str) -> Result<Vec<u8>, String> {
    Base64::decode_vec(s).map_err(|_| format!("evidence JSON: {name} is not base64"))
}

/// Parses the JSON of `GET /dev/attestation`.
pub fn parse_evidence_json(bytes: &[u8]) -> Result<EvidenceFile, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("evidence JSON: {e}"))?;
    let platform = Platform::from_label(field(&v, "platform")?).ok_or("evidence JSON: unknown platform")?;
    let ev = v.get("evidence").ok_or("evidence JSON: missing \"evidence\"")?;
    let document = b64(field(ev, "document")?, "document")?;
    let certificates = match ev.get("certificates").and_then(serde_json::Value::as_array) {
        Some(list) => list
            .iter()
            .map(|c| {
                c.as_str()
                    .ok_or_else(|| "evidence JSON: certificate not a string".to_owned())
                    .and_then(|s| b64(s, "certificate"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let evidence = Evidence { platform, document, certificates };
    let protocol_version = v
        .get("protocol_version")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or("evidence JSON: missing protocol_version")?;
    let attestation = Attestation {
        protocol_version,
        enclave_pub: None,
        signing_pub: Bytes(hex_field::<32>(&v, "signing_pub")?),
        k3_fingerprint: Bytes(hex_field::<32>(&v, "k3_fingerprint")?),
        evidence: evidence.clone(),
    };
    let request = AttestRequest { client_nonce: Bytes(hex_field::<32>(&v, "nonce")?), client_pub: None };
    Ok(EvidenceFile { evidence, bound: Some((attestation, request)) })
}

/// Whether a Nitro-format document's `cabundle` starts at the AWS Nitro root (unverified: this
/// only picks the platform to verify it as).
fn from_aws_root(document: &[u8]) -> bool {
    nitro::parse(document).is_ok_and(|d| d.cabundle.first().is_some_and(|r| r.as_slice() == nitro::aws_nitro_root_g1()))
}

/// Reads an evidence file in any of the three shapes.
pub fn read_evidence(path: &Path, certs: &[PathBuf], sim: bool) -> Result<EvidenceFile, String> {
    let bytes = read_limited(path, MAX_EVIDENCE_FILE, "evidence")?;
    let trimmed = bytes.iter().position(|b| !b.is_ascii_whitespace()).map_or(&bytes[..], |i| &bytes[i..]);
    if trimmed.starts_with(b"{") {
        if !certs.is_empty() {
            return Err("--cert is for raw SNP reports; JSON evidence carries its certificates".into());
        }
        return parse_evidence_json(trimmed);
    }
    let certificates = certs
        .iter()
        .map(|p| read_limited(p, MAX_SMALL_FILE, "certificate").and_then(cert_der))
        .collect::<Result<Vec<_>, _>>()?;
    let platform = match bytes.first() {
        // A raw document does not say whether it is real: one whose bundle starts at the AWS
        // root is Nitro, anything else is sim when sim may be meant. (Either way the chain is
        // then verified against the root of the platform chosen here.)
        Some(0x84 | 0xd2) if sim && !from_aws_root(&bytes) => Platform::Sim,
        Some(0x84 | 0xd2) => Platform::Nitro,
        _ if bytes.len() == SNP_REPORT_LEN => Platform::Snp,
        _ => return Err(format!("{}: not a Nitro document, an SNP report or evidence JSON", path.display())),
    };
    if platform != Platform::Snp && !certificates.is_empty() {
        return Err("--cert is only for SNP reports".into());
    }
    Ok(EvidenceFile { evidence: Evidence { platform, document: bytes, certificates }, bound: None })
}

/// A human summary of verified evidence.
#[must_use]
pub fn summary(v: &Verified) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "verified: {} evidence{}", v.platform.label(), if v.debug { " (DEBUG MODE)" } else { "" });
    match &v.measurement {
        Measurement::Pcrs(pcrs) => {
            for (i, value) in pcrs.iter().filter(|(i, _)| [0u8, 1, 2].contains(i)) {
                let _ = writeln!(s, "  PCR{i}: {}", hex::encode(value));
            }
        }
        Measurement::Snp(m) => {
            let _ = writeln!(s, "  measurement: {}", hex::encode(m));
        }
    }
    if let Some(r) = &v.snp {
        let t = r.reported_tcb;
        let _ = writeln!(
            s,
            "  tcb: bootloader {} tee {} snp {} microcode {}; product {}",
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode,
            r.product.map_or("?", |p| p.name())
        );
    }
    if let Some(ts) = v.timestamp_ms {
        let _ = writeln!(s, "  timestamp: {ts} ms");
    }
    let _ = writeln!(s, "  root sha256: {}", hex::encode(v.root_sha256));
    match v.k3_fingerprint {
        Some(fp) if fp == [0; 32] => {
            let _ = writeln!(s, "  k3 fingerprint: none (unprovisioned)");
        }
        Some(fp) => {
            let _ = writeln!(s, "  k3 fingerprint: 0x{}", hex::encode(fp));
        }
        None => {
            let _ = writeln!(s, "  user data: {}", hex::encode(v.user_data));
        }
    }
    s
}

/// `sigil verify`: prints the summary, or fails with the verifier's typed error.
pub fn verify(args: &VerifyArgs) -> Result<String, String> {
    let policy = load_policy(&args.policy)?;
    let file = read_evidence(&args.evidence, &args.certs, policy.allows(Platform::Sim))?;
    let now = now_or(args.at);
    let verified = match &file.bound {
        Some((attestation, request)) => sigil_attestation::verify_attestation(attestation, request, now, &policy),
        None => sigil_attestation::verify_evidence(&file.evidence, now, &policy),
    }
    .map_err(|e| format!("evidence rejected: {e}"))?;
    let mut out = summary(&verified);
    if file.bound.is_none() {
        out.push_str("  (raw evidence: its binding to a handshake was not checked)\n");
        if policy.k3_fingerprint.is_some() {
            out.push_str(
                "  (raw evidence carries no K3 fingerprint: the policy's k3_fingerprint pin was not checked)\n",
            );
        }
    }
    Ok(out)
}

/// `sigil attest`: a fresh handshake with a live signer, verified.
pub async fn attest(args: &AttestArgs) -> Result<String, String> {
    let policy = load_policy(&args.trust.policy)?;
    let options = custody::options(&args.trust)?;
    let client = Client::connect(&args.url, policy, options).await.map_err(|e| e.to_string())?;
    let verified = client.verified().await.ok_or("no session")?;
    Ok(summary(&verified))
}

/// `sigil policy --from`: verifies the evidence's chain (against the pinned roots; for sim,
/// against the root it carries) and writes the policy pinning what it shows.
pub fn policy_from(args: &PolicyArgs) -> Result<String, String> {
    let file = read_evidence(&args.from, &args.certs, cfg!(feature = "sim"))?;
    let now = now_or(args.at);
    let ev = &file.evidence;
    let refuse = |e: String| format!("evidence rejected: {e}");
    let mut policy = Policy {
        platforms: vec![ev.platform],
        max_age_secs: 300,
        allow_debug: args.allow_debug,
        k3_fingerprint: None,
        nitro: None,
        snp: None,
        sim: None,
    };
    let open = NitroPolicy { pcrs: Default::default(), max_age_secs: None, allow_debug: args.allow_debug };
    let pin = |doc: &nitro::NitroDocument| NitroPolicy {
        pcrs: doc.pcrs.iter().filter(|(i, _)| [0u8, 1, 2].contains(i)).map(|(i, v)| (*i, v.clone())).collect(),
        max_age_secs: Some(300),
        allow_debug: args.allow_debug,
    };
    match ev.platform {
        Platform::Nitro => {
            let doc = nitro::verify(&ev.document, nitro::aws_nitro_root_g1(), now, &open)
                .map_err(|e| refuse(e.to_string()))?;
            policy.nitro = Some(pin(&doc));
        }
        Platform::Snp => {
            let open = SnpPolicy {
                products: Vec::new(),
                measurement: None,
                min_tcb: None,
                allow_debug: args.allow_debug,
                allow_vlek: true,
            };
            let report = snp::verify(&ev.document, &ev.certificates, now, &open).map_err(|e| refuse(e.to_string()))?;
            policy.snp = Some(SnpPolicy {
                products: report.product.into_iter().collect(),
                measurement: Some(report.measurement),
                min_tcb: Some(report.reported_tcb),
                allow_debug: args.allow_debug,
                allow_vlek: report.signer == Some(snp::Signer::Vlek),
            });
        }
        Platform::Sim if cfg!(feature = "sim") => {
            // The simulation has no pinned root: the one it carries is what gets pinned.
            let parsed = nitro::parse(&ev.document).map_err(|e| refuse(e.to_string()))?;
            let root = parsed.cabundle.first().cloned().ok_or_else(|| refuse("no root in the document".into()))?;
            let doc = nitro::verify(&ev.document, &root, now, &open).map_err(|e| refuse(e.to_string()))?;
            policy.sim = Some(SimPolicy { root_der: root, nitro: pin(&doc) });
        }
        other => return Err(format!("{} evidence cannot be turned into a policy by this build", other.label())),
    }
    if let Some((attestation, request)) = &file.bound {
        // JSON evidence also shows the K3 it was made with; pin it when there is one.
        if attestation.k3_fingerprint.0 != [0; 32] {
            policy.k3_fingerprint = Some(attestation.k3_fingerprint.0);
        }
        // And it must really be bound to what the JSON claims.
        sigil_attestation::verify_attestation(attestation, request, now, &policy).map_err(|e| refuse(e.to_string()))?;
    }
    Ok(policy.to_toml())
}
