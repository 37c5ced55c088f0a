//! `Enclave::handle` end to end on the wire format: SPEC vectors, independent signature
//! recovery, the JWT attack matrix, hostile frames, caches, KEK sealing, epochs.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use sigil_enclave::{Config, Enclave, FixedEnv, K3, kek};
use sigil_protocol::frame::{self, HEADER_LEN};
use sigil_protocol::{
    DeriveKek, Envelope, ErrorCode, Hello, Request, Response, SignEip712, WireError, decode_message, encode_message,
};

const OMNI_AB: [u8; 32] = [0xab; 32];

fn expect_error(resp: Response) -> WireError {
    match resp {
        Response::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn signature_of(resp: Response) -> ([u8; 65], [u8; 20]) {
    match resp {
        Response::Eip191Signature(s) => (s.signature.0, s.address.0),
        other => panic!("expected a signature, got {other:?}"),
    }
}

#[test]
fn spec_vectors_through_handle() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);

    let t = broker.token(&OMNI_AB);
    match derive_address(&mut e, &mut env, &t, OMNI_AB) {
        Response::Address(a) => {
            assert_eq!(hex::encode(a.address.0), "384099f86f48b052da6535d608315dee069642f7");
            assert_eq!(a.key_version, 1);
        }
        other => panic!("{other:?}"),
    }
    let (sig, addr) = signature_of(sign_eip191(&mut e, &mut env, &t, OMNI_AB, b"hello"));
    assert_eq!(
        hex::encode(sig),
        "6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01"
    );
    assert_eq!(recover_address(&eip191_digest(b"hello"), &sig), addr);

    let t0 = broker.token(&[0; 32]);
    let (sig, addr) = signature_of(sign_eip191(&mut e, &mut env, &t0, [0; 32], b"hello"));
    assert_eq!(hex::encode(addr), "4b4ad1781d82e7173c44142dabdb4823885da21b");
    assert_eq!(
        hex::encode(sig),
        "95e614e02dce6385104b04317a953e6333623810ead3a079c16a4525955ea51416189b1e41ba8a55c53d8a3eed53f5545b6d62438c1d7fefae66f0301e09492601"
    );
    assert_eq!(recover_address(&eip191_digest(b"hello"), &sig), addr);

    let mut z = Enclave::new(Config::new(broker.public_key()));
    z.load_k3(1, K3::from_bytes([0; 32]));
    match derive_address(&mut z, &mut env, &t, OMNI_AB) {
        Response::Address(a) => assert_eq!(hex::encode(a.address.0), "5eeb65dedf6d6d18f805dc672bf120653f9b1912"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_signature_recovers_independently() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);
    let messages: [&[u8]; 5] = [b"", b"hello", &[0u8; 1], &[0xff; 1000], "agentkeys.kek.v1:alice:openai".as_bytes()];
    for i in 0..40u8 {
        let omni = [i; 32];
        let t = broker.token(&omni);
        let want = match derive_address(&mut e, &mut env, &t, omni) {
            Response::Address(a) => a.address.0,
            other => panic!("{other:?}"),
        };
        let msg = messages[usize::from(i) % messages.len()];
        let (sig, addr) = signature_of(sign_eip191(&mut e, &mut env, &t, omni, msg));
        assert_eq!(addr, want, "account {i}");
        assert_eq!(recover_address(&eip191_digest(msg), &sig), want, "account {i}");
    }
}

#[test]
fn signing_is_deterministic_rfc6979() {
    let broker = Broker::new();
    let mut a = enclave_with(&broker, 4096, 4096);
    let mut b = enclave_with(&broker, 0, 0);
    let t = broker.token(&OMNI_AB);
    let s1 = signature_of(sign_eip191(&mut a, &mut FixedEnv::new(NOW), &t, OMNI_AB, b"x"));
    // A different entropy stream must not change an RFC 6979 signature.
    let mut env = FixedEnv::new(NOW);
    env.counter = 999;
    let s2 = signature_of(sign_eip191(&mut b, &mut env, &t, OMNI_AB, b"x"));
    assert_eq!(s1, s2);
}

#[test]
fn caches_change_no_output() {
    let broker = Broker::new();
    let mut cached = enclave_with(&broker, 4096, 4096);
    let mut uncached = enclave_with(&broker, 0, 0);
    // Tiny caches force evictions in the middle of the sequence.
    let mut tiny = enclave_with(&broker, 1, 1);
    let mut env = FixedEnv::new(NOW);
    let tokens: Vec<([u8; 32], String)> = (0..6u8).map(|i| ([i; 32], broker.token(&[i; 32]))).collect();
    for round in 0..3 {
        for (omni, t) in &tokens {
            let msg = [round, omni[0]];
            let a = sign_eip191(&mut cached, &mut env, t, *omni, &msg);
            let b = sign_eip191(&mut uncached, &mut env, t, *omni, &msg);
            let c = sign_eip191(&mut tiny, &mut env, t, *omni, &msg);
            assert_eq!(a, b);
            assert_eq!(a, c);
            let a = derive_address(&mut cached, &mut env, t, *omni);
            assert_eq!(a, derive_address(&mut uncached, &mut env, t, *omni));
        }
    }
}

#[test]
fn cached_token_is_still_checked_for_expiry_and_account() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let t = broker.sign_raw(&default_header(), &claims(&OMNI_AB, NOW + 100));
    let mut env = FixedEnv::new(NOW);
    assert!(matches!(derive_address(&mut e, &mut env, &t, OMNI_AB), Response::Address(_)));
    // Same token, now cached: another account must still be refused…
    let err = expect_error(derive_address(&mut e, &mut env, &t, [1; 32]));
    assert_eq!(err.code, ErrorCode::Unauthorized);
    // …and once past exp + 60 s leeway, so must the original account.
    env.now = NOW + 100 + 60;
    assert!(matches!(derive_address(&mut e, &mut env, &t, OMNI_AB), Response::Address(_)));
    env.now = NOW + 100 + 61;
    let err = expect_error(derive_address(&mut e, &mut env, &t, OMNI_AB));
    assert_eq!(err.code, ErrorCode::Unauthorized);
    assert!(err.message.contains("expired"), "{}", err.message);
}

#[test]
fn jwt_attack_matrix_is_unauthorized() {
    let broker = Broker::new();
    let other = Broker::new();
    let o = &OMNI_AB;
    let good_claims = claims(o, NOW + 3600);
    let b64 = |s: &str| base64ct::Base64UrlUnpadded::encode_string(s.as_bytes());
    use base64ct::Encoding;
    let valid = broker.token(o);
    let (vh, rest) = valid.split_once('.').unwrap();
    let (vp, vs) = rest.split_once('.').unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("garbage", "not-a-jwt".into()),
        ("two segments", format!("{vh}.{vp}")),
        ("four segments", format!("{valid}.x")),
        ("alg none unsigned", format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&good_claims))),
        ("alg none with sig", format!("{}.{}.{vs}", b64(r#"{"alg":"none"}"#), b64(&good_claims))),
        ("HS256 header", broker.sign_raw(r#"{"alg":"HS256"}"#, &good_claims)),
        ("RS256 header", broker.sign_raw(r#"{"alg":"RS256"}"#, &good_claims)),
        ("ES384 header", broker.sign_raw(r#"{"alg":"ES384"}"#, &good_claims)),
        ("lowercase es256", broker.sign_raw(r#"{"alg":"es256"}"#, &good_claims)),
        ("no alg", broker.sign_raw(r#"{"kid":"x"}"#, &good_claims)),
        ("duplicate alg", broker.sign_raw(r#"{"alg":"ES256","alg":"none"}"#, &good_claims)),
        ("crit header", broker.sign_raw(r#"{"alg":"ES256","crit":["b64"]}"#, &good_claims)),
        ("other broker key", other.token(o)),
        ("payload swapped", format!("{vh}.{}.{vs}", b64(&claims(&[1; 32], NOW + 3600)))),
        ("signature truncated", format!("{vh}.{vp}.{}", &vs[..vs.len() - 4])),
        ("signature as DER-length garbage", format!("{vh}.{vp}.{}", b64(&"A".repeat(72)))),
        ("expired beyond leeway", broker.sign_raw(&default_header(), &claims(o, NOW - 61))),
        ("no exp", broker.sign_raw(&default_header(), &good_claims.replace(&format!("\"exp\":{},", NOW + 3600), ""))),
        (
            "exp as string",
            broker.sign_raw(
                &default_header(),
                &good_claims.replace(&format!("\"exp\":{}", NOW + 3600), &format!("\"exp\":\"{}\"", NOW + 3600)),
            ),
        ),
        (
            "nbf in the future",
            broker.sign_raw(&default_header(), &good_claims.replacen('{', &format!("{{\"nbf\":{},", NOW + 61), 1)),
        ),
        ("wrong aud", broker.sign_raw(&default_header(), &good_claims.replace("agentkeys:broker", "agentkeys:other"))),
        (
            "aud array without broker",
            broker.sign_raw(&default_header(), &good_claims.replace("\"agentkeys:broker\"", "[\"a\",\"b\"]")),
        ),
        ("no omni claim", broker.sign_raw(&default_header(), &good_claims.replace("omni_account", "omni"))),
        ("omni claim malformed", broker.sign_raw(&default_header(), &good_claims.replace(&hex::encode(o), "zz"))),
        ("omni claim for another account", broker.token(&[1; 32])),
        ("claims not an object", broker.sign_raw(&default_header(), "[1,2]")),
        ("claims not json", broker.sign_raw(&default_header(), "{\"aud\":")),
        ("oversized", format!("{valid}{}", "A".repeat(9000))),
    ];
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);
    // The valid token works (so the matrix is not vacuous).
    assert!(matches!(derive_address(&mut e, &mut env, &valid, *o), Response::Address(_)));
    for (i, (name, token)) in cases.iter().enumerate() {
        for req in [0, 1] {
            let resp = if req == 0 {
                derive_address(&mut e, &mut env, token, *o)
            } else {
                sign_eip191(&mut e, &mut env, token, *o, b"hi")
            };
            let err = expect_error(resp);
            assert_eq!(err.code, ErrorCode::Unauthorized, "case {i} ({name}): {}", err.message);
            // The message never echoes the token.
            assert!(token.len() < 8 || !err.message.contains(&token[..8]), "case {i} ({name})");
        }
    }
    // aud as an array containing the broker audience is accepted; nbf within leeway too.
    let arr = broker
        .sign_raw(&default_header(), &good_claims.replace("\"agentkeys:broker\"", "[\"x\",\"agentkeys:broker\"]"));
    assert!(matches!(derive_address(&mut e, &mut env, &arr, *o), Response::Address(_)));
    let nbf = broker.sign_raw(&default_header(), &good_claims.replacen('{', &format!("{{\"nbf\":{},", NOW + 60), 1));
    assert!(matches!(derive_address(&mut e, &mut env, &nbf, *o), Response::Address(_)));
    let exp_in_leeway = broker.sign_raw(&default_header(), &claims(o, NOW - 60));
    assert!(matches!(derive_address(&mut e, &mut env, &exp_in_leeway, *o), Response::Address(_)));
}

#[test]
fn check_order_jwt_then_provisioned_then_epoch() {
    let broker = Broker::new();
    let mut env = FixedEnv::new(NOW);
    let mut empty = Enclave::new(Config::new(broker.public_key()));
    // Bad JWT on an unprovisioned enclave: 401 first.
    assert_eq!(expect_error(derive_address(&mut empty, &mut env, "x.y.z", OMNI_AB)).code, ErrorCode::Unauthorized);
    let t = broker.token(&OMNI_AB);
    let err = expect_error(derive_address(&mut empty, &mut env, &t, OMNI_AB));
    assert_eq!(err.code, ErrorCode::SignerDisabled);
    assert_eq!(err.code.http_code(), "signer_disabled");
    // Provisioned, but not epoch 2.
    let mut e = enclave_with(&broker, 16, 16);
    let mut s = subject(&t, OMNI_AB);
    s.key_version = 2;
    let err =
        expect_error(call(&mut e, &mut env, Request::DeriveAddress(sigil_protocol::DeriveAddress { subject: s })));
    assert_eq!(err.code, ErrorCode::UnknownKeyVersion);
}

#[test]
fn epochs_are_independent_and_status_lists_them() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 16, 16);
    e.load_k3(2, K3::from_bytes([9; 32]));
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&OMNI_AB);
    let mut s2 = subject(&t, OMNI_AB);
    s2.key_version = 2;
    let a1 = derive_address(&mut e, &mut env, &t, OMNI_AB);
    let a2 = call(&mut e, &mut env, Request::DeriveAddress(sigil_protocol::DeriveAddress { subject: s2 }));
    match (a1, a2) {
        (Response::Address(a), Response::Address(b)) => {
            assert_eq!(hex::encode(a.address.0), "384099f86f48b052da6535d608315dee069642f7");
            assert_ne!(a.address, b.address);
            assert_eq!(b.key_version, 2);
        }
        other => panic!("{other:?}"),
    }
    match call(&mut e, &mut env, Request::Status) {
        Response::Status(s) => {
            assert_eq!(s.current_key_version, Some(2));
            assert_eq!(s.epochs.len(), 2);
            assert_eq!(s.epochs[0].key_version, 1);
            assert_eq!(s.epochs[0].k3_fingerprint.0, k3_seq().fingerprint());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hello_negotiates_or_refuses() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 16, 16);
    let mut env = FixedEnv::new(NOW);
    match call(&mut e, &mut env, Request::Hello(Hello { min_version: 1, max_version: 9 })) {
        Response::Hello(h) => assert_eq!((h.version, h.min_version, h.max_version), (1, 1, 1)),
        other => panic!("{other:?}"),
    }
    let err = expect_error(call(&mut e, &mut env, Request::Hello(Hello { min_version: 2, max_version: 9 })));
    assert_eq!(err.code, ErrorCode::UnsupportedVersion);
}

#[test]
fn kek_is_sealed_to_the_caller_and_bound_to_the_request() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 16, 16);
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&OMNI_AB);
    let (sk, pk) = kek::recipient_keypair(&[5; 32]);
    let req = DeriveKek { subject: subject(&t, OMNI_AB), context: b"openai".to_vec(), recipient: pk.into() };
    let sealed = match call(&mut e, &mut env, Request::DeriveKek(req.clone())) {
        Response::SealedKek(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(sealed.key_version, 1);
    let opened = kek::open(&sk, 1, &sealed.encapsulated_key.0, &sealed.ciphertext, &req.aad()).unwrap();
    let expected = kek::derive(&k3_seq(), &OMNI_AB, b"openai").unwrap();
    assert_eq!(opened, expected);
    // The sealed KEK does not open as the answer to another request.
    let mut other = req.clone();
    other.context = b"anthropic".to_vec();
    assert!(kek::open(&sk, 1, &sealed.encapsulated_key.0, &sealed.ciphertext, &other.aad()).is_err());
    // Each call uses a fresh ephemeral key.
    match call(&mut e, &mut env, Request::DeriveKek(req.clone())) {
        Response::SealedKek(s2) => assert_ne!(s2.encapsulated_key, sealed.encapsulated_key),
        other => panic!("{other:?}"),
    }
    // Bad inputs: typed errors.
    let mut long = req.clone();
    long.context = vec![0; 257];
    assert_eq!(expect_error(call(&mut e, &mut env, Request::DeriveKek(long))).code, ErrorCode::InvalidRequest);
    let mut zero = req;
    zero.recipient = [0; 32].into();
    assert_eq!(expect_error(call(&mut e, &mut env, Request::DeriveKek(zero))).code, ErrorCode::InvalidRequest);
}

#[test]
fn hostile_frames_get_typed_errors() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 16, 16);
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&OMNI_AB);
    let good = encode_message(&Envelope {
        request_id: 7,
        body: Request::SignEip191(sigil_protocol::SignEip191 { subject: subject(&t, OMNI_AB), message: b"m".to_vec() }),
    })
    .unwrap();

    let reply = |e: &mut Enclave, env: &mut FixedEnv, bytes: &[u8]| -> Envelope<Response> {
        decode_message(&e.handle(bytes, env)).unwrap()
    };
    let code_of = |r: Envelope<Response>| match r.body {
        Response::Error(w) => (r.request_id, w.code),
        other => panic!("{other:?}"),
    };

    // Truncated at every length.
    for n in 0..good.len() {
        let (_, code) = code_of(reply(&mut e, &mut env, &good[..n]));
        assert_eq!(code, ErrorCode::MalformedFrame, "truncated to {n}");
    }
    // Wrong version.
    let mut v = good.clone();
    v[3] = 2;
    assert_eq!(code_of(reply(&mut e, &mut env, &v)).1, ErrorCode::UnsupportedVersion);
    // Bad checksum.
    let mut c = good.clone();
    *c.last_mut().unwrap() ^= 0x55;
    assert_eq!(code_of(reply(&mut e, &mut env, &c)).1, ErrorCode::MalformedFrame);
    // Oversized length field.
    let mut big = good.clone();
    big[5..9].copy_from_slice(&(70_000u32).to_be_bytes());
    assert_eq!(code_of(reply(&mut e, &mut env, &big)).1, ErrorCode::MalformedFrame);
    // A 64 KiB + 1 payload cannot even be framed; a max-size frame of junk is decoded and refused.
    let junk = vec![0xffu8; frame::MAX_PAYLOAD];
    let mut f = Vec::new();
    frame::encode(1, 0, &junk, &mut f).unwrap();
    assert_eq!(code_of(reply(&mut e, &mut env, &f)).1, ErrorCode::InvalidRequest);
    // Unknown request variant, with the request id still echoed.
    let mut payload = postcard::to_allocvec(&9u64).unwrap();
    payload.push(200);
    let mut f = Vec::new();
    frame::encode(1, 0, &payload, &mut f).unwrap();
    assert_eq!(code_of(reply(&mut e, &mut env, &f)), (9, ErrorCode::InvalidRequest));
    // Trailing byte after a valid message.
    let mut payload = frame::decode(&good).unwrap().payload.to_vec();
    payload.push(0);
    let mut f = Vec::new();
    frame::encode(1, 0, &payload, &mut f).unwrap();
    assert_eq!(code_of(reply(&mut e, &mut env, &f)), (7, ErrorCode::InvalidRequest));
    // Every single-bit flip of a valid frame: never a panic, always a well-formed reply.
    for i in 0..good.len() * 8 {
        let mut x = good.clone();
        x[i / 8] ^= 1 << (i % 8);
        let _ = reply(&mut e, &mut env, &x);
    }
    assert!(HEADER_LEN < good.len());
}

#[test]
fn bad_typed_data_is_invalid_typed_data() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 16, 16);
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&OMNI_AB);
    for bad in ["", "{", "[]", "null", r#"{"types":{}}"#, &"[".repeat(60_000)] {
        let err = expect_error(call(
            &mut e,
            &mut env,
            Request::SignEip712(SignEip712 { subject: subject(&t, OMNI_AB), typed_data: bad.to_owned() }),
        ));
        assert_eq!(err.code, ErrorCode::InvalidTypedData, "{:.20}", bad);
    }
    // JWT is checked before the JSON is even parsed.
    let err = expect_error(call(
        &mut e,
        &mut env,
        Request::SignEip712(SignEip712 { subject: subject("x.y.z", OMNI_AB), typed_data: "{".into() }),
    ));
    assert_eq!(err.code, ErrorCode::Unauthorized);
}

#[test]
fn debug_output_never_contains_secrets() {
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 16, 16);
    let mut env = FixedEnv::new(NOW);
    let t = broker.token(&OMNI_AB);
    let _ = sign_eip191(&mut e, &mut env, &t, OMNI_AB, b"x");
    let k3_hex = "000102030405060708090a0b0c0d0e0f";
    let scalar = "751e0a5d7777363300ccfe7e001390a4";
    let kek = kek::derive(&k3_seq(), &OMNI_AB, b"svc").unwrap();
    let kek_hex = hex::encode(kek.dangerous_as_bytes());
    let secp = secp256k1::Secp256k1::new();
    let wallet = sigil_enclave::wallet::WalletKey::derive(&secp, &k3_seq(), 1, &OMNI_AB).unwrap();
    let token = sigil_protocol::BrokerToken::new(t.clone());
    let req = Request::SignEip191(sigil_protocol::SignEip191 { subject: subject(&t, OMNI_AB), message: vec![] });
    let mut deframer = sigil_protocol::Deframer::new();
    deframer.push(t.as_bytes());
    let (rk, _) = kek::recipient_keypair(&[1; 32]);
    let outputs = [
        format!("{:?}", k3_seq()),
        format!("{:?}", e.k3_store()),
        format!("{e:?}"),
        format!("{wallet:?}"),
        format!("{kek:?}"),
        format!("{token:?}"),
        format!("{req:?}"),
        format!("{deframer:?}"),
        format!("{:?}", Config::new(broker.public_key())),
    ];
    let rk_hex = hex::encode(*rk);
    for (i, out) in outputs.iter().enumerate() {
        let lower = out.to_lowercase();
        for secret in [k3_hex, scalar, &kek_hex[..16], &t[..20], &t[t.len() - 20..], &rk_hex[..16]] {
            assert!(!lower.contains(&secret.to_lowercase()), "output {i} leaks: {out}");
        }
        // Byte-array style dumps of K3 (0, 1, 2, 3, …) are leaks too.
        assert!(!out.contains("0, 1, 2, 3"), "output {i}: {out}");
    }
}

#[test]
fn secret_holding_types_zeroize_on_drop() {
    fn zeroizes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroizes_on_drop::<K3>();
    zeroizes_on_drop::<kek::Kek>();
    zeroizes_on_drop::<sigil_enclave::wallet::WalletKey>();
    zeroizes_on_drop::<sigil_protocol::BrokerToken>();
    zeroizes_on_drop::<zeroize::Zeroizing<[u8; 32]>>(); // recipient secrets from kek::recipient_keypair
}
