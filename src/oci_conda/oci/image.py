"""The image model: an image is a config plus layers, each layer a descriptor you can open.

Images are values: ``append_layer`` and ``set_config`` return new images and leave their argument alone, so a base
image can be read once and mutated for several platforms or tags. Serialisation (config, manifest, index) is
canonical JSON, so the same image always has the same digests.
"""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Callable

from oci_conda.errors import ImageError
from oci_conda.oci.blobs import check_digest, digest_bytes

# OCI image spec v1.1
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Docker image manifest v2 schema 2 (read only; layers are converted to their OCI equivalents, bytes unchanged)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (MEDIA_TYPE_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_TYPE_INDEX, DOCKER_MANIFEST_LIST)
LAYER_TYPES = (MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD)
# a docker layer's bytes are exactly an OCI layer's; only the name differs
DOCKER_TO_OCI_LAYER = {
    DOCKER_LAYER_GZIP: MEDIA_TYPE_LAYER_GZIP,
    DOCKER_LAYER_TAR: MEDIA_TYPE_LAYER_TAR,
    DOCKER_FOREIGN_LAYER_GZIP: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

Opener = Callable[[], BinaryIO]


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON document we digest: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def to_json(self) -> dict[str, str]:
        d = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Platform":
        return cls(os=d.get("os", ""), architecture=d.get("architecture", ""), variant=d.get("variant") or None)

    @classmethod
    def parse(cls, s: str) -> "Platform":
        """``linux/arm64/v8`` form, as docker's ``--platform``."""
        parts = s.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ImageError(f"invalid platform {s!r}; expected OS/ARCH[/VARIANT]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, other: "Platform") -> bool:
        """Whether an image for ``other`` serves a request for ``self`` (a missing variant matches any)."""
        if self.os != other.os or self.architecture != other.architecture:
            return False
        return not self.variant or not other.variant or self.variant == other.variant


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None  # OCI 1.1: what an artifact manifest carries (SBOM, signature, ...)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_json()
        return d

    @classmethod
    def from_json(cls, d: Any, what: str = "descriptor") -> "Descriptor":
        if not isinstance(d, dict):
            raise ImageError(f"{what}: not a JSON object")
        try:
            media_type, digest, size = d["mediaType"], d["digest"], d["size"]
        except KeyError as exc:
            raise ImageError(f"{what}: missing {exc.args[0]!r}") from None
        if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{what}: invalid mediaType or size")
        check_digest(digest)
        annotations = d.get("annotations") or None
        platform = Platform.from_json(d["platform"]) if isinstance(d.get("platform"), dict) else None
        artifact_type = d["artifactType"] if isinstance(d.get("artifactType"), str) else None
        return cls(media_type, digest, size, annotations, platform, artifact_type)


@dataclass(frozen=True)
class Layer:
    """A layer blob: how the manifest names it, what the config calls it, and how to read its bytes."""

    descriptor: Descriptor
    diff_id: str
    opener: Opener = field(compare=False, repr=False)
    # (registry host, repository) the blob was read from, so a push to that registry can mount it instead of
    # uploading it (go-containerregistry's MountableLayer); None for a blob that lives only here
    origin: tuple[str, str] | None = field(default=None, compare=False)

    def open(self) -> BinaryIO:
        return self.opener()


@dataclass(frozen=True)
class Image:
    """An OCI image config (a JSON dict, never mutated in place) and its layers in order."""

    config: dict[str, Any]
    layers: tuple[Layer, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)  # for the manifest (e.g. base image digest)

    @property
    def platform(self) -> Platform:
        return Platform(self.config.get("os", "linux"), self.config.get("architecture", "amd64"),
                        self.config.get("variant") or None)


def empty_image(platform: Platform) -> Image:
    """``scratch``: no layers, an empty run config."""
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    if platform.variant:
        config["variant"] = platform.variant
    return Image(config, ())


def append_layer(image: Image, layer_desc: Descriptor, diff_id: str, opener: Opener, history: dict[str, Any]) -> Image:
    """A new image with one more layer on top (config rootfs and history kept in step)."""
    check_digest(diff_id)
    config = copy.deepcopy(image.config)
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("type", "layers")
    rootfs.setdefault("diff_ids", []).append(diff_id)
    if history is not None:
        h = {k: v for k, v in history.items() if v is not None}
        h.pop("empty_layer", None)
        config.setdefault("history", []).append(h)
    return Image(config, (*image.layers, Layer(layer_desc, diff_id, opener)), image.annotations)


def _env_split(item: str) -> tuple[str, str | None]:
    name, sep, value = item.partition("=")
    return name, (value if sep else None)


def merge_env(base_env: list[str], ours: list[str]) -> list[str]:
    """Base env with ours on top: PATH is joined (ours first, then the base's, no duplicates); others are replaced."""
    result: dict[str, str | None] = {}
    for item in base_env:
        name, value = _env_split(item)
        result[name] = value
    for item in ours:
        name, value = _env_split(item)
        if name == "PATH" and value is not None:
            parts: list[str] = []
            for p in value.split(":") + (result.get("PATH") or "").split(":"):
                if p and p not in parts and p not in ("$PATH", "${PATH}"):
                    parts.append(p)
            value = ":".join(parts)
        result[name] = value
    return [name if value is None else f"{name}={value}" for name, value in result.items()]


def format_created(created: int | str | datetime.datetime) -> str:
    """RFC 3339 UTC timestamp (``2024-01-02T03:04:05Z``) from epoch seconds, a datetime, or an RFC 3339 string."""
    if isinstance(created, str):
        return created
    if isinstance(created, datetime.datetime):
        dt = created.astimezone(datetime.timezone.utc) if created.tzinfo else created
    else:
        dt = datetime.datetime.fromtimestamp(int(created), datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_config(
    image: Image,
    env: list[str] | None = None,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    labels: dict[str, str] | None = None,
    created: int | str | datetime.datetime | None = None,
) -> Image:
    """A new image whose run config is the base's with ours on top (Docker's rules: a new Entrypoint drops Cmd)."""
    config = copy.deepcopy(image.config)
    run = config.get("config") or {}
    config["config"] = run
    if env is not None:
        run["Env"] = merge_env(run.get("Env") or [], env)
    if entrypoint is not None:
        run["Entrypoint"] = list(entrypoint)
        run.pop("Cmd", None)
    if cmd is not None:
        run["Cmd"] = list(cmd)
    if workdir is not None:
        run["WorkingDir"] = workdir
    if user is not None:
        run["User"] = user
    if labels is not None:
        merged = dict(run.get("Labels") or {})
        merged.update(labels)
        run["Labels"] = merged
    if created is not None:
        config["created"] = format_created(created)
    return Image(config, image.layers, image.annotations)


def set_platform(image: Image, platform: Platform) -> Image:
    """The same image claiming another platform (used for scratch images built per platform)."""
    config = copy.deepcopy(image.config)
    config["os"], config["architecture"] = platform.os, platform.architecture
    config.pop("variant", None)
    if platform.variant:
        config["variant"] = platform.variant
    return Image(config, image.layers, image.annotations)


def config_bytes(image: Image) -> bytes:
    diff_ids = (image.config.get("rootfs") or {}).get("diff_ids") or []
    if list(diff_ids) != [layer.diff_id for layer in image.layers]:
        raise ImageError("image config rootfs.diff_ids does not match its layers")
    return canonical_json(image.config)


def config_descriptor(image: Image) -> Descriptor:
    data = config_bytes(image)
    return Descriptor(MEDIA_TYPE_CONFIG, digest_bytes(data), len(data))


def manifest_bytes(image: Image, annotations: dict[str, str] | None = None) -> bytes:
    """The OCI image manifest (schemaVersion 2) of ``image``; ``annotations`` add to the image's own."""
    annotations = {**image.annotations, **(annotations or {})}
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config_descriptor(image).to_json(),
        "layers": [layer.descriptor.to_json() for layer in image.layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return canonical_json(manifest)


def manifest_descriptor(
    image: Image, annotations: dict[str, str] | None = None, desc_annotations: dict[str, str] | None = None
) -> Descriptor:
    """How an index points at ``image``'s manifest: digest, size and platform."""
    data = manifest_bytes(image, annotations)
    return Descriptor(MEDIA_TYPE_MANIFEST, digest_bytes(data), len(data), desc_annotations or None, image.platform)


def index_bytes(manifest_descriptors: list[Descriptor], annotations: dict[str, str] | None = None) -> bytes:
    """An OCI image index (schemaVersion 2) over the given manifests (or nested indexes)."""
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [d.to_json() for d in manifest_descriptors],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return canonical_json(index)


def with_descriptor(layer: Layer, **changes: Any) -> Layer:
    """A copy of ``layer`` with descriptor fields replaced (e.g. a docker media type renamed to OCI)."""
    return Layer(replace(layer.descriptor, **changes), layer.diff_id, layer.opener, layer.origin)


def set_annotations(image: Image, annotations: dict[str, str]) -> Image:
    """A new image whose manifest will carry ``annotations`` on top of the image's current ones."""
    return Image(image.config, image.layers, {**image.annotations, **annotations})
