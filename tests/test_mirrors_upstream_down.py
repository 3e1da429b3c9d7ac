"""Mirrors are for when the upstream is down: with the channel (here its alias) on a closed port, a build by
channel *name* reads everything from an HTTP mirror or a ``file://`` mirror, and the lock keeps the channel's URL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from realenv import oci_conda

from oci_conda.conda.mirrors import Mirrors, mirrors_from_env, parse_mirrors
from oci_conda.errors import ChannelError

HELLO = REPO / "examples" / "hello"
DOWN = "http://127.0.0.1:1"  # nothing listens on port 1


def _env(tmp_path: Path) -> Path:
    env = tmp_path / "environment.yml"
    env.write_text("name: m\nchannels: [cf]\ndependencies: [hello]\n")
    return env


def test_http_mirror_by_channel_name_with_the_upstream_down(tmp_path: Path, serve_dir, cache_env,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(HELLO / "channel", tmp_path / "mirror" / "channel")
    mirror = serve_dir(tmp_path / "mirror")
    monkeypatch.setenv("OCI_CONDA_CHANNEL_ALIAS", "http://tok:s3cr3t@127.0.0.1:1")
    monkeypatch.setenv("OCI_CONDA_MIRRORS", f"cf={mirror.url}/channel")
    env = _env(tmp_path)
    lock = tmp_path / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    out = json.loads(oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "a.tar"),
                               "--json").stdout)
    paths = [p for _m, p, _h in mirror.requests]
    # the shard probe 404s on the mirror and the whole repodata comes from the mirror, never upstream
    assert "/channel/linux-64/repodata_shards.msgpack.zst" in paths
    assert any(p.startswith("/channel/linux-64/repodata.json") for p in paths)
    assert any(p.startswith("/channel/noarch/repodata.json") for p in paths)
    assert sorted(Path(p).name for p in paths if p.endswith(".conda")) == ["hello-1.0-0.conda",
                                                                           "hello-data-1.0-0.conda"]
    for _m, p, h in mirror.requests:  # the channel's credentials never reach the mirror
        assert "s3cr3t" not in p and "Authorization" not in h
    text = lock.read_text()
    assert "http://127.0.0.1:1/cf/linux-64/hello-1.0-0.conda" in text and mirror.url not in text
    assert "s3cr3t" not in text
    assert out["digest"].startswith("sha256:")


def test_file_mirror_with_the_upstream_down_builds_the_same_image(tmp_path: Path, serve_dir, cache_env,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(HELLO / "channel", tmp_path / "mirror" / "channel")
    mirror = serve_dir(tmp_path / "mirror")
    monkeypatch.setenv("OCI_CONDA_CHANNEL_ALIAS", DOWN)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    env = _env(tmp_path)
    monkeypatch.setenv("OCI_CONDA_MIRRORS", f"cf={mirror.url}/channel")
    a = json.loads(oci_conda("build", str(env), "-o", str(tmp_path / "a.tar"), "--json").stdout)
    shutil.rmtree(cache_env)
    # a dead mirror first, then the file:// one
    monkeypatch.setenv("OCI_CONDA_MIRRORS", f"cf={DOWN}/x,{(tmp_path / 'mirror' / 'channel').as_uri()}")
    before = len(mirror.requests)
    b = json.loads(oci_conda("build", str(env), "-o", str(tmp_path / "b.tar"), "--json").stdout)
    assert len(mirror.requests) == before  # the HTTP mirror is no longer named: all came from the directory
    assert a["digest"] == b["digest"]


def test_all_locations_down_is_one_line_naming_the_mirrors(tmp_path: Path, cache_env,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_CHANNEL_ALIAS", DOWN)
    monkeypatch.setenv("OCI_CONDA_MIRRORS", "cf=http://u:pw-s3cr3t@127.0.0.1:1/m")
    p = oci_conda("solve", str(_env(tmp_path)), "-q", check=False)
    assert p.returncode == 4 and len(p.stderr.strip().splitlines()) == 1, p.stderr  # 4: a channel failed
    assert "cannot reach channel http://127.0.0.1:1/cf" in p.stderr and "mirrors tried first" in p.stderr
    assert "s3cr3t" not in p.stderr


def test_mirror_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_CHANNEL_ALIAS", "https://alias.invalid")
    (tmp_path / "m").mkdir()
    got = parse_mirrors(f"conda-forge=https://m.invalid/cf,{(tmp_path / 'm').as_uri()}/")
    assert got == {"https://alias.invalid/conda-forge": ["https://m.invalid/cf", (tmp_path / "m").as_uri()]}
    m = mirrors_from_env({"OCI_CONDA_MIRRORS": "https://u:p@alias.invalid/t/TOK/conda-forge=https://m.invalid/cf"})
    assert m.locations("https://u:p@alias.invalid/t/TOK/conda-forge/noarch/x.conda") == [
        "https://m.invalid/cf/noarch/x.conda", "https://u:p@alias.invalid/t/TOK/conda-forge/noarch/x.conda"]
    assert m.locations("https://alias.invalid/conda-forge-extra/noarch/x.conda") == [
        "https://alias.invalid/conda-forge-extra/noarch/x.conda"]  # a prefix of a name is not the channel
    assert m.for_channel("https://alias.invalid/conda-forge") == ("https://m.invalid/cf",)
    assert not Mirrors() and mirrors_from_env({}) == Mirrors()
    with pytest.raises(ChannelError, match="OCI_CONDA_MIRRORS: channel path .* does not exist"):
        parse_mirrors(f"conda-forge={(tmp_path / 'nope').as_uri()}")
    with pytest.raises(ChannelError, match="OCI_CONDA_MIRRORS: invalid channel name"):
        parse_mirrors("bad%name=https://m.invalid/x")
