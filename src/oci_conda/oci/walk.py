"""The one walk over indexes and manifests, for every source (layout dir, archive, registry, images in memory).

A *source* is as small as go-containerregistry's ``layout`` image: it hands out a small blob's bytes (``fetch``,
unverified: the walk checks them) and an opener for a big one (``opener``). Everything else is derived here, once:
reading a manifest or index with its digest checked, telling the two apart, picking an index.json entry by ref
name or an index entry by platform, walking every manifest an index reaches (children first, as a push needs them),
and turning the platform's manifest into an :class:`~oci_conda.oci.image.Image`.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from oci_conda.cache import atomic_write, cache_dir
from oci_conda.errors import ImageError
from oci_conda.limits import loads_json
from oci_conda.oci.blobs import Opener, check_digest, verify_bytes
from oci_conda.oci.image import (
    ANNOTATION_REF_NAME,
    DOCKER_CONFIG,
    DOCKER_TO_OCI_LAYER,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    Image,
    Layer,
    Platform,
)

MAX_JSON_BLOB = 16 << 20  # manifests, indexes and configs are small; refuse absurd ones before reading them
MAX_DEPTH = 8  # indexes may nest; a few levels is plenty
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"


class BlobSource(Protocol):
    """Where a walk reads blobs: small ones as bytes (the walk verifies them), big ones as openers."""

    def fetch(self, desc: Descriptor) -> bytes: ...

    def opener(self, desc: Descriptor) -> Opener: ...


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from ``data``, or an ImageError naming ``what``."""
    try:
        doc = loads_json(data, what, cap=MAX_JSON_BLOB)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImageError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: not a JSON object")
    return doc


def fetch_verified(source: BlobSource, desc: Descriptor, what: str) -> bytes:
    """A small blob's bytes, checked against its descriptor (size capped before reading)."""
    if desc.size > MAX_JSON_BLOB:
        raise ImageError(f"{what}: {desc.size} bytes is too large for a manifest or config")
    return verify_bytes(source.fetch(desc), desc.digest, desc.size, what)


def fetch_json(source: BlobSource, desc: Descriptor, what: str) -> dict[str, Any]:
    """A manifest, index or config document, its digest checked."""
    return load_json(fetch_verified(source, desc, what), what)


def media_type_of(doc: dict[str, Any], desc: Descriptor) -> str:
    """A manifest's or index's media type: its own field, else the descriptor's, else told apart by shape."""
    mt = doc.get("mediaType") or desc.media_type
    if mt not in MANIFEST_TYPES + INDEX_TYPES:
        mt = MEDIA_TYPE_INDEX if "manifests" in doc else MEDIA_TYPE_MANIFEST if "layers" in doc else mt
    return str(mt)


@dataclass(frozen=True)
class Node:
    """One index or manifest met on a walk: its descriptor (media type settled), exact bytes and document."""

    descriptor: Descriptor
    data: bytes
    doc: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.descriptor.media_type in INDEX_TYPES

    def entries(self, what: str) -> list[Descriptor]:
        """An index's entries (every one, artifacts included)."""
        return [Descriptor.from_json(m, f"{what}: index entry") for m in self.doc.get("manifests") or []]

    def config(self, what: str) -> Descriptor:
        return Descriptor.from_json(self.doc.get("config"), f"{what}: config descriptor")

    def layers(self, what: str) -> list[Descriptor]:
        return [Descriptor.from_json(m, f"{what}: layer {i}") for i, m in enumerate(self.doc.get("layers") or [])]


def read_node(source: BlobSource, desc: Descriptor, what: str) -> Node:
    """The index or manifest ``desc`` names, verified; anything else is an ImageError."""
    data = fetch_verified(source, desc, what)
    doc = load_json(data, what)
    mt = media_type_of(doc, desc)
    if mt not in MANIFEST_TYPES + INDEX_TYPES:
        raise ImageError(f"{what}: unsupported manifest media type {mt!r}")
    return Node(Descriptor(mt, desc.digest, desc.size, desc.annotations, desc.platform), data, doc)


def select_manifest(descriptors: list[Descriptor], platform: Platform, what: str) -> Descriptor:
    """The index entry for ``platform``: an exact variant match first, then one without a variant."""
    candidates = [d for d in descriptors if d.platform is not None and platform.matches(d.platform)]
    exact = [d for d in candidates if d.platform is not None and d.platform.variant == platform.variant]
    chosen = (exact or candidates)[:1]
    if not chosen:
        have = ", ".join(sorted({str(d.platform) for d in descriptors if d.platform})) or "none declared"
        raise ImageError(f"{what} has no image for platform {platform} (it has: {have})")
    return chosen[0]


def select_ref(index: dict[str, Any], ref: str | None, what: str) -> Descriptor:
    """The index.json entry named ``ref`` (its ref.name annotation), or the only entry when ``ref`` is None."""
    entries = [Descriptor.from_json(m, f"{what}: index.json entry") for m in index.get("manifests") or []]
    entries = [e for e in entries if not e.artifact_type]  # artifacts attached to an image (SBOMs) are not images
    if not entries:
        raise ImageError(f"{what}: index.json lists no images")
    names = sorted({(e.annotations or {}).get(ANNOTATION_REF_NAME, "") for e in entries} - {""})
    if ref is None:
        if len(entries) == 1:
            return entries[0]
        raise ImageError(f"{what} holds {len(entries)} images; name one with :REF (one of: "
                         f"{', '.join(names) or 'none named'})")
    for e in entries:
        if (e.annotations or {}).get(ANNOTATION_REF_NAME) == ref:
            return e
    raise ImageError(f"{what}: no image named {ref!r} (have: {', '.join(names) or 'none named'})")


def _is_manifest_like(desc: Descriptor) -> bool:
    return desc.media_type in MANIFEST_TYPES + INDEX_TYPES


def walk(source: BlobSource, top: Descriptor, what: str, platform: Platform | None = None) -> Iterator[Node]:
    """Every index and manifest ``top`` reaches, children before their index, each once.

    With ``platform``, an index is followed only into the entry for that platform, so the walk is the path from
    ``top`` down to that platform's manifest (the manifest comes first).
    """
    seen: set[str] = set()

    def visit(desc: Descriptor, depth: int) -> Iterator[Node]:
        if depth > MAX_DEPTH:
            raise ImageError(f"{what}: image indexes nested too deeply")
        if desc.digest in seen:
            return
        seen.add(desc.digest)
        node = read_node(source, desc, what)
        if node.is_index:
            children = [e for e in node.entries(what) if _is_manifest_like(e)]
            if platform is not None:
                children = [select_manifest(children, platform, what)]
            for child in children:
                yield from visit(child, depth + 1)
        yield node

    yield from visit(top, 0)


def resolve(source: BlobSource, top: Descriptor, platform: Platform, what: str) -> Node:
    """The manifest for ``platform`` that ``top`` (an index or a manifest) leads to."""
    return next(walk(source, top, what, platform))


def image_from_manifest(source: BlobSource, node: Node, platform: Platform, what: str,
                        origin: tuple[str, str] | None = None) -> Image:
    """The image a manifest describes: config read and checked, layers as openers (docker types renamed to OCI)."""
    cdesc = node.config(what)
    if cdesc.media_type not in (MEDIA_TYPE_CONFIG, DOCKER_CONFIG):
        raise ImageError(f"{what}: not a container image (config media type {cdesc.media_type!r})")
    config = fetch_json(source, cdesc, f"{what}: config")
    got = Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant") or None)
    if not platform.matches(got):
        raise ImageError(f"{what} is a {got} image, not {platform}")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    raw_layers = node.doc.get("layers")
    if not isinstance(raw_layers, list) or not isinstance(diff_ids, list) or len(diff_ids) != len(raw_layers):
        raise ImageError(f"{what}: the config's rootfs.diff_ids do not match the manifest's layers")
    layers = []
    for i, (ldesc, diff_id) in enumerate(zip(node.layers(what), diff_ids)):
        check_digest(diff_id)
        mt = DOCKER_TO_OCI_LAYER.get(ldesc.media_type, ldesc.media_type)
        if mt not in LAYER_TYPES and not mt.startswith("application/vnd.oci.image.layer.nondistributable."):
            raise ImageError(f"{what}: layer {i} has unsupported media type {ldesc.media_type!r}")
        ldesc = Descriptor(mt, ldesc.digest, ldesc.size, ldesc.annotations)
        layers.append(Layer(ldesc, diff_id, source.opener(ldesc), origin))
    return Image(config, tuple(layers), {ANNOTATION_BASE_DIGEST: node.descriptor.digest})


def resolve_image(source: BlobSource, top: Descriptor, platform: Platform, what: str,
                  origin: tuple[str, str] | None = None) -> Image:
    """Follow ``top`` (an index or a manifest) down to the image for ``platform``; all digests are checked."""
    return image_from_manifest(source, resolve(source, top, platform, what), platform, what, origin)


# ---------------------------------------------------------------------------------------------------------------
# diff_ids: a base whose config misnames its layers must not pass through (umoci and others reject the result)

DIFF_ID_MEMO = "diffids"  # cache dir: <layer digest hex> -> the diff_id that layer was verified to have


def _uncompressed_digest(layer: Layer, what: str) -> str:
    """sha256 of the layer's tar, read through its (verifying) opener and decompressed as it streams."""
    import zstandard

    mt = layer.descriptor.media_type
    h = hashlib.sha256()
    with layer.open() as f:
        if mt == MEDIA_TYPE_LAYER_TAR:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        elif mt == MEDIA_TYPE_LAYER_GZIP:
            z = zlib.decompressobj(wbits=47)
            while chunk := f.read(1 << 20):
                h.update(z.decompress(chunk))
                while z.unused_data and z.eof:  # concatenated gzip members
                    rest = z.unused_data
                    z = zlib.decompressobj(wbits=47)
                    h.update(z.decompress(rest))
            h.update(z.flush())
        elif mt == MEDIA_TYPE_LAYER_ZSTD:
            with zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True) as r:
                while chunk := r.read(1 << 20):
                    h.update(chunk)
        else:
            return ""
    return "sha256:" + h.hexdigest()


def verify_diff_ids(image: Image, what: str) -> None:
    """Check that each layer decompresses to the diff_id the config gives it; ImageError naming the layer if not.

    Done once per layer blob ever: the result is remembered in the cache under the (content-addressed) layer digest,
    so later builds compare two strings. Nondistributable layers (not ours to read) are left as they are."""
    import zstandard

    memo = cache_dir(DIFF_ID_MEMO)
    for i, layer in enumerate(image.layers):
        algo, _, hexpart = layer.descriptor.digest.partition(":")
        if algo != "sha256" or not layer.diff_id.startswith("sha256:"):
            continue
        note = memo / hexpart
        try:
            known = note.read_text()[:200]
        except (OSError, UnicodeDecodeError):
            known = ""
        if not known:
            try:
                known = _uncompressed_digest(layer, f"{what}: layer {i}")
            except (zlib.error, zstandard.ZstdError, EOFError) as exc:
                raise ImageError(f"{what}: layer {i} ({layer.descriptor.digest}) does not decompress "
                                 f"({type(exc).__name__})") from None
            if not known:
                continue
            with atomic_write(note, fsync=False) as f:
                f.write(known.encode())
        if known != layer.diff_id:
            raise ImageError(f"{what}: the config's diff_id for layer {i} is {layer.diff_id}, but the layer "
                             f"{layer.descriptor.digest} decompresses to {known}")
