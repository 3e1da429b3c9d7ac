"""Cache entries that are verified every time they are used, cheaply.

A cache on disk is not trusted because it was right once: a flipped byte, a half-restored backup or another tool
writing into it must never reach an image. Each entry carries a record written when its content was known good
(its digests plus a stat *stamp*). At use the entry is stat-ed and the stamp compared; only when the stamp differs is
the content hashed again. A file whose bytes no longer match is reported bad, so the caller drops and rebuilds it.

Two kinds of entry:

- a **file** (a package file, a blob): the record lives in ``<dir>/.verified/<name>.json``. Its stamp includes
  ``ctime_ns``, which no user can set back, so even an edit followed by ``touch -d`` to the old time is noticed.
- a **tree** (an extracted package): a manifest of every file (sha256, size and stamp), link target and directory,
  written inside the tree when it was made. Its stamp is ``(size, mtime_ns, inode)`` without ``ctime``: builds
  hard-link extracted files into their staging prefix, which changes ``ctime`` but never the content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cache import atomic_write

RECORD_DIR = ".verified"
TREE_MANIFEST_VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Digests:
    """What a file's content is: its sha256, md5 (conda records may carry only that) and size. A blob written by
    this tool is recorded without md5 (None: nothing asks a blob for one, and hashing 140 MiB of layers again cost
    0.1 s of a cold build); asked for one, it is hashed again."""

    sha256: str
    md5: str | None
    size: int


def _file_stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def identity_stamp(st: os.stat_result) -> list[int]:
    """Which file this is and whether it changed: device, inode, size, mtime and ctime (ctime moves with any write,
    truncation, rename or chmod, and no user can set it back)."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _tree_stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _hash_fd(fd: int) -> tuple[str, str, int]:
    sha, md5, n = hashlib.sha256(), hashlib.md5(), 0
    while chunk := os.read(fd, _CHUNK):
        sha.update(chunk)
        md5.update(chunk)
        n += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), n


def _sha256_fd(fd: int) -> tuple[str, int]:
    """sha256 alone (tree manifests keep no md5: computing one for every extracted file cost a third of hashing)."""
    sha, n = hashlib.sha256(), 0
    while chunk := os.read(fd, _CHUNK):
        sha.update(chunk)
        n += len(chunk)
    return sha.hexdigest(), n


def hash_file(path: Path) -> Digests:
    """Hash ``path`` (sha256 and md5 in one pass). OSError if it cannot be read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        sha, md5, n = _hash_fd(fd)
    finally:
        os.close(fd)
    return Digests(sha, md5, n)


def record_path(path: Path) -> Path:
    """Where the record of the file entry ``path`` is kept."""
    return path.parent / RECORD_DIR / f"{path.name}.json"


def record_file(path: Path, digests: Digests) -> None:
    """Remember that ``path`` holds ``digests`` now; call right after the entry was written and checked."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_size != digests.size:
        raise OSError(f"{path} is not the file that was checked")
    rec = record_path(path)
    rec.parent.mkdir(exist_ok=True)
    doc = {"sha256": digests.sha256, "md5": digests.md5, "size": digests.size, "stamp": _file_stamp(st)}
    with atomic_write(rec, fsync=False) as f:
        f.write(json.dumps(doc, sort_keys=True).encode())


def _read_record(path: Path) -> dict | None:
    try:
        doc = json.loads(record_path(path).read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(doc, dict) and isinstance(doc.get("sha256"), str) and (doc.get("md5") is None
                                                                          or isinstance(doc["md5"], str)) \
        and isinstance(doc.get("size"), int) and isinstance(doc.get("stamp"), list)
    return doc if ok else None


def file_digests(path: Path, *, remember: bool = True, md5: bool = False) -> Digests:
    """The digests of the file ``path``: from its record when the stamp still matches, else hashed again.

    ``remember``: renew the record after hashing (for entries of a cache the caller owns); without it nothing is
    written next to ``path`` (e.g. a package file in a local channel). ``md5``: a record without one does not do.
    OSError if the file cannot be read.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path} is not a regular file")
    doc = _read_record(path)
    if doc is not None and doc["stamp"] == _file_stamp(st) and (doc["md5"] is not None or not md5):
        return Digests(doc["sha256"], doc["md5"], doc["size"])
    fd = os.open(path, os.O_RDONLY)
    try:
        before = _file_stamp(os.fstat(fd))
        sha, md5, n = _hash_fd(fd)
        after = _file_stamp(os.fstat(fd))
    finally:
        os.close(fd)
    got = Digests(sha, md5, n)
    if remember and before == after and n == before[0]:  # not changing under us: worth remembering
        with contextlib.suppress(OSError):
            record_file(path, got)
    return got


def verify_file(path: Path, *, sha256: str | None = None, md5: str | None = None, size: int | None = None) -> bool:
    """Whether the cache file entry ``path`` exists and has the given digests (each one given is checked)."""
    try:
        got = file_digests(path, md5=md5 is not None)
    except OSError:
        return False
    return (sha256 is None or got.sha256 == sha256.lower()) and (md5 is None or got.md5 == md5.lower()) \
        and (size is None or got.size == size)


def drop_file(path: Path) -> None:
    """Remove a bad file entry and its record (either may be gone already)."""
    for p in (path, record_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# ---------------------------------------------------------------------------------------------------------------
# trees


def _walk(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    stack = [("", str(root))]
    while stack:
        rel, disk = stack.pop()
        with os.scandir(disk) as it:
            for de in it:
                r = f"{rel}/{de.name}" if rel else de.name
                yield r, de
                if de.is_dir(follow_symlinks=False):
                    stack.append((r, de.path))


def tree_manifest(root: Path, exclude: frozenset[str] = frozenset()) -> dict:
    """Hash every file under ``root`` (paths in ``exclude`` aside) into a manifest :func:`verify_tree` checks.

    Files are ``{path: [sha256, size, mtime_ns, inode]}``, links ``{path: target}``, dirs a sorted list.
    """
    files: dict[str, list] = {}
    links: dict[str, str] = {}
    dirs: list[str] = []
    for rel, de in _walk(root):
        if rel in exclude:
            continue
        st = de.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            links[rel] = os.readlink(de.path)
        elif stat.S_ISDIR(st.st_mode):
            dirs.append(rel)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(de.path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                sha, n = _sha256_fd(fd)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            if n != st.st_size:
                raise OSError(f"{de.path} changed while it was hashed")
            files[rel] = [sha, *_tree_stamp(st)]
        else:
            raise OSError(f"{de.path} is not a file, directory or link")
    return {"version": TREE_MANIFEST_VERSION, "files": files, "links": links, "dirs": sorted(dirs)}


def manifest_sha256(manifest: dict, rel: str) -> str | None:
    """The sha256 a tree manifest recorded for the file ``rel`` (None when it is not a regular file there)."""
    entry = manifest.get("files", {}).get(rel)
    return entry[0] if entry else None


def verify_tree(root: Path, manifest: object) -> str | None:
    """None when every entry of ``manifest`` is still as recorded under ``root``, else the first difference.

    Costs one ``lstat`` per entry; a file is hashed again only when its stamp changed.
    """
    if not isinstance(manifest, dict) or manifest.get("version") != TREE_MANIFEST_VERSION:
        return "no manifest of this format"
    files, links, dirs = manifest.get("files"), manifest.get("links"), manifest.get("dirs")
    if not isinstance(files, dict) or not isinstance(links, dict) or not isinstance(dirs, list):
        return "the manifest is damaged"
    try:
        for rel in dirs:
            if not stat.S_ISDIR(os.lstat(root / rel).st_mode):
                return f"{rel} is no longer a directory"
        for rel, target in links.items():
            p = root / rel
            if not stat.S_ISLNK(os.lstat(p).st_mode) or os.readlink(p) != target:
                return f"{rel} is no longer the link it was"
        for rel, entry in files.items():
            p = root / rel
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                return f"{rel} is no longer a regular file"
            if _tree_stamp(st) == entry[1:]:
                continue
            got = hash_file(p)
            if got.sha256 != entry[0] or got.size != entry[1]:
                return f"{rel} has changed (sha256 {got.sha256}, recorded {entry[0]})"
    except (OSError, TypeError, IndexError) as e:
        return f"cannot be checked ({type(e).__name__}: {e})"
    return None
