//! The top level: policy files, `verify_evidence` and `verify_attestation` on the real Nitro
//! and SNP evidence (their own typed errors are in `nitro.rs` / `snp.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "tests")]

use sigil_attestation::{Error, Measurement, Policy, PolicyError, verify_attestation, verify_evidence};
use sigil_protocol::{AttestRequest, Attestation, Bytes, Evidence, Platform};

const NITRO_DOC: &[u8] = include_bytes!("data/nitro/evervault_2022-10-13.cose");
const NITRO_DEBUG_DOC: &[u8] = include_bytes!("data/nitro/evervault_debug_2022-10-12.cose");
const SNP_REPORT: &[u8] = include_bytes!("data/snp/virtee_report_milan.bin");
const SNP_VCEK: &[u8] = include_bytes!("data/snp/virtee_vcek_milan.der");
/// Inside the production Nitro document's chain window, after its timestamp.
const NITRO_NOW: u64 = 1_665_651_500;
/// Inside the virtee VCEK's window (2023-04-03 – 2030-04-03).
const SNP_NOW: u64 = 1_750_000_000;

const PCR0: &str = "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b";
const PCR1: &str = "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f";
const PCR2: &str = "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a";
const MEASUREMENT: &str =
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const AWS_ROOT: &str = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

fn nitro_policy_toml() -> String {
    format!(
        "version = 1\nplatforms = [\"nitro\"]\nmax_age_secs = 300\n\n[nitro]\nroot_sha256 = \"{AWS_ROOT}\"\n\
         pcrs = {{ 0 = \"{PCR0}\", 1 = \"{PCR1}\", 2 = \"{PCR2}\" }}\n"
    )
}

fn snp_policy_toml() -> String {
    format!(
        "version = 1\nplatforms = [\"snp\"]\n\n[snp]\nproducts = [\"milan\"]\nmeasurement = \"{MEASUREMENT}\"\n\
         min_tcb = {{ bootloader = 3, tee = 0, snp = 8, microcode = 115 }}\n"
    )
}

fn nitro_evidence(document: &[u8]) -> Evidence {
    Evidence { platform: Platform::Nitro, document: document.to_vec(), certificates: Vec::new() }
}

fn snp_evidence() -> Evidence {
    Evidence { platform: Platform::Snp, document: SNP_REPORT.to_vec(), certificates: vec![SNP_VCEK.to_vec()] }
}

/// A handshake that the real evidence was of course not made for.
fn handshake(evidence: Evidence) -> (Attestation, AttestRequest) {
    let request = AttestRequest { client_nonce: Bytes([7; 32]), client_pub: Some(Bytes([9; 32])) };
    let attestation = Attestation {
        protocol_version: 1,
        enclave_pub: Some(Bytes([3; 32])),
        signing_pub: Bytes([4; 32]),
        k3_fingerprint: Bytes([5; 32]),
        evidence,
    };
    (attestation, request)
}

#[test]
fn production_nitro_document_verifies_under_a_policy_file() {
    let policy = Policy::from_toml(&nitro_policy_toml()).unwrap();
    let v = verify_evidence(&nitro_evidence(NITRO_DOC), NITRO_NOW, &policy).unwrap();
    assert_eq!(v.platform, Platform::Nitro);
    assert_eq!(hex::encode(v.root_sha256), AWS_ROOT);
    assert!(!v.debug);
    let Measurement::Pcrs(pcrs) = &v.measurement else { panic!("nitro measures PCRs") };
    assert_eq!(hex::encode(&pcrs[&0]), PCR0);
    assert_eq!(v.timestamp_ms, Some(1_665_651_482_136));
}

#[test]
fn production_snp_report_verifies_under_a_policy_file() {
    let policy = Policy::from_toml(&snp_policy_toml()).unwrap();
    let v = verify_evidence(&snp_evidence(), SNP_NOW, &policy).unwrap();
    assert_eq!(v.platform, Platform::Snp);
    assert_eq!(v.measurement, Measurement::Snp(hex::decode(MEASUREMENT).unwrap().try_into().unwrap()));
    assert_eq!(hex::encode(v.root_sha256), "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd");
}

#[test]
fn real_evidence_is_not_bound_to_a_sigil_handshake() {
    // The evervault document has no user data; the virtee report's report_data is someone
    // else's: neither is the binding of this handshake.
    let nitro = Policy::from_toml(&nitro_policy_toml()).unwrap();
    let (att, req) = handshake(nitro_evidence(NITRO_DOC));
    assert_eq!(verify_attestation(&att, &req, NITRO_NOW, &nitro), Err(Error::BindingMismatch));
    let snp = Policy::from_toml(&snp_policy_toml()).unwrap();
    let (att, req) = handshake(snp_evidence());
    assert_eq!(verify_attestation(&att, &req, SNP_NOW, &snp), Err(Error::BindingMismatch));
}

#[test]
fn each_top_level_failure_has_its_variant() {
    let nitro = Policy::from_toml(&nitro_policy_toml()).unwrap();
    let snp = Policy::from_toml(&snp_policy_toml()).unwrap();
    let cases: Vec<(&str, Result<sigil_attestation::Verified, Error>, Error)> = vec![
        (
            "nitro evidence under an snp-only policy",
            verify_evidence(&nitro_evidence(NITRO_DOC), NITRO_NOW, &snp),
            Error::PlatformNotAllowed(Platform::Nitro),
        ),
        ("snp evidence under a nitro-only policy", verify_evidence(&snp_evidence(), SNP_NOW, &nitro), {
            Error::PlatformNotAllowed(Platform::Snp)
        }),
        (
            "sim evidence under a production policy",
            verify_evidence(
                &Evidence { platform: Platform::Sim, document: NITRO_DOC.to_vec(), certificates: Vec::new() },
                NITRO_NOW,
                &nitro,
            ),
            Error::PlatformNotAllowed(Platform::Sim),
        ),
        (
            "certificates next to a nitro document",
            verify_evidence(
                &Evidence { certificates: vec![SNP_VCEK.to_vec()], ..nitro_evidence(NITRO_DOC) },
                NITRO_NOW,
                &nitro,
            ),
            Error::UnexpectedCertificates,
        ),
        ("debug nitro document", verify_evidence(&nitro_evidence(NITRO_DEBUG_DOC), 1_665_582_700, &nitro), {
            Error::Nitro(sigil_attestation::nitro::NitroError::DebugMode)
        }),
        (
            "a newer protocol version",
            {
                let (mut att, req) = handshake(nitro_evidence(NITRO_DOC));
                att.protocol_version = 2;
                verify_attestation(&att, &req, NITRO_NOW, &nitro)
            },
            Error::UnsupportedProtocolVersion(2),
        ),
        (
            "a session requested but no enclave key",
            {
                let (mut att, req) = handshake(nitro_evidence(NITRO_DOC));
                att.enclave_pub = None;
                verify_attestation(&att, &req, NITRO_NOW, &nitro)
            },
            Error::SessionKeyMismatch,
        ),
    ];
    for (i, (name, got, want)) in cases.into_iter().enumerate() {
        assert_eq!(got.err(), Some(want), "case {i}: {name}");
    }
}

#[test]
fn policy_files_are_validated_strictly() {
    let nitro = nitro_policy_toml();
    type Check = fn(&PolicyError) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        ("unknown key", nitro.replace("max_age_secs", "max_age"), |e| matches!(e, PolicyError::Syntax(_))),
        ("version 2", nitro.replace("version = 1", "version = 2"), |e| matches!(e, PolicyError::UnsupportedVersion(2))),
        ("no platform", nitro.replace("[\"nitro\"]", "[]"), |e| matches!(e, PolicyError::Platforms(_))),
        ("unknown platform", nitro.replace("[\"nitro\"]", "[\"tdx\"]"), |e| matches!(e, PolicyError::Platforms(_))),
        ("platform without its section", nitro.replace("[\"nitro\"]", "[\"nitro\", \"snp\"]"), |e| {
            matches!(e, PolicyError::MissingSection("snp"))
        }),
        ("PCR2 not pinned", nitro.replace(&format!(", 2 = \"{PCR2}\""), ""), |e| {
            matches!(e, PolicyError::MissingPin { section: "nitro", .. })
        }),
        ("short PCR", nitro.replace(PCR1, &PCR1[..94]), |e| matches!(e, PolicyError::BadValue { .. })),
        ("PCR index 32", nitro.replace("1 = ", "32 = "), |e| matches!(e, PolicyError::BadValue { .. })),
        ("another nitro root", nitro.replace(AWS_ROOT, &"00".repeat(32)), |e| {
            matches!(e, PolicyError::UnknownNitroRoot)
        }),
        (
            "snp without measurement",
            snp_policy_toml().replace(&format!("measurement = \"{MEASUREMENT}\"\n"), ""),
            |e| matches!(e, PolicyError::MissingPin { section: "snp", .. }),
        ),
        ("unknown snp product", snp_policy_toml().replace("milan", "naples"), |e| {
            matches!(e, PolicyError::BadValue { .. })
        }),
        ("k3 fingerprint not 32 bytes", format!("k3_fingerprint = \"abcd\"\n{nitro}"), |e| {
            matches!(e, PolicyError::BadValue { .. })
        }),
        ("too large", format!("# {}\n{nitro}", "x".repeat(70_000)), |e| matches!(e, PolicyError::TooLarge)),
    ];
    for (i, (name, text, check)) in cases.iter().enumerate() {
        match Policy::from_toml(text) {
            Err(e) => assert!(check(&e), "case {i}: {name}: wrong error {e:?}"),
            Ok(_) => panic!("case {i}: {name}: accepted"),
        }
    }
}

#[test]
fn policies_round_trip_through_toml() {
    for text in [nitro_policy_toml(), snp_policy_toml()] {
        let policy = Policy::from_toml(&text).unwrap();
        let written = policy.to_toml();
        assert_eq!(Policy::from_toml(&written).unwrap(), policy, "{written}");
    }
}

#[test]
fn a_pinned_k3_fingerprint_is_required() {
    let toml = format!("k3_fingerprint = \"0x{}\"\n{}", "05".repeat(32), nitro_policy_toml());
    let policy = Policy::from_toml(&toml).unwrap();
    assert_eq!(policy.k3_fingerprint, Some([5; 32]));
}

/// A build without the `sim` feature never accepts simulated evidence, whatever the policy
/// says (CI runs this file without the feature: `cargo test -p sigil-attestation`).
#[cfg(not(feature = "sim"))]
#[test]
fn without_the_sim_feature_simulated_evidence_and_sim_policies_are_refused() {
    let sim_policy = "version = 1\nplatforms = [\"sim\"]\n\n[sim]\nroot_pem = \"x\"\npcrs = {}\n";
    assert_eq!(Policy::from_toml(sim_policy), Err(PolicyError::SimNotSupported));
    // Even a policy value built by hand that lists sim cannot make it pass.
    let mut policy = Policy::from_toml(&nitro_policy_toml()).unwrap();
    policy.platforms.push(Platform::Sim);
    let sim = Evidence { platform: Platform::Sim, document: NITRO_DOC.to_vec(), certificates: Vec::new() };
    assert_eq!(verify_evidence(&sim, NITRO_NOW, &policy).err(), Some(Error::SimulationNotSupported));
}
