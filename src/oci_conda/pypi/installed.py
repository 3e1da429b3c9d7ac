"""conda's Python distributions, as pip must see them: already installed, at exactly their version.

``pip install --target`` (needed to resolve for another platform) ignores whatever is installed, so we tell pip
twice: a constraint ``name==version`` (pip may not pick another version), and a tiny stand-in wheel carrying the
distribution's metadata at the target's most preferred tag, offered through ``--find-links``. The stand-in wins the
tie with an index wheel of the same version (build tag ``0``), so pip neither downloads the real wheel (numpy, torch)
nor fails when conda's version was never published on the index. The resolver drops the stand-ins afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .target import Target

_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class InstalledDist:
    """A Python distribution a conda package installs (from its ``site-packages/*.dist-info`` or ``.egg-info``)."""

    name: str
    version: str
    requires_dist: tuple[str, ...] = ()  #: its ``Requires-Dist`` lines, when known; pip then checks them too
    package: str = ""  #: the conda package that ships it, for messages (defaults to the name)

    @property
    def key(self) -> str:
        from packaging.utils import canonicalize_name

        return canonicalize_name(self.name)

    def pinnable(self) -> bool:
        """Only PEP 440 versions can be pinned for pip; others are left to pip (and may be installed over)."""
        from packaging.version import InvalidVersion, Version

        try:
            Version(self.version)
        except InvalidVersion:
            return False
        return True


def dist_from_metadata(text: str, package: str = "") -> InstalledDist:
    """An installed distribution from its ``METADATA``/``PKG-INFO`` text (name, version and ``Requires-Dist``), so
    pip sees the dependencies and extras of what conda installed, as it would in the environment itself."""
    import email.parser

    msg = email.parser.HeaderParser().parsestr(text)
    name, version = msg.get("Name"), msg.get("Version")
    if not name or not version:
        raise ValueError("metadata without Name or Version")
    return InstalledDist(name.strip(), version.strip(), tuple(r.strip() for r in msg.get_all("Requires-Dist") or ()),
                         package)


def stand_in_wheel(dist: InstalledDist, target: Target, directory: Path) -> tuple[Path, str]:
    """Write ``dist``'s stand-in wheel into ``directory``; return its path and ``sha256:<hex>`` (for hash mode)."""
    from packaging.version import Version

    name = dist.key.replace("-", "_")
    version = str(Version(dist.version))
    info = f"{name}-{version}.dist-info"
    tag = target.tags()[0]
    lines = ["Metadata-Version: 2.1", f"Name: {dist.name}", f"Version: {version}"]
    # pip honours an extra only when the metadata declares it; the extras are those the requirements mention.
    extras = sorted({m for r in dist.requires_dist for m in re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", r)})
    lines += [f"Provides-Extra: {e}" for e in extras]
    lines += [f"Requires-Dist: {r}" for r in dist.requires_dist]
    files = {
        f"{info}/METADATA": ("\n".join(lines) + "\n").encode(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: oci-conda\nRoot-Is-Purelib: false\nBuild: 0\nTag: {tag}\n"
                         .encode(),
    }
    record = [f"{p},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}" for p, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = directory / f"{name}-{version}-0-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, data in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, _DATE), data)
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_DIST_DIR = re.compile(r"(?:^|/)site-packages/([^/]+?)-([^-/]+?)(?:-py\d+(?:\.\d+)?)?\.(?:dist-info|egg-info)(?:/|$)")


def dists_from_paths(paths: Iterable[str], package: str = "") -> list[InstalledDist]:
    """The distributions a conda package installs, from its file list (``info/files`` / ``paths.json`` paths):
    each ``site-packages/NAME-VERSION.dist-info`` or ``.egg-info`` (file or directory) names one. Works for both
    ``lib/pythonX.Y/site-packages/...`` and noarch ``site-packages/...`` paths."""
    from packaging.utils import canonicalize_name

    found: dict[str, InstalledDist] = {}
    for path in paths:
        m = _DIST_DIR.search(path)
        if m:
            name, version = m.group(1), m.group(2)
            found.setdefault(canonicalize_name(name), InstalledDist(name, version, package=package))
    return [found[k] for k in sorted(found)]
