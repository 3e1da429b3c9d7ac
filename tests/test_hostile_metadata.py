"""Hostile environment files and repodata through the real CLI: one clear error line, exit non-zero, never a traceback,
never a hang (every run has a timeout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from realenv import oci_conda

TIMEOUT = 60

ENV_FILES = {
    "not-a-mapping": ("- numpy\n- python\n", r"expected a mapping"),
    "scalar-no-constructor": ("=\n", r"invalid YAML"),
    "python-tag": ("channels: [./chan]\ndependencies: !!python/object/apply:os.system ['true']\n",
                   r"unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    "deep-nesting-flow": ("dependencies: " + "[" * 5000 + "]" * 5000 + "\n", r"nesting too deep|invalid YAML"),
    "deep-nesting-block": ("dependencies:\n" + "".join("  " * i + "-\n" for i in range(1, 200)), r"nesting too deep|expected|invalid"),
    "billion-laughs": ("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8))
        + "dependencies: [*i]\n", r"more than 1000000 values|unknown field"),
    "duplicate-key": ("dependencies: [numpy]\ndependencies: [python]\n", r":2: duplicate key 'dependencies'"),
    "wrong-type-deps": ("dependencies: numpy\n", r"dependencies: expected array"),
    "number-spec": ("dependencies: [3.10]\n", r"expected a string spec|dependencies\[0\]"),
    "huge-field": ("name: " + "n" * 3_000_000 + "\ndependencies: [numpy]\n", r"name|too long|maxLength|larger"),
    "too-big": ("dependencies: [numpy]\n#" + "x" * (5 << 20) + "\n", r"larger than 4 MiB"),
    "not-utf8": (b"dependencies: [caf\xe9]\n", r"not UTF-8"),
    "invalid-spec": ("channels: [./chan]\ndependencies: ['numpy >=>=1']\n", r"invalid package spec 'numpy >=>=1'"),
    "invalid-version": ("channels: [./chan]\ndependencies: ['numpy 1..2']\n", r"invalid (package|version) spec"),
    "empty": ("", r"the file is empty"),
    "nul-bytes": ("dependencies: [\0]\n", r"invalid YAML|special characters"),
}


@pytest.fixture(scope="module")
def good_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pkgbuilder import build_package, index_channel

    root = tmp_path_factory.mktemp("meta")
    build_package(root / "chan" / "linux-64", "numpy", "1.0", files={"lib/x": "x"})
    index_channel(root / "chan")
    return root


def _refused(p, pattern: str) -> str:
    assert p.returncode != 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [line for line in p.stderr.splitlines() if line.startswith("oci-conda: error: ")]
    assert len(lines) == 1, p.stderr[-3000:]
    import re

    assert re.search(pattern, lines[0]), lines[0][:500]
    assert len(lines[0]) < 2000, "an error line should not echo a huge input"
    return lines[0]


@pytest.mark.parametrize("case", sorted(ENV_FILES))
def test_hostile_env_file(case: str, good_channel: Path, tmp_path: Path) -> None:
    text, pattern = ENV_FILES[case]
    env_file = good_channel / f"{case}.yml"
    if isinstance(text, bytes):
        env_file.write_bytes(text)
    else:
        env_file.write_text(text)
    import os

    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))
    p = oci_conda("build", env_file.name, "-o", str(tmp_path / "out.tar"), "--offline", cwd=good_channel, env=env,
                  check=False,
                  timeout=TIMEOUT)
    _refused(p, pattern)
    assert not (tmp_path / "out.tar").exists()


def _rec(**kw: object) -> dict:
    r = {"name": "numpy", "version": "1.0", "build": "0", "build_number": 0, "depends": [], "subdir": "linux-64",
         "sha256": "0" * 64, "size": 10}
    r.update(kw)
    return r


REPODATA = {
    "not-json": (b"{\"packages\": {", r"invalid repodata JSON"),
    "top-level-list": (b"[]", r"top level is not a JSON object"),
    "packages-list": (json.dumps({"packages": []}).encode(), r"'packages' is not an object"),
    "version-number": (json.dumps({"packages": {"numpy-1.0-0.tar.bz2": _rec(version=1.0)}}).encode(),
                       r"package 'numpy-1\.0-0\.tar\.bz2': 'version' missing or not a string"),
    "depends-string": (json.dumps({"packages": {"numpy-1.0-0.tar.bz2": _rec(depends="python")}}).encode(),
                       r"'depends' is not a list of strings"),
    "build-number-string": (json.dumps({"packages": {"numpy-1.0-0.tar.bz2": _rec(build_number="1")}}).encode(),
                            r"'build_number' is not an integer"),
    "deep-nesting": (b'{"packages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", r"invalid repodata"),
    "huge-version": (json.dumps({"packages": {"numpy-1.0-0.tar.bz2": _rec(version="1" * 200_000)}}).encode(),
                     r"numpy|version|no package|nothing provides"),
    "invalid-version": (json.dumps({"packages": {"numpy-1.0-0.tar.bz2": _rec(version="1..0")}}).encode(),
                        r"numpy|version"),
    "invalid-depends-spec": (json.dumps({"packages": {"numpy-1.0-0.tar.bz2": _rec(depends=["python >=>=3"])}}).encode(),
                             r"numpy|python >=>=3"),
    "huge-depends": (json.dumps({"packages": {"numpy-1.0-0.tar.bz2": _rec(depends=[f"dep{i}" for i in range(50_000)])}}
                                ).encode(), r"numpy|dep"),
    "file-name-with-slash": (json.dumps({"packages": {"../numpy-1.0-0.tar.bz2": _rec()}}).encode(), r"bad file name"),
}


@pytest.mark.parametrize("case", sorted(REPODATA))
def test_hostile_repodata(case: str, tmp_path: Path) -> None:
    import os

    body, pattern = REPODATA[case]
    chan = tmp_path / "chan"
    (chan / "linux-64").mkdir(parents=True)
    (chan / "noarch").mkdir()
    (chan / "linux-64" / "repodata.json").write_bytes(body)
    (chan / "noarch" / "repodata.json").write_text('{"packages": {}}')
    (tmp_path / "env.yml").write_text("channels: [./chan]\ndependencies: [numpy]\n")
    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))
    p = oci_conda("solve", "env.yml", cwd=tmp_path, env=env, check=False, timeout=TIMEOUT)
    _refused(p, pattern)
