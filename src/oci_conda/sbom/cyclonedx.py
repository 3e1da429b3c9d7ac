"""CycloneDX 1.6 JSON for one platform's image: the image as ``metadata.component`` (type container), every conda
package, wheel and OS package as a component with purl, hashes and declared license, and a dependency graph:
the image depends on everything it holds; conda packages on the records their ``depends`` resolve to."""

from __future__ import annotations

from typing import Any

from ..oci.image import canonical_json
from . import purl as P
from .graph import absolute_url, conda_edges, document_uuid, iso_time, sorted_conda
from .licenses import spdx_expression
from .model import SbomInput

MEDIA_TYPE = "application/vnd.cyclonedx+json"


def _licenses(text: str | None) -> list[dict[str, Any]]:
    if not text or not text.strip():
        return []
    expr = spdx_expression(text)
    if expr is not None:
        return [{"expression": expr}]
    return [{"license": {"name": text}}]


def _hashes(pairs: list[tuple[str, str | None]]) -> list[dict[str, str]]:
    return [{"alg": alg, "content": v.lower()} for alg, v in pairs if v]


def _component(ref: str, name: str, version: str, purl: str, license: str | None, url: str | None,
               hashes: list[tuple[str, str | None]], props: list[tuple[str, str | None]]) -> dict[str, Any]:
    c: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": name, "version": version, "purl": purl}
    if h := _hashes(hashes):
        c["hashes"] = h
    if lic := _licenses(license):
        c["licenses"] = lic
    if u := absolute_url(url):
        c["externalReferences"] = [{"type": "distribution", "url": u}]
    if pr := [{"name": k, "value": v} for k, v in props if v]:
        c["properties"] = pr
    return c


def cyclonedx_document(inp: SbomInput) -> dict[str, Any]:
    """The CycloneDX 1.6 BOM as a JSON-ready dict (see ``cyclonedx_bytes`` for the bytes)."""
    img = inp.image
    root_ref = P.oci_purl(img)
    root: dict[str, Any] = {
        "type": "container", "bom-ref": root_ref, "name": img.name, "version": img.digest, "purl": root_ref,
        "properties": [{"name": "oci-conda:platform", "value": img.platform}]}
    if img.digest.startswith("sha256:"):
        root["hashes"] = [{"alg": "SHA-256", "content": img.digest.split(":", 1)[1]}]

    components: list[dict[str, Any]] = []
    seen: set[str] = {root_ref}

    def unique(ref: str) -> str:
        base, n = ref, 1
        while ref in seen:
            n += 1
            ref = f"{base}#{n}"
        seen.add(ref)
        return ref

    conda = sorted_conda(inp.conda)
    conda_refs = []
    for p in conda:
        purl = P.conda_purl(p)
        ref = unique(purl)
        conda_refs.append(ref)
        components.append(_component(ref, p.name, p.version, purl, p.license, p.url,
                                     [("SHA-256", p.sha256), ("MD5", p.md5)],
                                     [("oci-conda:ecosystem", "conda"), ("oci-conda:build", p.build),
                                      ("oci-conda:channel", P.channel_name(p.channel)), ("oci-conda:subdir", p.subdir),
                                      ("oci-conda:filename", p.fn)]))
    for w in sorted(inp.wheels, key=lambda w: (P.pypi_name(w.name), w.version)):
        purl = P.pypi_purl(w)
        components.append(_component(unique(purl), P.pypi_name(w.name), w.version, purl, w.license, w.url,
                                     [("SHA-256", w.sha256)], [("oci-conda:ecosystem", "pypi")]))
    for o in inp.os_packages:
        purl = P.os_purl(o)
        components.append(_component(unique(purl), o.name, o.version, purl, o.license, None, [],
                                     [("oci-conda:ecosystem", o.ecosystem), ("oci-conda:source-package", o.source)]))

    edges = conda_edges(conda)
    dependencies = [{"ref": root_ref, "dependsOn": [c["bom-ref"] for c in components]}]
    conda_index = {ref: i for i, ref in enumerate(conda_refs)}
    for c in components:
        ref = c["bom-ref"]
        i = conda_index.get(ref)
        deps = [conda_refs[j] for j in edges[i]] if i is not None else []
        dependencies.append({"ref": ref, "dependsOn": deps})

    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{document_uuid('cyclonedx', img)}",
        "version": 1,
        "metadata": {
            "timestamp": iso_time(inp.created),
            "tools": {"components": [{"type": "application", "name": inp.tool_name, "version": inp.tool_version}]},
            "component": root,
        },
        "components": components,
        "dependencies": dependencies,
    }


def cyclonedx_bytes(inp: SbomInput) -> bytes:
    """The BOM as canonical JSON: the same inputs always give the same bytes."""
    return canonical_json(cyclonedx_document(inp))
