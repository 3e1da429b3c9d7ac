"""The streaming layer path (layers/stream.py) against the reference path (extract → install → conda-pack).

For every real package in the shared data, and for the awkward ones the hostile-package generator makes, a package
streamed from its archive must give exactly the entries the reference path gives for it (paths, kinds, modes,
link targets, contents, conda-meta record), or say it is not plain (None) so that the reference path runs. The
image-level referee is tests/test_golden.py: cold builds take the stream path and must give the recorded digests.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import REALDATA
from pkgbuilder import LONG_PLACEHOLDER, Executable, Hardlink, Symlink, build_package

from oci_conda.conda.install import install
from oci_conda.conda.package import extract_package, package_members
from oci_conda.conda.records import PackageRecord
from oci_conda.errors import InstallError, PackageError
from oci_conda.layers.pack import pack_prefix
from oci_conda.layers.stream import stream_package
from oci_conda.oci.tar import TarEntry

PREFIX = "/opt/conda"
PY = "3.11"
SITE = f"lib/python{PY}/site-packages"


def _record(pkg: Path, index: dict) -> PackageRecord:
    data = pkg.read_bytes()
    return PackageRecord(
        name=index["name"], version=index["version"], build=index["build"],
        build_number=int(index.get("build_number", 0)), subdir=index.get("subdir", "linux-64"),
        channel="https://example.invalid/chan", url=f"https://example.invalid/chan/x/{pkg.name}", fn=pkg.name,
        md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
        depends=tuple(index.get("depends", ())), timestamp=int(index.get("timestamp", 0)),
        noarch=index.get("noarch") if isinstance(index.get("noarch"), str) else None,
        license=index.get("license"))


def _content(e: TarEntry) -> bytes | None:
    if e.kind != "file":
        return None
    if e.data is not None:
        return e.data
    if e.source is not None:
        return Path(e.source).read_bytes()
    assert e.opener is not None
    with e.opener() as f:
        return f.read(e.size)


def _view(entries: list[TarEntry]) -> dict[str, tuple]:
    return {e.path: (e.kind, 0o755 if e.mode & 0o111 else 0o644, e.linkname, _content(e)) for e in entries
            if e.kind != "dir"}


def _reference(pkg: Path, record: PackageRecord, tmp: Path) -> dict[str, tuple]:
    extracted = extract_package(pkg, tmp / "extracted")
    staging = tmp / "staging"
    report = install([(record, extracted)], staging, PREFIX, hardlink=True, specs_in_records=False,
                     record_plain=True, environment=[record, _python()], site_packages=SITE)
    packed = pack_prefix(staging, PREFIX, report.sources, report.standing)
    return _view([e for e in packed.entries if packed.owner.get(e.path) == record.dist_name])


def _python() -> PackageRecord:
    return PackageRecord(name="python", version=f"{PY}.0", build="0", build_number=0, subdir="linux-64",
                         channel="https://example.invalid/chan", url="https://example.invalid/chan/python.conda",
                         fn="python.conda")


def _index_of(pkg: Path) -> dict:
    """The package's info/index.json, read from the archive (extraction might refuse the package)."""
    for _where, tar, m in package_members(pkg, pkg.name):
        if m.name == "info/index.json":
            f = tar.extractfile(m)
            assert f is not None
            return json.loads(f.read())
    raise AssertionError(f"{pkg}: no info/index.json")


def _compare(pkg: Path, tmp: Path) -> bool:
    """Whether the package streamed; when it did, its entries equal the reference path's."""
    record = _record(pkg, _index_of(pkg))
    tmp.mkdir(parents=True, exist_ok=True)
    got = stream_package(pkg, record, PREFIX, tmp / "spool", PY, SITE)
    if got is None:
        return False
    assert got.dist == record.dist_name
    want = _reference(pkg, record, tmp)
    mine = _view(got.entries)
    assert sorted(mine) == sorted(want)
    for path in want:
        assert mine[path] == want[path], path
    return True


def _real_packages() -> list[Path]:
    root = REALDATA / "packages"
    return sorted(p for p in root.glob("*/*") if p.name.endswith((".conda", ".tar.bz2")))


@pytest.mark.parametrize("pkg", _real_packages(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_package_streams_as_the_reference_lays_it_out(pkg: Path, tmp_path: Path) -> None:
    try:
        _compare(pkg, tmp_path)
    except (PackageError, InstallError):  # the reference path refuses it: streaming must have declined it too
        record = _record(pkg, _index_of(pkg))
        assert stream_package(pkg, record, PREFIX, tmp_path / "spool2", PY, SITE) is None


def test_most_real_packages_stream(tmp_path: Path) -> None:
    """The fast path is the common path: most real packages are plain."""
    pkgs = _real_packages()
    if not pkgs:
        pytest.skip("no shared real packages")
    streamed = 0
    for i, pkg in enumerate(pkgs):
        record = _record(pkg, _index_of(pkg))
        streamed += stream_package(pkg, record, PREFIX, tmp_path / f"s{i}", PY, SITE) is not None
    assert streamed >= 0.8 * len(pkgs), f"{streamed} of {len(pkgs)} streamed"


# ---------------------------------------------------------------------------------------------------------------
# made packages: the awkward layouts either stream exactly or decline


def test_prefix_placeholders_and_links_stream_as_the_reference(tmp_path: Path) -> None:
    ph = LONG_PLACEHOLDER
    files = {"bin/tool": Executable(f"#!{ph}/bin/python\nprint('{ph}')\n".encode()),
             "lib/libx.so": b"\x7fELF" + ph.encode() + b"/lib\0pad", "lib/libx.so.1": Symlink("libx.so"),
             "share/a/b.txt": "plain\n", "share/up": Symlink("../lib/libx.so")}
    for fmt in ("conda", "tar.bz2"):
        pkg = build_package(tmp_path / fmt, "made", "1.0", files=files, text_prefix_files=["bin/tool"],
                            binary_prefix_files=["lib/libx.so"], fmt=fmt)
        assert _compare(pkg, tmp_path / f"w-{fmt}")


def test_noarch_python_with_entry_points_streams_as_the_reference(tmp_path: Path) -> None:
    files = {"site-packages/mod/__init__.py": "x = 1\n", "python-scripts/run": Executable(b"#!/bin/sh\n")}
    pkg = build_package(tmp_path, "made", "1.0", files=files, noarch="python", entry_points=["mod-cli = mod.cli:main"])
    assert _compare(pkg, tmp_path)


@pytest.mark.parametrize("case", ["dir-entry", "link-parent", "escaping-link", "entry-point-over-file",
                                  "skipped-top", "size-mismatch", "legacy", "hardlink"])
def test_awkward_packages_decline(case: str, tmp_path: Path) -> None:
    files: dict = {"lib/a.txt": "a\n"}
    kw: dict = {}
    if case == "dir-entry":
        kw["extra_info"] = {"info/paths.json": json.dumps({"paths_version": 1, "paths": [
            {"_path": "lib/a.txt", "path_type": "hardlink"}, {"_path": "empty", "path_type": "directory"}]})}
    elif case == "link-parent":
        files = {"lib64": Symlink("lib"), "lib64/b.txt": "b\n", "lib/a.txt": "a\n"}
    elif case == "escaping-link":
        files = {"d/b": Symlink(".."), "lib/a": Symlink("../d/b/..")}
    elif case == "entry-point-over-file":
        files = {"python-scripts/run": "#!/bin/sh\n", "site-packages/m.py": ""}
        kw = {"noarch": "python", "entry_points": ["run = m:main"]}
    elif case == "skipped-top":
        files = {"pkgs/x.txt": "x\n"}
    elif case == "size-mismatch":
        kw["extra_info"] = {"info/paths.json": json.dumps({"paths_version": 1, "paths": [
            {"_path": "lib/a.txt", "path_type": "hardlink", "size_in_bytes": 99}]})}
    elif case == "legacy":
        kw["legacy"] = True
    elif case == "hardlink":
        files = {"lib/a.txt": "a\n", "lib/b.txt": Hardlink("lib/a.txt")}
    pkg = build_package(tmp_path, "made", "1.0", files=files, **kw)
    index = {"name": "made", "version": "1.0", "build": "0", "noarch": kw.get("noarch")}
    record = _record(pkg, index)
    assert stream_package(pkg, record, PREFIX, tmp_path / "spool", PY, SITE) is None
