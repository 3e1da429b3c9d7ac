"""Signing and verifying images that live in a registry: the digest a reference names, cosign's ``.sig`` manifest
read, extended and pushed through ``oci/registry``, and the simple-signing lookaside for the same digest.

A tag can move; every signature is about the manifest digest the tag named when it was signed, and every
verification asks the registry which digest the reference names now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..oci.blobs import digest_bytes
from ..oci.image import MEDIA_TYPE_MANIFEST, Descriptor
from ..oci.registry.client import RegistryClient, RegistryError, RegistryOptions
from ..oci.registry.reference import RegistryRef, parse_reference
from ..oci.registry.referrers import (
    fetch_artifact,
    get_optional,
    manifest_digest,
    put_artifact,
)
from . import cosign, simple
from .errors import SignError
from .payload import Claim

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class Target:
    """An image in a registry: where it is, and the manifest (or index) digest its reference names now."""

    ref: RegistryRef
    client: RegistryClient
    digest: str

    @property
    def repository(self) -> str:
        """``host/repo``: what a cosign payload's docker-reference names."""
        return self.ref.name

    @property
    def pull_name(self) -> str:
        """``host/repo:tag`` (or ``host/repo`` for a digest reference): what simple signing's identity names."""
        return f"{self.ref.name}:{self.ref.tag}" if self.ref.tag else self.ref.name


def resolve(reference: str, options: RegistryOptions) -> Target:
    """The image ``reference`` names and its digest (a ``@sha256:`` reference is checked against the registry)."""
    r = parse_reference(reference)
    client = RegistryClient(r.host, options)
    digest, _data, _mt = manifest_digest(client, r.repository, r.reference)
    if r.digest and digest != r.digest:
        raise SignError(f"{r}: the registry returned a manifest with digest {digest}")
    return Target(r, client, digest)


def _descriptor(manifest: bytes) -> Descriptor:
    return Descriptor(MEDIA_TYPE_MANIFEST, digest_bytes(manifest), len(manifest))


def existing_signatures(t: Target) -> list[cosign.Signature]:
    """The signatures already under the image's ``.sig`` tag (none when there is no such tag)."""
    tag = cosign.signature_tag(t.digest)
    got = get_optional(t.client, t.ref.repository, tag)
    if got is None:
        return []
    manifest, blobs = fetch_artifact(t.client, t.ref.repository, _descriptor(got[0]))
    return cosign.signatures_in(manifest, blobs)


def cosign_sign(t: Target, key: ec.EllipticCurvePrivateKey) -> str:
    """Sign ``t``'s digest and push the ``.sig`` manifest, keeping the signatures already there; returns the tag."""
    sig = cosign.sign(key, t.repository, t.digest)
    old = [s for s in existing_signatures(t) if s.payload != sig.payload or s.signature != sig.signature]
    tag = cosign.signature_tag(t.digest)
    put_artifact(t.client, t.ref.repository, cosign.signature_manifest([*old, sig]), tag)
    return tag


def cosign_verify(t: Target, key: ec.EllipticCurvePublicKey) -> list[Claim]:
    """The valid cosign signatures by ``key`` for ``t``'s digest and repository; a SignError when there are none."""
    tag = cosign.signature_tag(t.digest)
    try:
        got = get_optional(t.client, t.ref.repository, tag)
    except RegistryError as e:
        raise SignError(f"{t.ref}: cannot read the signatures ({e})") from None
    if got is None:
        raise SignError(f"no cosign signatures found for {t.repository}@{t.digest} (no tag {tag})")
    manifest, blobs = fetch_artifact(t.client, t.ref.repository, _descriptor(got[0]))
    return cosign.verify(key, t.digest, manifest, blobs, t.repository)


def gpg_sign(t: Target, fingerprint: str, lookaside: str | os.PathLike[str]) -> str:
    """A simple-signing signature of ``t`` in the lookaside directory; returns the file written."""
    return str(simple.sign_image(t.pull_name, t.digest, fingerprint, lookaside))


def gpg_verify(t: Target, keyring: str | os.PathLike[str], lookaside: str | os.PathLike[str]
               ) -> list[simple.Verified]:
    return simple.verify_image(t.pull_name, t.digest, keyring, lookaside)
