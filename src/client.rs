//! [`Client`]: talks to a sigil signer through an attested session, so the host in between —
//! and anyone on the network — can relay but not read, alter, reorder or replay anything.
//!
//! ```text
//!  Client::connect(url, policy)
//!    POST /v1/session  AttestRequest{nonce, x25519 pub} ──▶ host ──▶ enclave
//!                      Attestation{evidence, keys, K3 fp} ◀──
//!    verify_attestation(evidence, now, policy)      chain, PCRs/measurement, binding, K3
//!    ClientSession::new(secret, enclave_pub, binding hash)
//!  client.sign_eip191(jwt, omni, msg)
//!    POST /v1/sealed   seal(counter n, Request{.. jwt ..}) ──▶ host ──▶ enclave (opens, checks JWT)
//!                      seal(counter n, Response)        ◀──
//! ```
//!
//! The broker JWT travels inside the seal and is checked by the enclave. KEKs are sealed
//! by the enclave to a key the client generates per request and opened here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sigil_attestation::{Policy, Verified};
use sigil_enclave::K3;
use sigil_protocol::custody::{self, PROVISION_INFO_LABEL, PeerExport, PeerOffer, ProvisionK3, RETIRE_INFO_LABEL};
use sigil_protocol::session::{ClientSession, SessionError};
use sigil_protocol::{
    AddressInfo, AttestRequest, Attestation, BrokerToken, Bytes, CustodyStatus, DeriveAddress, DeriveKek,
    Eip191Signature, Eip712Signature, ErrorCode, OmniAccount, Request, Response, SealedRecord, SignEip191, SignEip712,
    Subject, decode_payload,
};
use zeroize::Zeroizing;

/// The epoch the client signs with unless told otherwise (the old signer's only one).
pub const DEFAULT_KEY_VERSION: u8 = 1;
/// Where sealed records go.
const SEALED_PATH: &str = "/v1/sealed";
/// Where sealed custody changes go: the host stores the new sealed blob before answering.
const PROVISION_PATH: &str = "/v1/provision";

/// Largest response body read from the host (one frame's worth).
const MAX_RESPONSE: usize = sigil_protocol::MAX_PAYLOAD + 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL or an option is unusable.
    #[error("client configuration: {0}")]
    Config(String),
    /// The host could not be reached or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The host answered with an HTTP error. Not authenticated: the host may be lying, so
    /// this never means the enclave refused anything.
    #[error("host answered {status}: {code}{}", if .message.is_empty() { String::new() } else { format!(" ({message})") })]
    Host {
        /// HTTP status.
        status: u16,
        /// The `error` code of the JSON envelope (`"unknown"` when there was none).
        code: String,
        /// The envelope's `message` (unauthenticated, for humans), at most 300 characters.
        message: String,
    },
    /// The enclave refused a sealed record (relayed by the host, unauthenticated): the
    /// session was tampered with on the way in (`session_integrity`) or is gone
    /// (`unknown_session`). The session is discarded.
    #[error("enclave rejected the sealed record: {0}")]
    SessionRejected(ErrorCode),
    /// The evidence did not satisfy the policy: this is not the enclave we expect.
    #[error("attestation failed: {0}")]
    Attestation(#[from] sigil_attestation::Error),
    /// A sealed response failed its checks: altered, replayed or out of order in transit.
    /// The session is discarded.
    #[error("sealed response rejected: {0}")]
    Session(SessionError),
    /// The response could not be decoded.
    #[error("malformed response from the host")]
    Malformed,
    /// The enclave answered with an error (authenticated: it came sealed).
    #[error("enclave error {code}: {message}")]
    Enclave {
        /// The stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// The enclave answered with a response of the wrong kind.
    #[error("unexpected response type from the enclave")]
    UnexpectedResponse,
    /// The sealed KEK did not open.
    #[error("sealed kek did not open")]
    KekOpen,
    /// The OS random source failed.
    #[error("entropy source unavailable")]
    Entropy,
    /// A custody step did not end as it must (an epoch still pending, a peer's evidence not
    /// bound to the exchange, an import that did not arrive).
    #[error("custody: {0}")]
    Custody(String),
}

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Extra trusted TLS roots (one or more PEM certificates), e.g. `sigil dev`'s self-signed
    /// certificate. TLS only
    /// protects the handshake's metadata: the session is end-to-end with the enclave anyway.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Per-HTTP-request timeout.
    pub timeout: Duration,
    /// The epoch requests use; 0 = the enclave's current epoch.
    pub key_version: u8,
    /// The verification time; `None` means the system clock (tests pin it).
    pub now_unix: Option<u64>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { ca_cert_pem: None, timeout: Duration::from_secs(30), key_version: DEFAULT_KEY_VERSION, now_unix: None }
    }
}

struct Session {
    session: ClientSession,
    verified: Verified,
    /// The handshake's binding hash and the enclave's attested X25519 key: what K3 is sealed
    /// to when provisioning.
    binding: [u8; 64],
    enclave_pub: [u8; 32],
}

/// An attested client of one sigil signer. Calls on one `Client` are serialised (a session
/// carries one request at a time); use several clients for parallelism.
pub struct Client {
    http: reqwest::Client,
    base: String,
    policy: Policy,
    options: ClientOptions,
    session: tokio::sync::Mutex<Option<Session>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

/// A transport error with its causes (reqwest's own message hides them, e.g. a TLS
/// `UnknownIssuer` behind "error sending request").
fn transport(e: reqwest::Error) -> ClientError {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let mut msg = e.without_url().to_string();
    for cause in causes {
        msg.push_str(": ");
        msg.push_str(&cause);
    }
    ClientError::Transport(msg)
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, ClientError> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::fill(b.as_mut_slice()).map_err(|_| ClientError::Entropy)?;
    Ok(b)
}

impl Client {
    /// Connects to the signer at `url` (e.g. `https://127.0.0.1:8092`), runs the attested
    /// handshake and verifies the evidence against `policy`. Fails unless the enclave proves
    /// what the policy requires.
    pub async fn connect(url: &str, policy: Policy, options: ClientOptions) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder().timeout(options.timeout);
        if let Some(pem) = &options.ca_cert_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ClientError::Config(format!("tls ca: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Config("tls ca: no certificate in the PEM".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| ClientError::Config(e.to_string()))?;
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::Config(format!("{url}: expected an https:// URL")));
        }
        let client = Self { http, base, policy, options, session: tokio::sync::Mutex::new(None) };
        let session = client.handshake().await?;
        *client.session.lock().await = Some(session);
        Ok(client)
    }

    /// What the current session's evidence proved (after the latest handshake).
    pub async fn verified(&self) -> Option<Verified> {
        self.session.lock().await.as_ref().map(|s| s.verified.clone())
    }

    fn now(&self) -> u64 {
        self.options.now_unix.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        if resp.content_length().is_some_and(|n| n > MAX_RESPONSE as u64) {
            return Err(ClientError::Malformed);
        }
        // The host is untrusted: read in chunks and stop at the limit, so a body without a
        // Content-Length (chunked) cannot make us buffer an unbounded amount.
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(ClientError::Malformed);
            }
            bytes.extend_from_slice(&chunk);
        }
        if status != 200 {
            let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
            let field = |name: &str| json.as_ref().and_then(|v| v.get(name)?.as_str().map(str::to_owned));
            let code = field("error").unwrap_or_else(|| "unknown".to_owned());
            let message: String =
                field("message").unwrap_or_default().chars().filter(|c| !c.is_control()).take(300).collect();
            return Err(ClientError::Host { status, code, message });
        }
        Ok(bytes)
    }

    /// Runs a handshake: fresh nonce and X25519 key, evidence verified against the policy.
    async fn handshake(&self) -> Result<Session, ClientError> {
        let nonce = random::<32>()?;
        let secret = random::<32>()?;
        let request = AttestRequest {
            client_nonce: Bytes(*nonce),
            client_pub: Some(Bytes(sigil_protocol::session::x25519_public(&secret))),
        };
        let body = postcard::to_allocvec(&request).map_err(|_| ClientError::Malformed)?;
        let answer = self.post("/v1/session", body).await?;
        let attestation: Attestation = decode_payload(&answer).map_err(|_| ClientError::Malformed)?;
        let verified = sigil_attestation::verify_attestation(&attestation, &request, self.now(), &self.policy)?;
        let enclave_pub = attestation.enclave_pub.ok_or(ClientError::Malformed)?;
        let binding = attestation.binding(&request).hash();
        let session = ClientSession::new(&secret, &enclave_pub.0, &binding).map_err(ClientError::Session)?;
        Ok(Session { session, verified, binding, enclave_pub: enclave_pub.0 })
    }

    /// Sends one request through the session (opening a new one if there is none) and
    /// returns the enclave's sealed answer.
    async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let plaintext = Zeroizing::new(postcard::to_allocvec(request).map_err(|_| ClientError::Malformed)?);
        self.call_with(SEALED_PATH, |_| Ok(plaintext.clone())).await
    }

    /// Sends the request `make` builds from the session (its binding and attested key)
    /// through `path`, opening a session first if there is none.
    async fn call_with(
        &self,
        path: &str,
        make: impl FnOnce(&Session) -> Result<Zeroizing<Vec<u8>>, ClientError>,
    ) -> Result<Response, ClientError> {
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            *guard = Some(self.handshake().await?);
        }
        let result = match guard.as_mut() {
            Some(s) => match make(s) {
                Ok(plaintext) => self.round_trip(&mut s.session, path, &plaintext).await,
                Err(e) => Err(e),
            },
            None => Err(ClientError::UnexpectedResponse),
        };
        // After an integrity failure the session can no longer be trusted to be in step:
        // drop it, and the next call handshakes afresh. Transport failures keep it: if the
        // request was in fact dropped, the enclave will see the counter gap and say so.
        if matches!(result, Err(ClientError::Session(_) | ClientError::SessionRejected(_) | ClientError::Malformed)) {
            *guard = None;
        }
        result
    }

    async fn round_trip(
        &self,
        session: &mut ClientSession,
        path: &str,
        plaintext: &[u8],
    ) -> Result<Response, ClientError> {
        let record = session.seal_request(plaintext).map_err(ClientError::Session)?;
        let counter = record.counter;
        let body = postcard::to_allocvec(&record).map_err(|_| ClientError::Malformed)?;
        let answer = match self.post(path, body).await {
            Err(ClientError::Host { code, .. })
                if code == ErrorCode::SessionIntegrity.as_str() || code == ErrorCode::UnknownSession.as_str() =>
            {
                let code = if code == ErrorCode::UnknownSession.as_str() {
                    ErrorCode::UnknownSession
                } else {
                    ErrorCode::SessionIntegrity
                };
                return Err(ClientError::SessionRejected(code));
            }
            other => other?,
        };
        let sealed: SealedRecord = decode_payload(&answer).map_err(|_| ClientError::Malformed)?;
        let opened = session.open_response(counter, &sealed).map_err(ClientError::Session)?;
        match decode_payload::<Response>(&opened).map_err(|_| ClientError::Malformed)? {
            Response::Error(e) => Err(ClientError::Enclave { code: e.code, message: e.message }),
            other => Ok(other),
        }
    }

    fn subject(&self, token: &str, omni: [u8; 32]) -> Subject {
        Subject {
            token: BrokerToken::new(token.to_owned()),
            key_version: self.options.key_version,
            omni: OmniAccount::from(omni),
        }
    }

    /// The wallet address of `omni`.
    pub async fn derive_address(&self, token: &str, omni: [u8; 32]) -> Result<AddressInfo, ClientError> {
        let req = Request::DeriveAddress(DeriveAddress { subject: self.subject(token, omni) });
        match self.call(&req).await? {
            Response::Address(a) => Ok(a),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// An EIP-191 `personal_sign` of `message` by `omni`'s wallet.
    pub async fn sign_eip191(
        &self,
        token: &str,
        omni: [u8; 32],
        message: &[u8],
    ) -> Result<Eip191Signature, ClientError> {
        let req = Request::SignEip191(SignEip191 { subject: self.subject(token, omni), message: message.to_vec() });
        match self.call(&req).await? {
            Response::Eip191Signature(s) => Ok(s),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// An EIP-712 v4 signature of `typed_data` (`{domain, types, primaryType, message}` JSON).
    pub async fn sign_eip712(
        &self,
        token: &str,
        omni: [u8; 32],
        typed_data: &str,
    ) -> Result<Eip712Signature, ClientError> {
        let req =
            Request::SignEip712(SignEip712 { subject: self.subject(token, omni), typed_data: typed_data.to_owned() });
        match self.call(&req).await? {
            Response::Eip712Signature(s) => Ok(s),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// The native v2 KEK of `(omni, context)`. The enclave seals it to a fresh X25519 key
    /// made here; it is opened here and never seen by the host.
    pub async fn derive_kek(
        &self,
        token: &str,
        omni: [u8; 32],
        context: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, ClientError> {
        let ikm = random::<32>()?;
        let (secret, public) = sigil_enclave::kek::recipient_keypair(&ikm);
        let req = DeriveKek { subject: self.subject(token, omni), context: context.to_vec(), recipient: Bytes(public) };
        let aad = req.aad();
        let asked = req.subject.key_version;
        match self.call(&Request::DeriveKek(req)).await? {
            // Epoch 0 asks for the current one; the answer names it (and the HPKE info binds it).
            Response::SealedKek(s) if asked == 0 || s.key_version == asked => {
                let kek = sigil_enclave::kek::open(&secret, s.key_version, &s.encapsulated_key.0, &s.ciphertext, &aad)
                    .map_err(|_| ClientError::KekOpen)?;
                Ok(Zeroizing::new(*kek.dangerous_as_bytes()))
            }
            _ => Err(ClientError::UnexpectedResponse),
        }
    }
}

/// K3 custody (SPEC §6), all through the attested session.
impl Client {
    /// The enclave's custody state, authenticated (it comes sealed).
    pub async fn custody_status(&self) -> Result<CustodyStatus, ClientError> {
        match self.call(&Request::CustodyStatus).await? {
            Response::CustodyStatus(s) => Ok(s),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Provisions `k3` as epoch `key_version`: HPKE-sealed to this session's attested key,
    /// sent through `/v1/provision` (the host stores the new sealed blob before answering),
    /// then checked with a sealed status: the epoch must be loaded with this K3's fingerprint
    /// and durable. An enclave that already holds K3 needs `proof`: a loaded epoch and its K3.
    pub async fn provision(
        &self,
        key_version: u8,
        k3: &K3,
        proof: Option<(u8, &K3)>,
    ) -> Result<CustodyStatus, ClientError> {
        self.custody_change(Request::Provision, PROVISION_INFO_LABEL, key_version, k3, proof).await?;
        let status = self.custody_status().await?;
        let fp = k3.fingerprint();
        match status.epochs.iter().find(|e| e.epoch.key_version == key_version) {
            Some(e) if e.epoch.k3_fingerprint.0 != fp => {
                Err(ClientError::Custody(format!("epoch {key_version} holds another K3")))
            }
            Some(e) if !e.durable => Err(ClientError::Custody(format!(
                "epoch {key_version} is loaded but pending: the host has not stored its sealed blob (see its log and /v1/custody)"
            ))),
            Some(_) => Ok(status),
            None => Err(ClientError::Custody(format!("epoch {key_version} is not loaded after provisioning"))),
        }
    }

    /// Retires epoch `key_version`, proving possession of its K3 (so it can always be
    /// provisioned again). The last epoch cannot be retired.
    pub async fn retire(&self, key_version: u8, k3: &K3) -> Result<CustodyStatus, ClientError> {
        self.custody_change(Request::Retire, RETIRE_INFO_LABEL, key_version, k3, None).await?;
        let status = self.custody_status().await?;
        if status.epochs.iter().any(|e| e.epoch.key_version == key_version) {
            return Err(ClientError::Custody(format!("epoch {key_version} is still loaded")));
        }
        Ok(status)
    }

    async fn custody_change(
        &self,
        wrap: fn(ProvisionK3) -> Request,
        label: &[u8],
        key_version: u8,
        k3: &K3,
        proof: Option<(u8, &K3)>,
    ) -> Result<CustodyStatus, ClientError> {
        let ikm = random::<32>()?;
        let proof_key_version = proof.map_or(0, |(v, _)| v);
        let mut k3s = vec![k3];
        k3s.extend(proof.map(|(_, k)| k));
        let response = self
            .call_with(PROVISION_PATH, |s| {
                let info = custody::hpke_info(label, &s.binding);
                let aad = ProvisionK3::aad(key_version, proof_key_version);
                let (enc, ciphertext) = sigil_enclave::transfer::seal(&s.enclave_pub, &info, &aad, &k3s, ikm)
                    .map_err(|_| ClientError::Malformed)?;
                let req =
                    wrap(ProvisionK3 { key_version, encapsulated_key: Bytes(enc), ciphertext, proof_key_version });
                postcard::to_allocvec(&req).map(Zeroizing::new).map_err(|_| ClientError::Malformed)
            })
            .await?;
        match response {
            Response::CustodyStatus(s) => Ok(s),
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Checks that evidence from this client's signer (or a peer of it) satisfies this
    /// client's policy and carries `binding`.
    fn check_peer_evidence(&self, evidence: &sigil_protocol::Evidence, binding: &[u8; 64]) -> Result<(), ClientError> {
        let verified = sigil_attestation::verify_evidence(evidence, self.now(), &self.policy)?;
        if verified.user_data != *binding {
            return Err(ClientError::Attestation(sigil_attestation::Error::BindingMismatch));
        }
        Ok(())
    }
}

/// Replicates every durable K3 epoch of `from`'s enclave to `to`'s, enclave to enclave:
/// `to` makes a one-time import key and attests to it, `from` checks that evidence shows its
/// own measurement and seals its epochs to that key (attesting in turn), `to` checks `from`'s
/// evidence and loads them; its host stores and confirms the sealed blob. This client checks
/// both pieces of evidence against its own policies too, and finally confirms through `to`'s
/// attested session that the epochs arrived, with `from`'s fingerprints, durable.
///
/// The K3s never exist outside the two enclaves: this process and both hosts only relay
/// ciphertext and evidence.
pub async fn replicate(from: &Client, to: &Client) -> Result<CustodyStatus, ClientError> {
    let answer = to.post("/v1/peer/offer", Vec::new()).await?;
    let offer: PeerOffer = decode_payload(&answer).map_err(|_| ClientError::Malformed)?;
    to.check_peer_evidence(&offer.evidence, &offer.binding())?;

    let body = postcard::to_allocvec(&offer).map_err(|_| ClientError::Malformed)?;
    let answer = from.post("/v1/peer/export", body).await?;
    let export: PeerExport = decode_payload(&answer).map_err(|_| ClientError::Malformed)?;
    if export.import_pub != offer.import_pub {
        return Err(ClientError::Custody("the export answers another offer".into()));
    }
    from.check_peer_evidence(&export.evidence, &export.binding(sigil_protocol::PROTOCOL_VERSION))?;

    let body = postcard::to_allocvec(&export).map_err(|_| ClientError::Malformed)?;
    to.post("/v1/peer/import", body).await?;
    let status = to.custody_status().await?;
    for epoch in &export.epochs {
        match status.epochs.iter().find(|e| e.epoch.key_version == epoch.key_version) {
            Some(e) if e.epoch == *epoch && e.durable => {}
            Some(e) if e.epoch == *epoch => {
                return Err(ClientError::Custody(format!(
                    "epoch {} arrived but is pending: the receiving host has not stored its sealed blob",
                    epoch.key_version
                )));
            }
            _ => return Err(ClientError::Custody(format!("epoch {} did not arrive", epoch.key_version))),
        }
    }
    Ok(status)
}
