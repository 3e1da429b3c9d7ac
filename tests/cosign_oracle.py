"""An independent reader of cosign's formats, written from cosign's published specification (test code only; it
shares nothing with oci_conda.sign): decrypt ``cosign.key`` (PEM ``ENCRYPTED SIGSTORE PRIVATE KEY``, JSON with
scrypt KDF + NaCl secretbox over a PKCS#8 key) with hashlib.scrypt and libsodium's raw secretbox, and verify a
``.sig`` manifest the way ``cosign verify --key`` does: each simple-signing layer's annotation is an ECDSA-SHA256
signature of the layer blob, and the blob's ``critical.image.docker-manifest-digest`` must be the image's digest."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.bindings import crypto_secretbox_open


def decrypt_cosign_key(pem: bytes, password: bytes) -> ec.EllipticCurvePrivateKey:
    m = re.fullmatch(rb"-----BEGIN (ENCRYPTED (?:SIGSTORE|COSIGN) PRIVATE KEY)-----\n(.*?)\n-----END \1-----\n?",
                     pem, re.DOTALL)
    assert m, "not a cosign encrypted key PEM"
    doc = json.loads(base64.b64decode(b"".join(m.group(2).split())))
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    p = doc["kdf"]["params"]
    assert (p["N"], p["r"], p["p"]) in ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
    key = hashlib.scrypt(password, salt=base64.b64decode(doc["kdf"]["salt"]), n=p["N"], r=p["r"], p=p["p"],
                         maxmem=256 << 20, dklen=32)
    der = crypto_secretbox_open(base64.b64decode(doc["ciphertext"]), base64.b64decode(doc["cipher"]["nonce"]), key)
    k = serialization.load_der_private_key(der, None)
    assert isinstance(k, ec.EllipticCurvePrivateKey) and isinstance(k.curve, ec.SECP256R1)
    return k


def cosign_verify(pub_pem: bytes, image_digest: str, sig_manifest: bytes, blobs: dict[str, bytes]) -> list[dict]:
    pub = serialization.load_pem_public_key(pub_pem)
    man = json.loads(sig_manifest)
    ok = []
    for layer in man["layers"]:
        if layer["mediaType"] != "application/vnd.dev.cosign.simplesigning.v1+json":
            continue
        payload = blobs[layer["digest"]]
        if "sha256:" + hashlib.sha256(payload).hexdigest() != layer["digest"]:
            continue
        sig = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
        try:
            pub.verify(sig, payload, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr,call-arg]
        except InvalidSignature:
            continue
        claim = json.loads(payload)
        if claim["critical"]["type"] != "cosign container image signature":
            continue
        if claim["critical"]["image"]["docker-manifest-digest"] != image_digest:
            continue
        ok.append(claim)
    return ok
