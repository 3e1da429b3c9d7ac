"""OCI layout directories and archives, checked by the real consumers: umoci, skopeo and podman."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from conftest import need_tool
from oci_schema import oci_validator
from oci_conda.errors import ImageError, OutputError
from oci_conda.oci.blobs import BlobStore, file_opener
from oci_conda.oci.image import Descriptor, Image, Layer, Platform, append_layer, empty_image, set_config
from oci_conda.oci.archive import write_oci_archive
from oci_conda.oci.layout import write_oci_dir
from oci_conda.oci.output import write_output
from oci_conda.oci.registry.client import RegistryError, RegistryOptions
from oci_conda.oci.source import ImageRef, open_image, parse_image_ref
from oci_conda.oci.tar import TarEntry, write_layer

BUSYBOX = Path("/bin/busybox")
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


# ---------------------------------------------------------------------------------------------------------------
# helpers


def validate_layout(realdata: Path, root: Path) -> None:
    """Every JSON document of an extracted layout against its OCI schema; every blob against its digest."""
    oci_validator(realdata, "layout").validate(json.loads((root / "oci-layout").read_text()))
    index = json.loads((root / "index.json").read_text())
    oci_validator(realdata, "index").validate(index)
    for p in (root / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    todo = list(index["manifests"])
    while todo:
        d = todo.pop()
        doc = json.loads((root / "blobs/sha256" / d["digest"].split(":")[1]).read_text())
        if d["mediaType"] == "application/vnd.oci.image.index.v1+json":
            oci_validator(realdata, "index").validate(doc)
            todo.extend(doc["manifests"])
            continue
        oci_validator(realdata, "manifest").validate(doc)
        cfg = json.loads((root / "blobs/sha256" / doc["config"]["digest"].split(":")[1]).read_text())
        oci_validator(realdata, "config").validate(cfg)
        assert len(cfg["rootfs"]["diff_ids"]) == len(doc["layers"])


def run(*cmd: str, env: dict[str, str] | None = None, timeout: int = 120) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def extract(archive: Path, dest: Path) -> Path:
    dest.mkdir()
    with tarfile.open(archive) as t:
        t.extractall(dest, filter="tar")
    return dest


def build_image(store: BlobStore, platform: Platform = AMD64, compression: str = "gzip") -> Image:
    """busybox-static as /bin/busybox plus /bin/sh -> busybox."""
    if not BUSYBOX.is_file():
        need_tool("busybox")
        pytest.skip("/bin/busybox missing")
    with store.ingest() as w:
        info = write_layer(
            [TarEntry("bin/busybox", "file", 0o755, source=str(BUSYBOX)), TarEntry("bin/sh", "symlink", linkname="busybox")],
            w, compression, 0)  # type: ignore[arg-type]
    img = append_layer(empty_image(platform), Descriptor(info.media_type, info.digest, info.size), info.diff_id,
                       store.opener(info.digest, info.size), {"created_by": "busybox layer", "created": "1970-01-01T00:00:00Z"})
    return set_config(img, env=["PATH=/usr/bin:/bin", "LANG=C"], cmd=["/bin/sh"], created=0)


def add_file_layer(store: BlobStore, base: Image, path: str, data: bytes, compression: str = "gzip") -> Image:
    with store.ingest() as w:
        info = write_layer([TarEntry(path, "file", data=data)], w, compression, 0)  # type: ignore[arg-type]
    return append_layer(base, Descriptor(info.media_type, info.digest, info.size), info.diff_id,
                        store.opener(info.digest, info.size), {"created_by": f"add {path}"})


@pytest.fixture
def podman() -> Iterator[callable]:
    """``podman(*args)`` with private storage/config (graphroot, runroot in a fresh short temp dir)."""
    exe = need_tool("podman")
    need_tool("runc")
    work = Path(tempfile.mkdtemp(prefix="ocp", dir="/tmp"))  # short: podman puts sockets under runroot
    (work / "storage.conf").write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{work}/g"\nrunroot = "{work}/r"\n')
    (work / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\nnetns = "none"\n'
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
        f'tmp_dir = "{work}/t"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(work / "containers.conf"),
           "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"), "TMPDIR": str(work)}

    def call(*args: str) -> str:
        return run(exe, *args, env=env)

    yield call
    subprocess.run([exe, "rm", "-af"], env=env, capture_output=True, timeout=60)
    subprocess.run([exe, "rmi", "-af"], env=env, capture_output=True, timeout=60)
    shutil.rmtree(work, ignore_errors=True)


def podman_run(podman, image_ref: str, *cmd: str) -> str:  # noqa: ANN001
    return podman("--runtime", "runc", "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                  "--ulimit", "nproc=1024:1024", image_ref, *cmd)


# ---------------------------------------------------------------------------------------------------------------
# writing, checked by umoci / skopeo / podman


def test_archive_validates_and_umoci_unpacks(tmp_path: Path, realdata: Path) -> None:
    umoci = need_tool("umoci")
    img = build_image(BlobStore(tmp_path / "store"))
    top = write_oci_archive(tmp_path / "image.tar", [(img, "example.com/bb:1.0")])
    with tarfile.open(tmp_path / "image.tar") as t:
        members = t.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=str.encode)
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members)
    lay = extract(tmp_path / "image.tar", tmp_path / "lay")
    validate_layout(realdata, lay)
    index = json.loads((lay / "index.json").read_text())
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "example.com/bb:1.0"}
    assert index["manifests"][0]["digest"] == top[0].digest
    run(umoci, "unpack", "--image", f"{lay}:example.com/bb:1.0", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "bin" / "busybox").read_bytes() == BUSYBOX.read_bytes()
    assert os.stat(rootfs / "bin" / "busybox").st_mode & 0o111
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    # the docker manifest.json names the same config and layers
    docker = json.loads((lay / "manifest.json").read_text())
    manifest = json.loads((lay / "blobs/sha256" / top[0].digest.split(":")[1]).read_text())
    assert docker == [{"Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
                       "RepoTags": ["example.com/bb:1.0"],
                       "Layers": ["blobs/sha256/" + layer["digest"].split(":")[1] for layer in manifest["layers"]]}]


def test_layout_dir_is_read_by_umoci_and_skopeo(tmp_path: Path, realdata: Path) -> None:
    umoci, skopeo = need_tool("umoci"), need_tool("skopeo")
    img = build_image(BlobStore(tmp_path / "store"))
    out = tmp_path / "layout"
    write_oci_dir(out, [(img, "latest")])
    validate_layout(realdata, out)
    run(umoci, "unpack", "--image", f"{out}:latest", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/bin/busybox").read_bytes() == BUSYBOX.read_bytes()
    info = json.loads(run(skopeo, "inspect", f"oci:{out}:latest"))
    assert info["Architecture"] == "amd64" and info["Env"] == ["PATH=/usr/bin:/bin", "LANG=C"]
    # writing again replaces the layout in place
    img2 = add_file_layer(BlobStore(tmp_path / "store"), img, "etc/x", b"x")
    write_oci_dir(out, [(img2, "latest")])
    assert len(json.loads(run(skopeo, "inspect", f"oci:{out}:latest"))["Layers"]) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".layout.")]


def test_skopeo_reads_and_copies_archive(tmp_path: Path) -> None:
    skopeo = need_tool("skopeo")
    img = build_image(BlobStore(tmp_path / "store"), compression="zstd")  # skopeo accepts zstd layers
    top = write_oci_archive(tmp_path / "image.tar", [(img, "bb:zstd")])
    lay = extract(tmp_path / "image.tar", tmp_path / "lay")
    ours = (lay / "blobs/sha256" / top[0].digest.split(":")[1]).read_bytes()
    assert run(skopeo, "inspect", "--raw", f"oci-archive:{tmp_path / 'image.tar'}").encode() == ours
    info = json.loads(run(skopeo, "inspect", f"oci-archive:{tmp_path / 'image.tar'}"))
    assert info["Digest"] == top[0].digest
    assert info["Layers"] == [layer.descriptor.digest for layer in img.layers]
    # skopeo copy re-hashes every blob; the docker-archive reader goes through manifest.json
    run(skopeo, "copy", f"oci-archive:{tmp_path / 'image.tar'}", f"dir:{tmp_path / 'copy'}")
    assert (tmp_path / "copy" / img.layers[0].descriptor.digest.split(":")[1]).is_file()
    # (docker-archive names layers by diff_id and decompresses them to check it)
    d = json.loads(run(skopeo, "inspect", f"docker-archive:{tmp_path / 'image.tar'}"))
    assert d["Layers"] == [layer.diff_id for layer in img.layers]
    run(skopeo, "copy", f"docker-archive:{tmp_path / 'image.tar'}", f"dir:{tmp_path / 'copy2'}")
    assert (tmp_path / "copy2" / img.layers[0].diff_id.split(":")[1]).is_file()


@pytest.mark.slow
def test_podman_runs_and_loads_archive(tmp_path: Path, podman) -> None:  # noqa: ANN001
    img = build_image(BlobStore(tmp_path / "store"))
    archive = tmp_path / "image.tar"
    write_oci_archive(archive, [(img, "localhost/bb:run")])
    assert podman_run(podman, f"oci-archive:{archive}", "/bin/busybox", "echo", "hi").strip() == "hi"
    out = podman("load", "-i", str(archive))
    assert "localhost/bb:run" in out
    assert podman_run(podman, "localhost/bb:run", "/bin/sh", "-c", "echo $PATH $LANG").strip() == "/usr/bin:/bin C"


# ---------------------------------------------------------------------------------------------------------------
# bases


@pytest.mark.slow
def test_base_from_archive_is_reused_byte_for_byte(tmp_path: Path, realdata: Path, podman) -> None:  # noqa: ANN001
    umoci = need_tool("umoci")
    a = build_image(BlobStore(tmp_path / "store-a"))
    write_oci_archive(tmp_path / "A.tar", [(a, "a:1")])

    base = open_image(f"oci-archive:{tmp_path / 'A.tar'}:a:1", AMD64)
    assert base.config["config"]["Env"] == ["PATH=/usr/bin:/bin", "LANG=C"]
    b = add_file_layer(BlobStore(tmp_path / "store-b"), base, "etc/greeting", b"hello from B\n")
    b = set_config(b, env=["PATH=/opt/conda/bin:/usr/bin", "LANG=C.UTF-8"])
    write_oci_archive(tmp_path / "B.tar", [(b, "b:1")])

    assert b.layers[0].descriptor == a.layers[0].descriptor
    assert b.config["rootfs"]["diff_ids"][0] == a.config["rootfs"]["diff_ids"][0]
    assert b.config["config"]["Env"] == ["PATH=/opt/conda/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
    assert b.config["config"]["Cmd"] == ["/bin/sh"]
    assert [h["created_by"] for h in b.config["history"]] == ["busybox layer", "add etc/greeting"]
    la, lb = extract(tmp_path / "A.tar", tmp_path / "la"), extract(tmp_path / "B.tar", tmp_path / "lb")
    name = a.layers[0].descriptor.digest.split(":")[1]
    assert (la / "blobs/sha256" / name).read_bytes() == (lb / "blobs/sha256" / name).read_bytes()
    validate_layout(realdata, lb)
    run(umoci, "unpack", "--image", f"{lb}:b:1", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/etc/greeting").read_bytes() == b"hello from B\n"

    out = podman_run(podman, f"oci-archive:{tmp_path / 'B.tar'}", "/bin/sh", "-c", "cat /etc/greeting; echo $PATH")
    assert out.splitlines() == ["hello from B", "/opt/conda/bin:/usr/bin:/bin"]


def test_base_from_layout_dir_and_ref_selection(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    one = build_image(store)
    two = add_file_layer(store, one, "two", b"2")
    write_oci_dir(tmp_path / "lay", [(one, "one"), (two, "two")])
    got = open_image(f"oci:{tmp_path / 'lay'}:two", AMD64)
    assert [layer.descriptor for layer in got.layers] == [layer.descriptor for layer in two.layers]
    assert [layer.open().read() for layer in got.layers] == [layer.open().read() for layer in two.layers]
    with pytest.raises(ImageError, match="name one with :REF"):
        open_image(f"oci:{tmp_path / 'lay'}", AMD64)
    with pytest.raises(ImageError, match="no image named 'three'"):
        open_image(f"oci:{tmp_path / 'lay'}:three", AMD64)
    with pytest.raises(ImageError, match="not linux/arm64"):
        open_image(f"oci:{tmp_path / 'lay'}:one", ARM64)
    with pytest.raises(ImageError, match="not an OCI layout"):
        open_image(f"oci:{tmp_path}", AMD64)
    # one image and no REF: it is taken
    write_oci_dir(tmp_path / "single", [(one, None)])
    assert open_image(f"oci:{tmp_path / 'single'}", AMD64).layers[0].descriptor == one.layers[0].descriptor
    assert open_image("scratch", ARM64).platform == ARM64


def test_multi_platform_index(tmp_path: Path, realdata: Path) -> None:
    skopeo = need_tool("skopeo")
    store = BlobStore(tmp_path / "store")
    images = []
    for plat in (AMD64, ARM64):
        img = add_file_layer(store, empty_image(plat), "etc/arch", str(plat).encode())
        images.append((img, "multi:1"))
    top = write_oci_archive(tmp_path / "m.tar", images)
    assert len(top) == 1 and top[0].media_type == "application/vnd.oci.image.index.v1+json"
    lay = extract(tmp_path / "m.tar", tmp_path / "lay")
    validate_layout(realdata, lay)
    for plat in (AMD64, ARM64):
        got = open_image(f"oci-archive:{tmp_path / 'm.tar'}:multi:1", plat)
        assert got.platform == plat
        want = next(i for i, _ in images if i.platform == plat)
        assert got.layers[0].descriptor == want.layers[0].descriptor
        assert got.layers[0].open().read() == want.layers[0].open().read()
    with pytest.raises(ImageError, match="no image for platform linux/s390x"):
        open_image(f"oci-archive:{tmp_path / 'm.tar'}:multi:1", Platform("linux", "s390x"))
    info = json.loads(run(skopeo, "inspect", "--override-arch", "arm64", f"oci-archive:{tmp_path / 'm.tar'}:multi:1"))
    assert info["Architecture"] == "arm64"
    # docker's manifest.json can name one image per tag: the host's (amd64 here) or else the first
    docker = json.loads((lay / "manifest.json").read_text())
    assert len(docker) == 1
    cfg = json.loads((lay / docker[0]["Config"]).read_text())
    assert cfg["architecture"] == "amd64"
    # the same pair as a Docker manifest list (written by skopeo) is read the same way
    run(skopeo, "copy", "--all", "--format", "v2s2", f"oci-archive:{tmp_path / 'm.tar'}:multi:1",
        f"oci:{tmp_path / 'dl'}:list")
    index = json.loads((tmp_path / "dl/index.json").read_text())
    assert index["manifests"][0]["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    for plat in (AMD64, ARM64):
        got = open_image(f"oci:{tmp_path / 'dl'}:list", plat)
        want = next(i for i, _ in images if i.platform == plat)
        assert got.platform == plat and got.layers[0].descriptor == want.layers[0].descriptor


def test_docker_schema2_base(tmp_path: Path, realdata: Path) -> None:
    """skopeo (an independent writer) converts our image to Docker schema 2 in an OCI layout; we build on it."""
    skopeo, umoci = need_tool("skopeo"), need_tool("umoci")
    store = BlobStore(tmp_path / "store")
    a = build_image(store)
    write_oci_archive(tmp_path / "A.tar", [(a, "a")])
    run(skopeo, "copy", "--format", "v2s2", f"oci-archive:{tmp_path / 'A.tar'}:a", f"oci:{tmp_path / 'dl'}:d")
    index = json.loads((tmp_path / "dl" / "index.json").read_text())
    assert index["manifests"][0]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    base = open_image(f"oci:{tmp_path / 'dl'}:d", AMD64)
    assert base.layers[0].descriptor.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert base.layers[0].descriptor.digest == a.layers[0].descriptor.digest
    b = add_file_layer(store, base, "etc/b", b"b")
    write_oci_archive(tmp_path / "B.tar", [(b, "b")])
    lay = extract(tmp_path / "B.tar", tmp_path / "lb")
    validate_layout(realdata, lay)
    run(umoci, "unpack", "--image", f"{lay}:b", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle/rootfs/bin/busybox").is_file()


def test_digests_are_verified_when_reading(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    img = build_image(store)
    write_oci_dir(tmp_path / "lay", [(img, "t")])
    # a layer with one byte changed (same size): reading the base works, copying its layer must fail
    layer_blob = tmp_path / "lay/blobs/sha256" / img.layers[0].descriptor.digest.split(":")[1]
    data = bytearray(layer_blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer_blob.write_bytes(bytes(data))
    base = open_image(f"oci:{tmp_path / 'lay'}:t", AMD64)
    with pytest.raises(ImageError, match="does not match digest"):
        write_oci_archive(tmp_path / "out.tar", [(base, "t")])
    assert not list(tmp_path.glob("*out.tar*"))  # nothing partial left behind
    # a manifest that does not match its digest is refused at once
    index = json.loads((tmp_path / "lay/index.json").read_text())
    man = tmp_path / "lay/blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    man.write_bytes(man.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":2 '))
    with pytest.raises(ImageError, match="size|digest"):
        open_image(f"oci:{tmp_path / 'lay'}:t", AMD64)


def test_reproducible_across_directories(tmp_path: Path) -> None:
    results = []
    for n in ("first", "second"):
        work = tmp_path / n
        work.mkdir()
        old = os.getcwd()
        os.chdir(work)
        try:
            a = build_image(BlobStore(work / "cache"))
            write_oci_archive(work / "A.tar", [(a, "a")])
            b = add_file_layer(BlobStore(work / "cache"), open_image(f"oci-archive:{work / 'A.tar'}", AMD64), "f", b"f")
            top = write_oci_archive(work / "B.tar", [(b, "b")])
        finally:
            os.chdir(old)
        results.append((top[0].digest, hashlib.sha256((work / "B.tar").read_bytes()).hexdigest()))
    assert results[0] == results[1]


def test_output_errors(tmp_path: Path) -> None:
    img = build_image(BlobStore(tmp_path / "store"))
    with pytest.raises(OutputError, match="missing"):
        write_oci_archive(tmp_path / "missing" / "x.tar", [(img, None)])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile"):
        write_oci_dir(tmp_path / "afile" / "lay", [(img, None)])
    (tmp_path / "notalayout").mkdir()
    (tmp_path / "notalayout" / "precious").write_text("keep")
    with pytest.raises(OutputError, match="not an OCI layout"):
        write_oci_dir(tmp_path / "notalayout", [(img, None)])
    assert (tmp_path / "notalayout" / "precious").read_text() == "keep"
    with pytest.raises(OutputError, match="is a directory"):
        write_oci_archive(tmp_path / "notalayout", [(img, None)])


def test_parse_image_ref_and_registry_end(tmp_path: Path) -> None:
    assert parse_image_ref("scratch") == ImageRef("scratch")
    assert parse_image_ref("oci-archive:/x/y.tar") == ImageRef("oci-archive", "/x/y.tar", None)
    assert parse_image_ref("oci-archive:/x/y.tar:a:1") == ImageRef("oci-archive", "/x/y.tar", "a:1")
    assert parse_image_ref("oci:/x/dir:latest") == ImageRef("oci", "/x/dir", "latest")
    odd = tmp_path / "with:colon"
    odd.mkdir()
    assert parse_image_ref(f"oci:{odd}") == ImageRef("oci", str(odd), None)
    # anything else is a registry reference, with or without docker://; an unknown transport is refused
    assert parse_image_ref("ghcr.io/owner/image:1.0") == ImageRef("registry", "ghcr.io/owner/image:1.0")
    assert parse_image_ref("docker://host.test/a/b:1") == ImageRef("registry", "host.test/a/b:1")
    with pytest.raises(ImageError, match="unknown transport 'ftp'"):
        parse_image_ref("ftp://host.test/a/b:1")
    with pytest.raises(ImageError, match="missing path"):
        parse_image_ref("oci-archive:")
    # a registry base goes to the registry end, with the options given (nothing listens here: one clear error)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryError, match=f"127.0.0.1:{port}/a/b: manifest 1: connection refused") as err:
        open_image(f"docker://127.0.0.1:{port}/a/b:1", ARM64, RegistryOptions(retries=0))
    assert err.value.temporary()


def test_write_output_picks_format_and_reports_digests(tmp_path: Path, realdata: Path) -> None:
    store = BlobStore(tmp_path / "store")
    images = [add_file_layer(store, empty_image(plat), "etc/arch", str(plat).encode()) for plat in (AMD64, ARM64)]
    # a layer given as a plain file, opened (and verified) by file_opener
    blob = store.path(images[0].layers[0].descriptor.digest)
    d = images[0].layers[0].descriptor
    images[0] = Image(images[0].config, (Layer(d, images[0].layers[0].diff_id, file_opener(blob, d.digest, d.size)),))
    ann = {"org.opencontainers.image.title": "demo"}
    res = write_output(tmp_path / "img.tar", images, tag="demo:1", annotations=ann)
    lay = extract(tmp_path / "img.tar", tmp_path / "lay")
    validate_layout(realdata, lay)
    index = json.loads((lay / "index.json").read_text())
    assert index["annotations"] == ann and index["manifests"][0]["digest"] == res.digest
    nested = json.loads((lay / "blobs/sha256" / res.digest.split(":")[1]).read_text())
    assert [m["digest"] for m in nested["manifests"]] == res.manifest_digests
    for digest in res.manifest_digests:
        assert json.loads((lay / "blobs/sha256" / digest.split(":")[1]).read_text())["annotations"] == ann
    single = write_output(tmp_path / "dir-out", images[:1], tag="demo:1")
    assert (tmp_path / "dir-out" / "oci-layout").is_file()
    assert single.digest == single.manifest_digests[0] == single.descriptors[0].digest
    man = json.loads((tmp_path / "dir-out/blobs/sha256" / single.digest.split(":")[1]).read_text())
    assert "annotations" not in man
    # a file blob that was changed after it was written is caught while copying
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="does not match digest|size"):
        write_output(tmp_path / "again.tar", images, tag="demo:1")


def test_blob_store(tmp_path: Path, cache_env: Path) -> None:
    import io

    store = BlobStore.default()
    assert store.root == cache_env / "blobs"
    digest = store.add_bytes(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.path(digest) == cache_env / "blobs" / "sha256" / digest.split(":")[1]
    assert store.read(digest, 5) == b"hello" and store.has(digest)
    # a stream that does not match the digest it claims leaves nothing behind
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ImageError, match="does not match"):
        store.add_stream(io.BytesIO(b"other"), wrong, 5)
    assert not store.has(wrong)
    assert sorted(p.name for p in (cache_env / "blobs" / "sha256").iterdir()) == [digest.split(":")[1]]
    with pytest.raises(ImageError, match="invalid or unsupported digest"):
        store.path("sha256:../../etc/passwd")
    # a blob altered on disk is caught by the verifying opener
    store.path(digest).write_bytes(b"HELLO")
    with pytest.raises(ImageError, match="does not match digest"):
        with store.opener(digest, 5)() as f:
            f.read()
