"""CEP-16 sharded repodata, on conda's own sample channel served over loopback HTTP: only the shards of names the
request reaches are fetched, never the whole repodata.json of a sharded subdir; shards are cached by digest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from realenv import oci_conda


def _channel(realdata: Path, tmp_path: Path) -> Path:
    src = realdata / "repodata" / "conda-tests" / "conda_format_repo"
    dst = tmp_path / "srv" / "chan"
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:  # the shared data is read-only; the copy must be removable
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _solve(env: Path) -> dict:
    out = json.loads(oci_conda("solve", str(env), "--json").stdout)
    return {r["name"]: r for r in out}


def test_only_reachable_shards_are_fetched(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan = _channel(realdata, tmp_path)
    server = serve_dir(tmp_path / "srv")
    full = json.loads((chan / "linux-64" / "repodata.json").read_text())
    shard_of = {}
    for f in (chan / "linux-64").glob("*.msgpack.zst"):
        if f.name != "repodata_shards.msgpack.zst":
            assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name.split(".")[0]
            shard_of[f.name] = f

    env = tmp_path / "libgcc.yml"
    env.write_text(f"channels: [{server.url}/chan]\ndependencies: [libgcc-ng]\n")
    got = _solve(env)
    assert sorted(got) == ["libgcc-ng"]
    want = full["packages"]["libgcc-ng-8.2.0-hdf63c60_1.tar.bz2"]
    assert got["libgcc-ng"]["sha256"] == want["sha256"] and got["libgcc-ng"]["md5"] == want["md5"]
    paths = [p for _m, p, _h in server.requests]
    assert "/chan/linux-64/repodata_shards.msgpack.zst" in paths
    assert not [p for p in paths if p.startswith("/chan/linux-64/repodata.json")], paths
    fetched = {Path(p).name for p in paths if p.endswith(".msgpack.zst") and "repodata_shards" not in p}
    assert len(fetched) == 1  # libgcc-ng's shard only: zlib's is not reachable from libgcc-ng

    server.requests.clear()
    env2 = tmp_path / "zlib.yml"
    env2.write_text(f"channels: [{server.url}/chan]\ndependencies: [zlib]\n")
    got = _solve(env2)
    assert sorted(got) == ["libgcc-ng", "zlib"]  # zlib depends on libgcc-ng >=7.3.0
    assert got["zlib"]["fn"] == "zlib-1.2.11-h7b6447c_3.conda"
    assert got["zlib"]["sha256"] == full["packages.conda"]["zlib-1.2.11-h7b6447c_3.conda"]["sha256"]
    paths = [p for _m, p, _h in server.requests]
    fetched_now = {Path(p).name for p in paths if p.endswith(".msgpack.zst") and "repodata_shards" not in p}
    assert fetched_now == set(shard_of) - fetched  # the libgcc-ng shard came from the cache
    assert not [p for p in paths if p.startswith("/chan/linux-64/repodata.json")]

    # a lock made through shards builds nothing differently: same records as the whole-repodata path would give
    lock = tmp_path / "zlib.lock"
    oci_conda("lock", str(env2), "-o", str(lock), "-q")
    recs = {r["name"]: r for r in json.loads(lock.read_text())["platforms"]["linux-64"]["packages"]}
    assert recs["zlib"]["url"] == f"{server.url}/chan/linux-64/zlib-1.2.11-h7b6447c_3.conda"


def test_local_sharded_channel_matches_whole_repodata(realdata: Path, tmp_path: Path, cache_env) -> None:
    chan = _channel(realdata, tmp_path)
    env = tmp_path / "env.yml"
    env.write_text(f"channels: [{chan}]\ndependencies: [zlib]\n")
    sharded = _solve(env)
    (chan / "linux-64" / "repodata_shards.msgpack.zst").unlink()
    whole = _solve(env)
    assert sharded == whole
