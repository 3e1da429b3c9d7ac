"""Drop what no program in an image uses, and keep ``conda-meta`` telling the truth about what is left.

``safe``: static libraries, source maps, documentation, man/info pages, gtk-doc.
``aggressive``: also headers (``include/``), ``__pycache__`` directories, test directories of Python packages, and
``.pyc`` files whose ``.py`` source is there. ``conda-meta/*.json`` records lose the removed paths from ``files``
and ``paths_data``, so ``conda list`` and conda's own consistency checks inside the image agree with its files.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Sequence

from ..errors import SpecError
from ..oci.tar import TarEntry

Profile = Literal["none", "safe", "aggressive"]


@dataclass
class TrimReport:
    """Per rule: files removed and bytes saved (uncompressed)."""

    removed: dict[str, list[int]] = field(default_factory=dict)  # rule -> [files, bytes]

    @property
    def bytes_saved(self) -> int:
        return sum(b for _, b in self.removed.values())

    def to_json(self) -> dict[str, dict[str, int]]:
        return {rule: {"files": n, "bytes": b} for rule, (n, b) in sorted(self.removed.items())}


Rule = tuple[str, Callable[[str, set[str]], bool]]  # (name, test on the prefix-relative path and all paths)


def _glob(*patterns: str) -> Callable[[str, set[str]], bool]:
    rx = re.compile("|".join(fnmatch.translate(p) for p in patterns))
    return lambda rel, _all: rx.match(rel) is not None


def _under(*dirs: str) -> Callable[[str, set[str]], bool]:
    return lambda rel, _all: any(rel == d or rel.startswith(d + "/") for d in dirs)


def _pyc_with_source(rel: str, all_paths: set[str]) -> bool:
    if not rel.endswith(".pyc"):
        return False
    d, name = posixpath.split(rel)
    if posixpath.basename(d) == "__pycache__":
        src = posixpath.join(posixpath.dirname(d), name.split(".", 1)[0] + ".py")
    else:
        src = rel[:-1]
    return src in all_paths


_PY_TESTS = re.compile(r"^lib/python[0-9.]+/site-packages/(?:[^/]+/)+(?:tests?)/")

SAFE: list[Rule] = [
    ("static libraries", _glob("lib/*.a", "lib/**/*.a", "lib64/*.a")),
    ("source maps", _glob("*.js.map")),
    ("documentation", _under("share/doc")),
    ("man pages", _under("share/man", "man")),
    ("info pages", _under("share/info")),
    ("gtk-doc", _under("share/gtk-doc")),
]
AGGRESSIVE: list[Rule] = SAFE + [
    ("headers", _under("include")),
    ("__pycache__", lambda rel, _a: "/__pycache__/" in f"/{rel}"),
    ("python tests", lambda rel, _a: _PY_TESTS.match(rel) is not None),
    ("pyc with source", _pyc_with_source),
]
PROFILES: dict[str, list[Rule]] = {"none": [], "safe": SAFE, "aggressive": AGGRESSIVE}


def trim_entries(entries: Sequence[TarEntry], arcroot: str, profile: Profile) -> tuple[list[TarEntry], TrimReport]:
    """Entries without what ``profile`` drops, with ``conda-meta`` records rewritten to match."""
    if profile not in PROFILES:
        raise SpecError(f"--trim must be one of none, safe, aggressive; got {profile!r}")
    report = TrimReport()
    rules = PROFILES[profile]
    if not rules:
        return list(entries), report
    root = arcroot + "/"
    rels = {e.path[len(root):] for e in entries if e.path.startswith(root)}
    removed: dict[str, TarEntry] = {}
    for e in entries:
        if not e.path.startswith(root) or e.kind == "dir":
            continue
        rel = e.path[len(root):]
        if rel.startswith("conda-meta/"):
            continue
        for name, test in rules:
            if test(rel, rels):
                removed[e.path] = e
                n, b = report.removed.get(name, [0, 0])
                report.removed[name] = [n + 1, b + (e.size if e.kind == "file" else 0)]
                break
    if not removed:
        return list(entries), report

    kept: list[TarEntry] = []
    moved: dict[str, str] = {}  # removed hardlink target -> the kept link that now carries the content
    gone = {p[len(root):] for p in removed}
    for e in entries:
        if e.path in removed:
            continue
        if e.kind == "hardlink" and e.linkname in removed:
            if e.linkname in moved:
                e = replace(e, linkname=moved[e.linkname])
            else:
                target = removed[e.linkname]
                moved[e.linkname] = e.path
                e = replace(target, path=e.path)
        elif e.kind == "file" and e.data is not None and e.path.startswith(root + "conda-meta/") \
                and e.path.endswith(".json"):
            e = _rewrite_record(e, gone)
        kept.append(e)
    return kept, report


def _rewrite_record(e: TarEntry, gone: set[str]) -> TarEntry:
    """Remove trimmed paths from a conda-meta record, written the way conda-pack wrote it."""
    doc = json.loads(e.data)  # type: ignore[arg-type]
    files = doc.get("files")
    if not isinstance(files, list) or not gone.intersection(files):
        return e
    doc["files"] = [f for f in files if f not in gone]
    pd = doc.get("paths_data")
    if isinstance(pd, dict) and isinstance(pd.get("paths"), list):
        pd["paths"] = [p for p in pd["paths"] if p.get("_path") not in gone]
    data = json.dumps(doc, indent=True, sort_keys=True).encode()
    return replace(e, data=data, size=len(data))
