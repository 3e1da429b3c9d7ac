"""A path on disk as an image source, in every local form skopeo writes, and the image it names.

``oci:DIR[:REF]`` (OCI layout), ``oci-archive:PATH[:REF]`` (OCI archive), ``dir:DIR`` (skopeo's dir format) and
``docker-archive:PATH[:NAME:TAG|:@N]`` (``docker save``). A bare path is recognised by its contents. The one place
that decides which form a path is, for bases, ``push``, ``inspect``, ``diff`` and bundles alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oci_conda.errors import ImageError
from oci_conda.oci.archive import ArchiveSource
from oci_conda.oci.dir import SkopeoDirSource, is_skopeo_dir
from oci_conda.oci.dockerarchive import DockerArchiveSource, is_docker_archive
from oci_conda.oci.image import Descriptor
from oci_conda.oci.layout import LayoutDirSource, is_layout
from oci_conda.oci.walk import select_ref

LocalSource = LayoutDirSource | ArchiveSource | SkopeoDirSource | DockerArchiveSource
#: skopeo's names for the local forms we read, longest first (``oci-archive`` before ``oci``).
LOCAL_TRANSPORTS = ("docker-archive", "oci-archive", "dir", "oci")


def split_transport(spec: str | Path) -> tuple[str | None, str]:
    """``(transport, rest)`` for ``TRANSPORT:REST`` with a local transport, else ``(None, spec)``; a path that
    exists as written is a path, whatever its name."""
    s = str(spec)
    if os.path.exists(s):
        return None, s
    for transport in LOCAL_TRANSPORTS:
        if s.startswith(transport + ":"):
            return transport, s[len(transport) + 1:]
    return None, s


def open_local(path: str | Path, transport: str | None = None) -> LocalSource:
    """The local image store at ``path`` as a blob source (with its ``index()``). A ``str`` may carry its transport
    (``dir:/x``) and a ``:REF`` (ignored here: the whole store is the source); a ``Path`` is a path. Without a
    transport, the contents say which form it is."""
    if transport is None and isinstance(path, str):
        transport, path, _ref = parse_local_ref(path)
    p = Path(path)
    if transport == "dir":
        return SkopeoDirSource(p)
    if transport == "docker-archive":
        if p.is_dir():
            raise ImageError(f"docker archive {p}: is a directory (docker-archive: takes a docker save tar)")
        return DockerArchiveSource(p)
    if p.is_dir():
        if transport is None and not is_layout(p) and is_skopeo_dir(p):
            return SkopeoDirSource(p)
        return LayoutDirSource(p)
    if not p.exists():
        raise ImageError(f"{p}: no such OCI archive or layout directory")
    src = ArchiveSource(p)
    if transport is None and is_docker_archive(src):
        return DockerArchiveSource(p)
    return src


def suggest_transport(path: str) -> str:
    """The skopeo-style reference a bare ``path`` most likely means (for a hint; nothing is read deeply)."""
    p = Path(path).expanduser()
    if p.is_dir():
        if is_skopeo_dir(p) and not is_layout(p):
            return f"dir:{path}"
        return f"oci:{path}"
    if p.is_file():
        try:
            if is_docker_archive(ArchiveSource(p)):
                return f"docker-archive:{path}"
        except ImageError:
            pass
    return f"oci-archive:{path}"


def split_path_ref(rest: str) -> tuple[str, str | None]:
    """``PATH[:REF]``: a path that exists as written wins, otherwise the first ':' separates (as skopeo does)."""
    if not rest:
        return "", None
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    path, _, ref = rest.partition(":")
    return path, ref or None


@dataclass(frozen=True)
class LocalImage:
    """A local source and the index.json entry chosen from it (by ref name, or the only one)."""

    source: LocalSource
    top: Descriptor
    what: str


def open_local_image(path: Path, ref: str | None = None, transport: str | None = None) -> LocalImage:
    """The image ``ref`` names in the local store at ``path`` (``ref`` may be None when it holds one)."""
    source = open_local(Path(path), transport)
    what = source.what
    if isinstance(source, DockerArchiveSource):
        return LocalImage(source, source.top(ref), what)
    if isinstance(source, SkopeoDirSource) and ref is not None:
        raise ImageError(f"{what}: dir: holds one image; it takes no :REF")
    return LocalImage(source, select_ref(source.index(), ref, what), what)


def parse_local_ref(spec: str) -> tuple[str | None, str, str | None]:
    """``[TRANSPORT:]PATH[:REF]`` -> ``(transport or None, path, ref)``; ``dir:`` takes no REF."""
    transport, rest = split_transport(spec)
    if transport == "dir":
        return transport, rest, None
    path, ref = split_path_ref(rest)
    return transport, path, ref


def open_local_ref(spec: str) -> LocalImage:
    """The image a local reference (``oci:``, ``oci-archive:``, ``dir:``, ``docker-archive:`` or a bare path)
    names: for ``push``, ``inspect`` and ``diff``."""
    transport, path, ref = parse_local_ref(spec)
    if not path:
        raise ImageError(f"image {spec!r}: missing path after '{transport}:'")
    return open_local_image(Path(path), ref, transport)


def parse_local(spec: str) -> tuple[Path, str | None]:
    """``[oci:|oci-archive:]PATH[:REF]`` -> (path, ref)."""
    for prefix in ("oci-archive:", "oci:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
            break
    path, ref = split_path_ref(spec)
    return Path(path), ref
