"""Writing OCI archives (oci/archive.py, oci/copy.py, oci/atomic.py): the same bytes as the layer writer gives for
the same entries, blobs the cache vouches for copied kernel-side and every other one hashed, and an output that
still holds exactly what would be written kept as it is (issue 16's no-op rebuild), but never a changed one."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from realenv import oci_conda

from oci_conda.cache_verify import Digests, file_digests, record_file, verify_file
from oci_conda.errors import ImageError
from oci_conda.oci import copy as oci_copy
from oci_conda.oci.archive import blob_path, docker_manifest, write_archive
from oci_conda.oci.blobs import BlobStore, file_opener
from oci_conda.oci.image import (
    Descriptor,
    Image,
    Platform,
    append_layer,
    canonical_json,
    empty_image,
    index_bytes,
    set_config,
)
from oci_conda.oci.layout import OCI_LAYOUT
from oci_conda.oci.memory import Plan, plan
from oci_conda.oci.tar import TarEntry, write_layer

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
MTIME = 1700000000
HELLO = REPO / "examples" / "hello"


def _store_layer(store: BlobStore, files: dict[str, bytes]) -> tuple[Descriptor, str, Path]:
    with store.ingest() as w:
        info = write_layer([TarEntry(p, "file", data=d) for p, d in files.items()], w, "gzip", 0)  # type: ignore[arg-type]
    return Descriptor(info.media_type, info.digest, info.size), info.diff_id, store.path(info.digest)


def _image(store: BlobStore, platform: Platform, payloads: list[dict[str, bytes]], record: bool) -> Image:
    """An image whose layers are plain files in ``store`` opened without verification, as build.py's are; with
    ``record`` the cache's verification record is written for each (as the layer memo's lookup does)."""
    img = empty_image(platform)
    for files in payloads:
        desc, diff_id, path = _store_layer(store, files)
        if record:
            file_digests(path)
        img = append_layer(img, desc, diff_id, file_opener(path), {"created_by": "test"})
    return set_config(img, env=["PATH=/bin"], created=0)


def _big(n: int, seed: int) -> bytes:
    return bytes((i * seed + i // 7) % 251 for i in range(n))


def _plan(store: BlobStore, record: bool = True) -> Plan:
    a = _image(store, AMD64, [{"a/x": _big(300_000, 3)}, {"a/y": b"y" * 1000}], record)
    b = _image(store, ARM64, [{"a/x": _big(300_000, 5)}], record)
    return plan([(a, "example.com/x:1"), (b, "example.com/x:1"), (a, "other:2")])


def _reference(planned: Plan, annotations: dict[str, str] | None, mtime: int) -> bytes:
    """The archive as the layer writer makes it from the same entries (how archives were written before)."""
    docker, repositories = docker_manifest(planned)
    src = planned.source
    entries = [TarEntry("oci-layout", "file", data=OCI_LAYOUT),
               TarEntry("index.json", "file", data=index_bytes(planned.index_entries, annotations)),
               TarEntry("manifest.json", "file", data=canonical_json(docker))]
    if repositories:
        entries.append(TarEntry("repositories", "file", data=canonical_json(repositories)))
    entries += [TarEntry(blob_path(d), "file", data=data) for d, data in src.small.items()]
    entries += [TarEntry(blob_path(d), "file", size=la.descriptor.size, opener=src.opener(la.descriptor))
                for d, la in src.layers.items() if d not in src.small]
    out = io.BytesIO()
    write_layer(entries, out, "none", mtime)
    return out.getvalue()


@pytest.fixture
def store(cache_env: Path, tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")


class _Count:
    """Wraps an ``os`` function, counting calls (and optionally refusing them with ``refuse``)."""

    def __init__(self, fn, refuse: int | None = None):
        self.fn, self.refuse, self.calls = fn, refuse, 0

    def __call__(self, *args):
        self.calls += 1
        if self.refuse is not None:
            raise OSError(self.refuse, os.strerror(self.refuse))
        return self.fn(*args)


def test_bytes_equal_the_layer_writers_for_the_same_entries(store: BlobStore, tmp_path: Path) -> None:
    planned = _plan(store)
    for ann, mtime in ((None, 0), ({"k": "v"}, MTIME)):
        out = tmp_path / f"o{mtime}.tar"
        write_archive(out, planned, ann, mtime)
        assert out.read_bytes() == _reference(planned, ann, mtime)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".o")) == []


def test_recorded_blobs_are_copied_kernel_side_others_hashed(store: BlobStore, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _Count(os.copy_file_range)
    monkeypatch.setattr(os, "copy_file_range", counter)
    write_archive(tmp_path / "rec.tar", _plan(store, record=True), None, MTIME)
    assert counter.calls >= 3  # one per layer blob (3 distinct)
    counter.calls = 0
    write_archive(tmp_path / "unrec.tar", _plan(BlobStore(tmp_path / "s2"), record=False), None, MTIME)
    assert counter.calls == 0
    assert (tmp_path / "rec.tar").read_bytes() == (tmp_path / "unrec.tar").read_bytes()


@pytest.mark.parametrize("refused", ["copy_file_range", "both"])
def test_kernel_copy_falls_back_when_refused(store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             refused: str) -> None:
    planned = _plan(store)
    cfr = _Count(os.copy_file_range, errno.EXDEV)
    sf = _Count(os.sendfile, errno.EINVAL if refused == "both" else None)
    monkeypatch.setattr(os, "copy_file_range", cfr)
    monkeypatch.setattr(os, "sendfile", sf)
    write_archive(tmp_path / "o.tar", planned, None, MTIME)
    assert cfr.calls >= 1 and sf.calls >= 1
    assert (tmp_path / "o.tar").read_bytes() == _reference(planned, None, MTIME)


def test_copy_fd_refuses_a_short_source(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x" * 10)
    src = os.open(tmp_path / "src", os.O_RDONLY)
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(ImageError, match="shorter"):
            oci_copy.copy_fd(src, dst, 11, "blob x")
    finally:
        os.close(src)
        os.close(dst)


def test_a_changed_recorded_blob_is_hashed_and_refused(store: BlobStore, tmp_path: Path) -> None:
    planned = _plan(store)
    out = tmp_path / "o.tar"
    out.write_bytes(b"the previous output")
    layer = next(iter(planned.source.layers.values()))
    blob = store.path(layer.descriptor.digest)
    st = blob.stat()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: only ctime tells
    with pytest.raises(ImageError, match="does not match digest"):
        write_archive(out, planned, None, MTIME)
    assert out.read_bytes() == b"the previous output"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".o.tar")] == []


def test_blob_replaced_or_edited_during_the_copy(store: BlobStore, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Another build renaming the same blob over the one being copied (its ctime changes) is no error: the bytes
    written are checked instead. An edit of the blob while it is copied is refused."""
    planned = _plan(store)
    want = _reference(planned, None, MTIME)
    real = os.copy_file_range
    state = {"action": "replace", "done": False}

    def racing(src: int, dst: int, count: int, offset_src: int | None = None, offset_dst: int | None = None) -> int:
        if not state["done"]:
            state["done"] = True
            path = os.readlink(f"/proc/self/fd/{src}")
            if state["action"] == "replace":  # the same bytes renamed over it, as a concurrent ingest does
                (tmp_path / "same").write_bytes(Path(path).read_bytes())
                os.replace(tmp_path / "same", path)
            else:  # changed in place
                with open(path, "r+b") as f:
                    f.seek(100)
                    f.write(b"\0" * 64)
        return real(src, dst, count, offset_src, offset_dst)

    monkeypatch.setattr(os, "copy_file_range", racing)
    write_archive(tmp_path / "o.tar", planned, None, MTIME)
    assert state["done"] and (tmp_path / "o.tar").read_bytes() == want
    state.update(action="edit", done=False)
    with pytest.raises(ImageError, match="changed while it was being written"):
        write_archive(tmp_path / "p.tar", _plan(BlobStore(tmp_path / "s2")), None, MTIME)
    assert not list(tmp_path.glob("*p.tar*"))


def test_interrupted_write_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    img = _image(store, AMD64, [{"f": b"f" * 5000}], True)

    class Boom(io.RawIOBase):
        def read(self, n: int = -1) -> bytes:
            raise KeyboardInterrupt

    layer = img.layers[0]
    bad = Image(img.config, (type(layer)(layer.descriptor, layer.diff_id, lambda: Boom()),))
    with pytest.raises(KeyboardInterrupt):
        write_archive(tmp_path / "o.tar", plan([(bad, "t")]), None, MTIME)
    assert list(tmp_path.glob("*o.tar*")) == []


def test_unchanged_output_is_kept_anything_else_rewritten(store: BlobStore, tmp_path: Path) -> None:
    planned = _plan(store)
    want = _reference(planned, None, MTIME)
    out = tmp_path / "o.tar"

    def write() -> os.stat_result:
        write_archive(out, planned, None, MTIME)
        assert out.read_bytes() == want
        return os.lstat(out)

    def same_file(a: os.stat_result, b: os.stat_result) -> bool:
        return (a.st_ino, a.st_ctime_ns, a.st_mtime_ns) == (b.st_ino, b.st_ctime_ns, b.st_mtime_ns)

    first = write()
    assert same_file(write(), first)  # kept: not even opened for writing

    # one byte changed in place, size and mtime put back: ctime tells
    data = bytearray(want)
    data[len(data) // 2] ^= 1
    with open(out, "r+b") as f:
        f.write(bytes(data))
    os.utime(out, ns=(first.st_atime_ns, first.st_mtime_ns))
    second = write()
    assert not same_file(second, first)
    assert same_file(write(), second)

    os.truncate(out, len(want) // 2)  # truncated
    third = write()
    with open(out, "ab") as f:  # grown
        f.write(b"x")
    fourth = write()
    assert not same_file(fourth, third)

    # replaced by a symlink to an identical copy: written again as a regular file
    (tmp_path / "copy.tar").write_bytes(want)
    out.unlink()
    out.symlink_to(tmp_path / "copy.tar")
    write()
    assert not out.is_symlink()

    # another key (another time in the headers) writes, and the old record does not keep the new file
    write_archive(out, planned, None, MTIME + 1)
    assert out.read_bytes() == _reference(planned, None, MTIME + 1)
    fifth = write()
    assert same_file(write(), fifth)


def test_nothing_is_kept_without_a_record(store: BlobStore, tmp_path: Path, cache_env: Path) -> None:
    planned = _plan(store)
    out = tmp_path / "o.tar"
    write_archive(out, planned, None, MTIME)
    first = os.lstat(out)
    for rec in (cache_env / "outputs").iterdir():
        rec.unlink()
    write_archive(out, planned, None, MTIME)
    assert os.lstat(out).st_ino != first.st_ino


def test_cli_no_op_rebuild_keeps_the_archive_and_a_changed_one_is_rebuilt(tmp_path: Path, cache_env: Path) -> None:
    """Through the command line: the second build of the same inputs leaves the archive as it is (same inode,
    same ctime); after the file was damaged the next build writes the same bytes again."""
    shutil.copytree(HELLO, tmp_path / "hello", ignore=shutil.ignore_patterns("src", "build_channel.py", ".*"))
    env_file = tmp_path / "hello" / "environment.yml"
    out = tmp_path / "img.tar"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    oci_conda("build", str(env_file), "-o", str(out), "-q", env=env)
    first, want = os.lstat(out), hashlib.sha256(out.read_bytes()).hexdigest()
    oci_conda("build", str(env_file), "-o", str(out), "-q", env=env)
    again = os.lstat(out)
    assert (again.st_ino, again.st_ctime_ns) == (first.st_ino, first.st_ctime_ns)
    with open(out, "r+b") as f:  # damaged at the end, size kept
        f.seek(-1024 * 3, os.SEEK_END)
        f.write(b"\xff" * 16)
    oci_conda("build", str(env_file), "-o", str(out), "-q", env=env)
    assert os.lstat(out).st_ino != first.st_ino
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want


def test_a_cold_build_records_the_layer_blobs_it_writes(tmp_path: Path, cache_env: Path) -> None:
    """A layer blob's digest is computed as it is written, so the build records it at once (no md5) and the archive
    copies it kernel-side instead of hashing it again; every record states the blob's true digest and size."""
    shutil.copytree(HELLO, tmp_path / "hello", ignore=shutil.ignore_patterns("src", "build_channel.py", ".*"))
    oci_conda("build", str(tmp_path / "hello" / "environment.yml"), "-o", str(tmp_path / "img.tar"), "-q",
              env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    blobs = [p for p in (cache_env / "blobs" / "sha256").iterdir() if p.is_file()]
    assert blobs
    for blob in blobs:
        doc = json.loads((blob.parent / ".verified" / f"{blob.name}.json").read_bytes())
        assert doc["md5"] is None
        assert (doc["sha256"], doc["size"]) == (hashlib.sha256(blob.read_bytes()).hexdigest(), blob.stat().st_size)


def test_a_record_without_md5_is_hashed_when_md5_is_asked(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"layer" * 1000)
    data = blob.read_bytes()
    record_file(blob, Digests(hashlib.sha256(data).hexdigest(), None, len(data)))
    record = tmp_path / ".verified" / "blob.json"
    written = os.stat(record).st_ino
    assert verify_file(blob, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    assert os.stat(record).st_ino == written  # the record answered: nothing hashed, nothing renewed
    assert verify_file(blob, md5=hashlib.md5(data).hexdigest())
    assert not verify_file(blob, md5="0" * 32)
    renewed = json.loads(record.read_bytes())  # hashed once; the renewed record carries the md5
    assert (renewed["md5"], renewed["sha256"]) == (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
