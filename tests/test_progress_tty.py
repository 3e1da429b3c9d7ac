"""Progress that tells the truth: a cold build against a throttled loopback channel, on a real pseudo-terminal.

The screen is recorded as the CLI draws it; every frame of the download task must show package and byte counts
that never go backwards, end at the real totals, and reach the totals only once the server has sent the last byte.
Without a terminal (or with ``CI=true``) the same build prints plain lines; ``--json`` prints JSON lines.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import itertools
import json
import os
import pty
import random
import re
import shutil
import struct
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkgbuilder import build_package, index_channel
from realenv import oci_conda

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from oci_conda.progress import human_size

RATE = 150_000  # bytes per second the channel sends package files at
N_PACKAGES = 6
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FRAME = re.compile(r"download\s.*?(\d+)/(\d+) packages\s+([\d.]+ [KMG]?i?B)/([\d.]+ [KMG]?i?B)")


class _Throttled(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        throttle = self.path.endswith(".conda")
        while chunk := source.read(8192):
            outputfile.write(chunk)
            if throttle:
                time.sleep(len(chunk) / RATE)
        if throttle:
            self.server.last_byte = time.monotonic()  # type: ignore[attr-defined]


@pytest.fixture
def throttled_channel(tmp_path: Path) -> Iterator[tuple[str, http.server.ThreadingHTTPServer, int]]:
    chan = tmp_path / "channel"
    rnd = random.Random(7)
    for i in range(N_PACKAGES):
        blob = bytes(rnd.getrandbits(8) for _ in range(60_000 + 20_000 * i))  # incompressible
        build_package(chan / "linux-64", f"pkg{i}", "1.0", files={f"share/pkg{i}/data.bin": blob})
    index_channel(chan)
    total = sum(p.stat().st_size for p in (chan / "linux-64").glob("*.conda"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Throttled, directory=str(chan)))
    httpd.last_byte = 0.0  # type: ignore[attr-defined]
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd, total
    httpd.shutdown()
    httpd.server_close()


def _env_file(tmp_path: Path, url: str) -> Path:
    f = tmp_path / "environment.yml"
    deps = ", ".join(f"pkg{i}" for i in range(N_PACKAGES))
    f.write_text(f"name: progress\nchannels: ['{url}']\ndependencies: [{deps}]\n")
    return f


def _to_bytes(s: str) -> float:
    num, unit = s.split()
    return float(num) * {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[unit]


def _run_on_pty(argv: list[str], env: dict[str, str], stdout_path: Path) -> list[tuple[float, str]]:
    """Run ``argv`` with stderr (and stdin) on a 160x40 pseudo-terminal; returns the screen output as read, with the
    time each chunk arrived."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of a known size; stdout to a file, as `IMG=$(...)` would capture it
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
            out = os.open(str(stdout_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    chunks: list[tuple[float, str]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append((time.monotonic(), data.decode("utf-8", "replace")))
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, "".join(c for _, c in chunks)
    return chunks


def test_tty_progress_is_monotone_and_ends_at_the_true_totals(throttled_channel: tuple, tmp_path: Path) -> None:
    url, httpd, total = throttled_channel
    env_file = _env_file(tmp_path, url)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TERM")}
    env.update(OCI_CONDA_CACHE=str(tmp_path / "cache"), TERM="xterm-256color", COLUMNS="160", LINES="40")
    out = tmp_path / "img.tar"
    started = time.monotonic()
    chunks = _run_on_pty([sys.executable, "-m", "oci_conda", "build", str(env_file), "-o", str(out), "--jobs", "3"],
                         env, tmp_path / "stdout")
    (tmp_path / "screen.txt").write_text("".join(c for _, c in chunks))  # the recorded screen, kept for a reader
    frames: list[tuple[float, int, int, float, float]] = []
    for t, chunk in chunks:
        for piece in re.split(r"[\r\n]", ANSI.sub("", chunk)):
            m = FRAME.search(piece)
            if m:
                frames.append((t, int(m[1]), int(m[2]), _to_bytes(m[3]), _to_bytes(m[4])))
    assert len(frames) >= 5, "".join(c for _, c in chunks)
    assert all(f[2] == N_PACKAGES for f in frames)
    assert all(f[4] == _to_bytes(human_size(total)) for f in frames), "the byte total is the real one from the start"
    for a, b in itertools.pairwise(frames):
        assert b[1] >= a[1] and b[3] >= a[3], (a, b)  # monotone: packages and bytes never go backwards
    last = frames[-1]
    assert last[1] == N_PACKAGES and last[3] == last[4]  # ends at the true totals
    assert any(f[1] < N_PACKAGES and f[3] < f[4] for f in frames)  # and was seen on its way there
    first_full = next(f[0] for f in frames if f[3] == f[4])
    assert first_full >= httpd.last_byte - 0.05, "100 % shown before the server sent the last byte"
    assert httpd.last_byte - started > total / RATE / 3 * 0.8  # the channel really was throttled (3 jobs)
    stdout = (tmp_path / "stdout").read_text()
    assert re.fullmatch(rf"{re.escape(str(out))}@sha256:[0-9a-f]{{64}}\n", stdout)


def test_plain_lines_in_ci_and_json_lines(throttled_channel: tuple, tmp_path: Path) -> None:
    url, _, total = throttled_channel
    env_file = _env_file(tmp_path, url)
    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"), CI="true")
    p = oci_conda("build", str(env_file), "-o", str(tmp_path / "a.tar"), env=env)
    assert "\x1b[" not in p.stderr and "\r" not in p.stderr
    line = next(ln for ln in p.stderr.splitlines() if ln.strip().startswith("download:"))
    assert f"{N_PACKAGES}/{N_PACKAGES} packages, {human_size(total)}" in line
    shutil.rmtree(tmp_path / "cache")
    p = oci_conda("build", str(env_file), "-o", str(tmp_path / "b.tar"), "--json", env=env)
    events = [json.loads(ln) for ln in p.stderr.splitlines()]
    dl = [e for e in events if e.get("task") == "download"]
    assert dl[-1]["event"] == "task_end" and dl[-1]["bytes"] == dl[-1]["bytes_total"] == total
    assert dl[-1]["items"] == dl[-1]["items_total"] == N_PACKAGES
    done = [e["bytes"] for e in dl]
    assert done == sorted(done)
    assert json.loads(p.stdout)["digest"].startswith("sha256:")
    q = oci_conda("build", str(env_file), "-o", str(tmp_path / "c.tar"), "--quiet", env=env)
    assert q.stderr == ""
