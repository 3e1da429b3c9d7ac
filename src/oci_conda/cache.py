"""The on-disk cache and the one way we write files: temp file, fsync, rename.

Layout under ``$OCI_CONDA_CACHE`` (default ``$XDG_CACHE_HOME/oci-conda`` or ``~/.cache/oci-conda``):
``pkgs/`` package files by sha256, ``extracted/`` unpacked packages, ``repodata/``, ``blobs/sha256/``.
Several builds may share one cache: every entry appears atomically and is verified before it is trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator


def cache_root() -> Path:
    env = os.environ.get("OCI_CONDA_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "oci-conda"


def cache_dir(*parts: str) -> Path:
    p = cache_root().joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


@dataclass
class Staged:
    """A file being written at ``tmp`` that appears at ``target`` only when the ``with`` block succeeds.

    ``target`` may be set inside the block, for content named after its own digest (a layer blob)."""

    tmp: Path
    target: Path | None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str] | None = None, *, directory: str | os.PathLike[str] | None = None,
                fsync: bool = True, mode: int | None = None) -> Iterator[Staged]:
    """The one temp-file-and-rename: a temp file beside ``target`` (or in ``directory``) for the caller to fill.

    On success it is fsynced (unless ``fsync`` is false), given ``mode`` (mkstemp makes it 0600) and renamed over
    ``staged.target``; on any failure, or with no target set, it is removed and nothing appears."""
    where = Path(directory) if directory is not None else Path(target).parent if target is not None else None
    if where is None:
        raise ValueError("atomic_path needs a target or a directory")
    name = Path(target).name if target is not None else "blob"
    fd, tmpname = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=where)
    os.close(fd)
    staged = Staged(Path(tmpname), Path(target) if target is not None else None)
    try:
        yield staged
        if staged.target is None:
            raise ValueError(f"atomic_path: no target set for {tmpname}")
        if fsync:
            with open(tmpname, "rb") as f:
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmpname, mode)
        os.replace(tmpname, staged.target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmpname)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """Write ``path`` so that readers see either nothing or the whole file, never a part."""
    with atomic_path(path, fsync=fsync) as staged, open(staged.tmp, mode) as f:
        yield f


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing); for cache entries two builds may both write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
