//! `sigil-enclave`: the enclave runtime. Inside a TEE it listens on vsock; for development
//! and tests it listens on a Unix socket. K3 comes from a file or the environment until the
//! attested provisioning ceremony lands.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
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
    let pem = read_small(&args.broker_pubkey, MAX_KEY_FILE, "broker key")?;
    let broker_key =
        BrokerKey::from_spki_pem(&pem).map_err(|e| format!("broker key {}: {e}", args.broker_pubkey.display()))?;
    let mut enclave = Enclave::new(Config::new(broker_key));
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
