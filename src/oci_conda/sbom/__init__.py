"""SBOMs of built images: SPDX 2.3 and CycloneDX 1.6 JSON, deterministic, plus the OCI 1.1 artifacts that attach
them to the image (``sbom_artifact``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..oci.artifact import ANNOTATION_CREATED, Artifact, artifact
from ..oci.image import Descriptor
from . import cyclonedx, spdx
from .cyclonedx import cyclonedx_bytes, cyclonedx_document
from .distinfo import conda_owned, read_wheels, wheels_from_files
from .graph import iso_time
from .layers import collect_files
from .model import CondaPackage, ImageSubject, OsPackage, SbomInput, WheelPackage
from .ospkgs import collect_os_files, os_packages, read_os_packages
from .spdx import spdx_bytes, spdx_document

FORMATS = {"spdx": (spdx.MEDIA_TYPE, spdx_bytes), "cyclonedx": (cyclonedx.MEDIA_TYPE, cyclonedx_bytes)}
#: the file suffix each format is written with beside the output (``OUT.spdx.json``, ``OUT.cdx.json``)
SUFFIXES = {"spdx": ".spdx.json", "cyclonedx": ".cdx.json"}


def output_path(output: str | os.PathLike[str], fmt: str, platform: str | None = None) -> Path:
    """Where the ``fmt`` SBOM of a build written to ``output`` goes: ``OUT.tar`` -> ``OUT.spdx.json`` beside it
    (``OUT.cdx.json`` for CycloneDX); a multi-platform build names each by platform (``OUT.linux-arm64.spdx.json``).
    A layout directory ``OUT/`` gets ``OUT.spdx.json`` next to the directory."""
    out = Path(output)
    stem = re.sub(r"\.(tar|tar\.gz|tgz|oci)$", "", out.name) or out.name
    if platform:
        stem += "." + re.sub(r"[^A-Za-z0-9._-]+", "-", platform)
    return out.with_name(stem + SUFFIXES[fmt])


def render(fmt: str, inp: SbomInput) -> bytes:
    """The document of format ``fmt`` (``spdx`` or ``cyclonedx``) as canonical JSON bytes."""
    return FORMATS[fmt][1](inp)


def sbom_artifact(fmt: str, document: bytes, subject: Descriptor, created: int,
                  annotations: Mapping[str, str] | None = None) -> Artifact:
    """The OCI 1.1 artifact attaching ``document`` (format ``fmt``) to the image ``subject``: artifactType and layer
    media type ``application/spdx+json`` or ``application/vnd.cyclonedx+json``; created from the build epoch."""
    media = FORMATS[fmt][0]
    ann = {ANNOTATION_CREATED: iso_time(created), **(annotations or {})}
    return artifact(media, document, subject, media, ann)


__all__ = [
    "FORMATS", "SUFFIXES", "CondaPackage", "ImageSubject", "OsPackage", "SbomInput", "WheelPackage",
    "collect_files", "collect_os_files", "conda_owned", "cyclonedx_bytes", "cyclonedx_document", "os_packages",
    "output_path", "read_os_packages", "read_wheels", "render",
    "sbom_artifact", "spdx_bytes", "spdx_document", "wheels_from_files",
]
