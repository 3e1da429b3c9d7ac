"""The cache is verified when used, never trusted blindly (issue 12), and what the installer keeps is what ships.

Through the real command line on local channels: a flipped byte in an extracted file or in a cached package file,
an extraction marker of an older format, and two channels with a same-named package without checksums must all give
the image the inputs say (the same digest as a build on a fresh cache). Clobbered paths and long shebangs are checked
in the image itself; the placeholder bomb runs under an address-space limit.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import hostile
from pkgbuilder import (
    LONG_PLACEHOLDER,
    Executable,
    build_package,
    index_channel,
    read_index_json,
)
from realenv import oci_conda

from oci_conda.cache_verify import (
    Digests,
    file_digests,
    record_file,
    tree_manifest,
    verify_file,
    verify_tree,
)
from oci_conda.conda.install import replace_text_prefix, rewrite_limit

TIMEOUT = 180


def _layers(archive: Path) -> list[dict[str, bytes | str]]:
    """Each layer of the (single-platform) OCI archive as {path: file bytes or 'dir'/'link:...'}."""
    out = []
    with tarfile.open(archive) as t:
        def blob(d: str) -> bytes:
            f = t.extractfile("blobs/sha256/" + d.split(":", 1)[1])
            assert f is not None
            return f.read()

        idx = json.loads(t.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(idx["manifests"][0]["digest"]))
        for layer in manifest["layers"]:
            files: dict[str, bytes | str] = {}
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))) as lt:
                for m in lt.getmembers():
                    if m.isfile():
                        files[m.name] = lt.extractfile(m).read()  # type: ignore[union-attr]
                    elif m.issym():
                        files[m.name] = "link:" + m.linkname
                    else:
                        files[m.name] = "dir"
            out.append(files)
    return out


def _digest(archive: Path) -> str:
    with tarfile.open(archive) as t:
        return json.loads(t.extractfile("index.json").read())["manifests"][0]["digest"]  # type: ignore[union-attr]


#: Builds that read packages from the extraction cache (the per-package path streams them from their archives).
EXTRACTING = ("--layering", "single")


def _build(work: Path, env_yml: str, out: str, cache: Path, check: bool = True, extra: tuple[str, ...] = ()
           ) -> subprocess.CompletedProcess:
    (work / "env.yml").write_text(env_yml)
    # without the layer memos (tests/test_layer_memo.py, tests/test_package_memo.py): these tests damage entries the
    # full path reads
    for memo in ("env", "pkg", "members"):
        shutil.rmtree(cache / "layers" / memo, ignore_errors=True)
    env = dict(os.environ, OCI_CONDA_CACHE=str(cache), SOURCE_DATE_EPOCH="1700000000")
    return oci_conda("build", "env.yml", "-o", str(work / out), "-q", *extra, cwd=work, env=env, check=check,
                     timeout=TIMEOUT)


@pytest.fixture()
def chan(tmp_path: Path) -> Path:
    c = tmp_path / "chan"
    build_package(c / "linux-64", "tool", "1", files={"bin/tool": Executable("#!/bin/sh\necho genuine\n"),
                                                      "share/tool/data.txt": "genuine data\n"})
    index_channel(c)
    return c


def test_flipped_byte_in_extracted_file_is_replaced(chan: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env_yml = f"channels: [{chan}]\ndependencies: [tool]\n"
    _build(tmp_path, env_yml, "a.tar", cache, extra=EXTRACTING)
    (entry,) = [d for d in (cache / "extracted").iterdir() if d.is_dir() and not d.name.startswith(".")]
    f = entry / "share/tool/data.txt"
    st = os.stat(f)
    with open(f, "r+b") as fh:  # flip one byte in place, then put the old mtime back
        fh.write(b"G" if fh.read(1) != b"G" else b"g")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(f, 0o644)
    _build(tmp_path, env_yml, "b.tar", cache, extra=EXTRACTING)
    assert _digest(tmp_path / "b.tar") == _digest(tmp_path / "a.tar")
    assert any(layer.get("opt/conda/share/tool/data.txt") == b"genuine data\n" for layer in _layers(tmp_path / "b.tar"))


@pytest.mark.parametrize("extracting", [True, False], ids=["extracted", "streamed"])
def test_damaged_package_file_and_old_marker_are_replaced(chan: Path, tmp_path: Path, extracting: bool) -> None:
    cache = tmp_path / "cache"
    env_yml = f"channels: [{chan}]\ndependencies: [tool]\n"
    extra = EXTRACTING if extracting else ()
    _build(tmp_path, env_yml, "a.tar", cache, extra=extra)
    (pkg,) = [p for p in (cache / "pkgs").iterdir() if p.is_file()]
    data = bytearray(pkg.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pkg.write_bytes(bytes(data))  # same size: a size check alone would trust it
    if extracting:
        (entry,) = [d for d in (cache / "extracted").iterdir() if d.is_dir() and not d.name.startswith(".")]
        (entry / ".oci-conda-extracted").write_bytes(b"")  # the marker of an older version: no manifest
    else:
        assert not (cache / "extracted").exists() or not any((cache / "extracted").iterdir())
    for attempt in ("b.tar", "c.tar"):  # replaced once, then used: never failing forever
        _build(tmp_path, env_yml, attempt, cache, extra=extra)
        assert _digest(tmp_path / attempt) == _digest(tmp_path / "a.tar")
    assert hashlib.sha256(pkg.read_bytes()).hexdigest() == pkg.name.split(".")[0]


def test_same_file_name_from_two_channels_without_checksums(tmp_path: Path) -> None:
    """Records without sha256/md5: each channel's bytes reach its own image, whatever the cache holds."""
    cache = tmp_path / "cache"
    digests = {}
    for which in ("a", "b"):
        c = tmp_path / f"chan-{which}"
        build_package(c / "linux-64", "same", "1", files={"share/who.txt": f"channel {which}\n"})
        index_channel(c)
        rd = c / "linux-64" / "repodata.json"
        doc = json.loads(rd.read_text())
        for rec in doc["packages.conda"].values():
            rec.pop("sha256"), rec.pop("md5")
        rd.write_text(json.dumps(doc))
        (c / "linux-64" / "repodata.json.zst").unlink()
        _build(tmp_path, f"channels: [{c}]\ndependencies: [same]\n", f"{which}.tar", cache)
        files = {k: v for layer in _layers(tmp_path / f"{which}.tar") for k, v in layer.items()}
        assert files["opt/conda/share/who.txt"] == f"channel {which}\n".encode()
        digests[which] = _digest(tmp_path / f"{which}.tar")
    assert digests["a"] != digests["b"]


def test_clobbered_path_ships_the_kept_copy_once(tmp_path: Path) -> None:
    """Two packages, and a package file against an entry point: the later copy is in the image, in one layer, owned
    by the package whose conda-meta lists it."""
    c = tmp_path / "chan"
    fn, data, _ = hostile.python_package()
    (c / "linux-64").mkdir(parents=True)
    (c / "linux-64" / fn).write_bytes(data)
    build_package(c / "linux-64", "aaa", "1", files={"share/same.txt": "from aaa\n", "bin/tool": "aaa tool\n"})
    build_package(c / "linux-64", "bbb", "1", depends=["aaa"], files={"share/same.txt": "from bbb\n"})
    build_package(c / "noarch", "ccc", "1", noarch="python", depends=["aaa", "python"],
                  entry_points=["tool = ccc.cli:main"], files={"site-packages/ccc/cli.py": "def main(): pass\n"})
    index_channel(c)
    p = _build(tmp_path, f"channels: [{c}]\ndependencies: [bbb, ccc]\n", "out.tar", tmp_path / "cache")
    assert "the copy from bbb-1-0 is kept" in p.stderr and "the copy from ccc-1-0 is kept" in p.stderr
    layers = _layers(tmp_path / "out.tar")
    for path, owner, expect in (("share/same.txt", "bbb-1-0", b"from bbb\n"), ("bin/tool", "ccc-1-0", b"ccc.cli")):
        holders = [layer for layer in layers if f"opt/conda/{path}" in layer]
        assert len(holders) == 1, path
        (layer,) = holders
        assert expect in layer[f"opt/conda/{path}"]  # type: ignore[operator]
        assert f"opt/conda/conda-meta/{owner}.json" in layer
        listed = [n for lay in layers for n, v in lay.items() if n.startswith("opt/conda/conda-meta/") and
                  n.endswith(".json") and path in json.loads(v).get("files", [])]  # type: ignore[arg-type]
        assert listed == [f"opt/conda/conda-meta/{owner}.json"]


def test_long_shebang_goes_through_env_and_sha256_in_prefix_matches(tmp_path: Path) -> None:
    c = tmp_path / "chan"
    script = f"#!{LONG_PLACEHOLDER}/bin/python3.11 -E\nprint('hi')\n"
    build_package(c / "linux-64", "scr", "1", files={"bin/scr": Executable(script)}, text_prefix_files=["bin/scr"])
    index_channel(c)
    prefix = "/opt/" + "deep/" * 24 + "env"  # 128 characters: the shebang no longer fits in 127 bytes
    _build(tmp_path, f"channels: [{c}]\ndependencies: [scr]\nimage:\n  prefix: {prefix}\n", "out.tar",
           tmp_path / "cache")
    files = {k: v for layer in _layers(tmp_path / "out.tar") for k, v in layer.items()}
    root = prefix.strip("/")
    shipped = files[f"{root}/bin/scr"]
    assert shipped == b"#!/usr/bin/env python3.11 -E\nprint('hi')\n"
    meta = json.loads(files[f"{root}/conda-meta/scr-1-0.json"])  # type: ignore[arg-type]
    (pd,) = [p for p in meta["paths_data"]["paths"] if p["_path"] == "bin/scr"]
    assert pd["sha256_in_prefix"] == hashlib.sha256(shipped).hexdigest()  # type: ignore[arg-type]


def test_cep17_site_packages_path_is_honoured(tmp_path: Path) -> None:
    c = tmp_path / "chan"
    hostile.write_repodata(c, [hostile.python_package("lib/python3.11t/site-packages")])
    build_package(c / "noarch", "pure", "1", noarch="python", depends=["python"],
                  files={"site-packages/pure/__init__.py": "X = 1\n"})
    entries = [hostile.python_package("lib/python3.11t/site-packages")]
    pure = c / "noarch" / "pure-1-0.conda"
    entries.append((pure.name, pure.read_bytes(), read_index_json(pure)))
    hostile.write_repodata(c, entries)
    _build(tmp_path, f"channels: [{c}]\ndependencies: [pure]\n", "out.tar", tmp_path / "cache")
    files = {k: v for layer in _layers(tmp_path / "out.tar") for k, v in layer.items()}
    assert files["opt/conda/lib/python3.11t/site-packages/pure/__init__.py"] == b"X = 1\n"
    assert not [k for k in files if k.startswith("opt/conda/lib/python3.11/site-packages")]


def _limit_memory() -> None:
    limit = 1536 << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_placeholder_bomb_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    """A 48 MiB file of zeros with an empty placeholder: refused in one line under a 1.5 GiB address-space limit."""
    arena = hostile.Arena(tmp_path)
    case = hostile._built("evil-bomb-ph", "", files={"share/zeros": bytes(48 << 20)},
                          paths_edit=lambda ps: [p.update(prefix_placeholder="", file_mode="text") for p in ps])
    hostile.make_channel(tmp_path / "chan", case)
    (arena.work / "env.yml").write_text(f"channels: [{tmp_path / 'chan'}]\ndependencies: [evil-bomb-ph]\n")
    p = subprocess.run([sys.executable, "-m", "oci_conda", "build", "env.yml", "-o", "out.tar", "--jobs", "1"],
                       cwd=arena.work, env=arena.env(), capture_output=True, text=True, timeout=TIMEOUT,
                       preexec_fn=_limit_memory, check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("oci-conda: error: ")]
    assert errors == [("oci-conda: error: evil-bomb-ph-1-0: info/paths.json: share/zeros: prefix placeholder '' is "
                       "empty or not a string")], p.stderr[-2000:]
    assert not (arena.work / "out.tar").exists()


# ---------------------------------------------------------------------------------------------------------------
# units: cache_verify and the rewrite bound


def test_verify_file_notices_an_edit_hidden_by_utime(tmp_path: Path) -> None:
    f = tmp_path / "blob"
    f.write_bytes(b"good bytes")
    record_file(f, Digests(hashlib.sha256(b"good bytes").hexdigest(), hashlib.md5(b"good bytes").hexdigest(), 10))
    assert verify_file(f, sha256=hashlib.sha256(b"good bytes").hexdigest(), size=10)
    st = os.stat(f)
    with open(f, "r+b") as fh:
        fh.write(b"B")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not verify_file(f, sha256=hashlib.sha256(b"good bytes").hexdigest(), size=10)
    assert file_digests(f).sha256 == hashlib.sha256(b"Bood bytes").hexdigest()


def test_verify_tree_finds_changed_file_link_and_dir(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "lib").mkdir(parents=True)
    (root / "lib/a").write_bytes(b"a")
    os.symlink("a", root / "lib/l")
    m = tree_manifest(root)
    assert verify_tree(root, m) is None
    os.utime(root / "lib/a", ns=(1, 1))  # stamp differs, content the same: still good
    assert verify_tree(root, m) is None
    (root / "lib/a").write_bytes(b"b")
    assert "lib/a has changed" in (verify_tree(root, m) or "")
    (root / "lib/a").write_bytes(b"a")
    os.unlink(root / "lib/l")
    os.symlink("/etc/passwd", root / "lib/l")
    assert "lib/l" in (verify_tree(root, m) or "")
    assert verify_tree(root, {"version": 0}) is not None


def test_rewrite_growth_is_bounded_before_allocation() -> None:
    ph = "/opt/placeholder_16"
    data = (ph + "\n").encode() * 100_000
    long_target = "/" + "x" * 200
    with pytest.raises(ValueError, match="would grow the file"):
        replace_text_prefix(data, ph, long_target)
    assert len(replace_text_prefix(data, ph, "/opt/conda")) < len(data)
    assert rewrite_limit(10) == 10 + (1 << 20) and rewrite_limit(10 << 20) == 20 << 20
    with pytest.raises(ValueError, match="empty placeholder"):
        replace_text_prefix(b"abc", "", "/opt/conda")
