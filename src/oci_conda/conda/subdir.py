"""Where a channel subdir's records come from: a :class:`SubdirSource` answers "which names" and "the records of
this name", whatever the transport.

Three implementations: :class:`LocalSubdir` (a ``file://`` channel, read in place), :class:`RemoteSubdir` (a whole
``repodata.json[.zst]`` over HTTP, cached) and :class:`ShardedSubdir` (CEP-16 sharded repodata: only the shards of
the names asked for are fetched). The first two cut the document into a per-name index (``repodata.py``), so a
name's records are made on first use. HTTP revalidation (ETag / Last-Modified) goes through the one
:func:`conditional_get`. As conda does (its ``local_repodata_ttl`` setting, read here from
``$CONDA_LOCAL_REPODATA_TTL``), a cached copy younger than the server's ``Cache-Control: max-age`` is used without
asking again: ``1`` (the default) follows the server, ``0`` revalidates on every build, ``N`` > 1 trusts a copy for
``N`` seconds whatever the server said.

Caches under ``cache_dir("repodata")``: per subdir URL a ``<key>.json`` (the decompressed index), a
``<key>.index`` and a ``<key>.state.json`` (url, etag, last_modified, variant, sha256, fetched, ...), so an
unchanged channel costs one 304; shard indexes and shards (content-addressed, never asked for again) under
``repodata/shards/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol

import orjson

from ..cache import atomic_write, cache_dir, file_lock
from ..credentials import redact_url
from ..errors import ChannelError
from ..http import OfflineError, describe_error, is_offline, request_errors
from .channel import Channel
from .records import PackageRecord
from .repodata import (
    StaleIndex,
    SubdirIndex,
    decompress,
    fixed_base,
    index_from_body,
    index_of,
    open_index,
    records_from_repodata,
    resolve_base,
    write_index,
)

if TYPE_CHECKING:
    import requests

#: conda's setting (``local_repodata_ttl``) as the environment spells it; see :func:`repodata_ttl`.
TTL_ENV = "CONDA_LOCAL_REPODATA_TTL"
#: How long we believe a channel has no ``repodata.json.zst`` before asking again.
RECHECK_ZST_AFTER = 7 * 24 * 3600
STATE_VERSION = 1
SHARD_INDEX_NAME = "repodata_shards.msgpack.zst"
#: How long we believe a subdir has no shard index before asking again.
RECHECK_SHARDS_AFTER = 24 * 3600
MAX_SHARD_SIZE = 256 << 20

__all__ = [
    "TTL_ENV",
    "Fetched",
    "LocalSubdir",
    "RemoteSubdir",
    "ShardedSubdir",
    "SubdirSource",
    "cache_max_age",
    "conditional_get",
    "is_fresh",
    "open_whole",
    "repodata_ttl",
]


class SubdirSource(Protocol):
    """One channel subdir as the solver sees it: the names it has, and a name's validated records."""

    channel: Channel
    subdir: str

    def names(self) -> Iterable[str]: ...

    def __contains__(self, name: object) -> bool: ...

    def records(self, name: str) -> list[PackageRecord]: ...

    @property
    def records_made(self) -> int: ...


# ---------------------------------------------------------------- the one conditional GET


@dataclass(frozen=True)
class Fetched:
    """What a (conditional) GET answered: the status, the body of a 200, and the validators to store with it."""

    status: int
    body: bytes | None
    etag: str | None
    last_modified: str | None
    max_age: int | None = None  # seconds the answer stays fresh (Cache-Control); None: the header was absent

    def lifetime(self, stored: Mapping[str, Any]) -> int:
        """How long the copy stays fresh after this answer: its own max-age, or for a 304 without Cache-Control
        the one stored with the copy (a 304 updates only the headers it carries, RFC 9111 4.3.4)."""
        if self.max_age is not None:
            return self.max_age
        old = stored.get("max_age", 0) if self.status == 304 else 0
        return old if isinstance(old, int) else 0


def cache_max_age(cache_control: str | None) -> int | None:
    """Seconds a response stays fresh by its ``Cache-Control`` header: ``max-age=N``; 0 with ``no-cache`` /
    ``no-store`` (which say "ask every time") or without a max-age; None without the header."""
    if cache_control is None:
        return None
    age = 0
    for part in (cache_control or "").split(","):
        key, _, value = part.strip().partition("=")
        key = key.strip().lower()
        if key in ("no-cache", "no-store"):
            return 0
        if key == "max-age":
            value = value.strip().strip('"')
            age = int(value) if value.isdigit() else 0
    return age


def repodata_ttl(env: Mapping[str, str] | None = None) -> int:
    """conda's ``local_repodata_ttl``: 1 (default) follow the server's max-age, 0 always revalidate, N > 1 trust a
    cached copy for N seconds. A value that is not a whole number is a ChannelError naming the variable."""
    raw = (os.environ if env is None else env).get(TTL_ENV, "").strip().lower()
    if not raw:
        return 1
    if raw in ("true", "yes", "false", "no"):
        return 1 if raw in ("true", "yes") else 0
    if not raw.isdigit():
        raise ChannelError(f"${TTL_ENV}={raw!r}: expected a number of seconds (0: always revalidate repodata, "
                           "1: follow the server's Cache-Control max-age)")
    return int(raw)


def is_fresh(st: Mapping[str, Any], now: float, ttl: int) -> bool:
    """Whether a cached copy fetched (or revalidated) at ``st["fetched"]`` may be used without asking the server."""
    if ttl == 0:
        return False
    limit = ttl if ttl > 1 else st.get("max_age", 0)
    fetched = st.get("fetched")
    if not isinstance(limit, int) or not isinstance(fetched, (int, float)):
        return False
    return 0 <= now - fetched < limit


def conditional_get(session: requests.Session, url: str, where: str, channel: Channel, *,
                    etag: str | None = None, last_modified: str | None = None) -> Fetched:
    """GET ``url`` (which may carry credentials; ``where`` is its credential-free name), revalidating a cached
    copy with ``If-None-Match`` / ``If-Modified-Since`` when its validators are given.

    A 304 means "use your copy". Transport failures are a :class:`ChannelError` naming the channel;
    :class:`OfflineError` is left to the caller (whether a cached copy suffices is its call).
    """
    import requests

    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        r = session.get(url, headers=headers)
    except OfflineError:
        raise
    except requests.RequestException as e:
        raise ChannelError(f"cannot reach channel {channel.url}: {describe_error(e)}") from None
    with r:
        body = None
        if r.status_code == 200:
            try:
                body = r.content
            except requests.RequestException as e:
                raise ChannelError(f"cannot read repodata from {where}: {describe_error(e)}") from None
        return Fetched(r.status_code, body, r.headers.get("ETag"), r.headers.get("Last-Modified"),
                       cache_max_age(r.headers.get("Cache-Control")))


# ---------------------------------------------------------------- whole repodata: the HTTP cache

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



def _get_repodata(channel: Channel, subdir: str, session: requests.Session, st: Mapping[str, Any],
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
        where = f"{canon}/{name}"
        conditional = have_copy and st.get("variant") == variant
        try:
            r = conditional_get(session, f"{auth}/{name}", where, channel,
                                etag=st.get("etag") if conditional else None,
                                last_modified=st.get("last_modified") if conditional else None)
        except OfflineError:
            raise ChannelError(f"offline build: no cached repodata for {canon}") from None
        if r.status == 304 and conditional:
            return "not-modified", where, None, dict(st, fetched=now, max_age=r.lifetime(st))
        if variant == "zst" and r.status in (403, 404):
            if r.status == 404:
                new_st["zst_missing"] = now
            continue
        if r.status == 404:
            return "missing", where, None, dict(new_st, missing=True)
        if r.status in (401, 403):
            raise ChannelError(f"access denied (HTTP {r.status}) to channel {channel.url} at {where}")
        if r.status != 200:
            raise ChannelError(f"channel {channel.url}: HTTP {r.status} for {where}")
        assert r.body is not None
        new_st.update(variant=variant, etag=r.etag, last_modified=r.last_modified, max_age=r.lifetime(st))
        if variant == "zst":
            new_st.pop("zst_missing", None)
        return "fetched", where, decompress(r.body, where), new_st
    raise AssertionError("unreachable")  # pragma: no cover


# -- local channels: the index is cached by the repodata file's identity (path, size, mtime, inode)

def _read_local(p: Path, fname: str) -> bytes | mmap.mmap:
    """A local repodata file: a plain one mapped (the index points into it; nothing is copied), a ``.zst`` read.
    The map is private (copy-on-write): a forked worker of the cut writes a few bytes of its piece in place, in
    its own copy of a page (nothing here writes to it, and the file is never written)."""
    with open(p, "rb") as f:
        if fname == "repodata.json" and os.fstat(f.fileno()).st_size:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        return f.read()


def _local_index(channel: Channel, subdir: str, *, rebuild: bool = False, fast: bool = True,
                 jobs: int = 1) -> SubdirIndex | None:
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
            got = open_index(index_p, key, channel, subdir, where, external)
            if got is not None:
                return got
        with file_lock(d / f"{stem}.lock"):
            if not rebuild:
                got = open_index(index_p, key, channel, subdir, where, external)
                if got is not None:
                    return got
            try:
                body = _read_local(p, fname)
            except OSError as e:
                raise ChannelError(f"cannot read {p}: {e.strerror}") from None
            got = index_from_body(decompress(body, where), channel, subdir, where, fast=fast, jobs=jobs)
            with contextlib.suppress(OSError):  # a read-only cache only costs the next build the same scan
                write_index(index_p, key, got, embed=external is None or not got.own)
        return index_of(got, channel, subdir, where)
    return None


# -- HTTP channels: the index sits next to the cached JSON, keyed by the JSON's sha256 in the state file

def _http_index(channel: Channel, subdir: str, session: requests.Session, offline: bool, *,
                rebuild: bool = False, fast: bool = True, jobs: int = 1) -> SubdirIndex | None:
    canon = channel.subdir_url(subdir)
    state_p, data_p, lock_p = _cache_files(canon)
    index_p = data_p.with_suffix(".index")
    with file_lock(lock_p):
        st = _read_state(state_p, canon)
        where = f"{canon}/{'repodata.json.zst' if st.get('variant') == 'zst' else 'repodata.json'}"
        idx = cached = None
        if not st.get("missing") and st.get("sha256") and not rebuild:
            idx = open_index(index_p, st["sha256"], channel, subdir, where)
        if idx is None:
            cached = _read_cached(st, data_p)  # no (current) index: the JSON it is made from, if still good

        def from_cache() -> SubdirIndex | None:
            if idx is not None:
                return idx
            if cached is None:
                return None
            got = index_from_body(cached, channel, subdir, where, fast=fast, jobs=jobs)
            with contextlib.suppress(OSError):
                write_index(index_p, st["sha256"], got)
            return index_of(got, channel, subdir, where)

        if rebuild or offline:
            if st.get("missing"):
                return None
            got = from_cache()
            if got is None:
                if rebuild:
                    raise ChannelError(f"damaged repodata cache for {canon}: run again online")
                raise ChannelError(f"offline build: no cached repodata for {canon} (run once online to fill the cache)")
            return got
        if (idx is not None or cached is not None) and is_fresh(st, time.time(), repodata_ttl()):
            got = from_cache()  # younger than the server said it stays fresh: not asked again (as conda does)
            assert got is not None
            return got
        outcome, where, body, new_st = _get_repodata(channel, subdir, session, st,
                                                        idx is not None or cached is not None)
        if outcome == "not-modified":
            got = from_cache()
            assert got is not None
            if new_st.get("max_age") or st.get("max_age"):  # only a freshness lifetime makes its start matter
                _write_state(state_p, new_st)
            return got
        if outcome == "missing":
            _write_state(state_p, new_st)
            data_p.unlink(missing_ok=True)
            index_p.unlink(missing_ok=True)
            return None
        assert body is not None
        digest = hashlib.sha256(body).hexdigest()
        with atomic_write(data_p) as f:
            f.write(body)
            f.flush()
            del body
            # cut from the copy just written, mapped copy-on-write (the cut's workers write a few bytes of their
            # piece in place, nothing is copied); only usable repodata is cached: a failure here leaves the copy
            # cached before untouched
            got = index_from_body(_read_local(Path(f.name), "repodata.json"), channel, subdir, where, jobs=jobs)
        write_index(index_p, digest, got)  # self-contained: a warm open does not read the JSON
        new_st.update(sha256=digest, size=data_p.stat().st_size)
        _write_state(state_p, new_st)
        # read back through the index file (mapped), so the inflated body (hundreds of MB) is not held for the build
        return open_index(index_p, digest, channel, subdir, where) or index_of(got, channel, subdir, where)



def _guarded(channel: Channel, load: Callable[[], SubdirIndex | None]) -> SubdirIndex | None:
    """``load()`` with cache and transport failures turned into one line naming the channel."""
    try:
        return load()
    except request_errors() as e:
        raise ChannelError(f"cannot reach channel {channel.url}: {describe_error(e)}") from None
    except OSError as e:
        raise ChannelError(f"cannot use the repodata cache {cache_dir('repodata')} for {channel.url}: "
                           f"{e.strerror or e}") from None


class _IndexedSubdir:
    """A subdir read from a whole repodata document through its per-name index. An index file found damaged
    while reading (:class:`StaleIndex`) is rebuilt once from the document, and the lookup repeated."""

    def __init__(self, channel: Channel, subdir: str, index: SubdirIndex) -> None:
        self.channel, self.subdir = channel, subdir
        self._index: SubdirIndex | None = index

    def _rebuild(self, fast: bool) -> SubdirIndex | None:
        raise NotImplementedError

    def names(self) -> Iterable[str]:
        return () if self._index is None else self._index.names()

    def __contains__(self, name: object) -> bool:
        return self._index is not None and name in self._index

    def records(self, name: str) -> list[PackageRecord]:
        if self._index is None:
            return []
        try:
            return self._index.records(name)
        except StaleIndex:
            pass
        # rebuilt from the document; should the skeleton cut itself not read the entry back (a quote inside its
        # key), the exact cut
        for fast in (True, False):
            self._index = self._rebuild(fast)
            if self._index is None or name not in self._index:
                return []
            try:
                return self._index.records(name)
            except StaleIndex:
                if not fast:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def records_made(self) -> int:
        return 0 if self._index is None else self._index.records_made


class LocalSubdir(_IndexedSubdir):
    """A ``file://`` channel's subdir, read in place; its index is cached by the file's identity."""

    @classmethod
    def open(cls, channel: Channel, subdir: str, jobs: int = 1) -> LocalSubdir | None:
        got = _guarded(channel, lambda: _local_index(channel, subdir, jobs=jobs))
        return None if got is None else cls(channel, subdir, got)

    def _rebuild(self, fast: bool) -> SubdirIndex | None:
        return _guarded(self.channel, lambda: _local_index(self.channel, self.subdir, rebuild=True, fast=fast))


class RemoteSubdir(_IndexedSubdir):
    """An HTTP channel's subdir from its whole ``repodata.json[.zst]``, cached and revalidated."""

    def __init__(self, channel: Channel, subdir: str, index: SubdirIndex, session: requests.Session,
                 offline: bool) -> None:
        super().__init__(channel, subdir, index)
        self._session, self._offline = session, offline

    @classmethod
    def open(cls, channel: Channel, subdir: str, session: requests.Session, offline: bool,
             jobs: int = 1) -> RemoteSubdir | None:
        got = _guarded(channel, lambda: _http_index(channel, subdir, session, offline, jobs=jobs))
        return None if got is None else cls(channel, subdir, got, session, offline)

    def _rebuild(self, fast: bool) -> SubdirIndex | None:
        return _guarded(self.channel, lambda: _http_index(self.channel, self.subdir, self._session, self._offline,
                                                          rebuild=True, fast=fast))


def open_whole(channel: Channel, subdir: str, session: requests.Session,
               offline: bool, jobs: int = 1) -> LocalSubdir | RemoteSubdir | None:
    """The whole-repodata source of one channel subdir, or None when the channel has no such subdir. ``jobs``
    bounds the forked workers that cut a large document on a cold open."""
    if channel.is_local:
        return LocalSubdir.open(channel, subdir, jobs)
    if channel.url.startswith(("http://", "https://")):
        return RemoteSubdir.open(channel, subdir, session, offline or is_offline(session), jobs)
    raise ChannelError(f"unsupported channel URL {redact_url(channel.url)}")


# ---------------------------------------------------------------- CEP-16 sharded repodata
#
# ``<subdir>/repodata_shards.msgpack.zst`` maps each package name to the sha256 of its shard
# (``<shards_base_url><sha256>.msgpack.zst``, zstd-compressed msgpack holding that name's ``packages`` and
# ``packages.conda``). The shard index is revalidated like repodata; a subdir without one is remembered for a while
# so it costs no extra request.


def _unpack(body: bytes, where: str) -> Any:
    import msgpack
    import zstandard

    try:
        raw = decompress(body, where, MAX_SHARD_SIZE)  # inflated under a cap as it streams
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (zstandard.ZstdError, msgpack.UnpackException, ValueError) as e:
        raise ChannelError(f"invalid sharded repodata at {redact_url(where)}: {e}") from None


@dataclass(frozen=True)
class _ShardIndex:
    base_url: str | None  # CEP-15 base_url for package files ('' or absent: the subdir)
    shards_url: str  # where shards live (with credentials; never shown)
    shards: dict[str, str]  # name -> sha256 hex


def _parse_shard_index(body: bytes, channel: Channel, subdir: str, where: str) -> _ShardIndex:
    doc = _unpack(body, where)
    if not isinstance(doc, dict) or not isinstance(doc.get("shards"), dict):
        raise ChannelError(f"invalid sharded repodata at {redact_url(where)}: no 'shards' map")
    info = doc.get("info") or {}
    shards = {}
    for name, h in doc["shards"].items():
        if not isinstance(name, str) or not isinstance(h, (bytes, str)):
            raise ChannelError(f"invalid sharded repodata at {redact_url(where)}: bad entry for {str(name)[:80]!r}")
        shards[name] = h.hex() if isinstance(h, bytes) else h.lower()
    shards_base = info.get("shards_base_url") or ""
    if not isinstance(shards_base, str):
        raise ChannelError(f"invalid sharded repodata at {redact_url(where)}: 'shards_base_url' is not a string")
    shards_url = resolve_base(channel, subdir, shards_base, where, "info.shards_base_url")
    base_url = info.get("base_url") or None
    if base_url is not None:
        fixed_base(info, channel, subdir, where)  # a base_url that switches scheme fails now
    if not shards_url.endswith("/"):
        shards_url += "/"
    return _ShardIndex(base_url, shards_url, shards)


def _fetch_shard_index(channel: Channel, subdir: str, session: requests.Session,
                       offline: bool) -> _ShardIndex | None:
    """The shard index of one channel subdir, or None when it has none."""
    where = f"{channel.subdir_url(subdir)}/{SHARD_INDEX_NAME}"
    if channel.is_local:
        assert channel.path is not None
        p = channel.path / subdir / SHARD_INDEX_NAME
        if not p.is_file():
            return None
        return _parse_shard_index(p.read_bytes(), channel, subdir, where)
    key = hashlib.sha256(where.encode()).hexdigest()[:32]
    d = cache_dir("repodata", "shards")
    state_p, data_p, lock_p = d / f"{key}.state.json", d / f"{key}.index", d / f"{key}.lock"
    with file_lock(lock_p):
        try:
            st = orjson.loads(state_p.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            st = {}
        cached = None
        if st.get("sha256"):
            try:
                b = data_p.read_bytes()
                cached = b if hashlib.sha256(b).hexdigest() == st["sha256"] else None
            except OSError:
                cached = None
        now = time.time()
        if offline:
            return _parse_shard_index(cached, channel, subdir, where) if cached is not None else None
        if st.get("missing") and now - float(st["missing"]) < RECHECK_SHARDS_AFTER:
            return None
        if cached is not None and is_fresh(st, now, repodata_ttl()):
            return _parse_shard_index(cached, channel, subdir, where)
        try:
            r = conditional_get(session, f"{channel.subdir_url(subdir, auth=True)}/{SHARD_INDEX_NAME}", where,
                                channel, etag=st.get("etag") if cached is not None else None,
                                last_modified=st.get("last_modified") if cached is not None else None)
        except OfflineError:
            return None
        if r.status == 304 and cached is not None:
            if r.lifetime(st):  # only a freshness lifetime makes the time of this answer matter
                with atomic_write(state_p) as f:
                    f.write(orjson.dumps(dict(st, fetched=now, max_age=r.lifetime(st))))
            return _parse_shard_index(cached, channel, subdir, where)
        if r.status in (403, 404):
            with atomic_write(state_p) as f:
                f.write(orjson.dumps({"missing": now}))
            return None
        if r.status != 200:
            raise ChannelError(f"channel {channel.url}: HTTP {r.status} for {where}")
        assert r.body is not None
        idx = _parse_shard_index(r.body, channel, subdir, where)
        with atomic_write(data_p) as f:
            f.write(r.body)
        with atomic_write(state_p) as f:
            f.write(orjson.dumps({"sha256": hashlib.sha256(r.body).hexdigest(), "etag": r.etag,
                                  "last_modified": r.last_modified, "fetched": now, "max_age": r.lifetime(st)}))
        return idx


class ShardedSubdir:
    """A subdir with a CEP-16 shard index: a name's records come from its own shard, fetched on first use
    (verified against the index's sha256, cached by digest). Names of virtual packages (``__*``) are never
    looked up in shards."""

    def __init__(self, channel: Channel, subdir: str, index: _ShardIndex, session: requests.Session,
                 offline: bool) -> None:
        self.channel, self.subdir = channel, subdir
        self._index = index
        self._session, self._offline = session, offline
        self._got: dict[str, list[PackageRecord]] = {}
        self.records_made = 0

    @classmethod
    def open(cls, channel: Channel, subdir: str, session: requests.Session, offline: bool) -> ShardedSubdir | None:
        """The sharded source of one channel subdir, or None when it publishes no shard index."""
        offline = offline or is_offline(session)
        idx = _fetch_shard_index(channel, subdir, session, offline)
        return None if idx is None else cls(channel, subdir, idx, session, offline)

    def names(self) -> Iterable[str]:
        return [n for n in self._index.shards if not n.startswith("__")]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._index.shards and not name.startswith("__")

    def records(self, name: str) -> list[PackageRecord]:
        got = self._got.get(name)
        if got is None:
            got = self._got[name] = self._fetch(name)
            self.records_made += len(got)
        return got

    def _fetch(self, name: str) -> list[PackageRecord]:
        idx, channel, subdir = self._index, self.channel, self.subdir
        digest = idx.shards[name]
        fn = f"{digest}.msgpack.zst"
        where = f"{channel.subdir_url(subdir)}/{fn}"
        if channel.is_local:
            assert channel.path is not None
            try:
                body = (channel.path / subdir / fn).read_bytes()
            except OSError as e:
                raise ChannelError(f"cannot read shard of {name} at {where}: {e.strerror}") from None
            if idx.shards_url != channel.subdir_url(subdir, auth=True) + "/":
                raise ChannelError(f"{where}: local channels with a shards_base_url elsewhere are not supported")
        else:
            body = self._cached_or_fetched(name, fn, digest)
        if hashlib.sha256(body).hexdigest() != digest:
            raise ChannelError(f"shard of {name} at {where} does not match its sha256")
        doc = _unpack(body, where)
        if not isinstance(doc, dict):
            raise ChannelError(f"invalid shard at {redact_url(where)}")
        obj: dict[str, Any] = {"info": {"subdir": subdir}}
        if idx.base_url:
            obj["info"]["base_url"] = idx.base_url
        for key in ("packages", "packages.conda"):
            entries = {}
            for pfn, raw in (doc.get(key) or {}).items():
                if isinstance(raw, dict):
                    raw = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in raw.items()}
                entries[pfn] = raw
            obj[key] = entries
        return records_from_repodata(obj, channel, subdir, where)

    def _cached_or_fetched(self, name: str, fn: str, digest: str) -> bytes:
        import requests

        channel = self.channel
        cached = cache_dir("repodata", "shards") / fn
        try:
            body: bytes | None = cached.read_bytes()
            if hashlib.sha256(body).hexdigest() != digest:  # type: ignore[arg-type]
                body = None
        except OSError:
            body = None
        if body is not None:
            return body
        missing = f"offline build: shard of {name} from {channel.url}/{self.subdir} is not cached"
        if self._offline:
            raise ChannelError(missing)
        try:
            r = self._session.get(self._index.shards_url + fn)
        except OfflineError:
            raise ChannelError(missing) from None
        except requests.RequestException as e:
            raise ChannelError(f"cannot fetch shard of {name} from {channel.url}: {describe_error(e)}") from None
        with r:
            if r.status_code != 200:
                raise ChannelError(f"channel {channel.url}: HTTP {r.status_code} for the shard of {name}")
            body = r.content
        if hashlib.sha256(body).hexdigest() != digest:
            raise ChannelError(f"shard of {name} from {channel.url}/{self.subdir} does not match its sha256")
        with atomic_write(cached) as f:
            f.write(body)
        return body
