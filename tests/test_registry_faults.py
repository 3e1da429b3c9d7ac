"""Faults against the real registry: killed in the middle of a large blob (rerun; and resumed within one run),
refused credentials, unknown repository, a digest the registry rejects, nobody listening. Each is one line and a
non-zero exit; nothing finished is uploaded twice."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from realenv import oci_conda, one_error_line
from registry_fixtures import Servers, free_port, servers  # noqa: F401
from registry_cli import HELLO_ENV, cli_env, hello  # noqa: F401

from oci_conda.oci.blobs import digest_bytes, file_opener
from oci_conda.oci.image import Descriptor, Platform, append_layer, empty_image
from oci_conda.oci.layout import LayoutDirSource, write_oci_dir
from oci_conda.oci.registry.client import RegistryClient, RegistryError
from oci_conda.oci.registry.pull import get_blob_bytes, pull_image
from oci_conda.oci.registry.push import PushStats, push_path, put_monolithic, start_upload
from oci_conda.oci.walk import select_ref
from oci_conda.registry_options import registry_options

MiB = 1 << 20
BIG = 12 * MiB
CHUNKED = {"OCI_CONDA_UPLOAD_CHUNK_SIZE": str(MiB), "OCI_CONDA_UPLOAD_MONOLITHIC_MAX": str(MiB)}


@pytest.fixture(scope="module")
def big_layout(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An image with one large incompressible layer (uploaded in 1 MiB chunks here) and three small ones."""
    work = tmp_path_factory.mktemp("big")
    img = empty_image(Platform())
    digests = []
    for i, size in enumerate((BIG, 1000, 2000, 3000)):
        path = work / f"layer{i}"
        path.write_bytes(os.urandom(size))
        d = digest_bytes(path.read_bytes())
        digests.append(d)
        img = append_layer(img, Descriptor("application/vnd.oci.image.layer.v1.tar", d, size), d, file_opener(path),
                           {"created_by": f"layer {i}"})
    layout = work / "layout"
    top = write_oci_dir(layout, [(img, "big:1")])
    return {"layout": layout, "big": digests[0], "small": digests[1:], "digest": top[0].digest}


def test_registry_killed_mid_blob_then_rerun_uploads_only_what_is_missing(big_layout: dict, servers: Servers,  # noqa: F811
                                                                           tmp_path: Path) -> None:
    reg = servers.registry()
    proxy = servers.proxy(reg)
    state = {"patches": 0, "dead": False}

    def before(method: str, path: str) -> bool:
        if state["dead"]:
            return False
        if method == "PATCH":
            state["patches"] += 1
            done = proxy.uploads()["completed"]
            if state["patches"] >= 4 and len(done) >= 4:  # the small blobs and the config are in
                reg.kill()
                state["dead"] = True
                return False
        return True

    proxy.before = before
    env = cli_env(tmp_path, **CHUNKED)
    ref = f"{proxy.host}/faults/big:1"
    p = oci_conda("push", "-q", str(big_layout["layout"]), ref, env=env, check=False)
    line = one_error_line(p)
    assert big_layout["big"] in line and proxy.host in line and "connection" in line
    first = set(proxy.uploads()["completed"])
    assert set(big_layout["small"]) <= first and big_layout["big"] not in first
    reg.start()  # same storage, same port
    proxy.before = None
    proxy.reset()
    p = oci_conda("push", str(big_layout["layout"]), ref, env=env)
    assert p.stdout.strip() == big_layout["digest"]
    again = proxy.uploads()
    assert again["completed"] == [big_layout["big"]]
    assert len(again["started"]) == 1
    img = pull_image(ref, Platform(), registry_options())
    assert [la.descriptor.digest for la in img.layers] == [big_layout["big"], *big_layout["small"]]


def test_interrupted_chunked_upload_resumes_where_the_registry_stopped(big_layout: dict, servers: Servers,  # noqa: F811
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in CHUNKED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OCI_CONDA_REGISTRY_BACKOFF", "0.2")
    reg = servers.registry()
    proxy = servers.proxy(reg)
    state = {"patches": 0, "restarting": None}

    def before(method: str, path: str) -> bool:
        if state["restarting"] is not None and state["restarting"].is_alive():
            return False
        if method == "PATCH":
            state["patches"] += 1
            if state["patches"] == 5:  # four chunks are in: the registry dies and comes back a moment later
                reg.kill()
                state["restarting"] = threading.Thread(target=reg.start)
                state["restarting"].start()
                return False
        return True

    proxy.before = before
    res = push_path(str(big_layout["layout"]), f"{proxy.host}/faults/resume:1", registry_options())
    state["restarting"].join()
    assert res.digest == big_layout["digest"]
    assert res.stats.resumes == 1 and res.stats.restarts == 0
    assert res.stats.bytes_uploaded == BIG + 6000 + len(
        get_blob_bytes(RegistryClient(proxy.host), "faults/resume", _config_desc(big_layout)))
    sent = proxy.uploads()["patches"]
    assert sum(sent) == BIG + MiB  # every chunk once, plus the one the dying registry never got
    img = pull_image(f"{proxy.host}/faults/resume:1", Platform(), registry_options())
    with img.layers[0].open() as f:  # downloaded and verified against its digest
        assert len(f.read()) == BIG


def _config_desc(big_layout: dict) -> Descriptor:
    import json

    src = LayoutDirSource(big_layout["layout"])
    top = select_ref(src.index(), None, "x")
    man = json.loads(src.fetch(top))
    return Descriptor.from_json(man["config"])


def test_clear_errors(hello: dict, big_layout: dict, servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    reg = servers.registry()
    env = cli_env(tmp_path)
    # nobody listening
    dead = f"127.0.0.1:{free_port()}"
    line = one_error_line(oci_conda("push", "-q", str(hello["out"]), f"{dead}/x/y:1", env=env, check=False))
    assert "connection refused" in line and dead in line
    # unknown repository, unknown tag (as a base image)
    out = tmp_path / "o.tar"
    line = one_error_line(oci_conda("build", "-q", str(HELLO_ENV), "-o", str(out), "--base", f"{reg.host}/no/such:1",
                                    env=env, check=False))
    assert f"registry {reg.host}: repository no/such not found" in line and not out.exists()
    oci_conda("push", "-q", str(hello["out"]), f"{reg.host}/some/repo:1", env=env)
    line = one_error_line(oci_conda("build", "-q", str(HELLO_ENV), "-o", str(out), "--base",
                                    f"{reg.host}/some/repo:nope", env=env, check=False))
    assert "some/repo has no image nope" in line
    # the registry rejects a blob whose bytes do not match its digest
    client = RegistryClient(reg.host)
    wrong = Descriptor("application/octet-stream", digest_bytes(b"other bytes"), 5)
    location = start_upload(client, "some/repo", ("repository:some/repo:pull,push",), "test")
    with pytest.raises(RegistryError, match=f"{reg.host}/some/repo: blob {wrong.digest}: HTTP 400.*DIGEST_INVALID"):
        put_monolithic(client, "some/repo", location, b"bytes", wrong, ("repository:some/repo:pull,push",),
                               f"{reg.host}/some/repo: blob {wrong.digest}", PushStats())
    # a corrupted local blob is caught before it is sent
    import shutil

    layout = tmp_path / "corrupt"
    shutil.copytree(big_layout["layout"], layout)
    victim = layout / "blobs" / "sha256" / big_layout["small"][0].split(":")[1]
    victim.write_bytes(b"x" + victim.read_bytes()[1:])
    line = one_error_line(oci_conda("push", "-q", str(layout), f"{reg.host}/some/corrupt:1", env=env, check=False))
    assert big_layout["small"][0] in line and "does not match" in line
    # no such archive
    line = one_error_line(oci_conda("push", "-q", str(tmp_path / "missing.tar"), f"{reg.host}/a/b", env=env,
                                    check=False))
    assert "missing.tar" in line


def test_retries_on_429_and_5xx_and_blobs_from_a_redirect(hello: dict, servers: Servers, serve_dir,  # noqa: F811
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_REGISTRY_BACKOFF", "0.01")
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache"))
    reg = servers.registry()
    proxy = servers.proxy(reg)
    answered: list = []

    def flaky(method: str, path: str) -> object:
        # the first HEAD is throttled, the first two manifest PUTs fail, one blob upload is dropped on the floor
        if method == "HEAD" and not any(a[0] == 429 for a in answered):
            answered.append((429, path))
            return (429, {"Retry-After": "0"})
        if method == "PUT" and "/manifests/" in path and sum(a[0] == 503 for a in answered) < 2:
            answered.append((503, path))
            return (503, {})
        if method == "PUT" and "/blobs/uploads/" in path and not any(a[0] == "drop" for a in answered):
            answered.append(("drop", path))
            return False
        return None

    proxy.before = flaky
    res = push_path(str(hello["out"]), f"{proxy.host}/flaky/hello:1", registry_options())
    assert res.digest == hello["summary"]["digest"]
    assert sorted(str(a[0]) for a in answered) == ["429", "503", "503", "drop"]
    assert res.stats.restarts == 1  # the dropped blob's upload began again
    # blob storage on another host: the registry answers GETs of blobs with a redirect there
    store = tmp_path / "bucket"
    store.mkdir()
    for blob in (reg.root / "storage").rglob("data"):
        if "/blobs/sha256/" in str(blob):
            (store / blob.parent.name).write_bytes(blob.read_bytes())
    bucket = serve_dir(store)
    bucket_url = bucket.url.replace("127.0.0.1", "localhost")

    def redirect(method: str, path: str) -> object:
        if method == "GET" and "/blobs/sha256:" in path:
            return (307, {"Location": f"{bucket_url}/{path.rsplit(':', 1)[1]}"})
        return None

    proxy.before = redirect
    img = pull_image(f"{proxy.host}/flaky/hello:1", Platform(), registry_options())
    for layer in img.layers:
        with layer.open() as f:
            f.read()
    fetched = [path for _, path, _ in bucket.requests]
    layers = {"/" + la.descriptor.digest.split(":")[1] for la in img.layers}
    assert layers <= set(fetched) and len(fetched) == len(layers) + 1  # the layers and the config, once each
    assert all("Authorization" not in headers for *_, headers in bucket.requests)
