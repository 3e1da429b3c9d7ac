"""End to end on the real conda-forge packages: build an image on a Debian base, validate it with umoci and skopeo,
run its programs under podman, and check the binary prefix rewrite and conda-meta."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import need_tool
from realenv import Podman, debian_base, make_real_channel, oci_conda, umoci_unpack

pytestmark = pytest.mark.slow

PREFIX = "/opt/conda"
TCL_SCRIPT = """\
proc fib {n} { if {$n < 2} { return $n }; return [expr {[fib [expr {$n-1}]] + [fib [expr {$n-2}]]}] }
set total 0
foreach w {conda oci image} { incr total [string length $w] }
puts "fib(20)=[fib 20] letters=$total tcl=[info patchlevel]"
"""


@pytest.fixture(scope="module")
def built(realdata: Path, tmp_path_factory: pytest.TempPathFactory):
    """Build the tk/openssl/xz image once for the module."""
    work = tmp_path_factory.mktemp("e2e")
    chan = make_real_channel(realdata, work / "channel")
    env = work / "environment.yml"
    env.write_text(
        "name: real\n"
        f"channels: [{chan}]\n"
        "dependencies: [tk, openssl, xz]\n"
        "image:\n"
        "  cmd: [/opt/conda/bin/tclsh8.6]\n"
        "  labels: {org.example.purpose: e2e}\n"
    )
    base = debian_base()
    out = work / "real.tar"
    res = oci_conda("build", str(env), "-o", str(out), "--base", base, "--tag", "oci-conda-test/real:1",
                    "--json", env=_env(work))
    summary = json.loads(res.stdout)
    solved = json.loads(oci_conda("solve", str(env), "--json", env=_env(work)).stdout)
    return {"work": work, "env": env, "out": out, "summary": summary, "solved": solved, "base": base}


def _env(work: Path) -> dict:
    import os

    return dict(os.environ, OCI_CONDA_CACHE=str(work / "cache"), SOURCE_DATE_EPOCH="1700000000")


def test_umoci_unpacks_and_conda_meta_lists_exactly_the_solution(built, tmp_path: Path) -> None:
    rootfs = umoci_unpack(built["out"], tmp_path, "oci-conda-test/real:1")
    meta = sorted(p.name for p in (rootfs / PREFIX.strip("/") / "conda-meta").glob("*.json"))
    expected = sorted(f"{r['name']}-{r['version']}-{r['build']}.json" for r in built["solved"])
    assert meta == expected
    assert {"tk", "openssl", "xz"} <= {r["name"] for r in built["solved"]}
    # the Debian base is there under the environment
    assert (rootfs / "usr/bin/env").exists()


def test_podman_runs_tclsh_and_openssl_with_rewritten_prefix(built, tmp_path: Path) -> None:
    podman = Podman(tmp_path / "podman")
    try:
        image = f"oci-archive:{built['out']}"
        # write the script inside the container (podman run gets no stdin here), then run it with tclsh
        r = podman("run", "--rm", image, "/bin/sh", "-c", f"cat > /tmp/s.tcl <<'EOF'\n{TCL_SCRIPT}EOF\n"
                   "tclsh8.6 /tmp/s.tcl")
        assert "fib(20)=6765 letters=13 tcl=8.6.13" in r.stdout
        r = podman("run", "--rm", image, "openssl", "version", "-d")
        # OPENSSLDIR is compiled into libcrypto as a binary prefix placeholder: rewritten to the image prefix
        assert r.stdout.strip() == f'OPENSSLDIR: "{PREFIX}/ssl"'
        r = podman("run", "--rm", image, "xz", "--version")
        assert "5.2.6" in r.stdout
        r = podman("run", "--rm", image, "/bin/sh", "-c", "echo $CONDA_PREFIX:$PATH")
        assert r.stdout.startswith(f"{PREFIX}:{PREFIX}/bin:")
        assert "/usr/bin" in r.stdout  # base PATH joined, not replaced
    finally:
        podman.cleanup()


def test_skopeo_inspect_and_podman_load_accept_the_archive(built, tmp_path: Path) -> None:
    need_tool("skopeo")
    r = subprocess.run(["skopeo", "inspect", f"oci-archive:{built['out']}"], capture_output=True, text=True, check=True)
    info = json.loads(r.stdout)
    assert info["Labels"]["org.example.purpose"] == "e2e"
    ours = built["summary"]["platforms"][0]["layers"]
    assert len(info["Layers"]) == 1 + len(ours)  # the Debian layer + the environment's layers
    assert info["Layers"][1:] == [layer["digest"] for layer in ours]
    assert info["Digest"] == built["summary"]["manifest_digest"]
    podman = Podman(tmp_path / "podman")
    try:
        r = podman("load", "-i", str(built["out"]))
        r = podman("images", "--format", "{{.Repository}}:{{.Tag}}")
        assert "oci-conda-test/real:1" in r.stdout
    finally:
        podman.cleanup()


def test_base_layer_reused_byte_for_byte(built) -> None:
    base_dir = Path(built["base"].split(":", 1)[1].rsplit(":", 1)[0])
    index = json.loads((base_dir / "index.json").read_text())
    manifest = json.loads((base_dir / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    r = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{built['out']}"], capture_output=True, text=True,
                       check=True)
    ours = json.loads(r.stdout)
    assert ours["layers"][0]["digest"] == manifest["layers"][0]["digest"]


def test_same_digest_when_rebuilt_elsewhere_with_cold_cache_and_other_umask(built, tmp_path: Path) -> None:
    import os

    env_copy = tmp_path / "elsewhere" / "environment.yml"
    env_copy.parent.mkdir()
    env_copy.write_text(built["env"].read_text())
    env = dict(_env(tmp_path))
    out = tmp_path / "again.tar"
    old = os.umask(0o077)
    try:
        res = oci_conda("build", str(env_copy), "-o", str(out), "--base", built["base"], "--tag",
                        "oci-conda-test/real:1", "--json", cwd=tmp_path, env=env)
    finally:
        os.umask(old)
    assert json.loads(res.stdout)["manifest_digest"] == built["summary"]["manifest_digest"]
    assert out.read_bytes() == built["out"].read_bytes()


def test_aggressive_trim_still_runs_is_smaller_and_conda_meta_agrees(built, tmp_path: Path) -> None:
    out = tmp_path / "trimmed.tar"
    res = oci_conda("build", str(built["env"]), "-o", str(out), "--base", built["base"], "--tag",
                    "oci-conda-test/real:trim", "--trim", "aggressive", "--json", env=_env(built["work"]))
    summary = json.loads(res.stdout)
    trimmed = summary["platforms"][0]["trimmed"]
    saved = sum(v["bytes"] for v in trimmed.values())
    assert {"headers", "man pages", "documentation"} <= set(trimmed) and saved > 1_000_000
    tar_bytes = lambda s: sum(layer["uncompressed_size"] for layer in s["platforms"][0]["layers"])  # noqa: E731
    assert tar_bytes(built["summary"]) - tar_bytes(summary) >= saved  # smaller by at least what was reported
    rootfs = umoci_unpack(out, tmp_path / "u", "oci-conda-test/real:trim")
    prefix = rootfs / PREFIX.strip("/")
    assert not (prefix / "include").exists() and not (prefix / "share/man").exists()
    for rec in (prefix / "conda-meta").glob("*.json"):
        doc = json.loads(rec.read_text())
        for f in doc["files"]:
            assert (prefix / f).exists() or (prefix / f).is_symlink(), f"{rec.name} lists missing {f}"
        assert {p["_path"] for p in doc["paths_data"]["paths"]} <= set(doc["files"])
    podman = Podman(tmp_path / "podman")
    try:
        image = f"oci-archive:{out}"
        r = podman("run", "--rm", image, "/bin/sh", "-c", f"cat > /tmp/s.tcl <<'EOF'\n{TCL_SCRIPT}EOF\n"
                   "tclsh8.6 /tmp/s.tcl && openssl version -d && xz --version")
        assert "fib(20)=6765" in r.stdout and f'OPENSSLDIR: "{PREFIX}/ssl"' in r.stdout and "5.2.6" in r.stdout
    finally:
        podman.cleanup()


def test_every_json_document_validates_against_the_oci_schemas(built, realdata: Path) -> None:
    from oci_schema import validate_layout_archive

    assert validate_layout_archive(built["out"], realdata) >= 3  # index, manifest, config
