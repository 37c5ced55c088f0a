//! `sigil dev`: a working signer on localhost with nothing to configure.
//!
//! HTTPS on 127.0.0.1:8092 with a generated self-signed certificate, the real enclave code
//! in-process (simulation), K3 from `DEV_KEY_SERVICE_MASTER_SECRET` or fresh randomness, a
//! generated broker key, and a ready `curl` line carrying a valid one-hour dev JWT.
//!
//! The enclave attests with the simulated attester under a root generated for the run
//! ([`DevServer::sim_ca`]): real Nitro-format evidence that only a verifier pinning that root
//! (and accepting the `sim` platform, which no production policy does) will accept.
//!
//! With `--state-dir DIR` the whole K3 custody flow can be rehearsed with the production
//! commands: `DIR` keeps the TLS certificate (`tls-cert.pem`), the policy (`policy.toml`),
//! the sim root, measurement and sealing key, and the sealed K3 blobs, so a restart keeps the
//! same identity and restores K3 from its blob. K3 then comes only from
//! `DEV_KEY_SERVICE_MASTER_SECRET`, the sealed blob, `sigil provision` or `sigil replicate` —
//! never from fresh randomness, which a restart would lose.

use std::fmt::Write as _;
use std::io::Write as _;
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
use sigil_enclave::runtime::peer::SameMeasurement;
use sigil_enclave::sealer::sim::SimSealer;
use sigil_enclave::{Config, Enclave, K3};
use sigil_host::api::{AppState, app};
use sigil_host::audit::AuditLog;
use sigil_host::auth::Authenticator;
use sigil_host::client::{ClientConfig, EnclaveAddr, EnclaveClient};
use sigil_host::custody::BlobStore;
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
    /// Keep this signer's identity and sealed K3 in DIR (created 0700): TLS certificate,
    /// policy, sim root, measurement and sealing key, and the sealed K3 blobs.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Start without K3 (ignore DEV_KEY_SERVICE_MASTER_SECRET): provision it with
    /// `sigil provision`, or restore it from the sealed blob in `--state-dir`.
    #[arg(long)]
    pub unprovisioned: bool,
    /// Use the sim root in DIR (instead of the state directory's own): two `sigil dev`s on one
    /// root are like two machines of one vendor, and can replicate K3 to each other.
    #[arg(long, value_name = "DIR")]
    pub sim_ca: Option<PathBuf>,
}

/// The files of a `--state-dir`.
pub const TLS_CERT_FILE: &str = "tls-cert.pem";
/// The TLS key in a `--state-dir` (mode 0600).
pub const TLS_KEY_FILE: &str = "tls-key.pem";
/// The sim policy written into a `--state-dir` at every start.
pub const POLICY_FILE: &str = "policy.toml";
/// The generated dev broker's private key in a `--state-dir` (PKCS#8 DER, mode 0600).
pub const BROKER_KEY_FILE: &str = "broker-key.p8";
/// The generated dev broker's public key in a `--state-dir` (SPKI PEM): give it to a second
/// signer as `--broker-pubkey` so the two can replicate.
pub const BROKER_PEM_FILE: &str = "broker.pem";

/// A broker key pair generated for this run (or kept in a `--state-dir`), able to mint dev
/// tokens; also what the VM test's client mints its tokens with.
pub struct DevBroker {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for DevBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never appears.
        f.debug_struct("DevBroker").finish_non_exhaustive()
    }
}

impl DevBroker {
    fn generate() -> Result<Self, String> {
        Self::generate_pkcs8().and_then(|pkcs8| Self::from_pkcs8(&pkcs8))
    }

    fn generate_pkcs8() -> Result<Zeroizing<Vec<u8>>, String> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|d| Zeroizing::new(d.as_ref().to_vec()))
            .map_err(|_| "cannot generate a broker key".to_owned())
    }

    /// The broker of a P-256 PKCS#8 key (`broker-key.p8` of a `--state-dir`).
    ///
    /// # Errors
    /// Not a P-256 PKCS#8 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| "cannot load the broker key".to_owned())?;
        Ok(Self { key, rng })
    }

    /// The broker of a `--state-dir`: loaded from `broker-key.p8` (PKCS#8 DER, 0600) or
    /// generated and saved there with its public key in `broker.pem`, so a restarted signer
    /// keeps accepting its dev tokens and its configuration fingerprint (which replication
    /// peers must share: start a second signer with `--broker-pubkey DIR/broker.pem`).
    fn load_or_generate(dir: &std::path::Path) -> Result<Self, String> {
        use sigil_enclave::runtime::files;
        let path = dir.join(BROKER_KEY_FILE);
        let broker = if path.exists() {
            let der = Zeroizing::new(files::read_limited(&path, 4096).map_err(|e| format!("{}: {e}", path.display()))?);
            Self::from_pkcs8(&der).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            let der = Self::generate_pkcs8()?;
            files::write_atomically(&path, &der, 0o600).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Self::from_pkcs8(&der)?
        };
        let pem = dir.join(BROKER_PEM_FILE);
        files::write_atomically(&pem, broker.spki_pem().as_bytes(), 0o644)
            .map_err(|e| format!("cannot write {}: {e}", pem.display()))?;
        Ok(broker)
    }

    fn spki_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = Base64::encode_string(&der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    /// A broker-shaped ES256 token for `omni`, valid for `ttl`.
    ///
    /// # Errors
    /// The signature failed (ring's RNG).
    pub fn mint(&self, omni_hex: &str, ttl: Duration) -> Result<String, String> {
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
    /// The simulated measurement (PCR0, PCR1, PCR2).
    pub pcrs: [[u8; 48]; 3],
    /// `--state-dir`, if given.
    pub state_dir: Option<PathBuf>,
    custody_task: tokio::task::JoinHandle<()>,
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
        let pcrs = self.pcrs;
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
        self.custody_task.abort();
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
    if args.unprovisioned {
        return start_with(args, None).await;
    }
    if args.state_dir.is_some() && std::env::var_os(K3_ENV).is_none() {
        // A random K3 would be lost by a restart: restore from the blob or wait for `sigil provision`.
        return start_with(args, None).await;
    }
    let (k3, imported) = load_k3()?;
    tracing::info!(k3_source = if imported { K3_ENV } else { "random" }, "loading K3");
    start_with(args, Some(k3)).await
}

/// The TLS certificate and key: from `--tls-cert/--tls-key`, from the state directory, or
/// generated (and saved there when there is one).
/// A PEM file of at most 64 KiB (keys are wiped by the caller's `Zeroizing`).
fn read_pem(path: &std::path::Path, what: &str) -> Result<String, String> {
    let bytes = Zeroizing::new(
        sigil_enclave::runtime::files::read_limited(path, 64 * 1024)
            .map_err(|e| format!("{what} {}: {e}", path.display()))?,
    );
    std::str::from_utf8(&bytes).map(str::to_owned).map_err(|_| format!("{what} {}: not PEM", path.display()))
}

fn tls_material(args: &DevArgs) -> Result<(String, Zeroizing<String>), String> {
    use sigil_enclave::runtime::files;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok((read_pem(cert, "--tls-cert")?, Zeroizing::new(read_pem(key, "--tls-key")?)));
    }
    if let Some(dir) = &args.state_dir {
        let (cert, key) = (dir.join(TLS_CERT_FILE), dir.join(TLS_KEY_FILE));
        if cert.exists() && key.exists() {
            return Ok((read_pem(&cert, "TLS certificate")?, Zeroizing::new(read_pem(&key, "TLS key")?)));
        }
    }
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| format!("cannot generate a TLS certificate: {e}"))?;
    let (cert_pem, key_pem) = (ck.cert.pem(), Zeroizing::new(ck.signing_key.serialize_pem()));
    if let Some(dir) = &args.state_dir {
        let write = |name: &str, data: &str, mode| {
            files::write_atomically(&dir.join(name), data.as_bytes(), mode)
                .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
        };
        write(TLS_KEY_FILE, &key_pem, 0o600)?;
        write(TLS_CERT_FILE, &cert_pem, 0o644)?;
    }
    Ok((cert_pem, key_pem))
}

/// Starts the dev signer with the given K3, or unprovisioned with `None`.
///
/// # Errors
/// A one-line, secret-free description of what is misconfigured.
pub async fn start_with(args: &DevArgs, k3: Option<K3>) -> Result<DevServer, String> {
    let (broker, broker_pem) = match &args.broker_pubkey {
        Some(path) => (None, read_pem(path, "--broker-pubkey")?),
        None => {
            let b = match &args.state_dir {
                Some(dir) => {
                    sigil_enclave::runtime::files::create_private_dir(dir)
                        .map_err(|e| format!("--state-dir {}: {e}", dir.display()))?;
                    DevBroker::load_or_generate(dir)?
                }
                None => DevBroker::generate()?,
            };
            let pem = b.spki_pem();
            (Some(b), pem)
        }
    };
    let broker_key = BrokerKey::from_spki_pem(&broker_pem).map_err(|e| format!("broker key: {e}"))?;
    let auth = Authenticator::new(broker_pem.as_bytes(), 4096).map_err(|e| e.to_string())?;

    if let Some(dir) = &args.state_dir {
        sigil_enclave::runtime::files::create_private_dir(dir)
            .map_err(|e| format!("--state-dir {}: {e}", dir.display()))?;
    }
    let (cert_pem, key_pem) = tls_material(args)?;
    let tls = server::tls_config_from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| e.to_string())?;

    let mut enclave = Enclave::new(Config::new(broker_key));
    let ca_dir = args.sim_ca.as_ref().or(args.state_dir.as_ref());
    let sim_ca = match ca_dir {
        Some(dir) => SimCa::load_or_generate(dir),
        None => SimCa::generate(),
    }
    .map_err(|e| format!("cannot create the simulated attestation root: {e}"))?;
    let pcrs = match &args.state_dir {
        Some(dir) => sigil_enclave::attester::sim::load_or_create_measurement(dir).map_err(|e| e.to_string())?,
        None => sigil_enclave::attester::sim::sim_pcrs(),
    };
    let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut attester = SimAttester::with_pcrs(&sim_ca, unix_now, pcrs)
        .map_err(|e| format!("cannot create the simulated attester: {e}"))?;
    let verifier = SameMeasurement::from_attester(&mut attester, unix_now, Some(sim_ca.root_der()))?;
    enclave.set_attester(Box::new(attester));
    enclave.set_peer_verifier(Box::new(verifier));
    let sealer = match &args.state_dir {
        Some(dir) => SimSealer::load_or_generate(dir, &pcrs).map_err(|e| e.to_string())?,
        None => {
            // No directory: a sealing key for this run only (blobs are confirmed, not stored).
            let mut secret = Zeroizing::new([0u8; 32]);
            getrandom::fill(secret.as_mut_slice()).map_err(|e| format!("no randomness: {e}"))?;
            SimSealer::new(secret, &pcrs)
        }
    };
    enclave.set_sealer(Box::new(sealer));
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
    let store = match &args.state_dir {
        Some(dir) => Some(BlobStore::open(dir).map_err(|e| format!("--state-dir {}: {e}", dir.display()))?),
        None => None,
    };
    let state = AppState::with_store(client, auth, RateLimiter::new(args.rate_limit, args.rate_burst), audit, store);
    // Restore (or store) K3 before serving, then keep it so.
    state.reconcile_custody().await.map_err(|e| format!("custody: {}", e.message))?;
    let custody_task = state.spawn_custody(Duration::from_secs(1));

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
    let dev = DevServer {
        addr,
        cert_pem,
        token,
        omni,
        broker_pem,
        enclave,
        state,
        sim_ca,
        pcrs,
        state_dir: args.state_dir.clone(),
        custody_task,
        shutdown: Some(tx),
        task,
    };
    if let Some(dir) = &dev.state_dir {
        let policy = dir.join(POLICY_FILE);
        sigil_enclave::runtime::files::write_atomically(&policy, dev.sim_policy().to_toml().as_bytes(), 0o644)
            .map_err(|e| format!("cannot write {}: {e}", policy.display()))?;
    }
    Ok(dev)
}

/// `sigil dev` from the command line: start, print how to use it, serve until Ctrl-C/SIGTERM.
///
/// # Errors
/// Startup errors (exit code 2).
pub async fn run(args: DevArgs) -> Result<(), String> {
    let imported = !args.unprovisioned && std::env::var_os(K3_ENV).is_some();
    let dev = start(&args).await?;
    let dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => {
            // A private, unguessable directory: /tmp is shared.
            let mut suffix = [0u8; 8];
            getrandom::fill(&mut suffix).map_err(|e| format!("no randomness: {e}"))?;
            let dir = std::env::temp_dir().join(format!("sigil-dev-{}-{}", dev.addr.port(), hex::encode(suffix)));
            sigil_enclave::runtime::files::create_private_dir(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            dir
        }
    };
    let cert_path = dir.join(TLS_CERT_FILE);
    let policy_path = dir.join(POLICY_FILE);
    if args.state_dir.is_none() {
        std::fs::write(&cert_path, &dev.cert_pem).map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
        std::fs::write(&policy_path, dev.sim_policy().to_toml())
            .map_err(|e| format!("cannot write {}: {e}", policy_path.display()))?;
    }
    let root_path = dir.join("sim-attestation-root.pem");
    std::fs::write(&root_path, dev.sim_ca.root_pem())
        .map_err(|e| format!("cannot write {}: {e}", root_path.display()))?;
    if let Some(path) = &args.write_policy {
        std::fs::write(path, dev.sim_policy().to_toml())
            .map_err(|e| format!("cannot write the policy {}: {e}", path.display()))?;
    }
    let report = dev.state.reconcile_custody().await.map_err(|e| format!("custody: {}", e.message))?;
    let fingerprints: Vec<String> = report
        .status
        .epochs
        .iter()
        .map(|e| format!("epoch {} 0x{}", e.epoch.key_version, hex::encode(e.epoch.k3_fingerprint.0)))
        .collect();

    // The banner is written in one piece and a closed stdout is ignored: `sigil dev | head -1`
    // (or a supervisor that stops reading) must not take the signer down with EPIPE.
    let mut banner = String::new();
    macro_rules! say {
        ($($arg:tt)*) => {{
            let _ = writeln!(banner, $($arg)*);
        }};
    }
    say!("sigil dev: signer listening on https://{}", dev.addr);
    say!("  enclave:  simulated, in-process (the real enclave code; no TEE)");
    let source = if imported {
        "imported from DEV_KEY_SERVICE_MASTER_SECRET"
    } else if args.state_dir.is_some() || args.unprovisioned {
        "from the sealed blob or `sigil provision`"
    } else {
        "random, for this run only"
    };
    if fingerprints.is_empty() {
        say!("  K3:       not provisioned ({source})");
    } else {
        say!("  K3:       {source}: {}", fingerprints.join(", "));
    }
    if let Some(reason) = &report.reprovision {
        say!("  CUSTODY:  reprovision_required: {reason}");
        say!("            {}", sigil_host::custody::REPROVISION_HINT);
    }
    match &args.state_dir {
        Some(d) => say!("  state:    {} (sealed K3 blobs, identity; a restart restores K3 from here)", d.display()),
        None => say!("  state:    none (K3 lives in memory; use --state-dir DIR to keep it sealed on disk)"),
    }
    say!("  TLS cert: {}", cert_path.display());
    say!("  policy:   {}", policy_path.display());
    say!("  evidence: simulated Nitro documents under the test root {}", root_path.display());
    if fingerprints.is_empty() {
        say!(
            "  provision: sigil provision --url https://{} --policy {} --tls-ca {} --k3-file K3_FILE",
            dev.addr,
            policy_path.display(),
            cert_path.display()
        );
    }
    if let Some(path) = &args.write_policy {
        say!(
            "  policy:   {} (check it: sigil attest --url https://{} --tls-ca {} --policy {})",
            path.display(),
            dev.addr,
            cert_path.display(),
            path.display()
        );
    }
    match &dev.token {
        Some(token) => {
            match &args.state_dir {
                Some(d) => say!(
                    "  broker:   generated key kept in {} (public key {}: give it to a replica as --broker-pubkey); dev JWT below is valid for 1 hour\n",
                    d.join(BROKER_KEY_FILE).display(),
                    d.join(BROKER_PEM_FILE).display()
                ),
                None => say!("  broker:   generated key; dev JWT below is valid for 1 hour\n"),
            }
            say!(
                "curl --cacert {cert} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n  -d '{{\"omni_account\":\"{omni}\",\"message_hex\":\"68656c6c6f\"}}' https://{addr}/dev/sign-message",
                cert = cert_path.display(),
                omni = dev.omni,
                addr = dev.addr,
            );
        }
        None => {
            say!("  broker:   key from --broker-pubkey; bring a token from your broker\n");
            say!(
                "curl --cacert {cert} -H \"Authorization: Bearer $JWT\" -H 'Content-Type: application/json' \\\n  -d '{{\"omni_account\":\"{omni}\",\"message_hex\":\"68656c6c6f\"}}' https://{addr}/dev/sign-message",
                cert = cert_path.display(),
                omni = dev.omni,
                addr = dev.addr,
            );
        }
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        tracing::debug!("stdout is closed; the banner was not shown");
    }
    drop(stdout);
    server::shutdown_signal().await;
    dev.stop().await.map_err(|e| format!("server error: {e}"))
}
