"""Lay a solved package set out in a staging prefix exactly as conda would link it into ``target_prefix``.

The staging dir is only where the files are written: every prefix placeholder is replaced with the *target* prefix
(the path the image will use), so the staged tree can be copied verbatim into an image. Files are copied from the
extracted package dirs (never hard-linked: the cache is shared and must stay immutable), modes are set explicitly so
the result does not depend on the umask, and ``conda-meta/`` is written as conda writes it, so that conda, mamba and
conda-pack (which reads managed files back from ``link.source``) accept the prefix.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..credentials import strip_credentials
from ..errors import InstallError, PackageError
from ..payload_names import refused_payload_path
from .package import PathEntry, read_index, read_link_json, read_paths
from .records import PackageRecord

#: Linux's limit on the ``#!`` line (conda uses the same number).
MAX_SHEBANG_LENGTH = 127

# The shebang conda recognises: "#!", optional spaces, the executable (escaped spaces allowed), the rest of the line.
_SHEBANG_RE = re.compile(rb"^(#!(?:[ ]*)(/(?:\\ |[^ \n\r\t])*)(.*))$", re.MULTILINE)
_ENTRY_POINT_RE = re.compile(r"^\s*([^=\s]+)\s*=\s*([\w.]+)\s*:\s*([\w.]+)\s*$")

# conda's template for noarch: python entry points (conda/gateways/disk/create.py).
_ENTRY_POINT_TEMPLATE = """\
# -*- coding: utf-8 -*-
import re
import sys

from {module} import {import_name}

if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])
    sys.exit({func}())
"""

#: A prefix rewrite may make a file at most this much bigger: a factor of its size or a fixed slack, whichever is
#: larger, and never beyond the absolute cap. Real placeholders are 32-255 characters and real target prefixes
#: shorter, so real files shrink or barely grow; a hostile short placeholder would multiply the file instead.
MAX_REWRITE_FACTOR = 2
MAX_REWRITE_SLACK = 1 << 20
MAX_REWRITTEN_SIZE = 1 << 30
#: NAME_MAX: the longest file name (in bytes) a package may make the installer write (conda-meta records, entry points).
MAX_NAME_BYTES = 255

_LINK_TYPE = 1  # conda's LinkType.hardlink, what a default conda install records (conda-pack reads only link.source)


@dataclass
class InstallReport:
    """What happened that the caller may need to tell the user or act on."""

    warnings: list[str] = field(default_factory=list)
    #: prefix-relative paths of post-link / pre-unlink scripts that were NOT run
    post_link_scripts: list[str] = field(default_factory=list)
    #: dist name (``name-version-build``) -> sorted prefix-relative paths it owns (after clobbering)
    files_by_package: dict[str, list[str]] = field(default_factory=dict)
    #: prefix-relative path -> dist name of the package whose copy won, for paths claimed by several packages
    clobbered: dict[str, str] = field(default_factory=dict)
    #: where noarch: python site-packages went (None without python), and which packages were noarch: python
    site_packages: str | None = None
    noarch_python: set[str] = field(default_factory=set)
    #: with ``record_plain``: prefix-relative path -> the package file laid out there (not written to staging), by
    #: the path a record lists, and by where the file stands (they differ for a file written through a linked dir)
    sources: dict[str, str] = field(default_factory=dict)
    standing: dict[str, str] = field(default_factory=dict)


def install(
    items: Sequence[tuple[PackageRecord, Path]],
    staging: Path,
    target_prefix: str,
    *,
    progress: Callable[[PackageRecord], None] | None = None,
    requested_specs: Mapping[str, str] | None = None,
    history_time: int | None = None,
    hardlink: bool = False,
    specs_in_records: bool = True,
    environment: Sequence[PackageRecord] | None = None,
    site_packages: str | None = None,
    record_plain: bool = False,
) -> InstallReport:
    """Link ``items`` ((record, extracted dir), in dependency order) into ``staging`` as if it were ``target_prefix``.

    ``requested_specs`` maps package names to the spec the user asked for (recorded in conda-meta and history);
    ``history_time`` (seconds since the epoch) dates the history entry, default the newest package timestamp, so
    the output is the same bytes for the same input. ``hardlink``: files that need no prefix rewrite are hard
    links to the extracted package (as conda links them) instead of copies; only for a staging prefix that nothing
    writes into afterwards, since the package cache is shared. ``specs_in_records=False`` keeps the requested
    specs in ``conda-meta/history`` only, so each package's record is the same in every environment (layers of
    one package are then identical across images).

    ``environment``: all the records of the environment when ``items`` is only part of it (the layer memo installs
    just the packages whose layers it lacks): the python version and ``conda-meta/history`` come from it, and
    ``site_packages`` (the python package's, from an earlier install) places noarch: python files.

    ``record_plain``: a file that needs no rewrite is not written to ``staging`` but named in the report's
    ``sources`` (it stays the package's own file: the layer reads it from there). Every check runs as if it had been
    written: a later file, link or directory at its place sees it. Staging then holds directories, links, rewritten
    files and conda-meta only: on a slow file system creating and removing a link per file was a third of a build.
    """
    staging = Path(staging)
    if not target_prefix.startswith("/") or target_prefix != posixpath.normpath(target_prefix):
        raise InstallError(f"target prefix {target_prefix!r} must be a normalised absolute path")
    staging.mkdir(parents=True, exist_ok=True)
    os.chmod(staging, 0o755)
    linker = _Linker(staging, target_prefix, hardlink, record_plain)
    every = [(r, Path()) for r in environment] if environment is not None else items
    python_version = python_version_of(r for r, _ in every)
    report = InstallReport()
    owner: dict[str, str] = {}  # prefix path -> dist name
    metas: list[tuple[PackageRecord, Path, dict[str, Any], list[dict[str, Any]]]] = []

    for record, _ in items:
        check_record_names(record)
    if site_packages is None or any(r.name == "python" for r, _ in items):
        site_packages = _site_packages(items, python_version)
    report.site_packages = site_packages
    for record, pkg_dir in items:
        pkg_dir = Path(pkg_dir)
        dist = record.dist_name
        index = read_index(pkg_dir)
        link_json = read_link_json(pkg_dir) or {}
        noarch_section = link_json.get("noarch") if isinstance(link_json.get("noarch"), dict) else {}
        noarch = noarch_type(record, index, noarch_section, python_version)
        if noarch == "python":
            report.noarch_python.add(dist)

        def claim(target: str, is_dir: bool = False) -> None:
            """conda's clobber rule: the later package's copy wins; the earlier one no longer owns the path."""
            prev = owner.get(target)
            if prev is not None and prev != dist and not is_dir:
                report.warnings.append(f"{target}: installed by {prev} and {dist}; the copy from {dist} is kept")
                report.clobbered[target] = dist
                for *_, earlier in metas:
                    earlier[:] = [p for p in earlier if p["_path"] != target]
            owner[target] = dist

        paths_data: list[dict[str, Any]] = []
        for entry in read_paths(pkg_dir):
            target = target_path(entry.path, noarch, python_version, site_packages)
            claim(target, entry.path_type == "directory")
            try:
                paths_data.append(linker.link(dist, pkg_dir, entry, target))
            except OSError as e:  # e.g. a parent that is a dangling link, a read-only staging dir
                raise InstallError(f"{dist}: {target}: cannot be written: {e.strerror or e}") from None
            if is_link_script(target):
                report.post_link_scripts.append(target)

        if noarch == "python":
            eps = noarch_section.get("entry_points")
            eps = [] if eps is None else eps
            if not isinstance(eps, list):
                raise PackageError(f"{dist}: info/link.json: entry_points is not a list")
            for ep in eps:
                try:
                    target, pd = linker.entry_point(dist, ep, python_version)
                except OSError as e:
                    raise InstallError(f"{dist}: entry point {repr(ep)[:80]}: cannot be written: {e.strerror or e}") \
                        from None
                claim(target)
                paths_data.append(pd)
        metas.append((record, pkg_dir, index, paths_data))
        if progress is not None:
            progress(record)

    meta_dir = staging / "conda-meta"
    _mkdir(meta_dir)
    for record, pkg_dir, index, paths_data in metas:
        paths_data = list({p["_path"]: p for p in paths_data}.values())  # a path listed twice: the last one counts
        files = sorted(p["_path"] for p in paths_data)
        report.files_by_package[record.dist_name] = files
        requested = (requested_specs or {}).get(record.name) if specs_in_records else None
        doc = prefix_record(record, pkg_dir, index, files, paths_data, requested)
        _write_file(meta_dir / f"{record.dist_name}.json", conda_meta_json(doc), 0o644)

    when = history_time if history_time is not None else max((r.timestamp for r, _ in every), default=0) // 1000
    _write_file(meta_dir / "history", _history(every, requested_specs, when).encode(), 0o644)
    report.post_link_scripts.sort()
    report.sources, report.standing = linker.recorded_sources()
    return report


# ---------------------------------------------------------------------------------------------------------------


def python_version_of(records: Iterable[PackageRecord]) -> str | None:
    """``X.Y`` of the ``python`` package in the solution (it decides where noarch: python files go)."""
    for record in records:
        if record.name == "python":
            m = re.match(r"^(\d+)\.(\d+)", record.version)
            if not m:
                raise InstallError(f"{record.dist_name}: cannot read a python X.Y version from {record.version!r}")
            return f"{m.group(1)}.{m.group(2)}"
    return None


def check_record_names(record: PackageRecord) -> None:
    """The record's name, version and build make a file name (``conda-meta/<dist>.json``): refuse what cannot."""
    for what, value in (("name", record.name), ("version", record.version), ("build", record.build)):
        if not value or "/" in value or "\0" in value or value.startswith(".") or any(c in value for c in "\n\r"):
            raise InstallError(f"{record.fn}: package {what} {value!r} cannot be part of a file name")
    if len(f"{record.dist_name}.json".encode()) > MAX_NAME_BYTES:
        raise InstallError(f"{record.fn}: package name-version-build is longer than {MAX_NAME_BYTES - 5} bytes")


def _site_packages(items: Sequence[tuple[PackageRecord, Path]], python_version: str | None) -> str | None:
    """Where noarch: python ``site-packages/`` goes (:func:`site_packages_of` the python package's index)."""
    if python_version is None:
        return None
    for record, pkg_dir in items:
        if record.name == "python":
            return site_packages_of(record, read_index(Path(pkg_dir)), python_version)
    return f"lib/python{python_version}/site-packages"


def noarch_type(record: PackageRecord, index: Mapping[str, Any], noarch_section: Mapping[str, Any],
                python_version: str | None) -> str | None:
    """The package's noarch type as conda reads it (record, index.json, link.json): None, generic or python."""
    dist = record.dist_name
    noarch = record.noarch or index.get("noarch") or noarch_section.get("type")
    if noarch is True:
        noarch = "generic"
    if noarch not in (None, "generic", "python"):
        raise InstallError(f"{dist}: unsupported noarch type {noarch!r}")
    if noarch == "python" and python_version is None:
        raise InstallError(f"{dist}: noarch: python package but the solution has no 'python' package")
    return noarch


def site_packages_of(record: PackageRecord, index: Mapping[str, Any], python_version: str) -> str:
    """Where noarch: python ``site-packages/`` goes: CEP-17 ``python_site_packages_path`` of the python package
    (e.g. ``lib/python3.13t/site-packages`` for a free-threading build), else ``lib/pythonX.Y/site-packages``.
    The path must stay inside the prefix and be an ordinary relative path."""
    value = index.get("python_site_packages_path")
    if value is None:
        return f"lib/python{python_version}/site-packages"
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value \
            or any(ord(c) < 32 for c in value):
        raise InstallError(f"{record.dist_name}: python_site_packages_path {value!r} must be a relative path "
                           "inside the prefix")
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InstallError(f"{record.dist_name}: python_site_packages_path {value!r} leaves the prefix or is not "
                           "normalised (no '.', '..' or empty components)")
    why = refused_payload_path(value)
    if why is not None:
        raise InstallError(f"{record.dist_name}: python_site_packages_path {value!r} {why}")
    return value


def target_path(path: str, noarch: str | None, python_version: str | None, site_packages: str | None = None) -> str:
    if noarch == "python":
        if path.startswith("site-packages/"):
            return f"{site_packages or f'lib/python{python_version}/site-packages'}/{path[len('site-packages/'):]}"
        if path.startswith("python-scripts/"):
            return "bin/" + path[len("python-scripts/") :]
    return path


def is_link_script(target: str) -> bool:
    """A post-link / pre-unlink / pre-link script: conda would run it; an image build never does."""
    return bool(re.match(r"^bin/\.[^/]+-(post-link|pre-unlink|pre-link)\.sh$", target))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mkdir(d: Path) -> None:
    if not d.is_dir():
        d.mkdir()
    os.chmod(d, 0o755)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def conda_meta_json(doc: Any) -> bytes:
    """A conda-meta record's bytes as conda writes them (indent 2, sorted keys, UTF-8)."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def rewrite_limit(size: int) -> int:
    """The most bytes a prefix rewrite may turn a file of ``size`` bytes into."""
    return min(MAX_REWRITTEN_SIZE, max(size * MAX_REWRITE_FACTOR, size + MAX_REWRITE_SLACK))


def replace_text_prefix(data: bytes, placeholder: str, target_prefix: str) -> bytes:
    """conda's text-mode rewrite: every occurrence, spaces escaped in the shebang, over-long shebangs via env.

    The output size is computed before anything is built: over :func:`rewrite_limit` raises ValueError, so a
    hostile placeholder cannot make the rewrite allocate gigabytes. An empty placeholder is a ValueError too.
    """
    ph = placeholder.encode()
    if not ph:
        raise ValueError("empty placeholder")
    new_len = len(data) + data.count(ph) * (len(target_prefix.encode()) + target_prefix.count(" ") - len(ph))
    if new_len > rewrite_limit(len(data)):
        raise ValueError(f"the rewrite would grow the file from {len(data)} to {new_len} bytes "
                         f"(at most {rewrite_limit(len(data))})")
    nl = data.find(b"\n")
    if nl > -1:
        first, rest = data[:nl], data[nl:]
        if b"#!" + ph in first:
            first = first.replace(b"#!" + ph, b"#!" + target_prefix.replace(" ", "\\ ").encode())
            data = first + rest
    data = data.replace(ph, target_prefix.encode())
    m = _SHEBANG_RE.match(data)
    if m:
        whole, executable, options = m.groups()
        exe_dir, _, exe_name = executable.decode("utf-8", "surrogateescape").rpartition("/")
        if len(whole) > MAX_SHEBANG_LENGTH or "\\ " in exe_dir:
            new = b"#!/usr/bin/env " + exe_name.encode("utf-8", "surrogateescape") + options
            data = data.replace(whole, new, 1)
    return data


def replace_binary_prefix(data: bytes, placeholder: str, target_prefix: str) -> bytes:
    """conda's binary-mode rewrite: each NUL-terminated string holding the placeholder, NUL-padded to its length.

    Raises ValueError when the target prefix is longer than the placeholder (the caller names the file).
    """
    ph, new = placeholder.encode(), target_prefix.encode()
    if ph not in data:
        return data
    if len(new) > len(ph):
        raise ValueError("target prefix longer than placeholder")

    def repl(m: re.Match[bytes]) -> bytes:
        s = m.group(0)
        n = s.count(ph)
        return s.replace(ph, new) + b"\0" * ((len(ph) - len(new)) * n)

    out = re.sub(re.escape(ph) + rb"[^\0]*\0", repl, data)
    assert len(out) == len(data)
    return out


class _Linker:
    def __init__(self, staging: Path, target_prefix: str, hardlink: bool = False, record_plain: bool = False):
        self.staging = staging
        self.real_staging = os.path.realpath(staging)
        self.target_prefix = target_prefix
        self.hardlink = hardlink
        self.record_plain = record_plain
        self.recorded: dict[str, str] = {}  # real path where a recorded (unwritten) file stands -> package file
        self.sources: dict[str, str] = {}  # target -> the package file recorded for it
        self.real_parent = self.real_staging  # of the last path _prepare made ready

    def _recorded_at(self, p: Path) -> bool:
        """A recorded file stands at ``p`` (its parent resolved, the last component as it is)."""
        return bool(self.recorded) and f"{os.path.realpath(p.parent)}/{p.name}" in self.recorded

    def recorded_sources(self) -> tuple[dict[str, str], dict[str, str]]:
        """The recorded files by target (the package file each target's package recorded) and by where they stand
        (prefix-relative real path -> the package file last recorded there), as if they had been written."""
        root = self.real_staging + "/"
        return dict(self.sources), {p[len(root):]: s for p, s in self.recorded.items() if p.startswith(root)}

    # -- paths --------------------------------------------------------------------------------------------------

    def _inside(self, p: str) -> bool:
        return p == self.real_staging or p.startswith(self.real_staging + "/")

    def _prepare(self, dist: str, target: str) -> Path:
        """Create the parents of ``target`` (0755) inside the staging dir and clear the place for it."""
        dest = self.staging / target
        parent = dest.parent
        if not parent.is_dir():
            cur = self.staging
            for part in Path(target).parts[:-1]:
                cur = cur / part
                if cur.is_symlink() and not self._inside(os.path.realpath(cur)):
                    # a link another package left can lead out of the prefix: create nothing through it
                    raise PackageError(f"{dist}: {target}: written through a link that leads outside the prefix")
                if cur.is_symlink() or cur.is_dir():
                    continue
                if cur.exists() or self._recorded_at(cur):
                    raise InstallError(f"{dist}: {target}: {cur.relative_to(self.staging)} is a file, not a directory")
                cur.mkdir()
                os.chmod(cur, 0o755)
        real_parent = os.path.realpath(parent)
        if not self._inside(real_parent):
            raise PackageError(f"{dist}: {target}: written through a link that leads outside the prefix")
        self.real_parent = real_parent
        self.recorded.pop(f"{real_parent}/{dest.name}", None)  # whatever comes next replaces a recorded file
        self.sources.pop(target, None)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.is_dir():
            raise InstallError(f"{dist}: {target}: a directory is in the way")
        return dest

    # -- one manifest entry ---------------------------------------------------------------------------------------

    def link(self, dist: str, pkg_dir: Path, entry: PathEntry, target: str) -> dict[str, Any]:
        src = pkg_dir / entry.path
        pd = path_record(entry, target)

        if entry.path_type == "directory":
            dest = self.staging / target
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()) or self._recorded_at(dest):
                raise InstallError(f"{dist}: {target}: a file is in the way of a directory")
            if not dest.is_dir():
                self._prepare(dist, target)
                dest.mkdir()
            os.chmod(dest, 0o755)
            return pd

        if entry.path_type == "softlink":
            if not src.is_symlink():
                raise PackageError(f"{dist}: {entry.path}: info/paths.json says softlink but the package has no link there")
            link_target = os.readlink(src)
            if link_target.startswith("/"):
                raise PackageError(f"{dist}: {entry.path}: link to absolute path {link_target!r} outside the prefix")
            lexical = posixpath.normpath(posixpath.join(posixpath.dirname(target), link_target))
            if lexical == ".." or lexical.startswith("../"):
                raise PackageError(f"{dist}: {entry.path}: link -> {link_target!r} points outside the prefix")
            dest = self._prepare(dist, target)
            os.symlink(link_target, dest)
            if not self._inside(os.path.realpath(dest)):
                dest.unlink()
                raise PackageError(f"{dist}: {entry.path}: link -> {link_target!r} points outside the prefix")
            return pd

        # a regular file ("hardlink" in conda's words)
        if src.is_symlink() or not src.is_file():
            raise PackageError(f"{dist}: {entry.path}: listed in the manifest but not a regular file in the package")
        st = os.stat(src)
        mode = 0o755 if st.st_mode & 0o111 else 0o644
        if not entry.prefix_placeholder:
            dest = self._prepare(dist, target)
            if self.record_plain and stat.S_IMODE(st.st_mode) == mode:  # extraction normalised it: used as it is
                self.recorded[f"{self.real_parent}/{dest.name}"] = str(src)
                self.sources[target] = str(src)
                return pd
            if self.hardlink and stat.S_IMODE(st.st_mode) == mode:  # extraction normalised it: nothing to change
                try:
                    os.link(src, dest)
                    return pd
                except OSError:  # another file system, or links not allowed: copy instead
                    pass
            shutil.copyfile(src, dest, follow_symlinks=False)  # kernel-side copy where possible
            os.chmod(dest, mode)
            return pd
        data = src.read_bytes()
        mode_name = entry.file_mode or "text"
        pd["prefix_placeholder"] = entry.prefix_placeholder
        pd["file_mode"] = mode_name
        if mode_name == "binary":
            try:
                data = replace_binary_prefix(data, entry.prefix_placeholder, self.target_prefix)
            except ValueError:
                raise InstallError(
                    f"{dist}: {target}: target prefix {self.target_prefix!r} ({len(self.target_prefix)} chars) is "
                    f"longer than the binary placeholder ({len(entry.prefix_placeholder)} chars)"
                ) from None
        else:
            try:
                data = replace_text_prefix(data, entry.prefix_placeholder, self.target_prefix)
            except ValueError as e:
                raise InstallError(f"{dist}: {target}: prefix placeholder rewrite refused: {e}") from None
        pd["sha256_in_prefix"] = _sha256(data)  # as conda: sha256/size_in_bytes stay those of the package file
        dest = self._prepare(dist, target)
        _write_file(dest, data, mode)
        return pd

    # -- noarch: python entry points ----------------------------------------------------------------------------

    def entry_point(self, dist: str, ep: str, python_version: str | None) -> tuple[str, dict[str, Any]]:
        target, data = entry_point_script(dist, ep, self.target_prefix, python_version)
        dest = self._prepare(dist, target)
        _write_file(dest, data, 0o755)
        return target, entry_point_record(target, data)


def entry_point_script(dist: str, ep: object, target_prefix: str, python_version: str | None) -> tuple[str, bytes]:
    """A noarch: python entry point (``name = module:func`` in link.json) as conda writes it: ``bin/<name>``
    and its bytes (mode 0755). PackageError for an entry point that is not one or names no plain file."""
    m = _ENTRY_POINT_RE.match(ep) if isinstance(ep, str) else None
    if not m:
        raise PackageError(f"{dist}: info/link.json: cannot parse entry point {repr(ep)[:120]}")
    command, module, func = m.groups()
    if "/" in command or command in (".", "..") or any(ord(c) < 32 or c == "\x7f" for c in command) \
            or len(command.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise PackageError(f"{dist}: info/link.json: entry point name {command[:80]!r} is not a plain file name "
                           f"(at most {MAX_NAME_BYTES} bytes, no '/' or control characters)")
    why = refused_payload_path(f"bin/{command}")
    if why is not None:
        raise PackageError(f"{dist}: info/link.json: entry point bin/{command} {why}")
    python = f"{target_prefix}/bin/python{python_version}"
    shebang = f"#!{python}\n"
    if len(shebang) > MAX_SHEBANG_LENGTH or " " in python:
        # conda's fallback: a line that is valid shell and python at once
        shebang = f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\" #'''\n"
    text = shebang + _ENTRY_POINT_TEMPLATE.format(module=module, import_name=func.split(".")[0], func=func)
    return f"bin/{command}", text.encode()


def path_record(entry: PathEntry, target: str) -> dict[str, Any]:
    """A manifest entry's ``paths_data`` entry in conda-meta, as linked at ``target`` (prefix rewrites add to it)."""
    pd: dict[str, Any] = {"_path": target, "path_type": entry.path_type}
    if entry.sha256:
        pd["sha256"] = entry.sha256
    if entry.size is not None:
        pd["size_in_bytes"] = entry.size
    if entry.no_link:
        pd["no_link"] = True
    return pd


def entry_point_record(target: str, data: bytes) -> dict[str, Any]:
    """The entry point's ``paths_data`` entry in conda-meta."""
    return {"_path": target, "path_type": "unix_python_entry_point", "sha256": _sha256(data),
            "size_in_bytes": len(data)}


# ---------------------------------------------------------------------------------------------------------------
# conda-meta


def prefix_record(
    record: PackageRecord,
    pkg_dir: Path,
    index: Mapping[str, Any],
    files: list[str],
    paths_data: list[dict[str, Any]],
    requested_spec: str | None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {k: v for k, v in index.items() if k in ("arch", "platform", "license_family", "features")}
    doc.update(
        name=record.name,
        version=record.version,
        build=record.build,
        build_number=record.build_number,
        channel=strip_credentials(record.channel),
        subdir=record.subdir,
        url=strip_credentials(record.url),
        fn=record.fn,
        md5=record.md5,
        sha256=record.sha256,
        size=record.size,
        depends=list(record.depends),
        constrains=list(record.constrains),
        license=record.license if record.license is not None else index.get("license"),
        timestamp=record.timestamp,
        track_features=" ".join(record.track_features),
        files=files,
        paths_data={"paths_version": 1, "paths": sorted(paths_data, key=lambda p: p["_path"])},
        link={"source": str(pkg_dir), "type": _LINK_TYPE},
        extracted_package_dir=str(pkg_dir),
        package_tarball_full_path="",
        requested_spec=requested_spec or "",
        requested_specs=[requested_spec] if requested_spec else [],
    )
    if record.noarch:
        doc["noarch"] = record.noarch
    if record.name == "python" and isinstance(index.get("python_site_packages_path"), str):
        doc["python_site_packages_path"] = index["python_site_packages_path"]
    if record.features:
        doc["features"] = record.features
    return {k: v for k, v in doc.items() if v is not None}


def _channel_name(channel: str) -> str:
    """What conda's history calls a channel: the last path part of an http(s) channel, a file channel's URL."""
    channel = strip_credentials(channel).rstrip("/")
    if channel.startswith(("http://", "https://")):
        return channel.rsplit("/", 1)[-1]
    return channel


def _history(
    items: Sequence[tuple[PackageRecord, Path]], requested_specs: Mapping[str, str] | None, when: int
) -> str:
    stamp = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"==> {stamp} <==", "# cmd: oci-conda build"]
    dists = sorted(f"{_channel_name(r.channel)}/{r.subdir}::{r.dist_name}" for r, _ in items)
    lines += [f"+{d}" for d in dists]
    if requested_specs:
        specs = sorted(requested_specs.values())
        lines.append(f"# update specs: {specs!r}")  # conda writes the Python repr of the list
    return "\n".join(lines) + "\n"
