//! AMD SEV-SNP sealing (feature `snp`): the AMD Secure Processor derives a key
//! (`MSG_KEY_REQ` through `/dev/sev-guest`) from the chip's VCEK root, mixing in the guest's
//! launch measurement and guest policy. Another build, another configuration, a debug policy
//! or another chip gets another key, and its blobs fail to open (`reprovision_required`).
//!
//! Note for operators: the key is tied to the chip. A blob does not move to another host;
//! replicas get K3 by attested replication, not by copying blobs.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use core::fmt;
use std::format;
use std::vec::Vec;

use sev::firmware::guest::{DerivedKey, Firmware, GuestFieldSelect};
use sigil_protocol::Platform;
use zeroize::Zeroizing;

use super::{SealError, Sealer, derive_blob_key};

/// VMPL 0, the level the enclave runs at.
const VMPL: u32 = 0;
/// `MSG_KEY_REQ` message version 1: understood by every SNP firmware (version 2 adds the
/// launch mitigation vector, which older firmware lacks).
const MESSAGE_VERSION: u32 = 1;

/// Seals under `HKDF(SNP derived key, salt, "sigil/seal/v1" || measurement)`.
pub struct SnpSealer {
    firmware: Firmware,
    measurement: Vec<u8>,
}

impl fmt::Debug for SnpSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnpSealer").finish_non_exhaustive()
    }
}

impl SnpSealer {
    /// Opens `/dev/sev-guest`. `measurement` is this guest's launch measurement (from its
    /// own verified report); it labels blobs, while the derived key itself binds them.
    ///
    /// # Errors
    /// [`SealError`] outside an SEV-SNP guest.
    pub fn new(measurement: [u8; 48]) -> Result<Self, SealError> {
        let firmware = Firmware::open().map_err(|e| SealError(format!("cannot open /dev/sev-guest: {e}")))?;
        Ok(Self { firmware, measurement: measurement.to_vec() })
    }

    fn platform_key(&mut self) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let mut fields = GuestFieldSelect::default();
        fields.set_measurement(true);
        fields.set_guest_policy(true);
        // root_key_select = false: the chip's VCEK root (not the VMRK).
        let request = DerivedKey::new(false, fields, VMPL, 0, 0, None);
        self.firmware
            .get_derived_key(Some(MESSAGE_VERSION), request)
            .map(Zeroizing::new)
            .map_err(|e| SealError(format!("MSG_KEY_REQ failed: {e}")))
    }
}

impl Sealer for SnpSealer {
    fn platform(&self) -> Platform {
        Platform::Snp
    }

    fn measurement(&self) -> &[u8] {
        &self.measurement
    }

    fn new_key(&mut self, salt: &[u8; 32]) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), SealError> {
        let root = self.platform_key()?;
        Ok((derive_blob_key(&root, salt, &self.measurement), salt.to_vec()))
    }

    fn key(&mut self, handle: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let root = self.platform_key()?;
        Ok(derive_blob_key(&root, handle, &self.measurement))
    }
}
