"""Content-addressed blobs: ``<root>/sha256/<hex>``, the layout of both the build cache and an OCI layout's ``blobs/``.

A blob appears under its name only once it is complete and its digest checked (temp file, fsync, rename), so
several builds can share one store and a crash never leaves a half-written blob that looks valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from oci_conda.cache import cache_dir, hold
from oci_conda.errors import ImageError
from oci_conda.limits import open_regular

CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")

Opener = Callable[[], BinaryIO]


def check_digest(digest: str) -> tuple[str, str]:
    """(algorithm, hex) of a well-formed digest; a malformed one is an ImageError (it may come from a hostile index)."""
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise ImageError(f"invalid or unsupported digest {digest!r}")
    algo, _, hexpart = digest.partition(":")
    return algo, hexpart


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, digest: str, size: int | None, what: str) -> bytes:
    """``data`` if it matches ``digest`` (and ``size``); otherwise an ImageError naming ``what``."""
    algo, hexpart = check_digest(digest)
    if size is not None and len(data) != size:
        raise ImageError(f"{what}: size {len(data)} does not match the descriptor's {size}")
    if hashlib.new(algo, data).hexdigest() != hexpart:
        raise ImageError(f"{what}: content does not match digest {digest}")
    return data


class VerifyingReader:
    """A read-only stream that checks size and digest of what passed through it when it reaches the end."""

    def __init__(self, raw: BinaryIO, digest: str, size: int | None, what: str):
        algo, self._hex = check_digest(digest)
        self._raw = raw
        self._hash = hashlib.new(algo)
        self._size = size
        self._seen = 0
        self._what = what
        self._digest = digest
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._hash.update(data)
            self._seen += len(data)
            if self._size is not None and self._seen > self._size:
                raise ImageError(f"{self._what}: longer than the descriptor's size {self._size}")
        if not data or (n is not None and n < 0) or (self._size is not None and self._seen == self._size):
            self._check()
        return data

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._size is not None and self._seen != self._size:
            raise ImageError(f"{self._what}: size {self._seen} does not match the descriptor's {self._size}")
        if self._hash.hexdigest() != self._hex:
            raise ImageError(f"{self._what}: content does not match digest {self._digest}")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Ingest:
    """A writable file that hashes what it is given; the blob name is known only when writing ends."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest = ""

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._f.write(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._f.flush()


class BlobStore:
    """Blobs by digest under ``root`` (a directory holding ``sha256/``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def default(cls) -> "BlobStore":
        """The shared cache's blob store (``$OCI_CONDA_CACHE/blobs``)."""
        cache_dir("blobs", "sha256")
        return cls(cache_dir("blobs"))

    def path(self, digest: str) -> Path:
        algo, hexpart = check_digest(digest)
        return self.root / algo / hexpart

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def open(self, digest: str) -> BinaryIO:
        try:
            return open_regular(self.path(digest), f"blob {digest} in {self.root}")
        except FileNotFoundError as exc:
            raise ImageError(f"blob {digest} not found in {self.root}") from exc

    def opener(self, digest: str, size: int | None = None, verify: bool = True) -> Opener:
        """A function opening the blob, verifying it as it is read (the store may be shared and tampered with)."""

        def _open() -> BinaryIO:
            f = self.open(digest)
            if not verify:
                return f
            return VerifyingReader(f, digest, size, f"blob {digest} in {self.root}")  # type: ignore[return-value]

        return _open

    def read(self, digest: str, size: int | None = None) -> bytes:
        with self.open(digest) as f:
            data = f.read()
        return verify_bytes(data, digest, size, f"blob {digest} in {self.root}")

    @contextlib.contextmanager
    def ingest(self) -> Iterator[_Ingest]:
        """Write a blob whose digest is not known in advance: ``with store.ingest() as w: ...; w.digest``."""
        d = self.root / "sha256"
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ingest.", suffix=".tmp", dir=d)
        held = hold(tmp)  # a sweep by another build leaves it alone while we live
        try:
            with os.fdopen(fd, "wb") as f:
                w = _Ingest(f)  # type: ignore[arg-type]
                yield w
                f.flush()
                os.fsync(f.fileno())
            w.digest = "sha256:" + w._hash.hexdigest()
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path(w.digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        finally:
            os.close(held)

    def add_stream(self, stream: BinaryIO, digest: str | None = None, size: int | None = None) -> str:
        """Copy ``stream`` in; if ``digest`` is given and the blob is already here, nothing is read."""
        if digest is not None:
            check_digest(digest)
            if self.has(digest):
                return digest
        with self.ingest() as w:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                w.write(chunk)
                if size is not None and w.size > size:
                    raise ImageError(f"blob {digest}: longer than the expected {size} bytes")
            if size is not None and w.size != size:
                raise ImageError(f"blob {digest}: {w.size} bytes, expected {size}")
            if digest is not None and "sha256:" + w._hash.hexdigest() != digest:
                raise ImageError(f"blob content does not match digest {digest}")
        return w.digest

    def add_bytes(self, data: bytes, digest: str | None = None) -> str:
        d = digest_bytes(data)
        if digest is not None and d != digest:
            raise ImageError(f"blob content does not match digest {digest}")
        if not self.has(d):
            with self.ingest() as w:
                w.write(data)
        return d


def file_opener(path: Path, digest: str | None = None, size: int | None = None) -> Opener:
    """An opener for a blob that is a plain file (e.g. a layer in the cache); verified as read if ``digest`` given."""
    path = Path(path)

    def _open() -> BinaryIO:
        f = open(path, "rb")  # noqa: SIM115
        if digest is None:
            return f
        return VerifyingReader(f, digest, size, f"blob {path}")  # type: ignore[return-value]

    return _open
