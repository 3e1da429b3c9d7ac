"""``oci-conda pack PREFIX``: an environment installed by another installer (py-rattler, the installer pixi uses; a
test-only oracle) from the real conda-forge packages becomes an image that runs; what the environment cannot
honestly be packed as (an editable install, a managed file changed or deleted since install) is one line."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from realenv import Podman, debian_base, make_real_channel, oci_conda, one_error_line

NOARCH_IN_LINUX64 = ("ca-certificates-2025.11.12-hbd8a1cb_0.conda", "tzdata-2025b-h78e105d_0.conda")


@pytest.fixture(scope="module")
def installed(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tk + openssl (and their dependencies) installed by rattler from the real-package channel."""
    rattler = pytest.importorskip("rattler")
    d = tmp_path_factory.mktemp("rattler-env")
    chan = make_real_channel(realdata, d / "chan")
    for fn in NOARCH_IN_LINUX64:  # rattler fetches a noarch record from noarch/, where the channel does not list it
        if (chan / "linux-64" / fn).exists():
            os.symlink(os.readlink(chan / "linux-64" / fn), chan / "noarch" / fn)
    env = d / "environment.yml"
    env.write_text(f"channels: [{chan}]\ndependencies: [tk, openssl]\n")
    solved = json.loads(oci_conda("solve", str(env), "--json",
                                  env={**os.environ, "OCI_CONDA_CACHE": str(d / "cache")}).stdout)
    fns = {r["fn"] for r in solved}
    recs = []
    for sub in ("linux-64", "noarch"):
        recs += rattler.RepoData.from_path(chan / sub / "repodata.json").into_repo_data(rattler.Channel(chan.as_uri()))
    recs = [r for r in recs if r.file_name in fns]
    assert {r.file_name for r in recs} == fns
    prefix = d / "prefix"
    asyncio.run(rattler.install(recs, target_prefix=prefix, cache_dir=d / "rcache", show_progress=False,
                                execute_link_scripts=False))
    return prefix


def _copy(prefix: Path, dest: Path) -> Path:
    """A private copy (rattler hard-links files from its cache: never edit those in place)."""
    shutil.copytree(prefix, dest, symlinks=True)
    return dest


def _with_extras(prefix: Path) -> None:
    """What people add after creating an environment: a pip-installed module, a script, conda env config vars."""
    sp = prefix / "lib" / "python3.12" / "site-packages"
    (sp / "extra-1.0.dist-info").mkdir(parents=True)
    (sp / "extra-1.0.dist-info" / "RECORD").write_text("extra.py,,\n")
    (sp / "extra.py").write_text("X = 1\n")
    tool = prefix / "bin" / "extra-tool"
    tool.write_text(f"#!{prefix}/bin/tclsh8.6\nputs \"extra tool ran\"\n")
    tool.chmod(0o755)
    (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": {"GREETING": "hello from state"}}))


@pytest.mark.slow
def test_packed_environment_runs_under_podman(installed: Path, tmp_path: Path, cache_env: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    prefix = _copy(installed, tmp_path / "env")
    _with_extras(prefix)
    out = tmp_path / "packed.tar"
    res = json.loads(oci_conda("pack", str(prefix), "-o", str(out), "--base", debian_base(), "--tag", "packed:1",
                               "--json").stdout)
    dists = sorted(p.stem for p in (prefix / "conda-meta").glob("*.json"))
    sources = [layer["source"] for layer in res["layers"]]
    assert sorted(sources[:-1]) == dists and sources[-1] == "environment files"  # a layer per package, then the rest
    assert sources.index("libzlib-1.3.1-h4ab18f5_1") < sources.index("tk-8.6.13-noxft_h4845f30_101")
    podman = Podman(tmp_path / "podman")
    try:
        script = ('echo "puts [expr {6*7}]" > /tmp/s.tcl && tclsh8.6 /tmp/s.tcl && openssl version && '
                  'echo "$GREETING" && head -1 /opt/conda/bin/extra-tool && extra-tool && '
                  'ls /opt/conda/lib/python3.12/site-packages')
        r = podman("run", "--rm", f"oci-archive:{out}", "sh", "-c", script)
    finally:
        podman.cleanup()
    lines = r.stdout.splitlines()
    assert lines[0] == "42" and lines[1].startswith("OpenSSL 3.3.1")
    assert lines[2] == "hello from state"
    assert lines[3] == "#!/opt/conda/bin/tclsh8.6" and lines[4] == "extra tool ran"  # the pip-style extra, relocated
    assert "extra.py" in lines[5:]
    # the same environment packs to the same bytes
    again = json.loads(oci_conda("pack", str(prefix), "-o", str(tmp_path / "again.tar"), "--base", debian_base(),
                                 "--tag", "packed:1", "--json").stdout)
    assert again["digest"] == res["digest"]


def _refused(prefix: Path, tmp_path: Path) -> str:
    out = tmp_path / "x.tar"
    p = oci_conda("pack", str(prefix), "-o", str(out), "-q", check=False)
    line = one_error_line(p)
    assert p.returncode == 2 and not out.exists()
    return line


def _plain_file(prefix: Path, package: str) -> str:
    """A file of ``package`` installed as shipped (no prefix rewriting)."""
    meta = next((prefix / "conda-meta").glob(f"{package}-*.json"))
    for e in json.loads(meta.read_text())["paths_data"]["paths"]:
        if e.get("path_type") == "hardlink" and not e.get("prefix_placeholder") and e["_path"].endswith(".tcl"):
            return e["_path"]
    raise AssertionError("no plain file")


def test_a_file_changed_after_install_is_refused(installed: Path, tmp_path: Path, cache_env: Path) -> None:
    prefix = _copy(installed, tmp_path / "env")
    rel = _plain_file(prefix, "tk")
    with open(prefix / rel, "a") as f:
        f.write("# edited by hand\n")
    line = _refused(prefix, tmp_path)
    assert f"{rel} of tk-8.6.13-noxft_h4845f30_101 changed after install" in line


def test_a_deleted_managed_file_is_refused_by_conda_pack(installed: Path, tmp_path: Path, cache_env: Path) -> None:
    prefix = _copy(installed, tmp_path / "env")
    (prefix / _plain_file(prefix, "tk")).unlink()
    line = _refused(prefix, tmp_path)
    assert "conda-pack refused the environment" in line and "deleted/overwritten" in line and "tk" in line


def test_an_editable_install_is_refused(installed: Path, tmp_path: Path, cache_env: Path) -> None:
    prefix = _copy(installed, tmp_path / "env")
    di = prefix / "lib" / "python3.12" / "site-packages" / "mypkg-0.1.dist-info"
    di.mkdir(parents=True)
    (di / "direct_url.json").write_text(json.dumps({"url": "file:///src/mypkg", "dir_info": {"editable": True}}))
    line = _refused(prefix, tmp_path)
    assert "editable" in line and "mypkg" in line


def test_not_an_environment(tmp_path: Path, cache_env: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert "not a conda environment (no conda-meta/)" in _refused(tmp_path / "plain", tmp_path)
    assert "no such environment directory" in _refused(tmp_path / "missing", tmp_path)


def test_pack_help_is_wired() -> None:
    p = subprocess.run([sys.executable, "-m", "oci_conda", "pack", "--help"], check=False, capture_output=True,
                       text=True)
    assert p.returncode == 0 and "PREFIX" in p.stdout and "--base" in p.stdout
