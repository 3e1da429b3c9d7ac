"""Fetch, cache and parse channel indexes (``<channel>/<subdir>/repodata.json[.zst]``).

HTTP channels are cached under ``cache_dir("repodata")``: per subdir URL a ``<key>.json`` (the decompressed index)
and a ``<key>.state.json`` (url, etag, last_modified, variant, sha256, fetched, ...), refreshed with conditional
requests, so an unchanged channel costs one 304. Local channels (``file://``) are read in place, never cached.
Every way repodata can be wrong (unreachable, not a channel, bad JSON, wrong types) ends in a one-line
:class:`ChannelError` naming the (credential-free) URL.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urljoin

import orjson
import requests
import zstandard

from ..cache import atomic_write, cache_dir, file_lock
from ..errors import ChannelError
from ..http import OfflineError, describe_error, is_offline, redact_url
from .channel import Channel
from .records import PackageRecord

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: How long we believe a channel has no ``repodata.json.zst`` before asking again.
RECHECK_ZST_AFTER = 7 * 24 * 3600
STATE_VERSION = 1
_EXTS = (".conda", ".tar.bz2")


# ---------------------------------------------------------------- parsing

def _decompress(body: bytes, where: str) -> bytes:
    if not body.startswith(ZSTD_MAGIC):  # already decoded (a server sent Content-Encoding) or plain JSON
        return body
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    except zstandard.ZstdError as e:
        raise ChannelError(f"corrupt zstd repodata at {redact_url(where)}: {e}") from None


def _parse(body: bytes, where: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ChannelError(f"invalid repodata JSON at {redact_url(where)}: {e}") from None
    if not isinstance(obj, dict):
        raise ChannelError(f"invalid repodata at {redact_url(where)}: top level is not a JSON object")
    for key in ("info", "packages", "packages.conda"):
        if obj.get(key) is not None and not isinstance(obj[key], dict):
            raise ChannelError(f"invalid repodata at {redact_url(where)}: {key!r} is not an object")
    return obj


_STR_OR_NONE = (str, type(None))
_NUM_OR_NONE = (int, float, type(None))


def _entry_ok(fn: Any, raw: Any) -> bool:
    """Fast path of :func:`_check_entry` (a big channel has ~10^6 entries): True when nothing is wrong."""
    if type(fn) is not str or type(raw) is not dict or "/" in fn:
        return False
    g = raw.get
    name, version, build, deps, cons = g("name"), g("version"), g("build"), g("depends"), g("constrains")
    bn, size, ts = g("build_number"), g("size"), g("timestamp")
    return (type(name) is str and type(version) is str and type(build) is str and name != "" and version != ""
            and build != "" and (type(deps) is list or deps is None) and (type(cons) is list or cons is None)
            and (type(bn) is int or bn is None) and type(size) in (int, type(None)) and isinstance(ts, _NUM_OR_NONE)
            and type(g("sha256")) in _STR_OR_NONE and type(g("md5")) in _STR_OR_NONE
            and type(g("subdir")) in _STR_OR_NONE and type(g("license")) in _STR_OR_NONE
            and type(g("features")) in _STR_OR_NONE and type(g("noarch")) in (str, bool, type(None))
            and type(g("track_features")) in (str, list, type(None))
            and all(type(d) is str for d in deps or ()) and all(type(c) is str for c in cons or ()))


def _check_entry(fn: Any, raw: Any) -> str | None:
    """What is wrong with one repodata entry, or None; keeps garbage from turning into tracebacks later."""
    if _entry_ok(fn, raw):
        return None
    if not isinstance(fn, str) or "/" in fn:
        return "bad file name"
    if not isinstance(raw, dict):
        return "entry is not an object"
    for k in ("name", "version", "build"):
        if not isinstance(raw.get(k), str) or not raw[k]:
            return f"{k!r} missing or not a string"
    bn = raw.get("build_number")
    if bn is not None and (not isinstance(bn, int) or isinstance(bn, bool)):
        return "'build_number' is not an integer"
    for k in ("depends", "constrains"):
        v = raw.get(k)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            return f"{k!r} is not a list of strings"
    for k in ("sha256", "md5", "subdir", "noarch", "license", "features"):
        v = raw.get(k)
        if v is not None and not isinstance(v, str) and not (k == "noarch" and isinstance(v, bool)):
            return f"{k!r} is not a string"
    for k in ("size", "timestamp"):
        v = raw.get(k)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            return f"{k!r} is not a number"
    tf = raw.get("track_features")
    if tf is not None and not isinstance(tf, (str, list)):
        return "'track_features' is not a string or list"
    return None


def _stem(fn: str) -> str:
    for ext in _EXTS:
        if fn.endswith(ext):
            return fn[: -len(ext)]
    return fn


def _merge(into: dict[str, PackageRecord], rec: PackageRecord) -> None:
    """Add ``rec`` unless a record for the same file stem is there; a ``.conda`` replaces a ``.tar.bz2``."""
    key = _stem(rec.fn)
    old = into.get(key)
    if old is None or (rec.fn.endswith(".conda") and not old.fn.endswith(".conda")):
        into[key] = rec


def records_from_repodata(obj: Mapping[str, Any], channel: Channel, subdir: str, where: str) -> list[PackageRecord]:
    """Records of one parsed ``repodata.json``; ``where`` names it in errors.

    URLs: CEP-15 ``info.base_url`` (resolved against the subdir URL) when given, otherwise
    ``<channel>/<subdir>/<fn>`` with the subdir whose index lists the file, as conda and rattler do; the record
    keeps its own ``subdir`` (a noarch file may be listed under a platform subdir).
    """
    info = obj.get("info") or {}
    base_url = info.get("base_url")
    fixed_base: str | None = None
    if base_url is not None:
        if not isinstance(base_url, str) or not base_url:
            raise ChannelError(f"invalid repodata at {redact_url(where)}: 'info.base_url' is not a string")
        fixed_base = urljoin(channel.subdir_url(subdir, auth=True) + "/", base_url)
    out: dict[str, PackageRecord] = {}
    for key in ("packages", "packages.conda"):
        for fn, raw in (obj.get(key) or {}).items():
            problem = _check_entry(fn, raw)
            if problem:
                raise ChannelError(f"invalid repodata at {redact_url(where)}: package {str(fn)[:100]!r}: {problem}")
            if not fn.endswith(_EXTS):
                continue
            base = fixed_base or channel.subdir_url(subdir, auth=True)
            try:
                rec = PackageRecord.from_repodata(fn, raw, channel.url, subdir, base)
            except (KeyError, TypeError, ValueError) as e:
                raise ChannelError(f"invalid repodata at {redact_url(where)}: package {fn!r}: {e}") from None
            _merge(out, rec)
    return list(out.values())


def _records(body: bytes, channel: Channel, subdir: str, where: str) -> list[PackageRecord]:
    return records_from_repodata(_parse(body, where), channel, subdir, where)


# ---------------------------------------------------------------- local channels

def _load_local(channel: Channel, subdir: str) -> tuple[dict[str, Any], str] | None:
    base = channel.path
    assert base is not None
    d = base / subdir
    for name in ("repodata.json.zst", "repodata.json"):
        p = d / name
        if p.is_file():
            where = p.as_uri()
            try:
                body = p.read_bytes()
            except OSError as e:
                raise ChannelError(f"cannot read {p}: {e.strerror}") from None
            return _parse(_decompress(body, where), where), where
    return None


# ---------------------------------------------------------------- HTTP channels with a cache

def _cache_files(url: str) -> tuple[Path, Path, Path]:
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    d = cache_dir("repodata")
    return d / f"{key}.state.json", d / f"{key}.json", d / f"{key}.lock"


def _read_state(path: Path, url: str) -> dict[str, Any]:
    try:
        st = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(st, dict) or st.get("url") != url or st.get("state_version") != STATE_VERSION:
        return {}
    return st


def _write_state(path: Path, st: dict[str, Any]) -> None:
    with atomic_write(path) as f:
        f.write(orjson.dumps(st, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))


def _read_cached(st: Mapping[str, Any], data_path: Path) -> bytes | None:
    """The cached index if it is there and still has the digest the state recorded."""
    if st.get("missing") or not st.get("sha256"):
        return None
    try:
        body = data_path.read_bytes()
    except OSError:
        return None
    return body if hashlib.sha256(body).hexdigest() == st["sha256"] else None


def _fetch_http(channel: Channel, subdir: str, session: requests.Session,
                offline: bool) -> list[PackageRecord] | None:
    canon = channel.subdir_url(subdir)
    auth = channel.subdir_url(subdir, auth=True)
    state_p, data_p, lock_p = _cache_files(canon)
    with file_lock(lock_p):
        st = _read_state(state_p, canon)
        cached = _read_cached(st, data_p)
        where = f"{canon}/{'repodata.json.zst' if st.get('variant') == 'zst' else 'repodata.json'}"
        if offline:
            if st.get("missing"):
                return None
            if cached is None:
                raise ChannelError(f"offline build: no cached repodata for {canon} (run once online to fill the cache)")
            return _records(cached, channel, subdir, where)
        now = time.time()
        variants = ["zst", "json"]
        if now - float(st.get("zst_missing") or 0) < RECHECK_ZST_AFTER:
            variants = ["json"]
        new_st: dict[str, Any] = {"state_version": STATE_VERSION, "url": canon}
        if st.get("zst_missing"):
            new_st["zst_missing"] = st["zst_missing"]
        for variant in variants:
            name = "repodata.json.zst" if variant == "zst" else "repodata.json"
            url, where = f"{auth}/{name}", f"{canon}/{name}"
            headers = {}
            conditional = cached is not None and st.get("variant") == variant
            if conditional:
                if st.get("etag"):
                    headers["If-None-Match"] = st["etag"]
                if st.get("last_modified"):
                    headers["If-Modified-Since"] = st["last_modified"]
            try:
                r = session.get(url, headers=headers)
            except OfflineError:
                raise ChannelError(f"offline build: no cached repodata for {canon}") from None
            except requests.RequestException as e:
                raise ChannelError(f"cannot reach channel {channel.url}: {describe_error(e)}") from None
            with r:
                if r.status_code == 304 and conditional:
                    assert cached is not None
                    st = dict(st, fetched=now)
                    _write_state(state_p, st)
                    return _records(cached, channel, subdir, where)
                if variant == "zst" and r.status_code in (403, 404):
                    if r.status_code == 404:
                        new_st["zst_missing"] = now
                    continue
                if r.status_code == 404:
                    _write_state(state_p, dict(new_st, missing=True, fetched=now))
                    data_p.unlink(missing_ok=True)
                    return None
                if r.status_code in (401, 403):
                    raise ChannelError(f"access denied (HTTP {r.status_code}) to channel {channel.url} at {where}")
                if r.status_code != 200:
                    raise ChannelError(f"channel {channel.url}: HTTP {r.status_code} for {where}")
                try:
                    body = r.content
                except requests.RequestException as e:
                    raise ChannelError(f"cannot read repodata from {where}: {describe_error(e)}") from None
                etag, last_modified = r.headers.get("ETag"), r.headers.get("Last-Modified")
            body = _decompress(body, where)
            recs = _records(body, channel, subdir, where)  # only repodata we can use goes into the cache
            with atomic_write(data_p) as f:
                f.write(body)
            new_st.update(variant=variant, etag=etag, last_modified=last_modified,
                          sha256=hashlib.sha256(body).hexdigest(), size=len(body), fetched=now)
            if variant == "zst":
                new_st.pop("zst_missing", None)
            _write_state(state_p, new_st)
            return recs
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------- public API

def _load_subdir(channel: Channel, subdir: str, session: requests.Session,
                 offline: bool) -> list[PackageRecord] | None:
    """Records of one channel subdir, or None when the channel has no such subdir."""
    if channel.is_local:
        got = _load_local(channel, subdir)
        return None if got is None else records_from_repodata(got[0], channel, subdir, got[1])
    if channel.url.startswith(("http://", "https://")):
        try:
            return _fetch_http(channel, subdir, session, offline or is_offline(session))
        except requests.RequestException as e:  # an OSError too; normally caught where it happens
            raise ChannelError(f"cannot reach channel {channel.url}: {describe_error(e)}") from None
        except OSError as e:
            raise ChannelError(f"cannot use the repodata cache {cache_dir('repodata')} for {channel.url}: "
                               f"{e.strerror or e}") from None
    raise ChannelError(f"unsupported channel URL {redact_url(channel.url)}")


def load_repodata(channel: Channel, subdir: str, session: requests.Session, *,
                  offline: bool = False) -> list[PackageRecord]:
    """Records of one channel subdir (cached for HTTP); a missing subdir is a :class:`ChannelError`."""
    recs = _load_subdir(channel, subdir, session, offline)
    if recs is None:
        raise ChannelError(f"channel {channel.url} has no repodata for {subdir} at {channel.subdir_url(subdir)}/")
    return recs


def load_channels(channels: Sequence[Channel], subdir: str, session: requests.Session, *,
                  offline: bool = False, jobs: int = 8) -> list[list[PackageRecord]]:
    """Per channel (same order) the records of ``subdir`` + ``noarch``, all fetched in parallel.

    Either subdir may be missing, not both ("not a conda channel").
    """
    subdirs = [subdir] if subdir == "noarch" else [subdir, "noarch"]
    tasks = [(c, s) for c in channels for s in subdirs]
    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks))), thread_name_prefix="repodata") as pool:
        futures = [pool.submit(_load_subdir, c, s, session, offline) for c, s in tasks]
        results: list[list[PackageRecord] | None] = []
        try:
            for fut in futures:  # the first failure in channel order wins
                results.append(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    out: list[list[PackageRecord]] = []
    for i, channel in enumerate(channels):
        parts = results[i * len(subdirs):(i + 1) * len(subdirs)]
        if all(p is None for p in parts):
            raise ChannelError(f"{channel.url} is not a conda channel: no repodata for {' or '.join(subdirs)}")
        merged: dict[str, PackageRecord] = {}
        for part in parts:
            for rec in part or ():
                _merge(merged, rec)
        out.append(list(merged.values()))
    return out
