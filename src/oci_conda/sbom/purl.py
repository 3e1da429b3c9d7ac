"""Package URLs (purl) for the components an image holds, per the purl specification and its type definitions:
``pkg:conda/<name>@<version>?build=..&channel=..&subdir=..&type=conda|tar.bz2``, ``pkg:pypi/<name>@<version>``,
``pkg:deb/<distro id>/<name>@<version>?arch=..&distro=..``, ``pkg:apk/<distro id>/...`` and
``pkg:oci/<name>@sha256%3A<hex>?arch=..&repository_url=..&tag=..`` for the image itself."""

from __future__ import annotations

import re
from urllib.parse import quote

from .model import CondaPackage, ImageSubject, OsPackage, WheelPackage

_ARCH = {"amd64": "amd64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x", "386": "386"}


def _enc(s: str, safe: str = "") -> str:
    """Percent-encode one purl part; ``:`` may stay bare everywhere (the spec says it need not be encoded)."""
    return quote(s, safe=":" + safe)


def build_purl(ptype: str, name: str, version: str | None = None, namespace: str | None = None,
               qualifiers: dict[str, str | None] | None = None) -> str:
    """``pkg:type/namespace/name@version?k=v&...`` with qualifiers sorted by key and empty ones dropped."""
    out = f"pkg:{ptype}/"
    if namespace:
        out += "/".join(_enc(seg) for seg in namespace.split("/") if seg) + "/"
    out += _enc(name)
    if version:
        out += "@" + _enc(version)
    quals = {k.lower(): v for k, v in (qualifiers or {}).items() if v}
    if quals:
        out += "?" + "&".join(f"{k}={_enc(quals[k], '/')}" for k in sorted(quals))
    return out


def channel_name(channel: str) -> str:
    """A conda channel as the purl ``channel`` qualifier shows it: the short name for channels on the public
    anaconda.org host (``conda-forge``), otherwise the canonical URL or path as recorded."""
    c = channel.rstrip("/")
    m = re.match(r"^https?://conda\.anaconda\.org/(.+)$", c)
    if m:
        return m.group(1)
    m = re.match(r"^https?://repo\.anaconda\.com/pkgs/(.+)$", c)
    if m:
        return m.group(1)
    return c


def conda_purl(p: CondaPackage) -> str:
    return build_purl("conda", p.name, p.version, qualifiers={
        "build": p.build, "channel": channel_name(p.channel) if p.channel else None, "subdir": p.subdir,
        "type": p.package_type})


def pypi_name(name: str) -> str:
    """The normalised project name (PEP 503), which the pypi purl type requires."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_purl(w: WheelPackage) -> str:
    return build_purl("pypi", pypi_name(w.name), w.version)


def os_purl(p: OsPackage) -> str:
    return build_purl(p.ecosystem, p.name, p.version, namespace=p.namespace,
                      qualifiers={"arch": p.arch, "distro": p.distro})


def oci_purl(image: ImageSubject) -> str:
    """The image's purl: the last path segment of its repository as the name, the manifest digest as the
    version, and the full repository as ``repository_url`` when it names a registry."""
    repo = image.name
    name = repo.rsplit("/", 1)[-1].lower()
    arch = image.platform.split("/")[1] if image.platform.count("/") >= 1 else None
    return build_purl("oci", name, image.digest, qualifiers={
        "arch": arch, "repository_url": repo if "/" in repo else None, "tag": image.tag})
