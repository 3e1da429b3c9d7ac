"""SPDX 2.3 JSON for one platform's image: the image as the described root package, every conda package, wheel
and OS package it CONTAINS, and DEPENDS_ON edges between conda packages from their records' ``depends``."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..oci.image import canonical_json
from . import purl as P
from .graph import absolute_url, conda_edges, document_uuid, iso_time, sorted_conda
from .licenses import license_ref, spdx_expression
from .model import SbomInput

MEDIA_TYPE = "application/spdx+json"


class _Ids:
    """SPDXRef ids: readable (kind and sanitised name) plus a hash of the purl; a repeated component (the same
    purl twice in hostile metadata) gets a numbered id rather than a duplicate the validator rejects."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, kind: str, name: str, key: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "x"
        base = sid = f"SPDXRef-{kind}-{slug}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        n = 1
        while sid in self.seen:
            n += 1
            sid = f"{base}-{n}"
        self.seen.add(sid)
        return sid


class _Licenses:
    """Declared licenses: an SPDX expression when valid, else a LicenseRef whose text is the declared string."""

    def __init__(self) -> None:
        self.extracted: dict[str, str] = {}

    def declared(self, text: str | None) -> str:
        if not text or not text.strip():
            return "NOASSERTION"
        expr = spdx_expression(text)
        if expr is not None:
            return expr
        ref = license_ref(text)
        self.extracted[ref] = text
        return ref


def _download_location(url: str | None) -> str:
    """SPDX's downloadLocation grammar wants a network URL with a host; a ``file:`` or relative one is recorded as
    NOASSERTION (the purl still names the channel)."""
    u = absolute_url(url)
    if u and re.match(r"^(https?|ftp|sftp)://[^/\s]+", u):
        return u
    return "NOASSERTION"


def _package(spdx_id: str, name: str, version: str, purl: str, license: str, url: str | None,
             checksums: list[tuple[str, str | None]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    pkg: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": name,
        "versionInfo": version,
        "downloadLocation": _download_location(url),
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": license,
        "copyrightText": "NOASSERTION",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}],
    }
    sums = [{"algorithm": alg, "checksumValue": v.lower()} for alg, v in checksums if v]
    if sums:
        pkg["checksums"] = sums
    pkg.update(extra or {})
    return pkg


def spdx_document(inp: SbomInput) -> dict[str, Any]:
    """The SPDX 2.3 document as a JSON-ready dict (see ``spdx_bytes`` for the bytes)."""
    img = inp.image
    lic = _Licenses()
    spdx_id = _Ids()
    root_id = "SPDXRef-Image"
    packages: list[dict[str, Any]] = [_package(
        root_id, img.name, img.digest, P.oci_purl(img), "NOASSERTION", None,
        [("SHA256", img.digest.split(":", 1)[1] if img.digest.startswith("sha256:") else None)],
        {"primaryPackagePurpose": "CONTAINER", "comment": f"OCI image manifest for platform {img.platform}"})]
    relationships: list[dict[str, str]] = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": root_id}]
    contained: list[str] = []

    conda = sorted_conda(inp.conda)
    conda_ids = []
    for p in conda:
        purl = P.conda_purl(p)
        sid = spdx_id("conda", p.name, purl)
        conda_ids.append(sid)
        packages.append(_package(sid, p.name, p.version, purl, lic.declared(p.license), p.url,
                                 [("SHA256", p.sha256), ("MD5", p.md5)],
                                 {"packageFileName": p.fn, "primaryPackagePurpose": "LIBRARY",
                                  "sourceInfo": f"conda package {p.name}-{p.version}-{p.build} ({p.subdir}) "
                                                f"from channel {P.channel_name(p.channel)}"}))
        contained.append(sid)
    for w in sorted(inp.wheels, key=lambda w: (P.pypi_name(w.name), w.version)):
        purl = P.pypi_purl(w)
        sid = spdx_id("pypi", w.name, purl)
        packages.append(_package(sid, P.pypi_name(w.name), w.version, purl, lic.declared(w.license), w.url,
                                 [("SHA256", w.sha256)], {"primaryPackagePurpose": "LIBRARY"}))
        contained.append(sid)
    for o in inp.os_packages:
        purl = P.os_purl(o)
        sid = spdx_id(o.ecosystem, o.name, purl)
        extra: dict[str, Any] = {"primaryPackagePurpose": "LIBRARY"}
        if o.source and o.source != o.name:
            extra["sourceInfo"] = f"built from source package {o.source}"
        packages.append(_package(sid, o.name, o.version, purl, lic.declared(o.license), None, [], extra))
        contained.append(sid)

    relationships += [{"spdxElementId": root_id, "relationshipType": "CONTAINS", "relatedSpdxElement": s}
                      for s in contained]
    for i, deps in conda_edges(conda).items():
        relationships += [{"spdxElementId": conda_ids[i], "relationshipType": "DEPENDS_ON",
                           "relatedSpdxElement": conda_ids[j]} for j in deps]

    uid = document_uuid("spdx", img)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", img.name).strip("-") or "image"
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{img.name}@{img.digest} ({img.platform})",
        "documentNamespace": f"https://spdx.org/spdxdocs/oci-conda/{slug}-{uid}",
        "creationInfo": {"created": iso_time(inp.created), "creators": [f"Tool: {inp.tool_name}-{inp.tool_version}"]},
        "packages": packages,
        "relationships": relationships,
    }
    if lic.extracted:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "extractedText": text, "name": text} for ref, text in sorted(lic.extracted.items())]
    return doc


def spdx_bytes(inp: SbomInput) -> bytes:
    """The document as canonical JSON: the same inputs always give the same bytes."""
    return canonical_json(spdx_document(inp))
