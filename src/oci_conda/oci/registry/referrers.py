"""Referrers: artifacts about a manifest (SBOMs, signatures), pushed and listed the way distribution spec v1.1 says.

A registry with the referrers API indexes an artifact manifest when it is pushed and answers that with an
``OCI-Subject`` header; ``GET /v2/<repo>/referrers/<digest>`` then lists it. A registry without it (CNCF
distribution 2.8, Debian's docker-registry) needs the client to keep the list itself: an image index under the tag
``<alg>-<encoded>`` of the subject digest (the "referrers tag schema"), read, extended and put back. Both ways are
here; callers neither know nor care which the registry does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from oci_conda.oci.artifact import Artifact, read_artifact
from oci_conda.oci.blobs import digest_bytes, verify_bytes
from oci_conda.oci.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_TYPE_INDEX,
    Descriptor,
    canonical_json,
)
from oci_conda.oci.registry.client import MAX_MANIFEST, RegistryClient, RegistryError
from oci_conda.oci.registry.pull import get_blob_bytes
from oci_conda.oci.registry.push import upload_blob
from oci_conda.oci.walk import BlobSource, fetch_verified

ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
MAX_REFERRERS = 4096


def referrers_tag(digest: str) -> str:
    """The fallback tag listing the referrers of ``digest``: ``sha256-<hex>`` for a sha256 digest (algorithm cut
    to 32 and encoded part to 64 characters, anything a tag may not hold replaced with ``-``)."""
    alg, _, enc = digest.partition(":")
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"{alg[:32]}-{enc[:64]}")


def referrers_index(descriptors: Sequence[Descriptor]) -> bytes:
    """The image index the referrers API returns (and the fallback tag holds) for these artifact descriptors;
    one entry per digest, first one wins, order kept."""
    seen: set[str] = set()
    manifests = []
    for d in descriptors:
        if d.digest not in seen:
            seen.add(d.digest)
            manifests.append(d.to_json())
    return canonical_json({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": manifests})


def index_entries(data: bytes, what: str) -> list[Descriptor]:
    """The entries of a referrers index; anything other than an image index is refused, as the spec asks."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("mediaType", MEDIA_TYPE_INDEX) != MEDIA_TYPE_INDEX or \
            not isinstance(doc.get("manifests"), list):
        raise RegistryError(f"{what}: holds something other than an image index")
    return [Descriptor.from_json(m, f"{what}: entry") for m in doc["manifests"][:MAX_REFERRERS]]


def add_referrer(existing: bytes | None, new: Descriptor, what: str = "referrers tag") -> bytes:
    """The fallback-tag index with ``new`` appended (no duplicate), starting from ``existing`` (None on 404)."""
    old = index_entries(existing, what) if existing else []
    return referrers_index([*old, new])


# ---------------------------------------------------------------------------------------------------------------
# registry calls


def _scopes(repo: str, push: bool = False) -> tuple[str, ...]:
    return (f"repository:{repo}:{'pull,push' if push else 'pull'}",)


def get_optional(client: RegistryClient, repo: str, reference: str) -> tuple[bytes, str] | None:
    """A manifest or index by tag or digest (a digest is checked), or None when the registry has no such thing."""
    what = f"{client.host}/{repo}: manifest {reference}"
    resp = client.request("GET", client.url(f"{repo}/manifests/{reference}"), _scopes(repo), what,
                          headers={"Accept": ACCEPT})
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise client.fail(resp, what)
    if len(resp.content) > MAX_MANIFEST:
        raise RegistryError(f"{what}: {len(resp.content)} bytes is too large for a manifest")
    if reference.startswith("sha256:"):
        verify_bytes(resp.content, reference, None, what)
    return resp.content, resp.headers.get("Content-Type", "").split(";")[0].strip()


def put_artifact(client: RegistryClient, repo: str, art: Artifact, reference: str | None = None) -> bool:
    """Upload ``art``'s blobs, then its manifest under ``reference`` (default: its digest). True when the registry
    says it indexed the manifest's subject itself (``OCI-Subject``: it has the referrers API)."""
    for digest, data in sorted(art.blobs.items()):
        upload_blob(client, repo, Descriptor("application/octet-stream", digest, len(data)), data)
    ref = reference or art.digest
    what = f"{client.host}/{repo}: manifest {ref}"
    resp = client.request("PUT", client.url(f"{repo}/manifests/{ref}"), _scopes(repo, True), what,
                          headers={"Content-Type": art.descriptor.media_type}, body=lambda: art.manifest)
    if resp.status_code != 201:
        raise client.fail(resp, what)
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != art.digest:
        raise RegistryError(f"{what}: the registry stored it as {got}, not {art.digest}")
    return bool(resp.headers.get("OCI-Subject"))


def attach(client: RegistryClient, repo: str, art: Artifact, subject: str) -> str:
    """Push the artifact ``art`` about the manifest ``subject`` so clients find it: by the registry's referrers API
    when it has one, else by adding it to the ``sha256-<hex>`` fallback tag's index. Returns ``"api"`` or the tag."""
    if put_artifact(client, repo, art):
        return "api"
    tag = referrers_tag(subject)
    old = get_optional(client, repo, tag)
    index = add_referrer(old[0] if old else None, art.descriptor, f"{client.host}/{repo}:{tag}")
    if old is None or index != old[0]:
        what = f"{client.host}/{repo}: manifest {tag}"
        resp = client.request("PUT", client.url(f"{repo}/manifests/{tag}"), _scopes(repo, True), what,
                              headers={"Content-Type": MEDIA_TYPE_INDEX}, body=lambda: index)
        if resp.status_code != 201:
            raise client.fail(resp, what)
    return tag


@dataclass(frozen=True)
class Referrers:
    """The artifacts a registry lists for a manifest, and how it listed them (``api`` or the fallback tag)."""

    via: str
    descriptors: list[Descriptor]


def list_referrers(client: RegistryClient, repo: str, subject: str, artifact_type: str | None = None) -> Referrers:
    """The referrers of ``subject``: the referrers API when the registry has it, else the fallback tag's index."""
    what = f"{client.host}/{repo}: referrers of {subject}"
    url = client.url(f"{repo}/referrers/{subject}")
    if artifact_type:
        url += f"?artifactType={artifact_type}"
    resp = client.request("GET", url, _scopes(repo), what, headers={"Accept": MEDIA_TYPE_INDEX})
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
    if resp.status_code == 200 and ctype == MEDIA_TYPE_INDEX:
        descs, via = index_entries(resp.content, what), "api"
    elif resp.status_code in (200, 404, 405):  # no referrers API (a 200 of another type is not it either)
        tag = referrers_tag(subject)
        got = get_optional(client, repo, tag)
        descs, via = (index_entries(got[0], f"{client.host}/{repo}:{tag}") if got else []), tag
    else:
        raise client.fail(resp, what)
    if artifact_type:
        descs = [d for d in descs if d.artifact_type == artifact_type]
    return Referrers(via, descs)


def fetch_artifact(client: RegistryClient, repo: str, desc: Descriptor, max_blob: int = 64 << 20
                   ) -> tuple[bytes, dict[str, bytes]]:
    """An artifact manifest (by digest, checked) and its layer blobs (each checked), for a verifier or a reader."""
    got = get_optional(client, repo, desc.digest)
    if got is None:
        raise RegistryError(f"{client.host}/{repo}: manifest {desc.digest} not found", status=404)
    manifest = got[0]
    try:
        layers = json.loads(manifest).get("layers") or []
    except (ValueError, AttributeError):
        raise RegistryError(f"{client.host}/{repo}: manifest {desc.digest} is not an image manifest") from None
    blobs: dict[str, bytes] = {}
    for raw in layers:
        ld = Descriptor.from_json(raw, f"{client.host}/{repo}: {desc.digest} layer")
        if ld.size > max_blob:
            continue
        data = get_blob_bytes(client, repo, ld)
        blobs[ld.digest] = verify_bytes(data, ld.digest, ld.size, f"{client.host}/{repo}: blob {ld.digest}")
    return manifest, blobs


def manifest_digest(client: RegistryClient, repo: str, reference: str) -> tuple[str, bytes, str]:
    """(digest, bytes, media type) of what a tag or digest names, as a signer needs it."""
    got = get_optional(client, repo, reference)
    if got is None:
        raise RegistryError(f"registry {client.host}: repository {repo} has no image {reference}", status=404)
    return digest_bytes(got[0]), got[0], got[1]


def local_artifacts(source: BlobSource, index: dict[str, Any], subjects: Iterable[str], what: str) -> list[
        tuple[Artifact, str]]:
    """The artifacts an OCI layout or archive's index.json lists about any of ``subjects`` (manifest digests), each
    with its manifest and small blobs read and verified, paired with its subject: what a push of that image takes
    along so the registry lists the same SBOMs."""
    wanted = set(subjects)
    out = []
    for raw in index.get("manifests") or []:
        desc = Descriptor.from_json(raw, f"{what}: index.json entry")
        if not desc.artifact_type:
            continue
        manifest = fetch_verified(source, desc, f"{what}: artifact {desc.digest}")
        info = read_artifact(manifest, f"{what}: artifact {desc.digest}")
        if info.subject is None or info.subject.digest not in wanted:
            continue
        blobs = {}
        config = json.loads(manifest).get("config")
        for d in [*info.layers, *([Descriptor.from_json(config, what)] if isinstance(config, dict) else [])]:
            blobs[d.digest] = fetch_verified(source, d, f"{what}: blob {d.digest}")
        out.append((Artifact(manifest, desc, blobs), info.subject.digest))
    return out
