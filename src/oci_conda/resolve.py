"""Environment spec (+ lock) -> the records to install per platform: solved, or read from a lock.

Also the image time (SOURCE_DATE_EPOCH, else the newest package) and :func:`create_lock`, which records what the
solve chose. Knows nothing of layers or images beyond the base image's digest a lock pins.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence
from urllib.parse import urlsplit

from .cache import cache_dir
from .conda.channel import Channel, resolve_channels
from .conda.mirrors import mirrors_from_env
from .conda.matchspec import MatchSpec
from .conda.records import PackageRecord
from .conda.gateway import ChannelIndex, load_channel_indexes
from .conda.order import dependency_order
from .conda.solve import solve
from .conda.virtual import virtual_packages
from .credentials import strip_credentials
from .errors import OciCondaError, SolveError, SpecError
from .http import make_session
from .layers.wheels import conda_dists, extracted_packages, fetch_pip, pip_section, resolve_pip, target_for
from .lockfile import Lock, LockedEnvironment, LockError, PlatformLock, base_digest, file_sha256
from .oci.source import open_image
from .platforms import platform_for_subdir
from .options import BuildOptions, locked_values
from .progress import Reporter
from .pypi.fetch import FetchedWheel
from .pypi.hosts import HostCredentials
from .pypi.records import WheelRecord
from .spec import BuildSpec, load_spec

if TYPE_CHECKING:
    import requests

DEFAULT_EPOCH = 0  # used only when no package has a timestamp and SOURCE_DATE_EPOCH is unset
#: The newest image time a tar header (11 octal digits, as our writer and ustar readers like umoci take them)
#: and every config can carry: 8**11 - 1 s, in the year 2242.
MAX_EPOCH = 8 ** 11 - 1


def checked_epoch(value: object, source: str) -> int:
    """``value`` as image time in whole seconds, in 0..MAX_EPOCH; anything else is one line naming ``source``.

    The ONE check every image time passes (SOURCE_DATE_EPOCH, a lock's, a package timestamp): a negative time gives
    tar headers others reject, a huge one overflows tar headers and ``gmtime``."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10) if len(value) < 40 else None
        except ValueError:
            value = None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2.0 ** 63:
        value = int(value)
    if not isinstance(value, int):
        raise SpecError(f"{source} must be an integer number of seconds")
    if not 0 <= value <= MAX_EPOCH:
        raise SpecError(f"{source} is {str(value)[:40]}, outside 0..{MAX_EPOCH} (1970 to 2242)")
    return value


def source_date_epoch(records: Sequence[PackageRecord]) -> int:
    """SOURCE_DATE_EPOCH, else the newest package timestamp: the same lock gives the same image, any day."""
    given = given_epoch(None)
    if given is not None:
        return given
    newest = max(records, key=lambda r: r.timestamp or 0, default=None)
    return DEFAULT_EPOCH if newest is None else _package_seconds(newest)


def given_epoch(lock: Lock | None) -> int | None:
    """SOURCE_DATE_EPOCH as the user gave it (a lock's recorded one first, else the environment's), or None."""
    if lock is not None and lock.options.get("source_date_epoch") is not None:
        return checked_epoch(lock.options["source_date_epoch"], f"{lock.path}: source_date_epoch")
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env is not None and env.strip():
        return checked_epoch(env, f"SOURCE_DATE_EPOCH {env.strip()[:40]!r}")
    return None


def package_epoch(record: PackageRecord, clamp: int | None) -> int:
    """The time of a package's files in its layer: the package's own build time, never later than
    SOURCE_DATE_EPOCH (``clamp``), as ``tar --clamp-mtime`` dates files.

    A package's layer then depends on that package alone: bumping another package, even to a newer build,
    leaves its bytes (and digest) as they were."""
    own = _package_seconds(record)
    return own if clamp is None else min(own, clamp)


def _package_seconds(record: PackageRecord) -> int:
    """A package's build time in seconds (repodata gives milliseconds), checked; DEFAULT_EPOCH without one."""
    ts = record.timestamp
    if not ts:
        return DEFAULT_EPOCH
    seconds = ts // 1000 if isinstance(ts, int) else ts
    if isinstance(seconds, float):
        seconds = seconds // 1000 if math.isfinite(seconds) else None
    return checked_epoch(seconds, f"the timestamp of package {record.fn} ({record.channel})")


def lock_mtime(lock: Lock, records: Sequence[PackageRecord]) -> int:
    """The image time a build from ``lock`` uses: the locked SOURCE_DATE_EPOCH, else :func:`source_date_epoch`."""
    sde = lock.options.get("source_date_epoch")
    return checked_epoch(sde, f"{lock.path}: source_date_epoch") if sde is not None else source_date_epoch(records)


def default_session(opts: BuildOptions) -> requests.Session:
    """The HTTP session every stage of one build shares (offline refuses every connection; mirrors are applied by
    the gateway and the fetcher, which try each location in turn; a bad mirror setting fails here, before work)."""
    if not opts.offline:
        mirrors_from_env()
    return make_session(opts.offline)


def solve_environment(spec: BuildSpec, subdir: str, opts: BuildOptions, reporter: Reporter,
                      session: requests.Session | None = None) -> list[PackageRecord]:
    """Channels → repodata → libsolv: the records to install for ``subdir``."""
    session = session or default_session(opts)
    channels = resolve_channels(spec.channels, spec.base_dir, channel_alias=opts.channel_alias)
    specs = spec.specs_for(subdir)
    if not specs:
        raise SpecError(f"{spec.path}: no dependency applies to {subdir} (all are behind sel(...) for other platforms)")
    with reporter.phase("repodata", f"{len(channels)} channel(s), {subdir}"):
        per_channel = load_channel_indexes(channels, subdir, session, offline=opts.offline, jobs=opts.jobs,
                                           names=[MatchSpec(s).name for s in specs])
    with reporter.phase("solve", " ".join(specs)):
        vps = virtual_packages(subdir, dict(spec.image.virtual_packages))
        try:
            return solve(per_channel, list(specs), vps)
        except SolveError as e:
            hint = elsewhere_hint(per_channel, channels, specs, subdir, opts, session)
            if hint:
                raise SolveError(f"{e}; {hint}") from None
            raise


def elsewhere_hint(per_channel: Sequence[ChannelIndex], channels: Sequence[Channel], specs: Sequence[str],
                   subdir: str, opts: BuildOptions, session: requests.Session) -> str | None:
    """For requested names no channel has for ``subdir``: the other requested platforms that do have them
    ("numpy exists for linux-64, not linux-s390x"), so a one-platform gap reads as that and not as a typo.
    Only those names are looked up, and only when the solve has already failed."""
    missing = [n for n in dict.fromkeys(MatchSpec(s).name for s in specs)
               if not n.startswith("__") and not any(n in ix for ix in per_channel)]
    others = [p for p in opts.platforms if p != subdir]
    if not missing or not others:
        return None
    found: dict[str, list[str]] = {}
    for other in others:
        try:
            idx = load_channel_indexes(channels, other, session, offline=opts.offline, jobs=opts.jobs, names=missing)
        except OciCondaError:
            continue  # the hint is best effort: the solve error stands on its own
        for n in missing:
            if any(n in ix for ix in idx):
                found.setdefault(n, []).append(other)
    parts = [f"{n} exists for {', '.join(ps)} but not for {subdir}" for n, ps in found.items()]
    return "; ".join(parts) + f" (leave {subdir} out of --platform, or put the package behind a selector)" if parts \
        else None


def records_for_build(lock: Lock, subdir: str, spec_channels: Sequence[str], base_dir: Path,
                      channel_alias: str | None = None) -> list[PackageRecord]:
    """The records to install for ``subdir``, in install order, with credentials and moved local channels restored.

    A record whose channel the lock knows under a spelling the environment still uses (``./channel``,
    ``conda-forge``) takes that channel's current URL (a local channel moves with the checkout) and its credentials.
    """
    pl = lock.for_platform(subdir)
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



#: a path component that names a conda subdir (``linux-64``, ``osx-arm64``, ``noarch``, ...)
_SUBDIR_NAME = re.compile(r"noarch|(?:linux|osx|win|emscripten|wasi|zos|freebsd)-[a-z0-9_]+")


def check_record_subdirs(records: Sequence[PackageRecord], subdir: str, where: str) -> None:
    """Every record is for ``subdir`` or noarch, by its own ``subdir`` and by the directory its URL names: an
    arm64 image of x86 binaries is refused with one line naming the package, not built."""
    for r in records:
        parts = urlsplit(r.url).path.rstrip("/").split("/")
        in_url = parts[-2] if len(parts) >= 2 and _SUBDIR_NAME.fullmatch(parts[-2]) else None
        for claimed, how in ((r.subdir, "is for"), (in_url, "comes from the subdir")):
            if claimed and claimed not in (subdir, "noarch"):
                raise LockError(f"{where}: package {r.fn} {how} {claimed}, not {subdir} (or noarch); "
                                f"refusing to put it in a {subdir} image")


def platform_records(spec: BuildSpec, subdir: str, opts: BuildOptions, reporter: Reporter,
                     session: requests.Session) -> tuple[list[PackageRecord], int]:
    """The records to install and the time stamp for their files: from the lock if there is one, else solved.
    Either way every record is checked to be for ``subdir`` (or noarch)."""
    if opts.lock is None:
        records = solve_environment(spec, subdir, opts, reporter, session)
        check_record_subdirs(records, subdir, f"{spec.path}: solved for {subdir}")
        return records, source_date_epoch(records)
    records = records_for_build(opts.lock, subdir, spec.channels, spec.base_dir, opts.channel_alias)
    check_record_subdirs(records, subdir, f"{opts.lock.path}: {subdir}")
    return records, lock_mtime(opts.lock, records)


def create_lock(spec: BuildSpec, opts: BuildOptions, reporter: Reporter) -> Lock:
    """Solve ``spec`` for every platform of ``opts`` and record the result, with the base image's digest."""
    plats = {}
    for subdir in opts.platforms:
        records = solve_environment(spec, subdir, opts, reporter)
        vps = virtual_packages(subdir, dict(spec.image.virtual_packages))
        img = open_image(spec.image.base, platform_for_subdir(subdir), dataclasses.replace(opts.registry, jobs=opts.jobs))
        wheels: tuple[WheelRecord, ...] = ()
        if spec.pip_for(subdir):
            session = default_session(opts)
            extracted = extracted_packages(records, session, cache_dir("extracted"), jobs=opts.jobs,
                                           offline=opts.offline)
            wheels = tuple(w.record for w in pip_wheels(spec, subdir, records, extracted, opts, reporter, session))
        plats[subdir] = PlatformLock(subdir, tuple(records), spec.image.base, base_digest(img),
                                     tuple((v.name, v.version, v.build) for v in vps), wheels)
    spellings: list[tuple[str, str]] = []
    for s in spec.channels:
        chans = resolve_channels([s], spec.base_dir, channel_alias=opts.channel_alias)
        for c in chans:
            spellings.append((s if len(chans) == 1 else c.url, c.url))
    return Lock(platforms=plats, env_file=Path(spec.path).name, env_sha256=file_sha256(spec.path),
                channels=tuple(spellings), options=locked_values(opts, spec.image.prefix),
                environment=LockedEnvironment.from_spec(spec))


def has_pip(spec: BuildSpec, subdir: str, opts: BuildOptions) -> bool:
    """Whether ``subdir``'s image gets wheels: a ``pip:`` section, or a lock that pins wheels (conda-lock and pixi
    locks carry them without any environment file)."""
    return bool(spec.pip_for(subdir)) or bool(opts.lock is not None and opts.lock.for_platform(subdir).wheels)


def pip_wheels(spec: BuildSpec, subdir: str, records: Sequence[PackageRecord], extracted: Sequence[Path],
               opts: BuildOptions, reporter: Reporter, session: requests.Session) -> list[FetchedWheel]:
    """The wheels of the ``pip:`` section for ``subdir``, fetched and verified: the lock's when building from one
    (pip does not run), else resolved by pip for the target with conda's distributions counted as installed.
    Nothing at all without a pip section or locked wheels."""
    if not has_pip(spec, subdir, opts):
        return []
    lines = spec.pip_for(subdir)
    locked = opts.lock.for_platform(subdir).wheels if opts.lock is not None else ()
    section = pip_section(lines, spec.base_dir)  # credentials of the indexes (and PIP_INDEX_URL)
    where = str(opts.lock.path or spec.path) if opts.lock is not None else str(spec.path)
    target = target_for(subdir, records, virtual_packages(subdir, dict(spec.image.virtual_packages)), where)
    if opts.lock is not None:
        wanted = list(locked)  # pinned: pip does not run
    else:
        with reporter.phase("pip-resolve", target.describe()):
            wanted = resolve_pip(section, target, conda_dists(records, extracted))
    if not wanted:
        return []
    with reporter.phase("pip-fetch", f"{len(wanted)} wheel(s)"):
        return fetch_pip(wanted, session, section.credentials(), opts.jobs)


def pip_credentials(env_path: Path | None) -> HostCredentials:
    """The pip indexes' credentials an environment file (and ``PIP_INDEX_URL``) names, for fetching its wheels."""
    lines = load_spec(env_path).pip if env_path is not None else ()
    return pip_section(lines, env_path.parent if env_path is not None else Path.cwd()).credentials()
