"""Layering and trimming on a large synthetic environment (and on the real-package one), side by side with a
single-layer image, the way today's conda images ship.

    python benchmarks/layers_bench.py [--packages 120] [--mib 520]

Prints, per environment: number of layers, image size, bytes re-shipped after a one-package bump (packages
layering vs single layer), size saved by each --trim profile, and build times (cold, warm).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import REALDATA  # noqa: E402
from pkgbuilder import build_package, index_channel  # noqa: E402
from realenv import make_real_channel  # noqa: E402


def synth_channel(root: Path, n: int, total_mib: int, leaf_build: int = 0) -> Path:
    """n packages with a long-tailed size distribution (a few big ones, many small), each with a library, headers,
    docs and a static library, so every trim rule has something to find; one leaf app depends on all."""
    chan = root / "channel"
    (chan / "linux-64").mkdir(parents=True, exist_ok=True)
    (chan / "noarch").mkdir(exist_ok=True)
    rng = random.Random(42)
    weights = [1 / (i + 1) ** 1.2 for i in range(n)]
    scale = total_mib * 2**20 / sum(weights)
    for i, w in enumerate(weights):
        name = f"lib{i:03d}"
        if (chan / "linux-64" / f"{name}-1.0-0.conda").exists():
            continue
        size = max(4096, int(w * scale))
        body = rng.randbytes(size)  # incompressible: worst case for registries, honest for size figures
        files = {f"lib/{name}.so": body[: int(size * 0.8)], f"lib/{name}.a": body[int(size * 0.8): int(size * 0.9)],
                 f"include/{name}.h": body[int(size * 0.9): int(size * 0.95)].hex()[: size // 20],
                 f"share/doc/{name}/README": "docs " * 200, f"share/man/man3/{name}.3": "man " * 100}
        build_package(chan / "linux-64", name, "1.0", files=files)
    for old in (chan / "linux-64").glob("app-*"):
        old.unlink()
    build_package(chan / "linux-64", "app", "1.0", build=str(leaf_build), build_number=leaf_build,
                  depends=[f"lib{i:03d}" for i in range(n)], files={"bin/app": f"#!/bin/sh\necho {leaf_build}\n"})
    index_channel(chan)
    return chan


def build(env_file: Path, out: Path, cache: Path, *extra: str) -> tuple[dict, float]:
    env = dict(os.environ, OCI_CONDA_CACHE=str(cache), SOURCE_DATE_EPOCH="1700000000")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "oci_conda", "build", str(env_file), "-o", str(out), "--json", *extra],
                       env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout), time.perf_counter() - t0


def layer_sizes(s: dict) -> dict[str, int]:
    return {lay["digest"]: lay["size"] for lay in s["platforms"][0]["layers"]}


def report(label: str, env_v0: Path, env_v1: Path, tmp: Path, bump) -> None:  # noqa: ANN001
    cache = tmp / f"cache-{label}"
    print(f"\n== {label}")
    for layering in ("packages", "single"):
        s0, cold = build(env_v0, tmp / f"{label}-{layering}-0.tar", cache, "--layering", layering)
        _, warm = build(env_v0, tmp / f"{label}-{layering}-0b.tar", cache, "--layering", layering)
        bump()
        s1, _ = build(env_v1, tmp / f"{label}-{layering}-1.tar", cache, "--layering", layering)
        bump(undo=True)
        a, b = layer_sizes(s0), layer_sizes(s1)
        total = sum(b.values())
        shipped = sum(size for d, size in b.items() if d not in a)
        n = len(s0["platforms"][0]["packages"])
        print(f"{layering:>9}: {n} packages, {len(a)} layers, image {total / 2**20:8.1f} MiB compressed; "
              f"after a one-package bump re-ships {shipped / 2**20:8.2f} MiB ({100 * shipped / total:5.1f}%); "
              f"build cold {cold:5.1f}s warm {warm:5.1f}s")
    for trim in ("safe", "aggressive"):
        s, _ = build(env_v0, tmp / f"{label}-trim-{trim}.tar", cache, "--trim", trim)
        t = s["platforms"][0]["trimmed"]
        saved = sum(v["bytes"] for v in t.values())
        rules = ", ".join(f"{k} {v['bytes'] / 2**20:.1f} MiB" for k, v in t.items())
        print(f"  --trim {trim:>10}: saves {saved / 2**20:7.1f} MiB uncompressed ({rules})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=120)
    ap.add_argument("--mib", type=int, default=520, help="total payload of the synthetic env")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="oci-conda-layers-") as tmp:
        tmp = Path(tmp)
        if REALDATA.is_dir():
            chan = make_real_channel(REALDATA, tmp / "real" / "channel")
            env = tmp / "real.yml"
            env.write_text(f"channels: ['{chan}']\ndependencies: [tk, openssl, xz]\n")
            xz = chan / "linux-64" / "repodata.json"
            orig = xz.read_bytes()

            def bump_real(undo: bool = False) -> None:
                # republish xz with a higher build number (the same payload under a new record)
                if undo:
                    xz.write_bytes(orig)
                    return
                data = json.loads(orig)
                rec = dict(data["packages"]["xz-5.2.6-h166bdaf_0.tar.bz2"])
                rec["build_number"] += 1
                rec["build"] = "h166bdaf_1"
                data["packages"]["xz-5.2.6-h166bdaf_1.tar.bz2"] = rec
                os.symlink(os.readlink(chan / "linux-64" / "xz-5.2.6-h166bdaf_0.tar.bz2"),
                           chan / "linux-64" / "xz-5.2.6-h166bdaf_1.tar.bz2")
                xz.write_text(json.dumps(data))
                (chan / "linux-64" / "repodata.json.zst").unlink(missing_ok=True)

            def bump_real_wrap(undo: bool = False) -> None:
                bump_real(undo)
                if undo:
                    (chan / "linux-64" / "xz-5.2.6-h166bdaf_1.tar.bz2").unlink(missing_ok=True)

            report("real packages (tk openssl xz)", env, env, tmp, bump_real_wrap)
        t0 = time.perf_counter()
        schan = synth_channel(tmp / "synth", args.packages, args.mib)
        print(f"\n(synthetic channel: {args.packages} packages, {args.mib} MiB payload, made in "
              f"{time.perf_counter() - t0:.0f}s)")
        env = tmp / "synth.yml"
        env.write_text(f"channels: ['{schan}']\ndependencies: [app]\n")

        def bump_synth(undo: bool = False) -> None:
            synth_channel(tmp / "synth", args.packages, args.mib, leaf_build=0 if undo else 1)

        report(f"synthetic ({args.packages} packages, {args.mib} MiB)", env, env, tmp, bump_synth)


if __name__ == "__main__":
    main()
