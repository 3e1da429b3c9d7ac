"""The fast cut of a repodata document: every entry's package name in one msgspec pass (the entries themselves are
skipped, not built), grouped by name as entry numbers; no byte offset, no file name kept per entry.

An entry is found again when its name is looked up: a *checkpoint* (the offset of every ``STRIDE``-th entry's
``{`` in a section, found once by searching its key ``"<fn>": {``) is followed by the next entries' ``{`` one
after the other, and the key before an entry's ``{`` is its file name. This is exact only where every ``{`` of
the document is structure, which is checked, not assumed: the document holds no ``{`` besides the top level,
``info``, the two sections and one per entry (so no nested object, no brace inside a string, no duplicate key: the
byte count equals that sum). Anything else returns None, and the caller takes the exact (slower) way.

A conda-forge-sized subdir (500k entries, 250 MB) is cut in about a second, against about three for a cut that
keeps each entry's offsets; the index file is small (names, entry numbers, checkpoints: ~3 MB).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import dataclass
from array import array
from itertools import accumulate, chain, compress, islice, repeat
from operator import attrgetter, ne, sub
from typing import Any, Iterator, Mapping, Sequence, Union

import mmap

import msgspec
import orjson

#: A section's checkpoints: one byte offset per ``STRIDE`` keys. A lookup scans at most this many entries.
STRIDE = 64
SECTIONS = ("packages", "packages.conda")
_AFTER_KEY = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*\{")
_KEY_BEFORE = frozenset(b"{, \t\r\n")
_COUNT_CHUNK = 1 << 24

Buffer = Union[bytes, bytearray, mmap.mmap]


class _Entry(msgspec.Struct, gc=False):
    name: str


class _Skeleton(msgspec.Struct, gc=False):
    info: Any = None
    packages: dict[str, _Entry] = {}
    packages_conda: dict[str, _Entry] = msgspec.field(default_factory=dict, name="packages.conda")


_DECODER = msgspec.json.Decoder(_Skeleton)
_NAME = attrgetter("name")


@dataclass(frozen=True)
class Skeleton:
    """Where to find entries again: per section ``(first entry number, count, checkpoint offsets)``, numbered in
    load order (``packages``, then ``packages.conda``); ``table`` maps a name to its file names and entry numbers."""

    info: dict[str, Any]
    sections: list[tuple[int, int, list[int]]]
    table: NameTable
    sep: bytes | None = None


def _count_braces(buf: Buffer) -> int:
    if isinstance(buf, (bytes, bytearray)):
        return buf.count(b"{")
    return sum(buf[i:i + _COUNT_CHUNK].count(b"{") for i in range(0, len(buf), _COUNT_CHUNK))


def find_key(buf: Buffer, key: str, start: int, end: int = -1, sep: bytes | None = None) -> int:
    """Offset of the ``{`` of the first ``"key": {`` (a key, by its context) in ``buf[start:end]``, or -1.

    With ``sep`` (the bytes between a key and its ``{`` in this document) the search looks for the whole
    ``"key"<sep>{``, which ``find`` skips through far faster than a needle ending in a quote; a key written
    otherwise is still found by the general search."""
    find = buf.find
    if end < 0:
        end = len(buf)
    if sep is not None:
        needle = b'"' + key.encode() + b'"' + sep + b"{"
        pos = start
        while (q := find(needle, pos, end)) >= 0:
            if q > 0 and buf[q - 1] in _KEY_BEFORE:
                return q + len(needle) - 1
            pos = q + 1
    needle = b'"' + key.encode() + b'"'
    pos = start
    while (q := find(needle, pos, end)) >= 0:
        m = _AFTER_KEY.match(buf, q + len(needle))
        if m is not None and q > 0 and buf[q - 1] in _KEY_BEFORE:
            return m.end() - 1
        pos = q + 1
    return -1


def _sep(buf: Buffer, at: int) -> bytes:
    """The bytes between the key that ends right before ``at`` and its ``{``."""
    return bytes(buf[max(0, at - 64):at]).rpartition(b'"')[2]


def _objects(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + sum(map(_objects, v.values()))
    if isinstance(v, list):
        return sum(map(_objects, v))
    return 0


def cut(buf: Buffer) -> Skeleton | None:
    """The skeleton of one repodata document, or None when it cannot be cut exactly (see the module docstring).

    Peak memory is the mapped document plus the decoded skeleton (~230 bytes an entry); what is kept is ~5."""
    try:
        doc = _DECODER.decode(buf)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    info = doc.info
    if info is not None and (not isinstance(info, dict) or _objects(info) > 1):
        return None  # a nested object in info could hold a key named like a section or a file
    counts = (len(doc.packages), len(doc.packages_conda))
    # the keys of the checkpoints only (the search for one finds it as these bytes: a key written with escapes is
    # not found, and such a document goes the exact way)
    marks_of = [list(sec)[::STRIDE] for sec in (doc.packages, doc.packages_conda)]
    first_fn = next(chain(doc.packages, doc.packages_conda), None)
    table = NameTable.build(list(map(_NAME, chain(doc.packages.values(), doc.packages_conda.values()))))
    del doc
    sep: bytes | None = None
    if first_fn is not None:  # the layout, from the first entry's key (conda-index writes one layout throughout)
        first_key = find_key(buf, first_fn, 0)
        if first_key < 0:
            return None
        sep = _sep(buf, first_key)
    # the section keys, as keys with an object value (their own context check), then the brace count
    starts = [find_key(buf, s, 0, sep=sep) for s in SECTIONS]
    if any(p < 0 and n for p, n in zip(starts, counts)):
        return None
    if _count_braces(buf) != 1 + (info is not None) + sum(p >= 0 for p in starts) + sum(counts):
        return None
    sections: list[tuple[int, int, list[int]]] = []
    first = 0
    for n, at, keys in zip(counts, starts, marks_of):
        marks: list[int] = []
        pos = at + 1
        for key in keys:
            pos = find_key(buf, key, pos, sep=sep)
            if pos < 0:
                return None
            marks.append(pos)
        sections.append((first, n, marks))
        first += n
    return Skeleton(info or {}, sections, table, sep)


class NameTable(Mapping[str, Sequence[int]]):
    """name -> entry numbers, in two flat parts that are also its index-file form: ``names`` maps a name to
    ``[first, count]`` in ``runs``, which are ``(first entry, entries)`` pairs (u32): conda-index sorts entries by
    file name, so a name's entries come in a few runs, and a table of 600k entries is ~50k runs."""

    def __init__(self, names: Mapping[str, Any], runs: Sequence[int], entries: int) -> None:
        self._names, self._runs, self._entries = names, runs, entries

    @classmethod
    def build(cls, names: list[str]) -> NameTable:
        """The table of entries whose package names are ``names`` (in entry order)."""
        n = len(names)
        starts = [0, *compress(range(1, n), map(ne, names, islice(names, 1, None)))] if n else []
        groups: defaultdict[str, list[Any]] = defaultdict(list)
        if len(starts) <= n // 8:
            lengths = list(map(sub, [*starts[1:], n], starts))
            deque(map(list.append, map(groups.__getitem__, map(names.__getitem__, starts)), zip(starts, lengths)),
                  maxlen=0)
            flat: Iterator[int] = chain.from_iterable(chain.from_iterable(groups.values()))
        else:  # not sorted by name: a run of one per entry
            deque(map(list.append, map(groups.__getitem__, names), range(n)), maxlen=0)
            flat = chain.from_iterable(zip(chain.from_iterable(groups.values()), repeat(1)))
        counts = list(map(len, groups.values()))
        index = dict(zip(groups, map(list, zip(accumulate(counts, initial=0), counts))))
        return cls(index, array("I", flat), n)

    @classmethod
    def from_region(cls, names: Mapping[str, Any], n: int, region: memoryview, entries: int) -> NameTable:
        """The table written by :meth:`parts` (``n`` runs) for a document of ``entries`` entries, read in place."""
        if not isinstance(n, int) or n < 0 or len(region) != 8 * n:
            raise ValueError("bad name table")
        return cls(names, region.cast("I"), entries)

    def parts(self) -> tuple[dict[str, Any], int, list[Any]]:
        """``(names, runs, [runs as bytes])`` for the index file."""
        return dict(self._names), len(self._runs) // 2, [memoryview(self._runs).cast("B")]

    def __getitem__(self, name: str) -> Sequence[int]:
        ent = self._names[name]
        try:
            first, count = ent
            runs = self._runs[2 * first:2 * (first + count)]
            if len(runs) != 2 * count or sum(runs[1::2]) > self._entries or \
                    any(a + b > self._entries for a, b in zip(runs[::2], runs[1::2])):
                raise ValueError
            return [j for k in range(0, len(runs), 2) for j in range(runs[k], runs[k] + runs[k + 1])]
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"damaged name table at {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _entry_at(buf: Buffer, start: int) -> dict[str, Any] | None:
    """The entry object whose ``{`` is at ``start``: it ends at the first ``}`` that closes a valid object (a ``}``
    inside a string leaves an unterminated string, which never parses, so the next one is tried)."""
    pos = start
    while True:
        stop = buf.find(b"}", pos)
        if stop < 0:
            return None
        try:
            obj = orjson.loads(buf[start:stop + 1])
        except orjson.JSONDecodeError:
            pos = stop + 1
            continue
        return obj if isinstance(obj, dict) else None


def _key_before(buf: Buffer, start: int) -> str | None:
    """The key whose value is the object at ``start`` (the text between the two quotes before it, decoded)."""
    close = buf.rfind(b'"', 0, start)
    open_ = buf.rfind(b'"', 0, close) if close > 0 else -1
    if open_ < 0 or buf[open_ - 1] == 0x5C:  # an escaped quote inside the key: the exact way will have it
        return None
    raw = bytes(buf[open_ + 1:close])
    if b"\\" not in raw:
        return raw.decode(errors="strict")
    got = orjson.loads(b'"' + raw + b'"')
    return got if isinstance(got, str) else None


def entries(buf: Buffer, sections: Sequence[Sequence[Any]], ords: Sequence[int],
            base: int = 0) -> tuple[list[str], list[dict[str, Any]]] | None:
    """``(file names, parsed entries)`` of the entries numbered ``ords`` of the document at ``buf[base:]``, or None
    when one is not where the skeleton says (an index that does not belong to the document)."""
    fns: list[str] = []
    out: list[dict[str, Any]] = []
    find = buf.find
    for j in ords:
        start = -1
        for first, count, marks in sections:
            if first <= j < first + count:
                rel = j - first
                c = rel // STRIDE
                if c >= len(marks):
                    return None
                start = base + marks[c]
                for _ in range(rel % STRIDE):  # every "{" is an entry's: the next entries' are the next ones
                    start = find(b"{", start + 1)
                    if start < 0:
                        return None
                break
        if start < 0 or buf[start] != 0x7B:
            return None
        try:
            fn = _key_before(buf, start)
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return None
        obj = _entry_at(buf, start)
        if obj is None or fn is None:
            return None
        fns.append(fn)
        out.append(obj)
    return fns, out
