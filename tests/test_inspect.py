"""inspect / diff on real builds: two example-channel variants that differ by one package report exactly it."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import REPO
from pkgbuilder import build_package, index_channel
from realenv import oci_conda

HELLO = REPO / "examples" / "hello"


def _variant(root: Path, extra_version: str | None) -> Path:
    """The example channel, plus (optionally) a package ``extra`` at ``extra_version``; an env file using it."""
    chan = root / "channel"
    shutil.copytree(HELLO / "channel", chan)
    deps = ["hello"]
    if extra_version is not None:
        build_package(chan / "linux-64", "extra", extra_version, files={"share/extra/README": f"extra {extra_version}\n"})
        index_channel(chan)
        deps.append("extra")
    env = root / "environment.yml"
    env.write_text(f"name: v\nchannels: [./channel]\ndependencies: [{', '.join(deps)}]\n")
    return env


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("inspect")
    import os

    os.environ["OCI_CONDA_CACHE"] = str(root / "cache")
    try:
        out = {}
        for name, extra in (("plain", None), ("extra1", "1.0"), ("extra2", "2.0")):
            env = _variant(root / name, extra)
            res = json.loads(oci_conda("build", str(env), "-o", str(root / f"{name}.tar"), "--json").stdout)
            out[name] = (root / f"{name}.tar", res)
        # one as an OCI layout directory, too
        oci_conda("build", str(root / "extra1" / "environment.yml"), "-o", str(root / "extra1-layout"), "-q")
        out["layout"] = (root / "extra1-layout", out["extra1"][1])
        yield out
    finally:
        del os.environ["OCI_CONDA_CACHE"]


def _raw_manifest(archive: Path) -> dict:
    with tarfile.open(archive) as t:
        idx = json.load(t.extractfile("index.json"))
        d = idx["manifests"][0]["digest"].split(":", 1)[1]
        return json.load(t.extractfile(f"blobs/sha256/{d}"))


@pytest.mark.parametrize("which", ["plain", "extra1", "layout"])
def test_inspect_packages_come_from_conda_meta(images, which: str) -> None:
    path, built = images[which]
    doc = json.loads(oci_conda("inspect", str(path), "--json").stdout)
    (p,) = doc["platforms"]
    assert p["platform"] == "linux/amd64" and p["manifest_digest"] == built["manifest_digest"]
    got = sorted((x["name"], x["version"], x["build"]) for x in p["packages"])
    assert got == sorted((x["name"], x["version"], x["build"]) for x in built["platforms"][0]["packages"])
    assert all(x["prefix"] == "/opt/conda" for x in p["packages"])
    # layers: as the build reported them; each package's conda-meta record is in exactly one layer
    assert [x["digest"] for x in p["layers"]] == [x["digest"] for x in built["platforms"][0]["layers"]]
    assert [x["size"] for x in p["layers"]] == [x["size"] for x in built["platforms"][0]["layers"]]
    dists = [d for x in p["layers"] for d in x["packages"]]
    assert sorted(dists) == sorted(f"{n}-{v}-{b}" for n, v, b in got)
    text = oci_conda("inspect", str(path)).stdout
    for n, v, b in got:
        assert f"{n} {v} {b}" in text


def test_inspect_ignores_labels(tmp_path: Path, cache_env) -> None:
    shutil.copytree(HELLO / "channel", tmp_path / "channel")
    env = tmp_path / "environment.yml"
    env.write_text("channels: [./channel]\ndependencies: [hello]\n"
                   "image:\n  labels: {org.example.packages: 'numpy python'}\n")
    oci_conda("build", str(env), "-o", str(tmp_path / "x.tar"), "-q")
    doc = json.loads(oci_conda("inspect", str(tmp_path / "x.tar"), "--json").stdout)
    assert sorted(x["name"] for x in doc["platforms"][0]["packages"]) == ["hello", "hello-data"]


def test_diff_reports_exactly_the_added_package(images) -> None:
    a, _ = images["plain"]
    b, built_b = images["extra1"]
    d = json.loads(oci_conda("diff", str(a), str(b), "--json").stdout)
    (r,) = d["platforms"].values()
    assert [x["name"] for x in r["added"]] == ["extra"] and r["removed"] == [] and r["changed"] == []
    assert r["added"][0]["version"] == "1.0"
    ma, mb = _raw_manifest(a), _raw_manifest(b)
    la = {x["digest"]: x["size"] for x in ma["layers"]}
    lb = {x["digest"]: x["size"] for x in mb["layers"]}
    assert set(r["layers_shared"]) == set(la) & set(lb)
    assert r["bytes_only_in_b"] == sum(s for dg, s in lb.items() if dg not in la)
    assert r["bytes_only_in_a"] == sum(s for dg, s in la.items() if dg not in lb)
    # the package layers of hello and hello-data are the same blobs in both images
    assert len(r["layers_shared"]) >= 2
    back = json.loads(oci_conda("diff", str(b), str(a), "--json").stdout)
    (rb,) = back["platforms"].values()
    assert [x["name"] for x in rb["removed"]] == ["extra"] and rb["added"] == []
    text = oci_conda("diff", str(a), str(b)).stdout
    assert "+ extra 1.0 0" in text


def test_diff_reports_exactly_the_changed_package(images) -> None:
    a, _ = images["extra1"]
    b, _ = images["extra2"]
    d = json.loads(oci_conda("diff", str(a), str(b), "--json").stdout)
    (r,) = d["platforms"].values()
    assert r["added"] == [] and r["removed"] == []
    assert r["changed"] == [{"name": "extra", "prefix": "/opt/conda", "from": "1.0-0", "to": "2.0-0"}]
    # an archive and a layout of the same build are the same image
    same = json.loads(oci_conda("diff", str(images["extra1"][0]), str(images["layout"][0]), "--json").stdout)
    (s,) = same["platforms"].values()
    assert s["added"] == s["removed"] == s["changed"] == [] and s["bytes_only_in_a"] == s["bytes_only_in_b"] == 0


def test_inspect_errors_are_one_line(tmp_path: Path) -> None:
    p = oci_conda("inspect", str(tmp_path / "missing.tar"), check=False)
    assert p.returncode == 2 and "missing.tar" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    junk = tmp_path / "junk.tar"
    junk.write_bytes(hashlib.sha256(b"x").digest() * 100)
    p = oci_conda("inspect", str(junk), check=False)
    assert p.returncode == 2 and "junk.tar" in p.stderr and "Traceback" not in p.stderr


def test_inspect_keeps_environments_of_base_and_image_apart(images, tmp_path: Path, cache_env) -> None:
    base, base_built = images["plain"]
    shutil.copytree(HELLO / "channel", tmp_path / "channel")
    env = tmp_path / "environment.yml"
    env.write_text(f"channels: [./channel]\ndependencies: [hello]\nimage:\n  base: oci-archive:{base}\n"
                   "  prefix: /opt/env\n")
    oci_conda("build", str(env), "-o", str(tmp_path / "x.tar"), "-q")
    doc = json.loads(oci_conda("inspect", str(tmp_path / "x.tar"), "--json").stdout)
    got = sorted((x["prefix"], x["name"]) for x in doc["platforms"][0]["packages"])
    want = sorted({("/opt/conda", p["name"]) for p in base_built["platforms"][0]["packages"]}
                  | {("/opt/env", "hello"), ("/opt/env", "hello-data")})
    assert got == want
    d = json.loads(oci_conda("diff", str(base), str(tmp_path / "x.tar"), "--json").stdout)
    (r,) = d["platforms"].values()
    assert sorted((x["prefix"], x["name"]) for x in r["added"]) == [("/opt/env", "hello"), ("/opt/env", "hello-data")]
    assert r["removed"] == [] and r["changed"] == []
    assert set(r["layers_shared"]) == {x["digest"] for x in base_built["platforms"][0]["layers"]}
