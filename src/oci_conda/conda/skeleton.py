"""The fast cut of a repodata document: every entry's file name and package name in one msgspec pass (the entries
themselves are skipped, not built), grouped by name, with no byte offsets kept per entry.

An entry is found again when its name is looked up: a *checkpoint* (the byte offset of every ``STRIDE``-th key of
a section, found once by plain ``find``) bounds the search for its key ``"<fn>": {``. The cut is used only where
that search is exact, which is checked, not assumed: file names are plain ASCII (no quote, backslash, control
character), and the document holds no ``{`` besides the top level, ``info``, the two sections and one per entry
(so no nested object and no brace inside a string: the byte count equals that sum). Then the only keys with an
object value are the section keys and the entry keys, so the first ``"<fn>": {`` at or after the checkpoint is
that entry. Anything else returns None, and the caller takes the exact (slower) way.

A conda-forge-sized subdir (500k entries, 250 MB) is cut in about half a second, against about three for a cut
that keeps each entry's offsets; the index file stays small (names, file names, entry numbers, checkpoints).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import dataclass
from array import array
from itertools import accumulate, chain
from operator import attrgetter
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

    Peak memory is the mapped document plus the decoded skeleton (~230 bytes an entry); what is kept is ~100."""
    try:
        doc = _DECODER.decode(buf)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    info = doc.info
    if info is not None and (not isinstance(info, dict) or _objects(info) > 1):
        return None  # a nested object in info could hold a key named like a section or a file
    counts = (len(doc.packages), len(doc.packages_conda))
    fns = list(chain(doc.packages, doc.packages_conda))
    names = list(map(_NAME, chain(doc.packages.values(), doc.packages_conda.values())))
    del doc
    table = NameTable.build(fns, names)
    del names
    if table is None:
        return None
    # plain file names: the search for a key finds it as these bytes (an escaped quote, backslash or control
    # character would not be: such a document goes the exact way; see entries() for escapes in other keys)
    sep: bytes | None = None
    if fns:  # the layout, from the first entry's key (conda-index writes one layout throughout)
        first_key = find_key(buf, fns[0], 0)
        if first_key < 0:
            return None
        sep = _sep(buf, first_key)
    # the section keys, as keys with an object value (their own context check), then the brace count
    starts = [find_key(buf, s, 0, sep=sep) for s in SECTIONS]
    if any(p < 0 and n for p, n in zip(starts, counts)):
        return None
    if _count_braces(buf) != 1 + (info is not None) + sum(p >= 0 for p in starts) + len(fns):
        return None
    sections: list[tuple[int, int, list[int]]] = []
    first = 0
    for n, at in zip(counts, starts):
        marks: list[int] = []
        pos = at + 1
        for k in range(first, first + n, STRIDE):
            pos = find_key(buf, fns[k], pos, sep=sep)
            if pos < 0:
                return None  # a key written with escapes: not found as plain bytes
            marks.append(pos)
        sections.append((first, n, marks))
        first += n
    return Skeleton(info or {}, sections, table, sep)


class NameTable(Mapping[str, tuple[Sequence[str], Sequence[int]]]):
    """name -> (file names, entry numbers), in four flat parts that are also its index-file form: ``names`` maps a
    name to ``[first, count]`` in ``ords`` (entry numbers grouped by name, u32); ``ends`` (u64) are where each
    entry's file name ends in ``blob`` (the file names back to back, ASCII)."""

    def __init__(self, names: Mapping[str, Any], ords: Sequence[int], ends: Sequence[int],
                 blob: bytes | memoryview) -> None:
        self._names, self._ords, self._ends, self._blob = names, ords, ends, blob

    @classmethod
    def build(cls, fns: list[str], names: list[str]) -> NameTable | None:
        """The table of entries with file names ``fns`` and package names ``names``; None unless every file name
        is plain ASCII (no quote or backslash)."""
        text = "".join(fns)
        if not text.isascii() or '"' in text or "\\" in text:
            return None
        blob = text.encode()
        del text
        groups: defaultdict[str, list[int]] = defaultdict(list)
        deque(map(list.append, map(groups.__getitem__, names), range(len(names))), maxlen=0)
        counts = list(map(len, groups.values()))
        index = dict(zip(groups, map(list, zip(accumulate(counts, initial=0), counts))))
        ords = array("I", chain.from_iterable(groups.values()))
        del groups
        return cls(index, ords, array("Q", accumulate(map(len, fns))), blob)

    @classmethod
    def from_region(cls, names: Mapping[str, Any], n: int, region: memoryview) -> NameTable:
        """The table written by :meth:`parts` for ``n`` entries, read in place."""
        if not isinstance(n, int) or n < 0 or len(region) < 12 * n:
            raise ValueError("short name table")
        return cls(names, region[:4 * n].cast("I"), region[4 * n:12 * n].cast("Q"), region[12 * n:])

    def parts(self) -> tuple[dict[str, Any], int, list[Any]]:
        """``(names, entries, [ords, ends, blob])`` for the index file."""
        return dict(self._names), len(self._ends), [memoryview(self._ords).cast("B"),
                                                    memoryview(self._ends).cast("B"), self._blob]

    def __getitem__(self, name: str) -> tuple[Sequence[str], Sequence[int]]:
        ent = self._names[name]
        ends, blob = self._ends, self._blob
        try:
            first, count = ent
            js = list(self._ords[first:first + count])
            return [bytes(blob[ends[j - 1] if j else 0:ends[j]]).decode() for j in js], js
        except (IndexError, TypeError, UnicodeDecodeError):
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


def entries(buf: Buffer, sections: Sequence[Sequence[Any]], fns: Sequence[str], ords: Sequence[int],
            base: int = 0) -> list[dict[str, Any]] | None:
    """The parsed entries numbered ``ords`` (file names ``fns``) of the document at ``buf[base:]``, or None when
    one is not where the skeleton says (an index that does not belong to the document)."""
    out = []
    for fn, j in zip(fns, ords):
        start = -1
        for first, count, marks in sections:
            if first <= j < first + count:
                rel = j - first
                c = rel // STRIDE
                if c >= len(marks):
                    return None
                at = base + marks[c]
                if rel % STRIDE:
                    start = find_key(buf, fn, at, base + marks[c + 1] if c + 1 < len(marks) else -1)
                else:  # the checkpoint itself: its key must be right before it
                    start = at if find_key(buf, fn, max(base, at - len(fn) - 66), at + 1) == at else -1
                break
        if start < 0:
            return None
        obj = _entry_at(buf, start)
        if obj is None:
            return None
        out.append(obj)
    return out
