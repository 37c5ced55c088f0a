//! `sigil-enclave`: the enclave runtime. Inside a TEE it listens on vsock; for development
//! and tests it listens on a Unix socket. It normally starts unprovisioned and receives K3
//! from `sigil provision` (inside an attested session), from a peer (`sigil replicate`) or
//! from its host's sealed blob; a K3 file or environment variable is also accepted, for
//! migration and tests. `--attester` picks the platform (evidence, sealing key, peer
//! verification); each platform exists only in builds with its feature.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, ValueEnum};
use sigil_enclave::attester::Attester;
use sigil_enclave::jwt::BrokerKey;
use sigil_enclave::peer::PeerVerifier;
use sigil_enclave::runtime::peer::SameMeasurement;
use sigil_enclave::runtime::{unix, vsock};
use sigil_enclave::sealer::Sealer;
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
    /// Pin the K3 of an epoch by fingerprint, `KEY_VERSION:HEX` (repeatable): provisioning,
    /// replication or a sealed blob with another K3 for that epoch is refused. Put it in the
    /// measured configuration so a host cannot swap in another deployment's blob.
    #[arg(long = "expect-k3", value_name = "V:FINGERPRINT", value_parser = parse_expect)]
    expect_k3: Vec<(u8, [u8; 32])>,
    /// Nitro: seal K3 for restarts under this AWS KMS key (a full key ARN, not an alias). The
    /// key policy must condition `kms:GenerateDataKey` and `kms:Decrypt` on this image's PCRs
    /// (docs/OPERATIONS.md). Without it a Nitro enclave keeps K3 in memory only.
    #[arg(long, value_name = "ARN", requires = "kms_region")]
    kms_key_arn: Option<String>,
    /// The KMS key's region (`--kms-key-arn`).
    #[arg(long, value_name = "REGION", requires = "kms_key_arn")]
    kms_region: Option<String>,
    /// The parent's vsock port where `vsock-proxy` forwards to `kms.<region>.amazonaws.com:443`.
    #[arg(long, value_name = "PORT", default_value_t = 8000)]
    kms_proxy_port: u32,
    /// The parent's vsock port where `vsock-proxy` forwards to the instance metadata service
    /// (`169.254.169.254:80`), for the instance role's credentials.
    #[arg(long, value_name = "PORT", default_value_t = 8002)]
    imds_proxy_port: u32,
}

fn parse_expect(s: &str) -> Result<(u8, [u8; 32]), String> {
    let (v, fp) = s.split_once(':').ok_or("expected KEY_VERSION:FINGERPRINT")?;
    let v: u8 = v.parse().map_err(|_| format!("{v}: not a key version (1..=255)"))?;
    if v == 0 {
        return Err("key version 0 is reserved".into());
    }
    let fp = fp.strip_prefix("0x").unwrap_or(fp);
    let mut out = [0u8; 32];
    hex::decode_to_slice(fp, &mut out).map_err(|_| "the fingerprint is 64 hex digits".to_owned())?;
    Ok((v, out))
}

/// What a platform gives the enclave besides entropy and time.
struct PlatformParts {
    attester: Box<dyn Attester>,
    sealer: Option<Box<dyn Sealer>>,
    verifier: Option<Box<dyn PeerVerifier>>,
}

fn unix_now() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|e| format!("system clock: {e}"))
}

/// The peer verifier, built from this enclave's own evidence; `None` (with the reason
/// logged) when that is impossible, e.g. in debug mode: replication is then refused.
fn verifier_for(attester: &mut dyn Attester, sim_root: Option<&[u8]>) -> Result<Option<SameMeasurement>, String> {
    match SameMeasurement::from_attester(attester, unix_now()?, sim_root) {
        Ok(v) => {
            tracing::info!(measurement = %hex::encode(v.measurement()), "peer verification: same platform and measurement only");
            Ok(Some(v))
        }
        Err(e) => {
            tracing::warn!(reason = %e, "replication disabled");
            Ok(None)
        }
    }
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

/// The platform `--attester` asks for, or `None` for `--attester none`.
fn make_platform(args: &Args) -> Result<Option<PlatformParts>, String> {
    if args.sim_ca.is_some() && args.attester != AttesterKind::Sim {
        return Err("--sim-ca is only used with --attester sim".into());
    }
    if args.kms_key_arn.is_some() && args.attester != AttesterKind::Nitro {
        return Err("--kms-key-arn is only used with --attester nitro".into());
    }
    match args.attester {
        AttesterKind::None => Ok(None),
        AttesterKind::Sim => sim_platform(args.sim_ca.as_deref()).map(Some),
        AttesterKind::Nitro => nitro_platform(args).map(Some),
        AttesterKind::Snp => snp_platform().map(Some),
    }
}

#[cfg(feature = "sim")]
fn sim_platform(dir: Option<&Path>) -> Result<PlatformParts, String> {
    use sigil_enclave::attester::sim::{self, SimAttester, SimCa};
    use sigil_enclave::sealer::sim::SimSealer;

    let dir = dir.ok_or("--attester sim needs --sim-ca DIR (where the simulated root CA is kept)")?;
    let ca = SimCa::load_or_generate(dir).map_err(|e| format!("--sim-ca {}: {e}", dir.display()))?;
    let pcrs = sim::load_or_create_measurement(dir).map_err(|e| format!("--sim-ca {}: {e}", dir.display()))?;
    let mut attester = SimAttester::with_pcrs(&ca, unix_now()?, pcrs).map_err(|e| e.to_string())?;
    let root_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, ca.root_der()));
    tracing::warn!(
        sim_ca = %dir.join(sim::ROOT_CERT_FILE).display(),
        %root_sha256,
        "simulated attestation and sealing: evidence is signed by a test CA and blobs by a key file, not by a TEE; no production verifier accepts it"
    );
    let verifier = verifier_for(&mut attester, Some(ca.root_der()))?;
    let sealer = SimSealer::load_or_generate(dir, &pcrs).map_err(|e| format!("--sim-ca {}: {e}", dir.display()))?;
    Ok(PlatformParts {
        attester: Box::new(attester),
        sealer: Some(Box::new(sealer)),
        verifier: verifier.map(|v| Box::new(v) as Box<dyn PeerVerifier>),
    })
}

#[cfg(not(feature = "sim"))]
fn sim_platform(_dir: Option<&Path>) -> Result<PlatformParts, String> {
    Err(not_built(AttesterKind::Sim))
}

#[cfg(feature = "nitro")]
fn nitro_platform(args: &Args) -> Result<PlatformParts, String> {
    use sigil_enclave::attester::nitro::NitroAttester;
    use sigil_enclave::sealer::kms::http::{VsockProxy, tls_config};
    use sigil_enclave::sealer::kms::imds::Imds;
    use sigil_enclave::sealer::kms::{KmsConfig, KmsSealer};

    /// The parent instance, as seen from inside a Nitro enclave.
    const PARENT_CID: u32 = 3;

    let mut attester = NitroAttester::new().map_err(|e| e.to_string())?;
    tracing::info!("attestation: AWS Nitro (/dev/nsm)");
    let verifier = verifier_for(&mut attester, None)?;
    let sealer = match (&args.kms_key_arn, &args.kms_region, &verifier) {
        (Some(arn), Some(region), Some(v)) => {
            let config = KmsConfig::new(region, arn)?;
            tracing::info!(key_arn = %config.key_arn, endpoint = %config.host, "sealing: AWS KMS (Recipient flow)");
            let sealer = KmsSealer::new(
                config,
                v.measurement().to_vec(),
                // Its own NSM handle: the sealer asks for documents carrying its one-time keys.
                Box::new(NitroAttester::new().map_err(|e| e.to_string())?),
                Box::new(Imds::new(Box::new(VsockProxy { cid: PARENT_CID, port: args.imds_proxy_port }))),
                Box::new(VsockProxy { cid: PARENT_CID, port: args.kms_proxy_port }),
                tls_config(None)?,
            );
            Some(Box::new(sealer) as Box<dyn Sealer>)
        }
        (Some(_), _, None) => {
            // A debug enclave's PCRs are all zero; no key policy should release a key to it.
            tracing::warn!("nitro: debug mode or unverifiable evidence: KMS sealing disabled");
            None
        }
        _ => {
            tracing::warn!(
                "nitro: no --kms-key-arn: K3 is kept in memory only; restarts need `sigil provision` or `sigil replicate`"
            );
            None
        }
    };
    Ok(PlatformParts {
        attester: Box::new(attester),
        sealer,
        verifier: verifier.map(|v| Box::new(v) as Box<dyn PeerVerifier>),
    })
}

#[cfg(not(feature = "nitro"))]
fn nitro_platform(_args: &Args) -> Result<PlatformParts, String> {
    Err(not_built(AttesterKind::Nitro))
}

#[cfg(feature = "snp")]
fn snp_platform() -> Result<PlatformParts, String> {
    let mut attester = sigil_enclave::attester::snp::SnpAttester::new().map_err(|e| e.to_string())?;
    tracing::info!("attestation: AMD SEV-SNP (/dev/sev-guest)");
    let verifier = verifier_for(&mut attester, None)?;
    // The sealing key binds the launch measurement itself; the verifier tells us what it is
    // (a debug guest has no verifier, and gets no sealing either).
    let sealer = match &verifier {
        Some(v) => {
            let m: [u8; 48] = v.measurement().try_into().map_err(|_| "SNP measurement is not 48 bytes".to_owned())?;
            let s = sigil_enclave::sealer::snp::SnpSealer::new(m).map_err(|e| e.to_string())?;
            Some(Box::new(s) as Box<dyn Sealer>)
        }
        None => None,
    };
    Ok(PlatformParts {
        attester: Box::new(attester),
        sealer,
        verifier: verifier.map(|v| Box::new(v) as Box<dyn PeerVerifier>),
    })
}

#[cfg(not(feature = "snp"))]
fn snp_platform() -> Result<PlatformParts, String> {
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
    let platform = make_platform(&args)?;
    let pem = read_small(&args.broker_pubkey, MAX_KEY_FILE, "broker key")?;
    let broker_key =
        BrokerKey::from_spki_pem(&pem).map_err(|e| format!("broker key {}: {e}", args.broker_pubkey.display()))?;
    let mut config = Config::new(broker_key);
    config.expected_k3 = args.expect_k3.iter().copied().collect();
    let mut enclave = Enclave::new(config);
    match platform {
        Some(p) => {
            enclave.set_attester(p.attester);
            if let Some(s) = p.sealer {
                enclave.set_sealer(s);
            }
            if let Some(v) = p.verifier {
                enclave.set_peer_verifier(v);
            }
        }
        None => tracing::info!(
            "no attester (--attester none): attestation, provisioning and replication requests will be refused"
        ),
    }
    match load_k3(&args)? {
        Some(k3) => {
            if args.expect_k3.iter().any(|(v, fp)| *v == args.key_version && *fp != k3.fingerprint()) {
                return Err(format!("the K3 given for epoch {} is not the one --expect-k3 pins", args.key_version));
            }
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
