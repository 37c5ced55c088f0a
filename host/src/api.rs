//! The agentKeys signer protocol v0 (SPEC §2): the HTTP routes an existing daemon's *signer
//! URL* points at, byte-compatible with the signer sigil replaces.
//!
//! Check order on every signing route: body parse (415/413/400) → broker JWT (401) → rate
//! limit (429) → provisioned (503) → `message_hex` (400) → `omni_account` (400) → operation.
//!
//! The host makes the checks up to "provisioned" itself, to turn bad or unauthenticated
//! traffic away early. Everything after is the enclave's: the host relays the raw body
//! ([`DevCall`]) and answers with the enclave's status and body verbatim plus
//! `x-sigil-signature`, the enclave's Ed25519 signature over
//! [`sigil_protocol::dev_response_signed_bytes`], verifiable with the key `/dev/attestation`
//! attests to. Answers the host makes itself (its early refusals) carry no signature.
//!
//! `/v1/session` and `/v1/sealed` relay the attested session (SPEC §5) as postcard bytes:
//! the host cannot read or alter what travels inside.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64ct::{Base64, Encoding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sigil_protocol::{
    AttestRequest, Attestation, BrokerToken, DevCall, DevResponse, DevRoute, ErrorCode, Request, Response,
    SealedRecord, decode_payload,
};

use crate::audit::{self, AuditLog};
use crate::auth::{self, Authenticator};
use crate::client::EnclaveClient;
use crate::custody::{BlobStore, Custodian, REPROVISION_HINT, Report};
use crate::error::AppError;
use crate::metrics::{EnclaveGauges, Metrics};
use crate::ratelimit::RateLimiter;

/// The epoch the compat routes sign with: the old signer's only one.
pub const COMPAT_KEY_VERSION: u8 = 1;
/// Largest request body accepted. The whole request must fit one 64 KiB enclave frame, token
/// included.
pub const MAX_BODY: usize = 48 * 1024;
/// Largest `/v1/session` body: a postcard `AttestRequest` is at most 67 bytes.
pub const MAX_SESSION_BODY: usize = 1024;
/// The header carrying the enclave's signature of a `/dev/*` answer (128 lowercase hex).
pub const SIGNATURE_HEADER: &str = "x-sigil-signature";

/// How long an enclave's "not provisioned" answer is trusted before the enclave is asked again
/// (so a freshly provisioned or restarted enclave is noticed within this time, while an
/// unprovisioned one is not asked on every request).
const UNPROVISIONED_TTL_MS: u64 = 1_000;

/// Everything the handlers share.
pub struct Shared {
    /// Connection pool to the enclave.
    pub client: EnclaveClient,
    /// The host-side broker-JWT check.
    pub auth: Authenticator,
    /// Per-account rate limit.
    pub limiter: RateLimiter,
    /// Prometheus counters.
    pub metrics: Metrics,
    /// JSON-lines audit log, if configured.
    pub audit: Option<AuditLog>,
    /// Sealed-blob storage and K3 restore.
    pub custodian: Custodian,
    /// Until when (ms since `started`) requests are refused as unprovisioned without asking
    /// the enclave; 0 once the enclave has been seen provisioned.
    unprovisioned_until_ms: AtomicU64,
    /// Whether the enclave's last word was that it holds K3 for the compat epoch.
    seen_provisioned: AtomicBool,
    started: Instant,
    next_request_id: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Cheaply clonable handle to [`Shared`], the axum state.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<Shared>);

impl AppState {
    /// Bundles the parts.
    #[must_use]
    pub fn new(client: EnclaveClient, auth: Authenticator, limiter: RateLimiter, audit: Option<AuditLog>) -> Self {
        Self::with_store(client, auth, limiter, audit, None)
    }

    /// As [`AppState::new`], keeping the enclave's sealed K3 blobs in `store` (`--state-dir`).
    #[must_use]
    pub fn with_store(
        client: EnclaveClient,
        auth: Authenticator,
        limiter: RateLimiter,
        audit: Option<AuditLog>,
        store: Option<BlobStore>,
    ) -> Self {
        Self(Arc::new(Shared {
            client,
            auth,
            limiter,
            metrics: Metrics::default(),
            audit,
            custodian: Custodian::new(store),
            unprovisioned_until_ms: AtomicU64::new(0),
            seen_provisioned: AtomicBool::new(false),
            started: Instant::now(),
            next_request_id: AtomicU64::new(1),
        }))
    }

    /// Restores K3 into a (re)started enclave and stores its sealed blob when its epochs
    /// change (see [`Custodian::reconcile`]).
    ///
    /// # Errors
    /// The enclave could not be asked.
    pub async fn reconcile_custody(&self) -> Result<Report, AppError> {
        let report = self.0.custodian.reconcile(&self.0.client).await?;
        self.note_provisioned(
            report.status.epochs.iter().any(|e| e.durable && e.epoch.key_version == COMPAT_KEY_VERSION),
        );
        Ok(report)
    }

    /// Reconciles custody now and then every `every`, for as long as the runtime runs: an
    /// enclave that restarts is given its K3 back within `every`.
    pub fn spawn_custody(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let st = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = st.reconcile_custody().await {
                    tracing::debug!(error = %e.message, "custody check skipped: enclave not reachable");
                }
            }
        })
    }

    /// Asks the enclave whether the compat epoch is provisioned and remembers the answer.
    /// Returns `None` when the enclave cannot be asked.
    pub async fn refresh_provisioned(&self) -> Option<bool> {
        match self.0.client.call(Request::Status).await {
            Ok(Response::Status(s)) => {
                let yes = s.epochs.iter().any(|e| e.key_version == COMPAT_KEY_VERSION);
                self.note_provisioned(yes);
                Some(yes)
            }
            _ => None,
        }
    }
}

/// The router: SPEC §2 routes plus `/readyz` and `/metrics`; every non-2xx is a JSON envelope.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/dev/derive-address", post(derive_address))
        .route("/dev/sign-message", post(sign_message))
        .route("/dev/sign-typed-data", post(sign_typed_data))
        .route("/dev/attestation", get(attestation))
        .route("/v1/session", post(session))
        .route("/v1/sealed", post(sealed))
        .route("/v1/provision", post(provision))
        .route("/v1/custody", get(custody_status))
        .route("/v1/peer/offer", post(peer_offer))
        .route("/v1/peer/export", post(peer_export))
        .route("/v1/peer/import", post(peer_import))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// What a handler reports for the audit log, carried in the response's extensions.
#[derive(Clone, Default)]
struct AuditInfo {
    omni: Option<String>,
    payload_sha256: Option<String>,
}

/// A handler's result plus its audit details.
struct Outcome {
    info: AuditInfo,
    result: Result<HttpResponse, AppError>,
}

impl IntoResponse for Outcome {
    fn into_response(self) -> HttpResponse {
        let mut resp = match self.result {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        resp.extensions_mut().insert(self.info);
        resp
    }
}

/// Routes named in metrics; anything else is `other` so label cardinality stays bounded.
fn route_label(path: &str) -> &'static str {
    match path {
        "/dev/derive-address" => "/dev/derive-address",
        "/dev/sign-message" => "/dev/sign-message",
        "/dev/sign-typed-data" => "/dev/sign-typed-data",
        "/dev/attestation" => "/dev/attestation",
        "/v1/session" => "/v1/session",
        "/v1/sealed" => "/v1/sealed",
        "/v1/provision" => "/v1/provision",
        "/v1/custody" => "/v1/custody",
        "/v1/peer/offer" => "/v1/peer/offer",
        "/v1/peer/export" => "/v1/peer/export",
        "/v1/peer/import" => "/v1/peer/import",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

/// Metrics, audit log and `x-request-id` for every request, whatever its outcome.
async fn observe(State(st): State<AppState>, req: HttpRequest, next: Next) -> HttpResponse {
    let start = Instant::now();
    let id = st.0.next_request_id.fetch_add(1, Ordering::Relaxed);
    let route = route_label(req.uri().path());
    let mut resp = next.run(req).await;
    let elapsed = start.elapsed();
    let outcome = resp.extensions().get::<ErrorCode>().map_or("ok", |c| c.http_code());
    st.0.metrics.record(route, outcome, elapsed);
    if let Some(log) = &st.0.audit {
        let info = resp.extensions_mut().remove::<AuditInfo>().unwrap_or_default();
        log.write(&audit::Record {
            ts_ms: audit::now_ms(),
            request_id: id,
            route,
            omni: info.omni.as_deref(),
            payload_sha256: info.payload_sha256.as_deref(),
            outcome,
            status: resp.status().as_u16(),
            latency_us: elapsed.as_micros(),
        });
    }
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

// ---------------------------------------------------------------------------------------
// Request bodies and shared checks

#[derive(Deserialize)]
struct DeriveAddressBody {
    omni_account: String,
}

#[derive(Deserialize)]
struct SignMessageBody {
    omni_account: String,
    message_hex: String,
}

#[derive(Deserialize)]
struct SignTypedDataBody {
    omni_account: String,
    typed_data: Box<RawValue>,
}

/// Whether the request's content type is `mime` (parameters and case ignored).
fn has_content_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime))
}

/// Reads a body of at most `limit` bytes (413 beyond).
async fn read_body(body: Body, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::with(ErrorCode::PayloadTooLarge, format!("request body exceeds {limit} bytes")))
}

/// Reads and parses a JSON body: content type (415), size (413), JSON shape (400). Returns
/// the raw bytes too: they are what the enclave reads and signs over.
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<(Bytes, T), AppError> {
    if !has_content_type(headers, "application/json") {
        return Err(AppError::new(ErrorCode::UnsupportedMediaType, "content type must be application/json"));
    }
    let bytes = read_body(body, MAX_BODY).await?;
    let parsed = serde_json::from_slice(&bytes).map_err(|e| {
        // serde's message names the field and position; it may quote a scalar the client
        // sent, never anything of the token (which is not in the body).
        AppError::with(ErrorCode::InvalidRequest, format!("malformed request: {e}"))
    })?;
    Ok((bytes, parsed))
}

/// Reads a postcard body (`application/octet-stream`, at most `limit` bytes) as a `T`,
/// accepting only its canonical encoding.
async fn postcard_body<T: Serialize + DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, AppError> {
    if !has_content_type(headers, "application/octet-stream") {
        return Err(AppError::new(ErrorCode::UnsupportedMediaType, "content type must be application/octet-stream"));
    }
    let bytes = read_body(body, limit).await?;
    decode_payload(&bytes)
        .map_err(|_| AppError::new(ErrorCode::InvalidRequest, "malformed request: not a postcard message"))
}

/// A `200 application/octet-stream` answer holding `msg` in postcard.
fn postcard_response<T: Serialize>(msg: &T) -> Result<HttpResponse, AppError> {
    let bytes =
        postcard::to_allocvec(msg).map_err(|_| AppError::new(ErrorCode::Internal, "response encoding failed"))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))], bytes).into_response())
}

impl AppState {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn note_provisioned(&self, yes: bool) {
        let until = if yes { 0 } else { self.now_ms().saturating_add(UNPROVISIONED_TTL_MS).max(1) };
        self.0.unprovisioned_until_ms.store(until, Ordering::Relaxed);
        self.0.seen_provisioned.store(yes, Ordering::Relaxed);
    }

    /// The checks every signing route makes after parsing, in SPEC order, up to (not
    /// including) the route's own field validation: JWT, rate limit, provisioned.
    async fn admit(&self, headers: &HeaderMap, omni_account: &str) -> Result<(), AppError> {
        self.0.auth.authorize(headers, omni_account)?;
        if !self.0.limiter.allow(omni_account) {
            return Err(AppError::new(ErrorCode::RateLimited, "rate limit exceeded for this account"));
        }
        // "Provisioned" must be known before the fields are validated (SPEC order), so ask the
        // enclave unless it has been seen provisioned (or refused less than a second ago).
        let disabled = || AppError::new(ErrorCode::SignerDisabled, "signer not provisioned: no K3 loaded");
        if self.now_ms() < self.0.unprovisioned_until_ms.load(Ordering::Relaxed) {
            return Err(disabled());
        }
        if !self.0.seen_provisioned.load(Ordering::Relaxed) && self.refresh_provisioned().await == Some(false) {
            return Err(disabled());
        }
        Ok(())
    }

    /// Sends a request to the enclave; enclave errors come back as their SPEC codes.
    async fn call(&self, req: Request) -> Result<Response, AppError> {
        match self.0.client.call(req).await {
            Ok(Response::Error(e)) => {
                if matches!(e.code, ErrorCode::SignerDisabled | ErrorCode::UnknownKeyVersion) {
                    self.note_provisioned(false);
                }
                Err(AppError::with(e.code, e.message))
            }
            Ok(r) => Ok(r),
            Err(e) => Err(AppError::with(e.code(), e.to_string())),
        }
    }

    /// Relays a `/dev/*` call and answers with the enclave's signed status and body.
    async fn dev_call(&self, headers: &HeaderMap, route: DevRoute, body: Bytes) -> Result<HttpResponse, AppError> {
        let token = BrokerToken::new(auth::bearer(headers)?.to_owned());
        let call = DevCall { route, token, body: body.into() };
        match self.0.client.call(Request::DevCall(call)).await {
            Ok(Response::DevResponse(r)) => self.dev_response(r),
            // The enclave answers every outcome of a route, errors included, with a signed
            // `DevResponse`; a bare error means it could not serve the call at all (version
            // skew, no entropy for its signing key): never the HTTP client's fault.
            Ok(Response::Error(e)) => {
                Err(AppError::with(ErrorCode::Internal, format!("the enclave could not serve the call: {}", e.message)))
            }
            Ok(_) => Err(unexpected()),
            Err(e) => Err(AppError::with(e.code(), e.to_string())),
        }
    }

    fn dev_response(&self, r: DevResponse) -> Result<HttpResponse, AppError> {
        let status = StatusCode::from_u16(r.status).map_err(|_| unexpected())?;
        let code = if status.is_success() {
            if !self.0.seen_provisioned.load(Ordering::Relaxed) {
                self.note_provisioned(true);
            }
            None
        } else {
            let code = envelope_code(&r.body);
            if code == ErrorCode::SignerDisabled {
                self.note_provisioned(false);
            }
            Some(code)
        };
        let signature = HeaderValue::from_str(&hex::encode(r.signature.0)).map_err(|_| unexpected())?;
        let mut resp = (status, r.body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp.headers_mut().insert(SIGNATURE_HEADER, signature);
        if let Some(code) = code {
            // For metrics and the audit log, like the host's own errors.
            resp.extensions_mut().insert(code);
        }
        Ok(resp)
    }
}

/// The code of an enclave-made error envelope, for metrics (`internal` if unreadable).
fn envelope_code(body: &[u8]) -> ErrorCode {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        error: std::borrow::Cow<'a, str>,
    }
    let Ok(env) = serde_json::from_slice::<Envelope<'_>>(body) else {
        return ErrorCode::Internal;
    };
    // Codes are numbered densely from 1; the SPEC set is well inside the first 64.
    (1..64).map(ErrorCode::from_u16).find(|c| c.http_code() == env.error).unwrap_or(ErrorCode::Internal)
}

/// The account as the audit log records it: lowercase, and only when it is well-formed (the
/// log never stores arbitrary client text).
fn audit_omni(s: &str) -> Option<String> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// The message a sign-message request names, for the audit log's hash (the enclave makes
/// the authoritative check).
fn message_bytes(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok()
}

fn hex0x(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    s.push_str(&hex::encode(bytes));
    s
}

fn unexpected() -> AppError {
    AppError::new(ErrorCode::Internal, "unexpected response from the enclave")
}

// ---------------------------------------------------------------------------------------
// Handlers

async fn derive_address(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Outcome {
    let mut info = AuditInfo::default();
    let result = async {
        let (raw, req): (_, DeriveAddressBody) = json_body(&headers, body).await?;
        info.omni = audit_omni(&req.omni_account);
        st.admit(&headers, &req.omni_account).await?;
        st.dev_call(&headers, DevRoute::DeriveAddress, raw).await
    }
    .await;
    Outcome { info, result }
}

async fn sign_message(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Outcome {
    let mut info = AuditInfo::default();
    let result = async {
        let (raw, req): (_, SignMessageBody) = json_body(&headers, body).await?;
        info.omni = audit_omni(&req.omni_account);
        st.admit(&headers, &req.omni_account).await?;
        if st.0.audit.is_some() && info.omni.is_some() {
            info.payload_sha256 = message_bytes(&req.message_hex).map(|m| hex::encode(Sha256::digest(&m)));
        }
        st.dev_call(&headers, DevRoute::SignMessage, raw).await
    }
    .await;
    Outcome { info, result }
}

async fn sign_typed_data(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Outcome {
    let mut info = AuditInfo::default();
    let result = async {
        let (raw, req): (_, SignTypedDataBody) = json_body(&headers, body).await?;
        info.omni = audit_omni(&req.omni_account);
        st.admit(&headers, &req.omni_account).await?;
        let typed_data = req.typed_data.get();
        if st.0.audit.is_some() && info.omni.is_some() && typed_data.starts_with('{') {
            info.payload_sha256 = Some(hex::encode(Sha256::digest(typed_data.as_bytes())));
        }
        st.dev_call(&headers, DevRoute::SignTypedData, raw).await
    }
    .await;
    Outcome { info, result }
}

/// `?nonce=<64 hex>` (a leading `0x` tolerated), exactly once.
fn query_nonce(query: Option<&str>) -> Result<[u8; 32], AppError> {
    let bad = || AppError::new(ErrorCode::InvalidRequest, "nonce must be 32 bytes as 64 hex characters");
    let mut values = query.unwrap_or_default().split('&').filter_map(|kv| kv.strip_prefix("nonce="));
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(bad());
    };
    let value = value.strip_prefix("0x").unwrap_or(value);
    let mut nonce = [0u8; 32];
    if value.len() != 64 || hex::decode_to_slice(value, &mut nonce).is_err() {
        return Err(bad());
    }
    Ok(nonce)
}

#[derive(Serialize)]
struct AttestationOut {
    platform: &'static str,
    protocol_version: u8,
    nonce: String,
    signing_pub: String,
    k3_fingerprint: String,
    binding: String,
    evidence: EvidenceOut,
}

#[derive(Serialize)]
struct EvidenceOut {
    document: String,
    certificates: Vec<String>,
}

/// Evidence bound to the caller's nonce (SPEC §5), as JSON: no session, nothing secret, so
/// no token is needed. `binding` is a convenience: a verifier recomputes it from the fields
/// and its own nonce rather than trusting the (untrusted) host's arithmetic.
async fn attestation(State(st): State<AppState>, RawQuery(query): RawQuery) -> Result<HttpResponse, AppError> {
    let request =
        AttestRequest { client_nonce: sigil_protocol::Bytes(query_nonce(query.as_deref())?), client_pub: None };
    let a: Attestation = match st.call(Request::Attest(request)).await? {
        Response::Attestation(a) if a.enclave_pub.is_none() => a,
        _ => return Err(unexpected()),
    };
    let binding = a.binding(&request).hash();
    Ok(Json(AttestationOut {
        platform: a.evidence.platform.label(),
        protocol_version: a.protocol_version,
        nonce: hex0x(&request.client_nonce.0),
        signing_pub: hex0x(&a.signing_pub.0),
        k3_fingerprint: hex0x(&a.k3_fingerprint.0),
        binding: hex0x(&binding),
        evidence: EvidenceOut {
            document: Base64::encode_string(&a.evidence.document),
            certificates: a.evidence.certificates.iter().map(|c| Base64::encode_string(c)).collect(),
        },
    })
    .into_response())
}

/// Opens an attested session: postcard `AttestRequest` in, postcard `Attestation` out.
async fn session(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Result<HttpResponse, AppError> {
    let request: AttestRequest = postcard_body(&headers, body, MAX_SESSION_BODY).await?;
    match st.call(Request::Attest(request)).await? {
        Response::Attestation(a) => postcard_response(&a),
        _ => Err(unexpected()),
    }
}

/// Relays one sealed record of a session: postcard `SealedRecord` in and out. The JWT
/// travels sealed inside; the enclave checks it.
async fn sealed(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Result<HttpResponse, AppError> {
    let record: SealedRecord = postcard_body(&headers, body, MAX_BODY).await?;
    match st.call(Request::Sealed(record)).await? {
        Response::Sealed(r) => postcard_response(&r),
        _ => Err(unexpected()),
    }
}

/// Relays a sealed record carrying a custody change (`Provision`, `Retire`) and, before
/// answering, stores and confirms the enclave's new sealed blob, so the operator's next
/// (sealed) status shows the epoch durable.
async fn provision(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Result<HttpResponse, AppError> {
    let record: SealedRecord = postcard_body(&headers, body, MAX_BODY).await?;
    let Response::Sealed(answer) = st.call(Request::Sealed(record)).await? else {
        return Err(unexpected());
    };
    if let Err(e) = st.reconcile_custody().await {
        tracing::error!(error = %e.message, "custody not reconciled after provisioning");
    }
    postcard_response(&answer)
}

#[derive(Serialize)]
struct EpochOut {
    key_version: u8,
    k3_fingerprint: String,
    durable: bool,
}

#[derive(Serialize)]
struct CustodyOut {
    provisioned: bool,
    current_key_version: Option<u8>,
    epochs: Vec<EpochOut>,
    sealer: Option<&'static str>,
    needs_seal: bool,
    state_dir: Option<String>,
    sealed_generations: Vec<u64>,
    reprovision_required: Option<String>,
    persist_error: Option<String>,
    hint: Option<&'static str>,
}

/// `GET /v1/custody`: the enclave's epochs and the host's blob store, as JSON (public values
/// only). Unauthenticated, like `/readyz`; an operator's authenticated view is the sealed
/// status inside an attested session.
async fn custody_status(State(st): State<AppState>) -> Result<HttpResponse, AppError> {
    // A read: it never reconciles (that is the custody task's and the custody routes' job),
    // so unauthenticated polling cannot queue work behind the reconciliation lock.
    let r = st.0.custodian.report(&st.0.client).await?;
    let reprovision = r.reprovision.clone().or_else(|| r.status.reprovision.clone());
    let hint = if reprovision.is_some() {
        Some(REPROVISION_HINT)
    } else if r.status.current_key_version.is_none() {
        Some(
            "no K3 yet: load it with `sigil provision` (for example the old signer's DEV_KEY_SERVICE_MASTER_SECRET) or `sigil replicate` from a provisioned peer",
        )
    } else {
        None
    };
    Ok(Json(CustodyOut {
        provisioned: r.status.current_key_version.is_some(),
        current_key_version: r.status.current_key_version,
        epochs: r
            .status
            .epochs
            .iter()
            .map(|e| EpochOut {
                key_version: e.epoch.key_version,
                k3_fingerprint: hex0x(&e.epoch.k3_fingerprint.0),
                durable: e.durable,
            })
            .collect(),
        sealer: r.status.sealer.map(sigil_protocol::Platform::label),
        needs_seal: r.status.needs_seal,
        state_dir: st.0.custodian.store().map(|s| s.dir().display().to_string()),
        sealed_generations: r.generations,
        hint,
        reprovision_required: reprovision,
        persist_error: r.persist_error,
    })
    .into_response())
}

/// `POST /v1/peer/offer`: the enclave's one-time import key and evidence (postcard
/// `PeerOffer`), for a peer to seal its K3 epochs to.
async fn peer_offer(State(st): State<AppState>) -> Result<HttpResponse, AppError> {
    match st.call(Request::PeerOffer).await? {
        Response::PeerOffer(o) => postcard_response(&o),
        _ => Err(unexpected()),
    }
}

/// `POST /v1/peer/export`: postcard `PeerOffer` in, postcard `PeerExport` out. The enclave
/// refuses unless the offer's evidence shows its own measurement.
async fn peer_export(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Result<HttpResponse, AppError> {
    let offer = postcard_body(&headers, body, MAX_BODY).await?;
    match st.call(Request::ExportForPeer(offer)).await? {
        Response::PeerExport(x) => postcard_response(&x),
        _ => Err(unexpected()),
    }
}

/// `POST /v1/peer/import`: postcard `PeerExport` in; the enclave checks the exporter's
/// evidence, loads the epochs, and the host stores and confirms the new blob before
/// answering with the postcard `CustodyStatus`.
async fn peer_import(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Result<HttpResponse, AppError> {
    let export = postcard_body(&headers, body, MAX_BODY).await?;
    match st.call(Request::ImportFromPeer(export)).await? {
        Response::CustodyStatus(_) => {}
        _ => return Err(unexpected()),
    }
    let report = st.reconcile_custody().await?;
    postcard_response(&report.status)
}

/// Operator runbooks string-match this body.
async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], "ok")
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
}

/// Ready only when the enclave is reachable and holds K3 for the compat epoch.
async fn readyz(State(st): State<AppState>) -> HttpResponse {
    match st.refresh_provisioned().await {
        Some(true) => Json(Ready { ready: true }).into_response(),
        Some(false) => match st.0.custodian.reprovision() {
            Some(reason) => AppError::with(
                ErrorCode::ReprovisionRequired,
                format!("K3 could not be restored from the sealed blob ({reason}); {REPROVISION_HINT}"),
            )
            .into_response(),
            None => AppError::new(ErrorCode::SignerDisabled, "enclave reachable but not provisioned").into_response(),
        },
        None => AppError::new(ErrorCode::EnclaveUnavailable, "enclave unreachable").into_response(),
    }
}

async fn metrics(State(st): State<AppState>) -> HttpResponse {
    let s = st.0.client.stats();
    let gauges =
        EnclaveGauges { in_flight: s.in_flight as u64, connections: s.connected as u64, reconnects: s.reconnects };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))],
        st.0.metrics.render(gauges),
    )
        .into_response()
}

async fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> AppError {
    AppError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn nonce_query() {
        let hex64 = "ab".repeat(32);
        assert_eq!(query_nonce(Some(&format!("nonce={hex64}"))).unwrap(), [0xab; 32]);
        assert_eq!(query_nonce(Some(&format!("nonce=0x{}", hex64.to_ascii_uppercase()))).unwrap(), [0xab; 32]);
        assert_eq!(query_nonce(Some(&format!("a=1&nonce={hex64}&b"))).unwrap(), [0xab; 32]);
        for bad in [
            None,
            Some(String::new()),
            Some("nonce=".into()),
            Some(format!("nonce={}", &hex64[1..])),
            Some(format!("nonce={hex64}0")),
            Some(format!("nonce=0X{hex64}")),
            Some(format!("nonce={hex64}&nonce={hex64}")),
            Some(format!("xnonce={hex64}")),
            Some(format!("nonce={}", "g".repeat(64))),
        ] {
            let e = query_nonce(bad.as_deref()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad:?}");
        }
    }

    #[test]
    fn envelope_codes_for_metrics() {
        let code = |body: &str| envelope_code(body.as_bytes());
        assert_eq!(code(r#"{"error":"invalid_omni_account","message":"x"}"#), ErrorCode::InvalidOmniAccount);
        assert_eq!(code(r#"{"error":"signer_disabled","message":"x"}"#), ErrorCode::SignerDisabled);
        assert_eq!(code(r#"{"error":"unauthorized","message":"\"quoted\""}"#), ErrorCode::Unauthorized);
        assert_eq!(code(r#"{"error":"no_such_code","message":"x"}"#), ErrorCode::Internal);
        assert_eq!(code("not json"), ErrorCode::Internal);
    }
}
