"""Golden digests: the same inputs give the same image bytes as the tree before the restructure (issue 10).

Each case builds an image through the real command line (``sys.executable -m oci_conda``) from inputs that do not
depend on where the checkout lives (channels named by relative path, a pinned SOURCE_DATE_EPOCH or the packages'
own timestamps) and compares every digest in the result with the values recorded below: the archive file, its
``index.json``, every nested index, and per platform the manifest, the config and each layer. A refactor must not
move any of them.

The values were first recorded with the tree at commit 7ef29f7 (before any module was moved), and re-recorded once
on purpose (issue 16): layer format 2 dates each package's files with that package's own build time (clamped to
SOURCE_DATE_EPOCH), and gzip layers are deflated by the pinned zlib-ng wheel at level 4 instead of the system zlib
at level 6. gzip bytes therefore depend on the zlib-ng version only: a mismatch message names the compressor when
it is not the recorded one.

Re-recording is for deliberate changes of the bytes only (a compression setting, a new config field, a tar header
rule); the commit that does it says why. From the repository root:

    PYTHONPATH=$PWD/src OCI_CONDA_SHARED=/path/to/shared python3 tests/test_golden.py

prints a new ``GOLDEN`` table to paste over the one below (and ``RECORDED_COMPRESSOR``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import REALDATA, REPO
from pkgbuilder import build_package, index_channel
from realenv import make_real_channel, oci_conda

from oci_conda.oci.tar import compressor_id

RECORDED_COMPRESSOR = "zlib-ng 2.3.3 level 4 blocks 1048576"
EPOCH = "1700000000"
HELLO = REPO / "examples" / "hello"


# ---------------------------------------------------------------------------------------------------------------
# the inputs


def _hello(work: Path) -> Path:
    """A copy of the README's example (nothing is written into the repository); its channel is ``./channel``."""
    shutil.copytree(HELLO, work / "hello", ignore=shutil.ignore_patterns("src", "build_channel.py", ".*"))
    return work / "hello" / "environment.yml"


def _hello_locked(work: Path) -> Path:
    """The hello example, locked first: a build from the lock must give the bytes the solve gives."""
    env = _hello(work)
    oci_conda("lock", str(env), "-o", str(work / "hello.lock"), env=_env(work, epoch=True))
    return env


def _real(work: Path) -> Path:
    """tk, openssl and xz with their dependencies from the real conda-forge files (binary prefix rewrites)."""
    if not REALDATA.is_dir():
        pytest.skip(f"real upstream data not found at {REALDATA} (set OCI_CONDA_SHARED)")
    make_real_channel(REALDATA, work / "chan")
    env = work / "environment.yml"
    env.write_text("name: real\nchannels: [./chan]\ndependencies: [tk, openssl, xz]\n"
                   "image:\n  cmd: [/opt/conda/bin/tclsh8.6]\n  labels: {org.example.purpose: golden}\n")
    return env


def _multi(work: Path) -> Path:
    """One package built for linux-64 and linux-aarch64 plus a noarch dependency (as in test_multiarch)."""
    chan = work / "chan"
    for subdir, arch in (("linux-64", "x86_64"), ("linux-aarch64", "aarch64")):
        (chan / subdir).mkdir(parents=True)
        build_package(chan / subdir, "tool", "2.0", subdir=subdir, depends=["__glibc >=2.17", "data"],
                      files={"bin/tool": f"#!/bin/sh\necho built for {arch}\n", f"lib/libtool-{arch}.so": arch})
        build_package(chan / subdir, "tool", "1.0", subdir=subdir, files={"bin/tool": "old\n"})
    (chan / "noarch").mkdir()
    build_package(chan / "noarch", "data", "1.0", subdir="noarch", noarch="generic", files={"share/data.txt": "d\n"})
    index_channel(chan)
    env = work / "environment.yml"
    env.write_text("name: multi\nchannels: ['./chan']\ndependencies: [tool]\nimage:\n  tag: multi:1\n")
    return env


@dataclass(frozen=True)
class Case:
    """One build: how its inputs are made, the extra CLI arguments, and which recorded values it must match."""

    make: Callable[[Path], Path]
    args: tuple[str, ...] = ()
    epoch: bool = True  # SOURCE_DATE_EPOCH pinned; otherwise the time comes from the newest package
    output: str = "image.tar"  # a .tar is an OCI archive, anything else an OCI layout directory
    expect: str = ""  # the GOLDEN key to compare with, when it is another case's (same image, other route)


CASES: dict[str, Case] = {
    "hello": Case(_hello, ("--tag", "hello:1")),
    "hello-package-time": Case(_hello, ("--tag", "hello:1"), epoch=False),
    "hello-locked": Case(_hello_locked, ("--tag", "hello:1", "--lock", "hello.lock"), expect="hello"),
    "hello-layout-dir": Case(_hello, ("--tag", "hello:1"), output="layout"),
    "hello-single-layer": Case(_hello, ("--tag", "hello:1", "--layering", "single")),
    "real": Case(_real, ("--tag", "real:1")),
    "real-zstd-trim-prefix": Case(_real, ("--tag", "real:1", "--compression", "zstd", "--trim", "safe",
                                          "--prefix", "/opt/env", "--max-layers", "4")),
    "multi": Case(_multi, ("--platform", "linux-64", "--platform", "linux-aarch64")),
}


def _env(work: Path, *, epoch: bool) -> dict[str, str]:
    """The caller's environment without anything that changes the image, plus a private cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_CONDA_") and k != "SOURCE_DATE_EPOCH"}
    env["OCI_CONDA_CACHE"] = str(work.parent / "cache")
    if epoch:
        env["SOURCE_DATE_EPOCH"] = EPOCH
    return env


def build(name: str, root: Path) -> dict[str, str]:
    """Build case ``name`` under ``root`` (its cache shared with the other cases there) and return its digests."""
    case = CASES[name]
    work = root / name
    work.mkdir(parents=True)
    env_file = case.make(work)
    out = work / case.output
    oci_conda("build", str(env_file), "-o", str(out), "-q", *case.args, cwd=work, env=_env(work, epoch=case.epoch))
    return digests(out)


# ---------------------------------------------------------------------------------------------------------------
# reading the result (independent of the package: plain tarfile and json)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digests(out: Path) -> dict[str, str]:
    """Flat, readable record of an OCI archive or layout: file name or platform + role -> digest."""
    if out.is_dir():
        def read(name: str) -> bytes:
            return (out / name).read_bytes()
        record: dict[str, str] = {}
        return _walk(read, record)
    with tarfile.open(out) as t:
        def read(name: str) -> bytes:
            f = t.extractfile(name)
            assert f is not None, f"{name} is not a file in {out}"
            return f.read()
        record = {"archive": _sha(out.read_bytes())}
        return _walk(read, record)


def _walk(read: Callable[[str], bytes], record: dict[str, str]) -> dict[str, str]:
    raw = read("index.json")
    record["index.json"] = _sha(raw)
    todo = list(json.loads(raw)["manifests"])
    while todo:
        d = todo.pop(0)
        blob = read(f"blobs/sha256/{d['digest'].split(':', 1)[1]}")
        assert _sha(blob) == d["digest"], f"blob {d['digest']} does not match its digest"
        doc = json.loads(blob)
        if "manifests" in doc:
            record[f"index {len([k for k in record if k.startswith('index ')])}"] = d["digest"]
            todo.extend(doc["manifests"])
            continue
        cfg = json.loads(read(f"blobs/sha256/{doc['config']['digest'].split(':', 1)[1]}"))
        plat = "/".join(x for x in (cfg.get("os"), cfg.get("architecture"), cfg.get("variant")) if x)
        record[f"{plat} manifest"] = d["digest"]
        record[f"{plat} config"] = doc["config"]["digest"]
        for i, layer in enumerate(doc["layers"]):
            record[f"{plat} layer {i}"] = layer["digest"]
    return record


# ---------------------------------------------------------------------------------------------------------------
# the recorded values (see the module docstring before changing any)

GOLDEN: dict[str, dict[str, str]] = {
    "hello": {
        "archive": "sha256:b18d59aa81a83b24df6e901e47e6c16c1c4adf748b691499741e7d987a1e3bbb",
        "index.json": "sha256:160b2db06202a3431184007316fa4dd34ed605a8a6d349901c0acf475202eb18",
        "linux/amd64 manifest": "sha256:bccc2e7c38ffcdc02337d332779b006c40f8a09ba557bf16ec99c803a0bfafde",
        "linux/amd64 config": "sha256:642623f7f3b0538b89a2de0d013bf4ccff40367f2352a83ac1de3da3a8a8c817",
        "linux/amd64 layer 0": "sha256:6e1fe1e56917063ea6be6a022acfb9297e2fd3f853d9060fa8a42bca2758fda2",
        "linux/amd64 layer 1": "sha256:e26ee91d551397f701dd87b4796b3e91d1f8b74ea7c00d5af20cd94e0e36ddde",
        "linux/amd64 layer 2": "sha256:dc845c63a3821a0b04760ced66bfbdb0c2f9cd2306f5219038570fbd0a629562",
    },
    "hello-layout-dir": {
        "index.json": "sha256:160b2db06202a3431184007316fa4dd34ed605a8a6d349901c0acf475202eb18",
        "linux/amd64 manifest": "sha256:bccc2e7c38ffcdc02337d332779b006c40f8a09ba557bf16ec99c803a0bfafde",
        "linux/amd64 config": "sha256:642623f7f3b0538b89a2de0d013bf4ccff40367f2352a83ac1de3da3a8a8c817",
        "linux/amd64 layer 0": "sha256:6e1fe1e56917063ea6be6a022acfb9297e2fd3f853d9060fa8a42bca2758fda2",
        "linux/amd64 layer 1": "sha256:e26ee91d551397f701dd87b4796b3e91d1f8b74ea7c00d5af20cd94e0e36ddde",
        "linux/amd64 layer 2": "sha256:dc845c63a3821a0b04760ced66bfbdb0c2f9cd2306f5219038570fbd0a629562",
    },
    "hello-package-time": {
        "archive": "sha256:3871665aec2f7dab2d26d38d9fc3e06a95d53e5e72d295a81b517a070ce34196",
        "index.json": "sha256:d1c8a9fb674d3543a1c154b82e8ca0982777acf0b756dbcdf8a4518fbb9c9096",
        "linux/amd64 manifest": "sha256:1a9b12d76c2328ee55a3d4925468d882730cda1e11f8a387497005e3dbd0bd90",
        "linux/amd64 config": "sha256:8fe5ebed058b4b603c4e2d8529c230d96c26afa95b33dadec63fd325219f781b",
        "linux/amd64 layer 0": "sha256:d1ea65bdfc99277273c6863f4d220d2d36a497561ac936cb27cfc1f090cb1b9d",
        "linux/amd64 layer 1": "sha256:6673ca063cc5523aeca9a0f79bf7692533c9befb3eab43bba1077f6e6149ffe2",
        "linux/amd64 layer 2": "sha256:bcbc39fd3af9a9a08523457f435407d03cfa7caaeca76df2f30db0dcb00a57b4",
    },
    "hello-single-layer": {
        "archive": "sha256:a577ebf44371b6793f66fe01a7f515937b0fe056c2aa444e60295311f4f013b2",
        "index.json": "sha256:90218d820b3e4ad4e94e59f40e595e8d01d1e2c1b9dfe48f03869351bc6afffd",
        "linux/amd64 manifest": "sha256:1c47046ff28fef7b1cd45f710c2f7b80e5f25c23d2452fd8040f3c99b39d5f86",
        "linux/amd64 config": "sha256:881f35d24d07e2d4136971fb72eb32a4893494c5a376a8d09e63a82dd32f8509",
        "linux/amd64 layer 0": "sha256:f5f496db89d164d34160b0553443b310cf4dce632c5c6a68f79468aa2f7fc446",
    },
    "multi": {
        "archive": "sha256:bd3488b0e05d981ee7bd0cd4be2df2d3122976183c808eccb2d8861a69ffd3aa",
        "index.json": "sha256:a1eca935193e1b89dd1781203d720c581b66724cf52d5dbc5c592df0f4dc2ea2",
        "index 0": "sha256:7cca5090d04f3b5d6611e1710eb33b02c3223b3abd843abce7baa562b69fbbda",
        "linux/amd64 manifest": "sha256:915dab29646e43a47f4ff412b58392bd01d599d132d3a26f81e9f39fc34bb492",
        "linux/amd64 config": "sha256:2146caa560a0a43c2b6a2c69ca357d4b5cfad0b5c282d0ff06ab95f633bea982",
        "linux/amd64 layer 0": "sha256:d69f854b280bdcc7adb23f62b5bf6cc440b1e32c320288f769bba3044843edd8",
        "linux/amd64 layer 1": "sha256:4c3849bc71913dfa37d0812d4f419fb5fcae023ee63e379fadaf7726de4927cc",
        "linux/amd64 layer 2": "sha256:c57150ec78d32e2ba2f9ded78ce75ef3b0e98485ff62a1718979cd5e2523889d",
        "linux/arm64/v8 manifest": "sha256:9943e266e3921622e068159091b1b3598abccce1aba22a91cf898c4955e823de",
        "linux/arm64/v8 config": "sha256:09c1b7c5fd703f9e0b13c0580d284503b447443b0ff79132f4fd2e6322f9f283",
        "linux/arm64/v8 layer 0": "sha256:d69f854b280bdcc7adb23f62b5bf6cc440b1e32c320288f769bba3044843edd8",
        "linux/arm64/v8 layer 1": "sha256:9954afe79e0103ae5b2bee8354da3af92dd7f353159b82f535d0829184e522ee",
        "linux/arm64/v8 layer 2": "sha256:7d62b32da5d38f4f45e3c77966d0b9c990f58f8b80577d7ddc569a9ac50a65b6",
    },
    "real": {
        "archive": "sha256:ce13d580cd3f0142a8ee6b962b7a4617b6ef60ba795ea77309e5cb779225dd75",
        "index.json": "sha256:d4026fae5bc73296ca632a41963b59391e769bed2df4f89bf1d7457a97cf3342",
        "linux/amd64 manifest": "sha256:0e82647776acc20ff86485b95e14d5bce6f2fd5e49a6f12e42cfaa3c8d4ddb39",
        "linux/amd64 config": "sha256:7e5df4126a08891bb209c9c1520459ca8d2404bad6d1edaebd9c1ffce0d74756",
        "linux/amd64 layer 0": "sha256:f05b22718411b69973c38992b39ddb6d527553e9981b8a3046474c43a53d0ced",
        "linux/amd64 layer 1": "sha256:a0c0b9e8e0a819ba65d43ed928db71cfb0069ed56b9e27d22b316c5c19ef3281",
        "linux/amd64 layer 2": "sha256:4d222e7dcfc6e18d9634d2db98a32a1ec7fe5d455523e7a6cd26ee266a5db32b",
        "linux/amd64 layer 3": "sha256:7318d1cbe128c71fa1cc026aee18b76a9c8f316229517a25f769a4b9c13d1921",
        "linux/amd64 layer 4": "sha256:a16365c9cd637b34a2d1baab07e79a7920e59a9568b907dc699b8146226495fc",
        "linux/amd64 layer 5": "sha256:50abdd4f3c3ee294867f0ba45e067e6737c912d99911b80d9dcc10e4ed40d7ab",
        "linux/amd64 layer 6": "sha256:54c323b292f83e87b17cdb57da0fc2b5787b9e1a85b8548d761226b1475084ee",
        "linux/amd64 layer 7": "sha256:a29eaba1c7a2f5550df69c497f3d209c46e6e9798ec2d39af4a0034f2b15fd07",
        "linux/amd64 layer 8": "sha256:ad42e629fdf13d9cff418ab24a2b65d3f79229946d182c69aa1fbd531386cd31",
        "linux/amd64 layer 9": "sha256:72251881e1ce674fb14cb369ff9f9de1d1d2464d839f42e1cc54211339e6ffcb",
        "linux/amd64 layer 10": "sha256:3c79d7d476c449cc439ea83b1b064580fe5d88fedfe7651a944f8745da4e015f",
    },
    "real-zstd-trim-prefix": {
        "archive": "sha256:d37a7ebdf2d92a46edc3ffee1bc4729129a9c0ac0586fac0e55b22c6cd48ae83",
        "index.json": "sha256:8298d41aef5436a8cae51e1a79a92eeef6890bccba6f115456235eb6a3b72d2b",
        "linux/amd64 manifest": "sha256:125ca4ef4c0d9a94d617171b60e867d80c5580ac34ff896a01707429d45871ec",
        "linux/amd64 config": "sha256:711f91b83e512f74a95027d2b77e5cbbe6152d077a3fd1f65afb69a01a1f3cc2",
        "linux/amd64 layer 0": "sha256:36fe1723e08c3c9127d4a1abf9b68a23d542e9f1fecaed329662ca91bfc16b32",
        "linux/amd64 layer 1": "sha256:11a4ef8c449e55bc15e4415d086f20b05bc1e4e53fe34de82e2326e7290e2f4a",
        "linux/amd64 layer 2": "sha256:8357854afada782c8d043fccc6d103000ece8cc3f1c4ff6678c8d0cb40121edf",
        "linux/amd64 layer 3": "sha256:d41d1360514be1e84b8bc260365f631097a0b2d0da4cae9ea1205b72bc514608",
    },
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("golden")


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_recorded(name: str, root: Path) -> None:
    expected = GOLDEN[CASES[name].expect or name]
    got = build(name, root)
    if got != expected:
        changed = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
        lines = [f"{k}: recorded {expected.get(k)}, now {got.get(k)}" for k in changed]
        if compressor_id("gzip") != RECORDED_COMPRESSOR:
            lines.append(f"(recorded with {RECORDED_COMPRESSOR}, this is {compressor_id('gzip')})")
        pytest.fail(f"golden case {name!r}: the image bytes changed ({len(changed)} digests):\n  "
                    + "\n  ".join(lines)
                    + "\nIf that is deliberate, re-record (see tests/test_golden.py) and say why in the commit.")


def _record() -> None:
    """Print a fresh GOLDEN table (see the module docstring)."""
    root = Path(tempfile.mkdtemp(prefix="golden-"))
    try:
        table = {name: build(name, root) for name in sorted(CASES) if not CASES[name].expect}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f'RECORDED_COMPRESSOR = "{compressor_id("gzip")}"\n')
    print("GOLDEN: dict[str, dict[str, str]] = {")
    for name, rec in table.items():
        print(f'    "{name}": {{')
        for k, v in rec.items():
            print(f'        "{k}": "{v}",')
        print("    },")
    print("}")


if __name__ == "__main__":
    _record()
