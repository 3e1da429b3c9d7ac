"""Lockfiles: everything a build needs besides package bytes, so a later build solves nothing and fetches no repodata.

``oci-conda.lock`` is canonical JSON (sorted keys, records sorted by name, one fixed indent) checked against
``schemas/lock.schema.json`` on read. It holds, per platform, every record (with url, checksums, size, depends),
the base image reference and the manifest digest it resolved to, the virtual packages the solve assumed; and once:
the options that change the image bytes, the environment it was made from (name, channels, specs, variables and
every image setting: entrypoint, cmd, env, labels, annotations, workdir, user, tag, base), so the lock alone is
enough to build, and the sha256 of the environment file (a changed file makes the lock stale: relock, or build
with ``--allow-stale``). Version 2 added the environment; version 1 locks still read (they need the env file).

Credentials never enter a lock: URLs are written without ``user:pass@`` and ``/t/<token>``; on read, a record whose
channel is one of the environment's channels gets that channel's credentials back.
Foreign formats read as build inputs too: conda-lock ``conda-lock.yml`` (v1) and ``@EXPLICIT`` files.

The model and its reading and writing only: locking (a solve) is resolve.create_lock, the ``lock`` command is in
commands.py, and which options a lock records comes from options.py's table.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import atomic_write
from .conda.condalock import read_conda_lock
from .conda.explicit import is_explicit, parse_explicit
from .conda.lockentries import ForeignLock
from .conda.pixilock import DEFAULT_ENVIRONMENT, parse_pixi_lock
from .conda.records import PackageRecord
from .credentials import strip_credentials
from .errors import OutputError, SpecError
from .layers.wheels import wheel_records_from_entries
from .limits import read_file_capped
from .oci.image import Image
from .pypi.records import WheelRecord
from .schema_check import is_valid
from .spec import BuildSpec, ImageSettings

if TYPE_CHECKING:
    import jsonschema


LOCK_VERSION = 2
READ_VERSIONS = (1, 2)
SCHEMA_PATH = Path(__file__).with_name("schemas") / "lock.schema.json"
DEFAULT_LOCK_NAME = "oci-conda.lock"
MAX_LOCK = 256 * 1024 * 1024


class LockError(SpecError):
    """A lockfile is invalid, does not fit the build, or is stale."""


@dataclass(frozen=True)
class PlatformLock:
    subdir: str
    packages: tuple[PackageRecord, ...]
    base: str = "scratch"
    base_digest: str | None = None
    virtual_packages: tuple[tuple[str, str, str], ...] = ()  # (name, version, build)
    wheels: tuple[WheelRecord, ...] = ()  # the pip section's wheels, pinned (sha256 and size known)


Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LockedEnvironment:
    """What the environment file (with the command line's ``--base``/``--prefix``/``-c`` on top) said, minus the
    packages: enough to rebuild the same image from the lock alone. Channels are spelled as written, without
    credentials."""

    name: str | None
    channels: tuple[str, ...]
    specs: tuple[tuple[str, str | None], ...]  # (spec, platform selector or None)
    variables: Pairs
    image: ImageSettings

    @classmethod
    def from_spec(cls, spec: BuildSpec) -> LockedEnvironment:
        return cls(name=spec.name, channels=tuple(dict.fromkeys(strip_credentials(c) for c in spec.channels)),
                   specs=spec.selected_specs, variables=spec.variables, image=spec.image)

    def to_spec(self, path: Path) -> BuildSpec:
        """The BuildSpec a build uses; ``path`` (the env file's or the lock's) anchors relative channels."""
        return BuildSpec(path=path, name=self.name, channels=self.channels, selected_specs=self.specs,
                         variables=self.variables, image=self.image)


@dataclass(frozen=True)
class Lock:
    """A parsed lock; ``kind`` is ``oci-conda``, ``conda-lock`` or ``explicit`` (the last two carry no options)."""

    platforms: dict[str, PlatformLock]
    env_file: str | None = None
    env_sha256: str | None = None
    channels: tuple[tuple[str, str], ...] = ()  # (as spelled in the env file, canonical URL)
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = "oci-conda"
    path: Path | None = None
    environment: LockedEnvironment | None = None  # None: a version 1 lock or a foreign one

    def for_platform(self, subdir: str) -> PlatformLock:
        try:
            return self.platforms[subdir]
        except KeyError:
            where = self.path or "lockfile"
            raise LockError(f"{where}: has no packages for platform {subdir} (it has: "
                            f"{', '.join(sorted(self.platforms)) or 'none'}); relock with --platform {subdir}") from None


# ---------------------------------------------------------------------------------------------------------------
# writing


def file_sha256(path: str | os.PathLike[str]) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror}") from None


def _record_json(r: PackageRecord) -> dict[str, Any]:
    d = r.to_json()
    d["url"] = strip_credentials(r.url)
    d["channel"] = strip_credentials(r.channel)
    return {k: v for k, v in d.items() if v is not None}


def _pairs(p: Pairs) -> list[list[str]]:
    return [[k, v] for k, v in p]


def _environment_json(e: LockedEnvironment) -> dict[str, Any]:
    """Lists of pairs, not objects, where order reaches the image (env and variables become config Env in order)."""
    i = e.image
    return {
        "name": e.name,
        "channels": list(e.channels),
        "specs": [{"spec": s, "selector": sel} for s, sel in e.specs],
        "variables": _pairs(e.variables),
        "image": {
            "base": i.base, "entrypoint": None if i.entrypoint is None else list(i.entrypoint),
            "cmd": None if i.cmd is None else list(i.cmd), "env": _pairs(i.env), "workdir": i.workdir,
            "user": i.user, "labels": _pairs(i.labels), "annotations": _pairs(i.annotations), "tag": i.tag,
            "virtual_packages": _pairs(i.virtual_packages),
        },
    }


def _wheel_json(w: WheelRecord) -> dict[str, Any]:
    d = w.to_dict()
    d["url"] = strip_credentials(w.url)
    return {k: v for k, v in d.items() if v is not None and v is not False}


def lock_document(lock: Lock) -> dict[str, Any]:
    plats = {}
    for subdir, pl in sorted(lock.platforms.items()):
        plats[subdir] = {
            "base": {"ref": pl.base, "digest": pl.base_digest},
            "virtual_packages": [{"name": n, "version": v, "build": b} for n, v, b in sorted(pl.virtual_packages)],
            "packages": [_record_json(r) for r in sorted(pl.packages, key=lambda r: (r.name, r.subdir, r.fn))],
        }
        if pl.wheels:  # absent without a pip section: such locks keep their bytes
            plats[subdir]["wheels"] = [_wheel_json(w) for w in sorted(pl.wheels, key=lambda w: w.name)]
    doc: dict[str, Any] = {
        "version": LOCK_VERSION if lock.environment is not None else 1,
        "env": {"file": lock.env_file, "sha256": lock.env_sha256},
        "channels": [{"spec": strip_credentials(s), "url": strip_credentials(u)} for s, u in lock.channels],
        "options": dict(sorted(lock.options.items())),
        "platforms": plats,
    }
    if lock.environment is not None:
        doc["environment"] = _environment_json(lock.environment)
    return doc


def dump_lock(lock: Lock) -> bytes:
    """Deterministic bytes: the same lock always serialises the same way."""
    return (json.dumps(lock_document(lock), sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def write_lock(lock: Lock, path: str | os.PathLike[str]) -> None:
    write_bytes(dump_lock(lock), path)


def write_bytes(data: bytes, path: str | os.PathLike[str]) -> None:
    """A lockfile's bytes (ours or ``@EXPLICIT``) at ``path``, atomically; a failure names the file."""
    try:
        with atomic_write(path) as f:
            f.write(data)
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------------------------
# reading


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    # imported here: ~0.25 s (2 s more with rfc3987_syntax, which builds a lark grammar at import for the
    # 'iri' format our schemas never use), paid only for a lock schema_check.is_valid does not pass
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import jsonschema

    schema = _schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def validate_document(doc: Any, where: str) -> None:
    if is_valid(_schema(), doc):
        return
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.absolute_path) or "(top)"
        raise LockError(f"{where}: not a valid oci-conda lock at {at}: {e.message[:200]}")


def parse_lock_document(doc: Any, where: str, path: Path | None = None) -> Lock:
    validate_document(doc, where)
    plats = {}
    for subdir, p in doc["platforms"].items():
        recs = tuple(PackageRecord.from_json(r) for r in p["packages"])
        vps = tuple((v["name"], v["version"], v["build"]) for v in p.get("virtual_packages", []))
        wheels = tuple(WheelRecord.from_dict(w) for w in p.get("wheels", []))
        plats[subdir] = PlatformLock(subdir, recs, p["base"]["ref"], p["base"].get("digest"), vps, wheels)
    options = dict(doc.get("options", {}))
    environment = None
    if "environment" in doc:
        environment = _parse_environment(doc["environment"], options.get("prefix"))
    return Lock(platforms=plats, env_file=doc["env"].get("file"), env_sha256=doc["env"].get("sha256"),
                channels=tuple((c["spec"], c["url"]) for c in doc.get("channels", [])),
                options=options, kind="oci-conda", path=path, environment=environment)


def _parse_environment(e: dict[str, Any], prefix: str | None) -> LockedEnvironment:
    """A schema-checked ``environment`` section back into its model."""
    i = e["image"]

    def pairs(v: list[list[str]]) -> Pairs:
        return tuple((k, x) for k, x in v)

    def seq(v: list[str] | None) -> tuple[str, ...] | None:
        return None if v is None else tuple(v)

    image = ImageSettings(base=i["base"], prefix=prefix or ImageSettings().prefix, entrypoint=seq(i["entrypoint"]),
                          cmd=seq(i["cmd"]), env=pairs(i["env"]), workdir=i["workdir"], user=i["user"],
                          labels=pairs(i["labels"]), annotations=pairs(i["annotations"]), tag=i["tag"],
                          virtual_packages=pairs(i["virtual_packages"]))
    return LockedEnvironment(name=e["name"], channels=tuple(e["channels"]),
                             specs=tuple((s["spec"], s["selector"]) for s in e["specs"]),
                             variables=pairs(e["variables"]), image=image)


def sniff_file(path: str | os.PathLike[str]) -> str | None:
    """:func:`sniff_kind` of a file's first 64 KiB; None when it cannot be read (the caller reports it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    return sniff_kind(head.decode("utf-8", "replace"))


def sniff_kind(text: str) -> str | None:
    """``oci-conda``, ``conda-lock``, ``pixi``, ``explicit`` or None."""
    head = text.lstrip()
    if head.startswith("{") and '"platforms"' in text:
        return "oci-conda"
    if is_explicit(text):
        return "explicit"
    lines = "\n" + text
    if "\nenvironments:" in lines and "\npackages:" in lines and "\nversion:" in lines:
        return "pixi"
    if "\npackage:" in "\n" + text and "metadata:" in text:
        return "conda-lock"
    return None


def _foreign(fl: ForeignLock, kind: str, path: Path) -> Lock:
    """A conda-lock or pixi environment as a Lock: conda records per platform, its PyPI entries as pinned wheels."""
    try:
        plats = {p: PlatformLock(p, lp.conda, wheels=tuple(wheel_records_from_entries(lp.pypi)))
                 for p, lp in fl.platforms.items()}
    except SpecError as e:
        raise LockError(f"{path}: {e}") from None
    return Lock(platforms=plats, kind=kind, path=path)


def read_lock(path: str | os.PathLike[str], environment: str | None = None) -> Lock:
    """Any supported lockfile: oci-conda (validated against the schema), conda-lock v1, pixi.lock (v4-v6; the
    ``environment``, default ``default``), ``@EXPLICIT``."""
    path = Path(path)
    where = str(path)
    try:
        if path.is_dir():
            raise IsADirectoryError
        if path.stat().st_size > MAX_LOCK:
            raise LockError(f"{where}: too large for a lockfile")
        text = read_file_capped(path, MAX_LOCK, where).decode("utf-8")  # a FIFO or /dev/zero is refused
    except FileNotFoundError:
        raise LockError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise LockError(f"{where}: is a directory, expected a lockfile") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LockError(f"{where}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    kind = sniff_kind(text)
    if environment is not None and kind != "pixi":
        raise LockError(f"{where}: --environment picks an environment of a pixi.lock; this is a {kind or 'other'} file")
    if kind == "pixi":
        fl = parse_pixi_lock(text, where, environment or DEFAULT_ENVIRONMENT, None, base_dir=path.resolve().parent)
        if not fl.platforms:
            raise LockError(f"{where}: environment {fl.environment!r} locks no platform")
        return _foreign(fl, "pixi", path)
    if kind == "oci-conda":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise LockError(f"{where}:{e.lineno}: not valid JSON ({e.msg})") from None
        return parse_lock_document(doc, where, path)
    if kind == "explicit":
        records, platform = parse_explicit(text, where)
        if platform is None:
            subdirs = sorted({r.subdir for r in records} - {"noarch"})
            if len(subdirs) != 1:
                raise LockError(f"{where}: no '# platform:' line and the URLs do not name a single platform")
            platform = subdirs[0]
        return Lock(platforms={platform: PlatformLock(platform, tuple(records))}, kind="explicit", path=path)
    if kind == "conda-lock":
        return _foreign(read_conda_lock(text, where), "conda-lock", path)
    raise LockError(f"{where}: not a lockfile oci-conda reads (oci-conda lock, conda-lock.yml v1, pixi.lock or "
                    "@EXPLICIT)")


def check_fresh(lock: Lock, env_path: str | os.PathLike[str], allow_stale: bool = False) -> str | None:
    """Raise when the environment file changed since the lock was written; with ``allow_stale``, return a warning."""
    if lock.kind != "oci-conda" or lock.env_sha256 is None:
        return None
    now = file_sha256(env_path)
    if now == lock.env_sha256:
        return None
    msg = (f"{env_path} changed since {lock.path or 'the lock'} was written (sha256 {now[:12]} != locked "
           f"{lock.env_sha256[:12]}); relock with `oci-conda lock {env_path} -o {lock.path or DEFAULT_LOCK_NAME}`"
           " or build with --allow-stale")
    if not allow_stale:
        raise LockError(msg)
    return "stale lock: " + msg


BASE_DIGEST_ANNOTATION = "org.opencontainers.image.base.digest"


def base_digest(img: Image) -> str | None:
    """The manifest digest a base image resolved to (None for scratch)."""
    return (getattr(img, "annotations", None) or {}).get(BASE_DIGEST_ANNOTATION)


def check_base(lock: Lock, subdir: str, img: Image) -> None:
    """The base image must still be the one locked: same manifest digest."""
    pl = lock.for_platform(subdir)
    if pl.base_digest is None:
        return
    got = base_digest(img)
    if got != pl.base_digest:
        raise LockError(f"{lock.path or 'lock'}: base image {pl.base} for {subdir} is now {got or 'empty'}, locked "
                        f"{pl.base_digest}; relock (or restore that base image)")
