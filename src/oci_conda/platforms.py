"""The bridge between conda subdirs and OCI platforms: which container platform a conda subdir becomes.

``oci/`` knows platforms and nothing of conda; ``conda/`` knows subdirs and nothing of OCI. This table is the one
place both meet.
"""

from __future__ import annotations

from .errors import ImageError
from .oci.image import Platform

SUBDIR_PLATFORMS: dict[str, Platform] = {
    "linux-64": Platform("linux", "amd64"),
    "linux-aarch64": Platform("linux", "arm64", "v8"),
    "linux-ppc64le": Platform("linux", "ppc64le"),
    "linux-s390x": Platform("linux", "s390x"),
    "linux-armv7l": Platform("linux", "arm", "v7"),
    "linux-armv6l": Platform("linux", "arm", "v6"),
    "linux-32": Platform("linux", "386"),
    "linux-riscv64": Platform("linux", "riscv64"),
}


def platform_for_subdir(subdir: str) -> Platform:
    """The OCI platform for a conda subdir; only linux subdirs can become images."""
    try:
        return SUBDIR_PLATFORMS[subdir]
    except KeyError:
        raise ImageError(f"no container platform for subdir {subdir!r} (only linux subdirs can become images)") from None
