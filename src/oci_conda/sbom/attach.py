"""``build --sbom``: one SBOM per format and platform, attached to its image and written beside the output.

Each document is made from the built image's own layers (``image.py``) and becomes an OCI 1.1 artifact whose
``subject`` is that platform's image manifest, exactly as the archive, layout or registry holds it. The same
artifacts go into the archive/layout (extra index.json entries) and to a registry (referrers API, or the
``sha256-<hex>`` fallback tag), so every destination lists the same documents with the same digests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import atomic_write
from ..errors import SpecError
from ..oci.artifact import Artifact, subject_descriptor
from ..oci.image import Image, manifest_bytes
from ..oci.registry.client import RegistryClient, RegistryOptions
from ..oci.registry.reference import parse_reference
from ..oci.registry.referrers import attach
from . import FORMATS, output_path, render, sbom_artifact
from .image import image_input
from .model import ImageSubject

ALIASES = {"spdx": "spdx", "cyclonedx": "cyclonedx", "cdx": "cyclonedx"}


def parse_formats(text: str) -> tuple[str, ...]:
    """``spdx,cyclonedx`` (``cdx`` for short) as format names, in the order given, each once."""
    out: list[str] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if not word:
            continue
        if word not in ALIASES:
            raise SpecError(f"--sbom: unknown format {word!r} (use spdx, cyclonedx or both: spdx,cyclonedx)")
        if ALIASES[word] not in out:
            out.append(ALIASES[word])
    if not out:
        raise SpecError("--sbom: name a format (spdx, cyclonedx or spdx,cyclonedx)")
    return tuple(out)


@dataclass(frozen=True)
class Sbom:
    """One document about one platform's image, and the artifact that attaches it."""

    fmt: str
    platform: str
    subject: str  # the image manifest's digest
    document: bytes
    artifact: Artifact

    def to_json(self) -> dict[str, Any]:
        return {"format": self.fmt, "platform": self.platform, "subject": self.subject, "size": len(self.document),
                "artifact": self.artifact.digest, "media_type": FORMATS[self.fmt][0]}


def split_name(name: str) -> tuple[str, str | None]:
    """``host/repo:tag`` or ``name:tag`` -> (repository name, tag)."""
    last = name.rsplit("/", 1)[-1]
    if ":" in last and "@" not in name:
        repo, _, tag = name.rpartition(":")
        return repo, tag
    return name.split("@", 1)[0], None


def image_sboms(images: Sequence[Image], created: Sequence[int], name: str, formats: Sequence[str],
                annotations: dict[str, str] | None = None) -> list[Sbom]:
    """The SBOMs of ``images`` (one per platform; ``created`` the build epoch of each), named ``name``
    (``REPO[:TAG]``). ``annotations`` are those the manifests are written with, so the subject is exact."""
    repo, tag = split_name(name)
    out = []
    for img, epoch in zip(images, created):
        manifest = manifest_bytes(img, annotations)
        subject_art = subject_descriptor(manifest)
        subject = ImageSubject(repo, subject_art.digest, str(img.platform), tag)
        inp = image_input(img, subject, epoch)
        for fmt in formats:
            doc = render(fmt, inp)
            out.append(Sbom(fmt, str(img.platform), subject.digest, doc,
                            sbom_artifact(fmt, doc, subject_art, epoch)))
    return out


def write_beside(output: str | os.PathLike[str], sboms: Sequence[Sbom]) -> list[Path]:
    """``OUT.spdx.json`` / ``OUT.cdx.json`` beside the output; named by platform when there are several."""
    multi = len({s.platform for s in sboms}) > 1
    paths = []
    for s in sboms:
        path = output_path(output, s.fmt, s.platform if multi else None)
        with atomic_write(path) as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(s.document)
        paths.append(path)
    return paths


def push_sboms(sboms: Sequence[Sbom], ref: str, options: RegistryOptions) -> list[str]:
    """Attach each SBOM to its image in the repository ``ref`` names; returns how each was indexed (``api`` or
    the fallback tag)."""
    r = parse_reference(ref)
    client = RegistryClient(r.host, options)
    return [attach(client, r.repository, s.artifact, s.subject) for s in sboms]
