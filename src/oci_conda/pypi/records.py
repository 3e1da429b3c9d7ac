"""``WheelRecord``: one resolved wheel, the PyPI counterpart of a conda ``PackageRecord``.

It crosses stages (resolve -> lock -> fetch -> install -> layer), so it holds only credential-free, reproducible
facts. ``size`` (and, for indexes that publish no hash, ``sha256``) is unknown until the wheel is fetched: pip's
report does not carry sizes, so :func:`oci_conda.pypi.fetch.fetch_wheels` returns completed records, and a lock is
written from those.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class WheelRecord:
    """A wheel pinned for one target platform."""

    name: str  #: canonical (PEP 503) distribution name
    version: str
    filename: str
    url: str  #: credential-free; credentials are re-attached per host at fetch time
    sha256: str | None = None  #: hex; ``None`` only before the first fetch from an index that publishes none
    size: int | None = None  #: bytes; ``None`` until fetched
    requires_python: str | None = None
    requested: bool = False  #: a direct requirement of the pip section (gets ``REQUESTED`` when installed)
    direct: bool = False  #: given as ``name @ URL`` (gets ``direct_url.json`` when installed)

    def __post_init__(self) -> None:
        from packaging.utils import canonicalize_name

        object.__setattr__(self, "name", canonicalize_name(self.name))

    def completed(self, sha256: str, size: int) -> WheelRecord:
        """This record with the hash and size measured at fetch time."""
        return dataclasses.replace(self, sha256=sha256, size=size)

    def to_dict(self) -> dict[str, object]:
        """Plain data for a lock file (sorted keys when serialised)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> WheelRecord:
        """The inverse of :meth:`to_dict`; unknown keys are refused so a typo in a lock is not silently dropped."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown wheel record field(s): {', '.join(unknown)}")
        return cls(**data)  # type: ignore[arg-type]
