//! The agentKeys signer protocol v0 (SPEC §2): the HTTP routes an existing daemon's *signer
//! URL* points at, byte-compatible with the signer sigil replaces.
//!
//! Check order on every signing route: body parse (415/413/400) → broker JWT (401) → rate
//! limit (429) → provisioned (503) → `message_hex` (400) → `omni_account` (400) → enclave.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sigil_protocol::{
    BrokerToken, DeriveAddress, ErrorCode, OmniAccount, Request, Response, SignEip191, SignEip712, Subject,
};

use crate::audit::{self, AuditLog};
use crate::auth::{self, Authenticator};
use crate::client::EnclaveClient;
use crate::error::AppError;
use crate::metrics::{EnclaveGauges, Metrics};
use crate::ratelimit::RateLimiter;

/// The epoch the compat routes sign with: the old signer's only one.
pub const COMPAT_KEY_VERSION: u8 = 1;
/// Largest request body accepted. The whole request must fit one 64 KiB enclave frame, token
/// included.
pub const MAX_BODY: usize = 48 * 1024;

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
        Self(Arc::new(Shared {
            client,
            auth,
            limiter,
            metrics: Metrics::default(),
            audit,
            unprovisioned_until_ms: AtomicU64::new(0),
            seen_provisioned: AtomicBool::new(false),
            started: Instant::now(),
            next_request_id: AtomicU64::new(1),
        }))
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

/// Reads and parses a JSON body: content type (415), size (413), JSON shape (400).
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, AppError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(AppError::new(ErrorCode::UnsupportedMediaType, "content type must be application/json"));
    }
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| AppError::with(ErrorCode::PayloadTooLarge, format!("request body exceeds {MAX_BODY} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde's message names the field and position; it may quote a scalar the client
        // sent, never anything of the token (which is not in the body).
        AppError::with(ErrorCode::InvalidRequest, format!("malformed request: {e}"))
    })
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
            Ok(r) => {
                if !self.0.seen_provisioned.load(Ordering::Relaxed) {
                    self.note_provisioned(true);
                }
                Ok(r)
            }
            Err(e) => Err(AppError::with(e.code(), e.to_string())),
        }
    }
}

/// The account as the audit log records it: lowercase, and only when it is well-formed (the
/// log never stores arbitrary client text).
fn audit_omni(s: &str) -> Option<String> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

fn parse_omni(s: &str) -> Result<OmniAccount, AppError> {
    let mut out = [0u8; 32];
    if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
        return Err(AppError::new(ErrorCode::InvalidOmniAccount, "omni_account must be 64 hex characters"));
    }
    Ok(OmniAccount::from(out))
}

fn parse_message_hex(s: &str) -> Result<Vec<u8>, AppError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map_err(|_| AppError::new(ErrorCode::InvalidMessageHex, "message_hex must be even-length hex"))
}

fn subject(headers: &HeaderMap, omni: OmniAccount) -> Result<Subject, AppError> {
    Ok(Subject { token: BrokerToken::new(auth::bearer(headers)?.to_owned()), key_version: COMPAT_KEY_VERSION, omni })
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

#[derive(Serialize)]
struct AddressOut {
    address: String,
    key_version: u8,
}

async fn derive_address(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Outcome {
    let mut info = AuditInfo::default();
    let result = async {
        let req: DeriveAddressBody = json_body(&headers, body).await?;
        info.omni = audit_omni(&req.omni_account);
        st.admit(&headers, &req.omni_account).await?;
        let omni = parse_omni(&req.omni_account)?;
        let subject = subject(&headers, omni)?;
        match st.call(Request::DeriveAddress(DeriveAddress { subject })).await? {
            Response::Address(a) => {
                Ok(Json(AddressOut { address: hex0x(&a.address.0), key_version: a.key_version }).into_response())
            }
            _ => Err(unexpected()),
        }
    }
    .await;
    Outcome { info, result }
}

#[derive(Serialize)]
struct SignatureOut {
    signature: String,
    address: String,
    key_version: u8,
}

async fn sign_message(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Outcome {
    let mut info = AuditInfo::default();
    let result = async {
        let req: SignMessageBody = json_body(&headers, body).await?;
        info.omni = audit_omni(&req.omni_account);
        st.admit(&headers, &req.omni_account).await?;
        let message = parse_message_hex(&req.message_hex)?;
        let omni = parse_omni(&req.omni_account)?;
        if st.0.audit.is_some() {
            info.payload_sha256 = Some(hex::encode(Sha256::digest(&message)));
        }
        let subject = subject(&headers, omni)?;
        match st.call(Request::SignEip191(SignEip191 { subject, message })).await? {
            Response::Eip191Signature(s) => Ok(Json(SignatureOut {
                signature: hex0x(&s.signature.0),
                address: hex0x(&s.address.0),
                key_version: s.key_version,
            })
            .into_response()),
            _ => Err(unexpected()),
        }
    }
    .await;
    Outcome { info, result }
}

#[derive(Serialize)]
struct TypedSignatureOut {
    signature: String,
    address: String,
    primary_type_hash: String,
    domain_separator: String,
    digest: String,
    key_version: u8,
}

async fn sign_typed_data(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Outcome {
    let mut info = AuditInfo::default();
    let result = async {
        let req: SignTypedDataBody = json_body(&headers, body).await?;
        info.omni = audit_omni(&req.omni_account);
        st.admit(&headers, &req.omni_account).await?;
        let omni = parse_omni(&req.omni_account)?;
        let typed_data = req.typed_data.get().to_owned();
        if !typed_data.starts_with('{') {
            return Err(AppError::new(ErrorCode::InvalidRequest, "typed_data must be a JSON object"));
        }
        if st.0.audit.is_some() {
            info.payload_sha256 = Some(hex::encode(Sha256::digest(typed_data.as_bytes())));
        }
        let subject = subject(&headers, omni)?;
        match st.call(Request::SignEip712(SignEip712 { subject, typed_data })).await? {
            Response::Eip712Signature(s) => Ok(Json(TypedSignatureOut {
                signature: hex0x(&s.signature.0),
                address: hex0x(&s.address.0),
                primary_type_hash: hex0x(&s.primary_type_hash.0),
                domain_separator: hex0x(&s.domain_separator.0),
                digest: hex0x(&s.digest.0),
                key_version: s.key_version,
            })
            .into_response()),
            _ => Err(unexpected()),
        }
    }
    .await;
    Outcome { info, result }
}

/// A non-TEE signer answers 404 here (SPEC §2); attested evidence arrives with issue #4.
async fn attestation() -> AppError {
    AppError::new(ErrorCode::NotFound, "attestation is not available from this signer")
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
        Some(false) => {
            AppError::new(ErrorCode::SignerDisabled, "enclave reachable but not provisioned").into_response()
        }
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
