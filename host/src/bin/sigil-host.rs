//! `sigil-host`: the HTTPS shim on the parent machine, relaying to `sigil-enclave`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sigil_host::api::{AppState, app};
use sigil_host::audit::AuditLog;
use sigil_host::auth::Authenticator;
use sigil_host::client::{ClientConfig, EnclaveAddr, EnclaveClient};
use sigil_host::custody::BlobStore;
use sigil_host::ratelimit::RateLimiter;
use sigil_host::server;

/// A PEM P-256 public key is ~180 bytes.
const MAX_KEY_FILE: u64 = 16 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "sigil-host",
    version,
    about = "sigil HTTPS shim: agentKeys signer protocol v0 in front of sigil-enclave"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", required_unless_present = "plain_http")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", required_unless_present = "plain_http")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (for a TLS-terminating proxy on the same machine).
    /// Refused unless `--listen` is a loopback address.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    plain_http: bool,
    /// The broker's ES256 public key (SPKI PEM).
    #[arg(long, value_name = "FILE")]
    broker_pubkey: PathBuf,
    /// Where the enclave listens: `vsock://CID:PORT` or `unix:///path`.
    #[arg(long, value_name = "ADDR")]
    enclave: String,
    /// Append a JSON-lines audit record of every request to this file.
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
    /// Per-account rate limit, requests per second (0 disables).
    #[arg(long, default_value_t = 100.0)]
    rate_limit: f64,
    /// Per-account burst size.
    #[arg(long, default_value_t = 200.0)]
    rate_burst: f64,
    /// Persistent connections to the enclave.
    #[arg(long, default_value_t = 4)]
    enclave_connections: usize,
    /// Directory for the enclave's sealed K3 blobs (created 0700). When the enclave starts,
    /// its K3 is restored from here; whenever its epochs change, a new blob is stored here
    /// (atomically; the previous one is kept until the new one has opened). Without it, K3
    /// lives only in the enclave's memory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// How often to check that the enclave holds its K3 (and restore it after a restart).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    custody_interval_ms: u64,
}

fn main() -> ExitCode {
    sigil_enclave::runtime::init_logging();
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sigil-host: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sigil-host: {msg}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.plain_http && !args.listen.ip().is_loopback() {
        return Err(format!("--plain-http is only allowed on a loopback address, not {}", args.listen));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_config_from_files(cert, key).map_err(|e| e.to_string())?),
        _ => None,
    };
    let len = std::fs::metadata(&args.broker_pubkey)
        .map_err(|e| format!("--broker-pubkey {}: {e}", args.broker_pubkey.display()))?
        .len();
    if len > MAX_KEY_FILE {
        return Err(format!("--broker-pubkey {}: {len} bytes is not a public key", args.broker_pubkey.display()));
    }
    let pem = std::fs::read(&args.broker_pubkey)
        .map_err(|e| format!("--broker-pubkey {}: {e}", args.broker_pubkey.display()))?;
    let auth =
        Authenticator::new(&pem, 4096).map_err(|e| format!("--broker-pubkey {}: {e}", args.broker_pubkey.display()))?;
    let addr: EnclaveAddr = args.enclave.parse().map_err(|e| format!("--enclave {}: {e}", args.enclave))?;
    let config = ClientConfig { connections: args.enclave_connections.max(1), ..ClientConfig::default() };
    let client = EnclaveClient::new(addr, config);
    let audit = match &args.audit_log {
        Some(p) => Some(AuditLog::open(p).map_err(|e| format!("--audit-log {}: {e}", p.display()))?),
        None => None,
    };
    let store = match &args.state_dir {
        Some(dir) => Some(BlobStore::open(dir).map_err(|e| format!("--state-dir {}: {e}", dir.display()))?),
        None => {
            tracing::warn!(
                "no --state-dir: sealed K3 blobs are not stored; an enclave restart needs re-provisioning or replication"
            );
            None
        }
    };
    let state = AppState::with_store(client, auth, RateLimiter::new(args.rate_limit, args.rate_burst), audit, store);
    state.spawn_custody(std::time::Duration::from_millis(args.custody_interval_ms.max(50)));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %format!("{scheme}://{local}"), enclave = %args.enclave, "sigil-host listening");
    server::serve(listener, tls, app(state), server::shutdown_signal()).await.map_err(|e| format!("server failed: {e}"))
}
