"""Lockfiles: lock -> build gives the direct build's digest without any repodata request; stale locks are refused;
credentials never reach the lock; the schema round-trips; conda-lock v1 and @EXPLICIT files are build inputs."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO
from realenv import oci_conda

from oci_conda.conda.explicit import parse_explicit
from oci_conda.errors import OciCondaError, SpecError
from oci_conda.lockfile import LockError, dump_lock, read_lock, validate_document

HELLO_CHANNEL = REPO / "examples" / "hello" / "channel"


def _env(path: Path, channel: str, *, base: str | None = None, extra: str = "") -> Path:
    image = "image:\n  entrypoint: [/opt/conda/bin/hello]\n"
    if base:
        image += f"  base: {base}\n"
    path.write_text(f"name: hello\nchannels: [{channel}]\ndependencies: [hello]\n{image}{extra}")
    return path


def _digest(out: str) -> str:
    return json.loads(out)["digest"]


def _archive_digest(archive: Path) -> str:
    with tarfile.open(archive) as t:
        return json.load(t.extractfile("index.json"))["manifests"][0]["digest"]


def _served_channel(tmp_path: Path, serve_dir, sub: str = "") -> tuple[Path, object]:
    root = tmp_path / "srv"
    chan = root / sub / "chan" if sub else root / "chan"
    shutil.copytree(HELLO_CHANNEL, chan)
    return chan, serve_dir(root)


def test_build_from_lock_same_digest_no_repodata_then_server_stopped(tmp_path: Path, serve_dir, cache_env) -> None:
    _chan, server = _served_channel(tmp_path, serve_dir)
    env = _env(tmp_path / "environment.yml", f"{server.url}/chan")
    lock = tmp_path / "oci-conda.lock"

    oci_conda("lock", str(env), "-o", str(lock), "-q")
    assert any("repodata" in p for _m, p, _h in server.requests), "locking must read repodata"
    doc = json.loads(lock.read_text())
    names = sorted(r["name"] for r in doc["platforms"]["linux-64"]["packages"])
    assert names == ["hello", "hello-data"]
    # every record matches the file the channel serves (checked against the files themselves)
    for r in doc["platforms"]["linux-64"]["packages"]:
        data = (HELLO_CHANNEL / r["subdir"] / r["fn"]).read_bytes()
        assert r["sha256"] == hashlib.sha256(data).hexdigest() and r["size"] == len(data)
    assert doc["env"]["sha256"] == hashlib.sha256(env.read_bytes()).hexdigest()
    assert [v["name"] for v in doc["platforms"]["linux-64"]["virtual_packages"]][:1] == ["__archspec"]

    server.requests.clear()
    from_lock = oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "a.tar"), "--json")
    paths = [p for _m, p, _h in server.requests]
    assert paths and not [p for p in paths if "repodata" in p], paths  # packages only
    assert sorted(Path(p).name for p in paths) == sorted(r["fn"] for r in doc["platforms"]["linux-64"]["packages"])

    direct = oci_conda("build", str(env), "-o", str(tmp_path / "b.tar"), "--json")
    assert _digest(from_lock.stdout) == _digest(direct.stdout)

    server.stop()  # the packages are in the cache now: a build from the lock needs no server
    again = oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "c.tar"), "--json")
    assert _digest(again.stdout) == _digest(direct.stdout)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "c.tar").read_bytes()


def test_stale_lock_is_refused_unless_allowed(tmp_path: Path, cache_env) -> None:
    chan = tmp_path / "channel"
    shutil.copytree(HELLO_CHANNEL, chan)
    env = _env(tmp_path / "environment.yml", "./channel")
    lock = tmp_path / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    ok = oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "a.tar"), "--json")

    env.write_text(env.read_text() + "variables: {GREETING: hi}\n")
    p = oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "b.tar"), check=False)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "environment.yml changed since" in err[0] and "relock" in err[0]
    assert "--allow-stale" in err[0]
    assert not (tmp_path / "b.tar").exists()

    stale = oci_conda("build", str(env), "--lock", str(lock), "--allow-stale", "-o", str(tmp_path / "b.tar"), "-q")
    assert "stale lock" in stale.stderr
    assert _archive_digest(tmp_path / "b.tar") != _digest(ok.stdout)  # the new variable is in the config
    assert _archive_digest(tmp_path / "a.tar") == _digest(ok.stdout)


def test_lock_is_deterministic_and_round_trips_through_the_schema(tmp_path: Path, cache_env) -> None:
    shutil.copytree(HELLO_CHANNEL, tmp_path / "channel")
    env = _env(tmp_path / "environment.yml", "./channel")
    oci_conda("lock", str(env), "-o", str(tmp_path / "one.lock"), "-q")
    shutil.rmtree(cache_env, ignore_errors=True)
    oci_conda("lock", str(env), "-o", str(tmp_path / "two.lock"), "-q")
    one = (tmp_path / "one.lock").read_bytes()
    assert one == (tmp_path / "two.lock").read_bytes()

    lock = read_lock(tmp_path / "one.lock")
    assert dump_lock(lock) == one  # parse -> write gives the same bytes
    schema = json.loads((REPO / "schemas" / "lock.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(one), schema)

    doc = json.loads(one)
    doc["platforms"]["linux-64"]["packages"][0]["url"] = "https://u:secret@example.invalid/c/linux-64/x-1-0.conda"
    with pytest.raises(LockError, match="not a valid oci-conda lock"):
        validate_document(doc, "x.lock")
    doc = json.loads(one)
    del doc["platforms"]["linux-64"]["packages"][0]["sha256"]
    del doc["platforms"]["linux-64"]["packages"][0]["md5"]
    with pytest.raises(LockError):
        validate_document(doc, "x.lock")
    bad = tmp_path / "bad.lock"
    bad.write_text(json.dumps({"version": 7, "platforms": {}}))
    p = oci_conda("build", str(env), "--lock", str(bad), "-o", str(tmp_path / "x.tar"), check=False)
    assert p.returncode == 2 and "bad.lock" in p.stderr and "Traceback" not in p.stderr


def test_credentials_never_written_and_reattached_on_build(tmp_path: Path, serve_dir, cache_env) -> None:
    _chan, server = _served_channel(tmp_path, serve_dir, sub="t/tok-s3cr3t")
    host = server.url.split("://", 1)[1]
    env = _env(tmp_path / "environment.yml", f"http://alice:pw-s3cr3t@{host}/t/tok-s3cr3t/chan")
    lock = tmp_path / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    oci_conda("lock", str(env), "-o", str(tmp_path / "explicit.txt"), "--format", "explicit", "-q")
    for f in (lock, tmp_path / "explicit.txt"):
        text = f.read_text()
        assert "s3cr3t" not in text and "alice" not in text
        assert f"http://{host}/chan/linux-64/hello-1.0-0.conda" in text

    server.requests.clear()
    oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "a.tar"))
    pkg_requests = [(p, h) for _m, p, h in server.requests if p.endswith(".conda")]
    assert len(pkg_requests) == 2
    for p, h in pkg_requests:  # the env file's credentials went back onto the locked URLs
        assert p.startswith("/t/tok-s3cr3t/chan/")
        assert h.get("Authorization", "").startswith("Basic ")


def test_offline_build_from_lock_names_the_missing_package(tmp_path: Path, serve_dir, cache_env) -> None:
    _chan, server = _served_channel(tmp_path, serve_dir)
    env = _env(tmp_path / "environment.yml", f"{server.url}/chan")
    lock = tmp_path / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    server.requests.clear()
    p = oci_conda("build", str(env), "--lock", str(lock), "--offline", "-o", str(tmp_path / "a.tar"), check=False)
    assert p.returncode != 0
    assert "offline" in p.stderr and ("hello-1.0-0.conda" in p.stderr or "hello-data-1.0-0.conda" in p.stderr)
    assert server.requests == []


def test_build_from_explicit_and_conda_lock_files(tmp_path: Path, serve_dir, cache_env) -> None:
    _chan, server = _served_channel(tmp_path, serve_dir)
    env = _env(tmp_path / "environment.yml", f"{server.url}/chan")
    explicit = tmp_path / "explicit.txt"
    oci_conda("lock", str(env), "--format", "explicit", "-o", str(explicit), "-q")
    records, platform = parse_explicit(explicit.read_text(), "explicit.txt")
    assert platform == "linux-64" and [r.name for r in records] == ["hello-data", "hello"]  # dependencies first

    # a conda-lock v1 file written the way conda-lock writes it, hashes taken from the channel's files
    pkgs = []
    for sub, fn, name, deps in (("noarch", "hello-data-1.0-0.conda", "hello-data", {}),
                                ("linux-64", "hello-1.0-0.conda", "hello", {"hello-data": "1.0.*"})):
        data = (HELLO_CHANNEL / sub / fn).read_bytes()
        pkgs.append({"name": name, "version": "1.0", "manager": "conda", "platform": "linux-64", "dependencies": deps,
                     "url": f"{server.url}/chan/{sub}/{fn}", "category": "main", "optional": False,
                     "hash": {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}})
    condalock = tmp_path / "conda-lock.yml"
    condalock.write_text(yaml.safe_dump({"version": 1, "metadata": {"platforms": ["linux-64"], "channels": [],
                                                                      "sources": ["environment.yml"]},
                                         "package": pkgs}))
    server.requests.clear()
    for i, src in enumerate((explicit, condalock)):
        p = oci_conda("build", str(src), "-o", str(tmp_path / f"img{i}.tar"), "--json")
        got = sorted((x["name"], x["sha256"]) for x in json.loads(p.stdout)["platforms"][0]["packages"])
        # an @EXPLICIT line carries the md5 only; conda-lock carries both
        want = sorted((q["name"], q["hash"]["sha256"] if src is condalock else None) for q in pkgs)
        assert got == want
        # and as --lock next to an environment file
        oci_conda("build", str(env), "--lock", str(src), "-o", str(tmp_path / f"img{i}b.tar"))
    assert not [p for _m, p, _h in server.requests if "repodata" in p]


def _explicit_lines(text: str) -> list[str]:
    after = text.split("@EXPLICIT", 1)[1]
    return [line.strip() for line in after.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_every_real_lockfile_parses(realdata: Path) -> None:
    root = realdata / "envs" / "lockfiles"
    seen = 0
    for f in sorted((root / "explicit").iterdir()):
        text = f.read_text()
        if "@EXPLICIT" not in text:
            with pytest.raises(OciCondaError) as e:  # conda-lock's auth test file is not an explicit file
                read_lock(f)
            assert f.name in str(e.value) and "password" not in str(e.value)
            continue
        lock = read_lock(f)
        (pl,) = lock.platforms.values()
        lines = _explicit_lines(text)
        assert len(pl.packages) == len(lines), f
        for r, line in zip(pl.packages, lines):
            url, _, checksum = line.partition("#")
            assert r.url.endswith("/" + r.fn) and url.endswith("/" + r.fn), f
            assert (r.md5 or r.sha256) == (checksum.lower().removeprefix("sha256:") or None), (f, line)
            assert r.fn.startswith(f"{r.name}-{r.version}-{r.build}"), f
            assert "@" not in r.channel.split("://", 1)[1], f
        seen += 1
    for f in sorted((root / "conda-lock-yml").iterdir()):
        doc = yaml.safe_load(f.read_text())
        lock = read_lock(f)
        assert lock.kind == "conda-lock"
        for plat in doc["metadata"]["platforms"]:
            entries = [p for p in doc["package"] if p["platform"] == plat and p.get("manager", "conda") == "conda"
                       and not p.get("optional")]
            recs = lock.platforms[plat].packages
            assert len(recs) == len(entries), (f, plat)
            by_name = {r.name: r for r in recs}
            for p in entries:
                r = by_name[p["name"]]
                assert r.sha256 == p["hash"].get("sha256") and r.url == p["url"]
                assert r.subdir in (plat, "noarch")
        seen += 1
    assert seen >= 20


def test_explicit_reader_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"x.txt:3: .*not NAME-VERSION-BUILD"):
        parse_explicit("@EXPLICIT\n# c\nhttps://h.invalid/c/linux-64/broken.conda\n", "x.txt")
    with pytest.raises(SpecError, match=r"x.txt:2: .*neither an md5 nor a sha256"):
        parse_explicit("@EXPLICIT\nhttps://h.invalid/c/linux-64/a-1-0.conda#abc\n", "x.txt")
    recs, _ = parse_explicit("@EXPLICIT\nhttps://u:p@h.invalid/t/T/c/noarch/a-b-1.0-py_0.tar.bz2#sha256:"
                             + "ab" * 32 + "\n", "x.txt")
    assert (recs[0].name, recs[0].version, recs[0].build, recs[0].subdir) == ("a-b", "1.0", "py_0", "noarch")
    assert recs[0].channel == "https://h.invalid/c" and recs[0].sha256 == "ab" * 32


def test_real_packages_lock_build_same_digest(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    from realenv import make_real_channel

    make_real_channel(realdata, tmp_path / "srv" / "real")
    server = serve_dir(tmp_path / "srv")
    env = tmp_path / "environment.yml"
    env.write_text(f"name: real\nchannels: [{server.url}/real]\ndependencies: [tk, xz]\n")
    lock = tmp_path / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    direct = oci_conda("build", str(env), "-o", str(tmp_path / "direct.tar"), "--json")
    server.stop()
    locked = oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "locked.tar"), "--json")
    assert _digest(locked.stdout) == _digest(direct.stdout)
    names = {r["name"] for r in json.loads(lock.read_text())["platforms"]["linux-64"]["packages"]}
    assert {"tk", "xz", "libzlib"} <= names
