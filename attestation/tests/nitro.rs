//! The Nitro attestation-document verifier (SPEC §5) against two real AWS documents
//! (`data/nitro/`, provenance in `data/README.md`, decoded fields in `data/expected.json`) and
//! against synthetic documents signed by an rcgen P-384 chain, for the checks real documents
//! cannot reach (CA flags, path length, key usage, future timestamps).
//!
//! Real documents must be verified at an explicit time inside their leaf's ~3 h window.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns: a failed expectation is a test failure"
)]

mod common;
use ciborium::Value;
use common::Rng;
use hex_literal::hex;
use sigil_attestation::nitro::{self, NitroDocument, NitroError, NitroPolicy};
use std::collections::BTreeMap;

// ---- the real documents and their facts (data/expected.json) ---------------------------------

const PROD: &[u8] = include_bytes!("data/nitro/evervault_2022-10-13.cose");
const DEBUG: &[u8] = include_bytes!("data/nitro/evervault_debug_2022-10-12.cose");

/// Leaf window of `PROD`, inclusive.
const PROD_START: u64 = 1_665_651_479;
const PROD_END: u64 = 1_665_662_282;
/// A time inside every certificate window of `PROD`, 18 s after its timestamp.
const PROD_NOW: u64 = 1_665_651_500;
const PROD_TIMESTAMP_MS: u64 = 1_665_651_482_136;
const PROD_MODULE_ID: &str = "i-020b6af9246d90e92-enc0183d09086c24190";

const DEBUG_START: u64 = 1_665_582_591;
const DEBUG_END: u64 = 1_665_593_394;
const DEBUG_NOW: u64 = 1_665_582_700;
const DEBUG_TIMESTAMP_MS: u64 = 1_665_582_606_081;
const DEBUG_MODULE_ID: &str = "i-03ad7cdb817437eeb-enc0183cc7569b3f6e1";

const PCR0: [u8; 48] =
    hex!("f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b");
const PCR1: [u8; 48] =
    hex!("bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f");
const PCR2: [u8; 48] =
    hex!("d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a");
const PCR3: [u8; 48] =
    hex!("4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa");
const PCR4: [u8; 48] =
    hex!("1f442c86d494a88185642086d904ed89f62fb66ee9997d7b1a4f040faab3bba4244c768a584e5778195b3afc715637c6");
const PCR8: [u8; 48] =
    hex!("8790eb3cce6c83d07e84b126dc61ca923333d6f66615c4a79157de48c5ab2418bdc60746ea7b7afbff03a1c6210201cb");
const DEBUG_PCR4: [u8; 48] =
    hex!("615fa5b1a8838d392d8e54aacc3d9ac0db87d63cb826516c4cc94307c986fe465b29f3f54a55a2f121265528ae0aa6a7");
const PROD_NONCE: [u8; 256] = hex!(
    "cb3dc2eb76c0c1344adf10cc4868591e5bb7fa4b4a8069e144762f71ea1d0017e23f89ba9db04eb26b20fca1a954447d"
    "5fb466067b06a6a22eed8100c73b398a4f85a099f8ffcf84c654485590158c7d966e8b09af224654f97f63ec07096c78"
    "925f961eff653fd4f3aff684f07f7505722be06316cf8c48d643a33aba4af214991708ab2ee1ee85d42d0ad218915a36"
    "9d62a483e60538ed8d0fb3d7f34712d895b24bd971a425cbfa9efd2c5e9d511656064260f8faf9cf69c5306137e748d9"
    "bcddb4d0d3e01fba1acb9ca35ff11694ab32bd135effe00124ee939b0c21db78cf8e50e37ce0eed59e5e6322197addae"
    "d909dcc2bfe5195ed32567a64eb59db3"
);

/// Both real documents are: 0x84, bstr(4) protected `{1: -35}`, empty map, bstr(2-byte length)
/// payload, bstr(96) signature. So the payload starts at byte 10 and the signature is the tail.
const PAYLOAD_OFFSET: usize = 10;
const SIGNATURE_LEN: usize = 96;

/// Pins PCR0/1/2 and a 5-minute age, rejects debug: what production deploys.
fn production_policy() -> NitroPolicy {
    NitroPolicy {
        pcrs: BTreeMap::from([(0, PCR0.to_vec()), (1, PCR1.to_vec()), (2, PCR2.to_vec())]),
        max_age_secs: Some(300),
        allow_debug: false,
    }
}

/// Pins the PCRs but not the age, for checks at the far ends of the certificate window.
fn production_policy_without_age() -> NitroPolicy {
    NitroPolicy { max_age_secs: None, ..production_policy() }
}

fn verify_prod(document: &[u8], now: u64) -> Result<NitroDocument, NitroError> {
    nitro::verify(document, nitro::aws_nitro_root_g1(), now, &production_policy_without_age())
}

fn is_policy_error(error: &NitroError) -> bool {
    matches!(
        error,
        NitroError::DebugMode
            | NitroError::PcrMissing { .. }
            | NitroError::PcrMismatch { .. }
            | NitroError::Stale { .. }
            | NitroError::TimestampInFuture
    )
}

// ---- re-encoding helpers ---------------------------------------------------------------------

/// A COSE_Sign1 taken apart into its four items.
struct Parts {
    protected: Vec<u8>,
    unprotected: Vec<(Value, Value)>,
    payload: Value,
    signature: Vec<u8>,
}

fn split(document: &[u8]) -> Parts {
    let Value::Array(items) = ciborium::from_reader::<Value, _>(document).unwrap() else { panic!("not an array") };
    let [Value::Bytes(protected), Value::Map(unprotected), payload, Value::Bytes(signature)] =
        <[Value; 4]>::try_from(items).unwrap()
    else {
        panic!("unexpected cose shape")
    };
    Parts { protected, unprotected, payload, signature }
}

fn assemble(parts: Parts) -> Vec<u8> {
    encode(&Value::Array(vec![
        Value::Bytes(parts.protected),
        Value::Map(parts.unprotected),
        parts.payload,
        Value::Bytes(parts.signature),
    ]))
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// The payload map of `document`.
fn payload_entries(document: &[u8]) -> Vec<(Value, Value)> {
    let Value::Bytes(payload) = split(document).payload else { panic!("no payload") };
    let Value::Map(entries) = ciborium::from_reader::<Value, _>(payload.as_slice()).unwrap() else {
        panic!("payload is not a map")
    };
    entries
}

/// `document` with its payload map replaced (the signature is kept, so it no longer verifies).
fn with_entries(document: &[u8], entries: Vec<(Value, Value)>) -> Vec<u8> {
    let mut parts = split(document);
    parts.payload = Value::Bytes(encode(&Value::Map(entries)));
    assemble(parts)
}

/// `document` with the payload field `name` changed by `edit` (`None` removes it).
fn with_field(document: &[u8], name: &str, edit: impl FnOnce(Option<Value>) -> Option<Value>) -> Vec<u8> {
    let mut entries = payload_entries(document);
    let position = entries.iter().position(|(key, _)| key.as_text() == Some(name));
    let current = position.map(|i| entries.remove(i).1);
    if let Some(value) = edit(current) {
        entries.push((Value::Text(name.to_owned()), value));
    }
    with_entries(document, entries)
}

fn cabundle_of(document: &[u8]) -> Vec<Vec<u8>> {
    nitro::parse(document).unwrap().cabundle
}

fn with_cabundle(document: &[u8], cabundle: Vec<Vec<u8>>) -> Vec<u8> {
    with_field(document, "cabundle", |_| Some(Value::Array(cabundle.into_iter().map(Value::Bytes).collect())))
}

// ---- the real production document ----------------------------------------------------------

#[test]
fn production_document_verifies_in_its_window_and_decodes_to_expected_json() {
    let document = nitro::verify(PROD, nitro::aws_nitro_root_g1(), PROD_NOW, &production_policy()).unwrap();

    assert_eq!(document.module_id, PROD_MODULE_ID);
    assert_eq!(document.digest, "SHA384");
    assert_eq!(document.timestamp_ms, PROD_TIMESTAMP_MS);
    assert_eq!(document.nonce.as_deref(), Some(&PROD_NONCE[..]));
    assert_eq!(document.public_key, None);
    assert_eq!(document.user_data, None);
    assert!(!document.debug);
    assert_eq!(document.pcrs.len(), 16);
    assert_eq!(document.pcrs.keys().copied().collect::<Vec<_>>(), (0..16).collect::<Vec<u8>>());
    let nonzero: BTreeMap<u8, Vec<u8>> =
        document.pcrs.iter().filter(|(_, v)| v.iter().any(|&b| b != 0)).map(|(&k, v)| (k, v.clone())).collect();
    let expected_nonzero = BTreeMap::from([
        (0, PCR0.to_vec()),
        (1, PCR1.to_vec()),
        (2, PCR2.to_vec()),
        (3, PCR3.to_vec()),
        (4, PCR4.to_vec()),
        (8, PCR8.to_vec()),
    ]);
    assert_eq!(nonzero, expected_nonzero);
    assert!(document.pcrs.values().all(|v| v.len() == 48));
    assert_eq!(document.cabundle.len(), 4);
    assert_eq!(document.cabundle[0], nitro::aws_nitro_root_g1());
}

#[test]
fn production_document_verifies_with_every_nonzero_pcr_pinned() {
    let mut policy = production_policy();
    policy.pcrs.extend([(3, PCR3.to_vec()), (4, PCR4.to_vec()), (8, PCR8.to_vec()), (5, vec![0; 48])]);
    nitro::verify(PROD, nitro::aws_nitro_root_g1(), PROD_NOW, &policy).unwrap();
}

#[test]
fn production_document_verifies_at_both_inclusive_ends_of_the_leaf_window() {
    verify_prod(PROD, PROD_START).unwrap();
    verify_prod(PROD, PROD_END).unwrap();
}

#[test]
fn production_document_one_second_before_the_leaf_window_is_not_yet_valid() {
    assert_eq!(verify_prod(PROD, PROD_START - 1), Err(NitroError::NotYetValid { index: 0 }));
}

#[test]
fn production_document_one_second_after_the_leaf_window_has_expired() {
    assert_eq!(verify_prod(PROD, PROD_END + 1), Err(NitroError::Expired { index: 0 }));
}

#[test]
fn production_document_years_later_has_an_expired_intermediate() {
    // 2023: the leaf and every intermediate are long expired. The chain is walked from the root
    // down, so the first expired certificate met is the regional CA (depth 3).
    assert_eq!(verify_prod(PROD, 1_700_000_000), Err(NitroError::Expired { index: 3 }));
}

#[test]
fn parse_decodes_the_fields_without_checking_time_or_signatures() {
    let verified = verify_prod(PROD, PROD_NOW).unwrap();
    assert_eq!(nitro::parse(PROD).unwrap(), verified);
    // A broken signature and a wrong root do not matter to parse.
    let mut broken = PROD.to_vec();
    *broken.last_mut().unwrap() ^= 1;
    assert_eq!(nitro::parse(&broken).unwrap(), verified);
}

// ---- tampering ---------------------------------------------------------------------------------

#[test]
fn every_flipped_header_and_payload_byte_is_rejected_before_policy() {
    let signature_start = PROD.len() - SIGNATURE_LEN;
    // Every byte of the envelope head, every 37th byte of the payload (certificates, PCRs,
    // CBOR heads alike), and the signature's own head.
    let positions = (0..PAYLOAD_OFFSET)
        .chain((PAYLOAD_OFFSET..signature_start).step_by(37))
        .chain(signature_start - 2..signature_start);
    let mut checked = 0;
    for position in positions {
        let mut tampered = PROD.to_vec();
        tampered[position] ^= 0x01;
        match verify_prod(&tampered, PROD_NOW) {
            Ok(_) => panic!("byte {position} flipped: document still verifies"),
            Err(error) if is_policy_error(&error) => {
                panic!("byte {position} flipped: got past the signature checks, failed only on policy: {error:?}")
            }
            Err(_) => checked += 1,
        }
    }
    assert!(checked > 120, "only {checked} positions checked");
}

#[test]
fn every_flipped_signature_byte_is_signature_invalid() {
    for position in PROD.len() - SIGNATURE_LEN..PROD.len() {
        let mut tampered = PROD.to_vec();
        tampered[position] ^= 0x01;
        assert_eq!(
            verify_prod(&tampered, PROD_NOW),
            Err(NitroError::SignatureInvalid),
            "signature byte {} flipped",
            position - (PROD.len() - SIGNATURE_LEN)
        );
    }
}

#[test]
fn a_changed_pcr_in_the_payload_breaks_the_cose_signature() {
    let tampered = with_field(PROD, "pcrs", |pcrs| {
        let Some(Value::Map(mut pcrs)) = pcrs else { panic!("pcrs") };
        pcrs[0].1 = Value::Bytes(vec![0; 48]);
        Some(Value::Map(pcrs))
    });
    // Debug mode would be the policy verdict; the signature check comes first.
    assert_eq!(verify_prod(&tampered, PROD_NOW), Err(NitroError::SignatureInvalid));
}

// ---- the chain ---------------------------------------------------------------------------------

#[test]
fn another_root_is_untrusted() {
    let other_root = Chain::new(ChainOptions::default()).root_der;
    assert_eq!(nitro::verify(PROD, &other_root, PROD_NOW, &production_policy()), Err(NitroError::UntrustedRoot));
}

#[test]
fn a_cabundle_starting_with_another_root_is_untrusted_even_if_that_root_signs_nothing() {
    let mut cabundle = cabundle_of(PROD);
    cabundle[0] = Chain::new(ChainOptions::default()).root_der;
    let tampered = with_cabundle(PROD, cabundle);
    assert_eq!(verify_prod(&tampered, PROD_NOW), Err(NitroError::UntrustedRoot));
}

#[test]
fn an_invalid_trusted_root_is_root_invalid() {
    assert_eq!(nitro::verify(PROD, b"not a certificate", PROD_NOW, &production_policy()), Err(NitroError::RootInvalid));
    assert_eq!(nitro::verify(PROD, &[], PROD_NOW, &production_policy()), Err(NitroError::RootInvalid));
}

#[test]
fn dropping_any_cabundle_entry_is_a_chain_error_not_a_signature_error() {
    // cabundle = [root, regional, zonal, instance]; after dropping one, depths are
    // leaf 0, cabundle[2] 1, cabundle[1] 2, root 3.
    let expected = [
        NitroError::UntrustedRoot,            // root gone: cabundle[0] is now the regional CA
        NitroError::ChainBroken { index: 2 }, // regional gone: zonal is not issued by the root
        NitroError::ChainBroken { index: 1 }, // zonal gone: instance CA is not issued by regional
        NitroError::ChainBroken { index: 0 }, // instance CA gone: leaf is not issued by zonal
    ];
    for (dropped, expected) in expected.into_iter().enumerate() {
        let mut cabundle = cabundle_of(PROD);
        cabundle.remove(dropped);
        let tampered = with_cabundle(PROD, cabundle);
        assert_eq!(verify_prod(&tampered, PROD_NOW), Err(expected), "cabundle[{dropped}] dropped");
    }
}

#[test]
fn a_corrupted_intermediate_signature_is_chain_signature_invalid() {
    // The last byte of a certificate's DER is the last byte of its signature's `s`.
    for (bundle_index, depth) in [(1, 3), (2, 2), (3, 1)] {
        let mut cabundle = cabundle_of(PROD);
        *cabundle[bundle_index].last_mut().unwrap() ^= 1;
        let tampered = with_cabundle(PROD, cabundle);
        assert_eq!(
            verify_prod(&tampered, PROD_NOW),
            Err(NitroError::ChainSignatureInvalid { index: depth }),
            "cabundle[{bundle_index}]"
        );
    }
}

#[test]
fn an_intermediate_from_the_other_document_does_not_chain() {
    // Both documents share the regional CA but have different zonal CAs.
    let mut cabundle = cabundle_of(PROD);
    cabundle[2] = cabundle_of(DEBUG)[2].clone();
    let tampered = with_cabundle(PROD, cabundle);
    assert_eq!(verify_prod(&tampered, PROD_NOW), Err(NitroError::ChainBroken { index: 1 }));
}

#[test]
fn a_truncated_certificate_is_malformed() {
    let tampered = with_field(PROD, "certificate", |leaf| {
        let Some(Value::Bytes(mut leaf)) = leaf else { panic!("certificate") };
        leaf.pop();
        Some(Value::Bytes(leaf))
    });
    assert_eq!(verify_prod(&tampered, PROD_NOW), Err(NitroError::CertificateMalformed { index: 0 }));
}

// ---- the debug document ------------------------------------------------------------------------

#[test]
fn debug_document_is_rejected_under_the_production_policy() {
    assert_eq!(
        nitro::verify(DEBUG, nitro::aws_nitro_root_g1(), DEBUG_NOW, &production_policy()),
        Err(NitroError::DebugMode)
    );
}

#[test]
fn debug_document_verifies_when_debug_is_allowed() {
    let policy = NitroPolicy {
        pcrs: BTreeMap::from([(0, vec![0; 48]), (3, PCR3.to_vec()), (4, DEBUG_PCR4.to_vec())]),
        max_age_secs: Some(300),
        allow_debug: true,
    };
    let document = nitro::verify(DEBUG, nitro::aws_nitro_root_g1(), DEBUG_NOW, &policy).unwrap();
    assert!(document.debug);
    assert_eq!(document.module_id, DEBUG_MODULE_ID);
    assert_eq!(document.timestamp_ms, DEBUG_TIMESTAMP_MS);
    assert_eq!(document.public_key.as_deref(), Some(&b"my super secret key"[..]));
    assert_eq!(document.user_data.as_deref(), Some(&b"hello, world!"[..]));
    assert_eq!(document.nonce, None);
    assert_eq!(document.pcrs.len(), 16);
    for (&index, value) in &document.pcrs {
        let expected = match index {
            3 => PCR3.to_vec(),
            4 => DEBUG_PCR4.to_vec(),
            _ => vec![0; 48],
        };
        assert_eq!(*value, expected, "pcr{index}");
    }
}

#[test]
fn debug_document_window_is_inclusive_and_enforced() {
    let policy = NitroPolicy { allow_debug: true, ..NitroPolicy::default() };
    let root = nitro::aws_nitro_root_g1();
    nitro::verify(DEBUG, root, DEBUG_START, &policy).unwrap();
    nitro::verify(DEBUG, root, DEBUG_END, &policy).unwrap();
    assert_eq!(nitro::verify(DEBUG, root, DEBUG_START - 1, &policy), Err(NitroError::NotYetValid { index: 0 }));
    assert_eq!(nitro::verify(DEBUG, root, DEBUG_END + 1, &policy), Err(NitroError::Expired { index: 0 }));
}

// ---- policy ------------------------------------------------------------------------------------

#[test]
fn a_wrong_pinned_pcr_is_a_mismatch_naming_its_index() {
    for index in [0u8, 1, 2] {
        let mut policy = production_policy();
        policy.pcrs.get_mut(&index).unwrap()[47] ^= 1;
        assert_eq!(
            nitro::verify(PROD, nitro::aws_nitro_root_g1(), PROD_NOW, &policy),
            Err(NitroError::PcrMismatch { index })
        );
    }
    let mut policy = production_policy();
    policy.pcrs.insert(8, PCR3.to_vec());
    assert_eq!(
        nitro::verify(PROD, nitro::aws_nitro_root_g1(), PROD_NOW, &policy),
        Err(NitroError::PcrMismatch { index: 8 })
    );
}

#[test]
fn a_pinned_pcr_absent_from_the_document_is_missing() {
    let mut policy = production_policy();
    policy.pcrs.insert(16, vec![0; 48]);
    assert_eq!(
        nitro::verify(PROD, nitro::aws_nitro_root_g1(), PROD_NOW, &policy),
        Err(NitroError::PcrMissing { index: 16 })
    );
}

#[test]
fn a_document_older_than_the_max_age_is_stale() {
    let issued = PROD_TIMESTAMP_MS / 1000;
    let root = nitro::aws_nitro_root_g1();
    nitro::verify(PROD, root, issued + 300, &production_policy()).unwrap();
    assert_eq!(nitro::verify(PROD, root, issued + 301, &production_policy()), Err(NitroError::Stale { age_secs: 301 }));
    // Without a max age, the same time passes.
    nitro::verify(PROD, root, issued + 301, &production_policy_without_age()).unwrap();
}

#[test]
fn the_empty_policy_accepts_the_production_document() {
    nitro::verify(PROD, nitro::aws_nitro_root_g1(), PROD_NOW, &NitroPolicy::default()).unwrap();
}

// ---- envelope structure ----------------------------------------------------------------------

#[test]
fn empty_and_truncated_documents_are_malformed() {
    assert_eq!(verify_prod(&[], PROD_NOW), Err(NitroError::CoseMalformed));
    assert_eq!(nitro::parse(&[]), Err(NitroError::CoseMalformed));
    for len in [1, 2, 9, 10, 100, PROD.len() / 2, PROD.len() - SIGNATURE_LEN, PROD.len() - 1] {
        assert_eq!(verify_prod(&PROD[..len], PROD_NOW), Err(NitroError::CoseMalformed), "truncated to {len}");
    }
}

#[test]
fn the_tagged_form_verifies() {
    let mut tagged = vec![0xd2]; // tag(18)
    tagged.extend_from_slice(PROD);
    assert_eq!(verify_prod(&tagged, PROD_NOW), verify_prod(PROD, PROD_NOW));
    assert!(verify_prod(&tagged, PROD_NOW).is_ok());
}

#[test]
fn other_tags_are_malformed() {
    for head in [&[0xd8, 0x62][..], &[0xd1], &[0xd2, 0xd2]] {
        let mut tagged = head.to_vec();
        tagged.extend_from_slice(PROD);
        assert_eq!(verify_prod(&tagged, PROD_NOW), Err(NitroError::CoseMalformed), "head {head:02x?}");
    }
}

#[test]
fn a_trailing_byte_is_rejected() {
    for document in [PROD.to_vec(), [&[0xd2], PROD].concat()] {
        let mut trailing = document;
        trailing.push(0x00);
        assert_eq!(verify_prod(&trailing, PROD_NOW), Err(NitroError::TrailingBytes { count: 1 }));
        assert_eq!(nitro::parse(&trailing), Err(NitroError::TrailingBytes { count: 1 }));
    }
}

#[test]
fn es256_in_the_protected_header_is_rejected() {
    let mut parts = split(PROD);
    parts.protected = encode(&Value::Map(vec![(1.into(), (-7).into())]));
    assert_eq!(verify_prod(&assemble(parts), PROD_NOW), Err(NitroError::UnsupportedAlgorithm));
}

#[test]
fn a_protected_header_without_an_algorithm_is_rejected() {
    for protected in [Vec::new(), encode(&Value::Map(Vec::new()))] {
        let mut parts = split(PROD);
        parts.protected = protected;
        assert_eq!(verify_prod(&assemble(parts), PROD_NOW), Err(NitroError::UnsupportedAlgorithm));
    }
}

#[test]
fn a_protected_header_with_anything_besides_es384_is_rejected() {
    let extras: [(Value, Value); 3] = [
        (2.into(), Value::Array(vec![1.into()])),  // crit
        (4.into(), Value::Bytes(b"kid".to_vec())), // kid
        ((-65_000).into(), 1.into()),              // private label
    ];
    for extra in extras {
        let mut parts = split(PROD);
        parts.protected = encode(&Value::Map(vec![(1.into(), (-35).into()), extra.clone()]));
        assert_eq!(verify_prod(&assemble(parts), PROD_NOW), Err(NitroError::ProtectedHeaderInvalid), "{extra:?}");
    }
}

#[test]
fn an_algorithm_in_the_unprotected_header_is_rejected() {
    let mut parts = split(PROD);
    parts.unprotected = vec![(1.into(), (-35).into())];
    assert_eq!(verify_prod(&assemble(parts), PROD_NOW), Err(NitroError::UnprotectedHeaderInvalid));
}

#[test]
fn an_informational_unprotected_header_is_ignored() {
    let mut parts = split(PROD);
    parts.unprotected = vec![(4.into(), Value::Bytes(b"kid".to_vec()))];
    verify_prod(&assemble(parts), PROD_NOW).unwrap();
}

#[test]
fn a_detached_payload_is_rejected() {
    let mut parts = split(PROD);
    parts.payload = Value::Null;
    assert_eq!(verify_prod(&assemble(parts), PROD_NOW), Err(NitroError::PayloadDetached));
}

#[test]
fn a_signature_that_is_not_96_bytes_is_rejected() {
    for len in [0, 64, 95, 97, 104] {
        let mut parts = split(PROD);
        parts.signature.resize(len, 0);
        assert_eq!(verify_prod(&assemble(parts), PROD_NOW), Err(NitroError::SignatureLength { len }));
    }
}

#[test]
fn a_wrong_shape_is_malformed() {
    let shapes = [
        Value::Array(Vec::new()),
        Value::Map(Vec::new()),
        Value::Bytes(PROD.to_vec()),
        Value::Array(vec![Value::Bytes(Vec::new()); 3]),
        Value::Array(vec![Value::Bytes(Vec::new()); 5]),
    ];
    for shape in shapes {
        assert_eq!(nitro::parse(&encode(&shape)), Err(NitroError::CoseMalformed), "{shape:?}");
    }
}

#[test]
fn an_oversized_document_is_refused_before_parsing() {
    let mut huge = PROD.to_vec();
    huge.resize(nitro::MAX_DOCUMENT_LEN + 1, 0);
    let too_large = NitroError::TooLarge { len: nitro::MAX_DOCUMENT_LEN + 1, max: nitro::MAX_DOCUMENT_LEN };
    assert_eq!(verify_prod(&huge, PROD_NOW), Err(too_large.clone()));
    assert_eq!(nitro::parse(&huge), Err(too_large));
    // At exactly the limit it is parsed (and here fails on the padding).
    huge.truncate(nitro::MAX_DOCUMENT_LEN);
    assert_eq!(nitro::parse(&huge), Err(NitroError::TrailingBytes { count: nitro::MAX_DOCUMENT_LEN - PROD.len() }));
}

/// A CBOR byte-string head + body (2-byte length form).
fn bstr(body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap().to_be_bytes();
    [&[0x59, len[0], len[1]][..], body].concat()
}

#[test]
fn deep_cbor_nesting_is_rejected_on_a_small_stack() {
    // 256 KiB: far below the 2 MiB of a default thread. Nesting just under ciborium's default
    // limit of 256 overflowed it before the verifier bounded the depth.
    const SMALL_STACK: usize = 256 * 1024;
    let units: [&[u8]; 3] = [&[0x81], &[0xa1, 0x00], &[0xc6]]; // array(1), map(1) key 0, tag(6)
    for unit in units {
        let deep = [unit.repeat(255), vec![0x00]].concat();
        let mut in_protected = vec![0x84];
        in_protected.extend(bstr(&deep));
        in_protected.push(0xa0);
        in_protected.extend(bstr(&[0xa0]));
        in_protected.extend(bstr(&[1; 96]));
        let in_payload = [&[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0][..], &bstr(&deep), &bstr(&[1; 96])].concat();
        let cases = [
            (deep, NitroError::CoseMalformed),
            (in_protected, NitroError::CoseMalformed),
            (in_payload, NitroError::PayloadMalformed),
        ];
        for (document, expected) in cases {
            let result = std::thread::Builder::new()
                .stack_size(SMALL_STACK)
                .spawn(move || verify_prod(&document, PROD_NOW))
                .unwrap()
                .join()
                .unwrap();
            assert_eq!(result, Err(expected), "nesting {unit:02x?}");
        }
    }
    // Real documents verify on that stack too.
    let result = std::thread::Builder::new().stack_size(SMALL_STACK).spawn(|| verify_prod(PROD, PROD_NOW)).unwrap();
    assert!(result.join().unwrap().is_ok());
}

// ---- payload fields --------------------------------------------------------------------------

#[test]
fn each_mandatory_field_missing_or_null_is_named() {
    for field in ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"] {
        let missing = with_field(PROD, field, |_| None);
        assert_eq!(nitro::parse(&missing), Err(NitroError::MissingField { field }), "{field} removed");
        // Payload errors come before the chain and signature checks.
        assert_eq!(verify_prod(&missing, PROD_NOW), Err(NitroError::MissingField { field }), "{field} removed");
        let null = with_field(PROD, field, |_| Some(Value::Null));
        assert_eq!(nitro::parse(&null), Err(NitroError::MissingField { field }), "{field} null");
    }
}

#[test]
fn each_field_of_the_wrong_type_is_named() {
    for field in
        ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"]
    {
        let wrong = with_field(PROD, field, |_| Some(Value::Bool(true)));
        assert_eq!(nitro::parse(&wrong), Err(NitroError::FieldType { field }), "{field}");
    }
    let negative = with_field(PROD, "timestamp", |_| Some((-1).into()));
    assert_eq!(nitro::parse(&negative), Err(NitroError::FieldType { field: "timestamp" }));
    let text_module = with_field(PROD, "module_id", |_| Some(Value::Bytes(b"i-0".to_vec())));
    assert_eq!(nitro::parse(&text_module), Err(NitroError::FieldType { field: "module_id" }));
    let bad_bundle = with_field(PROD, "cabundle", |_| Some(Value::Array(vec![Value::Text("der".into())])));
    assert_eq!(nitro::parse(&bad_bundle), Err(NitroError::FieldType { field: "cabundle" }));
}

#[test]
fn invalid_field_values_are_named() {
    let pcr = |index: Value, len: usize| (index, Value::Bytes(vec![1; len]));
    let cases: Vec<(&str, Value, NitroError)> = vec![
        ("module_id", Value::Text(String::new()), NitroError::FieldInvalid { field: "module_id" }),
        ("digest", Value::Text("SHA256".into()), NitroError::UnsupportedDigest),
        ("digest", Value::Text("sha384".into()), NitroError::UnsupportedDigest),
        ("timestamp", 0.into(), NitroError::FieldInvalid { field: "timestamp" }),
        ("certificate", Value::Bytes(Vec::new()), NitroError::FieldInvalid { field: "certificate" }),
        ("cabundle", Value::Array(Vec::new()), NitroError::FieldInvalid { field: "cabundle" }),
        ("cabundle", Value::Array(vec![Value::Bytes(Vec::new())]), NitroError::FieldInvalid { field: "cabundle" }),
        ("pcrs", Value::Map(Vec::new()), NitroError::FieldInvalid { field: "pcrs" }),
        ("pcrs", Value::Map(vec![pcr(0.into(), 32)]), NitroError::FieldInvalid { field: "pcrs" }),
        ("pcrs", Value::Map(vec![pcr(0.into(), 64)]), NitroError::FieldInvalid { field: "pcrs" }),
        ("pcrs", Value::Map(vec![pcr(0.into(), 48), pcr(32.into(), 48)]), NitroError::FieldInvalid { field: "pcrs" }),
        ("pcrs", Value::Map(vec![pcr(0.into(), 48), pcr(0.into(), 48)]), NitroError::FieldInvalid { field: "pcrs" }),
        ("pcrs", Value::Map(vec![pcr(1.into(), 48)]), NitroError::FieldInvalid { field: "pcrs" }),
        ("pcrs", Value::Map(vec![pcr((-1).into(), 48)]), NitroError::FieldInvalid { field: "pcrs" }),
        ("pcrs", Value::Map(vec![pcr(Value::Text("0".into()), 48)]), NitroError::FieldType { field: "pcrs" }),
        ("pcrs", Value::Map((0..33).map(|i| pcr(i.into(), 48)).collect()), NitroError::FieldInvalid { field: "pcrs" }),
        (
            "public_key",
            Value::Bytes(vec![0; 1025]),
            NitroError::FieldTooLong { field: "public_key", len: 1025, max: 1024 },
        ),
        ("user_data", Value::Bytes(vec![0; 513]), NitroError::FieldTooLong { field: "user_data", len: 513, max: 512 }),
        ("nonce", Value::Bytes(vec![0; 513]), NitroError::FieldTooLong { field: "nonce", len: 513, max: 512 }),
    ];
    for (field, value, expected) in cases {
        let description = format!("{field} = {value:?}");
        let tampered = with_field(PROD, field, |_| Some(value));
        assert_eq!(nitro::parse(&tampered), Err(expected), "{description}");
    }
}

#[test]
fn field_bounds_are_inclusive_and_optional_fields_may_be_absent() {
    let at_limits = [("public_key", 1024), ("user_data", 512), ("nonce", 512)]
        .into_iter()
        .fold(PROD.to_vec(), |doc, (field, len)| with_field(&doc, field, |_| Some(Value::Bytes(vec![7; len]))));
    let document = nitro::parse(&at_limits).unwrap();
    assert_eq!(document.public_key.map(|v| v.len()), Some(1024));
    assert_eq!(document.user_data.map(|v| v.len()), Some(512));
    assert_eq!(document.nonce.map(|v| v.len()), Some(512));

    let absent = ["public_key", "user_data", "nonce"]
        .into_iter()
        .fold(PROD.to_vec(), |doc, field| with_field(&doc, field, |_| None));
    let document = nitro::parse(&absent).unwrap();
    assert_eq!((document.public_key, document.user_data, document.nonce), (None, None, None));

    let all_32 = with_field(PROD, "pcrs", |_| {
        Some(Value::Map((0..32).map(|i| (i.into(), Value::Bytes(vec![1; 48]))).collect()))
    });
    assert_eq!(nitro::parse(&all_32).unwrap().pcrs.len(), 32);
}

#[test]
fn unknown_payload_fields_are_ignored_but_duplicates_and_non_text_keys_are_not() {
    let mut entries = payload_entries(PROD);
    entries.push((Value::Text("future_field".into()), 1.into()));
    assert!(nitro::parse(&with_entries(PROD, entries)).is_ok());

    let mut entries = payload_entries(PROD);
    entries.push((Value::Text("nonce".into()), Value::Null));
    assert_eq!(nitro::parse(&with_entries(PROD, entries)), Err(NitroError::PayloadMalformed));

    let mut entries = payload_entries(PROD);
    entries.push((1.into(), 1.into()));
    assert_eq!(nitro::parse(&with_entries(PROD, entries)), Err(NitroError::PayloadMalformed));
}

#[test]
fn a_payload_that_is_not_one_map_is_malformed() {
    let payloads =
        [Vec::new(), encode(&Value::Array(Vec::new())), [encode(&Value::Map(payload_entries(PROD))), vec![0]].concat()];
    for payload in payloads {
        let mut parts = split(PROD);
        parts.payload = Value::Bytes(payload);
        assert_eq!(nitro::parse(&assemble(parts)), Err(NitroError::PayloadMalformed));
    }
}

// ---- synthetic chains (rcgen) ------------------------------------------------------------------

use p384::ecdsa::signature::Signer;
use p384::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, date_time_ymd,
};

/// Inside every default synthetic certificate's window (2020–2030): 2023-11-14.
const SYNTH_NOW: u64 = 1_700_000_000;

#[derive(Default)]
struct ChainOptions {
    intermediate_not_ca: bool,
    intermediate_without_cert_sign: bool,
    intermediate_p256: bool,
    intermediate_expired: bool,
    intermediate_unknown_critical_extension: bool,
    root_path_len_zero: bool,
    leaf_key_encipherment_only: bool,
    leaf_p256: bool,
}

/// root (P-384 CA) → one intermediate → leaf, all generated fresh, plus the leaf's signing key.
struct Chain {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key: KeyPair,
}

fn params(common_name: &str, is_ca: IsCa, key_usages: Vec<KeyUsagePurpose>) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = is_ca;
    params.key_usages = key_usages;
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2030, 1, 1);
    params
}

impl Chain {
    fn new(options: ChainOptions) -> Self {
        let ca_usages = || vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let root_constraint =
            if options.root_path_len_zero { BasicConstraints::Constrained(0) } else { BasicConstraints::Unconstrained };
        let root_params = params("sigil test root", IsCa::Ca(root_constraint), ca_usages());
        let root_der = root_params.self_signed(&root_key).unwrap().der().to_vec();

        let intermediate_alg =
            if options.intermediate_p256 { &PKCS_ECDSA_P256_SHA256 } else { &PKCS_ECDSA_P384_SHA384 };
        let intermediate_key = KeyPair::generate_for(intermediate_alg).unwrap();
        let intermediate_is_ca =
            if options.intermediate_not_ca { IsCa::ExplicitNoCa } else { IsCa::Ca(BasicConstraints::Constrained(0)) };
        let intermediate_usages =
            if options.intermediate_without_cert_sign { vec![KeyUsagePurpose::DigitalSignature] } else { ca_usages() };
        let mut intermediate_params = params("sigil test intermediate", intermediate_is_ca, intermediate_usages);
        if options.intermediate_expired {
            intermediate_params.not_after = date_time_ymd(2021, 1, 1);
        }
        if options.intermediate_unknown_critical_extension {
            let mut extension = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
            extension.set_criticality(true);
            intermediate_params.custom_extensions.push(extension);
        }
        let root_issuer = Issuer::from_params(&root_params, &root_key);
        let intermediate_der = intermediate_params.signed_by(&intermediate_key, &root_issuer).unwrap().der().to_vec();

        let leaf_alg = if options.leaf_p256 { &PKCS_ECDSA_P256_SHA256 } else { &PKCS_ECDSA_P384_SHA384 };
        let leaf_key = KeyPair::generate_for(leaf_alg).unwrap();
        let leaf_usages = if options.leaf_key_encipherment_only {
            vec![KeyUsagePurpose::KeyEncipherment]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        let leaf_params = params("sigil test enclave", IsCa::ExplicitNoCa, leaf_usages);
        let intermediate_issuer = Issuer::from_params(&intermediate_params, &intermediate_key);
        let leaf_der = leaf_params.signed_by(&leaf_key, &intermediate_issuer).unwrap().der().to_vec();

        Chain { root_der, intermediate_der, leaf_der, leaf_key }
    }

    /// A Nitro-format document over this chain, signed with the leaf key (P-384 leaves only).
    fn document(&self, timestamp_ms: u64) -> Vec<u8> {
        let pcrs = (0..16u8).map(|i| (i.into(), Value::Bytes(vec![i + 1; 48]))).collect();
        let payload = encode(&Value::Map(vec![
            (Value::Text("module_id".into()), Value::Text("i-synthetic-enc0".into())),
            (Value::Text("digest".into()), Value::Text("SHA384".into())),
            (Value::Text("timestamp".into()), timestamp_ms.into()),
            (Value::Text("pcrs".into()), Value::Map(pcrs)),
            (Value::Text("certificate".into()), Value::Bytes(self.leaf_der.clone())),
            (
                Value::Text("cabundle".into()),
                Value::Array(vec![Value::Bytes(self.root_der.clone()), Value::Bytes(self.intermediate_der.clone())]),
            ),
            (Value::Text("public_key".into()), Value::Null),
            (Value::Text("user_data".into()), Value::Bytes(vec![9; 64])),
            (Value::Text("nonce".into()), Value::Null),
        ]));
        let protected = encode(&Value::Map(vec![(1.into(), (-35).into())]));
        // Sig_structure built with ciborium, independently of the verifier's own encoder.
        let tbs = encode(&Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(protected.clone()),
            Value::Bytes(Vec::new()),
            Value::Bytes(payload.clone()),
        ]));
        let signature = match p384::ecdsa::SigningKey::from_pkcs8_der(&self.leaf_key.serialize_der()) {
            Ok(key) => {
                let signature: p384::ecdsa::Signature = key.sign(&tbs);
                signature.to_bytes().to_vec()
            }
            // A P-256 leaf cannot make an ES384 signature; the chain check rejects it first.
            Err(_) => vec![1; 96],
        };
        assemble(Parts { protected, unprotected: Vec::new(), payload: Value::Bytes(payload), signature })
    }

    /// Verifies a document stamped `now` against this chain's root at `now`.
    fn verify(&self, now: u64, policy: &NitroPolicy) -> Result<NitroDocument, NitroError> {
        nitro::verify(&self.document(now * 1000), &self.root_der, now, policy)
    }
}

#[test]
fn a_synthetic_chain_verifies_against_its_own_root_and_not_the_aws_root() {
    let chain = Chain::new(ChainOptions::default());
    let document = chain.verify(SYNTH_NOW, &NitroPolicy::default()).unwrap();
    assert_eq!(document.user_data, Some(vec![9; 64]));
    assert!(!document.debug);
    assert_eq!(
        nitro::verify(
            &chain.document(SYNTH_NOW * 1000),
            nitro::aws_nitro_root_g1(),
            SYNTH_NOW,
            &NitroPolicy::default()
        ),
        Err(NitroError::UntrustedRoot)
    );
}

#[test]
fn an_intermediate_that_is_not_a_ca_cannot_issue() {
    let chain = Chain::new(ChainOptions { intermediate_not_ca: true, ..ChainOptions::default() });
    assert_eq!(chain.verify(SYNTH_NOW, &NitroPolicy::default()), Err(NitroError::NotCa { index: 1 }));
}

#[test]
fn an_intermediate_without_cert_sign_usage_cannot_issue() {
    let chain = Chain::new(ChainOptions { intermediate_without_cert_sign: true, ..ChainOptions::default() });
    assert_eq!(chain.verify(SYNTH_NOW, &NitroPolicy::default()), Err(NitroError::NotCa { index: 1 }));
}

#[test]
fn a_root_path_length_of_zero_forbids_an_intermediate() {
    let chain = Chain::new(ChainOptions { root_path_len_zero: true, ..ChainOptions::default() });
    assert_eq!(chain.verify(SYNTH_NOW, &NitroPolicy::default()), Err(NitroError::PathLenExceeded { index: 2 }));
}

#[test]
fn a_leaf_not_allowed_to_sign_is_rejected() {
    let chain = Chain::new(ChainOptions { leaf_key_encipherment_only: true, ..ChainOptions::default() });
    assert_eq!(chain.verify(SYNTH_NOW, &NitroPolicy::default()), Err(NitroError::LeafKeyUsage));
}

#[test]
fn p256_keys_in_the_chain_are_an_unsupported_algorithm() {
    let chain = Chain::new(ChainOptions { leaf_p256: true, ..ChainOptions::default() });
    assert_eq!(chain.verify(SYNTH_NOW, &NitroPolicy::default()), Err(NitroError::CertificateAlgorithm { index: 0 }));
    let chain = Chain::new(ChainOptions { intermediate_p256: true, ..ChainOptions::default() });
    assert_eq!(chain.verify(SYNTH_NOW, &NitroPolicy::default()), Err(NitroError::CertificateAlgorithm { index: 1 }));
}

#[test]
fn an_expired_intermediate_is_expired_at_its_depth() {
    let chain = Chain::new(ChainOptions { intermediate_expired: true, ..ChainOptions::default() });
    assert_eq!(chain.verify(SYNTH_NOW, &NitroPolicy::default()), Err(NitroError::Expired { index: 1 }));
}

#[test]
fn an_unknown_critical_extension_is_rejected() {
    let chain = Chain::new(ChainOptions { intermediate_unknown_critical_extension: true, ..ChainOptions::default() });
    assert_eq!(
        chain.verify(SYNTH_NOW, &NitroPolicy::default()),
        Err(NitroError::UnsupportedCriticalExtension { index: 1 })
    );
}

#[test]
fn a_timestamp_more_than_a_minute_ahead_is_in_the_future() {
    let chain = Chain::new(ChainOptions::default());
    let policy = NitroPolicy::default();
    let ahead =
        |secs: u64| nitro::verify(&chain.document((SYNTH_NOW + secs) * 1000), &chain.root_der, SYNTH_NOW, &policy);
    assert!(ahead(60).is_ok());
    assert_eq!(ahead(61), Err(NitroError::TimestampInFuture));
}

#[test]
fn a_sim_root_used_as_cabundle_root_but_not_pinned_is_untrusted() {
    // An attacker's own complete chain, checked against the AWS pin.
    let chain = Chain::new(ChainOptions::default());
    let document = chain.document(PROD_NOW * 1000);
    assert_eq!(
        nitro::verify(&document, nitro::aws_nitro_root_g1(), PROD_NOW, &production_policy()),
        Err(NitroError::UntrustedRoot)
    );
}

// ---- fuzz entry point ------------------------------------------------------------------------

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(3) {
        if data.is_empty() {
            break;
        }
        let at = rng.below(data.len());
        match rng.below(6) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = rng.next().to_le_bytes()[0],
            2 => data.truncate(at),
            3 => data.insert(at, rng.next().to_le_bytes()[0]),
            4 => {
                data.remove(at);
            }
            // CBOR heads live near the front: hit them more often than uniform placement would.
            _ => {
                let head = rng.below(data.len().min(64));
                data[head] = rng.next().to_le_bytes()[0];
            }
        }
    }
    data
}

#[test]
fn fuzz_document_never_panics_on_real_documents_and_mutations() {
    let synthetic = Chain::new(ChainOptions::default()).document(SYNTH_NOW * 1000);
    let seeds: [&[u8]; 3] = [PROD, DEBUG, &synthetic];
    for seed in seeds {
        nitro::fuzz_document(seed);
    }
    nitro::fuzz_document(&[]);
    nitro::fuzz_document(&[0xd2]);
    nitro::fuzz_document(&vec![0x84; nitro::MAX_DOCUMENT_LEN + 1]);
    let mut rng = Rng(0x5167_11a7_0000_0001);
    for _ in 0..MUTATIONS {
        let seed = seeds[rng.below(seeds.len())];
        nitro::fuzz_document(&mutate(&mut rng, seed));
    }
}

/// Enough to reach every parser branch many times over; each mutation costs at most a few
/// P-384 verifications.
const MUTATIONS: usize = 3000;
