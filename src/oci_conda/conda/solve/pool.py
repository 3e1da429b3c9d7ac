"""The libsolv side of a solve: encode ranked candidates as solvables, requests as jobs; decode the answer.

The ``solv`` wheel has no conda support (no ``DISTTYPE_CONDA``, no ``REL_CONDA``), so conda's version order and
MatchSpec semantics never reach libsolv. Instead a record's rank (see ``rank.py``) is its solvable's evr; every
distinct dependency string becomes exactly the set of records it matches, written as an OR of rank intervals
(``name >= a with name <= b``), computed once per string; ``constrains`` become conflicts with the records of that
name that do not match; virtual packages are an installed, locked repo.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import solv

from ...errors import OciCondaError
from ..order import dependency_order
from ..matchspec import parse_spec
from ..records import PackageRecord
from .rank import Candidates, matcher

__all__ = ["Pool"]

_GE = solv.REL_GT | solv.REL_EQ
_LE = solv.REL_LT | solv.REL_EQ

class Pool:
    """A libsolv pool of the candidates (pruned unless ``prune`` is false), with the maps back to records."""

    def __init__(self, cands: Candidates, prune: bool = True) -> None:
        self.cands = cands
        pool = self.pool = solv.Pool()
        cands.restart()
        names = cands.prune() if prune else cands.reachable()
        self.dep_strings: dict[int, str] = {}  # dep id -> original string, for explanations
        self.conflict_strings: dict[int, str] = {}
        repo = pool.add_repo("channels")
        vrepo = pool.add_repo("virtual")
        self.solvable_record: dict[int, PackageRecord] = {}
        str2id = pool.str2id
        rel2id = pool.rel2id
        self._rank_ids: list[int] = []
        for name in names:
            cand = self.cands.candidates(name)
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
            cand = self.cands.candidates(name)
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
            ms = parse_spec(spec)
        except OciCondaError:
            return None
        cand = self.cands.candidates(ms.name)
        if cand is None:
            return ms.name, [], 0
        remap = self.cands.remap.get(ms.name)
        if remap is not None:
            m = self.cands.match_idx(spec)
            assert m is not None
            return ms.name, [remap[j] for j in m[1] if remap[j]], len(cand.records)
        pred = matcher(ms)
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

    def jobs(self) -> list | None:
        """One install job per request (over the records it matches) and a lock per virtual package."""
        pool = self.pool
        jobs = []
        for _spec, ms in self.cands.parsed:
            cand = self.cands.candidates(ms.name)
            assert cand is not None
            pred = matcher(ms)
            ids = [sid for sid, r in zip(cand.ids, cand.records) if pred(r)]
            if not ids:
                return None
            jobs.append(pool.Job(solv.Job.SOLVER_SOLVABLE_ONE_OF | solv.Job.SOLVER_INSTALL, pool.towhatprovides(ids)))
        for s in pool.installed.solvables:
            jobs.append(pool.Job(solv.Job.SOLVER_SOLVABLE | solv.Job.SOLVER_LOCK, s.id))
        return jobs

    def maximise_requested(self, jobs: list, chosen: list[int]) -> list[int]:
        """Raise the requested packages to the newest versions that still solve, one name at a time.

        libsolv settles the jobs in order and keeps the first choice that works, so ``numpy`` may pin an older
        ``python`` than ``python >=3.10`` allows. Conda maximises the requested packages' versions, so we try
        newer versions of each (dependencies first: ``python`` before ``numpy`` before ``pandas``) and keep each
        gain while improving the next.
        """
        pool = self.pool
        preds: dict[str, list[Callable[[PackageRecord], bool]]] = defaultdict(list)
        for _spec, ms in self.cands.parsed:
            preds[ms.name].append(matcher(ms))
        current = {self.solvable_record[sid].name: sid for sid in chosen}
        order = [r.name for r in dependency_order([self.solvable_record[sid] for sid in chosen]) if r.name in preds]
        extra: list = []
        for name in order:
            cand = self.cands.candidates(name)
            assert cand is not None
            ok = [(sid, r, self.cands.pref(ci, r)) for sid, r, ci in zip(cand.ids, cand.records, cand.channel_of)
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

    def records(self, ids: list[int]) -> list[PackageRecord]:
        """The records of chosen solvables, in install order."""
        return dependency_order([self.solvable_record[sid] for sid in ids])
