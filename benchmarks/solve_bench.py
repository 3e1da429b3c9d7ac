"""Solve a ``python numpy pandas``-shaped request on synthetic conda-forge-sized channels, ours next to py-rattler.

    python benchmarks/solve_bench.py [--sizes 100000,300000,600000] [--dir /tmp/oci-conda-bench] [--specs ...]

Each solver runs in its own process (so peak RSS is its own): it loads the channel, solves once cold (empty caches)
and then warm (same records again, as a second platform or a re-solve in one build would). Loading repodata into
records is timed apart from solving, since the repodata stage does it for us. "oci (lazy)" passes the channel as a
name -> records mapping that makes PackageRecords only for the names the solver asks for (as sparse/sharded
repodata allows); its "load" is reading the JSON and grouping the raw entries by name. Needs py-rattler.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SPECS = ["python >=3.10", "numpy", "pandas"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_records(chan: Path):
    import orjson

    from oci_conda.conda.records import PackageRecord

    url = chan.as_uri()
    out = []
    for sd in ("linux-64", "noarch"):
        raw = orjson.loads((chan / sd / "repodata.json").read_bytes())
        for key in ("packages", "packages.conda"):
            for fn, d in (raw.get(key) or {}).items():
                out.append(PackageRecord.from_repodata(fn, d, url, sd, f"{url}/{sd}"))
    return out


def worker_ours(chan: Path, specs: list[str]) -> dict:
    from oci_conda.conda.solver import solve
    from oci_conda.conda.virtual import virtual_packages

    t0 = time.perf_counter()
    recs = _load_records(chan)
    t_load = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    vp = virtual_packages("linux-64", env={})
    t0 = time.perf_counter()
    sol = solve([recs], specs, vp)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol2 = solve([recs], specs, vp)
    warm = time.perf_counter() - t0
    assert sol == sol2
    picked = {r.name: r.version for r in sol if r.name in ("python", "numpy", "pandas")}
    return {"records": len(recs), "load_s": t_load, "cold_s": cold, "warm_s": warm, "n_solution": len(sol),
            "picked": picked, "rss_after_load_mb": rss_loaded, "peak_rss_mb": _rss_mb()}


class _LazyChannel(Mapping):
    """name -> records, made from the raw repodata entries on first access (what sharded/sparse repodata allows)."""

    def __init__(self, chan: Path) -> None:
        import orjson

        self.url = chan.as_uri()
        self.raw: dict[str, list[tuple[str, str, dict]]] = {}
        for sd in ("linux-64", "noarch"):
            data = orjson.loads((chan / sd / "repodata.json").read_bytes())
            for key in ("packages", "packages.conda"):
                for fn, d in (data.get(key) or {}).items():
                    self.raw.setdefault(d["name"], []).append((sd, fn, d))
        self.made: dict[str, list] = {}

    def __getitem__(self, name: str) -> list:
        got = self.made.get(name)
        if got is None:
            from oci_conda.conda.records import PackageRecord

            got = [PackageRecord.from_repodata(fn, d, self.url, sd, f"{self.url}/{sd}") for sd, fn, d in self.raw[name]]
            self.made[name] = got
        return got

    def __iter__(self):
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def worker_ours_lazy(chan: Path, specs: list[str]) -> dict:
    from oci_conda.conda.solver import solve
    from oci_conda.conda.virtual import virtual_packages

    t0 = time.perf_counter()
    lazy = _LazyChannel(chan)
    t_load = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    vp = virtual_packages("linux-64", env={})
    t0 = time.perf_counter()
    sol = solve([lazy], specs, vp)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    solve([lazy], specs, vp)
    warm = time.perf_counter() - t0
    picked = {r.name: r.version for r in sol if r.name in ("python", "numpy", "pandas")}
    return {"load_s": t_load, "cold_s": cold, "warm_s": warm, "n_solution": len(sol), "picked": picked,
            "rss_after_load_mb": rss_loaded, "peak_rss_mb": _rss_mb(), "records_made": sum(map(len, lazy.made.values()))}


def worker_rattler(chan: Path, specs: list[str]) -> dict:
    import rattler

    ch = rattler.Channel(chan.as_uri())
    vp = [rattler.GenericVirtualPackage(rattler.PackageName(n), rattler.Version(v), rattler.BuildString(b))
          for n, v, b in (("__unix", "0", "0"), ("__linux", "4.18", "0"), ("__glibc", "2.28", "0"),
                          ("__archspec", "1", "x86_64"))]
    t0 = time.perf_counter()
    srcs = [rattler.SparseRepoData(ch, sd, str(chan / sd / "repodata.json")) for sd in ("linux-64", "noarch")]
    t_load = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    t0 = time.perf_counter()
    sol = asyncio.run(rattler.solve_with_sparse_repodata(specs, srcs, virtual_packages=vp))
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    asyncio.run(rattler.solve_with_sparse_repodata(specs, srcs, virtual_packages=vp))
    warm = time.perf_counter() - t0
    picked = {r.name.normalized: str(r.version) for r in sol if r.name.normalized in ("python", "numpy", "pandas")}
    return {"load_s": t_load, "cold_s": cold, "warm_s": warm, "n_solution": len(sol), "picked": picked,
            "rss_after_load_mb": rss_loaded, "peak_rss_mb": _rss_mb()}


def _run_worker(kind: str, chan: Path, specs: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--chan", str(chan), "--specs", *specs],
                         capture_output=True, text=True, check=False)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if last.startswith("{"):
        return json.loads(last)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return {"error": "no output"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "oci-conda-bench"))
    ap.add_argument("--specs", nargs="*", default=DEFAULT_SPECS)
    ap.add_argument("--worker", choices=["ours", "ours-lazy", "rattler"])
    ap.add_argument("--chan")
    ap.add_argument("--no-rattler", action="store_true")
    args = ap.parse_args()
    if args.worker:
        fn = {"ours": worker_ours, "ours-lazy": worker_ours_lazy, "rattler": worker_rattler}[args.worker]
        print(json.dumps(fn(Path(args.chan), args.specs)), flush=True)
        os._exit(0)  # py-rattler 0.28 can crash in interpreter teardown; the figures are already out

    sys.path.insert(0, str(HERE))
    from synth_repodata import write_channel

    print(f"request: {' '.join(repr(s) for s in args.specs)}")
    for n in (int(x) for x in args.sizes.split(",")):
        chan = Path(args.dir) / f"synth-{n}"
        if not (chan / "noarch" / "repodata.json").exists():
            t0 = time.perf_counter()
            write_channel(chan, n, seed=0)
            print(f"generated {n} records in {time.perf_counter() - t0:.1f}s -> {chan}")
        ours = _run_worker("ours", chan, args.specs)
        lazy = _run_worker("ours-lazy", chan, args.specs)
        theirs = {} if args.no_rattler else _run_worker("rattler", chan, args.specs)
        print(f"\n== {n} records ==")
        for name, r in (("oci-conda", ours), ("oci (lazy)", lazy), ("py-rattler", theirs)):
            if not r:
                continue
            if "error" in r:
                print(f"{name:11s} ERROR {r['error']}")
                continue
            print(f"{name:11s} load {r['load_s']:6.2f}s  cold solve {r['cold_s']:6.3f}s  warm solve {r['warm_s']:6.3f}s  "
                  f"{r['n_solution']:3d} pkgs  peak RSS {r['peak_rss_mb']:7.0f} MB (after load {r['rss_after_load_mb']:.0f})"
                  f"  {r['picked']}")
        if ours.get("cold_s") and theirs.get("cold_s"):
            print(f"ratio ours/rattler: cold {ours['cold_s'] / theirs['cold_s']:.2f}x, "
                  f"warm {ours['warm_s'] / theirs['warm_s']:.2f}x, "
                  f"cold incl. load {(ours['cold_s'] + ours['load_s']) / (theirs['cold_s'] + theirs['load_s']):.2f}x")


if __name__ == "__main__":
    main()
