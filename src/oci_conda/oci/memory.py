"""Images built in memory, as a blob source: the one manifest/index plan every sink writes from.

``plan`` turns ``(image, tag)`` pairs into their configs, manifests and (for several platforms under one tag) an
index, all as canonical bytes, plus the layers by digest. A layout directory, an OCI archive and a registry push
all read that plan through the same :class:`~oci_conda.oci.walk.BlobSource` interface as any other source, so
"written to an archive" and "pushed to a registry" are the same images with the same digests.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import BinaryIO

from oci_conda.errors import ImageError
from oci_conda.oci.blobs import Opener, VerifyingReader, digest_bytes
from oci_conda.oci.image import (
    ANNOTATION_REF_NAME,
    MEDIA_TYPE_INDEX,
    Descriptor,
    Image,
    Layer,
    config_bytes,
    index_bytes,
    manifest_bytes,
    manifest_descriptor,
)


class MemorySource:
    """A blob source over planned images: configs, manifests and indexes as bytes, layers by their openers."""

    def __init__(self) -> None:
        self.small: dict[str, bytes] = {}
        self.layers: dict[str, Layer] = {}

    def add_bytes(self, data: bytes) -> str:
        d = digest_bytes(data)
        self.small[d] = data
        return d

    def fetch(self, desc: Descriptor) -> bytes:
        if desc.digest in self.small:
            return self.small[desc.digest]
        with self.opener(desc)() as f:
            return f.read()

    def opener(self, desc: Descriptor) -> Opener:
        if desc.digest in self.small:
            data = self.small[desc.digest]
            return lambda: io.BytesIO(data)
        try:
            layer = self.layers[desc.digest]
        except KeyError:
            raise ImageError(f"blob {desc.digest} is not part of the images being written") from None
        d = layer.descriptor

        def _open() -> BinaryIO:
            return VerifyingReader(layer.open(), d.digest, d.size, f"layer {d.digest}")  # type: ignore[return-value]

        return _open

    def origins(self) -> dict[str, tuple[str, str]]:
        """digest -> (registry host, repository) of layers that came from a registry (mountable there)."""
        return {d: layer.origin for d, layer in self.layers.items() if layer.origin is not None}


@dataclass
class Group:
    """The images under one tag and the descriptor that names them (a manifest, or an index of several)."""

    tag: str | None
    images: list[Image]
    top: Descriptor


@dataclass
class Plan:
    source: MemorySource = field(default_factory=MemorySource)
    groups: list[Group] = field(default_factory=list)
    # artifact manifests about the images (SBOMs): extra index.json entries without a ref name, so a tool that
    # picks an image by name still finds only the image
    referrers: list[Descriptor] = field(default_factory=list)

    @property
    def tops(self) -> list[Descriptor]:
        return [g.top for g in self.groups]

    @property
    def index_entries(self) -> list[Descriptor]:
        """What index.json lists: the images, then the artifacts attached to them."""
        return self.tops + self.referrers

    def attach(self, manifest: bytes, descriptor: Descriptor, blobs: dict[str, bytes]) -> None:
        """Add an artifact manifest (and its small blobs) to what is written."""
        for data in blobs.values():
            self.source.add_bytes(data)
        self.source.add_bytes(manifest)
        if descriptor.digest not in {d.digest for d in self.referrers}:
            self.referrers.append(descriptor)


def plan(images: list[tuple[Image, str | None]], index_annotations: dict[str, str] | None = None,
         name_tags: bool = True) -> Plan:
    """Configs, manifests and per-tag indexes of ``images`` (pairs of image and tag), ready to be walked.

    Images sharing a tag become one multi-platform index (carrying ``index_annotations``); with ``name_tags`` each
    top descriptor carries the tag as its ``org.opencontainers.image.ref.name`` annotation (as index.json wants).
    """
    if not images:
        raise ImageError("no images to write")
    by_tag: dict[str | None, list[Image]] = {}
    for image, tag in images:
        by_tag.setdefault(tag, []).append(image)
    out = Plan()
    src = out.source
    for tag, group in by_tag.items():
        descs = []
        for image in group:
            src.add_bytes(config_bytes(image))
            src.add_bytes(manifest_bytes(image))
            for layer in image.layers:
                src.layers.setdefault(layer.descriptor.digest, layer)
            descs.append(manifest_descriptor(image))
        plats = [str(d.platform) for d in descs]
        if len(set(plats)) != len(plats):
            raise ImageError(f"image {tag or '(untagged)'}: two images for the same platform")
        ann = {ANNOTATION_REF_NAME: tag} if tag and name_tags else None
        if len(descs) == 1:
            top = Descriptor(descs[0].media_type, descs[0].digest, descs[0].size, ann, descs[0].platform)
        else:
            idx = index_bytes(descs, index_annotations)
            top = Descriptor(MEDIA_TYPE_INDEX, src.add_bytes(idx), len(idx), ann)
        out.groups.append(Group(tag, group, top))
    return out
