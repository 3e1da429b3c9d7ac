"""Repodata over real loopback HTTP and from local channels: variants, caching, 304s, offline, broken channels."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import orjson
import pytest
import requests
import zstandard

import oci_conda

from oci_conda.conda.channel import Channel, resolve_channel
from oci_conda.conda.subdir import ShardedSubdir, cache_max_age
from oci_conda.errors import ChannelError, FetchError
from oci_conda.http import make_session
from gatewayutil import records_of_channels, subdir_records

PYPI_CHANNEL = Path("repodata/conda-pypi-local-channel")


def http_channel(url: str) -> Channel:
    return Channel(name=url, url=url, auth_url=url)


def session_with_log(**kw: object) -> tuple[requests.Session, list[tuple[str, int]]]:
    """A real session whose response hook records (path, status) of what the server answered."""
    s = make_session(**kw)  # type: ignore[arg-type]
    log: list[tuple[str, int]] = []
    s.hooks["response"].append(lambda r, *a, **k: log.append((requests.utils.urlparse(r.url).path, r.status_code)))
    return s, log


def expected_fns(*repodata_files: Path) -> set[str]:
    """File names a channel should yield, derived straight from the JSON: .conda wins over .tar.bz2 of one stem."""
    fns: set[str] = set()
    for f in repodata_files:
        d = json.loads(f.read_bytes())
        fns |= set(d.get("packages") or {}) | set(d.get("packages.conda") or {})
    conda_stems = {fn[: -len(".conda")] for fn in fns if fn.endswith(".conda")}
    return {fn for fn in fns if not (fn.endswith(".tar.bz2") and fn[: -len(".tar.bz2")] in conda_stems)}


def copy_channel(src: Path, dst: Path, variants: tuple[str, ...] = ("repodata.json", "repodata.json.zst")) -> Path:
    for sub in src.iterdir():
        if sub.is_dir():
            (dst / sub.name).mkdir(parents=True, exist_ok=True)
            for v in variants:
                if (sub / v).exists():
                    shutil.copyfile(sub / v, dst / sub.name / v)
    return dst


def paths(server: object) -> list[str]:
    return [p for _, p, _ in server.requests]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- real channel over HTTP

def test_zst_preferred_and_noarch_records_keep_their_subdir(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    src = realdata / PYPI_CHANNEL
    chan_dir = copy_channel(src, tmp_path / "chan")
    server = serve_dir(chan_dir)
    channel = http_channel(server.url)
    [recs] = records_of_channels([channel], "linux-64", make_session())
    assert sorted(paths(server)) == ["/linux-64/repodata.json.zst", "/noarch/repodata.json.zst"]
    want = expected_fns(src / "linux-64" / "repodata.json", src / "noarch" / "repodata.json")
    assert {r.fn for r in recs} == want and len(recs) == len(want)
    raw = json.loads((src / "linux-64" / "repodata.json").read_bytes())
    raw_all = {**raw["packages"], **raw["packages.conda"]}
    for r in recs:
        entry = raw_all[r.fn]
        assert (r.name, r.version, r.build, r.sha256, r.size) == (
            entry["name"], entry["version"], entry["build"], entry["sha256"], entry["size"])
        assert r.subdir == entry["subdir"]
        assert r.channel == server.url
        assert r.url == f"{server.url}/linux-64/{r.fn}"  # the listing subdir's URL, as conda builds it
    assert any(r.subdir == "noarch" for r in recs)  # pip, wheel, ... listed under linux-64 upstream


def test_fallback_to_json_is_remembered_and_304_reuses_cache(realdata: Path, tmp_path: Path, serve_dir,
                                                              cache_env) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan", variants=("repodata.json",))
    server = serve_dir(chan_dir)
    channel = http_channel(server.url)
    s, log = session_with_log()
    first = subdir_records(channel, "linux-64", s)
    assert log == [("/linux-64/repodata.json.zst", 404), ("/linux-64/repodata.json", 200)]
    state_files = list((cache_env / "repodata").glob("*.state.json"))
    assert len(state_files) == 1
    state = json.loads(state_files[0].read_text())
    body = (chan_dir / "linux-64" / "repodata.json").read_bytes()
    assert state["variant"] == "json" and state["url"] == f"{server.url}/linux-64"
    assert state["sha256"] == hashlib.sha256(body).hexdigest() and state["last_modified"]

    log.clear()
    n = len(server.requests)
    second = subdir_records(channel, "linux-64", s)
    assert log == [("/linux-64/repodata.json", 304)]  # no second .zst probe; conditional GET answered 304
    assert "If-Modified-Since" in server.requests[n][2]
    assert second == first

    # the channel changes: a new package appears, the cache is refreshed
    d = json.loads(body)
    entry = dict(d["packages.conda"]["bzip2-1.0.8-hd590300_5.conda"], version="9.9", build="new_0")
    d["packages.conda"]["bzip2-9.9-new_0.conda"] = entry
    p = chan_dir / "linux-64" / "repodata.json"
    p.write_bytes(json.dumps(d).encode())
    future = time.time() + 10
    os.utime(p, (future, future))
    log.clear()
    third = subdir_records(channel, "linux-64", s)
    assert log == [("/linux-64/repodata.json", 200)]
    assert {r.fn for r in third} == {r.fn for r in first} | {"bzip2-9.9-new_0.conda"}


class _ETagHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with a content ETag and If-None-Match support (what real CDNs do), and the server's
    ``cache_control`` (if set) as the Cache-Control header of every answer."""

    def _cache_control(self) -> None:
        cc = getattr(self.server, "cache_control", None)
        if cc is not None:
            self.send_header("Cache-Control", cc)

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        p = Path(self.translate_path(self.path))
        if not p.is_file():
            self.send_error(404)
            return
        data = p.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self._cache_control()
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self._cache_control()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def etag_server() -> Iterator:
    started = []

    def start(root: Path):
        handler = lambda *a, **k: _ETagHandler(*a, directory=str(root), **k)  # noqa: E731
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.requests = []  # type: ignore[attr-defined]
        t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        t.start()
        started.append(httpd)
        return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for h in started:
        h.shutdown()
        h.server_close()


def test_etag_revalidation(realdata: Path, tmp_path: Path, etag_server, cache_env) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    httpd, url = etag_server(chan_dir)
    s, log = session_with_log()
    first = subdir_records(http_channel(url), "linux-64", s)
    assert log == [("/linux-64/repodata.json.zst", 200)]
    log.clear()
    again = subdir_records(http_channel(url), "linux-64", s)
    assert log == [("/linux-64/repodata.json.zst", 304)]
    assert httpd.requests[-1][1].get("If-None-Match", "").startswith('"')
    assert again == first


def _age_states(cache_env: Path, seconds: float) -> None:
    """Make every cached repodata state ``seconds`` older (as if fetched that long ago)."""
    for p in [*(cache_env / "repodata").glob("*.state.json"), *(cache_env / "repodata" / "shards").glob("*.state.json")]:
        st = orjson.loads(p.read_bytes())
        if "fetched" in st:
            st["fetched"] -= seconds
            p.write_bytes(orjson.dumps(st))


def test_copy_younger_than_max_age_is_not_asked_for_again(realdata: Path, tmp_path: Path, etag_server, cache_env,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """As conda (local_repodata_ttl 1): the server's Cache-Control max-age decides how long a copy is used unasked;
    $CONDA_LOCAL_REPODATA_TTL=0 revalidates every time."""
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    httpd, url = etag_server(chan_dir)
    httpd.cache_control = "public, max-age=600"
    s, log = session_with_log()
    first = subdir_records(http_channel(url), "linux-64", s)
    assert log == [("/linux-64/repodata.json.zst", 200)]
    log.clear()
    assert subdir_records(http_channel(url), "linux-64", s) == first
    assert log == []  # fresh: not asked
    monkeypatch.setenv("CONDA_LOCAL_REPODATA_TTL", "0")
    assert subdir_records(http_channel(url), "linux-64", s) == first
    assert log == [("/linux-64/repodata.json.zst", 304)]
    monkeypatch.delenv("CONDA_LOCAL_REPODATA_TTL")
    log.clear()
    _age_states(cache_env, 601)  # stale: revalidated, and the 304's max-age makes it fresh again
    assert subdir_records(http_channel(url), "linux-64", s) == first
    assert log == [("/linux-64/repodata.json.zst", 304)]
    log.clear()
    assert subdir_records(http_channel(url), "linux-64", s) == first
    assert log == []
    _age_states(cache_env, -3600)  # fetched "in the future" (a clock set back): not trusted
    assert subdir_records(http_channel(url), "linux-64", s) == first
    assert log == [("/linux-64/repodata.json.zst", 304)]
    # a 304 without Cache-Control keeps the lifetime stored with the copy (RFC 9111 4.3.4)
    httpd.cache_control = None
    _age_states(cache_env, 601)
    log.clear()
    assert subdir_records(http_channel(url), "linux-64", s) == first
    assert log == [("/linux-64/repodata.json.zst", 304)]
    log.clear()
    assert subdir_records(http_channel(url), "linux-64", s) == first
    assert log == []


@pytest.mark.parametrize("cc, ttl, asked", [
    (None, None, True),  # no Cache-Control: revalidate every time
    ("no-cache, max-age=600", None, True),
    ("max-age=0", None, True),
    (None, "300", False),  # a TTL of N > 1 seconds: trusted that long whatever the server says
    ("no-store", "300", False),
])
def test_freshness_rules(realdata: Path, tmp_path: Path, etag_server, cache_env, monkeypatch: pytest.MonkeyPatch,
                         cc: str | None, ttl: str | None, asked: bool) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    httpd, url = etag_server(chan_dir)
    httpd.cache_control = cc
    if ttl is not None:
        monkeypatch.setenv("CONDA_LOCAL_REPODATA_TTL", ttl)
    s, log = session_with_log()
    subdir_records(http_channel(url), "linux-64", s)
    log.clear()
    subdir_records(http_channel(url), "linux-64", s)
    assert log == ([("/linux-64/repodata.json.zst", 304)] if asked else [])


def test_bad_ttl_is_one_line(realdata: Path, tmp_path: Path, etag_server, cache_env,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    _httpd, url = etag_server(chan_dir)
    s, _log = session_with_log()
    subdir_records(http_channel(url), "linux-64", s)
    monkeypatch.setenv("CONDA_LOCAL_REPODATA_TTL", "soon")
    with pytest.raises(ChannelError, match=r"CONDA_LOCAL_REPODATA_TTL='soon': expected a number of seconds"):
        subdir_records(http_channel(url), "linux-64", s)


def test_cache_max_age_parsing() -> None:
    assert cache_max_age("public, max-age=1200") == 1200
    assert cache_max_age('max-age="30"') == 30
    assert cache_max_age("MAX-AGE=5, must-revalidate") == 5
    assert cache_max_age("s-maxage=100") == 0
    assert cache_max_age("max-age=600, no-cache") == 0
    assert cache_max_age("max-age=-1") == 0
    assert cache_max_age("") == 0
    assert cache_max_age(None) is None  # no header: a 304 keeps the stored lifetime


def test_shard_index_younger_than_max_age_is_not_asked_for_again(realdata: Path, tmp_path: Path, etag_server,
                                                                 cache_env) -> None:
    src = realdata / "repodata" / "conda-tests" / "conda_format_repo"
    chan = tmp_path / "chan"
    shutil.copytree(src, chan)
    for p in [chan, *chan.rglob("*")]:  # the shared data is read-only; the copy must be removable
        p.chmod(0o755 if p.is_dir() else 0o644)
    httpd, url = etag_server(chan)
    httpd.cache_control = "max-age=600"
    s, log = session_with_log()
    first = ShardedSubdir.open(http_channel(url), "linux-64", s, False)
    assert first is not None and log == [("/linux-64/repodata_shards.msgpack.zst", 200)]
    log.clear()
    again = ShardedSubdir.open(http_channel(url), "linux-64", s, False)
    assert again is not None and sorted(again.names()) == sorted(first.names())
    assert log == []
    _age_states(cache_env, 601)
    assert ShardedSubdir.open(http_channel(url), "linux-64", s, False) is not None
    assert log == [("/linux-64/repodata_shards.msgpack.zst", 304)]


def test_corrupted_cache_entry_is_refetched(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    server = serve_dir(chan_dir)
    s, log = session_with_log()
    first = subdir_records(http_channel(server.url), "linux-64", s)
    [data] = [p for p in (cache_env / "repodata").glob("*.json") if not p.name.endswith(".state.json")]
    data.write_bytes(b'{"packages": {}}')
    data.with_suffix(".index").write_bytes(b"OCICIDX1 truncated")  # the per-name index holds its own copy
    log.clear()
    assert subdir_records(http_channel(server.url), "linux-64", s) == first
    assert log == [("/linux-64/repodata.json.zst", 200)]  # unconditional: the cached copy failed its sha256


# ---------------------------------------------------------------- offline

def test_offline_uses_cache_and_says_what_is_missing(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    (chan_dir / "osx-arm64").rename(tmp_path / "gone")
    server = serve_dir(chan_dir)
    channel = http_channel(server.url)
    with pytest.raises(ChannelError) as ei:
        records_of_channels([channel], "linux-64", make_session(offline=True))
    assert "offline" in str(ei.value) and server.url in str(ei.value) and "\n" not in str(ei.value)
    assert server.requests == []

    online = records_of_channels([channel], "linux-64", make_session())
    with pytest.raises(ChannelError):  # a missing subdir is remembered too, but only after it was asked for
        records_of_channels([channel], "osx-arm64", make_session(offline=True))
    records_of_channels([channel], "osx-arm64", make_session())  # noarch alone is a channel: fine
    n = len(server.requests)
    assert records_of_channels([channel], "linux-64", make_session(offline=True)) == online
    assert records_of_channels([channel], "linux-64", make_session(), offline=True) == online
    [osx] = records_of_channels([channel], "osx-arm64", make_session(offline=True))
    assert len(server.requests) == n  # nothing went to the network
    assert {r.subdir for r in osx} <= {"noarch"}


# ---------------------------------------------------------------- local channels

def test_file_url_and_path_channels(realdata: Path, tmp_path: Path) -> None:
    src = realdata / PYPI_CHANNEL
    by_path = resolve_channel(str(src), tmp_path)
    by_url = resolve_channel(src.resolve().as_uri(), tmp_path)
    assert by_path == by_url
    [recs] = records_of_channels([by_path], "linux-64", make_session(offline=True))
    want = expected_fns(src / "linux-64" / "repodata.json", src / "noarch" / "repodata.json")
    assert {r.fn for r in recs} == want
    # every file is listed in linux-64/repodata.json (noarch/ is empty): URLs use the listing subdir
    for r in recs:
        assert r.url == f"{by_path.url}/linux-64/{r.fn}" and r.channel == by_path.url


def test_local_zst_preferred_over_json(tmp_path: Path) -> None:
    (tmp_path / "noarch").mkdir()
    entry = {"name": "a", "version": "1", "build": "0", "build_number": 0, "depends": []}
    plain = {"info": {"subdir": "noarch"}, "packages": {"a-1-0.tar.bz2": entry}}
    both = {"info": {"subdir": "noarch"}, "packages": {"a-1-0.tar.bz2": entry, "b-1-0.tar.bz2": dict(entry, name="b")}}
    (tmp_path / "noarch" / "repodata.json").write_bytes(json.dumps(plain).encode())
    (tmp_path / "noarch" / "repodata.json.zst").write_bytes(zstandard.compress(json.dumps(both).encode()))
    recs = subdir_records(resolve_channel(str(tmp_path), tmp_path), "noarch", make_session())
    assert sorted(r.fn for r in recs) == ["a-1-0.tar.bz2", "b-1-0.tar.bz2"]


def test_conda_preferred_over_tar_bz2(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "repodata/conda-tests/conda_format_repo"
    raw = json.loads((src / "linux-64/repodata.json").read_bytes())
    dupes = {fn[:-6] for fn in raw["packages.conda"]} & {fn[:-8] for fn in raw["packages"]}
    assert dupes  # the real file has zlib in both formats
    recs = subdir_records(resolve_channel(str(src), tmp_path), "linux-64", make_session())
    by_stem = {r.dist_name: r for r in recs}
    assert len(by_stem) == len(recs)
    for stem in dupes:
        assert by_stem[stem].fn == stem + ".conda"
        assert by_stem[stem].md5 == raw["packages.conda"][stem + ".conda"]["md5"]
    assert {r.fn for r in recs} == expected_fns(src / "linux-64/repodata.json")


def test_cep15_base_url(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "repodata/mamba-tests/conda-forge-repodata-version-2.json"
    raw = json.loads(src.read_bytes())
    base = raw["info"]["base_url"]
    (tmp_path / "linux-64").mkdir()
    shutil.copyfile(src, tmp_path / "linux-64" / "repodata.json")
    recs = subdir_records(resolve_channel(str(tmp_path), tmp_path), "linux-64", make_session())
    assert {r.url for r in recs} == {base.rstrip("/") + "/" + fn for fn in expected_fns(src)}
    assert all(r.channel == tmp_path.resolve().as_uri() for r in recs)

    # a relative base_url is relative to the subdir URL
    raw["info"]["base_url"] = "../../pkgs/"
    (tmp_path / "linux-64" / "repodata.json").write_bytes(json.dumps(raw).encode())
    recs = subdir_records(resolve_channel(str(tmp_path), tmp_path), "linux-64", make_session())
    root = tmp_path.resolve().parent.as_uri()
    assert {r.url for r in recs} == {f"{root}/pkgs/{fn}" for fn in expected_fns(src)}


# ---------------------------------------------------------------- broken channels

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_channel_one_line_error_without_credentials(cache_env) -> None:
    port = _closed_port()
    chan = Channel(name="x", url=f"http://127.0.0.1:{port}/chan", auth_url=f"http://me:hunter2@127.0.0.1:{port}/t/TOKEN9/chan")
    with pytest.raises(ChannelError) as ei:
        records_of_channels([chan], "linux-64", make_session(retries=1, backoff=0))
    msg = str(ei.value)
    assert f"http://127.0.0.1:{port}/chan" in msg and "refused" in msg
    assert "\n" not in msg and "hunter2" not in msg and "TOKEN9" not in msg


def test_token_and_basic_auth_are_sent(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    (chan_dir / "t" / "TOK").mkdir(parents=True)
    shutil.copytree(chan_dir / "linux-64", chan_dir / "t" / "TOK" / "linux-64")
    server = serve_dir(chan_dir)
    host = server.url.split("//", 1)[1]
    chan = Channel(name="p", url=server.url, auth_url=f"http://me:pw@{host}/t/TOK")
    recs = subdir_records(chan, "linux-64", make_session())
    method, path, headers = server.requests[0]
    assert path == "/t/TOK/linux-64/repodata.json.zst" and headers["Authorization"].startswith("Basic ")
    assert headers["User-Agent"] == f"oci-conda/{oci_conda.__version__}"
    assert all(r.channel == server.url and r.url.startswith(f"http://me:pw@{host}/t/TOK/") for r in recs)


def test_not_a_channel_and_missing_subdirs(tmp_path: Path, serve_dir, cache_env) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "only-linux" / "linux-64").mkdir(parents=True)
    (tmp_path / "only-linux" / "linux-64" / "repodata.json").write_text('{"packages": {}}')
    server = serve_dir(tmp_path)
    s = make_session()
    with pytest.raises(ChannelError, match="not a conda channel") as ei:
        records_of_channels([http_channel(f"{server.url}/empty")], "linux-64", s)
    assert f"{server.url}/empty" in str(ei.value)
    with pytest.raises(ChannelError, match="not a conda channel"):
        records_of_channels([resolve_channel(str(tmp_path / "empty"), tmp_path)], "linux-64", s)
    assert records_of_channels([http_channel(f"{server.url}/only-linux")], "linux-64", s) == [[]]
    with pytest.raises(ChannelError, match=r"has no repodata for noarch at .*only-linux/noarch"):
        subdir_records(http_channel(f"{server.url}/only-linux"), "noarch", s)
    with pytest.raises(ChannelError, match=r"has no repodata for osx-64"):
        subdir_records(resolve_channel(str(tmp_path / "only-linux"), tmp_path), "osx-64", s)


GARBAGE = [
    b"this is not json",
    b"[1, 2, 3]",
    b'{"packages": []}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": 1, "build": "0"}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": "1", "build": "0", "depends": "python"}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"version": "1", "build": "0"}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": "1", "build": "0", "build_number": "x"}}}',
    b'{"info": {"base_url": 7}, "packages": {}}',
    b'\x28\xb5\x2f\xfdgarbage',
]


def test_garbage_repodata_is_a_channel_error(tmp_path: Path, serve_dir, cache_env) -> None:
    for i, body in enumerate(GARBAGE):
        (tmp_path / f"c{i}" / "linux-64").mkdir(parents=True)
        (tmp_path / f"c{i}" / "linux-64" / "repodata.json").write_bytes(body)
    server = serve_dir(tmp_path)
    for i, body in enumerate(GARBAGE):
        for chan in (http_channel(f"{server.url}/c{i}"), resolve_channel(str(tmp_path / f"c{i}"), tmp_path)):
            with pytest.raises(ChannelError) as ei:
                subdir_records(chan, "linux-64", make_session())
            msg = str(ei.value)
            assert "\n" not in msg and f"{chan.url}/linux-64/repodata.json" in msg, body
    # what is not repodata at all is never cached; a document with a bad entry is (its index is cut without
    # parsing entries), and that entry fails again, as above, whenever its name is looked up
    cached = [p for p in (cache_env / "repodata").glob("*.json") if not p.name.endswith(".state.json")]
    entry_level = [b for b in GARBAGE if b.startswith(b'{"packages": {"a-1-0')]
    assert len(cached) <= len(entry_level)


class _FailingHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_offline_session_refuses_every_request() -> None:
    with pytest.raises(FetchError) as ei:
        make_session(offline=True).get("http://me:pw@127.0.0.1:9/t/TOK/chan/noarch/repodata.json")
    msg = str(ei.value)
    assert "offline" in msg and "127.0.0.1:9/t/***/chan/noarch/repodata.json" in msg and "pw" not in msg


def test_server_errors_are_retried_then_reported(cache_env) -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FailingHandler)
    httpd.hits = 0  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/c"
        with pytest.raises(ChannelError, match="HTTP 503") as ei:
            subdir_records(http_channel(url), "linux-64", make_session(retries=2, backoff=0))
        assert url in str(ei.value)
        assert httpd.hits == 3  # the first try and two retries
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_state_file_is_plain_json(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    server = serve_dir(chan_dir)
    records_of_channels([http_channel(server.url)], "linux-64", make_session())
    states = [orjson.loads(p.read_bytes()) for p in (cache_env / "repodata").glob("*.state.json")]
    assert sorted(s["url"] for s in states) == [f"{server.url}/linux-64", f"{server.url}/noarch"]
    for st in states:
        assert st["variant"] == "zst" and isinstance(st["fetched"], float)
        assert {"etag", "last_modified", "sha256", "size"} <= set(st)
