"""Lay one conda package out as layer entries straight from its archive: no extraction, no staging prefix.

The reference path extracts every package into the cache (a file per member), installs it into a staging prefix,
lets conda-pack walk that prefix and then reads every file a second time to compress it; on a cold build of a large
environment the extraction, install and pack phases took as long as compressing. Here one pass over the package's
archive (in a worker process) checks each member as extraction does, writes the payload once into a spool file
(sequential writes, one file per package), rewrites prefix placeholders in memory, and returns the package's entries
exactly as install + conda-pack make them, its conda-meta record included. The compressor reads the contents from
the spool.

Only "plain" packages take this path: a modern ``info/paths.json`` that every member agrees with; regular files and
relative links; no directory entries, hard links, duplicate members or paths beneath one of the package's links;
nothing conda-pack's walk leaves out; no entry point that shadows a file. Anything else (and any problem at all,
hostile or not) returns None, and the package goes through extract → install → conda-pack, which stays the
reference and gives the exact error. ``tests/test_stream.py`` compares both paths on every real package.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..conda.install import (
    check_record_names,
    entry_point_record,
    entry_point_script,
    is_link_script,
    noarch_type,
    path_record,
    prefix_record,
    replace_binary_prefix,
    replace_text_prefix,
    site_packages_of,
    target_path,
)
from ..conda.package import (
    LINK_JSON_NAMES,
    checked_member_name,
    package_members,
    parse_index,
    parse_link_json,
    parse_paths,
)
from ..conda.records import PackageRecord
from ..errors import InstallError, PackageError
from ..oci.tar import TarEntry
from .pack import packed_record, path_parents, walk_skips

_INFO_READ = {"info/index.json", "info/paths.json", *LINK_JSON_NAMES}
_CHUNK = 1 << 20


@dataclass
class StreamedPackage:
    """A package as layer entries (rooted at the prefix, untrimmed, undated) and what the build reports of it."""

    dist: str
    entries: list[TarEntry]
    post_link: list[str] = field(default_factory=list)  # prefix-relative paths of scripts conda would run
    noarch_python: bool = False
    site_packages: str | None = None  # for the python package: where noarch: python files go


class _NotPlain(Exception):
    """The package needs the reference path (extract, install, conda-pack)."""


def open_slice(spool: str, offset: int, size: int) -> BinaryIO:
    """A file object positioned at a spooled file's contents (the layer writer reads ``size`` bytes)."""
    f = open(spool, "rb", buffering=0)  # noqa: SIM115 - the layer writer closes it
    f.seek(offset)
    return f


def stream_package(pkg_file: Path, record: PackageRecord, prefix: str, spool: Path,
                   python_version: str | None, site_packages: str | None) -> StreamedPackage | None:
    """``record``'s package (the verified file ``pkg_file``) laid out at ``prefix`` as layer entries, its contents
    spooled to ``spool``; None when it is not plain (see the module docstring).

    ``record`` is as conda-meta inside the image states it; ``python_version`` (X.Y) and ``site_packages`` are the
    environment's (noarch: python files go there)."""
    try:
        with open(spool, "w+b") as out:
            return _Streamer(record, prefix, out, str(spool)).run(pkg_file, python_version, site_packages)
    except (_NotPlain, PackageError, InstallError, ValueError, UnicodeError, RecursionError):
        return None


class _Streamer:
    def __init__(self, record: PackageRecord, prefix: str, out: BinaryIO, spool: str):
        self.record = record
        self.prefix = prefix
        self.arcroot = prefix.strip("/")
        self.out = out
        self.spool = spool
        self.info: dict[str, bytes] = {}
        self.files: dict[str, tuple[int, int, bool, str]] = {}  # path -> (offset, size, executable, sha256)
        self.links: dict[str, str] = {}
        self.dirs: set[str] = set()
        self.end = 0

    def run(self, pkg_file: Path, python_version: str | None, site_packages: str | None) -> StreamedPackage:
        record = self.record
        check_record_names(record)
        for where, tar, m in package_members(pkg_file, record.fn):
            rel = checked_member_name(m, where)
            if rel in self.files or rel in self.links or rel in self.info:
                raise _NotPlain("a member appears twice")
            if m.isreg():
                f = tar.extractfile(m)
                assert f is not None
                if rel.startswith("info/"):
                    if rel in _INFO_READ:
                        self.info[rel] = f.read()
                    continue
                self.files[rel] = self._spool(f, m.size, bool(m.mode & 0o111))
            elif m.issym():
                self.links[rel] = _relative_link(rel, m.linkname)
            elif m.isdir():
                self.dirs.add(rel)
            else:
                raise _NotPlain("a hard link or special file")
        names = set(self.files) | set(self.links)
        if names & self.dirs or any(p in names for n in names | self.dirs for p in path_parents(n)):
            raise _NotPlain("a member beneath a file or link")
        if "info/paths.json" not in self.info:
            raise _NotPlain("no info/paths.json")
        dist = record.dist_name
        index = parse_index(self._json("info/index.json"), dist)
        link_json = parse_link_json(self._json, dist) or {}
        noarch_section = link_json.get("noarch") if isinstance(link_json.get("noarch"), dict) else {}
        noarch = noarch_type(record, index, noarch_section, python_version)
        if noarch == "python" and record.noarch != "python":
            raise _NotPlain("noarch: python by its metadata only")
        return self._lay_out(index, parse_paths(self._json("info/paths.json"), dist), noarch, noarch_section,
                             python_version, site_packages)

    def _json(self, rel: str) -> Any:
        data = self.info.get(rel)
        return None if data is None else json.loads(data)

    def _spool(self, f: BinaryIO, size: int, executable: bool) -> tuple[int, int, bool, str]:
        offset, h, left = self.end, hashlib.sha256(), size
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise _NotPlain("a member shorter than its header")
            h.update(chunk)
            self.out.write(chunk)
            left -= len(chunk)
        self.end += size
        return offset, size, executable, h.hexdigest()

    def _lay_out(self, index: dict, paths: list, noarch: str | None, noarch_section: dict,
                 python_version: str | None, site_packages: str | None) -> StreamedPackage:
        record, root = self.record, self.arcroot + "/"
        dist = record.dist_name
        entries: list[TarEntry] = []
        paths_data: list[dict[str, Any]] = []
        targets: set[str] = set()
        post: list[str] = []
        for entry in paths:
            target = target_path(entry.path, noarch, python_version, site_packages)
            if entry.path_type == "directory" or entry.path.startswith("info/") or target in targets \
                    or walk_skips(target.split("/", 1)[0]):
                raise _NotPlain(f"{target}: not a plain path")
            targets.add(target)
            pd = path_record(entry, target)
            if entry.path_type == "softlink":
                link = self.links.get(entry.path)
                lexical = posixpath.normpath(posixpath.join(posixpath.dirname(target), link or ""))
                if link is None or lexical == ".." or lexical.startswith("../"):
                    raise _NotPlain(f"{target}: not a link inside the prefix")
                entries.append(TarEntry(root + target, "symlink", 0o777, linkname=link))
            else:
                spooled = self.files.get(entry.path)
                if spooled is None:
                    raise _NotPlain(f"{target}: not a file in the archive")
                offset, size, executable, sha = spooled
                if (entry.size is not None and entry.size != size) or (entry.sha256 is not None
                                                                       and entry.sha256.lower() != sha):
                    raise _NotPlain(f"{target}: not what info/paths.json says")
                mode = 0o755 if executable else 0o644
                if entry.prefix_placeholder:
                    self.out.flush()
                    data = os.pread(self.out.fileno(), size, offset) if size else b""
                    mode_name = entry.file_mode or "text"
                    rewrite = replace_binary_prefix if mode_name == "binary" else replace_text_prefix
                    data = rewrite(data, entry.prefix_placeholder, self.prefix)  # ValueError: not plain
                    pd.update(prefix_placeholder=entry.prefix_placeholder, file_mode=mode_name,
                              sha256_in_prefix=hashlib.sha256(data).hexdigest())
                    offset, size = self.end, len(data)
                    self.out.write(data)
                    self.end += size
                entries.append(TarEntry(root + target, "file", mode, size,
                                        opener=functools.partial(open_slice, self.spool, offset, size)))
            paths_data.append(pd)
            if is_link_script(target):
                post.append(target)
        if noarch == "python":
            eps = noarch_section.get("entry_points")
            if not isinstance(eps if eps is not None else [], list):
                raise _NotPlain("entry_points is not a list")
            for ep in eps or []:
                target, data = entry_point_script(dist, ep, self.prefix, python_version)
                if target in targets:
                    raise _NotPlain(f"{target}: an entry point over a file")
                targets.add(target)
                entries.append(TarEntry(root + target, "file", 0o755, len(data), data=data))
                paths_data.append(entry_point_record(target, data))
        if any(p in targets for t in targets for p in path_parents(t)):
            raise _NotPlain("a path beneath another path of the package")
        doc = prefix_record(record, Path(), index, sorted(targets), paths_data, None)
        json.dumps(doc, ensure_ascii=False).encode()  # UnicodeError as writing conda_meta_json's bytes: not plain
        meta = packed_record(doc)
        entries.append(TarEntry(f"{root}conda-meta/{dist}.json", "file", 0o644, len(meta), data=meta))
        sp = site_packages_of(record, index, python_version) if record.name == "python" and python_version else None
        return StreamedPackage(dist=dist, entries=entries, post_link=sorted(post), noarch_python=noarch == "python",
                               site_packages=sp)


def _relative_link(rel: str, target: str) -> str:
    """A link member's target, checked as extraction checks it (relative, inside the package)."""
    if not target or "\0" in target or target.startswith("/"):
        raise _NotPlain(f"{rel}: an empty or absolute link")
    target.encode("utf-8")  # UnicodeError: not plain
    # leading ".." only, then plain names: with no link among a link's parents (checked by the caller), where it
    # leads is then where it seems to lead, and a lexical check is as good as extraction's real-path check
    names = target.split("/")
    while names and names[0] == "..":
        names.pop(0)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if any(n in ("", ".", "..") for n in names) or resolved == ".." or resolved.startswith("../"):
        raise _NotPlain(f"{rel}: a link that is not plainly inside the package")
    return target
