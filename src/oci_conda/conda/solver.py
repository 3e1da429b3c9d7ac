"""Solve conda requests with libsolv as the SAT engine and conda's semantics kept in Python.

The ``solv`` wheel has no conda support (no ``DISTTYPE_CONDA``, no ``REL_CONDA``), so conda's version order and
MatchSpec semantics never reach libsolv. Instead:

* every record of a name gets an integer preference rank (fewest ``track_features``, then conda version order,
  then ``build_number``, then the build whose dependencies allow the newest versions, then ``timestamp``; with
  flexible priority the channel comes first) and that rank is the solvable's evr, so libsolv's "best" is conda's;
* every distinct dependency string becomes exactly the set of records it matches, written as an OR of rank
  intervals (``name >= a with name <= b``), computed once per string;
* ``constrains`` become conflicts with the records of that name that do not match;
* virtual packages are an installed, locked repo.

Only names reachable from the request through ``depends`` are considered, and records that can never be installed
(or that nothing can tell apart from a better one) are pruned before libsolv sees them: libsolv's one-per-name
rules are pairwise, so 2000 numpy builds would otherwise cost two million rules. After libsolv's answer, the
requested packages are raised to the newest versions that still solve (conda maximises what was asked for;
libsolv keeps the first choice that works). Failures are re-solved on the unpruned pool and explained in one line.
"""

from __future__ import annotations

import difflib
import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Callable, Iterable, Literal, Mapping, Sequence

import solv

from ..errors import OciCondaError, SolveError
from .matchspec import MatchSpec
from .records import PackageRecord
from .version import parse_version

ChannelPriority = Literal["strict", "flexible", "disabled"]

_GE = solv.REL_GT | solv.REL_EQ
_LE = solv.REL_LT | solv.REL_EQ

__all__ = ["solve", "dependency_order", "clear_index_cache", "ChannelPriority"]


# --------------------------------------------------------------------------------------------------------------
# the index: records by name, built once per set of channel sequences


class _Index:
    """Records grouped by name, per channel; kept while the caller passes the very same sequences."""

    def __init__(self, channels: tuple[Sequence[PackageRecord], ...]) -> None:
        self.channels = channels
        self.lengths = tuple(len(c) for c in channels)
        self.per_channel: list[Mapping[str, Sequence[PackageRecord]]] = []
        for recs in channels:
            if isinstance(recs, Mapping):  # already grouped by name (possibly lazily): use as is
                self.per_channel.append(recs)  # type: ignore[arg-type]
                continue
            d: dict[str, list[PackageRecord]] = {}
            # repodata lists files sorted by name, so grouping runs first is several times faster than per record
            for name, grp in groupby(recs, key=_NAME):
                have = d.get(name)
                if have is None:
                    d[name] = list(grp)
                else:
                    have.extend(grp)
            self.per_channel.append(d)
        self._names: set[str] | None = None

    def pairs(self, name: str) -> list[tuple[int, PackageRecord]]:
        return [(ci, r) for ci, d in enumerate(self.per_channel) for r in d.get(name, ())]

    def has(self, name: str) -> bool:
        return any(name in d for d in self.per_channel)

    def names(self) -> set[str]:
        if self._names is None:
            self._names = set().union(*(d.keys() for d in self.per_channel))
        return self._names


_NAME = attrgetter("name")
_INDEX_CACHE: list[_Index] = []


def clear_index_cache() -> None:
    """Forget the name index of the last channels solved (it keeps their record lists alive)."""
    _INDEX_CACHE.clear()


def _index(channels: Sequence[Sequence[PackageRecord]]) -> _Index:
    chans = tuple(channels)
    lengths = tuple(len(c) for c in chans)
    for ix in _INDEX_CACHE:
        if len(ix.channels) == len(chans) and ix.lengths == lengths and all(a is b for a, b in zip(ix.channels, chans)):
            return ix
    ix = _Index(chans)
    _INDEX_CACHE[:] = [ix]  # one entry: a re-solve of the same channels (e.g. a retry) reuses it
    return ix


# --------------------------------------------------------------------------------------------------------------
# matching


_MS_CACHE: dict[str, MatchSpec | OciCondaError] = {}


def _parse(spec: str) -> MatchSpec:
    got = _MS_CACHE.get(spec)
    if got is None:
        try:
            got = MatchSpec(spec)
        except OciCondaError as e:
            got = e
        if len(_MS_CACHE) > 500_000:
            _MS_CACHE.clear()
        _MS_CACHE[spec] = got
    if isinstance(got, OciCondaError):
        raise got
    return got


def _channel_label(url: str) -> str:
    """``conda-forge`` for ``https://host/conda-forge``; file URLs stay whole (their path is the name)."""
    if url == "@":
        return "the system (virtual package)"
    if url.startswith("file://"):
        return url
    rest = url.split("://", 1)[-1]
    parts = rest.split("/", 1)
    return parts[1] if len(parts) == 2 and parts[1] else rest


_DEP_NAME: dict[str, str] = {}


def _dep_name(spec: str) -> str:
    """The package name a depends/constrains string is about ("" if it does not parse); cached."""
    n = _DEP_NAME.get(spec)
    if n is None:
        try:
            n = _parse(spec).name
        except OciCondaError:
            n = ""
        if len(_DEP_NAME) > 500_000:
            _DEP_NAME.clear()
        _DEP_NAME[spec] = n
    return n


_FAST_FIELDS = frozenset({"name", "version", "build", "build_number"})


def _matcher(ms: MatchSpec) -> Callable[[PackageRecord], bool]:
    """A predicate for records of ``ms.name``: the fast path unless the spec names a channel, subdir, md5, ..."""
    if set(ms.fields()) <= _FAST_FIELDS:
        mvb = ms.match_version_build
        return lambda r: mvb(r.version, r.build, r.build_number)
    return ms.match


# --------------------------------------------------------------------------------------------------------------
# the problem: candidate records, ranks, the libsolv pool


@dataclass
class _Name:
    records: list[PackageRecord]  # rank order: records[i] has rank i + 1 (higher is better)
    channel_of: list[int]
    ids: list[int] = field(default_factory=list)  # solvable ids, same order


class _Problem:
    def __init__(
        self,
        channels: Sequence[Sequence[PackageRecord]],
        specs: Sequence[str],
        virtual: Sequence[PackageRecord],
        priority: ChannelPriority,
        prune: bool = True,
    ) -> None:
        self.do_prune = prune
        if priority not in ("strict", "flexible", "disabled"):
            raise SolveError(f"unknown channel priority {priority!r}; use strict, flexible or disabled")
        self.priority = priority
        self.index = _index(channels)
        self.specs = sorted(dict.fromkeys(s.strip() for s in specs if s and s.strip()))
        self.parsed = [(s, _parse(s)) for s in self.specs]
        self.virtual = {r.name: r for r in virtual}
        # ``chan::name`` requests: under strict priority that channel provides the name (MatchSpec compares channels)
        self.pinned_channel: dict[str, set[int]] = defaultdict(set)
        for _s, ms in self.parsed:
            if ms.channel is not None:
                probe = MatchSpec(name=ms.name, channel=ms.channel)
                self.pinned_channel[ms.name] |= {
                    ci for ci, r in self.index.pairs(ms.name) if probe.match(r)
                }
        self.names: dict[str, _Name] = {}
        self._top_cache: dict[str, tuple] = {}
        self._desc_cache: dict[str, list[PackageRecord]] = {}
        self.dep_strings: dict[int, str] = {}  # dep id -> original string, for explanations
        self.conflict_strings: dict[int, str] = {}

    @property
    def channel_urls(self) -> list[str]:
        """Each channel's URL, for messages (taken from its first record)."""
        out = []
        for c in self.index.channels:
            url = ""
            for r in (next(iter(c.values()), ()) if isinstance(c, Mapping) else c):  # type: ignore[arg-type]
                url = r.channel
                break
            out.append(url)
        return out

    # -- candidates -------------------------------------------------------------------------------------------

    def candidates(self, name: str) -> _Name | None:
        got = self.names.get(name)
        if got is not None or name in self.names:
            return got
        if name in self.virtual:
            got = _Name([self.virtual[name]], [-1])
        elif name.startswith("__"):
            got = None  # a virtual package the target system does not have
        else:
            got = self._rank(self.index.pairs(name), name)
        self.names[name] = got  # type: ignore[assignment]
        return got

    def _rank(self, pairs: Iterable[tuple[int, PackageRecord]], name: str) -> _Name | None:
        pairs = list(pairs)
        if not pairs:
            return None
        if self.priority == "strict":
            pinned = self.pinned_channel.get(name)
            present = {ci for ci, _ in pairs}
            allowed = (pinned & present) if pinned else present
            if allowed:
                best = min(allowed)
                pairs = [(ci, r) for ci, r in pairs if ci == best]
            else:
                pairs = [(ci, r) for ci, r in pairs if ci == min(present)]
        # a package published both as .conda and .tar.bz2 is one candidate: keep the .conda
        uniq: dict[tuple, tuple[int, PackageRecord]] = {}
        for ci, r in pairs:
            key = (ci, r.subdir, r.version, r.build)
            old = uniq.get(key)
            if old is None or (old[1].ext != ".conda" and r.ext == ".conda"):
                uniq[key] = (ci, r)
        flexible = self.priority == "flexible"
        for k, (ci, r) in list(uniq.items()):
            try:
                parse_version(r.version)
            except OciCondaError:  # conda cannot order it either; such a record is never a candidate
                del uniq[k]
        if not uniq:
            return None

        def key(p: tuple[int, PackageRecord]) -> tuple:
            ci, r = p
            return (-ci if flexible else 0, -len(r.track_features), parse_version(r.version), r.build_number)

        def tiebreak(p: tuple[int, PackageRecord]) -> tuple:
            ci, r = p
            return (r.timestamp, -ci, r.subdir != "noarch", r.build)

        ranked = sorted(uniq.values(), key=lambda p: (key(p), tiebreak(p)))
        # builds of one version (numpy for py310, py311, py312) would otherwise be ordered by upload time; like
        # conda and rattler, prefer the build whose dependencies allow the newest versions
        out: list[tuple[int, PackageRecord]] = []
        i = 0
        while i < len(ranked):
            j = i + 1
            k = key(ranked[i])
            while j < len(ranked) and key(ranked[j]) == k:
                j += 1
            group = ranked[i:j]
            if len(group) > 1:
                tops = [self._dep_tops(r) for _, r in group]
                names = sorted({n for t in tops for n in t})
                order = sorted(
                    range(len(group)),
                    key=lambda g: (tuple(tops[g].get(n, (0,)) for n in names), tiebreak(group[g])),
                )
                group = [group[g] for g in order]
            out.extend(group)
            i = j
        ranked = out
        return _Name([r for _, r in ranked], [ci for ci, _ in ranked])

    def _dep_tops(self, r: PackageRecord) -> dict[str, tuple]:
        """For each dependency of ``r``: (1, -features, newest version) of the best record it allows, or (0,).

        Features count first, as conda minimises them over the whole environment: ``blas * openblas`` beats
        ``blas * mkl`` when only the mkl ``libblas`` carries ``track_features``.
        """
        out: dict[str, tuple] = {}
        for d in r.depends:
            top = self._top_cache.get(d)
            if top is None:
                top = (0,)
                try:
                    ms = _parse(d)
                except OciCondaError:
                    ms = None
                if ms is not None:
                    pred = _matcher(ms)
                    for cand in self._by_version_desc(ms.name):
                        if pred(cand):
                            top = (1, -len(cand.track_features), parse_version(cand.version))
                            break
                    out_name = ms.name
                else:
                    out_name = d
                self._top_cache[d] = top = (out_name, top)  # type: ignore[assignment]
            out[top[0]] = top[1]
        return out

    def _by_version_desc(self, name: str) -> list[PackageRecord]:
        got = self._desc_cache.get(name)
        if got is None:
            if name in self.virtual:
                got = [self.virtual[name]]
            else:
                recs = []
                for _, r in self.index.pairs(name):
                    try:
                        recs.append((parse_version(r.version), r.build_number, r))
                    except OciCondaError:
                        continue
                recs.sort(key=lambda t: (-len(t[2].track_features), t[0], t[1]), reverse=True)
                got = [t[2] for t in recs]
            self._desc_cache[name] = got
        return got

    def reachable(self) -> list[str]:
        """Names reachable from the request and the virtual packages through ``depends``."""
        seen: set[str] = set()
        todo = [ms.name for _, ms in self.parsed] + sorted(self.virtual)
        preds: dict[str, list[Callable[[PackageRecord], bool]]] = defaultdict(list)
        for _s, ms in self.parsed:
            preds[ms.name].append(_matcher(ms))
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            cand = self.candidates(name)
            if cand is None:
                continue
            deps: set[str] = set()
            ps = preds.get(name)
            for r in cand.records:
                if ps is None or all(p(r) for p in ps):  # a requested name only through what the request allows
                    deps.update(r.depends)
            for d in deps:
                dn = _dep_name(d)
                if dn and dn not in seen:
                    todo.append(dn)
        return sorted(seen)

    # -- the pool ---------------------------------------------------------------------------------------------

    def _match_idx(self, spec: str) -> tuple[str, list[int]] | None:
        """(name, 0-based indices into the name's full candidate list that ``spec`` matches); None if unparseable."""
        got = self._midx.get(spec, False)
        if got is not False:
            return got  # type: ignore[return-value]
        try:
            ms = _parse(spec)
        except OciCondaError:
            self._midx[spec] = None
            return None
        cand = self.candidates(ms.name)
        if cand is None:
            got = (ms.name, [])
        else:
            pred = _matcher(ms)
            got = (ms.name, [i for i, r in enumerate(cand.records) if pred(r)])
        self._midx[spec] = got
        return got

    def prune(self) -> list[str]:
        """Drop candidates that can never be installed, so libsolv sees far fewer (its same-name rules are pairwise).

        Removed, all soundly: records of a requested name that do not match every request for it; records with a
        dependency nothing left can satisfy (to a fixpoint: a python 2.7 numpy goes once ``python >=3.10`` is asked
        for); and all but the best of records that no depends/constrains/request can tell apart. Returns the names
        still reachable from the request.
        """
        names = [n for n in self.reachable() if self.candidates(n) is not None]
        cands = {n: self.candidates(n) for n in names}
        alive = {n: [True] * len(c.records) for n, c in cands.items()}  # type: ignore[union-attr]
        for _spec, ms in self.parsed:
            a = alive.get(ms.name)
            if a is None:
                continue
            pred = _matcher(ms)
            for i, r in enumerate(cands[ms.name].records):  # type: ignore[union-attr]
                if a[i] and not pred(r):
                    a[i] = False
        while True:
            ok_cache: dict[str, bool] = {}
            killed = 0
            for n, c in cands.items():
                a = alive[n]
                for i, r in enumerate(c.records):  # type: ignore[union-attr]
                    if not a[i]:
                        continue
                    for d in r.depends:
                        ok = ok_cache.get(d)
                        if ok is None:
                            m = self._match_idx(d)
                            ok = False
                            if m is not None and m[0] in alive:
                                ad = alive[m[0]]
                                ok = any(ad[j] for j in m[1])
                            ok_cache[d] = ok
                        if not ok:
                            a[i] = False
                            killed += 1
                            break
            if not killed:
                break
        # interchangeable records: same depends and constrains, and matched by exactly the same strings
        strings: set[str] = set()
        for n, c in cands.items():
            a = alive[n]
            for i, r in enumerate(c.records):  # type: ignore[union-attr]
                if a[i]:
                    strings.update(r.depends)
                    strings.update(r.constrains)
        users: dict[str, set[str]] = defaultdict(set)
        for d in strings:
            users[_dep_name(d)].add(d)
        for n, c in cands.items():
            a = alive[n]
            if sum(a) < 2:
                continue
            sig: list[list[int]] = [[] for _ in a]
            for k, d in enumerate(sorted(users.get(n, ()))):
                m = self._match_idx(d)
                if m is not None:
                    for j in m[1]:
                        sig[j].append(k)
            seen: set[tuple] = set()
            for i in range(len(a) - 1, -1, -1):  # best first
                if a[i]:
                    r = c.records[i]  # type: ignore[union-attr]
                    key = (frozenset(r.depends), frozenset(r.constrains), tuple(sig[i]))
                    if key in seen:
                        a[i] = False
                    else:
                        seen.add(key)
        # keep the survivors, in preference order, and only names the request still reaches through them
        self._remap: dict[str, list[int]] = {}
        for n, c in cands.items():
            a = alive[n]
            remap, k = [], 0
            for flag in a:
                if flag:
                    k += 1
                    remap.append(k)
                else:
                    remap.append(0)
            self._remap[n] = remap
            self.names[n] = _Name([r for r, f in zip(c.records, a) if f], [ci for ci, f in zip(c.channel_of, a) if f])  # type: ignore[union-attr]
        seen_names: set[str] = set()
        todo = [ms.name for _, ms in self.parsed] + sorted(self.virtual)
        while todo:
            n = todo.pop()
            if n in seen_names or n not in cands:
                continue
            seen_names.add(n)
            deps: set[str] = set()
            for r in self.names[n].records:
                deps.update(r.depends)
            for d in deps:
                dn = _dep_name(d)
                if dn not in seen_names:
                    todo.append(dn)
        return sorted(seen_names)

    def build_pool(self, prune: bool = True) -> None:
        pool = self.pool = solv.Pool()
        self._midx: dict[str, tuple[str, list[int]] | None] = {}
        self._remap = {}
        names = self.prune() if prune else self.reachable()
        repo = pool.add_repo("channels")
        vrepo = pool.add_repo("virtual")
        self.solvable_record: dict[int, PackageRecord] = {}
        str2id = pool.str2id
        rel2id = pool.rel2id
        self._rank_ids: list[int] = []
        for name in names:
            cand = self.candidates(name)
            if cand is None:
                continue
            nid = str2id(name)
            for i, (r, ci) in enumerate(zip(cand.records, cand.channel_of), 1):
                s = (vrepo if ci < 0 else repo).add_solvable()
                s.nameid = nid
                s.evrid = self._rank_id(i)
                s.add_deparray(solv.SOLVABLE_PROVIDES, rel2id(nid, s.evrid, solv.REL_EQ))
                cand.ids.append(s.id)
                self.solvable_record[s.id] = r
        self._dep_cache: dict[str, int] = {}
        self._con_cache: dict[str, int] = {}
        for name in names:
            cand = self.candidates(name)
            if cand is None:
                continue
            for sid, r in zip(cand.ids, cand.records):
                if not r.depends and not r.constrains:
                    continue
                s = pool.solvables[sid]
                for d in r.depends:
                    s.add_deparray(solv.SOLVABLE_REQUIRES, self.dep_id(d))
                for c in r.constrains:
                    cid = self.constrain_id(c)
                    if cid:
                        s.add_deparray(solv.SOLVABLE_CONFLICTS, cid)
        repo.internalize()
        vrepo.internalize()
        pool.installed = vrepo
        pool.createwhatprovides()

    def _rank_id(self, rank: int) -> int:
        ids = self._rank_ids
        while len(ids) <= rank:
            ids.append(self.pool.str2id(str(len(ids))))
        return ids[rank]

    def _ranks_dep(self, name: str, ranks: list[int], total: int) -> int:
        """A dep matching exactly the records of ``name`` with these ranks (sorted, 1-based)."""
        pool = self.pool
        nid = pool.str2id(name)
        if len(ranks) == total:
            return nid
        parts: list[int] = []
        i = 0
        while i < len(ranks):
            j = i
            while j + 1 < len(ranks) and ranks[j + 1] == ranks[j] + 1:
                j += 1
            lo, hi = ranks[i], ranks[j]
            if lo == hi:
                parts.append(pool.rel2id(nid, self._rank_id(lo), solv.REL_EQ))
            elif lo == 1:
                parts.append(pool.rel2id(nid, self._rank_id(hi), _LE))
            elif hi == total:
                parts.append(pool.rel2id(nid, self._rank_id(lo), _GE))
            else:
                parts.append(
                    pool.rel2id(
                        pool.rel2id(nid, self._rank_id(lo), _GE),
                        pool.rel2id(nid, self._rank_id(hi), _LE),
                        solv.REL_WITH,
                    )
                )
            i = j + 1
        dep = parts[0]
        for p in parts[1:]:
            dep = pool.rel2id(dep, p, solv.REL_OR)
        return dep

    def matching_ranks(self, spec: str) -> tuple[str, list[int], int] | None:
        """(name, ranks of the candidates ``spec`` matches, number of candidates); None if it cannot parse."""
        try:
            ms = _parse(spec)
        except OciCondaError:
            return None
        cand = self.candidates(ms.name)
        if cand is None:
            return ms.name, [], 0
        remap = self._remap.get(ms.name)
        if remap is not None:
            m = self._match_idx(spec)
            assert m is not None
            return ms.name, [remap[j] for j in m[1] if remap[j]], len(cand.records)
        pred = _matcher(ms)
        return ms.name, [i for i, r in enumerate(cand.records, 1) if pred(r)], len(cand.records)

    def dep_id(self, dep: str) -> int:
        got = self._dep_cache.get(dep)
        if got is not None:
            return got
        m = self.matching_ranks(dep)
        if m is None or not m[1]:
            did = self.pool.str2id(f"{dep} (no candidate)")
        else:
            did = self._ranks_dep(*m)
        self._dep_cache[dep] = did
        self.dep_strings.setdefault(did, dep)
        return did

    def constrain_id(self, con: str) -> int:
        got = self._con_cache.get(con)
        if got is not None:
            return got
        m = self.matching_ranks(con)
        cid = 0
        if m is not None and m[2]:
            name, ranks, total = m
            ok = set(ranks)
            bad = [i for i in range(1, total + 1) if i not in ok]
            if bad:
                cid = self._ranks_dep(name, bad, total)
                self.conflict_strings.setdefault(cid, con)
        self._con_cache[con] = cid
        return cid

    # -- solving ----------------------------------------------------------------------------------------------

    def check_request(self) -> None:
        """Fail early, with suggestions, for names no channel has and specs nothing matches."""
        problems: list[str] = []

        def chans() -> str:
            return ", ".join(_channel_label(u) for u in self.channel_urls if u) or "no channels"

        for spec, ms in self.parsed:
            cand = self.candidates(ms.name)
            if cand is None:
                if ms.name.startswith("__"):
                    have = ", ".join(f"{r.name} {r.version}" for r in self.virtual.values()) or "none"
                    problems.append(
                        f"virtual package {ms.name} is not available on the target platform (it has: {have}); "
                        f"set it in the image section or with CONDA_OVERRIDE_{ms.name[2:].upper()}"
                    )
                    continue
                close = difflib.get_close_matches(ms.name, sorted(self.index.names()), n=3, cutoff=0.75)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                problems.append(f"package {ms.name!r} not found in {chans()}{hint}")
                continue
            pred = _matcher(ms)
            if ms.name in self.virtual and not pred(self.virtual[ms.name]):
                v = self.virtual[ms.name]
                problems.append(
                    f"the target system has {v.name} {v.version}, which does not match {spec!r}; set it in the image "
                    f"section or with CONDA_OVERRIDE_{ms.name[2:].upper()}"
                )
                continue
            if not any(pred(r) for r in cand.records):
                versions = list(dict.fromkeys(r.version for r in reversed(cand.records)))
                shown = ", ".join(versions[:8]) + (", ..." if len(versions) > 8 else "")
                where = _channel_label(cand.records[0].channel) if self.priority == "strict" else chans()
                extra = ""
                if ms.channel is not None and not self.pinned_channel.get(ms.name):
                    extra = f" (none of the channels is {ms.channel!r})"
                problems.append(f"nothing in {where} matches {spec!r}{extra}; available {ms.name} versions: {shown}")
        if problems:
            raise SolveError("; ".join(problems))

    def _jobs(self) -> list | None:
        """One install job per request (over the records it matches) and a lock per virtual package."""
        pool = self.pool
        jobs = []
        for _spec, ms in self.parsed:
            cand = self.candidates(ms.name)
            assert cand is not None
            pred = _matcher(ms)
            ids = [sid for sid, r in zip(cand.ids, cand.records) if pred(r)]
            if not ids:
                return None
            jobs.append(pool.Job(solv.Job.SOLVER_SOLVABLE_ONE_OF | solv.Job.SOLVER_INSTALL, pool.towhatprovides(ids)))
        for s in pool.installed.solvables:
            jobs.append(pool.Job(solv.Job.SOLVER_SOLVABLE | solv.Job.SOLVER_LOCK, s.id))
        return jobs

    def run(self) -> list[PackageRecord]:
        self.check_request()
        self.build_pool(prune=self.do_prune)
        jobs = self._jobs()
        if jobs is not None:
            solver = self.pool.Solver()
            if not solver.solve(jobs):
                chosen = [s.id for s in solver.transaction().newsolvables()]
                chosen = self.maximise_requested(jobs, chosen)
                return dependency_order([self.solvable_record[sid] for sid in chosen])
        # unsatisfiable: solve again on the whole, unpruned pool so that libsolv can say why
        self.names = {}
        self.dep_strings = {}
        self.conflict_strings = {}
        self.build_pool(prune=False)
        jobs = self._jobs()
        assert jobs is not None  # check_request() saw a match for every request
        solver = self.pool.Solver()
        problems = solver.solve(jobs)
        if problems:
            raise SolveError(self.explain(problems))
        # pruning only removes what cannot be installed, so this is not reached; still return a valid answer
        chosen = [s.id for s in solver.transaction().newsolvables()]
        return dependency_order([self.solvable_record[sid] for sid in chosen])

    def _pref(self, ci: int, r: PackageRecord) -> tuple:
        """The part of the rank that counts as "better" for a requested package: channel (flexible), features, version."""
        return (-ci if self.priority == "flexible" else 0, -len(r.track_features), parse_version(r.version))

    def maximise_requested(self, jobs: list, chosen: list[int]) -> list[int]:
        """Raise the requested packages to the newest versions that still solve, one name at a time.

        libsolv settles the jobs in order and keeps the first choice that works, so ``numpy`` may pin an older
        ``python`` than ``python >=3.10`` allows. Conda maximises the requested packages' versions, so we try
        newer versions of each (dependencies first: ``python`` before ``numpy`` before ``pandas``) and keep each
        gain while improving the next.
        """
        pool = self.pool
        preds: dict[str, list[Callable[[PackageRecord], bool]]] = defaultdict(list)
        for _spec, ms in self.parsed:
            preds[ms.name].append(_matcher(ms))
        current = {self.solvable_record[sid].name: sid for sid in chosen}
        order = [r.name for r in dependency_order([self.solvable_record[sid] for sid in chosen]) if r.name in preds]
        extra: list = []
        for name in order:
            cand = self.candidates(name)
            assert cand is not None
            ok = [(sid, r, self._pref(ci, r)) for sid, r, ci in zip(cand.ids, cand.records, cand.channel_of)
                  if all(p(r) for p in preds[name])]
            pref_of = {sid: pref for sid, _r, pref in ok}
            for _attempt in range(8):
                cur_v = pref_of[current[name]]
                higher = [sid for sid, _r, pref in ok if pref > cur_v]
                if not higher:
                    break
                solver = pool.Solver()
                job = pool.Job(solv.Job.SOLVER_SOLVABLE_ONE_OF | solv.Job.SOLVER_INSTALL, pool.towhatprovides(higher))
                if solver.solve(jobs + extra + [job]):
                    break
                chosen = [s.id for s in solver.transaction().newsolvables()]
                current = {self.solvable_record[sid].name: sid for sid in chosen}
            cur_v = pref_of[current[name]]
            keep = [sid for sid, _r, pref in ok if pref >= cur_v]
            extra.append(pool.Job(solv.Job.SOLVER_SOLVABLE_ONE_OF | solv.Job.SOLVER_INSTALL, pool.towhatprovides(keep)))
        return chosen

    # -- explanations -----------------------------------------------------------------------------------------

    def explain(self, problems: list) -> str:
        """Turn libsolv's rule lists into a few grouped sentences naming the requested specs in conflict."""
        out: list[str] = []
        for problem in problems:
            asked: list[str] = []
            for sol in problem.solutions():
                for el in sol.elements(False):
                    if el.type in (solv.Solver.SOLVER_SOLUTION_JOB, solv.Solver.SOLVER_SOLUTION_POOLJOB):
                        if 0 <= el.jobidx < len(self.parsed):
                            asked.append(self.parsed[el.jobidx][0])
            asked = sorted(dict.fromkeys(asked))
            reasons = self._reasons(problem, asked)
            head = (
                "cannot install " + " together with ".join(repr(a) for a in asked)
                if len(asked) > 1
                else f"cannot install {asked[0]!r}"
                if asked
                else "the request cannot be satisfied"
            )
            out.append(head + (": " + "; ".join(reasons) if reasons else ""))
        return " | ".join(dict.fromkeys(out))

    def _reasons(self, problem, asked: list[str]) -> list[str]:
        req: dict[tuple[str, str], list[PackageRecord]] = defaultdict(list)
        missing: dict[tuple[str, str], list[PackageRecord]] = defaultdict(list)
        cons: dict[tuple[str, str], list[PackageRecord]] = defaultdict(list)
        same: set[str] = set()
        for rule in problem.findallproblemrules():
            for info in rule.allinfos():
                rec = self.solvable_record.get(info.solvable.id) if info.solvable else None
                t = info.type
                if t == solv.Solver.SOLVER_RULE_PKG_REQUIRES and rec is not None:
                    dep = self.dep_strings.get(info.dep_id, str(info.dep))
                    req[(rec.name, dep)].append(rec)
                elif t == solv.Solver.SOLVER_RULE_PKG_NOTHING_PROVIDES_DEP and rec is not None:
                    dep = self.dep_strings.get(info.dep_id, str(info.dep))
                    missing[(rec.name, dep)].append(rec)
                elif t == solv.Solver.SOLVER_RULE_PKG_CONFLICTS and rec is not None:
                    con = self.conflict_strings.get(info.dep_id, str(info.dep))
                    cons[(rec.name, con)].append(rec)
                elif t == solv.Solver.SOLVER_RULE_PKG_SAME_NAME and rec is not None:
                    same.add(rec.name)
        asked_names = {_parse(a).name: a for a in asked}
        lines: list[str] = []
        for (name, dep), recs in sorted(req.items(), key=lambda kv: (kv[0][0] not in asked_names, kv[0])):
            line = f"{_describe(recs)} needs {dep}"
            dn = self._safe_name(dep)
            if dn in asked_names and asked_names[dn] != dep:
                line += f", but you asked for {asked_names[dn]}"
            elif dn in self.virtual:
                v = self.virtual[dn]
                line += f", but the target system has {v.name} {v.version}"
            lines.append(line)
        for (name, dep), recs in sorted(missing.items()):
            dn = self._safe_name(dep)
            if dn.startswith("__") and dn not in self.virtual:
                why = f"the target system has no {dn} (set it with CONDA_OVERRIDE_{dn[2:].upper()})"
            elif dn.startswith("__"):
                v = self.virtual[dn]
                why = f"the target system has {v.name} {v.version}"
            elif self.candidates(dn) is None:
                why = f"no channel has {dn}"
            else:
                cand = self.candidates(dn)
                versions = list(dict.fromkeys(r.version for r in reversed(cand.records))) if cand else []
                shown = ", ".join(versions[:5]) + (", ..." if len(versions) > 5 else "")
                why = f"no available package matches it (there is {dn} {shown})" if shown else "nothing matches it"
            lines.append(f"{_describe(recs)} needs {dep}, but {why}")
        for (name, con), recs in sorted(cons.items()):
            line = f"{_describe(recs)} constrains {con}"
            dn = self._safe_name(con)
            if dn in asked_names:
                line += f", but you asked for {asked_names[dn]}"
            lines.append(line)
        for name in sorted(same):
            lines.append(f"only one {name} can be installed")
        if len(lines) > 12:
            lines = lines[:12] + [f"and {len(lines) - 12} more reasons"]
        return lines

    @staticmethod
    def _safe_name(spec: str) -> str:
        try:
            return _parse(spec).name
        except OciCondaError:
            return spec.split()[0] if spec.split() else spec


def _describe(recs: list[PackageRecord]) -> str:
    """``numpy 2.1.0, 2.1.3`` or ``numpy 1.20.0 ... 2.1.3 (14 builds)`` for a group of records of one name."""
    name = recs[0].name
    versions = sorted({r.version for r in recs}, key=parse_version)
    if len(versions) == 1:
        builds = sorted({r.build for r in recs})
        if len(builds) == 1:
            return f"{name} {versions[0]} {builds[0]}"
        return f"{name} {versions[0]}"
    if len(versions) <= 3:
        return f"{name} {', '.join(versions)}"
    return f"{name} {versions[0]} ... {versions[-1]} ({len(versions)} versions)"


# --------------------------------------------------------------------------------------------------------------
# public API


def dependency_order(records: Sequence[PackageRecord]) -> list[PackageRecord]:
    """Dependencies before dependents (install order); ties and cycles broken by name, so the order is stable."""
    by_name = {r.name: r for r in records}
    deps: dict[str, set[str]] = {}
    for r in records:
        ds = set()
        for d in r.depends:
            try:
                dn = _parse(d).name
            except OciCondaError:
                continue
            if dn in by_name and dn != r.name:
                ds.add(dn)
        deps[r.name] = ds
    # strongly connected components (cycles such as python <-> pip) are placed as one unit; inside one, compiled
    # packages come before noarch: python ones (python before pip, which needs an interpreter to be linked), then
    # by name
    comp_of = _components(sorted(deps), deps)
    members: dict[int, list[str]] = defaultdict(list)
    for n in sorted(deps, key=lambda n: (by_name[n].noarch == "python", n)):
        members[comp_of[n]].append(n)
    cdeps: dict[int, set[int]] = {c: set() for c in members}
    for n, ds in deps.items():
        cdeps[comp_of[n]] |= {comp_of[d] for d in ds if comp_of[d] != comp_of[n]}
    users: dict[int, list[int]] = defaultdict(list)
    for c, ds in cdeps.items():
        for d in ds:
            users[d].append(c)
    waiting = {c: len(ds) for c, ds in cdeps.items()}
    ready = [(min(members[c]), c) for c, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    out: list[PackageRecord] = []
    while ready:
        _, c = heapq.heappop(ready)
        out.extend(by_name[n] for n in members[c])
        for u in users[c]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (min(members[u]), u))
    return out


def _components(nodes: list[str], edges: dict[str, set[str]]) -> dict[str, int]:
    """Tarjan's strongly connected components, iteratively (dependency chains can be long)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp[w] = index[v]
                    if w == v:
                        break
    return comp


def solve(
    channels: Sequence[Sequence[PackageRecord]],
    specs: Sequence[str],
    virtual_packages: Sequence[PackageRecord] = (),
    channel_priority: Literal["strict", "flexible", "disabled"] = "strict",
) -> list[PackageRecord]:
    """Pick one record per needed name so that every request, depends and constrains holds, preferring newest.

    ``channels[0]`` has the highest priority. A channel may also be given as a ``Mapping`` from package name to
    that name's records (for instance one that parses repodata shards on first access): then only the names the
    request can reach are ever looked up, instead of every record being scanned once. Returns the records to install (no virtual packages) with
    dependencies first. Raises ``SolveError`` naming the conflicting requests and the chain that causes it.
    """
    if not specs:
        return []
    return _Problem(channels, specs, virtual_packages, channel_priority).run()
