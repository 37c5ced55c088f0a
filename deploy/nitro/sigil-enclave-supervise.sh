#!/usr/bin/env bash
# Run the sigil EIF and watch it (sigil-enclave.service; the k8s launcher container runs the
# same script). Settings from the environment (/etc/sigil/sigil.env):
#   SIGIL_EIF, SIGIL_ENCLAVE_CID, SIGIL_ENCLAVE_CPUS, SIGIL_ENCLAVE_MEMORY_MIB,
#   SIGIL_ENCLAVE_NAME (default sigil)
# Exits 1 when the enclave is gone (the service manager restarts it: the host then restores K3
# from its sealed blob); terminates the enclave on SIGTERM.
set -euo pipefail
NAME="${SIGIL_ENCLAVE_NAME:-sigil}"
: "${SIGIL_EIF:?}" "${SIGIL_ENCLAVE_CID:?}" "${SIGIL_ENCLAVE_CPUS:?}" "${SIGIL_ENCLAVE_MEMORY_MIB:?}"

state() {
  nitro-cli describe-enclaves | python3 -c '
import json, sys
name = sys.argv[1]
print(next((e.get("State", "") for e in json.load(sys.stdin) if e.get("EnclaveName") == name), "ABSENT"))' "$NAME"
}
stop() { nitro-cli terminate-enclave --enclave-name "$NAME" >/dev/null 2>&1 || true; }

# A previous run's enclave (supervisor killed, container restarted) holds the CID: end it.
[ "$(state)" = ABSENT ] || stop
trap 'stop; exit 0' TERM INT
nitro-cli run-enclave --enclave-name "$NAME" --eif-path "$SIGIL_EIF" \
  --cpu-count "$SIGIL_ENCLAVE_CPUS" --memory "$SIGIL_ENCLAVE_MEMORY_MIB" --enclave-cid "$SIGIL_ENCLAVE_CID"
while :; do
  s="$(state)"
  if [ "$s" != RUNNING ]; then echo "sigil enclave $NAME is $s" >&2; exit 1; fi
  sleep 5 & wait $!
done
