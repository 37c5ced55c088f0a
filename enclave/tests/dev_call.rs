//! `Request::DevCall` through `Enclave::handle`: the plain `/dev/*` routes answered inside the
//! enclave, byte for byte as the host used to answer them, every answer (errors included)
//! signed with the attested response-signing key — checked here with ring's Ed25519, an
//! implementation independent of the enclave's ed25519-dalek.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use sigil_enclave::{Config, Enclave, FixedEnv};
use sigil_protocol::{BrokerToken, DevCall, DevResponse, DevRoute, Request, Response, dev_response_signed_bytes};

const O_AB: &str = "abababababababababababababababababababababababababababababababab";
const ADDR_AB: &str = "0x384099f86f48b052da6535d608315dee069642f7";
const SIG_AB_HELLO: &str = "0x6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01";

fn dev(enclave: &mut Enclave, env: &mut FixedEnv, route: DevRoute, token: &str, body: &str) -> DevResponse {
    let c = DevCall { route, token: BrokerToken::new(token.to_owned()), body: body.as_bytes().to_vec() };
    match call(enclave, env, Request::DevCall(c)) {
        Response::DevResponse(r) => r,
        other => panic!("expected a DevResponse, got {other:?}"),
    }
}

/// Verifies the answer's signature with ring and returns `(status, body as text)`.
fn verified(enclave: &Enclave, route: DevRoute, request: &str, r: &DevResponse) -> (u16, String) {
    let key = enclave.signing_public_key().expect("a signing key once a call was answered");
    let signed = dev_response_signed_bytes(route.path(), request.as_bytes(), r.status, &r.body);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(&signed, &r.signature.0)
        .unwrap_or_else(|_| panic!("signature does not verify for {} {}", r.status, String::from_utf8_lossy(&r.body)));
    // Any change to what the client sees or sent breaks it.
    let ring_key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key);
    let mut body = r.body.clone();
    body.push(b' ');
    for tampered in [
        dev_response_signed_bytes(route.path(), request.as_bytes(), r.status ^ 1, &r.body),
        dev_response_signed_bytes(route.path(), request.as_bytes(), r.status, &body),
        dev_response_signed_bytes(route.path(), format!("{request} ").as_bytes(), r.status, &r.body),
        dev_response_signed_bytes("/dev/other", request.as_bytes(), r.status, &r.body),
    ] {
        assert!(ring_key.verify(&tampered, &r.signature.0).is_err());
    }
    (r.status, String::from_utf8(r.body.clone()).unwrap())
}

fn envelope(code: &str, message: &str) -> String {
    format!(r#"{{"error":"{code}","message":"{message}"}}"#)
}

/// A token whose `agentkeys.omni_account` claim is the given text (valid hex or not).
fn token_for_text(broker: &Broker, omni: &str) -> String {
    let claims = format!(
        r#"{{"aud":"agentkeys:broker","exp":{exp},"agentkeys":{{"omni_account":"{omni}"}}}}"#,
        exp = NOW + 3600
    );
    broker.sign_raw(&default_header(), &claims)
}

fn usdc_permit() -> String {
    r#"{"types":{"Permit":[{"name":"owner","type":"address"},{"name":"spender","type":"address"},{"name":"value","type":"uint256"},{"name":"nonce","type":"uint256"},{"name":"deadline","type":"uint256"}]},"primaryType":"Permit","domain":{"name":"USD Coin","version":"2","chainId":1,"verifyingContract":"0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"},"message":{"owner":"0x0000000000000000000000000000000000000001","spender":"0x0000000000000000000000000000000000000002","value":"1000000","nonce":0,"deadline":"0xffffffff"}}"#.to_owned()
}

#[test]
fn success_bodies_are_byte_exact_and_signed() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&[0xab; 32]);

    let body = format!(r#"{{"omni_account":"{O_AB}"}}"#);
    let r = dev(&mut e, &mut env, DevRoute::DeriveAddress, &t, &body);
    let want = format!(r#"{{"address":"{ADDR_AB}","key_version":1}}"#);
    assert_eq!(verified(&e, DevRoute::DeriveAddress, &body, &r), (200, want.clone()));
    // Uppercase account, unknown members, whitespace: the same answer.
    let body = format!(" {{ \"x\" : [1,{{}}], \"omni_account\" : \"{}\" }}\n", O_AB.to_ascii_uppercase());
    let r = dev(&mut e, &mut env, DevRoute::DeriveAddress, &t, &body);
    assert_eq!(verified(&e, DevRoute::DeriveAddress, &body, &r), (200, want));

    let body = format!(r#"{{"omni_account":"{O_AB}","message_hex":"0x68656c6c6f"}}"#);
    let r = dev(&mut e, &mut env, DevRoute::SignMessage, &t, &body);
    let want = format!(r#"{{"signature":"{SIG_AB_HELLO}","address":"{ADDR_AB}","key_version":1}}"#);
    assert_eq!(verified(&e, DevRoute::SignMessage, &body, &r), (200, want));
    // The signature recovers independently (k256).
    let empty = format!(r#"{{"omni_account":"{O_AB}","message_hex":""}}"#);
    let r = dev(&mut e, &mut env, DevRoute::SignMessage, &t, &empty);
    let (status, text) = verified(&e, DevRoute::SignMessage, &empty, &r);
    assert_eq!(status, 200);
    let sig: [u8; 65] = hex::decode(&text[16..146]).unwrap().try_into().unwrap();
    assert_eq!(format!("0x{}", hex::encode(recover_address(&eip191_digest(b""), &sig))), ADDR_AB);

    let body = format!("{{\"omni_account\":\"{O_AB}\",\"typed_data\":  {}  }}", usdc_permit());
    let r = dev(&mut e, &mut env, DevRoute::SignTypedData, &t, &body);
    let (status, text) = verified(&e, DevRoute::SignTypedData, &body, &r);
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["domain_separator"], "0x06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335");
    assert_eq!(v["address"], ADDR_AB);
    // Field order as the host's struct declared it.
    let keys: Vec<usize> = ["signature", "address", "primary_type_hash", "domain_separator", "digest", "key_version"]
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
    let digest: [u8; 32] = hex::decode(&v["digest"].as_str().unwrap()[2..]).unwrap().try_into().unwrap();
    let sig: [u8; 65] = hex::decode(&v["signature"].as_str().unwrap()[2..]).unwrap().try_into().unwrap();
    assert_eq!(format!("0x{}", hex::encode(recover_address(&digest, &sig))), ADDR_AB);
}

#[test]
fn every_error_is_the_spec_envelope_and_signed() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);
    let t = &*broker.token(&[0xab; 32]);
    let xyz = &*token_for_text(&broker, "xyz");
    let sm = DevRoute::SignMessage;
    let td = DevRoute::SignTypedData;
    let da = DevRoute::DeriveAddress;
    let msg = |o: &str, m: &str| format!(r#"{{"omni_account":"{o}","message_hex":"{m}"}}"#);
    let typed = |o: &str, d: &str| format!(r#"{{"omni_account":"{o}","typed_data":{d}}}"#);

    // (route, token, body, status, code, exact message)
    type Case<'a> = (DevRoute, &'a str, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        // Body parse comes first, even before the token.
        (da, "x.y.z", "{".into(), 400, "invalid_request", None),
        (da, t, "[]".into(), 400, "invalid_request", None),
        (sm, t, format!(r#"{{"omni_account":"{O_AB}"}}"#), 400, "invalid_request", None),
        (sm, t, format!(r#"{{"omni_account":"{O_AB}","message_hex":5}}"#), 400, "invalid_request", None),
        (td, t, format!(r#"{{"omni_account":"{O_AB}"}}"#), 400, "invalid_request", None),
        // JWT before field validation.
        (sm, "x.y.z", msg("xyz", "zz"), 401, "unauthorized", Some("malformed token")),
        (sm, t, msg(&"cd".repeat(32), "00"), 401, "unauthorized", Some("token is for another account")),
        (sm, t, msg("xyz", "zz"), 401, "unauthorized", Some("token is for another account")),
        // message_hex before omni, with the malformed omni matching its claim.
        (sm, xyz, msg("xyz", "zzz"), 400, "invalid_message_hex", Some("message_hex must be even-length hex")),
        (sm, xyz, msg("XYZ", "00"), 400, "invalid_omni_account", Some("omni_account must be 64 hex characters")),
        (da, xyz, r#"{"omni_account":"xyz"}"#.into(), 400, "invalid_omni_account", None),
        (td, xyz, typed("xyz", "{}"), 400, "invalid_omni_account", None),
        (sm, t, msg(O_AB, "0X00"), 400, "invalid_message_hex", None),
        (sm, t, msg(O_AB, "0x0x00"), 400, "invalid_message_hex", None),
        (sm, t, msg(O_AB, "abc"), 400, "invalid_message_hex", None),
        // typed_data: an object (checked after the account), then valid EIP-712.
        (td, t, typed(O_AB, "\"{}\""), 400, "invalid_request", Some("typed_data must be a JSON object")),
        (td, t, typed(O_AB, "[1]"), 400, "invalid_request", Some("typed_data must be a JSON object")),
        (td, t, typed(O_AB, "null"), 400, "invalid_request", Some("typed_data must be a JSON object")),
        (td, t, typed(O_AB, "{}"), 400, "invalid_typed_data", None),
        // Duplicate keys and lone surrogates inside typed_data are EIP-712's to refuse.
        (td, t, typed(O_AB, r#"{"types":{},"types":{}}"#), 400, "invalid_typed_data", None),
        (td, t, typed(O_AB, r#"{"primaryType":"\ud800"}"#), 400, "invalid_typed_data", None),
    ];
    for (route, token, body, status, code, message) in &cases {
        let r = dev(&mut e, &mut env, *route, token, body);
        let (got_status, text) = verified(&e, *route, body, &r);
        assert_eq!(got_status, *status, "{body}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], *code, "{body}: {text}");
        assert_eq!(v.as_object().unwrap().len(), 2, "{text}");
        if let Some(m) = message {
            assert_eq!(text, envelope(code, m), "{body}");
        }
    }
}

#[test]
fn unprovisioned_is_signer_disabled_after_the_jwt() {
    let broker = Broker::new();
    let mut e = Enclave::new(Config::new(broker.public_key()));
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&[0xab; 32]);
    let body = format!(r#"{{"omni_account":"{O_AB}","message_hex":"zz"}}"#);
    let r = dev(&mut e, &mut env, DevRoute::SignMessage, &t, &body);
    let want = envelope("signer_disabled", "signer not provisioned: no K3 loaded");
    assert_eq!(verified(&e, DevRoute::SignMessage, &body, &r), (503, want.clone()));
    // Provisioned before the account's format.
    let xyz = token_for_text(&broker, "xyz");
    let r = dev(&mut e, &mut env, DevRoute::DeriveAddress, &xyz, r#"{"omni_account":"xyz"}"#);
    assert_eq!(r.status, 503);
    // JWT before provisioned.
    let r = dev(&mut e, &mut env, DevRoute::SignMessage, "x.y.z", &body);
    assert_eq!(verified(&e, DevRoute::SignMessage, &body, &r).0, 401);

    // Only epoch 1 counts: the plain routes sign with it alone.
    let mut other = Enclave::new(Config::new(broker.public_key()));
    other.load_k3(2, k3_seq());
    let r = dev(&mut other, &mut env, DevRoute::DeriveAddress, &t, &format!(r#"{{"omni_account":"{O_AB}"}}"#));
    assert_eq!((r.status, String::from_utf8(r.body).unwrap()), (503, want));
}

#[test]
fn token_cache_is_shared_with_the_binary_requests() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&[0xab; 32]);
    // Cached by a binary request, then used on the plain route (and checked again there).
    assert!(matches!(derive_address(&mut e, &mut env, &t, [0xab; 32]), Response::Address(_)));
    let body = format!(r#"{{"omni_account":"{}"}}"#, "cd".repeat(32));
    assert_eq!(dev(&mut e, &mut env, DevRoute::DeriveAddress, &t, &body).status, 401);
    let body = format!(r#"{{"omni_account":"{O_AB}"}}"#);
    assert_eq!(dev(&mut e, &mut env, DevRoute::DeriveAddress, &t, &body).status, 200);
    // Expiry still applies to a cached token.
    let mut later = FixedEnv::new(NOW + 3600 + 61);
    let r = dev(&mut e, &mut later, DevRoute::DeriveAddress, &t, &body);
    assert_eq!((r.status, String::from_utf8(r.body).unwrap()), (401, envelope("unauthorized", "token expired")));
}

#[test]
fn the_signing_key_is_the_attested_one_and_stable() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);
    assert_eq!(e.signing_public_key(), None);
    let t = broker.token(&[0xab; 32]);
    let body = format!(r#"{{"omni_account":"{O_AB}"}}"#);
    let a = dev(&mut e, &mut env, DevRoute::DeriveAddress, &t, &body);
    let key = e.signing_public_key().unwrap();
    let b = dev(&mut e, &mut env, DevRoute::DeriveAddress, &t, &body);
    assert_eq!(e.signing_public_key(), Some(key));
    // Ed25519 is deterministic: the same answer, the same signature.
    assert_eq!(a, b);
}
