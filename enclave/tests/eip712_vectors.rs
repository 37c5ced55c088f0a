//! EIP-712 hashing against vectors computed independently with Python eth-account
//! (`scripts/eip712_vectors.py --write`), plus typed data that must be rejected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sigil_enclave::eip712::{Eip712Error, hash_typed_data};

fn fixture() -> Value {
    let text = include_str!("vectors/eip712.json");
    serde_json::from_str(text).expect("fixture is valid json")
}

/// The document as text: raw text where the fixture keeps exact literals (integers above
/// 2^64 would otherwise round-trip through f64), else the object re-serialized.
fn document(entry: &Value) -> String {
    match entry.get("typed_data_json") {
        Some(raw) => raw.as_str().expect("typed_data_json is a string").to_owned(),
        None => serde_json::to_string(&entry["typed_data"]).unwrap(),
    }
}

fn hex32(entry: &Value, key: &str) -> String {
    entry[key].as_str().expect(key).to_owned()
}

fn to_hex(bytes: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The variant name from `Debug` (`Foo`, `Foo(..)` or `Foo { .. }`).
fn variant(err: &Eip712Error) -> String {
    let debug = format!("{err:?}");
    debug.split(['(', ' ', '{']).next().unwrap().to_owned()
}

#[test]
fn valid_vectors_match_eth_account() {
    let fixture = fixture();
    let valid = fixture["valid"].as_array().unwrap();
    assert!(valid.len() >= 20, "corpus too small: {}", valid.len());
    let mut failures = Vec::new();
    for entry in valid {
        let name = entry["name"].as_str().unwrap();
        match hash_typed_data(&document(entry)) {
            Ok(h) => {
                for (key, got) in [
                    ("domain_separator", &h.domain_separator),
                    ("primary_type_hash", &h.primary_type_hash),
                    ("digest", &h.digest),
                ] {
                    let want = hex32(entry, key);
                    if to_hex(got) != want {
                        failures.push(format!("{name}: {key} {} != {want}", to_hex(got)));
                    }
                }
            }
            Err(e) => failures.push(format!("{name}: rejected: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn published_anchors_are_in_the_corpus() {
    let fixture = fixture();
    let find = |name: &str| {
        fixture["valid"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .clone()
    };
    // The EIP-712 specification's Mail example.
    let mail = hash_typed_data(&document(&find("eip712_spec_mail"))).unwrap();
    assert_eq!(to_hex(&mail.digest), "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
    // USDC's DOMAIN_SEPARATOR() on Ethereum mainnet.
    for name in ["usdc_permit_mainnet", "usdc_permit_mainnet_inferred_domain"] {
        let usdc = hash_typed_data(&document(&find(name))).unwrap();
        assert_eq!(
            to_hex(&usdc.domain_separator),
            "0x06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335",
            "{name}"
        );
    }
}

#[test]
fn big_integer_literals_reach_the_parser_verbatim() {
    let fixture = fixture();
    let entry =
        fixture["valid"].as_array().unwrap().iter().find(|e| e["name"] == "uint256_max_number_literal").unwrap();
    let doc = document(entry);
    assert!(doc.contains("115792089237316195423570985008687907853269984665640564039457584007913129639935"), "{doc}");
}

#[test]
fn invalid_vectors_are_rejected_with_the_expected_error() {
    let fixture = fixture();
    let invalid = fixture["invalid"].as_array().unwrap();
    assert!(!invalid.is_empty());
    let mut failures = Vec::new();
    for entry in invalid {
        let name = entry["name"].as_str().unwrap();
        let expected = entry["error"].as_str().unwrap();
        match hash_typed_data(&document(entry)) {
            Ok(h) => failures.push(format!("{name}: accepted (digest {}), expected {expected}", to_hex(&h.digest))),
            Err(e) if variant(&e) != expected => {
                failures.push(format!("{name}: got {e:?}, expected {expected}"));
            }
            Err(e) => {
                let message = e.to_string();
                if message.len() > 200 {
                    failures.push(format!("{name}: error message too long: {message}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
