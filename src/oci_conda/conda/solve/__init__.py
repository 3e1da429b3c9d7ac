"""Solve conda requests with libsolv as the SAT engine and conda's semantics kept in Python.

``rank.py`` orders and prunes the candidates, ``pool.py`` encodes them for libsolv and decodes its answer,
``explain.py`` says why a request cannot be met. After libsolv's answer the requested packages are raised to the
newest versions that still solve (conda maximises what was asked for; libsolv keeps the first choice that works).
Failures are re-solved on the unpruned pool and explained in one line.
"""

from __future__ import annotations

from typing import Sequence

from ...errors import SolveError
from ..records import PackageRecord
from .explain import check_request, explain
from .pool import Pool
from .rank import Candidates, ChannelPriority, ChannelRecords, clear_index_cache

__all__ = ["solve", "SolveError", "ChannelPriority", "ChannelRecords", "clear_index_cache"]


def solve(
    channels: Sequence[ChannelRecords],
    specs: Sequence[str],
    virtual_packages: Sequence[PackageRecord] = (),
    channel_priority: ChannelPriority = "strict",
    *,
    prune: bool = True,
) -> list[PackageRecord]:
    """Pick one record per needed name so that every request, depends and constrains holds, preferring newest.

    ``channels[0]`` has the highest priority. A channel may also be given as a ``Mapping`` from package name to
    that name's records (for instance the gateway's lazy per-name index): then only the names the request can reach
    are ever looked up, instead of every record being scanned once. Returns the records to install (no virtual
    packages) with dependencies first. Raises ``SolveError`` naming the conflicting requests and the chain that
    causes it. ``prune=False`` hands libsolv every reachable candidate (slower; tests use it to check that pruning
    never changes what is solvable).
    """
    if not specs:
        return []
    cands = Candidates(channels, specs, virtual_packages, channel_priority)
    check_request(cands)
    pool = Pool(cands, prune=prune)
    jobs = pool.jobs()
    if jobs is not None:
        solver = pool.pool.Solver()
        if not solver.solve(jobs):
            chosen = [s.id for s in solver.transaction().newsolvables()]
            return pool.records(pool.maximise_requested(jobs, chosen))
    # unsatisfiable: solve again on the whole, unpruned pool so that libsolv can say why
    cands.restart(forget_ranking=True)
    pool = Pool(cands, prune=False)
    jobs = pool.jobs()
    assert jobs is not None  # check_request() saw a match for every request
    solver = pool.pool.Solver()
    problems = solver.solve(jobs)
    if problems:
        raise SolveError(explain(pool, problems))
    # pruning only removes what cannot be installed, so this is not reached; still return a valid answer
    return pool.records([s.id for s in solver.transaction().newsolvables()])
