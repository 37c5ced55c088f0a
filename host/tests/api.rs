//! The HTTP API against an in-process enclave that has no attester (the TEE-less case):
//! evidence routes answer 503 `attestation_unavailable`, session routes relay the enclave's
//! typed errors, and `/dev/*` answers still carry the enclave's signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "tests fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sigil_enclave::jwt::BrokerKey;
use sigil_enclave::{Config, Enclave, K3};
use sigil_host::api::{AppState, app};
use sigil_host::auth::Authenticator;
use sigil_host::client::{ClientConfig, EnclaveAddr, EnclaveClient};
use sigil_host::ratelimit::RateLimiter;
use sigil_protocol::{AttestRequest, Bytes, SealedRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

struct Server {
    addr: std::net::SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A host in front of a provisioned enclave without an attester.
async fn start() -> Server {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.public_key().as_ref());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", Base64::encode_string(&der));

    let mut enclave = Enclave::new(Config::new(BrokerKey::from_spki_pem(&pem).unwrap()));
    enclave.load_k3(1, K3::from_bytes([7; 32]));
    let in_process = sigil_enclave::runtime::InProcessEnclave::spawn(Arc::new(Mutex::new(enclave))).unwrap();
    let client = EnclaveClient::new(EnclaveAddr::InProcess(in_process), ClientConfig::default());
    while !client.is_connected() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let auth = Authenticator::new(pem.as_bytes(), 16).unwrap();
    let state = AppState::new(client, auth, RateLimiter::new(0.0, 0.0), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sigil_host::server::serve(listener, None, app(state), async move {
        let _ = rx.await;
    }));
    Server { addr, shutdown }
}

/// One HTTP/1.1 exchange; returns the status line's code, the headers (lowercased) and body.
async fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    ct: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(out[..split].to_vec()).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_an_attester_evidence_is_unavailable() {
    let s = start().await;
    let nonce = "ab".repeat(32);
    let (status, head, body) = exchange(s.addr, "GET", &format!("/dev/attestation?nonce={nonce}"), "x/y", b"").await;
    assert_eq!((status, error_code(&body).as_str()), (503, "attestation_unavailable"));
    assert!(head.contains("content-type: application/json"), "{head}");

    let req = AttestRequest { client_nonce: Bytes([1; 32]), client_pub: Some(Bytes([9; 32])) };
    let bytes = postcard::to_allocvec(&req).unwrap();
    let (status, _, body) = exchange(s.addr, "POST", "/v1/session", "application/octet-stream", &bytes).await;
    assert_eq!((status, error_code(&body).as_str()), (503, "attestation_unavailable"));

    // A record for a session the enclave does not hold.
    let record = SealedRecord { session_id: Bytes([3; 16]), counter: 0, ciphertext: vec![0; 32] };
    let bytes = postcard::to_allocvec(&record).unwrap();
    let (status, _, body) = exchange(s.addr, "POST", "/v1/sealed", "application/octet-stream", &bytes).await;
    assert_eq!((status, error_code(&body).as_str()), (410, "unknown_session"));
    let _ = s.shutdown.send(());
}

#[tokio::test]
async fn host_refusals_are_unsigned() {
    let s = start().await;
    let body = br#"{"omni_account":"abababababababababababababababababababababababababababababababab"}"#;
    // No token: the host's own 401, never relayed, so never signed.
    let (status, head, body) = exchange(s.addr, "POST", "/dev/derive-address", "application/json", body).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "unauthorized"));
    assert!(!head.contains("x-sigil-signature"), "{head}");
    let _ = s.shutdown.send(());
}
