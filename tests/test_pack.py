"""layers/pack.py on a real staged prefix (the example channel's two packages, installed as build.py installs
them): the entries are rooted at the image prefix, sorted, relocated (no staging path anywhere), hard links become
tar hardlinks inside the package, every path has its owning package, and packing twice gives the same entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from pkgbuilder import Symlink, build_package

from oci_conda.conda.fetch import fetch_packages
from oci_conda.conda.install import install
from oci_conda.conda.package import extract_package
from oci_conda.conda.records import PackageRecord
from oci_conda.errors import InstallError
from oci_conda.layers.pack import pack_prefix
from oci_conda.oci.tar import TarEntry
from oci_conda.options import BuildOptions
from oci_conda.progress import Reporter
from oci_conda.resolve import default_session, solve_environment
from oci_conda.spec import load_spec

HELLO = REPO / "examples" / "hello" / "environment.yml"
PREFIX = "/opt/some/env"
# conda-pack's activation scripts and the history no package lists
UNOWNED = {f"{PREFIX[1:]}/{p}" for p in ("bin/activate", "bin/activate.fish", "bin/deactivate", "conda-meta/history")}


@pytest.fixture
def staged(tmp_path: Path, cache_env: Path) -> Path:
    """The hello environment installed into a staging directory as if it lived at PREFIX."""
    opts = BuildOptions(offline=True)
    records = solve_environment(load_spec(HELLO), "linux-64", opts, Reporter("quiet"))
    files = fetch_packages(records, default_session(opts), jobs=2, offline=True)
    items = [(r, extract_package(files[r.url], tmp_path / "x", r.sha256 or r.fn, label=r.fn)) for r in records]
    staging = tmp_path / "staging"
    install(items, staging, PREFIX, history_time=0, hardlink=True, specs_in_records=False)
    return staging


def _content(e: TarEntry) -> bytes:
    if e.data is not None:
        return e.data
    assert e.source is not None
    return Path(e.source).read_bytes()


def test_pack_prefix_entries(staged: Path) -> None:
    packed = pack_prefix(staged, PREFIX)
    paths = [e.path for e in packed.entries]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert all(p == "opt/some/env" or p.startswith("opt/some/env/") for p in paths)
    by_path = {e.path: e for e in packed.entries}

    hello = by_path["opt/some/env/bin/hello"]
    assert hello.kind == "file" and hello.mode & 0o111  # executable bit kept
    greeting = _content(by_path["opt/some/env/share/hello/greeting.txt"])
    assert f"installed at {PREFIX}/share/hello/greeting.txt".encode() in greeting
    for e in packed.entries:  # nothing refers to where the prefix was staged
        if e.kind == "file":
            assert str(staged).encode() not in _content(e), e.path
        if e.kind in ("symlink", "hardlink"):
            assert str(staged) not in (e.linkname or ""), e.path
    for e in packed.entries:
        if e.kind == "hardlink":
            assert by_path[e.linkname].kind == "file" and packed.owner[e.linkname] == packed.owner[e.path]

    assert packed.owner["opt/some/env/bin/hello"] == "hello-1.0-0"
    assert packed.owner["opt/some/env/share/hello/greeting.txt"] == "hello-data-1.0-0"
    assert packed.owner["opt/some/env/conda-meta/hello-1.0-0.json"] == "hello-1.0-0"
    unowned = {e.path for e in packed.entries if e.kind != "dir" and e.path not in packed.owner}
    assert unowned == UNOWNED, unowned  # only environment-wide files belong to no package

    again = pack_prefix(staged, PREFIX)
    assert [(e.path, e.kind, e.mode, e.linkname, _content(e) if e.kind == "file" else None) for e in again.entries] \
        == [(e.path, e.kind, e.mode, e.linkname, _content(e) if e.kind == "file" else None) for e in packed.entries]


def _shape(packed_entries: list[TarEntry]) -> list[tuple]:
    return [(e.path, e.kind, e.mode, e.linkname, _content(e) if e.kind == "file" else None) for e in packed_entries]


def _install_both(tmp_path: Path, packages: list[tuple[str, dict]]) -> tuple[list[tuple], list[tuple], dict]:
    """Install the same packages with every file written (hardlinks) and with plain files only recorded; pack both."""
    items = []
    for i, (name, files) in enumerate(packages):
        pkg = build_package(tmp_path / "pkgs", name, "1", files=files)
        rec = PackageRecord(name=name, version="1", build="0", build_number=0, subdir="linux-64", channel="c",
                            url=f"c/{pkg.name}", fn=pkg.name, timestamp=i)
        items.append((rec, extract_package(pkg, tmp_path / "x", name, label=pkg.name)))
    written, recorded = tmp_path / "written", tmp_path / "recorded"
    install(items, written, PREFIX, history_time=0, hardlink=True, specs_in_records=False)
    report = install(items, recorded, PREFIX, history_time=0, hardlink=True, specs_in_records=False,
                     record_plain=True)
    return _shape(pack_prefix(written, PREFIX).entries), _shape(pack_prefix(recorded, PREFIX, report.sources, report.standing).entries), \
        report.sources


def test_recorded_plain_files_pack_as_written_ones(tmp_path: Path) -> None:
    """install(record_plain=True) writes no plain file, yet the packed entries are those of a written install: the
    same paths, kinds, modes and bytes, also for a path two packages ship, a directory link and a file reached
    through it (conda-pack's walk does not enter a linked directory, so neither install ships that file)."""
    written, recorded, sources = _install_both(tmp_path, [
        ("a", {"lib/liba.so": b"\x7fELF a", "share/a/data": "a data", "bin/tool": "#!/bin/sh\necho a\n"}),
        ("b", {"lib64": Symlink("lib"), "share/b/x": "b", "bin/tool": "#!/bin/sh\necho b wins\n"}),
        ("c", {"lib64/libc.so": b"\x7fELF c"}),
    ])
    assert written == recorded
    assert "lib/liba.so" in sources and "lib64/libc.so" in sources
    assert sources["bin/tool"].endswith("bin/tool") and "b" in Path(sources["bin/tool"]).parts[-3]


def test_a_recorded_file_is_in_the_way_as_a_written_one(tmp_path: Path) -> None:
    """A later package that needs a directory where a recorded file stands fails as it does with the file there."""
    for later in ({"share/a/data/x": "under a file"},):
        with pytest.raises(InstallError, match="is a file, not a directory"):
            _install_both(tmp_path / "t", [("a", {"share/a/data": "a file"}), ("z", later)])
