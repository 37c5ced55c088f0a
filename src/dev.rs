//! `sigil dev`: a working signer on localhost with nothing to configure.
//!
//! HTTPS on 127.0.0.1:8092 with a generated self-signed certificate, the real enclave code
//! in-process (simulation), K3 from `DEV_KEY_SERVICE_MASTER_SECRET` or fresh randomness, a
//! generated broker key, and a ready `curl` line carrying a valid one-hour dev JWT.
//!
//! The enclave attests with the simulated attester under a root generated for the run
//! ([`DevServer::sim_ca`]): real Nitro-format evidence that only a verifier pinning that root
//! (and accepting the `sim` platform, which no production policy does) will accept.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};
use sigil_enclave::attester::sim::{SimAttester, SimCa};
use sigil_enclave::jwt::BrokerKey;
use sigil_enclave::{Config, Enclave, K3};
use sigil_host::api::{AppState, app};
use sigil_host::audit::AuditLog;
use sigil_host::auth::Authenticator;
use sigil_host::client::{ClientConfig, EnclaveAddr, EnclaveClient};
use sigil_host::ratelimit::RateLimiter;
use sigil_host::server;
use zeroize::Zeroizing;

/// Where the old signer kept K3; `sigil dev` imports it so wallets stay the same.
pub const K3_ENV: &str = "DEV_KEY_SERVICE_MASTER_SECRET";
/// The identity the printed example request is for.
const DEV_IDENTITY: (&str, &str) = ("email", "dev@example.com");
/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// `sigil dev` options. `Default` (for tests and embedding) differs from the command line's
/// defaults: port 0 (any free port) and no rate limit.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DevArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8092)]
    pub port: u16,
    /// Use this broker public key (SPKI PEM) instead of generating one. No dev JWT can be
    /// minted then: bring tokens from your broker.
    #[arg(long, value_name = "FILE")]
    pub broker_pubkey: Option<PathBuf>,
    /// TLS certificate chain (PEM) instead of a generated self-signed one.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Append a JSON-lines audit record of every request to this file.
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Per-account rate limit, requests per second (0 disables).
    #[arg(long, default_value_t = 100.0)]
    pub rate_limit: f64,
    /// Per-account burst size.
    #[arg(long, default_value_t = 200.0)]
    pub rate_burst: f64,
    /// Write the policy that trusts this run's simulated enclave (its sim root, PCRs and
    /// K3 fingerprint) to this file, for rehearsing `sigil attest` / `sigil verify`.
    #[arg(long, value_name = "PATH")]
    pub write_policy: Option<PathBuf>,
}

/// A broker key pair generated for this run, able to mint dev tokens.
struct DevBroker {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl DevBroker {
    fn generate() -> Result<Self, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a broker key".to_owned())?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "cannot load the generated broker key".to_owned())?;
        Ok(Self { key, rng })
    }

    fn spki_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = Base64::encode_string(&der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    /// A broker-shaped ES256 token for `omni`, valid for `ttl`.
    fn mint(&self, omni_hex: &str, ttl: Duration) -> Result<String, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let header = format!(r#"{{"alg":"ES256","kid":"ak-session-{now}"}}"#);
        let claims = format!(
            r#"{{"iss":"sigil-dev","sub":"agentkeys:user:{omni_hex}","aud":"agentkeys:broker","exp":{exp},"iat":{now},"jti":"dev-{now}","agentkeys":{{"omni_account":"{omni_hex}","identity_type":"{t}","identity_value":"{v}"}}}}"#,
            exp = now + ttl.as_secs(),
            t = DEV_IDENTITY.0,
            v = DEV_IDENTITY.1,
        );
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.as_bytes()),
            Base64UrlUnpadded::encode_string(claims.as_bytes())
        );
        let sig = self.key.sign(&self.rng, input.as_bytes()).map_err(|_| "cannot sign the dev token".to_owned())?;
        Ok(format!("{input}.{}", Base64UrlUnpadded::encode_string(sig.as_ref())))
    }
}

/// The agentKeys account id of an identity: `SHA256("agentkeys" || type || value)`.
#[must_use]
pub fn omni_account(identity_type: &str, identity_value: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"agentkeys")
        .chain_update(identity_type.as_bytes())
        .chain_update(identity_value.as_bytes())
        .finalize()
        .into()
}

/// K3 from the old signer's variable, or fresh randomness. The flag says which.
fn load_k3() -> Result<(K3, bool), String> {
    match std::env::var(K3_ENV) {
        Ok(v) => {
            let v = Zeroizing::new(v);
            K3::from_hex(&v).map(|k| (k, true)).map_err(|e| format!("{K3_ENV}: {e}"))
        }
        Err(_) => {
            let mut b = Zeroizing::new([0u8; 32]);
            getrandom::fill(b.as_mut_slice()).map_err(|e| format!("no randomness for K3: {e}"))?;
            Ok((K3::from_bytes(*b), false))
        }
    }
}

/// A running dev signer (for tests: start, read the address, stop).
#[derive(Debug)]
pub struct DevServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The certificate clients should trust (PEM).
    pub cert_pem: String,
    /// A valid one-hour token for [`DevServer::omni`], when the broker key was generated.
    pub token: Option<String>,
    /// The example account (lowercase hex).
    pub omni: String,
    /// The generated broker public key (SPKI PEM), or the one given.
    pub broker_pem: String,
    /// The in-process enclave (tests may inspect it).
    pub enclave: sigil_enclave::runtime::SharedEnclave,
    /// The host state (metrics, client).
    pub state: AppState,
    /// The root that signs the simulated attester's certificates: pin it to verify this
    /// server's evidence.
    pub sim_ca: SimCa,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl DevServer {
    /// The policy that trusts exactly this server's simulated enclave: platform `sim`, its
    /// root, the sim PCRs, no debug, 5-minute document age, and its current K3 fingerprint
    /// (when provisioned).
    #[must_use]
    pub fn sim_policy(&self) -> sigil_attestation::Policy {
        use sigil_attestation::nitro::NitroPolicy;
        use sigil_attestation::policy::SimPolicy;
        let pcrs = sigil_enclave::attester::sim::sim_pcrs();
        let k3_fingerprint = self.enclave.lock().ok().and_then(|e| e.k3_store().current_fingerprint());
        sigil_attestation::Policy {
            platforms: vec![sigil_protocol::Platform::Sim],
            max_age_secs: 300,
            allow_debug: false,
            k3_fingerprint,
            nitro: None,
            snp: None,
            sim: Some(SimPolicy {
                root_der: self.sim_ca.root_der().to_vec(),
                nitro: NitroPolicy {
                    pcrs: pcrs.iter().zip(0u8..).map(|(v, i)| (i, v.to_vec())).collect(),
                    max_age_secs: Some(300),
                    allow_debug: false,
                },
            }),
        }
    }

    /// Stops accepting, drains in-flight requests, and waits for the server to finish.
    ///
    /// # Errors
    /// The server task's error.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Starts the dev signer with K3 from `DEV_KEY_SERVICE_MASTER_SECRET` or fresh randomness
/// (must run inside a Tokio runtime).
///
/// # Errors
/// A one-line, secret-free description of what is misconfigured.
pub async fn start(args: &DevArgs) -> Result<DevServer, String> {
    let (k3, imported) = load_k3()?;
    tracing::info!(k3_source = if imported { K3_ENV } else { "random" }, "loading K3");
    start_with(args, Some(k3)).await
}

/// Starts the dev signer with the given K3, or unprovisioned with `None`.
///
/// # Errors
/// A one-line, secret-free description of what is misconfigured.
pub async fn start_with(args: &DevArgs, k3: Option<K3>) -> Result<DevServer, String> {
    let (broker, broker_pem) = match &args.broker_pubkey {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|e| format!("--broker-pubkey {}: {e}", path.display()))?;
            (None, pem)
        }
        None => {
            let b = DevBroker::generate()?;
            let pem = b.spki_pem();
            (Some(b), pem)
        }
    };
    let broker_key = BrokerKey::from_spki_pem(&broker_pem).map_err(|e| format!("broker key: {e}"))?;
    let auth = Authenticator::new(broker_pem.as_bytes(), 4096).map_err(|e| e.to_string())?;

    let (tls, cert_pem) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let pem = std::fs::read_to_string(cert).map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
            (server::tls_config_from_files(cert, key).map_err(|e| e.to_string())?, pem)
        }
        _ => {
            let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(|e| format!("cannot generate a TLS certificate: {e}"))?;
            let cert_pem = ck.cert.pem();
            let key_pem = Zeroizing::new(ck.signing_key.serialize_pem());
            (server::tls_config_from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| e.to_string())?, cert_pem)
        }
    };

    let mut enclave = Enclave::new(Config::new(broker_key));
    let sim_ca = SimCa::generate().map_err(|e| format!("cannot create the simulated attestation root: {e}"))?;
    let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let attester =
        SimAttester::new(&sim_ca, unix_now).map_err(|e| format!("cannot create the simulated attester: {e}"))?;
    enclave.set_attester(Box::new(attester));
    if let Some(k3) = k3 {
        tracing::info!(k3_fingerprint = %hex::encode(k3.fingerprint()), "K3 loaded");
        enclave.load_k3(sigil_host::api::COMPAT_KEY_VERSION, k3);
    }
    let enclave = Arc::new(Mutex::new(enclave));
    let in_process = sigil_enclave::runtime::InProcessEnclave::spawn(Arc::clone(&enclave))
        .map_err(|e| format!("cannot start the in-process enclave: {e}"))?;
    let client = EnclaveClient::new(EnclaveAddr::InProcess(in_process), ClientConfig::default());
    // Serve only once the enclave connection is up, so the first request cannot race it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !client.is_connected() {
        if tokio::time::Instant::now() > deadline {
            return Err("the in-process enclave did not come up within 5 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let audit = match &args.audit_log {
        Some(p) => Some(AuditLog::open(p).map_err(|e| format!("--audit-log {}: {e}", p.display()))?),
        None => None,
    };
    let state = AppState::new(client, auth, RateLimiter::new(args.rate_limit, args.rate_burst), audit);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = app(state.clone());
    let task = tokio::spawn(server::serve(listener, Some(tls), router, async move {
        let _ = rx.await;
    }));

    let omni = hex::encode(omni_account(DEV_IDENTITY.0, DEV_IDENTITY.1));
    let token = match &broker {
        Some(b) => Some(b.mint(&omni, Duration::from_secs(3600))?),
        None => None,
    };
    Ok(DevServer { addr, cert_pem, token, omni, broker_pem, enclave, state, sim_ca, shutdown: Some(tx), task })
}

/// `sigil dev` from the command line: start, print how to use it, serve until Ctrl-C/SIGTERM.
///
/// # Errors
/// Startup errors (exit code 2).
pub async fn run(args: DevArgs) -> Result<(), String> {
    let imported = std::env::var_os(K3_ENV).is_some();
    let dev = start(&args).await?;
    // A private, unguessable directory: /tmp is shared.
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| format!("no randomness: {e}"))?;
    let dir = std::env::temp_dir().join(format!("sigil-dev-{}-{}", dev.addr.port(), hex::encode(suffix)));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let cert_path = dir.join("tls-cert.pem");
    std::fs::write(&cert_path, &dev.cert_pem).map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    let root_path = dir.join("sim-attestation-root.pem");
    std::fs::write(&root_path, dev.sim_ca.root_pem())
        .map_err(|e| format!("cannot write {}: {e}", root_path.display()))?;
    if let Some(path) = &args.write_policy {
        std::fs::write(path, dev.sim_policy().to_toml())
            .map_err(|e| format!("cannot write the policy {}: {e}", path.display()))?;
    }
    let k3_fp = dev
        .enclave
        .lock()
        .map(|e| e.k3_store().fingerprints().map(|(_, f)| hex::encode(f)).collect::<Vec<_>>().join(","))
        .unwrap_or_default();

    println!("sigil dev: signer listening on https://{}", dev.addr);
    println!("  enclave:  simulated, in-process (the real enclave code; no TEE)");
    println!(
        "  K3:       {} (fingerprint {k3_fp})",
        if imported { "imported from DEV_KEY_SERVICE_MASTER_SECRET" } else { "random, for this run only" }
    );
    println!("  TLS cert: {}", cert_path.display());
    println!("  evidence: simulated Nitro documents under the test root {}", root_path.display());
    if let Some(path) = &args.write_policy {
        println!(
            "  policy:   {} (check it: sigil attest --url https://{} --ca-cert {} --policy {})",
            path.display(),
            dev.addr,
            cert_path.display(),
            path.display()
        );
    }
    match &dev.token {
        Some(token) => {
            println!("  broker:   generated key; dev JWT below is valid for 1 hour\n");
            println!(
                "curl --cacert {cert} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n  -d '{{\"omni_account\":\"{omni}\",\"message_hex\":\"68656c6c6f\"}}' https://{addr}/dev/sign-message",
                cert = cert_path.display(),
                omni = dev.omni,
                addr = dev.addr,
            );
        }
        None => {
            println!("  broker:   key from --broker-pubkey; bring a token from your broker\n");
            println!(
                "curl --cacert {cert} -H \"Authorization: Bearer $JWT\" -H 'Content-Type: application/json' \\\n  -d '{{\"omni_account\":\"{omni}\",\"message_hex\":\"68656c6c6f\"}}' https://{addr}/dev/sign-message",
                cert = cert_path.display(),
                omni = dev.omni,
                addr = dev.addr,
            );
        }
    }
    server::shutdown_signal().await;
    dev.stop().await.map_err(|e| format!("server error: {e}"))
}
