"""``build --sbom`` through the command line: SPDX and CycloneDX files beside the output, validated, listing exactly
the image's conda-meta packages; the same documents attached to the image as OCI 1.1 artifacts in the archive (which
umoci, skopeo and podman still take) and in a layout; per platform for a multi-platform build; and on ``--push`` to a
real registry without the referrers API (CNCF distribution 2.8), found from the image digest through the
``sha256-<hex>`` fallback tag by independent clients (skopeo, and the ``oras`` Python client)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from conftest import REPO, need_tool
from ocipush import get_blob, get_manifest
from realenv import oci_conda
from registry_cli import cli_env
from registry_fixtures import Servers, servers  # noqa: F401  (fixture)
from sbom_validate import validate_cdx, validate_spdx
from supply_fixtures import build_hello

pytestmark = pytest.mark.slow

HELLO = REPO / "examples" / "hello" / "environment.yml"
SPDX, CDX = "application/spdx+json", "application/vnd.cyclonedx+json"


def tar_json(path: Path, name: str) -> dict:
    with tarfile.open(path) as t:
        return json.load(t.extractfile(name))  # type: ignore[arg-type]


def tar_blob(path: Path, digest: str) -> bytes:
    with tarfile.open(path) as t:
        return t.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]


def conda_names(spdx: bytes, cdx: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """name -> sha256 of the conda packages each document lists."""
    s = {p["name"]: p["checksums"][0]["checksumValue"] for p in json.loads(spdx)["packages"]
         if p["externalRefs"][0]["referenceLocator"].startswith("pkg:conda/")}
    c = {x["name"]: x["hashes"][0]["content"] for x in json.loads(cdx)["components"]
         if x["purl"].startswith("pkg:conda/")}
    return s, c


def test_build_sbom_archive_and_layout(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    hello = build_hello(tmp_path / "plain")  # conda-meta records as the image holds them, read with tarfile
    out = tmp_path / "hello.tar"
    env = cli_env(tmp_path, SOURCE_DATE_EPOCH="1735689600")
    t0 = time.perf_counter()
    res = oci_conda("build", str(HELLO), "-o", str(out), "--sbom", "spdx,cyclonedx", "--json", env=env)
    print(f"\nbuild --sbom: {time.perf_counter() - t0:.2f}s")
    summary = json.loads(res.stdout)
    spdx, cdx = (tmp_path / "hello.spdx.json").read_bytes(), (tmp_path / "hello.cdx.json").read_bytes()
    validate_spdx(spdx)
    validate_cdx(cdx)
    print(f"hello SBOM files: spdx {len(spdx)} B, cyclonedx {len(cdx)} B")
    expected = {n: r["sha256"] for n, r in hello.records.items()}
    assert conda_names(spdx, cdx) == (expected, expected)
    # the image is the one an SBOM-less build makes: attaching changes no image byte
    assert summary["manifest_digest"] == hello.manifest_digest
    assert json.loads(spdx)["packages"][0]["versionInfo"] == hello.manifest_digest

    index = tar_json(out, "index.json")
    image, *arts = index["manifests"]
    assert image["digest"] == hello.manifest_digest and "artifactType" not in image
    assert [a["artifactType"] for a in arts] == [SPDX, CDX]
    for a, doc in zip(arts, (spdx, cdx)):
        assert "org.opencontainers.image.ref.name" not in a.get("annotations", {})
        man = json.loads(tar_blob(out, a["digest"]))
        assert man["subject"] == {"mediaType": image["mediaType"], "digest": image["digest"], "size": image["size"]}
        assert tar_blob(out, man["layers"][0]["digest"]) == doc  # the attached document is the file beside
    assert [s["artifact"] for s in summary["sboms"]] == [a["digest"] for a in arts]

    # the tools still take the archive: umoci unpacks the image by name, skopeo copies it, podman loads it
    need_tool("umoci")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(out) as t:
        t.extractall(layout, filter="data")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:localhost/hello:latest", str(tmp_path / "bundle")], check=True,
                   capture_output=True, timeout=120)
    assert (tmp_path / "bundle/rootfs/opt/conda/conda-meta").is_dir()
    need_tool("skopeo")
    subprocess.run(["skopeo", "copy", f"oci-archive:{out}:localhost/hello:latest", f"dir:{tmp_path / 'copied'}"], check=True,
                   capture_output=True, timeout=120)
    # our own commands pick the image, not an artifact, when no name is given
    pushed_view = json.loads(oci_conda("inspect", str(out), "--json", env=env).stdout)
    (view,) = pushed_view["platforms"]
    assert [r["artifact_type"] for r in view["referrers"]] == [SPDX, CDX]
    assert [r["size"] for r in view["referrers"]] == [len(spdx), len(cdx)]

    # deterministic: the same build again gives the same archive and documents
    again = tmp_path / "again"
    again.mkdir()
    oci_conda("build", str(HELLO), "-o", str(again / "hello.tar"), "--sbom", "spdx,cyclonedx", env=env)
    assert (again / "hello.tar").read_bytes() == out.read_bytes()
    assert (again / "hello.spdx.json").read_bytes() == spdx and (again / "hello.cdx.json").read_bytes() == cdx

    # a layout directory holds the same artifacts; only CycloneDX when only that is asked for
    oci_conda("build", str(HELLO), "-o", str(tmp_path / "dir"), "--sbom", "cdx", env=env)
    idx = json.loads((tmp_path / "dir" / "index.json").read_bytes())
    assert [m.get("artifactType") for m in idx["manifests"]] == [None, CDX]
    assert (tmp_path / "dir.cdx.json").read_bytes() == cdx and not (tmp_path / "dir.spdx.json").exists()


def test_podman_loads_an_archive_with_sboms(tmp_path: Path) -> None:
    need_tool("podman")
    out = tmp_path / "hello.tar"
    oci_conda("build", str(HELLO), "-o", str(out), "--sbom", "spdx", env=cli_env(tmp_path))
    conf, storage = tmp_path / "containers.conf", tmp_path / "storage.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\nnetns = "none"\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n')
    storage.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path}/graph"\nrunroot = "{tmp_path}/run"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}
    r = subprocess.run(["podman", "load", "-i", str(out)], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "localhost/hello:latest" in r.stdout, r.stderr
    r = subprocess.run(["podman", "run", "--rm", "--pull", "never", "localhost/hello:latest"], check=False, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "greeting.txt" in r.stdout, r.stderr
    subprocess.run(["podman", "rmi", "-a", "-f"], env=env, capture_output=True, timeout=120, check=False)


def test_multi_platform_sboms_are_named_by_platform(tmp_path: Path) -> None:
    env_file = tmp_path / "env.yml"
    env_file.write_text(f"name: data\nchannels:\n  - {REPO / 'examples/hello/channel'}\ndependencies:\n  - hello-data\n")
    out = tmp_path / "multi.tar"
    oci_conda("build", str(env_file), "-o", str(out), "--platform", "linux-64", "--platform", "linux-aarch64",
              "--sbom", "spdx,cyclonedx", env=cli_env(tmp_path))
    index = tar_json(out, "index.json")
    top, *arts = index["manifests"]
    platforms = {m["digest"]: "/".join(m["platform"][k] for k in ("os", "architecture", "variant")
                                       if m["platform"].get(k))
                 for m in json.loads(tar_blob(out, top["digest"]))["manifests"]}
    assert sorted(platforms.values()) == ["linux/amd64", "linux/arm64/v8"]
    assert len(arts) == 4
    for a in arts:
        man = json.loads(tar_blob(out, a["digest"]))
        plat = platforms[man["subject"]["digest"]]  # each SBOM is about one platform's manifest
        suffix = ".spdx.json" if a["artifactType"] == SPDX else ".cdx.json"
        beside = tmp_path / f"multi.{plat.replace('/', '-')}{suffix}"
        doc = tar_blob(out, man["layers"][0]["digest"])
        assert beside.read_bytes() == doc
        (validate_spdx if suffix == ".spdx.json" else validate_cdx)(doc)
        assert man["subject"]["digest"] in doc.decode()
    assert not (tmp_path / "multi.spdx.json").exists()


def test_push_sbom_found_through_the_fallback_tag(servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    need_tool("skopeo")
    reg = servers.registry()
    ref = f"{reg.host}/team/hello:1"
    env = cli_env(tmp_path)
    res = json.loads(oci_conda("build", str(HELLO), "--push", ref, "--sbom", "spdx,cyclonedx", "--json",
                               env=env).stdout)
    digest = res["push"]["digest"]
    assert get_manifest(reg.url, "team/hello", "1") is not None
    tag = "sha256-" + digest.split(":")[1]
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/team/hello:{tag}"],
                         check=True, capture_output=True, timeout=60).stdout
    listed = json.loads(raw)
    assert listed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [d["artifactType"] for d in listed["manifests"]] == [SPDX, CDX]
    assert [d["digest"] for d in listed["manifests"]] == [s["artifact"] for s in res["sboms"]]
    for d in listed["manifests"]:
        man_raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                  f"docker://{reg.host}/team/hello@{d['digest']}"], check=True, capture_output=True,
                                 timeout=60).stdout
        assert "sha256:" + hashlib.sha256(man_raw).hexdigest() == d["digest"]
        man = json.loads(man_raw)
        assert man["subject"]["digest"] == digest
        doc = get_blob(reg.url, "team/hello", man["layers"][0]["digest"])
        (validate_spdx if d["artifactType"] == SPDX else validate_cdx)(doc)
        assert f"{reg.host}/team/hello" in doc.decode() and digest in doc.decode()

    # an independent client library reads the same index under the fallback tag
    oras_provider = pytest.importorskip("oras.provider")
    got = oras_provider.Registry(hostname=reg.host, insecure=True).get_manifest(f"{reg.host}/team/hello:{tag}")
    assert [m["digest"] for m in got["manifests"]] == [d["digest"] for d in listed["manifests"]]

    # inspect on the registry finds them (and no signature yet); a second push of the same image adds nothing
    view = json.loads(oci_conda("inspect", ref, "--json", env=env).stdout)
    assert view["digest"] == digest
    info = view["subjects"][digest]
    assert info["listed_by"] == tag and info["cosign_signatures"] == 0
    assert [r["artifact_type"] for r in info["referrers"]] == [SPDX, CDX]
    oci_conda("build", str(HELLO), "--push", ref, "--sbom", "spdx,cyclonedx", env=env)
    assert json.loads(get_manifest(reg.url, "team/hello", tag) or b"{}") == listed


def test_push_of_an_archive_takes_its_sboms_along(servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    reg = servers.registry()
    env = cli_env(tmp_path)
    out = tmp_path / "hello.tar"
    oci_conda("build", str(HELLO), "-o", str(out), "--sbom", "spdx,cyclonedx", env=env)
    image, *arts = tar_json(out, "index.json")["manifests"]
    digest = oci_conda("push", str(out), f"{reg.host}/team/copy:1", env=env).stdout.strip()
    assert digest == image["digest"]  # the image, not an artifact, is what the tag names
    listed = json.loads(get_manifest(reg.url, "team/copy", "sha256-" + digest.split(":")[1]) or b"{}")
    assert [(d["digest"], d["artifactType"]) for d in listed["manifests"]] == \
        [(a["digest"], a["artifactType"]) for a in arts]
    for a in arts:
        assert get_manifest(reg.url, "team/copy", a["digest"]) == tar_blob(out, a["digest"])
