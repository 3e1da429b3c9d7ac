"""The layer memo (layers/memo.py): a rebuild with the same inputs does no work and gives the same bytes; any change
of an input, or a damaged cache entry, takes the full path."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from pkgbuilder import build_package, index_channel
from realenv import oci_conda

from oci_conda.conda.records import PackageRecord
from oci_conda.layers import memo


def _channel(root: Path, app_build: str = "0") -> Path:
    chan = root / "channel"
    (chan / "linux-64").mkdir(parents=True, exist_ok=True)
    (chan / "noarch").mkdir(parents=True, exist_ok=True)
    build_package(chan / "linux-64", "lib", "1.0", files={"lib/lib.so": b"\x7fELF" + bytes(range(256)) * 64})
    build_package(chan / "linux-64", "app", "1.0", build=app_build, build_number=int(app_build), depends=["lib"],
                  files={"bin/app": f"#!/bin/sh\necho app {app_build}\n"})
    index_channel(chan)
    return chan


def _build(tmp: Path, chan: Path, out: str, *extra: str) -> dict:
    env = tmp / "environment.yml"
    env.write_text(f"name: memo\nchannels: ['{chan}']\ndependencies: [app]\n")
    e = dict(os.environ, OCI_CONDA_CACHE=str(tmp / "cache"), SOURCE_DATE_EPOCH="1700000000")
    p = oci_conda("build", str(env), "-o", str(tmp / out), "--json", *extra, env=e)
    return json.loads(p.stdout)


def test_rebuild_reuses_the_memo_with_identical_bytes(tmp_path: Path) -> None:
    chan = _channel(tmp_path)
    cold = _build(tmp_path, chan, "a.tar")
    assert "stream" in cold["timings"] and "compress" in cold["timings"]
    warm = _build(tmp_path, chan, "b.tar")
    # nothing fetched, extracted, installed or compressed: the memo answered right after the solve
    assert "layers" in warm["timings"]
    assert not {"fetch", "stream", "extract", "install", "pack", "compress"} & set(warm["timings"])
    assert warm["digest"] == cold["digest"]
    assert warm["platforms"][0]["layers"] == cold["platforms"][0]["layers"]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_a_changed_option_or_package_takes_the_full_path(tmp_path: Path) -> None:
    chan = _channel(tmp_path)
    first = _build(tmp_path, chan, "a.tar")
    zstd = _build(tmp_path, chan, "z.tar", "--compression", "zstd")
    assert "compress" in zstd["timings"] and zstd["digest"] != first["digest"]
    _channel(tmp_path, app_build="1")  # a bump: the solution changes, so does the key
    bumped = _build(tmp_path, chan, "c.tar")
    assert "stream" in bumped["timings"]
    before, after = (
        {lay["source"]: lay["digest"] for lay in s["platforms"][0]["layers"]} for s in (first, bumped)
    )
    assert before["lib-1.0-0"] == after["lib-1.0-0"]  # the unchanged package's layer is the same blob
    assert "app-1.0-1" in after and "app-1.0-0" not in after


def test_a_damaged_blob_is_not_trusted(tmp_path: Path) -> None:
    chan = _channel(tmp_path)
    cold = _build(tmp_path, chan, "a.tar")
    biggest = max(cold["platforms"][0]["layers"], key=lambda lay: lay["size"])
    blob = tmp_path / "cache" / "blobs" / "sha256" / biggest["digest"].split(":", 1)[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    again = _build(tmp_path, chan, "b.tar")
    assert "layers" not in again["timings"]  # the memo was refused, the layers rebuilt
    assert again["digest"] == cold["digest"]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_a_corrupt_memo_entry_is_ignored(tmp_path: Path) -> None:
    chan = _channel(tmp_path)
    cold = _build(tmp_path, chan, "a.tar")
    entries = list((tmp_path / "cache" / "layers" / "env").glob("*.json"))
    assert len(entries) == 1
    entries[0].write_text("{not json")
    again = _build(tmp_path, chan, "b.tar")
    assert "compress" in again["timings"] and again["digest"] == cold["digest"]
    assert json.loads(entries[0].read_text())["layers"]  # rewritten by the full path


def _inputs(**changes: object) -> memo.MemoInputs:
    rec = PackageRecord(name="a", version="1", build="0", build_number=0, channel="file:///c",
                        subdir="linux-64", fn="a-1-0.conda", url="file:///c/linux-64/a-1-0.conda", sha256="ab" * 32)
    base = memo.MemoInputs(records=[rec], requested={"a": "a"}, prefix="/opt/conda", subdir="linux-64",
                           mtime=1700000000, base_layers=0,
                           options={"compression": "gzip", "layering": "packages", "max_layers": 16, "trim": "none",
                                    "compile_pyc": False}, layer_format=1)
    return dataclasses.replace(base, **changes)


def test_key_covers_every_input() -> None:
    key = memo.memo_key(_inputs())
    assert key is not None and key == memo.memo_key(_inputs())
    rec = _inputs().records[0]
    variants = [
        _inputs(records=[dataclasses.replace(rec, sha256="cd" * 32)]),
        _inputs(records=[dataclasses.replace(rec, channel="./c")]),
        _inputs(requested={"a": "a >=1"}),
        _inputs(prefix="/opt/env"),
        _inputs(subdir="linux-aarch64"),
        _inputs(mtime=1700000001),
        _inputs(base_layers=3),
        _inputs(layer_format=2),
        *(_inputs(options={**_inputs().options, k: v})
          for k, v in (("compression", "zstd"), ("layering", "single"), ("max_layers", 8), ("trim", "safe"))),
    ]
    keys = {memo.memo_key(v) for v in variants}
    assert None not in keys and key not in keys and len(keys) == len(variants)


def test_not_memoised_when_bytes_depend_on_the_build_host() -> None:
    assert memo.memo_key(_inputs(options={**_inputs().options, "compile_pyc": True})) is None
    rec = _inputs().records[0]
    assert memo.memo_key(_inputs(records=[dataclasses.replace(rec, sha256=None)])) is None
