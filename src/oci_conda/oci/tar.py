"""Deterministic layer tars: the same entries give the same bytes and digests on every machine and every run.

One pass: tar bytes are hashed (diff_id) and compressed, the compressed bytes are hashed (digest) and written out
as they are produced, so a layer of hundreds of MB never sits in memory or on disk twice.
Headers are written here rather than by ``tarfile`` so that every byte is under our control: ustar (with the
prefix field for long paths) and a PAX record only where ustar cannot say it (long or non-ASCII names, huge files).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Literal

from zlib_ng import zlib_ng

from oci_conda.errors import ImageError
from oci_conda.payload_names import is_whiteout

MEDIA_TYPE_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPES = {"gzip": MEDIA_TYPE_GZIP, "zstd": MEDIA_TYPE_ZSTD, "none": MEDIA_TYPE_TAR}

GZIP_LEVEL = 4  # zlib-ng level 4: 3.4x zlib level 6's speed for 3.5 % more bytes on real packages (issue 16)
ZSTD_LEVEL = 3
CHUNK = 1 << 20  # read size for file contents
FLUSH_AT = 1 << 20  # headers and small files are gathered until this many bytes, then hashed/compressed at once

Compression = Literal["gzip", "zstd", "none"]


@dataclass
class TarEntry:
    """One member of a layer; ``path`` is relative POSIX (``opt/conda/bin/x``), contents from ``source`` or ``data``.

    ``opener`` (with ``size``) is a third way to supply file contents, used to stream blobs into archives.
    """

    path: str
    kind: Literal["file", "dir", "symlink", "hardlink"]
    mode: int = 0o644
    size: int = 0
    source: str | None = None
    data: bytes | None = None
    linkname: str = ""
    opener: Callable[[], BinaryIO] | None = None
    mtime: int | None = None  # None: the layer's time (a package's files carry that package's time)

    def with_mtime(self, mtime: int | None) -> TarEntry:
        """A copy dated ``mtime``: every entry of an environment is dated once (``dataclasses.replace`` took 5x as
        long, ~30 ms for the 12k entries of a large environment, on the one core that plans the layers)."""
        return TarEntry(self.path, self.kind, self.mode, self.size, self.source, self.data, self.linkname, self.opener,
                        mtime)


@dataclass(frozen=True)
class LayerInfo:
    """What a manifest and a config need to know about a written layer."""

    digest: str
    size: int
    diff_id: str
    uncompressed_size: int
    media_type: str


# ---------------------------------------------------------------------------------------------------------------
# headers

_TYPEFLAG = {"file": b"0", "hardlink": b"1", "symlink": b"2", "dir": b"5"}


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _is_ascii(b: bytes) -> bool:
    return b.isascii()


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for ustar when ``name`` is too long for the 100-byte field, or None if it cannot be split."""
    if len(name) > 256:
        return None
    # the prefix is everything before some '/', at most 155 bytes; the rest at most 100 bytes
    i = name.rfind(b"/", 0, 156)
    while i > 0:
        if len(name) - i - 1 <= 100:
            rest = name[i + 1 :]
            return (name[:i], rest) if rest else None
        i = name.rfind(b"/", 0, i)
    return None


def _pax_record(key: str, value: bytes) -> bytes:
    k = key.encode("ascii")
    base = len(k) + len(value) + 3  # ' ' '=' '\n'
    n = base + len(str(base))
    if len(str(n)) != len(str(base)):
        n = base + len(str(n))
    return str(n).encode("ascii") + b" " + k + b"=" + value + b"\n"


def _ustar(name: bytes, prefix: bytes, mode: int, size: int, mtime: int, typeflag: bytes, linkname: bytes,
           owner: tuple[int, int] = (0, 0)) -> bytes:
    head = b"".join(
        (
            name.ljust(100, b"\0"),
            _octal(mode, 8),
            _octal(owner[0], 8),  # uid
            _octal(owner[1], 8),  # gid
            _octal(size, 12),
            _octal(mtime, 12),
            b"        ",  # checksum placeholder
            typeflag,
            linkname.ljust(100, b"\0"),
            b"ustar\x0000",
            b"\0" * 32,  # uname
            b"\0" * 32,  # gname
            _octal(0, 8),  # devmajor
            _octal(0, 8),  # devminor
            prefix.ljust(155, b"\0"),
            b"\0" * 12,
        )
    )
    chksum = b"%06o\0 " % sum(head)
    return head[:148] + chksum + head[156:]


def _fields(path: str, kind: str, size: int, linkname: str) -> tuple[bytes, bytes, bytes, int, bytes]:
    """(name, prefix, linkname, header size field, PAX records) for one entry; records are empty if ustar suffices."""
    name = path.encode("utf-8", "surrogateescape")
    if kind == "dir":
        name += b"/"
    link = linkname.encode("utf-8", "surrogateescape")
    pax: list[bytes] = []
    prefix = b""
    if len(name) > 100 or not _is_ascii(name):
        split = _split_ustar(name) if _is_ascii(name) else None
        if split is None:
            pax.append(_pax_record("path", name))
            name = name[:100] if _is_ascii(name[:100]) else b"././@LongName"
        else:
            prefix, name = split
    if len(link) > 100 or not _is_ascii(link):
        pax.append(_pax_record("linkpath", link))
        link = b"././@LongLink"
    hsize = size
    if size >= 8**11:
        pax.append(_pax_record("size", str(size).encode("ascii")))
        hsize = 0
    return name, prefix, link, hsize, b"".join(sorted(pax))


def _header_len(path: str, kind: str, size: int, linkname: str) -> int:
    records = _fields(path, kind, size, linkname)[4]
    return 512 + (512 + len(records) + (-len(records) % 512) if records else 0)


def entry_header(path: str, kind: str, mode: int, size: int, mtime: int, linkname: str,
                 owner: tuple[int, int] = (0, 0)) -> bytes:
    """One entry's header bytes: ustar, preceded by a PAX header only where ustar cannot say it."""
    name, prefix, link, hsize, records = _fields(path, kind, size, linkname)
    header = _ustar(name, prefix, mode, hsize, mtime, _TYPEFLAG[kind], link, owner)
    if not records:
        return header
    xhead = _ustar(b"././@PaxHeader", b"", 0o644, len(records), mtime, b"x", b"")
    return xhead + records + b"\0" * (-len(records) % 512) + header


# ---------------------------------------------------------------------------------------------------------------
# the streaming sink: tar bytes -> sha256 (diff_id) -> compressor -> sha256 (digest) -> out


GZIP_BLOCK = 1 << 20  # the input is deflated in independent blocks of this size (as pigz does)
GZIP_WINDOW = 32 << 10
GZIP_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _deflate_block(data: bytes, zdict: bytes, last: bool) -> bytes:
    z = zlib_ng.compressobj(GZIP_LEVEL, zlib_ng.DEFLATED, -15, 9, zlib_ng.Z_DEFAULT_STRATEGY, zdict) if zdict else \
        zlib_ng.compressobj(GZIP_LEVEL, zlib_ng.DEFLATED, -15, 9)
    return z.compress(data) + z.flush(zlib_ng.Z_FINISH if last else zlib_ng.Z_SYNC_FLUSH)


class _Gzip:
    """gzip without a name or a timestamp, deflated in fixed 1 MiB blocks on several threads.

    Each block is primed with the 32 KiB before it and ends byte-aligned, so the blocks concatenate into one
    valid deflate stream. Block boundaries depend only on the input offset, so the bytes are the same whatever
    the number of threads (zlib-ng releases the GIL while compressing).
    """

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or GZIP_WORKERS
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[bytes]] = deque()
        self._buf = bytearray()
        self._window = b""
        self._crc = 0
        self._len = 0
        self._started = False

    def _submit(self, block: bytes, last: bool) -> None:
        if self._workers == 1:
            fut: Future[bytes] = Future()
            fut.set_result(_deflate_block(block, self._window, last))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gzip")
            fut = self._pool.submit(_deflate_block, block, self._window, last)
        self._pending.append(fut)
        self._window = block[-GZIP_WINDOW:]

    def _drain(self, keep: int) -> bytes:
        out = []
        if not self._started:
            self._started = True
            # magic, deflate, no flags, mtime 0, XFL 0, OS 255 (unknown)
            out.append(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        while len(self._pending) > keep or (self._pending and self._pending[0].done()):
            out.append(self._pending.popleft().result())
        return b"".join(out)

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib_ng.crc32(data, self._crc)
        self._len += len(data)
        self._buf += data
        while len(self._buf) >= GZIP_BLOCK:
            self._submit(bytes(self._buf[:GZIP_BLOCK]), False)
            del self._buf[:GZIP_BLOCK]
        return self._drain(2 * self._workers)

    def flush(self) -> bytes:
        self._submit(bytes(self._buf), True)
        self._buf.clear()
        tail = self._drain(0)
        self.close()
        return tail + self._crc.to_bytes(4, "little") + (self._len & 0xFFFFFFFF).to_bytes(4, "little")

    def close(self) -> None:
        if self._pool is not None:
            for f in self._pending:
                f.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None


def compressor_id(compression: str) -> str:
    """The implementation, version and level that turn a layer's tar into its compressed bytes.

    Deflate output is not specified by the format, only by the implementation, so gzip layers are compressed by
    zlib-ng from its wheel (``zlib-ng`` is pinned in pyproject.toml), never by the zlib the Python happens to be
    linked to (some distributions ship zlib-ng as their zlib, which gives other bytes than zlib). zlib-ng
    dispatches at run time to CPU-specific kernels, but since 2.2 (zlib-ng#1681) none of them changes the output:
    the hash is one generic function, and the SIMD match finders return the same match lengths as the generic
    code; only checksums and the sliding of the window are vectorised. zstd: the libzstd bundled in the
    ``zstandard`` wheel. (ISA-L, evaluated in issue 16, was rejected: its output depends on how the input is
    fed, and upstream does not promise the same bytes across the kernels it dispatches to; intel/isa-l#140.)
    """
    if compression == "gzip":
        return f"zlib-ng {zlib_ng.ZLIBNG_VERSION} level {GZIP_LEVEL} blocks {GZIP_BLOCK}"
    if compression == "zstd":
        import zstandard

        return f"zstandard {zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION}) level {ZSTD_LEVEL}"
    return compression


class _Plain:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _Zstd:
    def __init__(self, obj: Any):
        self._obj = obj

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()

    def close(self) -> None:
        pass


def _compressor(compression: str, total: int, workers: int | None = None):  # noqa: ANN202 - three small duck-typed classes
    if compression == "gzip":
        return _Gzip(workers)
    if compression == "zstd":
        import zstandard

        # level fixed, single-threaded, no dictionary, no checksum: the bytes depend only on the input
        # the tar's size is known before it is written, so the frame records it (as `zstd` on a file would)
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0, write_checksum=False, write_content_size=True)
        return _Zstd(cctx.compressobj(size=total))
    if compression == "none":
        return _Plain()
    raise ValueError(f"unknown compression {compression!r}")


class _Sink:
    def __init__(self, out: BinaryIO, compression: str, total: int, workers: int | None = None):
        self.out = out
        self.comp = _compressor(compression, total, workers)
        self.tar_hash = hashlib.sha256()
        self.out_hash = hashlib.sha256()
        self.tar_size = 0
        self.out_size = 0
        self.buf = bytearray()
        self.plain = compression == "none"

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self.tar_hash.update(data)
        self.tar_size += len(data)
        c = data if self.plain else self.comp.compress(data)
        if c:
            if not self.plain:
                self.out_hash.update(c)
            self.out.write(c)
            self.out_size += len(c)

    def write(self, data: bytes | memoryview) -> None:
        if len(data) >= FLUSH_AT:
            if self.buf:
                self._emit(bytes(self.buf))
                self.buf.clear()
            self._emit(data)
        else:
            self.buf += data
            if len(self.buf) >= FLUSH_AT:
                self._emit(bytes(self.buf))
                self.buf.clear()

    def finish(self) -> tuple[str, int, str, int]:
        if self.buf:
            self._emit(bytes(self.buf))
            self.buf.clear()
        tail = self.comp.flush()
        if tail and not self.plain:
            self.out_hash.update(tail)
            self.out.write(tail)
            self.out_size += len(tail)
        diff_id = "sha256:" + self.tar_hash.hexdigest()
        digest = diff_id if self.plain else "sha256:" + self.out_hash.hexdigest()
        return digest, self.out_size, diff_id, self.tar_size


# ---------------------------------------------------------------------------------------------------------------
# entry normalisation


def _check_path(path: str, what: str = "path") -> str:
    p = path[:-1] if path.endswith("/") and len(path) > 1 else path
    if not p or p.startswith("/"):
        raise ImageError(f"layer entry {what} {path!r} must be relative and non-empty")
    parts = p.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ImageError(f"layer entry {what} {path!r} must not contain '.', '..' or empty components")
    if "\0" in p:
        raise ImageError(f"layer entry {what} {path!r} contains a NUL byte")
    return p


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _normalise(entries: Iterable[TarEntry], whiteouts: frozenset[str] = frozenset()) -> list[TarEntry]:
    """Validated, parent-completed, path-sorted entries with canonical modes and hardlinks to earlier paths."""
    by_path: dict[str, TarEntry] = {}
    for e in entries:
        p = _check_path(e.path)
        if is_whiteout(p) and not (p in whiteouts and e.kind == "file" and e.size == 0 and not e.data
                                     and e.source is None and e.opener is None):
            raise ImageError(f"layer entry {p!r} is an OCI whiteout name; only an explicitly requested empty "
                             "whiteout file may be written")
        if p in by_path:
            raise ImageError(f"duplicate layer entry {p!r}")
        if e.kind not in _TYPEFLAG:
            raise ImageError(f"layer entry {p!r} has unknown kind {e.kind!r}")
        by_path[p] = e if p == e.path else TarEntry(p, e.kind, e.mode, e.size, e.source, e.data, e.linkname, e.opener,
                                                     e.mtime)

    # missing parent directories
    for p in list(by_path):
        parent = p.rpartition("/")[0]
        while parent:
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = TarEntry(parent, "dir", 0o755)
            elif existing.kind != "dir":
                raise ImageError(f"layer entry {p!r} lies under {parent!r}, which is not a directory")
            else:
                break
            parent = parent.rpartition("/")[0]

    # hardlinks: every group of paths sharing one file is written as the smallest path (the file) + links to it
    links = {p: e for p, e in by_path.items() if e.kind == "hardlink"}
    if links:
        groups: dict[str, list[str]] = {}
        for p, e in links.items():
            target = _check_path(e.linkname, "link target")
            seen = {p}
            while target in links:  # a link to a link: follow to the file
                if target in seen:
                    raise ImageError(f"hardlink {p!r} is part of a cycle")
                seen.add(target)
                target = _check_path(links[target].linkname, "link target")
            t = by_path.get(target)
            if t is None or t.kind != "file":
                raise ImageError(f"hardlink {p!r} points to {target!r}, which is not a regular file in this layer")
            groups.setdefault(target, []).append(p)
        for target, members in groups.items():
            file_entry = by_path[target]
            first = min([target, *members], key=_sort_key)
            if first != target:
                by_path[first] = TarEntry(first, "file", file_entry.mode, file_entry.size, file_entry.source,
                                          file_entry.data, "", file_entry.opener, file_entry.mtime)
            for p in [target, *members]:
                if p != first:
                    by_path[p] = TarEntry(p, "hardlink", file_entry.mode, 0, linkname=first,
                                          mtime=file_entry.mtime)

    out = []
    for p in sorted(by_path, key=_sort_key):
        e = by_path[p]
        if e.kind == "dir":
            mode = 0o755
        elif e.kind == "symlink":
            mode = 0o777
            if not e.linkname:
                raise ImageError(f"symlink {p!r} has an empty target")
        else:
            mode = 0o755 if e.mode & 0o111 else 0o644
        if e.mode != mode:
            e = TarEntry(e.path, e.kind, mode, e.size, e.source, e.data, e.linkname, e.opener, e.mtime)
        out.append(e)
    return out


# ---------------------------------------------------------------------------------------------------------------
# writing


def _content_size(e: TarEntry) -> int:
    if e.kind != "file":
        return 0
    if e.data is not None:
        return len(e.data)
    if e.source is not None:
        try:
            return os.stat(e.source).st_size
        except OSError as exc:
            raise ImageError(f"cannot read {e.source}: {exc.strerror}") from exc
    return e.size if e.opener is not None else 0


def entry_bytes(e: TarEntry) -> bytes:
    """A file entry's contents, wherever they come from (small files: activation scripts, records)."""
    if e.data is not None:
        return e.data
    if e.source is not None:
        return Path(e.source).read_bytes()
    if e.opener is not None:
        with e.opener() as f:
            return f.read(e.size)
    return b""


def _write_file(sink: _Sink, e: TarEntry, size: int, mtime: int, owner: tuple[int, int] = (0, 0)) -> None:
    header = entry_header(e.path, "file", e.mode, size, mtime, "", owner)
    pad = b"\0" * (-size % 512)
    if e.data is not None:
        sink.write(header + e.data + pad if size < FLUSH_AT else header)
        if size >= FLUSH_AT:
            sink.write(e.data)
            sink.write(pad)
        return
    if e.source is not None:
        try:
            f: BinaryIO = open(e.source, "rb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise ImageError(f"cannot read {e.source}: {exc.strerror}") from exc
        name = e.source
    elif e.opener is not None:
        f = e.opener()
        name = e.path
    else:
        sink.write(header)
        return
    with f:
        if size < CHUNK:  # small file: one read, one write
            data = f.read(size) if size else b""
            if len(data) != size:
                raise ImageError(f"{name} changed size while it was being written into a layer")
            sink.write(header + data + pad)
        else:
            sink.write(header)
            left = size
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise ImageError(f"{name} changed size while it was being written into a layer")
                sink.write(chunk)
                left -= len(chunk)
            sink.write(pad)
        if e.source is not None and f.read(1):
            raise ImageError(f"{name} changed size while it was being written into a layer")


def write_layer(entries: Iterable[TarEntry], out: BinaryIO, compression: Compression, mtime: int, *,
                whiteouts: Iterable[str] = (), workers: int | None = None, owner: tuple[int, int] = (0, 0),
                owner_under: str = "") -> LayerInfo:
    """Write a reproducible layer: sorted, owner 0, fixed mtime, canonical modes, deterministic compression.

    ``mtime`` dates every entry that carries no time of its own (``TarEntry.mtime``) and the parent directories
    the writer adds.

    ``owner`` (uid, gid; at most 0o7777777 each, the ustar field) owns ``owner_under`` and everything below it
    (``""``: every entry); the directories above it stay 0:0, so a non-root user owns its prefix and nothing else.

    Entries with whiteout names (:func:`is_whiteout`) are refused unless their path is listed in ``whiteouts``
    (and they are empty files): deleting a lower layer's file must be a decision of the caller, never of content.
    ``workers``: threads deflating gzip blocks (default ``GZIP_WORKERS``); the bytes do not depend on it.
    """
    if compression not in MEDIA_TYPES:
        raise ValueError(f"unknown compression {compression!r}")
    mtime = int(mtime)
    normalised = _normalise(entries, frozenset(whiteouts))
    # sizes first: missing sources fail before anything is written, and zstd can record the tar's size
    sizes = [_content_size(e) for e in normalised]
    total = 1024 + sum(
        _header_len(e.path, e.kind, n, e.linkname if e.kind in ("symlink", "hardlink") else "") + n + (-n % 512)
        for e, n in zip(normalised, sizes)
    )
    if max(owner) > 0o7777777 or min(owner) < 0:
        raise ImageError(f"layer owner {owner[0]}:{owner[1]}: uid and gid must be between 0 and {0o7777777}")
    under = owner_under.strip("/")

    def owned(path: str) -> tuple[int, int]:
        return owner if not under or path == under or path.startswith(under + "/") else (0, 0)

    sink = _Sink(out, compression, total, workers)
    try:
        for e, n in zip(normalised, sizes):
            when = mtime if e.mtime is None else int(e.mtime)
            if e.kind == "file":
                _write_file(sink, e, n, when, owned(e.path))
            else:
                link = e.linkname if e.kind in ("symlink", "hardlink") else ""
                sink.write(entry_header(e.path, e.kind, e.mode, 0, when, link, owned(e.path)))
        sink.write(b"\0" * 1024)  # end-of-archive marker
        digest, size, diff_id, usize = sink.finish()
    finally:
        sink.comp.close()
    if usize != total:  # cannot happen unless the size arithmetic above is wrong
        raise AssertionError(f"tar size {usize} != planned {total}")
    return LayerInfo(digest, size, diff_id, usize, MEDIA_TYPES[compression])


def layer_from_directory(root: Path, prefix: str = "") -> list[TarEntry]:
    """Entries for everything under ``root`` (not ``root`` itself), placed under ``prefix`` in the layer.

    Symlinks stay symlinks; files sharing an inode within the walk become hardlinks to the first path.
    """
    root = Path(root)
    prefix = prefix.strip("/")
    found: list[tuple[str, os.stat_result, str]] = []  # (layer path, lstat, disk path)

    def walk(dirpath: str, rel: str) -> None:
        try:
            it = os.scandir(dirpath)
        except OSError as exc:
            raise ImageError(f"cannot read directory {dirpath}: {exc.strerror}") from exc
        with it:
            for de in it:
                r = f"{rel}/{de.name}" if rel else de.name
                st = de.stat(follow_symlinks=False)
                found.append((r, st, de.path))
                if stat.S_ISDIR(st.st_mode):
                    walk(de.path, r)

    walk(str(root), prefix)
    found.sort(key=lambda t: _sort_key(t[0]))
    entries: list[TarEntry] = []
    inodes: dict[tuple[int, int], str] = {}
    for rel, st, disk in found:
        m = st.st_mode
        perm = stat.S_IMODE(m)
        if stat.S_ISDIR(m):
            entries.append(TarEntry(rel, "dir", perm))
        elif stat.S_ISLNK(m):
            entries.append(TarEntry(rel, "symlink", 0o777, linkname=os.readlink(disk)))
        elif stat.S_ISREG(m):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                entries.append(TarEntry(rel, "hardlink", perm, linkname=inodes[key]))
            else:
                if st.st_nlink > 1:
                    inodes[key] = rel
                entries.append(TarEntry(rel, "file", perm, st.st_size, source=disk))
        else:
            raise ImageError(f"{disk} is not a file, directory or symlink and cannot go into a layer")
    return entries
