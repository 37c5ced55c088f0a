//! SEV-SNP verification against real reports from AMD EPYC Milan (see tests/data/README.md for
//! provenance). Expected values come from tests/data/expected.json.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::Rng;
use sigil_attestation::snp::{self, CertRole, ParseProductError, Product, Signer, SnpError, SnpPolicy, SnpReport, Tcb};
use x509_parser::prelude::{FromDer, X509Certificate};

const REPORT: &[u8] = include_bytes!("data/snp/virtee_report_milan.bin");
const VCEK: &[u8] = include_bytes!("data/snp/virtee_vcek_milan.der");
const CHAIN_PEM: &[u8] = include_bytes!("data/snp/cert_chain_milan.pem");
const DEBUG_REPORT: &[u8] = include_bytes!("data/snp/gosev_report_milan_debug.bin");
const DEBUG_VCEK: &[u8] = include_bytes!("data/snp/gosev_vcek_milan.der");
const ARK_GENOA_PEM: &[u8] = include_bytes!("data/snp/ark_genoa.pem");
const ASK_GENOA_PEM: &[u8] = include_bytes!("data/snp/ask_genoa.pem");
const ASVK_MILAN_PEM: &[u8] = include_bytes!("data/snp/asvk_milan.pem");

/// Inside every certificate window involved (2025-06-15).
const INSIDE: u64 = 1_750_000_000;

const MEASUREMENT: &str =
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const REPORT_DATA: &str = "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd";
const CHIP_ID: &str = "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6";
const REPORT_ID: &str = "92b3b47d59f0a2a10a74c5678868a80238cf593c01a82f3cffb878e904c28d5b";
const TCB: Tcb = Tcb::new(3, 0, 8, 115);

const DEBUG_MEASUREMENT: &str =
    "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";
const DEBUG_CHIP_ID: &str = "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d";

fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem).map(|p| p.unwrap().contents).collect()
}

/// ASK then ARK, as virtee/sev ships them.
fn ask_ark() -> (Vec<u8>, Vec<u8>) {
    let mut chain = pem_certs(CHAIN_PEM);
    assert_eq!(chain.len(), 2);
    let ark = chain.pop().unwrap();
    (chain.pop().unwrap(), ark)
}

fn measurement() -> [u8; 48] {
    hex::decode(MEASUREMENT).unwrap().try_into().unwrap()
}

/// What a deployment would use: measurement pinned, TCB floor at the report's own TCB.
fn production() -> SnpPolicy {
    SnpPolicy { measurement: Some(measurement()), min_tcb: Some(TCB), ..SnpPolicy::default() }
}

/// (notBefore, notAfter) of a certificate, unix seconds.
fn window(der: &[u8]) -> (u64, u64) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let v = cert.validity();
    (v.not_before.timestamp().try_into().unwrap(), v.not_after.timestamp().try_into().unwrap())
}

fn vcek() -> Vec<Vec<u8>> {
    vec![VCEK.to_vec()]
}

fn with_byte(bytes: &[u8], at: usize, xor: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= xor;
    out
}

fn with_u32(bytes: &[u8], at: usize, value: u32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    out
}

fn assert_virtee_fields(r: &SnpReport) {
    assert_eq!(r.version, 2);
    assert_eq!(r.guest_svn, 0);
    assert_eq!(r.policy, 0x30000);
    assert!(!r.debug);
    assert_eq!(r.vmpl, 0);
    assert_eq!(r.signature_algo, 1);
    assert_eq!(r.platform_info, 0x1);
    assert_eq!(r.key_info, 0);
    assert_eq!(hex::encode(r.measurement), MEASUREMENT);
    assert_eq!(hex::encode(r.report_data), REPORT_DATA);
    assert_eq!(hex::encode(r.chip_id), CHIP_ID);
    assert_eq!(hex::encode(r.report_id), REPORT_ID);
    assert_eq!(r.host_data, [0; 32]);
    assert_eq!(r.id_key_digest, [0; 48]);
    assert_eq!(r.author_key_digest, [0; 48]);
    assert_eq!(r.family_id, [0; 16]);
    assert_eq!(r.image_id, [0; 16]);
    for tcb in [r.current_tcb, r.reported_tcb, r.committed_tcb, r.launch_tcb] {
        assert_eq!(tcb, TCB);
    }
}

#[test]
fn virtee_report_verifies_with_its_vcek_alone_and_with_ask_and_ark() {
    let (ask, ark) = ask_ark();
    let chains = [vcek(), vec![VCEK.to_vec(), ask.clone()], vec![VCEK.to_vec(), ask, ark]];
    for (i, certs) in chains.iter().enumerate() {
        let r = snp::verify(REPORT, certs, INSIDE, &production()).unwrap_or_else(|e| panic!("chain {i}: {e}"));
        assert_virtee_fields(&r);
        assert_eq!(r.product, Some(Product::Milan), "chain {i}");
        assert_eq!(r.signer, Some(Signer::Vcek), "chain {i}");
    }
}

#[test]
fn parse_decodes_the_expected_fields_without_setting_product_or_signer() {
    let r = snp::parse(REPORT).unwrap();
    assert_virtee_fields(&r);
    assert_eq!((r.product, r.signer), (None, None));

    let d = snp::parse(DEBUG_REPORT).unwrap();
    assert_eq!(d.policy, 0xb0000);
    assert!(d.debug);
    assert_eq!(d.reported_tcb, Tcb::new(2, 0, 5, 68));
    assert_eq!(hex::encode(d.measurement), DEBUG_MEASUREMENT);
    assert_eq!(hex::encode(d.chip_id), DEBUG_CHIP_ID);
    assert_eq!(&d.report_data[..5], &[1, 2, 3, 4, 5]);
}

#[test]
fn vcek_window_is_inclusive_and_one_second_outside_is_refused() {
    let (nb, na) = window(VCEK);
    assert_eq!((nb, na), (1_680_549_823, 1_901_474_623), "2023-04-03 19:23:43 – 2030-04-03 19:23:43 UTC");
    let (nb_i, na_i) = (i64::try_from(nb).unwrap(), i64::try_from(na).unwrap());
    let cases: [(u64, Result<(), SnpError>); 4] = [
        (nb - 1, Err(SnpError::NotYetValid { cert: CertRole::Vcek, not_before: nb_i })),
        (nb, Ok(())),
        (na, Ok(())),
        (na + 1, Err(SnpError::Expired { cert: CertRole::Vcek, not_after: na_i })),
    ];
    for (i, (now, want)) in cases.into_iter().enumerate() {
        let got = snp::verify(REPORT, &vcek(), now, &production()).map(|_| ());
        assert_eq!(got, want, "case {i} (now {now})");
    }
}

#[test]
fn clock_extremes_are_refused_not_wrapped() {
    let (nb, na) = window(VCEK);
    for (i, now) in [0, u64::MAX].into_iter().enumerate() {
        let got = snp::verify(REPORT, &vcek(), now, &production()).unwrap_err();
        let ok = matches!(got, SnpError::NotYetValid { .. } | SnpError::Expired { .. });
        assert!(ok, "case {i}: {got:?} (window {nb}..={na})");
    }
}

#[test]
fn a_changed_byte_anywhere_in_the_signed_region_is_caught() {
    use SnpError::*;
    let bad_sig = || ReportSignatureInvalid;
    let cases: Vec<(usize, u8, SnpError)> = vec![
        // Version 2 -> 3 is still a supported layout, so only the signature catches it.
        (0x000, 0x01, bad_sig()),
        (0x000, 0xff, UnsupportedVersion { version: 0xfd }),
        (0x004, 0x01, bad_sig()), // guest_svn
        (0x008, 0x01, bad_sig()), // policy
        (0x00a, 0x08, bad_sig()), // policy DEBUG bit: the signature is checked before policy
        (0x010, 0x01, bad_sig()), // family_id
        (0x030, 0x01, bad_sig()), // vmpl
        (0x034, 0x01, UnsupportedSignatureAlgo { algo: 0 }),
        (0x038, 0x01, bad_sig()), // current_tcb
        (0x040, 0x01, bad_sig()), // platform_info
        (0x048, 0x04, bad_sig()), // key_info signing key
        (0x050, 0x01, bad_sig()), // report_data
        (0x08f, 0x80, bad_sig()), // report_data, last byte
        (0x090, 0x01, bad_sig()), // measurement
        (0x0c0, 0x01, bad_sig()), // host_data
        (0x0e0, 0x01, bad_sig()), // id_key_digest
        (0x110, 0x01, bad_sig()), // author_key_digest
        (0x140, 0x01, bad_sig()), // report_id
        (0x160, 0x01, bad_sig()), // report_id_ma
        (0x180, 0x01, TcbMismatch { cert: CertRole::Vcek, component: "bootloader", certificate: 3, report: 2 }),
        (0x187, 0x01, TcbMismatch { cert: CertRole::Vcek, component: "microcode", certificate: 115, report: 114 }),
        (0x188, 0x19, bad_sig()), // cpuid family (reserved in v2)
        (0x1a0, 0x01, ChipIdMismatch),
        (0x1df, 0x01, ChipIdMismatch),
        (0x1e0, 0x01, bad_sig()), // committed_tcb
        (0x1e8, 0x01, bad_sig()), // current firmware build
        (0x1f0, 0x01, bad_sig()), // launch_tcb
        (0x1f8, 0x01, bad_sig()), // reserved
        (0x29f, 0x01, bad_sig()), // last signed byte
    ];
    for (i, (at, xor, want)) in cases.into_iter().enumerate() {
        let got = snp::verify(&with_byte(REPORT, at, xor), &vcek(), INSIDE, &production());
        assert_eq!(got, Err(want), "case {i} (byte {at:#x} ^ {xor:#04x})");
    }
}

#[test]
fn a_changed_r_or_s_is_an_invalid_signature_and_nonzero_padding_is_refused() {
    const R: usize = 0x2a0;
    const S: usize = 0x2e8;
    let cases = [
        (R, SnpError::ReportSignatureInvalid),
        (R + 20, SnpError::ReportSignatureInvalid),
        (R + 47, SnpError::ReportSignatureInvalid),
        (S, SnpError::ReportSignatureInvalid),
        (S + 33, SnpError::ReportSignatureInvalid),
        (S + 47, SnpError::ReportSignatureInvalid),
        (R + 48, SnpError::ReportSignatureEncoding),
        (R + 71, SnpError::ReportSignatureEncoding),
        (S + 48, SnpError::ReportSignatureEncoding),
        (S + 71, SnpError::ReportSignatureEncoding),
    ];
    for (i, (at, want)) in cases.into_iter().enumerate() {
        let got = snp::verify(&with_byte(REPORT, at, 0x01), &vcek(), INSIDE, &production());
        assert_eq!(got, Err(want), "case {i} (byte {at:#x})");
    }
}

#[test]
fn zero_r_or_s_is_an_invalid_signature() {
    for (i, at) in [0x2a0, 0x2e8].into_iter().enumerate() {
        let mut report = REPORT.to_vec();
        report[at..at + 72].fill(0);
        let got = snp::verify(&report, &vcek(), INSIDE, &production());
        assert_eq!(got, Err(SnpError::ReportSignatureInvalid), "case {i}");
    }
}

#[test]
fn the_unsigned_tail_after_s_carries_no_authority_and_is_ignored() {
    for (i, at) in [0x330, 0x400, 0x49f].into_iter().enumerate() {
        let got = snp::verify(&with_byte(REPORT, at, 0xff), &vcek(), INSIDE, &production());
        assert!(got.is_ok(), "case {i}: {got:?}");
    }
}

#[test]
fn a_tampered_vcek_fails_its_chain_signature() {
    let chip_in_vcek = VCEK.windows(64).position(|w| w == hex::decode(CHIP_ID).unwrap()).unwrap();
    let cases = [
        // Last byte of the RSA signature.
        VCEK.len() - 1,
        // Middle of the signature.
        VCEK.len() - 200,
        // The hwID inside tbsCertificate: the chain check runs before any extension is read.
        chip_in_vcek + 10,
    ];
    for (i, at) in cases.into_iter().enumerate() {
        let got = snp::verify(REPORT, &[with_byte(VCEK, at, 0x01)], INSIDE, &production());
        assert_eq!(got, Err(SnpError::LeafSignatureInvalid), "case {i} (byte {at})");
    }
}

#[test]
fn malformed_or_wrong_kind_of_leaf_is_refused() {
    let (ask, _) = ask_ark();
    let mut trailing = VCEK.to_vec();
    trailing.push(0);
    let cases: Vec<(Vec<u8>, SnpError)> = vec![
        (Vec::new(), SnpError::LeafMalformed),
        (VCEK[..VCEK.len() - 1].to_vec(), SnpError::LeafMalformed),
        (trailing, SnpError::LeafMalformed),
        (b"not a certificate".to_vec(), SnpError::LeafMalformed),
        // A PSS-signed certificate with an RSA key cannot have signed a report.
        (ask, SnpError::LeafKeyInvalid),
    ];
    for (i, (leaf, want)) in cases.into_iter().enumerate() {
        let got = snp::verify(REPORT, &[leaf], INSIDE, &production());
        assert_eq!(got, Err(want), "case {i}");
    }
}

#[test]
fn a_vcek_from_another_chip_is_a_chip_id_mismatch() {
    let got = snp::verify(REPORT, &[DEBUG_VCEK.to_vec()], INSIDE, &production());
    assert_eq!(got, Err(SnpError::ChipIdMismatch));
}

#[test]
fn tcb_floor_is_enforced_per_component() {
    let floors = [
        Tcb { microcode: 116, ..TCB },
        Tcb { snp: 9, ..TCB },
        Tcb { tee: 1, ..TCB },
        Tcb { bootloader: 4, ..TCB },
        // Newer microcode does not excuse an older SNP firmware.
        Tcb { snp: 9, microcode: 0, ..TCB },
        // An FMC floor cannot be met by a Milan report, which has no FMC.
        Tcb { fmc: Some(0), ..TCB },
    ];
    for (i, floor) in floors.into_iter().enumerate() {
        let policy = SnpPolicy { min_tcb: Some(floor), ..production() };
        let got = snp::verify(REPORT, &vcek(), INSIDE, &policy);
        assert_eq!(got, Err(SnpError::TcbBelowFloor { reported: TCB, floor }), "case {i}");
    }
    for (i, floor) in [TCB, Tcb::default(), Tcb::new(3, 0, 8, 0), Tcb::new(0, 0, 0, 115)].into_iter().enumerate() {
        let policy = SnpPolicy { min_tcb: Some(floor), ..production() };
        assert!(snp::verify(REPORT, &vcek(), INSIDE, &policy).is_ok(), "met case {i}");
    }
}

#[test]
fn a_different_pinned_measurement_is_a_mismatch() {
    let mut other = measurement();
    other[47] ^= 1;
    let policy = SnpPolicy { measurement: Some(other), ..production() };
    let got = snp::verify(REPORT, &vcek(), INSIDE, &policy);
    assert_eq!(
        got,
        Err(SnpError::MeasurementMismatch { expected: hex::encode(other), actual: MEASUREMENT.to_owned() })
    );
}

#[test]
fn debug_guest_is_refused_by_default_and_verifies_when_debug_is_allowed() {
    let certs = [DEBUG_VCEK.to_vec()];
    let strict = SnpPolicy::default();
    assert_eq!(snp::verify(DEBUG_REPORT, &certs, INSIDE, &strict), Err(SnpError::Debug));
    // Debug is checked before the measurement pin.
    let pinned = SnpPolicy { measurement: Some([0; 48]), ..SnpPolicy::default() };
    assert_eq!(snp::verify(DEBUG_REPORT, &certs, INSIDE, &pinned), Err(SnpError::Debug));

    let lax = SnpPolicy { allow_debug: true, ..SnpPolicy::default() };
    let r = snp::verify(DEBUG_REPORT, &certs, INSIDE, &lax).unwrap();
    assert!(r.debug);
    assert_eq!(r.policy, 0xb0000);
    assert_eq!((r.product, r.signer), (Some(Product::Milan), Some(Signer::Vcek)));
    assert_eq!(hex::encode(r.chip_id), DEBUG_CHIP_ID);
}

#[test]
fn a_milan_vcek_is_refused_when_the_policy_allows_only_other_products() {
    let cases = [vec![Product::Genoa], vec![Product::Turin], vec![Product::Genoa, Product::Turin]];
    for (i, products) in cases.into_iter().enumerate() {
        let policy = SnpPolicy { products, ..production() };
        let got = snp::verify(REPORT, &vcek(), INSIDE, &policy);
        assert_eq!(got, Err(SnpError::ProductNotAllowed { product: Product::Milan }), "case {i}");
    }
    let milan = SnpPolicy { products: vec![Product::Milan], ..production() };
    assert!(snp::verify(REPORT, &vcek(), INSIDE, &milan).is_ok());
}

#[test]
fn supplied_intermediates_and_arks_must_be_the_built_in_ones() {
    let (ask, ark) = ask_ark();
    let ark_genoa = pem_certs(ARK_GENOA_PEM).remove(0);
    let ask_genoa = pem_certs(ASK_GENOA_PEM).remove(0);
    let asvk_milan = pem_certs(ASVK_MILAN_PEM).remove(0);
    let milan = Product::Milan;
    let cases: Vec<(Vec<Vec<u8>>, SnpError)> = vec![
        (vec![VCEK.to_vec(), ask.clone(), ark_genoa], SnpError::SuppliedArkNotPinned { product: milan }),
        (vec![VCEK.to_vec(), ask.clone(), ask.clone()], SnpError::SuppliedArkNotPinned { product: milan }),
        (
            vec![VCEK.to_vec(), ask_genoa],
            SnpError::SuppliedIntermediateMismatch { product: milan, cert: CertRole::Ask },
        ),
        (
            vec![VCEK.to_vec(), asvk_milan],
            SnpError::SuppliedIntermediateMismatch { product: milan, cert: CertRole::Ask },
        ),
        (
            vec![VCEK.to_vec(), ark.clone()],
            SnpError::SuppliedIntermediateMismatch { product: milan, cert: CertRole::Ask },
        ),
        (vec![VCEK.to_vec(), ask.clone(), ark.clone(), ark], SnpError::TooManyCertificates { count: 4 }),
        (vec![], SnpError::NoCertificates),
    ];
    for (i, (certs, want)) in cases.into_iter().enumerate() {
        let got = snp::verify(REPORT, &certs, INSIDE, &production());
        assert_eq!(got, Err(want), "case {i}");
    }
}

#[test]
fn reports_of_the_wrong_length_are_refused_by_parse_and_verify() {
    let mut long = REPORT.to_vec();
    long.push(0);
    let cases: [&[u8]; 5] = [&[], &REPORT[..1], &REPORT[..1183], &long, &[REPORT, REPORT].concat()];
    for (i, report) in cases.into_iter().enumerate() {
        let want = Err(SnpError::Length { len: report.len() });
        assert_eq!(snp::parse(report), want, "parse case {i}");
        assert_eq!(snp::verify(report, &vcek(), INSIDE, &production()), want, "verify case {i}");
    }
}

#[test]
fn only_versions_2_and_3_are_accepted() {
    for (i, version) in [0u32, 1, 4, 5, u32::MAX].into_iter().enumerate() {
        let report = with_u32(REPORT, 0, version);
        let want = Err(SnpError::UnsupportedVersion { version });
        assert_eq!(snp::parse(&report), want, "parse case {i}");
        assert_eq!(snp::verify(&report, &vcek(), INSIDE, &production()), want, "verify case {i}");
    }
    assert_eq!(snp::parse(&with_u32(REPORT, 0, 3)).unwrap().version, 3);
}

#[test]
fn only_signature_algorithm_1_is_accepted() {
    for (i, algo) in [0u32, 2, 3, u32::MAX].into_iter().enumerate() {
        let report = with_u32(REPORT, 0x34, algo);
        let want = Err(SnpError::UnsupportedSignatureAlgo { algo });
        assert_eq!(snp::parse(&report), want, "parse case {i}");
        assert_eq!(snp::verify(&report, &vcek(), INSIDE, &production()), want, "verify case {i}");
    }
}

#[test]
fn report_errors_come_before_certificate_errors() {
    // A bad report with no certificates names the report, per the documented order.
    assert_eq!(snp::verify(&REPORT[..10], &[], INSIDE, &production()), Err(SnpError::Length { len: 10 }));
}

#[test]
fn a_v3_report_from_a_turin_cpu_decodes_the_turin_tcb_layout() {
    // Synthetic (unsigned) report: version 3, CPUID family 1Ah, Turin TCB bytes
    // fmc 1, bootloader 2, tee 3, snp 4, microcode 5.
    let mut report = with_u32(REPORT, 0, 3);
    report[0x188] = 0x1a;
    report[0x180..0x188].copy_from_slice(&[1, 2, 3, 4, 0, 0, 0, 5]);
    let r = snp::parse(&report).unwrap();
    assert_eq!(r.reported_tcb, Tcb { bootloader: 2, tee: 3, snp: 4, microcode: 5, fmc: Some(1) });
    // Milan's layout for the same bytes, as a v2 report.
    let mut v2 = REPORT.to_vec();
    v2[0x180..0x188].copy_from_slice(&[1, 2, 3, 4, 0, 0, 0, 5]);
    assert_eq!(snp::parse(&v2).unwrap().reported_tcb, Tcb::new(1, 2, 0, 5));
}

#[test]
fn products_round_trip_through_their_names() {
    for p in Product::ALL {
        assert_eq!(p.name().parse::<Product>(), Ok(p));
        assert_eq!(p.name().to_uppercase().parse::<Product>(), Ok(p));
        assert_eq!(p.to_string(), p.name());
    }
    assert_eq!(["milan", "genoa", "turin"], Product::ALL.map(|p| p.name()));
    assert_eq!("rome".parse::<Product>(), Err(ParseProductError { name: "rome".to_owned() }));
}

#[test]
fn tcb_floor_comparison_is_component_wise() {
    let t = Tcb::new(3, 0, 8, 115);
    assert!(t.meets(&t));
    assert!(!t.meets(&Tcb::new(4, 0, 0, 0)));
    assert!(!Tcb::new(9, 9, 7, 255).meets(&t));
    let turin = Tcb { fmc: Some(2), ..t };
    assert!(turin.meets(&Tcb { fmc: Some(2), ..t }));
    assert!(!turin.meets(&Tcb { fmc: Some(3), ..t }));
    assert!(turin.meets(&t), "a floor without fmc leaves fmc unconstrained");
    assert_eq!(turin.to_string(), "bootloader 3 tee 0 snp 8 microcode 115 fmc 2");
}

#[test]
fn error_messages_are_lowercase_without_a_final_period() {
    let errors = [
        SnpError::Length { len: 3 },
        SnpError::UnsupportedVersion { version: 1 },
        SnpError::UnsupportedSignatureAlgo { algo: 2 },
        SnpError::NoCertificates,
        SnpError::TooManyCertificates { count: 4 },
        SnpError::LeafMalformed,
        SnpError::LeafSignatureAlgorithm,
        SnpError::LeafKeyInvalid,
        SnpError::LeafSignatureInvalid,
        SnpError::ProductNotAllowed { product: Product::Milan },
        SnpError::VlekNotAllowed { product: Product::Genoa },
        SnpError::BuiltinCertificateInvalid { product: Product::Turin, cert: CertRole::Asvk },
        SnpError::ArkPinMismatch { product: Product::Milan },
        SnpError::ArkSelfSignatureInvalid { product: Product::Milan },
        SnpError::IntermediateSignatureInvalid { product: Product::Milan, cert: CertRole::Ask },
        SnpError::SuppliedIntermediateMismatch { product: Product::Milan, cert: CertRole::Ask },
        SnpError::SuppliedArkNotPinned { product: Product::Milan },
        SnpError::NotYetValid { cert: CertRole::Vcek, not_before: 1 },
        SnpError::Expired { cert: CertRole::Ark, not_after: 1 },
        SnpError::MissingExtension { cert: CertRole::Vcek, oid: "1.3.6.1.4.1.3704.1.4" },
        SnpError::MalformedExtension { cert: CertRole::Vlek, oid: "1.3.6.1.4.1.3704.1.3.1" },
        SnpError::ChipIdMismatch,
        SnpError::TcbMismatch { cert: CertRole::Vcek, component: "snp", certificate: 8, report: 7 },
        SnpError::ReportSignatureEncoding,
        SnpError::ReportSignatureInvalid,
        SnpError::Debug,
        SnpError::MeasurementMismatch { expected: "00".into(), actual: "01".into() },
        SnpError::TcbBelowFloor { reported: TCB, floor: TCB },
    ];
    for (i, e) in errors.iter().enumerate() {
        let msg = e.to_string();
        assert!(msg.chars().next().is_some_and(|c| !c.is_uppercase()), "case {i}: {msg}");
        assert!(!msg.ends_with('.'), "case {i}: {msg}");
    }
    assert_eq!(
        SnpError::ProductNotAllowed { product: Product::Milan }.to_string(),
        "vcek/vlek is signed by the milan intermediate, and the policy does not allow milan"
    );
}

#[test]
fn fuzz_report_never_panics_on_real_reports_and_mutations() {
    let seeds: Vec<Vec<u8>> = vec![
        REPORT.to_vec(),
        DEBUG_REPORT.to_vec(),
        [REPORT, VCEK].concat(),
        [DEBUG_REPORT, DEBUG_VCEK].concat(),
        [REPORT, DEBUG_VCEK].concat(),
    ];
    for seed in &seeds {
        snp::fuzz_report(seed);
    }
    let mut rng = Rng(0x005e_ed5e_7a11_0c47);
    for _ in 0..2000 {
        let mut data = seeds[rng.below(seeds.len())].clone();
        match rng.below(5) {
            // Flip a few bits anywhere (report or appended certificate).
            0 | 1 => {
                for _ in 0..=rng.below(4) {
                    let at = rng.below(data.len());
                    data[at] ^= 1 << rng.below(8);
                }
            }
            // Overwrite a byte with an extreme value.
            2 => {
                let at = rng.below(data.len());
                data[at] = [0x00, 0x7f, 0x80, 0xff][rng.below(4)];
            }
            // Truncate.
            3 => data.truncate(rng.below(data.len() + 1)),
            // Append garbage.
            _ => data.extend((0..rng.below(64)).map(|_| rng.next().to_le_bytes()[0])),
        }
        snp::fuzz_report(&data);
    }
}
