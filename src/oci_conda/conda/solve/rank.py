"""Which records a solve considers and in what order: conda's preference as an integer rank per name.

Every record of a name gets a rank (fewest ``track_features``, then conda version order, then ``build_number``,
then the build whose dependencies allow the newest versions, then ``timestamp``; with flexible priority the
channel comes first), so libsolv's "best" is conda's. Only names reachable from the request through ``depends``
are looked at, and records that can never be installed (or that nothing can tell apart from a better one) are
pruned before libsolv sees them: its one-per-name rules are pairwise, so 2000 numpy builds would otherwise cost two
million rules.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Callable, Iterable, Literal, Mapping, Sequence, Union

from ...errors import OciCondaError, SolveError
from ..matchspec import MatchSpec, dep_name, parse_spec
from ..records import PackageRecord
from ..version import parse_version

ChannelPriority = Literal["strict", "flexible", "disabled"]
#: One channel's records: a plain list, or a (lazy) mapping from package name to that name's records.
ChannelRecords = Union[Sequence[PackageRecord], Mapping[str, Sequence[PackageRecord]]]

__all__ = ["ChannelPriority", "ChannelRecords", "Candidates", "Ranked", "clear_index_cache", "matcher"]


# --------------------------------------------------------------------------------------------------------------
# the index: records by name, built once per set of channel sequences

class _Index:
    """Records grouped by name, per channel; kept while the caller passes the very same sequences."""

    def __init__(self, channels: tuple[ChannelRecords, ...]) -> None:
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

def _index(channels: Sequence[ChannelRecords]) -> _Index:
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


_FAST_FIELDS = frozenset({"name", "version", "build", "build_number"})

def matcher(ms: MatchSpec) -> Callable[[PackageRecord], bool]:
    """A predicate for records of ``ms.name``: the fast path unless the spec names a channel, subdir, md5, ..."""
    if set(ms.fields()) <= _FAST_FIELDS:
        mvb = ms.match_version_build
        return lambda r: mvb(r.version, r.build, r.build_number)
    return ms.match


# --------------------------------------------------------------------------------------------------------------
# candidates: ranked records per name


@dataclass
class Ranked:
    """The candidates of one name, worst first: ``records[i]`` has rank ``i + 1`` (higher is better)."""

    records: list[PackageRecord]
    channel_of: list[int]  # index of the channel each record came from (-1: a virtual package)
    ids: list[int] = field(default_factory=list)  # libsolv solvable ids, same order (filled by the pool)

class Candidates:
    """The request's view of the channels: parsed specs, ranked candidates per name, reachability and pruning."""

    def __init__(
        self,
        channels: Sequence[ChannelRecords],
        specs: Sequence[str],
        virtual: Sequence[PackageRecord],
        priority: ChannelPriority,
    ) -> None:
        if priority not in ("strict", "flexible", "disabled"):
            raise SolveError(f"unknown channel priority {priority!r}; use strict, flexible or disabled")
        self.priority = priority
        self.index = _index(channels)
        self.specs = sorted(dict.fromkeys(s.strip() for s in specs if s and s.strip()))
        self.parsed = [(s, parse_spec(s)) for s in self.specs]
        self.virtual = {r.name: r for r in virtual}
        # ``chan::name`` requests: under strict priority that channel provides the name (MatchSpec compares channels)
        self.pinned_channel: dict[str, set[int]] = defaultdict(set)
        for _s, ms in self.parsed:
            if ms.channel is not None:
                probe = MatchSpec(name=ms.name, channel=ms.channel)
                self.pinned_channel[ms.name] |= {
                    ci for ci, r in self.index.pairs(ms.name) if probe.match(r)
                }
        self.names: dict[str, Ranked | None] = {}
        self._top_cache: dict[str, tuple] = {}
        self._desc_cache: dict[str, list[PackageRecord]] = {}
        self._midx: dict[str, tuple[str, list[int]] | None] = {}
        self.remap: dict[str, list[int]] = {}  # after prune(): full-list position -> surviving rank (0: pruned)

    def restart(self, *, forget_ranking: bool = False) -> None:
        """Before a pool is built: drop the match and prune caches (and with ``forget_ranking`` the pruned lists,
        so the next pool sees every candidate again)."""
        if forget_ranking:
            self.names = {}
        self._midx = {}
        self.remap = {}

    @property
    def channel_urls(self) -> list[str]:
        """Each channel's URL, for messages: the mapping's own ``channel`` when it has one (a gateway index: asking
        it for a record could fetch a shard, on an error path and maybe offline), else its first record's."""
        out = []
        for c in self.index.channels:
            url = getattr(getattr(c, "channel", None), "url", None)
            if isinstance(url, str):
                out.append(url)
                continue
            url = ""
            for r in (next(iter(c.values()), ()) if isinstance(c, Mapping) else c):  # type: ignore[arg-type]
                url = r.channel
                break
            out.append(url)
        return out

    # -- candidates -------------------------------------------------------------------------------------------

    def candidates(self, name: str) -> Ranked | None:
        got = self.names.get(name)
        if got is not None or name in self.names:
            return got
        if name in self.virtual:
            got = Ranked([self.virtual[name]], [-1])
        elif name.startswith("__"):
            got = None  # a virtual package the target system does not have
        else:
            got = self._rank(self.index.pairs(name), name)
        self.names[name] = got  # type: ignore[assignment]
        return got

    def _rank(self, pairs: Iterable[tuple[int, PackageRecord]], name: str) -> Ranked | None:
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
        return Ranked([r for _, r in ranked], [ci for ci, _ in ranked])

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
                    ms = parse_spec(d)
                except OciCondaError:
                    ms = None
                if ms is not None:
                    pred = matcher(ms)
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
            preds[ms.name].append(matcher(ms))
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
                dn = dep_name(d)
                if dn and dn not in seen:
                    todo.append(dn)
        return sorted(seen)

    # -- the pool ---------------------------------------------------------------------------------------------

    def match_idx(self, spec: str) -> tuple[str, list[int]] | None:
        """(name, 0-based indices into the name's full candidate list that ``spec`` matches); None if unparseable."""
        got = self._midx.get(spec, False)
        if got is not False:
            return got  # type: ignore[return-value]
        try:
            ms = parse_spec(spec)
        except OciCondaError:
            self._midx[spec] = None
            return None
        cand = self.candidates(ms.name)
        if cand is None:
            got = (ms.name, [])
        else:
            pred = matcher(ms)
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
            pred = matcher(ms)
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
                            m = self.match_idx(d)
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
            users[dep_name(d)].add(d)
        for n, c in cands.items():
            a = alive[n]
            if sum(a) < 2:
                continue
            sig: list[list[int]] = [[] for _ in a]
            for k, d in enumerate(sorted(users.get(n, ()))):
                m = self.match_idx(d)
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
        self.remap = {}
        for n, c in cands.items():
            a = alive[n]
            remap, k = [], 0
            for flag in a:
                if flag:
                    k += 1
                    remap.append(k)
                else:
                    remap.append(0)
            self.remap[n] = remap
            self.names[n] = Ranked([r for r, f in zip(c.records, a) if f], [ci for ci, f in zip(c.channel_of, a) if f])  # type: ignore[union-attr]
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
                dn = dep_name(d)
                if dn not in seen_names:
                    todo.append(dn)
        return sorted(seen_names)

    def pref(self, ci: int, r: PackageRecord) -> tuple:
        """The part of the rank that counts as "better" for a requested package: channel (flexible), features, version."""
        return (-ci if self.priority == "flexible" else 0, -len(r.track_features), parse_version(r.version))
