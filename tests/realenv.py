"""Helpers for end-to-end tests on real upstream packages: a local channel of the real conda-forge files, a Debian
base image made with mmdebstrap (cached between runs), and podman with a private storage configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_tool

TEST_CACHE = Path(os.environ.get("OCI_CONDA_TEST_CACHE", Path.home() / ".cache" / "oci-conda-tests"))


def make_real_channel(realdata: Path, dest: Path) -> Path:
    """The 25 real conda-forge files as a channel: every file under the subdir whose repodata lists it."""
    src_repo = realdata / "repodata" / "conda-pypi-local-channel"
    pkgs = realdata / "packages" / "conda-forge-linux-64"
    for subdir in ("linux-64", "noarch"):
        d = dest / subdir
        d.mkdir(parents=True, exist_ok=True)
        for name in ("repodata.json", "repodata.json.zst"):
            if (src_repo / subdir / name).exists():
                shutil.copy(src_repo / subdir / name, d / name)
        import json

        data = json.loads((src_repo / subdir / "repodata.json").read_text())
        for key in ("packages", "packages.conda"):
            for fn in data.get(key, {}):
                if (pkgs / fn).exists():
                    os.symlink(pkgs / fn, d / fn)
    return dest


def debian_base() -> str:
    """An OCI layout holding Debian bookworm (mmdebstrap essential variant), as ``oci:DIR:bookworm``; built once."""
    layout = TEST_CACHE / "debian-bookworm-essential"
    if not (layout / "index.json").exists():
        need_tool("mmdebstrap")
        need_tool("umoci")
        TEST_CACHE.mkdir(parents=True, exist_ok=True)
        mirror = None
        sources = Path("/etc/apt/sources.list.d/debian.sources")
        if sources.exists():
            for line in sources.read_text().splitlines():
                if line.startswith("URIs:"):
                    mirror = line.split()[1]
                    break
        tmp = TEST_CACHE / f".build-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        rootfs = tmp / "rootfs.tar"
        cmd = ["mmdebstrap", "--variant=essential", "--mode=root", "--quiet", "bookworm", str(rootfs)]
        if mirror:
            cmd.append(mirror)
        subprocess.run(cmd, check=True)
        lay = tmp / "layout"
        subprocess.run(["umoci", "init", "--layout", str(lay)], check=True)
        subprocess.run(["umoci", "new", "--image", f"{lay}:bookworm"], check=True)
        subprocess.run(["umoci", "raw", "add-layer", "--image", f"{lay}:bookworm", str(rootfs)], check=True)
        subprocess.run(["umoci", "config", "--image", f"{lay}:bookworm", "--os", "linux", "--architecture", "amd64",
                        "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       check=True)
        subprocess.run(["umoci", "gc", "--layout", str(lay)], check=True)
        os.replace(lay, layout)
        shutil.rmtree(tmp, ignore_errors=True)
    return f"oci:{layout}:bookworm"


class Podman:
    """podman with its own storage under a test directory (see shared/TOOLS.md for why these settings)."""

    def __init__(self, root: Path):
        need_tool("podman")
        need_tool("runc")
        root.mkdir(parents=True, exist_ok=True)
        (root / "containers.conf").write_text(
            '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\nnetns = "none"\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
        )
        (root / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
        )
        self.root = root
        self.env = dict(os.environ, CONTAINERS_CONF=str(root / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(root / "storage.conf"))

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def cleanup(self) -> None:
        self("system", "reset", "--force", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def oci_conda(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess, as a user would."""
    p = subprocess.run([sys.executable, "-m", "oci_conda", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"oci-conda {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def one_error_line(p: subprocess.CompletedProcess, *secrets: str) -> str:
    """The single line a failed command printed; no secret anywhere in its output."""
    assert p.returncode != 0, p.stdout + p.stderr
    for s in secrets:
        assert s not in p.stdout and s not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("oci-conda: error: ")
    return lines[0]


def umoci_unpack(archive: Path, work: Path, ref: str) -> Path:
    """Extract an OCI archive and unpack it with umoci, the strictest layout validator; returns the rootfs."""
    need_tool("umoci")
    layout = work / "layout"
    layout.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    bundle = work / "bundle"
    p = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"umoci unpack failed: {p.stderr}")
    return bundle / "rootfs"
