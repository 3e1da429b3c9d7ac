"""The README's quick start must work verbatim: run its build command from a copy of the repo's example, then check
the image with umoci and run it under podman."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, need_tool
from realenv import Podman, oci_conda, umoci_unpack


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


def test_readme_has_exactly_two_setup_commands_and_the_test_command() -> None:
    cmds = quick_start_commands()
    assert len(cmds) == 2, cmds
    assert cmds[0].startswith("pip install")
    assert cmds[1].startswith("oci-conda build examples/hello/environment.yml")
    tests = (REPO / "README.md").read_text().split("## Tests", 1)[1].split("\n## ", 1)[0]
    test_cmd = [line.strip() for line in tests.splitlines() if line.startswith("    ")][0]
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd.split()[-1] in ci and "pytest" in test_cmd  # CI runs the same runner


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(REPO / "examples", work / "examples")
    cmd = shlex.split(quick_start_commands()[1])
    assert cmd[0] == "oci-conda"
    env = dict(os.environ, OCI_CONDA_CACHE=str(work / "cache"))
    p = oci_conda(*cmd[1:], "--json", cwd=work, env=env)
    out = work / cmd[cmd.index("-o") + 1]
    return {"work": work, "out": out, "summary": json.loads(p.stdout), "cmd": cmd}


def test_quick_start_builds_a_valid_image(hello: dict, tmp_path: Path) -> None:
    assert hello["out"].is_file()
    rootfs = umoci_unpack(hello["out"], tmp_path, _ref_name(hello["out"]))
    assert (rootfs / "opt/conda/bin/hello").is_file()
    assert (rootfs / "opt/conda/conda-meta").is_dir()


def test_quick_start_image_runs(hello: dict, tmp_path: Path) -> None:
    podman = Podman(tmp_path / "podman")
    try:
        r = podman("run", "--rm", f"oci-archive:{hello['out']}")
        # the binary found its data through a path rewritten from the build placeholder (binary prefix), and the
        # data file names its own location (text prefix)
        assert "Hello from a conda package in an OCI image!" in r.stdout
        assert "installed at /opt/conda/share/hello/greeting.txt" in r.stdout
    finally:
        podman.cleanup()


def test_same_bytes_from_another_directory_user_and_umask(hello: dict, tmp_path: Path) -> None:
    """Reproducible across directories, users, umask and an empty cache.

    "Another user": a user namespace in which the build runs as uid/gid 1000 (files it creates and reads show that
    owner), while the Python installation under /root stays readable."""
    where = tmp_path / "somewhere" / "else"
    shutil.copytree(REPO / "examples", where / "examples")
    env_file = where / "examples" / "hello" / "environment.yml"
    out = tmp_path / "out.tar"
    cmd = [sys.executable, "-m", "oci_conda", "build", str(env_file), "-o", str(out), "--json"]
    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))
    as_other = os.geteuid() == 0 and shutil.which("unshare") is not None
    if as_other:
        cmd = ["unshare", "--user", "--map-user=1000", "--map-group=1000", *cmd]
    p = subprocess.run(["sh", "-c", 'umask 077 && exec "$@"', "sh", *cmd], env=env, capture_output=True, text=True,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["manifest_digest"] == hello["summary"]["manifest_digest"]
    assert out.read_bytes() == hello["out"].read_bytes()
    if as_other:
        assert (tmp_path / "cache" / "pkgs").stat().st_uid == 0  # made inside the namespace (uid 1000 there)


def _ref_name(archive: Path) -> str:
    import tarfile

    with tarfile.open(archive) as t:
        index = json.load(t.extractfile("index.json"))
    return index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]


def test_skopeo_reads_it(hello: dict) -> None:
    need_tool("skopeo")
    r = subprocess.run(["skopeo", "inspect", f"oci-archive:{hello['out']}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == hello["summary"]["manifest_digest"]


def test_schema_of_every_json_we_wrote(hello: dict, realdata: Path) -> None:
    """Validate index, manifest and config against the OCI image-spec schemas."""
    from oci_schema import validate_layout_archive

    validate_layout_archive(hello["out"], realdata)


