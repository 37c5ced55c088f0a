//! Shared helpers for the enclave's integration tests: a test broker that mints real ES256
//! JWTs (with ring, independent of the enclave's verification path), request builders and an
//! independent signature checker (RustCrypto k256, independent of libsecp256k1).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs,
    unreachable_pub,
    reason = "test helpers: failing loudly is the point"
)]

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha3::{Digest, Keccak256};
use sigil_enclave::jwt::BrokerKey;
use sigil_enclave::{Config, Enclave, FixedEnv, K3};
use sigil_protocol::{
    BrokerToken, DeriveAddress, Envelope, OmniAccount, Request, Response, SignEip191, Subject, decode_message,
    encode_message,
};

/// A point in time tokens are minted around.
pub const NOW: u64 = 1_760_000_000;

/// K3 = 00 01 … 1f (SPEC §3 vectors).
pub fn k3_seq() -> K3 {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    K3::from_bytes(b)
}

pub struct Broker {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Broker {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        Self { key, rng }
    }

    pub fn public_key(&self) -> BrokerKey {
        BrokerKey::from_sec1(self.key.public_key().as_ref()).unwrap()
    }

    /// Signs `header.claims` (both raw JSON text) with this broker's key.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.as_bytes()),
            Base64UrlUnpadded::encode_string(claims.as_bytes())
        );
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", Base64UrlUnpadded::encode_string(sig.as_ref()))
    }

    /// A real-looking broker token for `omni`, expiring at `NOW + 3600`.
    pub fn token(&self, omni: &[u8; 32]) -> String {
        self.sign_raw(&default_header(), &claims(omni, NOW + 3600))
    }

    /// A token valid for an hour from the real clock, for the real binary.
    pub fn live_token(&self, omni: &[u8; 32]) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.sign_raw(&default_header(), &claims(omni, now + 3600))
    }
}

pub fn default_header() -> String {
    format!(r#"{{"alg":"ES256","kid":"ak-session-{NOW}"}}"#)
}

pub fn claims(omni: &[u8; 32], exp: u64) -> String {
    let o = hex::encode(omni);
    format!(
        r#"{{"iss":"agentkeys-broker","sub":"agentkeys:user:{o}","aud":"agentkeys:broker","exp":{exp},"iat":{iat},"jti":"j-1","agentkeys":{{"omni_account":"{o}","wallet_address":"0x0000000000000000000000000000000000000000","identity_type":"email","identity_value":"a@example.com"}}}}"#,
        iat = NOW - 10
    )
}

pub fn enclave_with(broker: &Broker, jwt_cache: usize, wallet_cache: usize) -> Enclave {
    let mut cfg = Config::new(broker.public_key());
    cfg.jwt_cache_capacity = jwt_cache;
    cfg.wallet_cache_capacity = wallet_cache;
    let mut e = Enclave::new(cfg);
    e.load_k3(1, k3_seq());
    e
}

pub fn subject(token: &str, omni: [u8; 32]) -> Subject {
    Subject { token: BrokerToken::new(token.to_owned()), key_version: 1, omni: OmniAccount::from(omni) }
}

pub fn call(enclave: &mut Enclave, env: &mut FixedEnv, body: Request) -> Response {
    let frame = encode_message(&Envelope { request_id: 42, body }).unwrap();
    let resp: Envelope<Response> = decode_message(&enclave.handle(&frame, env)).unwrap();
    assert_eq!(resp.request_id, 42);
    resp.body
}

pub fn sign_eip191(enclave: &mut Enclave, env: &mut FixedEnv, token: &str, omni: [u8; 32], msg: &[u8]) -> Response {
    call(enclave, env, Request::SignEip191(SignEip191 { subject: subject(token, omni), message: msg.to_vec() }))
}

pub fn derive_address(enclave: &mut Enclave, env: &mut FixedEnv, token: &str, omni: [u8; 32]) -> Response {
    call(enclave, env, Request::DeriveAddress(DeriveAddress { subject: subject(token, omni) }))
}

/// Recovers the signer's address from `r || s || v` over `digest` with RustCrypto's k256 —
/// an implementation independent of the enclave's libsecp256k1.
pub fn recover_address(digest: &[u8; 32], sig: &[u8; 65]) -> [u8; 20] {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let signature = Signature::from_slice(&sig[..64]).unwrap();
    assert!(signature.normalize_s() == signature, "signature is not low-s");
    assert!(sig[64] <= 1, "v must be 0 or 1");
    let recid = RecoveryId::from_byte(sig[64]).unwrap();
    let vk = VerifyingKey::recover_from_prehash(digest, &signature, recid).unwrap();
    let point = vk.to_sec1_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    hash[12..].try_into().unwrap()
}

/// The EIP-191 digest, computed here rather than with the enclave's own function.
pub fn eip191_digest(msg: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(format!("\x19Ethereum Signed Message:\n{}", msg.len()).as_bytes());
    h.update(msg);
    h.finalize().into()
}
