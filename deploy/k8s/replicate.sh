#!/usr/bin/env bash
# Give K3 to sigil replicas through attested replication (one Job per target, from
# replicate-job.yaml). Never through a Secret: the Job relays ciphertext between two enclaves
# that check each other's measurement and broker key.
#
#   deploy/k8s/replicate.sh [--all] [--from POD] [--namespace NS]
#
#   default   every pod that is running but not Ready (a new replica, a replaced node whose
#             volume was lost): what scale-out.sh calls
#   --all     every pod except the source (after provisioning a new epoch on one replica:
#             docs/SCALING.md, "Rotating an epoch across N replicas")
#   --from    the source pod (default: the first Ready pod)
#
# Needs kubectl with access to the namespace (default sigil). Exits non-zero when a Job fails
# or a target does not become Ready within 2 minutes.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd -P)"
NS=sigil
ALL=0
FROM=
while [ $# -gt 0 ]; do
  case "$1" in
    --all) ALL=1; shift ;;
    --from) FROM="$2"; shift 2 ;;
    --namespace) NS="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "replicate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
k() { kubectl -n "$NS" "$@"; }

# name ready host-running, one line per sigil pod
pods="$(k get pods -l app.kubernetes.io/name=sigil -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[?(@.name=="host")].started}{"\n"}{end}')"
if [ -z "$FROM" ]; then
  FROM="$(awk '$2 == "True" {print $1; exit}' <<<"$pods")"
  [ -n "$FROM" ] || { echo "replicate.sh: no Ready replica to copy from: provision one first (sigil provision, deploy/k8s/README.md)" >&2; exit 1; }
fi
if [ "$ALL" = 1 ]; then
  targets="$(awk -v f="$FROM" '$1 != f && $3 == "true" {print $1}' <<<"$pods")"
else
  targets="$(awk -v f="$FROM" '$1 != f && $2 != "True" && $3 == "true" {print $1}' <<<"$pods")"
fi
[ -n "$targets" ] || { echo "replicate.sh: nothing to replicate to"; exit 0; }

for to in $targets; do
  job="sigil-replicate-to-$to"
  echo "replicate.sh: $FROM -> $to ($job)"
  k delete job "$job" --ignore-not-found >/dev/null
  sed -e "s/^  name: sigil-replicate-to-sigil-3$/  name: $job/" \
      -e "s/^              value: sigil-0$/              value: $FROM/" \
      -e "s/^              value: sigil-3$/              value: $to/" \
      -e "s/^  namespace: sigil$/  namespace: $NS/" \
      "$HERE/replicate-job.yaml" | k apply -f -
  if ! k wait --for=condition=complete "job/$job" --timeout=600s; then
    k logs "job/$job" >&2 || true
    echo "replicate.sh: $job failed" >&2; exit 1
  fi
  k logs "job/$job"
  k wait --for=condition=Ready "pod/$to" --timeout=120s
done
