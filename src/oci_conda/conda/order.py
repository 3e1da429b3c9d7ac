"""Install order: dependencies before dependents, deterministic, cycles kept together.

Used by the solver (its answer is returned in this order), by install (conda links in this order, so
``post-link`` scripts and noarch python compilation see their dependencies) and by lock (records are written in it).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Sequence

from .matchspec import dep_name
from .records import PackageRecord

__all__ = ["dependency_order"]


def dependency_order(records: Sequence[PackageRecord]) -> list[PackageRecord]:
    """Dependencies before dependents (install order); ties and cycles broken by name, so the order is stable."""
    by_name = {r.name: r for r in records}
    deps: dict[str, set[str]] = {}
    for r in records:
        ds = set()
        for d in r.depends:
            dn = dep_name(d)
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
