"""Fetch, cache and parse channel indexes (``<channel>/<subdir>/repodata.json[.zst]``).

HTTP channels are cached under ``cache_dir("repodata")``: per subdir URL a ``<key>.json`` (the decompressed index)
and a ``<key>.state.json`` (url, etag, last_modified, variant, sha256, fetched, ...), refreshed with conditional
requests, so an unchanged channel costs one 304. Local channels (``file://``) are read in place, never cached.
Every way repodata can be wrong (unreachable, not a channel, bad JSON, wrong types) ends in a one-line
:class:`ChannelError` naming the (credential-free) URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import operator
from operator import itemgetter
import os
import struct
import time
import re
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate, compress, repeat
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar
from urllib.parse import urljoin

import orjson
import requests
import zstandard

from ..cache import atomic_write, cache_dir, file_lock
from ..errors import ChannelError
from ..http import OfflineError, describe_error, is_offline
from ..credentials import redact_url
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
    if not isinstance(obj, Mapping):
        raise ChannelError(f"invalid repodata at {redact_url(where)}: top level is not a JSON object")
    for key in ("info", "packages", "packages.conda"):
        if obj.get(key) is not None and not isinstance(obj[key], Mapping):
            raise ChannelError(f"invalid repodata at {redact_url(where)}: {key!r} is not an object")
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


def _conditional_get(channel: Channel, subdir: str, session: requests.Session, st: Mapping[str, Any],
                     have_copy: bool) -> tuple[str, str, bytes | None, dict[str, Any]]:
    """GET a subdir's repodata: ``.zst`` first (its absence remembered for a while), conditionally if we hold a copy.

    Returns ``(outcome, where, body, new_state)``: ``"not-modified"`` (use the copy), ``"missing"`` (the channel has
    no such subdir) or ``"fetched"`` (``body`` decompressed; ``new_state`` has the validators to store once the
    caller has checked and cached the body). Failures raise ``ChannelError`` naming the channel.
    """
    canon = channel.subdir_url(subdir)
    auth = channel.subdir_url(subdir, auth=True)
    now = time.time()
    variants = ["zst", "json"]
    if now - float(st.get("zst_missing") or 0) < RECHECK_ZST_AFTER:
        variants = ["json"]
    new_st: dict[str, Any] = {"state_version": STATE_VERSION, "url": canon, "fetched": now}
    if st.get("zst_missing"):
        new_st["zst_missing"] = st["zst_missing"]
    for variant in variants:
        name = "repodata.json.zst" if variant == "zst" else "repodata.json"
        url, where = f"{auth}/{name}", f"{canon}/{name}"
        headers = {}
        conditional = have_copy and st.get("variant") == variant
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
                return "not-modified", where, None, dict(st, fetched=now)
            if variant == "zst" and r.status_code in (403, 404):
                if r.status_code == 404:
                    new_st["zst_missing"] = now
                continue
            if r.status_code == 404:
                return "missing", where, None, dict(new_st, missing=True)
            if r.status_code in (401, 403):
                raise ChannelError(f"access denied (HTTP {r.status_code}) to channel {channel.url} at {where}")
            if r.status_code != 200:
                raise ChannelError(f"channel {channel.url}: HTTP {r.status_code} for {where}")
            try:
                body = r.content
            except requests.RequestException as e:
                raise ChannelError(f"cannot read repodata from {where}: {describe_error(e)}") from None
            new_st.update(variant=variant, etag=r.headers.get("ETag"), last_modified=r.headers.get("Last-Modified"))
        if variant == "zst":
            new_st.pop("zst_missing", None)
        return "fetched", where, _decompress(body, where), new_st
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_http(channel: Channel, subdir: str, session: requests.Session,
                offline: bool) -> list[PackageRecord] | None:
    canon = channel.subdir_url(subdir)
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
        outcome, where, body, new_st = _conditional_get(channel, subdir, session, st, cached is not None)
        if outcome == "not-modified":
            assert cached is not None
            _write_state(state_p, new_st)
            return _records(cached, channel, subdir, where)
        if outcome == "missing":
            _write_state(state_p, new_st)
            data_p.unlink(missing_ok=True)
            return None
        assert body is not None
        recs = _records(body, channel, subdir, where)  # only repodata we can use goes into the cache
        with atomic_write(data_p) as f:
            f.write(body)
        new_st.update(sha256=hashlib.sha256(body).hexdigest(), size=len(body))
        _write_state(state_p, new_st)
        return recs


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


T = TypeVar("T")


def _fan_out(channels: Sequence[Channel], subdir: str, jobs: int,
             load: Callable[[Channel, str], T | None]) -> list[tuple[Channel, list[str], list[T | None]]]:
    """``load`` every channel's ``subdir`` and ``noarch`` in parallel; per channel, in order, its parts.

    The first failure in channel order is raised; a channel with neither subdir is not a conda channel.
    """
    subdirs = [subdir] if subdir == "noarch" else [subdir, "noarch"]
    tasks = [(c, s) for c in channels for s in subdirs]
    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks))), thread_name_prefix="repodata") as pool:
        futures = [pool.submit(load, c, s) for c, s in tasks]
        results: list[T | None] = []
        try:
            for fut in futures:
                results.append(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    out = []
    for i, channel in enumerate(channels):
        parts = results[i * len(subdirs):(i + 1) * len(subdirs)]
        if all(p is None for p in parts):
            raise ChannelError(f"{channel.url} is not a conda channel: no repodata for {' or '.join(subdirs)}")
        out.append((channel, subdirs, parts))
    return out


def load_channels(channels: Sequence[Channel], subdir: str, session: requests.Session, *,
                  offline: bool = False, jobs: int = 8, names: Sequence[str] | None = None) -> list[list[PackageRecord]]:
    """Per channel (same order) the records of ``subdir`` + ``noarch``, all fetched in parallel.

    Either subdir may be missing, not both ("not a conda channel"). With ``names`` (the requested package names),
    channels that publish CEP-16 sharded repodata are read through it: only the shards of names reachable from
    ``names`` are fetched (see ``shards.py``).
    """
    if names is not None:
        from .shards import load_sharded

        sharded = load_sharded(channels, subdir, session, names, offline=offline, jobs=jobs)
        if sharded is not None:
            return sharded
    out: list[list[PackageRecord]] = []
    for _channel, _subdirs, parts in _fan_out(channels, subdir, jobs,
                                              lambda c, s: _load_subdir(c, s, session, offline)):
        merged: dict[str, PackageRecord] = {}
        for part in parts:
            for rec in part or ():
                _merge(merged, rec)
        out.append(list(merged.values()))
    return out


# ---------------------------------------------------------------- lazy per-name index (+ its warm cache)
#
# A big channel (conda-forge linux-64 + noarch: ~600k records) costs seconds to turn into PackageRecords, yet a
# request reaches a few hundred names. So a subdir is opened as a name -> entries index: the JSON is cut into its
# package entries without parsing them, and a name's entries become validated records on first access. The cut
# (a table per name of where its entries are) and the JSON are written to one index file in the cache, so a
# later build opens that file (a small name table; the rest is mmap'd and read per name) without parsing JSON.

INDEX_MAGIC = b"OCICIDX1"
INDEX_VERSION = 1
_SENTINEL = b'"\\u0000"'  # short: the marked-up document is parsed whole
_SENTINEL_STR = "\x00"
_HEAD = struct.Struct("<8sQ")
_NAME_RE = re.compile(rb'"name"[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"')
_GROUP1 = operator.methodcaller("group", 1)

#: name -> (file names, starts, ends) of its entries (``packages`` first, then ``packages.conda``), where
#: ``body[start:end]`` is an entry's JSON object.
Table = dict[str, tuple[Sequence[str], Sequence[int], Sequence[int]]]


def _entry_names(pieces: list[bytes], at: list[int]) -> list[bytes] | None:
    """The ``"name"`` value of each entry piece (``at``: where its ``"name"`` key is), or None if one is not a
    plain string. The common layouts (``"name": "x"``, ``"name":"x"``) are cut with C-level maps; others by regex."""
    for sep in (b'"name": "', b'"name":"'):
        if all(map(bytes.startswith, pieces, repeat(sep), at)):
            ks = list(map(operator.add, at, repeat(len(sep))))
            qs = list(map(bytes.find, pieces, repeat(b'"'), ks))
            if min(qs, default=0) < 0:
                return None
            names = list(map(bytes.__getitem__, pieces, map(slice, ks, qs)))
            return None if b"\\" in b"".join(names) else names
    matches = list(map(_NAME_RE.match, pieces, at))
    return None if None in matches else list(map(_GROUP1, matches))


def _scan(body: bytes) -> tuple[dict[str, Any], Table] | None:
    """``(info, table)`` of one repodata document, without parsing its package entries; None when the document
    is not shaped so that it can be cut safely (the caller then parses it whole).

    Entries are the ``{...}`` objects that hold no ``{`` and a ``"name"`` key (with a plain string value, no
    escape before it) before their first ``}``. The cut is checked, not trusted: the document with each entry
    replaced by a marker must parse with orjson and have exactly those markers, in order, as its ``packages`` /
    ``packages.conda`` values, so a brace inside a string, a nested object, an entry without a name or a duplicate
    key sends the document to the exact path instead. The entries themselves are parsed and checked (orjson,
    :func:`_check_entry`, and that the name is the one they were filed under) when their name is looked up.
    """
    pieces = body.split(b"{")
    if len(pieces) < 2:
        return None
    closes = list(map(bytes.find, pieces, repeat(b"}")))
    namepos = list(map(bytes.find, pieces, repeat(b'"name"'), repeat(0), closes))
    is_entry = list(map((0).__le__, map(min, namepos, closes)))
    is_entry[0] = False  # the text before the first "{"
    offs = list(accumulate(map((1).__add__, map(len, pieces)), initial=0))  # where piece p starts: offs[p]
    idx = list(compress(range(len(pieces)), is_entry))
    epieces = [pieces[p] for p in idx]
    enames = [namepos[p] for p in idx]
    del pieces, namepos, is_entry
    if b"\\" in body and max(map(bytes.find, epieces, repeat(b"\\"), repeat(0), enames), default=-1) >= 0:
        return None  # an escape before an entry's "name": it could be inside a key, not the key itself
    names = _entry_names(epieces, enames)
    if names is None:
        return None  # a name that is not a plain string
    del epieces, enames
    starts = [offs[p] - 1 for p in idx]
    ends = [offs[p] + closes[p] + 1 for p in idx]
    del offs, closes, idx
    n = len(starts)
    segs = list(map(body.__getitem__, map(slice, [0, *ends], [*starts, len(body)])))
    try:
        obj = orjson.loads(_SENTINEL.join(segs))
    except orjson.JSONDecodeError:
        return None
    del segs
    if not isinstance(obj, dict):
        return None
    info = obj.get("info")
    if info is not None and not isinstance(info, dict):
        return None
    fns: list[str] = [""] * n  # by entry, in document order
    ranges: dict[str, range] = {}
    pos = 0
    for key, val in obj.items():
        if key in ("packages", "packages.conda"):
            if not isinstance(val, dict):
                return None
            vals = list(val.values())
            if vals.count(_SENTINEL_STR) != len(vals) or pos + len(vals) > n:
                return None
            fns[pos:pos + len(vals)] = list(val)
            ranges[key] = range(pos, pos + len(vals))
            pos += len(vals)
    if pos != n:
        return None  # markers elsewhere (an object with a name in info) or duplicate keys
    # group entry numbers by name in load order (packages, then packages.conda), with C-level maps
    order = [j for key in ("packages", "packages.conda") if key in ranges for j in ranges[key]]
    groups: defaultdict[bytes, list[int]] = defaultdict(list)
    deque(map(list.append, map(groups.__getitem__, map(names.__getitem__, order)), order), maxlen=0)
    table: Table = {}
    try:
        for k, js in groups.items():
            if len(js) == 1:
                j = js[0]
                table[k.decode()] = ((fns[j],), (starts[j],), (ends[j],))
            else:
                get = itemgetter(*js)
                table[k.decode()] = (get(fns), get(starts), get(ends))
    except UnicodeDecodeError:
        return None
    return (info or {}), table


def _table_from_parsed(obj: Mapping[str, Any], channel: Channel, subdir: str,
                       where: str) -> tuple[bytes, Table]:
    """The slow, exact way to a table: validate every record (the errors of load_repodata), then re-serialise
    the entries one after the other as the body the table points into."""
    records_from_repodata(obj, channel, subdir, where)  # raises ChannelError on anything wrong
    parts: list[bytes] = []
    groups: dict[str, tuple[list[str], list[int], list[int]]] = {}
    pos = 0
    for key in ("packages", "packages.conda"):
        for fn, raw in (obj.get(key) or {}).items():
            b = orjson.dumps(raw)
            g = groups.setdefault(raw["name"], ([], [], []))
            g[0].append(fn)
            g[1].append(pos)
            g[2].append(pos + len(b))
            parts.append(b)
            pos += len(b)
    return b"".join(parts), {k: (tuple(a), tuple(b), tuple(c)) for k, (a, b, c) in groups.items()}


def _fixed_base(info: Mapping[str, Any], channel: Channel, subdir: str, where: str) -> str:
    base_url = info.get("base_url")
    if base_url is None:
        return channel.subdir_url(subdir, auth=True)
    if not isinstance(base_url, str) or not base_url:
        raise ChannelError(f"invalid repodata at {redact_url(where)}: 'info.base_url' is not a string")
    return urljoin(channel.subdir_url(subdir, auth=True) + "/", base_url)


class _StaleIndex(Exception):
    """An index file does not hold what its table says (damaged after it was written)."""


class SubdirIndex:
    """One channel subdir as name -> where its entries are in ``body`` (in memory after a scan, or an index file
    mmap'd, whose per-name tables are decoded on first use)."""

    def __init__(self, channel: Channel, subdir: str, where: str, base_url: str | None, body: Any,
                 table: Mapping[str, Any], data: Any = None) -> None:
        self.channel, self.subdir, self.where = channel, subdir, where
        self.base_url = base_url
        self.base = _fixed_base({"base_url": base_url}, channel, subdir, where)
        self._body = body
        self._table = table  # name -> (fns, starts, ends), or [offset, length] of that as JSON in ``data``
        self._data = data
        self.records_made = 0

    def names(self) -> Any:
        return self._table.keys()

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def _entries(self, name: str) -> tuple[list, list]:
        ent = self._table[name]
        if self._data is not None:  # from an index file: [offset, length] of this name's JSON table
            try:
                off, length = ent
                ent = orjson.loads(self._data[off:off + length])
            except (ValueError, TypeError, orjson.JSONDecodeError):
                raise _StaleIndex(name) from None
        body = self._body
        try:
            fns, starts, ends = ent
            if len(fns) != len(starts) or len(fns) != len(ends) or max(ends) > len(body):
                raise _StaleIndex(name)
            raw = orjson.loads(b"".join((b"[", b",".join(list(map(body.__getitem__, map(slice, starts, ends)))),
                                         b"]")))
        except orjson.JSONDecodeError as e:
            raise ChannelError(f"invalid repodata JSON at {redact_url(self.where)}: entries of {name!r}: {e}") from None
        except (ValueError, TypeError):
            raise _StaleIndex(name) from None
        if len(raw) != len(fns):
            raise _StaleIndex(name)
        return fns, raw

    def records(self, name: str) -> list[PackageRecord]:
        """Validated records of ``name`` in repodata order (``packages``, then ``packages.conda``)."""
        where = redact_url(self.where)
        fns, raws = self._entries(name)
        out = []
        for fn, raw in zip(fns, raws):
            problem = _check_entry(fn, raw)
            if problem:
                raise ChannelError(f"invalid repodata at {where}: package {str(fn)[:100]!r}: {problem}")
            if not fn.endswith(_EXTS):
                continue
            try:
                rec = PackageRecord.from_repodata(fn, raw, self.channel.url, self.subdir, self.base)
            except (KeyError, TypeError, ValueError) as e:
                raise ChannelError(f"invalid repodata at {where}: package {fn!r}: {e}") from None
            if rec.name != name:
                raise ChannelError(f"invalid repodata at {where}: package {fn!r}: 'name' is not {name!r}")
            out.append(rec)
        self.records_made += len(out)
        return out


class ChannelIndex(Mapping[str, list[PackageRecord]]):
    """Per channel: name -> records of ``subdir`` + ``noarch`` merged as :func:`load_channels` merges them (a
    ``.conda`` replaces the ``.tar.bz2`` of the same stem; the platform subdir first), made on first access.

    Looking a name up parses and validates only that name's entries; a broken entry raises the same
    :class:`ChannelError` load_channels would raise for it. ``parts`` are :class:`SubdirIndex` objects (or None
    for a subdir the channel does not have).
    """

    def __init__(self, channel: Channel, parts: Sequence[SubdirIndex | None],
                 reopen: Any = None) -> None:
        self.channel = channel
        self.parts = list(parts)
        self._reopen = reopen  # (i) -> SubdirIndex rebuilt from the repodata, for a damaged index file
        self._made: dict[str, list[PackageRecord]] = {}
        self._names: list[str] | None = None

    def _all_names(self) -> list[str]:
        if self._names is None:
            seen: dict[str, None] = {}
            for p in self.parts:
                if p is not None:
                    seen.update(dict.fromkeys(p.names()))
            self._names = list(seen)
        return self._names

    def __getitem__(self, name: str) -> list[PackageRecord]:
        got = self._made.get(name)
        if got is not None:
            return got
        merged: dict[str, PackageRecord] = {}
        found = False
        for i, p in enumerate(self.parts):
            if p is None or name not in p:
                continue
            found = True
            try:
                recs = p.records(name)
            except _StaleIndex:
                if self._reopen is None:
                    raise ChannelError(f"damaged repodata index for {p.channel.subdir_url(p.subdir)}") from None
                p = self.parts[i] = self._reopen(i)
                recs = p.records(name) if p is not None and name in p else []
            for rec in recs:
                _merge(merged, rec)
        if not found:
            raise KeyError(name)
        got = self._made[name] = list(merged.values())
        return got

    def __contains__(self, name: object) -> bool:
        return any(p is not None and name in p for p in self.parts)

    def __iter__(self):
        return iter(self._all_names())

    def __len__(self) -> int:
        return len(self._all_names())

    @property
    def records_made(self) -> int:
        return sum(p.records_made for p in self.parts if p is not None)


def _index_from_body(body: bytes, channel: Channel, subdir: str, where: str) -> tuple[str | None, bytes, Table]:
    """``(info.base_url, body, table)`` of a decompressed repodata body; ChannelError for what is not repodata."""
    got = _scan(body)
    if got is None:
        obj = _parse(body, where)
        info = obj.get("info") or {}
        _fixed_base(info, channel, subdir, where)
        return (info.get("base_url"), *_table_from_parsed(obj, channel, subdir, where))
    info, table = got
    _fixed_base(info, channel, subdir, where)  # a bad base_url fails now, as in load_repodata
    return info.get("base_url"), body, table


def _write_index(path: Path, key: str, base_url: str | None, body: bytes, table: Table, *,
                 embed: bool = True) -> None:
    """``MAGIC | u64 header length | header JSON | per-name tables | body``; the header maps name -> [offset,
    length] of that name's table; offsets (and ``body_offset``, ``size``) count from the end of the header."""
    blobs = [orjson.dumps(v) for v in table.values()]
    names: dict[str, list[int]] = {}
    off = 0
    for name, b in zip(table, blobs):
        names[name] = [off, len(b)]
        off += len(b)
    hb = orjson.dumps({"version": INDEX_VERSION, "key": key, "base_url": base_url, "names": names,
                       "body_offset": off, "size": off + (len(body) if embed else 0), "body_size": len(body),
                       "embedded": embed})
    with atomic_write(path, fsync=False) as f:  # checked on open (magic, key, size) and per name when read
        f.write(_HEAD.pack(INDEX_MAGIC, len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
        if embed:
            f.write(body)


def _open_index(path: Path, key: str, channel: Channel, subdir: str, where: str,
                external: Path | None = None) -> SubdirIndex | None:
    """The index file at ``path`` if it was written for ``key`` and is whole; None otherwise (then rebuild).

    An index written with ``embed=False`` points into ``external`` (a local channel's own repodata.json, whose
    identity is part of ``key``) instead of holding a copy."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD.size)
            if len(head) != _HEAD.size:
                return None
            magic, hlen = _HEAD.unpack(head)
            if magic != INDEX_MAGIC or hlen > 1 << 31:
                return None
            hdr = orjson.loads(f.read(hlen))
            if (not isinstance(hdr, dict) or hdr.get("version") != INDEX_VERSION or hdr.get("key") != key
                    or not isinstance(hdr.get("names"), dict) or not isinstance(hdr.get("body_offset"), int)):
                return None
            if os.fstat(f.fileno()).st_size != _HEAD.size + hlen + hdr.get("size", -1):
                return None
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, orjson.JSONDecodeError):
        return None
    base_url = hdr.get("base_url")
    if base_url is not None and not isinstance(base_url, str):
        return None
    rest = memoryview(data)[_HEAD.size + hlen:]
    if hdr.get("embedded", True):
        return SubdirIndex(channel, subdir, where, base_url, rest[hdr["body_offset"]:], hdr["names"], rest)
    if external is None:
        return None
    try:
        with open(external, "rb") as f:
            if os.fstat(f.fileno()).st_size != hdr.get("body_size") or not hdr.get("body_size"):
                return None
            body = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    return SubdirIndex(channel, subdir, where, base_url, memoryview(body), hdr["names"], rest)


# -- local channels: the index is cached by the repodata file's identity (path, size, mtime, inode)

def _local_index(channel: Channel, subdir: str, *, rebuild: bool = False) -> SubdirIndex | None:
    base = channel.path
    assert base is not None
    for fname in ("repodata.json.zst", "repodata.json"):
        p = base / subdir / fname
        try:
            st = p.stat()
        except OSError:
            continue
        if not p.is_file():
            continue
        where = p.as_uri()
        key = f"local:{where}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        d = cache_dir("repodata")
        stem = "local-" + hashlib.sha256(where.encode()).hexdigest()[:32]
        index_p = d / f"{stem}.index"
        external = p if fname == "repodata.json" else None  # point into the file itself, no copy
        if not rebuild:
            got = _open_index(index_p, key, channel, subdir, where, external)
            if got is not None:
                return got
        with file_lock(d / f"{stem}.lock"):
            if not rebuild:
                got = _open_index(index_p, key, channel, subdir, where, external)
                if got is not None:
                    return got
            try:
                body = p.read_bytes()
            except OSError as e:
                raise ChannelError(f"cannot read {p}: {e.strerror}") from None
            plain = body
            base_url, body, table = _index_from_body(_decompress(body, where), channel, subdir, where)
            with contextlib.suppress(OSError):  # a read-only cache only costs the next build the same scan
                _write_index(index_p, key, base_url, body, table, embed=external is None or body is not plain)
        return SubdirIndex(channel, subdir, where, base_url, body, table)
    return None


# -- HTTP channels: the index sits next to the cached JSON, keyed by the JSON's sha256 in the state file

def _http_index(channel: Channel, subdir: str, session: requests.Session, offline: bool, *,
                rebuild: bool = False) -> SubdirIndex | None:
    canon = channel.subdir_url(subdir)
    state_p, data_p, lock_p = _cache_files(canon)
    index_p = data_p.with_suffix(".index")
    with file_lock(lock_p):
        st = _read_state(state_p, canon)
        where = f"{canon}/{'repodata.json.zst' if st.get('variant') == 'zst' else 'repodata.json'}"
        idx = cached = None
        if not st.get("missing") and st.get("sha256") and not rebuild:
            idx = _open_index(index_p, st["sha256"], channel, subdir, where)
        if idx is None:
            cached = _read_cached(st, data_p)  # no (current) index: the JSON it is made from, if still good

        def from_cache() -> SubdirIndex | None:
            if idx is not None:
                return idx
            if cached is None:
                return None
            base_url, body, table = _index_from_body(cached, channel, subdir, where)
            with contextlib.suppress(OSError):
                _write_index(index_p, st["sha256"], base_url, body, table)
            return SubdirIndex(channel, subdir, where, base_url, body, table)

        if rebuild or offline:
            if st.get("missing"):
                return None
            got = from_cache()
            if got is None:
                if rebuild:
                    raise ChannelError(f"damaged repodata cache for {canon}: run again online")
                raise ChannelError(f"offline build: no cached repodata for {canon} (run once online to fill the cache)")
            return got
        outcome, where, body, new_st = _conditional_get(channel, subdir, session, st,
                                                        idx is not None or cached is not None)
        if outcome == "not-modified":
            got = from_cache()
            assert got is not None
            _write_state(state_p, new_st)
            return got
        if outcome == "missing":
            _write_state(state_p, new_st)
            data_p.unlink(missing_ok=True)
            index_p.unlink(missing_ok=True)
            return None
        assert body is not None
        digest = hashlib.sha256(body).hexdigest()
        base_url, ibody, table = _index_from_body(body, channel, subdir, where)  # only usable repodata is cached
        with atomic_write(data_p) as f:
            f.write(body)
        del body
        _write_index(index_p, digest, base_url, ibody, table)
        new_st.update(sha256=digest, size=data_p.stat().st_size)
        _write_state(state_p, new_st)
        return SubdirIndex(channel, subdir, where, base_url, ibody, table)


def _subdir_index(channel: Channel, subdir: str, session: requests.Session, offline: bool, *,
                  rebuild: bool = False) -> SubdirIndex | None:
    if channel.is_local:
        try:
            return _local_index(channel, subdir, rebuild=rebuild)
        except OSError as e:
            raise ChannelError(f"cannot use the repodata cache {cache_dir('repodata')} for {channel.url}: "
                               f"{e.strerror or e}") from None
    if channel.url.startswith(("http://", "https://")):
        try:
            return _http_index(channel, subdir, session, offline or is_offline(session), rebuild=rebuild)
        except requests.RequestException as e:
            raise ChannelError(f"cannot reach channel {channel.url}: {describe_error(e)}") from None
        except OSError as e:
            raise ChannelError(f"cannot use the repodata cache {cache_dir('repodata')} for {channel.url}: "
                               f"{e.strerror or e}") from None
    raise ChannelError(f"unsupported channel URL {redact_url(channel.url)}")


def load_channel_indexes(channels: Sequence[Channel], subdir: str, session: requests.Session, *,
                         offline: bool = False, jobs: int = 8,
                         names: Sequence[str] | None = None) -> list[Mapping[str, list[PackageRecord]]]:
    """Like :func:`load_channels`, but per channel a lazy ``name -> records`` mapping (:class:`ChannelIndex`).

    Same fetching, caching and errors; the difference is what is parsed: a subdir's JSON is only cut into
    entries grouped by name (and that grouping cached next to the repodata), and a name's records are made and
    validated when the solver first asks for it. An unchanged channel opens from the cached index without
    reading its JSON. ``solver.solve`` takes these mappings as channels. With ``names`` (the requested package
    names) channels with CEP-16 sharded repodata go through ``shards.py`` as in :func:`load_channels` (then the
    result holds plain record lists, which ``solve`` takes as well).
    """
    if names is not None:
        from .shards import load_sharded

        sharded = load_sharded(channels, subdir, session, names, offline=offline, jobs=jobs)
        if sharded is not None:
            return list(sharded)
    out: list[Mapping[str, list[PackageRecord]]] = []
    for channel, subdirs, parts in _fan_out(channels, subdir, jobs,
                                            lambda c, s: _subdir_index(c, s, session, offline)):

        def reopen(j: int, channel: Channel = channel) -> SubdirIndex | None:
            return _subdir_index(channel, subdirs[j], session, offline, rebuild=True)

        out.append(ChannelIndex(channel, parts, reopen))
    return out
