#!/usr/bin/env bash
# Reproducibility check: build the Nitro enclave image twice, each time from an empty cargo
# target directory, and compare the artifacts byte for byte.
#
#   deploy/reproducible-check.sh [--with-snp] [--keep]
#
#   --with-snp   also build the SEV-SNP guest initrd twice (deploy/snp/build-initramfs.sh;
#                needs apt-get access to Debian's archive for the pinned kernel and busybox)
#   --keep       keep target/repro-a and target/repro-b afterwards (default: removed on success)
#
# Prints the toolchain, then the sha256 of every artifact of both builds (static sigil-enclave,
# rootfs layer, image tar, rendered Dockerfile; with --with-snp also the snp binary and the
# initrd), and exits 1 if any pair differs, 0 if all match. Both builds use one
# SOURCE_DATE_EPOCH (the last commit's) and the example configuration
# (deploy/nitro/enclave.env.example): the check is about the build, not about the deployment's
# values.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$ROOT"
SNP=0
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --with-snp) SNP=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "reproducible-check: unknown argument $arg" >&2; exit 2 ;;
  esac
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
fi
export SOURCE_DATE_EPOCH
start=$SECONDS

for x in a b; do
  rm -rf "target/repro-$x"
  t0=$SECONDS
  echo "=== build $x: deploy/nitro/build-image.sh --target-dir target/repro-$x (empty) ==="
  deploy/nitro/build-image.sh --target-dir "target/repro-$x" "target/repro-$x/image" >/dev/null 2>"target/repro-$x.log" \
    || { tail -n 40 "target/repro-$x.log" >&2; echo "reproducible-check: build $x failed" >&2; exit 1; }
  echo "build $x, Nitro image: $((SECONDS - t0)) s"
  if [ "$SNP" = 1 ]; then
    t1=$SECONDS
    deploy/snp/build-initramfs.sh --target-dir "target/repro-$x" "target/repro-$x/snp-guest" >/dev/null 2>>"target/repro-$x.log" \
      || { tail -n 40 "target/repro-$x.log" >&2; echo "reproducible-check: snp build $x failed" >&2; exit 1; }
    echo "build $x, SEV-SNP initrd: $((SECONDS - t1)) s"
  fi
done

echo
echo "=== toolchain and inputs (build a) ==="
sed -n '1,/^sha256:/p' target/repro-a/image/sigil-enclave-nitro.buildinfo | grep -v '^sha256:'

pairs=(
  "image/sigil-enclave|static sigil-enclave (--features nitro)"
  "image/rootfs.tar|image layer (rootfs.tar)"
  "image/sigil-enclave-image.tar|image (sigil-enclave-image.tar, docker load / OCI)"
  "image/context/Dockerfile|rendered Dockerfile"
)
if [ "$SNP" = 1 ]; then
  pairs+=("snp-guest/sigil-enclave|static sigil-enclave (--features snp)" "snp-guest/initrd.cpio|SEV-SNP initrd (initrd.cpio)")
fi

echo
echo "=== sha256, build a vs build b ==="
fail=0
for p in "${pairs[@]}"; do
  f="${p%%|*}"; what="${p#*|}"
  a="$(sha256sum "target/repro-a/$f" | cut -d' ' -f1)"
  b="$(sha256sum "target/repro-b/$f" | cut -d' ' -f1)"
  if [ "$a" = "$b" ]; then verdict=identical; else verdict=DIFFERENT; fail=1; fi
  printf '%s: %s\n  a %s\n  b %s\n' "$what" "$verdict" "$a" "$b"
  if [ "$a" != "$b" ]; then
    echo "  first differing bytes:"; cmp -l "target/repro-a/$f" "target/repro-b/$f" | head -n 5 | sed 's/^/    /' || true
  fi
done
echo
echo "image ID: $(cat target/repro-a/image/image-ids.json)"
echo "total: $((SECONDS - start)) s"
if [ "$fail" = 1 ]; then
  echo "reproducible-check: FAILED: the two builds differ (kept target/repro-a and target/repro-b for diffoscope)" >&2
  exit 1
fi
echo "reproducible-check: the two clean builds are byte-identical"
[ "$KEEP" = 1 ] || rm -rf target/repro-a target/repro-b target/repro-a.log target/repro-b.log
