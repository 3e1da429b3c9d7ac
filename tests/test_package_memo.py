"""The per-package layer memo (layers/memo.py, stage.layers_by_package): a build that lacks some layers
installs only the packages of those layers, and its image is byte for byte the image a build with an empty cache
makes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from pkgbuilder import build_package, index_channel
from realenv import oci_conda

PY = "lib/python3.11/site-packages"


def _channel(root: Path, app_build: int = 0, tool_build: int = 0) -> Path:
    chan = root / "channel"
    for sd in ("linux-64", "noarch"):
        (chan / sd).mkdir(parents=True, exist_ok=True)
        for old in (chan / sd).glob("*.conda"):
            old.unlink()
    build_package(chan / "linux-64", "big", "1.0", files={"lib/big.so": bytes(range(256)) * 800})
    build_package(chan / "linux-64", "mid", "1.0", files={
        "lib/mid.so": bytes(range(255, -1, -1)) * 300,
        "etc/conda/activate.d/mid.sh": 'export MID_HOME="$CONDA_PREFIX/share/mid"\n',
        "share/doc/mid/README": "docs " * 200})
    for name in ("small-a", "small-b", "small-c"):
        build_package(chan / "linux-64", name, "1.0", files={f"share/{name}/data": name * 50})
    build_package(chan / "linux-64", "python", "3.11.9", files={"bin/python3.11": "#!/bin/sh\n", f"{PY}/os.py": "#"})
    build_package(chan / "noarch", "tool", "2.0", build=str(tool_build), build_number=tool_build, noarch="python",
                  depends=["python"], entry_points=["tool = tool.cli:main"],
                  files={"site-packages/tool/__init__.py": f"V = {tool_build}\n", "site-packages/tool/cli.py": "x=1\n"},
                  timestamp=1700000000000 + tool_build * 1000)
    build_package(chan / "linux-64", "app", "1.0", build=str(app_build), build_number=app_build,
                  depends=["big", "mid", "small-a", "small-b", "small-c", "tool"],
                  files={"bin/app": f"#!/bin/sh\necho {app_build}\n"}, timestamp=1700000000000 + app_build * 1000)
    index_channel(chan)
    return chan


def _build(tmp: Path, chan: Path, out: str, deps: str = "app", cache: str = "cache", *extra: str) -> dict:
    env = tmp / f"{out}.yml"
    env.write_text(f"name: pm\nchannels: ['{chan}']\ndependencies: [{deps}]\n")
    e = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    e["OCI_CONDA_CACHE"] = str(tmp / cache)
    p = oci_conda("build", str(env), "-o", str(tmp / out), "--json", *extra, env=e)
    return json.loads(p.stdout)


def _files(tmp: Path, dist: str) -> list[Path]:
    """A package's file and extraction in the cache (the file is named by its sha256, the extraction by both)."""
    cache = tmp / "cache"
    extracted = list((cache / "extracted").glob(f"*-{dist}"))
    shas = {p.name.split("-", 1)[0] for p in extracted}
    for sd in ("linux-64", "noarch"):
        for f in (tmp / "channel" / sd).glob(f"{dist}.conda"):
            shas.add(hashlib.sha256(f.read_bytes()).hexdigest())
    return extracted + [p for s in shas for p in (cache / "pkgs").glob(f"{s}*")]


def _forget(tmp: Path, dist: str) -> None:
    """Remove a package's file and extraction from the cache: a build that needs them must fetch them again."""
    found = _files(tmp, dist)
    assert found, dist
    for p in found:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _cached(tmp: Path, dist: str) -> bool:
    return bool(_files(tmp, dist))


@pytest.mark.parametrize("extra", [(), ("--max-layers", "4", "--trim", "safe")], ids=["own-layers", "groups-trim"])
def test_a_bump_installs_only_the_changed_layers_packages(tmp_path: Path, extra: tuple[str, ...]) -> None:
    chan = _channel(tmp_path)
    first = _build(tmp_path, chan, "a.tar", "app", "cache", *extra)
    for dist in ("big-1.0-0", "mid-1.0-0", "python-3.11.9-0"):
        _forget(tmp_path, dist)
    _channel(tmp_path, app_build=1)  # a newer build of the leaf (and a newer newest timestamp)
    bumped = _build(tmp_path, chan, "b.tar", "app", "cache", *extra)
    fresh = _build(tmp_path, chan, "c.tar", "app", "fresh-cache", *extra)
    assert (tmp_path / "b.tar").read_bytes() == (tmp_path / "c.tar").read_bytes()
    assert bumped["platforms"][0]["trimmed"] == fresh["platforms"][0]["trimmed"]
    assert bumped["platforms"][0]["activation"] == {"MID_HOME": "/opt/conda/share/mid"}
    # neither fetched nor extracted again (with groups, python shares app's group layer: it is installed again)
    for dist in ("big-1.0-0", "mid-1.0-0") + (() if extra else ("python-3.11.9-0",)):
        assert not _cached(tmp_path, dist), dist
    before = {lay["digest"] for lay in first["platforms"][0]["layers"]}
    changed = [lay["source"] for lay in bumped["platforms"][0]["layers"] if lay["digest"] not in before]
    if not extra:
        assert changed == ["app-1.0-1", "environment files"]
    else:  # app shares a group layer: that group and the top change, nothing else
        assert len(changed) == 2 and changed[-1] == "environment files" and changed[0].startswith("smaller packages")


def test_a_noarch_python_bump_and_another_environment_reuse_remembered_layers(tmp_path: Path) -> None:
    chan = _channel(tmp_path)
    _build(tmp_path, chan, "a.tar")
    _forget(tmp_path, "big-1.0-0")
    _channel(tmp_path, tool_build=1)
    _build(tmp_path, chan, "b.tar")  # python is installed again for conda-pack, but its layer is remembered
    _build(tmp_path, chan, "c.tar", "app", "fresh-cache")
    assert (tmp_path / "b.tar").read_bytes() == (tmp_path / "c.tar").read_bytes()
    assert not _cached(tmp_path, "big-1.0-0")
    # another environment made of remembered packages: nothing is fetched or extracted
    _forget(tmp_path, "mid-1.0-0")
    other = _build(tmp_path, chan, "d.tar", "big, mid")
    assert "extract" not in other["timings"] and not _cached(tmp_path, "mid-1.0-0")
    _build(tmp_path, chan, "e.tar", "big, mid", "fresh-cache")
    assert (tmp_path / "d.tar").read_bytes() == (tmp_path / "e.tar").read_bytes()


def test_packages_shipping_one_path_take_the_full_path(tmp_path: Path) -> None:
    """Which copy of a shared path wins is decided by installing both: the memo steps aside, bytes stay exact."""
    chan = _channel(tmp_path)
    build_package(chan / "linux-64", "clash", "1.0", files={"lib/big.so": b"the other copy"})
    index_channel(chan)
    _build(tmp_path, chan, "a.tar", "big")
    s = _build(tmp_path, chan, "b.tar", "big, clash")
    _build(tmp_path, chan, "c.tar", "big, clash", "fresh-cache")
    assert (tmp_path / "b.tar").read_bytes() == (tmp_path / "c.tar").read_bytes()
    assert any("installed by" in w for w in s["platforms"][0]["warnings"])
