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
from typing import Any, Mapping

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


#: Top-level names conda-pack's file walk (``load_files``) leaves out of an environment, as it does.
_WALK_IGNORED = {"pkgs", "envs", "conda-bld", ".conda_lock", "users", "conda-recipes", ".index", ".unionfs", ".nonadmin",
                 "python.app", "Launcher.app"}


def _walked(staging: Path, standing: Mapping[str, str]) -> set[str]:
    """What conda-pack's walk of the prefix finds (files, links, linked directories, empty directories), counting
    the files the installer recorded instead of writing (``standing``: where they stand) as if they were there."""
    from conda_pack.core import load_files

    found = set(load_files(str(staging)))
    recorded = {t for t in standing if not walk_skips(t.split("/", 1)[0])}
    if recorded:
        holding = {parent for t in recorded for parent in path_parents(t)}
        found = {f for f in found if f not in holding} | recorded  # a directory of recorded files is not empty
    return found


def walk_skips(top: str) -> bool:
    """conda-pack's walk leaves this top-level name of the prefix out of the environment."""
    return top in _WALK_IGNORED or top.endswith(("~", ".DS_STORE"))


def path_parents(path: str) -> list[str]:
    """``a/b/c`` -> ``["a/b", "a"]``."""
    out = []
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        out.append(path)
    return out


def pack_prefix(staging: Path, dest_prefix: str, sources: Mapping[str, str] | None = None,
                standing: Mapping[str, str] | None = None) -> PackedEnv:
    """conda-pack an installed ``staging`` as if it lived at ``dest_prefix``; entries are rooted at ``dest_prefix``.

    The files are those the installer's conda-meta records list (the installer decided which copy of a path two
    packages ship is kept; only the winner's record lists it), found as conda-pack's walk finds them;
    ``sources`` and ``standing`` name the package file of each file the installer recorded instead of writing
    (``install(record_plain=True)``), by target and by where it stands. conda-pack's ``Packer`` rewrites the records
    and adds its activation scripts.
    """
    # imported here: conda-pack takes ~0.1 s to import, and a build the layer memo answers never packs
    from conda_pack.core import BIN_DIR, CondaPackException, File, Packer, find_py_source

    arcroot = dest_prefix.strip("/")
    sink = _EntrySink(arcroot)
    sources, standing = sources or {}, standing or {}
    caught: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            found = _walked(staging, standing)
            packer = Packer(str(staging), sink, dest_prefix=dest_prefix)
            managed: set[str] = set()
            meta = staging / "conda-meta"
            for rec in sorted(meta.glob("*.json")):
                for target in json.loads(rec.read_text()).get("files", ()):
                    managed.add(target)
                    if target in found:  # as conda-pack with ignore_missing_files: what its walk misses is left out
                        source = sources.get(target) or standing.get(target) or os.path.join(staging, target)
                        packer.add(File(source, target, is_conda=True))
                rel = f"conda-meta/{rec.name}"
                managed.add(rel)
                packer.add(File(str(rec), rel, is_conda=True))
            if (meta / "history").exists():
                managed.add("conda-meta/history")
                packer.add(File(str(meta / "history"), "conda-meta/history", is_conda=True))
            unmanaged = found - managed - {f"{BIN_DIR}/{f}" for f in ("conda", "activate", "deactivate")}
            for rel in sorted(unmanaged):
                if find_py_source(rel) not in managed:
                    packer.add(File(standing.get(rel) or os.path.join(staging, rel), rel, is_conda=False,
                                    file_mode="unknown"))
            packer.finish()
        caught = [str(x.message).strip() for x in w]
    except (CondaPackException, ValueError, KeyError, TypeError) as e:  # its parsers raise these on odd metadata
        raise InstallError(f"conda-pack refused the environment: {str(e).strip().splitlines()[0][:300]}") from None
    entries = sink.finish()
    return PackedEnv(entries=entries, owner=_owners(staging, arcroot), warnings=caught)


def packed_record(doc: dict[str, Any]) -> bytes:
    """A conda-meta record (as written by conda.install.conda_meta_json) as conda-pack packs it: the paths of the
    machine that installed it blanked, written again with one-space indents and sorted keys (the bytes
    ``Packer`` adds for ``conda-meta/*.json``)."""
    doc = dict(doc)
    for key in ("extracted_package_dir", "package_tarball_full_path"):
        if key in doc:
            doc[key] = ""
    if doc.get("link") and "source" in doc["link"]:
        doc["link"] = {**doc["link"], "source": ""}
    return json.dumps(doc, indent=True, sort_keys=True).encode()


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
