//! Strict decoding of the fixed 1184-byte ATTESTATION_REPORT layout (SEV-SNP ABI, versions 2
//! and 3). No cryptography here.
//!
//! Parsed by hand rather than with `sev`'s `AttestationReport`, because `sev` guesses the
//! generation from CPUID/chip-ID heuristics and reports failures as `io::Error`; here every
//! rejection is a typed [`SnpError`], and the TCB layout follows the product the certificate
//! chain proves (see [`RawReport::decode`]).
//!
//! Ignored on purpose (documented so nobody wonders): the reserved words inside the signed
//! region (they are covered by the signature, so they are authentic, merely meaningless), the
//! CPUID and firmware-version bytes (informational), and the unsigned 368 bytes after S
//! (they carry no meaning and no authority).

use super::error::SnpError;
use super::types::{SnpReport, Tcb, TcbLayout};

/// Size of an ATTESTATION_REPORT.
pub(crate) const REPORT_LEN: usize = 0x4A0;
/// The signature covers bytes `0x000..0x2A0`.
pub(crate) const SIGNED_LEN: usize = 0x2A0;
/// R: 72 little-endian bytes.
pub(crate) const SIG_R: usize = 0x2A0;
/// S: 72 little-endian bytes.
pub(crate) const SIG_S: usize = 0x2E8;
/// Width of R and S in the report.
pub(crate) const SIG_COMPONENT_LEN: usize = 72;

/// The only SIGNATURE_ALGO defined: ECDSA P-384 with SHA-384.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Versions whose layout this parser knows (v4/v5 add fields in the reserved area and are
/// refused until they are reviewed and tested).
const SUPPORTED_VERSIONS: [u32; 2] = [2, 3];
/// Guest policy bit 19: the hypervisor may debug the guest.
pub(crate) const POLICY_DEBUG: u64 = 1 << 19;
/// CPUID family of Turin (Zen 5); only v3+ reports carry it.
const CPUID_FAMILY_TURIN: u8 = 0x1A;

// Field offsets (SEV-SNP ABI, Table "ATTESTATION_REPORT Structure").
const VERSION: usize = 0x000;
const GUEST_SVN: usize = 0x004;
const POLICY: usize = 0x008;
const FAMILY_ID: usize = 0x010;
const IMAGE_ID: usize = 0x020;
const VMPL: usize = 0x030;
const SIGNATURE_ALGO: usize = 0x034;
const CURRENT_TCB: usize = 0x038;
const PLATFORM_INFO: usize = 0x040;
const KEY_INFO: usize = 0x048;
const REPORT_DATA: usize = 0x050;
const MEASUREMENT: usize = 0x090;
const HOST_DATA: usize = 0x0C0;
const ID_KEY_DIGEST: usize = 0x0E0;
const AUTHOR_KEY_DIGEST: usize = 0x110;
const REPORT_ID: usize = 0x140;
const REPORT_ID_MA: usize = 0x160;
const REPORTED_TCB: usize = 0x180;
const CPUID_FAM_ID: usize = 0x188;
const CHIP_ID: usize = 0x1A0;
const COMMITTED_TCB: usize = 0x1E0;
const LAUNCH_TCB: usize = 0x1F0;

/// A length- and version-checked report whose TCB fields are still raw, because their layout
/// depends on the product.
#[derive(Debug, Clone)]
pub(crate) struct RawReport<'a> {
    bytes: &'a [u8; REPORT_LEN],
}

/// Copies `N` bytes at a fixed offset. The offsets above are constants inside `REPORT_LEN`,
/// so the slice is always in range.
fn field<const N: usize>(bytes: &[u8; REPORT_LEN], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[offset..offset + N]);
    out
}

fn u32_at(bytes: &[u8; REPORT_LEN], offset: usize) -> u32 {
    u32::from_le_bytes(field(bytes, offset))
}

fn u64_at(bytes: &[u8; REPORT_LEN], offset: usize) -> u64 {
    u64::from_le_bytes(field(bytes, offset))
}

impl<'a> RawReport<'a> {
    /// Checks length, version and signature algorithm.
    pub(crate) fn new(report: &'a [u8]) -> Result<Self, SnpError> {
        let bytes: &[u8; REPORT_LEN] = report.try_into().map_err(|_| SnpError::Length { len: report.len() })?;
        let version = u32_at(bytes, VERSION);
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(SnpError::UnsupportedVersion { version });
        }
        let algo = u32_at(bytes, SIGNATURE_ALGO);
        if algo != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(SnpError::UnsupportedSignatureAlgo { algo });
        }
        Ok(RawReport { bytes })
    }

    /// The whole report.
    pub(crate) fn bytes(&self) -> &'a [u8; REPORT_LEN] {
        self.bytes
    }

    /// The TCB layout the report itself suggests: only a v3 report names its CPU family, and
    /// only Turin (family 1Ah) changes the layout. `verify` overrides this with the product the
    /// certificate chain proves.
    pub(crate) fn layout_hint(&self) -> TcbLayout {
        if u32_at(self.bytes, VERSION) >= 3 && self.bytes[CPUID_FAM_ID] == CPUID_FAMILY_TURIN {
            TcbLayout::Turin
        } else {
            TcbLayout::Legacy
        }
    }

    /// Decodes every field, reading TCB_VERSIONs in `layout`.
    pub(crate) fn decode(&self, layout: TcbLayout) -> SnpReport {
        let b = self.bytes;
        let policy = u64_at(b, POLICY);
        SnpReport {
            version: u32_at(b, VERSION),
            guest_svn: u32_at(b, GUEST_SVN),
            policy,
            family_id: field(b, FAMILY_ID),
            image_id: field(b, IMAGE_ID),
            vmpl: u32_at(b, VMPL),
            signature_algo: u32_at(b, SIGNATURE_ALGO),
            current_tcb: Tcb::decode(field(b, CURRENT_TCB), layout),
            reported_tcb: Tcb::decode(field(b, REPORTED_TCB), layout),
            committed_tcb: Tcb::decode(field(b, COMMITTED_TCB), layout),
            launch_tcb: Tcb::decode(field(b, LAUNCH_TCB), layout),
            platform_info: u64_at(b, PLATFORM_INFO),
            key_info: u32_at(b, KEY_INFO),
            report_data: field(b, REPORT_DATA),
            measurement: field(b, MEASUREMENT),
            host_data: field(b, HOST_DATA),
            id_key_digest: field(b, ID_KEY_DIGEST),
            author_key_digest: field(b, AUTHOR_KEY_DIGEST),
            report_id: field(b, REPORT_ID),
            report_id_ma: field(b, REPORT_ID_MA),
            chip_id: field(b, CHIP_ID),
            debug: policy & POLICY_DEBUG != 0,
            product: None,
            signer: None,
        }
    }
}
