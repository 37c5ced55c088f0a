#!/usr/bin/env bash
# Smoke test of the SEV-SNP guest image WITHOUT SEV-SNP: boot the same kernel, initrd and
# command line in an ordinary QEMU/KVM VM and check from its console that the kernel runs the
# initrd's /init, that every module loads (virtio-vsock transport, sev-guest), that the static
# sigil-enclave starts, and that it refuses to run without /dev/sev-guest (exit 2, which ends
# the VM as in production). What it cannot show: the SNP launch itself, the measurement,
# attestation and sealing (no SNP CPU), nor vsock traffic (no vhost-vsock on a host without it;
# tests/vm covers vsock).
#
#   deploy/snp/boot-test.sh [GUEST_DIR]        # default target/snp/guest
#
# Needs qemu-system-x86_64. Emulated (TCG) by default, about 10 s here; SIGIL_BOOT_ACCEL=kvm to
# use KVM (on this machine's nested KVM the guest hung without output, so TCG is the default).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd -P)"
G="${1:-$ROOT/target/snp/guest}"
for f in vmlinuz initrd.cpio cmdline vcpus; do [ -f "$G/$f" ] || { echo "boot-test: $G/$f missing" >&2; exit 2; }; done
command -v qemu-system-x86_64 >/dev/null || { echo "boot-test: qemu-system-x86_64 missing (apt-get install qemu-system-x86)" >&2; exit 2; }
accel="${SIGIL_BOOT_ACCEL:-tcg}"
LOG="$G/boot-test.log"
timeout 180 qemu-system-x86_64 -accel "$accel" -nodefaults -no-user-config -display none -no-reboot \
  -machine q35 -cpu max -smp "$(cat "$G/vcpus")" -m 512M \
  -kernel "$G/vmlinuz" -initrd "$G/initrd.cpio" -append "$(cat "$G/cmdline")" \
  -serial "file:$LOG" || true
fail() { echo "boot-test: $*; console in $LOG:" >&2; tail -n 30 "$LOG" >&2; exit 1; }
grep -q 'init: starting sigil-enclave' "$LOG" || fail "/init did not reach sigil-enclave"
# sev-guest loads but finds no device outside an SNP guest ("No such device"); every other
# module must load.
if grep 'insmod .* failed' "$LOG" | grep -qv 'insmod sev-guest failed'; then fail "a module did not load"; fi
grep -q "can't insert '/lib/modules/sev-guest.ko': No such device" "$LOG" || fail "sev-guest.ko did not load as expected (no device)"
grep -q 'cannot open /dev/sev-guest' "$LOG" || fail "sigil-enclave did not report the missing /dev/sev-guest"
grep -q 'Attempted to kill init! exitcode=0x00000200' "$LOG" || fail "sigil-enclave did not exit with code 2"
echo "boot-test: $accel boot of $G: /init ran, virtio-vsock modules loaded (sev-guest: no device, as outside SNP), static sigil-enclave started and refused to run without /dev/sev-guest (exit 2)"
