"""extract_package / read_paths: real packages round-trip, hostile and corrupt archives are refused."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pkgbuilder import (  # noqa: E402
    LONG_PLACEHOLDER,
    SHORT_PLACEHOLDER,
    Executable,
    Hardlink,
    Symlink,
    build_package,
    index_channel,
)

from oci_conda.conda.package import (  # noqa: E402
    MARKER,
    extract_package,
    read_index,
    read_link_json,
    read_paths,
)
from oci_conda.errors import PackageError  # noqa: E402


# ---------------------------------------------------------------------------------------------------------------
# hostile archives, written by hand (no builder would make them)


def _raw_tar_bz2(path: Path, members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        idx = tarfile.TarInfo("info/index.json")
        data = json.dumps({"name": "evil", "version": "1", "build": "0", "build_number": 0}).encode()
        idx.size = len(data)
        tar.addfile(idx, io.BytesIO(data))
        for m in members:
            if isinstance(m, tuple):
                ti, data = m
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(m)
    path.write_bytes(bz2.compress(buf.getvalue()))
    return path


def _ti(name: str, type_: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = type_, linkname, mode
    return ti


@pytest.fixture
def arena(tmp_path: Path):
    """A cache root inside ``tmp_path/arena/cache`` with canary files around it that must never change."""
    root = tmp_path / "arena"
    cache = root / "a" / "b" / "cache"
    cache.mkdir(parents=True)
    canaries = {root / "canary": "c0", root / "a" / "canary": "c1", cache.parent / "canary": "c2"}
    for p, t in canaries.items():
        p.write_text(t)

    def check() -> None:
        for p, t in canaries.items():
            assert p.read_text() == t
        found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not str(p).startswith(str(cache)))
        assert found == ["a", "a/b", "a/b/canary", "a/canary", "canary"], found
        # a failed extraction leaves nothing in the cache but its lock file
        assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []

    return cache, check


HOSTILE = {
    "dotdot": [(_ti("../canary"), b"pwned")],
    "dotdot-deep": [(_ti("lib/../../../canary"), b"pwned")],
    "absolute": [(_ti("/tmp/oci-conda-absolute-canary"), b"pwned")],
    "symlink-abs": [_ti("etc/passwd", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink-up": [_ti("lib/up", tarfile.SYMTYPE, "../../canary")],
    # a chain of links each harmless on paper, escaping together, then a write through it
    "symlink-chain": [
        _ti("a/b", tarfile.SYMTYPE, ".."),
        _ti("a/b/c", tarfile.SYMTYPE, ".."),
        (_ti("a/b/c/canary"), b"pwned"),
    ],
    # a link first, then a file written through it
    "write-through-link": [_ti("d", tarfile.SYMTYPE, "."), (_ti("d/../../canary"), b"pwned")],
    "hardlink-out": [_ti("lib/h", tarfile.LNKTYPE, "../canary")],
    "hardlink-abs": [_ti("lib/h", tarfile.LNKTYPE, "/etc/passwd")],
    "hardlink-via-symlink": [_ti("lib/s", tarfile.SYMTYPE, "x"), _ti("lib/h", tarfile.LNKTYPE, "lib/s")],
    "chardev": [_ti("dev/null", tarfile.CHRTYPE)],
    "blockdev": [_ti("dev/sda", tarfile.BLKTYPE)],
    "fifo": [_ti("run/fifo", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(case: str, tmp_path: Path, arena) -> None:
    cache, check = arena
    pkg = _raw_tar_bz2(tmp_path / f"evil-{case}.tar.bz2", HOSTILE[case])
    with pytest.raises(PackageError, match=rf"^evil-{case}\.tar\.bz2: .*member|^evil-{case}\.tar\.bz2: (symlink|hardlink)"):
        extract_package(pkg, cache, "evil")
    check()
    assert not Path("/tmp/oci-conda-absolute-canary").exists()


def test_hostile_conda_format(tmp_path: Path, arena) -> None:
    """The same checks apply inside a .conda's pkg tarball."""
    cache, check = arena
    pkg = build_package(tmp_path, "evil", "1", files={"lib/x": Symlink("../../../../canary")})
    with pytest.raises(PackageError, match=r"evil-1-0\.conda.*lib/x.*outside"):
        extract_package(pkg, cache, "evil")
    check()


def test_corrupt_archives(tmp_path: Path, arena) -> None:
    cache, check = arena
    good = build_package(tmp_path / "good", "ok", "1", files={"share/a": "a" * 10000}, fmt="tar.bz2")
    cases = {
        "truncated-1.0-0.tar.bz2": good.read_bytes()[: len(good.read_bytes()) // 2],
        "garbage-1.0-0.tar.bz2": b"BZh9" + os.urandom(64),
        "noise-1.0-0.conda": os.urandom(200),
        "empty-1.0-0.conda": b"",
    }
    # a .conda whose inner zstd stream is damaged
    goodc = build_package(tmp_path / "good", "okc", "1", files={"share/a": "a" * 10000})
    with zipfile.ZipFile(goodc) as zf:
        members = [(zi.filename, zf.read(zi)) for zi in zf.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zf.writestr(name, data[:20] + b"\xff" * 40 + data[60:] if name.startswith("pkg-") else data)
    cases["badzstd-1.0-0.conda"] = buf.getvalue()
    for name, data in cases.items():
        f = tmp_path / name
        f.write_bytes(data)
        with pytest.raises(PackageError, match=rf"^{name.replace('.', '[.]')}"):
            extract_package(f, cache, name.split("-")[0])
    # a cache file named by digest: the label names the package in the message
    digest_named = tmp_path / ("0" * 64 + ".tar.bz2")
    digest_named.write_bytes(cases["garbage-1.0-0.tar.bz2"])
    with pytest.raises(PackageError, match=r"^garbage-1\.0-0\.tar\.bz2: corrupt"):
        extract_package(digest_named, cache, "digest", label="garbage-1.0-0.tar.bz2")
    check()


# ---------------------------------------------------------------------------------------------------------------
# round trips


def test_extract_matches_builder_input(tmp_path: Path) -> None:
    files = {
        "bin/run": Executable("#!/bin/sh\n"),
        "lib/libz.so.1.2": b"\0\1\2",
        "lib/libz.so": Symlink("libz.so.1.2"),
        "lib/dir-link": Symlink("../share"),
        "share/doc.txt": "doc\n",
        "share/copy.txt": Hardlink("share/doc.txt"),
    }
    for fmt in ("conda", "tar.bz2"):
        pkg = build_package(tmp_path / fmt, "rt", "1", files=files, fmt=fmt)  # type: ignore[arg-type]
        d = extract_package(pkg, tmp_path / "cache", f"rt-{fmt}")
        assert (d / MARKER).is_file()
        assert os.stat(d / "bin/run").st_mode & 0o777 == 0o755
        assert os.stat(d / "share/doc.txt").st_mode & 0o777 == 0o644
        assert os.readlink(d / "lib/libz.so") == "libz.so.1.2" and os.readlink(d / "lib/dir-link") == "../share"
        assert (d / "share/copy.txt").read_text() == "doc\n" and not (d / "share/copy.txt").is_symlink()
        # the cached copy is independent of the source file (a copy, not a link to the hard link target)
        assert os.stat(d / "share/copy.txt").st_ino != os.stat(d / "share/doc.txt").st_ino
        entries = {e.path: e for e in read_paths(d)}
        assert sorted(entries) == sorted(files)
        assert entries["lib/libz.so"].path_type == "softlink" and entries["bin/run"].path_type == "hardlink"
        assert entries["share/doc.txt"].sha256 == hashlib.sha256(b"doc\n").hexdigest()
        assert read_index(d)["name"] == "rt" and read_link_json(d) is None


def test_extract_is_once_and_concurrent_safe(tmp_path: Path) -> None:
    pkg = build_package(tmp_path, "conc", "1", files={f"share/f{i}": str(i) * 100 for i in range(200)})
    cache = tmp_path / "cache"
    # a leftover of a crashed build: same name, no marker -> must be replaced, not trusted
    entry = f"{hashlib.sha256(pkg.read_bytes()).hexdigest()}-conc"
    stale = cache / entry
    stale.mkdir(parents=True)
    (stale / "junk").write_text("half-written")
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(extract_package(pkg, cache, "conc"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    d = results[0]
    assert not (d / "junk").exists() and (d / "share/f199").read_text() == "199" * 100
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == [entry]
    # a finished dir is reused as is
    mtime = os.stat(d / MARKER).st_mtime_ns
    assert extract_package(pkg, cache, "conc") == d and os.stat(d / MARKER).st_mtime_ns == mtime


def test_legacy_manifest(tmp_path: Path) -> None:
    """Old packages: info/files + has_prefix (three-part and bare-path lines) + no_link."""
    pkg = build_package(
        tmp_path,
        "old",
        "1",
        fmt="tar.bz2",
        legacy=True,
        placeholder=SHORT_PLACEHOLDER,
        files={
            "bin/a": Executable(f"#!{SHORT_PLACEHOLDER}/bin/sh\n"),
            "etc/b": f"{SHORT_PLACEHOLDER}\n",
            "lib/c.so": b"\0" + SHORT_PLACEHOLDER.encode() + b"\0",
            "lib/d": Symlink("c.so"),
            "share/\"quoted name\" x": "q",
        },
        extra_info={
            "info/has_prefix": f'{SHORT_PLACEHOLDER} text bin/a\netc/b\n{SHORT_PLACEHOLDER} binary lib/c.so\n',
            "info/no_link": "etc/b\n",
        },
    )
    d = extract_package(pkg, tmp_path / "cache", "old")
    assert not (d / "info/paths.json").exists()
    e = {x.path: x for x in read_paths(d)}
    assert (e["bin/a"].prefix_placeholder, e["bin/a"].file_mode) == (SHORT_PLACEHOLDER, "text")
    assert (e["etc/b"].prefix_placeholder, e["etc/b"].file_mode, e["etc/b"].no_link) == (SHORT_PLACEHOLDER, "text", True)
    assert (e["lib/c.so"].prefix_placeholder, e["lib/c.so"].file_mode) == (SHORT_PLACEHOLDER, "binary")
    assert e["lib/d"].path_type == "softlink" and e["lib/d"].prefix_placeholder is None


def test_bad_manifests(tmp_path: Path) -> None:
    pkg = build_package(tmp_path, "badm", "1", files={"a": "a"},
                        extra_info={"info/paths.json": json.dumps({"paths": [{"_path": "../../etc/x", "path_type": "hardlink"}]})})
    with pytest.raises(PackageError, match=r"badm.*\.\./\.\./etc/x"):  # refused when extracted, as paths.json is checked
        extract_package(pkg, tmp_path / "cache", "badm")
    pkg = build_package(tmp_path, "badh", "1", files={"a": "a"}, legacy=True, extra_info={"info/has_prefix": "a b c d\n"})
    d = extract_package(pkg, tmp_path / "cache", "badh")
    with pytest.raises(PackageError, match=r"badh.*has_prefix line 1"):
        read_paths(d)


def test_real_packages_manifest_matches_payload(realdata: Path, tmp_path: Path) -> None:
    """Every real package: every paths.json entry exists with the recorded type, size and sha256."""
    pk = realdata / "packages"
    names = [
        "conda-forge-linux-64/openssl-3.3.1-h4ab18f5_1.conda",
        "conda-forge-linux-64/xz-5.2.6-h166bdaf_0.tar.bz2",
        "conda-forge-linux-64/wheel-0.45.1-pyhd8ed1ab_1.conda",
        "defaults-linux-64-2019/zlib-1.2.11-h7b6447c_3.tar.bz2",
        "misc-real/mock-2.0.0-py37_1000.conda",
        "synthetic-edge-cases/cph_test_data-0.0.1-0.tar.bz2",
    ]
    for i, n in enumerate(names):
        d = extract_package(pk / n, tmp_path / "cache", f"p{i}")
        entries = read_paths(d)
        assert entries
        for e in entries:
            p = d / e.path
            if e.path_type == "softlink":
                assert p.is_symlink(), (n, e.path)
            elif e.path_type == "hardlink":
                assert p.is_file() and not p.is_symlink(), (n, e.path)
                if e.sha256:
                    assert hashlib.sha256(p.read_bytes()).hexdigest() == e.sha256, (n, e.path)
                if e.size is not None:
                    assert p.stat().st_size == e.size, (n, e.path)
    # the .conda and .tar.bz2 of the same real package extract to the same tree
    a = extract_package(pk / "misc-real/mock-2.0.0-py37_1000.conda", tmp_path / "cache", "mock-c")
    b = extract_package(pk / "misc-real/mock-2.0.0-py37_1000.tar.bz2", tmp_path / "cache", "mock-b")

    def listing(d: Path) -> dict[str, bytes | str]:
        return {
            str(p.relative_to(d)): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir")
            for p in d.rglob("*")
            if not str(p.relative_to(d)).startswith("info/") and p.name != MARKER  # the manifest holds inodes
        }

    assert listing(a) == listing(b)


def test_noarch_python_metadata(tmp_path: Path) -> None:
    pkg = build_package(tmp_path, "np", "1", noarch="python", files={"site-packages/np.py": ""}, entry_points=["np = np:main"])
    d = extract_package(pkg, tmp_path / "cache", "np")
    assert read_link_json(d) == {"noarch": {"type": "python", "entry_points": ["np = np:main"]}, "package_metadata_version": 1}
    assert read_index(d)["subdir"] == "noarch"


def test_builder_and_index_are_deterministic(tmp_path: Path) -> None:
    """Same arguments, same bytes; the index carries the real hashes of the files."""
    kw = dict(files={"bin/x": Executable("x"), "lib/l": Symlink("x"), "p": LONG_PLACEHOLDER}, text_prefix_files=["p"])
    for fmt in ("conda", "tar.bz2"):
        a = build_package(tmp_path / "a" / "linux-64", "det", "1", fmt=fmt, **kw).read_bytes()  # type: ignore[arg-type]
        b = build_package(tmp_path / "b" / "linux-64", "det", "1", fmt=fmt, **kw).read_bytes()  # type: ignore[arg-type]
        assert a == b
    index_channel(tmp_path / "a")
    rd = json.loads((tmp_path / "a/linux-64/repodata.json").read_text())
    rec = rd["packages.conda"]["det-1-0.conda"]
    data = (tmp_path / "a/linux-64/det-1-0.conda").read_bytes()
    assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["size"] == len(data)
    assert rec["md5"] == hashlib.md5(data).hexdigest()
    assert "det-1-0.tar.bz2" in rd["packages"]
    assert json.loads((tmp_path / "a/noarch/repodata.json").read_text())["packages"] == {}
    import zstandard

    assert zstandard.ZstdDecompressor().decompress((tmp_path / "a/linux-64/repodata.json.zst").read_bytes()) == (
        tmp_path / "a/linux-64/repodata.json"
    ).read_bytes()
