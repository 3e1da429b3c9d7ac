"""The repodata document: parse and validate ``repodata.json``, turn entries into records, and cut a document into
a per-name index (kept in one cache file) so that a name's records are made only when the solver asks for it.

Nothing here talks to the network or knows where a document came from (``subdir.py`` does); every way a document
can be wrong (bad JSON, wrong types) ends in a one-line :class:`ChannelError` naming the (credential-free) URL.
"""

from __future__ import annotations

import mmap
import operator
import os
import re
import struct
from dataclasses import dataclass
from collections import defaultdict, deque
from itertools import accumulate, compress, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, KeysView, Mapping
from urllib.parse import urljoin

import orjson

from ..cache import atomic_write
from ..credentials import redact_url
from ..errors import ChannelError
from .channel import Channel
from .records import PackageRecord
from .skeleton import Buffer, NameTable, cut, entries, locator_entries, pieces_for

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_EXTS = (".conda", ".tar.bz2")

#: The largest repodata.json we inflate (the biggest real channel subdirs are a few hundred MB): a small
#: ``repodata.json.zst`` that inflates to gigabytes is refused at this size while streaming, not after.
MAX_REPODATA = 1 << 30


# ---------------------------------------------------------------- parsing

def decompress(body: Buffer, where: str, cap: int = MAX_REPODATA) -> Buffer:
    """A zstd body inflated, at most ``cap`` bytes (checked as it streams); anything else is returned as is. The
    inflated body is the buffer it was inflated into (no second copy of a few hundred MB)."""
    import zstandard

    if body[:4] != ZSTD_MAGIC:  # already decoded (a server sent Content-Encoding) or plain JSON
        return body
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True) as r:
            while chunk := r.read(1 << 20):
                out += chunk
                if len(out) > cap:
                    raise ChannelError(f"repodata at {redact_url(where)} inflates to more than the {cap}-byte limit")
    except zstandard.ZstdError as e:
        raise ChannelError(f"corrupt zstd repodata at {redact_url(where)}: {e}") from None
    return out


def parse_document(body: bytes, where: str) -> dict[str, Any]:
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
    """Fast path of :func:`check_entry` (a big channel has ~10^6 entries): True when nothing is wrong."""
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


def check_entry(fn: Any, raw: Any) -> str | None:
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


def merge_record(into: dict[str, PackageRecord], rec: PackageRecord) -> None:
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
    fixed_base = resolve_base(channel, subdir, base_url, where, "info.base_url") if base_url is not None else None
    out: dict[str, PackageRecord] = {}
    for key in ("packages", "packages.conda"):
        for fn, raw in (obj.get(key) or {}).items():
            problem = check_entry(fn, raw)
            if problem:
                raise ChannelError(f"invalid repodata at {redact_url(where)}: package {str(fn)[:100]!r}: {problem}")
            if not fn.endswith(_EXTS):
                continue
            base = fixed_base or channel.subdir_url(subdir, auth=True)
            try:
                rec = PackageRecord.from_repodata(fn, raw, channel.url, subdir, base)
            except (KeyError, TypeError, ValueError) as e:
                raise ChannelError(f"invalid repodata at {redact_url(where)}: package {fn!r}: {e}") from None
            merge_record(out, rec)
    return list(out.values())


# ---------------------------------------------------------------- lazy per-name index (+ its warm cache)
#
# A big channel (conda-forge linux-64 + noarch: ~600k records) costs seconds to turn into PackageRecords, yet a
# request reaches a few hundred names. So a subdir is opened as a name -> entries index: the JSON is cut into its
# package entries without parsing them, and a name's entries become validated records on first access. The cut
# (a table per name of where its entries are) and the JSON are written to one index file in the cache, so a
# later build opens that file (a small name table; the rest is mmap'd and read per name) without parsing JSON.

INDEX_MAGIC = b"OCICIDX1"
INDEX_VERSION = 2
_SENTINEL = b'"\\u0000"'  # short: the marked-up document is parsed whole
_SENTINEL_STR = "\x00"
_HEAD = struct.Struct("<8sQ")
_NAME_RE = re.compile(rb'"name"[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"')
_GROUP1 = operator.methodcaller("group", 1)

#: name -> (file names, starts, ends) of its entries (``packages`` first, then ``packages.conda``), where
#: ``body[start:end]`` is an entry's JSON object; or, for a skeleton cut (``skeleton.py``), name -> entry numbers,
#: found again through the cut's locator.
Table = Mapping[str, Any]
Locator = dict[str, Any]  # a skeleton cut's (skeleton.py): plain JSON data


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


def scan(body: bytes) -> tuple[dict[str, Any], Table] | None:
    """``(info, table)`` of one repodata document, without parsing its package entries; None when the document
    is not shaped so that it can be cut safely (the caller then parses it whole).

    Entries are the ``{...}`` objects that hold no ``{`` and a ``"name"`` key (with a plain string value, no
    escape before it) before their first ``}``. The cut is checked, not trusted: the document with each entry
    replaced by a marker must parse with orjson and have exactly those markers, in order, as its ``packages`` /
    ``packages.conda`` values, so a brace inside a string, a nested object, an entry without a name or a duplicate
    key sends the document to the exact path instead. The entries themselves are parsed and checked (orjson,
    :func:`check_entry`, and that the name is the one they were filed under) when their name is looked up.
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
    """The slow, exact way to a table: validate every record (the errors of records_from_repodata), then re-serialise
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


def fixed_base(info: Mapping[str, Any], channel: Channel, subdir: str, where: str) -> str:
    base_url = info.get("base_url")
    if base_url is None:
        return channel.subdir_url(subdir, auth=True)
    if not isinstance(base_url, str) or not base_url:
        raise ChannelError(f"invalid repodata at {redact_url(where)}: 'info.base_url' is not a string")
    return resolve_base(channel, subdir, base_url, where, "info.base_url")


def resolve_base(channel: Channel, subdir: str, ref: str, where: str, field: str) -> str:
    """A URL the repodata names (CEP-15 ``base_url``, CEP-16 ``shards_base_url``) resolved against the subdir: the
    ONE check of where a channel may send us. A remote channel may not switch scheme (``file://`` would read the
    build host's disk, ``http://`` from ``https://`` is a downgrade); only ``http`` -> ``https`` is allowed."""
    subdir_url = channel.subdir_url(subdir, auth=True) + "/"
    url = urljoin(subdir_url, ref)
    old, new = subdir_url.split(":", 1)[0].lower(), url.split(":", 1)[0].lower()
    if old in ("http", "https") and new != old and not (old == "http" and new == "https"):
        raise ChannelError(f"invalid repodata at {redact_url(where)}: {field!r} switches a {old} channel to "
                           f"{new}:, refused")
    return url


class StaleIndex(Exception):
    """An index file does not hold what its table says (damaged after it was written)."""


class SubdirIndex:
    """One channel subdir as name -> where its entries are in ``body`` (in memory after a scan, or an index file
    mmap'd, whose per-name tables are decoded on first use). With a ``locator`` (a skeleton cut) a name's entries
    are found by number, in the document at ``buf[base:]``."""

    def __init__(self, channel: Channel, subdir: str, where: str, base_url: str | None, body: bytes | memoryview,
                 table: Mapping[str, Any], data: memoryview | None = None, *, locator: Locator | None = None,
                 buf: Buffer | None = None, base: int = 0) -> None:
        self.channel, self.subdir, self.where = channel, subdir, where
        self.base_url = base_url
        self.base = fixed_base({"base_url": base_url}, channel, subdir, where)
        self._body = body
        self._table = table  # name -> (fns, starts, ends), or [offset, length] of that in ``data``; or entry numbers
        self._data = data
        self._locator = locator
        self._buf = buf
        self._at = base
        self.records_made = 0

    def names(self) -> KeysView[str]:
        return self._table.keys()

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def _entries(self, name: str) -> tuple[list, list]:
        try:
            ent = self._table[name]
        except ValueError:
            raise StaleIndex(name) from None
        if self._data is not None:  # from an index file: [offset, length] of this name's JSON table
            try:
                off, length = ent
                ent = orjson.loads(self._data[off:off + length])
            except (ValueError, TypeError, orjson.JSONDecodeError):
                raise StaleIndex(name) from None
        if self._locator is not None:
            try:
                got = entries(self._buf, self._locator, ent, self._at)
            except (ValueError, TypeError, IndexError, KeyError):
                raise StaleIndex(name) from None
            if got is None or any(type(r.get("name")) is not str or r["name"] != name for r in got[1]):
                raise StaleIndex(name)
            return got
        body = self._body
        try:
            fns, starts, ends = ent
            if len(fns) != len(starts) or len(fns) != len(ends) or max(ends) > len(body):
                raise StaleIndex(name)
            raw = orjson.loads(b"".join((b"[", b",".join(list(map(body.__getitem__, map(slice, starts, ends)))),
                                         b"]")))
        except orjson.JSONDecodeError as e:
            raise ChannelError(f"invalid repodata JSON at {redact_url(self.where)}: entries of {name!r}: {e}") from None
        except (ValueError, TypeError):
            raise StaleIndex(name) from None
        if len(raw) != len(fns):
            raise StaleIndex(name)
        return fns, raw

    def records(self, name: str) -> list[PackageRecord]:
        """Validated records of ``name`` in repodata order (``packages``, then ``packages.conda``)."""
        where = redact_url(self.where)
        fns, raws = self._entries(name)
        out = []
        for fn, raw in zip(fns, raws):
            problem = check_entry(fn, raw)
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



@dataclass(frozen=True)
class Cut:
    """A repodata document cut into a per-name index: what :func:`write_index` stores and :func:`index_of` opens.
    ``locator`` is set for a skeleton cut (``table``: name -> entry numbers)."""

    base_url: str | None
    body: Buffer
    table: Table
    locator: Locator | None = None
    own: bool = True  # body is the document itself (False: its entries re-serialised by the exact parse)


def index_from_body(body: Buffer, channel: Channel, subdir: str, where: str, *, fast: bool = True,
                    jobs: int = 1) -> Cut:
    """The cut of a decompressed repodata body; ChannelError for what is not repodata.

    The skeleton cut first (``fast``; off for a rebuild after the skeleton cut could not read an entry back), then
    the offsets cut, then the whole parse (which gives the exact error for a broken document). ``jobs`` bounds the
    forked workers of the skeleton cut of a large document."""
    sk = cut(body, pieces_for(len(body), jobs)) if fast else None
    if sk is not None:
        fixed_base(sk.info, channel, subdir, where)  # a bad base_url fails now, as in records_from_repodata
        return Cut(sk.info.get("base_url"), body, sk.table, sk.locator)
    if not isinstance(body, bytes):
        body = bytes(body)
    got = scan(body)
    if got is None:
        obj = parse_document(body, where)
        info = obj.get("info") or {}
        fixed_base(info, channel, subdir, where)
        return Cut(info.get("base_url"), *_table_from_parsed(obj, channel, subdir, where), own=False)
    info, table = got
    fixed_base(info, channel, subdir, where)
    return Cut(info.get("base_url"), body, table)


def index_of(got: Cut, channel: Channel, subdir: str, where: str) -> SubdirIndex:
    """The in-memory index of a fresh cut."""
    if got.locator is not None:
        return SubdirIndex(channel, subdir, where, got.base_url, b"", got.table, locator=got.locator, buf=got.body)
    assert isinstance(got.body, bytes)
    return SubdirIndex(channel, subdir, where, got.base_url, got.body, got.table)


def write_index(path: Path, key: str, got: Cut, *, embed: bool = True) -> None:
    """``MAGIC | u64 header length | header JSON | per-name tables | body``; the header maps name -> [offset,
    length] of that name's table; offsets (and ``body_offset``, ``size``) count from the end of the header."""
    table, body = got.table, got.body
    if isinstance(table, NameTable):  # a skeleton cut: its own compact form
        names, n, blobs = table.parts()
    else:
        blobs = list(map(orjson.dumps, table.values()))
        names = dict(zip(table, zip(accumulate(map(len, blobs), initial=0), map(len, blobs))))
        n = 0
    off = sum(map(len, blobs))  # memoryviews of bytes: len is bytes
    hb = orjson.dumps({"version": INDEX_VERSION, "key": key, "base_url": got.base_url, "names": names,
                       "locator": got.locator, "entries": n, "body_offset": off,
                       "size": off + (len(body) if embed else 0), "body_size": len(body), "embedded": embed})
    with atomic_write(path, fsync=False) as f:  # checked on open (magic, key, size) and per name when read
        f.write(_HEAD.pack(INDEX_MAGIC, len(hb)))
        f.write(hb)
        f.writelines(blobs)
        if embed:
            f.write(body)


def open_index(path: Path, key: str, channel: Channel, subdir: str, where: str,
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
    locator = hdr.get("locator")
    if (base_url is not None and not isinstance(base_url, str)) or (locator is not None
                                                                     and not isinstance(locator, dict)):
        return None
    rest = memoryview(data)[_HEAD.size + hlen:]
    table: Mapping[str, Any] = hdr["names"]
    if locator is not None:
        try:
            table = NameTable.from_region(table, hdr.get("entries"), rest[:hdr["body_offset"]],
                                          locator_entries(locator))
        except (ValueError, TypeError, IndexError, KeyError):
            return None
    if hdr.get("embedded", True):
        if locator is not None:
            return SubdirIndex(channel, subdir, where, base_url, b"", table, locator=locator,
                               buf=data, base=_HEAD.size + hlen + hdr["body_offset"])
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
    if locator is not None:
        return SubdirIndex(channel, subdir, where, base_url, b"", table, locator=locator, buf=body)
    return SubdirIndex(channel, subdir, where, base_url, memoryview(body), hdr["names"], rest)
