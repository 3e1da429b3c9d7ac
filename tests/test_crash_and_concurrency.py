"""kill -9 at any moment of a real build leaves no partial output and a cache the next build uses correctly; four builds
of overlapping environments at once on one cache give the digests they give alone.

The real-package environment (tk, openssl, xz and their dependencies from the real conda-forge files) is built through
the CLI in subprocesses. Kill moments: 10 (``pytest --slow``: 30) drawn with a fixed seed uniformly over the duration of
an undisturbed cold build, each on its own fresh cache so every phase gets hit, plus one kill at the moment each kind
of temp file (package download, extraction dir, layer blob, output archive) first appears.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import long_variant
from realenv import make_real_channel, oci_conda

pytestmark = pytest.mark.slow

KILLS = long_variant(10, 30)
SPECS = ["tk", "openssl", "xz"]


@pytest.fixture(scope="module")
def world(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("crash")
    make_real_channel(realdata, root / "chan")
    envs = {
        "all": SPECS,
        "tk": ["tk"],
        "openssl-xz": ["openssl", "xz"],
        "tk-xz": ["tk", "xz"],
    }
    for name, deps in envs.items():
        (root / f"{name}.yml").write_text(f"name: {name}\nchannels: [./chan]\ndependencies: [{', '.join(deps)}]\n")
    return {"root": root, "envs": envs}


def _env(cache: Path) -> dict:
    return dict(os.environ, OCI_CONDA_CACHE=str(cache))


def _build(root: Path, env_name: str, out: Path, cache: Path) -> tuple[str, str, float]:
    t = time.monotonic()
    p = oci_conda("build", f"{env_name}.yml", "-o", str(out), "--json", cwd=root, env=_env(cache), timeout=300)
    took = time.monotonic() - t
    digest = json.loads(p.stdout)["digest"]
    return digest, hashlib.sha256(out.read_bytes()).hexdigest(), took


@pytest.fixture(scope="module")
def baseline(world: dict) -> dict:
    """Undisturbed cold builds of every environment, each alone (one after the other on one cache after the first)."""
    root = world["root"]
    out = {}
    (root / "solo").mkdir()
    digest, filehash, took = _build(root, "all", root / "solo" / "all.tar", root / "cache-solo-all")
    out["all"] = (digest, filehash)
    out["cold_seconds"] = took
    for name in world["envs"]:
        if name != "all":
            d, h, _ = _build(root, name, root / "solo" / f"{name}.tar", root / "cache-solo")
            out[name] = (d, h)
    return out


def _start(root: Path, out: Path, cache: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "oci_conda", "build", "all.yml", "-o", str(out), "-q", *extra],
                            cwd=root,
                            env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for f in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out |= {int(x) for x in f.read_text().split()}
        except OSError:
            pass
    return out


def _kill(p: subprocess.Popen) -> bool:
    """kill -9; True if it was still running. Its worker processes must not outlive it (they would wait forever)."""
    if p.poll() is not None:
        return False
    workers = _children(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    deadline = time.monotonic() + 10
    while workers and time.monotonic() < deadline:
        workers = {w for w in workers if Path(f"/proc/{w}").exists() and
                   "zombie" not in Path(f"/proc/{w}/status").read_text(errors="replace").lower()}
        time.sleep(0.05)
    assert not workers, f"worker processes {sorted(workers)} outlived their killed build"
    return True


def _recover_and_check(root: Path, outdir: Path, cache: Path, baseline: dict, label: str) -> None:
    out = outdir / "image.tar"
    if out.exists():  # a kill after the rename: the file must be the whole image
        assert hashlib.sha256(out.read_bytes()).hexdigest() == baseline["all"][1], f"{label}: partial output file"
    else:
        assert list(outdir.iterdir()) == [] or all(p.name.startswith(".image.tar.") for p in outdir.iterdir())
    digest, filehash, _ = _build(root, "all", out, cache)
    assert (digest, filehash) == baseline["all"], f"{label}: the build after the kill gives another image"
    assert sorted(p.name for p in outdir.iterdir()) == ["image.tar"], f"{label}: stray files in the output dir"
    assert not list(cache.glob("tmp/oci-conda-held-*")), f"{label}: the killed build's spool was not swept"
    # the cache holds no temp files any more that a later build could mistake for entries
    leftovers = [p for p in cache.rglob("*") if p.name.endswith((".part", ".tmp")) and p.exists()]
    for p in leftovers:  # allowed to stay (the next build never trusts them), but never under an entry's name
        assert p.name.startswith("."), p


def test_kill_at_random_moments(world: dict, baseline: dict) -> None:
    root = world["root"]
    rng = random.Random(7)
    cold = baseline["cold_seconds"]
    moments = sorted(rng.uniform(0.02, 1.0) * cold for _ in range(KILLS))
    killed = 0
    for i, at in enumerate(moments):
        cache = root / f"cache-kill-{i}"
        outdir = root / f"out-kill-{i}"
        outdir.mkdir()
        p = _start(root, outdir / "image.tar", cache)
        time.sleep(at)
        killed += _kill(p)
        _recover_and_check(root, outdir, cache, baseline, f"kill at {at:.2f}s")
    assert killed >= KILLS // 2, f"only {killed} of {KILLS} builds were still running when killed"


def _spooling(cache: Path) -> list[str]:
    """Spool files of packages being streamed (layers/stream.py) in the build's temp dir in the cache."""
    return [p.name for p in cache.glob("tmp/oci-conda-held-stage-*/spool/*")]


#: kind of write -> (where to look, relative to the cache or the build's temp dir, what it is named), extra args
TARGETS: dict = {
    "package download": (lambda c: os.listdir(c / "pkgs"), lambda n: n.endswith(".part"), ()),
    # the per-package path streams packages; a single layer is made from the extraction cache
    "extraction": (lambda c: os.listdir(c / "extracted"), lambda n: n.startswith(".") and n.endswith(".tmp"),
                   ("--layering", "single")),
    "stream spool": (_spooling, lambda n: True, ()),
    "layer blob": (lambda c: os.listdir(c / "blobs" / "sha256"), lambda n: n.startswith(".blob."), ()),
}


@pytest.mark.parametrize("target", [*TARGETS, "output archive"])
def test_kill_when_temp_file_appears(world: dict, baseline: dict, target: str) -> None:
    """Kill at the moment a given kind of write is under way (polled every millisecond)."""
    root = world["root"]
    slug = target.replace(" ", "-")
    cache, outdir = root / f"cache-t-{slug}", root / f"out-t-{slug}"
    outdir.mkdir()
    if target == "output archive":
        names, match, extra = (lambda _c: os.listdir(outdir)), (lambda n: n.startswith(".image.tar.")
                                                                 and n.endswith(".tmp")), ()
    else:
        names, match, extra = TARGETS[target]
    p = _start(root, outdir / "image.tar", cache, *extra)
    deadline = time.monotonic() + 120
    hit = False
    while time.monotonic() < deadline and p.poll() is None:
        try:
            if any(match(n) for n in names(cache)):
                hit = _kill(p)
                break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    _kill(p)
    assert hit, f"the build finished before a {target} temp file was seen"
    _recover_and_check(root, outdir, cache, baseline, f"kill during {target}")


def test_four_builds_at_once_on_one_cache(world: dict, baseline: dict) -> None:
    root = world["root"]
    cache = root / "cache-concurrent"
    (root / "conc").mkdir()
    names = list(world["envs"])
    with ThreadPoolExecutor(len(names)) as pool:
        results = dict(zip(names, pool.map(lambda n: _build(root, n, root / "conc" / f"{n}.tar", cache), names)))
    for n in names:
        assert results[n][:2] == baseline[n], f"{n}: built with three others, another image than alone"
    # and the shared cache is sound: a fifth build from it is the same image again
    assert _build(root, "all", root / "conc" / "again.tar", cache)[:2] == baseline["all"]
    assert sorted(p.name for p in (root / "conc").iterdir()) == sorted([f"{n}.tar" for n in names] + ["again.tar"])


def _breaking_server(root: Path, ranges: bool):
    """Serves ``root``; the first GET of every package file sends half the bytes (full Content-Length), then drops
    the connection. With ``ranges`` the retry may resume with a Range request, else it gets the whole file again."""
    import functools
    import http.server
    import threading

    class H(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            srv = self.server
            if not srv.faulty or not self.path.endswith((".conda", ".tar.bz2")):  # type: ignore[attr-defined]
                return super().do_GET()
            data = (root / self.path.lstrip("/")).read_bytes()
            first = self.path not in srv.seen  # type: ignore[attr-defined]
            srv.seen.add(self.path)  # type: ignore[attr-defined]
            rng = self.headers.get("Range") if ranges else None
            start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
            srv.ranged += bool(rng and start)  # type: ignore[attr-defined]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if first:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(data[start:])

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=str(root)))
    httpd.faulty, httpd.seen, httpd.ranged = True, set(), 0  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.mark.parametrize("ranges", [True, False], ids=["resume", "restart"])
def test_downloads_broken_mid_file(world: dict, tmp_path: Path, ranges: bool) -> None:
    """Every package transfer breaks half-way once: the build resumes (Range) or restarts and gives the same image
    as from a server that never breaks; no partial file is left under an entry's name."""
    root = world["root"]
    httpd = _breaking_server(root, ranges)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/chan"
        (tmp_path / "env.yml").write_text(f"name: all\nchannels: [{url}]\ndependencies: [{', '.join(SPECS)}]\n")
        broken = _build(tmp_path, "env", tmp_path / "broken.tar", tmp_path / "cache-broken")
        assert len(httpd.seen) >= 10  # type: ignore[attr-defined]
        assert (httpd.ranged > 0) == ranges  # type: ignore[attr-defined]
        httpd.faulty = False  # type: ignore[attr-defined]
        clean = _build(tmp_path, "env", tmp_path / "clean.tar", tmp_path / "cache-clean")
        assert broken[:2] == clean[:2]
        pkgs = tmp_path / "cache-broken" / "pkgs"
        for p in pkgs.iterdir():
            if p.is_file():
                assert not p.name.endswith(".part"), p
                if not p.name.startswith("."):
                    assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name.split(".")[0], p
    finally:
        httpd.shutdown()
        httpd.server_close()
