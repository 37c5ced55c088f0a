//! The custody commands (SPEC §6): `sigil provision`, `sigil replicate`, `sigil retire` and
//! `sigil custody`. Each verifies the enclave's evidence against a policy before anything is
//! sent; K3 travels only HPKE-sealed to an attested key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sigil_enclave::K3;
use sigil_protocol::CustodyStatus;
use zeroize::Zeroizing;

use super::{MAX_SMALL_FILE, load_policy, read_limited};
use crate::client::{self, Client, ClientOptions};

/// A K3 file holds 64 hex digits (optional `0x`, surrounding whitespace): the format of the
/// old signer's `DEV_KEY_SERVICE_MASTER_SECRET`.
const MAX_K3_FILE: u64 = 1024;

/// How to trust a signer: the policy its enclave must satisfy, and what lets TLS connect.
#[derive(Debug, Clone, clap::Args)]
pub struct Trust {
    /// The policy file the enclave must satisfy.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Extra trusted TLS roots (PEM), e.g. `sigil dev`'s `tls-cert.pem` (repeatable). Trust in
    /// the enclave comes from attestation; this only lets TLS connect.
    #[arg(long = "tls-ca", alias = "ca-cert", value_name = "FILE")]
    pub tls_ca: Vec<PathBuf>,
    /// Verify as of this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX")]
    pub at: Option<u64>,
}

/// Where a signer is and how to trust it.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The signer's base URL, e.g. `https://127.0.0.1:8092`.
    #[arg(long)]
    pub url: String,
    /// Policy and TLS roots.
    #[command(flatten)]
    pub trust: Trust,
}

/// `sigil provision`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProvisionArgs {
    /// The signer to provision.
    #[command(flatten)]
    pub target: Target,
    /// File holding K3 as 64 hex digits (optional `0x`): a `DEV_KEY_SERVICE_MASTER_SECRET`
    /// value imports the old signer's K3, giving the same wallets and KEKs.
    #[arg(long, value_name = "PATH")]
    pub k3_file: PathBuf,
    /// The epoch to load it as (1..=255; 1 is the old signer's).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    pub key_version: u8,
    /// When the enclave already holds K3 (adding an epoch): the K3 file of a loaded epoch,
    /// as proof that the operator holds it (custody belongs to whoever holds K3).
    #[arg(long, value_name = "PATH", requires = "proof_key_version")]
    pub proof_k3_file: Option<PathBuf>,
    /// The epoch of `--proof-k3-file`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..), requires = "proof_k3_file")]
    pub proof_key_version: Option<u8>,
}

/// `sigil retire`.
#[derive(Debug, Clone, clap::Args)]
pub struct RetireArgs {
    /// The signer.
    #[command(flatten)]
    pub target: Target,
    /// The K3 of the epoch being retired (proof that it can be provisioned again).
    #[arg(long, value_name = "PATH")]
    pub k3_file: PathBuf,
    /// The epoch to retire.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..))]
    pub key_version: u8,
}

/// `sigil replicate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicateArgs {
    /// The signer that holds K3.
    #[arg(long)]
    pub from: String,
    /// The signer to receive it.
    #[arg(long)]
    pub to: String,
    /// The policy both enclaves must satisfy (the enclaves also check each other: same
    /// platform and measurement), and the TLS roots of either signer.
    #[command(flatten)]
    pub trust: Trust,
}

/// Reads a K3 file (never echoing its content in an error).
pub fn read_k3(path: &Path) -> Result<K3, String> {
    let bytes = Zeroizing::new(read_limited(path, MAX_K3_FILE, "K3 file")?);
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("K3 file {}: not text", path.display()))?;
    K3::from_hex(text).map_err(|e| format!("K3 file {}: {e}", path.display()))
}

/// Client options from `trust`: its TLS roots as one PEM bundle, its verification time.
pub fn options(trust: &Trust) -> Result<ClientOptions, String> {
    let mut bundle = Vec::new();
    for path in &trust.tls_ca {
        bundle.extend_from_slice(&read_limited(path, MAX_SMALL_FILE, "TLS CA certificate")?);
        bundle.push(b'\n');
    }
    let ca_cert_pem = (!bundle.is_empty()).then_some(bundle);
    Ok(ClientOptions { ca_cert_pem, now_unix: trust.at, ..ClientOptions::default() })
}

/// Connects to `url`, verifying its evidence against `policy_path`. With `any_k3`, the
/// policy's K3 fingerprint pin is not applied (the enclave may hold none yet).
async fn connect(url: &str, trust: &Trust, any_k3: bool) -> Result<Client, String> {
    let options = options(trust)?;
    let mut policy = load_policy(&trust.policy)?;
    if any_k3 {
        policy.k3_fingerprint = None;
    }
    Client::connect(url, policy, options).await.map_err(|e| format!("{url}: {e}"))
}

/// A human summary of custody state.
#[must_use]
pub fn describe(status: &CustodyStatus) -> String {
    let mut out = String::new();
    let current = status.current_key_version.map_or_else(|| "none (not provisioned)".to_owned(), |v| v.to_string());
    let _ = writeln!(out, "current epoch: {current}");
    for e in &status.epochs {
        let state = if e.durable { "durable" } else { "pending (not served until its sealed blob is stored)" };
        let _ = writeln!(
            out,
            "epoch {}: K3 fingerprint 0x{} ({state})",
            e.epoch.key_version,
            hex::encode(e.epoch.k3_fingerprint.0)
        );
    }
    let sealer = status.sealer.map_or("none (K3 lives in memory only)", |p| p.label());
    let _ = writeln!(out, "sealing: {sealer}");
    if let Some(reason) = &status.reprovision {
        let _ = writeln!(out, "reprovision_required: {reason}");
        let _ = writeln!(out, "  recover: {}", sigil_host::custody::REPROVISION_HINT);
    }
    out
}

/// `sigil provision`.
pub async fn provision(args: &ProvisionArgs) -> Result<String, String> {
    let k3 = read_k3(&args.k3_file)?;
    let proof = args.proof_k3_file.as_deref().map(read_k3).transpose()?;
    let proof = proof.as_ref().zip(args.proof_key_version).map(|(k, v)| (v, k));
    let client = connect(&args.target.url, &args.target.trust, true).await?;
    let status = client.provision(args.key_version, &k3, proof).await.map_err(|e| e.to_string())?;
    Ok(format!(
        "provisioned epoch {} (K3 fingerprint 0x{}); pin it in policies as k3_fingerprint\n{}",
        args.key_version,
        hex::encode(k3.fingerprint()),
        describe(&status)
    ))
}

/// `sigil retire`.
pub async fn retire(args: &RetireArgs) -> Result<String, String> {
    let k3 = read_k3(&args.k3_file)?;
    let client = connect(&args.target.url, &args.target.trust, true).await?;
    let status = client.retire(args.key_version, &k3).await.map_err(|e| e.to_string())?;
    Ok(format!("retired epoch {}\n{}", args.key_version, describe(&status)))
}

/// `sigil custody`: the enclave's custody state, through an attested session.
pub async fn status(args: &Target) -> Result<String, String> {
    let client = connect(&args.url, &args.trust, true).await?;
    let status = client.custody_status().await.map_err(|e| e.to_string())?;
    Ok(describe(&status))
}

/// `sigil replicate`.
pub async fn replicate(args: &ReplicateArgs) -> Result<String, String> {
    let from = connect(&args.from, &args.trust, false).await?;
    let to = connect(&args.to, &args.trust, true).await?;
    let status = client::replicate(&from, &to).await.map_err(|e| e.to_string())?;
    Ok(format!("replicated {} -> {}\n{}", args.from, args.to, describe(&status)))
}
