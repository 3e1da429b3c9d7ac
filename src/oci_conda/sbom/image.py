"""An SBOM's input read from the image itself, not from what the build believes it installed.

One pass over the image's layers (base first, whiteouts honoured) keeps only the files that say what is installed:
every ``conda-meta/*.json`` (the conda packages, at whatever prefix), every ``*.dist-info/METADATA`` and
``direct_url.json`` (wheels pip put there; those a conda record lists in its ``files`` are that package's), and the
base's dpkg/apk database with os-release. So the SBOM lists exactly what ``conda-meta/`` and dist-info list, and a
package a later layer deletes is not in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, BinaryIO

from ..oci.image import Image
from .distinfo import conda_owned, wheels_from_files
from .distinfo import wanted as distinfo_wanted
from .layers import collect_files
from .model import CondaPackage, ImageSubject, SbomInput
from .ospkgs import os_packages, wanted_os_file

_CONDA_META = re.compile(r"^(.*?)/?conda-meta/[^/]+\.json$")


def _wanted(path: str) -> bool:
    return _CONDA_META.match(path) is not None or distinfo_wanted(path) or wanted_os_file(path)


def conda_records(files: dict[str, bytes]) -> list[tuple[str, dict[str, Any]]]:
    """``(prefix, record)`` for every readable conda-meta record among ``files``, by path."""
    out = []
    for path in sorted(files):
        m = _CONDA_META.match(path)
        if not m:
            continue
        try:
            rec = json.loads(files[path])
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("name"), str) and isinstance(rec.get("version"), str):
            out.append(("/" + m.group(1), rec))
    return out


def input_from_layers(layers: Iterable[BinaryIO], subject: ImageSubject, created: int,
                      where: str = "image") -> SbomInput:
    """The SBOM input for the filesystem ``layers`` (lowest first) make, about the image ``subject``."""
    files = collect_files(layers, _wanted, where)
    records = conda_records(files)
    owned: set[str] = set()
    for prefix, rec in records:
        owned |= conda_owned([rec.get("files") or []], prefix)
    conda = tuple(CondaPackage.from_record(rec) for _prefix, rec in records)
    wheels = tuple(wheels_from_files({p: d for p, d in files.items() if distinfo_wanted(p)}, owned))
    osp = tuple(os_packages({p: d for p, d in files.items() if wanted_os_file(p)}))
    return SbomInput(subject, created, conda, wheels, osp)


def _opened(image: Image) -> Iterable[BinaryIO]:
    for layer in image.layers:
        with layer.open() as f:
            yield f


def image_input(image: Image, subject: ImageSubject, created: int) -> SbomInput:
    """The SBOM input of a built (or pulled) ``image``: its layers read once, in order."""
    return input_from_layers(_opened(image), subject, created, f"image {subject.name} ({subject.platform})")
