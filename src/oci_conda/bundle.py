"""Bundles: one deterministic tar with everything an offline build needs (air-gapped, a year later).

Layout of ``bundle.tar`` (sorted entries, owner 0, mtime 0, no compression)::

    oci-conda-bundle.json      {"version": 1, "lock": "lock/NAME", "env": "env/NAME" | null, "base": true | false}
    lock/NAME                  the lock (oci-conda, conda-lock.yml or @EXPLICIT), byte for byte
    env/NAME                   the environment file the lock was made from (when there is one)
    pkgs/<sha256>.conda ...    every package file, named as the package cache names it
    wheels/<sha256>/<file>.whl every wheel of the pip sections, named as the wheel cache names it
    base/oci-layout, base/index.json, base/blobs/sha256/...
                               the base image of every platform (an OCI layout: index.json -> an image index over
                               the platform manifests, which keep their digests)

``build --from-bundle`` unpacks it into a temporary directory, stores the packages in the package cache (verified),
points the base at ``oci:<tmp>/base`` and builds offline from the lock: no socket is opened.

Models and read/write only: the ``bundle`` command (which locks or reads the lock first) lives in commands.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .cache import atomic_path, cache_dir, held_temp_dir
from .conda.fetch import fetch_packages
from .errors import OutputError
from .limits import LimitError, loads_json, open_regular
from .lockfile import Lock, LockError, read_lock
from .oci.blobs import Opener
from .oci.image import MEDIA_TYPE_INDEX, Descriptor, index_bytes
from .oci.layout import OCI_LAYOUT
from .oci.local import open_local_image
from .oci.source import parse_image_ref
from .oci.tar import TarEntry, write_layer
from .oci.walk import fetch_verified, resolve
from .platforms import platform_for_subdir
from .progress import Reporter
from .pypi.fetch import fetch_wheel, fetch_wheels
from .pypi.hosts import HostCredentials

if TYPE_CHECKING:
    import requests

BUNDLE_VERSION = 1
MANIFEST_NAME = "oci-conda-bundle.json"


# ---------------------------------------------------------------------------------------------------------------
# base image blobs


def _base_blobs(base: str, subdir: str) -> tuple[Descriptor, dict[str, bytes], dict[str, tuple[int, Opener]]]:
    """``(manifest descriptor with platform, small blobs, big blobs)`` of ``base`` for ``subdir``, digests kept."""
    platform = platform_for_subdir(subdir)
    ref = parse_image_ref(base)
    if ref.transport not in ("oci", "oci-archive"):
        raise LockError(f"bundle: base image {base}: only scratch, oci:DIR and oci-archive:PATH bases can be bundled")
    what = f"base image {base}"
    local = open_local_image(Path(ref.path), ref.ref)
    node = resolve(local.source, local.top, platform, what)
    cdesc = node.config(what)
    small = {node.descriptor.digest: node.data, cdesc.digest: fetch_verified(local.source, cdesc, what)}
    big = {ld.digest: (ld.size, local.source.opener(ld)) for ld in node.layers(what)}
    d = node.descriptor
    return Descriptor(d.media_type, d.digest, d.size, None, platform), small, big


# ---------------------------------------------------------------------------------------------------------------
# writing


def write_bundle(lock: Lock, lock_bytes: bytes, lock_name: str, env_path: Path | None, out: Path,
                 session: requests.Session, jobs: int = 8, reporter: Reporter | None = None,
                 credentials: HostCredentials | None = None) -> dict[str, Any]:
    """Fetch every package and wheel of ``lock`` (into the cache) and write the bundle tar atomically; returns a
    summary. ``credentials`` are the pip indexes' (for wheels not in the cache yet)."""
    records = [r for pl in lock.platforms.values() for r in pl.packages]
    files = fetch_packages(records, session, jobs=jobs)
    entries: dict[str, TarEntry] = {}
    for r in records:
        p = files[r.url]
        entries[f"pkgs/{p.name}"] = TarEntry(f"pkgs/{p.name}", "file", source=str(p), size=p.stat().st_size)
    wheels = {(w.sha256, w.filename): w for pl in lock.platforms.values() for w in pl.wheels}
    for fw in fetch_wheels([wheels[k] for k in sorted(wheels, key=str)], session, credentials=credentials,
                           jobs=jobs):
        name = f"wheels/{fw.record.sha256}/{fw.record.filename}"
        entries[name] = TarEntry(name, "file", source=str(fw.path), size=fw.path.stat().st_size)
    manifests = []
    small: dict[str, bytes] = {}
    big: dict[str, tuple[int, Opener]] = {}
    for subdir, pl in sorted(lock.platforms.items()):
        if pl.base in ("scratch", "") or pl.base_digest is None:
            continue
        desc, s, b = _base_blobs(pl.base, subdir)
        if desc.digest != pl.base_digest:
            raise LockError(f"bundle: base image {pl.base} for {subdir} is now {desc.digest}, locked {pl.base_digest}; "
                            "relock")
        manifests.append(desc)
        small.update(s)
        big.update(b)
    if manifests:
        idx = index_bytes(manifests)
        idx_digest = "sha256:" + hashlib.sha256(idx).hexdigest()
        small[idx_digest] = idx
        top = {"schemaVersion": 2, "manifests": [Descriptor(MEDIA_TYPE_INDEX, idx_digest, len(idx)).to_json()]}
        entries["base/oci-layout"] = TarEntry("base/oci-layout", "file", data=OCI_LAYOUT)
        entries["base/index.json"] = TarEntry("base/index.json", "file", data=json.dumps(top, sort_keys=True).encode())
        for d, data in small.items():
            name = "base/blobs/" + d.replace(":", "/", 1)
            entries[name] = TarEntry(name, "file", data=data)
        for d, (size, opener) in big.items():
            name = "base/blobs/" + d.replace(":", "/", 1)
            if name not in entries:
                entries[name] = TarEntry(name, "file", size=size, opener=opener)
    entries[f"lock/{lock_name}"] = TarEntry(f"lock/{lock_name}", "file", data=lock_bytes)
    env_name = None
    if env_path is not None:
        env_name = f"env/{Path(env_path).name}"
        entries[env_name] = TarEntry(env_name, "file", data=Path(env_path).read_bytes())
    meta = {"version": BUNDLE_VERSION, "lock": f"lock/{lock_name}", "env": env_name, "base": bool(manifests)}
    entries[MANIFEST_NAME] = TarEntry(MANIFEST_NAME, "file", data=json.dumps(meta, sort_keys=True).encode())
    out = Path(out).absolute()
    if not out.parent.is_dir():
        raise OutputError(f"{out}: directory {out.parent} does not exist")
    with atomic_path(out, fsync=False, mode=0o644) as staged, open(staged.tmp, "wb") as f:
        write_layer([entries[k] for k in sorted(entries)], f, "none", 0)
    return {"output": str(out), "packages": len({files[r.url] for r in records}), "wheels": len(wheels),
            "base_blobs": len(small) + len(big), "size": out.stat().st_size}


# ---------------------------------------------------------------------------------------------------------------
# reading


@dataclass
class UnpackedBundle:
    root: Path
    lock: Lock
    env_file: Path | None
    base_ref: str | None


#: what a bundle may hold, and nothing else: the manifest, one lock, one env file, flat package files, a base layout
_MEMBER = re.compile(rf"(?:{re.escape(MANIFEST_NAME)}|lock/[^/]+|env/[^/]+"
                     r"|pkgs/(?:[0-9a-f]{64}|[0-9a-f]{32})(?:\.conda|\.tar\.bz2)"
                     r"|wheels/[0-9a-f]{64}/[A-Za-z0-9_.+!-]+\.whl"
                     r"|base/(?:oci-layout|index\.json|blobs/sha256/[0-9a-f]{64}))")
#: the manifest, the lock, the env file and base/index.json are small; a package or blob may be big
MAX_SMALL_MEMBER = 64 << 20
_SMALL = re.compile(rf"(?:{re.escape(MANIFEST_NAME)}|lock/.*|env/.*|base/oci-layout|base/index\.json)")


def _safe_members(t: tarfile.TarFile, where: str) -> Iterator[tarfile.TarInfo]:
    """The members of a bundle, each of the one shape the writer makes (a flat name in its place, a regular file,
    small where it should be small); anything else is one line."""
    for m in t:
        name = m.name.removeprefix("./")
        if name.startswith("/") or ".." in name.split("/"):
            raise LockError(f"{where}: unsafe path in bundle: {name[:200]!r}")
        if m.isdir():
            continue
        if not m.isreg():
            raise LockError(f"{where}: unexpected {name[:200]!r} in bundle (only regular files)")
        if not _MEMBER.fullmatch(name):
            raise LockError(f"{where}: unexpected {name[:200]!r} in bundle (not a lock, env file, package file, "
                            "wheel or base image blob)")
        if _SMALL.fullmatch(name) and m.size > MAX_SMALL_MEMBER:
            raise LockError(f"{where}: {name} in the bundle is {m.size} bytes, over the {MAX_SMALL_MEMBER}-byte limit")
        yield m


def _read_manifest(tmp: Path, where: str) -> dict[str, Any]:
    """``oci-conda-bundle.json``, checked for the one shape the writer makes."""
    try:
        with open_regular(tmp / MANIFEST_NAME, where) as f:
            meta = loads_json(f.read(MAX_SMALL_MEMBER + 1), f"{where}: {MANIFEST_NAME}", cap=MAX_SMALL_MEMBER)
    except (OSError, ValueError, LimitError):
        raise LockError(f"{where}: not an oci-conda bundle (no readable {MANIFEST_NAME})") from None
    if not isinstance(meta, dict):
        raise LockError(f"{where}: {MANIFEST_NAME} is not a JSON object")
    if meta.get("version") != BUNDLE_VERSION:
        raise LockError(f"{where}: bundle version {str(meta.get('version'))[:40]!r} is not supported")
    lock, env, base = meta.get("lock"), meta.get("env"), meta.get("base", False)
    if not isinstance(lock, str) or not re.fullmatch(r"lock/[^/]+", lock) or not (tmp / lock).is_file():
        raise LockError(f"{where}: {MANIFEST_NAME}: 'lock' must name a lock/NAME file in the bundle")
    if env is not None and (not isinstance(env, str) or not re.fullmatch(r"env/[^/]+", env)
                            or not (tmp / env).is_file()):
        raise LockError(f"{where}: {MANIFEST_NAME}: 'env' must be null or name an env/NAME file in the bundle")
    if not isinstance(base, bool) or (base and not (tmp / "base" / "index.json").is_file()):
        raise LockError(f"{where}: {MANIFEST_NAME}: 'base' must be true (with base/index.json) or false")
    return meta


@contextlib.contextmanager
def open_bundle(path: Path) -> Iterator[UnpackedBundle]:
    """Unpack ``path`` into a temporary directory (removed afterwards); its packages go to the package cache."""
    where = str(path)
    with held_temp_dir("bundle-") as tmp:  # held: swept by a later run only after a kill -9
        try:
            with open_regular(path, where) as raw, tarfile.open(fileobj=raw, mode="r:") as t:
                members = list(_safe_members(t, where))
                t.extractall(tmp, members=members, filter="data")
        except FileNotFoundError:
            raise LockError(f"{where}: no such file") from None
        except (tarfile.TarError, OSError) as e:
            raise LockError(f"{where}: not a readable bundle ({type(e).__name__})") from None
        meta = _read_manifest(tmp, where)
        _store_packages(tmp / "pkgs", where)
        lock = read_lock(tmp / meta["lock"])
        _store_wheels(tmp / "wheels", lock, where)
        env = tmp / meta["env"] if meta.get("env") else None
        _make_local_channels(env if env is not None else tmp / meta["lock"], lock, tmp)
        base = f"oci:{tmp / 'base'}" if meta.get("base") else None
        yield UnpackedBundle(tmp, lock, env, base)


def _store_packages(src: Path, where: str) -> None:
    """Copy the bundle's package files into the package cache, checking each against its name (its digest)."""
    if not src.is_dir():
        return
    pkgs = cache_dir("pkgs")
    for p in sorted(src.iterdir()):
        stem = p.name.split(".", 1)[0]
        target = pkgs / p.name
        if target.exists() and target.stat().st_size == p.stat().st_size:
            continue
        with open(p, "rb") as f:
            got = hashlib.file_digest(f, "sha256" if len(stem) == 64 else "md5").hexdigest()
        if got != stem:
            raise LockError(f"{where}: {p.name} in the bundle is corrupt (digest {got})")
        with atomic_path(target, fsync=False, mode=0o644) as staged:
            shutil.copyfile(p, staged.tmp)


def _store_wheels(src: Path, lock: Lock, where: str) -> None:
    """Put the bundle's wheels into the wheel cache; each is checked against the lock's sha256 and size."""
    import requests

    local = requests.Session()  # file:// only: fetch_wheel reads local files itself
    for pl in lock.platforms.values():
        for w in pl.wheels:
            found = [src / w.sha256 / w.filename] if w.sha256 else sorted(src.glob(f"*/{w.filename}"))
            path = found[0] if found else src / "missing"
            if not path.is_file():
                raise LockError(f"{where}: the bundle lacks the wheel {w.filename} its lock pins")
            fetch_wheel(dataclasses.replace(w, url=path.as_uri()), local)


def _make_local_channels(env: Path, lock: Lock, root: Path) -> None:
    """Relative local channels of the environment file exist (empty) next to it (or next to the lock, which
    then stands for it), so channel spellings resolve."""
    for spelling, _url in lock.channels:
        if spelling.startswith(".") and "://" not in spelling:
            d = (env.parent / spelling).resolve()
            if d == root or root in d.parents:
                d.mkdir(parents=True, exist_ok=True)
