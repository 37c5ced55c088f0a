#!/usr/bin/env bash
# The VM test: sigil-enclave and sigil-host talking over real AF_VSOCK, inside a QEMU guest
# running the Debian kernel (its vsock + vsock_loopback modules), checked end to end by a
# client over HTTPS. See tests/vm/README.md. Run from anywhere; exits non-zero on any failed
# check, a guest that never reports, or a timeout.
#
# Environment:
#   SIGIL_VM_TIMEOUT  seconds the guest may run (default 300)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/target/vm # cargo's target dir, the kernel cache and vm.log: reused between runs
TARGET=x86_64-unknown-linux-gnu
TIMEOUT=${SIGIL_VM_TIMEOUT:-300}
# SPEC §3's test-vector K3 (bytes 00 01 … 1f): the client checks the vectors derived from it.
K3_HEX=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

STARTED=$SECONDS
step() { printf '\n=== vm: %s (%d s) ===\n' "$*" $((SECONDS - STARTED)); }
die() { echo "vm test FAILED: $*" >&2; exit 1; }

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sigil-vm.XXXXXX")
DEV_PID=
cleanup() {
    if [ -n "$DEV_PID" ]; then kill "$DEV_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --------------------------------------------------------------------------------------------
step "host packages"
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
# qemu-system-x86: the VM; busybox-static: the guest's whole userland; cpio: the initramfs;
# xz-utils: in case the kernel ships .ko.xz; iproute2: `ss`, copied into the guest to list
# its AF_VSOCK sockets; binutils (readelf, strip) and file: to check and slim the binaries.
PACKAGES=(qemu-system-x86 busybox-static cpio xz-utils iproute2 binutils file)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
APT_UPDATED=
apt_update() {
    if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
}
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "$(qemu-system-x86_64 --version | head -1); $(/bin/busybox | head -1)"

# --------------------------------------------------------------------------------------------
step "Debian kernel"
# The current bookworm kernel that linux-image-amd64 points to, fetched with apt-get download
# and unpacked in the temp dir (never installed). Only vmlinuz and the modules the guest loads
# are kept, in target/vm/kernel/<package>; a new point release means a new download.
# The guest loads these (and what they depend on): the vsock core with its loopback transport,
# and the diag modules that let `ss` list vsock sockets and the peers of Unix sockets.
WANT="vsock_loopback vsock_diag unix_diag"
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1 || true
}
KPKG=$(kernel_pkg)
KDIR=$OUT/kernel/$KPKG
if [ -z "$KPKG" ] || [ "$(cat "$KDIR/.complete" 2>/dev/null)" != "$WANT" ]; then
    # About to download: fresh package lists, so the name and the mirror's file agree.
    apt_update
    KPKG=$(kernel_pkg)
    KDIR=$OUT/kernel/$KPKG
fi
[ -n "$KPKG" ] || die "apt-cache knows no linux-image-amd64 dependency"
KVER=${KPKG#linux-image-}
if [ "$(cat "$KDIR/.complete" 2>/dev/null)" != "$WANT" ]; then
    (cd "$WORK" && apt-get download -q "$KPKG" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
    deb=$(ls "$WORK"/"$KPKG"_*.deb 2>/dev/null | head -1 || true)
    [ -n "$deb" ] || die "apt-get download $KPKG produced no .deb"
    dpkg-deb -x "$deb" "$WORK/kernel"
    MODDIR=$WORK/kernel/lib/modules/$KVER
    [ -f "$WORK/kernel/boot/vmlinuz-$KVER" ] || die "no vmlinuz-$KVER in $KPKG"

    ko_path() {
        local f
        f=$(find "$MODDIR/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \) | head -1)
        [ -n "$f" ] || die "module $1 not found in $KPKG"
        echo "$f"
    }
    ko_text() { # a module, decompressed (busybox insmod may not read compressed ones)
        case $1 in
            *.xz) xz -dc "$1" ;;
            *.zst) zstd -dcq "$1" ;;
            *) cat "$1" ;;
        esac
    }
    # Load order, dependencies first, from each module's own `depends=` (the package ships
    # no modules.dep: depmod runs at install time).
    MODULES=()
    add_module() {
        local m=$1 dep deps
        for dep in "${MODULES[@]}"; do [ "$dep" = "$m" ] && return 0; done
        deps=$(ko_text "$(ko_path "$m")" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -1)
        for dep in ${deps//,/ }; do add_module "$dep"; done
        MODULES+=("$m")
    }
    for m in $WANT; do add_module "$m"; done

    rm -rf "$OUT/kernel" && mkdir -p "$KDIR/modules" # older kernels go
    cp "$WORK/kernel/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
    for m in "${MODULES[@]}"; do ko_text "$(ko_path "$m")" >"$KDIR/modules/$m.ko"; done
    printf '%s\n' "${MODULES[@]}" >"$KDIR/modules/order"
    rm -rf "$WORK/kernel" "$deb"
    echo "$WANT" >"$KDIR/.complete"
fi
echo "kernel: $KPKG"
echo "modules, in load order: $(tr '\n' ' ' <"$KDIR/modules/order")"

# --------------------------------------------------------------------------------------------
step "static binaries"
# crt-static: the guest has no libc. Passing --target keeps RUSTFLAGS away from build scripts
# and proc macros. sigil-host is built as in production (no features); sigil-enclave, the
# example client and `sigil` (for `sigil dev`, below) need `sim`: the guest has no TEE, so
# the enclave attests with the simulated attester.
export RUSTFLAGS="-C target-feature=+crt-static"
export CARGO_TERM_COLOR=never
cargo build --target "$TARGET" --target-dir "$OUT" -p sigil-host --bin sigil-host
cargo build --target "$TARGET" --target-dir "$OUT" -p sigil -p sigil-enclave --features sim \
    --bin sigil --bin sigil-enclave --example vm_client
unset RUSTFLAGS
BIN=$OUT/$TARGET/debug
for b in "$BIN/sigil-enclave" "$BIN/sigil-host" "$BIN/examples/vm_client" "$BIN/sigil"; do
    # Static means no program interpreter and no shared-library dependency.
    if readelf -lW "$b" | grep -q 'program interpreter' || readelf -dW "$b" | grep -q '(NEEDED)'; then
        die "$b is dynamically linked: $(ldd "$b" | tr '\n' ' ')"
    fi
    echo "$(basename "$b"): $(file -b "$b" | cut -d, -f1-2,4)"
done

# --------------------------------------------------------------------------------------------
step "guest inputs (sigil dev --state-dir)"
# `sigil dev` writes everything a deployment needs into its state dir: the TLS certificate and
# key (SANs localhost and 127.0.0.1), the broker key pair (broker.pem for host and enclave,
# broker-key.p8 for the client's JWTs), the sim attestation root, measurement and sealing
# key (the guest's enclave loads them with --sim-ca), and policy.toml trusting exactly that
# root, measurement and - K3 being given - the SPEC K3's fingerprint. It is stopped as soon as
# it has said it is listening (port 0: any free loopback port).
STATE=$WORK/state
DEV_KEY_SERVICE_MASTER_SECRET=$K3_HEX "$BIN/sigil" dev --port 0 --state-dir "$STATE" >"$WORK/dev.out" 2>"$WORK/dev.err" &
DEV_PID=$!
for _ in $(seq 1 300); do
    grep -q "signer listening on https://" "$WORK/dev.out" && break
    kill -0 "$DEV_PID" 2>/dev/null || die "sigil dev exited: $(cat "$WORK/dev.err")"
    sleep 0.2
done
grep -q "signer listening on https://" "$WORK/dev.out" || die "sigil dev did not start within 60 s"
kill "$DEV_PID" && wait "$DEV_PID" || true
DEV_PID=
head -1 "$WORK/dev.out"
# The sealed K3 blobs are this host run's; the guest gets K3 from a file instead.
rm -f "$STATE"/k3-sealed-*
ls "$STATE"
grep -q '^k3_fingerprint' "$STATE/policy.toml" || die "policy.toml pins no K3 fingerprint"

# --------------------------------------------------------------------------------------------
step "initramfs"
RFS=$WORK/rootfs
mkdir -p "$RFS"/{bin,sigil,lib/modules,proc,sys,dev,tmp}
cp /bin/busybox "$RFS/bin/busybox"
ln -s busybox "$RFS/bin/sh" # for /init's #! line; /init installs the other applets
readelf -lW /bin/busybox | grep -q 'program interpreter' && die "/bin/busybox is not static (install busybox-static)"
cp "$KDIR"/modules/* "$RFS/lib/modules/"
# Debug info is most of a debug build's size; the guest needs none of it.
for b in "$BIN/sigil-enclave" "$BIN/sigil-host" "$BIN/examples/vm_client"; do
    strip -o "$RFS/sigil/$(basename "$b")" "$b"
done
# ss is dynamically linked: bring it with its libraries and loader, at their own paths.
SS=$(command -v ss)
mkdir -p "$RFS/usr/bin" && cp "$SS" "$RFS/usr/bin/ss"
for lib in $(ldd "$SS" | grep -oE '/[^ ]+'); do
    mkdir -p "$RFS$(dirname "$lib")" && cp -L "$lib" "$RFS$lib"
done
cp -r "$STATE" "$RFS/state"
echo "$K3_HEX" >"$RFS/k3.hex"
install -m 0755 "$ROOT/tests/vm/init.sh" "$RFS/init"
INITRD=$OUT/initramfs.cpio.gz
(cd "$RFS" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -1 >"$INITRD"
echo "initramfs: $(du -sh "$RFS" | cut -f1) unpacked, $(du -h "$INITRD" | cut -f1) compressed"

# --------------------------------------------------------------------------------------------
step "boot (TCG, timeout $TIMEOUT s)"
LOG=$OUT/vm.log
# TCG: no /dev/kvm needed (and nested KVM hung at "Booting from ROM" where this was written).
# No NIC (the guest needs only loopback); -cpu max gives the guest RDRAND, so its RNG is
# ready at once. The host's clock goes on the command line for the guest to check its own.
QEMU=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 1024 -smp 2
    -nographic -no-reboot -nic none
    -kernel "$KDIR/vmlinuz" -initrd "$INITRD"
    -append "console=ttyS0 panic=-1 loglevel=4 edd=off sigil.hosttime=$(date +%s)")
echo "${QEMU[*]}"
boot_start=$SECONDS
set +e
# The serial line ends lines with CR LF and SeaBIOS sends terminal escapes: keep the log plain.
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 \
    | sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' | tee "$LOG"
qemu_rc=${PIPESTATUS[0]}
set -e
boot_secs=$((SECONDS - boot_start))

# --------------------------------------------------------------------------------------------
step "verdict"
echo "serial log: $LOG"
echo "VM ran ${boot_secs} s (qemu exit $qemu_rc); $(grep -m1 -o 'guest /init started.*' "$LOG" || echo 'guest /init never started')"
[ "$qemu_rc" -eq 124 ] && echo "QEMU was killed after $TIMEOUT s"
echo "checks the guest reported:"
grep -E '^check: ' "$LOG" | sed 's/^/  /' || true
if grep -qx 'SIGIL-VM: PASS' "$LOG" && ! grep -q '^SIGIL-VM: FAIL' "$LOG" && ! grep -q '^FAIL:' "$LOG"; then
    echo "vm test PASSED: sigil-enclave and sigil-host over AF_VSOCK (CID 1) in a $KVER guest; ${boot_secs} s in the VM, $((SECONDS - STARTED)) s in all"
    exit 0
fi
echo "--- last 40 lines of $LOG ---"
tail -n 40 "$LOG"
die "$(grep -m1 -E '^SIGIL-VM: FAIL|^FAIL:' "$LOG" || echo "no verdict from the guest (qemu exit $qemu_rc)")"
