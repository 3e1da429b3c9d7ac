"""The base image's own packages, read from the package databases its layers carry.

Supported: dpkg (``var/lib/dpkg/status``, and distroless' one-file-per-package ``var/lib/dpkg/status.d/*``) and apk
(``lib/apk/db/installed``). RPM is not read: current RPM distributions keep their database in SQLite with binary
header blobs, which would need a header parser of its own.

Layers are read by ``layers.collect_files``: whiteouts honoured, only the few database files kept in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import BinaryIO

from .layers import collect_files
from .model import OsPackage

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")


def wanted_os_file(path: str) -> bool:
    """Whether ``path`` is a package-database or os-release file."""
    return path in (DPKG_STATUS, APK_INSTALLED) or path in OS_RELEASE or (
        path.startswith(DPKG_STATUS_D) and "/" not in path[len(DPKG_STATUS_D):] and len(path) > len(DPKG_STATUS_D))


def collect_os_files(layers: Iterable[BinaryIO], where: str = "base image") -> dict[str, bytes]:
    """The package-database and os-release files of the filesystem the ``layers`` make (see ``collect_files``)."""
    return collect_files(layers, wanted_os_file, where)


def os_release(files: dict[str, bytes]) -> dict[str, str]:
    """``KEY=value`` pairs of the image's os-release (``etc/`` first, then ``usr/lib/``)."""
    for p in OS_RELEASE:
        if p in files:
            out = {}
            for line in files[p].decode("utf-8", "replace").splitlines():
                m = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
                if m:
                    v = m.group(2).strip()
                    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                        v = v[1:-1]
                    out[m.group(1)] = v
            return out
    return {}


def _paragraphs(text: str) -> Iterable[dict[str, str]]:
    """RFC822-style control paragraphs (dpkg status); continuation lines are folded into their field."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip()
                fields[key] = value.strip()
        if fields:
            yield fields


def _dep_names(field: str) -> tuple[str, ...]:
    names = []
    for alt in re.split(r"[,|]", field):
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9+.\-_]*)", alt)
        if m:
            names.append(m.group(1).split(":")[0])
    return tuple(dict.fromkeys(names))


def dpkg_packages(files: dict[str, bytes], namespace: str, distro: str | None) -> list[OsPackage]:
    texts = [files[DPKG_STATUS]] if DPKG_STATUS in files else []
    texts += [files[p] for p in sorted(files) if p.startswith(DPKG_STATUS_D)]
    out = []
    for raw in texts:
        for f in _paragraphs(raw.decode("utf-8", "replace")):
            status = f.get("Status", "install ok installed").split()
            if "Package" not in f or "Version" not in f or (status and status[-1] != "installed"):
                continue
            src = f.get("Source", "").split(" ")[0] or None
            out.append(OsPackage("deb", namespace, f["Package"], f["Version"], f.get("Architecture") or None,
                                 distro, None, src, _dep_names(f.get("Depends", "") + "," + f.get("Pre-Depends", ""))))
    return out


def apk_packages(files: dict[str, bytes], namespace: str, distro: str | None) -> list[OsPackage]:
    out = []
    if APK_INSTALLED not in files:
        return out
    for block in re.split(r"\n\s*\n", files[APK_INSTALLED].decode("utf-8", "replace")):
        f: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) >= 2 and line[1] == ":" and line[0] not in f:
                f[line[0]] = line[2:]
        if "P" in f and "V" in f:
            deps = tuple(d for d in (x.split("=")[0].split(">")[0].split("<")[0].split("~")[0]
                                     for x in f.get("D", "").split()) if d and not d.startswith(("so:", "cmd:", "!")))
            out.append(OsPackage("apk", namespace, f["P"], f["V"], f.get("A") or None, distro, f.get("L") or None,
                                 f.get("o") or None, deps))
    return out


def os_packages(files: dict[str, bytes]) -> list[OsPackage]:
    """Every installed OS package the database files list, sorted; namespace and distro from os-release."""
    rel = os_release(files)
    has_dpkg = DPKG_STATUS in files or any(p.startswith(DPKG_STATUS_D) for p in files)
    namespace = rel.get("ID") or ("debian" if has_dpkg else "alpine")
    ver = rel.get("VERSION_ID")
    distro = f"{namespace}-{ver}" if ver else None
    pkgs = dpkg_packages(files, namespace, distro) + apk_packages(files, namespace, distro)
    return sorted(pkgs, key=lambda p: (p.ecosystem, p.name, p.version, p.arch or ""))


def read_os_packages(layers: Iterable[BinaryIO], where: str = "base image") -> list[OsPackage]:
    """The OS packages of the filesystem ``layers`` make (see ``collect_os_files``)."""
    return os_packages(collect_os_files(layers, where))
