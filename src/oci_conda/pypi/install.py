"""Install one wheel at a conda prefix as pip would, into a staging directory laid out as that prefix.

The ``installer`` library does the wheel work (schemes, ``RECORD`` with hashes, entry-point launchers); we choose
the conda layout (``lib/pythonX.Y/site-packages``, ``bin``, ``include/pythonX.Y/NAME``, the prefix for data), the
image's interpreter for shebangs (``#!<prefix>/bin/python``, not the build host's), and what marks the install as
pip's: ``INSTALLER`` = ``pip`` (so ``pip`` and ``conda list`` treat the distribution as pip-installed: conda lists
any ``.dist-info`` it does not own as from PyPI), ``REQUESTED`` for the section's own requirements and
``direct_url.json`` for ``name @ URL`` wheels. Nothing written holds a time stamp; ``.pyc`` files are left to the
layer stage (``--compile-pyc``). Every entry of a wheel is checked first: no absolute paths, no ``..``, no OCI
whiteout names, nothing under ``conda-meta/``.
"""

from __future__ import annotations

import csv
import json
import posixpath
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InstallError, PackageError
from .fetch import verify_wheel
from .records import WheelRecord

_SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")


@dataclass(frozen=True)
class InstalledWheel:
    """What :func:`install_wheel` wrote: the record and every file, relative to the prefix, sorted."""

    record: WheelRecord
    files: tuple[str, ...]


def conda_scheme(root: Path, python: str, dist: str) -> dict[str, str]:
    """pip's install scheme for a conda prefix at ``root`` (``python`` = ``3.11``, ``dist`` = project name)."""
    site = root / "lib" / f"python{python}" / "site-packages"
    return {"purelib": str(site), "platlib": str(site), "scripts": str(root / "bin"), "data": str(root),
            "headers": str(root / "include" / f"python{python}" / dist)}


def install_wheel(wheel: Path, record: WheelRecord, *, prefix: str, python: str, staging: Path) -> InstalledWheel:
    """Install ``wheel`` into ``staging`` (a directory standing for ``prefix`` in the image; other wheels may
    already be staged there, and :attr:`InstalledWheel.files` lists only this one's).

    ``python`` is the target's ``X.Y``. Raises :class:`FetchError` when the file does not match the record's sha256
    and size, :class:`PackageError` for a hostile or corrupt wheel and :class:`InstallError` when it would overwrite
    a file already staged."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.exceptions import InstallerError
    from installer.sources import WheelFile

    label = f"{record.name} {record.version} ({record.filename})"
    verify_wheel(wheel, record)  # every use of a cached file is verified, this one included
    dist_name = _check_entries(wheel, label)
    scheme = conda_scheme(staging, python, dist_name)
    dest = SchemeDictionaryDestination(scheme, interpreter=posixpath.join(prefix, "bin", "python"),
                                       script_kind="posix", hash_algorithm="sha256")
    meta = {"INSTALLER": b"pip\n"}
    if record.requested:
        meta["REQUESTED"] = b""
    if record.direct and record.sha256:
        direct = {"archive_info": {"hash": f"sha256={record.sha256}", "hashes": {"sha256": record.sha256}},
                  "url": record.url}
        meta["direct_url.json"] = json.dumps(direct, sort_keys=True).encode()
    try:
        with WheelFile.open(wheel) as source, warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # __pycache__ inside a wheel: refuse, don't skip
            source.validate_record()
            dist_info = source.dist_info_dir
            install(source, dest, dict(sorted(meta.items())))
    except FileExistsError as exc:
        raise InstallError(f"{label}: would overwrite {_rel(Path(exc.args[0].split(': ', 1)[-1]), staging)}") \
            from None
    except (InstallerError, zipfile.BadZipFile, RuntimeWarning, ValueError) as exc:
        raise PackageError(f"{label}: invalid wheel: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    return InstalledWheel(record, _recorded_files(Path(scheme["purelib"]), dist_info, staging))


def _recorded_files(site: Path, dist_info: str, staging: Path) -> tuple[str, ...]:
    """The files the install wrote, from its own ``RECORD`` (so several wheels may share one staging root)."""
    with open(site / dist_info / "RECORD", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    site_rel = _rel(site, staging)
    return tuple(sorted({posixpath.normpath(posixpath.join(site_rel, row[0])) for row in rows if row}))


def _check_entries(wheel: Path, label: str) -> str:
    """Refuse entries that could land outside the prefix or hide files in a layer; return the project name."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackageError(f"{label}: not a readable wheel ({exc})") from None
    data_dirs = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".data")}
    dist_name = ""
    for name in names:
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or ".." in parts or any(p.startswith(".wh.") for p in parts):
            raise PackageError(f"{label}: refusing entry {name!r} (absolute, escaping or an OCI whiteout)")
        if parts[0] in data_dirs and len(parts) > 2:
            if parts[1] not in _SCHEMES:
                raise PackageError(f"{label}: entry {name!r} uses unknown install scheme {parts[1]!r}")
            if parts[1] == "data" and parts[2] == "conda-meta":
                raise PackageError(f"{label}: refusing entry {name!r} (conda-meta belongs to conda)")
        if parts[0].endswith(".dist-info") and len(parts) == 2 and parts[1] == "METADATA":
            with zipfile.ZipFile(wheel) as zf:
                for line in zf.read(name).decode("utf-8", "replace").splitlines():
                    if line.startswith("Name:"):
                        dist_name = line.split(":", 1)[1].strip()
                        break
    if not dist_name or "/" in dist_name or dist_name.startswith("."):
        raise PackageError(f"{label}: no usable Name in its METADATA")
    return dist_name


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
