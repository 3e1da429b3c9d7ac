"""Bundles: made against an HTTP channel and a base image, then built from with every server stopped, the base image
gone and an empty cache (and inside a network namespace with no interfaces, where possible): the same digest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import REPO
from realenv import oci_conda

from oci_conda.build import build_image
from oci_conda.bundle import MANIFEST_NAME, open_bundle, write_bundle
from oci_conda.lockfile import BASE_DIGEST_ANNOTATION, LockError, dump_lock
from oci_conda.platforms import platform_for_subdir
from oci_conda.oci.source import open_image
from oci_conda.options import BuildOptions
from oci_conda.progress import Reporter
from oci_conda.resolve import create_lock, default_session
from oci_conda.spec import load_spec

HELLO = REPO / "examples" / "hello"


def _netns_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def online(tmp_path: Path, serve_dir, monkeypatch: pytest.MonkeyPatch):
    """A served copy of the example channel, a base image archive, an env file using both, and its direct build."""
    shutil.copytree(HELLO / "channel", tmp_path / "srv" / "chan")
    server = serve_dir(tmp_path / "srv")
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-online"))
    base = tmp_path / "base" / "base.tar"
    base.parent.mkdir()
    oci_conda("build", str(HELLO / "environment.yml"), "-o", str(base), "--tag", "base:1", "-q")
    env = tmp_path / "proj" / "environment.yml"
    env.parent.mkdir()
    env.write_text(f"name: hello\nchannels: [{server.url}/chan]\ndependencies: [hello]\n"
                   f"image:\n  base: oci-archive:{base}\n  entrypoint: [/opt/conda/bin/hello]\n  prefix: /opt/env\n")
    direct = json.loads(oci_conda("build", str(env), "-o", str(tmp_path / "direct.tar"), "--json").stdout)
    return server, env, base, direct["digest"]


def test_bundle_builds_offline_to_the_same_digest(tmp_path: Path, online, monkeypatch: pytest.MonkeyPatch) -> None:
    server, env, base, digest = online
    bundle = tmp_path / "bundle.tar"
    info = json.loads(oci_conda("bundle", str(env), "-o", str(bundle), "--json").stdout)
    assert info["packages"] == 2 and info["base_blobs"] >= 3
    with tarfile.open(bundle) as t:
        names = t.getnames()
        assert names == sorted(names)
        assert all(m.mtime == 0 and m.uid == 0 for m in t.getmembers())
        lock = json.load(t.extractfile("lock/oci-conda.lock"))
    assert lock["platforms"]["linux-64"]["base"]["digest"].startswith("sha256:")
    for r in lock["platforms"]["linux-64"]["packages"]:
        assert f"pkgs/{r['sha256']}.conda" in names

    # deterministic: a bundle made again from an empty cache has the same bytes
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-2"))
    oci_conda("bundle", str(env), "-o", str(tmp_path / "bundle2.tar"), "-q")
    assert bundle.read_bytes() == (tmp_path / "bundle2.tar").read_bytes()

    server.stop()
    shutil.move(base, tmp_path / "elsewhere.tar")  # the base image must come from the bundle
    shutil.move(env.parent, tmp_path / "proj-gone")  # and the environment file too
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-offline"))
    t0 = time.perf_counter()
    out = oci_conda("build", "--from-bundle", str(bundle), "-o", str(tmp_path / "offline.tar"), "--json")
    elapsed = time.perf_counter() - t0
    assert json.loads(out.stdout)["digest"] == digest
    print(f"\noffline build from bundle: {elapsed:.2f}s (CLI process, empty cache)")


@pytest.mark.skipif(not _netns_works(), reason="unshare -n not permitted here")
def test_bundle_build_in_a_network_namespace_without_interfaces(tmp_path: Path, online) -> None:
    _server, env, _base, digest = online
    bundle = tmp_path / "bundle.tar"
    oci_conda("bundle", str(env), "-o", str(bundle), "-q")
    environ = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache-netns"))
    p = subprocess.run(["unshare", "-n", sys.executable, "-m", "oci_conda", "build", "--from-bundle", str(bundle),
                        "-o", str(tmp_path / "netns.tar"), "--json"], capture_output=True, text=True, env=environ,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["digest"] == digest
    # the same build without the bundle cannot reach the channel in there: the namespace really has no network
    q = subprocess.run(["unshare", "-n", sys.executable, "-m", "oci_conda", "build", str(env), "-o",
                        str(tmp_path / "nope.tar")], capture_output=True, text=True, env=environ, timeout=300)
    assert q.returncode != 0 and "Traceback" not in q.stderr


def test_corrupt_bundle_package_is_named(tmp_path: Path, online, monkeypatch: pytest.MonkeyPatch) -> None:
    _server, env, _base, _digest = online
    bundle = tmp_path / "bundle.tar"
    oci_conda("bundle", str(env), "-o", str(bundle), "-q")
    with tarfile.open(bundle) as t:
        m = next(m for m in t.getmembers() if m.name.startswith("pkgs/"))
    with open(bundle, "r+b") as f:
        f.seek(m.offset_data + m.size // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-corrupt"))
    p = oci_conda("build", "--from-bundle", str(bundle), "-o", str(tmp_path / "x.tar"), check=False)
    assert p.returncode == 2
    assert "corrupt" in p.stderr and m.name.split("/", 1)[1] in p.stderr
    assert not (tmp_path / "x.tar").exists()


def test_bundle_of_a_conda_lock_file_carries_linux_only(tmp_path: Path, serve_dir, monkeypatch) -> None:
    import yaml

    shutil.copytree(HELLO / "channel", tmp_path / "srv" / "chan")
    server = serve_dir(tmp_path / "srv")
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-a"))
    pkgs = []
    for sub, fn, name, deps in (("noarch", "hello-data-1.0-0.conda", "hello-data", {}),
                                ("linux-64", "hello-1.0-0.conda", "hello", {"hello-data": "1.0.*"})):
        data = (HELLO / "channel" / sub / fn).read_bytes()
        pkgs.append({"name": name, "version": "1.0", "manager": "conda", "platform": "linux-64", "dependencies": deps,
                     "url": f"{server.url}/chan/{sub}/{fn}", "category": "main", "optional": False,
                     "hash": {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}})
    # an osx-64 entry whose file does not exist: bundling it would fail
    pkgs.append({"name": "hello", "version": "1.0", "manager": "conda", "platform": "osx-64", "dependencies": {},
                 "url": f"{server.url}/chan/osx-64/hello-1.0-0.conda", "category": "main", "optional": False,
                 "hash": {"md5": "0" * 32, "sha256": "0" * 64}})
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(yaml.safe_dump({"version": 1, "metadata": {"platforms": ["linux-64", "osx-64"]}, "package": pkgs}))
    direct = json.loads(oci_conda("build", str(lock), "-o", str(tmp_path / "direct.tar"), "--json").stdout)
    bundle = tmp_path / "b.tar"
    oci_conda("bundle", str(lock), "-o", str(bundle), "-q")
    with tarfile.open(bundle) as t:
        assert sorted(n for n in t.getnames() if n.startswith("pkgs/") and n != "pkgs") == \
            sorted(f"pkgs/{p['hash']['sha256']}.conda" for p in pkgs[:2])
        assert "lock/conda-lock.yml" in t.getnames()
    server.stop()
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-b"))
    out = json.loads(oci_conda("build", "--from-bundle", str(bundle), "-o", str(tmp_path / "o.tar"), "--json").stdout)
    assert out["digest"] == direct["digest"]


# ---------------------------------------------------------------------------------------------------------------
# bundle.py's model functions, in process: write_bundle, then open_bundle reads the same lock, environment file,
# packages and base image back


def test_write_bundle_then_open_bundle_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = Reporter("quiet")
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-a"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    base = tmp_path / "base.tar"
    build_image(load_spec(HELLO / "environment.yml"), BuildOptions(output=base), quiet)
    env = tmp_path / "proj" / "environment.yml"
    env.parent.mkdir()
    env.write_text(f"name: hello\nchannels: [{HELLO / 'channel'}]\ndependencies: [hello]\n"
                   f"image:\n  base: oci-archive:{base}\n  prefix: /opt/env\n")
    lock = create_lock(load_spec(env), BuildOptions(), quiet)
    lock_bytes = dump_lock(lock)
    pl = lock.for_platform("linux-64")
    assert pl.base_digest is not None and pl.base_digest.startswith("sha256:")

    out = tmp_path / "b.tar"
    info = write_bundle(lock, lock_bytes, "oci-conda.lock", env, out, default_session(BuildOptions()), jobs=2)
    assert info["output"] == str(out) and info["size"] == out.stat().st_size
    assert info["packages"] == 2 and info["base_blobs"] >= 5  # index, manifest, config, 3 layers
    again = tmp_path / "again.tar"
    write_bundle(lock, lock_bytes, "oci-conda.lock", env, again, default_session(BuildOptions()), jobs=2)
    assert again.read_bytes() == out.read_bytes()
    with tarfile.open(out) as t:
        names = t.getnames()
        assert json.load(t.extractfile(MANIFEST_NAME)) == {"version": 1, "lock": "lock/oci-conda.lock",
                                                            "env": "env/environment.yml", "base": True}
    assert names == sorted(names)
    assert {n for n in names if n.startswith("pkgs/")} == {f"pkgs/{r.sha256}.conda" for r in pl.packages}

    base.unlink()  # the base must come from the bundle
    monkeypatch.setenv("OCI_CONDA_CACHE", str(tmp_path / "cache-b"))
    with open_bundle(out) as ub:
        root = ub.root
        assert dump_lock(ub.lock) == lock_bytes
        assert ub.env_file is not None and ub.env_file.read_bytes() == env.read_bytes()
        assert ub.base_ref == f"oci:{root / 'base'}"
        img = open_image(ub.base_ref, platform_for_subdir("linux-64"))
        assert img.annotations[BASE_DIGEST_ANNOTATION] == pl.base_digest
        assert len(img.layers) == 3
    assert not root.exists()  # the unpacked bundle is gone, its packages stay in the (new) cache, verified
    cached = tmp_path / "cache-b" / "pkgs"
    assert sorted(p.name for p in cached.iterdir()) == sorted(f"{r.sha256}.conda" for r in pl.packages)
    for r in pl.packages:
        assert hashlib.sha256((cached / f"{r.sha256}.conda").read_bytes()).hexdigest() == r.sha256


def test_open_bundle_refuses_unsafe_paths(tmp_path: Path, cache_env: Path) -> None:
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as t:
        data = b"x"
        ti = tarfile.TarInfo("../escape")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    with pytest.raises(LockError, match="unsafe path in bundle"):
        with open_bundle(bad):
            pass
    assert not (tmp_path / "escape").exists()
    with pytest.raises(LockError, match="no such file"):
        with open_bundle(tmp_path / "missing.tar"):
            pass
