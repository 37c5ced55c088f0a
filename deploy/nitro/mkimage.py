#!/usr/bin/env python3
"""Write a container image for `nitro-cli build-enclave` deterministically, without a daemon.

    mkimage.py --dockerfile CONTEXT/Dockerfile --tag sigil-enclave:TAG --out IMAGE.tar [--layer-out ROOTFS.tar]

It implements the subset of the Dockerfile language that deploy/nitro/Dockerfile uses, and
refuses anything else:

    FROM scratch                 (no base image: nothing to pull, nothing to pin)
    COPY <dir>/ /                (the staged root filesystem, relative to the Dockerfile)
    ENV KEY=VALUE
    ENTRYPOINT ["exec", "form"]
    CMD ["exec", "form"]
    WORKDIR /path
    LABEL key="value"            (copied into the config)

Output: one uncompressed layer (a USTAR tar: names sorted, mtime SOURCE_DATE_EPOCH, uid/gid 0,
no user or group names, modes as staged), the OCI image config, an OCI manifest and index,
and the Docker `manifest.json`, packed into one tar with the same rules. The result is the
same layout `docker save` writes since Docker 25 (OCI layout plus manifest.json), so
`docker load -i IMAGE.tar` (any Docker version) and OCI tools (`skopeo copy oci-archive:…`)
read it. The same inputs always give the same bytes, hence the same image ID (the config's
digest) and, through `nitro-cli build-enclave`, the same PCRs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

ALLOWED = {"FROM", "COPY", "ENV", "ENTRYPOINT", "CMD", "WORKDIR", "LABEL"}


def fail(msg: str) -> "NoReturn":  # type: ignore[name-defined]
    print(f"mkimage.py: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_dockerfile(path: str) -> dict:
    """The restricted Dockerfile: one instruction per line, `#` comments, `\\` continuations."""
    text = open(path, encoding="utf-8").read()
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        lines.append(cur)
        cur = ""
    if cur:
        fail(f"{path}: dangling line continuation")
    spec = {"copy": None, "env": [], "entrypoint": None, "cmd": None, "workdir": None, "labels": {}}
    seen_from = False
    for line in lines:
        instr, _, arg = line.partition(" ")
        instr, arg = instr.upper(), arg.strip()
        if instr not in ALLOWED:
            fail(f"{path}: {instr} is not supported (FROM scratch, COPY dir/ /, ENV, ENTRYPOINT, CMD, WORKDIR, LABEL)")
        if instr == "FROM":
            if arg != "scratch" or seen_from:
                fail(f"{path}: only a single `FROM scratch` is supported")
            seen_from = True
            continue
        if not seen_from:
            fail(f"{path}: {instr} before FROM")
        if instr == "COPY":
            parts = arg.split()
            if len(parts) != 2 or parts[1] != "/" or not parts[0].endswith("/") or parts[0].startswith("--"):
                fail(f"{path}: only `COPY <dir>/ /` is supported, got `COPY {arg}`")
            if spec["copy"] is not None:
                fail(f"{path}: only one COPY is supported")
            spec["copy"] = os.path.join(os.path.dirname(os.path.abspath(path)), parts[0])
        elif instr == "ENV":
            key, eq, value = arg.partition("=")
            if not eq or not key or " " in key:
                fail(f"{path}: ENV must be KEY=VALUE")
            spec["env"].append(f"{key}={value}")
        elif instr in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(arg)
            except json.JSONDecodeError as e:
                fail(f"{path}: {instr} must be the JSON exec form: {e}")
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                fail(f"{path}: {instr} must be a JSON array of strings")
            spec[instr.lower()] = value
        elif instr == "WORKDIR":
            if not arg.startswith("/"):
                fail(f"{path}: WORKDIR must be absolute")
            spec["workdir"] = arg
        elif instr == "LABEL":
            key, eq, value = arg.partition("=")
            if not eq:
                fail(f"{path}: LABEL must be key=value")
            spec["labels"][key.strip()] = json.loads(value) if value.startswith('"') else value
    if spec["copy"] is None:
        fail(f"{path}: no COPY")
    if spec["entrypoint"] is None and spec["cmd"] is None:
        fail(f"{path}: no ENTRYPOINT or CMD")
    return spec


def _info(name: str, mtime: int, mode: int, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = mtime
    ti.mode = mode
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.type = kind
    ti.size = size
    return ti


def layer_tar(root: str, mtime: int) -> bytes:
    """The root filesystem as a USTAR tar, deterministic. Regular files and directories only."""
    if not os.path.isdir(root):
        fail(f"{root}: not a directory")
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            entries.append((os.path.relpath(full, root), full))
    entries.sort(key=lambda e: e[0].encode())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for rel, full in entries:
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                tar.addfile(_info(rel + "/", mtime, mode, tarfile.DIRTYPE))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    tar.addfile(_info(rel, mtime, mode, tarfile.REGTYPE, st.st_size), f)
            else:
                fail(f"{full}: only regular files and directories may be in the image")
    return buf.getvalue()


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(spec: dict, tag: str, mtime: int) -> tuple[bytes, bytes, dict]:
    layer = layer_tar(spec["copy"], mtime)
    created = _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    container_config = {}
    if spec["workdir"] is not None:
        container_config["WorkingDir"] = spec["workdir"]
    if spec["env"]:
        container_config["Env"] = spec["env"]
    if spec["entrypoint"] is not None:
        container_config["Entrypoint"] = spec["entrypoint"]
    if spec["cmd"] is not None:
        container_config["Cmd"] = spec["cmd"]
    if spec["labels"]:
        container_config["Labels"] = spec["labels"]
    config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256(layer)]},
        "history": [{"created": created, "created_by": "COPY rootfs/ / # deploy/nitro/mkimage.py"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + sha256(layer), "size": len(layer)}],
    })
    repo, _, ref = tag.rpartition(":")
    if not repo or not ref or "/" in ref:
        fail(f"--tag {tag!r}: expected NAME:TAG")
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + sha256(manifest),
            "size": len(manifest),
            "annotations": {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": ref},
        }],
    })
    docker_manifest = canonical([{
        "Config": "blobs/sha256/" + sha256(config),
        "RepoTags": [tag],
        "Layers": ["blobs/sha256/" + sha256(layer)],
    }])
    files = {
        "blobs/sha256/" + sha256(layer): layer,
        "blobs/sha256/" + sha256(config): config,
        "blobs/sha256/" + sha256(manifest): manifest,
        "index.json": index,
        "manifest.json": docker_manifest,
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in ("blobs/", "blobs/sha256/"):
            tar.addfile(_info(d, mtime, 0o755, tarfile.DIRTYPE))
        for name in sorted(files):
            data = files[name]
            tar.addfile(_info(name, mtime, 0o644, tarfile.REGTYPE, len(data)), io.BytesIO(data))
    ids = {"image_id": "sha256:" + sha256(config), "manifest_digest": "sha256:" + sha256(manifest), "layer_diff_id": "sha256:" + sha256(layer)}
    return out.getvalue(), layer, ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dockerfile", required=True)
    ap.add_argument("--tag", required=True, help="NAME:TAG recorded in the image (what `docker load` names it)")
    ap.add_argument("--out", required=True, help="the image tar to write")
    ap.add_argument("--layer-out", help="also write the root filesystem layer here")
    args = ap.parse_args()
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if not sde or not sde.isdigit():
        fail("SOURCE_DATE_EPOCH must be set (seconds since the epoch)")
    image, layer, ids = build(parse_dockerfile(args.dockerfile), args.tag, int(sde))
    with open(args.out, "wb") as f:
        f.write(image)
    if args.layer_out:
        with open(args.layer_out, "wb") as f:
            f.write(layer)
    print(json.dumps(ids, sort_keys=True))


if __name__ == "__main__":
    main()
