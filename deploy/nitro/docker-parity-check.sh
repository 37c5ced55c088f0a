#!/usr/bin/env bash
# Check that the image tar from build-image.sh is what Docker itself makes of the same recipe:
#   1. `docker load` accepts it, under its tag, with image ID = the config digest mkimage.py printed;
#   2. `docker build` of the rendered context (FROM scratch) gives the same files (names, modes,
#      owners, mtimes, contents) and the same Entrypoint/Cmd/Env/WorkingDir.
# What differs by design: the config's `created` time and the layer tar's encoding, which is
# why the reproducible path is build-image.sh and not `docker build`. nitro-cli builds the EIF
# from the files and the config, so both give the same PCRs (not checked here: no nitro-cli).
#
#   deploy/nitro/docker-parity-check.sh IMAGE_DIR        # the OUT_DIR of build-image.sh
#
# Needs a running Docker daemon (DOCKER_HOST as usual). Exits 0 on parity, 1 on a difference.
set -euo pipefail
DIR="${1:?usage: docker-parity-check.sh IMAGE_DIR}"
DIR="$(cd "$DIR" && pwd -P)"
PYTHON="${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"
docker info >/dev/null 2>&1 || { echo "docker-parity-check: no Docker daemon reachable" >&2; exit 2; }

TAG="$(tar -xOf "$DIR/sigil-enclave-image.tar" manifest.json | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["RepoTags"][0])')"
WANT_ID="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["image_id"])' "$DIR/image-ids.json")"
docker load -q -i "$DIR/sigil-enclave-image.tar" >/dev/null
GOT_ID="$(docker image inspect "$TAG" --format '{{.Id}}')"
[ "$GOT_ID" = "$WANT_ID" ] || { echo "docker load: image ID $GOT_ID, expected $WANT_ID" >&2; exit 1; }
echo "docker load: $TAG = $GOT_ID"

BUILT=sigil-enclave:docker-parity
W="$(mktemp -d)"
trap 'rm -rf "$W"; docker image rm -f "$BUILT" >/dev/null 2>&1 || true' EXIT
# The classic builder: what every Docker has; BuildKit would need SOURCE_DATE_EPOCH and
# rewrite-timestamp=true to keep the staged mtimes.
DOCKER_BUILDKIT=0 docker build -q -t "$BUILT" "$DIR/context" >/dev/null 2>"$W/build.log" \
  || { cat "$W/build.log" >&2; exit 1; }
docker save "$BUILT" -o "$W/built.tar"

"$PYTHON" - "$DIR/sigil-enclave-image.tar" "$W/built.tar" <<'PY'
import hashlib, io, json, sys, tarfile

def image(path):
    outer = tarfile.open(path)
    m = json.load(outer.extractfile("manifest.json"))[0]
    cfg = json.load(outer.extractfile(m["Config"]))["config"]
    layers = m["Layers"]
    assert len(layers) == 1, f"{path}: {len(layers)} layers"
    files = {}
    with tarfile.open(fileobj=io.BytesIO(outer.extractfile(layers[0]).read())) as t:
        for e in t:
            data = t.extractfile(e).read() if e.isfile() else b""
            files[e.name.rstrip("/")] = (e.type, oct(e.mode & 0o7777), e.uid, e.gid, e.mtime, e.size, hashlib.sha256(data).hexdigest())
    keep = {k: cfg.get(k) or None for k in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User")}
    return keep, files

(c1, f1), (c2, f2) = image(sys.argv[1]), image(sys.argv[2])
ok = True
if c1 != c2:
    ok = False
    print("config differs:\n  mkimage.py  " + json.dumps(c1) + "\n  docker build " + json.dumps(c2))
for name in sorted(set(f1) | set(f2)):
    if f1.get(name) != f2.get(name):
        ok = False
        print(f"{name}: mkimage.py {f1.get(name)} / docker build {f2.get(name)}")
if not ok:
    sys.exit(1)
print(f"docker build: same {len(f1)} entries (mode, owner, mtime, sha256) and same Entrypoint/Cmd/Env/WorkingDir/User")
PY
