"""The fast cut of a repodata document: every entry's package name in one msgspec pass (the entries themselves are
skipped, not built), grouped by name as entry numbers; no byte offset, no file name kept per entry.

It is exact only where every ``{`` of the document is structure, which is checked, not assumed: the document holds
no ``{`` besides the top level, ``info``, the sections and one per entry (so no nested object, no brace inside a
string, no duplicate key: the count of ``{`` equals that sum). Then a section's entries are its section's next
``{`` one after the other, and an entry is found again from its number alone: the count, taken per
``CHUNK`` bytes, says which chunk holds its ``{``, and a walk over the ``{`` of that chunk finds it; the key before
it is its file name. Anything else returns None, and the caller takes the exact (slower) way.

A large document is cut by forked workers, a piece each (see "the pass split across forked workers" below): the
pieces together parse the very tokens one pass would, and what a piece cannot know is checked after. A
conda-forge-sized subdir (500k entries, 250 MB) is cut in about half a second on two cores (one pass: about a
second); its index file is ~0.5 MB (names, runs of entry numbers, counts per chunk).
"""

from __future__ import annotations

import mmap
import os
import re
from array import array
from bisect import bisect_right
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate, chain, compress, islice, repeat
from operator import add, attrgetter, lt, methodcaller, ne, not_, sub
from typing import Any

import msgspec
import orjson

from ..parallel import run_forked, workers

#: The ``{`` are counted per this many bytes: a lookup walks over at most the ``{`` of one chunk (~70 entries).
CHUNK = 1 << 15
SECTIONS = ("packages", "packages.conda")
_AFTER_KEY = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*\{")
_KEY_BEFORE = frozenset(b"{, \t\r\n")

Buffer = bytes | bytearray | mmap.mmap


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
    entry numbers; ``pieces`` says how many forked workers cut it (1: one pass here)."""

    info: dict[str, Any]
    locator: dict[str, Any]
    table: NameTable
    pieces: int = 1  # how many forked workers cut it


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


def _brace_counts(buf: Buffer, chunks: range | None = None) -> list[int]:
    """How many ``{`` come before each ``CHUNK`` boundary (and, last, in all of ``buf``); with ``chunks``, how
    many are in each of those chunks. Counted as what a chunk loses when its ``{`` are removed: ``replace`` skips
    to each ``{`` with ``memchr``, ~3x faster than ``count``, which compares byte by byte."""
    if chunks is None:
        return list(accumulate(_brace_counts(buf, range(-(-len(buf) // CHUNK))), initial=0))
    size = len(buf)
    starts = range(chunks.start * CHUNK, min(chunks.stop * CHUNK, size), CHUNK)
    ends = [min(s + CHUNK, size) for s in starts]
    pieces = map(buf.__getitem__, map(slice, starts, ends))  # small enough to stay in the CPU cache
    return list(map(sub, map(sub, ends, starts), map(len, map(_WITHOUT_BRACES, pieces))))


_WITHOUT_BRACES = methodcaller("replace", b"{", b"")


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


def pieces_for(size: int, jobs: int) -> int:
    """How many forked workers cut a document of ``size`` bytes under ``--jobs`` (one: no fork)."""
    if size < 2 * SPLIT_MIN or not hasattr(os, "fork"):
        return 1
    return workers(jobs, min(MAX_PIECES, size // SPLIT_MIN), cpu_bound=True)


def cut(buf: Buffer, pieces: int = 1) -> Skeleton | None:
    """The skeleton of one repodata document, or None when it cannot be cut exactly (see the module docstring).

    With ``pieces`` > 1 the pass is split at entry boundaries across that many forked workers (see
    :func:`_cut_split`); a split that cannot be proven exact is dropped for the whole pass. Peak memory is the
    mapped document plus the decoded skeleton (~230 bytes an entry); what is kept is a few."""
    if pieces > 1:
        got = _cut_split(buf, pieces)
        if got is not None:
            return got
    try:
        doc = _DECODER.decode(buf)
    except (msgspec.DecodeError, ValueError, TypeError):
        return None
    info = doc.info
    counts = (len(doc.packages), len(doc.packages_conda))
    table = NameTable.build(list(map(_NAME, chain(doc.packages.values(), doc.packages_conda.values()))))
    del doc
    if not _info_ok(info):
        return None
    cum = _brace_counts(buf)
    sections = _sections(buf, info, counts, cum, _present(buf), search=True)
    if sections is None:
        return None
    return Skeleton(info or {}, {"chunk": CHUNK, "cum": cum, "sections": sections}, table)


def _info_ok(info: Any) -> bool:
    # a nested object in info could hold a key named like a section or a file
    return info is None or (isinstance(info, dict) and _objects(info) <= 1)


def _present(buf: Buffer) -> Callable[[str], bool]:
    """Whether a section's key is in the document (asked only for a section without entries), remembered."""
    seen: dict[str, bool] = {}

    def there(name: str) -> bool:
        if name not in seen:
            seen[name] = find_key(buf, name, 0) >= 0
        return seen[name]
    return there


def _sections(buf: Buffer, info: Any, counts: Sequence[int], cum: Sequence[int], present: Callable[[str], bool], *,
              search: bool) -> list[list[int]] | None:
    """The locator's ``[first entry, entries, brace number of its first entry]`` per section, once every ``{`` is
    shown to be structure (their count is the sum of the objects the pass found); None otherwise. Without
    ``search`` only conda-index's order is tried (no scan of the document for a key)."""
    there = [n > 0 or present(name) for name, n in zip(SECTIONS, counts)]
    if cum[-1] != 1 + (info is not None) + sum(there) + sum(counts):
        return None
    # where each section's "{" is among all: conda-index's order (info, packages, packages.conda) is tried first
    # and checked by the key before it; otherwise the key is searched for
    g = 1 + (info is not None)
    sections: list[list[int]] = []
    first = 0
    for name, n, is_there in zip(SECTIONS, counts, there):
        if is_there:
            at = nth_brace(buf, cum, g)
            try:
                key = _key_before(buf, at) if at >= 0 else None
            except (UnicodeDecodeError, orjson.JSONDecodeError):
                key = None
            if key != name:
                if not search:
                    return None
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
    return sections


# -- the pass split across forked workers
#
# Split points are entry boundaries found by a pattern (``}``, ``,``, ``"``), near equal shares of the bytes. Piece 0
# is the document up to split 1 closed by ``}}``; piece i > 0 is ``{"\u0000":{`` (a placeholder section) + the
# document from split i up to split i+1 closed by ``}}`` (the last runs to the end). A JSON parser's state is its
# stack of open containers and whether a key or a value comes next: piece 0 parses only if the document is, at
# split 1, between two members of an object at depth 2, which is exactly the state piece 1 starts in; and so on. So
# the pieces together parse the very tokens the whole pass would; what they cannot know is which section each
# placeholder stands for. That is found after: every ``{`` is shown to be structure by their count (as for the
# whole pass), the sections are found where conda-index's order puts them, and the first entry after each split must
# be the very ``{`` that the chosen section and the entries before it give. A key met in two pieces (a duplicate the
# whole pass would have refused: the later entry wins in the exact parse) is not looked for here: every key must
# tell its entry's name (``<name>-<version>-<build><ext>``), so both are among that name's entries, and
# :func:`entries` refuses a name whose entries repeat a key in a section (the exact way then answers).

#: A document is cut in pieces from twice this size, a piece per this many bytes at most (below, a fork costs more
#: than it saves).
SPLIT_MIN = 8 << 20
MAX_PIECES = 8
_SPLIT_AT = re.compile(rb"\}[ \t\r\n]*(,)[ \t\r\n]*\"")
_HOLDER = b'{"~":{'
_CLOSE = b"}}"


class _TailSkeleton(msgspec.Struct, gc=False):
    tail: dict[str, _Entry] = msgspec.field(default_factory=dict, name="~")
    info: Any = None
    packages: dict[str, _Entry] = {}
    packages_conda: dict[str, _Entry] = msgspec.field(default_factory=dict, name="packages.conda")


_TAIL_DECODER = msgspec.json.Decoder(_TailSkeleton)

# per section of a piece: entries, names at the starts of runs, run lengths, whether its keys are in order, (when
# not) whether every key tells its name, first and last key
_Part = tuple[int, list[str], list[int], bool, bool, str, str]
_PieceResult = tuple[Any, list[_Part], list[int]]


def _split_points(buf: Buffer, pieces: int) -> list[int]:
    """Up to ``pieces - 1`` offsets of a ``,`` between two members, near equal shares of ``buf``."""
    out: list[int] = []
    size = len(buf)
    for i in range(1, pieces):
        m = _SPLIT_AT.search(buf, max(size * i // pieces, out[-1] + 1 if out else len(_HOLDER)))
        if m is None:
            break
        out.append(m.start(1))
    return out


def _part(d: dict[str, _Entry]) -> _Part:
    heads, lengths = _runs(list(map(_NAME, d.values())))
    keys = list(d)
    # keys in order (conda-index sorts them) prove no key repeats; otherwise each key must name its entry. An
    # unsorted list fails its first comparisons, so the order check costs nothing there
    ordered = all(map(lt, keys, islice(keys, 1, None)))
    named = (not ordered or len(keys) <= 64) and _named_keys(keys, heads, lengths)
    return len(d), heads, lengths, ordered, named, keys[0] if keys else "", keys[-1] if keys else ""


def _named_keys(keys: Sequence[str], heads: Sequence[str], lengths: Sequence[int]) -> bool:
    """Whether every key is ``<name>-<version>-<build><ext>`` of its entry's name (runs of names as
    :func:`_runs` gives them; no ``-`` after the name but the two): then a key tells its name, so a key met twice is
    met within one name's entries."""
    n = len(keys)
    dashed = chain.from_iterable(map(repeat, map(add, heads, repeat("-")), lengths))
    at = chain.from_iterable(map(repeat, map(len, heads), lengths))
    return sum(map(str.startswith, keys, dashed)) == n and list(map(str.count, keys, repeat("-"), at)).count(2) == n


def _piece(buf: Buffer, lo: int, hi: int, chunks: range) -> _PieceResult:
    """One piece's pass (in a forked worker): ``buf[lo:hi]`` as described above, and the ``{`` of ``chunks``."""
    braces = _brace_counts(buf, chunks)  # before the piece's own bytes are written
    head, tail = (b"" if lo == 0 else _HOLDER), (b"" if hi == len(buf) else _CLOSE)
    try:  # a private (copy-on-write) map: the few bytes are written in place, in this process only
        buf[lo - len(head):lo] = head  # type: ignore[index]
        buf[hi:hi + len(tail)] = tail  # type: ignore[index]
        text: Buffer | memoryview = memoryview(buf)[lo - len(head):hi + len(tail)]
    except TypeError:  # read-only: a copy
        text = bytearray(head)
        text += memoryview(buf)[lo:hi]
        text += tail
    if lo == 0:
        doc = _DECODER.decode(text)
        got = None
    else:
        doc = _TAIL_DECODER.decode(text)
        got = doc.tail
    parts = [_part(doc.packages), _part(doc.packages_conda), _part(got or {})]
    return doc.info, parts, braces


def _cut_split(buf: Buffer, pieces: int) -> Skeleton | None:
    splits = _split_points(buf, pieces)
    if not splits:
        return None
    bounds = [0, *splits, len(buf)]
    k = len(bounds) - 1
    nchunks = -(-len(buf) // CHUNK)
    tasks = [partial(_piece, buf, bounds[i] + (i > 0), bounds[i + 1], range(nchunks * i // k, nchunks * (i + 1) // k))
             for i in range(k)]
    got = run_forked(tasks)
    if any(r is None for r in got):
        return None
    res: list[_PieceResult] = got  # type: ignore[assignment]
    infos = [r[0] for r in res if r[0] is not None]
    if len(infos) > 1 or not _info_ok(infos[0] if infos else None):
        return None
    info = infos[0] if infos else None
    cum = list(accumulate(chain.from_iterable(r[2] for r in res), initial=0))
    firsts = [buf.find(b"{", p) for p in splits]  # each split's first entry
    present = _present(buf)
    for labels in _labelings(k):
        # per section, its parts in document order (a placeholder's entries come first in its piece)
        order: dict[str, list[_Part]] = {s: [] for s in SECTIONS}
        before: list[int] = []  # per split: entries of its section in the pieces before it
        for i, r in enumerate(res):
            if i > 0:
                before.append(sum(p[0] for p in order[labels[i - 1]]))
                order[labels[i - 1]].append(r[1][2])
            order[SECTIONS[0]].append(r[1][0])
            order[SECTIONS[1]].append(r[1][1])
        counts = [sum(p[0] for p in order[s]) for s in SECTIONS]
        sections = _sections(buf, info, counts, cum, present, search=False)
        if sections is None:
            continue
        at = dict(zip(SECTIONS, sections))
        if all(m < at[lab][1] and nth_brace(buf, cum, at[lab][2] + m) == f
               for lab, m, f in zip(labels, before, firsts)):
            if not all(map(_no_hidden_duplicate, order.values())):
                return None
            parts = [p for s in SECTIONS for p in order[s]]
            return Skeleton(info or {}, {"chunk": CHUNK, "cum": cum, "sections": sections},
                            NameTable.from_runs([h for p in parts for h in p[1]],
                                                [n for p in parts for n in p[2]], sum(counts)), k)
    return None


def _no_hidden_duplicate(parts: Sequence[_Part]) -> bool:
    """A section's parts hold no key twice (keys in order across all of them), or every key tells its name (a key
    twice is then refused when that name is read); otherwise a duplicate could hide in two names. (A large part
    in order is not checked for names: next to parts out of order it makes the cut go the one-pass way.)"""
    parts = [p for p in parts if p[0]]
    if all(p[3] for p in parts) and all(map(lt, (p[6] for p in parts), (p[5] for p in parts[1:]))):
        return True
    return all(p[4] for p in parts)


def _labelings(pieces: int) -> list[tuple[str, ...]]:
    """The sections the splits can fall in, in document order: the first few in one section, the rest in the other."""
    out: list[tuple[str, ...]] = []
    for a, b in (SECTIONS, SECTIONS[::-1]):
        for s in range(pieces):
            v = (a,) * s + (b,) * (pieces - 1 - s)
            if v not in out:
                out.append(v)
    return out


def _runs(names: Sequence[str]) -> tuple[list[str], list[int]]:
    """``names`` as runs: the name at each run's start, and the run lengths."""
    n = len(names)
    starts = [0, *compress(range(1, n), map(ne, names, islice(names, 1, None)))] if n else []
    return list(map(names.__getitem__, starts)), list(map(sub, [*starts[1:], n], starts))


class NameTable(Mapping[str, Sequence[int]]):
    """name -> entry numbers, in two flat parts that are also its index-file form: ``names`` maps a name to
    ``[first, count]`` in ``runs``, which are ``(first entry, entries)`` pairs (u32): conda-index sorts entries by
    file name, so a name's entries come in a few runs, and a table of 600k entries is ~50k runs."""

    def __init__(self, names: Mapping[str, Any], runs: Sequence[int], entries: int) -> None:
        self._names, self._runs, self._entries = names, runs, entries

    @classmethod
    def build(cls, names: Sequence[str]) -> NameTable:
        """The table of entries whose package names are ``names`` (in entry order)."""
        return cls.from_runs(*_runs(names), len(names))

    @classmethod
    def from_runs(cls, heads: Sequence[str], lengths: Sequence[int], entries: int) -> NameTable:
        """The table of ``entries`` entries given as runs: ``lengths[k]`` entries named ``heads[k]``, in order.
        A name met in one run (most, in conda-index's order) is placed as it comes; the others are grouped."""
        starts = list(accumulate(lengths, initial=0))
        runs_of = Counter(heads)
        one = list(map((1).__eq__, map(runs_of.__getitem__, heads)))
        many = list(map(not_, one))
        groups: defaultdict[str, list[Any]] = defaultdict(list)
        deque(map(list.append, map(groups.__getitem__, compress(heads, many)),
                  zip(compress(starts, many), compress(lengths, many))), maxlen=0)
        singles = list(compress(heads, one))
        counts = list(map(len, groups.values()))
        index: dict[str, Any] = dict(zip(singles, zip(range(len(singles)), repeat(1))))
        index.update(zip(groups, zip(accumulate(counts, initial=len(singles)), counts)))
        runs = array("I", chain(chain.from_iterable(zip(compress(starts, one), compress(lengths, one))),
                                chain.from_iterable(chain.from_iterable(groups.values()))))
        return cls(index, runs, entries)

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
    when one is not where the locator says (an index that does not belong to the document), or when two of them
    have one key in one section (a duplicate a split cut does not look for)."""
    if loc.get("chunk") != CHUNK:
        return None
    cum, sections = loc["cum"], loc["sections"]
    fns: list[str] = []
    out: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    last, start, k = -2, -1, -1
    for j in ords:
        if j == last + 1 and sections[k][0] <= j < sections[k][0] + sections[k][1]:
            start = buf.find(b"{", start + 1)  # the next entry of a run: the next "{"
        else:
            start = -1
            for k, (first, count, g0) in enumerate(sections):
                if first <= j < first + count:
                    start = nth_brace(buf, cum, g0 + j - first, base)
                    break
        if start < 0:
            return None
        last = j
        try:
            fn = _key_before(buf, start)
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return None
        obj = _entry_at(buf, start)
        if obj is None or fn is None or (k, fn) in seen:  # a key twice in a section: the exact parse keeps one
            return None
        seen.add((k, fn))
        fns.append(fn)
        out.append(obj)
    return fns, out
