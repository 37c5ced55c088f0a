//! The sans-IO enclave: one frame in, one frame out.

mod custody;
mod dev;

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;
use ed25519_dalek::{Signer as _, SigningKey};
use secp256k1::{All, Secp256k1};
use sha2::{Digest, Sha256};
use sigil_protocol::session::{self, EnclaveSession};
use sigil_protocol::{
    AddressInfo, AttestRequest, Attestation, Binding, Bytes, DecodeError, DeriveKek, Eip191Signature, Eip712Signature,
    Envelope, Epoch, HelloAck, Request, Response, SealedKek, SealedRecord, Status, Subject, WireError, frame,
};
use zeroize::Zeroizing;

use crate::attester::{AttestationInput, Attester};
use crate::peer::PeerVerifier;
use crate::sealer::Sealer;

use crate::cache::BoundedCache;
use crate::eip191;
use crate::eip712;
use crate::env::{Env, SeededRng};
use crate::error::{Error, InternalError};
use crate::jwt::{self, BrokerKey, Claims};
use crate::k3::{K3, K3Store};
use crate::kek::{self, KekError};
use crate::wallet::WalletKey;

/// Re-randomise libsecp256k1's blinding every this many secret-key operations (side-channel
/// defence in depth; it costs about one signature, so amortised it is noise).
const RERANDOMIZE_EVERY: u32 = 1024;

/// How the enclave is set up. The broker key is part of what gets measured and attested.
#[derive(Debug, Clone)]
pub struct Config {
    /// The pinned broker key every K3-using request's JWT must verify under.
    pub broker_key: BrokerKey,
    /// Verified tokens remembered (by SHA-256) so repeat requests skip the ES256 check.
    /// Expiry, `nbf` and the account binding are still checked on every use. 0 disables.
    pub jwt_cache_capacity: usize,
    /// Derived wallets remembered per `(key_version, omni)`. 0 disables.
    pub wallet_cache_capacity: usize,
    /// Attested sessions held at once; the oldest is closed first beyond this.
    pub session_capacity: usize,
    /// Seconds a session lives after its handshake; the client then opens a new one.
    pub session_lifetime_secs: u64,
    /// K3 fingerprints this enclave insists on, per epoch: provisioning, replication or a
    /// sealed blob with another K3 for a listed epoch is refused. Part of the measured
    /// configuration in production (so a host cannot swap in another deployment's blob).
    pub expected_k3: alloc::collections::BTreeMap<u8, [u8; 32]>,
}

impl Config {
    /// What a replication peer must share with this enclave besides its measurement:
    /// `SHA-256("sigil/config/v1" || broker key SEC1 point)`. In production the broker key is
    /// part of the measured image anyway; this keeps an enclave of the same image configured
    /// for another broker (another deployment) from receiving this deployment's K3.
    #[must_use]
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::new().chain_update(b"sigil/config/v1").chain_update(self.broker_key.sec1()).finalize().into()
    }

    /// Defaults sized for a busy broker: 4096 tokens, 16384 wallets (a few MiB).
    #[must_use]
    pub const fn new(broker_key: BrokerKey) -> Self {
        Self {
            broker_key,
            jwt_cache_capacity: 4096,
            wallet_cache_capacity: 16384,
            session_capacity: 4096,
            session_lifetime_secs: 3600,
            expected_k3: alloc::collections::BTreeMap::new(),
        }
    }
}

/// The enclave state machine: K3 epochs, caches and the signing context. Feed it frames with
/// [`Enclave::handle`]; it performs no I/O of its own.
pub struct Enclave {
    config: Config,
    k3: K3Store,
    secp: Secp256k1<All>,
    jwt_cache: BoundedCache<[u8; 32], Claims>,
    wallet_cache: BoundedCache<(u8, [u8; 32]), WalletKey>,
    operations_until_rerandomize: u32,
    attester: Option<Box<dyn Attester>>,
    /// Long-term response-signing key, drawn from `Env` on first use (the core has no
    /// entropy at construction). Its public half is bound into every piece of evidence.
    signing_key: Option<SigningKey>,
    sessions: BoundedCache<[u8; 16], SessionSlot>,
    custody: custody::Custody,
}

/// An attested session and what provisioning inside it needs: the enclave's ephemeral
/// X25519 secret (the attested key K3 is sealed to) and the session's binding hash.
struct SessionSlot {
    session: EnclaveSession,
    kem_secret: Zeroizing<[u8; 32]>,
    binding: [u8; 64],
}

impl fmt::Debug for Enclave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enclave")
            .field("k3", &self.k3)
            .field("jwt_cache", &self.jwt_cache)
            .field("wallet_cache", &self.wallet_cache)
            .field("attester", &self.attester)
            .field("sessions", &self.sessions.len())
            .field("custody", &self.custody)
            .finish_non_exhaustive()
    }
}

impl Enclave {
    /// An unprovisioned enclave.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            jwt_cache: BoundedCache::new(config.jwt_cache_capacity),
            wallet_cache: BoundedCache::new(config.wallet_cache_capacity),
            sessions: BoundedCache::new(config.session_capacity),
            attester: None,
            signing_key: None,
            custody: custody::Custody::new(),
            config,
            k3: K3Store::new(),
            secp: Secp256k1::new(),
            // Randomise the blinding before the very first secret-key operation.
            operations_until_rerandomize: 0,
        }
    }

    /// Loads K3 for epoch `key_version` (replacing that epoch's K3 if present). Cached
    /// wallets of that epoch are dropped so nothing derived from an old K3 survives.
    pub fn load_k3(&mut self, key_version: u8, k3: K3) {
        self.k3.insert(key_version, k3);
        self.wallet_cache.clear();
    }

    /// Installs the platform's attester; without one, attestation requests fail with
    /// `attestation_unavailable`.
    pub fn set_attester(&mut self, attester: Box<dyn Attester>) {
        self.attester = Some(attester);
    }

    /// Installs the platform's sealing key: provisioned and replicated epochs then stay
    /// pending (not served) until a sealed blob holding them has been stored and confirmed.
    /// Without one, K3 lives only in memory.
    pub fn set_sealer(&mut self, sealer: Box<dyn Sealer>) {
        self.custody.sealer = Some(sealer);
    }

    /// Installs the judge of replication peers (built from this enclave's own evidence).
    /// Without one, replication is refused both ways.
    pub fn set_peer_verifier(&mut self, verifier: Box<dyn PeerVerifier>) {
        self.custody.peer_verifier = Some(verifier);
    }

    /// The public half of the response-signing key, once it exists (after the first
    /// attestation or `/dev/*` call).
    #[must_use]
    pub fn signing_public_key(&self) -> Option<[u8; 32]> {
        self.signing_key.as_ref().map(|k| k.verifying_key().to_bytes())
    }

    /// The loaded epochs.
    #[must_use]
    pub const fn k3_store(&self) -> &K3Store {
        &self.k3
    }

    /// Handles one request frame and returns the response frame.
    ///
    /// Never panics on any input. A frame that cannot be parsed gets an error response with
    /// `request_id` 0 (`malformed_frame` or `unsupported_version`); the transport should then
    /// close the connection, as the stream can no longer be trusted.
    pub fn handle(&mut self, request: &[u8], env: &mut impl Env) -> Vec<u8> {
        let mut out = Vec::new();
        self.handle_into(request, env, &mut out);
        out
    }

    /// [`Enclave::handle`] writing into a caller-provided buffer (appended to).
    pub fn handle_into(&mut self, request: &[u8], env: &mut impl Env, out: &mut Vec<u8>) {
        let (request_id, result) = match frame::decode(request) {
            Err(e) => (0, Err(Error::Decode(DecodeError::Frame(e)))),
            Ok(f) => match sigil_protocol::decode_payload::<Envelope<Request>>(f.payload) {
                Ok(env_req) => (env_req.request_id, self.dispatch(env_req.body, env)),
                // Echo the id when at least that much is readable, so the host can fail
                // exactly the request that was malformed.
                Err(e) => (leading_request_id(f.payload), Err(Error::Decode(e))),
            },
        };
        let body = result.unwrap_or_else(|e| Response::Error(WireError { code: e.code(), message: e.to_string() }));
        encode_response(request_id, &body, out);
    }

    fn dispatch(&mut self, req: Request, env: &mut impl Env) -> Result<Response, Error> {
        match req {
            Request::Hello(h) => {
                let lo = h.min_version.max(frame::MIN_SUPPORTED_VERSION);
                let hi = h.max_version.min(frame::MAX_SUPPORTED_VERSION);
                if lo > hi {
                    return Err(Error::Decode(DecodeError::Frame(frame::FrameError::UnsupportedVersion(
                        h.max_version,
                    ))));
                }
                Ok(Response::Hello(HelloAck {
                    version: hi,
                    min_version: frame::MIN_SUPPORTED_VERSION,
                    max_version: frame::MAX_SUPPORTED_VERSION,
                }))
            }
            Request::Status => Ok(Response::Status(self.status())),
            Request::DeriveAddress(mut r) => {
                r.subject.key_version = self.resolve_epoch(r.subject.key_version);
                self.authorize(&r.subject, env)?;
                let address = self.with_wallet(&r.subject, env, |_, w| Ok(w.address()))?;
                Ok(Response::Address(AddressInfo { address: Bytes(address), key_version: r.subject.key_version }))
            }
            Request::SignEip191(mut r) => {
                r.subject.key_version = self.resolve_epoch(r.subject.key_version);
                let digest = eip191::digest(&r.message);
                self.authorize(&r.subject, env)?;
                let (signature, address) = self.sign(&r.subject, &digest, env)?;
                Ok(Response::Eip191Signature(Eip191Signature {
                    signature: Bytes(signature),
                    address: Bytes(address),
                    key_version: r.subject.key_version,
                }))
            }
            Request::SignEip712(mut r) => {
                r.subject.key_version = self.resolve_epoch(r.subject.key_version);
                // Authorise before parsing attacker-supplied JSON.
                self.authorize(&r.subject, env)?;
                let hashes = eip712::hash_typed_data(&r.typed_data)?;
                let (signature, address) = self.sign(&r.subject, &hashes.digest, env)?;
                Ok(Response::Eip712Signature(Eip712Signature {
                    signature: Bytes(signature),
                    address: Bytes(address),
                    primary_type_hash: Bytes(hashes.primary_type_hash),
                    domain_separator: Bytes(hashes.domain_separator),
                    digest: Bytes(hashes.digest),
                    key_version: r.subject.key_version,
                }))
            }
            Request::DeriveKek(r) => self.derive_kek(&r, env),
            Request::Attest(r) => self.attest(&r, env),
            Request::Sealed(r) => self.sealed(&r, env),
            Request::DevCall(c) => self.dev_call(&c, env),
            Request::Provision(_) | Request::Retire(_) => {
                Err(Error::InvalidRequest("provisioning and retirement are only accepted inside an attested session"))
            }
            Request::CustodyStatus => Ok(Response::CustodyStatus(self.custody_status(env)?)),
            Request::SealK3 => self.seal_k3(env),
            Request::UnsealK3(u) => self.unseal_k3(&u.blob, env),
            Request::PeerOffer => self.peer_offer(env),
            Request::ExportForPeer(offer) => self.export_for_peer(&offer, env),
            Request::ImportFromPeer(export) => self.import_from_peer(&export, env),
            // A variant added to the protocol crate before this enclave learnt to serve it.
            _ => Err(Error::InvalidRequest("request type not supported by this enclave")),
        }
    }

    fn status(&self) -> Status {
        Status {
            protocol_version: frame::PROTOCOL_VERSION,
            current_key_version: self.k3.current(),
            epochs: self
                .k3
                .fingerprints()
                .map(|(key_version, fp)| Epoch { key_version, k3_fingerprint: Bytes(fp) })
                .collect(),
        }
    }

    /// SPEC check order: JWT (401), then provisioned (503), then the epoch exists.
    fn authorize(&mut self, subject: &Subject, env: &impl Env) -> Result<(), Error> {
        let token = subject.token.expose();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let claims = if let Some(c) = self.jwt_cache.get(&key) {
            *c
        } else {
            let c = jwt::verify_token(token, &self.config.broker_key)?;
            self.jwt_cache.insert(key, c);
            c
        };
        claims.authorize(env.unix_time(), subject.omni.as_bytes())?;
        self.epoch(subject.key_version).map(|_| ())
    }

    /// Epoch 0 on the wire means "the current epoch" (the newest durable one). Unprovisioned,
    /// it stays 0, which no epoch has, and the request fails as unprovisioned after its JWT
    /// has been checked (SPEC check order).
    fn resolve_epoch(&self, key_version: u8) -> u8 {
        if key_version == 0 { self.k3.current().unwrap_or(0) } else { key_version }
    }

    fn epoch(&self, key_version: u8) -> Result<&K3, Error> {
        if self.k3.is_unprovisioned() {
            return Err(Error::NotProvisioned);
        }
        self.k3.get(key_version).ok_or(Error::UnknownKeyVersion(key_version))
    }

    /// Runs `f` with the wallet of a subject, from the cache or freshly derived.
    ///
    /// Callers must have passed [`Enclave::authorize`] for `subject` first: nothing secret is
    /// touched for an unauthorised request. (Each dispatch arm does so explicitly, which keeps
    /// the SPEC check order visible there and authorises each request exactly once.)
    fn with_wallet<T>(
        &mut self,
        subject: &Subject,
        env: &mut impl Env,
        f: impl FnOnce(&Secp256k1<All>, &WalletKey) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.blind(env)?;
        let key = (subject.key_version, *subject.omni.as_bytes());
        if let Some(w) = self.wallet_cache.get(&key) {
            return f(&self.secp, w);
        }
        let k3 = self.epoch(subject.key_version)?;
        let w = WalletKey::derive(&self.secp, k3, subject.key_version, subject.omni.as_bytes())?;
        let out = f(&self.secp, &w);
        self.wallet_cache.insert(key, w);
        out
    }

    fn sign(
        &mut self,
        subject: &Subject,
        digest: &[u8; 32],
        env: &mut impl Env,
    ) -> Result<([u8; 65], [u8; 20]), Error> {
        self.with_wallet(subject, env, |secp, w| Ok((w.sign_digest(secp, digest)?, w.address())))
    }

    /// Re-randomises libsecp256k1's blinding before the first secret-key operation and then
    /// every [`RERANDOMIZE_EVERY`] operations.
    fn blind(&mut self, env: &mut impl Env) -> Result<(), Error> {
        if self.operations_until_rerandomize == 0 {
            let mut seed = Zeroizing::new([0u8; 32]);
            env.fill_random(seed.as_mut_slice())?;
            self.secp.seeded_randomize(&seed);
            self.operations_until_rerandomize = RERANDOMIZE_EVERY;
        }
        self.operations_until_rerandomize -= 1;
        Ok(())
    }

    fn derive_kek(&mut self, r: &DeriveKek, env: &mut impl Env) -> Result<Response, Error> {
        // The AAD is the request as sent (epoch 0 included); the HPKE info names the epoch used.
        let aad = r.aad();
        let key_version = self.resolve_epoch(r.subject.key_version);
        let subject = Subject { key_version, ..r.subject.clone() };
        self.authorize(&subject, env)?;
        let kek = kek::derive(self.epoch(key_version)?, subject.omni.as_bytes(), &r.context).map_err(kek_error)?;
        let mut rng = SeededRng::from_env(env)?;
        let (enc, ciphertext) = kek::seal(&kek, key_version, &r.recipient.0, &aad, &mut rng).map_err(kek_error)?;
        Ok(Response::SealedKek(SealedKek { key_version, encapsulated_key: Bytes(enc), ciphertext }))
    }
}

/// The attested session (SPEC §5).
impl Enclave {
    /// The response-signing key, created from fresh entropy on first use.
    fn signing_key(&mut self, env: &mut impl Env) -> Result<&SigningKey, Error> {
        if self.signing_key.is_none() {
            let mut seed = Zeroizing::new([0u8; 32]);
            env.fill_random(seed.as_mut_slice())?;
            self.signing_key = Some(SigningKey::from_bytes(&seed));
        }
        self.signing_key.as_ref().ok_or(Error::Internal(InternalError::Encode))
    }

    /// Signs `message` with the attested response-signing key.
    fn sign_response(&mut self, message: &[u8], env: &mut impl Env) -> Result<[u8; 64], Error> {
        Ok(self.signing_key(env)?.sign(message).to_bytes())
    }

    fn current_fingerprint(&self) -> [u8; 32] {
        self.k3.current_fingerprint().unwrap_or([0; 32])
    }

    /// Evidence bound to the client's nonce and keys; with a client key, also a session.
    fn attest(&mut self, r: &AttestRequest, env: &mut impl Env) -> Result<Response, Error> {
        if self.attester.is_none() {
            return Err(custody::no_attester());
        }
        let signing_pub = self.signing_key(env)?.verifying_key().to_bytes();
        let enclave_secret = match r.client_pub {
            Some(_) => {
                let mut secret = Zeroizing::new([0u8; 32]);
                env.fill_random(secret.as_mut_slice())?;
                Some(secret)
            }
            None => None,
        };
        let enclave_pub = enclave_secret.as_ref().map(|s| Bytes(session::x25519_public(s)));
        let k3_fingerprint = self.current_fingerprint();
        let unix_time = env.unix_time();
        let Some(attester) = self.attester.as_mut() else {
            return Err(Error::Internal(InternalError::Encode));
        };
        let platform = attester.platform();
        let binding = Binding {
            platform,
            client_nonce: &r.client_nonce.0,
            client_pub: r.client_pub.as_ref().map_or(&[], |k| &k.0),
            enclave_pub: enclave_pub.as_ref().map_or(&[], |k| &k.0),
            signing_pub: &signing_pub,
            k3_fingerprint: &k3_fingerprint,
            protocol_version: frame::PROTOCOL_VERSION,
        }
        .hash();
        // The session first: a low-order client key is refused before the platform is asked.
        let session = match (enclave_secret, &r.client_pub) {
            (Some(secret), Some(client_pub)) => Some(SessionSlot {
                session: EnclaveSession::new(&secret, &client_pub.0, &binding, unix_time)
                    .map_err(|_| Error::InvalidRequest("client x25519 key is of low order"))?,
                kem_secret: secret,
                binding,
            }),
            _ => None,
        };
        let evidence = attester
            .attest(&AttestationInput {
                user_data: &binding,
                nonce: &r.client_nonce.0,
                public_key: &signing_pub,
                unix_time,
            })
            .map_err(Error::AttestationUnavailable)?;
        if evidence.platform != platform {
            return Err(Error::Internal(InternalError::Encode));
        }
        if let Some(slot) = session {
            self.sessions.insert(slot.session.id(), slot);
        }
        Ok(Response::Attestation(Attestation {
            protocol_version: frame::PROTOCOL_VERSION,
            enclave_pub,
            signing_pub: Bytes(signing_pub),
            k3_fingerprint: Bytes(k3_fingerprint),
            evidence,
        }))
    }

    /// Opens a sealed request, serves it, seals the answer. Any integrity failure closes the
    /// session: the client must handshake again (and learns nothing it can be fooled by).
    fn sealed(&mut self, record: &SealedRecord, env: &mut impl Env) -> Result<Response, Error> {
        let id = record.session_id.0;
        let now = env.unix_time();
        let lifetime = self.config.session_lifetime_secs;
        let slot = self.sessions.get_mut(&id).ok_or(Error::UnknownSession)?;
        if now.saturating_sub(slot.session.opened_at) > lifetime {
            self.sessions.remove(&id);
            return Err(Error::UnknownSession);
        }
        let (counter, plaintext) = match slot.session.open_request(record) {
            Ok(opened) => opened,
            Err(e) => {
                self.sessions.remove(&id);
                return Err(Error::Session(e));
            }
        };
        // Errors of the inner request travel sealed, so the host can neither read nor forge them.
        let inner = match sigil_protocol::decode_payload::<Request>(&plaintext) {
            Ok(Request::Attest(_) | Request::Sealed(_) | Request::DevCall(_) | Request::Hello(_)) => {
                Err(Error::InvalidRequest("request type not allowed inside a session"))
            }
            Ok(Request::Provision(p)) => self.provision(&id, &p, env),
            Ok(Request::Retire(p)) => self.retire(&id, &p, env),
            Ok(req) => self.dispatch(req, env),
            Err(e) => Err(Error::Decode(e)),
        };
        drop(plaintext);
        let response = inner.unwrap_or_else(|e| Response::Error(WireError { code: e.code(), message: e.to_string() }));
        let encoded =
            Zeroizing::new(postcard::to_allocvec(&response).map_err(|_| Error::Internal(InternalError::Encode))?);
        let slot = self.sessions.get(&id).ok_or(Error::UnknownSession)?;
        let sealed =
            slot.session.seal_response(counter, &encoded).map_err(|_| Error::Internal(InternalError::Encode))?;
        Ok(Response::Sealed(sealed))
    }
}

fn kek_error(e: KekError) -> Error {
    match e {
        KekError::ContextTooLong => Error::InvalidRequest("kek context longer than 256 bytes"),
        KekError::BadRecipientKey => Error::InvalidRequest("invalid recipient public key"),
        _ => Error::Internal(InternalError::Encode),
    }
}

/// The request id at the start of a payload that failed to decode as a whole, or 0.
fn leading_request_id(payload: &[u8]) -> u64 {
    postcard::take_from_bytes::<u64>(payload).map_or(0, |(id, _)| id)
}

fn encode_response(request_id: u64, body: &Response, out: &mut Vec<u8>) {
    let envelope = Envelope { request_id, body };
    match postcard::to_allocvec(&envelope) {
        Ok(payload) if frame::encode(frame::PROTOCOL_VERSION, 0, &payload, out).is_ok() => {}
        _ => {
            // Every response is far below the frame limit; this is a safety net.
            let err = Envelope {
                request_id,
                body: Response::Error(WireError {
                    code: sigil_protocol::ErrorCode::Internal,
                    message: InternalError::Encode.to_string(),
                }),
            };
            if let Ok(payload) = postcard::to_allocvec(&err) {
                let _ = frame::encode(frame::PROTOCOL_VERSION, 0, &payload, out);
            }
        }
    }
}
