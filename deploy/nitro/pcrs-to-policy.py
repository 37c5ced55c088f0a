#!/usr/bin/env python3
"""Turn the measurements `nitro-cli build-enclave` (or `describe-eif`) prints into sigil files.

    nitro-cli build-enclave --docker-uri sigil-enclave:TAG --output-file sigil.eif > build.json
    deploy/nitro/pcrs-to-policy.py build.json > policy.toml                  # client policy
    deploy/nitro/pcrs-to-policy.py --kms-statement ROLE_ARN build.json       # KMS key policy statement

Input: the JSON nitro-cli prints, {"Measurements": {"HashAlgorithm": "Sha384 { ... }",
"PCR0": "<96 hex>", "PCR1": …, "PCR2": …[, "PCR8": …]}, …} (other keys are ignored).

Output (default): a sigil attestation policy (docs/PROTOCOL.md, "Attestation policy file")
pinning PCR0, PCR1, PCR2 (and PCR8 for a signed EIF, with --pin-pcr8), Nitro only, debug
refused. With --kms-statement: the key policy statement of docs/OPERATIONS.md, "Nitro KMS
sealing", step 2, admitting this build's PCRs for the parent role, as JSON.

Refused: a hash algorithm other than SHA-384, a PCR that is not 48 bytes of hex, a missing
PCR0/1/2, and an all-zero PCR0 (a debug-mode measurement proves nothing about the code).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

# The AWS Nitro Enclaves Root G1, as attestation/src/policy.rs requires it.
NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
HEX96 = re.compile(r"^[0-9a-fA-F]{96}$")


def fail(msg: str) -> None:
    print(f"pcrs-to-policy: {msg}", file=sys.stderr)
    sys.exit(2)


def read_measurements(path: str) -> dict[int, str]:
    try:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: {e}")
    m = doc.get("Measurements") if isinstance(doc, dict) else None
    if not isinstance(m, dict):
        fail(f"{path}: no \"Measurements\" object (expected nitro-cli build-enclave / describe-eif output)")
    algo = m.get("HashAlgorithm", "")
    if not isinstance(algo, str) or not algo.lower().startswith("sha384"):
        fail(f"{path}: HashAlgorithm {algo!r}: expected Sha384")
    pcrs: dict[int, str] = {}
    for key, value in m.items():
        hit = re.fullmatch(r"PCR(\d+)", key)
        if not hit:
            continue
        if not isinstance(value, str) or not HEX96.match(value):
            fail(f"{path}: {key} is not 48 bytes of hex")
        pcrs[int(hit.group(1))] = value.lower()
    for i in (0, 1, 2):
        if i not in pcrs:
            fail(f"{path}: PCR{i} missing")
    if set(pcrs[0]) == {"0"}:
        fail(f"{path}: PCR0 is all zero: a debug-mode measurement, refused")
    return pcrs


def policy_toml(pcrs: dict[int, str], source: str, max_age: int, k3: str | None, pin: list[int]) -> str:
    lines = [
        "# sigil attestation policy: review every pin before trusting it",
        f"# Nitro build measured by nitro-cli ({source}); deploy/nitro/pcrs-to-policy.py",
        "version = 1",
        'platforms = ["nitro"]',
        f"max_age_secs = {max_age}",
        "allow_debug = false",
    ]
    if k3:
        lines.append(f'k3_fingerprint = "{k3}"')
    lines += [
        "",
        "[nitro]",
        f'root_sha256 = "{NITRO_ROOT_SHA256}"',
        "",
        "[nitro.pcrs]",
    ]
    lines += [f'{i} = "{pcrs[i]}"' for i in pin]
    return "\n".join(lines) + "\n"


def kms_statement(pcrs: dict[int, str], role: str, sid: str, pin: list[int]) -> str:
    cond = {f"kms:RecipientAttestation:PCR{i}": pcrs[i] for i in pin}
    return json.dumps({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": role},
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": "*",
        "Condition": {"StringEqualsIgnoreCase": cond},
    }, indent=2) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("measurements", help="nitro-cli build-enclave / describe-eif JSON, or - for stdin")
    ap.add_argument("--max-age", type=int, default=300, help="max_age_secs (default 300)")
    ap.add_argument("--k3-fingerprint", help="pin the current epoch's K3 (64 hex, optional 0x)")
    ap.add_argument("--pin-pcr8", action="store_true", help="also pin PCR8 (signed EIF: the signing certificate)")
    ap.add_argument("--kms-statement", metavar="ROLE_ARN", help="print the KMS key policy statement for this parent role instead")
    ap.add_argument("--sid", default="sigil enclave build", help="the statement's Sid (--kms-statement)")
    args = ap.parse_args()
    pcrs = read_measurements(args.measurements)
    pin = [0, 1, 2]
    if args.pin_pcr8:
        if 8 not in pcrs:
            fail("--pin-pcr8: the measurements have no PCR8 (the EIF is not signed)")
        pin.append(8)
    k3 = None
    if args.k3_fingerprint:
        k3 = args.k3_fingerprint.lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{64}", k3):
            fail("--k3-fingerprint: expected 64 hex digits")
    if args.max_age <= 0:
        fail("--max-age must be positive")
    if args.kms_statement:
        if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", args.kms_statement):
            fail(f"--kms-statement: not an IAM role ARN: {args.kms_statement}")
        sys.stdout.write(kms_statement(pcrs, args.kms_statement, args.sid, pin))
    else:
        sys.stdout.write(policy_toml(pcrs, args.measurements, args.max_age, k3, pin))


if __name__ == "__main__":
    main()
