//! In-enclave verification of the broker's JWT.
//!
//! The host checks the token too, but the host is untrusted: the enclave authorises every
//! K3 use itself, against a broker key that is part of its own configuration.
//!
//! Rules (SPEC §2): compact JWS, `alg` exactly `ES256` whatever else the header says (no
//! `none`, HS*, RS*…), no `crit`; signature verified with the pinned P-256 key; `aud` (string
//! or array) contains `agentkeys:broker`; `exp` required and `nbf` honoured, both with 60 s
//! leeway; `agentkeys.omni_account` equals the request's account. Any failure is
//! `unauthorized`; the variant says why, for logs.
//!
//! Verification is split in two so that a cache can skip the expensive part:
//! [`verify_token`] checks everything that depends only on the token (signature, header,
//! audience, claim shapes) and returns [`Claims`]; [`Claims::authorize`] checks what depends
//! on the request and the clock, and runs on every use.

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use core::fmt;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

use crate::json::{self, Value};

/// Audience a broker token must carry.
pub const AUDIENCE: &str = "agentkeys:broker";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;
/// Longest token accepted; checked before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// DER prefix of a P-256 `SubjectPublicKeyInfo` holding an uncompressed point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The broker's pinned ES256 public key (an uncompressed SEC1 P-256 point).
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerKey([u8; 65]);

/// Why a broker key file was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerKeyError {
    /// Not a `-----BEGIN PUBLIC KEY-----` PEM block with valid base64.
    #[error("broker key is not a PEM 'PUBLIC KEY' block")]
    Pem,
    /// Not a P-256 SubjectPublicKeyInfo with an uncompressed point.
    #[error("broker key is not an uncompressed P-256 SubjectPublicKeyInfo")]
    NotP256,
}

impl BrokerKey {
    /// The uncompressed SEC1 point (public).
    #[must_use]
    pub const fn sec1(&self) -> &[u8; 65] {
        &self.0
    }

    /// From a 65-byte uncompressed SEC1 point (`0x04 || X || Y`).
    ///
    /// # Errors
    /// [`BrokerKeyError::NotP256`] for any other length or prefix.
    pub fn from_sec1(point: &[u8]) -> Result<Self, BrokerKeyError> {
        let p: [u8; 65] = point.try_into().map_err(|_| BrokerKeyError::NotP256)?;
        if p[0] != 0x04 {
            return Err(BrokerKeyError::NotP256);
        }
        Ok(Self(p))
    }

    /// From DER `SubjectPublicKeyInfo`.
    ///
    /// # Errors
    /// [`BrokerKeyError::NotP256`].
    pub fn from_spki_der(der: &[u8]) -> Result<Self, BrokerKeyError> {
        let point = der.strip_prefix(&P256_SPKI_PREFIX[..]).ok_or(BrokerKeyError::NotP256)?;
        Self::from_sec1(point)
    }

    /// From a PEM `PUBLIC KEY` block (what `openssl ec -pubout` and the broker publish).
    ///
    /// # Errors
    /// [`BrokerKeyError`].
    pub fn from_spki_pem(pem: &str) -> Result<Self, BrokerKeyError> {
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|s| s.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or(BrokerKeyError::Pem)?;
        let b64: alloc::string::String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        // A P-256 SPKI is 91 bytes; anything much longer is not one.
        if b64.len() > 256 {
            return Err(BrokerKeyError::NotP256);
        }
        let der = Base64::decode_vec(&b64).map_err(|_| BrokerKeyError::Pem)?;
        Self::from_spki_der(&der)
    }

    /// The SEC1 point.
    #[must_use]
    pub const fn as_sec1(&self) -> &[u8; 65] {
        &self.0
    }
}

impl fmt::Debug for BrokerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerKey({:?})", sigil_protocol::Bytes(self.0))
    }
}

/// Why a token does not authorise a request. All map to `unauthorized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// Not three base64url segments of JSON objects.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not `ES256`.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header has a `crit` parameter (no extension is understood).
    #[error("token has critical header parameters")]
    CriticalHeader,
    /// The signature does not verify under the pinned broker key.
    #[error("token signature invalid")]
    BadSignature,
    /// `aud` is missing or does not include `agentkeys:broker`.
    #[error("token audience not accepted")]
    WrongAudience,
    /// `exp` is missing or not a NumericDate.
    #[error("token has no valid exp")]
    MissingExpiry,
    /// `nbf` is present but not a NumericDate.
    #[error("token nbf malformed")]
    MalformedNotBefore,
    /// `exp` + leeway is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` − leeway is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `agentkeys.omni_account` is missing or not 64 hex digits.
    #[error("token has no valid omni_account claim")]
    MissingOmniClaim,
    /// The claim names another account than the request.
    #[error("token is for another account")]
    OmniMismatch,
}

/// The parts of a verified token that depend on the request and the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// `exp`, seconds since the epoch.
    pub exp: u64,
    /// `nbf`, if present.
    pub nbf: Option<u64>,
    /// `agentkeys.omni_account`.
    pub omni: [u8; 32],
}

impl Claims {
    /// Checks time validity at `now` and that the token is for `omni`.
    ///
    /// # Errors
    /// [`JwtError::Expired`], [`JwtError::NotYetValid`], [`JwtError::OmniMismatch`].
    pub fn authorize(&self, now: u64, omni: &[u8; 32]) -> Result<(), JwtError> {
        check_time(self.exp, self.nbf, now)?;
        if !ct_eq(&self.omni, omni) {
            return Err(JwtError::OmniMismatch);
        }
        Ok(())
    }

    /// [`Claims::authorize`] against an account as the client wrote it (the plain HTTP
    /// routes): the claim's hex and `omni_text` are compared case-insensitively, before the
    /// text's own format is validated (SPEC §2 check order). A text that is not 64 hex digits
    /// cannot equal a valid claim, so it is a mismatch here.
    ///
    /// # Errors
    /// As [`Claims::authorize`].
    pub fn authorize_text(&self, now: u64, omni_text: &str) -> Result<(), JwtError> {
        check_time(self.exp, self.nbf, now)?;
        let mut omni = [0u8; 32];
        if omni_text.len() != 64 || hex::decode_to_slice(omni_text, &mut omni).is_err() {
            return Err(JwtError::OmniMismatch);
        }
        if !ct_eq(&self.omni, &omni) {
            return Err(JwtError::OmniMismatch);
        }
        Ok(())
    }
}

/// A verified token whose `agentkeys.omni_account` claim is kept as the string the broker
/// wrote, valid hex or not.
///
/// The plain HTTP routes need it: there, a token whose claim matches the body's malformed
/// account passes the JWT check and the request then fails with `invalid_omni_account`, as
/// with the signer sigil replaces. Everything else uses [`Claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextClaims {
    /// `exp`, seconds since the epoch.
    pub exp: u64,
    /// `nbf`, if present.
    pub nbf: Option<u64>,
    /// `agentkeys.omni_account`, verbatim.
    pub omni_account: alloc::string::String,
}

impl TextClaims {
    /// The [`Claims`] of this token.
    ///
    /// # Errors
    /// [`JwtError::MissingOmniClaim`] when the claim is not 64 hex digits.
    pub fn to_claims(&self) -> Result<Claims, JwtError> {
        let mut omni = [0u8; 32];
        if self.omni_account.len() != 64 || hex::decode_to_slice(&self.omni_account, &mut omni).is_err() {
            return Err(JwtError::MissingOmniClaim);
        }
        Ok(Claims { exp: self.exp, nbf: self.nbf, omni })
    }

    /// Checks time validity at `now` and that the claim equals `omni_text`, ASCII
    /// case-insensitively.
    ///
    /// # Errors
    /// [`JwtError::Expired`], [`JwtError::NotYetValid`], [`JwtError::OmniMismatch`].
    pub fn authorize_text(&self, now: u64, omni_text: &str) -> Result<(), JwtError> {
        check_time(self.exp, self.nbf, now)?;
        if !self.omni_account.eq_ignore_ascii_case(omni_text) {
            return Err(JwtError::OmniMismatch);
        }
        Ok(())
    }
}

/// `exp` and `nbf` at `now`, each with [`LEEWAY_SECS`].
fn check_time(exp: u64, nbf: Option<u64>, now: u64) -> Result<(), JwtError> {
    if exp.saturating_add(LEEWAY_SECS) < now {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(LEEWAY_SECS)
    {
        return Err(JwtError::NotYetValid);
    }
    Ok(())
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies everything about `token` that does not depend on the request or the clock.
///
/// # Errors
/// A [`JwtError`] naming the first failed check.
pub fn verify_token(token: &str, key: &BrokerKey) -> Result<Claims, JwtError> {
    verify_token_text(token, key)?.to_claims()
}

/// [`verify_token`] without the account claim's format check: the claim must be a string,
/// of any content (see [`TextClaims`]).
///
/// # Errors
/// A [`JwtError`] naming the first failed check.
pub fn verify_token_text(token: &str, key: &BrokerKey) -> Result<TextClaims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };

    // Header first: refuse other algorithms before spending a signature check on them.
    let header = decode_json(h64)?;
    let header = header.as_object().ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(JwtError::AlgorithmNotAllowed);
    }
    if header.get("crit").is_some() {
        return Err(JwtError::CriticalHeader);
    }

    let mut sig = [0u8; 64];
    match Base64UrlUnpadded::decode(s64, &mut sig) {
        Ok(s) if s.len() == 64 => {}
        _ => return Err(JwtError::BadSignature),
    }
    let signing_input = token.get(..h64.len() + 1 + p64.len()).ok_or(JwtError::Malformed)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.as_sec1())
        .verify(signing_input.as_bytes(), &sig)
        .map_err(|_| JwtError::BadSignature)?;

    let claims = decode_json(p64)?;
    let claims = claims.as_object().ok_or(JwtError::Malformed)?;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(s)) => s == AUDIENCE,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::WrongAudience);
    }
    let exp = claims.get("exp").and_then(Value::as_number).and_then(numeric_date).ok_or(JwtError::MissingExpiry)?;
    let nbf = match claims.get("nbf") {
        None => None,
        Some(v) => Some(v.as_number().and_then(numeric_date).ok_or(JwtError::MalformedNotBefore)?),
    };
    let omni_hex = claims
        .get("agentkeys")
        .and_then(Value::as_object)
        .and_then(|a| a.get("omni_account"))
        .and_then(Value::as_str)
        .ok_or(JwtError::MissingOmniClaim)?;
    Ok(TextClaims { exp, nbf, omni_account: omni_hex.into() })
}

fn decode_json(segment: &str) -> Result<Value, JwtError> {
    let bytes = Base64UrlUnpadded::decode_vec(segment).map_err(|_| JwtError::Malformed)?;
    let text = core::str::from_utf8(&bytes).map_err(|_| JwtError::Malformed)?;
    json::parse(text).map_err(|_| JwtError::Malformed)
}

/// A JSON number as whole seconds since the epoch. NumericDate may carry a fraction, which is
/// truncated; negative, exponent or out-of-range values are rejected.
fn numeric_date(lit: &str) -> Option<u64> {
    let int = match lit.split_once('.') {
        Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => int,
        Some(_) => return None,
        None => lit,
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    int.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date("1700000000"), Some(1_700_000_000));
        assert_eq!(numeric_date("1700000000.75"), Some(1_700_000_000));
        assert_eq!(numeric_date("-1"), None);
        assert_eq!(numeric_date("1e9"), None);
        assert_eq!(numeric_date("1."), None);
        assert_eq!(numeric_date("99999999999999999999999"), None);
    }

    #[test]
    fn authorize_applies_leeway_both_ways() {
        let c = Claims { exp: 1000, nbf: Some(500), omni: [1; 32] };
        assert_eq!(c.authorize(1060, &[1; 32]), Ok(()));
        assert_eq!(c.authorize(1061, &[1; 32]), Err(JwtError::Expired));
        assert_eq!(c.authorize(440, &[1; 32]), Ok(()));
        assert_eq!(c.authorize(439, &[1; 32]), Err(JwtError::NotYetValid));
        assert_eq!(c.authorize(800, &[2; 32]), Err(JwtError::OmniMismatch));
    }

    #[test]
    fn text_comparisons_ignore_case_before_the_format() {
        let c = Claims { exp: 1000, nbf: None, omni: [0xab; 32] };
        let lower = "ab".repeat(32);
        assert_eq!(c.authorize_text(900, &lower), Ok(()));
        assert_eq!(c.authorize_text(900, &lower.to_ascii_uppercase()), Ok(()));
        assert_eq!(c.authorize_text(900, &"ab".repeat(31)), Err(JwtError::OmniMismatch));
        assert_eq!(c.authorize_text(900, &"cd".repeat(32)), Err(JwtError::OmniMismatch));
        assert_eq!(c.authorize_text(2000, &lower), Err(JwtError::Expired));

        let t = TextClaims { exp: 1000, nbf: Some(500), omni_account: "xYz".into() };
        assert_eq!(t.to_claims(), Err(JwtError::MissingOmniClaim));
        assert_eq!(t.authorize_text(900, "XyZ"), Ok(()));
        assert_eq!(t.authorize_text(900, "xyz "), Err(JwtError::OmniMismatch));
        assert_eq!(t.authorize_text(400, "xyz"), Err(JwtError::NotYetValid));
        let t = TextClaims { exp: 1000, nbf: None, omni_account: "AB".repeat(32) };
        assert_eq!(t.to_claims(), Ok(Claims { exp: 1000, nbf: None, omni: [0xab; 32] }));
    }

    #[test]
    fn broker_key_rejects_non_p256() {
        assert_eq!(BrokerKey::from_spki_pem("nope"), Err(BrokerKeyError::Pem));
        assert_eq!(BrokerKey::from_sec1(&[4; 64]), Err(BrokerKeyError::NotP256));
        assert_eq!(BrokerKey::from_sec1(&[2; 65]), Err(BrokerKeyError::NotP256));
        // An Ed25519 SPKI.
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
        assert_eq!(BrokerKey::from_spki_pem(ed), Err(BrokerKeyError::NotP256));
    }
}
