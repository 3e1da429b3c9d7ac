"""Where an image comes from, spelled as skopeo users spell it: ``scratch``, ``oci:DIR[:REF]``,
``oci-archive:PATH[:REF]``, ``dir:DIR``, ``docker-archive:PATH[:NAME:TAG]`` or a registry (``[docker://]HOST/REPO``).

Every end yields the same :class:`~oci_conda.oci.image.Image` through the same walk, so a build does not care
where its base came from, and a registry base written to an archive or an archive base pushed to a registry run the
same code with different ends. Stores we cannot read (``containers-storage:``, ``docker-daemon:``, ...) get one
line saying how to export the image; a bare path gets a hint naming the transport it most likely means.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oci_conda.errors import ImageError
from oci_conda.oci.image import Image, Platform, empty_image
from oci_conda.oci.local import LOCAL_TRANSPORTS, open_local_image, parse_local_ref, suggest_transport
from oci_conda.oci.registry.client import RegistryOptions
from oci_conda.oci.registry.pull import pull_image
from oci_conda.oci.walk import resolve_image, verify_diff_ids

TRANSPORTS = ("scratch", *LOCAL_TRANSPORTS, "registry")
#: skopeo transports naming stores only their own tools read: how to export from each.
EXPORT_HINTS = {
    "containers-storage": "skopeo copy containers-storage:{name} oci-archive:{file}",
    "docker-daemon": "skopeo copy docker-daemon:{name} oci-archive:{file} (or: docker save {name} -o {file}, "
                     "then docker-archive:{file})",
    "ostree": "skopeo copy ostree:{name} oci-archive:{file}",
    "sif": "skopeo copy sif:{name} oci-archive:{file}",
    "tarball": "skopeo copy tarball:{name} oci-archive:{file}",
    "atomic": "skopeo copy atomic:{name} oci-archive:{file}",
}


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: ``transport`` names the end, ``path`` and ``ref`` are its arguments."""

    transport: str
    path: str = ""
    ref: str | None = None

    def __str__(self) -> str:
        if self.transport == "scratch":
            return "scratch"
        if self.transport == "registry":
            return self.path
        tail = f":{self.ref}" if self.ref else ""
        return f"{self.transport}:{self.path}{tail}"

    @property
    def is_local(self) -> bool:
        return self.transport in LOCAL_TRANSPORTS


def unreadable_store(ref: str, role: str) -> ImageError | None:
    """The one-line error for a reference into a store we do not read (``containers-storage:`` ...), else None."""
    transport, sep, name = ref.partition(":")
    if not sep or transport not in EXPORT_HINTS or name.startswith("//"):
        return None
    stem = name.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0] or "image"
    how = EXPORT_HINTS[transport].format(name=name, file=f"{stem}.tar")
    return ImageError(f"{role} {ref!r}: oci-conda does not read {transport}: images; export it first: {how}, "
                      f"then use oci-archive:{stem}.tar")


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or ref in (".", "..") or os.path.exists(ref) \
        or ref.endswith((".tar", ".tar.gz", ".tgz"))


def parse_image_ref(ref: str, role: str = "base image") -> ImageRef:
    """``scratch`` | ``oci-archive:PATH[:REF]`` | ``oci:DIR[:REF]`` | ``dir:DIR`` | ``docker-archive:PATH[:NAME:TAG]``
    | ``[docker://]HOST/REPO[:TAG][@DIGEST]``; anything else is a one-line :class:`ImageError` with a hint."""
    ref = ref.strip()
    if ref == "scratch":
        return ImageRef("scratch")
    bad = unreadable_store(ref, role)
    if bad is not None:
        raise bad
    transport, path, name = parse_local_ref(ref)
    if transport is not None:
        if not path:
            raise ImageError(f"{role} {ref!r}: missing path after '{transport}:'")
        return ImageRef(transport, path, name)
    scheme, sep, rest = ref.partition("://")
    if sep and scheme not in ("docker", "registry"):
        raise ImageError(f"{role} {ref!r}: unknown transport {scheme!r} (use scratch, oci:DIR[:REF], "
                         "oci-archive:PATH[:REF], dir:DIR, docker-archive:PATH or [docker://]HOST/REPOSITORY[:TAG])")
    if not sep and _looks_like_path(ref):
        raise ImageError(f"{role} {ref!r} is a path, not a registry reference: did you mean "
                         f"{suggest_transport(ref)}?")
    return ImageRef("registry", rest if sep else ref)


def registry_destination(ref: str) -> str:
    """``ref`` if it names a registry (for ``push``); a local or foreign store is one line saying what to do."""
    bad = unreadable_store(ref, "push destination")
    if bad is not None:
        transport = ref.partition(":")[0]
        raise ImageError(f"push destination {ref!r}: push writes to a registry; to put an image into {transport}: "
                         f"use skopeo copy oci-archive:IMAGE.tar {ref}")
    transport, _path, _name = parse_local_ref(ref)
    if transport is not None:
        raise ImageError(f"push destination {ref!r}: push writes to a registry; an image is written to "
                         f"{transport}: by skopeo copy oci-archive:IMAGE.tar {ref} (or build -o for oci/oci-archive)")
    return ref


def local_image_ref(ref: str, role: str) -> str:
    """``ref`` for commands that read a local image (``push``, ``inspect``, ``diff``); a store we do not read, or a
    registry reference, is one line saying how to get a local copy."""
    bad = unreadable_store(ref, role)
    if bad is not None:
        raise bad
    transport, path, _name = parse_local_ref(ref)
    host = ref.removeprefix("docker://").split("/", 1)[0]
    registry_like = ref.startswith("docker://") or ("/" in ref and ("." in host or ":" in host or host == "localhost"))
    if transport is None and registry_like and not os.path.exists(path):
        src = ref if ref.startswith("docker://") else f"docker://{ref}"
        raise ImageError(f"{role} {ref!r}: reads a local image; copy it from the registry first: "
                         f"skopeo copy {src} oci-archive:image.tar")
    return ref


def open_image(ref: str, platform: Platform, options: RegistryOptions | None = None) -> Image:
    """The image ``ref`` names, for ``platform`` (picked from a multi-platform index when there is one).

    ``options`` say how to reach a registry (and how many layers to download at once); local ends ignore them.
    """
    parsed = parse_image_ref(ref)
    if parsed.transport == "scratch":
        return empty_image(platform)
    if parsed.transport == "registry":
        image = pull_image(parsed.path, platform, options)
    else:
        local = open_local_image(Path(parsed.path), parsed.ref, parsed.transport)
        image = resolve_image(local.source, local.top, platform, f"base image {parsed}")
    verify_diff_ids(image, f"base image {parsed}")  # once per layer blob ever (remembered in the cache)
    return image
