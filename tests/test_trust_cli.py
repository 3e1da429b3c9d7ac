"""Issue 12 through the real command line: every bad input is one line and a non-zero exit (never a traceback),
nothing is left behind, and the next good build on the same cache gives the same image.

Covers: image times out of range (SOURCE_DATE_EPOCH, package timestamps), a prefix component no file system takes,
records for another platform, bundles of the wrong shape, index.json that is a FIFO, /dev/zero or nested too
deeply, a base whose diff_ids lie, a damaged layer cache, SIGTERM mid-build, a closed stdout, stale temps."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from pkgbuilder import build_package, index_channel
from realenv import oci_conda, one_error_line

from oci_conda.cache import held_temp_dir, sweep_cache
from oci_conda.conda.records import PackageRecord
from oci_conda.errors import OciCondaError
from oci_conda.oci.blobs import digest_bytes, file_opener
from oci_conda.oci.image import Descriptor, Platform, append_layer, empty_image
from oci_conda.oci.layout import write_oci_dir
from oci_conda.resolve import MAX_EPOCH, check_record_subdirs, checked_epoch

ENV = "channels: [./chan]\ndependencies: [tiny]\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trustcli")
    build_package(root / "chan" / "linux-64", "tiny", "1.0", files={"lib/tiny.txt": "tiny\n", "bin/t": "#!/bin/sh\n"})
    build_package(root / "chan" / "linux-64", "future", "1.0", files={"lib/f.txt": "f\n"}, timestamp=10 ** 20)
    index_channel(root / "chan")
    (root / "env.yml").write_text(ENV)
    (root / "future.yml").write_text("channels: [./chan]\ndependencies: [future]\n")
    return root


def _env(tmp: Path, **extra: str) -> dict:
    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp / "cache"), SOURCE_DATE_EPOCH="1700000000", TMPDIR=str(tmp))
    env.update(extra)
    return env


def _build(world: Path, tmp: Path, *args: str, env: dict | None = None, check: bool = False,
           spec: str = "env.yml") -> subprocess.CompletedProcess:
    return oci_conda("build", "-q", spec, "-o", str(tmp / "out.tar"), "--offline", *args, cwd=world,
                     env=env or _env(tmp), check=check, timeout=300)


@pytest.mark.parametrize("sde", [str(8 ** 11), str(10 ** 20), "1" + "0" * 300, "-1", "abc"])
def test_source_date_epoch_out_of_range_is_one_line(world: Path, tmp_path: Path, sde: str) -> None:
    line = one_error_line(_build(world, tmp_path, env=_env(tmp_path, SOURCE_DATE_EPOCH=sde)))
    assert "SOURCE_DATE_EPOCH" in line and len(line) < 300
    assert not (tmp_path / "out.tar").exists()


def test_package_timestamp_out_of_range_names_the_package(world: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    del env["SOURCE_DATE_EPOCH"]
    line = one_error_line(_build(world, tmp_path, env=env, spec="future.yml"))
    assert "future-1.0-0.conda" in line and "outside 0.." in line


def test_checked_epoch_range() -> None:
    assert checked_epoch(0, "x") == 0 and checked_epoch(MAX_EPOCH, "x") == MAX_EPOCH
    assert checked_epoch("1700000000", "x") == 1700000000
    for bad in (-1, MAX_EPOCH + 1, 10 ** 300, float("inf"), float("nan"), 1.5, True, None, "1e3", "9" * 5000):
        with pytest.raises(OciCondaError):
            checked_epoch(bad, "x")


def test_prefix_with_a_300_char_component_is_one_line(world: Path, tmp_path: Path) -> None:
    line = one_error_line(_build(world, tmp_path, "--prefix", "/opt/" + "a" * 300))
    assert "255-byte limit" in line and len(line) < 300


def _rec(subdir: str, url_subdir: str) -> PackageRecord:
    return PackageRecord("a", "1", "0", 0, subdir, "https://c/x", f"https://c/x/{url_subdir}/a-1-0.conda", "a-1-0.conda")


def test_records_for_another_platform_are_refused() -> None:
    check_record_subdirs([_rec("linux-aarch64", "linux-aarch64"), _rec("noarch", "noarch")], "linux-aarch64", "l")
    for rec in (_rec("linux-64", "linux-64"), _rec("linux-aarch64", "linux-64"), _rec("linux-64", "linux-aarch64")):
        with pytest.raises(OciCondaError, match="not linux-aarch64"):
            check_record_subdirs([rec], "linux-aarch64", "lock")


def test_lock_with_records_of_another_platform_is_one_line(world: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    oci_conda("lock", "-q", "env.yml", "-o", str(tmp_path / "x.lock"), "--offline", cwd=world, env=env, timeout=300)
    text = (tmp_path / "x.lock").read_text()
    assert "linux-64" in text
    (tmp_path / "arm.lock").write_text(text.replace('"linux-64":', '"linux-aarch64":').replace(
        "linux-64:", "linux-aarch64:"))
    p = oci_conda("build", "-q", "env.yml", "--lock", str(tmp_path / "arm.lock"), "-o", str(tmp_path / "out.tar"),
                  "--offline", "--platform", "linux-aarch64", cwd=world, env=env, check=False, timeout=300)
    line = one_error_line(p)
    assert "comes from the subdir linux-64, not linux-aarch64" in line or "is for linux-64, not linux-aarch64" in line, line


# ---------------------------------------------------------------------------------------------------------------
# local images: index.json that never ends, blocks, or nests; a base whose diff_ids lie


def _layout_with(tmp: Path, index: bytes | None = None, link: str | None = None, fifo: bool = False) -> Path:
    d = tmp / "img"
    d.mkdir()
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (d / "blobs" / "sha256").mkdir(parents=True)
    if index is not None:
        (d / "index.json").write_bytes(index)
    elif link is not None:
        (d / "index.json").symlink_to(link)
    elif fifo:
        os.mkfifo(d / "index.json")
    return d


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "nested", "huge"])
def test_hostile_index_json_is_one_line(tmp_path: Path, kind: str) -> None:
    d = {"dev-zero": lambda: _layout_with(tmp_path, link="/dev/zero"),
         "fifo": lambda: _layout_with(tmp_path, fifo=True),
         "nested": lambda: _layout_with(tmp_path, index=b"[" * 200000 + b"]" * 200000),
         "huge": lambda: _layout_with(tmp_path, index=b" " * (17 << 20) + b"{}")}[kind]()
    p = oci_conda("inspect", "-q", str(d), env=_env(tmp_path), check=False, timeout=60)
    line = one_error_line(p)
    assert "index.json" in line and "Traceback" not in p.stderr


def _lying_base(tmp: Path) -> Path:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        ti = tarfile.TarInfo("etc/hello")
        data = b"hello\n"
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    blob = tmp / "layer.tar"
    blob.write_bytes(layer.getvalue())
    d = digest_bytes(blob.read_bytes())
    wrong = "sha256:" + hashlib.sha256(b"not this layer").hexdigest()
    img = append_layer(empty_image(Platform()), Descriptor("application/vnd.oci.image.layer.v1.tar", d,
                                                           blob.stat().st_size), wrong, file_opener(blob), {})
    out = tmp / "base"
    write_oci_dir(out, [(img, "base")])
    return out


def test_base_with_a_wrong_diff_id_is_refused(world: Path, tmp_path: Path) -> None:
    base = _lying_base(tmp_path)
    line = one_error_line(_build(world, tmp_path, "--base", f"oci:{base}"))
    assert "diff_id" in line and "layer 0" in line
    assert not (tmp_path / "out.tar").exists()


# ---------------------------------------------------------------------------------------------------------------
# the cache: a damaged layer blob is rebuilt, not shipped and not fatal


def test_damaged_layer_blob_in_the_cache_is_rebuilt(world: Path, tmp_path: Path) -> None:
    _build(world, tmp_path, check=True)
    good = hashlib.sha256((tmp_path / "out.tar").read_bytes()).hexdigest()
    blobs = sorted((tmp_path / "cache" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    layers = [p for p in blobs if p.is_file() and not p.name.startswith(".")]
    assert layers
    for p in layers:
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    (tmp_path / "out.tar").unlink()
    _build(world, tmp_path, check=True)
    assert hashlib.sha256((tmp_path / "out.tar").read_bytes()).hexdigest() == good


# ---------------------------------------------------------------------------------------------------------------
# bundles of the wrong shape


def _bundle(tmp: Path, members: dict[str, bytes]) -> Path:
    path = tmp / "b.tar"
    with tarfile.open(path, "w") as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return path


@pytest.mark.parametrize("case,members,pattern", [
    ("lock-to-dev-zero", {"oci-conda-bundle.json": b'{"version": 1, "lock": "/dev/zero", "env": null, "base": false}',
                          "lock/x.lock": b"@EXPLICIT\n"}, "'lock' must name"),
    ("lock-escapes", {"oci-conda-bundle.json": b'{"version": 1, "lock": "lock/../../x", "env": null, "base": false}',
                      "lock/x.lock": b"@EXPLICIT\n"}, "'lock' must name"),
    ("manifest-a-list", {"oci-conda-bundle.json": b"[1, 2]", "lock/x.lock": b"@EXPLICIT\n"}, "not a JSON object"),
    ("nested-package", {"oci-conda-bundle.json": b'{"version": 1, "lock": "lock/x.lock", "env": null, "base": false}',
                        "lock/x.lock": b"@EXPLICIT\n", "pkgs/a/b.conda": b"x"}, "unexpected 'pkgs/a/b.conda'"),
    ("base-missing", {"oci-conda-bundle.json": b'{"version": 1, "lock": "lock/x.lock", "env": 7, "base": "yes"}',
                      "lock/x.lock": b"@EXPLICIT\n"}, "'env' must be null"),
])
def test_bundle_of_the_wrong_shape_is_one_line(world: Path, tmp_path: Path, case: str, members: dict,
                                               pattern: str) -> None:
    b = _bundle(tmp_path, members)
    p = oci_conda("build", "-q", "--from-bundle", str(b), "-o", str(tmp_path / "out.tar"), cwd=world, env=_env(tmp_path),
                  check=False, timeout=120)
    line = one_error_line(p)
    assert pattern in line
    assert not list(tmp_path.glob("oci-conda-held-bundle-*"))


def test_bundle_that_is_a_fifo_is_one_line(world: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "b.tar")
    p = oci_conda("build", "-q", "--from-bundle", str(tmp_path / "b.tar"), "-o", str(tmp_path / "out.tar"), cwd=world,
                  env=_env(tmp_path), check=False, timeout=60)
    assert "not a regular file" in one_error_line(p)


# ---------------------------------------------------------------------------------------------------------------
# leftovers: SIGTERM cleans up; what kill -9 leaves is swept by the next run; a closed stdout is quiet


def test_sigterm_mid_build_cleans_up_and_exits_143(world: Path, tmp_path: Path) -> None:
    big = tmp_path / "bigchan"
    build_package(big / "linux-64", "tiny", "1.0", files={f"lib/f{i}.bin": os.urandom(1 << 20) for i in range(48)})
    index_channel(big)
    (tmp_path / "env.yml").write_text("channels: [./bigchan]\ndependencies: [tiny]\n")
    env = _env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "oci_conda", "build", "env.yml", "-o", str(tmp_path / "o.tar"),
                             "--offline"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    spool = tmp_path / "cache" / "tmp"
    while time.monotonic() < deadline and proc.poll() is None:  # wait until it is streaming, staging or packing
        if list(spool.glob("oci-conda-held-stage-*/spool/*")) or list(tmp_path.glob("oci-conda-held-stage-*")) \
                or list((tmp_path / "cache").rglob(".*.tmp")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "oci-conda: terminated" and "Traceback" not in err
    assert not list(tmp_path.glob("oci-conda-held-stage-*")) and not list(spool.glob("oci-conda-held-*"))
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert not (tmp_path / "o.tar").exists() and not list(tmp_path.glob(".o.tar.*"))


KILLED_HOLDER = """
import os, sys, time
from pathlib import Path
from oci_conda.cache import atomic_path, held_temp_dir
with held_temp_dir("stage-") as d:
    (d / "x").write_bytes(b"x" * 1000)
    with atomic_path(Path(sys.argv[1]) / "pkgs" / "f.conda") as s:
        open(s.tmp, "wb").write(b"y" * 1000)
        print("ready", flush=True)
        time.sleep(600)
"""


def test_what_kill_9_leaves_is_swept_but_live_temps_are_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    (cache / "pkgs").mkdir(parents=True)
    monkeypatch.setenv("OCI_CONDA_CACHE", str(cache))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    env = dict(os.environ)

    def holder() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", KILLED_HOLDER, str(cache)], env=env, stdout=subprocess.PIPE,
                             text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p

    live, dead = holder(), holder()
    dead.kill()
    dead.wait()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert len(list(tmp_path.glob("oci-conda-held-stage-*"))) == 2 and len(list((cache / "pkgs").glob(".f.conda.*"))) == 2
    sweep_cache()
    assert len(list(tmp_path.glob("oci-conda-held-stage-*"))) == 1  # the live one stays
    assert len(list((cache / "pkgs").glob(".f.conda.*"))) == 1
    live.kill()
    live.wait()
    sweep_cache()
    assert not list(tmp_path.glob("oci-conda-held-stage-*")) and not list((cache / "pkgs").glob(".f.conda.*"))
    with held_temp_dir("stage-") as d:  # our own, held: a sweep leaves it
        sweep_cache()
        assert d.is_dir()


def test_closed_stdout_is_quiet(world: Path, tmp_path: Path) -> None:
    _build(world, tmp_path, check=True)
    r, w = os.pipe()
    os.close(r)  # every write to stdout fails: as `inspect ... | head` after head has exited
    p = subprocess.run([sys.executable, "-m", "oci_conda", "inspect", "--json", str(tmp_path / "out.tar")],
                       stdout=w, stderr=subprocess.PIPE, text=True, env=_env(tmp_path), timeout=120)
    os.close(w)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    assert p.returncode == 141


def test_unusable_cache_is_one_line(world: Path, tmp_path: Path) -> None:
    """An OS error from the cache (read-only, full, not a directory) is one line naming the path, not a traceback.
    (Tests run as root, where a read-only mode does not stop writes; a cache under a plain file fails the same way.)"""
    (tmp_path / "file").write_text("x")
    line = one_error_line(_build(world, tmp_path, env=_env(tmp_path, OCI_CONDA_CACHE=str(tmp_path / "file" / "c"))))
    assert str(tmp_path / "file" / "c") in line and "Not a directory" in line
