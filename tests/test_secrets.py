"""Channel credentials never leak: a real-package channel served on 127.0.0.1 under ``/t/<token>/`` and behind HTTP
Basic auth (``user:pass@`` URLs). The secret is searched for in stdout and stderr (with --debug), in every byte of the
output archive (layers decompressed: conda-meta, history, environment files, config, labels), in the lockfile, and in
every file of the cache that is not a package file; also when builds fail (bad token, missing package)."""

from __future__ import annotations

import base64
import functools
import gzip
import http.server
import io
import os
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from realenv import make_real_channel, oci_conda

TOKEN = "xt-9f3c1a77e5b24d0c8aa1-tokn"
USER, PASSWORD = "alice", "pw-5e7d2b19c4f0-secret"
SECRETS = [TOKEN, PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[override]
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "token":
            prefix = f"/t/{TOKEN}/"
            if not self.path.startswith(prefix):
                self.send_error(403)
                return None
            self.path = "/" + self.path[len(prefix):]
        else:
            want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != want:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="conda"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        return super().send_head()


@pytest.fixture(scope="module")
def servers(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("secrets")
    make_real_channel(realdata, root / "chan")
    make_real_channel(realdata, root / "broken")  # the same repodata, but the xz package file is gone
    for f in (root / "broken" / "linux-64").glob("xz-*"):
        f.unlink()
    out, started = {}, []
    for mode in ("token", "basic"):
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
        httpd.mode = mode  # type: ignore[attr-defined]
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()
        started.append((httpd, t))
        port = httpd.server_address[1]
        out[mode] = (f"http://127.0.0.1:{port}/t/{TOKEN}/chan" if mode == "token"
                     else f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/chan")
    yield out
    for httpd, t in started:
        httpd.shutdown()
        httpd.server_close()
        t.join(5)


def _texts(blob: bytes) -> Iterator[bytes]:
    """The bytes, and for a tar or gzip-compressed tar (an archive, a layer) every member's bytes, recursively."""
    yield blob
    data = blob
    if blob[:2] == b"\x1f\x8b":
        data = gzip.decompress(blob)
        yield data
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                yield m.name.encode() + b"\0" + m.linkname.encode()
                f = tar.extractfile(m) if m.isfile() else None
                if f is not None:
                    yield from _texts(f.read())
    except tarfile.TarError:
        pass


def _assert_clean(what: str, data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    for chunk in _texts(raw):
        for s in SECRETS:
            assert s.encode() not in chunk, f"{what} contains the secret {s!r}"


def _scan_cache(cache: Path) -> int:
    n = 0
    for p in cache.rglob("*"):
        if p.is_file() and not p.is_symlink() and not p.name.endswith((".conda", ".tar.bz2")):
            _assert_clean(f"cache file {p.relative_to(cache)}", p.read_bytes())
            n += 1
    return n


@pytest.mark.parametrize("mode", ["token", "basic"])
def test_channel_credentials_never_leak(servers: dict, tmp_path: Path, mode: str) -> None:
    url = servers[mode]
    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))
    (tmp_path / "env.yml").write_text(f"name: s\nchannels: [{url}]\ndependencies: [xz]\n"
                                      "image:\n  labels:\n    org.example.channel: from-env\n")
    runs = []
    runs.append(oci_conda("build", "env.yml", "-o", "out.tar", "--debug", cwd=tmp_path, env=env))
    runs.append(oci_conda("build", "env.yml", "-o", "out.tar", "--debug", "--json", cwd=tmp_path, env=env))
    runs.append(oci_conda("solve", "env.yml", "--json", "--debug", cwd=tmp_path, env=env))
    runs.append(oci_conda("lock", "env.yml", "-o", "env.lock", "--debug", cwd=tmp_path, env=env))
    runs.append(oci_conda("build", "env.yml", "--lock", "env.lock", "-o", "locked.tar", "--debug", cwd=tmp_path,
                          env=env))
    runs.append(oci_conda("inspect", "out.tar", "--json", cwd=tmp_path, env=env))
    # failures: a wrong secret, a package the channel does not have, a file missing from the server
    bad = url.replace(TOKEN, TOKEN[:-4] + "nope") if mode == "token" else url.replace(PASSWORD, PASSWORD + "x")
    (tmp_path / "bad.yml").write_text(f"name: b\nchannels: [{bad}]\ndependencies: [xz]\n")
    (tmp_path / "unsat.yml").write_text(f"name: u\nchannels: [{url}]\ndependencies: [no-such-package]\n")
    (tmp_path / "gone.yml").write_text(f"name: g\nchannels: [{url.replace('/chan', '/broken')}]\n"
                                       "dependencies: [xz]\n")
    failing = [("bad.yml",), ("unsat.yml",), ("gone.yml",)]
    for (f,) in failing:
        p = oci_conda("build", f, "-o", "x.tar", "--debug", cwd=tmp_path, env=dict(env, OCI_CONDA_CACHE=str(
            tmp_path / "cache2")), check=False)
        assert p.returncode != 0
        assert "oci-conda: error: " in p.stderr
        runs.append(p)
    for p in runs:
        _assert_clean(f"stdout of {p.args[3:]}", p.stdout)
        _assert_clean(f"stderr of {p.args[3:]}", p.stderr)
    # the failures are about the channel (else they would prove nothing)
    assert "127.0.0.1" in runs[-3].stderr and "no-such-package" in runs[-2].stderr and "xz-" in runs[-1].stderr
    for f in ("out.tar", "locked.tar", "env.lock"):
        _assert_clean(f, (tmp_path / f).read_bytes())
    # the scan does reach into the layers: conda-meta's record of xz names the channel, just not its secret
    assert any(b"/chan/linux-64/xz-" in t and b"127.0.0.1" in t for t in _texts((tmp_path / "out.tar").read_bytes()))
    assert _scan_cache(tmp_path / "cache") > 10
    _scan_cache(tmp_path / "cache2")
