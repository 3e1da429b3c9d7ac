"""Multi-platform builds: one index, a manifest per platform, each solved and installed for its own subdir."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import need_tool
from pkgbuilder import build_package, index_channel
from realenv import oci_conda


@pytest.fixture(scope="module")
def two_platform(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("multi")
    chan = work / "channel"
    for subdir, arch in (("linux-64", "x86_64"), ("linux-aarch64", "aarch64")):
        (chan / subdir).mkdir(parents=True)
        build_package(chan / subdir, "tool", "2.0", subdir=subdir, depends=["__glibc >=2.17", "data"],
                      files={"bin/tool": f"#!/bin/sh\necho built for {arch}\n", f"lib/libtool-{arch}.so": arch})
        build_package(chan / subdir, "tool", "1.0", subdir=subdir, files={"bin/tool": "old\n"})
    (chan / "noarch").mkdir()
    build_package(chan / "noarch", "data", "1.0", subdir="noarch", noarch="generic", files={"share/data.txt": "d\n"})
    index_channel(chan)
    env = work / "environment.yml"
    env.write_text(f"name: multi\nchannels: ['{chan}']\ndependencies: [tool]\nimage:\n  tag: multi:1\n")
    out = work / "multi.tar"
    e = dict(os.environ, OCI_CONDA_CACHE=str(work / "cache"), SOURCE_DATE_EPOCH="1700000000")
    p = oci_conda("build", str(env), "-o", str(out), "--platform", "linux-64", "--platform", "linux-aarch64", "--json",
                  env=e)
    return {"work": work, "out": out, "summary": json.loads(p.stdout), "env": env, "e": e}


def _blob(t: tarfile.TarFile, digest: str) -> bytes:
    return t.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]


def manifests(archive: Path) -> dict[str, dict]:
    """platform string -> {manifest, config, files (all paths in its layers)} walking the index (nested or not)."""
    out = {}
    with tarfile.open(archive) as t:
        todo = json.load(t.extractfile("index.json"))["manifests"]  # type: ignore[arg-type]
        while todo:
            d = todo.pop()
            doc = json.loads(_blob(t, d["digest"]))
            if "manifests" in doc:
                todo.extend(doc["manifests"])
                continue
            cfg = json.loads(_blob(t, doc["config"]["digest"]))
            files = {}
            for layer in doc["layers"]:
                with tarfile.open(fileobj=io.BytesIO(_blob(t, layer["digest"])), mode="r:*") as lt:
                    for m in lt.getmembers():
                        if m.isfile():
                            files[m.name] = lt.extractfile(m).read()  # type: ignore[union-attr]
            plat = d.get("platform") or {}
            key = "/".join(x for x in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if x)
            out[key] = {"descriptor": d, "manifest": doc, "config": cfg, "files": files}
    return out


def test_index_has_a_manifest_per_platform_with_its_own_packages(two_platform: dict) -> None:
    m = manifests(two_platform["out"])
    assert set(m) == {"linux/amd64", "linux/arm64/v8"}
    assert m["linux/arm64/v8"]["config"]["architecture"] == "arm64"
    assert m["linux/arm64/v8"]["config"].get("variant") == "v8"
    assert m["linux/amd64"]["config"]["architecture"] == "amd64"
    amd, arm = m["linux/amd64"]["files"], m["linux/arm64/v8"]["files"]
    assert amd["opt/conda/bin/tool"] == b"#!/bin/sh\necho built for x86_64\n"
    assert arm["opt/conda/bin/tool"] == b"#!/bin/sh\necho built for aarch64\n"
    assert "opt/conda/lib/libtool-aarch64.so" not in amd and "opt/conda/lib/libtool-x86_64.so" not in arm
    for files, subdir in ((amd, "linux-64"), (arm, "linux-aarch64")):
        rec = json.loads(files["opt/conda/conda-meta/tool-2.0-0.json"])
        assert rec["subdir"] == subdir
        assert json.loads(files["opt/conda/conda-meta/data-1.0-0.json"])["subdir"] == "noarch"
    # the noarch package's layer is the same blob in both platforms
    shared = {lay["digest"] for lay in m["linux/amd64"]["manifest"]["layers"]} & \
             {lay["digest"] for lay in m["linux/arm64/v8"]["manifest"]["layers"]}
    assert len(shared) == 1
    plats = [p["platform"] for p in two_platform["summary"]["platforms"]]
    assert plats == ["linux-64", "linux-aarch64"]


def test_skopeo_picks_the_platform(two_platform: dict, tmp_path: Path) -> None:
    need_tool("skopeo")
    import hashlib

    m = manifests(two_platform["out"])
    for arch, key in (("arm64", "linux/arm64/v8"), ("amd64", "linux/amd64")):
        r = subprocess.run(["skopeo", "--override-arch", arch, "--override-os", "linux", "inspect",
                            f"oci-archive:{two_platform['out']}:multi:1"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["Architecture"] == arch
        dest = tmp_path / arch
        r = subprocess.run(["skopeo", "--override-arch", arch, "--override-os", "linux", "copy",
                            f"oci-archive:{two_platform['out']}:multi:1", f"dir:{dest}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        copied = (dest / "manifest.json").read_bytes()
        assert "sha256:" + hashlib.sha256(copied).hexdigest() == m[key]["descriptor"]["digest"]


def test_each_platform_unpacks_with_umoci(two_platform: dict, tmp_path: Path) -> None:
    """umoci takes one manifest at a time: tag each platform's manifest in a copy of the layout and unpack it."""
    need_tool("umoci")
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(two_platform["out"]), "-C", str(layout)], check=True)
    m = manifests(two_platform["out"])
    index = {"schemaVersion": 2, "manifests": []}
    for key, v in m.items():
        d = dict(v["descriptor"], annotations={"org.opencontainers.image.ref.name": key.replace("/", "-")})
        index["manifests"].append(d)
    (layout / "index.json").write_text(json.dumps(index))
    for key in m:
        bundle = tmp_path / key.replace("/", "-")
        r = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{key.replace('/', '-')}", str(bundle)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert (bundle / "rootfs/opt/conda/bin/tool").exists()
    shutil.rmtree(layout)


def test_real_aarch64_records_solve_for_their_platform(realdata: Path, tmp_path: Path) -> None:
    """Real (derived) conda-forge linux-aarch64 records solve with aarch64 virtual packages on any host."""
    src = realdata / "repodata" / "derived-from-pixi-lock"
    chan = tmp_path / "cf"
    for subdir, name in (("linux-aarch64", "conda-forge-linux-aarch64.json"), ("noarch", "conda-forge-noarch.json")):
        (chan / subdir).mkdir(parents=True)
        data = json.loads((src / name).read_text())
        for key in ("packages", "packages.conda"):  # the derived records lack 'build'; it is in the file name
            for fn, rec in data.get(key, {}).items():
                stem = fn[: -len(".tar.bz2")] if fn.endswith(".tar.bz2") else fn[: -len(".conda")]
                rec.setdefault("build", stem.rsplit("-", 1)[1])
                if subdir == "noarch":  # derived from lockfiles of several platforms: their 'subdir' says which
                    rec["subdir"] = "noarch"
        (chan / subdir / "repodata.json").write_text(json.dumps(data))
    names = {r["name"] for r in json.loads((chan / "linux-aarch64" / "repodata.json").read_text())
             .get("packages.conda", {}).values()} | {r["name"] for r in json.loads(
                 (chan / "linux-aarch64" / "repodata.json").read_text()).get("packages", {}).values()}
    want = "python" if "python" in names else sorted(names)[0]
    env = tmp_path / "e.yml"
    env.write_text(f"channels: ['{chan}']\ndependencies: [{want}]\n")
    p = oci_conda("solve", str(env), "--platform", "linux-aarch64", "--json",
                  env=dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "c")))
    recs = json.loads(p.stdout)
    assert want in {r["name"] for r in recs}
    assert {r["subdir"] for r in recs} <= {"linux-aarch64", "noarch"}


def test_index_and_both_manifests_validate_against_the_oci_schemas(two_platform: dict, realdata: Path) -> None:
    from oci_schema import validate_layout_archive

    assert validate_layout_archive(two_platform["out"], realdata) == 6  # index, nested index, 2 manifests, 2 configs
