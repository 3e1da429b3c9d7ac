"""Trim rules on constructed entries: what each profile drops, hardlinks to dropped files, conda-meta rewriting."""

from __future__ import annotations

import json

import pytest

from oci_conda.errors import SpecError
from oci_conda.oci.tar import TarEntry
from oci_conda.layers.trim import trim_entries

R = "opt/conda"


def f(path: str, data: bytes = b"x") -> TarEntry:
    return TarEntry(f"{R}/{path}", "file", 0o644, size=len(data), data=data)


def meta(name: str, files: list[str]) -> TarEntry:
    doc = {"name": name, "files": files, "paths_data": {"paths_version": 1, "paths": [{"_path": p} for p in files]}}
    return f(f"conda-meta/{name}-1-0.json", json.dumps(doc, indent=True, sort_keys=True).encode())


PATHS = ["lib/libz.a", "lib/libz.so", "share/doc/z/README", "share/man/man1/z.1", "include/zlib.h", "app.js.map",
         "lib/python3.12/site-packages/pkg/__init__.py", "lib/python3.12/site-packages/pkg/__pycache__/x.cpython-312.pyc",
         "lib/python3.12/site-packages/pkg/tests/test_a.py", "lib/python3.12/site-packages/pkg/old.py",
         "lib/python3.12/site-packages/pkg/old.pyc", "lib/python3.12/site-packages/pkg/lone.pyc", "bin/z"]


def entries() -> list[TarEntry]:
    return [f(p) for p in PATHS] + [meta("z", PATHS)]


def kept_paths(es: list[TarEntry]) -> set[str]:
    return {e.path[len(R) + 1:] for e in es if "conda-meta" not in e.path}


def test_profiles() -> None:
    none, rep = trim_entries(entries(), R, "none")
    assert kept_paths(none) == set(PATHS) and not rep.removed
    safe, rep = trim_entries(entries(), R, "safe")
    assert set(PATHS) - kept_paths(safe) == {"lib/libz.a", "share/doc/z/README", "share/man/man1/z.1", "app.js.map"}
    assert rep.to_json()["static libraries"] == {"files": 1, "bytes": 1}
    agg, rep = trim_entries(entries(), R, "aggressive")
    assert kept_paths(agg) == {"lib/libz.so", "lib/python3.12/site-packages/pkg/__init__.py",
                               "lib/python3.12/site-packages/pkg/old.py", "lib/python3.12/site-packages/pkg/lone.pyc",
                               "bin/z"}
    assert rep.bytes_saved == len(PATHS) - 5


def test_conda_meta_lists_exactly_what_is_left() -> None:
    agg, _ = trim_entries(entries(), R, "aggressive")
    [m] = [e for e in agg if e.path.endswith(".json")]
    doc = json.loads(m.data)
    assert set(doc["files"]) == kept_paths(agg)
    assert [p["_path"] for p in doc["paths_data"]["paths"]] == doc["files"]
    assert m.size == len(m.data)


def test_hardlink_to_a_dropped_file_keeps_the_content() -> None:
    es = [f("include/a.h", b"header"), TarEntry(f"{R}/share/keep.h", "hardlink", 0o644, linkname=f"{R}/include/a.h"),
          TarEntry(f"{R}/share/keep2.h", "hardlink", 0o644, linkname=f"{R}/include/a.h")]
    out, _ = trim_entries(es, R, "aggressive")
    by = {e.path: e for e in out}
    assert by[f"{R}/share/keep.h"].kind == "file" and by[f"{R}/share/keep.h"].data == b"header"
    assert by[f"{R}/share/keep2.h"].kind == "hardlink" and by[f"{R}/share/keep2.h"].linkname == f"{R}/share/keep.h"


def test_unknown_profile() -> None:
    with pytest.raises(SpecError):
        trim_entries(entries(), R, "everything")  # type: ignore[arg-type]
