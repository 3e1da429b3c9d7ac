"""An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256``): a source and a sink.

Reading is a :class:`~oci_conda.oci.walk.BlobSource` over ``blobs/`` plus ``index.json``; everything else is the
shared walk. Writing lays out a :class:`~oci_conda.oci.memory.Plan` and appears atomically (temp dir, rename) or
not at all; an existing layout at the path is replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from oci_conda.errors import ImageError, OutputError
from oci_conda.limits import read_file_capped
from oci_conda.oci.atomic import check_parent, hold, remove_stale_temps
from oci_conda.oci.blobs import BlobStore, Opener
from oci_conda.oci.image import Descriptor, Image, index_bytes
from oci_conda.oci.memory import Plan, plan
from oci_conda.oci.walk import MAX_JSON_BLOB, load_json

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def is_layout(path: Path) -> bool:
    """Whether ``path`` is an OCI layout directory (it has an ``oci-layout`` file)."""
    return (Path(path) / "oci-layout").is_file()


class LayoutDirSource:
    """Blobs of an OCI image layout directory, each verified as it is read."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not is_layout(self.root):
            raise ImageError(f"{self.root}: not an OCI layout directory (no oci-layout file)")
        self.store = BlobStore(self.root / "blobs")
        self.what = f"OCI layout {self.root}"

    def index(self) -> dict[str, Any]:
        try:
            data = read_file_capped(self.root / "index.json", MAX_JSON_BLOB, f"{self.what}/index.json")
        except OSError as exc:
            raise ImageError(f"{self.what}: cannot read index.json ({exc.strerror})") from None
        return load_json(data, f"{self.what}/index.json")

    def fetch(self, desc: Descriptor) -> bytes:
        with self.store.open(desc.digest) as f:
            return f.read(desc.size + 1)

    def opener(self, desc: Descriptor) -> Opener:
        return self.store.opener(desc.digest, desc.size)


def write_layout(out_dir: Path, planned: Plan, index_annotations: dict[str, str] | None = None) -> list[Descriptor]:
    """Write ``planned`` as an OCI image layout directory; returns index.json's entries."""
    out_dir = Path(out_dir).absolute()
    check_parent(out_dir)
    if out_dir.exists() and not (out_dir.is_dir() and (is_layout(out_dir) or not any(out_dir.iterdir()))):
        raise OutputError(f"cannot write {out_dir}: it exists and is not an OCI layout directory")
    remove_stale_temps(out_dir)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
        held = hold(str(tmp))
    except OSError as exc:
        raise OutputError(f"cannot write {out_dir}: {exc.strerror}") from None
    src = planned.source
    try:
        store = BlobStore(tmp / "blobs")
        for digest, data in src.small.items():
            store.add_bytes(data, digest)
        for digest, layer in src.layers.items():
            with layer.open() as f:
                store.add_stream(f, digest, layer.descriptor.size)
        (tmp / "oci-layout").write_bytes(OCI_LAYOUT)
        (tmp / "index.json").write_bytes(index_bytes(planned.index_entries, index_annotations))
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(held)
    return planned.tops


def write_oci_dir(
    out_dir: Path, images: list[tuple[Image, str | None]], index_annotations: dict[str, str] | None = None
) -> list[Descriptor]:
    """Write ``(image, tag)`` pairs as an OCI layout directory; images sharing a tag become one index."""
    return write_layout(out_dir, plan(images), index_annotations)
