"""Where a base image comes from: ``scratch``, ``oci:DIR[:REF]``, ``oci-archive:PATH[:REF]`` or a registry.

Every end yields the same :class:`~oci_conda.oci.image.Image` through the same walk, so a build does not care
where its base came from, and a registry base written to an archive or an archive base pushed to a registry run the
same code with different ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oci_conda.errors import ImageError
from oci_conda.oci.image import Image, Platform, empty_image
from oci_conda.oci.local import open_local_image, split_path_ref
from oci_conda.oci.registry.client import RegistryOptions
from oci_conda.oci.registry.pull import pull_image
from oci_conda.oci.walk import resolve_image, verify_diff_ids

TRANSPORTS = ("scratch", "oci", "oci-archive", "registry")


@dataclass(frozen=True)
class ImageRef:
    """A parsed base-image reference: ``transport`` names the end, ``path`` and ``ref`` are its arguments."""

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


def parse_image_ref(ref: str) -> ImageRef:
    """``scratch`` | ``oci-archive:PATH[:REF]`` | ``oci:DIR[:REF]`` | ``[docker://]HOST/REPO[:TAG][@DIGEST]``."""
    ref = ref.strip()
    if ref == "scratch":
        return ImageRef("scratch")
    for transport in ("oci-archive", "oci"):
        if ref.startswith(transport + ":"):
            path, name = split_path_ref(ref[len(transport) + 1 :])
            if not path:
                raise ImageError(f"base image {ref!r}: missing path after '{transport}:'")
            return ImageRef(transport, path, name)
    transport, sep, rest = ref.partition("://")
    if sep and transport not in ("docker", "registry"):
        raise ImageError(f"base image {ref!r}: unknown transport {transport!r} (use scratch, oci:DIR[:REF], "
                         "oci-archive:PATH[:REF] or [docker://]HOST/REPOSITORY[:TAG])")
    return ImageRef("registry", rest if sep else ref)


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
        local = open_local_image(Path(parsed.path), parsed.ref)
        image = resolve_image(local.source, local.top, platform, f"base image {parsed}")
    verify_diff_ids(image, f"base image {parsed}")  # once per layer blob ever (remembered in the cache)
    return image
