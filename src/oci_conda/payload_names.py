"""Which paths a package payload (a conda package, a wheel, a generated file) may never ship.

A leaf module so that the package readers (which know nothing of OCI) and the layer writer share one rule:

- **OCI whiteouts** (a component ``.wh.<name>`` or ``.wh..wh..opq``): in an image layer they delete files of the
  layers below (python, its conda-meta record). Only the layer writer, when explicitly asked, may emit one.
- **``conda-meta/``**: what conda, mamba and ``oci-conda inspect`` believe is installed. Only the installer writes
  it; a package shipping ``conda-meta/openssl-9.9.9-fake_0.json`` would forge the package list.
"""

from __future__ import annotations

WHITEOUT_PREFIX = ".wh."
#: The directory only the installer writes (records, history).
METADATA_DIR = "conda-meta"


def is_whiteout(path: str) -> bool:
    """Whether any ``/``-separated component of ``path`` is an OCI whiteout name (``.wh.x``, ``.wh..wh..opq``)."""
    return any(part.startswith(WHITEOUT_PREFIX) for part in path.split("/"))


def refused_payload_path(path: str) -> str | None:
    """Why a package may not ship ``path`` (prefix-relative, normalised), or None when it may."""
    if is_whiteout(path):
        return "is an OCI whiteout name (it would delete files of the layers below)"
    if path == METADATA_DIR or path.startswith(METADATA_DIR + "/"):
        return "is under conda-meta/, which only the installer writes"
    return None
