//! K3 custody end to end, through the real HTTPS host, the real `sigil` binary for the
//! operator commands, and `sigil dev --state-dir` signers: provisioning (import of the old
//! signer's K3), sealed restarts, `reprovision_required`, replication, epoch rotation.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Broker, Http, K3_HEX, eip191_digest, recover_address};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sigil::dev::{DevArgs, DevServer, POLICY_FILE, TLS_CERT_FILE, start};
use sigil::{Client, ClientOptions};

const SIGIL: &str = env!("CARGO_BIN_EXE_sigil");
/// SPEC §3: K3 = 00..1f, omni = ab × 32, key_version 1.
const VECTOR_ADDRESS: &str = "0x384099f86f48b052da6535d608315dee069642f7";
const VECTOR_SIG_HELLO: &str = "0x6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01";

fn omni() -> String {
    "ab".repeat(32)
}

/// One `sigil dev --state-dir` signer, restartable with the same directory and broker.
struct Node {
    dir: PathBuf,
    broker_pem: PathBuf,
    sim_ca: Option<PathBuf>,
    dev: Option<DevServer>,
}

impl Node {
    fn new(root: &Path, name: &str, broker: &Broker, sim_ca: Option<PathBuf>) -> Self {
        let broker_pem = root.join(format!("{name}-broker.pem"));
        std::fs::write(&broker_pem, broker.spki_pem()).unwrap();
        Self { dir: root.join(name), broker_pem, sim_ca, dev: None }
    }

    async fn start(&mut self) -> &DevServer {
        let args = DevArgs {
            port: 0,
            broker_pubkey: Some(self.broker_pem.clone()),
            state_dir: Some(self.dir.clone()),
            unprovisioned: true,
            sim_ca: self.sim_ca.clone(),
            ..DevArgs::default()
        };
        let dev = start(&args).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !dev.state.0.client.is_connected() {
            assert!(std::time::Instant::now() < deadline, "the in-process enclave never connected");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        self.dev = Some(dev);
        self.dev.as_ref().unwrap()
    }

    async fn stop(&mut self) {
        if let Some(dev) = self.dev.take() {
            dev.stop().await.unwrap();
        }
    }

    fn dev(&self) -> &DevServer {
        self.dev.as_ref().unwrap()
    }

    fn url(&self) -> String {
        format!("https://{}", self.dev().addr)
    }

    fn http(&self) -> Http {
        Http::https(self.dev().addr, &self.dev().cert_pem)
    }

    fn tls_ca(&self) -> PathBuf {
        self.dir.join(TLS_CERT_FILE)
    }

    fn policy(&self) -> PathBuf {
        self.dir.join(POLICY_FILE)
    }

    fn blobs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("k3-sealed-"))
            .collect();
        v.sort();
        v
    }

    async fn client(&self) -> Client {
        let mut policy = self.dev().sim_policy();
        policy.k3_fingerprint = None;
        let options =
            ClientOptions { ca_cert_pem: Some(self.dev().cert_pem.clone().into_bytes()), ..ClientOptions::default() };
        Client::connect(&self.url(), policy, options).await.unwrap()
    }

    /// `(address, signature of "hello", v2 KEK for "github" in epoch 1)` through the compat
    /// routes and the attested client.
    async fn results(&self, broker: &Broker) -> (String, String, [u8; 32]) {
        let token = broker.token(&omni());
        let http = self.http();
        let address = http.derive(&token, &omni()).await.ok()["address"].as_str().unwrap().to_owned();
        let sig = http.sign_message(&token, &omni(), "68656c6c6f").await.ok()["signature"].as_str().unwrap().to_owned();
        let kek = self.client().await.derive_kek(&token, omni_bytes(), b"github").await.unwrap();
        (address, sig, *kek)
    }
}

fn omni_bytes() -> [u8; 32] {
    [0xab; 32]
}

fn sigil(args: &[&str]) -> (bool, String) {
    let out = Command::new(SIGIL).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_k3(root: &Path, name: &str, hex: &str) -> PathBuf {
    let p = root.join(name);
    std::fs::write(&p, hex).unwrap();
    p
}

/// `sigil provision` with the real binary (`extra`: more arguments).
fn provision(node: &Node, k3_file: &Path, key_version: u8) -> String {
    provision_with(node, k3_file, key_version, &[])
}

fn provision_with(node: &Node, k3_file: &Path, key_version: u8, extra: &[&str]) -> String {
    let kv = key_version.to_string();
    let url = node.url();
    let (policy, tls_ca) = (node.policy(), node.tls_ca());
    let mut args = vec![
        "provision",
        "--url",
        &url,
        "--policy",
        path(&policy),
        "--tls-ca",
        path(&tls_ca),
        "--k3-file",
        path(k3_file),
        "--key-version",
        &kv,
    ];
    args.extend_from_slice(extra);
    let (ok, out) = sigil(&args);
    assert!(ok, "sigil provision failed: {out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_old_signers_k3_gives_the_spec_vectors_and_survives_a_hundred_restarts() {
    let root = tempfile::tempdir().unwrap();
    let broker = Broker::new();
    let mut a = Node::new(root.path(), "a", &broker, None);
    a.start().await;
    // Unprovisioned: 503 signer_disabled, /readyz false.
    a.http().derive(&broker.token(&omni()), &omni()).await.assert_error(503, "signer_disabled");
    a.http().get("/readyz").await.assert_error(503, "signer_disabled");
    let custody = a.http().get("/v1/custody").await.ok();
    assert_eq!(custody["provisioned"], false);
    assert!(custody["hint"].as_str().unwrap().contains("sigil provision"), "{custody}");

    // The old signer's environment variable, as it was: 0x-prefixed, with a newline.
    let k3 = write_k3(root.path(), "k3.hex", &format!("0x{K3_HEX}\n"));
    let out = provision(&a, &k3, 1);
    assert!(out.contains("durable"), "{out}");
    assert_eq!(a.blobs().len(), 1);
    a.http().get("/readyz").await.ok();
    let custody = a.http().get("/v1/custody").await.ok();
    assert_eq!(custody["epochs"][0]["durable"], true, "{custody}");
    assert_eq!(custody["sealed_generations"].as_array().unwrap().len(), 1, "{custody}");

    let token = broker.token(&omni());
    let reply = a.http().sign_message(&token, &omni(), "68656c6c6f").await.ok();
    assert_eq!(reply["signature"], VECTOR_SIG_HELLO);
    assert_eq!(reply["address"], VECTOR_ADDRESS);
    assert_eq!(recover_address(&eip191_digest(b"hello"), VECTOR_SIG_HELLO), VECTOR_ADDRESS);
    let expected = a.results(&broker).await;
    assert_eq!(expected.0, VECTOR_ADDRESS);

    for i in 0..100 {
        a.stop().await;
        a.start().await;
        assert_eq!(a.results(&broker).await, expected, "restart {i}");
    }
    assert_eq!(a.blobs().len(), 1, "restarts must not pile up blobs");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_the_rename_leaves_the_previous_blob_and_bad_blobs_require_reprovisioning() {
    let root = tempfile::tempdir().unwrap();
    let broker = Broker::new();
    let mut a = Node::new(root.path(), "a", &broker, None);
    a.start().await;
    provision(&a, &write_k3(root.path(), "k3.hex", K3_HEX), 1);
    let expected = a.results(&broker).await;
    a.stop().await;
    let good = a.blobs().pop().unwrap();
    let good_bytes = std::fs::read(&good).unwrap();

    // Killed while writing the next generation: its temporary file is all that is left.
    let tmp = a.dir.join(".k3-sealed-00000000000000000002.blob.tmp-4242");
    std::fs::write(&tmp, &good_bytes[..good_bytes.len() / 2]).unwrap();
    a.start().await;
    assert_eq!(a.results(&broker).await, expected);
    assert!(!tmp.exists(), "the half-written blob is cleared at start");
    a.stop().await;

    // A newer blob that does not open (sealed for another K3 on another machine): the
    // previous generation is used, never a different address.
    let root_b = tempfile::tempdir().unwrap();
    let mut b = Node::new(root_b.path(), "b", &broker, None);
    b.start().await;
    provision(&b, &write_k3(root_b.path(), "k3.hex", &"42".repeat(32)), 1);
    b.stop().await;
    let foreign = a.dir.join("k3-sealed-00000000000000000009.blob");
    std::fs::copy(b.blobs().pop().unwrap(), &foreign).unwrap();
    a.start().await;
    assert_eq!(a.results(&broker).await, expected);
    a.stop().await;
    std::fs::remove_file(&foreign).unwrap();

    // Each bad blob alone: reprovision_required everywhere, nothing loaded, file untouched.
    let mut flipped = good_bytes.clone();
    let n = flipped.len();
    flipped[n - 10] ^= 0x40;
    let mut measurement = std::fs::read_to_string(a.dir.join("sim-measurement")).unwrap().into_bytes();
    measurement[0] = if measurement[0] == b'0' { b'1' } else { b'0' };
    // (what, blob bytes, replacement measurement file)
    type Case = (&'static str, Vec<u8>, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        ("corrupted", flipped, None),
        ("truncated", good_bytes[..n - 7].to_vec(), None),
        ("another machine's", std::fs::read(b.blobs().pop().unwrap()).unwrap(), None),
        ("another measurement's", good_bytes.clone(), Some(measurement)),
    ];
    let original_measurement = std::fs::read(a.dir.join("sim-measurement")).unwrap();
    for (what, bytes, new_measurement) in cases {
        std::fs::write(&good, &bytes).unwrap();
        if let Some(m) = &new_measurement {
            std::fs::write(a.dir.join("sim-measurement"), m).unwrap();
        }
        a.start().await;
        let http = a.http();
        let ready = http.get("/readyz").await;
        ready.assert_error(503, "reprovision_required");
        assert!(ready.json()["message"].as_str().unwrap().contains("sigil provision"), "{what}: no hint");
        let custody = http.get("/v1/custody").await.ok();
        assert!(custody["reprovision_required"].is_string(), "{what}: {custody}");
        assert_eq!(custody["epochs"].as_array().unwrap().len(), 0, "{what}");
        http.derive(&broker.token(&omni()), &omni()).await.assert_error(503, "signer_disabled");
        a.stop().await;
        assert_eq!(std::fs::read(&good).unwrap(), bytes, "{what}: the blob on disk was changed");
        std::fs::write(a.dir.join("sim-measurement"), &original_measurement).unwrap();
    }

    // Restoring the good blob brings the same K3 back.
    std::fs::write(&good, &good_bytes).unwrap();
    a.start().await;
    assert_eq!(a.results(&broker).await, expected);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_restart_and_rotation_keep_old_credentials_decryptable() {
    let root = tempfile::tempdir().unwrap();
    let broker = Broker::new();
    let mut a = Node::new(root.path(), "a", &broker, None);
    a.start().await;
    provision(&a, &write_k3(root.path(), "k3.hex", K3_HEX), 1);
    let token = broker.token(&omni());

    // A credential stored under a v2 KEK of epoch 1.
    let kek = a.client().await.derive_kek(&token, omni_bytes(), b"github").await.unwrap();
    let secret = b"ghp_credential_of_the_user";
    let nonce = [7u8; 12];
    let mut sealed = secret.to_vec();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek.as_slice()).unwrap())
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(b"github"), &mut sealed)
        .unwrap();
    let expected = a.results(&broker).await;

    // 1. Restart.
    a.stop().await;
    a.start().await;

    // 2. Replicate to B (same simulated vendor root and build), with the real binary.
    let mut b = Node::new(root.path(), "b", &broker, Some(a.dir.clone()));
    b.start().await;
    b.http().derive(&token, &omni()).await.assert_error(503, "signer_disabled");
    let (a_url, b_url) = (a.url(), b.url());
    let (ok, out) = sigil(&[
        "replicate",
        "--from",
        &a_url,
        "--to",
        &b_url,
        "--policy",
        path(&a.policy()),
        "--tls-ca",
        path(&a.tls_ca()),
        "--tls-ca",
        path(&b.tls_ca()),
    ]);
    assert!(ok, "sigil replicate failed: {out}");
    assert!(out.contains("epoch 1") && out.contains("durable"), "{out}");
    assert_eq!(b.blobs().len(), 1, "B stored its own sealed blob");

    // A peer running another build is refused, and gets nothing.
    let mut c = Node::new(root.path(), "c", &broker, Some(a.dir.clone()));
    std::fs::create_dir_all(&c.dir).unwrap();
    let other: String = std::fs::read_to_string(a.dir.join("sim-measurement"))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 1 { format!("{}\n", "cd".repeat(48)) } else { format!("{l}\n") })
        .collect();
    std::fs::write(c.dir.join("sim-measurement"), other).unwrap();
    c.start().await;
    let c_url = c.url();
    let (ok, out) = sigil(&[
        "replicate",
        "--from",
        &a_url,
        "--to",
        &c_url,
        "--policy",
        path(&c.policy()),
        "--tls-ca",
        path(&a.tls_ca()),
        "--tls-ca",
        path(&c.tls_ca()),
    ]);
    assert!(!ok, "replication to another measurement succeeded: {out}");
    assert!(out.contains("attestation failed") || out.contains("peer_refused"), "{out}");
    assert!(c.blobs().is_empty());
    c.http().derive(&token, &omni()).await.assert_error(503, "signer_disabled");
    c.stop().await;

    // 3. Rotate: epoch 2 on B; new KEKs default to it, epoch 1 stays derivable.
    let epoch1 = write_k3(root.path(), "k3-epoch1.hex", K3_HEX);
    let epoch2 = write_k3(root.path(), "k3-epoch2.hex", &"5a".repeat(32));
    // Without proof of holding a loaded epoch's K3, nobody can add an epoch.
    let b_url = b.url();
    let (ok, out) = sigil(&[
        "provision",
        "--url",
        &b_url,
        "--policy",
        path(&b.policy()),
        "--tls-ca",
        path(&b.tls_ca()),
        "--k3-file",
        path(&epoch2),
        "--key-version",
        "2",
    ]);
    assert!(!ok && out.contains("k3_conflict"), "{out}");
    provision_with(&b, &epoch2, 2, &["--proof-k3-file", path(&epoch1), "--proof-key-version", "1"]);
    let status = b.client().await.custody_status().await.unwrap();
    assert_eq!(status.current_key_version, Some(2));

    // A is gone; B serves identical results and still opens the old credential.
    a.stop().await;
    assert_eq!(b.results(&broker).await, expected);
    let epoch1 = b.client().await.derive_kek(&token, omni_bytes(), b"github").await.unwrap();
    let mut buf = sealed.clone();
    let opened = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, epoch1.as_slice()).unwrap())
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(b"github"), &mut buf)
        .unwrap();
    assert_eq!(opened, secret);
    let options = ClientOptions {
        ca_cert_pem: Some(b.dev().cert_pem.clone().into_bytes()),
        key_version: 0,
        ..ClientOptions::default()
    };
    let mut policy = b.dev().sim_policy();
    policy.k3_fingerprint = None;
    let current = Client::connect(&b.url(), policy, options).await.unwrap();
    let kek2 = current.derive_kek(&token, omni_bytes(), b"github").await.unwrap();
    assert_ne!(*kek2, *epoch1, "epoch 0 means the current epoch, 2");

    // After a restart of B both epochs are back.
    b.stop().await;
    b.start().await;
    assert_eq!(b.results(&broker).await, expected);
    assert_eq!(b.client().await.custody_status().await.unwrap().epochs.len(), 2);
    b.stop().await;
}
