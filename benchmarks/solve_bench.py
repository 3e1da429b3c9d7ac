"""Open a synthetic conda-forge-sized channel and solve ``python numpy pandas`` on it: ours next to py-rattler.

    python benchmarks/solve_bench.py [--sizes 100000,300000,600000] [--dir /tmp/oci-conda-bench] [--repeat 3]
                                     [--indent 1] [--eager] [--specs ...]

Every measurement is a whole process of its own (its wall time start to exit, imports included; the time inside it
is shown too). Peak RSS is that of the whole process tree: the worker's own ``ru_maxrss`` or, when larger, the sum
over it and its children (the forked workers of a split cut), sampled every few milliseconds from ``/proc``, which
counts a page two processes share (the mapped repodata, the parent's pages a worker inherits) once per process.
The channel is local (``linux-64`` + ``noarch`` ``repodata.json``), page cache warm for both sides. Ours goes the
product's way (``resolve.solve_environment``): ``load_channel_indexes`` with the requested names (a sharded channel
would be read through its shards; this one has none, so the whole repodata), then ``solve`` on the lazy per-name
indexes:

- ours cold: an empty ``$OCI_CONDA_CACHE``: the JSON is cut (``conda/skeleton.py``: names and file names only,
  nothing made per entry), the index file written, then ``solve`` makes records only for the names it reaches;
- ours warm: a second process on that cache: the index file is opened (no JSON read), then the same solve;
- rattler: ``SparseRepoData`` on the same files + ``solve_with_sparse_repodata`` (it keeps nothing between
  processes, so each of its runs is both its cold and its warm).

``--eager`` also times the old path (every record made up front). ``--indent 1`` generates the channel laid out
as conda-index writes it (the default is one line). Needs py-rattler. The other workers (``--worker ours``,
``ours-lazy``) are kept for comparisons with earlier figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
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
    from oci_conda.conda.solve import solve
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
    from oci_conda.conda.solve import solve
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


def worker_index(chan: Path, specs: list[str]) -> dict:
    """The real path: repodata file -> ``load_channel_indexes`` (scan + write the index file when the cache in
    ``$OCI_CONDA_CACHE`` has none, else open it) -> ``solve``. Cold or warm depends on the cache the caller set."""
    from oci_conda.conda.channel import resolve_channel
    from oci_conda.conda.gateway import load_channel_indexes
    from oci_conda.conda.matchspec import MatchSpec
    from oci_conda.conda.solve import solve
    from oci_conda.conda.virtual import virtual_packages
    from oci_conda.http import make_session

    channel = resolve_channel(str(chan), chan.parent)
    session = make_session()
    vp = virtual_packages("linux-64", env={})
    c0 = time.process_time()
    t0 = time.perf_counter()
    # as resolve.solve_environment: the requested names let the gateway use shards where a channel has them
    index = load_channel_indexes([channel], "linux-64", session, names=[MatchSpec(s).name for s in specs])
    t_load = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    t1 = time.perf_counter()
    sol = solve(index, specs, vp)
    t_solve = time.perf_counter() - t1
    cpu = time.process_time() - c0
    picked = {r.name: r.version for r in sol if r.name in ("python", "numpy", "pandas")}
    return {"load_s": t_load, "cold_s": t_solve, "warm_s": t_solve, "total_s": t_load + t_solve, "cpu_s": cpu,
            "n_solution": len(sol), "picked": picked, "rss_after_load_mb": rss_loaded, "peak_rss_mb": _rss_mb(),
            "records_made": index[0].records_made, "names": len(index[0]),
            "solution": sorted(f"{r.name}={r.version}={r.build}" for r in sol)}


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
    t_solve = time.perf_counter() - t0
    picked = {r.name.normalized: str(r.version) for r in sol if r.name.normalized in ("python", "numpy", "pandas")}
    return {"load_s": t_load, "cold_s": t_solve, "warm_s": t_solve, "total_s": t_load + t_solve,
            "n_solution": len(sol), "picked": picked, "rss_after_load_mb": rss_loaded, "peak_rss_mb": _rss_mb(),
            "solution": sorted(f"{r.name.normalized}={r.version}={r.build}" for r in sol)}


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from ``/proc``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _tree_rss(pid: int) -> float:
    """RSS (MB) summed over ``pid`` and its descendants, from ``statm`` (a counter: reading ``smaps`` instead would
    walk the page tables under the process's memory lock and slow the run it measures by a fifth)."""
    pages = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                pages += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return pages * _PAGE_MB


def _run_worker(kind: str, chan: Path, specs: list[str], env: dict | None = None) -> dict:
    """One worker process, its wall time, and its process tree's peak RSS sampled every few milliseconds (its own
    ``ru_maxrss`` covers only itself)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, "--chan", str(chan), "--specs", *specs],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    tree_rss = 0.0
    while proc.poll() is None:
        tree_rss = max(tree_rss, _tree_rss(proc.pid))
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    if last.startswith("{"):
        got = json.loads(last)
        # the peak: the worker's own (exact) or its tree's (sampled), whichever is larger
        return dict(got, process_s=wall, tree_rss_mb=tree_rss, own_rss_mb=got["peak_rss_mb"],
                    peak_rss_mb=max(got["peak_rss_mb"], tree_rss))
    if proc.returncode != 0:
        return {"error": stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}"}
    return {"error": "no output"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "oci-conda-bench"))
    ap.add_argument("--specs", nargs="*", default=DEFAULT_SPECS)
    ap.add_argument("--worker", choices=["ours", "ours-lazy", "rattler", "index"])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each index/rattler measurement (min and median)")
    ap.add_argument("--eager", action="store_true", help="also time the old path (every record made; slow, ~2 GB)")
    ap.add_argument("--indent", type=int, default=None, help="generate pretty-printed repodata (conda-index layout)")
    ap.add_argument("--chan")
    ap.add_argument("--no-rattler", action="store_true")
    args = ap.parse_args()
    if args.worker:
        fn = {"ours": worker_ours, "ours-lazy": worker_ours_lazy, "rattler": worker_rattler,
              "index": worker_index}[args.worker]
        print(json.dumps(fn(Path(args.chan), args.specs)), flush=True)
        os._exit(0)  # py-rattler 0.28 can crash in interpreter teardown; the figures are already out

    print(f"request: {' '.join(repr(s) for s in args.specs)}   (load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs)")
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        chan = Path(args.dir) / (f"synth-{n}" if args.indent is None else f"synth-{n}-indent{args.indent}")
        if not (chan / "noarch" / "repodata.json").exists():
            t0 = time.perf_counter()
            # in a child: a worker forked from a big parent would report the parent's RSS as its own peak
            subprocess.run([sys.executable, str(HERE / "synth_repodata.py"), str(chan), str(n),
                            *([] if args.indent is None else [str(args.indent)])], check=True)
            print(f"generated {n} records in {time.perf_counter() - t0:.1f}s -> {chan}")
        mb = sum((chan / sd / "repodata.json").stat().st_size for sd in ("linux-64", "noarch")) / 1e6
        print(f"\n== {n} records ({mb:.0f} MB of JSON) ==", flush=True)
        cold, warm, ratt = [], [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="oci-conda-bench-cache-") as cache:
                env = dict(os.environ, OCI_CONDA_CACHE=cache)
                cold.append(_run_worker("index", chan, args.specs, env))
                warm.append(_run_worker("index", chan, args.specs, env))
            if not args.no_rattler:
                ratt.append(_run_worker("rattler", chan, args.specs))
        for label, runs in (("ours cold", cold), ("ours warm", warm), ("rattler", ratt)):
            ok = [r for r in runs if "error" not in r]
            if not ok:
                if runs:
                    print(f"{label:10s} ERROR {runs[0].get('error')}")
                continue
            r0 = ok[0]
            extra = f"  records made {r0['records_made']}" if "records_made" in r0 else ""
            print(f"{label:10s} process {_spread([r['process_s'] for r in ok], 's')}  in-process "
                  f"{_spread([r['total_s'] for r in ok], 's')} (open {_spread([r['load_s'] for r in ok], 's')})  "
                  f"peak RSS {_spread([r['peak_rss_mb'] for r in ok], 'MB', 0)} (own "
                  f"{_spread([r['own_rss_mb'] for r in ok], 'MB', 0)})  {r0['n_solution']} pkgs{extra}",
                  flush=True)
        if cold and ratt and all("error" not in r for r in (*cold, *warm, *ratt)):
            same = all(r["solution"] == cold[0]["solution"] for r in (*cold, *warm))
            print(f"every run of ours gives the same solution: {same}; same python/numpy/pandas as rattler: "
                  f"{cold[0]['picked'] == ratt[0]['picked']} {cold[0]['picked']}")
            rows.append((n, cold, warm, ratt))
        if args.eager:
            old = _run_worker("ours", chan, args.specs)
            if "error" not in old:
                print(f"old path   load {old['load_s']:6.2f}s + solve {old['cold_s']:6.2f}s  "
                      f"peak RSS {old['peak_rss_mb']:6.0f} MB")
    if rows:
        print("\nWhole processes (start to exit), median (min-max) of the runs; ratios are of the medians.")
        print("| records | measure | ours cold | ours warm | py-rattler | cold / rattler | warm / rattler |")
        print("|---|---|---|---|---|---|---|")
        for n, cold, warm, ratt in rows:
            for what, key, unit, nd in (("process time", "process_s", "s", 2), ("in-process open+solve", "total_s", "s", 2),
                                        ("peak RSS", "peak_rss_mb", "MB", 0)):
                c, w, r = ([x[key] for x in runs] for runs in (cold, warm, ratt))
                rm = statistics.median(r)
                print(f"| {n // 1000}k | {what} | {_spread(c, unit, nd)} | {_spread(w, unit, nd)} | "
                      f"{_spread(r, unit, nd)} | {statistics.median(c) / rm:.2f}x | {statistics.median(w) / rm:.2f}x |")
        print("(py-rattler keeps no index between processes: each of its runs opens the JSON again; goals: cold "
              "<= 1.5x time and peak RSS, warm <= 1x time)")


def _spread(xs: list[float], unit: str, nd: int = 2) -> str:
    """``median (min-max) unit``."""
    return f"{statistics.median(xs):.{nd}f} ({min(xs):.{nd}f}-{max(xs):.{nd}f}) {unit}"


if __name__ == "__main__":
    main()
