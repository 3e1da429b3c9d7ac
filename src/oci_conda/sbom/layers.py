"""Selected files of the filesystem an image's layers make, read straight from the layer streams.

Layers (plain, gzip or zstd tar streams, lowest first) are applied in order with OCI whiteouts (``.wh.NAME`` and
opaque ``.wh..wh..opq``) honoured, so a file deleted or replaced by an upper layer is seen as the final filesystem
has it. Only the files a caller asks for are kept in memory, each up to ``MAX_FILE`` bytes.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Callable, Iterable
from typing import BinaryIO

from ..errors import ImageError

MAX_FILE = 64 << 20
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


class _Prefixed:
    """A read-only stream with some already-read bytes put back in front (to sniff the compression)."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(n)
        if n is None or n < 0:
            out, self.head = self.head + self.rest.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        if len(out) < n:
            out += self.rest.read(n - len(out))
        return out


def _decompressed(f: BinaryIO) -> BinaryIO:
    import zstandard

    head = f.read(4)
    stream = _Prefixed(head, f)
    if head.startswith(_GZIP):
        return gzip.GzipFile(fileobj=stream)  # type: ignore[arg-type]
    if head.startswith(_ZSTD):
        return zstandard.ZstdDecompressor().stream_reader(stream)  # type: ignore[return-value]
    return stream  # type: ignore[return-value]


def normalise(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name


def collect_files(layers: Iterable[BinaryIO], wanted: Callable[[str], bool], where: str = "image") -> dict[str, bytes]:
    """``{path: bytes}`` of the regular files for which ``wanted(path)`` holds (paths relative, no leading ``/``)
    in the filesystem the ``layers`` make. A wanted symlink is followed when its target is also collected."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    for n, layer in enumerate(layers):
        added: dict[str, bytes] = {}
        added_links: dict[str, str] = {}
        gone: list[str] = []
        opaque: list[str] = []
        try:
            with tarfile.open(fileobj=_decompressed(layer), mode="r|") as t:
                for m in t:
                    path = normalise(m.name)
                    d, _, base = path.rpartition("/")
                    if base == ".wh..wh..opq":
                        opaque.append(d + "/" if d else "")
                        continue
                    if base.startswith(".wh."):
                        gone.append((d + "/" if d else "") + base[4:])
                        continue
                    if not wanted(path):
                        continue
                    if m.issym():
                        added_links[path] = m.linkname
                    elif m.isreg() and m.size <= MAX_FILE:
                        f = t.extractfile(m)
                        if f is not None:
                            added[path] = f.read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ImageError(f"{where}: layer {n} is not a readable tar ({e})") from None
        for target in (files, links):
            for p in list(target):
                if any(p == g or p.startswith(g + "/") for g in gone) or any(p.startswith(o) for o in opaque):
                    del target[p]
        for p in added:
            links.pop(p, None)
        for p in added_links:
            files.pop(p, None)
        files.update(added)
        links.update(added_links)
    for path, target in links.items():
        resolved = normalise(target if target.startswith("/") else path.rsplit("/", 1)[0] + "/" + target)
        parts: list[str] = []
        for seg in resolved.split("/"):
            if seg == "..":
                if parts:
                    parts.pop()
            elif seg not in ("", "."):
                parts.append(seg)
        if "/".join(parts) in files:
            files[path] = files["/".join(parts)]
    return files
