//! K3, the master secret, and the store of its loaded generations (epochs).
//!
//! K3 is 32 bytes. Every wallet and KEK of every user is a pure function of it, so it never
//! leaves this module in clear except as HKDF input keying material.

use alloc::collections::BTreeMap;
use core::fmt;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// HKDF salt of the K3 fingerprint: a dedicated label, so the fingerprint is unrelated to any
/// wallet or KEK derived from the same K3.
pub const FINGERPRINT_SALT: &[u8] = b"sigil/k3-fingerprint/v1";

/// The master secret of one epoch.
///
/// No `Clone`, a redacted `Debug`, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct K3([u8; 32]);

/// Why K3 material was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum K3Error {
    /// Not 64 hex digits (an optional `0x` and surrounding whitespace are tolerated).
    #[error("K3 must be 64 hex characters, optionally prefixed with 0x")]
    BadHex,
}

impl K3 {
    /// Takes ownership of 32 secret bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the `DEV_KEY_SERVICE_MASTER_SECRET` format: 64 hex digits, optional `0x`.
    ///
    /// # Errors
    /// [`K3Error::BadHex`]; the message never echoes the input.
    pub fn from_hex(s: &str) -> Result<Self, K3Error> {
        let s = s.trim();
        let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        let mut out = Zeroizing::new([0u8; 32]);
        if s.len() != 64 {
            return Err(K3Error::BadHex);
        }
        hex::decode_to_slice(s, out.as_mut_slice()).map_err(|_| K3Error::BadHex)?;
        Ok(Self(*out))
    }

    /// A public commitment to this K3: `HKDF-SHA256(salt = FINGERPRINT_SALT, ikm = K3,
    /// info = "", L = 32)`. Shown in status (and bound into attestation evidence) so a client
    /// can tell which K3 an enclave holds without learning anything about it.
    #[must_use]
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
        let _ = Hkdf::<Sha256>::new(Some(FINGERPRINT_SALT), &self.0).expand(&[], &mut out);
        out
    }

    /// The raw secret, for HKDF input only.
    ///
    /// # Security Warning
    /// Never log, copy into a non-zeroizing buffer, or return this.
    pub(crate) const fn dangerous_as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for K3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K3").finish_non_exhaustive()
    }
}

/// One loaded epoch.
struct Slot {
    k3: K3,
    fingerprint: [u8; 32],
    durable: bool,
}

/// Every loaded K3 generation, keyed by its `key_version` byte.
///
/// An epoch is *durable* once a sealed blob holding it has been confirmed (or it came from
/// the enclave's own configuration). Only durable epochs are served: a K3 that a restart
/// could lose never signs or derives anything.
#[derive(Default)]
pub struct K3Store {
    epochs: BTreeMap<u8, Slot>,
}

impl K3Store {
    /// An empty (unprovisioned) store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads `k3` as durable epoch `key_version`, replacing any K3 of that epoch.
    pub fn insert(&mut self, key_version: u8, k3: K3) {
        self.put(key_version, k3, true);
    }

    /// Loads `k3` as epoch `key_version`, durable or pending.
    pub(crate) fn put(&mut self, key_version: u8, k3: K3, durable: bool) {
        let fingerprint = k3.fingerprint();
        self.epochs.insert(key_version, Slot { k3, fingerprint, durable });
    }

    /// Marks a loaded epoch durable (a confirmed blob holds it).
    pub(crate) fn mark_durable(&mut self, key_version: u8) {
        if let Some(slot) = self.epochs.get_mut(&key_version) {
            slot.durable = true;
        }
    }

    /// Unloads an epoch.
    pub(crate) fn remove(&mut self, key_version: u8) -> Option<K3> {
        self.epochs.remove(&key_version).map(|s| s.k3)
    }

    /// The K3 of a durable epoch.
    #[must_use]
    pub fn get(&self, key_version: u8) -> Option<&K3> {
        self.epochs.get(&key_version).filter(|s| s.durable).map(|s| &s.k3)
    }

    /// The K3 of an epoch, durable or not, with its fingerprint.
    pub(crate) fn get_any(&self, key_version: u8) -> Option<(&K3, [u8; 32])> {
        self.epochs.get(&key_version).map(|s| (&s.k3, s.fingerprint))
    }

    /// Whether no durable K3 is loaded (nothing can be served).
    #[must_use]
    pub fn is_unprovisioned(&self) -> bool {
        !self.epochs.values().any(|s| s.durable)
    }

    /// Whether no K3 at all is loaded, durable or pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }

    /// Number of loaded epochs, durable or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    /// The epoch used when none is chosen: the newest durable one.
    #[must_use]
    pub fn current(&self) -> Option<u8> {
        self.epochs.iter().rev().find(|(_, s)| s.durable).map(|(v, _)| *v)
    }

    /// The fingerprint of the [`K3Store::current`] epoch; `None` when unprovisioned.
    #[must_use]
    pub fn current_fingerprint(&self) -> Option<[u8; 32]> {
        self.current().and_then(|v| self.epochs.get(&v)).map(|s| s.fingerprint)
    }

    /// `(key_version, fingerprint)` of every durable epoch, ascending.
    pub fn fingerprints(&self) -> impl Iterator<Item = (u8, [u8; 32])> + '_ {
        self.epochs.iter().filter(|(_, s)| s.durable).map(|(v, s)| (*v, s.fingerprint))
    }

    /// `(key_version, fingerprint, durable)` of every loaded epoch, ascending.
    pub fn states(&self) -> impl Iterator<Item = (u8, [u8; 32], bool)> + '_ {
        self.epochs.iter().map(|(v, s)| (*v, s.fingerprint, s.durable))
    }

    /// `(key_version, K3)` of every durable epoch, ascending.
    pub(crate) fn iter_durable(&self) -> impl Iterator<Item = (u8, &K3)> + '_ {
        self.epochs.iter().filter(|(_, s)| s.durable).map(|(v, s)| (*v, &s.k3))
    }

    /// `(key_version, K3)` of every loaded epoch (durable or not), ascending.
    pub(crate) fn iter_all(&self) -> impl Iterator<Item = (u8, &K3)> + '_ {
        self.epochs.iter().map(|(v, s)| (*v, &s.k3))
    }
}

impl fmt::Debug for K3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K3Store")
            .field("epochs", &self.epochs.keys().collect::<alloc::vec::Vec<_>>())
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

/// K3 = `00 01 … 1f`, the SPEC §3 test-vector secret.
#[cfg(test)]
pub(crate) fn test_k3_seq() -> K3 {
    K3::from_bytes(core::array::from_fn(|i| u8::try_from(i).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_dev_secret_with_and_without_prefix() {
        let a = K3::from_hex(HEX).unwrap();
        let b = K3::from_hex(&format!("0x{}\n", HEX.to_uppercase())).unwrap();
        assert_eq!(a.dangerous_as_bytes(), b.dangerous_as_bytes());
        assert_eq!(a.dangerous_as_bytes()[31], 0x1f);
    }

    #[test]
    fn rejects_bad_dev_secret_without_echoing_it() {
        for bad in ["", "0x", &HEX[..62], &format!("{HEX}00"), &HEX.replace('a', "g")] {
            let e = K3::from_hex(bad).unwrap_err();
            assert!(!format!("{e}").contains("0102"));
        }
    }

    #[test]
    fn debug_never_shows_secret() {
        let k = K3::from_bytes([0xab; 32]);
        let s = format!("{k:?}");
        assert!(!s.contains("ab") && !s.contains("171"), "{s}");
        let mut store = K3Store::new();
        store.insert(1, k);
        let s = format!("{store:?}");
        assert!(!s.contains("ab, ") && !s.contains("171"), "{s}");
    }

    #[test]
    fn newest_epoch_is_current_and_fingerprints_differ() {
        let mut s = K3Store::new();
        assert_eq!(s.current(), None);
        assert_eq!(s.current_fingerprint(), None);
        s.insert(2, K3::from_bytes([2; 32]));
        s.insert(1, K3::from_bytes([1; 32]));
        assert_eq!(s.current(), Some(2));
        let fps: alloc::vec::Vec<_> = s.fingerprints().collect();
        assert_eq!(fps.len(), 2);
        assert_ne!(fps[0].1, fps[1].1);
        assert_ne!(fps[0].1, [1; 32]);
        assert_eq!(s.current_fingerprint(), Some(K3::from_bytes([2; 32]).fingerprint()));
    }

    #[test]
    fn pending_epochs_are_neither_served_nor_current() {
        let mut s = K3Store::new();
        s.put(1, K3::from_bytes([1; 32]), false);
        assert!(s.is_unprovisioned() && !s.is_empty());
        assert_eq!(s.current(), None);
        assert!(s.get(1).is_none());
        assert!(s.get_any(1).is_some());
        s.insert(2, K3::from_bytes([2; 32]));
        s.put(3, K3::from_bytes([3; 32]), false);
        assert_eq!(s.current(), Some(2));
        assert_eq!(s.fingerprints().count(), 1);
        assert_eq!(s.states().filter(|(_, _, d)| !d).count(), 2);
        s.mark_durable(3);
        assert_eq!(s.current(), Some(3));
        assert!(s.remove(3).is_some());
        assert_eq!(s.current(), Some(2));
        assert_eq!(s.len(), 2);
    }
}
