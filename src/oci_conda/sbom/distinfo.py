"""Python distributions pip installed into an image, read from their ``*.dist-info`` directories.

A dist-info directory listed in a conda record's ``files`` belongs to that conda package (already in the SBOM as
conda); every other one is a wheel. Name, version and license come from ``METADATA`` (core metadata; the
``License-Expression`` field of metadata 2.4 first, then ``License``); the wheel's URL and sha256 from PEP 610's
``direct_url.json`` when the installer wrote one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, BinaryIO

from ..credentials import strip_credentials
from .layers import collect_files, normalise
from .model import WheelPackage

_DIST_INFO = re.compile(r"^(.*/site-packages/[^/]+\.dist-info)/(METADATA|direct_url\.json)$")


def wanted(path: str) -> bool:
    return _DIST_INFO.match(path) is not None


def conda_owned(file_lists: Iterable[Iterable[object]], prefix: str) -> set[str]:
    """Image paths (no leading ``/``) of every file the conda records at ``prefix`` installed (their ``files``
    lists, as read from ``conda-meta/*.json``: anything not a string is ignored)."""
    root = prefix.strip("/")
    return {normalise(f"{root}/{f}") for files in file_lists for f in files if isinstance(f, str)}


def _sha256(direct: Mapping[str, Any]) -> str | None:
    info = direct.get("archive_info")
    if not isinstance(info, dict):
        return None
    hashes = info.get("hashes")
    if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
        return hashes["sha256"].lower()
    legacy = info.get("hash")
    if isinstance(legacy, str) and legacy.startswith("sha256="):
        return legacy[7:].lower()
    return None


def wheels_from_files(files: Mapping[str, bytes], owned: AbstractSet[str] = frozenset()) -> list[WheelPackage]:
    """One ``WheelPackage`` per dist-info directory in ``files`` not owned by a conda package, sorted."""
    from email.parser import BytesHeaderParser

    dirs: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        m = _DIST_INFO.match(path)
        if m and m.group(1) + "/METADATA" not in owned:
            dirs.setdefault(m.group(1), {})[m.group(2)] = data
    out = []
    for parts in dirs.values():
        if "METADATA" not in parts:
            continue
        meta = BytesHeaderParser().parsebytes(parts["METADATA"])
        name, version = meta.get("Name"), meta.get("Version")
        if not name or not version:
            continue
        license = meta.get("License-Expression") or meta.get("License") or None
        if license and ("\n" in license.strip() or len(license) > 200):
            license = None  # a whole license text pasted into the field: not a declaration
        url = sha = None
        if "direct_url.json" in parts:
            try:
                direct = json.loads(parts["direct_url.json"])
            except ValueError:
                direct = None
            if isinstance(direct, dict):
                url = strip_credentials(direct["url"]) if isinstance(direct.get("url"), str) else None
                sha = _sha256(direct)
        out.append(WheelPackage(str(name), str(version), sha, url, license.strip() if license else None))
    return sorted(out, key=lambda w: (w.name.lower(), w.version))


def read_wheels(layers: Iterable[BinaryIO], owned: AbstractSet[str] = frozenset(),
                where: str = "image") -> list[WheelPackage]:
    """The wheels the filesystem ``layers`` make holds (see ``wheels_from_files``)."""
    return wheels_from_files(collect_files(layers, wanted, where), owned)
