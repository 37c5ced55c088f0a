//! The client side of the VM test (`tests/vm/run.sh`): runs inside the QEMU guest against a
//! `sigil-host` that reaches `sigil-enclave` over real AF_VSOCK, and checks every answer
//! against SPEC §3's test vectors (K3 = `00 01 … 1f`, omni = `ab` × 32, key_version 1).
//!
//! ```text
//! vm_client https://127.0.0.1:8443 STATE_DIR
//! ```
//!
//! `STATE_DIR` is a `sigil dev --state-dir` directory: `tls-cert.pem` (trusted for HTTPS),
//! `policy.toml` (what the attested session must prove) and `broker-key.p8` (to mint the
//! broker JWTs the enclave checks). One line per check; the first mismatch ends the run with
//! exit code 1 and a line starting `FAIL:`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ring::signature::{ED25519, UnparsedPublicKey};
use sigil::{Client, ClientError, ClientOptions, Policy};
use sigil_enclave::K3;
use sigil_protocol::{ErrorCode, Platform};

/// SPEC §3: K3 = bytes `00 01 … 1f`.
const VECTOR_K3: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// SPEC §3: omni = `ab` × 32.
const VECTOR_OMNI: [u8; 32] = [0xab; 32];
/// SPEC §3: the address of `(K3, omni, key_version 1)`.
const VECTOR_ADDRESS: &str = "0x384099f86f48b052da6535d608315dee069642f7";
/// SPEC §3: the EIP-191 signature of "hello" by that wallet.
const VECTOR_SIG_HELLO: &str = "0x6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01";
/// The KEK context asked for through the session.
const KEK_CONTEXT: &[u8] = b"sigil-vm-test";
/// How long the host may take to reach the enclave and report ready (a TCG guest is slow).
const READY_WITHIN: Duration = Duration::from_secs(120);

/// A failed check: what was expected and what came back.
struct Failure(String);

type Checked<T> = Result<T, Failure>;

fn fail<T>(what: impl Into<String>) -> Checked<T> {
    Err(Failure(what.into()))
}

/// Equal, or a failure naming the check.
fn expect_eq(what: &str, got: &str, want: &str) -> Checked<()> {
    if got == want {
        println!("check: {what} ok ({got})");
        Ok(())
    } else {
        fail(format!("{what}: got {got}, expected {want}"))
    }
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn read(dir: &Path, name: &str) -> Checked<Vec<u8>> {
    let path = dir.join(name);
    std::fs::read(&path).or_else(|e| fail(format!("cannot read {}: {e}", path.display())))
}

/// A broker-shaped ES256 token for `omni` (SPEC §2), signed with the dev broker's key.
fn mint_jwt(pkcs8: &[u8], omni_hex: &str) -> Checked<String> {
    let broker = sigil::dev::DevBroker::from_pkcs8(pkcs8).or_else(|e| fail(format!("broker-key.p8: {e}")))?;
    broker.mint(omni_hex, Duration::from_secs(600)).or_else(fail)
}

/// keccak256 of the uncompressed key's X || Y, last 20 bytes: the Ethereum address.
fn eth_address(point_xy: &[u8]) -> String {
    use sha3::{Digest, Keccak256};
    hex0x(Keccak256::digest(point_xy).get(12..).unwrap_or_default())
}

/// The signer's address recovered from an r || s || v signature over EIP-191("hello"),
/// with RustCrypto k256 (not the enclave's libsecp256k1), insisting on low-s and v ∈ {0, 1}.
fn recover_eip191(message: &[u8], signature: &[u8]) -> Checked<String> {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    use sha3::{Digest, Keccak256};
    let digest = Keccak256::new()
        .chain_update(format!("\x19Ethereum Signed Message:\n{}", message.len()).as_bytes())
        .chain_update(message)
        .finalize();
    let (Some(rs), Some(&v)) = (signature.get(..64), signature.get(64)) else {
        return fail(format!("signature is {} bytes, not 65", signature.len()));
    };
    let Ok(sig) = Signature::from_slice(rs) else { return fail("signature r || s does not parse") };
    if sig.normalize_s() != sig {
        return fail("signature is not low-s");
    }
    let Some(recid) = RecoveryId::from_byte(v).filter(|_| v <= 1) else {
        return fail(format!("signature v = {v}, expected 0 or 1"));
    };
    let Ok(key) = VerifyingKey::recover_from_prehash(&digest, &sig, recid) else {
        return fail("no public key recovers from the signature");
    };
    let point = key.to_sec1_point(false);
    Ok(eth_address(point.as_bytes().get(1..).unwrap_or_default()))
}

/// SPEC §3's native KEK, computed here with ring's HKDF (the enclave uses RustCrypto's).
fn expected_kek(k3: &[u8; 32], omni: &[u8; 32], context: &[u8]) -> Checked<[u8; 32]> {
    use ring::hkdf::{HKDF_SHA256, Salt};
    let Ok(len) = u16::try_from(context.len()) else { return fail("KEK context too long") };
    let len = len.to_be_bytes();
    let prk = Salt::new(HKDF_SHA256, sigil_enclave::kek::KEK_SALT).extract(k3);
    let info: [&[u8]; 4] = [sigil_enclave::kek::KEK_LABEL, omni, &len, context];
    let mut out = [0u8; 32];
    match prk.expand(&info, HKDF_SHA256).and_then(|okm| okm.fill(&mut out)) {
        Ok(()) => Ok(out),
        Err(_) => fail("HKDF expand failed"),
    }
}

/// A plain-route answer: status, body, and the enclave's `x-sigil-signature`.
struct Reply {
    status: u16,
    body: Vec<u8>,
    signature: Option<String>,
}

impl Reply {
    fn json(&self) -> Checked<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .or_else(|e| fail(format!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body))))
    }
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(base: &str, cert_pem: &[u8]) -> Checked<Self> {
        let Ok(cert) = reqwest::Certificate::from_pem(cert_pem) else {
            return fail("tls-cert.pem is not a certificate");
        };
        match reqwest::Client::builder().add_root_certificate(cert).timeout(Duration::from_secs(30)).build() {
            Ok(client) => Ok(Self { client, base: base.trim_end_matches('/').to_owned() }),
            Err(e) => fail(format!("cannot build the HTTPS client: {e}")),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Checked<Reply> {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return fail(format!("{what}: {}", error_chain(&e))),
        };
        let status = resp.status().as_u16();
        let signature = resp.headers().get("x-sigil-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
        match resp.bytes().await {
            Ok(body) => Ok(Reply { status, body: body.to_vec(), signature }),
            Err(e) => fail(format!("{what}: reading the body: {}", error_chain(&e))),
        }
    }

    async fn get(&self, path: &str) -> Checked<Reply> {
        self.send(self.client.get(format!("{}{path}", self.base)), path).await
    }

    async fn post_json(&self, path: &str, token: &str, body: &[u8]) -> Checked<Reply> {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_vec());
        self.send(req, path).await
    }
}

/// reqwest's message with its causes (it hides e.g. a TLS `UnknownIssuer` behind "error
/// sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    msg
}

/// Checks that `reply` carries the attested enclave's Ed25519 signature over this route,
/// request and answer: the plain route went through the enclave that passed attestation.
fn check_signed(what: &str, reply: &Reply, signing_pub: &[u8], path: &str, request: &[u8]) -> Checked<()> {
    let Some(header) = &reply.signature else { return fail(format!("{what}: no x-sigil-signature")) };
    let Ok(sig) = hex::decode(header) else { return fail(format!("{what}: x-sigil-signature is not hex")) };
    let signed = sigil_protocol::dev_response_signed_bytes(path, request, reply.status, &reply.body);
    if UnparsedPublicKey::new(&ED25519, signing_pub).verify(&signed, &sig).is_err() {
        return fail(format!("{what}: x-sigil-signature does not verify under the attested signing key"));
    }
    println!("check: {what} x-sigil-signature verifies under the attested signing key ok");
    Ok(())
}

fn json_str(v: &serde_json::Value, field: &str) -> String {
    v.get(field).and_then(serde_json::Value::as_str).unwrap_or("<missing>").to_owned()
}

/// `/readyz` answers 200 `{"ready":true}` once the host listens and holds a live connection
/// to an enclave that has K3 for epoch 1; until then it refuses connections or answers 503.
async fn wait_ready(http: &Http) -> Checked<()> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < READY_WITHIN {
        match http.get("/readyz").await {
            Ok(r) if r.status == 200 => {
                println!(
                    "check: host ready after {} ms ({}) ok",
                    start.elapsed().as_millis(),
                    String::from_utf8_lossy(&r.body)
                );
                return Ok(());
            }
            Ok(r) => last = format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(Failure(e)) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    fail(format!("/readyz not 200 within {} s; last answer: {last}", READY_WITHIN.as_secs()))
}

async fn run(url: &str, dir: &Path) -> Checked<()> {
    let cert_pem = read(dir, "tls-cert.pem")?;
    let policy_text = String::from_utf8_lossy(&read(dir, "policy.toml")?).into_owned();
    let policy = Policy::from_toml(&policy_text).or_else(|e| fail(format!("policy.toml: {e}")))?;
    let omni_hex = hex::encode(VECTOR_OMNI);
    let jwt = mint_jwt(&read(dir, "broker-key.p8")?, &omni_hex)?;
    let mut k3_bytes = [0u8; 32];
    let (Ok(k3), Ok(())) = (K3::from_hex(VECTOR_K3), hex::decode_to_slice(VECTOR_K3, &mut k3_bytes)) else {
        return fail("the SPEC K3 does not parse");
    };
    let http = Http::new(url, &cert_pem)?;

    wait_ready(&http).await?;
    let health = http.get("/healthz").await?;
    expect_eq(
        "GET /healthz over HTTPS",
        &format!("{} {}", health.status, String::from_utf8_lossy(&health.body)),
        "200 ok",
    )?;

    // The attested session: evidence verified against the policy before any request.
    let options = ClientOptions { ca_cert_pem: Some(cert_pem.clone()), ..ClientOptions::default() };
    let client = Client::connect(url, policy, options)
        .await
        .or_else(|e| fail(format!("attested session (Client::connect): {e}")))?;
    let Some(verified) = client.verified().await else { return fail("attested session: no verified evidence") };
    let pcr0 = match &verified.measurement {
        sigil::attestation::Measurement::Pcrs(pcrs) => pcrs.get(&0).map(hex::encode).unwrap_or_default(),
        sigil::attestation::Measurement::Snp(m) => hex::encode(m),
    };
    println!(
        "attested: platform {:?}, PCR0 {pcr0}, root sha256 {}, document time {} ms, debug {}, k3 fingerprint {}",
        verified.platform,
        hex::encode(verified.root_sha256),
        verified.timestamp_ms.unwrap_or(0),
        verified.debug,
        verified.k3_fingerprint.map(hex::encode).unwrap_or_else(|| "none".into()),
    );
    expect_eq("attested platform", &format!("{:?}", verified.platform), &format!("{:?}", Platform::Sim))?;
    expect_eq(
        "attested K3 fingerprint = SPEC K3's",
        &verified.k3_fingerprint.map(hex::encode).unwrap_or_default(),
        &hex::encode(k3.fingerprint()),
    )?;
    let Some(signing_pub) = verified.nitro.as_ref().and_then(|d| d.public_key.clone()) else {
        return fail("attested evidence carries no response-signing key");
    };

    // Through the session (sealed end to end; the host relays ciphertext).
    let address =
        client.derive_address(&jwt, VECTOR_OMNI).await.or_else(|e| fail(format!("session derive_address: {e}")))?;
    expect_eq("session derive_address (SPEC §3 vector)", &hex0x(&address.address.0), VECTOR_ADDRESS)?;
    expect_eq("session derive_address key_version", &address.key_version.to_string(), "1")?;
    let signed =
        client.sign_eip191(&jwt, VECTOR_OMNI, b"hello").await.or_else(|e| fail(format!("session sign_eip191: {e}")))?;
    expect_eq("session sign_eip191(\"hello\") (SPEC §3 vector)", &hex0x(&signed.signature.0), VECTOR_SIG_HELLO)?;
    expect_eq("session sign_eip191 address", &hex0x(&signed.address.0), VECTOR_ADDRESS)?;
    expect_eq("session signature recovers (k256) to", &recover_eip191(b"hello", &signed.signature.0)?, VECTOR_ADDRESS)?;
    let kek = client
        .derive_kek(&jwt, VECTOR_OMNI, KEK_CONTEXT)
        .await
        .or_else(|e| fail(format!("session derive_kek: {e}")))?;
    expect_eq(
        "session derive_kek (HPKE-opened) = SPEC §3 KEK computed with ring",
        &hex::encode(*kek),
        &hex::encode(expected_kek(&k3_bytes, &VECTOR_OMNI, KEK_CONTEXT)?),
    )?;
    // Only the enclave can see a sealed JWT: a forged one must be refused by the enclave.
    let forged = format!("{jwt}x");
    match client.derive_address(&forged, VECTOR_OMNI).await {
        Err(ClientError::Enclave { code: ErrorCode::Unauthorized, .. }) => {
            println!("check: session with a forged JWT refused by the enclave (unauthorized) ok");
        }
        other => return fail(format!("session with a forged JWT: expected enclave unauthorized, got {other:?}")),
    }

    // The plain compat routes (SPEC §2) over HTTPS, with the enclave's signature on each answer.
    let path = "/dev/derive-address";
    let body = format!(r#"{{"omni_account":"{omni_hex}"}}"#);
    let reply = http.post_json(path, &jwt, body.as_bytes()).await?;
    let v = reply.json()?;
    expect_eq("POST /dev/derive-address status", &reply.status.to_string(), "200")?;
    expect_eq("POST /dev/derive-address address (SPEC §3 vector)", &json_str(&v, "address"), VECTOR_ADDRESS)?;
    expect_eq(
        "POST /dev/derive-address key_version",
        &v.get("key_version").map(ToString::to_string).unwrap_or_default(),
        "1",
    )?;
    check_signed("POST /dev/derive-address", &reply, &signing_pub, path, body.as_bytes())?;

    let path = "/dev/sign-message";
    let body = format!(r#"{{"omni_account":"{omni_hex}","message_hex":"68656c6c6f"}}"#);
    let reply = http.post_json(path, &jwt, body.as_bytes()).await?;
    let v = reply.json()?;
    expect_eq("POST /dev/sign-message status", &reply.status.to_string(), "200")?;
    let sig = json_str(&v, "signature");
    expect_eq("POST /dev/sign-message signature (SPEC §3 vector)", &sig, VECTOR_SIG_HELLO)?;
    expect_eq("POST /dev/sign-message address", &json_str(&v, "address"), VECTOR_ADDRESS)?;
    let Ok(sig_bytes) = hex::decode(sig.trim_start_matches("0x")) else { return fail("signature is not hex") };
    expect_eq(
        "POST /dev/sign-message signature recovers (k256) to",
        &recover_eip191(b"hello", &sig_bytes)?,
        VECTOR_ADDRESS,
    )?;
    check_signed("POST /dev/sign-message", &reply, &signing_pub, path, body.as_bytes())?;

    let reply = http.post_json(path, &forged, body.as_bytes()).await?;
    expect_eq(
        "POST /dev/sign-message with a forged JWT",
        &format!("{} {}", reply.status, json_str(&reply.json()?, "error")),
        "401 unauthorized",
    )?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(dir), None) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: vm_client https://HOST:PORT STATE_DIR");
        return ExitCode::from(2);
    };
    let started = Instant::now();
    match run(url, &PathBuf::from(dir)).await {
        Ok(()) => {
            println!("vm_client: all checks passed in {} ms", started.elapsed().as_millis());
            ExitCode::SUCCESS
        }
        Err(Failure(what)) => {
            println!("FAIL: {what}");
            ExitCode::FAILURE
        }
    }
}
