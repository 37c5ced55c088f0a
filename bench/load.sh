#!/usr/bin/env bash
# Load test of `sigil dev` on loopback: wrk, 2 threads, 32 keep-alive connections, 10 s, for
# sign-message and derive-address. Prints rps, p50/p99 and the sigil process's CPU time per
# request (utime+stime from /proc before and after each run). Usage: bash bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/sigil
[ -x "$BIN" ] || cargo build --release --features sim --bin sigil
OUT=$(mktemp); ERR=$(mktemp)
"$BIN" dev --port 0 --rate-limit 0 >"$OUT" 2>"$ERR" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -f "$OUT" "$ERR"' EXIT
for _ in $(seq 100); do grep -q '^curl' "$OUT" && break; sleep 0.1; done
ADDR=$(grep -o '127.0.0.1:[0-9]*' "$OUT" | head -1)
export JWT=$(grep -o "Bearer [^']*" "$OUT" | cut -d' ' -f2)
export OMNI=$(grep -o '"omni_account":"[0-9a-f]*' "$OUT" | cut -d'"' -f4)
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
for route in sign derive; do
  wrk -t2 -c32 -d3s -s bench/$route.lua "https://$ADDR" >/dev/null 2>&1   # warm-up
  T0=$(cpu)
  R=$(wrk -t2 -c32 -d10s -s bench/$route.lua "https://$ADDR" 2>&1)
  T1=$(cpu)
  N=$(echo "$R" | awk '/requests in/ {print $1}')
  RPS=$(echo "$R" | awk '/Requests\/sec/ {print $2}')
  LAT=$(echo "$R" | grep -o 'p50_us=.*')
  echo "$route: rps=$RPS $LAT requests=$N cpu_us_per_req=$(( (T1 - T0) * 1000000 / HZ / N ))"
done
echo "rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)"
