"""The build stage called directly (no CLI): the example channel becomes an OCI archive whose index, manifest,
config and layers say what the build result says, byte for byte; the same inputs give the same digest with a cold
or a warm cache and from a lock; nothing appears at the output when a stage fails."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from conftest import REPO

from oci_conda.build import build_image
from oci_conda.errors import OutputError, SpecError
from oci_conda.options import BuildOptions
from oci_conda.progress import Reporter
from oci_conda.resolve import create_lock
from oci_conda.spec import load_spec, with_overrides

HELLO = REPO / "examples" / "hello" / "environment.yml"
EPOCH = 1700000000  # 2023-11-14T22:13:20Z


def _blob(t: tarfile.TarFile, digest: str) -> bytes:
    f = t.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
    assert f is not None
    return f.read()


def _layer_files(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as lt:
        return {m.name: (lt.extractfile(m).read() if m.isreg() else None) for m in lt}  # type: ignore[union-attr]


@pytest.fixture
def quiet() -> Reporter:
    return Reporter("quiet")


@pytest.fixture(autouse=True)
def fixed_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


def test_build_image_writes_what_the_result_says(tmp_path: Path, cache_env: Path, quiet: Reporter) -> None:
    spec = with_overrides(load_spec(HELLO), prefix="/opt/env")
    out = tmp_path / "hello.tar"
    result = build_image(spec, BuildOptions(output=out), quiet)

    assert result.output == out and result.output_size == out.stat().st_size
    (plat,) = result.platforms
    assert plat.subdir == "linux-64"
    assert [r.name for r in plat.packages] == ["hello-data", "hello"]  # dependency order
    assert [layer["source"] for layer in plat.layers] == ["hello-data-1.0-0", "hello-1.0-0", "environment files"]
    with tarfile.open(out) as t:
        index = json.loads(t.extractfile("index.json").read())  # type: ignore[union-attr]
        (top,) = index["manifests"]
        assert top["digest"] == result.digest == plat.manifest_digest
        manifest_bytes = _blob(t, top["digest"])
        assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == top["digest"]
        manifest = json.loads(manifest_bytes)
        config = json.loads(_blob(t, manifest["config"]["digest"]))
        assert [d["digest"] for d in manifest["layers"]] == [layer["digest"] for layer in plat.layers]
        layers = []
        for desc, info in zip(manifest["layers"], plat.layers):
            data = _blob(t, desc["digest"])
            assert len(data) == desc["size"] == info["size"]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
            layers.append(_layer_files(data))
    assert config["rootfs"]["diff_ids"] == [layer["diff_id"] for layer in plat.layers]
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["config"]["Entrypoint"] == ["/opt/conda/bin/hello"]
    assert "PATH=/opt/env/bin" in config["config"]["Env"] and "CONDA_PREFIX=/opt/env" in config["config"]["Env"]
    data_layer, hello_layer, env_layer = layers
    # each package's layer holds its own files and its conda-meta record, at the image prefix, placeholders replaced
    assert data_layer["opt/env/share/hello/greeting.txt"] is not None
    assert b"installed at /opt/env/share/hello/greeting.txt" in data_layer["opt/env/share/hello/greeting.txt"]
    assert "opt/env/conda-meta/hello-data-1.0-0.json" in data_layer
    assert "opt/env/bin/hello" in hello_layer and "opt/env/conda-meta/hello-1.0-0.json" in hello_layer
    assert "opt/env/bin/hello" not in data_layer and "opt/env/conda-meta/history" in env_layer
    with tarfile.open(out) as t, tarfile.open(fileobj=io.BytesIO(_blob(t, manifest["layers"][1]["digest"]))) as lt:
        members = lt.getmembers()
    assert members and all(m.mtime == EPOCH and m.uid == m.gid == 0 and m.uname == m.gname == "" for m in members)
    assert [m.name for m in members] == sorted(m.name for m in members)


def test_same_digest_cold_warm_and_from_a_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               quiet: Reporter) -> None:
    spec = load_spec(HELLO)
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-1"))
    cold = build_image(spec, BuildOptions(output=tmp_path / "cold.tar"), quiet)
    warm = build_image(spec, BuildOptions(output=tmp_path / "warm"), quiet)  # a layout directory this time
    assert warm.digest == cold.digest
    assert (tmp_path / "warm" / "blobs" / "sha256" / cold.digest.split(":")[1]).is_file()

    lock = create_lock(spec, BuildOptions(compression="zstd"), quiet)
    assert lock.options["compression"] == "zstd" and lock.options["source_date_epoch"] == EPOCH
    assert [r.name for r in lock.for_platform("linux-64").packages] == ["hello-data", "hello"]
    zstd = build_image(spec, BuildOptions(output=tmp_path / "z.tar", compression="zstd"), quiet)
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-2"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH")  # the lock carries the time
    locked = build_image(spec, BuildOptions(output=tmp_path / "l.tar", compression="zstd", lock=lock), quiet)
    assert locked.digest == zstd.digest != cold.digest
    assert all(layer["digest"] for layer in locked.platforms[0].layers)


def test_nothing_written_when_a_stage_fails(tmp_path: Path, cache_env: Path, quiet: Reporter) -> None:
    spec = load_spec(HELLO)
    out = tmp_path / "x.tar"
    with pytest.raises(SpecError, match="max-layers 1"):
        build_image(spec, BuildOptions(output=out, max_layers=1), quiet)
    assert not out.exists()
    with pytest.raises(OutputError, match="does not exist"):
        build_image(spec, BuildOptions(output=tmp_path / "no" / "such" / "x.tar"), quiet)
    assert list(tmp_path.iterdir()) == [cache_env]
