//! The host's broker-JWT check, done with `jsonwebtoken` before anything reaches the enclave.
//!
//! The enclave verifies every token again with its own code (ring) against its own pinned
//! key; two independent implementations mean a bug in one does not open the signer. This
//! check exists so that unauthenticated traffic never costs the enclave anything.
//!
//! Verified tokens are cached (bounded, first-in-first-out eviction), keyed by a keyed
//! SipHash of the token and confirmed by a constant-time comparison with the stored token
//! (zeroized on eviction); expiry, `nbf` and the account binding are checked again on every
//! use. (SipHash rather than SHA-256: this CPU has no SHA extensions, and the enclave already
//! pays for one SHA-256 of every token.)

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::hash::{BuildHasher, RandomState};

use sigil_protocol::ErrorCode;
use zeroize::Zeroizing;

use crate::error::AppError;

/// Audience every broker token must carry.
pub const AUDIENCE: &str = "agentkeys:broker";
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;
/// Longest `Authorization` header value accepted.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a broker key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("broker public key is not a P-256 SPKI PEM: {0}")]
pub struct BrokerKeyError(String);

#[derive(Deserialize)]
struct Claims {
    exp: f64,
    #[serde(default)]
    nbf: Option<f64>,
    agentkeys: AgentKeysClaim,
}

#[derive(Deserialize)]
struct AgentKeysClaim {
    omni_account: String,
}

#[derive(Clone)]
struct Verified {
    exp: u64,
    nbf: Option<u64>,
    /// Lowercased, as the SPEC compares hex case-insensitively.
    omni: String,
}

/// Broker-token verifier with a bounded cache of verified tokens.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

struct Cache {
    hasher: RandomState,
    map: HashMap<u64, (Zeroizing<String>, Verified)>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl Authenticator {
    /// A verifier pinned to the broker's ES256 public key (SPKI PEM).
    ///
    /// # Errors
    /// [`BrokerKeyError`] when the PEM is not an EC public key.
    pub fn new(spki_pem: &[u8], cache_capacity: usize) -> Result<Self, BrokerKeyError> {
        // Also parse with the enclave's strict parser: only uncompressed P-256 keys, the same
        // set the enclave accepts, so host and enclave can never disagree about the key.
        let pem = std::str::from_utf8(spki_pem).map_err(|_| BrokerKeyError("not UTF-8".into()))?;
        sigil_enclave::jwt::BrokerKey::from_spki_pem(pem).map_err(|e| BrokerKeyError(e.to_string()))?;
        let key = DecodingKey::from_ec_pem(spki_pem).map_err(|e| BrokerKeyError(e.to_string()))?;
        // Only ES256, whatever the token's header claims.
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256];
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(Self {
            key,
            validation,
            cache: Mutex::new(Cache {
                hasher: RandomState::new(),
                map: HashMap::new(),
                order: VecDeque::new(),
                capacity: cache_capacity,
            }),
        })
    }

    /// Checks the request's `Authorization: Bearer <jwt>` against the broker key, the clock
    /// and the body's `omni_account` (compared case-insensitively, before the account's own
    /// format is validated — SPEC check order).
    ///
    /// # Errors
    /// `401 unauthorized` for every failure; the message names the reason, never the token.
    pub fn authorize(&self, headers: &HeaderMap, omni_account: &str) -> Result<(), AppError> {
        let token = bearer(headers)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let cached = self.cache.lock().ok().and_then(|c| c.get(token));
        let v = match cached {
            Some(v) => v,
            None => {
                let v = self.verify(token)?;
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(token, v.clone());
                }
                v
            }
        };
        if v.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(unauthorized("token expired"));
        }
        if v.nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS)) {
            return Err(unauthorized("token not yet valid"));
        }
        if !v.omni.eq_ignore_ascii_case(omni_account) {
            return Err(unauthorized("token is for another account"));
        }
        Ok(())
    }

    fn verify(&self, token: &str) -> Result<Verified, AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => unauthorized("token expired"),
                ErrorKind::ImmatureSignature => unauthorized("token not yet valid"),
                ErrorKind::InvalidAudience => unauthorized("token audience not accepted"),
                ErrorKind::InvalidAlgorithm => unauthorized("token algorithm not allowed"),
                ErrorKind::InvalidSignature => unauthorized("token signature invalid"),
                _ => unauthorized("malformed token"),
            }
        })?;
        let c = data.claims;
        // NumericDate may carry a fraction; whole seconds below 2^53 are exact in an f64.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "range checked first")]
        let seconds = |x: f64| (0.0..9.0e15).contains(&x).then(|| x.trunc() as u64);
        Ok(Verified {
            exp: seconds(c.exp).ok_or_else(|| unauthorized("token has no valid exp"))?,
            nbf: match c.nbf {
                Some(n) => Some(seconds(n).ok_or_else(|| unauthorized("token nbf malformed"))?),
                None => None,
            },
            omni: c.agentkeys.omni_account.to_ascii_lowercase(),
        })
    }
}

impl Cache {
    fn get(&self, token: &str) -> Option<Verified> {
        let (stored, v) = self.map.get(&self.hasher.hash_one(token))?;
        ct_eq(stored.as_bytes(), token.as_bytes()).then(|| v.clone())
    }

    fn insert(&mut self, token: &str, v: Verified) {
        if self.capacity == 0 {
            return;
        }
        let key = self.hasher.hash_one(token);
        // A (vanishingly rare) hash collision replaces the older token's entry.
        if self.map.insert(key, (Zeroizing::new(token.to_owned()), v)).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

/// Constant-time equality (lengths are not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The compact JWT of an `Authorization: Bearer <jwt>` header (prefix case-sensitive).
///
/// # Errors
/// `401 unauthorized`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AppError> {
    let value = headers.get(AUTHORIZATION).ok_or_else(|| unauthorized("missing bearer token"))?;
    let value = value.to_str().map_err(|_| unauthorized("malformed authorization header"))?;
    let token = value.strip_prefix("Bearer ").ok_or_else(|| unauthorized("authorization is not a Bearer token"))?;
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(unauthorized("malformed token"));
    }
    Ok(token)
}

fn unauthorized(msg: &'static str) -> AppError {
    AppError::new(ErrorCode::Unauthorized, msg)
}
