"""conda-lock v1 files: every real one parses; pip entries become PyPI entries; conda entries are unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from oci_conda.conda.condalock import parse_conda_lock, read_conda_lock
from oci_conda.errors import SpecError

LOCKS = Path(os.environ.get("OCI_CONDA_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "realdata" / "envs" \
    / "lockfiles" / "conda-lock-yml"
REAL = sorted(LOCKS.glob("*")) if LOCKS.is_dir() else []
PARAMS = [pytest.param(p, id=p.name) for p in REAL] or [
    pytest.param(None, id="no-realdata", marks=pytest.mark.skip(reason=f"{LOCKS} not found"))]


@pytest.mark.parametrize("path", PARAMS)
def test_every_real_conda_lock(path: Path) -> None:
    text = path.read_text()
    doc = yaml.safe_load(text)
    lock = read_conda_lock(text, str(path))
    main = [p for p in doc["package"] if not p.get("optional")]
    for platform, got in lock.platforms.items():
        want = sorted((p["name"], p["hash"].get("sha256") or p["hash"]["md5"])
                      for p in main if p["platform"] == platform and p.get("manager", "conda") == "conda")
        assert sorted((r.name, r.sha256 or r.md5) for r in got.conda) == want
        assert all(r.subdir in (platform, "noarch") for r in got.conda)
    assert sum(len(v.conda) for v in lock.platforms.values()) == sum(
        1 for p in main if p.get("manager", "conda") == "conda")
    # the older shape still agrees
    records, pip = parse_conda_lock(text, str(path))
    assert {p: [r.url for r in v] for p, v in records.items()} == {
        p: [r.url for r in v.conda] for p, v in lock.platforms.items()}
    assert pip == {}


SHA = "c" * 64
LOCK = f"""\
version: 1
metadata:
  channels:
    - url: conda-forge
      used_env_vars: []
  platforms: [linux-64, osx-arm64]
  sources: [environment.yml]
package:
  - name: python
    version: 3.11.4
    manager: conda
    platform: linux-64
    dependencies: {{libzlib: '>=1.2.13'}}
    url: https://conda.example.invalid/conda-forge/linux-64/python-3.11.4-hab00c5b_0_cpython.conda
    hash: {{md5: {"d" * 32}, sha256: {SHA}}}
    category: main
    optional: false
  - name: pydantic
    version: 1.10.10
    manager: pip
    platform: linux-64
    dependencies:
      typing-extensions: '>=4.2.0'
      email-validator: '>=1.0.3'
      python-dotenv: '*'
    url: https://files.example.invalid/pydantic-1.10.10-py3-none-any.whl
    hash: {{sha256: {SHA.upper()}}}
    category: main
    optional: false
  - name: pytest
    version: 7.4.0
    manager: pip
    platform: linux-64
    dependencies: {{}}
    url: https://files.example.invalid/pytest-7.4.0-py3-none-any.whl
    hash: {{sha256: {SHA}}}
    category: dev
    optional: true
"""


def test_pip_entries_become_pypi_entries() -> None:
    lock = read_conda_lock(LOCK, "conda-lock.yml")
    assert lock.channels == ("conda-forge",) and lock.environment == "default"
    assert set(lock.platforms) == {"linux-64", "osx-arm64"}
    linux = lock.platforms["linux-64"]
    assert [(r.name, r.depends) for r in linux.conda] == [("python", ("libzlib >=1.2.13",))]
    (w,) = linux.pypi  # the optional (dev) pytest is left out, like optional conda entries
    assert (w.name, w.version, w.sha256, w.url) == (
        "pydantic", "1.10.10", SHA, "https://files.example.invalid/pydantic-1.10.10-py3-none-any.whl")
    assert w.requires_dist == ("email-validator>=1.0.3", "python-dotenv", "typing-extensions>=4.2.0")
    assert lock.platforms["osx-arm64"].conda == () and lock.platforms["osx-arm64"].pypi == ()
    assert parse_conda_lock(LOCK, "conda-lock.yml")[1] == {"linux-64": ["pydantic"]}


@pytest.mark.parametrize("old, new, match", [
    (f"    hash: {{sha256: {SHA.upper()}}}\n", "    hash: {sha256: nothex}\n",
     r"^conda-lock.yml: package\[1\] pydantic \(linux-64\): hash.sha256: not a sha256 hex digest$"),
    ("    manager: pip\n    platform: linux-64\n    dependencies:\n",
     "    manager: poetry\n    platform: linux-64\n    dependencies:\n", r"unknown manager 'poetry' \(conda or pip\)"),
    ("      python-dotenv: '*'\n", "      - python-dotenv\n", r"dependencies: expected a mapping|not valid YAML"),
])
def test_bad_pip_entries_are_one_line(old: str, new: str, match: str) -> None:
    assert old in LOCK
    with pytest.raises(SpecError, match=match) as e:
        read_conda_lock(LOCK.replace(old, new, 1), "conda-lock.yml")
    assert "\n" not in str(e.value)
