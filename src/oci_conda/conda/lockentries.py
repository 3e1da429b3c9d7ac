"""What the foreign lockfile readers (pixi.lock, conda-lock) return: conda records and PyPI entries per platform.

Plain typed data, so the pip stage can map a ``PypiEntry`` to its own wheel record without knowing either format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .records import PackageRecord


@dataclass(frozen=True)
class PypiEntry:
    """One locked PyPI distribution, as the lock names it (nothing is fetched or checked here)."""

    name: str
    version: str
    url: str  # a URL, or a path relative to the lock file's directory (pixi writes both)
    sha256: str | None = None
    md5: str | None = None
    requires_dist: tuple[str, ...] = ()  # PEP 508 strings, as written
    requires_python: str | None = None
    extras: tuple[str, ...] = ()  # extras the environment asks for (pixi's per-environment ``extras``)
    editable: bool = False


@dataclass(frozen=True)
class LockedPlatform:
    """Everything a lock pins for one target platform (conda subdir)."""

    conda: tuple[PackageRecord, ...] = ()
    pypi: tuple[PypiEntry, ...] = ()


@dataclass(frozen=True)
class ForeignLock:
    """One environment of a lockfile written by another tool."""

    path: str  # for messages
    environment: str  # pixi environment name; "default" for conda-lock
    channels: tuple[str, ...]  # as the lock lists them
    platforms: Mapping[str, LockedPlatform] = field(default_factory=dict)
