//! The `sigil verify`, `sigil policy`, `sigil attest` and `sigil dev --write-policy` commands,
//! run as the real binary: exit codes (0 ok, 2 refused) and what they print, on genuine Nitro
//! and SEV-SNP evidence (at explicit times inside their validity windows), on a live simulated
//! signer, and on bad input. Every test works in its own temporary directory and port.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "tests")]

mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use common::Signer;
use serde_json::Value;
use sigil::Policy;
use sigil_attestation::nitro::NitroPolicy;
use sigil_attestation::snp::Product;
use sigil_protocol::Platform;

const SIGIL: &str = env!("CARGO_BIN_EXE_sigil");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/attestation/tests/data");
/// SHA-256 of the DER of the AWS Nitro Enclaves Root G1.
const AWS_ROOT_SHA256: &str = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";
const NITRO_DOC: &str = "nitro/evervault_2022-10-13.cose";
const NITRO_DEBUG_DOC: &str = "nitro/evervault_debug_2022-10-12.cose";
/// Inside every certificate's window of `NITRO_DOC` (1665651479 – 1665662282), 18 s after its
/// timestamp.
const NITRO_AT: u64 = 1_665_651_500;
/// Inside the window of `NITRO_DEBUG_DOC` (1665582591 – 1665593394), 94 s after its timestamp.
const NITRO_DEBUG_AT: u64 = 1_665_582_700;
const SNP_REPORT: &str = "snp/virtee_report_milan.bin";
const SNP_VCEK: &str = "snp/virtee_vcek_milan.der";
const SNP_DEBUG_REPORT: &str = "snp/gosev_report_milan_debug.bin";
const SNP_DEBUG_VCEK: &str = "snp/gosev_vcek_milan.der";
/// Inside both VCEKs' validity (2025-06-15).
const SNP_AT: u64 = 1_750_000_000;
/// No CLI run legitimately takes this long; a hang fails the test instead of blocking it.
const TIMEOUT: Duration = Duration::from_secs(60);

fn data(rel: &str) -> PathBuf {
    Path::new(DATA).join(rel)
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(data("expected.json")).unwrap()).unwrap()
}

/// PCR0, PCR1 and PCR2 of the production Nitro document, from `expected.json`.
fn nitro_pcrs() -> [String; 3] {
    let e = expected();
    ["0", "1", "2"].map(|i| e["nitro"]["evervault_2022-10-13.cose"]["pcrs_nonzero"][i].as_str().unwrap().to_owned())
}

fn snp_measurement() -> String {
    expected()["snp"]["virtee_report_milan.bin"]["measurement"].as_str().unwrap().to_owned()
}

/// One finished run of the binary.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Asserts exit 0 and returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success; stdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts exit 2 with a `sigil: ` message ending stderr (log lines may precede it) and
    /// nothing on stdout, and returns that message in lowercase.
    fn refused(&self) -> String {
        assert_eq!(self.code, Some(2), "expected exit 2; stdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(self.stdout.is_empty(), "a refusal printed to stdout: {}", self.stdout);
        let last = self.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("sigil: "), "stderr: {}", self.stderr);
        last.to_lowercase()
    }

    /// [`Out::refused`], and the message names one of `words`.
    fn refused_with(&self, words: &[&str]) -> String {
        let msg = self.refused();
        assert!(words.iter().any(|w| msg.contains(w)), "expected one of {words:?} in: {msg}");
        msg
    }
}

/// Reads a pipe to the end on its own thread (so a full pipe never blocks the child).
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A child killed and reaped when dropped, so a failing test never leaks one.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(args: &[OsString]) -> Command {
    let mut cmd = Command::new(SIGIL);
    cmd.args(args).env_remove(sigil::dev::K3_ENV).env("RUST_LOG", "warn").stdin(Stdio::null());
    cmd
}

/// Runs `sigil ARGS` to completion (killed after [`TIMEOUT`]).
fn sigil(args: Vec<OsString>) -> Out {
    let mut child = Reaped(command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let stdout = drain(child.0.stdout.take().unwrap());
    let stderr = drain(child.0.stderr.take().unwrap());
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sigil {args:?} did not finish within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    Out { code: status.code(), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// [`sigil`] from async code: on a blocking thread, so an in-process server keeps serving.
async fn sigil_async(args: Vec<OsString>) -> Out {
    tokio::task::spawn_blocking(move || sigil(args)).await.unwrap()
}

/// Builds an argument list from strings and paths.
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(OsString::from($a)),*] };
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// A production Nitro policy written by hand: the AWS root and `pcrs` (0, 1, 2).
fn nitro_policy_toml(pcrs: &[String; 3], max_age_secs: u64) -> String {
    format!(
        "version = 1\nplatforms = [\"nitro\"]\nmax_age_secs = {max_age_secs}\n\n[nitro]\nroot_sha256 = \
         \"{AWS_ROOT_SHA256}\"\npcrs = {{ 0 = \"{}\", 1 = \"{}\", 2 = \"{}\" }}\n",
        pcrs[0], pcrs[1], pcrs[2]
    )
}

/// A named pipe at `dir/name` fed `len` bytes of `byte` by a thread (which gives up when the
/// reader closes early, as it should).
fn fifo(dir: &Path, name: &str, byte: u8, len: usize) -> PathBuf {
    let path = dir.join(name);
    assert!(Command::new("mkfifo").arg(&path).status().unwrap().success());
    let writer = path.clone();
    std::thread::spawn(move || {
        use std::io::Write as _;
        // Opening blocks until the reader opens its end.
        let mut pipe = std::fs::OpenOptions::new().write(true).open(writer).unwrap();
        let _ = pipe.write_all(&vec![byte; len]);
    });
    path
}

fn verify(policy: &Path, at: u64, evidence: &Path, certs: &[PathBuf]) -> Out {
    let mut a = args!["verify", "--policy", policy, "--at", at.to_string()];
    for c in certs {
        a.extend(args!["--cert", c]);
    }
    a.push(evidence.into());
    sigil(a)
}

// ---------------------------------------------------------------------------------------
// Real AWS Nitro evidence

#[test]
fn verify_accepts_the_real_nitro_document_inside_its_window_only() {
    let dir = tempfile::tempdir().unwrap();
    let pcrs = nitro_pcrs();
    let policy = write(dir.path(), "nitro.toml", nitro_policy_toml(&pcrs, 600));
    let doc = data(NITRO_DOC);

    let out = verify(&policy, NITRO_AT, &doc, &[]);
    let stdout = out.ok();
    assert!(stdout.contains("verified: nitro evidence\n"), "{stdout}");
    assert!(!stdout.contains("DEBUG"), "{stdout}");
    for (i, pcr) in pcrs.iter().enumerate() {
        assert!(stdout.contains(&format!("PCR{i}: {pcr}\n")), "PCR{i} missing: {stdout}");
    }
    assert!(stdout.contains(&format!("root sha256: {AWS_ROOT_SHA256}")), "{stdout}");
    assert!(stdout.contains("timestamp: 1665651482136 ms"), "{stdout}");
    // A raw document carries no handshake: the summary says the binding was not checked.
    assert!(stdout.contains("binding to a handshake was not checked"), "{stdout}");

    // One second after the leaf's notAfter; one second before the leaf's notBefore.
    verify(&policy, 1_665_662_283, &doc, &[]).refused_with(&["expired"]);
    verify(&policy, 1_665_651_478, &doc, &[]).refused_with(&["not yet valid"]);
    // Inside the window but older than the policy allows.
    let strict = write(dir.path(), "strict.toml", nitro_policy_toml(&pcrs, 10));
    verify(&strict, NITRO_AT, &doc, &[]).refused_with(&["old, over the policy maximum"]);
}

#[test]
fn verify_refuses_a_wrong_pcr_and_the_debug_document() {
    let dir = tempfile::tempdir().unwrap();
    let pcrs = nitro_pcrs();
    for index in 0..3 {
        let mut wrong = pcrs.clone();
        // Flip the last hex digit.
        let last = wrong[index].pop().unwrap();
        wrong[index].push(if last == '0' { '1' } else { '0' });
        let policy = write(dir.path(), &format!("wrong{index}.toml"), nitro_policy_toml(&wrong, 600));
        let msg = verify(&policy, NITRO_AT, &data(NITRO_DOC), &[]).refused_with(&["pcr"]);
        assert!(msg.contains(&format!("pcr{index} does not match")), "{msg}");
    }

    // The debug document (PCR0/1/2 all zero), inside its own window, under a production policy.
    let policy = write(dir.path(), "nitro.toml", nitro_policy_toml(&pcrs, 600));
    verify(&policy, NITRO_DEBUG_AT, &data(NITRO_DEBUG_DOC), &[]).refused_with(&["debug"]);
}

#[test]
fn policy_from_the_real_nitro_document_pins_its_pcrs_and_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let doc = data(NITRO_DOC);
    let out = sigil(args!["policy", "--from", &doc, "--at", NITRO_AT.to_string()]);
    let text = out.ok();
    assert!(text.contains(&format!("root_sha256 = \"{AWS_ROOT_SHA256}\"")), "{text}");
    assert!(text.contains("allow_debug = false"), "{text}");
    let policy = Policy::from_toml(text).unwrap();
    assert_eq!(policy.platforms, [Platform::Nitro], "{text}");
    assert!(!policy.allow_debug);
    assert_eq!((policy.snp.is_some(), policy.sim.is_some(), policy.k3_fingerprint), (false, false, None));
    let pinned = &policy.nitro.as_ref().unwrap().pcrs;
    let expected: Vec<(u8, Vec<u8>)> =
        nitro_pcrs().iter().zip(0u8..).map(|(v, i)| (i, hex::decode(v).unwrap())).collect();
    // Exactly PCR0, 1 and 2 (not 3, 4 or 8, which the document also sets).
    assert_eq!(pinned.clone().into_iter().collect::<Vec<_>>(), expected, "{text}");

    // Fed back to `sigil verify`, it accepts the same document.
    let path = write(dir.path(), "from.toml", text);
    let stdout = verify(&path, NITRO_AT, &doc, &[]).ok().to_owned();
    assert!(stdout.contains("verified: nitro evidence"), "{stdout}");
    // And it is a production policy: the debug document is refused under it.
    verify(&path, NITRO_DEBUG_AT, &data(NITRO_DEBUG_DOC), &[]).refused_with(&["debug"]);
    // `sigil policy` checks the chain too: outside the window there is no policy.
    sigil(args!["policy", "--from", &doc, "--at", "1665662283"]).refused_with(&["expired"]);
}

#[test]
fn policy_from_the_debug_document_needs_allow_debug() {
    let dir = tempfile::tempdir().unwrap();
    let doc = data(NITRO_DEBUG_DOC);
    sigil(args!["policy", "--from", &doc, "--at", NITRO_DEBUG_AT.to_string()]).refused_with(&["debug"]);

    let out = sigil(args!["policy", "--from", &doc, "--at", NITRO_DEBUG_AT.to_string(), "--allow-debug"]);
    let text = out.ok();
    assert!(text.contains("allow_debug = true"), "{text}");
    let policy = Policy::from_toml(text).unwrap();
    assert!(policy.allow_debug);
    let pcrs = &policy.nitro.as_ref().unwrap().pcrs;
    assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    assert!(pcrs.values().all(|v| *v == [0; 48]), "a debug enclave's PCR0/1/2 are zero: {text}");

    // That policy accepts the debug document, and says so.
    let path = write(dir.path(), "debug.toml", text);
    let stdout = verify(&path, NITRO_DEBUG_AT, &doc, &[]).ok().to_owned();
    assert!(stdout.contains("verified: nitro evidence (DEBUG MODE)"), "{stdout}");
    // ... but not the production document, whose PCRs it does not pin.
    verify(&path, NITRO_AT, &data(NITRO_DOC), &[]).refused_with(&["pcr0"]);
}

// ---------------------------------------------------------------------------------------
// Real AMD SEV-SNP evidence

#[test]
fn snp_policy_from_the_real_report_and_verification_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let (report, vcek) = (data(SNP_REPORT), data(SNP_VCEK));
    let measurement = snp_measurement();
    assert!(measurement.starts_with("7a1e5c26"));

    let out = sigil(args!["policy", "--from", &report, "--cert", &vcek, "--at", SNP_AT.to_string()]);
    let text = out.ok();
    assert!(text.contains(&format!("measurement = \"{measurement}\"")), "{text}");
    assert!(text.contains("products = [\"milan\"]"), "{text}");
    let policy = Policy::from_toml(text).unwrap();
    assert_eq!(policy.platforms, [Platform::Snp]);
    let snp = policy.snp.as_ref().unwrap();
    assert_eq!(snp.products, [Product::Milan]);
    assert_eq!(snp.measurement.map(hex::encode), Some(measurement.clone()));
    let tcb = snp.min_tcb.unwrap();
    assert_eq!((tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode), (3, 0, 8, 115));
    assert!(!snp.allow_debug && !snp.allow_vlek, "{text}");
    let path = write(dir.path(), "snp.toml", text);

    // The same report and VCEK verify under it.
    let stdout = verify(&path, SNP_AT, &report, std::slice::from_ref(&vcek)).ok().to_owned();
    assert!(stdout.contains("verified: snp evidence\n"), "{stdout}");
    assert!(stdout.contains(&format!("measurement: {measurement}")), "{stdout}");
    assert!(stdout.contains("product milan"), "{stdout}");
    // With the (built-in) ASK and ARK supplied too, as PEM.
    let chain = [vcek.clone(), data("snp/ask_milan.pem"), data("snp/ark_milan.pem")];
    verify(&path, SNP_AT, &report, &chain).ok();

    // Another chip's VCEK (genuine, also Milan) does not vouch for this report.
    verify(&path, SNP_AT, &report, &[data(SNP_DEBUG_VCEK)]).refused_with(&["chip"]);
    // The debug report with its own VCEK: genuine, but debuggable.
    verify(&path, SNP_AT, &data(SNP_DEBUG_REPORT), &[data(SNP_DEBUG_VCEK)]).refused_with(&["debug"]);
    // No certificate at all; a VCEK not valid yet (2023-04-03).
    verify(&path, SNP_AT, &report, &[]).refused_with(&["no vcek"]);
    verify(&path, 1_680_000_000, &report, std::slice::from_ref(&vcek)).refused_with(&["not valid before"]);
    // `sigil policy` refuses the debug report without --allow-debug.
    sigil(args![
        "policy",
        "--from",
        data(SNP_DEBUG_REPORT),
        "--cert",
        data(SNP_DEBUG_VCEK),
        "--at",
        SNP_AT.to_string()
    ])
    .refused_with(&["debug"]);
}

// ---------------------------------------------------------------------------------------
// The simulation: a live in-process signer

/// The hex of the K3 fingerprint the vector signer holds.
fn k3_fingerprint_hex() -> String {
    hex::encode(sigil_enclave::K3::from_bytes(common::k3_seq_bytes()).fingerprint())
}

/// Saves `GET /dev/attestation` for a fixed nonce as `ev.json` and the dev policy as `sim.toml`.
async fn sim_files(s: &Signer, dir: &Path) -> (PathBuf, PathBuf, Value) {
    let nonce = hex::encode([0x5a; 32]);
    let reply = s.http.get(&format!("/dev/attestation?nonce={nonce}")).await;
    let json = reply.ok();
    assert_eq!(json["platform"], "sim");
    assert_eq!(json["nonce"], format!("0x{nonce}"));
    let ev = write(dir, "ev.json", &reply.text);
    // What `sigil dev --write-policy` writes.
    let policy = write(dir, "sim.toml", s.dev.sim_policy().to_toml());
    (ev, policy, json)
}

/// Changes one hex digit of the string field `name` of the evidence JSON.
fn tamper(json: &Value, name: &str) -> String {
    let mut v = json.clone();
    let mut s = v[name].as_str().unwrap().to_owned();
    let last = s.pop().unwrap();
    s.push(if last == '0' { '1' } else { '0' });
    v[name] = Value::String(s);
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_policy_on_saved_sim_evidence() {
    let s = Signer::vectors().await;
    let dir = tempfile::tempdir().unwrap();
    let (ev, sim_toml, json) = sim_files(&s, dir.path()).await;
    let fp = k3_fingerprint_hex();

    let out = sigil_async(args!["verify", "--policy", &sim_toml, &ev]).await;
    let stdout = out.ok();
    assert!(stdout.contains("verified: sim evidence\n"), "{stdout}");
    assert!(stdout.contains(&format!("k3 fingerprint: 0x{fp}")), "{stdout}");
    assert!(!stdout.contains("not checked"), "JSON evidence has its binding checked: {stdout}");

    // `sigil policy --from` the JSON: exactly the policy the dev server trusts itself with
    // (its sim root, PCR0/1/2, the K3 fingerprint), and `sigil verify` accepts it.
    let out = sigil_async(args!["policy", "--from", &ev]).await;
    let text = out.ok();
    assert!(text.contains(&format!("k3_fingerprint = \"{fp}\"")), "{text}");
    assert_eq!(Policy::from_toml(text).unwrap(), s.dev.sim_policy(), "{text}");
    let from = write(dir.path(), "from.toml", text);
    let stdout = sigil_async(args!["verify", "--policy", &from, &ev]).await.ok().to_owned();
    assert!(stdout.contains(&format!("k3 fingerprint: 0x{fp}")), "{stdout}");

    // The bare document, without the handshake around it: sim evidence all the same.
    let raw = Base64::decode_vec(json["evidence"]["document"].as_str().unwrap()).unwrap();
    let raw = write(dir.path(), "sim.cose", raw);
    let stdout = sigil_async(args!["verify", "--policy", &sim_toml, &raw]).await.ok().to_owned();
    assert!(stdout.contains("verified: sim evidence\n") && stdout.contains("not checked"), "{stdout}");
    // A policy allowing both Nitro and sim sends each raw document to its own root: the real
    // AWS document is verified as Nitro, the simulated one as sim.
    let mut both = s.dev.sim_policy();
    both.platforms = vec![Platform::Nitro, Platform::Sim];
    let pcrs = nitro_pcrs().iter().zip(0u8..).map(|(v, i)| (i, hex::decode(v).unwrap())).collect();
    both.nitro = Some(NitroPolicy { pcrs, max_age_secs: Some(both.max_age_secs), allow_debug: false });
    let both = write(dir.path(), "both.toml", both.to_toml());
    let stdout = sigil_async(args!["verify", "--policy", &both, &raw]).await.ok().to_owned();
    assert!(stdout.contains("verified: sim evidence\n"), "{stdout}");
    let out = sigil_async(args!["verify", "--policy", &both, "--at", NITRO_AT.to_string(), data(NITRO_DOC)]).await;
    assert!(out.ok().contains("verified: nitro evidence\n"), "{}", out.stdout);

    // One hex digit of a field the evidence is bound to: refused by both commands.
    for field in ["nonce", "signing_pub", "k3_fingerprint"] {
        let bad = write(dir.path(), &format!("bad-{field}.json"), tamper(&json, field));
        sigil_async(args!["verify", "--policy", &sim_toml, &bad]).await.refused_with(&[
            "not bound to this handshake",
            "nonce",
            "signing key",
        ]);
        sigil_async(args!["policy", "--from", &bad]).await.refused_with(&[
            "not bound to this handshake",
            "nonce",
            "signing key",
        ]);
    }
    // The evidence document itself, one byte changed.
    let mut v = json.clone();
    let mut doc = Base64::decode_vec(v["evidence"]["document"].as_str().unwrap()).unwrap();
    let mid = doc.len() / 2;
    doc[mid] ^= 1;
    v["evidence"]["document"] = Value::String(Base64::encode_string(&doc));
    let bad = write(dir.path(), "bad-doc.json", v.to_string());
    sigil_async(args!["verify", "--policy", &sim_toml, &bad]).await.refused_with(&["evidence rejected"]);

    // A policy pinning another K3.
    let mut other = s.dev.sim_policy();
    other.k3_fingerprint = Some([0x11; 32]);
    let other = write(dir.path(), "other-k3.toml", other.to_toml());
    sigil_async(args!["verify", "--policy", &other, &ev]).await.refused_with(&["k3 fingerprint"]);
    // A production (Nitro-only) policy never accepts sim evidence.
    let nitro = write(dir.path(), "nitro.toml", nitro_policy_toml(&nitro_pcrs(), 600));
    sigil_async(args!["verify", "--policy", &nitro, &ev]).await.refused_with(&["does not allow sim"]);
    // Another run's sim root (a fresh server) does not vouch for this one's evidence.
    let s2 = Signer::vectors().await;
    let foreign = write(dir.path(), "foreign.toml", s2.dev.sim_policy().to_toml());
    sigil_async(args!["verify", "--policy", &foreign, &ev]).await.refused_with(&["trusted root"]);
    s2.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attest_a_live_sim_signer() {
    let s = Signer::vectors().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, sim_toml, _) = sim_files(&s, dir.path()).await;
    let cert = write(dir.path(), "tls-cert.pem", &s.dev.cert_pem);
    let url = format!("https://{}", s.dev.addr);
    let fp = k3_fingerprint_hex();

    let out = sigil_async(args!["attest", "--url", &url, "--policy", &sim_toml, "--ca-cert", &cert]).await;
    let stdout = out.ok();
    assert!(stdout.contains("verified: sim evidence\n"), "{stdout}");
    assert!(stdout.contains(&format!("k3 fingerprint: 0x{fp}")), "{stdout}");
    for (i, pcr) in sigil_enclave::attester::sim::sim_pcrs().iter().enumerate() {
        assert!(stdout.contains(&format!("PCR{i}: {}", hex::encode(pcr))), "{stdout}");
    }

    // A policy pinning another K3: the live enclave does not hold it.
    let mut other = s.dev.sim_policy();
    other.k3_fingerprint = Some([0x11; 32]);
    let other = write(dir.path(), "other-k3.toml", other.to_toml());
    sigil_async(args!["attest", "--url", &url, "--policy", &other, "--ca-cert", &cert])
        .await
        .refused_with(&["k3 fingerprint does not match"]);
    // Without the dev certificate the TLS handshake fails: nothing is verified.
    sigil_async(args!["attest", "--url", &url, "--policy", &sim_toml]).await.refused_with(&["transport"]);
    // Not an https:// URL.
    let plain = format!("ftp://{}", s.dev.addr);
    sigil_async(args!["attest", "--url", &plain, "--policy", &sim_toml, "--ca-cert", &cert])
        .await
        .refused_with(&["https://"]);
    s.stop().await;
}

// ---------------------------------------------------------------------------------------
// `sigil dev --write-policy`

#[test]
fn dev_writes_the_policy_that_trusts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev-policy.toml");
    // `sigil dev` keeps its certificate under $TMPDIR: point that at the test's directory.
    let (mut child, addr) = spawn_dev(
        &[OsString::from("dev"), "--port".into(), "0".into(), "--write-policy".into(), path.clone().into()],
        dir.path(),
    );
    let deadline = Instant::now() + TIMEOUT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never written", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let policy = Policy::from_toml(&text).unwrap();
    assert_eq!(policy.platforms, [Platform::Sim], "{text}");
    assert!(!policy.allow_debug && policy.nitro.is_none() && policy.snp.is_none());
    let sim = policy.sim.as_ref().unwrap();
    let expected: Vec<(u8, Vec<u8>)> =
        sigil_enclave::attester::sim::sim_pcrs().iter().zip(0u8..).map(|(v, i)| (i, v.to_vec())).collect();
    assert_eq!(sim.nitro.pcrs.clone().into_iter().collect::<Vec<_>>(), expected);
    // A fresh random K3 (the variable is removed from the child's environment) is pinned.
    assert!(policy.k3_fingerprint.is_some_and(|fp| fp != [0; 32]), "{text}");

    // The rehearsal it exists for: `sigil attest` with that policy and the dev certificate.
    let cert = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().join("tls-cert.pem"))
        .find(|p| p.exists())
        .expect("sigil dev wrote its certificate under $TMPDIR");
    let out = sigil(args!["attest", "--url", format!("https://{addr}"), "--policy", &path, "--ca-cert", &cert]);
    let stdout = out.ok();
    assert!(stdout.contains("verified: sim evidence"), "{stdout}");
    assert!(stdout.contains(&format!("k3 fingerprint: 0x{}", hex::encode(policy.k3_fingerprint.unwrap()))), "{stdout}");

    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

#[test]
fn dev_help_documents_write_policy() {
    let out = sigil(args!["dev", "--help"]);
    let help = out.ok();
    assert!(help.contains("--write-policy <PATH>"), "{help}");
    assert!(help.contains("sigil attest"), "{help}");
}

// ---------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_policy_files_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let doc = data(NITRO_DOC);
    let good = nitro_policy_toml(&nitro_pcrs(), 600);

    let missing = dir.path().join("missing.toml");
    let msg = verify(&missing, NITRO_AT, &doc, &[]).refused_with(&["cannot read policy"]);
    assert!(msg.contains("missing.toml"), "{msg}");

    // A typo in a top-level key and in a section key: never silently ignored.
    let typo = write(dir.path(), "typo.toml", good.replace("max_age_secs", "max_age_sec"));
    let msg = verify(&typo, NITRO_AT, &doc, &[]).refused_with(&["unknown field"]);
    assert!(msg.contains("max_age_sec") && msg.contains("typo.toml"), "{msg}");
    let typo = write(dir.path(), "typo2.toml", good.replace("pcrs =", "pcr ="));
    verify(&typo, NITRO_AT, &doc, &[]).refused_with(&["unknown field `pcr`"]);
    // A policy without PCR2; a platform without its section; a foreign Nitro root.
    let pcrs = nitro_pcrs();
    let no_pcr2 = write(dir.path(), "nopcr2.toml", good.replace(&format!(", 2 = \"{}\"", pcrs[2]), ""));
    verify(&no_pcr2, NITRO_AT, &doc, &[]).refused_with(&["must pin pcr0, pcr1 and pcr2"]);
    let snp_only = write(dir.path(), "snp.toml", good.replace("[\"nitro\"]", "[\"snp\"]"));
    verify(&snp_only, NITRO_AT, &doc, &[]).refused_with(&["no [snp] section"]);
    let root = write(dir.path(), "root.toml", good.replace(AWS_ROOT_SHA256, &"00".repeat(32)));
    verify(&root, NITRO_AT, &doc, &[]).refused_with(&["aws nitro enclaves root g1"]);
    // The same PCR under two spellings of its index: ambiguous, so refused.
    let twice = good.replace("pcrs = { 0 = ", &format!("pcrs = {{ 00 = \"{}\", 0 = ", "00".repeat(48)));
    let twice = write(dir.path(), "twice.toml", twice);
    verify(&twice, NITRO_AT, &doc, &[]).refused_with(&["pcr index given twice"]);
    // Not TOML at all.
    let junk = write(dir.path(), "junk.toml", "this is not toml");
    verify(&junk, NITRO_AT, &doc, &[]).refused_with(&["policy is not valid"]);
    // A policy from a pipe, which has no size up front: cut off at the limit.
    let pipe = fifo(dir.path(), "policy.fifo", b' ', 1 << 20);
    verify(&pipe, NITRO_AT, &doc, &[]).refused_with(&["more than 65536 bytes"]);
}

#[test]
fn bad_evidence_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "nitro.toml", nitro_policy_toml(&nitro_pcrs(), 600));
    // Deterministic noise that is none of the three shapes (first byte 0x00, not 1184 bytes).
    let noise: Vec<u8> = (0u32..1000).map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap()).collect();
    assert_eq!(noise[0], 0);
    let random = write(dir.path(), "random.bin", &noise);
    verify(&policy, NITRO_AT, &random, &[]).refused_with(&["not a nitro document, an snp report or evidence json"]);
    sigil(args!["policy", "--from", &random]).refused_with(&["not a nitro document"]);
    // Noise that looks like a COSE array, or is exactly as long as an SNP report.
    let mut cose = noise.clone();
    cose[0] = 0x84;
    let cose = write(dir.path(), "cose.bin", cose);
    verify(&policy, NITRO_AT, &cose, &[]).refused_with(&["nitro:"]);
    let snp_len: Vec<u8> = noise.iter().copied().cycle().take(1184).collect();
    let snp_len = write(dir.path(), "snp.bin", snp_len);
    let msg = sigil(args!["policy", "--from", &snp_len]).refused_with(&["evidence rejected"]);
    assert!(msg.contains("report"), "{msg}");
    // JSON that is not evidence; JSON evidence with --cert.
    let json = write(dir.path(), "x.json", "{\"platform\": \"nitro\"}");
    verify(&policy, NITRO_AT, &json, &[]).refused_with(&["evidence json"]);
    verify(&policy, NITRO_AT, &json, &[data(SNP_VCEK)]).refused_with(&["--cert"]);
    // A certificate next to a Nitro document.
    verify(&policy, NITRO_AT, &data(NITRO_DOC), &[data(SNP_VCEK)]).refused_with(&["--cert"]);
    // Missing evidence.
    verify(&policy, NITRO_AT, &dir.path().join("nope.cose"), &[]).refused_with(&["cannot read evidence"]);
}

#[test]
fn oversized_evidence_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "nitro.toml", nitro_policy_toml(&nitro_pcrs(), 600));
    // A sparse 4 GiB file: refused from its size, not read (that would take far longer).
    let big = dir.path().join("big.cose");
    std::fs::File::create(&big).unwrap().set_len(4 << 30).unwrap();
    let started = Instant::now();
    let msg = verify(&policy, NITRO_AT, &big, &[]).refused_with(&["at most 262144"]);
    assert!(msg.contains("4294967296 bytes"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    // Just over the limit is already too much; at the limit it is read (and is not evidence).
    let edge = dir.path().join("edge.cose");
    std::fs::File::create(&edge).unwrap().set_len(256 * 1024 + 1).unwrap();
    verify(&policy, NITRO_AT, &edge, &[]).refused_with(&["at most 262144"]);
    std::fs::File::create(&edge).unwrap().set_len(256 * 1024).unwrap();
    verify(&policy, NITRO_AT, &edge, &[]).refused_with(&["not a nitro document"]);
    // A stream with no size up front (a pipe here; `<(...)`, a device or `/proc` alike) is cut
    // off at the limit rather than read to its end, however far that is.
    let pipe = fifo(dir.path(), "ev.fifo", 0, 1 << 20);
    verify(&policy, NITRO_AT, &pipe, &[]).refused_with(&["more than 262144 bytes"]);
    let pipe = fifo(dir.path(), "ev2.fifo", 0, 1 << 20);
    sigil(args!["policy", "--from", &pipe]).refused_with(&["more than 262144 bytes"]);
}

// `sigil dev --state-dir`: the custody rehearsal with the real binaries.

/// Starts `sigil dev` with `args` and waits for its address.
fn spawn_dev(args: &[OsString], tmp: &Path) -> (Reaped, String) {
    let mut child =
        Reaped(command(args).env("TMPDIR", tmp).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|e| panic!("no listening line from `sigil dev`: {e}"));
        if let Some(addr) = line.strip_prefix("sigil dev: signer listening on https://") {
            return (child, addr.trim().to_owned());
        }
    }
}

#[test]
fn dev_state_dir_provision_then_a_killed_signer_restores_k3() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let dev_args = args!["dev", "--port", "0", "--state-dir", &state, "--unprovisioned"];
    let (mut child, addr) = spawn_dev(&dev_args, tmp.path());
    let url = format!("https://{addr}");
    let (policy, tls) = (state.join("policy.toml"), state.join("tls-cert.pem"));
    let k3 = write(tmp.path(), "k3.hex", format!("0x{}\n", "00010203040506070809".to_owned() + &"0a".repeat(22)));

    let custody = || sigil(args!["custody", "--url", &url, "--policy", &policy, "--tls-ca", &tls]).ok().to_owned();
    assert!(custody().contains("current epoch: none"), "unprovisioned at first");
    let out = sigil(args!["provision", "--url", &url, "--policy", &policy, "--tls-ca", &tls, "--k3-file", &k3]);
    assert!(out.ok().contains("provisioned epoch 1"), "{}", out.stdout);
    let before = custody();
    assert!(before.contains("epoch 1: K3 fingerprint 0x") && before.contains("(durable)"), "{before}");

    // SIGKILL: no shutdown path runs. The restarted signer restores K3 from its sealed blob.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (mut child, addr) = spawn_dev(&dev_args, tmp.path());
    let url = format!("https://{addr}");
    let after = sigil(args!["custody", "--url", &url, "--policy", &policy, "--tls-ca", &tls]).ok().to_owned();
    assert_eq!(after, before, "a restart must restore exactly the same K3");
    // Provisioning another K3 into the same epoch is refused.
    let other = write(tmp.path(), "other.hex", "ab".repeat(32));
    let out = sigil(args!["provision", "--url", &url, "--policy", &policy, "--tls-ca", &tls, "--k3-file", &other]);
    assert!(out.code != Some(0) && out.stderr.contains("k3_conflict"), "{}", out.stderr);

    // A second signer on the same simulated vendor root and broker receives K3 by replication.
    let state_b = tmp.path().join("state-b");
    let broker = state.join("broker.pem");
    let b_args = args![
        "dev",
        "--port",
        "0",
        "--state-dir",
        &state_b,
        "--unprovisioned",
        "--sim-ca",
        &state,
        "--broker-pubkey",
        &broker
    ];
    let (mut b, b_addr) = spawn_dev(&b_args, tmp.path());
    let b_url = format!("https://{b_addr}");
    let tls_b = state_b.join("tls-cert.pem");
    let out = sigil(args![
        "replicate",
        "--from",
        &url,
        "--to",
        &b_url,
        "--policy",
        &policy,
        "--tls-ca",
        &tls,
        "--tls-ca",
        &tls_b
    ]);
    assert!(out.ok().contains("durable"), "{}", out.stdout);
    let on_b = sigil(args!["custody", "--url", &b_url, "--policy", &state_b.join("policy.toml"), "--tls-ca", &tls_b]);
    assert_eq!(on_b.ok(), before, "B holds exactly A's K3");
    for c in [&mut child, &mut b] {
        c.0.kill().unwrap();
        c.0.wait().unwrap();
    }
}
