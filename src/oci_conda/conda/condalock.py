"""conda-lock's unified lockfile (``conda-lock.yml``, format version 1 and the unversioned format before it).

``manager: conda`` entries become records; ``manager: pip`` entries become ``PypiEntry`` values (name, version, URL,
hash, and their ``dependencies`` as PEP 508 strings) for the pip stage. ``optional: true`` entries (non-main
categories) are left out.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml

from ..errors import SpecError
from ..credentials import redact_url
from .explicit import record_from_url
from .lockentries import ForeignLock, LockedPlatform, PypiEntry
from .records import PackageRecord

_HEX = frozenset("0123456789abcdefABCDEF")


def parse_conda_lock(text: str, where: str) -> tuple[dict[str, list[PackageRecord]], dict[str, list[str]]]:
    """``({platform: records}, {platform: pip package names})`` from the text of a conda-lock v1 file.

    The older shape, kept for callers that refuse pip packages; ``read_conda_lock`` returns the pip entries whole.
    """
    lock = read_conda_lock(text, where)
    return ({p: list(v.conda) for p, v in lock.platforms.items()},
            {p: sorted(w.name for w in v.pypi) for p, v in lock.platforms.items() if v.pypi})


def read_conda_lock(text: str, where: str) -> ForeignLock:
    """Every platform of a conda-lock v1 file: conda records and pip entries (main category only)."""
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
    if not isinstance(meta, dict):
        raise SpecError(f"{where}: metadata: expected a mapping")
    out: dict[str, list[PackageRecord]] = {p: [] for p in meta.get("platforms") or []}
    pip: dict[str, list[PypiEntry]] = {}
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
        manager = p.get("manager", "conda")
        if manager == "pip":
            pip.setdefault(platform, []).append(_pip_entry(p, name, url, f"{where}: package[{i}] {name} ({platform})"))
            out.setdefault(platform, [])
            continue
        if manager != "conda":
            raise SpecError(f"{where}: package[{i}] {name} ({platform}): unknown manager {manager!r} (conda or pip)")
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
    channels = tuple(_channel_url(c) for c in meta.get("channels") or [])
    return ForeignLock(path=where, environment="default", channels=channels,
                       platforms={p: LockedPlatform(conda=tuple(recs), pypi=tuple(pip.get(p, ())))
                                  for p, recs in out.items()})


def _channel_url(c: Any) -> str:
    return str(c.get("url", "")) if isinstance(c, dict) else str(c)


def _pip_entry(p: Mapping[str, Any], name: str, url: str, where: str) -> PypiEntry:
    """A ``manager: pip`` entry: ``dependencies`` is {name: specifier or '*'}, the hash sha256 (or md5)."""
    h = p.get("hash") or {}
    if not isinstance(h, dict):
        raise SpecError(f"{where}: hash: expected a mapping")
    hashes: dict[str, str | None] = {"sha256": None, "md5": None}
    for key, n in (("sha256", 64), ("md5", 32)):
        v = h.get(key)
        if v is not None:
            if not isinstance(v, str) or len(v) != n or not set(v) <= _HEX:
                raise SpecError(f"{where}: hash.{key}: not a {key} hex digest")
            hashes[key] = v.lower()
    version = p.get("version")
    if version is None or isinstance(version, (dict, list)):
        raise SpecError(f"{where}: version: expected a version string")
    deps = p.get("dependencies") or {}
    if not isinstance(deps, dict):
        raise SpecError(f"{where}: dependencies: expected a mapping of name to specifier")
    requires = []
    for dep, spec in sorted(deps.items()):
        spec = "" if spec in (None, "*") else str(spec).strip()
        requires.append(f"{dep}{spec}" if not spec or spec[0] in "<>=!~" else f"{dep} {spec}")
    return PypiEntry(name=name, version=str(version), url=url, sha256=hashes["sha256"], md5=hashes["md5"],
                     requires_dist=tuple(requires))


def _fields(rec: PackageRecord) -> dict[str, Any]:
    return {f: getattr(rec, f) for f in rec.__dataclass_fields__}
