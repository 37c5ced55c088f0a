//! `sigil-enclave`: the enclave runtime. Inside a TEE it listens on vsock; for development
//! and tests it listens on a Unix socket. K3 comes from a file or the environment until the
//! attested provisioning ceremony lands. `--attester` picks where attestation evidence comes
//! from; each platform's attester exists only in builds with its feature.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, ValueEnum};
use sigil_enclave::attester::Attester;
use sigil_enclave::jwt::BrokerKey;
use sigil_enclave::runtime::{unix, vsock};
use sigil_enclave::{Config, Enclave, K3};
use zeroize::Zeroizing;

/// Environment variables K3 may come from, in order: sigil's own name, then the old signer's.
const K3_ENV_VARS: [&str; 2] = ["SIGIL_K3", "DEV_KEY_SERVICE_MASTER_SECRET"];
/// A K3 file holds 64 hex digits and perhaps `0x` and a newline; anything larger is not one.
const MAX_K3_FILE: u64 = 1024;
/// A PEM P-256 public key is ~180 bytes.
const MAX_KEY_FILE: u64 = 16 * 1024;

#[derive(Debug, Parser)]
#[command(name = "sigil-enclave", version, about = "sigil enclave runtime: holds K3, serves derive/sign/KEK")]
struct Args {
    /// Where to listen: `vsock://ANY:PORT` (or `vsock://CID:PORT`) inside a TEE,
    /// `unix:///path/to.sock` for development and tests.
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// The broker's ES256 public key (SPKI PEM) every request's JWT must verify under.
    #[arg(long, value_name = "FILE")]
    broker_pubkey: PathBuf,
    /// File holding K3 as 64 hex digits (optional `0x`). Without it, `SIGIL_K3` or
    /// `DEV_KEY_SERVICE_MASTER_SECRET` is used; without those the enclave starts unprovisioned.
    #[arg(long, value_name = "FILE")]
    k3_file: Option<PathBuf>,
    /// The epoch (`key_version`) the K3 is loaded as.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    key_version: u8,
    /// Where attestation evidence comes from. `none`: attestation requests fail with
    /// `attestation_unavailable`. `sim`: documents signed by a test CA (development only;
    /// needs `--sim-ca`). `nitro`: `/dev/nsm`. `snp`: `/dev/sev-guest`. Each needs a build
    /// with the feature of the same name.
    #[arg(long, value_enum, default_value_t = AttesterKind::None, value_name = "KIND")]
    attester: AttesterKind,
    /// Directory of the simulated attester's root CA (`sim-root.pem`, `sim-root.key`):
    /// loaded if present, generated otherwise, so a restarted enclave keeps the root its
    /// clients pinned. Required with `--attester sim`.
    #[arg(long, value_name = "DIR")]
    sim_ca: Option<PathBuf>,
}

/// The values of `--attester`. Every build accepts all of them on the command line so that a
/// build lacking one can say which feature is missing instead of "invalid value".
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AttesterKind {
    /// No attester.
    None,
    /// Simulated (feature `sim`).
    Sim,
    /// AWS Nitro Enclaves (feature `nitro`).
    Nitro,
    /// AMD SEV-SNP (feature `snp`).
    Snp,
}

impl AttesterKind {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sim => "sim",
            Self::Nitro => "nitro",
            Self::Snp => "snp",
        }
    }
}

/// The error for an attester this build was compiled without.
#[allow(dead_code, reason = "unused in a build with every attester feature")]
fn not_built(kind: AttesterKind) -> String {
    let name = kind.name();
    format!("this build has no {name} attester; rebuild with --features {name}")
}

/// The attester `--attester` asks for, or `None` for `--attester none`.
fn make_attester(args: &Args) -> Result<Option<Box<dyn Attester>>, String> {
    if args.sim_ca.is_some() && args.attester != AttesterKind::Sim {
        return Err("--sim-ca is only used with --attester sim".into());
    }
    match args.attester {
        AttesterKind::None => Ok(None),
        AttesterKind::Sim => sim_attester(args.sim_ca.as_deref()).map(Some),
        AttesterKind::Nitro => nitro_attester().map(Some),
        AttesterKind::Snp => snp_attester().map(Some),
    }
}

#[cfg(feature = "sim")]
fn sim_attester(dir: Option<&Path>) -> Result<Box<dyn Attester>, String> {
    use sigil_enclave::attester::sim::{SimAttester, SimCa};
    use std::time::{SystemTime, UNIX_EPOCH};

    let dir = dir.ok_or("--attester sim needs --sim-ca DIR (where the simulated root CA is kept)")?;
    let ca = SimCa::load_or_generate(dir).map_err(|e| format!("--sim-ca {}: {e}", dir.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| format!("system clock: {e}"))?.as_secs();
    let attester = SimAttester::new(&ca, now).map_err(|e| e.to_string())?;
    let root_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, ca.root_der()));
    tracing::warn!(
        sim_ca = %dir.join(sigil_enclave::attester::sim::ROOT_CERT_FILE).display(),
        %root_sha256,
        "simulated attestation: evidence is signed by a test CA, not by a TEE; no production verifier accepts it"
    );
    Ok(Box::new(attester))
}

#[cfg(not(feature = "sim"))]
fn sim_attester(_dir: Option<&Path>) -> Result<Box<dyn Attester>, String> {
    Err(not_built(AttesterKind::Sim))
}

#[cfg(feature = "nitro")]
fn nitro_attester() -> Result<Box<dyn Attester>, String> {
    let attester = sigil_enclave::attester::nitro::NitroAttester::new().map_err(|e| e.to_string())?;
    tracing::info!("attestation: AWS Nitro (/dev/nsm)");
    Ok(Box::new(attester))
}

#[cfg(not(feature = "nitro"))]
fn nitro_attester() -> Result<Box<dyn Attester>, String> {
    Err(not_built(AttesterKind::Nitro))
}

#[cfg(feature = "snp")]
fn snp_attester() -> Result<Box<dyn Attester>, String> {
    let attester = sigil_enclave::attester::snp::SnpAttester::new().map_err(|e| e.to_string())?;
    tracing::info!("attestation: AMD SEV-SNP (/dev/sev-guest)");
    Ok(Box::new(attester))
}

#[cfg(not(feature = "snp"))]
fn snp_attester() -> Result<Box<dyn Attester>, String> {
    Err(not_built(AttesterKind::Snp))
}

fn main() -> ExitCode {
    sigil_enclave::runtime::init_logging();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sigil-enclave: {msg}");
            ExitCode::from(2)
        }
    }
}

fn read_small(path: &PathBuf, limit: u64, what: &str) -> Result<Zeroizing<String>, String> {
    let len = std::fs::metadata(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?.len();
    if len > limit {
        return Err(format!("{what} {} is {len} bytes; expected at most {limit}", path.display()));
    }
    std::fs::read_to_string(path).map(Zeroizing::new).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn load_k3(args: &Args) -> Result<Option<K3>, String> {
    if let Some(path) = &args.k3_file {
        let text = read_small(path, MAX_K3_FILE, "K3 file")?;
        return K3::from_hex(&text).map(Some).map_err(|e| format!("K3 file {}: {e}", path.display()));
    }
    for var in K3_ENV_VARS {
        if let Ok(value) = std::env::var(var) {
            let value = Zeroizing::new(value);
            return K3::from_hex(&value).map(Some).map_err(|e| format!("{var}: {e}"));
        }
    }
    Ok(None)
}

/// Where `--listen` points.
enum ListenAddr {
    Unix(PathBuf),
    Vsock(vsock::VsockAddr),
}

fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(format!("--listen {s}: expected unix:///path"));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = s.strip_prefix("vsock://") {
        return vsock::parse_addr(rest).map(ListenAddr::Vsock).map_err(|e| format!("--listen {s}: {e}"));
    }
    Err(format!("--listen {s}: expected vsock://ANY:PORT, vsock://CID:PORT or unix:///path"))
}

fn run(args: Args) -> Result<(), String> {
    let listen = parse_listen(&args.listen)?;
    // Before anything else that may take a while: a wrong `--attester` is a configuration
    // error worth reporting at once.
    let attester = make_attester(&args)?;
    let pem = read_small(&args.broker_pubkey, MAX_KEY_FILE, "broker key")?;
    let broker_key =
        BrokerKey::from_spki_pem(&pem).map_err(|e| format!("broker key {}: {e}", args.broker_pubkey.display()))?;
    let mut enclave = Enclave::new(Config::new(broker_key));
    match attester {
        Some(attester) => enclave.set_attester(attester),
        None => tracing::info!("no attester (--attester none): attestation requests will be refused"),
    }
    match load_k3(&args)? {
        Some(k3) => {
            tracing::info!(key_version = args.key_version, k3_fingerprint = %hex::encode(k3.fingerprint()), "K3 loaded");
            enclave.load_k3(args.key_version, k3);
        }
        None => tracing::warn!("no K3 given: starting unprovisioned; every signing request gets signer_disabled"),
    }
    let enclave = Arc::new(Mutex::new(enclave));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    rt.block_on(async move {
        let cannot_listen = |e| format!("cannot listen on {}: {e}", args.listen);
        let served = match listen {
            ListenAddr::Unix(path) => {
                let listener = unix::Listener::bind(&path).await.map_err(cannot_listen)?;
                tracing::info!(listen = %args.listen, "sigil-enclave listening");
                listener.serve(enclave, sigil_enclave::runtime::shutdown_signal()).await
            }
            ListenAddr::Vsock(addr) => {
                let listener = vsock::Listener::bind(addr).map_err(cannot_listen)?;
                tracing::info!(listen = %args.listen, "sigil-enclave listening");
                listener.serve(enclave, sigil_enclave::runtime::shutdown_signal()).await
            }
        };
        served.map_err(|e| format!("listener failed: {e}"))?;
        tracing::info!("shutting down");
        Ok(())
    })
}
