"""Wheels the pypi tests build themselves, and a PEP 503/691 simple index serving them on 127.0.0.1.

The index serves HTML (PEP 503) or JSON (PEP 691, by ``Accept``), with ``#sha256=`` on every link, PEP 658 core
metadata beside each wheel, optional HTTP basic auth, and a log of what was asked and whether credentials came along.
The real-wheel set (``tests/fetch_wheels.sh``) is served by the same index.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import json
import os
import threading
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

WHEELHOUSE = Path(os.environ.get("OCI_CONDA_WHEELHOUSE", Path.home() / ".cache" / "oci-conda-test-wheels"))
_DATE = (2020, 1, 1, 0, 0, 0)


def real_wheelhouse() -> Path:
    """The wheels ``tests/fetch_wheels.sh`` downloads; skip locally without them, fail in CI (which fetches them)."""
    if not any(WHEELHOUSE.glob("requests-*.whl")) or not any(WHEELHOUSE.glob("[Mm]arkup[Ss]afe-*.whl")):
        msg = f"real wheels not found in {WHEELHOUSE} (run tests/fetch_wheels.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return WHEELHOUSE


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires: tuple[str, ...] = (),
    extras: dict[str, tuple[str, ...]] | None = None,
    requires_python: str | None = None,
    files: dict[str, bytes] | None = None,
    entry_points: dict[str, dict[str, str]] | None = None,
    data: dict[str, bytes] | None = None,
) -> Path:
    """A valid wheel with a module named after the distribution (``__version__`` set), plus ``files`` (paths in
    the wheel root), ``data`` (``scheme/path`` under ``NAME.data/``) and entry points."""
    dist = canonicalize_name(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    for extra, reqs in (extras or {}).items():
        meta.append(f"Provides-Extra: {extra}")
        meta += [f"Requires-Dist: {r}; extra == \"{extra}\"" if ";" not in r
                 else f"Requires-Dist: {r} and extra == \"{extra}\"" for r in reqs]
    content: dict[str, bytes] = {f"{dist}/__init__.py": f"__version__ = {version!r}\n".encode()}
    content.update(files or {})
    content.update({f"{dist}-{version}.data/{k}": v for k, v in (data or {}).items()})
    content[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    purelib = "true" if tag.endswith("-none-any") else "false"
    content[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: wheelhouse\nRoot-Is-Purelib: {purelib}\n".encode() \
        + b"".join(f"Tag: {t}\n".encode() for t in _expand(tag))
    if entry_points:
        text = "".join(f"[{sec}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for sec, eps in
                       entry_points.items())
        content[f"{info}/entry_points.txt"] = text.encode()
    record = "".join(f"{p},sha256={_b64(b)},{len(b)}\n" for p, b in content.items()) + f"{info}/RECORD,,\n"
    content[f"{info}/RECORD"] = record.encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, body in content.items():
            zi = zipfile.ZipInfo(arcname, _DATE)
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, body)
    return path


def _expand(tag: str) -> list[str]:
    py, abi, plat = tag.split("-")
    return [f"{a}-{b}-{c}" for a in py.split(".") for b in abi.split(".") for c in plat.split(".")]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SimpleIndex:
    """Wheels from ``directories`` behind ``/simple/<name>/`` and ``/files/<file>`` on 127.0.0.1."""

    def __init__(self, *directories: Path, auth: tuple[str, str] | None = None) -> None:
        self.directories = directories
        self.auth = auth
        self.log: list[tuple[str, bool]] = []  #: (path, had an Authorization header)
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                index.log.append((self.path, "Authorization" in self.headers))
                if index.auth and self.headers.get("Authorization") != "Basic " + base64.b64encode(
                        ":".join(index.auth).encode()).decode():
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="index"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, ctype = index.answer(self.path.split("?", 1)[0], self.headers.get("Accept", ""))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def simple_url(self, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user else ""
        return f"http://{cred}127.0.0.1:{self.port}/simple/"

    def wheels(self) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for d in self.directories:
            for p in sorted(d.iterdir()):
                if p.name.endswith(".whl"):
                    name = parse_wheel_filename(p.name)[0]
                elif p.name.endswith(".tar.gz"):
                    name = parse_sdist_filename(p.name)[0]
                else:
                    continue
                out.setdefault(canonicalize_name(name), []).append(p)
        return out

    def answer(self, path: str, accept: str) -> tuple[bytes | None, str]:
        wheels = self.wheels()
        if path.startswith("/files/"):
            fname = path[len("/files/"):]
            meta = fname.endswith(".metadata")
            fname = fname.removesuffix(".metadata")
            for files in wheels.values():
                for p in files:
                    if p.name == fname:
                        return (_core_metadata(p) if meta else p.read_bytes()), "application/octet-stream"
            return None, ""
        parts = [p for p in path.split("/") if p]
        as_json = "application/vnd.pypi.simple.v1+json" in accept
        if parts == ["simple"]:
            if as_json:
                doc = {"meta": {"api-version": "1.0"}, "projects": [{"name": n} for n in sorted(wheels)]}
                return json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json"
            links = "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(wheels))
            return f"<!DOCTYPE html><html><body>{links}</body></html>".encode(), "text/html"
        if len(parts) != 2 or parts[0] != "simple" or canonicalize_name(parts[1]) not in wheels:
            return None, ""
        name = canonicalize_name(parts[1])
        entries = []
        for p in wheels[name]:
            rp = _requires_python(p)
            mh = hashlib.sha256(_core_metadata(p)).hexdigest() if p.name.endswith(".whl") else None
            entries.append((p, sha256_file(p), mh, rp))
        if as_json:
            doc = {"meta": {"api-version": "1.0"}, "name": name, "files": [
                {"filename": p.name, "url": f"/files/{p.name}", "hashes": {"sha256": h},
                 "core-metadata": {"sha256": mh} if mh else False, "requires-python": rp}
                for p, h, mh, rp in entries]}
            return json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json"
        links = "".join(
            f'<a href="/files/{p.name}#sha256={h}"'
            + (f' data-core-metadata="sha256={mh}" data-dist-info-metadata="sha256={mh}"' if mh else "")
            + (f' data-requires-python="{html.escape(rp)}"' if rp else "") + f">{p.name}</a>\n"
            for p, h, mh, rp in entries)
        return f"<!DOCTYPE html><html><body>{links}</body></html>".encode(), "text/html"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _core_metadata(wheel: Path) -> bytes:
    if not wheel.name.endswith(".whl"):
        return b""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        return zf.read(name)


def build_sdist(directory: Path, name: str, version: str) -> Path:
    """A source distribution (never built here: its presence shows pip was offered only a source)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{canonicalize_name(name).replace('-', '_')}-{version}.tar.gz"
    path.write_bytes(b"not built by these tests")
    return path


def _requires_python(wheel: Path) -> str | None:
    for line in _core_metadata(wheel).decode().splitlines():
        if line.startswith("Requires-Python:"):
            return line.split(":", 1)[1].strip()
    return None
