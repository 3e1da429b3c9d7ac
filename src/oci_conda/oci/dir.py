"""skopeo's ``dir:`` format as an image source: ``manifest.json`` (the image's manifest or index, exact bytes),
blobs named by their hex digest, a ``version`` file; with ``--all``, each instance's manifest as
``<hex>.manifest.json``.

Blobs are kept as they are (digests preserved), so a base read from ``dir:`` gives the same image as the archive it
was copied from. Like every source here it only hands out bytes and openers; ``walk.py`` checks every digest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from oci_conda.errors import ImageError
from oci_conda.oci.blobs import Opener, VerifyingReader, check_digest, digest_bytes
from oci_conda.oci.image import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Descriptor
from oci_conda.oci.walk import MAX_JSON_BLOB, load_json

__all__ = ["SkopeoDirSource", "is_skopeo_dir"]


def is_skopeo_dir(path: Path) -> bool:
    """Whether ``path`` looks like skopeo's dir format (``manifest.json`` and ``version``)."""
    return (path / "manifest.json").is_file() and (path / "version").is_file()


class SkopeoDirSource:
    """The blobs of a skopeo ``dir:`` directory; ``index()`` names its one top manifest (or index)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.what = f"skopeo dir {self.root}"
        if not self.root.is_dir():
            raise ImageError(f"{self.what}: no such directory")
        if not is_skopeo_dir(self.root):
            raise ImageError(f"{self.what}: not skopeo's dir format (no manifest.json and version file)")
        try:
            self.manifest = (self.root / "manifest.json").read_bytes()
            version = (self.root / "version").read_text(errors="replace").strip()
        except OSError as exc:
            raise ImageError(f"{self.what}: cannot read manifest.json ({exc.strerror})") from None
        if not version.startswith("Directory Transport Version: 1."):
            raise ImageError(f"{self.what}: unsupported version {version[:60]!r}")
        if len(self.manifest) > MAX_JSON_BLOB:
            raise ImageError(f"{self.what}: manifest.json is too large")
        self.top_digest = digest_bytes(self.manifest)

    def index(self) -> dict[str, Any]:
        doc = load_json(self.manifest, f"{self.what}/manifest.json")
        mt = doc.get("mediaType") or (MEDIA_TYPE_INDEX if "manifests" in doc else MEDIA_TYPE_MANIFEST)
        return {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX,
                "manifests": [{"mediaType": mt, "digest": self.top_digest, "size": len(self.manifest)}]}

    def _path(self, digest: str) -> Path:
        _algo, hexpart = check_digest(digest)
        p = self.root / hexpart
        if not p.is_file() and (self.root / f"{hexpart}.manifest.json").is_file():
            p = self.root / f"{hexpart}.manifest.json"
        return p

    def _open(self, digest: str) -> BinaryIO:
        try:
            return open(self._path(digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"{self.what}: blob {digest} is missing") from None
        except OSError as exc:
            raise ImageError(f"{self.what}: cannot read blob {digest} ({exc.strerror})") from None

    def fetch(self, desc: Descriptor) -> bytes:
        if desc.digest == self.top_digest:
            return self.manifest
        with self._open(desc.digest) as f:
            return f.read(desc.size + 1)

    def opener(self, desc: Descriptor) -> Opener:
        what = f"{self.what}: blob {desc.digest}"

        def _open() -> BinaryIO:
            return VerifyingReader(self._open(desc.digest), desc.digest, desc.size, what)  # type: ignore[return-value]

        return _open
