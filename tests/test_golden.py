"""Golden digests: the same inputs give the same image bytes as the tree before the restructure (issue 10).

Each case builds an image through the real command line (``sys.executable -m oci_conda``) from inputs that do not
depend on where the checkout lives (channels named by relative path, a pinned SOURCE_DATE_EPOCH or the packages'
own timestamps) and compares every digest in the result with the values recorded below: the archive file, its
``index.json``, every nested index, and per platform the manifest, the config and each layer. A refactor must not
move any of them.

The values were recorded with the tree at commit 7ef29f7 (before any module was moved), Python 3.11 and zlib 1.2.13
(Debian 12, as in CI). gzip layers are deflated by the system zlib, so another zlib may give other layer bytes: a
mismatch message says when the running zlib is not the recorded one.

Re-recording is for deliberate changes of the bytes only (a compression setting, a new config field, a tar header
rule); the commit that does it says why. From the repository root:

    PYTHONPATH=$PWD/src OCI_CONDA_SHARED=/path/to/shared python3 tests/test_golden.py

prints a new ``GOLDEN`` table to paste over the one below (and ``RECORDED_ZLIB``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import REALDATA, REPO
from pkgbuilder import build_package, index_channel
from realenv import make_real_channel, oci_conda

RECORDED_ZLIB = "1.2.13"
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
        "archive": "sha256:ed58153d05c45117d110d77454770d4ae5789b422caa299e875abea37ac19aa0",
        "index.json": "sha256:14662730a081c491d275d73e2fb45e148d72c3433eb682efe9432bd8240ee306",
        "linux/amd64 manifest": "sha256:278e68fb8bc1823225698b5684ad61da668709692d3ff558e52b1cee78dd03ef",
        "linux/amd64 config": "sha256:642623f7f3b0538b89a2de0d013bf4ccff40367f2352a83ac1de3da3a8a8c817",
        "linux/amd64 layer 0": "sha256:f98a6c0ef27de47670e19e5b4b12e7a72de669449d5a3f22e015390190c952af",
        "linux/amd64 layer 1": "sha256:b60ce896d8143ea1b0c87d8221b825cc2b3e5ea9db42024a18e5eca699116f44",
        "linux/amd64 layer 2": "sha256:fe4db219126327463154ab97094642c3f52e3f73d5c97a39a4049a99cfdb0b5b",
    },
    "hello-layout-dir": {
        "index.json": "sha256:14662730a081c491d275d73e2fb45e148d72c3433eb682efe9432bd8240ee306",
        "linux/amd64 manifest": "sha256:278e68fb8bc1823225698b5684ad61da668709692d3ff558e52b1cee78dd03ef",
        "linux/amd64 config": "sha256:642623f7f3b0538b89a2de0d013bf4ccff40367f2352a83ac1de3da3a8a8c817",
        "linux/amd64 layer 0": "sha256:f98a6c0ef27de47670e19e5b4b12e7a72de669449d5a3f22e015390190c952af",
        "linux/amd64 layer 1": "sha256:b60ce896d8143ea1b0c87d8221b825cc2b3e5ea9db42024a18e5eca699116f44",
        "linux/amd64 layer 2": "sha256:fe4db219126327463154ab97094642c3f52e3f73d5c97a39a4049a99cfdb0b5b",
    },
    "hello-package-time": {
        "archive": "sha256:1144dd3f029eedc859f7d36c4980a32be152ea967a2b1aac3b932baf27adfe1e",
        "index.json": "sha256:8b61a97ba5969d2bb04792fd5bf89e2f2581f0e7e94eb986000fcd249d21b17b",
        "linux/amd64 manifest": "sha256:1926032191bcca941c3fd320676e17927a2dbf982286a3734b4dd3157f0632da",
        "linux/amd64 config": "sha256:8fe5ebed058b4b603c4e2d8529c230d96c26afa95b33dadec63fd325219f781b",
        "linux/amd64 layer 0": "sha256:dbd6e7df830b698f6d91da02c7f7baf8960002419a8b0795d4baef2a7a56889a",
        "linux/amd64 layer 1": "sha256:727c9a517cceeb754531c102d6979641d1e5f77b2f952acf19d3251eaa43b076",
        "linux/amd64 layer 2": "sha256:df25a370834a18b5c0ae3b179c71376a2621b2cea6ea97d47286e6e9e239c918",
    },
    "hello-single-layer": {
        "archive": "sha256:9401beb0cb2106fa78619734fd70419a7485f4237533323b808fedf85dc68b57",
        "index.json": "sha256:35c204eccccbbf7549f8d13f8bc2ad6482e7b7fe40a7356b15a5ed56f514de2a",
        "linux/amd64 manifest": "sha256:3766ce687cf21b45c6e0e6ad0b5974e51b8b4edc3321a6acccd2a6af6f338219",
        "linux/amd64 config": "sha256:881f35d24d07e2d4136971fb72eb32a4893494c5a376a8d09e63a82dd32f8509",
        "linux/amd64 layer 0": "sha256:d3d15d15b7bd86143862df8dce5dc800a0df423aa11b09ae3e5c75e03d4584d9",
    },
    "multi": {
        "archive": "sha256:aaf4efba7dd5750560a152a817d80072da675b174072e6689a940acbe746f90c",
        "index.json": "sha256:5f7b2106a1420de93fe14854dbdb80cdf09cc1ab5caa1416d5ba6c2519e7f2a7",
        "index 0": "sha256:1388df5faa300fc7b41f4cab3c511983e873ca0a1410e5c244d24f0c70ff0b49",
        "linux/amd64 manifest": "sha256:63322e961a982ee715c3e5a59e4bc09a0afb79fa12c7b79212af1583eb0bb7d8",
        "linux/amd64 config": "sha256:2146caa560a0a43c2b6a2c69ca357d4b5cfad0b5c282d0ff06ab95f633bea982",
        "linux/amd64 layer 0": "sha256:7afc64404dd2f194171a6237eb40c2a923ae222e728dfd7f7422571005e92179",
        "linux/amd64 layer 1": "sha256:1b157ee80f11afb49246cbae54fa6de0682b2f2682962a389d1ba1f7457938b3",
        "linux/amd64 layer 2": "sha256:ed59686db5f69ad9b76bb7f79174f4468e34510f823d3321c667401e3d9196e3",
        "linux/arm64/v8 manifest": "sha256:d0af51378893bc9fb5f94a4f4e0f2626f3c6b0e14d67af194a58cb98f0d82f77",
        "linux/arm64/v8 config": "sha256:09c1b7c5fd703f9e0b13c0580d284503b447443b0ff79132f4fd2e6322f9f283",
        "linux/arm64/v8 layer 0": "sha256:7afc64404dd2f194171a6237eb40c2a923ae222e728dfd7f7422571005e92179",
        "linux/arm64/v8 layer 1": "sha256:28adc12775d49eecf8ffedf2d36a646d29c7ff907cc87bd9f58c3d4ddbbb444c",
        "linux/arm64/v8 layer 2": "sha256:7d804012effeec3107e603b48abb76fb2f3af2f26b83f7b92c392b1d37bcb594",
    },
    "real": {
        "archive": "sha256:bb5dadb915e759e8fa017af91c1b8b547bf39910b43fe139b5daf4fd7d494080",
        "index.json": "sha256:5ddb0204d31eff1a3c2b853e97e4edccd6385bad9d00940bd9745e5f8250ae98",
        "linux/amd64 manifest": "sha256:1aff89ae5ef6e40f9bf3bf5892b46b6e2d616afb9f5912b34efd20a22f15d3cd",
        "linux/amd64 config": "sha256:035b73fd72f3ae6971edf24df160911d59d491c6327fe11e3221d9fb27f92959",
        "linux/amd64 layer 0": "sha256:941e739d1814dad41ab8d3c45c6f33639e0ee7c8029fe1cd04bd2dc8a5f1328d",
        "linux/amd64 layer 1": "sha256:69fa136a20e34c385cba11f1176a7fbc79eb7fe32409142cc7a090a8e1b66a3c",
        "linux/amd64 layer 2": "sha256:3e73a7c4b73c8be0b64d7f045129172cc0283fa37ea2ea91cb53d65e69055af0",
        "linux/amd64 layer 3": "sha256:00df5e6d18ada03b5c61645c19ea20826554abe65a8ba46733aeb9b021c7524a",
        "linux/amd64 layer 4": "sha256:d124de945156ad9da50546c6304d8e859cc2d6b6cda60dfad82a6cf1ac7d3808",
        "linux/amd64 layer 5": "sha256:86ab7131fa434c4170e3caa681c639c7d5e630aaa4ac4a94baf0f86c0530b0e4",
        "linux/amd64 layer 6": "sha256:7a5623086b566d243c9a62de62b06e5c766ede06316da3b7d1fb4668034cee17",
        "linux/amd64 layer 7": "sha256:f6b8cd36e0f96acba07cdd39d116470ebde20cd9b3651076461ff81a4a2f4d59",
        "linux/amd64 layer 8": "sha256:6010600c80d9a2febee60811310b56ea13c8496107e8cdcf23d4ed6be1aee1ed",
        "linux/amd64 layer 9": "sha256:1fe910d2a7fd0f835b4a483ab19f5d655fc68121b6d38972551db599f07d4701",
        "linux/amd64 layer 10": "sha256:f5f552ba132d1c4582514e9e914e4f40ba6618f9e7c680e185a5081ff6087316",
    },
    "real-zstd-trim-prefix": {
        "archive": "sha256:a90178d61793311903a11f9a839ae027b767fc8e4b5135fb0c93fad1f915bafc",
        "index.json": "sha256:d560cbf9457e3cc0efe926bf2673f659721d04a85c3a621697561762ecd21e97",
        "linux/amd64 manifest": "sha256:51491e89e21db393b2b498c4da54802ba1e47076e55a653d28e68e01fec376ff",
        "linux/amd64 config": "sha256:89676f0d0c4dcfd850e077ffe95b4bc2001f8ecad68f4f10c0703aee83bba3e1",
        "linux/amd64 layer 0": "sha256:36fe1723e08c3c9127d4a1abf9b68a23d542e9f1fecaed329662ca91bfc16b32",
        "linux/amd64 layer 1": "sha256:c00ff5e758d4510e3c97e8e5205f1730b7ff6e241320401cd0b02f1bc685e895",
        "linux/amd64 layer 2": "sha256:cf8f36607062d9fd09c57e1519c9deda31b57b22460025760dae15128147f037",
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
        if zlib.ZLIB_RUNTIME_VERSION != RECORDED_ZLIB:
            lines.append(f"(recorded with zlib {RECORDED_ZLIB}, this is zlib {zlib.ZLIB_RUNTIME_VERSION})")
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
    print(f'RECORDED_ZLIB = "{zlib.ZLIB_RUNTIME_VERSION}"\n')
    print("GOLDEN: dict[str, dict[str, str]] = {")
    for name, rec in table.items():
        print(f'    "{name}": {{')
        for k, v in rec.items():
            print(f'        "{k}": "{v}",')
        print("    },")
    print("}")


if __name__ == "__main__":
    _record()
