"""What both SBOM formats share: a stable order of components, the time stamp, the document's UUID and the
dependency edges between the chosen conda records."""

from __future__ import annotations

import datetime
import re
import uuid

from .model import CondaPackage, ImageSubject

_SPEC_NAME = re.compile(r"^\s*([^\s=<>!~\[,]+)")


def iso_time(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of the build epoch (both formats want UTC seconds)."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def document_uuid(kind: str, image: ImageSubject) -> uuid.UUID:
    """A UUID that names this image's SBOM of this kind: the same image always gets the same one."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"oci-conda:{kind}:{image.name}@{image.digest}:{image.platform}")


def sorted_conda(pkgs: tuple[CondaPackage, ...]) -> list[CondaPackage]:
    return sorted(pkgs, key=lambda p: (p.name, p.version, p.build, p.subdir, p.channel))


def spec_name(spec: str) -> str | None:
    """The package name a conda ``depends`` entry (a MatchSpec string) asks for; ``channel::name`` allowed."""
    m = _SPEC_NAME.match(spec)
    if not m:
        return None
    return m.group(1).rsplit("::", 1)[-1]


def conda_edges(pkgs: list[CondaPackage]) -> dict[int, list[int]]:
    """For each record (by index) the records it depends on, resolved by name to the records actually chosen.
    Virtual packages (``__glibc``) and names not in the environment have no record and give no edge."""
    by_name = {p.name: i for i, p in enumerate(pkgs)}
    out: dict[int, list[int]] = {}
    for i, p in enumerate(pkgs):
        deps = sorted({by_name[n] for n in (spec_name(s) for s in p.depends) if n in by_name and by_name[n] != i})
        out[i] = deps
    return out


def absolute_url(url: str | None) -> str | None:
    """``url`` when it is an absolute URL (what SPDX downloadLocation and CycloneDX references accept)."""
    if url and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return url
    return None
