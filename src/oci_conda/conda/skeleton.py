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

Buffer = Union[bytes, mmap.mmap]


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
    table: MemoryTable


def _count_braces(buf: Buffer) -> int:
    if isinstance(buf, bytes):
        return buf.count(b"{")
    return sum(buf[i:i + _COUNT_CHUNK].count(b"{") for i in range(0, len(buf), _COUNT_CHUNK))


def find_key(buf: Buffer, key: str, start: int, end: int = -1) -> int:
    """Offset of the ``{`` of the first ``"key": {`` (a key, by its context) in ``buf[start:end]``, or -1."""
    needle = b'"' + key.encode() + b'"'
    find = buf.find
    pos = start
    while True:
        q = find(needle, pos) if end < 0 else find(needle, pos, end)
        if q < 0:
            return -1
        m = _AFTER_KEY.match(buf, q + len(needle))
        if m is not None and q > 0 and buf[q - 1] in _KEY_BEFORE:
            return m.end() - 1
        pos = q + 1


def _objects(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + sum(map(_objects, v.values()))
    if isinstance(v, list):
        return sum(map(_objects, v))
    return 0


def cut(buf: Buffer) -> Skeleton | None:
    """The skeleton of one repodata document, or None when it cannot be cut exactly (see the module docstring)."""
    try:
        doc = _DECODER.decode(buf)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    info = doc.info
    if info is not None and not isinstance(info, dict):
        return None
    secs = (doc.packages, doc.packages_conda)
    fns = list(chain(*secs))
    joined = "".join(fns)
    if not (joined.isascii() and joined.isprintable()) or '"' in joined or "\\" in joined:
        return None
    # the section keys, as keys with an object value (their own context check), then the brace count
    starts = [find_key(buf, s, 0) for s in SECTIONS]
    present = sum(p >= 0 for p in starts)
    if any(p < 0 and len(sec) for p, sec in zip(starts, secs)):
        return None
    if _objects(info) > 1:  # a nested object in info could hold a key named like a section or a file
        return None
    if _count_braces(buf) != 1 + (info is not None) + present + len(fns):
        return None
    sections: list[tuple[int, int, list[int]]] = []
    first = 0
    for sec, at in zip(secs, starts):
        keys = list(sec)
        marks: list[int] = []
        pos = at + 1
        for k in range(0, len(keys), STRIDE):
            pos = find_key(buf, keys[k], pos)
            if pos < 0:
                return None  # a key written with escapes: not found as plain bytes
            marks.append(pos)
        sections.append((first, len(keys), marks))
        first += len(keys)
    names = list(map(_NAME, chain(doc.packages.values(), doc.packages_conda.values())))
    del doc, secs
    groups: defaultdict[str, list[int]] = defaultdict(list)
    deque(map(list.append, map(groups.__getitem__, names), range(len(names))), maxlen=0)
    return Skeleton(info or {}, sections, MemoryTable(fns, groups))


class MemoryTable(Mapping[str, tuple[Sequence[str], Sequence[int]]]):
    """name -> (file names, entry numbers) of a fresh cut; :meth:`dump` is its index-file form."""

    def __init__(self, fns: list[str], groups: Mapping[str, list[int]]) -> None:
        self._fns, self._groups = fns, groups

    def __getitem__(self, name: str) -> tuple[Sequence[str], Sequence[int]]:
        js = self._groups[name]
        return [self._fns[j] for j in js], js

    def __contains__(self, name: object) -> bool:
        return name in self._groups

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def dump(self) -> tuple[dict[str, list[int]], list[bytes]]:
        """``(names, parts)``: ``parts`` are the entry numbers grouped by name (u32), the file names' end offsets
        (u64) and the file names (UTF-8, back to back); ``names`` maps a name to ``[first, count]`` of its numbers."""
        groups = self._groups
        counts = list(map(len, groups.values()))
        names = dict(zip(groups, map(list, zip(accumulate(counts, initial=0), counts))))
        ords = array("I", chain.from_iterable(groups.values()))
        blob = "".join(self._fns).encode()
        ends = array("Q", accumulate(map(len, self._fns)))  # ASCII: characters are bytes
        return names, [ords.tobytes(), ends.tobytes(), blob]


class FileTable(Mapping[str, tuple[Sequence[str], Sequence[int]]]):
    """The index-file form of a :class:`MemoryTable`, read in place (``parts``: its three parts, mapped)."""

    def __init__(self, names: Mapping[str, Any], n: int, region: memoryview) -> None:
        if len(region) < 12 * n:
            raise ValueError("short skeleton table")
        self._names = names
        self._ords = region[:4 * n].cast("I")
        self._ends = region[4 * n:12 * n].cast("Q")
        self._blob = region[12 * n:]

    def __getitem__(self, name: str) -> tuple[Sequence[str], Sequence[int]]:
        first, count = self._names[name]
        ends, blob = self._ends, self._blob
        try:
            js = self._ords[first:first + count].tolist()
            return [bytes(blob[ends[j - 1] if j else 0:ends[j]]).decode() for j in js], js
        except (IndexError, TypeError, UnicodeDecodeError):
            raise ValueError(f"damaged skeleton table at {name!r}") from None

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
