"""Bad input through the real command line: one clear line, a non-zero exit, no output left, cache not corrupted."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pytest

from realenv import make_real_channel, oci_conda


@pytest.fixture
def chan(realdata: Path, tmp_path: Path) -> Path:
    return make_real_channel(realdata, tmp_path / "channel")


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))


def run_fail(tmp_path: Path, env_text: str, *extra: str, code: int | None = None, out: str = "out.tar") -> str:
    envfile = tmp_path / "environment.yml"
    envfile.write_text(env_text)
    target = tmp_path / out
    p = oci_conda("build", str(envfile), "-o", str(target), *extra, env=_env(tmp_path), check=False)
    assert p.returncode != 0, p.stderr
    if code is not None:
        assert p.returncode == code, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("oci-conda: error:")]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert not target.exists(), "partial output left behind"
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".") and "out" in f.name], "temp file left behind"
    return lines[0]


def test_unknown_package(chan: Path, tmp_path: Path) -> None:
    msg = run_fail(tmp_path, f"channels: [{chan}]\ndependencies: [tkk]\n", code=3)
    assert "tkk" in msg


def test_unsatisfiable(chan: Path, tmp_path: Path) -> None:
    msg = run_fail(tmp_path, f"channels: [{chan}]\ndependencies: ['tk <8', xz]\n", code=3)
    assert "tk" in msg


def test_bad_yaml(tmp_path: Path) -> None:
    msg = run_fail(tmp_path, "dependencies: [tk\n")
    assert "environment.yml:" in msg and "invalid YAML" in msg


def test_unknown_local_channel(tmp_path: Path) -> None:
    msg = run_fail(tmp_path, "channels: [./no-such-channel]\ndependencies: [tk]\n")
    assert "no-such-channel" in msg


def test_unreachable_channel(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    msg = run_fail(tmp_path, f"channels: ['http://127.0.0.1:{port}/chan']\ndependencies: [tk]\n")
    assert f"127.0.0.1:{port}" in msg


def test_checksum_mismatch_leaves_cache_clean(chan: Path, tmp_path: Path) -> None:
    repodata = chan / "linux-64" / "repodata.json"
    data = json.loads(repodata.read_text())
    fn = "xz-5.2.6-h166bdaf_0.tar.bz2"
    data["packages"][fn]["sha256"] = "0" * 64
    repodata.write_text(json.dumps(data))
    (chan / "linux-64" / "repodata.json.zst").unlink()
    msg = run_fail(tmp_path, f"channels: [{chan}]\ndependencies: [xz]\n")
    assert fn in msg and "sha256" in msg
    pkgs = tmp_path / "cache" / "pkgs"
    cached = [p for p in pkgs.iterdir() if p.is_file()]
    assert not [p for p in cached if p.name.startswith("0" * 64)]
    for p in cached:  # every entry that is there is named by its own verified content
        assert p.name.split(".", 1)[0] == hashlib.sha256(p.read_bytes()).hexdigest()


def test_corrupt_archive(chan: Path, tmp_path: Path) -> None:
    fn = "xz-5.2.6-h166bdaf_0.tar.bz2"
    target = chan / "linux-64" / fn
    target.unlink()
    garbage = b"BZh91AY&SY" + os.urandom(2000)
    target.write_bytes(garbage)
    repodata = chan / "linux-64" / "repodata.json"
    data = json.loads(repodata.read_text())
    data["packages"][fn].update(sha256=hashlib.sha256(garbage).hexdigest(), md5=hashlib.md5(garbage).hexdigest(),
                                size=len(garbage))
    repodata.write_text(json.dumps(data))
    (chan / "linux-64" / "repodata.json.zst").unlink()
    msg = run_fail(tmp_path, f"channels: [{chan}]\ndependencies: [xz]\n")
    assert fn in msg


def test_prefix_longer_than_binary_placeholder(chan: Path, tmp_path: Path) -> None:
    long_prefix = "/" + "p" * 300
    msg = run_fail(tmp_path, f"channels: [{chan}]\ndependencies: [xz]\n", "--prefix", long_prefix)
    assert "prefix" in msg.lower()


def test_output_not_writable(chan: Path, tmp_path: Path) -> None:
    msg = run_fail(tmp_path, f"channels: [{chan}]\ndependencies: [xz]\n", out="missing-dir/out.tar")
    assert "missing-dir" in msg


def test_unreachable_registry_base(chan: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    msg = run_fail(tmp_path, f"channels: [{chan}]\ndependencies: [xz]\n", "--base", f"127.0.0.1:{port}/base/img:1")
    assert f"127.0.0.1:{port}" in msg


def test_debug_shows_traceback(tmp_path: Path) -> None:
    envfile = tmp_path / "environment.yml"
    envfile.write_text("dependencies: [tk\n")
    p = oci_conda("build", str(envfile), "-o", str(tmp_path / "o.tar"), "--debug", env=_env(tmp_path), check=False)
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_offline_without_cache_names_what_is_missing(chan: Path, tmp_path: Path, serve_dir) -> None:
    server = serve_dir(chan)
    msg = run_fail(tmp_path, f"channels: ['{server.url}']\ndependencies: [xz]\n", "--offline")
    assert "offline" in msg.lower()
    assert not server.requests
