//! The VCEK/VLEK's AMD extensions must describe the report it signed: the hwID is the chip and
//! the SPL extensions are the `reported_tcb` (AMD derives the VCEK from exactly that TCB).
//!
//! Encodings are checked strictly: SPLs are minimal DER INTEGERs in 0..=255; the hwID is the
//! 64-byte chip ID (Turin: its 8-byte short ID, or 64 bytes), raw or DER-wrapped (see [`hw_id`]);
//! a duplicated extension is refused.

use x509_parser::certificate::X509Certificate;

use super::error::{CertRole, SnpError};
use super::types::{Product, Signer, SnpReport};

const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HW_ID: &str = "1.3.6.1.4.1.3704.1.4";

/// CHIP_ID length in the report, and of a Milan/Genoa hwID.
const CHIP_ID_LEN: usize = 64;
/// Turin chip IDs are 8 bytes, zero-padded to 64 in the report.
const TURIN_HWID_LEN: usize = 8;

/// Checks the leaf's extensions against the report: chip ID first (VCEK only), then TCB, so a
/// VCEK of another chip is reported as such even when its TCB also differs.
pub(crate) fn check(
    leaf: &X509Certificate<'_>,
    product: Product,
    signer: Signer,
    report: &SnpReport,
) -> Result<(), SnpError> {
    let role = match signer {
        Signer::Vcek => CertRole::Vcek,
        Signer::Vlek => CertRole::Vlek,
    };
    let ext = Extensions { leaf, role };
    // A VLEK belongs to a cloud provider, not a chip: it has no hwID to compare.
    if signer == Signer::Vcek {
        let hwid =
            hw_id(ext.value(OID_HW_ID)?, product).ok_or(SnpError::MalformedExtension { cert: role, oid: OID_HW_ID })?;
        let matches = if hwid.len() == TURIN_HWID_LEN {
            report.chip_id[..TURIN_HWID_LEN] == *hwid && report.chip_id[TURIN_HWID_LEN..].iter().all(|&b| b == 0)
        } else {
            hwid == report.chip_id
        };
        if !matches {
            return Err(SnpError::ChipIdMismatch);
        }
    }

    let tcb = &report.reported_tcb;
    let mut components = vec![
        ("bootloader", OID_BL_SPL, tcb.bootloader),
        ("tee", OID_TEE_SPL, tcb.tee),
        ("snp", OID_SNP_SPL, tcb.snp),
        ("microcode", OID_UCODE_SPL, tcb.microcode),
    ];
    if let Some(fmc) = tcb.fmc {
        components.push(("fmc", OID_FMC_SPL, fmc));
    }
    for (component, oid, in_report) in components {
        let in_cert = ext.small_integer(oid)?;
        if in_cert != in_report {
            return Err(SnpError::TcbMismatch { cert: role, component, certificate: in_cert, report: in_report });
        }
    }
    Ok(())
}

/// Typed access to one leaf's extensions.
struct Extensions<'c, 'a> {
    leaf: &'c X509Certificate<'a>,
    role: CertRole,
}

impl<'c, 'a> Extensions<'c, 'a> {
    /// The extnValue of the single extension with `oid`.
    fn value(&self, oid: &'static str) -> Result<&'c [u8], SnpError> {
        let mut found = self.leaf.extensions().iter().filter(|e| e.oid.to_id_string() == oid);
        let first = found.next().ok_or(SnpError::MissingExtension { cert: self.role, oid })?;
        if found.next().is_some() {
            return Err(SnpError::MalformedExtension { cert: self.role, oid });
        }
        Ok(first.value)
    }

    /// A DER INTEGER in 0..=255 (minimal encoding: `02 01 0x..7f` or `02 02 00 80..ff`).
    fn small_integer(&self, oid: &'static str) -> Result<u8, SnpError> {
        let malformed = SnpError::MalformedExtension { cert: self.role, oid };
        match *self.value(oid)? {
            [0x02, 0x01, v] if v < 0x80 => Ok(v),
            [0x02, 0x02, 0x00, v] if v >= 0x80 => Ok(v),
            _ => Err(malformed),
        }
    }
}

/// The chip ID inside a hwID extnValue. AMD has issued it both raw (the extnValue octets are
/// the ID itself, as in the virtee Milan VCEK) and wrapped in a DER OCTET STRING; the total
/// length tells them apart unambiguously (64 raw, 66 wrapped; on Turin also 8 raw, 10 wrapped).
fn hw_id(value: &[u8], product: Product) -> Option<&[u8]> {
    let id_len_ok = |len: usize| len == CHIP_ID_LEN || (product == Product::Turin && len == TURIN_HWID_LEN);
    if id_len_ok(value.len()) {
        return Some(value);
    }
    match value {
        [0x04, len, contents @ ..] if usize::from(*len) == contents.len() && id_len_ok(contents.len()) => {
            Some(contents)
        }
        _ => None,
    }
}
