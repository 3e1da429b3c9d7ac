"""SBOM artifacts pushed to a real registry (CNCF distribution 2.8, which has no referrers API) the way the
distribution spec says a client must then do it: the artifact manifests by digest, and the image index under the
``sha256-<hex>`` referrers tag. skopeo, an independent client, then finds them from the image digest."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import need_tool
from ocipush import get_manifest, put_blob, put_manifest
from registry_fixtures import Servers, servers  # noqa: F401  (fixture)
from supply_fixtures import build_hello

from oci_conda import artifacts as A
from oci_conda.sbom import CondaPackage, ImageSubject, SbomInput, render, sbom_artifact

pytestmark = pytest.mark.slow


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], check=True,
                          capture_output=True, timeout=60).stdout


def test_sboms_found_through_the_referrers_tag(servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    need_tool("skopeo")
    hello = build_hello(tmp_path)
    reg = servers.registry()
    repo = "team/hello"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci-archive:{hello.archive}",
                    f"docker://{reg.host}/{repo}:1"], check=True, capture_output=True, timeout=120)
    manifest = get_manifest(reg.url, repo, "1")
    assert manifest == hello.manifest  # skopeo kept the bytes, so the digest is the build's
    inp = SbomInput(ImageSubject(f"{reg.host}/{repo}", hello.manifest_digest, "linux/amd64", "1"), 1735689600,
                    tuple(CondaPackage.from_record(r) for r in hello.records.values()))
    subject = A.subject_descriptor(manifest)

    # the registry has no referrers API: a client must fall back to the tag schema
    assert requests.get(f"{reg.url}/v2/{repo}/referrers/{hello.manifest_digest}", timeout=10).status_code == 404
    tag = A.referrers_tag(hello.manifest_digest)
    pushed = {}
    for fmt in ("spdx", "cyclonedx"):
        art = sbom_artifact(fmt, render(fmt, inp), subject, inp.created)
        for data in art.blobs.values():
            put_blob(reg.url, repo, data)
        r = requests.put(f"{reg.url}/v2/{repo}/manifests/{art.digest}", data=art.manifest, timeout=10,
                         headers={"Content-Type": art.descriptor["mediaType"]})
        assert r.status_code == 201, r.text
        assert "OCI-Subject" not in r.headers  # so the fallback index is ours to keep
        index = A.add_referrer(get_manifest(reg.url, repo, tag), art.descriptor)
        put_manifest(reg.url, repo, tag, index, "application/vnd.oci.image.index.v1+json")
        pushed[art.descriptor["artifactType"]] = art

    # an independent client: from the image digest to the tag, the index, each artifact and its document
    listed = json.loads(skopeo_raw(f"{reg.host}/{repo}:{tag}"))
    assert listed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {d["artifactType"] for d in listed["manifests"]} == {"application/spdx+json",
                                                                "application/vnd.cyclonedx+json"}
    for d in listed["manifests"]:
        raw = skopeo_raw(f"{reg.host}/{repo}@{d['digest']}")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == d["digest"]
        man = json.loads(raw)
        assert man["subject"]["digest"] == hello.manifest_digest
        assert d["annotations"] == man["annotations"]
        doc = requests.get(f"{reg.url}/v2/{repo}/blobs/{man['layers'][0]['digest']}", timeout=10).content
        assert doc == pushed[d["artifactType"]].blobs[man["layers"][0]["digest"]]
        assert hello.manifest_digest in doc.decode()
    # pushing the same artifact again does not grow the list
    again = A.add_referrer(get_manifest(reg.url, repo, tag), listed["manifests"][0])
    assert len(json.loads(again)["manifests"]) == 2
