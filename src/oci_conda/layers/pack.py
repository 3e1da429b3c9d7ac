"""Turn a staged conda prefix into layer entries with conda-pack.

conda-pack owns the questions "which files make up this environment" and "how are prefixes relocated to
``dest_prefix``" (it reads managed files from each package's extracted directory and rewrites their placeholders).
We give its ``Packer`` an archive sink that collects entries instead of writing a tar, so the bytes of the layer are
decided by ``oci.tar`` (sorted, normalised, reproducible), not by Python's tarfile defaults.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import InstallError
from ..oci.tar import TarEntry


@dataclass
class PackedEnv:
    """The environment as layer entries (paths relative to ``/``) and which package owns each path."""

    entries: list[TarEntry]
    owner: dict[str, str] = field(default_factory=dict)  # entry path -> "name-version-build"
    warnings: list[str] = field(default_factory=list)


class _EntrySink:
    """The archive interface conda-pack's Packer writes to (``add`` / ``add_bytes``), collecting ``TarEntry``s."""

    def __init__(self, arcroot: str):
        self.arcroot = arcroot
        self.entries: dict[str, TarEntry] = {}
        self.inodes: dict[tuple[int, int], str] = {}

    def _path(self, target: str) -> str:
        p = os.path.normpath(os.path.join(self.arcroot, target))
        if p.startswith("..") or os.path.isabs(p):
            raise InstallError(f"conda-pack produced a path outside the prefix: {target!r}")
        return p

    def add(self, source: str, target: str) -> None:
        path = self._path(target)
        st = os.lstat(source)
        if stat.S_ISLNK(st.st_mode):
            entry = TarEntry(path, "symlink", 0o777, linkname=os.readlink(source))
        elif stat.S_ISDIR(st.st_mode):
            entry = TarEntry(path, "dir", 0o755)
        elif stat.S_ISREG(st.st_mode):
            # Note: Packer only hands us temporary files when dest_prefix is unset (conda-unpack); we always set it.
            entry = TarEntry(path, "file", stat.S_IMODE(st.st_mode), size=st.st_size, source=source)
            if st.st_nlink > 1:
                self.inodes.setdefault((st.st_dev, st.st_ino), path)
        else:
            raise InstallError(f"{target}: unsupported file type in the environment (mode {oct(st.st_mode)})")
        self.entries[path] = entry

    def add_bytes(self, source: str, sourcebytes: bytes, target: str) -> None:
        path = self._path(target)
        mode = stat.S_IMODE(os.lstat(source).st_mode) if os.path.lexists(source) else 0o644
        self.entries[path] = TarEntry(path, "file", mode, size=len(sourcebytes), data=sourcebytes)

    def finish(self) -> list[TarEntry]:
        """Entries sorted by path; files that share an inode become hardlinks to the first of them."""
        out = []
        first: dict[tuple[int, int], str] = {}
        for path in sorted(self.entries):
            e = self.entries[path]
            if e.kind == "file" and e.source is not None:
                st = os.lstat(e.source)
                key = (st.st_dev, st.st_ino)
                if key in self.inodes:
                    if key in first:
                        e = TarEntry(path, "hardlink", e.mode, linkname=first[key])
                    else:
                        first[key] = path
            out.append(e)
        return out


def pack_prefix(staging: Path, dest_prefix: str, clobbered: Mapping[str, Path] | None = None) -> PackedEnv:
    """conda-pack ``staging`` as if it lived at ``dest_prefix``; entries are rooted at ``dest_prefix``.

    ``clobbered`` maps a path two packages both ship to the extracted directory of the package whose copy won at
    install time: conda-pack lists every package's own copy, so the losers are dropped here.
    """
    # imported here: conda-pack takes ~0.1 s to import, and a build the layer memo answers never packs
    from conda_pack.core import CondaEnv, CondaPackException, File, Packer

    arcroot = dest_prefix.strip("/")
    sink = _EntrySink(arcroot)
    caught: list[str] = []
    clobbered = clobbered or {}
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            # the installer laid out every file its records list; what conda-pack finds "missing" is only its own
            # idea of a target (site-packages without CEP-17), which is never shipped (see _installed_paths)
            env = CondaEnv.from_prefix(str(staging), ignore_missing_files=True)
            packer = Packer(str(staging), sink, dest_prefix=dest_prefix)
            installed = _installed_paths(staging)
            shipped: set[str] = set()
            for f in env.files:
                if f.target in shipped:  # several packages ship this path: the installer kept one copy
                    continue
                if f.is_conda and f.target not in installed:
                    continue  # conda-pack's own idea of a target (e.g. site-packages without CEP-17): not installed
                shipped.add(f.target)
                if f.is_conda and (f.target in clobbered or f.prefix_placeholder is not None):
                    # the staged file is the installer's result: the kept copy, rewritten for dest_prefix (bounded,
                    # long shebangs via env, matching conda-meta's sha256_in_prefix); conda-pack must not redo it
                    f = File(os.path.join(staging, f.target), f.target, is_conda=True)
                packer.add(f)
            packer.finish()
        caught = [str(x.message).strip() for x in w]
    except (CondaPackException, ValueError, KeyError, TypeError) as e:  # its parsers raise these on odd metadata
        raise InstallError(f"conda-pack refused the environment: {str(e).strip().splitlines()[0][:300]}") from None
    entries = sink.finish()
    return PackedEnv(entries=entries, owner=_owners(staging, arcroot), warnings=caught)


def _installed_paths(staging: Path) -> set[str]:
    """Every path the installer laid out, as its conda-meta records list them, and conda-meta itself."""
    out: set[str] = set()
    meta = staging / "conda-meta"
    for p in meta.iterdir():
        out.add(f"conda-meta/{p.name}")
    for rec in meta.glob("*.json"):
        out.update(json.loads(rec.read_text()).get("files", ()))
    return out


def _owners(staging: Path, arcroot: str) -> dict[str, str]:
    """Map each packaged path to the package whose conda-meta record lists it (its record file too)."""
    owner: dict[str, str] = {}
    meta = staging / "conda-meta"
    for rec in sorted(meta.glob("*.json")):
        data = json.loads(rec.read_text())
        dist = rec.stem
        owner[f"{arcroot}/conda-meta/{rec.name}"] = dist
        for f in data.get("files", ()):
            owner[f"{arcroot}/{f}"] = dist
    return owner


def pack_existing(prefix: Path, dest_prefix: str) -> PackedEnv:
    """conda-pack an environment made by conda, mamba or pixi (pip extras included) as if it lived at
    ``dest_prefix``; entries are rooted at ``dest_prefix`` and owned by the package whose conda-meta lists them.

    conda-pack's own checks stand: an editable install, or a conda-managed file deleted or overwritten since install,
    refuses the environment (one line naming what it found). Managed files are read from the package cache when
    conda-meta points at it (as conda-pack does), else from the prefix; prefixes are rewritten for ``dest_prefix``.
    """
    from conda_pack.core import CondaEnv, CondaPackException, Packer, check_no_editable_packages

    arcroot = dest_prefix.strip("/")
    sink = _EntrySink(arcroot)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            # conda-pack looks for editable installs only in the conda python's site-packages; pip may have
            # installed into any python's (a pixi env with a system python, a python from another env)
            for sp in sorted(prefix.glob("lib/python*/site-packages")):
                check_no_editable_packages(str(prefix), str(sp.relative_to(prefix)))
            env = CondaEnv.from_prefix(str(prefix))
            packer = Packer(str(prefix), sink, dest_prefix=dest_prefix)
            for f in env.files:
                packer.add(f)
            packer.finish()
        caught = [" ".join(str(x.message).split())[:300] for x in w]
    except (CondaPackException, ValueError, KeyError, TypeError, OSError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise InstallError(f"{prefix}: conda-pack refused the environment: {' '.join(lines)[:400]}") from None
    return PackedEnv(entries=sink.finish(), owner=_owners(prefix, arcroot), warnings=caught)
