//! End-to-end over real HTTPS: a `sigil dev` server (port 0, generated self-signed certificate,
//! the real enclave code in-process) driven by reqwest trusting only that certificate.
//!
//! Covers every SPEC §2 route and every error code the server can produce (503
//! `enclave_unavailable` is in `restart.rs`), the SPEC check order, the broker-JWT attack
//! matrix, the SPEC §3 vectors, EIP-712 (USDC Permit), 2,000 concurrent signatures, and an
//! independent Python client (PyJWT + eth-account). Every signature is recovered with k256,
//! and every non-2xx body is checked to be the `{"error","message"}` envelope (in
//! `common::Http::send`).
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests: failing loudly is the point"
)]

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use sigil::dev::{DevArgs, start_with};

const ADDR_AB: &str = "0x384099f86f48b052da6535d608315dee069642f7";
const SIG_AB_HELLO: &str = "0x6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01";
const ADDR_00: &str = "0x4b4ad1781d82e7173c44142dabdb4823885da21b";
const SIG_00_HELLO: &str = "0x95e614e02dce6385104b04317a953e6333623810ead3a079c16a4525955ea51416189b1e41ba8a55c53d8a3eed53f5545b6d62438c1d7fefae66f0301e09492601";
const USDC_DOMAIN_SEPARATOR: &str = "0x06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335";
const USDC: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";

/// `byte` × 32 as 64 lowercase hex characters.
fn omni(byte: u8) -> String {
    hex::encode([byte; 32])
}

/// Asserts a sign-message answer: fields, formats, `key_version` 1, and that the signature
/// recovers (k256) to `address` over the EIP-191 digest of `msg`.
fn check_signature(body: &Value, msg: &[u8], address: &str) {
    assert_eq!(body["address"], address, "{body}");
    assert_eq!(body["key_version"], 1, "{body}");
    let sig = body["signature"].as_str().unwrap();
    assert_eq!(recover_address(&eip191_digest(msg), sig), address, "{body}");
}

/// A 32-byte big-endian word.
fn word(x: u64) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&x.to_be_bytes());
    w
}

fn address_word(a: &str) -> [u8; 32] {
    let mut w = [0u8; 32];
    hex::decode_to_slice(a.trim_start_matches("0x"), &mut w[12..]).unwrap();
    w
}

/// USDC's EIP-2612 Permit on mainnet. `explicit_domain` lists `EIP712Domain` in `types`;
/// otherwise the domain type is inferred from the domain's fields.
fn usdc_permit(explicit_domain: bool) -> Value {
    let mut types = json!({"Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]});
    if explicit_domain {
        types["EIP712Domain"] = json!([
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ]);
    }
    json!({
        "types": types,
        "primaryType": "Permit",
        "domain": {"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC},
        "message": {
            "owner": "0x0000000000000000000000000000000000000001",
            "spender": "0x0000000000000000000000000000000000000002",
            "value": "1000000",
            "nonce": 0,
            "deadline": "0xffffffff",
        },
    })
}

/// The Permit's domain separator and hashStruct, computed here from the EIP-712 rules.
fn usdc_permit_hashes() -> ([u8; 32], [u8; 32]) {
    let domain_type = keccak(&[b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"]);
    let domain_separator = keccak(&[
        &domain_type,
        &keccak(&[b"USD Coin"]),
        &keccak(&[b"2"]),
        &word(1),
        &address_word(&USDC.to_ascii_lowercase()),
    ]);
    let permit_type = keccak(&[b"Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"]);
    let hash_struct = keccak(&[&permit_type, &word(1), &word(2), &word(1_000_000), &word(0), &word(0xffff_ffff)]);
    (domain_separator, hash_struct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_healthz_readyz_metrics_and_attestation_needs_a_nonce() {
    let s = Signer::vectors().await;
    let h = &s.http;

    let r = h.get("/healthz").await;
    assert_eq!((r.status, r.text.as_str()), (200, "ok"));
    assert!(r.content_type.starts_with("text/plain"), "{}", r.content_type);
    assert!(r.request_id.is_some(), "x-request-id on every answer");

    assert_eq!(h.get("/readyz").await.ok(), json!({"ready": true}));

    for path in ["/dev/attestation", "/dev/attestation?nonce=00112233"] {
        h.get(path).await.assert_error(400, "invalid_request");
    }

    // Some traffic for the counters: one signature, one refusal.
    let o = omni(0x11);
    let r = h.sign_message(&s.token(&o), &o, "00").await;
    assert!(r.ok()["signature"].is_string());
    h.post_json("/dev/derive-address", None, &json!({"omni_account": o}).to_string())
        .await
        .assert_error(401, "unauthorized");

    let m = h.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.content_type.starts_with("text/plain"), "{}", m.content_type);
    for needle in [
        "sigil_http_requests_total{route=\"/dev/sign-message\",code=\"ok\"} 1\n",
        "sigil_http_requests_total{route=\"/dev/derive-address\",code=\"unauthorized\"} 1\n",
        "sigil_http_requests_total{route=\"/healthz\",code=\"ok\"} 1\n",
        "sigil_http_requests_total{route=\"/dev/attestation\",code=\"invalid_request\"} 2\n",
        "sigil_http_request_duration_seconds_count{route=\"/dev/sign-message\"} 1\n",
        "# TYPE sigil_enclave_reconnects_total counter\nsigil_enclave_reconnects_total 0\n",
        "sigil_enclave_in_flight 0\n",
    ] {
        assert!(m.text.contains(needle), "metrics lack {needle:?}:\n{}", m.text);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_vectors_over_https() {
    let s = Signer::vectors().await;
    let h = &s.http;
    let hello = b"hello";

    for (o, address, sig) in [(omni(0xab), ADDR_AB, SIG_AB_HELLO), (omni(0x00), ADDR_00, SIG_00_HELLO)] {
        let t = s.token(&o);
        assert_eq!(h.derive(&t, &o).await.ok(), json!({"address": address, "key_version": 1}));
        let body = h.sign_message(&t, &o, "68656c6c6f").await.ok();
        assert_eq!(body, json!({"signature": sig, "address": address, "key_version": 1}));
        check_signature(&body, hello, address);
        // A `0x` prefix and uppercase hex digits are the same message.
        for m in ["0x68656c6c6f", "68656C6C6F"] {
            assert_eq!(h.sign_message(&t, &o, m).await.ok()["signature"], sig, "{m}");
        }
        // The empty message, with and without `0x`.
        for m in ["", "0x"] {
            check_signature(&h.sign_message(&t, &o, m).await.ok(), b"", address);
        }
    }

    // Omni hex in either case: uppercase body against a lowercase claim, and the reverse.
    let lower = omni(0xab);
    let upper = lower.to_ascii_uppercase();
    assert_eq!(h.derive(&s.token(&lower), &upper).await.ok()["address"], ADDR_AB);
    assert_eq!(h.derive(&s.token(&upper), &lower).await.ok()["address"], ADDR_AB);
    assert_eq!(h.sign_message(&s.token(&lower), &upper, "68656c6c6f").await.ok()["signature"], SIG_AB_HELLO);

    // A message near the body limit signs (the whole request still fits one enclave frame).
    let big: Vec<u8> = (0..23_000u32).map(|i| u8::try_from(i % 251).unwrap()).collect();
    let o = omni(0xab);
    check_signature(&h.sign_message(&s.token(&o), &o, &hex::encode(&big)).await.ok(), &big, ADDR_AB);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_typed_data_usdc_permit() {
    let s = Signer::vectors().await;
    let h = &s.http;
    let o = omni(0xab);
    let t = s.token(&o);
    let (domain_separator, hash_struct) = usdc_permit_hashes();
    assert_eq!(hex0x(&domain_separator), USDC_DOMAIN_SEPARATOR, "the test's own EIP-712 encoding");
    let digest = keccak(&[&[0x19, 0x01], &domain_separator, &hash_struct]);

    let mut first: Option<Value> = None;
    for explicit in [false, true] {
        let body = h.sign_typed(&t, &o, &usdc_permit(explicit)).await.ok();
        let fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            ["address", "digest", "domain_separator", "key_version", "primary_type_hash", "signature"],
            "{body}"
        );
        assert_eq!(body["key_version"], 1);
        assert_eq!(unhex0x(body["domain_separator"].as_str().unwrap(), 32), domain_separator);
        assert_eq!(unhex0x(body["primary_type_hash"].as_str().unwrap(), 32), hash_struct);
        assert_eq!(unhex0x(body["digest"].as_str().unwrap(), 32), digest);
        assert_eq!(unhex0x(body["address"].as_str().unwrap(), 20), unhex0x(ADDR_AB, 20));
        assert_eq!(recover_address(&digest, body["signature"].as_str().unwrap()), ADDR_AB);
        // An explicit canonical EIP712Domain hashes like the inferred one.
        assert_eq!(first.get_or_insert_with(|| body.clone()), &body);
    }

    // A pretty-printed request body (whitespace around `typed_data`) is the same request.
    let pretty = serde_json::to_string_pretty(&json!({"omni_account": o, "typed_data": usdc_permit(false)})).unwrap();
    let body = h.post_json("/dev/sign-typed-data", Some(&t), &pretty).await.ok();
    assert_eq!(Some(&body), first.as_ref());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_error_has_its_code_and_envelope() {
    let s = Signer::vectors().await;
    let h = &s.http;
    let o = omni(0x22);
    let t = s.token(&o);

    // 400 invalid_request: malformed JSON, missing fields, mistyped fields.
    let cases: Vec<(&str, String)> = vec![
        ("/dev/derive-address", "{".into()),
        ("/dev/derive-address", String::new()),
        ("/dev/derive-address", "not json".into()),
        ("/dev/derive-address", "[]".into()),
        ("/dev/derive-address", "{}".into()),
        ("/dev/derive-address", json!({"omni_account": null}).to_string()),
        ("/dev/derive-address", json!({"omni_account": 5}).to_string()),
        ("/dev/derive-address", json!({"omni_account": [o]}).to_string()),
        ("/dev/sign-message", r#"{"omni_account":"#.into()),
        ("/dev/sign-message", json!({"omni_account": o}).to_string()),
        ("/dev/sign-message", json!({"message_hex": "00"}).to_string()),
        ("/dev/sign-message", json!({"omni_account": o, "message_hex": 5}).to_string()),
        ("/dev/sign-message", json!({"omni_account": o, "message_hex": ["00"]}).to_string()),
        ("/dev/sign-message", json!({"omni_account": 1, "message_hex": "00"}).to_string()),
        ("/dev/sign-typed-data", json!({"omni_account": o}).to_string()),
        ("/dev/sign-typed-data", json!({"typed_data": usdc_permit(false)}).to_string()),
        ("/dev/sign-typed-data", json!({"omni_account": o, "typed_data": "{}"}).to_string()),
        ("/dev/sign-typed-data", json!({"omni_account": o, "typed_data": [1]}).to_string()),
        ("/dev/sign-typed-data", json!({"omni_account": o, "typed_data": null}).to_string()),
    ];
    for (path, body) in &cases {
        let r = h.post_json(path, Some(&t), body).await;
        assert_eq!(r.error().as_deref(), Some("invalid_request"), "{path} {body}: {}", r.text);
        r.assert_error(400, "invalid_request");
    }

    // 400 invalid_omni_account: a malformed account that matches its token's claim.
    let bad_omnis = [
        "ab".repeat(31),
        "ab".repeat(33),
        format!("0x{}", "ab".repeat(32)),
        format!("{}zz", "ab".repeat(31)),
        format!("{}g", "a".repeat(63)),
        String::new(),
        " ".repeat(64),
    ];
    for bad in &bad_omnis {
        let bt = s.token(bad);
        h.derive(&bt, bad).await.assert_error(400, "invalid_omni_account");
        h.sign_message(&bt, bad, "00").await.assert_error(400, "invalid_omni_account");
        h.sign_typed(&bt, bad, &usdc_permit(false)).await.assert_error(400, "invalid_omni_account");
    }

    // 400 invalid_message_hex: odd length, non-hex; `0x` alone and empty succeed (vectors test).
    for m in ["abc", "0", "0x0", "zz", "0xzz", "68656c6c6g", "0x0x00", " 00", "00 ", "0X00"] {
        h.sign_message(&t, &o, m).await.assert_error(400, "invalid_message_hex");
    }

    // 400 invalid_typed_data: a JSON object that is not valid EIP-712.
    let mut missing_type = usdc_permit(false);
    missing_type["primaryType"] = json!("Missing");
    let mut bad_uint = usdc_permit(false);
    bad_uint["message"]["value"] = json!("lots");
    let mut short_address = usdc_permit(false);
    short_address["message"]["owner"] = json!("0x1234");
    let mut missing_field = usdc_permit(false);
    missing_field["message"].as_object_mut().unwrap().remove("nonce");
    for td in [
        json!({}),
        json!({"types": {}, "primaryType": "X", "domain": {}, "message": {}}),
        missing_type,
        bad_uint,
        short_address,
        missing_field,
    ] {
        let r = h.sign_typed(&t, &o, &td).await;
        assert_eq!(r.error().as_deref(), Some("invalid_typed_data"), "{td}: {}", r.text);
        r.assert_error(400, "invalid_typed_data");
    }

    // 404 not_found: unknown routes, whatever the method.
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::POST, "/dev/nope"),
        (Method::POST, "/dev/sign-message/extra"),
        (Method::GET, "/dev"),
        (Method::DELETE, "/v1/anything"),
    ] {
        let r = h.send(method.clone(), path, &[("content-type", "application/json")], Some(b"{}".to_vec())).await;
        assert_eq!(r.error().as_deref(), Some("not_found"), "{method} {path}");
        r.assert_error(404, "not_found");
    }

    // 405 method_not_allowed: known routes, wrong method.
    for (method, path) in [
        (Method::GET, "/dev/derive-address"),
        (Method::GET, "/dev/sign-message"),
        (Method::PUT, "/dev/sign-typed-data"),
        (Method::DELETE, "/dev/sign-message"),
        (Method::POST, "/healthz"),
        (Method::POST, "/readyz"),
        (Method::POST, "/metrics"),
        (Method::POST, "/dev/attestation"),
    ] {
        let r = h.send(method.clone(), path, &[("content-type", "application/json")], Some(b"{}".to_vec())).await;
        assert_eq!(r.error().as_deref(), Some("method_not_allowed"), "{method} {path}");
        r.assert_error(405, "method_not_allowed");
    }

    // 413 payload_too_large: just over the 48 KiB body limit, with or without a token.
    let big = json!({"omni_account": o, "message_hex": "00".repeat(25 * 1024)}).to_string();
    assert!(big.len() > 48 * 1024);
    h.post_json("/dev/sign-message", Some(&t), &big).await.assert_error(413, "payload_too_large");
    h.post_json("/dev/sign-message", None, &big).await.assert_error(413, "payload_too_large");

    // 415 unsupported_media_type: missing or wrong content type.
    let body = json!({"omni_account": o, "message_hex": "00"}).to_string().into_bytes();
    let auth = format!("Bearer {t}");
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonx"), Some("")]
    {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        for path in ["/dev/derive-address", "/dev/sign-message", "/dev/sign-typed-data"] {
            let r = h.send(Method::POST, path, &headers, Some(body.clone())).await;
            assert_eq!(r.error().as_deref(), Some("unsupported_media_type"), "{path} {ct:?}");
            r.assert_error(415, "unsupported_media_type");
        }
    }
    // Parameters and case in the media type are fine.
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let headers = [("authorization", auth.as_str()), ("content-type", ct)];
        assert_eq!(h.send(Method::POST, "/dev/sign-message", &headers, Some(body.clone())).await.status, 200, "{ct}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_check_order() {
    let s = Signer::vectors().await;
    let h = &s.http;
    let o = omni(0x33);
    let t = s.token(&o);

    // Body parse before JWT: malformed JSON, wrong type, oversize — without a token.
    h.post_json("/dev/sign-message", None, "{").await.assert_error(400, "invalid_request");
    h.post_json("/dev/sign-message", Some("garbage"), "{").await.assert_error(400, "invalid_request");
    let r = h.send(Method::POST, "/dev/sign-message", &[], Some(b"{".to_vec())).await;
    r.assert_error(415, "unsupported_media_type");

    // JWT before field validation: no or wrong token with a bad omni / message_hex → 401.
    let bad = json!({"omni_account": "xyz", "message_hex": "zzz"}).to_string();
    h.post_json("/dev/sign-message", None, &bad).await.assert_error(401, "unauthorized");
    h.post_json("/dev/sign-message", Some(&t), &bad).await.assert_error(401, "unauthorized");
    h.sign_message(&t, &omni(0x34), "zzz").await.assert_error(401, "unauthorized");

    // message_hex before omni: both malformed, the omni matching its claim.
    let bt = s.token("xyz");
    h.sign_message(&bt, "xyz", "zzz").await.assert_error(400, "invalid_message_hex");
    h.sign_message(&bt, "xyz", "00").await.assert_error(400, "invalid_omni_account");
    // Claim and body compared case-insensitively before the format check.
    h.sign_message(&s.token("XYZ"), "xyz", "00").await.assert_error(400, "invalid_omni_account");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprovisioned_signer_is_disabled_after_auth() {
    let s = Signer::start(DevArgs::default(), None).await;
    let h = &s.http;
    let o = omni(0x44);
    let t = s.token(&o);

    // Provisioned before message_hex — checked first, on a signer that has not served anything.
    h.sign_message(&t, &o, "zzz").await.assert_error(503, "signer_disabled");
    // JWT before provisioned.
    h.sign_message(&s.broker.token(&omni(0x45)), &o, "00").await.assert_error(401, "unauthorized");
    h.sign_message("x.y.z", &o, "00").await.assert_error(401, "unauthorized");
    // Body parse before everything.
    h.post_json("/dev/sign-message", Some(&t), "{").await.assert_error(400, "invalid_request");
    // Provisioned before omni.
    h.sign_message(&s.token("xyz"), "xyz", "00").await.assert_error(503, "signer_disabled");
    h.sign_message(&t, &o, "zzz").await.assert_error(503, "signer_disabled");
    // Every signing route.
    h.derive(&t, &o).await.assert_error(503, "signer_disabled");
    h.sign_message(&t, &o, "00").await.assert_error(503, "signer_disabled");
    h.sign_typed(&t, &o, &usdc_permit(false)).await.assert_error(503, "signer_disabled");
    // Alive, not ready.
    assert_eq!(h.get("/healthz").await.text, "ok");
    h.get("/readyz").await.assert_error(503, "signer_disabled");
    // Still in SPEC order once whatever the host remembers about the enclave has aged.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    h.sign_message(&t, &o, "zzz").await.assert_error(503, "signer_disabled");
    h.sign_message(&s.token("xyz"), "xyz", "00").await.assert_error(503, "signer_disabled");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attack_matrix_is_401() {
    let s = Signer::vectors().await;
    let h = &s.http;
    let b = &s.broker;
    let o = omni(0x55);
    let now = now();
    let good = b.token(&o);
    let claims = b.claims(&o);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        f(&mut c);
        c
    };
    let raw = |header: &str, claims: &Value, sig: &[u8]| {
        format!("{}.{}.{}", b64url(header.as_bytes()), b64url(claims.to_string().as_bytes()), b64url(sig))
    };
    let hs256 = |secret: &[u8]| {
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let input = format!("{}.{}", b64url(header.as_bytes()), b64url(claims.to_string().as_bytes()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        format!("{input}.{}", b64url(ring::hmac::sign(&key, input.as_bytes()).as_ref()))
    };
    let (h64, p64, s64) = {
        let mut parts = good.split('.');
        (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap())
    };
    let spki_der = b.spki_der();
    let sec1 = &spki_der[26..];
    let other = Broker::new();

    let bearer = |t: &str| format!("Bearer {t}");
    let attacks: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("empty bearer", Some("Bearer ".into())),
        ("bare token, no scheme", Some(good.clone())),
        ("malformed token", Some(bearer("not-a-jwt"))),
        ("three garbage parts", Some(bearer("a.b.c"))),
        ("two parts", Some(bearer(&format!("{h64}.{p64}")))),
        ("empty signature", Some(bearer(&format!("{h64}.{p64}.")))),
        ("four parts", Some(bearer(&format!("{good}.{s64}")))),
        ("alg none, no signature", Some(bearer(&raw(r#"{"alg":"none","typ":"JWT"}"#, &claims, b"")))),
        ("alg None", Some(bearer(&raw(r#"{"alg":"None"}"#, &claims, b"")))),
        ("alg none, 64-byte signature", Some(bearer(&raw(r#"{"alg":"none"}"#, &claims, &[0; 64])))),
        ("HS256 keyed with the SPKI PEM", Some(bearer(&hs256(b.spki_pem().as_bytes())))),
        ("HS256 keyed with the SPKI PEM, no newline", Some(bearer(&hs256(b.spki_pem().trim_end().as_bytes())))),
        ("HS256 keyed with the SPKI DER", Some(bearer(&hs256(&spki_der)))),
        ("HS256 keyed with the SEC1 point", Some(bearer(&hs256(sec1)))),
        ("RS256 header, ES256 signature", Some(bearer(&b.sign_raw(r#"{"alg":"RS256"}"#, &claims.to_string())))),
        ("ES384 header", Some(bearer(&b.sign_raw(r#"{"alg":"ES384"}"#, &claims.to_string())))),
        ("PS256 header", Some(bearer(&b.sign_raw(r#"{"alg":"PS256"}"#, &claims.to_string())))),
        ("lowercase es256", Some(bearer(&b.sign_raw(r#"{"alg":"es256"}"#, &claims.to_string())))),
        ("no alg", Some(bearer(&b.sign_raw(r#"{"kid":"k"}"#, &claims.to_string())))),
        ("expired beyond leeway", Some(bearer(&b.mint(&header(), &with(&|c| c["exp"] = json!(now - 120)))))),
        (
            "exp missing",
            Some(bearer(&b.mint(
                &header(),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ))),
        ),
        ("exp a string", Some(bearer(&b.mint(&header(), &with(&|c| c["exp"] = json!((now + 3600).to_string())))))),
        ("nbf beyond leeway", Some(bearer(&b.mint(&header(), &with(&|c| c["nbf"] = json!(now + 300)))))),
        ("wrong aud", Some(bearer(&b.mint(&header(), &with(&|c| c["aud"] = json!("agentkeys:other")))))),
        ("aud array without broker", Some(bearer(&b.mint(&header(), &with(&|c| c["aud"] = json!(["x", "y"])))))),
        (
            "aud missing",
            Some(bearer(&b.mint(
                &header(),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("aud");
                }),
            ))),
        ),
        ("omni claim missing", Some(bearer(&b.mint(&header(), &with(&|c| c["agentkeys"] = json!({})))))),
        ("signed by another broker", Some(bearer(&other.token(&o)))),
        ("token for another account", Some(bearer(&b.token(&omni(0x56))))),
        (
            "payload swapped, signature kept",
            Some(bearer(&format!("{h64}.{}.{s64}", b64url(b.claims(&o).to_string().as_bytes())))),
        ),
        (
            "signature of another token",
            Some(bearer(&format!("{h64}.{p64}.{}", other.token(&o).rsplit('.').next().unwrap()))),
        ),
        ("bearer lowercase", Some(format!("bearer {good}"))),
        ("BEARER uppercase", Some(format!("BEARER {good}"))),
        ("Token scheme", Some(format!("Token {good}"))),
        ("Basic scheme", Some(format!("Basic {good}"))),
        ("two spaces", Some(format!("Bearer  {good}"))),
        ("oversized token", Some(bearer(&"a".repeat(9000)))),
    ];

    let body = json!({"omni_account": o, "message_hex": "00"}).to_string();
    // The genuine token works (so the refusals below are about the token alone).
    assert_eq!(h.post_json("/dev/sign-message", Some(&good), &body).await.status, 200);
    for (name, auth) in &attacks {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = auth {
            headers.push(("authorization", a.as_str()));
        }
        for path in ["/dev/sign-message", "/dev/derive-address"] {
            let r = h.send(Method::POST, path, &headers, Some(body.clone().into_bytes())).await;
            assert_eq!((r.status, r.error().as_deref()), (401, Some("unauthorized")), "{name} on {path}: {}", r.text);
            r.assert_error(401, "unauthorized");
        }
    }
    // The token for account A cannot sign for account B, even with B's own token in hand.
    let b_omni = omni(0x56);
    h.sign_message(&good, &b_omni, "00").await.assert_error(401, "unauthorized");

    // Within the 60 s leeway (at the host and in the enclave): accepted.
    let accepted = [
        ("expired 30 s ago", b.mint(&header(), &with(&|c| c["exp"] = json!(now - 30)))),
        ("nbf 30 s ahead", b.mint(&header(), &with(&|c| c["nbf"] = json!(now + 30)))),
        ("nbf in the past", b.mint(&header(), &with(&|c| c["nbf"] = json!(now - 30)))),
        ("aud array", b.mint(&header(), &with(&|c| c["aud"] = json!(["other", AUDIENCE])))),
        ("minimal header", b.mint(&json!({"alg": "ES256"}), &claims)),
    ];
    for (name, token) in &accepted {
        let r = h.sign_message(token, &o, "00").await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
    }
    // A cached, once-valid token is re-checked for the account on every use.
    h.sign_message(&good, &b_omni, "00").await.assert_error(401, "unauthorized");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_per_account_after_auth() {
    let args = DevArgs { rate_limit: 0.1, rate_burst: 3.0, ..DevArgs::default() };
    let s = Signer::start(args, Some(k3_seq_bytes())).await;
    let h = &s.http;
    let (a, b) = (omni(0x66), omni(0x67));
    let (ta, tb) = (s.token(&a), s.token(&b));
    for _ in 0..3 {
        assert_eq!(h.derive(&ta, &a).await.status, 200);
    }
    h.derive(&ta, &a).await.assert_error(429, "rate_limited");
    h.sign_message(&ta, &a, "00").await.assert_error(429, "rate_limited");
    h.sign_typed(&ta, &a, &usdc_permit(false)).await.assert_error(429, "rate_limited");
    // Case-insensitively the same account.
    h.derive(&ta, &a.to_ascii_uppercase()).await.assert_error(429, "rate_limited");
    // Authentication comes first: a bad token is 401, not 429.
    h.derive(&tb, &a).await.assert_error(401, "unauthorized");
    h.post_json("/dev/derive-address", Some(&ta), "{").await.assert_error(400, "invalid_request");
    // Other accounts are unaffected.
    assert_eq!(h.derive(&tb, &b).await.status, 200);
    let m = h.get("/metrics").await.text;
    assert!(m.contains("sigil_http_requests_total{route=\"/dev/derive-address\",code=\"rate_limited\"} 2\n"), "{m}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_signatures() {
    const N: usize = 2_000;
    const ACCOUNTS: usize = 4;
    // Client and server ends of N connections live in this process.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = open_files {
        assert!(n >= 3 * N as u64, "this test needs about {} file descriptors: raise `ulimit -n` (now {n})", 3 * N);
    }
    let s = Signer::vectors().await;
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| omni(0x70 + u8::try_from(i).unwrap())).collect();
    let tokens: Vec<String> = accounts.iter().map(|o| s.token(o)).collect();
    let mut addresses = Vec::new();
    for (o, t) in accounts.iter().zip(&tokens) {
        addresses.push(s.http.derive(t, o).await.ok()["address"].as_str().unwrap().to_owned());
    }

    // Open N connections first (N concurrent probes), so that the N signing requests below
    // reach the server together rather than trickling in behind N TLS handshakes.
    let warm = Instant::now();
    let mut probes = tokio::task::JoinSet::new();
    for _ in 0..N {
        let http = s.http.clone();
        probes.spawn(async move { http.try_send(Method::GET, "/healthz", &[], None).await.map(|r| r.status) });
    }
    let mut probe_errors = Vec::new();
    while let Some(p) = probes.join_next().await {
        match p.unwrap() {
            Ok(200) => {}
            other => probe_errors.push(format!("{other:?}")),
        }
    }
    assert!(
        probe_errors.is_empty(),
        "{} probes failed: {:?}",
        probe_errors.len(),
        &probe_errors[..probe_errors.len().min(3)]
    );
    let warm = warm.elapsed();

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    for i in 0..N {
        let (http, gate) = (s.http.clone(), std::sync::Arc::clone(&gate));
        let (o, t) = (accounts[i % ACCOUNTS].clone(), tokens[i % ACCOUNTS].clone());
        tasks.spawn(async move {
            let msg = format!("concurrent message {i}");
            let auth = format!("Bearer {t}");
            let body = json!({"omni_account": o, "message_hex": hex::encode(&msg)}).to_string().into_bytes();
            let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
            gate.wait().await;
            let r = http.try_send(Method::POST, "/dev/sign-message", &headers, Some(body)).await;
            (i, msg, r)
        });
    }
    let mut results = Vec::with_capacity(N);
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, msg, r) = joined.unwrap();
        match r {
            Ok(r) if r.status == 200 => results.push((i, msg, r.json())),
            Ok(r) => errors.push(format!("request {i}: {} {}", r.status, r.text)),
            Err(e) => errors.push(format!("request {i}: {e:?}")),
        }
    }
    let elapsed = start.elapsed();
    errors.sort_unstable_by_key(|e| e.split(": ").nth(1).map(str::to_owned));
    errors.dedup_by_key(|e| e.split(": ").nth(1).map(str::to_owned));
    assert!(errors.is_empty(), "{} of {N} failed; distinct errors: {errors:?}", N - results.len());
    assert_eq!(results.len(), N);

    // Recover every signature (k256) on both cores.
    let addresses = std::sync::Arc::new(addresses);
    let chunks: Vec<Vec<_>> = results.chunks(N / 2).map(<[_]>::to_vec).collect();
    let mut checks = tokio::task::JoinSet::new();
    for chunk in chunks {
        let addresses = std::sync::Arc::clone(&addresses);
        checks.spawn_blocking(move || {
            for (i, msg, body) in chunk {
                check_signature(&body, msg.as_bytes(), &addresses[i % ACCOUNTS]);
            }
        });
    }
    while let Some(done) = checks.join_next().await {
        done.unwrap();
    }
    eprintln!("{N} connections opened in {warm:?}; {N} concurrent HTTPS signatures in {elapsed:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_generated_broker_token_signs() {
    // `sigil dev` exactly as the command starts it, minus the fixed port: its own broker key,
    // its own printed token.
    let k3 = sigil_enclave::K3::from_bytes(k3_seq_bytes());
    let dev = start_with(&DevArgs::default(), Some(k3)).await.unwrap();
    let expected_omni = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"agentkeysemaildev@example.com"))
    };
    assert_eq!(dev.omni, expected_omni);
    assert!(dev.broker_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let token = dev.token.clone().expect("a dev token");
    let http = Http::https(dev.addr, &dev.cert_pem);
    let body = http.sign_message(&token, &dev.omni, "68656c6c6f").await.ok();
    let address = http.derive(&token, &dev.omni).await.ok()["address"].as_str().unwrap().to_owned();
    check_signature(&body, b"hello", &address);
    // The dev token is only for the dev account.
    http.derive(&token, &omni(0xab)).await.assert_error(401, "unauthorized");
    // An untrusting client refuses the self-signed certificate.
    let strict = reqwest::Client::builder().no_proxy().resolve("localhost", dev.addr).build().unwrap();
    assert!(strict.get(format!("https://localhost:{}/healthz", dev.addr.port())).send().await.is_err());
    // Graceful stop: the port stops answering.
    let addr = dev.addr;
    dev.stop().await.unwrap();
    assert!(http.try_send(Method::GET, "/healthz", &[], None).await.is_err(), "{addr} still serving after stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_server_serves_as_soon_as_start_returns() {
    // `sigil dev` prints its curl line once `start` returns: the first request must succeed,
    // not meet an enclave connection still being set up (503 enclave_unavailable).
    for round in 0..10 {
        let k3 = sigil_enclave::K3::from_bytes(k3_seq_bytes());
        let dev = start_with(&DevArgs::default(), Some(k3)).await.unwrap();
        let connected = dev.state.0.client.is_connected();
        let token = dev.token.clone().unwrap();
        let http = Http::https(dev.addr, &dev.cert_pem);
        let r = http.derive(&token, &dev.omni).await;
        dev.stop().await.unwrap();
        assert!(connected, "round {round}: start_with returned before the enclave connection was up");
        assert_eq!(r.status, 200, "round {round}: first request: {}", r.text);
    }
}

/// The Python interpreter with PyJWT, cryptography and eth-account, or `None` (SKIPPED)
/// unless `SIGIL_REQUIRE_PYTHON=1`.
fn python() -> Option<String> {
    let py = std::env::var("SIGIL_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import eth_account, jwt, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("SIGIL_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "SIGIL_REQUIRE_PYTHON=1 but {py} cannot import eth_account, jwt (PyJWT) and cryptography"
    );
    eprintln!("SKIPPED: {py} lacks eth-account/PyJWT/cryptography (pip install eth-account 'pyjwt[crypto]')");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_python_client() {
    let Some(py) = python() else { return };
    let s = Signer::vectors().await;
    let key = s.dir.path().join("broker-key.pem");
    let cacert = s.dir.path().join("tls-cert.pem");
    std::fs::write(&key, s.broker.pkcs8_pem()).unwrap();
    std::fs::write(&cacert, &s.dev.cert_pem).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/http_client_check.py");
    let url = format!("https://localhost:{}", s.dev.addr.port());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(script)
            .arg("--url")
            .arg(url)
            .arg("--cacert")
            .arg(cacert)
            .arg("--broker-key")
            .arg(key)
            .arg("--k3-vectors")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "http_client_check.py failed ({}):\n{stdout}\n{stderr}", out.status);
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.ends_with(" passed, 0 failed"), "{stdout}\n{stderr}");
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 40, "only {passed} checks ran:\n{stdout}");
    eprintln!("http_client_check.py: {summary}");
    s.stop().await;
}

// ---------------------------------------------------------------------------------------
// Enclave-signed answers, /dev/attestation and the attested session relay

/// `GET /dev/attestation` for a fresh nonce: checks the JSON against the SPEC §5 binding
/// (recomputed here) and returns `(signing_pub, k3_fingerprint)`.
async fn attest(h: &Http) -> ([u8; 32], [u8; 32]) {
    let nonce: [u8; 32] = rand_bytes();
    let v = h.get(&format!("/dev/attestation?nonce={}", hex::encode(nonce))).await.ok();
    let fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = fields.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["binding", "evidence", "k3_fingerprint", "nonce", "platform", "protocol_version", "signing_pub"],
        "{v}"
    );
    assert_eq!(v["platform"], "sim");
    assert_eq!(v["protocol_version"], 1);
    assert_eq!(v["nonce"], hex0x(&nonce));
    let signing_pub: [u8; 32] = unhex0x(v["signing_pub"].as_str().unwrap(), 32).try_into().unwrap();
    let k3_fingerprint: [u8; 32] = unhex0x(v["k3_fingerprint"].as_str().unwrap(), 32).try_into().unwrap();
    let binding = sigil_protocol::Binding {
        platform: sigil_protocol::Platform::Sim,
        client_nonce: &nonce,
        client_pub: &[],
        enclave_pub: &[],
        signing_pub: &signing_pub,
        k3_fingerprint: &k3_fingerprint,
        protocol_version: 1,
    };
    assert_eq!(unhex0x(v["binding"].as_str().unwrap(), 64), binding.hash());
    use base64ct::{Base64, Encoding};
    let document = Base64::decode_vec(v["evidence"]["document"].as_str().unwrap()).unwrap();
    assert!(document.len() > 100, "a COSE_Sign1 document");
    assert!(v["evidence"]["certificates"].as_array().unwrap().is_empty(), "Nitro format: the chain is inside");
    (signing_pub, k3_fingerprint)
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap();
    b
}

/// Asserts that `r` carries a valid enclave signature for `path` and `request`, checked with
/// ring's Ed25519 (independent of the enclave's ed25519-dalek), and that tampering with
/// anything the client sent or received breaks it.
fn assert_signed(r: &Reply, signing_pub: &[u8; 32], path: &str, request: &[u8]) {
    use ring::signature::{ED25519, UnparsedPublicKey};
    use sigil_protocol::dev_response_signed_bytes;
    let header = r.signature.as_deref().unwrap_or_else(|| panic!("{path} {}: no x-sigil-signature", r.status));
    assert!(header.len() == 128 && header.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let sig = hex::decode(header).unwrap();
    let key = UnparsedPublicKey::new(&ED25519, signing_pub);
    key.verify(&dev_response_signed_bytes(path, request, r.status, &r.bytes), &sig)
        .unwrap_or_else(|_| panic!("{path} {}: signature does not verify: {}", r.status, r.text));
    let mut body = r.bytes.clone();
    body.push(b'\n');
    let mut req = request.to_vec();
    req.push(b' ');
    let other_path = if path == "/dev/sign-message" { "/dev/derive-address" } else { "/dev/sign-message" };
    for tampered in [
        dev_response_signed_bytes(path, request, if r.status == 200 { 400 } else { 200 }, &r.bytes),
        dev_response_signed_bytes(path, request, r.status, &body),
        dev_response_signed_bytes(path, &req, r.status, &r.bytes),
        dev_response_signed_bytes(other_path, request, r.status, &r.bytes),
    ] {
        assert!(key.verify(&tampered, &sig).is_err(), "{path}: a tampered answer verified");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_json_is_bound_to_the_nonce() {
    let s = Signer::vectors().await;
    let h = &s.http;
    let (signing_pub, k3_fingerprint) = attest(h).await;
    assert_eq!(k3_fingerprint, sigil_enclave::K3::from_bytes(k3_seq_bytes()).fingerprint());
    // The long-term signing key is stable across handshakes; a `0x` nonce is accepted.
    let nonce = hex::encode(rand_bytes::<32>());
    let v = h.get(&format!("/dev/attestation?nonce=0x{nonce}")).await.ok();
    assert_eq!(v["signing_pub"], hex0x(&signing_pub));
    assert_eq!(v["nonce"], format!("0x{nonce}"));
    assert_eq!(attest(h).await.0, signing_pub);

    let good = "ab".repeat(32);
    for query in [
        String::new(),
        "?".into(),
        "?nonce=".into(),
        "?nonce=00112233".into(),
        format!("?nonce={}", &good[..62]),
        format!("?nonce={good}00"),
        format!("?nonce=0x{}", &good[..62]),
        format!("?nonce={}", "zz".repeat(32)),
        format!("?nonce=0X{good}"),
        format!("?nonce={good}&nonce={good}"),
        format!("?nonce=%20{good}"),
        format!("?other={good}"),
    ] {
        let r = h.get(&format!("/dev/attestation{query}")).await;
        assert_eq!(r.error().as_deref(), Some("invalid_request"), "{query}: {}", r.text);
        r.assert_error(400, "invalid_request");
    }
    // Other parameters are ignored.
    assert_eq!(h.get(&format!("/dev/attestation?x=1&nonce={good}")).await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_answers_carry_the_enclaves_signature() {
    let s = Signer::vectors().await;
    let h = &s.http;
    let (signing_pub, _) = attest(h).await;
    let o = omni(0xab);
    let t = s.token(&o);
    let xyz = s.token("xyz");

    let typed = json!({"omni_account": o, "typed_data": usdc_permit(false)}).to_string();
    let pretty = serde_json::to_string_pretty(&json!({"omni_account": o, "typed_data": usdc_permit(true)})).unwrap();
    let answers: Vec<(&str, &str, String, u16, Option<&str>)> = vec![
        ("/dev/derive-address", &t, json!({"omni_account": o}).to_string(), 200, None),
        ("/dev/derive-address", &t, json!({"omni_account": o.to_ascii_uppercase(), "x": [1]}).to_string(), 200, None),
        ("/dev/sign-message", &t, json!({"omni_account": o, "message_hex": "0x68656c6c6f"}).to_string(), 200, None),
        ("/dev/sign-typed-data", &t, typed, 200, None),
        ("/dev/sign-typed-data", &t, pretty, 200, None),
        // Every error past the host's early checks is the enclave's, and signed.
        ("/dev/derive-address", &xyz, json!({"omni_account": "xyz"}).to_string(), 400, Some("invalid_omni_account")),
        (
            "/dev/sign-message",
            &xyz,
            json!({"omni_account": "xyz", "message_hex": "0"}).to_string(),
            400,
            Some("invalid_message_hex"),
        ),
        (
            "/dev/sign-message",
            &t,
            json!({"omni_account": o, "message_hex": "zz"}).to_string(),
            400,
            Some("invalid_message_hex"),
        ),
        (
            "/dev/sign-typed-data",
            &xyz,
            json!({"omni_account": "xyz", "typed_data": {}}).to_string(),
            400,
            Some("invalid_omni_account"),
        ),
        (
            "/dev/sign-typed-data",
            &t,
            json!({"omni_account": o, "typed_data": {}}).to_string(),
            400,
            Some("invalid_typed_data"),
        ),
        (
            "/dev/sign-typed-data",
            &t,
            json!({"omni_account": o, "typed_data": [1]}).to_string(),
            400,
            Some("invalid_request"),
        ),
    ];
    for (path, token, body, status, code) in &answers {
        let r = h.post_json(path, Some(token), body).await;
        assert_eq!((r.status, r.error().as_deref()), (*status, *code), "{path} {body}: {}", r.text);
        assert_eq!(r.content_type, "application/json");
        assert_signed(&r, &signing_pub, path, body.as_bytes());
    }
    // The signed body is the SPEC body: the vectors hold.
    let body = json!({"omni_account": o, "message_hex": "68656c6c6f"}).to_string();
    let r = h.post_json("/dev/sign-message", Some(&t), &body).await;
    assert_eq!(r.json()["signature"], SIG_AB_HELLO);
    assert_signed(&r, &signing_pub, "/dev/sign-message", body.as_bytes());

    // What the host refuses on its own is not signed: it never reached the enclave.
    let ok_body = json!({"omni_account": o, "message_hex": "00"}).to_string();
    let unsigned = [
        h.post_json("/dev/sign-message", None, &ok_body).await,
        h.post_json("/dev/sign-message", Some(&s.token(&omni(0x01))), &ok_body).await,
        h.post_json("/dev/sign-message", Some(&t), "{").await,
        h.post_json("/dev/derive-address", Some(&t), "{}").await,
        h.send(Method::POST, "/dev/derive-address", &[], Some(ok_body.clone().into_bytes())).await,
        h.post_json("/dev/sign-message", Some(&t), &"x".repeat(49 * 1024)).await,
        h.post_json("/dev/nope", Some(&t), &ok_body).await,
        h.get("/dev/sign-message").await,
    ];
    for r in &unsigned {
        assert!(r.status >= 400, "{}", r.text);
        assert_eq!(r.signature, None, "{} {}", r.status, r.text);
    }
    let unprovisioned = Signer::start(DevArgs::default(), None).await;
    let r = unprovisioned.http.derive(&unprovisioned.token(&o), &o).await;
    r.assert_error(503, "signer_disabled");
    assert_eq!(r.signature, None);
    unprovisioned.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_session_round_trip_over_https() {
    use sigil_protocol::session::{ClientSession, x25519_public};
    use sigil_protocol::{
        AttestRequest, Attestation, BrokerToken, Bytes, DeriveAddress, OmniAccount, Request, Response, SealedRecord,
        Subject, decode_payload,
    };

    let s = Signer::vectors().await;
    let h = &s.http;
    let o = omni(0xab);
    let plain = h.derive(&s.token(&o), &o).await.ok()["address"].as_str().unwrap().to_owned();
    assert_eq!(plain, ADDR_AB);

    // The client's side by hand: an ephemeral X25519 key, a nonce, the handshake.
    let secret: [u8; 32] = rand_bytes();
    let req = AttestRequest { client_nonce: Bytes(rand_bytes()), client_pub: Some(Bytes(x25519_public(&secret))) };
    let r = h.post_bytes("/v1/session", postcard::to_allocvec(&req).unwrap()).await;
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/octet-stream"), "{}", r.text);
    let attestation: Attestation = decode_payload(&r.bytes).unwrap();
    assert_eq!(attestation.evidence.platform, sigil_protocol::Platform::Sim);
    let (signing_pub, _) = attest(h).await;
    assert_eq!(attestation.signing_pub.0, signing_pub);
    let binding = attestation.binding(&req).hash();
    let enclave_pub = attestation.enclave_pub.unwrap().0;
    let mut session = ClientSession::new(&secret, &enclave_pub, &binding).unwrap();

    // One sealed DeriveAddress: the JWT travels inside, the host relays ciphertext.
    let subject = Subject {
        token: BrokerToken::new(s.token(&o)),
        key_version: 1,
        omni: OmniAccount::from(<[u8; 32]>::try_from(hex::decode(&o).unwrap()).unwrap()),
    };
    let inner = postcard::to_allocvec(&Request::DeriveAddress(DeriveAddress { subject })).unwrap();
    let record = session.seal_request(&inner).unwrap();
    let r = h.post_bytes("/v1/sealed", postcard::to_allocvec(&record).unwrap()).await;
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/octet-stream"), "{}", r.text);
    let sealed: SealedRecord = decode_payload(&r.bytes).unwrap();
    let opened = session.open_response(record.counter, &sealed).unwrap();
    match decode_payload::<Response>(&opened).unwrap() {
        Response::Address(a) => assert_eq!(hex0x(&a.address.0), plain),
        other => panic!("expected an address, got {other:?}"),
    }

    // A replayed record closes the session; the closed session is then unknown.
    h.post_bytes("/v1/sealed", postcard::to_allocvec(&record).unwrap()).await.assert_error(400, "session_integrity");
    let next = session.seal_request(&inner).unwrap();
    h.post_bytes("/v1/sealed", postcard::to_allocvec(&next).unwrap()).await.assert_error(410, "unknown_session");

    // Malformed, non-canonical, mistyped and oversized bodies.
    h.post_bytes("/v1/session", vec![0xff; 8]).await.assert_error(400, "invalid_request");
    let mut trailing = postcard::to_allocvec(&req).unwrap();
    trailing.push(0);
    h.post_bytes("/v1/session", trailing).await.assert_error(400, "invalid_request");
    h.post_bytes("/v1/sealed", vec![]).await.assert_error(400, "invalid_request");
    h.post_bytes("/v1/session", vec![0; 2048]).await.assert_error(413, "payload_too_large");
    h.post_bytes("/v1/sealed", vec![0; 49 * 1024]).await.assert_error(413, "payload_too_large");
    let body = postcard::to_allocvec(&req).unwrap();
    for path in ["/v1/session", "/v1/sealed"] {
        let r = h.send(Method::POST, path, &[("content-type", "application/json")], Some(body.clone())).await;
        r.assert_error(415, "unsupported_media_type");
        h.send(Method::GET, path, &[], None).await.assert_error(405, "method_not_allowed");
    }
    // Evidence only (no client key): no session is opened.
    let evidence_only = AttestRequest { client_nonce: Bytes(rand_bytes()), client_pub: None };
    let r = h.post_bytes("/v1/session", postcard::to_allocvec(&evidence_only).unwrap()).await;
    assert_eq!(decode_payload::<Attestation>(&r.bytes).unwrap().enclave_pub, None);
    s.stop().await;
}
