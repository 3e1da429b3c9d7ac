"""Package downloads into the content-addressed cache, over real loopback HTTP and from local channels."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from oci_conda.conda.channel import Channel, resolve_channel
from oci_conda.conda.fetch import cached_path, fetch_packages
from oci_conda.conda.records import PackageRecord
from oci_conda.errors import FetchError
from oci_conda.http import make_session
from gatewayutil import records_of_channels

PKGS = Path("packages/conda-forge-linux-64")
REPODATA = Path("repodata/conda-pypi-local-channel")


def sha256_of(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def build_channel(realdata: Path, dst: Path) -> Path:
    """The vendored conda-forge files laid out as a channel: each file under the subdir whose repodata lists it."""
    for sub in ("linux-64", "noarch"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for v in ("repodata.json", "repodata.json.zst"):
            (dst / sub / v).write_bytes((realdata / REPODATA / sub / v).read_bytes())
    raw = json.loads((realdata / REPODATA / "linux-64" / "repodata.json").read_bytes())
    for fn, entry in {**raw["packages"], **raw["packages.conda"]}.items():
        src = realdata / PKGS / fn
        if src.exists():  # python itself was too big to vendor
            (dst / "linux-64" / fn).symlink_to(src)
    return dst


@pytest.fixture
def channel_records(realdata: Path, tmp_path: Path, serve_dir) -> Iterator[tuple[object, list[PackageRecord]]]:
    server = serve_dir(build_channel(realdata, tmp_path / "chan"))
    [recs] = records_of_channels([Channel(server.url, server.url, server.url)], "linux-64", make_session())
    have = {p.name for p in (realdata / PKGS).iterdir()}
    yield server, [r for r in recs if r.fn in have]


def cache_entries(cache: Path) -> list[str]:
    d = cache / "pkgs"
    return sorted(p.name for p in d.iterdir() if p.is_file()) if d.exists() else []


def test_parallel_fetch_of_real_packages(realdata: Path, channel_records, cache_env) -> None:
    server, recs = channel_records
    listed = json.loads((realdata / REPODATA / "linux-64" / "repodata.json").read_bytes())
    vendored = {p.name for p in (realdata / PKGS).iterdir()}
    assert len(recs) == len(vendored & {*listed["packages"], *listed["packages.conda"]}) > 20
    assert any(r.subdir == "noarch" for r in recs)
    seen: dict[str, tuple[int, int | None]] = {}
    lock = threading.Lock()

    def progress(rec: PackageRecord, done: int, total: int | None) -> None:
        with lock:
            seen[rec.fn] = (done, total)

    n = len(server.requests)
    got = fetch_packages(recs, make_session(), jobs=8, progress=progress)
    assert set(got) == {r.url for r in recs}
    for r in recs:
        src = realdata / PKGS / r.fn
        p = got[r.url]
        assert p.parent == cache_env / "pkgs" and p.name == f"{sha256_of(src)}{r.ext}"
        assert sha256_of(p) == r.sha256 and p.stat().st_size == src.stat().st_size
        assert seen[r.fn] == (r.size, r.size)
        assert cached_path(r) == p
    assert len(server.requests) - n == len(recs)
    assert cache_entries(cache_env) == sorted(p.name for p in got.values())  # no temp files left

    # a second build finds everything in the cache and asks the server for nothing
    n = len(server.requests)
    assert fetch_packages(recs, make_session(), jobs=8) == got
    assert fetch_packages(recs, make_session(offline=True)) == got
    assert len(server.requests) == n


def test_corrupted_file_is_rejected_and_not_cached(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    src = realdata / PKGS / "libuuid-2.38.1-h0b41bf4_0.conda"
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "linux-64").mkdir()
    (tmp_path / "linux-64" / src.name).write_bytes(bytes(data))
    server = serve_dir(tmp_path)
    rec = PackageRecord(name="libuuid", version="2.38.1", build="h0b41bf4_0", build_number=0, subdir="linux-64",
                        channel=server.url, url=f"{server.url}/linux-64/{src.name}", fn=src.name,
                        sha256=sha256_of(src), size=len(data))
    with pytest.raises(FetchError) as ei:
        fetch_packages([rec], make_session())
    bad = hashlib.sha256(bytes(data)).hexdigest()
    assert str(ei.value) == f"sha256 mismatch for {src.name} from {server.url}: expected {rec.sha256}, got {bad}"
    assert cache_entries(cache_env) == []
    assert cached_path(rec) is None

    # md5-only records are verified by md5
    md5_rec = dataclasses.replace(rec, sha256=None, md5=hashlib.md5(src.read_bytes()).hexdigest())
    with pytest.raises(FetchError, match=f"md5 mismatch for {src.name}"):
        fetch_packages([md5_rec], make_session())
    assert cache_entries(cache_env) == []

    # a wrong size is caught as such
    with pytest.raises(FetchError, match="size mismatch"):
        fetch_packages([dataclasses.replace(rec, size=len(data) + 1)], make_session())
    assert cache_entries(cache_env) == []


def test_md5_only_and_no_checksum(realdata: Path, tmp_path: Path, cache_env) -> None:
    chan = resolve_channel(str(build_channel(realdata, tmp_path / "chan")), tmp_path)
    [recs] = records_of_channels([chan], "linux-64", make_session())
    rec = next(r for r in recs if r.fn == "xz-5.2.6-h166bdaf_0.tar.bz2")
    src = realdata / PKGS / rec.fn
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    p = fetch_packages([dataclasses.replace(rec, sha256=None, md5=md5)], make_session())[rec.url]
    assert p.name == f"{md5}.tar.bz2" and p.read_bytes() == src.read_bytes()
    bare = dataclasses.replace(rec, sha256=None, md5=None, size=None)
    p2 = fetch_packages([bare], make_session())[rec.url]
    assert p2.name == f"{sha256_of(src)}.tar.bz2"
    # file:// sources need no network, so offline builds can still use them
    assert fetch_packages([bare], make_session(offline=True))[rec.url] == p2


def test_file_channel_packages_are_copied_and_verified(realdata: Path, tmp_path: Path, cache_env) -> None:
    chan = resolve_channel(str(build_channel(realdata, tmp_path / "chan")), tmp_path)
    [recs] = records_of_channels([chan], "linux-64", make_session())
    recs = [r for r in recs if (realdata / PKGS / r.fn).exists()][:6]
    got = fetch_packages(recs, make_session(offline=True), jobs=3)  # file:// needs no network
    for r in recs:
        assert r.url.startswith("file://") and got[r.url].name == f"{r.sha256}{r.ext}"
        assert sha256_of(got[r.url]) == r.sha256
    missing = dataclasses.replace(recs[0], url=recs[0].url + ".nope", sha256="0" * 64)
    with pytest.raises(FetchError, match="not found"):
        fetch_packages([missing], make_session())


def test_404_names_package_and_redacted_url(channel_records, cache_env) -> None:
    server, recs = channel_records
    host = server.url.split("//", 1)[1]
    rec = dataclasses.replace(recs[0], fn="gone-1-0.conda", url=f"http://u:sekrit@{host}/t/TK5/linux-64/gone-1-0.conda")
    with pytest.raises(FetchError) as ei:
        fetch_packages([rec, *recs[1:4]], make_session(), jobs=4)
    msg = str(ei.value)
    assert "gone-1-0.conda" in msg and "404" in msg and f"{host}/t/***/linux-64/gone-1-0.conda" in msg
    assert "sekrit" not in msg and "TK5" not in msg and "\n" not in msg
    assert not any(n.startswith(rec.sha256 or "") for n in cache_entries(cache_env))


def test_offline_without_cache(channel_records, cache_env) -> None:
    server, recs = channel_records
    with pytest.raises(FetchError, match=f"offline.*{recs[0].fn}"):
        fetch_packages(recs[:1], make_session(offline=True))
    with pytest.raises(FetchError, match="offline"):
        fetch_packages(recs[:1], make_session(), offline=True)
    bare = dataclasses.replace(recs[0], sha256=None, md5=None)
    with pytest.raises(FetchError, match="offline.*no checksum"):
        fetch_packages([bare], make_session(offline=True))
    assert server.requests[-1][1].endswith("repodata.json.zst")  # only the repodata fetch of the fixture


def test_damaged_cache_entry_is_replaced(channel_records, cache_env) -> None:
    server, recs = channel_records
    rec = recs[0]
    p = fetch_packages([rec], make_session())[rec.url]
    p.write_bytes(b"truncated")
    n = len(server.requests)
    assert fetch_packages([rec], make_session())[rec.url] == p
    assert sha256_of(p) == rec.sha256 and len(server.requests) == n + 1


def test_same_size_corruption_is_replaced_and_offline_says_so(channel_records, cache_env) -> None:
    """A flipped byte keeps the size: the digest record's stamp changes, the re-hash finds it, it is fetched again."""
    server, recs = channel_records
    rec = recs[0]
    p = fetch_packages([rec], make_session())[rec.url]
    st = os.stat(p)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime put back
    assert cached_path(rec) is None
    with pytest.raises(FetchError, match=f"offline build: {rec.fn} was damaged in the package cache"):
        fetch_packages([rec], make_session(offline=True))
    n = len(server.requests)
    assert fetch_packages([rec], make_session())[rec.url] == p
    assert sha256_of(p) == rec.sha256 and len(server.requests) == n + 1
    assert cached_path(rec) == p


def test_concurrent_fetches_share_one_cache(channel_records, cache_env, tmp_path: Path) -> None:
    server, recs = channel_records
    payload = tmp_path / "recs.json"
    payload.write_text(json.dumps([r.to_json() for r in recs]))
    script = (
        "import json, sys\n"
        "from oci_conda.conda.records import PackageRecord\n"
        "from oci_conda.conda.fetch import fetch_packages\n"
        "from oci_conda.http import make_session\n"
        "recs = [PackageRecord.from_json(d) for d in json.load(open(sys.argv[1]))]\n"
        "got = fetch_packages(recs, make_session(), jobs=8)\n"
        "print(json.dumps({u: str(p) for u, p in got.items()}))\n"
    )
    env = dict(os.environ, OCI_CONDA_CACHE=str(cache_env))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(payload)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    in_process: dict[str, Path] = {}
    t = threading.Thread(target=lambda: in_process.update(fetch_packages(recs, make_session(), jobs=8)))
    t.start()
    outs = [p.communicate(timeout=60) for p in procs]
    t.join(60)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert {u: Path(v) for u, v in json.loads(out).items()} == in_process
    for r in recs:
        assert sha256_of(in_process[r.url]) == r.sha256
    assert cache_entries(cache_env) == sorted(p.name for p in in_process.values())


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves one file; the first GET breaks off half-way, later ones honour ``Range`` (as CDNs do)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        data: bytes = srv.data  # type: ignore[attr-defined]
        srv.log.append(dict(self.headers))  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        if len(srv.log) == 1:  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if not srv.ranges:  # type: ignore[attr-defined]
            rng = None  # a server without range support answers with the whole file
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.mark.parametrize("ranges", [True, False])
def test_broken_transfer_resumes_with_range(realdata: Path, cache_env, ranges: bool) -> None:
    src = realdata / PKGS / "libsqlite-3.46.0-hde9e2c9_0.conda"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    httpd.ranges = ranges  # type: ignore[attr-defined]
    httpd.data = src.read_bytes()  # type: ignore[attr-defined]
    httpd.log = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        rec = PackageRecord(name="libsqlite", version="3.46.0", build="hde9e2c9_0", build_number=0,
                            subdir="linux-64", channel=url, url=f"{url}/linux-64/{src.name}", fn=src.name,
                            sha256=sha256_of(src), size=src.stat().st_size)
        p = fetch_packages([rec], make_session())[rec.url]
        assert sha256_of(p) == rec.sha256
        log = httpd.log  # type: ignore[attr-defined]
        assert len(log) == 2 and "Range" not in log[0]
        # resumed from the bytes that arrived in whole chunks: not from zero, not past what was sent
        start = int(log[1]["Range"].removeprefix("bytes=").rstrip("-"))
        assert 0 < start <= len(httpd.data) // 2  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
