//! Signatures produced by the enclave, checked outside Rust by Python eth-account / eth-keys
//! (`scripts/check_signatures.py`): EIP-191 through eth-account's personal_sign recovery,
//! EIP-712 by recomputing the digest with eth-account and recovering with eth-keys.
//!
//! Needs a Python with `eth-account`: `SIGIL_PYTHON` names the interpreter (default
//! `python3`). When it is missing the test says so and passes, unless
//! `SIGIL_REQUIRE_PYTHON=1` — which `.ci/run` sets, so CI always runs the check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};
use sigil_enclave::FixedEnv;
use sigil_protocol::{Request, Response, SignEip712};

fn python() -> Option<String> {
    let py = std::env::var("SIGIL_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import eth_account, eth_keys"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("SIGIL_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "SIGIL_REQUIRE_PYTHON=1 but {py} cannot import eth_account/eth_keys"
    );
    eprintln!("SKIPPED: {py} has no eth-account (pip install eth-account) — CI runs this check");
    None
}

#[test]
fn signatures_verify_with_eth_account() {
    let Some(py) = python() else { return };
    let broker = Broker::new();
    let mut e = enclave_with(&broker, 4096, 4096);
    let mut env = FixedEnv::new(NOW);

    let messages: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        Vec::new(),
        b"agentkeys.kek.v1:email:alice@example.com:openai".to_vec(),
        vec![0u8; 1],
        (0..=255u8).collect(),
        vec![0x41; 4000],
    ];
    let mut eip191 = Vec::new();
    for i in 0..48u8 {
        let omni = [i.wrapping_mul(37); 32];
        let t = broker.token(&omni);
        let msg = &messages[usize::from(i) % messages.len()];
        match sign_eip191(&mut e, &mut env, &t, omni, msg) {
            Response::Eip191Signature(s) => eip191.push(json!({
                "address": format!("0x{}", hex::encode(s.address.0)),
                "message_hex": hex::encode(msg),
                "signature": format!("0x{}", hex::encode(s.signature.0)),
            })),
            other => panic!("{other:?}"),
        }
    }

    let fixture: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/eip712.json"))).unwrap();
    let mut eip712 = Vec::new();
    for (i, case) in fixture["valid"].as_array().unwrap().iter().enumerate() {
        let text = match case.get("typed_data_json") {
            Some(Value::String(s)) => s.clone(),
            _ => serde_json::to_string(&case["typed_data"]).unwrap(),
        };
        let omni = [u8::try_from(i % 256).unwrap(); 32];
        let t = broker.token(&omni);
        let resp = call(
            &mut e,
            &mut env,
            Request::SignEip712(SignEip712 { subject: subject(&t, omni), typed_data: text.clone() }),
        );
        match resp {
            Response::Eip712Signature(s) => {
                // eth-account's encode_typed_data re-derives some inputs differently (see the
                // fixture's "method"); for those only the digest + signature are checked.
                let recompute = case["method"] == "encode_typed_data";
                eip712.push(json!({
                    "address": format!("0x{}", hex::encode(s.address.0)),
                    "digest": format!("0x{}", hex::encode(s.digest.0)),
                    "signature": format!("0x{}", hex::encode(s.signature.0)),
                    "typed_data_json": if recompute { Value::String(text) } else { Value::Null },
                }));
            }
            other => panic!("case {i} ({}): {other:?}", case["name"]),
        }
    }
    assert!(eip712.len() >= 20, "EIP-712 corpus unexpectedly small");

    let doc = json!({ "eip191": eip191, "eip712": eip712 });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/check_signatures.py");
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(doc.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "eth-account rejected signatures:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!("{} passed, 0 failed", 48 + eip712.len());
    assert!(stdout.contains(&expected), "{stdout}");
}
