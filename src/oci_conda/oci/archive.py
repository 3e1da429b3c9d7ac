"""An OCI archive (an uncompressed tar of an OCI layout, plus Docker's ``manifest.json``): a source and a sink.

Reading is a :class:`~oci_conda.oci.walk.BlobSource` over the tar's members, read in place (nothing extracted).
Writing lays a :class:`~oci_conda.oci.memory.Plan` out as a deterministic tar, verifying every blob on the way
(a blob the cache vouches for is copied kernel-side, see :mod:`~oci_conda.oci.copy`); Docker's ``manifest.json`` and
``repositories`` ride along so ``docker load`` / ``podman load`` take it. The tar appears atomically (temp file,
rename) or not at all, and is not written again while it still holds exactly these bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform as _host
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from oci_conda.errors import ImageError, OutputError
from oci_conda.limits import open_regular
from oci_conda.oci.atomic import (
    check_parent,
    output_unchanged,
    record_output,
    remove_stale_temps,
)
from oci_conda.oci.blobs import (
    CHUNK,
    Opener,
    VerifyingReader,
    check_digest,
    digest_bytes,
)
from oci_conda.oci.copy import copy_verified, write_all
from oci_conda.oci.image import (
    Descriptor,
    Image,
    Layer,
    Platform,
    canonical_json,
    config_bytes,
    index_bytes,
)
from oci_conda.oci.layout import OCI_LAYOUT
from oci_conda.oci.memory import Plan, plan
from oci_conda.oci.tar import entry_header
from oci_conda.oci.walk import MAX_JSON_BLOB, load_json


def blob_path(digest: str) -> str:
    """``blobs/ALGO/HEX``: where a blob lives inside a layout (and so inside an archive)."""
    algo, hexpart = check_digest(digest)
    return f"blobs/{algo}/{hexpart}"


class _TarSlice:
    """A read-only view of one member's bytes inside an uncompressed tar."""

    def __init__(self, path: Path, offset: int, size: int):
        self._f = open_regular(path, f"OCI archive {path}")
        self._f.seek(offset)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _TarSlice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArchiveSource:
    """Blobs of an OCI archive, read in place from the tar (nothing is extracted)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.members: dict[str, tuple[int, int]] = {}
        self.what = what = f"OCI archive {self.path}"
        links: dict[str, str] = {}
        try:
            with open_regular(self.path, what) as raw, tarfile.open(fileobj=raw, mode="r:") as t:
                for m in t:
                    name = m.name.removeprefix("./").rstrip("/")
                    if m.isreg():
                        self.members[name] = (m.offset_data, m.size)
                    elif m.islnk():
                        links[name] = m.linkname.removeprefix("./")
                    elif m.issym():
                        links[name] = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
        except FileNotFoundError:
            raise ImageError(f"{what}: no such file") from None
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(f"{what}: not a readable uncompressed tar ({exc})") from None
        for name, target in links.items():
            if target in self.members:
                self.members[name] = self.members[target]

    def _member(self, name: str) -> tuple[int, int]:
        try:
            return self.members[name]
        except KeyError:
            raise ImageError(f"OCI archive {self.path}: {name} is missing") from None

    def open_member(self, name: str) -> BinaryIO:
        """One member's bytes, read in place (other tar formats, e.g. ``docker save``, are read through this)."""
        offset, size = self._member(name)
        return _TarSlice(self.path, offset, size)  # type: ignore[return-value]

    def index(self) -> dict[str, Any]:
        offset, size = self._member("index.json")
        if size > MAX_JSON_BLOB:
            raise ImageError(f"OCI archive {self.path}: index.json is too large")
        with _TarSlice(self.path, offset, size) as f:
            return load_json(f.read(), f"OCI archive {self.path}: index.json")

    def fetch(self, desc: Descriptor) -> bytes:
        offset, size = self._member(blob_path(desc.digest))
        with _TarSlice(self.path, offset, min(size, desc.size + 1)) as f:
            return f.read()

    def opener(self, desc: Descriptor) -> Opener:
        offset, size = self._member(blob_path(desc.digest))
        what = f"OCI archive {self.path}: blob {desc.digest}"

        def _open() -> BinaryIO:
            return VerifyingReader(_TarSlice(self.path, offset, size), desc.digest, desc.size, what)  # type: ignore[return-value]

        return _open



def _host_platform() -> Platform:
    machine = _host.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le",
            "s390x": "s390x", "armv7l": "arm"}.get(machine, machine)
    return Platform("linux", arch)


def docker_repo_tag(name: str) -> str:
    """``name:tag`` for Docker's RepoTags from an OCI ref name (a bare name gets ``:latest``)."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in name else f"{name}:latest"


def docker_manifest(planned: Plan) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Docker's ``manifest.json`` entries and ``repositories`` for a plan.

    Docker's manifest.json knows one platform per tag: it lists the host's image if there is one, else the first.
    """
    docker: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    host = _host_platform()
    for group in planned.groups:
        tag = group.tag
        chosen = next((img for img in group.images if host.matches(img.platform)), group.images[0])
        cfg_hex = digest_bytes(config_bytes(chosen)).split(":", 1)[1]
        docker.append({
            "Config": f"blobs/sha256/{cfg_hex}",
            "RepoTags": [docker_repo_tag(tag)] if tag else [],
            "Layers": [blob_path(layer.descriptor.digest) for layer in chosen.layers],
        })
        if tag and chosen.layers:
            repo, _, t = docker_repo_tag(tag).rpartition(":")
            repositories.setdefault(repo, {})[t] = chosen.layers[-1].descriptor.digest.split(":", 1)[1]
    return docker, repositories


@dataclass(frozen=True)
class _Member:
    """One archive member: a directory, a file with ``data``, or a file with a ``layer`` blob's bytes."""

    path: str
    data: bytes | None = None
    layer: Layer | None = None


def _members(planned: Plan, index_annotations: dict[str, str] | None) -> list[_Member]:
    """Every member in tar order: path-sorted, with the parent directories the layout implies."""
    docker, repositories = docker_manifest(planned)
    src = planned.source
    files = {
        "oci-layout": _Member("oci-layout", OCI_LAYOUT),
        "index.json": _Member("index.json", index_bytes(planned.index_entries, index_annotations)),
        "manifest.json": _Member("manifest.json", canonical_json(docker)),
    }
    if repositories:
        files["repositories"] = _Member("repositories", canonical_json(repositories))
    for digest, data in src.small.items():
        files[blob_path(digest)] = _Member(blob_path(digest), data)
    for digest, layer in src.layers.items():
        if digest not in src.small:
            files[blob_path(digest)] = _Member(blob_path(digest), layer=layer)
    dirs = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
    members = [*files.values(), *(_Member(d) for d in dirs)]
    return sorted(members, key=lambda m: m.path.encode("utf-8", "surrogateescape"))


def _segments(members: list[_Member], mtime: int) -> list[bytes | Layer]:
    """The archive as runs of bytes (headers, small files, padding) between the layer blobs they frame.

    The same headers as :func:`~oci_conda.oci.tar.write_layer` writes for these entries uncompressed (ustar,
    owner 0, directories 0755, files 0644, one time), so the bytes did not change when archives stopped being
    written through it; tests/test_archive_write.py compares the two."""
    out: list[bytes | Layer] = []
    buf = bytearray()
    for m in members:
        if m.layer is not None:
            size = m.layer.descriptor.size
            buf += entry_header(m.path, "file", 0o644, size, mtime, "")
            out.append(bytes(buf))
            out.append(m.layer)
            buf = bytearray(b"\0" * (-size % 512))
        elif m.data is not None:
            buf += entry_header(m.path, "file", 0o644, len(m.data), mtime, "")
            buf += m.data
            buf += b"\0" * (-len(m.data) % 512)
        else:
            buf += entry_header(m.path, "dir", 0o755, 0, mtime, "")
    buf += b"\0" * 1024  # end-of-archive marker
    out.append(bytes(buf))
    return out


def _archive_key(segments: list[bytes | Layer]) -> str:
    """A digest of every byte the archive holds, a blob counted by its digest and size (which fix its bytes)."""
    h = hashlib.sha256(b"oci-conda archive segments 1\n")
    for seg in segments:
        if isinstance(seg, bytes):
            h.update(b"b%d\n" % len(seg))
            h.update(seg)
        else:
            h.update(f"l{seg.descriptor.digest} {seg.descriptor.size}\n".encode())
    return h.hexdigest()


def _copy_layer(fd: int, layer: Layer) -> None:
    """Append a layer blob verified: kernel-side when the cache vouches for the file, else read and hashed."""
    d = layer.descriptor
    algo, hexpart = check_digest(d.digest)
    what = f"layer {d.digest}"
    with layer.open() as f:
        if algo == "sha256" and copy_verified(f, fd, hexpart, d.size, what):
            return
        reader = VerifyingReader(f, d.digest, d.size, what)
        left = d.size
        while left:
            chunk = reader.read(min(CHUNK, left))
            if not chunk:
                raise ImageError(f"{what}: size {d.size - left} does not match the descriptor's {d.size}")
            write_all(fd, chunk)
            left -= len(chunk)
        if d.size == 0:
            reader.read()


def write_archive(out_tar: Path, planned: Plan, index_annotations: dict[str, str] | None = None,
                  mtime: int = 0) -> list[Descriptor]:
    """Write ``planned`` as an OCI archive that ``docker load``/``podman load`` also accept; returns index.json's
    entries. Blobs are verified as they are copied in; an output still holding exactly these bytes from an earlier
    write (:func:`~oci_conda.oci.atomic.output_unchanged`) is kept as it is."""
    out_tar = Path(out_tar).absolute()
    check_parent(out_tar)
    if out_tar.is_dir():
        raise OutputError(f"cannot write {out_tar}: it is a directory")
    segments = _segments(_members(planned, index_annotations), int(mtime))
    key = _archive_key(segments)
    if output_unchanged(out_tar, key):
        return planned.tops
    remove_stale_temps(out_tar)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out_tar.name}.", suffix=".tmp", dir=out_tar.parent)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until the fd closes: not a stale temp
    except OSError as exc:
        raise OutputError(f"cannot write {out_tar}: {exc.strerror}") from None
    try:
        for seg in segments:
            if isinstance(seg, bytes):
                write_all(fd, seg)
            else:
                _copy_layer(fd, seg)
        os.fsync(fd)
        os.fchmod(fd, 0o644)
        os.replace(tmp, out_tar)
        record_output(out_tar, fd, key)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {out_tar}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return planned.tops


def write_oci_archive(out_tar: Path, images: list[tuple[Image, str | None]],
                      index_annotations: dict[str, str] | None = None, mtime: int = 0) -> list[Descriptor]:
    """Write ``(image, tag)`` pairs as an OCI archive; images sharing a tag become one index."""
    return write_archive(out_tar, plan(images), index_annotations, mtime)
