"""Tags: repeatable, checked against the reference grammar, pushed; the default name never shadows a Hub image."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import need_tool
from pkgbuilder import build_package, index_channel
from realenv import Podman, oci_conda, one_error_line
from registry_fixtures import Servers, servers  # noqa: F401


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    chan = tmp_path / "channel"
    build_package(chan / "linux-64", "hello", "1.0", files={"bin/hello": "#!/bin/sh\necho hello\n"})
    index_channel(chan)
    f = tmp_path / "environment.yml"
    f.write_text("name: python\nchannels: ['./channel']\ndependencies: [hello]\n")  # a name Docker Hub has
    return f


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))


def _ref_names(archive: Path) -> list[str]:
    index = json.loads(subprocess.run(["tar", "-xOf", str(archive), "index.json"], check=True,
                                      capture_output=True).stdout)
    return [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]


def test_default_name_is_under_localhost(env_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    oci_conda("build", str(env_file), "-o", str(out), "-q", env=_env(tmp_path))
    assert _ref_names(out) == ["localhost/python:latest"]


@pytest.mark.parametrize("bad", ["Foo:1", "a b", "x:bad tag", "x:" + "t" * 129, "x@sha256:" + "0" * 64, "x//y:1"])
def test_invalid_tags_are_one_line_and_write_nothing(env_file: Path, tmp_path: Path, bad: str) -> None:
    out = tmp_path / "img.tar"
    p = oci_conda("build", str(env_file), "-o", str(out), "--tag", "ok:1", "--tag", bad, env=_env(tmp_path),
                  check=False)
    assert p.returncode == 2 and not out.exists()
    line = one_error_line(p)
    assert "--tag" in line and "invalid image name" in line


def test_file_tag_is_checked_too(env_file: Path, tmp_path: Path) -> None:
    env_file.write_text(env_file.read_text() + "image: {tag: 'My Image:1'}\n")
    p = oci_conda("build", str(env_file), "-o", str(tmp_path / "x.tar"), env=_env(tmp_path), check=False)
    assert p.returncode == 2 and "image.tag" in one_error_line(p) and str(env_file) in p.stderr


def test_every_tag_is_written_and_podman_loads_them(env_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    tags = ["example.com/team/tool:1.0", "tool:stable", "localhost/tool:x"]
    oci_conda("build", str(env_file), "-o", str(out), "-q", *[a for t in tags for a in ("--tag", t)],
              env=_env(tmp_path))
    assert _ref_names(out) == tags
    need_tool("podman")
    pm = Podman(tmp_path / "podman")
    try:
        pm("load", "-i", str(out))
        names = set(json.loads(pm("images", "--format", "json").stdout)[0]["Names"])
        assert {"example.com/team/tool:1.0", "localhost/tool:stable", "localhost/tool:x"} <= names, names
    finally:
        pm.cleanup()


def test_push_with_several_tags(env_file: Path, tmp_path: Path, servers: Servers) -> None:  # noqa: F811
    r = servers.registry()
    p = oci_conda("build", str(env_file), "--push", f"{r.host}/team/tool:1", "--tag", "tool:stable", "--tag",
                  "x/tool:2", "-q", env=_env(tmp_path))
    ref, _, digest = p.stdout.strip().partition("@")
    assert ref == f"{r.host}/team/tool:1" and digest.startswith("sha256:")
    for tag in ("1", "stable", "2"):
        got = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{r.host}/team/tool:{tag}"],
                             check=True, capture_output=True)
        assert got.returncode == 0
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{r.host}/team/tool"],
                          check=True, capture_output=True, text=True)
    assert sorted(json.loads(tags.stdout)["Tags"]) == ["1", "2", "stable"]
