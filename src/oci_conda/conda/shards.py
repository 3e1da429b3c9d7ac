"""CEP-16 sharded repodata: ``<subdir>/repodata_shards.msgpack.zst`` maps each package name to the sha256 of its
shard (``<shards_base_url><sha256>.msgpack.zst``, zstd-compressed msgpack holding that name's ``packages`` and
``packages.conda``). A solve fetches only the shards of names its request can reach through ``depends``.

Shards are content-addressed, so a cached shard is never asked for again; the shard index is revalidated like
repodata (ETag / Last-Modified), and a channel without one is remembered for a while so it costs no extra request.
Channels (or subdirs) without a shard index are loaded whole, as before.
"""

from __future__ import annotations

import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urljoin

import msgpack
import orjson
import requests
import zstandard

from ..cache import atomic_write, cache_dir, file_lock
from ..errors import ChannelError
from ..http import OfflineError, describe_error, is_offline
from ..credentials import redact_url
from .channel import Channel
from .records import PackageRecord

INDEX_NAME = "repodata_shards.msgpack.zst"
RECHECK_MISSING_AFTER = 24 * 3600
MAX_DECOMPRESSED = 1 << 30
_NAME_RE = re.compile(r"^\s*([^\s\[<>=!~,|;]+)")


@dataclass(frozen=True)
class ShardIndex:
    channel: Channel
    subdir: str
    base_url: str | None  # CEP-15 base_url for package files ('' or absent: the subdir)
    shards_url: str  # where shards live (with credentials; never shown)
    shards: dict[str, str]  # name -> sha256 hex


def _unpack(body: bytes, where: str) -> Any:
    try:
        raw = zstandard.ZstdDecompressor().decompress(body, max_output_size=MAX_DECOMPRESSED)
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (zstandard.ZstdError, msgpack.UnpackException, ValueError) as e:
        raise ChannelError(f"invalid sharded repodata at {redact_url(where)}: {e}") from None


def _parse_index(body: bytes, channel: Channel, subdir: str, where: str) -> ShardIndex:
    doc = _unpack(body, where)
    if not isinstance(doc, dict) or not isinstance(doc.get("shards"), dict):
        raise ChannelError(f"invalid sharded repodata at {redact_url(where)}: no 'shards' map")
    info = doc.get("info") or {}
    shards = {}
    for name, h in doc["shards"].items():
        if not isinstance(name, str) or not isinstance(h, (bytes, str)):
            raise ChannelError(f"invalid sharded repodata at {redact_url(where)}: bad entry for {str(name)[:80]!r}")
        shards[name] = h.hex() if isinstance(h, bytes) else h.lower()
    subdir_auth = channel.subdir_url(subdir, auth=True) + "/"
    shards_url = urljoin(subdir_auth, info.get("shards_base_url") or "")
    if not shards_url.endswith("/"):
        shards_url += "/"
    return ShardIndex(channel, subdir, info.get("base_url") or None, shards_url, shards)


def _state_paths(url: str) -> tuple[Path, Path, Path]:
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    d = cache_dir("repodata", "shards")
    return d / f"{key}.state.json", d / f"{key}.index", d / f"{key}.lock"


def fetch_index(channel: Channel, subdir: str, session: requests.Session, offline: bool) -> ShardIndex | None:
    """The shard index of one channel subdir, or None when it has none."""
    where = f"{channel.subdir_url(subdir)}/{INDEX_NAME}"
    if channel.is_local:
        assert channel.path is not None
        p = channel.path / subdir / INDEX_NAME
        if not p.is_file():
            return None
        return _parse_index(p.read_bytes(), channel, subdir, where)
    state_p, data_p, lock_p = _state_paths(where)
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
            return _parse_index(cached, channel, subdir, where) if cached is not None else None
        if st.get("missing") and now - float(st["missing"]) < RECHECK_MISSING_AFTER:
            return None
        headers = {}
        if cached is not None:
            if st.get("etag"):
                headers["If-None-Match"] = st["etag"]
            if st.get("last_modified"):
                headers["If-Modified-Since"] = st["last_modified"]
        try:
            r = session.get(f"{channel.subdir_url(subdir, auth=True)}/{INDEX_NAME}", headers=headers)
        except OfflineError:
            return None
        except requests.RequestException as e:
            raise ChannelError(f"cannot reach channel {channel.url}: {describe_error(e)}") from None
        with r:
            if r.status_code == 304 and cached is not None:
                return _parse_index(cached, channel, subdir, where)
            if r.status_code in (403, 404):
                with atomic_write(state_p) as f:
                    f.write(orjson.dumps({"missing": now}))
                return None
            if r.status_code != 200:
                raise ChannelError(f"channel {channel.url}: HTTP {r.status_code} for {where}")
            body = r.content
            idx = _parse_index(body, channel, subdir, where)
            with atomic_write(data_p) as f:
                f.write(body)
            with atomic_write(state_p) as f:
                f.write(orjson.dumps({"sha256": hashlib.sha256(body).hexdigest(), "etag": r.headers.get("ETag"),
                                      "last_modified": r.headers.get("Last-Modified"), "fetched": now}))
            return idx


def fetch_shard(idx: ShardIndex, name: str, session: requests.Session, offline: bool) -> list[PackageRecord]:
    """Records of ``name`` in one channel subdir, from its shard (verified against the index's sha256)."""
    from .repodata import records_from_repodata

    digest = idx.shards[name]
    fn = f"{digest}.msgpack.zst"
    where = f"{idx.channel.subdir_url(idx.subdir)}/{fn}"
    if idx.channel.is_local:
        assert idx.channel.path is not None
        try:
            body = (idx.channel.path / idx.subdir / fn).read_bytes()
        except OSError as e:
            raise ChannelError(f"cannot read shard of {name} at {where}: {e.strerror}") from None
        if idx.shards_url != idx.channel.subdir_url(idx.subdir, auth=True) + "/":
            raise ChannelError(f"{where}: local channels with a shards_base_url elsewhere are not supported")
    else:
        cached = cache_dir("repodata", "shards") / fn
        try:
            body = cached.read_bytes()
            if hashlib.sha256(body).hexdigest() != digest:
                body = None
        except OSError:
            body = None
        if body is None:
            if offline:
                raise ChannelError(f"offline build: shard of {name} from {idx.channel.url}/{idx.subdir} is not cached")
            try:
                r = session.get(idx.shards_url + fn)
            except OfflineError:
                raise ChannelError(f"offline build: shard of {name} from {idx.channel.url}/{idx.subdir} "
                                   "is not cached") from None
            except requests.RequestException as e:
                raise ChannelError(f"cannot fetch shard of {name} from {idx.channel.url}: {describe_error(e)}") from None
            with r:
                if r.status_code != 200:
                    raise ChannelError(f"channel {idx.channel.url}: HTTP {r.status_code} for the shard of {name}")
                body = r.content
            if hashlib.sha256(body).hexdigest() != digest:
                raise ChannelError(f"shard of {name} from {idx.channel.url}/{idx.subdir} does not match its sha256")
            with atomic_write(cached) as f:
                f.write(body)
    if hashlib.sha256(body).hexdigest() != digest:
        raise ChannelError(f"shard of {name} at {where} does not match its sha256")
    doc = _unpack(body, where)
    if not isinstance(doc, dict):
        raise ChannelError(f"invalid shard at {redact_url(where)}")
    obj: dict[str, Any] = {"info": {"subdir": idx.subdir}}
    if idx.base_url:
        obj["info"]["base_url"] = idx.base_url
    for key in ("packages", "packages.conda"):
        entries = {}
        for pfn, raw in (doc.get(key) or {}).items():
            if isinstance(raw, dict):
                raw = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in raw.items()}
            entries[pfn] = raw
        obj[key] = entries
    return records_from_repodata(obj, idx.channel, idx.subdir, where)


def dep_name(dep: str) -> str | None:
    m = _NAME_RE.match(dep)
    if not m:
        return None
    return m.group(1).split("::")[-1]


def load_sharded(channels: Sequence[Channel], subdir: str, session: requests.Session, names: Sequence[str], *,
                 offline: bool = False, jobs: int = 8) -> list[list[PackageRecord]] | None:
    """Like ``repodata.load_channels`` but through shard indexes: only names reachable from ``names`` are fetched.

    Returns None when no channel subdir has a shard index (then the caller loads whole repodata as before).
    """
    from .repodata import _load_subdir, _merge

    offline = offline or is_offline(session)
    subdirs = [subdir] if subdir == "noarch" else [subdir, "noarch"]
    tasks = [(c, s) for c in channels for s in subdirs]
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks) or 1)), thread_name_prefix="shards") as pool:
        indexes = list(pool.map(lambda t: fetch_index(t[0], t[1], session, offline), tasks))
        if not any(indexes):
            return None
        whole: dict[int, list[PackageRecord] | None] = {}
        plain = [i for i, idx in enumerate(indexes) if idx is None]
        for i, recs in zip(plain, pool.map(lambda i: _load_subdir(tasks[i][0], tasks[i][1], session, offline), plain)):
            whole[i] = recs
        by_name_whole: dict[str, list[PackageRecord]] = {}
        for recs in whole.values():
            for r in recs or ():
                by_name_whole.setdefault(r.name, []).append(r)
        got: dict[int, list[PackageRecord]] = {i: [] for i in range(len(tasks))}
        seen: set[str] = set()
        todo = {n for n in names if n and not n.startswith("__")}
        while todo:
            seen |= todo
            jobs_ = [(i, n) for n in sorted(todo) for i, idx in enumerate(indexes) if idx is not None and n in idx.shards]
            results = list(pool.map(lambda t: fetch_shard(indexes[t[0]], t[1], session, offline), jobs_))
            nxt: set[str] = set()
            for (i, _n), recs in zip(jobs_, results):
                got[i].extend(recs)
                for r in recs:
                    nxt.update(d for d in map(dep_name, r.depends) if d)
            for n in todo:
                for r in by_name_whole.get(n, ()):
                    nxt.update(d for d in map(dep_name, r.depends) if d)
            todo = {n for n in nxt - seen if not n.startswith("__")}
    out: list[list[PackageRecord]] = []
    for ci, channel in enumerate(channels):
        parts = []
        present = False
        for si in range(len(subdirs)):
            i = ci * len(subdirs) + si
            if indexes[i] is not None:
                present = True
                parts.append(got[i])
            elif whole.get(i) is not None:
                present = True
                parts.append(whole[i])
        if not present:
            raise ChannelError(f"{channel.url} is not a conda channel: no repodata for {' or '.join(subdirs)}")
        merged: dict[str, PackageRecord] = {}
        for part in parts:
            for rec in part:
                _merge(merged, rec)
        out.append(list(merged.values()))
    return out
