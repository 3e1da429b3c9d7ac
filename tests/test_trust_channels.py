"""Hostile channels over HTTP on 127.0.0.1: a repodata.json.zst bomb is refused within bounded memory, and a remote
channel may not redirect package downloads to another scheme (``file://`` would read the build host's disk)
(issue 12: unbounded reads; where bytes come from)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path
from typing import Iterator

import pytest
import zstandard
from gatewayutil import subdir_records
from hostile import run_bounded

from oci_conda.conda.channel import resolve_channel
from oci_conda.conda.repodata import decompress
from oci_conda.errors import ChannelError
from oci_conda.http import make_session


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1: (root, url)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _repodata(info: dict) -> bytes:
    rec = {"name": "a", "version": "1", "build": "0", "build_number": 0, "depends": [], "subdir": "linux-64",
           "sha256": "0" * 64, "size": 1}
    return json.dumps({"info": {"subdir": "linux-64", **info}, "packages": {"a-1-0.tar.bz2": rec}}).encode()


@pytest.mark.parametrize("base", ["file:///etc/", "file:/etc/", "ftp://127.0.0.1/x/"])
def test_remote_channel_cannot_switch_base_url_scheme(served: tuple[Path, str], base: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache"))
    root, url = served
    (root / "chan/linux-64").mkdir(parents=True)
    (root / "chan/linux-64/repodata.json").write_bytes(_repodata({"base_url": base}))
    with pytest.raises(ChannelError, match="'info.base_url' switches a http channel to") as e:
        subdir_records(resolve_channel(f"{url}/chan", tmp_path), "linux-64", make_session())
    assert "\n" not in str(e.value)


def test_remote_channel_may_use_another_http_host_and_relative_base(served: tuple[Path, str], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache"))
    root, url = served
    (root / "chan/linux-64").mkdir(parents=True)
    for base, want in (("https://mirror.invalid/pkgs/", "https://mirror.invalid/pkgs/a-1-0.tar.bz2"),
                       ("../../pkgs/", f"{url}/pkgs/a-1-0.tar.bz2")):
        (root / "chan/linux-64/repodata.json").write_bytes(_repodata({"base_url": base}))
        recs = subdir_records(resolve_channel(f"{url}/chan", tmp_path), "linux-64", make_session())
        assert [r.url for r in recs] == [want]
        for p in (tmp_path / "cache").rglob("*"):
            if p.is_file():
                p.unlink()


def test_local_channel_keeps_file_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache"))
    (tmp_path / "chan/linux-64").mkdir(parents=True)
    (tmp_path / "chan/linux-64/repodata.json").write_bytes(_repodata({"base_url": (tmp_path / "pkgs").as_uri()}))
    recs = subdir_records(resolve_channel(str(tmp_path / "chan"), tmp_path), "linux-64", make_session())
    assert recs[0].url.startswith("file://")


def _zst_bomb(path: Path, size: int) -> None:
    """``size`` zero bytes, zstd-compressed (with the size in the frame header), written as it is made."""
    c = zstandard.ZstdCompressor(level=1).compressobj(size=size)
    block = bytes(1 << 24)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(c.compress(block))
        f.write(c.flush())


def test_zst_bomb_is_refused_while_inflating(tmp_path: Path) -> None:
    bomb = tmp_path / "repodata.json.zst"
    _zst_bomb(bomb, 3 << 30)
    assert bomb.stat().st_size < 200 << 10
    code = ("import sys; from oci_conda.conda.repodata import decompress; from oci_conda.errors import ChannelError\n"
            "try: decompress(open(sys.argv[1], 'rb').read(), 'https://chan/linux-64/repodata.json.zst', 64 << 20)\n"
            "except ChannelError as e: print(e); sys.exit(3)\n")
    p = run_bounded(["-c", code, str(bomb)], mem=512 << 20, seconds=120, env=dict(os.environ))
    assert p.returncode == 3, p.stderr[-2000:]
    assert "inflates to more than the 67108864-byte limit" in p.stdout


def test_zst_bomb_from_an_http_channel_is_one_line(served: tuple[Path, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("oci_conda.conda.repodata.MAX_REPODATA", 32 << 20)
    monkeypatch.setattr(decompress, "__defaults__", (32 << 20,))
    root, url = served
    (root / "chan/linux-64").mkdir(parents=True)
    _zst_bomb(root / "chan/linux-64/repodata.json.zst", 256 << 20)
    with pytest.raises(ChannelError, match="inflates to more than the 33554432-byte limit"):
        subdir_records(resolve_channel(f"{url}/chan", tmp_path), "linux-64", make_session())


def test_session_bodies_are_capped_while_streaming(tmp_path: Path) -> None:
    """The build's one HTTP session reads every whole body through the cap: an endless answer ends at the cap."""
    import time

    from registry_fixtures import Answer, HostileServer, endless

    from oci_conda.http import BodyTooLarge

    srv = HostileServer(lambda s: Answer(200, {}, endless(b"x" * 65536)))
    try:
        t0 = time.monotonic()
        with pytest.raises(BodyTooLarge, match="limit"):
            make_session().get(f"{srv.url}/chan/linux-64/repodata.json", max_bytes=4 << 20)
        assert time.monotonic() - t0 < 30
        big = HostileServer(lambda s: Answer(200, {"Content-Length": str(1 << 40)}, b""))
        try:
            with pytest.raises(BodyTooLarge, match="announced"):
                make_session().get(f"{big.url}/x", max_bytes=4 << 20)
        finally:
            big.stop()
    finally:
        srv.stop()
