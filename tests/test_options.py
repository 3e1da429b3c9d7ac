"""options.py's table is the one source: the CLI flags of build/lock/bundle, BuildOptions' defaults and the options a
lock records all follow it, and a build from a lock takes the locked values or refuses a conflicting one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from oci_conda.cli import make_parser
from oci_conda.lockfile import Lock, LockError, PlatformLock
from oci_conda.oci.tar import compressor_id
from oci_conda.options import (IMAGE_OPTIONS, LOCKED_OPTIONS, BuildOptions, apply_lock, compressor_warning,
                                locked_values)


def test_parser_and_defaults_come_from_the_table() -> None:
    parser = make_parser()
    build = vars(parser.parse_args(["build", "env.yml", "-o", "x.tar"]))
    lock = vars(parser.parse_args(["lock", "env.yml"]))
    bundle = vars(parser.parse_args(["bundle", "env.yml", "-o", "b.tar"]))
    fields = {f.name: f.default for f in dataclasses.fields(BuildOptions)}
    for o in IMAGE_OPTIONS:
        assert build[o.name] == o.default == fields[o.name]
        assert (o.name in lock) == (o.name in bundle) == o.locked
    assert {o.name for o in LOCKED_OPTIONS} == {"compression", "layering", "max_layers", "trim"}
    given = vars(parser.parse_args(["build", "e.yml", "-o", "x", "--compression", "zstd", "--max-layers", "5",
                                    "--trim", "safe", "--layering", "single", "--compile-pyc"]))
    opts = BuildOptions.from_values(given)
    assert (opts.compression, opts.max_layers, opts.trim, opts.layering, opts.compile_pyc) == \
        ("zstd", 5, "safe", "single", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["lock", "env.yml", "--compile-pyc"])  # not recorded in a lock, so not a lock flag
    with pytest.raises(SystemExit):
        parser.parse_args(["build", "env.yml", "--trim", "everything"])


def test_locked_values_and_apply_lock() -> None:
    opts = BuildOptions(compression="zstd", max_layers=9)
    values = locked_values(opts, "/opt/env", env={"SOURCE_DATE_EPOCH": "42"})
    assert values == {"prefix": "/opt/env", "source_date_epoch": 42, "compression": "zstd", "layering": "packages",
                      "max_layers": 9, "trim": "none", "compressor": compressor_id("zstd")}
    lock = Lock(platforms={"linux-aarch64": PlatformLock("linux-aarch64", ()), "osx-64": PlatformLock("osx-64", ())},
                options=values)
    applied = apply_lock(BuildOptions(), lock, platforms_given=False)
    assert (applied.compression, applied.max_layers, applied.lock) == ("zstd", 9, lock)
    assert applied.platforms == ("linux-aarch64",)  # every linux platform of the lock, not the default
    assert apply_lock(BuildOptions(compression="zstd"), lock, platforms_given=True).platforms == ("linux-64",)
    with pytest.raises(LockError, match="locked with max_layers=9; --max-layers 4 needs a relock"):
        apply_lock(BuildOptions(max_layers=4), lock, platforms_given=False)


def test_a_lock_names_its_compressor_and_another_one_is_reported() -> None:
    """Layer bytes depend on the compressor's version: a build from a lock made with another one says so."""
    opts = BuildOptions()
    same = Lock(platforms={}, options=locked_values(opts, "/opt/conda", env={}), path=Path("env.lock"))
    assert same.options["compressor"].startswith("zlib-ng ")
    assert compressor_warning(dataclasses.replace(opts, lock=same)) is None
    assert compressor_warning(opts) is None
    older = Lock(platforms={}, options={**same.options, "compressor": "zlib-ng 2.2.0 level 4 blocks 1048576"},
                 path=Path("env.lock"))
    warning = compressor_warning(dataclasses.replace(opts, lock=older))
    assert warning is not None and "env.lock: locked with zlib-ng 2.2.0" in warning and "layer digests" in warning
