#!/usr/bin/env python3
"""Independent check of sigil signatures with Python eth-account / eth-keys.

Reads one JSON document on stdin:
  {"eip191": [{"address": "0x..", "message_hex": "..", "signature": "0x<130 hex>"}],
   "eip712": [{"address": "0x..", "digest": "0x..", "signature": "0x..",
               "typed_data_json": "<text>" | null}]}
and checks, for every entry, that the signature recovers to the address:
  - EIP-191 through eth-account's full personal_sign path (encode_defunct + recover_message);
  - EIP-712 by recovering from the digest with eth-keys, and, where typed_data_json is given,
    by recomputing the digest with eth-account's encode_typed_data.
Signatures must be low-s with v in {0, 1}. Prints one line per failure and a summary;
exits 1 on any failure. Run by enclave/tests/python_crosscheck.rs.
"""

import json
import sys

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct, encode_typed_data
from eth_keys import keys

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def parse_sig(sig_hex):
    sig = bytes.fromhex(sig_hex.removeprefix("0x"))
    assert len(sig) == 65, "signature must be 65 bytes"
    v = sig[64]
    assert v in (0, 1), f"v must be 0 or 1, got {v}"
    s = int.from_bytes(sig[32:64], "big")
    assert s <= SECP256K1_N // 2, "signature is not low-s"
    return sig


def main():
    doc = json.load(sys.stdin)
    failures = 0
    checked = 0
    for i, e in enumerate(doc.get("eip191", [])):
        try:
            sig = parse_sig(e["signature"])
            msg = encode_defunct(primitive=bytes.fromhex(e["message_hex"]))
            # eth-account takes v in {27, 28} for personal_sign signatures.
            rec = Account.recover_message(msg, signature=sig[:64] + bytes([sig[64] + 27]))
            assert rec.lower() == e["address"].lower(), f"recovered {rec}, expected {e['address']}"
        except Exception as ex:  # noqa: BLE001 - report every failure, keep going
            failures += 1
            print(f"eip191[{i}]: {ex}")
        checked += 1
    for i, e in enumerate(doc.get("eip712", [])):
        try:
            sig = parse_sig(e["signature"])
            digest = bytes.fromhex(e["digest"].removeprefix("0x"))
            if e.get("typed_data_json"):
                signable = encode_typed_data(full_message=json.loads(e["typed_data_json"]))
                ours = _hash_eip191_message(signable)
                assert ours == digest, f"digest {digest.hex()} != eth-account {ours.hex()}"
            pk = keys.Signature(sig).recover_public_key_from_msg_hash(digest)
            rec = pk.to_checksum_address()
            assert rec.lower() == e["address"].lower(), f"recovered {rec}, expected {e['address']}"
        except Exception as ex:  # noqa: BLE001
            failures += 1
            print(f"eip712[{i}]: {ex}")
        checked += 1
    print(f"{checked - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
