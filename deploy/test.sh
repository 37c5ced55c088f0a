#!/usr/bin/env bash
# Offline checks of deploy/: everything that needs no cargo build, no TEE, no cloud (seconds).
#
#   bash deploy/test.sh
#
# - pcrs-to-policy.py on sample nitro-cli output, its output loaded by sigil's own policy
#   parser (`sigil verify`, if a sigil binary is at hand), and its refusals;
# - mkimage.py and mkcpio.py: the same tree twice gives the same bytes; docker's loader
#   layout (manifest.json, OCI index) is consistent; `--node` device entries;
# - the systemd units (Nitro and SNP) with systemd-analyze verify in a scratch root;
# - the Kubernetes manifests rendered by kustomize and validated against the Kubernetes
#   schemas (kubernetes-validate, strict);
# - every shell script with bash -n, and shellcheck when installed.
# Ends with "N passed, M failed"; exits 1 if anything failed.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$ROOT" || exit 2
PY="${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
passed=0 failed=0 skipped=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' <<<"$2"; failed=$((failed + 1)); }
skip() { echo "skip $1"; skipped=$((skipped + 1)); }
check() { # name, command...: passes when the command exits 0
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then ok "$name"; else bad "$name" "$out"; fi
}
refuses() { # name, command...: passes when the command exits non-zero
  local name="$1"; shift
  if "$@" >/dev/null 2>&1; then bad "$name (was accepted)"; else ok "$name"; fi
}

# --- pcrs-to-policy.py -------------------------------------------------------------------
P2P=deploy/nitro/pcrs-to-policy.py
SAMPLE=deploy/nitro/testdata/build-enclave.sample.json
"$PY" "$P2P" "$SAMPLE" > "$W/policy.toml" 2>"$W/err" && grep -q '^platforms = \["nitro"\]' "$W/policy.toml" \
  && grep -q "^0 = \"$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["Measurements"]["PCR0"])' "$SAMPLE")\"" "$W/policy.toml" \
  && ok "pcrs-to-policy: PCR0-2 pinned, nitro only" || bad "pcrs-to-policy: PCR0-2 pinned, nitro only" "$(cat "$W/err" "$W/policy.toml")"
SIGIL=""
for b in target/debug/sigil target/release/sigil; do [ -x "$b" ] && { SIGIL="$b"; break; }; done
if [ -n "$SIGIL" ]; then
  # sigil verify loads the policy before it reads the evidence: a policy error names the policy.
  out="$("$SIGIL" verify --policy "$W/policy.toml" "$W/no-such-evidence" 2>&1)"
  if grep -q 'cannot read evidence' <<<"$out"; then ok "pcrs-to-policy: policy accepted by sigil's parser ($SIGIL)"
  else bad "pcrs-to-policy: policy accepted by sigil's parser ($SIGIL)" "$out"; fi
  "$PY" "$P2P" --k3-fingerprint "0x$(printf 'k3' | sha256sum | cut -d' ' -f1)" --max-age 120 "$SAMPLE" > "$W/policy-k3.toml"
  out="$("$SIGIL" verify --policy "$W/policy-k3.toml" "$W/no-such-evidence" 2>&1)"
  if grep -q 'cannot read evidence' <<<"$out"; then ok "pcrs-to-policy: --k3-fingerprint policy accepted by sigil's parser"
  else bad "pcrs-to-policy: --k3-fingerprint policy accepted by sigil's parser" "$out"; fi
  out="$("$SIGIL" verify --policy deploy/snp/policy.example.toml "$W/no-such-evidence" 2>&1)"
  if grep -q 'cannot read evidence' <<<"$out"; then ok "deploy/snp/policy.example.toml accepted by sigil's parser"
  else bad "deploy/snp/policy.example.toml accepted by sigil's parser" "$out"; fi
else
  skip "policies in sigil's parser (no target/debug/sigil or target/release/sigil built)"
fi
if command -v openssl >/dev/null; then
  check "deploy/nitro/example/broker.pem is a P-256 public key" \
    sh -c 'openssl pkey -pubin -in deploy/nitro/example/broker.pem -noout -text | grep -q "prime256v1"'
fi
"$PY" "$P2P" --kms-statement arn:aws:iam::111122223333:role/sigil-parent "$SAMPLE" > "$W/stmt.json" \
  && "$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); c=s["Condition"]["StringEqualsIgnoreCase"]; assert sorted(c)==["kms:RecipientAttestation:PCR%d"%i for i in (0,1,2)], c; assert s["Action"]==["kms:GenerateDataKey","kms:Decrypt"]' "$W/stmt.json" \
  && ok "pcrs-to-policy: --kms-statement admits exactly PCR0-2 for GenerateDataKey/Decrypt" || bad "pcrs-to-policy: --kms-statement" "$(cat "$W/stmt.json")"
mk() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); exec(sys.argv[2]); json.dump(d, sys.stdout)' "$SAMPLE" "$1" > "$W/m.json"; }
mk 'd["Measurements"]["PCR0"]="0"*96';                  refuses "pcrs-to-policy: refuses an all-zero (debug) PCR0" "$PY" "$P2P" "$W/m.json"
mk 'del d["Measurements"]["PCR2"]';                       refuses "pcrs-to-policy: refuses a missing PCR2" "$PY" "$P2P" "$W/m.json"
mk 'd["Measurements"]["PCR1"]=d["Measurements"]["PCR1"][:64]'; refuses "pcrs-to-policy: refuses a 32-byte PCR" "$PY" "$P2P" "$W/m.json"
mk 'd["Measurements"]["HashAlgorithm"]="Sha256 { ... }"'; refuses "pcrs-to-policy: refuses a non-SHA-384 measurement" "$PY" "$P2P" "$W/m.json"
refuses "pcrs-to-policy: refuses --pin-pcr8 for an unsigned EIF" "$PY" "$P2P" --pin-pcr8 "$SAMPLE"
refuses "pcrs-to-policy: refuses a role that is not an IAM role ARN" "$PY" "$P2P" --kms-statement arn:aws:iam::111122223333:user/bob "$SAMPLE"

# --- mkimage.py ---------------------------------------------------------------------------
mkdir -p "$W/ctx/rootfs/dev" "$W/ctx/rootfs/tmp"
printf 'binary' > "$W/ctx/rootfs/sigil-enclave"; chmod 0755 "$W/ctx/rootfs/sigil-enclave"
printf 'key' > "$W/ctx/rootfs/broker.pem"; chmod 0644 "$W/ctx/rootfs/broker.pem"; chmod 1777 "$W/ctx/rootfs/tmp"
cat > "$W/ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["/sigil-enclave", "--listen", "vsock://ANY:5000"]
EOF
SOURCE_DATE_EPOCH=1700000000 "$PY" deploy/nitro/mkimage.py --dockerfile "$W/ctx/Dockerfile" --tag sigil-enclave:test --out "$W/i1.tar" >/dev/null
touch "$W/ctx/rootfs/broker.pem"; chmod 0700 "$W/ctx"   # other mtimes and context modes must not matter
SOURCE_DATE_EPOCH=1700000000 "$PY" deploy/nitro/mkimage.py --dockerfile "$W/ctx/Dockerfile" --tag sigil-enclave:test --out "$W/i2.tar" >/dev/null
if cmp -s "$W/i1.tar" "$W/i2.tar"; then ok "mkimage: same tree and SOURCE_DATE_EPOCH -> same image bytes"; else bad "mkimage: same tree -> same image bytes"; fi
out="$("$PY" - "$W/i1.tar" <<'EOF' 2>&1
import hashlib, io, json, sys, tarfile
t = tarfile.open(sys.argv[1])
names = t.getnames()
assert names[:2] == ["blobs", "blobs/sha256"] and names[2:] == sorted(names[2:]), names
dm = json.load(t.extractfile("manifest.json"))[0]
idx = json.load(t.extractfile("index.json"))
man_digest = idx["manifests"][0]["digest"].split(":")[1]
man = json.load(t.extractfile("blobs/sha256/" + man_digest))
cfg_bytes = t.extractfile(dm["Config"]).read()
assert "blobs/sha256/" + hashlib.sha256(cfg_bytes).hexdigest() == dm["Config"]
assert man["config"]["digest"] == "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()
layer = t.extractfile(dm["Layers"][0]).read()
assert man["layers"][0]["digest"] == "sha256:" + hashlib.sha256(layer).hexdigest()
cfg = json.loads(cfg_bytes)
assert cfg["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
assert cfg["config"]["Entrypoint"][0] == "/sigil-enclave"
assert dm["RepoTags"] == ["sigil-enclave:test"]
for m in t.getmembers():
    assert m.mtime == 1700000000 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "", m.name
l = tarfile.open(fileobj=io.BytesIO(layer))
got = {m.name: (oct(m.mode), m.mtime) for m in l.getmembers()}
assert got == {"broker.pem": ("0o644", 1700000000), "dev": ("0o755", 1700000000), "sigil-enclave": ("0o755", 1700000000), "tmp": ("0o1777", 1700000000)}, got
EOF
)"
[ -z "$out" ] && ok "mkimage: digests, docker manifest.json, OCI index and layer entries consistent" || bad "mkimage: layout" "$out"
printf 'FROM debian:12\nCOPY rootfs/ /\nENTRYPOINT ["/x"]\n' > "$W/ctx/Dockerfile.bad"
refuses "mkimage: refuses a base image (FROM debian:12)" env SOURCE_DATE_EPOCH=1 "$PY" deploy/nitro/mkimage.py --dockerfile "$W/ctx/Dockerfile.bad" --tag a:b --out "$W/x.tar"
printf 'FROM scratch\nCOPY rootfs/ /\nRUN true\nENTRYPOINT ["/x"]\n' > "$W/ctx/Dockerfile.bad"
refuses "mkimage: refuses RUN" env SOURCE_DATE_EPOCH=1 "$PY" deploy/nitro/mkimage.py --dockerfile "$W/ctx/Dockerfile.bad" --tag a:b --out "$W/x.tar"
refuses "mkimage: refuses to run without SOURCE_DATE_EPOCH" env -u SOURCE_DATE_EPOCH "$PY" deploy/nitro/mkimage.py --dockerfile "$W/ctx/Dockerfile" --tag a:b --out "$W/x.tar"

# --- mkcpio.py ----------------------------------------------------------------------------
SOURCE_DATE_EPOCH=1700000000 "$PY" deploy/snp/mkcpio.py "$W/ctx/rootfs" "$W/c1.cpio" --node dev/console:c:5:1:0600
touch "$W/ctx/rootfs/sigil-enclave"
SOURCE_DATE_EPOCH=1700000000 "$PY" deploy/snp/mkcpio.py "$W/ctx/rootfs" "$W/c2.cpio" --node dev/console:c:5:1:0600
if cmp -s "$W/c1.cpio" "$W/c2.cpio"; then ok "mkcpio: same tree -> same initrd bytes"; else bad "mkcpio: same tree -> same initrd bytes"; fi
if command -v cpio >/dev/null; then
  listing="$(cpio -itv < "$W/c1.cpio" 2>/dev/null)"
  if grep -q '^crw------- .* 5, *1 .* dev/console$' <<<"$listing" && grep -q '^-rwxr-xr-x .* sigil-enclave$' <<<"$listing" \
     && [ "$(cpio -i --to-stdout sigil-enclave < "$W/c1.cpio" 2>/dev/null)" = binary ]; then
    ok "mkcpio: GNU cpio reads it back (device node, modes, contents)"
  else bad "mkcpio: GNU cpio reads it back" "$listing"; fi
else
  skip "mkcpio: read back with GNU cpio (cpio not installed)"
fi

# --- systemd units ------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null && [ -d /lib/systemd/system ]; then
  R="$W/sdroot"
  mkdir -p "$R/usr/local/bin" "$R/usr/bin" "$R/opt/sigil" "$R/etc/systemd/system" "$R/etc/sigil" "$R/usr/lib/systemd" "$R/sbin"
  for f in usr/local/bin/sigil-host usr/bin/vsock-proxy opt/sigil/sigil-enclave-supervise.sh opt/sigil/run-guest.sh sbin/modprobe; do
    printf '#!/bin/sh\n' > "$R/$f"; chmod +x "$R/$f"   # stand-ins: the real ones are not on this machine
  done
  printf '[Unit]\nDescription=stand-in for the aws-nitro-enclaves-cli unit\n[Service]\nType=oneshot\nExecStart=/bin/true\n' \
    > "$R/etc/systemd/system/nitro-enclaves-allocator.service"
  cp -a /lib/systemd/system "$R/usr/lib/systemd/"
  for kind in nitro snp; do
    rm -f "$R"/etc/systemd/system/sigil-*.service
    cp deploy/$kind/systemd/*.service "$R/etc/systemd/system/"
    units="$(cd deploy/$kind/systemd && echo *.service)"
    # shellcheck disable=SC2086
    out="$(cd "$R/etc/systemd/system" && systemd-analyze verify --root="$R" --man=no --generators=no $units 2>&1)"
    if [ $? -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: $kind units ($units)"; else bad "systemd-analyze verify: $kind units" "$out"; fi
  done
else
  skip "systemd-analyze verify (systemd not installed)"
fi
for f in deploy/nitro/etc/allocator.yaml deploy/nitro/etc/sigil-vsock-proxy.yaml; do
  out="$("$PY" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f" 2>&1)" && ok "YAML parses: $f" || {
    if grep -q "No module named 'yaml'" <<<"$out"; then skip "YAML parses: $f (no PyYAML)"; else bad "YAML parses: $f" "$out"; fi; }
done

# --- Kubernetes manifests -----------------------------------------------------------------
KV="$(command -v kubernetes-validate || true)"
[ -n "$KV" ] || KV=target/deploy-venv/bin/kubernetes-validate
if [ ! -x "$KV" ] && [ -z "${SIGIL_DEPLOY_TEST_OFFLINE:-}" ]; then
  python3 -m venv target/deploy-venv >/dev/null && target/deploy-venv/bin/pip install --quiet --disable-pip-version-check \
    'kubernetes-validate==1.37.0' >/dev/null 2>&1 || true
fi
if command -v kubectl >/dev/null; then
  if kubectl kustomize deploy/k8s > "$W/k8s.yaml" 2>"$W/err"; then ok "kubectl kustomize deploy/k8s ($(grep -c '^kind:' "$W/k8s.yaml") objects)"; else bad "kubectl kustomize deploy/k8s" "$(cat "$W/err")"; fi
else
  skip "kubectl kustomize (kubectl not installed)"; cat deploy/k8s/{namespace,serviceaccount,configmap,statefulset,service,pdb,networkpolicy,ingress}.yaml > "$W/k8s.yaml"
fi
if [ -x "$KV" ]; then
  out="$("$KV" -k 1.33.0 --strict --quiet "$W/k8s.yaml" deploy/k8s/replicate-job.yaml 2>&1)"
  if [ $? -eq 0 ]; then ok "kubernetes-validate --strict (Kubernetes 1.33 schemas): rendered manifests and replicate-job.yaml"; else bad "kubernetes-validate --strict" "$out"; fi
else
  skip "kubernetes-validate (not installable here)"
fi
out="$(sed -e 's/^  name: sigil-replicate-to-sigil-3$/  name: sigil-replicate-to-sigil-7/' -e 's/^              value: sigil-0$/              value: sigil-1/' \
  -e 's/^              value: sigil-3$/              value: sigil-7/' deploy/k8s/replicate-job.yaml | grep -cE 'sigil-replicate-to-sigil-7$|value: sigil-1$|value: sigil-7$')"
[ "$out" = 3 ] && ok "replicate.sh's substitutions hit the Job's name, source and target" || bad "replicate.sh substitutions" "matched $out of 3"

# --- shell scripts ------------------------------------------------------------------------
scripts="$(find deploy -name '*.sh' | sort)"
for s in $scripts; do check "bash -n $s" bash -n "$s"; done
if command -v shellcheck >/dev/null; then
  # shellcheck disable=SC2086
  check "shellcheck -S warning deploy/**/*.sh" shellcheck -S warning $scripts
else
  skip "shellcheck (not installed)"
fi

echo
echo "deploy: $passed passed, $failed failed, $skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
