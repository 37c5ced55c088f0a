#!/usr/bin/env bash
# Compute the SEV-SNP launch measurement of the sigil guest, and the client policy pinning it.
#
#   deploy/snp/measure.sh [--ovmf FILE] [--products "milan genoa"] [--min-tcb "bootloader=B tee=T snp=S microcode=M"] [GUEST_DIR]
#
#   GUEST_DIR   the OUT_DIR of build-initramfs.sh (default target/snp/guest): vmlinuz,
#               initrd.cpio, cmdline, vcpus, vcpu-type
#   --ovmf      the AmdSev firmware QEMU will boot (default target/snp/ovmf/OVMF.amdsev.fd,
#               from build-ovmf.sh): the measurement covers its bytes
#   --products  [snp] products of the policy: the AMD product(s) whose ARK the report must
#               chain to (default "milan"; the vCPU model is a separate, measured, choice)
#   --min-tcb   [snp] min_tcb of the policy; set it from the platform's reported TCB at capture
#               (omitted by default: see docs/OPERATIONS.md, "Turn a known-good build into a policy")
#
# Writes GUEST_DIR/measurement (96 hex) and GUEST_DIR/policy.toml, and prints the measurement.
# Uses sev-snp-measure (PyPI `sev-snp-measure`, pinned below) from PATH or a venv under target/.
# The measurement assumes QEMU's direct boot with kernel-hashes=on, default SEV features
# (guest features 0x1) and the vCPU count and model in GUEST_DIR: run-guest.sh uses exactly these.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd -P)"
cd "$ROOT"
SEV_SNP_MEASURE_VERSION=0.0.13
OVMF=target/snp/ovmf/OVMF.amdsev.fd
PRODUCTS=milan
MIN_TCB=
G=
while [ $# -gt 0 ]; do
  case "$1" in
    --ovmf) OVMF="$2"; shift 2 ;;
    --products) PRODUCTS="$2"; shift 2 ;;
    --min-tcb) MIN_TCB="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "measure.sh: unknown option $1" >&2; exit 2 ;;
    *) G="$1"; shift ;;
  esac
done
G="${G:-target/snp/guest}"
die() { echo "measure.sh: $*" >&2; exit 2; }
for f in vmlinuz initrd.cpio cmdline vcpus vcpu-type; do [ -f "$G/$f" ] || die "$G/$f missing (run deploy/snp/build-initramfs.sh)"; done
[ -f "$OVMF" ] || die "$OVMF missing (run deploy/snp/build-ovmf.sh)"

MEASURE="$(command -v sev-snp-measure || true)"
if [ -z "$MEASURE" ]; then
  VENV=target/deploy-venv
  if [ ! -x "$VENV/bin/sev-snp-measure" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "sev-snp-measure==$SEV_SNP_MEASURE_VERSION" >&2
  fi
  MEASURE="$VENV/bin/sev-snp-measure"
fi

M="$("$MEASURE" --mode snp --vmm-type QEMU --vcpus "$(cat "$G/vcpus")" --vcpu-type "$(cat "$G/vcpu-type")" \
  --ovmf "$OVMF" --kernel "$G/vmlinuz" --initrd "$G/initrd.cpio" --append "$(cat "$G/cmdline")")"
[[ "$M" =~ ^[0-9a-f]{96}$ ]] || die "sev-snp-measure printed $M"
printf '%s\n' "$M" > "$G/measurement"

# shellcheck disable=SC2086  # one word per product
products="$(printf '"%s", ' $PRODUCTS)"
{
  echo "# sigil attestation policy: review every pin before trusting it"
  echo "# SEV-SNP guest measured by deploy/snp/measure.sh: $(cat "$G/vcpus") x $(cat "$G/vcpu-type"), cmdline \"$(cat "$G/cmdline")\","
  echo "# OVMF sha256 $(sha256sum "$OVMF" | cut -d' ' -f1), initrd sha256 $(sha256sum "$G/initrd.cpio" | cut -d' ' -f1)"
  echo "version = 1"
  echo 'platforms = ["snp"]'
  echo "allow_debug = false"
  echo
  echo "[snp]"
  echo "products = [${products%, }]"
  echo "measurement = \"$M\""
  if [ -n "$MIN_TCB" ]; then
    tcb=
    for kv in $MIN_TCB; do tcb="$tcb${kv%%=*} = ${kv#*=}, "; done
    echo "min_tcb = { ${tcb%, } }"
  fi
  echo "allow_vlek = false"
} > "$G/policy.toml"
echo "$M"
