"""The gateway: one source per channel subdir (sharded when the channel publishes shards and the caller names what
it will ask for, else whole repodata), shards prefetched through what the request reaches, sources reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oci_conda.conda.channel import Channel
from oci_conda.conda.gateway import Gateway, load_channel_indexes
from oci_conda.conda.solve import solve
from oci_conda.conda.subdir import LocalSubdir, RemoteSubdir, ShardedSubdir
from oci_conda.conda.virtual import virtual_packages
from oci_conda.errors import SolveError
from oci_conda.http import make_session

from gatewayutil import all_records

VPS = virtual_packages("linux-64", env={})


def _channel(realdata: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "srv" / "chan"
    shutil.copytree(realdata / "repodata" / "conda-tests" / "conda_format_repo", dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def test_sources_are_picked_per_subdir(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = _channel(realdata, tmp_path)
    server = serve_dir(tmp_path / "srv")
    url = f"{server.url}/chan"
    http = Channel(url, url, url)
    local = Channel(chan_dir.as_uri(), chan_dir.as_uri(), chan_dir.as_uri())
    [h] = load_channel_indexes([http], "linux-64", make_session(), names=["zlib"])
    assert [type(p) for p in h.parts] == [ShardedSubdir, RemoteSubdir]  # noarch publishes no shards
    [w] = load_channel_indexes([http], "linux-64", make_session())
    assert [type(p) for p in w.parts] == [RemoteSubdir, RemoteSubdir]  # no names: whole repodata
    [loc] = load_channel_indexes([local], "linux-64", make_session(), names=["zlib"])
    assert [type(p) for p in loc.parts] == [ShardedSubdir, LocalSubdir]
    # whichever source, a name's records are the same
    for name in ("zlib", "libgcc-ng"):
        assert h[name] == w[name]
        assert [(r.fn, r.sha256) for r in loc[name]] == [(r.fn, r.sha256) for r in w[name]]
    assert sorted(h) == sorted(w)


def test_shards_are_prefetched_through_what_the_request_reaches(realdata: Path, tmp_path: Path, serve_dir,
                                                                  cache_env) -> None:
    _channel(realdata, tmp_path)
    server = serve_dir(tmp_path / "srv")
    url = f"{server.url}/chan"
    gw = Gateway(make_session())
    [ix] = gw.indexes([Channel(url, url, url)], "linux-64", names=["zlib"])
    shards = [p for _m, p, _h in server.requests if p.endswith(".msgpack.zst") and "repodata_shards" not in p]
    assert len(shards) == 2  # zlib and, through its depends, libgcc-ng
    n = len(server.requests)
    sol = solve([ix], ["zlib"], VPS)
    assert sorted(r.name for r in sol) == ["libgcc-ng", "zlib"]
    assert len(server.requests) == n  # the solve found every shard it needed already there
    # the gateway keeps what it opened: another platform's noarch is not fetched again
    gw.indexes([Channel(url, url, url)], "linux-64", names=["zlib"])
    assert len(server.requests) == n


def test_unknown_name_in_a_sharded_channel_is_a_solve_error(realdata: Path, tmp_path: Path, cache_env) -> None:
    chan_dir = _channel(realdata, tmp_path)
    local = Channel(chan_dir.as_uri(), chan_dir.as_uri(), chan_dir.as_uri())
    index = load_channel_indexes([local], "linux-64", make_session(offline=True), offline=True, names=["zlbi"])
    with pytest.raises(SolveError, match=r"package 'zlbi' not found in .*chan; did you mean zlib\?"):
        solve(index, ["zlbi"], VPS)
    assert index[0].records_made == 0  # the message did not make anyone's records


def test_all_records_agree_between_whole_and_sharded(realdata: Path, tmp_path: Path, cache_env) -> None:
    chan_dir = _channel(realdata, tmp_path)
    local = Channel(chan_dir.as_uri(), chan_dir.as_uri(), chan_dir.as_uri())
    [sharded] = load_channel_indexes([local], "linux-64", make_session(), names=["zlib"])
    [whole] = load_channel_indexes([local], "linux-64", make_session())
    assert sorted((r.fn, r.url) for r in all_records(sharded)) == sorted((r.fn, r.url) for r in all_records(whole))
