//! The public data types of the SEV-SNP verifier: products, TCB versions, the policy and the
//! decoded report.

use core::fmt;
use core::str::FromStr;

/// An AMD EPYC generation with SEV-SNP, i.e. one AMD root of trust (ARK) and its intermediates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Product {
    /// 3rd generation EPYC (family 19h, models 00h–0Fh).
    Milan,
    /// 4th generation EPYC, including Bergamo and Siena (family 19h, models 10h–1Fh, A0h–AFh).
    Genoa,
    /// 5th generation EPYC (family 1Ah). Its TCB_VERSION layout differs (it adds an FMC SPL).
    Turin,
}

impl Product {
    /// Every product this verifier has pinned roots for.
    pub const ALL: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];

    /// Lowercase name, as used in policies and in error messages ("milan", "genoa", "turin").
    pub fn name(&self) -> &'static str {
        match self {
            Product::Milan => "milan",
            Product::Genoa => "genoa",
            Product::Turin => "turin",
        }
    }

    /// The product name AMD uses in certificate common names ("Milan" in "SEV-Milan").
    pub(crate) fn amd_name(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
        }
    }

    /// Which byte layout this product's firmware uses for TCB_VERSION fields.
    pub(crate) fn tcb_layout(self) -> TcbLayout {
        match self {
            Product::Milan | Product::Genoa => TcbLayout::Legacy,
            Product::Turin => TcbLayout::Turin,
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A product name that is not "milan", "genoa" or "turin".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sev-snp product {name:?} (expected milan, genoa or turin)")]
pub struct ParseProductError {
    /// The rejected name, as given.
    pub name: String,
}

impl FromStr for Product {
    type Err = ParseProductError;

    /// Accepts the lowercase names from [`Product::name`], ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Product::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseProductError { name: s.to_owned() })
    }
}

/// How the eight TCB_VERSION bytes are laid out; Turin moved the fields and added FMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcbLayout {
    /// Milan and Genoa: byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode.
    Legacy,
    /// Turin: byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 7 microcode.
    Turin,
}

/// A decoded TCB_VERSION: the security patch levels of the firmware components.
///
/// `fmc` is `Some` only for Turin, whose layout carries an FMC (first mutable code) level.
/// Construct floors with [`Tcb::new`] or `Tcb { .., ..Default::default() }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tcb {
    /// PSP boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
    /// Turin only: FMC SPL. `None` on Milan/Genoa; in a floor, `None` means "not constrained".
    pub fmc: Option<u8>,
}

impl Tcb {
    /// A Milan/Genoa-style TCB (no FMC component).
    pub const fn new(bootloader: u8, tee: u8, snp: u8, microcode: u8) -> Self {
        Tcb { bootloader, tee, snp, microcode, fmc: None }
    }

    /// Decodes the eight little-endian TCB_VERSION bytes in the given layout.
    pub(crate) fn decode(raw: [u8; 8], layout: TcbLayout) -> Self {
        match layout {
            TcbLayout::Legacy => Tcb { bootloader: raw[0], tee: raw[1], snp: raw[6], microcode: raw[7], fmc: None },
            TcbLayout::Turin => {
                Tcb { bootloader: raw[1], tee: raw[2], snp: raw[3], microcode: raw[7], fmc: Some(raw[0]) }
            }
        }
    }

    /// True when every component is at or above `floor`'s (a component-wise order, not a
    /// lexicographic one: a newer microcode never excuses an older SNP firmware). A floor FMC of
    /// `None` is unconstrained; a floor FMC of `Some` requires this TCB to carry one.
    pub fn meets(&self, floor: &Tcb) -> bool {
        let fmc_ok = match (floor.fmc, self.fmc) {
            (None, _) => true,
            (Some(min), Some(have)) => have >= min,
            (Some(_), None) => false,
        };
        self.bootloader >= floor.bootloader
            && self.tee >= floor.tee
            && self.snp >= floor.snp
            && self.microcode >= floor.microcode
            && fmc_ok
    }
}

impl fmt::Display for Tcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bootloader {} tee {} snp {} microcode {}", self.bootloader, self.tee, self.snp, self.microcode)?;
        if let Some(fmc) = self.fmc {
            write!(f, " fmc {fmc}")?;
        }
        Ok(())
    }
}

/// What a verified report must satisfy beyond a valid AMD signature chain.
///
/// `Default` allows every product, pins nothing and refuses debug guests and VLEKs; a production
/// policy must also pin `measurement`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnpPolicy {
    /// Products whose ARK may anchor the chain; empty means all of [`Product::ALL`].
    pub products: Vec<Product>,
    /// Expected launch measurement; `None` leaves it unpinned.
    pub measurement: Option<[u8; 48]>,
    /// Floor on `reported_tcb`, compared component by component (see [`Tcb::meets`]).
    pub min_tcb: Option<Tcb>,
    /// Accept guests whose policy lets the hypervisor debug them (guest policy bit 19).
    pub allow_debug: bool,
    /// Accept reports signed by a VLEK (cloud-provider key certified by AMD's ASVK), not a VCEK.
    pub allow_vlek: bool,
}

impl SnpPolicy {
    /// The products this policy accepts, with "empty" expanded to all of them.
    pub(crate) fn allows(&self, product: Product) -> bool {
        self.products.is_empty() || self.products.contains(&product)
    }
}

/// Which kind of AMD key signed the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signer {
    /// Versioned Chip Endorsement Key: per chip and TCB, certified by the product's ASK.
    Vcek,
    /// Versioned Loaded Endorsement Key: per cloud provider, certified by the product's ASVK.
    Vlek,
}

/// A decoded ATTESTATION_REPORT (versions 2 and 3).
///
/// `product` and `signer` are `None` from [`parse`](super::parse) and set by
/// [`verify`](super::verify). Without a verified product the TCB layout is inferred from the
/// report itself (Turin when a v3 report's CPUID family is 1Ah, Milan/Genoa otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReport {
    /// Report format version (2 or 3).
    pub version: u32,
    /// Guest SVN from the ID block.
    pub guest_svn: u32,
    /// Guest policy the guest was launched with; bit 19 is DEBUG.
    pub policy: u64,
    /// Family ID from the ID block.
    pub family_id: [u8; 16],
    /// Image ID from the ID block.
    pub image_id: [u8; 16],
    /// VMPL of the guest that requested the report.
    pub vmpl: u32,
    /// Signature algorithm; always 1 (ECDSA P-384 with SHA-384) once parsed.
    pub signature_algo: u32,
    /// TCB the platform currently runs.
    pub current_tcb: Tcb,
    /// TCB the report is signed at; the VCEK is derived from (and certifies) this one.
    pub reported_tcb: Tcb,
    /// TCB the platform has committed to (anti-rollback floor).
    pub committed_tcb: Tcb,
    /// TCB at the time the guest was launched.
    pub launch_tcb: Tcb,
    /// PLATFORM_INFO flags (SMT enabled, TSME enabled, ...).
    pub platform_info: u64,
    /// KEY_INFO flags (bit 0 author key present, bit 1 chip ID masked, bits 4:2 signing key).
    pub key_info: u32,
    /// The 64 bytes the guest asked to be bound into the report.
    pub report_data: [u8; 64],
    /// Launch measurement of the guest.
    pub measurement: [u8; 48],
    /// Data the host supplied at launch.
    pub host_data: [u8; 32],
    /// SHA-384 of the ID key that signed the ID block (zero without one).
    pub id_key_digest: [u8; 48],
    /// SHA-384 of the author key that certified the ID key (zero without one).
    pub author_key_digest: [u8; 48],
    /// Report ID of this guest.
    pub report_id: [u8; 32],
    /// Report ID of this guest's migration agent.
    pub report_id_ma: [u8; 32],
    /// Unique chip identifier (zero when the guest masked it).
    pub chip_id: [u8; 64],
    /// Guest policy bit 19: the hypervisor may debug (read and write) guest memory.
    pub debug: bool,
    /// Product whose AMD root anchored the verified chain; set by `verify`.
    pub product: Option<Product>,
    /// Key kind that signed the report; set by `verify`.
    pub signer: Option<Signer>,
}
