//! The Nitro KMS sealer against a mock KMS that behaves like the real one where it matters:
//! HTTPS with its own certificate, SigV4 checked, the `Recipient` attestation document
//! verified and its PCRs held against the key policy, data keys released only inside a
//! CMS envelope to the document's public key (BER, like KMS). The attestation documents are
//! the simulated attester's (real Nitro format, sim root).
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding as _};
use common::{Broker, call, derive_address, k3_seq as seq_k3};
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::rand_core::RngCore as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use sigil_attestation::nitro::NitroPolicy;
use sigil_attestation::policy::SimPolicy;
use sigil_attestation::{Policy, verify_evidence};
use sigil_enclave::attester::sim::{SimAttester, SimCa, sim_pcrs};
use sigil_enclave::sealer::kms::http::{Tcp, tls_config};
use sigil_enclave::sealer::kms::imds::Static;
use sigil_enclave::sealer::kms::sigv4::{self, Credentials};
use sigil_enclave::sealer::kms::{KmsConfig, KmsSealer, cms};
use sigil_enclave::{Config, Enclave, FixedEnv};
use sigil_protocol::custody::{BlobHeader, UnsealK3};
use sigil_protocol::{ErrorCode, Evidence, Platform, Request, Response};
use zeroize::Zeroizing;

const REGION: &str = "eu-west-1";
const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OMNI: [u8; 32] = [0xab; 32];
/// SPEC §3: K3 = 00..1f, omni = ab × 32, key_version 1.
const VECTOR_ADDRESS: &str = "384099f86f48b052da6535d608315dee069642f7";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Zeroizing::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        session_token: Some(Zeroizing::new("session-token".into())),
    }
}

/// How the mock misbehaves, when asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Honest,
    /// Answers for another key than the one asked for.
    OtherKeyId,
}

struct MockKms {
    addr: SocketAddr,
    tls_root: CertificateDer<'static>,
    calls: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<Mode>>,
}

impl MockKms {
    /// Serves on a loopback port; releases keys only to documents chained to `sim_root` whose
    /// PCR0..2 equal `policy_pcrs` (the key policy's `kms:RecipientAttestation:PCRn`).
    fn start(sim_root: Vec<u8>, policy_pcrs: [[u8; 48]; 3]) -> Self {
        let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut ca = ca;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![format!("kms.{REGION}.amazonaws.com")])
            .unwrap()
            .signed_by(&leaf_key, &rcgen::Issuer::new(ca, &ca_key))
            .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let server = Arc::new(server);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Honest));
        let state = State {
            sim_root,
            policy_pcrs,
            keys: Mutex::new(HashMap::new()),
            calls: Arc::clone(&calls),
            mode: Arc::clone(&mode),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let conn = rustls::ServerConnection::new(Arc::clone(&server)).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                // A client that refuses our certificate just goes away.
                if let Some((headers, body)) = read_request(&mut tls) {
                    let (status, answer) = state.handle(&headers, &body);
                    let answer = answer.to_string();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    tls.write_all(response.as_bytes()).ok();
                    tls.conn.send_close_notify();
                    tls.flush().ok();
                }
            }
        });
        Self { addr, tls_root: ca_cert.der().clone(), calls, mode }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.tls_root.clone()).unwrap();
        roots
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut impl Read) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = req.parse(&buf).ok()? {
            assert_eq!((req.method, req.path), (Some("POST"), Some("/")));
            let map: HashMap<String, String> = req
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8(h.value.to_vec()).unwrap()))
                .collect();
            let length: usize = map["content-length"].parse().unwrap();
            let mut body = buf[len..].to_vec();
            while body.len() < length {
                let n = stream.read(&mut chunk).ok()?;
                body.extend_from_slice(&chunk[..n]);
            }
            return Some((map, body));
        }
    }
}

struct State {
    sim_root: Vec<u8>,
    policy_pcrs: [[u8; 48]; 3],
    keys: Mutex<HashMap<Vec<u8>, [u8; 32]>>,
    calls: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<Mode>>,
}

fn fault(kind: &str, message: &str) -> (u16, Value) {
    (400, json!({ "__type": kind, "message": message }))
}

impl State {
    fn handle(&self, headers: &HashMap<String, String>, body: &[u8]) -> (u16, Value) {
        let target = headers["x-amz-target"].strip_prefix("TrentService.").unwrap().to_owned();
        self.calls.lock().unwrap().push(target.clone());
        if !self.signature_ok(headers, body) {
            return fault("InvalidSignatureException", "signature does not match");
        }
        let request: Value = serde_json::from_slice(body).unwrap();
        if request["KeyId"] != KEY_ARN {
            return fault("NotFoundException", "no such key");
        }
        let Some(public_key) = self.recipient_key(&request["Recipient"]) else {
            return fault("AccessDeniedException", "the key policy does not allow this attestation document");
        };
        let data_key = match target.as_str() {
            "GenerateDataKey" => {
                let mut key = [0u8; 32];
                rsa::rand_core::OsRng.fill_bytes(&mut key);
                let mut blob = b"mock-kms-ciphertext-blob:".to_vec();
                blob.extend_from_slice(&rsa::rand_core::OsRng.next_u64().to_be_bytes());
                self.keys.lock().unwrap().insert(blob.clone(), key);
                (key, blob)
            }
            "Decrypt" => {
                let blob = Base64::decode_vec(request["CiphertextBlob"].as_str().unwrap()).unwrap();
                let Some(key) = self.keys.lock().unwrap().get(&blob).copied() else {
                    return fault("InvalidCiphertextException", "");
                };
                (key, blob)
            }
            other => panic!("unexpected call {other}"),
        };
        let (mut cek, mut iv) = ([0u8; 32], [0u8; 16]);
        rsa::rand_core::OsRng.fill_bytes(&mut cek);
        rsa::rand_core::OsRng.fill_bytes(&mut iv);
        let envelope = cms::testing::envelope(&public_key, &cek, &iv, &data_key.0).unwrap();
        let key_id = if *self.mode.lock().unwrap() == Mode::OtherKeyId {
            KEY_ARN.replace("1234abcd", "99999999")
        } else {
            KEY_ARN.to_owned()
        };
        let mut answer = json!({ "KeyId": key_id, "CiphertextForRecipient": Base64::encode_string(&envelope) });
        if target == "GenerateDataKey" {
            answer["CiphertextBlob"] = Base64::encode_string(&data_key.1).into();
        }
        (200, answer)
    }

    /// SigV4 as KMS checks it: recomputed over the same headers and body for a time within a
    /// few seconds of the request's `x-amz-date`.
    fn signature_ok(&self, headers: &HashMap<String, String>, body: &[u8]) -> bool {
        let target = headers["x-amz-target"].clone();
        let t = now();
        (t - 5..=t + 1).any(|unix_time| {
            let signed = sigv4::sign(
                &credentials(),
                &sigv4::Scope { host: &headers["host"], region: REGION, service: "kms", unix_time },
                &sigv4::Request {
                    method: "POST",
                    path: "/",
                    headers: &[("content-type", &headers["content-type"]), ("x-amz-target", &target)],
                    body,
                },
            );
            signed.iter().any(|(n, v)| n == "authorization" && *v == headers["authorization"])
        })
    }

    /// The document's public key if it verifies and its PCRs satisfy the key policy.
    fn recipient_key(&self, recipient: &Value) -> Option<RsaPublicKey> {
        if recipient["KeyEncryptionAlgorithm"] != "RSAES_OAEP_SHA_256" {
            return None;
        }
        let document = Base64::decode_vec(recipient["AttestationDocument"].as_str()?).ok()?;
        let pcrs: BTreeMap<u8, Vec<u8>> = (0u8..3).map(|i| (i, self.policy_pcrs[usize::from(i)].to_vec())).collect();
        let nitro = NitroPolicy { pcrs, max_age_secs: Some(300), allow_debug: false };
        let policy = Policy {
            platforms: vec![Platform::Sim],
            max_age_secs: 300,
            allow_debug: false,
            k3_fingerprint: None,
            nitro: None,
            snp: None,
            sim: Some(SimPolicy { root_der: self.sim_root.clone(), nitro }),
        };
        let evidence = Evidence { platform: Platform::Sim, document, certificates: Vec::new() };
        let verified = verify_evidence(&evidence, now(), &policy).ok()?;
        RsaPublicKey::from_public_key_der(verified.nitro?.public_key.as_deref()?).ok()
    }
}

/// An enclave whose sealer asks `kms`, measured as `pcrs`, trusting `roots` for TLS.
fn enclave(ca: &SimCa, broker: &Broker, kms: &MockKms, pcrs: [[u8; 48]; 3], roots: rustls::RootCertStore) -> Enclave {
    let mut e = Enclave::new(Config::new(broker.public_key()));
    e.set_attester(Box::new(SimAttester::with_pcrs(ca, now(), pcrs).unwrap()));
    let sealer = KmsSealer::new(
        KmsConfig::new(REGION, KEY_ARN).unwrap(),
        pcrs.concat(),
        Box::new(SimAttester::with_pcrs(ca, now(), pcrs).unwrap()),
        Box::new(Static(credentials())),
        Box::new(Tcp(kms.addr)),
        tls_config(Some(roots)).unwrap(),
    );
    e.set_sealer(Box::new(sealer));
    e
}

fn address(e: &mut Enclave, env: &mut FixedEnv, broker: &Broker) -> Result<String, ErrorCode> {
    match derive_address(e, env, &broker.live_token(&OMNI), OMNI) {
        Response::Address(a) => Ok(hex::encode(a.address.0)),
        Response::Error(err) => Err(err.code),
        other => panic!("{other:?}"),
    }
}

fn seal(e: &mut Enclave, env: &mut FixedEnv) -> Result<Vec<u8>, (ErrorCode, String)> {
    match call(e, env, Request::SealK3) {
        Response::SealedK3(s) => Ok(s.blob),
        Response::Error(err) => Err((err.code, err.message)),
        other => panic!("{other:?}"),
    }
}

fn unseal(e: &mut Enclave, env: &mut FixedEnv, blob: &[u8]) -> Result<(), (ErrorCode, String)> {
    match call(e, env, Request::UnsealK3(UnsealK3 { blob: blob.to_vec() })) {
        Response::CustodyStatus(s) => {
            assert_eq!(s.current_key_version, Some(1));
            Ok(())
        }
        Response::Error(err) => Err((err.code, err.message)),
        other => panic!("{other:?}"),
    }
}

/// A simulated vendor root, a broker and a mock KMS whose key policy admits `sim_pcrs()`.
struct World {
    ca: SimCa,
    broker: Broker,
    kms: MockKms,
    env: FixedEnv,
}

impl World {
    fn new() -> Self {
        let ca = SimCa::generate().unwrap();
        let kms = MockKms::start(ca.root_der().to_vec(), sim_pcrs());
        Self { ca, broker: Broker::new(), kms, env: FixedEnv::new(now()) }
    }

    /// An enclave measured as `pcrs` whose TLS trusts `roots` (default: the mock's CA).
    fn enclave(&self, pcrs: [[u8; 48]; 3], roots: Option<rustls::RootCertStore>) -> Enclave {
        enclave(&self.ca, &self.broker, &self.kms, pcrs, roots.unwrap_or_else(|| self.kms.roots()))
    }

    /// An enclave of the admitted build holding the SPEC K3, and its sealed blob.
    fn sealed(&mut self) -> (Enclave, Vec<u8>) {
        let mut e = self.enclave(sim_pcrs(), None);
        e.load_k3(1, seq_k3());
        let blob = seal(&mut e, &mut self.env).unwrap();
        (e, blob)
    }

    fn address(&mut self, e: &mut Enclave) -> Result<String, ErrorCode> {
        address(e, &mut self.env, &self.broker)
    }
}

#[test]
fn sealed_restart_through_kms_gives_the_same_wallets() {
    let mut w = World::new();
    let (mut first, blob) = w.sealed();
    assert_eq!(w.address(&mut first).unwrap(), VECTOR_ADDRESS);
    drop(first);

    // The blob names the KMS ciphertext, never the data key; the K3 bytes are not in it.
    let (header, _) = BlobHeader::parse(&blob).unwrap();
    assert_eq!(header.platform, Platform::Nitro);
    assert!(header.key_handle[32..].starts_with(b"mock-kms-ciphertext-blob:"));
    let k3_bytes: Vec<u8> = (0u8..32).collect();
    assert!(!blob.windows(32).any(|win| win == k3_bytes));

    for _ in 0..3 {
        let mut e = w.enclave(sim_pcrs(), None);
        assert_eq!(w.address(&mut e), Err(ErrorCode::SignerDisabled));
        unseal(&mut e, &mut w.env, &blob).unwrap();
        assert_eq!(w.address(&mut e).unwrap(), VECTOR_ADDRESS);
    }
    assert_eq!(w.kms.calls(), ["GenerateDataKey", "Decrypt", "Decrypt", "Decrypt"]);
}

#[test]
fn another_measurement_gets_nothing_from_the_key_policy() {
    let mut w = World::new();
    let (_, blob) = w.sealed();
    let mut other = sim_pcrs();
    other[0][0] ^= 1;
    // The other build cannot open the blob: the header's measurement differs, and even if it
    // were relabelled, KMS would refuse the data key.
    let mut e = w.enclave(other, None);
    let (code, _) = unseal(&mut e, &mut w.env, &blob).unwrap_err();
    assert_eq!(code, ErrorCode::ReprovisionRequired);
    assert_eq!(w.address(&mut e), Err(ErrorCode::SignerDisabled));
    // Nor can it seal: GenerateDataKey is refused too.
    e.load_k3(1, seq_k3());
    let (code, message) = seal(&mut e, &mut w.env).unwrap_err();
    assert_eq!(code, ErrorCode::SealingUnavailable);
    assert!(message.contains("AccessDeniedException"), "{message}");
    assert_eq!(w.kms.calls(), ["GenerateDataKey", "GenerateDataKey"]);
}

#[test]
fn a_host_impersonating_kms_or_a_wrong_answer_is_refused() {
    let mut w = World::new();
    // The enclave trusts only the public roots compiled in: the mock's certificate (what a host
    // in the middle would present) does not pass, and nothing is sealed.
    let mut e = w.enclave(sim_pcrs(), Some(webpki_roots()));
    e.load_k3(1, seq_k3());
    let (code, message) = seal(&mut e, &mut w.env).unwrap_err();
    assert_eq!(code, ErrorCode::SealingUnavailable);
    assert!(message.contains("kms.eu-west-1.amazonaws.com"), "{message}");
    assert!(w.kms.calls().is_empty());

    // An answer for another key is not used.
    *w.kms.mode.lock().unwrap() = Mode::OtherKeyId;
    let mut e = w.enclave(sim_pcrs(), None);
    e.load_k3(1, seq_k3());
    let (code, message) = seal(&mut e, &mut w.env).unwrap_err();
    assert_eq!(code, ErrorCode::SealingUnavailable);
    assert!(message.contains("another key"), "{message}");
}

#[test]
fn a_tampered_key_handle_requires_reprovisioning() {
    let mut w = World::new();
    let (_, blob) = w.sealed();
    let mut bad = blob.clone();
    let at = blob.windows(5).position(|win| win == b"mock-").unwrap();
    bad[at] ^= 1;
    let mut e = w.enclave(sim_pcrs(), None);
    let (code, _) = unseal(&mut e, &mut w.env, &bad).unwrap_err();
    assert_eq!(code, ErrorCode::ReprovisionRequired);
    unseal(&mut e, &mut w.env, &blob).unwrap();
}

fn webpki_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    roots
}
