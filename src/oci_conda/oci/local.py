"""A path on disk as an image source: an OCI layout directory or an OCI archive, and the image it names.

The one place that decides which of the two a path is (``oci:`` / ``oci-archive:`` prefixes, ``PATH:REF``), for
bases, ``push``, ``inspect`` and bundles alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oci_conda.errors import ImageError
from oci_conda.oci.archive import ArchiveSource
from oci_conda.oci.image import Descriptor
from oci_conda.oci.layout import LayoutDirSource
from oci_conda.oci.walk import select_ref

LocalSource = LayoutDirSource | ArchiveSource


def open_local(path: Path) -> LocalSource:
    """The layout directory or archive at ``path`` as a blob source (with its ``index()``)."""
    path = Path(path)
    if path.is_dir():
        return LayoutDirSource(path)
    if not path.exists():
        raise ImageError(f"{path}: no such OCI archive or layout directory")
    return ArchiveSource(path)


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


def open_local_image(path: Path, ref: str | None = None) -> LocalImage:
    """The image ``ref`` names in the layout or archive at ``path`` (``ref`` may be None when it holds one)."""
    source = open_local(path)
    what = source.what
    return LocalImage(source, select_ref(source.index(), ref, what), what)


def parse_local(spec: str) -> tuple[Path, str | None]:
    """``[oci:|oci-archive:]PATH[:REF]`` -> (path, ref)."""
    for prefix in ("oci-archive:", "oci:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
            break
    path, ref = split_path_ref(spec)
    return Path(path), ref

