//! Operations: the audit log's content and secrecy, and `sigil dev`'s refusal of a malformed
//! `DEV_KEY_SERVICE_MASTER_SECRET`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "tests fail loudly")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigil::dev::{DevArgs, start_with};
use sigil_enclave::K3;

#[tokio::test]
async fn audit_log_records_every_request_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::new();
    let key = dir.path().join("broker.pem");
    std::fs::write(&key, broker.spki_pem()).unwrap();
    let log = dir.path().join("audit.jsonl");
    let args = DevArgs { broker_pubkey: Some(key), audit_log: Some(log.clone()), ..DevArgs::default() };
    let dev = start_with(&args, Some(K3::from_bytes(k3_seq_bytes()))).await.unwrap();
    let http = Http::https(dev.addr, &dev.cert_pem);
    let omni = "ab".repeat(32);
    let token = broker.token(&omni);

    assert_eq!(http.sign_message(&token, &omni, "0x68656c6c6f").await.status, 200);
    assert_eq!(http.derive(&token, &omni).await.status, 200);
    assert_eq!(http.sign_message("not.a.token", &omni, "00").await.status, 401);
    assert_eq!(http.post_json("/dev/derive-address", Some(&token), r#"{"omni_account":"zz"}"#).await.status, 401);
    assert_eq!(http.get("/nope").await.status, 404);
    dev.stop().await.unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    // Never the token (any part of it), never the message in clear.
    for part in token.split('.') {
        assert!(!text.contains(part), "audit log contains part of the JWT");
    }
    assert!(!text.contains("68656c6c6f") && !text.contains("hello"), "audit log contains the message");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    let mut ids: Vec<u64> = lines.iter().map(|l| l["request_id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "request ids are unique");
    for l in &lines {
        for field in ["ts_ms", "request_id", "route", "outcome", "status", "latency_us"] {
            assert!(!l[field].is_null(), "{field} missing in {l}");
        }
    }
    let sign = &lines[0];
    assert_eq!(sign["route"], "/dev/sign-message");
    assert_eq!(sign["outcome"], "ok");
    assert_eq!(sign["status"], 200);
    assert_eq!(sign["omni"], omni.as_str());
    assert_eq!(sign["payload_sha256"], hex::encode(Sha256::digest(b"hello")).as_str());
    assert_eq!(lines[1]["route"], "/dev/derive-address");
    assert!(lines[1]["payload_sha256"].is_null(), "nothing is signed by derive-address");
    assert_eq!(lines[2]["outcome"], "unauthorized");
    assert_eq!(lines[2]["status"], 401);
    // A malformed account is not copied into the log.
    assert!(lines[3]["omni"].is_null());
    assert_eq!(lines[4]["route"], "other");
    assert_eq!(lines[4]["outcome"], "not_found");
}

#[test]
fn sigil_dev_refuses_a_malformed_master_secret() {
    let secretish = "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeZZ";
    let out = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["dev", "--port", "0"])
        .env("DEV_KEY_SERVICE_MASTER_SECRET", secretish)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEV_KEY_SERVICE_MASTER_SECRET") && err.contains("64 hex"), "{err}");
    assert!(!err.contains("00112233"), "the value must not be echoed: {err}");
    assert!(out.stdout.is_empty(), "nothing is served or printed");
}
