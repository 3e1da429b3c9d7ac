"""A non-root user: image.owner / --chown make the environment's files (and nothing above the prefix) owned by
that user, so `podman run --user UID:GID` can write in the prefix; layers are keyed by the owner too."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
from conftest import need_tool
from pkgbuilder import build_package, index_channel
from realenv import Podman, oci_conda, one_error_line

from oci_conda.oci.blobs import file_opener
from oci_conda.oci.image import (
    Descriptor,
    Platform,
    append_layer,
    empty_image,
    set_config,
)
from oci_conda.oci.output import write_output
from oci_conda.oci.tar import TarEntry, write_layer

BUSYBOX = Path("/bin/busybox")


def _busybox_base(tmp_path: Path) -> str:
    if not BUSYBOX.is_file():
        need_tool("busybox")
    blob = tmp_path / "busybox-layer"
    with open(blob, "wb") as f:
        info = write_layer([TarEntry("bin", "dir", 0o755),
                            TarEntry("bin/busybox", "file", 0o755, size=BUSYBOX.stat().st_size, source=str(BUSYBOX)),
                            TarEntry("bin/sh", "symlink", linkname="busybox"),
                            TarEntry("bin/touch", "symlink", linkname="busybox"),
                            TarEntry("tmp", "dir", 0o777)], f, "gzip", 0)
    img = append_layer(empty_image(Platform("linux", "amd64")), Descriptor(info.media_type, info.digest, info.size),
                       info.diff_id, file_opener(blob), {"created_by": "busybox", "created": "1970-01-01T00:00:00Z"})
    write_output(tmp_path / "busybox", [set_config(img, env=["PATH=/bin"], created=0)], tag="busybox")
    return f"oci:{tmp_path / 'busybox'}:busybox"


def _env(tmp_path: Path, image: str = "{}") -> tuple[Path, dict]:
    chan = tmp_path / "channel"
    build_package(chan / "linux-64", "tool", "1.0", files={"bin/tool": "#!/bin/sh\necho tool\n",
                                                           "share/tool/data.txt": "data\n"})
    index_channel(chan)
    f = tmp_path / "environment.yml"
    f.write_text(f"name: tool\nchannels: ['./channel']\ndependencies: [tool]\nimage: {image}\n")
    return f, dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))


def _layer_owners(archive: Path, work: Path) -> dict[str, tuple[int, int]]:
    with tarfile.open(archive) as tf:
        tf.extractall(work, filter="data")
    index = json.loads((work / "index.json").read_text())
    manifest = json.loads((work / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    owners = {}
    for layer in manifest["layers"]:
        with tarfile.open(work / "blobs/sha256" / layer["digest"][7:]) as lt:
            for m in lt:
                owners[m.name.rstrip("/")] = (m.uid, m.gid)
    return owners


def test_owner_applies_to_the_prefix_only_and_keys_the_layers(tmp_path: Path) -> None:
    env_file, env = _env(tmp_path)
    root = oci_conda("build", str(env_file), "-o", str(tmp_path / "root.tar"), "--json", env=env)
    owned = oci_conda("build", str(env_file), "-o", str(tmp_path / "owned.tar"), "--chown", "1000:1001", "--json",
                      env=env)
    owners = _layer_owners(tmp_path / "owned.tar", tmp_path / "x")
    assert owners["opt"] == (0, 0)
    assert owners["opt/conda"] == owners["opt/conda/bin/tool"] == owners["opt/conda/conda-meta"] == (1000, 1001)
    assert set(_layer_owners(tmp_path / "root.tar", tmp_path / "y").values()) == {(0, 0)}
    digests = lambda p: [la["digest"] for la in json.loads(p.stdout)["platforms"][0]["layers"]]
    assert not set(digests(root)) & set(digests(owned))  # a different owner is a different layer, never the cached one
    again = oci_conda("build", str(env_file), "-o", str(tmp_path / "root2.tar"), "--json", env=env)
    assert digests(again) == digests(root)


def test_bad_owner_is_one_line(tmp_path: Path) -> None:
    env_file, env = _env(tmp_path, "{owner: '1000'}")
    p = oci_conda("build", str(env_file), "-o", str(tmp_path / "x.tar"), env=env, check=False)
    assert p.returncode == 2 and "image.owner" in one_error_line(p)
    env_file, env = _env(tmp_path)
    p = oci_conda("build", str(env_file), "-o", str(tmp_path / "x.tar"), "--chown", "99999999:1", env=env,
                  check=False)
    assert p.returncode == 2 and "--chown" in one_error_line(p) and not (tmp_path / "x.tar").exists()


@pytest.mark.slow
def test_non_root_user_writes_in_the_prefix_under_podman(tmp_path: Path) -> None:
    base = _busybox_base(tmp_path)
    env_file, env = _env(tmp_path, f"{{base: '{base}', owner: '1000:1000', user: '1000:1000'}}")
    out = tmp_path / "tool.tar"
    oci_conda("build", str(env_file), "-o", str(out), "-q", env=env)
    pm = Podman(tmp_path / "podman")
    try:
        run = pm("run", "--rm", "--user", "1000:1000", f"oci-archive:{out}", "sh", "-c",
                 "touch /opt/conda/x && touch /opt/conda/share/tool/y && echo written")
        assert run.stdout.strip() == "written"
        # and the root-owned build refuses it, which is why the option exists
        oci_conda("build", str(env_file), "-o", str(tmp_path / "r.tar"), "--chown", "0:0", "-q", env=env)
        run = pm("run", "--rm", "--user", "1000:1000", f"oci-archive:{tmp_path / 'r.tar'}", "touch", "/opt/conda/x",
                 check=False)
        assert run.returncode != 0
    finally:
        pm.cleanup()
