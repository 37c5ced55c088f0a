//! Judging a replication peer: injected into the sans-IO core like the attester.
//!
//! An enclave releases K3 only to a peer that runs exactly what it runs, and accepts K3 only
//! from one: same platform, same measurement, not in debug mode, evidence chaining to the
//! platform's pinned root and fresh. The verifier is built *from the enclave's own evidence*
//! (see `runtime::peer`), never from anything an operator or host supplies, so a host cannot
//! talk an enclave into a laxer policy.

use alloc::string::String;
use core::fmt;
use sigil_protocol::Evidence;

/// Why a peer's evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer refused: {0}")]
pub struct PeerError(pub String);

/// Decides whether evidence comes from an enclave like this one.
pub trait PeerVerifier: Send {
    /// Verifies `evidence` at `now_unix` and returns its 64 bytes of user data (which the
    /// core compares with the binding it expects).
    ///
    /// # Errors
    /// [`PeerError`] naming the failure: another measurement, debug mode, a broken chain,
    /// stale evidence, another platform.
    fn verify_peer(&self, evidence: &Evidence, now_unix: u64) -> Result<[u8; 64], PeerError>;
}

impl fmt::Debug for dyn PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerVerifier").finish_non_exhaustive()
    }
}
