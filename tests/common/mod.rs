//! Shared helpers for the root end-to-end tests: a test broker minting real ES256 JWTs with
//! ring (independent of both the host's jsonwebtoken and the enclave's verifier), an HTTP(S)
//! client that checks the SPEC §2 error envelope on every non-2xx answer, and an independent
//! Ethereum signature check (RustCrypto k256 + sha3, not the enclave's libsecp256k1).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test helpers: failing loudly is the point; each test binary uses a subset"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use reqwest::Method;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

/// K3 = 00 01 … 1f, the SPEC §3 vector key.
pub const K3_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The audience every broker token carries.
pub const AUDIENCE: &str = "agentkeys:broker";

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// K3 bytes 00..1f.
pub fn k3_seq_bytes() -> [u8; 32] {
    std::array::from_fn(|i| u8::try_from(i).unwrap())
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// `"0x" + lowercase hex`.
pub fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// `-----BEGIN {label}-----` PEM with 64-column lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = Base64::encode_string(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

pub fn b64url(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

// ---------------------------------------------------------------------------------------
// Broker tokens

/// A broker key pair (P-256) that mints real ES256 tokens.
pub struct Broker {
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
    jti: AtomicU64,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap().as_ref().to_vec();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        Self { key, pkcs8, rng, jti: AtomicU64::new(1) }
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        der
    }

    /// The public key as SPKI PEM (what `--broker-pubkey` reads).
    pub fn spki_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki_der())
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), for PyJWT.
    pub fn pkcs8_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    /// Signs `header.claims` (both serialized as given) with this key: an ES256 JWS.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64url(header.as_bytes()), b64url(claims.as_bytes()));
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(sig.as_ref()))
    }

    pub fn mint(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// Broker-shaped claims for `omni`, valid for an hour from now.
    pub fn claims(&self, omni: &str) -> Value {
        let now = now();
        let jti = self.jti.fetch_add(1, Ordering::Relaxed);
        json!({
            "iss": "agentkeys-broker",
            "sub": format!("agentkeys:user:{omni}"),
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "jti": format!("jti-{jti}"),
            "agentkeys": {
                "omni_account": omni,
                "wallet_address": "0x0000000000000000000000000000000000000000",
                "identity_type": "email",
                "identity_value": "alice@example.com",
            },
        })
    }

    /// A valid one-hour token for `omni`, as the broker would issue it.
    pub fn token(&self, omni: &str) -> String {
        self.mint(&header(), &self.claims(omni))
    }
}

/// The header real broker tokens carry.
pub fn header() -> Value {
    json!({"alg": "ES256", "kid": format!("ak-session-{}", now())})
}

// ---------------------------------------------------------------------------------------
// HTTP

/// One answer, with the SPEC §2 envelope already checked when it is not 2xx.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub request_id: Option<String>,
    /// `x-sigil-signature`: the enclave's signature of a `/dev/*` answer it produced.
    pub signature: Option<String>,
    /// The body as received.
    pub bytes: Vec<u8>,
    /// The body as text (lossy for binary bodies).
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// Asserts `200 application/json` and returns the body.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "expected 200, got {}: {}", self.status, self.text);
        assert_eq!(self.content_type, "application/json", "{}", self.text);
        self.json()
    }

    /// Asserts the status, `content-type: application/json` and the exact error code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.error().as_deref()), (status, Some(code)), "body: {}", self.text);
        assert_eq!(self.content_type, "application/json");
    }

    /// The `error` code of a non-2xx answer.
    pub fn error(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        self.json()["error"].as_str().map(str::to_owned)
    }
}

/// Checks the SPEC §2 envelope: `application/json`, an object with exactly the string fields
/// `error` (non-empty) and `message`.
pub fn check_envelope(status: u16, content_type: &str, text: &str, what: &str) {
    assert_eq!(content_type, "application/json", "{what}: {status} without a JSON content type: {text}");
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {status} body not JSON ({e}): {text}"));
    let obj = v.as_object().unwrap_or_else(|| panic!("{what}: {status} body not an object: {text}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "message"], "{what}: {status} envelope fields: {text}");
    assert!(obj["error"].as_str().is_some_and(|s| !s.is_empty()), "{what}: {text}");
    assert!(obj["message"].is_string(), "{what}: {text}");
}

/// A client for one signer (HTTPS with its certificate as the only root, or plain HTTP).
#[derive(Clone, Debug)]
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    /// HTTPS to `addr`, trusting only `cert_pem`. The URL names `localhost`, which the
    /// certificate covers, so the hostname is verified as well.
    pub fn https(addr: std::net::SocketAddr, cert_pem: &str) -> Self {
        let cert = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([cert])
            .https_only(true)
            .resolve("localhost", addr)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self { client, base: format!("https://localhost:{}", addr.port()) }
    }

    /// Plain HTTP on loopback; `timeout` bounds every request.
    pub fn plain(addr: std::net::SocketAddr, timeout: Duration) -> Self {
        let client = reqwest::Client::builder().no_proxy().timeout(timeout).build().unwrap();
        Self { client, base: format!("http://{addr}") }
    }

    /// Sends one request; a non-2xx answer must carry the JSON error envelope.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        self.try_send(method.clone(), path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: transport error: {e:?}"))
    }

    /// [`Http::send`], returning transport errors (timeouts, refused connections).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, reqwest::Error> {
        let what = format!("{method} {path}");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let content_type = header("content-type").unwrap_or_default();
        let request_id = header("x-request-id");
        let signature = header("x-sigil-signature");
        let bytes = resp.bytes().await?.to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !(200..300).contains(&status) {
            check_envelope(status, &content_type, &text, &what);
        }
        Ok(Reply { status, content_type, request_id, signature, bytes, text })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    /// `POST path` with `content-type: application/json` and, if given, `Bearer token`.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.send(Method::POST, path, &headers, Some(body.as_bytes().to_vec())).await
    }

    /// `POST path` with `content-type: application/octet-stream` (the `/v1/*` session routes).
    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> Reply {
        self.send(Method::POST, path, &[("content-type", "application/octet-stream")], Some(body)).await
    }

    pub async fn derive(&self, token: &str, omni: &str) -> Reply {
        self.post_json("/dev/derive-address", Some(token), &json!({"omni_account": omni}).to_string()).await
    }

    pub async fn sign_message(&self, token: &str, omni: &str, message_hex: &str) -> Reply {
        let body = json!({"omni_account": omni, "message_hex": message_hex}).to_string();
        self.post_json("/dev/sign-message", Some(token), &body).await
    }

    pub async fn sign_typed(&self, token: &str, omni: &str, typed_data: &Value) -> Reply {
        let body = json!({"omni_account": omni, "typed_data": typed_data}).to_string();
        self.post_json("/dev/sign-typed-data", Some(token), &body).await
    }
}

// ---------------------------------------------------------------------------------------
// Independent Ethereum checks (k256 + sha3)

pub fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The EIP-191 personal-message digest, computed here.
pub fn eip191_digest(msg: &[u8]) -> [u8; 32] {
    keccak(&[format!("\x19Ethereum Signed Message:\n{}", msg.len()).as_bytes(), msg])
}

/// Decodes `0x` + lowercase hex of `len` bytes, asserting the SPEC output format.
pub fn unhex0x(s: &str, len: usize) -> Vec<u8> {
    let h = s.strip_prefix("0x").unwrap_or_else(|| panic!("{s}: no 0x prefix"));
    assert!(h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{s}: not lowercase hex");
    let v = hex::decode(h).unwrap();
    assert_eq!(v.len(), len, "{s}: expected {len} bytes");
    v
}

/// Recovers the signer's address (`0x` lowercase) from a `0x` r||s||v signature over
/// `digest` with RustCrypto k256, asserting low-s and v ∈ {0, 1}.
pub fn recover_address(digest: &[u8; 32], signature_hex: &str) -> String {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let sig = unhex0x(signature_hex, 65);
    let signature = Signature::from_slice(&sig[..64]).unwrap();
    assert!(signature.normalize_s() == signature, "signature is not low-s: {signature_hex}");
    assert!(sig[64] <= 1, "v must be 0 or 1: {signature_hex}");
    let recid = RecoveryId::from_byte(sig[64]).unwrap();
    let vk = VerifyingKey::recover_from_prehash(digest, &signature, recid).unwrap();
    let point = vk.to_sec1_point(false);
    hex0x(&keccak(&[&point.as_bytes()[1..]])[12..])
}

// ---------------------------------------------------------------------------------------
// An in-process signer (`sigil dev` startup) with a broker key the test holds

#[cfg(feature = "sim")]
#[allow(unused_imports, reason = "restart.rs drives the binaries instead")]
pub use dev_signer::Signer;

#[cfg(feature = "sim")]
mod dev_signer {
    use sigil::dev::{DevArgs, DevServer, start_with};
    use sigil_enclave::K3;

    use super::{Broker, Http};

    /// A `sigil dev` server on port 0 whose pinned broker key is [`Signer::broker`], so
    /// tests can mint tokens for any account and any claims.
    pub struct Signer {
        pub dev: DevServer,
        pub broker: Broker,
        pub http: Http,
        pub dir: tempfile::TempDir,
    }

    impl Signer {
        /// Starts with `args` (port forced to 0, broker key replaced by a fresh one) and `k3`
        /// (`None`: unprovisioned).
        pub async fn start(mut args: DevArgs, k3: Option<[u8; 32]>) -> Self {
            let broker = Broker::new();
            let dir = tempfile::tempdir().unwrap();
            let key = dir.path().join("broker.pem");
            std::fs::write(&key, broker.spki_pem()).unwrap();
            args.port = 0;
            args.broker_pubkey = Some(key);
            let dev = start_with(&args, k3.map(K3::from_bytes)).await.unwrap();
            assert!(dev.token.is_none(), "no dev token with a given broker key");
            // `start_with` may return before the in-process enclave connection is up (see
            // http.rs `dev_server_serves_as_soon_as_start_returns`); the other tests are not
            // about that window.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !dev.state.0.client.is_connected() {
                assert!(std::time::Instant::now() < deadline, "the in-process enclave never connected");
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            let http = Http::https(dev.addr, &dev.cert_pem);
            Self { dev, broker, http, dir }
        }

        /// Provisioned with the SPEC §3 K3 (00..1f), no rate limit.
        pub async fn vectors() -> Self {
            Self::start(DevArgs::default(), Some(super::k3_seq_bytes())).await
        }

        pub fn token(&self, omni: &str) -> String {
            self.broker.token(omni)
        }

        pub async fn stop(self) {
            self.dev.stop().await.unwrap();
        }
    }
}
