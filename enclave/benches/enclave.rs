//! Enclave hot-path benchmarks. Each group puts the sigil code path next to its raw
//! primitive so the ratios tracked in docs/PERFORMANCE.md come from one run:
//!
//! - `sign_eip191`: raw libsecp256k1 recoverable sign (THE reference), warm `handle()`,
//!   RustCrypto k256 (the pure-Rust alternative).
//! - `derive`: raw pubkey + keccak, `WalletKey::derive`, `handle()` DeriveAddress uncached.
//! - `es256_verify`: raw ring verify, `jwt::verify_token`, RustCrypto p256 verify.
//! - `handle_cold`: `handle()` SignEip191 with both caches off, next to warm and raw.
//! - `sign_eip712`: `eip712::hash_typed_data` (USDC Permit), warm `handle()`, raw sign.
//! - `derive_kek`: warm `handle()` DeriveKek (HKDF + HPKE seal), raw sign.
//!
//! Run: `cargo bench -p sigil-enclave --bench enclave`.
// Benchmark setup code: a failed unwrap is a broken benchmark, reported by the panic; the
// `criterion_group!` macro generates undocumented public items.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use core::hint::black_box;
use core::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use sha3::{Digest, Keccak256};
use sigil_enclave::jwt::{self, BrokerKey};
use sigil_enclave::wallet::WalletKey;
use sigil_enclave::{Config, Enclave, FixedEnv, K3, eip191, eip712, kek};
use sigil_protocol::{
    BrokerToken, Bytes, DeriveAddress, DeriveKek, DevCall, DevRoute, Envelope, OmniAccount, Request, Response,
    SignEip191, SignEip712, Subject, decode_message, encode_message,
};

/// The clock the tokens are minted around (tokens expire at `NOW + 3600`).
const NOW: u64 = 1_760_000_000;
const OMNI: [u8; 32] = [0xab; 32];

/// USDC `permit` on mainnet (the `usdc_permit_mainnet` vector of tests/vectors/eip712.json).
const USDC_PERMIT: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Permit":[{"name":"owner","type":"address"},{"name":"spender","type":"address"},{"name":"value","type":"uint256"},{"name":"nonce","type":"uint256"},{"name":"deadline","type":"uint256"}]},"primaryType":"Permit","domain":{"name":"USD Coin","version":"2","chainId":1,"verifyingContract":"0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"},"message":{"owner":"0x384099f86f48b052da6535d608315dee069642f7","spender":"0x000000000022D473030F116dDEE9F6B43aC78BA3","value":"1000000","nonce":0,"deadline":1893456000}}"#;
const USDC_PERMIT_DOMAIN_SEPARATOR: &str = "06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335";

/// K3 = 00 01 … 1f (SPEC §3 vectors).
fn k3_seq() -> K3 {
    let mut b = [0u8; 32];
    for (x, i) in b.iter_mut().zip(0u8..) {
        *x = i;
    }
    K3::from_bytes(b)
}

/// A test broker minting real ES256 JWTs with ring (as tests/common does).
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

    fn sec1(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    fn public_key(&self) -> BrokerKey {
        BrokerKey::from_sec1(self.sec1()).unwrap()
    }

    /// A realistic broker token for `omni`, valid until `NOW + 3600`.
    fn token(&self, omni: &[u8; 32]) -> String {
        let o = hex::encode(omni);
        let header = format!(r#"{{"alg":"ES256","kid":"ak-session-{NOW}"}}"#);
        let claims = format!(
            r#"{{"iss":"agentkeys-broker","sub":"agentkeys:user:{o}","aud":"agentkeys:broker","exp":{exp},"iat":{iat},"jti":"j-1","agentkeys":{{"omni_account":"{o}","wallet_address":"0x0000000000000000000000000000000000000000","identity_type":"email","identity_value":"a@example.com"}}}}"#,
            exp = NOW + 3600,
            iat = NOW - 10
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

/// Everything a group needs: a broker, its token, and request frames.
struct Fixture {
    broker: Broker,
    token: String,
}

impl Fixture {
    fn new() -> Self {
        let broker = Broker::new();
        let token = broker.token(&OMNI);
        Self { broker, token }
    }

    fn enclave(&self, jwt_cache: usize, wallet_cache: usize) -> Enclave {
        let mut cfg = Config::new(self.broker.public_key());
        cfg.jwt_cache_capacity = jwt_cache;
        cfg.wallet_cache_capacity = wallet_cache;
        let mut e = Enclave::new(cfg);
        e.load_k3(1, k3_seq());
        e
    }

    /// The enclave as built in production (`Config::new`: both caches on).
    fn warm_enclave(&self) -> Enclave {
        let mut e = Enclave::new(Config::new(self.broker.public_key()));
        e.load_k3(1, k3_seq());
        e
    }

    fn subject(&self) -> Subject {
        Subject { token: BrokerToken::new(self.token.clone()), key_version: 1, omni: OmniAccount::from(OMNI) }
    }

    fn frame(&self, body: Request) -> Vec<u8> {
        encode_message(&Envelope { request_id: 42, body }).unwrap()
    }

    fn sign_eip191(&self) -> Vec<u8> {
        self.frame(Request::SignEip191(SignEip191 { subject: self.subject(), message: b"hello".to_vec() }))
    }

    /// `POST /dev/sign-message` as the host relays it: the enclave parses the JSON body and
    /// signs its JSON answer with the response-signing key.
    fn dev_sign_message(&self) -> Vec<u8> {
        let body = format!(r#"{{"omni_account":"{}","message_hex":"68656c6c6f"}}"#, hex::encode(OMNI));
        self.frame(Request::DevCall(DevCall {
            route: DevRoute::SignMessage,
            token: BrokerToken::new(self.token.clone()),
            body: body.into_bytes(),
        }))
    }

    fn derive_address(&self) -> Vec<u8> {
        self.frame(Request::DeriveAddress(DeriveAddress { subject: self.subject() }))
    }

    fn sign_eip712(&self) -> Vec<u8> {
        self.frame(Request::SignEip712(SignEip712 { subject: self.subject(), typed_data: USDC_PERMIT.to_owned() }))
    }

    fn derive_kek(&self, recipient: [u8; 32]) -> Vec<u8> {
        self.frame(Request::DeriveKek(DeriveKek {
            subject: self.subject(),
            context: b"openai".to_vec(),
            recipient: Bytes(recipient),
        }))
    }
}

/// Sends `frame` once (warming whatever caches are on) and returns the decoded response.
fn call(enclave: &mut Enclave, env: &mut FixedEnv, frame: &[u8]) -> Response {
    let resp: Envelope<Response> = decode_message(&enclave.handle(frame, env)).unwrap();
    assert_eq!(resp.request_id, 42);
    resp.body
}

/// Modest times so the whole run stays well under five minutes on a shared 2-core box.
fn tune(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(50).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(5));
}

/// The reference: raw libsecp256k1 recoverable sign of a 32-byte digest.
fn raw_libsecp_sign(g: &mut BenchmarkGroup<'_, WallTime>) {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_byte_array([0x11; 32]).unwrap();
    let d = eip191::digest(b"hello");
    g.bench_function("libsecp256k1_sign_recoverable", |b| {
        b.iter(|| secp.sign_ecdsa_recoverable(Message::from_digest(black_box(d)), black_box(&sk)));
    });
}

/// A `handle()` bench: asserts the response once, then measures the frame round trip.
fn handle_bench(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    mut enclave: Enclave,
    frame: &[u8],
    ok: fn(&Response) -> bool,
) {
    let mut env = FixedEnv::new(NOW);
    let resp = call(&mut enclave, &mut env, frame);
    assert!(ok(&resp), "{id}: unexpected response {resp:?}");
    g.bench_function(id, |b| b.iter(|| enclave.handle(black_box(frame), &mut env)));
}

fn sign_eip191(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut g = c.benchmark_group("sign_eip191");
    tune(&mut g);
    raw_libsecp_sign(&mut g);
    handle_bench(&mut g, "handle_warm", fx.warm_enclave(), &fx.sign_eip191(), |r| {
        matches!(r, Response::Eip191Signature(_))
    });
    handle_bench(
        &mut g,
        "handle_warm_dev_call_signed",
        fx.warm_enclave(),
        &fx.dev_sign_message(),
        |r| matches!(r, Response::DevResponse(d) if d.status == 200),
    );
    let sk = k256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap();
    let d = eip191::digest(b"hello");
    g.bench_function("k256_sign_prehash_recoverable", |b| {
        b.iter(|| sk.sign_prehash_recoverable(black_box(&d)));
    });
    g.finish();
}

fn derive(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut g = c.benchmark_group("derive");
    tune(&mut g);
    let secp = Secp256k1::new();
    let sk = SecretKey::from_byte_array([0x11; 32]).unwrap();
    g.bench_function("libsecp256k1_pubkey_keccak", |b| {
        b.iter(|| {
            let pk = PublicKey::from_secret_key(&secp, black_box(&sk)).serialize_uncompressed();
            let h: [u8; 32] = Keccak256::digest(&pk[1..]).into();
            h
        });
    });
    let k3 = k3_seq();
    g.bench_function("wallet_derive", |b| {
        b.iter(|| WalletKey::derive(&secp, &k3, 1, black_box(&OMNI)).unwrap().address());
    });
    handle_bench(&mut g, "handle_derive_address_jwt_cached", fx.enclave(4096, 0), &fx.derive_address(), |r| {
        matches!(r, Response::Address(_))
    });
    g.finish();
}

fn es256_verify(c: &mut Criterion) {
    let fx = Fixture::new();
    let token = fx.token.as_str();
    let (signing_input, s64) = token.rsplit_once('.').unwrap();
    let sig = Base64UrlUnpadded::decode_vec(s64).unwrap();
    let sec1 = fx.broker.sec1().to_vec();
    let key = fx.broker.public_key();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &sec1).verify(signing_input.as_bytes(), &sig).unwrap();
    jwt::verify_token(token, &key).unwrap();

    let mut g = c.benchmark_group("es256_verify");
    tune(&mut g);
    g.bench_function("ring_verify", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, black_box(&sec1))
                .verify(black_box(signing_input.as_bytes()), black_box(&sig))
                .unwrap();
        });
    });
    g.bench_function("jwt_verify_token", |b| b.iter(|| jwt::verify_token(black_box(token), &key).unwrap()));
    {
        use p256::ecdsa::signature::Verifier as _;
        let p_sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap().verify(signing_input.as_bytes(), &p_sig).unwrap();
        // Key parsed inside the loop, like ring's `UnparsedPublicKey`.
        g.bench_function("p256_verify", |b| {
            b.iter(|| {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(black_box(&sec1))
                    .unwrap()
                    .verify(black_box(signing_input.as_bytes()), black_box(&p_sig))
                    .unwrap();
            });
        });
    }
    g.finish();
}

fn handle_cold(c: &mut Criterion) {
    let fx = Fixture::new();
    let frame = fx.sign_eip191();
    let mut g = c.benchmark_group("handle_cold");
    tune(&mut g);
    raw_libsecp_sign(&mut g);
    handle_bench(&mut g, "handle_warm", fx.warm_enclave(), &frame, |r| matches!(r, Response::Eip191Signature(_)));
    handle_bench(&mut g, "handle_cold_no_caches", fx.enclave(0, 0), &frame, |r| {
        matches!(r, Response::Eip191Signature(_))
    });
    g.finish();
}

fn sign_eip712(c: &mut Criterion) {
    let fx = Fixture::new();
    let hashes = eip712::hash_typed_data(USDC_PERMIT).unwrap();
    assert_eq!(hex::encode(hashes.domain_separator), USDC_PERMIT_DOMAIN_SEPARATOR);
    let mut g = c.benchmark_group("sign_eip712");
    tune(&mut g);
    raw_libsecp_sign(&mut g);
    g.bench_function("hash_typed_data", |b| b.iter(|| eip712::hash_typed_data(black_box(USDC_PERMIT)).unwrap()));
    handle_bench(&mut g, "handle_warm", fx.warm_enclave(), &fx.sign_eip712(), |r| {
        matches!(r, Response::Eip712Signature(_))
    });
    g.finish();
}

fn derive_kek(c: &mut Criterion) {
    let fx = Fixture::new();
    let (_sk, pk) = kek::recipient_keypair(&[9; 32]);
    let mut g = c.benchmark_group("derive_kek");
    tune(&mut g);
    raw_libsecp_sign(&mut g);
    handle_bench(&mut g, "handle_warm", fx.warm_enclave(), &fx.derive_kek(pk), |r| matches!(r, Response::SealedKek(_)));
    g.finish();
}

criterion_group!(benches, sign_eip191, derive, es256_verify, handle_cold, sign_eip712, derive_kek);
criterion_main!(benches);
