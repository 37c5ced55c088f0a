#!/usr/bin/env bash
# Start the sigil SEV-SNP guest with QEMU (sigil-snp-guest.service runs this).
#
#   deploy/snp/run-guest.sh [--print]     # --print: show the QEMU command line instead of running it
#
# Settings from the environment (/etc/sigil/snp.env):
#   SIGIL_GUEST_DIR      vmlinuz, initrd.cpio, cmdline, vcpus, vcpu-type (build-initramfs.sh)
#   SIGIL_OVMF           the AmdSev firmware the measurement was computed with (build-ovmf.sh)
#   SIGIL_GUEST_CID      the guest's vsock CID (sigil-host --enclave vsock://CID:5000)
#   SIGIL_GUEST_MEMORY   guest RAM, e.g. 1G
#   QEMU                 default qemu-system-x86_64; needs SEV-SNP support (QEMU 9.1 or later)
# The host needs an SNP-enabled platform (EPYC Milan or later, SNP on in the BIOS and in the host
# kernel: 6.11 or later, kvm_amd sev_snp=1) and the vhost_vsock module. Every measured input
# (firmware, kernel, initrd, command line, vCPU count and model) is read from the files the
# measurement was computed from, so the guest launches with exactly that measurement.
set -euo pipefail
: "${SIGIL_GUEST_DIR:?}" "${SIGIL_OVMF:?}" "${SIGIL_GUEST_CID:?}"
MEM="${SIGIL_GUEST_MEMORY:-1G}"
G="$SIGIL_GUEST_DIR"
# Guest policy 0x30000: SMT allowed, debug NOT allowed (bit 19 clear), no migration agent.
# The device is the guest's only one: virtio-vsock to the host; iommu_platform makes it DMA
# through the guest's shared bounce buffers, as encrypted guest memory requires.
cmd=(
  "${QEMU:-qemu-system-x86_64}"
  -enable-kvm -nodefaults -no-user-config -display none -no-reboot
  -machine "q35,confidential-guest-support=sev0,memory-backend=ram0"
  -cpu "$(cat "$G/vcpu-type")" -smp "$(cat "$G/vcpus")" -m "$MEM"
  -object "memory-backend-memfd,id=ram0,size=$MEM,share=true,prealloc=false"
  -object "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x30000,kernel-hashes=on"
  -bios "$SIGIL_OVMF"
  -kernel "$G/vmlinuz" -initrd "$G/initrd.cpio" -append "$(cat "$G/cmdline")"
  -device "vhost-vsock-pci,guest-cid=$SIGIL_GUEST_CID,disable-legacy=on,iommu_platform=true"
  -serial stdio
)
if [ "${1:-}" = --print ]; then
  for a in "${cmd[@]}"; do case "$a" in *[[:space:]]*) printf "'%s' " "$a" ;; *) printf '%s ' "$a" ;; esac; done
  echo; exit 0
fi
exec "${cmd[@]}"
