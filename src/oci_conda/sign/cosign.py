"""cosign's key-based signatures, stored the way cosign stores them: an image manifest tagged
``sha256-<hex>.sig`` in the image's repository, one layer per signature. Each layer is the simple-signing payload
(media type ``application/vnd.dev.cosign.simplesigning.v1+json``) with the base64 ECDSA-SHA256 signature of those
bytes in the annotation ``dev.cosignproject.cosign/signature``; the config is an OCI config listing the layers.

Only bytes and descriptors are produced here; pushing them (blobs, then the manifest under the tag) is the
registry sink's job. ``verify`` takes the manifest and blobs as fetched from wherever they are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..oci.artifact import Artifact, descriptor_of
from ..oci.blobs import digest_bytes
from ..oci.image import MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST, canonical_json
from .errors import SignError
from .payload import COSIGN_TYPE, Claim, make_payload, parse_payload

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # what cosign's (go-containerregistry's) empty image config says


@dataclass(frozen=True)
class Signature:
    """One signature layer: the payload bytes and the base64 signature over them."""

    payload: bytes
    signature: str


def signature_tag(digest: str) -> str:
    """The tag cosign looks under for the signatures of the image with manifest ``digest``."""
    alg, _, hexpart = digest.partition(":")
    return f"{alg}-{hexpart}.sig"


def sign_payload(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """ECDSA P-256 / SHA-256 over the payload bytes, ASN.1 DER, base64 (what the annotation holds)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


def sign(key: ec.EllipticCurvePrivateKey, repository: str, digest: str) -> Signature:
    """A signature binding ``repository`` (registry host and path, no tag) to the manifest ``digest``."""
    payload = make_payload(repository, digest, COSIGN_TYPE)
    return Signature(payload, sign_payload(key, payload))


def signature_manifest(signatures: Sequence[Signature]) -> Artifact:
    """The ``.sig`` manifest holding ``signatures`` (append a new one to those already under the tag to keep
    them), with its config and payload blobs."""
    layers = [descriptor_of(SIMPLESIGNING_MEDIA_TYPE, s.payload, {SIGNATURE_ANNOTATION: s.signature})
              for s in signatures]
    config = canonical_json({
        "architecture": "", "os": "", "created": _ZERO_TIME, "config": {},
        "history": [{"created": _ZERO_TIME} for _ in layers],
        "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]},
    })
    man = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
           "config": descriptor_of(MEDIA_TYPE_CONFIG, config).to_json(), "layers": [d.to_json() for d in layers]}
    raw = canonical_json(man)
    blobs = {digest_bytes(config): config, **{d.digest: s.payload for d, s in zip(layers, signatures)}}
    return Artifact(raw, descriptor_of(MEDIA_TYPE_MANIFEST, raw), blobs)


def signatures_in(manifest: bytes, blobs: Mapping[str, bytes]) -> list[Signature]:
    """The signature layers of a ``.sig`` manifest, each payload checked against its descriptor's digest."""
    try:
        doc: dict[str, Any] = json.loads(manifest)
        layers = doc["layers"]
    except (ValueError, KeyError, TypeError):
        raise SignError("signature manifest is not an image manifest") from None
    out = []
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLESIGNING_MEDIA_TYPE:
            continue
        sig = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        data = blobs.get(layer.get("digest", ""))
        if not isinstance(sig, str) or data is None or digest_bytes(data) != layer.get("digest"):
            continue
        out.append(Signature(data, sig))
    return out


def verify_signature(key: ec.EllipticCurvePublicKey, sig: Signature) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key.verify(base64.b64decode(sig.signature, validate=True), sig.payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(key: ec.EllipticCurvePublicKey, digest: str, manifest: bytes, blobs: Mapping[str, bytes],
           repository: str | None = None) -> list[Claim]:
    """The claims of every signature in the ``.sig`` manifest made by ``key`` for the image ``digest`` (and,
    when given, naming ``repository``). None at all is an error saying why."""
    sigs = signatures_in(manifest, blobs)
    if not sigs:
        raise SignError(f"no cosign signatures found for {digest}")
    good, reasons = [], set()
    for s in sigs:
        if not verify_signature(key, s):
            reasons.add("signature does not match the key")
            continue
        claim = parse_payload(s.payload, COSIGN_TYPE)
        if claim.digest != digest:
            reasons.add(f"signed digest {claim.digest} is not {digest}")
        elif repository is not None and claim.reference != repository:
            reasons.add(f"signed repository {claim.reference} is not {repository}")
        else:
            good.append(claim)
    if not good:
        raise SignError(f"no valid cosign signature for {digest}: {'; '.join(sorted(reasons))}")
    return good
