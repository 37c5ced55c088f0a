#!/usr/bin/env python3
"""An independent sigil client: the agentKeys signer protocol v0 over HTTPS, outside Rust.

    python3 scripts/http_client_check.py --url https://localhost:8092 \\
        --cacert tls-cert.pem --broker-key broker-key.pem [--k3-vectors]

Mints ES256 broker tokens with PyJWT from the broker's PKCS#8 private key (PEM) for a few
accounts, calls /dev/derive-address, /dev/sign-message and /dev/sign-typed-data over HTTPS
(urllib, trusting only --cacert), and checks with eth-account that every signature recovers
to the returned address (EIP-191 through encode_defunct + recover_message; EIP-712 through
encode_typed_data(full_message=...) + recover_message, with the returned domain separator,
hashStruct and digest compared to eth-account's). It also checks a few refusals parse as the
JSON error envelope. With --k3-vectors the signer must hold K3 = 00..1f and the SPEC §3
vectors are checked exactly.

Prints one line per failure and `N passed, M failed`; exits 1 on any failure.
Requires `pip install eth-account 'pyjwt[crypto]'` (PyJWT with cryptography). Run by
tests/http.rs (test `independent_python_client`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import ssl
import sys
import time
import urllib.error
import urllib.request

import jwt
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct, encode_typed_data

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
AUDIENCE = "agentkeys:broker"
USDC_DOMAIN_SEPARATOR = "0x06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335"
MAIL_DIGEST = "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

USDC_PERMIT = {
    "types": {
        "EIP712Domain": DOMAIN_TYPE,
        "Permit": [
            {"name": "owner", "type": "address"},
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ],
    },
    "primaryType": "Permit",
    "domain": {
        "name": "USD Coin",
        "version": "2",
        "chainId": 1,
        "verifyingContract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    },
    "message": {
        "owner": "0x0000000000000000000000000000000000000001",
        "spender": "0x0000000000000000000000000000000000000002",
        "value": 1000000,
        "nonce": 0,
        "deadline": 4294967295,
    },
}

# The EIP-712 specification's example (nested struct).
MAIL = {
    "types": {
        "EIP712Domain": DOMAIN_TYPE,
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}

# Dynamic and fixed arrays, bytes, bool, a negative int, bytes32.
ORDER = {
    "types": {
        "EIP712Domain": DOMAIN_TYPE,
        "Order": [
            {"name": "id", "type": "uint256"},
            {"name": "tags", "type": "string[]"},
            {"name": "data", "type": "bytes"},
            {"name": "flags", "type": "bool[2]"},
            {"name": "delta", "type": "int256"},
            {"name": "ref", "type": "bytes32"},
            {"name": "amounts", "type": "uint64[]"},
        ],
    },
    "primaryType": "Order",
    "domain": {
        "name": "sigil check",
        "version": "1",
        "chainId": 8453,
        "verifyingContract": "0x000000000000000000000000000000000000dEaD",
    },
    "message": {
        "id": 7,
        "tags": ["alpha", "beta", ""],
        "data": "0xdeadbeef",
        "flags": [True, False],
        "delta": -5,
        "ref": "0x" + "11" * 32,
        "amounts": [1, 2, 18446744073709551615],
    },
}

MESSAGES = [
    b"hello",
    b"",
    b"agentkeys.kek.v1:email:alice@example.com:openai",
    bytes(range(256)),
    "héllo wörld ✓".encode(),
]

HEX0X = re.compile(r"^0x[0-9a-f]*$")


def omni_account(identity_type: str, identity_value: str) -> str:
    """SHA256("agentkeys" || identity_type || identity_value), 64 lowercase hex."""
    return hashlib.sha256(b"agentkeys" + identity_type.encode() + identity_value.encode()).hexdigest()


class Checker:
    def __init__(self, url: str, cacert: str, broker_key: str):
        self.url = url.rstrip("/")
        self.key = broker_key
        self.ctx = ssl.create_default_context(cafile=cacert)
        # Loopback: never through a proxy from the environment.
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ctx)
        )
        self.passed = 0
        self.failed = 0

    def token(self, omni: str, **overrides) -> str:
        now = int(time.time())
        claims = {
            "iss": "agentkeys-broker",
            "sub": f"agentkeys:user:{omni}",
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "jti": f"py-{now}-{omni[:8]}",
            "agentkeys": {
                "omni_account": omni,
                "wallet_address": "0x0000000000000000000000000000000000000000",
                "identity_type": "email",
                "identity_value": "alice@example.com",
            },
        }
        claims.update(overrides)
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": f"ak-session-{now}"})

    def post(self, path: str, body, token: str | None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
        try:
            with self.opener.open(req, timeout=30) as resp:
                status, ctype, raw = resp.status, resp.headers.get("Content-Type"), resp.read()
        except urllib.error.HTTPError as e:
            status, ctype, raw = e.code, e.headers.get("Content-Type"), e.read()
        # The protocol promises JSON for every body, errors included.
        assert ctype == "application/json", f"{path}: {status} with content type {ctype!r}"
        doc = json.loads(raw)
        if status >= 300:
            assert set(doc) == {"error", "message"}, f"{path}: {status} envelope {doc}"
        return status, doc

    def check(self, name: str, fn) -> None:
        try:
            fn()
            self.passed += 1
        except Exception as ex:  # noqa: BLE001 - every failure is reported, none stops the run
            self.failed += 1
            print(f"FAIL {name}: {type(ex).__name__}: {ex}")


def expect_hex(value: str, nbytes: int) -> bytes:
    assert isinstance(value, str) and HEX0X.match(value), f"not lowercase 0x hex: {value!r}"
    raw = bytes.fromhex(value[2:])
    assert len(raw) == nbytes, f"{value}: {len(raw)} bytes, expected {nbytes}"
    return raw


def check_sig(sig_hex: str) -> bytes:
    sig = expect_hex(sig_hex, 65)
    assert sig[64] in (0, 1), f"v must be 0 or 1, got {sig[64]}"
    assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2, "signature is not low-s"
    return sig


def run(c: Checker, k3_vectors: bool) -> None:
    identities = [
        ("email", "alice@example.com"),
        ("email", "bob@example.com"),
        ("telegram", "123456789"),
        ("evm", "0x00000000000000000000000000000000000000aa"),
    ]
    accounts = [omni_account(t, v) for t, v in identities] + ["ab" * 32]

    for omni in accounts:
        tok = c.token(omni)
        address = {}

        def derive(omni=omni, tok=tok, address=address):
            status, doc = c.post("/dev/derive-address", {"omni_account": omni}, tok)
            assert status == 200, f"{status} {doc}"
            expect_hex(doc["address"], 20)
            assert doc["key_version"] == 1, doc
            address["value"] = doc["address"]

        c.check(f"derive-address {omni[:8]}", derive)
        if "value" not in address:
            continue
        addr = address["value"]

        for i, msg in enumerate(MESSAGES):
            # Alternate the tolerated `0x` prefix.
            message_hex = ("0x" if i % 2 else "") + msg.hex()

            def sign(omni=omni, tok=tok, msg=msg, message_hex=message_hex, addr=addr):
                status, doc = c.post("/dev/sign-message", {"omni_account": omni, "message_hex": message_hex}, tok)
                assert status == 200, f"{status} {doc}"
                assert doc["address"] == addr and doc["key_version"] == 1, doc
                sig = check_sig(doc["signature"])
                rec = Account.recover_message(encode_defunct(primitive=msg), signature=sig)
                assert rec.lower() == addr, f"recovered {rec}, expected {addr}"

            c.check(f"sign-message {omni[:8]} #{i}", sign)

        for name, td in [("usdc-permit", USDC_PERMIT), ("mail", MAIL), ("order", ORDER)]:

            def sign_typed(omni=omni, tok=tok, td=td, name=name, addr=addr):
                status, doc = c.post("/dev/sign-typed-data", {"omni_account": omni, "typed_data": td}, tok)
                assert status == 200, f"{status} {doc}"
                want = {"signature", "address", "primary_type_hash", "domain_separator", "digest", "key_version"}
                assert set(doc) == want, doc
                assert doc["address"] == addr and doc["key_version"] == 1, doc
                sig = check_sig(doc["signature"])
                signable = encode_typed_data(full_message=td)
                assert expect_hex(doc["domain_separator"], 32) == signable.header, "domain separator"
                assert expect_hex(doc["primary_type_hash"], 32) == signable.body, "hashStruct"
                assert expect_hex(doc["digest"], 32) == _hash_eip191_message(signable), "digest"
                if name == "usdc-permit":
                    assert doc["domain_separator"] == USDC_DOMAIN_SEPARATOR, doc["domain_separator"]
                if name == "mail":
                    assert doc["digest"] == MAIL_DIGEST, doc["digest"]
                rec = Account.recover_message(signable, signature=sig)
                assert rec.lower() == addr, f"recovered {rec}, expected {addr}"

            c.check(f"sign-typed-data {name} {omni[:8]}", sign_typed)

    if k3_vectors:

        def vectors():
            omni = "ab" * 32
            status, doc = c.post("/dev/sign-message", {"omni_account": omni, "message_hex": "68656c6c6f"}, c.token(omni))
            assert status == 200, doc
            assert doc == {
                "signature": "0x6655700788cfe7c267663b891c61f782164621376e6c6ef9f9b0f9ad26ab90c6"
                "18e51ceddd751928ab1307d5c6a182ef16526e62c6c675d7daead7b0eb8f3a5a01",
                "address": "0x384099f86f48b052da6535d608315dee069642f7",
                "key_version": 1,
            }, doc

        c.check("SPEC §3 vector", vectors)

    # Refusals come back as the JSON envelope with their stable code.
    alice, bob = accounts[0], accounts[1]
    now = int(time.time())
    refusals = [
        ("token for another account", "/dev/derive-address", {"omni_account": bob}, c.token(alice), 401, "unauthorized"),
        ("no token", "/dev/derive-address", {"omni_account": alice}, None, 401, "unauthorized"),
        ("expired token", "/dev/derive-address", {"omni_account": alice}, c.token(alice, exp=now - 600), 401,
         "unauthorized"),
        ("wrong audience", "/dev/derive-address", {"omni_account": alice}, c.token(alice, aud="other"), 401,
         "unauthorized"),
        ("malformed JSON", "/dev/sign-message", b"{", c.token(alice), 400, "invalid_request"),
        ("odd message_hex", "/dev/sign-message", {"omni_account": alice, "message_hex": "abc"}, c.token(alice), 400,
         "invalid_message_hex"),
        ("bad typed data", "/dev/sign-typed-data", {"omni_account": alice, "typed_data": {"types": {}}},
         c.token(alice), 400, "invalid_typed_data"),
    ]
    for name, path, body, tok, want_status, want_code in refusals:

        def refused(path=path, body=body, tok=tok, want_status=want_status, want_code=want_code):
            status, doc = c.post(path, body, tok)
            assert (status, doc.get("error")) == (want_status, want_code), f"{status} {doc}"

        c.check(f"refusal: {name}", refused)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="signer base URL, e.g. https://localhost:8092")
    p.add_argument("--cacert", required=True, help="PEM certificate to trust (the signer's)")
    p.add_argument("--broker-key", required=True, help="broker ES256 private key, PKCS#8 PEM")
    p.add_argument("--k3-vectors", action="store_true", help="the signer holds K3 = 00..1f: check SPEC §3")
    args = p.parse_args()
    with open(args.broker_key, encoding="ascii") as f:
        key = f.read()
    c = Checker(args.url, args.cacert, key)
    run(c, args.k3_vectors)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
