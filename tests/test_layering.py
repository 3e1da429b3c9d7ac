"""Layering: a layer per package (biggest first within a budget), stable digests across rebuilds and images."""

from __future__ import annotations

import json
import os
import random
import tarfile
from pathlib import Path

import pytest

from oci_conda.conda.records import PackageRecord
from oci_conda.errors import SpecError
from oci_conda.layers.plan import plan_layers
from oci_conda.oci.tar import TarEntry
from pkgbuilder import build_package, index_channel
from realenv import oci_conda


def _payload(name: str, size: int) -> bytes:
    # incompressible, deterministic bytes so layer sizes reflect package sizes
    return random.Random(name).randbytes(size)


def make_channel(root: Path, leaf_build: str = "0", extra: dict[str, int] | None = None,
                 leaf_time: int = 1700000000000) -> Path:
    """A channel with a base 'big' package, a few small ones and a leaf app depending on them."""
    chan = root / "channel"
    (chan / "linux-64").mkdir(parents=True, exist_ok=True)
    (chan / "noarch").mkdir(parents=True, exist_ok=True)
    sizes = {"big": 400_000, "mid": 120_000, "small-a": 3_000, "small-b": 2_000, **(extra or {})}
    for name, size in sizes.items():
        build_package(chan / "linux-64", name, "1.0", files={f"lib/{name}.so": _payload(name, size)})
    build_package(chan / "linux-64", "app", "1.0", build=leaf_build, build_number=int(leaf_build),
                  depends=sorted(sizes), files={"bin/app": f"#!/bin/sh\necho app {leaf_build}\n"}, timestamp=leaf_time)
    index_channel(chan)
    return chan


def build(tmp: Path, chan: Path, deps: str, out: str, *extra: str, epoch: str | None = "1700000000") -> dict:
    env = tmp / f"{out}.yml"
    env.write_text(f"name: layers\nchannels: ['{chan}']\ndependencies: [{deps}]\n")
    e = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    e.update(OCI_CONDA_CACHE=str(tmp / "cache"), **({"SOURCE_DATE_EPOCH": epoch} if epoch else {}))
    p = oci_conda("build", str(env), "-o", str(tmp / out), "--json", *extra, env=e)
    return json.loads(p.stdout)


def layers_by_source(summary: dict) -> dict[str, str]:
    return {layer["source"]: layer["digest"] for layer in summary["platforms"][0]["layers"]}


def test_each_package_in_exactly_one_layer_and_env_files_on_top(tmp_path: Path) -> None:
    chan = make_channel(tmp_path)
    s = build(tmp_path, chan, "app", "a.tar")
    layers = s["platforms"][0]["layers"]
    assert [lay["source"] for lay in layers][-1] == "environment files"
    owned = [p for lay in layers for p in lay["packages"]]
    assert sorted(owned) == sorted(f"{r['name']}-{r['version']}-{r['build']}" for r in s["platforms"][0]["packages"])
    with tarfile.open(tmp_path / "a.tar") as t:
        seen: dict[str, str] = {}
        for lay in layers:
            blob = t.extractfile(f"blobs/sha256/{lay['digest'].split(':')[1]}")
            with tarfile.open(fileobj=blob, mode="r:gz") as lt:
                for m in lt.getmembers():
                    if m.isdir():
                        continue
                    assert m.name not in seen, f"{m.name} in two layers"
                    seen[m.name] = lay["source"]
    assert seen["opt/conda/lib/big.so"] == "big-1.0-0"
    assert seen["opt/conda/conda-meta/big-1.0-0.json"] == "big-1.0-0"
    assert seen["opt/conda/conda-meta/history"] == "environment files"


def test_one_package_bump_reships_only_its_layer(tmp_path: Path) -> None:
    a = build(tmp_path, make_channel(tmp_path, "0"), "app", "a.tar")
    for old in (tmp_path / "channel" / "linux-64").glob("app-*"):  # the channel publishes a new build of the leaf
        old.unlink()
    b = build(tmp_path, make_channel(tmp_path, "1"), "app", "b.tar")
    la, lb = layers_by_source(a), layers_by_source(b)
    changed = {k for k in la if la[k] != lb.get(k)} | {k for k in lb if k not in la}
    # the bumped leaf's layer and the top layer (history and the leaf's conda-meta live with them) change
    assert changed == {"app-1.0-0", "app-1.0-1", "environment files"}
    total = sum(lay["size"] for lay in b["platforms"][0]["layers"])
    reshipped = sum(lay["size"] for lay in b["platforms"][0]["layers"] if lay["digest"] not in la.values())
    print(f"bytes re-shipped after a one-package bump: {reshipped} of {total} ({100 * reshipped / total:.1f}%)")
    assert reshipped < 0.1 * total


@pytest.mark.parametrize("epoch", [None, "1800000000"])
def test_a_newer_build_leaves_the_other_layers_alone(tmp_path: Path, epoch: str | None) -> None:
    """Layer format 2: a package's files carry its own build time (clamped to SOURCE_DATE_EPOCH), not the newest
    package's, so a bump to a newer build changes only the bumped package's layer and the top layer, with or without
    SOURCE_DATE_EPOCH; the image's time still follows the newest package."""
    a = build(tmp_path, make_channel(tmp_path, "0"), "app", "a.tar", epoch=epoch)
    for old in (tmp_path / "channel" / "linux-64").glob("app-*"):
        old.unlink()
    b = build(tmp_path, make_channel(tmp_path, "1", leaf_time=1750000000000), "app", "b.tar", epoch=epoch)
    la, lb = layers_by_source(a), layers_by_source(b)
    assert {k for k in lb if la.get(k) != lb[k]} == {"app-1.0-1", "environment files"}
    with tarfile.open(tmp_path / "b.tar") as t:
        index = json.load(t.extractfile("index.json"))
        manifest = json.load(t.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'].split(':')[1]}"))
        config = json.load(t.extractfile(f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"))
        times = {}
        for lay in b["platforms"][0]["layers"]:
            with tarfile.open(fileobj=t.extractfile(f"blobs/sha256/{lay['digest'].split(':')[1]}"), mode="r:gz") as lt:
                times[lay["source"]] = {m.mtime for m in lt}
    assert times["big-1.0-0"] == {1700000000}
    assert times["app-1.0-1"] == {1750000000}
    newest = "2025-06-15T15:06:40Z" if epoch is None else "2027-01-15T08:00:00Z"
    assert config["created"] == newest
    assert times["environment files"] == {1750000000 if epoch is None else 1800000000}


def test_source_date_epoch_clamps_package_times(tmp_path: Path) -> None:
    """SOURCE_DATE_EPOCH older than a package: that package's files are dated SOURCE_DATE_EPOCH, not later."""
    s = build(tmp_path, make_channel(tmp_path, "0"), "big", "a.tar", epoch="1600000000")
    with tarfile.open(tmp_path / "a.tar") as t:
        lay = s["platforms"][0]["layers"][0]
        with tarfile.open(fileobj=t.extractfile(f"blobs/sha256/{lay['digest'].split(':')[1]}"), mode="r:gz") as lt:
            assert {m.mtime for m in lt} == {1600000000}


def test_same_package_same_layer_digest_in_different_images(tmp_path: Path) -> None:
    chan = make_channel(tmp_path)
    a = build(tmp_path, chan, "app", "a.tar")
    b = build(tmp_path, chan, "big, small-a", "b.tar")
    assert layers_by_source(a)["big-1.0-0"] == layers_by_source(b)["big-1.0-0"]


def test_budget_groups_smaller_packages_and_single_mode(tmp_path: Path) -> None:
    chan = make_channel(tmp_path)
    s = build(tmp_path, chan, "app", "a.tar", "--max-layers", "4")
    layers = s["platforms"][0]["layers"]
    assert len(layers) == 4  # budget 4: 1 group for the smaller packages, 2 own layers, the top layer
    assert [lay["packages"] for lay in layers[:2]] == [["big-1.0-0"], ["mid-1.0-0"]]  # biggest get their own
    assert sorted(layers[2]["packages"]) == ["app-1.0-0", "small-a-1.0-0", "small-b-1.0-0"]
    nine = build(tmp_path, chan, "app", "n.tar", "--max-layers", "9")  # 5 packages fit: each its own
    assert len(nine["platforms"][0]["layers"]) == 6
    single = build(tmp_path, chan, "app", "s.tar", "--layering", "single")
    assert len(single["platforms"][0]["layers"]) == 1


def _rec(name: str) -> PackageRecord:
    return PackageRecord(name=name, version="1", build="0", build_number=0, subdir="linux-64", channel="c",
                         url=f"c/{name}", fn=f"{name}-1-0.conda")


def test_plan_respects_the_127_layer_limit_with_the_base() -> None:
    recs = [_rec(f"p{i:03d}") for i in range(200)]
    entries = [TarEntry(f"opt/conda/lib/{r.name}", "file", size=i + 1, data=b"x" * (i + 1)) for i, r in enumerate(recs)]
    owner = {e.path: r.dist_name for e, r in zip(entries, recs)}
    plans = plan_layers(entries, owner, recs, "packages", max_layers=200, base_layers=100)
    assert 100 + len(plans) <= 127
    assert len(plans) == 26  # budget 27: 20 own + 6 groups of smaller packages; 1 slot kept for environment files
    assert sum(len(p.packages) for p in plans) == 200 and all(p.packages for p in plans)
    # a package's group depends on its name only: another version of p000 lands in the same group
    again = plan_layers(entries, owner, [_rec("p000")] + recs[1:], "packages", max_layers=200, base_layers=100)
    assert [p.name for p in again if "p000-1-0" in p.packages] == [p.name for p in plans if "p000-1-0" in p.packages]
    with pytest.raises(SpecError):
        plan_layers(entries, owner, recs, "packages", max_layers=200, base_layers=126)
