"""Lockfiles: everything a build needs besides package bytes, so a later build solves nothing and fetches no repodata.

``oci-conda.lock`` is canonical JSON (sorted keys, records sorted by name, one fixed indent) checked against
``schemas/lock.schema.json`` on read. It holds, per platform, every record (with url, checksums, size, depends),
the base image reference and the manifest digest it resolved to, the virtual packages the solve assumed; and once:
the options that change the image bytes and the sha256 of the environment file it came from (a changed file makes
the lock stale: relock, or build with ``--allow-stale``).

Credentials never enter a lock: URLs are written without ``user:pass@`` and ``/t/<token>``; on read, a record whose
channel is one of the environment's channels gets that channel's credentials back.
Foreign formats read as build inputs too: conda-lock ``conda-lock.yml`` (v1) and ``@EXPLICIT`` files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import jsonschema

from .conda.channel import Channel, resolve_channels
from .credentials import strip_credentials
from .conda.records import PackageRecord
from .errors import SpecError

LOCK_VERSION = 1
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
    pip: dict[str, list[str]] = field(default_factory=dict)  # conda-lock: pip packages per platform (not installed)

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


def lock_document(lock: Lock) -> dict[str, Any]:
    plats = {}
    for subdir, pl in sorted(lock.platforms.items()):
        plats[subdir] = {
            "base": {"ref": pl.base, "digest": pl.base_digest},
            "virtual_packages": [{"name": n, "version": v, "build": b} for n, v, b in sorted(pl.virtual_packages)],
            "packages": [_record_json(r) for r in sorted(pl.packages, key=lambda r: (r.name, r.subdir, r.fn))],
        }
    return {
        "version": LOCK_VERSION,
        "env": {"file": lock.env_file, "sha256": lock.env_sha256},
        "channels": [{"spec": strip_credentials(s), "url": strip_credentials(u)} for s, u in lock.channels],
        "options": dict(sorted(lock.options.items())),
        "platforms": plats,
    }


def dump_lock(lock: Lock) -> bytes:
    """Deterministic bytes: the same lock always serialises the same way."""
    return (json.dumps(lock_document(lock), sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def write_lock(lock: Lock, path: str | os.PathLike[str]) -> None:
    from .cache import atomic_write

    try:
        with atomic_write(path) as f:
            f.write(dump_lock(lock))
    except OSError as e:
        from .errors import OutputError

        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------------------------
# reading


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def validate_document(doc: Any, where: str) -> None:
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
        plats[subdir] = PlatformLock(subdir, recs, p["base"]["ref"], p["base"].get("digest"), vps)
    return Lock(platforms=plats, env_file=doc["env"].get("file"), env_sha256=doc["env"].get("sha256"),
                channels=tuple((c["spec"], c["url"]) for c in doc.get("channels", [])),
                options=dict(doc.get("options", {})), kind="oci-conda", path=path)


def sniff_kind(text: str) -> str | None:
    """``oci-conda``, ``conda-lock``, ``explicit`` or None."""
    head = text.lstrip()
    if head.startswith("{") and '"platforms"' in text:
        return "oci-conda"
    from .conda.explicit import is_explicit

    if is_explicit(text):
        return "explicit"
    if "\npackage:" in "\n" + text and "metadata:" in text:
        return "conda-lock"
    return None


def read_lock(path: str | os.PathLike[str]) -> Lock:
    """Any supported lockfile: oci-conda (validated against the schema), conda-lock v1, ``@EXPLICIT``."""
    path = Path(path)
    where = str(path)
    try:
        if path.stat().st_size > MAX_LOCK:
            raise LockError(f"{where}: too large for a lockfile")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise LockError(f"{where}: is a directory, expected a lockfile") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LockError(f"{where}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    kind = sniff_kind(text)
    if kind == "oci-conda":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise LockError(f"{where}:{e.lineno}: not valid JSON ({e.msg})") from None
        return parse_lock_document(doc, where, path)
    if kind == "explicit":
        from .conda.explicit import parse_explicit

        records, platform = parse_explicit(text, where)
        if platform is None:
            subdirs = sorted({r.subdir for r in records} - {"noarch"})
            if len(subdirs) != 1:
                raise LockError(f"{where}: no '# platform:' line and the URLs do not name a single platform")
            platform = subdirs[0]
        return Lock(platforms={platform: PlatformLock(platform, tuple(records))}, kind="explicit", path=path)
    if kind == "conda-lock":
        from .conda.condalock import parse_conda_lock

        per, pip = parse_conda_lock(text, where)
        return Lock(platforms={k: PlatformLock(k, tuple(v)) for k, v in per.items()}, kind="conda-lock", path=path,
                    pip=pip)
    raise LockError(f"{where}: not a lockfile oci-conda reads (oci-conda lock, conda-lock.yml v1 or @EXPLICIT)")


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


def records_for_build(lock: Lock, subdir: str, spec_channels: Sequence[str], base_dir: Path,
                      channel_alias: str | None = None) -> list[PackageRecord]:
    """The records to install for ``subdir``, in install order, with credentials and moved local channels restored.

    A record whose channel the lock knows under a spelling the environment still uses (``./channel``,
    ``conda-forge``) takes that channel's current URL (a local channel moves with the checkout) and its credentials.
    """
    from .conda.solver import dependency_order
    from .errors import OciCondaError

    pl = lock.for_platform(subdir)
    if lock.pip.get(subdir):
        raise LockError(f"{lock.path}: pip packages cannot be installed from a lock ({', '.join(lock.pip[subdir])}); "
                        "use conda packages")
    locked = dict(lock.channels)  # spelling -> locked url
    current: dict[str, Channel] = {}
    for s in spec_channels:
        try:
            chans = resolve_channels([s], base_dir, channel_alias=channel_alias)
        except OciCondaError:
            continue  # a local channel that is gone: the records keep their locked URLs (the cache may serve them)
        for c in chans:
            current.setdefault(c.url, c)
        if len(chans) == 1 and strip_credentials(s) in locked:
            current.setdefault(locked[strip_credentials(s)], chans[0])
    out = []
    for r in pl.packages:
        chan = current.get(r.channel)
        if chan is None:
            out.append(r)
            continue
        if not r.url.startswith(r.channel + "/"):  # hosted elsewhere (CEP-15 base_url): the URL stays as locked
            out.append(dataclasses.replace(r, channel=chan.url))
            continue
        out.append(dataclasses.replace(r, channel=chan.url, url=chan.auth_url + r.url[len(r.channel):]))
    if lock.kind == "explicit":
        return out  # file order is install order; these records carry no depends to order by
    return dependency_order(out)


def lock_mtime(lock: Lock, records: Sequence[PackageRecord], default: Any) -> int:
    """The image time a build from ``lock`` uses: the locked SOURCE_DATE_EPOCH, else what ``default(records)`` says."""
    sde = lock.options.get("source_date_epoch")
    return int(sde) if sde is not None else default(records)


BASE_DIGEST_ANNOTATION = "org.opencontainers.image.base.digest"


def base_digest(img: Any) -> str | None:
    """The manifest digest a base image resolved to (None for scratch)."""
    return (getattr(img, "annotations", None) or {}).get(BASE_DIGEST_ANNOTATION)


def check_base(lock: Lock, subdir: str, img: Any) -> None:
    """The base image must still be the one locked: same manifest digest."""
    pl = lock.for_platform(subdir)
    if pl.base_digest is None:
        return
    got = base_digest(img)
    if got != pl.base_digest:
        raise LockError(f"{lock.path or 'lock'}: base image {pl.base} for {subdir} is now {got or 'empty'}, locked "
                        f"{pl.base_digest}; relock (or restore that base image)")


def option_values(spec_prefix: str, opts: Any, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The build options that change image bytes, as a lock records them (only the options that exist)."""
    env = os.environ if env is None else env
    sde = env.get("SOURCE_DATE_EPOCH")
    out: dict[str, Any] = {"prefix": spec_prefix, "source_date_epoch": int(sde) if sde and sde.strip() else None}
    for k, _default in _LOCKED_OPTIONS:
        if hasattr(opts, k):
            out[k] = getattr(opts, k)
    return out


def create_lock(spec: Any, opts: Any, solve: Any, open_base: Any, reporter: Any) -> Lock:
    """Solve ``spec`` for every platform of ``opts`` and record the result (``solve`` is build.solve_environment)."""
    from .conda.virtual import virtual_packages
    from .oci.image import platform_for_subdir

    plats = {}
    for subdir in opts.platforms:
        records = solve(spec, subdir, opts, reporter)
        vps = virtual_packages(subdir, dict(spec.image.virtual_packages))
        img = open_base(spec.image.base, platform_for_subdir(subdir))
        plats[subdir] = PlatformLock(subdir, tuple(records), spec.image.base, base_digest(img),
                                     tuple((v.name, v.version, v.build) for v in vps))
    spellings: list[tuple[str, str]] = []
    for s in spec.channels:
        chans = resolve_channels([s], spec.base_dir, channel_alias=opts.channel_alias)
        for c in chans:
            spellings.append((s if len(chans) == 1 else c.url, c.url))
    return Lock(platforms=plats, env_file=Path(spec.path).name, env_sha256=file_sha256(spec.path),
                channels=tuple(spellings), options=option_values(spec.image.prefix, opts))


# ---------------------------------------------------------------------------------------------------------------
# command line glue (cli.py calls these; they only parse, check and dispatch)

_LOCKED_OPTIONS = (("compression", "gzip"), ("layering", "packages"), ("max_layers", 16), ("trim", "none"))


def _sniff_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    return sniff_kind(head.decode("utf-8", "replace"))


def _env_beside(lock: Lock) -> str | None:
    if lock.kind == "oci-conda" and lock.env_file and lock.path is not None:
        cand = lock.path.parent / lock.env_file
        if cand.is_file():
            return str(cand)
    return None


@contextlib.contextmanager
def lock_inputs(args: Any, reporter: Any) -> Iterator[tuple[str | None, Lock | None, bool]]:
    """``(env file or None, lock or None, offline)`` for ``build``: from ``--from-bundle``, ``--lock``, or an
    ENV.yml that is itself a lockfile. A bundle is unpacked into a temporary directory for the build's duration."""
    if getattr(args, "from_bundle", None):
        from .bundle import open_bundle

        if getattr(args, "lock", None) or args.env_file is not None:
            raise SpecError("build --from-bundle takes neither ENV.yml nor --lock: the bundle carries both")

        with open_bundle(Path(args.from_bundle)) as ub:
            if args.base is None and ub.base_ref is not None:
                args.base = ub.base_ref
            yield (str(ub.env_file) if ub.env_file else None), ub.lock, True
        return
    env_file = args.env_file
    lock = None
    if getattr(args, "lock", None):
        lock = read_lock(args.lock)
    elif env_file is not None and _sniff_file(env_file) is not None:
        lock = read_lock(env_file)
        env_file = _env_beside(lock)
    elif env_file is None:
        raise SpecError("build: give ENV.yml, --lock LOCKFILE or --from-bundle BUNDLE.tar")
    if lock is not None:
        if env_file is None:
            env_file = _env_beside(lock)
        if env_file is None and lock.kind == "oci-conda":
            raise LockError(f"{lock.path}: the environment file {lock.env_file} is not beside the lock; give ENV.yml")
        if env_file is not None:
            w = check_fresh(lock, env_file, getattr(args, "allow_stale", False))
            if w:
                reporter.warn(w)
    yield env_file, lock, False


def lock_spec(env_file: str | None, lock: Lock | None, **overrides: Any) -> Any:
    """The BuildSpec for a build: the environment file's, or (for a foreign lock alone) image defaults."""
    from .spec import BuildSpec, load_spec, with_overrides

    if env_file is not None:
        spec = load_spec(env_file)
    else:
        assert lock is not None and lock.path is not None
        spec = BuildSpec(path=lock.path.resolve(), name=None, channels=(), selected_specs=())
    if lock is not None and lock.options.get("prefix"):
        locked = lock.options["prefix"]
        if overrides.get("prefix") not in (None, locked):
            raise LockError(f"{lock.path}: locked with prefix {locked}; --prefix {overrides['prefix']} needs a relock")
        overrides["prefix"] = locked
    return with_overrides(spec, **overrides)


def lock_options(opts: Any, lock: Lock, args: Any) -> Any:
    """Build options with the lock's image-changing options; a conflicting command-line value is an error."""
    changes: dict[str, Any] = {"lock": lock}
    for name, default in _LOCKED_OPTIONS:
        if name in lock.options and hasattr(opts, name):
            given = getattr(args, name, default)
            if given != default and given != lock.options[name]:
                raise LockError(f"{lock.path}: locked with {name}={lock.options[name]}; "
                                f"--{name.replace('_', '-')} {given} needs a relock")
            changes[name] = lock.options[name]
    if not getattr(args, "platforms", None):
        linux = tuple(sorted(p for p in lock.platforms if p.startswith("linux-")))
        if not linux:
            raise LockError(f"{lock.path}: locks no linux platform (has: {', '.join(sorted(lock.platforms))})")
        changes["platforms"] = linux
    return dataclasses.replace(opts, **changes)


def run_command(args: Any, reporter: Any) -> int:
    if args.command == "lock":
        return _lock_command(args, reporter)
    if args.command == "bundle":
        from .bundle import bundle_command

        return bundle_command(args, reporter)
    from .inspect_image import diff_command, inspect_command

    return inspect_command(args) if args.command == "inspect" else diff_command(args)


def lock_from_args(args: Any, reporter: Any, env_file: str) -> Lock:
    from .build import BuildOptions, solve_environment
    from .oci.layout import open_image
    from .spec import load_spec, with_overrides

    spec = with_overrides(load_spec(env_file), base=args.base, prefix=args.prefix, channels=args.channels)
    opts = BuildOptions(output=Path(os.devnull), platforms=tuple(args.platforms or ("linux-64",)),
                        offline=args.offline, channel_alias=args.channel_alias)
    keep = {k: getattr(args, k) for k, _ in _LOCKED_OPTIONS if hasattr(opts, k) and hasattr(args, k)}
    opts = dataclasses.replace(opts, **keep)
    return create_lock(spec, opts, solve_environment, open_image, reporter)


def _lock_command(args: Any, reporter: Any) -> int:
    lock = lock_from_args(args, reporter, args.env_file)
    if args.format == "explicit":
        from .conda.explicit import write_explicit
        from .conda.solver import dependency_order

        if len(lock.platforms) != 1:
            raise SpecError("lock --format explicit: an @EXPLICIT file holds one platform; give one --platform")
        (subdir, pl), = lock.platforms.items()
        data = write_explicit(dependency_order(pl.packages), subdir).encode()
    else:
        data = dump_lock(lock)
    from .cache import atomic_write

    try:
        with atomic_write(args.output) as f:
            f.write(data)
    except OSError as e:
        from .errors import OutputError

        raise OutputError(f"{args.output}: cannot write: {e.strerror or e}") from None
    if args.json:
        print(json.dumps({"output": str(args.output), "sha256": hashlib.sha256(data).hexdigest(),
                          "platforms": {k: len(v.packages) for k, v in sorted(lock.platforms.items())}},
                         indent=2, sort_keys=True))
    elif not args.quiet:
        for k, v in sorted(lock.platforms.items()):
            print(f"{k}: {len(v.packages)} packages, base {v.base}{' @ ' + v.base_digest if v.base_digest else ''}",
                  file=sys.stderr)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
