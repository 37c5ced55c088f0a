//! K3 custody in the sans-IO core, with the real simulated platform (attester, sealer, peer
//! verifier): provisioning inside an attested session, sealed restarts, `reprovision_required`,
//! replication between enclaves with the same and with another measurement, epochs.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::Path;

use common::{Broker, NOW, derive_address, eip191_digest, recover_address, sign_eip191};
use sigil_enclave::attester::sim::{SimAttester, SimCa, sim_pcrs};
use sigil_enclave::runtime::peer::SameMeasurement;
use sigil_enclave::sealer::sim::SimSealer;
use sigil_enclave::{Config, Enclave, FixedEnv, K3, kek, transfer};
use sigil_protocol::custody::{self, PROVISION_INFO_LABEL, ProvisionK3, RETIRE_INFO_LABEL, UnsealK3};
use sigil_protocol::session::{ClientSession, SealedRecord, x25519_public};
use sigil_protocol::{
    AttestRequest, BrokerToken, Bytes, CustodyStatus, DeriveKek, ErrorCode, OmniAccount, Request, Response, Subject,
};
use zeroize::Zeroizing;

const OMNI: [u8; 32] = [0xab; 32];
/// SPEC §3: K3 = 00..1f, omni = ab × 32, key_version 1.
const VECTOR_ADDRESS: &str = "384099f86f48b052da6535d608315dee069642f7";
const VECTOR_SIG_HELLO: &str = "6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01";

/// One simulated machine: its vendor root, its state directory (machine secret) and its
/// measurement.
struct Machine<'a> {
    ca: &'a SimCa,
    dir: &'a Path,
    pcrs: [[u8; 48]; 3],
}

fn enclave(m: &Machine<'_>, broker: &Broker, config: impl FnOnce(&mut Config)) -> Enclave {
    let mut cfg = Config::new(broker.public_key());
    config(&mut cfg);
    let mut e = Enclave::new(cfg);
    let mut attester = SimAttester::with_pcrs(m.ca, NOW, m.pcrs).unwrap();
    let verifier = SameMeasurement::from_attester(&mut attester, NOW, Some(m.ca.root_der())).unwrap();
    assert_eq!(verifier.measurement(), m.pcrs.concat());
    e.set_attester(Box::new(attester));
    e.set_peer_verifier(Box::new(verifier));
    e.set_sealer(Box::new(SimSealer::load_or_generate(m.dir, &m.pcrs).unwrap()));
    e
}

fn call(e: &mut Enclave, env: &mut FixedEnv, body: Request) -> Response {
    common::call(e, env, body)
}

fn status(e: &mut Enclave, env: &mut FixedEnv) -> CustodyStatus {
    match call(e, env, Request::CustodyStatus) {
        Response::CustodyStatus(s) => s,
        other => panic!("{other:?}"),
    }
}

fn error_code(r: &Response) -> ErrorCode {
    match r {
        Response::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// An operator's attested session with `e`.
struct Operator {
    session: ClientSession,
    binding: [u8; 64],
    enclave_pub: [u8; 32],
}

impl Operator {
    fn connect(e: &mut Enclave, env: &mut FixedEnv, seed: u8) -> Self {
        let secret = [seed; 32];
        let request =
            AttestRequest { client_nonce: Bytes([seed; 32]), client_pub: Some(Bytes(x25519_public(&secret))) };
        let Response::Attestation(att) = call(e, env, Request::Attest(request)) else { panic!("no attestation") };
        let binding = att.binding(&request).hash();
        let enclave_pub = att.enclave_pub.unwrap().0;
        Self { session: ClientSession::new(&secret, &enclave_pub, &binding).unwrap(), binding, enclave_pub }
    }

    /// The sealed record of `req` (for tests that replay or misdirect it).
    fn seal(&mut self, req: &Request) -> (u64, SealedRecord) {
        let plaintext = postcard::to_allocvec(req).unwrap();
        let record = self.session.seal_request(&plaintext).unwrap();
        (record.counter, record)
    }

    fn send(&mut self, e: &mut Enclave, env: &mut FixedEnv, req: &Request) -> Response {
        let (counter, record) = self.seal(req);
        match call(e, env, Request::Sealed(record)) {
            Response::Sealed(r) => postcard::from_bytes(&self.session.open_response(counter, &r).unwrap()).unwrap(),
            other => other,
        }
    }

    fn k3_payload(&self, label: &[u8], key_version: u8, k3: &K3) -> ProvisionK3 {
        self.payload_with_proof(label, key_version, k3, None)
    }

    fn payload_with_proof(&self, label: &[u8], key_version: u8, k3: &K3, proof: Option<(u8, &K3)>) -> ProvisionK3 {
        let info = custody::hpke_info(label, &self.binding);
        let proof_key_version = proof.map_or(0, |(v, _)| v);
        let mut k3s = vec![k3];
        k3s.extend(proof.map(|(_, k)| k));
        let aad = ProvisionK3::aad(key_version, proof_key_version);
        let (enc, ct) =
            transfer::seal(&self.enclave_pub, &info, &aad, &k3s, Zeroizing::new([key_version; 32])).unwrap();
        ProvisionK3 { key_version, encapsulated_key: Bytes(enc), ciphertext: ct, proof_key_version }
    }

    fn provision(&mut self, e: &mut Enclave, env: &mut FixedEnv, key_version: u8, k3: &K3) -> Response {
        let p = self.k3_payload(PROVISION_INFO_LABEL, key_version, k3);
        self.send(e, env, &Request::Provision(p))
    }

    fn provision_with_proof(
        &mut self,
        e: &mut Enclave,
        env: &mut FixedEnv,
        key_version: u8,
        k3: &K3,
        proof: (u8, &K3),
    ) -> Response {
        let p = self.payload_with_proof(PROVISION_INFO_LABEL, key_version, k3, Some(proof));
        self.send(e, env, &Request::Provision(p))
    }
}

/// What a host does after a custody change: seal, (store,) hand the blob back.
fn persist(e: &mut Enclave, env: &mut FixedEnv) -> Vec<u8> {
    let Response::SealedK3(sealed) = call(e, env, Request::SealK3) else { panic!("seal failed") };
    let r = call(e, env, Request::UnsealK3(UnsealK3 { blob: sealed.blob.clone() }));
    assert!(matches!(r, Response::CustodyStatus(ref s) if !s.needs_seal), "{r:?}");
    sealed.blob
}

fn address_of(e: &mut Enclave, env: &mut FixedEnv, broker: &Broker) -> Result<String, ErrorCode> {
    match derive_address(e, env, &broker.token(&OMNI), OMNI) {
        Response::Address(a) => Ok(hex::encode(a.address.0)),
        other => Err(error_code(&other)),
    }
}

fn signature_of(e: &mut Enclave, env: &mut FixedEnv, broker: &Broker) -> [u8; 65] {
    match sign_eip191(e, env, &broker.token(&OMNI), OMNI, b"hello") {
        Response::Eip191Signature(s) => s.signature.0,
        other => panic!("{other:?}"),
    }
}

fn kek_of(e: &mut Enclave, env: &mut FixedEnv, broker: &Broker, key_version: u8) -> Result<[u8; 32], ErrorCode> {
    let (sk, pk) = kek::recipient_keypair(&[0x55; 32]);
    let req = DeriveKek {
        subject: Subject { token: BrokerToken::new(broker.token(&OMNI)), key_version, omni: OmniAccount::from(OMNI) },
        context: b"github".to_vec(),
        recipient: Bytes(pk),
    };
    match call(e, env, Request::DeriveKek(req.clone())) {
        Response::SealedKek(s) => {
            let k = kek::open(&sk, s.key_version, &s.encapsulated_key.0, &s.ciphertext, &req.aad()).unwrap();
            Ok(*k.dangerous_as_bytes())
        }
        other => Err(error_code(&other)),
    }
}

/// The configuration fingerprint of an enclave pinning `broker`'s key.
fn a_config(broker: &Broker) -> [u8; 32] {
    Config::new(broker.public_key()).fingerprint()
}

fn seq_k3() -> K3 {
    common::k3_seq()
}

#[test]
fn provisioned_k3_is_pending_until_its_blob_is_confirmed_then_gives_the_spec_vectors() {
    let (ca, dir, broker) = (SimCa::generate().unwrap(), tempfile::tempdir().unwrap(), Broker::new());
    let m = Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() };
    let mut env = FixedEnv::new(NOW);
    let mut e = enclave(&m, &broker, |_| {});
    assert_eq!(address_of(&mut e, &mut env, &broker), Err(ErrorCode::SignerDisabled));
    let s = status(&mut e, &mut env);
    assert!(s.epochs.is_empty() && s.reprovision.is_none() && !s.needs_seal);

    let mut op = Operator::connect(&mut e, &mut env, 1);
    let Response::CustodyStatus(s) = op.provision(&mut e, &mut env, 1, &seq_k3()) else { panic!() };
    assert!(s.needs_seal && !s.epochs[0].durable && s.current_key_version.is_none());
    assert_eq!(s.epochs[0].epoch.k3_fingerprint.0, seq_k3().fingerprint());
    // Pending: not served yet.
    assert_eq!(address_of(&mut e, &mut env, &broker), Err(ErrorCode::SignerDisabled));
    persist(&mut e, &mut env);
    assert_eq!(address_of(&mut e, &mut env, &broker).unwrap(), VECTOR_ADDRESS);
    let sig = signature_of(&mut e, &mut env, &broker);
    assert_eq!(hex::encode(sig), VECTOR_SIG_HELLO);
    assert_eq!(hex::encode(recover_address(&eip191_digest(b"hello"), &sig)), VECTOR_ADDRESS);
    // Provisioning the same K3 again is harmless; another K3 for the epoch is refused.
    assert!(matches!(op.provision(&mut e, &mut env, 1, &seq_k3()), Response::CustodyStatus(_)));
    let r = op.provision(&mut e, &mut env, 1, &K3::from_bytes([9; 32]));
    assert_eq!(error_code(&r), ErrorCode::K3Conflict);
    assert_eq!(address_of(&mut e, &mut env, &broker).unwrap(), VECTOR_ADDRESS);
}

#[test]
fn provisioning_outside_a_session_misdirected_or_replayed_is_refused() {
    let (ca, dir, broker) = (SimCa::generate().unwrap(), tempfile::tempdir().unwrap(), Broker::new());
    let m = Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() };
    let mut env = FixedEnv::new(NOW);
    let mut e = enclave(&m, &broker, |_| {});
    let mut a = Operator::connect(&mut e, &mut env, 1);
    let mut b = Operator::connect(&mut e, &mut env, 2);

    // In the clear, even correctly sealed: refused.
    let p = a.k3_payload(PROVISION_INFO_LABEL, 1, &seq_k3());
    assert_eq!(error_code(&call(&mut e, &mut env, Request::Provision(p.clone()))), ErrorCode::InvalidRequest);
    // Sealed to session A's key but sent in session B: does not open.
    assert_eq!(error_code(&b.send(&mut e, &mut env, &Request::Provision(p))), ErrorCode::InvalidRequest);
    // Sealed under the retire label: does not open as a provisioning.
    let wrong_label = a.k3_payload(RETIRE_INFO_LABEL, 1, &seq_k3());
    assert_eq!(error_code(&a.send(&mut e, &mut env, &Request::Provision(wrong_label))), ErrorCode::InvalidRequest);
    // The epoch in the AAD: a payload for epoch 1 relabelled as epoch 2 does not open.
    let mut relabelled = a.k3_payload(PROVISION_INFO_LABEL, 1, &seq_k3());
    relabelled.key_version = 2;
    assert_eq!(error_code(&a.send(&mut e, &mut env, &Request::Provision(relabelled))), ErrorCode::InvalidRequest);
    assert!(status(&mut e, &mut env).epochs.is_empty());

    // A good one, then its record replayed by the host: refused by the session.
    let good = Request::Provision(a.k3_payload(PROVISION_INFO_LABEL, 1, &seq_k3()));
    let (_, record) = a.seal(&good);
    assert!(matches!(call(&mut e, &mut env, Request::Sealed(record.clone())), Response::Sealed(_)));
    let replay = call(&mut e, &mut env, Request::Sealed(record));
    assert!(matches!(error_code(&replay), ErrorCode::SessionIntegrity | ErrorCode::UnknownSession));
}

#[test]
fn a_hundred_restarts_from_the_sealed_blob_give_identical_results() {
    let (ca, dir, broker) = (SimCa::generate().unwrap(), tempfile::tempdir().unwrap(), Broker::new());
    let m = Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() };
    let mut env = FixedEnv::new(NOW);
    let mut first = enclave(&m, &broker, |_| {});
    let mut op = Operator::connect(&mut first, &mut env, 1);
    op.provision(&mut first, &mut env, 1, &seq_k3());
    let blob = persist(&mut first, &mut env);
    let expected = (
        address_of(&mut first, &mut env, &broker).unwrap(),
        signature_of(&mut first, &mut env, &broker),
        kek_of(&mut first, &mut env, &broker, 1).unwrap(),
    );
    drop(first);
    for i in 0..100 {
        let mut e = enclave(&m, &broker, |_| {});
        assert_eq!(address_of(&mut e, &mut env, &broker), Err(ErrorCode::SignerDisabled), "restart {i}");
        let r = call(&mut e, &mut env, Request::UnsealK3(UnsealK3 { blob: blob.clone() }));
        assert!(matches!(r, Response::CustodyStatus(ref s) if !s.needs_seal && s.current_key_version == Some(1)));
        let got = (
            address_of(&mut e, &mut env, &broker).unwrap(),
            signature_of(&mut e, &mut env, &broker),
            kek_of(&mut e, &mut env, &broker, 1).unwrap(),
        );
        assert_eq!(got, expected, "restart {i}");
    }
}

#[test]
fn corrupted_foreign_or_unexpected_blobs_require_reprovisioning_and_load_nothing() {
    let (ca, broker) = (SimCa::generate().unwrap(), Broker::new());
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() };
    let mut env = FixedEnv::new(NOW);
    let mut e = enclave(&m, &broker, |_| {});
    let mut op = Operator::connect(&mut e, &mut env, 1);
    op.provision(&mut e, &mut env, 1, &seq_k3());
    let blob = persist(&mut e, &mut env);

    let mut other_pcrs = sim_pcrs();
    other_pcrs[2][0] ^= 0xff;
    // (what, machine, blob, expected K3 fingerprint of epoch 1)
    type Case<'a> = (&'static str, Machine<'a>, Vec<u8>, Option<[u8; 32]>);
    let cases: Vec<Case<'_>> = vec![
        ("flipped byte", Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() }, flip(&blob, blob.len() - 20), None),
        ("truncated", Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() }, blob[..blob.len() - 1].to_vec(), None),
        ("empty", Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() }, Vec::new(), None),
        ("another machine", Machine { ca: &ca, dir: other_dir.path(), pcrs: sim_pcrs() }, blob.clone(), None),
        ("another measurement", Machine { ca: &ca, dir: dir.path(), pcrs: other_pcrs }, blob.clone(), None),
        (
            "another K3 than expected",
            Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() },
            blob.clone(),
            Some(K3::from_bytes([7; 32]).fingerprint()),
        ),
    ];
    for (what, machine, bad, expect) in cases {
        let mut e = enclave(&machine, &broker, |c| {
            if let Some(fp) = expect {
                c.expected_k3.insert(1, fp);
            }
        });
        let r = call(&mut e, &mut env, Request::UnsealK3(UnsealK3 { blob: bad }));
        assert_eq!(error_code(&r), ErrorCode::ReprovisionRequired, "{what}");
        let s = status(&mut e, &mut env);
        assert!(s.epochs.is_empty(), "{what}: something was loaded");
        assert!(s.reprovision.is_some(), "{what}: status does not say why");
        assert_eq!(address_of(&mut e, &mut env, &broker), Err(ErrorCode::SignerDisabled), "{what}");
        // Provisioning resolves it, unless the K3 is not the one this enclave expects.
        let mut op = Operator::connect(&mut e, &mut env, 3);
        let r = op.provision(&mut e, &mut env, 1, &seq_k3());
        if expect.is_some() {
            assert_eq!(error_code(&r), ErrorCode::K3Conflict, "{what}");
        } else {
            assert!(status(&mut e, &mut env).reprovision.is_none(), "{what}");
        }
    }
}

fn flip(b: &[u8], i: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[i] ^= 1;
    v
}

#[test]
fn replication_goes_only_to_a_peer_with_the_same_measurement() {
    let (ca, broker) = (SimCa::generate().unwrap(), Broker::new());
    let (da, db, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut env = FixedEnv::new(NOW);
    let mut a = enclave(&Machine { ca: &ca, dir: da.path(), pcrs: sim_pcrs() }, &broker, |_| {});
    let mut b = enclave(&Machine { ca: &ca, dir: db.path(), pcrs: sim_pcrs() }, &broker, |_| {});
    let mut other = sim_pcrs();
    other[0][5] ^= 1;
    let mut c = enclave(&Machine { ca: &ca, dir: dc.path(), pcrs: other }, &broker, |_| {});
    let mut op = Operator::connect(&mut a, &mut env, 1);
    op.provision(&mut a, &mut env, 1, &seq_k3());
    let a_blob = persist(&mut a, &mut env);
    let expected = address_of(&mut a, &mut env, &broker).unwrap();

    // C (another build) asks A: refused, and C learns nothing.
    let Response::PeerOffer(offer_c) = call(&mut c, &mut env, Request::PeerOffer) else { panic!() };
    assert_eq!(error_code(&call(&mut a, &mut env, Request::ExportForPeer(offer_c))), ErrorCode::PeerRefused);

    // B's offer with a byte of its evidence or key changed: refused.
    let Response::PeerOffer(offer) = call(&mut b, &mut env, Request::PeerOffer) else { panic!() };
    let mut tampered = offer.clone();
    tampered.import_pub.0[0] ^= 1;
    assert_eq!(error_code(&call(&mut a, &mut env, Request::ExportForPeer(tampered))), ErrorCode::PeerRefused);
    // Stale evidence (older than 5 minutes): refused.
    let mut late = FixedEnv::new(NOW + 400);
    assert_eq!(error_code(&call(&mut a, &mut late, Request::ExportForPeer(offer.clone()))), ErrorCode::PeerRefused);

    let Response::PeerExport(export) = call(&mut a, &mut env, Request::ExportForPeer(offer)) else { panic!() };
    // C cannot import what A made for B (no such offer of C's) …
    assert_eq!(error_code(&call(&mut c, &mut env, Request::ImportFromPeer(export.clone()))), ErrorCode::PeerRefused);
    // … and a tampered export is refused by B (and consumes B's offer).
    let mut bad = export.clone();
    bad.ciphertext[0] ^= 1;
    assert_eq!(error_code(&call(&mut b, &mut env, Request::ImportFromPeer(bad))), ErrorCode::PeerRefused);
    // So the genuine export, now replayed against a consumed offer, is refused too.
    assert_eq!(error_code(&call(&mut b, &mut env, Request::ImportFromPeer(export))), ErrorCode::PeerRefused);

    // Fresh offer, genuine export: B gets K3 (pending until its blob is confirmed).
    let Response::PeerOffer(offer) = call(&mut b, &mut env, Request::PeerOffer) else { panic!() };
    let Response::PeerExport(export) = call(&mut a, &mut env, Request::ExportForPeer(offer)) else { panic!() };
    let Response::CustodyStatus(s) = call(&mut b, &mut env, Request::ImportFromPeer(export)) else { panic!() };
    assert!(s.needs_seal && !s.epochs[0].durable);
    persist(&mut b, &mut env);
    drop(a);
    assert_eq!(address_of(&mut b, &mut env, &broker).unwrap(), expected);

    // Same image, another broker (another deployment): refused both ways.
    let other_broker = Broker::new();
    let dd = tempfile::tempdir().unwrap();
    let mut d = enclave(&Machine { ca: &ca, dir: dd.path(), pcrs: sim_pcrs() }, &other_broker, |_| {});
    let Response::PeerOffer(offer_d) = call(&mut d, &mut env, Request::PeerOffer) else { panic!() };
    let mut a2 = enclave(&Machine { ca: &ca, dir: da.path(), pcrs: sim_pcrs() }, &broker, |_| {});
    assert!(matches!(
        call(&mut a2, &mut env, Request::UnsealK3(UnsealK3 { blob: a_blob.clone() })),
        Response::CustodyStatus(_)
    ));
    assert_eq!(error_code(&call(&mut a2, &mut env, Request::ExportForPeer(offer_d))), ErrorCode::PeerRefused);

    // A provisioned enclave takes epochs only from a peer sharing one of its own.
    let de = tempfile::tempdir().unwrap();
    let mut e2 = enclave(&Machine { ca: &ca, dir: de.path(), pcrs: sim_pcrs() }, &broker, |_| {});
    let mut op_e = Operator::connect(&mut e2, &mut env, 5);
    op_e.provision(&mut e2, &mut env, 7, &K3::from_bytes([7; 32]));
    persist(&mut e2, &mut env);
    let Response::PeerOffer(offer_e) = call(&mut e2, &mut env, Request::PeerOffer) else { panic!() };
    let Response::PeerExport(export_e) = call(&mut a2, &mut env, Request::ExportForPeer(offer_e)) else { panic!() };
    assert_eq!(error_code(&call(&mut e2, &mut env, Request::ImportFromPeer(export_e))), ErrorCode::PeerRefused);

    // B (mutual) refuses an export from C, whose measurement differs, even for B's own offer:
    // C is made to accept B's offer by judging peers like B, but its own evidence shows C.
    let mut c2 = enclave(&Machine { ca: &ca, dir: dc.path(), pcrs: other }, &broker, |_| {});
    let mut b_like = SimAttester::new(&ca, NOW).unwrap();
    c2.set_peer_verifier(Box::new(SameMeasurement::from_attester(&mut b_like, NOW, Some(ca.root_der())).unwrap()));
    let mut op = Operator::connect(&mut c2, &mut env, 4);
    op.provision(&mut c2, &mut env, 1, &K3::from_bytes([4; 32]));
    persist(&mut c2, &mut env);
    let db2 = tempfile::tempdir().unwrap();
    let mut b2 = enclave(&Machine { ca: &ca, dir: db2.path(), pcrs: sim_pcrs() }, &broker, |_| {});
    let Response::PeerOffer(offer) = call(&mut b2, &mut env, Request::PeerOffer) else { panic!() };
    let Response::PeerExport(export) = call(&mut c2, &mut env, Request::ExportForPeer(offer)) else { panic!() };
    assert_eq!(error_code(&call(&mut b2, &mut env, Request::ImportFromPeer(export))), ErrorCode::PeerRefused);
    assert!(status(&mut b2, &mut env).epochs.is_empty());
}

#[test]
fn a_debug_mode_peer_is_refused_and_a_debug_enclave_cannot_replicate() {
    let (ca, broker) = (SimCa::generate().unwrap(), Broker::new());
    let da = tempfile::tempdir().unwrap();
    let mut env = FixedEnv::new(NOW);
    let mut a = enclave(&Machine { ca: &ca, dir: da.path(), pcrs: sim_pcrs() }, &broker, |_| {});
    let mut op = Operator::connect(&mut a, &mut env, 1);
    op.provision(&mut a, &mut env, 1, &seq_k3());
    persist(&mut a, &mut env);

    // A debug enclave (all-zero PCR0, Nitro's debug mode) gets no peer verifier at all …
    let mut debug_pcrs = sim_pcrs();
    debug_pcrs[0] = [0; 48];
    let mut debug = SimAttester::with_pcrs(&ca, NOW, debug_pcrs).unwrap();
    let refused = SameMeasurement::from_attester(&mut debug, NOW, Some(ca.root_der())).unwrap_err();
    assert!(refused.contains("debug"), "{refused}");
    // … and its evidence, correctly bound to an offer, is refused by A.
    let import_pub = x25519_public(&[9; 32]);
    let config = a_config(&broker);
    let binding =
        custody::offer_binding(sigil_protocol::Platform::Sim, &import_pub, sigil_protocol::PROTOCOL_VERSION, &config);
    let evidence = sigil_enclave::attester::Attester::attest(
        &mut debug,
        &sigil_enclave::attester::AttestationInput { user_data: &binding, nonce: &[], public_key: &[], unix_time: NOW },
    )
    .unwrap();
    let offer = sigil_protocol::PeerOffer {
        protocol_version: sigil_protocol::PROTOCOL_VERSION,
        import_pub: Bytes(import_pub),
        evidence,
        config: Bytes(config),
    };
    assert_eq!(error_code(&call(&mut a, &mut env, Request::ExportForPeer(offer))), ErrorCode::PeerRefused);
}

#[test]
fn epochs_rotate_old_keks_stay_derivable_until_retired() {
    let (ca, dir, broker) = (SimCa::generate().unwrap(), tempfile::tempdir().unwrap(), Broker::new());
    let m = Machine { ca: &ca, dir: dir.path(), pcrs: sim_pcrs() };
    let mut env = FixedEnv::new(NOW);
    let mut e = enclave(&m, &broker, |_| {});
    let mut op = Operator::connect(&mut e, &mut env, 1);
    op.provision(&mut e, &mut env, 1, &seq_k3());
    persist(&mut e, &mut env);
    let kek1 = kek_of(&mut e, &mut env, &broker, 1).unwrap();
    assert_eq!(kek_of(&mut e, &mut env, &broker, 0).unwrap(), kek1, "epoch 0 means current (1)");

    let k3_2 = K3::from_bytes([2; 32]);
    // Adding an epoch to an enclave that holds K3 needs proof of possession of a loaded one.
    assert_eq!(error_code(&op.provision(&mut e, &mut env, 2, &k3_2)), ErrorCode::K3Conflict);
    let wrong_proof = op.provision_with_proof(&mut e, &mut env, 2, &k3_2, (1, &K3::from_bytes([3; 32])));
    assert_eq!(error_code(&wrong_proof), ErrorCode::K3Conflict);
    assert_eq!(status(&mut e, &mut env).epochs.len(), 1);
    let r = op.provision_with_proof(&mut e, &mut env, 2, &k3_2, (1, &seq_k3()));
    assert!(matches!(r, Response::CustodyStatus(_)), "{r:?}");
    // Pending epoch 2: current stays 1.
    assert_eq!(kek_of(&mut e, &mut env, &broker, 0).unwrap(), kek1);
    assert_eq!(kek_of(&mut e, &mut env, &broker, 2), Err(ErrorCode::UnknownKeyVersion));
    let blob = persist(&mut e, &mut env);
    let kek2 = kek_of(&mut e, &mut env, &broker, 2).unwrap();
    assert_ne!(kek1, kek2);
    assert_eq!(kek_of(&mut e, &mut env, &broker, 0).unwrap(), kek2, "current is now 2");
    assert_eq!(kek_of(&mut e, &mut env, &broker, 1).unwrap(), kek1, "epoch 1 still derivable");
    // The compat address (epoch 1) did not move.
    assert_eq!(address_of(&mut e, &mut env, &broker).unwrap(), VECTOR_ADDRESS);

    // A restart brings both epochs back.
    let mut r = enclave(&m, &broker, |_| {});
    call(&mut r, &mut env, Request::UnsealK3(UnsealK3 { blob }));
    assert_eq!(kek_of(&mut r, &mut env, &broker, 1).unwrap(), kek1);
    assert_eq!(kek_of(&mut r, &mut env, &broker, 2).unwrap(), kek2);

    // Retiring needs the epoch's own K3 …
    let mut op = Operator::connect(&mut r, &mut env, 2);
    let wrong = op.k3_payload(RETIRE_INFO_LABEL, 1, &k3_2);
    assert_eq!(error_code(&op.send(&mut r, &mut env, &Request::Retire(wrong))), ErrorCode::K3Conflict);
    let proof = op.k3_payload(RETIRE_INFO_LABEL, 1, &seq_k3());
    let Response::CustodyStatus(s) = op.send(&mut r, &mut env, &Request::Retire(proof)) else { panic!() };
    assert!(s.needs_seal && s.epochs.len() == 1);
    assert_eq!(kek_of(&mut r, &mut env, &broker, 1), Err(ErrorCode::UnknownKeyVersion));
    assert_eq!(kek_of(&mut r, &mut env, &broker, 2).unwrap(), kek2);
    // … and the last epoch cannot be retired.
    let last = op.k3_payload(RETIRE_INFO_LABEL, 2, &k3_2);
    assert_eq!(error_code(&op.send(&mut r, &mut env, &Request::Retire(last))), ErrorCode::InvalidRequest);
}
