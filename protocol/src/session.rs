//! The attested session's record layer (SPEC §5): keys from X25519 + HKDF over the binding
//! hash, and AES-256-GCM records with explicit counters in both directions.
//!
//! ```text
//!  shared = X25519(client_secret, enclave_pub) = X25519(enclave_secret, client_pub)
//!  prk    = HKDF-SHA256-Extract(salt = binding hash (64 B), ikm = shared)
//!  id     = Expand(prk, "sigil/session/v1/id", 16)
//!  c2e    = Expand(prk, "sigil/session/v1/client-to-enclave", 32)
//!  e2c    = Expand(prk, "sigil/session/v1/enclave-to-client", 32)
//!  record = AES-256-GCM(key = c2e | e2c, nonce = dir(4 B BE) || counter(8 B BE),
//!                       aad = "sigil/sealed/v1" || id || dir(1 B) || counter(8 B BE))
//! ```
//!
//! Because the keys hang off the binding hash, a session exists only with the enclave whose
//! evidence the client verified. The receiver of requests accepts counter `n` only when it
//! expects exactly `n` (so the relay cannot drop, replay or reorder without detection), and
//! the response to request `n` is sealed with counter `n` in the other direction (so a
//! response cannot be swapped for another one). One request is in flight per session; a
//! client wanting parallelism opens several sessions.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use alloc::vec::Vec;
use core::fmt;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::bytes::Bytes;

/// Domain-separation label in every record's associated data.
pub const RECORD_LABEL: &[u8] = b"sigil/sealed/v1";
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Largest plaintext sealed into one record: well inside one frame with the envelope around it.
pub const MAX_PLAINTEXT: usize = crate::frame::MAX_PAYLOAD - 256;

/// One sealed message of a session, as the host relays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecord {
    /// Which session (derived from the keys, so both sides know it without sending it first).
    pub session_id: Bytes<16>,
    /// The sender's record counter (the response to request `n` carries `n`).
    pub counter: u64,
    /// AES-256-GCM ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// Which way a record travels: each direction has its own key and nonce space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests.
    ClientToEnclave,
    /// Responses.
    EnclaveToClient,
}

impl Direction {
    const fn byte(self) -> u8 {
        match self {
            Self::ClientToEnclave => 1,
            Self::EnclaveToClient => 2,
        }
    }
}

/// Why a record or handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The record names another session.
    WrongSession,
    /// The counter was already used: a replay.
    Replayed {
        /// The counter the receiver expected.
        expected: u64,
        /// The counter the record carried.
        got: u64,
    },
    /// The counter skips ahead: a record was dropped or records were reordered.
    OutOfOrder {
        /// The counter the receiver expected.
        expected: u64,
        /// The counter the record carried.
        got: u64,
    },
    /// Authentication failed: the record was altered, or sealed under another key.
    Tampered,
    /// The peer's X25519 key is of low order (the shared secret would be predictable).
    WeakPeerKey,
    /// The plaintext exceeds [`MAX_PLAINTEXT`].
    TooLarge,
    /// 2^64 records were sent: the session must be replaced.
    CounterExhausted,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSession => f.write_str("sealed record belongs to another session"),
            Self::Replayed { expected, got } => write!(f, "replayed record: counter {got}, expected {expected}"),
            Self::OutOfOrder { expected, got } => {
                write!(f, "record out of order or dropped: counter {got}, expected {expected}")
            }
            Self::Tampered => f.write_str("sealed record failed authentication"),
            Self::WeakPeerKey => f.write_str("peer x25519 key is of low order"),
            Self::TooLarge => f.write_str("sealed plaintext too large"),
            Self::CounterExhausted => f.write_str("session counter exhausted"),
        }
    }
}

impl core::error::Error for SessionError {}

/// The X25519 public key of a secret.
#[must_use]
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    let s = x25519_dalek::StaticSecret::from(*secret);
    x25519_dalek::PublicKey::from(&s).to_bytes()
}

/// X25519 agreement, refusing low-order peer keys (RFC 7748 §6.1 "all-zero" check).
pub fn x25519_agree(secret: &[u8; 32], peer: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, SessionError> {
    let s = x25519_dalek::StaticSecret::from(*secret);
    let shared = s.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
    if !shared.was_contributory() {
        return Err(SessionError::WeakPeerKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// A session's id and directional keys. Zeroized on drop; `Debug` shows only the id.
pub struct SessionKeys {
    id: [u8; 16],
    client_to_enclave: Zeroizing<[u8; 32]>,
    enclave_to_client: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys").field("id", &Bytes(self.id)).finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Derives the keys from the X25519 shared secret and the handshake's binding hash.
    #[must_use]
    pub fn derive(shared_secret: &[u8; 32], binding_hash: &[u8; 64]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(binding_hash), shared_secret);
        let mut id = [0u8; 16];
        let mut c2e = Zeroizing::new([0u8; 32]);
        let mut e2c = Zeroizing::new([0u8; 32]);
        // Expand cannot fail for outputs this short (≤ 255 × 32 bytes).
        let _ = hk.expand(b"sigil/session/v1/id", &mut id);
        let _ = hk.expand(b"sigil/session/v1/client-to-enclave", c2e.as_mut_slice());
        let _ = hk.expand(b"sigil/session/v1/enclave-to-client", e2c.as_mut_slice());
        Self { id, client_to_enclave: c2e, enclave_to_client: e2c }
    }

    /// The session id records carry.
    #[must_use]
    pub const fn id(&self) -> [u8; 16] {
        self.id
    }

    fn cipher(&self, dir: Direction) -> Aes256Gcm {
        let key = match dir {
            Direction::ClientToEnclave => &self.client_to_enclave,
            Direction::EnclaveToClient => &self.enclave_to_client,
        };
        Aes256Gcm::new(&(**key).into())
    }

    fn nonce_and_aad(&self, dir: Direction, counter: u64) -> ([u8; 12], [u8; 40]) {
        let mut nonce = [0u8; 12];
        nonce[3] = dir.byte();
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        let mut aad = [0u8; 40];
        aad[..15].copy_from_slice(RECORD_LABEL);
        aad[15..31].copy_from_slice(&self.id);
        aad[31] = dir.byte();
        aad[32..].copy_from_slice(&counter.to_be_bytes());
        (nonce, aad)
    }

    /// Seals `plaintext` as record `counter` travelling `dir`.
    pub fn seal(&self, dir: Direction, counter: u64, plaintext: &[u8]) -> Result<SealedRecord, SessionError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(SessionError::TooLarge);
        }
        let (nonce, aad) = self.nonce_and_aad(dir, counter);
        let ciphertext = self
            .cipher(dir)
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| SessionError::TooLarge)?;
        Ok(SealedRecord { session_id: Bytes(self.id), counter, ciphertext })
    }

    /// Opens a record travelling `dir`. Checks the session id and the tag, not the counter
    /// (that is the state machine's job: [`ClientSession`], [`EnclaveSession`]).
    pub fn open(&self, dir: Direction, record: &SealedRecord) -> Result<Zeroizing<Vec<u8>>, SessionError> {
        if record.session_id.0 != self.id {
            return Err(SessionError::WrongSession);
        }
        if record.ciphertext.len() > MAX_PLAINTEXT + TAG_LEN {
            return Err(SessionError::TooLarge);
        }
        let (nonce, aad) = self.nonce_and_aad(dir, record.counter);
        self.cipher(dir)
            .decrypt(&Nonce::from(nonce), Payload { msg: &record.ciphertext, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| SessionError::Tampered)
    }
}

fn check_counter(expected: u64, got: u64) -> Result<(), SessionError> {
    match got.cmp(&expected) {
        core::cmp::Ordering::Equal => Ok(()),
        core::cmp::Ordering::Less => Err(SessionError::Replayed { expected, got }),
        core::cmp::Ordering::Greater => Err(SessionError::OutOfOrder { expected, got }),
    }
}

/// The client's side: seals request `n`, accepts only response `n`.
#[derive(Debug)]
pub struct ClientSession {
    keys: SessionKeys,
    next: u64,
}

impl ClientSession {
    /// A session from the client's ephemeral secret, the enclave's attested ephemeral key
    /// and the verified binding hash.
    pub fn new(
        client_secret: &[u8; 32],
        enclave_pub: &[u8; 32],
        binding_hash: &[u8; 64],
    ) -> Result<Self, SessionError> {
        let shared = x25519_agree(client_secret, enclave_pub)?;
        Ok(Self { keys: SessionKeys::derive(&shared, binding_hash), next: 0 })
    }

    /// The session id.
    #[must_use]
    pub const fn id(&self) -> [u8; 16] {
        self.keys.id()
    }

    /// Seals the next request; returns it with its counter (which the response must echo).
    pub fn seal_request(&mut self, plaintext: &[u8]) -> Result<SealedRecord, SessionError> {
        let counter = self.next;
        self.next = counter.checked_add(1).ok_or(SessionError::CounterExhausted)?;
        self.keys.seal(Direction::ClientToEnclave, counter, plaintext)
    }

    /// Opens the response to the request sealed with `request_counter`.
    pub fn open_response(
        &self,
        request_counter: u64,
        record: &SealedRecord,
    ) -> Result<Zeroizing<Vec<u8>>, SessionError> {
        if record.session_id.0 != self.keys.id() {
            return Err(SessionError::WrongSession);
        }
        check_counter(request_counter, record.counter)?;
        self.keys.open(Direction::EnclaveToClient, record)
    }
}

/// The enclave's side: accepts request `n` only when it expects exactly `n`.
#[derive(Debug)]
pub struct EnclaveSession {
    keys: SessionKeys,
    next: u64,
    /// When the session was opened (unix seconds), for expiry.
    pub opened_at: u64,
}

impl EnclaveSession {
    /// A session from the enclave's ephemeral secret and the client's key.
    pub fn new(
        enclave_secret: &[u8; 32],
        client_pub: &[u8; 32],
        binding_hash: &[u8; 64],
        opened_at: u64,
    ) -> Result<Self, SessionError> {
        let shared = x25519_agree(enclave_secret, client_pub)?;
        Ok(Self { keys: SessionKeys::derive(&shared, binding_hash), next: 0, opened_at })
    }

    /// The session id.
    #[must_use]
    pub const fn id(&self) -> [u8; 16] {
        self.keys.id()
    }

    /// Opens the next request. The counter advances only for an authentic, in-order record.
    pub fn open_request(&mut self, record: &SealedRecord) -> Result<(u64, Zeroizing<Vec<u8>>), SessionError> {
        if record.session_id.0 != self.keys.id() {
            return Err(SessionError::WrongSession);
        }
        check_counter(self.next, record.counter)?;
        let plaintext = self.keys.open(Direction::ClientToEnclave, record)?;
        self.next = record.counter.checked_add(1).ok_or(SessionError::CounterExhausted)?;
        Ok((record.counter, plaintext))
    }

    /// Seals the response to request `counter`.
    pub fn seal_response(&self, counter: u64, plaintext: &[u8]) -> Result<SealedRecord, SessionError> {
        self.keys.seal(Direction::EnclaveToClient, counter, plaintext)
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.id.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (ClientSession, EnclaveSession) {
        let (cs, es) = ([7u8; 32], [9u8; 32]);
        let binding = [5u8; 64];
        let client = ClientSession::new(&cs, &x25519_public(&es), &binding).unwrap();
        let enclave = EnclaveSession::new(&es, &x25519_public(&cs), &binding, 0).unwrap();
        (client, enclave)
    }

    #[test]
    fn both_sides_derive_the_same_session() {
        let (mut c, mut e) = pair();
        assert_eq!(c.id(), e.id());
        for i in 0..3u64 {
            let req = c.seal_request(b"ping").unwrap();
            assert_eq!(req.counter, i);
            let (n, pt) = e.open_request(&req).unwrap();
            assert_eq!((n, pt.as_slice()), (i, &b"ping"[..]));
            let resp = e.seal_response(n, b"pong").unwrap();
            assert_eq!(c.open_response(n, &resp).unwrap().as_slice(), b"pong");
        }
    }

    #[test]
    fn rejects_replayed_dropped_reordered_and_tampered_requests() {
        let (mut c, mut e) = pair();
        let r0 = c.seal_request(b"a").unwrap();
        let r1 = c.seal_request(b"b").unwrap();
        let r2 = c.seal_request(b"c").unwrap();
        assert_eq!(e.open_request(&r1).unwrap_err(), SessionError::OutOfOrder { expected: 0, got: 1 });
        e.open_request(&r0).unwrap();
        assert_eq!(e.open_request(&r0).unwrap_err(), SessionError::Replayed { expected: 1, got: 0 });
        let mut bad = r1.clone();
        bad.ciphertext[0] ^= 1;
        assert_eq!(e.open_request(&bad).unwrap_err(), SessionError::Tampered);
        // A record re-labelled with another counter fails authentication (counter is in the AAD).
        let mut relabelled = r2.clone();
        relabelled.counter = 1;
        assert_eq!(e.open_request(&relabelled).unwrap_err(), SessionError::Tampered);
        e.open_request(&r1).unwrap();
        let mut other = r2;
        other.session_id.0[0] ^= 1;
        assert_eq!(e.open_request(&other).unwrap_err(), SessionError::WrongSession);
    }

    #[test]
    fn rejects_a_response_to_another_request_or_direction() {
        let (mut c, mut e) = pair();
        let r0 = c.seal_request(b"a").unwrap();
        let r1 = c.seal_request(b"b").unwrap();
        e.open_request(&r0).unwrap();
        e.open_request(&r1).unwrap();
        let resp0 = e.seal_response(0, b"A").unwrap();
        assert_eq!(c.open_response(1, &resp0).unwrap_err(), SessionError::Replayed { expected: 1, got: 0 });
        // A request reflected back as a response: wrong key for the direction.
        let mut reflected = c.seal_request(b"x").unwrap();
        reflected.counter = 1;
        assert_eq!(c.open_response(1, &reflected).unwrap_err(), SessionError::Tampered);
    }

    #[test]
    fn a_different_binding_gives_a_different_session() {
        let (cs, es) = ([7u8; 32], [9u8; 32]);
        let a = ClientSession::new(&cs, &x25519_public(&es), &[1; 64]).unwrap();
        let b = ClientSession::new(&cs, &x25519_public(&es), &[2; 64]).unwrap();
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn refuses_low_order_peer_keys() {
        assert_eq!(x25519_agree(&[7; 32], &[0; 32]).unwrap_err(), SessionError::WeakPeerKey);
    }

    #[test]
    fn refuses_oversized_plaintext() {
        let (mut c, _) = pair();
        assert_eq!(c.seal_request(&alloc::vec![0; MAX_PLAINTEXT + 1]).unwrap_err(), SessionError::TooLarge);
    }
}
