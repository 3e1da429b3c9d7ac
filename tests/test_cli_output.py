"""What scripts read: the result alone on stdout, the human summary on stderr, distinct exit codes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from pkgbuilder import build_package, index_channel
from realenv import oci_conda, one_error_line


@pytest.fixture
def small_env(tmp_path: Path) -> tuple[Path, dict]:
    """A one-package environment on a local channel (linux-64 and linux-aarch64), with a private cache."""
    chan = tmp_path / "channel"
    for subdir in ("linux-64", "linux-aarch64"):
        build_package(chan / subdir, "hello", "1.0", subdir=subdir,
                      files={"bin/hello": "#!/bin/sh\necho hello\n", "share/hello/data.txt": "x" * 5000})
    index_channel(chan)
    env_file = tmp_path / "environment.yml"
    env_file.write_text(f"name: hello\nchannels: ['{chan}']\ndependencies: [hello]\n")
    return env_file, dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))


def test_stdout_is_the_result_and_stderr_the_summary(small_env: tuple[Path, dict], tmp_path: Path) -> None:
    env_file, env = small_env
    out = tmp_path / "img.tar"
    p = oci_conda("build", str(env_file), "-o", str(out), "--layering", "single", env=env)
    assert re.fullmatch(rf"{re.escape(str(out))}@sha256:[0-9a-f]{{64}}\n", p.stdout), p.stdout
    summary = json.loads(oci_conda("build", str(env_file), "-o", str(out), "--layering", "single", "--json",
                                   env=env).stdout)
    assert p.stdout.strip().endswith("@" + summary["digest"])
    assert "linux-64: 1 package, 1 layer, manifest sha256:" in p.stderr
    assert not re.search(r"(?<![/\d])1 layers", p.stderr)  # "1/1 layers" (progress) reads fine
    assert "compressed" in p.stderr and "uncompressed" in p.stderr
    q = oci_conda("build", str(env_file), "-o", str(out), "--layering", "single", "-q", env=env)
    assert q.stdout == p.stdout and q.stderr == ""  # --quiet silences the summary, never the result


def test_multi_platform_summary_names_the_index(small_env: tuple[Path, dict], tmp_path: Path) -> None:
    env_file, env = small_env
    out = tmp_path / "multi"
    p = oci_conda("build", str(env_file), "-o", str(out), "--platform", "linux-64", "--platform", "linux-aarch64",
                  env=env)
    index = json.loads((out / "index.json").read_text())
    top = index["manifests"][0]
    assert top["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert p.stdout == f"{out}@{top['digest']}\n"
    assert f"image index {top['digest']} (2 platforms)" in p.stderr


def test_exit_codes_are_distinct(small_env: tuple[Path, dict], tmp_path: Path) -> None:
    env_file, env = small_env
    unsat = tmp_path / "unsat.yml"
    unsat.write_text(env_file.read_text().replace("[hello]", "['hello >2']"))
    assert oci_conda("build", str(unsat), "-o", str(tmp_path / "u.tar"), env=env, check=False).returncode == 3
    bad = tmp_path / "bad.yml"
    bad.write_text("dependencies: 3\n")
    assert oci_conda("build", str(bad), "-o", str(tmp_path / "b.tar"), env=env, check=False).returncode == 2
    down = tmp_path / "down.yml"
    down.write_text("channels: ['http://127.0.0.1:9/nothing']\ndependencies: [hello]\n")
    p = oci_conda("build", str(down), "-o", str(tmp_path / "d.tar"), env=env, check=False)
    assert p.returncode == 4 and "127.0.0.1:9" in p.stderr and not p.stdout


@pytest.mark.parametrize("name", ["out.tar.gz", "out.zip", "image.oci"])
def test_unknown_output_suffix_is_refused(small_env: tuple[Path, dict], tmp_path: Path, name: str) -> None:
    env_file, env = small_env
    p = oci_conda("build", str(env_file), "-o", str(tmp_path / name), env=env, check=False)
    assert p.returncode == 2 and not p.stdout
    line = one_error_line(p)
    assert name in line and "OCI layout directory" in line and "OUT.tar" in line
    assert not (tmp_path / name).exists() and not (tmp_path / "cache").exists()  # refused before any work


def test_directory_outputs(small_env: tuple[Path, dict], tmp_path: Path) -> None:
    env_file, env = small_env
    for given in ("layout", "image.oci/"):
        p = oci_conda("build", str(env_file), "-o", f"{tmp_path}/{given}", "-q", env=env)
        d = tmp_path / given.rstrip("/")
        assert (d / "oci-layout").is_file() and (d / "index.json").is_file()
        assert p.stdout.startswith(str(d) + "@sha256:")
