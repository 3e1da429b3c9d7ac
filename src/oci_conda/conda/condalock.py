"""conda-lock's unified lockfile (``conda-lock.yml``, format version 1 and the unversioned format before it).

Only ``manager: conda`` entries become records; pip entries cannot be installed from conda packages and are named
in an error when the platform being read has any. ``optional: true`` entries (non-main categories) are left out.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import SpecError
from ..credentials import redact_url
from .explicit import record_from_url
from .records import PackageRecord


def parse_conda_lock(text: str, where: str) -> tuple[dict[str, list[PackageRecord]], dict[str, list[str]]]:
    """``({platform: records}, {platform: pip package names})`` from the text of a conda-lock v1 file."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{where}{line}: not valid YAML") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("package"), list):
        raise SpecError(f"{where}: not a conda-lock file (no 'package' list)")
    version = doc.get("version", 1)
    if version != 1:
        raise SpecError(f"{where}: conda-lock format version {version!r} is not supported (only 1)")
    meta = doc.get("metadata") or {}
    out: dict[str, list[PackageRecord]] = {p: [] for p in meta.get("platforms") or []}
    pip: dict[str, list[str]] = {}
    for i, p in enumerate(doc["package"]):
        if not isinstance(p, dict):
            raise SpecError(f"{where}: package[{i}] is not a mapping")
        name = p.get("name")
        platform = p.get("platform")
        url = p.get("url")
        if not isinstance(name, str) or not isinstance(platform, str) or not isinstance(url, str):
            raise SpecError(f"{where}: package[{i}] needs name, platform and url")
        if p.get("optional"):
            continue
        if p.get("manager", "conda") != "conda":
            pip.setdefault(platform, []).append(name)
            continue
        h: dict[str, Any] = p.get("hash") or {}
        sha256 = h.get("sha256")
        md5 = h.get("md5")
        rec = record_from_url(url, sha256 or md5, f"{where}: package {name} ({platform})")
        if rec.name != name:
            raise SpecError(f"{where}: package {name} ({platform}) has a URL for {rec.name}: {redact_url(url)}")
        deps = p.get("dependencies") or {}
        depends = tuple(f"{k} {v}".strip() if v not in (None, "", "*") else k for k, v in sorted(deps.items()))
        if md5 and sha256:
            rec = PackageRecord(**{**_fields(rec), "md5": md5.lower()})
        rec = PackageRecord(**{**_fields(rec), "depends": depends, "version": str(p.get("version") or rec.version)})
        out.setdefault(platform, []).append(rec)
    return out, {k: sorted(v) for k, v in pip.items()}


def _fields(rec: PackageRecord) -> dict[str, Any]:
    return {f: getattr(rec, f) for f in rec.__dataclass_fields__}
