"""``PackageRecord``: the one record type every stage passes on, from repodata to SBOM."""

from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """One package file as a channel lists it.

    ``channel`` is the channel's canonical URL without credentials (e.g. ``https://conda.anaconda.org/conda-forge``
    or ``file:///srv/chan``); ``url`` is where the file is fetched from (may carry a token; never written out).
    ``timestamp`` is in milliseconds, as in repodata (seconds are converted on read).
    """

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    channel: str
    url: str
    fn: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    track_features: tuple[str, ...] = ()
    timestamp: int = 0
    noarch: str | None = None
    license: str | None = None
    features: str | None = None

    @property
    def dist_name(self) -> str:
        """``name-version-build``, the stem conda uses for cache dirs and ``conda-meta`` files."""
        return f"{self.name}-{self.version}-{self.build}"

    @property
    def ext(self) -> str:
        return ".conda" if self.fn.endswith(".conda") else ".tar.bz2"

    @classmethod
    def from_repodata(cls, fn: str, raw: Mapping[str, Any], channel: str, subdir: str, base_url: str) -> "PackageRecord":
        """Build a record from one repodata entry; ``base_url`` is the subdir URL (or CEP-15 ``info.base_url``)."""
        tf = raw.get("track_features") or ()
        if isinstance(tf, str):
            tf = tuple(t for t in tf.replace(",", " ").split() if t)
        noarch = raw.get("noarch")
        if noarch is True:  # very old repodata: noarch: true meant generic
            noarch = "generic"
        ts = int(raw.get("timestamp") or 0)
        if 0 < ts < 253402300799:  # seconds, not milliseconds
            ts *= 1000
        return cls(
            name=str(raw["name"]),
            version=str(raw["version"]),
            build=str(raw["build"]),
            build_number=int(raw.get("build_number") or 0),
            subdir=str(raw.get("subdir") or subdir),
            channel=channel,
            url=base_url.rstrip("/") + "/" + fn,
            fn=fn,
            sha256=raw.get("sha256"),
            md5=raw.get("md5"),
            size=raw.get("size"),
            depends=tuple(raw.get("depends") or ()),
            constrains=tuple(raw.get("constrains") or ()),
            track_features=tuple(tf),
            timestamp=ts,
            noarch=noarch or None,
            license=raw.get("license"),
            features=raw.get("features") or None,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain dict, stable key set (for lockfiles, ``--json`` and ``conda-meta``)."""
        d = asdict(self)
        d["depends"] = list(self.depends)
        d["constrains"] = list(self.constrains)
        d["track_features"] = list(self.track_features)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PackageRecord":
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("depends", "constrains", "track_features"):
            kw[k] = tuple(kw.get(k) or ())
        return cls(**kw)
