//! AMD SEV-SNP (feature `snp`): attestation reports from the AMD Secure Processor through
//! `/dev/sev-guest`.
//!
//! Each document is the raw 1184-byte `ATTESTATION_REPORT` with `report_data` = the binding
//! hash, requested at VMPL 0. The report is signed by the chip's VCEK (or, on clouds such as
//! AWS, a VLEK); a verifier needs that certificate, which only the host has. We use the
//! *extended* report request, which returns the certificate table the host operator loaded
//! into the hypervisor (`snphost import` / the `SNP_SET_CONFIG` cert blob), and pass its
//! certificates on VCEK/VLEK first, then ASK, then ARK, exactly as stored (normally DER).
//!
//! **Operators:** if the host supplied no certificate table, the evidence carries no
//! certificates and verifiers refuse it. Configure the host's certificate table (VCEK for the
//! current TCB, ASK, ARK); fetching the VCEK from AMD's KDS inside the enclave is not done.
//! The `sev` crate does its `ioctl` (and its `unsafe`) internally; nothing here needs any.

#[cfg(not(target_os = "linux"))]
compile_error!("the `snp` attester needs Linux (`/dev/sev-guest`)");

use alloc::format;
use alloc::vec::Vec;
use core::fmt;

use sev::firmware::guest::Firmware;
use sev::firmware::host::{CertTableEntry, CertType};
use sigil_protocol::attest::MAX_EVIDENCE_CERTIFICATES;
use sigil_protocol::{Evidence, Platform};

use super::{AttestError, AttestationInput, Attester};

/// VMPL 0: the most privileged level, the one the enclave's own code runs at. A report from a
/// less privileged level would say so and a verifier could refuse it.
const VMPL: u32 = 0;

/// An open handle on `/dev/sev-guest`.
pub struct SnpAttester {
    firmware: Firmware,
}

impl fmt::Debug for SnpAttester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnpAttester").finish_non_exhaustive()
    }
}

impl SnpAttester {
    /// Opens `/dev/sev-guest`. Fails outside an SEV-SNP guest (no such device).
    pub fn new() -> Result<Self, AttestError> {
        let firmware = Firmware::open()
            .map_err(|e| AttestError(format!("cannot open /dev/sev-guest: {e} (not an SEV-SNP guest?)")))?;
        Ok(Self { firmware })
    }
}

/// Where a certificate goes in [`Evidence::certificates`]: the report's signer first, then its
/// issuer, then the root. Anything else in the table (CRLs, vendor entries) is not part of
/// the chain and is left out.
fn chain_rank(cert_type: &CertType) -> Option<u8> {
    match cert_type {
        CertType::VCEK | CertType::VLEK => Some(0),
        CertType::ASK => Some(1),
        CertType::ARK => Some(2),
        _ => None,
    }
}

/// The host's certificate table as the evidence's chain: VCEK/VLEK, ASK (or ASVK, which the
/// GHCB table files under the same GUID), ARK, identified by their GUIDs. The host is not
/// trusted; a verifier checks every certificate against its pinned ARK anyway, so this only
/// puts them in the order it expects and bounds how many are sent.
fn order_certificates(table: Vec<CertTableEntry>) -> Vec<Vec<u8>> {
    let mut ranked: Vec<(u8, Vec<u8>)> = table
        .into_iter()
        .filter(|entry| !entry.data.is_empty())
        .filter_map(|entry| chain_rank(&entry.cert_type).map(|rank| (rank, entry.data)))
        .collect();
    // Stable: of two entries of one kind, the host's first stays first.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, der)| der).take(MAX_EVIDENCE_CERTIFICATES).collect()
}

impl Attester for SnpAttester {
    fn platform(&self) -> Platform {
        Platform::Snp
    }

    fn attest(&mut self, input: &AttestationInput<'_>) -> Result<Evidence, AttestError> {
        // Message version `None`: the crate's default (1), which every SNP firmware accepts.
        let (report, table) = self
            .firmware
            .get_ext_report(None, Some(*input.user_data), Some(VMPL))
            .map_err(|e| AttestError(format!("SEV-SNP extended report request failed: {e}")))?;
        let certificates = table.map(order_certificates).unwrap_or_default();
        Ok(Evidence { platform: Platform::Snp, document: report, certificates })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use alloc::vec;

    fn entry(cert_type: CertType, data: &[u8]) -> CertTableEntry {
        CertTableEntry { cert_type, data: data.to_vec() }
    }

    #[test]
    fn signer_first_then_intermediate_then_root_without_other_entries() {
        let table = vec![
            entry(CertType::ARK, b"ark"),
            entry(CertType::CRL, b"crl"),
            entry(CertType::ASK, b"ask"),
            entry(CertType::VCEK, b"vcek"),
            entry(CertType::Empty, b""),
        ];
        assert_eq!(order_certificates(table), vec![b"vcek".to_vec(), b"ask".to_vec(), b"ark".to_vec()]);
        let table = vec![entry(CertType::ASK, b"asvk"), entry(CertType::VLEK, b"vlek")];
        assert_eq!(order_certificates(table), vec![b"vlek".to_vec(), b"asvk".to_vec()]);
        assert!(order_certificates(vec![]).is_empty());
    }

    #[test]
    fn a_hostile_table_is_bounded() {
        let table = (0..100).map(|_| entry(CertType::VCEK, b"x")).collect();
        assert_eq!(order_certificates(table).len(), MAX_EVIDENCE_CERTIFICATES);
    }
}
