//! The replication peer verifier (see [`crate::peer`]): built from this enclave's *own*
//! evidence, so it accepts exactly the enclaves that run what this one runs.
//!
//! At start the runtime asks its attester for one piece of evidence and verifies it with
//! `sigil-attestation` against the platform's pinned root (AWS Nitro G1, AMD's ARKs, or, in
//! simulation, the sim root this enclave's attester uses). The result fixes the peer policy:
//! the same platform, the same PCR0/1/2 (Nitro, sim) or launch measurement and product (SNP),
//! never debug, evidence at most [`PEER_MAX_AGE_SECS`] old. An enclave that is itself in debug
//! mode gets no verifier: its memory is readable by the host, so it neither sends nor
//! receives K3.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString as _};
use std::vec;
use std::vec::Vec;

use sha2::{Digest as _, Sha512};
use sigil_attestation::nitro::NitroPolicy;
use sigil_attestation::snp::{Signer, SnpPolicy};
use sigil_attestation::{Measurement, Policy, Verified};
use sigil_protocol::{Evidence, Platform};

use crate::attester::{AttestationInput, Attester};
use crate::peer::{PeerError, PeerVerifier};

/// Oldest peer evidence accepted (Nitro and sim documents carry a timestamp; an SNP report
/// does not, and its freshness comes from the one-time keys bound into it).
pub const PEER_MAX_AGE_SECS: u64 = 300;

/// Accepts evidence with this enclave's platform and measurement, never debug.
#[derive(Debug, Clone)]
pub struct SameMeasurement {
    policy: Policy,
    platform: Platform,
    measurement: Vec<u8>,
}

impl SameMeasurement {
    /// Asks `attester` for evidence about itself and builds the verifier from it. `sim_root`
    /// is the DER root of a simulated attester (ignored on real platforms).
    ///
    /// # Errors
    /// A one-line reason: the platform would not attest, its own evidence does not verify,
    /// or it runs in debug mode.
    pub fn from_attester(attester: &mut dyn Attester, now_unix: u64, sim_root: Option<&[u8]>) -> Result<Self, String> {
        let probe: [u8; 64] = Sha512::digest(b"sigil/self-measurement/v1").into();
        let evidence = attester
            .attest(&AttestationInput { user_data: &probe, nonce: &[], public_key: &[], unix_time: now_unix })
            .map_err(|e| e.to_string())?;
        Self::from_own_evidence(&evidence, now_unix, sim_root)
    }

    /// Builds the verifier from evidence this enclave produced about itself.
    ///
    /// # Errors
    /// As [`SameMeasurement::from_attester`].
    pub fn from_own_evidence(own: &Evidence, now_unix: u64, sim_root: Option<&[u8]>) -> Result<Self, String> {
        let read_all = reading_policy(own.platform, sim_root)?;
        let me = sigil_attestation::verify_evidence(own, now_unix, &read_all)
            .map_err(|e| format!("this enclave's own evidence does not verify: {e}"))?;
        if me.debug {
            return Err("this enclave runs in debug mode: replication is disabled".into());
        }
        let (policy, measurement) = peer_policy(&read_all, &me)?;
        Ok(Self { policy, platform: own.platform, measurement })
    }

    /// The platform peers must share.
    #[must_use]
    pub const fn platform(&self) -> Platform {
        self.platform
    }

    /// This enclave's measurement (PCR0‖PCR1‖PCR2, or the SNP launch measurement): what its
    /// sealed blobs are bound to, and what peers must show.
    #[must_use]
    pub fn measurement(&self) -> &[u8] {
        &self.measurement
    }
}

/// A policy that verifies the chain and signature of `platform` evidence but pins nothing,
/// to read this enclave's own measurement.
fn reading_policy(platform: Platform, sim_root: Option<&[u8]>) -> Result<Policy, String> {
    let nitro = NitroPolicy { pcrs: BTreeMap::new(), max_age_secs: None, allow_debug: true };
    let mut policy = Policy {
        platforms: vec![platform],
        max_age_secs: PEER_MAX_AGE_SECS,
        allow_debug: true,
        k3_fingerprint: None,
        nitro: None,
        snp: None,
        sim: None,
    };
    match platform {
        Platform::Nitro => policy.nitro = Some(nitro),
        Platform::Snp => {
            policy.snp = Some(SnpPolicy {
                products: Vec::new(),
                measurement: None,
                min_tcb: None,
                allow_debug: true,
                allow_vlek: true,
            });
        }
        Platform::Sim => {
            let root_der = sim_root.ok_or("a simulated enclave needs its sim root to judge peers")?.to_vec();
            policy.sim = Some(sigil_attestation::policy::SimPolicy { root_der, nitro });
        }
        other => return Err(format!("no peer verification for platform {}", other.label())),
    }
    Ok(policy)
}

/// The policy peers must satisfy: `read_all` with this enclave's measurement pinned and
/// debug refused.
fn peer_policy(read_all: &Policy, me: &Verified) -> Result<(Policy, Vec<u8>), String> {
    let mut policy = read_all.clone();
    policy.allow_debug = false;
    let measurement = match &me.measurement {
        Measurement::Pcrs(pcrs) => {
            let pinned: BTreeMap<u8, Vec<u8>> =
                [0u8, 1, 2].iter().filter_map(|i| pcrs.get(i).map(|v| (*i, v.clone()))).collect();
            if pinned.len() != 3 {
                return Err("this enclave's evidence lacks PCR0, PCR1 or PCR2".into());
            }
            let measurement = pinned.values().flatten().copied().collect();
            let nitro = NitroPolicy { pcrs: pinned, max_age_secs: Some(PEER_MAX_AGE_SECS), allow_debug: false };
            if let Some(sim) = policy.sim.as_mut() {
                sim.nitro = nitro;
            } else {
                policy.nitro = Some(nitro);
            }
            measurement
        }
        Measurement::Snp(m) => {
            let report = me.snp.as_ref().ok_or("SNP evidence without its report")?;
            policy.snp = Some(SnpPolicy {
                products: report.product.into_iter().collect(),
                measurement: Some(*m),
                min_tcb: None,
                allow_debug: false,
                allow_vlek: report.signer == Some(Signer::Vlek),
            });
            m.to_vec()
        }
    };
    Ok((policy, measurement))
}

impl PeerVerifier for SameMeasurement {
    fn verify_peer(&self, evidence: &Evidence, now_unix: u64) -> Result<[u8; 64], PeerError> {
        if evidence.platform != self.platform {
            return Err(PeerError(format!(
                "the peer runs on {}, this enclave on {}",
                evidence.platform.label(),
                self.platform.label()
            )));
        }
        let v = sigil_attestation::verify_evidence(evidence, now_unix, &self.policy)
            .map_err(|e| PeerError(e.to_string()))?;
        if v.debug {
            return Err(PeerError("the peer runs in debug mode".into()));
        }
        Ok(v.user_data)
    }
}
