"""The "simple signing" payload both signature formats sign: a small JSON document binding a repository name
(``docker-reference``) to a manifest digest (``docker-manifest-digest``).

cosign writes ``type`` = ``cosign container image signature`` and ``optional`` = null; containers/image
(podman, skopeo) writes ``atomic container signature`` with ``optional`` holding ``creator`` and ``timestamp``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..oci.image import canonical_json
from .errors import SignError

COSIGN_TYPE = "cosign container image signature"
ATOMIC_TYPE = "atomic container signature"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Claim:
    """What a verified payload says."""

    reference: str
    digest: str
    type: str
    optional: dict[str, Any] | None


def make_payload(reference: str, digest: str, sig_type: str, optional: dict[str, Any] | None = None) -> bytes:
    """The payload bytes to sign (canonical JSON; both readers parse JSON, neither needs a fixed byte form)."""
    if not _DIGEST.match(digest):
        raise SignError(f"{digest!r} is not a sha256 manifest digest")
    return canonical_json({
        "critical": {"identity": {"docker-reference": reference}, "image": {"docker-manifest-digest": digest},
                     "type": sig_type},
        "optional": optional,
    })


def parse_payload(data: bytes, sig_type: str) -> Claim:
    """The claim of a signed payload, refusing anything not of the expected shape and ``type``."""
    try:
        doc = json.loads(data)
        crit = doc["critical"]
        ref = crit["identity"]["docker-reference"]
        digest = crit["image"]["docker-manifest-digest"]
        kind = crit["type"]
    except (ValueError, KeyError, TypeError):
        raise SignError("signature payload is not a simple-signing document") from None
    if kind != sig_type:
        raise SignError(f"signature payload has type {kind!r}, expected {sig_type!r}")
    if not isinstance(ref, str) or not isinstance(digest, str):
        raise SignError("signature payload has a non-string identity or digest")
    optional = doc.get("optional")
    return Claim(ref, digest, kind, optional if isinstance(optional, dict) else None)
