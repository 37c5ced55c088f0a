#!/usr/bin/env bash
# Scale sigil to N replicas and give every new one K3 by attested replication.
#
#   deploy/k8s/scale-out.sh N [--namespace NS]
#
# Each new replica needs an enclave-enabled node of its own (one sigil pod per node). It starts
# unprovisioned and NotReady, so it receives no traffic until replicate.sh has copied every
# epoch into it and its host has stored the sealed blob (/readyz 200). Scaling in needs no
# script: `kubectl -n sigil scale statefulset/sigil --replicas=N` removes the highest ordinals;
# their volumes (sealed blobs, ciphertext) stay until you delete the PVCs.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd -P)"
N="${1:?usage: scale-out.sh N [--namespace NS]}"
shift
NS=sigil
[ "${1:-}" = --namespace ] && NS="$2"
[[ "$N" =~ ^[0-9]+$ ]] || { echo "scale-out.sh: N must be a number" >&2; exit 2; }
kubectl -n "$NS" scale statefulset/sigil --replicas="$N"
# Wait (10 minutes at most) for every pod's host container to start: each needs a free
# enclave node.
deadline=$((SECONDS + 600))
for i in $(seq 0 $((N - 1))); do
  until [ "$(kubectl -n "$NS" get "pod/sigil-$i" -o jsonpath='{.status.containerStatuses[?(@.name=="host")].started}' 2>/dev/null)" = true ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "scale-out.sh: sigil-$i did not start (a free enclave node?)" >&2; exit 1; }
    sleep 5
  done
done
"$HERE/replicate.sh" --namespace "$NS"
kubectl -n "$NS" get pods -l app.kubernetes.io/name=sigil -o wide
