"""The on-disk cache and the one way we write files: temp file, fsync, rename.

Layout under ``$OCI_CONDA_CACHE`` (default ``$XDG_CACHE_HOME/oci-conda`` or ``~/.cache/oci-conda``):
``pkgs/`` package files by sha256, ``extracted/`` unpacked packages, ``repodata/``, ``blobs/sha256/``.
Several builds may share one cache: every entry appears atomically and is verified before it is trusted.

Temp names (``.NAME.*.tmp``, ``.NAME.*.part``, ``oci-conda-held-*`` in ``$TMPDIR``) are locked (``flock``) by the
process writing them for as long as it lives; a killed process's lock is gone with it, so :func:`sweep_stale` (run on
a directory before the first temp is made there, and by :func:`sweep_cache` at the start of every command) removes
exactly the temps nobody holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

#: what our temp names end with (cache entries never do)
TEMP_SUFFIXES = (".tmp", ".part", ".old")
#: what our temp directories in ``$TMPDIR`` start with: only :func:`held_temp_dir` makes such names, always held
#: while in use, so an unheld one is stale (other temp dirs, e.g. an older version's, are never touched)
HELD_TMPDIR_PREFIX = "oci-conda-held-"
#: cache subdirectories whose temps are swept at start
CACHE_SUBDIRS = ("pkgs", "extracted", "layers", "blobs/sha256", "repodata", "repodata/shards")
#: Where builds keep their held temp dirs that hold package payload (streamed packages): on the cache's disk.
SPOOL_DIR = "tmp"


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


def hold(path: str | os.PathLike[str]) -> int:
    """Lock the temp file/dir ``path`` for as long as the returned fd is open (see :func:`sweep_stale`)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hold_fd(fd: int) -> None:
    """Lock a temp file we already have open (``mkstemp``'s fd) for as long as that fd is open."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def sweep_stale(directory: str | os.PathLike[str], match: Callable[[str], bool]) -> int:
    """Remove the entries of ``directory`` that ``match`` and that no live process holds a lock on; their count.

    A live writer holds its temp (``hold``), so whatever can be locked belongs to nobody any more."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    removed = 0
    for n in names:
        if not match(n):
            continue
        p = Path(directory) / n
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use
        finally:
            os.close(fd)  # closing drops the lock; a writer that locks from here on is not ours to touch
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed += 1
    return removed


def is_temp_name(name: str) -> bool:
    """``.NAME.*.tmp`` / ``.part`` / ``.old``: a temp name of ours inside the cache."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIXES)


_swept: set[str] = set()
_swept_lock = threading.Lock()


def sweep_once(directory: str | os.PathLike[str], prefix: str = ".") -> None:
    """:func:`sweep_stale` of our temp names starting with ``prefix`` in ``directory``, at most once per process
    (it is called per write; an output's directory is swept only of that output's own temps)."""
    key = os.path.join(os.fspath(directory), prefix)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    sweep_stale(directory, lambda n: n.startswith(prefix) and is_temp_name(n))


def sweep_cache() -> None:
    """Remove what killed runs left: unheld temps in the cache's directories and our temp dirs in ``$TMPDIR``."""
    root = cache_root()
    if root.is_dir():
        for sub in CACHE_SUBDIRS:
            sweep_stale(root / sub, is_temp_name)
        sweep_stale(root / SPOOL_DIR, lambda n: n.startswith(HELD_TMPDIR_PREFIX))
    sweep_stale(tempfile.gettempdir(), lambda n: n.startswith(HELD_TMPDIR_PREFIX))


@contextlib.contextmanager
def held_temp_dir(prefix: str, directory: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A new temp directory ``oci-conda-held-PREFIX*``, locked while in use and removed afterwards (also on SIGTERM, which the CLI turns into
    an exception); after ``kill -9`` it is left unlocked, for the next :func:`sweep_cache`."""
    path = Path(tempfile.mkdtemp(prefix=HELD_TMPDIR_PREFIX + prefix, dir=directory))
    fd = hold(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


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
    sweep_once(where, f".{name}.")
    fd, tmpname = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=where)
    hold_fd(fd)  # held until we are done: a concurrent sweep leaves it alone
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
    finally:
        os.close(fd)


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
