#!/usr/bin/env python3
"""Write a directory as an initramfs (cpio "newc"), deterministically.

    mkcpio.py ROOT OUT.cpio [--node PATH:c|b:MAJOR:MINOR:MODE]...

Entries are sorted by name; every entry has mtime SOURCE_DATE_EPOCH, uid/gid 0, inode numbers
counted from 1, device numbers 0; modes are taken from the staged files. --node adds a device
node (e.g. dev/console:c:5:1:0600) without needing mknod or root. Regular files, directories
and symlinks only. Uncompressed: the kernel takes it as is, and there is no compressor version
to pin.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys


def fail(msg: str) -> None:
    print(f"mkcpio.py: {msg}", file=sys.stderr)
    sys.exit(2)


def header(ino: int, mode: int, nlink: int, mtime: int, size: int, rmaj: int, rmin: int, name: bytes) -> bytes:
    fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, rmaj, rmin, len(name) + 1, 0]
    h = b"070701" + b"".join(b"%08X" % f for f in fields) + name + b"\0"
    return h + b"\0" * (-len(h) % 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("out")
    ap.add_argument("--node", action="append", default=[], help="PATH:c|b:MAJOR:MINOR:MODE (octal)")
    args = ap.parse_args()
    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not sde.isdigit():
        fail("SOURCE_DATE_EPOCH must be set")
    mtime = int(sde)

    entries: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(args.root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, args.root)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                entries[rel] = ("dir", stat.S_IFDIR | stat.S_IMODE(st.st_mode), b"")
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    entries[rel] = ("file", stat.S_IFREG | stat.S_IMODE(st.st_mode), f.read())
            elif stat.S_ISLNK(st.st_mode):
                entries[rel] = ("link", stat.S_IFLNK | 0o777, os.readlink(full).encode())
            else:
                fail(f"{full}: unsupported file type")
    for spec in args.node:
        try:
            path, kind, major, minor, mode = spec.split(":")
            fmt = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}[kind]
            entries[path.strip("/")] = ("node", fmt | int(mode, 8), b"", int(major), int(minor))
        except (ValueError, KeyError):
            fail(f"--node {spec!r}: expected PATH:c|b:MAJOR:MINOR:MODE")
        parent = os.path.dirname(path.strip("/"))
        if parent and parent not in entries:
            fail(f"--node {spec!r}: directory {parent} is not in {args.root}")

    out = bytearray()
    for ino, rel in enumerate(sorted(entries, key=lambda p: p.encode()), start=1):
        e = entries[rel]
        kind, mode, data = e[0], e[1], e[2]
        rmaj, rmin = (e[3], e[4]) if kind == "node" else (0, 0)
        out += header(ino, mode, 2 if kind == "dir" else 1, mtime, len(data), rmaj, rmin, rel.encode())
        out += data + b"\0" * (-len(data) % 4)
    out += header(0, 0, 1, 0, 0, 0, 0, b"TRAILER!!!")
    with open(args.out, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
