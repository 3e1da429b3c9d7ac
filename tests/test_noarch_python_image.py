"""A real Python in an image: the host's CPython as a conda package (pyfixture) with the real noarch: python pip,
setuptools and wheel, on the Debian base, run under podman; then --compile-pyc: the .pyc are in the image, listed in
conda-meta, trusted by the interpreter (nothing rewritten on import), and the cold start of ``pip --version`` with
and without them is measured."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import sys
import tarfile
from pathlib import Path

import pytest

from pkgbuilder import index_channel
from pyfixture import host_python_package, host_python_version
from realenv import Podman, debian_base, oci_conda

pytestmark = pytest.mark.slow

XY = "%d.%d" % sys.version_info[:2]
TAG = sys.implementation.cache_tag
SITE = f"/opt/conda/lib/python{XY}/site-packages"
REAL = ("pip-25.3-pyh8b19718_0.conda", "setuptools-80.9.0-pyhff2d567_0.conda", "wheel-0.45.1-pyhd8ed1ab_1.conda")
RUNS = 5

# Run in one container per image. First what the programs say; then the cold start of `pip --version`, RUNS times:
# the stdlib is compiled first (the fixture python ships no stdlib .pyc) so that only site-packages differ, and
# PYTHONDONTWRITEBYTECODE keeps every run as cold as the first. Last, hashes of everything under site-packages
# before and after importing pip's internals with bytecode writing on (and no pycache prefix): anything rewritten?
SCRIPT = f"""
set -e
export PYTHONDONTWRITEBYTECODE=1
python3 -c 'import sys, platform; print(sys.prefix); print(sys.path[-1]); print(platform.python_version())'
pip --version
wheel version
head -1 /opt/conda/bin/pip
python -c 'import compileall, re; compileall.compile_dir("/opt/conda/lib/python{XY}", quiet=1,
    rx=re.compile("site-packages"))'
echo TIMES
for i in $(seq {RUNS}); do
  s=$(date +%s%N); pip --version > /dev/null; e=$(date +%s%N)
  echo $(( (e - s) / 1000 ))
done
echo END
unset PYTHONDONTWRITEBYTECODE
cd {SITE}
find . -type f -exec sha256sum {{}} + | sort > /tmp/before
python -c 'import setuptools, pip._internal.cli.main, wheel.cli'
find . -type f -exec sha256sum {{}} + | sort > /tmp/after
echo "pyc: $(grep -c '[.]pyc$' /tmp/before || true) before, $(grep -c '[.]pyc$' /tmp/after || true) after"
if cmp -s /tmp/before /tmp/after; then echo UNCHANGED; else echo CHANGED; fi
"""


@pytest.fixture(scope="module")
def images(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not (3, 10) <= sys.version_info[:2] <= (3, 12):
        pytest.skip("pip 25.3 needs python >=3.10,<3.13")
    work = tmp_path_factory.mktemp("pyimage")
    chan = work / "channel"
    (chan / "linux-64").mkdir(parents=True)
    (chan / "noarch").mkdir()
    shutil.copy(host_python_package(), chan / "linux-64")
    for fn in REAL:
        os.symlink(realdata / "packages" / "conda-forge-linux-64" / fn, chan / "noarch" / fn)
    index_channel(chan)
    env = work / "environment.yml"
    env.write_text(f"name: pyimage\nchannels: ['{chan}']\ndependencies: [python {host_python_version()}, pip]\n")
    base = debian_base()
    out = {"work": work, "env": env}
    for name, extra in (("plain", ()), ("pyc", ("--compile-pyc",))):
        tar = work / f"{name}.tar"
        r = oci_conda("build", str(env), "-o", str(tar), "--base", base, "--tag", f"oci-conda-test/py-{name}:1",
                      "--json", *extra, env=_env(work / "cache"))
        out[name] = {"tar": tar, "summary": json.loads(r.stdout), "ref": f"oci-conda-test/py-{name}:1"}
    return out


def _env(cache: Path) -> dict:
    return dict(os.environ, OCI_CONDA_CACHE=str(cache), SOURCE_DATE_EPOCH="1700000000")


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
                        assert f is not None
                        out["/" + m.name] = (lay["source"], f.read())
    return out


def test_compiled_pyc_in_image_and_conda_meta(images: dict) -> None:
    files = layer_files(images["pyc"]["tar"], images["pyc"]["summary"])
    sources = sorted(p for p in files if p.startswith(SITE) and p.endswith(".py"))
    pycs = {p for p in files if p.endswith(f".{TAG}.pyc")}
    assert all(p.startswith(SITE) for p in pycs)  # site-packages only: the stdlib is python's business
    missing = [s for s in sources if f"{s.rsplit('/', 1)[0]}/__pycache__/{s.rsplit('/', 1)[1][:-3]}.{TAG}.pyc"
               not in pycs]
    assert len(sources) > 500 and len(pycs) == len(sources) - len(missing) and len(missing) < 20
    warnings = images["pyc"]["summary"]["platforms"][0]["warnings"]
    # whatever did not compile was reported (setuptools ships templates that are not valid Python)
    assert len(missing) == sum(int(w.split()[1]) for w in warnings if "do not compile" in w)
    listed: dict[str, str] = {}
    for path, (layer, data) in files.items():
        if path.startswith("/opt/conda/conda-meta/") and path.endswith(".json"):
            doc = json.loads(data)
            assert layer == path.rsplit("/", 1)[1][:-5]
            pd = {p["_path"]: p for p in doc["paths_data"]["paths"]}
            for f in doc["files"]:
                if f.endswith(".pyc"):
                    pyc_layer, pyc = files["/opt/conda/" + f]
                    assert pyc_layer == layer  # in the layer of the package whose record lists it
                    assert pd[f]["path_type"] == "pyc_file" and pd[f]["size_in_bytes"] == len(pyc)
                    assert pd[f]["sha256"] == hashlib.sha256(pyc).hexdigest()
                    listed["/opt/conda/" + f] = doc["name"]
    assert set(listed) == pycs
    assert listed[f"{SITE}/pip/__pycache__/__init__.{TAG}.pyc"] == "pip"
    assert listed[f"{SITE}/wheel/__pycache__/__init__.{TAG}.pyc"] == "wheel"
    layers = {lay["source"]: lay for lay in images["pyc"]["summary"]["platforms"][0]["layers"]}
    plain = {lay["source"]: lay for lay in images["plain"]["summary"]["platforms"][0]["layers"]}
    py = f"python-{host_python_version()}-0_host"
    assert layers[py]["digest"] == plain[py]["digest"]  # nothing of python's own changed


def test_pyc_build_is_reproducible(images: dict, tmp_path: Path) -> None:
    env = tmp_path / "elsewhere" / "environment.yml"
    env.parent.mkdir()
    env.write_text(images["env"].read_text())
    out = tmp_path / "again.tar"
    r = oci_conda("build", str(env), "-o", str(out), "--base", debian_base(), "--tag", images["pyc"]["ref"],
                  "--json", "--compile-pyc", env=_env(tmp_path / "cold-cache"))
    assert json.loads(r.stdout)["digest"] == images["pyc"]["summary"]["digest"]


def test_runs_and_the_interpreter_trusts_the_pyc_and_cold_start_is_faster(images: dict, tmp_path: Path) -> None:
    """Per image one container: the programs run from the prefix; the cold start is timed; then pip's internals are
    imported with bytecode writing on and site-packages is compared before and after."""
    summary = images["plain"]["summary"]
    names = {p["name"]: p["version"] for p in summary["platforms"][0]["packages"]}
    assert names == {"python": host_python_version(), "pip": "25.3", "setuptools": "80.9.0", "wheel": "0.45.1"}
    podman = Podman(tmp_path / "podman")
    try:
        out = {}
        for name in ("plain", "pyc"):
            podman("load", "-i", str(images[name]["tar"]))
            out[name] = podman("run", "--rm", images[name]["ref"], "/bin/sh", "-c", SCRIPT).stdout
        for name in ("plain", "pyc"):
            lines = out[name].splitlines()
            assert lines[:5] == ["/opt/conda", SITE, host_python_version(), f"pip 25.3 from {SITE}/pip (python {XY})",
                                 "wheel 0.45.1"]
            assert lines[5] == f"#!/opt/conda/bin/python{XY}"  # the entry point our installer wrote
        check = {name: "\n".join(out[name].splitlines()[-2:]) for name in out}
        assert check["pyc"].endswith("UNCHANGED") and "pyc: 0 before" not in check["pyc"], check["pyc"]
        # without --compile-pyc the same check sees python write into site-packages: the check can fail
        assert check["plain"].endswith("CHANGED") and not check["plain"].endswith("UNCHANGED"), check["plain"]
        assert "pyc: 0 before" in check["plain"], check["plain"]

        times = {name: [int(x) / 1000 for x in out[name].split("TIMES")[1].split("END")[0].split()] for name in out}
        for name, ms in times.items():
            assert len(ms) == RUNS
            print(f"\npip --version cold start, {name}: median {statistics.median(ms):.0f} ms, "
                  f"runs {', '.join(f'{m:.0f}' for m in ms)} ms")
        assert statistics.median(times["pyc"]) < statistics.median(times["plain"])
    finally:
        podman.cleanup()
