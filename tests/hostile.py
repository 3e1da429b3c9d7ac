"""A corpus of hostile conda packages, and an arena that notices any write outside the cache entries a build may make.

Every case is a function ``(root) -> HostileCase``: ``root`` is the test's arena, so members can aim at its canary
files by absolute path. Each case is a real package file (``.tar.bz2`` or ``.conda``) named ``evil-<case>``; the
channel made by :func:`make_channel` holds it next to a good package (``okpkg``) and real repodata for both.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import zstandard
from pkgbuilder import Symlink, build_package, read_index_json

Member = Union[tarfile.TarInfo, "tuple[tarfile.TarInfo, bytes]"]
MTIME = 1700000000


@dataclass
class HostileCase:
    fn: str  # file name in the channel
    data: bytes
    index: dict  # its repodata record (without sha256/size/md5)
    message: str  # regex the one-line error must match (after "oci-conda: error: ")
    env: dict = field(default_factory=dict)  # extra environment for the build
    extra: list = field(default_factory=list)  # more (fn, bytes, index) packages the case needs
    extracts: bool = False  # refused after a clean extraction (at install): its verified cache entry may stay


def ti(name: str, type_: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type, t.linkname, t.mode, t.mtime = type_, linkname, mode, MTIME
    return t


def index_json(name: str, depends: Iterable[str] = ()) -> dict:
    return {"name": name, "version": "1", "build": "0", "build_number": 0, "depends": list(depends),
            "subdir": "linux-64", "timestamp": MTIME * 1000, "license": "MIT"}


def tar_bytes(members: list[Member], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for m in members:
            if isinstance(m, tuple):
                t, data = m
                t.size = len(data)
                tar.addfile(t, io.BytesIO(data))
            else:
                tar.addfile(m)
    return buf.getvalue()


def info_members(index: dict, paths: list[dict] | None = None) -> list[Member]:
    out: list[Member] = [(ti("info/index.json"), json.dumps(index, sort_keys=True).encode())]
    if paths is not None:
        out.append((ti("info/paths.json"), json.dumps({"paths": paths, "paths_version": 1}).encode()))
    return out


def tar_bz2(index: dict, members: list[Member], paths: list[dict] | None = None) -> bytes:
    return bz2.compress(tar_bytes(info_members(index, paths) + members), 1)


def conda_zip(zip_members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some cases
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in zip_members:
                zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                zi.external_attr = 0o644 << 16
                zf.writestr(zi, data)
    return buf.getvalue()


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data)


def conda_parts(index: dict, members: list[Member], paths: list[dict] | None = None) -> dict[str, bytes]:
    stem = f"{index['name']}-{index['version']}-{index['build']}"
    return {
        "metadata.json": b'{"conda_pkg_format_version": 2}',
        f"info-{stem}.tar.zst": zst(tar_bytes(info_members(index, paths))),
        f"pkg-{stem}.tar.zst": zst(tar_bytes(members)),
    }


def zero_bomb_tar_zst(name: str, size: int) -> bytes:
    """A tar stream holding one file of ``size`` zero bytes, zstd-compressed without ever holding it in memory."""
    t = ti(name)
    t.size = size
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=False)
    out = io.BytesIO()
    with cctx.stream_writer(out, closefd=False) as w:
        w.write(t.tobuf(tarfile.GNU_FORMAT))
        chunk = bytes(1 << 20)
        left = size
        while left:
            n = min(left, len(chunk))
            w.write(chunk[:n])
            left -= n
        w.write(bytes((-size) % 512 + 1024))
    return out.getvalue()


def _plain(name: str, fmt: str, members: list[Member], message: str, paths: list[dict] | None = None,
           depends: Iterable[str] = (), **kw) -> HostileCase:
    idx = index_json(name, depends)
    if fmt == "tar.bz2":
        fn = f"{name}-1-0.tar.bz2"
        data = tar_bz2(idx, members, paths)
    else:
        fn = f"{name}-1-0.conda"
        data = conda_zip(list(conda_parts(idx, members, paths).items()))
    return HostileCase(fn, data, idx, message.replace("FN", re.escape(fn)), **kw)


def _paths_case(name: str, damage: Callable[[dict], None], message: str) -> HostileCase:
    """A package made by the real builder whose info/paths.json was then edited to disagree with the payload."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        files = {"lib/libok.so": b"\x7fELF" + bytes(100), "share/doc": "docs\n"}
        good = build_package(Path(d), name, "1", files=files)
        paths = json.loads(_conda_member(good, "info/paths.json"))
        for p in paths["paths"]:
            damage(p)
        if name.endswith("missing"):
            paths["paths"].append({"_path": "lib/ghost.so", "path_type": "hardlink", "size_in_bytes": 3,
                                   "sha256": hashlib.sha256(b"boo").hexdigest()})
        bad = build_package(Path(d) / "bad", name, "1", files=files,
                            extra_info={"info/paths.json": json.dumps(paths, indent=2, sort_keys=True) + "\n"})
        data = bad.read_bytes()
        idx = read_index_json(bad)
    fn = f"{name}-1-0.conda"
    return HostileCase(fn, data, idx, message.replace("FN", re.escape(fn)))


def _conda_member(pkg: Path, member: str) -> bytes:
    with zipfile.ZipFile(pkg) as zf:
        info = next(n for n in zf.namelist() if n.startswith("info-"))
        raw = zstandard.ZstdDecompressor().decompress(zf.read(info), max_output_size=1 << 26)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


def _zip_case(name: str, edit: Callable[[dict[str, bytes], str], list[tuple[str, bytes]]], message: str) -> HostileCase:
    idx = index_json(name)
    parts = conda_parts(idx, [(ti("lib/a.txt"), b"a\n")])
    fn = f"{name}-1-0.conda"
    return HostileCase(fn, conda_zip(edit(parts, f"{name}-1-0")), idx, message.replace("FN", re.escape(fn)))


def cases(root: Path) -> dict[str, Callable[[], HostileCase]]:
    """Every case, by id. ``root`` is the arena (canaries at ``root/canary`` etc.)."""
    S, L = tarfile.SYMTYPE, tarfile.LNKTYPE
    bad_name = b"lib/caf\xe9\xff.so".decode("utf-8", "surrogateescape")
    c: dict[str, Callable[[], HostileCase]] = {
        # names that leave the package
        "dotdot": lambda: _plain("evil-dotdot", "tar.bz2", [(ti("../canary"), b"pwned")],
                                 r"^FN: member '\.\./canary' points outside the package"),
        "dotdot-deep": lambda: _plain("evil-dotdot-deep", "conda", [(ti("lib/../../../../canary"), b"pwned")],
                                      r"^FN:pkg-.*: member 'lib/\.\./\.\./\.\./\.\./canary' points outside"),
        "absolute": lambda: _plain("evil-absolute", "tar.bz2", [(ti(f"{root}/abs-canary"), b"pwned")],
                                   rf"^FN: member '{re.escape(str(root))}/abs-canary' has an absolute path"),
        # symlinks out, and writes through links
        "symlink-absolute": lambda: _plain("evil-symlink-absolute", "conda", [ti("etc/passwd", S, "/etc/passwd")],
                                           r"^FN:pkg-.*: symlink 'etc/passwd' points to absolute path '/etc/passwd'"),
        "symlink-dotdot": lambda: _plain("evil-symlink-dotdot", "tar.bz2", [ti("lib/up", S, "../../canary")],
                                         r"^FN: symlink 'lib/up' -> '\.\./\.\./canary' points outside"),
        "symlink-chain": lambda: _plain("evil-symlink-chain", "tar.bz2", [
            ti("a/b", S, ".."), ti("a/b/c", S, ".."), (ti("a/b/c/canary"), b"pwned")],
            r"^FN: symlink 'a/b/c' -> '\.\.' points outside"),
        "write-through-link": lambda: _plain("evil-write-through-link", "conda", [
            ti("d", S, "."), (ti("d/../../canary"), b"pwned")], r"^FN:pkg-.*: member 'd/\.\./\.\./canary' points outside"),
        # each link lies inside when it is made; together they lead two levels up, then a write goes through them
        "symlink-relink-escape": lambda: _plain("evil-symlink-relink-escape", "tar.bz2", [
            ti("w", S, "u/.."), ti("u", S, "v/.."), ti("v", S, "."), (ti("w/evil/x"), b"pwned")],
            r"^FN: member 'w/evil/x' is written through a link leading outside the package"),
        "hardlink-dotdot": lambda: _plain("evil-hardlink-dotdot", "tar.bz2", [ti("lib/h", L, "../canary")],
                                          r"^FN: member '\.\./canary' points outside"),
        "hardlink-absolute": lambda: _plain("evil-hardlink-absolute", "conda", [ti("lib/h", L, f"{root}/canary")],
                                            r"^FN:pkg-.*: member '/.*/canary' has an absolute path"),
        "hardlink-to-symlink": lambda: _plain("evil-hardlink-to-symlink", "tar.bz2", [
            ti("lib/s", S, "x"), ti("lib/h", L, "lib/s")], r"^FN: hardlink 'lib/h' -> 'lib/s' does not name a file"),
        # special files
        "chardev": lambda: _plain("evil-chardev", "tar.bz2", [ti("dev/null", tarfile.CHRTYPE)],
                                  r"^FN: member 'dev/null' is a character device"),
        "blockdev": lambda: _plain("evil-blockdev", "conda", [ti("dev/sda", tarfile.BLKTYPE)],
                                   r"^FN:pkg-.*: member 'dev/sda' is a block device"),
        "fifo": lambda: _plain("evil-fifo", "tar.bz2", [ti("run/fifo", tarfile.FIFOTYPE)],
                               r"^FN: member 'run/fifo' is a FIFO"),
        # tar has no socket type; GNU tar skips sockets, a made-up type must not become a file either
        "socket-like-type": lambda: _plain("evil-socket-like-type", "tar.bz2", [ti("run/sock", b"Z")],
                                           r"^FN: member 'run/sock' is a tar entry of type"),
        # collisions between types
        "file-then-dir": lambda: _plain("evil-file-then-dir", "tar.bz2", [
            (ti("lib/x"), b"f"), ti("lib/x", tarfile.DIRTYPE, mode=0o755)],
            r"^FN: directory member 'lib/x' collides with a file or link"),
        "dir-then-file": lambda: _plain("evil-dir-then-file", "conda", [
            ti("share/x", tarfile.DIRTYPE, mode=0o755), (ti("share/x"), b"f")],
            r"^FN:pkg-.*: member 'share/x' would replace a directory"),
        "file-as-parent": lambda: _plain("evil-file-as-parent", "tar.bz2", [(ti("etc"), b"f"), (ti("etc/conf"), b"c")],
                                         r"^FN: member 'etc/conf' needs 'etc' to be a directory"),
        "symlink-then-dir": lambda: _plain("evil-symlink-then-dir", "tar.bz2", [
            ti("opt", S, "lib"), ti("opt", tarfile.DIRTYPE, mode=0o755)],
            r"^FN: directory member 'opt' collides with a file or link"),
        # names that are not UTF-8
        "name-not-utf8": lambda: _plain("evil-name-not-utf8", "tar.bz2", [(ti(bad_name), b"x")],
                                        r"^FN: member 'lib/caf.*\.so' has a name that is not valid UTF-8"),
        "link-target-not-utf8": lambda: _plain("evil-link-target-not-utf8", "conda", [ti("lib/l", S, bad_name[4:])],
                                               r"^FN:pkg-.*: symlink 'lib/l' has a target that is not valid UTF-8"),
        # paths.json against the archive
        "paths-missing-file": lambda: _paths_case(
            "evil-paths-missing", lambda p: None,
            r"^FN: member 'lib/ghost\.so' is listed in info/paths\.json but is not a file in the archive"),
        "paths-wrong-sha256": lambda: _paths_case(
            "evil-paths-sha", lambda p: p.update(sha256="0" * 64) if p["_path"] == "lib/libok.so" else None,
            r"^FN: member 'lib/libok\.so' has sha256 [0-9a-f]{64}, info/paths\.json says '0{64}'"),
        "paths-wrong-size": lambda: _paths_case(
            "evil-paths-size", lambda p: p.update(size_in_bytes=99) if p["_path"] == "share/doc" else None,
            r"^FN: member 'share/doc' has 5 bytes, info/paths\.json says 99"),
        # the .conda zip itself
        "zip-extra-member": lambda: _zip_case(
            "evil-zip-extra", lambda parts, stem: [*parts.items(), ("install.sh", b"rm -rf /\n")],
            r"^FN: unexpected zip member 'install\.sh'"),
        "zip-missing-pkg": lambda: _zip_case(
            "evil-zip-missing", lambda parts, stem: [(k, v) for k, v in parts.items() if not k.startswith("pkg-")],
            r"^FN: no pkg-\*\.tar\.zst member"),
        "zip-duplicate-member": lambda: _zip_case(
            "evil-zip-dup", lambda parts, stem: [*parts.items(), (f"pkg-{stem}.tar.zst", parts[f"pkg-{stem}.tar.zst"])],
            r"^FN: zip member 'pkg-evil-zip-dup-1-0\.tar\.zst' appears twice"),
        "zip-two-pkg-tarballs": lambda: _zip_case(
            "evil-zip-two", lambda parts, stem: [*parts.items(), ("pkg-other-1-0.tar.zst", parts[f"pkg-{stem}.tar.zst"])],
            r"^FN: two pkg members \('pkg-evil-zip-two-1-0\.tar\.zst', 'pkg-other-1-0\.tar\.zst'\)"),
        # decompression bombs
        "bomb-ratio": lambda: _bomb("evil-bomb-ratio", 300 << 20, {},
                                    r"^FN:pkg-.*: member 'lib/zeros' \(314572800 bytes\) unpacks to more than"),
        "bomb-absolute-cap": lambda: _plain(
            "evil-bomb-cap", "tar.bz2", [(ti("share/big"), os.urandom(1 << 16))],
            r"^FN: member 'share/big' \(65536 bytes\) unpacks to more than 50000 bytes",
            env={"OCI_CONDA_MAX_UNPACKED_SIZE": "50000"}),
    }
    c["relink-across-packages"] = lambda: _across_packages()
    c.update(trust_cases())
    return c


# ---------------------------------------------------------------------------------------------------------------
# names and metadata a package may not ship, placeholders, entry points, CEP-17 (issue 12)


def _built(name: str, message: str, *, extra: list | None = None, index_extra: dict | None = None,
           paths_edit: Callable[[list[dict]], None] | None = None, extracts: bool = True, **kw) -> HostileCase:
    """A package made by the real builder, optionally with extra index.json keys or an edited info/paths.json."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        pkg = build_package(Path(d), name, "1", **kw)
        info = {}
        if index_extra:
            idx = read_index_json(pkg)
            idx.update(index_extra)
            info["info/index.json"] = json.dumps(idx, indent=2, sort_keys=True) + "\n"
        if paths_edit:
            paths = json.loads(_conda_member(pkg, "info/paths.json"))
            paths_edit(paths["paths"])
            info["info/paths.json"] = json.dumps(paths, indent=2, sort_keys=True) + "\n"
        if info:
            pkg = build_package(Path(d) / "edited", name, "1", extra_info=info, **kw)
        data, idx = pkg.read_bytes(), read_index_json(pkg)
        fn = pkg.name
    return HostileCase(fn, data, idx, message.replace("FN", re.escape(fn)), extra=extra or [],
                       extracts=extracts)


def python_package(site_packages: str | None = None, version: str = "3.11.0") -> tuple[str, bytes, dict]:
    """A minimal ``python`` package (optionally with CEP-17 ``python_site_packages_path``) as (fn, bytes, index)."""
    import tempfile

    xy = ".".join(version.split(".")[:2])
    with tempfile.TemporaryDirectory() as d:
        files = {"bin/python" + xy: "#!/bin/sh\n", f"lib/python{xy}/os.py": "# os\n"}
        pkg = build_package(Path(d), "python", version, files=files)
        if site_packages is not None:
            idx = read_index_json(pkg)
            idx["python_site_packages_path"] = site_packages
            pkg = build_package(Path(d) / "edited", "python", version, files=files,
                                extra_info={"info/index.json": json.dumps(idx, indent=2, sort_keys=True) + "\n"})
        return pkg.name, pkg.read_bytes(), read_index_json(pkg)


def _set(key: str, value: object, only: str | None = None) -> Callable[[list[dict]], None]:
    def edit(paths: list[dict]) -> None:
        for p in paths:
            if only is None or p["_path"] == only:
                if value is None:
                    p.pop(key, None)
                else:
                    p[key] = value
    return edit


def trust_cases() -> dict[str, Callable[[], HostileCase]]:
    """Issue 12's package-side classes: whiteouts, forged conda-meta, placeholders, names, CEP-17."""
    text = "prefix=" + "/opt/conda-bld/placeholder_placehold" + "\n"
    return {
        "whiteout-opaque-root": lambda: _plain("evil-wh-opq", "tar.bz2", [(ti(".wh..wh..opq"), b"")],
                                               r"^FN: member '\.wh\.\.wh\.\.opq' is an OCI whiteout name"),
        "whiteout-opaque-conda-meta": lambda: _plain(
            "evil-wh-meta", "conda", [(ti("conda-meta/.wh..wh..opq"), b"")],
            r"^FN:pkg-.*: member 'conda-meta/\.wh\.\.wh\.\.opq' is an OCI whiteout name"),
        "whiteout-file": lambda: _plain("evil-wh-file", "conda", [(ti("bin/.wh.python3.11"), b"")],
                                        r"^FN:pkg-.*: member 'bin/\.wh\.python3\.11' is an OCI whiteout name"),
        "whiteout-directory-in-paths": lambda: _built(
            "evil-wh-dir", r"^evil-wh-dir-1-0: info/paths\.json lists path 'lib/\.wh\.libc', which is an OCI whiteout",
            files={"lib/ok": "ok"}, paths_edit=lambda ps: ps.append({"_path": "lib/.wh.libc", "path_type": "directory"}),
            extracts=True),
        "forged-conda-meta": lambda: _plain(
            "evil-forge", "tar.bz2", [(ti("conda-meta/openssl-9.9.9-fake_0.json"), b'{"name": "openssl"}')],
            r"^FN: member 'conda-meta/openssl-9\.9\.9-fake_0\.json' is under conda-meta/, which only the installer"),
        "conda-meta-not-json": lambda: _plain("evil-meta-json", "conda", [(ti("conda-meta/x.json"), b"{not json")],
                                              r"^FN:pkg-.*: member 'conda-meta/x\.json' is under conda-meta/"),
        "placeholder-empty": lambda: _built(
            "evil-ph-empty", r"^evil-ph-empty-1-0: info/paths\.json: share/p\.txt: prefix placeholder '' is empty",
            files={"share/p.txt": bytes(1 << 20)},
            paths_edit=lambda ps: [p.update(prefix_placeholder="", file_mode="text") for p in ps]),
        "placeholder-one-char": lambda: _built(
            "evil-ph-short", r"^evil-ph-short-1-0: info/paths\.json: share/p\.txt: prefix placeholder '/' has 1 "
            r"characters", files={"share/p.txt": "/a/b/c\n" * 1000},
            paths_edit=lambda ps: [p.update(prefix_placeholder="/", file_mode="text") for p in ps]),
        "file-mode-without-placeholder": lambda: _built(
            "evil-mode-only", r"^evil-mode-only-1-0: info/paths\.json: share/p\.txt has a file_mode but no "
            r"prefix_placeholder", files={"share/p.txt": text}, paths_edit=_set("file_mode", "text")),
        "has-prefix-blank-line": lambda: _built(
            "evil-hp-blank", r"^evil-hp-blank-1-0: info/has_prefix line 2 is empty", legacy=True,
            files={"share/p.txt": "x\n"},
            extra_info={"info/has_prefix": "/opt/anaconda1anaconda2anaconda3 text share/p.txt\n\n"}),
        "entry-point-nul": lambda: _built(
            "evil-ep-nul", r"^evil-ep-nul-1-0: info/link\.json: entry point name 'a\\x00b' is not a plain file name",
            noarch="python", depends=["python"], entry_points=["a\0b = m:f"], files={"site-packages/m.py": ""},
            extra=[python_package()]),
        "entry-point-long": lambda: _built(
            "evil-ep-long", r"^evil-ep-long-1-0: info/link\.json: entry point name 'x{80}' is not a plain file name",
            noarch="python", depends=["python"], entry_points=["x" * 300 + " = m:f"], files={"site-packages/m.py": ""},
            extra=[python_package()]),
        "entry-point-whiteout": lambda: _built(
            "evil-ep-wh", r"^evil-ep-wh-1-0: info/link\.json: entry point bin/\.wh\.python3\.11 is an OCI whiteout",
            noarch="python", depends=["python"], entry_points=[".wh.python3.11 = m:f"],
            files={"site-packages/m.py": ""}, extra=[python_package()]),
        "slash-in-build": lambda: _built(
            "evil-build-slash", r"^evil-build-slash-1-0\.conda: package build '0/\.\./\.\./x' cannot be part of a file name",
            index_extra={"build": "0/../../x"}, files={"share/x": "x"}),
        "cep17-outside-prefix": lambda: _built(
            "evil-cep17", r"^python-3\.11\.0-0: python_site_packages_path '\.\./\.\./etc' leaves the prefix",
            noarch="python", depends=["python"], files={"site-packages/m.py": ""},
            extra=[python_package("../../etc")]),
        "cep17-absolute": lambda: _built(
            "evil-cep17-abs", r"^python-3\.11\.0-0: python_site_packages_path '/usr/lib/python3/dist-packages' must "
            r"be a relative path", noarch="python", depends=["python"], files={"site-packages/m.py": ""},
            extra=[python_package("/usr/lib/python3/dist-packages")]),
    }


def _bomb(name: str, size: int, env: dict, message: str) -> HostileCase:
    idx = index_json(name)
    stem = f"{name}-1-0"
    parts = conda_parts(idx, [])
    parts[f"pkg-{stem}.tar.zst"] = zero_bomb_tar_zst("lib/zeros", size)
    fn = f"{stem}.conda"
    return HostileCase(fn, conda_zip(list(parts.items())), idx, message.replace("FN", re.escape(fn)), env=env)


def _across_packages() -> HostileCase:
    """Four packages, each harmless alone: three links that only escape once all are installed, then a write."""
    import tempfile

    out = []
    chain = [("evil-x-a", [], {"w": Symlink("u/..")}), ("evil-x-b", ["evil-x-a"], {"u": Symlink("v/..")}),
             ("evil-x-c", ["evil-x-b"], {"v": Symlink(".")}), ("evil-x-d", ["evil-x-c"], {"w/evil/x": "pwned"})]
    with tempfile.TemporaryDirectory() as d:
        for name, deps, files in chain:
            p = build_package(Path(d), name, "1", depends=deps, files=files)
            out.append((p.name, p.read_bytes(), read_index_json(p)))
    fn, data, idx = out[-1]
    return HostileCase(fn, data, idx, r"^evil-x-d-1-0: w/evil/x: written through a link that leads outside the prefix",
                       extra=out[:-1], extracts=True)


def make_channel(chan: Path, case: HostileCase) -> None:
    """``chan/linux-64`` with the case's package(s) and ``okpkg``, and repodata listing them as conda-index would."""
    sub = chan / "linux-64"
    sub.mkdir(parents=True, exist_ok=True)
    (chan / "noarch").mkdir(exist_ok=True)
    ok = build_package(sub, "okpkg", "1", files={"share/okpkg/hello.txt": "hello\n", "lib/libok.so": b"\x7fELF\0"})
    entries = [(ok.name, ok.read_bytes(), read_index_json(ok)), *case.extra, (case.fn, case.data, case.index)]
    write_repodata(chan, entries)


def write_repodata(chan: Path, entries: list) -> None:
    """Put each (fn, bytes, index) under its subdir of ``chan`` and list them all in repodata, as conda-index would."""
    repodata: dict = {}
    for subdir in ("linux-64", "noarch"):
        (chan / subdir).mkdir(parents=True, exist_ok=True)
        repodata[subdir] = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}, "repodata_version": 1}
    for fn, data, idx in entries:
        subdir = "noarch" if idx.get("subdir") == "noarch" else "linux-64"
        (chan / subdir / fn).write_bytes(data)
        rec = {k: v for k, v in idx.items() if v is not None}
        rec.update(md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        repodata[subdir]["packages.conda" if fn.endswith(".conda") else "packages"][fn] = rec
    for subdir, doc in repodata.items():
        (chan / subdir / "repodata.json").write_text(json.dumps(doc, indent=1, sort_keys=True))


class Arena:
    """A test root with canary files around the cache, the temp dir and the work dir; ``changes()`` lists every path
    that appeared, vanished or changed outside the places a build may write (package cache entries, repodata, locks)."""

    ALLOWED = (r"cache/pkgs(/.*)?", r"cache/repodata(/.*)?", r"cache/extracted/\.[^/]+\.lock", r"cache/layers",
               r"cache/tmp",  # where builds spool package payload (emptied by the build)
               r"cache/blobs(/sha256)?", r"cache/extracted",
               r"cache/extracted/[0-9a-f]{64}-[^/]+(/.*)?")  # complete entries of packages that are not refused

    def __init__(self, root: Path):
        self.root = root
        self.cache = root / "cache"
        self.tmp = root / "tmp"
        self.work = root / "work"
        for d in (self.cache / "extracted", self.tmp, self.work):
            d.mkdir(parents=True, exist_ok=True)
        self.canaries = [root / "canary", self.cache / "canary", self.cache / "extracted" / "canary",
                         self.tmp / "canary", self.work / "canary"]
        for i, p in enumerate(self.canaries):
            p.write_text(f"canary {i}\n")
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, str]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                rel = str(p.relative_to(self.root))
                if p.is_symlink():
                    out[rel] = "link:" + os.readlink(p)
                elif p.is_file():
                    out[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
                else:
                    out[rel] = "dir"
        return out

    def changes(self) -> list[str]:
        after = self.snapshot()
        changed = sorted(k for k in set(after) | set(self.before) if after.get(k) != self.before.get(k))
        return [k for k in changed if not any(re.fullmatch(a, k) for a in self.ALLOWED)]

    def env(self, extra: dict | None = None) -> dict:
        return dict(os.environ, OCI_CONDA_CACHE=str(self.cache), TMPDIR=str(self.tmp), **(extra or {}))


# ---------------------------------------------------------------------------------------------------------------
# bounded runs: a bomb must be refused within a memory and time budget, not merely eventually


def run_bounded(args: list[str], *, mem: int, seconds: float, env: dict | None = None,
                cwd: str | None = None) -> "subprocess.CompletedProcess[str]":
    """``python -m oci_conda ARGS`` (or ``python -c CODE`` when ``args[0] == "-c"``) in a child whose address
    space is capped at ``mem`` bytes (``resource.setrlimit``) and which must finish within ``seconds``."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

    cmd = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", "oci_conda", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, env=env, cwd=cwd,
                          preexec_fn=limit, check=False)
