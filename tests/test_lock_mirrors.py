"""Channel mirrors with fallback (``OCI_CONDA_MIRRORS``): requests go to the first mirror that answers; the lock
and the image keep the channel's own URL; the channel's credentials never reach a mirror."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from conftest import REPO
from realenv import oci_conda

from oci_conda.conda.mirrors import parse_mirrors
from oci_conda.errors import ChannelError

HELLO = REPO / "examples" / "hello"


def _dead_url() -> str:
    """A loopback port nobody listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def test_mirror_serves_everything_and_lock_keeps_the_channel_url(tmp_path: Path, serve_dir, cache_env,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(HELLO / "channel", tmp_path / "primary" / "t" / "tok-s3cr3t" / "chan")  # the token is a path
    shutil.copytree(HELLO / "channel", tmp_path / "mirror" / "cf")
    (tmp_path / "half").mkdir()  # a mirror with nothing on it: every request there is a 404
    primary, mirror, half = serve_dir(tmp_path / "primary"), serve_dir(tmp_path / "mirror"), serve_dir(tmp_path / "half")
    dead = _dead_url()
    host = primary.url.split("://", 1)[1]
    channel = f"http://bob:pw-s3cr3t@{host}/t/tok-s3cr3t/chan"
    env = tmp_path / "environment.yml"
    env.write_text(f"name: m\nchannels: [{channel}]\ndependencies: [hello]\n")
    monkeypatch.setenv("OCI_CONDA_MIRRORS", f"{primary.url}/chan={dead}/x,{half.url}/cf,{mirror.url}/cf")

    lock = tmp_path / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    built = json.loads(oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "a.tar"),
                                 "--json").stdout)
    # the mirror answered everything; only what no mirror has (the optional shard index: a 404 on each) was asked
    # of the channel itself
    assert {Path(p).name for _m, p, _h in primary.requests} <= {"repodata_shards.msgpack.zst"}
    paths = [p for _m, p, _h in mirror.requests]
    assert any(p.startswith("/cf/linux-64/repodata") for p in paths)
    assert sorted(Path(p).name for p in paths if p.endswith(".conda")) == ["hello-1.0-0.conda",
                                                                           "hello-data-1.0-0.conda"]
    assert half.requests and all(p.startswith("/cf/") for _m, p, _h in half.requests)  # tried, then skipped
    for server in (mirror, half):
        for _m, p, h in server.requests:
            assert "s3cr3t" not in p and "Authorization" not in h
    text = lock.read_text()
    assert f"{primary.url}/chan/linux-64/hello-1.0-0.conda" in text and mirror.url not in text
    assert "s3cr3t" not in text

    # without mirrors the same lock builds from the channel itself to the same image
    monkeypatch.delenv("OCI_CONDA_MIRRORS")
    shutil.rmtree(cache_env)
    again = json.loads(oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "b.tar"),
                                 "--json").stdout)
    assert again["digest"] == built["digest"]
    assert all(p.startswith("/t/tok-s3cr3t/chan/") for _m, p, _h in primary.requests)


def test_all_mirrors_down_falls_back_to_the_channel(tmp_path: Path, serve_dir, cache_env,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(HELLO / "channel", tmp_path / "primary" / "chan")
    primary = serve_dir(tmp_path / "primary")
    monkeypatch.setenv("OCI_CONDA_MIRRORS", f"{primary.url}/chan={_dead_url()}/a")
    env = tmp_path / "environment.yml"
    env.write_text(f"channels: [{primary.url}/chan]\ndependencies: [hello]\n")
    oci_conda("build", str(env), "-o", str(tmp_path / "a.tar"), "-q")
    assert any(p.endswith("hello-1.0-0.conda") for _m, p, _h in primary.requests)
    # offline builds never try a mirror either
    monkeypatch.setenv("OCI_CONDA_MIRRORS", "garbage")
    p = oci_conda("build", str(env), "--offline", "-o", str(tmp_path / "b.tar"), "-q", check=False)
    assert p.returncode == 0, p.stderr


def test_bad_mirror_setting_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="OCI_CONDA_MIRRORS"):
        parse_mirrors("no-equals-sign")
    with pytest.raises(ChannelError, match="mirror must be an http"):
        parse_mirrors("https://a.invalid/c=ftp://b.invalid/c")
    assert parse_mirrors("https://u:p@A.invalid/t/T/c/=https://m.invalid/c/,https://n.invalid/c") == \
        {"https://a.invalid/c": ["https://m.invalid/c", "https://n.invalid/c"]}
    env = tmp_path / "e.yml"
    env.write_text("channels: [https://a.invalid/c]\ndependencies: [x]\n")
    p = oci_conda("solve", str(env), env={**os.environ, "OCI_CONDA_MIRRORS": "nonsense"}, check=False)
    assert p.returncode == 4 and len(p.stderr.strip().splitlines()) == 1 and "OCI_CONDA_MIRRORS" in p.stderr
