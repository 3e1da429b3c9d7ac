"""A ``docker save`` tar (``docker-archive:``) as an image source.

The tar holds ``manifest.json`` (a list of ``{Config, RepoTags, Layers}``), the config JSON and one tar per layer,
usually uncompressed (skopeo and Docker write them so; a gzip or zstd layer is recognised by its magic bytes).
Each entry becomes an OCI manifest made here: the config as it is, each layer as it is (so its digest is the
sha256 of its bytes and, uncompressed, equals the config's ``diff_id``), with the media type its bytes have. A
layer named by its digest (``<hex>.tar``, ``blobs/sha256/<hex>``) is trusted for its name and verified as it
streams; any other is hashed once when the archive is opened. Nothing is extracted.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from oci_conda.errors import ImageError
from oci_conda.oci.archive import ArchiveSource
from oci_conda.oci.blobs import CHUNK, Opener, VerifyingReader, digest_bytes
from oci_conda.oci.image import (
    ANNOTATION_REF_NAME,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    canonical_json,
)
from oci_conda.oci.walk import MAX_JSON_BLOB

__all__ = ["DockerArchiveSource", "is_docker_archive"]

_NAMED_BY_DIGEST = re.compile(r"^(?:blobs/sha256/)?([0-9a-f]{64})(?:\.tar)?$")


def is_docker_archive(source: ArchiveSource) -> bool:
    """A tar with Docker's ``manifest.json`` and no OCI ``index.json``."""
    return "manifest.json" in source.members and "index.json" not in source.members


def _familiar(tag: str) -> str:
    """``docker.io/library/x:1`` -> ``x:1`` (RepoTags and what users type differ in these prefixes only)."""
    for prefix in ("docker.io/library/", "docker.io/", "localhost/"):
        if tag.startswith(prefix):
            return tag[len(prefix):]
    return tag


@dataclass(frozen=True)
class _Entry:
    manifest: bytes
    digest: str
    tags: tuple[str, ...]


class DockerArchiveSource:
    """Blobs of a ``docker save`` tar, read in place, plus the manifests made for its images."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.what = f"docker archive {self.path}"
        self.tar = ArchiveSource(self.path)
        if "manifest.json" not in self.tar.members:
            raise ImageError(f"{self.what}: no manifest.json (not a docker save / docker-archive tar)")
        self._small: dict[str, bytes] = {}
        self._big: dict[str, str] = {}  # digest -> member name
        doc = self._json("manifest.json")
        if not isinstance(doc, list) or not doc:
            raise ImageError(f"{self.what}: manifest.json lists no images")
        self.entries = [self._entry(i, item) for i, item in enumerate(doc)]

    def _read(self, name: str, limit: int | None = None) -> bytes:
        if name not in self.tar.members:
            raise ImageError(f"{self.what}: {name} is missing")
        size = self.tar.members[name][1]
        if limit is not None and size > limit:
            raise ImageError(f"{self.what}: {name} is too large")
        with self.tar.open_member(name) as f:
            return f.read()

    def _json(self, name: str) -> Any:
        try:
            return json.loads(self._read(name, MAX_JSON_BLOB))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ImageError(f"{self.what}: {name} is not valid JSON ({exc})") from None

    def _member_name(self, name: Any, i: int) -> str:
        if not isinstance(name, str) or not name:
            raise ImageError(f"{self.what}: manifest.json entry {i}: bad file name {name!r}")
        return posixpath.normpath(name.removeprefix("./"))

    def _layer(self, name: str) -> dict[str, Any]:
        if name not in self.tar.members:
            raise ImageError(f"{self.what}: layer {name} is missing")
        size = self.tar.members[name][1]
        with self.tar.open_member(name) as f:
            head = f.read(4)
        mt = (MEDIA_TYPE_LAYER_GZIP if head[:2] == b"\x1f\x8b" else
              MEDIA_TYPE_LAYER_ZSTD if head == b"\x28\xb5\x2f\xfd" else MEDIA_TYPE_LAYER_TAR)
        m = _NAMED_BY_DIGEST.match(name)
        if m:
            digest = f"sha256:{m.group(1)}"
        else:
            h = hashlib.sha256()
            with self.tar.open_member(name) as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            digest = f"sha256:{h.hexdigest()}"
        self._big[digest] = name
        return {"mediaType": mt, "digest": digest, "size": size}

    def _entry(self, i: int, item: Any) -> _Entry:
        if not isinstance(item, dict) or not isinstance(item.get("Layers"), list):
            raise ImageError(f"{self.what}: manifest.json entry {i} has no Layers list")
        config = self._read(self._member_name(item.get("Config"), i), MAX_JSON_BLOB)
        cdigest = digest_bytes(config)
        self._small[cdigest] = config
        layers = [self._layer(self._member_name(n, i)) for n in item["Layers"]]
        manifest = canonical_json({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
                                   "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": cdigest,
                                              "size": len(config)},
                                   "layers": layers})
        digest = digest_bytes(manifest)
        self._small[digest] = manifest
        tags = tuple(t for t in item.get("RepoTags") or () if isinstance(t, str))
        return _Entry(manifest, digest, tags)

    def index(self) -> dict[str, Any]:
        out = []
        for e in self.entries:
            d: dict[str, Any] = {"mediaType": MEDIA_TYPE_MANIFEST, "digest": e.digest, "size": len(e.manifest)}
            if e.tags:
                d["annotations"] = {ANNOTATION_REF_NAME: e.tags[0]}
            out.append(d)
        return {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": out}

    def top(self, ref: str | None) -> Descriptor:
        """The image ``ref`` names: one of its RepoTags (``name:tag``, Docker Hub prefixes optional) or ``@N``
        (the N-th image, as skopeo spells it); None when the archive holds one image."""
        chosen: _Entry | None = None
        if ref is None:
            if len(self.entries) != 1:
                tags = ", ".join(t for e in self.entries for t in e.tags) or "none tagged"
                raise ImageError(f"{self.what} holds {len(self.entries)} images; name one with :NAME:TAG or :@N "
                                 f"(tags: {tags})")
            chosen = self.entries[0]
        elif ref.startswith("@") and ref[1:].isdigit():
            n = int(ref[1:])
            if n >= len(self.entries):
                raise ImageError(f"{self.what}: no image @{n} (it holds {len(self.entries)})")
            chosen = self.entries[n]
        else:
            want = _familiar(ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest")
            chosen = next((e for e in self.entries if any(_familiar(t) == want for t in e.tags)), None)
            if chosen is None:
                tags = ", ".join(t for e in self.entries for t in e.tags) or "none tagged"
                raise ImageError(f"{self.what}: no image tagged {ref!r} (have: {tags})")
        return Descriptor(MEDIA_TYPE_MANIFEST, chosen.digest, len(chosen.manifest))

    def fetch(self, desc: Descriptor) -> bytes:
        small = self._small.get(desc.digest)
        if small is None:
            raise ImageError(f"{self.what}: no blob {desc.digest}")
        return small

    def opener(self, desc: Descriptor) -> Opener:
        name = self._big.get(desc.digest)
        if name is None:
            data = self.fetch(desc)
            return lambda: io.BytesIO(data)
        what = f"{self.what}: layer {name}"

        def _open() -> BinaryIO:
            return VerifyingReader(self.tar.open_member(name), desc.digest, desc.size, what)  # type: ignore[return-value]

        return _open

