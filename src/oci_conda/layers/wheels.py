"""The pip stage: after conda, the ``pip:`` section's wheels, resolved for the target and laid out as layers.

conda first, then pip, as one environment (as ``conda env create`` does): the Python distributions the conda
packages install (their ``site-packages/*.dist-info``/``.egg-info``) count as installed, the target is the solved
``python`` on the image's glibc, and every wheel is installed at the image prefix into a staging directory of its
own. Each wheel then becomes one layer holding only that wheel's files (plus its ``.pyc`` with ``--compile-pyc``),
so the same wheel at the same prefix and python gives the same layer digest in every image.

Knows the conda and pypi packages and TarEntry/LayerPlan; nothing of options, specs or locks (``build.py`` and
``resolve.py`` hand in plain values).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..conda.fetch import fetch_packages
from ..conda.lockentries import PypiEntry
from ..conda.package import extract_package, read_paths
from ..conda.records import PackageRecord
from ..credentials import strip_credentials
from ..errors import PackageError, SpecError
from ..oci.tar import TarEntry
from ..payload_names import refused_payload_path
from ..pypi.fetch import FetchedWheel, fetch_wheels
from ..pypi.hosts import HostCredentials
from ..pypi.install import InstalledWheel, install_wheel
from ..pypi.installed import InstalledDist, dist_from_metadata, dists_from_paths
from ..pypi.records import WheelRecord
from ..pypi.requirements import PipSection, SourceLine, parse_pip_section
from ..pypi.resolve import resolve_wheels
from ..pypi.target import DEFAULT_GLIBC, Target, TargetPython
from .plan import MAX_TOTAL_LAYERS, LayerPlan
from .pyc import compile_pyc, python_version

if TYPE_CHECKING:
    import requests

#: ``oci-conda inspect`` and the build summary name a wheel's layer ``pip: NAME VERSION``.
LAYER_PREFIX = "pip: "


def extraction_key(r: PackageRecord) -> str:
    """The readable part of a package's directory in the extraction cache (``build`` and the lock share it)."""
    return f"{r.sha256 or r.md5 or r.fn}-{r.dist_name}"


# ---------------------------------------------------------------------------------------------------------------
# the target and what conda installed


def target_for(subdir: str, records: Sequence[PackageRecord], virtual: Sequence[PackageRecord],
               where: str) -> Target:
    """The target wheels must fit: ``subdir``, the ``__glibc`` the solve assumed, the solved ``python``.

    Without a conda ``python`` there is nothing pip could install into: one error naming ``where`` (the env file)."""
    python = next((r for r in records if r.name == "python"), None)
    if python is None:
        raise SpecError(f"{where}: the pip: section needs python from conda, but the solution for {subdir} has no "
                        "python package (add python to dependencies)")
    glibc = DEFAULT_GLIBC
    for v in virtual:
        if v.name == "__glibc":
            parts = v.version.split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                glibc = (int(parts[0]), int(parts[1]))
    return Target(subdir, TargetPython.from_conda(python.version, python.build), glibc)


def conda_dists(records: Sequence[PackageRecord], extracted: Sequence[Path]) -> list[InstalledDist]:
    """The Python distributions the conda packages install, from their file lists, with their ``Requires-Dist``
    when the metadata file is in the package (so pip checks the dependencies of conda's packages too)."""
    out: dict[str, InstalledDist] = {}
    for rec, pkg_dir in zip(records, extracted):
        paths = [p.path for p in read_paths(pkg_dir)]
        for dist in dists_from_paths(paths, package=rec.name):
            out.setdefault(dist.key, _with_metadata(dist, pkg_dir, paths, rec.name))
    return [out[k] for k in sorted(out)]


def _with_metadata(dist: InstalledDist, pkg_dir: Path, paths: Sequence[str], package: str) -> InstalledDist:
    for p in paths:
        head, _, leaf = p.rpartition("/")
        if leaf not in ("METADATA", "PKG-INFO") or not head.endswith((".dist-info", ".egg-info")):
            continue
        if dists_from_paths([head + "/"])[0].key != dist.key:
            continue
        try:
            text = (pkg_dir / p).read_text(encoding="utf-8", errors="replace")
            return replace(dist_from_metadata(text, package), name=dist.name, version=dist.version)
        except (OSError, ValueError):
            break
    return dist


def extracted_packages(records: Sequence[PackageRecord], session: requests.Session, extract_root: Path, *,
                       jobs: int, offline: bool) -> list[Path]:
    """Fetch and extract ``records`` (both cached) for a lock that must resolve a pip section."""
    files = fetch_packages(records, session, jobs=jobs, offline=offline)
    return [extract_package(files[r.url], extract_root, extraction_key(r), label=r.fn) for r in records]


# ---------------------------------------------------------------------------------------------------------------
# resolve and fetch


def pip_section(lines: Sequence[SourceLine], base_dir: Path) -> PipSection:
    """The ``pip:`` entries for one platform, read (``-r``/``-c`` files relative to the env file)."""
    return parse_pip_section(lines, base_dir=base_dir)


def resolve_pip(section: PipSection, target: Target, installed: Iterable[InstalledDist]) -> list[WheelRecord]:
    """pip's own resolver, for the target, conda's distributions counted as installed."""
    return resolve_wheels(section, target, installed=installed)


def fetch_pip(records: Sequence[WheelRecord], session: requests.Session, credentials: HostCredentials,
              jobs: int) -> list[FetchedWheel]:
    """Every wheel from the cache (verified) or its index; records come back with sha256 and size."""
    return fetch_wheels(records, session, credentials=credentials, jobs=jobs)


def wheel_records_from_entries(entries: Iterable[PypiEntry]) -> list[WheelRecord]:
    """Locked PyPI entries (conda-lock ``manager: pip``, pixi.lock ``pypi``) as wheel records; what needs a build
    (an sdist, an editable or a local source tree) is one error naming it."""
    out = []
    for e in entries:
        url = strip_credentials(e.url)
        filename = url.split("#", 1)[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if e.editable or not filename.endswith(".whl"):
            raise SpecError(f"pip: {e.name} {e.version} is locked as {filename or url!r}, not a wheel; a wheel is "
                            "needed (source distributions and editable installs are not built)")
        sha = e.sha256
        if sha is None and "#sha256=" in url:
            sha = url.split("#sha256=", 1)[1]
        out.append(WheelRecord(name=e.name, version=e.version, filename=filename, url=url.split("#", 1)[0],
                               sha256=sha, requires_python=e.requires_python, requested=False))
    return sorted(out, key=lambda r: r.name)


# ---------------------------------------------------------------------------------------------------------------
# install and layers


@dataclass(frozen=True)
class WheelLayers:
    """The wheels' layers (one per wheel, in name order) and what the build should say about them."""

    plans: list[LayerPlan]
    installed: list[InstalledWheel]


def wheel_layers(fetched: Sequence[FetchedWheel], *, prefix: str, staging: Path,
                 conda_paths: Iterable[str], compile: bool, conda_records: Sequence[PackageRecord],
                 warnings: list[str], jobs: int) -> WheelLayers:
    """Install each wheel at ``prefix`` into ``staging/<n>`` and turn its files into a layer of its own.

    A file a conda package already ships is refused (pip would overwrite it and conda's record would lie); so is a
    name no payload may carry (``payload_names``). ``compile`` adds ``.pyc`` files as ``--compile-pyc`` does for
    conda packages, listed in the wheel's ``RECORD`` as pip lists the ones it compiles."""
    arcroot = prefix.strip("/")
    python = python_version(conda_records)
    if python is None:
        raise SpecError("pip: the solution has no python package to install wheels for")
    taken = set(conda_paths)
    plans: list[LayerPlan] = []
    done: list[InstalledWheel] = []
    for n, fw in enumerate(sorted(fetched, key=lambda f: f.record.name)):
        root = staging / str(n)
        root.mkdir(parents=True)
        inst = install_wheel(fw.path, fw.record, prefix=prefix, python=python, staging=root)
        label = f"{fw.record.name} {fw.record.version}"
        for rel in inst.files:
            why = refused_payload_path(rel)
            if why:
                raise PackageError(f"{label} ({fw.record.filename}): refusing {rel!r}: it {why}")
            if f"{arcroot}/{rel}" in taken:
                raise PackageError(f"{label} ({fw.record.filename}): would overwrite {rel}, which a conda package "
                                   "installs")
        entries = _entries(root, inst.files, arcroot)
        if compile:
            owner = {e.path: label for e in entries}
            entries, _ = compile_pyc(entries, owner, arcroot, conda_records, staging / f"pyc-{n}", warnings,
                                     jobs=jobs)
            entries = _record_pyc(entries, inst, root, arcroot, python)
        plans.append(LayerPlan(name=f"{LAYER_PREFIX}{label}", packages=[f"pip:{fw.record.name}-{fw.record.version}"],
                               entries=entries))
        done.append(inst)
    return WheelLayers(plans, done)


def _entries(root: Path, files: Sequence[str], arcroot: str) -> list[TarEntry]:
    """The wheel's files and their parent directories (so the layer stands alone), sorted by path."""
    out: dict[str, TarEntry] = {}
    for rel in files:
        src = root / rel
        st = os.lstat(src)
        path = f"{arcroot}/{rel}"
        if stat.S_ISLNK(st.st_mode):
            out[path] = TarEntry(path, "symlink", 0o777, linkname=os.readlink(src))
        else:
            out[path] = TarEntry(path, "file", 0o755 if st.st_mode & 0o111 else 0o644, size=st.st_size,
                                 source=str(src))
        parent = path.rpartition("/")[0]
        while parent and parent not in out:
            out[parent] = TarEntry(parent, "dir", 0o755)
            parent = parent.rpartition("/")[0]
    return [out[p] for p in sorted(out)]


def _record_pyc(entries: list[TarEntry], inst: InstalledWheel, root: Path, arcroot: str,
                python: str) -> list[TarEntry]:
    """Add the compiled ``.pyc`` files to the wheel's ``RECORD`` (``path,sha256=...,size``) as pip does."""
    site = f"{arcroot}/lib/python{python}/site-packages/"
    known = {f"{arcroot}/{f}" for f in inst.files}
    new = [e for e in entries if e.kind == "file" and e.path not in known and e.path.endswith(".pyc")]
    record = next((f for f in inst.files if f.endswith(".dist-info/RECORD")), None)
    if not new or record is None:
        return entries
    raw = (root / record).read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    for e in sorted(new, key=lambda e: e.path):
        data = Path(e.source).read_bytes() if e.source else (e.data or b"")
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append([os.path.relpath(e.path, site) if e.path.startswith(site) else "/" + e.path,
                     f"sha256={digest}", str(len(data))])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode()
    path = f"{arcroot}/{record}"
    return [TarEntry(path, "file", e.mode, size=len(data), data=data) if e.path == path else e for e in entries]


def wheel_files(installed: Sequence[InstalledWheel]) -> list[str]:
    """Every prefix-relative path the wheels installed (for the summary and the SBOM)."""
    return sorted({f for w in installed for f in w.files})


def merge_wheel_plans(plans: list[LayerPlan], wheel_plans: list[LayerPlan], layering: str, max_layers: int,
                      base_layers: int) -> list[LayerPlan]:
    """The conda layers, then the wheels': one layer per wheel while the budget allows (the biggest first), the
    rest together in one; with ``single`` layering, everything in the one layer."""
    if layering == "single":
        (one,) = plans
        seen = {e.path for e in one.entries}
        extra = [e for w in wheel_plans for e in w.entries if e.path not in seen and not seen.add(e.path)]
        entries = sorted([*one.entries, *extra], key=lambda e: e.path)
        return [LayerPlan(name=f"{one.name} + {len(wheel_plans)} pip packages",
                          packages=[*one.packages, *(p for w in wheel_plans for p in w.packages)], entries=entries)]
    free = min(max_layers, MAX_TOTAL_LAYERS - base_layers) - len(plans)
    if len(wheel_plans) <= free:
        return [*plans, *wheel_plans]
    by_size = sorted(wheel_plans, key=lambda w: (-w.size, w.name))
    own = {id(w) for w in by_size[:max(0, free - 1)]}
    rest = [w for w in wheel_plans if id(w) not in own]
    merged: dict[str, TarEntry] = {}
    for w in rest:
        for e in w.entries:
            merged.setdefault(e.path, e)
    group = LayerPlan(name=f"{LAYER_PREFIX}{len(rest)} packages", packages=[p for w in rest for p in w.packages],
                      entries=[merged[k] for k in sorted(merged)])
    return [*plans, *(w for w in wheel_plans if id(w) in own), group]
