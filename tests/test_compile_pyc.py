"""--compile-pyc on constructed packages (no container needed): unchecked-hash .pyc with the image path as
co_filename, in the owning package's layer and conda-meta record, reproducible, and skipped with a reason when the
host has no interpreter of the environment's python X.Y."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pkgbuilder import build_package, index_channel
from realenv import oci_conda

XY = "%d.%d" % sys.version_info[:2]
TAG = sys.implementation.cache_tag
SITE = f"opt/conda/lib/python{XY}/site-packages"
UTIL = '''"""A module with constants whose marshalled form is easy to get wrong: a frozenset, interned names."""
KINDS = ("file", "dir")


def kind(x):
    return "known" if x in {"file", "dir", "symlink", "hardlink"} else "other"
'''
SHIPPED_PYC = b"not a real pyc, but the package's own bytes"


@pytest.fixture(scope="module")
def chan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyc-channel") / "channel"
    for version in (f"{XY}.0", "3.99.0"):
        xy = version.rsplit(".", 1)[0]
        build_package(root / "linux-64", "python", version, files={
            f"bin/python{xy}": "#!/bin/sh\necho python\n", f"lib/python{xy}/os.py": "sep = '/'\n"})
    build_package(root / "noarch", "demo", "1.0", noarch="python", depends=["python"], entry_points=["demo = demo:main"],
                  files={"site-packages/demo/__init__.py": "def main():\n    return 0\n",
                         "site-packages/demo/util.py": UTIL,
                         "site-packages/demo/broken.py": "def (:\n",
                         "site-packages/demo/shipped.py": "X = 1\n",
                         f"site-packages/demo/__pycache__/shipped.{TAG}.pyc": SHIPPED_PYC})
    # an arch package with a module under site-packages (as conda-build packages of compiled extensions have)
    build_package(root / "linux-64", "native", "1.0", depends=[f"python {XY}.*"],
                  files={f"lib/python{XY}/site-packages/native_mod.py": "VALUE = 42\n"})
    build_package(root / "linux-64", "nopython", "1.0", files={"share/nopython/x.py": "x = 1\n"})
    index_channel(root)
    return root


def build(tmp: Path, chan: Path, deps: str, out: str, *extra: str) -> dict:
    env = tmp / f"{out}.yml"
    env.write_text(f"name: pyc\nchannels: ['{chan}']\ndependencies: [{deps}]\n")
    e = dict(os.environ, OCI_CONDA_CACHE=str(tmp / "cache"), SOURCE_DATE_EPOCH="1700000000")
    return json.loads(oci_conda("build", str(env), "-o", str(tmp / out), "--json", *extra, env=e).stdout)


def layer_files(archive: Path, summary: dict) -> dict[str, tuple[str, bytes]]:
    """Every regular file of the environment's layers: path -> (layer source, bytes)."""
    out: dict[str, tuple[str, bytes]] = {}
    with tarfile.open(archive) as t:
        for lay in summary["platforms"][0]["layers"]:
            blob = t.extractfile(f"blobs/sha256/{lay['digest'].split(':')[1]}")
            with tarfile.open(fileobj=blob, mode="r:gz") as lt:
                for m in lt.getmembers():
                    if m.isfile():
                        f = lt.extractfile(m)
                        assert f is not None and m.name not in out
                        out[m.name] = (lay["source"], f.read())
    return out


def test_unchecked_hash_pyc_in_the_owner_layer_and_record(chan: Path, tmp_path: Path) -> None:
    s = build(tmp_path, chan, f"python {XY}.*, demo, native", "pyc.tar", "--compile-pyc")
    files = layer_files(tmp_path / "pyc.tar", s)
    warnings = s["platforms"][0]["warnings"]
    assert any("1 file(s) do not compile" in w and "demo/broken.py" in w for w in warnings), warnings
    assert not any("skipped" in w for w in warnings)

    expected = {f"{SITE}/demo/__init__.py": "demo-1.0-0", f"{SITE}/demo/util.py": "demo-1.0-0",
                f"{SITE}/native_mod.py": "native-1.0-0"}
    for py, dist in expected.items():
        d, name = py.rsplit("/", 1)
        pyc = f"{d}/__pycache__/{name[:-3]}.{TAG}.pyc"
        layer, data = files[pyc]
        assert layer == dist == files[py][0]  # the package's own layer
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, check_source off: unchecked-hash
        assert data[8:16] == importlib.util.source_hash(files[py][1])
        assert marshal.loads(data[16:]).co_filename == "/" + py  # the image path, not the staging dir
        record = json.loads(files[f"opt/conda/conda-meta/{dist}.json"][1])
        rel = pyc[len("opt/conda/"):]
        assert rel in record["files"] and record["files"] == sorted(record["files"])
        [pd] = [p for p in record["paths_data"]["paths"] if p["_path"] == rel]
        assert pd["path_type"] == "pyc_file"
        assert pd["sha256"] == hashlib.sha256(data).hexdigest() and pd["size_in_bytes"] == len(data)
    # no pyc for what does not compile; the package's own pyc untouched and not duplicated in its record
    assert not any("broken" in p and p.endswith(".pyc") for p in files)
    assert files[f"{SITE}/demo/__pycache__/shipped.{TAG}.pyc"][1] == SHIPPED_PYC
    demo = json.loads(files["opt/conda/conda-meta/demo-1.0-0.json"][1])
    paths = [p["_path"] for p in demo["paths_data"]["paths"]]
    assert len(paths) == len(set(paths)) and sorted(paths) == sorted(demo["files"])
    # only site-packages: the python package's stdlib file and non-python packages are not compiled
    assert not any(p.endswith(".pyc") and "site-packages" not in p for p in files)

    # the host interpreter uses these pyc without looking at the source: change the source, import, no rewrite
    root = tmp_path / "tree"
    for p, (_, data) in files.items():
        if p.startswith(SITE):
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            (root / p).write_bytes(data)
    (root / SITE / "demo/util.py").write_text("raise SystemExit('source was read')\n")
    before = sorted(p for p in (root / SITE).rglob("*"))
    r = subprocess.run([sys.executable, "-S", "-c", "import demo.util, native_mod; print(demo.util.kind('dir'), "
                        "native_mod.VALUE, demo.util.__spec__.cached)"], cwd=root / SITE,
                       env=dict(os.environ, PYTHONPATH=str(root / SITE)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["known", "42"]
    assert sorted(p for p in (root / SITE).rglob("*")) == before


def test_two_cold_builds_elsewhere_give_the_same_digest(chan: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    a = build(tmp_path / "a", chan, f"python {XY}.*, demo", "x.tar", "--compile-pyc")
    (tmp_path / "b" / "deeper" / "dir").mkdir(parents=True)
    old = os.umask(0o077)
    try:
        b = build(tmp_path / "b" / "deeper" / "dir", chan, f"python {XY}.*, demo", "y.tar", "--compile-pyc")
    finally:
        os.umask(old)
    assert a["digest"] == b["digest"]
    plain = build(tmp_path / "a", chan, f"python {XY}.*, demo", "plain.tar")
    assert plain["digest"] != a["digest"]
    la, lp = (layer_files(tmp_path / "a" / "x.tar", a), layer_files(tmp_path / "a" / "plain.tar", plain))
    assert sorted(set(la) - set(lp)) == [f"{SITE}/demo/__pycache__/{m}.{TAG}.pyc" for m in ("__init__", "util")]
    # the python package's layer does not change; demo's does
    by_src = lambda s: {lay["source"]: lay["digest"] for lay in s["platforms"][0]["layers"]}  # noqa: E731
    assert by_src(a)[f"python-{XY}.0-0"] == by_src(plain)[f"python-{XY}.0-0"]
    assert by_src(a)["demo-1.0-0"] != by_src(plain)["demo-1.0-0"]


def test_skipped_with_the_reason_when_no_host_python_fits(chan: Path, tmp_path: Path) -> None:
    s = build(tmp_path, chan, "python 3.99.*, demo", "skip.tar", "--compile-pyc")
    [w] = [w for w in s["platforms"][0]["warnings"] if "compile-pyc" in w]
    assert w.startswith("--compile-pyc skipped: no python3.99 on this host"), w
    plain = build(tmp_path, chan, "python 3.99.*, demo", "plain.tar")
    assert plain["digest"] == s["digest"]  # built exactly as without the option
    assert not any(p.endswith(".pyc") and "shipped" not in p for p in layer_files(tmp_path / "skip.tar", s))
    # the warning reaches the human summary too
    env = tmp_path / "skip.tar.yml"
    e = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"), SOURCE_DATE_EPOCH="1700000000")
    r = oci_conda("build", str(env), "-o", str(tmp_path / "again.tar"), "--compile-pyc", env=e)
    assert "--compile-pyc skipped: no python3.99" in r.stderr

    s = build(tmp_path, chan, "nopython", "nopy.tar", "--compile-pyc")
    assert any("--compile-pyc skipped: the environment has no python package" in w
               for w in s["platforms"][0]["warnings"])


def test_bytes_independent_of_chunking_order_and_where_sources_sit(realdata: Path, tmp_path: Path) -> None:
    """The pip sources compiled through the API: in one interpreter or in many small chunks, from files in two
    different directories or from memory, the .pyc bytes are the same."""
    from conda_package_streaming.package_streaming import stream_conda_component

    from oci_conda.conda.records import PackageRecord
    from oci_conda.oci.tar import TarEntry
    from oci_conda.layers.pyc import compile_pyc

    pkg = realdata / "packages" / "conda-forge-linux-64" / "pip-25.3-pyh8b19718_0.conda"
    sources: dict[str, bytes] = {}
    with open(pkg, "rb") as fh:
        for tar, member in stream_conda_component(str(pkg), fh, "pkg"):
            if member.isfile() and member.name.endswith(".py") and member.name.startswith("site-packages/pip/_internal"):
                f = tar.extractfile(member)
                assert f is not None
                sources[member.name] = f.read()
    assert len(sources) > 100
    records = [PackageRecord("python", f"{XY}.0", "0", 0, "linux-64", "c", "c/python", "python.conda")]

    def run(name: str, chunk: int, in_memory: bool) -> dict[str, bytes]:
        entries = []
        for rel, data in sorted(sources.items()):
            path = f"{SITE}/{rel[len('site-packages/'):]}"
            if in_memory:
                entries.append(TarEntry(path, "file", 0o644, size=len(data), data=data))
            else:
                src = tmp_path / name / "src" / rel
                src.parent.mkdir(parents=True, exist_ok=True)
                src.write_bytes(data)
                entries.append(TarEntry(path, "file", 0o644, size=len(data), source=str(src)))
        warnings: list[str] = []
        out, report = compile_pyc(entries, {}, "opt/conda", records, tmp_path / name / "work", warnings, chunk=chunk)
        assert not warnings and report.compiled == len(sources)
        return {e.path: Path(e.source).read_bytes() for e in out if e.path.endswith(".pyc")}

    one = run("one", 10_000, in_memory=False)
    assert len(one) == len(sources)
    assert run("chunks", 7, in_memory=False) == one
    assert run("memory", 50, in_memory=True) == one
