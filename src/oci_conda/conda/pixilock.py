"""pixi.lock (rattler_lock format versions 4, 5 and 6): one environment's conda records and PyPI entries per platform.

Layout (the facts this reader relies on):

* ``environments.<env>.packages.<platform>`` lists selectors: ``{conda: URL}`` or ``{pypi: URL-or-path, extras}``;
  v6 conda selectors may add ``name``/``version``/``build``/``subdir`` to pick among records sharing a URL.
* the top-level ``packages`` list holds the records. v4/v5 tag them ``kind: conda|pypi`` and give the location as
  ``url`` (PyPI: ``url`` or ``path``); v6 keys them by ``conda: LOCATION`` / ``pypi: LOCATION`` and leaves out what
  the file name says (name, version, build, build number, subdir), which is derived from it here.
* v4 files converted from conda-lock repeat a noarch record once per platform (``subdir`` = that platform); the
  record whose ``subdir`` is the platform being read is the one used, and its subdir is the URL's (``noarch``).

Every problem is one line naming the file and the key (``environments.default.packages.linux-64[3]``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import yaml

from ..credentials import redact_url
from ..errors import SpecError
from .channel import KNOWN_SUBDIRS
from .explicit import record_from_url
from .lockentries import ForeignLock, LockedPlatform, PypiEntry
from .records import PackageRecord

SUPPORTED_VERSIONS = (4, 5, 6)
DEFAULT_ENVIRONMENT = "default"
MAX_LOCK_BYTES = 256 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def is_pixi_lock(doc: object) -> bool:
    """A loaded YAML document that looks like a pixi.lock (any version), so callers can say which format failed."""
    return isinstance(doc, dict) and "environments" in doc and "packages" in doc and "version" in doc


def read_pixi_lock(path: str | Path, environment: str = DEFAULT_ENVIRONMENT,
                   platforms: Sequence[str] | None = None) -> ForeignLock:
    """Read ``path``; relative package paths in it are taken relative to its directory."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_LOCK_BYTES:
            raise SpecError(f"{path}: lockfile is larger than {MAX_LOCK_BYTES >> 20} MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror}") from None
    return parse_pixi_lock(text, str(path), environment, platforms, base_dir=path.resolve().parent)


def parse_pixi_lock(text: str, where: str, environment: str = DEFAULT_ENVIRONMENT,
                    platforms: Sequence[str] | None = None, base_dir: Path | None = None) -> ForeignLock:
    """The records of ``environment`` for ``platforms`` (all the environment has when None)."""
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{where}{line}: not valid YAML") from None
    if not is_pixi_lock(doc):
        raise SpecError(f"{where}: not a pixi.lock (needs version, environments and packages)")
    version = doc["version"]
    if version not in SUPPORTED_VERSIONS:
        raise SpecError(f"{where}: version: pixi.lock format {version!r} is not supported "
                        f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})")
    envs = _mapping(doc["environments"], where, "environments")
    if environment not in envs:
        have = ", ".join(sorted(map(str, envs))) or "none"
        raise SpecError(f"{where}: environments: no environment {environment!r} (the lock has: {have})")
    env_key = f"environments.{environment}"
    env = _mapping(envs[environment], where, env_key)
    channels = tuple(_channel(c, where, f"{env_key}.channels[{i}]")
                     for i, c in enumerate(_list(env.get("channels") or [], where, f"{env_key}.channels")))
    per_platform = _mapping(env.get("packages") or {}, where, f"{env_key}.packages")

    wanted = list(per_platform) if platforms is None else list(platforms)
    for p in wanted:
        if p not in per_platform:
            have = ", ".join(sorted(map(str, per_platform))) or "none"
            raise SpecError(f"{where}: {env_key}.packages: no packages for platform {p!r} (the lock has: {have})")

    conda, pypi = _index_packages(doc["packages"], version, where, base_dir)
    out: dict[str, LockedPlatform] = {}
    for platform in wanted:
        key = f"{env_key}.packages.{platform}"
        recs: list[PackageRecord] = []
        wheels: list[PypiEntry] = []
        for i, sel in enumerate(_list(per_platform[platform] or [], where, key)):
            at = f"{key}[{i}]"
            sel = _mapping(sel, where, at)
            if "conda" in sel:
                recs.append(_pick_conda(sel, conda, platform, where, at, base_dir))
            elif "pypi" in sel:
                loc = _location(sel["pypi"], where, f"{at}.pypi")
                entry = pypi.get(loc)
                if entry is None:
                    raise SpecError(f"{where}: {at}: no package record for {redact_url(loc)}")
                extras = tuple(str(x) for x in _list(sel.get("extras") or [], where, f"{at}.extras"))
                wheels.append(PypiEntry(**{**_fields(entry), "extras": extras}))
            else:
                raise SpecError(f"{where}: {at}: expected a 'conda' or 'pypi' entry, got keys {sorted(sel)}")
        out[platform] = LockedPlatform(conda=tuple(recs), pypi=tuple(wheels))
    return ForeignLock(path=where, environment=environment, channels=channels, platforms=out)


def lock_environments(text: str, where: str) -> list[str]:
    """The environment names a pixi.lock holds (for ``--environment`` messages)."""
    doc = yaml.load(text, Loader=_Loader)
    if not is_pixi_lock(doc):
        raise SpecError(f"{where}: not a pixi.lock")
    return sorted(map(str, _mapping(doc["environments"], where, "environments")))


# --- records ----------------------------------------------------------------------------------------------------

_Conda = dict[str, list[tuple[int, Mapping[str, Any]]]]


def _index_packages(raw: Any, version: int, where: str, base_dir: Path | None
                    ) -> tuple[_Conda, dict[str, PypiEntry]]:
    """Top-level ``packages``: conda records by location (several may share one), PyPI entries by location."""
    conda: _Conda = {}
    pypi: dict[str, PypiEntry] = {}
    for i, p in enumerate(_list(raw, where, "packages")):
        at = f"packages[{i}]"
        p = _mapping(p, where, at)
        if version >= 6:
            kind = "conda" if "conda" in p else "pypi" if "pypi" in p else None
            loc_key = kind
        else:
            kind = p.get("kind")
            loc_key = "url" if kind == "conda" else ("url" if "url" in p else "path")
        if kind not in ("conda", "pypi"):
            raise SpecError(f"{where}: {at}: unknown package kind (expected conda or pypi)")
        if loc_key not in p:
            raise SpecError(f"{where}: {at}: no {loc_key!r} (the package's location)")
        loc = _location(p[loc_key], where, f"{at}.{loc_key}")
        if kind == "conda":
            conda.setdefault(loc, []).append((i, p))
        else:
            pypi[loc] = _pypi_entry(p, loc, where, at)
    return conda, pypi


def _pick_conda(sel: Mapping[str, Any], conda: _Conda, platform: str, where: str, at: str,
                base_dir: Path | None) -> PackageRecord:
    loc = _location(sel["conda"], where, f"{at}.conda")
    candidates = conda.get(loc)
    if not candidates:
        raise SpecError(f"{where}: {at}: no package record for {redact_url(loc)}")
    url = _as_url(loc, base_dir, where, at)
    built = [(i, p, _conda_record(p, url, where, f"packages[{i}]")) for i, p in candidates]
    for key in ("name", "version", "build", "subdir"):  # v6 selectors disambiguate records sharing a location
        if key in sel:
            built = [b for b in built if str(getattr(b[2], key)) == str(sel[key])
                     or (key == "subdir" and str(b[1].get("subdir")) == str(sel[key]))]
    if not built:
        raise SpecError(f"{where}: {at}: no package record for {redact_url(loc)} matches its name/version/build")
    for _, p, rec in built:  # v4 repeats noarch records per platform: take this platform's
        if p.get("subdir") == platform:
            return rec
    return built[0][2]


def _conda_record(p: Mapping[str, Any], url: str, where: str, at: str) -> PackageRecord:
    """A record from what the URL's file name says, overridden by what the lock states."""
    derived = record_from_url(url, None, f"{where}: {at}")
    fields = _fields(derived)
    for key in ("name", "version", "build"):
        if key in p:
            fields[key] = _str(p[key], where, f"{at}.{key}")
    if "build_number" in p:
        bn = p["build_number"]
        if not isinstance(bn, int) or isinstance(bn, bool) or bn < 0:
            raise SpecError(f"{where}: {at}.build_number: expected a non-negative integer, got {bn!r}")
        fields["build_number"] = bn
    elif "build" in p:
        tail = fields["build"].rsplit("_", 1)[-1]
        fields["build_number"] = int(tail) if tail.isdigit() else 0
    subdir = p.get("subdir")
    if subdir is not None and derived.subdir != "noarch":
        subdir = _str(subdir, where, f"{at}.subdir")
        if subdir not in KNOWN_SUBDIRS:
            raise SpecError(f"{where}: {at}.subdir: unknown platform {subdir!r}")
        fields["subdir"] = subdir
    if p.get("channel"):
        fields["channel"] = _str(p["channel"], where, f"{at}.channel").rstrip("/")
    for key, n in (("sha256", 64), ("md5", 32)):
        if p.get(key) is not None:
            h = _str(p[key], where, f"{at}.{key}")
            if len(h) != n or not _HEX.match(h):
                raise SpecError(f"{where}: {at}.{key}: not a {key} hex digest: {h[:80]!r}")
            fields[key] = h.lower()
    for key in ("depends", "constrains"):
        fields[key] = tuple(_str(d, where, f"{at}.{key}[{j}]")
                            for j, d in enumerate(_list(p.get(key) or [], where, f"{at}.{key}")))
    tf = p.get("track_features") or []
    if isinstance(tf, str):
        tf = tf.replace(",", " ").split()
    fields["track_features"] = tuple(_str(t, where, f"{at}.track_features")
                                     for t in _list(tf, where, f"{at}.track_features"))
    if p.get("size") is not None:
        size = p["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise SpecError(f"{where}: {at}.size: expected a non-negative integer, got {size!r}")
        fields["size"] = size
    if p.get("timestamp") is not None:
        ts = p["timestamp"]
        if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
            raise SpecError(f"{where}: {at}.timestamp: expected milliseconds since the epoch, got {ts!r}")
        fields["timestamp"] = ts * 1000 if ts < 253402300799 else ts
    noarch = p.get("noarch")
    if noarch is True:
        noarch = "generic"
    if noarch not in (None, False, "python", "generic"):
        raise SpecError(f"{where}: {at}.noarch: expected python or generic, got {noarch!r}")
    fields["noarch"] = noarch or None
    for key in ("license", "features"):
        if p.get(key) is not None:
            fields[key] = _str(p[key], where, f"{at}.{key}")
    return PackageRecord(**fields)


def _pypi_entry(p: Mapping[str, Any], loc: str, where: str, at: str) -> PypiEntry:
    for key in ("name", "version"):
        if key not in p:
            raise SpecError(f"{where}: {at}: PyPI package without {key!r}")
    hashes: dict[str, str | None] = {"sha256": None, "md5": None}
    for key, n in (("sha256", 64), ("md5", 32)):
        if p.get(key) is not None:
            h = _str(p[key], where, f"{at}.{key}")
            if len(h) != n or not _HEX.match(h):
                raise SpecError(f"{where}: {at}.{key}: not a {key} hex digest: {h[:80]!r}")
            hashes[key] = h.lower()
    rp = p.get("requires_python")
    return PypiEntry(
        name=_str(p["name"], where, f"{at}.name"),
        version=str(p["version"]),
        url=loc,
        sha256=hashes["sha256"],
        md5=hashes["md5"],
        requires_dist=tuple(_str(r, where, f"{at}.requires_dist[{j}]")
                            for j, r in enumerate(_list(p.get("requires_dist") or [], where, f"{at}.requires_dist"))),
        requires_python=None if rp is None else _str(rp, where, f"{at}.requires_python"),
        editable=bool(p.get("editable", False)),
    )


# --- small checks -----------------------------------------------------------------------------------------------

def _as_url(loc: str, base_dir: Path | None, where: str, at: str) -> str:
    """A conda location as a URL: pixi writes local packages as paths, relative to the lock's directory."""
    if urlsplit(loc).scheme in ("http", "https", "file"):
        return loc
    if "://" in loc:
        raise SpecError(f"{where}: {at}: unsupported URL scheme in {redact_url(loc)}")
    p = Path(loc)
    if not p.is_absolute():
        if base_dir is None:
            raise SpecError(f"{where}: {at}: relative package path {loc!r} needs the lock file's directory")
        p = base_dir / p
    return p.resolve().as_uri()


def _location(v: Any, where: str, at: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise SpecError(f"{where}: {at}: expected a URL or path, got {type(v).__name__}")
    return v.strip()


def _channel(c: Any, where: str, at: str) -> str:
    if isinstance(c, dict) and isinstance(c.get("url"), str):
        return c["url"].rstrip("/")
    if isinstance(c, str):
        return c.rstrip("/")
    raise SpecError(f"{where}: {at}: expected {{url: CHANNEL}}")


def _str(v: Any, where: str, at: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise SpecError(f"{where}: {at}: expected a string, got {type(v).__name__}")
    return str(v)


def _mapping(v: Any, where: str, at: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise SpecError(f"{where}: {at}: expected a mapping, got {type(v).__name__}")
    return v


def _list(v: Any, where: str, at: str) -> list[Any]:
    if not isinstance(v, list):
        raise SpecError(f"{where}: {at}: expected a list, got {type(v).__name__}")
    return v


def _fields(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}
