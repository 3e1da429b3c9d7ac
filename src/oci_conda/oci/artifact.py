"""OCI 1.1 artifacts: manifests that carry a document about another manifest (an SBOM, a signature).

An artifact is an image manifest whose ``artifactType`` says what it carries, whose config is the empty descriptor
(``application/vnd.oci.empty.v1+json``, the two bytes ``{}``), whose one layer is the document, and whose ``subject``
is the descriptor of the manifest it is about. The same bytes go into an OCI layout, an OCI archive (as extra
index.json entries) or a registry (found through the referrers API or the fallback tag, ``registry/referrers.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oci_conda.errors import ImageError
from oci_conda.oci.blobs import digest_bytes
from oci_conda.oci.image import MEDIA_TYPE_MANIFEST, Descriptor, canonical_json

MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
ANNOTATION_CREATED = "org.opencontainers.image.created"


def descriptor_of(media_type: str, data: bytes, annotations: Mapping[str, str] | None = None,
                  artifact_type: str | None = None) -> Descriptor:
    """The descriptor of ``data`` as an OCI document lists it."""
    return Descriptor(media_type, digest_bytes(data), len(data), dict(annotations) if annotations else None, None,
                      artifact_type)


EMPTY_DESCRIPTOR = descriptor_of(MEDIA_TYPE_EMPTY, EMPTY_JSON)


@dataclass(frozen=True)
class Artifact:
    """A manifest ready to store: its bytes, its descriptor (as an index or the referrers API lists it, with
    ``artifactType`` and the manifest's annotations) and every blob it names, by digest."""

    manifest: bytes
    descriptor: Descriptor
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.descriptor.digest


def subject_descriptor(manifest: bytes, media_type: str = MEDIA_TYPE_MANIFEST) -> Descriptor:
    """The ``subject`` for artifacts about the manifest (or index) whose bytes are ``manifest``."""
    return descriptor_of(media_type, manifest)


def artifact(artifact_type: str, document: bytes, subject: Descriptor, document_media_type: str | None = None,
             annotations: Mapping[str, str] | None = None) -> Artifact:
    """An artifact manifest carrying ``document`` as its one layer and pointing at ``subject``. ``annotations``
    (e.g. ``org.opencontainers.image.created`` from the build epoch) go on the manifest and so into the referrers
    listing."""
    layer = descriptor_of(document_media_type or artifact_type, document)
    subj = Descriptor(subject.media_type, subject.digest, subject.size)
    man: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": artifact_type,
        "config": {**EMPTY_DESCRIPTOR.to_json(), "data": "e30="},
        "layers": [layer.to_json()],
        "subject": subj.to_json(),
    }
    if annotations:
        man["annotations"] = dict(annotations)
    raw = canonical_json(man)
    return Artifact(raw, descriptor_of(MEDIA_TYPE_MANIFEST, raw, annotations, artifact_type),
                    {EMPTY_DESCRIPTOR.digest: EMPTY_JSON, layer.digest: document})


@dataclass(frozen=True)
class ArtifactInfo:
    """What an artifact manifest says about itself: its type, subject and the document layer(s)."""

    artifact_type: str
    subject: Descriptor | None
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]


def read_artifact(manifest: bytes, what: str) -> ArtifactInfo:
    """The artifact fields of a manifest (an image manifest with ``artifactType`` or a typed config)."""
    try:
        doc = json.loads(manifest)
    except ValueError:
        raise ImageError(f"{what}: not JSON") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: not a JSON object")
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    kind = doc.get("artifactType") or config.get("mediaType") or ""
    subject = Descriptor.from_json(doc["subject"], f"{what}: subject") if isinstance(doc.get("subject"), dict) \
        else None
    layers = tuple(Descriptor.from_json(x, f"{what}: layer") for x in doc.get("layers") or [] if isinstance(x, dict))
    ann = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
    return ArtifactInfo(str(kind), subject, layers, {str(k): str(v) for k, v in ann.items()})
