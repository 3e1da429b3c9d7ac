"""Download wheels once, keep them by sha256, and never use one that does not verify.

Cache: ``<cache>/wheels/<sha256>/<filename>`` (the file name is kept because an installer reads the distribution's
name and tags from it). Every use re-hashes the file and checks its size; a bad entry is replaced, not trusted.
Downloads stream under a size cap into a temporary name and appear atomically; concurrent builds lock per entry.
Credentials go only to the origin they came with (:class:`~oci_conda.pypi.hosts.HostCredentials`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..cache import atomic_write, cache_dir, file_lock
from ..credentials import redact_url
from ..errors import FetchError
from ..http import describe_error, request_errors
from ..parallel import DEFAULT_JOBS, thread_pool
from .hosts import HostCredentials
from .records import WheelRecord

if TYPE_CHECKING:
    import requests

#: Largest wheel we accept when its size is not known in advance (the biggest GPU wheels are ~2-3 GiB).
DEFAULT_MAX_SIZE = 4 * 1024**3
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchedWheel:
    """A verified wheel file in the cache and its record, completed with the measured sha256 and size."""

    record: WheelRecord
    path: Path


def fetch_wheels(
    records: Sequence[WheelRecord],
    session: requests.Session,
    *,
    credentials: HostCredentials | None = None,
    jobs: int = DEFAULT_JOBS,
    max_size: int = DEFAULT_MAX_SIZE,
) -> list[FetchedWheel]:
    """Every record's wheel, verified, in the order given (downloads run in parallel, bounded by ``jobs``)."""
    creds = credentials or HostCredentials()
    if not records:
        return []
    with thread_pool(jobs, len(records), "wheel-fetch") as pool:
        futures = [pool.submit(fetch_wheel, r, session, credentials=creds, max_size=max_size) for r in records]
        return [f.result() for f in futures]


def fetch_wheel(
    record: WheelRecord,
    session: requests.Session,
    *,
    credentials: HostCredentials | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> FetchedWheel:
    """One wheel from the cache when it verifies, else from its URL (a bad cache entry is replaced)."""
    creds = credentials or HostCredentials()
    if record.sha256:
        entry = _entry(record.sha256, record.filename)
        with file_lock(entry.parent.with_suffix(".lock")):
            if _verifies(entry, record.sha256, record.size):
                return FetchedWheel(record.completed(record.sha256, entry.stat().st_size), entry)
            entry.unlink(missing_ok=True)
            digest, size = _download(record, session, creds, entry, max_size)
        return FetchedWheel(record.completed(digest, size), entry)
    # No hash published: download to learn it, then file the wheel under it.
    staging = cache_dir("wheels", "incoming") / record.filename
    with file_lock(staging.with_suffix(".lock")):
        digest, size = _download(record, session, creds, staging, max_size)
        entry = _entry(digest, record.filename)
        with file_lock(entry.parent.with_suffix(".lock")):
            staging.replace(entry)
    return FetchedWheel(record.completed(digest, size), entry)


def verify_wheel(path: Path, record: WheelRecord) -> None:
    """Raise :class:`FetchError` unless ``path`` has the record's sha256 and size: for every use of a cached file."""
    if not record.sha256 or not _verifies(path, record.sha256, record.size):
        raise FetchError(f"{record.name} {record.version}: wheel file {path.name} does not match its record "
                         "(sha256/size)")


def _entry(sha256: str, filename: str) -> Path:
    if "/" in filename or filename.startswith(".") or not filename.endswith(".whl"):
        raise FetchError(f"refusing wheel file name {filename!r}")
    return cache_dir("wheels", sha256) / filename


def _verifies(path: Path, sha256: str, size: int | None) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if size is not None and st.st_size != size:
        return False
    return _hash_file(path) == sha256


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download(record: WheelRecord, session: requests.Session, creds: HostCredentials, dest: Path,
              max_size: int) -> tuple[str, int]:
    """Stream the wheel to ``dest`` under the size cap, checking sha256 and size; return both as measured."""
    where = f"{record.name} {record.version}: {redact_url(record.url)}"
    cap = record.size if record.size is not None else max_size
    h = hashlib.sha256()
    size = 0
    try:
        with atomic_write(dest) as out:
            for chunk in _stream(record.url, session, creds, where):
                size += len(chunk)
                if size > cap:
                    raise FetchError(f"{where}: larger than {'its recorded size' if record.size else 'the cap'} "
                                     f"({cap} bytes)")
                h.update(chunk)
                out.write(chunk)
            digest = h.hexdigest()
            if record.sha256 and digest != record.sha256:
                raise FetchError(f"{where}: sha256 mismatch (expected {record.sha256}, got {digest})")
            if record.size is not None and size != record.size:
                raise FetchError(f"{where}: size mismatch (expected {record.size}, got {size})")
    except OSError as exc:
        raise FetchError(f"{where}: cannot write the cache: {exc.strerror or exc}") from None
    return digest, size


def _stream(url: str, session: requests.Session, creds: HostCredentials, where: str) -> Iterator[bytes]:
    parts = urlsplit(url)
    if parts.scheme == "file":
        try:
            with open(unquote(parts.path), "rb") as f:
                while chunk := f.read(_CHUNK):
                    yield chunk
        except OSError as exc:
            raise FetchError(f"{where}: {exc.strerror or exc}") from None
        return
    try:
        with session.get(url, stream=True, auth=creds.for_url(url)) as resp:
            if resp.status_code != 200:
                raise FetchError(f"{where}: HTTP {resp.status_code}")
            yield from resp.iter_content(_CHUNK)
    except request_errors() as exc:
        raise FetchError(f"{where}: {describe_error(exc)}") from None


__all__ = ["DEFAULT_MAX_SIZE", "FetchedWheel", "fetch_wheel", "fetch_wheels", "verify_wheel"]
