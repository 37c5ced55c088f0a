//! The plain agentKeys `/dev/*` routes (SPEC §2), answered inside the enclave.
//!
//! The host relays the HTTP body it received ([`DevCall`]) and returns the body produced here
//! verbatim, with the enclave's Ed25519 signature over
//! [`dev_response_signed_bytes`]`(path, request body, status, response body)`. For that
//! signature to mean anything, this module — not the untrusted host — must read the exact
//! bytes the client sent and write the exact bytes the client receives.
//!
//! Compatibility: answers are byte-identical to what the host produced before the enclave
//! took this over (and to the signer sigil replaces): same fields and field order, same
//! codes, messages and check order — body parse (400) → JWT (401) → provisioned (503) →
//! `message_hex` (400) → `omni_account` (400) → the operation. The body is read as
//! `serde_json` reads the host's request structs (unknown members ignored, known ones must
//! appear once with the right type, `typed_data` taken as its raw JSON text), so that no
//! request a client could send is judged differently here than by the host's own early check.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use sha2::{Digest, Sha256};
use sigil_protocol::{
    BrokerToken, Bytes, DevCall, DevResponse, DevRoute, ErrorCode, OmniAccount, Response, Subject,
    dev_response_signed_bytes,
};

use super::Enclave;
use crate::env::Env;
use crate::error::Error;
use crate::json::{self, Value};
use crate::jwt;
use crate::{eip191, eip712};

/// The K3 epoch the plain routes sign with: the replaced signer's only one (the host's
/// `COMPAT_KEY_VERSION`).
const DEV_KEY_VERSION: u8 = 1;

impl Enclave {
    /// Serves one `/dev/*` call: parses the client's body, answers, signs the answer.
    ///
    /// Every outcome of the route itself, errors included, is a signed
    /// [`Response::DevResponse`]; `Err` only when the response cannot be signed (no entropy
    /// for the signing key).
    pub(super) fn dev_call(&mut self, call: &DevCall, env: &mut impl Env) -> Result<Response, Error> {
        let (status, body) = match self.dev_answer(call, env) {
            Ok(body) => (200, body),
            Err(e) => (e.code.http_status(), error_envelope(e.code, &e.message)),
        };
        let signed = dev_response_signed_bytes(call.route.path(), &call.body, status, &body);
        let signature = self.sign_response(&signed, env)?;
        Ok(Response::DevResponse(DevResponse { status, body, signature: Bytes(signature) }))
    }

    /// The 200 body of `call`, or why there is none.
    fn dev_answer(&mut self, call: &DevCall, env: &mut impl Env) -> Result<Vec<u8>, DevError> {
        let shape = match call.route {
            DevRoute::DeriveAddress => Shape::DeriveAddress,
            DevRoute::SignMessage => Shape::SignMessage,
            DevRoute::SignTypedData => Shape::SignTypedData,
            // A route added to the protocol before this enclave learnt to serve it.
            _ => return Err(DevError::new(ErrorCode::NotFound, "no such route")),
        };
        let fields = read_body(&call.body, shape)?;
        self.dev_authorize(&call.token, &fields.omni_account, env.unix_time())?;
        if self.k3.get(DEV_KEY_VERSION).is_none() {
            return Err(Error::NotProvisioned.into());
        }
        match shape {
            Shape::DeriveAddress => {
                let subject = dev_subject(&call.token, &fields.omni_account)?;
                let address = self.with_wallet(&subject, env, |_, w| Ok(w.address()))?;
                let mut out = JsonObject::new();
                out.hex("address", &address);
                out.number("key_version", subject.key_version);
                Ok(out.finish())
            }
            Shape::SignMessage => {
                let message = parse_message_hex(fields.message_hex.as_deref().unwrap_or_default())?;
                let subject = dev_subject(&call.token, &fields.omni_account)?;
                let (signature, address) = self.sign(&subject, &eip191::digest(&message), env)?;
                let mut out = JsonObject::new();
                out.hex("signature", &signature);
                out.hex("address", &address);
                out.number("key_version", subject.key_version);
                Ok(out.finish())
            }
            Shape::SignTypedData => {
                let subject = dev_subject(&call.token, &fields.omni_account)?;
                let typed_data = fields.typed_data.unwrap_or_default();
                if !typed_data.starts_with('{') {
                    return Err(DevError::new(ErrorCode::InvalidRequest, "typed_data must be a JSON object"));
                }
                // The raw text as the client wrote it, exactly what the host used to pass on.
                let hashes = eip712::hash_typed_data(typed_data).map_err(Error::from)?;
                let (signature, address) = self.sign(&subject, &hashes.digest, env)?;
                let mut out = JsonObject::new();
                out.hex("signature", &signature);
                out.hex("address", &address);
                out.hex("primary_type_hash", &hashes.primary_type_hash);
                out.hex("domain_separator", &hashes.domain_separator);
                out.hex("digest", &hashes.digest);
                out.number("key_version", subject.key_version);
                Ok(out.finish())
            }
        }
    }

    /// The broker JWT against the account *as the client wrote it* (SPEC §2: the claim and
    /// the body's `omni_account` compared case-insensitively, before the account's format is
    /// checked). Shares the token cache with [`Enclave::authorize`].
    fn dev_authorize(&mut self, token: &BrokerToken, omni_text: &str, now: u64) -> Result<(), Error> {
        let token = token.expose();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(c) = self.jwt_cache.get(&key) {
            return Ok(c.authorize_text(now, omni_text)?);
        }
        let verified = jwt::verify_token_text(token, &self.config.broker_key)?;
        match verified.to_claims() {
            Ok(c) => {
                self.jwt_cache.insert(key, c);
                Ok(c.authorize_text(now, omni_text)?)
            }
            // A claim that is not an account id: it may still equal the body's text, which
            // then fails its own format check (400, not 401). Not cached: such a token can
            // never authorise a signature.
            Err(_) => Ok(verified.authorize_text(now, omni_text)?),
        }
    }
}

/// Which request struct the body is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `{"omni_account"}`.
    DeriveAddress,
    /// `{"omni_account","message_hex"}`.
    SignMessage,
    /// `{"omni_account","typed_data"}`.
    SignTypedData,
}

/// A route's failure: the stable code (which fixes the HTTP status) and the message of the
/// JSON envelope. Messages never contain the token or key material.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DevError {
    code: ErrorCode,
    message: Cow<'static, str>,
}

impl DevError {
    const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self { code, message: Cow::Borrowed(message) }
    }

    fn malformed(detail: &str) -> Self {
        Self { code: ErrorCode::InvalidRequest, message: Cow::Owned(format!("malformed request: {detail}")) }
    }
}

impl From<Error> for DevError {
    fn from(e: Error) -> Self {
        match e {
            // The HTTP routes have always said just why the token was refused.
            Error::Unauthorized(j) => Self { code: ErrorCode::Unauthorized, message: Cow::Owned(j.to_string()) },
            other => Self { code: other.code(), message: Cow::Owned(other.to_string()) },
        }
    }
}

/// The subject of a request whose JWT has passed: the account must now be 64 hex digits.
fn dev_subject(token: &BrokerToken, omni_text: &str) -> Result<Subject, DevError> {
    let mut omni = [0u8; 32];
    if omni_text.len() != 64 || hex::decode_to_slice(omni_text, &mut omni).is_err() {
        return Err(DevError::new(ErrorCode::InvalidOmniAccount, "omni_account must be 64 hex characters"));
    }
    Ok(Subject { token: token.clone(), key_version: DEV_KEY_VERSION, omni: OmniAccount::from(omni) })
}

/// Even-length hex, one leading `0x` tolerated, empty allowed.
fn parse_message_hex(s: &str) -> Result<Vec<u8>, DevError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map_err(|_| DevError::new(ErrorCode::InvalidMessageHex, "message_hex must be even-length hex"))
}

// ---------------------------------------------------------------------------------------
// Reading the request body

/// The members of a request body this route knows.
#[derive(Debug, Default)]
struct Fields<'a> {
    omni_account: String,
    message_hex: Option<String>,
    /// Raw JSON text of the value, from its first to its last byte.
    typed_data: Option<&'a str>,
}

/// Reads `body` as the route's request object, as `serde_json` reads the host's
/// `#[derive(Deserialize)]` structs: members in any order, unknown ones skipped (their
/// values need only be well-formed JSON), every known one exactly once, string members
/// decoded strictly (UTF-8, escapes, no lone surrogates), `typed_data` kept as raw text
/// (any well-formed JSON value in UTF-8: EIP-712 validation comes later, with its own
/// code), nothing after the object but whitespace.
fn read_body(body: &[u8], shape: Shape) -> Result<Fields<'_>, DevError> {
    let mut s = Scanner { b: body, pos: 0 };
    s.ws();
    if s.next() != Some(b'{') {
        return Err(DevError::malformed("the body must be a JSON object"));
    }
    let mut omni_account = None;
    let mut message_hex = None;
    let mut typed_data = None;
    s.ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.ws();
            let key = s.key()?;
            s.ws();
            let start = s.pos;
            s.value()?;
            let raw = body.get(start..s.pos).ok_or_else(syntax)?;
            match (shape, key.as_str()) {
                (_, "omni_account") => set_once(&mut omni_account, "omni_account", string_value(raw, "omni_account")?)?,
                (Shape::SignMessage, "message_hex") => {
                    set_once(&mut message_hex, "message_hex", string_value(raw, "message_hex")?)?;
                }
                (Shape::SignTypedData, "typed_data") => {
                    let text = core::str::from_utf8(raw).map_err(|_| DevError::malformed("typed_data is not UTF-8"))?;
                    set_once(&mut typed_data, "typed_data", text)?;
                }
                _ => {}
            }
            s.ws();
            match s.next() {
                Some(b',') => {}
                Some(b'}') => break,
                _ => return Err(syntax()),
            }
        }
    }
    s.ws();
    if s.pos != body.len() {
        return Err(DevError::malformed("trailing characters after the JSON object"));
    }
    let missing = |name: &str| DevError::malformed(&format!("missing field `{name}`"));
    let omni_account = omni_account.ok_or_else(|| missing("omni_account"))?;
    match shape {
        Shape::DeriveAddress => {}
        Shape::SignMessage if message_hex.is_none() => return Err(missing("message_hex")),
        Shape::SignTypedData if typed_data.is_none() => return Err(missing("typed_data")),
        Shape::SignMessage | Shape::SignTypedData => {}
    }
    Ok(Fields { omni_account, message_hex, typed_data })
}

fn syntax() -> DevError {
    DevError::malformed("invalid JSON")
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), DevError> {
    if slot.is_some() {
        return Err(DevError::malformed(&format!("duplicate field `{name}`")));
    }
    *slot = Some(value);
    Ok(())
}

/// A member value that must be a JSON string, decoded with the enclave's strict parser.
fn string_value(raw: &[u8], name: &str) -> Result<String, DevError> {
    let text = core::str::from_utf8(raw).map_err(|_| DevError::malformed(&format!("`{name}` is not UTF-8")))?;
    match json::parse(text) {
        Ok(Value::String(s)) => Ok(s),
        Ok(_) => Err(DevError::malformed(&format!("`{name}` must be a string"))),
        Err(e) => Err(DevError::malformed(&format!("`{name}`: {e}"))),
    }
}

/// A cursor over the body that checks JSON syntax (RFC 8259) while skipping values, the way
/// `serde_json` checks the members it ignores: no duplicate-key, surrogate or depth rules
/// (those belong to whoever interprets the value) and no UTF-8 check outside decoded strings.
/// Iterative, so hostile nesting costs one byte of heap per level, never native stack.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// An object key (decoded strictly, like `serde_json` decodes a field name) and its `:`.
    fn key(&mut self) -> Result<String, DevError> {
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(syntax());
        }
        self.string()?;
        let raw = self.b.get(start..self.pos).ok_or_else(syntax)?;
        let key = string_value(raw, "key")?;
        self.ws();
        if self.next() != Some(b':') {
            return Err(syntax());
        }
        Ok(key)
    }

    /// A string from its opening quote: escapes well-formed, no raw control characters.
    fn string(&mut self) -> Result<(), DevError> {
        self.pos += 1;
        loop {
            match self.next().ok_or_else(syntax)? {
                b'"' => return Ok(()),
                b'\\' => match self.next().ok_or_else(syntax)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            if !self.next().is_some_and(|c| c.is_ascii_hexdigit()) {
                                return Err(syntax());
                            }
                        }
                    }
                    _ => return Err(syntax()),
                },
                0..0x20 => return Err(syntax()),
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), DevError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next() {
            Some(b'0') => {
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(syntax());
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(syntax()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(syntax());
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(syntax());
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), DevError> {
        let end = self.pos.saturating_add(word.len());
        if self.b.get(self.pos..end) != Some(word) {
            return Err(syntax());
        }
        self.pos = end;
        Ok(())
    }

    /// One complete value, whitespace before it skipped.
    fn value(&mut self) -> Result<(), DevError> {
        // The open containers: `[` or `{`.
        let mut open: Vec<u8> = Vec::new();
        loop {
            self.ws();
            match self.peek().ok_or_else(syntax)? {
                c @ (b'[' | b'{') => {
                    self.pos += 1;
                    self.ws();
                    let close = if c == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        if c == b'{' {
                            self.key()?;
                        }
                        open.push(c);
                        continue;
                    }
                }
                b'"' => self.string()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(syntax()),
            }
            // A value is complete: close every container that ends here.
            loop {
                let Some(&top) = open.last() else { return Ok(()) };
                self.ws();
                match (self.next(), top) {
                    (Some(b','), b'[') => break,
                    (Some(b','), _) => {
                        self.ws();
                        self.key()?;
                        break;
                    }
                    (Some(b']'), b'[') | (Some(b'}'), b'{') => {
                        open.pop();
                    }
                    _ => return Err(syntax()),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writing the response body

/// A flat JSON object written exactly as `serde_json` writes the host's response structs:
/// compact, members in declaration order.
struct JsonObject(String);

impl JsonObject {
    fn new() -> Self {
        Self(String::from("{"))
    }

    fn key(&mut self, name: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_json_string(&mut self.0, name);
        self.0.push(':');
    }

    /// `"0x" + lowercase hex`.
    fn hex(&mut self, name: &str, bytes: &[u8]) {
        self.key(name);
        self.0.push_str("\"0x");
        self.0.push_str(&hex::encode(bytes));
        self.0.push('"');
    }

    fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        push_json_string(&mut self.0, value);
    }

    fn number(&mut self, name: &str, value: u8) {
        self.key(name);
        // Writing into a String cannot fail.
        let _ = write!(self.0, "{value}");
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.push('}');
        self.0.into_bytes()
    }
}

/// The SPEC §2 error envelope `{"error":"<code>","message":"<text>"}`.
fn error_envelope(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = JsonObject::new();
    out.string("error", code.http_code());
    out.string("message", message);
    out.finish()
}

/// A JSON string with `serde_json`'s escaping: `"` and `\`, the short forms `\b \f \n \r \t`,
/// `\u00xx` (lowercase hex) for the other control characters, everything else verbatim.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    fn read(body: &str, shape: Shape) -> Result<Fields<'_>, DevError> {
        read_body(body.as_bytes(), shape)
    }

    const O: &str = "abababababababababababababababababababababababababababababababab";

    #[test]
    fn reads_the_route_fields() {
        let body = format!(r#"{{"omni_account":"{O}"}}"#);
        assert_eq!(read(&body, Shape::DeriveAddress).unwrap().omni_account, O);
        let body = format!(r#" {{ "message_hex" : "0x00", "omni_account":"{O}" }} "#);
        assert_eq!(read(&body, Shape::SignMessage).unwrap().message_hex.as_deref(), Some("0x00"));
        // Escapes are decoded in string members and in keys.
        let f = read(r#"{"omni\u005faccount":"a\u0062"}"#, Shape::DeriveAddress).unwrap();
        assert_eq!(f.omni_account, "ab");
    }

    #[test]
    fn typed_data_is_the_raw_text() {
        let body = format!("{{\"omni_account\":\"{O}\",\"typed_data\": \n {{ \"a\" : [1, 2.5e3, \"x\\u0041\"] }} \n}}");
        let f = read(&body, Shape::SignTypedData).unwrap();
        assert_eq!(f.typed_data, Some(r#"{ "a" : [1, 2.5e3, "x\u0041"] }"#));
        // What serde_json's RawValue accepts and EIP-712 later refuses is not a body error:
        // duplicate keys, lone surrogates, any depth, any JSON type.
        for td in
            [r#"{"a":1,"a":2}"#, r#"{"s":"\ud800"}"#, &format!("{}{}", "[".repeat(200), "]".repeat(200)), "\"{}\""]
        {
            let body = format!(r#"{{"omni_account":"{O}","typed_data":{td}}}"#);
            assert_eq!(read(&body, Shape::SignTypedData).unwrap().typed_data, Some(td), "{td}");
        }
    }

    #[test]
    fn unknown_members_are_skipped_but_must_be_json() {
        let ok = format!(
            r#"{{"x":{{"y":[{{}},[],null,true,false,-0.5E-2,"\u00e9",{{"y":1,"y":2}}]}},"omni_account":"{O}","message_hex":"zz"}}"#
        );
        let f = read(&ok, Shape::DeriveAddress).unwrap();
        assert_eq!(f.omni_account, O);
        // Invalid UTF-8 inside an ignored string is not looked at (serde_json neither).
        let mut raw = format!(r#"{{"omni_account":"{O}","x":""#).into_bytes();
        raw.extend_from_slice(&[0xff, b'"', b'}']);
        assert!(read_body(&raw, Shape::DeriveAddress).is_ok());
        for bad in [
            r#"[1,]"#,
            r#"{"a":1,}"#,
            "tru",
            "01",
            "1.",
            "-",
            r#""\x""#,
            r#""\u12g4""#,
            "\"a\nb\"",
            "[1 2]",
            "{1:2}",
            "{\"a\" 1}",
        ] {
            let body = format!(r#"{{"omni_account":"{O}","x":{bad}}}"#);
            let e = read(&body, Shape::DeriveAddress).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn body_errors_are_invalid_request() {
        let cases = [
            String::new(),
            "{".into(),
            "not json".into(),
            "[]".into(),
            "{}".into(),
            "null".into(),
            format!(r#"{{"omni_account":"{O}"}} x"#),
            format!(r#"{{"omni_account":"{O}"}}{{}}"#),
            r#"{"omni_account":null}"#.into(),
            r#"{"omni_account":5}"#.into(),
            r#"{"omni_account":["a"]}"#.into(),
            r#"{"omni_account":"\ud800"}"#.into(),
            format!(r#"{{"omni_account":"{O}","omni_account":"{O}"}}"#),
            format!(r#"{{"omni_account":"{O}",}}"#),
            r#"{"\ud800":1,"omni_account":"a"}"#.into(),
        ];
        for body in &cases {
            let e = read(body, Shape::DeriveAddress).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{body}");
            assert!(e.message.starts_with("malformed request: "), "{}", e.message);
        }
        assert!(read(&format!(r#"{{"omni_account":"{O}"}}"#), Shape::SignMessage).is_err());
        assert!(read(&format!(r#"{{"omni_account":"{O}","message_hex":0}}"#), Shape::SignMessage).is_err());
        assert!(read(&format!(r#"{{"omni_account":"{O}"}}"#), Shape::SignTypedData).is_err());
        let dup = format!(r#"{{"omni_account":"{O}","typed_data":{{}},"typed_data":{{}}}}"#);
        assert!(read(&dup, Shape::SignTypedData).is_err());
        // A member another route knows is just an unknown member here.
        let body = format!(r#"{{"omni_account":"{O}","typed_data":{{}},"typed_data":{{}}}}"#);
        assert!(read(&body, Shape::DeriveAddress).is_ok());
    }

    #[test]
    fn hostile_nesting_is_bounded() {
        let body = format!(r#"{{"omni_account":"{O}","x":{}}}"#, "[".repeat(100_000));
        assert!(read(&body, Shape::DeriveAddress).is_err());
        let body = format!(r#"{{"omni_account":"{O}","x":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(read(&body, Shape::DeriveAddress).is_ok());
    }

    #[test]
    fn json_output_matches_serde_json() {
        let mut o = JsonObject::new();
        o.hex("address", &[0xab, 0x01]);
        o.number("key_version", 1);
        assert_eq!(o.finish(), br#"{"address":"0xab01","key_version":1}"#);
        let all: String = (0u32..0x80).filter_map(char::from_u32).chain(['é', '中', '😀', '\u{2028}']).collect();
        let env = error_envelope(ErrorCode::UnknownKeyVersion, &all);
        let expected = serde_json::to_vec(&serde_json::json!({"error": "signer_disabled", "message": all})).unwrap();
        // serde_json's map is sorted; "error" < "message" keeps the order the same.
        assert_eq!(String::from_utf8(env).unwrap(), String::from_utf8(expected).unwrap());
    }
}
