//! End to end, through the real HTTPS host and the simulated enclave: `sigil::Client` runs the
//! attested handshake, verifies the sim evidence against a policy, and performs all four
//! operations inside the session. Then a malicious relay between client and host flips,
//! drops, replays and reorders frames, and the client gets a typed error for each.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "tests")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use common::{Signer, hex0x, recover_address};
use sigil::{Client, ClientError, ClientOptions, Policy};
use sigil_protocol::session::SessionError;
use sigil_protocol::{ErrorCode, Platform};

const OMNI: [u8; 32] = [0xab; 32];
/// SPEC §3: K3 = 00..1f, omni = ab × 32.
const ADDR_AB: &str = "0x384099f86f48b052da6535d608315dee069642f7";
const SIG_AB_HELLO: &str = "0x6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01";

/// The policy that trusts this run's simulated enclave (what `sigil dev --write-policy` writes).
fn sim_policy(s: &Signer) -> Policy {
    s.dev.sim_policy()
}

fn options(s: &Signer) -> ClientOptions {
    ClientOptions { ca_cert_pem: Some(s.dev.cert_pem.clone().into_bytes()), ..ClientOptions::default() }
}

fn omni_hex() -> String {
    hex::encode(OMNI)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_session_serves_all_four_operations() {
    let s = Signer::vectors().await;
    let url = format!("https://{}", s.dev.addr);
    let client = Client::connect(&url, sim_policy(&s), options(&s)).await.unwrap();
    let verified = client.verified().await.unwrap();
    assert_eq!(verified.platform, Platform::Sim);
    // The policy pins the K3 this server holds (the SPEC §3 vector key).
    assert!(sim_policy(&s).k3_fingerprint.is_some());
    assert_eq!(verified.k3_fingerprint, Some(sigil_enclave::K3::from_bytes(common::k3_seq_bytes()).fingerprint()));
    let token = s.token(&omni_hex());

    let a = client.derive_address(&token, OMNI).await.unwrap();
    assert_eq!((hex0x(&a.address.0), a.key_version), (ADDR_AB.to_owned(), 1));

    let sig = client.sign_eip191(&token, OMNI, b"hello").await.unwrap();
    assert_eq!(hex0x(&sig.signature.0), SIG_AB_HELLO);
    assert_eq!(recover_address(&common::eip191_digest(b"hello"), &hex0x(&sig.signature.0)), ADDR_AB);

    // EIP-712: the same signature as the plain route, recovered independently (k256).
    let typed = serde_json::json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Note": [{"name": "text", "type": "string"}, {"name": "n", "type": "uint256"}],
        },
        "primaryType": "Note",
        "domain": {"name": "sigil", "chainId": 1},
        "message": {"text": "attested", "n": 7},
    });
    let t = client.sign_eip712(&token, OMNI, &typed.to_string()).await.unwrap();
    assert_eq!(recover_address(&t.digest.0, &hex0x(&t.signature.0)), ADDR_AB);
    let plain = s.http.sign_typed(&token, &omni_hex(), &typed).await.ok();
    assert_eq!(plain["signature"], hex0x(&t.signature.0));
    assert_eq!(plain["digest"], hex0x(&t.digest.0));

    // KEK: opened client-side; equal to the v2 derivation from the known K3, and
    // different per context.
    let kek = client.derive_kek(&token, OMNI, b"vault/postgres").await.unwrap();
    let k3 = sigil_enclave::K3::from_bytes(common::k3_seq_bytes());
    let expected = sigil_enclave::kek::derive(&k3, &OMNI, b"vault/postgres").unwrap();
    assert_eq!(&*kek, expected.dangerous_as_bytes());
    assert_ne!(*kek, *client.derive_kek(&token, OMNI, b"vault/redis").await.unwrap());

    // The JWT is checked inside the enclave: another account's token is refused, sealed.
    let other = s.token(&hex::encode([0xcd; 32]));
    match client.derive_address(&other, OMNI).await {
        Err(ClientError::Enclave { code: ErrorCode::Unauthorized, .. }) => {}
        other => panic!("expected a sealed unauthorized, got {other:?}"),
    }
    // …and the session survives an authenticated error.
    assert_eq!(hex0x(&client.derive_address(&token, OMNI).await.unwrap().address.0), ADDR_AB);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_for_another_enclave_refuses_the_handshake() {
    let s = Signer::vectors().await;
    let url = format!("https://{}", s.dev.addr);
    type Edit = Box<dyn Fn(&mut Policy)>;
    let cases: Vec<(&str, Edit, sigil::attestation::Error)> = vec![
        (
            "production policy (no sim)",
            Box::new(|p: &mut Policy| p.platforms = vec![Platform::Nitro]),
            sigil::attestation::Error::PlatformNotAllowed(Platform::Sim),
        ),
        (
            "another K3",
            Box::new(|p: &mut Policy| p.k3_fingerprint = Some([7; 32])),
            sigil::attestation::Error::K3FingerprintMismatch,
        ),
    ];
    for (name, edit, expected) in cases {
        let mut policy = sim_policy(&s);
        edit(&mut policy);
        match Client::connect(&url, policy, options(&s)).await {
            Err(ClientError::Attestation(e)) => assert_eq!(e, expected, "{name}"),
            other => panic!("{name}: expected an attestation error, got {other:?}"),
        }
    }
    // Wrong PCR0: the sim verifier's typed error.
    let mut policy = sim_policy(&s);
    if let Some(sim) = policy.sim.as_mut() {
        sim.nitro.pcrs.insert(0, vec![1; 48]);
    }
    match Client::connect(&url, policy, options(&s)).await {
        Err(ClientError::Attestation(sigil::attestation::Error::Nitro(e))) => {
            assert!(e.to_string().contains("pcr"), "{e}");
        }
        other => panic!("expected a PCR mismatch, got {other:?}"),
    }
    s.stop().await;
}

// ---- the malicious relay ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Honest,
    /// Flip a byte of the next sealed request.
    FlipRequest,
    /// Flip a byte of the next sealed response.
    FlipResponse,
    /// Flip a byte of the next handshake answer (inside the evidence).
    FlipHandshake,
    /// Answer the next handshake with an earlier one (evidence made for another nonce).
    ReplayHandshake,
    /// Forward the first sealed request ever seen instead of the next one.
    ReplayRequest,
    /// Answer the next sealed request with the first sealed response ever seen.
    ReplayResponse,
    /// Swallow the next sealed request: answer 502 without forwarding it.
    DropRequest,
    /// Forward the next request but hold its response back (answer 502); answer the one
    /// after with the held response: responses delivered out of order.
    ReorderResponses,
}

#[derive(Default)]
struct Seen {
    first_request: Option<Bytes>,
    first_response: Option<Bytes>,
    first_handshake: Option<Bytes>,
    held_response: Option<Bytes>,
}

struct Relay {
    upstream: String,
    http: reqwest::Client,
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
}

impl Relay {
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    async fn forward(&self, path: &str, body: Bytes) -> (StatusCode, Bytes) {
        let resp = self
            .http
            .post(format!("{}{path}", self.upstream))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        (status, resp.bytes().await.unwrap())
    }
}

fn flip_last(b: &Bytes) -> Bytes {
    let mut v = b.to_vec();
    let last = v.len() - 1;
    v[last] ^= 0x01;
    Bytes::from(v)
}

fn bad_gateway() -> (StatusCode, Bytes) {
    (StatusCode::BAD_GATEWAY, Bytes::from_static(br#"{"error":"bad_gateway","message":"relay"}"#))
}

async fn relay_handler(State(relay): State<Arc<Relay>>, uri: Uri, body: Bytes) -> impl IntoResponse {
    let mode = *relay.mode.lock().unwrap();
    let path = uri.path().to_owned();
    let (status, answer) = if path == "/v1/session" {
        let (status, answer) = relay.forward(&path, body).await;
        let mut seen = relay.seen.lock().unwrap();
        let first = seen.first_handshake.get_or_insert_with(|| answer.clone()).clone();
        match mode {
            Mode::FlipHandshake => {
                // A byte in the middle of the evidence document.
                let mut v = answer.to_vec();
                let mid = v.len() / 2;
                v[mid] ^= 0x01;
                (status, Bytes::from(v))
            }
            Mode::ReplayHandshake => (status, first),
            _ => (status, answer),
        }
    } else {
        let first_request = relay.seen.lock().unwrap().first_request.clone();
        match mode {
            Mode::DropRequest => bad_gateway(),
            Mode::FlipRequest => relay.forward(&path, flip_last(&body)).await,
            Mode::ReplayRequest => relay.forward(&path, first_request.unwrap()).await,
            Mode::ReplayResponse => {
                let _ = relay.forward(&path, body).await;
                (StatusCode::OK, relay.seen.lock().unwrap().first_response.clone().unwrap())
            }
            Mode::FlipResponse => {
                let (status, answer) = relay.forward(&path, body).await;
                (status, flip_last(&answer))
            }
            Mode::ReorderResponses => {
                let (status, answer) = relay.forward(&path, body).await;
                let held = relay.seen.lock().unwrap().held_response.replace(answer);
                match held {
                    None => bad_gateway(),
                    Some(earlier) => (status, earlier),
                }
            }
            Mode::Honest | Mode::FlipHandshake | Mode::ReplayHandshake => {
                let (status, answer) = relay.forward(&path, body.clone()).await;
                let mut seen = relay.seen.lock().unwrap();
                seen.first_request.get_or_insert(body);
                seen.first_response.get_or_insert_with(|| answer.clone());
                (status, answer)
            }
        }
    };
    (status, [("content-type", "application/octet-stream")], answer)
}

async fn start_relay(s: &Signer) -> (SocketAddr, Arc<Relay>) {
    let cert = reqwest::Certificate::from_pem(s.dev.cert_pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(cert).build().unwrap();
    let relay = Arc::new(Relay {
        upstream: format!("https://{}", s.dev.addr),
        http,
        mode: Mutex::new(Mode::Honest),
        seen: Mutex::new(Seen::default()),
    });
    let app = axum::Router::new().fallback(relay_handler).with_state(Arc::clone(&relay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, relay)
}

fn assert_rejected(result: Result<sigil_protocol::AddressInfo, ClientError>, what: &str) {
    match result {
        Err(ClientError::SessionRejected(ErrorCode::SessionIntegrity)) => {}
        other => panic!("{what}: expected SessionRejected(session_integrity), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_relay_is_detected_with_typed_errors() {
    let s = Signer::vectors().await;
    let (addr, relay) = start_relay(&s).await;
    let url = format!("http://{addr}");
    let token = s.token(&omni_hex());
    let client = Client::connect(&url, sim_policy(&s), options(&s)).await.unwrap();
    let ok = |r: Result<sigil_protocol::AddressInfo, ClientError>, what: &str| {
        assert_eq!(hex0x(&r.unwrap_or_else(|e| panic!("{what}: {e:?}")).address.0), ADDR_AB, "{what}");
    };
    ok(client.derive_address(&token, OMNI).await, "honest relay");

    // Flipped request: the enclave's AEAD check fails; it closes the session and says so.
    relay.set(Mode::FlipRequest);
    assert_rejected(client.derive_address(&token, OMNI).await, "flipped request");
    relay.set(Mode::Honest);
    ok(client.derive_address(&token, OMNI).await, "after a flipped request (new session)");

    // Flipped response: the client's AEAD check fails.
    relay.set(Mode::FlipResponse);
    match client.derive_address(&token, OMNI).await {
        Err(ClientError::Session(SessionError::Tampered)) => {}
        other => panic!("flipped response: {other:?}"),
    }
    relay.set(Mode::Honest);
    ok(client.derive_address(&token, OMNI).await, "after a flipped response");

    // Replayed response: an authentic response, but to another request (counter 0 of the
    // first session: wrong session for this one).
    relay.set(Mode::ReplayResponse);
    match client.derive_address(&token, OMNI).await {
        Err(ClientError::Session(SessionError::WrongSession | SessionError::Replayed { .. })) => {}
        other => panic!("replayed response: {other:?}"),
    }
    relay.set(Mode::Honest);
    ok(client.derive_address(&token, OMNI).await, "after a replayed response");

    // Replayed request: the enclave refuses a record it has seen (or of a closed session).
    relay.set(Mode::ReplayRequest);
    match client.derive_address(&token, OMNI).await {
        Err(ClientError::SessionRejected(ErrorCode::SessionIntegrity | ErrorCode::UnknownSession)) => {}
        other => panic!("replayed request: {other:?}"),
    }
    relay.set(Mode::Honest);
    ok(client.derive_address(&token, OMNI).await, "after a replayed request");

    // Dropped request: the client sees no answer; the next record's counter leaves a gap the
    // enclave refuses, so the drop cannot go unnoticed.
    relay.set(Mode::DropRequest);
    match client.derive_address(&token, OMNI).await {
        Err(ClientError::Host { status: 502, .. }) => {}
        other => panic!("dropped request: {other:?}"),
    }
    relay.set(Mode::Honest);
    assert_rejected(client.derive_address(&token, OMNI).await, "the request after a dropped one");
    ok(client.derive_address(&token, OMNI).await, "after a drop (new session)");

    // Reordered responses: response n held back and delivered as the answer to n+1.
    relay.set(Mode::ReorderResponses);
    match client.derive_address(&token, OMNI).await {
        Err(ClientError::Host { status: 502, .. }) => {}
        other => panic!("held response: {other:?}"),
    }
    match client.derive_address(&token, OMNI).await {
        Err(ClientError::Session(SessionError::Replayed { expected, got })) => assert_eq!(got + 1, expected),
        other => panic!("reordered response: {other:?}"),
    }
    relay.set(Mode::Honest);
    ok(client.derive_address(&token, OMNI).await, "after reordering");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_replayed_handshake_is_refused() {
    let s = Signer::vectors().await;
    let (addr, relay) = start_relay(&s).await;
    let url = format!("http://{addr}");
    // Record one honest handshake.
    Client::connect(&url, sim_policy(&s), options(&s)).await.unwrap();

    relay.set(Mode::FlipHandshake);
    match Client::connect(&url, sim_policy(&s), options(&s)).await {
        Err(ClientError::Attestation(_) | ClientError::Malformed) => {}
        other => panic!("flipped handshake: {other:?}"),
    }
    // Evidence from an earlier handshake: valid, but bound to another nonce and key.
    relay.set(Mode::ReplayHandshake);
    match Client::connect(&url, sim_policy(&s), options(&s)).await {
        Err(ClientError::Attestation(sigil::attestation::Error::BindingMismatch)) => {}
        other => panic!("replayed handshake: {other:?}"),
    }
    s.stop().await;
}
