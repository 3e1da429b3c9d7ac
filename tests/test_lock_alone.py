"""A lock is enough on its own: it carries every image setting it was made with (v2), a build from it alone, from
it with the environment file, and from a bundle (with or without the file) give the direct build's digest, and
the lock's base image is honoured. pixi.lock files are ``--lock`` inputs; their PyPI entries are refused in one
line until the pip stage installs them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from realenv import make_real_channel, oci_conda, one_error_line

from oci_conda.lockfile import read_lock

HELLO_CHANNEL = REPO / "examples" / "hello" / "channel"

SETTINGS = """name: hello-settings
channels: [./channel]
dependencies: [hello]
variables: {GREETING: hi, AAA: first}
image:
  entrypoint: [/opt/conda/bin/hello]
  cmd: [--loud]
  env: {ZED: last, ALPHA: "1"}
  workdir: /work
  user: "1000:1000"
  labels: {org.example.team: tools}
  annotations: {org.example.note: locked}
  tag: example/hello:settings
"""


def _digest(out: str) -> str:
    return json.loads(out)["digest"]


def _config(tar: Path) -> dict:
    doc = json.loads(oci_conda("inspect", str(tar), "--json").stdout)
    (view,) = doc["platforms"]
    return view["config"]["config"]


def test_lock_alone_honours_every_setting_and_the_base(tmp_path: Path, cache_env: Path) -> None:
    shutil.copytree(HELLO_CHANNEL, tmp_path / "channel")
    # a base image: the plain hello image as an OCI layout directory
    plain = tmp_path / "plain.yml"
    plain.write_text("name: plain\nchannels: [./channel]\ndependencies: [hello-data]\n")
    oci_conda("build", str(plain), "-o", str(tmp_path / "base"), "-q")
    base = f"oci:{tmp_path / 'base'}"

    env = tmp_path / "environment.yml"
    env.write_text(SETTINGS)
    lock = tmp_path / "t.lock"
    oci_conda("lock", str(env), "--base", base, "--compression", "zstd", "-o", str(lock), "-q")
    doc = json.loads(lock.read_text())
    assert doc["version"] == 2
    img = doc["environment"]["image"]
    assert img["base"] == base and img["cmd"] == ["--loud"] and img["env"] == [["ZED", "last"], ["ALPHA", "1"]]
    assert doc["environment"]["variables"] == [["GREETING", "hi"], ["AAA", "first"]]
    assert doc["platforms"]["linux-64"]["base"]["digest"].startswith("sha256:")

    direct = oci_conda("build", str(env), "--base", base, "--compression", "zstd", "-o", str(tmp_path / "d.tar"),
                       "--json")
    want = _digest(direct.stdout)
    # with the env file: the lock's base and compression are used (the file alone says scratch)
    with_env = oci_conda("build", str(env), "--lock", str(lock), "-o", str(tmp_path / "a.tar"), "--json")
    assert _digest(with_env.stdout) == want
    # the lock alone, the file gone
    env.rename(tmp_path / "moved.yml")
    alone = oci_conda("build", "--lock", str(lock), "-o", str(tmp_path / "b.tar"), "--json")
    assert _digest(alone.stdout) == want
    assert (tmp_path / "b.tar").read_bytes() == (tmp_path / "a.tar").read_bytes()
    c = _config(tmp_path / "b.tar")
    assert c["Entrypoint"] == ["/opt/conda/bin/hello"] and c["Cmd"] == ["--loud"]
    assert c["WorkingDir"] == "/work" and c["User"] == "1000:1000" and c["Labels"] == {"org.example.team": "tools"}
    assert [e for e in c["Env"] if not e.startswith(("PATH=", "CONDA_"))] == [
        "GREETING=hi", "AAA=first", "ZED=last", "ALPHA=1"]
    layers = json.loads(alone.stdout)["platforms"][0]["layers"]
    assert layers  # the base's layers come first in the image: more layers than the lock's packages alone
    base_layers = json.loads(oci_conda("inspect", str(tmp_path / "base"), "--json").stdout)["platforms"][0]["layers"]
    got_layers = json.loads(oci_conda("inspect", str(tmp_path / "b.tar"), "--json").stdout)["platforms"][0]["layers"]
    assert [x["digest"] for x in got_layers[:len(base_layers)]] == [x["digest"] for x in base_layers]

    # bundles: alone, and with the (fresh) environment file as the README writes it
    bundle = tmp_path / "b.bundle.tar"
    oci_conda("bundle", str(lock), "-o", str(bundle), "-q")
    assert _digest(oci_conda("build", "--from-bundle", str(bundle), "-o", str(tmp_path / "c.tar"),
                             "--json").stdout) == want
    (tmp_path / "moved.yml").rename(env)
    assert _digest(oci_conda("build", str(env), "--from-bundle", str(bundle), "-o", str(tmp_path / "e.tar"),
                             "--json").stdout) == want
    # a changed file is refused against the bundle's lock too
    env.write_text(SETTINGS.replace("cmd: [--loud]", "cmd: [--quiet]"))
    p = oci_conda("build", str(env), "--from-bundle", str(bundle), "-o", str(tmp_path / "f.tar"), "-q", check=False)
    assert "changed since" in one_error_line(p) and not (tmp_path / "f.tar").exists()


def test_version_1_lock_still_reads_and_needs_its_file(tmp_path: Path, cache_env: Path) -> None:
    shutil.copytree(HELLO_CHANNEL, tmp_path / "channel")
    env = tmp_path / "environment.yml"
    env.write_text(SETTINGS)
    lock = tmp_path / "new.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    doc = json.loads(lock.read_text())
    doc["version"] = 1
    del doc["environment"]
    old = tmp_path / "sub" / "old.lock"
    old.parent.mkdir()
    old.write_text(json.dumps(doc))
    assert read_lock(old).environment is None
    p = oci_conda("build", "--lock", str(old), "-o", str(tmp_path / "x.tar"), "-q", check=False)
    assert "version 1 lock" in one_error_line(p) and "give ENV.yml or relock" in p.stderr
    a = oci_conda("build", str(env), "--lock", str(old), "-o", str(tmp_path / "a.tar"), "--json")
    b = oci_conda("build", "--lock", str(lock), "-o", str(tmp_path / "b.tar"), "--json")
    assert _digest(a.stdout) == _digest(b.stdout)
    doc["environment"] = json.loads(lock.read_text())["environment"]
    old.write_text(json.dumps(doc))  # v1 with an environment section is not a valid lock
    p = oci_conda("build", "--lock", str(old), "-o", str(tmp_path / "y.tar"), "-q", check=False)
    assert "not a valid oci-conda lock" in one_error_line(p)


def _pixi_v6(records: list[dict], platform: str, channel: str) -> str:
    """A pixi.lock in format 6, written the way pixi writes it (see the real file in realdata's pixi-lock/)."""
    pkgs = []
    for r in sorted(records, key=lambda r: r["url"]):
        p = {"conda": r["url"], "sha256": r["sha256"], "md5": r["md5"], "depends": r["depends"],
             "license": r.get("license") or "unknown", "purls": [], "size": r["size"]}
        if r.get("constrains"):
            p["constrains"] = r["constrains"]
        if r.get("timestamp"):
            p["timestamp"] = r["timestamp"]
        pkgs.append(p)
    doc = {"version": 6,
           "environments": {"default": {"channels": [{"url": channel + "/"}],
                                        "packages": {platform: [{"conda": r["url"]} for r in
                                                                sorted(records, key=lambda r: r["url"])]}}},
           "packages": pkgs}
    return yaml.safe_dump(doc, sort_keys=False)


def test_real_packages_lock_alone_bundle_and_pixi_lock(realdata: Path, tmp_path: Path, serve_dir,
                                                       cache_env: Path) -> None:
    """The real-package env: lock-only and bundle builds give the direct digest; the same records written as a
    pixi.lock (format 6, URLs on the local real-package channel, as the real pixi.lock files are on prefix.dev)
    build the same packages."""
    make_real_channel(realdata, tmp_path / "srv" / "real")
    server = serve_dir(tmp_path / "srv")
    work = tmp_path / "w"
    work.mkdir()
    env = work / "environment.yml"
    env.write_text(f"name: real\nchannels: [{server.url}/real]\ndependencies: [tk, xz]\n"
                   "image:\n  entrypoint: [/opt/conda/bin/xz]\n")
    lock = work / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    direct = json.loads(oci_conda("build", str(env), "-o", str(tmp_path / "direct.tar"), "--json").stdout)
    bundle = tmp_path / "real.bundle.tar"
    oci_conda("bundle", str(lock), "-o", str(bundle), "-q")
    env.unlink()
    alone = oci_conda("build", "--lock", str(lock), "-o", str(tmp_path / "alone.tar"), "--json")
    assert _digest(alone.stdout) == direct["digest"]
    server.stop()
    from_bundle = oci_conda("build", "--from-bundle", str(bundle), "-o", str(tmp_path / "bundle.tar"), "--json")
    assert _digest(from_bundle.stdout) == direct["digest"]

    records = json.loads(lock.read_text())["platforms"]["linux-64"]["packages"]
    pixi = work / "pixi.lock"
    pixi.write_text(_pixi_v6(records, "linux-64", f"{server.url}/real"))
    got = json.loads(oci_conda("build", "--lock", str(pixi), "-o", str(tmp_path / "pixi.tar"), "--json").stdout)
    pk = got["platforms"][0]["packages"]
    assert sorted((p["name"], p["sha256"]) for p in pk) == sorted(
        (p["name"], p["sha256"]) for p in direct["platforms"][0]["packages"])
    p = oci_conda("build", "--lock", str(pixi), "--environment", "test", "-o", str(tmp_path / "x.tar"), "-q", check=False)
    assert "no environment 'test' (the lock has: default)" in one_error_line(p)


PIXI_WITH_PYPI = """version: 6
environments:
  default:
    channels:
    - url: {chan}/
    packages:
      linux-64:
      - conda: {chan}/linux-64/hello-1.0-0.conda
      - conda: {chan}/noarch/hello-data-1.0-0.conda
      - pypi: https://files.example.invalid/requests-2.31.0-py3-none-any.whl
packages:
- conda: {chan}/linux-64/hello-1.0-0.conda
  sha256: {h1}
  depends: [hello-data 1.0.*]
- conda: {chan}/noarch/hello-data-1.0-0.conda
  sha256: {h2}
- pypi: https://files.example.invalid/requests-2.31.0-py3-none-any.whl
  name: requests
  version: 2.31.0
  sha256: {h3}
"""


def test_pixi_lock_pypi_entries_need_a_conda_python(tmp_path: Path, cache_env: Path) -> None:
    """A pixi lock's PyPI entries are installed as pinned wheels, which needs a python among its conda records: the
    hello lock has none, so it is refused in one line (never built with the PyPI packages left out)."""
    chan = (tmp_path / "channel")
    shutil.copytree(HELLO_CHANNEL, chan)
    url = chan.as_uri()
    h1 = hashlib.sha256((chan / "linux-64" / "hello-1.0-0.conda").read_bytes()).hexdigest()
    h2 = hashlib.sha256((chan / "noarch" / "hello-data-1.0-0.conda").read_bytes()).hexdigest()
    text = PIXI_WITH_PYPI.format(chan=url, h1=h1, h2=h2, h3="ab" * 32)
    lock = tmp_path / "pixi.lock"
    lock.write_text(text)
    p = oci_conda("build", "--lock", str(lock), "-o", str(tmp_path / "x.tar"), "-q", check=False)
    line = one_error_line(p)
    assert "needs python from conda" in line and "linux-64" in line
    assert not (tmp_path / "x.tar").exists()
    # without the PyPI entry the same lock builds
    lock.write_text("\n".join(ln for ln in text.splitlines() if "requests" not in ln and "name: requests" not in ln
                              and "version: 2.31.0" not in ln and "ab" * 32 not in ln) + "\n")
    got = json.loads(oci_conda("build", "--lock", str(lock), "-o", str(tmp_path / "ok.tar"), "--json").stdout)
    assert sorted(p["name"] for p in got["platforms"][0]["packages"]) == ["hello", "hello-data"]


def test_every_real_pixi_lock_reads_as_a_lock(realdata: Path) -> None:
    root = realdata / "envs" / "lockfiles" / "pixi-lock"
    seen = 0
    for f in sorted(root.iterdir()):
        doc = yaml.safe_load(f.read_text())
        for name, env in doc["environments"].items():
            lock = read_lock(f, name)
            assert lock.kind == "pixi" and set(lock.platforms) == set(env["packages"]), f
            for plat, sels in env["packages"].items():
                conda = [s for s in sels if "conda" in s]
                assert len(lock.platforms[plat].packages) == len(conda), (f, plat)
                assert {r.url for r in lock.platforms[plat].packages} <= {s["conda"] for s in conda}
            seen += 1
    assert seen >= 4


def test_platform_spellings_warnings_and_missing_platform_hint(tmp_path: Path, cache_env: Path) -> None:
    shutil.copytree(HELLO_CHANNEL, tmp_path / "channel")
    env = tmp_path / "environment.yml"
    env.write_text("name: hello\nchannels: [./channel]\ncategory: main\nprefix: /home/me/envs/hello\n"
                   "dependencies: [hello]\n")
    p = oci_conda("solve", str(env), "--platform", "linux/amd64")
    assert sorted(ln.split()[0] for ln in p.stdout.splitlines()) == ["hello", "hello-data"]
    warned = [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 2 and "environment.yml:3: category" in warned[0] and "environment.yml:4: prefix" in warned[1]
    env.write_text("name: hello\nchannels: [./channel]\ndependencies: [hello]\n")
    # hello is built for linux-64 only: the aarch64 failure says so
    p = oci_conda("solve", str(env), "--platform", "linux/amd64,linux/arm64", "-q", check=False)
    line = one_error_line(p)
    assert "package 'hello' not found" in line and "hello exists for linux-64 but not for linux-aarch64" in line
    p = oci_conda("solve", str(env), "--platform", "linux/mips", "-q", check=False)
    assert "--platform: unknown platform 'linux/mips'" in one_error_line(p)
    # CONDA_SUBDIR, then the file's platforms:
    sub = dict(os.environ, CONDA_SUBDIR="linux/arm64")
    p = oci_conda("solve", str(env), "-q", env=sub, check=False)
    assert "linux-aarch64" not in p.stdout and "not found" in one_error_line(p)
    env.write_text(env.read_text() + "platforms: [linux-64, osx-arm64]\n")
    p = oci_conda("solve", str(env), "--json", env=sub)
    assert sorted(r["name"] for r in json.loads(p.stdout)) == ["hello", "hello-data"]


@pytest.mark.parametrize("flag", ["--lock", None])
def test_environment_flag_needs_a_pixi_lock(tmp_path: Path, cache_env: Path, flag: str | None) -> None:
    shutil.copytree(HELLO_CHANNEL, tmp_path / "channel")
    env = tmp_path / "environment.yml"
    env.write_text("name: hello\nchannels: [./channel]\ndependencies: [hello]\n")
    lock = tmp_path / "oci-conda.lock"
    oci_conda("lock", str(env), "-o", str(lock), "-q")
    args = ["--lock", str(lock)] if flag else [str(env)]
    p = oci_conda("build", *args, "--environment", "dev", "-o", str(tmp_path / "x.tar"), "-q", check=False)
    assert "--environment" in one_error_line(p)


CONDA_LOCK_WITH_PIP = """version: 1
metadata:
  platforms: [linux-64]
  channels: [{url: conda-forge, used_env_vars: []}]
package:
- name: hello
  version: '1.0'
  manager: conda
  platform: linux-64
  dependencies: {}
  url: https://conda.example.invalid/c/linux-64/hello-1.0-0.conda
  hash: {sha256: HASH1}
  category: main
  optional: false
- name: pydantic
  version: 2.5.0
  manager: pip
  platform: linux-64
  dependencies: {}
  url: https://files.example.invalid/pydantic-2.5.0-py3-none-any.whl
  hash: {sha256: HASH2}
  category: main
  optional: false
""".replace("HASH1", "ab" * 32).replace("HASH2", "cd" * 32)


def test_conda_lock_pip_entries_become_pinned_wheels_not_dropped(tmp_path: Path) -> None:
    f = tmp_path / "conda-lock.yml"
    f.write_text(CONDA_LOCK_WITH_PIP)
    lock = read_lock(f)
    wheels = lock.platforms["linux-64"].wheels
    assert [(w.name, w.version, w.sha256) for w in wheels] == [("pydantic", "2.5.0", "cd" * 32)]
    assert wheels[0].url == "https://files.example.invalid/pydantic-2.5.0-py3-none-any.whl"


CONDA_FORGE = "https://conda.anaconda.org/conda-forge"


def _real_subset(text: str, keep: set[str], server_url: str) -> str:
    """A real lockfile cut down to the records whose files the real-package channel holds (same bytes: the lock's
    own sha256 is checked on fetch), their URLs moved from conda-forge to the local server. Nothing else changes:
    the format, the keys and every other field are the real file's."""
    doc = yaml.safe_load(text)
    if "environments" in doc:  # pixi.lock
        for env in doc["environments"].values():
            env["packages"] = {"linux-64": [s for s in env["packages"]["linux-64"] if s.get("conda") in keep]}
        doc["packages"] = [p for p in doc["packages"] if p.get("url") in keep and p.get("subdir") in
                           (None, "linux-64", "noarch")]
        for env in doc["environments"].values():
            for s in env["packages"]["linux-64"]:
                s["conda"] = s["conda"].replace(CONDA_FORGE, server_url)
        for p in doc["packages"]:
            p["url"] = p["url"].replace(CONDA_FORGE, server_url)
    else:  # conda-lock
        doc["metadata"]["platforms"] = ["linux-64"]
        doc["package"] = [p for p in doc["package"] if p["platform"] == "linux-64" and p["url"] in keep]
        for p in doc["package"]:
            p["url"] = p["url"].replace(CONDA_FORGE, server_url)
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.parametrize("name", ["pixi-lock/rattler-v4-python-lock.yml",
                                  "conda-lock-yml/rattler-v0-python-conda-lock.yml"])
def test_real_lockfiles_build_what_the_real_package_channel_holds(realdata: Path, tmp_path: Path, serve_dir,
                                                                  cache_env: Path, name: str) -> None:
    """No real pixi.lock or conda-lock file has all its packages in the real-package channel (at most 5 of 22); the
    records that are there (same sha256) build, from the real file's own entries."""
    src = realdata / "envs" / "lockfiles" / name
    chan = make_real_channel(realdata, tmp_path / "srv" / "real")
    server = serve_dir(tmp_path / "srv")
    held = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (chan / "linux-64").iterdir() if p.suffix in
            (".conda", ".bz2")} | {hashlib.sha256(p.read_bytes()).hexdigest() for p in (chan / "noarch").iterdir()
                                   if p.suffix in (".conda", ".bz2")}
    lock = read_lock(src)
    keep = {r.url for r in lock.platforms["linux-64"].packages if r.sha256 in held}
    assert len(keep) >= 4
    subset = tmp_path / Path(name).name
    subset.write_text(_real_subset(src.read_text(), keep, f"{server.url}/real"))
    out = json.loads(oci_conda("build", "--lock", str(subset), "--platform", "linux/amd64", "-o",
                               str(tmp_path / "img.tar"), "--json").stdout)
    got = {(p["name"], p["sha256"]) for p in out["platforms"][0]["packages"]}
    want = {(r.name, r.sha256) for r in lock.platforms["linux-64"].packages if r.url in keep}
    assert got == want and len(got) == len(keep)
