//! Fuzz entry points. Not part of the API: the `fuzz/` targets (`enclave_handle`, `typed_data`)
//! are thin libFuzzer wrappers around these, and the unit tests below run them over the seed
//! corpus and pseudo-random mutations so they stay correct between fuzz runs.
//!
//! [`handle`] drives a fresh [`Enclave`] (K3 = `00 01 … 1f` as epoch 1, a fixed broker key) and
//! checks every response against a model of the SPEC: which requests may succeed, with which
//! error code the others fail, and that every signature recovers to the account's address.
//! The broker key and its tokens are constants minted once (see `mint_fuzz_tokens` in the
//! tests), so a valid token can sit in a corpus file and be mutated byte by byte.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, Secp256k1, VerifyOnly};
use sha3::{Digest, Keccak256};
use sigil_protocol::frame::{self, MAX_SUPPORTED_VERSION, MIN_SUPPORTED_VERSION, PROTOCOL_VERSION};
use sigil_protocol::{
    BrokerToken, DecodeError, DeriveAddress, DeriveKek, Envelope, Epoch, ErrorCode, HelloAck, MAX_KEK_CONTEXT, Request,
    Response, SignEip191, SignEip712, Status, Subject, decode_message, decode_payload, encode_message,
};

use crate::jwt::{BrokerKey, LEEWAY_SECS};
use crate::wallet::address_of;
use crate::{Config, Enclave, FixedEnv, K3, eip191, eip712, kek};

/// The broker's public key (uncompressed SEC1 P-256) the fuzzed enclave is configured with.
/// Its private key was thrown away after minting [`TOKENS`].
const BROKER_KEY: [u8; 65] = [
    0x04, 0xeb, 0xb0, 0xd5, 0xa8, 0x66, 0x5b, 0x17, 0x1d, 0x5f, 0x8b, 0x48, 0xb9, 0xc1, 0xa1, 0x70, 0xbe, 0xcc, 0xdd,
    0xcb, 0x45, 0xde, 0x53, 0x36, 0xad, 0xad, 0x15, 0x69, 0xdb, 0x9e, 0x05, 0xe7, 0x30, 0xe5, 0xc7, 0x38, 0x22, 0xda,
    0x9b, 0x09, 0x78, 0x84, 0xf9, 0xf1, 0x45, 0x16, 0xc4, 0xe4, 0xd4, 0x30, 0xda, 0x72, 0x2a, 0x8e, 0x27, 0x41, 0x72,
    0xc3, 0x28, 0xdb, 0x71, 0x13, 0x81, 0xef, 0x79,
];

/// The clock the tokens were minted around.
pub const NOW: u64 = 1_760_000_000;
/// The one loaded epoch.
const KEY_VERSION: u8 = 1;
/// K3 of epoch 1: `00 01 … 1f`, as in the SPEC vectors.
const K3_BYTES: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
    31,
];
/// Account A and its wallet under K3 `00…1f`, epoch 1 (SPEC §3 vector).
const OMNI_A: [u8; 32] = [0xab; 32];
const ADDRESS_A: [u8; 20] = [
    0x38, 0x40, 0x99, 0xf8, 0x6f, 0x48, 0xb0, 0x52, 0xda, 0x65, 0x35, 0xd6, 0x08, 0x31, 0x5d, 0xee, 0x06, 0x96, 0x42,
    0xf7,
];
/// Account B (all zeros) and its wallet (SPEC §3 vector).
const OMNI_B: [u8; 32] = [0; 32];
const ADDRESS_B: [u8; 20] = [
    0x4b, 0x4a, 0xd1, 0x78, 0x1d, 0x82, 0xe7, 0x17, 0x3c, 0x44, 0x14, 0x2d, 0xab, 0xdb, 0x48, 0x23, 0x88, 0x5d, 0xa2,
    0x1b,
];
/// An account no token names.
const OMNI_STRANGER: [u8; 32] = [0x11; 32];

/// `exp` of token A (NOW + 10 years).
const A_EXP: u64 = 2_075_360_000;

/// The JOSE header of every minted token.
#[cfg_attr(not(test), allow(dead_code, reason = "documents the tokens; checked by the tests"))]
const HEADER: &str = r#"{"alg":"ES256","typ":"JWT","kid":"sigil-fuzz"}"#;

/// A broker token signed by [`BROKER_KEY`], and what the enclave should make of it.
struct FuzzToken {
    /// The JWT claims, as signed.
    #[cfg_attr(not(test), allow(dead_code, reason = "documents the token; checked by the tests"))]
    claims: &'static str,
    /// The compact JWS.
    jwt: &'static str,
    /// Whether `jwt::verify_token` accepts it (signature, audience, claim shapes).
    verifies: bool,
    /// `agentkeys.omni_account`.
    omni: [u8; 32],
    /// `exp`, truncated to whole seconds.
    exp: u64,
    /// `nbf`.
    nbf: Option<u64>,
}

/// Every token the harness knows. Index = `selector & 3` in the structured modes.
const TOKENS: [FuzzToken; 4] = [
    // A: long-lived, plain string audience, no nbf.
    FuzzToken {
        claims: r#"{"iss":"agentkeys-broker","sub":"agentkeys:user:abababababababababababababababababababababababababababababababab","aud":"agentkeys:broker","exp":2075360000,"iat":1760000000,"jti":"fuzz-a","agentkeys":{"omni_account":"abababababababababababababababababababababababababababababababab","identity_type":"email","identity_value":"a@example.com"}}"#,
        jwt: "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNpZ2lsLWZ1enoifQ.eyJpc3MiOiJhZ2VudGtleXMtYnJva2VyIiwic3ViIjoiYWdlbnRrZXlzOnVzZXI6YWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYiIsImF1ZCI6ImFnZW50a2V5czpicm9rZXIiLCJleHAiOjIwNzUzNjAwMDAsImlhdCI6MTc2MDAwMDAwMCwianRpIjoiZnV6ei1hIiwiYWdlbnRrZXlzIjp7Im9tbmlfYWNjb3VudCI6ImFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWIiLCJpZGVudGl0eV90eXBlIjoiZW1haWwiLCJpZGVudGl0eV92YWx1ZSI6ImFAZXhhbXBsZS5jb20ifX0.JtPnIaas-u-UEuX-5a0l4HmZL8PCK1FmF7asDRJVoy6iehg0K8MQr5xMktOUxpHzbA1j7DkH2RJMd2jAr3ac-w",
        verifies: true,
        omni: OMNI_A,
        exp: A_EXP,
        nbf: None,
    },
    // B: one hour, audience array, fractional exp, nbf a minute ago.
    FuzzToken {
        claims: r#"{"aud":["agentkeys:host","agentkeys:broker"],"exp":1760003600.5,"nbf":1759999940,"agentkeys":{"omni_account":"0000000000000000000000000000000000000000000000000000000000000000"}}"#,
        jwt: "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNpZ2lsLWZ1enoifQ.eyJhdWQiOlsiYWdlbnRrZXlzOmhvc3QiLCJhZ2VudGtleXM6YnJva2VyIl0sImV4cCI6MTc2MDAwMzYwMC41LCJuYmYiOjE3NTk5OTk5NDAsImFnZW50a2V5cyI6eyJvbW5pX2FjY291bnQiOiIwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwIn19.cdBlmrhb3ReUFkbBd0LsNp7mf5SB4t03PPpjqAqMOaKnHhqR5BA405HOrwbJqyeE3zrOoxqwo-vdjWIKp18GJA",
        verifies: true,
        omni: OMNI_B,
        exp: 1_760_003_600,
        nbf: Some(1_759_999_940),
    },
    // Genuine but expired (except at the clock's epoch 0).
    FuzzToken {
        claims: r#"{"aud":"agentkeys:broker","exp":1759990000,"agentkeys":{"omni_account":"abababababababababababababababababababababababababababababababab"}}"#,
        jwt: "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNpZ2lsLWZ1enoifQ.eyJhdWQiOiJhZ2VudGtleXM6YnJva2VyIiwiZXhwIjoxNzU5OTkwMDAwLCJhZ2VudGtleXMiOnsib21uaV9hY2NvdW50IjoiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYiJ9fQ.pr6HD0GVlnuEO2Jrf-1eRdSz9B3adxvlTgU43bRO-FLbc3HZyTTxBlgTWsBjDtIakNmCdS5ewPqw7zQSkHQrGQ",
        verifies: true,
        omni: OMNI_A,
        exp: 1_759_990_000,
        nbf: None,
    },
    // Genuine signature, wrong audience: never authorises anything.
    FuzzToken {
        claims: r#"{"aud":"agentkeys:host","exp":2075360000,"agentkeys":{"omni_account":"abababababababababababababababababababababababababababababababab"}}"#,
        jwt: "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNpZ2lsLWZ1enoifQ.eyJhdWQiOiJhZ2VudGtleXM6aG9zdCIsImV4cCI6MjA3NTM2MDAwMCwiYWdlbnRrZXlzIjp7Im9tbmlfYWNjb3VudCI6ImFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWIifX0.pfNWMtA-wfPdYm8ZD8gf8k3ClMl3jfUYgqXfrRVOShkzfZu8GC2WALzOb2AVogHCW_OUODxuYnp29sIDoE0MoA",
        verifies: false,
        omni: OMNI_A,
        exp: A_EXP,
        nbf: None,
    },
];

/// Clocks selectable by the options byte: inside and at both edges of the tokens' windows
/// (leeway included), and the epoch.
const TIMES: [u64; 8] = [
    NOW,
    NOW + 3600 + LEEWAY_SECS, // B's last valid second
    NOW + 3601 + LEEWAY_SECS, // B expired
    NOW - 60 - LEEWAY_SECS,   // B's first valid second (nbf - leeway)
    NOW - 61 - LEEWAY_SECS,   // B not yet valid
    A_EXP + LEEWAY_SECS,      // A's last valid second
    A_EXP + LEEWAY_SECS + 1,  // A expired
    0,
];

/// Runs one fuzz input through [`Enclave::handle`] and checks the response against the model.
///
/// Layout: `data[0]` picks the mode (mod 6), `data[1]` the options, the rest depends on the mode:
/// - 0: the rest is the request frame, as is;
/// - 1: the rest is a payload, wrapped in a valid frame (so the CRC is right);
/// - 2..=5: a `SignEip191` / `SignEip712` / `DeriveKek` / `DeriveAddress` request built by
///   the harness: a subject selector byte (token, account, key version, request id, tampering;
///   see `structured`), the extra bytes it asks for, then the rest as the message / typed
///   data (lossy UTF-8) / `ikm[32] flags context` / nothing.
///
/// Options: bits 0..3 pick the clock from `TIMES`; bit 3 handles the frame twice and requires
/// the same answer; bit 4 first handles a valid request (warming the JWT and wallet caches;
/// bit 5 picks token A or B for it); bits 6..8 pick the cache capacities (default, disabled,
/// one entry each, one token and no wallet).
///
/// Asserts that every response is exactly one valid frame holding an `Envelope<Response>`
/// with the request's id, and:
/// - frames or payloads that do not decode get the matching decode error;
/// - `Hello` and `Status` answer per version negotiation and the loaded epoch;
/// - a K3-using request succeeds only if its token is one of the genuine tokens, verbatim,
///   inside its validity window (with leeway) and for the request's account; otherwise it
///   fails `unauthorized` (the JWT is checked before anything else); then an unknown epoch
///   fails `unknown_key_version` (epoch 0 means the current one, the loaded epoch);
/// - addresses are the account's wallet; EIP-191 and EIP-712 signatures are low-s, `v ∈ {0,1}`
///   and recover to it over the digest computed here; EIP-712 hashes equal those of
///   [`eip712::hash_typed_data`] and typed data it rejects fails `invalid_typed_data`;
/// - a sealed KEK opens, with the recipient's secret, to the KEK of `(account, context)`;
/// - no response is ever `internal`;
/// - replaying a frame (now hitting the caches) gives the same answer.
#[doc(hidden)]
pub fn handle(data: &[u8]) {
    let _ = run(data);
}

/// [`handle`], returning the first response (for tests: they check the modes reach success).
fn run(data: &[u8]) -> Option<Response> {
    let mut input = Input(data);
    let mode = input.byte() % 6;
    let options = input.byte();
    let now = TIMES.get(usize::from(options & 7)).copied().unwrap_or(NOW);
    let (jwt_cache, wallet_cache) = match options >> 6 {
        0 => (4096, 16384),
        1 => (0, 0),
        2 => (1, 1),
        _ => (1, 0),
    };

    let mut recipient_secret = None;
    let request = match mode {
        0 => input.rest().to_vec(),
        1 => {
            let mut out = Vec::new();
            frame::encode(PROTOCOL_VERSION, 0, input.rest(), &mut out).ok()?;
            out
        }
        _ => {
            let (body, secret) = structured(mode, &mut input);
            recipient_secret = secret;
            encode_message(&Envelope { request_id: body.0, body: body.1 }).ok()?
        }
    };

    let mut config = Config::new(BrokerKey::from_sec1(&BROKER_KEY).ok()?);
    config.jwt_cache_capacity = jwt_cache;
    config.wallet_cache_capacity = wallet_cache;
    let mut enclave = Enclave::new(config);
    enclave.load_k3(KEY_VERSION, K3::from_bytes(K3_BYTES));
    let secp = Secp256k1::verification_only();
    let model = Model { secp: &secp, now, recipient_secret: recipient_secret.as_ref() };

    if options & 0x10 != 0 {
        warm_up(&mut enclave, usize::from((options >> 5) & 1));
    }
    let mut env = FixedEnv::new(now);
    let first = enclave.handle(&request, &mut env);
    let response = model.check(&request, &first);
    if options & 0x08 != 0 {
        let second = enclave.handle(&request, &mut env);
        let again = model.check(&request, &second);
        model.same_answer(&response, &again, &first, &second);
    }
    Some(response)
}

/// Handles a genuine `DeriveAddress` for token A or B at [`NOW`], which must succeed.
fn warm_up(enclave: &mut Enclave, token: usize) {
    let Some(t) = TOKENS.get(token) else { return };
    let subject = Subject { token: BrokerToken::new(t.jwt.to_string()), key_version: KEY_VERSION, omni: t.omni.into() };
    let Ok(req) = encode_message(&Envelope { request_id: 7, body: Request::DeriveAddress(DeriveAddress { subject }) })
    else {
        return;
    };
    let resp = decode_message::<Envelope<Response>>(&enclave.handle(&req, &mut FixedEnv::new(NOW)));
    let ok = matches!(&resp, Ok(Envelope { body: Response::Address(a), .. }) if Some(a.address.0) == address(&t.omni));
    check(ok, "a genuine token was refused during warm-up", &resp);
}

/// A request of mode 2..=5, and the HPKE recipient secret if the harness chose the recipient.
fn structured(mode: u8, input: &mut Input<'_>) -> ((u64, Request), Option<zeroize::Zeroizing<[u8; 32]>>) {
    // Selector bits: 0..2 token; 2..4 account (token's own, the other token's, a stranger,
    // 32 input bytes); 4 key version from the next input byte; 5 request id from 8 input bytes;
    // 6 xor one token byte (position, value from 2 input bytes); 7 drop the token's last char.
    let sel = input.byte();
    let token = TOKENS.get(usize::from(sel & 3)).map_or("", |t| t.jwt);
    let own = TOKENS.get(usize::from(sel & 3)).map_or(OMNI_A, |t| t.omni);
    let omni = match (sel >> 2) & 3 {
        0 => own,
        1 if own == OMNI_A => OMNI_B,
        1 => OMNI_A,
        2 => OMNI_STRANGER,
        _ => input.array(),
    };
    let key_version = if sel & 0x10 != 0 { input.byte() } else { KEY_VERSION };
    let request_id = if sel & 0x20 != 0 { u64::from_le_bytes(input.array()) } else { 1 };
    let mut jwt = token.as_bytes().to_vec();
    if sel & 0x40 != 0 {
        let [pos, x] = input.array();
        let len = jwt.len().max(1);
        if let Some(b) = jwt.get_mut(usize::from(pos) % len) {
            // Tokens are ASCII; a non-zero 7-bit xor keeps them ASCII and always changes them.
            *b ^= (x & 0x7f).max(1);
        }
    }
    if sel & 0x80 != 0 {
        jwt.pop();
    }
    let subject =
        Subject { token: BrokerToken::new(String::from_utf8_lossy(&jwt).into_owned()), key_version, omni: omni.into() };
    let mut secret = None;
    let body = match mode {
        2 => Request::SignEip191(SignEip191 { subject, message: input.rest().to_vec() }),
        3 => {
            Request::SignEip712(SignEip712 { subject, typed_data: String::from_utf8_lossy(input.rest()).into_owned() })
        }
        4 => {
            let ikm: [u8; 32] = input.array();
            let flags = input.byte();
            let recipient = if flags & 1 == 0 {
                let (sk, pk) = kek::recipient_keypair(&ikm);
                secret = Some(sk);
                pk
            } else {
                // Raw bytes: low-order points and the like.
                ikm
            };
            Request::DeriveKek(DeriveKek { subject, context: input.rest().to_vec(), recipient: recipient.into() })
        }
        _ => Request::DeriveAddress(DeriveAddress { subject }),
    };
    ((request_id, body), secret)
}

/// What the responses are checked against.
struct Model<'a> {
    secp: &'a Secp256k1<VerifyOnly>,
    now: u64,
    recipient_secret: Option<&'a zeroize::Zeroizing<[u8; 32]>>,
}

impl Model<'_> {
    /// Checks one response to `request`; returns it decoded.
    fn check(&self, request: &[u8], response: &[u8]) -> Response {
        let resp = match decode_message::<Envelope<Response>>(response) {
            Ok(r) => r,
            Err(e) => violation("the response is not one valid frame of Envelope<Response>", &e),
        };
        if let Response::Error(e) = &resp.body {
            check(e.code != ErrorCode::Internal, "an input produced an internal error", e);
        }
        let f = match frame::decode(request) {
            Ok(f) => f,
            Err(e) => {
                check(resp.request_id == 0, "a bad frame was answered with a request id", &resp);
                self.expect_error(&resp.body, DecodeError::Frame(e).code());
                return resp.body;
            }
        };
        let req = match decode_payload::<Envelope<Request>>(f.payload) {
            Ok(r) => r,
            Err(e) => {
                let id = postcard::take_from_bytes::<u64>(f.payload).map_or(0, |(id, _)| id);
                check(resp.request_id == id, "a bad payload was not answered with its leading id", &resp);
                self.expect_error(&resp.body, e.code());
                return resp.body;
            }
        };
        check(resp.request_id == req.request_id, "the response does not echo the request id", &resp);
        match &req.body {
            Request::Hello(h) => {
                let lo = h.min_version.max(MIN_SUPPORTED_VERSION);
                let hi = h.max_version.min(MAX_SUPPORTED_VERSION);
                if lo > hi {
                    self.expect_error(&resp.body, ErrorCode::UnsupportedVersion);
                } else {
                    let want = Response::Hello(HelloAck {
                        version: hi,
                        min_version: MIN_SUPPORTED_VERSION,
                        max_version: MAX_SUPPORTED_VERSION,
                    });
                    check(resp.body == want, "wrong hello answer", &resp);
                }
            }
            Request::Status => {
                let want = Response::Status(Status {
                    protocol_version: PROTOCOL_VERSION,
                    current_key_version: Some(KEY_VERSION),
                    epochs: vec![Epoch {
                        key_version: KEY_VERSION,
                        k3_fingerprint: K3::from_bytes(K3_BYTES).fingerprint().into(),
                    }],
                });
                check(resp.body == want, "wrong status answer", &resp);
            }
            Request::DeriveAddress(r) => {
                if let Some(want) = self.authorized(&r.subject, &resp.body) {
                    let ok = matches!(&resp.body, Response::Address(a)
                        if a.address.0 == want && a.key_version == KEY_VERSION);
                    check(ok, "wrong address", &resp);
                }
            }
            Request::SignEip191(r) => {
                if let Some(want) = self.authorized(&r.subject, &resp.body) {
                    let Response::Eip191Signature(s) = &resp.body else {
                        violation("an authorised eip-191 request was not signed", &resp);
                    };
                    check(s.address.0 == want && s.key_version == KEY_VERSION, "wrong eip-191 signer", &resp);
                    self.recovers(&eip191_digest(&r.message), &s.signature.0, &want);
                }
            }
            Request::SignEip712(r) => {
                if let Some(want) = self.authorized(&r.subject, &resp.body) {
                    match eip712::hash_typed_data(&r.typed_data) {
                        Err(_) => self.expect_error(&resp.body, ErrorCode::InvalidTypedData),
                        Ok(h) => {
                            let Response::Eip712Signature(s) = &resp.body else {
                                violation("authorised, valid typed data was not signed", &resp);
                            };
                            let hashes_ok = s.digest.0 == h.digest
                                && s.domain_separator.0 == h.domain_separator
                                && s.primary_type_hash.0 == h.primary_type_hash
                                && h.digest == eip712_digest(&h.domain_separator, &h.primary_type_hash);
                            check(hashes_ok, "eip-712 hashes disagree", &resp);
                            check(s.address.0 == want && s.key_version == KEY_VERSION, "wrong eip-712 signer", &resp);
                            self.recovers(&h.digest, &s.signature.0, &want);
                        }
                    }
                }
            }
            Request::DeriveKek(r) => {
                if self.authorized(&r.subject, &resp.body).is_some() {
                    self.check_kek(r, &resp.body);
                }
            }
            _ => self.expect_error(&resp.body, ErrorCode::InvalidRequest),
        }
        resp.body
    }

    /// The SPEC's authorisation model. `Some(address)` when the request must go through to
    /// its operation; otherwise checks that `resp` is the error it must be and returns `None`.
    fn authorized(&self, subject: &Subject, resp: &Response) -> Option<[u8; 20]> {
        let token = TOKENS.iter().find(|t| t.jwt == subject.token.expose());
        let omni = subject.omni.as_bytes();
        let authorised = token.is_some_and(|t| {
            t.verifies
                && t.exp.saturating_add(LEEWAY_SECS) >= self.now
                && t.nbf.is_none_or(|nbf| nbf <= self.now.saturating_add(LEEWAY_SECS))
                && &t.omni == omni
        });
        if !authorised {
            self.expect_error(resp, ErrorCode::Unauthorized);
            return None;
        }
        if subject.key_version != KEY_VERSION && subject.key_version != 0 {
            self.expect_error(resp, ErrorCode::UnknownKeyVersion);
            return None;
        }
        let want = address(omni);
        check(want.is_some(), "a token authorised an account without a known wallet", subject);
        want
    }

    fn check_kek(&self, r: &DeriveKek, resp: &Response) {
        if r.context.len() > MAX_KEK_CONTEXT {
            self.expect_error(resp, ErrorCode::InvalidRequest);
            return;
        }
        let Some(secret) = self.recipient_secret else {
            // A raw recipient may be refused (low-order point); otherwise it is sealed.
            let ok = matches!(resp, Response::SealedKek(s) if s.key_version == KEY_VERSION)
                || matches!(resp, Response::Error(e) if e.code == ErrorCode::InvalidRequest);
            check(ok, "wrong answer to a kek request with a raw recipient", resp);
            return;
        };
        let Response::SealedKek(s) = resp else {
            violation("an authorised kek request to a valid recipient was not sealed", resp);
        };
        check(s.key_version == KEY_VERSION, "sealed kek of the wrong epoch", resp);
        let opened = kek::open(secret, KEY_VERSION, &s.encapsulated_key.0, &s.ciphertext, &r.aad());
        let want = kek::derive(&K3::from_bytes(K3_BYTES), r.subject.omni.as_bytes(), &r.context);
        let ok = matches!((&opened, &want), (Ok(a), Ok(b)) if a == b);
        check(ok, "the sealed kek does not open to the account's kek", resp);
    }

    /// `signature` is `r || s || v`, low-s, `v ∈ {0,1}`, and recovers to `address` over `digest`.
    fn recovers(&self, digest: &[u8; 32], signature: &[u8; 65], address: &[u8; 20]) {
        let (rs, v) = signature.split_at(64);
        let recovered = RecoveryId::try_from(i32::from(v.first().copied().unwrap_or(u8::MAX)))
            .ok()
            .filter(|id| i32::from(*id) <= 1)
            .and_then(|id| RecoverableSignature::from_compact(rs, id).ok())
            .filter(|sig| {
                let standard = sig.to_standard();
                let mut low = standard;
                low.normalize_s();
                low == standard
            })
            .and_then(|sig| self.secp.recover_ecdsa(Message::from_digest(*digest), &sig).ok())
            .map(|pk| address_of(&pk));
        check(recovered.as_ref() == Some(address), "signature does not recover to the wallet", &signature);
    }

    fn expect_error(&self, resp: &Response, code: ErrorCode) {
        let ok = matches!(resp, Response::Error(e) if e.code == code);
        check(ok, "expected a different error code", &(code, resp));
    }

    /// A replayed request (now through warm caches) gets the same answer. Sealed KEKs are
    /// randomised, so those only have to be sealed again (and were opened by `check`).
    fn same_answer(&self, first: &Response, second: &Response, first_bytes: &[u8], second_bytes: &[u8]) {
        let ok = match (first, second) {
            (Response::SealedKek(a), Response::SealedKek(b)) => a.key_version == b.key_version,
            _ => first_bytes == second_bytes,
        };
        check(ok, "a replayed request got a different answer", &(first, second));
    }
}

/// The wallet address of a known account under epoch 1.
fn address(omni: &[u8; 32]) -> Option<[u8; 20]> {
    match *omni {
        OMNI_A => Some(ADDRESS_A),
        OMNI_B => Some(ADDRESS_B),
        _ => None,
    }
}

/// `keccak256("\x19Ethereum Signed Message:\n" || len || message)`, written out here rather
/// than with the crate's `eip191::digest` so the two are checked against each other.
fn eip191_digest(message: &[u8]) -> [u8; 32] {
    let digest: [u8; 32] = Keccak256::new()
        .chain_update(eip191::PREFIX)
        .chain_update(message.len().to_string().as_bytes())
        .chain_update(message)
        .finalize()
        .into();
    check(digest == eip191::digest(message), "eip-191 digest disagrees", &message.len());
    digest
}

/// `keccak256(0x19 0x01 || domain_separator || struct_hash)`.
fn eip712_digest(domain_separator: &[u8; 32], struct_hash: &[u8; 32]) -> [u8; 32] {
    Keccak256::new()
        .chain_update([0x19, 0x01])
        .chain_update(domain_separator)
        .chain_update(struct_hash)
        .finalize()
        .into()
}

/// Hashes `data` (if UTF-8) as EIP-712 typed data. Never panics; what it accepts has
/// `digest = keccak256(0x19 0x01 || domain_separator || struct_hash)`, and what it rejects
/// has a short error message (quoted input is clipped, never echoed whole).
#[doc(hidden)]
pub fn typed_data(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    match eip712::hash_typed_data(text) {
        Ok(h) => {
            let ok = h.digest == eip712_digest(&h.domain_separator, &h.primary_type_hash);
            check(ok, "digest is not keccak256(0x1901 || domain || struct)", &h);
        }
        Err(e) => {
            // Two clipped quotes of 65 chars (≤ 4 bytes each) plus the fixed text.
            let len = e.to_string().len();
            check(len <= 2 * 65 * 4 + 128, "error message echoes too much input", &len);
        }
    }
}

/// Reads the structured part of an input; past the end it reads zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let [b] = self.array();
        b
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        for (o, b) in out.iter_mut().zip(head) {
            *o = *b;
        }
        self.0 = tail;
        out
    }

    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.0)
    }
}

/// The sealer of the `sealed_blob` target: a fixed platform secret, as sim and SNP have.
struct FixedSealer;

impl crate::sealer::Sealer for FixedSealer {
    fn platform(&self) -> sigil_protocol::Platform {
        sigil_protocol::Platform::Sim
    }
    fn measurement(&self) -> &[u8] {
        &[0x5a; 144]
    }
    fn new_key(
        &mut self,
        salt: &[u8; 32],
    ) -> Result<(zeroize::Zeroizing<[u8; 32]>, Vec<u8>), crate::sealer::SealError> {
        Ok((crate::sealer::derive_blob_key(&[0x42; 32], salt, self.measurement()), salt.to_vec()))
    }
    fn key(&mut self, handle: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>, crate::sealer::SealError> {
        Ok(crate::sealer::derive_blob_key(&[0x42; 32], handle, self.measurement()))
    }
}

/// A genuine blob of [`FixedSealer`] holding epochs 1 and 2 (the `sealed_blob` seed).
#[must_use]
pub fn sealed_blob_seed() -> Vec<u8> {
    let (a, b) = (K3::from_bytes(K3_BYTES), K3::from_bytes([0x77; 32]));
    crate::sealer::seal(&mut FixedSealer, &[(1, &a), (2, &b)], &[3; 32], [4; 12]).unwrap_or_default()
}

/// Fuzz entry point: arbitrary bytes as the sealed blob a host hands back
/// (`Request::UnsealK3`). Invariants: the answer is a custody status or
/// `reprovision_required`, never anything else; nothing is loaded unless the blob opened; and
/// what is loaded is exactly what the blob's header names, each K3 matching its fingerprint.
pub fn sealed_blob(data: &[u8]) {
    let Ok(broker) = BrokerKey::from_sec1(&BROKER_KEY) else { return };
    let mut enclave = Enclave::new(Config::new(broker));
    enclave.set_sealer(alloc::boxed::Box::new(FixedSealer));
    let mut env = FixedEnv::new(NOW);
    let body = Request::UnsealK3(sigil_protocol::UnsealK3 { blob: data.to_vec() });
    let Ok(frame) = encode_message(&Envelope { request_id: 9, body }) else { return };
    let resp: Envelope<Response> = match decode_message(&enclave.handle(&frame, &mut env)) {
        Ok(r) => r,
        Err(e) => violation("the answer is not a valid frame", &e),
    };
    match resp.body {
        Response::CustodyStatus(s) => {
            let header = sigil_protocol::custody::BlobHeader::parse(data).map(|(h, _)| h);
            let loaded: Vec<_> = s.epochs.iter().map(|e| (e.epoch, e.durable)).collect();
            let named: Vec<_> = header.iter().flat_map(|h| h.epochs.iter().map(|e| (*e, true))).collect();
            check(loaded == named, "loaded epochs differ from the blob's header", &(loaded, named));
            for (v, fp, _) in enclave.k3_store().states() {
                let k3 = enclave.k3_store().get(v).map(K3::fingerprint);
                check(k3 == Some(fp), "a loaded K3 does not match its fingerprint", &v);
            }
        }
        Response::Error(e) => {
            check(e.code == ErrorCode::ReprovisionRequired, "a bad blob gave another error", &e);
            check(enclave.k3_store().is_empty(), "a refused blob loaded something", &e);
        }
        other => violation("unexpected answer to UnsealK3", &other),
    }
}

/// Reports a violated invariant: panicking is how a fuzz harness reports one.
fn check(ok: bool, what: &str, detail: &dyn fmt::Debug) {
    if !ok {
        violation(what, detail);
    }
}

#[cold]
#[allow(clippy::panic, reason = "a panic is how a fuzz harness reports a violated invariant")]
fn violation(what: &str, detail: &dyn fmt::Debug) -> ! {
    panic!("fuzz invariant violated: {what}: {detail:?}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use crate::jwt::verify_token;
    use crate::wallet::WalletKey;
    use alloc::format;
    use base64ct::{Base64UrlUnpadded, Encoding};

    #[test]
    fn tokens_are_genuine_and_described_correctly() {
        let key = BrokerKey::from_sec1(&BROKER_KEY).unwrap();
        for (i, t) in TOKENS.iter().enumerate() {
            let mut parts = t.jwt.split('.');
            let h = Base64UrlUnpadded::decode_vec(parts.next().unwrap()).unwrap();
            let c = Base64UrlUnpadded::decode_vec(parts.next().unwrap()).unwrap();
            assert_eq!((h.as_slice(), c.as_slice()), (HEADER.as_bytes(), t.claims.as_bytes()), "token {i}");
            match verify_token(t.jwt, &key) {
                Ok(claims) => {
                    assert!(t.verifies, "token {i}");
                    assert_eq!((claims.exp, claims.nbf, claims.omni), (t.exp, t.nbf, t.omni), "token {i}");
                }
                Err(e) => assert!(!t.verifies, "token {i}: {e}"),
            }
        }
        assert_eq!(TOKENS[0].exp, A_EXP);
    }

    #[test]
    fn account_addresses_are_the_derived_wallets() {
        let secp = Secp256k1::new();
        let k3 = K3::from_bytes(K3_BYTES);
        for omni in [OMNI_A, OMNI_B] {
            let w = WalletKey::derive(&secp, &k3, KEY_VERSION, &omni).unwrap();
            assert_eq!(Some(w.address()), address(&omni));
        }
        assert_eq!(address(&OMNI_STRANGER), None);
    }

    /// Builds an input of a structured mode.
    fn input(mode: u8, options: u8, sel: u8, extra: &[u8]) -> Vec<u8> {
        let mut v = vec![mode, options, sel];
        v.extend_from_slice(extra);
        v
    }

    fn envelope(body: Request) -> Vec<u8> {
        encode_message(&Envelope { request_id: 9, body }).unwrap()
    }

    fn subject(token: usize) -> Subject {
        let t = &TOKENS[token];
        Subject { token: BrokerToken::new(t.jwt.into()), key_version: KEY_VERSION, omni: t.omni.into() }
    }

    const MAIL: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;

    /// The `enclave_handle` seed corpus: `(file name, input)`.
    fn handle_seeds() -> Vec<(&'static str, Vec<u8>)> {
        let raw = |options: u8, frame: Vec<u8>| [vec![0, options], frame].concat();
        let payload = |options: u8, frame: Vec<u8>| {
            let f = frame::decode(&frame).unwrap();
            [vec![1, options], f.payload.to_vec()].concat()
        };
        let address = envelope(Request::DeriveAddress(DeriveAddress { subject: subject(0) }));
        let eip191 = envelope(Request::SignEip191(SignEip191 { subject: subject(1), message: b"hello".to_vec() }));
        let eip712 = envelope(Request::SignEip712(SignEip712 { subject: subject(0), typed_data: MAIL.into() }));
        let (_, recipient) = kek::recipient_keypair(&[5; 32]);
        let kek = envelope(Request::DeriveKek(DeriveKek {
            subject: subject(0),
            context: b"openai".to_vec(),
            recipient: recipient.into(),
        }));
        let forged = {
            let mut s = subject(0);
            s.token = BrokerToken::new(format!("{}x", TOKENS[0].jwt));
            envelope(Request::DeriveAddress(DeriveAddress { subject: s }))
        };
        let mut kek_input = vec![5u8; 32];
        kek_input.push(0);
        kek_input.extend_from_slice(b"openai");
        vec![
            ("raw-status", raw(0, envelope(Request::Status))),
            ("raw-hello", raw(0, envelope(Request::Hello(sigil_protocol::Hello { min_version: 1, max_version: 3 })))),
            ("raw-derive-address", raw(0, address.clone())),
            ("raw-sign-eip191-replayed", raw(0x08, eip191.clone())),
            ("raw-sign-eip712", raw(0, eip712.clone())),
            ("raw-derive-kek", raw(0, kek.clone())),
            ("raw-forged-token", raw(0, forged)),
            ("raw-garbage", raw(0, b"GET / HTTP/1.1\r\n\r\n".to_vec())),
            ("payload-derive-address-warm", payload(0x10, address)),
            ("payload-sign-eip191", payload(0x01, eip191)),
            ("payload-sign-eip712-small-caches-replayed", payload(0x88, eip712)),
            ("payload-derive-kek", payload(0x00, kek)),
            ("payload-overlong-id", vec![1, 0, 0x80, 0x00, 0x01]),
            ("eip191-a", input(2, 0, 0, b"hello")),
            ("eip191-b-edge-of-window", input(2, 0x01, 1, b"")),
            ("eip191-tampered", input(2, 0, 0x40, &[200, 1, b'h', b'i'])),
            ("eip191-truncated-token", input(2, 0, 0x80, b"hi")),
            ("eip191-key-version", input(2, 0, 0x10, &[2])),
            ("eip191-expired", input(2, 0, 2, b"x")),
            ("eip191-wrong-audience", input(2, 0, 3, b"x")),
            ("eip191-other-account", input(2, 0, 0x04, b"x")),
            ("eip712-mail", input(3, 0, 0, MAIL.as_bytes())),
            ("eip712-mail-b-replayed", input(3, 0x08, 1, MAIL.as_bytes())),
            ("eip712-invalid", input(3, 0, 0, br#"{"types":{}}"#)),
            ("kek", input(4, 0, 0, &kek_input)),
            ("kek-raw-zero-recipient", input(4, 0, 0, &[[0u8; 32].as_slice(), &[1]].concat())),
            ("kek-long-context", input(4, 0, 1, &[[9u8; 32].as_slice(), &[0], &[b'c'; 257]].concat())),
            ("address-b-warm-b-replayed", input(5, 0x38, 1, b"")),
            ("address-a-uncached-warm-replayed", input(5, 0x58, 0, b"")),
        ]
    }

    #[test]
    fn structured_modes_reach_every_operation() {
        type Case<'a> = (&'a [u8], fn(&Response) -> bool);
        let cases: [Case<'_>; 6] = [
            (&input(2, 0, 0, b"hello"), |r| matches!(r, Response::Eip191Signature(_))),
            (&input(3, 0, 1, MAIL.as_bytes()), |r| matches!(r, Response::Eip712Signature(_))),
            (&input(4, 0, 0, &[7; 40]), |r| matches!(r, Response::SealedKek(_))),
            (&input(5, 0xd8, 0, b""), |r| matches!(r, Response::Address(_))),
            (&input(5, 0x02, 1, b""), |r| matches!(r, Response::Error(e) if e.code == ErrorCode::Unauthorized)),
            (&input(2, 0x07, 0, b""), |r| matches!(r, Response::Eip191Signature(_))),
        ];
        for (i, (data, ok)) in cases.into_iter().enumerate() {
            let resp = run(data).unwrap();
            assert!(ok(&resp), "case {i}: {resp:?}");
        }
    }

    #[test]
    fn every_handle_seed_passes_and_most_reach_past_the_decoder() {
        let mut deep = 0;
        for (name, data) in handle_seeds() {
            let resp = run(&data).unwrap_or_else(|| panic!("{name}: not run"));
            if !matches!(&resp, Response::Error(e) if e.code == ErrorCode::MalformedFrame || e.code == ErrorCode::InvalidRequest)
            {
                deep += 1;
            }
        }
        assert!(deep >= 20, "{deep}");
    }

    /// Xorshift mutations of `seeds`: flips, overwrites, truncations, insertions, splices.
    fn mutations(seeds: &[Vec<u8>], n: usize, mut x: u32, mut f: impl FnMut(&[u8])) {
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as usize
        };
        for i in 0..n {
            let mut data = seeds[i % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let len = data.len().max(1);
                let pos = next() % len;
                let byte = next().to_le_bytes()[0];
                match next() % 6 {
                    0 if !data.is_empty() => data[pos] ^= 1 << (byte % 8),
                    1 if !data.is_empty() => data[pos] = byte,
                    2 => data.truncate(pos),
                    3 => data.insert(pos.min(data.len()), byte),
                    4 => {
                        let other = &seeds[next() % seeds.len()];
                        let from = next() % other.len().max(1);
                        data.truncate(pos);
                        data.extend_from_slice(other.get(from..).unwrap_or_default());
                    }
                    _ if !data.is_empty() => data[0] = byte,
                    _ => data.push(byte),
                }
            }
            f(&data);
        }
    }

    #[test]
    fn handle_survives_pseudo_random_mutations_of_the_seeds() {
        let seeds: Vec<Vec<u8>> = handle_seeds().into_iter().map(|(_, d)| d).collect();
        mutations(&seeds, 300, 0x9e37_79b9, handle);
        // And arbitrary bytes behind every mode/option pair shape.
        mutations(&[vec![0; 16], vec![0xff; 64]], 100, 0x1234_5678, handle);
    }

    #[test]
    #[ignore = "generator: cargo test -p sigil-enclave --lib -- --ignored write_sealed_blob_seed"]
    fn write_sealed_blob_seed() {
        let dir = seed_dir("sealed_blob");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("two_epochs"), sealed_blob_seed()).unwrap();
    }

    #[test]
    fn sealed_blob_seed_opens_and_mutations_never_load_garbage() {
        let seed = sealed_blob_seed();
        assert!(!seed.is_empty());
        sealed_blob(&seed);
        mutations(&[seed], 2000, 0x5eed_b10b, sealed_blob);
    }

    #[test]
    fn typed_data_survives_pseudo_random_mutations() {
        let seeds = vec![
            MAIL.as_bytes().to_vec(),
            br#"{"types":{"T":[{"name":"a","type":"uint8[2][]"}]},"primaryType":"T","domain":{},"message":{"a":[[1,2]]}}"#
                .to_vec(),
        ];
        typed_data(MAIL.as_bytes());
        mutations(&seeds, 500, 0xdead_beef, typed_data);
    }

    #[cfg(feature = "std")]
    fn seed_dir(target: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds").join(target)
    }

    #[cfg(feature = "std")]
    fn read_seeds(target: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(seed_dir(target)).unwrap() {
            out.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
        assert!(!out.is_empty(), "empty seed corpus for {target}");
        out
    }

    /// Every file of `fuzz/seeds/enclave_handle/`, and mutations of them.
    #[cfg(feature = "std")]
    #[test]
    fn handle_accepts_the_seed_corpus() {
        let seeds = read_seeds("enclave_handle");
        for s in &seeds {
            handle(s);
        }
        mutations(&seeds, 100, 0x0bad_f00d, handle);
    }

    /// Every file of `fuzz/seeds/typed_data/`, and mutations of them.
    #[cfg(feature = "std")]
    #[test]
    fn typed_data_accepts_the_seed_corpus() {
        let seeds = read_seeds("typed_data");
        for s in &seeds {
            typed_data(s);
        }
        mutations(&seeds, 300, 0x5eed_5eed, typed_data);
    }

    /// Rewrites `fuzz/seeds/{enclave_handle,typed_data}/`:
    /// `cargo test -p sigil-enclave --lib fuzzing -- --ignored write_fuzz_seeds`.
    #[cfg(feature = "std")]
    #[test]
    #[ignore = "writes the seed corpus"]
    fn write_fuzz_seeds() {
        let dir = seed_dir("enclave_handle");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in handle_seeds() {
            std::fs::write(dir.join(name), data).unwrap();
        }
        let dir = seed_dir("typed_data");
        std::fs::create_dir_all(&dir).unwrap();
        let text = include_str!("../tests/vectors/eip712.json");
        let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
        for (kind, prefix) in [("valid", ""), ("invalid", "invalid-")] {
            for entry in fixture[kind].as_array().unwrap() {
                let doc = match entry.get("typed_data_json") {
                    Some(raw) => String::from(raw.as_str().unwrap()),
                    None => serde_json::to_string(&entry["typed_data"]).unwrap(),
                };
                let name = entry["name"].as_str().unwrap();
                std::fs::write(dir.join(format!("{prefix}{name}.json")), doc).unwrap();
            }
        }
    }

    /// Mints a fresh broker key and the four tokens, printed as the constants above (the
    /// private key is not kept). Only needed if the token claims change.
    #[cfg(feature = "std")]
    #[test]
    #[ignore = "prints new constants"]
    fn mint_fuzz_tokens() {
        use ring::rand::SystemRandom;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point: Vec<String> = key.public_key().as_ref().iter().map(|b| format!("{b:#04x}")).collect();
        std::println!("const BROKER_KEY: [u8; 65] = [{}];", point.join(", "));
        for t in &TOKENS {
            let input = format!(
                "{}.{}",
                Base64UrlUnpadded::encode_string(HEADER.as_bytes()),
                Base64UrlUnpadded::encode_string(t.claims.as_bytes())
            );
            let sig = key.sign(&rng, input.as_bytes()).unwrap();
            std::println!("jwt: \"{input}.{}\",", Base64UrlUnpadded::encode_string(sig.as_ref()));
        }
    }
}
