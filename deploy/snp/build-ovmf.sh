#!/usr/bin/env bash
# Build the SEV-SNP firmware for measured direct boot: edk2's OvmfPkg/AmdSev/AmdSevX64
# ("OVMF.amdsev.fd"), the only OVMF flavour with the SEV hashes table, through which the launch
# measurement covers the kernel, initrd and command line QEMU passes (kernel-hashes=on).
# Debian 12 and 13 ship no such build (their `ovmf` has OvmfPkgX64 only), so it is built here
# from Debian's own edk2 source package, pinned by version: Debian 13's edk2 2025.02, since
# Debian 12's 2022.11 predates the SNP kernel-hashes metadata section (sev-snp-measure
# refuses it: "OVMF metadata doesn't include SNP_KERNEL_HASHES section"). The source comes from
# Debian 13's archive; the toolchain is this machine's (Debian 12: gcc 12, nasm, iasl).
#
#   deploy/snp/build-ovmf.sh [OUT_DIR]        # default target/snp/ovmf; writes OUT_DIR/OVMF.amdsev.fd
#
# Needs: build-essential, patch, nasm, acpica-tools (iasl), uuid-dev,
# python3 (Debian's), and network access to Debian's archive for the source package.
# The measurement depends on these exact firmware bytes: ship the resulting file to the SNP
# host with the kernel and initrd (its sha256 goes in the .buildinfo next to it).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd -P)"
OUT="${1:-$ROOT/target/snp/ovmf}"
EDK2_SUITE="${EDK2_SUITE:-trixie}"
EDK2_VERSION="${EDK2_VERSION:-2025.02-8+deb13u1}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"
WORK="$OUT/work"

if [ -f "$OUT/OVMF.amdsev.fd" ] && [ -f "$OUT/OVMF.amdsev.buildinfo" ] && grep -q "edk2 $EDK2_VERSION" "$OUT/OVMF.amdsev.buildinfo"; then
  echo "$OUT/OVMF.amdsev.fd (already built)"; exit 0
fi
for tool in patch nasm iasl gcc make; do
  command -v "$tool" >/dev/null || { echo "build-ovmf.sh: $tool missing (apt-get install build-essential nasm acpica-tools uuid-dev)" >&2; exit 2; }
done

# Debian's source package through apt, with a private deb-src list (the system's sources stay as they are).
rm -rf "$WORK"; mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial"
cat > "$WORK/apt/sources.list" <<LIST
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $EDK2_SUITE main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $EDK2_SUITE-security main
LIST
APT=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache" -o APT::Sandbox::User=root)
apt-get "${APT[@]}" -q update >&2
# The upstream tarball and Debian's patches, checked against the SHA-256 sums in the signed
# Sources index. (Unpacked by hand rather than by dpkg-source: the mirror here served every file
# of edk2 2025.02-8+deb13u1 but its .dsc.)
SUMS="$(apt-cache "${APT[@]}" showsrc edk2 | awk -v v="$EDK2_VERSION" '
  /^Package:/ {p=0} /^Version:/ {p=($2==v)} p && /^Checksums-Sha256:/ {c=1; next} p && c && /^ / {print $1, $3; next} {c=0}')"
ORIG="$(printf '%s\n' "$SUMS" | awk '/orig\.tar/ {print $2; exit}')"
DEB="$(printf '%s\n' "$SUMS" | awk '/debian\.tar/ {print $2; exit}')"
if [ -z "$ORIG" ] || [ -z "$DEB" ]; then echo "build-ovmf.sh: edk2 $EDK2_VERSION not in the $EDK2_SUITE Sources index" >&2; exit 2; fi
( cd "$WORK" && apt-get "${APT[@]}" -q --download-only source "edk2=$EDK2_VERSION" >&2 ) || true
for f in "$ORIG" "$DEB"; do
  want="$(printf '%s\n' "$SUMS" | awk -v f="$f" '$2==f {print $1; exit}')"
  got="$(sha256sum "$WORK/$f" 2>/dev/null | cut -d' ' -f1)"
  [ "$got" = "$want" ] || { echo "build-ovmf.sh: $f: sha256 ${got:-missing}, the index says $want" >&2; exit 2; }
done
SRC="$WORK/edk2"
mkdir -p "$SRC"
tar -xf "$WORK/$ORIG" -C "$SRC" --strip-components=1
tar -xf "$WORK/$DEB" -C "$SRC"
while read -r patch; do
  case "$patch" in ''|'#'*) continue ;; esac
  patch -d "$SRC" -p1 -s --no-backup-if-mismatch < "$SRC/debian/patches/$patch" >&2
done < "$SRC/debian/patches/series"

cd "$SRC"
export PYTHON_COMMAND=/usr/bin/python3 SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1668124800}"
make -C BaseTools -j"$(nproc)" >&2
# The AmdSev package embeds a GRUB image for SEV secret-based disk unlocking; sigil boots its
# initrd directly and needs none, so an empty placeholder stands in (as Kata and others do).
: > OvmfPkg/AmdSev/Grub/grub.efi
# shellcheck disable=SC1091  # edksetup.sh comes with the source
set +u; . ./edksetup.sh >&2; set -u
build -q -a X64 -t GCC5 -b RELEASE -n "$(nproc)" -p OvmfPkg/AmdSev/AmdSevX64.dsc >&2
cp Build/AmdSev/RELEASE_GCC5/FV/OVMF.fd "$OUT/OVMF.amdsev.fd"

{
  echo "OvmfPkg/AmdSev/AmdSevX64.dsc, RELEASE, GCC5, from Debian's edk2 $EDK2_VERSION source package ($EDK2_SUITE)"
  echo "grub.efi: empty placeholder"
  echo "gcc: $(gcc --version | head -n 1)"
  echo "nasm: $(nasm -v)"
  echo "iasl: $(iasl -v 2>/dev/null | grep -m1 -i version || echo unknown)"
  echo "sha256: $(sha256sum "$OUT/OVMF.amdsev.fd" | cut -d' ' -f1)  OVMF.amdsev.fd"
} > "$OUT/OVMF.amdsev.buildinfo"
rm -rf "$WORK"
echo "$OUT/OVMF.amdsev.fd"
