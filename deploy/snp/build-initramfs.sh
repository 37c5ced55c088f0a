#!/usr/bin/env bash
# Build the sigil SEV-SNP guest reproducibly: kernel, initrd carrying a static sigil-enclave,
# kernel command line.
#
#   deploy/snp/build-initramfs.sh [--config FILE] [--target-dir DIR] [OUT_DIR]
#
#   --config      the measured configuration (default deploy/snp/guest.env.example)
#   --target-dir  cargo target directory for the static build (default target/snp)
#   OUT_DIR       default <target-dir>/guest
#
# Writes to OUT_DIR: vmlinuz (Debian's, unchanged), initrd.cpio (uncompressed newc: /init,
# busybox, the virtio-vsock and sev-guest modules of that kernel, /sigil-enclave, the broker
# key), cmdline, vcpus, vcpu-type, sigil-enclave-snp.buildinfo, SHA256SUMS. Then
# deploy/snp/measure.sh computes the launch measurement from them and the firmware.
#
# Needs apt-get (Debian 12 sources) for the pinned kernel and busybox packages, python3.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd -P)"
cd "$ROOT"
CONFIG=deploy/snp/guest.env.example
TD=target/snp
OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="$2"; shift 2 ;;
    --target-dir) TD="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "build-initramfs.sh: unknown option $1" >&2; exit 2 ;;
    *) OUT="$1"; shift ;;
  esac
done
OUT="${OUT:-$TD/guest}"
die() { echo "build-initramfs.sh: $*" >&2; exit 2; }

[ -f "$CONFIG" ] || die "no config file $CONFIG"
# shellcheck disable=SC1090
. "$CONFIG"
: "${SIGIL_BROKER_PUBKEY:?}" "${SIGIL_VSOCK_PORT:?}" "${SIGIL_KERNEL_PACKAGE:?}" "${SIGIL_KERNEL_VERSION:?}"
: "${SIGIL_BUSYBOX_VERSION:?}" "${SIGIL_CMDLINE:?}" "${SIGIL_VCPUS:?}" "${SIGIL_VCPU_TYPE:?}"
[ -f "$SIGIL_BROKER_PUBKEY" ] || die "SIGIL_BROKER_PUBKEY: no file $SIGIL_BROKER_PUBKEY"
[[ "$SIGIL_VSOCK_PORT" =~ ^[0-9]{1,10}$ ]] || die "SIGIL_VSOCK_PORT must be a number"
EXPECT_ARGS=
for pin in ${SIGIL_EXPECT_K3:-}; do
  [[ "$pin" =~ ^[0-9]{1,3}:(0x)?[0-9a-fA-F]{64}$ ]] || die "SIGIL_EXPECT_K3: not V:FINGERPRINT: $pin"
  EXPECT_ARGS="$EXPECT_ARGS --expect-k3 $pin"
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || true)"
  : "${SOURCE_DATE_EPOCH:?not a git checkout: set SOURCE_DATE_EPOCH}"
fi
export SOURCE_DATE_EPOCH
PYTHON="${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"

# 1. The static binary (feature snp: /dev/sev-guest attester and sealing key).
BIN="$(deploy/build-enclave.sh snp "$TD" | tail -n 1)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"
TD="$(cd "$TD" && pwd -P)"

# 2. The pinned Debian packages (apt checks them against the signed archive index).
DL="$TD/debs"
mkdir -p "$DL"
fetch() { # package version -> path of the .deb (one directory per pinned version, kept as a cache)
  local dir="$DL/$1=$2"
  if ! ls "$dir"/*.deb >/dev/null 2>&1; then
    mkdir -p "$dir"
    ( cd "$dir" && apt-get download -q "$1=$2" >&2 ) \
      || die "apt-get download $1=$2 failed (run apt-get update; a superseded version is on snapshot.debian.org)"
  fi
  ls "$dir"/*.deb
}
KDEB="$(fetch "$SIGIL_KERNEL_PACKAGE" "$SIGIL_KERNEL_VERSION")"
BDEB="$(fetch busybox-static "$SIGIL_BUSYBOX_VERSION")"
X="$TD/debs/x"
rm -rf "$X"; mkdir -p "$X/kernel" "$X/busybox"
dpkg-deb -x "$KDEB" "$X/kernel"
dpkg-deb -x "$BDEB" "$X/busybox"
KREL="${SIGIL_KERNEL_PACKAGE#linux-image-}"
MODDIR="$X/kernel/lib/modules/$KREL/kernel"
[ -d "$MODDIR" ] || die "$KDEB has no lib/modules/$KREL"

# 3. The initrd's tree. Modules in dependency order (checked against each module's depends=).
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport sev-guest"
R="$OUT/initrd-root"
rm -rf "$R"
mkdir -p "$R/bin" "$R/lib/modules" "$R/etc/sigil" "$R/dev" "$R/proc" "$R/sys" "$R/tmp" "$R/run"
loaded=" "
for m in $MODULES; do
  ko="$(find "$MODDIR" -name "$m.ko" | head -n 1)"
  [ -n "$ko" ] || die "module $m.ko not in $KDEB"
  deps="$(strings "$ko" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' ')"
  for d in $deps; do
    case "$loaded" in *" $d "*) ;; *) die "module $m needs $d loaded before it" ;; esac
  done
  loaded="$loaded$m "
  install -m 0644 "$ko" "$R/lib/modules/$m.ko"
done
install -m 0755 "$X/busybox/bin/busybox" "$R/bin/busybox"
install -m 0755 "$BIN" "$R/sigil-enclave"
install -m 0644 "$SIGIL_BROKER_PUBKEY" "$R/etc/sigil/broker.pem"
init="$(cat deploy/snp/init.in)"
init="${init//@MODULES@/$MODULES}"
init="${init//@VSOCK_PORT@/$SIGIL_VSOCK_PORT}"
init="${init//@EXPECT_K3_ARGS@/$EXPECT_ARGS}"
printf '%s\n' "$init" > "$R/init"
chmod 0755 "$R/init" "$R/bin" "$R/lib" "$R/lib/modules" "$R/etc" "$R/etc/sigil" "$R/dev" "$R/proc" "$R/sys" "$R/run"
chmod 1777 "$R/tmp"
"$PYTHON" deploy/snp/mkcpio.py "$R" "$OUT/initrd.cpio" --node dev/console:c:5:1:0600

# 4. Kernel, command line, vCPUs: what QEMU gets and the measurement covers.
install -m 0644 "$X/kernel/boot/vmlinuz-$KREL" "$OUT/vmlinuz"
printf '%s' "$SIGIL_CMDLINE" > "$OUT/cmdline"
printf '%s\n' "$SIGIL_VCPUS" > "$OUT/vcpus"
printf '%s\n' "$SIGIL_VCPU_TYPE" > "$OUT/vcpu-type"
install -m 0755 "$BIN" "$OUT/sigil-enclave"

cp "$TD/sigil-enclave-snp.buildinfo" "$OUT/"
{
  echo "config: $CONFIG (sha256 $(sha256sum "$CONFIG" | cut -d' ' -f1))"
  echo "kernel: $SIGIL_KERNEL_PACKAGE $SIGIL_KERNEL_VERSION ($(basename "$KDEB"), sha256 $(sha256sum "$KDEB" | cut -d' ' -f1))"
  echo "busybox: busybox-static $SIGIL_BUSYBOX_VERSION ($(basename "$BDEB"), sha256 $(sha256sum "$BDEB" | cut -d' ' -f1))"
  echo "modules: $MODULES"
  echo "cmdline: $SIGIL_CMDLINE"
  echo "vcpus: $SIGIL_VCPUS x $SIGIL_VCPU_TYPE"
} >> "$OUT/sigil-enclave-snp.buildinfo"
( cd "$OUT" && sha256sum sigil-enclave initrd.cpio vmlinuz cmdline > SHA256SUMS )
rm -rf "$X"
echo "sigil SEV-SNP guest: $OUT (initrd sha256 $(sha256sum "$OUT/initrd.cpio" | cut -d' ' -f1))" >&2
echo "$OUT"
