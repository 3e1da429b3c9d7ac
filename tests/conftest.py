"""Shared fixtures: the real upstream data in ../shared and a loopback HTTP server that records its requests; the one
slowness switch.

Slowness has one name. ``@pytest.mark.slow`` marks the long tests (real packages, podman, registries): the default run
(the README's test command, which CI runs) includes them, ``-m "not slow"`` leaves them out for a quick run. ``--slow``
gives the tests that have one their long variant (more property-test examples, more kill moments): a test module
reads it at import time with ``long_variant(short, long)``."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OCI_CONDA_SHARED", REPO.parent / "shared"))
REALDATA = SHARED / "realdata"

_SWITCHES = {"slow": False}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False,
                     help="run the long variants of the tests that have one (10x property-test examples, "
                          "3x kill moments); see tests/conftest.py")


def pytest_configure(config: pytest.Config) -> None:
    _SWITCHES["slow"] = bool(config.getoption("--slow"))


def long_variant(short: int, long: int) -> int:
    """``long`` under ``pytest --slow``, else ``short`` (test modules are imported after the options are read)."""
    return long if _SWITCHES["slow"] else short


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata``; tests that need it skip with a reason in a clone without it."""
    if not REALDATA.is_dir():
        pytest.skip(f"real upstream data not found at {REALDATA} (set OCI_CONDA_SHARED)")
    return REALDATA


def need_tool(name: str) -> str:
    """Path of an external tool, or skip (locally) / fail (in CI, where .ci/run installs them)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (.ci/run installs it)")
        pytest.skip(f"{name} not installed")
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:  # keep test output clean
        pass

    def send_head(self):  # record every request the server answers
        self.server.requests.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        return super().send_head()


class StaticServer:
    """A directory served over HTTP on 127.0.0.1 (ETag-less; Last-Modified and 304 from SimpleHTTPRequestHandler)."""

    def __init__(self, root: Path):
        handler = functools.partial(_Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.root = root
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list:
        return self.httpd.requests  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def serve_dir() -> Iterator:
    """``serve_dir(path) -> StaticServer``; every server is stopped when the test ends."""
    servers: list[StaticServer] = []

    def start(root: Path) -> StaticServer:
        s = StaticServer(Path(root))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty oci-conda cache for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("OCI_CONDA_CACHE", str(d))
    return d
