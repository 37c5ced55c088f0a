//! The real `sigil-enclave` binary over a real Unix socket: startup, SPEC vectors, pipelining,
//! concurrent connections, hostile bytes, and configuration errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use common::*;
use sigil_protocol::{
    Deframer, DeriveAddress, Envelope, ErrorCode, Request, Response, SignEip191, decode_message, encode_message,
};

const K3_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

struct Running {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pem_of(broker: &Broker) -> String {
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(broker.public_key().as_sec1());
    let b64 = Base64::encode_string(&der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

fn command(dir: &Path, broker: &Broker) -> (Command, PathBuf) {
    command_at(dir, broker, &dir.join("enclave.sock"))
}

fn command_at(dir: &Path, broker: &Broker, socket: &Path) -> (Command, PathBuf) {
    let socket = socket.to_path_buf();
    let key = dir.join("broker.pem");
    std::fs::write(&key, pem_of(broker)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil-enclave"));
    cmd.arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--broker-pubkey")
        .arg(&key)
        .env_remove("SIGIL_K3")
        .env_remove("DEV_KEY_SERVICE_MASTER_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    (cmd, socket)
}

fn start(broker: &Broker, configure: impl FnOnce(&mut Command, &Path)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, socket) = command(dir.path(), broker);
    configure(&mut cmd, dir.path());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&socket).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("sigil-enclave exited early ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "sigil-enclave did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Running { child, socket, _dir: dir }
}

struct Conn {
    stream: UnixStream,
    deframer: Deframer,
}

impl Conn {
    fn open(path: &Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self { stream, deframer: Deframer::new() }
    }

    fn send(&mut self, id: u64, body: Request) {
        let f = encode_message(&Envelope { request_id: id, body }).unwrap();
        self.stream.write_all(&f).unwrap();
    }

    /// The next response, or `None` once the enclave closed the connection.
    fn recv(&mut self) -> Option<Envelope<Response>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.deframer.next_frame().unwrap() {
                return Some(decode_message(&f).unwrap());
            }
            let n = self.stream.read(&mut buf).unwrap();
            if n == 0 {
                return None;
            }
            self.deframer.push(&buf[..n]);
        }
    }

    fn call(&mut self, body: Request) -> Response {
        self.send(1, body);
        self.recv().unwrap().body
    }
}

#[test]
fn serves_spec_vectors_over_unix_socket() {
    let broker = Broker::new();
    let e = start(&broker, |cmd, dir| {
        let k3 = dir.join("k3.hex");
        std::fs::write(&k3, format!("0x{K3_HEX}\n")).unwrap();
        cmd.arg("--k3-file").arg(k3);
    });
    let mut c = Conn::open(&e.socket);
    let omni = [0xab; 32];
    let t = broker.live_token(&omni);
    match c.call(Request::SignEip191(SignEip191 { subject: subject(&t, omni), message: b"hello".to_vec() })) {
        Response::Eip191Signature(s) => {
            assert_eq!(hex::encode(s.address.0), "384099f86f48b052da6535d608315dee069642f7");
            assert_eq!(
                hex::encode(s.signature.0),
                "6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c618e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01"
            );
            assert_eq!(recover_address(&eip191_digest(b"hello"), &s.signature.0), s.address.0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn imports_old_signer_env_var() {
    let broker = Broker::new();
    let e = start(&broker, |cmd, _| {
        cmd.env("DEV_KEY_SERVICE_MASTER_SECRET", K3_HEX);
    });
    let mut c = Conn::open(&e.socket);
    let t = broker.live_token(&[0; 32]);
    match c.call(Request::DeriveAddress(DeriveAddress { subject: subject(&t, [0; 32]) })) {
        Response::Address(a) => assert_eq!(hex::encode(a.address.0), "4b4ad1781d82e7173c44142dabdb4823885da21b"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn starts_unprovisioned_without_k3() {
    let broker = Broker::new();
    let e = start(&broker, |_, _| {});
    let mut c = Conn::open(&e.socket);
    let t = broker.live_token(&[1; 32]);
    match c.call(Request::DeriveAddress(DeriveAddress { subject: subject(&t, [1; 32]) })) {
        Response::Error(w) => assert_eq!(w.code, ErrorCode::SignerDisabled),
        other => panic!("{other:?}"),
    }
    match c.call(Request::Status) {
        Response::Status(s) => assert!(s.epochs.is_empty() && s.current_key_version.is_none()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pipelined_and_concurrent_connections() {
    let broker = Broker::new();
    let e = start(&broker, |cmd, _| {
        cmd.env("SIGIL_K3", K3_HEX);
    });
    let threads: Vec<_> = (0..4u8)
        .map(|n| {
            let socket = e.socket.clone();
            let t = broker.live_token(&[n; 32]);
            std::thread::spawn(move || {
                let mut c = Conn::open(&socket);
                // 50 requests written back to back before reading any answer.
                for id in 0..50u64 {
                    let msg = id.to_be_bytes().to_vec();
                    c.send(id, Request::SignEip191(SignEip191 { subject: subject(&t, [n; 32]), message: msg }));
                }
                let mut addr = None;
                for id in 0..50u64 {
                    let r = c.recv().unwrap();
                    assert_eq!(r.request_id, id);
                    match r.body {
                        Response::Eip191Signature(s) => {
                            let msg = id.to_be_bytes();
                            assert_eq!(recover_address(&eip191_digest(&msg), &s.signature.0), s.address.0);
                            assert_eq!(*addr.get_or_insert(s.address), s.address);
                        }
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn hostile_bytes_get_an_error_frame_then_close() {
    let broker = Broker::new();
    let e = start(&broker, |cmd, _| {
        cmd.env("SIGIL_K3", K3_HEX);
    });
    // Wrong protocol entirely.
    let mut c = Conn::open(&e.socket);
    c.stream.write_all(b"POST /dev/derive-address HTTP/1.1\r\n\r\n").unwrap();
    match c.recv().unwrap().body {
        Response::Error(w) => assert_eq!(w.code, ErrorCode::MalformedFrame),
        other => panic!("{other:?}"),
    }
    assert!(c.recv().is_none(), "connection must be closed");
    // A header announcing 4 GiB: refused from the header alone.
    let mut c = Conn::open(&e.socket);
    c.stream.write_all(&[b'S', b'G', b'L', 1, 0, 0xff, 0xff, 0xff, 0xff]).unwrap();
    match c.recv().unwrap().body {
        Response::Error(w) => assert_eq!(w.code, ErrorCode::MalformedFrame),
        other => panic!("{other:?}"),
    }
    assert!(c.recv().is_none());
    // Another version.
    let mut c = Conn::open(&e.socket);
    c.stream.write_all(&[b'S', b'G', b'L', 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    match c.recv().unwrap().body {
        Response::Error(w) => assert_eq!(w.code, ErrorCode::UnsupportedVersion),
        other => panic!("{other:?}"),
    }
    // The enclave still serves new connections.
    let mut c = Conn::open(&e.socket);
    assert!(matches!(c.call(Request::Status), Response::Status(_)));
}

#[test]
fn bad_configuration_exits_2_without_echoing_secrets() {
    let broker = Broker::new();
    let dir = tempfile::tempdir().unwrap();
    let secretish = "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeZZ";
    let (mut cmd, _) = command(dir.path(), &broker);
    let out = cmd.env("DEV_KEY_SERVICE_MASTER_SECRET", secretish).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEV_KEY_SERVICE_MASTER_SECRET") && err.contains("64 hex"), "{err}");
    assert!(!err.contains("00112233"), "{err}");

    let (mut cmd, _) = command(dir.path(), &broker);
    std::fs::write(dir.path().join("broker.pem"), "not a key").unwrap();
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broker key"));
}

#[test]
fn refuses_to_replace_a_live_socket_or_a_regular_file() {
    let broker = Broker::new();
    let e = start(&broker, |_, _| {});
    // A second enclave on the same live socket is refused.
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, _) = command_at(dir.path(), &broker, &e.socket);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));
    // A regular file is never deleted.
    let file = dir.path().join("precious");
    std::fs::write(&file, "data").unwrap();
    let (mut cmd, _) = command_at(dir.path(), &broker, &file);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[test]
fn replaces_a_stale_socket_left_by_a_crash() {
    let broker = Broker::new();
    let e = start(&broker, |_, dir| {
        // A listener that is dropped leaves its socket file behind, as a crashed enclave would.
        let stale = dir.join("enclave.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
    });
    let mut c = Conn::open(&e.socket);
    assert!(matches!(c.call(Request::Status), Response::Status(_)));
}

#[test]
fn attester_flags_are_checked_before_listening() {
    let broker = Broker::new();
    let dir = tempfile::tempdir().unwrap();
    // `--sim-ca` without `--attester sim` is a mistake, not silently ignored.
    let (mut cmd, socket) = command(dir.path(), &broker);
    let out = cmd.arg("--sim-ca").arg(dir.path().join("ca")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sim-ca is only used with --attester sim"));
    assert!(!socket.exists() && !dir.path().join("ca").exists());
    // An attester this build lacks is refused by name.
    for (kind, built) in [("nitro", cfg!(feature = "nitro")), ("snp", cfg!(feature = "snp"))] {
        let (mut cmd, _) = command(dir.path(), &broker);
        let out = cmd.arg("--attester").arg(kind).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        if !built {
            assert!(
                err.contains(&format!("this build has no {kind} attester; rebuild with --features {kind}")),
                "{err}"
            );
        }
    }
}

#[cfg(feature = "sim")]
#[test]
fn sim_attester_needs_sim_ca_and_persists_its_root() {
    use std::os::unix::fs::PermissionsExt;

    let broker = Broker::new();
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, _) = command(dir.path(), &broker);
    let out = cmd.arg("--attester").arg("sim").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--attester sim needs --sim-ca"));

    let ca_dir = dir.path().join("sim-ca");
    let start_sim = |ca_dir: &Path| {
        let ca_dir = ca_dir.to_path_buf();
        start(&broker, move |cmd, _| {
            cmd.arg("--attester").arg("sim").arg("--sim-ca").arg(&ca_dir);
        })
    };
    let e = start_sim(&ca_dir);
    let mut c = Conn::open(&e.socket);
    assert!(matches!(c.call(Request::Status), Response::Status(_)));
    let cert = std::fs::read_to_string(ca_dir.join("sim-root.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    let key_mode = std::fs::metadata(ca_dir.join("sim-root.key")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);
    // The installed attester answers: a simulated, untagged COSE_Sign1 document.
    let attest = sigil_protocol::AttestRequest { client_nonce: sigil_protocol::Bytes([9; 32]), client_pub: None };
    match c.call(Request::Attest(attest)) {
        Response::Attestation(a) => {
            assert_eq!(a.evidence.platform, sigil_protocol::Platform::Sim);
            assert_eq!(a.evidence.document.first(), Some(&0x84));
        }
        other => panic!("{other:?}"),
    }
    drop(c);
    drop(e);
    // A restarted enclave keeps its root.
    let e = start_sim(&ca_dir);
    let mut c = Conn::open(&e.socket);
    assert!(matches!(c.call(Request::Status), Response::Status(_)));
    assert_eq!(std::fs::read_to_string(ca_dir.join("sim-root.pem")).unwrap(), cert);
}
