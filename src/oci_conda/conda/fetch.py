"""Download package files into the content-addressed cache, verified, in parallel.

A cache entry is ``cache_dir("pkgs")/<sha256><ext>`` (``<md5><ext>`` when the record only has an md5). A file only
gets that name after its digest was checked, and a record of its digests and stat stamp is kept beside it
(:mod:`oci_conda.cache_verify`): a cache hit costs a ``stat`` and a stamp comparison, a changed stamp a full re-hash,
and an entry whose bytes no longer match is removed and downloaded again, never used. Downloads stream into a temp file in the same directory while hashing, are fsynced and
renamed into place; a per-digest lock lets concurrent builds share the cache without fetching a file twice.
A transfer that breaks mid-way is resumed with an HTTP ``Range`` request when the server allows it.
A package of a mirrored channel (``mirrors.py``) is read from each mirror in turn (``http(s)`` or ``file://``), the
channel itself last; whatever the source, the bytes must match the record's digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Sequence

from ..cache import cache_dir, file_lock, hold
from ..cache_verify import Digests, drop_file, record_file, verify_file
from ..errors import FetchError
from ..http import OfflineError, describe_error, is_offline, request_errors
from ..parallel import thread_pool
from ..credentials import redact_url
from .channel import file_url_to_path
from .mirrors import Mirrors, mirrors_from_env
from .records import PackageRecord

if TYPE_CHECKING:
    import requests

Progress = Callable[[PackageRecord, int, "int | None"], None]
CHUNK = 1 << 18
#: Attempts per file when a transfer breaks after it started (urllib3 already retries failed connects).
MAX_ATTEMPTS = 3
_HEX = re.compile(r"^[0-9a-f]+$")


def _expected(rec: PackageRecord) -> tuple[str, str] | None:
    """``(algorithm, hex digest)`` we verify against, sha256 preferred; None when the record has neither."""
    for alg, value, length in (("sha256", rec.sha256, 64), ("md5", rec.md5, 32)):
        if value:
            v = value.strip().lower()
            if len(v) != length or not _HEX.match(v):
                raise FetchError(f"record for {rec.fn} from {redact_url(rec.channel)} has an invalid {alg}: {value!r}")
            return alg, v
    return None


def cached_path(rec: PackageRecord) -> Path | None:
    """Where ``rec`` lives in the package cache if it is there (verified when it was stored), else None."""
    exp = _expected(rec)
    if exp is None:
        return None
    p = cache_dir("pkgs") / f"{exp[1]}{rec.ext}"
    return p if _entry_ok(p, rec, exp) else None


def _entry_ok(path: Path, rec: PackageRecord, exp: tuple[str, str]) -> bool:
    """The entry exists and still has the record's digest and size (cheap while its stat stamp is unchanged)."""
    digest = {exp[0]: exp[1]}
    return verify_file(path, size=rec.size, **digest)


class _Sink:
    """The temp file plus running digests; can restart from zero when a server ignores our Range request.

    md5 only when the record has no sha256 to check (a third of the hashing, for a digest nothing else asks of a
    package whose name in the cache is its sha256)."""

    def __init__(self, f: IO[bytes], md5: bool):
        self.f = f
        self.want_md5 = md5
        self.reset()

    def reset(self) -> None:
        self.f.seek(0)
        self.f.truncate()
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5() if self.want_md5 else None
        self.done = 0

    def write(self, chunk: bytes) -> None:
        self.f.write(chunk)
        self.sha256.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        self.done += len(chunk)


class _Unreachable(FetchError):
    """The server could not be reached at all (as opposed to answering with an error)."""


def _copy_file(rec: PackageRecord, url: str, sink: _Sink, progress: Progress | None) -> None:
    path = file_url_to_path(url)
    total = rec.size
    try:
        with open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                sink.write(chunk)
                if progress:
                    progress(rec, sink.done, total)
    except FileNotFoundError:
        raise FetchError(f"package {rec.fn} not found at {path}") from None
    except OSError as e:
        raise FetchError(f"cannot read package {rec.fn} at {path}: {e.strerror}") from None


def _stream_http(rec: PackageRecord, url: str, session: requests.Session, sink: _Sink,
                 progress: Progress | None) -> None:
    import requests

    where = redact_url(url)
    attempt = 0
    while True:
        headers = {"Accept-Encoding": "identity"}
        if sink.done:
            headers["Range"] = f"bytes={sink.done}-"
        try:
            r = session.get(url, stream=True, headers=headers)
        except OfflineError:
            raise FetchError(f"offline build: {rec.fn} is not in the package cache (needed from {where})") from None
        except requests.ConnectionError as e:
            raise _Unreachable(f"cannot download {rec.fn} from {where}: {describe_error(e)}") from None
        except requests.RequestException as e:
            raise FetchError(f"cannot download {rec.fn} from {where}: {describe_error(e)}") from None
        with r:
            if r.status_code == 404:
                raise FetchError(f"package {rec.fn} not found (HTTP 404) at {where}")
            if r.status_code == 206 and sink.done and \
                    r.headers.get("Content-Range", "").startswith(f"bytes {sink.done}-"):
                pass  # resumed where the broken transfer stopped
            elif r.status_code == 200:
                if sink.done:
                    sink.reset()
            else:
                raise FetchError(f"cannot download {rec.fn} from {where}: HTTP {r.status_code}")
            total = rec.size
            if total is None and r.headers.get("Content-Length", "").isdigit():
                total = sink.done + int(r.headers["Content-Length"])
            try:
                for chunk in r.iter_content(CHUNK):
                    sink.write(chunk)
                    if progress:
                        progress(rec, sink.done, total)
                return
            except requests.RequestException as e:
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    raise FetchError(f"cannot download {rec.fn} from {where}: {describe_error(e)}") from None


def _read_into(rec: PackageRecord, mirrors: Mirrors, session: requests.Session, sink: _Sink,
               progress: Progress | None) -> None:
    """Read ``rec`` from the first of its locations (mirrors, then the channel) that delivers it whole; a mirror
    that cannot be reached is not tried again for the other packages."""
    urls = mirrors.locations(rec.url)
    for i, url in enumerate(urls):
        sink.reset()
        try:
            if url.startswith("file://"):
                _copy_file(rec, url, sink, progress)
            elif url.startswith(("http://", "https://")):
                _stream_http(rec, url, session, sink, progress)
            else:
                raise FetchError(f"unsupported URL for {rec.fn}: {redact_url(url)}")
            return
        except FetchError as e:
            if i == len(urls) - 1:
                raise
            if isinstance(e, _Unreachable):
                mirrors.unreachable(url)


def _download(rec: PackageRecord, session: requests.Session, pkgs: Path, target: Path | None,
              progress: Progress | None, mirrors: Mirrors) -> Path:
    """Fetch ``rec`` into a temp file, verify it and rename it to ``target`` (or to its computed sha256)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name if target else rec.fn}.", suffix=".part", dir=pkgs)
    held = hold(tmp)  # a sweep by another build leaves it alone while we live
    try:
        with os.fdopen(fd, "w+b") as f:
            exp = _expected(rec)
            sink = _Sink(f, md5=exp is not None and exp[0] == "md5")
            _read_into(rec, mirrors, session, sink, progress)
            f.flush()
            os.fsync(f.fileno())
        channel = redact_url(rec.channel)
        if rec.size is not None and sink.done != rec.size:
            raise FetchError(f"size mismatch for {rec.fn} from {channel}: expected {rec.size} bytes, got {sink.done}")
        if exp is not None:
            got = sink.sha256.hexdigest() if sink.md5 is None else sink.md5.hexdigest()
            if got != exp[1]:
                raise FetchError(f"{exp[0]} mismatch for {rec.fn} from {channel}: expected {exp[1]}, got {got}")
        else:
            target = pkgs / f"{sink.sha256.hexdigest()}{rec.ext}"
        assert target is not None
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        record_file(target, Digests(sink.sha256.hexdigest(), None if sink.md5 is None else sink.md5.hexdigest(),
                                    sink.done))
        return target
    except request_errors() as e:  # an OSError subclass: must not read as a disk problem
        raise FetchError(f"cannot download {rec.fn} from {redact_url(rec.url)}: {describe_error(e)}") from None
    except OSError as e:
        raise FetchError(f"cannot write {rec.fn} to the package cache {pkgs}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.close(held)


def _fetch_one(rec: PackageRecord, session: requests.Session, pkgs: Path, offline: bool,
               progress: Progress | None, mirrors: Mirrors) -> Path:
    offline = offline and not rec.url.startswith("file://")  # local files need no network
    exp = _expected(rec)
    if exp is None:  # nothing to look a cache entry up by: download, and name it by what we got
        if offline:
            raise FetchError(f"offline build: {rec.fn} has no checksum, so the cache cannot supply it "
                             f"(needed from {redact_url(rec.url)})")
        return _download(rec, session, pkgs, None, progress, mirrors)
    target = pkgs / f"{exp[1]}{rec.ext}"
    if not _entry_ok(target, rec, exp):
        if offline:
            damaged = target.exists()
            if damaged:
                with contextlib.suppress(OSError):
                    drop_file(target)
            state = "was damaged in the package cache (removed)" if damaged else "is not in the package cache"
            raise FetchError(f"offline build: {rec.fn} {state} (needed from {redact_url(rec.url)})")
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(file_lock(pkgs / ".locks" / f"{exp[1]}.lock"))
            except OSError as e:
                raise FetchError(f"cannot lock the package cache {pkgs} for {rec.fn}: {e.strerror or e}") from None
            if not _entry_ok(target, rec, exp):  # another build may have stored it while we waited
                try:
                    drop_file(target)  # damaged or missing: never used, replaced
                except OSError as e:
                    raise FetchError(f"cannot replace {rec.fn} in the package cache {pkgs}: {e.strerror or e}") from None
                return _download(rec, session, pkgs, target, progress, mirrors)
    if progress:
        size = target.stat().st_size
        progress(rec, size, size)
    return target


def fetch_packages(records: Sequence[PackageRecord], session: requests.Session, *, jobs: int = 8,
                   offline: bool = False, progress: Progress | None = None,
                   mirrors: Mirrors | None = None,
                   arrived: Callable[[PackageRecord, Path], None] | None = None) -> dict[str, Path]:
    """``{record.url: verified file in the package cache}``; downloads what is missing with ``jobs`` threads,
    from the channel's mirrors first (``mirrors``, default ``$OCI_CONDA_MIRRORS``; none offline).

    ``progress(record, bytes_done, total_or_None)`` is called from worker threads as bytes arrive (and once for a
    cache hit). Offline, anything not cached and not a ``file://`` URL is a :class:`FetchError`.
    ``arrived(record, file)`` is called (from worker threads) as soon as each file is verified, so that a caller can
    start on it at once.
    """
    offline = offline or is_offline(session)
    mirrors = Mirrors() if offline else (mirrors if mirrors is not None else mirrors_from_env())
    pkgs = cache_dir("pkgs")
    unique: dict[str, PackageRecord] = {}
    for rec in records:
        unique.setdefault(rec.url, rec)
    todo = list(unique.values())
    if not todo:
        return {}

    def one(rec: PackageRecord) -> Path:
        path = _fetch_one(rec, session, pkgs, offline, progress, mirrors)
        if arrived is not None:
            arrived(rec, path)
        return path

    if jobs <= 1 or len(todo) == 1:
        return {rec.url: one(rec) for rec in todo}
    out: dict[str, Path] = {}
    with thread_pool(jobs, len(todo), "fetch") as pool:
        futures = [pool.submit(one, rec) for rec in todo]
        try:
            for rec, fut in zip(todo, futures):  # the first failure in record order wins
                out[rec.url] = fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return out
