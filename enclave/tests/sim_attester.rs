//! The simulated attester's documents pass the independent Nitro verifier
//! (`sigil-attestation`) when, and only when, its root is the pinned one.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use sigil_attestation::nitro::{self, NitroPolicy};
use sigil_enclave::attester::sim::{SimAttester, SimCa, sim_pcrs};
use sigil_enclave::attester::{AttestationInput, Attester};
use sigil_protocol::Platform;

const NOW: u64 = 1_760_000_000;

fn policy() -> NitroPolicy {
    let pcrs: BTreeMap<u8, Vec<u8>> = (0u8..).zip(sim_pcrs().map(|p| p.to_vec())).collect();
    NitroPolicy { pcrs, max_age_secs: Some(300), allow_debug: false }
}

#[test]
fn sim_document_verifies_with_the_independent_nitro_verifier() {
    let ca = SimCa::generate().unwrap();
    let mut attester = SimAttester::new(&ca, NOW).unwrap();
    let user_data = [0x42; 64];
    let input =
        AttestationInput { user_data: &user_data, nonce: b"client nonce", public_key: b"signing key", unix_time: NOW };
    let evidence = attester.attest(&input).unwrap();
    assert_eq!(evidence.platform, Platform::Sim);

    let doc = nitro::verify(&evidence.document, ca.root_der(), NOW + 10, &policy()).unwrap();
    assert_eq!(doc.user_data.as_deref(), Some(&user_data[..]));
    assert_eq!(doc.nonce.as_deref(), Some(&b"client nonce"[..]));
    assert_eq!(doc.public_key.as_deref(), Some(&b"signing key"[..]));
    assert!(doc.module_id.starts_with("sigil-sim-"), "{}", doc.module_id);
    assert_eq!(doc.timestamp_ms, NOW * 1000);
    assert_eq!(doc.pcrs.len(), 16);
    for (i, pcr) in (0u8..).zip(sim_pcrs()) {
        assert_eq!(doc.pcrs[&i], pcr);
    }
    assert!(doc.pcrs.range(3..).all(|(_, v)| v == &[0; 48]));
    assert_eq!(doc.cabundle, [ca.root_der().to_vec()]);
    assert!(!doc.debug);

    // The production root (AWS Nitro G1), another sim root, a stale document, a different PCR0, a flipped byte: all refused.
    assert!(nitro::verify(&evidence.document, nitro::aws_nitro_root_g1(), NOW + 10, &policy()).is_err());
    let other = SimCa::generate().unwrap();
    assert!(nitro::verify(&evidence.document, other.root_der(), NOW + 10, &policy()).is_err());
    assert!(nitro::verify(&evidence.document, ca.root_der(), NOW + 301, &policy()).is_err());
    let mut wrong_pcrs = policy();
    wrong_pcrs.pcrs.get_mut(&0).unwrap()[0] ^= 1;
    assert!(nitro::verify(&evidence.document, ca.root_der(), NOW + 10, &wrong_pcrs).is_err());
    let mut tampered = evidence.document.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(nitro::verify(&tampered, ca.root_der(), NOW + 10, &policy()).is_err());
}

#[test]
fn empty_nonce_and_key_arrive_as_absent() {
    let ca = SimCa::generate().unwrap();
    let mut attester = SimAttester::new(&ca, NOW).unwrap();
    let input = AttestationInput { user_data: &[1; 64], nonce: b"", public_key: b"", unix_time: NOW };
    let evidence = attester.attest(&input).unwrap();
    let doc = nitro::verify(&evidence.document, ca.root_der(), NOW, &policy()).unwrap();
    assert!(doc.nonce.is_none() && doc.public_key.is_none());
}

#[test]
fn renewed_leaf_still_verifies_a_month_later() {
    let ca = SimCa::generate().unwrap();
    let mut attester = SimAttester::new(&ca, NOW).unwrap();
    let later = NOW + 40 * 24 * 3600;
    let input = AttestationInput { user_data: &[2; 64], nonce: b"n", public_key: b"k", unix_time: later };
    let evidence = attester.attest(&input).unwrap();
    nitro::verify(&evidence.document, ca.root_der(), later, &policy()).unwrap();
}

/// Counts how often the platform is asked, to show a bad request never reaches it.
struct Counting(SimAttester, std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Attester for Counting {
    fn platform(&self) -> Platform {
        self.0.platform()
    }
    fn attest(
        &mut self,
        input: &AttestationInput<'_>,
    ) -> Result<sigil_protocol::Evidence, sigil_enclave::attester::AttestError> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.attest(input)
    }
}

#[test]
fn a_low_order_client_key_is_refused_before_the_platform_attests() {
    use sigil_protocol::{AttestRequest, Bytes, Envelope, ErrorCode, Request, Response, decode_message};
    let ca = SimCa::generate().unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let broker = sigil_enclave::jwt::BrokerKey::from_sec1(&[4; 65]).unwrap();
    let mut enclave = sigil_enclave::Enclave::new(sigil_enclave::Config::new(broker));
    enclave.set_attester(Box::new(Counting(SimAttester::new(&ca, NOW).unwrap(), calls.clone())));
    let mut env = sigil_enclave::FixedEnv::new(NOW);
    let mut ask = |client_pub: [u8; 32]| {
        let req = Request::Attest(AttestRequest { client_nonce: Bytes([1; 32]), client_pub: Some(Bytes(client_pub)) });
        let frame = sigil_protocol::encode_message(&Envelope { request_id: 1, body: req }).unwrap();
        decode_message::<Envelope<Response>>(&enclave.handle(&frame, &mut env)).unwrap().body
    };
    match ask([0; 32]) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::InvalidRequest),
        other => panic!("low-order key accepted: {other:?}"),
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(matches!(ask([9; 32]), Response::Attestation(_)));
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
}
