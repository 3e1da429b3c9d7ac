"""pip: sections end to end, through the command line: the host's CPython as a conda package (pyfixture) with the
real noarch pip/setuptools/wheel, and the real wheels (requests and its dependencies, markupsafe) from a simple
index on 127.0.0.1. Layers, locks, bundles, errors, credentials and a two-platform build are checked on the
archive's bytes; ``test_image_runs_under_podman`` (slow) runs the image."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from pkgbuilder import build_package, index_channel
from pyfixture import host_python_package, host_python_version
from realenv import Podman, debian_base, oci_conda, one_error_line
from wheelhouse import WHEELHOUSE, SimpleIndex, build_sdist, real_wheelhouse

XY = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"opt/conda/lib/python{XY}/site-packages"
REAL = ("pip-25.3-pyh8b19718_0.conda", "setuptools-80.9.0-pyhff2d567_0.conda", "wheel-0.45.1-pyhd8ed1ab_1.conda")
SECRET = "s3cr3t-t0ken-xyz"
WHEELS = {"certifi", "charset-normalizer", "idna", "markupsafe", "requests", "urllib3"}


@pytest.fixture(scope="module")
def world(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    real_wheelhouse()
    if not (3, 10) <= sys.version_info[:2] <= (3, 12):
        pytest.skip("pip 25.3 needs python >=3.10,<3.13")
    work = tmp_path_factory.mktemp("pipimage")
    chan = work / "channel"
    for sd in ("linux-64", "linux-aarch64", "noarch"):
        (chan / sd).mkdir(parents=True)
    shutil.copy(host_python_package(), chan / "linux-64")
    # an aarch64 "python" for the two-platform build (its layers are inspected, never run)
    build_package(chan / "linux-aarch64", "python", host_python_version(), "0_host", subdir="linux-aarch64",
                  files={f"bin/python{XY}": b"#!/bin/sh\n"})
    build_package(chan / "noarch", "tool", "1.0", noarch="generic", subdir="noarch", files={"share/tool": b"x"})
    for fn in REAL:
        os.symlink(realdata / "packages" / "conda-forge-linux-64" / fn, chan / "noarch" / fn)
    index_channel(chan)
    sdists = work / "sdists"
    build_sdist(sdists, "onlysdist", "1.0")
    idx = SimpleIndex(WHEELHOUSE, sdists)
    auth = SimpleIndex(WHEELHOUSE, auth=("user", SECRET))
    yield {"work": work, "chan": chan, "idx": idx, "auth": auth, "cache": work / "cache", "base": debian_base()}
    idx.stop()
    auth.stop()


def _env(cache: Path) -> dict:
    return dict(os.environ, OCI_CONDA_CACHE=str(cache), SOURCE_DATE_EPOCH="1700000000")


def write_env(world: dict, name: str, pip: list[str], deps: tuple[str, ...] = ("pip", "setuptools")) -> Path:
    d = world["work"] / name
    d.mkdir()
    lines = [f"name: {name}", f"channels: ['{world['chan']}']", "dependencies:",
             f"  - python {host_python_version()}", *(f"  - {x}" for x in deps), "  - pip:",
             *(f"    - {x}" for x in pip)]
    env = d / "environment.yml"
    env.write_text("\n".join(lines) + "\n")
    return env


def build(world: dict, env: Path, out: Path, *extra: str, cache: Path | None = None) -> dict:
    r = oci_conda("build", str(env), "-o", str(out), "--base", world["base"], "--tag", "oci-conda-test/pip:1",
                  "--json", *extra, env=_env(cache or world["cache"]))
    return json.loads(r.stdout)


def layer_members(archive: Path, digest: str) -> dict[str, bytes | str]:
    """path -> bytes (files) or ``"->target"`` (symlinks) or ``"dir"`` of one layer of an OCI archive."""
    out: dict[str, bytes | str] = {}
    with tarfile.open(archive) as t:
        blob = t.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
        assert blob is not None
        with tarfile.open(fileobj=io.BytesIO(blob.read()), mode="r:*") as lt:
            for m in lt.getmembers():
                if m.isfile():
                    f = lt.extractfile(m)
                    assert f is not None
                    out[m.name] = f.read()
                else:
                    out[m.name] = "->" + m.linkname if m.issym() else "dir"
    return out


@pytest.fixture(scope="module")
def main(world: dict) -> dict:
    env = write_env(world, "main", [f"--index-url {world['idx'].simple_url()}", "requests", "markupsafe",
                                    "setuptools"])
    out = world["work"] / "main.tar"
    return {"env": env, "out": out, "summary": build(world, env, out)}


def test_wheels_each_in_their_own_layer(world: dict, main: dict) -> None:
    plat = main["summary"]["platforms"][0]
    assert {w["name"] for w in plat["pip_packages"]} == WHEELS  # setuptools: conda's counts as installed
    layers = {lay["source"]: lay for lay in plat["layers"]}
    assert {s for s in layers if s.startswith("pip: ")} == {f"pip: {w['name']} {w['version']}"
                                                           for w in plat["pip_packages"]}
    req = layer_members(main["out"], layers["pip: requests 2.32.3"]["digest"])
    files = [p for p, v in req.items() if isinstance(v, bytes)]
    assert all(p.startswith(f"{SITE}/requests") for p in files)  # only requests' own files
    assert req[f"{SITE}/requests-2.32.3.dist-info/INSTALLER"] == b"pip\n"
    assert f"{SITE}/requests-2.32.3.dist-info/REQUESTED" in req  # asked for by the section
    urllib3 = next(w for w in plat["pip_packages"] if w["name"] == "urllib3")
    dep = layer_members(main["out"], layers[f"pip: urllib3 {urllib3['version']}"]["digest"])
    assert not any(p.endswith("REQUESTED") for p in dep)  # only a dependency
    cn = next(w for w in plat["pip_packages"] if w["name"] == "charset-normalizer")
    script = layer_members(main["out"], layers[f"pip: charset-normalizer {cn['version']}"]["digest"])
    assert script["opt/conda/bin/normalizer"].splitlines()[0] == b"#!/opt/conda/bin/python"
    # setuptools is installed once, by conda
    seen = set()
    for lay in plat["layers"]:
        seen |= {p.split("/")[5] for p in layer_members(main["out"], lay["digest"])
                 if re.match(rf"{SITE}/setuptools-[^/]*\.(dist|egg)-info/", p)}
    assert seen == {"setuptools-80.9.0-py3.9.egg-info"}  # conda's (an egg-info); no wheel's dist-info beside it


def test_same_wheel_same_layer_in_another_image(world: dict, main: dict) -> None:
    env = write_env(world, "other", [f"--index-url {world['idx'].simple_url()}", "markupsafe"])
    summary = build(world, env, world["work"] / "other.tar")
    a = {lay["source"]: lay["digest"] for lay in main["summary"]["platforms"][0]["layers"]}
    b = {lay["source"]: lay["digest"] for lay in summary["platforms"][0]["layers"]}
    assert a["pip: markupsafe 3.0.2"] == b["pip: markupsafe 3.0.2"]
    assert [w["name"] for w in summary["platforms"][0]["pip_packages"]] == ["markupsafe"]


def test_lock_then_build_resolves_nothing_and_gives_the_same_digest(world: dict, main: dict) -> None:
    lock = main["env"].parent / "oci-conda.lock"
    oci_conda("lock", str(main["env"]), "-o", str(lock), "--base", world["base"], env=_env(world["cache"]))
    doc = json.loads(lock.read_text())
    wheels = doc["platforms"]["linux-64"]["wheels"]
    assert {w["name"] for w in wheels} == WHEELS
    assert all(len(w["sha256"]) == 64 and w["size"] > 0 and w["url"].startswith("http://127.0.0.1:")
               for w in wheels)
    world["idx"].log.clear()
    out = world["work"] / "from-lock.tar"
    summary = build(world, main["env"], out, "--lock", str(lock))
    assert summary["digest"] == main["summary"]["digest"]
    assert not [p for p, _ in world["idx"].log if p.startswith("/simple")]  # pip did not run
    main["lock"] = lock


def test_bundle_builds_offline_with_the_same_digest(world: dict, main: dict) -> None:
    if "lock" not in main:
        pytest.skip("needs the lock test")
    bundle = world["work"] / "bundle.tar"
    r = oci_conda("bundle", str(main["lock"]), "-o", str(bundle), "--json", env=_env(world["cache"]))
    assert json.loads(r.stdout)["wheels"] == len(WHEELS)
    with tarfile.open(bundle) as t:
        assert len([n for n in t.getnames() if n.startswith("wheels/") and n.endswith(".whl")]) == len(WHEELS)
    world["idx"].log.clear()
    fresh = world["work"] / "fresh-cache"
    out = world["work"] / "from-bundle.tar"
    r = oci_conda("build", "--from-bundle", str(bundle), "-o", str(out), "--tag", "oci-conda-test/pip:1", "--json",
                  env=_env(fresh))
    assert json.loads(r.stdout)["digest"] == main["summary"]["digest"]
    assert world["idx"].log == []  # nothing asked of the index


@pytest.mark.parametrize("pip,expect", [
    (["setuptools<50"], r"conda installed setuptools 80\.9\.0"),
    (["onlysdist"], r"a wheel is needed"),
])
def test_errors_are_one_line_and_leave_nothing(world: dict, pip: list[str], expect: str) -> None:
    env = write_env(world, f"err-{pip[0][:5]}", [f"--index-url {world['idx'].simple_url()}", *pip])
    out = world["work"] / f"err-{pip[0][:5]}.tar"
    p = oci_conda("build", str(env), "-o", str(out), "-q", env=_env(world["cache"]), check=False)
    line = one_error_line(p)
    assert re.search(expect, line), line
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def test_pip_section_without_conda_python_is_one_error(world: dict) -> None:
    env = world["work"] / "nopy" / "environment.yml"
    env.parent.mkdir()
    env.write_text(f"channels: ['{world['chan']}']\ndependencies:\n  - tool\n  - pip:\n    - markupsafe\n")
    out = world["work"] / "nopy.tar"
    p = oci_conda("build", str(env), "-o", str(out), "-q", env=_env(world["cache"]), check=False)
    line = one_error_line(p)
    assert "needs python from conda" in line and str(env) in line
    assert not out.exists()


def test_index_credentials_never_appear(world: dict) -> None:
    url = world["auth"].simple_url("user", SECRET)
    env = write_env(world, "creds", [f"--index-url {url}", "markupsafe"])
    out = world["work"] / "creds.tar"
    r = oci_conda("build", str(env), "-o", str(out), "--base", world["base"], "--json", env=_env(world["cache"]))
    assert SECRET not in r.stdout + r.stderr
    assert [w["name"] for w in json.loads(r.stdout)["platforms"][0]["pip_packages"]] == ["markupsafe"]
    assert any(had for path, had in world["auth"].log if path.startswith("/files/"))  # the wheel came with auth
    assert SECRET.encode() not in out.read_bytes()
    lock = env.parent / "oci-conda.lock"
    r = oci_conda("lock", str(env), "-o", str(lock), "--base", world["base"], env=_env(world["cache"]))
    assert SECRET not in r.stdout + r.stderr and SECRET not in lock.read_text()
    r = oci_conda("inspect", str(out), env=_env(world["cache"]))
    assert SECRET not in r.stdout + r.stderr


def test_two_platforms_pick_the_aarch64_wheel(world: dict) -> None:
    env = write_env(world, "multi", [f"--index-url {world['idx'].simple_url()}", "markupsafe"], deps=())
    out = world["work"] / "multi.tar"
    r = oci_conda("build", str(env), "-o", str(out), "--platform", "linux-64", "--platform", "linux-aarch64",
                  "--json", env=_env(world["cache"]))
    summary = json.loads(r.stdout)
    machines = {}
    for plat in summary["platforms"]:
        (w,) = plat["pip_packages"]
        lay = next(lay for lay in plat["layers"] if lay["source"] == "pip: markupsafe 3.0.2")
        so = [p for p in layer_members(out, lay["digest"]) if p.endswith(".so")]
        assert len(so) == 1
        machines[plat["platform"]] = (w["filename"], so[0])
    assert "x86_64" in machines["linux-64"][0] and "x86_64-linux-gnu" in machines["linux-64"][1]
    assert "aarch64" in machines["linux-aarch64"][0] and "aarch64-linux-gnu" in machines["linux-aarch64"][1]


SCRIPT = """
set -e
python -c 'import requests, markupsafe; print("IMPORTS", requests.__version__, markupsafe.escape("<a>"))'
normalizer --version
python -m pip check
python -m pip list --format=json
"""


@pytest.mark.slow
def test_image_runs_under_podman(world: dict, main: dict) -> None:
    podman = Podman(world["work"] / "podman")
    try:
        podman("load", "-i", str(main["out"]))
        out = podman("run", "oci-conda-test/pip:1", "/bin/sh", "-c", SCRIPT).stdout
    finally:
        podman.cleanup()
    lines = out.splitlines()
    assert "IMPORTS 2.32.3 &lt;a&gt;" in lines
    assert any(ln.startswith("Charset-Normalizer") or "charset" in ln.lower() for ln in lines)
    assert "No broken requirements found." in lines
    listed = {p["name"].lower(): p["version"] for p in json.loads(lines[-1])}
    assert WHEELS <= set(listed) and listed["setuptools"] == "80.9.0" and listed["requests"] == "2.32.3"


def test_conda_lock_with_pip_entries_builds(world: dict) -> None:
    """A conda-lock v1 file whose ``manager: pip`` entries pin the wheels: built without running pip."""
    env = write_env(world, "clock", [f"--index-url {world['idx'].simple_url()}", "markupsafe"], deps=())
    lock = env.parent / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), env=_env(world["cache"]))
    plat = json.loads(lock.read_text())["platforms"]["linux-64"]
    entries = []
    for r in plat["packages"]:
        entries.append(f"  - name: {r['name']}\n    version: '{r['version']}'\n    manager: conda\n"
                       f"    platform: linux-64\n    dependencies: {{}}\n    url: {r['url']}\n"
                       f"    hash: {{md5: {r['md5']}, sha256: {r['sha256']}}}\n    category: main\n"
                       "    optional: false\n")
    for w in plat["wheels"]:
        entries.append(f"  - name: {w['name']}\n    version: '{w['version']}'\n    manager: pip\n"
                       f"    platform: linux-64\n    dependencies: {{}}\n    url: {w['url']}\n"
                       f"    hash: {{sha256: {w['sha256']}}}\n    category: main\n    optional: false\n")
    clock = world["work"] / "conda-lock.yml"
    clock.write_text("version: 1\nmetadata:\n  platforms: [linux-64]\n  channels: []\npackage:\n" + "".join(entries))
    world["idx"].log.clear()
    out = world["work"] / "clock.tar"
    r = oci_conda("build", "--lock", str(clock), "-o", str(out), "--json", env=_env(world["cache"]))
    summary = json.loads(r.stdout)["platforms"][0]
    assert [w["name"] for w in summary["pip_packages"]] == ["markupsafe"]
    assert not [p for p, _ in world["idx"].log if p.startswith("/simple")]
    lay = next(lay for lay in summary["layers"] if lay["source"] == "pip: markupsafe 3.0.2")
    files = layer_members(out, lay["digest"])
    assert f"{SITE}/markupsafe/__init__.py" in files and f"{SITE}/MarkupSafe-3.0.2.dist-info/INSTALLER" in files


def test_compile_pyc_covers_wheels_and_their_record(world: dict) -> None:
    env = write_env(world, "pyc", [f"--index-url {world['idx'].simple_url()}", "markupsafe"], deps=())
    out = world["work"] / "pyc.tar"
    r = oci_conda("build", str(env), "-o", str(out), "--compile-pyc", "--json", env=_env(world["cache"]))
    summary = json.loads(r.stdout)["platforms"][0]
    lay = next(lay for lay in summary["layers"] if lay["source"] == "pip: markupsafe 3.0.2")
    files = layer_members(out, lay["digest"])
    tag = sys.implementation.cache_tag
    pyc = f"{SITE}/markupsafe/__pycache__/__init__.{tag}.pyc"
    assert isinstance(files[pyc], bytes) and files[pyc][:4] == importlib.util.MAGIC_NUMBER
    record = files[f"{SITE}/MarkupSafe-3.0.2.dist-info/RECORD"]
    assert isinstance(record, bytes)
    rows = {row.split(",")[0]: row for row in record.decode().splitlines()}
    digest = base64.urlsafe_b64encode(hashlib.sha256(files[pyc]).digest()).rstrip(b"=").decode()
    assert rows[f"markupsafe/__pycache__/__init__.{tag}.pyc"] == \
        f"markupsafe/__pycache__/__init__.{tag}.pyc,sha256={digest},{len(files[pyc])}"


def test_inspect_and_diff_list_pip_packages(world: dict, main: dict) -> None:
    r = oci_conda("inspect", str(main["out"]), "--json", env=_env(world["cache"]))
    (view,) = json.loads(r.stdout)["platforms"]
    assert {p["name"].lower() for p in view["pip_packages"]} == WHEELS  # conda's pip/setuptools/wheel are not
    assert {p["name"] for p in view["packages"]} == {"python", "pip", "setuptools", "wheel"}
    other = world["work"] / "other.tar"
    if not other.exists():
        pytest.skip("needs test_same_wheel_same_layer_in_another_image")
    r = oci_conda("diff", str(main["out"]), str(other), "--json", env=_env(world["cache"]))
    d = json.loads(r.stdout)["platforms"]["linux/amd64"]
    assert {p["name"].lower() for p in d["pip_removed"]} == WHEELS - {"markupsafe"}
    assert d["pip_added"] == [] and d["pip_changed"] == []
    text = oci_conda("diff", str(main["out"]), str(other), env=_env(world["cache"])).stdout
    assert "  - pip:requests 2.32.3" in text.splitlines()
