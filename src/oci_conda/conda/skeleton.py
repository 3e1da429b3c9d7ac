"""The fast cut of a repodata document: every entry's package name in one msgspec pass (the entries themselves are
skipped, not built), grouped by name as entry numbers; no byte offset, no file name kept per entry.

It is exact only where every ``{`` of the document is structure, which is checked, not assumed: the document holds
no ``{`` besides the top level, ``info``, the sections and one per entry (so no nested object, no brace inside a
string, no duplicate key: the count of ``{`` equals that sum). Then a section's entries are its section's next
``{`` one after the other, and an entry is found again from its number alone: the count, taken per
``CHUNK`` bytes, says which chunk holds its ``{``, and a walk over the ``{`` of that chunk finds it; the key before
it is its file name. Anything else returns None, and the caller takes the exact (slower) way.

A conda-forge-sized subdir (500k entries, 250 MB) is cut in about a second, against about three for a cut that
keeps each entry's offsets; its index file is ~0.5 MB (names, runs of entry numbers, counts per chunk).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict, deque
from dataclasses import dataclass
from array import array
from itertools import accumulate, chain, compress, islice, repeat
from operator import attrgetter, ne, sub
from typing import Any, Iterator, Mapping, Sequence, Union

import mmap

import msgspec
import orjson

#: The ``{`` are counted per this many bytes: a lookup walks over at most the ``{`` of one chunk (~70 entries).
CHUNK = 1 << 15
SECTIONS = ("packages", "packages.conda")
_AFTER_KEY = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*\{")
_KEY_BEFORE = frozenset(b"{, \t\r\n")

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
    """A cut document: ``locator`` finds an entry by its number (entries are numbered in load order:
    ``packages``, then ``packages.conda``; plain JSON data, stored in the index file); ``table`` maps a name to its
    entry numbers."""

    info: dict[str, Any]
    locator: dict[str, Any]
    table: NameTable


def find_key(buf: Buffer, key: str, start: int) -> int:
    """Offset of the ``{`` of the first ``"key": {`` (a key, by its context) in ``buf[start:]``, or -1."""
    needle = b'"' + key.encode() + b'"'
    find = buf.find
    pos = start
    while (q := find(needle, pos)) >= 0:
        m = _AFTER_KEY.match(buf, q + len(needle))
        if m is not None and q > 0 and buf[q - 1] in _KEY_BEFORE:
            return m.end() - 1
        pos = q + 1
    return -1


def _objects(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + sum(map(_objects, v.values()))
    if isinstance(v, list):
        return sum(map(_objects, v))
    return 0


def _brace_counts(buf: Buffer) -> list[int]:
    """How many ``{`` come before each ``CHUNK`` boundary (and, last, in all of ``buf``)."""
    starts = range(0, len(buf), CHUNK)
    if isinstance(buf, (bytes, bytearray)):
        counts = map(buf.count, repeat(b"{"), starts, range(CHUNK, len(buf) + CHUNK, CHUNK))
    else:  # a mapped file has no count(): chunks small enough to stay in the CPU cache while counted
        counts = map(bytes.count, map(buf.__getitem__, map(slice, starts, range(CHUNK, len(buf) + CHUNK, CHUNK))),
                     repeat(b"{"))
    return list(accumulate(counts, initial=0))


def nth_brace(buf: Buffer, cum: Sequence[int], g: int, base: int = 0) -> int:
    """Where the ``g``-th ``{`` (from 0) of the document at ``buf[base:]`` is, by its chunk's count; -1 if none."""
    c = bisect_right(cum, g) - 1
    if c < 0 or c >= len(cum) - 1:
        return -1
    pos = base + c * CHUNK - 1
    find = buf.find
    for _ in range(g - cum[c] + 1):
        pos = find(b"{", pos + 1)
        if pos < 0:
            return -1
    return pos


def cut(buf: Buffer) -> Skeleton | None:
    """The skeleton of one repodata document, or None when it cannot be cut exactly (see the module docstring).

    Peak memory is the mapped document plus the decoded skeleton (~230 bytes an entry); what is kept is a few."""
    try:
        doc = _DECODER.decode(buf)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    info = doc.info
    if info is not None and (not isinstance(info, dict) or _objects(info) > 1):
        return None  # a nested object in info could hold a key named like a section or a file
    counts = (len(doc.packages), len(doc.packages_conda))
    table = NameTable.build(list(map(_NAME, chain(doc.packages.values(), doc.packages_conda.values()))))
    del doc
    cum = _brace_counts(buf)
    # which sections are there: a non-empty one is; an empty one if its key is
    present = [n > 0 or find_key(buf, name, 0) >= 0 for name, n in zip(SECTIONS, counts)]
    if cum[-1] != 1 + (info is not None) + sum(present) + sum(counts):
        return None
    # where each section's "{" is among all: conda-index's order (info, packages, packages.conda) is tried first
    # and checked by the key before it; otherwise the key is searched for
    g = 1 + (info is not None)
    sections: list[list[int]] = []
    first = 0
    for name, n, there in zip(SECTIONS, counts, present):
        if there:
            at = nth_brace(buf, cum, g)
            if at < 0 or _key_before(buf, at) != name:
                at = find_key(buf, name, 0)
                if at < 0:
                    return None
                c = at // CHUNK
                g = cum[c] + bytes(buf[c * CHUNK:at]).count(b"{")
            sections.append([first, n, g + 1])  # its entries are the next n "{"
            g += 1 + n
        else:
            sections.append([first, 0, 0])
        first += n
    return Skeleton(info or {}, {"chunk": CHUNK, "cum": cum, "sections": sections}, table)


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


def locator_entries(loc: Mapping[str, Any]) -> int:
    """How many entries a locator (``Skeleton.locator``) places."""
    return sum(int(sec[1]) for sec in loc["sections"])


def entries(buf: Buffer, loc: Mapping[str, Any], ords: Sequence[int],
            base: int = 0) -> tuple[list[str], list[dict[str, Any]]] | None:
    """``(file names, parsed entries)`` of the entries numbered ``ords`` of the document at ``buf[base:]``, or None
    when one is not where the locator says (an index that does not belong to the document)."""
    if loc.get("chunk") != CHUNK:
        return None
    cum, sections = loc["cum"], loc["sections"]
    fns: list[str] = []
    out: list[dict[str, Any]] = []
    for j in ords:
        start = -1
        for first, count, g0 in sections:
            if first <= j < first + count:
                start = nth_brace(buf, cum, g0 + j - first, base)
                break
        if start < 0:
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
