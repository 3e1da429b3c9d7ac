"""What an SBOM is made of: plain typed values, built from the records a build already has.

The SBOM writers (``spdx.py``, ``cyclonedx.py``) take only these values, so the same inputs give the same bytes
whether they came from a solve, a lock or an image read back from an archive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..credentials import strip_credentials


@dataclass(frozen=True)
class ImageSubject:
    """The image the SBOM describes: its repository name (``example.com/team/app`` or a bare ``hello``), the
    manifest digest of this platform's image, and the platform (``linux/amd64``)."""

    name: str
    digest: str
    platform: str
    tag: str | None = None


@dataclass(frozen=True)
class CondaPackage:
    """One installed conda package, as ``conda-meta/*.json`` or a ``PackageRecord`` gives it. URLs carry no
    credentials (stripped on the way in)."""

    name: str
    version: str
    build: str
    channel: str
    subdir: str
    fn: str
    url: str
    sha256: str | None = None
    md5: str | None = None
    license: str | None = None
    depends: tuple[str, ...] = ()

    @property
    def package_type(self) -> str:
        """The purl ``type`` qualifier: the archive format the package came in."""
        return "conda" if (self.fn or self.url).endswith(".conda") else "tar.bz2"

    @classmethod
    def from_record(cls, rec: Mapping[str, Any] | object) -> CondaPackage:
        """From a conda-meta/repodata dict or any object with the same attributes (``PackageRecord``)."""

        def get(key: str) -> Any:
            if isinstance(rec, Mapping):
                return rec.get(key)
            return getattr(rec, key, None)

        url = str(get("url") or "")
        fn = str(get("fn") or url.rsplit("/", 1)[-1])
        return cls(
            name=str(get("name")),
            version=str(get("version")),
            build=str(get("build") or get("build_string") or ""),
            channel=strip_credentials(str(get("channel") or "")),
            subdir=str(get("subdir") or ""),
            fn=fn,
            url=strip_credentials(url),
            sha256=get("sha256") or None,
            md5=get("md5") or None,
            license=get("license") or None,
            depends=tuple(get("depends") or ()),
        )


@dataclass(frozen=True)
class WheelPackage:
    """One wheel installed by pip into the image's prefix."""

    name: str
    version: str
    sha256: str | None = None
    url: str | None = None
    license: str | None = None


@dataclass(frozen=True)
class OsPackage:
    """One package from the base image's own package database (dpkg or apk).

    ``ecosystem`` is the purl type (``deb``, ``apk``), ``namespace`` the distribution's ``ID`` from os-release
    (``debian``, ``ubuntu``, ``alpine``), ``distro`` its ``ID-VERSION_ID`` when known."""

    ecosystem: str
    namespace: str
    name: str
    version: str
    arch: str | None = None
    distro: str | None = None
    license: str | None = None
    source: str | None = None
    depends: tuple[str, ...] = ()


@dataclass(frozen=True)
class SbomInput:
    """Everything one platform's SBOM says. ``created`` is the build's epoch (SOURCE_DATE_EPOCH or the newest
    package timestamp), never the wall clock, so two builds of the same image give the same bytes."""

    image: ImageSubject
    created: int
    conda: tuple[CondaPackage, ...] = ()
    wheels: tuple[WheelPackage, ...] = ()
    os_packages: tuple[OsPackage, ...] = ()
    tool_name: str = "oci-conda"
    tool_version: str = field(default=__version__)
