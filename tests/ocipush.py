"""A tiny registry client for the supply-chain tests, written straight from the distribution spec with
``requests`` (independent of oci_conda's own registry code): put blobs and manifests, get them back."""

from __future__ import annotations

import hashlib

import requests

ACCEPT = ("application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,"
          "application/vnd.docker.distribution.manifest.v2+json")


def put_blob(base: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if requests.head(f"{base}/v2/{repo}/blobs/{digest}", timeout=10).status_code == 200:
        return digest
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=10)
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else base + loc
    r = requests.put(loc, params={"digest": digest}, data=data,
                     headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert r.status_code == 201, r.text
    return digest


def put_manifest(base: str, repo: str, ref: str, data: bytes, media_type: str) -> str:
    r = requests.put(f"{base}/v2/{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type},
                     timeout=10)
    assert r.status_code == 201, r.text
    return r.headers["Docker-Content-Digest"]


def get_manifest(base: str, repo: str, ref: str) -> bytes | None:
    r = requests.get(f"{base}/v2/{repo}/manifests/{ref}", timeout=10, headers={"Accept": ACCEPT})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.content


def get_blob(base: str, repo: str, digest: str) -> bytes:
    r = requests.get(f"{base}/v2/{repo}/blobs/{digest}", timeout=10)
    assert r.status_code == 200, r.text
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest
    return r.content
