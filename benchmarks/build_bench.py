"""oci-conda against the daemonless alternative a user scripts today (py-rattler solve + install, conda-pack, umoci),
whole processes, side by side in one run, on two environments:

* the real-package environment (tk, openssl, xz and their dependencies from ../shared/realdata);
* a large synthetic one (``--large-mib``, default 320 MiB of payload in ~12k files over 45 packages, half of it
  compressible text, half binary-like), with a leaf package that can be bumped.

For oci-conda: cold (empty cache) with ``--jobs 1`` and with all cores, warm (caches filled, the environment's memo
dropped: the first build of this environment on a builder whose cache has its packages and their layers), warm with
packages only (every layer memo dropped too), one-package bump (the leaf package rebuilt with a new build number) and
no-op (nothing changed, the output already written: the channel server sends no Cache-Control, so repodata is
revalidated with a conditional GET each time). For the alternative: cold and warm (its package cache
filled). Medians and min-max over ``--repeat`` runs; image sizes beside conda-pack's tarball.

    python benchmarks/build_bench.py [--repeat 3] [--large-mib 320] [--skip-large] [--skip-real]

Downloads come from a local HTTP channel on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import REALDATA, StaticServer
from pkgbuilder import build_package, index_channel
from realenv import make_real_channel

PREFIX = "/opt/conda"
WORDS = ("import", "return", "def", "class", "self", "value", "data", "int", "const", "static", "void", "char",
         "include", "struct", "if", "else", "for", "while", "the", "of", "and", "to", "in", "is", "error", "size")


def synth_channel(root: Path, total_mib: int, leaf_build: int = 0, n: int = 44) -> Path:
    """``n`` packages with a long-tailed size distribution (a few big ones, many small), ~27 KiB per file on average
    (as in a data-science environment: ~13k files in 350 MB), half the bytes text-like, half binary-like; a leaf
    ``app`` depends on all of them."""
    chan = root / "channel"
    (chan / "linux-64").mkdir(parents=True, exist_ok=True)
    (chan / "noarch").mkdir(exist_ok=True)
    rng = random.Random(42)
    weights = [1 / (i + 1) ** 1.1 for i in range(n)]
    scale = total_mib * 2**20 / sum(weights)
    text_pool = " ".join(rng.choice(WORDS) for _ in range(1 << 20)).encode()
    for i, w in enumerate(weights):
        name = f"lib{i:03d}"
        if (chan / "linux-64" / f"{name}-1.0-0.conda").exists():
            continue
        size = max(8192, int(w * scale))
        files: dict[str, bytes] = {}
        left, k = size, 0
        while left > 0:
            n_bytes = min(left, int(rng.expovariate(1 / 27_000)) + 64)
            if k % 2:  # binary-like: random bytes with runs of zeros, as in object code
                chunk = bytearray(rng.randbytes(n_bytes))
                for z in range(0, n_bytes, 256):
                    chunk[z:z + 96] = bytes(min(96, n_bytes - z))
                files[f"lib/{name}/mod{k:05d}.so"] = bytes(chunk)
            else:
                off = rng.randrange(0, len(text_pool) - n_bytes) if n_bytes < len(text_pool) else 0
                files[f"lib/python3.12/site-packages/{name}/m{k:05d}.py"] = text_pool[off:off + n_bytes]
            left -= n_bytes
            k += 1
        build_package(chan / "linux-64", name, "1.0", files=files)
    for old in (chan / "linux-64").glob("app-*"):
        old.unlink()
    build_package(chan / "linux-64", "app", "1.0", build=str(leaf_build), build_number=leaf_build,
                  depends=[f"lib{i:03d}" for i in range(n)],
                  files={"bin/app": f"#!/bin/sh\necho {leaf_build}\n", "share/app/data.txt": "x" * 5000})
    index_channel(chan)
    return chan


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment, with bytecode caching on: an installed oci-conda has its .pyc files, and a
    PYTHONDONTWRITEBYTECODE inherited from a CI shell would charge every run for compiling the sources."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def _run(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run a whole process: its stdout, its wall seconds and its peak RSS in MiB (the process's own, from wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode:
            raise SystemExit(f"{' '.join(cmd[:4])} failed: {err.read().decode(errors='replace')[-2000:]}")
        return out.read().decode(), wall, usage.ru_maxrss / 1024


def ours(env_file: Path, out: Path, cache: Path, *extra: str) -> dict:
    env = _env(OCI_CONDA_CACHE=str(cache), SOURCE_DATE_EPOCH="1700000000")
    stdout, wall, peak = _run([sys.executable, "-m", "oci_conda", "build", str(env_file), "-o", str(out), "--json",
                               *extra], env)
    summary = json.loads(stdout)
    return {"wall": wall, "peak_mib": peak, "phases": summary["timings"], "size": out.stat().st_size,
            "digest": summary["manifest_digest"]}


def version_only() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "oci_conda", "--version"], check=True, capture_output=True, env=_env())
    return time.perf_counter() - t0


def _virtual(name: str, version: str):
    import rattler

    return rattler.GenericVirtualPackage(rattler.PackageName(name), rattler.Version(version),
                                         rattler.BuildString("0"))


def alternative(channel_url: str, specs: list[str], work: Path, cache: Path) -> dict:
    """The alternative as a whole process (interpreter start-up and imports counted, as for oci-conda)."""
    stdout, wall, peak = _run([sys.executable, __file__, "--alternative-worker",
                               json.dumps([channel_url, specs, str(work), str(cache)])], _env())
    return {**json.loads(stdout), "wall": wall, "peak_mib": peak}


def _alternative_worker(channel_url: str, specs: list[str], work: Path, cache: Path) -> dict:
    """py-rattler solve + install, conda-pack to a tar, umoci to an OCI image, tar of the layout."""
    import conda_pack
    import rattler

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    t = time.perf_counter()
    records = asyncio.run(rattler.solve(sources=[channel_url], specs=specs, platforms=["linux-64", "noarch"],
                                        virtual_packages=[_virtual("__glibc", "2.28"), _virtual("__unix", "0"),
                                                          _virtual("__linux", "4.18")]))
    phases["solve"] = time.perf_counter() - t
    prefix = work / "prefix"
    t = time.perf_counter()
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache, show_progress=False))
    phases["install"] = time.perf_counter() - t
    t = time.perf_counter()
    env_tar = work / "env.tar"
    conda_pack.pack(prefix=str(prefix), output=str(env_tar), dest_prefix=PREFIX, arcroot=PREFIX.strip("/"),
                    format="tar", ignore_missing_files=True, force=True, verbose=False)
    phases["conda-pack"] = time.perf_counter() - t
    t = time.perf_counter()
    layout = work / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True, capture_output=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:latest"], check=True, capture_output=True)
    subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:latest", str(env_tar)], check=True, capture_output=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:latest", "--config.env", f"PATH={PREFIX}/bin"], check=True, capture_output=True)
    subprocess.run(["umoci", "gc", "--layout", str(layout)], check=True, capture_output=True)
    out = work / "alt.tar"
    subprocess.run(["tar", "-cf", str(out), "-C", str(layout), "."], check=True)
    phases["umoci"] = time.perf_counter() - t
    return {"in_process": time.perf_counter() - t0, "phases": phases, "size": out.stat().st_size,
            "pack_size": env_tar.stat().st_size}


def _stat(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} ({min(xs):.2f}-{max(xs):.2f})"


def _paired(a: list[float], b: list[float]) -> str:
    """Median (min-max) of the per-round ratios a[i] / b[i]: a round's runs are minutes apart at most, so the shared
    VM's drift (10-20 % within minutes) moves both sides of a pair alike, where a ratio of medians mixes rounds."""
    r = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})"


def bench_env(label: str, env_file: Path, channel_url: str, specs: list[str], tmp: Path, repeat: int,
              bump: Callable[[bool], None] | None) -> list[str]:
    """Every scenario for one environment; returns the table rows (markdown) and prints them as they come."""
    tmp.mkdir(parents=True, exist_ok=True)
    jobs_all = str(os.cpu_count() or 1)
    runs: dict[str, list[dict]] = {k: [] for k in ("cold1", "cold", "warm", "warm_pkgs", "bump", "noop", "alt_cold",
                                                   "alt_warm")}
    digests = set()
    for i in range(repeat):
        for key, jobs in (("cold1", "1"), ("cold", jobs_all)):
            cache = tmp / f"cache-{label}-{key}-{i}"
            runs[key].append(ours(env_file, tmp / f"{key}.tar", cache, "--jobs", jobs))
            digests.add(runs[key][-1]["digest"])
        cache = tmp / f"cache-{label}-cold-{i}"
        shutil.rmtree(cache / "layers" / "env", ignore_errors=True)  # warm: caches filled, no memo of this env
        runs["warm"].append(ours(env_file, tmp / "warm.tar", cache))
        # no-op: the same inputs again, every cache filled and the output already there (the warm build's)
        runs["noop"].append(ours(env_file, tmp / "warm.tar", cache))
        for memo in ("env", "pkg", "members"):  # packages cached, no layer remembered
            shutil.rmtree(cache / "layers" / memo, ignore_errors=True)
        runs["warm_pkgs"].append(ours(env_file, tmp / "warm-pkgs.tar", cache))
        digests |= {runs["warm"][-1]["digest"], runs["noop"][-1]["digest"], runs["warm_pkgs"][-1]["digest"]}
        if bump is not None:
            bump(False)
            runs["bump"].append(ours(env_file, tmp / "bump.tar", cache))
            bump(True)
        for d in (tmp / f"cache-{label}-cold1-{i}", cache):
            shutil.rmtree(d, ignore_errors=True)
        alt_cache = tmp / f"alt-cache-{label}-{i}"
        runs["alt_cold"].append(alternative(channel_url, specs, tmp / f"alt-cold-{i}", alt_cache))
        runs["alt_warm"].append(alternative(channel_url, specs, tmp / f"alt-warm-{i}", alt_cache))
        for d in (alt_cache, tmp / f"alt-cold-{i}", tmp / f"alt-warm-{i}"):
            shutil.rmtree(d, ignore_errors=True)
    wall = {k: [r["wall"] for r in v] for k, v in runs.items()}
    rows = [f"| {label} | scenario | oci-conda s, median (min-max) | alternative s | ratio of medians; paired per "
            "round, median (min-max) | goal |",
            "|---|---|---|---|---|---|"]

    def row(name: str, key: str, alt: list[float] | None, goal: str) -> None:
        if not wall[key]:
            return
        ratio = f"{statistics.median(wall[key]) / statistics.median(alt):.2f}x; {_paired(wall[key], alt)}" if alt \
            else ""
        rows.append(f"| | {name} | {_stat(wall[key])} | {_stat(alt) if alt else ''} | {ratio} | {goal} |")

    row(f"cold, --jobs {jobs_all}", "cold", wall["alt_cold"], "<= 0.5x")
    row("cold, --jobs 1", "cold1", wall["alt_cold"], "")
    rows.append(f"| | cores: cold --jobs 1 / --jobs {jobs_all} | | | "
                f"{statistics.median(wall['cold1']) / statistics.median(wall['cold']):.2f}x; "
                f"{_paired(wall['cold1'], wall['cold'])} | >= 1.6x |")
    row("warm (caches filled, no memo of this env)", "warm", wall["alt_warm"], "<= 0.3x")
    row("warm (packages cached, no layer memo)", "warm_pkgs", wall["alt_warm"], "")
    row("one-package bump", "bump", wall["alt_warm"], "<= 0.3x of alt warm")
    row("no-op rebuild", "noop", None, "<= 0.4 s")
    size, alt = runs["cold"][0], runs["alt_cold"][0]
    rows.append(f"| | image archive MiB | {size['size'] / 2**20:.1f} | {alt['size'] / 2**20:.1f} "
                f"(conda-pack tar {alt['pack_size'] / 2**20:.1f} uncompressed) | | |")
    same = sum(len(runs[k]) for k in ("cold1", "cold", "warm", "warm_pkgs", "noop"))
    rows.append(f"| | digests identical across {same} builds of the same inputs | {len(digests) == 1} | | | |")
    phases = ", ".join(f"{k} {v:.2f}" for k, v in runs["cold"][0]["phases"].items())
    rows.append(f"| | oci-conda cold phases (s) | {phases} | | | |")
    alt_phases = ", ".join(f"{k} {v:.2f}" for k, v in runs["alt_cold"][0]["phases"].items())
    rows.append(f"| | alternative cold phases (s) | {alt_phases} | | | |")
    peaks = {k: max(r["peak_mib"] for r in v) for k, v in runs.items() if v}
    rows.append("| | peak RSS MiB (largest run) | " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " | | | |")
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--alternative-worker"]:
        url, specs, work, cache = json.loads(sys.argv[2])
        print(json.dumps(_alternative_worker(url, specs, Path(work), Path(cache))), flush=True)
        os._exit(0)  # py-rattler can crash at interpreter shutdown
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    ap.add_argument("--large-mib", type=int, default=320, help="payload of the synthetic environment (default 320)")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--work", type=Path, help="keep the channels and images here (the synthetic channel is reused: "
                                            "making 320 MiB of packages takes minutes)")
    args = ap.parse_args()
    for tool in ("umoci", "tar"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool} for the alternative pipeline")
    print(f"oci-conda --version: {_stat([version_only() for _ in range(5)])} s (goal <= 0.1 s); "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="oci-conda-bench-") as tmp_name:
        tmp = Path(tmp_name) if args.work is None else args.work
        tmp.mkdir(parents=True, exist_ok=True)
        if not args.skip_real and REALDATA.is_dir():
            shutil.rmtree(tmp / "real-channel", ignore_errors=True)  # made anew (links into ../shared)
            chan = make_real_channel(REALDATA, tmp / "real-channel")
            server = StaticServer(chan)
            try:
                env_file = tmp / "real.yml"
                specs = ["tk", "openssl", "xz"]
                env_file.write_text(f"channels: ['{server.url}']\ndependencies: [{', '.join(specs)}]\n")
                bench_env("real (tk openssl xz, 10 packages)", env_file, server.url, specs, tmp / "real", args.repeat,
                          None)
            finally:
                server.stop()
        if not args.skip_large:
            t0 = time.perf_counter()
            chan = synth_channel(tmp / "synth", args.large_mib)
            print(f"(synthetic channel made in {time.perf_counter() - t0:.0f}s)", flush=True)
            server = StaticServer(chan)
            try:
                env_file = tmp / "synth.yml"
                env_file.write_text(f"channels: ['{server.url}']\ndependencies: [app]\n")

                def bump(undo: bool) -> None:
                    synth_channel(tmp / "synth", args.large_mib, leaf_build=0 if undo else 1)

                bench_env(f"synthetic {args.large_mib} MiB, 45 packages", env_file, server.url, ["app"],
                          tmp / "large", args.repeat, bump)
            finally:
                server.stop()
    sys.stdout.flush()
    os._exit(0)  # py-rattler can crash at interpreter shutdown; the figures are printed already


if __name__ == "__main__":
    main()
