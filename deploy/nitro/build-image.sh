#!/usr/bin/env bash
# Build the sigil Nitro enclave image reproducibly: static binary, rootfs, image tar.
#
#   deploy/nitro/build-image.sh [--config FILE] [--target-dir DIR] [--tag NAME:TAG] [OUT_DIR]
#
#   --config      the measured configuration (default deploy/nitro/enclave.env.example)
#   --target-dir  cargo target directory for the static build (default target/nitro)
#   --tag         the name `docker load` gives the image (default sigil-enclave:<commit, 12 hex>)
#   OUT_DIR       default <target-dir>/image
#
# Writes to OUT_DIR:
#   sigil-enclave               the static binary (also inside the image)
#   context/Dockerfile, context/rootfs/   the rendered recipe and what it copies
#   rootfs.tar                  the image's only layer
#   sigil-enclave-image.tar     OCI layout + docker manifest.json: `docker load -i` it
#   image-ids.json              image ID (config digest), manifest digest, layer diff ID
#   sigil-enclave-nitro.buildinfo, SHA256SUMS
# and prints the image tar's sha256 and the nitro-cli commands that come next.
#
# Two runs from the same commit and configuration give byte-identical files (checked by
# deploy/reproducible-check.sh). Nothing here needs Docker, nitro-cli or AWS.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd -P)"
cd "$ROOT"
CONFIG=deploy/nitro/enclave.env.example
TD=target/nitro
TAG=
OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="$2"; shift 2 ;;
    --target-dir) TD="$2"; shift 2 ;;
    --tag) TAG="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "build-image.sh: unknown option $1" >&2; exit 2 ;;
    *) OUT="$1"; shift ;;
  esac
done
OUT="${OUT:-$TD/image}"
die() { echo "build-image.sh: $*" >&2; exit 2; }

# The measured configuration.
[ -f "$CONFIG" ] || die "no config file $CONFIG"
SIGIL_BROKER_PUBKEY='' SIGIL_KMS_KEY_ARN='' SIGIL_KMS_REGION='' SIGIL_EXPECT_K3='' SIGIL_VSOCK_PORT=5000
# shellcheck disable=SC1090
. "$CONFIG"
[ -f "$SIGIL_BROKER_PUBKEY" ] || die "SIGIL_BROKER_PUBKEY: no file $SIGIL_BROKER_PUBKEY"
if command -v openssl >/dev/null; then
  openssl pkey -pubin -in "$SIGIL_BROKER_PUBKEY" -noout 2>/dev/null \
    || die "SIGIL_BROKER_PUBKEY: $SIGIL_BROKER_PUBKEY is not a PEM public key"
fi
[[ "$SIGIL_VSOCK_PORT" =~ ^[0-9]{1,10}$ ]] || die "SIGIL_VSOCK_PORT must be a number"
KMS_ARGS=
if [ -n "$SIGIL_KMS_KEY_ARN$SIGIL_KMS_REGION" ]; then
  [[ "$SIGIL_KMS_REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "SIGIL_KMS_REGION: not a region: $SIGIL_KMS_REGION"
  [[ "$SIGIL_KMS_KEY_ARN" =~ ^arn:aws[a-z-]*:kms:${SIGIL_KMS_REGION}:[0-9]{12}:key/[0-9a-zA-Z-]+$ ]] \
    || die "SIGIL_KMS_KEY_ARN: not a key ARN in $SIGIL_KMS_REGION (an alias is refused): $SIGIL_KMS_KEY_ARN"
  KMS_ARGS=", \"--kms-key-arn\", \"$SIGIL_KMS_KEY_ARN\", \"--kms-region\", \"$SIGIL_KMS_REGION\""
fi
EXPECT_ARGS=
for pin in $SIGIL_EXPECT_K3; do
  [[ "$pin" =~ ^[0-9]{1,3}:(0x)?[0-9a-fA-F]{64}$ ]] || die "SIGIL_EXPECT_K3: not V:FINGERPRINT: $pin"
  EXPECT_ARGS="$EXPECT_ARGS, \"--expect-k3\", \"$pin\""
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || true)"
  : "${SOURCE_DATE_EPOCH:?not a git checkout: set SOURCE_DATE_EPOCH}"
fi
export SOURCE_DATE_EPOCH
if [ -z "$TAG" ]; then
  commit="$(git log -1 --format=%H 2>/dev/null || true)"
  TAG="sigil-enclave:${commit:0:12}"; [ -n "$commit" ] || TAG=sigil-enclave:local
fi
PYTHON="${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"

# 1. The static binary.
BIN="$(deploy/build-enclave.sh nitro "$TD" | tail -n 1)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"

# 2. The context: rendered Dockerfile and the root filesystem, modes set explicitly (the
#    umask of whoever builds must not reach the image).
rm -rf "$OUT/context"
mkdir -p "$OUT/context/rootfs"
for d in dev proc sys run; do mkdir "$OUT/context/rootfs/$d"; chmod 0755 "$OUT/context/rootfs/$d"; done
mkdir "$OUT/context/rootfs/tmp"; chmod 1777 "$OUT/context/rootfs/tmp"
install -m 0755 "$BIN" "$OUT/context/rootfs/sigil-enclave"
install -m 0644 "$SIGIL_BROKER_PUBKEY" "$OUT/context/rootfs/broker.pem"
install -m 0755 "$BIN" "$OUT/sigil-enclave"
tpl="$(cat deploy/nitro/Dockerfile)"
tpl="${tpl//@VSOCK_PORT@/$SIGIL_VSOCK_PORT}"
tpl="${tpl//@KMS_ARGS@/$KMS_ARGS}"
tpl="${tpl//@EXPECT_K3_ARGS@/$EXPECT_ARGS}"
printf '%s\n' "$tpl" > "$OUT/context/Dockerfile"
# Every file in the context gets the same mtime too (for `docker build` users).
find "$OUT/context" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# 3. The image, deterministically.
"$PYTHON" deploy/nitro/mkimage.py --dockerfile "$OUT/context/Dockerfile" --tag "$TAG" \
  --out "$OUT/sigil-enclave-image.tar" --layer-out "$OUT/rootfs.tar" > "$OUT/image-ids.json"

cp "$TD/sigil-enclave-nitro.buildinfo" "$OUT/"
{
  echo "config: $CONFIG (sha256 $(sha256sum "$CONFIG" | cut -d' ' -f1))"
  echo "tag: $TAG"
  echo "entrypoint: $(grep '^ENTRYPOINT' "$OUT/context/Dockerfile")"
  echo "image: $(cat "$OUT/image-ids.json")"
} >> "$OUT/sigil-enclave-nitro.buildinfo"
( cd "$OUT" && sha256sum sigil-enclave rootfs.tar sigil-enclave-image.tar context/Dockerfile > SHA256SUMS )

IMAGE_SHA="$(sha256sum "$OUT/sigil-enclave-image.tar" | cut -d' ' -f1)"
cat >&2 <<MSG
sigil Nitro enclave image: $OUT/sigil-enclave-image.tar
  sha256 $IMAGE_SHA
  image  $(cat "$OUT/image-ids.json")
  tag    $TAG
next, on a Nitro-enabled parent instance with nitro-cli:
  docker load -i $OUT/sigil-enclave-image.tar
  nitro-cli build-enclave --docker-uri $TAG --output-file sigil.eif > build-enclave.json
  deploy/nitro/pcrs-to-policy.py build-enclave.json > policy.toml
MSG
echo "$IMAGE_SHA  $OUT/sigil-enclave-image.tar"
