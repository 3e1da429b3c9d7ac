"""Why a request cannot be solved, in a few sentences: early checks with suggestions, and libsolv's problem rules
turned into "numpy 2.1 needs python >=3.10, but you asked for python 3.8"."""

from __future__ import annotations

import difflib
from collections import defaultdict

import solv

from ...errors import OciCondaError, SolveError
from ..channel import channel_label
from ..matchspec import parse_spec
from ..records import PackageRecord
from ..version import parse_version
from .pool import Pool
from .rank import Candidates, matcher

__all__ = ["check_request", "explain"]

def check_request(cands: Candidates) -> None:
    """Fail early, with suggestions, for names no channel has and specs nothing matches."""
    problems: list[str] = []

    def chans() -> str:
        return ", ".join(channel_label(u) for u in cands.channel_urls if u) or "no channels"

    for spec, ms in cands.parsed:
        cand = cands.candidates(ms.name)
        if cand is None:
            if ms.name.startswith("__"):
                have = ", ".join(f"{r.name} {r.version}" for r in cands.virtual.values()) or "none"
                problems.append(
                    f"virtual package {ms.name} is not available on the target platform (it has: {have}); "
                    f"set it in the image section or with CONDA_OVERRIDE_{ms.name[2:].upper()}"
                )
                continue
            close = difflib.get_close_matches(ms.name, sorted(cands.index.names()), n=3, cutoff=0.75)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            problems.append(f"package {ms.name!r} not found in {chans()}{hint}")
            continue
        pred = matcher(ms)
        if ms.name in cands.virtual and not pred(cands.virtual[ms.name]):
            v = cands.virtual[ms.name]
            problems.append(
                f"the target system has {v.name} {v.version}, which does not match {spec!r}; set it in the image "
                f"section or with CONDA_OVERRIDE_{ms.name[2:].upper()}"
            )
            continue
        if not any(pred(r) for r in cand.records):
            versions = list(dict.fromkeys(r.version for r in reversed(cand.records)))
            shown = ", ".join(versions[:8]) + (", ..." if len(versions) > 8 else "")
            where = channel_label(cand.records[0].channel) if cands.priority == "strict" else chans()
            extra = ""
            if ms.channel is not None and not cands.pinned_channel.get(ms.name):
                extra = f" (none of the channels is {ms.channel!r})"
            problems.append(f"nothing in {where} matches {spec!r}{extra}; available {ms.name} versions: {shown}")
    if problems:
        raise SolveError("; ".join(problems))

def explain(pool: Pool, problems: list) -> str:
    """Turn libsolv's rule lists into a few grouped sentences naming the requested specs in conflict."""
    cands = pool.cands
    out: list[str] = []
    for problem in problems:
        asked: list[str] = []
        for sol in problem.solutions():
            for el in sol.elements(False):
                if el.type in (solv.Solver.SOLVER_SOLUTION_JOB, solv.Solver.SOLVER_SOLUTION_POOLJOB):
                    if 0 <= el.jobidx < len(cands.parsed):
                        asked.append(cands.parsed[el.jobidx][0])
        asked = sorted(dict.fromkeys(asked))
        reasons = _reasons(pool, problem, asked)
        head = (
            "cannot install " + " together with ".join(repr(a) for a in asked)
            if len(asked) > 1
            else f"cannot install {asked[0]!r}"
            if asked
            else "the request cannot be satisfied"
        )
        out.append(head + (": " + "; ".join(reasons) if reasons else ""))
    return " | ".join(dict.fromkeys(out))

def _reasons(pool: Pool, problem: solv.Problem, asked: list[str]) -> list[str]:
    cands = pool.cands
    req: dict[tuple[str, str], list[PackageRecord]] = defaultdict(list)
    missing: dict[tuple[str, str], list[PackageRecord]] = defaultdict(list)
    cons: dict[tuple[str, str], list[PackageRecord]] = defaultdict(list)
    same: set[str] = set()
    for rule in problem.findallproblemrules():
        for info in rule.allinfos():
            rec = pool.solvable_record.get(info.solvable.id) if info.solvable else None
            t = info.type
            if t == solv.Solver.SOLVER_RULE_PKG_REQUIRES and rec is not None:
                dep = pool.dep_strings.get(info.dep_id, str(info.dep))
                req[(rec.name, dep)].append(rec)
            elif t == solv.Solver.SOLVER_RULE_PKG_NOTHING_PROVIDES_DEP and rec is not None:
                dep = pool.dep_strings.get(info.dep_id, str(info.dep))
                missing[(rec.name, dep)].append(rec)
            elif t == solv.Solver.SOLVER_RULE_PKG_CONFLICTS and rec is not None:
                con = pool.conflict_strings.get(info.dep_id, str(info.dep))
                cons[(rec.name, con)].append(rec)
            elif t == solv.Solver.SOLVER_RULE_PKG_SAME_NAME and rec is not None:
                same.add(rec.name)
    asked_names = {parse_spec(a).name: a for a in asked}
    lines: list[str] = []
    for (name, dep), recs in sorted(req.items(), key=lambda kv: (kv[0][0] not in asked_names, kv[0])):
        line = f"{_describe(recs)} needs {dep}"
        dn = _safe_name(dep)
        if dn in asked_names and asked_names[dn] != dep:
            line += f", but you asked for {asked_names[dn]}"
        elif dn in cands.virtual:
            v = cands.virtual[dn]
            line += f", but the target system has {v.name} {v.version}"
        lines.append(line)
    for (name, dep), recs in sorted(missing.items()):
        dn = _safe_name(dep)
        if dn.startswith("__") and dn not in cands.virtual:
            why = f"the target system has no {dn} (set it with CONDA_OVERRIDE_{dn[2:].upper()})"
        elif dn.startswith("__"):
            v = cands.virtual[dn]
            why = f"the target system has {v.name} {v.version}"
        elif cands.candidates(dn) is None:
            why = f"no channel has {dn}"
        else:
            cand = cands.candidates(dn)
            versions = list(dict.fromkeys(r.version for r in reversed(cand.records))) if cand else []
            shown = ", ".join(versions[:5]) + (", ..." if len(versions) > 5 else "")
            why = f"no available package matches it (there is {dn} {shown})" if shown else "nothing matches it"
        lines.append(f"{_describe(recs)} needs {dep}, but {why}")
    for (name, con), recs in sorted(cons.items()):
        line = f"{_describe(recs)} constrains {con}"
        dn = _safe_name(con)
        if dn in asked_names:
            line += f", but you asked for {asked_names[dn]}"
        lines.append(line)
    for name in sorted(same):
        lines.append(f"only one {name} can be installed")
    if len(lines) > 12:
        lines = lines[:12] + [f"and {len(lines) - 12} more reasons"]
    return lines

def _safe_name(spec: str) -> str:
    try:
        return parse_spec(spec).name
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
