"""Output forms and time: OCI layout directories, zstd layers, SOURCE_DATE_EPOCH and its default."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, need_tool
from realenv import Podman, oci_conda

HELLO = REPO / "examples" / "hello" / "environment.yml"


def build(tmp: Path, out: str, *extra: str, epoch: str | None = None) -> dict:
    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp / "cache"))
    env.pop("SOURCE_DATE_EPOCH", None)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    return json.loads(oci_conda("build", str(HELLO), "-o", str(tmp / out), "--json", *extra, env=env).stdout)


def config_and_mtimes(archive: Path) -> tuple[dict, set[int]]:
    with tarfile.open(archive) as t:
        idx = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        blob = lambda d: t.extractfile(f"blobs/sha256/{d.split(':')[1]}").read()  # type: ignore[union-attr]  # noqa: E731
        man = json.loads(blob(idx["manifests"][0]["digest"]))
        cfg = json.loads(blob(man["config"]["digest"]))
        mtimes = set()
        for layer in man["layers"]:
            with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as lt:
                mtimes |= {m.mtime for m in lt.getmembers()}
    return cfg, mtimes


def test_source_date_epoch_sets_created_and_mtimes_and_defaults_to_newest_package(tmp_path: Path) -> None:
    a = build(tmp_path, "a.tar", epoch="1234567890")
    cfg, mtimes = config_and_mtimes(tmp_path / "a.tar")
    assert cfg["created"] == "2009-02-13T23:31:30Z" and mtimes == {1234567890}
    assert all(h["created"] == "2009-02-13T23:31:30Z" for h in cfg["history"])
    b = build(tmp_path, "b.tar", epoch="1234567891")
    assert a["manifest_digest"] != b["manifest_digest"]
    build(tmp_path, "c.tar")
    cfg, mtimes = config_and_mtimes(tmp_path / "c.tar")
    repodata = json.loads((REPO / "examples/hello/channel/linux-64/repodata.json").read_text())
    newest = max(r["timestamp"] for k in ("packages", "packages.conda") for r in repodata.get(k, {}).values())
    noarch = json.loads((REPO / "examples/hello/channel/noarch/repodata.json").read_text())
    newest = max([newest] + [r["timestamp"] for k in ("packages", "packages.conda") for r in noarch.get(k, {}).values()])
    assert mtimes == {newest // 1000}
    oci_conda("build", str(HELLO), "-o", str(tmp_path / "bad.tar"), check=False,
              env=dict(os.environ, SOURCE_DATE_EPOCH="yesterday", OCI_CONDA_CACHE=str(tmp_path / "cache")))
    assert not (tmp_path / "bad.tar").exists()


def test_layout_directory_output_unpacks_with_umoci(tmp_path: Path) -> None:
    need_tool("umoci")
    s = build(tmp_path, "layout-dir", "--tag", "hello:dir")
    d = tmp_path / "layout-dir"
    assert (d / "oci-layout").is_file() and (d / "index.json").is_file()
    r = subprocess.run(["umoci", "unpack", "--image", f"{d}:hello:dir", str(tmp_path / "bundle")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bundle/rootfs/opt/conda/bin/hello").is_file()
    assert json.loads((d / "index.json").read_text())["manifests"][0]["digest"] == s["manifest_digest"]


def test_zstd_layers_run_under_podman(tmp_path: Path) -> None:
    build(tmp_path, "z.tar", "--compression", "zstd")
    with tarfile.open(tmp_path / "z.tar") as t:
        idx = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        man = json.loads(t.extractfile(f"blobs/sha256/{idx['manifests'][0]['digest'].split(':')[1]}").read())  # type: ignore[union-attr]
    assert {layer["mediaType"] for layer in man["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    podman = Podman(tmp_path / "podman")
    try:
        r = podman("run", "--rm", f"oci-archive:{tmp_path / 'z.tar'}")
        assert "Hello from a conda package" in r.stdout
    finally:
        podman.cleanup()


@pytest.mark.parametrize("layering", ["packages", "single"])
def test_repeat_builds_are_identical(tmp_path: Path, layering: str) -> None:
    a = build(tmp_path, "1.tar", "--layering", layering, epoch="1700000000")
    b = build(tmp_path, "2.tar", "--layering", layering, "--trim", "none", epoch="1700000000")
    assert a["manifest_digest"] == b["manifest_digest"]
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
