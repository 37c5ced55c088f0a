#!/usr/bin/env bash
# Build a static, reproducible `sigil-enclave` for a TEE image.
#
#   deploy/build-enclave.sh FEATURE TARGET_DIR
#
# FEATURE is `nitro` (Nitro Enclaves image) or `snp` (SEV-SNP guest initramfs); TARGET_DIR is a
# cargo target directory (relative paths are taken from the repository root). Prints the
# binary's path on stdout (last line) and writes TARGET_DIR/sigil-enclave-<FEATURE>.buildinfo
# with everything that went into the build.
#
# What makes it reproducible (two builds in two fresh target directories give the same bytes):
# - a pinned toolchain (SIGIL_TOOLCHAIN, default 1.95.0), `--locked` dependencies;
# - glibc linked statically (`+crt-static`, a static-pie), so the image needs no loader or libc;
# - every absolute path that can reach the binary remapped: the source tree, $CARGO_HOME
#   (registry sources) and the target directory, for rustc (--remap-path-prefix) and for the C
#   code of ring and secp256k1-sys (-ffile-prefix-map through CFLAGS);
# - no debug info and symbols stripped (the release profile's line tables would carry paths);
# - CARGO_INCREMENTAL=0 and SOURCE_DATE_EPOCH from the last commit.
# Other inputs are the build machine's: gcc, binutils and libc6-dev (libc.a). They are recorded
# in the .buildinfo file; a verifier rebuilding elsewhere needs the same versions.
set -euo pipefail

FEATURE="${1:?usage: deploy/build-enclave.sh nitro|snp TARGET_DIR}"
TD="${2:?usage: deploy/build-enclave.sh nitro|snp TARGET_DIR}"
case "$FEATURE" in nitro|snp) ;; *) echo "build-enclave.sh: FEATURE must be nitro or snp" >&2; exit 2 ;; esac

SRC="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$SRC"
mkdir -p "$TD"
TD="$(cd "$TD" && pwd -P)"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
CARGO_HOME="$(cd "$CARGO_HOME" && pwd -P)"
TRIPLE=x86_64-unknown-linux-gnu
TOOLCHAIN="${SIGIL_TOOLCHAIN:-1.95.0}"

# The pinned toolchain if rustup has it; otherwise the default one, said loudly (the two builds
# of a check still use the same compiler, but the result is then not the published one).
if rustup run "$TOOLCHAIN" rustc -V >/dev/null 2>&1; then
  CARGO=(rustup run "$TOOLCHAIN" cargo)
  RUSTC=(rustup run "$TOOLCHAIN" rustc)
else
  echo "build-enclave.sh: toolchain $TOOLCHAIN not installed; using the default toolchain" >&2
  CARGO=(cargo)
  RUSTC=(rustc)
fi

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || true)"
  : "${SOURCE_DATE_EPOCH:?not a git checkout: set SOURCE_DATE_EPOCH}"
fi
export SOURCE_DATE_EPOCH

MAP_RUST="--remap-path-prefix=$SRC=/sigil --remap-path-prefix=$CARGO_HOME=/cargo --remap-path-prefix=$TD=/target"
MAP_C="-ffile-prefix-map=$SRC=/sigil -ffile-prefix-map=$CARGO_HOME=/cargo -ffile-prefix-map=$TD=/target"

# RUSTFLAGS apply only to the target (with --target), not to build scripts and proc macros,
# which must stay dynamic. Profile overrides come from the environment: no Cargo.toml change.
env -u RUSTC_WRAPPER -u CARGO_BUILD_RUSTC_WRAPPER \
  CARGO_INCREMENTAL=0 \
  CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_PROFILE_RELEASE_STRIP=symbols \
  RUSTFLAGS="-C target-feature=+crt-static $MAP_RUST" \
  CFLAGS="$MAP_C" \
  "${CARGO[@]}" build --release --locked -p sigil-enclave --bin sigil-enclave \
    --features "$FEATURE" --target "$TRIPLE" --target-dir "$TD" >&2

BIN="$TD/$TRIPLE/release/sigil-enclave"

# Static or nothing: the image has no dynamic loader. No PT_INTERP program header and no
# DT_NEEDED entry (readelf, from binutils, which the build needs anyway).
if readelf -lW "$BIN" | grep -q 'INTERP' || readelf -dW "$BIN" | grep -q '(NEEDED)'; then
  echo "build-enclave.sh: $BIN is not statically linked:" >&2
  readelf -lW "$BIN" | grep -A1 INTERP >&2 || true; readelf -dW "$BIN" | grep NEEDED >&2 || true
  exit 1
fi

pkgver() { dpkg-query -W -f='${Package} ${Version}\n' "$1" 2>/dev/null || echo "$1 (not a Debian package here)"; }
{
  echo "sigil-enclave --features $FEATURE, $TRIPLE, static"
  echo "commit: $(git -C "$SRC" log -1 --format=%H 2>/dev/null || echo unknown)"
  echo "SOURCE_DATE_EPOCH: $SOURCE_DATE_EPOCH"
  echo "toolchain: $TOOLCHAIN"
  "${RUSTC[@]}" -vV
  "${CARGO[@]}" -V
  echo "RUSTFLAGS: -C target-feature=+crt-static --remap-path-prefix=<src>=/sigil --remap-path-prefix=<cargo home>=/cargo --remap-path-prefix=<target dir>=/target"
  echo "CFLAGS: -ffile-prefix-map (same three prefixes)"
  echo "profile: release, debug=false, strip=symbols, CARGO_INCREMENTAL=0, --locked"
  echo "cc: $(cc --version | head -n 1)"
  echo "ld: $(ld --version | head -n 1)"
  pkgver libc6-dev; pkgver gcc-12; pkgver binutils
  echo "file: $(file -b "$BIN" 2>/dev/null || echo "static (no PT_INTERP, no DT_NEEDED)")"
  echo "sha256: $(sha256sum "$BIN" | cut -d' ' -f1)  sigil-enclave"
} > "$TD/sigil-enclave-$FEATURE.buildinfo"

echo "$BIN"
