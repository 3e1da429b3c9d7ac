"""Channels -> per channel a lazy ``name -> records`` mapping for the solver.

Per channel and subdir (the platform's and ``noarch``) the gateway picks a :class:`~.subdir.SubdirSource`: the
CEP-16 shard index when the caller names what it will ask for and the channel publishes one, else the whole
repodata (local or HTTP, cut into a per-name index). All subdirs are opened in parallel (``parallel.py``, bounded
by ``--jobs``), and opened sources are kept for the gateway's lifetime, so a build that solves several platforms
opens ``noarch`` once. Sharded subdirs are prefetched in parallel through the names reachable from the request,
level by level, so the solver then finds every shard it needs already there.

Mirrors (``mirrors.py``) are the ordered list of places a channel is read from: each mirror location is opened in
turn (shards, then whole repodata), and the channel itself is the last resort; a location that cannot be reached or
does not have the subdir is skipped. Records read through a mirror keep the channel's own URLs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence

from ..errors import ChannelError
from ..http import is_offline
from ..parallel import DEFAULT_JOBS, thread_pool
from ..credentials import redact_url
from .channel import Channel
from .matchspec import dep_name
from .mirrors import Mirrors, mirrors_from_env
from .records import PackageRecord
from .repodata import merge_record
from .subdir import ShardedSubdir, SubdirSource, open_whole

if TYPE_CHECKING:
    import requests

__all__ = ["ChannelIndex", "Gateway", "load_channel_indexes", "MirroredSubdir"]


class MirroredSubdir:
    """A subdir source opened at a mirror location, seen as the channel's own: record URLs under the mirror are
    put back under the channel (with its credentials, as a direct read would give), so locks and images never
    name a mirror."""

    def __init__(self, inner: SubdirSource, channel: Channel, location: str) -> None:
        self.inner, self.channel, self.subdir = inner, channel, inner.subdir
        self._location = location.rstrip("/") + "/"
        self._got: dict[str, list[PackageRecord]] = {}

    def names(self) -> Iterable[str]:
        return self.inner.names()

    def __contains__(self, name: object) -> bool:
        return name in self.inner

    def records(self, name: str) -> list[PackageRecord]:
        got = self._got.get(name)
        if got is None:
            got = self._got[name] = [self._relocate(r) for r in self.inner.records(name)]
        return got

    def _relocate(self, rec: PackageRecord) -> PackageRecord:
        url = rec.url
        if url.startswith(self._location):
            url = f"{self.channel.auth_url}/{url[len(self._location):]}"
        return replace(rec, url=url, channel=self.channel.url)

    @property
    def records_made(self) -> int:
        return self.inner.records_made


def _is_sharded(src: SubdirSource | None) -> bool:
    return isinstance(src.inner if isinstance(src, MirroredSubdir) else src, ShardedSubdir)


def _at_location(channel: Channel, location: str) -> Channel:
    """``channel`` read from ``location``: a ``file://`` mirror is a local channel; an HTTP mirror keeps the
    channel's canonical URL (cache keys, messages) but is requested at the mirror, with the mirror's own
    credentials only."""
    if location.startswith("file://"):
        return Channel(name=channel.name, url=location, auth_url=location)
    return Channel(name=channel.name, url=channel.url, auth_url=location)


class ChannelIndex(Mapping[str, list[PackageRecord]]):
    """Per channel: name -> records of ``subdir`` + ``noarch`` merged (a ``.conda`` replaces the ``.tar.bz2`` of
    the same stem; the platform subdir first), made on first access and then kept.

    Looking a name up makes and validates only that name's records; a broken entry raises a one-line
    :class:`ChannelError`. ``parts`` are the subdirs' sources (None for a subdir the channel does not have).
    """

    def __init__(self, channel: Channel, parts: Sequence[SubdirSource | None]) -> None:
        self.channel = channel
        self.parts = list(parts)
        self._made: dict[str, list[PackageRecord]] = {}
        self._names: list[str] | None = None

    def _all_names(self) -> list[str]:
        if self._names is None:
            seen: dict[str, None] = {}
            for p in self.parts:
                if p is not None:
                    seen.update(dict.fromkeys(p.names()))
            self._names = list(seen)
        return self._names

    def __getitem__(self, name: str) -> list[PackageRecord]:
        got = self._made.get(name)
        if got is not None:
            return got
        merged: dict[str, PackageRecord] = {}
        found = False
        for p in self.parts:
            if p is None or name not in p:
                continue
            found = True
            for rec in p.records(name):
                merge_record(merged, rec)
        if not found:
            raise KeyError(name)
        got = self._made[name] = list(merged.values())
        return got

    def __contains__(self, name: object) -> bool:
        return any(p is not None and name in p for p in self.parts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._all_names())

    def __len__(self) -> int:
        return len(self._all_names())

    @property
    def records_made(self) -> int:
        return sum(p.records_made for p in self.parts if p is not None)


class Gateway:
    """Opens channel subdirs through one session, in parallel, and remembers what it opened."""

    def __init__(self, session: requests.Session, *, offline: bool = False, jobs: int = DEFAULT_JOBS,
                 mirrors: Mirrors | None = None) -> None:
        """``mirrors`` default to ``$OCI_CONDA_MIRRORS``; an offline gateway uses none (it reads the cache)."""
        self.session = session
        self.offline = offline or is_offline(session)
        self.jobs = jobs
        self.mirrors = Mirrors() if self.offline else (mirrors if mirrors is not None else mirrors_from_env())
        self._sources: dict[tuple[str, str, bool], SubdirSource | None] = {}

    def _open_at(self, channel: Channel, subdir: str, sharded: bool) -> SubdirSource | None:
        src: SubdirSource | None = None
        if sharded:
            src = ShardedSubdir.open(channel, subdir, self.session, self.offline)
        if src is None:
            src = open_whole(channel, subdir, self.session, self.offline, self.jobs)
        return src

    def _open(self, channel: Channel, subdir: str, sharded: bool) -> SubdirSource | None:
        key = (channel.auth_url, subdir, sharded)
        if key in self._sources:
            return self._sources[key]
        locations = self.mirrors.for_channel(channel.url)
        if not locations:
            src = self._open_at(channel, subdir, sharded)
        else:
            src = self._open_mirrored(channel, subdir, sharded, locations)
        self._sources[key] = src
        return src

    def _open_mirrored(self, channel: Channel, subdir: str, sharded: bool,
                       locations: Sequence[str]) -> SubdirSource | None:
        """The first location (mirrors in order, then the channel) that has the subdir; None when every location
        that answered has none; the channel's own error (naming the mirrors tried) when none answered."""
        answered = False
        error: ChannelError | None = None
        for location in [*locations, None]:
            at = channel if location is None else _at_location(channel, location)
            try:
                src = self._open_at(at, subdir, sharded)
            except ChannelError as e:
                error = e
                continue
            if src is None:
                answered = True
                continue
            return src if location is None else MirroredSubdir(src, channel, location)
        if answered or error is None:
            return None
        tried = ", ".join(redact_url(m) for m in locations)
        raise ChannelError(f"{error} (mirrors tried first: {tried})")

    def indexes(self, channels: Sequence[Channel], subdir: str,
                names: Sequence[str] | None = None) -> list[ChannelIndex]:
        """Per channel (same order) a lazy mapping over ``subdir`` + ``noarch``; either may be missing, not both.

        With ``names`` (the requested package names) subdirs with CEP-16 sharded repodata are read through their
        shards, and only shards of names reachable from ``names`` are fetched.
        """
        subdirs = [subdir] if subdir == "noarch" else [subdir, "noarch"]
        tasks = [(c, s) for c in channels for s in subdirs]
        sharded = names is not None
        parts: list[SubdirSource | None] = []
        if tasks:
            with thread_pool(self.jobs, len(tasks), "repodata") as pool:
                futures = [pool.submit(self._open, c, s, sharded) for c, s in tasks]
                try:
                    for fut in futures:  # the first failure in channel order is raised
                        parts.append(fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
        out = []
        for i, channel in enumerate(channels):
            mine = parts[i * len(subdirs):(i + 1) * len(subdirs)]
            if all(p is None for p in mine):
                raise ChannelError(f"{channel.url} is not a conda channel: no repodata for {' or '.join(subdirs)}")
            out.append(ChannelIndex(channel, mine))
        if names is not None and any(_is_sharded(p) for p in parts):
            self._prefetch(out, names)
        return out

    def _prefetch(self, indexes: Sequence[ChannelIndex], names: Sequence[str]) -> None:
        """Fetch, level by level and in parallel, the shards of every name reachable from ``names`` through
        ``depends`` (whole-repodata channels take part in the walk: their dependencies lead to shards too)."""
        shard_parts = [p for ix in indexes for p in ix.parts if p is not None and _is_sharded(p)]
        seen: set[str] = set()
        todo = {n for n in names if n and not n.startswith("__")}
        while todo:
            seen |= todo
            level = [(p, n) for n in sorted(todo) for p in shard_parts if n in p]
            if level:
                with thread_pool(self.jobs, len(level), "shards") as pool:
                    list(pool.map(lambda t: t[0].records(t[1]), level))
            nxt: set[str] = set()
            for n in todo:
                for ix in indexes:
                    if n in ix:
                        for r in ix[n]:
                            nxt.update(r.depends)
            todo = {dn for dn in map(dep_name, nxt) if dn and not dn.startswith("__")} - seen


def load_channel_indexes(channels: Sequence[Channel], subdir: str, session: requests.Session, *,
                         offline: bool = False, jobs: int = DEFAULT_JOBS,
                         names: Sequence[str] | None = None) -> list[ChannelIndex]:
    """Per channel a lazy ``name -> records`` mapping of ``subdir`` + ``noarch`` (see :meth:`Gateway.indexes`);
    ``solve`` takes these as channels. One gateway per call: keep a :class:`Gateway` to reuse opened subdirs."""
    return Gateway(session, offline=offline, jobs=jobs).indexes(channels, subdir, names)
