//! The real binaries, `sigil-enclave` on a Unix socket and `sigil-host` (plain HTTP on
//! loopback; HTTPS is covered by `http.rs`), through an enclave crash: `kill -9` under load,
//! every request answered fast with 503 `enclave_unavailable` while it is gone, and the same
//! host serving 200 again once an enclave is back on the socket — no host restart.
//!
//! Both binaries are found next to the test executable (`target/<profile>/`); `cargo test
//! --features sim` at the workspace root builds them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests: failing loudly is the point"
)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::json;

/// No request may take longer than this, whatever the enclave does.
const FAST: Duration = Duration::from_secs(2);
/// Load generators.
const WORKERS: usize = 8;

/// A binary built next to this test (`target/<profile>/<name>`).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/restart-<hash>
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: build both binaries first — run `cargo test --features sim` at the workspace root \
         (or `cargo build -p sigil-enclave -p sigil-host`)",
        path.display()
    );
    path
}

/// A child process killed (SIGKILL) and reaped on every exit path.
struct Proc {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, name: &'static str, log: PathBuf) -> Self {
        let err = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { child, name, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }

    /// `kill -9`, then reap.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The enclave on `socket`, K3 from `SIGIL_K3` when given; waits until it accepts.
fn start_enclave(dir: &Path, socket: &Path, broker_pem: &Path, k3: Option<&str>, log: &str) -> Proc {
    let mut cmd = Command::new(binary("sigil-enclave"));
    cmd.arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--broker-pubkey")
        .arg(broker_pem)
        .env_remove("SIGIL_K3")
        .env_remove("DEV_KEY_SERVICE_MASTER_SECRET")
        .env("RUST_LOG", "info");
    if let Some(k3) = k3 {
        cmd.env("SIGIL_K3", k3);
    }
    let mut p = Proc::spawn(cmd, "sigil-enclave", dir.join(log));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        p.assert_running();
        assert!(Instant::now() < deadline, "sigil-enclave did not listen:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    p
}

/// The host on 127.0.0.1:0 (plain HTTP) relaying to `socket`; returns it and the address it
/// logged (`listen=http://127.0.0.1:PORT`).
fn start_host(dir: &Path, socket: &Path, broker_pem: &Path) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(binary("sigil-host"));
    cmd.args(["--plain-http", "--listen", "127.0.0.1:0", "--rate-limit", "0"])
        .arg("--enclave")
        .arg(format!("unix://{}", socket.display()))
        .arg("--broker-pubkey")
        .arg(broker_pem)
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn(cmd, "sigil-host", dir.join("host.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = p.log();
        if let Some(rest) = log.split("listen=http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap();
            return (p, addr.parse().unwrap_or_else(|e| panic!("listen address {addr:?}: {e}")));
        }
        p.assert_running();
        assert!(Instant::now() < deadline, "sigil-host did not log its address:\n{log}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `f` every 20 ms until it holds or `limit` passes; returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one load request got.
#[derive(Debug, Clone)]
enum Outcome {
    Signed { account: usize, msg: Vec<u8>, signature: String, address: String },
    Unavailable,
    Other(String),
}

#[derive(Debug, Clone)]
struct Sample {
    start: Instant,
    end: Instant,
    outcome: Outcome,
}

async fn sign_once(http: &Http, token: &str, omni: &str, account: usize, msg: Vec<u8>) -> Outcome {
    let auth = format!("Bearer {token}");
    let body = json!({"omni_account": omni, "message_hex": hex::encode(&msg)}).to_string().into_bytes();
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
    match http.try_send(Method::POST, "/dev/sign-message", &headers, Some(body)).await {
        Ok(r) if r.status == 200 => {
            let v = r.json();
            Outcome::Signed {
                account,
                msg,
                signature: v["signature"].as_str().unwrap().to_owned(),
                address: v["address"].as_str().unwrap().to_owned(),
            }
        }
        Ok(r) if r.status == 503 && r.error().as_deref() == Some("enclave_unavailable") => Outcome::Unavailable,
        Ok(r) => Outcome::Other(format!("{} {}", r.status, r.text)),
        Err(e) => Outcome::Other(format!("transport: {e:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enclave_crash_under_load_fails_fast_then_host_reconnects() {
    let broker = Broker::new();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("broker.pem");
    std::fs::write(&pem, broker.spki_pem()).unwrap();
    let socket = dir.path().join("enclave.sock");

    // The host first, with no enclave yet: it starts, answers, and is not ready.
    let (mut host, addr) = start_host(dir.path(), &socket, &pem);
    let http = Http::plain(addr, Duration::from_secs(10));
    assert_eq!(http.get("/healthz").await.text, "ok");
    http.get("/readyz").await.assert_error(503, "enclave_unavailable");
    let o = hex::encode([0xab; 32]);
    http.sign_message(&broker.token(&o), &o, "00").await.assert_error(503, "enclave_unavailable");

    let mut enclave = start_enclave(dir.path(), &socket, &pem, Some(K3_HEX), "enclave-1.log");
    within(Duration::from_secs(10), "ready once the enclave is up", || async {
        http.get("/readyz").await.status == 200
    })
    .await;
    // The SPEC §3 vector through the real binaries.
    let r = http.sign_message(&broker.token(&o), &o, "68656c6c6f").await.ok();
    assert_eq!(r["address"], "0x384099f86f48b052da6535d608315dee069642f7");

    let accounts: Vec<String> = (0..WORKERS).map(|i| hex::encode([0x80 + u8::try_from(i).unwrap(); 32])).collect();
    let tokens: Vec<String> = accounts.iter().map(|o| broker.token(o)).collect();
    let mut addresses = Vec::new();
    for (o, t) in accounts.iter().zip(&tokens) {
        addresses.push(http.derive(t, o).await.ok()["address"].as_str().unwrap().to_owned());
    }

    // Load: WORKERS tasks signing distinct messages in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let (http, stop, samples) = (http.clone(), Arc::clone(&stop), Arc::clone(&samples));
        let (o, t) = (accounts[w].clone(), tokens[w].clone());
        workers.spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let msg = format!("worker {w} message {n}").into_bytes();
                n += 1;
                let start = Instant::now();
                let outcome = sign_once(&http, &t, &o, w, msg).await;
                let failed = !matches!(outcome, Outcome::Signed { .. });
                samples.lock().unwrap().push(Sample { start, end: Instant::now(), outcome });
                if failed {
                    // Keep the outage from becoming a busy loop.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    let killed = Instant::now();
    enclave.kill9();
    tokio::time::sleep(Duration::from_millis(400)).await;

    // While it is gone: not ready, and the enclave client counted nothing as reconnected.
    http.get("/readyz").await.assert_error(503, "enclave_unavailable");
    host.assert_running();

    // A new enclave on the same (stale) socket path; the same host picks it up.
    let restarted = Instant::now();
    let _enclave2 = start_enclave(dir.path(), &socket, &pem, Some(K3_HEX), "enclave-2.log");
    let o0 = accounts[0].clone();
    let recovery = within(Duration::from_secs(8), "signing again after the enclave restart", || async {
        matches!(sign_once(&http, &tokens[0], &o0, 0, b"probe".to_vec()).await, Outcome::Signed { .. })
    })
    .await;
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }

    let samples = samples.lock().unwrap().clone();
    let slowest = samples.iter().map(|s| s.end - s.start).max().unwrap();
    assert!(slowest < FAST, "a request took {slowest:?}");
    let others: Vec<&str> = samples
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Other(what) => Some(what.as_str()),
            _ => None,
        })
        .collect();
    assert!(others.is_empty(), "only 200 or 503 enclave_unavailable expected: {:?}", &others[..others.len().min(5)]);
    let before: Vec<_> = samples.iter().filter(|s| s.end < killed).collect();
    let down: Vec<_> =
        samples.iter().filter(|s| s.start > killed + Duration::from_millis(50) && s.end < restarted).collect();
    let after: Vec<_> = samples.iter().filter(|s| s.start > recovered).collect();
    let spanning = samples.iter().filter(|s| s.start < killed && s.end > killed).count();
    let signed = |v: &[&Sample]| v.iter().filter(|s| matches!(s.outcome, Outcome::Signed { .. })).count();
    assert!(!before.is_empty() && signed(&before) == before.len(), "all 200 before the crash");
    assert!(!down.is_empty() && signed(&down) == 0, "all 503 enclave_unavailable while the enclave is down");
    assert!(!after.is_empty() && signed(&after) == after.len(), "all 200 once reconnected");

    // Every signature recovers (k256) to its account's address.
    let mut checked = 0;
    for s in &samples {
        if let Outcome::Signed { account, msg, signature, address } = &s.outcome {
            assert_eq!(address, &addresses[*account]);
            assert_eq!(&recover_address(&eip191_digest(msg), signature), address);
            checked += 1;
        }
    }

    assert_eq!(http.get("/readyz").await.ok(), json!({"ready": true}));
    let metrics = http.get("/metrics").await.text;
    let reconnects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sigil_enclave_reconnects_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reconnect counter:\n{metrics}"));
    assert!(reconnects >= 1, "{metrics}");
    assert!(metrics.contains("sigil_http_requests_total{route=\"/dev/sign-message\",code=\"enclave_unavailable\"}"));
    host.assert_running();
    eprintln!(
        "{} requests ({} signed and recovered, {spanning} in flight at the kill, {} while down), slowest \
         {slowest:?}; served again {recovery:?} after the enclave restart; {reconnects} reconnects",
        samples.len(),
        checked,
        down.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_follows_an_enclave_restarted_with_k3() {
    // An enclave that comes back provisioned after having been unprovisioned: the host must
    // not keep answering `signer_disabled` from what it saw before (it may for a moment).
    let broker = Broker::new();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("broker.pem");
    std::fs::write(&pem, broker.spki_pem()).unwrap();
    let socket = dir.path().join("enclave.sock");
    let mut enclave = start_enclave(dir.path(), &socket, &pem, None, "enclave-1.log");
    let (_host, addr) = start_host(dir.path(), &socket, &pem);
    let http = Http::plain(addr, Duration::from_secs(10));
    let o = hex::encode([0x00; 32]);
    let t = broker.token(&o);
    within(Duration::from_secs(10), "unprovisioned enclave reachable", || async {
        http.derive(&t, &o).await.error().as_deref() == Some("signer_disabled")
    })
    .await;

    enclave.kill9();
    let _enclave2 = start_enclave(dir.path(), &socket, &pem, Some(K3_HEX), "enclave-2.log");
    // Wait for the reconnection through /metrics only: /readyz would refresh the host's view.
    within(Duration::from_secs(8), "reconnected", || async {
        http.get("/metrics")
            .await
            .text
            .lines()
            .any(|l| l.strip_prefix("sigil_enclave_reconnects_total ").is_some_and(|v| v.parse::<u64>().unwrap() >= 1))
    })
    .await;
    // Noticed without a restart of the host and without anyone asking /readyz.
    let noticed = within(Duration::from_secs(5), "the host notices the enclave now holds K3", || async {
        http.derive(&t, &o).await.status == 200
    })
    .await;
    let r = http.derive(&t, &o).await;
    assert_eq!(r.ok()["address"], "0x4b4ad1781d82e7173c44142dabdb4823885da21b");
    eprintln!("provisioned enclave served {noticed:?} after reconnecting");
}
