"""Push and pull against a real registry (CNCF distribution on loopback), checked with skopeo and podman; what is
uploaded is counted by a proxy in front of the registry."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import need_tool
from realenv import Podman, debian_base, oci_conda
from registry_fixtures import CountingProxy, Registry, Servers, module_servers, servers  # noqa: F401

from oci_conda.errors import ImageError
from registry_cli import HELLO_ENV, cli_env, hello  # noqa: F401 (hello is a fixture)

from oci_conda.oci.blobs import digest_bytes
from oci_conda.oci.image import Descriptor, Platform, append_layer, empty_image, manifest_descriptor, set_platform
from oci_conda.oci.registry.client import RegistryClient
from oci_conda.oci.registry.push import push_images
from oci_conda.oci.registry.reference import parse_reference
from oci_conda.oci.source import open_image

GREETING = "Hello from a conda package in an OCI image!"


def skopeo(*args: str) -> subprocess.CompletedProcess:
    need_tool("skopeo")
    p = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"skopeo {' '.join(args)}: {p.stderr}"
    return p


def raw_manifest(ref: str) -> dict:
    return json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)


@pytest.fixture(scope="module")
def reg(module_servers: Servers) -> tuple[Registry, CountingProxy]:  # noqa: F811
    r = module_servers.registry("shared")
    return r, module_servers.proxy(r)


def test_reference_parsing() -> None:
    r = parse_reference("docker://127.0.0.1:5000/a/b-c:1.0")
    assert (r.host, r.repository, r.tag, r.digest) == ("127.0.0.1:5000", "a/b-c", "1.0", None)
    d = "sha256:" + "a" * 64
    r = parse_reference(f"registry.example:443/x/y@{d}")
    assert (r.repository, r.tag, r.digest, r.reference) == ("x/y", None, d, d)
    assert parse_reference("localhost/x").reference == "latest"
    # Docker's rules for names without a registry, and Docker Hub's API host
    for short, full in (("busybox", "docker.io/library/busybox"), ("library/busybox:1", "docker.io/library/busybox:1"),
                        ("user/app", "docker.io/user/app"), ("index.docker.io/debian:12", "docker.io/library/debian:12")):
        assert str(parse_reference(short)) == full
    assert RegistryClient("docker.io").base == "https://registry-1.docker.io"
    for bad in ("UPPER", "127.0.0.1:5000/UPPER", "127.0.0.1:5000/a:b/c", "h.x/a@sha256:12", "docker.io/"):
        with pytest.raises(ImageError):
            parse_reference(bad)


def test_push_pull_with_skopeo_and_second_push_uploads_nothing(hello: dict, reg, tmp_path: Path) -> None:
    r, proxy = reg
    ref = f"{proxy.host}/oci-conda/hello:1"
    proxy.reset()
    p = oci_conda("push", str(hello["out"]), ref, env=cli_env(hello["work"]))
    digest = p.stdout.strip()
    assert digest == hello["summary"]["digest"]
    first = proxy.uploads()
    layers = hello["summary"]["platforms"][0]["layers"]
    assert len(first["completed"]) == len(layers) + 1  # the layers and the config
    # skopeo reads it back, byte for byte
    skopeo("copy", "--src-tls-verify=false", f"docker://{r.host}/oci-conda/hello:1", f"oci:{tmp_path / 'copy'}:x")
    index = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    assert raw_manifest(f"{r.host}/oci-conda/hello:1")["layers"][0]["digest"] == layers[0]["digest"]
    # again: every blob is HEADed and found, nothing is uploaded
    proxy.reset()
    p = oci_conda("push", str(hello["out"]), ref, "--json", env=cli_env(hello["work"]))
    again = proxy.uploads()
    assert again == {"started": [], "mounts": [], "patches": [], "completed": []}
    assert json.loads(p.stdout)["blobs"]["existing"] == len(layers) + 1
    # and it is readable as a base image through the registry transport
    img = open_image(f"{proxy.host}/oci-conda/hello@{digest}", Platform("linux", "amd64"))
    assert [layer.descriptor.digest for layer in img.layers] == [la["digest"] for la in layers]
    assert img.annotations["org.opencontainers.image.base.digest"] == digest


def test_changed_image_uploads_only_its_new_layer(hello: dict, reg) -> None:
    r, proxy = reg
    oci_conda("push", str(hello["out"]), f"{proxy.host}/oci-conda/changed:1", env=cli_env(hello["work"]))
    base = open_image(f"{proxy.host}/oci-conda/changed:1", Platform())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"a new file\n"
        info = tarfile.TarInfo("etc/extra.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    d = digest_bytes(blob)
    changed = append_layer(base, Descriptor("application/vnd.oci.image.layer.v1.tar", d, len(blob)), d,
                           lambda: io.BytesIO(blob), {"created_by": "test"})
    proxy.reset()
    res = push_images([changed], f"{proxy.host}/oci-conda/changed:2")
    up = proxy.uploads()
    config_digest = raw_manifest(f"{r.host}/oci-conda/changed:2")["config"]["digest"]
    assert sorted(up["completed"]) == sorted([d, config_digest])
    assert res.stats.uploaded == 2 and res.stats.existing == len(base.layers)
    assert res.digest == manifest_descriptor(changed).digest


def test_layers_pulled_from_the_registry_are_mounted_into_another_repository(hello: dict, reg) -> None:
    r, proxy = reg
    oci_conda("push", str(hello["out"]), f"{proxy.host}/oci-conda/mount-src:1", env=cli_env(hello["work"]))
    base = open_image(f"{proxy.host}/oci-conda/mount-src:1", Platform())
    # each layer knows where it came from: no registry-wide table of origins
    assert {layer.origin for layer in base.layers} == {(proxy.host, "oci-conda/mount-src")}
    proxy.reset()
    res = push_images([base], f"{proxy.host}/oci-conda/mount-dst:1")
    up = proxy.uploads()
    assert res.stats.mounted == len(base.layers) and res.stats.uploaded == 1  # the config is new in that repository
    assert len(up["mounts"]) == len(base.layers) and all("from=oci-conda/mount-src" in m for m in up["mounts"])
    assert res.digest == manifest_descriptor(base).digest


def test_build_push_without_output_gives_the_same_digest(hello: dict, reg, tmp_path: Path) -> None:
    r, proxy = reg
    p = oci_conda("build", str(HELLO_ENV), "--push", f"{proxy.host}/oci-conda/direct:1", "--json", cwd=tmp_path,
                  env=cli_env(hello["work"]))
    summary = json.loads(p.stdout)
    assert summary["output"] is None and list(tmp_path.iterdir()) == []
    assert summary["digest"] == summary["push"]["digest"] == hello["summary"]["digest"]
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{r.host}/oci-conda/direct:1").stdout)
    assert inspected["Digest"] == summary["digest"]


def test_multi_platform_index(reg) -> None:
    r, proxy = reg
    amd = set_platform(empty_image(Platform("linux", "amd64")), Platform("linux", "amd64"))
    arm = set_platform(empty_image(Platform("linux", "arm64", "v8")), Platform("linux", "arm64", "v8"))
    blob = b"not really a layer, but a blob\n"
    d = digest_bytes(blob)
    arm = append_layer(arm, Descriptor("application/vnd.oci.image.layer.v1.tar", d, len(blob)), d,
                       lambda: io.BytesIO(blob), {"created_by": "test"})
    res = push_images([amd, arm], f"{proxy.host}/oci-conda/multi:1", annotations={"org.example.k": "v"})
    index = raw_manifest(f"{r.host}/oci-conda/multi:1")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["digest"] for m in index["manifests"]] == res.manifests
    got = open_image(f"{proxy.host}/oci-conda/multi:1", Platform("linux", "arm64", "v8"))
    assert [la.descriptor.digest for la in got.layers] == [d]
    assert got.annotations["org.opencontainers.image.base.digest"] == res.manifests[1]


@pytest.mark.slow
def test_podman_pulls_and_runs_the_pushed_image(hello: dict, reg, tmp_path: Path) -> None:
    r, proxy = reg
    oci_conda("push", str(hello["out"]), f"{r.host}/oci-conda/run:1", env=cli_env(hello["work"]))
    podman = Podman(tmp_path / "podman")
    try:
        podman("pull", "--tls-verify=false", f"{r.host}/oci-conda/run:1")
        inspected = json.loads(podman("image", "inspect", f"{r.host}/oci-conda/run:1").stdout)
        assert inspected[0]["Digest"] == hello["summary"]["digest"]
        out = podman("run", "--rm", f"{r.host}/oci-conda/run:1").stdout
        assert GREETING in out
    finally:
        podman.cleanup()


@pytest.mark.slow
def test_base_from_registry_is_reused_byte_for_byte_and_mounted(hello: dict, servers: Servers,  # noqa: F811
                                                                tmp_path: Path) -> None:
    base_layout = debian_base()
    r = servers.registry()
    proxy = servers.proxy(r)
    skopeo("copy", "--dest-tls-verify=false", base_layout, f"docker://{r.host}/base/debian:bookworm")
    base_manifest = raw_manifest(f"{r.host}/base/debian:bookworm")
    base_ref = f"{proxy.host}/base/debian:bookworm"
    out = tmp_path / "app.tar"
    proxy.reset()
    p = oci_conda("build", str(HELLO_ENV), "--base", base_ref, "-o", str(out), "--push", f"{proxy.host}/app/hello:1",
                  "--json", env=cli_env(tmp_path))
    summary = json.loads(p.stdout)
    pushed = raw_manifest(f"{r.host}/app/hello:1")
    n = len(base_manifest["layers"])
    assert [la["digest"] for la in pushed["layers"][:n]] == [la["digest"] for la in base_manifest["layers"]]
    base_digest = skopeo("inspect", "--format", "{{.Digest}}", "--tls-verify=false",
                         f"docker://{r.host}/base/debian:bookworm").stdout.strip()
    assert pushed["annotations"]["org.opencontainers.image.base.digest"] == base_digest
    assert pushed["annotations"]["org.opencontainers.image.base.name"] == base_ref
    # the base's layers were mounted from base/debian, not uploaded again
    assert summary["push"]["blobs"]["mounted"] == n
    assert len(proxy.uploads()["mounts"]) == n
    assert summary["digest"] == summary["push"]["digest"]
    # the archive written next to it is the same image
    listed = json.loads(skopeo("inspect", "--raw", f"oci-archive:{out}").stdout)
    assert listed["layers"] == pushed["layers"]
    podman = Podman(tmp_path / "podman")
    try:
        podman("pull", "--tls-verify=false", f"{r.host}/app/hello:1")
        out = podman("run", "--rm", "--entrypoint", "/bin/sh", f"{r.host}/app/hello:1", "-c",
                     "/opt/conda/bin/hello && cat /etc/os-release").stdout
        assert GREETING in out and "bookworm" in out
    finally:
        podman.cleanup()


def test_env_file_base_from_the_registry(hello: dict, reg, tmp_path: Path) -> None:
    r, proxy = reg
    oci_conda("push", str(hello["out"]), f"{proxy.host}/oci-conda/envbase:1", env=cli_env(hello["work"]))
    env_file = tmp_path / "environment.yml"
    env_file.write_text(f"name: onbase\nchannels: [{HELLO_ENV.parent / 'channel'}]\ndependencies: [hello]\n"
                        f"image:\n  base: docker://{proxy.host}/oci-conda/envbase:1\n")
    out = tmp_path / "onbase.tar"
    oci_conda("build", str(env_file), "-o", str(out), env=cli_env(hello["work"]))
    manifest = json.loads(skopeo("inspect", "--raw", f"oci-archive:{out}").stdout)
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == f"{proxy.host}/oci-conda/envbase:1"
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == hello["summary"]["digest"]
    base_layers = [la["digest"] for la in hello["summary"]["platforms"][0]["layers"]]
    assert [la["digest"] for la in manifest["layers"][:len(base_layers)]] == base_layers
