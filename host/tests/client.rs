//! The enclave client against a real enclave (in-process, Unix socket, vsock when the machine
//! has a loopback) and against scripted fake enclaves that stay silent, answer out of order,
//! send garbage or hang up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "tests: failing loudly is the point"
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sigil_enclave::jwt::BrokerKey;
use sigil_enclave::runtime::{InProcessEnclave, SharedEnclave, SystemEnv};
use sigil_enclave::{Config, Enclave, K3};
use sigil_host::client::{AddrParseError, ClientConfig, ClientError, EnclaveAddr, EnclaveClient};
use sigil_protocol::{
    BrokerToken, DecodeError, Deframer, DeriveAddress, Envelope, ErrorCode, HelloAck, OmniAccount, Request, Response,
    SignEip191, Status, Subject, WireError, decode_message, encode_message, frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// A test broker (ES256 with ring) and an enclave holding K3 = 00 01 … 1f.

struct Broker {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Broker {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        Self { key, rng }
    }

    fn public_key(&self) -> BrokerKey {
        BrokerKey::from_sec1(self.key.public_key().as_ref()).unwrap()
    }

    /// A token for `omni`, valid for an hour by the real clock (the runtime uses it).
    fn token(&self, omni: &[u8; 32]) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let o = hex::encode(omni);
        let header = format!(r#"{{"alg":"ES256","kid":"ak-session-{now}"}}"#);
        let claims = format!(
            r#"{{"iss":"agentkeys-broker","sub":"agentkeys:user:{o}","aud":"agentkeys:broker","exp":{exp},"iat":{iat},"jti":"j-1","agentkeys":{{"omni_account":"{o}","wallet_address":"0x0000000000000000000000000000000000000000","identity_type":"email","identity_value":"a@example.com"}}}}"#,
            exp = now + 3600,
            iat = now - 10
        );
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.as_bytes()),
            Base64UrlUnpadded::encode_string(claims.as_bytes())
        );
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", Base64UrlUnpadded::encode_string(sig.as_ref()))
    }
}

const OMNI: [u8; 32] = [0xab; 32];
/// SPEC §3: K3 = 00 01 … 1f, omni = ab × 32.
const ADDRESS: &str = "384099f86f48b052da6535d608315dee069642f7";

fn k3_seq() -> K3 {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    K3::from_bytes(b)
}

fn enclave(broker: &Broker) -> Enclave {
    let mut e = Enclave::new(Config::new(broker.public_key()));
    e.load_k3(1, k3_seq());
    e
}

fn shared(broker: &Broker) -> SharedEnclave {
    Arc::new(Mutex::new(enclave(broker)))
}

fn subject(token: &str) -> Subject {
    Subject { token: BrokerToken::new(token.to_owned()), key_version: 1, omni: OmniAccount::from(OMNI) }
}

fn sign_request(token: &str, message: Vec<u8>) -> Request {
    Request::SignEip191(SignEip191 { subject: subject(token), message })
}

fn config(connections: usize) -> ClientConfig {
    ClientConfig {
        connections,
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..ClientConfig::default()
    }
}

/// Polls `cond` every 5 ms for at most `limit`.
async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

async fn connected(client: &EnclaveClient) {
    assert!(wait_until(Duration::from_secs(5), || client.is_connected()).await, "client never connected");
}

// ---------------------------------------------------------------------------------------------
// A scripted fake enclave on a Unix socket: answers Hello like the real one, and everything
// else as the script says, `batch` requests at a time in reverse order.

enum Script {
    Answer(Response),
    /// A frame with this payload, verbatim.
    Raw(Vec<u8>),
    Silent,
}

struct Fake {
    task: JoinHandle<()>,
    /// Connections open right now.
    open: Arc<AtomicUsize>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fake_enclave<F>(path: &Path, batch: usize, script: F) -> Fake
where
    F: Fn(u64, Request) -> Script + Send + Sync + 'static,
{
    fake_enclave_with_hello(path, batch, HelloAck { version: 1, min_version: 1, max_version: 1 }, script)
}

fn fake_enclave_with_hello<F>(path: &Path, batch: usize, hello: HelloAck, script: F) -> Fake
where
    F: Fn(u64, Request) -> Script + Send + Sync + 'static,
{
    let listener = UnixListener::bind(path).unwrap();
    let script = Arc::new(script);
    let open = Arc::new(AtomicUsize::new(0));
    let open2 = Arc::clone(&open);
    let task = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let script = Arc::clone(&script);
            let open = Arc::clone(&open2);
            open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut deframer = Deframer::new();
                let mut buf = vec![0u8; 4096];
                let mut queued: Vec<(u64, Request)> = Vec::new();
                'conn: loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    deframer.push(&buf[..n]);
                    while let Some(f) = deframer.next_frame().unwrap() {
                        let req: Envelope<Request> = decode_message(&f).unwrap();
                        let out = if let Request::Hello(_) = req.body {
                            encode_message(&Envelope { request_id: req.request_id, body: Response::Hello(hello) })
                                .unwrap()
                        } else {
                            queued.push((req.request_id, req.body));
                            if queued.len() < batch {
                                continue;
                            }
                            let mut out = Vec::new();
                            for (id, body) in queued.drain(..).rev() {
                                match script(id, body) {
                                    Script::Answer(body) => {
                                        out.extend(encode_message(&Envelope { request_id: id, body }).unwrap());
                                    }
                                    Script::Raw(payload) => {
                                        frame::encode(frame::PROTOCOL_VERSION, 0, &payload, &mut out).unwrap();
                                    }
                                    Script::Silent => {}
                                }
                            }
                            out
                        };
                        if stream.write_all(&out).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Fake { task, open }
}

fn silent(_: u64, _: Request) -> Script {
    Script::Silent
}

fn status_body() -> Response {
    Response::Status(Status { protocol_version: 1, current_key_version: None, epochs: vec![] })
}

// ---------------------------------------------------------------------------------------------
// Addresses and error codes.

#[test]
fn parses_enclave_addresses() {
    let unix: EnclaveAddr = "unix:///run/sigil/enclave.sock".parse().unwrap();
    assert!(matches!(&unix, EnclaveAddr::Unix(p) if p == Path::new("/run/sigil/enclave.sock")));
    assert_eq!(unix.to_string(), "unix:///run/sigil/enclave.sock");
    let vsock: EnclaveAddr = "vsock://16:5000".parse().unwrap();
    assert!(matches!(vsock, EnclaveAddr::Vsock { cid: 16, port: 5000 }));
    assert_eq!(vsock.to_string(), "vsock://16:5000");
    assert!(matches!("vsock://4294967295:0".parse(), Ok(EnclaveAddr::Vsock { cid: u32::MAX, port: 0 })));
}

#[test]
fn rejects_malformed_enclave_addresses() {
    let table: &[(&str, AddrParseError)] = &[
        ("", AddrParseError::UnknownScheme),
        ("/run/enclave.sock", AddrParseError::UnknownScheme),
        ("tcp://127.0.0.1:5000", AddrParseError::UnknownScheme),
        ("VSOCK://3:5000", AddrParseError::UnknownScheme),
        ("unix://", AddrParseError::EmptyPath),
        ("vsock://", AddrParseError::BadVsock),
        ("vsock://3", AddrParseError::BadVsock),
        ("vsock://3:", AddrParseError::BadVsock),
        ("vsock://:5000", AddrParseError::BadVsock),
        ("vsock://ANY:5000", AddrParseError::BadVsock),
        ("vsock://-3:5000", AddrParseError::BadVsock),
        ("vsock://+3:5000", AddrParseError::BadVsock),
        ("vsock://3:5000:1", AddrParseError::BadVsock),
        ("vsock://4294967296:5000", AddrParseError::BadVsock),
        ("vsock://3:0x10", AddrParseError::BadVsock),
        ("vsock:// 3:5000", AddrParseError::BadVsock),
    ];
    for (i, (input, want)) in table.iter().enumerate() {
        assert_eq!(input.parse::<EnclaveAddr>().err().as_ref(), Some(want), "row {i}: {input:?}");
    }
}

#[test]
fn client_errors_map_to_wire_codes() {
    for e in [ClientError::Saturated, ClientError::Unavailable, ClientError::DeadlineExceeded] {
        assert_eq!(e.code(), ErrorCode::EnclaveUnavailable, "{e}");
        assert_eq!(e.code().http_status(), 503);
    }
    assert_eq!(ClientError::RequestTooLarge.code(), ErrorCode::PayloadTooLarge);
    assert_eq!(ClientError::Protocol(DecodeError::Message).code(), ErrorCode::Internal);
    assert_eq!(ClientError::Unavailable.to_string(), "enclave unavailable");
}

// ---------------------------------------------------------------------------------------------
// In-process enclave.

#[tokio::test]
async fn in_process_round_trip_status_and_derive_address() {
    let broker = Broker::new();
    let client =
        EnclaveClient::new(EnclaveAddr::InProcess(InProcessEnclave::spawn(shared(&broker)).unwrap()), config(2));
    connected(&client).await;

    match client.call(Request::Status).await.unwrap() {
        Response::Status(s) => {
            assert_eq!(s.current_key_version, Some(1));
            assert_eq!(s.epochs.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    let token = broker.token(&OMNI);
    match client.call(Request::DeriveAddress(DeriveAddress { subject: subject(&token) })).await.unwrap() {
        Response::Address(a) => {
            assert_eq!(hex::encode(a.address.0), ADDRESS);
            assert_eq!(a.key_version, 1);
        }
        other => panic!("{other:?}"),
    }
    // An enclave-side refusal is an answer, not a client error.
    let forged = broker.token(&[0xcd; 32]);
    match client.call(Request::DeriveAddress(DeriveAddress { subject: subject(&forged) })).await.unwrap() {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::Unauthorized),
        other => panic!("{other:?}"),
    }
    let stats = client.stats();
    assert_eq!((stats.in_flight, stats.reconnects), (0, 0));
    assert!(wait_until(Duration::from_secs(5), || client.stats().connected == 2).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_signatures_never_cross() {
    const N: usize = 2_000;
    let broker = Broker::new();
    let token = broker.token(&OMNI);
    let client = EnclaveClient::new(
        EnclaveAddr::InProcess(InProcessEnclave::spawn(shared(&broker)).unwrap()),
        ClientConfig { max_in_flight: N, ..config(4) },
    );
    assert!(wait_until(Duration::from_secs(5), || client.stats().connected == 4).await);

    let message = |i: usize| format!("message number {i}").into_bytes();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let client = client.clone();
            let req = sign_request(&token, message(i));
            tokio::spawn(async move { client.call(req).await })
        })
        .collect();
    let mut got = Vec::with_capacity(N);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Response::Eip191Signature(s) => got.push(s.signature.0),
            other => panic!("{other:?}"),
        }
    }

    // Signatures are deterministic (RFC 6979): an independent enclave with the same K3 signs
    // message i with exactly signature i, so a crossed request id would show here.
    let mut reference = enclave(&broker);
    let mut env = SystemEnv;
    for (i, sig) in got.iter().enumerate() {
        let req = encode_message(&Envelope { request_id: 1, body: sign_request(&token, message(i)) }).unwrap();
        let resp: Envelope<Response> = decode_message(&reference.handle(&req, &mut env)).unwrap();
        match resp.body {
            Response::Eip191Signature(s) => assert_eq!(&s.signature.0, sig, "request {i} got another's signature"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(client.stats().in_flight, 0);
}

#[tokio::test]
async fn oversized_request_is_refused_without_sending() {
    let broker = Broker::new();
    let client =
        EnclaveClient::new(EnclaveAddr::InProcess(InProcessEnclave::spawn(shared(&broker)).unwrap()), config(1));
    connected(&client).await;
    let token = broker.token(&OMNI);
    let big = vec![0u8; frame::MAX_PAYLOAD + 1];
    assert_eq!(client.call(sign_request(&token, big)).await, Err(ClientError::RequestTooLarge));
    // The connection is untouched.
    assert!(matches!(client.call(Request::Status).await, Ok(Response::Status(_))));
    assert_eq!(client.stats().reconnects, 0);
}

// ---------------------------------------------------------------------------------------------
// Scripted enclaves: ordering, saturation, deadlines, garbage, hang-ups.

#[tokio::test]
async fn responses_out_of_order_reach_their_callers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    // Answers 8 requests at a time, last first, echoing each message in the error text.
    let _fake = fake_enclave(&path, 8, |_, req| match req {
        Request::SignEip191(s) => {
            Script::Answer(Response::Error(WireError { code: ErrorCode::Internal, message: hex::encode(&s.message) }))
        }
        _ => Script::Silent,
    });
    let client = EnclaveClient::new(EnclaveAddr::Unix(path), config(1));
    connected(&client).await;
    let tasks: Vec<_> = (0..64u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { (i, client.call(sign_request("t", vec![i; 3])).await) })
        })
        .collect();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match r.unwrap() {
            Response::Error(e) => assert_eq!(e.message, hex::encode([i; 3])),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn saturated_when_in_flight_bound_is_hit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    let _fake = fake_enclave(&path, 1, silent);
    let client = EnclaveClient::new(
        EnclaveAddr::Unix(path),
        ClientConfig { max_in_flight: 1, max_queued: 0, deadline: Duration::from_secs(30), ..config(2) },
    );
    connected(&client).await;

    let blocked = tokio::spawn({
        let client = client.clone();
        async move { client.call(Request::Status).await }
    });
    assert!(wait_until(Duration::from_secs(5), || client.stats().in_flight == 1).await);
    let start = Instant::now();
    assert_eq!(client.call(Request::Status).await, Err(ClientError::Saturated));
    assert!(start.elapsed() < Duration::from_millis(500), "saturation must fail at once");

    // Cancelling the stuck call gives its slot back.
    blocked.abort();
    assert!(wait_until(Duration::from_secs(5), || client.stats().in_flight == 0).await);
    assert_eq!(
        tokio::time::timeout(Duration::from_millis(100), client.call(Request::Status)).await.ok(),
        None,
        "a free slot sends the request (and the silent enclave keeps it waiting)"
    );
}

#[tokio::test]
async fn deadline_exceeded_against_a_silent_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    let _fake = fake_enclave(&path, 1, silent);
    let deadline = Duration::from_millis(200);
    let client = EnclaveClient::new(EnclaveAddr::Unix(path), ClientConfig { deadline, ..config(1) });
    connected(&client).await;

    let start = Instant::now();
    assert_eq!(client.call(Request::Status).await, Err(ClientError::DeadlineExceeded));
    let took = start.elapsed();
    assert!(took >= deadline && took < Duration::from_secs(2), "{took:?}");
    assert_eq!(client.stats().in_flight, 0);
    // Being late is not a broken connection.
    assert!(client.is_connected());
    assert_eq!(client.stats().reconnects, 0);
}

#[tokio::test]
async fn undecodable_response_fails_only_that_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    let _fake = fake_enclave(&path, 1, |id, req| match req {
        // The id, then a response variant no build knows.
        Request::SignEip191(_) => {
            let mut payload = postcard_varint(id);
            payload.extend_from_slice(&[0x7f, 0x00]);
            Script::Raw(payload)
        }
        _ => Script::Answer(status_body()),
    });
    let client = EnclaveClient::new(EnclaveAddr::Unix(path), config(1));
    connected(&client).await;
    assert_eq!(client.call(sign_request("t", b"x".to_vec())).await, Err(ClientError::Protocol(DecodeError::Message)));
    assert_eq!(client.call(Request::Status).await, Ok(status_body()));
    assert_eq!(client.stats().reconnects, 0);
}

fn postcard_varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test]
async fn connection_error_frame_fails_pending_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    // Request id 0 is the enclave's "this connection is broken" channel.
    let _fake = fake_enclave(&path, 1, |_, req| match req {
        Request::SignEip191(_) => Script::Raw(
            encode_message(&Envelope {
                request_id: 0,
                body: Response::Error(WireError { code: ErrorCode::MalformedFrame, message: "bad frame".into() }),
            })
            .map(|f| frame::decode(&f).unwrap().payload.to_vec())
            .unwrap(),
        ),
        _ => Script::Answer(status_body()),
    });
    let client = EnclaveClient::new(EnclaveAddr::Unix(path), config(1));
    connected(&client).await;
    let start = Instant::now();
    assert_eq!(client.call(sign_request("t", b"x".to_vec())).await, Err(ClientError::Unavailable));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(wait_until(Duration::from_secs(5), || client.stats().reconnects >= 1).await, "slot must reconnect");
    connected(&client).await;
    assert_eq!(client.call(Request::Status).await, Ok(status_body()));
}

#[tokio::test]
async fn refuses_an_enclave_that_picks_an_unsupported_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    let hello = HelloAck { version: 9, min_version: 9, max_version: 9 };
    let fake = fake_enclave_with_hello(&path, 1, hello, |_, _| Script::Answer(status_body()));
    let client = EnclaveClient::new(EnclaveAddr::Unix(path), config(1));
    // It keeps trying (and hanging up) but never offers the connection to callers.
    assert!(!wait_until(Duration::from_millis(300), || client.is_connected()).await);
    assert_eq!(client.call(Request::Status).await, Err(ClientError::Unavailable));
    assert!(wait_until(Duration::from_secs(2), || fake.open.load(Ordering::SeqCst) == 0).await);
}

#[tokio::test]
async fn unavailable_at_once_without_an_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let client = EnclaveClient::new(EnclaveAddr::Unix(dir.path().join("nobody.sock")), config(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!client.is_connected());
    let start = Instant::now();
    assert_eq!(client.call(Request::Status).await, Err(ClientError::Unavailable));
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(client.stats().connected, 0);
}

#[tokio::test]
async fn dropping_the_client_closes_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    let fake = fake_enclave(&path, 1, silent);
    let client = EnclaveClient::new(EnclaveAddr::Unix(path), config(3));
    assert!(wait_until(Duration::from_secs(5), || client.stats().connected == 3).await);
    assert_eq!(fake.open.load(Ordering::SeqCst), 3);
    let clone = client.clone();
    drop(client);
    assert!(clone.is_connected(), "a clone keeps the pool alive");
    drop(clone);
    assert!(wait_until(Duration::from_secs(2), || fake.open.load(Ordering::SeqCst) == 0).await);
}

// ---------------------------------------------------------------------------------------------
// The real Unix listener, killed mid-flight and restarted.

/// `sigil_enclave::runtime::unix::Listener` on its own runtime and thread, so that stopping it
/// drops the listener *and* every connection task it spawned, like a crashed enclave.
struct UnixEnclave {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UnixEnclave {
    fn start(path: PathBuf, enclave: SharedEnclave) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = sigil_enclave::runtime::unix::Listener::bind(&path).await.unwrap();
                ready_tx.send(()).unwrap();
                listener
                    .serve(enclave, async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
            // Dropping the runtime drops every connection task: their sockets close.
            drop(rt);
        });
        ready_rx.recv().unwrap();
        Self { stop: Some(stop), thread: Some(thread) }
    }

    fn kill(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_enclave_restart_fails_pending_fast_then_reconnects() {
    const N: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enclave.sock");
    let broker = Broker::new();
    let token = broker.token(&OMNI);
    let enclave = shared(&broker);

    let server = UnixEnclave::start(path.clone(), Arc::clone(&enclave));
    let client = EnclaveClient::new(
        EnclaveAddr::Unix(path.clone()),
        ClientConfig { deadline: Duration::from_secs(30), max_in_flight: N, ..config(4) },
    );
    assert!(wait_until(Duration::from_secs(5), || client.stats().connected == 4).await);
    assert_eq!(client.stats().reconnects, 0);

    // Many signatures in flight; kill the enclave once a few have been answered.
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let client = client.clone();
            let done = Arc::clone(&done);
            let req = sign_request(&token, format!("message {i}").into_bytes());
            tokio::spawn(async move {
                let r = client.call(req).await;
                done.fetch_add(1, Ordering::SeqCst);
                (r, Instant::now())
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(10), || done.load(Ordering::SeqCst) >= 20).await);
    let kill_started = Instant::now();
    tokio::task::spawn_blocking(move || server.kill()).await.unwrap();
    // From here the enclave and all its connections are gone.
    let killed_at = Instant::now();
    eprintln!("enclave stopped in {:?}", killed_at - kill_started);

    let (mut ok, mut unavailable) = (0, 0);
    for t in tasks {
        let (r, at) = tokio::time::timeout(Duration::from_secs(5), t).await.expect("a call hung").unwrap();
        let after = at.saturating_duration_since(killed_at);
        match r {
            Ok(Response::Eip191Signature(_)) => ok += 1,
            Err(ClientError::Unavailable) => {
                unavailable += 1;
                assert!(after < Duration::from_secs(1), "pending call failed only {after:?} after the kill");
            }
            other => panic!("{other:?}"),
        }
    }
    eprintln!("{ok} answered, {unavailable} failed with Unavailable");
    assert!(ok >= 20, "{ok}");
    assert!(unavailable > 0, "the kill came too late to catch anything in flight");
    assert_eq!(client.stats().in_flight, 0);

    // Down: calls fail at once, they do not wait for the enclave to come back.
    assert!(wait_until(Duration::from_secs(1), || !client.is_connected()).await);
    let start = Instant::now();
    assert_eq!(client.call(Request::Status).await, Err(ClientError::Unavailable));
    assert!(start.elapsed() < Duration::from_millis(500));

    // Back up on the same path: the same client recovers by itself.
    let reconnects = client.stats().reconnects;
    let server = UnixEnclave::start(path, enclave);
    connected(&client).await;
    assert!(matches!(client.call(Request::Status).await, Ok(Response::Status(_))));
    match client.call(sign_request(&token, b"after restart".to_vec())).await {
        Ok(Response::Eip191Signature(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(client.stats().reconnects > reconnects);
    assert!(wait_until(Duration::from_secs(5), || client.stats().connected == 4).await);
    assert_eq!(client.stats().reconnects, 4);
    drop(client);
    tokio::task::spawn_blocking(move || server.kill()).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// vsock, where the kernel offers a loopback (`vsock_loopback`); the VM test covers the rest.

#[tokio::test]
async fn vsock_round_trip_when_loopback_is_available() {
    use sigil_enclave::runtime::vsock::{Listener, VMADDR_CID_ANY, VsockAddr};
    const VMADDR_CID_LOCAL: u32 = 1;
    const VMADDR_PORT_ANY: u32 = u32::MAX;

    if !Path::new("/dev/vsock").exists() {
        eprintln!("skipped: no /dev/vsock on this machine");
        return;
    }
    let listener = match Listener::bind(VsockAddr::new(VMADDR_CID_ANY, VMADDR_PORT_ANY)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: cannot bind a vsock port: {e}");
            return;
        }
    };
    let port = listener.local_addr().unwrap().port();
    let probe = tokio::time::timeout(
        Duration::from_secs(1),
        tokio_vsock::VsockStream::connect(VsockAddr::new(VMADDR_CID_LOCAL, port)),
    )
    .await;
    if !matches!(probe, Ok(Ok(_))) {
        eprintln!("skipped: no vsock loopback here ({probe:?})");
        return;
    }
    drop(probe);

    let broker = Broker::new();
    let server = tokio::spawn(listener.serve(shared(&broker), std::future::pending()));
    let client = EnclaveClient::new(EnclaveAddr::Vsock { cid: VMADDR_CID_LOCAL, port }, config(2));
    connected(&client).await;
    let token = broker.token(&OMNI);
    match client.call(Request::DeriveAddress(DeriveAddress { subject: subject(&token) })).await.unwrap() {
        Response::Address(a) => assert_eq!(hex::encode(a.address.0), ADDRESS),
        other => panic!("{other:?}"),
    }
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// Throughput, for the record (not a pass/fail test).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test --release -p sigil-host --test client -- --ignored --nocapture"]
async fn throughput_in_process() {
    let broker = Broker::new();
    let token = broker.token(&OMNI);
    let client =
        EnclaveClient::new(EnclaveAddr::InProcess(InProcessEnclave::spawn(shared(&broker)).unwrap()), config(4));
    assert!(wait_until(Duration::from_secs(5), || client.stats().connected == 4).await);
    for (name, make) in [
        ("status", Box::new(|_: usize| Request::Status) as Box<dyn Fn(usize) -> Request + Send + Sync>),
        ("sign_eip191", Box::new(move |i: usize| sign_request(&token, format!("message {i}").into_bytes()))),
    ] {
        let make = Arc::new(make);
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Instant::now() + Duration::from_secs(3);
        let workers: Vec<_> = (0..256)
            .map(|w| {
                let (client, make, count) = (client.clone(), Arc::clone(&make), Arc::clone(&count));
                tokio::spawn(async move {
                    let mut i = w;
                    while Instant::now() < stop {
                        assert!(client.call(make(i)).await.is_ok());
                        count.fetch_add(1, Ordering::Relaxed);
                        i += 256;
                    }
                })
            })
            .collect();
        let start = Instant::now();
        for w in workers {
            w.await.unwrap();
        }
        let n = count.load(Ordering::Relaxed);
        eprintln!("{name}: {n} calls in {:?}: {:.0}/s", start.elapsed(), n as f64 / start.elapsed().as_secs_f64());
    }
}

#[tokio::test]
async fn a_burst_beyond_in_flight_waits_in_the_bounded_queue() {
    let broker = Broker::new();
    let client = EnclaveClient::new(
        EnclaveAddr::InProcess(InProcessEnclave::spawn(shared(&broker)).unwrap()),
        ClientConfig { max_in_flight: 2, max_queued: 500, ..config(2) },
    );
    connected(&client).await;
    let calls: Vec<_> = (0..300)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call(Request::Status).await })
        })
        .collect();
    for call in calls {
        assert!(matches!(call.await.unwrap(), Ok(Response::Status(_))));
    }
    assert_eq!(client.stats().in_flight, 0);
}

#[tokio::test]
async fn queue_is_bounded_and_cancelled_waiters_leave_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    let _fake = fake_enclave(&path, 1, silent);
    let client = EnclaveClient::new(
        EnclaveAddr::Unix(path),
        ClientConfig { max_in_flight: 1, max_queued: 2, deadline: Duration::from_secs(30), ..config(1) },
    );
    connected(&client).await;
    let spawn_call = || {
        let c = client.clone();
        tokio::spawn(async move { c.call(Request::Status).await })
    };
    // One call holds the only slot (the silent enclave never answers), two wait in the queue…
    let holder = spawn_call();
    assert!(wait_until(Duration::from_secs(5), || client.stats().in_flight == 1).await);
    let waiters = [spawn_call(), spawn_call()];
    tokio::time::sleep(Duration::from_millis(50)).await;
    // …so a fourth is refused at once.
    let start = Instant::now();
    assert_eq!(client.call(Request::Status).await, Err(ClientError::Saturated));
    assert!(start.elapsed() < Duration::from_millis(500));
    // Cancelled waiters give their places back: a new call waits again instead of failing.
    for w in &waiters {
        w.abort();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), client.call(Request::Status)).await.is_err(),
        "the call must be queued (still waiting), not refused"
    );
    holder.abort();
}

/// The broker's key as SPKI PEM, for the host's `Authenticator`.
fn spki_pem(broker: &Broker) -> String {
    use base64ct::Base64;
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(broker.public_key().as_sec1());
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", Base64::encode_string(&der))
}

#[tokio::test]
async fn a_misbehaving_enclave_is_500_internal_over_http() {
    use sigil_host::api::{AppState, app};
    use sigil_host::auth::Authenticator;
    use sigil_host::ratelimit::RateLimiter;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    // Provisioned, but answers every signing request with the wrong kind of response.
    let provisioned = Response::Status(Status {
        protocol_version: 1,
        current_key_version: Some(1),
        epochs: vec![sigil_protocol::Epoch { key_version: 1, k3_fingerprint: [0; 32].into() }],
    });
    let _fake = fake_enclave(&path, 1, move |_, req| match req {
        Request::Status => Script::Answer(provisioned.clone()),
        _ => Script::Answer(status_body()),
    });
    let broker = Broker::new();
    let client = EnclaveClient::new(EnclaveAddr::Unix(path), config(1));
    connected(&client).await;
    let auth = Authenticator::new(spki_pem(&broker).as_bytes(), 16).unwrap();
    let state = AppState::new(client, auth, RateLimiter::new(0.0, 1.0), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sigil_host::server::serve(listener, None, app(state), async move {
        let _ = rx.await;
    }));

    let omni = [0xab; 32];
    let body = format!(r#"{{"omni_account":"{}"}}"#, hex::encode(omni));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /dev/derive-address HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n{body}",
        broker.token(&omni),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
    assert!(reply.contains("content-type: application/json"), "{reply}");
    assert!(reply.contains(r#""error":"internal""#), "{reply}");
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
