"""Every real environment file (../shared/realdata/envs) is read without an env-file error.

Loaded directly, each gives a BuildSpec; through the real command line with the channels unreachable (``--offline``
with an empty cache, or the channel alias on a closed 127.0.0.1 port), the first error is about a channel, never
about the file. Nothing here opens a connection beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from oci_conda.errors import SpecError
from oci_conda.spec import BuildSpec, load_spec

sys.path.insert(0, str(Path(__file__).parent))

from realenv import oci_conda

ENVS = Path(os.environ.get("OCI_CONDA_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "realdata" / "envs"
# conda-channels_with_envvars.yml uses ${CONDA_TOKEN} and ${OTHER_KEY} in its channel URLs.
TOKENS = {"CONDA_TOKEN": "tok3n", "OTHER_KEY": "k3y"}


def _files() -> list[Path]:
    if not ENVS.is_dir():
        return []
    return sorted(p for p in ENVS.rglob("*") if p.suffix in (".yml", ".yaml") and "lockfiles" not in p.parts)


FILES = _files()
PARAMS = [pytest.param(p, id=p.name) for p in FILES] or [
    pytest.param(None, id="no-realdata", marks=pytest.mark.skip(reason=f"{ENVS} not found"))]


def test_the_collection_is_there() -> None:
    if not FILES:
        pytest.skip(f"{ENVS} not found")
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", PARAMS)
def test_loads(path: Path) -> None:
    try:
        spec = load_spec(path, env=TOKENS)
    except SpecError as e:  # pragma: no cover - the point of the test
        pytest.fail(f"env-file error: {e}")
    assert spec.specs or spec.pip
    assert all(w.startswith(f"{path}:") and "\n" not in w for w in spec.warnings)
    assert all(p.where.startswith(f"{path}:") for p in spec.pip)


def _local_only(spec: BuildSpec) -> bool:
    """Channels that go through the alias only (so a closed alias port stops every request)."""
    specs = " ".join(spec.specs)
    return all("://" not in c and not c.startswith(("/", ".")) and c not in ("defaults",) for c in spec.channels) \
        and "://" not in specs and "defaults" not in spec.channels


def _first_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "error" in ln.lower()]
    assert lines, stderr
    return lines[0]


def _assert_about_channel(path: Path, p, how: str) -> None:  # type: ignore[no-untyped-def]
    assert p.returncode != 0, f"{how}: expected a failure\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    first = _first_error(p.stderr)
    assert str(path) not in first and path.name not in first, f"{how}: env-file error: {first}"
    assert any(k in first for k in ("channel", "repodata")), f"{how}: not about a channel: {first}"


@pytest.mark.parametrize("path", PARAMS)
def test_cli_first_error_is_about_the_channel(path: Path, tmp_path: Path) -> None:
    env = {**os.environ, **TOKENS, "OCI_CONDA_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    env.pop("CONDA_SUBDIR", None)
    out = tmp_path / "out.tar"
    p = oci_conda("build", str(path), "-o", str(out), "--offline", cwd=tmp_path, env=env, check=False, timeout=120)
    _assert_about_channel(path, p, "--offline")
    assert not out.exists()
    spec = load_spec(path, env=TOKENS)
    if _local_only(spec):
        env["OCI_CONDA_CHANNEL_ALIAS"] = "http://127.0.0.1:1"
        p = oci_conda("build", str(path), "-o", str(out), cwd=tmp_path, env=env, check=False, timeout=120)
        _assert_about_channel(path, p, "closed alias port")
        assert "127.0.0.1:1" in _first_error(p.stderr)
        assert not out.exists()
