"""Build the real-package environment (tk, openssl, xz from ../shared/realdata) with oci-conda, then the same package
set with the daemonless alternative a user would reach for: py-rattler solve + install, conda-pack, and an OCI image
written by umoci from that tarball. Prints time per phase, image size, and the ratio.

    python benchmarks/build_bench.py [--repeat N]

Both sides run from a cold cache (downloads come from a local HTTP channel on 127.0.0.1) and from a warm one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import REALDATA, StaticServer  # noqa: E402
from realenv import make_real_channel  # noqa: E402

SPECS = ["tk", "openssl", "xz"]
PREFIX = "/opt/conda"


def ours(env_file: Path, out: Path, cache: Path) -> dict:
    env = dict(os.environ, OCI_CONDA_CACHE=str(cache), SOURCE_DATE_EPOCH="1700000000")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "oci_conda", "build", str(env_file), "-o", str(out), "--json"],
                       env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"oci-conda failed: {p.stderr}")
    summary = json.loads(p.stdout)
    return {"wall": wall, "phases": summary["timings"], "size": out.stat().st_size,
            "digest": summary["manifest_digest"], "layer": summary["platforms"][0]["layers"][-1]["size"]}


def _virtual(name: str, version: str):  # noqa: ANN202 - rattler type
    import rattler

    return rattler.GenericVirtualPackage(rattler.PackageName(name), rattler.Version(version),
                                         rattler.BuildString("0"))


def alternative(channel_url: str, work: Path, cache: Path) -> dict:
    import conda_pack
    import rattler

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    t = time.perf_counter()
    records = asyncio.run(rattler.solve(sources=[channel_url], specs=SPECS, platforms=["linux-64", "noarch"],
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
                    format="tar", ignore_missing_files=True, force=True)
    phases["conda-pack"] = time.perf_counter() - t
    t = time.perf_counter()
    layout = work / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:latest"], check=True)
    subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:latest", str(env_tar)], check=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:latest", "--config.env", f"PATH={PREFIX}/bin"],
                   check=True)
    subprocess.run(["umoci", "gc", "--layout", str(layout)], check=True)
    out = work / "alt.tar"
    subprocess.run(["tar", "-cf", str(out), "-C", str(layout), "."], check=True)
    phases["umoci"] = time.perf_counter() - t
    return {"wall": time.perf_counter() - t0, "phases": phases, "size": out.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="warm builds to average (default 3)")
    args = ap.parse_args()
    if not REALDATA.is_dir():
        raise SystemExit(f"needs the real packages in {REALDATA}")
    for tool in ("umoci", "tar"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool} for the alternative pipeline")
    with tempfile.TemporaryDirectory(prefix="oci-conda-bench-") as tmp:
        tmp = Path(tmp)
        chan = make_real_channel(REALDATA, tmp / "channel")
        server = StaticServer(chan)
        try:
            env_file = tmp / "environment.yml"
            env_file.write_text(f"channels: ['{server.url}']\ndependencies: [{', '.join(SPECS)}]\n")
            rows = []
            cache = tmp / "cache-ours"
            cold = ours(env_file, tmp / "cold.tar", cache)
            warm = [ours(env_file, tmp / f"warm{i}.tar", cache) for i in range(args.repeat)]
            alt_cache = tmp / "cache-alt"
            alt_cold = alternative(server.url, tmp / "alt-cold", alt_cache)
            alt_warm = [alternative(server.url, tmp / f"alt-warm{i}", alt_cache) for i in range(args.repeat)]
        finally:
            server.stop()
    avg = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"environment: {' '.join(SPECS)} (real conda-forge packages), base scratch, gzip layers")
    print(f"{'':24}{'oci-conda':>12}{'rattler+conda-pack+umoci':>28}{'ratio':>8}")
    for label, a, b in (("cold build (s)", cold["wall"], alt_cold["wall"]),
                        ("warm build (s, mean)", avg([w["wall"] for w in warm]), avg([w["wall"] for w in alt_warm]))):
        rows.append((label, a, b))
        print(f"{label:24}{a:12.2f}{b:28.2f}{b / a:8.2f}x")
    print(f"{'image archive (MiB)':24}{cold['size'] / 2**20:12.2f}{alt_cold['size'] / 2**20:28.2f}")
    print("oci-conda phases (cold): " + ", ".join(f"{k} {v:.2f}s" for k, v in cold["phases"].items()))
    print("oci-conda phases (warm): " + ", ".join(f"{k} {v:.2f}s" for k, v in warm[-1]["phases"].items()))
    print("alternative phases (cold): " + ", ".join(f"{k} {v:.2f}s" for k, v in alt_cold["phases"].items()))
    same = len({w["digest"] for w in warm} | {cold["digest"]}) == 1
    print(f"oci-conda digests identical across {1 + len(warm)} builds: {same} ({cold['digest'][:19]}...)")
    sys.stdout.flush()
    os._exit(0)  # py-rattler 0.28 can crash at interpreter shutdown; the figures are printed already


if __name__ == "__main__":
    main()
