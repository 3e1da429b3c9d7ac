"""The layer writer: Python's tarfile (an independent reader) must see exactly what we meant, byte-identically every run."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import stat
import tarfile
import zlib
from pathlib import Path

import pytest
import zstandard

from oci_conda.errors import ImageError
from oci_conda.oci import tar
from oci_conda.oci.tar import (
    TarEntry,
    entry_header,
    is_whiteout,
    layer_from_directory,
    write_layer,
)

MTIME = 1_700_000_000
LONG_SPLITTABLE = "opt/" + "d" * 90 + "/" + "f" * 90  # > 100 bytes, fits ustar's prefix field
LONG_UNSPLITTABLE = "opt/" + "n" * 180  # last component alone is > 100 bytes: needs PAX
NON_ASCII = "opt/données/café.txt"


def _decompress(blob: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(blob)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return blob


def _write(entries: list[TarEntry], compression: str = "gzip", mtime: int = MTIME) -> tuple[bytes, object]:
    out = io.BytesIO()
    info = write_layer(entries, out, compression, mtime)  # type: ignore[arg-type]
    return out.getvalue(), info


def _members(tar_bytes: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    result = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as t:
        for m in t:
            data = t.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
            result[m.name] = (m, data)
    return result


def _sample_entries(tmp_path: Path) -> list[TarEntry]:
    exe = tmp_path / "exe"
    exe.write_bytes(b"#!/bin/sh\necho hi\n" * 1000)
    exe.chmod(0o750)
    return [
        TarEntry("opt/conda/bin/tool", "file", 0o750, source=str(exe)),
        TarEntry("opt/conda/bin/python", "symlink", linkname="python3.11"),
        TarEntry("opt/conda/etc/conf", "file", 0o600, data=b"x=1\n"),
        TarEntry("opt/conda/lib/empty", "file", 0o640, data=b""),
        TarEntry("opt/conda/lib/link", "hardlink", linkname="opt/conda/etc/conf"),
        TarEntry("opt/conda/share", "dir", 0o700),
        TarEntry(LONG_SPLITTABLE, "file", data=b"long"),
        TarEntry(LONG_UNSPLITTABLE, "file", data=b"longer"),
        TarEntry(NON_ASCII, "file", data="é".encode()),
        TarEntry("opt/longlink", "symlink", linkname="t/" * 80),
    ]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_through_tarfile(tmp_path: Path, compression: str) -> None:
    blob, info = _write(_sample_entries(tmp_path), compression)
    raw = _decompress(blob, compression)
    assert info.size == len(blob)
    assert info.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert info.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert info.uncompressed_size == len(raw)
    assert info.media_type == {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
                               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
                               "none": "application/vnd.oci.image.layer.v1.tar"}[compression]

    members = _members(raw)
    names = list(members)
    assert names == sorted(names, key=lambda n: n.encode())
    # parents were added as 0755 directories
    for d in ("opt", "opt/conda", "opt/conda/bin", "opt/conda/etc", "opt/conda/lib", "opt/données",
              "opt/" + "d" * 90):
        assert members[d][0].isdir() and members[d][0].mode == 0o755, d
    tool, data = members["opt/conda/bin/tool"]
    assert tool.isreg() and tool.mode == 0o755 and data == b"#!/bin/sh\necho hi\n" * 1000
    assert members["opt/conda/bin/python"][0].issym()
    assert members["opt/conda/bin/python"][0].linkname == "python3.11"
    assert members["opt/conda/bin/python"][0].mode == 0o777
    assert members["opt/conda/etc/conf"][0].mode == 0o644 and members["opt/conda/etc/conf"][1] == b"x=1\n"
    assert members["opt/conda/lib/empty"][0].size == 0
    assert members["opt/conda/share"][0].isdir() and members["opt/conda/share"][0].mode == 0o755
    assert members[LONG_SPLITTABLE][1] == b"long"
    assert members[LONG_UNSPLITTABLE][1] == b"longer"
    assert members[NON_ASCII][1] == "é".encode()
    assert members["opt/longlink"][0].linkname == "t/" * 80
    for m, _ in members.values():
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", MTIME)
        assert not {"atime", "ctime", "mtime"} & set(m.pax_headers)
    # PAX only where ustar cannot express the entry
    assert {n for n, (m, _) in members.items() if m.pax_headers} == {LONG_UNSPLITTABLE, NON_ASCII, "opt/longlink",
                                                                     "opt/données"}


def test_hardlink_points_to_earlier_path(tmp_path: Path) -> None:
    # "a" links to "b", but "a" sorts first: the writer makes "a" the file and "b" the link
    blob, _ = _write([TarEntry("b", "file", 0o755, data=b"content"), TarEntry("a", "hardlink", linkname="b")], "none")
    members = _members(blob)
    assert members["a"][0].isreg() and members["a"][1] == b"content" and members["a"][0].mode == 0o755
    assert members["b"][0].islnk() and members["b"][0].linkname == "a"
    dest = tmp_path / "x"
    with tarfile.open(fileobj=io.BytesIO(blob)) as t:
        t.extractall(dest, filter="tar")
    assert (dest / "b").read_bytes() == b"content"
    assert os.stat(dest / "a").st_ino == os.stat(dest / "b").st_ino


def test_short_ascii_layer_is_plain_ustar() -> None:
    """Without long or non-ASCII names the tar is exactly headers + padded contents + the end marker."""
    contents = {"a/x": b"1" * 700, "a/y": b"", "b": b"2" * 512}
    blob, info = _write([TarEntry(p, "file", data=d) for p, d in contents.items()], "none")
    # one header per file plus one for the added directory "a", contents padded to blocks, two zero blocks
    expected = 512 * (1 + len(contents)) + sum(-(-len(d) // 512) * 512 for d in contents.values()) + 1024
    assert len(blob) == expected == info.uncompressed_size
    assert blob[257:263] == b"ustar\x00"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_identical_bytes_regardless_of_umask_mtime_owner(tmp_path: Path, compression: str) -> None:
    def make(root: Path, umask: int, mtime: int, owner: int) -> None:
        old = os.umask(umask)
        try:
            (root / "bin").mkdir(parents=True)
            (root / "lib" / "deep").mkdir(parents=True)
            (root / "bin" / "run").write_bytes(b"#!/bin/sh\n")
            (root / "bin" / "run").chmod(0o777 & ~umask | 0o100)
            (root / "lib" / "deep" / "data.bin").write_bytes(bytes(range(256)) * 5000)
            (root / "lib" / "hard").write_bytes(b"h")
            os.link(root / "lib" / "hard", root / "lib" / "hard2")
            os.symlink("../bin/run", root / "lib" / "runlink")
        finally:
            os.umask(old)
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                if os.geteuid() == 0:
                    os.lchown(p, owner, owner)
                os.utime(p, (mtime, mtime), follow_symlinks=False)

    make(tmp_path / "one", 0o022, 1_000_000, 0)
    make(tmp_path / "two", 0o077, 2_000_000, 4242)
    b1, i1 = _write(layer_from_directory(tmp_path / "one", "opt/app"), compression)
    b2, i2 = _write(layer_from_directory(tmp_path / "two", "opt/app"), compression)
    assert i1 == i2
    assert b1 == b2
    b3, _ = _write(layer_from_directory(tmp_path / "one", "opt/app"), compression)
    assert b3 == b1
    # a different mtime argument does change the bytes (the test can fail)
    b4, _ = _write(layer_from_directory(tmp_path / "one", "opt/app"), compression, mtime=MTIME + 1)
    assert b4 != b1


def test_gzip_header_has_no_name_or_time() -> None:
    blob, _ = _write([TarEntry("f", "file", data=b"x")], "gzip")
    assert blob[:4] == b"\x1f\x8b\x08\x00"  # no FNAME/FEXTRA/FCOMMENT flags
    assert blob[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert gzip.GzipFile(fileobj=io.BytesIO(blob)).read()[:1] == b"f"


def test_layer_from_directory_preserves_links_and_exec(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_bytes(b"\x7fELF fake")
    (src / "bin" / "tool").chmod(0o755)
    (src / "bin" / "data").write_bytes(b"data")
    (src / "bin" / "data").chmod(0o644)
    os.link(src / "bin" / "tool", src / "bin" / "tool-hard")
    os.symlink("tool", src / "bin" / "tool-sym")
    os.symlink("/nonexistent/abs", src / "dangling")
    entries = layer_from_directory(src)
    kinds = {e.path: e.kind for e in entries}
    assert kinds == {"bin": "dir", "bin/data": "file", "bin/tool": "file", "bin/tool-hard": "hardlink",
                     "bin/tool-sym": "symlink", "dangling": "symlink"}
    blob, _ = _write(entries, "gzip")
    dest = tmp_path / "dest"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as t:
        t.extractall(dest, filter="tar")
    assert (dest / "bin" / "tool").read_bytes() == b"\x7fELF fake"
    assert os.stat(dest / "bin" / "tool").st_mode & 0o111
    assert not os.stat(dest / "bin" / "data").st_mode & 0o111
    assert os.stat(dest / "bin" / "tool-hard").st_ino == os.stat(dest / "bin" / "tool").st_ino
    assert os.readlink(dest / "bin" / "tool-sym") == "tool"
    assert os.readlink(dest / "dangling") == "/nonexistent/abs"


def test_layer_from_directory_rejects_special_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ImageError, match="fifo"):
        layer_from_directory(tmp_path)


@pytest.mark.parametrize(
    "entries, message",
    [
        ([TarEntry("a", "file"), TarEntry("a", "file")], "duplicate"),
        ([TarEntry("a/b", "file"), TarEntry("a/b/", "dir")], "duplicate"),
        ([TarEntry("/etc/passwd", "file")], "relative"),
        ([TarEntry("a/../../x", "file")], r"'\.\.'"),
        ([TarEntry("./a", "file")], r"'\.'"),
        ([TarEntry("l", "hardlink", linkname="missing")], "not a regular file"),
        ([TarEntry("l", "hardlink", linkname="../x")], r"'\.\.'"),
        ([TarEntry("a", "file"), TarEntry("a/b", "file")], "not a directory"),
    ],
)
def test_rejects_bad_entries(entries: list[TarEntry], message: str) -> None:
    with pytest.raises(ImageError, match=message):
        write_layer(entries, io.BytesIO(), "gzip", 0)


def test_huge_size_goes_to_pax() -> None:
    """A file >= 8 GiB does not fit ustar's 11 octal digits; tarfile must still read the right size from PAX."""
    size = 9 * 1024**3
    head = entry_header("big", "file", 0o644, size, 0, "")
    with tarfile.open(fileobj=io.BytesIO(head + b"\0" * 1024), mode="r|") as t:
        m = t.next()
        assert m is not None and m.name == "big" and m.size == size and m.pax_headers == {"size": str(size)}
    small = entry_header("small", "file", 0o644, 8**11 - 1, 0, "")
    assert len(small) == 512  # the largest ustar size needs no PAX header


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_source_is_streamed_not_slurped(tmp_path: Path, compression: str) -> None:
    """A multi-MB source goes through in chunks; contents and digests match an independent hash of the file."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.writelines(hashlib.sha256(str(i).encode()).digest() * 32768 for i in range(24))  # 1 MiB each
    blob, info = _write([TarEntry("big.bin", "file", source=str(big))], compression)
    raw = _decompress(blob, compression)
    assert info.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    members = _members(raw)
    assert hashlib.sha256(members["big.bin"][1]).digest() == hashlib.sha256(big.read_bytes()).digest()
    assert stat.S_IMODE(members["big.bin"][0].mode) == 0o644


def test_gzip_bytes_do_not_depend_on_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gzip is deflated in parallel blocks; 1 or 3 threads must give the same bytes, and gunzip must read them."""
    import random

    from oci_conda.oci import tar as tar_mod

    rng = random.Random(7)
    text = b" ".join(bytes(rng.choice(b"abcdefghij") for _ in range(rng.randint(1, 12))) for _ in range(5000))
    entries = [TarEntry(f"d/{n:03d}", "file", data=rng.randbytes(rng.randint(0, 60000)) + text * rng.randint(0, 6))
               for n in range(40)]  # ~ 6 MB, part random, part compressible, varied sizes: many block boundaries
    results = {}
    for workers in (1, 3):
        monkeypatch.setattr(tar_mod, "GZIP_WORKERS", workers)
        results[workers] = _write(entries, "gzip")
    assert results[1][0] == results[3][0] and results[1][1] == results[3][1]
    raw = gzip.decompress(results[1][0])
    assert _members(raw)["d/017"][1] == entries[17].data


def test_zstd_frame_records_content_size(tmp_path: Path) -> None:
    blob, info = _write(_sample_entries(tmp_path), "zstd")
    assert zstandard.get_frame_parameters(blob).content_size == info.uncompressed_size
    assert zstandard.ZstdDecompressor().decompress(blob) == _decompress(blob, "zstd")  # one-shot needs the size


def test_missing_source_fails_before_writing(tmp_path: Path) -> None:
    out = io.BytesIO()
    with pytest.raises(ImageError, match="gone"):
        write_layer([TarEntry("a", "file", data=b"a"), TarEntry("z", "file", source=str(tmp_path / "gone"))],
                    out, "gzip", 0)
    assert out.getvalue() == b""


def test_whiteouts_only_when_asked() -> None:
    """Content never deletes lower layers' files: whiteout names are refused unless the caller asks for that path."""
    assert is_whiteout("opt/conda/.wh..wh..opq") and is_whiteout("bin/.wh.python3.11") and is_whiteout(".wh.x/y")
    assert not is_whiteout("bin/python.wh.x") and not is_whiteout("share/wh.txt")
    for entry in (TarEntry("opt/conda/.wh..wh..opq", "file"), TarEntry("opt/conda/bin/.wh.python3.11", "file", data=b""),
                  TarEntry("opt/.wh.d", "dir"), TarEntry("opt/.wh.l", "symlink", linkname="x")):
        with pytest.raises(ImageError, match="OCI whiteout name"):
            write_layer([entry], io.BytesIO(), "none", 0)
    with pytest.raises(ImageError, match="OCI whiteout name"):  # asked for, but not an empty file
        write_layer([TarEntry("opt/.wh.x", "file", data=b"x", size=1)], io.BytesIO(), "none", 0,
                    whiteouts=["opt/.wh.x"])
    write_layer([TarEntry("opt/.wh.x", "file")], io.BytesIO(), "none", 0, whiteouts=["opt/.wh.x"])


def _known_input() -> list[TarEntry]:
    """3 MiB of text and binary-like content (several gzip blocks), the same on every machine."""
    rng = random.Random(16)
    text = b"".join(b"def f%d(x):\n    return x * %d  # comment\n" % (i, i % 97) for i in range(40_000))
    binary = bytes(rng.getrandbits(8) if i % 7 else 0 for i in range(1_200_000))
    return [TarEntry("opt/conda/lib/a.py", "file", 0o644, size=len(text), data=text),
            TarEntry("opt/conda/lib/b.so", "file", 0o755, size=len(binary), data=binary),
            TarEntry("opt/conda/bin/b", "symlink", linkname="../lib/b.so", mtime=1_600_000_000)]


#: The gzip layer of ``_known_input`` at mtime 1700000000, recorded with zlib-ng 2.3.3 (wheel zlib-ng 1.1.0) level 4.
#: Any machine (CPU features, system zlib, thread count) must give these bytes: CI checks it on another machine.
KNOWN_GZIP_DIGEST = "sha256:5bd6eaa596e8e03cb3cc6aaf96e929d1bbcbe701553bd9dd29e99236454c7088"


def test_gzip_bytes_do_not_depend_on_the_system_zlib_or_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """gzip layers come from the pinned zlib-ng wheel: the Python's own zlib is never used for them (it may be
    zlib-ng-compat on some distributions), and 1 or 4 threads give the recorded bytes."""
    assert tar.compressor_id("gzip").startswith("zlib-ng 2.")
    assert tar.compressor_id("zstd").startswith("zstandard ")

    def refused(*_a: object, **_k: object) -> None:
        raise AssertionError("the system zlib was used for a gzip layer")

    outs = {}
    with monkeypatch.context() as m:
        m.setattr(zlib, "compressobj", refused)
        m.setattr(zlib, "crc32", refused)
        for workers in (1, 4):
            out = io.BytesIO()
            info = write_layer(_known_input(), out, "gzip", 1_700_000_000, workers=workers)
            outs[info.digest] = out.getvalue()
    assert list(outs) == [KNOWN_GZIP_DIGEST]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(outs[KNOWN_GZIP_DIGEST]))) as tf:  # a valid stream
        assert {m.name: m.mtime for m in tf} == {"opt": 1_700_000_000, "opt/conda": 1_700_000_000,
                                                 "opt/conda/bin": 1_700_000_000, "opt/conda/bin/b": 1_600_000_000,
                                                 "opt/conda/lib": 1_700_000_000, "opt/conda/lib/a.py": 1_700_000_000,
                                                 "opt/conda/lib/b.so": 1_700_000_000}
