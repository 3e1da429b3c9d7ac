"""The image model and its JSON, checked against the OCI image-spec v1.1.1 JSON schemas (realdata/oci-schemas)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from oci_conda.errors import ImageError
from oci_conda.platforms import platform_for_subdir
from oci_schema import SCHEMAS, oci_validator  # noqa: F401
from oci_conda.oci.image import (
    Descriptor,
    Image,
    Platform,
    append_layer,
    canonical_json,
    config_bytes,
    empty_image,
    index_bytes,
    manifest_bytes,
    manifest_descriptor,
    merge_env,
    set_annotations,
    set_config,
)

def _layer(n: int) -> tuple[Descriptor, str, Any]:
    payload = f"layer {n}".encode()
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    diff_id = "sha256:" + hashlib.sha256(payload + b"tar").hexdigest()
    desc = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(payload))
    return desc, diff_id, lambda: io.BytesIO(payload)


def _image() -> Image:
    img = empty_image(Platform("linux", "arm64", "v8"))
    for n in range(2):
        desc, diff_id, opener = _layer(n)
        img = append_layer(img, desc, diff_id, opener, {"created_by": f"step {n}", "created": "1970-01-01T00:00:00Z"})
    return set_config(img, env=["PATH=/opt/conda/bin"], entrypoint=["/bin/sh"], cmd=["-c", "true"], workdir="/w",
                      user="1000", labels={"a": "b"}, created=0)


def test_schema_validator_rejects_a_bad_manifest(realdata: Path) -> None:
    v = oci_validator(realdata, "manifest")
    bad = {"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}, "layers": []}
    assert list(v.iter_errors(bad))
    # and accepts the spec's own example
    v.validate(json.loads((realdata / "oci-schemas/examples/manifest-example-1.json").read_text()))


def test_canonical_json() -> None:
    assert canonical_json({"b": "é", "a": [1, {"d": None, "c": True}]}) == (
        b'{"a":[1,{"c":true,"d":null}],"b":"\xc3\xa9"}'
    )


def test_platform_table() -> None:
    assert platform_for_subdir("linux-64") == Platform("linux", "amd64")
    assert platform_for_subdir("linux-aarch64") == Platform("linux", "arm64", "v8")
    assert platform_for_subdir("linux-ppc64le") == Platform("linux", "ppc64le")
    assert platform_for_subdir("linux-s390x") == Platform("linux", "s390x")
    assert platform_for_subdir("linux-armv7l") == Platform("linux", "arm", "v7")
    with pytest.raises(ImageError, match="osx-arm64"):
        platform_for_subdir("osx-arm64")
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert Platform.parse("linux/arm/v7") == Platform("linux", "arm", "v7")
    assert Platform("linux", "arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform("linux", "arm", "v7").matches(Platform("linux", "arm", "v6"))


def test_descriptor_round_trip_and_validation(realdata: Path) -> None:
    d = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "a" * 64, 7, {"k": "v"},
                   Platform("linux", "arm64", "v8"))
    oci_validator(realdata, "descriptor").validate(d.to_json())
    assert Descriptor.from_json(json.loads(json.dumps(d.to_json()))) == d
    with pytest.raises(ImageError, match="digest"):
        Descriptor.from_json({"mediaType": "x/y", "digest": "sha256:../../etc/passwd", "size": 1})
    with pytest.raises(ImageError, match="size"):
        Descriptor.from_json({"mediaType": "x/y", "digest": "sha256:" + "a" * 64})


def test_merge_env() -> None:
    base = ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C", "HOME=/root"]
    ours = ["PATH=/opt/conda/bin:/usr/bin", "LANG=C.UTF-8", "CONDA_PREFIX=/opt/conda"]
    assert merge_env(base, ours) == [
        "PATH=/opt/conda/bin:/usr/bin:/usr/local/bin:/bin",
        "LANG=C.UTF-8",
        "HOME=/root",
        "CONDA_PREFIX=/opt/conda",
    ]
    assert merge_env([], ["PATH=/a:/a:/b"]) == ["PATH=/a:/b"]
    assert merge_env(["PATH=/bin"], ["PATH=/opt/x:$PATH"]) == ["PATH=/opt/x:/bin"]
    assert merge_env(["A=1"], []) == ["A=1"]


def test_set_config_follows_docker_rules() -> None:
    base = empty_image(Platform())
    base = set_config(base, env=["PATH=/bin"], entrypoint=["/entry"], cmd=["base-cmd"], workdir="/base", user="nobody",
                      labels={"x": "1", "y": "base"})
    assert base.config["config"]["Cmd"] == ["base-cmd"]
    # a new entrypoint drops the base's Cmd; untouched fields stay
    child = set_config(base, entrypoint=["/ours"], labels={"y": "ours"})
    run = child.config["config"]
    assert run["Entrypoint"] == ["/ours"] and "Cmd" not in run
    assert run["WorkingDir"] == "/base" and run["User"] == "nobody" and run["Env"] == ["PATH=/bin"]
    assert run["Labels"] == {"x": "1", "y": "ours"}
    # only Cmd: entrypoint is kept
    child2 = set_config(base, cmd=["other"])
    assert child2.config["config"]["Entrypoint"] == ["/entry"] and child2.config["config"]["Cmd"] == ["other"]
    # values, not references: the base is unchanged
    assert base.config["config"]["Labels"] == {"x": "1", "y": "base"}
    assert base.config["config"]["Entrypoint"] == ["/entry"]
    assert set_config(base, created=86400 * 365).config["created"] == "1971-01-01T00:00:00Z"


def test_append_layer_keeps_rootfs_and_history_in_step() -> None:
    img = _image()
    assert img.config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id for layer in img.layers]}
    assert [h["created_by"] for h in img.config["history"]] == ["step 0", "step 1"]
    assert [layer.open().read() for layer in img.layers] == [b"layer 0", b"layer 1"]
    assert empty_image(Platform()).layers == ()


def test_documents_validate_and_digests_agree(realdata: Path) -> None:
    img = set_annotations(_image(), {"org.opencontainers.image.title": "t"})
    cfg = config_bytes(img)
    oci_validator(realdata, "config").validate(json.loads(cfg))
    man = manifest_bytes(img, {"org.opencontainers.image.version": "1"})
    doc = json.loads(man)
    oci_validator(realdata, "manifest").validate(doc)
    assert doc["config"]["digest"] == "sha256:" + hashlib.sha256(cfg).hexdigest()
    assert doc["config"]["size"] == len(cfg)
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json" and doc["schemaVersion"] == 2
    assert doc["annotations"] == {"org.opencontainers.image.title": "t", "org.opencontainers.image.version": "1"}
    assert [layer["digest"] for layer in doc["layers"]] == [layer.descriptor.digest for layer in img.layers]
    assert json.loads(cfg)["architecture"] == "arm64" and json.loads(cfg)["variant"] == "v8"

    md = manifest_descriptor(img, {"org.opencontainers.image.version": "1"})
    assert md.digest == "sha256:" + hashlib.sha256(man).hexdigest() and md.size == len(man)
    idx = json.loads(index_bytes([md], {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}))
    oci_validator(realdata, "index").validate(idx)
    assert idx["manifests"][0]["platform"] == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    # canonical: serialising again gives the same bytes
    assert manifest_bytes(img, {"org.opencontainers.image.version": "1"}) == man


def test_config_must_match_layers() -> None:
    img = _image()
    broken = Image({**img.config, "rootfs": {"type": "layers", "diff_ids": []}}, img.layers)
    with pytest.raises(ImageError, match="diff_ids"):
        config_bytes(broken)
