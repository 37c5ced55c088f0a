#!/usr/bin/env python3
"""EIP-712 test vectors for sigil-enclave, computed with Python eth-account.

The expected hashes in enclave/tests/vectors/eip712.json come from eth-account, an
implementation independent of ours, never from the Rust code under test.

    python3 scripts/eip712_vectors.py --write   # rebuild the fixture
    python3 scripts/eip712_vectors.py --check   # recompute every entry; exit 1 on mismatch (CI)

Requires `pip install eth-account` (written against eth-account 0.14).

Each valid entry: {"name", "typed_data" | "typed_data_json", "method", "domain_separator",
"primary_type_hash", "digest"}. `typed_data_json` (raw JSON text) is used when the exact
literal matters: integers above 2^64 (serde_json would turn them into floats) or escapes.
`method` says how eth-account computed the hashes:
  - "encode_typed_data": eth_account.messages.encode_typed_data(full_message=...); header is
    the domain separator, body is hashStruct(primaryType, message).
  - "hash_struct": eth-account's own hashStruct with the document's explicit types, used where
    encode_typed_data deliberately differs from MetaMask/viem: it always re-derives
    EIP712Domain in canonical order (ignoring a non-canonical explicit one) and it derives
    primaryType itself (refusing a declared primaryType that is not the unique root type).

Each invalid entry: {"name", "typed_data" | "typed_data_json", "error", "rule"} where `error`
is the Eip712Error variant sigil must return. eth-account is lax about many of these (it
zero-fills missing structs, ignores extra fields, pads short bytesN, accepts bad checksums);
--check reports which ones it accepts, for information only.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

from eth_account._utils.encode_typed_data.encoding_and_hashing import (
    hash_domain,
    hash_struct,
)
from eth_account.messages import encode_typed_data
from eth_utils import is_checksum_address, keccak

FIXTURE = Path(__file__).resolve().parent.parent / "enclave" / "tests" / "vectors" / "eip712.json"

# Published anchors (not produced by any code in this repository).
SPEC_MAIL_DIGEST = "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
USDC_MAINNET_DOMAIN_SEPARATOR = "0x06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335"

UINT256_MAX = 2**256 - 1
INT256_MIN = -(2**255)
INT256_MAX = 2**255 - 1

DOMAIN_FIELDS = {
    "name": "string",
    "version": "string",
    "chainId": "uint256",
    "verifyingContract": "address",
    "salt": "bytes32",
}


def domain_type(*names: str) -> list[dict[str, str]]:
    return [{"name": n, "type": DOMAIN_FIELDS[n]} for n in names]


def fields(*pairs: str) -> list[dict[str, str]]:
    """fields("string name", "address wallet") -> [{"name": "name", "type": "string"}, ...]"""
    out = []
    for pair in pairs:
        ty, name = pair.split(" ")
        out.append({"name": name, "type": ty})
    return out


def doc(types, primary, domain, message, domain_fields=None):
    """A typed-data document; `domain_fields` adds an explicit EIP712Domain type."""
    all_types = {}
    if domain_fields is not None:
        all_types["EIP712Domain"] = domain_type(*domain_fields)
    all_types.update(types)
    return {"types": all_types, "primaryType": primary, "domain": domain, "message": message}


MAIL_DOMAIN = {
    "name": "Ether Mail",
    "version": "1",
    "chainId": 1,
    "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
}
MAIL_TYPES = {
    "Person": fields("string name", "address wallet"),
    "Mail": fields("Person from", "Person to", "string contents"),
}
MAIL_MESSAGE = {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!",
}
FOUR = ("name", "version", "chainId", "verifyingContract")

USDC_DOMAIN = {
    "name": "USD Coin",
    "version": "2",
    "chainId": 1,
    "verifyingContract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
}
PERMIT_TYPES = {
    "Permit": fields(
        "address owner", "address spender", "uint256 value", "uint256 nonce", "uint256 deadline"
    )
}

SALT = "0xf2d857f4a3edcb9b78b4d503bfe733db1e3f6cdc2b7971ee739626c97e86a558"


def mail(**overrides):
    d = doc(MAIL_TYPES, "Mail", MAIL_DOMAIN, MAIL_MESSAGE, FOUR)
    d.update(overrides)
    return copy.deepcopy(d)


def single(ty: str, value, domain=None):
    """One-field struct T { ty v } with message {"v": value}."""
    return doc({"T": fields(f"{ty} v")}, "T", domain if domain is not None else {"name": "t"},
               {"v": value})


def valid_cases() -> list[dict]:
    """(name, document, options). Options: raw=True stores typed_data_json; method."""
    cases = []

    def add(name, document, raw=False, method="encode_typed_data", raw_text=None):
        entry = {"name": name, "method": method}
        if raw_text is not None:
            entry["typed_data_json"] = raw_text
        elif raw:
            entry["typed_data_json"] = json.dumps(document, ensure_ascii=False)
        else:
            entry["typed_data"] = document
        cases.append(entry)

    # The EIP-712 specification's reference example.
    add("eip712_spec_mail", mail())
    add("eip712_spec_mail_inferred_domain", doc(MAIL_TYPES, "Mail", MAIL_DOMAIN, MAIL_MESSAGE))
    add("mail_chain_id_as_strings", doc(MAIL_TYPES, "Mail", {**MAIL_DOMAIN, "chainId": "0x1"},
                                        MAIL_MESSAGE, FOUR))

    # USDC permit on Ethereum mainnet (the domain separator is the contract's DOMAIN_SEPARATOR()).
    permit = {
        "owner": "0x384099f86f48b052da6535d608315dee069642f7",
        "spender": "0x000000000022D473030F116dDEE9F6B43aC78BA3",
        "value": "1000000",
        "nonce": 0,
        "deadline": 1893456000,
    }
    add("usdc_permit_mainnet", doc(PERMIT_TYPES, "Permit", USDC_DOMAIN, permit, FOUR))
    add("usdc_permit_mainnet_inferred_domain",
        doc(PERMIT_TYPES, "Permit", USDC_DOMAIN,
            {**permit, "value": "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
             "nonce": "7", "deadline": "0x70dbd880"}))

    # DAI's legacy permit (bool field, different member names).
    add("dai_permit_mainnet", doc(
        {"Permit": fields("address holder", "address spender", "uint256 nonce",
                          "uint256 expiry", "bool allowed")},
        "Permit",
        {"name": "Dai Stablecoin", "version": "1", "chainId": 1,
         "verifyingContract": "0x6B175474E89094C44Da98b954EedeAC495271d0F"},
        {"holder": "0x384099f86f48b052da6535d608315dee069642f7",
         "spender": "0x5eeb65dedf6d6d18f805dc672bf120653f9b1912",
         "nonce": 3, "expiry": 0, "allowed": True},
        FOUR))

    # Uniswap Permit2 PermitSingle: nested struct, uint160/uint48, domain without version.
    add("permit2_permit_single", doc(
        {"PermitSingle": fields("PermitDetails details", "address spender", "uint256 sigDeadline"),
         "PermitDetails": fields("address token", "uint160 amount", "uint48 expiration",
                                 "uint48 nonce")},
        "PermitSingle",
        {"name": "Permit2", "chainId": 1,
         "verifyingContract": "0x000000000022D473030F116dDEE9F6B43aC78BA3"},
        {"details": {"token": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
                     "amount": "1461501637330902918203684832716283019655932542975",
                     "expiration": 281474976710655, "nonce": "0x0"},
         "spender": "0xEf1c6E67703c7BD7107eed8303Fbe6EC2554BF6B",
         "sigDeadline": "1700000000"},
        ("name", "chainId", "verifyingContract")))

    # Three levels of nested structs.
    add("nested_structs", doc(
        {"Order": fields("Party maker", "Party taker", "Asset asset", "uint64 expiry"),
         "Party": fields("address wallet", "Profile profile"),
         "Profile": fields("string nick", "uint32 level", "bool verified"),
         "Asset": fields("address token", "uint256 amount")},
        "Order", MAIL_DOMAIN,
        {"maker": {"wallet": "0x1111111111111111111111111111111111111111",
                   "profile": {"nick": "alice", "level": 7, "verified": True}},
         "taker": {"wallet": "0x2222222222222222222222222222222222222222",
                   "profile": {"nick": "bob", "level": "0x10", "verified": False}},
         "asset": {"token": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "amount": "123456789"},
         "expiry": 18446744073709551615},
        FOUR))

    # The eth_signTypedData_v4 array example (arrays of structs, address[]).
    v4_types = {
        "Person": fields("string name", "address[] wallets"),
        "Mail": fields("Person from", "Person[] to", "string contents"),
        "Group": fields("string name", "Person[] members"),
    }
    add("v4_arrays_of_structs", doc(
        v4_types, "Mail", MAIL_DOMAIN,
        {"from": {"name": "Cow", "wallets": ["0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826",
                                             "0xDeaDbeefdEAdbeefdEadbEEFdeadbeEFdEaDbeeF"]},
         "to": [{"name": "Bob", "wallets": ["0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB",
                                            "0xB0BdaBea57B0BDABeA57b0bdABEA57b0BDabEa57",
                                            "0xB0B0b0b0b0b0B000000000000000000000000000"]}],
         "contents": "Hello, Bob!"},
        FOUR), method="hash_struct")  # Group is a second root: encode_typed_data refuses.
    add("v4_group_of_people", doc(
        v4_types, "Group", MAIL_DOMAIN,
        {"name": "friends",
         "members": [{"name": "a", "wallets": []},
                     {"name": "b", "wallets": ["0x0000000000000000000000000000000000000000"]}]},
        FOUR), method="hash_struct")
    add("array_of_structs_single_root", doc(
        {"Batch": fields("Transfer[] transfers", "Transfer[2] pair"),
         "Transfer": fields("address to", "uint256 amount")},
        "Batch", {"chainId": 10},
        {"transfers": [{"to": "0x1111111111111111111111111111111111111111", "amount": 1},
                       {"to": "0x2222222222222222222222222222222222222222", "amount": "2"},
                       {"to": "0x3333333333333333333333333333333333333333", "amount": "0x3"}],
         "pair": [{"to": "0x4444444444444444444444444444444444444444", "amount": 4},
                  {"to": "0x5555555555555555555555555555555555555555", "amount": 5}]}))

    add("dynamic_arrays_of_atomics", doc(
        {"T": fields("uint256[] nums", "address[] addrs", "bool[] flags", "string[] words",
                     "bytes[] blobs", "bytes32[] hashes", "int8[] small")},
        "T", {"name": "arrays"},
        {"nums": [0, 1, "2", "0x03", 18446744073709551615],
         "addrs": ["0x384099f86f48b052da6535d608315dee069642f7",
                   "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"],
         "flags": [True, False, True],
         "words": ["a", "", "ünïcödé"],
         "blobs": ["0x", "0x00", "0xdeadbeef"],
         "hashes": [SALT, "0x" + "00" * 32],
         "small": [-128, 127, "-1", "0x7f"]}))
    add("fixed_arrays", doc(
        {"T": fields("uint8[3] a", "bytes4[2] b", "string[2] c", "address[1] d", "bool[4] e")},
        "T", {"name": "fixed"},
        {"a": [1, 2, 255], "b": ["0xdeadbeef", "0x00000000"], "c": ["x", "y"],
         "d": ["0x5eeb65dedf6d6d18f805dc672bf120653f9b1912"], "e": [True, True, False, True]}))
    add("empty_dynamic_arrays", doc(
        {"T": fields("uint256[] a", "Item[] b", "string[] c", "bytes[][] d"),
         "Item": fields("uint8 x")},
        "T", {"name": "empty"}, {"a": [], "b": [], "c": [], "d": []}))
    add("arrays_of_arrays", doc(
        {"T": fields("uint256[][] a", "uint8[2][3] b", "string[][2] c", "Point[][] d",
                     "bool[1][][2] e"),
         "Point": fields("int32 x", "int32 y")},
        "T", {"name": "matrix"},
        {"a": [[1, 2, 3], [], [4]],
         "b": [[1, 2], [3, 4], [5, 6]],
         "c": [["a", "b", "c"], []],
         "d": [[{"x": 1, "y": -1}], [{"x": -2, "y": 2}, {"x": 0, "y": 0}]],
         "e": [[[True], [False]], []]}))

    add("dynamic_bytes", doc(
        {"T": fields("bytes empty", "bytes one", "bytes four", "bytes long")},
        "T", {"name": "bytes"},
        {"empty": "0x", "one": "0x00", "four": "0xDEADbeef",
         "long": "0x" + bytes(range(200)).hex()}))
    add("fixed_bytes", doc(
        {"T": fields("bytes1 a", "bytes4 b", "bytes16 c", "bytes32 d", "bytes32 e")},
        "T", {"name": "fixed bytes"},
        {"a": "0xff", "b": "0x12345678", "c": "0x" + "ab" * 16, "d": SALT,
         "e": "0x" + "AbCdEf01" * 8}))
    add("strings_unicode", doc(
        {"T": fields("string empty", "string latin", "string cjk", "string emoji",
                     "string escapes", "string long")},
        "T", {"name": "Ünïcødé ✓"},
        {"empty": "", "latin": "héllo wörld", "cjk": "中文テキスト", "emoji": "😀🚀👨‍👩‍👧",
         "escapes": "quote\" backslash\\ slash/ nl\n tab\t nul\u0000 del\u007f",
         "long": "x" * 1000}))
    add("strings_json_escapes", None, raw_text=(
        '{"types":{"T":[{"name":"s","type":"string"},{"name":"t","type":"string"}]},'
        '"primaryType":"T","domain":{"name":"esc\\u00e9"},'
        '"message":{"s":"\\ud83d\\ude00 \\u4e2d \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0000",'
        '"t":"raw \u00e9 \u4e2d \U0001F600"}}'))
    add("bools", doc({"T": fields("bool yes", "bool no", "bool[] many")}, "T",
                     {"name": "bools"}, {"yes": True, "no": False, "many": [False, True]}))

    add("signed_ints", doc(
        {"T": fields("int8 a", "int8 b", "int16 c", "int32 d", "int64 e", "int128 f",
                     "int256 g", "int256 h", "int256 i", "int24 j", "int256 k")},
        "T", {"name": "ints"},
        {"a": -128, "b": 127, "c": "-300", "d": "0x7fffffff", "e": -1,
         "f": str(-(2**127)), "g": str(INT256_MIN), "h": str(INT256_MAX), "i": "-1",
         "j": -8388608, "k": -9223372036854775808}))
    add("signed_ints_big_literals", doc(
        {"T": fields("int256 min", "int256 max", "int128 neg")},
        "T", {"name": "ints"},
        {"min": INT256_MIN, "max": INT256_MAX, "neg": -(2**100)}), raw=True)
    add("uint256_max_decimal_string", single("uint256", str(UINT256_MAX)))
    add("uint256_max_hex_string", single("uint256", "0x" + "fF" * 32))
    add("uint256_max_number_literal", single("uint256", UINT256_MAX), raw=True)
    add("uint_big_number_literals", doc(
        {"T": fields("uint128 a", "uint72 b", "uint256[] c")}, "T", {"name": "big"},
        {"a": 2**128 - 1, "b": 2**64, "c": [2**200, 0, 2**64 + 1]}), raw=True)
    add("uint_sizes_and_spellings", doc(
        {"T": fields("uint8 a", "uint16 b", "uint24 c", "uint48 d", "uint64 e", "uint160 f",
                     "uint232 g", "uint256 h", "uint256 i")},
        "T", {"name": "uints"},
        {"a": "0xff", "b": "0x0001", "c": 16777215, "d": "281474976710655",
         "e": 18446744073709551615, "f": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
         "g": "0", "h": 0, "i": "0x0000000000000000000000000000000000000000000000000000000000000001"}))

    add("addresses_lowercase_checksum_uppercase", doc(
        {"T": fields("address lower", "address checksum", "address upper", "address zero",
                     "address digits")},
        "T", {"name": "addresses"},
        {"lower": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
         "checksum": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
         "upper": "0xA0B86991C6218B36C1D19D4A2E9EB0CE3606EB48",
         "zero": "0x0000000000000000000000000000000000000000",
         "digits": "0x1234567890123456789012345678901234567890"}))

    # Self-referential and mutually recursive types (legal in EIP-712).
    add("self_referential_tree", doc(
        {"Tree": fields("string label", "Tree[] children")}, "Tree", {"name": "tree"},
        {"label": "root", "children": [
            {"label": "a", "children": []},
            {"label": "b", "children": [{"label": "b1", "children": []},
                                        {"label": "b2", "children": [
                                            {"label": "b2x", "children": []}]}]}]}))
    add("mutually_recursive_types", doc(
        {"Alpha": fields("Beta[] betas", "uint8 v"), "Beta": fields("Alpha[] alphas", "string s")},
        "Alpha", {"name": "cycle"},
        {"betas": [{"alphas": [{"betas": [], "v": 2}], "s": "x"}, {"alphas": [], "s": "y"}],
         "v": 1}), method="hash_struct")  # no unique root: encode_typed_data refuses.
    add("encode_type_sort_order", doc(
        {"Zebra": fields("Mango m", "apple a", "$dollar d", "_under u"),
         "Mango": fields("Apple x"),
         "Apple": fields("uint8 v"),
         "apple": fields("bool b"),
         "$dollar": fields("string s"),
         "_under": fields("Apple[] xs")},
        "Zebra", {"name": "sort"},
        {"m": {"x": {"v": 1}}, "a": {"b": True}, "d": {"s": "$"},
         "u": {"xs": [{"v": 2}, {"v": 3}]}}))

    # Domains.
    add("domain_with_salt", doc(PERMIT_TYPES, "Permit",
                                {**USDC_DOMAIN, "salt": SALT}, permit,
                                ("name", "version", "chainId", "verifyingContract", "salt")))
    add("domain_with_salt_inferred", doc(PERMIT_TYPES, "Permit",
                                         {"salt": SALT, "chainId": 137, "name": "Salted"}, permit))
    add("domain_chain_id_only_inferred", single("bool", True, {"chainId": 137}))
    add("domain_empty_inferred", single("bool", True, {}))
    add("domain_empty_explicit", doc({"T": fields("bool v")}, "T", {}, {"v": False}, ()))

    # Zero-member structs are accepted by eth-account, so they are accepted here too.
    add("zero_field_primary", doc({"Empty": []}, "Empty", {"name": "e"}, {}))
    add("zero_field_nested", doc({"T": fields("Empty e", "Empty[] es"), "Empty": []}, "T",
                                 {"name": "e"}, {"e": {}, "es": [{}, {}]}))

    # Where encode_typed_data deliberately deviates from MetaMask/viem, the vector uses
    # eth-account's hashStruct with the document's own types (see module docs).
    add("explicit_domain_noncanonical_order", doc(
        MAIL_TYPES, "Mail", {"chainId": 1, "name": "Ether Mail"}, MAIL_MESSAGE,
        ("chainId", "name")), method="hash_struct")
    add("explicit_domain_custom_field", {
        "types": {"EIP712Domain": fields("string name", "uint256 chainId", "string app"),
                  **MAIL_TYPES},
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "chainId": 1, "app": "x"},
        "message": MAIL_MESSAGE}, method="hash_struct")
    add("primary_type_not_root", doc(MAIL_TYPES, "Person", MAIL_DOMAIN,
                                     MAIL_MESSAGE["from"], FOUR), method="hash_struct")
    add("unused_extra_type", doc({**MAIL_TYPES, "Unused": fields("uint8 x")}, "Mail",
                                 MAIL_DOMAIN, MAIL_MESSAGE, FOUR), method="hash_struct")

    add("kitchen_sink", doc(
        {"Everything": fields("bool b", "address a", "uint8 u8", "uint256 u256", "int8 i8",
                              "int256 i256", "bytes1 b1", "bytes32 b32", "bytes bs", "string s",
                              "Inner inner", "Inner[] inners", "Inner[2] pair",
                              "uint16[][2] grid"),
         "Inner": fields("string tag", "bytes data")},
        "Everything", {**USDC_DOMAIN, "salt": SALT},
        {"b": True, "a": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826", "u8": 200,
         "u256": "99999999999999999999999999999999", "i8": "-100", "i256": -42,
         "b1": "0x7f", "b32": SALT, "bs": "0x0102030405", "s": "∑ sigil",
         "inner": {"tag": "one", "data": "0x"},
         "inners": [{"tag": "two", "data": "0x02"}, {"tag": "three", "data": "0x0303"}],
         "pair": [{"tag": "l", "data": "0xaa"}, {"tag": "r", "data": "0xbb"}],
         "grid": [[1, 2], [65535]]},
        ("name", "version", "chainId", "verifyingContract", "salt")))
    return cases


def invalid_cases() -> list[dict]:
    cases = []

    def bad(name, error, rule, document=None, raw=None):
        entry = {"name": name, "error": error, "rule": rule}
        if raw is not None:
            entry["typed_data_json"] = raw
        else:
            entry["typed_data"] = document
        cases.append(entry)

    def mail_with(**changes):
        d = mail()
        for path, value in changes.items():
            *parents, leaf = path.split("__")
            target = d
            for p in parents:
                target = target[p]
            if value is DELETE:
                del target[leaf]
            else:
                target[leaf] = value
        return d

    mail_json = json.dumps(mail())

    # JSON level.
    bad("json_trailing_comma", "InvalidJson", "strict json", raw=mail_json[:-1] + ",}")
    bad("json_duplicate_key", "InvalidJson", "duplicate object keys",
        raw=mail_json.replace('"contents": "Hello, Bob!"',
                              '"contents": "Hello, Bob!", "contents": "Pay Eve"'))
    bad("json_trailing_content", "InvalidJson", "trailing content", raw=mail_json + " {}")
    bad("json_lone_surrogate", "InvalidJson", "unpaired surrogate",
        raw=mail_json.replace("Hello, Bob!", "Hello \\ud800"))
    bad("json_nan", "InvalidJson", "NaN", raw=json.dumps(single("uint8", 0)).replace(
        '"v": 0', '"v": NaN'))
    bad("json_leading_zero", "InvalidJson", "leading zero",
        raw=json.dumps(single("uint8", 0)).replace('"v": 0', '"v": 01'))
    bad("json_too_deep", "InvalidJson", "json nesting limit",
        raw='{"types":' + "[" * 100 + "]" * 100 + "}")
    bad("json_not_object", "NotAnObject", "top level must be an object", document=[mail()])

    # Top level.
    for key in ("types", "primaryType", "domain", "message"):
        d = mail()
        del d[key]
        bad(f"missing_{key}", "MissingTopLevelKey", "missing top-level key", d)
    bad("unknown_top_level_key", "UnknownTopLevelKey", "unknown top-level key",
        {**mail(), "signature": "0x"})
    bad("types_not_object", "WrongTopLevelType", "types must be an object", {**mail(), "types": []})
    bad("primary_type_not_string", "WrongTopLevelType", "primaryType must be a string",
        {**mail(), "primaryType": ["Mail"]})
    bad("domain_not_object", "WrongTopLevelType", "domain must be an object",
        {**mail(), "domain": "Ether Mail"})
    bad("message_not_object", "WrongTopLevelType", "message must be an object",
        {**mail(), "message": []})
    bad("primary_type_undefined", "UndefinedPrimaryType", "primaryType not in types",
        {**mail(), "primaryType": "Letter"})
    bad("primary_type_is_domain", "PrimaryTypeIsDomain", "primaryType must not be EIP712Domain",
        {**mail(), "primaryType": "EIP712Domain", "message": MAIL_DOMAIN})

    # Type definitions.
    bad("referenced_type_undefined", "UndefinedType", "referenced type not defined",
        mail_with(types__Mail=fields("Person from", "Human to", "string contents")))
    bad("unused_type_references_undefined", "UndefinedType", "every definition must resolve",
        mail_with(types__Extra=fields("Ghost g")))
    bad("domain_referenced_but_inferred", "UndefinedType",
        "EIP712Domain used as a member type must be defined",
        doc({"T": fields("EIP712Domain d")}, "T", {}, {"d": {}}))
    bad("struct_named_uint256", "ReservedTypeName", "struct name collides with atomic type",
        mail_with(types__uint256=fields("string name")))
    bad("struct_named_address", "ReservedTypeName", "struct name collides with atomic type",
        doc({"T": fields("address a"), "address": fields("string s")}, "T", {},
            {"a": "0x0000000000000000000000000000000000000000"}))
    bad("struct_named_uint", "ReservedTypeName", "struct name reads as an atomic type",
        doc({"T": fields("uint a"), "uint": fields("uint8 x")}, "T", {}, {"a": {"x": 1}}))
    bad("struct_named_bytes33", "ReservedTypeName", "struct name reads as an atomic type",
        doc({"T": fields("bytes33 a"), "bytes33": fields("uint8 x")}, "T", {}, {"a": {"x": 1}}))
    bad("struct_name_not_identifier", "InvalidTypeName", "struct name must be an identifier",
        doc({"T": fields("uint8 x"), "Bad Name": fields("uint8 x")}, "T", {}, {"x": 1}))
    bad("struct_name_with_parens", "InvalidTypeName", "struct name must be an identifier",
        doc({"T": fields("uint8 x"), "A(uint8 x)B": fields("uint8 x")}, "T", {}, {"x": 1}))
    bad("struct_name_starts_with_digit", "InvalidTypeName", "struct name must be an identifier",
        doc({"T": fields("uint8 x"), "1T": fields("uint8 x")}, "T", {}, {"x": 1}))
    bad("field_name_not_identifier", "InvalidFieldName", "member name must be an identifier",
        doc({"T": [{"name": "a,uint8 b", "type": "uint8"}]}, "T", {}, {"a,uint8 b": 1}))
    bad("field_name_empty", "InvalidFieldName", "member name must be an identifier",
        doc({"T": [{"name": "", "type": "uint8"}]}, "T", {}, {"": 1}))
    bad("duplicate_field_name", "DuplicateField", "duplicate member names",
        doc({"T": fields("uint8 x", "uint16 x")}, "T", {}, {"x": 1}))
    for ty in ("uint", "int", "bytes0", "bytes33", "uint7", "uint264", "int0", "uint08",
               "uint256[0]", "uint256[01]", "uint256[ ]", "uint256 []", "uint256[-1]",
               "string[", "Mail]", "tuple(uint8)", " bool"):
        bad(f"invalid_field_type_{ty}", "InvalidFieldType", "unsupported or malformed type",
            doc({"T": [{"name": "v", "type": ty}]}, "T", {}, {"v": 1}))
    bad("type_definition_not_array", "MalformedTypeDefinition", "definition must be an array",
        mail_with(types__Person={"name": "string"}))
    bad("field_definition_missing_type", "MalformedTypeDefinition", "member needs name and type",
        mail_with(types__Person=[{"name": "name"}]))
    bad("field_definition_extra_key", "MalformedTypeDefinition", "member has only name and type",
        mail_with(types__Person=[{"name": "name", "type": "string", "indexed": True},
                                 {"name": "wallet", "type": "address"}]))
    bad("field_definition_type_not_string", "MalformedTypeDefinition", "member type is a string",
        mail_with(types__Person=[{"name": "name", "type": 5}]))

    # Domain.
    bad("domain_unknown_key_inferred", "UnknownDomainField", "unknown domain key",
        doc(MAIL_TYPES, "Mail", {**MAIL_DOMAIN, "chain": 1}, MAIL_MESSAGE))
    bad("domain_key_not_in_explicit_type", "UnknownDomainField", "domain key not in EIP712Domain",
        doc(MAIL_TYPES, "Mail", {**MAIL_DOMAIN, "salt": SALT}, MAIL_MESSAGE, FOUR))
    bad("domain_missing_explicit_field", "MissingField", "domain lacks an EIP712Domain field",
        doc(MAIL_TYPES, "Mail", {"name": "Ether Mail"}, MAIL_MESSAGE, FOUR))
    bad("domain_chain_id_not_integer", "InvalidInteger", "chainId must be an integer",
        doc(MAIL_TYPES, "Mail", {**MAIL_DOMAIN, "chainId": "one"}, MAIL_MESSAGE))
    bad("domain_null_value", "NullValue", "null is not a value",
        doc(MAIL_TYPES, "Mail", {**MAIL_DOMAIN, "version": None}, MAIL_MESSAGE))

    # Message shape.
    bad("message_missing_field", "MissingField", "missing members are not zero-filled",
        mail_with(message__contents=DELETE))
    bad("message_missing_struct", "MissingField", "missing structs are not zero-filled",
        mail_with(message__to=DELETE))
    bad("nested_missing_field", "MissingField", "missing members are not zero-filled",
        mail_with(message__to={"name": "Bob"}))
    bad("message_extra_field", "UnknownField", "extra members are not ignored",
        mail_with(message__cc="Eve"))
    bad("nested_extra_field", "UnknownField", "extra members are not ignored",
        mail_with(message__to={**MAIL_MESSAGE["to"], "note": "x"}))
    bad("null_struct", "NullValue", "null is not a value", mail_with(message__to=None))
    bad("null_string", "NullValue", "null is not a value", mail_with(message__contents=None))
    bad("null_array_element", "NullValue", "null is not a value", single("uint8[]", [1, None]))
    bad("null_bytes", "NullValue", "null is not a value", single("bytes", None))

    # Wrong JSON types.
    bad("string_for_bool", "WrongJsonType", "bool is true/false only", single("bool", "true"))
    bad("number_for_bool", "WrongJsonType", "bool is true/false only", single("bool", 1))
    bad("number_for_string", "WrongJsonType", "string must be a json string", single("string", 5))
    bad("number_for_address", "WrongJsonType", "address must be a string", single("address", 0))
    bad("number_for_bytes32", "WrongJsonType", "bytesN must be a hex string", single("bytes32", 0))
    bad("bool_for_uint", "WrongJsonType", "integer must be number or string",
        single("uint256", True))
    bad("object_for_array", "WrongJsonType", "array must be a json array",
        single("uint8[]", {"0": 1}))
    bad("scalar_for_struct", "WrongJsonType", "struct must be an object",
        mail_with(message__to="0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"))
    bad("array_for_struct", "WrongJsonType", "struct must be an object",
        mail_with(message__to=[MAIL_MESSAGE["to"]]))

    # Integers.
    for name, ty, value in [
        ("fraction_number", "uint256", 1.5),
        ("fraction_string", "uint256", "1.0"),
        ("exponent_string", "uint256", "1e18"),
        ("empty_string", "uint256", ""),
        ("empty_hex", "uint256", "0x"),
        ("uppercase_hex_prefix", "uint256", "0X1"),
        ("plus_sign", "uint256", "+1"),
        ("whitespace", "uint256", " 1"),
        ("leading_zero_decimal", "uint256", "0123"),
        ("negative_hex", "int256", "-0x1"),
        ("non_digit", "uint256", "12a"),
        ("bad_hex_digit", "uint256", "0x1g"),
    ]:
        bad(f"int_{name}", "InvalidInteger", "integer spelling", single(ty, value))
    bad("int_exponent_number", "InvalidInteger", "integer spelling",
        raw=json.dumps(single("uint256", 0)).replace('"v": 0', '"v": 1e3'))
    for name, ty, value in [
        ("uint8_256", "uint8", 256),
        ("uint8_hex_0x100", "uint8", "0x100"),
        ("uint_negative", "uint256", -1),
        ("uint_negative_string", "uint64", "-5"),
        ("int8_128", "int8", 128),
        ("int8_minus_129", "int8", "-129"),
        ("int8_hex_0x80", "int8", "0x80"),
        ("uint256_max_plus_one", "uint256", str(UINT256_MAX + 1)),
        ("uint256_hex_65_digits", "uint256", "0x1" + "0" * 64),
        ("int256_max_plus_one", "int256", str(INT256_MAX + 1)),
        ("int256_min_minus_one", "int256", str(INT256_MIN - 1)),
    ]:
        bad(f"int_range_{name}", "IntegerOutOfRange", "value outside the N-bit range",
            single(ty, value))
    bad("int_range_uint256_number_literal_overflow", "IntegerOutOfRange",
        "value outside the N-bit range", raw=json.dumps(single("uint256", UINT256_MAX + 1)))

    # Addresses.
    bad("address_bad_checksum", "BadAddressChecksum", "mixed case must be valid EIP-55",
        single("address", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB49"))
    bad("address_bad_checksum_case_flip", "BadAddressChecksum", "mixed case must be valid EIP-55",
        single("address", "0xa0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"))
    for name, value in [("short", "0x" + "11" * 19), ("long", "0x" + "11" * 21),
                        ("no_prefix", "11" * 20), ("non_hex", "0x" + "zz" * 20),
                        ("empty", ""), ("ens_name", "vitalik.eth")]:
        bad(f"address_{name}", "InvalidAddress", "address is 0x + 40 hex digits",
            single("address", value))

    # Bytes.
    bad("bytes32_too_short", "WrongBytesLength", "bytesN is exactly N bytes (no padding)",
        single("bytes32", "0xdeadbeef"))
    bad("bytes4_too_long", "WrongBytesLength", "bytesN is exactly N bytes",
        single("bytes4", "0xdeadbeef00"))
    bad("bytes1_empty", "WrongBytesLength", "bytesN is exactly N bytes", single("bytes1", "0x"))
    bad("bytes_odd_length", "InvalidHex", "bytes is 0x + even hex", single("bytes", "0xabc"))
    bad("bytes_no_prefix", "InvalidHex", "bytes is 0x + even hex", single("bytes", "deadbeef"))
    bad("bytes_text", "InvalidHex", "bytes is 0x + even hex", single("bytes", "hello"))
    bad("bytes32_non_hex", "InvalidHex", "bytesN is 0x + hex", single("bytes32", "0x" + "gg" * 32))

    # Arrays.
    bad("fixed_array_too_short", "ArrayLengthMismatch", "fixed length must match",
        single("uint8[3]", [1, 2]))
    bad("fixed_array_too_long", "ArrayLengthMismatch", "fixed length must match",
        single("uint8[1]", [1, 2]))
    bad("nested_fixed_array_mismatch", "ArrayLengthMismatch", "fixed length must match",
        single("uint8[2][]", [[1, 2], [3]]))
    bad("huge_fixed_array_type", "ArrayLengthMismatch", "declared length is never allocated",
        single("uint8[4294967295]", [1]))

    # Depth.
    deep = {"c": []}
    for _ in range(20):
        deep = {"c": [deep]}
    bad("data_too_deep_struct", "TooDeep", "data nesting limit",
        doc({"N": fields("N[] c")}, "N", {}, deep))
    dims = 40
    nested = 1
    for _ in range(dims):
        nested = [nested]
    bad("data_too_deep_array", "TooDeep", "data nesting limit",
        single("uint8" + "[]" * dims, nested, {}))
    return cases


class _Delete:
    pass


DELETE = _Delete()


def compute(entry: dict) -> dict[str, str]:
    document = typed_data_of(entry)
    if entry["method"] == "encode_typed_data":
        signable = encode_typed_data(full_message=copy.deepcopy(document))
        domain_separator, struct_hash = bytes(signable.header), bytes(signable.body)
    elif entry["method"] == "hash_struct":
        types = document["types"]
        if "EIP712Domain" in types:
            domain_separator = hash_struct("EIP712Domain", types, document["domain"])
        else:
            domain_separator = hash_domain(document["domain"])  # eth-account's inference
        struct_hash = hash_struct(document["primaryType"], types, document["message"])
    else:
        raise ValueError(f"unknown method {entry['method']!r}")
    digest = keccak(b"\x19\x01" + domain_separator + struct_hash)
    return {
        "domain_separator": "0x" + domain_separator.hex(),
        "primary_type_hash": "0x" + struct_hash.hex(),
        "digest": "0x" + bytes(digest).hex(),
    }


def typed_data_of(entry: dict):
    if "typed_data_json" in entry:
        return json.loads(entry["typed_data_json"])
    return entry["typed_data"]


def check_anchors(valid: list[dict]) -> list[str]:
    by_name = {e["name"]: e for e in valid}
    problems = []
    for name in ("eip712_spec_mail", "eip712_spec_mail_inferred_domain"):
        if by_name[name]["digest"] != SPEC_MAIL_DIGEST:
            problems.append(f"{name}: digest is not the EIP-712 specification's")
    for name in ("usdc_permit_mainnet", "usdc_permit_mainnet_inferred_domain"):
        if by_name[name]["domain_separator"] != USDC_MAINNET_DOMAIN_SEPARATOR:
            problems.append(f"{name}: domain separator is not USDC's on-chain value")
    # eth-account does not verify EIP-55, so the corpus checks its own mixed-case addresses.
    for e in valid:
        for text in strings_in(typed_data_of(e)):
            if (re.fullmatch(r"0x[0-9a-fA-F]{40}", text) and text[2:] != text[2:].lower()
                    and text[2:] != text[2:].upper() and not is_checksum_address(text)):
                problems.append(f"{e['name']}: {text} is not a valid EIP-55 checksum")
    # Where both methods apply they must agree, or the "hash_struct" entries prove nothing.
    for e in valid:
        document = typed_data_of(e)
        if e["method"] == "encode_typed_data" and "EIP712Domain" in document["types"]:
            if compute({**e, "method": "hash_struct"}) != compute(e):
                problems.append(f"{e['name']}: hash_struct and encode_typed_data disagree")
    return problems


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)


def build() -> dict:
    valid = []
    for case in valid_cases():
        valid.append({**case, **compute(case)})
    names = [c["name"] for c in valid] + [c["name"] for c in invalid_cases()]
    if len(names) != len(set(names)):
        raise SystemExit("duplicate case names")
    return {"valid": valid, "invalid": invalid_cases()}


def eth_account_accepts(entry: dict) -> bool:
    try:
        document = typed_data_of(entry)
        encode_typed_data(full_message=copy.deepcopy(document))
        return True
    except Exception:  # noqa: BLE001 - any rejection counts
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rebuild the fixture")
    mode.add_argument("--check", action="store_true", help="verify the fixture (CI)")
    args = parser.parse_args()

    if args.write:
        corpus = build()
        problems = check_anchors(corpus["valid"])
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(json.dumps(corpus, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {len(corpus['valid'])} valid and {len(corpus['invalid'])} invalid cases "
              f"to {FIXTURE}")
        return 0

    stored = json.loads(FIXTURE.read_text())
    failures = []
    for entry in stored["valid"]:
        try:
            got = compute(entry)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{entry['name']}: eth-account failed: {exc}")
            continue
        for key, value in got.items():
            if entry.get(key) != value:
                failures.append(f"{entry['name']}: {key} is {entry.get(key)}, eth-account "
                                f"computes {value}")
    failures += check_anchors(stored["valid"])
    # The fixture must be exactly what this script generates (no hand edits, no drift).
    fresh = build()
    if fresh != stored:
        failures.append("fixture differs from the corpus in this script: run --write")
    lax = [e["name"] for e in stored["invalid"] if eth_account_accepts(e)]
    print(f"checked {len(stored['valid'])} valid cases against eth-account; "
          f"{len(stored['invalid'])} invalid cases ({len(lax)} of which eth-account's "
          f"encode_typed_data would accept)")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
