"""OCI 1.1 artifacts that refer to an image (SBOMs, signatures), and the referrers index that lists them.

An artifact is an image manifest whose ``artifactType`` says what it carries, whose config is the empty descriptor
(``application/vnd.oci.empty.v1+json``, the two bytes ``{}``), whose one layer is the document, and whose ``subject``
is the image manifest's descriptor. Registries with the referrers API index it on push; for those without, the
client keeps an image index under the tag ``<alg>-<encoded>`` of the subject digest (distribution spec v1.1,
"referrers tag schema"). Everything here is bytes and plain descriptor dicts, so a layout dir, an archive or a
registry push can write them the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ImageError
from .oci.image import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, canonical_json

MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
ANNOTATION_CREATED = "org.opencontainers.image.created"

Descriptor = dict[str, Any]  # mediaType, digest, size (+ artifactType, annotations, platform)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, annotations: Mapping[str, str] | None = None,
               artifact_type: str | None = None) -> Descriptor:
    """The descriptor of ``data`` as an OCI document lists it."""
    d: Descriptor = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    if artifact_type:
        d["artifactType"] = artifact_type
    if annotations:
        d["annotations"] = dict(annotations)
    return d


EMPTY_DESCRIPTOR: Descriptor = {**descriptor(MEDIA_TYPE_EMPTY, EMPTY_JSON), "data": "e30="}


@dataclass(frozen=True)
class Artifact:
    """A manifest ready to store: its bytes, its descriptor (as an index or the referrers API lists it, with
    ``artifactType`` and the manifest's annotations) and every blob it names, by digest."""

    manifest: bytes
    descriptor: Descriptor
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.descriptor["digest"]


def subject_descriptor(manifest: bytes, media_type: str = MEDIA_TYPE_MANIFEST) -> Descriptor:
    """The ``subject`` for artifacts about the image whose manifest bytes are ``manifest``."""
    return descriptor(media_type, manifest)


def artifact(artifact_type: str, document: bytes, subject: Descriptor, document_media_type: str | None = None,
             annotations: Mapping[str, str] | None = None) -> Artifact:
    """An OCI 1.1 artifact manifest carrying ``document`` as its one layer and pointing at ``subject``.
    ``annotations`` (e.g. ``org.opencontainers.image.created`` from the build epoch) go on the manifest and so
    into the referrers listing."""
    layer = descriptor(document_media_type or artifact_type, document)
    subj = {k: subject[k] for k in ("mediaType", "digest", "size")}
    man: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY_DESCRIPTOR,
        "layers": [layer],
        "subject": subj,
    }
    if annotations:
        man["annotations"] = dict(annotations)
    raw = canonical_json(man)
    return Artifact(raw, descriptor(MEDIA_TYPE_MANIFEST, raw, annotations, artifact_type),
                    {EMPTY_DESCRIPTOR["digest"]: EMPTY_JSON, layer["digest"]: document})


def referrers_tag(digest: str) -> str:
    """The fallback tag listing the referrers of ``digest``: ``sha256-<hex>`` for a sha256 digest (algorithm cut
    to 32 and encoded part to 64 characters, anything a tag may not hold replaced with ``-``)."""
    alg, _, enc = digest.partition(":")
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"{alg[:32]}-{enc[:64]}")


def referrers_index(descriptors: Sequence[Descriptor]) -> bytes:
    """The image index the referrers API returns (and the fallback tag holds) for these artifact descriptors;
    one entry per digest, first one wins, order kept."""
    seen: set[str] = set()
    manifests = []
    for d in descriptors:
        if d["digest"] not in seen:
            seen.add(d["digest"])
            manifests.append(dict(d))
    return canonical_json({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": manifests})


def add_referrer(existing: bytes | None, new: Descriptor) -> bytes:
    """The fallback-tag index with ``new`` appended (no duplicate), starting from ``existing`` (None on 404).
    Anything under that tag other than an image index is refused, as the distribution spec asks."""
    old: list[Descriptor] = []
    if existing:
        try:
            doc = json.loads(existing)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("mediaType") != MEDIA_TYPE_INDEX or \
                not isinstance(doc.get("manifests"), list):
            raise ImageError(f"the referrers tag for {new.get('digest')} holds something other than an image index")
        old = doc["manifests"]
    return referrers_index([*old, new])
