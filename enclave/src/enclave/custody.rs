//! K3 custody (SPEC §6): provisioning inside an attested session, the sealed blob for
//! restarts, replication to a peer with the same measurement, and epoch retirement.
//!
//! The rules, all enforced here:
//! - an epoch's K3 never changes: loading a different K3 for a loaded (or expected) epoch is
//!   a `k3_conflict`;
//! - with a sealer, new epochs are *pending* (not served) until the host has stored a blob
//!   holding them and handed it back (`UnsealK3`): nothing is signed under a K3 a restart
//!   could lose;
//! - a blob that does not open loads nothing and reports `reprovision_required`;
//! - K3 leaves only HPKE-sealed: to a session's attested key, or to a peer whose evidence
//!   the [`PeerVerifier`] (built from this enclave's own evidence) accepts.

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;

use sigil_protocol::custody::{
    self, CustodyStatus, EpochState, MAX_EPOCHS, PROVISION_INFO_LABEL, PeerExport, PeerOffer, ProvisionK3,
    REPLICATE_INFO_LABEL, RETIRE_INFO_LABEL, SealedK3,
};
use sigil_protocol::{Bytes, Epoch, Evidence, Response, frame, session};
use zeroize::Zeroizing;

use super::Enclave;
use crate::attester::AttestationInput;
use crate::cache::BoundedCache;
use crate::env::Env;
use crate::error::{Error, InternalError};
use crate::k3::K3;
use crate::peer::{PeerError, PeerVerifier};
use crate::sealer::{self, SealError, Sealer, UnsealError};
use crate::transfer;

/// Replication offers outstanding at once; the oldest is dropped beyond this.
const MAX_PENDING_IMPORTS: usize = 16;
/// Seconds an offer's import key lives.
const IMPORT_KEY_LIFETIME_SECS: u64 = 600;

/// The custody state beside the K3 store.
pub(super) struct Custody {
    pub(super) sealer: Option<Box<dyn Sealer>>,
    pub(super) peer_verifier: Option<Box<dyn PeerVerifier>>,
    /// Random per start, drawn on first use (the core has no entropy at construction).
    boot_id: Option<[u8; 16]>,
    /// The epochs of the last blob that opened here: when they differ from what is loaded,
    /// the host must seal again.
    sealed: Option<Vec<Epoch>>,
    /// Why the last unseal failed, while nothing is served.
    reprovision: Option<UnsealError>,
    /// One-time import keys of our outstanding replication offers, by public key.
    pending_imports: BoundedCache<[u8; 32], PendingImport>,
}

struct PendingImport {
    secret: Zeroizing<[u8; 32]>,
    created: u64,
}

impl fmt::Debug for Custody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custody")
            .field("sealer", &self.sealer)
            .field("sealed", &self.sealed)
            .field("reprovision", &self.reprovision)
            .field("pending_imports", &self.pending_imports.len())
            .finish_non_exhaustive()
    }
}

impl Custody {
    pub(super) fn new() -> Self {
        Self {
            sealer: None,
            peer_verifier: None,
            boot_id: None,
            sealed: None,
            reprovision: None,
            pending_imports: BoundedCache::new(MAX_PENDING_IMPORTS),
        }
    }
}

impl Enclave {
    /// Where custody stands: epochs (durable or pending), sealing, the last unseal failure.
    pub(super) fn custody_status(&mut self, env: &mut impl Env) -> Result<CustodyStatus, Error> {
        let boot_id = match self.custody.boot_id {
            Some(id) => id,
            None => {
                let mut id = [0u8; 16];
                env.fill_random(&mut id)?;
                self.custody.boot_id = Some(id);
                id
            }
        };
        Ok(CustodyStatus {
            boot_id: Bytes(boot_id),
            current_key_version: self.k3.current(),
            epochs: self
                .k3
                .states()
                .map(|(key_version, fp, durable)| EpochState {
                    epoch: Epoch { key_version, k3_fingerprint: Bytes(fp) },
                    durable,
                })
                .collect(),
            sealer: self.custody.sealer.as_ref().map(|s| s.platform()),
            needs_seal: self.needs_seal(),
            reprovision: self.custody.reprovision.as_ref().map(ToString::to_string),
        })
    }

    /// Whether what is loaded differs from the last blob that opened here.
    fn needs_seal(&self) -> bool {
        if self.custody.sealer.is_none() || self.k3.is_empty() {
            return false;
        }
        let loaded = self.loaded_epochs();
        self.custody.sealed.as_deref() != Some(loaded.as_slice())
    }

    fn loaded_epochs(&self) -> Vec<Epoch> {
        self.k3.states().map(|(key_version, fp, _)| Epoch { key_version, k3_fingerprint: Bytes(fp) }).collect()
    }

    /// Every loaded epoch, durable or pending, sealed under the platform key.
    pub(super) fn seal_k3(&mut self, env: &mut impl Env) -> Result<Response, Error> {
        if self.k3.is_empty() {
            return Err(Error::NotProvisioned);
        }
        let mut salt = Zeroizing::new([0u8; 32]);
        env.fill_random(salt.as_mut_slice())?;
        let mut nonce = [0u8; 12];
        env.fill_random(&mut nonce)?;
        let sealer = self.custody.sealer.as_deref_mut().ok_or_else(no_sealer)?;
        let epochs: Vec<(u8, &K3)> = self.k3.iter_all().collect();
        let blob = sealer::seal(sealer, &epochs, &salt, nonce).map_err(Error::Sealing)?;
        Ok(Response::SealedK3(SealedK3 { blob }))
    }

    /// Loads a blob at boot, or confirms one the host has just stored: every epoch in it
    /// becomes durable. All checks pass before anything is loaded.
    pub(super) fn unseal_k3(&mut self, blob: &[u8], env: &mut impl Env) -> Result<Response, Error> {
        match self.try_unseal(blob) {
            Ok(()) => {
                self.custody.reprovision = None;
                Ok(Response::CustodyStatus(self.custody_status(env)?))
            }
            Err(Error::Unseal(e)) => {
                if self.k3.is_unprovisioned() {
                    self.custody.reprovision = Some(e.clone());
                }
                Err(Error::Unseal(e))
            }
            Err(e) => Err(e),
        }
    }

    fn try_unseal(&mut self, blob: &[u8]) -> Result<(), Error> {
        let sealer = self.custody.sealer.as_deref_mut().ok_or_else(no_sealer)?;
        let opened = sealer::open(sealer, blob)?;
        for (key_version, k3) in &opened {
            let fp = k3.fingerprint();
            if self.config.expected_k3.get(key_version).is_some_and(|want| *want != fp) {
                return Err(UnsealError::UnexpectedK3(*key_version).into());
            }
            if self.k3.get_any(*key_version).is_some_and(|(_, loaded)| loaded != fp) {
                return Err(UnsealError::ConflictsWithLoaded(*key_version).into());
            }
        }
        let mut epochs = Vec::with_capacity(opened.len());
        for (key_version, k3) in opened {
            epochs.push(Epoch { key_version, k3_fingerprint: Bytes(k3.fingerprint()) });
            if self.k3.get_any(key_version).is_some() {
                self.k3.mark_durable(key_version);
            } else {
                self.k3.put(key_version, k3, true);
            }
        }
        self.custody.sealed = Some(epochs);
        Ok(())
    }

    /// Checks that `k3` may be loaded as `key_version`: `Ok(true)` if it is new, `Ok(false)`
    /// if exactly this K3 is already loaded there.
    fn admit(&self, key_version: u8, k3: &K3) -> Result<bool, Error> {
        if key_version == 0 {
            return Err(Error::InvalidRequest("key_version 0 is reserved (it means: the current epoch)"));
        }
        let fp = k3.fingerprint();
        if self.config.expected_k3.get(&key_version).is_some_and(|want| *want != fp) {
            return Err(Error::K3Conflict { key_version, reason: "this enclave is configured to expect another K3" });
        }
        match self.k3.get_any(key_version) {
            Some((_, loaded)) if loaded == fp => Ok(false),
            Some(_) => Err(Error::K3Conflict { key_version, reason: "the epoch is loaded with another K3" }),
            None if self.k3.len() >= MAX_EPOCHS => Err(Error::InvalidRequest("too many epochs loaded")),
            None => Ok(true),
        }
    }

    /// Loads an admitted K3: pending when a sealer will make it durable, durable otherwise.
    fn load_new(&mut self, key_version: u8, k3: K3) {
        let durable = self.custody.sealer.is_none();
        self.k3.put(key_version, k3, durable);
        self.custody.reprovision = None;
    }

    /// Inside session `id`: open the HPKE-sealed K3 and load it as `key_version`. Once any
    /// epoch is loaded, a new one needs proof of possession of a loaded one: custody belongs
    /// to whoever holds K3, not to whoever reaches the enclave.
    pub(super) fn provision(&mut self, id: &[u8; 16], p: &ProvisionK3, env: &mut impl Env) -> Result<Response, Error> {
        let count = if p.proof_key_version == 0 { 1 } else { 2 };
        let mut k3s = self.open_session_k3s(id, p, PROVISION_INFO_LABEL, count)?;
        let proof = if count == 2 { k3s.pop() } else { None };
        let k3 = k3s.pop().ok_or(Error::Internal(InternalError::Encode))?;
        let already = self.k3.get_any(p.key_version).is_some_and(|(_, fp)| fp == k3.fingerprint());
        if !self.k3.is_empty() && !already {
            let proven = proof.is_some_and(|proof| {
                self.k3.get_any(p.proof_key_version).is_some_and(|(_, fp)| fp == proof.fingerprint())
            });
            if !proven {
                return Err(Error::K3Conflict {
                    key_version: p.key_version,
                    reason: "this enclave holds K3 already: adding an epoch needs the K3 of a loaded one as proof",
                });
            }
        }
        if self.admit(p.key_version, &k3)? {
            self.load_new(p.key_version, k3);
        }
        Ok(Response::CustodyStatus(self.custody_status(env)?))
    }

    /// Inside session `id`: unload an epoch, given proof that the caller holds its K3 (so
    /// it can always be provisioned again: retiring never destroys the only copy).
    pub(super) fn retire(&mut self, id: &[u8; 16], p: &ProvisionK3, env: &mut impl Env) -> Result<Response, Error> {
        if p.proof_key_version != 0 {
            return Err(Error::InvalidRequest("a retirement carries no proof epoch: the K3 itself is the proof"));
        }
        let k3 =
            self.open_session_k3s(id, p, RETIRE_INFO_LABEL, 1)?.pop().ok_or(Error::Internal(InternalError::Encode))?;
        let Some((_, loaded)) = self.k3.get_any(p.key_version) else {
            return Err(Error::UnknownKeyVersion(p.key_version));
        };
        if loaded != k3.fingerprint() {
            return Err(Error::K3Conflict { key_version: p.key_version, reason: "not the K3 of this epoch" });
        }
        if self.k3.len() == 1 {
            return Err(Error::InvalidRequest("the only loaded epoch cannot be retired"));
        }
        self.k3.remove(p.key_version);
        // Nothing derived from a retired epoch survives it.
        self.wallet_cache.clear();
        Ok(Response::CustodyStatus(self.custody_status(env)?))
    }

    fn open_session_k3s(&self, id: &[u8; 16], p: &ProvisionK3, label: &[u8], count: usize) -> Result<Vec<K3>, Error> {
        let slot = self.sessions.get(id).ok_or(Error::UnknownSession)?;
        let info = custody::hpke_info(label, &slot.binding);
        let aad = ProvisionK3::aad(p.key_version, p.proof_key_version);
        transfer::open(&slot.kem_secret, &p.encapsulated_key.0, &p.ciphertext, &info, &aad, count)
            .map_err(|_| Error::InvalidRequest("sealed K3 does not open with this session's attested key"))
    }

    /// B: a one-time import key and evidence over it, for a peer to seal K3 to.
    pub(super) fn peer_offer(&mut self, env: &mut impl Env) -> Result<Response, Error> {
        if self.custody.peer_verifier.is_none() {
            return Err(no_verifier());
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        env.fill_random(secret.as_mut_slice())?;
        let import_pub = session::x25519_public(&secret);
        let platform = self.attester_platform()?;
        let config = self.config.fingerprint();
        let binding = custody::offer_binding(platform, &import_pub, frame::PROTOCOL_VERSION, &config);
        let evidence = self.attest_to(&binding, env)?;
        let created = env.unix_time();
        self.custody.pending_imports.insert(import_pub, PendingImport { secret, created });
        Ok(Response::PeerOffer(PeerOffer {
            protocol_version: frame::PROTOCOL_VERSION,
            import_pub: Bytes(import_pub),
            evidence,
            config: Bytes(config),
        }))
    }

    /// A: every durable epoch, sealed to an offer whose evidence shows an enclave like us.
    pub(super) fn export_for_peer(&mut self, offer: &PeerOffer, env: &mut impl Env) -> Result<Response, Error> {
        if offer.protocol_version != frame::PROTOCOL_VERSION {
            return Err(PeerError("the peer speaks another protocol version".into()).into());
        }
        if offer.config.0 != self.config.fingerprint() {
            return Err(PeerError("the peer is configured for another broker (another deployment)".into()).into());
        }
        self.verify_peer(&offer.evidence, &offer.binding(), env)?;
        let epochs: Vec<(u8, &K3)> = self.k3.iter_durable().collect();
        if epochs.is_empty() {
            return Err(Error::NotProvisioned);
        }
        let header: Vec<Epoch> =
            epochs.iter().map(|(v, k)| Epoch { key_version: *v, k3_fingerprint: Bytes(k.fingerprint()) }).collect();
        let k3s: Vec<&K3> = epochs.iter().map(|(_, k)| *k).collect();
        let mut ikm = Zeroizing::new([0u8; 32]);
        env.fill_random(ikm.as_mut_slice())?;
        let info = custody::hpke_info(REPLICATE_INFO_LABEL, &offer.binding());
        let (enc, ciphertext) = transfer::seal(&offer.import_pub.0, &info, &custody::epochs_aad(&header), &k3s, ikm)
            .map_err(|_| Error::PeerRefused(PeerError("the offer's import key is not usable".into())))?;
        let platform = self.attester_platform()?;
        let mut export = PeerExport {
            import_pub: offer.import_pub,
            epochs: header,
            encapsulated_key: Bytes(enc),
            ciphertext,
            evidence: Evidence { platform, document: Vec::new(), certificates: Vec::new() },
            config: Bytes(self.config.fingerprint()),
        };
        export.evidence = self.attest_to(&export.binding(frame::PROTOCOL_VERSION), env)?;
        Ok(Response::PeerExport(export))
    }

    /// B: load the epochs a peer like us sealed to one of our offers (each offer opens once).
    pub(super) fn import_from_peer(&mut self, export: &PeerExport, env: &mut impl Env) -> Result<Response, Error> {
        if self.custody.peer_verifier.is_none() {
            return Err(no_verifier());
        }
        if export.epochs.is_empty() || export.epochs.len() > MAX_EPOCHS {
            return Err(Error::InvalidRequest("a peer export carries 1 to 64 epochs"));
        }
        // Our offer, consumed whatever happens next: a second attempt needs a fresh offer.
        let pending = self
            .custody
            .pending_imports
            .remove(&export.import_pub.0)
            .ok_or_else(|| PeerError("no outstanding offer of ours for this import key".into()))?;
        if env.unix_time().saturating_sub(pending.created) > IMPORT_KEY_LIFETIME_SECS {
            return Err(PeerError("our offer expired; make a new one".into()).into());
        }
        let config = self.config.fingerprint();
        if export.config.0 != config {
            return Err(PeerError("the exporter is configured for another broker (another deployment)".into()).into());
        }
        self.verify_peer(&export.evidence, &export.binding(frame::PROTOCOL_VERSION), env)?;
        let platform = self.attester_platform()?;
        let offer = custody::offer_binding(platform, &export.import_pub.0, frame::PROTOCOL_VERSION, &config);
        let info = custody::hpke_info(REPLICATE_INFO_LABEL, &offer);
        let k3s = transfer::open(
            &pending.secret,
            &export.encapsulated_key.0,
            &export.ciphertext,
            &info,
            &custody::epochs_aad(&export.epochs),
            export.epochs.len(),
        )
        .map_err(|_| PeerError("the export does not open with our import key".into()))?;
        // An enclave that holds K3 takes epochs only from a peer that shares one of them (a
        // replica of the same deployment), as provisioning needs proof of possession.
        if !self.k3.is_empty()
            && !export
                .epochs
                .iter()
                .any(|e| self.k3.get_any(e.key_version).is_some_and(|(_, fp)| fp == e.k3_fingerprint.0))
        {
            return Err(PeerError("the exporter shares no K3 epoch with this enclave".into()).into());
        }
        let mut admitted = Vec::with_capacity(k3s.len());
        for (epoch, k3) in export.epochs.iter().zip(k3s) {
            if k3.fingerprint() != epoch.k3_fingerprint.0 {
                return Err(PeerError("an exported K3 does not match its fingerprint".into()).into());
            }
            if self.admit(epoch.key_version, &k3)? {
                admitted.push((epoch.key_version, k3));
            }
        }
        if self.k3.len() + admitted.len() > MAX_EPOCHS {
            return Err(Error::InvalidRequest("too many epochs loaded"));
        }
        for (key_version, k3) in admitted {
            self.load_new(key_version, k3);
        }
        Ok(Response::CustodyStatus(self.custody_status(env)?))
    }

    /// The peer's evidence must pass the verifier and carry `binding` as its user data.
    fn verify_peer(&self, evidence: &Evidence, binding: &[u8; 64], env: &impl Env) -> Result<(), Error> {
        let verifier = self.custody.peer_verifier.as_deref().ok_or_else(no_verifier)?;
        let user_data = verifier.verify_peer(evidence, env.unix_time())?;
        // Public values: a plain comparison is fine.
        if user_data != *binding {
            return Err(PeerError("the evidence is not bound to this exchange".into()).into());
        }
        Ok(())
    }

    fn attester_platform(&self) -> Result<sigil_protocol::Platform, Error> {
        self.attester.as_ref().map(|a| a.platform()).ok_or_else(no_attester)
    }

    /// Evidence with `user_data` (replication carries no nonce or signing key fields).
    fn attest_to(&mut self, user_data: &[u8; 64], env: &mut impl Env) -> Result<Evidence, Error> {
        let unix_time = env.unix_time();
        let attester = self.attester.as_mut().ok_or_else(no_attester)?;
        attester
            .attest(&AttestationInput { user_data, nonce: &[], public_key: &[], unix_time })
            .map_err(Error::AttestationUnavailable)
    }
}

fn no_sealer() -> Error {
    Error::Sealing(SealError("this enclave has no sealing key configured".into()))
}

fn no_verifier() -> Error {
    Error::PeerRefused(PeerError("this enclave has no peer verifier (replication needs attestation)".into()))
}

pub(super) fn no_attester() -> Error {
    Error::AttestationUnavailable(crate::attester::AttestError("this enclave has no attester configured".into()))
}
