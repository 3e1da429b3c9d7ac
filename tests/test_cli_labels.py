"""--label/--annotation/--env and the OCI provenance keys (options, CI variables, SOURCE_DATE_EPOCH)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import need_tool
from pkgbuilder import build_package, index_channel
from realenv import oci_conda, one_error_line

CI = {"GITHUB_SHA": "0123abcd", "GITHUB_SERVER_URL": "https://git.example.com", "GITHUB_REPOSITORY": "team/tools"}


def _setup(tmp_path: Path) -> tuple[Path, dict]:
    chan = tmp_path / "channel"
    build_package(chan / "linux-64", "tool", "1.0", files={"bin/tool": "#!/bin/sh\n"})
    index_channel(chan)
    f = tmp_path / "environment.yml"
    f.write_text("name: tool\nchannels: ['./channel']\ndependencies: [tool]\n"
                 "image: {labels: {a: file, keep: 'yes'}, env: {LANG: C.UTF-8}}\n")
    return f, dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"), SOURCE_DATE_EPOCH="1700000000", **CI)


def _inspect(archive: Path, *what: str) -> dict:
    need_tool("skopeo")
    p = subprocess.run(["skopeo", "inspect", *what, f"oci-archive:{archive}"], check=True, capture_output=True,
                       text=True)
    return json.loads(p.stdout)


def test_flags_and_provenance(tmp_path: Path) -> None:
    env_file, env = _setup(tmp_path)
    out = tmp_path / "x.tar"
    oci_conda("build", str(env_file), "-o", str(out), "-q", "--oci-labels", "--label", "a=cli", "--label", "b=2",
              "--annotation", "team=geo", "--env", "FOO=bar", "--env", "LANG=C", "--image-version", "1.2.3", env=env)
    cfg = _inspect(out, "--config")["config"]
    assert cfg["Labels"] == {"a": "cli", "b": "2", "keep": "yes", "org.opencontainers.image.created":
                             "2023-11-14T22:13:20Z", "org.opencontainers.image.revision": "0123abcd",
                             "org.opencontainers.image.source": "https://git.example.com/team/tools",
                             "org.opencontainers.image.version": "1.2.3"}
    assert cfg["Env"][-2:] == ["LANG=C", "FOO=bar"]
    ann = _inspect(out, "--raw")["annotations"]
    assert ann["team"] == "geo" and ann["org.opencontainers.image.revision"] == "0123abcd"
    assert ann["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_nothing_added_unless_asked(tmp_path: Path) -> None:
    """CI variables alone change nothing: the same inputs give the same digest on a laptop and in CI."""
    env_file, env = _setup(tmp_path)
    a = oci_conda("build", str(env_file), "-o", str(tmp_path / "a.tar"), "-q", env=env).stdout.split("@")[1]
    plain = {k: v for k, v in env.items() if k not in CI}
    b = oci_conda("build", str(env_file), "-o", str(tmp_path / "b.tar"), "-q", env=plain).stdout.split("@")[1]
    assert a == b
    assert not any(k.startswith("org.opencontainers") for k in _inspect(tmp_path / "a.tar", "--config")["config"]
                   .get("Labels", {}))


def test_bad_pairs_are_one_line(tmp_path: Path) -> None:
    env_file, env = _setup(tmp_path)
    for flag, bad in (("--label", "novalue"), ("--env", "1X=2"), ("--annotation", "=v")):
        p = oci_conda("build", str(env_file), "-o", str(tmp_path / "x.tar"), flag, bad, env=env, check=False)
        assert p.returncode == 2 and flag in one_error_line(p) and not (tmp_path / "x.tar").exists()
